/* The HTTP/JSON API daemon (`stratq api`): libevent's evhttp for HTTP and
 * src/queue's asynchronous Redis connections on the same event loop. */
#ifndef STRATQ_API_H
#define STRATQ_API_H

int api_main(int argc, char **argv);

#endif

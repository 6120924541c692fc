/* The HTTP/JSON API daemon (`stratq api`): libevent's evhttp for HTTP and
 * hiredis' async client on the same event loop for Redis. */
#ifndef STRATQ_API_H
#define STRATQ_API_H

int api_main(int argc, char **argv);

#endif

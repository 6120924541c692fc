/* `stratq up`: the whole stack on one machine, as supervised processes:
 * its own redis-server (unless given --redis-url), the API and N workers. */
#ifndef STRATQ_UP_H
#define STRATQ_UP_H

int up_main(int argc, char **argv);

#endif

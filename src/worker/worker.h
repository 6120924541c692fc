/* The worker supervisor (`stratq worker`): owns the Redis connection, takes
 * one job at a time from the queue, hands it to its executor, records the
 * outcome, heartbeats, and drains on SIGTERM. */
#ifndef STRATQ_WORKER_H
#define STRATQ_WORKER_H

int worker_main(int argc, char **argv);

#endif

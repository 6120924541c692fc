/* The executor: the unprivileged half of a worker. It is started by the
 * supervisor with fork+exec, a minimal environment and one socket on fd 3,
 * and never holds a Redis connection or a secret. For each request it runs
 * one job in a fresh child process and replies with the outcome.
 *
 * Request:  {"id", "attempt", "spec": {normalized job spec}}
 * Reply:    {"status", "result_json"?, "error"?, "stdout", "stderr",
 *            "usage": {"wall_ms", "cpu_ms", "max_rss_kb"}} */
#ifndef STRATQ_EXECUTOR_H
#define STRATQ_EXECUTOR_H

#include <sys/types.h>

#define EXECUTOR_FD 3

/* Entry point of `stratq executor`. Returns the process exit code. */
int executor_main(int argc, char **argv);

/* Starts an executor (supervisor side). The socket to talk to it is
 * returned in *ret_fd (O_CLOEXEC), its pid in *ret_pid. */
int executor_spawn(pid_t *ret_pid, int *ret_fd);

#endif

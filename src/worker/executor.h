/* The executor: the unprivileged half of a worker, a program of its own
 * (stratq-executor, src/executor_main.c). It is started by the supervisor
 * with fork+exec (launch.h), a minimal environment and one socket on fd 3,
 * and never holds a Redis connection or a secret. It speaks the typed
 * messages of src/common/frame.h: READY once ({"version", "sandbox":
 * {layer: state}}), then for each RUN ({"id", "attempt", "spec":
 * {normalized job spec}}) it runs one job in a fresh child process, passes
 * its live PROGRESS, LOG and OUTPUT on, and ends with OUTPUT_ALL, RESULT (a
 * success's result, validated, as bytes) and DONE ({"status", "error"?,
 * "usage": {"wall_ms", "cpu_ms", "max_rss_kb"}}). A CANCEL kills the
 * running job. */
#ifndef STRATQ_EXECUTOR_H
#define STRATQ_EXECUTOR_H

#define EXECUTOR_FD 3

/* The executor program's work once its arguments are checked: argv holds
 * the flags only. Returns the process exit code. */
int executor_main(int argc, char **argv);

#endif

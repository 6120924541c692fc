/* The environment report of `stratq monitor --env-file` (monitor_env.c),
 * which scripts/monitor-workers.sh asks for, as monitor.c starts it. */
#ifndef STRATQ_MONITOR_H
#define STRATQ_MONITOR_H

#include <stdbool.h>

/* stratq monitor --env-file PATH: one environment report per line of
 * PATH (a JSON object of the environment's figures; "-" is stdin), until
 * its end, or one with once. Returns the exit code: with once, 1 when a
 * source could not be read; 2 for input that is not a JSON object. */
int monitor_env(const char *path, bool once, bool json_out, int window, int jobs);

#endif

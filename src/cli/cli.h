/* The command-line client: talks to the API over HTTP (libcurl), never to
 * Redis. Human output by default, --json for scripts. */
#ifndef STRATQ_CLI_H
#define STRATQ_CLI_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

int cli_submit(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_result(int argc, char **argv);
int cli_queue(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_retry(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_workers(int argc, char **argv);
int cli_jobs(int argc, char **argv);
int cli_pause(int argc, char **argv);
int cli_resume(int argc, char **argv);
int cli_tenants(int argc, char **argv);
/* stratq monitor (monitor.c): a full-screen view of the queue and workers. */
int cli_monitor(int argc, char **argv);
/* stratq schedule (schedule.c): recurring jobs. */
int cli_schedule(int argc, char **argv);

/* Helpers shared by the client commands (cli.c). */

/* When set and non-zero, a request in flight is aborted (the monitor's
 * SIGINT/SIGTERM handler sets it); requests then also time out after 10 s. */
extern volatile sig_atomic_t *cli_abort;
/* When set, what an unreachable API's message suggests instead of setting
 * STRATQ_API_URL (monitor-workers.sh knows how its environment runs it). */
extern const char *cli_api_hint;
/* The URL of path on the API (STRATQ_API_URL, --api-url). */
void cli_url(const char *path, char *buf, size_t len);
/* The Authorization header for STRATQ_API_TOKEN, or NULL when it is
 * unset: 0, or -EINVAL for a token with a control character (said on
 * stderr). Caller frees. */
int cli_auth_header(char **ret_hdr);
/* GET path from the API; CLI_OK with its JSON object on 200, else
 * CLI_API_ERROR with a message in err (naming STRATQ_API_URL when it cannot
 * be reached). */
int cli_get_json(const char *path, json_t **ret_json, char *err, size_t errlen);
/* A number field given as a JSON integer, real or numeric string. */
bool cli_field_num(const json_t *o, const char *k, long long *ret);
/* The Python source of file as valid UTF-8 into *ret (NULL when memory
 * ran out; caller frees): 0, or -1 (said on stderr) when it cannot be
 * read. */
int cli_read_source(const char *file, char **ret);
/* Human duration: "850ms", "4.2s", "3m07s", "2h05m", "3d04h". */
void cli_fmt_duration(long long ms, char *buf, size_t n);
/* Columns of the terminal on fd (80 when unknown). */
int cli_term_cols(int fd);
/* "[#####-----] 50% message": width cells of bar. */
void cli_progress_bar(double fraction, const char *message, int width, char *buf, size_t len);

/* Frees what the client commands keep until exit. */
void cli_free(void);

/* Exit codes of the client commands. */
enum {
    CLI_OK = 0,
    CLI_JOB_FAILED = 1, /* the job ended in a status other than succeeded */
    CLI_USAGE = 2,
    CLI_API_ERROR = 3,    /* the API refused the request or could not be reached */
    CLI_NOT_FINISHED = 4, /* `result` without --wait on a job still queued or running */
};

#endif

/* The command-line client: talks to the API over HTTP (libcurl), never to
 * Redis. Human output by default, --json for scripts. */
#ifndef STRATQ_CLI_H
#define STRATQ_CLI_H

int cli_submit(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_result(int argc, char **argv);
int cli_queue(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_retry(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_workers(int argc, char **argv);
int cli_jobs(int argc, char **argv);

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

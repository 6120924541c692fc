/* stratq: one program, one subcommand per component (docs/architecture.md);
 * the executor, the one process that embeds CPython, is a program of its
 * own (stratq-executor, src/executor_main.c). */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/up.h"
#include "common/util.h"
#include "worker/worker.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    int needs_curl;
    const char *help;
} commands[] = {
    {"api", api_main, 0, "run the HTTP API"},
    {"worker", worker_main, 0, "run a worker: take jobs from the queue and run them"},
    {"up", up_main, 0, "run redis-server, the API and workers on this machine"},
    {"submit", cli_submit, 1, "submit a strategy file as a job"},
    {"status", cli_status, 1, "show a job's status"},
    {"result", cli_result, 1, "show a finished job's result (--wait: wait for it)"},
    {"queue", cli_queue, 1, "show the queue's counts"},
    {"pause", cli_pause, 1, "pause the queue, or one tenant (--tenant)"},
    {"resume", cli_resume, 1, "resume the queue, or one tenant (--tenant)"},
    {"tenants", cli_tenants, 1, "list the tenants: waiting, running, weight, cap, paused"},
    {"jobs", cli_jobs, 1, "list recent jobs, newest first"},
    {"workers", cli_workers, 1, "list the workers and what they are doing"},
    {"logs", cli_logs, 1, "print a job's stdout and stderr (-f: follow)"},
    {"cancel", cli_cancel, 1, "cancel a queued or running job"},
    {"retry", cli_retry, 1, "run a finished, unsuccessful job again"},
    {"monitor", cli_monitor, 1, "watch the queue, job times and workers, with scaling advice"},
    {"schedule", cli_schedule, 1, "recurring jobs: add, list, show, rm, pause, resume"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: stratq COMMAND [options]   (stratq COMMAND --help for its options)\n\n"
               "Runs Python trading strategies as jobs from a Redis queue.\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (commands[i].help)
            fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("stratq %s\n", STRATQ_VERSION);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (commands[i].needs_curl)
            curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = commands[i].fn(argc - 2, argv + 2);
        if (commands[i].needs_curl) {
            cli_free();
            curl_global_cleanup();
        }
        return rc;
    }
    fprintf(stderr, "stratq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* stratq-executor: the executor program (src/worker/executor.c), started by
 * `stratq worker` only (src/worker/launch.c). It is a program of its own so
 * that the process that embeds CPython is the only one that links
 * libpython (docs/architecture.md, "Only what a process needs"). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "common/util.h"
#include "worker/executor.h"
#include "worker/launch.h"

int main(int argc, char **argv)
{
    /* What `stratq worker --check` runs: it proves that the loader finds
     * every library this program needs, libpython among them. */
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("%s %s\n", LAUNCH_EXECUTOR_NAME, STRATQ_VERSION);
        return 0;
    }
    struct stat st;
    if (fstat(EXECUTOR_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr,
                "%s: this program is started by `stratq worker`, with its socket on fd %d; "
                "run `stratq worker` (its --help lists the executor's settings)\n",
                LAUNCH_EXECUTOR_NAME, EXECUTOR_FD);
        return 2;
    }
    /* Started through its descriptor (fexecve), its name would be that
     * descriptor's number: ps, top and the tests look for this one. */
    prctl(PR_SET_NAME, LAUNCH_EXECUTOR_NAME);
    return executor_main(argc - 1, argv + 1);
}

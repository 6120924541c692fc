/* `make bench-sandbox`: what the sandbox costs a job child, in µs.
 *
 * Forks N children that enter the sandbox and exit at once, and times the
 * whole round trip from the executor's side (sandbox_job_begin,
 * sandbox_job_dir, sandbox_before_fork, fork, the child's sandbox_enter,
 * waitpid, sandbox_job_end, sandbox_job_dir_release), against the
 * baseline of
 * a bare fork + exit + waitpid, in the same run. Configurations: the
 * always-on layers only (as in an unprivileged pod), then every layer this
 * host allows. Run as root to see the optional layers. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/sandbox.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The job's own directory, as the executor makes one per job. */
static char work[] = "/tmp/stratq-bench-XXXXXX";

/* Median µs of n rounds; sandboxed chooses the sandboxed child, and
 * tmpfs whether the job's directory gets a tmpfs of its own (where the
 * mount namespace is). */
static double run(int n, int sandboxed, int tmpfs)
{
    double *t = calloc((size_t)n, sizeof(double)), med;
    for (int i = 0; i < n; i++) {
        struct sandbox_job sj;
        double t0 = now_us();
        if (sandboxed && sandbox_job_begin(&sj) < 0) {
            fprintf(stderr, "sandbox_job_begin failed\n");
            exit(1);
        }
        if (sandboxed) {
            snprintf(sj.dir, sizeof(sj.dir), "%s", work);
            sj.dir_mounted = false;
            if (tmpfs && sandbox_job_dir(&sj) < 0) {
                fprintf(stderr, "sandbox_job_dir failed\n");
                exit(1);
            }
            sandbox_job_memory(&sj, 256);
        }
        if (sandboxed && sandbox_before_fork() < 0) {
            fprintf(stderr, "sandbox_before_fork failed\n");
            exit(1);
        }
        pid_t pid = fork();
        if (pid == 0)
            _exit(sandboxed && sandbox_enter(&sj) < 0 ? 1 : 0);
        int st;
        waitpid(pid, &st, 0);
        if (sandboxed) {
            sandbox_job_end(&sj);
            sandbox_job_dir_release(&sj);
        }
        t[i] = now_us() - t0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "a sandboxed child failed to enter the sandbox\n");
            exit(1);
        }
    }
    qsort(t, (size_t)n, sizeof(double), cmp);
    med = t[n / 2];
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    const char *harness = argc > 2 ? argv[2] : "python";
    char err[256];
    if (!mkdtemp(work))
        return 1;
    static const char *const configs[][2] = {
        {"always-on layers only", "namespaces,cgroup,uid"},
        {"every layer this host allows", ""},
    };
    printf("%-40s %10s %10s %10s  %s\n", "configuration", "bare fork", "sandboxed", "cost",
           "layers active");
    for (size_t c = 0; c < 2; c++) {
        struct sandbox_status st;
        struct sandbox_options opt = {.disable = configs[c][1], .cgroup = "", .max_procs = 64};
        if (sandbox_probe(&st, &opt, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (sandbox_prepare(harness, NULL, "") < 0) {
            fprintf(stderr, "sandbox_prepare failed\n");
            return 1;
        }
        /* Once per executor, not per job (the executor's namespaces). */
        if (sandbox_executor_enter() < 0) {
            fprintf(stderr, "sandbox_executor_enter failed\n");
            return 1;
        }
        char active[256] = "";
        for (int i = 0; i < SB__COUNT; i++)
            if (st.active[i])
                snprintf(active + strlen(active), sizeof(active) - strlen(active), "%s%s",
                         active[0] ? "," : "", sandbox_layer_name(i));
        run(20, 1, 1); /* warm-up */
        double bare = run(n, 0, 0), sb = run(n, 1, 1);
        printf("%-40s %8.0f µs %8.0f µs %8.0f µs  %s\n", configs[c][0], bare, sb, sb - bare,
               active);
        if (st.active[SB_MOUNTNS]) { /* what the job's own tmpfs adds */
            double without = run(n, 1, 0);
            printf("%-40s %8.0f µs %8.0f µs %8.0f µs  (the same, minus the tmpfs: %.0f µs)\n",
                   "  the same without the job's tmpfs", bare, without, without - bare,
                   sb - without);
        }
        cgroup_fini();
    }
    rmdir(work);
    return 0;
}

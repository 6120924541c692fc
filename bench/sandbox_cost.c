/* `make bench-sandbox`: what the sandbox costs a job child, in µs.
 *
 * Forks N children that enter the sandbox and exit at once, and times the
 * whole round trip from the executor's side (sandbox_job_begin,
 * sandbox_job_dir, sandbox_before_fork, fork, the child's sandbox_enter,
 * waitpid, sandbox_job_end, sandbox_job_dir_release), against the
 * baseline of
 * a bare fork + exit + waitpid, in the same run. Configurations: the
 * always-on layers only (as in an unprivileged pod), then every layer this
 * host allows, each with the median of every step of its round (the
 * medians of the steps need not add up to the round's). Run as root to
 * see the optional layers. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* The steps of one sandboxed round, in order, each timed on its own:
 * the executor's, then the child's sandbox_enter (timed by the child
 * itself, inside the fork-to-wait step). */
enum step { ST_BEGIN, ST_DIR, ST_PREFORK, ST_FORK, ST_ENTER, ST_END, ST_RELEASE, ST__COUNT };
static const char *const step_names[ST__COUNT] = {
    [ST_BEGIN] = "sandbox_job_begin (cgroup, /dev/shm size)",
    [ST_DIR] = "sandbox_job_dir (the job's tmpfs) + memory",
    [ST_PREFORK] = "sandbox_before_fork",
    [ST_FORK] = "fork + exit + waitpid (enter inside)",
    [ST_ENTER] = "  the child's sandbox_enter",
    [ST_END] = "sandbox_job_end (what filled)",
    [ST_RELEASE] = "sandbox_job_dir_release (unmount)",
};

/* The child's sandbox_enter time, written where the parent reads it. */
static double *child_us;

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), cmp);
    return t[n / 2];
}

static void fail(const char *what)
{
    fprintf(stderr, "%s failed\n", what);
    exit(1);
}

/* Median µs of n rounds; sandboxed chooses the sandboxed child, and
 * tmpfs whether the job's directory gets a tmpfs of its own (where the
 * mount namespace is). steps (may be NULL): each step's median. */
static double run(int n, int sandboxed, int tmpfs, double *steps)
{
    double *t = calloc((size_t)n * (ST__COUNT + 1), sizeof(double)), med;
    double *st_t = t + n; /* [step * n + i] */
    if (!t)
        fail("calloc");
    for (int i = 0; i < n; i++) {
        struct sandbox_job sj;
        double mark[ST__COUNT + 1];
        mark[0] = now_us();
        if (sandboxed && sandbox_job_begin(&sj) < 0)
            fail("sandbox_job_begin");
        mark[1] = now_us();
        if (sandboxed) {
            snprintf(sj.dir, sizeof(sj.dir), "%s", work);
            sj.dir_mounted = false;
            if (tmpfs && sandbox_job_dir(&sj) < 0)
                fail("sandbox_job_dir");
            sandbox_job_memory(&sj, 256);
        }
        mark[2] = now_us();
        if (sandboxed && sandbox_before_fork() < 0)
            fail("sandbox_before_fork");
        mark[3] = now_us();
        *child_us = 0;
        pid_t pid = fork();
        if (pid == 0) {
            double c0 = now_us();
            int rc = sandboxed && sandbox_enter(&sj) < 0 ? 1 : 0;
            *child_us = now_us() - c0;
            _exit(rc);
        }
        int st;
        waitpid(pid, &st, 0);
        mark[4] = now_us();
        if (sandboxed)
            sandbox_job_end(&sj);
        mark[5] = now_us();
        if (sandboxed)
            sandbox_job_dir_release(&sj);
        mark[6] = now_us();
        t[i] = mark[6] - mark[0];
        static const int from[ST__COUNT] = {0, 1, 2, 3, -1, 4, 5};
        for (int s = 0; s < ST__COUNT; s++)
            st_t[s * n + i] = s == ST_ENTER ? *child_us : mark[from[s] + 1] - mark[from[s]];
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("a sandboxed child's sandbox_enter");
    }
    for (int s = 0; steps && s < ST__COUNT; s++)
        steps[s] = median(st_t + s * n, n);
    med = median(t, n);
    free(t);
    return med;
}

/* Each step's median next to the bare round's fork + exit + waitpid. */
static void print_steps(const double *bare, const double *sb)
{
    for (int s = 0; s < ST__COUNT; s++) {
        if (s == ST_FORK)
            printf("    %-44s %8.0f µs  (bare: %.0f µs, so %+.0f µs)\n", step_names[s], sb[s],
                   bare[s], sb[s] - bare[s]);
        else
            printf("    %-44s %8.0f µs\n", step_names[s], sb[s]);
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    const char *harness = argc > 2 ? argv[2] : "python";
    char err[256];
    if (!mkdtemp(work))
        return 1;
    child_us =
        mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (child_us == MAP_FAILED)
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
        run(20, 1, 1, NULL); /* warm-up */
        double bare_steps[ST__COUNT], sb_steps[ST__COUNT];
        double bare = run(n, 0, 0, bare_steps), sb = run(n, 1, 1, sb_steps);
        printf("%-40s %8.0f µs %8.0f µs %8.0f µs  %s\n", configs[c][0], bare, sb, sb - bare,
               active);
        print_steps(bare_steps, sb_steps);
        if (st.active[SB_MOUNTNS]) { /* what the job's own tmpfs adds */
            double without = run(n, 1, 0, NULL);
            printf("%-40s %8.0f µs %8.0f µs %8.0f µs  (the same, minus the tmpfs: %.0f µs)\n",
                   "  the same without the job's tmpfs", bare, without, without - bare,
                   sb - without);
        }
        cgroup_fini();
    }
    rmdir(work);
    return 0;
}

/* Unit tests for src/cli/ptree.c: the sums over a process and its
 * descendants on snapshots made up here (loops and reused pids included),
 * then on /proc itself, with a real tree of processes forked by the test:
 * a "stratq" parent, a child with a command name made to confuse a parser
 * of /proc/PID/stat, and a child started between two snapshots that burns
 * CPU time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/ptree.h"
#include "common/util.h"

/* A snapshot made up: pid, ppid, ticks, RSS pages, sorted by pid. */
static struct ptree_proc made_up[] = {
    {1, 0, 1000, 100}, {10, 1, 100, 10}, /* 10 -> 11 -> 12: a worker, its executor, a job */
    {11, 10, 50, 20},  {12, 11, 7, 40},  {20, 1, 900, 1000}, /* a sibling */
    {30, 31, 5, 1}, /* 30 <-> 31: a loop, as a snapshot taken while */
    {31, 30, 5, 2}, /* pids were reused could hold */
    {40, 40, 3, 4}, /* its own parent */
};

static void test_rss_sums_a_process_and_its_descendants(void **state)
{
    (void)state;
    const struct ptree t = {made_up, ARRAY_SIZE(made_up)};
    const long long page = sysconf(_SC_PAGESIZE);
    assert_int_equal(ptree_rss_bytes(&t, 10), 70 * page);
    assert_int_equal(ptree_rss_bytes(&t, 11), 60 * page);
    assert_int_equal(ptree_rss_bytes(&t, 12), 40 * page);
    assert_int_equal(ptree_rss_bytes(&t, 20), 1000 * page);
    assert_int_equal(ptree_rss_bytes(&t, 1), (100 + 70 + 1000) * page);
    /* A loop or a self-parent ends the walk up; it does not hang it. */
    assert_int_equal(ptree_rss_bytes(&t, 30), 3 * page);
    assert_int_equal(ptree_rss_bytes(&t, 40), 4 * page);
    assert_int_equal(ptree_rss_bytes(&t, 99), -1);
    const struct ptree empty = {0};
    assert_int_equal(ptree_rss_bytes(&empty, 1), -1);
}

static void test_cpu_counts_what_the_tree_spent_between_snapshots(void **state)
{
    (void)state;
    struct ptree_proc before_p[] = {
        {1, 0, 1000, 1}, {10, 1, 100, 1}, {11, 10, 50, 1}, {13, 10, 500, 1}, {20, 1, 900, 1}};
    struct ptree_proc after_p[] = {
        {1, 0, 1500, 1},  {10, 1, 130, 1}, /* 30 ticks more */
        {11, 10, 50, 1},                   /* none */
        {12, 11, 20, 1},                   /* started in between: all 20 */
        {13, 10, 4, 1},                    /* a new process on a reused pid: its count went down */
        {20, 1, 2000, 1},                  /* not in 10's tree */
    };
    const struct ptree before = {before_p, ARRAY_SIZE(before_p)};
    const struct ptree after = {after_p, ARRAY_SIZE(after_p)};
    const double hz = (double)sysconf(_SC_CLK_TCK);
    assert_float_equal(ptree_cpu_seconds(&before, &after, 10), 50 / hz, 1e-9);
    assert_float_equal(ptree_cpu_seconds(&before, &after, 12), 20 / hz, 1e-9);
    assert_float_equal(ptree_cpu_seconds(&before, &after, 1), (500 + 50 + 1100) / hz, 1e-9);
    /* Not in after: -1. Not in before: counted from 0. */
    assert_float_equal(ptree_cpu_seconds(&after, &before, 12), -1, 0);
    const struct ptree none = {0};
    assert_float_equal(ptree_cpu_seconds(&none, &after, 10), (130 + 50 + 20 + 4) / hz, 1e-9);
}

/* The real tree: the test's child A (comm "stratq-ptree"), which forks B
 * (comm "x) 1 2 (y", spaces and parentheses as a job may name itself) and,
 * when asked, C, which burns CPU_MS of CPU time. Each reports its pid on
 * the report pipe; C reports again once it has burned its time. */
#define B_TOUCHED (32 << 20)
#define CPU_MS 300
#define WAIT_MS 10000

struct family {
    pid_t a, b, c;
    int ask;    /* write end: a byte asks A to fork C */
    int report; /* read end */
};

static void write_pid(int fd)
{
    pid_t self = getpid();
    if (write(fd, &self, sizeof(self)) != sizeof(self))
        _exit(1);
}

static void burn(long ms)
{
    struct timespec ts;
    do
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    while (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < ms);
}

static void run_a(int ask, int report)
{
    prctl(PR_SET_NAME, "stratq-ptree");
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (fork() == 0) {
        prctl(PR_SET_NAME, "x) 1 2 (y");
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char *mem =
            mmap(NULL, B_TOUCHED, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            _exit(1);
        memset(mem, 1, B_TOUCHED);
        write_pid(report);
        for (;;)
            pause();
    }
    write_pid(report);
    char byte;
    while (read(ask, &byte, 1) == 1) {
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            write_pid(report);
            burn(CPU_MS);
            write_pid(report);
            for (;;)
                pause();
        }
    }
    _exit(0);
}

/* The next pid reported, within WAIT_MS. */
static pid_t reported(const struct family *f)
{
    struct pollfd p = {f->report, POLLIN, 0};
    pid_t pid = 0;
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    assert_int_equal(read(f->report, &pid, sizeof(pid)), sizeof(pid));
    return pid;
}

static int family_start(void **state)
{
    struct family *f = calloc(1, sizeof(*f));
    int ask[2], report[2];
    if (!f || pipe2(ask, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0)
        return -1;
    f->a = fork();
    if (f->a < 0)
        return -1;
    if (f->a == 0) {
        close(ask[1]);
        close(report[0]);
        run_a(ask[0], report[1]);
    }
    close(ask[0]);
    close(report[1]);
    f->ask = ask[1];
    f->report = report[0];
    *state = f;
    return 0;
}

/* A's end kills B and C (their parent-death signal). */
static void stop_a(struct family *f)
{
    if (f->a > 0) {
        kill(f->a, SIGKILL);
        waitpid(f->a, NULL, 0);
        f->a = -1;
    }
}

static int family_stop(void **state)
{
    struct family *f = *state;
    stop_a(f);
    close(f->ask);
    close(f->report);
    free(f);
    return 0;
}

static const struct ptree_proc *proc(const struct ptree *t, pid_t pid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->procs[i].pid == pid)
            return &t->procs[i];
    return NULL;
}

static void test_a_real_tree(void **state)
{
    struct family *f = *state;
    /* A reports after forking B, B after touching its memory. */
    pid_t first = reported(f), second = reported(f);
    f->b = first == f->a ? second : first;
    assert_true((first == f->a) != (second == f->a));

    struct ptree t1, t2;
    assert_int_equal(ptree_read(&t1), 0);
    for (size_t i = 1; i < t1.n; i++)
        assert_true(t1.procs[i - 1].pid < t1.procs[i].pid);
    const struct ptree_proc *a = proc(&t1, f->a), *b = proc(&t1, f->b);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->ppid, getpid());
    assert_int_equal(b->ppid, f->a); /* read past the ')' in B's name */
    assert_non_null(proc(&t1, getpid()));

    const long long b_rss = ptree_rss_bytes(&t1, f->b);
    assert_true(b_rss >= B_TOUCHED);
    assert_int_equal(ptree_rss_bytes(&t1, f->a),
                     b_rss + a->rss_pages * (long long)sysconf(_SC_PAGESIZE));
    assert_true(ptree_rss_bytes(&t1, getpid()) > ptree_rss_bytes(&t1, f->a));

    assert_true(ptree_is_stratq(&t1, f->a));
    assert_false(ptree_is_stratq(&t1, f->b));
    assert_false(ptree_is_stratq(&t1, getpid()));
    assert_false(ptree_is_stratq(&t1, -1));

    /* C starts after t1 and burns CPU_MS: A's tree spent at least that
     * much between the snapshots, B's nothing to speak of. */
    assert_int_equal(write(f->ask, "c", 1), 1);
    f->c = reported(f);
    assert_int_equal(reported(f), f->c);
    assert_int_equal(ptree_read(&t2), 0);
    assert_null(proc(&t1, f->c));
    assert_non_null(proc(&t2, f->c));
    assert_int_equal(proc(&t2, f->c)->ppid, f->a);
    const double a_cpu = ptree_cpu_seconds(&t1, &t2, f->a);
    assert_true(a_cpu >= CPU_MS / 1000.0 - 0.02);
    assert_true(ptree_cpu_seconds(&t1, &t2, f->c) >= CPU_MS / 1000.0 - 0.02);
    assert_true(ptree_cpu_seconds(&t1, &t2, f->b) < 0.1);
    assert_true(ptree_cpu_seconds(&t1, &t2, getpid()) >= a_cpu);

    /* Gone from a later snapshot: -1, and not a stratq process. */
    const pid_t gone = f->a;
    stop_a(f);
    struct ptree t3;
    assert_int_equal(ptree_read(&t3), 0);
    assert_int_equal(ptree_rss_bytes(&t3, gone), -1);
    assert_float_equal(ptree_cpu_seconds(&t2, &t3, gone), -1, 0);
    assert_false(ptree_is_stratq(&t3, gone));
    ptree_free(&t1);
    ptree_free(&t2);
    ptree_free(&t3);
    assert_null(t3.procs);
    assert_int_equal(t3.n, 0);
}

int main(void)
{
    /* A test that waits past this has failed. */
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_sums_a_process_and_its_descendants),
        cmocka_unit_test(test_cpu_counts_what_the_tree_spent_between_snapshots),
        cmocka_unit_test_setup_teardown(test_a_real_tree, family_start, family_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/worker/warm.c: the embedded interpreter of a warm
 * executor, with a harness written here (a stratq/_harness.py that
 * reports what a job would see) in place of the real one.
 *
 * An interpreter is started once per process, so each test runs its
 * executor in a child process of its own (the "executor" below): it calls
 * warm_init(), then for each command forks a job with warm_fork() whose
 * request (fd 3) is that command and whose outcome (fd 4) is the report
 * pipe, and reports how each job ended. The test reads the report pipe to
 * its end, and the executor's stderr (its log lines, the jobs' tracebacks). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "worker/warm.h"
#include "unit.h"

#define WAIT_MS 30000

/* The job's side: the command on fd 3 says what to do; "report" writes
 * what the job sees as one JSON line on fd 4. It imports no module that
 * the tests preload. */
static const char HARNESS[] =
    "import gc, os, random, signal, sys\n"
    "forked = []\n"
    "os.register_at_fork(after_in_child=lambda: forked.append(os.getpid()))\n"
    "def b(v):\n"
    "    return 'true' if v else 'false'\n"
    "def importable(name):\n"
    "    try:\n"
    "        __import__(name)\n"
    "        return True\n"
    "    except ImportError:\n"
    "        return False\n"
    "def main(mode):\n"
    "    what = os.read(3, 100).decode()\n"
    "    if what == 'raise':\n"
    "        raise ValueError('job failed')\n"
    "    if what == 'return':\n"
    "        return\n"
    "    line = ('{\"mode\": \"%s\", \"path0\": \"%s\", \"csv\": %s, \"fractions\": %s, '\n"
    "            '\"random\": %r, \"frozen\": %d, \"at_fork\": %s, \"decoy\": %s, '\n"
    "            '\"isolated\": %d, \"dont_write_bytecode\": %s}\\n') % (\n"
    "        mode, sys.path[0], b('csv' in sys.modules), b('fractions' in sys.modules),\n"
    "        random.random(), gc.get_freeze_count(), b(forked == [os.getpid()]),\n"
    "        b(importable('decoy')), sys.flags.isolated, b(sys.dont_write_bytecode))\n"
    "    os.write(4, line.encode())\n"
    "    os._exit(0)\n";

struct dirs {
    char root[64];
    char harness[128]; /* root/harness: holds stratq/_harness.py */
    char decoy[128];   /* root/decoy: on PYTHONPATH, which must not count */
};

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static int dirs_setup(void **state)
{
    struct dirs *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    snprintf(d->root, sizeof(d->root), "/tmp/stratq-warm-XXXXXX");
    if (!mkdtemp(d->root))
        return -1;
    snprintf(d->harness, sizeof(d->harness), "%s/harness", d->root);
    snprintf(d->decoy, sizeof(d->decoy), "%s/decoy", d->root);
    char pkg[160];
    snprintf(pkg, sizeof(pkg), "%s/stratq", d->harness);
    if (mkdir(d->harness, 0755) < 0 || mkdir(pkg, 0755) < 0 || mkdir(d->decoy, 0755) < 0)
        return -1;
    write_file(pkg, "__init__.py", "");
    write_file(pkg, "_harness.py", HARNESS);
    write_file(d->decoy, "decoy.py", "");
    *state = d;
    return 0;
}

static int dirs_teardown(void **state)
{
    struct dirs *d = *state;
    int r = unit_rm_rf(d->root);
    free(d);
    return r;
}

static const char *disposition(int sig)
{
    struct sigaction sa;
    sigaction(sig, NULL, &sa);
    return sa.sa_handler == SIG_DFL ? "default" : sa.sa_handler == SIG_IGN ? "ignored" : "handled";
}

/* The executor's process: see the comment at the top. Never returns. */
static void executor(int report, const struct dirs *d, const char *harness, const char *preload,
                     const char *const *commands)
{
    char err[512];
    report = fcntl(report, F_DUPFD_CLOEXEC, 20);
    setenv("PYTHONPATH", d->decoy, 1);
    /* The executor ignores SIGINT (executor_process_setup); SIGPIPE and
     * SIGXFSZ are left as they are, which Python would ignore. */
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    if (warm_init(harness, preload, err, sizeof(err)) < 0) {
        dprintf(report, "init failed: %s\n", err);
        _exit(0);
    }
    /* They are the executor's still, though the harness imports signal. */
    dprintf(report, "SIGINT %s, SIGPIPE %s, SIGXFSZ %s\n", disposition(SIGINT),
            disposition(SIGPIPE), disposition(SIGXFSZ));
    for (size_t i = 0; commands[i]; i++) {
        int req[2], status;
        if (pipe(req) < 0 || write(req[1], commands[i], strlen(commands[i])) < 0)
            _exit(1);
        close(req[1]);
        pid_t pid = warm_fork();
        if (pid == 0) {
            if (dup2(req[0], 3) < 0 || dup2(report, 4) < 0)
                _exit(1);
            warm_child_run();
        }
        close(req[0]);
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            _exit(1);
        dprintf(report, "exit %d\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    _exit(0);
}

/* Reads fd to its end within the deadline; caller frees. */
static char *read_all(int fd, int64_t deadline)
{
    char *buf = malloc(65536);
    assert_non_null(buf);
    unit_read_to_end(fd, buf, 65536, deadline);
    return buf;
}

struct run {
    char *report; /* its lines */
    char *stderr_text;
};

/* Runs an executor with harness_dir and preload, and its jobs with
 * commands (NULL-terminated). */
static struct run run_executor(const struct dirs *d, const char *harness, const char *preload,
                               const char *const *commands)
{
    int rep[2], err[2];
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        close(err[0]);
        if (dup2(err[1], 2) < 0)
            _exit(1);
        executor(rep[1], d, harness, preload, commands);
    }
    close(rep[1]);
    close(err[1]);
    const int64_t deadline = util_mono_ms() + WAIT_MS;
    struct run r = {read_all(rep[0], deadline), read_all(err[0], deadline)};
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(rep[0]);
    close(err[0]);
    return r;
}

static void run_free(struct run *r)
{
    free(r->report);
    free(r->stderr_text);
}

static void test_init_fails_without_a_harness(void **state)
{
    const struct dirs *d = *state;
    const char *none[] = {NULL};
    /* The decoy directory has no stratq package. */
    struct run r = run_executor(d, d->decoy, "", none);
    assert_string_equal(r.report, "init failed: ModuleNotFoundError: No module named 'stratq'\n");
    run_free(&r);

    /* One that fails as it is imported: its exception. */
    char pkg[160];
    snprintf(pkg, sizeof(pkg), "%s/stratq", d->harness);
    write_file(pkg, "_harness.py", "raise RuntimeError('harness broken')\n");
    r = run_executor(d, d->harness, "", none);
    assert_string_equal(r.report, "init failed: RuntimeError: harness broken\n");
    run_free(&r);
}

/* The "report" line of a job, parsed; caller frees. */
static json_t *job_report(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j)
        fail_msg("not a job's report: %s (%s)", line, e.text);
    return j;
}

/* Cuts text into its lines (at most max, each without its '\n'):
 * their number. */
static size_t lines(char *text, char **ret, size_t max)
{
    size_t n = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save))
        ret[n++] = l;
    return n;
}

static void test_jobs_fork_from_the_warm_interpreter(void **state)
{
    const struct dirs *d = *state;
    const char *twice[] = {"report", "report", NULL};
    struct run r = run_executor(d, d->harness, "csv, no_such_module_xyz, fractions", twice);

    /* SIGINT, SIGPIPE, then each job's report and its exit. */
    char *l[6];
    assert_int_equal(lines(r.report, l, 6), 5);
    assert_string_equal(l[0], "SIGINT ignored, SIGPIPE default, SIGXFSZ default");
    assert_string_equal(l[2], "exit 0");
    assert_string_equal(l[4], "exit 0");
    const char *line1 = l[1], *line2 = l[3];
    json_t *j1 = job_report(line1), *j2 = job_report(line2);
    for (json_t *j = j1; j; j = j == j1 ? j2 : NULL) {
        assert_string_equal(json_string_value(json_object_get(j, "mode")), "warm");
        assert_string_equal(json_string_value(json_object_get(j, "path0")), d->harness);
        /* Preloaded before the fork; the module that does not exist
         * skipped, with a warning. */
        assert_true(json_is_true(json_object_get(j, "csv")));
        assert_true(json_is_true(json_object_get(j, "fractions")));
        /* gc.freeze() ran; the at-fork hooks ran in the child. */
        assert_true(json_integer_value(json_object_get(j, "frozen")) > 0);
        assert_true(json_is_true(json_object_get(j, "at_fork")));
        /* Isolated: PYTHONPATH does not count, and no bytecode is
         * written beside the harness. */
        assert_true(json_is_false(json_object_get(j, "decoy")));
        assert_int_equal(json_integer_value(json_object_get(j, "isolated")), 1);
        assert_true(json_is_true(json_object_get(j, "dont_write_bytecode")));
    }
    /* The random module reseeds itself in each child. */
    assert_true(json_real_value(json_object_get(j1, "random")) !=
                json_real_value(json_object_get(j2, "random")));
    json_decref(j1);
    json_decref(j2);
    char cache[200];
    snprintf(cache, sizeof(cache), "%s/stratq/__pycache__", d->harness);
    assert_int_equal(access(cache, F_OK), -1);
    assert_non_null(strstr(r.stderr_text, "a preload module would not import"));
    assert_non_null(strstr(r.stderr_text, "no_such_module_xyz"));
    assert_null(strstr(r.stderr_text, "\"csv\""));
    run_free(&r);

    /* Without the preloads, the jobs do not have them. */
    const char *once[] = {"report", NULL};
    r = run_executor(d, d->harness, "", once);
    assert_int_equal(lines(r.report, l, 6), 3);
    json_t *j = job_report(l[1]);
    assert_true(json_is_false(json_object_get(j, "csv")));
    assert_true(json_is_false(json_object_get(j, "fractions")));
    json_decref(j);
    run_free(&r);
}

/* The harness's main() ends the process itself; a job whose main() raised
 * or returned ends with 125, the traceback on stderr. */
static void test_a_harness_that_does_not_end_the_job(void **state)
{
    const struct dirs *d = *state;
    const char *commands[] = {"raise", "return", NULL};
    struct run r = run_executor(d, d->harness, "", commands);
    assert_string_equal(r.report,
                        "SIGINT ignored, SIGPIPE default, SIGXFSZ default\nexit 125\nexit 125\n");
    assert_non_null(strstr(r.stderr_text, "Traceback"));
    assert_non_null(strstr(r.stderr_text, "ValueError: job failed"));
    run_free(&r);
}

int main(void)
{
    /* A test that waits past this has failed. */
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_fails_without_a_harness, dirs_setup,
                                        dirs_teardown),
        cmocka_unit_test_setup_teardown(test_jobs_fork_from_the_warm_interpreter, dirs_setup,
                                        dirs_teardown),
        cmocka_unit_test_setup_teardown(test_a_harness_that_does_not_end_the_job, dirs_setup,
                                        dirs_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

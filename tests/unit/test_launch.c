/* Unit tests for src/worker/launch.c: the executor's environment, finding
 * and opening the program beside this one, starting it, and `stratq worker
 * --check`'s verdicts.
 *
 * The executor these tests start is this test program itself, linked as
 * stratq-executor beside it (launch_open looks beside the running
 * program): started under that name it plays an executor (fake_executor
 * below) and reports what it was given. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "common/config.h"
#include "common/util.h"
#include "worker/executor.h"
#include "worker/launch.h"
#include "unit.h"

extern char **environ;

/* What the fake executor does with --version: the content of this file
 * beside it ("ok" when there is none). */
#define SAYS LAUNCH_EXECUTOR_NAME ".says"
#define WAIT_MS 10000

static void fake_version(void) __attribute__((noreturn));
static void fake_version(void)
{
    _cleanup_free_ char *dir = util_exe_dir();
    char path[PATH_MAX], says[32] = "ok";
    snprintf(path, sizeof(path), "%s/" SAYS, dir);
    FILE *f = fopen(path, "re");
    if (f) {
        if (!fgets(says, sizeof(says), f))
            says[0] = '\0';
        fclose(f);
    }
    if (!strcmp(says, "other"))
        printf("%s 0.0.9\n", LAUNCH_EXECUTOR_NAME);
    else if (!strcmp(says, "loader")) {
        fprintf(stderr,
                "%s: error while loading shared libraries: libpython3.11.so.1.0: cannot "
                "open shared object file: No such file or directory\n",
                LAUNCH_EXECUTOR_NAME);
        _exit(127);
    } else if (!strcmp(says, "killed"))
        raise(SIGKILL);
    else
        printf("%s %s\n", LAUNCH_EXECUTOR_NAME, STRATQ_VERSION);
    fflush(stdout);
    _exit(0);
}

/* Started as an executor: reports on its socket (fd 3) how the executor's
 * own parser reads its flags, then its environment and its open
 * descriptors. It leaves with _exit, as the real one does. */
static void fake_executor(int argc, char **argv) __attribute__((noreturn));
static void fake_executor(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--version"))
        fake_version();
    char err[256], **args;
    int nargs;
    struct stat st;
    FILE *out =
        fstat(EXECUTOR_FD, &st) == 0 && S_ISSOCK(st.st_mode) ? fdopen(EXECUTOR_FD, "w") : NULL;
    if (!out)
        _exit(3);
    if (config_load(CMD_EXECUTOR, argc - 1, argv + 1, &args, &nargs, err, sizeof(err)) != 0)
        fprintf(out, "config: %s\n", err);
    fprintf(out, "positional %d\n", nargs);
    for (int i = 0; i < CFG__COUNT; i++)
        if (config_opts[i].cmds & CMD_EXECUTOR)
            fprintf(out, "%s=%s\n", config_opts[i].flag, config_str(i));
    for (char **e = environ; *e; e++)
        fprintf(out, "env %s\n", *e);
    char fd0[64] = "";
    (void)!readlink("/proc/self/fd/0", fd0, sizeof(fd0) - 1);
    fprintf(out, "fd 0 %s, open:", fd0);
    for (int fd = 0; fd < 1024; fd++)
        if (fd != fileno(out) && fcntl(fd, F_GETFD) >= 0)
            fprintf(out, " %d", fd);
    fprintf(out, " and the socket\n");
    _exit(fclose(out) == 0 ? 0 : 4);
}

/* Where launch_open looks, beside this program. */
struct beside {
    char self[PATH_MAX];
    char exe[PATH_MAX];
    char says[PATH_MAX];
};

static int beside_setup(void **state)
{
    struct beside *b = calloc(1, sizeof(*b));
    _cleanup_free_ char *dir = util_exe_dir();
    if (!b || !dir || readlink("/proc/self/exe", b->self, sizeof(b->self) - 1) <= 0)
        return -1;
    snprintf(b->exe, sizeof(b->exe), "%s/%s", dir, LAUNCH_EXECUTOR_NAME);
    snprintf(b->says, sizeof(b->says), "%s/" SAYS, dir);
    /* Left over by a run that did not finish. */
    unlink(b->exe);
    rmdir(b->exe);
    unlink(b->says);
    *state = b;
    return 0;
}

static int beside_teardown(void **state)
{
    struct beside *b = *state;
    unlink(b->exe);
    rmdir(b->exe);
    unlink(b->says);
    free(b);
    return 0;
}

/* Makes the executor program beside this one this program itself. */
static void install_fake(const struct beside *b)
{
    assert_int_equal(link(b->self, b->exe), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void test_the_environment_is_only_what_is_named(void **state)
{
    (void)state;
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    unsetenv("OPENBLAS_L2_SIZE");
    setenv("STRATQ_API_TOKEN", "secret", 1);
    setenv("STRATQ_REDIS_URL", "redis://:secret@db:6379", 1);
    const char *asan = getenv("ASAN_OPTIONS");
    _cleanup_free_ char *saved = asan ? strdup(asan) : NULL;

    const struct {
        const char *asan_options, *l2_size;
        const char *want[6];
    } rows[] = {
#if defined(__SANITIZE_ADDRESS__)
        {"detect_leaks=0",
         NULL,
         {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
          "ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1", "OPENBLAS_CORETYPE=Haswell"}},
        {NULL,
         "1048576",
         {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
          "ASAN_OPTIONS=allocator_may_return_null=1", "OPENBLAS_CORETYPE=Haswell",
          "OPENBLAS_L2_SIZE=1048576"}},
        {"",
         NULL,
         {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
          "ASAN_OPTIONS=allocator_may_return_null=1", "OPENBLAS_CORETYPE=Haswell"}},
#else
        {NULL,
         "1048576",
         {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "OPENBLAS_CORETYPE=Haswell",
          "OPENBLAS_L2_SIZE=1048576"}},
#endif
    };
    for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
        if (rows[r].asan_options)
            setenv("ASAN_OPTIONS", rows[r].asan_options, 1);
        else
            unsetenv("ASAN_OPTIONS");
        if (rows[r].l2_size)
            setenv("OPENBLAS_L2_SIZE", rows[r].l2_size, 1);
        else
            unsetenv("OPENBLAS_L2_SIZE");
        char **env = launch_env();
        assert_non_null(env);
        size_t i = 0;
        for (; rows[r].want[i]; i++)
            assert_string_equal(env[i], rows[r].want[i]);
        assert_null(env[i]);
        launch_env_free(env);
    }
    launch_env_free(NULL);
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    unsetenv("STRATQ_API_TOKEN");
    unsetenv("STRATQ_REDIS_URL");
}

static void expect_open_fails(const struct beside *b, int want, const char *fmt)
{
    char *path = NULL, err[PATH_MAX * 3], want_err[PATH_MAX * 3];
    assert_int_equal(launch_open(&path, err, sizeof(err)), want);
    assert_null(path);
    snprintf(want_err, sizeof(want_err), fmt, b->exe, b->self);
    assert_string_equal(err, want_err);
}

static void test_open_finds_the_program_beside_this_one(void **state)
{
    const struct beside *b = *state;
    expect_open_fails(b, -ENOENT,
                      "the executor program %s is missing: it must be installed beside %s (make "
                      "builds both into build/; make install and the image install both)");
    assert_int_equal(mkdir(b->exe, 0755), 0);
    expect_open_fails(b, -EACCES,
                      "the executor program %s is not an executable file: Permission denied");
    assert_int_equal(rmdir(b->exe), 0);
    write_file(b->exe,
               "\x7f"
               "ELF",
               0644); /* not executable, even by root */
    expect_open_fails(b, -EACCES,
                      "the executor program %s is not an executable file: Permission denied");
    assert_int_equal(unlink(b->exe), 0);

    install_fake(b);
    char *path = NULL, err[PATH_MAX * 3];
    int fd = launch_open(&path, err, sizeof(err));
    assert_true(fd >= 10);
    assert_string_equal(path, b->exe);
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_PATH);
    struct stat st1, st2;
    assert_int_equal(fstat(fd, &st1), 0);
    assert_int_equal(stat(b->self, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    free(path);
    close(fd);
}

/* Every setting the worker and the executor share, as flags with a value
 * other than its default. */
static char *worker_flags[] = {
    "--mode",
    "cold",
    "--preload",
    "json, csv",
    "--python",
    "/opt/py/bin/python3",
    "--harness-dir",
    "/opt/stratq/python",
    "--max-output",
    "2048",
    "--max-result",
    "4096",
    "--max-result-depth",
    "9",
    "--max-result-values",
    "99",
    "--sandbox-disable",
    "netns,pidns",
    "--cgroup-dir",
    "/sys/fs/cgroup/delegated",
    "--job-uid",
    "123456",
    "--job-max-procs",
    "17",
    "--job-max-tmp",
    "2097152",
    "--data-dir",
    "/srv/data with space",
    "--log-level",
    "debug",
};

/* The executor is started with the worker's settings as flags that its
 * own parser reads back the same, launch_env() as its environment,
 * /dev/null as stdin, its socket as fd 3 and no other descriptor; and it
 * is the program that was opened, though another file has taken its
 * name since. */
static void test_the_executor_gets_the_settings_and_nothing_else(void **state)
{
    const struct beside *b = *state;
    char err[256], **args;
    int nargs;
    assert_int_equal(config_load(CMD_WORKER, ARRAY_SIZE(worker_flags), worker_flags, &args, &nargs,
                                 err, sizeof(err)),
                     0);
    install_fake(b);
    char *path = NULL, oerr[PATH_MAX * 3];
    int exe = launch_open(&path, oerr, sizeof(oerr));
    assert_true(exe >= 0);
    free(path);
    /* An upgrade replaces the file (with one that would not even run). */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.new", b->exe);
    write_file(tmp, "not a program\n", 0755);
    assert_int_equal(rename(tmp, b->exe), 0);
    /* Descriptors without close-on-exec must not reach the executor. */
    int stray = fcntl(2, F_DUPFD, 6), stray_high = fcntl(2, F_DUPFD, 40);
    assert_true(stray >= 6 && stray_high >= 40);

    /* Nor this process's stdin: a pipe here, for the while. */
    int in[2], saved_in = fcntl(0, F_DUPFD_CLOEXEC, 10);
    assert_true(saved_in >= 10);
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(dup2(in[0], 0), 0);

    pid_t pid;
    int sock;
    int launched = launch_executor(exe, &pid, &sock);
    assert_int_equal(dup2(saved_in, 0), 0);
    close(saved_in);
    close(in[0]);
    close(in[1]);
    assert_int_equal(launched, 0);
    assert_int_equal(fcntl(sock, F_GETFD), FD_CLOEXEC);
    char report[16384];
    unit_read_to_end(sock, report, sizeof(report), util_mono_ms() + WAIT_MS);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    char want[16384];
    size_t n = (size_t)snprintf(want, sizeof(want), "positional 0\n");
    for (int i = 0; i < CFG__COUNT; i++) {
        if (!(config_opts[i].cmds & CMD_EXECUTOR))
            continue;
        /* A shared setting this test does not give is one it cannot check. */
        if (config_opts[i].cmds & CMD_WORKER)
            assert_true(config_is_set(i));
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%s=%s\n", config_opts[i].flag,
                              config_str(i));
    }
    char **env = launch_env();
    for (char **e = env; *e; e++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "env %s\n", *e);
    launch_env_free(env);
    snprintf(want + n, sizeof(want) - n, "fd 0 /dev/null, open: 0 1 2 and the socket\n");
    assert_string_equal(report, want);

    close(sock);
    close(stray);
    close(stray_high);
    close(exe);
    config_free();
}

/* `stratq worker --check` with the executor saying says (NULL: no
 * executor beside this program). */
static int check(const struct beside *b, const char *says, char *out, size_t len)
{
    if (says) {
        if (access(b->exe, F_OK) != 0)
            install_fake(b);
        write_file(b->says, says, 0644);
    }
    return launch_check(out, len);
}

static void test_check_says_what_is_wrong(void **state)
{
    const struct beside *b = *state;
    char out[PATH_MAX * 3], want[PATH_MAX * 3];

    assert_int_equal(check(b, "ok", out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%s, %s %s", b->exe, LAUNCH_EXECUTOR_NAME, STRATQ_VERSION);
    assert_string_equal(out, want);

    assert_int_equal(check(b, "other", out, sizeof(out)), -1);
    snprintf(want, sizeof(want),
             "%s is another build (it says 'stratq-executor 0.0.9'; this is stratq %s): install "
             "both programs from one build",
             b->exe, STRATQ_VERSION);
    assert_string_equal(out, want);

    assert_int_equal(check(b, "loader", out, sizeof(out)), -1);
    snprintf(want, sizeof(want),
             "the executor program %s does not start (exit 127): stratq-executor: error while "
             "loading shared libraries: libpython3.11.so.1.0: cannot open shared object file: No "
             "such file or directory",
             b->exe);
    assert_string_equal(out, want);

    assert_int_equal(check(b, "killed", out, sizeof(out)), -1);
    snprintf(want, sizeof(want),
             "the executor program %s does not start (signal 9): it printed nothing", b->exe);
    assert_string_equal(out, want);

    /* A file the kernel will not run: the exec's own error. */
    assert_int_equal(unlink(b->exe), 0);
    write_file(b->exe, "not a program\n", 0755);
    assert_int_equal(check(b, "ok", out, sizeof(out)), -1);
    snprintf(want, sizeof(want), "cannot run the executor program %s: Exec format error", b->exe);
    assert_string_equal(out, want);

    assert_int_equal(unlink(b->exe), 0);
    assert_int_equal(check(b, NULL, out, sizeof(out)), -1);
    snprintf(want, sizeof(want),
             "the executor program %s is missing: it must be installed beside %s (make builds "
             "both into build/; make install and the image install both)",
             b->exe, b->self);
    assert_string_equal(out, want);
}

int main(int argc, char **argv)
{
    if (!strcmp(argv[0], LAUNCH_EXECUTOR_NAME))
        fake_executor(argc, argv);
    /* A test that waits past this has failed. */
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_environment_is_only_what_is_named),
        cmocka_unit_test_setup_teardown(test_open_finds_the_program_beside_this_one, beside_setup,
                                        beside_teardown),
        cmocka_unit_test_setup_teardown(test_the_executor_gets_the_settings_and_nothing_else,
                                        beside_setup, beside_teardown),
        cmocka_unit_test_setup_teardown(test_check_says_what_is_wrong, beside_setup,
                                        beside_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The supervisor's side of the executor program (launch.h). */
#define _GNU_SOURCE
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"
#include "executor.h"

/* Environment variables handed through to the executor and its jobs. They
 * carry no secrets; OpenBLAS needs these two on some processors. */
static const char *const passed_env[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", NULL};

char **launch_env(void)
{
    char **envp = calloc(ARRAY_SIZE(passed_env) + 5, sizeof(char *));
    size_t n = 0;
    if (!envp)
        return NULL;
    envp[n++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
    envp[n++] = strdup("LANG=C.UTF-8");
#if defined(__SANITIZE_ADDRESS__)
    /* Test builds: a warm job child is the (sanitized) executor, and must
     * see a failed allocation past its memory limit as NULL (Python's
     * MemoryError) rather than as a sanitizer abort. */
    const char *asan = getenv("ASAN_OPTIONS");
    if (asprintf(&envp[n], "ASAN_OPTIONS=%s%sallocator_may_return_null=1", asan ? asan : "",
                 asan && *asan ? ":" : "") > 0)
        n++;
#endif
    for (size_t i = 0; passed_env[i]; i++) {
        const char *v = getenv(passed_env[i]);
        if (v && asprintf(&envp[n], "%s=%s", passed_env[i], v) > 0)
            n++;
    }
    return envp;
}

void launch_env_free(char **envp)
{
    for (size_t i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
}

/* Moves fd to a number >= 10, clear of the numbers a child dup2()s onto
 * (0..5). Keeps O_CLOEXEC. */
static int fd_high(int fd)
{
    if (fd < 0 || fd >= 10)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    int e = errno;
    close(fd);
    errno = e;
    return n;
}

int launch_open(char **ret_path, char *err, size_t errlen)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        int e = n < 0 ? errno : ENOENT;
        snprintf(err, errlen, "cannot read /proc/self/exe to find %s beside this program: %s",
                 LAUNCH_EXECUTOR_NAME, strerror(e));
        return -e;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    _cleanup_free_ char *path = NULL;
    if (!slash || asprintf(&path, "%.*s/%s", (int)(slash - self), self, LAUNCH_EXECUTOR_NAME) < 0) {
        snprintf(err, errlen, "cannot find %s beside %s", LAUNCH_EXECUTOR_NAME, self);
        return -ENOMEM;
    }
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errlen,
                     "the executor program %s is missing: it must be installed beside %s "
                     "(make builds both into build/; make install and the image install both)",
                     path, self);
        else
            snprintf(err, errlen, "cannot open the executor program %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EACCES : 0;
    if (!e && access(path, X_OK) < 0)
        e = errno;
    if (e) {
        snprintf(err, errlen, "the executor program %s is not an executable file: %s", path,
                 strerror(e));
        close(fd);
        return -e;
    }
    if ((fd = fd_high(fd)) < 0) {
        snprintf(err, errlen, "cannot keep %s open: %s", path, strerror(errno));
        return -EMFILE;
    }
    *ret_path = steal_pointer(&path);
    return fd;
}

/* Forks a child that runs exe_fd with argv and envp: its stdin is
 * /dev/null, its stdout and stderr out_fd (if >= 0, else this process's),
 * fd 3 sock (if >= 0); every other fd is closed. All of them must be >= 10.
 * An exec that fails is reported here as -errno (through a close-on-exec
 * pipe the child writes its errno to), after the child is reaped. */
static int spawn(int exe_fd, char *const argv[], char *const envp[], int out_fd, int sock,
                 pid_t *ret_pid)
{
    int ep[2] = {-1, -1}, r = 0;
    _cleanup_close_ int devnull = fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));

    if (devnull < 0 || pipe2(ep, O_CLOEXEC) < 0)
        return -errno;
    ep[0] = fd_high(ep[0]);
    ep[1] = fd_high(ep[1]);
    pid_t pid = ep[0] < 0 || ep[1] < 0 ? -1 : fork();
    if (pid < 0) {
        r = -errno;
        goto out;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here. The program stays open
         * as fd 4 and the errno pipe as fd 5, both close-on-exec. */
        if (dup2(devnull, 0) < 0 || (out_fd >= 0 && dup2(out_fd, 1) < 0) ||
            (out_fd >= 0 && dup2(out_fd, 2) < 0) || (sock >= 0 && dup2(sock, EXECUTOR_FD) < 0) ||
            dup3(exe_fd, 4, O_CLOEXEC) < 0 || dup3(ep[1], 5, O_CLOEXEC) < 0)
            _exit(126);
        close_range(6, ~0U, 0);
        if (sock < 0)
            close(EXECUTOR_FD);
        fexecve(4, argv, envp);
        int e = errno;
        (void)!write(5, &e, sizeof(e));
        _exit(127);
    }
    close(ep[1]);
    ep[1] = -1;
    int e = 0;
    ssize_t n;
    while ((n = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(e)) {
        waitpid(pid, NULL, 0);
        r = -(e ? e : ENOEXEC);
        goto out;
    }
    *ret_pid = pid;
out:
    if (ep[0] >= 0)
        close(ep[0]);
    if (ep[1] >= 0)
        close(ep[1]);
    return r;
}

int launch_executor(int exe_fd, pid_t *ret_pid, int *ret_fd)
{
    int sv[2];
    char maxo[32], maxr[32], maxrd[32], maxrv[32], juid[32], jprocs[32], jtmp[32];
    char **envp = launch_env();

    if (!envp)
        return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        launch_env_free(envp);
        return -errno;
    }
    sv[1] = fd_high(sv[1]);
    snprintf(maxo, sizeof(maxo), "%lld", config_int(CFG_MAX_OUTPUT));
    snprintf(maxr, sizeof(maxr), "%lld", config_int(CFG_MAX_RESULT));
    snprintf(maxrd, sizeof(maxrd), "%lld", config_int(CFG_MAX_RESULT_DEPTH));
    snprintf(maxrv, sizeof(maxrv), "%lld", config_int(CFG_MAX_RESULT_VALUES));
    snprintf(juid, sizeof(juid), "%lld", config_int(CFG_JOB_UID));
    snprintf(jprocs, sizeof(jprocs), "%lld", config_int(CFG_JOB_MAX_PROCS));
    snprintf(jtmp, sizeof(jtmp), "%lld", config_int(CFG_JOB_MAX_TMP));
    char *argv[] = {LAUNCH_EXECUTOR_NAME,
                    "--python",
                    (char *)config_str(CFG_PYTHON),
                    "--harness-dir",
                    (char *)config_str(CFG_HARNESS_DIR),
                    "--max-output",
                    maxo,
                    "--max-result",
                    maxr,
                    "--max-result-depth",
                    maxrd,
                    "--max-result-values",
                    maxrv,
                    "--log-level",
                    (char *)config_str(CFG_LOG_LEVEL),
                    "--mode",
                    (char *)config_str(CFG_MODE),
                    "--preload",
                    (char *)config_str(CFG_PRELOAD),
                    "--sandbox-disable",
                    (char *)config_str(CFG_SANDBOX_DISABLE),
                    "--cgroup-dir",
                    (char *)config_str(CFG_CGROUP_DIR),
                    "--job-uid",
                    juid,
                    "--job-max-procs",
                    jprocs,
                    "--job-max-tmp",
                    jtmp,
                    "--data-dir",
                    (char *)config_str(CFG_DATA_DIR),
                    NULL};
    /* Only the socket (as fd 3) and stdio cross into the executor: no Redis
     * connection, no environment beyond launch_env(). */
    pid_t pid;
    int r = sv[1] < 0 ? -EMFILE : spawn(exe_fd, argv, envp, -1, sv[1], &pid);
    launch_env_free(envp);
    if (sv[1] >= 0)
        close(sv[1]);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    *ret_pid = pid;
    *ret_fd = sv[0];
    return 0;
}

/* Reads what fd gives until its end, at most len - 1 bytes kept, for up to
 * timeout_ms in all. The text is NUL-terminated. */
static void read_all(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = util_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - util_mono_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        char scratch[512];
        char *to = got < len - 1 ? buf + got : scratch;
        size_t room = got < len - 1 ? len - 1 - got : sizeof(scratch);
        ssize_t n = read(fd, to, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (to == buf + got)
            got += (size_t)n;
    }
    buf[got] = '\0';
}

int launch_check(char *out, size_t len)
{
    char err[PATH_MAX + 256], text[1024];
    _cleanup_free_ char *path = NULL;
    _cleanup_close_ int fd = launch_open(&path, err, sizeof(err));
    if (fd < 0) {
        snprintf(out, len, "%s", err);
        return -1;
    }
    int p[2];
    char **envp = launch_env();
    if (!envp || pipe2(p, O_CLOEXEC) < 0) {
        snprintf(out, len, "cannot run %s: %s", path, strerror(envp ? errno : ENOMEM));
        launch_env_free(envp);
        return -1;
    }
    p[1] = fd_high(p[1]);
    char *argv[] = {LAUNCH_EXECUTOR_NAME, "--version", NULL};
    pid_t pid = -1;
    int r = p[1] < 0 ? -EMFILE : spawn(fd, argv, envp, p[1], -1, &pid);
    launch_env_free(envp);
    if (p[1] >= 0)
        close(p[1]);
    if (r < 0) {
        close(p[0]);
        snprintf(out, len, "cannot run the executor program %s: %s", path, strerror(-r));
        return -1;
    }
    read_all(p[0], text, sizeof(text), 10000);
    close(p[0]);
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    const char *want = LAUNCH_EXECUTOR_NAME " " STRATQ_VERSION "\n";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(text, want)) {
        snprintf(out, len, "%s, %s %s", path, LAUNCH_EXECUTOR_NAME, STRATQ_VERSION);
        return 0;
    }
    /* The first line says it: the dynamic loader's "error while loading
     * shared libraries: libpython3.11.so.1.0: cannot open shared object
     * file", or another version's --version. */
    text[strcspn(text, "\n")] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        snprintf(out, len,
                 "%s is another build (it says '%s'; this is stratq %s): install both "
                 "programs from one build",
                 path, text, STRATQ_VERSION);
    else if (WIFEXITED(status))
        snprintf(out, len, "the executor program %s does not start (exit %d): %s", path,
                 WEXITSTATUS(status), text[0] ? text : "it printed nothing");
    else
        snprintf(out, len, "the executor program %s does not start (signal %d): %s", path,
                 WTERMSIG(status), text[0] ? text : "it printed nothing");
    return -1;
}

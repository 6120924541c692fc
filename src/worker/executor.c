/* The executor process and how a job child is run (cold mode: fork+exec of
 * a Python interpreter with the harness). */
#define _GNU_SOURCE
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/frame.h"
#include "../common/jsonv.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../queue/status.h"
#include "capture.h"
#include "dirsize.h"
#include "launch.h"
#include "outcome.h"
#include "sandbox.h"
#include "warm.h"

/* The pipes between a job's child and the executor: the number each has in
 * the child, and whether the child reads it (its end is then [0]). */
enum job_pipe { PIPE_IN, PIPE_RES, PIPE_OUT, PIPE_ERR, PIPE_EV, PIPE__COUNT };
static const struct {
    int child_fd;
    bool child_reads;
} job_pipes[PIPE__COUNT] = {
    [PIPE_IN] = {3, true},   /* the job's request */
    [PIPE_RES] = {4, false}, /* its header and result */
    [PIPE_OUT] = {1, false}, /* stdout */
    [PIPE_ERR] = {2, false}, /* stderr */
    [PIPE_EV] = {5, false},  /* progress and log lines */
};
#define PIPE_CHILD_END(i) (job_pipes[i].child_reads ? 0 : 1)

/* A job's child as the executor holds it. */
struct child {
    pid_t pid;
    int pidfd;             /* pid's, opened while it could not have been reaped */
    int pipe[PIPE__COUNT]; /* the executor's end of each of job_pipes */
    int dir_fd;            /* the job's own directory (sj.dir), held open */
    struct sandbox_job sj;
};
#define CHILD_NONE                                                                                 \
    {                                                                                              \
        .pid = -1, .pidfd = -1, .pipe = {-1, -1, -1, -1, -1}, .dir_fd = -1                         \
    }

/* The executor's state across jobs. Each resource has one owner, here,
 * and is released in one place, executor_release(), on every way out. */
static struct {
    bool warm;
    const char *python;
    char *harness_dir; /* the harness the jobs import (or the executor's copy of it) */
    char *layers;      /* the sandbox's layers, JSON (READY) */
    char **envp;
    char work_dir[256];  /* holds one temporary directory per job */
    int work_fd;         /* work_dir, open (O_DIRECTORY) */
    bool staged;         /* work_dir/sdk is the executor's copy of the harness */
    char data_dir[4096]; /* STRATQ_DATA_DIR, absolute */
    /* Warm mode: a child forked ahead of time, waiting for its job. */
    struct child spare;
    long long spare_vm_kb;    /* the executor's size when the spare was forked */
    long long last_memory_mb; /* the last job's memory_mb, set ahead on the next spare */
    struct frame_reader rd;   /* what the supervisor sent on EXECUTOR_FD */
} ex = {.work_fd = -1, .spare = CHILD_NONE};

/* Moves fd to a number >= 10 so that it cannot collide with the numbers the
 * child dup2()s onto (0..4). Keeps O_CLOEXEC. */
static int fd_high(int fd)
{
    if (fd < 0 || fd >= 10)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return n;
}

static int pipe_high(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    p[0] = fd_high(p[0]);
    p[1] = fd_high(p[1]);
    return p[0] < 0 || p[1] < 0 ? -EMFILE : 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The job's events (fd 5): progress and structured log lines, one JSON
 * object per line, passed on to the supervisor with the live output.
 *
 * A line is checked against small caps before jansson parses it, since a
 * line of 16 KB like {"fields":[{},{},...]} would otherwise be 5,000
 * json_t; one over them is dropped like a malformed one. A log line is
 * kept as its JSON text (a json_t string) until it is sent, not as a tree,
 * so that what the executor holds between two sends is at most
 * EVENTS_MAX_LOGS texts of at most EVENTS_ENTRY_MAX bytes, plus one line
 * of EVENTS_MAX_VALUES values being parsed. */
#define EVENTS_LINE_MAX 16384
#define EVENTS_MAX_LOGS 1000
#define EVENTS_MAX_DEPTH 16
#define EVENTS_MAX_VALUES 1024
/* A log line as passed on (a LOG message): the job's msg and fields with
 * ts_ms, written again by jansson, which can make a number longer ("1e9"
 * is "1000000000.0"). */
#define EVENTS_ENTRY_MAX FRAME_EVENT_MAX
static const struct jsonv_limits events_limits = {EVENTS_MAX_DEPTH, EVENTS_MAX_VALUES};

struct events {
    char line[EVENTS_LINE_MAX + 1];
    size_t len;
    bool skipping;     /* inside a line too long to keep */
    json_t *progress;  /* the latest progress not passed on yet */
    json_t *logs;      /* log lines not passed on yet: an array of their JSON texts */
    size_t logs_total; /* log lines kept for this job */
    size_t dropped;    /* past EVENTS_MAX_LOGS, over the caps, or malformed */
};

/* A log line's entry as the supervisor stores it, as JSON text: a json_t
 * string, or NULL when it is too long. */
static json_t *log_entry_text(json_t *msg, json_t *fields)
{
    json_t *entry =
        json_pack("{s:I, s:O, s:o}", "ts_ms", (json_int_t)util_now_ms(), "msg", msg, "fields",
                  json_is_object(fields) ? json_incref(fields) : json_object());
    /* 15 digits: what the job wrote (9203.97), not its nearest double's 17
     * (9203.9699999999993). */
    char *text = entry ? json_dumps(entry, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_t *s = text && strlen(text) <= EVENTS_ENTRY_MAX ? json_string(text) : NULL;
    free(text);
    json_decref(entry);
    return s;
}

static void events_line(struct events *ev, const char *line, size_t len)
{
    json_t *o = jsonv_check(line, len, &events_limits, NULL) == JSONV_OK
                    ? json_loadb(line, len, 0, NULL)
                    : NULL;
    const char *t = json_string_value(json_object_get(o, "t"));
    json_t *entry = NULL;
    if (t && !strcmp(t, "progress")) {
        json_t *f = json_object_get(o, "fraction"), *m = json_object_get(o, "message");
        double frac = json_number_value(f);
        if (json_is_number(f) && frac >= 0 && frac <= 1) {
            json_decref(ev->progress);
            ev->progress = json_pack("{s:f, s:s, s:I}", "fraction", frac, "message",
                                     json_is_string(m) ? json_string_value(m) : "", "updated_ms",
                                     (json_int_t)util_now_ms());
        }
    } else if (t && !strcmp(t, "log") && json_is_string(json_object_get(o, "msg")) &&
               ev->logs_total < EVENTS_MAX_LOGS &&
               (entry = log_entry_text(json_object_get(o, "msg"), json_object_get(o, "fields")))) {
        if (!ev->logs)
            ev->logs = json_array();
        json_array_append_new(ev->logs, entry);
        ev->logs_total++;
    } else {
        ev->dropped++;
    }
    json_decref(o);
}

/* Reads what the job wrote on its events pipe. Returns like capture_read. */
static int events_read(int fd, struct events *ev)
{
    char tmp[16384];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -errno;
    for (ssize_t i = 0; i < n; i++) {
        if (tmp[i] == '\n') {
            if (!ev->skipping && ev->len)
                events_line(ev, ev->line, ev->len);
            ev->len = 0;
            ev->skipping = false;
        } else if (ev->len < EVENTS_LINE_MAX && !ev->skipping) {
            ev->line[ev->len++] = tmp[i];
        } else if (!ev->skipping) {
            ev->skipping = true;
            ev->dropped++;
        }
    }
    return n == 0 ? 0 : 1;
}

struct job_run {
    /* inputs */
    struct iovec input[3]; /* for the harness: the executor's settings line, the RUN as it came */
    int input_at;          /* the first part not written whole yet */
    double timeout_s;
    long long memory_mb;
    size_t max_output, max_result;
    struct jsonv_limits result_limits; /* STRATQ_MAX_RESULT_DEPTH, _VALUES */
    int ctl_fd;    /* the socket to the supervisor: cancel requests in, output out */
    int ctl_error; /* why the supervisor can no longer be read (-EPIPE: it is gone) */
    /* outputs */
    struct capture out, err, res;
    struct events ev;
    size_t out_sent, err_sent; /* bytes already passed on as live output */
    bool timed_out;
    bool cancelled;
    bool oom;             /* the kernel's OOM killer struck the job's cgroup */
    int full;             /* SANDBOX_FULL_*: its directory's tmpfs or its /dev/shm was full */
    bool tmp_exceeded;    /* tmp_check found its directory over STRATQ_JOB_MAX_TMP */
    struct dir_usage tmp; /* what tmp_check counted last */
    int wait_status;
    struct rusage ru;
    int64_t wall_ms;
    /* The outcome was told before the job's process ended (loop_handover),
     * and what telling it returned (0 or -errno). */
    bool sent;
    int sent_r;
};

/* Runs in a new child, before the job: only async-signal-safe calls, and
 * _exit() on failure. Gives the child its own session (so the whole job is
 * one process group the executor can kill), a parent-death signal, the job's
 * descriptors as 0..4 and nothing else, and default signal handling. */
static void child_setup(int devnull, int p[PIPE__COUNT][2], pid_t parent)
{
    struct rlimit rl = {0, 0};

    if (setsid() < 0)
        _exit(126);
    /* (In its own pid namespace the child sees no parent: getppid() is 0.) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (getppid() != parent && getppid() != 0))
        _exit(126);
    if (dup2(devnull, 0) < 0)
        _exit(126);
    for (int i = 0; i < PIPE__COUNT; i++)
        if (dup2(p[i][PIPE_CHILD_END(i)], job_pipes[i].child_fd) < 0)
            _exit(126);
    close_range(6, ~0U, 0);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL);
    /* As Python itself does: a write past RLIMIT_FSIZE fails with EFBIG,
     * which the job sees as an OSError, rather than killing it. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGXFSZ, &ign, NULL);
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0);
    if (chdir("/") < 0)
        _exit(126);
}

/* In a child: enters the sandbox, or ends the child with the reason on its
 * stderr (which becomes the job's). Only async-signal-safe calls: write,
 * not stdio; strerrordesc_np, a table lookup, not strerror, which may
 * translate (and allocate). */
static void enter_sandbox_or_die(const struct sandbox_job *sj)
{
    static const char what[] = "stratq: cannot enter the sandbox: ";
    int r = sandbox_enter(sj);
    if (r < 0) {
        const char *why = strerrordesc_np(-r);
        why = why ? why : "unknown error";
        (void)!write(2, what, sizeof(what) - 1);
        (void)!write(2, why, strlen(why));
        (void)!write(2, "\n", 1);
        _exit(126);
    }
}

/* Cold mode, in the child: the job's limits, then a fresh interpreter. */
static void __attribute__((noreturn))
child_exec_cold(const struct job_run *j, const struct sandbox_job *sj)
{
    static const char fail_msg[] = "stratq: cannot start the job's interpreter\n";
    struct rlimit rl;

    /* The sandbox first: building the filter allocates, which the address
     * space limit below could refuse. */
    enter_sandbox_or_die(sj);
    rl.rlim_cur = rl.rlim_max = (rlim_t)j->memory_mb * 1024 * 1024;
    setrlimit(RLIMIT_AS, &rl);
    rl = outcome_cpu_rlimit(j->timeout_s);
    setrlimit(RLIMIT_CPU, &rl);
    char *argv[] = {(char *)ex.python,
                    "-I",
                    "-B",
                    "-c",
                    "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from stratq import _harness; _harness.main()",
                    (char *)ex.harness_dir,
                    NULL};
    execve(ex.python, argv, ex.envp);
    (void)!write(2, fail_msg, sizeof(fail_msg) - 1);
    _exit(127);
}

/* Length of the longest prefix of buf that does not end inside a UTF-8
 * sequence, so that live output is not cut in the middle of a character. */
static size_t utf8_whole(const char *buf, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)buf[len - back];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: keep looking for the lead */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}

/* Sends what the job printed since the last call to the supervisor, which
 * appends it to the job's live log in Redis: a batch of its latest
 * PROGRESS, its LOG lines, and the OUTPUT that ends the batch. */
static void send_live_output(struct job_run *j)
{
    size_t out_end = utf8_whole(j->out.buf ? j->out.buf : "", j->out.len);
    size_t err_end = utf8_whole(j->err.buf ? j->err.buf : "", j->err.len);
    if (out_end <= j->out_sent && err_end <= j->err_sent && !j->ev.progress && !j->ev.logs)
        return;
    _cleanup_free_ char *o =
        util_utf8_sanitize(j->out.buf ? j->out.buf + j->out_sent : "", out_end - j->out_sent);
    _cleanup_free_ char *e =
        util_utf8_sanitize(j->err.buf ? j->err.buf + j->err_sent : "", err_end - j->err_sent);
    /* 15 digits: what the job wrote (0.3), not its nearest double's 17. */
    _cleanup_free_ char *progress =
        j->ev.progress ? json_dumps(j->ev.progress, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    int r = progress ? frame_send(j->ctl_fd, FRAME_PROGRESS, progress, strlen(progress)) : 0;
    for (size_t i = 0; r == 0 && i < json_array_size(j->ev.logs); i++) {
        json_t *text = json_array_get(j->ev.logs, i);
        r = frame_send(j->ctl_fd, FRAME_LOG, json_string_value(text), json_string_length(text));
    }
    if (r == 0)
        frame_send_pair(j->ctl_fd, FRAME_OUTPUT, o ? o : "", o ? strlen(o) : 0, e ? e : "",
                        e ? strlen(e) : 0);
    /* Sent or not (a send fails once the supervisor is gone, which the
     * poll loop sees), none of it is sent again. */
    j->out_sent = out_end;
    j->err_sent = err_end;
    json_decref(j->ev.progress);
    json_decref(j->ev.logs);
    j->ev.progress = j->ev.logs = NULL;
}

/* How often live output is passed on while a job runs. */
#define LIVE_OUTPUT_MS 200

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Kills a job's child and its process group (which does not exist yet
 * when the child has not reached setsid()). */
static void kill_job(pid_t pid)
{
    kill(pid, SIGKILL);
    kill(-pid, SIGKILL);
}

/* A growing list of pids. */
struct pids {
    pid_t *v;
    size_t n, cap;
};

static void pids_add(struct pids *p, pid_t pid)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i] == pid)
            return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        pid_t *v = realloc(p->v, cap * sizeof(*v));
        if (!v)
            return;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = pid;
}

/* Adds the children of every thread of PID to P. */
static void add_children(pid_t pid, struct pids *p)
{
    char path[320];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, e->d_name);
        FILE *f = fopen(path, "re");
        int child;
        while (f && fscanf(f, "%d", &child) == 1)
            pids_add(p, child);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
}

/* Reads /proc/PID/NAME into buf (NUL-terminated). Returns its length, or
 * -1. */
static ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Whether PID can no longer fork: stopped, a zombie, or gone. */
static bool cannot_fork(pid_t pid)
{
    char buf[512];
    if (proc_read(pid, "stat", buf, sizeof(buf)) <= 0)
        return true;
    const char *paren = strrchr(buf, ')'); /* the name may hold anything */
    char state = paren && paren[1] ? paren[2] : 'X';
    return state == 'T' || state == 't' || state == 'Z' || state == 'X';
}

/* Ends every process the last job left: every descendant of this process
 * but keep, the next job's spare (between jobs the executor has no other
 * child of its own; orphans come here, the executor being a subreaper).
 * Killing children round by round is not enough: a chain whose bottom
 * forks new levels while the top is killed outlives any number of rounds.
 * So each round first freezes the whole tree from the top down: SIGSTOP,
 * then, once the process is stopped (a fork under way has finished), its
 * children, which a stopped process can no longer add to. When every
 * process found is stopped, none can fork, and SIGKILL takes them all.
 * Rounds go on until the executor has no child left (one of them may have
 * woken another with SIGCONT before it was stopped itself); how many
 * processes a job has is bounded by RLIMIT_NPROC. Returns how many
 * processes were killed. */
static size_t end_descendants(pid_t keep)
{
    size_t killed = 0;
    for (int round = 0; round < 1000; round++) {
        struct pids all = {0};
        add_children(getpid(), &all);
        for (size_t i = 0; i < all.n; i++)
            if (all.v[i] == keep)
                all.v[i--] = all.v[--all.n];
        if (all.n == 0) {
            free(all.v);
            return killed;
        }
        for (size_t i = 0; i < all.n; i++) {
            pid_t pid = all.v[i];
            kill(pid, SIGSTOP);
            /* Until it stops: a few ms at most, unless it sleeps where
             * signals wait (then the next round has it). */
            for (int t = 0; t < 200 && !cannot_fork(pid); t++)
                usleep(t < 20 ? 10 : 100);
            add_children(pid, &all);
        }
        for (size_t i = 0; i < all.n; i++)
            kill(all.v[i], SIGKILL);
        killed += all.n;
        /* Reap the children among them (not a spare: it lives on); the
         * others, once their parent is gone, are children found again by
         * the next round. */
        int64_t until = util_mono_ms() + 100;
        for (size_t left = all.n; left > 0 && util_mono_ms() < until;) {
            left = 0;
            for (size_t i = 0; i < all.n; i++)
                if (all.v[i] > 0 && waitpid(all.v[i], NULL, WNOHANG) == 0)
                    left++;
                else
                    all.v[i] = 0;
            if (left)
                usleep(200);
        }
        free(all.v);
    }
    log_warn("processes the last job left could not all be ended", "{s:I}", "killed",
             (json_int_t)killed);
    return killed;
}

static void remove_dir_fd(int parent, const char *name, int fd);

/* Makes the job's own directory in the work directory, under a name no
 * job can guess (nothing can be planted where it will be), owned by the
 * job's uid, and holds it open in *fd (the cleanup removes what it holds,
 * whatever its name). Its path goes into sj->dir: the one directory the
 * job may write (sandbox_enter). Returns 0 or -errno. */
static int job_dir_make(struct sandbox_job *sj, int *fd)
{
    snprintf(sj->dir, sizeof(sj->dir), "%s/job-XXXXXX", ex.work_dir);
    if (!mkdtemp(sj->dir)) {
        sj->dir[0] = '\0';
        return -errno;
    }
    int r = sandbox_job_dir(sj);
    if (r < 0)
        log_warn("cannot give the job's directory a tmpfs of its own", "{s:s, s:s}", "dir", sj->dir,
                 "error", strerror(-r));
    *fd = open(sj->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0 || (geteuid() == 0 && fchown(*fd, sandbox_job_uid(), sandbox_job_gid()) < 0)) {
        int e = -errno;
        close_fd(fd);
        sandbox_job_dir_release(sj);
        rmdir(sj->dir);
        sj->dir[0] = '\0';
        return e;
    }
    return 0;
}

/* Removes the job's directory and what is in it (c->dir_fd, c->sj.dir). */
static void job_dir_remove(struct child *c)
{
    const char *slash = strrchr(c->sj.dir, '/');
    if (c->sj.dir_mounted) { /* its tmpfs goes whole */
        close_fd(&c->dir_fd);
        sandbox_job_dir_release(&c->sj);
        rmdir(c->sj.dir);
    } else if (c->dir_fd >= 0 && slash) {
        remove_dir_fd(ex.work_fd, slash + 1, c->dir_fd);
    }
    close_fd(&c->dir_fd);
    c->sj.dir[0] = '\0';
}

/* Forks a job child with fresh pipes. Cold mode (j given): the child execs
 * a new interpreter for j. Warm mode (j NULL): the child runs the harness
 * of the embedded interpreter, which waits on fd 3 for its job; this is the
 * spare made ahead of time. */
static int child_spawn(const struct job_run *j, struct child *c)
{
    int p[PIPE__COUNT][2];
    int devnull = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC)), r = devnull < 0 ? -EMFILE : 0;
    int dir_fd = -1;
    pid_t parent = getpid(), pid;
    struct sandbox_job sj;

    for (int i = 0; i < PIPE__COUNT; i++)
        p[i][0] = p[i][1] = -1;
    for (int i = 0; r == 0 && i < PIPE__COUNT; i++)
        r = pipe_high(p[i]) < 0 ? -EMFILE : 0;
    if (r < 0 || (r = sandbox_job_begin(&sj)) < 0)
        goto out;
    if ((r = job_dir_make(&sj, &dir_fd)) == 0 && j)
        sandbox_job_memory(&sj, j->memory_mb);
    if (r == 0)
        r = sandbox_before_fork();
    pid = r < 0 ? -1 : j ? fork() : warm_fork();
    if (pid < 0) {
        r = r < 0 ? r : -errno;
        sandbox_job_end(&sj);
        goto out;
    }
    if (pid == 0) {
        child_setup(devnull, p, parent);
        if (j)
            child_exec_cold(j, &sj);
        /* A warm spare is sandboxed before it waits for its job, and
         * already in the job's directory (the harness takes it from its
         * working directory for TMPDIR: all off the job's path). */
        enter_sandbox_or_die(&sj);
        if (chdir(sj.dir) < 0)
            _exit(126);
        warm_child_run();
    }
    /* Held from now: should a reap meant for others (sandbox_job_end's)
     * take this child once it has died, the pidfd still tells of it, and
     * of no other process that gets its number. */
    *c = (struct child){
        .pid = pid, .pidfd = pidfd_open_(pid), .dir_fd = steal_fd(&dir_fd), .sj = sj};
    for (int i = 0; i < PIPE__COUNT; i++)
        c->pipe[i] = steal_fd(&p[i][1 - PIPE_CHILD_END(i)]);
out:
    /* Whatever was made and not handed to c: the child's ends of the
     * pipes always, all of it on a failure. */
    if (dir_fd >= 0) {
        struct child failed = {.dir_fd = steal_fd(&dir_fd), .sj = sj};
        job_dir_remove(&failed);
    }
    for (int i = 0; i < PIPE__COUNT; i++) {
        close_fd(&p[i][0]);
        close_fd(&p[i][1]);
    }
    close_fd(&devnull);
    return r;
}

/* Whether a child has not ended (without its pidfd, taken to be so). */
static bool child_alive(const struct child *c)
{
    struct pollfd p = {c->pidfd, POLLIN, 0};
    return c->pid > 0 && (c->pidfd < 0 || poll(&p, 1, 0) == 0);
}

/* Ends a child that will run no job: kills and reaps it, closes its pipes,
 * removes its directory. */
static void child_discard(struct child *c)
{
    bool alive = child_alive(c);
    if (alive)
        kill_job(c->pid);
    if (c->pid > 0) /* one that has ended may have been reaped already */
        waitpid(c->pid, NULL, alive ? 0 : WNOHANG);
    c->pid = -1;
    close_fd(&c->pidfd);
    sandbox_job_end(&c->sj);
    for (int i = 0; i < PIPE__COUNT; i++)
        close_fd(&c->pipe[i]);
    job_dir_remove(c);
}

/* This process's address-space size, read when a spare is forked: the
 * spare's job gets its memory_mb on top of it. (The sandboxed child cannot
 * read /proc itself.) */
static long long own_vm_kb(void)
{
    char line[256];
    long long kb = 0;
    FILE *f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %lld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Warm mode: makes sure a spare child is waiting. */
static void refill_spare(void)
{
    if (!ex.warm || ex.spare.pid > 0)
        return;
    ex.spare_vm_kb = own_vm_kb();
    int r = child_spawn(NULL, &ex.spare);
    if (r < 0) {
        ex.spare.pid = -1;
        log_error("cannot fork a spare job child", "{s:s}", "error", strerror(-r));
    }
}

/* Once the last job is gone (its /dev/shm emptied): the spare's memory
 * limit (a /dev/shm remount, cgroup writes), set now, off the next job's
 * path: most jobs ask what the one before did. */
static void prime_spare(void)
{
    if (ex.spare.pid > 0 && ex.last_memory_mb > 0)
        sandbox_job_memory(&ex.spare.sj, ex.last_memory_mb);
}

/* How often, at least, a job's directory is counted where it has no tmpfs
 * of its own; and how many entries it may hold. */
#define TMP_CHECK_MS 250
#define TMP_MAX_ENTRIES 100000
#define TMP_MAX_DEPTH 128

/* Counts the job's directory (DIR_FD) against STRATQ_JOB_MAX_TMP, setting
 * j->tmp_exceeded when it holds more, or more than TMP_MAX_ENTRIES
 * entries. Returns when to count again: the executor spends at most a
 * tenth of its time counting, however big the tree. */
static int64_t tmp_check(struct job_run *j, int dir_fd)
{
    int64_t t0 = util_mono_ms();
    if (dir_usage(dir_fd, &j->tmp, TMP_MAX_ENTRIES, TMP_MAX_DEPTH) == 0 &&
        (j->tmp.too_many || j->tmp.bytes > config_int(CFG_JOB_MAX_TMP)))
        j->tmp_exceeded = true;
    int64_t now = util_mono_ms();
    int64_t pause = 10 * (now - t0);
    return now + (pause > TMP_CHECK_MS ? pause : TMP_CHECK_MS);
}

/* Reads what the supervisor sent while the job runs: whether it asks for
 * the job to be cancelled. When it can no longer be read (gone, or it
 * broke the protocol), j->ctl_error says why. */
static bool ctl_read(struct job_run *j)
{
    bool cancel = false;
    int r;
    for (;;) {
        _cleanup_frame_msg_ struct frame_msg m = {0};
        if ((r = frame_read(j->ctl_fd, &ex.rd, &m)) != 1)
            break;
        if (m.type != FRAME_CANCEL) {
            snprintf(ex.rd.why, sizeof(ex.rd.why), "a %s message while a job runs",
                     frame_spec(m.type)->name);
            r = -EPROTO;
            break;
        }
        cancel = true;
    }
    if (r < 0)
        j->ctl_error = r;
    return cancel;
}

/* Writes what the pipe takes of the job's request; closes the pipe when
 * the child will take no more. Returns whether all of it is written. */
static bool input_write(struct job_run *j, int *fd)
{
    int n = (int)ARRAY_SIZE(j->input);
    ssize_t w = writev(*fd, j->input + j->input_at, n - j->input_at);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            close_fd(fd);
        return false;
    }
    size_t left = (size_t)w;
    while (j->input_at < n && left >= j->input[j->input_at].iov_len)
        left -= j->input[j->input_at++].iov_len;
    if (j->input_at == n)
        return true;
    j->input[j->input_at].iov_base = (char *)j->input[j->input_at].iov_base + left;
    j->input[j->input_at].iov_len -= left;
    return false;
}

/* The descriptors a job's loop watches, one slot each, in the order they
 * are handled after a poll. */
enum job_slot { SLOT_CTL, SLOT_IN, SLOT_RES, SLOT_OUT, SLOT_ERR, SLOT_EV, SLOT_PID, SLOT__COUNT };

/* The state of job_run's loop. */
struct job_loop {
    struct job_run *j;
    struct child *c;
    pid_t pid;
    /* -1: not watched. Every one but SLOT_CTL (the supervisor's socket) is
     * the loop's own, closed when it ends. */
    int fd[SLOT__COUNT];
    /* The request's pipe once written whole: held open, unwatched, for
     * the harness to wait on at the end (loop_handover). */
    int held_in;
    int64_t start, deadline, drain_deadline, next_live, next_tmp;
    size_t total_output; /* stdout and stderr, which share a cap */
    bool exited, killed;
    bool handed; /* loop_handover has looked at the job and released it */
};

/* Kills the job, once: its end is then only waited for. */
static void loop_kill(struct job_loop *L)
{
    if (!L->killed) {
        L->killed = true;
        kill_job(L->pid);
    }
}

static bool loop_ctl_open(const struct job_loop *L)
{
    return L->j->ctl_fd >= 0 && !L->j->ctl_error && !L->j->sent;
}

static void on_ctl(struct job_loop *L)
{
    struct job_run *j = L->j;
    bool cancel = ctl_read(j);
    if (j->ctl_error)
        L->fd[SLOT_CTL] = -1; /* the supervisor is gone: stop the job */
    if ((cancel || j->ctl_error) && !L->killed) {
        j->cancelled = cancel;
        loop_kill(L);
    }
}

static void on_input(struct job_loop *L)
{
    if (input_write(L->j, &L->fd[SLOT_IN])) {
        L->held_in = L->fd[SLOT_IN];
        L->fd[SLOT_IN] = -1;
    }
}

/* A capture's pipe is readable: what it holds, up to its cap (stdout and
 * stderr share theirs); past it the job is killed. */
static void loop_capture(struct job_loop *L, int *fd, struct capture *c, bool counted)
{
    size_t alone = 0;
    int r = counted ? capture_read(*fd, c, &L->total_output, L->j->max_output)
                    : capture_read(*fd, c, &alone, 0);
    if (r <= 0)
        close_fd(fd);
    if (c->overflow)
        loop_kill(L);
}

static void on_result(struct job_loop *L)
{
    loop_capture(L, &L->fd[SLOT_RES], &L->j->res, false);
}

static void on_stdout(struct job_loop *L)
{
    loop_capture(L, &L->fd[SLOT_OUT], &L->j->out, true);
}

static void on_stderr(struct job_loop *L)
{
    loop_capture(L, &L->fd[SLOT_ERR], &L->j->err, true);
}

static void on_events(struct job_loop *L)
{
    if (events_read(L->fd[SLOT_EV], &L->j->ev) <= 0)
        close_fd(&L->fd[SLOT_EV]);
}

/* The job's process ended: whatever it left running in its process group
 * goes too, and its pipes then reach end of file, read for a second more. */
static void on_ended(struct job_loop *L)
{
    L->exited = true;
    L->j->wall_ms = util_mono_ms() - L->start;
    kill_job(L->pid);
    L->drain_deadline = util_mono_ms() + 1000;
    close_fd(&L->fd[SLOT_PID]);
    close_fd(&L->held_in);
    L->fd[SLOT_CTL] = -1;
}

/* What each slot waits for, and what is done when it comes. */
static const struct {
    short events;
    void (*ready)(struct job_loop *L);
} job_slots[SLOT__COUNT] = {
    [SLOT_CTL] = {POLLIN, on_ctl},    [SLOT_IN] = {POLLOUT, on_input},
    [SLOT_RES] = {POLLIN, on_result}, [SLOT_OUT] = {POLLIN, on_stdout},
    [SLOT_ERR] = {POLLIN, on_stderr}, [SLOT_EV] = {POLLIN, on_events},
    [SLOT_PID] = {POLLIN, on_ended},
};

/* How long the next poll may wait: until the deadline (or, once the job
 * has exited, the end of draining its pipes), the next live output or the
 * next count of its directory. */
static int loop_timeout(const struct job_loop *L)
{
    int64_t now = util_mono_ms();
    int64_t until = L->exited ? L->drain_deadline : L->deadline;
    if (!L->exited && loop_ctl_open(L) && L->next_live < until)
        until = L->next_live;
    if (!L->exited && L->next_tmp < until)
        until = L->next_tmp;
    return until > now ? (int)(until - now) : 0;
}

/* What is due by the clock: the timeout, live output, counting the job's
 * directory. */
static void loop_timers(struct job_loop *L)
{
    int64_t now = util_mono_ms();
    if (L->exited)
        return;
    if (!L->killed && now >= L->deadline) {
        L->j->timed_out = true;
        loop_kill(L);
    }
    if (loop_ctl_open(L) && now >= L->next_live) {
        send_live_output(L->j);
        L->next_live = now + LIVE_OUTPUT_MS;
    }
    if (!L->killed && now >= L->next_tmp) {
        L->next_tmp = tmp_check(L->j, L->c->dir_fd);
        if (L->j->tmp_exceeded)
            loop_kill(L);
    }
}

static int send_outcome(struct job_run *j, int run_error, bool only_success);

/* The job's CPU time (its threads', and that of the children it waited
 * for) and its peak resident memory, read from outside while its process
 * lives, into j->ru as wait4 gives them once it has ended. False when they
 * cannot be read: its exit is under way, and wait4 will tell. */
static bool job_usage(const struct job_loop *L, struct job_run *j)
{
    clockid_t clk;
    struct timespec ts;
    char buf[2048];
    long long ct = 0, cst = 0, hwm = -1;

    if (clock_getcpuclockid(L->pid, &clk) != 0 || clock_gettime(clk, &ts) < 0)
        return false;
    if (proc_read(L->pid, "status", buf, sizeof(buf)) <= 0)
        return false;
    const char *at = strstr(buf, "\nVmHWM:");
    if (!at || sscanf(at, "\nVmHWM: %lld", &hwm) != 1)
        return false; /* no memory left to tell of: it is exiting */
    /* Fields 16 and 17, after the name (which may hold anything). */
    const char *paren = proc_read(L->pid, "stat", buf, sizeof(buf)) > 0 ? strrchr(buf, ')') : NULL;
    if (!paren || sscanf(paren + 1, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %lld %lld",
                         &ct, &cst) != 2)
        return false;
    long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 +
                   (ct + cst) * 1000000 / sysconf(_SC_CLK_TCK);
    j->ru = (struct rusage){.ru_utime = {us / 1000000, us % 1000000}, .ru_maxrss = hwm};
    j->wait_status = 0;
    j->wall_ms = util_mono_ms() - L->start;
    return true;
}

/* Whether every writer of the job's stdout, stderr and events pipes is
 * gone: what is left in them is only to be read. */
static bool output_writers_gone(const struct job_loop *L)
{
    static const enum job_slot slots[] = {SLOT_OUT, SLOT_ERR, SLOT_EV};
    struct pollfd p[ARRAY_SIZE(slots)];
    nfds_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(slots); i++)
        if (L->fd[slots[i]] >= 0)
            p[n++] = (struct pollfd){L->fd[slots[i]], POLLIN, 0};
    if (n > 0 && poll(p, n, 0) < 0)
        return false;
    for (nfds_t i = 0; i < n; i++)
        if (!(p[i].revents & POLLHUP))
            return false;
    return true;
}

/* The job has closed fd 4, its result. The harness closes its stdout,
 * stderr and events first, then waits on fd 3 (python/stratq/_harness.py):
 * once those are read to their end, all the job had to say is here. While
 * it waits, its CPU time and peak memory are read (job_usage), and a
 * success is told at once, before its process's exit (which frees its
 * memory: a millisecond or more), which then only ends the job: it is
 * killed, having nothing left to do. Any other outcome is decided once the
 * process has ended, as it was; the harness is released either way. A
 * writer of those pipes left (a process the job forked), or the job's
 * process ended first: released now, decided at its end. */
static void loop_handover(struct job_loop *L)
{
    struct job_run *j = L->j;
    if (L->exited || L->handed || L->fd[SLOT_RES] >= 0)
        return;
    bool read_all = L->fd[SLOT_OUT] < 0 && L->fd[SLOT_ERR] < 0 && L->fd[SLOT_EV] < 0;
    if (!read_all && output_writers_gone(L))
        return; /* the next rounds read the rest */
    L->handed = true;
    if (read_all && !L->killed && loop_ctl_open(L) && sandbox_job_is_child() && job_usage(L, j)) {
        send_live_output(j); /* the last progress and log lines go first */
        int r = send_outcome(j, 0, true);
        if (r <= 0) {
            j->sent = true;
            j->sent_r = r;
            L->fd[SLOT_CTL] = -1; /* the next job's RUN may come now */
            loop_kill(L);
            /* Its exit (freeing what it touched: milliseconds) and the
             * cleanup after it then overlap the next spare's fork and set-up,
             * where what is left of this job cannot reach that spare. The
             * next job is read only once this one is gone, as ever. */
            if (sandbox_spare_beside_job())
                refill_spare();
        }
    }
    close_fd(&L->held_in);
}

/* Polls the job's descriptors (the job_slots table) until its process has
 * exited and its pipes are drained. Returns 0 or -errno. */
static int loop_poll(struct job_loop *L)
{
    for (;;) {
        struct pollfd p[SLOT__COUNT];
        bool watching = false;
        for (int i = 0; i < SLOT__COUNT; i++) {
            p[i] = (struct pollfd){L->fd[i], job_slots[i].events, 0};
            watching = watching || L->fd[i] >= 0;
        }
        if (L->exited && (!watching || util_mono_ms() >= L->drain_deadline))
            return 0;
        int n = poll(p, SLOT__COUNT, loop_timeout(L));
        if (n < 0 && errno != EINTR)
            return -errno;
        loop_timers(L);
        for (int i = 0; n > 0 && i < SLOT__COUNT; i++)
            if (p[i].revents && L->fd[i] >= 0)
                job_slots[i].ready(L);
        loop_handover(L);
    }
}

/* Runs one job to completion (or timeout) in child c, which takes the job
 * request from its stdin pipe. Fills the outputs of j; closes c's fds. */
static int job_run(struct job_run *j, struct child *c)
{
    int64_t start = util_mono_ms();
    struct job_loop L = {
        .j = j,
        .c = c,
        .pid = c->pid,
        .fd = {[SLOT_CTL] = j->ctl_fd,
               [SLOT_IN] = c->pipe[PIPE_IN],
               [SLOT_RES] = c->pipe[PIPE_RES],
               [SLOT_OUT] = c->pipe[PIPE_OUT],
               [SLOT_ERR] = c->pipe[PIPE_ERR],
               [SLOT_EV] = c->pipe[PIPE_EV],
               [SLOT_PID] = c->pidfd >= 0 ? steal_fd(&c->pidfd) : pidfd_open_(c->pid)},
        .held_in = -1,
        .start = start,
        .deadline = start + (int64_t)(j->timeout_s * 1000.0),
        .next_live = start + LIVE_OUTPUT_MS,
        /* Without a tmpfs of its own, the job's directory is counted now
         * and then (tmp_check). */
        .next_tmp = c->sj.dir_mounted || c->dir_fd < 0 ? INT64_MAX : start + TMP_CHECK_MS,
    };
    int r = 0;

    if (L.fd[SLOT_PID] < 0) {
        r = -errno;
        kill(L.pid, SIGKILL);
        waitpid(L.pid, &j->wait_status, 0);
        sandbox_job_end(&c->sj);
    } else {
        j->out.limit = j->err.limit = j->max_output;
        j->res.limit = j->max_result;
        fcntl(L.fd[SLOT_IN], F_SETFL, O_NONBLOCK);
        r = loop_poll(&L);
        if (wait4(L.pid, &j->wait_status, 0, &j->ru) < 0)
            r = -errno;
        if (!L.exited)
            j->wall_ms = util_mono_ms() - start;
        /* Whatever of the job is left goes: the processes in its cgroup,
         * then any child of this process but the next spare (forked
         * beside a success's exit, in a cgroup of its own). */
        j->full = sandbox_job_full(&c->sj);
        j->oom = sandbox_job_end(&c->sj);
        end_descendants(ex.spare.pid);
        /* The last progress and log lines go before the outcome. */
        if (loop_ctl_open(&L))
            send_live_output(j);
    }
    for (int i = 0; i < SLOT__COUNT; i++)
        if (i != SLOT_CTL)
            close_fd(&L.fd[i]);
    close_fd(&L.held_in);
    return r;
}

static json_t *error_obj(const char *type, const char *message)
{
    return json_pack("{s:s, s:s}", "type", type, "message", message);
}

static long long cpu_ms_of(const struct rusage *ru)
{
    return (long long)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000 +
           (long long)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
}

/* What the job's run left for the decision (outcome.h): how its process
 * ended, its limits, what this process did and saw. */
static struct outcome_facts run_facts(const struct job_run *j)
{
    return (struct outcome_facts){
        .signal = WIFSIGNALED(j->wait_status) ? WTERMSIG(j->wait_status) : 0,
        .exit_code = WIFEXITED(j->wait_status) ? WEXITSTATUS(j->wait_status) : -1,
        .cpu_ms = cpu_ms_of(&j->ru),
        .timeout_s = j->timeout_s,
        .memory_mb = j->memory_mb,
        .max_output = j->max_output,
        .max_result = j->max_result,
        .result_limits = j->result_limits,
        .max_tmp = config_int(CFG_JOB_MAX_TMP),
        .max_tmp_entries = TMP_MAX_ENTRIES,
        .cancelled = j->cancelled,
        .timed_out = j->timed_out,
        .output_over = j->out.overflow || j->err.overflow,
        .result_over = j->res.overflow,
        .tmp_exceeded = j->tmp_exceeded,
        .tmp_too_many = j->tmp.too_many,
        .tmp_full = (j->full & SANDBOX_FULL_DIR) != 0,
        .shm_full = (j->full & SANDBOX_FULL_SHM) != 0,
        .oom = j->oom,
        .header_check = JSONV_SYNTAX,
        .header_status = -1,
    };
}

/* Reads what the job wrote on fd 4 into f: the harness writes a header
 * line, then a success's result as JSON. The job can write the header too,
 * as long as the cap: it is parsed only within the header's caps. A
 * success's result is checked here, once, within the caps, without being
 * parsed (a parse would cost a json_t per value), and then stored and
 * served as the job wrote it: *ret_result is its text. Returns the parsed
 * header (caller frees with json_decref()), or NULL. */
static json_t *read_header(const struct job_run *j, struct outcome_facts *f,
                           const char **ret_result)
{
    json_t *header = NULL;
    char *nl = j->res.len && !j->res.overflow ? memchr(j->res.buf, '\n', j->res.len) : NULL;
    if (!nl)
        return NULL;
    size_t header_len = (size_t)(nl - j->res.buf);
    f->header_check = jsonv_check(j->res.buf, header_len, &outcome_header_limits, NULL);
    if (f->header_check == JSONV_OK)
        header = json_loadb(j->res.buf, header_len, JSON_ALLOW_NUL, NULL);
    const char *hs = json_string_value(json_object_get(header, "status"));
    f->header_named = hs != NULL;
    f->header_status = queue_status_parse(hs);
    f->header_error = json_is_object(json_object_get(header, "error"));
    if (f->header_status == QUEUE_STATUS_SUCCEEDED) {
        *ret_result = nl + 1;
        f->result_len = j->res.len - (size_t)(nl + 1 - j->res.buf);
        f->result_check = jsonv_check(*ret_result, f->result_len, &j->result_limits, &f->result_at);
    }
    return header;
}

/* The job's DONE: its status (outcome_decide), error and usage; a
 * success's result (its bytes in the capture, validated) in *ret_result. */
static json_t *build_done(struct job_run *j, const char **ret_result, size_t *ret_len)
{
    struct outcome_facts f = run_facts(j);
    const char *result = NULL;
    json_t *header = read_header(j, &f, &result);
    json_t *error = NULL;
    struct outcome o;

    outcome_decide(&f, &o);
    if (o.status == QUEUE_STATUS_SUCCEEDED) {
        *ret_result = result;
        *ret_len = f.result_len;
    }
    if (o.from_header & OUTCOME_FROM_HEADER_ERROR)
        error = json_incref(json_object_get(header, "error"));
    else if (o.error_type)
        error = error_obj(o.error_type, o.message);
    if (o.from_header & OUTCOME_FROM_HEADER_TRACEBACK) {
        /* Only the traceback, a string, is taken from the job's header. */
        json_t *tb = json_object_get(json_object_get(header, "error"), "traceback");
        json_object_set_new(error, "traceback",
                            json_is_string(tb) ? json_incref(tb) : json_string(""));
    }
    json_decref(header);
    json_t *done = json_pack("{s:s, s:{s:I, s:I, s:I}}", "status", queue_status_name(o.status),
                             "usage", "wall_ms", (json_int_t)j->wall_ms, "cpu_ms",
                             (json_int_t)f.cpu_ms, "max_rss_kb", (json_int_t)j->ru.ru_maxrss);
    if (error)
        json_object_set_new(done, "error", error);
    return done;
}

/* Tells the supervisor how the job ended: the whole output it kept
 * (OUTPUT_ALL), a success's result (RESULT: the bytes the job wrote,
 * validated once, in read_header), then DONE. run_error: why the
 * executor could not run the job at all. only_success: tells nothing (and
 * returns 1) unless the job succeeded. Returns 0 or -errno. */
static int send_outcome(struct job_run *j, int run_error, bool only_success)
{
    const char *result = NULL;
    size_t result_len = 0;
    json_t *done;
    if (run_error < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the executor could not run the job: %s", strerror(-run_error));
        done = json_pack("{s:s, s:o}", "status", queue_status_name(QUEUE_STATUS_CRASHED), "error",
                         error_obj("ExecutorError", msg));
    } else {
        done = build_done(j, &result, &result_len);
    }
    if (only_success && !result) { /* build_done gives a result only to a success */
        json_decref(done);
        return 1;
    }
    _cleanup_free_ char *out = util_utf8_sanitize(j->out.buf ? j->out.buf : "", j->out.len);
    _cleanup_free_ char *err = util_utf8_sanitize(j->err.buf ? j->err.buf : "", j->err.len);
    int r = done && out && err ? 0 : -ENOMEM;
    if (r == 0)
        r = frame_send_pair(EXECUTOR_FD, FRAME_OUTPUT_ALL, out, strlen(out), err, strlen(err));
    if (r == 0 && result)
        r = frame_send(EXECUTOR_FD, FRAME_RESULT, result, result_len);
    if (r == 0)
        r = frame_send_object(EXECUTOR_FD, FRAME_DONE, done);
    json_decref(done);
    return r;
}

/* Copies the harness's package (DIR/stratq/\*.py) into WORK/sdk, owned by
 * the executor and readable by all, for jobs of another uid: the checkout
 * it came from may be out of their reach (a home directory of mode 0700).
 * Returns the copy's directory (malloc'd), or NULL with errno set. */
static char *stage_harness(const char *dir, const char *work)
{
    char path[4096];
    _cleanup_free_ char *top = NULL;
    if (asprintf(&top, "%s/sdk", work) < 0)
        return NULL;
    snprintf(path, sizeof(path), "%s/stratq", top);
    /* (chmod: the executor's umask is not the jobs' business.) */
    if ((mkdir(top, 0755) < 0 && errno != EEXIST) || chmod(top, 0755) < 0 ||
        (mkdir(path, 0755) < 0 && errno != EEXIST) || chmod(path, 0755) < 0)
        return NULL;
    snprintf(path, sizeof(path), "%s/stratq", dir);
    DIR *d = opendir(path);
    if (!d)
        return NULL;
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".py"))
            continue;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/stratq/%s", dir, e->d_name);
        if ((r = util_read_file(path, 16 << 20, &buf, &len)) < 0)
            break;
        snprintf(path, sizeof(path), "%s/stratq/%s", top, e->d_name);
        int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0 || fchmod(out, 0644) < 0 || (r = util_write_all(out, buf, len)) < 0)
            r = r < 0 ? r : -errno;
        if (out >= 0 && close(out) < 0 && r == 0)
            r = -errno;
    }
    closedir(d);
    if (r < 0) {
        errno = -r;
        return NULL;
    }
    return steal_pointer(&top);
}

/* Removing a directory tree a job wrote. The job is hostile and its
 * processes are gone by now. The walk goes by directory fds (openat,
 * unlinkat, fstatat relative to the directory holding the entry), never by
 * a full path: a tree may be deeper than PATH_MAX. It never follows a
 * symbolic link, never enters another filesystem (a directory whose st_dev
 * differs is left alone), and gives every directory it enters u+rwx first
 * (a job may leave mode 000 directories, as its own uid).
 *
 * Its depth is bounded by an explicit, heap-allocated stack of open
 * directories, at most REMOVE_MAX_DEPTH of them: past that (or when the
 * executor runs out of fds), the subdirectory is renamed up into the top
 * directory under a fresh name (renameat2 RENAME_NOREPLACE, the same
 * filesystem) and removed from there later. A directory whose end was
 * reached is read again as long as the last pass removed or moved
 * something, since entries can be missed while a directory changes. */
#define REMOVE_MAX_DEPTH 128

struct rm_frame {
    int fd;
    DIR *d;
    char *name;      /* in the parent frame's directory */
    size_t progress; /* entries removed or moved in this pass */
};

static void rm_frame_close(struct rm_frame *f)
{
    if (f->d)
        closedir(f->d); /* closes f->fd too */
    else if (f->fd >= 0)
        close(f->fd);
    free(f->name);
}

/* Gives the directory NAME (in DIRFD) u+rwx when it lacks any of them, and
 * opens it: O_NOFOLLOW, so a symbolic link put there in the meantime is
 * not entered. */
static int rm_open_dir(int dirfd, const char *name, const struct stat *st)
{
    if ((st->st_mode & S_IRWXU) != S_IRWXU)
        fchmodat(dirfd, name, (st->st_mode & 07777) | S_IRWXU, 0);
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* A DIR reading the directory FD from its start, through a descriptor of
 * its own (FD stays open). */
static DIR *dir_of(int fd)
{
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        return NULL;
    }
    rewinddir(d); /* a dup shares the offset, which an earlier read moved */
    return d;
}

/* The walk's stack of open directories (rm_frame), with the top one
 * first, and the directory it empties. */
struct rm_walk {
    struct rm_frame *stack;
    size_t n, cap;
    int top;
    dev_t dev;
    unsigned moved; /* directories renamed up into the top one so far */
};

/* The directory NAME (in f's directory) is too deep to hold open: up into
 * the top directory it goes, under a fresh name, to be emptied from there. */
static void rm_move_up(struct rm_walk *w, struct rm_frame *f, const char *name)
{
    if (w->n <= 1)
        return;
    char fresh[64];
    int r;
    do {
        snprintf(fresh, sizeof(fresh), ".stratq-rm-%u", w->moved++);
        r = renameat2(f->fd, name, w->top, fresh, RENAME_NOREPLACE);
    } while (r < 0 && errno == EEXIST && w->moved != 0);
    if (r == 0) {
        f->progress++;
        w->stack[0].progress++;
    }
}

/* Enters the directory sub (an open fd), NAME in the current one: pushes
 * it on the stack, or closes it when it cannot be held. */
static void rm_push(struct rm_walk *w, int sub, const char *name)
{
    DIR *sd = NULL;
    char *copy = strdup(name);
    if (w->n == w->cap) {
        struct rm_frame *bigger = realloc(w->stack, 2 * w->cap * sizeof(*w->stack));
        if (bigger) {
            w->stack = bigger;
            w->cap *= 2;
        }
    }
    if (w->n == w->cap || !copy || !(sd = fdopendir(sub))) {
        close(sub);
        free(copy);
        return;
    }
    w->stack[w->n++] = (struct rm_frame){.fd = sub, .d = sd, .name = copy};
}

/* The current directory was read to its end: read again when the pass
 * removed or moved anything, else it is removed from its parent. */
static void rm_pop(struct rm_walk *w)
{
    struct rm_frame *f = &w->stack[w->n - 1];
    if (f->progress > 0) { /* read it again: something may be left */
        f->progress = 0;
        rewinddir(f->d);
        return;
    }
    struct rm_frame done = *f;
    w->n--;
    if (w->n > 0 && unlinkat(w->stack[w->n - 1].fd, done.name, AT_REMOVEDIR) == 0)
        w->stack[w->n - 1].progress++;
    rm_frame_close(&done);
}

/* One entry of the current directory: a file goes, a directory on the same
 * filesystem is entered (or moved up when too deep). */
static void rm_entry(struct rm_walk *w, const char *name)
{
    struct rm_frame *f = &w->stack[w->n - 1];
    struct stat st;
    if (!strcmp(name, ".") || !strcmp(name, "..") ||
        fstatat(f->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(f->fd, name, 0) == 0)
            f->progress++;
        return;
    }
    if (st.st_dev != w->dev) /* a mount point: not ours to empty */
        return;
    int sub = w->n < REMOVE_MAX_DEPTH ? rm_open_dir(f->fd, name, &st) : -1;
    if (sub < 0 && (w->n >= REMOVE_MAX_DEPTH || errno == EMFILE || errno == ENFILE))
        rm_move_up(w, f, name);
    else if (sub >= 0)
        rm_push(w, sub, name);
}

/* Whether the directory FD holds nothing. */
static bool dir_is_empty(int fd)
{
    DIR *d = dir_of(fd);
    if (!d)
        return false;
    bool left = false;
    struct dirent *e;
    while (!left && (e = readdir(d)))
        left = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return !left;
}

/* Empties the directory TOP (an fd, kept open) of everything on its
 * filesystem. Returns 0 when it is empty, -1 when something is left. */
static int empty_dir(int top)
{
    struct stat st;
    if (fstat(top, &st) < 0)
        return -1;
    if ((st.st_mode & S_IRWXU) != S_IRWXU)
        fchmod(top, (st.st_mode & 07777) | S_IRWXU);
    struct rm_walk w = {
        .stack = calloc(16, sizeof(struct rm_frame)), .cap = 16, .top = top, .dev = st.st_dev};
    DIR *d = dir_of(top);
    if (!w.stack || !d) {
        if (d)
            closedir(d);
        free(w.stack);
        return -1;
    }
    w.stack[w.n++] = (struct rm_frame){.fd = dirfd(d), .d = d};
    while (w.n > 0) {
        errno = 0;
        struct dirent *e = readdir(w.stack[w.n - 1].d);
        if (e)
            rm_entry(&w, e->d_name);
        else
            rm_pop(&w);
    }
    free(w.stack);
    return dir_is_empty(top) ? 0 : -1;
}

/* Removes the directory held open as FD, named NAME in the directory
 * PARENT: its contents by the fd, then the name only if it is still that
 * directory (a job may have renamed its directory and put something else
 * there). */
static void remove_dir_fd(int parent, const char *name, int fd)
{
    struct stat held, named;
    empty_dir(fd);
    if (fstat(fd, &held) == 0 && fstatat(parent, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino)
        unlinkat(parent, name, AT_REMOVEDIR);
}

/* Removes the directory PATH and everything in it (the executor's work
 * directory, when it ends). */
static void remove_tree(const char *path)
{
    _cleanup_free_ char *copy = strdup(path);
    char *slash = copy ? strrchr(copy, '/') : NULL;
    if (!slash || !slash[1])
        return;
    *slash = '\0';
    int parent = open(copy[0] ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = parent >= 0
                 ? openat(parent, slash + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                 : -1;
    if (fd >= 0) {
        remove_dir_fd(parent, slash + 1, fd);
        close(fd);
    }
    if (parent >= 0)
        close(parent);
}

/* After a job: everything in the work directory but the executor's copy
 * of the harness and the next spare's directory goes (what a job of the
 * executor's own uid may have put there, or its own directory under
 * another name). */
static void sweep_work_dir(void)
{
    DIR *d = dir_of(ex.work_fd);
    if (!d)
        return;
    const char *spare = ex.spare.pid > 0 ? strrchr(ex.spare.sj.dir, '/') : NULL;
    struct dirent *e;
    struct stat top;
    if (fstat(ex.work_fd, &top) < 0)
        top.st_dev = 0;
    while ((e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (ex.staged && !strcmp(e->d_name, "sdk")) || (spare && !strcmp(e->d_name, spare + 1)) ||
            fstatat(ex.work_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            unlinkat(ex.work_fd, e->d_name, 0);
            continue;
        }
        int sub = st.st_dev == top.st_dev ? rm_open_dir(ex.work_fd, e->d_name, &st) : -1;
        if (sub >= 0) {
            remove_dir_fd(ex.work_fd, e->d_name, sub);
            close(sub);
        }
    }
    closedir(d);
}

/* The executor's part of a job's request, the first line the harness
 * reads on its fd 3 (the supervisor's RUN follows as it came): the job's
 * directory, the mode, the data directory, the result's cap, the RUN's
 * length (the pipe is not closed after it) and, for a warm child, which
 * sets its limits itself, its address space before the job and the same
 * CPU-time limit as a cold child's (outcome_cpu_rlimit). Caller frees. */
static char *run_settings(const struct job_run *j, const char *dir, size_t run_len)
{
    json_t *s = json_pack("{s:s, s:s, s:I, s:I}", "tmpdir", dir, "mode", ex.warm ? "warm" : "cold",
                          "max_result", (json_int_t)j->max_result, "run_len", (json_int_t)run_len);
    if (s && ex.data_dir[0]) {
        json_object_set_new(s, "data_dir", json_string(ex.data_dir));
        json_object_set_new(s, "data_fd", json_integer(SANDBOX_DATA_FD));
    }
    if (s && ex.warm) {
        struct rlimit cpu = outcome_cpu_rlimit(j->timeout_s);
        json_object_set_new(s, "base_vm_kb", json_integer(ex.spare_vm_kb));
        json_object_set_new(
            s, "cpu_rlimit",
            json_pack("[I, I]", (json_int_t)cpu.rlim_cur, (json_int_t)cpu.rlim_max));
    }
    char *text = s ? json_dumps(s, JSON_COMPACT) : NULL;
    json_decref(s);
    return text;
}

/* The child for a job, with its own directory: the warm spare made ahead
 * of time, or a new one that execs an interpreter. */
static int job_child(const struct job_run *j, struct child *c)
{
    if (!ex.warm)
        return child_spawn(j, c);
    if (ex.spare.pid > 0 && !child_alive(&ex.spare)) {
        log_warn("the spare job child ended before its job; forking another", "{}");
        child_discard(&ex.spare);
    }
    refill_spare();
    *c = ex.spare;
    ex.spare = (struct child)CHILD_NONE;
    if (c->pid <= 0)
        return -ECHILD;
    sandbox_job_memory(&c->sj, j->memory_mb);
    ex.last_memory_mb = j->memory_mb;
    return 0;
}

static void job_run_free(struct job_run *j)
{
    free(j->out.buf);
    free(j->err.buf);
    free(j->res.buf);
    json_decref(j->ev.progress);
    json_decref(j->ev.logs);
}

/* Runs the job of a RUN message and tells the supervisor how it ended.
 * Returns 0, or -errno when the supervisor can no longer be told. */
static int run_job(const struct frame_msg *run)
{
    json_t *spec = json_object_get(run->json, "spec");
    struct job_run j = {
        .timeout_s = json_number_value(json_object_get(spec, "timeout_s")),
        .memory_mb = json_integer_value(json_object_get(spec, "memory_mb")),
        .max_output = (size_t)config_int(CFG_MAX_OUTPUT),
        .max_result = (size_t)config_int(CFG_MAX_RESULT),
        .result_limits = {(size_t)config_int(CFG_MAX_RESULT_DEPTH),
                          (size_t)config_int(CFG_MAX_RESULT_VALUES)},
        .ctl_fd = EXECUTOR_FD,
    };
    struct child c = CHILD_NONE;
    int r = job_child(&j, &c);
    _cleanup_free_ char *settings = run_settings(&j, r == 0 ? c.sj.dir : "", run->len);
    j.input[0] = (struct iovec){settings, settings ? strlen(settings) : 0};
    j.input[1] = (struct iovec){"\n", 1};
    j.input[2] = (struct iovec){run->data, run->len};
    if (r == 0 && !settings) {
        child_discard(&c);
        r = -ENOMEM;
    }
    if (r == 0)
        r = job_run(&j, &c);
    if (j.ctl_error == -EPROTO)
        log_error("bad message from the supervisor", "{s:s}", "error", ex.rd.why);
    /* The job has ended (job_run: its processes are gone): its outcome
     * goes first, unless a success was told before its process's exit
     * (loop_handover), then its directory (a tmpfs's unmount and rmdir take
     * a millisecond or more), before the next job is read. */
    int sr = j.sent ? j.sent_r : j.ctl_error ? j.ctl_error : send_outcome(&j, r, false);
    job_dir_remove(&c);
    sweep_work_dir();
    job_run_free(&j);
    return sr;
}

/* The process's own settings, before anything is made: signals, dumpability,
 * the subreaper, the socket to the supervisor. */
static void executor_process_setup(void)
{
    /* The supervisor decides when to stop; a terminal's Ctrl-C must not kill
     * a job half-way. If the supervisor dies, its socket reaches end of
     * file, which every wait of the executor watches: the executor then
     * ends the job and leaves by its one way out, leaving nothing behind
     * (a parent-death SIGKILL would leave the work directory, the cgroups
     * and, without a pid namespace, the job's orphans). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    /* exec made this process dumpable again: without this, job code running
     * as the same uid could ptrace it or take its socket to the supervisor
     * with pidfd_getfd(). */
    prctl(PR_SET_DUMPABLE, 0);
    /* Orphans a job leaves behind (a grandchild that called setsid()) are
     * re-parented here rather than to init, so they can be found and killed
     * when the job ends. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* The supervisor's messages are read as they come, never waited for
     * inside a job's poll loop. */
    frame_reader_init(&ex.rd, FRAME_DOWN);
    fcntl(EXECUTOR_FD, F_SETFL, O_NONBLOCK);
}

/* Where executors make their work directories. */
#define WORK_BASE "/tmp"
#define WORK_PREFIX "stratq-exec-"

/* Removes the work directories of executors that ended without their own
 * cleanup (a SIGKILL, the OOM killer): every live executor holds an flock
 * on its work directory for its whole life, so a directory whose lock can be
 * taken is nobody's. Only this uid's directories are looked at. */
static void sweep_dead_work_dirs(void)
{
    int base = open(WORK_BASE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = base >= 0 ? dir_of(base) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        if (strncmp(e->d_name, WORK_PREFIX, strlen(WORK_PREFIX)) != 0 ||
            fstatat(base, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        int fd = openat(base, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            remove_dir_fd(base, e->d_name, fd);
            log_info("removed the work directory of an executor that is gone", "{s:s}", "dir",
                     e->d_name);
        }
        close(fd);
    }
    if (d)
        closedir(d);
    if (base >= 0)
        close(base);
}

/* Makes the executor's work directory, which holds one directory per job,
 * and locks it for the executor's life (sweep_dead_work_dirs). It is made
 * under another name and renamed once locked, so that no other executor's
 * sweep can take it in between. Returns 0 or -1 (logged). */
static int make_work_dir(void)
{
    char fresh[64];
    snprintf(fresh, sizeof(fresh), "%s/stratq-new-XXXXXX", WORK_BASE);
    if (!mkdtemp(fresh)) {
        log_error("cannot make the executor's work directory", "{s:s, s:s}", "dir", fresh, "error",
                  strerror(errno));
        return -1;
    }
    ex.work_fd = open(fresh, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    snprintf(ex.work_dir, sizeof(ex.work_dir), "%s/" WORK_PREFIX "%s", WORK_BASE,
             fresh + strlen(WORK_BASE "/stratq-new-"));
    if (ex.work_fd < 0 || flock(ex.work_fd, LOCK_EX) < 0 || rename(fresh, ex.work_dir) < 0) {
        log_error("cannot make the executor's work directory", "{s:s, s:s}", "dir", fresh, "error",
                  strerror(errno));
        rmdir(fresh);
        ex.work_dir[0] = '\0';
        return -1;
    }
    sweep_dead_work_dirs();
    return 0;
}

static void log_layers(const struct sandbox_status *sst)
{
    for (int i = 0; i < SB__COUNT; i++)
        if (!sst->active[i] && i <= SB_SESSION)
            log_warn("a sandbox layer is unavailable", "{s:s, s:s}", "layer", sandbox_layer_name(i),
                     "reason", sst->why[i]);
    if (!sst->active[SB_MOUNTNS])
        log_warn("jobs get no /dev/shm: without the mount namespace it would be shared with "
                 "every other job of this uid; multiprocessing's locks, Pool and shared_memory "
                 "need the mountns layer (docs/security.md)",
                 "{s:s}", "mountns", sst->why[SB_MOUNTNS]);
    log_info("sandbox", "{s:o}", "layers", json_loads(ex.layers ? ex.layers : "{}", 0, NULL));
}

/* The sandbox: which layers this host allows, set up once here for every
 * job to come. Returns 0 or -1 (logged). */
static int executor_sandbox(void)
{
    struct sandbox_status sst;
    struct sandbox_options sopt;
    char err[256];
    sandbox_options_load(&sopt);
    if (sandbox_probe(&sst, &sopt, err, sizeof(err)) < 0) {
        log_error("bad sandbox settings", "{s:s}", "error", err);
        return -1;
    }
    /* Jobs run in their own temporary directories: the data directory is
     * passed on absolute. */
    if (config_str(CFG_DATA_DIR)[0] && !realpath(config_str(CFG_DATA_DIR), ex.data_dir))
        log_warn("the data directory cannot be found; jobs will see none", "{s:s, s:s}", "dir",
                 config_str(CFG_DATA_DIR), "error", strerror(errno));
    /* Jobs of their own uid reach their temporary directories and the
     * harness's copy through the work directory, but cannot list it. */
    if (sst.active[SB_UID]) {
        chmod(ex.work_dir, 0711);
        char *staged = stage_harness(ex.harness_dir, ex.work_dir);
        if (!staged) {
            log_error("cannot copy the harness for the jobs' uid", "{s:s, s:s}", "harness",
                      ex.harness_dir, "error", strerror(errno));
            return -1;
        }
        free(ex.harness_dir);
        ex.harness_dir = staged;
        ex.staged = true;
    }
    /* Warm jobs may exec the interpreter they were forked from (sys.executable,
     * for multiprocessing's spawn and its resource tracker); cold jobs are
     * exec'd as STRATQ_PYTHON. */
    int r = sandbox_prepare(ex.harness_dir, ex.warm ? WARM_PYTHON : ex.python, ex.data_dir);
    if (r < 0) {
        log_error("cannot build the jobs' seccomp filter", "{s:s}", "error", strerror(-r));
        return -1;
    }
    /* Before the warm interpreter starts threads (a user namespace needs a
     * single-threaded caller). */
    if ((r = sandbox_executor_enter()) < 0) {
        log_error("cannot enter the jobs' namespaces", "{s:s}", "error", strerror(-r));
        return -1;
    }
    ex.layers = sandbox_status_json(&sst);
    log_layers(&sst);
    return 0;
}

/* Everything the executor needs before it says READY: the harness, the
 * mode, the work directory, the sandbox, the warm interpreter and its
 * first spare. Returns 0, or 1 (the exit code; logged). */
static int executor_setup(void)
{
    char err[256];
    ex.harness_dir = util_find_harness_dir(config_str(CFG_HARNESS_DIR));
    if (!ex.harness_dir) {
        log_error("cannot find the stratq Python harness; set STRATQ_HARNESS_DIR", "{}");
        return 1;
    }
    ex.envp = launch_env();
    ex.python = config_str(CFG_PYTHON);
    const char *mode = config_str(CFG_MODE);
    if (strcmp(mode, "warm") != 0 && strcmp(mode, "cold") != 0) {
        log_error("STRATQ_MODE must be warm or cold", "{s:s}", "mode", mode);
        return 1;
    }
    ex.warm = !strcmp(mode, "warm");
    if (!ex.warm && access(ex.python, X_OK) < 0) {
        log_error("the Python interpreter is not executable; set STRATQ_PYTHON", "{s:s}", "python",
                  ex.python);
        return 1;
    }
    if (make_work_dir() < 0 || executor_sandbox() < 0)
        return 1;
    if (ex.warm) {
        int64_t t0 = util_mono_ms();
        if (warm_init(ex.harness_dir, config_str(CFG_PRELOAD), err, sizeof(err)) < 0) {
            log_error("cannot start warm mode", "{s:s}", "error", err);
            return 1;
        }
        log_info("warm interpreter ready", "{s:s, s:I}", "preload", config_str(CFG_PRELOAD),
                 "init_ms", (json_int_t)(util_mono_ms() - t0));
        refill_spare();
    }
    log_debug("executor ready", "{s:s, s:s, s:s, s:s}", "mode", mode, "python", ex.python,
              "harness", ex.harness_dir, "work_dir", ex.work_dir);
    return 0;
}

/* Says READY, then runs each RUN the supervisor sends until it closes the
 * socket. Returns the exit code: 0 when the supervisor went away, 1 when
 * it broke the protocol or could not be written to. */
static int executor_serve(void)
{
    json_t *ready = json_pack("{s:s, s:o}", "version", STRATQ_VERSION, "sandbox",
                              json_loads(ex.layers ? ex.layers : "{}", 0, NULL));
    int r = frame_send_object(EXECUTOR_FD, FRAME_READY, ready);
    json_decref(ready);
    if (r < 0)
        return 1;
    for (;;) {
        _cleanup_frame_msg_ struct frame_msg m = {0};
        r = frame_recv(EXECUTOR_FD, &ex.rd, &m, -1);
        if (r == -EPIPE)
            return 0;
        if (r < 0) {
            log_error("bad message from the supervisor", "{s:s}", "error",
                      r == -EPROTO ? ex.rd.why : strerror(-r));
            return 1;
        }
        /* A CANCEL here crossed the end of the job it was meant for. */
        r = m.type == FRAME_RUN ? run_job(&m) : 0;
        if (r < 0)
            return r == -EPIPE ? 0 : 1;
        /* The next job's child is forked now, off the job's path: while the
         * supervisor records this outcome and fetches the next job. */
        refill_spare();
        prime_spare();
    }
}

static int64_t tv_us(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int64_t cpu_us_of(const struct rusage *a, const struct rusage *b)
{
    return tv_us(b->ru_utime) - tv_us(a->ru_utime) + tv_us(b->ru_stime) - tv_us(a->ru_stime);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* `stratq-executor --fork-floor N` (make bench-exec): the floor under a
 * warm job's cost, measured on this very executor once it is set up as for
 * jobs (same preloads, same memory state, the spare discarded): N times a
 * fork of the interpreter whose child exits at once (fork() and _exit():
 * the kernel's part alone, not even CPython's at-fork hooks), and the wait
 * for it. Prints one JSON line: CPU per fork+exit+wait (the parent's
 * and the children's, which pay the exit's unmapping), wall time per
 * round (mean and p50) and the executor's size. Returns the exit code. */
static int fork_floor(long n)
{
    struct rusage s0, c0, s1, c1;
    if (!ex.warm) {
        log_error("the fork floor is that of the warm interpreter: run it with STRATQ_MODE=warm",
                  "{}");
        return 2;
    }
    int64_t *wall = calloc((size_t)n, sizeof(*wall));
    if (!wall)
        return 1;
    if (ex.spare.pid > 0)
        child_discard(&ex.spare);
    if (sandbox_fork_plain() < 0) {
        free(wall);
        log_error("fork floor: cannot fork outside the jobs' pid namespace", "{}");
        return 1;
    }
    getrusage(RUSAGE_SELF, &s0);
    getrusage(RUSAGE_CHILDREN, &c0);
    int64_t t0 = util_mono_us();
    for (long i = 0; i < n; i++) {
        int64_t t = util_mono_us();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
            free(wall);
            log_error("fork floor: cannot fork or wait", "{s:s}", "error", strerror(errno));
            return 1;
        }
        wall[i] = util_mono_us() - t;
    }
    int64_t total = util_mono_us() - t0;
    getrusage(RUSAGE_SELF, &s1);
    getrusage(RUSAGE_CHILDREN, &c1);
    qsort(wall, (size_t)n, sizeof(*wall), cmp_i64);
    int64_t parent = cpu_us_of(&s0, &s1), children = cpu_us_of(&c0, &c1);
    long long rss_kb = 0, anon_kb = 0, maps = 0;
    char line[512];
    FILE *f = fopen("/proc/self/smaps_rollup", "re");
    while (f && fgets(line, sizeof(line), f)) {
        sscanf(line, "Rss: %lld kB", &rss_kb);
        sscanf(line, "Anonymous: %lld kB", &anon_kb);
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/maps", "re");
    while (f && fgets(line, sizeof(line), f))
        maps += strchr(line, '\n') != NULL;
    if (f)
        fclose(f);
    printf("{\"forks\":%ld,\"cpu_us\":%.1f,\"parent_cpu_us\":%.1f,\"child_cpu_us\":%.1f,"
           "\"wall_us\":%.1f,\"wall_p50_us\":%lld,\"rss_kb\":%lld,\"anon_kb\":%lld,"
           "\"vm_kb\":%lld,"
           "\"maps\":%lld,\"preload\":\"%s\"}\n",
           n, (double)(parent + children) / (double)n, (double)parent / (double)n,
           (double)children / (double)n, (double)total / (double)n, (long long)wall[n / 2], rss_kb,
           anon_kb, own_vm_kb(), maps, config_str(CFG_PRELOAD));
    free(wall);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* The one way out, whatever was made: the spare, the sandbox (the
 * cgroups), the work directory (and with it every job directory), the
 * rest of the executor's state. Each part accepts what was never made. */
static void executor_release(void)
{
    if (ex.spare.pid > 0)
        child_discard(&ex.spare);
    sandbox_release();
    if (ex.work_dir[0])
        remove_tree(ex.work_dir);
    ex.work_dir[0] = '\0';
    close_fd(&ex.work_fd);
    frame_reader_clear(&ex.rd);
    launch_env_free(ex.envp);
    ex.envp = NULL;
    free(ex.harness_dir);
    ex.harness_dir = NULL;
    free(ex.layers);
    ex.layers = NULL;
}

int executor_main(int argc, char **argv)
{
    char err[256];
    char **args;
    int nargs, rc = 0;

    log_set_component("executor");
    if (config_load(CMD_EXECUTOR, argc, argv, &args, &nargs, err, sizeof(err)) != 0) {
        fprintf(stderr, "stratq-executor: %s\n", err);
        rc = 2;
    } else {
        log_set_level_name(config_str(CFG_LOG_LEVEL));
        executor_process_setup();
        rc = executor_setup();
        if (rc == 0)
            rc = config_int(CFG_FORK_FLOOR) > 0 ? fork_floor(config_int(CFG_FORK_FLOOR))
                                                : executor_serve();
    }
    executor_release();
    config_free();
    /* In warm mode the interpreter is never finalized (a fork server's
     * interpreter is not worth the teardown): leave without exit handlers. */
    fflush(NULL);
    _exit(rc);
}

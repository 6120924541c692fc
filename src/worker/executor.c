/* The executor process and how a job child is run (cold mode: fork+exec of
 * a Python interpreter with the harness). */
#define _GNU_SOURCE
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
#include "sandbox.h"
#include "warm.h"

/* Environment variables handed through to the executor and its jobs. They
 * carry no secrets; OpenBLAS needs these two on some processors. */
static const char *const passed_env[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", NULL};

/* The executor's state across jobs. */
static struct {
    bool warm;
    const char *python;
    const char *harness_dir;
    char **envp;
    char work_dir[256];  /* holds one temporary directory per job */
    int work_fd;         /* work_dir, open (O_DIRECTORY) */
    bool staged;         /* work_dir/sdk is the executor's copy of the harness */
    char data_dir[4096]; /* STRATQ_DATA_DIR, absolute */
    /* Warm mode: a child forked ahead of time, waiting for its job. */
    struct child {
        pid_t pid;
        int in_w, res_r, out_r, err_r, ev_r;
        int dir_fd; /* the job's own directory (sj.dir), held open */
        struct sandbox_job sj;
    } spare;
    long long spare_vm_kb; /* the executor's size when the spare was forked */
} ex = {
    .work_fd = -1,
    .spare = {
        .pid = -1, .in_w = -1, .res_r = -1, .out_r = -1, .err_r = -1, .ev_r = -1, .dir_fd = -1}};

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
/* A log line as passed on: the job's msg and fields with ts_ms, written
 * again by jansson, which can make a number longer ("1e9" is
 * "1000000000.0"). */
#define EVENTS_ENTRY_MAX (2 * EVENTS_LINE_MAX)
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
    const char *python;
    const char *harness_dir;
    char *input; /* JSON for the harness */
    size_t input_len;
    double timeout_s;
    long long memory_mb;
    size_t max_output, max_result;
    struct jsonv_limits result_limits; /* STRATQ_MAX_RESULT_DEPTH, _VALUES */
    int ctl_fd; /* the socket to the supervisor: cancel requests in, output out */
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
};

/* Runs in a new child, before the job: only async-signal-safe calls, and
 * _exit() on failure. Gives the child its own session (so the whole job is
 * one process group the executor can kill), a parent-death signal, the job's
 * descriptors as 0..4 and nothing else, and default signal handling. */
static void child_setup(int devnull, int in_r, int res_w, int out_w, int err_w, int ev_w,
                        pid_t parent)
{
    struct rlimit rl = {0, 0};

    if (setsid() < 0)
        _exit(126);
    /* (In its own pid namespace the child sees no parent: getppid() is 0.) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (getppid() != parent && getppid() != 0))
        _exit(126);
    if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(in_r, 3) < 0 ||
        dup2(res_w, 4) < 0 || dup2(ev_w, 5) < 0)
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
 * stderr (which becomes the job's). */
static void enter_sandbox_or_die(const struct sandbox_job *sj)
{
    int r = sandbox_enter(sj);
    if (r < 0) {
        dprintf(2, "stratq: cannot enter the sandbox: %s\n", strerror(-r));
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
    rl.rlim_cur = (rlim_t)ceil(j->timeout_s) + 1;
    rl.rlim_max = rl.rlim_cur + 1;
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
 * appends it to the job's live log in Redis. */
static void send_live_output(struct job_run *j)
{
    size_t out_end = utf8_whole(j->out.buf ? j->out.buf : "", j->out.len);
    size_t err_end = utf8_whole(j->err.buf ? j->err.buf : "", j->err.len);
    if (out_end <= j->out_sent && err_end <= j->err_sent && !j->ev.progress && !j->ev.logs)
        return;
    char *o = util_utf8_sanitize(j->out.buf ? j->out.buf + j->out_sent : "", out_end - j->out_sent);
    char *e = util_utf8_sanitize(j->err.buf ? j->err.buf + j->err_sent : "", err_end - j->err_sent);
    json_t *msg =
        json_pack("{s:s, s:s, s:s}", "type", "output", "stdout", o ? o : "", "stderr", e ? e : "");
    if (msg && j->ev.progress)
        json_object_set(msg, "progress", j->ev.progress);
    if (msg && j->ev.logs)
        json_object_set(msg, "log", j->ev.logs);
    if (msg && frame_send_json(j->ctl_fd, msg) == 0) {
        j->out_sent = out_end;
        j->err_sent = err_end;
        json_decref(j->ev.progress);
        json_decref(j->ev.logs);
        j->ev.progress = j->ev.logs = NULL;
    }
    json_decref(msg);
    free(o);
    free(e);
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

/* Whether PID can no longer fork: stopped, a zombie, or gone. */
static bool cannot_fork(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold anything */
    char state = paren && paren[1] ? paren[2] : 'X';
    return state == 'T' || state == 't' || state == 'Z' || state == 'X';
}

/* Ends every process the last job left: every descendant of this process
 * (between jobs the executor has no child of its own; orphans come here,
 * the executor being a subreaper). Killing children round by round is not
 * enough: a chain whose bottom forks new levels while the top is killed
 * outlives any number of rounds. So each round first freezes the whole
 * tree from the top down: SIGSTOP, then, once the process is stopped (a
 * fork under way has finished), its children, which a stopped process can
 * no longer add to. When every process found is stopped, none can fork,
 * and SIGKILL takes them all. Rounds go on until the executor has no child
 * left (one of them may have woken another with SIGCONT before it was
 * stopped itself); how many processes a job has is bounded by
 * RLIMIT_NPROC. Returns how many processes were killed. */
static size_t end_descendants(void)
{
    size_t killed = 0;
    for (int round = 0; round < 1000; round++) {
        struct pids all = {0};
        add_children(getpid(), &all);
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
        free(all.v);
        /* Reap what has died; the others are found again next round. */
        int64_t until = util_mono_ms() + 100;
        for (;;) {
            pid_t w = waitpid(-1, NULL, WNOHANG);
            if (w < 0 || (w == 0 && util_mono_ms() >= until))
                break;
            if (w == 0)
                usleep(200);
        }
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
    int in[2] = {-1, -1}, res[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ev[2] = {-1, -1};
    int devnull = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC)), r = 0, dir_fd = -1;
    pid_t parent = getpid(), pid;
    struct sandbox_job sj;

    if (devnull < 0 || pipe_high(in) < 0 || pipe_high(res) < 0 || pipe_high(out) < 0 ||
        pipe_high(err) < 0 || pipe_high(ev) < 0) {
        r = -EMFILE;
        goto out;
    }
    if ((r = sandbox_job_begin(&sj)) < 0)
        goto out;
    if ((r = job_dir_make(&sj, &dir_fd)) < 0) {
        sandbox_job_end(&sj);
        goto out;
    }
    if (j)
        sandbox_job_memory(&sj, j->memory_mb);
    if ((r = sandbox_before_fork()) < 0) {
        sandbox_job_end(&sj);
        goto out;
    }
    pid = j ? fork() : warm_fork();
    if (pid < 0) {
        r = -errno;
        sandbox_job_end(&sj);
        goto out;
    }
    if (pid == 0) {
        child_setup(devnull, in[0], res[1], out[1], err[1], ev[1], parent);
        if (j)
            child_exec_cold(j, &sj);
        /* A warm spare is sandboxed before it waits for its job. */
        enter_sandbox_or_die(&sj);
        warm_child_run();
    }
    *c = (struct child){pid,
                        steal_fd(&in[1]),
                        steal_fd(&res[0]),
                        steal_fd(&out[0]),
                        steal_fd(&err[0]),
                        steal_fd(&ev[0]),
                        steal_fd(&dir_fd),
                        sj};
out:
    if (dir_fd >= 0) {
        struct child failed = {.dir_fd = steal_fd(&dir_fd), .sj = sj};
        job_dir_remove(&failed);
    }
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&res[0]);
    close_fd(&res[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&err[0]);
    close_fd(&err[1]);
    close_fd(&ev[0]);
    close_fd(&ev[1]);
    close_fd(&devnull);
    return r;
}

/* Ends a child that will run no job: kills and reaps it, closes its pipes,
 * removes its directory. */
static void child_discard(struct child *c)
{
    kill_job(c->pid);
    waitpid(c->pid, NULL, 0);
    c->pid = -1;
    sandbox_job_end(&c->sj);
    close_fd(&c->in_w);
    close_fd(&c->res_r);
    close_fd(&c->out_r);
    close_fd(&c->err_r);
    close_fd(&c->ev_r);
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

/* Runs one job to completion (or timeout) in child c, which takes the job
 * request from its stdin pipe. Fills the outputs of j; closes c's fds. */
static int job_run(struct job_run *j, struct child *c)
{
    int in[2] = {-1, c->in_w}, res[2] = {c->res_r, -1}, out[2] = {c->out_r, -1},
        err[2] = {c->err_r, -1}, ev = c->ev_r;
    int pidfd = -1, r = 0;
    pid_t pid = c->pid;
    size_t written = 0, total_output = 0;
    bool exited = false, killed = false;

    j->out.limit = j->err.limit = j->max_output;
    j->res.limit = j->max_result;
    int64_t start = util_mono_ms();
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    pidfd = pidfd_open_(pid);
    if (pidfd < 0) {
        r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, &j->wait_status, 0);
        sandbox_job_end(&c->sj);
        goto out;
    }

    int64_t deadline = start + (int64_t)(j->timeout_s * 1000.0);
    int64_t drain_deadline = 0, next_live = start + LIVE_OUTPUT_MS;
    /* Without a tmpfs of its own, the job's directory is counted now and
     * then (tmp_check). */
    int64_t next_tmp = c->sj.dir_mounted || c->dir_fd < 0 ? INT64_MAX : start + TMP_CHECK_MS;
    bool ctl_open = j->ctl_fd >= 0;
    for (;;) {
        struct pollfd p[7];
        int np = 0, idx_in = -1, idx_res = -1, idx_out = -1, idx_err = -1, idx_pid = -1,
            idx_ctl = -1, idx_ev = -1;
        if (ctl_open && !exited) {
            p[np] = (struct pollfd){j->ctl_fd, POLLIN, 0};
            idx_ctl = np++;
        }
        if (in[1] >= 0) {
            p[np] = (struct pollfd){in[1], POLLOUT, 0};
            idx_in = np++;
        }
        if (res[0] >= 0) {
            p[np] = (struct pollfd){res[0], POLLIN, 0};
            idx_res = np++;
        }
        if (out[0] >= 0) {
            p[np] = (struct pollfd){out[0], POLLIN, 0};
            idx_out = np++;
        }
        if (err[0] >= 0) {
            p[np] = (struct pollfd){err[0], POLLIN, 0};
            idx_err = np++;
        }
        if (ev >= 0) {
            p[np] = (struct pollfd){ev, POLLIN, 0};
            idx_ev = np++;
        }
        if (!exited) {
            p[np] = (struct pollfd){pidfd, POLLIN, 0};
            idx_pid = np++;
        }
        if (exited && (np == 0 || util_mono_ms() >= drain_deadline))
            break;

        int64_t now = util_mono_ms();
        int64_t until = exited ? drain_deadline : deadline;
        if (!exited && ctl_open && next_live < until)
            until = next_live;
        if (!exited && next_tmp < until)
            until = next_tmp;
        int timeout = until > now ? (int)(until - now) : 0;
        int n = poll(p, (nfds_t)np, timeout);
        if (n < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        now = util_mono_ms();
        if (!exited && !killed && now >= deadline) {
            j->timed_out = true;
            killed = true;
            kill_job(pid);
        }
        if (!exited && ctl_open && now >= next_live) {
            send_live_output(j);
            next_live = now + LIVE_OUTPUT_MS;
        }
        if (!exited && !killed && now >= next_tmp) {
            next_tmp = tmp_check(j, c->dir_fd);
            if (j->tmp_exceeded) {
                killed = true;
                kill_job(pid);
            }
        }
        if (n <= 0)
            continue;

        if (idx_ctl >= 0 && p[idx_ctl].revents) {
            json_t *msg = NULL;
            const char *type = NULL;
            if (frame_recv_json(j->ctl_fd, &msg) < 0)
                ctl_open = false; /* the supervisor is gone: stop the job */
            else
                type = json_string_value(json_object_get(msg, "type"));
            if ((!ctl_open || (type && !strcmp(type, "cancel"))) && !killed) {
                j->cancelled = ctl_open;
                killed = true;
                kill_job(pid);
            }
            json_decref(msg);
        }

        if (idx_in >= 0 && p[idx_in].revents) {
            ssize_t w = write(in[1], j->input + written, j->input_len - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == j->input_len)
                close_fd(&in[1]);
        }
        struct {
            int idx;
            int *fd;
            struct capture *c;
            bool counted;
        } streams[] = {{idx_res, &res[0], &j->res, false},
                       {idx_out, &out[0], &j->out, true},
                       {idx_err, &err[0], &j->err, true}};
        for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
            if (streams[i].idx < 0 || !p[streams[i].idx].revents)
                continue;
            size_t dummy = 0;
            int rr = streams[i].counted
                         ? capture_read(*streams[i].fd, streams[i].c, &total_output, j->max_output)
                         : capture_read(*streams[i].fd, streams[i].c, &dummy, 0);
            if (rr <= 0)
                close_fd(streams[i].fd);
            if (streams[i].c->overflow && !killed) {
                killed = true;
                kill_job(pid);
            }
        }
        if (idx_ev >= 0 && p[idx_ev].revents && events_read(ev, &j->ev) <= 0)
            close_fd(&ev);
        if (idx_pid >= 0 && p[idx_pid].revents) {
            exited = true;
            j->wall_ms = util_mono_ms() - start;
            /* Whatever the job left running in its process group goes too;
             * its pipes then reach end of file. */
            kill_job(pid);
            drain_deadline = util_mono_ms() + 1000;
        }
    }
    if (wait4(pid, &j->wait_status, 0, &j->ru) < 0)
        r = -errno;
    if (!exited)
        j->wall_ms = util_mono_ms() - start;
    /* Whatever of the job is left goes: the processes in its cgroup, then
     * (the next spare is forked only after the reply, so none exists now)
     * any child of this process. */
    j->full = sandbox_job_full(&c->sj);
    j->oom = sandbox_job_end(&c->sj);
    end_descendants();
    /* The last progress and log lines go before the outcome. */
    if (ctl_open)
        send_live_output(j);
out:
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&res[0]);
    close_fd(&res[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&err[0]);
    close_fd(&err[1]);
    close_fd(&ev);
    close_fd(&pidfd);
    return r;
}

static json_t *error_obj(const char *type, const char *message)
{
    return json_pack("{s:s, s:s}", "type", type, "message", message);
}

static void set_text(json_t *reply, const char *key, const struct capture *c)
{
    char *s = util_utf8_sanitize(c->buf ? c->buf : "", c->len);
    json_object_set_new(reply, key, json_string(s ? s : ""));
    free(s);
}

static long long cpu_ms_of(const struct rusage *ru)
{
    return (long long)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000 +
           (long long)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
}

/* The result header as the harness writes it, {"status": ..., "error":
 * {"type", "message", "traceback"}}, holds 6 values at most. */
static const struct jsonv_limits header_limits = {.max_depth = 8, .max_values = 64};

/* A success's result: checked once here, within the caps, without being
 * parsed (a parse would cost a json_t per value); then stored and served as
 * the job wrote it. Sets *status and *error, or the reply's result_json. */
static void result_verdict(const struct job_run *j, const char *text, size_t len, json_t *reply,
                           enum queue_status *status, json_t **error)
{
    char msg[256];
    size_t at = 0;
    int r = jsonv_check(text, len, &j->result_limits, &at);

    if (r == JSONV_OK) {
        *status = QUEUE_STATUS_SUCCEEDED;
        json_object_set_new(reply, "result_json", json_stringn(text, len));
        return;
    }
    if (r == JSONV_SYNTAX) {
        /* Not what the harness writes: the job wrote its result itself. */
        snprintf(msg, sizeof(msg), "the job's result is not JSON (byte %zu of %zu)", at, len);
        *error = error_obj("HarnessError", msg);
        return;
    }
    *status = QUEUE_STATUS_OUTPUT_EXCEEDED;
    if (r == JSONV_TOO_DEEP)
        snprintf(msg, sizeof(msg),
                 "the job's result nests deeper than %zu levels (STRATQ_MAX_RESULT_DEPTH)",
                 j->result_limits.max_depth);
    else
        snprintf(msg, sizeof(msg),
                 "the job's result holds more than %zu values (STRATQ_MAX_RESULT_VALUES)",
                 j->result_limits.max_values);
    *error = error_obj("ResultTooLarge", msg);
}

/* Decides the job's status from how its child ended and what it reported. */
static json_t *build_reply(struct job_run *j)
{
    json_t *reply = json_object();
    enum queue_status status = QUEUE_STATUS_CRASHED;
    json_t *error = NULL;
    char msg[256];

    /* The harness writes a header line, then a success's result as JSON.
     * The header's status is a job status (-1: none, or one we do not know).
     * The job can write the header too, as long as the cap: it is parsed
     * only within the header's caps. */
    json_t *harness = NULL;
    const char *result_text = NULL;
    size_t result_len = 0;
    int header_check = JSONV_SYNTAX;
    char *nl = j->res.len && !j->res.overflow ? memchr(j->res.buf, '\n', j->res.len) : NULL;
    if (nl) {
        size_t header_len = (size_t)(nl - j->res.buf);
        header_check = jsonv_check(j->res.buf, header_len, &header_limits, NULL);
        if (header_check == JSONV_OK)
            harness = json_loadb(j->res.buf, header_len, JSON_ALLOW_NUL, NULL);
        result_text = nl + 1;
        result_len = j->res.len - (size_t)(nl + 1 - j->res.buf);
    }
    json_t *hs_json = json_object_get(harness, "status");
    int hs = queue_status_parse(json_string_value(hs_json));

    if (j->cancelled) {
        status = QUEUE_STATUS_CANCELLED;
        error = error_obj("Cancelled", "the job was cancelled while it ran and was killed");
    } else if (j->timed_out) {
        status = QUEUE_STATUS_TIMEOUT;
        snprintf(msg, sizeof(msg), "the job ran past its timeout of %g s and was killed",
                 j->timeout_s);
        error = error_obj("Timeout", msg);
    } else if (j->out.overflow || j->err.overflow) {
        status = QUEUE_STATUS_OUTPUT_EXCEEDED;
        snprintf(msg, sizeof(msg),
                 "the job wrote more than %zu bytes to stdout and stderr (STRATQ_MAX_OUTPUT) "
                 "and was killed",
                 j->max_output);
        error = error_obj("OutputExceeded", msg);
    } else if (j->res.overflow || hs == QUEUE_STATUS_OUTPUT_EXCEEDED) {
        /* Cut off here, or (the same limit) not written by the harness. */
        status = QUEUE_STATUS_OUTPUT_EXCEEDED;
        snprintf(msg, sizeof(msg), "the job's result is larger than %zu bytes (STRATQ_MAX_RESULT)",
                 j->max_result);
        error = error_obj("ResultTooLarge", msg);
    } else if (j->tmp_exceeded || ((j->full & SANDBOX_FULL_DIR) && hs != QUEUE_STATUS_SUCCEEDED)) {
        /* Counted past it and killed; or a write past it failed (ENOSPC),
         * and the job with it. */
        status = QUEUE_STATUS_OUTPUT_EXCEEDED;
        if (j->tmp.too_many)
            snprintf(msg, sizeof(msg),
                     "the job made more than %d files in its directory and was killed",
                     TMP_MAX_ENTRIES);
        else
            snprintf(msg, sizeof(msg),
                     "the job's temporary files %s its directory's %lld bytes "
                     "(STRATQ_JOB_MAX_TMP)%s",
                     j->tmp_exceeded ? "went past" : "filled", config_int(CFG_JOB_MAX_TMP),
                     j->tmp_exceeded ? " and it was killed" : "");
        error = error_obj("TmpExceeded", msg);
    } else if (header_check == JSONV_TOO_DEEP || header_check == JSONV_TOO_MANY) {
        /* Not the harness's: its header holds a handful of values. */
        status = QUEUE_STATUS_OUTPUT_EXCEEDED;
        snprintf(msg, sizeof(msg),
                 "the job's result header holds more than %zu values or nests deeper than %zu "
                 "levels",
                 header_limits.max_values, header_limits.max_depth);
        error = error_obj("ResultTooLarge", msg);
    } else if ((j->oom || (j->full & SANDBOX_FULL_SHM)) && hs != QUEUE_STATUS_SUCCEEDED) {
        status = QUEUE_STATUS_MEMORY_EXCEEDED;
        snprintf(msg, sizeof(msg),
                 j->oom ? "the job's processes together used more than its memory limit of %lld "
                          "MiB and were killed"
                        : "the job's shared memory (/dev/shm) filled its memory limit of %lld MiB",
                 j->memory_mb);
        error = error_obj("MemoryExceeded", msg);
    } else if (WIFSIGNALED(j->wait_status) &&
               (WTERMSIG(j->wait_status) == SIGXCPU ||
                /* The first process of a pid namespace ignores SIGXCPU; the
                 * kernel then kills it at the hard limit. The kernel checks
                 * that limit against tick-sampled CPU time, which on a busy
                 * machine runs ahead of the precise time wait4() reports
                 * (seen 1-3 s ahead with 4 threads on 2 shared cores): a
                 * SIGKILL that no one else sent (not a timeout, cancel, OOM
                 * or output kill, all handled above) after three quarters of
                 * the soft limit is that limit. */
                (WTERMSIG(j->wait_status) == SIGKILL &&
                 cpu_ms_of(&j->ru) >= (long long)(ceil(j->timeout_s) + 1) * 750))) {
        status = QUEUE_STATUS_CPU_EXCEEDED;
        error = error_obj("CpuExceeded", "the job used up its CPU time limit");
    } else if (json_is_string(hs_json)) {
        if (hs == QUEUE_STATUS_SUCCEEDED) {
            result_verdict(j, result_text, result_len, reply, &status, &error);
        } else if (hs == QUEUE_STATUS_FAILED) {
            status = hs;
            error = json_incref(json_object_get(harness, "error"));
            if (!json_is_object(error)) {
                json_decref(error);
                error = error_obj("Error", "the job failed");
            }
        } else if (hs == QUEUE_STATUS_MEMORY_EXCEEDED) {
            /* Python's MemoryError under the job's address space limit,
             * which this process cannot see for itself. The header is
             * written from inside the job's process, where the job's code
             * can write one too: the status stands (it is about the job
             * alone), but what it says is ours, and only the traceback,
             * a string, is taken from it. */
            status = hs;
            snprintf(msg, sizeof(msg), "the job ran out of memory (memory_mb=%lld)", j->memory_mb);
            error = error_obj("MemoryError", msg);
            json_t *tb = json_object_get(json_object_get(harness, "error"), "traceback");
            json_object_set_new(error, "traceback",
                                json_is_string(tb) ? json_incref(tb) : json_string(""));
        } else {
            error = error_obj("HarnessError", "the harness reported an unknown status");
        }
    } else if (WIFSIGNALED(j->wait_status)) {
        int sig = WTERMSIG(j->wait_status);
        snprintf(msg, sizeof(msg), "the job's process was killed by signal %d (%s)", sig,
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        error = error_obj("Crashed", msg);
    } else {
        snprintf(msg, sizeof(msg), "the job's process exited with code %d without a result",
                 WIFEXITED(j->wait_status) ? WEXITSTATUS(j->wait_status) : -1);
        error = error_obj("Crashed", msg);
    }
    json_decref(harness);

    json_object_set_new(reply, "type", json_string("done"));
    json_object_set_new(reply, "status", json_string(queue_status_name(status)));
    if (error)
        json_object_set_new(reply, "error", error);
    set_text(reply, "stdout", &j->out);
    set_text(reply, "stderr", &j->err);
    long long cpu_ms = cpu_ms_of(&j->ru);
    json_object_set_new(reply, "usage",
                        json_pack("{s:I, s:I, s:I}", "wall_ms", (json_int_t)j->wall_ms, "cpu_ms",
                                  (json_int_t)cpu_ms, "max_rss_kb", (json_int_t)j->ru.ru_maxrss));
    return reply;
}

static char **build_env(void)
{
    char **envp = calloc(ARRAY_SIZE(passed_env) + 5, sizeof(char *));
    size_t n = 0;
    if (!envp)
        return NULL;
    envp[n++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
    envp[n++] = strdup("LANG=C.UTF-8");
#if defined(__SANITIZE_ADDRESS__)
    /* Test builds: a warm job child is this (sanitized) program, and must
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

static void free_env(char **envp)
{
    for (size_t i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
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
    char *res = top;
    top = NULL;
    return res;
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

/* Empties the directory TOP (an fd, kept open) of everything on its
 * filesystem. Returns 0 when it is empty, -1 when something is left. */
static int empty_dir(int top)
{
    struct stat st;
    if (fstat(top, &st) < 0)
        return -1;
    dev_t dev = st.st_dev;
    if ((st.st_mode & S_IRWXU) != S_IRWXU)
        fchmod(top, (st.st_mode & 07777) | S_IRWXU);
    size_t cap = 16, n = 0;
    struct rm_frame *stack = calloc(cap, sizeof(*stack));
    unsigned moved = 0;
    DIR *d = dir_of(top);
    if (!stack || !d) {
        if (d)
            closedir(d);
        free(stack);
        return -1;
    }
    stack[n++] = (struct rm_frame){.fd = dirfd(d), .d = d};
    while (n > 0) {
        struct rm_frame *f = &stack[n - 1];
        errno = 0;
        struct dirent *e = readdir(f->d);
        if (!e) {
            if (f->progress > 0) { /* read it again: something may be left */
                f->progress = 0;
                rewinddir(f->d);
                continue;
            }
            struct rm_frame done = *f;
            n--;
            if (n > 0 && unlinkat(stack[n - 1].fd, done.name, AT_REMOVEDIR) == 0)
                stack[n - 1].progress++;
            rm_frame_close(&done);
            continue;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fstatat(f->fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            if (unlinkat(f->fd, e->d_name, 0) == 0)
                f->progress++;
            continue;
        }
        if (st.st_dev != dev) /* a mount point: not ours to empty */
            continue;
        int sub = n < REMOVE_MAX_DEPTH ? rm_open_dir(f->fd, e->d_name, &st) : -1;
        if (sub < 0 && (n >= REMOVE_MAX_DEPTH || errno == EMFILE || errno == ENFILE)) {
            /* Too deep to hold open: up into the top directory it goes. */
            if (n > 1) {
                char name[64];
                int r;
                do {
                    snprintf(name, sizeof(name), ".stratq-rm-%u", moved++);
                    r = renameat2(f->fd, e->d_name, top, name, RENAME_NOREPLACE);
                } while (r < 0 && errno == EEXIST && moved != 0);
                if (r == 0) {
                    f->progress++;
                    stack[0].progress++;
                }
            }
            continue;
        }
        if (sub < 0)
            continue;
        DIR *sd = NULL;
        char *name = strdup(e->d_name);
        if (n == cap) {
            struct rm_frame *bigger = realloc(stack, 2 * cap * sizeof(*stack));
            if (bigger) {
                stack = bigger;
                cap *= 2;
            }
        }
        if (n == cap || !name || !(sd = fdopendir(sub))) {
            close(sub);
            free(name);
            continue;
        }
        stack[n++] = (struct rm_frame){.fd = sub, .d = sd, .name = name};
    }
    free(stack);
    /* What is left, if anything. */
    if (!(d = dir_of(top)))
        return -1;
    int left = 0;
    struct dirent *e;
    while (!left && (e = readdir(d)))
        left = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return left ? -1 : 0;
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
 * of the harness goes (what a job of the executor's own uid may have put
 * there, or its own directory under another name). */
static void sweep_work_dir(void)
{
    DIR *d = dir_of(ex.work_fd);
    if (!d)
        return;
    struct dirent *e;
    struct stat top;
    if (fstat(ex.work_fd, &top) < 0)
        top.st_dev = 0;
    while ((e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (ex.staged && !strcmp(e->d_name, "sdk")) ||
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

static json_t *handle_request(json_t *req)
{
    json_t *spec = json_object_get(req, "spec");
    struct job_run j = {
        .timeout_s = json_number_value(json_object_get(spec, "timeout_s")),
        .memory_mb = json_integer_value(json_object_get(spec, "memory_mb")),
        .max_output = (size_t)config_int(CFG_MAX_OUTPUT),
        .max_result = (size_t)config_int(CFG_MAX_RESULT),
        .result_limits = {(size_t)config_int(CFG_MAX_RESULT_DEPTH),
                          (size_t)config_int(CFG_MAX_RESULT_VALUES)},
        .ctl_fd = EXECUTOR_FD,
    };
    json_t *reply;
    struct child c = {.pid = -1, .dir_fd = -1};
    int r;

    /* The child, with its own directory: the warm spare made ahead of
     * time, or a new one that execs an interpreter. */
    if (ex.warm) {
        refill_spare();
        c = ex.spare;
        ex.spare.pid = -1;
        ex.spare.dir_fd = -1;
        r = c.pid > 0 ? 0 : -ECHILD;
        if (r == 0)
            sandbox_job_memory(&c.sj, j.memory_mb);
    } else {
        r = child_spawn(&j, &c);
    }
    json_object_set_new(req, "tmpdir", json_string(r == 0 ? c.sj.dir : ""));
    json_object_set_new(req, "mode", json_string(ex.warm ? "warm" : "cold"));
    if (ex.data_dir[0]) {
        json_object_set_new(req, "data_dir", json_string(ex.data_dir));
        json_object_set_new(req, "data_fd", json_integer(SANDBOX_DATA_FD));
    }
    if (ex.warm)
        json_object_set_new(req, "base_vm_kb", json_integer(ex.spare_vm_kb));
    /* The harness does not write a result the cap would cut off. */
    json_object_set_new(req, "max_result", json_integer(config_int(CFG_MAX_RESULT)));
    j.input = json_dumps(req, JSON_COMPACT);
    j.input_len = j.input ? strlen(j.input) : 0;
    if (r == 0 && !j.input) {
        child_discard(&c);
        r = -ENOMEM;
    }
    if (r == 0)
        r = job_run(&j, &c);
    job_dir_remove(&c);
    sweep_work_dir();
    if (r < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the executor could not run the job: %s", strerror(-r));
        reply = json_pack("{s:s, s:o, s:s, s:s}", "status", queue_status_name(QUEUE_STATUS_CRASHED),
                          "error", error_obj("ExecutorError", msg), "stdout", "", "stderr", "");
    } else {
        reply = build_reply(&j);
    }
    free(j.input);
    free(j.out.buf);
    free(j.err.buf);
    free(j.res.buf);
    json_decref(j.ev.progress);
    json_decref(j.ev.logs);
    return reply;
}

int executor_main(int argc, char **argv)
{
    char err[256];
    char **args;
    int nargs;

    log_set_component("executor");
    if (config_load(CMD_EXECUTOR, argc, argv, &args, &nargs, err, sizeof(err)) != 0) {
        fprintf(stderr, "stratq executor: %s\n", err);
        return 2;
    }
    log_set_level_name(config_str(CFG_LOG_LEVEL));
    /* The supervisor decides when to stop; a terminal's Ctrl-C must not kill
     * a job half-way. If the supervisor dies, so does the executor. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* exec made this process dumpable again: without this, job code running
     * as the same uid could ptrace it or take its socket to the supervisor
     * with pidfd_getfd(). */
    prctl(PR_SET_DUMPABLE, 0);
    /* Orphans a job leaves behind (a grandchild that called setsid()) are
     * re-parented here rather than to init, so they can be found and killed
     * when the job ends. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    _cleanup_free_ char *harness_dir = util_find_harness_dir(config_str(CFG_HARNESS_DIR));
    if (!harness_dir) {
        log_error("cannot find the stratq Python harness; set STRATQ_HARNESS_DIR", "{}");
        return 1;
    }
    int rc = 1;
    struct sandbox_status sst;
    struct sandbox_options sopt;
    _cleanup_free_ char *layers = NULL;
    ex.envp = build_env();
    ex.python = config_str(CFG_PYTHON);
    ex.harness_dir = harness_dir;
    const char *mode = config_str(CFG_MODE);
    if (strcmp(mode, "warm") != 0 && strcmp(mode, "cold") != 0) {
        log_error("STRATQ_MODE must be warm or cold", "{s:s}", "mode", mode);
        goto out;
    }
    ex.warm = !strcmp(mode, "warm");
    if (!ex.warm && access(ex.python, X_OK) < 0) {
        log_error("the Python interpreter is not executable; set STRATQ_PYTHON", "{s:s}", "python",
                  ex.python);
        goto out;
    }
    const char *base = getenv("TMPDIR");
    snprintf(ex.work_dir, sizeof(ex.work_dir), "%s/stratq-exec-XXXXXX",
             base && base[0] == '/' ? base : "/tmp");
    if (!mkdtemp(ex.work_dir)) {
        log_error("cannot make the executor's work directory", "{s:s, s:s}", "dir", ex.work_dir,
                  "error", strerror(errno));
        ex.work_dir[0] = '\0';
        goto out;
    }
    ex.work_fd = open(ex.work_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ex.work_fd < 0) {
        log_error("cannot open the executor's work directory", "{s:s, s:s}", "dir", ex.work_dir,
                  "error", strerror(errno));
        goto out;
    }
    /* The sandbox: which layers this host allows, set up once here. */
    sandbox_options_load(&sopt);
    if (sandbox_probe(&sst, &sopt, err, sizeof(err)) < 0) {
        log_error("bad sandbox settings", "{s:s}", "error", err);
        goto out;
    }
    /* Warm jobs may exec the interpreter they were forked from (sys.executable,
     * for multiprocessing's spawn and its resource tracker); cold jobs are
     * exec'd as STRATQ_PYTHON. */
    /* Jobs run in their own temporary directories: the data directory is
     * passed on absolute. */
    if (config_str(CFG_DATA_DIR)[0] && !realpath(config_str(CFG_DATA_DIR), ex.data_dir))
        log_warn("the data directory cannot be found; jobs will see none", "{s:s, s:s}", "dir",
                 config_str(CFG_DATA_DIR), "error", strerror(errno));
    /* Jobs of their own uid reach their temporary directories and the
     * harness's copy through the work directory, but cannot list it. */
    if (sst.active[SB_UID]) {
        chmod(ex.work_dir, 0711);
        char *staged = stage_harness(harness_dir, ex.work_dir);
        if (!staged) {
            log_error("cannot copy the harness for the jobs' uid", "{s:s, s:s}", "harness",
                      harness_dir, "error", strerror(errno));
            goto out;
        }
        free(harness_dir);
        harness_dir = staged;
        ex.harness_dir = harness_dir;
        ex.staged = true;
    }
    int pr = sandbox_prepare(harness_dir, ex.warm ? WARM_PYTHON : ex.python, ex.data_dir);
    if (pr < 0) {
        log_error("cannot build the jobs' seccomp filter", "{s:s}", "error", strerror(-pr));
        goto out;
    }
    /* Before the warm interpreter starts threads (a user namespace needs a
     * single-threaded caller). */
    int nr = sandbox_executor_enter();
    if (nr < 0) {
        log_error("cannot enter the jobs' namespaces", "{s:s}", "error", strerror(-nr));
        goto out;
    }
    layers = sandbox_status_json(&sst);
    for (int i = 0; i < SB__COUNT; i++)
        if (!sst.active[i] && i <= SB_SESSION)
            log_warn("a sandbox layer is unavailable", "{s:s, s:s}", "layer", sandbox_layer_name(i),
                     "reason", sst.why[i]);
    if (!sst.active[SB_MOUNTNS])
        log_warn("jobs get no /dev/shm: without the mount namespace it would be shared with "
                 "every other job of this uid; multiprocessing's locks, Pool and shared_memory "
                 "need the mountns layer (docs/security.md)",
                 "{s:s}", "mountns", sst.why[SB_MOUNTNS]);
    log_info("sandbox", "{s:o}", "layers", json_loads(layers ? layers : "{}", 0, NULL));
    if (ex.warm) {
        int64_t t0 = util_mono_ms();
        if (warm_init(harness_dir, config_str(CFG_PRELOAD), err, sizeof(err)) < 0) {
            log_error("cannot start warm mode", "{s:s}", "error", err);
            goto out;
        }
        log_info("warm interpreter ready", "{s:s, s:I}", "preload", config_str(CFG_PRELOAD),
                 "init_ms", (json_int_t)(util_mono_ms() - t0));
        refill_spare();
    }
    log_debug("executor ready", "{s:s, s:s, s:s}", "mode", mode, "python", ex.python, "harness",
              harness_dir);
    json_t *ready = json_pack("{s:s, s:o}", "type", "ready", "sandbox",
                              json_loads(layers ? layers : "{}", 0, NULL));
    int sr = frame_send_json(EXECUTOR_FD, ready);
    json_decref(ready);
    if (sr < 0)
        goto out;

    rc = 0;
    for (;;) {
        json_t *req = NULL;
        int r = frame_recv_json(EXECUTOR_FD, &req);
        if (r == -EPIPE)
            break;
        if (r < 0) {
            log_error("bad request from the supervisor", "{s:s}", "error", strerror(-r));
            rc = 1;
            break;
        }
        const char *type = json_string_value(json_object_get(req, "type"));
        if (type && strcmp(type, "run") != 0) {
            /* A cancel that crossed the end of the job it was meant for. */
            json_decref(req);
            continue;
        }
        json_t *reply = handle_request(req);
        json_decref(req);
        r = frame_send_json(EXECUTOR_FD, reply);
        json_decref(reply);
        if (r < 0) {
            rc = r == -EPIPE ? 0 : 1;
            break;
        }
        /* The next job's child is forked now, off the job's path: while the
         * supervisor records this outcome and fetches the next job. */
        refill_spare();
    }
out:
    /* One way out, whatever was made: the spare, the cgroups, the work
     * directory (and with it every job directory). */
    if (ex.spare.pid > 0)
        child_discard(&ex.spare);
    cgroup_fini();
    if (ex.work_dir[0])
        remove_tree(ex.work_dir);
    if (ex.work_fd >= 0)
        close_fd(&ex.work_fd);
    free_env(ex.envp);
    config_free();
    /* In warm mode the interpreter is never finalized (a fork server's
     * interpreter is not worth the teardown): leave without exit handlers. */
    fflush(NULL);
    _exit(rc);
}

int executor_spawn(pid_t *ret_pid, int *ret_fd)
{
    int sv[2];
    char maxo[32], maxr[32], maxrd[32], maxrv[32], juid[32], jprocs[32], jtmp[32];
    char **envp = build_env();

    if (!envp)
        return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free_env(envp);
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
    char *argv[] = {"stratq",
                    "executor",
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
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        free_env(envp);
        return e;
    }
    if (pid == 0) {
        /* Only the socket (as fd 3) and stdio cross into the executor: no
         * Redis connection, no environment beyond build_env(). */
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(sv[1], EXECUTOR_FD) < 0)
            _exit(126);
        close_range(EXECUTOR_FD + 1, ~0U, 0);
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(sv[1]);
    free_env(envp);
    *ret_pid = pid;
    *ret_fd = sv[0];
    return 0;
}

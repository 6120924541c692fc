#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/frame.h"
#include "../common/job.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../queue/jobq.h"
#include "../queue/queue.h"
#include "../queue/status.h"
#include "health.h"
#include "launch.h"
#include "sandbox.h"

/* Seconds BLMOVE blocks; bounds how long a stop request waits. */
#define FETCH_BLOCK_MS 1000

/* What the executor reported of the running job: its DONE (status, error,
 * usage) and the OUTPUT_ALL and RESULT that came before it. The result's
 * bytes are stored as they came: the executor validated them. */
struct report {
    json_t *done;
    struct frame_msg output, result;
};

static void report_clear(struct report *r)
{
    json_decref(r->done);
    frame_msg_clear(&r->output);
    frame_msg_clear(&r->result);
    r->done = NULL;
}
#define _cleanup_report_ __attribute__((cleanup(report_clear)))

/* The most LOG messages one live batch holds (the executor passes at most
 * 1,000 log lines of a job); more are dropped. */
#define LIVE_MAX_LOGS 1000

/* A live batch on its way in: the latest PROGRESS and the LOG lines, until
 * the OUTPUT that ends it. */
struct live {
    struct frame_msg progress;
    struct frame_msg *logs;
    size_t nlogs, cap;
};

static void live_add_log(struct live *l, struct frame_msg *m)
{
    if (l->nlogs == l->cap && l->cap < LIVE_MAX_LOGS) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct frame_msg *v =
            realloc(l->logs, (cap < LIVE_MAX_LOGS ? cap : LIVE_MAX_LOGS) * sizeof(*v));
        if (v) {
            l->logs = v;
            l->cap = cap < LIVE_MAX_LOGS ? cap : LIVE_MAX_LOGS;
        }
    }
    if (l->nlogs < l->cap)
        l->logs[l->nlogs++] = frame_msg_take(m);
}

/* Empties the batch; with release, gives its memory back too. */
static void live_clear(struct live *l, bool release)
{
    frame_msg_clear(&l->progress);
    for (size_t i = 0; i < l->nlogs; i++)
        frame_msg_clear(&l->logs[i]);
    l->nlogs = 0;
    if (release) {
        free(l->logs);
        l->logs = NULL;
        l->cap = 0;
    }
}

struct worker {
    struct queue_names names;
    struct queue_url url;
    struct queue_sync *q;
    struct jobq jq; /* the protocol's calls, run through worker_call */
    struct job_limits lim;
    char id[160];
    char host[64];
    int exec_prog;   /* stratq-executor, open (launch_open) */
    char *exec_path; /* where it was found */
    pid_t exec_pid;
    int exec_fd;
    struct frame_reader rd; /* what the executor sent on exec_fd */
    struct live live;       /* the running job's live batch under way */
    int64_t next_heartbeat_ms;
    int64_t started_ms;
    long long jobs_done, jobs_failed;
    const char *state;
    char current[80];
    char taken[80];          /* the job taken (BLMOVE) and being started or run */
    long long failures_hint; /* failures of the running job, counting this run's */
    int64_t connected_since; /* monotonic ms of the current Redis connection */
    bool reconciling;        /* giving back what a failover left listed (jobq_reconcile) */
    int64_t next_promote_ms, next_reap_ms;
    long long next_due_ms;  /* when the next scheduled job is due (0: none) */
    int64_t last_tick_ms;   /* monotonic: when it last ticked the schedules */
    long long next_fire_ms; /* when the next recurring job's schedule is due (0: none) */
    int64_t give_up_at;     /* when set, stop waiting for Redis then (deregistering) */
    char *sandbox;          /* the executor's sandbox layers, JSON (registration) */
    bool registered;        /* its last heartbeat reached Redis */
    int executor_starts;
    struct jobq_control *sub;  /* its control channel (a running job's cancel) */
    int64_t next_subscribe_ms; /* when to try subscribing again */
    int64_t last_report_ms;    /* monotonic ms of its last heartbeat */
    bool report_due;           /* its state or counts changed since then */
    bool wrote_live;           /* the running job wrote live output */
    bool queue_dry;            /* its last BLMOVE found the queue empty */
    int64_t job_started_mono;  /* when the running job started (ms) */
};

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

/* Tells the health port how the worker is (health.h). */
static void worker_health(const struct worker *w)
{
    health_update(stop_signals ? "draining" : w->state, w->q != NULL, w->exec_fd >= 0,
                  w->registered && w->q != NULL);
}

static void worker_disconnect(struct worker *w)
{
    queue_sync_free(w->q);
    w->q = NULL;
    jobq_control_free(w->sub);
    w->sub = NULL;
}

/* How often a busy worker whose control channel is down reads its job's
 * hash for a cancel request, and tries to subscribe again. */
#define CANCEL_POLL_MS 250

/* Subscribes to the worker's control channel when it is not, at most every
 * CANCEL_POLL_MS. Returns true when it just subscribed: a cancel request
 * published while it was not is then only in the job's hash. */
static bool worker_subscribe(struct worker *w)
{
    if (w->sub || util_mono_ms() < w->next_subscribe_ms)
        return false;
    w->next_subscribe_ms = util_mono_ms() + CANCEL_POLL_MS;
    char err[256];
    if (jobq_control_open(&w->jq, &w->url, 2000, &w->sub, err, sizeof(err)) < 0) {
        log_warn("cannot subscribe to the control channel; polling for cancel requests", "{s:s}",
                 "error", err);
        return false;
    }
    return true;
}

/* Connects to Redis, retrying with capped exponential backoff until it
 * succeeds or (when give_up_on_stop) a stop is requested. */
static int worker_connect(struct worker *w, bool give_up_on_stop)
{
    int backoff_ms = 100;
    char err[256];

    while (!w->q) {
        if (queue_sync_connect(&w->url, QUEUE_CONNECT_TIMEOUT_MS, &w->q, err, sizeof(err)) == 0) {
            bool again = w->connected_since != 0;
            w->connected_since = util_mono_ms();
            queue_sync_setname(w->q, "stratq-worker");
            worker_subscribe(w);
            log_info("connected to Redis", "{s:s, s:i}", "host", w->q->host, "port", w->q->port);
            if (again && !w->reconciling) {
                /* A failover may have lost what this worker recorded
                 * since: jobs it finished may be listed as its own again
                 * (a lost completion), which only it could give back. */
                w->reconciling = true; /* its calls may reconnect: not again */
                long long n =
                    jobq_reconcile(&w->jq, w->q, w->taken[0] ? w->taken : NULL, util_now_ms());
                w->reconciling = false;
                if (n > 0)
                    log_warn("gave back jobs Redis listed as this worker's but it is not running "
                             "(a failover lost their completion)",
                             "{s:I}", "jobs", (json_int_t)n);
            }
            return 0;
        }
        if (give_up_on_stop && stop_signals)
            return -ECANCELED;
        if (stop_signals >= 2)
            return -ECANCELED;
        if (w->give_up_at && util_mono_ms() >= w->give_up_at)
            return -ETIMEDOUT;
        log_warn("Redis unavailable, retrying", "{s:s, s:i}", "error", err, "retry_ms", backoff_ms);
        worker_health(w);
        usleep((useconds_t)backoff_ms * 1000);
        /* With sentinels a new primary is elected in seconds: look again
         * soon. */
        int cap = w->url.nsentinels ? 1000 : 5000;
        backoff_ms = backoff_ms * 2 > cap ? cap : backoff_ms * 2;
    }
    return 0;
}

/* Error replies that mean "not now" rather than "never". */
static bool is_transient(const char *err)
{
    static const char *const prefixes[] = {"LOADING",    "BUSY", "READONLY",    "TRYAGAIN",
                                           "MASTERDOWN", "OOM",  "CLUSTERDOWN", QUEUE_NOREPLICAS};
    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
        if (!strncmp(err, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

/* Runs a script call (jobq's eval hook), reconnecting on connection
 * errors; returns the reply or NULL when it gave up (a stop was requested
 * while Redis was down; a call that must be done waits for a second one). */
static redisReply *worker_call(void *priv, const struct queue_call *c)
{
    struct worker *w = priv;
    enum queue_script s = c->script;
    bool give_up_on_stop = !c->until_done;
    for (;;) {
        if (worker_connect(w, give_up_on_stop) < 0)
            return NULL;
        redisReply *r = queue_sync_call(w->q, c);
        if (r && r->type == REDIS_REPLY_ERROR && is_transient(r->str)) {
            /* Redis is loading, failing over or briefly out of memory: the
             * same call will succeed later, and giving up would strand the
             * job. */
            log_warn("Redis is busy, retrying", "{s:s, s:s}", "script", queue_script_name(s),
                     "error", r->str);
            /* No replica confirms: with sentinels this node may be a primary
             * cut off from the rest, which elected another: ask them again. */
            bool reask =
                w->url.nsentinels && !strncmp(r->str, QUEUE_NOREPLICAS, strlen(QUEUE_NOREPLICAS));
            freeReplyObject(r);
            if (reask)
                worker_disconnect(w);
            if (stop_signals >= 2 || (give_up_on_stop && stop_signals))
                return NULL;
            usleep(500000);
            continue;
        }
        if (r && r->type == REDIS_REPLY_ERROR) {
            log_error("Redis script failed", "{s:s, s:s}", "script", queue_script_name(s), "error",
                      r->str);
            freeReplyObject(r);
            return NULL;
        }
        if (r)
            return r;
        log_warn("lost the Redis connection", "{s:s}", "error", queue_sync_errstr(w->q));
        worker_disconnect(w);
    }
}

/* A heartbeat; with_stats: it also adds what the worker counted. */
static void worker_heartbeat_with(struct worker *w, bool with_stats)
{
    struct jobq_worker_info info = {.host = w->host,
                                    .version = STRATQ_VERSION,
                                    .state = w->state,
                                    .current_job = w->current,
                                    .sandbox = w->sandbox,
                                    .pid = getpid(),
                                    .started_ms = w->started_ms,
                                    .jobs_done = w->jobs_done,
                                    .jobs_failed = w->jobs_failed};
    w->registered = jobq_heartbeat(&w->jq, &info, util_now_ms(), config_int(CFG_HEARTBEAT) * 3000,
                                   with_stats) == 0;
    w->last_report_ms = util_mono_ms();
    if (with_stats)
        w->next_heartbeat_ms = w->last_report_ms + config_int(CFG_HEARTBEAT) * 1000;
    if (w->registered)
        w->report_due = false;
}

static void worker_heartbeat(struct worker *w)
{
    worker_heartbeat_with(w, true);
}

/* The least time between two heartbeats that report a change of state
 * (the worker went busy or idle): its hash follows within about this, and
 * a busy worker heartbeats at most once this often. What it counted rides
 * on the regular heartbeats (every STRATQ_HEARTBEAT_S) and on the first one
 * after the queue ran dry, so that the counters of /metrics trail by a
 * heartbeat interval at most while jobs flow and by about a second once
 * they stop (docs/protocol.md, "Commands per job"). */
#define REPORT_MS 1000

/* Heartbeats when one is due, or when a change waits to be reported. */
static void worker_maybe_heartbeat(struct worker *w)
{
    int64_t now = util_mono_ms();
    if (now >= w->next_heartbeat_ms ||
        (w->queue_dry && jobq_stats_pending(&w->jq) && now - w->last_report_ms >= REPORT_MS))
        worker_heartbeat_with(w, true);
    else if (w->report_due && now - w->last_report_ms >= REPORT_MS)
        worker_heartbeat_with(w, false);
}

static void worker_stop_executor(struct worker *w, bool force);

/* Waits until deadline (monotonic ms) for the executor's next message;
 * with stoppable, a second stop signal ends the wait. Returns 0 with *m,
 * -ETIMEDOUT, -ECANCELED, or -EPIPE/-EPROTO when the executor is gone or
 * broke the protocol (logged). */
static int worker_recv(struct worker *w, struct frame_msg *m, int64_t deadline, bool stoppable)
{
    for (;;) {
        int r = frame_read(w->exec_fd, &w->rd, m);
        if (r == -EPROTO)
            log_error("the executor broke the protocol", "{s:s}", "error", w->rd.why);
        if (r != 0)
            return r > 0 ? 0 : r;
        if (stoppable && stop_signals >= 2)
            return -ECANCELED;
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {w->exec_fd, POLLIN, 0};
        if (poll(&p, 1, left < 100 ? (int)left : 100) < 0 && errno != EINTR)
            return -errno;
    }
}

/* Starts the executor and waits (up to 10 s) for it to say it is ready, so
 * that no job is taken by a worker that cannot run it. */
static int worker_start_executor(struct worker *w)
{
    _cleanup_frame_msg_ struct frame_msg ready = {0};
    int r = launch_executor(w->exec_prog, &w->exec_pid, &w->exec_fd);
    if (r < 0) {
        log_error("cannot start the executor", "{s:s, s:s}", "program", w->exec_path, "error",
                  strerror(-r));
        return r;
    }
    /* Read as it comes, on the loop that also watches for cancel
     * requests, stop signals and heartbeats. */
    frame_reader_init(&w->rd, FRAME_UP);
    r = fcntl(w->exec_fd, F_SETFL, O_NONBLOCK) < 0
            ? -errno
            : worker_recv(w, &ready, util_mono_ms() + 10000, true);
    /* Two programs now, which an install could mix up: the protocol between
     * them is only ever that of one build. A first message this build
     * cannot read is another build's too. */
    const char *version = json_string_value(json_object_get(ready.json, "version"));
    if (r == -EPROTO ||
        (r == 0 && ready.type == FRAME_READY && (!version || strcmp(version, STRATQ_VERSION)))) {
        log_error("the executor program is another build; install stratq and stratq-executor "
                  "from one build",
                  "{s:s, s:s, s:s}", "program", w->exec_path, "executor_version",
                  version ? version : "(none)", "version", STRATQ_VERSION);
        worker_stop_executor(w, true);
        return -EPROTO;
    }
    if (r < 0 || ready.type != FRAME_READY) {
        log_error("the executor did not start; see its messages above", "{s:s}", "program",
                  w->exec_path);
        worker_stop_executor(w, true);
        return -ECHILD;
    }
    free(w->sandbox);
    w->sandbox =
        json_dumps(json_object_get(ready.json, "sandbox"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    health_set_sandbox(w->sandbox);
    if (w->executor_starts++ > 0)
        health_executor_restarted();
    char err[300];
    if (sandbox_require(w->sandbox, config_str(CFG_SANDBOX_REQUIRE), err, sizeof(err)) < 0) {
        log_error("a required sandbox layer is missing; not taking jobs", "{s:s}", "error", err);
        worker_stop_executor(w, true);
        return -EPERM;
    }
    log_info("executor started", "{s:i}", "executor_pid", (int)w->exec_pid);
    return 0;
}

/* How long a stopped executor that may be stuck gets to leave by its own
 * way out (end its job, remove its work directory and its cgroups) before
 * it is killed, which would leave those behind. */
#define EXECUTOR_GRACE_MS 3000

static pid_t reap(pid_t pid, int flags)
{
    pid_t r;
    do
        r = waitpid(pid, NULL, flags);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Stops the executor: closes its socket, which the executor takes as the
 * order to end its job and leave by its one way out, and waits for it;
 * with force (it may be stuck, or broke the protocol) for
 * EXECUTOR_GRACE_MS at most, then it is killed. */
static void worker_stop_executor(struct worker *w, bool force)
{
    if (w->exec_fd >= 0)
        close(w->exec_fd);
    w->exec_fd = -1;
    frame_reader_clear(&w->rd);
    live_clear(&w->live, true);
    if (w->exec_pid > 0) {
        pid_t r = 0;
        int64_t deadline = util_mono_ms() + EXECUTOR_GRACE_MS;
        while (force && (r = reap(w->exec_pid, WNOHANG)) == 0 && util_mono_ms() < deadline)
            usleep(10000);
        if (force && r == 0)
            kill(w->exec_pid, SIGKILL);
        if (r == 0)
            reap(w->exec_pid, 0);
    }
    w->exec_pid = -1;
}

/* Passes a live batch (its PROGRESS, its LOG lines and the OUTPUT that
 * ends it) to the job's live keys, where GET /v1/jobs/{id}/logs reads it
 * while the job runs. The progress and each log line are JSON text,
 * stored as they came. */
static void worker_append_output(struct worker *w, const char *id, const struct frame_msg *output)
{
    struct live *l = &w->live;
    const char *lines[LIVE_MAX_LOGS];
    struct jobq_output o = {.progress = l->progress.data, .logs = lines, .nlogs = l->nlogs};
    for (size_t i = 0; i < l->nlogs; i++)
        lines[i] = l->logs[i].data;
    frame_msg_pair(output, &o.stream[0], &o.stream_len[0], &o.stream[1], &o.stream_len[1]);
    if (w->q) {
        w->wrote_live = true;
        if (jobq_output(&w->jq, w->q, id, &o) == -EIO)
            worker_disconnect(w); /* best effort; the final record has it all */
    }
    live_clear(l, false);
}

/* Whether a cancel was requested for the running job (DELETE on the API
 * sets cancel_requested_ms in its hash). */
static bool worker_cancel_requested(struct worker *w, const char *id)
{
    if (!w->q)
        return false;
    int r = jobq_cancel_requested(&w->jq, w->q, id);
    if (r == -EIO)
        worker_disconnect(w);
    return r == 1;
}

/* Takes one message the executor sent about the running job. Returns 1
 * on its DONE (the report is whole), 0 to go on, -EPROTO for a message
 * that has no place here. */
static int worker_take(struct worker *w, const char *id, struct frame_msg *m, struct report *rep)
{
    switch (m->type) {
    case FRAME_PROGRESS:
        frame_msg_clear(&w->live.progress);
        w->live.progress = frame_msg_take(m);
        return 0;
    case FRAME_LOG:
        live_add_log(&w->live, m);
        return 0;
    case FRAME_OUTPUT:
        worker_append_output(w, id, m);
        return 0;
    case FRAME_OUTPUT_ALL:
        frame_msg_clear(&rep->output);
        rep->output = frame_msg_take(m);
        return 0;
    case FRAME_RESULT:
        frame_msg_clear(&rep->result);
        rep->result = frame_msg_take(m);
        return 0;
    case FRAME_DONE:
        rep->done = steal_pointer(&m->json);
        return 1;
    default:
        snprintf(w->rd.why, sizeof(w->rd.why), "a %s message while a job runs",
                 frame_spec(m->type)->name);
        return -EPROTO;
    }
}

/* Reads what the executor has sent (without waiting) into *rep. Returns 1
 * once its DONE is in, 0 to wait for more, -EPIPE when it is gone or broke
 * the protocol (logged). */
static int worker_read_executor(struct worker *w, const char *id, struct report *rep)
{
    for (;;) {
        _cleanup_frame_msg_ struct frame_msg m = {0};
        int r = frame_read(w->exec_fd, &w->rd, &m);
        if (r == 0)
            return 0; /* nothing more yet */
        if (r > 0)
            r = worker_take(w, id, &m, rep);
        if (r == 0)
            continue;
        if (r == -EPROTO)
            log_error("the executor broke the protocol", "{s:s}", "error", w->rd.why);
        return r < 0 ? -EPIPE : 1;
    }
}

/* How long until the schedules are to be ticked (worker_tick), in ms: a
 * second after the last tick, or when the next one is due, but not sooner
 * than TICK_GAP_MS after the last (a schedule still due after a tick, one
 * of more than a tick takes, is ticked again then). */
#define TICK_GAP_MS 50
static long long worker_tick_in(const struct worker *w)
{
    int64_t since = util_mono_ms() - w->last_tick_ms;
    long long in = 1000 - since;
    if (w->next_fire_ms > 0 && w->next_fire_ms - util_now_ms() < in)
        in = w->next_fire_ms - util_now_ms();
    if (in < TICK_GAP_MS - since)
        in = TICK_GAP_MS - since;
    return in > 0 ? in : 0;
}

/* Ticks the schedules of recurring jobs (jobq_tick) about once a second,
 * and at once when the next one is due: any number of workers do, each
 * fire making one job (tick.lua is fenced). Idle workers tick from their
 * housekeeping, busy ones while they wait for their job, so schedules
 * fire on time while every worker is busy. Returns -EIO when the
 * connection was lost. */
static int worker_tick(struct worker *w)
{
    if (!w->q || worker_tick_in(w) > 0)
        return 0;
    w->last_tick_ms = util_mono_ms();
    long long n = jobq_tick(&w->jq, w->q, util_now_ms(), &w->next_fire_ms);
    if (n == -EIO)
        return -EIO;
    if (n > 0)
        log_info("made recurring jobs as their schedules fired", "{s:I}", "count", (json_int_t)n);
    return 0;
}

/* Waits for the executor's report of the running job, heartbeating while
 * it runs, passing on its live output and any cancel request. Returns 0
 * with *rep, -EPIPE if the executor died, or -ECANCELED when a second stop
 * signal asked to give the job up. */
static int worker_await(struct worker *w, const char *id, struct report *rep)
{
    int64_t drain_deadline = 0, next_cancel_check = util_mono_ms() + CANCEL_POLL_MS;
    bool cancel_sent = false, cancel_seen = false;
    for (;;) {
        worker_health(w);
        if (stop_signals >= 2)
            return -ECANCELED;
        if (stop_signals && !drain_deadline)
            drain_deadline = util_mono_ms() + config_int(CFG_DRAIN_TIMEOUT) * 1000;
        if (drain_deadline && util_mono_ms() >= drain_deadline) {
            log_warn("drain timeout passed; giving the job back to the queue", "{s:s}", "id",
                     w->current);
            return -ECANCELED;
        }
        int64_t now = util_mono_ms();
        int64_t wait = w->next_heartbeat_ms - now;
        if (w->report_due && wait > w->last_report_ms + REPORT_MS - now)
            wait = w->last_report_ms + REPORT_MS - now;
        /* Without its control channel, the worker polls the job's hash. */
        if (!w->sub && wait > next_cancel_check - now)
            wait = next_cancel_check - now;
        if (w->q && wait > worker_tick_in(w))
            wait = worker_tick_in(w);
        struct pollfd p[2] = {{w->exec_fd, POLLIN, 0},
                              {w->sub ? jobq_control_fd(w->sub) : -1, POLLIN, 0}};
        int n = poll(p, 2, wait > 0 ? (int)wait : 0);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && p[1].revents) {
            int r = jobq_control_cancel_for(w->sub, id);
            if (r < 0) {
                log_warn("lost the control channel; subscribing again", "{s:s}", "id", id);
                jobq_control_free(w->sub);
                w->sub = NULL;
            } else if (r > 0) {
                cancel_seen = true;
            }
        }
        if (n > 0 && p[0].revents) {
            int r = worker_read_executor(w, id, rep);
            if (r != 0)
                return r < 0 ? r : 0;
        }
        now = util_mono_ms();
        if (!cancel_sent && !w->sub && now >= next_cancel_check) {
            next_cancel_check = now + CANCEL_POLL_MS;
            /* Subscribed again, or still not: either way a request made
             * meanwhile is only in the hash. */
            worker_subscribe(w);
            cancel_seen = cancel_seen || worker_cancel_requested(w, id);
        }
        if (worker_tick(w) < 0)
            worker_disconnect(w);
        if (!cancel_sent && cancel_seen) {
            frame_send(w->exec_fd, FRAME_CANCEL, NULL, 0);
            cancel_sent = true;
            log_info("cancelling the running job", "{s:s}", "id", w->current);
        }
        worker_maybe_heartbeat(w);
    }
}

/* Writes the outcome, fenced on (worker, attempt). Keeps retrying while
 * Redis is away, so a finished job's result is not lost. spec gives the
 * job's retry policy (max_attempts, retry_backoff_s); NULL means none. */
static void worker_complete(struct worker *w, const char *id, long long attempt,
                            const struct report *rep, const json_t *spec)
{
    const json_t *reply = rep->done;
    int st = queue_status_parse(json_string_value(json_object_get(reply, "status")));
    json_t *e = json_object_get(reply, "error"), *u = json_object_get(reply, "usage");
    const char *out, *err;
    size_t out_len, err_len;
    frame_msg_pair(&rep->output, &out, &out_len, &err, &err_len);
    _cleanup_free_ char *error = e ? json_dumps(e, JSON_COMPACT) : NULL;
    _cleanup_free_ char *usage = u ? json_dumps(u, JSON_COMPACT) : NULL;
    /* Should this outcome be retried, this is when (failures_hint is the
     * number of the failure being recorded). */
    double backoff = spec ? json_number_value(json_object_get(spec, "retry_backoff_s")) : 0;
    struct job_outcome o = {
        .status = st < 0 ? QUEUE_STATUS_CRASHED : (enum queue_status)st,
        .attempt = attempt,
        .result = rep->result.data,
        .result_len = rep->result.len,
        .error = e ? (error ? error : "{}") : NULL,
        /* (A length of 0 would mean "up to the NUL".) */
        .out = out_len ? out : "",
        .out_len = out_len,
        .err = err_len ? err : "",
        .err_len = err_len,
        .dead_reason = json_string_value(json_object_get(reply, "dead_reason")),
        .usage = u ? (usage ? usage : "{}") : NULL,
        .max_attempts = spec ? json_integer_value(json_object_get(spec, "max_attempts")) : 1,
        .live = w->wrote_live,
        .next_run_ms =
            (long long)util_now_ms() + job_retry_delay_ms(backoff, w->failures_hint,
                                                          (double)config_int(CFG_BACKOFF_CAP),
                                                          (double)(random() % 1000000) / 1000000.0),
    };
    const char *status = queue_status_name(o.status);

    double duration_s = (double)(util_mono_ms() - w->job_started_mono) / 1000.0;
    int r = jobq_complete(&w->jq, id, &o, util_now_ms(), duration_s < 0 ? 0 : duration_s);
    w->report_due = true;
    if (r == -EIO) {
        log_error("could not record the job's outcome", "{s:s, s:s}", "id", id, "status", status);
        return;
    }
    if (r == 1) {
        log_info("job finished", "{s:s, s:I, s:s, s:I, s:I}", "id", id, "attempt",
                 (json_int_t)attempt, "status", status, "wall_ms",
                 json_integer_value(json_object_get(u, "wall_ms")), "max_rss_kb",
                 json_integer_value(json_object_get(u, "max_rss_kb")));
        if (o.status == QUEUE_STATUS_SUCCEEDED)
            w->jobs_done++;
        else
            w->jobs_failed++;
        health_job_done(status, json_integer_value(json_object_get(u, "wall_ms")));
    } else if (r == 2) {
        log_info("the job's outcome was already recorded (a retried call)", "{s:s, s:I}", "id", id,
                 "attempt", (json_int_t)attempt);
    } else {
        log_warn("discarded a late result: the job was taken over by another attempt",
                 "{s:s, s:I, s:s}", "id", id, "attempt", (json_int_t)attempt, "status", status);
    }
}

/* Takes a queue entry no worker can run off the processing list and keeps
 * it, with its reason, in the dead-letter list. */
static void worker_deadletter(struct worker *w, const char *entry, size_t len, const char *reason)
{
    jobq_deadletter(&w->jq, entry, len, reason, util_now_ms());
    log_warn("dead-lettered a queue entry", "{s:s%, s:s}", "entry", entry,
             len > 200 ? (size_t)200 : len, "reason", reason);
}

/* Tells the executor to kill the running job and waits (briefly) for it to
 * report, discarding the outcome. */
static void worker_abandon_job(struct worker *w)
{
    int r = w->exec_fd >= 0 ? frame_send(w->exec_fd, FRAME_CANCEL, NULL, 0) : -EPIPE;
    int64_t deadline = util_mono_ms() + 3000;
    while (r == 0) {
        _cleanup_frame_msg_ struct frame_msg m = {0};
        r = worker_recv(w, &m, deadline, false);
        if (r == 0 && m.type == FRAME_DONE)
            return;
    }
    worker_stop_executor(w, true);
}

/* The executor died under a running job: give the job back to the queue,
 * or to the dead set when it has now lost its worker too often. */
static void worker_lost_job(struct worker *w, const char *id)
{
    char what[40];
    if (jobq_lost(&w->jq, id, util_now_ms(), what, sizeof(what)) == 0)
        log_warn("job given back after its executor died", "{s:s, s:s}", "id", id, "outcome", what);
}

/* The job's spec, normalized. A spec no worker can run (written straight
 * into Redis by a foreign producer) is dead-lettered with its reason:
 * NULL. */
static json_t *worker_check_spec(struct worker *w, const char *id, long long attempt,
                                 const char *text, size_t len)
{
    char err[512];
    json_t *spec = json_loadb(text, len, 0, NULL);
    if (!spec)
        snprintf(err, sizeof(err), "the job's spec is not valid JSON");
    if (spec && job_spec_normalize(spec, &w->lim, err, sizeof(err)) == 0)
        return spec;
    char reason[600];
    snprintf(reason, sizeof(reason), "invalid spec: %s", err);
    _cleanup_report_ struct report rep = {.done = json_pack("{s:s, s:s, s:{s:s, s:s}}", "status",
                                                            queue_status_name(QUEUE_STATUS_DEAD),
                                                            "dead_reason", reason, "error", "type",
                                                            "InvalidSpec", "message", err)};
    log_warn("dead-lettered a job with an invalid spec", "{s:s, s:s}", "id", id, "reason", err);
    worker_complete(w, id, attempt, &rep, NULL);
    json_decref(spec);
    return NULL;
}

/* Hands the job to the executor as one RUN message, built once, and
 * records what the executor reports. */
static void worker_execute(struct worker *w, const char *id, long long attempt, const json_t *spec)
{
    _cleanup_report_ struct report rep = {0};
    json_t *req =
        json_pack("{s:s, s:I, s:O}", "id", id, "attempt", (json_int_t)attempt, "spec", spec);
    _cleanup_free_ char *run = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    size_t len = run ? strlen(run) : 0;
    int rr = !run              ? -ENOMEM
             : w->exec_fd >= 0 ? frame_send(w->exec_fd, FRAME_RUN, run, len)
                               : -EPIPE;
    if (rr < 0 && run) {
        /* The executor died between jobs: the job has not started, so start
         * a new executor and hand it the job. */
        worker_stop_executor(w, true);
        rr = worker_start_executor(w);
        if (rr == 0)
            rr = frame_send(w->exec_fd, FRAME_RUN, run, len);
    }
    if (rr == 0)
        rr = worker_await(w, id, &rep);
    live_clear(&w->live, false); /* a batch the job's end cut short */
    if (rr == -ECANCELED) {
        /* Stop now: have the executor kill the job (it then stays clean for
         * a successor), and leave the job in the processing list, from
         * which deregistering gives it back to the queue. The run counts
         * against no budget. */
        worker_abandon_job(w);
    } else if (rr < 0) {
        log_error("the executor died during a job; requeueing the job and restarting it", "{s:s}",
                  "id", id);
        worker_stop_executor(w, true);
        worker_lost_job(w, id);
        worker_start_executor(w);
    }
    if (rep.done)
        worker_complete(w, id, attempt, &rep, spec);
}

/* Runs one job that BLMOVE put into this worker's processing list: its id,
 * or a fair-share ticket (QUEUE_TICKET), which start.lua turns into the
 * job that is next by fairness. */
static void worker_run_taken(struct worker *w, const char *entry)
{
    struct jobq_start st;
    if (jobq_start(&w->jq, entry, util_now_us(), &st) < 0)
        return;
    if (st.what == JOBQ_MISSING) {
        worker_deadletter(w, entry, strlen(entry), "no job hash for this id");
        return;
    }
    if (st.what == JOBQ_SKIP) {
        if (strcmp(entry, QUEUE_TICKET) != 0)
            log_info("skipped a job that is no longer queued", "{s:s, s:s}", "id", entry, "status",
                     st.status);
        else if (!strcmp(st.status, "held"))
            log_debug("a ticket found no tenant that may start a job now; parked", "{s:s}",
                      "status", st.status);
        return;
    }
    const char *id = st.id;
    snprintf(w->taken, sizeof(w->taken), "%s", id);
    _cleanup_free_ char *text = st.spec;
    w->job_started_mono = util_mono_ms();
    w->wrote_live = false;
    if (st.created_ms > 0) {
        long long waited = util_now_ms() - st.created_ms;
        jobq_observe(&w->jq.stats.queue_wait, waited > 0 ? (double)waited / 1000.0 : 0);
    }
    json_t *spec = worker_check_spec(w, id, st.attempt, text, st.spec_len);
    if (!spec)
        return;
    w->failures_hint = st.failures + 1;

    /* Its hash shows it busy from its next heartbeat, within REPORT_MS:
     * no round trip on the job's path. */
    snprintf(w->current, sizeof(w->current), "%s", id);
    w->state = "busy";
    w->report_due = true;
    log_info("job started", "{s:s, s:I}", "id", id, "attempt", (json_int_t)st.attempt);
    worker_execute(w, id, st.attempt, spec);
    json_decref(spec);
    w->current[0] = '\0';
    w->state = stop_signals ? "draining" : "idle";
    w->report_due = true;
}

/* worker_run_taken, with the id known as this worker's from its BLMOVE on:
 * a reconnect in between (jobq_reconcile) must not give it back. */
static void worker_run(struct worker *w, const char *id)
{
    snprintf(w->taken, sizeof(w->taken), "%s", id);
    worker_run_taken(w, id);
    w->taken[0] = '\0';
}

static void worker_deregister(struct worker *w)
{
    long long n = w->q ? jobq_deregister(&w->jq, w->q) : -EIO;
    if (n > 0)
        log_warn("gave unfinished jobs back to the queue", "{s:I}", "count", (json_int_t)n);
}

/* Duties any live worker shares: ticking schedules (worker_tick), promoting due retries (about once
 * a second) and, under a short lock, reaping workers that stopped heartbeating (once a heartbeat
 * interval). A worker reaps only after it has itself been connected for a full dead-worker
 * interval, so that after a Redis outage the others get the time to heartbeat again first. */
static void worker_housekeeping(struct worker *w)
{
    int64_t mono = util_mono_ms();
    long long hb_ms = config_int(CFG_HEARTBEAT) * 1000, dead_ms = 3 * hb_ms;
    long long now = util_now_ms();
    if (!w->q)
        return;
    if (mono >= w->next_promote_ms) {
        w->next_promote_ms = mono + 1000;
        long long n = jobq_promote(&w->jq, w->q, now, &w->next_due_ms);
        if (n == -EIO) {
            worker_disconnect(w);
            return;
        }
        if (n > 0)
            log_info("promoted retries to the queue", "{s:I}", "count", (json_int_t)n);
    }
    if (worker_tick(w) < 0) {
        worker_disconnect(w);
        return;
    }
    if (mono < w->next_reap_ms || !w->q || mono - w->connected_since < dead_ms)
        return;
    w->next_reap_ms = mono + hb_ms;
    struct jobq_reaped reaped;
    int r = jobq_reap(&w->jq, w->q, now, dead_ms, hb_ms, &reaped);
    if (r == -EIO)
        worker_disconnect(w);
    else if (r == 1 && reaped.workers > 0)
        log_warn("reaped workers that stopped heartbeating", "{s:I, s:I, s:I}", "workers",
                 (json_int_t)reaped.workers, "requeued", (json_int_t)reaped.requeued, "dead",
                 (json_int_t)reaped.dead);
}

/* How long a BLMOVE blocks: FETCH_BLOCK_MS, or until the next scheduled
 * job is due, which housekeeping then promotes (so a job submitted with a
 * run_at starts on time, not up to a block later), or the next schedule of
 * a recurring job, which it then ticks. */
static int worker_block_ms(struct worker *w)
{
    long long block = FETCH_BLOCK_MS;
    if (w->next_fire_ms > 0 && worker_tick_in(w) < block)
        block = worker_tick_in(w); /* ticked right after this BLMOVE */
    if (w->next_due_ms > 0 && w->next_due_ms - util_now_ms() < FETCH_BLOCK_MS) {
        /* Promoted at the next housekeeping, right after this BLMOVE. */
        w->next_promote_ms = 0;
        if (w->next_due_ms - util_now_ms() < block)
            block = w->next_due_ms - util_now_ms();
    }
    return block > 10 ? (int)block : 10;
}

static int worker_loop(struct worker *w)
{
    while (!stop_signals) {
        worker_health(w);
        worker_maybe_heartbeat(w);
        worker_housekeeping(w);
        if (w->exec_fd < 0) {
            /* Take no job without an executor to run it. */
            if (worker_start_executor(w) < 0) {
                sleep(2);
                continue;
            }
        }
        if (worker_connect(w, true) < 0)
            break;
        char *entry = NULL, err[256];
        size_t len = 0;
        int r = jobq_take(&w->jq, w->q, worker_block_ms(w), &entry, &len, err, sizeof(err));
        w->queue_dry = r == 0;
        if (r == -EIO) {
            log_warn("lost the Redis connection", "{s:s}", "error", queue_sync_errstr(w->q));
            worker_disconnect(w);
            continue;
        }
        if (r == -EPROTO) {
            log_error("BLMOVE failed", "{s:s}", "error", err);
            usleep(500000);
            continue;
        }
        if (r != 1)
            continue;
        if (memchr(entry, '\0', len) == NULL &&
            (util_valid_id(entry) || !strcmp(entry, QUEUE_TICKET))) {
            worker_run(w, entry);
        } else {
            /* Not an id any producer may use: dead-letter exactly these
             * bytes rather than run or cycle them. */
            worker_deadletter(w, entry, len, "not a job id (1-64 of [A-Za-z0-9_-])");
        }
        free(entry);
    }
    return 0;
}

/* --check's Redis line, when a Redis setting is given: connects as the
 * worker would (TLS, ACL user, sentinels) and PINGs. 0, or 3 with the
 * reason printed. */
static int redis_check(void)
{
    if (!config_is_set(CFG_REDIS_URL) && !config_str(CFG_REDIS_SENTINELS)[0] &&
        !config_str(CFG_REDIS_CLUSTER_NODES)[0])
        return 0;
    struct queue_url url;
    char err[512];
    int r = queue_url_load(&url, err, sizeof(err));
    bool tls = r == 0 && url.tls;
    if (r == 0)
        r = queue_sync_check(&url, QUEUE_CONNECT_TIMEOUT_MS, err, sizeof(err));
    queue_url_free(&url);
    if (r < 0) {
        printf("redis: error: %s\n", err);
        return 3;
    }
    printf("redis: ok (%s%s)\n", err, tls ? ", TLS" : "");
    return 0;
}

/* stratq worker --check: the layers this host gives jobs, as the executor
 * would set them up, whether the executor program is there and starts, and
 * whether Redis answers when one is configured. Fails when an always-on
 * layer or one named in STRATQ_SANDBOX_REQUIRE is missing (1), the executor
 * program is missing or does not start (4), or Redis does not answer (3). */
static int worker_check(void)
{
    struct sandbox_status st;
    struct sandbox_options opt;
    sandbox_options_load(&opt);
    opt.check_only = true;
    char text[4096], err[400];
    if (sandbox_probe(&st, &opt, err, sizeof(err)) < 0) {
        fprintf(stderr, "stratq worker: %s\n", err);
        return 2;
    }
    sandbox_describe(&st, text, sizeof(text));
    printf("%s\n", text);
    char exec_text[PATH_MAX + 512];
    bool exec_ok = launch_check(exec_text, sizeof(exec_text)) == 0;
    printf(exec_ok ? "executor: ok (%s)\n" : "executor: error: %s\n", exec_text);
    _cleanup_free_ char *layers = sandbox_status_json(&st);
    int r = sandbox_require(layers, config_str(CFG_SANDBOX_REQUIRE), err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "stratq worker: %s\n", err);
        return r == -2 ? 2 : 1;
    }
    for (int i = 0; i <= SB_SESSION; i++)
        if (!st.active[i]) {
            fprintf(stderr, "stratq worker: the always-on %s layer is missing\n",
                    sandbox_layer_name(i));
            return 1;
        }
    if (!exec_ok)
        return 4;
    return redis_check();
}

/* Reads the settings. Returns -1 to go on, or the exit code (--help: 0;
 * a bad setting: 2). */
static int worker_options(int argc, char **argv)
{
    char err[256];
    char **args;
    int nargs;
    int r = config_load(CMD_WORKER, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(CMD_WORKER, "stratq worker [options]",
                          "Takes jobs from the Redis queue one at a time and runs each in a "
                          "sandboxed Python process.");
        return 0;
    }
    if (r < 0 || nargs > 0) {
        fprintf(stderr, "stratq worker: %s\n", r < 0 ? err : "takes no arguments");
        return 2;
    }
    if (log_set_level_name(config_str(CFG_LOG_LEVEL)) < 0) {
        fprintf(stderr, "stratq worker: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    return -1;
}

/* The worker's id: --worker-id, or <host>-<pid>-<random>. Returns 0, or
 * -EINVAL (said on stderr) when it is not one a key may hold. */
static int worker_make_id(struct worker *w)
{
    gethostname(w->host, sizeof(w->host) - 1);
    if (config_str(CFG_WORKER_ID)[0]) {
        snprintf(w->id, sizeof(w->id), "%s", config_str(CFG_WORKER_ID));
    } else {
        char rnd[UTIL_ID_LEN + 1];
        util_new_id(rnd);
        char host[40];
        size_t n = 0;
        for (const char *h = w->host; *h && n < sizeof(host) - 1; h++)
            host[n++] = (char)(util_valid_id((char[]){*h, 0}) ? *h : '-');
        host[n] = '\0';
        snprintf(w->id, sizeof(w->id), "%s-%d-%s", n ? host : "worker", (int)getpid(), rnd + 24);
    }
    if (util_valid_id(w->id))
        return 0;
    fprintf(stderr,
            "stratq worker: the worker id '%s' must be 1-64 characters of "
            "[A-Za-z0-9_-]; set --worker-id\n",
            w->id);
    return -EINVAL;
}

/* Everything a worker needs before it starts its executor: the Redis URL,
 * the key names, its id, the health port, the protocol's calls. Returns 0,
 * or the exit code (what failed is said on stderr). */
static int worker_init(struct worker *w)
{
    char err[256];
    int r;
    if (queue_url_load(&w->url, err, sizeof(err)) < 0) {
        fprintf(stderr, "stratq worker: %s\n", err);
        return 2;
    }
    /* Found once, and kept open: a worker without its executor program
     * could take no job, and every executor it starts is this file. */
    char perr[PATH_MAX + 256];
    w->exec_prog = launch_open(&w->exec_path, perr, sizeof(perr));
    if (w->exec_prog < 0) {
        fprintf(stderr, "stratq worker: %s\n", perr);
        return 1;
    }
    w->lim = (struct job_limits){config_int(CFG_DEFAULT_TIMEOUT), config_int(CFG_MAX_TIMEOUT),
                                 config_int(CFG_DEFAULT_MEMORY), config_int(CFG_MAX_MEMORY)};
    if (queue_names_init(&w->names, config_str(CFG_QUEUE), config_str(CFG_PREFIX), &w->url, err,
                         sizeof(err)) < 0) {
        fprintf(stderr, "stratq worker: %s\n", err);
        return 1;
    }
    if (worker_make_id(w) < 0)
        return 1;
    if ((r = health_start(config_str(CFG_HEALTH_BIND), (int)config_int(CFG_HEALTH_PORT), w->id)) <
        0) {
        fprintf(stderr, "stratq worker: cannot serve the health port %s:%lld: %s\n",
                config_str(CFG_HEALTH_BIND), config_int(CFG_HEALTH_PORT), strerror(-r));
        return 1;
    }
    struct jobq_settings set = {
        .index_size = config_int(CFG_INDEX_SIZE),
        .result_ttl_s = config_int(CFG_RESULT_TTL),
        .failed_ttl_s = config_int(CFG_FAILED_RESULT_TTL),
        .max_deliveries = config_int(CFG_MAX_DELIVERIES),
        .live_ttl_s = config_int(CFG_FAILED_RESULT_TTL) + config_int(CFG_MAX_TIMEOUT),
    };
    if (jobq_init(&w->jq, &w->names, w->id, &set, worker_call, w) < 0)
        return 1;
    w->started_ms = util_now_ms();
    return 0;
}

/* Runs the worker until it is told to stop: its executor, its loop, its
 * drain and its goodbye to Redis. Returns the exit code. */
static int worker_serve(struct worker *w)
{
    /* The supervisor holds the Redis password: keep it out of core dumps and
     * away from ptrace by same-uid processes. */
    prctl(PR_SET_DUMPABLE, 0);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int r = worker_start_executor(w);
    if (r == -EPERM || r == -EPROTO)
        return 1;
    if (worker_connect(w, true) == 0) {
        log_info("worker started", "{s:s, s:s, s:s}", "worker", w->id, "queue", w->names.queue,
                 "mode", config_str(CFG_MODE));
        worker_heartbeat(w);
        worker_loop(w);
        w->state = "draining";
        log_info("worker stopping", "{s:s}", "worker", w->id);
    }
    worker_stop_executor(w, false);
    /* Deregistering is a courtesy (the reaper does it for a worker that
     * cannot): wait for an absent Redis a few seconds only. */
    w->give_up_at = util_mono_ms() + 5000;
    if (worker_connect(w, false) == 0) {
        if (w->report_due)
            worker_heartbeat(w); /* its last counts, into the stats hash */
        worker_deregister(w);
    }
    log_info("worker stopped", "{s:s, s:I, s:I}", "worker", w->id, "jobs_done",
             (json_int_t)w->jobs_done, "jobs_failed", (json_int_t)w->jobs_failed);
    return 0;
}

/* The one place a worker gives back what it holds, whatever it got to:
 * each part accepts what was never made. */
static void worker_release(struct worker *w)
{
    worker_stop_executor(w, true);
    if (w->exec_prog >= 0)
        close(w->exec_prog);
    w->exec_prog = -1;
    free(w->exec_path);
    w->exec_path = NULL;
    worker_disconnect(w);
    health_stop();
    jobq_free(&w->jq);
    free(w->sandbox);
    w->sandbox = NULL;
    queue_names_free(&w->names);
    queue_url_free(&w->url);
}

int worker_main(int argc, char **argv)
{
    struct worker w = {.exec_prog = -1, .exec_pid = -1, .exec_fd = -1, .state = "idle"};

    log_set_component("worker");
    int rc = worker_options(argc, argv);
    if (rc < 0 && config_bool(CFG_CHECK))
        rc = worker_check();
    if (rc < 0) {
        rc = worker_init(&w);
        if (rc == 0)
            rc = worker_serve(&w);
    }
    worker_release(&w);
    config_free();
    return rc;
}

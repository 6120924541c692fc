#define _GNU_SOURCE
#include "jobq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

/* --- Building a call ------------------------------------------------------- */

static void call_init(struct queue_call *c, enum queue_script s, bool until_done)
{
    memset(c, 0, sizeof(*c));
    c->script = s;
    c->nkeys = queue_script_nkeys(s);
    c->until_done = until_done;
}

/* Appends len bytes at s, which the call does not own. */
static void put_bin(struct queue_call *c, const char *s, size_t len)
{
    if (c->argc >= QUEUE_CALL_MAX || !s) {
        c->nomem = true;
        return;
    }
    c->argv[c->argc] = s;
    c->len[c->argc++] = len;
}

static void put(struct queue_call *c, const char *s)
{
    put_bin(c, s, s ? strlen(s) : 0);
}

/* Appends s (made with malloc, or NULL when it could not be), which the
 * call now owns. */
static void put_own(struct queue_call *c, char *s)
{
    if (c->argc < QUEUE_CALL_MAX)
        c->owned[c->argc] = s;
    else
        free(s);
    put(c, c->argc < QUEUE_CALL_MAX ? s : NULL);
}

static void put_int(struct queue_call *c, long long v)
{
    char *s;
    put_own(c, asprintf(&s, "%lld", v) < 0 ? NULL : s);
}

static void put_key(struct queue_call *c, const char *prefix, const char *mid, const char *id)
{
    char *s;
    put_own(c, asprintf(&s, "%s%s%s", prefix, mid, id) < 0 ? NULL : s);
}

/* A field/value pair of a hash the script writes; none for a NULL value. */
static void put_field(struct queue_call *c, const char *field, const char *value)
{
    if (value) {
        put(c, field);
        put(c, value);
    }
}

static void put_field_int(struct queue_call *c, const char *field, long long value)
{
    put(c, field);
    put_int(c, value);
}

/* The end of building: -ENOMEM when a string was missing. */
static int built(struct queue_call *c)
{
    if (c->nomem) {
        queue_call_free(c);
        c->nomem = true;
        return -ENOMEM;
    }
    return 0;
}

void queue_call_free(struct queue_call *c)
{
    for (int i = 0; i < QUEUE_CALL_MAX; i++) {
        free(c->owned[i]);
        c->owned[i] = NULL;
    }
    c->argc = 0;
}

redisReply *queue_sync_call(struct queue_sync *q, const struct queue_call *c)
{
    return queue_sync_eval(q, c->script, c->nkeys, c->argc, c->argv, c->len);
}

int queue_async_call(struct queue_async *qa, const struct queue_call *c, queue_async_cb *cb,
                     void *priv)
{
    return queue_async_eval(qa, c->script, c->nkeys, c->argc, c->argv, c->len, cb, priv);
}

/* --- The API's calls ------------------------------------------------------- */

int queue_build_enqueue(struct queue_call *c, const struct queue_names *n, const char *id,
                        const char *spec, long long now_ms, long long index_size)
{
    call_init(c, QS_ENQUEUE, false);
    put_key(c, n->job_prefix, "", id);
    put(c, n->queue);
    put(c, id);
    put(c, spec);
    put_int(c, now_ms);
    put(c, n->events);
    put(c, n->prefix);
    put_int(c, index_size);
    return built(c);
}

/* The KEYS of cancel.lua and retry.lua: the job's hash, the queue, and
 * the set the job may also be in. */
static void put_job_keys(struct queue_call *c, const struct queue_names *n, const char *id,
                         const char *set)
{
    put_key(c, n->job_prefix, "", id);
    put(c, n->queue);
    put(c, set);
}

/* The ARGV they start with: what a job's status change needs. */
static void put_transition(struct queue_call *c, const struct queue_names *n, const char *id,
                           long long now_ms, long long index_size)
{
    put(c, id);
    put_int(c, now_ms);
    put(c, n->events);
    put(c, n->prefix);
    put_int(c, index_size);
}

int queue_build_cancel(struct queue_call *c, const struct queue_names *n, const char *id,
                       long long now_ms, long long index_size, long long cancelled_ttl_s)
{
    call_init(c, QS_CANCEL, false);
    put_job_keys(c, n, id, n->scheduled);
    put_transition(c, n, id, now_ms, index_size);
    put_int(c, cancelled_ttl_s);
    return built(c);
}

int queue_build_retry(struct queue_call *c, const struct queue_names *n, const char *id,
                      long long now_ms, long long index_size)
{
    call_init(c, QS_RETRY, false);
    put_job_keys(c, n, id, n->dead);
    put_transition(c, n, id, now_ms, index_size);
    return built(c);
}

int queue_build_logs(struct queue_call *c, const struct queue_names *n, const char *id,
                     long long stdout_offset, long long stderr_offset, long long log_offset)
{
    call_init(c, QS_LOGS, false);
    put_key(c, n->job_prefix, "", id);
    put_int(c, stdout_offset);
    put_int(c, stderr_offset);
    put_int(c, log_offset);
    return built(c);
}

int queue_build_list(struct queue_call *c, const struct queue_names *n, const char *status,
                     const char *cursor_score, const char *cursor_id, long long limit)
{
    call_init(c, QS_LIST, false);
    put_key(c, n->prefix, ":index:", status);
    put(c, cursor_score);
    put(c, cursor_id);
    put_int(c, limit);
    put(c, n->job_prefix);
    return built(c);
}

int queue_build_workers(struct queue_call *c, const struct queue_names *n)
{
    call_init(c, QS_WORKERS, false);
    put(c, n->workers);
    put(c, n->worker_prefix);
    return built(c);
}

/* The KEYS stats.lua and metrics.lua share: the queue and the sets they
 * count. */
static void put_count_keys(struct queue_call *c, const struct queue_names *n)
{
    put(c, n->queue);
    put(c, n->workers);
    put(c, n->scheduled);
    put(c, n->dead);
}

int queue_build_stats(struct queue_call *c, const struct queue_names *n)
{
    call_init(c, QS_STATS, false);
    put_count_keys(c, n);
    put(c, n->processing_prefix);
    return built(c);
}

int queue_build_metrics(struct queue_call *c, const struct queue_names *n)
{
    call_init(c, QS_METRICS, false);
    put_count_keys(c, n);
    put(c, n->stats);
    put(c, n->processing_prefix);
    return built(c);
}

/* --- The worker's calls ---------------------------------------------------- */

int jobq_init(struct jobq *j, const struct queue_names *n, const char *worker,
              const struct jobq_settings *set, jobq_eval_fn *eval, void *priv)
{
    memset(j, 0, sizeof(*j));
    j->names = n;
    j->worker = strdup(worker);
    j->processing_key = queue_processing_key(n, worker);
    j->worker_key = queue_worker_key(n, worker);
    j->job_prefix = queue_job_key(n, "");
    j->set = *set;
    j->eval = eval;
    j->priv = priv;
    if (!j->worker || !j->processing_key || !j->worker_key || !j->job_prefix) {
        jobq_free(j);
        return -ENOMEM;
    }
    return 0;
}

void jobq_free(struct jobq *j)
{
    free(j->worker);
    free(j->processing_key);
    free(j->worker_key);
    free(j->job_prefix);
    j->worker = j->processing_key = j->worker_key = j->job_prefix = NULL;
}

void queue_sync_setname(struct queue_sync *q, const char *name)
{
    /* Kept, for the connections a redirect makes. */
    char *copy = strdup(name);
    if (copy) {
        free(q->name);
        q->name = copy;
    }
    redisReply *r = redisCommand(q->c, "CLIENT SETNAME %s", name);
    if (r)
        freeReplyObject(r);
}

/* Runs the call (built with result built_rc) through the worker's hook
 * and frees it; NULL when it gave up or could not be built. */
static redisReply *run(struct jobq *j, struct queue_call *c, int built_rc)
{
    if (built_rc < 0)
        return NULL;
    redisReply *r = j->eval(j->priv, c);
    queue_call_free(c);
    return r;
}

int jobq_take(struct jobq *j, struct queue_sync *q, int block_s, char **entry, size_t *len,
              char *err, size_t errlen)
{
    /* Atomic on the node that owns the slot: a BLMOVE blocked there when
     * the slot moves away is answered MOVED (nothing taken) and sent again
     * to the new owner. */
    redisReply *r = queue_sync_command(q, "BLMOVE %s %s RIGHT LEFT %d", j->names->queue,
                                       j->processing_key, block_s);
    int rc = 0;
    if (!r)
        return -EIO;
    if (r->type == REDIS_REPLY_STRING) {
        *entry = malloc(r->len + 1);
        if (*entry) {
            memcpy(*entry, r->str, r->len);
            (*entry)[r->len] = '\0';
            *len = r->len;
            rc = 1;
        } else {
            rc = -ENOMEM;
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", r->str);
        rc = -EPROTO;
    }
    freeReplyObject(r);
    return rc;
}

/* What start.lua and complete.lua begin with: KEYS the job's hash, the
 * worker's processing list and hash; ARGV the job's and the worker's ids. */
static void put_run(struct queue_call *c, const struct jobq *j, const char *id)
{
    put_key(c, j->job_prefix, "", id);
    put(c, j->processing_key);
    put(c, j->worker_key);
    put(c, id);
    put(c, j->worker);
}

int jobq_build_start(const struct jobq *j, struct queue_call *c, const char *id, long long now_ms)
{
    call_init(c, QS_START, true);
    put_run(c, j, id);
    put_int(c, now_ms);
    put(c, j->names->events);
    put(c, j->names->prefix);
    put_int(c, j->set.index_size);
    return built(c);
}

int jobq_start(struct jobq *j, const char *id, long long now_ms, struct jobq_start *out)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_start(j, &c, id, now_ms));
    int rc = -EIO;
    memset(out, 0, sizeof(*out));
    if (!r)
        return -EIO;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        goto out;
    const char *what = r->element[0]->str;
    if (!strcmp(what, "missing")) {
        out->what = JOBQ_MISSING;
        rc = 0;
    } else if (!strcmp(what, "skip")) {
        out->what = JOBQ_SKIP;
        snprintf(out->status, sizeof(out->status), "%s",
                 r->elements > 1 && r->element[1]->str ? r->element[1]->str : "?");
        rc = 0;
    } else if (!strcmp(what, "run") && r->elements >= 3 &&
               r->element[2]->type == REDIS_REPLY_STRING) {
        out->what = JOBQ_RUN;
        out->attempt = r->element[1]->integer;
        out->failures = r->elements > 3 ? r->element[3]->integer : 0;
        out->spec = malloc(r->element[2]->len + 1);
        if (out->spec) {
            memcpy(out->spec, r->element[2]->str, r->element[2]->len);
            out->spec[r->element[2]->len] = '\0';
            out->spec_len = r->element[2]->len;
            rc = 0;
        }
    }
out:
    freeReplyObject(r);
    return rc;
}

int jobq_build_complete(const struct jobq *j, struct queue_call *c, const char *id,
                        const struct job_outcome *o, long long now_ms)
{
    call_init(c, QS_COMPLETE, true);
    put_run(c, j, id);
    put_int(c, o->attempt);
    put_int(c, now_ms);
    put(c, j->names->events);
    put_int(c, j->set.result_ttl_s);
    put_int(c, j->set.failed_ttl_s);
    put(c, j->names->prefix);
    put_int(c, j->set.index_size);
    put_int(c, o->max_attempts > 0 ? o->max_attempts : 1);
    put_int(c, o->next_run_ms);
    put(c, queue_status_name(o->status));
    put_field(c, "result", o->result);
    put_field(c, "error", o->error);
    put_field(c, "stdout", o->out ? o->out : "");
    put_field(c, "stderr", o->err ? o->err : "");
    put_field(c, "dead_reason", o->dead_reason);
    put_field(c, "usage", o->usage);
    return built(c);
}

int jobq_complete(struct jobq *j, const char *id, const struct job_outcome *o, long long now_ms)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_complete(j, &c, id, o, now_ms));
    if (!r)
        return -EIO;
    int rc = r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2 ? (int)r->integer
                                                                                  : -EPROTO;
    freeReplyObject(r);
    return rc;
}

int jobq_build_heartbeat(const struct jobq *j, struct queue_call *c,
                         const struct jobq_worker_info *info, long long now_ms, long long ttl_ms)
{
    call_init(c, QS_HEARTBEAT, false);
    put(c, j->names->workers);
    put(c, j->worker_key);
    put(c, j->worker);
    put_int(c, now_ms);
    put_int(c, ttl_ms);
    /* jobs_done and jobs_failed are counted by complete.lua itself. */
    put_field(c, "host", info->host);
    put_field_int(c, "pid", info->pid);
    put_field(c, "version", info->version);
    put_field(c, "state", info->state);
    put_field(c, "current_job", info->current_job);
    put_field_int(c, "started_ms", info->started_ms);
    put_field(c, "sandbox", info->sandbox ? info->sandbox : "{}");
    return built(c);
}

int jobq_heartbeat(struct jobq *j, const struct jobq_worker_info *info, long long now_ms,
                   long long ttl_ms)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_heartbeat(j, &c, info, now_ms, ttl_ms));
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}

int jobq_build_deregister(const struct jobq *j, struct queue_call *c)
{
    call_init(c, QS_DEREGISTER, true);
    put(c, j->names->workers);
    put(c, j->worker_key);
    put(c, j->processing_key);
    put(c, j->names->queue);
    put(c, j->worker);
    put(c, j->job_prefix);
    put(c, j->names->events);
    return built(c);
}

/* An integer reply as a count; -EIO for none or another type. */
static long long count(redisReply *r)
{
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -EIO;
    if (r)
        freeReplyObject(r);
    return n;
}

long long jobq_deregister(struct jobq *j)
{
    struct queue_call c;
    return count(run(j, &c, jobq_build_deregister(j, &c)));
}

int jobq_build_promote(const struct jobq *j, struct queue_call *c, long long now_ms)
{
    call_init(c, QS_PROMOTE, false);
    put(c, j->names->scheduled);
    put(c, j->names->queue);
    put_int(c, now_ms);
    put(c, j->names->prefix);
    put(c, j->names->events);
    put_int(c, j->set.index_size);
    return built(c);
}

long long jobq_promote(struct jobq *j, long long now_ms)
{
    struct queue_call c;
    return count(run(j, &c, jobq_build_promote(j, &c, now_ms)));
}

/* The ARGV reap.lua and lost.lua pass on to lib.lua's stratq_lost. */
static void put_lost_args(struct queue_call *c, const struct jobq *j)
{
    put(c, j->names->prefix);
    put(c, j->names->events);
    put_int(c, j->set.max_deliveries);
    put_int(c, j->set.index_size);
    put_int(c, j->set.failed_ttl_s);
}

int jobq_build_reap(const struct jobq *j, struct queue_call *c, long long now_ms,
                    long long silence_ms)
{
    call_init(c, QS_REAP, false);
    put(c, j->names->workers);
    put(c, j->names->queue);
    put_int(c, now_ms);
    put_int(c, silence_ms);
    put_lost_args(c, j);
    put(c, j->worker);
    return built(c);
}

int jobq_reap(struct jobq *j, struct queue_sync *q, long long now_ms, long long silence_ms,
              long long lock_ms, struct jobq_reaped *out)
{
    redisReply *lock =
        queue_sync_command(q, "SET %s %s NX PX %lld", j->names->reaper_lock, j->worker, lock_ms);
    if (!lock)
        return -EIO;
    bool mine = lock->type == REDIS_REPLY_STATUS;
    freeReplyObject(lock);
    if (!mine)
        return 0;
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_reap(j, &c, now_ms, silence_ms));
    int rc = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        out->workers = r->element[0]->integer;
        out->requeued = r->element[1]->integer;
        out->dead = r->element[2]->integer;
        rc = 1;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int jobq_build_lost(const struct jobq *j, struct queue_call *c, const char *id, long long now_ms)
{
    call_init(c, QS_LOST, true);
    put(c, j->processing_key);
    put(c, j->names->queue);
    put(c, id);
    put(c, j->worker);
    put_int(c, now_ms);
    put_lost_args(c, j);
    return built(c);
}

int jobq_lost(struct jobq *j, const char *id, long long now_ms, char *what, size_t whatlen)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_lost(j, &c, id, now_ms));
    if (!r)
        return -EIO;
    snprintf(what, whatlen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "?");
    freeReplyObject(r);
    return 0;
}

/* The most entries the dead-letter list keeps. */
#define DEADLETTER_CAP 10000

int jobq_build_deadletter(const struct jobq *j, struct queue_call *c, const char *entry, size_t len,
                          const char *reason, long long now_ms)
{
    call_init(c, QS_DEADLETTER, true);
    put(c, j->processing_key);
    put(c, j->names->deadletter);
    put_bin(c, entry, len);
    put(c, reason);
    put_int(c, now_ms);
    put(c, j->worker);
    put_int(c, DEADLETTER_CAP);
    return built(c);
}

int jobq_deadletter(struct jobq *j, const char *entry, size_t len, const char *reason,
                    long long now_ms)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_deadletter(j, &c, entry, len, reason, now_ms));
    if (!r)
        return -EIO;
    freeReplyObject(r);
    return 0;
}

/* Reads n pipelined replies; -EIO when the connection was lost. */
static int drain(struct queue_sync *q, int n)
{
    for (int k = 0; k < n; k++) {
        redisReply *r = NULL;
        if (redisGetReply(q->c, (void **)&r) != REDIS_OK)
            return -EIO;
        freeReplyObject(r);
    }
    return 0;
}

int jobq_output(struct jobq *j, struct queue_sync *q, const char *id, const struct jobq_output *o)
{
    _cleanup_free_ char *job_key = queue_job_key(j->names, id);
    if (!job_key)
        return -ENOMEM;
    if (o->progress || o->nlogs) {
        /* progress: the job hash's field, shown by GET /v1/jobs/{id}; log:
         * the job's structured lines, kept beside it like its output. */
        int n = 0;
        if (o->progress) {
            redisAppendCommand(q->c, "HSET %s progress %s", job_key, o->progress);
            n++;
        }
        for (size_t i = 0; i < o->nlogs; i++) {
            redisAppendCommand(q->c, "RPUSH %s:log %s", job_key, o->logs[i] ? o->logs[i] : "{}");
            n++;
        }
        if (o->nlogs) {
            redisAppendCommand(q->c, "EXPIRE %s:log %lld", job_key, j->set.live_ttl_s);
            n++;
        }
        if (drain(q, n) < 0)
            return -EIO;
    }
    static const char *const streams[] = {"stdout", "stderr"};
    for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
        if (!o->stream[i] || !o->stream_len[i])
            continue;
        redisAppendCommand(q->c, "APPEND %s:%s %b", job_key, streams[i], o->stream[i],
                           o->stream_len[i]);
        redisAppendCommand(q->c, "EXPIRE %s:%s %lld", job_key, streams[i], j->set.live_ttl_s);
        /* Live output is best effort; the final record has it all. */
        if (drain(q, 2) < 0)
            return -EIO;
    }
    return 0;
}

int jobq_cancel_requested(struct jobq *j, struct queue_sync *q, const char *id)
{
    _cleanup_free_ char *job_key = queue_job_key(j->names, id);
    if (!job_key)
        return -ENOMEM;
    redisReply *r = redisCommand(q->c, "HEXISTS %s cancel_requested_ms", job_key);
    if (!r)
        return -EIO;
    int yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

#define _GNU_SOURCE
#include "jobq.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/sched.h"
#include "../common/util.h"

_Static_assert(sizeof((double[]){QUEUE_BUCKETS}) / sizeof(double) <= 32,
               "struct jobq_histogram holds 32 buckets");

/* --- Building a call ------------------------------------------------------- */

static void call_init(struct queue_call *c, enum queue_script s, bool until_done)
{
    memset(c, 0, sizeof(*c));
    c->script = s;
    c->nkeys = queue_script_nkeys(s);
    c->until_done = until_done;
}

/* Room for one more string; false (and nomem) when there is none. */
static bool grow(struct queue_call *c)
{
    if (c->argc < c->cap)
        return true;
    int cap = c->cap ? c->cap * 2 : 32;
    const char **v = realloc(c->argv, (size_t)cap * sizeof(*v));
    if (v)
        c->argv = v;
    size_t *l = realloc(c->len, (size_t)cap * sizeof(*l));
    if (l)
        c->len = l;
    char **o = realloc(c->owned, (size_t)cap * sizeof(*o));
    if (o) {
        memset(o + c->cap, 0, (size_t)(cap - c->cap) * sizeof(*o));
        c->owned = o;
    }
    if (!v || !l || !o) {
        c->nomem = true;
        return false;
    }
    c->cap = cap;
    return true;
}

/* Appends len bytes at s, which the call does not own. */
static void put_bin(struct queue_call *c, const char *s, size_t len)
{
    if (!s || !grow(c)) {
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

/* A plain command: its name, then what put() appends. */
static void command_init(struct queue_call *c, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->plain = true;
    put(c, name);
}

/* Appends s (made with malloc, or NULL when it could not be), which the
 * call now owns. */
static void put_own(struct queue_call *c, char *s)
{
    if (!s || !grow(c)) {
        free(s);
        c->nomem = true;
        return;
    }
    c->owned[c->argc] = s;
    put(c, s);
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

/* The same with a value of len bytes (0: a NUL-terminated string). */
static void put_field_n(struct queue_call *c, const char *field, const char *value, size_t len)
{
    if (value) {
        put(c, field);
        put_bin(c, value, len ? len : strlen(value));
    }
}

static void put_field_int(struct queue_call *c, const char *field, long long value)
{
    put(c, field);
    put_int(c, value);
}

/* The end of building a call from a reply of the wrong shape. */
static int refused(struct queue_call *c)
{
    queue_call_free(c);
    return -EPROTO;
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
    for (int i = 0; c->owned && i < c->cap; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->argv);
    free(c->len);
    c->owned = NULL;
    c->argv = NULL;
    c->len = NULL;
    c->argc = c->cap = 0;
}

redisReply *queue_sync_call(struct queue_sync *q, const struct queue_call *c)
{
    if (c->plain)
        return queue_sync_command_argv(q, c->argc, c->argv, c->len);
    redisReply *r = queue_sync_eval(q, c->script, c->nkeys, c->argc, c->argv, c->len);
    return c->durable ? queue_sync_durable(q, r) : r;
}

int queue_async_call(struct queue_async *qa, const struct queue_call *c, queue_async_cb *cb,
                     void *priv)
{
    if (c->plain)
        return queue_async_command_argv(qa, c->argc, c->argv, c->len, cb, priv);
    if (c->durable)
        return queue_async_eval_durable(qa, c->script, c->nkeys, c->argc, c->argv, c->len, cb,
                                        priv);
    return queue_async_eval(qa, c->script, c->nkeys, c->argc, c->argv, c->len, cb, priv);
}

/* The events channel and the command the script publishes on it with
 * (queue.h, struct queue_names' sharded). */
static void put_events(struct queue_call *c, const struct queue_names *n)
{
    put(c, n->events);
    put(c, n->sharded ? "SPUBLISH" : "PUBLISH");
}

/* --- The API's calls ------------------------------------------------------- */

int queue_build_enqueue(struct queue_call *c, const struct queue_names *n, const char *id,
                        const char *spec, long long now_ms, bool client_id,
                        const struct queue_submit *how)
{
    call_init(c, QS_ENQUEUE, false);
    c->durable = true;
    put_key(c, n->job_prefix, "", id);
    put(c, n->queue);
    put_key(c, n->index_prefix, "", "all");
    put(c, n->scheduled);
    put_key(c, n->index_prefix, "", queue_status_name(QUEUE_STATUS_SCHEDULED));
    put(c, id);
    put(c, spec);
    put_int(c, now_ms);
    put_events(c, n);
    put(c, client_id ? "1" : "0");
    put(c, how && how->tenant ? how->tenant : "");
    put_int(c, how ? how->priority : QUEUE_PRIORITY_DEFAULT);
    put_int(c, how ? how->run_at_ms : 0);
    put(c, n->base);
    return built(c);
}

int queue_build_cancel(struct queue_call *c, const struct queue_names *n, const char *id,
                       long long now_ms, long long cancelled_ttl_s)
{
    call_init(c, QS_CANCEL, false);
    put_key(c, n->job_prefix, "", id);
    put(c, n->queue);
    put(c, n->scheduled);
    put_key(c, n->index_prefix, "", queue_status_name(QUEUE_STATUS_CANCELLED));
    put(c, id);
    put_int(c, now_ms);
    put_events(c, n);
    put_int(c, cancelled_ttl_s);
    put(c, n->control_prefix);
    put(c, n->base);
    return built(c);
}

int queue_build_retry(struct queue_call *c, const struct queue_names *n, const char *id,
                      long long now_ms)
{
    call_init(c, QS_RETRY, false);
    put_key(c, n->job_prefix, "", id);
    put(c, n->queue);
    put(c, n->dead);
    put(c, id);
    put_int(c, now_ms);
    put_events(c, n);
    put(c, n->base);
    return built(c);
}

int queue_build_pause(struct queue_call *c, const struct queue_names *n, const char *tenant,
                      bool pause)
{
    call_init(c, QS_PAUSE, false);
    put(c, n->queue);
    put(c, n->base);
    put(c, tenant);
    put(c, pause ? "1" : "0");
    put_events(c, n);
    return built(c);
}

int queue_build_tenants(struct queue_call *c, const struct queue_names *n,
                        const char *const *fields, size_t nfields)
{
    call_init(c, QS_TENANTS, false);
    put(c, n->queue);
    put(c, n->base);
    for (size_t i = 0; i < nfields; i++)
        put(c, fields[i]);
    return built(c);
}

int queue_build_fair(struct queue_call *c, const struct queue_names *n)
{
    call_init(c, QS_FAIR, false);
    put(c, n->queue);
    put(c, n->base);
    return built(c);
}

int queue_build_schedule(struct queue_call *c, const struct queue_names *n, const char *action,
                         const char *id, long long now_ms, long long next_ms, const char *tenant,
                         const char *const *fields, size_t nfields)
{
    call_init(c, QS_SCHEDULE, false);
    c->durable = !strcmp(action, "add");
    put_key(c, n->schedule_prefix, "", id);
    put(c, n->schedules);
    put(c, n->schedules_due);
    put(c, action);
    put(c, id);
    put_int(c, now_ms);
    put_int(c, next_ms);
    put(c, tenant ? tenant : "");
    for (size_t i = 0; i < nfields; i++)
        put(c, fields[i]);
    return built(c);
}

int queue_build_schedules(struct queue_call *c, const struct queue_names *n, const char *id,
                          long long max, const char *tenant, const char *cursor)
{
    call_init(c, QS_SCHEDULES, false);
    put(c, n->schedules);
    put(c, n->base);
    put(c, id ? id : "");
    put_int(c, max);
    put(c, tenant ? tenant : "");
    put(c, cursor ? cursor : "");
    return built(c);
}

int queue_build_logs(struct queue_call *c, const struct queue_names *n, const char *id,
                     long long stdout_offset, long long stderr_offset, long long log_offset)
{
    call_init(c, QS_LOGS, false);
    put_key(c, n->job_prefix, "", id);
    put_key(c, n->job_prefix, id, ":stdout");
    put_key(c, n->job_prefix, id, ":stderr");
    put_key(c, n->job_prefix, id, ":log");
    put_int(c, stdout_offset);
    put_int(c, stderr_offset);
    put_int(c, log_offset);
    return built(c);
}

/* Appends a copy of len bytes at s. */
static void put_copy(struct queue_call *c, const char *s, size_t len)
{
    char *copy = s ? strndup(s, len) : NULL;
    put_own(c, copy);
    if (copy)
        c->len[c->argc - 1] = len;
}

/* The index a listing of status reads, and whether it is that status's
 * own (else index:all, filtered by status unless status is "all"). */
static const char *list_index(const char *status, bool *own)
{
    *own =
        strcmp(status, "all") != 0 && queue_status_has(queue_status_parse(status), QUEUE_INDEXED);
    return *own ? status : "all";
}

/* How many ids list.lua hands page.lua for a page of limit jobs: a few
 * spare for ids to drop, or, when the index is filtered (the all index by
 * a status, any by a tenant), a budget of reads after which a short page
 * comes with a cursor. */
static long long list_count(const char *status, const char *tenant, long long limit)
{
    bool own;
    list_index(status, &own);
    if ((own || !strcmp(status, "all")) && !*tenant)
        return limit + limit / 4 + 4;
    return 1000 + 10 * limit;
}

int queue_build_list(struct queue_call *c, const struct queue_names *n, const char *status,
                     const char *tenant, const char *cursor_score, const char *cursor_id,
                     long long limit)
{
    bool own;
    call_init(c, QS_LIST, false);
    put_key(c, n->index_prefix, "", list_index(status, &own));
    put(c, cursor_score);
    put(c, cursor_id);
    put_int(c, list_count(status, tenant, limit));
    return built(c);
}

int queue_build_page(struct queue_call *c, const struct queue_names *n, const char *status,
                     const char *tenant, long long limit, const redisReply *ids)
{
    bool own;
    call_init(c, QS_PAGE, false);
    if (ids->type != REDIS_REPLY_ARRAY || ids->elements < 1 ||
        ids->element[0]->type != REDIS_REPLY_INTEGER)
        return -EPROTO;
    put_key(c, n->index_prefix, "", list_index(status, &own));
    for (size_t i = 1; i + 1 < ids->elements; i += 2)
        put_key(c, n->job_prefix, ids->element[i]->str, "");
    c->nkeys = c->argc;
    put(c, strcmp(status, "all") ? status : "");
    put(c, own ? "1" : "0");
    put_int(c, limit);
    put_int(c, ids->element[0]->integer);
    put(c, tenant);
    for (size_t i = 1; i + 1 < ids->elements; i += 2) {
        put_copy(c, ids->element[i]->str, ids->element[i]->len);
        put_copy(c, ids->element[i + 1]->str, ids->element[i + 1]->len);
    }
    return built(c);
}

int queue_build_worker_ids(struct queue_call *c, const struct queue_names *n)
{
    command_init(c, "ZRANGE");
    put(c, n->workers);
    put(c, "0");
    put(c, "-1");
    return built(c);
}

int queue_build_job_read(struct queue_call *c, const struct queue_names *n, const char *id)
{
    command_init(c, "HGETALL");
    put_key(c, n->job_prefix, id, "");
    return built(c);
}

int queue_build_job_owner(struct queue_call *c, const struct queue_names *n, const char *id)
{
    command_init(c, "HMGET");
    put_key(c, n->job_prefix, id, "");
    put(c, "status");
    put(c, "tenant");
    return built(c);
}

/* Puts the key prefix + each id of a ZRANGE reply (the workers' ids);
 * -EPROTO, the call freed, for another reply. */
static int put_worker_keys(struct queue_call *c, const char *prefix, const redisReply *ids)
{
    if (ids->type != REDIS_REPLY_ARRAY) {
        queue_call_free(c);
        return -EPROTO;
    }
    for (size_t i = 0; i < ids->elements; i++)
        put_key(c, prefix, ids->element[i]->str, "");
    return 0;
}

int queue_build_workers(struct queue_call *c, const struct queue_names *n, const redisReply *ids)
{
    call_init(c, QS_WORKERS, false);
    put(c, n->workers);
    if (put_worker_keys(c, n->worker_prefix, ids) < 0)
        return refused(c);
    c->nkeys = c->argc;
    for (size_t i = 0; i < ids->elements; i++)
        put_copy(c, ids->element[i]->str, ids->element[i]->len);
    return built(c);
}

int queue_build_metrics(struct queue_call *c, const struct queue_names *n, const redisReply *ids)
{
    call_init(c, QS_METRICS, false);
    put(c, n->queue);
    put(c, n->workers);
    put(c, n->scheduled);
    put(c, n->dead);
    put(c, n->stats);
    if (put_worker_keys(c, n->processing_prefix, ids) < 0)
        return refused(c);
    c->nkeys = c->argc;
    put(c, n->base);
    return built(c);
}

/* The stats hash's field names: "submitted", "completed:<status>", and
 * per histogram "<name>:bucket:<1-based bound index>", "<name>:sum",
 * "<name>:count" (heartbeat.lua and count.lua write them). */
#define STAT_SUBMITTED "submitted"
#define STAT_COMPLETED "completed:"

static const char *stat_of(const redisReply *h, const char *field)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && !strcmp(h->element[i]->str, field))
            return h->element[i + 1]->str;
    return NULL;
}

static void parse_histogram(const redisReply *h, const char *name, struct jobq_histogram *out)
{
    char field[80];
    for (int i = 0; i < queue_nbuckets && i < (int)ARRAY_SIZE(out->buckets); i++) {
        snprintf(field, sizeof(field), "%s:bucket:%d", name, i + 1);
        const char *v = stat_of(h, field);
        out->buckets[i] = v ? atoll(v) : 0;
    }
    snprintf(field, sizeof(field), "%s:sum", name);
    const char *v = stat_of(h, field);
    out->sum = v ? strtod(v, NULL) : 0;
    snprintf(field, sizeof(field), "%s:count", name);
    v = stat_of(h, field);
    out->count = v ? atoll(v) : 0;
}

int queue_metrics_parse(const redisReply *r, struct queue_metrics *m)
{
    memset(m, 0, sizeof(*m));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 11 ||
        r->element[6]->type != REDIS_REPLY_ARRAY || r->element[9]->type != REDIS_REPLY_ARRAY ||
        r->element[10]->type != REDIS_REPLY_ARRAY || r->element[10]->elements % 3)
        return -EPROTO;
    m->tenants = r->element[10];
    m->waiting = r->element[7]->type == REDIS_REPLY_INTEGER ? r->element[7]->integer : 0;
    m->held = r->element[8]->type == REDIS_REPLY_INTEGER ? r->element[8]->integer : 0;
    m->paused_tenants = r->element[9];
    for (size_t i = 0; i < m->paused_tenants->elements; i++)
        if (m->paused_tenants->element[i]->str && !strcmp(m->paused_tenants->element[i]->str, "*"))
            m->paused = true;
    long long *counts[] = {&m->pending, &m->processing, &m->scheduled, &m->dead, &m->workers};
    for (size_t i = 0; i < ARRAY_SIZE(counts); i++)
        *counts[i] = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
    const redisReply *h = r->element[6];
    const char *v = stat_of(h, STAT_SUBMITTED);
    m->submitted = v ? atoll(v) : 0;
    for (int s = 0; s < QUEUE_STATUS__COUNT; s++) {
        char field[64];
        snprintf(field, sizeof(field), STAT_COMPLETED "%s", queue_status_name(s));
        v = stat_of(h, field);
        m->completed[s] = v ? atoll(v) : 0;
    }
    parse_histogram(h, "duration", &m->duration);
    parse_histogram(h, "queue_wait", &m->queue_wait);
    return 0;
}

int queue_build_count_submitted(struct queue_call *c, const struct queue_names *n,
                                long long submitted)
{
    call_init(c, QS_COUNT, false);
    put(c, n->stats);
    put_field_int(c, STAT_SUBMITTED, submitted);
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
    if (asprintf(&j->control_channel, "%s%s", n->control_prefix, worker) < 0)
        j->control_channel = NULL;
    j->set = *set;
    j->eval = eval;
    j->priv = priv;
    if (!j->worker || !j->processing_key || !j->worker_key || !j->control_channel) {
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
    free(j->control_channel);
    j->worker = j->processing_key = j->worker_key = j->control_channel = NULL;
}

void queue_sync_setname(struct queue_sync *q, const char *name)
{
    /* Kept, for the connections a redirect makes. */
    char *copy = strdup(name);
    if (copy) {
        free(q->name);
        q->name = copy;
    }
    redisReply *r = queue_sync_command(q, "CLIENT SETNAME %s", name);
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

int jobq_take(struct jobq *j, struct queue_sync *q, int block_ms, char **entry, size_t *len,
              char *err, size_t errlen)
{
    /* Atomic on the node that owns the slot: a BLMOVE blocked there when
     * the slot moves away is answered MOVED (nothing taken) and sent again
     * to the new owner. */
    if (block_ms < 10)
        block_ms = 10;
    redisReply *r = queue_sync_command(q, "BLMOVE %s %s RIGHT LEFT %d.%03d", j->names->queue,
                                       j->processing_key, block_ms / 1000, block_ms % 1000);
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

int jobq_build_start(const struct jobq *j, struct queue_call *c, const char *id, long long now_us)
{
    char *now;
    call_init(c, QS_START, true);
    c->durable = true;
    put_key(c, j->names->job_prefix, "", id);
    put(c, j->processing_key);
    put(c, j->names->queue);
    put(c, id);
    put(c, j->worker);
    /* ms with a fraction: start.lua keeps both the ms and the µs. */
    put_own(c, asprintf(&now, "%lld.%03lld", now_us / 1000, now_us % 1000) < 0 ? NULL : now);
    put_events(c, j->names);
    put(c, j->names->base);
    return built(c);
}

/* The integer at element i of an array reply, or 0. */
static long long int_at(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                         : 0;
}

int jobq_start(struct jobq *j, const char *id, long long now_us, struct jobq_start *out)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_start(j, &c, id, now_us));
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
        out->attempt = int_at(r, 1);
        out->failures = int_at(r, 3);
        out->created_ms = int_at(r, 4);
        snprintf(out->id, sizeof(out->id), "%s",
                 r->elements > 5 && r->element[5]->type == REDIS_REPLY_STRING ? r->element[5]->str
                                                                              : id);
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
    const struct queue_names *n = j->names;
    call_init(c, QS_COMPLETE, true);
    c->durable = true;
    put_key(c, n->job_prefix, "", id);
    put(c, j->processing_key);
    put_key(c, n->job_prefix, id, ":stdout");
    put_key(c, n->job_prefix, id, ":stderr");
    put_key(c, n->job_prefix, id, ":log");
    put(c, n->scheduled);
    put(c, n->dead);
    put_key(c, n->index_prefix, "", queue_status_name(o->status));
    put_key(c, n->index_prefix, "", queue_status_name(QUEUE_STATUS_SCHEDULED));
    put_key(c, n->index_prefix, "", queue_status_name(QUEUE_STATUS_DEAD));
    put(c, n->queue);
    put(c, id);
    put(c, j->worker);
    put_int(c, o->attempt);
    put_int(c, now_ms);
    put_events(c, n);
    put_int(c, j->set.result_ttl_s);
    put_int(c, j->set.failed_ttl_s);
    put_int(c, o->max_attempts > 0 ? o->max_attempts : 1);
    put_int(c, o->next_run_ms);
    put(c, queue_status_name(o->status));
    put(c, o->live ? "1" : "0");
    put(c, n->base);
    put_field_n(c, "result", o->result, o->result_len);
    put_field(c, "error", o->error);
    put_field_n(c, "stdout", o->out ? o->out : "", o->out ? o->out_len : 0);
    put_field_n(c, "stderr", o->err ? o->err : "", o->err ? o->err_len : 0);
    put_field(c, "dead_reason", o->dead_reason);
    put_field(c, "usage", o->usage);
    return built(c);
}

void jobq_observe(struct jobq_histogram *h, double seconds)
{
    for (int i = 0; i < queue_nbuckets && i < (int)ARRAY_SIZE(h->buckets); i++) {
        if (seconds <= queue_buckets[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->sum += seconds;
    h->count++;
}

int jobq_complete(struct jobq *j, const char *id, const struct job_outcome *o, long long now_ms,
                  double duration_s)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_complete(j, &c, id, o, now_ms));
    if (!r)
        return -EIO;
    int rc = r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2 ? (int)r->integer
                                                                                  : -EPROTO;
    freeReplyObject(r);
    if (rc == 1) {
        /* complete.lua may have made it scheduled or dead; the counters
         * count what the run ended as, like the worker's own metrics. */
        j->stats.completed[o->status]++;
        jobq_observe(&j->stats.duration, duration_s);
    }
    return rc;
}

/* Puts a histogram's nonzero counts as stats pairs; returns their number. */
static int put_histogram(struct queue_call *c, const char *name, const struct jobq_histogram *h)
{
    int n = 0;
    char *s;
    for (int i = 0; i < queue_nbuckets && i < (int)ARRAY_SIZE(h->buckets); i++) {
        if (!h->buckets[i])
            continue;
        put_own(c, asprintf(&s, "%s:bucket:%d", name, i + 1) < 0 ? NULL : s);
        put_int(c, h->buckets[i]);
        n++;
    }
    if (h->count) {
        put_own(c, asprintf(&s, "%s:sum", name) < 0 ? NULL : s);
        put_own(c, asprintf(&s, "%.6f", h->sum) < 0 ? NULL : s);
        put_own(c, asprintf(&s, "%s:count", name) < 0 ? NULL : s);
        put_int(c, h->count);
        n += 2;
    }
    return n;
}

bool jobq_stats_pending(const struct jobq *j)
{
    return j->stats.duration.count || j->stats.queue_wait.count;
}

int jobq_build_heartbeat(const struct jobq *j, struct queue_call *c,
                         const struct jobq_worker_info *info, long long now_ms, long long ttl_ms,
                         bool with_stats)
{
    call_init(c, QS_HEARTBEAT, false);
    put(c, j->names->workers);
    put(c, j->worker_key);
    put(c, j->names->stats);
    put(c, j->worker);
    put_int(c, now_ms);
    put_int(c, ttl_ms);
    int at = c->argc, n = 0;
    put(c, "0"); /* nstats, set below */
    bool placed = !c->nomem;
    for (int s = 0; with_stats && s < QUEUE_STATUS__COUNT; s++) {
        if (!j->stats.completed[s])
            continue;
        put_key(c, STAT_COMPLETED, queue_status_name(s), "");
        put_int(c, j->stats.completed[s]);
        n++;
    }
    if (with_stats) {
        n += put_histogram(c, "duration", &j->stats.duration);
        n += put_histogram(c, "queue_wait", &j->stats.queue_wait);
    }
    if (placed) {
        char *num;
        c->argv[at] = c->owned[at] = asprintf(&num, "%d", n) < 0 ? NULL : num;
        c->len[at] = c->argv[at] ? strlen(c->argv[at]) : 0;
        if (!c->argv[at])
            c->nomem = true;
    }
    put_field(c, "host", info->host);
    put_field_int(c, "pid", info->pid);
    put_field(c, "version", info->version);
    put_field(c, "state", info->state);
    put_field(c, "current_job", info->current_job);
    put_field_int(c, "started_ms", info->started_ms);
    put_field_int(c, "jobs_done", info->jobs_done);
    put_field_int(c, "jobs_failed", info->jobs_failed);
    put_field(c, "sandbox", info->sandbox ? info->sandbox : "{}");
    return built(c);
}

int jobq_heartbeat(struct jobq *j, const struct jobq_worker_info *info, long long now_ms,
                   long long ttl_ms, bool with_stats)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_heartbeat(j, &c, info, now_ms, ttl_ms, with_stats));
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    if (rc == 0 && with_stats)
        memset(&j->stats, 0, sizeof(j->stats));
    return rc;
}

/* An integer reply as a count; -EIO for none or another type. */
static long long count(redisReply *r)
{
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -EIO;
    if (r)
        freeReplyObject(r);
    return n;
}

/* A plain command on q (the reads and the lock no script needs); the
 * reply, or NULL when the connection was lost. */
static redisReply *command(struct queue_sync *q, int argc, const char **argv)
{
    return queue_sync_command_argv(q, argc, argv, NULL);
}

/* The strings of an array reply of strings, as a NULL-ended array that
 * points into r; NULL when out of memory or another reply. */
static const char **strings_of(const redisReply *r, size_t *n)
{
    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    const char **v = calloc(r->elements + 1, sizeof(*v));
    for (size_t i = 0; v && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[(*n)++] = r->element[i]->str;
    return v;
}

int jobq_build_forget(const struct jobq *j, struct queue_call *c, const char *worker)
{
    call_init(c, QS_FORGET, true);
    put(c, j->names->workers);
    put_key(c, j->names->worker_prefix, worker, "");
    put_key(c, j->names->processing_prefix, worker, "");
    put(c, worker);
    return built(c);
}

/* Gives back every job in worker's processing list but keep (lost.lua):
 * the number requeued (and dead counted in *dead), or -EIO. */
static long long give_back(struct jobq *j, struct queue_sync *q, const char *worker,
                           const char *keep, bool counts, long long now_ms, long long *dead)
{
    _cleanup_free_ char *plist = queue_processing_key(j->names, worker);
    if (!plist)
        return -ENOMEM;
    const char *lrange[] = {"LRANGE", plist, "0", "-1"};
    redisReply *ids = command(q, 4, lrange);
    if (!ids)
        return -EIO;
    size_t n;
    _cleanup_free_ const char **v = strings_of(ids, &n);
    long long moved = 0;
    for (size_t i = 0; i < n; i++) {
        /* A ticket being started (QUEUE_TICKET kept) is the list's first
         * entry, BLMOVE's: itself, or the job start.lua put in its place,
         * which a start asked again (its reply lost) returns. */
        if (keep && (!strcmp(v[i], keep) || (i == 0 && !strcmp(keep, QUEUE_TICKET))))
            continue;
        struct queue_call c;
        redisReply *r = run(j, &c, jobq_build_lost(j, &c, worker, v[i], now_ms, counts));
        if (r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "requeued"))
            moved++;
        else if (r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "dead") && dead)
            (*dead)++;
        if (r)
            freeReplyObject(r);
    }
    freeReplyObject(ids);
    return moved;
}

/* give_back, then forgets the worker. */
static long long give_back_all(struct jobq *j, struct queue_sync *q, const char *worker,
                               bool counts, long long now_ms, long long *dead)
{
    long long moved = give_back(j, q, worker, NULL, counts, now_ms, dead);
    if (moved < 0)
        return moved;
    struct queue_call c;
    if (count(run(j, &c, jobq_build_forget(j, &c, worker))) < 0)
        return -EIO;
    return moved;
}

long long jobq_reconcile(struct jobq *j, struct queue_sync *q, const char *current,
                         long long now_ms)
{
    /* Not counted against the jobs: a give-back never makes one dead. */
    return give_back(j, q, j->worker, current, false, now_ms, NULL);
}

long long jobq_deregister(struct jobq *j, struct queue_sync *q)
{
    return give_back_all(j, q, j->worker, false, 0, NULL);
}

/* The least score of zset key (ZRANGE 0 0 WITHSCORES on q) into *ms (0:
 * the zset is empty): 0, or -EIO. */
static int first_score(struct queue_sync *q, const char *key, long long *ms)
{
    const char *first[] = {"ZRANGE", key, "0", "0", "WITHSCORES"};
    redisReply *r = command(q, 5, first);
    if (!r)
        return -EIO;
    *ms = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->str
              ? strtoll(r->element[1]->str, NULL, 10)
              : 0;
    freeReplyObject(r);
    return 0;
}

int jobq_build_promote(const struct jobq *j, struct queue_call *c, const char *id, long long now_ms)
{
    call_init(c, QS_PROMOTE, false);
    put(c, j->names->scheduled);
    put(c, j->names->queue);
    put_key(c, j->names->job_prefix, "", id);
    put(c, id);
    put_int(c, now_ms);
    put_events(c, j->names);
    put(c, j->names->base);
    return built(c);
}

long long jobq_promote(struct jobq *j, struct queue_sync *q, long long now_ms,
                       long long *next_due_ms)
{
    char now[32];
    snprintf(now, sizeof(now), "%lld", now_ms);
    const char *due[] = {"ZRANGEBYSCORE", j->names->scheduled, "-inf", now, "LIMIT", "0", "200"};
    redisReply *ids = command(q, 7, due);
    if (!ids)
        return -EIO;
    size_t n;
    _cleanup_free_ const char **v = strings_of(ids, &n);
    long long promoted = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_call c;
        long long r = count(run(j, &c, jobq_build_promote(j, &c, v[i], now_ms)));
        if (r > 0)
            promoted += r;
    }
    freeReplyObject(ids);
    return first_score(q, j->names->scheduled, next_due_ms) < 0 ? -EIO : promoted;
}

int jobq_build_tick(const struct jobq *j, struct queue_call *c, const char *id, const char *due_ms,
                    long long next_ms, const char *job, long long now_ms)
{
    const struct queue_names *n = j->names;
    call_init(c, QS_TICK, false);
    put_key(c, n->schedule_prefix, "", id);
    put(c, n->schedules_due);
    put_key(c, n->job_prefix, "", job);
    put(c, n->queue);
    put_key(c, n->index_prefix, "", "all");
    put(c, id);
    put(c, due_ms);
    put_int(c, next_ms);
    put(c, job);
    put_int(c, now_ms);
    put_events(c, n);
    put(c, n->base);
    return built(c);
}

/* The schedule's timing, read from its hash (HMGET on q): 0, -ENOENT when
 * it has none (deleted meanwhile), -EIO. */
static int read_timing(struct jobq *j, struct queue_sync *q, const char *id, struct sched_timing *t)
{
    _cleanup_free_ char *key = NULL;
    if (asprintf(&key, "%s%s", j->names->schedule_prefix, id) < 0)
        return -ENOMEM;
    const char *hmget[] = {"HMGET", key, "cron", "tz", "every_ms"};
    redisReply *r = command(q, 5, hmget);
    if (!r)
        return -EIO;
    int rc = -ENOENT;
    memset(t, 0, sizeof(*t));
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const char *cron = r->element[0]->str, *tz = r->element[1]->str;
        const char *every = r->element[2]->str;
        snprintf(t->cron, sizeof(t->cron), "%s", cron ? cron : "");
        snprintf(t->tz, sizeof(t->tz), "%s", tz ? tz : "UTC");
        t->every_ms = every ? strtoll(every, NULL, 10) : 0;
        rc = cron || every ? 0 : -ENOENT;
    }
    freeReplyObject(r);
    return rc;
}

/* Ticks schedule id, due at due (the score read, as Redis gave it): 1 when
 * it made a job, 0 when not, -EIO. */
static int tick_one(struct jobq *j, struct queue_sync *q, const char *id, const char *due,
                    long long now_ms)
{
    struct sched_timing t;
    int r = read_timing(j, q, id, &t);
    if (r == -EIO)
        return r;
    long long next = 0, due_ms = strtoll(due, NULL, 10);
    char err[512];
    if (r == 0 && sched_after(&t, due_ms, now_ms, &next, err, sizeof(err)) < 0) {
        log_warn("a schedule has no next fire; it stops after this one", "{s:s, s:s}", "schedule",
                 id, "error", err);
        next = 0;
    }
    char job[80];
    util_new_id(job);
    struct queue_call c;
    /* NULL: the script failed (logged), or a stop came while Redis was
     * away; either way, the next tick tries again. */
    redisReply *rep = run(j, &c, jobq_build_tick(j, &c, id, due, next, job, now_ms));
    if (!rep)
        return 0;
    int made = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
               rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer == 1;
    freeReplyObject(rep);
    return made;
}

long long jobq_tick(struct jobq *j, struct queue_sync *q, long long now_ms, long long *next_due_ms)
{
    char now[32];
    snprintf(now, sizeof(now), "%lld", now_ms);
    const char *due[] = {
        "ZRANGEBYSCORE", j->names->schedules_due, "-inf", now, "WITHSCORES", "LIMIT", "0", "100"};
    redisReply *r = command(q, 8, due);
    if (!r)
        return -EIO;
    long long made = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        if (!r->element[i]->str || !r->element[i + 1]->str)
            continue;
        int t = tick_one(j, q, r->element[i]->str, r->element[i + 1]->str, now_ms);
        if (t < 0) {
            freeReplyObject(r);
            return t;
        }
        made += t;
    }
    freeReplyObject(r);
    return first_score(q, j->names->schedules_due, next_due_ms) < 0 ? -EIO : made;
}

int jobq_build_reap(const struct jobq *j, struct queue_call *c, long long now_ms,
                    long long silence_ms)
{
    call_init(c, QS_REAP, false);
    put(c, j->names->workers);
    put_int(c, now_ms);
    put_int(c, silence_ms);
    put(c, j->worker);
    return built(c);
}

/* trim.lua over index:all and every indexed status's index. */
static int build_trim(const struct jobq *j, struct queue_call *c)
{
    call_init(c, QS_TRIM, false);
    c->nkeys = 0;
    put_key(c, j->names->index_prefix, "", "all");
    for (int s = 0; s < QUEUE_STATUS__COUNT; s++)
        if (queue_status_has(s, QUEUE_INDEXED))
            put_key(c, j->names->index_prefix, "", queue_status_name(s));
    c->nkeys = c->argc;
    put_int(c, j->set.index_size);
    return built(c);
}

int jobq_reap(struct jobq *j, struct queue_sync *q, long long now_ms, long long silence_ms,
              long long lock_ms, struct jobq_reaped *out)
{
    char px[32];
    snprintf(px, sizeof(px), "%lld", lock_ms);
    const char *set[] = {"SET", j->names->reaper_lock, j->worker, "NX", "PX", px};
    redisReply *lock = command(q, 6, set);
    if (!lock)
        return -EIO;
    bool mine = lock->type == REDIS_REPLY_STATUS;
    freeReplyObject(lock);
    if (!mine)
        return 0;
    memset(out, 0, sizeof(*out));
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_reap(j, &c, now_ms, silence_ms));
    if (!r)
        return 0;
    size_t n;
    _cleanup_free_ const char **dead = strings_of(r, &n);
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        long long moved = give_back_all(j, q, dead[i], true, now_ms, &out->dead);
        if (moved == -EIO) {
            rc = -EIO;
            break;
        }
        out->requeued += moved > 0 ? moved : 0;
        out->workers++;
    }
    freeReplyObject(r);
    if (rc == 1)
        count(run(j, &c, build_trim(j, &c)));
    return rc;
}

int jobq_build_lost(const struct jobq *j, struct queue_call *c, const char *worker, const char *id,
                    long long now_ms, bool counts)
{
    const struct queue_names *n = j->names;
    call_init(c, QS_LOST, true);
    if (worker)
        put_key(c, n->processing_prefix, worker, "");
    else
        put(c, j->processing_key);
    put(c, n->queue);
    put_key(c, n->job_prefix, "", id);
    put(c, n->dead);
    put_key(c, n->index_prefix, "", queue_status_name(QUEUE_STATUS_DEAD));
    put(c, id);
    put(c, worker ? worker : j->worker);
    put_int(c, now_ms);
    put_events(c, n);
    put_int(c, j->set.max_deliveries);
    put_int(c, j->set.failed_ttl_s);
    put(c, counts ? "1" : "0");
    put(c, n->base);
    return built(c);
}

int jobq_lost(struct jobq *j, const char *id, long long now_ms, char *what, size_t whatlen)
{
    struct queue_call c;
    redisReply *r = run(j, &c, jobq_build_lost(j, &c, NULL, id, now_ms, true));
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

int jobq_output(struct jobq *j, struct queue_sync *q, const char *id, const struct jobq_output *o)
{
    _cleanup_free_ char *job_key = queue_job_key(j->names, id);
    if (!job_key)
        return -ENOMEM;
    /* One pipeline, one round trip: progress (the job hash's field, shown
     * by GET /v1/jobs/{id}), the structured log lines (kept beside the hash
     * like its output), the output chunks, each with its EXPIRE, then the
     * event that says so. */
    int n = 0;
    if (o->progress) {
        queue_sync_appendf(q, "HSET %s progress %s", job_key, o->progress);
        n++;
    }
    for (size_t i = 0; i < o->nlogs; i++) {
        queue_sync_appendf(q, "RPUSH %s:log %s", job_key, o->logs[i] ? o->logs[i] : "{}");
        n++;
    }
    if (o->nlogs) {
        queue_sync_appendf(q, "EXPIRE %s:log %lld", job_key, j->set.live_ttl_s);
        n++;
    }
    static const char *const streams[] = {"stdout", "stderr"};
    size_t bytes[ARRAY_SIZE(streams)] = {0};
    for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
        if (!o->stream[i] || !o->stream_len[i])
            continue;
        queue_sync_appendf(q, "APPEND %s:%s %b", job_key, streams[i], o->stream[i],
                           o->stream_len[i]);
        queue_sync_appendf(q, "EXPIRE %s:%s %lld", job_key, streams[i], j->set.live_ttl_s);
        bytes[i] = o->stream_len[i];
        n += 2;
    }
    if (!n)
        return 0;
    /* Sent after the writes on the same connection (and so, on a cluster,
     * to the same node, the channel sharing the queue's slot): a client
     * that reads the logs when it hears the event finds what it announces.
     * The sizes are this batch's, not offsets, which would cost a round
     * trip before publishing; the id was checked when it was taken
     * (util_valid_id), so it needs no escaping. */
    char event[256];
    int len = snprintf(event, sizeof(event),
                       "{\"id\":\"%s\",\"output\":{\"stdout\":%zu,\"stderr\":%zu,"
                       "\"log\":%zu,\"progress\":%s}}",
                       id, bytes[0], bytes[1], o->nlogs, o->progress ? "true" : "false");
    if (len > 0 && (size_t)len < sizeof(event)) {
        queue_sync_appendf(q, "%s %s %b", j->names->sharded ? "SPUBLISH" : "PUBLISH",
                           j->names->events, event, (size_t)len);
        n++;
    }
    /* Live output is best effort; the final record has it all. */
    if (queue_sync_drain(q, n) < 0)
        return -EIO;
    return 0;
}

int jobq_cancel_requested(struct jobq *j, struct queue_sync *q, const char *id)
{
    _cleanup_free_ char *job_key = queue_job_key(j->names, id);
    if (!job_key)
        return -ENOMEM;
    const char *hexists[] = {"HEXISTS", job_key, "cancel_requested_ms"};
    redisReply *r = command(q, 3, hexists);
    if (!r)
        return -EIO;
    int yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* --- The control channel ---------------------------------------------------- */

struct jobq_control {
    struct wire *c;
};

void jobq_control_free(struct jobq_control *s)
{
    if (!s)
        return;
    wire_free(s->c);
    free(s);
}

int jobq_control_open(struct jobq *j, const struct queue_url *url, int timeout_ms,
                      struct jobq_control **ret, char *err, size_t errlen)
{
    struct jobq_control *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    /* On a cluster, SSUBSCRIBE on the node owning the queue's slot, where
     * cancel.lua SPUBLISHes (conn.h). */
    int r = queue_sync_subscribe(url, "stratq-worker-control", j->control_channel,
                                 j->names->sharded, timeout_ms, &s->c, err, errlen);
    if (r < 0) {
        free(s);
        return r;
    }
    *ret = s;
    return 0;
}

int jobq_control_fd(const struct jobq_control *s)
{
    return wire_fd(s->c);
}

int jobq_control_cancel_for(struct jobq_control *s, const char *id)
{
    if (wire_read_available(s->c) < 0)
        return -EIO;
    int found = 0;
    for (;;) {
        redisReply *r = NULL;
        if (wire_next_reply(s->c, &r) < 0)
            return -EIO;
        if (!r)
            break;
        /* {"message" or "smessage", channel, {"id": ..., "status":
         * "cancelling"}}; an sunsubscribe when the slot left the node. */
        const redisReply *payload;
        enum queue_sub_msg kind = queue_sub_parse(r, &payload);
        if (kind == QUEUE_SUB_MESSAGE) {
            json_t *ev = json_loadb(payload->str, payload->len, 0, NULL);
            const char *evid = json_string_value(json_object_get(ev, "id"));
            const char *st = json_string_value(json_object_get(ev, "status"));
            if (evid && st && !strcmp(evid, id) && !strcmp(st, QUEUE_CANCELLING))
                found = 1;
            json_decref(ev);
        }
        freeReplyObject(r);
        /* Subscribing again follows the slot; a request published
         * meanwhile is in the job's hash (cancel_requested_ms). */
        if (kind == QUEUE_SUB_UNSUBSCRIBED)
            return -EIO;
    }
    return found;
}

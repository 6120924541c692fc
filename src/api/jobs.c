/* The job routes of the API. Every Redis transition is a Lua script from
 * src/queue/lua/; reads are plain commands. */
#define _GNU_SOURCE
#include "jobs.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/advice.h"
#include "../common/jsonv.h"
#include "../common/util.h"
#include "../queue/jobq.h"
#include "../queue/status.h"
#include "events.h"
#include "http.h"
#include "metrics.h"
#include "server.h"

/* Longest ?wait= a client may ask for. */
#define MAX_WAIT_S 60
/* Specs in one batch request. */
#define MAX_BATCH 1000

struct jobs {
    struct server *srv;
    struct events *events;
    struct metrics *metrics;
    struct jobs_settings set;
};

/* A job route's request: the core's, then what the job routes keep. */
struct job_req {
    struct pending p; /* first: the core allocates and frees the whole */
    struct jobs *jobs;
    enum route_id route;
    char id[ROUTER_ID_MAX + 1];     /* the job's id; a list's status */
    char tenant[ROUTER_ID_MAX + 1]; /* a list's tenant, "" for every one */
    char own[ROUTER_ID_MAX + 1];    /* the tenant the token names: its jobs only ("": any) */
    void (*send)(struct job_req *); /* the call to make once the job is found the token's */
    bool created;                   /* submit: the job is new (201) rather than existing (200) */
    int wait_s;
    long long off_out, off_err, off_log; /* logs offsets */
    struct event *wait_timer;
    struct events_waiter waiter; /* ?wait=: in the events' table */
    /* batch */
    json_t *items;
    int outstanding;
};

static struct job_req *job_req_of(struct pending *p)
{
    return (struct job_req *)p;
}

static void req_answered(struct pending *p)
{
    struct job_req *jr = job_req_of(p);
    if (jr->wait_timer)
        evtimer_del(jr->wait_timer);
    events_remove_waiter(jr->jobs->events, &jr->waiter);
}

static void req_release(struct pending *p)
{
    struct job_req *jr = job_req_of(p);
    events_remove_waiter(jr->jobs->events, &jr->waiter);
    if (jr->wait_timer)
        event_free(jr->wait_timer);
    json_decref(jr->items);
}

static void on_wake(struct events_waiter *w, bool final);

/* A request of a job route for job (or list) id; NULL when out of memory
 * (answered 500). */
static struct job_req *job_req_new(struct jobs *j, struct evhttp_request *req,
                                   const struct route_match *m, enum route_id route, const char *id)
{
    static const struct pending_ops ops = {req_answered, req_release};
    struct pending *p = pending_new(j->srv, req, sizeof(struct job_req), &ops);
    if (!p)
        return NULL;
    struct job_req *jr = job_req_of(p);
    jr->jobs = j;
    jr->route = route;
    snprintf(jr->id, sizeof(jr->id), "%s", id ? id : "");
    snprintf(jr->own, sizeof(jr->own), "%.*s", ROUTER_ID_MAX, m->tenant);
    jr->waiter.id = jr->id;
    jr->waiter.wake = on_wake;
    return jr;
}

/* --- Job records ----------------------------------------------------------- */

/* Hash fields holding JSON text. They are sent as stored, not parsed: the
 * result (up to STRATQ_MAX_RESULT, 16 MiB) and a failed job's error come
 * from the job, the spec from the client (up to STRATQ_MAX_BODY), and a
 * parse on every GET would cost a json_t per value they hold: one GET of a
 * 16 MiB "[{},{},...]" result took the API to 1.3 GB. They are validated
 * instead (jsonv), which allocates nothing, so the response stays JSON
 * whoever wrote the hash (another backend may, docs/protocol.md). */
static bool json_field(const char *f)
{
    return !strcmp(f, "spec") || !strcmp(f, "error") || !strcmp(f, "usage") ||
           !strcmp(f, "progress");
}

static bool int_field(const char *f)
{
    return !strcmp(f, "attempts") || !strcmp(f, "created_ms") || !strcmp(f, "started_ms") ||
           !strcmp(f, "started_us") || !strcmp(f, "finished_ms") ||
           !strcmp(f, "cancel_requested_ms") || !strcmp(f, "retried_ms") ||
           !strcmp(f, "next_run_ms") || !strcmp(f, "failures") || !strcmp(f, "lost") ||
           !strcmp(f, "priority") || !strcmp(f, "ready_ms") || !strcmp(f, "schedule_ms");
}

/* The fair-share bookkeeping a job's hash carries (src/queue/lua/lib.lua),
 * not part of its record. */
static bool internal_field(const char *f)
{
    return !strcmp(f, "slot");
}

static const redisReply *hash_get(const redisReply *r, const char *field)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, field))
            return r->element[i + 1];
    return NULL;
}

/* Appends v as compact JSON ("null" when it cannot be written). */
static void add_json(struct evbuffer *buf, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s)
        evbuffer_add(buf, s, strlen(s));
    else
        evbuffer_add(buf, "null", 4);
    free(s);
}

/* Appends stored JSON text as it is. Text that is not JSON goes as a JSON
 * string when as_string (null when it is not UTF-8 either), else as null. */
static void add_json_text(struct evbuffer *buf, const char *text, size_t len, bool as_string)
{
    if (jsonv_check(text, len, NULL, NULL) == JSONV_OK) {
        evbuffer_add(buf, text, len);
        return;
    }
    json_t *s = as_string ? json_stringn(text, len) : NULL;
    add_json(buf, s);
    json_decref(s);
}

/* The JSON of a job record from its HGETALL reply, in the order of
 * order[], then the other fields as Redis gives them, then "result". The
 * JSON fields and the result are appended as stored (see json_field): also,
 * re-encoding through jansson would print floats with 17 digits. With
 * only_result, just id, status, error and result. */
static struct evbuffer *record_buffer(const char *id, const redisReply *r, bool only_result)
{
    static const char *const order[] = {"status",      "attempts", "created_ms", "started_ms",
                                        "finished_ms", "worker",   "spec",       "error",
                                        "stdout",      "stderr",   "usage"};
    json_t *rec = json_pack("{s:s}", "id", id);
    struct evbuffer *buf = rec ? evbuffer_new() : NULL;
    if (!buf) {
        json_decref(rec);
        return NULL;
    }
    /* The fields in their order, each with its value or (JSON text, added
     * below) a null in its place. */
    if (only_result) {
        const redisReply *st = hash_get(r, "status");
        json_object_set_new(rec, "status", st ? json_stringn(st->str, st->len) : json_null());
        json_object_set_new(rec, "error", json_null());
    } else {
        for (size_t k = 0; k < ARRAY_SIZE(order); k++)
            json_object_set_new(rec, order[k], json_null());
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *f = r->element[i]->str;
            const redisReply *v = r->element[i + 1];
            json_t *val;
            if (!strcmp(f, "result") || internal_field(f))
                continue;
            if (json_field(f))
                val = json_null();
            else if (int_field(f))
                val = json_integer(strtoll(v->str, NULL, 10));
            else
                val = json_stringn(v->str, v->len);
            json_object_set_new(rec, f, val ? val : json_null());
        }
    }
    const char *key;
    json_t *val;
    bool first = true;
    evbuffer_add(buf, "{", 1);
    json_object_foreach(rec, key, val)
    {
        const redisReply *text = json_field(key) ? hash_get(r, key) : NULL;
        json_t *k = json_string(key);
        if (!first)
            evbuffer_add(buf, ",", 1);
        first = false;
        add_json(buf, k);
        json_decref(k);
        evbuffer_add(buf, ":", 1);
        if (text)
            add_json_text(buf, text->str, text->len, true);
        else
            add_json(buf, val);
    }
    json_decref(rec);
    /* A result that is not JSON (written straight into Redis by another
     * backend) is null. */
    const redisReply *result = hash_get(r, "result");
    evbuffer_add(buf, ",\"result\":", 10);
    if (result)
        add_json_text(buf, result->str, result->len, false);
    else
        evbuffer_add(buf, "null", 4);
    evbuffer_add(buf, "}\n", 2);
    return buf;
}

/* --- Whose job it is ------------------------------------------------------ */

/* A token that names a tenant reaches that tenant's jobs only: to it,
 * another tenant's job (or one with no tenant) does not exist (404), so
 * that a researcher's token can neither read nor cancel a colleague's
 * strategy, params or results. A token that names none (an operator's)
 * reaches every job. tenant: the job's `tenant` field, NULL when none. */
static bool owned(const struct job_req *jr, const redisReply *tenant)
{
    return !jr->own[0] ||
           (tenant && tenant->type == REDIS_REPLY_STRING && !strcmp(tenant->str, jr->own));
}

static void on_owner(struct pending *p, redisReply *r, void *ctx)
{
    struct job_req *jr = job_req_of(p);
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING || !owned(jr, r->element[1])) {
        pending_error(p, 404, "no job with id '%s'", jr->id);
        return;
    }
    jr->send(jr);
}

/* Makes jr's call (send) once the job is known to be the token's tenant's
 * (at once for a token that names no tenant). */
static void send_owned(struct job_req *jr, void (*send)(struct job_req *))
{
    jr->send = send;
    if (!jr->own[0]) {
        send(jr);
        return;
    }
    struct queue_call c;
    pending_call(&jr->p, on_owner, NULL, &c,
                 queue_build_job_owner(&c, server_names(jr->jobs->srv), jr->id));
}

/* --- Reading a job, now or when it finishes ----------------------------- */

static void reread(struct job_req *jr, bool final);

/* The end of ?wait=, or the job's terminal event (final), or the
 * subscription made again: the job is read again. */
static void reread_done(struct job_req *jr, bool final)
{
    reread(jr, final);
    pending_done(&jr->p);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reread_done(arg, true);
}

static void on_wake(struct events_waiter *w, bool final)
{
    reread_done((struct job_req *)((char *)w - offsetof(struct job_req, waiter)), final);
}

/* The job is not finished: wait for its terminal event, or the end of ?wait=. */
static void wait_for_job(struct job_req *jr)
{
    events_add_waiter(jr->jobs->events, &jr->waiter);
    if (!jr->wait_timer) {
        jr->wait_timer = evtimer_new(server_base(jr->jobs->srv), on_wait_timeout, jr);
        struct timeval tv = {jr->wait_s, 0};
        if (jr->wait_timer)
            evtimer_add(jr->wait_timer, &tv);
    }
}

/* The ctx of a read that answers whatever the job's status. */
static const char FINAL_READ[] = "final";

/* A read of the job: answered when it has finished, or when the read was
 * final (ctx: FINAL_READ); otherwise it waits. Each read carries its own
 * flag: a read already sent when the terminal event comes (and a final
 * read is sent) must not answer with the status it saw, from before. */
static void on_job_read(struct pending *p, redisReply *r, void *ctx)
{
    struct job_req *jr = job_req_of(p);
    bool final = ctx == FINAL_READ;
    if (r->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (r->elements == 0 || !owned(jr, hash_get(r, "tenant"))) {
        pending_error(p, 404, "no job with id '%s'", jr->id);
        return;
    }
    const redisReply *st = hash_get(r, "status");
    bool terminal = st && queue_status_is_terminal(st->str);
    if (!terminal && !final) {
        wait_for_job(jr);
        return;
    }
    if (jr->route == ROUTE_JOB_RESULT && !terminal) {
        pending_reply(p, 202, json_pack("{s:s, s:s}", "id", jr->id, "status", st ? st->str : ""));
        return;
    }
    struct evbuffer *buf = record_buffer(jr->id, r, jr->route == ROUTE_JOB_RESULT);
    if (!buf) {
        pending_error(p, 500, "out of memory");
        return;
    }
    int code = jr->route == ROUTE_JOBS_SUBMIT && jr->created ? 201 : 200;
    pending_reply_raw(p, code, buf, "application/json");
    evbuffer_free(buf);
}

/* Reads the job of jr again (final: answer whatever its status). */
static void reread(struct job_req *jr, bool final)
{
    if (jr->p.answered)
        return;
    struct queue_call c;
    pending_call(&jr->p, on_job_read, final ? (void *)FINAL_READ : NULL, &c,
                 queue_build_job_read(&c, server_names(jr->jobs->srv), jr->id));
}

/* GET /v1/jobs/{id}, GET /v1/jobs/{id}/result */
static void route_get(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    long long wait;
    if (http_query_int(req, "wait", 0, 0, MAX_WAIT_S, &wait) < 0)
        return;
    struct job_req *jr = job_req_new(ctx, req, m, m->route, m->id);
    if (!jr)
        return;
    jr->wait_s = (int)wait;
    if (wait > 0) /* before the read, so no completion is missed */
        events_add_waiter(jr->jobs->events, &jr->waiter);
    reread(jr, wait == 0);
    pending_done(&jr->p);
}

/* --- Submitting --------------------------------------------------------- */

/* Takes the client's id out of the body ("id" field or Idempotency-Key
 * header) into id (empty when none). Returns false with a message in err. */
static bool take_client_id(json_t *spec, const char *header, char *id, size_t idlen, char *err,
                           size_t errlen)
{
    json_t *v = json_object_get(spec, "id");
    id[0] = '\0';
    if (v) {
        if (!json_is_string(v) || !util_valid_id(json_string_value(v))) {
            snprintf(err, errlen,
                     "field 'id' must be a string of 1 to 64 characters of "
                     "[A-Za-z0-9_-]");
            return false;
        }
        snprintf(id, idlen, "%s", json_string_value(v));
        json_object_del(spec, "id");
    }
    if (header) {
        if (!util_valid_id(header)) {
            snprintf(err, errlen,
                     "the Idempotency-Key header must be 1 to 64 characters of "
                     "[A-Za-z0-9_-]");
            return false;
        }
        if (id[0] && strcmp(id, header) != 0) {
            snprintf(err, errlen, "field 'id' and the Idempotency-Key header differ");
            return false;
        }
        snprintf(id, idlen, "%s", header);
    }
    if (!strcmp(id, "batch")) {
        snprintf(err, errlen, "'batch' is reserved and cannot be a job id");
        return false;
    }
    return true;
}

/* Runs the enqueue script for one spec; h gets its reply. */
static void enqueue(struct job_req *jr, pending_handler *h, void *ctx, const char *id,
                    bool client_id, const char *spec_text, const struct job_placement *pl)
{
    struct queue_call c;
    long long now = util_now_ms();
    const struct queue_submit how = {pl->tenant, pl->priority,
                                     pl->delay_ms > 0 ? now + pl->delay_ms : pl->run_at_ms};
    pending_call(
        &jr->p, h, ctx, &c,
        queue_build_enqueue(&c, server_names(jr->jobs->srv), id, spec_text, now, client_id, &how));
}

/* A client's id that an existing job of another tenant holds: refused,
 * as that job is not the token's to see (text: the message). */
static bool id_taken(const struct job_req *jr, const redisReply *r, const char *id, char *text,
                     size_t len)
{
    if (r->element[0]->integer == 1 || owned(jr, r->elements > 2 ? r->element[2] : NULL))
        return false;
    snprintf(text, len, "id '%s' is taken by another tenant's job; choose another id", id);
    return true;
}

static void on_enqueued(struct pending *p, redisReply *r, void *ctx)
{
    struct job_req *jr = job_req_of(p);
    char text[200];
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (id_taken(jr, r, jr->id, text, sizeof(text))) {
        pending_error(p, 409, "%s", text);
        return;
    }
    jr->created = r->element[0]->integer == 1;
    if (jr->created)
        metrics_add_submitted(jr->jobs->metrics, 1);
    if (jr->wait_s > 0) {
        reread(jr, false);
        return;
    }
    pending_reply(p, jr->created ? 201 : 200,
                  json_pack("{s:s, s:s}", "id", jr->id, "status", r->element[1]->str));
}

/* POST /v1/jobs */
static void route_submit(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    char err[600], id[ROUTER_ID_MAX + 1];
    size_t len;
    json_t *spec = NULL;
    long long wait;

    if (http_query_int(req, "wait", 0, 0, MAX_WAIT_S, &wait) < 0)
        return;
    const char *body = http_request_body(req, j->set.max_body, &len);
    if (!body)
        return;
    const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
    struct job_placement pl;
    int r = 0;
    if (job_json_parse(body, len, &spec, err, sizeof(err)) < 0 ||
        (json_is_object(spec) && !take_client_id(spec, idem, id, sizeof(id), err, sizeof(err))) ||
        (r = job_placement_take(spec, &(struct job_token){m->tenant, m->max_priority},
                                util_now_ms(), &pl, err, sizeof(err))) < 0 ||
        job_spec_normalize(spec, &j->set.lim, err, sizeof(err)) < 0) {
        json_decref(spec);
        http_send_error(req, r == -EPERM ? 403 : 400, "%s", err);
        return;
    }
    bool client_id = id[0] != '\0';
    if (!client_id)
        util_new_id(id);
    _cleanup_free_ char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (!text) {
        http_send_error(req, 500, "out of memory");
        return;
    }
    struct job_req *jr = job_req_new(j, req, m, ROUTE_JOBS_SUBMIT, id);
    if (!jr)
        return;
    jr->wait_s = (int)wait;
    if (wait > 0)
        events_add_waiter(j->events, &jr->waiter);
    enqueue(jr, on_enqueued, NULL, id, client_id, text, &pl);
    pending_done(&jr->p);
}

struct batch_item {
    size_t index;
    char id[ROUTER_ID_MAX + 1];
    bool client_id;
    struct job_placement pl;
};

static void on_batch_enqueued(struct pending *p, redisReply *r, void *ctx)
{
    struct job_req *jr = job_req_of(p);
    struct batch_item *it = ctx;
    char text[200];
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 2;
    json_t *res = !ok ? json_pack("{s:s, s:s}", "id", it->id, "error", "Redis refused the job")
                  : id_taken(jr, r, it->id, text, sizeof(text))
                      ? json_pack("{s:s, s:s}", "id", it->id, "error", text)
                      : json_pack("{s:s, s:s}", "id", it->id, "status", r->element[1]->str);
    json_array_set_new(jr->items, it->index, res);
    if (ok && r->element[0]->integer == 1)
        metrics_add_submitted(jr->jobs->metrics, 1);
    free(it);
    if (--jr->outstanding == 0)
        pending_reply(p, 200, json_pack("{s:O}", "jobs", jr->items));
}

/* The specs of a batch request's body, or NULL (answered 400 or 413).
 * They belong to *ret_doc, which the caller frees with json_decref(). */
static json_t *batch_specs(struct jobs *j, struct evhttp_request *req, json_t **ret_doc)
{
    char err[600];
    size_t len;
    json_t *doc = NULL;

    const char *body = http_request_body(req, j->set.max_body, &len);
    if (!body)
        return NULL;
    if (job_json_parse(body, len, &doc, err, sizeof(err)) < 0) {
        http_send_error(req, 400, "%s", err);
        return NULL;
    }
    json_t *specs = json_object_get(doc, "jobs");
    if (!json_is_object(doc) || !json_is_array(specs)) {
        json_decref(doc);
        http_send_error(req, 400, "the body must be an object with an array field 'jobs'");
        return NULL;
    }
    size_t n = json_array_size(specs);
    if (n == 0 || n > MAX_BATCH) {
        json_decref(doc);
        http_send_error(req, 400, "field 'jobs' must hold 1 to %d job specs, not %zu", MAX_BATCH,
                        n);
        return NULL;
    }
    *ret_doc = doc;
    return specs;
}

/* Checks spec number i of a batch into *ret_item and *ret_text (caller
 * frees both with free()); when it fails, its item says why. */
static bool batch_prepare(struct job_req *jr, json_t *spec, size_t i, const struct job_token *tok,
                          struct batch_item **ret_item, char **ret_text)
{
    char err[600], id[ROUTER_ID_MAX + 1] = "";
    struct job_placement pl;
    if (!json_is_object(spec) || !take_client_id(spec, NULL, id, sizeof(id), err, sizeof(err)) ||
        job_placement_take(spec, tok, util_now_ms(), &pl, err, sizeof(err)) < 0 ||
        job_spec_normalize(spec, &jr->jobs->set.lim, err, sizeof(err)) < 0) {
        if (!json_is_object(spec))
            snprintf(err, sizeof(err), "the job spec must be a JSON object");
        json_array_set_new(jr->items, i, json_pack("{s:s}", "error", err));
        return false;
    }
    struct batch_item *it = calloc(1, sizeof(*it));
    char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!it || !text) {
        free(it);
        free(text);
        json_array_set_new(jr->items, i, json_pack("{s:s}", "error", "out of memory"));
        return false;
    }
    it->index = i;
    it->pl = pl;
    it->client_id = id[0] != '\0';
    if (id[0])
        snprintf(it->id, sizeof(it->id), "%s", id);
    else
        util_new_id(it->id);
    *ret_item = it;
    *ret_text = text;
    return true;
}

/* Sends the enqueues of the checked specs back to back: the connection
 * writes them as one pipeline. Frees todo[] and texts[]. */
static void batch_send(struct job_req *jr, struct batch_item **todo, char **texts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!todo[i])
            continue;
        if (jr->p.answered) {
            free(todo[i]);
        } else {
            int before = jr->p.inflight;
            enqueue(jr, on_batch_enqueued, todo[i], todo[i]->id, todo[i]->client_id, texts[i],
                    &todo[i]->pl);
            if (jr->p.inflight == before)
                free(todo[i]); /* not sent: the request was answered 503 */
        }
        free(texts[i]);
    }
}

/* POST /v1/jobs/batch: every spec is checked first, then all are sent. */
static void route_batch(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    json_t *doc = NULL;
    (void)m;
    json_t *specs = batch_specs(j, req, &doc);
    if (!specs)
        return;
    size_t n = json_array_size(specs);
    struct job_req *jr = job_req_new(j, req, m, ROUTE_JOBS_BATCH, NULL);
    if (!jr) {
        json_decref(doc);
        return;
    }
    jr->items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(jr->items, json_null());
    struct batch_item **todo = calloc(n, sizeof(*todo));
    char **texts = calloc(n, sizeof(*texts));
    const struct job_token tok = {m->tenant, m->max_priority};
    for (size_t i = 0; todo && texts && i < n; i++)
        if (batch_prepare(jr, json_array_get(specs, i), i, &tok, &todo[i], &texts[i]))
            jr->outstanding++;
    json_decref(doc);
    if (jr->outstanding == 0)
        pending_reply(&jr->p, 200, json_pack("{s:O}", "jobs", jr->items));
    if (todo && texts)
        batch_send(jr, todo, texts, n);
    else
        pending_error(&jr->p, 500, "out of memory");
    free(todo);
    free(texts);
    pending_done(&jr->p);
}

/* --- Cancel, retry ------------------------------------------------------ */

static void on_cancel(struct pending *p, redisReply *r, void *ctx)
{
    const char *id = job_req_of(p)->id;
    (void)ctx;
    const char *what = r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "";
    const char *cancelled = queue_status_name(QUEUE_STATUS_CANCELLED);
    if (!strcmp(what, cancelled))
        pending_reply(p, 200, json_pack("{s:s, s:s}", "id", id, "status", cancelled));
    else if (!strcmp(what, QUEUE_CANCELLING))
        pending_reply(p, 202, json_pack("{s:s, s:s}", "id", id, "status", QUEUE_CANCELLING));
    else if (!strcmp(what, "terminal"))
        pending_error(p, 409, "job '%s' has already finished (%s); there is nothing to cancel", id,
                      r->elements > 1 ? r->element[1]->str : "?");
    else
        pending_error(p, 404, "no job with id '%s'", id);
}

static void send_cancel(struct job_req *jr)
{
    struct queue_call c;
    pending_call(&jr->p, on_cancel, NULL, &c,
                 queue_build_cancel(&c, server_names(jr->jobs->srv), jr->id, util_now_ms(),
                                    jr->jobs->set.failed_ttl));
}

/* DELETE /v1/jobs/{id} */
static void route_cancel(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct job_req *jr = job_req_new(ctx, req, m, ROUTE_JOB_CANCEL, m->id);
    if (!jr)
        return;
    send_owned(jr, send_cancel);
    pending_done(&jr->p);
}

static void on_retry(struct pending *p, redisReply *r, void *ctx)
{
    const char *id = job_req_of(p)->id;
    (void)ctx;
    const char *what = r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "";
    const char *queued = queue_status_name(QUEUE_STATUS_QUEUED);
    if (!strcmp(what, queued))
        pending_reply(p, 200,
                      json_pack("{s:s, s:s, s:I}", "id", id, "status", queued, "attempts",
                                (json_int_t)r->element[1]->integer));
    else if (!strcmp(what, "conflict"))
        pending_error(p, 409,
                      "job '%s' is %s; only a job that ended without success can be retried", id,
                      r->elements > 1 ? r->element[1]->str : "?");
    else
        pending_error(p, 404, "no job with id '%s'", id);
}

static void send_retry(struct job_req *jr)
{
    struct queue_call c;
    pending_call(&jr->p, on_retry, NULL, &c,
                 queue_build_retry(&c, server_names(jr->jobs->srv), jr->id, util_now_ms()));
}

/* POST /v1/jobs/{id}/retry */
static void route_retry(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct job_req *jr = job_req_new(ctx, req, m, ROUTE_JOB_RETRY, m->id);
    if (!jr)
        return;
    send_owned(jr, send_retry);
    pending_done(&jr->p);
}

/* --- Logs, listing, workers, queue ---------------------------------------- */

/* The stored log lines are JSON texts that the worker wrote (job-controlled
 * values, up to 1,000 lines of 16 KiB): they are validated and spliced into
 * the response as they are, not parsed (see json_field). */
static void on_logs(struct pending *p, redisReply *r, void *ctx)
{
    const struct job_req *jr = job_req_of(p);
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        pending_error(p, 404, "no job with id '%s'", jr->id);
        return;
    }
    const char *status = r->element[0]->str;
    long long out_len = r->element[3]->integer, err_len = r->element[4]->integer;
    long long nlines = r->elements > 6 ? r->element[6]->integer : 0;
    char *o = util_utf8_sanitize(r->element[1]->str, r->element[1]->len);
    char *e = util_utf8_sanitize(r->element[2]->str, r->element[2]->len);
    json_t *head =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", jr->id, "status", status, "stdout",
                  o ? o : "", "stderr", e ? e : "", "stdout_offset",
                  (json_int_t)(out_len > jr->off_out ? out_len : jr->off_out), "stderr_offset",
                  (json_int_t)(err_len > jr->off_err ? err_len : jr->off_err));
    json_t *tail = json_pack("{s:I, s:b}", "log_offset",
                             (json_int_t)(nlines > jr->off_log ? nlines : jr->off_log), "done",
                             queue_status_is_terminal(status));
    char *h = head ? json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *t = tail ? json_dumps(tail, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct evbuffer *buf = h && t ? evbuffer_new() : NULL;
    free(o);
    free(e);
    json_decref(head);
    json_decref(tail);
    if (!buf) {
        free(h);
        free(t);
        pending_error(p, 500, "out of memory");
        return;
    }
    /* {head..., "log": [line, ...], tail...} */
    evbuffer_add(buf, h, strlen(h) - 1);
    evbuffer_add(buf, ",\"log\":[", 8);
    for (size_t i = 0; r->elements > 6 && i < r->element[5]->elements; i++) {
        const redisReply *l = r->element[5]->element[i];
        if (i)
            evbuffer_add(buf, ",", 1);
        add_json_text(buf, l->str, l->len, true);
    }
    evbuffer_add(buf, "],", 2);
    evbuffer_add(buf, t + 1, strlen(t) - 1);
    evbuffer_add(buf, "\n", 1);
    free(h);
    free(t);
    pending_reply_raw(p, 200, buf, "application/json");
    evbuffer_free(buf);
}

static void send_logs(struct job_req *jr)
{
    struct queue_call c;
    pending_call(&jr->p, on_logs, NULL, &c,
                 queue_build_logs(&c, server_names(jr->jobs->srv), jr->id, jr->off_out, jr->off_err,
                                  jr->off_log));
}

/* GET /v1/jobs/{id}/logs */
static void route_logs(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    long long oo, oe, ol;
    if (http_query_int(req, "stdout_offset", 0, 0, 1LL << 40, &oo) < 0 ||
        http_query_int(req, "stderr_offset", 0, 0, 1LL << 40, &oe) < 0 ||
        http_query_int(req, "log_offset", 0, 0, 1LL << 40, &ol) < 0)
        return;
    struct job_req *jr = job_req_new(j, req, m, ROUTE_JOB_LOGS, m->id);
    if (!jr)
        return;
    jr->off_out = oo;
    jr->off_err = oe;
    jr->off_log = ol;
    send_owned(jr, send_logs);
    pending_done(&jr->p);
}

static json_t *int_or_null(const redisReply *v)
{
    return v->len ? json_integer(strtoll(v->str, NULL, 10)) : json_null();
}

static json_t *str_or_null(const redisReply *v)
{
    return v->len ? json_stringn(v->str, v->len) : json_null();
}

static void on_list(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    json_t *jobs = json_array();
    /* page.lua's reply: the cursor to resume from, then 9 entries a job. */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        json_decref(jobs);
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    for (size_t i = 2; i + 8 < r->elements; i += 9) {
        redisReply **e = r->element + i;
        json_array_append_new(jobs,
                              json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", e[0]->str,
                                        "status", e[1]->str, "attempts", int_or_null(e[2]),
                                        "created_ms", int_or_null(e[3]), "started_ms",
                                        int_or_null(e[4]), "finished_ms", int_or_null(e[5]),
                                        "worker", str_or_null(e[6]), "tenant", str_or_null(e[8])));
    }
    json_t *next = json_null();
    if (r->element[0]->len && r->element[1]->len) {
        char cursor[160];
        snprintf(cursor, sizeof(cursor), "%s:%s", r->element[0]->str, r->element[1]->str);
        next = json_string(cursor);
    }
    pending_reply(p, 200, json_pack("{s:o, s:o}", "jobs", jobs, "next_cursor", next));
}

/* list.lua's ids: now their jobs (page.lua). */
static void on_list_ids(struct pending *p, redisReply *r, void *ctx)
{
    struct queue_call c;
    const struct job_req *jr = job_req_of(p);
    pending_call(p, on_list, NULL, &c,
                 queue_build_page(&c, server_names(p->srv), jr->id, jr->tenant,
                                  (long long)(intptr_t)ctx, r));
}

/* GET /v1/jobs */
static void route_list(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    char status[40] = "all";
    long long limit;
    if (http_query_int(req, "limit", 50, 1, 500, &limit) < 0)
        return;
    if (http_query_str(req, "status", status, sizeof(status)) && strcmp(status, "all") != 0 &&
        queue_status_parse(status) < 0) {
        char names[400] = "";
        size_t used = 0;
        for (int i = 0; i < QUEUE_STATUS__COUNT && used < sizeof(names); i++)
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                     queue_status_name(i));
        http_send_error(req, 400, "query parameter 'status' must be a job status (%s) or all",
                        names);
        return;
    }
    char tenant[80] = "";
    if (http_query_str(req, "tenant", tenant, sizeof(tenant)) && !util_valid_tenant(tenant)) {
        http_send_error(req, 400,
                        "query parameter 'tenant' must be 1 to 64 characters of [A-Za-z0-9._-]");
        return;
    }
    if (m->tenant[0]) {
        /* A tenant's token lists its own tenant's jobs. */
        if (tenant[0] && strcmp(tenant, m->tenant) != 0) {
            http_send_error(req, 403, "this token may list the jobs of tenant '%s' only",
                            m->tenant);
            return;
        }
        snprintf(tenant, sizeof(tenant), "%s", m->tenant);
    }
    char score[40] = "+inf", cursor_id[ROUTER_ID_MAX + 1] = "";
    if (http_query_cursor(req, score, sizeof(score), cursor_id, sizeof(cursor_id)) < 0)
        return;
    /* The status travels in the request's id to the second call. */
    struct job_req *jr = job_req_new(j, req, m, ROUTE_JOBS_LIST, status);
    if (!jr)
        return;
    snprintf(jr->tenant, sizeof(jr->tenant), "%.*s", ROUTER_ID_MAX, tenant); /* valid: fits */
    struct queue_call c;
    pending_call(
        &jr->p, on_list_ids, (void *)(intptr_t)limit, &c,
        queue_build_list(&c, server_names(j->srv), status, tenant, score, cursor_id, limit));
    pending_done(&jr->p);
}

static void on_workers(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    json_t *list = json_array();
    static const char *const ints[] = {"pid", "jobs_done", "jobs_failed", "started_ms",
                                       "last_heartbeat_ms"};
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 2 < r->elements; i += 3) {
        const redisReply *h = r->element[i + 2];
        json_t *w = json_pack("{s:s, s:I}", "id", r->element[i]->str, "last_heartbeat_ms",
                              (json_int_t)strtoll(r->element[i + 1]->str, NULL, 10));
        /* A worker whose hash expired stopped heartbeating: it is lost. */
        json_object_set_new(w, "state", json_string(h->elements ? "unknown" : "lost"));
        for (size_t k = 0; k + 1 < h->elements; k += 2) {
            const char *f = h->element[k]->str;
            const redisReply *v = h->element[k + 1];
            bool is_int = false;
            for (size_t n = 0; n < ARRAY_SIZE(ints); n++)
                is_int = is_int || !strcmp(f, ints[n]);
            json_t *layers = NULL;
            if (!strcmp(f, "current_job") && v->len == 0)
                json_object_set_new(w, f, json_null());
            else if (!strcmp(f, "sandbox") && (layers = json_loadb(v->str, v->len, 0, NULL)))
                json_object_set_new(w, f, layers); /* each layer: active, or why not */
            else
                json_object_set_new(w, f,
                                    is_int ? json_integer(strtoll(v->str, NULL, 10))
                                           : json_stringn(v->str, v->len));
        }
        json_array_append_new(list, w);
    }
    pending_reply(p, 200, json_pack("{s:o}", "workers", list));
}

/* GET /v1/workers */
static void route_workers(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    static const struct pending_workers_step step = {queue_build_workers, on_workers};
    (void)m;
    pending_start_workers(j->srv, req, &step);
}

/* The guide's advice from one reading of the counts (src/common/advice.h):
 * the queue now, and as utilisation the share of live workers with a job
 * (a worker runs one at a time, so processing / workers). The average wait
 * and the guide's "consistently" need a window of readings, which only
 * `stratq monitor` keeps. */
static json_t *queue_advice(long long pending, long long processing, long long workers)
{
    struct advice_in in = {
        .pending = &pending,
        .npending = 1,
        .wait_s = ADVICE_UNKNOWN,
        .basis = ADVICE_BASIS_BUSY,
        .busy_percent =
            workers > 0
                ? 100.0 * (double)(processing < workers ? processing : workers) / (double)workers
                : ADVICE_UNKNOWN,
        .cpu_percent = ADVICE_UNKNOWN,
        .memory_percent = ADVICE_UNKNOWN,
        .workers = workers,
    };
    json_t *obj = json_object();
    if (obj && advice_fill_json(&in, obj) < 0) {
        json_decref(obj);
        obj = NULL;
    }
    return obj ? obj : json_null();
}

/* A number of ms given in seconds: an integer when it is one. */
static json_t *ms_json(double seconds)
{
    double ms = seconds * 1000;
    long long whole = llround(ms);
    return fabs(ms - (double)whole) < 1e-6 ? json_integer(whole) : json_real(ms);
}

/* One of the stats hash's histograms (the ones of GET /metrics) in ms:
 * {le_ms: [bounds], counts: [observations <= each bound], count, sum_ms}. */
static json_t *histogram_json(const struct jobq_histogram *h)
{
    json_t *le = json_array(), *counts = json_array();
    long long cumulative = 0;
    for (int i = 0; i < queue_nbuckets; i++) {
        cumulative += h->buckets[i];
        json_array_append_new(le, ms_json(queue_buckets[i]));
        json_array_append_new(counts, json_integer(cumulative));
    }
    return json_pack("{s:o, s:o, s:I, s:I}", "le_ms", le, "counts", counts, "count",
                     (json_int_t)h->count, "sum_ms", (json_int_t)llround(h->sum * 1000));
}

/* metrics.lua's reply: the counts, the fair-share state, the advice and
 * the run-time and wait histograms. */
static void on_stats(struct pending *p, redisReply *r, void *ctx)
{
    struct queue_metrics m;
    (void)ctx;
    if (queue_metrics_parse(r, &m) < 0) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    json_t *hist = json_pack("{s:o, s:o}", "run", histogram_json(&m.duration), "wait",
                             histogram_json(&m.queue_wait));
    json_t *paused = json_array();
    for (size_t i = 0; i < m.paused_tenants->elements; i++) {
        const char *t = m.paused_tenants->element[i]->str;
        if (t && strcmp(t, "*") != 0)
            json_array_append_new(paused, json_string(t));
    }
    json_t *body =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o}", "queue",
                  server_names(p->srv)->queue, "pending", (json_int_t)m.pending, "processing",
                  (json_int_t)m.processing, "scheduled", (json_int_t)m.scheduled, "dead",
                  (json_int_t)m.dead, "workers", (json_int_t)m.workers, "held", (json_int_t)m.held,
                  "backlog", (json_int_t)(m.pending + m.held + m.scheduled), "waiting",
                  (json_int_t)m.waiting, "paused", m.paused, "paused_tenants", paused, "advice",
                  queue_advice(m.pending, m.processing, m.workers));
    if (body)
        json_object_set_new(body, "histograms", hist ? hist : json_null());
    pending_reply(p, 200, body);
}

/* GET /v1/queue */
static void route_queue(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct jobs *j = ctx;
    static const struct pending_workers_step step = {queue_build_metrics, on_stats};
    (void)m;
    pending_start_workers(j->srv, req, &step);
}

/* --- Statuses --------------------------------------------------------------- */

/* GET /v1/statuses: every job status and its properties (src/queue/status.h),
 * for the dashboard; needs no Redis. */
static void route_statuses(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    (void)ctx;
    (void)m;
    json_t *list = queue_status_json();
    http_send_json(req, 200, list ? json_pack("{s:o}", "statuses", list) : NULL);
}

/* --- The routes ---------------------------------------------------------------- */

int jobs_new(struct server *s, struct events *ev, struct metrics *m,
             const struct jobs_settings *set, struct jobs **ret)
{
    static const struct server_route routes[] = {
        {ROUTE_QUEUE, route_queue},       {ROUTE_WORKERS, route_workers},
        {ROUTE_JOBS_LIST, route_list},    {ROUTE_JOBS_SUBMIT, route_submit},
        {ROUTE_JOBS_BATCH, route_batch},  {ROUTE_JOB_GET, route_get},
        {ROUTE_JOB_CANCEL, route_cancel}, {ROUTE_JOB_RESULT, route_get},
        {ROUTE_JOB_LOGS, route_logs},     {ROUTE_JOB_RETRY, route_retry},
        {ROUTE_STATUSES, route_statuses},
    };
    struct jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct jobs){s, ev, m, *set};
    server_add_routes(s, routes, ARRAY_SIZE(routes), j);
    *ret = j;
    return 0;
}

void jobs_free(struct jobs *j)
{
    free(j);
}

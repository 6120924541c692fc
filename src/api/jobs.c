/* The job routes of the API. Every Redis transition is a Lua script from
 * src/queue/lua/; reads are plain commands. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/config.h"
#include "../common/jsonv.h"
#include "../common/log.h"
#include "../common/util.h"
#include "internal.h"

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
           !strcmp(f, "finished_ms") || !strcmp(f, "cancel_requested_ms") ||
           !strcmp(f, "retried_ms") || !strcmp(f, "next_run_ms") || !strcmp(f, "failures") ||
           !strcmp(f, "lost");
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
            if (!strcmp(f, "result"))
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

/* --- Reading a job, now or when it finishes ----------------------------- */

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    jobs_reread(arg, true);
}

static void on_job_read(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (r->elements == 0) {
        pending_error(p, 404, "no job with id '%s'", p->id);
        return;
    }
    const redisReply *st = hash_get(r, "status");
    bool terminal = st && queue_status_is_terminal(st->str);
    if (!terminal && !p->final) {
        /* Wait for the job's terminal event, or the end of ?wait=. */
        if (!p->waiting)
            events_add_waiter(p->api, p);
        if (!p->wait_timer) {
            p->wait_timer = evtimer_new(p->api->base, on_wait_timeout, p);
            struct timeval tv = {p->wait_s, 0};
            if (p->wait_timer)
                evtimer_add(p->wait_timer, &tv);
        }
        return;
    }
    struct evbuffer *buf = record_buffer(p->id, r, p->route == ROUTE_JOB_RESULT);
    if (!buf) {
        pending_error(p, 500, "out of memory");
        return;
    }
    int code = 200;
    if (p->route == ROUTE_JOB_RESULT && !terminal)
        code = 202;
    else if (p->route == ROUTE_JOBS_SUBMIT && p->created)
        code = 201;
    if (p->route == ROUTE_JOB_RESULT && !terminal) {
        evbuffer_free(buf);
        pending_reply(p, code, json_pack("{s:s, s:s}", "id", p->id, "status", st ? st->str : ""));
        return;
    }
    pending_reply_raw(p, code, buf, "application/json");
    evbuffer_free(buf);
}

void jobs_reread(struct pending *p, bool final)
{
    if (p->answered)
        return;
    p->final = p->final || final;
    struct queue_call c;
    pending_call(p, on_job_read, NULL, &c, queue_build_job_read(&c, &p->api->names, p->id));
}

void jobs_get(struct api *a, struct evhttp_request *req, enum route_id route, const char *id)
{
    long long wait;
    if (api_query_int(req, "wait", 0, 0, API_MAX_WAIT_S, &wait) < 0)
        return;
    struct pending *p = pending_new(a, req, route, id);
    if (!p)
        return;
    p->wait_s = (int)wait;
    if (wait > 0)
        events_add_waiter(a, p); /* before the read, so no completion is missed */
    jobs_reread(p, wait == 0);
    pending_done(p);
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
static void enqueue(struct pending *p, pending_handler *h, void *ctx, const char *id,
                    bool client_id, const char *spec_text)
{
    struct api *a = p->api;
    struct queue_call c;
    pending_call(p, h, ctx, &c,
                 queue_build_enqueue(&c, &a->names, id, spec_text, util_now_ms(), client_id));
}

static void on_enqueued(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    p->created = r->element[0]->integer == 1;
    if (p->created)
        p->api->submitted_unflushed++;
    if (p->wait_s > 0) {
        jobs_reread(p, false);
        return;
    }
    pending_reply(p, p->created ? 201 : 200,
                  json_pack("{s:s, s:s}", "id", p->id, "status", r->element[1]->str));
}

/* Body of a POST as a NUL-terminated view; answers 413 past the limit. */
static const char *request_body(struct api *a, struct evhttp_request *req, size_t *ret_len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > a->max_body) {
        api_send_error(req, 413,
                       "the request body is %zu bytes; the limit (STRATQ_MAX_BODY) is %zu", len,
                       a->max_body);
        return NULL;
    }
    *ret_len = len;
    return len ? (const char *)evbuffer_pullup(in, -1) : "";
}

void jobs_submit(struct api *a, struct evhttp_request *req)
{
    char err[600], id[ROUTER_ID_MAX + 1];
    size_t len;
    json_t *spec = NULL;
    long long wait;

    if (api_query_int(req, "wait", 0, 0, API_MAX_WAIT_S, &wait) < 0)
        return;
    const char *body = request_body(a, req, &len);
    if (!body)
        return;
    const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
    if (job_json_parse(body, len, &spec, err, sizeof(err)) < 0 ||
        (json_is_object(spec) && !take_client_id(spec, idem, id, sizeof(id), err, sizeof(err))) ||
        job_spec_normalize(spec, &a->lim, err, sizeof(err)) < 0) {
        json_decref(spec);
        api_send_error(req, 400, "%s", err);
        return;
    }
    bool client_id = id[0] != '\0';
    if (!client_id)
        util_new_id(id);
    _cleanup_free_ char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (!text) {
        api_send_error(req, 500, "out of memory");
        return;
    }
    struct pending *p = pending_new(a, req, ROUTE_JOBS_SUBMIT, id);
    if (!p)
        return;
    p->wait_s = (int)wait;
    if (wait > 0)
        events_add_waiter(a, p);
    enqueue(p, on_enqueued, NULL, id, client_id, text);
    pending_done(p);
}

struct batch_item {
    size_t index;
    char id[ROUTER_ID_MAX + 1];
    bool client_id;
};

static void on_batch_enqueued(struct pending *p, redisReply *r, void *ctx)
{
    struct batch_item *it = ctx;
    json_t *res = r->type == REDIS_REPLY_ARRAY && r->elements == 2
                      ? json_pack("{s:s, s:s}", "id", it->id, "status", r->element[1]->str)
                      : json_pack("{s:s, s:s}", "id", it->id, "error", "Redis refused the job");
    json_array_set_new(p->items, it->index, res);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->integer == 1)
        p->api->submitted_unflushed++;
    free(it);
    if (--p->outstanding == 0)
        pending_reply(p, 200, json_pack("{s:O}", "jobs", p->items));
}

void jobs_batch(struct api *a, struct evhttp_request *req)
{
    char err[600];
    size_t len;
    json_t *doc = NULL;

    const char *body = request_body(a, req, &len);
    if (!body)
        return;
    if (job_json_parse(body, len, &doc, err, sizeof(err)) < 0) {
        api_send_error(req, 400, "%s", err);
        return;
    }
    json_t *jobs = json_object_get(doc, "jobs");
    if (!json_is_object(doc) || !json_is_array(jobs)) {
        json_decref(doc);
        api_send_error(req, 400, "the body must be an object with an array field 'jobs'");
        return;
    }
    size_t n = json_array_size(jobs);
    if (n == 0 || n > API_MAX_BATCH) {
        json_decref(doc);
        api_send_error(req, 400, "field 'jobs' must hold 1 to %d job specs, not %zu", API_MAX_BATCH,
                       n);
        return;
    }
    struct pending *p = pending_new(a, req, ROUTE_JOBS_BATCH, NULL);
    if (!p) {
        json_decref(doc);
        return;
    }
    p->items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(p->items, json_null());
    /* Validate everything first, then send all the enqueues back to back:
     * the connection writes them as one pipeline. */
    struct batch_item **todo = calloc(n, sizeof(*todo));
    char **texts = calloc(n, sizeof(*texts));
    for (size_t i = 0; todo && texts && i < n; i++) {
        json_t *spec = json_array_get(jobs, i);
        char id[ROUTER_ID_MAX + 1] = "";
        if (!json_is_object(spec) ||
            !take_client_id(spec, NULL, id, sizeof(id), err, sizeof(err)) ||
            job_spec_normalize(spec, &a->lim, err, sizeof(err)) < 0) {
            if (!json_is_object(spec))
                snprintf(err, sizeof(err), "the job spec must be a JSON object");
            json_array_set_new(p->items, i, json_pack("{s:s}", "error", err));
            continue;
        }
        todo[i] = calloc(1, sizeof(**todo));
        texts[i] = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!todo[i] || !texts[i]) {
            free(todo[i]);
            todo[i] = NULL;
            json_array_set_new(p->items, i, json_pack("{s:s}", "error", "out of memory"));
            continue;
        }
        todo[i]->index = i;
        todo[i]->client_id = id[0] != '\0';
        if (id[0])
            snprintf(todo[i]->id, sizeof(todo[i]->id), "%s", id);
        else
            util_new_id(todo[i]->id);
        p->outstanding++;
    }
    json_decref(doc);
    if (p->outstanding == 0)
        pending_reply(p, 200, json_pack("{s:O}", "jobs", p->items));
    for (size_t i = 0; todo && texts && i < n; i++) {
        if (!todo[i])
            continue;
        if (p->answered) {
            free(todo[i]);
        } else {
            int before = p->inflight;
            enqueue(p, on_batch_enqueued, todo[i], todo[i]->id, todo[i]->client_id, texts[i]);
            if (p->inflight == before)
                free(todo[i]); /* not sent: the request was answered 503 */
        }
        free(texts[i]);
    }
    if (!todo || !texts)
        pending_error(p, 500, "out of memory");
    free(todo);
    free(texts);
    pending_done(p);
}

/* --- Cancel, retry ------------------------------------------------------ */

static void on_cancel(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    const char *what = r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "";
    const char *cancelled = queue_status_name(QUEUE_STATUS_CANCELLED);
    if (!strcmp(what, cancelled))
        pending_reply(p, 200, json_pack("{s:s, s:s}", "id", p->id, "status", cancelled));
    else if (!strcmp(what, QUEUE_CANCELLING))
        pending_reply(p, 202, json_pack("{s:s, s:s}", "id", p->id, "status", QUEUE_CANCELLING));
    else if (!strcmp(what, "terminal"))
        pending_error(p, 409, "job '%s' has already finished (%s); there is nothing to cancel",
                      p->id, r->elements > 1 ? r->element[1]->str : "?");
    else
        pending_error(p, 404, "no job with id '%s'", p->id);
}

void jobs_cancel(struct api *a, struct evhttp_request *req, const char *id)
{
    struct pending *p = pending_new(a, req, ROUTE_JOB_CANCEL, id);
    struct queue_call c;
    if (!p)
        return;
    pending_call(p, on_cancel, NULL, &c,
                 queue_build_cancel(&c, &a->names, id, util_now_ms(), a->failed_ttl));
    pending_done(p);
}

static void on_retry(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    const char *what = r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "";
    const char *queued = queue_status_name(QUEUE_STATUS_QUEUED);
    if (!strcmp(what, queued))
        pending_reply(p, 200,
                      json_pack("{s:s, s:s, s:I}", "id", p->id, "status", queued, "attempts",
                                (json_int_t)r->element[1]->integer));
    else if (!strcmp(what, "conflict"))
        pending_error(p, 409,
                      "job '%s' is %s; only a job that ended without success can be retried", p->id,
                      r->elements > 1 ? r->element[1]->str : "?");
    else
        pending_error(p, 404, "no job with id '%s'", p->id);
}

void jobs_retry(struct api *a, struct evhttp_request *req, const char *id)
{
    struct pending *p = pending_new(a, req, ROUTE_JOB_RETRY, id);
    struct queue_call c;
    if (!p)
        return;
    pending_call(p, on_retry, NULL, &c, queue_build_retry(&c, &a->names, id, util_now_ms()));
    pending_done(p);
}

/* --- Logs, listing, workers, queue ---------------------------------------- */

/* The stored log lines are JSON texts that the worker wrote (job-controlled
 * values, up to 1,000 lines of 16 KiB): they are validated and spliced into
 * the response as they are, not parsed (see json_field). */
static void on_logs(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        pending_error(p, 404, "no job with id '%s'", p->id);
        return;
    }
    const char *status = r->element[0]->str;
    long long out_len = r->element[3]->integer, err_len = r->element[4]->integer;
    long long nlines = r->elements > 6 ? r->element[6]->integer : 0;
    char *o = util_utf8_sanitize(r->element[1]->str, r->element[1]->len);
    char *e = util_utf8_sanitize(r->element[2]->str, r->element[2]->len);
    json_t *head =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", p->id, "status", status, "stdout",
                  o ? o : "", "stderr", e ? e : "", "stdout_offset",
                  (json_int_t)(out_len > p->off_out ? out_len : p->off_out), "stderr_offset",
                  (json_int_t)(err_len > p->off_err ? err_len : p->off_err));
    json_t *tail = json_pack("{s:I, s:b}", "log_offset",
                             (json_int_t)(nlines > p->off_log ? nlines : p->off_log), "done",
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

void jobs_logs(struct api *a, struct evhttp_request *req, const char *id)
{
    long long oo, oe, ol;
    if (api_query_int(req, "stdout_offset", 0, 0, 1LL << 40, &oo) < 0 ||
        api_query_int(req, "stderr_offset", 0, 0, 1LL << 40, &oe) < 0 ||
        api_query_int(req, "log_offset", 0, 0, 1LL << 40, &ol) < 0)
        return;
    struct pending *p = pending_new(a, req, ROUTE_JOB_LOGS, id);
    if (!p)
        return;
    p->off_out = oo;
    p->off_err = oe;
    p->off_log = ol;
    struct queue_call c;
    pending_call(p, on_logs, NULL, &c, queue_build_logs(&c, &a->names, id, oo, oe, ol));
    pending_done(p);
}

static json_t *int_or_null(const redisReply *v)
{
    return v->len ? json_integer(strtoll(v->str, NULL, 10)) : json_null();
}

static void on_list(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    json_t *jobs = json_array();
    /* list.lua's reply: the cursor to resume from, then 8 entries a job. */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        json_decref(jobs);
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    for (size_t i = 2; i + 7 < r->elements; i += 8) {
        redisReply **e = r->element + i;
        json_array_append_new(jobs, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id",
                                              e[0]->str, "status", e[1]->str, "attempts",
                                              int_or_null(e[2]), "created_ms", int_or_null(e[3]),
                                              "started_ms", int_or_null(e[4]), "finished_ms",
                                              int_or_null(e[5]), "worker",
                                              e[6]->len ? json_string(e[6]->str) : json_null()));
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
    pending_call(p, on_list, NULL, &c,
                 queue_build_page(&c, &p->api->names, p->id, (long long)(intptr_t)ctx, r));
}

void jobs_list(struct api *a, struct evhttp_request *req)
{
    char status[40] = "all", cursor[160] = "";
    long long limit;
    if (api_query_int(req, "limit", 50, 1, 500, &limit) < 0)
        return;
    if (api_query_str(req, "status", status, sizeof(status)) && strcmp(status, "all") != 0 &&
        queue_status_parse(status) < 0) {
        char names[400] = "";
        size_t used = 0;
        for (int i = 0; i < QUEUE_STATUS__COUNT && used < sizeof(names); i++)
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                     queue_status_name(i));
        api_send_error(req, 400, "query parameter 'status' must be a job status (%s) or all",
                       names);
        return;
    }
    char score[40] = "+inf";
    const char *cursor_id = "";
    if (api_query_str(req, "cursor", cursor, sizeof(cursor))) {
        char *colon = strchr(cursor, ':');
        char *end = NULL;
        if (colon)
            strtod(cursor, &end);
        if (!colon || end != colon || !util_valid_id(colon + 1) ||
            (size_t)(colon - cursor) >= sizeof(score)) {
            api_send_error(req, 400, "query parameter 'cursor' is not a cursor this API made");
            return;
        }
        memcpy(score, cursor, (size_t)(colon - cursor));
        score[colon - cursor] = '\0';
        cursor_id = colon + 1;
    }
    /* The status travels in p->id to the second call. */
    struct pending *p = pending_new(a, req, ROUTE_JOBS_LIST, status);
    if (!p)
        return;
    struct queue_call c;
    pending_call(p, on_list_ids, (void *)(intptr_t)limit, &c,
                 queue_build_list(&c, &a->names, status, score, cursor_id, limit));
    pending_done(p);
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

void jobs_on_worker_ids(struct pending *p, redisReply *r, void *ctx)
{
    const struct worker_keys_step *step = ctx;
    struct queue_call c;
    pending_call(p, step->then, NULL, &c, step->build(&c, &p->api->names, r));
}

void jobs_workers(struct api *a, struct evhttp_request *req)
{
    struct pending *p = pending_new(a, req, ROUTE_WORKERS, NULL);
    if (!p)
        return;
    struct queue_call c;
    static const struct worker_keys_step step = {queue_build_workers, on_workers};
    pending_call(p, jobs_on_worker_ids, (void *)&step, &c, queue_build_worker_ids(&c, &a->names));
    pending_done(p);
}

static void on_stats(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    pending_reply(p, 200,
                  json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "queue", p->api->names.queue,
                            "pending", (json_int_t)r->element[0]->integer, "processing",
                            (json_int_t)r->element[1]->integer, "scheduled",
                            (json_int_t)r->element[2]->integer, "dead",
                            (json_int_t)r->element[3]->integer, "workers",
                            (json_int_t)r->element[4]->integer));
}

void jobs_queue(struct api *a, struct evhttp_request *req)
{
    struct pending *p = pending_new(a, req, ROUTE_QUEUE, NULL);
    if (!p)
        return;
    struct queue_call c;
    static const struct worker_keys_step step = {queue_build_stats, on_stats};
    pending_call(p, jobs_on_worker_ids, (void *)&step, &c, queue_build_worker_ids(&c, &a->names));
    pending_done(p);
}

/* --- Statuses --------------------------------------------------------------- */

void jobs_statuses(struct api *a, struct evhttp_request *req)
{
    (void)a;
    json_t *list = queue_status_json();
    api_send_json(req, 200, list ? json_pack("{s:o}", "statuses", list) : NULL);
}

/* --- Datasets --------------------------------------------------------------- */

static int by_name(const void *x, const void *y)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)x, "name")),
                  json_string_value(json_object_get(*(json_t *const *)y, "name")));
}

void jobs_datasets(struct api *a, struct evhttp_request *req)
{
    (void)a;
    const char *dir = config_str(CFG_DATA_DIR);
    json_t *list = json_array();
    DIR *d = dir[0] ? opendir(dir) : NULL;
    if (dir[0] && !d) {
        json_decref(list);
        api_send_error(req, 503, "cannot read the data directory %s: %s", dir, strerror(errno));
        return;
    }
    struct dirent *e;
    size_t n = 0;
    json_t *items[1000];
    while (d && (e = readdir(d)) && n < ARRAY_SIZE(items)) {
        size_t len = strlen(e->d_name);
        struct stat st;
        /* Regular CSV files directly in the directory; no symlinks. */
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".csv") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        char stem[256];
        snprintf(stem, sizeof(stem), "%.*s", (int)(len - 4), e->d_name);
        items[n++] = json_pack("{s:s, s:s, s:I, s:I}", "name", stem, "file", e->d_name, "size",
                               (json_int_t)st.st_size, "modified_ms",
                               (json_int_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    }
    if (d)
        closedir(d);
    qsort(items, n, sizeof(items[0]), by_name);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, items[i]);
    api_send_json(req, 200, json_pack("{s:o}", "datasets", list));
}

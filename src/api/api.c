#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/adapters/libevent.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/job.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../queue/queue.h"

struct api {
    struct event_base *base;
    struct evhttp *http;
    redisAsyncContext *rc;
    int redis_ready;
    struct queue_async_shas shas;
    struct queue_url url;
    struct queue_names names;
    struct job_limits lim;
    size_t max_body;
    struct event *reconnect_ev;
    int reconnect_ms;
    struct event *sig_ev[2];
};

/* One HTTP request waiting for Redis. */
struct pending {
    struct api *api;
    struct evhttp_request *req;
    char id[80];
};

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return code < 500 ? "Client Error" : "Server Error";
    }
}

/* Sends body (stolen) as the JSON response. */
static void send_json(struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!buf || !s) {
        free(s);
        if (buf)
            evbuffer_free(buf);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(buf, s, strlen(s));
    evbuffer_add(buf, "\n", 1);
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason(code), buf);
    evbuffer_free(buf);
}

static void __attribute__((format(printf, 3, 4)))
send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_json(req, code, json_pack("{s:s}", "error", msg));
}

static struct pending *pending_new(struct api *a, struct evhttp_request *req, const char *id)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->api = a;
    p->req = req;
    snprintf(p->id, sizeof(p->id), "%s", id ? id : "");
    return p;
}

static void send_redis_down(struct evhttp_request *req)
{
    send_error(req, 503, "Redis is unavailable; try again shortly");
}

/* --- Redis connection ---------------------------------------------------- */

static void api_connect(struct api *a);

static void schedule_reconnect(struct api *a)
{
    struct timeval tv = {a->reconnect_ms / 1000, (a->reconnect_ms % 1000) * 1000};
    evtimer_add(a->reconnect_ev, &tv);
    a->reconnect_ms = a->reconnect_ms * 2 > 5000 ? 5000 : a->reconnect_ms * 2;
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    api_connect(arg);
}

static void on_redis_connect(const redisAsyncContext *ac, int status)
{
    struct api *a = ac->data;
    if (status != REDIS_OK) {
        log_warn("cannot connect to Redis, retrying", "{s:s, s:i}", "error", ac->errstr,
                 "retry_ms", a->reconnect_ms);
        a->rc = NULL;
        schedule_reconnect(a);
        return;
    }
    log_info("connected to Redis", "{s:s, s:i}", "host", a->url.host, "port", a->url.port);
    a->reconnect_ms = 100;
}

/* The PING queued after AUTH and SELECT: Redis is usable only if it
 * answers, so /healthz stays 503 while the password is wrong. */
static void on_ready_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    struct api *a = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_STATUS) {
        a->redis_ready = 1;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        log_error("Redis refuses commands; check the password in the Redis URL", "{s:s}",
                  "error", r->str);
    }
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status)
{
    struct api *a = ac->data;
    a->rc = NULL;
    a->redis_ready = 0;
    if (status != REDIS_OK) {
        log_warn("lost the Redis connection, reconnecting", "{s:s}", "error", ac->errstr);
        schedule_reconnect(a);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_error("Redis refused the connection setup", "{s:s, s:s}", "step", (char *)priv,
                  "error", r->str);
}

static void api_connect(struct api *a)
{
    redisAsyncContext *ac = a->url.unix_socket ? redisAsyncConnectUnix(a->url.host)
                                               : redisAsyncConnect(a->url.host, a->url.port);
    if (!ac || ac->err) {
        log_warn("cannot connect to Redis, retrying", "{s:s}", "error",
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(a);
        return;
    }
    ac->data = a;
    a->rc = ac;
    redisLibeventAttach(ac, a->base);
    redisAsyncSetConnectCallback(ac, on_redis_connect);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnect);
    /* Queued now, sent once connected, in order. */
    if (a->url.password)
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", a->url.password);
    if (a->url.db)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", a->url.db);
    queue_async_load(ac, &a->shas);
    redisAsyncCommand(ac, on_ready_ping, a, "PING");
}

/* --- Routes -------------------------------------------------------------- */

static void on_enqueued(redisReply *r, void *priv)
{
    struct pending *p = priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        send_redis_down(p->req);
    } else if (r->element[0]->integer == 1) {
        log_debug("job queued", "{s:s}", "id", p->id);
        send_json(p->req, 201, json_pack("{s:s, s:s}", "id", p->id, "status", "queued"));
    } else {
        send_json(p->req, 200, json_pack("{s:s, s:s}", "id", p->id, "status",
                                         r->element[1]->str));
    }
    free(p);
}

static void handle_submit(struct api *a, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char err[512];
    json_t *spec;

    if (len > a->max_body) {
        send_error(req, 413, "request body is %zu bytes; the limit (STRATQ_MAX_BODY) is %zu",
                   len, a->max_body);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (job_spec_parse(body, len, &a->lim, &spec, err, sizeof(err)) < 0) {
        send_error(req, 400, "%s", err);
        return;
    }
    if (!a->redis_ready) {
        json_decref(spec);
        send_redis_down(req);
        return;
    }
    char id[UTIL_ID_LEN + 1];
    util_new_id(id);
    _cleanup_free_ char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    _cleanup_free_ char *key = queue_job_key(&a->names, id);
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
    struct pending *p = pending_new(a, req, id);
    if (!text || !key || !p) {
        free(p);
        send_error(req, 500, "out of memory");
        return;
    }
    const char *argv[] = {key, a->names.queue, id, text, now, a->names.events};
    if (queue_async_eval(a->rc, &a->shas, QS_ENQUEUE, 2, (int)ARRAY_SIZE(argv), argv, NULL,
                         on_enqueued, p) < 0) {
        free(p);
        send_redis_down(req);
    }
}

/* Hash fields holding JSON text, returned parsed. The result is not among
 * them: it is sent as the job wrote it (see send_job). */
static bool json_field(const char *f)
{
    return !strcmp(f, "spec") || !strcmp(f, "error") || !strcmp(f, "usage");
}

/* Hash fields holding integers. */
static bool int_field(const char *f)
{
    return !strcmp(f, "attempts") || !strcmp(f, "created_ms") || !strcmp(f, "started_ms") ||
           !strcmp(f, "finished_ms");
}

static json_t *job_record(const char *id, const redisReply *r)
{
    /* Fixed order first, so records read alike. */
    static const char *const order[] = {"status", "attempts", "created_ms", "started_ms",
                                        "finished_ms", "worker", "spec", "error",
                                        "stdout", "stderr", "usage"};
    json_t *rec = json_pack("{s:s}", "id", id);
    for (size_t k = 0; k < ARRAY_SIZE(order); k++)
        json_object_set_new(rec, order[k], json_null());
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str;
        const redisReply *v = r->element[i + 1];
        json_t *val;
        if (!strcmp(f, "result"))
            continue;
        if (json_field(f)) {
            val = json_loadb(v->str, v->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (!val)
                val = json_stringn(v->str, v->len);
        } else if (int_field(f)) {
            val = json_integer(strtoll(v->str, NULL, 10));
        } else {
            val = json_stringn(v->str, v->len);
        }
        json_object_set_new(rec, f, val ? val : json_null());
    }
    return rec;
}

/* Sends a job record with its result spliced in as stored: re-encoding it
 * through jansson would print floats with 17 digits and cost a full
 * parse-and-dump of results that may be megabytes long. */
static void send_job(struct evhttp_request *req, const char *id, const redisReply *r)
{
    const redisReply *result = NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, "result"))
            result = r->element[i + 1];
    json_t *rec = job_record(id, r);
    char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(rec);
    struct evbuffer *buf = evbuffer_new();
    if (!s || !buf) {
        free(s);
        if (buf)
            evbuffer_free(buf);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    /* A result written by another backend straight into Redis is checked:
     * the response must stay valid JSON. */
    json_t *check =
        result ? json_loadb(result->str, result->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
    evbuffer_add(buf, s, strlen(s) - 1);
    evbuffer_add_printf(buf, ",\"result\":");
    if (check)
        evbuffer_add(buf, result->str, result->len);
    else
        evbuffer_add(buf, "null", 4);
    evbuffer_add(buf, "}\n", 2);
    json_decref(check);
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, reason(200), buf);
    evbuffer_free(buf);
}

static void on_job(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    (void)ac;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        send_redis_down(p->req);
    else if (r->elements == 0)
        send_error(p->req, 404, "no job with id '%s'", p->id);
    else
        send_job(p->req, p->id, r);
    free(p);
}

static void handle_get_job(struct api *a, struct evhttp_request *req, const char *id)
{
    if (!util_valid_id(id)) {
        send_error(req, 404, "no job with id '%.64s'", id);
        return;
    }
    if (!a->redis_ready) {
        send_redis_down(req);
        return;
    }
    struct pending *p = pending_new(a, req, id);
    _cleanup_free_ char *key = queue_job_key(&a->names, id);
    if (!p || !key || redisAsyncCommand(a->rc, on_job, p, "HGETALL %s", key) != REDIS_OK) {
        free(p);
        send_redis_down(req);
    }
}

static void on_stats(redisReply *r, void *priv)
{
    struct pending *p = priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        send_redis_down(p->req);
    } else {
        send_json(p->req, 200,
                  json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "queue", p->api->names.queue,
                            "pending", (json_int_t)r->element[0]->integer, "processing",
                            (json_int_t)r->element[1]->integer, "scheduled",
                            (json_int_t)r->element[2]->integer, "dead",
                            (json_int_t)r->element[3]->integer, "workers",
                            (json_int_t)r->element[4]->integer));
    }
    free(p);
}

static void handle_queue(struct api *a, struct evhttp_request *req)
{
    if (!a->redis_ready) {
        send_redis_down(req);
        return;
    }
    struct pending *p = pending_new(a, req, NULL);
    const char *argv[] = {a->names.queue, a->names.workers, a->names.scheduled, a->names.dead,
                          a->names.processing_prefix};
    if (!p || queue_async_eval(a->rc, &a->shas, QS_STATS, 4, (int)ARRAY_SIZE(argv), argv, NULL,
                               on_stats, p) < 0) {
        free(p);
        send_redis_down(req);
    }
}

static void handle_healthz(struct api *a, struct evhttp_request *req)
{
    send_json(req, a->redis_ready ? 200 : 503,
              json_pack("{s:s, s:b, s:s}", "status", a->redis_ready ? "ok" : "degraded", "redis",
                        a->redis_ready, "version", STRATQ_VERSION));
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    default:
        return "?";
    }
}

static void method_not_allowed(struct evhttp_request *req, const char *path, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    send_error(req, 405, "%s is not allowed on %s; use %s",
               method_name(evhttp_request_get_command(req)), path, allow);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct api *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);

    if (!path) {
        send_error(req, 400, "bad request URI");
        return;
    }
    if (!strcmp(path, "/healthz")) {
        if (m == EVHTTP_REQ_GET)
            handle_healthz(a, req);
        else
            method_not_allowed(req, path, "GET");
    } else if (!strcmp(path, "/v1/jobs")) {
        if (m == EVHTTP_REQ_POST)
            handle_submit(a, req);
        else
            method_not_allowed(req, path, "POST");
    } else if (!strncmp(path, "/v1/jobs/", 9) && path[9] && !strchr(path + 9, '/')) {
        if (m == EVHTTP_REQ_GET)
            handle_get_job(a, req, path + 9);
        else
            method_not_allowed(req, path, "GET");
    } else if (!strcmp(path, "/v1/queue")) {
        if (m == EVHTTP_REQ_GET)
            handle_queue(a, req);
        else
            method_not_allowed(req, path, "GET");
    } else {
        send_error(req, 404, "no route %s %.200s", method_name(m), path);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct api *a = arg;
    (void)what;
    log_info("stopping", "{s:i}", "signal", (int)sig);
    event_base_loopexit(a->base, NULL);
}

int api_main(int argc, char **argv)
{
    struct api a = {.reconnect_ms = 100};
    char err[256];
    char **args;
    int nargs, rc = 1;

    log_set_component("api");
    int r = config_load(CMD_API, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(CMD_API, "stratq api [options]",
                          "Serves the HTTP/JSON API: submit jobs, read their status and results.");
        config_free();
        return 0;
    }
    if (r < 0 || nargs > 0 || log_set_level_name(config_str(CFG_LOG_LEVEL)) < 0) {
        fprintf(stderr, "stratq api: %s\n",
                r < 0 ? err : nargs ? "takes no arguments" : "bad --log-level");
        config_free();
        return 2;
    }
    if (queue_url_parse(config_str(CFG_REDIS_URL), &a.url, err, sizeof(err)) < 0) {
        fprintf(stderr, "stratq api: %s\n", err);
        config_free();
        return 2;
    }
    a.max_body = (size_t)config_int(CFG_MAX_BODY);
    a.lim = (struct job_limits){config_int(CFG_DEFAULT_TIMEOUT), config_int(CFG_MAX_TIMEOUT),
                                config_int(CFG_DEFAULT_MEMORY), config_int(CFG_MAX_MEMORY)};
    signal(SIGPIPE, SIG_IGN);
    if (queue_names_init(&a.names, config_str(CFG_QUEUE), config_str(CFG_PREFIX)) < 0)
        goto out;
    a.base = event_base_new();
    a.http = a.base ? evhttp_new(a.base) : NULL;
    if (!a.http)
        goto out;
    /* evhttp refuses bodies past its own limit with a bare 413; let bodies
     * up to twice ours through so most oversized requests get our JSON 413
     * naming the limit. */
    evhttp_set_max_body_size(a.http, (ev_ssize_t)a.max_body * 2);
    evhttp_set_allowed_methods(a.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                           EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a.http, on_request, &a);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
        a.http, config_str(CFG_API_BIND), (ev_uint16_t)config_int(CFG_API_PORT));
    if (!bound) {
        log_error("cannot listen", "{s:s, s:I}", "bind", config_str(CFG_API_BIND), "port",
                  (json_int_t)config_int(CFG_API_PORT));
        fprintf(stderr, "stratq api: cannot listen on %s:%lld (is the port in use?)\n",
                config_str(CFG_API_BIND), config_int(CFG_API_PORT));
        goto out;
    }
    a.reconnect_ev = evtimer_new(a.base, on_reconnect_timer, &a);
    a.sig_ev[0] = evsignal_new(a.base, SIGTERM, on_signal, &a);
    a.sig_ev[1] = evsignal_new(a.base, SIGINT, on_signal, &a);
    event_add(a.sig_ev[0], NULL);
    event_add(a.sig_ev[1], NULL);
    api_connect(&a);
    log_info("API listening", "{s:s, s:I, s:s, s:s}", "bind", config_str(CFG_API_BIND), "port",
             (json_int_t)config_int(CFG_API_PORT), "queue", a.names.queue, "auth",
             "none (loopback use)");
    event_base_dispatch(a.base);
    rc = 0;
out:
    if (a.rc) {
        a.rc->data = &a;
        redisAsyncFree(a.rc);
    }
    for (int i = 0; i < 2; i++)
        if (a.sig_ev[i])
            event_free(a.sig_ev[i]);
    if (a.reconnect_ev)
        event_free(a.reconnect_ev);
    if (a.http)
        evhttp_free(a.http);
    if (a.base)
        event_base_free(a.base);
    queue_names_free(&a.names);
    queue_url_free(&a.url);
    config_free();
    return rc;
}

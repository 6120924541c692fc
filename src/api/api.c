#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/util.h"
#include "internal.h"

/* --- Responses ----------------------------------------------------------- */

const char *api_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return code < 500 ? "Client Error" : "Server Error";
    }
}

void api_send_json(struct evhttp_request *req, int code, json_t *body)
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
    evhttp_send_reply(req, code, api_reason(code), buf);
    evbuffer_free(buf);
}

static void vsend_error(struct evhttp_request *req, int code, const char *fmt, va_list ap)
{
    char msg[700];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (code == 503)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    api_send_json(req, code, json_pack("{s:s}", "error", msg));
}

void api_send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsend_error(req, code, fmt, ap);
    va_end(ap);
}

void api_send_unavailable(struct evhttp_request *req)
{
    api_send_error(req, 503, "Redis is unavailable; retry shortly");
}

/* --- Query strings ------------------------------------------------------- */

static bool query_get(struct evhttp_request *req, const char *name, char *buf, size_t len)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    bool found = false;
    if (!q || evhttp_parse_query_str(q, &params) != 0)
        return false;
    const char *v = evhttp_find_header(&params, name);
    if (v) {
        snprintf(buf, len, "%s", v);
        found = true;
    }
    evhttp_clear_headers(&params);
    return found;
}

bool api_query_str(struct evhttp_request *req, const char *name, char *buf, size_t len)
{
    return query_get(req, name, buf, len);
}

int api_query_int(struct evhttp_request *req, const char *name, long long def, long long min,
                  long long max, long long *ret)
{
    char buf[64];
    if (!query_get(req, name, buf, sizeof(buf))) {
        *ret = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end || v < min || v > max) {
        api_send_error(req, 400, "query parameter '%s' must be an integer from %lld to %lld", name,
                       min, max);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

/* --- Requests waiting for Redis ------------------------------------------ */

static void on_op_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    log_warn("Redis did not answer in time", "{s:i}", "timeout_ms", API_REDIS_TIMEOUT_MS);
    pending_error(p, 503, "Redis did not answer within %d ms; retry shortly", API_REDIS_TIMEOUT_MS);
    pending_done(p);
}

struct pending *pending_new(struct api *a, struct evhttp_request *req, enum route_id route,
                            const char *id)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        api_send_error(req, 500, "out of memory");
        return NULL;
    }
    p->api = a;
    p->req = req;
    p->route = route;
    snprintf(p->id, sizeof(p->id), "%s", id ? id : "");
    p->op_timer = evtimer_new(a->base, on_op_timeout, p);
    if (!p->op_timer) {
        free(p);
        api_send_error(req, 500, "out of memory");
        return NULL;
    }
    return p;
}

void pending_done(struct pending *p)
{
    if (!p->answered || p->inflight > 0)
        return;
    if (p->waiting)
        events_remove_waiter(p->api, p);
    if (p->op_timer)
        event_free(p->op_timer);
    if (p->wait_timer)
        event_free(p->wait_timer);
    json_decref(p->items);
    free(p);
}

static void pending_answered(struct pending *p)
{
    p->answered = true;
    p->req = NULL;
    evtimer_del(p->op_timer);
    if (p->wait_timer)
        evtimer_del(p->wait_timer);
    if (p->waiting)
        events_remove_waiter(p->api, p);
}

void pending_reply(struct pending *p, int code, json_t *body)
{
    if (p->answered) {
        json_decref(body);
        return;
    }
    api_send_json(p->req, code, body);
    pending_answered(p);
}

void pending_reply_raw(struct pending *p, int code, struct evbuffer *body, const char *type)
{
    if (p->answered)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type", type);
    evhttp_send_reply(p->req, code, api_reason(code), body);
    pending_answered(p);
}

void pending_error(struct pending *p, int code, const char *fmt, ...)
{
    va_list ap;
    if (p->answered)
        return;
    va_start(ap, fmt);
    vsend_error(p->req, code, fmt, ap);
    va_end(ap);
    pending_answered(p);
}

/* Calls the handler of a reply, unless its request was answered meanwhile. */
static void dispatch(struct pending *p, pending_handler *h, void *ctx, redisReply *r)
{
    p->inflight--;
    if (p->inflight == 0)
        evtimer_del(p->op_timer);
    if (!p->answered) {
        if (r && r->type == REDIS_REPLY_ERROR &&
            !strncmp(r->str, QUEUE_NOREPLICAS, strlen(QUEUE_NOREPLICAS))) {
            /* Not acknowledged: it may be lost in a failover. A retry
             * with the same client id is safe. */
            pending_error(p, 503, "not acknowledged: %s; retry shortly", r->str);
        } else if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                log_error("Redis error", "{s:s}", "error", r->str);
            pending_error(p, 503, "Redis failed the request; retry shortly");
        } else {
            h(p, r, ctx);
        }
    }
    pending_done(p);
}

struct call {
    struct pending *p;
    pending_handler *h;
    void *ctx;
};

static void on_eval_reply(redisReply *reply, void *priv)
{
    struct call *c = priv;
    dispatch(c->p, c->h, c->ctx, reply);
    free(c);
}

static struct call *call_start(struct pending *p, pending_handler *h, void *ctx)
{
    struct api *a = p->api;
    struct call *c;
    if (!a->redis_ready || !a->rc || !(c = malloc(sizeof(*c)))) {
        pending_error(p, 503, "Redis is unavailable; retry shortly");
        return NULL;
    }
    c->p = p;
    c->h = h;
    c->ctx = ctx;
    p->inflight++;
    /* A submit may also WAIT for the replicas. */
    int ms = API_REDIS_TIMEOUT_MS + (a->url.min_replicas > 0 ? a->url.wait_timeout_ms : 0);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(p->op_timer, &tv);
    return c;
}

static void call_failed(struct pending *p, struct call *c)
{
    free(c);
    p->inflight--;
    pending_error(p, 503, "Redis is unavailable; retry shortly");
}

void pending_call(struct pending *p, pending_handler *h, void *ctx, struct queue_call *c,
                  int built_rc)
{
    if (built_rc < 0) {
        pending_error(p, 503,
                      built_rc == -EPROTO ? "unexpected reply from Redis" : "out of memory");
        return;
    }
    struct call *call = call_start(p, h, ctx);
    if (call && queue_async_call(p->api->rc, c, on_eval_reply, call) < 0)
        call_failed(p, call);
    queue_call_free(c);
}

/* --- The command connection to Redis --------------------------------------- */

/* src/queue/conn.c connects, reconnects and follows a cluster's redirects;
 * the API hears when Redis becomes usable (/healthz 200) and when it went
 * (requests get 503 until it is back). */
static void on_redis_ready(void *priv)
{
    struct api *a = priv;
    a->redis_ready = true;
}

static void on_redis_lost(void *priv)
{
    struct api *a = priv;
    a->redis_ready = false;
}

/* --- Connections, auth, routing ------------------------------------------ */

/* A connection being served, found by its evhttp_connection pointer. */
struct conn {
    struct evhttp_connection *evcon;
    struct conn *next;
};

static size_t ptr_bucket(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= 0xed5ad4bbu;
    return (size_t)(v ^ (v >> 11)) % WAITER_BUCKETS;
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    struct api *a = arg;
    struct conn **pp = &a->conns[ptr_bucket(evcon)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->evcon == evcon) {
            struct conn *c = *pp;
            *pp = c->next;
            free(c);
            a->nconns--;
            break;
        }
    }
    events_connection_closed(a, evcon);
}

/* Counts the request's connection the first time it is seen. Returns false
 * when that makes one connection too many. */
static bool track_connection(struct api *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return true;
    size_t b = ptr_bucket(evcon);
    for (struct conn *c = a->conns[b]; c; c = c->next)
        if (c->evcon == evcon)
            return true;
    if (a->nconns >= a->max_conns)
        return false;
    struct conn *c = malloc(sizeof(*c));
    if (!c)
        return false;
    c->evcon = evcon;
    c->next = a->conns[b];
    a->conns[b] = c;
    a->nconns++;
    evhttp_connection_set_closecb(evcon, on_connection_close, a);
    return true;
}

/* Compares a presented token with every configured one in time that does
 * not depend on where they differ. */
static bool token_ok(const struct api *a, const char *given, size_t len)
{
    unsigned ok = 0;
    for (size_t i = 0; i < a->ntokens; i++) {
        const char *t = a->tokens[i];
        size_t tl = strlen(t);
        unsigned diff = (unsigned)(tl ^ len);
        for (size_t k = 0; k < len; k++)
            diff |= (unsigned char)given[k] ^ (unsigned char)(k < tl ? t[k] : 0);
        ok |= diff == 0;
    }
    return ok != 0;
}

/* Returns true when the request may go on; else it has been answered. */
static bool check_auth(struct api *a, struct evhttp_request *req)
{
    if (a->ntokens == 0)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"stratq\"");
        api_send_error(req, 401, "this route needs 'Authorization: Bearer <token>'");
        return false;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (!token_ok(a, tok, strlen(tok))) {
        api_send_error(req, 403, "the bearer token is not valid");
        return false;
    }
    return true;
}

static void handle_healthz(struct api *a, struct evhttp_request *req)
{
    api_send_json(req, a->redis_ready ? 200 : 503,
                  json_pack("{s:s, s:b, s:s}", "status", a->redis_ready ? "ok" : "degraded",
                            "redis", a->redis_ready, "version", STRATQ_VERSION));
}

static void handle_readyz(struct api *a, struct evhttp_request *req)
{
    bool ready = a->redis_ready && a->sub_ready;
    if (!ready)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    json_t *body = json_pack("{s:b, s:b, s:b}", "ready", ready, "redis", a->redis_ready, "events",
                             a->sub_ready);
    /* Why Redis is not usable: a wrong password, a certificate that
     * does not verify, no primary during a failover. */
    if (body && !a->redis_ready && a->rc && queue_async_error(a->rc)[0])
        json_object_set_new(body, "redis_error", json_string(queue_async_error(a->rc)));
    api_send_json(req, ready ? 200 : 503, body);
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
        return "OTHER";
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct api *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *method = method_name(evhttp_request_get_command(req));
    struct route_match m;
    char allow[64];

    if (!track_connection(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        api_send_error(req, 503, "too many connections (STRATQ_MAX_CONNECTIONS is %ld)",
                       a->max_conns);
        return;
    }
    if (!path) {
        api_send_error(req, 400, "bad request URI");
        return;
    }
    int r = router_match(method, path, &m, allow, sizeof(allow));
    if (r == -ENOENT) {
        api_send_error(req, 404, "no route %s %.200s", method, path);
        return;
    }
    if (r == -EPERM) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        api_send_error(req, 405, "%s is not allowed on %.200s; use %s", method, path, allow);
        return;
    }
    if (router_routes[m.route].needs_auth && !check_auth(a, req))
        return;

    switch (m.route) {
    case ROUTE_HEALTHZ:
        handle_healthz(a, req);
        break;
    case ROUTE_READYZ:
        handle_readyz(a, req);
        break;
    case ROUTE_METRICS:
        metrics_get(a, req);
        break;
    case ROUTE_QUEUE:
        jobs_queue(a, req);
        break;
    case ROUTE_WORKERS:
        jobs_workers(a, req);
        break;
    case ROUTE_EVENTS:
        events_sse(a, req);
        break;
    case ROUTE_JOBS_LIST:
        jobs_list(a, req);
        break;
    case ROUTE_JOBS_SUBMIT:
        jobs_submit(a, req);
        break;
    case ROUTE_JOBS_BATCH:
        jobs_batch(a, req);
        break;
    case ROUTE_JOB_GET:
    case ROUTE_JOB_RESULT:
        jobs_get(a, req, m.route, m.id);
        break;
    case ROUTE_JOB_CANCEL:
        jobs_cancel(a, req, m.id);
        break;
    case ROUTE_JOB_LOGS:
        jobs_logs(a, req, m.id);
        break;
    case ROUTE_JOB_RETRY:
        jobs_retry(a, req, m.id);
        break;
    case ROUTE_DATASETS:
        jobs_datasets(a, req);
        break;
    case ROUTE_STATUSES:
        jobs_statuses(a, req);
        break;
    case ROUTE_UI_INDEX:
        ui_serve(a, req, "index.html");
        break;
    case ROUTE_UI_FILE:
        ui_serve(a, req, m.id);
        break;
    case ROUTE__COUNT:
        break;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct api *a = arg;
    (void)what;
    log_info("stopping", "{s:i}", "signal", (int)sig);
    event_base_loopexit(a->base, NULL);
}

/* Reads the tokens file: one token per line; blank lines and #comments are
 * skipped. Tokens are never logged. */
static int load_tokens(struct api *a, const char *path, char *err, size_t errlen)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = util_read_file(path, 1 << 20, &text, &len);
    if (r < 0) {
        snprintf(err, errlen, "cannot read STRATQ_API_TOKENS_FILE %s: %s", path, strerror(-r));
        return r;
    }
    for (char *save, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n || line[0] == '#')
            continue;
        char **nt = realloc(a->tokens, (a->ntokens + 1) * sizeof(char *));
        if (!nt)
            return -ENOMEM;
        a->tokens = nt;
        a->tokens[a->ntokens] = strdup(line);
        if (!a->tokens[a->ntokens])
            return -ENOMEM;
        a->ntokens++;
    }
    if (a->ntokens == 0) {
        snprintf(err, errlen, "STRATQ_API_TOKENS_FILE %s holds no token", path);
        return -EINVAL;
    }
    return 0;
}

static bool is_loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strcmp(addr, "localhost");
}

static void free_api(struct api *a)
{
    metrics_stop(a);
    events_stop(a);
    if (a->rc) {
        struct queue_async *rc = a->rc;
        a->rc = NULL;
        queue_async_free(rc);
    }
    for (int i = 0; i < 2; i++)
        if (a->sig_ev[i])
            event_free(a->sig_ev[i]);
    if (a->http)
        evhttp_free(a->http);
    for (int i = 0; i < WAITER_BUCKETS; i++) {
        while (a->conns[i]) {
            struct conn *c = a->conns[i];
            a->conns[i] = c->next;
            free(c);
        }
    }
    if (a->base)
        event_base_free(a->base);
    for (size_t i = 0; i < a->ntokens; i++) {
        explicit_bzero(a->tokens[i], strlen(a->tokens[i]));
        free(a->tokens[i]);
    }
    free(a->tokens);
    queue_names_free(&a->names);
    queue_url_free(&a->url);
    queue_scripts_free();
}

int api_main(int argc, char **argv)
{
    static struct api a;
    char err[512];
    char **args;
    int nargs, rc = 1;

    log_set_component("api");
    if (argc == 1 && !strcmp(argv[0], "--routes")) {
        for (int i = 0; i < ROUTE__COUNT; i++)
            printf("%s %s\n", router_routes[i].method, router_routes[i].pattern);
        return 0;
    }
    /* The KEYS and ARGV of every script, as docs/protocol.md shows them
     * (tests/integration/test_lua.py compares the two). */
    if (argc == 1 && !strcmp(argv[0], "--scripts")) {
        queue_scripts_markdown(stdout);
        return 0;
    }
    /* A script exactly as it is sent to Redis, for tests/integration/test_lua.py. */
    if (argc == 2 && !strcmp(argv[0], "--lua")) {
        for (int i = 0; i < QS__COUNT; i++) {
            if (!strcmp(argv[1], queue_script_name(i))) {
                fputs(queue_script_source(i), stdout);
                queue_scripts_free();
                return 0;
            }
        }
        fprintf(stderr, "stratq api: no Lua script '%s'\n", argv[1]);
        return 2;
    }
    int r = config_load(CMD_API, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(CMD_API,
                          "stratq api [options] | stratq api --routes | stratq api --lua SCRIPT",
                          "Serves the HTTP/JSON API. --routes prints its routes; --lua a Lua "
                          "script as it is sent to Redis.");
        config_free();
        return 0;
    }
    if (r < 0 || nargs > 0 || log_set_level_name(config_str(CFG_LOG_LEVEL)) < 0) {
        fprintf(stderr, "stratq api: %s\n",
                r < 0   ? err
                : nargs ? "takes no arguments"
                        : "bad --log-level");
        config_free();
        return 2;
    }
    if (queue_url_load(&a.url, err, sizeof(err)) < 0) {
        fprintf(stderr, "stratq api: %s\n", err);
        config_free();
        return 2;
    }
    const char *bind = config_str(CFG_API_BIND);
    if (config_str(CFG_TOKENS_FILE)[0]) {
        if (load_tokens(&a, config_str(CFG_TOKENS_FILE), err, sizeof(err)) < 0) {
            fprintf(stderr, "stratq api: %s\n", err);
            goto out;
        }
    } else if (!is_loopback(bind)) {
        fprintf(stderr,
                "stratq api: without STRATQ_API_TOKENS_FILE the API serves loopback only; "
                "set a tokens file to listen on %s\n",
                bind);
        rc = 2;
        goto out;
    }
    a.max_body = (size_t)config_int(CFG_MAX_BODY);
    a.max_conns = config_int(CFG_MAX_CONNECTIONS);
    a.failed_ttl = config_int(CFG_FAILED_RESULT_TTL);
    a.lim = (struct job_limits){config_int(CFG_DEFAULT_TIMEOUT), config_int(CFG_MAX_TIMEOUT),
                                config_int(CFG_DEFAULT_MEMORY), config_int(CFG_MAX_MEMORY)};
    signal(SIGPIPE, SIG_IGN);
    /* Each connection is an fd: let the soft limit go as high as the hard one
     * so that STRATQ_MAX_CONNECTIONS, not EMFILE, is what bounds them. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (queue_names_init(&a.names, config_str(CFG_QUEUE), config_str(CFG_PREFIX), &a.url, err,
                         sizeof(err)) < 0) {
        fprintf(stderr, "stratq api: %s\n", err);
        goto out;
    }
    a.base = event_base_new();
    a.http = a.base ? evhttp_new(a.base) : NULL;
    if (!a.http)
        goto out;
    /* evhttp refuses bodies past its own limit with a bare 413; let bodies
     * up to twice ours through so most oversized requests get our JSON 413
     * naming the limit. */
    evhttp_set_max_body_size(a.http, (ev_ssize_t)a.max_body * 2);
    evhttp_set_timeout(a.http, (int)config_int(CFG_CLIENT_TIMEOUT));
    evhttp_set_allowed_methods(a.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                           EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH |
                                           EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a.http, on_request, &a);
    if (!evhttp_bind_socket_with_handle(a.http, bind, (ev_uint16_t)config_int(CFG_API_PORT))) {
        log_error("cannot listen", "{s:s, s:I}", "bind", bind, "port",
                  (json_int_t)config_int(CFG_API_PORT));
        fprintf(stderr, "stratq api: cannot listen on %s:%lld (is the port in use?)\n", bind,
                config_int(CFG_API_PORT));
        goto out;
    }
    a.sig_ev[0] = evsignal_new(a.base, SIGTERM, on_signal, &a);
    a.sig_ev[1] = evsignal_new(a.base, SIGINT, on_signal, &a);
    event_add(a.sig_ev[0], NULL);
    event_add(a.sig_ev[1], NULL);
    static const struct queue_async_ops ops = {on_redis_ready, on_redis_lost};
    if (queue_async_new(a.base, &a.url, "stratq-api", &ops, &a, &a.rc) < 0)
        goto out;
    if (metrics_start(&a) < 0 || events_start(&a) < 0)
        goto out;
    log_info("API listening", "{s:s, s:I, s:s, s:s}", "bind", bind, "port",
             (json_int_t)config_int(CFG_API_PORT), "queue", a.names.queue, "auth",
             a.ntokens ? "bearer tokens" : "off: no tokens file, serving loopback only");
    event_base_dispatch(a.base);
    rc = 0;
out:
    free_api(&a);
    config_free();
    return rc;
}

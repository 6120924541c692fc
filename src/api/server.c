/* The API's server core (src/api/server.h): listening, connections and
 * their limit, auth, routing to the handlers route modules registered, the
 * command connection to Redis and the requests that wait for it. */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/log.h"
#include "../common/util.h"
#include "http.h"

#define CONN_BUCKETS 4096
#define MAX_CLOSE_HOOKS 4

/* A connection being served, found by its evhttp_connection pointer. */
struct conn {
    struct evhttp_connection *evcon;
    struct conn *next;
};

struct handler {
    server_handler *fn;
    void *ctx;
};

struct close_hook {
    server_close_fn *fn;
    void *ctx;
};

struct server {
    struct event_base *base;
    struct evhttp *http;
    /* Commands go over rc (src/queue/conn.h owns connecting, reconnects
     * and cluster redirects). */
    struct queue_async *rc;
    bool redis_ready;
    struct queue_url url;
    struct queue_names names;
    char bind[256];
    int port;
    struct event *sig_ev[2];
    /* Auth: tokens from STRATQ_API_TOKENS_FILE; none means auth is off. */
    struct server_token *tokens;
    size_t ntokens;
    /* Connections being served, for STRATQ_MAX_CONNECTIONS. */
    struct conn *conns[CONN_BUCKETS];
    long nconns, max_conns;
    struct handler handlers[ROUTE__COUNT];
    struct close_hook close_hooks[MAX_CLOSE_HOOKS];
    /* Every request alive, so that server_stop can drop those that wait. */
    struct pending *pendings;
};

/* --- Requests waiting for Redis ------------------------------------------ */

static void on_op_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    log_warn("Redis did not answer in time", "{s:i}", "timeout_ms", SERVER_REDIS_TIMEOUT_MS);
    pending_error(p, 503, "Redis did not answer within %d ms; retry shortly",
                  SERVER_REDIS_TIMEOUT_MS);
    pending_done(p);
}

struct pending *pending_new(struct server *s, struct evhttp_request *req, size_t size,
                            const struct pending_ops *ops)
{
    struct pending *p = calloc(1, size < sizeof(*p) ? sizeof(*p) : size);
    if (!p) {
        http_send_error(req, 500, "out of memory");
        return NULL;
    }
    p->srv = s;
    p->req = req;
    p->ops = ops;
    p->op_timer = evtimer_new(s->base, on_op_timeout, p);
    if (!p->op_timer) {
        free(p);
        http_send_error(req, 500, "out of memory");
        return NULL;
    }
    p->next = s->pendings;
    if (p->next)
        p->next->prev = p;
    s->pendings = p;
    return p;
}

void pending_done(struct pending *p)
{
    if (!p->answered || p->inflight > 0)
        return;
    if (p->ops && p->ops->release)
        p->ops->release(p);
    if (p->prev)
        p->prev->next = p->next;
    else
        p->srv->pendings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->op_timer)
        event_free(p->op_timer);
    free(p);
}

static void pending_answered(struct pending *p)
{
    p->answered = true;
    p->req = NULL;
    evtimer_del(p->op_timer);
    if (p->ops && p->ops->answered)
        p->ops->answered(p);
}

void pending_reply(struct pending *p, int code, json_t *body)
{
    if (p->answered) {
        json_decref(body);
        return;
    }
    http_send_json(p->req, code, body);
    pending_answered(p);
}

void pending_reply_raw(struct pending *p, int code, struct evbuffer *body, const char *type)
{
    if (p->answered)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type", type);
    evhttp_send_reply(p->req, code, http_reason(code), body);
    pending_answered(p);
}

void pending_error(struct pending *p, int code, const char *fmt, ...)
{
    va_list ap;
    if (p->answered)
        return;
    va_start(ap, fmt);
    http_vsend_error(p->req, code, fmt, ap);
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
    struct server *s = p->srv;
    struct call *c;
    if (!s->redis_ready || !s->rc || !(c = malloc(sizeof(*c)))) {
        pending_error(p, 503, "Redis is unavailable; retry shortly");
        return NULL;
    }
    c->p = p;
    c->h = h;
    c->ctx = ctx;
    p->inflight++;
    /* A submit may also WAIT for the replicas. */
    int ms = SERVER_REDIS_TIMEOUT_MS + (s->url.min_replicas > 0 ? s->url.wait_timeout_ms : 0);
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
    if (call && queue_async_call(p->srv->rc, c, on_eval_reply, call) < 0)
        call_failed(p, call);
    queue_call_free(c);
}

static void on_worker_ids(struct pending *p, redisReply *r, void *ctx)
{
    const struct pending_workers_step *step = ctx;
    struct queue_call c;
    pending_call(p, step->then, NULL, &c, step->build(&c, &p->srv->names, r));
}

void pending_call_workers(struct pending *p, const struct pending_workers_step *step)
{
    struct queue_call c;
    pending_call(p, on_worker_ids, (void *)step, &c, queue_build_worker_ids(&c, &p->srv->names));
}

void pending_start_workers(struct server *s, struct evhttp_request *req,
                           const struct pending_workers_step *step)
{
    struct pending *p = pending_new(s, req, sizeof(*p), NULL);
    if (!p)
        return;
    pending_call_workers(p, step);
    pending_done(p);
}

/* --- The command connection to Redis --------------------------------------- */

/* src/queue/conn.c connects, reconnects and follows a cluster's redirects;
 * the API hears when Redis becomes usable (/healthz 200) and when it went
 * (requests get 503 until it is back). */
static void on_redis_ready(void *priv)
{
    struct server *s = priv;
    s->redis_ready = true;
}

static void on_redis_lost(void *priv)
{
    struct server *s = priv;
    s->redis_ready = false;
}

struct event_base *server_base(const struct server *s)
{
    return s->base;
}

const struct queue_names *server_names(const struct server *s)
{
    return &s->names;
}

const struct queue_url *server_url(const struct server *s)
{
    return &s->url;
}

struct queue_async *server_redis(const struct server *s)
{
    return s->redis_ready ? s->rc : NULL;
}

const char *server_redis_error(const struct server *s)
{
    return s->rc ? queue_async_error(s->rc) : "";
}

/* --- Connections ------------------------------------------------------------ */

static size_t ptr_bucket(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= 0xed5ad4bbu;
    return (size_t)(v ^ (v >> 11)) % CONN_BUCKETS;
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    struct server *s = arg;
    struct conn **pp = &s->conns[ptr_bucket(evcon)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->evcon == evcon) {
            struct conn *c = *pp;
            *pp = c->next;
            free(c);
            s->nconns--;
            break;
        }
    }
    for (int i = 0; i < MAX_CLOSE_HOOKS; i++)
        if (s->close_hooks[i].fn)
            s->close_hooks[i].fn(s->close_hooks[i].ctx, evcon);
}

int server_on_close(struct server *s, server_close_fn *fn, void *ctx)
{
    for (int i = 0; i < MAX_CLOSE_HOOKS; i++) {
        if (!s->close_hooks[i].fn) {
            s->close_hooks[i] = (struct close_hook){fn, ctx};
            return 0;
        }
    }
    return -ENOSPC;
}

/* Counts the request's connection the first time it is seen. Returns false
 * when that makes one connection too many. */
static bool track_connection(struct server *s, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return true;
    size_t b = ptr_bucket(evcon);
    for (struct conn *c = s->conns[b]; c; c = c->next)
        if (c->evcon == evcon)
            return true;
    if (s->nconns >= s->max_conns)
        return false;
    struct conn *c = malloc(sizeof(*c));
    if (!c)
        return false;
    c->evcon = evcon;
    c->next = s->conns[b];
    s->conns[b] = c;
    s->nconns++;
    evhttp_connection_set_closecb(evcon, on_connection_close, s);
    return true;
}

/* --- Auth ------------------------------------------------------------------- */

/* Compares a presented token with every configured one in time that does
 * not depend on where they differ. The index of the one it is, or -1. */
static long token_find(const struct server *s, const char *given, size_t len)
{
    long found = -1;
    for (size_t i = 0; i < s->ntokens; i++) {
        const char *t = s->tokens[i].secret;
        size_t tl = strlen(t);
        unsigned diff = (unsigned)(tl ^ len);
        for (size_t k = 0; k < len; k++)
            diff |= (unsigned char)given[k] ^ (unsigned char)(k < tl ? t[k] : 0);
        long mask = -(long)(diff == 0);
        found = (found & ~mask) | ((long)i & mask);
    }
    return found;
}

/* Returns true when the request may go on; else it has been answered. The
 * tenant its token names goes to m->tenant. */
static bool check_auth(struct server *s, struct evhttp_request *req, struct route_match *m)
{
    if (s->ntokens == 0)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"stratq\"");
        http_send_error(req, 401, "this route needs 'Authorization: Bearer <token>'");
        return false;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    long i = token_find(s, tok, strlen(tok));
    if (i < 0) {
        http_send_error(req, 403, "the bearer token is not valid");
        return false;
    }
    snprintf(m->tenant, sizeof(m->tenant), "%s", s->tokens[i].tenant);
    m->max_priority = s->tokens[i].max_priority;
    return true;
}

/* One `key=value` of a tokens file line after the token (tenant=,
 * max_running=) into t. 0, or -EINVAL with err naming it. */
static int token_option(struct server_token *t, const char *opt, size_t lineno, char *err,
                        size_t errlen)
{
    const char *v = strchr(opt, '=');
    char *end;
    if (v && !strncmp(opt, "tenant=", 7) && util_valid_tenant(v + 1)) {
        snprintf(t->tenant, sizeof(t->tenant), "%s", v + 1);
        return 0;
    }
    if (v && !strncmp(opt, "max_running=", 12)) {
        errno = 0;
        long n = strtol(v + 1, &end, 10);
        if (!errno && end != v + 1 && !*end && n >= 0 && n <= 1000000) {
            t->max_running = n;
            return 0;
        }
    }
    if (v && !strncmp(opt, "max_priority=", 13) && v[1] >= '0' && v[1] <= '9' && !v[2]) {
        t->max_priority = v[1] - '0';
        return 0;
    }
    snprintf(err, errlen,
             "STRATQ_API_TOKENS_FILE line %zu: '%.80s' is not tenant=<1-64 of "
             "[A-Za-z0-9._-]>, max_running=<0-1000000> or max_priority=<0-9>",
             lineno, opt);
    return -EINVAL;
}

/* A tokens file line: the token, then options. 0 or -errno. */
static int token_line(struct server *s, char *line, size_t lineno, char *err, size_t errlen)
{
    struct server_token *nt = realloc(s->tokens, (s->ntokens + 1) * sizeof(*nt));
    if (!nt)
        return -ENOMEM;
    s->tokens = nt;
    struct server_token *t = &s->tokens[s->ntokens];
    memset(t, 0, sizeof(*t));
    t->max_priority = 9;
    char *save, *word = strtok_r(line, " \t", &save);
    t->secret = strdup(word);
    if (!t->secret)
        return -ENOMEM;
    s->ntokens++;
    while ((word = strtok_r(NULL, " \t", &save)))
        if (token_option(t, word, lineno, err, errlen) < 0)
            return -EINVAL;
    return 0;
}

const struct server_token *server_tokens(const struct server *s, size_t *n)
{
    *n = s->ntokens;
    return s->tokens;
}

/* Reads the tokens file: one token per line, optionally followed by
 * tenant=<name> and max_running=<n>; blank lines and #comments are
 * skipped. Tokens are never logged. */
static int load_tokens(struct server *s, const char *path, char *err, size_t errlen)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = util_read_file(path, 1 << 20, &text, &len);
    if (r < 0) {
        snprintf(err, errlen, "cannot read STRATQ_API_TOKENS_FILE %s: %s", path, strerror(-r));
        return r;
    }
    size_t lineno = 0;
    for (char *rest = text, *line; (line = strsep(&rest, "\n"));) {
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n || line[0] == '#')
            continue;
        r = token_line(s, line, lineno, err, errlen);
        if (r < 0)
            return r;
    }
    if (s->ntokens == 0) {
        snprintf(err, errlen, "STRATQ_API_TOKENS_FILE %s holds no token", path);
        return -EINVAL;
    }
    return 0;
}

static bool is_loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strcmp(addr, "localhost");
}

/* Tokens from the file, or none on loopback; -EADDRNOTAVAIL for none
 * elsewhere. */
static int setup_auth(struct server *s, const struct server_settings *set, char *err, size_t errlen)
{
    if (set->tokens_file && set->tokens_file[0])
        return load_tokens(s, set->tokens_file, err, errlen);
    if (is_loopback(set->bind))
        return 0;
    snprintf(err, errlen,
             "without STRATQ_API_TOKENS_FILE the API serves loopback only; "
             "set a tokens file to listen on %s",
             set->bind);
    return -EADDRNOTAVAIL;
}

/* --- Routing ---------------------------------------------------------------- */

void server_add_routes(struct server *s, const struct server_route *routes, size_t n, void *ctx)
{
    for (size_t i = 0; i < n; i++)
        s->handlers[routes[i].id] = (struct handler){routes[i].handler, ctx};
}

int server_check_routes(const struct server *s, char *err, size_t errlen)
{
    for (int i = 0; i < ROUTE__COUNT; i++) {
        if (!s->handlers[i].fn) {
            snprintf(err, errlen, "no handler serves %s %s", router_routes[i].method,
                     router_routes[i].pattern);
            return -ENOENT;
        }
    }
    return 0;
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
    struct server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *method = method_name(evhttp_request_get_command(req));
    struct route_match m;
    char allow[64];

    if (!track_connection(s, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        http_send_error(req, 503, "too many connections (STRATQ_MAX_CONNECTIONS is %ld)",
                        s->max_conns);
        return;
    }
    if (!path) {
        http_send_error(req, 400, "bad request URI");
        return;
    }
    int r = router_match(method, path, &m, allow, sizeof(allow));
    if (r == -ENOENT) {
        http_send_error(req, 404, "no route %s %.200s", method, path);
        return;
    }
    if (r == -EPERM) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        http_send_error(req, 405, "%s is not allowed on %.200s; use %s", method, path, allow);
        return;
    }
    m.tenant[0] = '\0';
    m.max_priority = 9;
    if (router_routes[m.route].needs_auth && !check_auth(s, req, &m))
        return;
    /* server_check_routes made sure at start that every route has one. */
    const struct handler *h = &s->handlers[m.route];
    h->fn(h->ctx, req, &m);
}

/* --- Life ------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    (void)what;
    log_info("stopping", "{s:i}", "signal", (int)sig);
    event_base_loopexit(s->base, NULL);
}

/* Each connection is an fd: let the soft limit go as high as the hard one
 * so that STRATQ_MAX_CONNECTIONS, not EMFILE, is what bounds them. */
static void raise_nofile(void)
{
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
}

/* The event loop, evhttp bound to the address, and the stop signals. */
static int listen_http(struct server *s, const struct server_settings *set, char *err,
                       size_t errlen)
{
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (!s->http)
        return -ENOMEM;
    /* evhttp refuses bodies past its own limit with a bare 413; let bodies
     * up to twice ours through so most oversized requests get our JSON 413
     * naming the limit. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)set->max_body * 2);
    evhttp_set_timeout(s->http, set->client_timeout_s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(s->http, on_request, s);
    if (!evhttp_bind_socket_with_handle(s->http, set->bind, (ev_uint16_t)set->port)) {
        log_error("cannot listen", "{s:s, s:I}", "bind", set->bind, "port", (json_int_t)set->port);
        snprintf(err, errlen, "cannot listen on %s:%d (is the port in use?)", set->bind, set->port);
        return -EADDRINUSE;
    }
    s->sig_ev[0] = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_ev[1] = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!s->sig_ev[0] || !s->sig_ev[1])
        return -ENOMEM;
    event_add(s->sig_ev[0], NULL);
    event_add(s->sig_ev[1], NULL);
    return 0;
}

int server_new(const struct server_settings *set, struct queue_url *url, struct server **ret,
               char *err, size_t errlen)
{
    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *ret = s;
    err[0] = '\0';
    s->url = *url;
    memset(url, 0, sizeof(*url));
    snprintf(s->bind, sizeof(s->bind), "%s", set->bind);
    s->port = set->port;
    s->max_conns = set->max_conns;
    int r = setup_auth(s, set, err, errlen);
    if (r < 0)
        return r;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    r = queue_names_init(&s->names, set->queue, set->prefix, &s->url, err, errlen);
    if (r < 0)
        return r;
    r = listen_http(s, set, err, errlen);
    if (r < 0)
        return r;
    static const struct queue_async_ops ops = {on_redis_ready, on_redis_lost};
    return queue_async_new(s->base, &s->url, "stratq-api", &ops, s, &s->rc);
}

int server_run(struct server *s)
{
    log_info("API listening", "{s:s, s:I, s:s, s:s}", "bind", s->bind, "port", (json_int_t)s->port,
             "queue", s->names.queue, "auth",
             s->ntokens ? "bearer tokens" : "off: no tokens file, serving loopback only");
    return event_base_dispatch(s->base);
}

void server_stop(struct server *s)
{
    if (!s)
        return;
    if (s->rc) {
        struct queue_async *rc = s->rc;
        s->rc = NULL;
        queue_async_free(rc);
    }
    /* What still waits (long polls) has no reply outstanding now. It is
     * answered 503, though the reply seldom leaves before evhttp_free
     * closes its connection below: answering is what frees a request whose
     * client has gone (evhttp_free does not). */
    while (s->pendings) {
        struct pending *p = s->pendings;
        pending_error(p, 503, "the API is stopping; retry shortly");
        p->inflight = 0;
        pending_done(p);
    }
    for (int i = 0; i < 2; i++) {
        if (s->sig_ev[i])
            event_free(s->sig_ev[i]);
        s->sig_ev[i] = NULL;
    }
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
}

void server_free(struct server *s)
{
    if (!s)
        return;
    server_stop(s);
    for (int i = 0; i < CONN_BUCKETS; i++) {
        while (s->conns[i]) {
            struct conn *c = s->conns[i];
            s->conns[i] = c->next;
            free(c);
        }
    }
    if (s->base)
        event_base_free(s->base);
    for (size_t i = 0; i < s->ntokens; i++) {
        if (s->tokens[i].secret)
            explicit_bzero(s->tokens[i].secret, strlen(s->tokens[i].secret));
        free(s->tokens[i].secret);
    }
    free(s->tokens);
    queue_names_free(&s->names);
    queue_url_free(&s->url);
    free(s);
}

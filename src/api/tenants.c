#define _GNU_SOURCE
#include "tenants.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../queue/jobq.h"
#include "../queue/queue.h"
#include "http.h"
#include "router.h"
#include "server.h"

#define TENANTS_MAX 256

struct tenants {
    struct server *srv;
    struct tenant_conf conf[TENANTS_MAX];
    size_t nconf;
    struct event *push_ev;
    bool push_inflight;
    int64_t next_push_ms; /* monotonic; 0: at the next tick */
};

/* --- STRATQ_TENANTS ------------------------------------------------------- */

/* One "key=value" of an entry into c. 0 or -EINVAL. */
static int conf_option(struct tenant_conf *c, const char *opt)
{
    char *end;
    errno = 0;
    if (!strncmp(opt, "weight=", 7)) {
        double w = strtod(opt + 7, &end);
        if (!errno && end != opt + 7 && !*end && w > 0 && w <= 1000) {
            c->weight = w;
            return 0;
        }
    } else if (!strncmp(opt, "max_running=", 12)) {
        long n = strtol(opt + 12, &end, 10);
        if (!errno && end != opt + 12 && !*end && n >= 0 && n <= 1000000) {
            c->max_running = n;
            return 0;
        }
    }
    return -EINVAL;
}

/* One "name:key=value,key=value" entry (modified in place) into c. */
static int conf_entry(char *entry, struct tenant_conf *c, char *err, size_t errlen)
{
    char *colon = strchr(entry, ':');
    memset(c, 0, sizeof(*c));
    if (colon)
        *colon = '\0';
    if (!colon || (strcmp(entry, "*") != 0 && !util_valid_tenant(entry))) {
        snprintf(err, errlen,
                 "STRATQ_TENANTS: '%.80s' is not <tenant>:<settings>, a tenant being 1 to 64 of "
                 "[A-Za-z0-9._-] or '*'",
                 entry);
        return -EINVAL;
    }
    snprintf(c->name, sizeof(c->name), "%s", entry);
    for (char *save, *opt = strtok_r(colon + 1, ",", &save); opt; opt = strtok_r(NULL, ",", &save))
        if (conf_option(c, opt) < 0) {
            snprintf(err, errlen,
                     "STRATQ_TENANTS: tenant '%s': '%.80s' is not weight=<0-1000, above 0> or "
                     "max_running=<0-1000000>",
                     c->name, opt);
            return -EINVAL;
        }
    return 0;
}

int tenants_parse(const char *text, struct tenant_conf *out, size_t max, size_t *n, char *err,
                  size_t errlen)
{
    _cleanup_free_ char *copy = strdup(text ? text : "");
    *n = 0;
    if (!copy)
        return -ENOMEM;
    for (char *save, *e = strtok_r(copy, " \t\n", &save); e; e = strtok_r(NULL, " \t\n", &save)) {
        if (*n == max) {
            snprintf(err, errlen, "STRATQ_TENANTS names more than %zu tenants", max);
            return -EINVAL;
        }
        if (conf_entry(e, &out[*n], err, errlen) < 0)
            return -EINVAL;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(out[i].name, out[*n].name)) {
                snprintf(err, errlen, "STRATQ_TENANTS names tenant '%s' twice", out[i].name);
                return -EINVAL;
            }
        (*n)++;
    }
    return 0;
}

/* A token's max_running applies to its tenant unless STRATQ_TENANTS sets
 * that tenant's cap. */
static int add_token_caps(struct tenants *t, char *err, size_t errlen)
{
    size_t ntok;
    const struct server_token *tok = server_tokens(t->srv, &ntok);
    for (size_t i = 0; i < ntok; i++) {
        if (!tok[i].tenant[0] || tok[i].max_running <= 0)
            continue;
        size_t k = 0;
        while (k < t->nconf && strcmp(t->conf[k].name, tok[i].tenant) != 0)
            k++;
        if (k == t->nconf) {
            if (k == TENANTS_MAX) {
                snprintf(err, errlen, "more than %d tenants are configured", TENANTS_MAX);
                return -EINVAL;
            }
            memset(&t->conf[k], 0, sizeof(t->conf[k]));
            snprintf(t->conf[k].name, sizeof(t->conf[k].name), "%s", tok[i].tenant);
            t->nconf++;
        }
        if (t->conf[k].max_running == 0)
            t->conf[k].max_running = tok[i].max_running;
    }
    return 0;
}

/* --- Writing it to Redis ---------------------------------------------------- */

static void on_pushed(redisReply *r, void *priv)
{
    struct tenants *t = priv;
    t->push_inflight = false;
    if (r && r->type == REDIS_REPLY_INTEGER) {
        t->next_push_ms = util_mono_ms() + TENANTS_PUSH_MS;
        if (r->integer >= 0)
            log_info("tenants' configuration applied", "{s:I}", "tenants_known",
                     (json_int_t)r->integer);
    } else
        log_warn("could not write the tenants' configuration; trying again", "{s:s}", "error",
                 r && r->str ? r->str : "no reply");
}

/* The tenants.lua fields being built: names and values kept alongside. */
struct fields {
    const char *argv[2 * 2 * TENANTS_MAX];
    char buf[2 * TENANTS_MAX][2][80];
    size_t n;
};

static void add_field(struct fields *f, const char *what, const char *tenant, const char *fmt,
                      double value)
{
    char(*slot)[80] = f->buf[f->n / 2];
    snprintf(slot[0], sizeof(slot[0]), "%s:%s", what, tenant);
    snprintf(slot[1], sizeof(slot[1]), fmt, value);
    f->argv[f->n] = slot[0];
    f->argv[f->n + 1] = slot[1];
    f->n += 2;
}

static void push(struct tenants *t)
{
    struct queue_async *rc = server_redis(t->srv);
    if (!rc || t->push_inflight || util_mono_ms() < t->next_push_ms)
        return;
    static struct fields f;
    f.n = 0;
    for (size_t i = 0; i < t->nconf; i++) {
        const struct tenant_conf *c = &t->conf[i];
        if (c->weight > 0)
            add_field(&f, "weight", c->name, "%.6g", c->weight);
        if (c->max_running > 0)
            add_field(&f, "cap", c->name, "%.0f", (double)c->max_running);
    }
    struct queue_call c;
    if (queue_build_tenants(&c, server_names(t->srv), f.argv, f.n) < 0)
        return;
    if (queue_async_call(rc, &c, on_pushed, t) == 0)
        t->push_inflight = true;
    queue_call_free(&c);
}

static void on_push_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    push(arg);
}

/* --- Routes ------------------------------------------------------------------ */

static json_t *tenant_rows(const redisReply *rows, const redisReply *paused)
{
    json_t *out = json_array();
    for (size_t i = 0; out && i + 4 < rows->elements; i += 5) {
        const char *name = rows->element[i]->str;
        bool is_paused = false;
        for (size_t k = 0; k < paused->elements; k++)
            is_paused = is_paused ||
                        (paused->element[k]->str && name && !strcmp(paused->element[k]->str, name));
        const char *w = rows->element[i + 3]->str;
        json_array_append_new(
            out, json_pack("{s:s, s:I, s:I, s:f, s:I, s:b}", "tenant", name ? name : "", "waiting",
                           (json_int_t)rows->element[i + 1]->integer, "running",
                           (json_int_t)rows->element[i + 2]->integer, "weight",
                           w ? strtod(w, NULL) : 1.0, "max_running",
                           (json_int_t)rows->element[i + 4]->integer, "paused", is_paused));
    }
    return out;
}

static void on_fair(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[3]->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    bool all = false;
    for (size_t k = 0; k < r->element[2]->elements; k++)
        all =
            all || (r->element[2]->element[k]->str && !strcmp(r->element[2]->element[k]->str, "*"));
    pending_reply(p, 200,
                  json_pack("{s:I, s:I, s:b, s:o}", "waiting", (json_int_t)r->element[0]->integer,
                            "held", (json_int_t)r->element[1]->integer, "paused", all, "tenants",
                            tenant_rows(r->element[3], r->element[2])));
}

/* GET /v1/tenants */
static void route_tenants(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct tenants *t = ctx;
    (void)m;
    struct pending *p = pending_new(t->srv, req, sizeof(*p), NULL);
    if (!p)
        return;
    struct queue_call c;
    pending_call(p, on_fair, NULL, &c, queue_build_fair(&c, server_names(t->srv)));
    pending_done(p);
}

static void on_paused(struct pending *p, redisReply *r, void *ctx)
{
    const char *what = ctx;
    if (r->type != REDIS_REPLY_INTEGER) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    pending_reply(p, 200,
                  json_pack("{s:b, s:b}", "paused", what[0] == '1', "changed", r->integer == 1));
}

/* POST /v1/queue/pause and /resume, of the queue or (?tenant=) one tenant.
 * A token that names a tenant may pause and resume that tenant only. */
static void pause_or_resume(struct tenants *t, struct evhttp_request *req,
                            const struct route_match *m, bool pause)
{
    char tenant[80] = "";
    if (!http_query_str(req, "tenant", tenant, sizeof(tenant)))
        snprintf(tenant, sizeof(tenant), "*");
    else if (!util_valid_tenant(tenant)) {
        http_send_error(req, 400,
                        "query parameter 'tenant' must be 1 to 64 characters of [A-Za-z0-9._-]");
        return;
    }
    if (m->tenant[0] && strcmp(m->tenant, tenant) != 0) {
        http_send_error(req, 403, "this token may pause and resume tenant '%s' only", m->tenant);
        return;
    }
    struct pending *p = pending_new(t->srv, req, sizeof(*p), NULL);
    if (!p)
        return;
    struct queue_call c;
    pending_call(p, on_paused, pause ? "1" : "0", &c,
                 queue_build_pause(&c, server_names(t->srv), tenant, pause));
    pending_done(p);
}

static void route_pause(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    pause_or_resume(ctx, req, m, true);
}

static void route_resume(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    pause_or_resume(ctx, req, m, false);
}

int tenants_new(struct server *s, const char *config, struct tenants **ret, char *err,
                size_t errlen)
{
    static const struct server_route routes[] = {{ROUTE_TENANTS, route_tenants},
                                                 {ROUTE_QUEUE_PAUSE, route_pause},
                                                 {ROUTE_QUEUE_RESUME, route_resume}};
    struct tenants *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    *ret = t;
    t->srv = s;
    int r = tenants_parse(config, t->conf, TENANTS_MAX, &t->nconf, err, errlen);
    if (r < 0 || (r = add_token_caps(t, err, errlen)) < 0)
        return r;
    server_add_routes(s, routes, ARRAY_SIZE(routes), t);
    t->push_ev = event_new(server_base(s), -1, EV_PERSIST, on_push_timer, t);
    if (!t->push_ev)
        return -ENOMEM;
    struct timeval tv = {0, 200 * 1000};
    return event_add(t->push_ev, &tv) < 0 ? -EIO : 0;
}

void tenants_stop(struct tenants *t)
{
    if (t && t->push_ev) {
        event_free(t->push_ev);
        t->push_ev = NULL;
    }
}

void tenants_free(struct tenants *t)
{
    tenants_stop(t);
    free(t);
}

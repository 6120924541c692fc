/* The schedule routes of the API (schedules.h). Each write is one call of
 * schedule.lua; reads are schedules.lua. */
#define _GNU_SOURCE
#include "schedules.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sched.h"
#include "../common/util.h"
#include "../queue/jobq.h"
#include "http.h"
#include "router.h"
#include "server.h"

struct schedules {
    struct server *srv;
    struct schedules_settings set;
};

/* A schedule route's request: the core's, then the schedule it is about. */
struct sched_req {
    struct pending p; /* first: the core allocates and frees the whole */
    struct schedules *sc;
    char id[ROUTER_ID_MAX + 1];
    char tenant[65]; /* the token's ("": any) */
};

static struct sched_req *sched_req_new(struct schedules *sc, struct evhttp_request *req,
                                       const struct route_match *m)
{
    struct pending *p = pending_new(sc->srv, req, sizeof(struct sched_req), NULL);
    if (!p)
        return NULL;
    struct sched_req *sr = (struct sched_req *)p;
    sr->sc = sc;
    snprintf(sr->id, sizeof(sr->id), "%s", m->id);
    snprintf(sr->tenant, sizeof(sr->tenant), "%s", m->tenant);
    return sr;
}

/* --- A schedule as JSON ------------------------------------------------------- */

static bool int_field(const char *f)
{
    static const char *const ints[] = {"every_ms",     "priority",    "created_ms", "next_ms",
                                       "last_fire_ms", "last_due_ms", "fires",      "skipped"};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (!strcmp(f, ints[i]))
            return true;
    return false;
}

/* The schedule whose hash is h (HGETALL's field, value, ...), as the
 * routes show it; NULL when out of memory. */
static json_t *schedule_json(const redisReply *h)
{
    json_t *o = json_object();
    static const char *const nulls[] = {"id",           "name",        "cron",       "tz",
                                        "every",        "every_ms",    "next_ms",    "last_job",
                                        "last_fire_ms", "last_due_ms", "last_status"};
    for (size_t i = 0; o && i < ARRAY_SIZE(nulls); i++)
        json_object_set_new(o, nulls[i], json_null());
    for (size_t i = 0; o && i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str, *v = h->element[i + 1]->str;
        if (!f || !v)
            continue;
        if (!strcmp(f, "spec"))
            json_object_set_new(o, "job", json_loads(v, 0, NULL));
        else if (!strcmp(f, "paused"))
            json_object_set_new(o, f, json_boolean(!strcmp(v, "1")));
        else if (int_field(f))
            json_object_set_new(o, f, json_integer(strtoll(v, NULL, 10)));
        else
            json_object_set_new(o, f, json_string(v));
    }
    return o;
}

/* --- Creating one --------------------------------------------------------------- */

/* What a POST /v1/schedules body gave, checked. */
struct sched_new {
    struct sched_timing timing;
    const char *name, *every, *overlap;
    struct job_placement pl;
    char *spec; /* the job's spec, normalized, as JSON text */
};

/* The body's string field f into *ret (NULL when absent or null). false
 * with a message when it is another type. */
static bool string_field(json_t *doc, const char *f, const char **ret, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, f);
    *ret = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' must be a string", f);
        return false;
    }
    *ret = json_string_value(v);
    return true;
}

/* The body's fields other than the job: 0, or -EINVAL with err. */
static int take_fields(json_t *doc, struct sched_new *out, char *err, size_t errlen)
{
    static const char *const known[] = {"name", "cron", "tz", "every", "job", "overlap"};
    const char *key, *cron, *tz;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        size_t i = 0;
        while (i < ARRAY_SIZE(known) && strcmp(key, known[i]) != 0)
            i++;
        if (i == ARRAY_SIZE(known)) {
            snprintf(err, errlen,
                     "unknown field '%.64s' (a schedule has name, cron, tz, every, job and "
                     "overlap; the job's own fields go in 'job')",
                     key);
            return -EINVAL;
        }
    }
    if (!string_field(doc, "name", &out->name, err, errlen) ||
        !string_field(doc, "cron", &cron, err, errlen) ||
        !string_field(doc, "tz", &tz, err, errlen) ||
        !string_field(doc, "every", &out->every, err, errlen) ||
        !string_field(doc, "overlap", &out->overlap, err, errlen))
        return -EINVAL;
    if (out->name && (!out->name[0] || strlen(out->name) > SCHEDULES_NAME_MAX)) {
        snprintf(err, errlen, "field 'name' must be 1 to %d bytes", SCHEDULES_NAME_MAX);
        return -EINVAL;
    }
    out->overlap = out->overlap ? out->overlap : "skip";
    if (strcmp(out->overlap, "skip") != 0 && strcmp(out->overlap, "allow") != 0) {
        snprintf(err, errlen, "field 'overlap' must be \"skip\" or \"allow\"");
        return -EINVAL;
    }
    return sched_timing_parse(cron, tz, out->every, &out->timing, err, errlen);
}

/* The body's job: checked as POST /v1/jobs checks a spec (its tenant, its
 * priority, its spec), into out. 0, -EINVAL or -EPERM with err. */
static int take_job(struct schedules *sc, json_t *doc, const struct job_token *tok,
                    struct sched_new *out, char *err, size_t errlen)
{
    char msg[600];
    json_t *job = json_object_get(doc, "job");
    if (!json_is_object(job)) {
        snprintf(err, errlen,
                 "field 'job' must be an object: the job to run, as POST /v1/jobs takes it "
                 "(code, params, ..., tenant, priority)");
        return -EINVAL;
    }
    if (json_object_get(job, "id")) {
        snprintf(err, errlen, "job: field 'id' cannot be given: each run is a new job");
        return -EINVAL;
    }
    int r = job_placement_take(job, tok, util_now_ms(), &out->pl, msg, sizeof(msg));
    if (r == 0 && (out->pl.run_at_ms || out->pl.delay_ms)) {
        snprintf(msg, sizeof(msg), "fields 'run_at' and 'delay_s' do not apply to a recurring job");
        r = -EINVAL;
    }
    if (r == 0)
        r = job_spec_normalize(job, &sc->set.lim, msg, sizeof(msg));
    if (r < 0) {
        snprintf(err, errlen, "job: %s", msg);
        return r;
    }
    out->spec = json_dumps(job, JSON_COMPACT | JSON_PRESERVE_ORDER);
    return out->spec ? 0 : -ENOMEM;
}

static void on_created(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    pending_reply(p, 201, schedule_json(r->element[1]));
}

/* Stores the schedule n, whose first fire is next_ms, as id. */
static void create(struct sched_req *sr, const struct sched_new *n, long long now_ms,
                   long long next_ms)
{
    char every_ms[32], priority[16];
    snprintf(every_ms, sizeof(every_ms), "%lld", n->timing.every_ms);
    snprintf(priority, sizeof(priority), "%d", n->pl.priority);
    const char *fields[20];
    size_t k = 0;
#define FIELD(f, v)                                                                                \
    do {                                                                                           \
        fields[k++] = (f);                                                                         \
        fields[k++] = (v);                                                                         \
    } while (0)
    FIELD("spec", n->spec);
    FIELD("tenant", n->pl.tenant);
    FIELD("priority", priority);
    FIELD("overlap", n->overlap);
    if (n->name)
        FIELD("name", n->name);
    if (n->timing.cron[0]) {
        FIELD("cron", n->timing.cron);
        FIELD("tz", n->timing.tz);
    } else {
        FIELD("every", n->every);
        FIELD("every_ms", every_ms);
    }
#undef FIELD
    struct queue_call c;
    pending_call(&sr->p, on_created, NULL, &c,
                 queue_build_schedule(&c, server_names(sr->sc->srv), "add", sr->id, now_ms, next_ms,
                                      NULL, fields, k));
}

/* POST /v1/schedules */
static void route_create(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct schedules *sc = ctx;
    char err[700];
    size_t len;
    const char *body = http_request_body(req, sc->set.max_body, &len);
    if (!body)
        return;
    json_t *doc = NULL;
    struct sched_new n = {0};
    long long now = util_now_ms(), next = 0;
    int r = job_json_parse(body, len, &doc, err, sizeof(err));
    if (r == 0 && !json_is_object(doc)) {
        snprintf(err, sizeof(err), "the body must be a JSON object (a schedule)");
        r = -EINVAL;
    }
    if (r == 0 && (r = take_fields(doc, &n, err, sizeof(err))) == 0)
        r = take_job(sc, doc, &(struct job_token){m->tenant, m->max_priority}, &n, err,
                     sizeof(err));
    if (r == 0 && (r = sched_first(&n.timing, now, &next, err, sizeof(err))) < 0)
        r = -EINVAL;
    if (r < 0) {
        if (r == -ENOMEM)
            http_send_error(req, 500, "out of memory");
        else
            http_send_error(req, r == -EPERM ? 403 : 400, "%s", err);
    } else {
        struct sched_req *sr = sched_req_new(sc, req, m);
        if (sr) {
            util_new_id(sr->id);
            create(sr, &n, now, next);
            pending_done(&sr->p);
        }
    }
    free(n.spec);
    json_decref(doc);
}

/* --- Reading, deleting, pausing ------------------------------------------------- */

static void on_list(struct pending *p, redisReply *r, void *ctx)
{
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    json_t *all = json_array();
    for (size_t i = 1; all && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ARRAY)
            json_array_append_new(all, schedule_json(r->element[i]));
    const redisReply *next = r->element[0];
    pending_reply(p, 200,
                  json_pack("{s:o, s:o}", "schedules", all, "next_cursor",
                            next->len ? json_stringn(next->str, next->len) : json_null()));
}

/* GET /v1/schedules: a page, oldest first, of the token's tenant's (every
 * one for a token that names none). */
static void route_list(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    long long limit;
    char score[40], id[ROUTER_ID_MAX + 1], cursor[sizeof(score) + sizeof(id)] = "";
    if (http_query_int(req, "limit", SCHEDULES_PAGE, 1, SCHEDULES_LIST_MAX, &limit) < 0)
        return;
    int r = http_query_cursor(req, score, sizeof(score), id, sizeof(id));
    if (r < 0)
        return;
    if (r > 0)
        snprintf(cursor, sizeof(cursor), "%s:%s", score, id); /* schedules.lua splits it */
    struct sched_req *sr = sched_req_new(ctx, req, m);
    if (!sr)
        return;
    struct queue_call c;
    pending_call(
        &sr->p, on_list, NULL, &c,
        queue_build_schedules(&c, server_names(sr->sc->srv), NULL, limit, sr->tenant, cursor));
    pending_done(&sr->p);
}

static void on_one(struct pending *p, redisReply *r, void *ctx)
{
    struct sched_req *sr = (struct sched_req *)p;
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 404, "no schedule with id '%s'", sr->id);
        return;
    }
    pending_reply(p, 200, schedule_json(r->element[1]));
}

/* Reads sr's schedule (schedules.lua) for h. */
static void read_one(struct sched_req *sr, pending_handler *h)
{
    struct queue_call c;
    pending_call(&sr->p, h, NULL, &c,
                 queue_build_schedules(&c, server_names(sr->sc->srv), sr->id, 1, sr->tenant, NULL));
}

/* GET /v1/schedules/{id} */
static void route_get(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct sched_req *sr = sched_req_new(ctx, req, m);
    if (!sr)
        return;
    read_one(sr, on_one);
    pending_done(&sr->p);
}

/* schedule.lua's reply to a delete, pause or resume. */
static void on_changed(struct pending *p, redisReply *r, void *ctx)
{
    struct sched_req *sr = (struct sched_req *)p;
    const char *action = ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_ARRAY) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    if (r->element[0]->integer == 0) {
        pending_error(p, 404, "no schedule with id '%s'", sr->id);
        return;
    }
    if (!strcmp(action, "delete")) {
        pending_reply(p, 200, json_pack("{s:s, s:b}", "id", sr->id, "deleted", 1));
        return;
    }
    json_t *o = schedule_json(r->element[1]);
    if (o)
        json_object_set_new(o, "changed", json_boolean(r->element[0]->integer == 1));
    pending_reply(p, 200, o);
}

/* Calls schedule.lua's action on sr's schedule. */
static void change(struct sched_req *sr, const char *action, long long next_ms)
{
    struct queue_call c;
    pending_call(&sr->p, on_changed, (void *)action, &c,
                 queue_build_schedule(&c, server_names(sr->sc->srv), action, sr->id, util_now_ms(),
                                      next_ms, sr->tenant, NULL, 0));
}

/* DELETE /v1/schedules/{id}: its jobs made already are left alone. */
static void route_delete(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct sched_req *sr = sched_req_new(ctx, req, m);
    if (!sr)
        return;
    change(sr, "delete", 0);
    pending_done(&sr->p);
}

/* POST /v1/schedules/{id}/pause */
static void route_pause(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct sched_req *sr = sched_req_new(ctx, req, m);
    if (!sr)
        return;
    change(sr, "pause", 0);
    pending_done(&sr->p);
}

/* The schedule read for a resume: its next fire from now, then the
 * resume. */
static void on_resume_read(struct pending *p, redisReply *r, void *ctx)
{
    struct sched_req *sr = (struct sched_req *)p;
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        on_one(p, r, NULL); /* 404 or 503 */
        return;
    }
    json_t *o = schedule_json(r->element[1]);
    struct sched_timing t;
    char err[600];
    long long next = 0;
    int rc = sched_timing_parse(
        json_string_value(json_object_get(o, "cron")), json_string_value(json_object_get(o, "tz")),
        json_string_value(json_object_get(o, "every")), &t, err, sizeof(err));
    json_decref(o);
    if (rc < 0 || sched_first(&t, util_now_ms(), &next, err, sizeof(err)) < 0) {
        pending_error(p, 409, "the schedule cannot be resumed: %s", err);
        return;
    }
    change(sr, "resume", next);
}

/* POST /v1/schedules/{id}/resume: it fires next at its first time after
 * now (the fires it missed while paused are not made up). */
static void route_resume(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct sched_req *sr = sched_req_new(ctx, req, m);
    if (!sr)
        return;
    read_one(sr, on_resume_read);
    pending_done(&sr->p);
}

int schedules_new(struct server *s, const struct schedules_settings *set, struct schedules **ret)
{
    static const struct server_route routes[] = {
        {ROUTE_SCHEDULES_LIST, route_list},  {ROUTE_SCHEDULES_CREATE, route_create},
        {ROUTE_SCHEDULE_GET, route_get},     {ROUTE_SCHEDULE_DELETE, route_delete},
        {ROUTE_SCHEDULE_PAUSE, route_pause}, {ROUTE_SCHEDULE_RESUME, route_resume},
    };
    struct schedules *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    *sc = (struct schedules){s, *set};
    server_add_routes(s, routes, ARRAY_SIZE(routes), sc);
    *ret = sc;
    return 0;
}

void schedules_free(struct schedules *sc)
{
    free(sc);
}

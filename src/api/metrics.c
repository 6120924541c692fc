/* GET /metrics in the Prometheus text format. Counters and histograms live
 * in Redis (<base>:stats), so every API replica reports the same
 * cluster-wide figures. No job's own path writes them: each API adds the
 * jobs it created about once a second (and before answering GET
 * /metrics), each worker adds its jobs' outcomes and histograms with its
 * regular heartbeats and once the queue runs dry (docs/protocol.md). */
#define _GNU_SOURCE
#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../queue/jobq.h"
#include "../queue/status.h"
#include "server.h"

struct metrics {
    struct server *srv;
    /* Jobs this API created since it last added them to the stats hash
     * (about once a second, and before GET /metrics). */
    long long submitted_unflushed, submitted_inflight;
    struct event *stats_ev;
};

static void histogram(struct evbuffer *b, const char *metric, const char *help,
                      const struct jobq_histogram *h)
{
    long long cumulative = 0;
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", metric, help, metric);
    for (int i = 0; i < queue_nbuckets; i++) {
        cumulative += h->buckets[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %lld\n", metric, queue_buckets[i], cumulative);
    }
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.15g\n%s_count %lld\n", metric,
                        h->count, metric, h->sum, metric, h->count);
}

/* Per tenant (labelled; tenant names are [A-Za-z0-9._-], nothing to
 * escape): its jobs waiting in its backlog, running, and whether it is
 * paused. */
static void tenant_gauges(struct evbuffer *b, const struct queue_metrics *m)
{
    static const char *const gauges[][2] = {
        {"stratq_tenant_waiting", "Jobs of a tenant waiting to start (fair share)"},
        {"stratq_tenant_running", "Jobs of a tenant running (what its max_running caps)"},
        {"stratq_tenant_paused", "1 while a tenant is paused, else 0"},
    };
    const redisReply *t = m->tenants;
    for (size_t g = 0; g < ARRAY_SIZE(gauges); g++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g][0], gauges[g][1],
                            gauges[g][0]);
        for (size_t i = 0; i + 2 < t->elements; i += 3) {
            const char *name = t->element[i]->str;
            if (t->element[i]->type != REDIS_REPLY_STRING || !util_valid_tenant(name))
                continue;
            long long v = 0;
            if (g < 2) {
                const redisReply *e = t->element[i + 1 + g];
                v = e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
            } else {
                for (size_t k = 0; k < m->paused_tenants->elements; k++)
                    if (m->paused_tenants->element[k]->str &&
                        !strcmp(m->paused_tenants->element[k]->str, name))
                        v = 1;
            }
            evbuffer_add_printf(b, "%s{tenant=\"%s\"} %lld\n", gauges[g][0], name, v);
        }
    }
}

static void on_metrics(struct pending *p, redisReply *r, void *ctx)
{
    static const char *const gauges[][2] = {
        {"stratq_queue_pending", "Jobs waiting in the queue"},
        {"stratq_queue_processing", "Jobs taken by workers and not finished"},
        {"stratq_queue_scheduled", "Jobs waiting for their run_at or a retry's backoff"},
        {"stratq_queue_dead", "Jobs that exhausted their attempts"},
        {"stratq_workers", "Registered workers"},
        {"stratq_queue_held", "Jobs held back by their tenant's cap or a pause"},
        {"stratq_queue_backlog", "Jobs not yet started: pending, held and scheduled"},
        {"stratq_queue_paused", "1 while the whole queue is paused, else 0"},
    };
    struct queue_metrics m;
    (void)ctx;
    if (queue_metrics_parse(r, &m) < 0) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        pending_error(p, 500, "out of memory");
        return;
    }
    long long backlog = m.pending + m.held + m.scheduled;
    const long long values[] = {m.pending, m.processing, m.scheduled, m.dead,
                                m.workers, m.held,       backlog,     m.paused ? 1 : 0};
    _Static_assert(ARRAY_SIZE(values) == ARRAY_SIZE(gauges), "a value for every gauge");
    for (size_t i = 0; i < ARRAY_SIZE(gauges); i++)
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauges[i][0],
                            gauges[i][1], gauges[i][0], gauges[i][0], values[i]);
    evbuffer_add_printf(b,
                        "# HELP stratq_jobs_submitted_total Jobs enqueued\n"
                        "# TYPE stratq_jobs_submitted_total counter\n"
                        "stratq_jobs_submitted_total %lld\n",
                        m.submitted);
    evbuffer_add_printf(b, "# HELP stratq_jobs_completed_total Jobs finished, by status\n"
                           "# TYPE stratq_jobs_completed_total counter\n");
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++)
        if (queue_status_has(i, QUEUE_TERMINAL))
            evbuffer_add_printf(b, "stratq_jobs_completed_total{status=\"%s\"} %lld\n",
                                queue_status_name(i), m.completed[i]);
    tenant_gauges(b, &m);
    histogram(b, "stratq_job_duration_seconds", "Run time of finished jobs", &m.duration);
    histogram(b, "stratq_job_queue_wait_seconds", "Time from submission to start", &m.queue_wait);
    pending_reply_raw(p, 200, b, "text/plain; version=0.0.4");
    evbuffer_free(b);
}

static void on_count_reply(redisReply *r, void *priv)
{
    struct metrics *m = priv;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        /* Not added: try again with the next flush. */
        m->submitted_unflushed += m->submitted_inflight;
    }
    m->submitted_inflight = 0;
}

static void flush(struct metrics *m)
{
    struct queue_async *rc = server_redis(m->srv);
    if (!rc || m->submitted_unflushed <= 0 || m->submitted_inflight)
        return;
    struct queue_call c;
    if (queue_build_count_submitted(&c, server_names(m->srv), m->submitted_unflushed) < 0)
        return;
    if (queue_async_call(rc, &c, on_count_reply, m) == 0) {
        m->submitted_inflight = m->submitted_unflushed;
        m->submitted_unflushed = 0;
    }
    queue_call_free(&c);
}

void metrics_add_submitted(struct metrics *m, long long n)
{
    m->submitted_unflushed += n;
}

static void on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

/* GET /metrics */
static void route_metrics(void *ctx, struct evhttp_request *req, const struct route_match *rm)
{
    struct metrics *m = ctx;
    static const struct pending_workers_step step = {queue_build_metrics, on_metrics};
    (void)rm;
    /* Sent first on the same connection, so the counts below include it. */
    flush(m);
    pending_start_workers(m->srv, req, &step);
}

int metrics_new(struct server *s, struct metrics **ret)
{
    static const struct server_route routes[] = {{ROUTE_METRICS, route_metrics}};
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    *ret = m;
    m->srv = s;
    m->stats_ev = event_new(server_base(s), -1, EV_PERSIST, on_stats_timer, m);
    if (!m->stats_ev)
        return -ENOMEM;
    server_add_routes(s, routes, ARRAY_SIZE(routes), m);
    struct timeval tv = {1, 0};
    return event_add(m->stats_ev, &tv) < 0 ? -EIO : 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m || !m->stats_ev)
        return;
    flush(m);
    event_free(m->stats_ev);
    m->stats_ev = NULL;
}

void metrics_free(struct metrics *m)
{
    metrics_stop(m);
    free(m);
}

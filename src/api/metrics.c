/* GET /metrics in the Prometheus text format. Counters and histograms live
 * in Redis (<base>:stats), so every API replica reports the same
 * cluster-wide figures. No job's own path writes them: each API adds the
 * jobs it created about once a second (and before answering GET
 * /metrics), each worker adds its jobs' outcomes and histograms with its
 * heartbeats, within about a second of a change (docs/protocol.md). */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "internal.h"

static const char *stat_of(const redisReply *h, const char *field)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (!strcmp(h->element[i]->str, field))
            return h->element[i + 1]->str;
    return NULL;
}

static void histogram(struct evbuffer *b, const char *metric, const char *help,
                      const redisReply *bounds, const redisReply *h, const char *name)
{
    char field[80];
    long long cumulative = 0;
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", metric, help, metric);
    for (size_t i = 0; i < bounds->elements; i++) {
        snprintf(field, sizeof(field), "%s:bucket:%zu", name, i + 1);
        const char *v = stat_of(h, field);
        cumulative += v ? atoll(v) : 0;
        evbuffer_add_printf(b, "%s_bucket{le=\"%s\"} %lld\n", metric, bounds->element[i]->str,
                            cumulative);
    }
    snprintf(field, sizeof(field), "%s:count", name);
    const char *count = stat_of(h, field);
    snprintf(field, sizeof(field), "%s:sum", name);
    const char *sum = stat_of(h, field);
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %s\n%s_sum %s\n%s_count %s\n", metric,
                        count ? count : "0", metric, sum ? sum : "0", metric, count ? count : "0");
}

static void on_metrics(struct pending *p, redisReply *r, void *ctx)
{
    static const char *const gauges[][2] = {
        {"stratq_queue_pending", "Jobs waiting in the queue"},
        {"stratq_queue_processing", "Jobs taken by workers and not finished"},
        {"stratq_queue_scheduled", "Jobs waiting for a retry"},
        {"stratq_queue_dead", "Jobs that exhausted their attempts"},
        {"stratq_workers", "Registered workers"},
    };
    (void)ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
        pending_error(p, 503, "unexpected reply from Redis");
        return;
    }
    const redisReply *bounds = r->element[5], *h = r->element[6];
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        pending_error(p, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < 5; i++)
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauges[i][0],
                            gauges[i][1], gauges[i][0], gauges[i][0], r->element[i]->integer);
    const char *sub = stat_of(h, "submitted");
    evbuffer_add_printf(b,
                        "# HELP stratq_jobs_submitted_total Jobs enqueued\n"
                        "# TYPE stratq_jobs_submitted_total counter\n"
                        "stratq_jobs_submitted_total %s\n",
                        sub ? sub : "0");
    evbuffer_add_printf(b, "# HELP stratq_jobs_completed_total Jobs finished, by status\n"
                           "# TYPE stratq_jobs_completed_total counter\n");
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++) {
        if (!queue_status_has(i, QUEUE_TERMINAL))
            continue;
        char field[64];
        snprintf(field, sizeof(field), "completed:%s", queue_status_name(i));
        const char *v = stat_of(h, field);
        evbuffer_add_printf(b, "stratq_jobs_completed_total{status=\"%s\"} %s\n",
                            queue_status_name(i), v ? v : "0");
    }
    histogram(b, "stratq_job_duration_seconds", "Run time of finished jobs", bounds, h, "duration");
    histogram(b, "stratq_job_queue_wait_seconds", "Time from submission to start", bounds, h,
              "queue_wait");
    pending_reply_raw(p, 200, b, "text/plain; version=0.0.4");
    evbuffer_free(b);
}

static void on_count_reply(redisReply *r, void *priv)
{
    struct api *a = priv;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        /* Not added: try again with the next flush. */
        a->submitted_unflushed += a->submitted_inflight;
    }
    a->submitted_inflight = 0;
}

void metrics_flush(struct api *a)
{
    if (!a->rc || !a->redis_ready || a->submitted_unflushed <= 0 || a->submitted_inflight)
        return;
    struct queue_call c;
    if (queue_build_count_submitted(&c, &a->names, a->submitted_unflushed) < 0)
        return;
    if (queue_async_call(a->rc, &c, on_count_reply, a) == 0) {
        a->submitted_inflight = a->submitted_unflushed;
        a->submitted_unflushed = 0;
    }
    queue_call_free(&c);
}

static void on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    metrics_flush(arg);
}

int metrics_start(struct api *a)
{
    a->stats_ev = event_new(a->base, -1, EV_PERSIST, on_stats_timer, a);
    if (!a->stats_ev)
        return -1;
    struct timeval tv = {1, 0};
    return event_add(a->stats_ev, &tv);
}

void metrics_stop(struct api *a)
{
    metrics_flush(a);
    if (a->stats_ev)
        event_free(a->stats_ev);
    a->stats_ev = NULL;
}

void metrics_get(struct api *a, struct evhttp_request *req)
{
    struct pending *p = pending_new(a, req, ROUTE_METRICS, NULL);
    if (!p)
        return;
    /* Sent first on the same connection, so the counts below include it. */
    metrics_flush(a);
    struct queue_call c;
    pending_call(p, on_metrics, NULL, &c, queue_build_metrics(&c, &a->names));
    pending_done(p);
}

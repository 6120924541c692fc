/* GET /metrics in the Prometheus text format. Counters and histograms live
 * in Redis (<base>:stats), so every API replica reports the same
 * cluster-wide figures. No job's own path writes them: each API adds the
 * jobs it created about once a second (and before answering GET
 * /metrics), each worker adds its jobs' outcomes and histograms with its
 * regular heartbeats and once the queue runs dry (docs/protocol.md). */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "internal.h"

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

static void on_metrics(struct pending *p, redisReply *r, void *ctx)
{
    static const char *const gauges[][2] = {
        {"stratq_queue_pending", "Jobs waiting in the queue"},
        {"stratq_queue_processing", "Jobs taken by workers and not finished"},
        {"stratq_queue_scheduled", "Jobs waiting for a retry"},
        {"stratq_queue_dead", "Jobs that exhausted their attempts"},
        {"stratq_workers", "Registered workers"},
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
    const long long values[] = {m.pending, m.processing, m.scheduled, m.dead, m.workers};
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
    histogram(b, "stratq_job_duration_seconds", "Run time of finished jobs", &m.duration);
    histogram(b, "stratq_job_queue_wait_seconds", "Time from submission to start", &m.queue_wait);
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
    static const struct worker_keys_step step = {queue_build_metrics, on_metrics};
    pending_call(p, jobs_on_worker_ids, (void *)&step, &c, queue_build_worker_ids(&c, &a->names));
    pending_done(p);
}

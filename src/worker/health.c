#define _GNU_SOURCE
#include "health.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../queue/status.h"

/* The loop must have turned this recently to count as alive. Its longest
 * waits are a blocking BLMOVE (1 s), a Redis reconnect back-off (5 s at
 * most) and a job's poll (a second). */
#define LOOP_STALE_MS 30000

/* The bounds of the Redis-wide histograms (src/queue/status.h). */
static const double buckets[] = {QUEUE_BUCKETS};

static struct {
    pthread_mutex_t lock;
    bool on;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    int stop_pipe[2];
    struct event *stop_ev;
    char worker_id[160];
    /* reported by the worker's loop */
    int64_t loop_ms;
    char state[16];
    bool redis, executor, registered;
    /* By status; a status that is not terminal, or unknown, counts as "other". */
    long long jobs[QUEUE_STATUS__COUNT + 1];
    long long bucket_counts[ARRAY_SIZE(buckets)];
    long long duration_count;
    double duration_sum;
    long long executor_restarts;
    char *sandbox; /* JSON */
} h = {.lock = PTHREAD_MUTEX_INITIALIZER, .stop_pipe = {-1, -1}};

void health_update(const char *state, bool redis_connected, bool executor_up, bool registered)
{
    if (!h.on)
        return;
    pthread_mutex_lock(&h.lock);
    h.loop_ms = util_mono_ms();
    snprintf(h.state, sizeof(h.state), "%s", state ? state : "");
    h.redis = redis_connected;
    h.executor = executor_up;
    h.registered = registered;
    pthread_mutex_unlock(&h.lock);
}

void health_job_done(const char *status, long long wall_ms)
{
    if (!h.on)
        return;
    pthread_mutex_lock(&h.lock);
    int st = queue_status_parse(status);
    h.jobs[queue_status_has(st, QUEUE_TERMINAL) ? st : QUEUE_STATUS__COUNT]++;
    double s = (double)wall_ms / 1000.0;
    for (size_t b = 0; b < ARRAY_SIZE(buckets); b++)
        if (s <= buckets[b])
            h.bucket_counts[b]++;
    h.duration_count++;
    h.duration_sum += s;
    pthread_mutex_unlock(&h.lock);
}

void health_executor_restarted(void)
{
    if (!h.on)
        return;
    pthread_mutex_lock(&h.lock);
    h.executor_restarts++;
    pthread_mutex_unlock(&h.lock);
}

void health_set_sandbox(const char *layers_json)
{
    if (!h.on)
        return;
    pthread_mutex_lock(&h.lock);
    free(h.sandbox);
    h.sandbox = layers_json ? strdup(layers_json) : NULL;
    pthread_mutex_unlock(&h.lock);
}

static long long rss_bytes(void)
{
    long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f && fscanf(f, "%lld %lld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", body);
}

/* /livez, /healthz, /readyz: which checks pass, as JSON. Called with the
 * lock held. */
static void probe(struct evhttp_request *req, const char *path)
{
    bool alive = util_mono_ms() - h.loop_ms < LOOP_STALE_MS;
    bool draining = !strcmp(h.state, "draining");
    bool ok = alive && h.executor;
    if (!strcmp(path, "/healthz"))
        ok = ok && h.redis;
    else if (!strcmp(path, "/readyz"))
        ok = ok && h.redis && h.registered && !draining;
    json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:b, s:b, s:s}", "status", ok ? "ok" : "failing",
                          "worker", h.worker_id, "loop_alive", alive, "executor_up", h.executor,
                          "redis_connected", h.redis, "registered", h.registered, "state", h.state);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", s ? s : "{}");
    reply(req, ok ? 200 : 503, "application/json", b);
    evbuffer_free(b);
    free(s);
    json_decref(o);
}

static void metrics(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    const char *id = h.worker_id;
    evbuffer_add_printf(b,
                        "# HELP stratq_worker_busy 1 while the worker runs a job.\n"
                        "# TYPE stratq_worker_busy gauge\n"
                        "stratq_worker_busy{worker=\"%s\"} %d\n"
                        "# HELP stratq_worker_draining 1 while the worker is stopping.\n"
                        "# TYPE stratq_worker_draining gauge\n"
                        "stratq_worker_draining{worker=\"%s\"} %d\n"
                        "# HELP stratq_worker_redis_connected 1 while Redis is connected.\n"
                        "# TYPE stratq_worker_redis_connected gauge\n"
                        "stratq_worker_redis_connected{worker=\"%s\"} %d\n"
                        "# HELP stratq_worker_executor_up 1 while the executor runs.\n"
                        "# TYPE stratq_worker_executor_up gauge\n"
                        "stratq_worker_executor_up{worker=\"%s\"} %d\n",
                        id, !strcmp(h.state, "busy"), id, !strcmp(h.state, "draining"), id, h.redis,
                        id, h.executor);
    evbuffer_add_printf(b, "# HELP stratq_worker_jobs_total Jobs this worker finished, by "
                           "status.\n# TYPE stratq_worker_jobs_total counter\n");
    for (int i = 0; i <= QUEUE_STATUS__COUNT; i++)
        if (i == QUEUE_STATUS__COUNT || queue_status_has(i, QUEUE_TERMINAL))
            evbuffer_add_printf(b, "stratq_worker_jobs_total{worker=\"%s\",status=\"%s\"} %lld\n",
                                id, i < QUEUE_STATUS__COUNT ? queue_status_name(i) : "other",
                                h.jobs[i]);
    evbuffer_add_printf(b, "# HELP stratq_worker_job_duration_seconds Wall time of the jobs "
                           "this worker ran.\n# TYPE stratq_worker_job_duration_seconds "
                           "histogram\n");
    for (size_t i = 0; i < ARRAY_SIZE(buckets); i++)
        evbuffer_add_printf(b,
                            "stratq_worker_job_duration_seconds_bucket{worker=\"%s\",le=\"%g\"} "
                            "%lld\n",
                            id, buckets[i], h.bucket_counts[i]);
    evbuffer_add_printf(b,
                        "stratq_worker_job_duration_seconds_bucket{worker=\"%s\",le=\"+Inf\"} "
                        "%lld\n"
                        "stratq_worker_job_duration_seconds_sum{worker=\"%s\"} %.6f\n"
                        "stratq_worker_job_duration_seconds_count{worker=\"%s\"} %lld\n",
                        id, h.duration_count, id, h.duration_sum, id, h.duration_count);
    evbuffer_add_printf(b,
                        "# HELP stratq_worker_executor_restarts_total Times the executor was "
                        "restarted.\n# TYPE stratq_worker_executor_restarts_total counter\n"
                        "stratq_worker_executor_restarts_total{worker=\"%s\"} %lld\n"
                        "# HELP stratq_worker_rss_bytes Resident memory of the worker's "
                        "supervisor process.\n# TYPE stratq_worker_rss_bytes gauge\n"
                        "stratq_worker_rss_bytes{worker=\"%s\"} %lld\n",
                        id, h.executor_restarts, id, rss_bytes());
    json_t *layers = h.sandbox ? json_loads(h.sandbox, 0, NULL) : NULL;
    const char *name;
    json_t *v;
    evbuffer_add_printf(b, "# HELP stratq_worker_sandbox_layer 1 for each sandbox layer active "
                           "around this worker's jobs.\n# TYPE stratq_worker_sandbox_layer "
                           "gauge\n");
    json_object_foreach(layers, name, v)
    {
        evbuffer_add_printf(b, "stratq_worker_sandbox_layer{worker=\"%s\",layer=\"%s\"} %d\n", id,
                            name, json_is_string(v) && !strcmp(json_string_value(v), "active"));
    }
    json_decref(layers);
    reply(req, 200, "text/plain; version=0.0.4", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[64];
    snprintf(path, sizeof(path), "%.*s", (int)strcspn(uri ? uri : "", "?"), uri ? uri : "");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "only GET");
        return;
    }
    pthread_mutex_lock(&h.lock);
    if (!strcmp(path, "/livez") || !strcmp(path, "/healthz") || !strcmp(path, "/readyz"))
        probe(req, path);
    else if (!strcmp(path, "/metrics"))
        metrics(req);
    else
        evhttp_send_error(req, 404, "GET /livez, /healthz, /readyz or /metrics");
    pthread_mutex_unlock(&h.lock);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void *serve(void *arg)
{
    (void)arg;
    event_base_dispatch(h.base);
    return NULL;
}

int health_start(const char *bind, int port, const char *worker_id)
{
    if (port <= 0)
        return 0;
    snprintf(h.worker_id, sizeof(h.worker_id), "%s", worker_id);
    if (pipe2(h.stop_pipe, O_CLOEXEC) < 0)
        return -errno;
    h.base = event_base_new();
    h.http = h.base ? evhttp_new(h.base) : NULL;
    struct event *stop = h.stop_ev =
        h.base ? event_new(h.base, h.stop_pipe[0], EV_READ | EV_PERSIST, on_stop, h.base) : NULL;
    if (!h.http || !stop || event_add(stop, NULL) < 0 ||
        !evhttp_bind_socket_with_handle(h.http, bind, (ev_uint16_t)port)) {
        int e = errno ? -errno : -EADDRINUSE;
        if (h.http)
            evhttp_free(h.http);
        if (stop)
            event_free(stop);
        if (h.base)
            event_base_free(h.base);
        close(h.stop_pipe[0]);
        close(h.stop_pipe[1]);
        h.http = NULL;
        h.base = NULL;
        h.stop_ev = NULL;
        return e;
    }
    evhttp_set_allowed_methods(h.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(h.http, on_request, NULL);
    h.loop_ms = util_mono_ms();
    h.on = true;
    if (pthread_create(&h.thread, NULL, serve, NULL) != 0) {
        h.on = false;
        return -EAGAIN;
    }
    log_info("health port listening", "{s:s, s:i}", "bind", bind, "port", port);
    return 0;
}

void health_stop(void)
{
    if (!h.on)
        return;
    (void)!write(h.stop_pipe[1], "x", 1);
    pthread_join(h.thread, NULL);
    h.on = false;
    evhttp_free(h.http);
    event_free(h.stop_ev);
    event_base_free(h.base);
    close(h.stop_pipe[0]);
    close(h.stop_pipe[1]);
    free(h.sandbox);
    h.sandbox = NULL;
}

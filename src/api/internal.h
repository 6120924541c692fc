/* Shared by the API's modules: api.c (server, Redis connections, auth,
 * routing), jobs.c (job routes), events.c (the shared event subscription,
 * long-poll waiters, Server-Sent Events), metrics.c and ui.c (the dashboard). */
#ifndef STRATQ_API_INTERNAL_H
#define STRATQ_API_INTERNAL_H

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>

#include "../common/job.h"
#include "../queue/conn.h"
#include "../queue/jobq.h"
#include "../queue/queue.h"
#include "../queue/status.h"
#include "router.h"

/* Redis must answer within this, or the request gets 503. */
#define API_REDIS_TIMEOUT_MS 2000
/* Longest ?wait= a client may ask for. */
#define API_MAX_WAIT_S 60
/* Specs in one batch request. */
#define API_MAX_BATCH 1000

#define WAITER_BUCKETS 4096

struct pending;
struct sse_client;
struct conn;

struct api {
    struct event_base *base;
    struct evhttp *http;
    /* Commands go over rc (src/queue/conn.h owns connecting, reconnects
     * and cluster redirects); sub holds the one subscription to the events
     * channel that wakes every long-poll waiter and SSE client. */
    struct queue_async *rc;
    struct queue_sub *sub;
    bool redis_ready, sub_ready;
    struct queue_url url;
    struct queue_names names;
    struct job_limits lim;
    size_t max_body;
    long long failed_ttl;
    /* Jobs this API created since it last added them to the stats hash
     * (metrics.c: about once a second, and before GET /metrics). */
    long long submitted_unflushed, submitted_inflight;
    struct event *stats_ev;
    struct event *sse_keepalive_ev;
    struct event *sig_ev[2];
    /* Auth: tokens from STRATQ_API_TOKENS_FILE; none means auth is off. */
    char **tokens;
    size_t ntokens;
    /* Connections being served, for STRATQ_MAX_CONNECTIONS. */
    struct conn *conns[WAITER_BUCKETS];
    long nconns, max_conns;
    /* Long-poll waiters by job id. */
    struct pending *waiters[WAITER_BUCKETS];
    long nwaiters;
    struct sse_client *sse;
    long nsse;
};

typedef void pending_handler(struct pending *p, redisReply *r, void *ctx);

/* One HTTP request while it waits for Redis (and, for ?wait=, for its job
 * to finish). The request is answered at most once; the struct lives until
 * it is answered and no Redis reply for it is outstanding. */
struct pending {
    struct api *api;
    struct evhttp_request *req;
    enum route_id route;
    char id[ROUTER_ID_MAX + 1];
    int inflight;  /* Redis replies not yet received */
    bool answered; /* a response was sent; req is no longer ours */
    bool final;    /* the next job read answers whatever the status */
    bool created;  /* submit: the job is new (201) rather than existing (200) */
    int wait_s;
    long long off_out, off_err, off_log; /* logs offsets */
    struct event *op_timer, *wait_timer;
    bool waiting;              /* in the waiter table */
    struct pending *next_wait; /* chain in the waiter table */
    /* batch */
    json_t *items;
    int outstanding;
};

/* api.c */
struct pending *pending_new(struct api *a, struct evhttp_request *req, enum route_id route,
                            const char *id);
/* Sends a call (a script's or a plain read) for p; on failure answers 503.
 * The handler runs only if p is still unanswered. The call comes from a
 * queue_build_* function (src/queue/jobq.h), whose result is built_rc
 * (-ENOMEM, -EPROTO: answered 503); it is freed. */
void pending_call(struct pending *p, pending_handler *h, void *ctx, struct queue_call *c,
                  int built_rc);
/* Answers p (body stolen) unless it was answered already. */
void pending_reply(struct pending *p, int code, json_t *body);
void pending_reply_raw(struct pending *p, int code, struct evbuffer *body, const char *type);
void pending_error(struct pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees p once it is answered and nothing is outstanding. */
void pending_done(struct pending *p);

void api_send_json(struct evhttp_request *req, int code, json_t *body);
void api_send_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_send_unavailable(struct evhttp_request *req);
const char *api_reason(int code);
/* Parses ?name=integer from the request's query; def when absent. Returns
 * -EINVAL (and answers 400) when present but not an integer in [min, max]. */
int api_query_int(struct evhttp_request *req, const char *name, long long def, long long min,
                  long long max, long long *ret);
/* Copies ?name= into buf; false when absent. */
bool api_query_str(struct evhttp_request *req, const char *name, char *buf, size_t len);

/* jobs.c */
/* The second step of a read that names each worker's key: ctx is a
 * worker_keys_step, whose build makes the script call from the workers'
 * ids (the first step's reply) and whose then gets its reply. */
struct worker_keys_step {
    int (*build)(struct queue_call *c, const struct queue_names *n, const redisReply *ids);
    pending_handler *then;
};
void jobs_on_worker_ids(struct pending *p, redisReply *r, void *ctx);
void jobs_submit(struct api *a, struct evhttp_request *req);
void jobs_batch(struct api *a, struct evhttp_request *req);
void jobs_get(struct api *a, struct evhttp_request *req, enum route_id route, const char *id);
void jobs_cancel(struct api *a, struct evhttp_request *req, const char *id);
void jobs_retry(struct api *a, struct evhttp_request *req, const char *id);
/* GET /v1/statuses: every job status and its properties (src/queue/status.h),
 * for the dashboard; needs no Redis. */
void jobs_statuses(struct api *a, struct evhttp_request *req);
/* GET /v1/datasets: the CSV files of STRATQ_DATA_DIR, which jobs read with
 * ctx.dataset(name). */
void jobs_datasets(struct api *a, struct evhttp_request *req);
void jobs_logs(struct api *a, struct evhttp_request *req, const char *id);
void jobs_list(struct api *a, struct evhttp_request *req);
void jobs_workers(struct api *a, struct evhttp_request *req);
void jobs_queue(struct api *a, struct evhttp_request *req);
/* Reads the job of waiter p again (final: answer whatever its status). */
void jobs_reread(struct pending *p, bool final);

/* events.c */
/* metrics.c: the submitted counter's flushes. */
int metrics_start(struct api *a);
void metrics_stop(struct api *a);
void metrics_flush(struct api *a);
int events_start(struct api *a);
void events_stop(struct api *a);
void events_add_waiter(struct api *a, struct pending *p);
void events_remove_waiter(struct api *a, struct pending *p);
void events_sse(struct api *a, struct evhttp_request *req);
/* The connection of req closed: drop its SSE stream, if any. */
void events_connection_closed(struct api *a, struct evhttp_connection *evcon);

/* metrics.c */
void metrics_get(struct api *a, struct evhttp_request *req);

/* ui.c: GET / (name "index.html") and GET /ui/{file}; 404 for a name that
 * is not embedded. */
void ui_serve(struct api *a, struct evhttp_request *req, const char *name);

#endif

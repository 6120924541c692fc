/* One subscription to the events channel per API process (SSUBSCRIBE on
 * the node owning the queue's slot on Redis Cluster; conn.h). It wakes the
 * long-poll waiters of jobs that finish (so 1,000 waiters cost one Redis
 * connection, not 1,000) and feeds every Server-Sent Events stream. */
#define _GNU_SOURCE
#include "events.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../queue/conn.h"
#include "../queue/status.h"
#include "http.h"
#include "server.h"

#define SSE_KEEPALIVE_S 15
#define SSE_TIMEOUT_S (7 * 86400)

#define WAITER_BUCKETS 4096

struct sse_client {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct sse_client *next;
};

struct events {
    struct server *srv;
    /* The one subscription to the events channel that wakes every
     * long-poll waiter and SSE client. */
    struct queue_sub *sub;
    bool sub_ready;
    struct event *keepalive_ev;
    /* Long-poll waiters by job id. */
    struct events_waiter *waiters[WAITER_BUCKETS];
    struct sse_client *sse;
};

static size_t id_bucket(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % WAITER_BUCKETS;
}

void events_add_waiter(struct events *ev, struct events_waiter *w)
{
    if (w->waiting)
        return;
    size_t b = id_bucket(w->id);
    w->next = ev->waiters[b];
    ev->waiters[b] = w;
    w->waiting = true;
}

void events_remove_waiter(struct events *ev, struct events_waiter *w)
{
    if (!w->waiting)
        return;
    for (struct events_waiter **pp = &ev->waiters[id_bucket(w->id)]; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    w->waiting = false;
    w->next = NULL;
}

/* Re-reads every waiter's job: after the subscription was (re)made, a
 * completion may have been missed. */
static void recheck_all_waiters(struct events *ev)
{
    for (int b = 0; b < WAITER_BUCKETS; b++) {
        struct events_waiter *w = ev->waiters[b];
        while (w) {
            /* Waking may answer and unlink w: take the next one first. */
            struct events_waiter *next = w->next;
            w->wake(w, false);
            w = next;
        }
    }
}

static void wake_waiters(struct events *ev, const char *id)
{
    struct events_waiter *w = ev->waiters[id_bucket(id)];
    while (w) {
        struct events_waiter *next = w->next;
        if (!strcmp(w->id, id))
            w->wake(w, true);
        w = next;
    }
}

static void sse_send(struct sse_client *c, const char *text, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        return;
    evbuffer_add(buf, text, len);
    evhttp_send_reply_chunk(c->req, buf);
    evbuffer_free(buf);
}

/* Sends payload to every stream as one event named name. */
static void broadcast(struct events *ev, const char *name, const char *payload, size_t len)
{
    struct evbuffer *line = evbuffer_new();
    if (!line)
        return;
    evbuffer_add_printf(line, "event: %s\ndata: %.*s\n\n", name, (int)len, payload);
    size_t n = evbuffer_get_length(line);
    const char *text = (const char *)evbuffer_pullup(line, -1);
    for (struct sse_client *c = ev->sse; c; c = c->next)
        sse_send(c, text, n);
    evbuffer_free(line);
}

/* The subscription was (re)made: a completion published while it was not
 * was missed, so every waiter's job is read again. */
static void on_subscribed(void *priv)
{
    struct events *ev = priv;
    const struct queue_names *names = server_names(ev->srv);
    ev->sub_ready = true;
    log_info("subscribed to job events", "{s:s, s:b}", "channel", names->events, "sharded",
             names->sharded);
    recheck_all_waiters(ev);
}

/* A job's change of status goes out as `event: job`, and wakes the
 * long-poll waiters of a job that finished. Anything else on the channel
 * (a worker's note that a running job wrote output: {"id", "output"},
 * docs/protocol.md) goes out as `event: output`, which the consumers of
 * `job` events (the dashboard, `stratq monitor`) do not read, and wakes
 * no one. */
static void on_event(void *priv, const char *payload, size_t len)
{
    struct events *ev = priv;
    json_t *e = json_loadb(payload, len, 0, NULL);
    const char *id = json_string_value(json_object_get(e, "id"));
    const char *status = json_string_value(json_object_get(e, "status"));
    if (ev->sse)
        broadcast(ev, status ? "job" : "output", payload, len);
    if (id && status && queue_status_is_terminal(status))
        wake_waiters(ev, id);
    json_decref(e);
}

static void on_sub_lost(void *priv)
{
    struct events *ev = priv;
    ev->sub_ready = false;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct events *ev = arg;
    (void)fd;
    (void)what;
    static const char ping[] = ": keepalive\n\n";
    for (struct sse_client *c = ev->sse; c; c = c->next)
        sse_send(c, ping, sizeof(ping) - 1);
}

/* GET /v1/events */
static void route_events(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct events *ev = ctx;
    (void)m;
    struct sse_client *c = calloc(1, sizeof(*c));
    if (!c) {
        http_send_error(req, 500, "out of memory");
        return;
    }
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    /* A stream is idle on the read side for as long as it lasts: lift the
     * slow-client timeout that protects ordinary requests. */
    if (c->evcon)
        evhttp_connection_set_timeout(c->evcon, SSE_TIMEOUT_S);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    c->next = ev->sse;
    ev->sse = c;
    static const char hello[] = ": stratq job events\n\n";
    sse_send(c, hello, sizeof(hello) - 1);
}

/* The connection of req closed: drop its SSE stream, if any. */
static void on_connection_closed(void *ctx, struct evhttp_connection *evcon)
{
    struct events *ev = ctx;
    for (struct sse_client **pp = &ev->sse; *pp; pp = &(*pp)->next) {
        if ((*pp)->evcon == evcon) {
            struct sse_client *c = *pp;
            *pp = c->next;
            /* The request was detached from its connection: ending the
             * reply frees it. */
            evhttp_send_reply_end(c->req);
            free(c);
            return;
        }
    }
}

int events_new(struct server *s, struct events **ret)
{
    static const struct server_route routes[] = {{ROUTE_EVENTS, route_events}};
    static const struct queue_sub_ops ops = {on_subscribed, on_event, on_sub_lost};
    const struct queue_names *names = server_names(s);
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    *ret = ev;
    ev->srv = s;
    ev->keepalive_ev = event_new(server_base(s), -1, EV_PERSIST, on_keepalive, ev);
    if (!ev->keepalive_ev)
        return -ENOMEM;
    struct timeval tv = {SSE_KEEPALIVE_S, 0};
    event_add(ev->keepalive_ev, &tv);
    server_add_routes(s, routes, ARRAY_SIZE(routes), ev);
    int r = server_on_close(s, on_connection_closed, ev);
    if (r < 0)
        return r;
    return queue_sub_new(server_base(s), server_url(s), "stratq-api-events", names->events,
                         names->sharded, &ops, ev, &ev->sub);
}

bool events_subscribed(const struct events *ev)
{
    return ev->sub_ready;
}

void events_stop(struct events *ev)
{
    if (!ev)
        return;
    while (ev->sse) {
        struct sse_client *c = ev->sse;
        ev->sse = c->next;
        evhttp_send_reply_end(c->req);
        free(c);
    }
    if (ev->sub) {
        struct queue_sub *sub = ev->sub;
        ev->sub = NULL;
        queue_sub_free(sub);
    }
    if (ev->keepalive_ev)
        event_free(ev->keepalive_ev);
    ev->keepalive_ev = NULL;
}

void events_free(struct events *ev)
{
    events_stop(ev);
    free(ev);
}

/* One subscription to the events channel per API process (SSUBSCRIBE on
 * the node owning the queue's slot on Redis Cluster; conn.h). It wakes the
 * long-poll waiters of jobs that finish (so 1,000 waiters cost one Redis
 * connection, not 1,000) and feeds every Server-Sent Events stream. */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "internal.h"

#define SSE_KEEPALIVE_S 15
#define SSE_TIMEOUT_S (7 * 86400)

struct sse_client {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct sse_client *next;
};

static size_t id_bucket(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % WAITER_BUCKETS;
}

void events_add_waiter(struct api *a, struct pending *p)
{
    if (p->waiting)
        return;
    size_t b = id_bucket(p->id);
    p->next_wait = a->waiters[b];
    a->waiters[b] = p;
    p->waiting = true;
    a->nwaiters++;
}

void events_remove_waiter(struct api *a, struct pending *p)
{
    if (!p->waiting)
        return;
    for (struct pending **pp = &a->waiters[id_bucket(p->id)]; *pp; pp = &(*pp)->next_wait) {
        if (*pp == p) {
            *pp = p->next_wait;
            break;
        }
    }
    p->waiting = false;
    p->next_wait = NULL;
    a->nwaiters--;
}

/* Re-reads every waiter's job: after the subscription was (re)made, a
 * completion may have been missed. */
static void recheck_all_waiters(struct api *a)
{
    for (int b = 0; b < WAITER_BUCKETS; b++) {
        struct pending *p = a->waiters[b];
        while (p) {
            struct pending *next = p->next_wait;
            jobs_reread(p, false);
            p = next;
        }
    }
}

static void wake_waiters(struct api *a, const char *id)
{
    struct pending *p = a->waiters[id_bucket(id)];
    while (p) {
        /* Reading may answer and unlink p: take the next one first. */
        struct pending *next = p->next_wait;
        if (!strcmp(p->id, id))
            jobs_reread(p, true);
        p = next;
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

static void broadcast(struct api *a, const char *payload, size_t len)
{
    struct evbuffer *line = evbuffer_new();
    if (!line)
        return;
    evbuffer_add_printf(line, "event: job\ndata: %.*s\n\n", (int)len, payload);
    size_t n = evbuffer_get_length(line);
    const char *text = (const char *)evbuffer_pullup(line, -1);
    for (struct sse_client *c = a->sse; c; c = c->next)
        sse_send(c, text, n);
    evbuffer_free(line);
}

/* The subscription was (re)made: a completion published while it was not
 * was missed, so every waiter's job is read again. */
static void on_subscribed(void *priv)
{
    struct api *a = priv;
    a->sub_ready = true;
    log_info("subscribed to job events", "{s:s, s:b}", "channel", a->names.events, "sharded",
             a->names.sharded);
    recheck_all_waiters(a);
}

static void on_event(void *priv, const char *payload, size_t len)
{
    struct api *a = priv;
    if (a->sse)
        broadcast(a, payload, len);
    json_t *ev = json_loadb(payload, len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    if (id && status && queue_status_is_terminal(status))
        wake_waiters(a, id);
    json_decref(ev);
}

static void on_sub_lost(void *priv)
{
    struct api *a = priv;
    a->sub_ready = false;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct api *a = arg;
    (void)fd;
    (void)what;
    static const char ping[] = ": keepalive\n\n";
    for (struct sse_client *c = a->sse; c; c = c->next)
        sse_send(c, ping, sizeof(ping) - 1);
}

int events_start(struct api *a)
{
    a->sse_keepalive_ev = event_new(a->base, -1, EV_PERSIST, on_keepalive, a);
    if (!a->sse_keepalive_ev)
        return -1;
    struct timeval tv = {SSE_KEEPALIVE_S, 0};
    event_add(a->sse_keepalive_ev, &tv);
    static const struct queue_sub_ops ops = {on_subscribed, on_event, on_sub_lost};
    return queue_sub_new(a->base, &a->url, "stratq-api-events", a->names.events, a->names.sharded,
                         &ops, a, &a->sub) < 0
               ? -1
               : 0;
}

void events_sse(struct api *a, struct evhttp_request *req)
{
    struct sse_client *c = calloc(1, sizeof(*c));
    if (!c) {
        api_send_error(req, 500, "out of memory");
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
    c->next = a->sse;
    a->sse = c;
    a->nsse++;
    static const char hello[] = ": stratq job events\n\n";
    sse_send(c, hello, sizeof(hello) - 1);
}

void events_connection_closed(struct api *a, struct evhttp_connection *evcon)
{
    for (struct sse_client **pp = &a->sse; *pp; pp = &(*pp)->next) {
        if ((*pp)->evcon == evcon) {
            struct sse_client *c = *pp;
            *pp = c->next;
            a->nsse--;
            /* The request was detached from its connection: ending the
             * reply frees it. */
            evhttp_send_reply_end(c->req);
            free(c);
            return;
        }
    }
}

void events_stop(struct api *a)
{
    while (a->sse) {
        struct sse_client *c = a->sse;
        a->sse = c->next;
        evhttp_send_reply_end(c->req);
        free(c);
    }
    if (a->sub) {
        struct queue_sub *sub = a->sub;
        a->sub = NULL;
        queue_sub_free(sub);
    }
    if (a->sse_keepalive_ev)
        event_free(a->sse_keepalive_ev);
    a->sse_keepalive_ev = NULL;
}

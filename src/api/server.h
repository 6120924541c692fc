/* The API's server core: it listens (evhttp), counts connections against
 * STRATQ_MAX_CONNECTIONS, checks bearer tokens, matches each request
 * against the route table (router.h) and hands it to the handler a route
 * module registered for that route. It owns the command connection to
 * Redis and the requests that wait for it (struct pending): their calls,
 * the 2 s deadline, and answering each at most once.
 *
 * The core knows no route module: modules call it, never the reverse.
 * They register their routes (server_add_routes), a hook for closed
 * connections (server_on_close), and hooks on their own requests
 * (struct pending_ops). */
#ifndef STRATQ_API_SERVER_H
#define STRATQ_API_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../queue/conn.h"
#include "../queue/jobq.h"
#include "../queue/queue.h"
#include "router.h"

/* Redis must answer within this, or the request gets 503. */
#define SERVER_REDIS_TIMEOUT_MS 2000

struct server;

struct server_settings {
    const char *bind;
    int port;
    /* One bearer token a line; NULL or "" turns auth off, which is allowed
     * only on a loopback bind. */
    const char *tokens_file;
    long max_conns;
    int client_timeout_s;
    size_t max_body; /* evhttp reads bodies up to twice this (413 beyond) */
    const char *queue, *prefix;
};

/* Listens as set says and starts connecting to Redis at url (moved into
 * the server: url is left empty). Returns 0, -EADDRNOTAVAIL when set says
 * to listen beyond loopback without tokens, or another negative errno; err
 * says why (empty when it is out of memory). Caller frees with
 * server_free() (also after a failure). */
int server_new(const struct server_settings *set, struct queue_url *url, struct server **ret,
               char *err, size_t errlen);
/* Serves until SIGTERM or SIGINT. */
int server_run(struct server *s);
/* The first half of the teardown, once the route modules have stopped:
 * frees the Redis connection (replies still awaited are delivered as
 * failures), drops the requests still waiting and stops listening. The
 * route modules' state may be freed after this, the server after them. */
void server_stop(struct server *s);
void server_free(struct server *s);

/* A bearer token of the tokens file, with the tenant it submits as ("":
 * the job's own, else "default") and that tenant's cap of running jobs
 * (0: none given). */
struct server_token {
    char *secret;
    char tenant[65];
    long max_running;
    int max_priority; /* 0-9; 9 unless the line says max_priority= */
};
const struct server_token *server_tokens(const struct server *s, size_t *n);

struct event_base *server_base(const struct server *s);
const struct queue_names *server_names(const struct server *s);
const struct queue_url *server_url(const struct server *s);
/* The command connection while Redis is usable, else NULL. */
struct queue_async *server_redis(const struct server *s);
/* Why Redis is not usable ("" when it is, or nothing is known). */
const char *server_redis_error(const struct server *s);

/* --- Routes ----------------------------------------------------------------- */

typedef void server_handler(void *ctx, struct evhttp_request *req, const struct route_match *m);

struct server_route {
    enum route_id id;
    server_handler *handler;
};

/* Serves each of routes[0..n) with its handler, called with ctx. */
void server_add_routes(struct server *s, const struct server_route *routes, size_t n, void *ctx);
/* 0 when every route of router.h has a handler; else -ENOENT, naming in err
 * the first that has none. */
int server_check_routes(const struct server *s, char *err, size_t errlen);

typedef void server_close_fn(void *ctx, struct evhttp_connection *evcon);
/* Calls fn when a connection being served closes (up to 4 hooks;
 * -ENOSPC beyond). */
int server_on_close(struct server *s, server_close_fn *fn, void *ctx);

/* --- Requests waiting for Redis --------------------------------------------- */

struct pending;
typedef void pending_handler(struct pending *p, redisReply *r, void *ctx);

/* What a route module does with a request of its own beyond the core's. */
struct pending_ops {
    /* p was answered (or dropped at shutdown): take it out of any table
     * that would answer it again, stop its timers. May be NULL. */
    void (*answered)(struct pending *p);
    /* p is about to be freed: free what the module added. May be NULL. */
    void (*release)(struct pending *p);
};

/* One HTTP request while it waits for Redis (or, for a module, for
 * anything else). It is answered at most once, and lives until it is
 * answered and no Redis reply for it is outstanding. A module that needs
 * more fields allocates a struct that begins with a struct pending
 * (pending_new's size). */
struct pending {
    struct server *srv;
    struct evhttp_request *req; /* NULL once answered: no longer ours */
    const struct pending_ops *ops;
    int inflight;  /* Redis replies not yet received */
    bool answered; /* a response was sent (or the request dropped) */
    struct event *op_timer;
    struct pending *prev, *next; /* the server's requests, for server_stop */
};

/* A request of size bytes (at least sizeof(struct pending), zeroed) for
 * req; ops may be NULL. NULL, with req answered 500, when out of memory.
 * Freed by pending_done(). */
struct pending *pending_new(struct server *s, struct evhttp_request *req, size_t size,
                            const struct pending_ops *ops);
/* Sends a call (a script's or a plain read) for p; on failure answers 503.
 * The handler runs only if p is still unanswered. The call comes from a
 * queue_build_* function (src/queue/jobq.h), whose result is built_rc
 * (-ENOMEM, -EPROTO: answered 503); it is freed. */
void pending_call(struct pending *p, pending_handler *h, void *ctx, struct queue_call *c,
                  int built_rc);

/* A read that names each worker's key takes two calls: the workers' ids,
 * then build's call made from them, whose reply goes to then. */
struct pending_workers_step {
    int (*build)(struct queue_call *c, const struct queue_names *n, const redisReply *ids);
    pending_handler *then;
};
void pending_call_workers(struct pending *p, const struct pending_workers_step *step);
/* The same for req, on a request of its own (pending_new, then done). */
void pending_start_workers(struct server *s, struct evhttp_request *req,
                           const struct pending_workers_step *step);

/* Answers p (body stolen) unless it was answered already. */
void pending_reply(struct pending *p, int code, json_t *body);
void pending_reply_raw(struct pending *p, int code, struct evbuffer *body, const char *type);
void pending_error(struct pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees p once it is answered and nothing is outstanding. */
void pending_done(struct pending *p);

#endif

/* Connections to Redis: the one owner of connecting, AUTH, SELECT, CLIENT
 * SETNAME, SCRIPT LOAD, readiness, reconnects and, with Redis Cluster
 * (STRATQ_REDIS_CLUSTER_NODES), the redirects a node answers with:
 *
 *   -MOVED slot host:port  the slot lives elsewhere for good: the home
 *                          connection moves there and the command is sent
 *                          again;
 *   -ASK slot host:port    the slot is being migrated and this key already
 *                          left: ASKING then the command, on a connection to
 *                          the target, the home staying where it is;
 *   -TRYAGAIN, -CLUSTERDOWN  the command is sent again after a short backoff.
 *
 * At most QUEUE_MAX_REDIRECTS of them per command, so that a confused
 * cluster cannot make a loop. Every key of one queue lives in one slot (the
 * queue's hash tag), so one home connection serves every call of a process.
 * A plain Redis server never answers with these, and then nothing of this
 * applies. */
#ifndef STRATQ_QUEUE_CONN_H
#define STRATQ_QUEUE_CONN_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "queue.h"
#include "wire.h"

struct event_base;

/* Connect (and TLS handshake) timeout of the API's connections, in ms. */
#define QUEUE_CONNECT_TIMEOUT_MS 3000

/* The error a write gets when fewer replicas than STRATQ_REDIS_MIN_REPLICAS
 * took it within STRATQ_REDIS_WAIT_TIMEOUT_MS (WAIT): the API answers 503,
 * the worker sends the call again (its scripts answer a repeat the same). */
#define QUEUE_NOREPLICAS "NOREPLICAS"

/* The STRATQ_REDIS_* settings besides the URL (empty strings: unset). */
struct queue_url_settings {
    const char *cluster_nodes;
    const char *cacert, *cert, *key, *sni;
    bool tls_insecure;
    const char *sentinels, *sentinel_master, *sentinel_password;
    int min_replicas; /* -1: 1 with sentinels, else 0 */
    int wait_timeout_ms;
};
/* Adds them to a parsed URL, checking that they go together (TLS files
 * need rediss://, a certificate its key, Sentinel and Cluster exclude each
 * other) and loading the TLS files. */
int queue_url_configure(struct queue_url *u, const struct queue_url_settings *s, char *err,
                        size_t errlen);
/* Parses STRATQ_REDIS_URL and configures it with the other settings, as
 * config.h holds them. Caller frees with queue_url_free, also on error. */
int queue_url_load(struct queue_url *u, char *err, size_t errlen);

/* Redirects and retries one command may take. */
#define QUEUE_MAX_REDIRECTS 16

/* The Redis Cluster slot of a key: CRC16-XMODEM of the key (or of its hash
 * tag, the bytes between the first '{' and the next '}' when there are
 * any) modulo 16384, as `CLUSTER KEYSLOT` computes it. */
int queue_key_slot(const char *key, size_t len);

/* Parses "host:port,host:port,..." (STRATQ_REDIS_CLUSTER_NODES) into the
 * url's seed nodes; an empty list leaves the url a plain server's. The
 * url's password applies to every node; its host and port are not used. */
int queue_url_set_cluster(struct queue_url *u, const char *nodes, char *err, size_t errlen);

/* Parses "MOVED 3999 127.0.0.1:6381" and "ASK ..." error replies. Returns
 * 1 (MOVED), 2 (ASK) or 0 (anything else); host is NUL-terminated. */
enum queue_redirect { QUEUE_REDIRECT_NONE, QUEUE_REDIRECT_MOVED, QUEUE_REDIRECT_ASK };
enum queue_redirect queue_redirect_parse(const char *err, char *host, size_t hostlen, int *port);

/* --- Synchronous connection (worker, stratq up) --------------------------- */

/* Read timeout of synchronous connections, in seconds; longer than any
 * blocking command the worker sends. */
#define QUEUE_READ_TIMEOUT_S 10

/* Connects (the first seed that answers, with Cluster), authenticates,
 * selects the db and loads every script. The url must outlive it. Caller
 * frees with queue_sync_free(). c is the home node's connection. */
struct queue_sync {
    struct wire *c;
    char sha[QS__COUNT][41];
    const struct queue_url *url;
    char *host; /* the home node (cluster) or the server */
    int port;
    int timeout_ms;
    char *name;       /* CLIENT SETNAME, given again to every new node */
    struct wire *ask; /* connection to the target of the last ASK */
    char *ask_host;
    int ask_port;
    char errstr[400]; /* why the last call returned NULL */
};
int queue_sync_connect(const struct queue_url *url, int timeout_ms, struct queue_sync **ret,
                       char *err, size_t errlen);
void queue_sync_free(struct queue_sync *q);
/* Why the connection failed (after a call returned NULL). */
const char *queue_sync_errstr(const struct queue_sync *q);

/* Sends a command (printf-style as redisCommand, or argv) to the node of
 * the home slot, following redirects. Returns the reply (caller frees with
 * freeReplyObject) or NULL when the connection was lost. */
redisReply *queue_sync_command(struct queue_sync *q, const char *fmt, ...);
redisReply *queue_sync_command_argv(struct queue_sync *q, int argc, const char **argv,
                                    const size_t *argvlen);

/* Pipelines commands on the home connection (live output: best effort,
 * no redirects followed), then reads n replies: 0, or -EIO when the
 * connection was lost or the node is a replica now. */
int queue_sync_appendf(struct queue_sync *q, const char *fmt, ...);
int queue_sync_drain(struct queue_sync *q, int n);

/* Given the reply r of a write (taken), WAITs for the url's min_replicas:
 * r when they took it (or none is asked for, or r is an error), else an
 * error reply starting QUEUE_NOREPLICAS, or NULL when the connection was
 * lost meanwhile. */
redisReply *queue_sync_durable(struct queue_sync *q, redisReply *r);

/* Runs a script with nkeys keys followed by args (argv has nkeys + nargs
 * strings; argvlen may be NULL for NUL-terminated strings), EVALSHA falling
 * back to EVAL on NOSCRIPT, following redirects. Returns the reply (caller
 * frees with freeReplyObject) or NULL on a connection error. */
redisReply *queue_sync_eval(struct queue_sync *q, enum queue_script s, int nkeys, int argc,
                            const char *const *argv, const size_t *argvlen);

/* Connects (asking the sentinels first), authenticates and PINGs once: 0
 * with "host:port" of the node that answered in err, else the error. */
int queue_sync_check(const struct queue_url *url, int timeout_ms, char *err, size_t errlen);
/* queue_sync_check, retrying until timeout_ms: whether Redis (or one seed
 * of the cluster) answers. */
bool queue_sync_ping(const struct queue_url *url, int timeout_ms);

/* --- Asynchronous connection (the API, on libevent) ----------------------- */

/* What the owner hears: ready once Redis answers its readiness PING (after
 * AUTH, SELECT, SCRIPT LOAD), lost when the connection went and calls fail
 * until ready again. Reconnects, with backoff, are the connection's own. */
struct queue_async_ops {
    void (*ready)(void *priv);
    void (*lost)(void *priv);
};

/* The callback receives the reply (NULL when the connection failed); it is
 * freed after the callback returns. */
typedef void queue_async_cb(redisReply *reply, void *priv);

struct queue_async;
/* Starts connecting (name: CLIENT SETNAME). The url must outlive it.
 * Caller frees with queue_async_free(), which fails every outstanding call
 * (NULL reply). */
int queue_async_new(struct event_base *base, const struct queue_url *url, const char *name,
                    const struct queue_async_ops *ops, void *priv, struct queue_async **ret);
void queue_async_free(struct queue_async *qa);
bool queue_async_ready(const struct queue_async *qa);
/* Why it is not ready ("" when it is): the last connection error. */
const char *queue_async_error(const struct queue_async *qa);

/* As queue_sync_eval and queue_sync_command_argv; 0, or -EIO (not connected)
 * or -ENOMEM, when cb will not be called. */
int queue_async_eval(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                     const char *const *argv, const size_t *argvlen, queue_async_cb *cb,
                     void *priv);
/* As queue_async_eval, then WAIT for the url's min_replicas: cb gets the
 * reply once they took the write, else an error reply starting
 * QUEUE_NOREPLICAS (a submit the API must not acknowledge). */
int queue_async_eval_durable(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                             const char *const *argv, const size_t *argvlen, queue_async_cb *cb,
                             void *priv);
int queue_async_command_argv(struct queue_async *qa, int argc, const char *const *argv,
                             const size_t *argvlen, queue_async_cb *cb, void *priv);

/* --- Subscriptions ---------------------------------------------------------- */

/* Pub/sub on a plain server is SUBSCRIBE: a PUBLISH reaches every
 * subscriber. On Redis Cluster stratq uses sharded pub/sub (Redis 7,
 * struct queue_names' sharded): the scripts SPUBLISH, a message stays on
 * the node that owns the channel's slot (the queue's: the channels carry
 * its hash tag), and a subscriber must SSUBSCRIBE there. A seed that does
 * not own the slot answers SSUBSCRIBE with MOVED, which is followed; when
 * the slot leaves the node (a migration, a failover) Redis 7 ends the
 * subscription with an sunsubscribe message, and the subscriber subscribes
 * again, following the old owner's MOVED to the new one. */

/* What a reply on a subscribed connection is, plain or sharded:
 * (s)subscribe, (s)message (*payload then points at its payload),
 * (s)unsubscribe (the subscription ended: on a cluster, the slot moved),
 * or anything else (an error reply among them). */
enum queue_sub_msg {
    QUEUE_SUB_OTHER,
    QUEUE_SUB_SUBSCRIBED,
    QUEUE_SUB_MESSAGE,
    QUEUE_SUB_UNSUBSCRIBED
};
enum queue_sub_msg queue_sub_parse(const redisReply *r, const redisReply **payload);

/* A blocking subscription to channel (SSUBSCRIBE when sharded, else
 * SUBSCRIBE) on a connection of its own (the worker's control channel):
 * the server, or the seeds in turn, following MOVED to the slot's owner.
 * Its reads time out after timeout_ms. 0 with *ret subscribed, or
 * -ECONNREFUSED or -EIO with err. */
int queue_sync_subscribe(const struct queue_url *url, const char *name, const char *channel,
                         bool sharded, int timeout_ms, struct wire **ret, char *err, size_t errlen);

/* The API's subscription to one channel, on libevent: subscribed is called
 * each time the subscription is (re)made (messages published in between
 * were missed), message with each message's payload, lost when the
 * subscription went (the connection was lost, or the slot moved). It is
 * made again by itself: after a lost connection on the next seed with a
 * cluster, with backoff. */
struct queue_sub_ops {
    void (*subscribed)(void *priv);
    void (*message)(void *priv, const char *payload, size_t len);
    void (*lost)(void *priv);
};
struct queue_sub;
int queue_sub_new(struct event_base *base, const struct queue_url *url, const char *name,
                  const char *channel, bool sharded, const struct queue_sub_ops *ops, void *priv,
                  struct queue_sub **ret);
void queue_sub_free(struct queue_sub *s);

#endif

#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

/* --- Slots, seeds, redirects ---------------------------------------------- */

/* CRC16-XMODEM (polynomial 0x1021, initial value 0), Redis Cluster's. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int queue_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        /* "{}" is no tag: the whole key is hashed. */
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}

/* The most seed nodes STRATQ_REDIS_CLUSTER_NODES may name. */
#define MAX_SEEDS 64

int queue_url_set_cluster(struct queue_url *u, const char *nodes, char *err, size_t errlen)
{
    _cleanup_free_ char *copy = strdup(nodes);
    if (!copy)
        return -ENOMEM;
    int n = 0;
    for (char *save, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        n++;
    if (n == 0)
        return 0;
    if (u->unix_socket) {
        snprintf(err, errlen,
                 "STRATQ_REDIS_CLUSTER_NODES needs a redis:// URL (for its password), not a "
                 "Unix socket");
        return -EINVAL;
    }
    if (u->db) {
        snprintf(err, errlen, "Redis Cluster has database 0 only; the Redis URL names database %d",
                 u->db);
        return -EINVAL;
    }
    if (n > MAX_SEEDS) {
        snprintf(err, errlen, "STRATQ_REDIS_CLUSTER_NODES names %d nodes; at most %d", n,
                 MAX_SEEDS);
        return -EINVAL;
    }
    struct queue_node *v = calloc((size_t)n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    strcpy(copy, nodes);
    int i = 0;
    for (char *save, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *colon = strrchr(tok, ':'), *end;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == tok || end == colon + 1 || *end || port <= 0 || port > 65535) {
            snprintf(err, errlen,
                     "STRATQ_REDIS_CLUSTER_NODES: '%s' is not host:port (a list like "
                     "10.0.0.1:6379,10.0.0.2:6379)",
                     tok);
            goto fail;
        }
        v[i].host = strndup(tok, (size_t)(colon - tok));
        v[i].port = (int)port;
        if (!v[i++].host)
            goto fail;
    }
    for (int k = 0; k < u->nnodes; k++)
        free(u->nodes[k].host);
    free(u->nodes);
    u->nodes = v;
    u->nnodes = n;
    return 0;
fail:
    for (int k = 0; k < i; k++)
        free(v[k].host);
    free(v);
    return -EINVAL;
}

enum queue_redirect queue_redirect_parse(const char *err, char *host, size_t hostlen, int *port)
{
    enum queue_redirect kind;
    const char *p;
    if (!strncmp(err, "MOVED ", 6)) {
        kind = QUEUE_REDIRECT_MOVED;
        p = err + 6;
    } else if (!strncmp(err, "ASK ", 4)) {
        kind = QUEUE_REDIRECT_ASK;
        p = err + 4;
    } else {
        return QUEUE_REDIRECT_NONE;
    }
    p = strchr(p, ' ');
    const char *colon = p ? strrchr(p + 1, ':') : NULL;
    if (!colon)
        return QUEUE_REDIRECT_NONE;
    char *end;
    long v = strtol(colon + 1, &end, 10);
    size_t hl = (size_t)(colon - (p + 1));
    if (end == colon + 1 || *end || v <= 0 || v > 65535 || hl >= hostlen)
        return QUEUE_REDIRECT_NONE;
    /* An empty host means the node that answered (Redis 7's unknown
     * endpoint): the caller fills it in. */
    memcpy(host, p + 1, hl);
    host[hl] = '\0';
    *port = (int)v;
    return kind;
}

/* Errors after which the same command succeeds shortly: a multi-key
 * command during a slot migration, a cluster that lost a primary. */
static bool is_cluster_retry(const char *err)
{
    return !strncmp(err, "TRYAGAIN", 8) || !strncmp(err, "CLUSTERDOWN", 11);
}

static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8);
}

/* A call that does not match its script's table entry is a bug in stratq:
 * stop at once rather than run the script with shifted arguments. */
static void check_call(enum queue_script s, int nkeys, int argc)
{
    if (!queue_script_check(s, nkeys, argc)) {
        log_error("a script call does not match the script's KEYS and ARGV", "{s:s, s:i, s:i}",
                  "script", queue_script_name(s), "keys", nkeys, "strings", argc);
        abort();
    }
}

/* --- Synchronous ------------------------------------------------------------ */

static int reply_ok(redisReply *r, char *err, size_t errlen, const char *what)
{
    if (!r) {
        snprintf(err, errlen, "%s: connection lost", what);
        return -EIO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", what, r->str);
        freeReplyObject(r);
        return -EIO;
    }
    freeReplyObject(r);
    return 0;
}

/* Connects to one node (or the server), authenticates, selects the db and
 * names the connection. */
static int node_connect(const struct queue_url *url, const char *host, int port, int timeout_ms,
                        const char *name, redisContext **ret, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bool unix_socket = url->unix_socket && !url->nnodes;
    redisContext *c = unix_socket ? redisConnectUnixWithTimeout(host, tv)
                                  : redisConnectWithTimeout(host, port, tv);
    int r;
    if (!c || c->err) {
        if (unix_socket)
            snprintf(err, errlen, "cannot connect to Redis at %s: %s", host,
                     c ? c->errstr : "out of memory");
        else
            snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", host, port,
                     c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return -ECONNREFUSED;
    }
    /* hiredis applies the connect timeout to the connect only: without a
     * read timeout a frozen Redis or a half-open connection would block the
     * worker (and its heartbeats and stop signals) for ever. */
    struct timeval rtv = {QUEUE_READ_TIMEOUT_S, 0};
    redisSetTimeout(c, rtv);
    redisEnableKeepAlive(c);
    if (url->password) {
        r = reply_ok(redisCommand(c, "AUTH %s", url->password), err, errlen, "AUTH");
        if (r < 0)
            goto fail;
    }
    if (url->db) {
        r = reply_ok(redisCommand(c, "SELECT %d", url->db), err, errlen, "SELECT");
        if (r < 0)
            goto fail;
    }
    if (name) {
        redisReply *rep = redisCommand(c, "CLIENT SETNAME %s", name);
        if (rep)
            freeReplyObject(rep);
    }
    *ret = c;
    return 0;
fail:
    redisFree(c);
    return r;
}

void queue_sync_free(struct queue_sync *q)
{
    if (!q)
        return;
    if (q->c)
        redisFree(q->c);
    if (q->ask)
        redisFree(q->ask);
    free(q->host);
    free(q->ask_host);
    free(q->name);
    free(q);
}

const char *queue_sync_errstr(const struct queue_sync *q)
{
    if (q->errstr[0])
        return q->errstr;
    return q->c && q->c->errstr[0] ? q->c->errstr : "connection lost";
}

/* The first node that answers: the server, or the first seed. */
static int connect_first(const struct queue_url *url, int timeout_ms, const char *name,
                         redisContext **ret, char **ret_host, int *ret_port, char *err,
                         size_t errlen)
{
    int n = url->nnodes ? url->nnodes : 1, r = -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        const char *host = url->nnodes ? url->nodes[i].host : url->host;
        int port = url->nnodes ? url->nodes[i].port : url->port;
        r = node_connect(url, host, port, timeout_ms, name, ret, err, errlen);
        if (r == 0) {
            *ret_host = strdup(host);
            *ret_port = port;
            if (*ret_host)
                return 0;
            redisFree(*ret);
            return -ENOMEM;
        }
    }
    return r;
}

int queue_sync_connect(const struct queue_url *url, int timeout_ms, struct queue_sync **ret,
                       char *err, size_t errlen)
{
    struct queue_sync *q = calloc(1, sizeof(*q));
    int r;

    if (!q)
        return -ENOMEM;
    q->url = url;
    q->timeout_ms = timeout_ms;
    r = connect_first(url, timeout_ms, NULL, &q->c, &q->host, &q->port, err, errlen);
    if (r < 0)
        goto fail;
    for (int i = 0; i < QS__COUNT; i++) {
        redisReply *rep = redisCommand(q->c, "SCRIPT LOAD %s", queue_script_source(i));
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            snprintf(err, errlen, "SCRIPT LOAD %s: %s", queue_script_name(i),
                     !rep                             ? "connection lost"
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                      : "unexpected reply");
            if (rep)
                freeReplyObject(rep);
            r = -EIO;
            goto fail;
        }
        memcpy(q->sha[i], rep->str, 41);
        freeReplyObject(rep);
    }
    *ret = q;
    return 0;
fail:
    queue_sync_free(q);
    return r;
}

/* Sends a formatted command on c, after ASKING when asking, and reads its
 * reply; NULL when the connection failed. */
static redisReply *send_on(redisContext *c, const char *cmd, size_t len, bool asking)
{
    redisReply *r = NULL;
    if (asking)
        redisAppendCommand(c, "ASKING");
    redisAppendFormattedCommand(c, cmd, len);
    if (asking) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            return NULL;
        freeReplyObject(r);
        r = NULL;
    }
    if (redisGetReply(c, (void **)&r) != REDIS_OK)
        return NULL;
    return r;
}

/* Moves the home connection to the node a MOVED named. A node that just
 * took a slot may still be starting: a few tries, with backoff. */
static int sync_move_home(struct queue_sync *q, const char *host, int port)
{
    redisContext *c = NULL;
    int r = -ECONNREFUSED;
    for (int i = 0; i < 4 && r < 0; i++) {
        if (i)
            usleep((useconds_t)(100000 << i));
        r = node_connect(q->url, host, port, q->timeout_ms, q->name, &c, q->errstr,
                         sizeof(q->errstr));
    }
    char *h = r == 0 ? strdup(host) : NULL;
    if (!h) {
        if (c)
            redisFree(c);
        return r < 0 ? r : -ENOMEM;
    }
    log_info("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect", "MOVED", "host",
             host, "port", port);
    redisFree(q->c);
    q->c = c;
    free(q->host);
    q->host = h;
    q->port = port;
    return 0;
}

static void sync_drop_ask(struct queue_sync *q)
{
    if (q->ask)
        redisFree(q->ask);
    free(q->ask_host);
    q->ask = NULL;
    q->ask_host = NULL;
}

/* The connection to the target of an ASK (kept for the next ones: a
 * migration sends many to the same node). */
static redisContext *sync_ask_conn(struct queue_sync *q, const char *host, int port)
{
    if (q->ask && q->ask_port == port && !strcmp(q->ask_host, host))
        return q->ask;
    sync_drop_ask(q);
    redisContext *c;
    if (node_connect(q->url, host, port, q->timeout_ms, q->name, &c, q->errstr, sizeof(q->errstr)) <
        0)
        return NULL;
    q->ask_host = strdup(host);
    if (!q->ask_host) {
        redisFree(c);
        return NULL;
    }
    q->ask = c;
    q->ask_port = port;
    return c;
}

/* Sends a formatted command to the home slot's node, following MOVED, ASK,
 * TRYAGAIN and CLUSTERDOWN up to QUEUE_MAX_REDIRECTS times; then returns
 * the last reply, whatever it is. */
static redisReply *sync_send(struct queue_sync *q, const char *cmd, size_t len)
{
    redisContext *c = q->c;
    bool asking = false;
    int backoff_ms = 10;
    q->errstr[0] = '\0';
    for (int n = 0;; n++) {
        redisReply *r = send_on(c, cmd, len, asking);
        if (!r) {
            snprintf(q->errstr, sizeof(q->errstr), "%s",
                     c->errstr[0] ? c->errstr : "connection lost");
            if (c == q->ask)
                sync_drop_ask(q);
            return NULL;
        }
        if (r->type != REDIS_REPLY_ERROR || n >= QUEUE_MAX_REDIRECTS)
            return r;
        char host[256];
        int port;
        enum queue_redirect k = queue_redirect_parse(r->str, host, sizeof(host), &port);
        if (k != QUEUE_REDIRECT_NONE) {
            freeReplyObject(r);
            if (!host[0])
                snprintf(host, sizeof(host), "%s", c == q->ask ? q->ask_host : q->host);
            if (k == QUEUE_REDIRECT_MOVED) {
                if (sync_move_home(q, host, port) < 0)
                    return NULL;
                c = q->c;
                asking = false;
            } else {
                log_debug("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect",
                          "ASK", "host", host, "port", port);
                c = sync_ask_conn(q, host, port);
                if (!c)
                    return NULL;
                asking = true;
            }
            continue;
        }
        if (is_cluster_retry(r->str)) {
            freeReplyObject(r);
            usleep((useconds_t)backoff_ms * 1000);
            backoff_ms = backoff_ms * 2 > 200 ? 200 : backoff_ms * 2;
            c = q->c;
            asking = false;
            continue;
        }
        return r;
    }
}

redisReply *queue_sync_command_argv(struct queue_sync *q, int argc, const char **argv,
                                    const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return NULL;
    redisReply *r = sync_send(q, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

redisReply *queue_sync_command(struct queue_sync *q, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    redisReply *r = sync_send(q, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

/* Builds "EVALSHA sha nkeys argv..." (or EVAL src ...) into a new array. */
static int build_eval(const char *cmd, const char *body, int nkeys, int argc,
                      const char *const *argv, const size_t *argvlen, const char ***ret_v,
                      size_t **ret_l, char *numbuf)
{
    const char **v = calloc((size_t)argc + 3, sizeof(char *));
    size_t *l = calloc((size_t)argc + 3, sizeof(size_t));
    if (!v || !l) {
        free(v);
        free(l);
        return -ENOMEM;
    }
    snprintf(numbuf, 16, "%d", nkeys);
    v[0] = cmd;
    l[0] = strlen(cmd);
    v[1] = body;
    l[1] = strlen(body);
    v[2] = numbuf;
    l[2] = strlen(numbuf);
    for (int i = 0; i < argc; i++) {
        v[3 + i] = argv[i];
        l[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    *ret_v = v;
    *ret_l = l;
    return 0;
}

redisReply *queue_sync_eval(struct queue_sync *q, enum queue_script s, int nkeys, int argc,
                            const char *const *argv, const size_t *argvlen)
{
    const char **v;
    size_t *l;
    char num[16];
    redisReply *r;

    check_call(s, nkeys, argc);
    if (build_eval("EVALSHA", q->sha[s], nkeys, argc, argv, argvlen, &v, &l, num) < 0)
        return NULL;
    r = queue_sync_command_argv(q, argc + 3, v, l);
    if (is_noscript(r)) {
        /* Redis restarted, its script cache was flushed, or the slot moved
         * to a node that never saw the script. */
        freeReplyObject(r);
        v[0] = "EVAL";
        l[0] = 4;
        v[1] = queue_script_source(s);
        l[1] = strlen(queue_script_source(s));
        r = queue_sync_command_argv(q, argc + 3, v, l);
    }
    free(v);
    free(l);
    return r;
}

bool queue_sync_ping(const struct queue_url *url, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    char err[256];
    do {
        redisContext *c;
        char *host = NULL;
        int port;
        if (connect_first(url, 1000, NULL, &c, &host, &port, err, sizeof(err)) == 0) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            free(host);
            if (ok)
                return true;
        }
        usleep(50000);
    } while (util_mono_ms() < deadline);
    return false;
}

/* --- Asynchronous ----------------------------------------------------------- */

struct acall;

struct queue_async {
    struct event_base *base;
    const struct queue_url *url;
    char *name;
    struct queue_async_ops ops;
    void *priv;
    redisAsyncContext *ac; /* the home node's connection */
    char *host;            /* the home node (or the server) */
    int port;
    int attempt; /* connects since Redis was last ready (picks the seed) */
    bool ready, freeing;
    char sha[QS__COUNT][41];
    bool loaded;
    struct event *reconnect_ev, *ping_ev;
    int reconnect_ms, ping_retry_ms;
    redisAsyncContext *ask; /* to the target of the last ASK */
    char *ask_host;
    int ask_port;
    struct acall *waiting; /* calls in a TRYAGAIN backoff */
};

/* A call kept until its reply, so that it can be sent again: as EVAL after
 * NOSCRIPT, to another node after a redirect. */
struct acall {
    struct queue_async *qa;
    bool eval, as_eval;
    enum queue_script script;
    int argc;       /* eval: strings, the 3 leading words included */
    const char **v; /* eval: v[0..2] borrowed, the rest owned */
    size_t *l;      /* eval */
    char num[16];   /* eval: v[2] */
    char *cmd;      /* the formatted command */
    size_t len;
    char *ask_host; /* set while following an ASK */
    int ask_port;
    int redirects, backoff_ms;
    struct event *timer;
    struct acall *next, *prev; /* in qa->waiting */
    queue_async_cb *cb;
    void *priv;
};

static void acall_free(struct acall *c)
{
    if (c->v)
        for (int i = 3; i < c->argc; i++)
            free((char *)c->v[i]);
    free(c->v);
    free(c->l);
    if (c->cmd)
        redisFreeCommand(c->cmd);
    free(c->ask_host);
    if (c->timer)
        event_free(c->timer);
    free(c);
}

static void acall_deliver(struct acall *c, redisReply *r)
{
    c->cb(r, c->priv);
    acall_free(c);
}

/* After re-sending: a call that could not be sent fails (NULL reply). */
static void acall_deliver_if(struct acall *c, bool sent)
{
    if (!sent)
        acall_deliver(c, NULL);
}

static void qa_connect(struct queue_async *qa);

static void schedule_reconnect(struct queue_async *qa)
{
    if (qa->freeing || evtimer_pending(qa->reconnect_ev, NULL))
        return;
    struct timeval tv = {qa->reconnect_ms / 1000, (qa->reconnect_ms % 1000) * 1000};
    evtimer_add(qa->reconnect_ev, &tv);
    qa->reconnect_ms = qa->reconnect_ms * 2 > 5000 ? 5000 : qa->reconnect_ms * 2;
}

static void set_lost(struct queue_async *qa)
{
    if (qa->ready) {
        qa->ready = false;
        if (qa->ops.lost)
            qa->ops.lost(qa->priv);
    }
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    qa_connect(arg);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct queue_async *qa = ac->data;
    if (!qa)
        return; /* a home left behind after a MOVED */
    if (status != REDIS_OK) {
        log_warn("cannot connect to Redis, retrying", "{s:s, s:i}", "error", ac->errstr, "retry_ms",
                 qa->reconnect_ms);
        if ((const redisAsyncContext *)qa->ac == ac)
            qa->ac = NULL;
        set_lost(qa);
        schedule_reconnect(qa);
        return;
    }
    log_info("connected to Redis", "{s:s, s:i}", "host", qa->host, "port", qa->port);
    qa->reconnect_ms = 100;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct queue_async *qa = ac->data;
    if (!qa)
        return;
    if ((const redisAsyncContext *)qa->ac == ac)
        qa->ac = NULL;
    set_lost(qa);
    if (status != REDIS_OK) {
        log_warn("lost the Redis connection, reconnecting", "{s:s}", "error", ac->errstr);
        schedule_reconnect(qa);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_error("Redis refused the connection setup", "{s:s, s:s}", "step", (char *)priv, "error",
                  r->str);
}

static void on_load_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct queue_async *qa = ac->data;
    redisReply *r = reply;
    int index = (int)(intptr_t)priv;
    if (!qa || qa->ac != ac)
        return;
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(qa->sha[index], r->str, 41);
        if (index == QS__COUNT - 1)
            qa->loaded = true;
    }
}

static void load_scripts(struct queue_async *qa, redisAsyncContext *ac)
{
    qa->loaded = false;
    for (int i = 0; i < QS__COUNT; i++)
        redisAsyncCommand(ac, on_load_reply, (void *)(intptr_t)i, "SCRIPT LOAD %s",
                          queue_script_source(i));
}

/* The PING queued after AUTH and SELECT: Redis is usable only once it
 * answers, so /healthz stays 503 while the password is wrong or while
 * Redis is still loading its data after a restart. Until then the PING is
 * repeated, with backoff. */
static void on_ready_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    struct queue_async *qa = ac->data;
    redisReply *r = reply;
    (void)priv;
    if (!qa || qa->ac != ac || !r)
        return; /* the connection is gone; reconnecting re-sends the PING */
    if (r->type == REDIS_REPLY_STATUS) {
        qa->ping_retry_ms = 100;
        qa->attempt = 0;
        if (!qa->ready) {
            qa->ready = true;
            if (qa->ops.ready)
                qa->ops.ready(qa->priv);
        }
        return;
    }
    if (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9))
        log_error("Redis refuses commands; check the password in the Redis URL", "{s:s}", "error",
                  r->str);
    else
        log_warn("Redis is not ready yet", "{s:s, s:i}", "error", r->str, "retry_ms",
                 qa->ping_retry_ms);
    struct timeval tv = {qa->ping_retry_ms / 1000, (qa->ping_retry_ms % 1000) * 1000};
    evtimer_add(qa->ping_ev, &tv);
    qa->ping_retry_ms = qa->ping_retry_ms * 2 > 5000 ? 5000 : qa->ping_retry_ms * 2;
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    struct queue_async *qa = arg;
    (void)fd;
    (void)what;
    if (qa->ac && !qa->ready) {
        load_scripts(qa, qa->ac);
        redisAsyncCommand(qa->ac, on_ready_ping, NULL, "PING");
    }
}

/* Makes a new home connection to host:port. Commands are queued at once,
 * and sent in order once connected. */
static void connect_home(struct queue_async *qa, const char *host, int port)
{
    bool unix_socket = qa->url->unix_socket && !qa->url->nnodes;
    char *h = host == qa->host ? qa->host : strdup(host);
    redisAsyncContext *ac = !h            ? NULL
                            : unix_socket ? redisAsyncConnectUnix(host)
                                          : redisAsyncConnect(host, port);
    if (h != qa->host) {
        free(qa->host);
        qa->host = h;
    }
    qa->port = port;
    if (!ac || ac->err) {
        log_warn("cannot connect to Redis, retrying", "{s:s}", "error",
                 ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        set_lost(qa);
        schedule_reconnect(qa);
        return;
    }
    ac->data = qa;
    qa->ac = ac;
    redisLibeventAttach(ac, qa->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (qa->url->password)
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", qa->url->password);
    if (qa->url->db)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", qa->url->db);
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s", qa->name);
    load_scripts(qa, ac);
    redisAsyncCommand(ac, on_ready_ping, NULL, "PING");
}

/* The node to (re)connect to: the home first, then, with a cluster, the
 * seeds in turn, so that a home node that died is not waited for. */
static void qa_connect(struct queue_async *qa)
{
    const struct queue_url *u = qa->url;
    if (qa->ac)
        return;
    if (u->nnodes && (qa->attempt > 0 || !qa->host)) {
        const struct queue_node *n = &u->nodes[(qa->attempt > 0 ? qa->attempt - 1 : 0) % u->nnodes];
        qa->attempt++;
        connect_home(qa, n->host, n->port);
        return;
    }
    qa->attempt++;
    connect_home(qa, qa->host ? qa->host : u->host, qa->host ? qa->port : u->port);
}

/* A MOVED: the home connection goes to host:port. The old one finishes
 * what it was sent (its replies, MOVED too, send those calls again) and
 * closes. */
static void async_move_home(struct queue_async *qa, const char *host, int port)
{
    if (qa->ac && qa->port == port && !strcmp(qa->host, host))
        return;
    log_info("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect", "MOVED", "host",
             host, "port", port);
    if (qa->ac) {
        redisAsyncContext *old = qa->ac;
        old->data = NULL;
        qa->ac = NULL;
        redisAsyncDisconnect(old);
    }
    qa->attempt = 0;
    connect_home(qa, host, port);
}

static void on_ask_gone(const redisAsyncContext *ac, int status)
{
    struct queue_async *qa = ac->data;
    if (status != REDIS_OK && qa && (const redisAsyncContext *)qa->ask == ac) {
        qa->ask = NULL;
        free(qa->ask_host);
        qa->ask_host = NULL;
    }
}

static void on_ask_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    on_ask_gone(ac, REDIS_ERR);
}

static void drop_ask(struct queue_async *qa, bool now)
{
    if (qa->ask) {
        redisAsyncContext *old = qa->ask;
        old->data = NULL;
        qa->ask = NULL;
        if (now)
            redisAsyncFree(old);
        else
            redisAsyncDisconnect(old);
    }
    free(qa->ask_host);
    qa->ask_host = NULL;
}

static redisAsyncContext *async_ask_conn(struct queue_async *qa, const char *host, int port)
{
    if (qa->ask && qa->ask_port == port && !strcmp(qa->ask_host, host))
        return qa->ask;
    drop_ask(qa, false);
    qa->ask_host = strdup(host);
    redisAsyncContext *ac = qa->ask_host ? redisAsyncConnect(host, port) : NULL;
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        free(qa->ask_host);
        qa->ask_host = NULL;
        return NULL;
    }
    ac->data = qa;
    qa->ask = ac;
    qa->ask_port = port;
    redisLibeventAttach(ac, qa->base);
    redisAsyncSetConnectCallback(ac, on_ask_gone);
    redisAsyncSetDisconnectCallback(ac, on_ask_disconnect);
    if (qa->url->password)
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", qa->url->password);
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s", qa->name);
    return ac;
}

static void on_acall_reply(redisAsyncContext *ac, void *reply, void *priv);

static int acall_send(struct acall *c)
{
    struct queue_async *qa = c->qa;
    redisAsyncContext *ac = qa->ac;
    if (qa->freeing)
        return -EIO;
    if (c->ask_host) {
        ac = async_ask_conn(qa, c->ask_host, c->ask_port);
        if (!ac || redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
            return -EIO;
    }
    if (!ac || redisAsyncFormattedCommand(ac, on_acall_reply, c, c->cmd, c->len) != REDIS_OK)
        return -EIO;
    return 0;
}

static void on_acall_timer(evutil_socket_t fd, short what, void *arg)
{
    struct acall *c = arg;
    struct queue_async *qa = c->qa;
    (void)fd;
    (void)what;
    if (c->prev)
        c->prev->next = c->next;
    else
        qa->waiting = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    if (acall_send(c) < 0)
        acall_deliver(c, NULL);
}

/* TRYAGAIN or CLUSTERDOWN: the call goes home again after a backoff. */
static int acall_wait(struct acall *c)
{
    struct queue_async *qa = c->qa;
    if (!c->timer && !(c->timer = evtimer_new(qa->base, on_acall_timer, c)))
        return -ENOMEM;
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 200 ? 200 : c->backoff_ms * 2) : 10;
    struct timeval tv = {0, c->backoff_ms * 1000};
    evtimer_add(c->timer, &tv);
    c->prev = NULL;
    c->next = qa->waiting;
    if (qa->waiting)
        qa->waiting->prev = c;
    qa->waiting = c;
    return 0;
}

static int acall_format(struct acall *c)
{
    if (c->cmd)
        redisFreeCommand(c->cmd);
    c->cmd = NULL;
    int len = redisFormatCommandArgv(&c->cmd, c->argc, c->v, c->l);
    if (len < 0)
        return -ENOMEM;
    c->len = (size_t)len;
    return 0;
}

static void on_acall_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct acall *c = priv;
    struct queue_async *qa = c->qa;
    redisReply *r = reply;
    (void)ac;
    if (!r || r->type != REDIS_REPLY_ERROR || qa->freeing) {
        acall_deliver(c, r);
        return;
    }
    if (c->eval && !c->as_eval && is_noscript(r)) {
        /* Redis restarted, its script cache was flushed, or the slot moved
         * to a node that never saw the script. */
        const char *src = queue_script_source(c->script);
        c->as_eval = true;
        c->v[0] = "EVAL";
        c->l[0] = 4;
        c->v[1] = src;
        c->l[1] = strlen(src);
        acall_deliver_if(c, acall_format(c) == 0 && acall_send(c) == 0);
        return;
    }
    if (c->redirects >= QUEUE_MAX_REDIRECTS) {
        acall_deliver(c, r);
        return;
    }
    char host[256];
    int port;
    enum queue_redirect k = queue_redirect_parse(r->str, host, sizeof(host), &port);
    if (k != QUEUE_REDIRECT_NONE) {
        c->redirects++;
        if (!host[0])
            snprintf(host, sizeof(host), "%s", c->ask_host ? c->ask_host : qa->host);
        free(c->ask_host);
        c->ask_host = NULL;
        if (k == QUEUE_REDIRECT_MOVED) {
            async_move_home(qa, host, port);
        } else {
            log_debug("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect", "ASK",
                      "host", host, "port", port);
            c->ask_host = strdup(host);
            c->ask_port = port;
        }
        acall_deliver_if(c, (k == QUEUE_REDIRECT_MOVED || c->ask_host) && acall_send(c) == 0);
        return;
    }
    if (is_cluster_retry(r->str)) {
        c->redirects++;
        free(c->ask_host);
        c->ask_host = NULL;
        if (acall_wait(c) == 0)
            return;
    }
    acall_deliver(c, r);
}

int queue_async_new(struct event_base *base, const struct queue_url *url, const char *name,
                    const struct queue_async_ops *ops, void *priv, struct queue_async **ret)
{
    struct queue_async *qa = calloc(1, sizeof(*qa));
    if (!qa)
        return -ENOMEM;
    qa->base = base;
    qa->url = url;
    qa->ops = *ops;
    qa->priv = priv;
    qa->reconnect_ms = qa->ping_retry_ms = 100;
    qa->name = strdup(name);
    qa->reconnect_ev = evtimer_new(base, on_reconnect_timer, qa);
    qa->ping_ev = evtimer_new(base, on_ping_timer, qa);
    if (!qa->name || !qa->reconnect_ev || !qa->ping_ev) {
        queue_async_free(qa);
        return -ENOMEM;
    }
    qa_connect(qa);
    *ret = qa;
    return 0;
}

void queue_async_free(struct queue_async *qa)
{
    if (!qa)
        return;
    qa->freeing = true;
    while (qa->waiting) {
        struct acall *c = qa->waiting;
        qa->waiting = c->next;
        acall_deliver(c, NULL);
    }
    drop_ask(qa, true);
    if (qa->ac) {
        redisAsyncContext *ac = qa->ac;
        ac->data = NULL;
        qa->ac = NULL;
        redisAsyncFree(ac);
    }
    if (qa->reconnect_ev)
        event_free(qa->reconnect_ev);
    if (qa->ping_ev)
        event_free(qa->ping_ev);
    free(qa->host);
    free(qa->name);
    free(qa);
}

bool queue_async_ready(const struct queue_async *qa)
{
    return qa && qa->ready;
}

int queue_async_eval(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                     const char *const *argv, const size_t *argvlen, queue_async_cb *cb, void *priv)
{
    check_call(s, nkeys, argc);
    if (!qa->ac || qa->freeing)
        return -EIO;
    struct acall *c = calloc(1, sizeof(*c));
    int n = argc + 3;
    if (!c)
        return -ENOMEM;
    c->qa = qa;
    c->eval = true;
    c->as_eval = !qa->loaded;
    c->script = s;
    c->cb = cb;
    c->priv = priv;
    c->v = calloc((size_t)n, sizeof(char *));
    c->l = calloc((size_t)n, sizeof(size_t));
    if (!c->v || !c->l) {
        acall_free(c);
        return -ENOMEM;
    }
    snprintf(c->num, sizeof(c->num), "%d", nkeys);
    c->v[0] = qa->loaded ? "EVALSHA" : "EVAL";
    c->v[1] = qa->loaded ? qa->sha[s] : queue_script_source(s);
    c->v[2] = c->num;
    for (int i = 0; i < 3; i++)
        c->l[i] = strlen(c->v[i]);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        char *copy = malloc(len + 1);
        if (!copy) {
            acall_free(c);
            return -ENOMEM;
        }
        memcpy(copy, argv[i], len);
        copy[len] = '\0';
        c->v[3 + i] = copy;
        c->l[3 + i] = len;
        c->argc = 4 + i;
    }
    c->argc = n;
    if (acall_format(c) < 0) {
        acall_free(c);
        return -ENOMEM;
    }
    if (acall_send(c) < 0) {
        acall_free(c);
        return -EIO;
    }
    return 0;
}

int queue_async_command_argv(struct queue_async *qa, int argc, const char *const *argv,
                             const size_t *argvlen, queue_async_cb *cb, void *priv)
{
    if (!qa->ac || qa->freeing)
        return -EIO;
    struct acall *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->qa = qa;
    c->cb = cb;
    c->priv = priv;
    int len = redisFormatCommandArgv(&c->cmd, argc, (const char **)argv, argvlen);
    if (len < 0) {
        c->cmd = NULL;
        acall_free(c);
        return -ENOMEM;
    }
    c->len = (size_t)len;
    if (acall_send(c) < 0) {
        acall_free(c);
        return -EIO;
    }
    return 0;
}

/* --- Subscriptions ---------------------------------------------------------- */

/* Whether a subscribed connection's reply kind k is name, plain or sharded
 * ("s" + name: ssubscribe, smessage, sunsubscribe). */
static bool is_kind(const char *k, const char *name)
{
    return !strcmp(k, name) || (k[0] == 's' && !strcmp(k + 1, name));
}

enum queue_sub_msg queue_sub_parse(const redisReply *r, const redisReply **payload)
{
    *payload = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return QUEUE_SUB_OTHER;
    const char *k = r->element[0]->str;
    if (is_kind(k, "subscribe"))
        return QUEUE_SUB_SUBSCRIBED;
    if (is_kind(k, "unsubscribe"))
        return QUEUE_SUB_UNSUBSCRIBED;
    if (is_kind(k, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
        *payload = r->element[2];
        return QUEUE_SUB_MESSAGE;
    }
    return QUEUE_SUB_OTHER;
}

static const char *subscribe_command(bool sharded)
{
    return sharded ? "SSUBSCRIBE" : "SUBSCRIBE";
}

/* A MOVED in reply r to a (S)SUBSCRIBE sent to at: 1 with the node named
 * (at itself for Redis 7's empty host) in host and port, else 0. */
static int sub_moved(const redisReply *r, const char *at, char *host, size_t hostlen, int *port)
{
    if (!r || r->type != REDIS_REPLY_ERROR ||
        queue_redirect_parse(r->str, host, hostlen, port) != QUEUE_REDIRECT_MOVED)
        return 0;
    if (!host[0])
        snprintf(host, hostlen, "%s", at);
    log_info("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect", "MOVED", "host",
             host, "port", *port);
    return 1;
}

int queue_sync_subscribe(const struct queue_url *url, const char *channel, bool sharded,
                         int timeout_ms, redisContext **ret, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const char *argv[] = {subscribe_command(sharded), channel};
    int nseeds = url->nnodes ? url->nnodes : 1, seed = 0, redirects = 0, rc = -ECONNREFUSED;
    char moved[256] = "", at[256];
    int moved_port = 0;
    while (moved[0] || seed < nseeds) {
        int port;
        if (moved[0]) {
            snprintf(at, sizeof(at), "%s", moved);
            port = moved_port;
            moved[0] = '\0';
        } else {
            snprintf(at, sizeof(at), "%s", url->nnodes ? url->nodes[seed].host : url->host);
            port = url->nnodes ? url->nodes[seed].port : url->port;
            seed++;
        }
        redisContext *c;
        if ((rc = node_connect(url, at, port, timeout_ms, NULL, &c, err, errlen)) < 0)
            continue;
        redisSetTimeout(c, tv);
        redisReply *r = redisCommandArgv(c, 2, argv, NULL);
        if (r && r->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            *ret = c;
            return 0;
        }
        rc = -EIO;
        snprintf(err, errlen, "%s %s on %s:%d: %s", argv[0], channel, at, port,
                 !r                             ? c->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
        if (redirects++ >= QUEUE_MAX_REDIRECTS ||
            !sub_moved(r, at, moved, sizeof(moved), &moved_port))
            moved[0] = '\0';
        if (r)
            freeReplyObject(r);
        redisFree(c);
    }
    return rc;
}

/* The API's: a non-blocking hiredis context of its own on libevent, rather
 * than hiredis' async API, which (in the hiredis of Debian 12, 0.14) knows
 * SUBSCRIBE but not SSUBSCRIBE. */
struct queue_sub {
    struct event_base *base;
    const struct queue_url *url;
    char *name, *channel;
    bool sharded;
    struct queue_sub_ops ops;
    void *priv;
    redisContext *c;         /* NULL between connections */
    struct event *rev, *wev; /* c's fd readable, writable (what it holds unsent) */
    struct event *retry_ev;
    bool connecting;
    int setup; /* the setup replies still to come (AUTH, CLIENT SETNAME) */
    char *at;  /* the node c is connected to */
    int at_port;
    char *moved; /* where the last MOVED sent it: the next connect goes there */
    int moved_port;
    int redirects; /* MOVED followed since it last subscribed */
    int reconnect_ms;
    int node; /* the seed of the next try, with a cluster */
};

static void sub_connect(struct queue_sub *s);

static void sub_close(struct queue_sub *s)
{
    if (s->rev)
        event_free(s->rev);
    if (s->wev)
        event_free(s->wev);
    s->rev = s->wev = NULL;
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
    s->connecting = false;
}

static void sub_lost(struct queue_sub *s)
{
    if (s->ops.lost)
        s->ops.lost(s->priv);
}

static void on_sub_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub_connect(arg);
}

/* Drops the connection and tries again after a backoff, on the next seed
 * with a cluster. */
static void sub_retry(struct queue_sub *s)
{
    sub_close(s);
    sub_lost(s);
    free(s->moved);
    s->moved = NULL;
    s->node++;
    struct timeval tv = {s->reconnect_ms / 1000, (s->reconnect_ms % 1000) * 1000};
    evtimer_add(s->retry_ev, &tv);
    s->reconnect_ms = s->reconnect_ms * 2 > 5000 ? 5000 : s->reconnect_ms * 2;
}

/* Queues the (S)SUBSCRIBE; the write event sends it. */
static void sub_send_subscribe(struct queue_sub *s)
{
    const char *argv[] = {subscribe_command(s->sharded), s->channel};
    redisAppendCommandArgv(s->c, 2, argv, NULL);
    event_add(s->wev, NULL);
}

/* Whether the connect in progress failed (read once the fd is ready). */
static bool sub_connect_failed(struct queue_sub *s)
{
    int e = 0;
    socklen_t len = sizeof(e);
    if (getsockopt(s->c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    s->connecting = false;
    if (!e)
        return false;
    log_warn("cannot connect for the events subscription, retrying", "{s:s, s:i, s:s, s:i}", "host",
             s->at, "port", s->at_port, "error", strerror(e), "retry_ms", s->reconnect_ms);
    sub_retry(s);
    return true;
}

static void on_sub_write(evutil_socket_t fd, short what, void *arg)
{
    struct queue_sub *s = arg;
    int done = 0;
    (void)fd;
    (void)what;
    if (s->connecting && sub_connect_failed(s))
        return;
    if (redisBufferWrite(s->c, &done) != REDIS_OK) {
        log_warn("lost the events subscription, reconnecting", "{s:s}", "error", s->c->errstr);
        sub_retry(s);
    } else if (!done) {
        event_add(s->wev, NULL);
    }
}

/* Handles one reply; false when the connection was dropped with it. */
static bool sub_reply(struct queue_sub *s, redisReply *r)
{
    if (s->setup > 0) {
        /* The AUTH reply comes first, when there is one. */
        bool auth = s->url->password && s->setup == 2;
        s->setup--;
        if (auth && r->type == REDIS_REPLY_ERROR) {
            log_error("Redis refused the events subscription; check the password in the Redis URL",
                      "{s:s}", "error", r->str);
            sub_retry(s);
            return false;
        }
        return true;
    }
    const redisReply *payload;
    switch (queue_sub_parse(r, &payload)) {
    case QUEUE_SUB_SUBSCRIBED:
        s->reconnect_ms = 100;
        s->redirects = 0;
        log_debug("subscribed", "{s:s, s:s, s:s, s:i}", "channel", s->channel, "command",
                  subscribe_command(s->sharded), "host", s->at, "port", s->at_port);
        s->ops.subscribed(s->priv);
        return true;
    case QUEUE_SUB_MESSAGE:
        s->ops.message(s->priv, payload->str, payload->len);
        return true;
    case QUEUE_SUB_UNSUBSCRIBED:
        /* Redis 7 ends a sharded subscription when the channel's slot
         * leaves the node (a migration, a failover): the node answers the
         * new SSUBSCRIBE with MOVED to the slot's new owner. */
        log_info("the events channel's slot left the node; subscribing again", "{s:s, s:s, s:i}",
                 "channel", s->channel, "host", s->at, "port", s->at_port);
        sub_lost(s);
        sub_send_subscribe(s);
        return true;
    case QUEUE_SUB_OTHER:
        break;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return true;
    char host[256];
    int port;
    if (s->redirects < QUEUE_MAX_REDIRECTS && sub_moved(r, s->at, host, sizeof(host), &port)) {
        char *h = strdup(host);
        if (h) {
            s->redirects++;
            sub_close(s);
            free(s->moved);
            s->moved = h;
            s->moved_port = port;
            sub_connect(s);
            return false;
        }
    }
    if (s->sharded && !strncmp(r->str, "ERR unknown command", 19))
        log_error("Redis Cluster needs Redis 7.0 or newer: stratq uses sharded pub/sub there",
                  "{s:s}", "error", r->str);
    log_warn("cannot subscribe to the events channel, retrying", "{s:s, s:s, s:i}", "error", r->str,
             "channel", s->channel, "retry_ms", s->reconnect_ms);
    sub_retry(s);
    return false;
}

static void on_sub_read(evutil_socket_t fd, short what, void *arg)
{
    struct queue_sub *s = arg;
    (void)fd;
    (void)what;
    if (s->connecting && sub_connect_failed(s))
        return;
    if (redisBufferRead(s->c) != REDIS_OK) {
        log_warn("lost the events subscription, reconnecting", "{s:s}", "error", s->c->errstr);
        sub_retry(s);
        return;
    }
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReplyFromReader(s->c, (void **)&r) != REDIS_OK) {
            log_warn("lost the events subscription, reconnecting", "{s:s}", "error", s->c->errstr);
            sub_retry(s);
            return;
        }
        if (!r)
            return;
        bool kept = sub_reply(s, r);
        freeReplyObject(r);
        if (!kept)
            return;
    }
}

/* Connects to where a MOVED sent it, else to the server or the seed of
 * this try, and subscribes. */
static void sub_connect(struct queue_sub *s)
{
    const struct queue_url *u = s->url;
    const char *host = s->moved    ? s->moved
                       : u->nnodes ? u->nodes[s->node % u->nnodes].host
                                   : u->host;
    int port = s->moved ? s->moved_port : u->nnodes ? u->nodes[s->node % u->nnodes].port : u->port;
    char *at = strdup(host);
    free(s->at);
    s->at = at;
    s->at_port = port;
    free(s->moved); /* host may be it: at is the copy */
    s->moved = NULL;
    bool unix_socket = u->unix_socket && !u->nnodes;
    s->c = !at ? NULL : unix_socket ? redisConnectUnixNonBlock(at) : redisConnectNonBlock(at, port);
    if (!s->c || s->c->err) {
        log_warn("cannot connect for the events subscription, retrying", "{s:s, s:i, s:s, s:i}",
                 "host", at ? at : "?", "port", port, "error",
                 s->c ? s->c->errstr : "out of memory", "retry_ms", s->reconnect_ms);
        sub_retry(s);
        return;
    }
    s->rev = event_new(s->base, s->c->fd, EV_READ | EV_PERSIST, on_sub_read, s);
    s->wev = event_new(s->base, s->c->fd, EV_WRITE, on_sub_write, s);
    if (!s->rev || !s->wev) {
        sub_retry(s);
        return;
    }
    redisEnableKeepAlive(s->c);
    s->connecting = true;
    s->setup = 0;
    if (u->password) {
        const char *auth[] = {"AUTH", u->password};
        redisAppendCommandArgv(s->c, 2, auth, NULL);
        s->setup++;
    }
    const char *setname[] = {"CLIENT", "SETNAME", s->name};
    redisAppendCommandArgv(s->c, 3, setname, NULL);
    s->setup++;
    /* A plain server's messages reach every subscriber, whatever the db;
     * a sharded channel's only those on the node owning its slot. */
    sub_send_subscribe(s);
    event_add(s->rev, NULL);
}

int queue_sub_new(struct event_base *base, const struct queue_url *url, const char *name,
                  const char *channel, bool sharded, const struct queue_sub_ops *ops, void *priv,
                  struct queue_sub **ret)
{
    struct queue_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->url = url;
    s->sharded = sharded;
    s->ops = *ops;
    s->priv = priv;
    s->reconnect_ms = 100;
    s->name = strdup(name);
    s->channel = strdup(channel);
    s->retry_ev = evtimer_new(base, on_sub_timer, s);
    if (!s->name || !s->channel || !s->retry_ev) {
        queue_sub_free(s);
        return -ENOMEM;
    }
    sub_connect(s);
    *ret = s;
    return 0;
}

void queue_sub_free(struct queue_sub *s)
{
    if (!s)
        return;
    sub_close(s);
    if (s->retry_ev)
        event_free(s->retry_ev);
    free(s->name);
    free(s->channel);
    free(s->at);
    free(s->moved);
    free(s);
}

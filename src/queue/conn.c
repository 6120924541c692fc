#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/config.h"
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

static int parse_nodes(const char *what, const char *list, struct queue_node **ret, int *nret,
                       char *err, size_t errlen)
{
    _cleanup_free_ char *copy = strdup(list);
    if (!copy)
        return -ENOMEM;
    int n = 0;
    for (char *save, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        n++;
    *ret = NULL;
    *nret = 0;
    if (n == 0)
        return 0;
    if (n > MAX_SEEDS) {
        snprintf(err, errlen, "%s names %d nodes; at most %d", what, n, MAX_SEEDS);
        return -EINVAL;
    }
    struct queue_node *v = calloc((size_t)n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    strcpy(copy, list);
    int i = 0;
    for (char *save, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *colon = strrchr(tok, ':'), *end;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == tok || end == colon + 1 || *end || port <= 0 || port > 65535) {
            snprintf(err, errlen,
                     "%s: '%s' is not host:port (a list like 10.0.0.1:6379,10.0.0.2:6379)", what,
                     tok);
            goto fail;
        }
        v[i].host = strndup(tok, (size_t)(colon - tok));
        v[i].port = (int)port;
        if (!v[i++].host)
            goto fail;
    }
    *ret = v;
    *nret = n;
    return 0;
fail:
    for (int k = 0; k < i; k++)
        free(v[k].host);
    free(v);
    return -EINVAL;
}

int queue_url_set_cluster(struct queue_url *u, const char *nodes, char *err, size_t errlen)
{
    struct queue_node *v;
    int n, r = parse_nodes("STRATQ_REDIS_CLUSTER_NODES", nodes, &v, &n, err, errlen);
    if (r < 0 || n == 0)
        return r; /* an empty list: a plain server */
    if (u->unix_socket || u->db) {
        if (u->unix_socket)
            snprintf(err, errlen,
                     "STRATQ_REDIS_CLUSTER_NODES needs a redis:// URL (for its password), not a "
                     "Unix socket");
        else
            snprintf(err, errlen,
                     "Redis Cluster has database 0 only; the Redis URL names database %d", u->db);
        for (int k = 0; k < n; k++)
            free(v[k].host);
        free(v);
        return -EINVAL;
    }
    for (int k = 0; k < u->nnodes; k++)
        free(u->nodes[k].host);
    free(u->nodes);
    u->nodes = v;
    u->nnodes = n;
    return 0;
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

/* --- Settings ----------------------------------------------------------------- */

static int dup_opt(char **dst, const char *v)
{
    free(*dst);
    *dst = v && *v ? strdup(v) : NULL;
    return v && *v && !*dst ? -ENOMEM : 0;
}

/* A file the settings name must be readable now, not at the first
 * connect: the error names the setting. One that does not exist counts as
 * unset (*path becomes NULL), with a line in the log: a Kubernetes Secret
 * mounts only the keys it holds, and the Deployments name all three. */
static int check_file(const char *setting, char **path, char *err, size_t errlen)
{
    if (!*path || access(*path, R_OK) == 0)
        return 0;
    if (errno == ENOENT) {
        log_info("a TLS file the settings name does not exist: taken as unset", "{s:s, s:s}",
                 "setting", setting, "path", *path);
        free(*path);
        *path = NULL;
        return 0;
    }
    snprintf(err, errlen, "%s: cannot read %s: %s", setting, *path, strerror(errno));
    return -EINVAL;
}

int queue_url_configure(struct queue_url *u, const struct queue_url_settings *s, char *err,
                        size_t errlen)
{
    int r;
    if (s->cluster_nodes && *s->cluster_nodes &&
        (r = queue_url_set_cluster(u, s->cluster_nodes, err, errlen)) < 0)
        return r;
    if (s->sentinels && *s->sentinels) {
        if (u->nnodes) {
            snprintf(err, errlen,
                     "STRATQ_REDIS_SENTINELS and STRATQ_REDIS_CLUSTER_NODES are both set: a "
                     "Redis Cluster fails over by itself, without sentinels; set one");
            return -EINVAL;
        }
        if (u->unix_socket) {
            snprintf(err, errlen,
                     "STRATQ_REDIS_SENTINELS needs a redis:// or rediss:// URL (for its password "
                     "and database), not a Unix socket");
            return -EINVAL;
        }
        if ((r = parse_nodes("STRATQ_REDIS_SENTINELS", s->sentinels, &u->sentinels, &u->nsentinels,
                             err, errlen)) < 0)
            return r;
        if (!s->sentinel_master || !*s->sentinel_master) {
            snprintf(err, errlen,
                     "STRATQ_REDIS_SENTINEL_MASTER is empty: name the primary the "
                     "sentinels monitor");
            return -EINVAL;
        }
        if (dup_opt(&u->master, s->sentinel_master) < 0)
            return -ENOMEM;
        if (s->sentinel_password && *s->sentinel_password) {
            const char *colon = strchr(s->sentinel_password, ':');
            if (colon) {
                u->sentinel_user =
                    strndup(s->sentinel_password, (size_t)(colon - s->sentinel_password));
                if (dup_opt(&u->sentinel_password, colon + 1) < 0 || !u->sentinel_user)
                    return -ENOMEM;
            } else if (dup_opt(&u->sentinel_password, s->sentinel_password) < 0) {
                return -ENOMEM;
            }
        }
    }
    u->min_replicas = s->min_replicas >= 0 ? s->min_replicas : u->nsentinels ? 1 : 0;
    u->wait_timeout_ms = s->wait_timeout_ms > 0 ? s->wait_timeout_ms : 1000;
    bool files = (s->cacert && *s->cacert) || (s->cert && *s->cert) || (s->key && *s->key) ||
                 (s->sni && *s->sni);
    if (!u->tls) {
        /* Not fatal: a deployment may mount the certificates whatever its
         * URL says. But the user meant TLS, so say it loudly. */
        if (files || s->tls_insecure)
            log_warn("a TLS setting is given but the Redis URL is redis://: the connection is NOT "
                     "encrypted; write rediss://host:port to use TLS",
                     "{s:s}", "setting",
                     s->tls_insecure           ? "STRATQ_REDIS_TLS_INSECURE"
                     : s->cacert && *s->cacert ? "STRATQ_REDIS_CACERT"
                     : s->cert && *s->cert     ? "STRATQ_REDIS_CERT"
                     : s->key && *s->key       ? "STRATQ_REDIS_KEY"
                                               : "STRATQ_REDIS_SNI");
        return 0;
    }
    if (dup_opt(&u->tls_opt.cacert, s->cacert) < 0 || dup_opt(&u->tls_opt.cert, s->cert) < 0 ||
        dup_opt(&u->tls_opt.key, s->key) < 0 || dup_opt(&u->tls_opt.sni, s->sni) < 0)
        return -ENOMEM;
    u->tls_opt.insecure = s->tls_insecure;
    if ((r = check_file("STRATQ_REDIS_CACERT", &u->tls_opt.cacert, err, errlen)) < 0 ||
        (r = check_file("STRATQ_REDIS_CERT", &u->tls_opt.cert, err, errlen)) < 0 ||
        (r = check_file("STRATQ_REDIS_KEY", &u->tls_opt.key, err, errlen)) < 0)
        return r;
    if (!u->tls_opt.cert != !u->tls_opt.key) {
        snprintf(err, errlen, "%s is set without %s: a client certificate needs both",
                 u->tls_opt.cert ? "STRATQ_REDIS_CERT" : "STRATQ_REDIS_KEY",
                 u->tls_opt.cert ? "STRATQ_REDIS_KEY" : "STRATQ_REDIS_CERT");
        return -EINVAL;
    }
    return wire_tls_new(&u->tls_opt, &u->tls_ctx, err, errlen);
}

int queue_url_load(struct queue_url *u, char *err, size_t errlen)
{
    struct queue_url_settings st = {
        .cluster_nodes = config_str(CFG_REDIS_CLUSTER_NODES),
        .cacert = config_str(CFG_REDIS_CACERT),
        .cert = config_str(CFG_REDIS_CERT),
        .key = config_str(CFG_REDIS_KEY),
        .sni = config_str(CFG_REDIS_SNI),
        .tls_insecure = config_bool(CFG_REDIS_TLS_INSECURE),
        .sentinels = config_str(CFG_REDIS_SENTINELS),
        .sentinel_master = config_str(CFG_REDIS_SENTINEL_MASTER),
        .sentinel_password = config_str(CFG_REDIS_SENTINEL_PASSWORD),
        .min_replicas = (int)config_int(CFG_REDIS_MIN_REPLICAS),
        .wait_timeout_ms = (int)config_int(CFG_REDIS_WAIT_TIMEOUT),
    };
    memset(u, 0, sizeof(*u));
    int r = queue_url_parse(config_str(CFG_REDIS_URL), u, err, errlen);
    if (r < 0)
        return r;
    if ((r = queue_url_configure(u, &st, err, errlen)) < 0)
        queue_url_free(u);
    return r;
}

/* --- Synchronous ------------------------------------------------------------ */

static int reply_ok(redisReply *r, char *err, size_t errlen, const char *what, struct wire *c)
{
    if (!r) {
        snprintf(err, errlen, "%s", wire_errstr(c));
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

/* AUTH [user] password, as the URL (or the sentinel settings) say. */
static int auth_argv(const char *user, const char *password, const char **argv)
{
    int n = 0;
    argv[n++] = "AUTH";
    if (user)
        argv[n++] = user;
    argv[n++] = password;
    return n;
}

static void login_error(char *err, size_t errlen, const char *where, const char *user,
                        const char *reply, const char *setting)
{
    snprintf(err, errlen, "Redis at %s refused the login as %s: %s (check %s)", where,
             user ? user : "the default user", reply, setting);
}

/* Connects to one node (or the server), authenticates, selects the db and
 * names the connection; with Sentinel, also checks that it is the
 * primary (a sentinel may still name the old one during a failover). */
static int node_connect(const struct queue_url *url, const char *host, int port, int timeout_ms,
                        const char *name, struct wire **ret, char *err, size_t errlen)
{
    bool unix_socket = url->unix_socket && !url->nnodes;
    struct wire *c;
    /* The read timeout keeps a frozen Redis or a half-open connection from
     * blocking the worker (and its heartbeats and stop signals) for ever. */
    int r = wire_connect(host, port, unix_socket, url->tls ? url->tls_ctx : NULL, url->tls_opt.sni,
                         timeout_ms, QUEUE_READ_TIMEOUT_S * 1000, &c, err, errlen);
    if (r < 0)
        return r;
    char where[300];
    snprintf(where, sizeof(where), unix_socket ? "%s" : "%s:%d", host, port);
    if (url->password) {
        const char *argv[3];
        redisReply *rep =
            wire_command_argv(c, auth_argv(url->user, url->password, argv), argv, NULL);
        if (rep && rep->type == REDIS_REPLY_ERROR) {
            login_error(err, errlen, where, url->user, rep->str,
                        "the user and password in the Redis URL");
            freeReplyObject(rep);
            r = -EACCES;
            goto fail;
        }
        if ((r = reply_ok(rep, err, errlen, "AUTH", c)) < 0)
            goto fail;
    }
    if (url->db &&
        (r = reply_ok(wire_command(c, "SELECT %d", url->db), err, errlen, "SELECT", c)) < 0)
        goto fail;
    if (name) {
        redisReply *rep = wire_command(c, "CLIENT SETNAME %s", name);
        if (rep)
            freeReplyObject(rep);
    }
    if (url->nsentinels) {
        redisReply *rep = wire_command(c, "ROLE");
        bool primary = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                       rep->element[0]->type == REDIS_REPLY_STRING &&
                       !strcmp(rep->element[0]->str, "master");
        if (!primary) {
            snprintf(err, errlen,
                     "%s, which the sentinels name as the primary of '%s', is not a primary (%s): "
                     "a failover is under way",
                     where, url->master,
                     !rep                             ? wire_errstr(c)
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                      : "ROLE says replica");
            if (rep)
                freeReplyObject(rep);
            r = -EAGAIN;
            goto fail;
        }
        freeReplyObject(rep);
    }
    *ret = c;
    return 0;
fail:
    wire_free(c);
    return r;
}

/* Asks the sentinels in turn for the address of url's primary. 0 with
 * host and port; -ENOENT when every sentinel that answered knows no
 * primary of that name; -ECONNREFUSED when none answered. */
static int sentinel_ask(const struct queue_url *u, int timeout_ms, char *host, size_t hostlen,
                        int *port, char *err, size_t errlen)
{
    int unknown = 0, r = -ECONNREFUSED;
    char last[700] = "";
    for (int i = 0; i < u->nsentinels; i++) {
        const struct queue_node *s = &u->sentinels[i];
        struct wire *c;
        if (wire_connect(s->host, s->port, false, u->tls ? u->tls_ctx : NULL, NULL, timeout_ms,
                         timeout_ms, &c, last, sizeof(last)) < 0)
            continue;
        redisReply *rep = NULL;
        if (u->sentinel_password) {
            const char *argv[3];
            rep = wire_command_argv(c, auth_argv(u->sentinel_user, u->sentinel_password, argv),
                                    argv, NULL);
            if (!rep || rep->type == REDIS_REPLY_ERROR) {
                char where[300];
                snprintf(where, sizeof(where), "sentinel %.250s:%d", s->host, s->port);
                login_error(last, sizeof(last), where, u->sentinel_user,
                            rep ? rep->str : wire_errstr(c), "STRATQ_REDIS_SENTINEL_PASSWORD");
                if (rep)
                    freeReplyObject(rep);
                wire_free(c);
                continue;
            }
            freeReplyObject(rep);
        }
        rep = wire_command(c, "SENTINEL get-master-addr-by-name %s", u->master);
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            rep->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(host, hostlen, "%s", rep->element[0]->str);
            *port = atoi(rep->element[1]->str);
            freeReplyObject(rep);
            wire_free(c);
            return 0;
        }
        if (rep && rep->type == REDIS_REPLY_NIL)
            unknown++;
        else
            snprintf(last, sizeof(last), "sentinel %s:%d: %s", s->host, s->port,
                     !rep                             ? wire_errstr(c)
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                      : "unexpected reply");
        if (rep)
            freeReplyObject(rep);
        wire_free(c);
    }
    if (unknown) {
        snprintf(err, errlen,
                 "no sentinel knows a primary named '%s' (%d of %d asked answered; check "
                 "STRATQ_REDIS_SENTINEL_MASTER)",
                 u->master, unknown, u->nsentinels);
        r = -ENOENT;
    } else {
        snprintf(err, errlen, "no sentinel answered (STRATQ_REDIS_SENTINELS): %s",
                 last[0] ? last : "none is reachable");
    }
    return r;
}

void queue_sync_free(struct queue_sync *q)
{
    if (!q)
        return;
    wire_free(q->c);
    wire_free(q->ask);
    free(q->host);
    free(q->ask_host);
    free(q->name);
    free(q);
}

const char *queue_sync_errstr(const struct queue_sync *q)
{
    if (q->errstr[0])
        return q->errstr;
    return q->c ? wire_errstr(q->c) : "connection lost";
}

/* The first node that answers: the server (the primary the sentinels
 * name), or the first seed. */
static int connect_first(const struct queue_url *url, int timeout_ms, const char *name,
                         struct wire **ret, char **ret_host, int *ret_port, char *err,
                         size_t errlen)
{
    if (url->nsentinels) {
        char host[256];
        int port, r = sentinel_ask(url, timeout_ms < 1000 ? timeout_ms : 1000, host, sizeof(host),
                                   &port, err, errlen);
        if (r < 0)
            return r;
        if ((r = node_connect(url, host, port, timeout_ms, name, ret, err, errlen)) < 0)
            return r;
        if (!(*ret_host = strdup(host))) {
            wire_free(*ret);
            return -ENOMEM;
        }
        *ret_port = port;
        return 0;
    }
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
            wire_free(*ret);
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
        redisReply *rep = wire_command(q->c, "SCRIPT LOAD %s", queue_script_source(i));
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            snprintf(err, errlen, "SCRIPT LOAD %s: %s", queue_script_name(i),
                     !rep                             ? wire_errstr(q->c)
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
static redisReply *send_on(struct wire *c, const char *cmd, size_t len, bool asking)
{
    redisReply *r = NULL;
    if (asking && wire_appendf(c, "ASKING") < 0)
        return NULL;
    if (wire_append(c, cmd, len) < 0)
        return NULL;
    if (asking) {
        if (wire_get_reply(c, &r) < 0)
            return NULL;
        freeReplyObject(r);
        r = NULL;
    }
    if (wire_get_reply(c, &r) < 0)
        return NULL;
    return r;
}

/* Moves the home connection to the node a MOVED named. A node that just
 * took a slot may still be starting: a few tries, with backoff. */
static int sync_move_home(struct queue_sync *q, const char *host, int port)
{
    struct wire *c = NULL;
    int r = -ECONNREFUSED;
    for (int i = 0; i < 4 && r < 0; i++) {
        if (i)
            usleep((useconds_t)(100000 << i));
        r = node_connect(q->url, host, port, q->timeout_ms, q->name, &c, q->errstr,
                         sizeof(q->errstr));
    }
    char *h = r == 0 ? strdup(host) : NULL;
    if (!h) {
        wire_free(c);
        return r < 0 ? r : -ENOMEM;
    }
    log_info("following a Redis Cluster redirect", "{s:s, s:s, s:i}", "redirect", "MOVED", "host",
             host, "port", port);
    wire_free(q->c);
    q->c = c;
    free(q->host);
    q->host = h;
    q->port = port;
    return 0;
}

static void sync_drop_ask(struct queue_sync *q)
{
    wire_free(q->ask);
    free(q->ask_host);
    q->ask = NULL;
    q->ask_host = NULL;
}

/* The connection to the target of an ASK (kept for the next ones: a
 * migration sends many to the same node). */
static struct wire *sync_ask_conn(struct queue_sync *q, const char *host, int port)
{
    if (q->ask && q->ask_port == port && !strcmp(q->ask_host, host))
        return q->ask;
    sync_drop_ask(q);
    struct wire *c;
    if (node_connect(q->url, host, port, q->timeout_ms, q->name, &c, q->errstr, sizeof(q->errstr)) <
        0)
        return NULL;
    q->ask_host = strdup(host);
    if (!q->ask_host) {
        wire_free(c);
        return NULL;
    }
    q->ask = c;
    q->ask_port = port;
    return c;
}

/* -READONLY: the node was a primary and is a replica now (a failover, or
 * a managed service moving its name to another node). */
static bool is_readonly(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strstr(r->str, "READONLY") != NULL;
}

/* Sends a formatted command to the home slot's node, following MOVED, ASK,
 * TRYAGAIN and CLUSTERDOWN up to QUEUE_MAX_REDIRECTS times; then returns
 * the last reply, whatever it is. A READONLY reply counts as a lost
 * connection: the caller connects again, to the new primary. */
static redisReply *sync_send(struct queue_sync *q, const char *cmd, size_t len)
{
    struct wire *c = q->c;
    bool asking = false;
    int backoff_ms = 10;
    q->errstr[0] = '\0';
    if (!c) {
        snprintf(q->errstr, sizeof(q->errstr), "not connected");
        return NULL;
    }
    for (int n = 0;; n++) {
        redisReply *r = send_on(c, cmd, len, asking);
        if (!r) {
            snprintf(q->errstr, sizeof(q->errstr), "%s", wire_errstr(c));
            if (c == q->ask)
                sync_drop_ask(q);
            return NULL;
        }
        if (is_readonly(r)) {
            snprintf(q->errstr, sizeof(q->errstr),
                     "Redis at %s:%d is a replica now (%s); connecting to the primary again",
                     q->host, q->port, r->str);
            freeReplyObject(r);
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

int queue_sync_appendf(struct queue_sync *q, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    int r = q->c ? wire_append(q->c, cmd, (size_t)len) : -EIO;
    redisFreeCommand(cmd);
    return r;
}

int queue_sync_drain(struct queue_sync *q, int n)
{
    int rc = 0;
    for (int k = 0; k < n; k++) {
        redisReply *r = NULL;
        if (!q->c || wire_get_reply(q->c, &r) < 0)
            return -EIO;
        if (is_readonly(r))
            rc = -EIO;
        freeReplyObject(r);
    }
    return rc;
}

/* A reply made here, as Redis would send an error. */
static redisReply *error_reply(const char *fmt, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (!r || !(r->str = strdup(buf))) {
        free(r);
        return NULL;
    }
    r->type = REDIS_REPLY_ERROR;
    r->len = strlen(buf);
    return r;
}

/* Whether a WAIT's reply w says enough replicas took the writes. */
static bool wait_enough(const struct queue_url *u, const redisReply *w)
{
    return w && w->type == REDIS_REPLY_INTEGER && w->integer >= u->min_replicas;
}

/* The QUEUE_NOREPLICAS error reply a caller gets for a WAIT's reply w that
 * fell short (NULL without memory). */
static redisReply *wait_shortfall(const struct queue_url *u, const redisReply *w)
{
    return error_reply(
        "%s %lld of %d replicas took the write within %d ms (WAIT)%s%s", QUEUE_NOREPLICAS,
        w->type == REDIS_REPLY_INTEGER ? w->integer : 0LL, u->min_replicas, u->wait_timeout_ms,
        w->type == REDIS_REPLY_ERROR ? ": " : "", w->type == REDIS_REPLY_ERROR ? w->str : "");
}

redisReply *queue_sync_durable(struct queue_sync *q, redisReply *r)
{
    const struct queue_url *u = q->url;
    if (!r || r->type == REDIS_REPLY_ERROR || u->min_replicas <= 0)
        return r;
    redisReply *w = queue_sync_command(q, "WAIT %d %d", u->min_replicas, u->wait_timeout_ms);
    if (!w) {
        freeReplyObject(r);
        return NULL;
    }
    if (wait_enough(u, w)) {
        freeReplyObject(w);
        return r;
    }
    redisReply *e = wait_shortfall(u, w); /* NULL without memory: as lost */
    freeReplyObject(w);
    freeReplyObject(r);
    return e;
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

int queue_sync_check(const struct queue_url *url, int timeout_ms, char *err, size_t errlen)
{
    struct wire *c;
    char *host = NULL;
    int port;
    int r = connect_first(url, timeout_ms, NULL, &c, &host, &port, err, errlen);
    if (r < 0)
        return r;
    redisReply *rep = wire_command(c, "PING");
    if (!rep || rep->type != REDIS_REPLY_STATUS) {
        if (!rep)
            snprintf(err, errlen, "%s", wire_errstr(c));
        else
            snprintf(err, errlen, "PING: %s", rep->str ? rep->str : "unexpected reply");
        r = -EIO;
    } else {
        snprintf(err, errlen, "%s:%d", host, port);
    }
    if (rep)
        freeReplyObject(rep);
    wire_free(c);
    free(host);
    return r;
}

bool queue_sync_ping(const struct queue_url *url, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    char err[400];
    do {
        if (queue_sync_check(url, 1000, err, sizeof(err)) == 0)
            return true;
        usleep(50000);
    } while (util_mono_ms() < deadline);
    return false;
}

/* --- Asynchronous ----------------------------------------------------------- */

struct acall;
struct sentinel_query;

struct queue_async {
    struct event_base *base;
    const struct queue_url *url;
    char *name;
    struct queue_async_ops ops;
    void *priv;
    struct awire *ac; /* the home node's connection */
    unsigned gen;     /* of ac: replies to an older one's setup are ignored */
    unsigned err_gen; /* the gen whose setup failed first */
    char *host;       /* the home node (or the server) */
    int port;
    int attempt; /* connects since Redis was last ready (picks the seed) */
    bool ready, freeing;
    char sha[QS__COUNT][41];
    bool loaded;
    struct event *reconnect_ev, *ping_ev;
    int reconnect_ms, ping_retry_ms;
    struct awire *ask; /* to the target of the last ASK */
    char *ask_host;
    int ask_port;
    struct acall *waiting;        /* calls in a TRYAGAIN backoff */
    struct sentinel_query *query; /* asking the sentinels for the primary */
    struct awire *watch;          /* +switch-master, on one sentinel */
    struct event *watch_ev;
    int watch_next, watch_retry_ms;
    char error[400]; /* why Redis is not usable now ("" once ready) */
    /* Group commit: the durable calls answered on the home connection
     * since its last WAIT was sent; one WAIT covers every write the
     * connection made before it, so one is in flight at a time. */
    struct acall *batch;
    bool wait_busy;
};

/* A call kept until its reply, so that it can be sent again: as EVAL after
 * NOSCRIPT, to another node after a redirect. */
struct acall {
    struct queue_async *qa;
    bool eval, as_eval;
    bool durable;     /* WAIT for the replicas before the reply is given */
    redisReply *held; /* the reply, while WAIT runs */
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
    struct acall *wnext;       /* in a batch that one WAIT covers */
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
    if (c->held)
        freeReplyObject(c->held);
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
static void batch_fail(struct queue_async *qa);

static void schedule_reconnect(struct queue_async *qa)
{
    if (qa->freeing || evtimer_pending(qa->reconnect_ev, NULL))
        return;
    struct timeval tv = {qa->reconnect_ms / 1000, (qa->reconnect_ms % 1000) * 1000};
    evtimer_add(qa->reconnect_ev, &tv);
    /* With sentinels the wait is short: a failover is over in seconds and
     * +switch-master may not reach this process. */
    int cap = qa->url->nsentinels ? 1000 : 5000;
    qa->reconnect_ms = qa->reconnect_ms * 2 > cap ? cap : qa->reconnect_ms * 2;
}

static void set_error(struct queue_async *qa, const char *err)
{
    snprintf(qa->error, sizeof(qa->error), "%s", err);
}

/* The first setup error of the home connection is the one to tell: the
 * NOAUTH of every command after a refused AUTH is its consequence. */
static bool first_setup_error(struct queue_async *qa)
{
    if (qa->err_gen == qa->gen)
        return false;
    qa->err_gen = qa->gen;
    return true;
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

/* Drops the home connection (its calls still get their replies) and
 * connects again: to the primary the sentinels name now, or the server. */
static void home_drop(struct queue_async *qa, const char *why)
{
    if (qa->ac) {
        struct awire *old = qa->ac;
        qa->ac = NULL;
        awire_close(old);
    }
    set_error(qa, why);
    set_lost(qa);
    schedule_reconnect(qa);
}

static void on_home_connected(void *priv)
{
    struct queue_async *qa = priv;
    log_info("connected to Redis", "{s:s, s:i, s:b}", "host", qa->host, "port", qa->port, "tls",
             qa->url->tls);
}

static void on_home_closed(void *priv, const char *err)
{
    struct queue_async *qa = priv;
    qa->ac = NULL;
    /* Said once; its repeats while Redis stays away are debug lines. */
    if (strcmp(err ? err : "", qa->error))
        log_warn("lost the Redis connection, reconnecting", "{s:s, s:i}", "error", err, "retry_ms",
                 qa->reconnect_ms);
    else
        log_debug("still no Redis, reconnecting", "{s:s, s:i}", "error", err, "retry_ms",
                  qa->reconnect_ms);
    set_error(qa, err);
    set_lost(qa);
    schedule_reconnect(qa);
}

static const struct awire_ops home_ops = {.connected = on_home_connected, .closed = on_home_closed};

/* The setup replies of one home connection (gen): those of a connection
 * that is gone are ignored. */
struct setup {
    struct queue_async *qa;
    unsigned gen;
    int index; /* the script of a SCRIPT LOAD */
    const char *step;
};

static struct setup *setup_new(struct queue_async *qa, const char *step, int index)
{
    struct setup *s = malloc(sizeof(*s));
    if (s)
        *s = (struct setup){qa, qa->gen, index, step};
    return s;
}

/* The setup's qa when its connection is still the home; frees s. */
static struct queue_async *setup_take(struct setup *s)
{
    struct queue_async *qa = s->qa->gen == s->gen && s->qa->ac ? s->qa : NULL;
    free(s);
    return qa;
}

static void send_setup(struct queue_async *qa, awire_cb *cb, const char *step, int index, int argc,
                       const char **argv)
{
    struct setup *s = setup_new(qa, step, index);
    if (!s || awire_send_argv(qa->ac, cb, s, argc, argv, NULL) < 0)
        free(s);
}

static void on_setup_reply(redisReply *r, void *priv)
{
    struct setup *s = priv;
    const char *step = s->step;
    struct queue_async *qa = setup_take(s);
    if (!qa || !r || r->type != REDIS_REPLY_ERROR)
        return;
    if (!strcmp(step, "CLIENT SETNAME") && strncmp(r->str, "NOAUTH", 6)) {
        /* Only a name in CLIENT LIST: an ACL without it is no reason
         * to stop. */
        log_warn("Redis refused CLIENT SETNAME", "{s:s}", "error", r->str);
        return;
    }
    if (!first_setup_error(qa))
        return;
    char err[400];
    if (!strcmp(step, "AUTH"))
        snprintf(err, sizeof(err),
                 "Redis at %s:%d refused the login as %s: %s (check the user and password in the "
                 "Redis URL)",
                 qa->host, qa->port, qa->url->user ? qa->url->user : "the default user", r->str);
    else
        snprintf(err, sizeof(err), "%s: %s", step, r->str);
    if (strcmp(err, qa->error))
        log_error("Redis refused the connection setup; retrying", "{s:s, s:s, s:i}", "step", step,
                  "error", err, "retry_ms", qa->reconnect_ms);
    /* Connect again, with backoff: the password may be fixed on the
     * server's side (an ACL change) without a restart here. */
    home_drop(qa, err);
}

static void on_role_reply(redisReply *r, void *priv)
{
    struct queue_async *qa = setup_take(priv);
    if (!qa || !r)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "master"))
        return;
    char err[400];
    snprintf(err, sizeof(err),
             "%s:%d, which the sentinels name as the primary of '%s', is not a primary: a "
             "failover is under way",
             qa->host, qa->port, qa->url->master);
    log_warn("asking the sentinels again", "{s:s}", "error", err);
    home_drop(qa, err);
}

static void on_load_reply(redisReply *r, void *priv)
{
    struct setup *s = priv;
    int index = s->index;
    struct queue_async *qa = setup_take(s);
    if (!qa)
        return;
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(qa->sha[index], r->str, 41);
        if (index == QS__COUNT - 1)
            qa->loaded = true;
    }
}

static void load_scripts(struct queue_async *qa)
{
    qa->loaded = false;
    for (int i = 0; i < QS__COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", queue_script_source(i)};
        send_setup(qa, on_load_reply, "SCRIPT LOAD", i, 3, argv);
    }
}

/* The PING queued after AUTH and SELECT: Redis is usable only once it
 * answers, so /healthz stays 503 while the password is wrong or while
 * Redis is still loading its data after a restart. Until then the PING is
 * repeated, with backoff. */
static void on_ready_ping(redisReply *r, void *priv)
{
    struct queue_async *qa = setup_take(priv);
    if (!qa || !r)
        return; /* the connection is gone; reconnecting re-sends the PING */
    if (r->type == REDIS_REPLY_STATUS) {
        qa->ping_retry_ms = 100;
        qa->reconnect_ms = 100;
        qa->attempt = 0;
        qa->error[0] = '\0';
        if (!qa->ready) {
            qa->ready = true;
            if (qa->ops.ready)
                qa->ops.ready(qa->priv);
        }
        return;
    }
    if (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9)) {
        if (first_setup_error(qa)) {
            set_error(qa, r->str);
            log_error("Redis refuses commands; check the user and password in the Redis URL",
                      "{s:s}", "error", qa->error);
        }
    } else {
        set_error(qa, r->str);
        log_warn("Redis is not ready yet", "{s:s, s:i}", "error", r->str, "retry_ms",
                 qa->ping_retry_ms);
    }
    struct timeval tv = {qa->ping_retry_ms / 1000, (qa->ping_retry_ms % 1000) * 1000};
    evtimer_add(qa->ping_ev, &tv);
    qa->ping_retry_ms = qa->ping_retry_ms * 2 > 5000 ? 5000 : qa->ping_retry_ms * 2;
}

static void send_ping(struct queue_async *qa)
{
    const char *argv[] = {"PING"};
    send_setup(qa, on_ready_ping, "PING", 0, 1, argv);
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    struct queue_async *qa = arg;
    (void)fd;
    (void)what;
    if (qa->ac && !qa->ready) {
        load_scripts(qa);
        send_ping(qa);
    }
}

static void home_ready_check(struct queue_async *qa);

static void on_auth_reply(redisReply *r, void *priv)
{
    struct setup *s = priv;
    if (r && r->type != REDIS_REPLY_ERROR) {
        struct queue_async *qa = setup_take(s);
        if (qa)
            home_ready_check(qa);
        return;
    }
    on_setup_reply(r, s);
}

/* Makes a new home connection to host:port. Commands are queued at once,
 * and sent in order once connected. */
static void connect_home(struct queue_async *qa, const char *host, int port)
{
    const struct queue_url *u = qa->url;
    bool unix_socket = u->unix_socket && !u->nnodes;
    char *h = host == qa->host ? qa->host : strdup(host);
    if (h != qa->host) {
        free(qa->host);
        qa->host = h;
    }
    qa->port = port;
    qa->gen++;
    batch_fail(qa);
    if (!h || awire_connect(qa->base, h, port, unix_socket, u->tls ? u->tls_ctx : NULL,
                            u->tls_opt.sni, QUEUE_CONNECT_TIMEOUT_MS, &home_ops, qa, &qa->ac) < 0) {
        log_warn("cannot connect to Redis, retrying", "{s:s}", "error", "out of memory");
        qa->ac = NULL;
        set_lost(qa);
        schedule_reconnect(qa);
        return;
    }
    if (u->password) {
        const char *argv[3];
        send_setup(qa, on_auth_reply, "AUTH", 0, auth_argv(u->user, u->password, argv), argv);
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[] = {"SELECT", db};
        send_setup(qa, on_setup_reply, "SELECT", 0, 2, argv);
    }
    const char *setname[] = {"CLIENT", "SETNAME", qa->name};
    send_setup(qa, on_setup_reply, "CLIENT SETNAME", 0, 3, setname);
    if (u->nsentinels) {
        const char *role[] = {"ROLE"};
        send_setup(qa, on_role_reply, "ROLE", 0, 1, role);
    }
    /* The scripts wait for AUTH's answer: Redis drops a connection that
     * is not logged in as soon as it sends a bulk over 16 KB (a SCRIPT
     * LOAD), and the WRONGPASS before it could be lost in that reset. */
    if (!u->password)
        home_ready_check(qa);
}

/* The scripts, and the PING that makes the connection ready, once it is
 * logged in. */
static void home_ready_check(struct queue_async *qa)
{
    load_scripts(qa);
    send_ping(qa);
}

/* --- Sentinel, on the event loop --- */

static void ignore_reply(redisReply *r, void *priv)
{
    (void)r;
    (void)priv;
}

/* One round of asking the sentinels, each in turn from start until one
 * names the primary; done gets its address, or err (unknown: some
 * sentinel answered that it knows no primary of that name). */
typedef void sentinel_done(void *priv, const char *host, int port, const char *err, bool unknown);

struct sentinel_query {
    struct event_base *base;
    const struct queue_url *url;
    struct awire *aw;
    int start, asked, unknown;
    sentinel_done *done;
    void *priv;
    char last[300];
};

static void query_next(struct sentinel_query *sq);

static void query_free(struct sentinel_query *sq)
{
    if (!sq)
        return;
    struct awire *aw = sq->aw;
    sq->aw = NULL;
    awire_free(aw);
    free(sq);
}

static void on_sentinel_addr(redisReply *r, void *priv)
{
    struct sentinel_query *sq = priv;
    struct awire *aw = sq->aw;
    sq->aw = NULL;
    awire_close(aw);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        char host[256];
        snprintf(host, sizeof(host), "%s", r->element[0]->str);
        sq->done(sq->priv, host, atoi(r->element[1]->str), NULL, false);
        return;
    }
    const struct queue_node *s =
        &sq->url->sentinels[(sq->start + sq->asked - 1) % sq->url->nsentinels];
    if (r && r->type == REDIS_REPLY_NIL)
        sq->unknown++;
    else
        snprintf(sq->last, sizeof(sq->last), "sentinel %s:%d: %s", s->host, s->port,
                 !r                             ? "no answer"
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
    query_next(sq);
}

static void on_sentinel_closed(void *priv, const char *err)
{
    struct sentinel_query *sq = priv;
    /* The pending get-master-addr-by-name got NULL first and moved on;
     * only the reason is kept. */
    snprintf(sq->last, sizeof(sq->last), "%s", err ? err : "closed");
}

static const struct awire_ops sentinel_ops = {.closed = on_sentinel_closed};

static void query_next(struct sentinel_query *sq)
{
    const struct queue_url *u = sq->url;
    if (sq->asked >= u->nsentinels) {
        char err[400];
        if (sq->unknown)
            snprintf(err, sizeof(err),
                     "no sentinel knows a primary named '%s' (%d of %d asked answered; check "
                     "STRATQ_REDIS_SENTINEL_MASTER)",
                     u->master, sq->unknown, u->nsentinels);
        else
            snprintf(err, sizeof(err), "no sentinel answered (STRATQ_REDIS_SENTINELS): %s",
                     sq->last[0] ? sq->last : "none is reachable");
        sq->done(sq->priv, NULL, 0, err, sq->unknown > 0);
        return;
    }
    const struct queue_node *s = &u->sentinels[(sq->start + sq->asked) % u->nsentinels];
    sq->asked++;
    if (awire_connect(sq->base, s->host, s->port, false, u->tls ? u->tls_ctx : NULL, NULL,
                      QUEUE_CONNECT_TIMEOUT_MS, &sentinel_ops, sq, &sq->aw) < 0) {
        sq->aw = NULL;
        query_next(sq);
        return;
    }
    if (u->sentinel_password) {
        const char *argv[3];
        int n = auth_argv(u->sentinel_user, u->sentinel_password, argv);
        awire_send_argv(sq->aw, ignore_reply, NULL, n, argv, NULL);
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", u->master};
    if (awire_send_argv(sq->aw, on_sentinel_addr, sq, 3, argv, NULL) < 0) {
        awire_free(sq->aw);
        sq->aw = NULL;
        query_next(sq);
    }
}

/* Starts a query; done is called from the loop (never from here). */
static struct sentinel_query *query_new(struct event_base *base, const struct queue_url *url,
                                        int start, sentinel_done *done, void *priv)
{
    struct sentinel_query *sq = calloc(1, sizeof(*sq));
    if (!sq)
        return NULL;
    *sq = (struct sentinel_query){
        .base = base, .url = url, .start = start, .done = done, .priv = priv};
    query_next(sq);
    return sq;
}

static void on_primary_found(void *priv, const char *host, int port, const char *err, bool unknown)
{
    struct queue_async *qa = priv;
    query_free(qa->query);
    qa->query = NULL;
    if (err) {
        if (unknown)
            log_error("cannot find the Redis primary, retrying", "{s:s, s:i}", "error", err,
                      "retry_ms", qa->reconnect_ms);
        else
            log_warn("cannot find the Redis primary, retrying", "{s:s, s:i}", "error", err,
                     "retry_ms", qa->reconnect_ms);
        qa->attempt++;
        set_error(qa, err);
        set_lost(qa);
        schedule_reconnect(qa);
        return;
    }
    if (!qa->host || strcmp(qa->host, host) || qa->port != port)
        log_info("the sentinels name the primary", "{s:s, s:s, s:i}", "master", qa->url->master,
                 "host", host, "port", port);
    connect_home(qa, host, port);
}

static void ask_sentinels(struct queue_async *qa)
{
    if (qa->query)
        return;
    qa->query = query_new(qa->base, qa->url, qa->attempt, on_primary_found, qa);
    if (!qa->query)
        schedule_reconnect(qa);
}

/* +switch-master: a subscription on one sentinel, so that the API moves
 * to a new primary as soon as the sentinels elect it, rather than when
 * the old one's connection breaks or answers READONLY. */
static void watch_start(struct queue_async *qa);

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_start(arg);
}

static void on_watch_closed(void *priv, const char *err)
{
    struct queue_async *qa = priv;
    qa->watch = NULL;
    log_debug("lost the sentinel subscription, retrying", "{s:s}", "error", err);
    struct timeval tv = {qa->watch_retry_ms / 1000, (qa->watch_retry_ms % 1000) * 1000};
    evtimer_add(qa->watch_ev, &tv);
    qa->watch_retry_ms = qa->watch_retry_ms * 2 > 2000 ? 2000 : qa->watch_retry_ms * 2;
}

static void on_watch_push(void *priv, redisReply *r)
{
    struct queue_async *qa = priv;
    const redisReply *payload;
    if (queue_sub_parse(r, &payload) == QUEUE_SUB_SUBSCRIBED) {
        qa->watch_retry_ms = 100;
        return;
    }
    if (!payload)
        return;
    /* "<master> <old ip> <old port> <new ip> <new port>" */
    char name[256], oldh[256], newh[256];
    int oldp, newp;
    if (sscanf(payload->str, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5 ||
        strcmp(name, qa->url->master))
        return;
    log_info("the sentinels switched the primary", "{s:s, s:s, s:i, s:s, s:i}", "master", name,
             "from", oldh, "from_port", oldp, "host", newh, "port", newp);
    if (qa->ac && qa->port == newp && qa->host && !strcmp(qa->host, newh))
        return;
    if (qa->ac) {
        struct awire *old = qa->ac;
        qa->ac = NULL;
        awire_close(old);
    }
    set_lost(qa);
    qa->attempt = 0;
    connect_home(qa, newh, newp);
}

static const struct awire_ops watch_ops = {.closed = on_watch_closed, .push = on_watch_push};

static void watch_start(struct queue_async *qa)
{
    const struct queue_url *u = qa->url;
    const struct queue_node *s = &u->sentinels[qa->watch_next++ % u->nsentinels];
    if (awire_connect(qa->base, s->host, s->port, false, u->tls ? u->tls_ctx : NULL, NULL,
                      QUEUE_CONNECT_TIMEOUT_MS, &watch_ops, qa, &qa->watch) < 0) {
        qa->watch = NULL;
        return;
    }
    if (u->sentinel_password) {
        const char *argv[3];
        int n = auth_argv(u->sentinel_user, u->sentinel_password, argv);
        awire_send_argv(qa->watch, ignore_reply, NULL, n, argv, NULL);
    }
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    awire_send_argv(qa->watch, NULL, NULL, 2, argv, NULL);
}

/* The node to (re)connect to: the primary the sentinels name; the home
 * first, then, with a cluster, the seeds in turn, so that a home node
 * that died is not waited for. */
static void qa_connect(struct queue_async *qa)
{
    const struct queue_url *u = qa->url;
    if (qa->ac || qa->freeing)
        return;
    if (u->nsentinels) {
        ask_sentinels(qa);
        return;
    }
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
        struct awire *old = qa->ac;
        qa->ac = NULL;
        awire_close(old);
    }
    qa->attempt = 0;
    connect_home(qa, host, port);
}

static void on_ask_closed(void *priv, const char *err)
{
    struct queue_async *qa = priv;
    (void)err;
    qa->ask = NULL;
    free(qa->ask_host);
    qa->ask_host = NULL;
}

static const struct awire_ops ask_ops = {.closed = on_ask_closed};

static void drop_ask(struct queue_async *qa, bool now)
{
    if (qa->ask) {
        struct awire *old = qa->ask;
        qa->ask = NULL;
        if (now)
            awire_free(old);
        else
            awire_close(old);
    }
    free(qa->ask_host);
    qa->ask_host = NULL;
}

static struct awire *async_ask_conn(struct queue_async *qa, const char *host, int port)
{
    const struct queue_url *u = qa->url;
    if (qa->ask && qa->ask_port == port && !strcmp(qa->ask_host, host))
        return qa->ask;
    drop_ask(qa, false);
    qa->ask_host = strdup(host);
    if (!qa->ask_host ||
        awire_connect(qa->base, host, port, false, u->tls ? u->tls_ctx : NULL, u->tls_opt.sni,
                      QUEUE_CONNECT_TIMEOUT_MS, &ask_ops, qa, &qa->ask) < 0) {
        free(qa->ask_host);
        qa->ask_host = NULL;
        qa->ask = NULL;
        return NULL;
    }
    qa->ask_port = port;
    if (u->password) {
        const char *argv[3];
        awire_send_argv(qa->ask, ignore_reply, NULL, auth_argv(u->user, u->password, argv), argv,
                        NULL);
    }
    const char *setname[] = {"CLIENT", "SETNAME", qa->name};
    awire_send_argv(qa->ask, ignore_reply, NULL, 3, setname, NULL);
    return qa->ask;
}

static void on_acall_reply(redisReply *r, void *priv);

static int acall_send(struct acall *c)
{
    struct queue_async *qa = c->qa;
    struct awire *ac = qa->ac;
    if (qa->freeing)
        return -EIO;
    if (c->ask_host) {
        ac = async_ask_conn(qa, c->ask_host, c->ask_port);
        if (!ac || awire_sendf(ac, ignore_reply, NULL, "ASKING") < 0)
            return -EIO;
    }
    if (!ac || awire_send(ac, c->cmd, c->len, on_acall_reply, c) < 0)
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

/* A deep copy of a reply (freeReplyObject frees it), NULL without memory. */
static redisReply *reply_dup(const redisReply *r)
{
    redisReply *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->type = r->type;
    c->integer = r->integer;
    if (r->str) {
        if (!(c->str = malloc(r->len + 1))) {
            free(c);
            return NULL;
        }
        memcpy(c->str, r->str, r->len + 1);
        c->len = r->len;
    }
    if (r->elements) {
        if (!(c->element = calloc(r->elements, sizeof(*c->element)))) {
            freeReplyObject(c);
            return NULL;
        }
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            if (!(c->element[i] = reply_dup(r->element[i]))) {
                freeReplyObject(c);
                return NULL;
            }
    }
    return c;
}

/* Gives the batch's calls their replies: each its held reply when ok,
 * else the same NOREPLICAS error (or NULL when the connection went). */
static void batch_deliver(struct acall *batch, const struct queue_url *u, redisReply *w)
{
    bool ok = wait_enough(u, w);
    redisReply *e = ok || !w ? NULL : wait_shortfall(u, w);
    if (e)
        log_warn("writes did not reach enough replicas", "{s:s}", "error", e->str);
    while (batch) {
        struct acall *c = batch;
        batch = c->wnext;
        acall_deliver(c, ok ? c->held : e);
    }
    if (e)
        freeReplyObject(e);
}

struct wait_group {
    struct queue_async *qa;
    unsigned gen; /* of the connection the WAIT went on */
    struct acall *calls;
};

static void send_wait(struct queue_async *qa);

static void on_group_wait(redisReply *r, void *priv)
{
    struct wait_group *g = priv;
    struct queue_async *qa = g->qa;
    batch_deliver(g->calls, qa->url, r);
    if (g->gen == qa->gen) {
        qa->wait_busy = false;
        if (qa->batch)
            send_wait(qa);
    }
    free(g);
}

static void send_wait(struct queue_async *qa)
{
    struct wait_group *g = malloc(sizeof(*g));
    char n[16], t[16];
    snprintf(n, sizeof(n), "%d", qa->url->min_replicas);
    snprintf(t, sizeof(t), "%d", qa->url->wait_timeout_ms);
    const char *argv[] = {"WAIT", n, t};
    struct acall *calls = qa->batch;
    qa->batch = NULL;
    if (g) {
        *g = (struct wait_group){qa, qa->gen, calls};
        if (qa->ac && awire_send_argv(qa->ac, on_group_wait, g, 3, argv, NULL) == 0) {
            qa->wait_busy = true;
            return;
        }
        free(g);
    }
    batch_deliver(calls, qa->url, NULL);
}

/* A new home connection: a WAIT sent on it would not cover the writes the
 * batch made on the old one, so they fail (the callers answer 503). */
static void batch_fail(struct queue_async *qa)
{
    struct acall *calls = qa->batch;
    qa->batch = NULL;
    qa->wait_busy = false;
    batch_deliver(calls, qa->url, NULL);
}

/* A durable write's reply, held (a copy: r is freed when this returns)
 * until a WAIT on the home connection, which made the write, says the
 * replicas have it. A write made on an ASK target is not covered by it:
 * it fails, and the caller may send it again. */
static void acall_hold(struct acall *c, const redisReply *r)
{
    struct queue_async *qa = c->qa;
    c->held = c->ask_host ? NULL : reply_dup(r);
    if (!c->held || !qa->ac) {
        acall_deliver(c, NULL);
        return;
    }
    c->wnext = qa->batch;
    qa->batch = c;
    if (!qa->wait_busy)
        send_wait(qa);
}

/* NOSCRIPT: Redis restarted, its script cache was flushed, or the slot
 * moved to a node that never saw the script. The call goes again as an
 * EVAL with the script's source. */
static void acall_send_as_eval(struct acall *c)
{
    const char *src = queue_script_source(c->script);
    c->as_eval = true;
    c->v[0] = "EVAL";
    c->l[0] = 4;
    c->v[1] = src;
    c->l[1] = strlen(src);
    acall_deliver_if(c, acall_format(c) == 0 && acall_send(c) == 0);
}

/* A Redis Cluster redirect (MOVED or ASK) is followed, and after TRYAGAIN
 * or CLUSTERDOWN the call waits to go again; false when the error r is
 * neither (or the wait could not be set), for the caller to deliver. */
static bool acall_follow_cluster(struct acall *c, const redisReply *r)
{
    struct queue_async *qa = c->qa;
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
        return true;
    }
    if (is_cluster_retry(r->str)) {
        c->redirects++;
        free(c->ask_host);
        c->ask_host = NULL;
        if (acall_wait(c) == 0)
            return true;
    }
    return false;
}

static void on_acall_reply(redisReply *r, void *priv)
{
    struct acall *c = priv;
    struct queue_async *qa = c->qa;
    if (r && r->type != REDIS_REPLY_ERROR && c->durable && qa->url->min_replicas > 0 &&
        !qa->freeing) {
        acall_hold(c, r);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ERROR || qa->freeing) {
        acall_deliver(c, r);
        return;
    }
    if (is_readonly(r)) {
        /* The primary was demoted: this call fails (the caller answers
         * 503) and the connection goes to the new primary. */
        acall_deliver(c, r);
        if (qa->ac) {
            log_warn("Redis answered READONLY: connecting to the primary again", "{s:s}", "error",
                     r->str);
            home_drop(qa, r->str);
        }
        return;
    }
    if (c->eval && !c->as_eval && is_noscript(r)) {
        acall_send_as_eval(c);
        return;
    }
    if (c->redirects >= QUEUE_MAX_REDIRECTS || !acall_follow_cluster(c, r))
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
    qa->reconnect_ms = qa->ping_retry_ms = qa->watch_retry_ms = 100;
    qa->name = strdup(name);
    qa->reconnect_ev = evtimer_new(base, on_reconnect_timer, qa);
    qa->ping_ev = evtimer_new(base, on_ping_timer, qa);
    qa->watch_ev = evtimer_new(base, on_watch_timer, qa);
    snprintf(qa->error, sizeof(qa->error), "connecting");
    if (!qa->name || !qa->reconnect_ev || !qa->ping_ev || !qa->watch_ev) {
        queue_async_free(qa);
        return -ENOMEM;
    }
    if (url->nsentinels)
        watch_start(qa);
    qa_connect(qa);
    *ret = qa;
    return 0;
}

void queue_async_free(struct queue_async *qa)
{
    if (!qa)
        return;
    qa->freeing = true;
    batch_fail(qa);
    while (qa->waiting) {
        struct acall *c = qa->waiting;
        qa->waiting = c->next;
        acall_deliver(c, NULL);
    }
    query_free(qa->query);
    qa->query = NULL;
    if (qa->watch) {
        struct awire *w = qa->watch;
        qa->watch = NULL;
        awire_free(w);
    }
    drop_ask(qa, true);
    if (qa->ac) {
        struct awire *ac = qa->ac;
        qa->ac = NULL;
        awire_free(ac);
    }
    if (qa->reconnect_ev)
        event_free(qa->reconnect_ev);
    if (qa->ping_ev)
        event_free(qa->ping_ev);
    if (qa->watch_ev)
        event_free(qa->watch_ev);
    free(qa->host);
    free(qa->name);
    free(qa);
}

bool queue_async_ready(const struct queue_async *qa)
{
    return qa && qa->ready;
}

const char *queue_async_error(const struct queue_async *qa)
{
    return qa && !qa->ready ? qa->error : "";
}

static int async_eval(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                      const char *const *argv, const size_t *argvlen, bool durable,
                      queue_async_cb *cb, void *priv)
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
    c->durable = durable;
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

int queue_async_eval(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                     const char *const *argv, const size_t *argvlen, queue_async_cb *cb, void *priv)
{
    return async_eval(qa, s, nkeys, argc, argv, argvlen, false, cb, priv);
}

int queue_async_eval_durable(struct queue_async *qa, enum queue_script s, int nkeys, int argc,
                             const char *const *argv, const size_t *argvlen, queue_async_cb *cb,
                             void *priv)
{
    return async_eval(qa, s, nkeys, argc, argv, argvlen, true, cb, priv);
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

int queue_sync_subscribe(const struct queue_url *url, const char *name, const char *channel,
                         bool sharded, int timeout_ms, struct wire **ret, char *err, size_t errlen)
{
    const char *argv[] = {subscribe_command(sharded), channel};
    int nseeds = url->nnodes ? url->nnodes : 1, seed = 0, redirects = 0, rc = -ECONNREFUSED;
    char moved[256] = "", at[256];
    int moved_port = 0;
    if (url->nsentinels) {
        /* The primary: a replica would do as well (PUBLISH reaches the
         * replicas), but the primary is the one the sentinels name. */
        rc = sentinel_ask(url, timeout_ms < 1000 ? timeout_ms : 1000, moved, sizeof(moved),
                          &moved_port, err, errlen);
        if (rc < 0)
            return rc;
        nseeds = 0;
    }
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
        struct wire *c;
        if ((rc = node_connect(url, at, port, timeout_ms, name, &c, err, errlen)) < 0)
            continue;
        wire_set_timeout(c, timeout_ms);
        redisReply *r = wire_command_argv(c, 2, argv, NULL);
        if (r && r->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            *ret = c;
            return 0;
        }
        rc = -EIO;
        snprintf(err, errlen, "%s %s on %s:%d: %s", argv[0], channel, at, port,
                 !r                             ? wire_errstr(c)
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
        if (redirects++ >= QUEUE_MAX_REDIRECTS ||
            !sub_moved(r, at, moved, sizeof(moved), &moved_port))
            moved[0] = '\0';
        if (r)
            freeReplyObject(r);
        wire_free(c);
    }
    return rc;
}

/* The API's: a connection of its own on the loop, every reply a push
 * (hiredis 0.14's async API knew SUBSCRIBE but not SSUBSCRIBE). */
struct queue_sub {
    struct event_base *base;
    const struct queue_url *url;
    char *name, *channel;
    bool sharded;
    struct queue_sub_ops ops;
    void *priv;
    struct awire *aw; /* NULL between connections */
    struct event *retry_ev;
    struct sentinel_query *query;
    char *at; /* the node aw is connected to */
    int at_port;
    char *moved; /* where the last MOVED sent it: the next connect goes there */
    int moved_port;
    int redirects; /* MOVED followed since it last subscribed */
    int reconnect_ms;
    int node;        /* the seed (or sentinel) of the next try */
    char error[300]; /* the last connection error, said once */
};

static void sub_connect(struct queue_sub *s);
static void sub_connect_to(struct queue_sub *s, const char *host, int port);

static void sub_close(struct queue_sub *s)
{
    struct awire *aw = s->aw;
    s->aw = NULL;
    awire_free(aw);
    query_free(s->query);
    s->query = NULL;
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
    int cap = s->url->nsentinels ? 1000 : 5000;
    s->reconnect_ms = s->reconnect_ms * 2 > cap ? cap : s->reconnect_ms * 2;
}

/* Sends the (S)SUBSCRIBE; its confirmation (or error) is a push. */
static void sub_send_subscribe(struct queue_sub *s)
{
    const char *argv[] = {subscribe_command(s->sharded), s->channel};
    awire_send_argv(s->aw, NULL, NULL, 2, argv, NULL);
}

static void on_sub_auth(redisReply *r, void *priv)
{
    struct queue_sub *s = priv;
    if (r && r->type == REDIS_REPLY_ERROR && s->aw) {
        log_error("Redis refused the events subscription's login; check the user and password in "
                  "the Redis URL",
                  "{s:s}", "error", r->str);
        sub_retry(s);
    }
}

static void on_sub_closed(void *priv, const char *err)
{
    struct queue_sub *s = priv;
    s->aw = NULL;
    if (strcmp(err ? err : "", s->error))
        log_warn("lost the events subscription, reconnecting", "{s:s, s:i}", "error", err,
                 "retry_ms", s->reconnect_ms);
    snprintf(s->error, sizeof(s->error), "%s", err ? err : "");
    sub_retry(s);
}

/* Handles one push reply. */
static void on_sub_push(void *priv, redisReply *r)
{
    struct queue_sub *s = priv;
    const redisReply *payload;
    switch (queue_sub_parse(r, &payload)) {
    case QUEUE_SUB_SUBSCRIBED:
        s->reconnect_ms = 100;
        s->redirects = 0;
        s->error[0] = '\0';
        log_debug("subscribed", "{s:s, s:s, s:s, s:i}", "channel", s->channel, "command",
                  subscribe_command(s->sharded), "host", s->at, "port", s->at_port);
        s->ops.subscribed(s->priv);
        return;
    case QUEUE_SUB_MESSAGE:
        s->ops.message(s->priv, payload->str, payload->len);
        return;
    case QUEUE_SUB_UNSUBSCRIBED:
        /* Redis 7 ends a sharded subscription when the channel's slot
         * leaves the node (a migration, a failover): the node answers the
         * new SSUBSCRIBE with MOVED to the slot's new owner. */
        log_info("the events channel's slot left the node; subscribing again", "{s:s, s:s, s:i}",
                 "channel", s->channel, "host", s->at, "port", s->at_port);
        sub_lost(s);
        sub_send_subscribe(s);
        return;
    case QUEUE_SUB_OTHER:
        break;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return;
    char host[256];
    int port;
    if (s->redirects < QUEUE_MAX_REDIRECTS && sub_moved(r, s->at, host, sizeof(host), &port)) {
        s->redirects++;
        sub_close(s);
        sub_connect_to(s, host, port);
        return;
    }
    if (s->sharded && !strncmp(r->str, "ERR unknown command", 19))
        log_error("Redis Cluster needs Redis 7.0 or newer: stratq uses sharded pub/sub there",
                  "{s:s}", "error", r->str);
    log_warn("cannot subscribe to the events channel, retrying", "{s:s, s:s, s:i}", "error", r->str,
             "channel", s->channel, "retry_ms", s->reconnect_ms);
    sub_retry(s);
}

static const struct awire_ops sub_ops = {.closed = on_sub_closed, .push = on_sub_push};

/* Connects to host:port and subscribes. */
static void sub_connect_to(struct queue_sub *s, const char *host, int port)
{
    const struct queue_url *u = s->url;
    char *at = strdup(host);
    free(s->at);
    s->at = at;
    s->at_port = port;
    bool unix_socket = u->unix_socket && !u->nnodes && !u->nsentinels;
    if (!at || awire_connect(s->base, at, port, unix_socket, u->tls ? u->tls_ctx : NULL,
                             u->tls_opt.sni, QUEUE_CONNECT_TIMEOUT_MS, &sub_ops, s, &s->aw) < 0) {
        s->aw = NULL;
        sub_retry(s);
        return;
    }
    if (u->password) {
        const char *argv[3];
        awire_send_argv(s->aw, on_sub_auth, s, auth_argv(u->user, u->password, argv), argv, NULL);
    }
    const char *setname[] = {"CLIENT", "SETNAME", s->name};
    awire_send_argv(s->aw, ignore_reply, NULL, 3, setname, NULL);
    /* A plain server's messages reach every subscriber, whatever the db;
     * a sharded channel's only those on the node owning its slot. */
    sub_send_subscribe(s);
}

static void on_sub_primary(void *priv, const char *host, int port, const char *err, bool unknown)
{
    struct queue_sub *s = priv;
    query_free(s->query);
    s->query = NULL;
    if (err) {
        (void)unknown;
        log_warn("cannot find the Redis primary for the events subscription, retrying",
                 "{s:s, s:i}", "error", err, "retry_ms", s->reconnect_ms);
        sub_retry(s);
        return;
    }
    sub_connect_to(s, host, port);
}

/* Connects to where a MOVED sent it, else to the server, the seed of this
 * try or the primary the sentinels name, and subscribes. */
static void sub_connect(struct queue_sub *s)
{
    const struct queue_url *u = s->url;
    if (s->moved) {
        char host[256];
        snprintf(host, sizeof(host), "%s", s->moved);
        free(s->moved);
        s->moved = NULL;
        sub_connect_to(s, host, s->moved_port);
        return;
    }
    if (u->nsentinels) {
        s->query = query_new(s->base, u, s->node, on_sub_primary, s);
        if (!s->query)
            sub_retry(s);
        return;
    }
    if (u->nnodes)
        sub_connect_to(s, u->nodes[s->node % u->nnodes].host, u->nodes[s->node % u->nnodes].port);
    else
        sub_connect_to(s, u->host, u->port);
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

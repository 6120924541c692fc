#define _GNU_SOURCE
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "status.h"

/* Generated from src/queue/lua/ by tools/embed.sh. */
extern const char lua_lib[], lua_enqueue[], lua_start[], lua_complete[], lua_heartbeat[],
    lua_forget[], lua_stats[], lua_cancel[], lua_retry[], lua_list[], lua_workers[], lua_logs[],
    lua_metrics[], lua_count[], lua_reap[], lua_lost[], lua_promote[], lua_trim[], lua_deadletter[];

static struct {
    const char *body;
    char *src; /* the status table, lua_lib and body, made on first use */
} scripts[QS__COUNT] = {
    [QS_ENQUEUE] = {lua_enqueue, NULL},   [QS_START] = {lua_start, NULL},
    [QS_COMPLETE] = {lua_complete, NULL}, [QS_HEARTBEAT] = {lua_heartbeat, NULL},
    [QS_FORGET] = {lua_forget, NULL},     [QS_STATS] = {lua_stats, NULL},
    [QS_CANCEL] = {lua_cancel, NULL},     [QS_RETRY] = {lua_retry, NULL},
    [QS_LIST] = {lua_list, NULL},         [QS_WORKERS] = {lua_workers, NULL},
    [QS_LOGS] = {lua_logs, NULL},         [QS_METRICS] = {lua_metrics, NULL},
    [QS_COUNT] = {lua_count, NULL},       [QS_REAP] = {lua_reap, NULL},
    [QS_LOST] = {lua_lost, NULL},         [QS_PROMOTE] = {lua_promote, NULL},
    [QS_TRIM] = {lua_trim, NULL},         [QS_DEADLETTER] = {lua_deadletter, NULL},
};

#define QS_LIST_OF(...)                                                                            \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define QS_COUNT_OF(...) ((int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))

/* Each script's entry of QUEUE_SCRIPT_TABLE. */
static const struct {
    const char *name;
    const char *const *keys, *const *args;
    int nkeys, nargs;
    enum queue_reply reply;
    const char *returns;
} specs[QS__COUNT] = {
#define X(id, name, k, a, rep, ret)                                                                \
    [QS_##id] = {name,                                                                             \
                 (const char *const[])QS_LIST_OF k,                                                \
                 (const char *const[])QS_LIST_OF a,                                                \
                 QS_COUNT_OF k,                                                                    \
                 QS_COUNT_OF a,                                                                    \
                 rep,                                                                              \
                 ret},
    QUEUE_SCRIPT_TABLE(X)
#undef X
};

static bool ends_in_dots(const char *name)
{
    size_t n = strlen(name);
    return n >= 3 && !strcmp(name + n - 3, "...");
}

int queue_script_nkeys(enum queue_script s)
{
    return specs[s].nkeys;
}

/* Whether the script's last KEYS name stands for one or more keys. */
static bool has_more_keys(enum queue_script s)
{
    return ends_in_dots(specs[s].keys[specs[s].nkeys - 1]);
}

/* Whether the script's last ARGV is a run of field/value pairs. */
static bool has_pairs(enum queue_script s)
{
    return ends_in_dots(specs[s].args[specs[s].nargs - 1]);
}

bool queue_script_check(enum queue_script s, int nkeys, int argc)
{
    if (s < 0 || s >= QS__COUNT)
        return false;
    if (has_more_keys(s) ? nkeys < specs[s].nkeys : nkeys != specs[s].nkeys)
        return false;
    int fixed = specs[s].nargs - (has_pairs(s) ? 1 : 0), nargs = argc - nkeys;
    if (has_pairs(s))
        return nargs >= fixed && (nargs - fixed) % 2 == 0;
    return nargs == fixed;
}

void queue_scripts_markdown(FILE *f)
{
    static const char *const replies[] = {[QUEUE_REPLY_INTEGER] = "integer",
                                          [QUEUE_REPLY_STRING] = "string",
                                          [QUEUE_REPLY_ARRAY] = "array"};
    fputs("| script | KEYS | ARGV | reply |\n|---|---|---|---|\n", f);
    for (int s = 0; s < QS__COUNT; s++) {
        fprintf(f, "| `%s.lua` | ", specs[s].name);
        for (int i = 0; i < specs[s].nkeys; i++)
            fprintf(f, "%s`%s`", i ? ", " : "", specs[s].keys[i]);
        fputs(" | ", f);
        for (int i = 0; i < specs[s].nargs; i++)
            fprintf(f, "%s`%s`", i ? ", " : "", specs[s].args[i]);
        fprintf(f, " | %s: %s |\n", replies[specs[s].reply], specs[s].returns);
    }
}

const char *queue_script_source(enum queue_script s)
{
    if (!scripts[s].src) {
        char *statuses = queue_status_lua();
        if (!statuses ||
            asprintf(&scripts[s].src, "%s\n%s\n%s", statuses, lua_lib, scripts[s].body) < 0)
            abort(); /* out of memory at start-up */
        free(statuses);
    }
    return scripts[s].src;
}

void queue_scripts_free(void)
{
    for (int i = 0; i < QS__COUNT; i++) {
        free(scripts[i].src);
        scripts[i].src = NULL;
    }
}

const char *queue_script_name(enum queue_script s)
{
    return specs[s].name;
}

static char *join(const char *a, const char *b)
{
    char *s;
    return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

int queue_names_init(struct queue_names *n, const char *queue, const char *prefix, char *err,
                     size_t errlen)
{
    memset(n, 0, sizeof(*n));
    if (!queue[0] || strpbrk(queue, "{}")) {
        snprintf(err, errlen,
                 "queue name '%s' cannot be used: it must be non-empty and hold no '{' or '}' "
                 "(the other keys carry it as their Redis Cluster hash tag)",
                 queue);
        return -EINVAL;
    }
    n->queue = strdup(queue);
    n->prefix = strdup(prefix);
    if (asprintf(&n->base, "%s:{%s}", prefix, queue) < 0)
        n->base = NULL;
    if (!n->queue || !n->prefix || !n->base)
        goto nomem;
    char **fields[] = {&n->events,        &n->workers,           &n->scheduled,
                       &n->dead,          &n->processing_prefix, &n->job_prefix,
                       &n->worker_prefix, &n->index_prefix,      &n->control_prefix,
                       &n->stats,         &n->deadletter,        &n->reaper_lock};
    static const char *const suffixes[] = {
        ":events",  ":workers", ":scheduled", ":dead",  ":processing:", ":job:",
        ":worker:", ":index:",  ":control:",  ":stats", ":deadletter",  ":reaper:lock"};
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (!(*fields[i] = join(n->base, suffixes[i])))
            goto nomem;
    return 0;
nomem:
    queue_names_free(n);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

void queue_names_free(struct queue_names *n)
{
    char *all[] = {n->queue,      n->prefix,        n->base,         n->events,
                   n->workers,    n->scheduled,     n->dead,         n->processing_prefix,
                   n->job_prefix, n->worker_prefix, n->index_prefix, n->control_prefix,
                   n->stats,      n->deadletter,    n->reaper_lock};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        free(all[i]);
    memset(n, 0, sizeof(*n));
}

char *queue_job_key(const struct queue_names *n, const char *id)
{
    return join(n->job_prefix, id);
}

char *queue_processing_key(const struct queue_names *n, const char *worker)
{
    return join(n->processing_prefix, worker);
}

char *queue_worker_key(const struct queue_names *n, const char *worker)
{
    return join(n->worker_prefix, worker);
}

char *queue_index_key(const struct queue_names *n, const char *status)
{
    return join(n->index_prefix, status);
}

int queue_url_parse(const char *url, struct queue_url *ret, char *err, size_t errlen)
{
    struct queue_url u = {.port = 6379};
    const char *p;

    if (!strncmp(url, "unix:", 5)) {
        u.unix_socket = 1;
        u.host = strdup(url + 5);
        if (!u.host)
            return -ENOMEM;
        *ret = u;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "Redis URL '%s' must start with redis:// (or unix:/path)", url);
        return -EINVAL;
    }
    p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        u.password = strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0) {
        snprintf(err, errlen, "Redis URL '%s' names no host", url);
        queue_url_free(&u);
        return -EINVAL;
    }
    u.host = strndup(p, hostlen);
    p += hostlen;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "Redis URL '%s' has a bad port", url);
            queue_url_free(&u);
            return -EINVAL;
        }
        u.port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            snprintf(err, errlen, "Redis URL '%s' has a bad database number", url);
            queue_url_free(&u);
            return -EINVAL;
        }
        u.db = (int)db;
    }
    *ret = u;
    return 0;
}

void queue_url_free(struct queue_url *u)
{
    free(u->host);
    free(u->password);
    u->host = u->password = NULL;
}

void queue_sync_free(struct queue_sync *q)
{
    if (!q)
        return;
    if (q->c)
        redisFree(q->c);
    free(q);
}

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

int queue_sync_connect(const struct queue_url *url, int timeout_ms, struct queue_sync **ret,
                       char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct queue_sync *q = calloc(1, sizeof(*q));
    int r;

    if (!q)
        return -ENOMEM;
    q->c = url->unix_socket ? redisConnectUnixWithTimeout(url->host, tv)
                            : redisConnectWithTimeout(url->host, url->port, tv);
    if (!q->c || q->c->err) {
        if (url->unix_socket)
            snprintf(err, errlen, "cannot connect to Redis at %s: %s", url->host,
                     q->c ? q->c->errstr : "out of memory");
        else
            snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", url->host, url->port,
                     q->c ? q->c->errstr : "out of memory");
        queue_sync_free(q);
        return -ECONNREFUSED;
    }
    /* hiredis applies the connect timeout to the connect only: without a
     * read timeout a frozen Redis or a half-open connection would block the
     * worker (and its heartbeats and stop signals) for ever. */
    struct timeval rtv = {QUEUE_READ_TIMEOUT_S, 0};
    redisSetTimeout(q->c, rtv);
    redisEnableKeepAlive(q->c);
    if (url->password) {
        r = reply_ok(redisCommand(q->c, "AUTH %s", url->password), err, errlen, "AUTH");
        if (r < 0)
            goto fail;
    }
    if (url->db) {
        r = reply_ok(redisCommand(q->c, "SELECT %d", url->db), err, errlen, "SELECT");
        if (r < 0)
            goto fail;
    }
    for (int i = 0; i < QS__COUNT; i++) {
        redisReply *rep = redisCommand(q->c, "SCRIPT LOAD %s", queue_script_source(i));
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            snprintf(err, errlen, "SCRIPT LOAD %s: %s", specs[i].name,
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

static int is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8);
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
    r = redisCommandArgv(q->c, argc + 3, v, l);
    if (is_noscript(r)) {
        /* Redis restarted or its script cache was flushed. */
        freeReplyObject(r);
        v[0] = "EVAL";
        l[0] = 4;
        v[1] = queue_script_source(s);
        l[1] = strlen(queue_script_source(s));
        r = redisCommandArgv(q->c, argc + 3, v, l);
    }
    free(v);
    free(l);
    return r;
}

/* An async call kept until its reply, so that it can be re-sent as EVAL. */
struct async_call {
    enum queue_script script;
    int argc; /* including the 3 leading EVAL words */
    char **v;
    size_t *l;
    queue_async_cb *cb;
    void *priv;
    int retried;
};

static void async_call_free(struct async_call *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->v[i]);
    free(c->v);
    free(c->l);
    free(c);
}

static void async_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct async_call *c = priv;
    redisReply *r = reply;

    if (is_noscript(r) && !c->retried) {
        const char *src = queue_script_source(c->script);
        char *body = strdup(src);
        char *word = strdup("EVAL");
        if (body && word) {
            free(c->v[0]);
            free(c->v[1]);
            c->v[0] = word;
            c->l[0] = 4;
            c->v[1] = body;
            c->l[1] = strlen(src);
            c->retried = 1;
            if (redisAsyncCommandArgv(ac, async_reply, c, c->argc, (const char **)c->v, c->l) ==
                REDIS_OK)
                return;
        } else {
            free(body);
            free(word);
        }
        r = NULL;
    }
    c->cb(r, c->priv);
    async_call_free(c);
}

int queue_async_eval(redisAsyncContext *ac, struct queue_async_shas *shas, enum queue_script s,
                     int nkeys, int argc, const char *const *argv, const size_t *argvlen,
                     queue_async_cb *cb, void *priv)
{
    struct async_call *c = calloc(1, sizeof(*c));
    int n = argc + 3;
    const char *cmd = shas->loaded ? "EVALSHA" : "EVAL";
    const char *body = shas->loaded ? shas->sha[s] : queue_script_source(s);
    char num[16];

    check_call(s, nkeys, argc);
    if (!c)
        return -ENOMEM;
    c->script = s;
    c->argc = n;
    c->cb = cb;
    c->priv = priv;
    c->retried = !shas->loaded;
    c->v = calloc((size_t)n, sizeof(char *));
    c->l = calloc((size_t)n, sizeof(size_t));
    if (!c->v || !c->l) {
        c->argc = 0;
        async_call_free(c);
        return -ENOMEM;
    }
    snprintf(num, sizeof(num), "%d", nkeys);
    const char *src[3] = {cmd, body, num};
    for (int i = 0; i < n; i++) {
        const char *p = i < 3 ? src[i] : argv[i - 3];
        size_t len = i < 3 ? strlen(p) : (argvlen ? argvlen[i - 3] : strlen(p));
        c->v[i] = malloc(len + 1);
        if (!c->v[i]) {
            async_call_free(c);
            return -ENOMEM;
        }
        memcpy(c->v[i], p, len);
        c->v[i][len] = '\0';
        c->l[i] = len;
    }
    if (redisAsyncCommandArgv(ac, async_reply, c, n, (const char **)c->v, c->l) != REDIS_OK) {
        async_call_free(c);
        return -EIO;
    }
    return 0;
}

struct load_ctx {
    struct queue_async_shas *shas;
    int index;
};

static void load_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct load_ctx *lc = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(lc->shas->sha[lc->index], r->str, 41);
        if (lc->index == QS__COUNT - 1)
            lc->shas->loaded = 1;
    }
    free(lc);
}

int queue_async_load(redisAsyncContext *ac, struct queue_async_shas *shas)
{
    shas->loaded = 0;
    for (int i = 0; i < QS__COUNT; i++) {
        struct load_ctx *lc = malloc(sizeof(*lc));
        if (!lc)
            return -ENOMEM;
        lc->shas = shas;
        lc->index = i;
        if (redisAsyncCommand(ac, load_reply, lc, "SCRIPT LOAD %s", queue_script_source(i)) !=
            REDIS_OK) {
            free(lc);
            return -EIO;
        }
    }
    return 0;
}

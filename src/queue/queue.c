#define _GNU_SOURCE
#include "queue.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "status.h"
#include "wire.h"

/* Generated from src/queue/lua/ by tools/embed.sh. */
extern const char lua_lib[], lua_enqueue[], lua_start[], lua_complete[], lua_heartbeat[],
    lua_forget[], lua_cancel[], lua_retry[], lua_list[], lua_page[], lua_workers[], lua_logs[],
    lua_metrics[], lua_count[], lua_reap[], lua_lost[], lua_promote[], lua_trim[], lua_deadletter[],
    lua_pause[], lua_tenants[], lua_fair[], lua_schedule[], lua_schedules[], lua_tick[];

static struct {
    const char *body;
    char *src; /* the status table, lua_lib and body, made on first use */
} scripts[QS__COUNT] = {
    [QS_ENQUEUE] = {lua_enqueue, NULL},     [QS_START] = {lua_start, NULL},
    [QS_COMPLETE] = {lua_complete, NULL},   [QS_HEARTBEAT] = {lua_heartbeat, NULL},
    [QS_FORGET] = {lua_forget, NULL},       [QS_CANCEL] = {lua_cancel, NULL},
    [QS_RETRY] = {lua_retry, NULL},         [QS_LIST] = {lua_list, NULL},
    [QS_PAGE] = {lua_page, NULL},           [QS_WORKERS] = {lua_workers, NULL},
    [QS_LOGS] = {lua_logs, NULL},           [QS_METRICS] = {lua_metrics, NULL},
    [QS_COUNT] = {lua_count, NULL},         [QS_REAP] = {lua_reap, NULL},
    [QS_LOST] = {lua_lost, NULL},           [QS_PROMOTE] = {lua_promote, NULL},
    [QS_TRIM] = {lua_trim, NULL},           [QS_DEADLETTER] = {lua_deadletter, NULL},
    [QS_PAUSE] = {lua_pause, NULL},         [QS_TENANTS] = {lua_tenants, NULL},
    [QS_FAIR] = {lua_fair, NULL},           [QS_SCHEDULE] = {lua_schedule, NULL},
    [QS_SCHEDULES] = {lua_schedules, NULL}, [QS_TICK] = {lua_tick, NULL},
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

/* The number of ARGV names: (NULL) in the table is none. */
static int nargs_of(enum queue_script s)
{
    return specs[s].args[0] ? specs[s].nargs : 0;
}

int queue_script_nkeys(enum queue_script s)
{
    return specs[s].nkeys;
}

/* Whether the script's last KEYS name stands for any number of keys. */
static bool has_more_keys(enum queue_script s)
{
    return ends_in_dots(specs[s].keys[specs[s].nkeys - 1]);
}

/* How the script's last ARGV name ends the list: 0, a fixed name; 1, any
 * number of strings ("worker ..."); 2, any number of pairs ("field value
 * ...", two names before the dots). */
static int arg_run(enum queue_script s)
{
    if (!nargs_of(s))
        return 0;
    const char *last = specs[s].args[specs[s].nargs - 1];
    if (!ends_in_dots(last))
        return 0;
    return strchr(last, ' ') != strrchr(last, ' ') ? 2 : 1;
}

bool queue_script_check(enum queue_script s, int nkeys, int argc)
{
    if (s < 0 || s >= QS__COUNT)
        return false;
    if (has_more_keys(s) ? nkeys < specs[s].nkeys - 1 : nkeys != specs[s].nkeys)
        return false;
    int run = arg_run(s), fixed = nargs_of(s) - (run ? 1 : 0), nargs = argc - nkeys;
    if (run == 2)
        return nargs >= fixed && (nargs - fixed) % 2 == 0;
    if (run == 1)
        return nargs >= fixed;
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
        for (int i = 0; i < nargs_of(s); i++)
            fprintf(f, "%s`%s`", i ? ", " : "", specs[s].args[i]);
        if (!nargs_of(s))
            fputs("none", f);
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

int queue_names_init(struct queue_names *n, const char *queue, const char *prefix,
                     const struct queue_url *url, char *err, size_t errlen)
{
    memset(n, 0, sizeof(*n));
    n->sharded = url && url->nnodes > 0;
    if (!queue[0] || strpbrk(queue, "{}")) {
        snprintf(err, errlen,
                 "queue name '%s' cannot be used: it must be non-empty and hold no '{' or '}' "
                 "(the other keys carry it as their Redis Cluster hash tag)",
                 queue);
        return -EINVAL;
    }
    if (strpbrk(prefix, "{}")) {
        /* Redis Cluster hashes on the first {...} of a key: a brace in the
         * prefix would move every key out of the queue list's slot. */
        snprintf(err, errlen,
                 "key prefix '%s' cannot be used: it must hold no '{' or '}' (the keys' Redis "
                 "Cluster hash tag is the queue name, which follows the prefix)",
                 prefix);
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
                       &n->stats,         &n->deadletter,        &n->reaper_lock,
                       &n->schedules,     &n->schedules_due,     &n->schedule_prefix};
    static const char *const suffixes[] = {
        ":events",     ":workers",     ":scheduled", ":dead",          ":processing:",
        ":job:",       ":worker:",     ":index:",    ":control:",      ":stats",
        ":deadletter", ":reaper:lock", ":schedules", ":schedules:due", ":schedule:"};
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
    char *all[] = {n->queue,         n->prefix,         n->base,         n->events,
                   n->workers,       n->scheduled,      n->dead,         n->processing_prefix,
                   n->job_prefix,    n->worker_prefix,  n->index_prefix, n->control_prefix,
                   n->stats,         n->deadletter,     n->reaper_lock,  n->schedules,
                   n->schedules_due, n->schedule_prefix};
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

/* Percent-decodes len bytes of s (user and password may hold ':', '@'
 * and '/' written as %3A, %40, %2F). NULL on a bad escape or no memory. */
static char *url_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
            !isxdigit((unsigned char)s[i + 2])) {
            free(out);
            return NULL;
        }
        char hex[3] = {s[i + 1], s[i + 2], '\0'};
        unsigned v = (unsigned)strtoul(hex, NULL, 16);
        *o++ = (char)v;
        i += 2;
    }
    *o = '\0';
    return out;
}

/* The URL as error messages may show it: the password (between the last
 * ':' before the last '@' and that '@') replaced by "***", for messages end
 * up in logs. */
static void url_shown(const char *url, char *buf, size_t len)
{
    const char *scheme = strstr(url, "://");
    const char *p = scheme ? scheme + 3 : url;
    const char *at = strrchr(p, '@');
    if (!at) {
        snprintf(buf, len, "%s", url);
        return;
    }
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    snprintf(buf, len, "%.*s***%s", (int)(pw - url), url, at);
}

/* The host: a name, an IPv4 address or a bracketed IPv6 literal. Sets *p
 * past it. 0, or -EINVAL when it is missing or unbracketed. */
static int url_host(const char **p, char **ret_host)
{
    const char *s = *p;
    size_t len;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1)
            return -EINVAL;
        *ret_host = strndup(s + 1, (size_t)(close - s - 1));
        *p = close + 1;
    } else {
        len = strcspn(s, ":/");
        if (len == 0)
            return -EINVAL;
        *ret_host = strndup(s, len);
        *p = s + len;
    }
    return *ret_host ? 0 : -ENOMEM;
}

static int url_fail(struct queue_url *u, char *err, size_t errlen, const char *url,
                    const char *what)
{
    char shown[512];
    url_shown(url, shown, sizeof(shown));
    snprintf(err, errlen, "Redis URL '%s' %s", shown, what);
    queue_url_free(u);
    return -EINVAL;
}

static int url_userinfo(struct queue_url *u, const char *p, const char *at, char *err,
                        size_t errlen)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    u->password = url_decode(pw, (size_t)(at - pw));
    if (colon && colon > p)
        u->user = url_decode(p, (size_t)(colon - p));
    if (!u->password || (colon && colon > p && !u->user)) {
        snprintf(err, errlen,
                 "the Redis URL's user or password has a bad %%-escape (write %%XX, e.g. "
                 "%%40 for @)");
        queue_url_free(u);
        return -EINVAL;
    }
    return 0;
}

int queue_url_parse(const char *url, struct queue_url *ret, char *err, size_t errlen)
{
    struct queue_url u = {.port = 6379};
    const char *p;

    if (!strncmp(url, "unix:", 5)) {
        if (!url[5])
            return url_fail(&u, err, errlen, url, "names no socket path (write unix:/path)");
        u.unix_socket = 1;
        u.host = strdup(url + 5);
        if (!u.host)
            return -ENOMEM;
        *ret = u;
        return 0;
    }
    if (!strncmp(url, "redis://", 8)) {
        p = url + 8;
    } else if (!strncmp(url, "rediss://", 9)) {
        u.tls = true;
        p = url + 9;
    } else {
        return url_fail(&u, err, errlen, url,
                        "must start with redis://, rediss:// (TLS) or unix:/path");
    }
    const char *at = strrchr(p, '@');
    if (at) {
        if (url_userinfo(&u, p, at, err, errlen) < 0)
            return -EINVAL;
        p = at + 1;
    }
    if (strpbrk(p, "?#"))
        return url_fail(&u, err, errlen, url,
                        "has a query or fragment (?, #), which stratq does not read: set "
                        "the database as /N and the rest with STRATQ_REDIS_* settings");
    int r = url_host(&p, &u.host);
    if (r == -ENOMEM) {
        queue_url_free(&u);
        return r;
    }
    if (r < 0)
        return url_fail(&u, err, errlen, url, "names no host");
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535 || (*end && *end != '/'))
            return url_fail(&u, err, errlen, url, "has a bad port");
        u.port = (int)port;
        p = end;
    } else if (*p && *p != '/') {
        return url_fail(&u, err, errlen, url, "has a bad port");
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0 || db > 1000000)
            return url_fail(&u, err, errlen, url, "has a bad database number");
        u.db = (int)db;
    }
    *ret = u;
    return 0;
}

static void free_nodes(struct queue_node **v, int *n)
{
    for (int i = 0; i < *n; i++)
        free((*v)[i].host);
    free(*v);
    *v = NULL;
    *n = 0;
}

void queue_url_free(struct queue_url *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    u->host = u->user = u->password = NULL;
    free(u->tls_opt.cacert);
    free(u->tls_opt.cert);
    free(u->tls_opt.key);
    free(u->tls_opt.sni);
    u->tls_opt = (struct queue_tls){0};
    wire_tls_free(u->tls_ctx);
    u->tls_ctx = NULL;
    free_nodes(&u->nodes, &u->nnodes);
    free_nodes(&u->sentinels, &u->nsentinels);
    free(u->master);
    free(u->sentinel_user);
    free(u->sentinel_password);
    u->master = u->sentinel_user = u->sentinel_password = NULL;
}

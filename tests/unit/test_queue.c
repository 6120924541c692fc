/* Unit tests for src/queue/queue.c: the Redis URL parser, the key names
 * derived from the queue's name and prefix, and the table of scripts
 * (QUEUE_SCRIPT_TABLE) with the check of every call against it. No Redis:
 * what the scripts do is tested in tests/integration. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/conn.h"
#include "queue/queue.h"
#include "queue/status.h"

static void test_redis_urls(void **state)
{
    (void)state;
    struct queue_url u;
    char err[256];
    assert_int_equal(queue_url_parse("redis://127.0.0.1:6390", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_null(u.password);
    queue_url_free(&u);
    assert_int_equal(queue_url_parse("redis://:s3cret@cache/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "s3cret");
    queue_url_free(&u);
    assert_int_equal(queue_url_parse("unix:/run/redis.sock", &u, err, sizeof(err)), 0);
    assert_true(u.unix_socket);
    assert_string_equal(u.host, "/run/redis.sock");
    queue_url_free(&u);
    assert_int_equal(queue_url_parse("http://x", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis://"));
    assert_int_equal(queue_url_parse("redis://h:99999", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad port"));
}

static void test_url_user_and_tls(void **state)
{
    (void)state;
    struct queue_url u;
    char err[256];
    assert_int_equal(queue_url_parse("rediss://stratq-api:p%40ss%3Aw@redis.internal:6380/3", &u,
                                     err, sizeof(err)),
                     0);
    assert_true(u.tls);
    assert_string_equal(u.user, "stratq-api");
    assert_string_equal(u.password, "p@ss:w");
    assert_string_equal(u.host, "redis.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    queue_url_free(&u);
    /* ":password@" is the default user; "password@" too (as before). */
    assert_int_equal(queue_url_parse("redis://:pw@h", &u, err, sizeof(err)), 0);
    assert_null(u.user);
    assert_false(u.tls);
    assert_string_equal(u.password, "pw");
    queue_url_free(&u);
    assert_int_equal(queue_url_parse("redis://us:%4@h", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "%-escape"));
    assert_int_equal(queue_url_parse("redis://us:%zz@h", &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(queue_url_parse("http://h", &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "rediss://"));
}

static void test_key_names(void **state)
{
    (void)state;
    struct queue_names n;
    char err[300];
    assert_int_equal(
        queue_names_init(&n, "python_execution_queue", "stratq", NULL, err, sizeof(err)), 0);
    /* The queue list keeps its name; every other key carries its hash tag. */
    assert_string_equal(n.queue, "python_execution_queue");
    char *k = queue_job_key(&n, "abc");
    assert_string_equal(k, "stratq:{python_execution_queue}:job:abc");
    free(k);
    k = queue_processing_key(&n, "w1");
    assert_string_equal(k, "stratq:{python_execution_queue}:processing:w1");
    free(k);
    k = queue_index_key(&n, "failed");
    assert_string_equal(k, "stratq:{python_execution_queue}:index:failed");
    free(k);
    assert_string_equal(n.events, "stratq:{python_execution_queue}:events");
    assert_string_equal(n.workers, "stratq:{python_execution_queue}:workers");
    assert_string_equal(n.control_prefix, "stratq:{python_execution_queue}:control:");
    assert_false(n.sharded); /* a plain server: PUBLISH */
    queue_names_free(&n);
    /* With a cluster's seed nodes, the events are sharded (SPUBLISH). */
    struct queue_node seed = {(char *)"127.0.0.1", 7000};
    struct queue_url cluster = {.nodes = &seed, .nnodes = 1};
    assert_int_equal(queue_names_init(&n, "q", "stratq", &cluster, err, sizeof(err)), 0);
    assert_true(n.sharded);
    queue_names_free(&n);
    /* A brace in the queue's name would change its hash tag. */
    assert_int_equal(queue_names_init(&n, "a{b}", "stratq", NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'{'"));
    assert_int_equal(queue_names_init(&n, "", "stratq", NULL, err, sizeof(err)), -EINVAL);
}

static void test_table_check(void **state)
{
    (void)state;
    /* complete: 11 KEYS, 13 fixed ARGV, then field/value pairs. */
    assert_true(queue_script_check(QS_COMPLETE, 11, 24));
    assert_true(queue_script_check(QS_COMPLETE, 11, 26));
    assert_false(queue_script_check(QS_COMPLETE, 11, 25));
    assert_false(queue_script_check(QS_COMPLETE, 11, 23));
    assert_false(queue_script_check(QS_COMPLETE, 10, 24));
    /* enqueue: exactly 5 + 10. */
    assert_true(queue_script_check(QS_ENQUEUE, 5, 15));
    assert_false(queue_script_check(QS_ENQUEUE, 5, 16));
    assert_false(queue_script_check(QS_ENQUEUE, 4, 14));
    /* trim: index:all and any number of status indexes, then its one ARGV. */
    assert_true(queue_script_check(QS_TRIM, 1, 2));
    assert_true(queue_script_check(QS_TRIM, 10, 11));
    assert_false(queue_script_check(QS_TRIM, 0, 1));
    assert_false(queue_script_check(QS_TRIM, 10, 12));
    /* metrics: 5 KEYS and any number of processing lists; then the base. */
    assert_true(queue_script_check(QS_METRICS, 5, 6));
    assert_true(queue_script_check(QS_METRICS, 8, 9));
    assert_false(queue_script_check(QS_METRICS, 4, 5));
    assert_false(queue_script_check(QS_METRICS, 5, 5));
    /* workers: the zset, then one hash and one id per worker (any number). */
    assert_true(queue_script_check(QS_WORKERS, 3, 5));
    assert_true(queue_script_check(QS_WORKERS, 1, 1));
    assert_false(queue_script_check(QS__COUNT, 0, 0));
    assert_int_equal(queue_script_nkeys(QS_FORGET), 3);
    assert_string_equal(queue_script_name(QS_DEADLETTER), "deadletter");
}

static void test_markdown(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    queue_scripts_markdown(f);
    fclose(f);
    int rows = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        rows++;
    assert_int_equal(rows, QS__COUNT + 2);
    assert_non_null(strstr(text, "| `forget.lua` | `<base>:workers`, `<base>:worker:<worker>`, "
                                 "`<base>:processing:<worker>` | `worker` | integer: "));
    free(text);
}

/* Every part of a URL the parser tells apart, and what it makes of it. */
#define REFUSED(url, words)                                                                        \
    {                                                                                              \
        url, -EINVAL, words, 0, 0, NULL, NULL, false, false                                        \
    }
static const struct url_row {
    const char *url;
    int rc;
    const char *host; /* or, when rc < 0, words of the error */
    int port, db;
    const char *user, *password; /* NULL: none */
    bool tls, unix_socket;
} urls[] = {
    {"redis://h", 0, "h", 6379, 0, NULL, NULL, false, false},
    {"rediss://h", 0, "h", 6379, 0, NULL, NULL, true, false},
    {"redis://10.0.0.7:6380/15", 0, "10.0.0.7", 6380, 15, NULL, NULL, false, false},
    {"unix:/tmp/redis.sock", 0, "/tmp/redis.sock", 6379, 0, NULL, NULL, false, true},
    /* The port: 1 to 65535, digits only, then the end or the database. */
    {"redis://h:1", 0, "h", 1, 0, NULL, NULL, false, false},
    {"redis://h:65535", 0, "h", 65535, 0, NULL, NULL, false, false},
    REFUSED("redis://h:0", "Redis URL 'redis://h:0' has a bad port"),
    REFUSED("redis://h:65536", "bad port"),
    REFUSED("redis://h:-1", "bad port"),
    REFUSED("redis://h:", "bad port"),
    REFUSED("redis://h:63x9", "bad port"),
    /* The database: 0 to 1,000,000; a lone slash is 0. */
    {"redis://h/", 0, "h", 6379, 0, NULL, NULL, false, false},
    {"redis://h:6379/", 0, "h", 6379, 0, NULL, NULL, false, false},
    {"redis://h/0", 0, "h", 6379, 0, NULL, NULL, false, false},
    {"redis://h/1000000", 0, "h", 6379, 1000000, NULL, NULL, false, false},
    REFUSED("redis://h/1000001", "Redis URL 'redis://h/1000001' has a bad database number"),
    REFUSED("redis://h/-1", "bad database number"),
    REFUSED("redis://h/x", "bad database number"),
    REFUSED("redis://h/1/2", "bad database number"),
    /* An IPv6 literal in brackets; the brackets are not part of the host. */
    {"redis://[::1]:6380/2", 0, "::1", 6380, 2, NULL, NULL, false, false},
    {"rediss://u:pw@[fd00::7]", 0, "fd00::7", 6379, 0, "u", "pw", true, false},
    REFUSED("redis://[::1", "names no host"),
    REFUSED("redis://[]:6379", "names no host"),
    REFUSED("redis://[::1]x", "bad port"),
    /* A socket path is needed; a query or fragment is refused, not read. */
    REFUSED("unix:", "names no socket path"),
    REFUSED("redis://h?db=1", "has a query or fragment"),
    REFUSED("redis://h:6379/0#x", "has a query or fragment"),
    /* A message never shows the password (it goes to logs). */
    REFUSED("redis://:s3cret@h:99999", "Redis URL 'redis://:***@h:99999' has a bad port"),
    REFUSED("rediss://u:s3cret@h/x", "Redis URL 'rediss://u:***@h/x' has a bad database"),
    REFUSED("redis://s3cret@", "Redis URL 'redis://***@' names no host"),
    /* A host is needed. */
    REFUSED("redis://", "Redis URL 'redis://' names no host"),
    REFUSED("redis://:6379", "names no host"),
    REFUSED("redis:///1", "names no host"),
    REFUSED("redis://:pw@", "names no host"),
    /* User and password: split at the first ':', the host after the last
     * '@'; both percent-decoded. */
    {"redis://pw@h", 0, "h", 6379, 0, NULL, "pw", false, false},
    {"redis://@h", 0, "h", 6379, 0, NULL, "", false, false},
    {"redis://u:@h", 0, "h", 6379, 0, "u", "", false, false},
    {"redis://u:pw@h:7000/1", 0, "h", 7000, 1, "u", "pw", false, false},
    {"redis://:p:w@h", 0, "h", 6379, 0, NULL, "p:w", false, false},
    {"redis://u:p@ss@h", 0, "h", 6379, 0, "u", "p@ss", false, false},
    {"redis://%75%73er:%2F%3a%41@h", 0, "h", 6379, 0, "user", "/:A", false, false},
    REFUSED("redis://:a%4@h", "bad %-escape"),
    REFUSED("redis://:a%@h", "bad %-escape"),
    REFUSED("redis://%zz:pw@h", "bad %-escape"),
    /* The scheme. */
    REFUSED("redis:/h", "must start with redis://, rediss:// (TLS) or unix:/path"),
    REFUSED("h:6379", "must start with"),
    REFUSED("", "must start with"),
};

static void test_url_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const struct url_row *w = &urls[i];
        struct queue_url u = {.port = -2};
        char err[256] = "";
        int rc = queue_url_parse(w->url, &u, err, sizeof(err));
        if (rc != w->rc)
            fail_msg("%s: %d (%s), want %d", w->url, rc, err, w->rc);
        if (rc < 0) {
            if (!strstr(err, w->host))
                fail_msg("%s: '%s' does not say '%s'", w->url, err, w->host);
            if (strstr(err, "s3cret"))
                fail_msg("%s: '%s' shows the password", w->url, err);
            assert_int_equal(u.port, -2); /* not written on failure */
            continue;
        }
        assert_string_equal(u.host, w->host);
        assert_int_equal(u.port, w->port);
        assert_int_equal(u.db, w->db);
        if (w->user)
            assert_string_equal(u.user, w->user);
        else
            assert_null(u.user);
        if (w->password)
            assert_string_equal(u.password, w->password);
        else
            assert_null(u.password);
        assert_int_equal(u.tls, w->tls);
        assert_int_equal(u.unix_socket, w->unix_socket);
        /* What the other settings add is unset. */
        assert_null(u.nodes);
        assert_null(u.sentinels);
        assert_null(u.tls_ctx);
        assert_int_equal(u.min_replicas, 0);
        queue_url_free(&u);
        assert_null(u.host);
        queue_url_free(&u); /* twice is harmless */
    }
    struct queue_url zero = {0};
    queue_url_free(&zero);
}

/* Each key name of struct queue_names and what it ends with after
 * <prefix>:{<queue>}. */
static const struct {
    size_t off;
    const char *suffix;
} name_fields[] = {
    {offsetof(struct queue_names, events), ":events"},
    {offsetof(struct queue_names, workers), ":workers"},
    {offsetof(struct queue_names, scheduled), ":scheduled"},
    {offsetof(struct queue_names, dead), ":dead"},
    {offsetof(struct queue_names, processing_prefix), ":processing:"},
    {offsetof(struct queue_names, job_prefix), ":job:"},
    {offsetof(struct queue_names, worker_prefix), ":worker:"},
    {offsetof(struct queue_names, index_prefix), ":index:"},
    {offsetof(struct queue_names, control_prefix), ":control:"},
    {offsetof(struct queue_names, stats), ":stats"},
    {offsetof(struct queue_names, deadletter), ":deadletter"},
    {offsetof(struct queue_names, reaper_lock), ":reaper:lock"},
};

static const char *field(const struct queue_names *n, size_t off)
{
    return *(char *const *)((const char *)n + off);
}

/* The key is in the queue list's Redis Cluster slot. */
static void expect_slot(const char *queue, const char *key)
{
    if (queue_key_slot(key, strlen(key)) != queue_key_slot(queue, strlen(queue)))
        fail_msg("%s is not in the slot of the queue %s", key, queue);
}

static void test_names_table(void **state)
{
    static const struct {
        const char *queue, *prefix, *base;
    } rows[] = {
        {"python_execution_queue", "stratq", "stratq:{python_execution_queue}"},
        {"q", "sq", "sq:{q}"},
        {"q", "", ":{q}"},
        {"jobs:eu west", "team:a", "team:a:{jobs:eu west}"},
        {"\xc3\xa9t\xc3\xa9", "stratq", "stratq:{\xc3\xa9t\xc3\xa9}"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct queue_names n;
        char err[300], want[200];
        assert_int_equal(
            queue_names_init(&n, rows[i].queue, rows[i].prefix, NULL, err, sizeof(err)), 0);
        assert_string_equal(n.queue, rows[i].queue);
        assert_string_equal(n.prefix, rows[i].prefix);
        assert_string_equal(n.base, rows[i].base);
        for (size_t f = 0; f < sizeof(name_fields) / sizeof(name_fields[0]); f++) {
            snprintf(want, sizeof(want), "%s%s", rows[i].base, name_fields[f].suffix);
            assert_string_equal(field(&n, name_fields[f].off), want);
            expect_slot(rows[i].queue, want);
        }
        char *keys[] = {queue_job_key(&n, "01j"), queue_processing_key(&n, "w-1"),
                        queue_worker_key(&n, "w-1"), queue_index_key(&n, "all")};
        const char *suffixes[] = {":job:01j", ":processing:w-1", ":worker:w-1", ":index:all"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            snprintf(want, sizeof(want), "%s%s", rows[i].base, suffixes[k]);
            assert_string_equal(keys[k], want);
            expect_slot(rows[i].queue, keys[k]);
            free(keys[k]);
        }
        queue_names_free(&n);
        assert_null(n.base);
        queue_names_free(&n); /* twice is harmless */
    }
}

static void test_bad_queue_names(void **state)
{
    static const char *const bad[] = {"", "{", "}", "a{b}", "{q}", "q}", "x{"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct queue_names n;
        char err[300], want[64];
        assert_int_equal(queue_names_init(&n, bad[i], "stratq", NULL, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "queue name '%s' cannot be used", bad[i]);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, "hash tag"));
        assert_null(n.queue); /* nothing to free, and freeing is harmless */
        queue_names_free(&n);
    }
    /* Nor in the prefix, which comes before the queue's hash tag. */
    static const char *const bad_prefixes[] = {"x{y}", "{", "}", "a{"};
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++) {
        struct queue_names n;
        char err[300], want[64];
        assert_int_equal(queue_names_init(&n, "q", bad_prefixes[i], NULL, err, sizeof(err)),
                         -EINVAL);
        snprintf(want, sizeof(want), "key prefix '%s' cannot be used", bad_prefixes[i]);
        assert_non_null(strstr(err, want));
        assert_null(n.queue);
        queue_names_free(&n);
    }
    /* Sharded pub/sub with a cluster's seed nodes only. */
    struct queue_node seed = {(char *)"h", 7000};
    struct queue_url plain = {0}, cluster = {.nodes = &seed, .nnodes = 1};
    const struct queue_url *urls_[] = {NULL, &plain, &cluster};
    for (int i = 0; i < 3; i++) {
        struct queue_names n;
        char err[300];
        assert_int_equal(queue_names_init(&n, "q", "p", urls_[i], err, sizeof(err)), 0);
        assert_int_equal(n.sharded, i == 2);
        queue_names_free(&n);
    }
}

/* Each script's layout as QUEUE_SCRIPT_TABLE declares it, written out: its
 * name, its fixed KEYS and whether any number more may follow, its fixed
 * ARGV and what may follow them (0: nothing, 1: any number of strings, 2:
 * any number of pairs), and its reply. */
static const struct {
    enum queue_script s;
    const char *name;
    int keys, more_keys, args, run;
    const char *reply;
} layouts[] = {
    {QS_ENQUEUE, "enqueue", 5, 0, 10, 0, "array"},
    {QS_START, "start", 3, 0, 6, 0, "array"},
    {QS_COMPLETE, "complete", 11, 0, 13, 2, "integer"},
    {QS_HEARTBEAT, "heartbeat", 3, 0, 4, 2, "integer"},
    {QS_FORGET, "forget", 3, 0, 1, 0, "integer"},
    {QS_CANCEL, "cancel", 4, 0, 7, 0, "array"},
    {QS_RETRY, "retry", 3, 0, 5, 0, "array"},
    {QS_LIST, "list", 1, 0, 3, 0, "array"},
    {QS_PAGE, "page", 1, 1, 5, 2, "array"},
    {QS_WORKERS, "workers", 1, 1, 0, 1, "array"},
    {QS_LOGS, "logs", 4, 0, 3, 0, "array"},
    {QS_METRICS, "metrics", 5, 1, 1, 0, "array"},
    {QS_COUNT, "count", 1, 0, 0, 2, "integer"},
    {QS_REAP, "reap", 1, 0, 3, 0, "array"},
    {QS_LOST, "lost", 5, 0, 9, 0, "string"},
    {QS_PROMOTE, "promote", 3, 0, 5, 0, "integer"},
    {QS_TRIM, "trim", 1, 1, 1, 0, "integer"},
    {QS_DEADLETTER, "deadletter", 2, 0, 5, 0, "integer"},
    {QS_PAUSE, "pause", 1, 0, 5, 0, "integer"},
    {QS_TENANTS, "tenants", 1, 0, 1, 2, "integer"},
    {QS_FAIR, "fair", 1, 0, 1, 0, "array"},
    {QS_SCHEDULE, "schedule", 3, 0, 5, 2, "array"},
    {QS_SCHEDULES, "schedules", 1, 0, 5, 0, "array"},
    {QS_TICK, "tick", 5, 0, 8, 0, "array"},
};
#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

/* Whether a call of nkeys KEYS and argc strings in all fits layout i. */
static bool fits(size_t i, int nkeys, int argc)
{
    int nargs = argc - nkeys, extra = nargs - layouts[i].args;
    if (layouts[i].more_keys ? nkeys < layouts[i].keys : nkeys != layouts[i].keys)
        return false;
    if (extra < 0)
        return false;
    return layouts[i].run == 0 ? extra == 0 : layouts[i].run == 1 || extra % 2 == 0;
}

/* queue_script_check against the layouts, for every call of up to 16 KEYS
 * and 40 strings. */
static void test_script_check_all(void **state)
{
    (void)state;
    assert_int_equal(NLAYOUTS, QS__COUNT);
    for (size_t i = 0; i < NLAYOUTS; i++) {
        enum queue_script s = layouts[i].s;
        assert_string_equal(queue_script_name(s), layouts[i].name);
        assert_int_equal(queue_script_nkeys(s), layouts[i].keys + layouts[i].more_keys);
        for (int nkeys = 0; nkeys <= 16; nkeys++)
            for (int argc = 0; argc <= 40; argc++)
                if (queue_script_check(s, nkeys, argc) != fits(i, nkeys, argc))
                    fail_msg("%s with %d KEYS, %d strings: check says %d", layouts[i].name, nkeys,
                             argc, !fits(i, nkeys, argc));
    }
    assert_false(queue_script_check((enum queue_script) - 1, 0, 0));
    assert_false(queue_script_check(QS__COUNT, 3, 9));
}

/* The highest n of "WHAT[n]" in text; 0 when there is none. */
static int highest_index(const char *text, const char *what)
{
    int top = 0;
    size_t len = strlen(what);
    for (const char *p = text; (p = strstr(p, what)); p += len) {
        char *end;
        long n = strtol(p + len, &end, 10);
        if (end != p + len && *end == ']' && n > top)
            top = (int)n;
    }
    return top;
}

/* Each script reads the KEYS and ARGV its table entry declares by their
 * numbers: every fixed one, none past them (a run that follows is read in
 * a loop). So the table, the typed calls built from it, and the scripts
 * cannot drift apart. */
static void test_scripts_read_their_layout(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYOUTS; i++) {
        const char *src = queue_script_source(layouts[i].s);
        int k = highest_index(src, "KEYS["), a = highest_index(src, "ARGV[");
        /* A run follows the fixed ones: the script may stop short of them. */
        if (layouts[i].more_keys ? k > layouts[i].keys : k != layouts[i].keys)
            fail_msg("%s.lua reads KEYS[%d], its table entry declares %d", layouts[i].name, k,
                     layouts[i].keys);
        if (layouts[i].run ? a > layouts[i].args : a != layouts[i].args)
            fail_msg("%s.lua reads ARGV[%d], its table entry declares %d", layouts[i].name, a,
                     layouts[i].args);
    }
}

/* A script's source: the status table, then lib.lua's helpers, then the
 * script; made once, and again the same after queue_scripts_free. */
static void test_script_sources(void **state)
{
    (void)state;
    char *statuses = queue_status_lua();
    assert_non_null(statuses);
    for (int s = 0; s < QS__COUNT; s++) {
        const char *src = queue_script_source(s);
        assert_memory_equal(src, statuses, strlen(statuses));
        assert_non_null(strstr(src, "local function stratq_is(status, prop)"));
        assert_ptr_equal(queue_script_source(s), src);
        for (int t = 0; t < s; t++)
            assert_string_not_equal(queue_script_source(t), src);
    }
    char *first = strdup(queue_script_source(QS_COMPLETE));
    queue_scripts_free();
    assert_string_equal(queue_script_source(QS_COMPLETE), first);
    queue_scripts_free();
    free(first);
    free(statuses);
}

/* docs/protocol.md's table: a row per script, in table order, with its
 * KEYS, ARGV ("none" for none) and reply type. */
static void test_markdown_rows(void **state)
{
    (void)state;
    char *text = NULL, *line, *save = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    queue_scripts_markdown(f);
    fclose(f);
    assert_non_null((line = strtok_r(text, "\n", &save)));
    assert_string_equal(line, "| script | KEYS | ARGV | reply |");
    assert_string_equal(strtok_r(NULL, "\n", &save), "|---|---|---|---|");
    for (size_t i = 0; i < NLAYOUTS; i++) {
        char want[64];
        assert_non_null((line = strtok_r(NULL, "\n", &save)));
        snprintf(want, sizeof(want), "| `%s.lua` | `", layouts[i].name);
        assert_memory_equal(line, want, strlen(want));
        snprintf(want, sizeof(want), " | %s: ", layouts[i].reply);
        const char *reply = strstr(line, want);
        assert_non_null(reply);
        /* Before the reply: the name, each KEYS and each ARGV name in `...`. */
        int ticks = 0;
        for (const char *p = line; p < reply; p++)
            ticks += *p == '`';
        int names =
            1 + layouts[i].keys + layouts[i].more_keys + layouts[i].args + (layouts[i].run ? 1 : 0);
        assert_int_equal(ticks, 2 * names);
        if (!layouts[i].args && !layouts[i].run)
            assert_non_null(strstr(line, " | none | "));
    }
    assert_null(strtok_r(NULL, "\n", &save));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_urls),       cmocka_unit_test(test_url_user_and_tls),
        cmocka_unit_test(test_key_names),        cmocka_unit_test(test_table_check),
        cmocka_unit_test(test_markdown),         cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_names_table),      cmocka_unit_test(test_bad_queue_names),
        cmocka_unit_test(test_script_check_all), cmocka_unit_test(test_scripts_read_their_layout),
        cmocka_unit_test(test_script_sources),   cmocka_unit_test(test_markdown_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

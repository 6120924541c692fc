/* Unit tests for src/queue/conn.c's pure parts: the cluster slot of a key
 * (the expected values are what `redis-cli CLUSTER KEYSLOT` answered on
 * redis-server 7.0), the seed list, the redirect errors and the replies of
 * a subscribed connection, plain and sharded. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "queue/conn.h"

static int slot(const char *key)
{
    return queue_key_slot(key, strlen(key));
}

static void test_key_slot(void **state)
{
    (void)state;
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot(""), 0);
    assert_int_equal(slot("python_execution_queue"), 12230);
    assert_int_equal(slot("stratq:job:x"), 8604);
    assert_int_equal(slot("q1"), 7450);
    assert_int_equal(slot("q3"), 15704);
    /* The hash tag: the bytes between the first '{' and the next '}'. */
    assert_int_equal(slot("{python_execution_queue}:job:abc"), 12230);
    assert_int_equal(slot("{user1000}.following"), 3443);
    assert_int_equal(slot("a{b}c{d}"), 3300);
    /* No tag: an empty one, or an unclosed one, hashes the whole key. */
    assert_int_equal(slot("a{}b"), 13694);
    assert_int_equal(slot("{}{x}"), 3257);
    assert_int_equal(slot("{"), 4092);
    assert_int_equal(slot("x{"), 3596);
    /* Binary keys: the length counts, not a NUL. */
    assert_int_equal(queue_key_slot("foo\0bar", 3), 12182);
}

static void test_cluster_nodes(void **state)
{
    (void)state;
    char err[256];
    struct queue_url u;
    assert_int_equal(queue_url_parse("redis://:pw@ignored:1/0", &u, err, sizeof(err)), 0);
    assert_int_equal(queue_url_set_cluster(&u, "", err, sizeof(err)), 0);
    assert_int_equal(u.nnodes, 0);
    assert_int_equal(
        queue_url_set_cluster(&u, "127.0.0.1:7000, 10.0.0.2:7001,[::1]:7002", err, sizeof(err)), 0);
    assert_int_equal(u.nnodes, 3);
    assert_string_equal(u.nodes[0].host, "127.0.0.1");
    assert_int_equal(u.nodes[0].port, 7000);
    assert_string_equal(u.nodes[1].host, "10.0.0.2");
    assert_int_equal(u.nodes[2].port, 7002);
    assert_int_equal(queue_url_set_cluster(&u, "127.0.0.1", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not host:port"));
    assert_int_equal(queue_url_set_cluster(&u, "h:99999", err, sizeof(err)), -EINVAL);
    assert_int_equal(u.nnodes, 3); /* a bad list leaves the old one */
    queue_url_free(&u);
    assert_int_equal(queue_url_parse("redis://h:1/2", &u, err, sizeof(err)), 0);
    assert_int_equal(queue_url_set_cluster(&u, "h:1", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "database 0"));
    queue_url_free(&u);
}

static void test_redirect_parse(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    assert_int_equal(queue_redirect_parse("MOVED 3999 127.0.0.1:6381", host, sizeof(host), &port),
                     QUEUE_REDIRECT_MOVED);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(queue_redirect_parse("ASK 12230 10.1.2.3:7002", host, sizeof(host), &port),
                     QUEUE_REDIRECT_ASK);
    assert_string_equal(host, "10.1.2.3");
    assert_int_equal(port, 7002);
    /* Redis 7's unknown endpoint: an empty host, the node that answered. */
    assert_int_equal(queue_redirect_parse("MOVED 1 :7005", host, sizeof(host), &port),
                     QUEUE_REDIRECT_MOVED);
    assert_string_equal(host, "");
    assert_int_equal(queue_redirect_parse("TRYAGAIN Multiple keys", host, sizeof(host), &port),
                     QUEUE_REDIRECT_NONE);
    assert_int_equal(queue_redirect_parse("MOVED 3999", host, sizeof(host), &port),
                     QUEUE_REDIRECT_NONE);
    assert_int_equal(queue_redirect_parse("MOVED 3999 h:x", host, sizeof(host), &port),
                     QUEUE_REDIRECT_NONE);
    assert_int_equal(queue_redirect_parse("ERR MOVED 1 h:1", host, sizeof(host), &port),
                     QUEUE_REDIRECT_NONE);
}

/* A reply of a subscribed connection: {kind, channel, last}. */
static enum queue_sub_msg sub_parse(const char *kind, const char *last, const char **payload)
{
    redisReply k = {.type = REDIS_REPLY_STRING, .str = (char *)kind, .len = strlen(kind)};
    redisReply ch = {.type = REDIS_REPLY_STRING, .str = (char *)"c", .len = 1};
    redisReply n = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply data = {
        .type = REDIS_REPLY_STRING, .str = (char *)last, .len = last ? strlen(last) : 0};
    redisReply *elems[] = {&k, &ch, last ? &data : &n};
    redisReply r = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = elems};
    const redisReply *p;
    enum queue_sub_msg m = queue_sub_parse(&r, &p);
    *payload = p ? p->str : NULL;
    return m;
}

static void test_sub_parse(void **state)
{
    (void)state;
    const char *payload;
    assert_int_equal(sub_parse("subscribe", NULL, &payload), QUEUE_SUB_SUBSCRIBED);
    assert_int_equal(sub_parse("ssubscribe", NULL, &payload), QUEUE_SUB_SUBSCRIBED);
    assert_int_equal(sub_parse("message", "{}", &payload), QUEUE_SUB_MESSAGE);
    assert_string_equal(payload, "{}");
    assert_int_equal(sub_parse("smessage", "{\"id\":\"j\"}", &payload), QUEUE_SUB_MESSAGE);
    assert_string_equal(payload, "{\"id\":\"j\"}");
    /* The end of a sharded subscription: its slot left the node. */
    assert_int_equal(sub_parse("sunsubscribe", NULL, &payload), QUEUE_SUB_UNSUBSCRIBED);
    assert_int_equal(sub_parse("unsubscribe", NULL, &payload), QUEUE_SUB_UNSUBSCRIBED);
    assert_int_equal(sub_parse("ubscribe", NULL, &payload), QUEUE_SUB_OTHER);
    assert_int_equal(sub_parse("pong", "", &payload), QUEUE_SUB_OTHER);
    assert_null(payload);
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = (char *)"MOVED 1 h:2", .len = 11};
    const redisReply *p;
    assert_int_equal(queue_sub_parse(&err, &p), QUEUE_SUB_OTHER);
    assert_int_equal(queue_sub_parse(NULL, &p), QUEUE_SUB_OTHER);
}

static int configure(const char *url, const struct queue_url_settings *st, struct queue_url *u,
                     char *err, size_t errlen)
{
    assert_int_equal(queue_url_parse(url, u, err, errlen), 0);
    int r = queue_url_configure(u, st, err, errlen);
    return r;
}

static void test_url_configure(void **state)
{
    (void)state;
    struct queue_url u;
    char err[512];
    /* Sentinel: the default of min_replicas becomes 1. */
    struct queue_url_settings st = {.sentinels = "10.0.0.1:26379, 10.0.0.2:26379",
                                    .sentinel_master = "mymaster",
                                    .sentinel_password = "sentry:pw",
                                    .min_replicas = -1,
                                    .wait_timeout_ms = 500};
    assert_int_equal(configure("redis://:x@ignored", &st, &u, err, sizeof(err)), 0);
    assert_int_equal(u.nsentinels, 2);
    assert_string_equal(u.sentinels[1].host, "10.0.0.2");
    assert_int_equal(u.sentinels[1].port, 26379);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(u.sentinel_user, "sentry");
    assert_string_equal(u.sentinel_password, "pw");
    assert_int_equal(u.min_replicas, 1);
    assert_int_equal(u.wait_timeout_ms, 500);
    queue_url_free(&u);
    /* Without Sentinel: 0, unless set. */
    st = (struct queue_url_settings){.min_replicas = -1, .wait_timeout_ms = 500};
    assert_int_equal(configure("redis://h", &st, &u, err, sizeof(err)), 0);
    assert_int_equal(u.min_replicas, 0);
    queue_url_free(&u);
    st.min_replicas = 2;
    assert_int_equal(configure("redis://h", &st, &u, err, sizeof(err)), 0);
    assert_int_equal(u.min_replicas, 2);
    queue_url_free(&u);
    /* Sentinel and Cluster exclude each other. */
    st = (struct queue_url_settings){
        .sentinels = "a:1", .sentinel_master = "m", .cluster_nodes = "b:2", .min_replicas = -1};
    assert_int_equal(configure("redis://h", &st, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_REDIS_CLUSTER_NODES"));
    queue_url_free(&u);
    st = (struct queue_url_settings){.sentinels = "a", .sentinel_master = "m", .min_replicas = -1};
    assert_int_equal(configure("redis://h", &st, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_REDIS_SENTINELS: 'a' is not host:port"));
    queue_url_free(&u);
    /* A client certificate needs its key; the files must be readable. */
    st = (struct queue_url_settings){.cert = "/etc/hostname", .min_replicas = -1};
    assert_int_equal(configure("rediss://h", &st, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_REDIS_CERT is set without STRATQ_REDIS_KEY"));
    queue_url_free(&u);
    /* A file that does not exist is unset (a Secret without that key). */
    st = (struct queue_url_settings){.cacert = "/nonexistent/ca.crt", .min_replicas = -1};
    assert_int_equal(configure("rediss://h", &st, &u, err, sizeof(err)), 0);
    assert_null(u.tls_opt.cacert);
    queue_url_free(&u);
    st = (struct queue_url_settings){
        .cert = "/etc/hostname", .key = "/nonexistent/tls.key", .min_replicas = -1};
    assert_int_equal(configure("rediss://h", &st, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_REDIS_CERT is set without STRATQ_REDIS_KEY"));
    queue_url_free(&u);
    /* A file that is not a CA bundle. */
    st = (struct queue_url_settings){.cacert = "/etc/hostname", .min_replicas = -1};
    assert_int_equal(configure("rediss://h", &st, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "cannot load the CA bundle"));
    queue_url_free(&u);
    /* TLS with the system's CAs. */
    st = (struct queue_url_settings){.min_replicas = -1};
    assert_int_equal(configure("rediss://h", &st, &u, err, sizeof(err)), 0);
    assert_non_null(u.tls_ctx);
    queue_url_free(&u);
    assert_null(u.tls_ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),       cmocka_unit_test(test_cluster_nodes),
        cmocka_unit_test(test_redirect_parse), cmocka_unit_test(test_sub_parse),
        cmocka_unit_test(test_url_configure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

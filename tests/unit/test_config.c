/* Unit tests for src/common/config.c and the URL parser in src/queue/queue.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "queue/queue.h"

static int load(unsigned cmd, int argc, char **argv, char ***args, int *nargs, char *err)
{
    return config_load(cmd, argc, argv, args, nargs, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    unsetenv("STRATQ_QUEUE");
    assert_int_equal(load(CMD_WORKER, 0, NULL, &args, &nargs, err), 0);
    assert_string_equal(config_str(CFG_QUEUE), "python_execution_queue");
    assert_int_equal(config_int(CFG_HEARTBEAT), 5);
    assert_false(config_is_set(CFG_QUEUE));
    config_free();
}

static void test_env_then_flags(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    setenv("STRATQ_QUEUE", "from_env", 1);
    setenv("STRATQ_HEARTBEAT_S", "7", 1);
    char *argv[] = {"--heartbeat", "9", "pos1", "--prefix=pfx", "pos2"};
    assert_int_equal(load(CMD_WORKER, 5, argv, &args, &nargs, err), 0);
    assert_string_equal(config_str(CFG_QUEUE), "from_env");
    assert_true(config_is_set(CFG_QUEUE));
    assert_int_equal(config_int(CFG_HEARTBEAT), 9);
    assert_string_equal(config_str(CFG_PREFIX), "pfx");
    assert_int_equal(nargs, 2);
    assert_string_equal(args[0], "pos1");
    assert_string_equal(args[1], "pos2");
    unsetenv("STRATQ_QUEUE");
    unsetenv("STRATQ_HEARTBEAT_S");
    config_free();
}

static void test_errors_say_what_is_wrong(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    char *bad_int[] = {"--heartbeat", "soon"};
    assert_int_equal(load(CMD_WORKER, 2, bad_int, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "not an integer"));
    char *range[] = {"--heartbeat=0"};
    assert_int_equal(load(CMD_WORKER, 1, range, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "out of range [1, 300]"));
    /* An option of another subcommand is unknown here. */
    char *other[] = {"--workers", "3"};
    assert_int_equal(load(CMD_WORKER, 2, other, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "unknown option '--workers'"));
    char *missing[] = {"--queue"};
    assert_int_equal(load(CMD_WORKER, 1, missing, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "needs a value"));
    setenv("STRATQ_MAX_BODY", "12", 1);
    assert_int_equal(load(CMD_API, 0, NULL, &args, &nargs, err), -EINVAL);
    assert_non_null(strstr(err, "STRATQ_MAX_BODY"));
    unsetenv("STRATQ_MAX_BODY");
    config_free();
}

static void test_bool_flags_and_help(void **state)
{
    (void)state;
    char err[256], **args;
    int nargs;
    char *argv[] = {"f.py", "--wait", "--json=false"};
    assert_int_equal(load(CMD_SUBMIT, 3, argv, &args, &nargs, err), 0);
    assert_true(config_bool(CFG_WAIT));
    assert_false(config_bool(CFG_JSON));
    char *help[] = {"--help"};
    assert_int_equal(load(CMD_SUBMIT, 1, help, &args, &nargs, err), 1);
    config_free();
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_errors_say_what_is_wrong),
        cmocka_unit_test(test_bool_flags_and_help),
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_key_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

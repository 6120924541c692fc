/* Unit tests for src/queue/jobq.c and the script table of queue.h: the
 * KEYS and ARGV each typed call builds, in the order the scripts read them
 * (the layouts are written out here as the worker and the API sent them
 * before the typed calls), and the check of every call against the table. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/jobq.h"

static struct queue_names names;
static struct jobq jq;
static const struct jobq_settings settings = {.index_size = 100,
                                              .result_ttl_s = 60,
                                              .failed_ttl_s = 120,
                                              .max_deliveries = 3,
                                              .live_ttl_s = 3720};

/* The last call the fake eval hook was given, joined by spaces, and the
 * reply it answers with. */
static char last_call[4096];
static bool last_until_done;
static long long reply_integer = 1;

static redisReply *fake_eval(void *priv, const struct queue_call *c)
{
    size_t used = 0;
    (void)priv;
    assert_true(queue_script_check(c->script, c->nkeys, c->argc));
    used += (size_t)snprintf(last_call, sizeof(last_call), "%s", queue_script_name(c->script));
    for (int i = 0; i < c->argc; i++)
        used += (size_t)snprintf(last_call + used, sizeof(last_call) - used, " %.*s",
                                 (int)c->len[i], c->argv[i]);
    last_until_done = c->until_done;
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = reply_integer;
    return r;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(queue_names_init(&names, "q", "sq"), 0);
    assert_int_equal(jobq_init(&jq, &names, "w1", &settings, fake_eval, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jobq_free(&jq);
    queue_names_free(&names);
    return 0;
}

/* The call's strings joined by spaces, after checking it against the
 * table; frees the call. */
static const char *joined(struct queue_call *c)
{
    static char buf[4096];
    size_t used = 0;
    assert_false(c->nomem);
    assert_true(queue_script_check(c->script, c->nkeys, c->argc));
    buf[0] = '\0';
    for (int i = 0; i < c->argc; i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%.*s", i ? " " : "",
                                 (int)c->len[i], c->argv[i]);
    queue_call_free(c);
    return buf;
}

static void test_table_check(void **state)
{
    (void)state;
    /* complete: 3 KEYS, 12 fixed ARGV, then field/value pairs. */
    assert_true(queue_script_check(QS_COMPLETE, 3, 15));
    assert_true(queue_script_check(QS_COMPLETE, 3, 17));
    assert_false(queue_script_check(QS_COMPLETE, 3, 16));
    assert_false(queue_script_check(QS_COMPLETE, 3, 14));
    assert_false(queue_script_check(QS_COMPLETE, 2, 15));
    /* enqueue: exactly 2 + 6. */
    assert_true(queue_script_check(QS_ENQUEUE, 2, 8));
    assert_false(queue_script_check(QS_ENQUEUE, 2, 9));
    assert_false(queue_script_check(QS_ENQUEUE, 2, 10));
    assert_false(queue_script_check(QS__COUNT, 0, 0));
    assert_int_equal(queue_script_nkeys(QS_DEREGISTER), 4);
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
    assert_non_null(strstr(text,
                           "| `heartbeat.lua` | `stratq:workers`, `stratq:worker:<worker>` | "
                           "`worker`, `now_ms`, `ttl_ms`, `field value ...` | integer: 1 |\n"));
    free(text);
}

static void test_api_calls(void **state)
{
    (void)state;
    struct queue_call c;
    assert_int_equal(queue_build_enqueue(&c, &names, "j1", "{}", 1000, 100), 0);
    assert_string_equal(joined(&c), "sq:job:j1 q j1 {} 1000 sq:events sq 100");
    assert_int_equal(queue_build_cancel(&c, &names, "j1", 1000, 100, 120), 0);
    assert_string_equal(joined(&c), "sq:job:j1 q sq:scheduled j1 1000 sq:events sq 100 120");
    assert_int_equal(queue_build_retry(&c, &names, "j1", 1000, 100), 0);
    assert_string_equal(joined(&c), "sq:job:j1 q sq:dead j1 1000 sq:events sq 100");
    assert_int_equal(queue_build_logs(&c, &names, "j1", 1, 2, 3), 0);
    assert_string_equal(joined(&c), "sq:job:j1 1 2 3");
    assert_int_equal(queue_build_list(&c, &names, "all", "+inf", "", 50), 0);
    assert_string_equal(joined(&c), "sq:index:all +inf  50 sq:job:");
    assert_int_equal(queue_build_workers(&c, &names), 0);
    assert_string_equal(joined(&c), "sq:workers sq:worker:");
    assert_int_equal(queue_build_stats(&c, &names), 0);
    assert_string_equal(joined(&c), "q sq:workers sq:scheduled sq:dead sq:processing:");
    assert_int_equal(queue_build_metrics(&c, &names), 0);
    assert_string_equal(joined(&c), "q sq:workers sq:scheduled sq:dead sq:stats sq:processing:");
}

static void test_worker_calls(void **state)
{
    (void)state;
    struct queue_call c;
    assert_int_equal(jobq_build_start(&jq, &c, "j1", 2000), 0);
    assert_true(c.until_done);
    assert_string_equal(joined(&c),
                        "sq:job:j1 sq:processing:w1 sq:worker:w1 j1 w1 2000 sq:events sq 100");
    assert_int_equal(jobq_build_deregister(&jq, &c), 0);
    assert_string_equal(joined(&c), "sq:workers sq:worker:w1 sq:processing:w1 q w1 sq:job: "
                                    "sq:events");
    assert_int_equal(jobq_build_promote(&jq, &c, 5), 0);
    assert_false(c.until_done);
    assert_string_equal(joined(&c), "sq:scheduled q 5 sq sq:events 100");
    assert_int_equal(jobq_build_reap(&jq, &c, 5, 6000), 0);
    assert_string_equal(joined(&c), "sq:workers q 5 6000 sq sq:events 3 100 120 w1");
    assert_int_equal(jobq_build_lost(&jq, &c, "j1", 5), 0);
    assert_string_equal(joined(&c), "sq:processing:w1 q j1 w1 5 sq sq:events 3 100 120");
    /* The exact bytes of an entry, NUL included. */
    assert_int_equal(jobq_build_deadletter(&jq, &c, "a\0b", 3, "why", 5), 0);
    assert_int_equal((int)c.len[2], 3);
    assert_memory_equal(c.argv[2], "a\0b", 3);
    queue_call_free(&c);

    struct jobq_worker_info info = {.host = "h",
                                    .version = "1.0",
                                    .state = "idle",
                                    .current_job = "",
                                    .pid = 42,
                                    .started_ms = 7};
    assert_int_equal(jobq_build_heartbeat(&jq, &c, &info, 8, 15000), 0);
    assert_string_equal(joined(&c), "sq:workers sq:worker:w1 w1 8 15000 host h pid 42 version 1.0 "
                                    "state idle current_job  started_ms 7 sandbox {}");
}

static void test_complete(void **state)
{
    (void)state;
    struct job_outcome o = {.status = QUEUE_STATUS_FAILED,
                            .attempt = 2,
                            .error = "{\"type\":\"E\"}",
                            .out = "hi",
                            .usage = "{}",
                            .max_attempts = 0,
                            .next_run_ms = 9};
    reply_integer = 1;
    assert_int_equal(jobq_complete(&jq, "j1", &o, 3000), 1);
    assert_true(last_until_done);
    assert_string_equal(last_call, "complete sq:job:j1 sq:processing:w1 sq:worker:w1 j1 w1 2 3000 "
                                   "sq:events 60 120 sq 100 1 9 failed error {\"type\":\"E\"} "
                                   "stdout hi stderr  usage {}");
    o = (struct job_outcome){.status = QUEUE_STATUS_SUCCEEDED,
                             .attempt = 1,
                             .result = "42",
                             .dead_reason = "r",
                             .max_attempts = 3};
    reply_integer = 2;
    assert_int_equal(jobq_complete(&jq, "j2", &o, 3000), 2);
    assert_string_equal(last_call, "complete sq:job:j2 sq:processing:w1 sq:worker:w1 j2 w1 1 3000 "
                                   "sq:events 60 120 sq 100 3 0 succeeded result 42 stdout  "
                                   "stderr  dead_reason r");
    reply_integer = 7;
    assert_int_equal(jobq_complete(&jq, "j2", &o, 3000), -EPROTO);
    reply_integer = 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_check), cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_api_calls),   cmocka_unit_test(test_worker_calls),
        cmocka_unit_test(test_complete),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests for src/queue/jobq.c: the KEYS and ARGV each typed call
 * builds, in the order the scripts read them (the layouts are written out
 * here as the worker and the API sent them before the typed calls), each
 * checked against the script table of queue.h (tested in test_queue.c). */
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
    char err[200];
    assert_int_equal(queue_names_init(&names, "q", "sq", NULL, err, sizeof(err)), 0);
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
    assert_true(c->plain || queue_script_check(c->script, c->nkeys, c->argc));
    buf[0] = '\0';
    for (int i = 0; i < c->argc; i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%.*s", i ? " " : "",
                                 (int)c->len[i], c->argv[i]);
    queue_call_free(c);
    return buf;
}

static void test_api_calls(void **state)
{
    (void)state;
    struct queue_call c;
    const struct queue_submit how = {"alice", 8, 5000};
    assert_int_equal(queue_build_enqueue(&c, &names, "j1", "{}", 1000, false, NULL), 0);
    assert_string_equal(
        joined(&c), "sq:{q}:job:j1 q sq:{q}:index:all sq:{q}:scheduled sq:{q}:index:scheduled j1 "
                    "{} 1000 sq:{q}:events PUBLISH 0  5 0 sq:{q}");
    assert_int_equal(queue_build_enqueue(&c, &names, "mine", "{}", 1000, true, &how), 0);
    assert_string_equal(
        joined(&c), "sq:{q}:job:mine q sq:{q}:index:all sq:{q}:scheduled sq:{q}:index:scheduled "
                    "mine {} 1000 sq:{q}:events PUBLISH 1 alice 8 5000 sq:{q}");
    assert_int_equal(queue_build_cancel(&c, &names, "j1", 1000, 120), 0);
    assert_string_equal(joined(&c), "sq:{q}:job:j1 q sq:{q}:scheduled sq:{q}:index:cancelled j1 "
                                    "1000 sq:{q}:events PUBLISH 120 sq:{q}:control: sq:{q}");
    assert_int_equal(queue_build_retry(&c, &names, "j1", 1000), 0);
    assert_string_equal(joined(&c),
                        "sq:{q}:job:j1 q sq:{q}:dead j1 1000 sq:{q}:events PUBLISH sq:{q}");
    assert_int_equal(queue_build_logs(&c, &names, "j1", 1, 2, 3), 0);
    assert_string_equal(joined(&c), "sq:{q}:job:j1 sq:{q}:job:j1:stdout sq:{q}:job:j1:stderr "
                                    "sq:{q}:job:j1:log 1 2 3");
    assert_int_equal(queue_build_list(&c, &names, "all", "", "+inf", "", 40), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:all +inf  54");
    /* A status with an index of its own reads it; one without filters all,
     * reading up to a budget of ids. */
    assert_int_equal(queue_build_list(&c, &names, "failed", "", "+inf", "", 40), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:failed +inf  54");
    assert_int_equal(queue_build_list(&c, &names, "succeeded", "", "1000", "j9", 40), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:all 1000 j9 1400");
    /* A tenant filters any index, within the budget too. */
    assert_int_equal(queue_build_list(&c, &names, "failed", "alice", "+inf", "", 40), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:failed +inf  1400");
    assert_int_equal(queue_build_list(&c, &names, "all", "alice", "+inf", "", 40), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:all +inf  1400");
    /* The page's call names each id's job hash, from list.lua's reply. */
    redisReply *ids[5], *e;
    const char *const strs[] = {"j2", "1002", "j1", "1001"};
    for (int i = 0; i < 4; i++) {
        ids[i + 1] = calloc(1, sizeof(*e));
        ids[i + 1]->type = REDIS_REPLY_STRING;
        ids[i + 1]->str = (char *)strs[i];
        ids[i + 1]->len = strlen(strs[i]);
    }
    ids[0] = calloc(1, sizeof(*e));
    ids[0]->type = REDIS_REPLY_INTEGER;
    ids[0]->integer = 1;
    redisReply list = {.type = REDIS_REPLY_ARRAY, .elements = 5, .element = ids};
    assert_int_equal(queue_build_page(&c, &names, "succeeded", "", 40, &list), 0);
    assert_int_equal(c.nkeys, 3);
    assert_string_equal(joined(&c),
                        "sq:{q}:index:all sq:{q}:job:j2 sq:{q}:job:j1 succeeded 0 40 1  "
                        "j2 1002 j1 1001");
    assert_int_equal(queue_build_page(&c, &names, "failed", "alice", 40, &list), 0);
    assert_string_equal(joined(&c), "sq:{q}:index:failed sq:{q}:job:j2 sq:{q}:job:j1 failed 1 40 1 "
                                    "alice j2 1002 j1 1001");
    /* The workers' ids name their hashes and processing lists. */
    redisReply workers = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = ids + 1};
    ids[2]->str = (char *)"w2";
    ids[2]->len = 2;
    assert_int_equal(queue_build_job_read(&c, &names, "j7"), 0);
    assert_true(c.plain);
    assert_string_equal(joined(&c), "HGETALL sq:{q}:job:j7");
    assert_int_equal(queue_build_worker_ids(&c, &names), 0);
    assert_true(c.plain);
    assert_string_equal(joined(&c), "ZRANGE sq:{q}:workers 0 -1");
    assert_int_equal(queue_build_workers(&c, &names, &workers), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers sq:{q}:worker:j2 sq:{q}:worker:w2 j2 w2");
    assert_int_equal(queue_build_metrics(&c, &names, &workers), 0);
    assert_string_equal(joined(&c), "q sq:{q}:workers sq:{q}:scheduled sq:{q}:dead sq:{q}:stats "
                                    "sq:{q}:processing:j2 sq:{q}:processing:w2 sq:{q}");
    /* A reply of another shape is refused. */
    assert_int_equal(queue_build_metrics(&c, &names, ids[0]), -EPROTO);
    assert_int_equal(queue_build_page(&c, &names, "all", "", 40, &workers), -EPROTO);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    assert_int_equal(queue_build_count_submitted(&c, &names, 7), 0);
    assert_string_equal(joined(&c), "sq:{q}:stats submitted 7");
}

/* The schedules' calls: schedule.lua's add (a durable write, with its
 * fields) and the others, schedules.lua. */
static void test_schedule_calls(void **state)
{
    (void)state;
    struct queue_call c;
    const char *const fields[] = {"spec", "{}", "every_ms", "1000"};
    assert_int_equal(queue_build_schedule(&c, &names, "add", "s1", 1000, 2000, NULL, fields, 4), 0);
    assert_true(c.durable);
    assert_string_equal(joined(&c), "sq:{q}:schedule:s1 sq:{q}:schedules sq:{q}:schedules:due add "
                                    "s1 1000 2000  spec {} every_ms 1000");
    assert_int_equal(queue_build_schedule(&c, &names, "pause", "s1", 1000, 0, "alice", NULL, 0), 0);
    assert_false(c.durable);
    assert_string_equal(joined(&c), "sq:{q}:schedule:s1 sq:{q}:schedules sq:{q}:schedules:due "
                                    "pause s1 1000 0 alice");
    assert_int_equal(queue_build_schedules(&c, &names, NULL, 1000, "alice", NULL), 0);
    assert_string_equal(joined(&c), "sq:{q}:schedules sq:{q}  1000 alice ");
    assert_int_equal(queue_build_schedules(&c, &names, NULL, 2, "", "1000:s1"), 0);
    assert_string_equal(joined(&c), "sq:{q}:schedules sq:{q}  2  1000:s1");
    assert_int_equal(queue_build_schedules(&c, &names, "s1", 1, NULL, NULL), 0);
    assert_string_equal(joined(&c), "sq:{q}:schedules sq:{q} s1 1  ");
    /* A worker's tick: fenced on the due score as read. */
    assert_int_equal(jobq_build_tick(&jq, &c, "s1", "2000", 3000, "j9", 2050), 0);
    assert_false(c.until_done);
    assert_string_equal(joined(&c), "sq:{q}:schedule:s1 sq:{q}:schedules:due sq:{q}:job:j9 q "
                                    "sq:{q}:index:all s1 2000 3000 j9 2050 sq:{q}:events PUBLISH "
                                    "sq:{q}");
}

static void test_worker_calls(void **state)
{
    (void)state;
    struct queue_call c;
    assert_int_equal(jobq_build_start(&jq, &c, "j1", 2000042), 0);
    assert_true(c.until_done);
    assert_string_equal(joined(&c), "sq:{q}:job:j1 sq:{q}:processing:w1 q j1 w1 2000.042 "
                                    "sq:{q}:events PUBLISH sq:{q}");
    assert_int_equal(jobq_build_forget(&jq, &c, "w9"), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers sq:{q}:worker:w9 sq:{q}:processing:w9 w9");
    assert_int_equal(jobq_build_promote(&jq, &c, "j1", 5), 0);
    assert_false(c.until_done);
    assert_string_equal(joined(&c),
                        "sq:{q}:scheduled q sq:{q}:job:j1 j1 5 sq:{q}:events PUBLISH sq:{q}");
    assert_int_equal(jobq_build_reap(&jq, &c, 5, 6000), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers 5 6000 w1");
    /* This worker's executor died: the loss counts. */
    assert_int_equal(jobq_build_lost(&jq, &c, NULL, "j1", 5, true), 0);
    assert_string_equal(joined(&c),
                        "sq:{q}:processing:w1 q sq:{q}:job:j1 sq:{q}:dead "
                        "sq:{q}:index:dead j1 w1 5 sq:{q}:events PUBLISH 3 120 1 sq:{q}");
    /* A stopping worker w9 gives its job back: it does not. */
    assert_int_equal(jobq_build_lost(&jq, &c, "w9", "j1", 5, false), 0);
    assert_string_equal(joined(&c),
                        "sq:{q}:processing:w9 q sq:{q}:job:j1 sq:{q}:dead "
                        "sq:{q}:index:dead j1 w9 5 sq:{q}:events PUBLISH 3 120 0 sq:{q}");
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
                                    .started_ms = 7,
                                    .jobs_done = 5,
                                    .jobs_failed = 1};
    assert_int_equal(jobq_build_heartbeat(&jq, &c, &info, 8, 15000, true), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers sq:{q}:worker:w1 sq:{q}:stats w1 8 15000 0 "
                                    "host h pid 42 version 1.0 state idle current_job  "
                                    "started_ms 7 jobs_done 5 jobs_failed 1 sandbox {}");
    /* What the worker counted rides on its next heartbeat. */
    jq.stats.completed[QUEUE_STATUS_SUCCEEDED] = 2;
    jobq_observe(&jq.stats.queue_wait, 0.003);
    jobq_observe(&jq.stats.queue_wait, 0.5);
    assert_int_equal(jobq_build_heartbeat(&jq, &c, &info, 8, 15000, true), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers sq:{q}:worker:w1 sq:{q}:stats w1 8 15000 5 "
                                    "completed:succeeded 2 queue_wait:bucket:1 1 "
                                    "queue_wait:bucket:7 1 queue_wait:sum 0.503000 "
                                    "queue_wait:count 2 "
                                    "host h pid 42 version 1.0 state idle current_job  "
                                    "started_ms 7 jobs_done 5 jobs_failed 1 sandbox {}");
    /* A heartbeat that reports a change of state only leaves them for later. */
    assert_true(jobq_stats_pending(&jq));
    assert_int_equal(jobq_build_heartbeat(&jq, &c, &info, 8, 15000, false), 0);
    assert_string_equal(joined(&c), "sq:{q}:workers sq:{q}:worker:w1 sq:{q}:stats w1 8 15000 0 "
                                    "host h pid 42 version 1.0 state idle current_job  "
                                    "started_ms 7 jobs_done 5 jobs_failed 1 sandbox {}");
    assert_int_equal(jobq_heartbeat(&jq, &info, 8, 15000, false), 0);
    assert_true(jobq_stats_pending(&jq));
    /* Every status and bucket counted at once still fits one call. */
    for (int st = 0; st < QUEUE_STATUS__COUNT; st++)
        jq.stats.completed[st] = 1;
    for (int b = 0; b < queue_nbuckets; b++) {
        jobq_observe(&jq.stats.duration, queue_buckets[b]);
        jobq_observe(&jq.stats.queue_wait, queue_buckets[b]);
    }
    assert_int_equal(jobq_build_heartbeat(&jq, &c, &info, 8, 15000, true), 0);
    assert_false(c.nomem);
    queue_call_free(&c);
    /* Cleared once the heartbeat went through. */
    reply_integer = 1;
    assert_int_equal(jobq_heartbeat(&jq, &info, 8, 15000, true), 0);
    assert_int_equal(jq.stats.queue_wait.count, 0);
    assert_int_equal(jq.stats.completed[QUEUE_STATUS_SUCCEEDED], 0);
    assert_false(jobq_stats_pending(&jq));
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
                            .next_run_ms = 9,
                            .live = true};
    reply_integer = 1;
    assert_int_equal(jobq_complete(&jq, "j1", &o, 3000, 0.2), 1);
    assert_true(last_until_done);
    assert_string_equal(last_call,
                        "complete sq:{q}:job:j1 sq:{q}:processing:w1 sq:{q}:job:j1:stdout "
                        "sq:{q}:job:j1:stderr sq:{q}:job:j1:log sq:{q}:scheduled sq:{q}:dead "
                        "sq:{q}:index:failed sq:{q}:index:scheduled sq:{q}:index:dead q j1 w1 2 "
                        "3000 sq:{q}:events PUBLISH 60 120 1 9 failed 1 sq:{q} error "
                        "{\"type\":\"E\"} stdout hi stderr  usage {}");
    /* Counted for the next heartbeat. */
    assert_int_equal(jq.stats.completed[QUEUE_STATUS_FAILED], 1);
    assert_int_equal(jq.stats.duration.count, 1);
    assert_int_equal(jq.stats.duration.buckets[5], 1); /* 0.2 <= 0.25 */
    o = (struct job_outcome){.status = QUEUE_STATUS_SUCCEEDED,
                             .attempt = 1,
                             .result = "42",
                             .dead_reason = "r",
                             .max_attempts = 3};
    reply_integer = 2;
    assert_int_equal(jobq_complete(&jq, "j2", &o, 3000, 0.1), 2);
    assert_string_equal(
        last_call, "complete sq:{q}:job:j2 sq:{q}:processing:w1 sq:{q}:job:j2:stdout "
                   "sq:{q}:job:j2:stderr sq:{q}:job:j2:log sq:{q}:scheduled sq:{q}:dead "
                   "sq:{q}:index:succeeded sq:{q}:index:scheduled sq:{q}:index:dead q j2 w1 1 "
                   "3000 sq:{q}:events PUBLISH 60 120 3 0 succeeded 0 sq:{q} result 42 stdout  "
                   "stderr  dead_reason r");
    /* Recorded already: not counted twice. */
    assert_int_equal(jq.stats.completed[QUEUE_STATUS_SUCCEEDED], 0);
    /* The result and the output as the executor's messages hold them:
     * bytes with their lengths, not NUL-terminated. */
    static const char bytes[] = "[1,2]OUTERR";
    o = (struct job_outcome){.status = QUEUE_STATUS_SUCCEEDED,
                             .attempt = 1,
                             .result = bytes,
                             .result_len = 5,
                             .out = bytes + 5,
                             .out_len = 3,
                             .err = bytes + 8,
                             .err_len = 3};
    assert_int_equal(jobq_complete(&jq, "j3", &o, 3000, 0.1), 2);
    assert_non_null(strstr(last_call, " succeeded 0 sq:{q} result [1,2] stdout OUT stderr ERR"));
    reply_integer = 7;
    assert_int_equal(jobq_complete(&jq, "j2", &o, 3000, 0.1), -EPROTO);
    reply_integer = 1;
}

/* On Redis Cluster every script that publishes is told to use SPUBLISH
 * (sharded pub/sub); the rest of its call is the same. */
static void test_sharded(void **state)
{
    (void)state;
    struct queue_call c;
    names.sharded = true;
    /* cancel.lua publishes on the worker's control channel with it too. */
    assert_int_equal(queue_build_cancel(&c, &names, "j1", 1000, 120), 0);
    assert_string_equal(joined(&c), "sq:{q}:job:j1 q sq:{q}:scheduled sq:{q}:index:cancelled j1 "
                                    "1000 sq:{q}:events SPUBLISH 120 sq:{q}:control: sq:{q}");
    /* Every call that publishes names the command right after the channel. */
    assert_int_equal(queue_build_enqueue(&c, &names, "j1", "{}", 1000, false, NULL), 0);
    assert_non_null(strstr(joined(&c), " 1000 sq:{q}:events SPUBLISH 0"));
    assert_int_equal(queue_build_retry(&c, &names, "j1", 1000), 0);
    assert_non_null(strstr(joined(&c), " 1000 sq:{q}:events SPUBLISH"));
    assert_int_equal(jobq_build_start(&jq, &c, "j1", 2000000), 0);
    assert_non_null(strstr(joined(&c), " 2000.000 sq:{q}:events SPUBLISH"));
    assert_int_equal(jobq_build_promote(&jq, &c, "j1", 5), 0);
    assert_non_null(strstr(joined(&c), " 5 sq:{q}:events SPUBLISH"));
    assert_int_equal(jobq_build_lost(&jq, &c, NULL, "j1", 5, true), 0);
    assert_string_equal(joined(&c),
                        "sq:{q}:processing:w1 q sq:{q}:job:j1 sq:{q}:dead "
                        "sq:{q}:index:dead j1 w1 5 sq:{q}:events SPUBLISH 3 120 1 sq:{q}");
    struct job_outcome o = {.status = QUEUE_STATUS_SUCCEEDED, .attempt = 1, .result = "1"};
    assert_int_equal(jobq_build_complete(&jq, &c, "j1", &o, 3000), 0);
    assert_string_equal(joined(&c),
                        "sq:{q}:job:j1 sq:{q}:processing:w1 sq:{q}:job:j1:stdout "
                        "sq:{q}:job:j1:stderr sq:{q}:job:j1:log sq:{q}:scheduled sq:{q}:dead "
                        "sq:{q}:index:succeeded sq:{q}:index:scheduled sq:{q}:index:dead q j1 w1 1 "
                        "3000 sq:{q}:events SPUBLISH 60 120 1 0 succeeded 0 sq:{q} result 1 "
                        "stdout  stderr ");
    names.sharded = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_calls),    cmocka_unit_test(test_schedule_calls),
        cmocka_unit_test(test_worker_calls), cmocka_unit_test(test_complete),
        cmocka_unit_test(test_sharded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests for src/queue/status.c: the table of job statuses, its
 * properties, and the JSON and Lua forms made from it. The expected sets are
 * written out here on purpose: they are what docs/protocol.md, retry.lua's
 * and complete.lua's callers and the dashboard relied on before the table. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "queue/status.h"

static const char *const names[] = {
    "queued",          "scheduled",    "running",         "succeeded", "failed",    "timeout",
    "memory_exceeded", "cpu_exceeded", "output_exceeded", "crashed",   "cancelled", "dead",
};

/* The names with property prop, in table order, joined by spaces. */
static void with_prop(unsigned prop, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++)
        if (queue_status_has(i, prop))
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " " : "",
                                     queue_status_name(i));
}

static void expect_prop(unsigned prop, const char *want)
{
    char got[400];
    with_prop(prop, got, sizeof(got));
    assert_string_equal(got, want);
}

static void test_names_and_parse(void **state)
{
    (void)state;
    assert_int_equal(QUEUE_STATUS__COUNT, sizeof(names) / sizeof(names[0]));
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++) {
        assert_string_equal(queue_status_name(i), names[i]);
        assert_int_equal(queue_status_parse(names[i]), i);
        /* Names are Lua identifiers: the Lua table uses them as bare keys. */
        assert_int_equal(strspn(names[i], "abcdefghijklmnopqrstuvwxyz_"), strlen(names[i]));
    }
    assert_int_equal(queue_status_parse(NULL), -1);
    assert_int_equal(queue_status_parse(""), -1);
    assert_int_equal(queue_status_parse("all"), -1);
    assert_int_equal(queue_status_parse("cancelling"), -1);
    assert_int_equal(queue_status_parse("Queued"), -1);
    assert_int_equal(queue_status_parse("queued "), -1);
    assert_false(queue_status_has(-1, 0));
    assert_false(queue_status_has(QUEUE_STATUS__COUNT, 0));
}

static void test_properties(void **state)
{
    (void)state;
    expect_prop(QUEUE_TERMINAL, "succeeded failed timeout memory_exceeded cpu_exceeded "
                                "output_exceeded crashed cancelled dead");
    /* retry.lua: any job that ended without success. */
    expect_prop(QUEUE_RETRYABLE, "failed timeout memory_exceeded cpu_exceeded output_exceeded "
                                 "crashed cancelled dead");
    /* complete.lua: only these runs count against max_attempts. */
    expect_prop(QUEUE_AUTO_RETRY, "failed timeout crashed");
    /* cancel.lua: waiting jobs at once, running ones through their worker. */
    expect_prop(QUEUE_CANCELLABLE, "queued scheduled running");
    /* The dashboard's failed page: a cancelled job did not fail. */
    expect_prop(QUEUE_FAILURE,
                "failed timeout memory_exceeded cpu_exceeded output_exceeded crashed dead");
    expect_prop(QUEUE_TERMINAL | QUEUE_CANCELLABLE, "");
    /* Whatever retries by itself can also be retried by hand, and is terminal. */
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++)
        if (queue_status_has(i, QUEUE_AUTO_RETRY))
            assert_true(queue_status_has(i, QUEUE_RETRYABLE | QUEUE_TERMINAL | QUEUE_FAILURE));
    assert_true(queue_status_is_terminal("succeeded"));
    assert_true(queue_status_is_terminal("memory_exceeded"));
    assert_false(queue_status_is_terminal("queued"));
    assert_false(queue_status_is_terminal("running"));
    assert_false(queue_status_is_terminal("nonsense"));
    assert_false(queue_status_is_terminal(NULL));
}

static void test_json(void **state)
{
    (void)state;
    json_t *list = queue_status_json();
    assert_non_null(list);
    assert_int_equal(json_array_size(list), QUEUE_STATUS__COUNT);
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++) {
        json_t *s = json_array_get(list, (size_t)i);
        assert_string_equal(json_string_value(json_object_get(s, "name")), names[i]);
        assert_true(json_is_string(json_object_get(s, "meaning")));
        assert_true(json_string_length(json_object_get(s, "meaning")) > 0);
        assert_int_equal(json_object_size(s), 8);
        assert_int_equal(json_is_true(json_object_get(s, "terminal")),
                         queue_status_has(i, QUEUE_TERMINAL));
        assert_int_equal(json_is_true(json_object_get(s, "retryable")),
                         queue_status_has(i, QUEUE_RETRYABLE));
        assert_int_equal(json_is_true(json_object_get(s, "auto_retry")),
                         queue_status_has(i, QUEUE_AUTO_RETRY));
        assert_int_equal(json_is_true(json_object_get(s, "cancellable")),
                         queue_status_has(i, QUEUE_CANCELLABLE));
        assert_int_equal(json_is_true(json_object_get(s, "failure")),
                         queue_status_has(i, QUEUE_FAILURE));
        assert_int_equal(json_is_true(json_object_get(s, "indexed")),
                         queue_status_has(i, QUEUE_INDEXED));
    }
    json_decref(list);
}

static void test_lua(void **state)
{
    (void)state;
    char *lua = queue_status_lua();
    assert_non_null(lua);
    assert_non_null(strstr(lua, "local stratq_status = {\n"));
    assert_non_null(strstr(lua, "\n  queued = {terminal = false, retryable = false, auto_retry = "
                                "false, cancellable = true, failure = false, indexed = false},\n"));
    assert_non_null(strstr(lua, "\n  crashed = {terminal = true, retryable = true, auto_retry = "
                                "true, cancellable = false, failure = true, indexed = true},\n"));
    assert_non_null(strstr(lua, "\n  cancelled = {terminal = true, retryable = true, auto_retry = "
                                "false, cancellable = false, failure = false, indexed = true},\n"));
    /* The histogram bounds, from QUEUE_BUCKETS. */
    assert_non_null(strstr(lua, "\nlocal stratq_buckets = {0.005, 0.01, 0.025, "));
    assert_non_null(strstr(lua, ", 900, 3600}\n"));
    int rows = 0;
    for (const char *p = lua; (p = strstr(p, " = {terminal = ")); p++)
        rows++;
    assert_int_equal(rows, QUEUE_STATUS__COUNT);
    size_t n = strlen(lua);
    assert_true(n > 2 && !strcmp(lua + n - 2, "}\n"));
    free(lua);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_parse),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_lua),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

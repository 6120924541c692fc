/* Unit tests for src/common/sched.c: what POST /v1/schedules accepts, a
 * schedule's first fire, and the fire after a tick, on time or late (the
 * fires missed meanwhile come to one). Instants are Unix ms; 1767225600000
 * is 2026-01-01T00:00:00Z. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/sched.h"

#define JAN1 1767225600000LL
#define MIN 60000LL
#define HOUR 3600000LL

static void test_parse(void **state)
{
    (void)state;
    struct sched_timing t;
    char err[600];
    assert_int_equal(sched_timing_parse(NULL, NULL, "1h30m", &t, err, sizeof(err)), 0);
    assert_int_equal(t.every_ms, 90 * MIN);
    assert_string_equal(t.cron, "");
    assert_int_equal(sched_timing_parse("*/5 * * * *", NULL, NULL, &t, err, sizeof(err)), 0);
    assert_string_equal(t.cron, "*/5 * * * *");
    assert_string_equal(t.tz, "UTC");
    assert_int_equal(t.every_ms, 0);
    assert_int_equal(sched_timing_parse("@daily", "Europe/London", NULL, &t, err, sizeof(err)), 0);
    assert_string_equal(t.tz, "Europe/London");
    /* Each message names the field at fault. */
    static const struct {
        const char *cron, *tz, *every, *msg;
    } bad[] = {
        {NULL, NULL, NULL, "give either 'cron'"},
        {"* * * * *", NULL, "5m", "not both"},
        {"61 * * * *", NULL, NULL, "cron: minute: 61 is out of range 0-59"},
        {"0 0 30 2 *", NULL, NULL, "cron: "},
        {"* * * * *", "Mars/Olympus", NULL, "tz: unknown time zone Mars/Olympus"},
        {"* * * * *", "../etc/passwd", NULL, "tz: "},
        {NULL, NULL, "5 minutes", "every: "},
        {NULL, NULL, "0s", "every: "},
        {NULL, "UTC", "5m", "tz: a time zone applies to a cron expression"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            sched_timing_parse(bad[i].cron, bad[i].tz, bad[i].every, &t, err, sizeof(err)),
            -EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("case %zu: '%s' does not hold '%s'", i, err, bad[i].msg);
    }
}

static void test_first(void **state)
{
    (void)state;
    struct sched_timing t;
    char err[600];
    long long next;
    assert_int_equal(sched_timing_parse(NULL, NULL, "30s", &t, err, sizeof(err)), 0);
    assert_int_equal(sched_first(&t, JAN1 + 7, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 7 + 30000);
    /* "*\/1 * * * *": the next minute's start, strictly after now. */
    assert_int_equal(sched_timing_parse("*/1 * * * *", NULL, NULL, &t, err, sizeof(err)), 0);
    assert_int_equal(sched_first(&t, JAN1 + 7 * MIN + 30000, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 8 * MIN);
    assert_int_equal(sched_first(&t, JAN1 + 8 * MIN, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 9 * MIN);
    /* 09:00 in New York is 14:00Z in January (EST, UTC-5). */
    assert_int_equal(
        sched_timing_parse("0 9 * * *", "America/New_York", NULL, &t, err, sizeof(err)), 0);
    assert_int_equal(sched_first(&t, JAN1, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 14 * HOUR);
}

static void test_after(void **state)
{
    (void)state;
    struct sched_timing t;
    char err[600];
    long long next;
    assert_int_equal(sched_timing_parse(NULL, NULL, "1s", &t, err, sizeof(err)), 0);
    /* On time, a little late, exactly a period late: the next one. */
    assert_int_equal(sched_after(&t, JAN1, JAN1, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 1000);
    assert_int_equal(sched_after(&t, JAN1, JAN1 + 999, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 1000);
    assert_int_equal(sched_after(&t, JAN1, JAN1 + 1000, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 2000);
    /* Hours late: the fires missed came to this one; the phase is kept. */
    assert_int_equal(sched_after(&t, JAN1, JAN1 + 3 * HOUR + 250, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 3 * HOUR + 1000);
    /* A clock behind the due time counts from the due time. */
    assert_int_equal(sched_after(&t, JAN1, JAN1 - 500, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 1000);
    assert_int_equal(sched_timing_parse("0 * * * *", NULL, NULL, &t, err, sizeof(err)), 0);
    assert_int_equal(sched_after(&t, JAN1, JAN1, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + HOUR);
    assert_int_equal(sched_after(&t, JAN1, JAN1 + 5 * HOUR + 30000, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + 6 * HOUR);
    assert_int_equal(sched_after(&t, JAN1, JAN1 - MIN, &next, err, sizeof(err)), 0);
    assert_int_equal(next, JAN1 + HOUR);
    /* A timing with neither (a hash another producer wrote) is refused. */
    struct sched_timing none = {0};
    assert_int_equal(sched_after(&none, JAN1, JAN1, &next, err, sizeof(err)), -EINVAL);
    assert_int_equal(sched_first(&none, JAN1, &next, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_first),
        cmocka_unit_test(test_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

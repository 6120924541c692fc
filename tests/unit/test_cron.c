/* Unit tests for src/common/cron.c: parsing, next runs across DST changes,
 * intervals, and a deterministic random run under the sanitizers.
 *
 * Every expected instant comes from Python's zoneinfo (python3 3.11,
 * Debian's tzdata), not from this code:
 *   int(datetime(Y, M, D, h, m, tzinfo=ZoneInfo(zone), fold=f).timestamp())
 * with fold=1 for the second pass of a repeated local time ("(2nd)" in the
 * comments); `after` is the UTC time in the comment. The runs listed are
 * what the rules in cron.h give, written down as local times by hand: a
 * fixed time skipped by a gap is listed as the local time the gap ends at
 * (02:00 BST, 03:00 EDT), one repeated is listed once. While cron.c was
 * written, cron_next() was also compared with a brute-force model of those
 * rules in Python (minute by minute over zoneinfo's local times: a fixed
 * time runs at the first minute whose local time reaches it, a `*` time at
 * each minute whose local time is it) on 1,600 random expressions started
 * near transitions in 11 zones, 2026 to 2100: no difference. */
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

#include "common/cron.h"

#define MAX_RUNS 6

static const struct {
    const char *expr, *tz;
    int64_t after;          /* Unix seconds */
    int64_t want[MAX_RUNS]; /* the runs that follow, Unix seconds; 0 ends */
} schedules[] = {
    /* after 2026-01-01T00:07:30Z: 2026-01-01T00:15, 2026-01-01T00:30, 2026-01-01T00:45,
       2026-01-01T01:00 */
    {"*/15 * * * *", "UTC", 1767226050, {1767226500, 1767227400, 1767228300, 1767229200}},
    /* after 2026-01-09T09:00Z: 2026-01-12T09:00, 2026-01-13T09:00 */
    {"0 9 * * MON-FRI", "UTC", 1767949200, {1768208400, 1768294800}},
    /* after 2026-01-01T00:00Z: 2028-02-29T00:00, 2032-02-29T00:00 */
    {"0 0 29 2 *", "UTC", 1767225600, {1835395200, 1961625600}},
    /* after 2096-02-29T00:00Z: 2104-02-29T00:00 */
    {"0 0 29 2 *", "UTC", 3981312000, {4233686400}},
    /* after 2026-01-31T00:00Z: 2026-03-31T00:00, 2026-05-31T00:00, 2026-07-31T00:00,
       2026-08-31T00:00, 2026-10-31T00:00, 2026-12-31T00:00 */
    {"0 0 31 * *",
     "UTC",
     1769817600,
     {1774915200, 1780185600, 1785456000, 1788134400, 1793404800, 1798675200}},
    /* after 2027-01-29T00:00Z: 2027-03-29T00:00, 2027-04-29T00:00 */
    {"0 0 29 * *", "UTC", 1801180800, {1806278400, 1808956800}},
    /* after 2026-01-01T00:00Z: 2026-01-02T00:00, 2026-01-09T00:00, 2026-01-13T00:00,
       2026-01-16T00:00, 2026-01-23T00:00, 2026-01-30T00:00 */
    {"0 0 13 * FRI",
     "UTC",
     1767225600,
     {1767312000, 1767916800, 1768262400, 1768521600, 1769126400, 1769731200}},
    /* after 2026-01-01T00:00Z: 2026-01-04T00:00, 2026-02-01T00:00, 2026-03-01T00:00,
       2026-04-05T00:00 */
    {"0 0 1-7 * */7", "UTC", 1767225600, {1767484800, 1769904000, 1772323200, 1775347200}},
    /* after 2026-01-01T00:00Z: 2026-05-11T00:00, 2026-06-01T00:00, 2026-08-31T00:00,
       2026-09-21T00:00 */
    {"0 0 */10 * MON", "UTC", 1767225600, {1778457600, 1780272000, 1788134400, 1789948800}},
    /* after 2026-01-01T00:00Z: 2026-01-01T00:05, 2026-01-01T00:20, 2026-01-01T00:35,
       2026-01-01T00:50, 2026-01-01T01:05 */
    {"5/15 * * * *",
     "UTC",
     1767225600,
     {1767225900, 1767226800, 1767227700, 1767228600, 1767229500}},
    /* after 2026-01-01T00:00Z: 2026-01-02T12:00, 2026-01-03T12:00, 2026-01-04T12:00,
       2026-01-09T12:00 */
    {"0 12 * * 5-7", "UTC", 1767225600, {1767355200, 1767441600, 1767528000, 1767960000}},
    /* after 2026-01-01T00:00Z: 2026-07-01T00:00, 2027-01-01T00:00 */
    {"0 0 1 jan,Jul *", "UTC", 1767225600, {1782864000, 1798761600}},
    /* after 2026-01-30T00:00Z: 2026-01-31T00:00, 2026-07-01T00:00, 2026-07-02T00:00 */
    {"0 0 1 jan,Jul sun-sat", "UTC", 1769731200, {1769817600, 1782864000, 1782950400}},
    /* after 2026-12-31T23:59Z: 2027-12-31T23:59 */
    {"59 23 31 12 *", "UTC", 1798761540, {1830297540}},
    /* after 2026-01-01T00:00Z: 2026-01-01T01:00, 2026-01-01T02:00 */
    {"@hourly", "UTC", 1767225600, {1767229200, 1767232800}},
    /* after 2026-01-01T00:00Z: 2026-01-02T00:00, 2026-01-03T00:00 */
    {"@daily", "UTC", 1767225600, {1767312000, 1767398400}},
    /* after 2026-01-01T00:00Z: 2026-01-02T00:00 */
    {"@midnight", "UTC", 1767225600, {1767312000}},
    /* after 2026-01-01T00:00Z: 2026-01-04T00:00, 2026-01-11T00:00 */
    {"@weekly", "UTC", 1767225600, {1767484800, 1768089600}},
    /* after 2026-01-01T00:00Z: 2026-02-01T00:00, 2026-03-01T00:00 */
    {"@monthly", "UTC", 1767225600, {1769904000, 1772323200}},
    /* after 2026-01-01T00:00Z: 2027-01-01T00:00 */
    {"@yearly", "UTC", 1767225600, {1798761600}},
    /* after 2026-01-01T00:00Z: 2027-01-01T00:00 */
    {"@annually", "UTC", 1767225600, {1798761600}},
    /* after 2026-03-28T12:00Z: 2026-03-29T02:00, 2026-03-30T01:30 */
    {"30 1 * * *", "Europe/London", 1774699200, {1774746000, 1774830600}},
    /* after 2026-10-24T12:00Z: 2026-10-25T01:30, 2026-10-26T01:30 */
    {"30 1 * * *", "Europe/London", 1792843200, {1792888200, 1792978200}},
    /* after 2026-10-25T00:45Z: 2026-10-26T01:30 */
    {"30 1 * * *", "Europe/London", 1792889100, {1792978200}},
    /* after 2027-03-27T12:00Z: 2027-03-28T02:00, 2027-03-29T01:30 */
    {"30 1 * * *", "Europe/London", 1806148800, {1806195600, 1806280200}},
    /* after 2027-10-30T12:00Z: 2027-10-31T01:30, 2027-11-01T01:30 */
    {"30 1 * * *", "Europe/London", 1824897600, {1824942600, 1825032600}},
    /* after 2026-03-29T00:00Z: 2026-03-29T02:00, 2026-03-30T01:00, 2026-03-30T01:30 */
    {"0,30 1 * * *", "Europe/London", 1774742400, {1774746000, 1774828800, 1774830600}},
    /* after 2026-10-24T23:45Z: 2026-10-25T01:00, 2026-10-25T01:30, 2026-10-25T01:00 (2nd),
       2026-10-25T01:30 (2nd), 2026-10-25T02:00 */
    {"*/30 * * * *",
     "Europe/London",
     1792885500,
     {1792886400, 1792888200, 1792890000, 1792891800, 1792893600}},
    /* after 2026-03-29T00:15Z: 2026-03-29T00:30, 2026-03-29T02:00, 2026-03-29T02:30 */
    {"*/30 * * * *", "Europe/London", 1774743300, {1774744200, 1774746000, 1774747800}},
    /* after 2026-03-29T00:00Z: 2026-03-29T00:30, 2026-03-29T02:30 */
    {"30 * * * *", "Europe/London", 1774742400, {1774744200, 1774747800}},
    /* after 2026-03-07T12:00Z: 2026-03-08T03:00, 2026-03-09T02:30 */
    {"30 2 * * *", "America/New_York", 1772884800, {1772953200, 1773037800}},
    /* after 2026-10-31T12:00Z: 2026-11-01T02:30, 2026-11-02T02:30 */
    {"30 2 * * *", "America/New_York", 1793448000, {1793518200, 1793604600}},
    /* after 2027-03-13T12:00Z: 2027-03-14T03:00, 2027-03-15T02:30 */
    {"30 2 * * *", "America/New_York", 1804939200, {1805007600, 1805092200}},
    /* after 2027-11-06T12:00Z: 2027-11-07T02:30, 2027-11-08T02:30 */
    {"30 2 * * *", "America/New_York", 1825502400, {1825572600, 1825659000}},
    /* after 2026-10-31T12:00Z: 2026-11-01T01:30, 2026-11-02T01:30 */
    {"30 1 * * *", "America/New_York", 1793448000, {1793511000, 1793601000}},
    /* after 2026-11-01T03:30Z: 2026-11-01T00:00, 2026-11-01T01:00, 2026-11-01T01:00 (2nd),
       2026-11-01T02:00 */
    {"@hourly", "America/New_York", 1793503800, {1793505600, 1793509200, 1793512800, 1793516400}},
    /* after 2026-03-08T05:30Z: 2026-03-08T01:00, 2026-03-08T03:00, 2026-03-08T04:00 */
    {"0 * * * *", "America/New_York", 1772947800, {1772949600, 1772953200, 1772956800}},
    /* after 2090-03-11T12:00Z: 2090-03-12T03:00, 2090-03-13T02:30 */
    {"30 2 * * *", "America/New_York", 3792916800, {3792985200, 3793069800}},
    /* after 2090-11-04T12:00Z: 2090-11-05T01:30, 2090-11-06T01:30 */
    {"30 1 * * *", "America/New_York", 3813480000, {3813543000, 3813633000}},
    /* after 2026-05-31T12:00Z: 2026-06-01T09:00, 2026-06-02T09:00 */
    {"0 9 * * *", "Asia/Kolkata", 1780228800, {1780284600, 1780371000}},
    /* after 2026-06-01T00:00Z: 2026-12-31T23:30 */
    {"30 23 31 12 *", "Asia/Kolkata", 1780272000, {1798740000}},
    /* after 2026-10-03T00:00Z: 2026-10-04T02:30, 2026-10-05T02:15 */
    {"15 2 * * *", "Australia/Lord_Howe", 1790985600, {1791041400, 1791126900}},
    /* after 2026-04-04T00:00Z: 2026-04-05T01:45, 2026-04-06T01:45 */
    {"45 1 * * *", "Australia/Lord_Howe", 1775260800, {1775313900, 1775402100}},
};

static struct tz *load(const char *name)
{
    char err[256] = "";
    struct tz *z = NULL;
    if (tz_load(name, &z, err, sizeof(err)) < 0)
        fail_msg("tz_load(%s): %s", name, err);
    return z;
}

static void test_schedules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(schedules) / sizeof(schedules[0]); i++) {
        struct cron c;
        char err[256] = "";
        if (cron_parse(schedules[i].expr, &c, err, sizeof(err)) < 0)
            fail_msg("%s: %s", schedules[i].expr, err);
        struct tz *z = load(schedules[i].tz);
        int64_t t = schedules[i].after * 1000;
        for (int k = 0; k < MAX_RUNS && schedules[i].want[k]; k++) {
            int64_t next = -1;
            assert_int_equal(cron_next(&c, z, t, &next), 0);
            if (next != schedules[i].want[k] * 1000)
                fail_msg("\"%s\" in %s, run %d after %lld: got %lld, want %lld", schedules[i].expr,
                         schedules[i].tz, k + 1, (long long)t, (long long)next,
                         (long long)schedules[i].want[k] * 1000);
            t = next;
        }
        tz_free(z);
    }
}

/* Strictly after: a run time itself gives the next one, a millisecond
 * before it gives it; and the edges of the range taken. */
static void test_strictly_after_and_range(void **state)
{
    (void)state;
    struct cron c;
    char err[256];
    struct tz *z = load("UTC");
    int64_t next = 0;
    assert_int_equal(cron_parse("*/15 * * * *", &c, err, sizeof(err)), 0);
    assert_int_equal(cron_next(&c, z, INT64_C(1767226500000), &next), 0);
    assert_int_equal(next, INT64_C(1767227400000));
    assert_int_equal(cron_next(&c, z, INT64_C(1767226499999), &next), 0);
    assert_int_equal(next, INT64_C(1767226500000));
    assert_int_equal(cron_next(&c, z, 0, &next), 0);
    assert_int_equal(next, 900000);
    /* 9999-12-31T23:59:59.999Z: the next quarter hour is 10000-01-01
     * (python3: (date(10000, 1, 1) - date(1970, 1, 1)).days * 86400000 is
     * out of datetime's range; 2932897 days, counted by hand). */
    assert_int_equal(cron_next(&c, z, CRON_MAX_MS, &next), 0);
    assert_int_equal(next, INT64_C(2932897) * 86400000);
    assert_int_equal(cron_next(&c, z, CRON_MAX_MS + 1, &next), -ERANGE);
    assert_int_equal(cron_next(&c, z, -1, &next), -ERANGE);
    /* A schedule no day ever matches, made by hand (cron_parse refuses
     * "0 0 30 2 *"): the search gives up after CRON_SEARCH_DAYS. */
    assert_int_equal(cron_parse("0 0 30 1 *", &c, err, sizeof(err)), 0);
    c.months = 1 << 2;
    next = 42;
    assert_int_equal(cron_next(&c, z, INT64_C(1767225600000), &next), -ENOENT);
    assert_int_equal(next, 42);
    tz_free(z);

    assert_int_equal(cron_parse("0 9 * * *", &c, err, sizeof(err)), 0);
    assert_int_equal(
        cron_next_in(&c, "Asia/Kolkata", INT64_C(1780225200000), &next, err, sizeof(err)), 0);
    assert_int_equal(next, INT64_C(1780284600000)); /* 2026-06-01 09:00 IST */
    assert_int_equal(cron_next_in(&c, "Mars/Olympus", 0, &next, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "unknown time zone Mars/Olympus");
    assert_int_equal(cron_next_in(&c, "/etc/localtime", 0, &next, err, sizeof(err)), -EINVAL);
    assert_int_equal(cron_next_in(&c, "UTC", -5, &next, err, sizeof(err)), -ERANGE);
    assert_string_equal(err, "the start time is out of range 0-253402300799999 ms");
}

/* The day rule: OR when both day fields are restricted, AND when either
 * begins with `*`. 2026-01-02 is a Friday, 2026-01-13 a Tuesday, 2026-05-11
 * a Monday, 2026-01-05 a Monday, 2026-01-11 a Sunday. */
static void test_matches(void **state)
{
    (void)state;
    struct cron c;
    char err[256];
#define AT(y, m, d, h, mi) (tz_days_from_civil(y, m, d) * 86400 + (h)*3600 + (mi)*60)
    assert_int_equal(cron_parse("0 0 13 * FRI", &c, err, sizeof(err)), 0);
    assert_true(cron_matches(&c, AT(2026, 1, 2, 0, 0)));
    assert_true(cron_matches(&c, AT(2026, 1, 13, 0, 0)));
    assert_false(cron_matches(&c, AT(2026, 1, 14, 0, 0)));
    assert_false(cron_matches(&c, AT(2026, 1, 2, 0, 1)));
    assert_false(cron_matches(&c, AT(2026, 1, 2, 0, 0) + 30));
    assert_int_equal(cron_parse("0 0 */10 * MON", &c, err, sizeof(err)), 0);
    assert_true(cron_matches(&c, AT(2026, 5, 11, 0, 0)));
    assert_false(cron_matches(&c, AT(2026, 1, 5, 0, 0)));
    assert_false(cron_matches(&c, AT(2026, 1, 11, 0, 0)));
    assert_int_equal(cron_parse("30 1-3 * * *", &c, err, sizeof(err)), 0);
    assert_true(cron_matches(&c, AT(1969, 12, 31, 3, 30)));
    assert_false(cron_matches(&c, AT(1969, 12, 31, 4, 30)));
#undef AT
}

/* Equivalent spellings parse to the same schedule. */
static void test_equivalent(void **state)
{
    (void)state;
    static const char *const same[][2] = {
        {"0 0 * * 7", "0 0 * * 0"},
        {"0 0 * * SUN", "0 0 * * sun"},
        {"0 0 * * 5-7", "0 0 * * 0,5,6"},
        {"0 0 * jan-mar *", "0 0 * 1,2,3 *"},
        {"0 0 * JAN-DEC/3 *", "0 0 * 1,4,7,10 *"},
        {"5/15 * * * *", "5,20,35,50 * * * *"},
        {"10-50/20 * * * *", "10,30,50 * * * *"},
        {"*/20 * * * *", "0,20,40 * * * *"},
        {" \t0  0\t* * *  ", "@daily"},
        {"0 0 1 1 *", "@YEARLY"},
        {"0 0 1 1 *", "@annually"},
        {"0 0 * * 0", "@weekly"},
        {"0 * * * *", "@hourly"},
        {"0 0 * * *", "@midnight"},
        {"0 0 1 * *", "@monthly"},
        {"00 007 01 01 *", "0 7 1 1 *"},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        struct cron a, b;
        char err[256] = "";
        if (cron_parse(same[i][0], &a, err, sizeof(err)) < 0 ||
            cron_parse(same[i][1], &b, err, sizeof(err)) < 0)
            fail_msg("%s / %s: %s", same[i][0], same[i][1], err);
        /* The `*` flags differ for the spellings that differ in them. */
        a.flags = b.flags = 0;
        if (memcmp(&a, &b, sizeof(a)) != 0)
            fail_msg("\"%s\" and \"%s\" differ", same[i][0], same[i][1]);
    }
}

static void test_errors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"61 * * * *", "minute: 61 is out of range 0-59"},
        {"99999999999999999999 * * * *", "minute: 99999999999999999999 is out of range 0-59"},
        {"MON * * * *", "minute: MON is not a number"},
        {"1-2-3 * * * *", "minute: 2-3 is not a number"},
        {"1- * * * *", "minute: a value is missing in 1-"},
        {"-5 * * * *", "minute: a value is missing in -5"},
        {"50-10 * * * *", "minute: 50-10 starts after it ends"},
        {"*/0 * * * *", "minute: the step in */0 is out of range 1-59"},
        {"*/60 * * * *", "minute: the step in */60 is out of range 1-59"},
        {"*/ * * * *", "minute: the step in */ is not a number"},
        {"*/x * * * *", "minute: the step in */x is not a number"},
        {"1/2/3 * * * *", "minute: the step in 1/2/3 is not a number"},
        /* Found by fuzz_cron: the step's value was summed before its bytes
         * were checked to be digits (a signed overflow). */
        {"*/#0^^^^^^^^^^^^^^^^^60 * * * *",
         "minute: the step in */#0^^^^^^^^^^^^^^^^^60 is not a number"},
        {"1,,2 * * * *", "minute: an item of the list is empty"},
        {"1, * * * *", "minute: an item of the list is empty"},
        {"*-5 * * * *", "minute: * is not a number"},
        {"* 24 * * *", "hour: 24 is out of range 0-23"},
        {"* 1.5 * * *", "hour: 1.5 is not a number"},
        {"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
        {"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
        {"* * L * *", "day-of-month: L is not a number"},
        {"* * * 0 *", "month: 0 is out of range 1-12"},
        {"* * * 13 *", "month: 13 is out of range 1-12"},
        {"* * * FOO *", "month: FOO is not a month (1-12 or JAN-DEC)"},
        {"* * * JANUARY *", "month: JANUARY is not a month (1-12 or JAN-DEC)"},
        {"* * * DEC-JAN *", "month: DEC-JAN starts after it ends"},
        {"* * * * 8", "day-of-week: 8 is out of range 0-7"},
        {"* * * * FUN", "day-of-week: FUN is not a day of the week (0-7 or SUN-SAT)"},
        {"* * * * SAT-SUN", "day-of-week: SAT-SUN starts after it ends"},
        {"* * * * 1#2", "day-of-week: 1#2 is not a day of the week (0-7 or SUN-SAT)"},
        {"* * * * ?", "day-of-week: ? is not a day of the week (0-7 or SUN-SAT)"},
        {"0 0 30 2 *", "day-of-month: 30 never comes in month 2"},
        {"0 0 31 4,6,9,11 *", "day-of-month: 31 never comes in month 4,6,9,11"},
        {"0 0 30-31 FEB */2", "day-of-month: 30-31 never comes in month FEB"},
        {"", "the expression is empty"},
        {" \t ", "the expression is empty"},
        {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or a macro "
                    "such as @daily, got 4"},
        {"0 * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or a "
                        "macro such as @daily, got more than 5"},
        {"@reboot", "@reboot is not a macro (@yearly, @annually, @monthly, @weekly, @daily, "
                    "@midnight or @hourly)"},
        {"@daily 0", "expected 5 fields (minute hour day-of-month month day-of-week) or a macro "
                     "such as @daily, got 2"},
        {"0 0 * * *\n", "byte 0x0a at offset 9 is not printable ASCII"},
        {"0 0 * * \xc3\xa9", "byte 0xc3 at offset 8 is not printable ASCII"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cron c = {.minutes = 7};
        char err[256] = "";
        assert_int_equal(cron_parse(cases[i][0], &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, cases[i][1]);
        assert_int_equal(c.minutes, 7); /* untouched on failure */
    }
    /* The OR rule makes these run: Mondays of February, and the 30th. */
    struct cron c;
    char err[256];
    assert_int_equal(cron_parse("0 0 30 2 MON", &c, err, sizeof(err)), 0);
    assert_int_equal(cron_parse("0 0 30 2,3 *", &c, err, sizeof(err)), 0);
    /* Too long, and a message cut to the caller's buffer. */
    char long_expr[CRON_EXPR_MAX + 2];
    memset(long_expr, ' ', sizeof(long_expr));
    memcpy(long_expr + CRON_EXPR_MAX - 9, "0 0 * * *", 9);
    long_expr[CRON_EXPR_MAX] = '\0';
    assert_int_equal(cron_parse(long_expr, &c, err, sizeof(err)), 0);
    long_expr[CRON_EXPR_MAX] = ' ';
    long_expr[CRON_EXPR_MAX + 1] = '\0';
    assert_int_equal(cron_parse(long_expr, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "the expression is longer than 256 characters");
    char small[12];
    assert_int_equal(cron_parse("61 * * * *", &c, small, sizeof(small)), -EINVAL);
    assert_string_equal(small, "minute: 61 ");
}

static void test_interval(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"1s", 1000},       {"30s", 30000},   {"5m", 300000},        {"1h", 3600000},
        {"1h30m", 5400000}, {"1d", 86400000}, {"1d12h", 129600000},  {"2h45m10s", 9910000},
        {"90m", 5400000},   {"0h1s", 1000},   {"365d", 31536000000}, {"0001m", 60000},
    };
    static const char *const bad[] = {"",        "0s",   "30",  "1x",   "1m1h",
                                      "1h1h",    "366d", "-1s", "1.5h", " 1h",
                                      "1h ",     "h",    "1ms", "1H",   "99999999999999999999d",
                                      "8760h1s", "1d\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = 0;
        char err[256] = "";
        if (cron_interval_parse(good[i].s, &ms, err, sizeof(err)) < 0)
            fail_msg("%s: %s", good[i].s, err);
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 7;
        char err[256] = "";
        assert_int_equal(cron_interval_parse(bad[i], &ms, err, sizeof(err)), -EINVAL);
        assert_int_equal(ms, 7);
        assert_true(strncmp(err, "interval: ", 10) == 0);
    }
    int64_t ms;
    char err[256];
    assert_int_equal(cron_interval_parse("1m1h", &ms, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "interval: 1m1h is not a number followed by a unit, d, h, m or s, "
                             "largest first, each once (30s, 5m, 1h30m, 1d)");
    assert_int_equal(cron_interval_parse("0s", &ms, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "interval: 0s is out of range 1s-365d");
}

/* ---- A deterministic random run: expressions made from the grammar, and
 * mutated byte by byte, in zones with every kind of change; whatever
 * parses must give a run that matches and that nothing precedes. */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void random_field(char *buf, size_t size, int lo, int hi, const char *const *names)
{
    size_t n = 0;
    int items = 1 + (int)rnd(3);
    if (rnd(3) == 0) {
        snprintf(buf, size, rnd(2) ? "*" : "*/%d", 1 + (int)rnd((uint32_t)hi));
        return;
    }
    for (int i = 0; i < items && n < size; i++) {
        int a = lo + (int)rnd((uint32_t)(hi - lo + 1));
        int b = a + (int)rnd((uint32_t)(hi - a + 1));
        const char *sep = i ? "," : "";
        if (names && rnd(2) && a - lo < 7)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", sep, names[a - lo]);
        else if (rnd(2))
            n += (size_t)snprintf(buf + n, size - n, "%s%d", sep, a);
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%d-%d/%d", sep, a, b, 1 + (int)rnd(5));
    }
}

static void random_expr(char *buf, size_t size)
{
    static const char *const mon[] = {"JAN", "feb", "Mar", "APR", "MAY", "JUN", "JUL"};
    static const char *const dow[] = {"SUN", "mon", "Tue", "WED", "THU", "FRI", "SAT"};
    char f[5][48];
    random_field(f[0], sizeof(f[0]), 0, 59, NULL);
    random_field(f[1], sizeof(f[1]), 0, 23, NULL);
    random_field(f[2], sizeof(f[2]), 1, 31, NULL);
    random_field(f[3], sizeof(f[3]), 1, 12, mon);
    random_field(f[4], sizeof(f[4]), 0, 7, dow);
    for (int i = 2; i < 5; i++)
        if (rnd(3) == 0)
            snprintf(f[i], sizeof(f[i]), "*");
    snprintf(buf, size, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
}

static void mutate(char *buf, size_t size)
{
    static const char alphabet[] = "0123456789*/-, \t@JANMONSUNdailyx?L#\x01\xff";
    size_t n = strlen(buf);
    for (int k = 1 + (int)rnd(3); k > 0; k--) {
        size_t at = n ? rnd((uint32_t)n) : 0;
        char ch = alphabet[rnd(sizeof(alphabet) - 1)];
        int op = (int)rnd(3);
        if (op == 0 && n) {
            buf[at] = ch;
        } else if (op == 1 && n) {
            memmove(buf + at, buf + at + 1, n - at);
            n--;
        } else if (n + 1 < size) {
            memmove(buf + at + 1, buf + at, n - at + 1);
            buf[at] = ch;
            n++;
        }
    }
}

/* What must hold of a run `next` found after `after`. */
static void check_run(const char *expr, const struct cron *c, const struct tz *z, int64_t after,
                      int64_t next)
{
    int64_t t = next / 1000, local = t + tz_offset(z, t);
    bool fixed = !(c->flags & (CRON_MINUTE_STAR | CRON_HOUR_STAR));
    if (next <= after || next % 1000 != 0 ||
        next - after > (int64_t)(CRON_SEARCH_DAYS + 2) * 86400000)
        fail_msg("\"%s\" in %s after %lld: %lld", expr, tz_name(z), (long long)after,
                 (long long)next);
    if (cron_matches(c, local)) {
        /* A fixed time runs at its first occurrence only. */
        struct tz_wall w;
        tz_local_to_utc(z, local, &w);
        if (fixed && w.first != t)
            fail_msg("\"%s\" in %s: %lld is a second occurrence", expr, tz_name(z),
                     (long long)next);
    } else if (!fixed || tz_offset(z, t - 1) >= tz_offset(z, t)) {
        /* Else it must be the end of a gap, for a fixed time in it. */
        fail_msg("\"%s\" in %s after %lld: %lld does not match", expr, tz_name(z), (long long)after,
                 (long long)next);
    }
    /* Nothing runs between after and next (asked from within the range). */
    int64_t again = 0;
    if (next - 1 <= CRON_MAX_MS) {
        assert_int_equal(cron_next(c, z, next - 1, &again), 0);
        assert_int_equal(again, next);
    }
}

static void test_random(void **state)
{
    (void)state;
    static const char *const zones[] = {
        "UTC",           "Europe/London",       "America/New_York",  "Asia/Kolkata",
        "Europe/Dublin", "Australia/Lord_Howe", "Pacific/Chatham",   "Antarctica/Troll",
        "Pacific/Apia",  "America/St_Johns",    "Africa/Casablanca", "America/Sao_Paulo",
    };
    struct tz *z[sizeof(zones) / sizeof(zones[0])];
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        z[i] = load(zones[i]);
    int parsed = 0, runs = 0;
    for (int i = 0; i < 20000; i++) {
        char expr[CRON_EXPR_MAX + 1], err[256] = "";
        random_expr(expr, sizeof(expr));
        if (i % 2)
            mutate(expr, sizeof(expr));
        struct cron c;
        int r = cron_parse(expr, &c, err, sizeof(err));
        assert_true(r == 0 || (r == -EINVAL && err[0] != '\0'));
        if (r < 0)
            continue;
        parsed++;
        const struct tz *zone = z[rnd(sizeof(zones) / sizeof(zones[0]))];
        /* Mostly 1970-2100, now and then up to the last instant taken. */
        int64_t after = rnd(10) ? (int64_t)rnd(4102444800u) * 1000 + rnd(1000)
                                : CRON_MAX_MS - (int64_t)rnd(1u << 31) * 1000;
        int64_t next;
        r = cron_next(&c, zone, after, &next);
        assert_true(r == 0 || r == -ENOENT);
        if (r == 0) {
            check_run(expr, &c, zone, after, next);
            runs++;
        }
    }
    print_message("random: %d of 20000 expressions parsed, %d runs checked\n", parsed, runs);
    assert_true(parsed > 8000 && runs > 8000);
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        tz_free(z[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules), cmocka_unit_test(test_strictly_after_and_range),
        cmocka_unit_test(test_matches),   cmocka_unit_test(test_equivalent),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_interval),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/common/tz.c: zone files, footer rules, local times.
 *
 * The expected values come from Python's zoneinfo (python3 3.11, Debian's
 * tzdata), not from this code: an instant is
 *   int(datetime(Y, M, D, h, m, tzinfo=ZoneInfo(zone), fold=f).timestamp())
 * (fold=1 for the second of a repeated local time), and a footer rule's
 * transitions were found by bisecting the offsets that
 * ZoneInfo.from_file() gives for a file made of that footer alone (the
 * same file tzif_with_footer() makes), and found again with glibc
 * (time.localtime() under TZ set to the footer). The two agree but for two
 * rules, each wrong in one of them: see footer_cases. */
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
#include <unistd.h>

#include "common/tz.h"

static struct tz *load(const char *name)
{
    char err[256] = "";
    struct tz *z = NULL;
    int r = tz_load(name, &z, err, sizeof(err));
    if (r < 0)
        fail_msg("tz_load(%s): %d %s", name, r, err);
    return z;
}

static void test_valid_name(void **state)
{
    (void)state;
    const char *good[] = {"UTC",
                          "Europe/London",
                          "Etc/GMT+5",
                          "Etc/GMT-14",
                          "America/Argentina/Buenos_Aires",
                          "America/Port-au-Prince"};
    const char *bad[] = {"",
                         "/etc/passwd",
                         "../etc/passwd",
                         "Europe/../London",
                         "Europe//London",
                         "Europe/",
                         ".hidden",
                         "Europe/.London",
                         "a b",
                         "a\nb",
                         "Europe\\London",
                         "Europe/London\x01"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(tz_valid_name(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(tz_valid_name(bad[i]));
    char long_name[TZ_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name));
    long_name[TZ_NAME_MAX + 1] = '\0';
    assert_false(tz_valid_name(long_name));
    long_name[TZ_NAME_MAX] = '\0';
    assert_true(tz_valid_name(long_name));
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[256];
    struct tz *z = NULL;
    assert_int_equal(tz_load("Nowhere/City", &z, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "unknown time zone Nowhere/City");
    assert_int_equal(tz_load("America", &z, err, sizeof(err)), -ENOENT); /* a directory */
    assert_string_equal(err, "unknown time zone America");
    assert_int_equal(tz_load("../../etc/passwd", &z, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "not a valid time zone name: ../../etc/passwd");
    assert_int_equal(tz_load("bad\nname", &z, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "not a valid time zone name: (not printable)");
    /* Not a TZif file, though it is in the directory. */
    assert_int_equal(tz_load("zone.tab", &z, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "time zone zone.tab: not a TZif file");
    if (access(TZ_DIR "/right/Europe/London", R_OK) == 0) {
        assert_int_equal(tz_load("right/Europe/London", &z, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "leap seconds"));
    }
    assert_null(z);
    tz_free(NULL);
}

/* Offsets and changes in Europe/London: 2026-03-29 01:00 GMT becomes 02:00
 * BST at 1774746000 and 2026-10-25 02:00 BST becomes 01:00 GMT at
 * 1792890000; in 2090 (past the file's transitions, the footer's rule) at
 * 3794173200 (2090-03-26 01:00Z) and 3812922000 (2090-10-29 01:00Z);
 * 2090-01-01T00:00Z is 3786912000. */
static void test_offsets(void **state)
{
    (void)state;
    struct tz *z = load("Europe/London");
    assert_string_equal(tz_name(z), "Europe/London");
    assert_int_equal(tz_offset(z, 1774746000 - 1), 0);
    assert_int_equal(tz_offset(z, 1774746000), 3600);
    assert_int_equal(tz_offset(z, 1792890000 - 1), 3600);
    assert_int_equal(tz_offset(z, 1792890000), 0);
    assert_int_equal(tz_next_change(z, 1767225600), 1774746000);
    assert_int_equal(tz_next_change(z, 1774746000), 1792890000);
    assert_int_equal(tz_next_change(z, 3786912000), 3794173200);
    assert_int_equal(tz_next_change(z, 3794173200), 3812922000);
    assert_int_equal(tz_offset(z, 3794173200 - 1), 0);
    assert_int_equal(tz_offset(z, 3794173200), 3600);
    assert_int_equal(tz_min_offset_from(z, 1767225600), 0);
    tz_free(z);

    z = load("Asia/Kolkata");
    assert_int_equal(tz_offset(z, 1767225600), 19800);
    assert_int_equal(tz_next_change(z, 1767225600), INT64_MAX);
    assert_int_equal(tz_min_offset_from(z, 1767225600), 19800);
    tz_free(z);

    z = load("UTC");
    assert_int_equal(tz_offset(z, 1767225600), 0);
    assert_int_equal(tz_next_change(z, 0), INT64_MAX);
    tz_free(z);
}

/* Local 2026-03-29 01:30 in London is skipped (the gap ends at
 * 1774746000); 2026-10-25 01:30 comes twice, BST 1792888200 and GMT
 * 1792891800; 2026-07-01 12:00 is 1782903600 (BST). */
static void test_local_to_utc(void **state)
{
    (void)state;
    struct tz *z = load("Europe/London");
    struct tz_wall w;
    tz_local_to_utc(z, tz_days_from_civil(2026, 3, 29) * 86400 + 5400, &w);
    assert_int_equal(w.n, 0);
    assert_int_equal(w.first, 1774746000);
    tz_local_to_utc(z, tz_days_from_civil(2026, 10, 25) * 86400 + 5400, &w);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.t[0], 1792888200);
    assert_int_equal(w.t[1], 1792891800);
    assert_int_equal(w.first, 1792888200);
    tz_local_to_utc(z, tz_days_from_civil(2026, 7, 1) * 86400 + 43200, &w);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.t[0], 1782903600);
    assert_int_equal(w.first, 1782903600);
    tz_free(z);
}

/* A version 2 TZif file with no transitions, one type (UTC) and footer. */
static size_t tzif_with_footer(const char *footer, unsigned char *buf, size_t size)
{
    static const unsigned char counts[24] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4};
    static const unsigned char data[10] = {0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0};
    size_t n = 0;
    for (int part = 0; part < 2; part++) {
        memcpy(buf + n, "TZif2", 5);
        memset(buf + n + 5, 0, 15);
        memcpy(buf + n + 20, counts, sizeof(counts));
        memcpy(buf + n + 44, data, sizeof(data));
        n += 44 + sizeof(data);
    }
    n += (size_t)snprintf((char *)buf + n, size - n, "\n%s\n", footer);
    return n;
}

static struct tz *zone_of_footer(const char *footer)
{
    unsigned char buf[512];
    size_t n = tzif_with_footer(footer, buf, sizeof(buf));
    char err[256] = "";
    struct tz *z = NULL;
    if (tz_from_tzif("Test/Footer", buf, n, &z, err, sizeof(err)) < 0)
        fail_msg("%s: %s", footer, err);
    return z;
}

struct change {
    int64_t at;
    int32_t before, after;
};

/* Each footer's offset at 2026-01-01T00:00Z and its changes in 2026-2028,
 * 2096 and 2100 (zoneinfo, as said at the top): every rule form (Mm.w.d,
 * Jn, n), a southern one, a 30-minute one, times past 24 h and negative,
 * daylight time all year, none at all. */
static const struct {
    const char *footer;
    int32_t off_2026;
    int n;
    struct change ch[10];
} footer_cases[] = {
    {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
     39600,
     10,
     {{1775314800, 39600, 37800},
      {1791041400, 37800, 39600},
      {1806764400, 39600, 37800},
      {1822491000, 37800, 39600},
      {1838214000, 39600, 37800},
      {1853940600, 37800, 39600},
      {3984044400, 39600, 37800},
      {4000375800, 37800, 39600},
      {4110447600, 39600, 37800},
      {4126174200, 37800, 39600}}},
    /* Daylight time all year (RFC 8536 3.3.1: from January 1 00:00 to
     * December 31 24:00 plus the daylight shift); glibc gives 5 hours of
     * standard time every January 1, Python's zoneinfo none. */
    {"EST5EDT,0/0,J365/25", -14400, 0, {{0, 0, 0}}},
    {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
     -7200,
     10,
     {{1774746000, -7200, -3600},
      {1792890000, -3600, -7200},
      {1806195600, -7200, -3600},
      {1824944400, -3600, -7200},
      {1837645200, -7200, -3600},
      {1856394000, -3600, -7200},
      {3983475600, -7200, -3600},
      {4002224400, -3600, -7200},
      {4109878800, -7200, -3600},
      {4128627600, -3600, -7200}}},
    /* Python's zoneinfo puts a zero-based day n one day early (it adds n to
     * the day before January 1); these are glibc's (time.localtime under
     * TZ="AAA-1BBB,59/2,300/2"): day 59 is March 1, or February 29 in a
     * leap year, as POSIX says. */
    {"AAA-1BBB,59/2,300/2",
     3600,
     10,
     {{1772326800, 3600, 7200},
      {1793145600, 7200, 3600},
      {1803862800, 3600, 7200},
      {1824681600, 7200, 3600},
      {1835398800, 3600, 7200},
      {1856217600, 7200, 3600},
      {3981315600, 3600, 7200},
      {4002134400, 7200, 3600},
      {4107546000, 3600, 7200},
      {4128364800, 7200, 3600}}},
    {"CCC3DDD,J60/0,J300/0",
     -10800,
     10,
     {{1772334000, -10800, -7200},
      {1793066400, -7200, -10800},
      {1803870000, -10800, -7200},
      {1824602400, -7200, -10800},
      {1835492400, -10800, -7200},
      {1856224800, -7200, -10800},
      {3981409200, -10800, -7200},
      {4002141600, -7200, -10800},
      {4107553200, -10800, -7200},
      {4128285600, -7200, -10800}}},
    {"<+0530>-5:30", 19800, 0, {{0, 0, 0}}},
    {"EEE5FFF4:30,M3.2.0/2:30:15,M11.1.0/167",
     -18000,
     10,
     {{1772955015, -18000, -16200},
      {1794108600, -16200, -18000},
      {1805009415, -18000, -16200},
      {1826163000, -16200, -18000},
      {1836459015, -18000, -16200},
      {1857612600, -16200, -18000},
      {3982289415, -18000, -16200},
      {4003443000, -16200, -18000},
      {4108692615, -18000, -16200},
      {4129846200, -16200, -18000}}},
    {"GGG-10HHH-11,M10.5.0/26,M3.5.0/-26",
     39600,
     10,
     {{1774609200, 39600, 36000},
      {1792944000, 36000, 39600},
      {1806058800, 39600, 36000},
      {1824998400, 36000, 39600},
      {1837508400, 39600, 36000},
      {1856448000, 36000, 39600},
      {3983338800, 39600, 36000},
      {4002278400, 36000, 39600},
      {4109742000, 39600, 36000},
      {4128681600, 36000, 39600}}},
};

static void test_footer_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(footer_cases) / sizeof(footer_cases[0]); i++) {
        struct tz *z = zone_of_footer(footer_cases[i].footer);
        assert_int_equal(tz_offset(z, 1767225600), footer_cases[i].off_2026);
        if (footer_cases[i].n == 0)
            assert_int_equal(tz_next_change(z, 1767225600), INT64_MAX);
        for (int k = 0; k < footer_cases[i].n; k++) {
            const struct change *c = &footer_cases[i].ch[k];
            assert_int_equal(tz_offset(z, c->at - 1), c->before);
            assert_int_equal(tz_offset(z, c->at), c->after);
            assert_int_equal(tz_next_change(z, c->at - 1), c->at);
            if (k > 0 && footer_cases[i].ch[k - 1].at < 2e9 && c->at < 2e9)
                assert_int_equal(tz_next_change(z, footer_cases[i].ch[k - 1].at), c->at);
        }
        tz_free(z);
    }
}

static void test_bad_tzif(void **state)
{
    (void)state;
    const char *bad_footers[] = {"EST5EDT",
                                 "EST",
                                 "E5",
                                 "EST5EDT,M3.2.0",
                                 "EST5EDT,M13.2.0,M11.1.0",
                                 "EST5EDT,M3.6.0,M11.1.0",
                                 "EST5EDT,J0,J300",
                                 "EST5EDT,366,300",
                                 "EST5EDT,M3.2.0/168,M11.1.0",
                                 "EST25",
                                 "<AB>5",
                                 "EST5:60"};
    unsigned char buf[512];
    char err[256];
    struct tz *z = NULL;
    for (size_t i = 0; i < sizeof(bad_footers) / sizeof(bad_footers[0]); i++) {
        size_t n = tzif_with_footer(bad_footers[i], buf, sizeof(buf));
        assert_int_equal(tz_from_tzif("Test/Bad", buf, n, &z, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "time zone Test/Bad: bad TZ string in its footer");
    }
    assert_int_equal(tz_from_tzif("Test/Bad", "TZif", 4, &z, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "time zone Test/Bad: not a TZif file");
    assert_int_equal(tz_from_tzif("../x", buf, 0, &z, err, sizeof(err)), -EINVAL);

    /* Every shorter prefix of a real file is refused, and every byte of it
     * flipped is read without harm. */
    FILE *f = fopen(TZ_DIR "/America/New_York", "rb");
    assert_non_null(f);
    static unsigned char file[8192];
    size_t len = fread(file, 1, sizeof(file), f);
    fclose(f);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(tz_from_tzif("Test/Cut", file, n, &z, err, sizeof(err)), -EINVAL);
    assert_int_equal(tz_from_tzif("Test/Whole", file, len, &z, err, sizeof(err)), 0);
    tz_free(z);
    for (size_t i = 0; i < len; i++) {
        file[i] ^= 0xa5;
        z = NULL;
        if (tz_from_tzif("Test/Flip", file, len, &z, err, sizeof(err)) == 0) {
            struct tz_wall w;
            tz_local_to_utc(z, 1767225600, &w);
            assert_true(w.first != INT64_MAX);
            tz_free(z);
        }
        file[i] ^= 0xa5;
    }
    assert_null(z);
}

static void test_calendar(void **state)
{
    (void)state;
    assert_int_equal(tz_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(tz_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(tz_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(tz_weekday(0), 4);  /* Thursday */
    assert_int_equal(tz_weekday(-1), 3); /* Wednesday */
    assert_int_equal(tz_weekday(tz_days_from_civil(2026, 3, 29)), 0);
    assert_true(tz_leap_year(2000) && tz_leap_year(2028));
    assert_false(tz_leap_year(1900) || tz_leap_year(2100) || tz_leap_year(2027));
    assert_int_equal(tz_days_in_month(2028, 2), 29);
    assert_int_equal(tz_days_in_month(2100, 2), 28);
    assert_int_equal(tz_floor_div(-1, 60), -1);
    assert_int_equal(tz_floor_div(-60, 60), -1);
    assert_int_equal(tz_floor_div(59, 60), 0);
    /* From year -800 to 10500, day by day: each date follows the last. */
    int64_t y0, y;
    int m0, d0, m, d;
    int64_t first = tz_days_from_civil(-800, 1, 1), last = tz_days_from_civil(10500, 1, 1);
    tz_civil_from_days(first, &y0, &m0, &d0);
    for (int64_t day = first + 1; day <= last; day++) {
        tz_civil_from_days(day, &y, &m, &d);
        bool next_day = y == y0 && m == m0 && d == d0 + 1;
        bool next_month = y == y0 && m == m0 + 1 && d == 1 && d0 == tz_days_in_month(y0, m0);
        bool next_year = y == y0 + 1 && m == 1 && d == 1 && m0 == 12 && d0 == 31;
        if (!(next_day || next_month || next_year))
            fail_msg("day %lld", (long long)day);
        if (d == 1)
            assert_int_equal(tz_days_from_civil(y, m, d), day);
        y0 = y, m0 = m, d0 = d;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_name),   cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_offsets),      cmocka_unit_test(test_local_to_utc),
        cmocka_unit_test(test_footer_rules), cmocka_unit_test(test_bad_tzif),
        cmocka_unit_test(test_calendar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Schedules of recurring jobs: a cron expression read in an IANA time zone,
 * or a fixed interval. Debian 12 ships no C library for cron expressions
 * (only Go, Perl and Ruby ones), hence this parser.
 *
 * Expressions are Vixie cron's five fields, "minute hour day-of-month month
 * day-of-week", each a comma-separated list of items: `*`, a number, a
 * range `a-b`, and any of these with a step, `* /n` (without the space),
 * `a-b/n` or `a/n` (a to the field's end, by n). Months and weekdays may be
 * named by their first three letters in any case (JAN-DEC, SUN-SAT);
 * weekday 0 and 7 are both Sunday. A macro may stand for the whole:
 * @yearly and @annually ("0 0 1 1 *"), @monthly ("0 0 1 * *"), @weekly
 * ("0 0 * * 0"), @daily and @midnight ("0 0 * * *"), @hourly ("0 * * * *").
 * There are no seconds, no `?`, `L`, `W` or `#`, and no @reboot.
 *
 * Days, as in Vixie cron: when the day-of-month and day-of-week fields are
 * both restricted, a day matches if EITHER matches ("0 0 13 * FRI" is every
 * 13th and every Friday); when either begins with `*` (so `* /2` counts as
 * unrestricted here, as in Vixie cron and cronie, where robfig/cron takes
 * it as restricted), a day must match both. An expression whose day never
 * comes ("0 0 30 2 *", "0 0 31 4,6 *") is refused when parsed.
 *
 * Daylight saving time, as Vixie cron's cron(8) says and cronie does:
 *  - A job at a fixed time (neither its minute nor its hour field begins
 *    with `*`) runs at the first instant whose local time is its time or
 *    later. So a time skipped when clocks go forward runs when the gap ends:
 *    "30 2 * * *" in America/New_York on 2026-03-08 (02:00 EST becomes
 *    03:00 EDT) runs at 03:00 EDT; and a time repeated when clocks go back
 *    runs once, at its first occurrence: "30 1 * * *" in Europe/London on
 *    2026-10-25 runs at 01:30 BST, not again at 01:30 GMT. Several times
 *    of one gap run once, together, at its end.
 *  - A job with `*` at the start of its minute or hour field (@hourly,
 *    "* /15 * * * *", "30 * * * *") follows the wall clock: it runs at every
 *    instant whose local time matches, so not in a gap (nothing is made
 *    up) and in both passes of a repeated hour (it keeps its real-time
 *    rhythm: @hourly stays one hour apart across both changes).
 *
 * Intervals are "30s", "5m", "1h", "1d", or several units largest first
 * ("1h30m", "1d12h"): from CRON_INTERVAL_MIN_MS to CRON_INTERVAL_MAX_MS. */
#ifndef STRATQ_CRON_H
#define STRATQ_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"

/* The longest expression taken, in bytes. */
#define CRON_EXPR_MAX 256
/* The latest instant cron_next() starts from: 9999-12-31T23:59:59.999Z. */
#define CRON_MAX_MS INT64_C(253402300799999)
/* How far cron_next() looks: the Gregorian calendar's cycle of 400 years
 * (146097 days, whole weeks) and a year, so every date that ever comes is
 * found. */
#define CRON_SEARCH_DAYS (146097 + 366)
#define CRON_INTERVAL_MIN_MS INT64_C(1000)
#define CRON_INTERVAL_MAX_MS (INT64_C(365) * 86400 * 1000)

/* The field began with `*` (the day rule and the DST rule above). */
enum {
    CRON_MINUTE_STAR = 1 << 0,
    CRON_HOUR_STAR = 1 << 1,
    CRON_DOM_STAR = 1 << 2,
    CRON_DOW_STAR = 1 << 3,
};

/* A parsed expression: bit i of each mask is value i of its field. */
struct cron {
    uint64_t minutes; /* 0-59 */
    uint32_t hours;   /* 0-23 */
    uint32_t days;    /* 1-31 */
    uint16_t months;  /* 1-12 */
    uint8_t weekdays; /* 0-6, Sunday 0 (a 7 is stored as 0) */
    uint8_t flags;    /* CRON_*_STAR */
};

/* Parses expr. Returns 0 and fills *ret, or -EINVAL with a message in err
 * that names the field and quotes the text at fault ("minute: 61 is out of
 * range 0-59"). */
int cron_parse(const char *expr, struct cron *ret, char *err, size_t errlen);

/* Whether a local time (tz.h: seconds, as if the wall clock were UTC)
 * falls on a minute the fields select, the day by the rule above. */
bool cron_matches(const struct cron *c, int64_t local);

/* The first instant strictly after after_ms (Unix ms, 0..CRON_MAX_MS) at
 * which the schedule runs in zone z, by the rules above; a whole second,
 * in ms. Returns 0 and sets *ret_next_ms, -ERANGE for an after_ms out of
 * range, or -ENOENT when nothing runs within CRON_SEARCH_DAYS (never for
 * what cron_parse() accepts, unless the zone skips every time that
 * matches). Pure: any number of threads may call it on one zone. */
int cron_next(const struct cron *c, const struct tz *z, int64_t after_ms, int64_t *ret_next_ms);

/* cron_next() in the zone named tzname, loaded for the call (tz_load()).
 * Also returns tz_load()'s errors, with its message in err. */
int cron_next_in(const struct cron *c, const char *tzname, int64_t after_ms, int64_t *ret_next_ms,
                 char *err, size_t errlen);

/* Parses an interval ("90s", "1h30m") into *ret_ms. Returns 0, or -EINVAL
 * with a message in err. */
int cron_interval_parse(const char *s, int64_t *ret_ms, char *err, size_t errlen);

#endif

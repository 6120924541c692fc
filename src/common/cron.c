#define _GNU_SOURCE
#include "cron.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- Fields. */

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

/* One field: its values lo..hi, and the names of lo, lo+1, ... if it has
 * names. what describes a value in a message. */
struct field {
    const char *name;
    int lo, hi;
    const char *const *names;
    int nnames;
    const char *what;
    uint8_t star_flag;
};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const struct field fields[F_COUNT] = {
    {"minute", 0, 59, NULL, 0, "a number", CRON_MINUTE_STAR},
    {"hour", 0, 23, NULL, 0, "a number", CRON_HOUR_STAR},
    {"day-of-month", 1, 31, NULL, 0, "a number", CRON_DOM_STAR},
    {"month", 1, 12, month_names, 12, "a month (1-12 or JAN-DEC)", 0},
    {"day-of-week", 0, 7, weekday_names, 7, "a day of the week (0-7 or SUN-SAT)", CRON_DOW_STAR},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* A value s[0..n) of field f, within item: a number or a name. */
static int parse_value(const struct field *f, const char *item, const char *s, size_t n, int *ret,
                       char *err, size_t errlen)
{
    if (all_digits(s, n)) {
        long v = 0;
        for (size_t i = 0; i < n && v <= f->hi; i++)
            v = v * 10 + (s[i] - '0');
        if (v < f->lo || v > f->hi) {
            snprintf(err, errlen, "%s: %.*s is out of range %d-%d", f->name, (int)n, s, f->lo,
                     f->hi);
            return -EINVAL;
        }
        *ret = (int)v;
        return 0;
    }
    for (int i = 0; i < f->nnames && n == 3; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0) {
            *ret = f->lo + i;
            return 0;
        }
    }
    if (n == 0)
        snprintf(err, errlen, "%s: a value is missing in %s", f->name, item);
    else
        snprintf(err, errlen, "%s: %.*s is not %s", f->name, (int)n, s, f->what);
    return -EINVAL;
}

/* The step after the '/' of item: 1 up to the field's largest value. */
static int parse_step(const struct field *f, const char *item, const char *s, int *ret, char *err,
                      size_t errlen)
{
    size_t n = strlen(s);
    long v = 0;
    if (!all_digits(s, n)) {
        snprintf(err, errlen, "%s: the step in %s is not a number", f->name, item);
        return -EINVAL;
    }
    for (size_t i = 0; i < n && v <= f->hi; i++)
        v = v * 10 + (s[i] - '0');
    if (v < 1 || v > f->hi) {
        snprintf(err, errlen, "%s: the step in %s is out of range 1-%d", f->name, item, f->hi);
        return -EINVAL;
    }
    *ret = (int)v;
    return 0;
}

/* One item of a list: `*`, a, a-b, each with an optional /step. */
static int parse_item(const struct field *f, const char *item, uint64_t *mask, char *err,
                      size_t errlen)
{
    const char *slash = strchr(item, '/');
    size_t base = slash ? (size_t)(slash - item) : strlen(item);
    int lo = f->lo, hi = f->hi, step = 1, r;
    if (slash && (r = parse_step(f, item, slash + 1, &step, err, errlen)) < 0)
        return r;
    if (!(base == 1 && item[0] == '*')) {
        const char *dash = memchr(item, '-', base);
        size_t n1 = dash ? (size_t)(dash - item) : base;
        if ((r = parse_value(f, item, item, n1, &lo, err, errlen)) < 0)
            return r;
        if (dash && (r = parse_value(f, item, dash + 1, base - n1 - 1, &hi, err, errlen)) < 0)
            return r;
        if (!dash && !slash)
            hi = lo; /* a lone value; "a/n" runs on to the field's end */
        if (lo > hi) {
            snprintf(err, errlen, "%s: %.*s starts after it ends", f->name, (int)base, item);
            return -EINVAL;
        }
    }
    for (int v = lo; v <= hi; v += step)
        *mask |= UINT64_C(1) << v;
    return 0;
}

/* A whole field: items separated by commas, none empty. */
static int parse_field(const struct field *f, char *text, uint64_t *ret, char *err, size_t errlen)
{
    uint64_t mask = 0;
    char *item = text;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (*item == '\0') {
            snprintf(err, errlen, "%s: an item of the list is empty", f->name);
            return -EINVAL;
        }
        int r = parse_item(f, item, &mask, err, errlen);
        if (comma)
            *comma = ',';
        if (r < 0)
            return r;
        if (!comma)
            break;
        item = comma + 1;
    }
    *ret = mask;
    return 0;
}

/* ---- Expressions. */

/* Checks the bytes and length of expr and splits a copy of it into at most
 * F_COUNT + 1 fields (one more, to tell that there are too many). */
static int split_fields(const char *expr, char *buf, char **tok, int *ret_n, char *err,
                        size_t errlen)
{
    size_t len = strnlen(expr, CRON_EXPR_MAX + 1);
    if (len > CRON_EXPR_MAX) {
        snprintf(err, errlen, "the expression is longer than %d characters", CRON_EXPR_MAX);
        return -EINVAL;
    }
    int n = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = (unsigned char)expr[i];
        if (ch == ' ' || ch == '\t' || ch == '\0') {
            buf[i] = '\0';
            continue;
        }
        if (ch < 0x21 || ch > 0x7e) {
            snprintf(err, errlen, "byte 0x%02x at offset %zu is not printable ASCII", ch, i);
            return -EINVAL;
        }
        buf[i] = (char)ch;
        if ((i == 0 || buf[i - 1] == '\0') && n <= F_COUNT)
            tok[n++] = buf + i;
    }
    *ret_n = n;
    return 0;
}

static const char *macro_expr(const char *name)
{
    for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
        if (strcasecmp(name, macros[i].name) == 0)
            return macros[i].expr;
    return NULL;
}

/* With the day fields joined by AND, some selected month must have a
 * selected day (February has 29); the weekday then comes round, since
 * each date falls on every weekday within the 400-year cycle. */
static int check_some_day(const struct cron *c, char **tok, char *err, size_t errlen)
{
    static const int longest[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (c->flags & CRON_DOM_STAR || !(c->flags & CRON_DOW_STAR))
        return 0;
    for (int m = 1; m <= 12; m++)
        if (c->months >> m & 1 && c->days & ((UINT64_C(1) << (longest[m] + 1)) - 1))
            return 0;
    snprintf(err, errlen, "day-of-month: %s never comes in month %s", tok[F_DOM], tok[F_MONTH]);
    return -EINVAL;
}

static int parse_fields(char **tok, struct cron *ret, char *err, size_t errlen)
{
    struct cron c = {0};
    uint64_t mask[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        int r = parse_field(&fields[i], tok[i], &mask[i], err, errlen);
        if (r < 0)
            return r;
        if (tok[i][0] == '*')
            c.flags |= fields[i].star_flag;
    }
    c.minutes = mask[F_MINUTE];
    c.hours = (uint32_t)mask[F_HOUR];
    c.days = (uint32_t)mask[F_DOM];
    c.months = (uint16_t)mask[F_MONTH];
    c.weekdays = (uint8_t)((mask[F_DOW] | mask[F_DOW] >> 7) & 0x7f); /* 7 is Sunday */
    int r = check_some_day(&c, tok, err, errlen);
    if (r < 0)
        return r;
    *ret = c;
    return 0;
}

int cron_parse(const char *expr, struct cron *ret, char *err, size_t errlen)
{
    char buf[CRON_EXPR_MAX + 1];
    char *tok[F_COUNT + 1];
    int n, r = split_fields(expr, buf, tok, &n, err, errlen);
    if (r < 0)
        return r;
    if (n == 1 && tok[0][0] == '@') {
        const char *m = macro_expr(tok[0]);
        if (!m) {
            snprintf(err, errlen,
                     "%s is not a macro (@yearly, @annually, @monthly, @weekly, @daily, "
                     "@midnight or @hourly)",
                     tok[0]);
            return -EINVAL;
        }
        return cron_parse(m, ret, err, errlen);
    }
    if (n == 0) {
        snprintf(err, errlen, "the expression is empty");
        return -EINVAL;
    }
    if (n != F_COUNT) {
        snprintf(err, errlen,
                 "expected 5 fields (minute hour day-of-month month day-of-week) or a macro "
                 "such as @daily, got %s%d",
                 n > F_COUNT ? "more than " : "", n > F_COUNT ? F_COUNT : n);
        return -EINVAL;
    }
    return parse_fields(tok, ret, err, errlen);
}

/* ---- The next run. */

static bool day_matches(const struct cron *c, int64_t day)
{
    int64_t y;
    int m, d;
    tz_civil_from_days(day, &y, &m, &d);
    if (!(c->months >> m & 1))
        return false;
    bool dom = c->days >> d & 1, dow = c->weekdays >> tz_weekday(day) & 1;
    if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
        return dom && dow;
    return dom || dow;
}

bool cron_matches(const struct cron *c, int64_t local)
{
    int64_t day = tz_floor_div(local, 86400);
    int sec = (int)(local - day * 86400);
    return sec % 60 == 0 && c->minutes >> (sec / 60 % 60) & 1 && c->hours >> (sec / 3600) & 1 &&
           day_matches(c, day);
}

/* Looks through the local times of one matching day from minute `from` of
 * it, keeping in *best the earliest run after `after` (seconds). Returns
 * true when no later local time can run earlier than *best: the instants
 * at or past a local time only grow with it. */
static bool scan_day(const struct cron *c, const struct tz *z, int64_t day, int from, int64_t after,
                     int64_t *best)
{
    bool fixed = !(c->flags & (CRON_MINUTE_STAR | CRON_HOUR_STAR));
    for (int mod = from; mod < 24 * 60; mod++) {
        int h = mod / 60, mi = mod % 60;
        if (!(c->hours >> h & 1)) {
            mod = h * 60 + 59;
            continue;
        }
        if (!(c->minutes >> mi & 1))
            continue;
        struct tz_wall w;
        tz_local_to_utc(z, day * 86400 + mod * 60, &w);
        if (w.first >= *best)
            return true;
        if (fixed && w.first > after)
            *best = w.first;
        for (int i = 0; !fixed && i < w.n; i++)
            if (w.t[i] > after && w.t[i] < *best)
                *best = w.t[i];
    }
    return false;
}

int cron_next(const struct cron *c, const struct tz *z, int64_t after_ms, int64_t *ret_next_ms)
{
    if (after_ms < 0 || after_ms > CRON_MAX_MS)
        return -ERANGE;
    /* A run t is a whole second: t * 1000 > after_ms when t > after. */
    int64_t after = after_ms / 1000, best = INT64_MAX;
    /* No instant after `after` has a local time before this. */
    int64_t start = tz_floor_div(after + tz_min_offset_from(z, after), 60) * 60;
    int64_t day = tz_floor_div(start, 86400);
    int from = (int)(start - day * 86400) / 60;
    for (int64_t k = 0; k < CRON_SEARCH_DAYS; k++, day++, from = 0) {
        if (best != INT64_MAX && day * 86400 - TZ_OFFSET_LIMIT > best)
            break;
        if (day_matches(c, day) && scan_day(c, z, day, from, after, &best))
            break;
    }
    if (best == INT64_MAX)
        return -ENOENT;
    *ret_next_ms = best * 1000;
    return 0;
}

int cron_next_in(const struct cron *c, const char *tzname, int64_t after_ms, int64_t *ret_next_ms,
                 char *err, size_t errlen)
{
    struct tz *z = NULL;
    int r = tz_load(tzname, &z, err, errlen);
    if (r < 0)
        return r;
    r = cron_next(c, z, after_ms, ret_next_ms);
    if (r == -ERANGE)
        snprintf(err, errlen, "the start time is out of range 0-%" PRId64 " ms", CRON_MAX_MS);
    else if (r == -ENOENT)
        snprintf(err, errlen, "the schedule never runs in time zone %s", tzname);
    tz_free(z);
    return r;
}

/* ---- Intervals. */

int cron_interval_parse(const char *s, int64_t *ret_ms, char *err, size_t errlen)
{
    static const char units[] = "dhms";
    static const int64_t unit_ms[] = {86400000, 3600000, 60000, 1000};
    size_t len = strnlen(s, 65), next_unit = 0;
    int64_t total = 0;
    const char *p = s;
    bool printable = true;
    for (size_t i = 0; i < len; i++)
        printable = printable && s[i] > 0x20 && s[i] < 0x7f;
    if (len == 0 || len > 64 || !printable) {
        snprintf(err, errlen,
                 "interval: give 1 to 64 printable characters, such as 30s, 5m, 1h30m or 1d");
        return -EINVAL;
    }
    while (*p) {
        int64_t v = 0;
        const char *num = p;
        for (; *p >= '0' && *p <= '9'; p++)
            v = v < CRON_INTERVAL_MAX_MS ? v * 10 + (*p - '0') : v;
        const char *u = *p ? strchr(units + next_unit, *p) : NULL;
        if (p == num || !u) {
            snprintf(err, errlen,
                     "interval: %.64s is not a number followed by a unit, d, h, m or s, "
                     "largest first, each once (30s, 5m, 1h30m, 1d)",
                     s);
            return -EINVAL;
        }
        next_unit = (size_t)(u - units) + 1;
        total += v < CRON_INTERVAL_MAX_MS ? v * unit_ms[u - units] : CRON_INTERVAL_MAX_MS + 1;
        total = total > CRON_INTERVAL_MAX_MS ? CRON_INTERVAL_MAX_MS + 1 : total;
        p++;
    }
    if (total < CRON_INTERVAL_MIN_MS || total > CRON_INTERVAL_MAX_MS) {
        snprintf(err, errlen, "interval: %s is out of range 1s-365d", s);
        return -EINVAL;
    }
    *ret_ms = total;
    return 0;
}

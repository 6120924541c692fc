#define _GNU_SOURCE
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A date rule of a POSIX TZ string: Jn (day n of 1..365, February 29
 * never counted), n (day 0..365, counted) or Mm.w.d (weekday d of week w
 * of month m, week 5 the last), at `time` seconds past its midnight (-167 h
 * to 167 h: RFC 8536 allows more than POSIX's 0-24). */
struct tz_date {
    char kind; /* 'J', 'N' or 'M' */
    int n, m, w, d;
    int32_t time;
};

/* The footer's rule: standard time, and daylight time between start (given
 * in standard time) and end (given in daylight time) when has_dst. */
struct tz_rule {
    int32_t std_off, dst_off;
    bool has_dst;
    struct tz_date start, end;
};

struct tz_trans {
    int64_t at;  /* from this instant on ... */
    int32_t off; /* ... this offset, until the next transition */
};

struct tz {
    char name[TZ_NAME_MAX + 1];
    int32_t off0; /* before the first transition: time type 0 (RFC 8536 3.2) */
    bool has_rule;
    struct tz_rule rule; /* from the last transition on, when has_rule */
    size_t n;
    struct tz_trans tr[];
};

/* ---- The calendar (Howard Hinnant's days_from_civil and civil_from_days). */

int64_t tz_floor_div(int64_t a, int64_t d)
{
    int64_t q = a / d;
    return (a % d != 0 && (a < 0) != (d < 0)) ? q - 1 : q;
}

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = tz_floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *ret_y, int *ret_m, int *ret_d)
{
    int64_t z = days + 719468;
    int64_t era = tz_floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *ret_y = yoe + era * 400 + (m <= 2);
    *ret_m = m;
    *ret_d = (int)(doy - (153 * mp + 2) / 5 + 1);
}

int tz_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday. */
    return (int)(days - 7 * tz_floor_div(days + 4, 7) + 4);
}

bool tz_leap_year(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int tz_days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && tz_leap_year(y) ? 29 : days[m - 1];
}

/* ---- Names. */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '_' || c == '+' || c == '-' || c == '.';
}

/* A component may not be empty or start with '.', which rules out "." and
 * ".." and so any way out of TZ_DIR. */
bool tz_valid_name(const char *name)
{
    size_t len = strnlen(name, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX)
        return false;
    const char *comp = name;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            if (p == comp || comp[0] == '.')
                return false;
            if (*p == '\0')
                return true;
            comp = p + 1;
        } else if (!name_char(*p)) {
            return false;
        }
    }
}

/* ---- POSIX TZ strings (the TZif footer). */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A zone abbreviation: 3 or more letters, or <...> of letters, digits, '+'
 * and '-'. Returns the end, or NULL. */
static const char *parse_abbr(const char *s)
{
    const char *p = s;
    if (*p == '<') {
        for (p++; is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-'; p++)
            ;
        return *p == '>' && p - s - 1 >= 3 ? p + 1 : NULL;
    }
    while (is_alpha(*p))
        p++;
    return p - s >= 3 ? p : NULL;
}

/* An unsigned number of 1..maxdigits digits within lo..hi. */
static const char *parse_num(const char *p, int maxdigits, int lo, int hi, int *ret)
{
    int v = 0, nd = 0;
    for (; is_digit(*p) && nd < maxdigits; p++, nd++)
        v = v * 10 + (*p - '0');
    if (nd == 0 || is_digit(*p) || v < lo || v > hi)
        return NULL;
    *ret = v;
    return p;
}

/* [+-]hh[:mm[:ss]] with hh at most max_h, in seconds. */
static const char *parse_hms(const char *p, int max_h, int32_t *ret)
{
    int sign = 1, h, m = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    p = parse_num(p, 3, 0, max_h, &h);
    if (p && *p == ':')
        p = parse_num(p + 1, 2, 0, 59, &m);
    if (p && *p == ':')
        p = parse_num(p + 1, 2, 0, 59, &s);
    if (p)
        *ret = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *parse_rule_date(const char *p, struct tz_date *d)
{
    memset(d, 0, sizeof(*d));
    if (*p == 'J') {
        d->kind = 'J';
        p = parse_num(p + 1, 3, 1, 365, &d->n);
    } else if (*p == 'M') {
        d->kind = 'M';
        p = parse_num(p + 1, 2, 1, 12, &d->m);
        p = p && *p == '.' ? parse_num(p + 1, 1, 1, 5, &d->w) : NULL;
        p = p && *p == '.' ? parse_num(p + 1, 1, 0, 6, &d->d) : NULL;
    } else {
        d->kind = 'N';
        p = parse_num(p, 3, 0, 365, &d->n);
    }
    d->time = 2 * 3600;
    if (p && *p == '/')
        p = parse_hms(p + 1, 167, &d->time);
    return p;
}

/* Parses "std offset [dst [offset] ,start[/time],end[/time]]". Daylight time
 * without its rules (POSIX leaves the dates to the implementation) is
 * refused: zic always writes them. */
static int rule_parse(const char *s, struct tz_rule *r)
{
    int32_t off;
    memset(r, 0, sizeof(*r));
    const char *p = parse_abbr(s);
    if (!p || !(p = parse_hms(p, 24, &off)))
        return -EINVAL;
    r->std_off = -off; /* POSIX counts west of UTC */
    if (*p == '\0')
        return 0;
    if (!(p = parse_abbr(p)))
        return -EINVAL;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if (!(p = parse_hms(p, 24, &off)))
            return -EINVAL;
        r->dst_off = -off;
    }
    if (*p != ',' || !(p = parse_rule_date(p + 1, &r->start)) || *p != ',' ||
        !(p = parse_rule_date(p + 1, &r->end)) || *p != '\0')
        return -EINVAL;
    return 0;
}

/* The day (from 1970-01-01) a rule date falls on in year y. */
static int64_t rule_day(const struct tz_date *d, int64_t y)
{
    if (d->kind == 'J')
        return tz_days_from_civil(y, 1, 1) + d->n - 1 + (tz_leap_year(y) && d->n >= 60);
    if (d->kind == 'N')
        return tz_days_from_civil(y, 1, 1) + d->n;
    int64_t first = tz_days_from_civil(y, d->m, 1);
    int64_t day = first + (d->d - tz_weekday(first) + 7) % 7 + 7 * (d->w - 1);
    while (day >= first + tz_days_in_month(y, d->m))
        day -= 7; /* week 5: the last one */
    return day;
}

/* Year y's two transitions: [0] into daylight time, [1] out of it. */
static void rule_year(const struct tz_rule *r, int64_t y, struct tz_trans out[2])
{
    out[0].at = rule_day(&r->start, y) * 86400 + r->start.time - r->std_off;
    out[0].off = r->dst_off;
    out[1].at = rule_day(&r->end, y) * 86400 + r->end.time - r->dst_off;
    out[1].off = r->std_off;
}

static int64_t rule_year_of(const struct tz_rule *r, int64_t t)
{
    int64_t y;
    int m, d;
    tz_civil_from_days(tz_floor_div(t + r->std_off, 86400), &y, &m, &d);
    return y;
}

/* The offset is that of the latest transition at or before t among the
 * years around t's. When two fall on one instant, the one into daylight
 * time wins, so that a rule of all-year daylight time ("EST5EDT,0/0,J365/25",
 * whose end meets the next start) keeps it. */
static int32_t rule_offset(const struct tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y = rule_year_of(r, t), best = INT64_MIN;
    int32_t off = r->std_off;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        struct tz_trans tr[2];
        rule_year(r, yy, tr);
        for (int k = 1; k >= 0; k--) {
            if (tr[k].at <= t && (tr[k].at > best || (tr[k].at == best && k == 0))) {
                best = tr[k].at;
                off = tr[k].off;
            }
        }
    }
    return off;
}

/* The first transition after t that changes the offset from cur. The
 * years from t's - 1 to t's + 2 hold it for any rule with daylight time
 * part of the year; one with none found there has it all year. */
static int64_t rule_next_change(const struct tz_rule *r, int64_t t, int32_t cur)
{
    if (!r->has_dst)
        return INT64_MAX;
    struct tz_trans c[8];
    int n = 0;
    int64_t y = rule_year_of(r, t);
    for (int64_t yy = y - 1; yy <= y + 2; yy++) {
        rule_year(r, yy, c + n);
        n += 2;
    }
    int64_t best = INT64_MAX;
    for (int i = 0; i < n; i++)
        if (c[i].at > t && c[i].at < best && rule_offset(r, c[i].at) != cur)
            best = c[i].at;
    return best;
}

/* ---- Offsets and local times. */

/* The index of the first transition after t (z->n when none). */
static size_t first_after(const struct tz *z, int64_t t)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->tr[mid].at <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int32_t tz_offset(const struct tz *z, int64_t t)
{
    if (z->has_rule && (z->n == 0 || t >= z->tr[z->n - 1].at))
        return rule_offset(&z->rule, t);
    size_t i = first_after(z, t);
    return i == 0 ? z->off0 : z->tr[i - 1].off;
}

int64_t tz_next_change(const struct tz *z, int64_t t)
{
    int32_t cur = tz_offset(z, t);
    for (size_t i = first_after(z, t); i < z->n; i++)
        if (tz_offset(z, z->tr[i].at) != cur)
            return z->tr[i].at;
    if (!z->has_rule)
        return INT64_MAX;
    /* Past the table the rule holds, from the last transition on. */
    int64_t from = z->n > 0 && t < z->tr[z->n - 1].at ? z->tr[z->n - 1].at : t;
    return rule_next_change(&z->rule, from, cur);
}

int32_t tz_min_offset_from(const struct tz *z, int64_t t)
{
    int32_t m = tz_offset(z, t);
    for (size_t i = first_after(z, t); i < z->n; i++)
        if (z->tr[i].off < m)
            m = z->tr[i].off;
    if (z->has_rule && z->rule.std_off < m)
        m = z->rule.std_off;
    if (z->has_rule && z->rule.has_dst && z->rule.dst_off < m)
        m = z->rule.dst_off;
    return m;
}

/* Walks the stretches of constant offset that cover every instant whose
 * local time could be `local` (offsets lie within TZ_OFFSET_LIMIT): in a
 * stretch [a, b) with offset off, local - off is such an instant if it
 * lies in the stretch; a stretch that starts past it (a gap) gives `first`
 * as its start. */
void tz_local_to_utc(const struct tz *z, int64_t local, struct tz_wall *ret)
{
    struct tz_wall w = {.n = 0, .first = INT64_MAX};
    int64_t a = local - TZ_OFFSET_LIMIT, end = local + TZ_OFFSET_LIMIT;
    int32_t off = tz_offset(z, a);
    for (;;) {
        int64_t b = tz_next_change(z, a), t = local - off;
        if (t < b && t >= a && w.n < TZ_WALL_MAX)
            w.t[w.n++] = t;
        if (t < b && w.first == INT64_MAX)
            w.first = t >= a ? t : a;
        if (b > end)
            break;
        a = b;
        off = tz_offset(z, b);
    }
    *ret = w;
}

const char *tz_name(const struct tz *z)
{
    return z->name;
}

void tz_free(struct tz *z)
{
    free(z);
}

/* ---- TZif files (RFC 8536). */

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be_time(const uint8_t *p, int size)
{
    if (size == 4)
        return (int32_t)be32(p);
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* The header at p: its version byte (0 for version 1) and counts. */
static int tzif_header(const uint8_t *p, size_t left, struct tzif_counts *c)
{
    if (left < 44 || memcmp(p, "TZif", 4) != 0)
        return -EINVAL;
    uint32_t v[6];
    for (int i = 0; i < 6; i++)
        v[i] = be32(p + 20 + 4 * i);
    *c = (struct tzif_counts){v[0], v[1], v[2], v[3], v[4], v[5]};
    return p[4];
}

static int fail(const char **why, const char *what, int r)
{
    *why = what;
    return r;
}

static uint64_t tzif_block_size(const struct tzif_counts *c, int tsize)
{
    return (uint64_t)c->time * (uint64_t)(tsize + 1) + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (uint64_t)(tsize + 4) + c->isstd + c->isut;
}

/* Reads one data block (times of tsize bytes) into a new zone. */
static int tzif_block(const uint8_t *p, size_t left, const struct tzif_counts *c, int tsize,
                      struct tz **ret, const char **why)
{
    if (c->type == 0 || c->type > 256 || (c->isstd && c->isstd != c->type) ||
        (c->isut && c->isut != c->type))
        return fail(why, "bad counts", -EINVAL);
    if (c->leap)
        return fail(why, "it counts leap seconds (a right/ zone), which is not supported", -EINVAL);
    if (tzif_block_size(c, tsize) > left)
        return fail(why, "truncated", -EINVAL);
    const uint8_t *idx = p + (size_t)c->time * (size_t)tsize, *types = idx + c->time;
    for (uint32_t i = 0; i < c->type; i++) {
        int32_t off = (int32_t)be32(types + 6 * i);
        if (off <= -TZ_OFFSET_LIMIT || off >= TZ_OFFSET_LIMIT)
            return fail(why, "an offset from UTC past 26 hours", -EINVAL);
    }
    struct tz *z = calloc(1, sizeof(*z) + (size_t)c->time * sizeof(z->tr[0]));
    if (!z)
        return fail(why, "out of memory", -ENOMEM);
    z->off0 = (int32_t)be32(types);
    for (uint32_t i = 0; i < c->time; i++) {
        z->tr[i].at = be_time(p + (size_t)i * (size_t)tsize, tsize);
        if (idx[i] >= c->type || (i > 0 && z->tr[i].at <= z->tr[i - 1].at) ||
            z->tr[i].at < -TZ_TIME_MAX || z->tr[i].at > TZ_TIME_MAX) {
            free(z);
            return fail(why, "bad transitions", -EINVAL);
        }
        z->tr[i].off = (int32_t)be32(types + 6 * idx[i]);
    }
    z->n = c->time;
    *ret = z;
    return 0;
}

/* The footer of a version 2+ file: "\n" TZ-string "\n", the string empty
 * when no rule holds past the last transition. */
static int tzif_footer(const uint8_t *p, size_t left, struct tz *z, const char **why)
{
    char s[256];
    if (left < 2 || p[0] != '\n' || p[left - 1] != '\n' || left - 2 >= sizeof(s))
        return fail(why, "bad footer", -EINVAL);
    memcpy(s, p + 1, left - 2);
    s[left - 2] = '\0';
    if (strlen(s) != left - 2 || strchr(s, '\n'))
        return fail(why, "bad footer", -EINVAL);
    if (s[0] == '\0')
        return 0;
    if (rule_parse(s, &z->rule) < 0)
        return fail(why, "bad TZ string in its footer", -EINVAL);
    z->has_rule = true;
    return 0;
}

static int tzif_parse(const uint8_t *p, size_t len, struct tz **ret, const char **why)
{
    struct tzif_counts c;
    int version = tzif_header(p, len, &c);
    if (version < 0)
        return fail(why, "not a TZif file", -EINVAL);
    if (version == 0) /* version 1: 32-bit times, no footer */
        return tzif_block(p + 44, len - 44, &c, 4, ret, why);
    /* Version 2 and later repeat the data with 64-bit times after the
     * version 1 block, then add the footer. */
    uint64_t skip = 44 + tzif_block_size(&c, 4);
    if (skip > len || tzif_header(p + skip, len - skip, &c) < 0)
        return fail(why, "truncated", -EINVAL);
    size_t pos = (size_t)skip + 44;
    struct tz *z = NULL;
    int r = tzif_block(p + pos, len - pos, &c, 8, &z, why);
    if (r < 0)
        return r;
    pos += (size_t)tzif_block_size(&c, 8);
    r = tzif_footer(p + pos, len - pos, z, why);
    if (r < 0) {
        free(z);
        return r;
    }
    *ret = z;
    return 0;
}

/* The name as it may be quoted in a message: only when it is short
 * printable ASCII. */
static const char *printable_name(const char *name)
{
    size_t n = strnlen(name, TZ_NAME_MAX + 1);
    if (n > TZ_NAME_MAX)
        return "(too long)";
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x20 || name[i] > 0x7e)
            return "(not printable)";
    return name;
}

int tz_from_tzif(const char *name, const void *data, size_t len, struct tz **ret, char *err,
                 size_t errlen)
{
    if (!tz_valid_name(name)) {
        snprintf(err, errlen, "not a valid time zone name: %s", printable_name(name));
        return -EINVAL;
    }
    const char *why = "";
    struct tz *z = NULL;
    int r = tzif_parse(data, len, &z, &why);
    if (r < 0) {
        snprintf(err, errlen, "time zone %s: %s", name, why);
        return r;
    }
    snprintf(z->name, sizeof(z->name), "%s", name);
    *ret = z;
    return 0;
}

static int read_zone_file(int fd, const char *name, uint8_t **ret, size_t *ret_len, char *err,
                          size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "unknown time zone %s", name);
        return -ENOENT; /* "America", a directory */
    }
    if (st.st_size > TZ_FILE_MAX) {
        snprintf(err, errlen, "time zone %s: its file is larger than %d bytes", name, TZ_FILE_MAX);
        return -EINVAL;
    }
    _cleanup_free_ uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    if (!buf)
        return -ENOMEM;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "time zone %s: cannot read its file", name);
            return -EIO;
        }
        got += (size_t)n;
    }
    *ret = steal_pointer(&buf);
    *ret_len = got;
    return 0;
}

int tz_load(const char *name, struct tz **ret, char *err, size_t errlen)
{
    if (!tz_valid_name(name)) {
        snprintf(err, errlen, "not a valid time zone name: %s", printable_name(name));
        return -EINVAL;
    }
    if (strcmp(name, "UTC") == 0) {
        struct tz *z = calloc(1, sizeof(*z));
        if (!z)
            return -ENOMEM;
        snprintf(z->name, sizeof(z->name), "UTC");
        *ret = z;
        return 0;
    }
    char path[sizeof(TZ_DIR) + TZ_NAME_MAX + 1];
    snprintf(path, sizeof(path), "%s/%s", TZ_DIR, name);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            snprintf(err, errlen, "unknown time zone %s", name);
            return -ENOENT;
        }
        snprintf(err, errlen, "time zone %s: cannot open %s: %s", name, path, strerror(e));
        return -e;
    }
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = read_zone_file(fd, name, &buf, &len, err, errlen);
    if (r < 0)
        return r;
    return tz_from_tzif(name, buf, len, ret, err, errlen);
}

/* IANA time zones read from the system's database (TZif files, RFC 8536,
 * under /usr/share/zoneinfo: Debian's tzdata), to turn an instant into local
 * wall-clock time and back without localtime(3), mktime(3) and the
 * process-wide TZ they read: setenv("TZ") and tzset() are not safe while
 * other threads run. A struct tz is immutable once loaded, so threads may
 * share one.
 *
 * A TZif file holds the zone's transitions (64-bit ones from version 2 on)
 * and, in a footer, a POSIX TZ string ("GMT0BST,M3.5.0/1,M10.5.0") for the
 * instants past the last of them; both are used, so that a date in 2090 is
 * right whether the file lists transitions up to 2037 ("fat") or stops at
 * the zone's last rule change ("slim"). Files with leap seconds (the
 * right/ tree) are refused: their transitions are not counted in Unix time.
 *
 * Times here are Unix seconds; a local time is counted the same way, as if
 * the wall clock's date and time were UTC (2026-03-29 01:30 local is
 * 1774747800 whatever the zone). Offsets are seconds east of UTC. Every
 * time passed in lies within TZ_TIME_MAX of 1970 (36 billion years: the
 * sums never overflow). */
#ifndef STRATQ_TZ_H
#define STRATQ_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where zone files are read from. */
#define TZ_DIR "/usr/share/zoneinfo"
/* The longest zone name taken ("America/Argentina/ComodRivadavia" is 32). */
#define TZ_NAME_MAX 64
/* The largest zone file read (Debian 12's largest is under 4 KiB). */
#define TZ_FILE_MAX (256 * 1024)
/* Offsets from UTC lie strictly within this (RFC 8536: -25:59:59 to
 * +25:59:59), so the instants of a local time lie within it of that time. */
#define TZ_OFFSET_LIMIT (26 * 3600)
/* The times a zone file's transitions and the functions' arguments lie
 * within, either side of 1970 (zic's "big bang", -2^59, is inside). */
#define TZ_TIME_MAX (INT64_C(1) << 60)

struct tz;

/* A zone name a client may give: 1..TZ_NAME_MAX characters of
 * [A-Za-z0-9/_+-.], no leading or trailing '/', no empty, "." or ".."
 * component ("Europe/London", "Etc/GMT+5", "UTC"). Says nothing of whether
 * the zone exists. */
bool tz_valid_name(const char *name);

/* Loads the zone `name` from TZ_DIR; "UTC" is built in and needs no file.
 * Returns 0 and a new zone in *ret (caller frees with tz_free()), or
 * -EINVAL (a name tz_valid_name() refuses, or a file that is not a usable
 * TZif file), -ENOENT (no such zone) or -ENOMEM; err names the zone and
 * what is wrong. */
int tz_load(const char *name, struct tz **ret, char *err, size_t errlen);

/* Makes a zone called `name` from the TZif bytes data[0..len) (what
 * tz_load() reads). Same results as tz_load(), but never -ENOENT. */
int tz_from_tzif(const char *name, const void *data, size_t len, struct tz **ret, char *err,
                 size_t errlen);

/* Frees a zone; accepts NULL. */
void tz_free(struct tz *z);

/* The name the zone was loaded under. */
const char *tz_name(const struct tz *z);

/* The offset from UTC, in seconds east, in force at instant t. */
int32_t tz_offset(const struct tz *z, int64_t t);

/* The first instant after t at which the offset changes, or INT64_MAX when
 * it never does again. */
int64_t tz_next_change(const struct tz *z, int64_t t);

/* The smallest offset in force at t or at any later instant. */
int32_t tz_min_offset_from(const struct tz *z, int64_t t);

/* What a local time is in UTC. Ordinarily one instant; none when the local
 * time falls in a gap (the hour skipped when clocks go forward), two when
 * it is repeated (clocks going back). `first` is the earliest instant whose
 * local time is the given one or later: the single instant, the first of
 * two, or in a gap the instant the gap ends (when the clocks jump). Only
 * where the clocks jump forward over the local time and, within a day,
 * back over it again is `first` that jump, before t[0]. */
#define TZ_WALL_MAX 4
struct tz_wall {
    int n;
    int64_t t[TZ_WALL_MAX]; /* ascending; n of them */
    int64_t first;
};
void tz_local_to_utc(const struct tz *z, int64_t local, struct tz_wall *ret);

/* The proleptic Gregorian calendar, counting days from 1970-01-01 (day 0;
 * negative before). Months 1..12, weekdays 0 (Sunday) to 6. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void tz_civil_from_days(int64_t days, int64_t *ret_y, int *ret_m, int *ret_d);
int tz_weekday(int64_t days);
bool tz_leap_year(int64_t y);
int tz_days_in_month(int64_t y, int m);

/* Floor division and its remainder (0 <= r < d), for times before 1970. */
int64_t tz_floor_div(int64_t a, int64_t d);

#endif

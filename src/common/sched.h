/* When a recurring job's schedule fires (POST /v1/schedules, docs/api.md
 * "Recurring jobs"): a cron expression read in an IANA time zone (cron.h),
 * or a fixed interval. The API checks a schedule and finds its first fire;
 * the workers, which tick the schedules (src/queue/lua/tick.lua), find the
 * fire after each one. Pure: no I/O but reading the zone's file. */
#ifndef STRATQ_SCHED_H
#define STRATQ_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "cron.h"
#include "tz.h"

/* A schedule's timing: cron (with tz) when cron[0], else every_ms. */
struct sched_timing {
    char cron[CRON_EXPR_MAX + 1];
    char tz[TZ_NAME_MAX + 1];
    long long every_ms;
};

/* Checks and fills *t from what a client gave: a cron expression (cron,
 * NULL when none) in zone tz (NULL: "UTC"), or an interval (every, NULL
 * when none: "30s", "1h30m"); exactly one of cron and every. Returns 0, or
 * -EINVAL with a message in err that names the field ("cron: minute: 61
 * is out of range 0-59", "tz: no time zone 'Mars/Olympus'"). */
int sched_timing_parse(const char *cron, const char *tz, const char *every, struct sched_timing *t,
                       char *err, size_t errlen);

/* The first fire after now_ms: a cron schedule's first time strictly after
 * it; an interval's now_ms + every_ms. (A schedule created, or resumed, at
 * now_ms fires first then.) 0, or a negative errno with err. */
int sched_first(const struct sched_timing *t, long long now_ms, long long *ret_next_ms, char *err,
                size_t errlen);

/* The fire after the one due at due_ms, ticked at now_ms (>= due_ms; later
 * when every replica was down): the first fire strictly after now_ms, so
 * that the fires missed meanwhile come to the one just made. An interval
 * keeps its phase: due_ms + k * every_ms for the least k that is past
 * now_ms. 0, or a negative errno with err. */
int sched_after(const struct sched_timing *t, long long due_ms, long long now_ms,
                long long *ret_next_ms, char *err, size_t errlen);

#endif

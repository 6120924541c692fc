#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The text of a field's message, prefixed with the field's name. */
static int field_error(const char *field, const char *msg, char *err, size_t errlen)
{
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", msg);
    snprintf(err, errlen, "%s: %s", field, copy);
    return -EINVAL;
}

int sched_timing_parse(const char *cron, const char *tz, const char *every, struct sched_timing *t,
                       char *err, size_t errlen)
{
    char msg[512];
    memset(t, 0, sizeof(*t));
    if (!cron == !every) {
        snprintf(err, errlen,
                 "give either 'cron' (a cron expression, with 'tz') or 'every' (an interval such "
                 "as \"30s\" or \"1h30m\"), not %s",
                 cron ? "both" : "neither");
        return -EINVAL;
    }
    if (every) {
        int64_t ms;
        if (tz) {
            snprintf(err, errlen, "tz: a time zone applies to a cron expression, not to 'every'");
            return -EINVAL;
        }
        if (cron_interval_parse(every, &ms, msg, sizeof(msg)) < 0)
            return field_error("every", msg, err, errlen);
        t->every_ms = ms;
        return 0;
    }
    struct cron c;
    if (cron_parse(cron, &c, msg, sizeof(msg)) < 0)
        return field_error("cron", msg, err, errlen);
    tz = tz ? tz : "UTC";
    struct tz *z = NULL;
    if (tz_load(tz, &z, msg, sizeof(msg)) < 0)
        return field_error("tz", msg, err, errlen);
    tz_free(z);
    snprintf(t->cron, sizeof(t->cron), "%s", cron);
    snprintf(t->tz, sizeof(t->tz), "%s", tz);
    return 0;
}

/* A cron schedule's first time strictly after after_ms. */
static int cron_after(const struct sched_timing *t, long long after_ms, long long *ret_next_ms,
                      char *err, size_t errlen)
{
    struct cron c;
    int64_t next;
    int r = cron_parse(t->cron, &c, err, errlen);
    if (r < 0)
        return r;
    r = cron_next_in(&c, t->tz, after_ms, &next, err, errlen);
    if (r < 0)
        return r;
    *ret_next_ms = next;
    return 0;
}

int sched_after(const struct sched_timing *t, long long due_ms, long long now_ms,
                long long *ret_next_ms, char *err, size_t errlen)
{
    if (now_ms < due_ms)
        now_ms = due_ms;
    if (t->cron[0])
        return cron_after(t, now_ms, ret_next_ms, err, errlen);
    if (t->every_ms <= 0) {
        snprintf(err, errlen, "the schedule has neither a cron expression nor an interval");
        return -EINVAL;
    }
    *ret_next_ms = due_ms + ((now_ms - due_ms) / t->every_ms + 1) * t->every_ms;
    return 0;
}

int sched_first(const struct sched_timing *t, long long now_ms, long long *ret_next_ms, char *err,
                size_t errlen)
{
    /* The fire after one due now, ticked now. */
    return sched_after(t, now_ms, now_ms, ret_next_ms, err, errlen);
}

/* The worker scaling guide's advice (advice.h). */
#define _GNU_SOURCE
#include "advice.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double advice_round1(double v)
{
    return round(v * 10) / 10;
}

void advice_fmt_num(double v, char *buf, size_t n)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "null");
        return;
    }
    /* Whole numbers in full, as jq prints them (not 4e+01); others with the
     * fewest significant digits that read back as the same double. */
    if (v == trunc(v) && fabs(v) < 1e17) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

const char *advice_action_name(enum advice_action a)
{
    switch (a) {
    case ADVICE_SCALE_UP:
        return "scale_up";
    case ADVICE_SCALE_DOWN:
        return "scale_down";
    case ADVICE_HOLD:
        break;
    }
    return "hold";
}

static void add_reason(struct advice *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_reason(struct advice *a, const char *fmt, ...)
{
    if (a->nreasons >= ADVICE_MAX_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->reasons[a->nreasons++], ADVICE_TEXT, fmt, ap);
    va_end(ap);
}

/* A number for a reason: tenths, or "-" when unknown (negative). */
static const char *num(double v, char *buf, size_t n)
{
    if (v < 0)
        return "-";
    advice_fmt_num(advice_round1(v), buf, n);
    return buf;
}

/* a's suggested count, action, note and command, once its wanted action
 * is decided. */
static void suggest(const struct advice_in *in, long long pending, struct advice *a)
{
    /* The count to suggest: one more worker per ADVICE_JOBS_PER_WORKER jobs
     * above ADVICE_UP_QUEUE (at least one), or one fewer, within the bounds.
     * A pool already past a bound (scaled with --force) is not moved the
     * other way. */
    a->suggested = a->workers;
    if (a->workers >= 0 && a->wanted == ADVICE_SCALE_UP) {
        long long above = pending > ADVICE_UP_QUEUE ? pending - ADVICE_UP_QUEUE : 0;
        long long more = (above + ADVICE_JOBS_PER_WORKER - 1) / ADVICE_JOBS_PER_WORKER;
        long long want = a->workers + (more > 1 ? more : 1);
        if (want < ADVICE_MIN_WORKERS)
            want = ADVICE_MIN_WORKERS;
        if (want > ADVICE_MAX_WORKERS)
            want = ADVICE_MAX_WORKERS;
        if (want > a->workers)
            a->suggested = want;
    } else if (a->workers >= 0 && a->wanted == ADVICE_SCALE_DOWN) {
        long long want = a->workers - 1 < ADVICE_MIN_WORKERS ? ADVICE_MIN_WORKERS : a->workers - 1;
        if (want < a->workers)
            a->suggested = want;
    }
    a->action = a->suggested != a->workers ? a->wanted : ADVICE_HOLD;

    if (a->wanted != ADVICE_HOLD && a->workers < 0)
        snprintf(a->note, sizeof(a->note), "the number of workers is unknown");
    else if (a->wanted == ADVICE_SCALE_UP && a->action == ADVICE_HOLD)
        snprintf(a->note, sizeof(a->note),
                 "already at the guide's maximum of %d workers: make the jobs cheaper or give "
                 "each worker more CPU and memory",
                 ADVICE_MAX_WORKERS);
    else if (a->wanted == ADVICE_SCALE_DOWN && a->action == ADVICE_HOLD)
        snprintf(a->note, sizeof(a->note), "already at the guide's minimum of %d workers",
                 ADVICE_MIN_WORKERS);
    else if (a->action != ADVICE_HOLD && in->autoscaler)
        snprintf(a->note, sizeof(a->note),
                 "the HPA %s (min %lld, max %lld) manages the count and may get there by itself; "
                 "--pin holds the count until you patch the HPA back (scale-workers.sh prints "
                 "how)",
                 in->autoscaler, in->autoscaler_min, in->autoscaler_max);
    if (a->action != ADVICE_HOLD && in->env)
        snprintf(a->command, sizeof(a->command), "scripts/scale-workers.sh %s %lld%s", in->env,
                 a->suggested, in->autoscaler ? " --pin" : "");
}

void advice_decide(const struct advice_in *in, struct advice *ret)
{
    struct advice a = {.workers = in->workers < 0 ? ADVICE_UNKNOWN : in->workers};
    long long pending = in->npending ? in->pending[0] : ADVICE_UNKNOWN;
    bool resources = in->basis == ADVICE_BASIS_RESOURCES;
    /* The guide's numbers are compared as the report shows them. */
    double wait = in->wait_s < 0 ? -1 : advice_round1(in->wait_s);
    double cpu = in->cpu_percent < 0 ? -1 : advice_round1(in->cpu_percent);
    double mem = in->memory_percent < 0 ? -1 : advice_round1(in->memory_percent);
    double busy = in->busy_percent < 0 ? -1 : advice_round1(in->busy_percent);
    char b1[32], b2[32], b3[32];

    /* "Consistently": in every sample of the window. */
    bool all_up = in->npending > 0, all_zero = in->npending > 0;
    for (size_t i = 0; i < in->npending; i++) {
        all_up = all_up && in->pending[i] > ADVICE_UP_QUEUE;
        all_zero = all_zero && in->pending[i] == 0;
    }
    char when[64] = "now";
    if (in->npending > 1 && in->window_s > 0)
        snprintf(when, sizeof(when), "in every sample of the last %lld s", in->window_s);
    else if (in->npending > 1)
        snprintf(when, sizeof(when), "in each of the last %zu samples", in->npending);

    if (all_up)
        add_reason(&a, "queue length %lld > %d %s", pending, ADVICE_UP_QUEUE, when);
    if (wait > ADVICE_UP_WAIT_S && in->wait_over)
        add_reason(&a, "average wait %s s > %d s (%s)", num(wait, b1, sizeof(b1)), ADVICE_UP_WAIT_S,
                   in->wait_over);
    else if (wait > ADVICE_UP_WAIT_S)
        add_reason(&a, "average wait %s s > %d s (last %lld jobs)", num(wait, b1, sizeof(b1)),
                   ADVICE_UP_WAIT_S, in->wait_jobs);
    if (resources && cpu > ADVICE_UP_UTIL)
        add_reason(&a, "CPU utilisation %s%% > %d%%", num(cpu, b1, sizeof(b1)), ADVICE_UP_UTIL);
    if (resources && mem > ADVICE_UP_UTIL)
        add_reason(&a, "memory utilisation %s%% > %d%%", num(mem, b1, sizeof(b1)), ADVICE_UP_UTIL);
    if (!resources && busy > ADVICE_UP_UTIL)
        add_reason(&a, "utilisation %s%% > %d%%", num(busy, b1, sizeof(b1)), ADVICE_UP_UTIL);

    bool util_known = resources ? cpu >= 0 : busy >= 0;
    bool cool = resources ? cpu >= 0 && cpu < ADVICE_DOWN_UTIL && mem < ADVICE_DOWN_UTIL
                          : busy >= 0 && busy < ADVICE_DOWN_UTIL;
    a.wanted = ADVICE_HOLD;
    if (a.nreasons) {
        a.wanted = ADVICE_SCALE_UP;
    } else if (all_zero && cool && a.workers >= 0) {
        a.wanted = ADVICE_SCALE_DOWN;
        add_reason(&a, "queue at 0 %s", when);
        if (resources) {
            add_reason(&a, "CPU utilisation %s%% < %d%%", num(cpu, b1, sizeof(b1)),
                       ADVICE_DOWN_UTIL);
            if (mem >= 0)
                add_reason(&a, "memory utilisation %s%% < %d%%", num(mem, b1, sizeof(b1)),
                           ADVICE_DOWN_UTIL);
        } else {
            add_reason(&a, "utilisation %s%% < %d%%", num(busy, b1, sizeof(b1)), ADVICE_DOWN_UTIL);
        }
    } else if (pending < 0) {
        add_reason(&a, "queue length unknown");
    } else if (all_zero && !util_known) {
        add_reason(&a, "queue at 0 %s, but %s", when,
                   resources ? "CPU and memory utilisation are unknown"
                             : "utilisation is unknown (no live workers)");
    } else if (resources) {
        add_reason(&a,
                   "within the guide's bounds: queue %lld, average wait %s s, CPU %s%%, "
                   "memory %s%%",
                   pending, num(wait, b1, sizeof(b1)), num(cpu, b2, sizeof(b2)),
                   num(mem, b3, sizeof(b3)));
    } else {
        add_reason(&a, "within the guide's bounds: queue %lld, average wait %s s, utilisation %s%%",
                   pending, num(wait, b1, sizeof(b1)), num(busy, b2, sizeof(b2)));
    }

    suggest(in, pending, &a);
    *ret = a;
}

static json_t *count_or_null(long long v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *text_or_null(const char *s)
{
    return *s ? json_string(s) : json_null();
}

int advice_to_json(const struct advice *a, json_t *obj)
{
    json_t *reasons = json_array();
    if (!reasons)
        return -ENOMEM;
    for (size_t i = 0; i < a->nreasons; i++)
        if (json_array_append_new(reasons, json_string(a->reasons[i])) < 0) {
            json_decref(reasons);
            return -ENOMEM;
        }
    int r = 0;
    r |= json_object_set_new(obj, "action", json_string(advice_action_name(a->action)));
    r |= json_object_set_new(obj, "wanted", json_string(advice_action_name(a->wanted)));
    r |= json_object_set_new(obj, "reasons", reasons);
    r |= json_object_set_new(obj, "workers", count_or_null(a->workers));
    r |= json_object_set_new(obj, "suggested_workers", count_or_null(a->suggested));
    r |= json_object_set_new(obj, "command", text_or_null(a->command));
    r |= json_object_set_new(obj, "note", text_or_null(a->note));
    return r ? -ENOMEM : 0;
}

int advice_fill_json(const struct advice_in *in, json_t *obj)
{
    struct advice a;
    advice_decide(in, &a);
    return advice_to_json(&a, obj);
}

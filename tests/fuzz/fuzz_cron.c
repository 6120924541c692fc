/* libFuzzer target for cron expressions and intervals (src/common/cron.c).
 * The first byte picks a zone, the next 8 the instant to start from (taken
 * modulo the range cron_next() accepts); the rest is the expression, and
 * also an interval. Whatever parses must give a run after the start that
 * matches the fields (or ends a DST gap, for a fixed time), that is the
 * first occurrence of its local time for a fixed time, and that nothing
 * precedes; and the search ends (libFuzzer's -timeout catches one that
 * does not). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cron.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Zones with every kind of change: none, one hour, 30 minutes, 2 hours,
 * negative DST (Dublin's footer), a whole day skipped (Apia, 2011). */
static const char *const zone_names[] = {
    "UTC",           "Europe/London",       "America/New_York",  "Asia/Kolkata",
    "Europe/Dublin", "Australia/Lord_Howe", "Pacific/Chatham",   "Antarctica/Troll",
    "Pacific/Apia",  "America/St_Johns",    "Africa/Casablanca", "America/Sao_Paulo",
};
#define N_ZONES (sizeof(zone_names) / sizeof(zone_names[0]))

static const struct tz *zone(size_t i)
{
    static struct tz *zones[N_ZONES];
    if (!zones[i]) {
        char err[256];
        if (tz_load(zone_names[i], &zones[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "fuzz_cron: %s\n", err);
            abort();
        }
    }
    return zones[i];
}

static void check_run(const struct cron *c, const struct tz *z, int64_t after, int64_t next)
{
    int64_t t = next / 1000, local = t + tz_offset(z, t);
    int fixed = !(c->flags & (CRON_MINUTE_STAR | CRON_HOUR_STAR));
    CHECK(next > after && next % 1000 == 0);
    CHECK(next - after <= (int64_t)(CRON_SEARCH_DAYS + 2) * 86400000);
    if (cron_matches(c, local)) {
        struct tz_wall w;
        tz_local_to_utc(z, local, &w);
        CHECK(!fixed || w.first == t);
    } else {
        CHECK(fixed && tz_offset(z, t - 1) < tz_offset(z, t));
    }
    int64_t again = 0;
    if (next - 1 <= CRON_MAX_MS) {
        CHECK(cron_next(c, z, next - 1, &again) == 0);
        CHECK(again == next);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > CRON_EXPR_MAX + 20)
        return 0;
    const struct tz *z = zone(data[0] % N_ZONES);
    uint64_t raw = 0;
    for (int i = 1; i <= 8; i++)
        raw = raw << 8 | data[i];
    int64_t after = (int64_t)(raw % (uint64_t)(CRON_MAX_MS + 1));
    char expr[CRON_EXPR_MAX + 20], err[128];
    memcpy(expr, data + 9, size - 9);
    expr[size - 9] = '\0';

    int64_t ms = -1;
    memset(err, 0, sizeof(err));
    int r = cron_interval_parse(expr, &ms, err, sizeof(err));
    CHECK(r == 0 ? ms >= CRON_INTERVAL_MIN_MS && ms <= CRON_INTERVAL_MAX_MS
                 : r == -EINVAL && ms == -1 && err[0] != '\0');

    struct cron c;
    memset(err, 0, sizeof(err));
    r = cron_parse(expr, &c, err, sizeof(err));
    CHECK(r == 0 || (r == -EINVAL && err[0] != '\0' && err[sizeof(err) - 1] == '\0'));
    if (r < 0)
        return 0;
    CHECK(c.minutes && c.hours && c.days && c.months && c.weekdays);
    CHECK(!(c.minutes >> 60) && !(c.hours >> 24) && !(c.days & 1) && !(c.months & 0xe001));
    int64_t next = 0;
    r = cron_next(&c, z, after, &next);
    CHECK(r == 0 || r == -ENOENT);
    if (r == 0)
        check_run(&c, z, after, next);
    return 0;
}

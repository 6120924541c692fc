/* libFuzzer target for zone files and their footer rules (src/common/tz.c).
 * The first 8 bytes are a local time to look up (within 2^40 s of 1970),
 * the rest a TZif file; the seeds are Debian's files for zones with every
 * kind of rule. Whatever loads must map the local time to instants whose
 * local time it is, give as `first` the earliest instant at or past it,
 * and change offsets exactly where tz_next_change() says. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/tz.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int64_t wall(const struct tz *z, int64_t t)
{
    return t + tz_offset(z, t);
}

static void check_local(const struct tz *z, int64_t local)
{
    struct tz_wall w;
    tz_local_to_utc(z, local, &w);
    CHECK(w.n >= 0 && w.n <= TZ_WALL_MAX);
    for (int i = 0; i < w.n; i++) {
        CHECK(wall(z, w.t[i]) == local);
        CHECK(i == 0 || w.t[i] > w.t[i - 1]);
    }
    CHECK(w.first != INT64_MAX);
    CHECK(w.n == 0 || w.first <= w.t[0]);
    CHECK(wall(z, w.first) >= local);
    CHECK(wall(z, w.first - 1) < local);
}

static void check_changes(const struct tz *z, int64_t t)
{
    for (int k = 0; k < 4; k++) {
        int32_t off = tz_offset(z, t);
        int64_t next = tz_next_change(z, t);
        CHECK(next > t);
        CHECK(tz_min_offset_from(z, t) <= off);
        if (next > TZ_TIME_MAX - TZ_OFFSET_LIMIT)
            return;
        CHECK(tz_offset(z, next - 1) == off);
        CHECK(tz_offset(z, next) != off);
        t = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t raw = 0;
    for (int i = 0; i < 8; i++)
        raw = raw << 8 | data[i];
    int64_t local = (int64_t)(raw % (UINT64_C(1) << 41)) - (INT64_C(1) << 40);
    char err[128];
    struct tz *z = NULL;
    int r = tz_from_tzif("Fuzz/Zone", data + 8, size - 8, &z, err, sizeof(err));
    CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
    if (r < 0) {
        CHECK(z == NULL && err[0] != '\0');
        return 0;
    }
    check_local(z, local);
    check_local(z, local % (INT64_C(1) << 33)); /* within about 270 years of 1970 */
    check_changes(z, local - TZ_OFFSET_LIMIT);
    tz_free(z);
    return 0;
}

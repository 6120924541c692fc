/* libFuzzer target for the job-spec parser (src/common/job.c): arbitrary
 * bytes go to job_spec_parse() with the API's default limits. A spec that is
 * accepted must come back as an object with every default filled in and
 * within the limits; a refused one must carry a message. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"
#include "fuzz_check.h"

static const struct job_limits limits = {300, 3600, 1024, 4096};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *spec = NULL;

    memset(err, 0x5a, sizeof(err)); /* a missing terminator shows up below */
    int r = job_spec_parse((const char *)data, size, &limits, &spec, err, sizeof(err));
    if (r < 0) {
        CHECK(r == -EINVAL);
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(r == 0);
    CHECK(spec != NULL);
    CHECK(json_is_object(spec));

    json_t *code = json_object_get(spec, "code");
    CHECK(json_is_string(code));
    CHECK(json_string_length(code) > 0);

    json_t *entry = json_object_get(spec, "entrypoint");
    CHECK(json_is_string(entry));
    const char *e = json_string_value(entry);
    CHECK(e[0] != '\0' && !(e[0] >= '0' && e[0] <= '9'));

    CHECK(json_is_object(json_object_get(spec, "params")));

    json_t *t = json_object_get(spec, "timeout_s");
    CHECK(json_is_number(t));
    double td = json_number_value(t);
    CHECK(isfinite(td) && td > 0 && td <= (double)limits.max_timeout_s);

    json_t *m = json_object_get(spec, "memory_mb");
    CHECK(json_is_integer(m));
    json_int_t mi = json_integer_value(m);
    CHECK(mi > 0 && mi <= limits.max_memory_mb);

    /* Only the known fields survive. */
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v)
    {
        (void)v;
        CHECK(!strcmp(key, "code") || !strcmp(key, "entrypoint") || !strcmp(key, "params") ||
              !strcmp(key, "data") || !strcmp(key, "data_csv") || !strcmp(key, "timeout_s") ||
              !strcmp(key, "memory_mb") || !strcmp(key, "max_attempts") ||
              !strcmp(key, "retry_backoff_s"));
    }
    /* data_csv is CSV text, and never beside data. */
    json_t *csv = json_object_get(spec, "data_csv");
    CHECK(!csv || json_is_string(csv));
    CHECK(!csv || !json_object_get(spec, "data") || json_is_null(json_object_get(spec, "data")));

    /* The retry policy is always filled in, within its bounds. */
    json_t *ma = json_object_get(spec, "max_attempts");
    CHECK(json_is_integer(ma));
    CHECK(json_integer_value(ma) >= 1 && json_integer_value(ma) <= JOB_MAX_ATTEMPTS);
    json_t *bo = json_object_get(spec, "retry_backoff_s");
    CHECK(json_is_number(bo));
    double bd = json_number_value(bo);
    CHECK(isfinite(bd) && bd >= 0 && bd <= JOB_MAX_BACKOFF_S);

    /* What the API stores must serialize. */
    char *dump = json_dumps(spec, JSON_COMPACT);
    CHECK(dump != NULL);
    free(dump);

    json_decref(spec);
    return 0;
}

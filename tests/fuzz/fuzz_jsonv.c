/* libFuzzer target for the JSON validator (src/common/jsonv.c), checked
 * against jansson: for arbitrary bytes, jsonv_check() with no limits must
 * accept exactly what json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) accepts.
 * Not compared: texts jansson refuses for a number it cannot hold (the
 * validator takes numbers of any size) or for its own depth limit, and a
 * NUL byte right after a number or literal, which jansson drops (see
 * tests/unit/test_jsonv.c). For a text both accept, the limits must fall
 * exactly where jansson's tree says (without duplicate keys): its value
 * count and its depth pass, one less is over. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonv.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Values in v (itself included) and the containers open at its deepest. */
static void measure(const json_t *v, size_t depth, size_t *values, size_t *max_depth)
{
    const char *key;
    json_t *child;
    size_t i;

    (*values)++;
    if (!json_is_array(v) && !json_is_object(v))
        return;
    depth++;
    if (depth > *max_depth)
        *max_depth = depth;
    if (json_is_array(v)) {
        json_array_foreach(v, i, child) measure(child, depth, values, max_depth);
    } else {
        json_object_foreach((json_t *)v, key, child) measure(child, depth, values, max_depth);
    }
}

/* Whether jansson's acceptance of s rests on a NUL byte it drops: one right
 * after a digit or the last letter of true, false or null. */
static bool has_dropped_nul(const char *s, size_t len)
{
    for (size_t i = 1; i < len; i++)
        if (!s[i] && strchr("0123456789el", s[i - 1]))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t off = SIZE_MAX;
    int r = jsonv_check(s, size, NULL, &off);
    CHECK(r == JSONV_OK || r == JSONV_SYNTAX || r == JSONV_TOO_DEEP);
    CHECK(r == JSONV_OK ? off == SIZE_MAX : off <= size);

    /* Small limits: a limit error comes no later than the syntax error. */
    const struct jsonv_limits small = {.max_depth = 3, .max_values = 8};
    size_t small_off = SIZE_MAX;
    int rs = jsonv_check(s, size, &small, &small_off);
    if (r == JSONV_OK)
        CHECK(rs != JSONV_SYNTAX);
    else if (rs == JSONV_SYNTAX)
        CHECK(r == JSONV_SYNTAX && small_off == off);
    else
        CHECK(rs == JSONV_TOO_DEEP || rs == JSONV_TOO_MANY);
    if (r != JSONV_OK && rs != JSONV_SYNTAX)
        CHECK(small_off <= off);

    json_error_t e;
    json_t *j = json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) {
        enum json_error_code code = json_error_code(&e);
        if (code != json_error_numeric_overflow && code != json_error_stack_overflow)
            CHECK(r != JSONV_OK);
        return 0;
    }
    if (r != JSONV_OK) {
        CHECK(has_dropped_nul(s, size));
        json_decref(j);
        return 0;
    }

    /* A duplicate key leaves one member in jansson's tree, not two. */
    json_decref(j);
    j = json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return 0;
    size_t values = 0, depth = 0;
    measure(j, 0, &values, &depth);
    json_decref(j);
    struct jsonv_limits lim = {.max_depth = depth, .max_values = values};
    CHECK(jsonv_check(s, size, &lim, NULL) == JSONV_OK);
    lim.max_values = values - 1;
    if (lim.max_values > 0)
        CHECK(jsonv_check(s, size, &lim, NULL) == JSONV_TOO_MANY);
    lim.max_values = values;
    lim.max_depth = depth - 1;
    if (depth > 1)
        CHECK(jsonv_check(s, size, &lim, NULL) == JSONV_TOO_DEEP);
    return 0;
}

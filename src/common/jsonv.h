/* A JSON validator: tells whether a text is JSON, within a depth and a
 * value count, in one pass over the bytes, building nothing and allocating
 * nothing. For text that is only checked and then stored or sent on as it
 * is (a job's result, a stored log line), where parsing it into jansson
 * values would cost memory in proportion to the number of values: a 16 MiB
 * result of "[{},{},...]" is 5.6 million json_t, more than 1 GB.
 *
 * What it accepts is RFC 8259 JSON, exactly what jansson's json_loadb()
 * accepts with JSON_DECODE_ANY | JSON_ALLOW_NUL (any value at the top,
 * \u0000 in strings but not in object keys, strictly valid UTF-8, escaped
 * surrogates only as a high-low pair, duplicate keys), with one difference:
 * numbers of any size are accepted, as RFC 8259 allows. jansson refuses an
 * integer outside int64 ("too big integer") and a real number past the
 * range of a double ("real number overflow"); the validator takes both.
 * jansson also drops a NUL byte that directly follows a number or true,
 * false, null (it accepts "[1\0]"); the validator refuses every NUL byte
 * outside a \u0000 escape. The depth is counted differently too: jansson
 * counts every value on the path (a scalar included), the validator the
 * arrays and objects open at once, so "[[1]]" is 2 deep here. */
#ifndef STRATQ_JSONV_H
#define STRATQ_JSONV_H

#include <errno.h>
#include <stddef.h>

/* The deepest nesting the validator can follow at all: it keeps one bit a
 * level on its own stack (512 bytes). A max_depth of 0, or above this, is
 * this. */
#define JSONV_DEPTH_MAX 4096

struct jsonv_limits {
    /* Arrays and objects open at once: "[]" is 1 deep, "[[1]]" 2, "1" 0.
     * 0: JSONV_DEPTH_MAX. */
    size_t max_depth;
    /* Values in the whole text, the top one included: every element of an
     * array and every member of an object, scalars and containers alike
     * ("[{},{}]" holds 3, a 1M-row series of [ts, price] pairs 3,000,001).
     * 0: no limit. */
    size_t max_values;
};

/* What jsonv_check() returns: 0 or a negative errno, one per reason, so
 * that a caller can say which. The first problem in the text's order is the
 * one reported: a text over a limit before its first syntax error is over
 * the limit. */
enum jsonv_result {
    JSONV_OK = 0,
    JSONV_SYNTAX = -EBADMSG, /* not JSON */
    JSONV_TOO_DEEP = -ELOOP, /* nests deeper than max_depth */
    JSONV_TOO_MANY = -E2BIG, /* holds more than max_values values */
};

/* Checks that buf (len bytes, no terminator needed; NUL bytes are not JSON
 * outside a \u0000 escape) is one JSON value, with optional whitespace
 * around it, within lim (NULL: no value limit, JSONV_DEPTH_MAX deep).
 * Returns a jsonv_result. On failure, *ret_offset (when ret_offset is not
 * NULL) is the byte offset at which the text stopped being valid, or at
 * which the value over a limit starts; it is not written on success. */
int jsonv_check(const char *buf, size_t len, const struct jsonv_limits *lim, size_t *ret_offset);

/* A few words for a jsonv_result ("not JSON", "nested too deep", "too many
 * values", "valid"), for log lines. */
const char *jsonv_result_name(int r);

#endif

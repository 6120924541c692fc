/* Unit tests for src/common/jsonv.c: the validator's answers, offsets and
 * limits, and a differential check against jansson (json_loadb with
 * JSON_DECODE_ANY | JSON_ALLOW_NUL), which it must agree with on every
 * text but those holding a number jansson cannot hold. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonv.h"
#include "common/util.h"

/* A text with its length, so that it may hold NUL bytes. */
struct text {
    const char *s;
    size_t len;
};
#define T(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

static const struct text valid[] = {
    T("0"),
    T("-0"),
    T("1"),
    T("-1"),
    T("1.5"),
    T("-0.0e0"),
    T("1e5"),
    T("1E+5"),
    T("1e-5"),
    T("123456789"),
    T("9223372036854775807"),
    T("-9223372036854775808"),
    T("1.7976931348623157e308"),
    T("1e-400"),
    T("true"),
    T("false"),
    T("null"),
    T("\"\""),
    T("\"a\""),
    T("[]"),
    T("{}"),
    T(" [ ] "),
    T("\t\n\r[1]\r\n"),
    T("[1,2,3]"),
    T("[ 1 , 2 ]"),
    T("{\"a\":1,\"b\":[true,false,null]}"),
    T("{ \"a\" : 1 , \"b\" : { } }"),
    T("{\"a\":1,\"a\":2}"),
    T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    T("\"\\u0041\""),
    T("\"\\u00e9\\u00E9\""),
    T("\"\\uD83D\\uDE00\""),
    T("\"\\ud83d\\ude00\""),
    T("\"\\uDBFF\\uDFFF\""),
    T("\"\\u0000\""),
    T("[\"a\\u0000b\"]"),
    T("{\"k\":\"\\u0000\"}"),
    T("\"\xc3\xa9\""),
    T("\"\xe2\x82\xac\""),
    T("\"\xf0\x9f\x98\x80\""),
    T("\"\xf4\x8f\xbf\xbf\""),
    T("\"\xef\xbf\xbf\""),
    T("\"\xed\x9f\xbf\""),
    T("\"\xee\x80\x80\""),
    T("\"\x7f\""),
    T("[[[[]]]]"),
    T("{\"\":{}}"),
    T("{\"k\\u00e9\":1}"),
    T("{\"\xc3\xa9\":[{}]}"),
    T("[{},{},{}]"),
    T("[[1,2],[3,4.5e-3]]"),
};

static const struct text invalid[] = {
    T(""),
    T(" "),
    T("\n\t"),
    T("["),
    T("]"),
    T("{"),
    T("}"),
    T("[1,]"),
    T("[,1]"),
    T("[1,,2]"),
    T("{\"a\"}"),
    T("{\"a\":}"),
    T("{\"a\":1,}"),
    T("{,}"),
    T("{1:2}"),
    T("{'a':1}"),
    T("{a:1}"),
    T("[1 2]"),
    T("{\"a\":1 \"b\":2}"),
    T("[\"a\":1]"),
    T("{\"a\",1}"),
    T("[true false]"),
    T("01"),
    T("-01"),
    T("00"),
    T("+1"),
    T(".5"),
    T("1."),
    T("1.e5"),
    T("1e"),
    T("1e+"),
    T("1E-"),
    T("-"),
    T("--1"),
    T("-a"),
    T("0x10"),
    T("1.5.3"),
    T("1e5e5"),
    T("tru"),
    T("True"),
    T("nul"),
    T("nulll"),
    T("truefalse"),
    T("1true"),
    T("nan"),
    T("NaN"),
    T("Infinity"),
    T("-Infinity"),
    T("\""),
    T("\"abc"),
    T("\"\\\""),
    T("\"\\"),
    T("\"\\x\""),
    T("\"\\'\""),
    T("\"\\u12\""),
    T("\"\\u12G4\""),
    T("\"\\U0041\""),
    T("\"\\uD800\""),
    T("\"\\uDC00\""),
    T("\"\\uDFFF\\uD800\""),
    T("\"\\uD800\\u0041\""),
    T("\"\\uD800\\uD800\""),
    T("\"\\uD800x\""),
    T("\"\\uD800\\n\""),
    T("\"\\uD800\\"),
    T("\"\\uD800\\uDC0\""),
    T("\"\t\""),
    T("\"\n\""),
    T("\"\x1f\""),
    T("\"a\0b\""),
    T("\0"),
    T("1\0"),
    T("[1\0]"),
    T("[1]\0"),
    T("{\"\\u0000\":1}"),
    T("{\"a\\u0000b\":1}"),
    T("\"\xc3\""),
    T("\"\xc3\x28\""),
    T("\"\x80\""),
    T("\"\xbf\""),
    T("\"\xc0\xaf\""),
    T("\"\xc1\xbf\""),
    T("\"\xe0\x80\xaf\""),
    T("\"\xe0\x9f\xbf\""),
    T("\"\xed\xa0\x80\""),
    T("\"\xed\xbf\xbf\""),
    T("\"\xf0\x8f\xbf\xbf\""),
    T("\"\xf4\x90\x80\x80\""),
    T("\"\xf5\x80\x80\x80\""),
    T("\"\xf8\x88\x80\x80\x80\""),
    T("\"\xfe\""),
    T("\"\xff\""),
    T("\"\xe2\x82\""),
    T("\"\xf0\x9f\x98\""),
    T("\xef\xbb\xbf[]"),
    T("\xc2\xa0 1"),
    T("[1]x"),
    T("[1] [2]"),
    T("1 2"),
    T("{}{}"),
    T("[]]"),
    T("[[]"),
    T("[}"),
    T("{]"),
    T("\v[]"),
    T("\f1"),
    T("/* c */ 1"),
    T("// c\n1"),
    T("\"a\"\"b\""),
    T("[\"\xc3\xa9\" \xc3\xa9]"),
};

/* Numbers jansson cannot hold: the validator takes them, as RFC 8259
 * does. */
static const struct text big_numbers[] = {
    T("9223372036854775808"),
    T("-9223372036854775809"),
    T("123456789012345678901234567890"),
    T("[1,{\"a\":-99999999999999999999999}]"),
    T("1e400"),
    T("-1e400"),
    T("1.8e308"),
    T("[1E+999]"),
};

static int check(const struct text *t)
{
    return jsonv_check(t->s, t->len, NULL, NULL);
}

static const char *show(const char *s, size_t len)
{
    static char buf[400];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < sizeof(buf); i++) {
        unsigned char c = (unsigned char)s[i];
        o +=
            (size_t)snprintf(buf + o, sizeof(buf) - o, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

/* jansson drops a NUL byte that directly follows a number or true, false,
 * null (its reader takes a NUL for "nothing buffered" when the byte is put
 * back), so it accepts "1\0" and "[true\0]". The validator refuses any NUL
 * byte outside a \u0000 escape. Returns whether s is JSON to the validator
 * once those bytes are dropped, as jansson reads it. */
static bool valid_as_jansson_reads(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    size_t n = 0;
    assert_non_null(copy);
    for (size_t i = 0; i < len; i++)
        if (s[i] || i == 0 || !strchr("0123456789el", s[i - 1]))
            copy[n++] = s[i];
    bool ok = jsonv_check(copy, n, NULL, NULL) == JSONV_OK;
    free(copy);
    return ok;
}

/* The validator (no limits) and jansson agree on s; texts jansson refuses
 * for a number it cannot hold, or for its own depth limit (2048, counting
 * scalars), are not compared. */
static void agree(const char *s, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    int r = jsonv_check(s, len, NULL, NULL);
    if (!j && (json_error_code(&e) == json_error_numeric_overflow ||
               json_error_code(&e) == json_error_stack_overflow))
        return;
    if (j && r != JSONV_OK && memchr(s, '\0', len) && valid_as_jansson_reads(s, len)) {
        json_decref(j);
        return;
    }
    if ((j != NULL) != (r == JSONV_OK))
        fail_msg("'%s' (%zu bytes): jansson %s (%s), jsonv %s", show(s, len), len,
                 j ? "accepts" : "refuses", j ? "" : e.text, jsonv_result_name(r));
    json_decref(j);
}

/* Each text of set gives want, and jansson agrees. */
static void check_all(const struct text *set, size_t n, int want)
{
    for (size_t i = 0; i < n; i++) {
        if (check(&set[i]) != want)
            fail_msg("'%s': %s, expected %s", show(set[i].s, set[i].len),
                     jsonv_result_name(check(&set[i])), jsonv_result_name(want));
        agree(set[i].s, set[i].len);
    }
}

static void test_valid(void **state)
{
    (void)state;
    check_all(valid, ARRAY_SIZE(valid), JSONV_OK);
}

static void test_invalid(void **state)
{
    (void)state;
    check_all(invalid, ARRAY_SIZE(invalid), JSONV_SYNTAX);
}

static void test_big_numbers_are_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(big_numbers); i++) {
        const struct text *t = &big_numbers[i];
        json_error_t e;
        assert_int_equal(check(t), JSONV_OK);
        /* jansson refuses each, for its size alone. */
        assert_null(json_loadb(t->s, t->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e));
        assert_int_equal(json_error_code(&e), json_error_numeric_overflow);
    }
}

static void expect_at(const char *s, int want, size_t offset, const struct jsonv_limits *lim)
{
    size_t got = (size_t)-1;
    int r = jsonv_check(s, strlen(s), lim, &got);
    if (r != want || got != offset)
        fail_msg("'%s': %s at %zu, expected %s at %zu", s, jsonv_result_name(r), got,
                 jsonv_result_name(want), offset);
}

static void test_error_offsets(void **state)
{
    (void)state;
    /* Where each text stops being JSON. */
    static const struct {
        const char *s;
        size_t offset;
    } cases[] = {
        {"", 0},
        {"   ", 3},
        {"[1,]", 3},
        {"[1 2]", 3},
        {"\"abc", 4},
        {"{\"a\":1}x", 7},
        {"{\"a\":1} \n x", 10},
        {"01", 1},
        {"1.x", 2},
        {"[\"\\uD800\"]", 2},
        {"\"ab\\u12x4\"", 7},
        {"[\"\xc3\x28\"]", 2},
        {"{\"a\":nul}", 8},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        expect_at(cases[i].s, JSONV_SYNTAX, cases[i].offset, NULL);
    /* On success the offset is left alone. */
    size_t untouched = 42;
    assert_int_equal(jsonv_check("[1]", 3, NULL, &untouched), JSONV_OK);
    assert_int_equal(untouched, 42);
}

static void test_depth_limit(void **state)
{
    (void)state;
    const struct jsonv_limits three = {.max_depth = 3};
    expect_at("[[[]]]", JSONV_OK, (size_t)-1, &three);
    expect_at("[[[1,\"x\",true]]]", JSONV_OK, (size_t)-1, &three);
    expect_at("[[[[]]]]", JSONV_TOO_DEEP, 3, &three);
    expect_at("{\"a\":{\"b\":{\"c\":{}}}}", JSONV_TOO_DEEP, 15, &three);
    expect_at("[[], [[]], [[[{}]]]]", JSONV_TOO_DEEP, 13, &three);
    expect_at("1", JSONV_OK, (size_t)-1, &three);

    /* JSONV_DEPTH_MAX deep is the most there is, whatever the limit says,
     * and far past it costs nothing but the scan (no recursion). */
    size_t n = 100000;
    char *deep = malloc(2 * n);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    const struct jsonv_limits huge = {.max_depth = 1u << 30};
    size_t at = 0;
    assert_int_equal(jsonv_check(deep, 2 * n, &huge, &at), JSONV_TOO_DEEP);
    assert_int_equal(at, JSONV_DEPTH_MAX);
    assert_int_equal(jsonv_check(deep, 2 * n, NULL, &at), JSONV_TOO_DEEP);
    assert_int_equal(at, JSONV_DEPTH_MAX);
    assert_int_equal(jsonv_check(deep + n - JSONV_DEPTH_MAX, 2 * JSONV_DEPTH_MAX, NULL, NULL),
                     JSONV_OK);
    assert_int_equal(
        jsonv_check(deep + n - JSONV_DEPTH_MAX - 1, 2 * JSONV_DEPTH_MAX + 2, NULL, NULL),
        JSONV_TOO_DEEP);
    /* Unbalanced: the end comes first. */
    assert_int_equal(jsonv_check(deep, 1000, NULL, &at), JSONV_SYNTAX);
    assert_int_equal(at, 1000);
    free(deep);
}

static void test_value_limit(void **state)
{
    (void)state;
    const struct jsonv_limits three = {.max_values = 3}, two = {.max_values = 2},
                              one = {.max_values = 1};
    expect_at("[{},{}]", JSONV_OK, (size_t)-1, &three);
    expect_at("[{},{}]", JSONV_TOO_MANY, 4, &two);
    expect_at("{\"a\":1,\"b\":2}", JSONV_OK, (size_t)-1, &three);
    expect_at("{\"a\":1,\"b\":2}", JSONV_TOO_MANY, 11, &two);
    expect_at("5", JSONV_OK, (size_t)-1, &one);
    expect_at("[]", JSONV_OK, (size_t)-1, &one);
    expect_at("[0]", JSONV_TOO_MANY, 1, &one);
    /* The first problem in the text's order is the one reported. */
    expect_at("[1,2,3,x]", JSONV_TOO_MANY, 3, &two);
    expect_at("[x,1,2,3]", JSONV_SYNTAX, 1, &two);

    /* No limit: a million values. */
    size_t n = 1000000, len = 3 * n + 1;
    char *many = malloc(len);
    assert_non_null(many);
    many[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(many + 1 + 3 * i, i + 1 < n ? "{}," : "{}]", 3);
    assert_int_equal(jsonv_check(many, len, NULL, NULL), JSONV_OK);
    const struct jsonv_limits exact = {.max_values = n + 1}, less = {.max_values = n};
    assert_int_equal(jsonv_check(many, len, &exact, NULL), JSONV_OK);
    size_t at = 0;
    assert_int_equal(jsonv_check(many, len, &less, &at), JSONV_TOO_MANY);
    assert_int_equal(at, len - 3);
    free(many);
}

/* Every text of up to 4 symbols from an alphabet of JSON's punctuation and
 * the starts of its tokens. */
static void test_differential_short_texts(void **state)
{
    (void)state;
    static const char alphabet[] = "[]{},:\"01-.e \\ut";
    size_t k = sizeof(alphabet) - 1;
    char s[4];
    for (size_t len = 0; len <= 4; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= k;
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t i = 0; i < len; i++, v /= k)
                s[i] = alphabet[v % k];
            agree(s, len);
        }
    }
}

/* Every two-byte sequence in a string and outside one; three- and
 * four-byte ones around the edges of UTF-8 (overlong forms, surrogates, past U+10FFFF, cut
 * off). */
static void test_differential_utf8(void **state)
{
    (void)state;
    static const unsigned char tails[] = {0x00, 0x22, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                          0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff};
    char s[8];
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            s[0] = '"';
            s[1] = (char)a;
            s[2] = (char)b;
            s[3] = '"';
            agree(s, 4);
            agree(s + 1, 2); /* outside a string */
        }
    for (unsigned a = 0xe0; a < 0x100; a++)
        for (size_t b = 0; b < sizeof(tails); b++)
            for (size_t c = 0; c < sizeof(tails); c++)
                for (size_t d = 0; d < sizeof(tails); d++) {
                    s[0] = '[';
                    s[1] = '"';
                    s[2] = (char)a;
                    s[3] = (char)tails[b];
                    s[4] = (char)tails[c];
                    s[5] = (char)tails[d];
                    s[6] = '"';
                    s[7] = ']';
                    agree(s, 8);
                    agree(s, 7);
                }
}

/* Every \uXXXX alone, in a value and in a key; and surrogate pairs. */
static void test_differential_escapes(void **state)
{
    (void)state;
    char s[64];
    for (unsigned u = 0; u < 0x10000; u++) {
        int n = snprintf(s, sizeof(s), "\"\\u%04x\"", u);
        agree(s, (size_t)n);
        n = snprintf(s, sizeof(s), "{\"k\\u%04X\":0}", u);
        agree(s, (size_t)n);
    }
    static const unsigned units[] = {0x0000, 0x0041, 0xd7ff, 0xd800, 0xd801, 0xdbff,
                                     0xdc00, 0xdc01, 0xdfff, 0xe000, 0xfffe, 0xffff};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        for (size_t j = 0; j < ARRAY_SIZE(units); j++) {
            int n = snprintf(s, sizeof(s), "[\"\\u%04x\\u%04x\"]", units[i], units[j]);
            agree(s, (size_t)n);
            n = snprintf(s, sizeof(s), "\"\\u%04x\\\\u%04x\"", units[i], units[j]);
            agree(s, (size_t)n);
            n = snprintf(s, sizeof(s), "\"\\u%04x\\u%02x\"", units[i], units[j] & 0xff);
            agree(s, (size_t)n);
            n = snprintf(s, sizeof(s), "{\"\\u%04x\\u%04x\":1}", units[i], units[j]);
            agree(s, (size_t)n);
        }
}

/* Random edits of the corpus (a fixed seed: the same texts every run). */
static void test_differential_mutations(void **state)
{
    (void)state;
    static const char bytes[] = "[]{},:\"\\/0123456789-+.eEuUtrfalsn \t\r\n\x01\x7f\x80\xbf\xc3"
                                "\xe2\xed\xf0\xf4\xff";
    uint64_t x = 0x9e3779b97f4a7c15u;
    char buf[256];
    for (int iter = 0; iter < 200000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t pick = x % (ARRAY_SIZE(valid) + ARRAY_SIZE(invalid));
        const struct text *t =
            pick < ARRAY_SIZE(valid) ? &valid[pick] : &invalid[pick - ARRAY_SIZE(valid)];
        size_t len = t->len;
        memcpy(buf, t->s, len);
        for (int edits = 1 + (int)((x >> 8) % 3); edits > 0; edits--) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t at = len ? (x >> 16) % (len + 1) : 0;
            char b = bytes[(x >> 40) % (sizeof(bytes) - 1)];
            switch (x % 3) {
            case 0: /* insert */
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = b;
                    len++;
                }
                break;
            case 1: /* delete */
                if (at < len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: /* replace */
                if (at < len)
                    buf[at] = b;
                break;
            }
        }
        agree(buf, len);
    }
}

/* Deep texts around jansson's own limit: agreement up to it. */
static void test_differential_depth(void **state)
{
    (void)state;
    size_t n = JSON_PARSER_MAX_DEPTH - 1;
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    memset(s, '[', n);
    s[n] = '1';
    memset(s + n + 1, ']', n);
    agree(s, 2 * n + 1);
    agree(s, 2 * n); /* one ']' short */
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_big_numbers_are_accepted),
        cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_value_limit),
        cmocka_unit_test(test_differential_short_texts),
        cmocka_unit_test(test_differential_utf8),
        cmocka_unit_test(test_differential_escapes),
        cmocka_unit_test(test_differential_mutations),
        cmocka_unit_test(test_differential_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

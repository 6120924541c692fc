/* Unit tests for src/common/util.c and src/common/frame.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/frame.h"
#include "common/util.h"

static void test_ids_are_unique_valid_and_ordered(void **state)
{
    (void)state;
    char a[UTIL_ID_LEN + 1], b[UTIL_ID_LEN + 1];
    util_new_id(a);
    util_new_id(b);
    assert_int_equal(strlen(a), UTIL_ID_LEN);
    assert_true(util_valid_id(a));
    assert_string_not_equal(a, b);
    /* The first 12 characters are the time in ms: b was made no earlier. */
    assert_true(strncmp(a, b, 12) <= 0);
}

static void test_valid_id(void **state)
{
    (void)state;
    assert_true(util_valid_id("abc-DEF_123"));
    assert_false(util_valid_id(""));
    assert_false(util_valid_id("a:b"));
    assert_false(util_valid_id("../x"));
    assert_false(util_valid_id("a b"));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_false(util_valid_id(long_id));
    long_id[64] = '\0';
    assert_true(util_valid_id(long_id));
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    char *s = util_utf8_sanitize("ok \xc3\xa9 \xff end", 12);
    assert_string_equal(s, "ok \xc3\xa9 \xef\xbf\xbd end");
    free(s);
    /* Overlong encodings and surrogates are replaced; NUL is dropped. */
    s = util_utf8_sanitize("\xc0\xaf|\xed\xa0\x80|a\0b", 10);
    assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|ab");
    free(s);
    /* A sequence cut off at the end of the buffer. */
    s = util_utf8_sanitize("x\xe2\x82", 3);
    assert_string_equal(s, "x\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
}

static void test_frame_roundtrip(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    json_t *msg = json_pack("{s:s, s:i}", "id", "abc", "attempt", 2);
    assert_int_equal(frame_send_json(sv[0], msg), 0);
    json_decref(msg);
    json_t *got = NULL;
    assert_int_equal(frame_recv_json(sv[1], &got), 0);
    assert_string_equal(json_string_value(json_object_get(got, "id")), "abc");
    assert_int_equal(json_integer_value(json_object_get(got, "attempt")), 2);
    json_decref(got);
    close(sv[0]);
    /* A clean end of stream is -EPIPE; no message is made. */
    got = NULL;
    assert_int_equal(frame_recv_json(sv[1], &got), -EPIPE);
    assert_null(got);
    close(sv[1]);
}

static void test_frame_truncated_is_protocol_error(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    const unsigned char partial[] = {0, 0, 0, 10, '{', '"'};
    assert_int_equal(write(sv[0], partial, sizeof(partial)), (ssize_t)sizeof(partial));
    close(sv[0]);
    json_t *got = NULL;
    assert_int_equal(frame_recv_json(sv[1], &got), -EPROTO);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_unique_valid_and_ordered),
        cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test(test_frame_truncated_is_protocol_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/common/util.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

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

static char **make_strv(size_t n)
{
    char **v = calloc(n + 1, sizeof(char *));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        assert_true(asprintf(&v[i], "S%zu=%zu", i, i) > 0);
    return v;
}

/* steal_pointer hands a value on with its own type and leaves NULL behind,
 * so the variable's _cleanup_ frees nothing; strv cleanup frees every
 * string and the array (AddressSanitizer's leak check would see one left). */
static void test_steal_pointer_and_strv(void **state)
{
    (void)state;
    char **kept = NULL;
    {
        _cleanup_strv_ char **v = make_strv(3);
        _cleanup_free_ char *s = strdup("taken");
        _cleanup_strv_ char **dropped = make_strv(2);
        char *got = steal_pointer(&s);
        assert_null(s);
        assert_string_equal(got, "taken");
        free(got);
        kept = steal_pointer(&v);
        assert_null(v);
        (void)dropped;
    }
    assert_string_equal(kept[2], "S2=2");
    assert_null(kept[3]);
    assert_null(util_strv_free(kept));
    assert_null(util_strv_free(NULL));
    int fd = dup(0), taken = steal_fd(&fd);
    assert_int_equal(fd, -1);
    assert_true(taken >= 0);
    close(taken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_unique_valid_and_ordered),
        cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_steal_pointer_and_strv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/worker/capture.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/capture.h"

#define CHUNK 65536

struct pipe_fixture {
    int r, w;
    char chunk[CHUNK];
};

static int setup(void **state)
{
    struct pipe_fixture *f = calloc(1, sizeof(*f));
    int p[2];
    if (!f || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    f->r = p[0];
    f->w = p[1];
    memset(f->chunk, 'x', sizeof(f->chunk));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct pipe_fixture *f = *state;
    if (f->r >= 0)
        close(f->r);
    if (f->w >= 0)
        close(f->w);
    free(f);
    return 0;
}

/* Writes n bytes of f->chunk (a pipe holds 64 KiB: one chunk fits). */
static void put(struct pipe_fixture *f, size_t n)
{
    assert_int_equal(write(f->w, f->chunk, n), (ssize_t)n);
}

static void test_keeps_up_to_the_limit_then_drops_and_flags(void **state)
{
    struct pipe_fixture *f = *state;
    struct capture c = {.limit = 100000};
    size_t total = 0;

    put(f, CHUNK);
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    assert_int_equal(c.len, CHUNK);
    assert_false(c.overflow);
    put(f, CHUNK);
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    assert_int_equal(c.len, 100000);
    assert_int_equal(total, 100000);
    assert_true(c.overflow);
    assert_int_equal(c.buf[c.len], '\0');
    assert_true(c.cap <= c.limit + 1);
    /* Past the limit the pipe is still drained, and nothing more kept. */
    put(f, CHUNK);
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    assert_int_equal(c.len, 100000);
    /* Nothing ready: not the end. */
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    close(f->w);
    f->w = -1;
    assert_int_equal(capture_read(f->r, &c, &total, 0), 0);
    free(c.buf);
}

static void test_exactly_the_limit_is_no_overflow(void **state)
{
    struct pipe_fixture *f = *state;
    struct capture c = {.limit = 1000};
    size_t total = 0;

    put(f, 1000);
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    assert_int_equal(c.len, 1000);
    assert_false(c.overflow);
    put(f, 1);
    assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
    assert_true(c.overflow);
    free(c.buf);
}

static void test_a_shared_limit_counts_both_streams(void **state)
{
    struct pipe_fixture *f = *state;
    struct capture out = {.limit = 1500}, err = {.limit = 1500};
    size_t total = 0;

    put(f, 1000);
    assert_int_equal(capture_read(f->r, &out, &total, 1500), 1);
    put(f, 1000);
    assert_int_equal(capture_read(f->r, &err, &total, 1500), 1);
    assert_int_equal(out.len, 1000);
    assert_int_equal(err.len, 500);
    assert_int_equal(total, 1500);
    assert_false(out.overflow);
    assert_true(err.overflow);
    assert_memory_equal(err.buf, f->chunk, 500);
    free(out.buf);
    free(err.buf);
}

/* Reading a result up to the default 16 MiB cap, 64 KiB at a time, grows
 * the buffer geometrically: a handful of reallocations, not one per read
 * (which copied the buffer 256 times, quadratic in its size, and made a job
 * whose result was too large end as a timeout). */
static void test_the_buffer_grows_geometrically(void **state)
{
    struct pipe_fixture *f = *state;
    const size_t limit = 16 * 1024 * 1024;
    struct capture c = {.limit = limit};
    size_t total = 0, grown = 0, cap = 0;

    for (size_t i = 0; i < limit / CHUNK + 1; i++) {
        put(f, CHUNK);
        assert_int_equal(capture_read(f->r, &c, &total, 0), 1);
        assert_true(c.len < c.cap && c.cap <= limit + 1);
        if (c.cap != cap)
            grown++;
        cap = c.cap;
    }
    assert_int_equal(c.len, limit);
    assert_true(c.overflow);
    assert_memory_equal(c.buf + limit - CHUNK, f->chunk, CHUNK);
    assert_true(grown <= 10);
    free(c.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keeps_up_to_the_limit_then_drops_and_flags, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exactly_the_limit_is_no_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_shared_limit_counts_both_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_buffer_grows_geometrically, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

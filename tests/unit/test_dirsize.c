/* Unit tests for src/worker/dirsize.c. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/dirsize.h"

struct tree {
    char path[64];
    int fd;
};

static int setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    snprintf(t->path, sizeof(t->path), "/tmp/stratq-dirsize-XXXXXX");
    if (!t || !mkdtemp(t->path))
        return -1;
    t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *state = t;
    return t->fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    struct tree *t = *state;
    char cmd[128];
    close(t->fd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->path);
    int r = system(cmd);
    free(t);
    return r == 0 ? 0 : -1;
}

/* Writes LEN bytes (not zeros: no hole) to NAME in DIRFD. */
static void file_of(int dirfd, const char *name, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    for (size_t done = 0; done < len; done += sizeof(buf))
        assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
    close(fd);
}

static void counts_files_in_nested_directories(void **state)
{
    struct tree *t = *state;
    assert_int_equal(mkdirat(t->fd, "a", 0700), 0);
    int a = openat(t->fd, "a", O_RDONLY | O_DIRECTORY);
    assert_int_equal(mkdirat(a, "b", 0700), 0);
    int b = openat(a, "b", O_RDONLY | O_DIRECTORY);
    file_of(t->fd, "top", 1 << 20);
    file_of(b, "deep", 2 << 20);
    assert_int_equal(symlinkat("/usr", a, "link"), 0); /* not followed */
    struct dir_usage u;
    assert_int_equal(dir_usage(t->fd, &u, 1000, 64), 0);
    assert_true(u.bytes >= 3 << 20);
    assert_true(u.bytes < (3 << 20) + (1 << 20));
    assert_int_equal(u.entries, 5); /* a, b, top, deep, link */
    assert_false(u.too_many);
    /* Past max_depth nothing is counted: b's file is two levels down. */
    assert_int_equal(dir_usage(t->fd, &u, 1000, 2), 0);
    assert_true(u.bytes < (2 << 20));
    close(a);
    close(b);
}

static void stops_at_max_entries(void **state)
{
    struct tree *t = *state;
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        file_of(t->fd, name, 4096);
    }
    struct dir_usage u;
    assert_int_equal(dir_usage(t->fd, &u, 20, 64), 0);
    assert_true(u.too_many);
    assert_int_equal(u.entries, 20);
    assert_int_equal(dir_usage(t->fd, &u, 50, 64), 0);
    assert_false(u.too_many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(counts_files_in_nested_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(stops_at_max_entries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

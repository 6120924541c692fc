/* Helpers shared by unit tests (tests/unit/test_*.c). Static inline, so a
 * test that uses one does not compile the others into warnings. Included
 * after cmocka.h. */
#ifndef STRATQ_TESTS_UNIT_H
#define STRATQ_TESTS_UNIT_H

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"

/* Reads fd to its end into buf, NUL-terminated; the test fails when that
 * takes past deadline_ms (util_mono_ms()) or more than len - 1 bytes. */
static inline void unit_read_to_end(int fd, char *buf, size_t len, int64_t deadline_ms)
{
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = deadline_ms - util_mono_ms();
        assert_true(left > 0);
        assert_int_equal(poll(&p, 1, (int)left), 1);
        ssize_t n = read(fd, buf + got, len - 1 - got);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
        assert_true(got < len - 1);
    }
    buf[got] = '\0';
}

/* Removes a test's temporary directory and what it holds: 0, or -1 for a
 * teardown to return. */
static inline int unit_rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif

/* What the libFuzzer targets (tests/fuzz/fuzz_*.c) share: CHECK(cond)
 * aborts, naming the condition and where it stands, when an invariant does
 * not hold, so that libFuzzer saves the input as a crash. */
#ifndef STRATQ_FUZZ_CHECK_H
#define STRATQ_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif

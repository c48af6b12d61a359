/*
 * unit.h: the whole unit-test framework.  A test file defines test
 * functions, lists them in main() with UNIT_RUN, and ends with
 * UNIT_SUMMARY(), which prints "N passed, N failed" (the line CI reads)
 * and returns the exit status.  A failed CHECK reports file:line and the
 * expression, and the test goes on so one run shows every failure.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>

static int unit_passed, unit_failed, unit_current_failed;

#define CHECK(expr)                                                         \
    do {                                                                    \
        if (!(expr)) {                                                      \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",                  \
                    __FILE__, __LINE__, #expr);                             \
            unit_current_failed = 1;                                        \
        }                                                                   \
    } while (0)

#define UNIT_RUN(fn)                                                        \
    do {                                                                    \
        unit_current_failed = 0;                                            \
        fn();                                                               \
        if (unit_current_failed) {                                          \
            unit_failed++;                                                  \
            fprintf(stderr, "not ok - %s\n", #fn);                          \
        } else {                                                            \
            unit_passed++;                                                  \
            printf("ok - %s\n", #fn);                                       \
        }                                                                   \
    } while (0)

#define UNIT_SUMMARY()                                                      \
    (printf("%d passed, %d failed\n", unit_passed, unit_failed),            \
     unit_failed ? 1 : 0)

#endif /* UNIT_H */

/* Unit tests for src/common/histogram.c: the quantiles `stratq monitor`
 * estimates from the job-duration and queue-wait histograms, as
 * Prometheus' histogram_quantile() makes them, with the expected numbers
 * written out. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "common/histogram.h"

/* Within rounding of the expected value (which is exact in decimal). */
#define assert_near(got, want)                                                                     \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= 1e-9 * (fabs(w_) > 1 ? fabs(w_) : 1)))                              \
            fail_msg("%s is %.17g, not %.17g", #got, g_, w_);                                      \
    } while (0)

/* A histogram of the n bounds le and cumulative counts cum, count in all. */
static struct histogram make(size_t n, const double *le, const long long *cum, long long count,
                             double sum)
{
    struct histogram h = {.n = n, .count = count, .sum = sum};
    memcpy(h.le, le, n * sizeof(*le));
    memcpy(h.cum, cum, n * sizeof(*cum));
    return h;
}

static void test_the_rank_is_interpolated_within_its_bucket(void **state)
{
    (void)state;
    /* 2 in [0, 1], 4 in (1, 2], 2 in (2, 5], 2 above 5. */
    const double le[] = {1, 2, 5};
    const long long cum[] = {2, 6, 8};
    struct histogram h = make(3, le, cum, 10, 25);
    assert_near(histogram_quantile(&h, 0.1), 0.5);    /* rank 1: half of [0, 1] */
    assert_near(histogram_quantile(&h, 0.25), 1.125); /* rank 2.5: 0.5 of 4 into (1, 2] */
    assert_near(histogram_quantile(&h, 0.5), 1.75);   /* rank 5: 3 of 4 into (1, 2] */
    assert_near(histogram_quantile(&h, 0.7), 3.5);    /* rank 7: 1 of 2 into (2, 5] */
    assert_near(histogram_quantile(&h, 0.8), 5);      /* rank 8: the top of (2, 5] */
    assert_near(histogram_quantile(&h, 1), 5);
    assert_near(histogram_mean(&h), 2.5);
}

static void test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound(void **state)
{
    (void)state;
    const double le[] = {1, 2, 5};
    const long long cum[] = {2, 6, 8};
    struct histogram h = make(3, le, cum, 10, 25);
    assert_near(histogram_quantile(&h, 0.81), 5);
    assert_near(histogram_quantile(&h, 0.95), 5);
    /* Everything above the finite buckets. */
    const long long none[] = {0, 0, 0};
    h = make(3, le, none, 4, 100);
    assert_near(histogram_quantile(&h, 0.5), 5);
    assert_near(histogram_quantile(&h, 0.95), 5);
    assert_near(histogram_mean(&h), 25);
}

static void test_empty_histograms_give_nan(void **state)
{
    (void)state;
    const double le[] = {1, 2, 5};
    const long long cum[] = {0, 0, 0};
    struct histogram h = make(3, le, cum, 0, 0);
    assert_true(isnan(histogram_quantile(&h, 0.5)));
    assert_true(isnan(histogram_quantile(&h, 0.95)));
    assert_true(isnan(histogram_mean(&h)));
    /* No finite bucket: nothing to interpolate in. */
    h = make(0, le, cum, 3, 6);
    assert_true(isnan(histogram_quantile(&h, 0.5)));
    assert_near(histogram_mean(&h), 2);
    /* Out of range, as Prometheus answers. */
    h = make(3, le, (const long long[]){1, 2, 3}, 3, 3);
    assert_true(isinf(histogram_quantile(&h, -0.1)) && histogram_quantile(&h, -0.1) < 0);
    assert_true(isinf(histogram_quantile(&h, 1.5)) && histogram_quantile(&h, 1.5) > 0);
    assert_true(isnan(histogram_quantile(&h, NAN)));
}

static void test_one_bucket(void **state)
{
    (void)state;
    const double le[] = {10};
    struct histogram h = make(1, le, (const long long[]){4}, 4, 12);
    assert_near(histogram_quantile(&h, 0.5), 5);
    assert_near(histogram_quantile(&h, 0.95), 9.5);
    assert_near(histogram_mean(&h), 3);
    /* Half of them above it. */
    h = make(1, le, (const long long[]){4}, 8, 100);
    assert_near(histogram_quantile(&h, 0.25), 5);
    assert_near(histogram_quantile(&h, 0.5), 10);
    assert_near(histogram_quantile(&h, 0.95), 10);
}

static void test_job_times_in_one_bucket_of_queue_buckets(void **state)
{
    (void)state;
    /* QUEUE_BUCKETS in ms, as the monitor reads them from GET /v1/queue:
     * 4 runs of 1.2 to 1.4 s all fall in (1000, 2500]. */
    const double le[] = {5,    10,   25,    50,    100,   250,    500,    1000,
                         2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000};
    const long long cum[] = {0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4};
    struct histogram h = make(16, le, cum, 4, 5200);
    assert_near(histogram_quantile(&h, 0.5), 1750);
    assert_near(histogram_quantile(&h, 0.95), 2425);
    assert_near(histogram_mean(&h), 1300);
}

static void test_counts_are_made_monotonic(void **state)
{
    (void)state;
    /* A lower bucket holding more than the next one: the next is taken to
     * hold as many, as Prometheus does. */
    const double le[] = {1, 2};
    struct histogram h = make(2, le, (const long long[]){3, 2}, 4, 4);
    assert_near(histogram_quantile(&h, 0.5), 2.0 / 3.0);
    assert_near(histogram_quantile(&h, 0.95), 2);
    /* A bound at or below 0 holding the rank is the answer itself. */
    const double le0[] = {0, 1};
    h = make(2, le0, (const long long[]){2, 4}, 4, 1);
    assert_near(histogram_quantile(&h, 0.25), 0);
    assert_near(histogram_quantile(&h, 0.75), 0.5);
}

static void test_sub_gives_what_came_between_two_readings(void **state)
{
    (void)state;
    const double le[] = {1, 2, 5};
    struct histogram then = make(3, le, (const long long[]){2, 6, 8}, 10, 25);
    struct histogram now = make(3, le, (const long long[]){2, 10, 12}, 16, 36.5);
    struct histogram d;
    assert_true(histogram_sub(&now, &then, &d));
    assert_int_equal(d.n, 3);
    assert_int_equal(d.cum[0], 0);
    assert_int_equal(d.cum[1], 4);
    assert_int_equal(d.cum[2], 4);
    assert_int_equal(d.count, 6);
    assert_near(d.sum, 11.5);
    assert_near(histogram_quantile(&d, 0.5), 1.75); /* rank 3 of 4 in (1, 2] */
    assert_near(histogram_quantile(&d, 0.95), 5);   /* rank 5.7: in +Inf */
    /* The same reading twice: nothing between them. */
    assert_true(histogram_sub(&now, &now, &d));
    assert_int_equal(d.count, 0);
    assert_true(isnan(histogram_quantile(&d, 0.5)));

    /* A reset in between (a count went down), or other bounds: refused. */
    assert_false(histogram_sub(&then, &now, &d));
    assert_int_equal(d.n, 0);
    struct histogram reset = make(3, le, (const long long[]){0, 1, 1}, 20, 1);
    assert_false(histogram_sub(&reset, &then, &d));
    const double other[] = {1, 2, 10};
    struct histogram moved = make(3, other, (const long long[]){2, 10, 12}, 16, 36.5);
    assert_false(histogram_sub(&moved, &then, &d));
    struct histogram fewer = make(2, le, (const long long[]){2, 10}, 16, 36.5);
    assert_false(histogram_sub(&fewer, &then, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_rank_is_interpolated_within_its_bucket),
        cmocka_unit_test(test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound),
        cmocka_unit_test(test_empty_histograms_give_nan),
        cmocka_unit_test(test_one_bucket),
        cmocka_unit_test(test_job_times_in_one_bucket_of_queue_buckets),
        cmocka_unit_test(test_counts_are_made_monotonic),
        cmocka_unit_test(test_sub_gives_what_came_between_two_readings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

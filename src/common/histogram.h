/* Cumulative histograms as Prometheus keeps them (the job-duration and
 * queue-wait ones of GET /metrics, which GET /v1/queue also gives as JSON),
 * and the estimates `stratq monitor` takes from them: quantiles the way
 * Prometheus' histogram_quantile() makes them, the mean from the sum and
 * the count, and the histogram of the observations between two readings.
 * Pure functions: no I/O, no clock, no allocation. */
#ifndef STRATQ_HISTOGRAM_H
#define STRATQ_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>

/* The most finite buckets a histogram has here (QUEUE_BUCKETS has 16). */
#define HISTOGRAM_MAX 32

/* le[i]: the finite upper bounds, ascending; cum[i]: the observations
 * <= le[i] (cumulative, as a Prometheus `_bucket{le=...}`); count: every
 * observation (the +Inf bucket); sum: their total. The unit is the
 * caller's. */
struct histogram {
    size_t n;
    double le[HISTOGRAM_MAX];
    long long cum[HISTOGRAM_MAX];
    long long count;
    double sum;
};

/* The q-quantile (0 <= q <= 1) as histogram_quantile() estimates it: the
 * bucket holding rank q * count is found, and the value is interpolated
 * linearly between its lower bound (the previous bucket's upper bound, 0
 * for the first) and its upper bound, by where the rank falls among the
 * bucket's observations. A rank in the +Inf bucket gives the highest finite
 * upper bound. NAN when there is no observation or no finite bucket. */
double histogram_quantile(const struct histogram *h, double q);

/* sum / count; NAN when there is no observation. */
double histogram_mean(const struct histogram *h);

/* *ret = now - then: the observations made between two readings of the
 * same histogram. false (and *ret zeroed) when the two do not have the same
 * bounds or a count of now is below then's (the histogram was reset in
 * between). */
bool histogram_sub(const struct histogram *now, const struct histogram *then,
                   struct histogram *ret);

#endif

#include "histogram.h"

#include <math.h>
#include <string.h>

/* Prometheus' bucketQuantile (promql/quantile.go), over the finite buckets
 * and the +Inf one that count stands for. Counts are made monotonic first,
 * as it does: a bucket never holds fewer than the one below it. */
double histogram_quantile(const struct histogram *h, double q)
{
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    size_t n = h->n < HISTOGRAM_MAX ? h->n : HISTOGRAM_MAX;
    long long cum[HISTOGRAM_MAX];
    for (size_t i = 0; i < n; i++)
        cum[i] = i && h->cum[i] < cum[i - 1] ? cum[i - 1] : h->cum[i];
    long long total = n && cum[n - 1] > h->count ? cum[n - 1] : h->count;
    if (!n || total <= 0)
        return NAN;
    double rank = q * (double)total;
    size_t b = 0;
    while (b < n && (double)cum[b] < rank)
        b++;
    if (b == n)
        return h->le[n - 1];
    if (b == 0 && h->le[0] <= 0)
        return h->le[0];
    double start = b ? h->le[b - 1] : 0, end = h->le[b];
    double count = (double)(cum[b] - (b ? cum[b - 1] : 0));
    if (b)
        rank -= (double)cum[b - 1];
    if (count <= 0)
        return start;
    return start + (end - start) * (rank / count);
}

double histogram_mean(const struct histogram *h)
{
    return h->count > 0 ? h->sum / (double)h->count : NAN;
}

bool histogram_sub(const struct histogram *now, const struct histogram *then, struct histogram *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (now->n != then->n || now->n > HISTOGRAM_MAX || now->count < then->count)
        return false;
    for (size_t i = 0; i < now->n; i++)
        if (now->le[i] != then->le[i] || now->cum[i] < then->cum[i])
            return false;
    ret->n = now->n;
    for (size_t i = 0; i < now->n; i++) {
        ret->le[i] = now->le[i];
        ret->cum[i] = now->cum[i] - then->cum[i];
    }
    ret->count = now->count - then->count;
    ret->sum = now->sum - then->sum;
    return true;
}

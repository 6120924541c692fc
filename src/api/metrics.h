/* GET /metrics, and the count of jobs this API created, which it adds to
 * the cluster-wide counters in Redis about once a second. */
#ifndef STRATQ_API_METRICS_H
#define STRATQ_API_METRICS_H

struct server;
struct metrics;

/* Serves GET /metrics and starts the flushes. Caller frees with
 * metrics_free() after metrics_stop() and server_stop(). */
int metrics_new(struct server *s, struct metrics **ret);
/* Flushes what is counted and stops the timer. */
void metrics_stop(struct metrics *m);
void metrics_free(struct metrics *m);
/* n more jobs created (added with the next flush). */
void metrics_add_submitted(struct metrics *m, long long n);

#endif

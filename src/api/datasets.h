/* GET /v1/datasets: the CSV files of STRATQ_DATA_DIR, which jobs read with
 * ctx.dataset(name). The directory is read by a thread of its own, never
 * on the event loop, at most once a DATASETS_MAX_AGE_MS; requests in
 * between are answered from the last listing. */
#ifndef STRATQ_API_DATASETS_H
#define STRATQ_API_DATASETS_H

/* A listing answers requests for this long after its scan began. */
#define DATASETS_MAX_AGE_MS 1000
/* A request waits this long for a scan, then gets 503. */
#define DATASETS_SCAN_TIMEOUT_MS 2000
/* Datasets in one listing (the first found). */
#define DATASETS_MAX 1000

struct server;
struct datasets;

/* Serves GET /v1/datasets from dir ("" for none: an empty list). Caller
 * frees with datasets_free() after datasets_stop(). */
int datasets_new(struct server *s, const char *dir, struct datasets **ret);
/* Waits for a scan under way and answers the requests waiting for it 503. */
void datasets_stop(struct datasets *d);
void datasets_free(struct datasets *d);

#endif

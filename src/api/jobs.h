/* The job routes of the API: submit (one or a batch), read (now or when the
 * job finishes: ?wait=), result, logs, cancel, retry, list; the queue and
 * the workers; the job statuses. */
#ifndef STRATQ_API_JOBS_H
#define STRATQ_API_JOBS_H

#include <stddef.h>

#include "../common/job.h"

struct server;
struct events;
struct metrics;
struct jobs;

struct jobs_settings {
    struct job_limits lim; /* a spec's defaults and bounds */
    size_t max_body;       /* STRATQ_MAX_BODY */
    long long failed_ttl;  /* a cancelled job's expiry, s */
};

/* Serves the job routes; a ?wait= read waits on ev, a new job is counted
 * in m. Caller frees with jobs_free() after server_stop(). */
int jobs_new(struct server *s, struct events *ev, struct metrics *m,
             const struct jobs_settings *set, struct jobs **ret);
void jobs_free(struct jobs *j);

#endif

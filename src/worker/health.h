/* The worker's health port (STRATQ_HEALTH_PORT): a small HTTP server on its
 * own thread, so that it answers even while the worker's loop is blocked in
 * Redis or waiting on a job.
 *
 *   GET /livez    200 while the worker's loop turns and its executor is up
 *                 (a Kubernetes liveness probe: not tied to Redis, so an
 *                 outage of Redis does not restart every worker)
 *   GET /healthz  200 when, besides, Redis is connected; else 503, with
 *                 which check failed
 *   GET /readyz   200 when the worker is registered, connected and not
 *                 draining (ready for jobs)
 *   GET /metrics  Prometheus text: busy/idle, jobs by status, job durations,
 *                 executor restarts, sandbox layers, RSS
 *
 * The worker's loop reports its state with health_update() and the other
 * calls below; they are cheap (a mutex) and do nothing when the port is
 * off. */
#ifndef STRATQ_HEALTH_H
#define STRATQ_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

/* Starts the server on bind:port. Returns 0, or -errno. */
int health_start(const char *bind, int port, const char *worker_id);

/* The loop's state, each time it turns. */
void health_update(const char *state, bool redis_connected, bool executor_up, bool registered);

/* A job finished with status after wall_ms. */
void health_job_done(const char *status, long long wall_ms);

/* The executor was restarted (after a crash, or a job that killed it). */
void health_executor_restarted(void);

/* The sandbox layers as the executor reported them (JSON). */
void health_set_sandbox(const char *layers_json);

/* Stops the server and its thread. */
void health_stop(void);

#endif

/* The job statuses: the one list of every value a job hash's `status` field
 * holds, with the properties the rest of stratq asks about. The Lua scripts
 * get it as a table prepended to each of them (queue_status_lua), the API
 * serves it (GET /v1/statuses, which the dashboard loads), and a test checks
 * docs/protocol.md's table against it; nothing else spells the list. */
#ifndef STRATQ_QUEUE_STATUS_H
#define STRATQ_QUEUE_STATUS_H

#include <jansson.h>
#include <stdbool.h>

/* The properties a status has, as bits; X(ID, key) gives each one's key in
 * the JSON and Lua forms.
 * - TERMINAL: the job will not change again unless it is retried.
 * - RETRYABLE: POST /v1/jobs/{id}/retry queues it again (retry.lua).
 * - AUTO_RETRY: a run that ends so, of a job with attempts left
 *   (max_attempts), is scheduled to run again by complete.lua instead of
 *   being final.
 * - CANCELLABLE: DELETE /v1/jobs/{id} cancels it (cancel.lua).
 * - FAILURE: the job failed; the dashboard's failed page lists it. A
 *   cancelled job did not fail: it was stopped on request.
 * - INDEXED: the status has a listing index of its own
 *   (<prefix>:{<queue>}:index:<status>), written when a job enters it. The
 *   statuses every job passes through (queued, running, succeeded) have
 *   none, so that a job's common path writes no index but `all`: their
 *   listings filter the `all` index instead (list.lua). */
#define QUEUE_STATUS_PROPS(X)                                                                      \
    X(TERMINAL, "terminal")                                                                        \
    X(RETRYABLE, "retryable")                                                                      \
    X(AUTO_RETRY, "auto_retry")                                                                    \
    X(CANCELLABLE, "cancellable")                                                                  \
    X(FAILURE, "failure")                                                                          \
    X(INDEXED, "indexed")

enum {
#define X(id, key) QUEUE_STATUS_BIT_##id,
    QUEUE_STATUS_PROPS(X)
#undef X
};
enum {
#define X(id, key) QUEUE_##id = 1u << QUEUE_STATUS_BIT_##id,
    QUEUE_STATUS_PROPS(X)
#undef X
};

/* X(ID, name, properties, meaning). The order is the order every list and
 * table shows (the terminal ones in the order of the per-status metrics).
 * The meaning is Markdown, as docs/protocol.md shows it. */
#define QUEUE_STATUS_TABLE(X)                                                                      \
    X(QUEUED, "queued", QUEUE_CANCELLABLE, "waiting in the queue")                                 \
    X(SCHEDULED, "scheduled", QUEUE_CANCELLABLE | QUEUE_INDEXED,                                   \
      "failed, timed out or crashed with attempts left (`max_attempts`); waits in "                \
      "`<base>:scheduled` until `next_run_ms`, then goes back to the queue")                       \
    X(RUNNING, "running", QUEUE_CANCELLABLE, "a worker is running it")                             \
    X(SUCCEEDED, "succeeded", QUEUE_TERMINAL,                                                      \
      "the entrypoint returned a JSON-serializable value, now in `result`")                        \
    X(FAILED, "failed",                                                                            \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_AUTO_RETRY | QUEUE_FAILURE | QUEUE_INDEXED,         \
      "the strategy raised (error type is the exception class, with its traceback), returned "     \
      "something that is not JSON-serializable (`ResultNotSerializable`), or had an invalid "      \
      "spec (`InvalidSpec`)")                                                                      \
    X(TIMEOUT, "timeout",                                                                          \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_AUTO_RETRY | QUEUE_FAILURE | QUEUE_INDEXED,         \
      "ran past `timeout_s`; its whole process group was killed")                                  \
    X(MEMORY_EXCEEDED, "memory_exceeded",                                                          \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_FAILURE | QUEUE_INDEXED,                            \
      "ran out of memory under `memory_mb`")                                                       \
    X(CPU_EXCEEDED, "cpu_exceeded",                                                                \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_FAILURE | QUEUE_INDEXED,                            \
      "used up its CPU-time limit")                                                                \
    X(OUTPUT_EXCEEDED, "output_exceeded",                                                          \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_FAILURE | QUEUE_INDEXED,                            \
      "printed more than `STRATQ_MAX_OUTPUT` bytes, or returned a result over "                    \
      "`STRATQ_MAX_RESULT` bytes, `STRATQ_MAX_RESULT_DEPTH` levels or `STRATQ_MAX_RESULT_VALUES` " \
      "values")                                                                                    \
    X(CRASHED, "crashed",                                                                          \
      QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_AUTO_RETRY | QUEUE_FAILURE | QUEUE_INDEXED,         \
      "the interpreter died without reporting (a signal, `os._exit`), or the executor running "    \
      "it died")                                                                                   \
    X(CANCELLED, "cancelled", QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_INDEXED,                    \
      "cancelled through `DELETE /v1/jobs/{id}`: at once when it was waiting, by its worker "      \
      "within a second when it was running")                                                       \
    X(DEAD, "dead", QUEUE_TERMINAL | QUEUE_RETRYABLE | QUEUE_FAILURE | QUEUE_INDEXED,              \
      "gave up: attempts exhausted, lost its worker `STRATQ_MAX_DELIVERIES` times, or an "         \
      "invalid spec; `dead_reason` says which, and the id is in `<base>:dead`")

enum queue_status {
#define X(id, name, props, meaning) QUEUE_STATUS_##id,
    QUEUE_STATUS_TABLE(X)
#undef X
        QUEUE_STATUS__COUNT
};

/* What a cancel request of a running job publishes on the events channel
 * and the API answers (202): not a status, the job stays running until its
 * worker records cancelled. */
#define QUEUE_CANCELLING "cancelling"

/* Upper bounds (seconds) of the job-duration and queue-wait histograms:
 * the Redis-wide ones of GET /metrics and each worker's own (health.c). */
#define QUEUE_BUCKETS                                                                              \
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600
extern const double queue_buckets[];
extern const int queue_nbuckets;

/* The status's name, as stored in Redis. */
const char *queue_status_name(enum queue_status s);
/* The status named name, or -1 for an unknown name or NULL. */
int queue_status_parse(const char *name);
/* Whether s (a status, or -1 from queue_status_parse) has every property
 * of props (QUEUE_TERMINAL | ...). */
bool queue_status_has(int s, unsigned props);
/* Whether the status named name is terminal; false for an unknown name. */
bool queue_status_is_terminal(const char *name);

/* The table as JSON: [{"name", "terminal", "retryable", "auto_retry",
 * "cancellable", "failure", "meaning"}, ...] in table order. Caller frees
 * with json_decref(); NULL when out of memory. */
json_t *queue_status_json(void);

/* The table as a Lua chunk that defines the locals stratq_status: name ->
 * {terminal = true, ...} and stratq_buckets (QUEUE_BUCKETS), prepended to
 * every script (queue.c). Caller frees; NULL when out of memory. */
char *queue_status_lua(void);

#endif

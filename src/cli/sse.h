/* The API's job events (GET /v1/events, Server-Sent Events; docs/api.md)
 * for the client commands that follow jobs: `stratq logs -f` and `stratq
 * monitor`. They wait on the stream's socket (curl's multi interface)
 * instead of asking the API again and again. */
#ifndef STRATQ_SSE_H
#define STRATQ_SSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* No byte for this long (the API sends a keepalive every 15 s) means the
 * connection is dead even if TCP has not noticed. */
#define SSE_SILENCE_MS (45 * 1000)

/* Longest line of the stream in bytes, its '\n' not counted: an event is a
 * few hundred bytes; a longer line ends the stream. */
#define SSE_LINE_MAX (1024 * 1024)

/* Room for an event's name ("event:" field), its NUL included. */
#define SSE_NAME_MAX 32

/* One open event stream. */
struct sse;

/* GETs path from the API as an event stream, waiting up to timeout_ms for
 * its answer: 0 with *ret once the API answered 200 with
 * text/event-stream (from then on it sends every event); -EPROTO when it
 * answered something else (an API without the route: 404), -EIO when it
 * could not be reached or did not answer in time, -EINTR when cli_abort
 * was set; err says which. Caller frees with sse_free(). */
int sse_open(const char *path, int timeout_ms, struct sse **ret, char *err, size_t errlen);

/* Waits up to timeout_ms for the next event's data: 1 with *ret_data
 * (caller frees) and its name in ret_name (empty when it had none), 0 when the time passed, a
 * signal came or cli_abort is set, -ECONNRESET when the stream ended or failed, -ETIMEDOUT after
 * SSE_SILENCE_MS without a byte. Events already received are returned
 * before an end. */
int sse_next(struct sse *s, int timeout_ms, char **ret_data, char ret_name[SSE_NAME_MAX]);

void sse_free(struct sse *s);

/* The job events of GET /v1/events, reconnected after a drop: a failed
 * attempt is retried after 1 s, then 2, 4, ... up to 30 s. */
struct sse_jobs {
    bool outputs; /* sse_jobs_next returns `output` events too (else skips them) */
    struct sse *sse;
    int64_t retry_at_ms; /* monotonic */
    int delay_ms;
};

/* Opens the stream when it is not open and its retry time has come.
 * Returns true when it was opened now: events sent while it was not were
 * missed, so the caller reads again what it keeps. */
bool sse_jobs_connect(struct sse_jobs *j);

/* Waits up to timeout_ms for the next job event (sleeping when the stream
 * is not open): 1 with *ret_event, the event's JSON object ({"id",
 * "status", ...}; caller frees with json_decref()); with outputs set, 2
 * with an `output` event's ({"id", "output": {...}}: a running job wrote
 * output); 0 when the time passed, a signal came or an event of no
 * interest came, -1 when the stream was lost just now (the caller reads
 * again what it keeps; sse_jobs_connect() reopens it). */
int sse_jobs_next(struct sse_jobs *j, int timeout_ms, json_t **ret_event);

/* Whether the stream is open. */
bool sse_jobs_open(const struct sse_jobs *j);

void sse_jobs_close(struct sse_jobs *j);

#endif

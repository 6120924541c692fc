/* The job spec: what a backend submits. Validation is shared by the API
 * (which refuses bad specs with 400) and the worker (which fails a job whose
 * spec was enqueued straight into Redis by another backend). */
#ifndef STRATQ_JOB_H
#define STRATQ_JOB_H

#include <jansson.h>
#include <stddef.h>

/* Limits on what a spec may hold, whatever the configuration. */
#define JOB_MAX_DEPTH 64
#define JOB_MAX_PARAMS 1000
/* Retries: max_attempts defaults to 1 (no retry); the delay before retry n
 * is retry_backoff_s * 2^(n-1), capped, with jitter (see job_retry_delay_ms). */
#define JOB_MAX_ATTEMPTS 100
#define JOB_DEFAULT_BACKOFF_S 2
#define JOB_MAX_BACKOFF_S 3600

/* Delay before the retry that follows failure number `failures` (1 for the
 * first): exponential from backoff_s, capped at cap_s, with "equal jitter"
 * (half fixed, half random) so that retries of jobs that failed together
 * spread out. rnd is a uniform random number in [0, 1). */
long long job_retry_delay_ms(double backoff_s, long long failures, double cap_s, double rnd);

struct job_limits {
    long long default_timeout_s, max_timeout_s;
    long long default_memory_mb, max_memory_mb;
};

/* Parses JSON text (duplicate keys refused); on failure the message names
 * the line and column. Caller frees *ret with json_decref(). */
/* The most values a request body may hold, checked (with JOB_MAX_DEPTH)
 * before it is parsed. */
#define JOB_JSON_MAX_VALUES 1000000
int job_json_parse(const char *text, size_t len, json_t **ret, char *err, size_t errlen);

/* Parses a spec from JSON text. On success *ret_spec is a new object with
 * every default filled in (entrypoint, params, timeout_s, memory_mb); caller
 * frees with json_decref(). On failure returns -EINVAL and writes a message
 * naming the field (or the line and column of malformed JSON) into err. */
int job_spec_parse(const char *text, size_t len, const struct job_limits *lim, json_t **ret_spec,
                   char *err, size_t errlen);

/* Where and when a job waits, taken out of a submitted body (these fields
 * are not the spec's): its tenant (the token's, else the body's "tenant",
 * else "default"), its priority ("priority": 0-9, 9 first, or "low" 2,
 * "normal" 5, "high" 8; default 5) and when it may start ("run_at": epoch
 * ms or an RFC 3339 time; or "delay_s": seconds from now; 0 is now). */
#define JOB_TENANT_DEFAULT "default"
#define JOB_MAX_DELAY_S (366LL * 86400)
struct job_placement {
    char tenant[65];
    int priority;
    long long run_at_ms; /* run_at (0: none) */
    long long delay_ms;  /* delay_s, from when it is enqueued (0: none) */
};
/* What the request's token allows: the tenant it submits as ("" or NULL:
 * any) and the highest priority it may ask for (its max_priority= in the
 * tokens file; 9 without one). */
struct job_token {
    const char *tenant;
    int max_priority;
};
/* Removes the fields from spec into *out (tok NULL: no token). 0; -EINVAL
 * for a bad field, -EPERM for a tenant other than the token's or a
 * priority above its max_priority, with a message in err. */
int job_placement_take(json_t *spec, const struct job_token *tok, long long now_ms,
                       struct job_placement *out, char *err, size_t errlen);
/* An RFC 3339 time ("2026-12-07T15:00:00Z", "...T15:00:00.250+01:00") as
 * epoch ms; -EINVAL when it is not one. */
int job_parse_rfc3339(const char *s, long long *ms);

/* Validates an already parsed spec and fills its defaults in place. */
int job_spec_normalize(json_t *spec, const struct job_limits *lim, char *err, size_t errlen);

#endif

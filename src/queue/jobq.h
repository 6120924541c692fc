/* Typed calls of the Redis protocol: the only place, with queue.c, that
 * names a key or lays out a script's KEYS and ARGV (in the order of
 * QUEUE_SCRIPT_TABLE, queue.h). A call is first built (queue_call, shared
 * by the worker's synchronous path and the API's asynchronous one), then
 * run: the worker's through its jobq, whose eval hook adds its reconnects
 * and retries; the API's through queue_async_call. */
#ifndef STRATQ_QUEUE_JOBQ_H
#define STRATQ_QUEUE_JOBQ_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"
#include "queue.h"
#include "status.h"

/* One script call (KEYS then ARGV), or one plain command (its name then
 * its arguments), its strings in order. Built by the queue_build_* and
 * jobq_build_* functions; freed with queue_call_free(). */
struct queue_call {
    enum queue_script script;
    bool plain; /* a plain command (a read of a key the caller names), not a script */
    int nkeys, argc, cap;
    /* Whether the worker keeps retrying it through a stop request: its
     * effect must not be lost (start, complete, lost, deadletter,
     * deregister), unlike a heartbeat's or a housekeeping duty's. */
    bool until_done;
    /* A write that must reach STRATQ_REDIS_MIN_REPLICAS replicas before
     * it counts (WAIT): a submit, a job's start and its outcome. */
    bool durable;
    bool nomem; /* a string could not be made; the call is not to be run */
    const char **argv;
    size_t *len;
    char **owned; /* the strings the call made, freed with it */
};

void queue_call_free(struct queue_call *c);

/* Runs a call on a synchronous connection once (queue_sync_eval, or
 * queue_sync_command_argv for a plain command). */
redisReply *queue_sync_call(struct queue_sync *q, const struct queue_call *c);
/* Sends a call on the API's connection (queue_async_eval). */
int queue_async_call(struct queue_async *qa, const struct queue_call *c, queue_async_cb *cb,
                     void *priv);

/* --- The API's calls ------------------------------------------------------- */

/* Each builds its script's call from the names and typed arguments; 0, or
 * -ENOMEM. */
/* client_id: the id came from the client (it may name a job that exists);
 * false for one the API made (util_new_id: 128 random bits). */
/* How a job waits (docs/protocol.md, "Tenants, priorities and fair
 * share"): tenant NULL or "" skips fair share (the id goes on the queue
 * list, FIFO); priority 0-9, 9 first; run_at_ms 0 (or past) is now, a
 * later time makes the job scheduled until then. */
#define QUEUE_PRIORITY_DEFAULT 5
#define QUEUE_PRIORITY_MAX 9
struct queue_submit {
    const char *tenant;
    int priority;
    long long run_at_ms;
};
int queue_build_enqueue(struct queue_call *c, const struct queue_names *n, const char *id,
                        const char *spec, long long now_ms, bool client_id,
                        const struct queue_submit *how);
int queue_build_cancel(struct queue_call *c, const struct queue_names *n, const char *id,
                       long long now_ms, long long cancelled_ttl_s);
int queue_build_retry(struct queue_call *c, const struct queue_names *n, const char *id,
                      long long now_ms);
/* pause.lua of the queue (tenant "*") or one tenant. */
int queue_build_pause(struct queue_call *c, const struct queue_names *n, const char *tenant,
                      bool pause);
/* tenants.lua with fields[0..nfields): field, value, ... */
int queue_build_tenants(struct queue_call *c, const struct queue_names *n,
                        const char *const *fields, size_t nfields);
int queue_build_fair(struct queue_call *c, const struct queue_names *n);
/* Recurring jobs' schedules (docs/protocol.md, "Recurring jobs"):
 * schedule.lua's action "add" (the hash's fields[0..nfields): field,
 * value, ...), "delete", "pause" or "resume"; next_ms, the next fire, for
 * add and resume; tenant, the one the request may act for (NULL or "":
 * any). */
int queue_build_schedule(struct queue_call *c, const struct queue_names *n, const char *action,
                         const char *id, long long now_ms, long long next_ms, const char *tenant,
                         const char *const *fields, size_t nfields);
/* schedules.lua: schedule id (NULL or "": a page of max of every one, from
 * cursor, NULL or "" for the first), of tenant (NULL or "": any). */
int queue_build_schedules(struct queue_call *c, const struct queue_names *n, const char *id,
                          long long max, const char *tenant, const char *cursor);
int queue_build_logs(struct queue_call *c, const struct queue_names *n, const char *id,
                     long long stdout_offset, long long stderr_offset, long long log_offset);
/* A listing page is two calls: list.lua (the ids of the index after the
 * cursor) then page.lua (their jobs, filtered), built from list.lua's
 * reply. status: a status's name or "all"; tenant: the tenant to list, or
 * "" for every one; cursor_score "+inf" and cursor_id "" for the first
 * page. */
int queue_build_list(struct queue_call *c, const struct queue_names *n, const char *status,
                     const char *tenant, const char *cursor_score, const char *cursor_id,
                     long long limit);
/* 0, -ENOMEM, or -EPROTO when ids is not list.lua's reply. */
int queue_build_page(struct queue_call *c, const struct queue_names *n, const char *status,
                     const char *tenant, long long limit, const redisReply *ids);
/* GET /v1/workers, /v1/queue and /metrics are two calls: the workers' ids
 * (ZRANGE of the workers zset), then the script, with each worker's key
 * named, built from that reply (-EPROTO when it is not an array). */
int queue_build_worker_ids(struct queue_call *c, const struct queue_names *n);
/* HGETALL of the job's hash (GET /v1/jobs/{id}, and a waiter's read). */
int queue_build_job_read(struct queue_call *c, const struct queue_names *n, const char *id);
/* HMGET of the job's status and tenant: whether it exists, and whose it is
 * (a tenant's token reaches its own jobs only). */
int queue_build_job_owner(struct queue_call *c, const struct queue_names *n, const char *id);
int queue_build_workers(struct queue_call *c, const struct queue_names *n, const redisReply *ids);
int queue_build_metrics(struct queue_call *c, const struct queue_names *n, const redisReply *ids);
/* count.lua: adds submitted to the stats hash's submitted counter. */
int queue_build_count_submitted(struct queue_call *c, const struct queue_names *n,
                                long long submitted);

/* A histogram: one count per bucket of QUEUE_BUCKETS (an observation
 * counts in the first bucket it fits; not cumulative), the sum and the
 * count. */
struct jobq_histogram {
    long long buckets[32];
    double sum;
    long long count;
};

/* metrics.lua's reply, read: the queue's counts and the stats hash's
 * counters and histograms. */
struct queue_metrics {
    long long pending, processing, scheduled, dead, workers;
    long long waiting, held;          /* fair share: in the backlogs; parked */
    bool paused;                      /* the whole queue */
    const redisReply *paused_tenants; /* the reply's array of them ("*" included) */
    const redisReply *tenants;        /* {tenant, waiting, running, ...} */
    long long submitted;
    long long completed[QUEUE_STATUS__COUNT];
    struct jobq_histogram duration, queue_wait;
};
/* 0, or -EPROTO for a reply that is not metrics.lua's. */
int queue_metrics_parse(const redisReply *r, struct queue_metrics *m);

/* --- The worker's calls ---------------------------------------------------- */

/* Runs a built call; returns its reply (the caller frees it) or NULL when
 * it gave up. The worker's retries through reconnects and busy replies. */
typedef redisReply *jobq_eval_fn(void *priv, const struct queue_call *c);

/* The worker's settings that its calls pass on to the scripts. */
struct jobq_settings {
    long long index_size;     /* STRATQ_INDEX_SIZE, kept by the reaper (trim.lua) */
    long long result_ttl_s;   /* a succeeded job's record */
    long long failed_ttl_s;   /* any other outcome's, and a dead job's */
    long long max_deliveries; /* STRATQ_MAX_DELIVERIES */
    long long live_ttl_s;     /* the live output keys */
};

/* What a worker counted since its last heartbeat (histograms as above), which adds it to the
 * stats hash (heartbeat.lua): no job's own path pays for metrics. */
struct jobq_stats {
    long long completed[QUEUE_STATUS__COUNT];
    struct jobq_histogram duration, queue_wait;
};

/* One worker's side of the protocol. */
struct jobq {
    const struct queue_names *names;
    char *worker; /* its id */
    char *processing_key, *worker_key, *control_channel;
    struct jobq_settings set;
    struct jobq_stats stats;
    jobq_eval_fn *eval;
    void *priv;
};

int jobq_init(struct jobq *j, const struct queue_names *n, const char *worker,
              const struct jobq_settings *set, jobq_eval_fn *eval, void *priv);
void jobq_free(struct jobq *j);

/* Names the connection (CLIENT SETNAME), so that CLIENT LIST shows who is
 * who. */
void queue_sync_setname(struct queue_sync *q, const char *name);

/* BLMOVE of the oldest queue entry into the worker's processing list,
 * blocking up to block_ms (at least 10). Returns 1 with *entry (malloc'd, NUL-terminated,
 * its length in *len: any bytes, not necessarily an id), 0 when none came,
 * -EIO when the connection was lost, -EPROTO with err for an error reply,
 * -ENOMEM. */
int jobq_take(struct jobq *j, struct queue_sync *q, int block_ms, char **entry, size_t *len,
              char *err, size_t errlen);

enum jobq_start_what { JOBQ_RUN, JOBQ_MISSING, JOBQ_SKIP };
struct jobq_start {
    enum jobq_start_what what;
    long long attempt, failures; /* JOBQ_RUN */
    long long created_ms;        /* JOBQ_RUN: when it was submitted (0: unknown) */
    char *spec;                  /* JOBQ_RUN: the spec's text (malloc'd) */
    size_t spec_len;
    char status[40]; /* JOBQ_SKIP: the job's status */
    char id[80];     /* JOBQ_RUN: the job's id (the one a ticket stood for) */
};
int jobq_build_start(const struct jobq *j, struct queue_call *c, const char *id, long long now_us);
/* start.lua for the job id just taken, now_us the time it was taken (µs
 * since the epoch; the job's started_ms and started_us). 0 with *out (free
 * out->spec), or -EIO when it gave up or the reply was not start.lua's. */
int jobq_start(struct jobq *j, const char *id, long long now_us, struct jobq_start *out);

/* What a run came to, for complete.lua. Strings may be NULL (absent). */
struct job_outcome {
    enum queue_status status;
    long long attempt;
    const char *result;    /* JSON text of a succeeded run's value */
    const char *error;     /* JSON text {type, message, traceback} */
    const char *out, *err; /* stdout and stderr (NULL: empty) */
    /* The bytes at result, out and err (as sent: not NUL-terminated); 0
     * for a NUL-terminated string. */
    size_t result_len, out_len, err_len;
    const char *dead_reason; /* why a dead job was given up */
    const char *usage;       /* JSON text {wall_ms, cpu_ms, max_rss_kb} */
    long long max_attempts;  /* the job's; below 1 counts as 1 */
    long long next_run_ms;   /* when it runs again, should it be retried */
    bool live;               /* the run wrote live output or log lines (jobq_output) */
};
int jobq_build_complete(const struct jobq *j, struct queue_call *c, const char *id,
                        const struct job_outcome *o, long long now_ms);
/* complete.lua: 1 recorded, 0 fenced off, 2 recorded already; -EIO when
 * it gave up, -EPROTO for another reply. Counts the outcome and its
 * duration (duration_s) into j->stats when it was recorded. */
int jobq_complete(struct jobq *j, const char *id, const struct job_outcome *o, long long now_ms,
                  double duration_s);
/* Counts an observation into a histogram of j->stats. */
void jobq_observe(struct jobq_histogram *h, double seconds);

/* What a heartbeat writes into the worker's hash. */
struct jobq_worker_info {
    const char *host, *version, *state, *current_job, *sandbox;
    long long pid, started_ms;
    long long jobs_done, jobs_failed; /* since it started */
};
/* with_stats: the call adds j->stats to the stats hash too. */
int jobq_build_heartbeat(const struct jobq *j, struct queue_call *c,
                         const struct jobq_worker_info *info, long long now_ms, long long ttl_ms,
                         bool with_stats);
/* heartbeat.lua, with j->stats when with_stats (cleared once they are
 * added): 0 when registered, -EIO otherwise. */
int jobq_heartbeat(struct jobq *j, const struct jobq_worker_info *info, long long now_ms,
                   long long ttl_ms, bool with_stats);
/* Whether j->stats holds counts not yet added. */
bool jobq_stats_pending(const struct jobq *j);

int jobq_build_forget(const struct jobq *j, struct queue_call *c, const char *worker);
/* Gives back every job in the worker's processing list (lost.lua, the
 * loss not counted) and forgets the worker (forget.lua): the number of
 * jobs given back, or -EIO. */
long long jobq_deregister(struct jobq *j, struct queue_sync *q);
/* After a reconnect: gives back (lost.lua, not counted) every job in the
 * worker's own processing list but current (NULL: none), which Redis may
 * hold after a failover lost the completion of a job the worker has
 * finished. The number given back, or -EIO. */
long long jobq_reconcile(struct jobq *j, struct queue_sync *q, const char *current,
                         long long now_ms);

int jobq_build_promote(const struct jobq *j, struct queue_call *c, const char *id,
                       long long now_ms);
/* Finds the scheduled jobs due by now_ms (retries, and jobs submitted with
 * a later run_at: ZRANGEBYSCORE on q) and promotes each (promote.lua): the
 * number promoted, or -EIO. *next_due_ms gets the time the next one is due
 * (0: none is scheduled). */
long long jobq_promote(struct jobq *j, struct queue_sync *q, long long now_ms,
                       long long *next_due_ms);

/* tick.lua for schedule id, due at due_ms (the score as read), moving on
 * to next_ms (0: none), its job (when it makes one) being job. */
int jobq_build_tick(const struct jobq *j, struct queue_call *c, const char *id, const char *due_ms,
                    long long next_ms, const char *job, long long now_ms);
/* Finds the schedules due by now_ms (ZRANGEBYSCORE of the due zset on q),
 * works out each one's next fire after now_ms (sched.h) and ticks it
 * (tick.lua): the number of jobs made, or -EIO. *next_due_ms gets the time
 * the next schedule is due (0: none is active). */
long long jobq_tick(struct jobq *j, struct queue_sync *q, long long now_ms, long long *next_due_ms);

struct jobq_reaped {
    long long workers, requeued, dead;
};
int jobq_build_reap(const struct jobq *j, struct queue_call *c, long long now_ms,
                    long long silence_ms);
/* Takes the reaper lock for lock_ms (SET NX PX on q) and, when it got it,
 * finds the silent workers (reap.lua), gives their jobs back (lost.lua,
 * the loss counted), forgets them (forget.lua) and trims the listing
 * indexes (trim.lua). 1 with *out when it reaped, 0 when another worker
 * holds the lock or a script gave up, -EIO when the connection was lost. */
int jobq_reap(struct jobq *j, struct queue_sync *q, long long now_ms, long long silence_ms,
              long long lock_ms, struct jobq_reaped *out);

/* worker: whose processing list (NULL: this worker's); counts: whether the
 * loss counts against STRATQ_MAX_DELIVERIES. */
int jobq_build_lost(const struct jobq *j, struct queue_call *c, const char *worker, const char *id,
                    long long now_ms, bool counts);
/* lost.lua for this worker's job whose executor died: 0 with its outcome
 * in what ("requeued", "dead", "" or "?"), -EIO when it gave up. */
int jobq_lost(struct jobq *j, const char *id, long long now_ms, char *what, size_t whatlen);

int jobq_build_deadletter(const struct jobq *j, struct queue_call *c, const char *entry, size_t len,
                          const char *reason, long long now_ms);
/* deadletter.lua for the queue entry (len bytes); 0 or -EIO. */
int jobq_deadletter(struct jobq *j, const char *entry, size_t len, const char *reason,
                    long long now_ms);

/* A chunk of a running job's output (live keys next to its hash). */
struct jobq_output {
    const char *progress;    /* JSON text for the hash's progress field, or NULL */
    const char *const *logs; /* JSON texts of structured log lines */
    size_t nlogs;
    const char *stream[2]; /* stdout and stderr chunks (NULL: none) */
    size_t stream_len[2];
};
/* Writes it, pipelined (HSET, RPUSH, APPEND, each with its EXPIRE), then
 * publishes {"id", "output": {"stdout", "stderr", "log", "progress"}} (the
 * batch's bytes, lines and whether it set progress) on the events channel
 * (SPUBLISH when sharded), in the same round trip; nothing for an empty
 * batch. Best effort: 0, or -EIO when the connection was lost. */
int jobq_output(struct jobq *j, struct queue_sync *q, const char *id, const struct jobq_output *o);

/* Whether a cancel was requested for the job (its hash has
 * cancel_requested_ms): 1 or 0, -EIO when the connection was lost. For
 * when the control channel's subscription was interrupted. */
int jobq_cancel_requested(struct jobq *j, struct queue_sync *q, const char *id);

/* The worker's control channel (cancel.lua publishes a running job's
 * cancel request on it): a subscription on a connection of its own,
 * which the worker polls (jobq_control_fd) while a job runs. On Redis
 * Cluster it is sharded: SSUBSCRIBE on the node owning the queue's slot
 * (conn.h, queue_sync_subscribe). */
struct jobq_control;
int jobq_control_open(struct jobq *j, const struct queue_url *url, int timeout_ms,
                      struct jobq_control **ret, char *err, size_t errlen);
int jobq_control_fd(const struct jobq_control *s);
/* Reads what has arrived (call when its fd is readable): 1 when a cancel
 * request for job id came, 0 when none did, -EIO when the connection was
 * lost or the subscription ended (the slot left the node): free it,
 * subscribe again and read the job's hash for a request made meanwhile. */
int jobq_control_cancel_for(struct jobq_control *s, const char *id);
void jobq_control_free(struct jobq_control *s);

#endif

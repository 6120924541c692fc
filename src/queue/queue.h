/* The Redis protocol: key names, the Lua scripts for every multi-key
 * transition. conn.h runs them (EVALSHA, falling back to EVAL when Redis
 * has lost its script cache). docs/protocol.md documents it. */
#ifndef STRATQ_QUEUE_H
#define STRATQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The scripts of src/queue/lua/: X(ID, name, KEYS, ARGV, reply, returns).
 * KEYS and ARGV are parenthesized lists of names (KEYS by the key they
 * name: <queue> is the queue list, <base> is <prefix>:{<queue>}); a KEYS
 * list whose last name ends in "..." takes any number of keys there; an
 * ARGV list whose last name ends in "..." any number of strings there, or
 * of pairs when two names come before the dots ("field value ..."); (NULL)
 * is no ARGV. "publish" is the command the script publishes its events
 * with, "PUBLISH" or "SPUBLISH" (struct queue_names' sharded). reply is the
 * Redis type of a
 * normal reply, returns its meaning (Markdown, as docs/protocol.md shows it; a test checks that
 * table against `stratq api --scripts`). Every call is checked against its entry
 * (queue_script_check), and the typed calls of jobq.h build their arguments in this order. */
#define QUEUE_SCRIPT_TABLE(X)                                                                      \
    X(ENQUEUE, "enqueue",                                                                          \
      ("<base>:job:<id>", "<queue>", "<base>:index:all", "<base>:scheduled",                       \
       "<base>:index:scheduled"),                                                                  \
      ("id", "spec", "now_ms", "events", "publish", "client_id", "tenant", "priority",             \
       "run_at_ms", "base"),                                                                       \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{1, \"queued\"}` or `{1, \"scheduled\"}` when created; `{0, status, tenant}` when the "    \
      "id exists (left untouched; `tenant` nil for a job without one)")                            \
    X(START, "start", ("<base>:job:<id>", "<base>:processing:<worker>", "<queue>"),                \
      ("id", "worker", "now_ms", "events", "publish", "base"), QUEUE_REPLY_ARRAY,                  \
      "`{\"run\", attempt, spec, failures, waiting_since_ms, id}`; `{\"missing\"}` (no job hash) " \
      "or "                                                                                        \
      "`{\"skip\", status}` (no longer queued; `held` or `none` for a ticket), the entry then "    \
      "taken off the processing list")                                                             \
    X(COMPLETE, "complete",                                                                        \
      ("<base>:job:<id>", "<base>:processing:<worker>", "<base>:job:<id>:stdout",                  \
       "<base>:job:<id>:stderr", "<base>:job:<id>:log", "<base>:scheduled", "<base>:dead",         \
       "<base>:index:<status>", "<base>:index:scheduled", "<base>:index:dead", "<queue>"),         \
      ("id", "worker", "attempt", "now_ms", "events", "publish", "result_ttl_s", "failed_ttl_s",   \
       "max_attempts", "next_run_ms", "status", "live", "base", "field value ..."),                \
      QUEUE_REPLY_INTEGER,                                                                         \
      "1 when recorded, 0 when fenced off (no longer in the worker's processing list), 2 when "    \
      "this outcome was recorded already")                                                         \
    X(HEARTBEAT, "heartbeat", ("<base>:workers", "<base>:worker:<worker>", "<base>:stats"),        \
      ("worker", "now_ms", "ttl_ms", "nstats", "field value ..."), QUEUE_REPLY_INTEGER, "1")       \
    X(FORGET, "forget",                                                                            \
      ("<base>:workers", "<base>:worker:<worker>", "<base>:processing:<worker>"), ("worker"),      \
      QUEUE_REPLY_INTEGER, "the number of ids dropped from the processing list")                   \
    X(CANCEL, "cancel",                                                                            \
      ("<base>:job:<id>", "<queue>", "<base>:scheduled", "<base>:index:cancelled"),                \
      ("id", "now_ms", "events", "publish", "cancelled_ttl_s", "control_prefix", "base"),          \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{\"cancelled\"}` (it was waiting), `{\"cancelling\"}` (it is running), `{\"terminal\", "   \
      "status}` or `{\"missing\"}`")                                                               \
    X(RETRY, "retry", ("<base>:job:<id>", "<queue>", "<base>:dead"),                               \
      ("id", "now_ms", "events", "publish", "base"), QUEUE_REPLY_ARRAY,                            \
      "`{\"queued\", attempts}`, `{\"conflict\", status}` or `{\"missing\"}`")                     \
    X(LIST, "list", ("<base>:index:<status or all>"), ("cursor_score", "cursor_id", "count"),      \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{more, id, score, ...}`: up to `count` ids after the cursor, newest first; more is 1 "     \
      "when the index has more")                                                                   \
    X(PAGE, "page", ("<base>:index:<status or all>", "<base>:job:<id> ..."),                       \
      ("status", "own_index", "limit", "more", "tenant", "id score ..."), QUEUE_REPLY_ARRAY,       \
      "the cursor to resume from (score, id; empty at the end), then 9 entries per job: id, "      \
      "status, attempts, created_ms, started_ms, finished_ms, worker, index score, tenant")        \
    X(WORKERS, "workers", ("<base>:workers", "<base>:worker:<worker> ..."), ("worker ..."),        \
      QUEUE_REPLY_ARRAY, "3 entries per worker: id, last heartbeat (ms), `{field, value, ...}`")   \
    X(LOGS, "logs",                                                                                \
      ("<base>:job:<id>", "<base>:job:<id>:stdout", "<base>:job:<id>:stderr",                      \
       "<base>:job:<id>:log"),                                                                     \
      ("stdout_offset", "stderr_offset", "log_offset"), QUEUE_REPLY_ARRAY,                         \
      "`{status, stdout, stderr, stdout length, stderr length, {log lines}, log count}`, or `{}` " \
      "for an unknown job")                                                                        \
    X(METRICS, "metrics",                                                                          \
      ("<queue>", "<base>:workers", "<base>:scheduled", "<base>:dead", "<base>:stats",             \
       "<base>:processing:<worker> ..."),                                                          \
      ("base"), QUEUE_REPLY_ARRAY,                                                                 \
      "`{pending, processing, scheduled, dead, workers, {bucket bounds}, {stats field, value, "    \
      "...}, waiting, held, {paused}, {tenant, waiting, running, ...}}`")                          \
    X(COUNT, "count", ("<base>:stats"), ("field value ..."), QUEUE_REPLY_INTEGER, "1")             \
    X(REAP, "reap", ("<base>:workers"), ("now_ms", "silence_ms", "worker"), QUEUE_REPLY_ARRAY,     \
      "the ids of the workers silent for `silence_ms`, the caller's own left out")                 \
    X(LOST, "lost",                                                                                \
      ("<base>:processing:<worker>", "<queue>", "<base>:job:<id>", "<base>:dead",                  \
       "<base>:index:dead"),                                                                       \
      ("id", "worker", "now_ms", "events", "publish", "max_deliveries", "dead_ttl_s", "counts",    \
       "base"),                                                                                    \
      QUEUE_REPLY_STRING, "`requeued`, `dead`, or empty when the job was no longer the worker's")  \
    X(PROMOTE, "promote", ("<base>:scheduled", "<queue>", "<base>:job:<id>"),                      \
      ("id", "now_ms", "events", "publish", "base"), QUEUE_REPLY_INTEGER,                          \
      "1 when promoted, else 0")                                                                   \
    X(TRIM, "trim", ("<base>:index:all", "<base>:index:<status> ..."), ("max"),                    \
      QUEUE_REPLY_INTEGER, "the number of index entries removed")                                  \
    X(DEADLETTER, "deadletter", ("<base>:processing:<worker>", "<base>:deadletter"),               \
      ("entry", "reason", "now_ms", "worker", "cap"), QUEUE_REPLY_INTEGER, "1")                    \
    X(PAUSE, "pause", ("<queue>"), ("base", "tenant", "pause", "events", "publish"),               \
      QUEUE_REPLY_INTEGER, "1 when that changed anything, else 0")                                 \
    X(TENANTS, "tenants", ("<queue>"), ("base", "field value ..."), QUEUE_REPLY_INTEGER,           \
      "the number of tenants known")                                                               \
    X(FAIR, "fair", ("<queue>"), ("base"), QUEUE_REPLY_ARRAY,                                      \
      "`{waiting, parked, {paused}, {tenant, waiting, running, weight, cap, ...}}`")               \
    X(SCHEDULE, "schedule", ("<base>:schedule:<id>", "<base>:schedules", "<base>:schedules:due"),  \
      ("action", "id", "now_ms", "next_ms", "tenant", "field value ..."), QUEUE_REPLY_ARRAY,       \
      "`{code, {field, value, ...}}`: the schedule after the change; code 1 done, 2 nothing to "   \
      "change, 0 no such schedule (of this tenant)")                                               \
    X(SCHEDULES, "schedules", ("<base>:schedules"), ("base", "id", "max", "tenant", "cursor"),     \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{next_cursor, {field, value, ...}, ...}`: the cursor of the next page (`\"\"`: none), "    \
      "then each schedule's hash and `last_status`")                                               \
    X(TICK, "tick",                                                                                \
      ("<base>:schedule:<id>", "<base>:schedules:due", "<base>:job:<job>", "<queue>",              \
       "<base>:index:all"),                                                                        \
      ("id", "due_ms", "next_ms", "job", "now_ms", "events", "publish", "base"),                   \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{1, job}` when it made the job, `{2, last job}` when overlap skipped the fire, `{0, "      \
      "\"fenced\"}` or `{0, \"gone\"}`")

/* What the queue list holds for a job waiting by fair share: one ticket
 * per job, turned into the job that is next by fairness when a worker
 * starts it (lib.lua). Never a job id ([A-Za-z0-9_-]). */
#define QUEUE_TICKET "*"

enum queue_reply { QUEUE_REPLY_INTEGER, QUEUE_REPLY_STRING, QUEUE_REPLY_ARRAY };

enum queue_script {
#define X(id, name, keys, args, reply, returns) QS_##id,
    QUEUE_SCRIPT_TABLE(X)
#undef X
        QS__COUNT
};

/* Key names derived from the configured queue name and prefix. Every key
 * but the queue list itself carries the queue's Redis Cluster hash tag,
 * {<queue>}, whose slot is the queue list's own: all of a queue's keys live
 * in one slot, so every script's keys do (docs/protocol.md, "Keys"). */
struct queue_names {
    char *queue;             /* python_execution_queue: the list of pending ids */
    char *prefix;            /* stratq */
    char *base;              /* stratq:{python_execution_queue}, what the rest start with */
    char *events;            /* <base>:events (pub/sub channel) */
    char *workers;           /* <base>:workers */
    char *scheduled;         /* <base>:scheduled */
    char *dead;              /* <base>:dead */
    char *processing_prefix; /* <base>:processing: */
    char *job_prefix;        /* <base>:job: */
    char *worker_prefix;     /* <base>:worker: */
    char *index_prefix;      /* <base>:index: */
    char *control_prefix;    /* <base>:control: (a worker's channel, + its id) */
    char *stats;             /* <base>:stats */
    char *deadletter;        /* <base>:deadletter */
    char *reaper_lock;       /* <base>:reaper:lock */
    char *schedules;         /* <base>:schedules (recurring jobs, by creation) */
    char *schedules_due;     /* <base>:schedules:due (the active ones, by next fire) */
    char *schedule_prefix;   /* <base>:schedule: (+ a schedule's id: its hash) */
    /* Redis Cluster (STRATQ_REDIS_CLUSTER_NODES): the scripts publish with
     * SPUBLISH, sharded pub/sub, which keeps a message on the shard of the
     * channel's slot (the queue's: the channels carry its hash tag) instead
     * of carrying it to every node over the cluster bus, and subscribers
     * SSUBSCRIBE on that slot's node (conn.h's queue_sub, jobq.h's control
     * channel). False, the default, on a plain server: PUBLISH and
     * SUBSCRIBE (Redis 6.2 has no sharded pub/sub). Set by
     * queue_names_init from the URL's seed nodes. */
    bool sharded;
};

/* The names of queue's keys for url's Redis (NULL: a plain server); 0,
 * -EINVAL with err for a queue name that cannot be one (empty, or holding a
 * brace, which would change its hash tag), -ENOMEM. */
struct queue_url;
struct wire_tls;
int queue_names_init(struct queue_names *n, const char *queue, const char *prefix,
                     const struct queue_url *url, char *err, size_t errlen);
void queue_names_free(struct queue_names *n);
/* Key of a job hash, a worker's processing list, a worker hash, a listing
 * index (a status's name or "all"). Caller frees. */
char *queue_job_key(const struct queue_names *n, const char *id);
char *queue_processing_key(const struct queue_names *n, const char *worker);
char *queue_worker_key(const struct queue_names *n, const char *worker);
char *queue_index_key(const struct queue_names *n, const char *status);

/* The script's text as sent to Redis: the status table (status.h's
 * queue_status_lua), lib.lua's helpers, then the script. */
const char *queue_script_source(enum queue_script s);
const char *queue_script_name(enum queue_script s);
/* Frees the assembled script texts (at exit, for leak checkers). */
void queue_scripts_free(void);
/* The number of KEYS the script takes. */
int queue_script_nkeys(enum queue_script s);
/* Whether nkeys keys and argc strings in all (keys included) are what the
 * script's table entry declares. */
bool queue_script_check(enum queue_script s, int nkeys, int argc);
/* The table of scripts as docs/protocol.md shows it (Markdown). */
void queue_scripts_markdown(FILE *f);

/* Parsed redis[s]://[[user]:password@]host[:port][/db] (also "unix:/path"
 * for a Unix socket), with what the other STRATQ_REDIS_* settings add
 * (conn.h's queue_url_configure): TLS files, Cluster seeds, Sentinel. */
struct queue_node {
    char *host;
    int port;
};
struct queue_url {
    char *host; /* or socket path when unix is set */
    int port;
    int db;
    char *user;     /* ACL user (AUTH user password); NULL: "default" */
    char *password; /* percent-decoded */
    int unix_socket;
    /* rediss://: TLS to every node (and to the sentinels). */
    bool tls;
    struct queue_tls {
        char *cacert, *cert, *key, *sni; /* NULL: unset */
        bool insecure;                   /* no certificate or host name check */
    } tls_opt;
    struct wire_tls *tls_ctx; /* loaded from tls_opt (wire.h) */
    /* Redis Cluster's seed nodes (conn.h, queue_url_set_cluster); none
     * for a plain server. */
    struct queue_node *nodes;
    int nnodes;
    /* Sentinel (STRATQ_REDIS_SENTINELS): the primary of master is asked
     * of these; host and port above are then the last primary found. */
    struct queue_node *sentinels;
    int nsentinels;
    char *master;
    char *sentinel_user, *sentinel_password;
    /* Replicas a write must reach (WAIT) before it is acknowledged, and
     * how long to wait for them. */
    int min_replicas;
    int wait_timeout_ms;
};
int queue_url_parse(const char *url, struct queue_url *ret, char *err, size_t errlen);
void queue_url_free(struct queue_url *u);

#endif

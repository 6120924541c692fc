/* The Redis protocol: key names, the Lua scripts for every multi-key
 * transition. conn.h runs them (EVALSHA, falling back to EVAL when Redis
 * has lost its script cache). docs/protocol.md documents it. */
#ifndef STRATQ_QUEUE_H
#define STRATQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The scripts of src/queue/lua/: X(ID, name, KEYS, ARGV, reply, returns).
 * KEYS and ARGV are parenthesized lists of names (KEYS by the default key
 * they name); an ARGV list whose last name ends in "..." takes any number of
 * field/value pairs there. reply is the Redis type of a normal reply,
 * returns its meaning (Markdown, as docs/protocol.md shows it; a test checks
 * that table against `stratq api --scripts`). Every call is checked against
 * its entry (queue_script_check), and the typed calls of jobq.h build their
 * arguments in this order. */
#define QUEUE_SCRIPT_TABLE(X)                                                                      \
    X(ENQUEUE, "enqueue", ("stratq:job:<id>", "python_execution_queue"),                           \
      ("id", "spec", "now_ms", "events", "prefix", "index_size"), QUEUE_REPLY_ARRAY,               \
      "`{1, \"queued\"}` when created; `{0, status}` when the id exists (left untouched)")         \
    X(START, "start", ("stratq:job:<id>", "stratq:processing:<worker>", "stratq:worker:<worker>"), \
      ("id", "worker", "now_ms", "events", "prefix", "index_size"), QUEUE_REPLY_ARRAY,             \
      "`{\"run\", attempt, spec, failures}`; `{\"missing\"}` (no job hash) or `{\"skip\", "        \
      "status}` (no longer queued), the id then taken off the processing list")                    \
    X(COMPLETE, "complete",                                                                        \
      ("stratq:job:<id>", "stratq:processing:<worker>", "stratq:worker:<worker>"),                 \
      ("id", "worker", "attempt", "now_ms", "events", "result_ttl_s", "failed_ttl_s", "prefix",    \
       "index_size", "max_attempts", "next_run_ms", "status", "field value ..."),                  \
      QUEUE_REPLY_INTEGER,                                                                         \
      "1 when recorded, 0 when fenced off (another worker or attempt), 2 when this outcome was "   \
      "recorded already")                                                                          \
    X(HEARTBEAT, "heartbeat", ("stratq:workers", "stratq:worker:<worker>"),                        \
      ("worker", "now_ms", "ttl_ms", "field value ..."), QUEUE_REPLY_INTEGER, "1")                 \
    X(DEREGISTER, "deregister",                                                                    \
      ("stratq:workers", "stratq:worker:<worker>", "stratq:processing:<worker>",                   \
       "python_execution_queue"),                                                                  \
      ("worker", "job_prefix", "events"), QUEUE_REPLY_INTEGER,                                     \
      "the number of jobs given back to the queue")                                                \
    X(STATS, "stats",                                                                              \
      ("python_execution_queue", "stratq:workers", "stratq:scheduled", "stratq:dead"),             \
      ("processing_prefix"), QUEUE_REPLY_ARRAY,                                                    \
      "`{pending, processing, scheduled, dead, workers}`")                                         \
    X(CANCEL, "cancel", ("stratq:job:<id>", "python_execution_queue", "stratq:scheduled"),         \
      ("id", "now_ms", "events", "prefix", "index_size", "cancelled_ttl_s"), QUEUE_REPLY_ARRAY,    \
      "`{\"cancelled\"}` (it was waiting), `{\"cancelling\"}` (it is running), `{\"terminal\", "   \
      "status}` or `{\"missing\"}`")                                                               \
    X(RETRY, "retry", ("stratq:job:<id>", "python_execution_queue", "stratq:dead"),                \
      ("id", "now_ms", "events", "prefix", "index_size"), QUEUE_REPLY_ARRAY,                       \
      "`{\"queued\", attempts}`, `{\"conflict\", status}` or `{\"missing\"}`")                     \
    X(LIST, "list", ("stratq:index:<status>"),                                                     \
      ("cursor_score", "cursor_id", "limit", "job_prefix"), QUEUE_REPLY_ARRAY,                     \
      "8 entries per job: id, status, attempts, created_ms, started_ms, finished_ms, worker, "     \
      "index score")                                                                               \
    X(WORKERS, "workers", ("stratq:workers"), ("worker_prefix"), QUEUE_REPLY_ARRAY,                \
      "3 entries per worker: id, last heartbeat (ms), `{field, value, ...}`")                      \
    X(LOGS, "logs", ("stratq:job:<id>"), ("stdout_offset", "stderr_offset", "log_offset"),         \
      QUEUE_REPLY_ARRAY,                                                                           \
      "`{status, stdout, stderr, stdout length, stderr length, {log lines}, log count}`, or `{}` " \
      "for an unknown job")                                                                        \
    X(METRICS, "metrics",                                                                          \
      ("python_execution_queue", "stratq:workers", "stratq:scheduled", "stratq:dead",              \
       "stratq:stats"),                                                                            \
      ("processing_prefix"), QUEUE_REPLY_ARRAY,                                                    \
      "`{pending, processing, scheduled, dead, workers, {bucket bounds}, {stats field, value, "    \
      "...}}`")                                                                                    \
    X(REAP, "reap", ("stratq:workers", "python_execution_queue"),                                  \
      ("now_ms", "silence_ms", "prefix", "events", "max_deliveries", "index_size", "dead_ttl_s",   \
       "worker"),                                                                                  \
      QUEUE_REPLY_ARRAY, "`{workers reaped, jobs requeued, jobs dead}`")                           \
    X(LOST, "lost", ("stratq:processing:<worker>", "python_execution_queue"),                      \
      ("id", "worker", "now_ms", "prefix", "events", "max_deliveries", "index_size",               \
       "dead_ttl_s"),                                                                              \
      QUEUE_REPLY_STRING, "`requeued`, `dead`, or empty when the job was no longer the worker's")  \
    X(PROMOTE, "promote", ("stratq:scheduled", "python_execution_queue"),                          \
      ("now_ms", "prefix", "events", "index_size"), QUEUE_REPLY_INTEGER,                           \
      "the number of jobs promoted")                                                               \
    X(DEADLETTER, "deadletter", ("stratq:processing:<worker>", "stratq:deadletter"),               \
      ("entry", "reason", "now_ms", "worker", "cap"), QUEUE_REPLY_INTEGER, "1")

enum queue_reply { QUEUE_REPLY_INTEGER, QUEUE_REPLY_STRING, QUEUE_REPLY_ARRAY };

enum queue_script {
#define X(id, name, keys, args, reply, returns) QS_##id,
    QUEUE_SCRIPT_TABLE(X)
#undef X
        QS__COUNT
};

/* Key names derived from the configured queue name and prefix. */
struct queue_names {
    char *queue;             /* python_execution_queue */
    char *prefix;            /* stratq */
    char *events;            /* stratq:events (pub/sub channel) */
    char *workers;           /* stratq:workers */
    char *scheduled;         /* stratq:scheduled */
    char *dead;              /* stratq:dead */
    char *processing_prefix; /* stratq:processing: */
    char *job_prefix;        /* stratq:job: */
    char *worker_prefix;     /* stratq:worker: */
    char *stats;             /* stratq:stats */
    char *deadletter;        /* stratq:deadletter */
    char *reaper_lock;       /* stratq:reaper:lock */
};

int queue_names_init(struct queue_names *n, const char *queue, const char *prefix);
void queue_names_free(struct queue_names *n);
/* Key of a job hash, a worker's processing list, a worker hash. Caller frees. */
char *queue_job_key(const struct queue_names *n, const char *id);
char *queue_processing_key(const struct queue_names *n, const char *worker);
char *queue_worker_key(const struct queue_names *n, const char *worker);

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

/* Parsed redis://[:password@]host[:port][/db] (also rediss-less
 * "unix:/path" for a Unix socket). */
struct queue_url {
    char *host; /* or socket path when unix is set */
    int port;
    int db;
    char *password;
    int unix_socket;
    /* Redis Cluster's seed nodes (conn.h, queue_url_set_cluster); none
     * for a plain server. */
    struct queue_node {
        char *host;
        int port;
    } * nodes;
    int nnodes;
};
int queue_url_parse(const char *url, struct queue_url *ret, char *err, size_t errlen);
void queue_url_free(struct queue_url *u);

#endif

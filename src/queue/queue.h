/* The Redis protocol: key names, the Lua scripts for every multi-key
 * transition, and the calls that run them (EVALSHA, falling back to EVAL
 * when Redis has lost its script cache). docs/protocol.md documents it. */
#ifndef STRATQ_QUEUE_H
#define STRATQ_QUEUE_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

enum queue_script {
    QS_ENQUEUE,
    QS_START,
    QS_COMPLETE,
    QS_HEARTBEAT,
    QS_DEREGISTER,
    QS_STATS,
    QS_CANCEL,
    QS_RETRY,
    QS_LIST,
    QS_WORKERS,
    QS_LOGS,
    QS_METRICS,
    QS_REAP,
    QS_LOST,
    QS_PROMOTE,
    QS_DEADLETTER,
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

/* Parsed redis://[:password@]host[:port][/db] (also rediss-less
 * "unix:/path" for a Unix socket). */
struct queue_url {
    char *host; /* or socket path when unix is set */
    int port;
    int db;
    char *password;
    int unix_socket;
};
int queue_url_parse(const char *url, struct queue_url *ret, char *err, size_t errlen);
void queue_url_free(struct queue_url *u);

/* Read timeout of synchronous connections, in seconds; longer than any
 * blocking command the worker sends. */
#define QUEUE_READ_TIMEOUT_S 10

/* Synchronous connection (worker). Connects, authenticates, selects the db
 * and loads every script. Caller frees with queue_sync_free(). */
struct queue_sync {
    redisContext *c;
    char sha[QS__COUNT][41];
};
int queue_sync_connect(const struct queue_url *url, int timeout_ms, struct queue_sync **ret,
                       char *err, size_t errlen);
void queue_sync_free(struct queue_sync *q);

/* Runs a script with nkeys keys followed by args (argv has nkeys + nargs
 * strings; argvlen may be NULL for NUL-terminated strings). Returns the
 * reply (caller frees with freeReplyObject) or NULL on a connection error. */
redisReply *queue_sync_eval(struct queue_sync *q, enum queue_script s, int nkeys, int argc,
                            const char **argv, const size_t *argvlen);

/* Asynchronous form for the API. shas is filled by queue_async_load(). The
 * callback receives the reply (NULL when the connection failed); hiredis
 * frees it after the callback returns. */
struct queue_async_shas {
    char sha[QS__COUNT][41];
    int loaded;
};
typedef void queue_async_cb(redisReply *reply, void *priv);
int queue_async_load(redisAsyncContext *ac, struct queue_async_shas *shas);
int queue_async_eval(redisAsyncContext *ac, struct queue_async_shas *shas, enum queue_script s,
                     int nkeys, int argc, const char **argv, const size_t *argvlen,
                     queue_async_cb *cb, void *priv);

#endif

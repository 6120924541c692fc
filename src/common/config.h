/* One declarative table of every setting: its flag, environment variable,
 * type, default, bounds, help and the subcommands that read it. The table
 * drives parsing of the environment and of flags, and --help. */
#ifndef STRATQ_CONFIG_H
#define STRATQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Subcommands, as a bit mask. */
enum {
    CMD_API = 1u << 0,
    CMD_WORKER = 1u << 1,
    CMD_EXECUTOR = 1u << 2,
    CMD_UP = 1u << 3,
    CMD_SUBMIT = 1u << 4,
    CMD_STATUS = 1u << 5,
    CMD_RESULT = 1u << 6,
    CMD_QUEUE = 1u << 7,
    CMD_CANCEL = 1u << 8,
    CMD_RETRY = 1u << 9,
    CMD_LOGS = 1u << 10,
    CMD_WORKERS = 1u << 11,
    CMD_JOBS = 1u << 12,
    CMD_MONITOR = 1u << 13,
    CMD_PAUSE = 1u << 14,
    CMD_RESUME = 1u << 15,
    CMD_TENANTS = 1u << 16,
    CMD_SCHEDULE = 1u << 17,
};
#define CMD_CLI                                                                                    \
    (CMD_SUBMIT | CMD_STATUS | CMD_RESULT | CMD_QUEUE | CMD_CANCEL | CMD_RETRY | CMD_LOGS |        \
     CMD_WORKERS | CMD_JOBS | CMD_MONITOR | CMD_PAUSE | CMD_RESUME | CMD_TENANTS | CMD_SCHEDULE)
#define CMD_REDIS (CMD_API | CMD_WORKER | CMD_UP)
#define CMD_ALL 0xffffffffu

enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL };

#define MIB (1024LL * 1024)

/* X(ID, flag, env, type, default, min, max, commands, help) */
#define CONFIG_TABLE(X)                                                                            \
    X(REDIS_URL, "redis-url", "STRATQ_REDIS_URL", CFG_STR, "redis://127.0.0.1:6379", 0, 0,         \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Redis server, redis[s]://[[user]:password@]host[:port][/db] (stratq up starts its own if "  \
      "unset)")                                                                                    \
    X(REDIS_CLUSTER_NODES, "redis-cluster-nodes", "STRATQ_REDIS_CLUSTER_NODES", CFG_STR, "", 0, 0, \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Redis Cluster seed nodes, host:port,host:port,...; the Redis URL's password applies, its "  \
      "host is not used")                                                                          \
    X(REDIS_CACERT, "redis-cacert", "STRATQ_REDIS_CACERT", CFG_STR, "", 0, 0,                      \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "CA bundle (PEM) that signs the Redis server's certificate, for rediss:// (default: the "    \
      "system's)")                                                                                 \
    X(REDIS_CERT, "redis-cert", "STRATQ_REDIS_CERT", CFG_STR, "", 0, 0,                            \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Client certificate (PEM) for rediss://, when Redis has tls-auth-clients yes")               \
    X(REDIS_KEY, "redis-key", "STRATQ_REDIS_KEY", CFG_STR, "", 0, 0,                               \
      CMD_API | CMD_WORKER | CMD_UP, "Private key (PEM) of the client certificate")                \
    X(REDIS_SNI, "redis-sni", "STRATQ_REDIS_SNI", CFG_STR, "", 0, 0,                               \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Server name sent in the TLS handshake and checked against the certificate (default: the "   \
      "host)")                                                                                     \
    X(REDIS_TLS_INSECURE, "redis-tls-insecure", "STRATQ_REDIS_TLS_INSECURE", CFG_BOOL, "false", 0, \
      0, CMD_API | CMD_WORKER | CMD_UP,                                                            \
      "Do not verify the Redis server's certificate or host name (testing only; logged loudly)")   \
    X(REDIS_SENTINELS, "redis-sentinels", "STRATQ_REDIS_SENTINELS", CFG_STR, "", 0, 0,             \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Redis Sentinel nodes, host:port,host:port,...: the primary is asked of them (the Redis "    \
      "URL's host is not used)")                                                                   \
    X(REDIS_SENTINEL_MASTER, "redis-sentinel-master", "STRATQ_REDIS_SENTINEL_MASTER", CFG_STR,     \
      "mymaster", 0, 0, CMD_API | CMD_WORKER | CMD_UP,                                             \
      "Name of the primary the sentinels monitor")                                                 \
    X(REDIS_SENTINEL_PASSWORD, "redis-sentinel-password", "STRATQ_REDIS_SENTINEL_PASSWORD",        \
      CFG_STR, "", 0, 0, CMD_API | CMD_WORKER | CMD_UP,                                            \
      "Password of the sentinels themselves ([user:]password), when they have one")                \
    X(REDIS_MIN_REPLICAS, "redis-min-replicas", "STRATQ_REDIS_MIN_REPLICAS", CFG_INT, "-1", -1,    \
      100, CMD_API | CMD_WORKER | CMD_UP,                                                          \
      "Replicas that must have a submit or a completion (WAIT) before it is acknowledged; -1: 1 "  \
      "with Sentinel, else 0")                                                                     \
    X(REDIS_WAIT_TIMEOUT, "redis-wait-timeout", "STRATQ_REDIS_WAIT_TIMEOUT_MS", CFG_INT, "2000",   \
      10, 60000, CMD_API | CMD_WORKER | CMD_UP,                                                    \
      "Longest wait for the replicas, in ms; then the submit fails with 503 (the worker retries)") \
    X(QUEUE, "queue", "STRATQ_QUEUE", CFG_STR, "python_execution_queue", 0, 0, CMD_REDIS,          \
      "Redis list holding the ids of pending jobs")                                                \
    X(PREFIX, "prefix", "STRATQ_PREFIX", CFG_STR, "stratq", 0, 0, CMD_REDIS,                       \
      "Prefix of every other Redis key and channel (then {queue}, its hash tag)")                  \
    X(API_BIND, "bind", "STRATQ_API_BIND", CFG_STR, "127.0.0.1", 0, 0, CMD_API | CMD_UP,           \
      "Address the HTTP API listens on")                                                           \
    X(API_PORT, "port", "STRATQ_API_PORT", CFG_INT, "8080", 0, 65535, CMD_API | CMD_UP,            \
      "Port the HTTP API listens on")                                                              \
    X(MAX_BODY, "max-body", "STRATQ_MAX_BODY", CFG_INT, "16777216", 1024, 1024 * MIB, CMD_API,     \
      "Largest request body the API accepts, in bytes (larger: 413)")                              \
    X(DEFAULT_TIMEOUT, "default-timeout", "STRATQ_DEFAULT_TIMEOUT_S", CFG_INT, "300", 1, 86400,    \
      CMD_API | CMD_WORKER | CMD_UP, "Wall-clock timeout of a job that names none, in seconds")    \
    X(MAX_TIMEOUT, "max-timeout", "STRATQ_MAX_TIMEOUT_S", CFG_INT, "3600", 1, 86400,               \
      CMD_API | CMD_WORKER | CMD_UP, "Largest timeout_s a job may ask for")                        \
    X(DEFAULT_MEMORY, "default-memory", "STRATQ_DEFAULT_MEMORY_MB", CFG_INT, "1024", 64, 1048576,  \
      CMD_API | CMD_WORKER | CMD_UP, "Memory limit of a job that names none, in MiB")              \
    X(MAX_MEMORY, "max-memory", "STRATQ_MAX_MEMORY_MB", CFG_INT, "4096", 64, 1048576,              \
      CMD_API | CMD_WORKER | CMD_UP, "Largest memory_mb a job may ask for")                        \
    X(RESULT_TTL, "result-ttl", "STRATQ_RESULT_TTL", CFG_INT, "86400", 0, 315360000,               \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Seconds a succeeded job's record is kept in Redis (0: forever)")                            \
    X(FAILED_RESULT_TTL, "failed-result-ttl", "STRATQ_FAILED_RESULT_TTL", CFG_INT, "604800", 0,    \
      315360000, CMD_API | CMD_WORKER | CMD_UP,                                                    \
      "Seconds the record of a job that did not succeed is kept (0: forever)")                     \
    X(INDEX_SIZE, "index-size", "STRATQ_INDEX_SIZE", CFG_INT, "10000", 10, 10000000,               \
      CMD_API | CMD_WORKER | CMD_UP,                                                               \
      "Jobs kept in each listing index (GET /v1/jobs; workers trim)")                              \
    X(TENANTS, "tenants", "STRATQ_TENANTS", CFG_STR, "", 0, 0, CMD_API | CMD_UP,                   \
      "Tenants' fair-share weights and caps: 'name:weight=2,max_running=4 ...' ('*': the rest)")   \
    X(TOKENS_FILE, "tokens-file", "STRATQ_API_TOKENS_FILE", CFG_STR, "", 0, 0, CMD_API | CMD_UP,   \
      "File of API bearer tokens, one per line; unset: no auth, loopback only")                    \
    X(MAX_CONNECTIONS, "max-connections", "STRATQ_MAX_CONNECTIONS", CFG_INT, "1024", 1, 1000000,   \
      CMD_API | CMD_UP, "Open client connections the API serves; more get 503")                    \
    X(CLIENT_TIMEOUT, "client-timeout", "STRATQ_CLIENT_TIMEOUT_S", CFG_INT, "30", 1, 3600,         \
      CMD_API | CMD_UP, "Seconds a client may take to send a request before it is dropped")        \
    X(HEARTBEAT, "heartbeat", "STRATQ_HEARTBEAT_S", CFG_INT, "5", 1, 300, CMD_WORKER | CMD_UP,     \
      "Seconds between worker heartbeats")                                                         \
    X(DRAIN_TIMEOUT, "drain-timeout", "STRATQ_DRAIN_TIMEOUT_S", CFG_INT, "25", 0, 3600,            \
      CMD_WORKER | CMD_UP,                                                                         \
      "Seconds a stopping worker lets its running job go on before giving it back to the queue")   \
    X(MAX_DELIVERIES, "max-deliveries", "STRATQ_MAX_DELIVERIES", CFG_INT, "3", 1, 1000,            \
      CMD_WORKER | CMD_UP,                                                                         \
      "Times a job may lose its worker (killed, OOM) before it is dead (a poison pill)")           \
    X(BACKOFF_CAP, "retry-backoff-cap", "STRATQ_RETRY_BACKOFF_CAP_S", CFG_INT, "300", 1, 86400,    \
      CMD_WORKER | CMD_UP, "Longest delay before a retry, in seconds")                             \
    X(HEALTH_PORT, "health-port", "STRATQ_HEALTH_PORT", CFG_INT, "0", 0, 65535, CMD_WORKER,        \
      "Port of the worker's health server (/livez, /healthz, /readyz, /metrics); 0: none")         \
    X(HEALTH_BIND, "health-bind", "STRATQ_HEALTH_BIND", CFG_STR, "0.0.0.0", 0, 0, CMD_WORKER,      \
      "Address the worker's health server listens on")                                             \
    X(CHECK, "check", NULL, CFG_BOOL, "false", 0, 0, CMD_WORKER,                                   \
      "Print which sandbox layers this host offers, then exit")                                    \
    X(FORK_FLOOR, "fork-floor", NULL, CFG_INT, "0", 0, 1000000, CMD_EXECUTOR,                      \
      "Benchmark (make bench-exec): fork the warm interpreter N times, each child exiting at "     \
      "once; print the cost as JSON and exit")                                                     \
    X(WORKER_ID, "worker-id", "STRATQ_WORKER_ID", CFG_STR, "", 0, 0, CMD_WORKER,                   \
      "Worker id (default: host-pid-random)")                                                      \
    X(MODE, "mode", "STRATQ_MODE", CFG_STR, "warm", 0, 0, CMD_WORKER | CMD_EXECUTOR | CMD_UP,      \
      "warm: fork each job from an interpreter with the preloads imported; cold: start a fresh "   \
      "STRATQ_PYTHON per job")                                                                     \
    X(PRELOAD, "preload", "STRATQ_PRELOAD", CFG_STR, "numpy,pandas", 0, 0,                         \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP, "Modules a warm executor imports once, comma-separated") \
    X(PYTHON, "python", "STRATQ_PYTHON", CFG_STR, "/usr/bin/python3", 0, 0,                        \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP, "Python interpreter that runs cold-mode jobs")           \
    X(HARNESS_DIR, "harness-dir", "STRATQ_HARNESS_DIR", CFG_STR, "", 0, 0,                         \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "Directory holding the stratq Python package (default: found next to the binary)")           \
    X(MAX_OUTPUT, "max-output", "STRATQ_MAX_OUTPUT", CFG_INT, "1048576", 1024, 256 * MIB,          \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "Bytes of stdout plus stderr kept per job; more is output_exceeded")                         \
    X(MAX_RESULT, "max-result", "STRATQ_MAX_RESULT", CFG_INT, "16777216", 1024, 512 * MIB,         \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP, "Largest result a job may return, in bytes of JSON")     \
    X(MAX_RESULT_DEPTH, "max-result-depth", "STRATQ_MAX_RESULT_DEPTH", CFG_INT, "256", 1, 4096,    \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "Deepest nesting of arrays and objects in a job's result; deeper is output_exceeded")        \
    X(MAX_RESULT_VALUES, "max-result-values", "STRATQ_MAX_RESULT_VALUES", CFG_INT, "4000000", 1,   \
      1000000000, CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                              \
      "Most values (elements and members, scalars included) in a job's result; more is "           \
      "output_exceeded")                                                                           \
    X(SANDBOX_REQUIRE, "sandbox-require", "STRATQ_SANDBOX_REQUIRE", CFG_STR, "", 0, 0,             \
      CMD_WORKER | CMD_UP,                                                                         \
      "Sandbox layers that must be active, comma-separated; missing one, the worker will not "     \
      "start and --check fails (see stratq worker --check)")                                       \
    X(SANDBOX_DISABLE, "sandbox-disable", "STRATQ_SANDBOX_DISABLE", CFG_STR, "", 0, 0,             \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "Optional sandbox layers not to use, comma-separated: userns, netns, pidns, ipcns, "         \
      "mountns (or namespaces), cgroup, uid")                                                      \
    X(CGROUP_DIR, "cgroup-dir", "STRATQ_CGROUP_DIR", CFG_STR, "", 0, 0,                            \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "A delegated cgroup v2 directory for per-job cgroups (default: under the worker's own)")     \
    X(JOB_UID, "job-uid", "STRATQ_JOB_UID", CFG_INT, "0", 0, 4000000000LL,                         \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                          \
      "Uid jobs run as when the worker is root (0: 200000 + the executor's pid)")                  \
    X(JOB_MAX_PROCS, "job-max-procs", "STRATQ_JOB_MAX_PROCS", CFG_INT, "64", 4, 100000,            \
      CMD_WORKER | CMD_EXECUTOR | CMD_UP, "Processes and threads a job may have at once")          \
    X(JOB_MAX_TMP, "job-max-tmp", "STRATQ_JOB_MAX_TMP", CFG_INT, "134217728", MIB,                 \
      1024 * 1024 * MIB, CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                       \
      "Bytes of temporary files a job may write (its own directory; more is output_exceeded)")     \
    X(DATA_DIR, "data-dir", "STRATQ_DATA_DIR", CFG_STR, "", 0, 0,                                  \
      CMD_API | CMD_WORKER | CMD_EXECUTOR | CMD_UP,                                                \
      "Directory of datasets jobs may read (read-only inside the sandbox)")                        \
    X(WORKERS, "workers", "STRATQ_WORKERS", CFG_INT, "3", 1, 256, CMD_UP,                          \
      "Number of workers stratq up starts")                                                        \
    X(STATE_DIR, "state-dir", "STRATQ_STATE_DIR", CFG_STR, ".stratq", 0, 0, CMD_UP,                \
      "Directory for the local stack's Redis data and logs")                                       \
    X(API_URL, "api-url", "STRATQ_API_URL", CFG_STR, "http://127.0.0.1:8080", 0, 0, CMD_CLI,       \
      "Base URL of the stratq API")                                                                \
    X(PARAMS, "params", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT | CMD_SCHEDULE,                        \
      "Job parameters, a JSON object")                                                             \
    X(DATA, "data", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT,                                           \
      "File holding the job's data: JSON (ctx.data), or .csv (ctx.data as a DataFrame)")           \
    X(ENTRYPOINT, "entrypoint", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT | CMD_SCHEDULE,                \
      "Function the harness calls (default run)")                                                  \
    X(TIMEOUT, "timeout", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT,                                     \
      "Job wall-clock timeout in seconds, may be fractional (default: the server's)")              \
    X(MEMORY, "memory", NULL, CFG_INT, "0", 0, 1048576, CMD_SUBMIT | CMD_SCHEDULE,                 \
      "Job memory limit in MiB (0: server default)")                                               \
    X(TENANT, "tenant", NULL, CFG_STR, "", 0, 0,                                                   \
      CMD_SUBMIT | CMD_JOBS | CMD_PAUSE | CMD_RESUME | CMD_SCHEDULE,                               \
      "Tenant: the job's (submit, schedule add; default: the token's, else default), the jobs to " \
      "list (jobs), the one to pause or resume (default: the whole queue)")                        \
    X(PRIORITY, "priority", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT | CMD_SCHEDULE,                    \
      "Job priority, 0 to 9 (9 starts first) or low, normal, high (default: normal)")              \
    X(DELAY, "delay", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT,                                         \
      "Seconds from now before the job may start, may be fractional (not with --run-at)")          \
    X(RUN_AT, "run-at", NULL, CFG_STR, "", 0, 0, CMD_SUBMIT,                                       \
      "When the job may start: epoch ms or an RFC 3339 time, e.g. 2025-06-01T09:30:00Z")           \
    X(SCHED_CRON, "cron", NULL, CFG_STR, "", 0, 0, CMD_SCHEDULE,                                   \
      "schedule add: a cron expression, \"MIN HOUR DOM MON DOW\" or @daily, ... (docs/api.md)")    \
    X(SCHED_TZ, "tz", NULL, CFG_STR, "", 0, 0, CMD_SCHEDULE,                                       \
      "schedule add: the time zone the cron expression is read in (default UTC)")                  \
    X(SCHED_EVERY, "every", NULL, CFG_STR, "", 0, 0, CMD_SCHEDULE,                                 \
      "schedule add: an interval instead of --cron: 30s, 5m, 1h30m, 1d")                           \
    X(SCHED_OVERLAP, "overlap", NULL, CFG_STR, "", 0, 0, CMD_SCHEDULE,                             \
      "schedule add: skip (default: no run while the last one has not ended) or allow")            \
    X(SCHED_NAME, "name", NULL, CFG_STR, "", 0, 0, CMD_SCHEDULE, "schedule add: a name to show")   \
    X(WAIT, "wait", NULL, CFG_BOOL, "false", 0, 0, CMD_SUBMIT | CMD_RESULT,                        \
      "Wait for the job to finish and print its result")                                           \
    X(JSON, "json", NULL, CFG_BOOL, "false", 0, 0, CMD_CLI, "Print JSON instead of text")          \
    X(ONCE, "once", NULL, CFG_BOOL, "false", 0, 0, CMD_MONITOR,                                    \
      "Print one plain-text report and exit (--json implies it)")                                  \
    X(ENV_FILE, "env-file", NULL, CFG_STR, "", 0, 0, CMD_MONITOR,                                  \
      "Report on an environment's workers with the figures in this file (- for stdin), one JSON "  \
      "object a line, as scripts/monitor-workers.sh gathers them (docs/operations.md)")            \
    X(WINDOW, "window", NULL, CFG_INT, "3", 1, 1000, CMD_MONITOR,                                  \
      "With --env-file: reports the queue must stay above 5 or at 0 in")                           \
    X(JOBS, "jobs", NULL, CFG_INT, "100", 1, 500, CMD_MONITOR,                                     \
      "With --env-file: recent succeeded jobs the wait and run times are over")                    \
    X(FOLLOW, "follow", NULL, CFG_BOOL, "false", 0, 0, CMD_LOGS,                                   \
      "Keep printing new output until the job finishes (-f)")                                      \
    X(STATUS, "status", NULL, CFG_STR, "", 0, 0, CMD_JOBS,                                         \
      "List only jobs in this status (default: all recent jobs)")                                  \
    X(LIMIT, "limit", NULL, CFG_INT, "50", 1, 500, CMD_JOBS, "Number of jobs to list")             \
    X(CURSOR, "cursor", NULL, CFG_STR, "", 0, 0, CMD_JOBS,                                         \
      "Continue a listing from the next_cursor of the previous page")                              \
    X(LOG_LEVEL, "log-level", "STRATQ_LOG_LEVEL", CFG_STR, "info", 0, 0,                           \
      CMD_API | CMD_WORKER | CMD_EXECUTOR | CMD_UP, "debug, info, warn or error")

enum cfg_id {
#define X(id, ...) CFG_##id,
    CONFIG_TABLE(X)
#undef X
        CFG__COUNT
};

struct cfg_opt {
    const char *flag;
    const char *env;
    enum cfg_type type;
    const char *def;
    long long min, max;
    unsigned cmds;
    const char *help;
};

extern const struct cfg_opt config_opts[CFG__COUNT];

/* Loads defaults, then the environment, then flags of argv (from index 0;
 * "--name value", "--name=value", "--flag" for booleans) for the subcommand
 * cmd. Positional arguments are collected into *ret_args (a pointer array
 * into argv, owned by config) and counted in *ret_nargs. On error returns
 * -EINVAL with a message in err that says what to do. Returns 1 when --help
 * was given. */
int config_load(unsigned cmd, int argc, char **argv, char ***ret_args, int *ret_nargs, char *err,
                size_t errlen);

const char *config_str(enum cfg_id id);
long long config_int(enum cfg_id id);
bool config_bool(enum cfg_id id);
/* Whether the value came from the environment or a flag, not the default. */
bool config_is_set(enum cfg_id id);
/* Sets a value as if it came from a flag; for tests and for stratq up. */
int config_set(enum cfg_id id, const char *value, char *err, size_t errlen);

/* Prints the options of subcommand cmd with their environment variables,
 * defaults, bounds and help. */
void config_print_help(unsigned cmd, const char *usage, const char *what);

void config_free(void);

#endif

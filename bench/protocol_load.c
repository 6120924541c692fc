/* `make bench-protocol`'s load driver: the Redis protocol alone, no Python.
 *
 * Each of N threads has its own synchronous connection (conn.h) and plays
 * both sides of a no-op job's life through the same typed calls the API and
 * the worker make (jobq.h):
 *
 *   the API      queue_build_enqueue of a new id (util_new_id) and the spec
 *                the API would store for a small job (job_spec_normalize),
 *                client_id false; count.lua with its submits once a second;
 *   the worker   jobq_take (BLMOVE), jobq_start, jobq_complete with a
 *                succeeded outcome; jobq_heartbeat once a second (a busy
 *                worker's pace, which also adds its counts to the stats
 *                hash); jobq_promote once a second and jobq_reap once per
 *                heartbeat interval (5 s), its housekeeping.
 *
 * Every thread enqueues before it takes, so the queue is never empty when
 * one takes (the threads share the queue, and a thread may well take
 * another's job): BLMOVE never blocks. A lifecycle is one such loop; its
 * latency is the loop's wall time (4 round trips). When the time is up,
 * every thread flushes its counts, deregisters, and the main thread checks
 * that nothing was lost: every enqueue created a job, every complete
 * recorded one, as many completes as enqueues, the queue and the
 * processing lists are empty, the stats hash's completed:succeeded grew by
 * as many, and a sample of the ids reads `succeeded`. Prints one JSON line;
 * exits 1 on any error or a failed check. One driver per queue: the
 * stats check counts every worker's completions on that queue.
 *
 * With --tenants N every job is submitted with a tenant, t0 .. t<N-1> in
 * turn, and so waits by fair share (a ticket on the queue, the job in its
 * tenant's backlog, docs/protocol.md); 0, the default, is the single FIFO
 * path (the id on the queue). With --split the threads first only enqueue
 * for half the time, then only take (take, start, complete) until the
 * queue is empty, and the enqueue and take rates are printed apart.
 *
 * With --cluster the scripts publish with SPUBLISH, sharded pub/sub, as
 * stratq's own processes do on a cluster (queue.h, struct queue_names'
 * sharded); --publish PUBLISH makes them use plain PUBLISH there instead,
 * which Redis Cluster carries to every node (what stratq did before), for
 * comparison.
 *
 *   protocol_load [--redis URL] [--cluster host:port,...] [--queue NAME]
 *                 [--prefix P] [--threads N] [--seconds S]
 *                 [--publish PUBLISH|SPUBLISH] [--tenants N] [--split]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/job.h"
#include "common/util.h"
#include "queue/conn.h"
#include "queue/jobq.h"
#include "queue/queue.h"

/* The worker's defaults (config.h) for what its calls pass to the scripts. */
#define HEARTBEAT_MS 5000 /* STRATQ_HEARTBEAT_S */
#define REPORT_MS 1000    /* a busy worker's heartbeat pace (worker.c) */
#define SAMPLE_MAX 2000   /* ids whose status is read at the end, in all */

struct options {
    const char *redis, *cluster, *queue, *prefix, *publish;
    int threads, tenants;
    bool split;
    double seconds;
};

/* One thread: an API and a worker on one connection. */
struct load {
    struct queue_url *url;
    const struct queue_names *names;
    const char *spec;
    double seconds;
    pthread_barrier_t *go;  /* every thread connected, and main */
    pthread_barrier_t *mid; /* --split: every thread done enqueueing */
    int tenants;            /* --tenants */
    long long phase_us[2];  /* --split: how long enqueueing and taking took */
    struct queue_sync *q;
    struct jobq jq;
    char worker[64];
    /* Results, read by main after the join. */
    long long enqueued, completed, heartbeats, errors;
    unsigned *lat_us; /* each lifecycle's wall time */
    size_t nlat, caplat;
    /* A sample of the ids it enqueued, spread over the run: every
     * stride-th, the stride doubling (and every other entry dropped)
     * whenever the sample is full. */
    char (*ids)[UTIL_ID_LEN + 1];
    size_t nids, maxids;
    long long stride;
    char err[600]; /* the first error */
};

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note_error(struct load *l, const char *what, const char *detail)
{
    if (!l->errors++)
        snprintf(l->err, sizeof(l->err), "%s: %s", what, detail ? detail : "?");
}

/* jobq's eval hook: one call, no retries (a benchmark counts what a worker
 * would retry as an error). */
static redisReply *load_eval(void *priv, const struct queue_call *c)
{
    struct load *l = priv;
    redisReply *r = queue_sync_call(l->q, c);
    if (!r) {
        note_error(l, queue_script_name(c->script), queue_sync_errstr(l->q));
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        note_error(l, queue_script_name(c->script), r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int load_heartbeat(struct load *l, const char *state)
{
    struct jobq_worker_info info = {.host = "bench",
                                    .version = "protocol_load",
                                    .state = state,
                                    .current_job = "",
                                    .sandbox = "none",
                                    .pid = getpid(),
                                    .started_ms = 0,
                                    .jobs_done = l->completed,
                                    .jobs_failed = 0};
    int r = jobq_heartbeat(&l->jq, &info, util_now_ms(), 3 * HEARTBEAT_MS, true);
    l->heartbeats++;
    return r;
}

/* The API's side: one enqueue. 0, or -1 (counted). */
static int load_enqueue(struct load *l)
{
    char id[UTIL_ID_LEN + 1], tenant[16];
    struct queue_call c;
    util_new_id(id);
    snprintf(tenant, sizeof(tenant), "t%lld", l->tenants ? l->enqueued % l->tenants : 0);
    const struct queue_submit how = {l->tenants ? tenant : NULL, QUEUE_PRIORITY_DEFAULT, 0};
    if (queue_build_enqueue(&c, l->names, id, l->spec, util_now_ms(), false, &how) < 0) {
        note_error(l, "enqueue", "out of memory");
        return -1;
    }
    redisReply *r = load_eval(l, &c);
    queue_call_free(&c);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1;
    freeReplyObject(r);
    if (!ok) {
        note_error(l, "enqueue", "the job was not created");
        return -1;
    }
    if (l->enqueued++ % l->stride == 0) {
        if (l->nids == l->maxids) {
            for (size_t k = 0; 2 * k < l->nids; k++)
                memcpy(l->ids[k], l->ids[2 * k], sizeof(id));
            l->nids = (l->nids + 1) / 2;
            l->stride *= 2;
        }
        if ((l->enqueued - 1) % l->stride == 0)
            memcpy(l->ids[l->nids++], id, sizeof(id));
    }
    return 0;
}

/* The worker's side: take one job, start it, record it succeeded. */
static int load_work(struct load *l, bool until_empty)
{
    char *entry = NULL, err[256];
    size_t len = 0;
    int r = jobq_take(&l->jq, l->q, until_empty ? 10 : 1000, &entry, &len, err, sizeof(err));
    if (r == 0 && until_empty)
        return 1;
    if (r != 1) {
        note_error(l, "BLMOVE",
                   r == 0      ? "nothing to take"
                   : r == -EIO ? queue_sync_errstr(l->q)
                               : err);
        return -1;
    }
    struct jobq_start st;
    long long t0 = mono_us();
    if (jobq_start(&l->jq, entry, util_now_us(), &st) < 0 || st.what != JOBQ_RUN) {
        note_error(l, "start.lua", st.what == JOBQ_SKIP ? st.status : "not run");
        free(entry);
        return -1;
    }
    if (st.created_ms > 0) {
        long long waited = util_now_ms() - st.created_ms;
        jobq_observe(&l->jq.stats.queue_wait, waited > 0 ? (double)waited / 1000.0 : 0);
    }
    free(st.spec);
    struct job_outcome o = {
        .status = QUEUE_STATUS_SUCCEEDED,
        .attempt = st.attempt,
        .result = "null",
        .out = "",
        .err = "",
        .usage = "{\"wall_ms\":0,\"cpu_ms\":0,\"max_rss_kb\":0}",
        .max_attempts = 1,
        .next_run_ms = util_now_ms(),
    };
    r = jobq_complete(&l->jq, st.id, &o, util_now_ms(), (double)(mono_us() - t0) / 1e6);
    free(entry);
    if (r != 1) {
        note_error(l, "complete.lua",
                   r == 0   ? "fenced off"
                   : r == 2 ? "recorded already"
                            : "failed");
        return -1;
    }
    l->completed++;
    return 0;
}

static int add_latency(struct load *l, long long us)
{
    if (l->nlat == l->caplat) {
        size_t cap = l->caplat ? 2 * l->caplat : 65536;
        unsigned *p = realloc(l->lat_us, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        l->lat_us = p;
        l->caplat = cap;
    }
    l->lat_us[l->nlat++] = us > 0 ? (unsigned)us : 0;
    return 0;
}

/* --split: enqueue only until the deadline, wait for the other threads,
 * then take until the queue is empty. 0, or -1 (counted). */
static int load_split(struct load *l, long long start, long long deadline)
{
    long long now = start;
    while ((now = mono_us()) < deadline && !l->errors)
        if (load_enqueue(l) < 0)
            break;
    l->phase_us[0] = now - start;
    pthread_barrier_wait(l->mid);
    long long taking = mono_us();
    for (int r = 0; !l->errors && r == 0;) {
        long long t = mono_us();
        r = load_work(l, true);
        if (r == 0 && add_latency(l, mono_us() - t) < 0)
            note_error(l, "latency", "out of memory");
    }
    l->phase_us[1] = mono_us() - taking;
    return l->errors ? -1 : 0;
}

static void *load_run(void *arg)
{
    struct load *l = arg;
    char err[256];
    if (queue_sync_connect(l->url, 5000, &l->q, err, sizeof(err)) < 0) {
        note_error(l, "connect", err);
        pthread_barrier_wait(l->go);
        return NULL;
    }
    queue_sync_setname(l->q, "stratq-bench");
    if (load_heartbeat(l, "idle") < 0)
        note_error(l, "heartbeat.lua", "not registered");
    /* Start together: the connections and script loads are not timed. */
    pthread_barrier_wait(l->go);
    long long now = mono_us(), deadline = now + (long long)(l->seconds * 1e6);
    long long next_report = now + REPORT_MS * 1000LL;
    long long next_promote = now + 1000000, next_reap = now + HEARTBEAT_MS * 1000LL;
    long long unflushed = 0;
    if (l->mid) {
        load_split(l, now, now + (deadline - now) / 2);
        deadline = now; /* the loop below is the interleaved mode's */
    }
    while ((now = mono_us()) < deadline && !l->errors) {
        if (load_enqueue(l) < 0 || load_work(l, false) < 0)
            break;
        unflushed++;
        long long end = mono_us();
        if (add_latency(l, end - now) < 0) {
            note_error(l, "latency", "out of memory");
            break;
        }
        if (end >= next_report) {
            next_report = end + REPORT_MS * 1000LL;
            if (load_heartbeat(l, "busy") < 0)
                break;
            /* The API adds its submits about once a second (metrics.c). */
            struct queue_call c;
            if (queue_build_count_submitted(&c, l->names, unflushed) < 0) {
                note_error(l, "count.lua", "out of memory");
                break;
            }
            redisReply *r = load_eval(l, &c);
            queue_call_free(&c);
            if (!r)
                break;
            freeReplyObject(r);
            unflushed = 0;
        }
        if (end >= next_promote) {
            next_promote = end + 1000000;
            long long next_due;
            if (jobq_promote(&l->jq, l->q, util_now_ms(), &next_due) < 0) {
                note_error(l, "promote", "failed");
                break;
            }
        }
        if (end >= next_reap) {
            struct jobq_reaped reaped;
            next_reap = end + HEARTBEAT_MS * 1000LL;
            if (jobq_reap(&l->jq, l->q, util_now_ms(), 3 * HEARTBEAT_MS, HEARTBEAT_MS, &reaped) <
                0) {
                note_error(l, "reap", "failed");
                break;
            }
        }
    }
    /* Flush the counts, as a stopping worker's last heartbeat does, then
     * forget the worker (nothing is left in its processing list). */
    if (load_heartbeat(l, "idle") < 0)
        note_error(l, "heartbeat.lua", "the last one failed");
    long long given_back = jobq_deregister(&l->jq, l->q);
    if (given_back != 0)
        note_error(l, "deregister", given_back < 0 ? "failed" : "a job was left in its list");
    return NULL;
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* A field of the stats hash as a number (0 when absent), or -1. */
static long long stat_field(struct queue_sync *q, const struct queue_names *n, const char *field)
{
    redisReply *r = queue_sync_command(q, "HGET %s %s", n->stats, field);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_NIL)
        v = 0;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    return v;
}

static long long llen(struct queue_sync *q, const char *key)
{
    redisReply *r = queue_sync_command(q, "LLEN %s", key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

/* The spec the API stores for a small no-op job: normalized as it does. */
static char *make_spec(void)
{
    struct job_limits lim = {300, 3600, 1024, 4096}; /* the config defaults */
    char err[256];
    json_t *spec =
        json_pack("{s:s, s:{s:i}}", "code", "def run(ctx):\n    return None\n", "params", "x", 1);
    if (!spec || job_spec_normalize(spec, &lim, err, sizeof(err)) < 0) {
        fprintf(stderr, "protocol_load: the spec: %s\n", spec ? err : "out of memory");
        json_decref(spec);
        return NULL;
    }
    char *text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    return text;
}

static void usage(void)
{
    fprintf(stderr, "usage: protocol_load [--redis URL] [--cluster host:port,...] [--queue NAME]\n"
                    "                     [--prefix P] [--threads N] [--seconds S]\n"
                    "                     [--publish PUBLISH|SPUBLISH] [--tenants N] [--split]\n");
}

int main(int argc, char **argv)
{
    struct options opt = {
        "redis://127.0.0.1:6379", NULL, "python_execution_queue", "stratq", NULL, 4, 0, false, 10};
    static const struct option longs[] = {
        {"redis", required_argument, NULL, 'r'},
        {"cluster", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, 'q'},
        {"prefix", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"seconds", required_argument, NULL, 's'},
        {"publish", required_argument, NULL, 'P'},
        {"tenants", required_argument, NULL, 'T'},
        {"split", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    for (int ch; (ch = getopt_long(argc, argv, "r:c:q:p:t:s:P:T:Sh", longs, NULL)) != -1;) {
        switch (ch) {
        case 'r':
            opt.redis = optarg;
            break;
        case 'c':
            opt.cluster = optarg;
            break;
        case 'q':
            opt.queue = optarg;
            break;
        case 'p':
            opt.prefix = optarg;
            break;
        case 't':
            opt.threads = atoi(optarg);
            break;
        case 's':
            opt.seconds = atof(optarg);
            break;
        case 'P':
            opt.publish = optarg;
            break;
        case 'T':
            opt.tenants = atoi(optarg);
            break;
        case 'S':
            opt.split = true;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind < argc || opt.threads < 1 || opt.threads > 256 || !(opt.seconds > 0) ||
        opt.tenants < 0 || opt.tenants > 100000 ||
        (opt.publish && strcmp(opt.publish, "PUBLISH") && strcmp(opt.publish, "SPUBLISH"))) {
        usage();
        return 2;
    }

    int rc = 1;
    char err[256];
    struct queue_url url = {0};
    struct queue_names names = {0};
    struct load *loads = NULL;
    struct queue_sync *q = NULL;
    char *spec = NULL;
    unsigned *lat = NULL;
    if (queue_url_parse(opt.redis, &url, err, sizeof(err)) < 0 ||
        (opt.cluster && queue_url_set_cluster(&url, opt.cluster, err, sizeof(err)) < 0) ||
        queue_names_init(&names, opt.queue, opt.prefix, &url, err, sizeof(err)) < 0) {
        fprintf(stderr, "protocol_load: %s\n", err);
        goto out;
    }
    if (opt.publish)
        names.sharded = !strcmp(opt.publish, "SPUBLISH");
    if (!(spec = make_spec()))
        goto out;
    /* The script texts are assembled on first use (queue.c): do it here,
     * before the threads race for it. */
    for (int s = 0; s < QS__COUNT; s++)
        queue_script_source((enum queue_script)s);
    if (queue_sync_connect(&url, 5000, &q, err, sizeof(err)) < 0) {
        fprintf(stderr, "protocol_load: %s\n", err);
        goto out;
    }
    long long succeeded_before = stat_field(q, &names, "completed:succeeded");

    loads = calloc((size_t)opt.threads, sizeof(*loads));
    pthread_t *tids = calloc((size_t)opt.threads, sizeof(*tids));
    if (!loads || !tids) {
        free(tids);
        goto out;
    }
    struct jobq_settings set = {.index_size = 10000,
                                .result_ttl_s = 86400,
                                .failed_ttl_s = 604800,
                                .max_deliveries = 3,
                                .live_ttl_s = 604800 + 3600};
    /* Every thread is made before any starts, so that the barrier cannot
     * wait for one that never came. */
    pthread_barrier_t go, mid;
    pthread_barrier_init(&go, NULL, (unsigned)opt.threads + 1);
    pthread_barrier_init(&mid, NULL, (unsigned)opt.threads);
    for (int i = 0; i < opt.threads; i++) {
        struct load *l = &loads[i];
        l->url = &url;
        l->names = &names;
        l->spec = spec;
        l->seconds = opt.seconds;
        l->go = &go;
        l->mid = opt.split ? &mid : NULL;
        l->tenants = opt.tenants;
        l->stride = 1;
        l->maxids = SAMPLE_MAX / (size_t)opt.threads > 64 ? SAMPLE_MAX / (size_t)opt.threads : 64;
        snprintf(l->worker, sizeof(l->worker), "bench-%d-%d", (int)getpid(), i);
        l->ids = calloc(l->maxids, sizeof(*l->ids));
        if (!l->ids || jobq_init(&l->jq, &names, l->worker, &set, load_eval, l) < 0) {
            fprintf(stderr, "protocol_load: out of memory\n");
            free(tids);
            goto out;
        }
    }
    int nstarted = 0;
    for (; nstarted < opt.threads; nstarted++)
        if (pthread_create(&tids[nstarted], NULL, load_run, &loads[nstarted]) != 0)
            break;
    if (nstarted < opt.threads) {
        /* Nothing can start: the barrier never opens. */
        fprintf(stderr, "protocol_load: cannot start thread %d\n", nstarted);
        _exit(1);
    }
    pthread_barrier_wait(&go);
    long long t0 = mono_us();
    for (int i = 0; i < nstarted; i++)
        pthread_join(tids[i], NULL);
    long long t1 = mono_us();
    free(tids);
    pthread_barrier_destroy(&go);
    pthread_barrier_destroy(&mid);

    long long lifecycles = 0, enqueued = 0, errors = 0, nlat = 0;
    for (int i = 0; i < opt.threads; i++) {
        struct load *l = &loads[i];
        lifecycles += l->completed;
        enqueued += l->enqueued;
        errors += l->errors;
        nlat += (long long)l->nlat;
        if (l->errors)
            fprintf(stderr, "protocol_load: thread %d: %lld errors, the first: %s\n", i, l->errors,
                    l->err);
    }
    /* What was lost, if anything: each check adds to errors. */
    long long pending = llen(q, names.queue), lost = 0;
    if (lifecycles != enqueued || pending != 0) {
        fprintf(stderr, "protocol_load: %lld enqueued, %lld completed, %lld left in the queue\n",
                enqueued, lifecycles, pending);
        lost++;
    }
    for (int i = 0; i < opt.threads; i++) {
        if (llen(q, loads[i].jq.processing_key) != 0) {
            fprintf(stderr, "protocol_load: %s's processing list is not empty\n", loads[i].worker);
            lost++;
        }
    }
    long long succeeded_after = stat_field(q, &names, "completed:succeeded");
    if (succeeded_before < 0 || succeeded_after - succeeded_before != lifecycles) {
        fprintf(stderr, "protocol_load: the stats hash counted %lld succeeded, not %lld\n",
                succeeded_after - succeeded_before, lifecycles);
        lost++;
    }
    long long sampled = 0;
    for (int i = 0; i < opt.threads; i++) {
        for (size_t k = 0; k < loads[i].nids; k++) {
            redisReply *r =
                queue_sync_command(q, "HGET %s%s status", names.job_prefix, loads[i].ids[k]);
            bool ok = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "succeeded");
            if (!ok && !lost)
                fprintf(stderr, "protocol_load: job %s is not succeeded\n", loads[i].ids[k]);
            lost += !ok;
            sampled++;
            if (r)
                freeReplyObject(r);
        }
    }

    lat = malloc(((size_t)nlat + 1) * sizeof(*lat));
    if (!lat)
        goto out;
    size_t at = 0;
    for (int i = 0; i < opt.threads; i++) {
        memcpy(lat + at, loads[i].lat_us, loads[i].nlat * sizeof(*lat));
        at += loads[i].nlat;
    }
    qsort(lat, at, sizeof(*lat), cmp_unsigned);
    double secs = (double)(t1 - t0) / 1e6;
    long long heartbeats = 0;
    for (int i = 0; i < opt.threads; i++)
        heartbeats += loads[i].heartbeats;
    long long phase[2] = {0, 0};
    for (int i = 0; i < opt.threads; i++)
        for (int k = 0; k < 2; k++)
            phase[k] = loads[i].phase_us[k] > phase[k] ? loads[i].phase_us[k] : phase[k];
    printf("{\"queue\":\"%s\",\"threads\":%d,\"tenants\":%d,\"lifecycles\":%lld,"
           "\"seconds\":%.3f,\"lifecycles_per_s\":%.1f,\"p50_us\":%u,\"p99_us\":%u,"
           "\"enqueue_per_s\":%.1f,\"take_per_s\":%.1f,\"heartbeats\":%lld,\"errors\":%lld,"
           "\"lost\":%lld,\"sampled\":%lld}\n",
           opt.queue, opt.threads, opt.tenants, lifecycles, secs,
           secs > 0 ? (double)lifecycles / secs : 0, at ? lat[at / 2] : 0,
           at ? lat[at * 99 / 100] : 0, phase[0] ? (double)enqueued * 1e6 / (double)phase[0] : 0,
           phase[1] ? (double)lifecycles * 1e6 / (double)phase[1] : 0, heartbeats, errors, lost,
           sampled);
    rc = errors || lost ? 1 : 0;
out:
    if (loads) {
        for (int i = 0; i < opt.threads; i++) {
            jobq_free(&loads[i].jq);
            queue_sync_free(loads[i].q);
            free(loads[i].lat_us);
            free(loads[i].ids);
        }
    }
    free(loads);
    free(lat);
    free(spec);
    queue_sync_free(q);
    queue_names_free(&names);
    queue_url_free(&url);
    queue_scripts_free();
    return rc;
}

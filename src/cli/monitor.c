/* stratq monitor: the queue, job times and workers at a glance, with the
 * worker scaling guide's advice (docs/operations.md, "stratq monitor").
 *
 * Every report is built as one JSON object; --json prints it, the text
 * form is rendered from it, so the two never disagree. On a terminal the
 * text is redrawn every second on the alternate screen, which is left again
 * on exit, SIGINT, SIGTERM and SIGHUP.
 *
 * Run time (of every run a worker recorded, whatever its outcome) and wait
 * time (submission to start) come from the cumulative histograms GET
 * /v1/queue carries (the ones of GET /metrics): p50 and p95 estimated as
 * Prometheus' histogram_quantile() does (src/common/histogram.c), the mean
 * from the sum and the count. One report (--once, --json) is over
 * everything they hold ("since stats began"); refreshed reports over the
 * jobs of the last 5 minutes, the difference between the histograms now
 * and a reading kept from 5 minutes before (or from the first report,
 * while the monitor is younger).
 *
 * One report reads GET /v1/queue, /v1/workers and three pages of GET
 * /v1/jobs (for the throughput and the running jobs' starts). Refreshed
 * reports follow the API's job events (GET /v1/events) instead: the pages
 * are read once when the stream opens (and once a minute, in case the API
 * missed events), and then each refresh reads only the queue and the
 * workers; throughput counts the events, and a running job's time starts
 * at its `running` event. Without the stream (an API that has none, or
 * while it reconnects) every refresh reads everything, as one report
 * does. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../common/advice.h"
#include "../common/config.h"
#include "../common/histogram.h"
#include "../common/util.h"
#include "../queue/status.h"
#include "cli.h"
#include "monitor.h"
#include "ptree.h"
#include "sse.h"

#define REFRESH_MS 1000
/* Queue samples kept for the sparkline: 10 minutes at one a second. */
#define HISTORY_MS (10 * 60 * 1000)
#define HISTORY_N 600
/* "Consistently": in every sample of the last WINDOW_MS (the current one
 * alone with --once). */
#define WINDOW_MS (30 * 1000)
/* Page size of the listings throughput is counted from (the API's most). */
#define LISTING_LIMIT 500
#define THROUGHPUT_WINDOW_MS (60 * 1000)
/* Events are counted in slots of this many ms over the window. */
#define SLOT_MS 100
#define SLOTS (THROUGHPUT_WINDOW_MS / SLOT_MS)
/* With the event stream, the listings are read again this often anyway. */
#define RESYNC_MS (60 * 1000)
/* Running jobs whose start the monitor keeps (the guide's pool is 10). */
#define MAX_STARTED 1024
/* The window of refreshed reports' run and wait times, and how often the
 * histograms they come from are kept. */
#define JOBS_WINDOW_MS (5 * 60 * 1000)
#define SNAP_MS (5 * 1000)
#define SNAPS (JOBS_WINDOW_MS / SNAP_MS + 2)

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t resized;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_winch(int sig)
{
    (void)sig;
    resized = 1;
}

/* One queue sample per refresh. */
static struct sample {
    int64_t t_ms;
    long long pending;
    int busy, live;
} hist[HISTORY_N];
static size_t hist_len, hist_next;

static void hist_add(int64_t t_ms, long long pending, int busy, int live)
{
    hist[hist_next] = (struct sample){t_ms, pending, busy, live};
    hist_next = (hist_next + 1) % HISTORY_N;
    if (hist_len < HISTORY_N)
        hist_len++;
}

/* The i-th newest sample (0: the newest). */
static const struct sample *hist_at(size_t i)
{
    return &hist[(hist_next + HISTORY_N - 1 - i) % HISTORY_N];
}

static bool utf8_locale(void)
{
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
    }
    return false;
}

/* ------------------------------------------------------------ the report */

/* What the reports are made from besides the queue and the workers: the
 * listings of one read, kept up to date between reads by the job events. */
static struct jobs_state {
    bool valid;        /* read since the stream (re)opened */
    int64_t read_mono; /* when the listings were last read */
    bool capped;       /* a whole listing page was within the window */
    size_t nseed;      /* jobs of the listings that finished in the window */
    struct seed {
        char id[72];
        int64_t finished_ms;
        bool failed;
    } seed[2 * LISTING_LIMIT];
    /* Succeeded and failed events since, per SLOT_MS of arrival. */
    struct slot {
        int64_t n; /* the slot's number (ms / SLOT_MS) */
        long long count[2];
    } slots[SLOTS];
    /* Running jobs' starts (ms; -1 when not to be known), and when a
     * worker last ran each (monotonic). */
    struct started {
        char id[72];
        int64_t started_ms, seen_mono;
    } started[MAX_STARTED];
    size_t nstarted;
} js;

static int cmp_seed(const void *a, const void *b)
{
    return strcmp(((const struct seed *)a)->id, ((const struct seed *)b)->id);
}

static bool seeded(const char *id)
{
    struct seed key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    return js.nseed && bsearch(&key, js.seed, js.nseed, sizeof(key), cmp_seed);
}

static struct started *started_find(const char *id)
{
    for (size_t i = 0; i < js.nstarted; i++)
        if (!strcmp(js.started[i].id, id))
            return &js.started[i];
    return NULL;
}

/* Records that job id started at started_ms (the oldest entry makes room). */
static void started_put(const char *id, int64_t started_ms)
{
    struct started *s = started_find(id);
    if (!s && js.nstarted < MAX_STARTED)
        s = &js.started[js.nstarted++];
    if (!s) {
        size_t oldest = 0;
        for (size_t i = 1; i < js.nstarted; i++)
            if (js.started[i].seen_mono < js.started[oldest].seen_mono)
                oldest = i;
        s = &js.started[oldest];
    }
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->started_ms = started_ms;
    s->seen_mono = util_mono_ms();
}

/* Job id ended. Its entry stays, with no start: a worker's heartbeat may
 * still show it as its job for a second, and that is no reason to read
 * the running listing. */
static void started_end(const char *id)
{
    struct started *s = started_find(id);
    if (s)
        s->started_ms = -1;
}

/* The starts of a running listing's jobs. */
static void started_from(const json_t *running)
{
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(running, "jobs"), i, j)
    {
        const char *id = json_string_value(json_object_get(j, "id"));
        long long st;
        if (id && cli_field_num(j, "started_ms", &st))
            started_put(id, st);
    }
}

/* The listings of a full read: jobs that finished in the window (exact,
 * from finished_ms), the running jobs' starts. */
static void jobs_read(const json_t *succ, const json_t *failed, const json_t *running, int64_t now)
{
    const json_t *pages[2] = {succ, failed};
    js.nseed = 0;
    js.capped = false;
    for (int f = 0; f < 2; f++) {
        size_t i, n = 0;
        json_t *j;
        json_t *jobs = json_object_get(pages[f], "jobs");
        json_array_foreach(jobs, i, j)
        {
            const char *id = json_string_value(json_object_get(j, "id"));
            long long fin;
            if (!cli_field_num(j, "finished_ms", &fin) || fin < now - THROUGHPUT_WINDOW_MS)
                continue;
            n++;
            struct seed *s = &js.seed[js.nseed++];
            snprintf(s->id, sizeof(s->id), "%s", id ? id : "");
            s->finished_ms = fin;
            s->failed = f;
        }
        if (json_array_size(jobs) >= LISTING_LIMIT && n == json_array_size(jobs))
            js.capped = true;
    }
    qsort(js.seed, js.nseed, sizeof(*js.seed), cmp_seed);
    memset(js.slots, 0, sizeof(js.slots));
    js.nstarted = 0;
    started_from(running);
    js.read_mono = util_mono_ms();
    js.valid = true;
}

/* One job event from the stream. */
static void jobs_event(const json_t *ev)
{
    const char *id = json_string_value(json_object_get(ev, "id"));
    int status = queue_status_parse(json_string_value(json_object_get(ev, "status")));
    if (!id || status < 0)
        return;
    if (status == QUEUE_STATUS_RUNNING) {
        started_put(id, util_now_ms());
        return;
    }
    started_end(id);
    if (status != QUEUE_STATUS_SUCCEEDED && status != QUEUE_STATUS_FAILED)
        return;
    /* A job the listings of the last read already counted. */
    if (seeded(id))
        return;
    int64_t n = util_now_ms() / SLOT_MS;
    struct slot *s = &js.slots[n % SLOTS];
    if (s->n != n)
        *s = (struct slot){.n = n};
    s->count[status == QUEUE_STATUS_FAILED]++;
}

/* Jobs that finished succeeded (0) or failed (1) in the window. */
static long long finished_in_window(int failed, int64_t now)
{
    long long n = 0;
    for (size_t i = 0; i < js.nseed; i++)
        if (js.seed[i].failed == failed && js.seed[i].finished_ms >= now - THROUGHPUT_WINDOW_MS)
            n++;
    int64_t first = (now - THROUGHPUT_WINDOW_MS) / SLOT_MS;
    for (size_t i = 0; i < SLOTS; i++)
        if (js.slots[i].n > first)
            n += js.slots[i].count[failed];
    return n;
}

/* The guide's advice (src/common/advice.c) from the report so far and the
 * history. Utilisation here is the share of live workers that are busy,
 * averaged over the window: the API knows it for every worker. The mean
 * wait is over wait_jobs starts, which wait_over names. */
static json_t *advice(long long live, long long mean_wait_ms, long long wait_jobs,
                      const char *wait_over, bool once, int64_t now_ms)
{
    /* The window: the samples of the last WINDOW_MS, the current one first. */
    long long pending[HISTORY_N];
    size_t win = 0;
    double util_sum = 0;
    int util_n = 0;
    for (size_t i = 0; i < hist_len && (i == 0 || !once); i++) {
        const struct sample *s = hist_at(i);
        if (i > 0 && now_ms - s->t_ms > WINDOW_MS)
            break;
        pending[win++] = s->pending;
        if (s->live > 0) {
            util_sum += 100.0 * s->busy / s->live;
            util_n++;
        }
    }
    int64_t span_ms = win > 1 ? now_ms - hist_at(win - 1)->t_ms : 0;
    struct advice_in in = {
        .pending = pending,
        .npending = win,
        .window_s = (span_ms + 500) / 1000,
        .wait_s = mean_wait_ms < 0 ? ADVICE_UNKNOWN : mean_wait_ms / 1000.0,
        .wait_jobs = wait_jobs,
        .wait_over = wait_over,
        .basis = ADVICE_BASIS_BUSY,
        .busy_percent = util_n ? util_sum / util_n : ADVICE_UNKNOWN,
        .cpu_percent = ADVICE_UNKNOWN,
        .memory_percent = ADVICE_UNKNOWN,
        .workers = live,
    };
    json_t *a = json_object();
    advice_fill_json(&in, a);
    json_object_set_new(a, "utilisation_percent",
                        util_n ? json_real(advice_round1(util_sum / util_n)) : json_null());
    json_object_set_new(a, "window_samples", json_integer((json_int_t)win));
    return a;
}

/* The newest limit jobs in status s (GET /v1/jobs?status=...), as
 * cli_get_json. */
static int get_listing(enum queue_status s, int limit, json_t **ret, char *err, size_t errlen)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/jobs?status=%s&limit=%d", queue_status_name(s), limit);
    return cli_get_json(path, ret, err, errlen);
}

/* Whether a worker runs a job whose start is not known yet. */
static bool start_unknown(const json_t *workers)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(workers, "workers"), i, w)
    {
        const char *cur = json_string_value(json_object_get(w, "current_job"));
        if (cur && *cur && !started_find(cur))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------ job times */

/* The run-time and wait histograms of GET /v1/queue ("histograms", in ms;
 * docs/api.md), and the report's key for each. */
enum { H_RUN, H_WAIT, H_N };
static const char *const h_api_key[H_N] = {"run", "wait"};
static const char *const h_rep_key[H_N] = {"run_ms", "wait_ms"};

/* Readings of the histograms by refreshed reports, one every SNAP_MS at
 * most, reaching back JOBS_WINDOW_MS and a reading more. */
static struct snap {
    int64_t mono;
    struct histogram h[H_N];
} snaps[SNAPS];
static size_t snaps_len, snaps_next;

/* The i-th newest reading (0: the newest). */
static const struct snap *snap_at(size_t i)
{
    return &snaps[(snaps_next + SNAPS - 1 - i) % SNAPS];
}

static void snap_add(int64_t mono, const struct histogram *h)
{
    if (snaps_len && mono - snap_at(0)->mono < SNAP_MS)
        return;
    snaps[snaps_next].mono = mono;
    memcpy(snaps[snaps_next].h, h, sizeof(snaps[snaps_next].h));
    snaps_next = (snaps_next + 1) % SNAPS;
    if (snaps_len < SNAPS)
        snaps_len++;
}

/* Where a refreshed report's window starts: the newest reading that is
 * JOBS_WINDOW_MS old or older, else (a younger monitor) the oldest. */
static const struct snap *snap_base(int64_t mono)
{
    for (size_t i = 0; i < snaps_len; i++)
        if (mono - snap_at(i)->mono >= JOBS_WINDOW_MS)
            return snap_at(i);
    return snap_at(snaps_len - 1);
}

/* *h from GET /v1/queue's histograms.<key>; false when the reply has none
 * (an older API) or not one of that shape. */
static bool histogram_from(const json_t *queue, const char *key, struct histogram *h)
{
    const json_t *o = json_object_get(json_object_get(queue, "histograms"), key);
    const json_t *le = json_object_get(o, "le_ms"), *counts = json_object_get(o, "counts");
    const json_t *count = json_object_get(o, "count"), *sum = json_object_get(o, "sum_ms");
    size_t n = json_array_size(le);
    *h = (struct histogram){0};
    if (!n || n > HISTOGRAM_MAX || json_array_size(counts) != n || !json_is_integer(count) ||
        !json_is_number(sum))
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *b = json_array_get(le, i), *c = json_array_get(counts, i);
        if (!json_is_number(b) || !json_is_integer(c))
            return false;
        h->le[i] = json_number_value(b);
        h->cum[i] = json_integer_value(c);
    }
    h->n = n;
    h->count = json_integer_value(count);
    h->sum = json_number_value(sum);
    return true;
}

/* d[k] = now[k] minus the readings at the start of a refreshed report's
 * window (recording now); its label into over. Returns the window's span
 * in seconds. */
static long long window_diff(const struct histogram *now, struct histogram *d, char *over,
                             size_t overlen)
{
    int64_t mono = util_mono_ms();
    snap_add(mono, now);
    const struct snap *base = snap_base(mono);
    bool ok = true;
    for (int k = 0; k < H_N; k++)
        ok = ok && histogram_sub(&now[k], &base->h[k], &d[k]);
    if (!ok) {
        /* A count went down (the stats were reset) or the buckets changed:
         * the window starts again from this reading. */
        snaps_len = 0;
        snap_add(mono, now);
        base = snap_base(mono);
        for (int k = 0; k < H_N; k++)
            histogram_sub(&now[k], &base->h[k], &d[k]);
    }
    int64_t span = mono - base->mono;
    if (span >= JOBS_WINDOW_MS)
        snprintf(over, overlen, "last %d min", JOBS_WINDOW_MS / 60000);
    else
        snprintf(over, overlen, "since the monitor started");
    return (long long)(span + 500) / 1000;
}

static json_t *ms_or_null(double v)
{
    return isfinite(v) && v >= 0 ? json_integer(llround(v)) : json_null();
}

/* {count, p50, p95, mean} in ms of h, as histogram_quantile() estimates
 * them; nulls for what is not known. *ret_mean: the mean, or -1. */
static json_t *time_stats(const struct histogram *h, bool known, long long *ret_mean)
{
    double mean = known ? histogram_mean(h) : NAN;
    *ret_mean = isfinite(mean) && mean >= 0 ? llround(mean) : -1;
    return json_pack("{s:o, s:o, s:o, s:o}", "count", known ? json_integer(h->count) : json_null(),
                     "p50", ms_or_null(known ? histogram_quantile(h, 0.5) : NAN), "p95",
                     ms_or_null(known ? histogram_quantile(h, 0.95) : NAN), "mean",
                     ms_or_null(mean));
}

/* The report's run and wait times, from the histograms of GET /v1/queue:
 * over everything they hold for one report, over the window for refreshed
 * ones. The label of what they are over into over; *ret_wait: the mean
 * wait in ms, or -1; *ret_starts: the starts it is over. */
static json_t *jobs_json(const json_t *queue, bool once, char *over, size_t overlen,
                         long long *ret_wait, long long *ret_starts)
{
    struct histogram now[H_N], d[H_N];
    bool known = true;
    for (int k = 0; k < H_N; k++)
        known = histogram_from(queue, h_api_key[k], &now[k]) && known;
    long long span = -1;
    if (once)
        snprintf(over, overlen, "since stats began");
    else
        snprintf(over, overlen, "last %d min", JOBS_WINDOW_MS / 60000);
    if (known && !once)
        span = window_diff(now, d, over, overlen);
    else
        memcpy(d, now, sizeof(d));
    json_t *jobs = json_object();
    json_object_set_new(jobs, "over", json_string(over));
    json_object_set_new(jobs, "window_s", span >= 0 ? json_integer(span) : json_null());
    long long mean[H_N];
    for (int k = 0; k < H_N; k++)
        json_object_set_new(jobs, h_rep_key[k], time_stats(&d[k], known, &mean[k]));
    *ret_wait = mean[H_WAIT];
    *ret_starts = known ? d[H_WAIT].count : 0;
    return jobs;
}

/* ------------------------------------------------------------ reading */

/* What one refresh read from the API. */
struct reads {
    json_t *queue, *workers, *succ, *failed, *running;
};

static void reads_free(struct reads *rd)
{
    json_decref(rd->queue);
    json_decref(rd->workers);
    json_decref(rd->succ);
    json_decref(rd->failed);
    json_decref(rd->running);
}

/* Reads the queue and the workers, and the listings that a full read, or
 * (following the stream) a running job whose start is not known, needs;
 * brings js up to date. With follow (the stream is open and js valid),
 * only what the events did not bring. CLI_OK, or CLI_API_ERROR with a
 * message in err. */
static int read_api(bool follow, struct reads *rd, char *err, size_t errlen)
{
    bool full = !follow || !js.valid || util_mono_ms() - js.read_mono >= RESYNC_MS;
    int r = cli_get_json("/v1/queue", &rd->queue, err, errlen);
    if (r == CLI_OK)
        r = cli_get_json("/v1/workers", &rd->workers, err, errlen);
    if (r == CLI_OK && full)
        r = get_listing(QUEUE_STATUS_SUCCEEDED, LISTING_LIMIT, &rd->succ, err, errlen);
    if (r == CLI_OK && full)
        r = get_listing(QUEUE_STATUS_FAILED, LISTING_LIMIT, &rd->failed, err, errlen);
    if (r == CLI_OK && (full || start_unknown(rd->workers)))
        r = get_listing(QUEUE_STATUS_RUNNING, LISTING_LIMIT, &rd->running, err, errlen);
    if (r != CLI_OK)
        return r;
    if (full) {
        jobs_read(rd->succ, rd->failed, rd->running, util_now_ms());
    } else if (rd->running) {
        started_from(rd->running);
        /* What the listing does not know will not be asked again. */
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(rd->workers, "workers"), i, w)
        {
            const char *cur = json_string_value(json_object_get(w, "current_job"));
            if (cur && *cur && !started_find(cur))
                started_put(cur, -1);
        }
    }
    return CLI_OK;
}

/* ------------------------------------------------------------ the parts */

/* {name, pending, processing, scheduled, dead, held, backlog, paused,
 * paused_tenants} of GET /v1/queue (an API without tenants gives no held,
 * backlog or pause: 0, pending + scheduled, not paused). */
static json_t *queue_json(const json_t *queue, long long *ret_pending)
{
    static const char *const keys[] = {"pending", "processing", "scheduled", "dead", "held"};
    long long v[ARRAY_SIZE(keys)], backlog;
    json_t *q = json_object();
    json_object_set(q, "name", json_object_get(queue, "queue") ?: json_null());
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        v[i] = 0;
        cli_field_num(queue, keys[i], &v[i]);
        json_object_set_new(q, keys[i], json_integer(v[i]));
    }
    if (!cli_field_num(queue, "backlog", &backlog))
        backlog = v[0] + v[4] + v[2];
    json_object_set_new(q, "backlog", json_integer(backlog));
    json_object_set_new(q, "paused", json_boolean(json_is_true(json_object_get(queue, "paused"))));
    json_t *tenants = json_object_get(queue, "paused_tenants");
    json_object_set_new(q, "paused_tenants",
                        json_is_array(tenants) ? json_deep_copy(tenants) : json_array());
    *ret_pending = v[0];
    return q;
}

/* Throughput: jobs that finished (succeeded or failed) in the last 60 s,
 * from the listings' finished_ms and the events since. */
static json_t *throughput_json(int64_t now)
{
    bool capped = js.capped && util_mono_ms() - js.read_mono < THROUGHPUT_WINDOW_MS;
    long long ns = finished_in_window(0, now), nf = finished_in_window(1, now);
    json_t *tp = json_object();
    json_object_set_new(tp, "window_s", json_integer(THROUGHPUT_WINDOW_MS / 1000));
    json_object_set_new(tp, "per_min", json_integer(ns + nf));
    json_object_set_new(tp, queue_status_name(QUEUE_STATUS_SUCCEEDED), json_integer(ns));
    json_object_set_new(tp, queue_status_name(QUEUE_STATUS_FAILED), json_integer(nf));
    json_object_set_new(tp, "capped", json_boolean(capped));
    return tp;
}

/* The RSS of a worker of this machine, or -1 (the process table is read
 * on first use, into pt). */
static long long worker_rss(const json_t *j, bool has_pid, long long pid, struct ptree *pt,
                            bool *have_table)
{
    static char host[256];
    const char *wh = json_string_value(json_object_get(j, "host"));
    if (!host[0])
        gethostname(host, sizeof(host) - 1);
    if (!has_pid || pid <= 0 || !wh || strcmp(wh, host))
        return -1;
    if (!*have_table) {
        ptree_read(pt);
        *have_table = true;
    }
    return ptree_is_stratq(pt, (int)pid) ? ptree_rss_bytes(pt, (int)pid) : -1;
}

/* One worker of GET /v1/workers, in state, as the report lists it. */
static json_t *worker_json(const json_t *j, const char *state, int64_t now, struct ptree *pt,
                           bool *have_table)
{
    const char *cur = json_string_value(json_object_get(j, "current_job"));
    json_t *w = json_object();
    json_object_set(w, "id", json_object_get(j, "id") ?: json_null());
    json_object_set(w, "host", json_object_get(j, "host") ?: json_null());
    long long pid = 0, v, beat;
    bool has_pid = cli_field_num(j, "pid", &pid);
    json_object_set_new(w, "pid", has_pid ? json_integer(pid) : json_null());
    json_object_set_new(w, "state", json_string(state));
    json_object_set_new(w, "current_job", cur && *cur ? json_string(cur) : json_null());
    json_t *elapsed = json_null();
    struct started *st = cur && *cur ? started_find(cur) : NULL;
    if (st) {
        st->seen_mono = util_mono_ms();
        if (st->started_ms >= 0)
            elapsed = json_integer(now - st->started_ms > 0 ? now - st->started_ms : 0);
    }
    json_object_set_new(w, "current_job_elapsed_ms", elapsed);
    static const char *const nkeys[] = {"jobs_done", "jobs_failed"};
    for (size_t k = 0; k < ARRAY_SIZE(nkeys); k++) {
        v = 0;
        cli_field_num(j, nkeys[k], &v);
        json_object_set_new(w, nkeys[k], json_integer(v));
    }
    long long rss = worker_rss(j, has_pid, pid, pt, have_table);
    json_object_set_new(w, "rss_bytes", rss >= 0 ? json_integer(rss) : json_null());
    bool beat_known = cli_field_num(j, "last_heartbeat_ms", &beat) && beat > 0;
    json_object_set_new(w, "last_heartbeat_ms", beat_known ? json_integer(beat) : json_null());
    json_object_set_new(w, "heartbeat_age_ms",
                        beat_known ? json_integer(now - beat > 0 ? now - beat : 0) : json_null());
    return w;
}

/* {count, busy, by_state, list} of GET /v1/workers; count and busy are of
 * the live (not lost) workers. */
static json_t *workers_json(const json_t *workers, int64_t now, long long *ret_live,
                            long long *ret_busy)
{
    struct ptree pt = {0};
    bool have_table = false;
    json_t *list = json_array(), *by_state = json_object();
    long long live = 0, busy = 0;
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(workers, "workers"), i, j)
    {
        const char *state = json_string_value(json_object_get(j, "state"));
        const char *cur = json_string_value(json_object_get(j, "current_job"));
        if (!state)
            state = "unknown";
        json_object_set_new(by_state, state,
                            json_integer(json_integer_value(json_object_get(by_state, state)) + 1));
        if (strcmp(state, "lost")) {
            live++;
            if (!strcmp(state, "busy") || (cur && *cur))
                busy++;
        }
        json_array_append_new(list, worker_json(j, state, now, &pt, &have_table));
    }
    ptree_free(&pt);
    *ret_live = live;
    *ret_busy = busy;
    return json_pack("{s:I, s:I, s:o, s:o}", "count", (json_int_t)live, "busy", (json_int_t)busy,
                     "by_state", by_state, "list", list);
}

/* Forgets the starts no worker has run for a while: jobs whose end was
 * missed. */
static void started_expire(void)
{
    for (size_t k = 0; k < js.nstarted;)
        if (util_mono_ms() - js.started[k].seen_mono > THROUGHPUT_WINDOW_MS)
            js.started[k] = js.started[--js.nstarted];
        else
            k++;
}

/* Reads the API (read_api) and builds the report; records a queue sample.
 * CLI_OK, or CLI_API_ERROR with a message in err. */
static int collect(bool once, bool follow, json_t **ret, char *err, size_t errlen)
{
    struct reads rd = {0};
    int r = read_api(follow, &rd, err, errlen);
    if (r != CLI_OK) {
        reads_free(&rd);
        return r;
    }
    int64_t now = util_now_ms();
    long long pending = 0, live, busy, mean_wait, starts;
    char over[64], wait_over[96];
    json_t *rep = json_object();
    json_object_set_new(rep, "time_ms", json_integer(now));
    json_object_set_new(rep, "api_url", json_string(config_str(CFG_API_URL)));
    json_object_set_new(rep, "queue", queue_json(rd.queue, &pending));
    json_object_set_new(rep, "throughput", throughput_json(now));
    json_object_set_new(rep, "jobs",
                        jobs_json(rd.queue, once, over, sizeof(over), &mean_wait, &starts));
    json_object_set_new(rep, "workers", workers_json(rd.workers, now, &live, &busy));
    started_expire();
    hist_add(now, pending, (int)busy, (int)live);
    snprintf(wait_over, sizeof(wait_over), "%lld jobs, %s", starts, over);
    json_object_set_new(rep, "advice", advice(live, mean_wait, starts, wait_over, once, now));
    reads_free(&rd);
    *ret = rep;
    return CLI_OK;
}

/* ------------------------------------------------------------ text */

/* The queue's sparkline over the last 10 minutes in width cells, each the
 * largest queue length sampled in its slice of time; blank where there is
 * no sample yet. *ret_peak: the largest length in the 10 minutes. */
static void sparkline(int64_t now_ms, int width, bool utf8, FILE *f, long long *ret_peak)
{
    static const char *const blocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static const char ascii[] = "_.-:=+*#";
    long long *cell = malloc((size_t)width * sizeof(*cell));
    long long peak = 0;
    if (!cell)
        return;
    for (int c = 0; c < width; c++)
        cell[c] = -1;
    for (size_t i = 0; i < hist_len; i++) {
        const struct sample *s = hist_at(i);
        int64_t age = now_ms - s->t_ms;
        if (age < 0)
            age = 0;
        if (age >= HISTORY_MS)
            continue;
        int c = width - 1 - (int)(age * width / HISTORY_MS);
        if (s->pending > cell[c])
            cell[c] = s->pending;
        if (s->pending > peak)
            peak = s->pending;
    }
    for (int c = 0; c < width; c++) {
        if (cell[c] < 0) {
            fputc(' ', f);
            continue;
        }
        int level = peak ? (int)((cell[c] * 7 + peak - 1) / peak) : 0;
        if (utf8)
            fputs(blocks[level], f);
        else
            fputc(ascii[level], f);
    }
    free(cell);
    *ret_peak = peak;
}

static const char *dur(const json_t *o, const char *k, char *buf, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return "-";
    cli_fmt_duration(json_integer_value(v), buf, n);
    return buf;
}

static const char *str_or_dash(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : "-";
}

static int width_of(const json_t *list, const char *k, int min)
{
    size_t i;
    json_t *w;
    int n = min;
    json_array_foreach(list, i, w)
    {
        int l = (int)strlen(str_or_dash(w, k));
        if (l > n)
            n = l;
    }
    return n;
}

/* "PAUSED      the whole queue ..." or "PAUSED      tenants a, b" while
 * anything is paused. */
static void render_paused(const json_t *q, FILE *f)
{
    const json_t *tenants = json_object_get(q, "paused_tenants");
    if (json_is_true(json_object_get(q, "paused")))
        fprintf(f, "PAUSED      the whole queue: nothing new starts (stratq resume)\n");
    if (!json_array_size(tenants))
        return;
    size_t i;
    json_t *t;
    fprintf(f, "PAUSED      tenant%s ", json_array_size(tenants) > 1 ? "s" : "");
    json_array_foreach(tenants, i, t)
        fprintf(f, "%s%s", i ? ", " : "", json_string_value(t) ?: "?");
    fprintf(f, " (stratq resume --tenant T)\n");
}

/* The header, the queue with its sparkline, the job counts and the
 * throughput. */
static void render_queue(const json_t *rep, int spark_width, bool utf8, FILE *f)
{
    char when[32] = "-";
    int64_t now = json_integer_value(json_object_get(rep, "time_ms"));
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "stratq monitor  %s  API %s\n", when, str_or_dash(rep, "api_url"));

    json_t *q = json_object_get(rep, "queue");
    long long peak = 0;
    fprintf(f, "queue       %-4" JSON_INTEGER_FORMAT " ",
            json_integer_value(json_object_get(q, "pending")));
    sparkline(now, spark_width, utf8, f, &peak);
    fprintf(f, "  (10 min, peak %lld)\n", peak);
    fprintf(f,
            "jobs        processing %" JSON_INTEGER_FORMAT "  scheduled %" JSON_INTEGER_FORMAT
            "  dead %" JSON_INTEGER_FORMAT "  held %" JSON_INTEGER_FORMAT
            "  backlog %" JSON_INTEGER_FORMAT "\n",
            json_integer_value(json_object_get(q, "processing")),
            json_integer_value(json_object_get(q, "scheduled")),
            json_integer_value(json_object_get(q, "dead")),
            json_integer_value(json_object_get(q, "held")),
            json_integer_value(json_object_get(q, "backlog")));
    render_paused(q, f);
    json_t *tp = json_object_get(rep, "throughput");
    fprintf(f,
            "throughput  %s%" JSON_INTEGER_FORMAT "/min  (%" JSON_INTEGER_FORMAT
            " succeeded, %" JSON_INTEGER_FORMAT " failed in the last 60 s)\n",
            json_is_true(json_object_get(tp, "capped")) ? ">=" : "",
            json_integer_value(json_object_get(tp, "per_min")),
            json_integer_value(json_object_get(tp, queue_status_name(QUEUE_STATUS_SUCCEEDED))),
            json_integer_value(json_object_get(tp, queue_status_name(QUEUE_STATUS_FAILED))));
}

/* The run and wait times: "run time    p50 1.7s     p95 2.4s     mean 1.3s
 * (12 finished, last 5 min)". */
static void render_times(const json_t *rep, FILE *f)
{
    static const char *const rows[][3] = {{"run time ", "run_ms", "finished"},
                                          {"wait time", "wait_ms", "started"}};
    const json_t *jobs = json_object_get(rep, "jobs");
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        const json_t *st = json_object_get(jobs, rows[i][1]);
        char a[32], b[32], c[32], n[32] = "-";
        const json_t *count = json_object_get(st, "count");
        if (json_is_integer(count))
            snprintf(n, sizeof(n), "%" JSON_INTEGER_FORMAT, json_integer_value(count));
        fprintf(f, "%s   p50 %-8s p95 %-8s mean %-8s (%s %s, %s)\n", rows[i][0],
                dur(st, "p50", a, sizeof(a)), dur(st, "p95", b, sizeof(b)),
                dur(st, "mean", c, sizeof(c)), n, rows[i][2], str_or_dash(jobs, "over"));
    }
}

/* The workers' line, and a table of them when there are any. */
static void render_workers(const json_t *rep, FILE *f)
{
    json_t *ws = json_object_get(rep, "workers"), *list = json_object_get(ws, "list");
    json_t *util = json_object_get(json_object_get(rep, "advice"), "utilisation_percent");
    fprintf(f, "workers     %" JSON_INTEGER_FORMAT " live, %" JSON_INTEGER_FORMAT " busy",
            json_integer_value(json_object_get(ws, "count")),
            json_integer_value(json_object_get(ws, "busy")));
    if (json_is_number(util))
        fprintf(f, ", utilisation %.0f%%", json_number_value(util));
    fprintf(f, "\n");
    if (!json_array_size(list))
        return;
    int wid = width_of(list, "id", 2), wh = width_of(list, "host", 4),
        wj = width_of(list, "current_job", 3);
    fprintf(f, "  %-*s  %-*s  %-8s  %-*s  %8s  %6s  %6s  %9s  %s\n", wid, "ID", wh, "HOST", "STATE",
            wj, "JOB", "ELAPSED", "DONE", "FAILED", "RSS", "HEARTBEAT");
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w)
    {
        char rss[32] = "-", beat[40] = "-", a[32];
        json_t *rb = json_object_get(w, "rss_bytes");
        if (json_is_integer(rb))
            snprintf(rss, sizeof(rss), "%.1f MiB", json_integer_value(rb) / 1048576.0);
        if (json_is_integer(json_object_get(w, "heartbeat_age_ms"))) {
            dur(w, "heartbeat_age_ms", beat, sizeof(beat) - 4);
            strcat(beat, " ago");
        }
        fprintf(f,
                "  %-*s  %-*s  %-8s  %-*s  %8s  %6" JSON_INTEGER_FORMAT "  %6" JSON_INTEGER_FORMAT
                "  %9s  %s\n",
                wid, str_or_dash(w, "id"), wh, str_or_dash(w, "host"), str_or_dash(w, "state"), wj,
                str_or_dash(w, "current_job"), dur(w, "current_job_elapsed_ms", a, sizeof(a)),
                json_integer_value(json_object_get(w, "jobs_done")),
                json_integer_value(json_object_get(w, "jobs_failed")), rss, beat);
    }
}

static void render_advice(const json_t *rep, FILE *f)
{
    json_t *adv = json_object_get(rep, "advice");
    const char *action = json_string_value(json_object_get(adv, "action"));
    const char *wanted = json_string_value(json_object_get(adv, "wanted"));
    fprintf(f, "advice      ");
    if (!strcmp(action, "scale_up") || !strcmp(action, "scale_down"))
        fprintf(f, "scale %s to %" JSON_INTEGER_FORMAT " workers: ",
                !strcmp(action, "scale_up") ? "up" : "down",
                json_integer_value(json_object_get(adv, "suggested_workers")));
    else if (strcmp(wanted, "hold"))
        fprintf(f, "hold (the guide says scale %s): ", !strcmp(wanted, "scale_up") ? "up" : "down");
    else
        fprintf(f, "hold: ");
    size_t i;
    json_t *rs;
    json_array_foreach(json_object_get(adv, "reasons"), i, rs)
        fprintf(f, "%s%s", i ? "; " : "", json_string_value(rs));
    fprintf(f, "\n");
    if (json_is_string(json_object_get(adv, "note")))
        fprintf(f, "            note: %s\n", json_string_value(json_object_get(adv, "note")));
}

static void render_text(const json_t *rep, int spark_width, bool utf8, const char *error, FILE *f)
{
    render_queue(rep, spark_width, utf8, f);
    render_times(rep, f);
    render_workers(rep, f);
    render_advice(rep, f);
    if (error)
        fprintf(f, "error       %s (showing the last report; retrying)\n", error);
}

/* ------------------------------------------------------------ screen */

/* Draws the report on the alternate screen: home, each line cut to the
 * width and cleared to its end, the rest of the screen cleared. */
static void draw_screen(const json_t *rep, bool utf8, const char *error)
{
    struct winsize wsz = {0};
    int cols = 80, rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &wsz) == 0 && wsz.ws_col > 0) {
        cols = wsz.ws_col;
        rows = wsz.ws_row > 0 ? wsz.ws_row : 24;
    }
    int spark = cols - 40;
    if (spark > 120)
        spark = 120;
    if (spark < 10)
        spark = 10;
    char *text = NULL, *frame = NULL;
    size_t tlen = 0, flen = 0;
    FILE *tf = open_memstream(&text, &tlen);
    if (!tf)
        return;
    render_text(rep, spark, utf8, error, tf);
    fclose(tf);
    FILE *ff = open_memstream(&frame, &flen);
    if (!ff) {
        free(text);
        return;
    }
    fputs("\033[H", ff);
    int row = 0;
    for (char *line = text, *nl; line && *line && row < rows; line = nl ? nl + 1 : NULL, row++) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (row == rows - 1 && nl && nl[1]) {
            fputs("(more: enlarge the terminal, or use --once)", ff);
            fputs("\033[K", ff);
            break;
        }
        int cells = 0;
        for (char *p = line; *p; p++) {
            if (((unsigned char)*p & 0xc0) != 0x80 && cells++ >= cols - 1)
                break;
            fputc(*p, ff);
        }
        fputs("\033[K", ff);
        if (row < rows - 1)
            fputs("\r\n", ff);
    }
    fputs("\033[J", ff);
    fclose(ff);
    fwrite(frame, 1, flen, stdout);
    fflush(stdout);
    free(text);
    free(frame);
}

static bool screen_on;

static void screen_enter(void)
{
    fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
    fflush(stdout);
    screen_on = true;
}

static void screen_leave(void)
{
    if (!screen_on)
        return;
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    screen_on = false;
}

/* The signals that stop the monitor (on_stop), and SIGWINCH (on_winch). */
static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};

static void signals_catch(struct sigaction old[ARRAY_SIZE(signals)])
{
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
        sa.sa_handler = signals[i] == SIGWINCH ? on_winch : on_stop;
        sigaction(signals[i], &sa, &old[i]);
    }
    cli_abort = &stop_flag;
}

static void signals_restore(const struct sigaction old[ARRAY_SIZE(signals)])
{
    cli_abort = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        sigaction(signals[i], &old[i], NULL);
}

/* Until next (monotonic ms): the job events as they come (blocked on the
 * stream's socket, or asleep without one), or a signal; a resized terminal
 * gets shown (the last report, when on a terminal) again. */
static void follow_until(struct sse_jobs *events, int64_t next, const json_t *shown, bool utf8,
                         const char *shown_err)
{
    for (int64_t left; !stop_flag && (left = next - util_mono_ms()) > 0;) {
        if (resized) {
            resized = 0;
            if (shown)
                draw_screen(shown, utf8, shown_err);
        }
        json_t *ev = NULL;
        int e = sse_jobs_next(events, (int)left, &ev);
        if (e == 1) {
            jobs_event(ev);
            json_decref(ev);
        } else if (e < 0) {
            js.valid = false;
        }
    }
}

static void print_json_report(const json_t *rep)
{
    char *s = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (s)
        puts(s);
    free(s);
    fflush(stdout);
}

/* The reports until stopped (one with once): JSON, full-screen on a
 * terminal (tty), or plain text. Returns the exit code. */
static int run_reports(bool once, bool json_out, bool tty, bool utf8)
{
    char err[600];
    int r;
    json_t *last = NULL;
    int rc = CLI_OK;
    struct sse_jobs events = {0};
    for (int64_t next = util_mono_ms(); !stop_flag;) {
        /* Refreshed reports follow the job events; a stream opened just
         * now has missed what came before, so everything is read again. */
        if (!once && sse_jobs_connect(&events))
            js.valid = false;
        json_t *rep = NULL;
        err[0] = '\0';
        r = collect(once, sse_jobs_open(&events), &rep, err, sizeof(err));
        if (stop_flag) {
            json_decref(rep);
            break;
        }
        if (r != CLI_OK && !last) {
            /* The first read failed: nothing to show; say why and stop. */
            screen_leave();
            fprintf(stderr, "stratq: %s\n", err);
            rc = CLI_API_ERROR;
            break;
        }
        if (rep) {
            json_decref(last);
            last = rep;
        }
        const char *shown_err = r != CLI_OK ? err : NULL;
        if (json_out) {
            print_json_report(last);
        } else if (tty) {
            if (!screen_on)
                screen_enter();
            draw_screen(last, utf8, shown_err);
        } else {
            render_text(last, 60, utf8, NULL, stdout);
            if (shown_err)
                fprintf(stderr, "stratq: %s\n", shown_err);
            if (!once)
                putchar('\n');
            fflush(stdout);
        }
        if (once)
            break;
        next += REFRESH_MS;
        if (next < util_mono_ms())
            next = util_mono_ms();
        follow_until(&events, next, tty ? last : NULL, utf8, shown_err);
    }
    sse_jobs_close(&events);
    screen_leave();
    json_decref(last);
    return rc;
}

int cli_monitor(int argc, char **argv)
{
    static const char usage[] =
        "stratq monitor [--once] [--json] [--env-file FILE [--window K] [--jobs N]]";
    char **args;
    int nargs;
    char err[600];
    int r = config_load(CMD_MONITOR, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(
            CMD_MONITOR, usage,
            "Shows the queue (with a sparkline of the last 10 minutes), processing, scheduled "
            "and dead jobs, throughput, run and wait time p50/p95 and mean (estimated from the "
            "API's histograms: over the last 5 minutes, or since the stats began for one "
            "report), the workers, and the worker scaling guide's advice. On a terminal it redraws "
            "full-screen every second until "
            "interrupted; otherwise it prints a plain-text report every second. --once prints "
            "one report; --json prints one JSON object (docs/operations.md lists its keys). With "
            "--env-file, it prints instead the report of scripts/monitor-workers.sh for the "
            "environment figures in FILE, one report per line read, which carries CPU and memory "
            "into the advice.");
        return CLI_OK;
    }
    if (r < 0 || nargs) {
        fprintf(stderr, "stratq: %s\nusage: %s\n", r < 0 ? err : "monitor takes no arguments",
                usage);
        return CLI_USAGE;
    }
    if (config_str(CFG_ENV_FILE)[0])
        return monitor_env(config_str(CFG_ENV_FILE), config_bool(CFG_ONCE), config_bool(CFG_JSON),
                           (int)config_int(CFG_WINDOW), (int)config_int(CFG_JOBS));
    if (config_is_set(CFG_WINDOW) || config_is_set(CFG_JOBS)) {
        fprintf(stderr, "stratq: --window and --jobs go with --env-file\nusage: %s\n", usage);
        return CLI_USAGE;
    }
    bool json_out = config_bool(CFG_JSON);
    bool once = config_bool(CFG_ONCE) || json_out;
    bool tty = !once && isatty(STDOUT_FILENO);

    struct sigaction old[ARRAY_SIZE(signals)];
    signals_catch(old);
    int rc = run_reports(once, json_out, tty, utf8_locale());
    signals_restore(old);
    return rc;
}

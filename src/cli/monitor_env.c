/* stratq monitor --env-file: the report of scripts/monitor-workers.sh
 * (docs/operations.md, "monitor-workers.sh").
 *
 * The script gathers what only the environment knows (CPU and memory per
 * container or pod from docker stats or kubectl top, the HPA, scaling
 * events, and the problems it met doing so) and writes it as one JSON
 * object a line; this reads each line, reads the API (GET /v1/queue,
 * /v1/workers and one page of succeeded jobs), and prints the report with
 * the guide's advice (src/common/advice.c) as JSON or text. The queue
 * samples of the guide's "consistently" are the last --window reports. For
 * `local` the script sends no figures: the workers run on this machine,
 * and their process trees are measured here from /proc. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/advice.h"
#include "../common/config.h"
#include "../common/util.h"
#include "cli.h"
#include "monitor.h"
#include "ptree.h"

/* A number as jq keeps it: whole numbers as integers. */
static json_t *json_num(double v)
{
    if (v == trunc(v) && fabs(v) < 1e15)
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* A copy of o's member k, or null. */
static json_t *member(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v ? json_incref(v) : json_null();
}

/* What jq's tostring prints for v (null: "-", as the report's text
 * writes an unknown value), into buf. */
static const char *text(const json_t *v, char *buf, size_t n)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_number(v)) {
        advice_fmt_num(json_number_value(v), buf, n);
        return buf;
    }
    if (json_is_true(v) || json_is_false(v))
        return json_is_true(v) ? "true" : "false";
    if (!v || json_is_null(v))
        return "-";
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, n, "%s", s ? s : "?");
    free(s);
    return buf;
}

/* ------------------------------------------------------------ sources */

/* GET path into *ret (NULL on failure, with the message appended to errs). */
static void api_read(const char *path, json_t **ret, json_t *errs)
{
    char err[1200];
    if (cli_get_json(path, ret, err, sizeof(err)) != CLI_OK) {
        *ret = NULL;
        json_array_append_new(errs, json_string(err));
    }
}

static double mem_total_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

/* The units of a `local` environment: each live stratq worker of this
 * machine (its host name is ours) and its descendants, CPU over one
 * second, as a percentage of one core, and RSS against the machine's
 * memory. */
static json_t *measure_local(const json_t *workers)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    json_t *units = json_array();
    int pids[1024];
    size_t n = 0, i;
    json_t *w;
    json_array_foreach(json_object_get(workers, "workers"), i, w)
    {
        long long pid;
        const char *h = json_string_value(json_object_get(w, "host"));
        if (h && !strcmp(h, host) && cli_field_num(w, "pid", &pid) && pid > 0 &&
            n < ARRAY_SIZE(pids))
            pids[n++] = (int)pid;
    }
    if (!n)
        return units;
    struct ptree before, after;
    if (ptree_read(&before) < 0)
        return units;
    struct timespec second = {1, 0};
    while (nanosleep(&second, &second) < 0 && errno == EINTR)
        ;
    if (ptree_read(&after) < 0) {
        ptree_free(&before);
        return units;
    }
    double total = mem_total_bytes();
    for (i = 0; i < n; i++) {
        double cpu = ptree_cpu_seconds(&before, &after, pids[i]);
        if (cpu < 0 || !ptree_is_stratq(&after, pids[i]))
            continue;
        long long bytes = ptree_rss_bytes(&after, pids[i]);
        char name[16];
        snprintf(name, sizeof(name), "%d", pids[i]);
        json_array_append_new(
            units, json_pack("{s:s, s:i, s:o, s:I, s:o}", "name", name, "pid", pids[i],
                             "cpu_percent", json_num(advice_round1(cpu * 100)), "memory_bytes",
                             (json_int_t)bytes, "memory_percent",
                             json_num(total > 0 ? advice_round1(bytes / total * 100) : 0)));
    }
    ptree_free(&before);
    ptree_free(&after);
    return units;
}

/* ------------------------------------------------------------ the report */

/* The unit (container, pod or local worker) a worker runs in: by pid for
 * local, else by name (a pod's name is its host name) or by the first 12
 * characters of a container id (a container's host name). */
static const json_t *unit_of(const json_t *units, const json_t *w, bool local)
{
    size_t i;
    json_t *u;
    const char *host = json_string_value(json_object_get(w, "host"));
    long long pid, upid;
    if (local) {
        json_array_foreach(units, i, u)
        {
            if (cli_field_num(w, "pid", &pid) && cli_field_num(u, "pid", &upid) && pid == upid)
                return u;
        }
        return NULL;
    }
    if (!host)
        return NULL;
    json_array_foreach(units, i, u)
    {
        const char *name = json_string_value(json_object_get(u, "name"));
        if (name && !strcmp(name, host))
            return u;
    }
    json_array_foreach(units, i, u)
    {
        const char *id = json_string_value(json_object_get(u, "id"));
        if (id && !strncmp(id, host, 12) && (strlen(id) >= 12) == (strlen(host) >= 12))
            return u;
    }
    return NULL;
}

static json_t *workers_report(const json_t *api, const json_t *units, bool local, int64_t now)
{
    json_t *list = json_array(), *by_state = json_object();
    long long live = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(api, "workers"), i, w)
    {
        const char *state = json_string_value(json_object_get(w, "state"));
        if (!state)
            state = "unknown";
        json_object_set_new(by_state, state,
                            json_integer(json_integer_value(json_object_get(by_state, state)) + 1));
        if (strcmp(state, "lost"))
            live++;
        const json_t *u = unit_of(units, w, local);
        long long beat;
        json_t *age = json_null();
        if (cli_field_num(w, "last_heartbeat_ms", &beat) && beat)
            age = json_num(advice_round1((double)(now - beat) / 1000));
        json_t *e = json_object();
        static const char *const keys[] = {"id",          "host",      "pid",        "state",
                                           "current_job", "jobs_done", "jobs_failed"};
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
            json_object_set_new(e, keys[k], member(w, keys[k]));
        json_object_set_new(e, "heartbeat_age_s", age);
        json_object_set_new(e, "cpu_percent", member(u, "cpu_percent"));
        json_object_set_new(e, "memory_bytes", member(u, "memory_bytes"));
        json_object_set_new(e, "memory_percent", member(u, "memory_percent"));
        json_array_append_new(list, e);
    }
    return json_pack("{s:I, s:o, s:o}", "count", (json_int_t)live, "by_state", by_state, "list",
                     list);
}

/* Nearest-rank p50 and p95 and the mean of n values. */
struct pct {
    bool known; /* false when n is 0 */
    long long p50, p95;
    double mean;
};

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The percentiles of v[0..n) (sorted here). */
static void pct_of(long long *v, size_t n, struct pct *ret)
{
    *ret = (struct pct){0};
    if (!n)
        return;
    qsort(v, n, sizeof(*v), cmp_ll);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    size_t i50 = (50 * n + 99) / 100, i95 = (95 * n + 99) / 100;
    *ret = (struct pct){true, v[i50 ? i50 - 1 : 0], v[i95 ? i95 - 1 : 0], sum / (double)n};
}

/* Wait (started - created) and run (finished - started) times in ms of
 * the first max jobs of a GET /v1/jobs page that have all three times.
 * Returns how many were written. */
static size_t job_times(const json_t *page, size_t max, long long *waits, long long *runs)
{
    size_t n = 0, i;
    json_t *j;
    json_array_foreach(json_object_get(page, "jobs"), i, j)
    {
        long long c, s, f;
        if (i >= max)
            break;
        if (cli_field_num(j, "created_ms", &c) && cli_field_num(j, "started_ms", &s) &&
            cli_field_num(j, "finished_ms", &f)) {
            waits[n] = s - c;
            runs[n] = f - s;
            n++;
        }
    }
    return n;
}

/* {p50, p95, mean} in seconds, in tenths, of ms values (sorted here). */
static json_t *seconds(long long *v, size_t n, double *ret_mean)
{
    struct pct p;
    pct_of(v, n, &p);
    *ret_mean = p.known ? advice_round1(p.mean / 1000) : ADVICE_UNKNOWN;
    if (!p.known)
        return json_pack("{s:n, s:n, s:n}", "p50", "p95", "mean");
    return json_pack("{s:o, s:o, s:o}", "p50", json_num(advice_round1(p.p50 / 1000.0)), "p95",
                     json_num(advice_round1(p.p95 / 1000.0)), "mean", json_num(*ret_mean));
}

/* The average of the units' key, in tenths; < 0 when no unit has it. */
static double unit_avg(const json_t *units, const char *key)
{
    double sum = 0;
    int n = 0;
    size_t i;
    json_t *u;
    json_array_foreach(units, i, u)
    {
        json_t *v = json_object_get(u, key);
        if (json_is_number(v)) {
            sum += json_number_value(v);
            n++;
        }
    }
    return n ? advice_round1(sum / n) : ADVICE_UNKNOWN;
}

static json_t *pct_or_null(double v)
{
    return v < 0 ? json_null() : json_num(v);
}

/* The API's queue, workers and last jobs (at most jobs of them), each
 * NULL when it could not be read; the problems met, the script's first,
 * are in the array returned. */
static json_t *env_sources(const json_t *env, int jobs, json_t **queue, json_t **workers,
                           json_t **page)
{
    json_t *errs = json_array();
    char path[96];
    snprintf(path, sizeof(path), "/v1/jobs?status=succeeded&limit=%d", jobs);
    api_read("/v1/queue", queue, errs);
    api_read("/v1/workers", workers, errs);
    api_read(path, page, errs);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(env, "errors"), i, e)
    {
        if (json_is_string(e))
            json_array_append(errs, e);
    }
    return errs;
}

/* The report's "queue" from the API's (null when unknown), with its
 * pending count in *pending (ADVICE_UNKNOWN when unknown). */
static json_t *queue_report(const json_t *queue, long long *pending)
{
    *pending = ADVICE_UNKNOWN;
    if (!queue)
        return json_null();
    json_t *q = json_pack("{s:o}", "name", member(queue, "queue"));
    static const char *const keys[] = {"pending", "processing", "scheduled", "dead"};
    for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
        json_object_set_new(q, keys[k], member(queue, keys[k]));
    if (!cli_field_num(queue, "pending", pending))
        *pending = ADVICE_UNKNOWN;
    return q;
}

/* The report's "jobs" from a page of succeeded jobs (null when unknown),
 * with their mean wait in *mean_wait and their number in *sample. */
static json_t *jobs_report(const json_t *page, int jobs, double *mean_wait, long long *sample)
{
    *mean_wait = ADVICE_UNKNOWN;
    *sample = 0;
    if (!page)
        return json_null();
    long long waits[500], runs[500];
    size_t n = job_times(page, (size_t)jobs, waits, runs);
    double mean_run;
    *sample = (long long)n;
    return json_pack("{s:I, s:s, s:o, s:o}", "sample", (json_int_t)n, "status", "succeeded",
                     "wait_s", seconds(waits, n, mean_wait), "run_s", seconds(runs, n, &mean_run));
}

/* The report's first members: the environment's name, the time of now
 * (ms) and the API's URL. */
static json_t *report_head(const char *name, int64_t now)
{
    char when[32] = "";
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:s, s:I, s:s}", "env", name, "time", when, "time_ms", (json_int_t)now,
                     "api_url", config_str(CFG_API_URL));
}

/* Puts pending first in the window hist (window long, *nhist of it
 * filled), the earlier reports' after it. */
static void window_push(long long *hist, size_t *nhist, size_t window, long long pending)
{
    memmove(hist + 1, hist, (window - 1) * sizeof(*hist));
    hist[0] = pending;
    if (*nhist < window)
        (*nhist)++;
}

/* The report of one sample. hist holds the queue lengths of the earlier
 * reports, newest first (nhist of them), and gets this one's. */
static json_t *env_report(const json_t *env, long long *hist, size_t *nhist, size_t window,
                          int jobs)
{
    int64_t now = util_now_ms();
    json_t *queue = NULL, *workers = NULL, *page = NULL;
    json_t *errs = env_sources(env, jobs, &queue, &workers, &page);

    const char *name = json_string_value(json_object_get(env, "env"));
    bool local = !strcmp(name, "local");
    json_t *units = json_object_get(env, "units");
    units = json_is_array(units) ? json_incref(units)
            : local && workers   ? measure_local(workers)
                                 : json_array();

    json_t *rep = report_head(name, now);
    long long pending;
    json_object_set_new(rep, "queue", queue_report(queue, &pending));
    json_t *wrep = workers ? workers_report(workers, units, local, now) : json_null();
    json_object_set_new(rep, "workers", wrep);
    double mean_wait;
    long long sample;
    json_object_set_new(rep, "jobs", jobs_report(page, jobs, &mean_wait, &sample));

    double cpu = unit_avg(units, "cpu_percent"), mem = unit_avg(units, "memory_percent");
    const char *source = json_string_value(json_object_get(env, "source"));
    json_object_set_new(rep, "resources",
                        json_pack("{s:s, s:o, s:o, s:o}", "source", source ? source : "none",
                                  "cpu_percent_avg", pct_or_null(cpu), "memory_percent_avg",
                                  pct_or_null(mem), "units", units));
    json_t *hpa = json_object_get(env, "hpa");
    hpa = json_is_object(hpa) ? hpa : NULL;
    json_object_set_new(rep, "hpa", hpa ? json_incref(hpa) : json_null());
    json_t *events = json_object_get(env, "events");
    json_object_set_new(rep, "events", json_is_array(events) ? json_incref(events) : json_array());
    json_object_set_new(rep, "errors", errs);

    /* The window: this report's queue first, then the earlier ones'. */
    window_push(hist, nhist, window, pending);
    long long count = ADVICE_UNKNOWN;
    if (!cli_field_num(wrep, "count", &count) && !cli_field_num(hpa, "current", &count))
        count = ADVICE_UNKNOWN;
    long long hmin = 0, hmax = 0;
    cli_field_num(hpa, "min", &hmin);
    cli_field_num(hpa, "max", &hmax);
    struct advice_in in = {
        .pending = hist,
        .npending = *nhist,
        .wait_s = mean_wait,
        .wait_jobs = sample,
        .basis = ADVICE_BASIS_RESOURCES,
        .busy_percent = ADVICE_UNKNOWN,
        .cpu_percent = cpu,
        .memory_percent = mem,
        .workers = count,
        .env = name,
        .autoscaler = hpa ? json_string_value(json_object_get(hpa, "name")) ?: "" : NULL,
        .autoscaler_min = hmin,
        .autoscaler_max = hmax,
    };
    json_t *adv = json_object();
    advice_fill_json(&in, adv);
    json_object_set_new(rep, "advice", adv);
    json_decref(queue);
    json_decref(workers);
    json_decref(page);
    return rep;
}

/* ------------------------------------------------------------ text */

/* s and spaces up to width n, or s and one space when it is as long. */
static void pad(FILE *f, const char *s, int n)
{
    int len = (int)strlen(s);
    fprintf(f, "%s%*s", s, len >= n ? 1 : n - len, "");
}

static const char *mib(const json_t *v, char *buf, size_t n)
{
    if (!json_is_number(v))
        return "-";
    char num[32];
    advice_fmt_num(advice_round1(json_number_value(v) / 1048576), num, sizeof(num));
    snprintf(buf, n, "%s MiB", num);
    return buf;
}

/* "p50 X s" with "-" for an unknown value. */
static const char *secs(const json_t *o, const char *k, char *buf, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        return "-";
    char num[32];
    snprintf(buf, n, "%s s", text(v, num, sizeof(num)));
    return buf;
}

/* The report's text: its first line and the queue's. */
static void render_head(const json_t *r, FILE *f)
{
    char a[64], b[64], c[64], d[64];
    const json_t *q = json_object_get(r, "queue");
    fprintf(f, "stratq workers: %s  %s  (API %s)\n", text(json_object_get(r, "env"), a, 64),
            text(json_object_get(r, "time"), b, 64), text(json_object_get(r, "api_url"), c, 64));
    if (json_is_object(q))
        fprintf(f, "queue     pending %s  processing %s  scheduled %s  dead %s\n",
                text(json_object_get(q, "pending"), a, 64),
                text(json_object_get(q, "processing"), b, 64),
                text(json_object_get(q, "scheduled"), c, 64),
                text(json_object_get(q, "dead"), d, 64));
    else
        fprintf(f, "queue     unknown\n");
}

/* The workers' counts by state, then a table of them. */
static void render_workers(const json_t *w, FILE *f)
{
    char a[64];
    size_t i;
    json_t *x;
    if (!json_is_object(w)) {
        fprintf(f, "workers   unknown\n");
        return;
    }
    fprintf(f, "workers   %s live (", text(json_object_get(w, "count"), a, 64));
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)json_object_get(w, "by_state"), k, v)
    {
        fprintf(f, "%s%s %s", first ? "" : ", ", k, text(v, a, 64));
        first = false;
    }
    fprintf(f, ")\n  ");
    static const char *const head[] = {"ID", "STATE", "JOB", "DONE", "FAILED", "CPU%"};
    static const int width[] = {24, 9, 30, 7, 7, 7};
    for (size_t k2 = 0; k2 < ARRAY_SIZE(head); k2++)
        pad(f, head[k2], width[k2]);
    fprintf(f, "MEMORY\n");
    json_array_foreach(json_object_get(w, "list"), i, x)
    {
        static const char *const keys[] = {"id",        "state",       "current_job",
                                           "jobs_done", "jobs_failed", "cpu_percent"};
        fprintf(f, "  ");
        for (size_t k2 = 0; k2 < ARRAY_SIZE(keys); k2++)
            pad(f, text(json_object_get(x, keys[k2]), a, 64), width[k2]);
        fprintf(f, "%s\n", mib(json_object_get(x, "memory_bytes"), a, 64));
    }
}

/* The jobs' times, then the resources on average and by unit. */
static void render_jobs_resources(const json_t *jobs, const json_t *res, FILE *f)
{
    char a[64], b[64], c[64], d[64], e[64], g[64];
    size_t i;
    json_t *x;
    if (json_is_object(jobs)) {
        const json_t *ws = json_object_get(jobs, "wait_s"), *rs = json_object_get(jobs, "run_s");
        fprintf(f,
                "jobs      last %s succeeded: wait p50 %s, p95 %s, mean %s; run p50 %s, p95 %s\n",
                text(json_object_get(jobs, "sample"), a, 64), secs(ws, "p50", b, 64),
                secs(ws, "p95", c, 64), secs(ws, "mean", d, 64), secs(rs, "p50", e, 64),
                secs(rs, "p95", g, 64));
    } else {
        fprintf(f, "jobs      unknown\n");
    }
    fprintf(f, "resources %s: CPU %s%% and memory %s%% on average\n",
            text(json_object_get(res, "source"), a, 64),
            text(json_object_get(res, "cpu_percent_avg"), b, 64),
            text(json_object_get(res, "memory_percent_avg"), c, 64));
    json_array_foreach(json_object_get(res, "units"), i, x)
    {
        fprintf(f, "  ");
        pad(f, text(json_object_get(x, "name"), a, 64), 24);
        fprintf(f, "CPU %s%%  memory %s (%s%%)\n", text(json_object_get(x, "cpu_percent"), b, 64),
                mib(json_object_get(x, "memory_bytes"), c, 64),
                text(json_object_get(x, "memory_percent"), d, 64));
    }
}

/* The HPA's line (none without one), then the scaling events. */
static void render_hpa_events(const json_t *hpa, const json_t *events, FILE *f)
{
    char a[64], b[64], c[64], d[64], e[64];
    size_t i;
    json_t *x;
    if (json_is_object(hpa)) {
        fprintf(f, "hpa       %s: min %s, max %s, current %s, desired %s; ",
                text(json_object_get(hpa, "name"), a, 64), text(json_object_get(hpa, "min"), b, 64),
                text(json_object_get(hpa, "max"), c, 64),
                text(json_object_get(hpa, "current"), d, 64),
                text(json_object_get(hpa, "desired"), e, 64));
        json_array_foreach(json_object_get(hpa, "metrics"), i, x)
        {
            fprintf(f, "%s%s %s%% of target %s%%", i ? ", " : "",
                    text(json_object_get(x, "name"), a, 64),
                    text(json_object_get(x, "current_percent"), b, 64),
                    text(json_object_get(x, "target_percent"), c, 64));
        }
        const json_t *last = json_object_get(hpa, "last_scale_time");
        if (json_is_string(last))
            fprintf(f, "; last scaled %s", json_string_value(last));
        fprintf(f, "\n");
    }
    if (json_array_size(events))
        fprintf(f, "events\n");
    json_array_foreach(events, i, x)
    {
        fprintf(f, "  %s  %s  %s  %s\n", text(json_object_get(x, "time"), a, 64),
                text(json_object_get(x, "reason"), b, 64),
                text(json_object_get(x, "object"), c, 64),
                text(json_object_get(x, "message"), d, 64));
    }
}

/* "SCALE UP to 5 workers: reason; reason", with the command to run and
 * the note under it. */
static void render_advice(const json_t *adv, FILE *f)
{
    char a[64];
    size_t i;
    json_t *x;
    char action[32];
    snprintf(action, sizeof(action), "%s", json_string_value(json_object_get(adv, "action")));
    for (char *p = action; *p; p++)
        *p = *p == '_' ? ' ' : (char)toupper((unsigned char)*p);
    fprintf(f, "advice    %s", action);
    const json_t *sw = json_object_get(adv, "suggested_workers");
    if (json_is_integer(sw) && !json_equal((json_t *)sw, (json_t *)json_object_get(adv, "workers")))
        fprintf(f, " to %s workers", text(sw, a, 64));
    fprintf(f, ": ");
    json_array_foreach(json_object_get(adv, "reasons"), i, x)
        fprintf(f, "%s%s", i ? "; " : "", json_string_value(x));
    fprintf(f, "\n");
    if (json_is_string(json_object_get(adv, "command")))
        fprintf(f, "          run: %s\n", json_string_value(json_object_get(adv, "command")));
    if (json_is_string(json_object_get(adv, "note")))
        fprintf(f, "          note: %s\n", json_string_value(json_object_get(adv, "note")));
}

static void render_env_text(const json_t *r, FILE *f)
{
    size_t i;
    json_t *x;
    render_head(r, f);
    render_workers(json_object_get(r, "workers"), f);
    render_jobs_resources(json_object_get(r, "jobs"), json_object_get(r, "resources"), f);
    render_hpa_events(json_object_get(r, "hpa"), json_object_get(r, "events"), f);
    render_advice(json_object_get(r, "advice"), f);
    json_array_foreach(json_object_get(r, "errors"), i, x)
        fprintf(f, "error     %s\n", json_string_value(x));
}

/* ------------------------------------------------------------ the loop */

int monitor_env(const char *path, bool once, bool json_out, int window, int jobs)
{
    FILE *in = strcmp(path, "-") ? fopen(path, "re") : stdin;
    if (!in) {
        fprintf(stderr, "stratq: cannot open %s: %s\n", path, strerror(errno));
        return CLI_USAGE;
    }
    size_t win = once ? 1 : (size_t)window, nhist = 0;
    long long *hist = calloc(win, sizeof(*hist));
    char *line = NULL, hint[1024] = "";
    size_t cap = 0;
    int rc = CLI_OK;
    /* getline blocks until the script's next sample: no polling here. */
    while (hist && getline(&line, &cap, in) > 0) {
        json_error_t je;
        json_t *env = json_loads(line, 0, &je);
        if (!json_is_object(env) || !json_is_string(json_object_get(env, "env"))) {
            fprintf(stderr, "stratq: --env-file %s: not a JSON object with \"env\" (%s)\n", path,
                    env ? "no env" : je.text);
            json_decref(env);
            rc = CLI_USAGE;
            break;
        }
        /* The script may have moved the API (a port-forward it restarted). */
        const char *url = json_string_value(json_object_get(env, "api_url"));
        char err[300];
        if (url && *url && config_set(CFG_API_URL, url, err, sizeof(err)) < 0)
            fprintf(stderr, "stratq: %s\n", err);
        const char *h = json_string_value(json_object_get(env, "api_hint"));
        snprintf(hint, sizeof(hint), "%s", h ? h : "");
        cli_api_hint = hint[0] ? hint : NULL;
        json_t *rep = env_report(env, hist, &nhist, win, jobs);
        if (json_out) {
            char *s = json_dumps(rep, (once ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER |
                                          JSON_REAL_PRECISION(15));
            if (s)
                puts(s);
            free(s);
        } else {
            render_env_text(rep, stdout);
            if (!once)
                putchar('\n');
        }
        fflush(stdout);
        const char *prog = json_string_value(json_object_get(env, "prog"));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(rep, "errors"), i, e)
            fprintf(stderr, "%s: %s\n", prog ? prog : "stratq", json_string_value(e));
        if (once && json_array_size(json_object_get(rep, "errors")))
            rc = 1;
        json_decref(rep);
        json_decref(env);
        if (once)
            break;
    }
    cli_api_hint = NULL;
    free(line);
    free(hist);
    if (in != stdin)
        fclose(in);
    return rc;
}

/* stratq monitor: the queue, job times and workers at a glance, with the
 * worker scaling guide's advice (docs/operations.md, "stratq monitor").
 *
 * Every refresh reads the API (GET /v1/queue, /v1/workers and three pages
 * of GET /v1/jobs) and builds one report as a JSON object; --json prints
 * it, the text form is rendered from it, so the two never disagree. On a
 * terminal the text is redrawn every second on the alternate screen, which
 * is left again on exit, SIGINT, SIGTERM and SIGHUP. The definitions follow
 * scripts/monitor-workers.sh: wait = started - created, run = finished -
 * started, p50/p95 nearest-rank over the last 100 succeeded jobs. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../queue/status.h"
#include "cli.h"

#define REFRESH_MS 1000
/* Queue samples kept for the sparkline: 10 minutes at one a second. */
#define HISTORY_MS (10 * 60 * 1000)
#define HISTORY_N 600
/* "Consistently": in every sample of the last WINDOW_MS (the current one
 * alone with --once). */
#define WINDOW_MS (30 * 1000)
/* Succeeded jobs the percentiles are over, as in monitor-workers.sh. */
#define JOBS_SAMPLE 100
/* Page size of the listings throughput is counted from (the API's most). */
#define LISTING_LIMIT 500
#define THROUGHPUT_WINDOW_MS (60 * 1000)
/* The guide's bounds and thresholds. */
#define MIN_WORKERS 2
#define MAX_WORKERS 10
#define UP_QUEUE 5
#define UP_WAIT_MS 30000
#define UP_UTIL 80.0
#define DOWN_UTIL 30.0

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

/* ------------------------------------------------------------ /proc RSS */

struct proc_ent {
    int pid, ppid;
};

/* Every process's (pid, ppid); caller frees. */
static size_t proc_table(struct proc_ent **ret)
{
    DIR *d = opendir("/proc");
    struct proc_ent *t = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    *ret = NULL;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            struct proc_ent *nt = realloc(t, cap * sizeof(*t));
            if (!nt)
                break;
            t = nt;
        }
        t[n++] = (struct proc_ent){atoi(e->d_name), ppid};
    }
    closedir(d);
    *ret = t;
    return n;
}

static long long vm_rss_kb(int pid)
{
    char path[64], line[256];
    long long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* RSS in bytes of a worker on this machine and its descendants (executor
 * and jobs), summed as monitor-workers.sh sums it; -1 when pid is not a
 * stratq process here. */
static long long worker_rss(int pid, const struct proc_ent *t, size_t n)
{
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool ok = fgets(comm, sizeof(comm), f) && !strncmp(comm, "stratq", 6);
    fclose(f);
    long long kb = ok ? vm_rss_kb(pid) : -1;
    if (kb < 0)
        return -1;
    /* Breadth-first over the table: todo[] holds the tree found so far. */
    int *todo = malloc((n + 1) * sizeof(*todo));
    if (!todo)
        return kb * 1024;
    size_t head = 0, tail = 0;
    todo[tail++] = pid;
    while (head < tail) {
        int p = todo[head++];
        for (size_t i = 0; i < n && tail <= n; i++)
            if (t[i].ppid == p && t[i].pid != p) {
                todo[tail++] = t[i].pid;
                long long k = vm_rss_kb(t[i].pid);
                if (k > 0)
                    kb += k;
            }
    }
    free(todo);
    return kb * 1024;
}

/* ------------------------------------------------------------ the report */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* {p50, p95, mean} in ms of v (sorted here), nearest-rank; nulls when n = 0. */
static json_t *stats(long long *v, size_t n, long long *ret_mean)
{
    json_t *o = json_object();
    *ret_mean = -1;
    if (!n) {
        json_object_set_new(o, "p50", json_null());
        json_object_set_new(o, "p95", json_null());
        json_object_set_new(o, "mean", json_null());
        return o;
    }
    qsort(v, n, sizeof(*v), cmp_ll);
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    size_t i50 = (50 * n + 99) / 100, i95 = (95 * n + 99) / 100;
    *ret_mean = (sum + (long long)n / 2) / (long long)n;
    json_object_set_new(o, "p50", json_integer(v[i50 ? i50 - 1 : 0]));
    json_object_set_new(o, "p95", json_integer(v[i95 ? i95 - 1 : 0]));
    json_object_set_new(o, "mean", json_integer(*ret_mean));
    return o;
}

/* Jobs of a listing page that finished at or after since_ms; *ret_capped
 * when the whole page did (there may be more than it holds). */
static long long finished_since(const json_t *page, int64_t since_ms, bool *ret_capped)
{
    json_t *jobs = json_object_get(page, "jobs");
    size_t i;
    json_t *j;
    long long n = 0;
    json_array_foreach(jobs, i, j)
    {
        long long fin;
        if (cli_field_num(j, "finished_ms", &fin) && fin >= since_ms)
            n++;
    }
    if (json_array_size(jobs) >= LISTING_LIMIT && n == (long long)json_array_size(jobs))
        *ret_capped = true;
    return n;
}

static json_t *num_or_null(bool known, double v)
{
    return known ? json_real(v) : json_null();
}

static json_t *str_array(char (*s)[200], int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_string(s[i]));
    return a;
}

/* The guide's advice from the report so far (and the history). */
static json_t *advice(long long pending, long long live, long long mean_wait_ms, int jobs_sample,
                      bool once, int64_t now_ms)
{
    /* The window: the samples of the last WINDOW_MS, the current one first. */
    size_t win = 0;
    bool all_up = true, all_zero = true;
    double util_sum = 0;
    int util_n = 0;
    for (size_t i = 0; i < hist_len && (i == 0 || !once); i++) {
        const struct sample *s = hist_at(i);
        if (i > 0 && now_ms - s->t_ms > WINDOW_MS)
            break;
        win++;
        all_up = all_up && s->pending > UP_QUEUE;
        all_zero = all_zero && s->pending == 0;
        if (s->live > 0) {
            util_sum += 100.0 * s->busy / s->live;
            util_n++;
        }
    }
    bool util_known = util_n > 0;
    double util = util_known ? util_sum / util_n : 0;
    int64_t span_ms = win > 1 ? now_ms - hist_at(win - 1)->t_ms : 0;
    char when[64];
    if (win > 1)
        snprintf(when, sizeof(when), "in every sample of the last %lld s",
                 (long long)((span_ms + 500) / 1000));
    else
        snprintf(when, sizeof(when), "now");

    char reasons[4][200];
    int nr = 0;
    if (win && all_up)
        snprintf(reasons[nr++], sizeof(reasons[0]), "queue length %lld > %d %s", pending, UP_QUEUE,
                 when);
    if (mean_wait_ms > UP_WAIT_MS)
        snprintf(reasons[nr++], sizeof(reasons[0]), "average wait %.1f s > 30 s (last %d jobs)",
                 mean_wait_ms / 1000.0, jobs_sample);
    if (util_known && util > UP_UTIL)
        snprintf(reasons[nr++], sizeof(reasons[0]), "utilisation %.0f%% > 80%%", util);
    const char *wanted = "hold";
    if (nr)
        wanted = "scale_up";
    else if (win && all_zero && util_known && util < DOWN_UTIL) {
        wanted = "scale_down";
        snprintf(reasons[nr++], sizeof(reasons[0]), "queue at 0 %s", when);
        snprintf(reasons[nr++], sizeof(reasons[0]), "utilisation %.0f%% < 30%%", util);
    } else if (all_zero && !util_known) {
        snprintf(reasons[nr++], sizeof(reasons[0]),
                 "queue at 0 %s, but utilisation is unknown (no live workers)", when);
    } else {
        char u[32] = "-";
        if (util_known)
            snprintf(u, sizeof(u), "%.0f%%", util);
        char w[32] = "-";
        if (mean_wait_ms >= 0)
            snprintf(w, sizeof(w), "%.1f s", mean_wait_ms / 1000.0);
        snprintf(reasons[nr++], sizeof(reasons[0]),
                 "within the guide's bounds: queue %lld, average wait %s, utilisation %s", pending,
                 w, u);
    }

    long long suggested = live;
    if (!strcmp(wanted, "scale_up")) {
        long long more = (pending - UP_QUEUE + 4) / 5;
        suggested = live + (more > 1 ? more : 1);
        if (suggested < MIN_WORKERS)
            suggested = MIN_WORKERS;
        if (suggested > MAX_WORKERS)
            suggested = MAX_WORKERS;
    } else if (!strcmp(wanted, "scale_down")) {
        suggested = live - 1 < MIN_WORKERS ? MIN_WORKERS : live - 1;
    }
    const char *action = !strcmp(wanted, "hold") || suggested != live ? wanted : "hold";
    const char *note = NULL;
    if (!strcmp(wanted, "scale_up") && !strcmp(action, "hold"))
        note = "already at the guide's maximum of 10 workers: make the jobs cheaper or give each "
               "worker more CPU and memory";
    else if (!strcmp(wanted, "scale_down") && !strcmp(action, "hold"))
        note = "already at the guide's minimum of 2 workers";

    json_t *a = json_object();
    json_object_set_new(a, "action", json_string(action));
    json_object_set_new(a, "wanted", json_string(wanted));
    json_object_set_new(a, "reasons", str_array(reasons, nr));
    json_object_set_new(a, "workers", json_integer(live));
    json_object_set_new(a, "suggested_workers", json_integer(suggested));
    json_object_set_new(a, "utilisation_percent", num_or_null(util_known, util));
    json_object_set_new(a, "window_samples", json_integer((json_int_t)win));
    json_object_set_new(a, "note", note ? json_string(note) : json_null());
    return a;
}

/* The newest jobs in status s (GET /v1/jobs?status=...), as cli_get_json. */
static int get_listing(enum queue_status s, json_t **ret, char *err, size_t errlen)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/jobs?status=%s&limit=%d", queue_status_name(s),
             LISTING_LIMIT);
    return cli_get_json(path, ret, err, errlen);
}

/* Reads the API once and builds the report; records a queue sample.
 * CLI_OK, or CLI_API_ERROR with a message in err. */
static int collect(bool once, json_t **ret, char *err, size_t errlen)
{
    json_t *queue = NULL, *workers = NULL, *succ = NULL, *failed = NULL, *running = NULL;
    int r = cli_get_json("/v1/queue", &queue, err, errlen);
    if (r == CLI_OK)
        r = cli_get_json("/v1/workers", &workers, err, errlen);
    if (r == CLI_OK)
        r = get_listing(QUEUE_STATUS_SUCCEEDED, &succ, err, errlen);
    if (r == CLI_OK)
        r = get_listing(QUEUE_STATUS_FAILED, &failed, err, errlen);
    if (r == CLI_OK)
        r = get_listing(QUEUE_STATUS_RUNNING, &running, err, errlen);
    if (r != CLI_OK) {
        json_decref(queue);
        json_decref(workers);
        json_decref(succ);
        json_decref(failed);
        json_decref(running);
        return r;
    }
    int64_t now = util_now_ms();
    json_t *rep = json_object();
    json_object_set_new(rep, "time_ms", json_integer(now));
    json_object_set_new(rep, "api_url", json_string(config_str(CFG_API_URL)));

    /* Queue. */
    long long pending = 0, v;
    json_t *q = json_object();
    json_object_set(q, "name", json_object_get(queue, "queue") ?: json_null());
    static const char *const qkeys[] = {"pending", "processing", "scheduled", "dead"};
    for (size_t i = 0; i < ARRAY_SIZE(qkeys); i++) {
        v = 0;
        cli_field_num(queue, qkeys[i], &v);
        json_object_set_new(q, qkeys[i], json_integer(v));
        if (i == 0)
            pending = v;
    }
    json_object_set_new(rep, "queue", q);

    /* Throughput: jobs that finished (succeeded or failed) in the last
     * 60 s, from the listings' finished_ms. */
    bool capped = false;
    long long ns = finished_since(succ, now - THROUGHPUT_WINDOW_MS, &capped);
    long long nf = finished_since(failed, now - THROUGHPUT_WINDOW_MS, &capped);
    json_t *tp = json_object();
    json_object_set_new(tp, "window_s", json_integer(THROUGHPUT_WINDOW_MS / 1000));
    json_object_set_new(tp, "per_min", json_integer(ns + nf));
    json_object_set_new(tp, queue_status_name(QUEUE_STATUS_SUCCEEDED), json_integer(ns));
    json_object_set_new(tp, queue_status_name(QUEUE_STATUS_FAILED), json_integer(nf));
    json_object_set_new(tp, "capped", json_boolean(capped));
    json_object_set_new(rep, "throughput", tp);

    /* Wait and run times of the last JOBS_SAMPLE succeeded jobs. */
    long long waits[JOBS_SAMPLE], runs[JOBS_SAMPLE];
    size_t nj = 0, i;
    json_t *j;
    json_array_foreach(json_object_get(succ, "jobs"), i, j)
    {
        long long c, s, f;
        if (i >= JOBS_SAMPLE)
            break;
        if (cli_field_num(j, "created_ms", &c) && cli_field_num(j, "started_ms", &s) &&
            cli_field_num(j, "finished_ms", &f)) {
            waits[nj] = s - c;
            runs[nj] = f - s;
            nj++;
        }
    }
    long long mean_wait, mean_run;
    json_t *jobs = json_object();
    json_object_set_new(jobs, "sample", json_integer((json_int_t)nj));
    json_object_set_new(jobs, "status", json_string(queue_status_name(QUEUE_STATUS_SUCCEEDED)));
    json_object_set_new(jobs, "wait_ms", stats(waits, nj, &mean_wait));
    json_object_set_new(jobs, "run_ms", stats(runs, nj, &mean_run));
    json_object_set_new(rep, "jobs", jobs);

    /* Workers. */
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    struct proc_ent *pt = NULL;
    size_t npt = 0;
    bool have_table = false;
    json_t *list = json_array(), *by_state = json_object();
    long long live = 0, busy = 0;
    json_array_foreach(json_object_get(workers, "workers"), i, j)
    {
        const char *state = json_string_value(json_object_get(j, "state"));
        const char *wh = json_string_value(json_object_get(j, "host"));
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
        json_t *w = json_object();
        json_object_set(w, "id", json_object_get(j, "id") ?: json_null());
        json_object_set(w, "host", json_object_get(j, "host") ?: json_null());
        long long pid = 0;
        bool has_pid = cli_field_num(j, "pid", &pid);
        json_object_set_new(w, "pid", has_pid ? json_integer(pid) : json_null());
        json_object_set_new(w, "state", json_string(state));
        json_object_set_new(w, "current_job", cur && *cur ? json_string(cur) : json_null());
        json_t *elapsed = json_null();
        if (cur && *cur) {
            size_t k;
            json_t *rj;
            json_array_foreach(json_object_get(running, "jobs"), k, rj)
            {
                long long st;
                if (!strcmp(json_string_value(json_object_get(rj, "id")) ?: "", cur) &&
                    cli_field_num(rj, "started_ms", &st)) {
                    json_decref(elapsed);
                    elapsed = json_integer(now - st > 0 ? now - st : 0);
                    break;
                }
            }
        }
        json_object_set_new(w, "current_job_elapsed_ms", elapsed);
        static const char *const nkeys[] = {"jobs_done", "jobs_failed"};
        for (size_t k = 0; k < ARRAY_SIZE(nkeys); k++) {
            v = 0;
            cli_field_num(j, nkeys[k], &v);
            json_object_set_new(w, nkeys[k], json_integer(v));
        }
        long long rss = -1;
        if (has_pid && pid > 0 && wh && !strcmp(wh, host)) {
            if (!have_table) {
                npt = proc_table(&pt);
                have_table = true;
            }
            rss = worker_rss((int)pid, pt, npt);
        }
        json_object_set_new(w, "rss_bytes", rss >= 0 ? json_integer(rss) : json_null());
        long long beat;
        if (cli_field_num(j, "last_heartbeat_ms", &beat) && beat > 0) {
            json_object_set_new(w, "last_heartbeat_ms", json_integer(beat));
            json_object_set_new(w, "heartbeat_age_ms",
                                json_integer(now - beat > 0 ? now - beat : 0));
        } else {
            json_object_set_new(w, "last_heartbeat_ms", json_null());
            json_object_set_new(w, "heartbeat_age_ms", json_null());
        }
        json_array_append_new(list, w);
    }
    free(pt);
    json_t *ws = json_object();
    json_object_set_new(ws, "count", json_integer(live));
    json_object_set_new(ws, "busy", json_integer(busy));
    json_object_set_new(ws, "by_state", by_state);
    json_object_set_new(ws, "list", list);
    json_object_set_new(rep, "workers", ws);

    hist_add(now, pending, (int)busy, (int)live);
    json_object_set_new(rep, "advice", advice(pending, live, mean_wait, (int)nj, once, now));

    json_decref(queue);
    json_decref(workers);
    json_decref(succ);
    json_decref(failed);
    json_decref(running);
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

static void render_text(const json_t *rep, int spark_width, bool utf8, const char *error, FILE *f)
{
    char when[32] = "-", a[32], b[32], c[32];
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
            "  dead %" JSON_INTEGER_FORMAT "\n",
            json_integer_value(json_object_get(q, "processing")),
            json_integer_value(json_object_get(q, "scheduled")),
            json_integer_value(json_object_get(q, "dead")));
    json_t *tp = json_object_get(rep, "throughput");
    fprintf(f,
            "throughput  %s%" JSON_INTEGER_FORMAT "/min  (%" JSON_INTEGER_FORMAT
            " succeeded, %" JSON_INTEGER_FORMAT " failed in the last 60 s)\n",
            json_is_true(json_object_get(tp, "capped")) ? ">=" : "",
            json_integer_value(json_object_get(tp, "per_min")),
            json_integer_value(json_object_get(tp, queue_status_name(QUEUE_STATUS_SUCCEEDED))),
            json_integer_value(json_object_get(tp, queue_status_name(QUEUE_STATUS_FAILED))));
    json_t *jobs = json_object_get(rep, "jobs"), *wt = json_object_get(jobs, "wait_ms"),
           *rt = json_object_get(jobs, "run_ms");
    fprintf(f, "run time    p50 %-8s p95 %-8s (last %" JSON_INTEGER_FORMAT " succeeded)\n",
            dur(rt, "p50", a, sizeof(a)), dur(rt, "p95", b, sizeof(b)),
            json_integer_value(json_object_get(jobs, "sample")));
    fprintf(f, "wait time   p50 %-8s p95 %-8s mean %s\n", dur(wt, "p50", a, sizeof(a)),
            dur(wt, "p95", b, sizeof(b)), dur(wt, "mean", c, sizeof(c)));

    json_t *ws = json_object_get(rep, "workers"), *list = json_object_get(ws, "list");
    json_t *adv = json_object_get(rep, "advice");
    json_t *util = json_object_get(adv, "utilisation_percent");
    fprintf(f, "workers     %" JSON_INTEGER_FORMAT " live, %" JSON_INTEGER_FORMAT " busy",
            json_integer_value(json_object_get(ws, "count")),
            json_integer_value(json_object_get(ws, "busy")));
    if (json_is_number(util))
        fprintf(f, ", utilisation %.0f%%", json_number_value(util));
    fprintf(f, "\n");
    if (json_array_size(list)) {
        int wid = width_of(list, "id", 2), wh = width_of(list, "host", 4),
            wj = width_of(list, "current_job", 3);
        fprintf(f, "  %-*s  %-*s  %-8s  %-*s  %8s  %6s  %6s  %9s  %s\n", wid, "ID", wh, "HOST",
                "STATE", wj, "JOB", "ELAPSED", "DONE", "FAILED", "RSS", "HEARTBEAT");
        size_t i;
        json_t *w;
        json_array_foreach(list, i, w)
        {
            char rss[32] = "-", beat[40] = "-";
            json_t *rb = json_object_get(w, "rss_bytes");
            if (json_is_integer(rb))
                snprintf(rss, sizeof(rss), "%.1f MiB", json_integer_value(rb) / 1048576.0);
            if (json_is_integer(json_object_get(w, "heartbeat_age_ms"))) {
                dur(w, "heartbeat_age_ms", beat, sizeof(beat) - 4);
                strcat(beat, " ago");
            }
            fprintf(f,
                    "  %-*s  %-*s  %-8s  %-*s  %8s  %6" JSON_INTEGER_FORMAT
                    "  %6" JSON_INTEGER_FORMAT "  %9s  %s\n",
                    wid, str_or_dash(w, "id"), wh, str_or_dash(w, "host"), str_or_dash(w, "state"),
                    wj, str_or_dash(w, "current_job"),
                    dur(w, "current_job_elapsed_ms", a, sizeof(a)),
                    json_integer_value(json_object_get(w, "jobs_done")),
                    json_integer_value(json_object_get(w, "jobs_failed")), rss, beat);
        }
    }

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

/* Sleeps until deadline (monotonic ms) or a signal asks to stop or
 * redraw. */
static void sleep_until(int64_t deadline)
{
    while (!stop_flag && !resized) {
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            return;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
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

int cli_monitor(int argc, char **argv)
{
    static const char usage[] = "stratq monitor [--once] [--json]";
    char **args;
    int nargs;
    char err[600];
    int r = config_load(CMD_MONITOR, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(
            CMD_MONITOR, usage,
            "Shows the queue (with a sparkline of the last 10 minutes), processing, scheduled "
            "and dead jobs, throughput, run and wait time p50/p95, the workers, and the worker "
            "scaling guide's advice. On a terminal it redraws full-screen every second until "
            "interrupted; otherwise it prints a plain-text report every second. --once prints "
            "one report; --json prints one JSON object (docs/operations.md lists its keys).");
        return CLI_OK;
    }
    if (r < 0 || nargs) {
        fprintf(stderr, "stratq: %s\nusage: %s\n", r < 0 ? err : "monitor takes no arguments",
                usage);
        return CLI_USAGE;
    }
    bool json_out = config_bool(CFG_JSON);
    bool once = config_bool(CFG_ONCE) || json_out;
    bool tty = !once && isatty(STDOUT_FILENO);
    bool utf8 = utf8_locale();

    struct sigaction sa = {0}, old_int, old_term, old_hup, old_winch;
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, &old_winch);
    cli_abort = &stop_flag;

    json_t *last = NULL;
    int rc = CLI_OK;
    for (int64_t next = util_mono_ms(); !stop_flag;) {
        json_t *rep = NULL;
        err[0] = '\0';
        r = collect(once, &rep, err, sizeof(err));
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
        for (;;) {
            sleep_until(next);
            if (!resized || stop_flag)
                break;
            resized = 0;
            if (tty)
                draw_screen(last, utf8, shown_err);
        }
    }
    screen_leave();
    json_decref(last);
    cli_abort = NULL;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    return rc;
}

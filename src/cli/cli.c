#define _GNU_SOURCE
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../queue/status.h"
#include "sse.h"

/* How long one long-poll request asks the API to hold the answer (the API
 * allows up to 60 s). On a terminal the live status line wants to see
 * queued -> running, so the requests there are shorter. */
#define WAIT_S 30
/* On a terminal the long-polls last at most a second, so that the progress
 * bar (the job's `progress`, which only the record carries) is at most a
 * second behind. */
#define WAIT_TTY_S 1
/* How often `logs --follow` asks for new output while the job runs and no
 * event stream can be had. */
#define FOLLOW_INTERVAL_MS 250
/* With the stream, a running job's output is read when its `output` event
 * says it wrote some; and this often anyway, in case the API missed one
 * (its Redis subscription was being remade) or a worker's publish was
 * lost (live output is best effort). */
#define FOLLOW_SAFETY_MS (5 * 1000)
/* A queued job has no output until it starts, which its `running` event
 * says; the output is read anyway this often, in case the API missed the
 * event (its Redis subscription was being remade). */
#define FOLLOW_QUEUED_MS (30 * 1000)
/* A long-poll answered "not finished" sooner than this means the server does
 * not hold requests (an older API, say); waiting this long before asking
 * again keeps the loop from spinning. */
#define MIN_ROUND_MS 200

struct response {
    long code;
    char *body;
    size_t len;
};

/* The last response body, kept so that --json prints it exactly as the API
 * sent it. */
static char *last_body;
/* The argv that `logs` rewrote (-f to --follow); config keeps pointers into
 * it until exit. */
static char **logs_argv;

/* The live status line of a wait on a terminal: "job ID: running, 3.1 s",
 * redrawn on stderr with "\r" while a long-poll is in flight (from curl's
 * progress callback) and after each answer. */
static struct {
    bool on;
    bool drawn;
    char id[80];
    char status[40];
    int64_t start_ms;
    int64_t last_tenths;
    /* The job's last ctx.progress() while it runs: fraction < 0 for none. */
    double fraction;
    char message[160];
} live;

/* Set (by `stratq monitor`'s signal handler) to abort a request in flight. */
volatile sig_atomic_t *cli_abort;
const char *cli_api_hint;

/* Width of the terminal on fd, or 80 when it cannot be told. */
int cli_term_cols(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* "[#####-----] 50% message" for a fraction in [0, 1]; width cells of bar.
 * Control characters of the message become spaces. */
void cli_progress_bar(double fraction, const char *message, int width, char *buf, size_t len)
{
    if (!(fraction >= 0))
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    int fill = (int)(fraction * width + 0.5);
    size_t n = 0;
    buf[0] = '\0';
    if (len < (size_t)width + 8)
        return;
    buf[n++] = '[';
    for (int i = 0; i < width; i++)
        buf[n++] = i < fill ? '#' : '-';
    n += (size_t)snprintf(buf + n, len - n, "] %d%%", (int)(fraction * 100 + 0.5));
    if (message && *message && n + 2 < len) {
        buf[n++] = ' ';
        for (const char *m = message; *m && n + 1 < len; m++)
            buf[n++] = (unsigned char)*m < 0x20 || *m == 0x7f ? ' ' : *m;
        buf[n] = '\0';
    }
}

/* Cuts s to at most cols terminal cells, counting a UTF-8 sequence as one
 * cell and never splitting one. */
static void fit_cols(char *s, int cols)
{
    int cells = 0;
    for (char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xc0) == 0x80)
            continue;
        if (cells++ == cols) {
            *p = '\0';
            return;
        }
    }
}

static void live_draw(void)
{
    int64_t tenths = (util_mono_ms() - live.start_ms) / 100;
    if (live.drawn && tenths == live.last_tenths)
        return;
    live.last_tenths = tenths;
    live.drawn = true;
    char line[512], bar[256] = "";
    if (live.fraction >= 0 && queue_status_parse(live.status) == QUEUE_STATUS_RUNNING)
        cli_progress_bar(live.fraction, live.message, 20, bar, sizeof(bar));
    snprintf(line, sizeof(line), "job %s: %s, %" PRId64 ".%" PRId64 " s%s%s",
             live.id[0] ? live.id : "(new)", live.status, tenths / 10, tenths % 10,
             bar[0] ? " " : "", bar);
    /* A line wider than the terminal would wrap, and "\r" would then redraw
     * only its last row. */
    fit_cols(line, cli_term_cols(STDERR_FILENO) - 1);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

static void live_clear(void)
{
    if (live.drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    live.drawn = false;
    live.on = false;
}

static void live_status(const char *status)
{
    if (!live.on || !status)
        return;
    snprintf(live.status, sizeof(live.status), "%s", status);
    live.drawn = false; /* redraw now even within the same tenth */
    live_draw();
}

/* The status and progress of a job record (from GET /v1/jobs/{id}). */
static void live_job(const json_t *job)
{
    if (!live.on)
        return;
    json_t *p = json_object_get(job, "progress");
    if (json_is_number(json_object_get(p, "fraction"))) {
        live.fraction = json_number_value(json_object_get(p, "fraction"));
        snprintf(live.message, sizeof(live.message), "%s",
                 json_string_value(json_object_get(p, "message")) ?: "");
    } else {
        live.fraction = -1;
        live.message[0] = '\0';
    }
    live_status(json_string_value(json_object_get(job, "status")));
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)arg, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (cli_abort && *cli_abort)
        return 1;
    if (live.on)
        live_draw();
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    char *nb = realloc(r->body, r->len + n + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* A token with a control character would let the environment inject
 * header lines, so it is refused. */
int cli_auth_header(char **ret_hdr)
{
    const char *tok = getenv("STRATQ_API_TOKEN");
    *ret_hdr = NULL;
    if (!tok || !*tok)
        return 0;
    for (const char *p = tok; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "stratq: STRATQ_API_TOKEN holds a control character\n");
            return -EINVAL;
        }
    if (asprintf(ret_hdr, "Authorization: Bearer %s", tok) < 0) {
        *ret_hdr = NULL;
        return -ENOMEM;
    }
    return 0;
}

void cli_url(const char *path, char *buf, size_t len)
{
    const char *base = config_str(CFG_API_URL);
    size_t bl = strlen(base);
    snprintf(buf, len, "%.*s%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base, path);
}

/* Performs one request. On success returns 0 with the status code and the
 * parsed JSON body (*ret_json may be NULL if the body was not JSON). On a
 * transport error prints what failed, naming the URL, and returns -EIO; with
 * errbuf, the message goes there instead of stderr. */
static int http_ex(const char *method, const char *path, const char *body, long *ret_code,
                   json_t **ret_json, char *errbuf, size_t errlen)
{
    char url[2048];
    struct response resp = {0};
    struct curl_slist *hdrs = NULL;
    _cleanup_free_ char *auth = NULL;
    int r = 0;

    if (cli_auth_header(&auth) < 0)
        return -EINVAL;
    cli_url(path, url, sizeof(url));
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* Long-polls ask for at most WAIT_S seconds; this bounds a server that
     * holds a request longer than it was asked to. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, cli_abort ? 10L : 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (live.on || cli_abort) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
        live_clear();
        if (errbuf && cli_api_hint)
            snprintf(errbuf, errlen, "cannot reach the stratq API at %s (%s): %s", url,
                     curl_easy_strerror(cr), cli_api_hint);
        else if (errbuf)
            snprintf(errbuf, errlen,
                     "cannot reach the stratq API at %s: %s (is it running? set STRATQ_API_URL "
                     "or --api-url to its address)",
                     url, curl_easy_strerror(cr));
        else
            fprintf(stderr,
                    "stratq: cannot reach the stratq API at %s: %s\n"
                    "  (is it running? set STRATQ_API_URL or --api-url to its address)\n",
                    url, curl_easy_strerror(cr));
        r = -EIO;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_code);
        *ret_json = resp.body ? json_loadb(resp.body, resp.len, JSON_DECODE_ANY, NULL) : NULL;
        free(last_body);
        last_body = steal_pointer(&resp.body);
    }
    free(resp.body);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return r;
}

static int http(const char *method, const char *path, const char *body, long *ret_code,
                json_t **ret_json)
{
    return http_ex(method, path, body, ret_code, ret_json, NULL, 0);
}

int cli_get_json(const char *path, json_t **ret_json, char *err, size_t errlen)
{
    long code = 0;
    json_t *body = NULL;
    *ret_json = NULL;
    if (http_ex("GET", path, NULL, &code, &body, err, errlen) < 0)
        return CLI_API_ERROR;
    free(last_body);
    last_body = NULL;
    if (code != 200 || !json_is_object(body)) {
        const char *msg = json_string_value(json_object_get(body, "error"));
        snprintf(err, errlen, "the API answered %ld to GET %s: %s%s", code, path,
                 msg ? msg : "(no message)",
                 code == 401 || code == 403
                     ? " (set STRATQ_API_TOKEN to one of the tokens in its STRATQ_API_TOKENS_FILE)"
                     : "");
        json_decref(body);
        return CLI_API_ERROR;
    }
    *ret_json = body;
    return CLI_OK;
}

void cli_free(void)
{
    free(last_body);
    last_body = NULL;
    free(logs_argv);
    logs_argv = NULL;
    config_free();
}

/* Prints the last response exactly as received (for --json). */
static void print_raw(void)
{
    if (last_body)
        fputs(last_body, stdout);
    if (last_body && last_body[0] && last_body[strlen(last_body) - 1] != '\n')
        putchar('\n');
    free(last_body);
    last_body = NULL;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                                JSON_REAL_PRECISION(15));
    if (s) {
        puts(s);
        free(s);
    }
}

/* Prints the API's error message for a failed request. */
static int api_error(long code, json_t *body)
{
    const char *msg = json_string_value(json_object_get(body, "error"));
    live_clear();
    fprintf(stderr, "stratq: the API answered %ld: %s\n", code, msg ? msg : "(no message)");
    if (code == 401 || code == 403)
        fprintf(stderr, "  (the API wants a bearer token: set STRATQ_API_TOKEN to one listed in "
                        "its STRATQ_API_TOKENS_FILE)\n");
    json_decref(body);
    return CLI_API_ERROR;
}

static int load_args(unsigned cmd, int argc, char **argv, int want_args, const char *usage,
                     const char *what, char ***ret_args)
{
    char err[256];
    int nargs;
    int r = config_load(cmd, argc, argv, ret_args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(cmd, usage, what);
        return 0;
    }
    if (r < 0) {
        fprintf(stderr, "stratq: %s\nusage: %s\n", err, usage);
        return -CLI_USAGE;
    }
    if (nargs != want_args) {
        fprintf(stderr, "usage: %s\n", usage);
        return -CLI_USAGE;
    }
    return 1;
}

static bool check_id(const char *id)
{
    if (util_valid_id(id))
        return true;
    fprintf(stderr, "stratq: '%s' is not a job id (1 to 64 of A-Z a-z 0-9 _ -)\n", id);
    return false;
}

static long long field_int(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* A number field that may come as a JSON integer, real or numeric string
 * (worker hashes are strings in Redis). Returns false when it is absent,
 * null or not a number. */
bool cli_field_num(const json_t *o, const char *k, long long *ret)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *ret = (long long)json_real_value(v);
        return true;
    }
    if (json_is_string(v) && *json_string_value(v)) {
        char *end;
        errno = 0;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (!errno && !*end) {
            *ret = n;
            return true;
        }
    }
    return false;
}

static const char *field_str(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : dflt;
}

/* Human duration: "850ms", "4.2s", "3m07s", "2h05m", "3d04h". */
void cli_fmt_duration(long long ms, char *buf, size_t n)
{
    if (ms < 0)
        ms = 0;
    long long s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, n, "%lldms", ms);
    else if (s < 60)
        snprintf(buf, n, "%lld.%llds", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, n, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, n, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

/* Local time of ms since the epoch: "2024-05-01 14:03:07". */
static void fmt_time(long long ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, n, "-");
}

/* Human form of a job record. */
/* The job's structured log lines (ctx.log), one per line on stderr:
 * "[log HH:MM:SS.mmm] message key=value ...". */
static void print_log_lines(const json_t *lines)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        long long ts = field_int(l, "ts_ms");
        time_t secs = (time_t)(ts / 1000);
        struct tm tm;
        char when[16] = "?";
        if (gmtime_r(&secs, &tm))
            strftime(when, sizeof(when), "%H:%M:%S", &tm);
        fprintf(stderr, "[log %s.%03lld] %s", when, ts % 1000,
                json_string_value(json_object_get(l, "msg")) ?: "");
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(l, "fields"), k, v)
        {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
            fprintf(stderr, " %s=%s", k, text ? text : "?");
            free(text);
        }
        fprintf(stderr, "\n");
    }
}

/* " 42% message" for a job's progress, or "" without one. */
static void progress_text(const json_t *job, char *buf, size_t len)
{
    json_t *p = json_object_get(job, "progress");
    buf[0] = '\0';
    if (json_is_object(p))
        snprintf(buf, len, " %.0f%%%s%s", json_number_value(json_object_get(p, "fraction")) * 100,
                 json_string_length(json_object_get(p, "message")) ? " " : "",
                 json_string_value(json_object_get(p, "message")) ?: "");
}

/* A stratq.Result (docs/result-shape.md) in a few lines: its metrics, the
 * ends of the equity curve, the number of trades, the extra values. --json
 * prints all of it. */
static void print_backtest(const json_t *r)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r, "metrics"), k, v)
    {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        printf("%-24s %s\n", k, text ? text : "?");
        free(text);
    }
    json_t *eq = json_object_get(r, "equity");
    json_t *t = json_object_get(eq, "t"), *val = json_object_get(eq, "v");
    size_t n = json_array_size(val);
    if (n) {
        char *t0 = json_dumps(json_array_get(t, 0), JSON_ENCODE_ANY);
        char *t1 = json_dumps(json_array_get(t, n - 1), JSON_ENCODE_ANY);
        printf("%-24s %zu points, %.10g at %s -> %.10g at %s\n", "equity", n,
               json_number_value(json_array_get(val, 0)), t0 ? t0 : "?",
               json_number_value(json_array_get(val, n - 1)), t1 ? t1 : "?");
        free(t0);
        free(t1);
    }
    if (json_is_integer(json_object_get(r, "n_trades")))
        printf("%-24s %lld\n", "trades", field_int(r, "n_trades"));
    json_object_foreach(json_object_get(r, "extra"), k, v)
    {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        if (text && strlen(text) <= 200)
            printf("%-24s %s\n", k, text);
        else
            printf("%-24s (%zu bytes of JSON; see --json)\n", k, text ? strlen(text) : 0);
        free(text);
    }
}

static void print_job(const json_t *job, bool with_result)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    const char *worker = json_string_value(json_object_get(job, "worker"));
    json_t *usage = json_object_get(job, "usage");

    char prog[300];
    progress_text(job, prog, sizeof(prog));
    printf("job %s: %s", json_string_value(json_object_get(job, "id")), status ? status : "?");
    if (queue_status_parse(status) == QUEUE_STATUS_RUNNING && prog[0])
        printf(",%s", prog);
    if (json_is_object(usage))
        printf(" in %lld ms (cpu %lld ms, max rss %lld KiB)", field_int(usage, "wall_ms"),
               field_int(usage, "cpu_ms"), field_int(usage, "max_rss_kb"));
    if (field_int(job, "attempts") > 0)
        printf(", attempt %lld", field_int(job, "attempts"));
    if (worker)
        printf(", worker %s", worker);
    printf("\n");
    if (!with_result)
        return;
    const char *out = json_string_value(json_object_get(job, "stdout"));
    const char *err = json_string_value(json_object_get(job, "stderr"));
    if (out && *out)
        printf("--- stdout\n%s%s", out, out[strlen(out) - 1] == '\n' ? "" : "\n");
    if (err && *err)
        printf("--- stderr\n%s%s", err, err[strlen(err) - 1] == '\n' ? "" : "\n");
    json_t *error = json_object_get(job, "error");
    if (json_is_object(error)) {
        printf("--- error: %s: %s\n", json_string_value(json_object_get(error, "type")),
               json_string_value(json_object_get(error, "message")));
        const char *tb = json_string_value(json_object_get(error, "traceback"));
        if (tb && *tb)
            printf("%s", tb);
    }
    json_t *result = json_object_get(job, "result");
    if (result && !json_is_null(result)) {
        printf("--- result\n");
        if (json_object_get(result, "stratq_result"))
            print_backtest(result);
        else
            print_json(result);
    }
}

/* GET /v1/jobs/{id}[?wait=S] (wait_s 0: answer at once). */
static int get_job(const char *id, int wait_s, json_t **ret_job)
{
    char path[160];
    long code;
    json_t *body = NULL;
    if (!check_id(id))
        return CLI_USAGE;
    if (wait_s > 0)
        snprintf(path, sizeof(path), "/v1/jobs/%s?wait=%d", id, wait_s);
    else
        snprintf(path, sizeof(path), "/v1/jobs/%s", id);
    if (http("GET", path, NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200)
        return api_error(code, body);
    *ret_job = body;
    return CLI_OK;
}

static bool is_terminal(const json_t *job)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    return queue_status_is_terminal(status);
}

/* Sleeps out the rest of MIN_ROUND_MS after a long-poll that came back
 * unfinished early (see MIN_ROUND_MS). */
static void pace(int64_t round_start_ms)
{
    int64_t spent = util_mono_ms() - round_start_ms;
    if (spent >= 0 && spent < MIN_ROUND_MS)
        usleep((useconds_t)(MIN_ROUND_MS - spent) * 1000);
}

/* Long-polls GET /v1/jobs/{id}?wait=S until the job is terminal and returns
 * its full record. `first` is a record already in hand (from POST ?wait=),
 * consumed. */
static int wait_job(const char *id, int wait_s, json_t *first, json_t **ret_job)
{
    json_t *job = first;
    for (;;) {
        if (job) {
            live_job(job);
            if (is_terminal(job)) {
                *ret_job = job;
                return CLI_OK;
            }
            json_decref(job);
            job = NULL;
        }
        int64_t t0 = util_mono_ms();
        int r = get_job(id, wait_s, &job);
        if (r != CLI_OK)
            return r;
        if (!is_terminal(job))
            pace(t0);
    }
}

static int finish(json_t *job, bool json_out)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    int rc = queue_status_parse(status) == QUEUE_STATUS_SUCCEEDED ? CLI_OK : CLI_JOB_FAILED;
    live_clear();
    if (json_out)
        print_raw();
    else
        print_job(job, true);
    json_decref(job);
    return rc;
}

/* Turns the live status line on when a person is watching: stdout and
 * stderr both terminals (a pipe on stdout means a script, and "\r" in a
 * redirected stderr is noise). Returns the long-poll length to use. */
static int live_start(const char *id)
{
    if (!isatty(STDOUT_FILENO) || !isatty(STDERR_FILENO))
        return WAIT_S;
    live.on = true;
    live.drawn = false;
    live.fraction = -1;
    live.message[0] = '\0';
    snprintf(live.id, sizeof(live.id), "%s", id ? id : "");
    snprintf(live.status, sizeof(live.status), "submitting");
    live.start_ms = util_mono_ms();
    return WAIT_TTY_S;
}

/* --data FILE into spec: a .csv file as data_csv (ctx.data is then a
 * DataFrame), any other as JSON (data). CLI_OK or CLI_USAGE (said). */
static int spec_add_data(json_t *spec)
{
    const char *data_file = config_str(CFG_DATA);
    size_t dl = strlen(data_file);
    if (dl > 4 && !strcmp(data_file + dl - 4, ".csv")) {
        char *csv = NULL;
        size_t csv_len = 0;
        int rr = util_read_file(data_file, 16 * 1024 * 1024, &csv, &csv_len);
        json_t *text = rr < 0 ? NULL : json_stringn(csv, csv_len);
        free(csv);
        if (!text) {
            fprintf(stderr, "stratq: --data %s: %s\n", data_file,
                    rr < 0 ? strerror(-rr) : "not UTF-8 text");
            return CLI_USAGE;
        }
        json_object_set_new(spec, "data_csv", text);
    } else if (data_file[0]) {
        json_error_t je;
        json_t *d = json_load_file(data_file, JSON_DECODE_ANY, &je);
        if (!d) {
            fprintf(stderr, "stratq: --data %s: %s (line %d, column %d)\n", data_file, je.text,
                    je.line, je.column);
            return CLI_USAGE;
        }
        json_object_set_new(spec, "data", d);
    }
    return CLI_OK;
}

/* A flag's text as the JSON value the API reads: an integer or a number
 * when it is all one, else the string (which the API then checks, naming
 * the field). */
static json_t *flag_value(const char *text)
{
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (*text && !*end && !errno)
        return json_integer(n);
    double d = strtod(text, &end);
    if (*text && !*end && isfinite(d))
        return json_real(d);
    return json_string(text);
}

/* The job's limits and placement into spec: --timeout, --memory, --tenant,
 * --priority, --delay, --run-at. CLI_OK or CLI_USAGE (said). */
static int spec_add_options(json_t *spec)
{
    if (config_str(CFG_TIMEOUT)[0]) {
        char *end;
        double t = strtod(config_str(CFG_TIMEOUT), &end);
        if (*end || !(t > 0)) {
            fprintf(stderr, "stratq: --timeout must be a number of seconds above 0, not '%s'\n",
                    config_str(CFG_TIMEOUT));
            return CLI_USAGE;
        }
        json_object_set_new(spec, "timeout_s", json_real(t));
    }
    if (config_int(CFG_MEMORY) > 0)
        json_object_set_new(spec, "memory_mb", json_integer(config_int(CFG_MEMORY)));
    if (config_str(CFG_TENANT)[0])
        json_object_set_new(spec, "tenant", json_string(config_str(CFG_TENANT)));
    static const struct {
        enum cfg_id id;
        const char *field;
    } placement[] = {{CFG_PRIORITY, "priority"}, {CFG_DELAY, "delay_s"}, {CFG_RUN_AT, "run_at"}};
    for (size_t i = 0; i < ARRAY_SIZE(placement); i++)
        if (config_str(placement[i].id)[0])
            json_object_set_new(spec, placement[i].field, flag_value(config_str(placement[i].id)));
    return CLI_OK;
}

int cli_read_source(const char *file, char **ret)
{
    _cleanup_free_ char *code = NULL;
    size_t len;
    int r = util_read_file(file, 16 * 1024 * 1024, &code, &len);
    *ret = NULL;
    if (r < 0) {
        fprintf(stderr, "stratq: cannot read %s: %s\n", file, strerror(-r));
        return -1;
    }
    *ret = util_utf8_sanitize(code, len);
    return 0;
}

/* The job spec of FILE.py and the flags. CLI_OK, or CLI_USAGE (said). */
static int build_spec(const char *file, json_t **ret_spec)
{
    _cleanup_free_ char *clean = NULL;
    *ret_spec = NULL;
    if (cli_read_source(file, &clean) < 0)
        return CLI_USAGE;
    json_t *spec = json_object();
    json_object_set_new(spec, "code", json_string(clean ? clean : ""));
    if (config_str(CFG_ENTRYPOINT)[0])
        json_object_set_new(spec, "entrypoint", json_string(config_str(CFG_ENTRYPOINT)));
    if (config_str(CFG_PARAMS)[0]) {
        json_error_t je;
        json_t *p = json_loads(config_str(CFG_PARAMS), 0, &je);
        if (!json_is_object(p)) {
            fprintf(stderr, "stratq: --params must be a JSON object%s%s\n", p ? "" : ": ",
                    p ? "" : je.text);
            json_decref(p);
            json_decref(spec);
            return CLI_USAGE;
        }
        json_object_set_new(spec, "params", p);
    }
    if (spec_add_data(spec) != CLI_OK || spec_add_options(spec) != CLI_OK) {
        json_decref(spec);
        return CLI_USAGE;
    }
    *ret_spec = spec;
    return CLI_OK;
}

int cli_submit(int argc, char **argv)
{
    static const char usage[] =
        "stratq submit FILE.py [--params JSON] [--data FILE.json] [--timeout S] [--memory MB] "
        "[--tenant T] [--priority P] [--delay S | --run-at TIME] [--wait] [--json]";
    char **args;
    int r = load_args(CMD_SUBMIT, argc, argv, 1, usage,
                      "Submits a strategy file as a job; with --wait, prints its result.", &args);
    if (r <= 0)
        return -r;
    json_t *spec;
    r = build_spec(args[0], &spec);
    if (r != CLI_OK)
        return r;

    _cleanup_free_ char *body = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    bool wait = config_bool(CFG_WAIT);
    int wait_s = wait ? live_start(NULL) : 0;
    char path[64];
    if (wait)
        snprintf(path, sizeof(path), "/v1/jobs?wait=%d", wait_s);
    else
        snprintf(path, sizeof(path), "/v1/jobs");
    long code_http;
    json_t *resp = NULL;
    if (!body || http("POST", path, body, &code_http, &resp) < 0)
        return CLI_API_ERROR;
    if (code_http != 201 && code_http != 200)
        return api_error(code_http, resp);
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (!id || !util_valid_id(id)) {
        json_decref(resp);
        live_clear();
        fprintf(stderr, "stratq: the API returned no job id\n");
        return CLI_API_ERROR;
    }
    if (!wait) {
        if (config_bool(CFG_JSON))
            print_raw();
        else
            printf("%s\n", id);
        json_decref(resp);
        return CLI_OK;
    }
    char idcopy[80];
    snprintf(idcopy, sizeof(idcopy), "%s", id);
    snprintf(live.id, sizeof(live.id), "%s", id);
    json_t *job;
    r = wait_job(idcopy, wait_s, resp, &job);
    return r != CLI_OK ? r : finish(job, config_bool(CFG_JSON));
}

int cli_status(int argc, char **argv)
{
    char **args;
    int r = load_args(CMD_STATUS, argc, argv, 1, "stratq status ID [--json]",
                      "Prints a job's status.", &args);
    if (r <= 0)
        return -r;
    json_t *job;
    r = get_job(args[0], 0, &job);
    if (r != CLI_OK)
        return r;
    if (config_bool(CFG_JSON))
        print_raw();
    else
        print_job(job, false);
    json_decref(job);
    return CLI_OK;
}

/* Long-polls GET /v1/jobs/{id}/result?wait=S until it answers 200 (the job
 * is terminal; 202 means not yet). */
static int wait_result(const char *id, int wait_s)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/jobs/%s/result?wait=%d", id, wait_s);
    for (;;) {
        long code;
        json_t *body = NULL;
        int64_t t0 = util_mono_ms();
        if (http("GET", path, NULL, &code, &body) < 0)
            return CLI_API_ERROR;
        if (code != 200 && code != 202)
            return api_error(code, body);
        live_status(json_string_value(json_object_get(body, "status")));
        json_decref(body);
        if (code == 200)
            return CLI_OK;
        pace(t0);
    }
}

int cli_result(int argc, char **argv)
{
    char **args;
    int r = load_args(CMD_RESULT, argc, argv, 1, "stratq result ID [--wait] [--json]",
                      "Prints a finished job's result (with --wait, waits for it to finish); "
                      "exits 0 only if the job succeeded.",
                      &args);
    if (r <= 0)
        return -r;
    if (!check_id(args[0]))
        return CLI_USAGE;
    /* The result route says when the job is done; the full record (stdout,
     * stderr, usage) is then read once for printing. */
    if (config_bool(CFG_WAIT)) {
        int wait_s = live_start(args[0]);
        if (live.on) {
            /* On a terminal: the record route, which carries the progress
             * for the bar (the result route does not). */
            json_t *job = NULL;
            r = wait_job(args[0], wait_s, NULL, &job);
            json_decref(job);
        } else {
            r = wait_result(args[0], wait_s);
        }
        live_clear();
        if (r != CLI_OK)
            return r;
    }
    json_t *job;
    r = get_job(args[0], 0, &job);
    if (r != CLI_OK)
        return r;
    const char *status = json_string_value(json_object_get(job, "status"));
    if (!queue_status_is_terminal(status)) {
        fprintf(stderr, "stratq: job %s is %s and has no result yet (add --wait to wait for it)\n",
                args[0], status ? status : "unknown");
        json_decref(job);
        return CLI_NOT_FINISHED;
    }
    return finish(job, config_bool(CFG_JSON));
}

/* GET path, 200 expected; for --json the body is printed as received and
 * *ret_body is NULL. */
static int get_listing(const char *path, json_t **ret_body)
{
    long code;
    json_t *body = NULL;
    *ret_body = NULL;
    if (http("GET", path, NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200)
        return api_error(code, body);
    if (config_bool(CFG_JSON)) {
        print_raw();
        json_decref(body);
        return CLI_OK;
    }
    *ret_body = body;
    return CLI_OK;
}

/* A command that takes no arguments and prints one listing: GET path,
 * 200 expected, the body printed as received for --json, else by print. */
struct listing_cmd {
    unsigned cmd;
    const char *usage, *what; /* for load_args */
    const char *path;
    void (*print)(const json_t *body);
};

static int listing_cmd(const struct listing_cmd *l, int argc, char **argv)
{
    char **args;
    json_t *body;
    int r = load_args(l->cmd, argc, argv, 0, l->usage, l->what, &args);
    if (r <= 0)
        return -r;
    r = get_listing(l->path, &body);
    if (r != CLI_OK || !body)
        return r;
    l->print(body);
    json_decref(body);
    return CLI_OK;
}

static void print_queue(const json_t *body)
{
    printf("queue %s: %lld pending, %lld held, %lld processing, %lld scheduled, %lld dead; "
           "backlog %lld; %lld workers\n",
           json_string_value(json_object_get(body, "queue")), field_int(body, "pending"),
           field_int(body, "held"), field_int(body, "processing"), field_int(body, "scheduled"),
           field_int(body, "dead"), field_int(body, "backlog"), field_int(body, "workers"));
    if (json_is_true(json_object_get(body, "paused")))
        printf("PAUSED: nothing new starts until stratq resume\n");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(body, "paused_tenants"), i, t)
        printf("%s%s", i ? ", " : "paused tenants: ", json_string_value(t) ?: "?");
    if (json_array_size(json_object_get(body, "paused_tenants")))
        printf("\n");
}

/* A command that acts on one job with no body: cancel or retry. */
struct job_action {
    unsigned cmd;
    const char *usage, *what;    /* for load_args */
    const char *method, *suffix; /* METHOD /v1/jobs/ID<suffix> */
    long also_ok;                /* a code taken besides 200, or 0 */
    /* The line printed without --json. */
    void (*say)(const char *id, long code, const json_t *body);
};

/* Runs a job action: its arguments (a job id), its request, then the
 * answer, printed raw for --json. */
static int job_action(const struct job_action *a, int argc, char **argv)
{
    char **args;
    int r = load_args(a->cmd, argc, argv, 1, a->usage, a->what, &args);
    if (r <= 0)
        return -r;
    char path[160];
    long code;
    json_t *body = NULL;
    if (!check_id(args[0]))
        return CLI_USAGE;
    snprintf(path, sizeof(path), "/v1/jobs/%s%s", args[0], a->suffix);
    if (http(a->method, path, NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200 && (!a->also_ok || code != a->also_ok))
        return api_error(code, body);
    if (config_bool(CFG_JSON))
        print_raw();
    else
        a->say(args[0], code, body);
    json_decref(body);
    return CLI_OK;
}

/* cancel's line: cancelling (202, a running job) or the job's status. */
static void say_cancelled(const char *id, long code, const json_t *body)
{
    if (code == 202)
        printf("job %s: cancelling (its worker stops it within a second)\n", id);
    else
        printf("job %s: %s\n", id,
               field_str(body, "status", queue_status_name(QUEUE_STATUS_CANCELLED)));
}

/* retry's line: the job's status and, when known, its next attempt. */
static void say_retried(const char *id, long code, const json_t *body)
{
    long long attempts = 0;
    (void)code;
    if (cli_field_num(body, "attempts", &attempts))
        printf("job %s: %s again; its next run is attempt %lld\n", id,
               field_str(body, "status", queue_status_name(QUEUE_STATUS_QUEUED)), attempts + 1);
    else
        printf("job %s: %s again\n", id,
               field_str(body, "status", queue_status_name(QUEUE_STATUS_QUEUED)));
}

static const struct job_action cancel_action = {
    .cmd = CMD_CANCEL,
    .usage = "stratq cancel ID [--json]",
    .what = "Cancels a job: a queued job at once, a running one within a second (its worker "
            "kills it). A finished job cannot be cancelled.",
    .method = "DELETE",
    .suffix = "",
    .also_ok = 202,
    .say = say_cancelled,
};

static const struct job_action retry_action = {
    .cmd = CMD_RETRY,
    .usage = "stratq retry ID [--json]",
    .what = "Queues a job that ended unsuccessfully (failed, timeout, crashed, cancelled, dead, "
            "...) to run again as a new attempt.",
    .method = "POST",
    .suffix = "/retry",
    .say = say_retried,
};

int cli_cancel(int argc, char **argv)
{
    return job_action(&cancel_action, argc, argv);
}

int cli_retry(int argc, char **argv)
{
    return job_action(&retry_action, argc, argv);
}

/* Writes a JSON string's bytes (which may hold NUL) to f. */
static void write_text(const json_t *s, FILE *f)
{
    if (json_is_string(s) && json_string_length(s)) {
        fwrite(json_string_value(s), 1, json_string_length(s), f);
        fflush(f);
    }
}

/* Waits until job id's output may have grown, on the API's event stream:
 * until its next event, `job` (it started, or finished) or `output` (it
 * wrote some), and at most FOLLOW_SAFETY_MS while it runs or
 * FOLLOW_QUEUED_MS while it is queued or scheduled. Without the stream
 * (an API that has none, or while it reconnects), every
 * FOLLOW_INTERVAL_MS. */
static void logs_wait(struct sse_jobs *ev, const char *id, bool waiting)
{
    if (!sse_jobs_open(ev)) {
        if (sse_jobs_connect(ev))
            return; /* reopened: what was missed meanwhile is read now */
        usleep(FOLLOW_INTERVAL_MS * 1000);
        return;
    }
    int64_t deadline = util_mono_ms() + (waiting ? FOLLOW_QUEUED_MS : FOLLOW_SAFETY_MS);
    for (int64_t left; (left = deadline - util_mono_ms()) > 0;) {
        json_t *e = NULL;
        int r = sse_jobs_next(ev, (int)left, &e);
        if (r < 0) {
            /* Lost: reopened first (or later, when that fails), then what
             * was missed is read. */
            sse_jobs_connect(ev);
            return;
        }
        if (r > 0) {
            bool mine = !strcmp(json_string_value(json_object_get(e, "id")) ?: "", id);
            json_decref(e);
            if (mine)
                return;
        }
    }
}

int cli_logs(int argc, char **argv)
{
    static const char usage[] = "stratq logs ID [-f|--follow] [--json]";
    /* -f is short for --follow; the config parser knows long flags only. */
    logs_argv = calloc((size_t)argc + 1, sizeof(*logs_argv));
    if (!logs_argv)
        return CLI_API_ERROR;
    for (int i = 0; i < argc; i++)
        logs_argv[i] = strcmp(argv[i], "-f") ? argv[i] : "--follow";

    char **args;
    int r = load_args(CMD_LOGS, argc, logs_argv, 1, usage,
                      "Prints what a job wrote to stdout (on stdout) and stderr (on stderr), "
                      "also while it runs; with --follow, keeps printing new output until the "
                      "job finishes. With --json, prints each answer of the API as one line.",
                      &args);
    if (r <= 0)
        return -r;
    if (!check_id(args[0]))
        return CLI_USAGE;
    bool follow = config_bool(CFG_FOLLOW), json_out = config_bool(CFG_JSON);
    long long out_off = 0, err_off = 0, log_off = 0;
    /* Opened before the first read, so that no event after it is missed. */
    struct sse_jobs events = {.outputs = true};
    if (follow)
        sse_jobs_connect(&events);
    int rc = CLI_OK;
    for (;;) {
        char path[300];
        long code;
        json_t *body = NULL;
        snprintf(path, sizeof(path),
                 "/v1/jobs/%s/logs?stdout_offset=%lld&stderr_offset=%lld&log_offset=%lld", args[0],
                 out_off, err_off, log_off);
        if (http("GET", path, NULL, &code, &body) < 0) {
            rc = CLI_API_ERROR;
            break;
        }
        if (code != 200) {
            rc = api_error(code, body);
            break;
        }
        long long next_out, next_err;
        if (!cli_field_num(body, "stdout_offset", &next_out) ||
            !cli_field_num(body, "stderr_offset", &next_err)) {
            fprintf(stderr, "stratq: the API's logs answer has no stdout_offset/stderr_offset\n");
            json_decref(body);
            rc = CLI_API_ERROR;
            break;
        }
        if (json_out) {
            char *line = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (line)
                printf("%s\n", line);
            free(line);
            fflush(stdout);
        } else {
            write_text(json_object_get(body, "stdout"), stdout);
            write_text(json_object_get(body, "stderr"), stderr);
            print_log_lines(json_object_get(body, "log"));
        }
        long long next_log = log_off;
        cli_field_num(body, "log_offset", &next_log);
        bool done = json_is_true(json_object_get(body, "done"));
        int status = queue_status_parse(json_string_value(json_object_get(body, "status")));
        bool waiting = status == QUEUE_STATUS_QUEUED || status == QUEUE_STATUS_SCHEDULED;
        json_decref(body);
        out_off = next_out;
        err_off = next_err;
        log_off = next_log;
        if (!follow || done)
            break;
        logs_wait(&events, args[0], waiting);
    }
    sse_jobs_close(&events);
    return rc;
}

/* Width of the widest string field k in the array, at least min. */
static int col_width(const json_t *arr, const char *k, int min)
{
    size_t i;
    const json_t *v;
    int w = min;
    json_array_foreach(arr, i, v)
    {
        int n = (int)strlen(field_str(v, k, "-"));
        if (n > w)
            w = n;
    }
    return w;
}

/* pause and resume: POST /v1/queue/pause or /resume, of the queue or
 * (--tenant) one tenant. */
static int pause_or_resume(int argc, char **argv, bool pause)
{
    char **args;
    int r = load_args(pause ? CMD_PAUSE : CMD_RESUME, argc, argv, 0,
                      pause ? "stratq pause [--tenant T] [--json]"
                            : "stratq resume [--tenant T] [--json]",
                      pause ? "Pauses the queue, or one tenant: jobs already running finish, "
                              "nothing new starts until it is resumed (the jobs stay queued, "
                              "counted as held)."
                            : "Resumes the queue, or one tenant, that stratq pause paused.",
                      &args);
    if (r <= 0)
        return -r;
    const char *tenant = config_str(CFG_TENANT);
    char path[256];
    char *esc = tenant[0] ? curl_easy_escape(NULL, tenant, 0) : NULL;
    snprintf(path, sizeof(path), "/v1/queue/%s%s%.160s", pause ? "pause" : "resume",
             esc ? "?tenant=" : "", esc ? esc : "");
    curl_free(esc);
    long code;
    json_t *body = NULL;
    if (http("POST", path, NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200)
        return api_error(code, body);
    if (config_bool(CFG_JSON))
        print_raw();
    else
        printf("%s%s %s%s\n", tenant[0] ? "tenant " : "queue", tenant, pause ? "paused" : "resumed",
               json_is_false(json_object_get(body, "changed")) ? " (it was already)" : "");
    json_decref(body);
    return CLI_OK;
}

int cli_pause(int argc, char **argv)
{
    return pause_or_resume(argc, argv, true);
}

int cli_resume(int argc, char **argv)
{
    return pause_or_resume(argc, argv, false);
}

static void print_tenants(const json_t *body)
{
    long long waiting = 0, held = 0;
    cli_field_num(body, "waiting", &waiting);
    cli_field_num(body, "held", &held);
    printf("queue: %lld waiting, %lld held%s\n", waiting, held,
           json_is_true(json_object_get(body, "paused")) ? ", PAUSED" : "");
    json_t *ts = json_object_get(body, "tenants");
    if (!json_array_size(ts)) {
        printf("no tenants\n");
        return;
    }
    int w = col_width(ts, "tenant", 6);
    printf("%-*s  %8s  %8s  %7s  %11s  %s\n", w, "TENANT", "WAITING", "RUNNING", "WEIGHT",
           "MAX_RUNNING", "PAUSED");
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t)
    {
        long long n_wait = 0, running = 0, cap = 0;
        char capbuf[24] = "-";
        cli_field_num(t, "waiting", &n_wait);
        cli_field_num(t, "running", &running);
        if (cli_field_num(t, "max_running", &cap) && cap > 0)
            snprintf(capbuf, sizeof(capbuf), "%lld", cap);
        printf("%-*s  %8lld  %8lld  %7.4g  %11s  %s\n", w, field_str(t, "tenant", "-"), n_wait,
               running, json_number_value(json_object_get(t, "weight")), capbuf,
               json_is_true(json_object_get(t, "paused")) ? "yes" : "no");
    }
}

static void print_workers(const json_t *body)
{
    json_t *ws = json_object_get(body, "workers");
    if (!json_array_size(ws)) {
        printf("no workers\n");
        return;
    }
    int wid = col_width(ws, "id", 2), wjob = col_width(ws, "current_job", 3);
    int whost = col_width(ws, "host", 4);
    long long now = util_now_ms();
    printf("%-*s  %-8s  %-*s  %6s  %6s  %-*s  %7s  %8s  %s\n", wid, "ID", "STATE", wjob, "JOB",
           "DONE", "FAILED", whost, "HOST", "PID", "UP", "HEARTBEAT");
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w)
    {
        long long done = 0, failed = 0, pid = 0, started = 0, beat = 0;
        char up[32] = "-", ago[40] = "-";
        cli_field_num(w, "jobs_done", &done);
        cli_field_num(w, "jobs_failed", &failed);
        cli_field_num(w, "pid", &pid);
        if (cli_field_num(w, "started_ms", &started) && started > 0)
            cli_fmt_duration(now - started, up, sizeof(up));
        if (cli_field_num(w, "last_heartbeat_ms", &beat) && beat > 0) {
            cli_fmt_duration(now - beat, ago, sizeof(ago) - 4);
            strcat(ago, " ago");
        }
        printf("%-*s  %-8s  %-*s  %6lld  %6lld  %-*s  %7lld  %8s  %s\n", wid,
               field_str(w, "id", "-"), field_str(w, "state", "-"), wjob,
               field_str(w, "current_job", "-"), done, failed, whost, field_str(w, "host", "-"),
               pid, up, ago);
    }
}

/* The listing commands: each a GET, printed by its own function. */
static const struct listing_cmd queue_listing = {
    CMD_QUEUE, "stratq queue [--json]",
    "Prints the queue's counts: pending, held, processing, scheduled, dead, workers, the "
    "backlog (pending + held + scheduled) and what is paused.",
    "/v1/queue", print_queue};
static const struct listing_cmd tenants_listing = {
    CMD_TENANTS, "stratq tenants [--json]",
    "Lists the tenants that have had jobs wait: jobs waiting (held ones included) and running, "
    "fair-share weight, cap of running jobs and whether each is paused.",
    "/v1/tenants", print_tenants};
static const struct listing_cmd workers_listing = {
    CMD_WORKERS, "stratq workers [--json]",
    "Lists the live workers: state, current job, jobs done and failed, host, pid, uptime and "
    "age of the last heartbeat.",
    "/v1/workers", print_workers};

int cli_queue(int argc, char **argv)
{
    return listing_cmd(&queue_listing, argc, argv);
}

int cli_tenants(int argc, char **argv)
{
    return listing_cmd(&tenants_listing, argc, argv);
}

int cli_workers(int argc, char **argv)
{
    return listing_cmd(&workers_listing, argc, argv);
}

/* GET /v1/jobs with the query of --status, --limit, --cursor and
 * --tenant, whose values go through curl's escaping (a cursor is opaque).
 * CLI_OK, or CLI_USAGE when it does not fit (said). */
static int jobs_path(char *path, size_t len)
{
    static const struct {
        enum cfg_id id;
        const char *name;
    } query[] = {{CFG_STATUS, "status"},
                 {CFG_LIMIT, "limit"},
                 {CFG_CURSOR, "cursor"},
                 {CFG_TENANT, "tenant"}};
    size_t used = (size_t)snprintf(path, len, "/v1/jobs");
    char sep = '?';
    for (size_t i = 0; i < ARRAY_SIZE(query); i++) {
        const char *v = config_str(query[i].id);
        if (!config_is_set(query[i].id) || !*v)
            continue;
        char *esc = curl_easy_escape(NULL, v, 0);
        if (!esc)
            return CLI_API_ERROR;
        int n = snprintf(path + used, len - used, "%c%s=%s", sep, query[i].name, esc);
        curl_free(esc);
        if (n < 0 || (size_t)n >= len - used) {
            fprintf(stderr, "stratq: --%s is too long\n", query[i].name);
            return CLI_USAGE;
        }
        used += (size_t)n;
        sep = '&';
    }
    return CLI_OK;
}

/* The listing's jobs as a table, newest first. */
static void print_jobs(const json_t *jobs)
{
    int wid = col_width(jobs, "id", 2), wst = col_width(jobs, "status", 6);
    int wten = col_width(jobs, "tenant", 6);
    printf("%-*s  %-*s  %-*s  %8s  %-19s  %9s  %s\n", wid, "ID", wst, "STATUS", wten, "TENANT",
           "ATTEMPTS", "CREATED", "RUN TIME", "WORKER");
    size_t i;
    json_t *j;
    long long now = util_now_ms();
    json_array_foreach(jobs, i, j)
    {
        long long attempts = 0, created, started, finished;
        char when[32] = "-", took[32] = "-";
        cli_field_num(j, "attempts", &attempts);
        if (cli_field_num(j, "created_ms", &created))
            fmt_time(created, when, sizeof(when));
        if (cli_field_num(j, "started_ms", &started) && started > 0) {
            if (cli_field_num(j, "finished_ms", &finished) && finished >= started)
                cli_fmt_duration(finished - started, took, sizeof(took));
            else if (queue_status_parse(field_str(j, "status", "")) == QUEUE_STATUS_RUNNING)
                cli_fmt_duration(now - started, took, sizeof(took));
        }
        printf("%-*s  %-*s  %-*s  %8lld  %-19s  %9s  %s\n", wid, field_str(j, "id", "-"), wst,
               field_str(j, "status", "-"), wten, field_str(j, "tenant", "-"), attempts, when, took,
               field_str(j, "worker", "-"));
    }
}

int cli_jobs(int argc, char **argv)
{
    static const char usage[] =
        "stratq jobs [--status S] [--tenant T] [--limit N] [--cursor C] [--json]";
    char **args;
    int r = load_args(CMD_JOBS, argc, argv, 0, usage,
                      "Lists recent jobs, newest first: status, tenant, attempts, creation time, "
                      "run time and worker.",
                      &args);
    if (r <= 0)
        return -r;
    char path[1024];
    r = jobs_path(path, sizeof(path));
    if (r != CLI_OK)
        return r;
    json_t *body;
    r = get_listing(path, &body);
    if (r != CLI_OK || !body)
        return r;
    json_t *jobs = json_object_get(body, "jobs");
    if (!json_array_size(jobs))
        printf("no jobs\n");
    else
        print_jobs(jobs);
    const char *next = json_string_value(json_object_get(body, "next_cursor"));
    if (next && *next)
        fprintf(stderr, "more: stratq jobs --cursor %s%s%s%s%s\n", next,
                config_str(CFG_STATUS)[0] ? " --status " : "", config_str(CFG_STATUS),
                config_str(CFG_TENANT)[0] ? " --tenant " : "", config_str(CFG_TENANT));
    json_decref(body);
    return CLI_OK;
}

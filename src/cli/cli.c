#define _GNU_SOURCE
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/job.h"
#include "../common/util.h"

struct response {
    long code;
    char *body;
    size_t len;
};

/* The last response body, kept so that --json prints it exactly as the API
 * sent it. */
static char *last_body;

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

/* Performs one request. On success returns 0 with the status code and the
 * parsed JSON body (*ret_json may be NULL if the body was not JSON). On a
 * transport error prints what failed, naming the URL, and returns -EIO. */
static int http(const char *method, const char *path, const char *body, long *ret_code,
                json_t **ret_json)
{
    char url[2048];
    struct response resp = {0};
    struct curl_slist *hdrs = NULL;
    const char *base = config_str(CFG_API_URL);
    size_t bl = strlen(base);
    int r = 0;

    snprintf(url, sizeof(url), "%.*s%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base,
             path);
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
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

void cli_free(void)
{
    free(last_body);
    last_body = NULL;
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
    fprintf(stderr, "stratq: the API answered %ld: %s\n", code, msg ? msg : "(no message)");
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

static long long field_int(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* Human form of a job record. */
static void print_job(const json_t *job, bool with_result)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    const char *worker = json_string_value(json_object_get(job, "worker"));
    json_t *usage = json_object_get(job, "usage");

    printf("job %s: %s", json_string_value(json_object_get(job, "id")), status ? status : "?");
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
        print_json(result);
    }
}

static int get_job(const char *id, json_t **ret_job)
{
    char path[160];
    long code;
    json_t *body = NULL;
    if (!util_valid_id(id)) {
        fprintf(stderr, "stratq: '%s' is not a job id\n", id);
        return CLI_USAGE;
    }
    snprintf(path, sizeof(path), "/v1/jobs/%s", id);
    if (http("GET", path, NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200)
        return api_error(code, body);
    *ret_job = body;
    return CLI_OK;
}

/* Polls the job until it is terminal. */
static int wait_job(const char *id, json_t **ret_job)
{
    useconds_t delay = 20000;
    for (;;) {
        json_t *job;
        int r = get_job(id, &job);
        if (r != CLI_OK)
            return r;
        const char *status = json_string_value(json_object_get(job, "status"));
        if (status && job_status_is_terminal(status)) {
            *ret_job = job;
            return CLI_OK;
        }
        json_decref(job);
        usleep(delay);
        if (delay < 250000)
            delay *= 2;
    }
}

static int finish(json_t *job, bool json_out)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    int rc = status && !strcmp(status, "succeeded") ? CLI_OK : CLI_JOB_FAILED;
    if (json_out)
        print_raw();
    else
        print_job(job, true);
    json_decref(job);
    return rc;
}

int cli_submit(int argc, char **argv)
{
    static const char usage[] =
        "stratq submit FILE.py [--params JSON] [--data FILE.json] [--timeout S] [--memory MB] "
        "[--wait] [--json]";
    char **args;
    int r = load_args(CMD_SUBMIT, argc, argv, 1, usage,
                      "Submits a strategy file as a job; with --wait, prints its result.", &args);
    if (r <= 0)
        return -r;

    _cleanup_free_ char *code = NULL;
    size_t len;
    r = util_read_file(args[0], 16 * 1024 * 1024, &code, &len);
    if (r < 0) {
        fprintf(stderr, "stratq: cannot read %s: %s\n", args[0], strerror(-r));
        return CLI_USAGE;
    }
    json_t *spec = json_object();
    char *clean = util_utf8_sanitize(code, len);
    json_object_set_new(spec, "code", json_string(clean ? clean : ""));
    free(clean);
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
    if (config_str(CFG_DATA)[0]) {
        json_error_t je;
        json_t *d = json_load_file(config_str(CFG_DATA), JSON_DECODE_ANY, &je);
        if (!d) {
            fprintf(stderr, "stratq: --data %s: %s (line %d, column %d)\n", config_str(CFG_DATA),
                    je.text, je.line, je.column);
            json_decref(spec);
            return CLI_USAGE;
        }
        json_object_set_new(spec, "data", d);
    }
    if (config_str(CFG_TIMEOUT)[0]) {
        char *end;
        double t = strtod(config_str(CFG_TIMEOUT), &end);
        if (*end || !(t > 0)) {
            fprintf(stderr, "stratq: --timeout must be a number of seconds above 0, not '%s'\n",
                    config_str(CFG_TIMEOUT));
            json_decref(spec);
            return CLI_USAGE;
        }
        json_object_set_new(spec, "timeout_s", json_real(t));
    }
    if (config_int(CFG_MEMORY) > 0)
        json_object_set_new(spec, "memory_mb", json_integer(config_int(CFG_MEMORY)));

    _cleanup_free_ char *body = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    long code_http;
    json_t *resp = NULL;
    if (!body || http("POST", "/v1/jobs", body, &code_http, &resp) < 0)
        return CLI_API_ERROR;
    if (code_http != 201 && code_http != 200)
        return api_error(code_http, resp);
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (!id) {
        json_decref(resp);
        fprintf(stderr, "stratq: the API returned no job id\n");
        return CLI_API_ERROR;
    }
    if (!config_bool(CFG_WAIT)) {
        if (config_bool(CFG_JSON))
            print_raw();
        else
            printf("%s\n", id);
        json_decref(resp);
        return CLI_OK;
    }
    char idcopy[80];
    snprintf(idcopy, sizeof(idcopy), "%s", id);
    json_decref(resp);
    json_t *job;
    r = wait_job(idcopy, &job);
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
    r = get_job(args[0], &job);
    if (r != CLI_OK)
        return r;
    if (config_bool(CFG_JSON))
        print_raw();
    else
        print_job(job, false);
    json_decref(job);
    return CLI_OK;
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
    json_t *job;
    r = config_bool(CFG_WAIT) ? wait_job(args[0], &job) : get_job(args[0], &job);
    if (r != CLI_OK)
        return r;
    const char *status = json_string_value(json_object_get(job, "status"));
    if (!status || !job_status_is_terminal(status)) {
        fprintf(stderr, "stratq: job %s is %s and has no result yet (add --wait to wait for it)\n",
                args[0], status ? status : "unknown");
        json_decref(job);
        return CLI_NOT_FINISHED;
    }
    return finish(job, config_bool(CFG_JSON));
}

int cli_queue(int argc, char **argv)
{
    char **args;
    int r = load_args(CMD_QUEUE, argc, argv, 0, "stratq queue [--json]",
                      "Prints the queue's counts: pending, processing, scheduled, dead, workers.",
                      &args);
    if (r <= 0)
        return -r;
    long code;
    json_t *body = NULL;
    if (http("GET", "/v1/queue", NULL, &code, &body) < 0)
        return CLI_API_ERROR;
    if (code != 200)
        return api_error(code, body);
    if (config_bool(CFG_JSON)) {
        print_raw();
    } else {
        printf("queue %s: %lld pending, %lld processing, %lld scheduled, %lld dead; %lld "
               "workers\n",
               json_string_value(json_object_get(body, "queue")), field_int(body, "pending"),
               field_int(body, "processing"), field_int(body, "scheduled"),
               field_int(body, "dead"), field_int(body, "workers"));
    }
    json_decref(body);
    return CLI_OK;
}

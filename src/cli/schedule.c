/* `stratq schedule`: recurring jobs through the API's /v1/schedules
 * (docs/api.md, "Recurring jobs"). add, list, show, rm, pause, resume. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/config.h"
#include "../common/util.h"
#include "cli.h"

static const char usage[] =
    "stratq schedule add (--cron EXPR [--tz ZONE] | --every INTERVAL) FILE.py [--params JSON] "
    "[--entrypoint F] [--memory MB] [--tenant T] [--priority P] [--overlap skip|allow] "
    "[--name N] [--json]\n"
    "       stratq schedule list [--json]\n"
    "       stratq schedule show|rm|pause|resume ID [--json]";

/* --- One request ------------------------------------------------------------------ */

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct {
        char *buf;
        size_t len;
    } *b = arg;
    char *nb = realloc(b->buf, b->len + size * nmemb + 1);
    if (!nb)
        return 0;
    memcpy(nb + b->len, data, size * nmemb);
    b->buf = nb;
    b->len += size * nmemb;
    b->buf[b->len] = '\0';
    return size * nmemb;
}

/* Sends method path (with a JSON body, or none) to the API. Returns CLI_OK
 * with the body as JSON in *ret (the caller frees it) when the API
 * answered want; else says why on stderr and returns CLI_API_ERROR. */
static int request(const char *method, const char *path, const char *body, long want, json_t **ret)
{
    char url[2048];
    struct {
        char *buf;
        size_t len;
    } got = {0};
    struct curl_slist *hdrs = NULL;
    _cleanup_free_ char *auth = NULL;
    *ret = NULL;
    CURL *c = curl_easy_init();
    if (!c || cli_auth_header(&auth) < 0) {
        curl_easy_cleanup(c);
        return CLI_API_ERROR;
    }
    cli_url(path, url, sizeof(url));
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cr = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    json_t *j = got.buf ? json_loadb(got.buf, got.len, 0, NULL) : NULL;
    free(got.buf);
    if (cr != CURLE_OK)
        fprintf(stderr,
                "stratq: cannot reach the stratq API at %s: %s\n"
                "  (is it running? set STRATQ_API_URL or --api-url to its address)\n",
                url, curl_easy_strerror(cr));
    else if (code != want)
        fprintf(stderr, "stratq: the API answered %ld: %s\n", code,
                json_string_value(json_object_get(j, "error"))
                    ? json_string_value(json_object_get(j, "error"))
                    : "(no message)");
    if (cr != CURLE_OK || code != want) {
        json_decref(j);
        return CLI_API_ERROR;
    }
    *ret = j;
    return CLI_OK;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
}

/* --- add -------------------------------------------------------------------------- */

/* Sets key of o to the option's text when it was given. */
static void set_opt(json_t *o, const char *key, enum cfg_id id)
{
    if (config_str(id)[0])
        json_object_set_new(o, key, json_string(config_str(id)));
}

/* The job of `schedule add FILE`: the file's code and the job options.
 * NULL (said on stderr) when the file or --params is unusable. */
static json_t *job_of(const char *file)
{
    _cleanup_free_ char *clean = NULL;
    if (cli_read_source(file, &clean) < 0)
        return NULL;
    json_t *job = json_pack("{s:s}", "code", clean ? clean : "");
    set_opt(job, "entrypoint", CFG_ENTRYPOINT);
    set_opt(job, "tenant", CFG_TENANT);
    const char *prio = config_str(CFG_PRIORITY);
    char *end;
    long p = strtol(prio, &end, 10);
    if (prio[0])
        json_object_set_new(job, "priority", *end ? json_string(prio) : json_integer(p));
    if (config_int(CFG_MEMORY) > 0)
        json_object_set_new(job, "memory_mb", json_integer(config_int(CFG_MEMORY)));
    if (config_str(CFG_PARAMS)[0]) {
        json_error_t je;
        json_t *params = json_loads(config_str(CFG_PARAMS), 0, &je);
        if (!json_is_object(params)) {
            fprintf(stderr, "stratq: --params must be a JSON object (%s)\n",
                    params ? "not an object" : je.text);
            json_decref(params);
            json_decref(job);
            return NULL;
        }
        json_object_set_new(job, "params", params);
    }
    return job;
}

static int schedule_add(const char *file)
{
    json_t *job = job_of(file);
    if (!job)
        return CLI_USAGE;
    json_t *body = json_pack("{s:o}", "job", job);
    set_opt(body, "cron", CFG_SCHED_CRON);
    set_opt(body, "tz", CFG_SCHED_TZ);
    set_opt(body, "every", CFG_SCHED_EVERY);
    set_opt(body, "overlap", CFG_SCHED_OVERLAP);
    set_opt(body, "name", CFG_SCHED_NAME);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *resp;
    int r = text ? request("POST", "/v1/schedules", text, 201, &resp) : CLI_API_ERROR;
    if (r != CLI_OK)
        return r;
    if (config_bool(CFG_JSON))
        print_json(resp);
    else
        printf("%s\n", json_string_value(json_object_get(resp, "id")));
    json_decref(resp);
    return CLI_OK;
}

/* --- list, show, rm, pause, resume ---------------------------------------------- */

/* A time as the listing shows it (UTC), or "-". */
static void fmt_ms(const json_t *v, char *buf, size_t len)
{
    time_t t = (time_t)(json_integer_value(v) / 1000);
    struct tm tm;
    if (!json_is_integer(v) || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
}

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

static void print_row(const json_t *s)
{
    char when[300], next[40];
    if (json_is_string(json_object_get(s, "cron")))
        snprintf(when, sizeof(when), "%s (%s)", str_or(s, "cron", ""), str_or(s, "tz", "UTC"));
    else
        snprintf(when, sizeof(when), "every %s", str_or(s, "every", "?"));
    fmt_ms(json_object_get(s, "next_ms"), next, sizeof(next));
    printf("%-28s  %-16.16s  %-26.26s  %-10.10s  %-7s  %-6s  %-21s  %6lld  %s\n",
           str_or(s, "id", "?"), str_or(s, "name", "-"), when, str_or(s, "tenant", "-"),
           str_or(s, "overlap", "-"),
           json_is_true(json_object_get(s, "paused")) ? "paused" : "active", next,
           json_integer_value(json_object_get(s, "fires")), str_or(s, "last_status", "-"));
}

/* Every schedule the token may see, page after page: {"schedules": [...]}. */
static int schedule_list(void)
{
    json_t *all = json_array(), *resp = NULL;
    char err[1024], path[256] = "/v1/schedules?limit=1000";
    while (all) {
        if (cli_get_json(path, &resp, err, sizeof(err)) != CLI_OK) {
            fprintf(stderr, "stratq: %s\n", err);
            json_decref(all);
            return CLI_API_ERROR;
        }
        json_array_extend(all, json_object_get(resp, "schedules"));
        const char *next = json_string_value(json_object_get(resp, "next_cursor"));
        bool more = next && snprintf(path, sizeof(path), "/v1/schedules?limit=1000&cursor=%s",
                                     next) < (int)sizeof(path);
        json_decref(resp);
        if (!more)
            break;
    }
    if (!all) {
        fprintf(stderr, "stratq: out of memory\n");
        return CLI_API_ERROR;
    }
    if (config_bool(CFG_JSON)) {
        json_t *doc = json_pack("{s:O}", "schedules", all);
        print_json(doc);
        json_decref(doc);
    } else {
        printf("%-28s  %-16s  %-26s  %-10s  %-7s  %-6s  %-21s  %6s  %s\n", "ID", "NAME", "WHEN",
               "TENANT", "OVERLAP", "STATE", "NEXT", "FIRES", "LAST");
        size_t i;
        json_t *s;
        json_array_foreach(all, i, s) print_row(s);
    }
    json_decref(all);
    return CLI_OK;
}

/* show, rm, pause or resume of schedule id. */
static int schedule_one(const char *verb, const char *id)
{
    if (!util_valid_id(id)) {
        fprintf(stderr, "stratq: '%s' is not a schedule id (1 to 64 of A-Z a-z 0-9 _ -)\n", id);
        return CLI_USAGE;
    }
    char path[160];
    bool show = !strcmp(verb, "show"), rm = !strcmp(verb, "rm");
    snprintf(path, sizeof(path), "/v1/schedules/%s%s%s", id, show || rm ? "" : "/",
             show || rm ? "" : verb);
    json_t *resp;
    int r = request(show ? "GET" : rm ? "DELETE" : "POST", path, NULL, 200, &resp);
    if (r != CLI_OK)
        return r;
    if (config_bool(CFG_JSON) || show)
        print_json(resp);
    else if (rm)
        printf("deleted %s\n", id);
    else
        printf("%s %s%s\n", json_is_true(json_object_get(resp, "paused")) ? "paused" : "resumed",
               id, json_is_false(json_object_get(resp, "changed")) ? " (already)" : "");
    json_decref(resp);
    return CLI_OK;
}

int cli_schedule(int argc, char **argv)
{
    static const char *const verbs[] = {"add", "list", "show", "rm", "pause", "resume"};
    const char *verb = argc > 0 ? argv[0] : "";
    size_t v = 0;
    while (v < ARRAY_SIZE(verbs) && strcmp(verb, verbs[v]) != 0)
        v++;
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) {
        config_print_help(CMD_SCHEDULE, usage, "Recurring jobs: a cron schedule or an interval.");
        return CLI_OK;
    }
    if (v == ARRAY_SIZE(verbs)) {
        fprintf(stderr, "usage: %s\n", usage);
        return CLI_USAGE;
    }
    char **args, err[256];
    int nargs;
    int r = config_load(CMD_SCHEDULE, argc - 1, argv + 1, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(CMD_SCHEDULE, usage, "Recurring jobs: a cron schedule or an interval.");
        return CLI_OK;
    }
    if (r < 0 || nargs != (v == 1 ? 0 : 1)) {
        fprintf(stderr, "%s%s%susage: %s\n", r < 0 ? "stratq: " : "", r < 0 ? err : "",
                r < 0 ? "\n" : "", usage);
        return CLI_USAGE;
    }
    if (v == 0)
        return schedule_add(args[0]);
    if (v == 1)
        return schedule_list();
    return schedule_one(verb, args[0]);
}

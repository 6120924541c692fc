#define _GNU_SOURCE
#include "job.h"

#include "jsonv.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int wrong_type(const char *field, const char *want, const json_t *v, char *err,
                      size_t errlen)
{
    snprintf(err, errlen, "field '%s' must be %s, not %s", field, want, json_type_name(v));
    return -EINVAL;
}

/* Nesting depth of v (a scalar is 0), without recursing past the limit. */
static int json_depth_at(const json_t *v, int level)
{
    int max = level;
    const char *key;
    json_t *child;
    size_t i;

    if (level > JOB_MAX_DEPTH)
        return level;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            int d = json_depth_at(child, level + 1);
            if (d > max)
                max = d;
            if (max > JOB_MAX_DEPTH)
                break;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            int d = json_depth_at(child, level + 1);
            if (d > max)
                max = d;
            if (max > JOB_MAX_DEPTH)
                break;
        }
    }
    return max;
}

/* Nesting depth of a JSON value: 0 for a scalar, 1 for a flat object. */
static int json_depth(const json_t *v)
{
    return json_depth_at(v, 0);
}

static bool is_identifier(const char *s)
{
    if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Checks a positive numeric limit against its maximum (named by the
 * setting that sets it); fills the default. */
static int check_limit(json_t *spec, const char *field, bool integer, long long def, long long max,
                       const char *setting, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, field);
    if (!v || json_is_null(v))
        return json_object_set_new(spec, field, json_integer(def)) ? -ENOMEM : 0;
    if (integer && !json_is_integer(v))
        return wrong_type(field, "an integer", v, err, errlen);
    if (!json_is_number(v))
        return wrong_type(field, "a number", v, err, errlen);
    double d = json_number_value(v);
    if (!(d > 0) || !isfinite(d) || d > (double)max) {
        snprintf(err, errlen,
                 "field '%s' must be greater than 0 and at most %lld (the limit set by %s)", field,
                 max, setting);
        return -EINVAL;
    }
    return 0;
}

/* A JSON object with only the fields a job spec has. */
static int check_fields(const json_t *spec, char *err, size_t errlen)
{
    static const char *const known[] = {
        "code",      "entrypoint",   "params",          "data", "data_csv", "timeout_s",
        "memory_mb", "max_attempts", "retry_backoff_s", NULL};
    const char *key;
    json_t *v;

    if (!json_is_object(spec)) {
        snprintf(err, errlen, "the job spec must be a JSON object, not %s", json_type_name(spec));
        return -EINVAL;
    }
    json_object_foreach((json_t *)spec, key, v)
    {
        bool ok = false;
        for (int i = 0; known[i]; i++)
            ok = ok || !strcmp(key, known[i]);
        if (!ok) {
            snprintf(err, errlen,
                     "unknown field '%s'; a job spec has code, entrypoint, params, data, "
                     "data_csv, timeout_s, memory_mb, max_attempts, retry_backoff_s",
                     key);
            return -EINVAL;
        }
    }
    return 0;
}

/* 'code': a string, not empty. */
static int check_code(const json_t *spec, char *err, size_t errlen)
{
    const json_t *v = json_object_get(spec, "code");
    if (!v) {
        snprintf(err, errlen, "missing required field 'code' (the strategy's Python source)");
        return -EINVAL;
    }
    if (!json_is_string(v))
        return wrong_type("code", "a string", v, err, errlen);
    if (json_string_length(v) == 0) {
        snprintf(err, errlen, "field 'code' must not be empty");
        return -EINVAL;
    }
    return 0;
}

/* 'entrypoint': a Python identifier, "run" when not given. */
static int check_entrypoint(json_t *spec, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, "entrypoint");
    if (!v || json_is_null(v)) {
        if (json_object_set_new(spec, "entrypoint", json_string("run")))
            return -ENOMEM;
    } else if (!json_is_string(v)) {
        return wrong_type("entrypoint", "a string", v, err, errlen);
    } else if (!is_identifier(json_string_value(v))) {
        snprintf(err, errlen, "field 'entrypoint' must be a Python identifier");
        return -EINVAL;
    }
    return 0;
}

/* 'params': an object of at most JOB_MAX_PARAMS entries, {} when not
 * given. */
static int check_params(json_t *spec, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, "params");
    if (!v || json_is_null(v)) {
        if (json_object_set_new(spec, "params", json_object()))
            return -ENOMEM;
    } else if (!json_is_object(v)) {
        return wrong_type("params", "an object", v, err, errlen);
    } else if (json_object_size(v) > JOB_MAX_PARAMS) {
        snprintf(err, errlen, "field 'params' has %zu entries; the limit is %d",
                 json_object_size(v), JOB_MAX_PARAMS);
        return -EINVAL;
    }
    return 0;
}

/* 'data_csv': a string, not with 'data'; a null one is dropped. */
static int check_data_csv(json_t *spec, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, "data_csv");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return wrong_type("data_csv", "a string (CSV text)", v, err, errlen);
        json_t *d = json_object_get(spec, "data");
        if (d && !json_is_null(d)) {
            snprintf(err, errlen,
                     "field 'data_csv' cannot be given with 'data': ctx.data is one or the other");
            return -EINVAL;
        }
    } else if (v) {
        json_object_del(spec, "data_csv");
    }
    return 0;
}

/* 'retry_backoff_s': from 0 to JOB_MAX_BACKOFF_S, JOB_DEFAULT_BACKOFF_S
 * when not given. */
static int check_backoff(json_t *spec, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, "retry_backoff_s");
    if (!v || json_is_null(v))
        return json_object_set_new(spec, "retry_backoff_s", json_integer(JOB_DEFAULT_BACKOFF_S))
                   ? -ENOMEM
                   : 0;
    if (!json_is_number(v))
        return wrong_type("retry_backoff_s", "a number", v, err, errlen);
    if (!(json_number_value(v) >= 0) || json_number_value(v) > JOB_MAX_BACKOFF_S) {
        snprintf(err, errlen, "field 'retry_backoff_s' must be from 0 to %d", JOB_MAX_BACKOFF_S);
        return -EINVAL;
    }
    return 0;
}

int job_spec_normalize(json_t *spec, const struct job_limits *lim, char *err, size_t errlen)
{
    int r;
    if ((r = check_fields(spec, err, errlen)) < 0 || (r = check_code(spec, err, errlen)) < 0 ||
        (r = check_entrypoint(spec, err, errlen)) < 0 ||
        (r = check_params(spec, err, errlen)) < 0 || (r = check_data_csv(spec, err, errlen)) < 0)
        return r;
    if (json_depth(spec) > JOB_MAX_DEPTH) {
        snprintf(err, errlen, "the job spec nests deeper than %d levels (the limit)",
                 JOB_MAX_DEPTH);
        return -EINVAL;
    }

    r = check_limit(spec, "timeout_s", false, lim->default_timeout_s, lim->max_timeout_s,
                    "STRATQ_MAX_TIMEOUT_S", err, errlen);
    if (r < 0)
        return r;
    r = check_limit(spec, "memory_mb", true, lim->default_memory_mb, lim->max_memory_mb,
                    "STRATQ_MAX_MEMORY_MB", err, errlen);
    if (r < 0)
        return r;
    r = check_limit(spec, "max_attempts", true, 1, JOB_MAX_ATTEMPTS, "stratq itself", err, errlen);
    if (r < 0)
        return r;
    return check_backoff(spec, err, errlen);
}

int job_json_parse(const char *text, size_t len, json_t **ret, char *err, size_t errlen)
{
    /* Parsing builds a jansson value per JSON value, about 100 bytes each
     * whatever their size in the text: a body of "[{},{},...]" would cost
     * the API 80 times its bytes. Counted first, without building. */
    const struct jsonv_limits lim = {.max_depth = JOB_MAX_DEPTH, .max_values = JOB_JSON_MAX_VALUES};
    size_t at = 0;
    int c = jsonv_check(text, len, &lim, &at);
    if (c == JSONV_TOO_DEEP || c == JSONV_TOO_MANY) {
        if (c == JSONV_TOO_DEEP)
            snprintf(err, errlen, "the body nests deeper than %d levels (the limit; at byte %zu)",
                     JOB_MAX_DEPTH, at);
        else
            snprintf(err, errlen,
                     "the body holds more than %d values (the limit; at byte %zu): put large "
                     "data in the data directory (ctx.dataset) rather than in the job",
                     JOB_JSON_MAX_VALUES, at);
        return -EINVAL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        snprintf(err, errlen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

int job_spec_parse(const char *text, size_t len, const struct job_limits *lim, json_t **ret_spec,
                   char *err, size_t errlen)
{
    json_t *spec;
    int r = job_json_parse(text, len, &spec, err, errlen);
    if (r < 0)
        return r;
    r = job_spec_normalize(spec, lim, err, errlen);
    if (r < 0) {
        json_decref(spec);
        return r;
    }
    *ret_spec = spec;
    return 0;
}

long long job_retry_delay_ms(double backoff_s, long long failures, double cap_s, double rnd)
{
    double d = backoff_s;
    for (long long i = 1; i < failures && d < cap_s; i++)
        d *= 2;
    if (d > cap_s)
        d = cap_s;
    return (long long)((d / 2 + d / 2 * rnd) * 1000.0);
}

int job_parse_rfc3339(const char *s, long long *ms)
{
    struct tm tm = {0};
    int n = 0, frac_ms = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10 ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return -EINVAL;
    const char *p = s + 11;
    if (sscanf(p, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 8)
        return -EINVAL;
    p += 8;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    int offset_min = 0;
    if ((*p == 'Z' || *p == 'z') && !p[1]) {
        offset_min = 0;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || p[6] || oh > 23 || om > 59)
            return -EINVAL;
        offset_min = (*p == '-' ? -1 : 1) * (oh * 60 + om);
    } else {
        return -EINVAL;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -EINVAL;
    int mday = tm.tm_mday;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != mday) /* 31 April rolled over */
        return -EINVAL;
    *ms = ((long long)t - offset_min * 60LL) * 1000 + frac_ms;
    return 0;
}

static int take_tenant(json_t *spec, const char *token_tenant, struct job_placement *out, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(spec, "tenant");
    const char *t = token_tenant && token_tenant[0] ? token_tenant : JOB_TENANT_DEFAULT;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !util_valid_tenant(json_string_value(v))) {
            snprintf(err, errlen,
                     "field 'tenant' must be a string of 1 to 64 characters of "
                     "[A-Za-z0-9._-]");
            return -EINVAL;
        }
        if (token_tenant && token_tenant[0] && strcmp(token_tenant, json_string_value(v)) != 0) {
            snprintf(err, errlen,
                     "field 'tenant' is '%s', but this token submits as tenant '%s' only",
                     json_string_value(v), token_tenant);
            return -EPERM;
        }
        t = json_string_value(v);
    }
    snprintf(out->tenant, sizeof(out->tenant), "%s", t);
    json_object_del(spec, "tenant");
    return 0;
}

static int take_priority(json_t *spec, struct job_placement *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {{"low", 2}, {"normal", 5}, {"high", 8}};
    json_t *v = json_object_get(spec, "priority");
    out->priority = 5;
    if (!v || json_is_null(v)) {
        json_object_del(spec, "priority");
        return 0;
    }
    bool ok = false;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 9) {
        out->priority = (int)json_integer_value(v);
        ok = true;
    }
    for (size_t i = 0; json_is_string(v) && i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(json_string_value(v), names[i].name)) {
            out->priority = names[i].value;
            ok = true;
        }
    if (!ok) {
        snprintf(err, errlen,
                 "field 'priority' must be an integer from 0 to 9 (9 first) or one of "
                 "\"low\", \"normal\", \"high\"");
        return -EINVAL;
    }
    json_object_del(spec, "priority");
    return 0;
}

static int take_start(json_t *spec, long long now_ms, struct job_placement *out, char *err,
                      size_t errlen)
{
    json_t *at = json_object_get(spec, "run_at"), *delay = json_object_get(spec, "delay_s");
    long long latest = now_ms + JOB_MAX_DELAY_S * 1000;
    out->run_at_ms = out->delay_ms = 0;
    if (at && !json_is_null(at) && delay && !json_is_null(delay)) {
        snprintf(err, errlen, "fields 'run_at' and 'delay_s' cannot both be given");
        return -EINVAL;
    }
    if (at && !json_is_null(at)) {
        long long ms = 0;
        if (json_is_integer(at) && json_integer_value(at) >= 0)
            ms = json_integer_value(at);
        else if (!json_is_string(at) || job_parse_rfc3339(json_string_value(at), &ms) < 0)
            ms = -1;
        if (ms < 0 || ms > latest) {
            snprintf(err, errlen,
                     "field 'run_at' must be epoch milliseconds or an RFC 3339 time "
                     "(2026-12-07T15:00:00Z) at most %lld days ahead",
                     JOB_MAX_DELAY_S / 86400);
            return -EINVAL;
        }
        out->run_at_ms = ms;
    } else if (delay && !json_is_null(delay)) {
        double d = json_is_number(delay) ? json_number_value(delay) : -1;
        if (!(d >= 0) || d > (double)JOB_MAX_DELAY_S) {
            snprintf(err, errlen, "field 'delay_s' must be a number of seconds from 0 to %lld",
                     JOB_MAX_DELAY_S);
            return -EINVAL;
        }
        out->delay_ms = (long long)(d * 1000 + 0.5);
    }
    json_object_del(spec, "run_at");
    json_object_del(spec, "delay_s");
    return 0;
}

int job_placement_take(json_t *spec, const struct job_token *tok, long long now_ms,
                       struct job_placement *out, char *err, size_t errlen)
{
    const char *token_tenant = tok ? tok->tenant : NULL;
    int r;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(spec)) {
        snprintf(err, errlen, "the job spec must be a JSON object, not %s", json_type_name(spec));
        return -EINVAL;
    }
    if ((r = take_tenant(spec, token_tenant, out, err, errlen)) < 0 ||
        (r = take_priority(spec, out, err, errlen)) < 0 ||
        (r = take_start(spec, now_ms, out, err, errlen)) < 0)
        return r;
    if (tok && out->priority > tok->max_priority) {
        snprintf(err, errlen, "field 'priority' is %d, but this token may ask for %d at most",
                 out->priority, tok->max_priority);
        return -EPERM;
    }
    return 0;
}

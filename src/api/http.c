/* Replies and query strings (src/api/http.h). */
#include "http.h"

#include "../common/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *http_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return code < 500 ? "Client Error" : "Server Error";
    }
}

void http_send_json(struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!buf || !s) {
        free(s);
        if (buf)
            evbuffer_free(buf);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(buf, s, strlen(s));
    evbuffer_add(buf, "\n", 1);
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, http_reason(code), buf);
    evbuffer_free(buf);
}

void http_vsend_error(struct evhttp_request *req, int code, const char *fmt, va_list ap)
{
    char msg[700];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (code == 503)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    http_send_json(req, code, json_pack("{s:s}", "error", msg));
}

void http_send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_vsend_error(req, code, fmt, ap);
    va_end(ap);
}

bool http_query_str(struct evhttp_request *req, const char *name, char *buf, size_t len)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    bool found = false;
    if (!q || evhttp_parse_query_str(q, &params) != 0)
        return false;
    const char *v = evhttp_find_header(&params, name);
    if (v) {
        snprintf(buf, len, "%s", v);
        found = true;
    }
    evhttp_clear_headers(&params);
    return found;
}

int http_query_int(struct evhttp_request *req, const char *name, long long def, long long min,
                   long long max, long long *ret)
{
    char buf[64];
    if (!http_query_str(req, name, buf, sizeof(buf))) {
        *ret = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end || v < min || v > max) {
        http_send_error(req, 400, "query parameter '%s' must be an integer from %lld to %lld", name,
                        min, max);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

const char *http_request_body(struct evhttp_request *req, size_t max_body, size_t *ret_len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > max_body) {
        http_send_error(req, 413,
                        "the request body is %zu bytes; the limit (STRATQ_MAX_BODY) is %zu", len,
                        max_body);
        return NULL;
    }
    *ret_len = len;
    return len ? (const char *)evbuffer_pullup(in, -1) : "";
}

int http_query_cursor(struct evhttp_request *req, char *score, size_t len, char *id, size_t idlen)
{
    char cursor[160];
    if (!http_query_str(req, "cursor", cursor, sizeof(cursor)))
        return 0;
    char *colon = strchr(cursor, ':');
    char *end = NULL;
    if (colon)
        strtod(cursor, &end);
    if (!colon || colon == cursor || end != colon || !util_valid_id(colon + 1) ||
        (size_t)(colon - cursor) >= len || strlen(colon + 1) >= idlen) {
        http_send_error(req, 400, "query parameter 'cursor' is not a cursor this API made");
        return -EINVAL;
    }
    *colon = '\0';
    snprintf(score, len, "%s", cursor);
    snprintf(id, idlen, "%s", colon + 1);
    return 1;
}

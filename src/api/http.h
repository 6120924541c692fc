/* Replies and query strings for every room of the API: JSON bodies, errors
 * as {"error": "..."}, and ?name= parameters. No state; nothing here knows
 * a route or Redis. */
#ifndef STRATQ_API_HTTP_H
#define STRATQ_API_HTTP_H

#include <event2/http.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* The reason phrase of an HTTP status code ("Not Found"). */
const char *http_reason(int code);
/* Answers req with body as compact JSON (body stolen; NULL answers 500). */
void http_send_json(struct evhttp_request *req, int code, json_t *body);
/* Answers req with {"error": message}; a 503 also says Retry-After: 1. */
void http_send_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_vsend_error(struct evhttp_request *req, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Parses ?name=integer from the request's query; def when absent. Returns
 * -EINVAL (and answers 400) when present but not an integer in [min, max]. */
int http_query_int(struct evhttp_request *req, const char *name, long long def, long long min,
                   long long max, long long *ret);
/* The body of a POST as a NUL-terminated view, its length in *ret_len;
 * NULL, with req answered 413, when it is longer than max_body (the
 * STRATQ_MAX_BODY of the message). */
const char *http_request_body(struct evhttp_request *req, size_t max_body, size_t *ret_len);
/* Copies ?name= into buf; false when absent. */
bool http_query_str(struct evhttp_request *req, const char *name, char *buf, size_t len);
/* ?cursor= of a listing, "<score>:<id>" as the API made it: the score
 * into score (len bytes), the id into id (idlen bytes). 0 when absent (both
 * untouched), 1 when read, -EINVAL (answered 400) for anything else. */
int http_query_cursor(struct evhttp_request *req, char *score, size_t len, char *id, size_t idlen);

#endif

/* The API's routes: one table, matched by method and path. Kept apart from
 * the HTTP server so that it can be fuzzed and listed (stratq api --routes)
 * on its own. */
#ifndef STRATQ_ROUTER_H
#define STRATQ_ROUTER_H

#include <stddef.h>

enum route_id {
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_QUEUE,
    ROUTE_WORKERS,
    ROUTE_EVENTS,
    ROUTE_JOBS_LIST,
    ROUTE_JOBS_SUBMIT,
    ROUTE_JOBS_BATCH,
    ROUTE_JOB_GET,
    ROUTE_JOB_CANCEL,
    ROUTE_JOB_RESULT,
    ROUTE_JOB_LOGS,
    ROUTE_JOB_RETRY,
    ROUTE_DATASETS,
    ROUTE_STATUSES,
    ROUTE_TENANTS,
    ROUTE_QUEUE_PAUSE,
    ROUTE_QUEUE_RESUME,
    ROUTE_SCHEDULES_LIST,
    ROUTE_SCHEDULES_CREATE,
    ROUTE_SCHEDULE_GET,
    ROUTE_SCHEDULE_DELETE,
    ROUTE_SCHEDULE_PAUSE,
    ROUTE_SCHEDULE_RESUME,
    ROUTE_UI_INDEX, /* the dashboard (web/, embedded at build time; no auth) */
    ROUTE_UI_FILE,
    ROUTE__COUNT
};

struct route {
    enum route_id id;
    const char *method;  /* GET, POST, DELETE */
    const char *pattern; /* "/v1/jobs/{id}/result", "/ui/{file}" */
    int needs_auth;      /* refused without a token when auth is on */
};

extern const struct route router_routes[ROUTE__COUNT];

/* Longest job id the router accepts in a path segment. */
#define ROUTER_ID_MAX 64

struct route_match {
    enum route_id route;
    char id[ROUTER_ID_MAX + 1]; /* the {id} or {file} segment, when the pattern has one */
    char tenant[65];            /* the tenant the request's token names ("": none) */
    int max_priority;           /* the highest priority its token may ask for */
};

/* Matches method and path (without the query). Returns 0 with *ret filled;
 * -ENOENT when no route has this path (404); -EPERM when a
 * route has this path but not this method (405), with the allowed methods
 * written to allow ("GET, DELETE"). An {id} segment that is not a valid id
 * (1..64 of [A-Za-z0-9_-]) matches nothing, nor does a {file} segment that
 * is not a valid file name (router_valid_file). */
int router_match(const char *method, const char *path, struct route_match *ret, char *allow,
                 size_t allowlen);

/* A {file} segment: 1..64 of [A-Za-z0-9._-], not starting with a dot (so
 * never "..", nor a hidden file). */
int router_valid_file(const char *name);

#endif

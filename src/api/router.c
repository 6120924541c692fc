#include "router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"

const struct route router_routes[ROUTE__COUNT] = {
    {ROUTE_HEALTHZ, "GET", "/healthz", 0},
    {ROUTE_READYZ, "GET", "/readyz", 0},
    {ROUTE_METRICS, "GET", "/metrics", 1},
    {ROUTE_QUEUE, "GET", "/v1/queue", 1},
    {ROUTE_WORKERS, "GET", "/v1/workers", 1},
    {ROUTE_EVENTS, "GET", "/v1/events", 1},
    {ROUTE_JOBS_LIST, "GET", "/v1/jobs", 1},
    {ROUTE_JOBS_SUBMIT, "POST", "/v1/jobs", 1},
    {ROUTE_JOBS_BATCH, "POST", "/v1/jobs/batch", 1},
    {ROUTE_JOB_GET, "GET", "/v1/jobs/{id}", 1},
    {ROUTE_JOB_CANCEL, "DELETE", "/v1/jobs/{id}", 1},
    {ROUTE_JOB_RESULT, "GET", "/v1/jobs/{id}/result", 1},
    {ROUTE_JOB_LOGS, "GET", "/v1/jobs/{id}/logs", 1},
    {ROUTE_JOB_RETRY, "POST", "/v1/jobs/{id}/retry", 1},
    {ROUTE_DATASETS, "GET", "/v1/datasets", 1},
};

/* Matches path against pattern; copies the {id} segment into id. */
static bool match_path(const char *pattern, const char *path, char *id)
{
    while (*pattern && *path) {
        if (!strncmp(pattern, "{id}", 4)) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n > ROUTER_ID_MAX)
                return false;
            memcpy(id, path, n);
            id[n] = '\0';
            if (!util_valid_id(id))
                return false;
            pattern += 4;
            path += n;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

int router_match(const char *method, const char *path, struct route_match *ret, char *allow,
                 size_t allowlen)
{
    char id[ROUTER_ID_MAX + 1];
    size_t used = 0;
    bool path_known = false;

    if (allowlen)
        allow[0] = '\0';
    for (int i = 0; i < ROUTE__COUNT; i++) {
        const struct route *r = &router_routes[i];
        id[0] = '\0';
        if (!match_path(r->pattern, path, id))
            continue;
        if (!strcmp(r->method, method)) {
            ret->route = r->id;
            memcpy(ret->id, id, sizeof(id));
            return 0;
        }
        path_known = true;
        if (allowlen > used) {
            int n = snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", r->method);
            if (n > 0)
                used += (size_t)n < allowlen - used ? (size_t)n : allowlen - used - 1;
        }
    }
    return path_known ? -EPERM : -ENOENT;
}

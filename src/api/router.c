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
    {ROUTE_STATUSES, "GET", "/v1/statuses", 1},
    {ROUTE_TENANTS, "GET", "/v1/tenants", 1},
    {ROUTE_QUEUE_PAUSE, "POST", "/v1/queue/pause", 1},
    {ROUTE_QUEUE_RESUME, "POST", "/v1/queue/resume", 1},
    {ROUTE_SCHEDULES_LIST, "GET", "/v1/schedules", 1},
    {ROUTE_SCHEDULES_CREATE, "POST", "/v1/schedules", 1},
    {ROUTE_SCHEDULE_GET, "GET", "/v1/schedules/{id}", 1},
    {ROUTE_SCHEDULE_DELETE, "DELETE", "/v1/schedules/{id}", 1},
    {ROUTE_SCHEDULE_PAUSE, "POST", "/v1/schedules/{id}/pause", 1},
    {ROUTE_SCHEDULE_RESUME, "POST", "/v1/schedules/{id}/resume", 1},
    {ROUTE_UI_INDEX, "GET", "/", 0},
    {ROUTE_UI_FILE, "GET", "/ui/{file}", 0},
};

int router_valid_file(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ROUTER_ID_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Matches path against pattern; copies the {id} or {file} segment into id. */
static bool match_path(const char *pattern, const char *path, char *id)
{
    while (*pattern && *path) {
        bool is_id = !strncmp(pattern, "{id}", 4), is_file = !strncmp(pattern, "{file}", 6);
        if (is_id || is_file) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n > ROUTER_ID_MAX)
                return false;
            memcpy(id, path, n);
            id[n] = '\0';
            if (is_id ? !util_valid_id(id) : !router_valid_file(id))
                return false;
            pattern += is_id ? 4 : 6;
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

/* `stratq api`: the settings, the rooms of src/api wired together, and the
 * probes (/healthz, /readyz). The server core (server.c) knows no route;
 * each route module registers its own, and this file, which nothing
 * includes, is the only one that knows them all (docs/architecture.md,
 * "The API's rooms"). */
#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../queue/queue.h"
#include "datasets.h"
#include "events.h"
#include "http.h"
#include "jobs.h"
#include "metrics.h"
#include "schedules.h"
#include "server.h"
#include "tenants.h"
#include "ui.h"

struct api {
    struct server *srv;
    struct events *events;
    struct metrics *metrics;
    struct jobs *jobs;
    struct datasets *datasets;
    struct tenants *tenants;
    struct schedules *schedules;
};

/* --- Probes ----------------------------------------------------------------- */

/* GET /healthz: 200 while Redis is usable. */
static void route_healthz(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct api *a = ctx;
    bool redis = server_redis(a->srv) != NULL;
    (void)m;
    http_send_json(req, redis ? 200 : 503,
                   json_pack("{s:s, s:b, s:s}", "status", redis ? "ok" : "degraded", "redis", redis,
                             "version", STRATQ_VERSION));
}

/* GET /readyz: 200 while Redis is usable and the events subscription up. */
static void route_readyz(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct api *a = ctx;
    bool redis = server_redis(a->srv) != NULL, events = events_subscribed(a->events);
    bool ready = redis && events;
    (void)m;
    if (!ready)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    json_t *body = json_pack("{s:b, s:b, s:b}", "ready", ready, "redis", redis, "events", events);
    /* Why Redis is not usable: a wrong password, a certificate that
     * does not verify, no primary during a failover. */
    const char *why = server_redis_error(a->srv);
    if (body && !redis && why[0])
        json_object_set_new(body, "redis_error", json_string(why));
    http_send_json(req, ready ? 200 : 503, body);
}

/* --- Life ------------------------------------------------------------------- */

/* The commands that print something and serve nothing: --routes, --scripts
 * and --lua SCRIPT. Returns the exit code, or -1 for none of them. */
static int print_command(int argc, char **argv)
{
    if (argc == 1 && !strcmp(argv[0], "--routes")) {
        for (int i = 0; i < ROUTE__COUNT; i++)
            printf("%s %s\n", router_routes[i].method, router_routes[i].pattern);
        return 0;
    }
    /* The KEYS and ARGV of every script, as docs/protocol.md shows them
     * (tests/integration/test_lua.py compares the two). */
    if (argc == 1 && !strcmp(argv[0], "--scripts")) {
        queue_scripts_markdown(stdout);
        return 0;
    }
    /* A script exactly as it is sent to Redis, for tests/integration/test_lua.py. */
    if (argc == 2 && !strcmp(argv[0], "--lua")) {
        for (int i = 0; i < QS__COUNT; i++) {
            if (!strcmp(argv[1], queue_script_name(i))) {
                fputs(queue_script_source(i), stdout);
                queue_scripts_free();
                return 0;
            }
        }
        fprintf(stderr, "stratq api: no Lua script '%s'\n", argv[1]);
        return 2;
    }
    return -1;
}

/* The settings table and the Redis URL. Returns 0, or the exit code (0
 * after --help). */
static int load_config(int argc, char **argv, struct queue_url *url, bool *ret_help)
{
    char err[512];
    char **args;
    int nargs;
    int r = config_load(CMD_API, argc, argv, &args, &nargs, err, sizeof(err));
    *ret_help = r == 1;
    if (r == 1) {
        config_print_help(CMD_API,
                          "stratq api [options] | stratq api --routes | stratq api --lua SCRIPT",
                          "Serves the HTTP/JSON API. --routes prints its routes; --lua a Lua "
                          "script as it is sent to Redis.");
        return 0;
    }
    if (r < 0 || nargs > 0 || log_set_level_name(config_str(CFG_LOG_LEVEL)) < 0) {
        fprintf(stderr, "stratq api: %s\n",
                r < 0   ? err
                : nargs ? "takes no arguments"
                        : "bad --log-level");
        return 2;
    }
    if (queue_url_load(url, err, sizeof(err)) < 0) {
        fprintf(stderr, "stratq api: %s\n", err);
        return 2;
    }
    return 0;
}

/* The server, then each room with its routes. Returns 0 or the exit code. */
static int start(struct api *a, struct queue_url *url)
{
    char err[512];
    const struct server_settings set = {
        .bind = config_str(CFG_API_BIND),
        .port = (int)config_int(CFG_API_PORT),
        .tokens_file = config_str(CFG_TOKENS_FILE),
        .max_conns = config_int(CFG_MAX_CONNECTIONS),
        .client_timeout_s = (int)config_int(CFG_CLIENT_TIMEOUT),
        .max_body = (size_t)config_int(CFG_MAX_BODY),
        .queue = config_str(CFG_QUEUE),
        .prefix = config_str(CFG_PREFIX),
    };
    const struct jobs_settings jobs = {
        .lim = {config_int(CFG_DEFAULT_TIMEOUT), config_int(CFG_MAX_TIMEOUT),
                config_int(CFG_DEFAULT_MEMORY), config_int(CFG_MAX_MEMORY)},
        .max_body = (size_t)config_int(CFG_MAX_BODY),
        .failed_ttl = config_int(CFG_FAILED_RESULT_TTL),
    };
    const struct schedules_settings sched = {.lim = jobs.lim, .max_body = jobs.max_body};
    int r = server_new(&set, url, &a->srv, err, sizeof(err));
    if (r < 0) {
        if (err[0])
            fprintf(stderr, "stratq api: %s\n", err);
        /* A setting that cannot be served is a usage error, as above. */
        return r == -EADDRNOTAVAIL ? 2 : 1;
    }
    static const struct server_route probes[] = {{ROUTE_HEALTHZ, route_healthz},
                                                 {ROUTE_READYZ, route_readyz}};
    server_add_routes(a->srv, probes, ARRAY_SIZE(probes), a);
    ui_register(a->srv);
    if (metrics_new(a->srv, &a->metrics) < 0 || events_new(a->srv, &a->events) < 0 ||
        jobs_new(a->srv, a->events, a->metrics, &jobs, &a->jobs) < 0 ||
        datasets_new(a->srv, config_str(CFG_DATA_DIR), &a->datasets) < 0 ||
        schedules_new(a->srv, &sched, &a->schedules) < 0)
        return 1;
    r = tenants_new(a->srv, config_str(CFG_TENANTS), &a->tenants, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "stratq api: %s\n", r == -EINVAL ? err : strerror(-r));
        return r == -EINVAL ? 2 : 1;
    }
    if (server_check_routes(a->srv, err, sizeof(err)) < 0) {
        log_error("a route has no handler", "{s:s}", "error", err);
        return 1;
    }
    return 0;
}

/* The rooms stop (their timers, streams and scans), then the server (its
 * Redis connection, whose replies may still reach them), then their memory
 * goes and the server's last. */
static void stop(struct api *a)
{
    metrics_stop(a->metrics);
    events_stop(a->events);
    datasets_stop(a->datasets);
    tenants_stop(a->tenants);
    server_stop(a->srv);
    datasets_free(a->datasets);
    tenants_free(a->tenants);
    jobs_free(a->jobs);
    schedules_free(a->schedules);
    events_free(a->events);
    metrics_free(a->metrics);
    server_free(a->srv);
}

int api_main(int argc, char **argv)
{
    struct api a = {0};
    struct queue_url url = {0};
    bool help;

    log_set_component("api");
    int rc = print_command(argc, argv);
    if (rc >= 0)
        return rc;
    rc = load_config(argc, argv, &url, &help);
    if (rc == 0 && !help) {
        rc = start(&a, &url);
        if (rc == 0)
            server_run(a.srv);
        stop(&a);
        queue_scripts_free();
    }
    queue_url_free(&url);
    config_free();
    return rc;
}

/* Tenants: their fair-share weights and caps of running jobs (from
 * STRATQ_TENANTS and the tokens file), written to Redis for the scripts
 * that pick jobs (src/queue/lua/lib.lua), and the routes that show and
 * pause them: GET /v1/tenants, POST /v1/queue/pause and /v1/queue/resume.
 * docs/api.md and docs/protocol.md ("Tenants, priorities and fair
 * share"). */
#ifndef STRATQ_API_TENANTS_H
#define STRATQ_API_TENANTS_H

#include <stddef.h>

/* The configuration is written again this often (and at once when the API
 * starts), so a Redis that lost it, or a new replica's, has it back. */
#define TENANTS_PUSH_MS 5000

struct server;
struct tenants;

/* One tenant's settings; "*" names every tenant not given. */
struct tenant_conf {
    char name[65];
    double weight;    /* > 0; 0 here: not given */
    long max_running; /* 0: not given (no cap) */
};

/* Parses STRATQ_TENANTS ("alice:weight=2,max_running=4 bob:max_running=1
 * *:max_running=10") into out[0..*n) (at most max). 0, or -EINVAL with a
 * message naming the entry in err. */
int tenants_parse(const char *text, struct tenant_conf *out, size_t max, size_t *n, char *err,
                  size_t errlen);

/* Serves the routes with config (STRATQ_TENANTS' text) and the tokens'
 * caps. 0, or -EINVAL (err says why) or -ENOMEM. */
int tenants_new(struct server *s, const char *config, struct tenants **ret, char *err,
                size_t errlen);
void tenants_stop(struct tenants *t);
void tenants_free(struct tenants *t);

#endif

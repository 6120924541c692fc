/* Recurring jobs' schedules: POST /v1/schedules (a cron expression in a
 * time zone, or an interval; the job to run; overlap skip or allow), GET
 * /v1/schedules and /v1/schedules/{id}, DELETE /v1/schedules/{id}, POST
 * /v1/schedules/{id}/pause and /resume. The API checks and stores them
 * (src/queue/lua/schedule.lua); the workers tick them (tick.lua).
 * docs/api.md, "Recurring jobs"; docs/protocol.md, "Recurring jobs". */
#ifndef STRATQ_API_SCHEDULES_H
#define STRATQ_API_SCHEDULES_H

#include <stddef.h>

#include "../common/job.h"

struct server;
struct schedules;

struct schedules_settings {
    struct job_limits lim; /* the job spec's defaults and bounds, as POST /v1/jobs */
    size_t max_body;       /* STRATQ_MAX_BODY */
};

/* The schedules one page of GET /v1/schedules lists (the oldest first):
 * by default, and at most (?limit=). */
#define SCHEDULES_PAGE 100
#define SCHEDULES_LIST_MAX 1000
/* The longest name a schedule may have, in bytes. */
#define SCHEDULES_NAME_MAX 128

/* Serves the schedule routes. Caller frees with schedules_free() after
 * server_stop(). */
int schedules_new(struct server *s, const struct schedules_settings *set, struct schedules **ret);
void schedules_free(struct schedules *sc);

#endif

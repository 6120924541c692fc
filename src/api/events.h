/* The shared subscription to the events channel (one per API process),
 * the long-poll waiters it wakes and the Server-Sent Events streams it
 * feeds (GET /v1/events). */
#ifndef STRATQ_API_EVENTS_H
#define STRATQ_API_EVENTS_H

#include <stdbool.h>

struct server;
struct events;

/* A request that waits for its job to finish, registered under the job's
 * id. The subscription calls wake with final = true when the job's terminal
 * event arrives, and with final = false for every waiter once it is
 * (re)made, since a completion may have been missed meanwhile. Embedded in
 * the owner's request; wake may answer it and take it out. */
struct events_waiter {
    const char *id; /* the job id (the owner's memory) */
    void (*wake)(struct events_waiter *w, bool final);
    struct events_waiter *next;
    bool waiting; /* in the table */
};

/* Subscribes to the events channel and serves GET /v1/events. Caller frees
 * with events_free() after events_stop() and server_stop(). */
int events_new(struct server *s, struct events **ret);
/* Ends every stream and the subscription. */
void events_stop(struct events *ev);
void events_free(struct events *ev);
/* Whether the subscription is up (/readyz). */
bool events_subscribed(const struct events *ev);

void events_add_waiter(struct events *ev, struct events_waiter *w);
void events_remove_waiter(struct events *ev, struct events_waiter *w);

#endif

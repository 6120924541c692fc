/* GET /v1/datasets (src/api/datasets.h).
 *
 * Reading a directory is file system work of unbounded cost (10,000 files
 * took 3 to 8 ms a request; a network file system may take seconds), and
 * on the event loop every other request would wait for it. So a
 * thread reads it: one scan at a time, started by a request that finds no
 * listing younger than DATASETS_MAX_AGE_MS, and every request that comes
 * while it runs waits for it (up to DATASETS_SCAN_TIMEOUT_MS, then 503).
 * The thread hands back the finished reply (status and body); the loop
 * only copies it out. docs/architecture.md has the measurements. */
#define _GNU_SOURCE
#include "datasets.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "http.h"
#include "server.h"

/* A reply made by a scan: 200 and the JSON body, or the error status and
 * its message. */
struct listing {
    int code;
    char *text;
    size_t len;
};

/* A request waiting for the scan. */
struct waiter {
    struct evhttp_request *req;
    struct waiter *next;
};

struct datasets {
    struct server *srv;
    char *dir;
    struct listing cached; /* code 0: none yet */
    int64_t cached_ms;     /* when the scan of cached began (monotonic) */
    bool scanning;         /* thread runs; result is its */
    pthread_t thread;
    struct listing result; /* written by the thread, read after the join */
    int64_t scan_ms;       /* when the running scan began */
    int done_fd;           /* eventfd: the thread is done */
    struct event *done_ev, *timeout_ev;
    struct waiter *waiting; /* oldest last */
};

/* --- The scan (on its own thread: no libevent, no logging) ------------------ */

static int by_name(const void *x, const void *y)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)x, "name")),
                  json_string_value(json_object_get(*(json_t *const *)y, "name")));
}

/* The entry of a regular CSV file directly in the directory (no symbolic
 * links), or NULL. */
static json_t *dataset_entry(DIR *d, const struct dirent *e)
{
    size_t len = strlen(e->d_name);
    struct stat st;
    if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".csv") != 0 ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return NULL;
    char stem[256];
    snprintf(stem, sizeof(stem), "%.*s", (int)(len - 4), e->d_name);
    return json_pack("{s:s, s:s, s:I, s:I}", "name", stem, "file", e->d_name, "size",
                     (json_int_t)st.st_size, "modified_ms",
                     (json_int_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
}

/* A listing that is an error: code and message (500 without one when
 * out of memory). */
static void listing_error(struct listing *l, int code, const char *msg)
{
    l->text = strdup(msg);
    l->code = l->text ? code : 500;
    l->len = l->text ? strlen(l->text) : 0;
}

/* The listing of dir: the first DATASETS_MAX CSV files found, by name. */
static void scan(const char *dir, struct listing *ret)
{
    DIR *d = opendir(dir);
    if (!d) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot read the data directory %s: %s", dir, strerror(errno));
        listing_error(ret, 503, msg);
        return;
    }
    json_t *items[DATASETS_MAX];
    struct dirent *e;
    size_t n = 0;
    while (n < DATASETS_MAX && (e = readdir(d)))
        if ((items[n] = dataset_entry(d, e)))
            n++;
    closedir(d);
    qsort(items, n, sizeof(items[0]), by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, items[i]);
    json_t *body = json_pack("{s:o}", "datasets", list);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    ret->text = text ? realloc(text, strlen(text) + 2) : NULL;
    if (!ret->text) {
        free(text);
        listing_error(ret, 500, "out of memory");
        return;
    }
    strcat(ret->text, "\n");
    ret->code = 200;
    ret->len = strlen(ret->text);
}

static void *scan_thread(void *arg)
{
    struct datasets *d = arg;
    uint64_t one = 1;
    scan(d->dir, &d->result);
    if (write(d->done_fd, &one, sizeof(one)) < 0) {
        /* An eventfd write fails only on overflow, which one scan at a
         * time cannot reach. */
    }
    return NULL;
}

/* --- Replies ---------------------------------------------------------------- */

static void listing_free(struct listing *l)
{
    free(l->text);
    *l = (struct listing){0};
}

static void reply(struct evhttp_request *req, const struct listing *l)
{
    if (l->code != 200) {
        http_send_error(req, l->code ? l->code : 500, "%s", l->text ? l->text : "out of memory");
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(buf, l->text, l->len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, http_reason(200), buf);
    evbuffer_free(buf);
}

/* Answers every waiting request with l (NULL: 503 with msg). */
static void answer_waiting(struct datasets *d, const struct listing *l, const char *msg)
{
    evtimer_del(d->timeout_ev);
    while (d->waiting) {
        struct waiter *w = d->waiting;
        d->waiting = w->next;
        if (l)
            reply(w->req, l);
        else
            http_send_error(w->req, 503, "%s", msg);
        free(w);
    }
}

/* --- On the loop ------------------------------------------------------------ */

static void on_scan_done(evutil_socket_t fd, short what, void *arg)
{
    struct datasets *d = arg;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 || !d->scanning)
        return;
    pthread_join(d->thread, NULL);
    d->scanning = false;
    listing_free(&d->cached);
    d->cached = d->result;
    d->result = (struct listing){0};
    d->cached_ms = d->scan_ms;
    answer_waiting(d, &d->cached, NULL);
}

static void on_scan_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct datasets *d = arg;
    (void)fd;
    (void)what;
    log_warn("the data directory was not read in time", "{s:s, s:i}", "dir", d->dir, "timeout_ms",
             DATASETS_SCAN_TIMEOUT_MS);
    char msg[100];
    snprintf(msg, sizeof(msg), "the data directory was not read within %d ms; retry shortly",
             DATASETS_SCAN_TIMEOUT_MS);
    answer_waiting(d, NULL, msg);
}

/* Starts a scan on a thread that blocks every signal (the loop's handle
 * them). */
static int scan_start(struct datasets *d)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    d->scan_ms = util_mono_ms();
    int r = pthread_create(&d->thread, NULL, scan_thread, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -r;
    d->scanning = true;
    return 0;
}

/* GET /v1/datasets */
static void route_datasets(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    struct datasets *d = ctx;
    (void)m;
    if (!d->dir[0]) {
        http_send_json(req, 200, json_pack("{s:[]}", "datasets"));
        return;
    }
    if (d->cached.code && util_mono_ms() - d->cached_ms < DATASETS_MAX_AGE_MS) {
        reply(req, &d->cached);
        return;
    }
    struct waiter *w = malloc(sizeof(*w));
    int r = !w ? -ENOMEM : d->scanning ? 0 : scan_start(d);
    if (r < 0) {
        free(w);
        http_send_error(req, 503, "cannot read the data directory now: %s", strerror(-r));
        return;
    }
    if (!d->waiting) {
        struct timeval tv = {DATASETS_SCAN_TIMEOUT_MS / 1000,
                             (DATASETS_SCAN_TIMEOUT_MS % 1000) * 1000};
        evtimer_add(d->timeout_ev, &tv);
    }
    *w = (struct waiter){req, d->waiting};
    d->waiting = w;
}

int datasets_new(struct server *s, const char *dir, struct datasets **ret)
{
    static const struct server_route routes[] = {{ROUTE_DATASETS, route_datasets}};
    struct datasets *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    *ret = d;
    d->srv = s;
    d->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->dir = strdup(dir);
    if (d->done_fd < 0 || !d->dir)
        return d->done_fd < 0 ? -errno : -ENOMEM;
    d->done_ev = event_new(server_base(s), d->done_fd, EV_READ | EV_PERSIST, on_scan_done, d);
    d->timeout_ev = evtimer_new(server_base(s), on_scan_timeout, d);
    if (!d->done_ev || !d->timeout_ev || event_add(d->done_ev, NULL) < 0)
        return -ENOMEM;
    server_add_routes(s, routes, ARRAY_SIZE(routes), d);
    return 0;
}

void datasets_stop(struct datasets *d)
{
    if (!d)
        return;
    if (d->scanning) {
        pthread_join(d->thread, NULL);
        d->scanning = false;
        listing_free(&d->result);
    }
    if (d->timeout_ev)
        answer_waiting(d, NULL, "the API is stopping; retry shortly");
}

void datasets_free(struct datasets *d)
{
    if (!d)
        return;
    datasets_stop(d);
    if (d->done_ev)
        event_free(d->done_ev);
    if (d->timeout_ev)
        event_free(d->timeout_ev);
    if (d->done_fd >= 0)
        close(d->done_fd);
    listing_free(&d->cached);
    free(d->dir);
    free(d);
}

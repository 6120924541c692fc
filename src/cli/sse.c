/* A Server-Sent Events client on libcurl's multi interface (sse.h). The
 * stream is read only while the caller waits in sse_next(), which blocks in
 * curl_multi_poll() on the stream's socket; between calls the events wait
 * in the socket's buffer. */
#define _GNU_SOURCE
#include "sse.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "cli.h"

#define OPEN_TIMEOUT_MS 2000
#define RETRY_MAX_MS (30 * 1000)

struct sse_event {
    struct sse_event *next;
    char name[SSE_NAME_MAX]; /* its "event:" field; empty for none */
    char *data;
};

struct sse {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char *auth;
    char url[2048];
    bool answered; /* 200 with text/event-stream */
    bool refused;  /* any other answer */
    bool ended;
    CURLcode result;
    long code;
    char body[300]; /* the start of a refusal's body */
    size_t body_len;
    char *line; /* the line being read */
    size_t line_len, line_cap;
    char *data; /* the data of the event being read */
    size_t data_len, data_cap;
    bool has_data;
    char name[SSE_NAME_MAX]; /* the "event:" field of the event being read */
    struct sse_event *head, **tail;
    int64_t last_byte_ms;
};

static bool append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (*len + n + 1 > ncap)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return false;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* One line of the stream (its end of line taken off), as the SSE
 * specification reads it: a blank line ends an event, ':' starts a
 * comment (the API's greeting and keepalives), "data:" lines make the
 * event's data and "event:" names it (`job`, `output`; a name too long
 * for SSE_NAME_MAX is cut, and so matches none). Other fields ("id:") are
 * not used. */
static bool on_line(struct sse *s, char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        line[--len] = '\0';
    if (!len) {
        if (s->has_data) {
            struct sse_event *e = calloc(1, sizeof(*e));
            if (!e)
                return false;
            e->data = strdup(s->data ? s->data : "");
            if (!e->data) {
                free(e);
                return false;
            }
            snprintf(e->name, sizeof(e->name), "%s", s->name);
            *s->tail = e;
            s->tail = &e->next;
        }
        s->has_data = false;
        s->data_len = 0;
        s->name[0] = '\0';
        return true;
    }
    if (!strncmp(line, "event:", 6)) {
        const char *name = line + 6;
        if (*name == ' ')
            name++;
        snprintf(s->name, sizeof(s->name), "%s", name);
        return true;
    }
    if (line[0] == ':' || strncmp(line, "data:", 5))
        return true;
    const char *v = line + 5;
    if (*v == ' ')
        v++;
    if (s->has_data && !append(&s->data, &s->data_len, &s->data_cap, "\n", 1))
        return false;
    s->has_data = true;
    return append(&s->data, &s->data_len, &s->data_cap, v, strlen(v));
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct sse *s = arg;
    size_t len = size * n;
    /* The blank line after the headers: the answer is known. */
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        const char *type = NULL;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->code);
        curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &type);
        if (s->code >= 200) {
            s->answered = s->code == 200 && type && !strncmp(type, "text/event-stream", 17);
            s->refused = !s->answered;
        }
    }
    return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sse *s = arg;
    size_t len = size * n;
    s->last_byte_ms = util_mono_ms();
    if (!s->answered) {
        size_t room = sizeof(s->body) - 1 - s->body_len;
        size_t take = len < room ? len : room;
        memcpy(s->body + s->body_len, p, take);
        s->body_len += take;
        s->body[s->body_len] = '\0';
        return len;
    }
    for (size_t i = 0; i < len;) {
        char *nl = memchr(p + i, '\n', len - i);
        size_t chunk = nl ? (size_t)(nl - (p + i)) : len - i;
        if (s->line_len + chunk > SSE_LINE_MAX ||
            !append(&s->line, &s->line_len, &s->line_cap, p + i, chunk))
            return 0; /* ends the transfer */
        i += chunk;
        if (nl) {
            i++;
            if (!on_line(s, s->line ? s->line : (char[]){""}, s->line_len))
                return 0;
            s->line_len = 0;
        }
    }
    return len;
}

/* Lets curl move the transfer on, without waiting. */
static void drive(struct sse *s)
{
    int running, left;
    CURLMsg *m;
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == s->easy) {
            s->ended = true;
            s->result = m->data.result;
        }
}

static bool aborted(void)
{
    return cli_abort && *cli_abort;
}

void sse_free(struct sse *s)
{
    if (!s)
        return;
    if (s->multi && s->easy)
        curl_multi_remove_handle(s->multi, s->easy);
    if (s->easy)
        curl_easy_cleanup(s->easy);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->hdrs);
    while (s->head) {
        struct sse_event *e = s->head;
        s->head = e->next;
        free(e->data);
        free(e);
    }
    free(s->auth);
    free(s->line);
    free(s->data);
    free(s);
}

int sse_open(const char *path, int timeout_ms, struct sse **ret, char *err, size_t errlen)
{
    struct sse *s = calloc(1, sizeof(*s));
    int r = -ENOMEM;
    *ret = NULL;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->tail = &s->head;
    s->last_byte_ms = util_mono_ms();
    cli_url(path, s->url, sizeof(s->url));
    if (cli_auth_header(&s->auth) < 0) {
        snprintf(err, errlen, "STRATQ_API_TOKEN holds a control character");
        r = -EINVAL;
        goto fail;
    }
    s->hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
    if (s->hdrs && s->auth)
        s->hdrs = curl_slist_append(s->hdrs, s->auth);
    s->multi = curl_multi_init();
    s->easy = curl_easy_init();
    if (!s->hdrs || !s->multi || !s->easy)
        goto fail;
    curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
        goto fail;

    int64_t deadline = util_mono_ms() + timeout_ms;
    for (;;) {
        drive(s);
        if (s->answered) {
            *ret = s;
            return 0;
        }
        if (s->ended || aborted() || util_mono_ms() >= deadline)
            break;
        curl_multi_poll(s->multi, NULL, 0, (int)(deadline - util_mono_ms()), NULL);
    }
    if (s->refused) {
        r = -EPROTO;
        snprintf(err, errlen, "the API answered %ld to GET %s: %.200s", s->code, path, s->body);
    } else if (aborted()) {
        r = -EINTR;
        snprintf(err, errlen, "interrupted");
    } else {
        r = -EIO;
        snprintf(err, errlen, "cannot reach the stratq API at %s: %s", s->url,
                 s->ended ? curl_easy_strerror(s->result) : "no answer in time");
    }
fail:
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    sse_free(s);
    return r;
}

int sse_next(struct sse *s, int timeout_ms, char **ret_data, char ret_name[SSE_NAME_MAX])
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    drive(s);
    for (;;) {
        if (s->head) {
            struct sse_event *e = s->head;
            s->head = e->next;
            if (!s->head)
                s->tail = &s->head;
            *ret_data = e->data;
            memcpy(ret_name, e->name, SSE_NAME_MAX);
            free(e);
            return 1;
        }
        if (s->ended)
            return -ECONNRESET;
        int64_t now = util_mono_ms();
        if (now - s->last_byte_ms >= SSE_SILENCE_MS)
            return -ETIMEDOUT;
        if (now >= deadline || aborted())
            return 0;
        int64_t wait = deadline - now, quiet = SSE_SILENCE_MS - (now - s->last_byte_ms);
        int fds = 0;
        curl_multi_poll(s->multi, NULL, 0, (int)(wait < quiet ? wait : quiet), &fds);
        drive(s);
        /* Woken with nothing to read: a signal, or one of curl's timers.
         * The caller looks at its flags and asks again. */
        if (!fds && !s->head && !s->ended)
            return 0;
    }
}

bool sse_jobs_connect(struct sse_jobs *j)
{
    char err[600];
    if (j->sse || util_mono_ms() < j->retry_at_ms)
        return false;
    if (sse_open("/v1/events", OPEN_TIMEOUT_MS, &j->sse, err, sizeof(err)) < 0) {
        j->sse = NULL;
        j->delay_ms = j->delay_ms ? j->delay_ms * 2 : 1000;
        if (j->delay_ms > RETRY_MAX_MS)
            j->delay_ms = RETRY_MAX_MS;
        j->retry_at_ms = util_mono_ms() + j->delay_ms;
        return false;
    }
    j->delay_ms = 0;
    return true;
}

bool sse_jobs_open(const struct sse_jobs *j)
{
    return j->sse != NULL;
}

int sse_jobs_next(struct sse_jobs *j, int timeout_ms, json_t **ret_event)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (!j->sse) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    char *data = NULL, name[SSE_NAME_MAX];
    int r = sse_next(j->sse, timeout_ms, &data, name);
    if (r < 0) {
        /* Dropped (the API restarted, say): reconnect at once; a failure
         * to do so backs off from there. */
        sse_free(j->sse);
        j->sse = NULL;
        j->retry_at_ms = 0;
        return -1;
    }
    if (r == 0)
        return 0;
    /* `job` events, and unnamed ones (an SSE "message"); `output` events
     * for the callers that asked for them; any other name is skipped. */
    int kind = !*name || !strcmp(name, "job") ? 1 : j->outputs && !strcmp(name, "output") ? 2 : 0;
    json_t *ev = kind ? json_loads(data, 0, NULL) : NULL;
    free(data);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return 0;
    }
    *ret_event = ev;
    return kind;
}

void sse_jobs_close(struct sse_jobs *j)
{
    sse_free(j->sse);
    j->sse = NULL;
}

#define _GNU_SOURCE
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

static const struct frame_spec specs[FRAME__COUNT] = {
#define FRAME_ROW_(t, n, d, k, lo, hi) [FRAME_##t] = {n, FRAME_##d, FRAME_##k, lo, hi},
    FRAME_TABLE(FRAME_ROW_)
#undef FRAME_ROW_
};

const struct frame_spec *frame_spec(uint32_t t)
{
    return t > FRAME_NONE && t < FRAME__COUNT ? &specs[t] : NULL;
}

void frame_msg_clear(struct frame_msg *m)
{
    if (!m)
        return;
    free(m->data);
    json_decref(m->json);
    *m = (struct frame_msg){FRAME_NONE, NULL, 0, NULL};
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void frame_msg_pair(const struct frame_msg *m, const char **a, size_t *alen, const char **b,
                    size_t *blen)
{
    /* frame_read checked the first length against the payload's. */
    size_t first = m->len >= 4 ? get_be32((const unsigned char *)m->data) : 0;
    *a = m->len >= 4 ? m->data + 4 : "";
    *alen = first;
    *b = m->len >= 4 ? m->data + 4 + first : "";
    *blen = m->len >= 4 ? m->len - 4 - first : 0;
}

void frame_reader_init(struct frame_reader *rd, enum frame_dir accept)
{
    *rd = (struct frame_reader){.accept = accept};
}

void frame_reader_clear(struct frame_reader *rd)
{
    free(rd->buf);
    frame_reader_init(rd, rd->accept);
}

static int refuse(struct frame_reader *rd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int refuse(struct frame_reader *rd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->why, sizeof(rd->why), fmt, ap);
    va_end(ap);
    return -EPROTO;
}

/* The header is in: checks it against the table, before anything is
 * allocated for the payload. */
static int check_header(struct frame_reader *rd)
{
    rd->type = get_be32(rd->header);
    rd->len = get_be32(rd->header + 4);
    rd->spec = frame_spec(rd->type);
    if (!rd->spec)
        return refuse(rd, "unknown message type %u", rd->type);
    if (rd->spec->dir != rd->accept)
        return refuse(rd, "a %s message cannot come this way", rd->spec->name);
    if (rd->len < rd->spec->min || rd->len > rd->spec->max)
        return refuse(rd, "a %s message of %u bytes (it holds %u to %u)", rd->spec->name, rd->len,
                      rd->spec->min, rd->spec->max);
    rd->buf = malloc((size_t)rd->len + 1);
    return rd->buf ? 0 : -ENOMEM;
}

/* The payload is in: checks its kind and hands it over. */
static int finish(struct frame_reader *rd, struct frame_msg *ret)
{
    struct frame_msg m = {(enum frame_type)rd->type, steal_pointer(&rd->buf), rd->len, NULL};
    const struct frame_spec *spec = rd->spec;
    m.data[m.len] = '\0';
    frame_reader_clear(rd);
    if (spec->kind == FRAME_JSON) {
        m.json = json_loadb(m.data, m.len, 0, NULL);
        if (!json_is_object(m.json)) {
            frame_msg_clear(&m);
            return refuse(rd, "a %s message that is not a JSON object", spec->name);
        }
    }
    if (spec->kind == FRAME_PAIR && get_be32((unsigned char *)m.data) > m.len - 4) {
        frame_msg_clear(&m);
        return refuse(rd, "a %s message whose first part is longer than the message", spec->name);
    }
    if (m.len == 0) {
        free(m.data);
        m.data = NULL;
    }
    *ret = m;
    return 1;
}

/* One read into p (want bytes at most): the bytes read, 0 when none are
 * there yet, -EPIPE at end of stream, or -errno. */
static ssize_t read_some(int fd, void *p, size_t want)
{
    for (;;) {
        ssize_t n = read(fd, p, want);
        if (n > 0)
            return n;
        if (n == 0)
            return -EPIPE;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int frame_read(int fd, struct frame_reader *rd, struct frame_msg *ret)
{
    while (rd->header_got < FRAME_HEADER_LEN) {
        ssize_t n = read_some(fd, rd->header + rd->header_got, FRAME_HEADER_LEN - rd->header_got);
        if (n == -EPIPE && rd->header_got > 0)
            return refuse(rd, "the stream ended inside a message's header");
        if (n <= 0)
            return (int)n;
        rd->header_got += (size_t)n;
        int r = rd->header_got == FRAME_HEADER_LEN ? check_header(rd) : 0;
        if (r < 0)
            return r;
    }
    while (rd->got < rd->len) {
        ssize_t n = read_some(fd, rd->buf + rd->got, rd->len - rd->got);
        if (n == -EPIPE)
            return refuse(rd, "the stream ended inside a %s message (%zu of %u bytes)",
                          rd->spec->name, rd->got, rd->len);
        if (n <= 0)
            return (int)n;
        rd->got += (size_t)n;
    }
    return finish(rd, ret);
}

int frame_recv(int fd, struct frame_reader *rd, struct frame_msg *ret, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : util_mono_ms() + timeout_ms;
    for (;;) {
        int r = frame_read(fd, rd, ret);
        if (r != 0)
            return r > 0 ? 0 : r;
        int64_t left = deadline == INT64_MAX ? -1 : deadline - util_mono_ms();
        if (deadline != INT64_MAX && left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left) < 0 && errno != EINTR)
            return -errno;
    }
}

/* Writes every byte of iov (n parts), waiting for room on a non-blocking
 * fd. */
static int write_parts(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        if (w < 0)
            return -errno;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Sends a message whose payload is the parts iov[1..n-1]; iov[0] is left
 * for the header. */
static int send_parts(int fd, enum frame_type t, struct iovec *iov, int n)
{
    const struct frame_spec *spec = frame_spec(t);
    size_t len = 0;
    for (int i = 1; i < n; i++)
        len += iov[i].iov_len;
    if (!spec)
        return -EINVAL;
    if (len < spec->min || len > spec->max)
        return -EMSGSIZE;
    unsigned char header[FRAME_HEADER_LEN];
    put_be32(header, (uint32_t)t);
    put_be32(header + 4, (uint32_t)len);
    iov[0] = (struct iovec){header, sizeof(header)};
    return write_parts(fd, iov, n);
}

int frame_send(int fd, enum frame_type t, const void *data, size_t len)
{
    const struct frame_spec *spec = frame_spec(t);
    if (spec && spec->kind == FRAME_PAIR)
        return -EINVAL;
    struct iovec iov[2] = {{NULL, 0}, {(void *)data, data ? len : 0}};
    return send_parts(fd, t, iov, 2);
}

int frame_send_pair(int fd, enum frame_type t, const void *a, size_t alen, const void *b,
                    size_t blen)
{
    const struct frame_spec *spec = frame_spec(t);
    if (!spec || spec->kind != FRAME_PAIR)
        return -EINVAL;
    if (alen > UINT32_MAX)
        return -EMSGSIZE;
    unsigned char first[4];
    put_be32(first, (uint32_t)alen);
    struct iovec iov[4] = {
        {NULL, 0}, {first, sizeof(first)}, {(void *)a, a ? alen : 0}, {(void *)b, b ? blen : 0}};
    return send_parts(fd, t, iov, 4);
}

int frame_send_object(int fd, enum frame_type t, const json_t *obj)
{
    const struct frame_spec *spec = frame_spec(t);
    if (!spec || spec->kind != FRAME_JSON || !json_is_object(obj))
        return -EINVAL;
    _cleanup_free_ char *s = json_dumps(obj, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    return frame_send(fd, t, s, strlen(s));
}

/* A job's captured output, read from its pipes. */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One read from a pipe: as much as a pipe holds by default. */
#define CAPTURE_READ 65536

/* Makes room for need more bytes and the NUL after them. The buffer grows
 * geometrically (never past what the limit can use), so that reading n
 * bytes costs O(n). Growing it by each read's length copied the whole
 * buffer every 64 KiB: reading a result up to its 16 MiB cap took seconds
 * (more under load, or with a sanitizer's realloc), enough for a job whose
 * result was too large to end as a timeout instead. */
static int capture_reserve(struct capture *c, size_t need)
{
    if (c->len + need + 1 <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : CAPTURE_READ;
    while (cap < c->len + need + 1)
        cap *= 2;
    if (cap > c->limit + 1)
        cap = c->limit + 1;
    char *nb = realloc(c->buf, cap);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->cap = cap;
    return 0;
}

int capture_read(int fd, struct capture *c, size_t *total, size_t total_limit)
{
    char tmp[CAPTURE_READ];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -errno;
    if (n == 0)
        return 0;
    size_t room = c->limit - c->len;
    if (total_limit && total_limit - *total < room)
        room = total_limit - *total;
    size_t take = (size_t)n < room ? (size_t)n : room;
    if (take) {
        if (capture_reserve(c, take) < 0)
            return -ENOMEM;
        memcpy(c->buf + c->len, tmp, take);
        c->len += take;
        c->buf[c->len] = '\0';
        *total += take;
    }
    if (take < (size_t)n)
        c->overflow = true;
    return 1;
}

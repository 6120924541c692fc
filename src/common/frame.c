#include "frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int frame_send_json(int fd, const json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    size_t len = strlen(s);
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    int r = len > FRAME_MAX ? -EMSGSIZE : util_write_all(fd, hdr, sizeof(hdr));
    if (r == 0)
        r = util_write_all(fd, s, len);
    free(s);
    return r;
}

static int read_exact(int fd, void *buf, size_t len, bool *eof_at_start)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            if (eof_at_start)
                *eof_at_start = got == 0;
            return -EPIPE;
        }
        got += (size_t)n;
    }
    return 0;
}

int frame_recv_json(int fd, json_t **ret_msg)
{
    unsigned char hdr[4];
    bool clean = false;
    int r = read_exact(fd, hdr, sizeof(hdr), &clean);
    if (r < 0)
        return r == -EPIPE && !clean ? -EPROTO : r;

    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len > FRAME_MAX)
        return -EPROTO;
    _cleanup_free_ char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    r = read_exact(fd, buf, len, NULL);
    if (r < 0)
        return r == -EPIPE ? -EPROTO : r;
    json_t *msg = json_loadb(buf, len, 0, NULL);
    if (!msg)
        return -EPROTO;
    *ret_msg = msg;
    return 0;
}

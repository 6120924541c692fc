#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_new_id(char *buf)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = (uint64_t)util_now_ms();
    unsigned char rnd[8];
    size_t got = 0;

    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort(); /* the kernel's CSPRNG cannot fail once seeded */
        got += (size_t)n;
    }
    for (int i = 11; i >= 0; i--) {
        buf[i] = hex[ms & 0xf];
        ms >>= 4;
    }
    for (int i = 0; i < 8; i++) {
        buf[12 + 2 * i] = hex[rnd[i] >> 4];
        buf[13 + 2 * i] = hex[rnd[i] & 0xf];
    }
    buf[UTIL_ID_LEN] = '\0';
}

bool util_valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}

bool util_valid_tenant(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!util_valid_id((char[]){s[n], '\0'}) && s[n] != '.')
            return false;
    return n >= 1 && n <= 64;
}

size_t util_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

char *util_utf8_sanitize(const char *s, size_t len)
{
    /* Each bad byte becomes 3 bytes of U+FFFD at most. */
    char *out = malloc(len * 3 + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t l = util_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (l == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else if (l == 1 && s[i] == '\0') {
            i++;
        } else {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        }
    }
    out[o] = '\0';
    return out;
}

int util_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb)
                return -ENOMEM;
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = '\0';
    *ret_buf = steal_pointer(&buf);
    *ret_len = len;
    return 0;
}

char **util_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
    return NULL;
}

int util_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

char *util_exe_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = '\0';
    return strdup(path);
}

static bool is_harness_dir(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof(p), "%s/stratq/_harness.py", dir) >= (int)sizeof(p))
        return false;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

char *util_find_harness_dir(const char *explicit_dir)
{
    if (explicit_dir && explicit_dir[0])
        return is_harness_dir(explicit_dir) ? realpath(explicit_dir, NULL) : NULL;

    _cleanup_free_ char *exe = util_exe_dir();
    const char *rel[] = {"/../python", "/../../python", "/../share/stratq/python"};
    char p[PATH_MAX];
    for (size_t i = 0; exe && i < ARRAY_SIZE(rel); i++) {
        snprintf(p, sizeof(p), "%s%s", exe, rel[i]);
        if (is_harness_dir(p))
            return realpath(p, NULL);
    }
    if (is_harness_dir("/usr/share/stratq/python"))
        return strdup("/usr/share/stratq/python");
    return NULL;
}

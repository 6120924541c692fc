/* Small helpers shared by every component: time, ids, ownership, fds. */
#ifndef STRATQ_UTIL_H
#define STRATQ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define STRATQ_VERSION "0.1.0"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Ownership helpers in the style of bubblewrap's utils.h and systemd's
 * TAKE_PTR: a variable declared with a _cleanup_ attribute is released when
 * it leaves scope unless its value was handed on with steal_pointer() (or
 * steal_fd()). One owner per resource, released in one place. */
static inline void util_freep(void *p)
{
    free(*(void **)p);
}
static inline void util_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_free_ __attribute__((cleanup(util_freep)))
#define _cleanup_close_ __attribute__((cleanup(util_closep)))

/* A NULL-terminated array of malloc'd strings (an environment, an argv):
 * frees each string, then the array. Accepts NULL; returns NULL, so that
 * `v = util_strv_free(v);` leaves nothing dangling. */
char **util_strv_free(char **v);
static inline void util_strv_freep(char ***v)
{
    util_strv_free(*v);
}
#define _cleanup_strv_ __attribute__((cleanup(util_strv_freep)))

/* Takes the value out of the pointer variable *pp and leaves NULL there:
 * `*ret = steal_pointer(&buf);` hands buf on, and its _cleanup_ then frees
 * nothing. The value keeps its type (no void * in between), so handing a
 * char * to an int * is a compile error, and so is passing anything but
 * the address of a pointer. */
#define steal_pointer(pp)                                                                          \
    __extension__({                                                                                \
        __typeof__(pp) steal_pp_ = (pp);                                                           \
        __typeof__(*steal_pp_) steal_v_ = *steal_pp_;                                              \
        *steal_pp_ = NULL;                                                                         \
        steal_v_;                                                                                  \
    })

static inline int steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

/* Wall-clock milliseconds since the Unix epoch. */
int64_t util_now_ms(void);
/* Wall-clock microseconds since the Unix epoch. */
int64_t util_now_us(void);
/* Monotonic milliseconds, for deadlines. */
int64_t util_mono_ms(void);
/* Monotonic microseconds, for measurements. */
int64_t util_mono_us(void);

/* Writes a new job id (time-ordered: 12 hex digits of ms, 16 random) into
 * buf, which must hold UTIL_ID_LEN + 1 bytes. */
#define UTIL_ID_LEN 28
void util_new_id(char *buf);

/* An id a client may name: 1..64 characters of [A-Za-z0-9_-]. */
bool util_valid_id(const char *s);
/* A tenant's name: 1 to 64 of [A-Za-z0-9._-] (a part of Redis key names,
 * so never '{', '}' or ':'). */
bool util_valid_tenant(const char *s);

/* Length of the valid UTF-8 sequence at s (1 to 4 bytes, at most n; n >= 1),
 * or 0 when there is none: a stray continuation byte, an overlong form
 * (C0, C1, E0 80..9F, F0 80..8F), a surrogate (ED A0..BF), past U+10FFFF
 * (F4 90.., F5..FF) or a sequence cut off by the end. */
size_t util_utf8_seq_len(const unsigned char *s, size_t n);

/* Returns a malloc'd copy of the first len bytes of s with invalid UTF-8
 * replaced by U+FFFD and NUL bytes dropped, so that it can be stored as a
 * JSON string. Caller frees. Returns NULL on allocation failure. */
char *util_utf8_sanitize(const char *s, size_t len);

/* Reads a whole file. Fails with -EFBIG if it exceeds max bytes. Caller
 * frees *ret_buf. */
int util_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);

/* Path of the running executable's directory (from /proc/self/exe). Caller
 * frees. */
char *util_exe_dir(void);

/* Finds a directory holding the Python harness (the "stratq" package):
 * the explicit value if non-empty, else <exe>/../python, <exe>/../../python,
 * /usr/share/stratq/python. Caller frees. NULL if none exists. */
char *util_find_harness_dir(const char *explicit_dir);

#endif

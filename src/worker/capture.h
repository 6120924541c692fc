/* What a job's child writes on a pipe (its stdout, stderr and result),
 * read into memory up to a limit while the job runs. Bytes past the limit
 * are read and dropped, and the capture is marked as overflowed: the
 * executor then kills the job (output_exceeded). */
#ifndef STRATQ_CAPTURE_H
#define STRATQ_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

struct capture {
    char *buf;    /* NUL-terminated; NULL until the first byte */
    size_t len;   /* bytes kept */
    size_t cap;   /* bytes allocated at buf */
    size_t limit; /* most bytes kept */
    bool overflow;
};

/* Reads what is ready on fd (at most one read) into c. *total counts the
 * bytes kept by every capture sharing total_limit (0: no shared limit).
 * Returns 1 while the pipe is open (also after EINTR or EAGAIN), 0 at end
 * of file, or -errno. */
int capture_read(int fd, struct capture *c, size_t *total, size_t total_limit);

#endif

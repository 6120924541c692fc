/* Typed messages on the stream socket between the worker supervisor and its
 * executor, in the spirit of OpenBSD's imsg: an 8-byte header (the type,
 * then the payload's length, each a 32-bit big-endian number) and the
 * payload. Each type has one row in FRAME_TABLE: which way it goes, what
 * kind of payload it carries and how long that may be. A receiver checks
 * the header against its row before it allocates anything (an unknown
 * type, a message going the wrong way or a length out of bounds is
 * -EPROTO, and the connection is broken), and the payload's kind once it
 * is whole. The table is written out in docs/architecture.md. */
#ifndef STRATQ_FRAME_H
#define STRATQ_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 8
#define FRAME_KIB (1024u)
#define FRAME_MIB (1024u * 1024u)

/* The largest RUN: a job's spec, as the supervisor hands it on. */
#define FRAME_MAX (600u * FRAME_MIB)
/* The upper bounds of STRATQ_MAX_OUTPUT and STRATQ_MAX_RESULT (config.h;
 * tests/unit/test_frame.c checks that they agree). Output is sent as valid
 * UTF-8, in which each byte the job wrote may have become U+FFFD's 3. */
#define FRAME_OUTPUT_BOUND (256u * FRAME_MIB)
#define FRAME_TEXT_MAX (3u * FRAME_OUTPUT_BOUND)
#define FRAME_RESULT_BOUND (512u * FRAME_MIB)
/* A progress or log line as the executor passes it on (JSON text). */
#define FRAME_EVENT_MAX (32u * FRAME_KIB)

/* Which way a message goes. */
enum frame_dir {
    FRAME_DOWN = 1, /* supervisor → executor */
    FRAME_UP = 2,   /* executor → supervisor */
};

/* What a payload is, checked when it has arrived whole. */
enum frame_kind {
    FRAME_EMPTY, /* nothing */
    FRAME_JSON,  /* a JSON object, parsed on receipt (frame_msg's json) */
    FRAME_BYTES, /* bytes the receiver passes on as they are, unparsed */
    FRAME_PAIR,  /* two byte strings: the first's length (4 bytes, big-endian), the
                  * first, the second (frame_msg_pair) */
};

/* X(TYPE, name, direction, kind, least length, most length): the payload
 * of each type. The job's messages come in this order: after RUN, any
 * number of live batches (PROGRESS, LOG..., then OUTPUT, which ends the
 * batch), then OUTPUT_ALL, RESULT (a success only) and DONE. */
#define FRAME_TABLE(X)                                                                             \
    X(READY, "ready", UP, JSON, 2, 64 * FRAME_KIB)                                                 \
    X(RUN, "run", DOWN, JSON, 2, FRAME_MAX)                                                        \
    X(CANCEL, "cancel", DOWN, EMPTY, 0, 0)                                                         \
    X(PROGRESS, "progress", UP, BYTES, 2, FRAME_EVENT_MAX)                                         \
    X(LOG, "log", UP, BYTES, 2, FRAME_EVENT_MAX)                                                   \
    X(OUTPUT, "output", UP, PAIR, 4, 4 + FRAME_TEXT_MAX)                                           \
    X(OUTPUT_ALL, "output_all", UP, PAIR, 4, 4 + FRAME_TEXT_MAX)                                   \
    X(RESULT, "result", UP, BYTES, 1, FRAME_RESULT_BOUND)                                          \
    X(DONE, "done", UP, JSON, 2, FRAME_RESULT_BOUND + 64 * FRAME_KIB)

enum frame_type {
    FRAME_NONE, /* 0 is no type: refused on the wire */
#define FRAME_ENUM_(t, name, dir, kind, min, max) FRAME_##t,
    FRAME_TABLE(FRAME_ENUM_)
#undef FRAME_ENUM_
        FRAME__COUNT
};

struct frame_spec {
    const char *name;
    enum frame_dir dir;
    enum frame_kind kind;
    uint32_t min, max;
};

/* The row of type t, or NULL for a number that is no type. */
const struct frame_spec *frame_spec(uint32_t t);

/* One message as received. Clear with frame_msg_clear() (NULL-safe). */
struct frame_msg {
    enum frame_type type;
    char *data; /* the payload, with a NUL after it (malloc'd; NULL when empty) */
    size_t len;
    json_t *json; /* FRAME_JSON: the payload, parsed */
};
void frame_msg_clear(struct frame_msg *m);
#define _cleanup_frame_msg_ __attribute__((cleanup(frame_msg_clear)))
/* Moves *m out, leaving it empty: the new owner clears what it returns. */
static inline struct frame_msg frame_msg_take(struct frame_msg *m)
{
    struct frame_msg v = *m;
    *m = (struct frame_msg){FRAME_NONE, NULL, 0, NULL};
    return v;
}

/* The two strings of a FRAME_PAIR message (not NUL-terminated). */
void frame_msg_pair(const struct frame_msg *m, const char **a, size_t *alen, const char **b,
                    size_t *blen);

/* What one end has read of the next message, across non-blocking reads.
 * accept: the direction its messages must go. why: what was wrong when a
 * read returned -EPROTO, for the caller's log. */
struct frame_reader {
    enum frame_dir accept;
    unsigned char header[FRAME_HEADER_LEN];
    size_t header_got;
    const struct frame_spec *spec; /* the message under way, once its header is in */
    uint32_t type, len;
    char *buf;
    size_t got;
    char why[160];
};
void frame_reader_init(struct frame_reader *rd, enum frame_dir accept);
/* Drops a message under way (the connection is being closed). */
void frame_reader_clear(struct frame_reader *rd);

/* Reads from fd what is there of the next message, without waiting when
 * fd is non-blocking. Returns 1 with *ret filled (the caller clears it), 0
 * when no whole message is in yet, -EPIPE at a clean end of stream (between
 * messages), -EPROTO for a bad message or a stream that ended inside one
 * (rd->why says which), or -errno. */
int frame_read(int fd, struct frame_reader *rd, struct frame_msg *ret);

/* frame_read until a whole message is in, waiting up to timeout_ms (-1:
 * no limit) with poll(). Returns 0 with *ret, -ETIMEDOUT, or as
 * frame_read. */
int frame_recv(int fd, struct frame_reader *rd, struct frame_msg *ret, int timeout_ms);

/* Send one whole message; on a non-blocking fd they wait (poll) for room.
 * -EMSGSIZE when the payload is out of the type's bounds (the receiver
 * would refuse it), -EINVAL for a payload of the wrong kind, or -errno. */
int frame_send(int fd, enum frame_type t, const void *data, size_t len);
int frame_send_pair(int fd, enum frame_type t, const void *a, size_t alen, const void *b,
                    size_t blen);
/* A FRAME_JSON type: obj written compactly by jansson. */
int frame_send_object(int fd, enum frame_type t, const json_t *obj);

#endif

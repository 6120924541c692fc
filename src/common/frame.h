/* Length-prefixed messages on a stream socket, between the worker
 * supervisor and its executor: a 4-byte big-endian length, then that many
 * bytes (a JSON document). */
#ifndef STRATQ_FRAME_H
#define STRATQ_FRAME_H

#include <jansson.h>
#include <stddef.h>

#define FRAME_MAX (600u * 1024 * 1024)

/* Writes one frame holding json_dumps(msg). 0 or -errno. */
int frame_send_json(int fd, const json_t *msg);

/* Reads one frame (blocking) and parses it. Returns 0, -EPIPE at a clean
 * end of stream, -EPROTO for a bad frame, or -errno. Caller frees *ret_msg
 * with json_decref(). */
int frame_recv_json(int fd, json_t **ret_msg);

#endif

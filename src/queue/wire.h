/* One connection to one Redis node: TCP, a Unix socket or TLS, speaking
 * RESP through hiredis' reply reader and command formatter.
 *
 * Debian 12's hiredis (0.14) cannot do TLS: its contexts read and write
 * their file descriptor themselves. stratq therefore owns the byte stream
 * (a socket, with OpenSSL on it for rediss://; a libevent bufferevent,
 * OpenSSL's or the plain socket's, on the event loop) and hands hiredis
 * only what it does well: redisFormatCommand* to encode a command and
 * redisReader to decode replies. Plain and TLS connections take the same
 * path, so every test exercises the one used in production.
 *
 * Connects, handshakes and every read have deadlines: a server that does
 * not answer (a plaintext port given a TLS ClientHello waits for a line
 * that never comes) is an error after the timeout, never a hang. Errors are
 * one sentence that says what to change (wire_errstr). */
#ifndef STRATQ_QUEUE_WIRE_H
#define STRATQ_QUEUE_WIRE_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct queue_url;
struct queue_tls;

/* The TLS client settings of a rediss:// URL, loaded once (CA bundle,
 * client certificate and key): an SSL_CTX. */
struct wire_tls;
int wire_tls_new(const struct queue_tls *opt, struct wire_tls **ret, char *err, size_t errlen);
void wire_tls_free(struct wire_tls *t);

/* --- Synchronous (the worker, stratq up, --check) -------------------------- */

struct wire;
/* Connects to host:port (a socket path when unix_socket), with TLS when
 * tls is not NULL (sni: the name to send and verify, else host), within
 * timeout_ms for the connect and the handshake together. Reads and
 * writes then time out after io_timeout_ms. */
int wire_connect(const char *host, int port, bool unix_socket, struct wire_tls *tls,
                 const char *sni, int timeout_ms, int io_timeout_ms, struct wire **ret, char *err,
                 size_t errlen);
void wire_free(struct wire *w);
int wire_fd(const struct wire *w);
void wire_set_timeout(struct wire *w, int io_timeout_ms);
/* Why the last call failed. */
const char *wire_errstr(const struct wire *w);

/* Queues a formatted command (redisFormatCommand's output); -ENOMEM. */
int wire_append(struct wire *w, const char *cmd, size_t len);
int wire_appendf(struct wire *w, const char *fmt, ...);
int wire_append_argv(struct wire *w, int argc, const char **argv, const size_t *argvlen);
/* Sends what is queued and reads one reply: 0 with *ret (caller frees
 * with freeReplyObject), or -EIO (lost, timed out, bad protocol). */
int wire_get_reply(struct wire *w, redisReply **ret);
/* Append and read in one: the reply, or NULL on a connection error. */
redisReply *wire_command(struct wire *w, const char *fmt, ...);
redisReply *wire_command_argv(struct wire *w, int argc, const char **argv, const size_t *argvlen);

/* For a subscription polled with wire_fd: reads what has arrived without
 * blocking (0; -EIO when the connection ended), then wire_next_reply
 * gives the complete replies one by one (*ret NULL when none is left). */
int wire_read_available(struct wire *w);
int wire_next_reply(struct wire *w, redisReply **ret);

/* --- Asynchronous (the API, on libevent) ----------------------------------- */

/* The callback gets the reply, or NULL when the connection went before it
 * came; the reply is freed when the callback returns. */
typedef void awire_cb(redisReply *reply, void *priv);

struct awire_ops {
    /* Connected (and the TLS handshake done). */
    void (*connected)(void *priv);
    /* The connection failed or ended (err says why; NULL after
     * awire_close). Every pending callback has had its NULL reply; the
     * awire frees itself after this returns. */
    void (*closed)(void *priv, const char *err);
    /* A reply no call waits for: pub/sub messages. */
    void (*push)(void *priv, redisReply *reply);
};

struct awire;
/* Starts connecting; commands may be sent at once and go out once
 * connected. The connect and handshake time out after timeout_ms. */
int awire_connect(struct event_base *base, const char *host, int port, bool unix_socket,
                  struct wire_tls *tls, const char *sni, int timeout_ms,
                  const struct awire_ops *ops, void *priv, struct awire **ret);
/* Sends a formatted command; cb (may be NULL: the reply is dropped) gets
 * its reply. -EIO once closing. */
int awire_send(struct awire *a, const char *cmd, size_t len, awire_cb *cb, void *priv);
int awire_sendf(struct awire *a, awire_cb *cb, void *priv, const char *fmt, ...);
int awire_send_argv(struct awire *a, awire_cb *cb, void *priv, int argc, const char **argv,
                    const size_t *argvlen);
/* Closes once the replies still due have come (their callbacks run),
 * then closed(priv, NULL). */
void awire_close(struct awire *a);
/* Closes now: pending callbacks get NULL, closed is not called. Safe from
 * within any of its callbacks. */
void awire_free(struct awire *a);
/* Replies still due. */
int awire_pending(const struct awire *a);

#endif

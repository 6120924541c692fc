#define _GNU_SOURCE
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "queue.h"

/* --- TLS --------------------------------------------------------------------- */

struct wire_tls {
    SSL_CTX *ctx;
    bool insecure;
    bool has_cert;
};

/* The last OpenSSL error as text ("" when there is none); clears them. */
static const char *ssl_errtext(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    buf[0] = '\0';
    if (e) {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, len, "%s", r);
        else
            ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

int wire_tls_new(const struct queue_tls *opt, struct wire_tls **ret, char *err, size_t errlen)
{
    char e[200];
    struct wire_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    OPENSSL_init_ssl(0, NULL);
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        snprintf(err, errlen, "TLS: cannot set up OpenSSL: %s", ssl_errtext(e, sizeof(e)));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    t->insecure = opt->insecure;
    if (opt->insecure) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
        log_warn("STRATQ_REDIS_TLS_INSECURE is set: the Redis server's certificate and host name "
                 "are NOT checked, so anyone on the network path can read and change jobs; use it "
                 "for testing only",
                 NULL);
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (opt->cacert ? SSL_CTX_load_verify_locations(t->ctx, opt->cacert, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
            snprintf(err, errlen, "STRATQ_REDIS_CACERT: cannot load the CA bundle %s: %s",
                     opt->cacert ? opt->cacert : "(the system's)", ssl_errtext(e, sizeof(e)));
            goto fail;
        }
    }
    if (opt->cert) {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, opt->cert) != 1) {
            snprintf(err, errlen, "STRATQ_REDIS_CERT: cannot load the client certificate %s: %s",
                     opt->cert, ssl_errtext(e, sizeof(e)));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, opt->key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "STRATQ_REDIS_KEY: cannot load the private key %s: %s", opt->key,
                     ssl_errtext(e, sizeof(e)));
            goto fail;
        }
        if (SSL_CTX_check_private_key(t->ctx) != 1) {
            snprintf(err, errlen,
                     "STRATQ_REDIS_KEY (%s) is not the key of STRATQ_REDIS_CERT (%s): %s", opt->key,
                     opt->cert, ssl_errtext(e, sizeof(e)));
            goto fail;
        }
        t->has_cert = true;
    }
    *ret = t;
    return 0;
fail:
    wire_tls_free(t);
    return -EINVAL;
}

void wire_tls_free(struct wire_tls *t)
{
    if (!t)
        return;
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    free(t);
}

static bool is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A new SSL for a connection to host: SNI (not for an IP address, which
 * TLS does not allow there) and the name the certificate must carry. */
static SSL *tls_ssl(struct wire_tls *t, const char *host, const char *sni, char *err, size_t errlen)
{
    char e[200];
    SSL *ssl = SSL_new(t->ctx);
    const char *name = sni && *sni ? sni : host;
    if (!ssl) {
        snprintf(err, errlen, "TLS: %s", ssl_errtext(e, sizeof(e)));
        return NULL;
    }
    bool ip = is_ip(name);
    if (!ip)
        SSL_set_tlsext_host_name(ssl, name);
    if (!t->insecure) {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name)
                : X509_VERIFY_PARAM_set1_host(p, name, 0)) != 1) {
            snprintf(err, errlen, "TLS: cannot check the certificate against '%s'", name);
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

/* Says why a TLS connection to where failed: the certificate check, an
 * alert from the server (it wants a client certificate, or refuses ours),
 * or a server that does not speak TLS at all. e: the OpenSSL error code
 * (0: none, the peer closed or the time ran out). */
static void tls_describe(SSL *ssl, const struct wire_tls *t, unsigned long e, bool timed_out,
                         const char *where, char *err, size_t errlen)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    int reason = e ? ERR_GET_REASON(e) : 0;
    const char *text = e ? ERR_reason_error_string(e) : NULL;
    char buf[160];
    if (e && !text) {
        ERR_error_string_n(e, buf, sizeof(buf));
        text = buf;
    }
    if (v != X509_V_OK && !t->insecure) {
        snprintf(err, errlen,
                 "TLS handshake with Redis at %s: certificate verify failed: %s (check "
                 "STRATQ_REDIS_CACERT%s)",
                 where, X509_verify_cert_error_string(v),
                 v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH
                     ? ", and STRATQ_REDIS_SNI for the name the certificate carries"
                     : "");
    } else if (reason >= SSL_AD_REASON_OFFSET) {
        /* An alert the server sent: with TLS 1.3 the one about a missing
         * or untrusted client certificate comes after the handshake. */
        snprintf(err, errlen, "Redis at %s refused the TLS connection (%s): %s", where, text,
                 t->has_cert ? "it does not trust the client certificate (STRATQ_REDIS_CERT)"
                             : "it may want a client certificate: set STRATQ_REDIS_CERT and "
                               "STRATQ_REDIS_KEY");
    } else if (timed_out) {
        snprintf(err, errlen,
                 "TLS handshake with Redis at %s timed out: not a TLS port? (use redis:// for a "
                 "plaintext port)",
                 where);
    } else {
        snprintf(err, errlen,
                 "TLS handshake with Redis at %s failed (%s): not a TLS port? (use redis:// for a "
                 "plaintext port)",
                 where, text ? text : "the server closed the connection");
    }
    ERR_clear_error();
}

/* A TLS connection that ended after the handshake and before any reply:
 * with TLS 1.3 a server checks the client certificate only then. e: the
 * OpenSSL error, if any (not told). */
static void tls_refused(const struct wire_tls *t, unsigned long e, const char *where, char *err,
                        size_t errlen)
{
    /* The server's alert (TLS 1.3's "certificate required") may or may
     * not reach us before the connection closes: the same sentence for
     * both, so that every reporter of one failure says the same. */
    (void)e;
    snprintf(err, errlen, "Redis at %s ended the TLS connection before answering: %s", where,
             t->has_cert ? "it does not trust the client certificate (STRATQ_REDIS_CERT)"
                         : "it may want a client certificate: set STRATQ_REDIS_CERT and "
                           "STRATQ_REDIS_KEY");
    ERR_clear_error();
}

/* TCP keepalive, as hiredis sets it: a half-open connection is noticed. */
static void keepalive(int fd)
{
    int on = 1, idle = 15, intvl = 5, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* --- Synchronous ------------------------------------------------------------- */

struct wire {
    int fd;
    SSL *ssl;
    const struct wire_tls *tls;
    redisReader *reader;
    char *out; /* queued commands */
    size_t outlen, outcap;
    int io_timeout_ms;
    bool replied; /* a reply came: the server speaks this protocol */
    char where[280];
    char errstr[512];
};

int wire_fd(const struct wire *w)
{
    return w->fd;
}

void wire_set_timeout(struct wire *w, int io_timeout_ms)
{
    w->io_timeout_ms = io_timeout_ms;
}

const char *wire_errstr(const struct wire *w)
{
    return w->errstr[0] ? w->errstr : "connection lost";
}

void wire_free(struct wire *w)
{
    if (!w)
        return;
    if (w->ssl) {
        SSL_free(w->ssl);
        ERR_clear_error();
    }
    if (w->fd >= 0)
        close(w->fd);
    if (w->reader)
        redisReaderFree(w->reader);
    free(w->out);
    free(w);
}

/* Waits until fd is ready for ev or the deadline passes: 0, -ETIMEDOUT. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* A non-blocking connect to one address, finished within the deadline. */
static int connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, sa, len) < 0) {
        int r = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline) : -errno;
        if (r == 0) {
            int e = 0;
            socklen_t el = sizeof(e);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
                e = errno;
            r = -e;
        }
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    return fd;
}

static int tcp_connect(const char *host, int port, int64_t deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int g = getaddrinfo(host, portstr, &hints, &res);
    if (g) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", host, port, gai_strerror(g));
        return -ECONNREFUSED;
    }
    int fd = -ECONNREFUSED;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = connect_addr(a->ai_addr, a->ai_addrlen, deadline);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", host, port,
                 fd == -ETIMEDOUT ? "Connection timed out" : strerror(-fd));
    return fd;
}

static int unix_connect(const char *path, int64_t deadline, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "cannot connect to Redis at %s: the socket path is too long", path);
        return -ECONNREFUSED;
    }
    strcpy(sa.sun_path, path);
    int fd = connect_addr((struct sockaddr *)&sa, sizeof(sa), deadline);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", path,
                 fd == -ETIMEDOUT ? "Connection timed out" : strerror(-fd));
    return fd;
}

/* Runs the TLS handshake on w's connected socket by the deadline. */
static int tls_handshake(struct wire *w, struct wire_tls *t, const char *host, const char *sni,
                         int64_t deadline, char *err, size_t errlen)
{
    w->ssl = tls_ssl(t, host, sni, err, errlen);
    if (!w->ssl)
        return -EIO;
    SSL_set_fd(w->ssl, w->fd);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(w->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(w->ssl, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (ev) {
            int wr = wait_fd(w->fd, ev, deadline);
            if (wr == 0)
                continue;
            tls_describe(w->ssl, t, 0, wr == -ETIMEDOUT, w->where, err, errlen);
            return -EIO;
        }
        tls_describe(w->ssl, t, ERR_peek_last_error(), false, w->where, err, errlen);
        return -EIO;
    }
}

int wire_connect(const char *host, int port, bool unix_socket, struct wire_tls *tls,
                 const char *sni, int timeout_ms, int io_timeout_ms, struct wire **ret, char *err,
                 size_t errlen)
{
    struct wire *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int64_t deadline = util_mono_ms() + timeout_ms;
    w->fd = -1;
    w->tls = tls;
    w->io_timeout_ms = io_timeout_ms;
    if (unix_socket)
        snprintf(w->where, sizeof(w->where), "%s", host);
    else
        snprintf(w->where, sizeof(w->where), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    w->reader = redisReaderCreate();
    if (!w->reader) {
        wire_free(w);
        return -ENOMEM;
    }
    w->fd = unix_socket ? unix_connect(host, deadline, err, errlen)
                        : tcp_connect(host, port, deadline, err, errlen);
    if (w->fd < 0) {
        w->fd = -1;
        wire_free(w);
        return -ECONNREFUSED;
    }
    if (!unix_socket)
        keepalive(w->fd);
    if (tls && tls_handshake(w, tls, host, sni, deadline, err, errlen) < 0) {
        wire_free(w);
        return -ECONNREFUSED;
    }
    *ret = w;
    return 0;
}

static int end_of_stream(struct wire *w)
{
    if (!w->replied && !w->ssl)
        snprintf(w->errstr, sizeof(w->errstr),
                 "Redis at %s closed the connection before answering (a TLS port? use rediss://)",
                 w->where);
    else
        snprintf(w->errstr, sizeof(w->errstr), "Redis at %s closed the connection", w->where);
    return -EIO;
}

/* What an SSL_read (reading) or SSL_write returned, r, means: >0 bytes,
 * 0 at the end of the stream (reading only), -EAGAIN with *ev set, or -EIO
 * with errstr. Before any reply, an ending is the server refusing us. */
static ssize_t ssl_outcome(struct wire *w, int r, short *ev, bool reading)
{
    if (r > 0)
        return r;
    int e = SSL_get_error(w->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return -EAGAIN;
    }
    unsigned long code = ERR_peek_last_error();
    if (!w->replied) {
        tls_refused(w->tls, code, w->where, w->errstr, sizeof(w->errstr));
        return -EIO;
    }
    if (reading && (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !code)))
        return 0;
    tls_describe(NULL, w->tls, code, false, w->where, w->errstr, sizeof(w->errstr));
    return -EIO;
}

/* Reads up to n bytes: >0, 0 at the end of the stream, -EAGAIN with *ev
 * set to what to wait for, or -EIO with errstr. */
static ssize_t io_read(struct wire *w, char *buf, size_t n, short *ev)
{
    if (!w->ssl) {
        ssize_t r = read(w->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EINTR) {
            *ev = POLLIN;
            return -EAGAIN;
        }
        if (!w->replied && (errno == ECONNRESET || errno == EPIPE))
            return 0; /* told as a close before answering */
        snprintf(w->errstr, sizeof(w->errstr), "reading from Redis at %s: %s", w->where,
                 strerror(errno));
        return -EIO;
    }
    ERR_clear_error();
    return ssl_outcome(w, SSL_read(w->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n)), ev, true);
}

static ssize_t io_write(struct wire *w, const char *buf, size_t n, short *ev)
{
    if (!w->ssl) {
        ssize_t r = send(w->fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EINTR) {
            *ev = POLLOUT;
            return -EAGAIN;
        }
        if (!w->replied && (errno == ECONNRESET || errno == EPIPE)) {
            end_of_stream(w);
            return -EIO;
        }
        snprintf(w->errstr, sizeof(w->errstr), "writing to Redis at %s: %s", w->where,
                 strerror(errno));
        return -EIO;
    }
    ERR_clear_error();
    return ssl_outcome(w, SSL_write(w->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n)), ev, false);
}

int wire_append(struct wire *w, const char *cmd, size_t len)
{
    if (w->outlen + len > w->outcap) {
        size_t cap = w->outcap ? w->outcap : 4096;
        while (cap < w->outlen + len)
            cap *= 2;
        char *p = realloc(w->out, cap);
        if (!p)
            return -ENOMEM;
        w->out = p;
        w->outcap = cap;
    }
    memcpy(w->out + w->outlen, cmd, len);
    w->outlen += len;
    return 0;
}

int wire_appendf(struct wire *w, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    int r = wire_append(w, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

int wire_append_argv(struct wire *w, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return -ENOMEM;
    int r = wire_append(w, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

/* Sends everything queued by the deadline. */
static int flush_out(struct wire *w, int64_t deadline)
{
    size_t off = 0;
    while (off < w->outlen) {
        short ev = 0;
        ssize_t n = io_write(w, w->out + off, w->outlen - off, &ev);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == -EAGAIN) {
            if (wait_fd(w->fd, ev, deadline) == 0)
                continue;
            snprintf(w->errstr, sizeof(w->errstr), "writing to Redis at %s timed out", w->where);
        }
        w->outlen = 0;
        return -EIO;
    }
    w->outlen = 0;
    return 0;
}

int wire_next_reply(struct wire *w, redisReply **ret)
{
    void *r = NULL;
    if (redisReaderGetReply(w->reader, &r) != REDIS_OK) {
        snprintf(w->errstr, sizeof(w->errstr), "Redis at %s: protocol error: %s", w->where,
                 w->reader->errstr);
        return -EIO;
    }
    if (r)
        w->replied = true;
    *ret = r;
    return 0;
}

/* Reads what the socket holds, one buffer's worth, into the reply reader.
 * Returns how many bytes it fed; 0 when it would block (*ev: what to wait
 * for) or the stream has ended (*ended); or -ENOMEM or -EIO. */
static ssize_t feed_once(struct wire *w, short *ev, bool *ended)
{
    char buf[16384];
    ssize_t n = io_read(w, buf, sizeof(buf), ev);
    if (n > 0)
        return redisReaderFeed(w->reader, buf, (size_t)n) == REDIS_OK ? n : -ENOMEM;
    *ended = n == 0;
    return n == 0 || n == -EAGAIN ? 0 : -EIO;
}

int wire_get_reply(struct wire *w, redisReply **ret)
{
    int64_t deadline = util_mono_ms() + w->io_timeout_ms;
    bool ended = false;
    *ret = NULL;
    if (w->outlen && flush_out(w, deadline) < 0)
        return -EIO;
    for (;;) {
        if (wire_next_reply(w, ret) < 0)
            return -EIO;
        if (*ret)
            return 0;
        if (ended)
            return end_of_stream(w);
        short ev = 0;
        ssize_t fed = feed_once(w, &ev, &ended);
        if (fed < 0)
            return (int)fed;
        if (fed > 0 || ended)
            continue;
        if (wait_fd(w->fd, ev, deadline) < 0) {
            snprintf(w->errstr, sizeof(w->errstr), "Redis at %s did not answer within %d ms%s",
                     w->where, w->io_timeout_ms,
                     !w->replied && !w->ssl ? " (a TLS port? use rediss://)" : "");
            return -EIO;
        }
    }
}

int wire_read_available(struct wire *w)
{
    bool ended = false;
    for (;;) {
        short ev = 0;
        ssize_t fed = feed_once(w, &ev, &ended);
        if (fed <= 0)
            return fed < 0 ? (int)fed : ended ? end_of_stream(w) : 0;
    }
}

redisReply *wire_command(struct wire *w, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    redisReply *r = NULL;
    if (wire_append(w, cmd, (size_t)len) < 0 || wire_get_reply(w, &r) < 0)
        r = NULL;
    redisFreeCommand(cmd);
    return r;
}

redisReply *wire_command_argv(struct wire *w, int argc, const char **argv, const size_t *argvlen)
{
    redisReply *r = NULL;
    if (wire_append_argv(w, argc, argv, argvlen) < 0 || wire_get_reply(w, &r) < 0)
        return NULL;
    return r;
}

/* --- Asynchronous ------------------------------------------------------------ */

struct acb {
    awire_cb *cb;
    void *priv;
    struct acb *next;
};

struct awire {
    struct bufferevent *bev;
    redisReader *reader;
    const struct wire_tls *tls;
    struct awire_ops ops;
    void *priv;
    struct acb *head, *tail; /* replies due, in order */
    int npending;
    int depth; /* > 0 inside one of its callbacks: freeing waits */
    bool connected, replied, closing, dead;
    char where[280];
};

int awire_pending(const struct awire *a)
{
    return a->npending;
}

static void awire_destroy(struct awire *a)
{
    if (a->bev)
        bufferevent_free(a->bev);
    if (a->reader)
        redisReaderFree(a->reader);
    ERR_clear_error();
    free(a);
}

/* Every pending callback gets NULL. */
static void fail_pending(struct awire *a)
{
    while (a->head) {
        struct acb *c = a->head;
        a->head = c->next;
        if (!a->head)
            a->tail = NULL;
        a->npending--;
        c->cb(NULL, c->priv);
        free(c);
    }
}

static void enter(struct awire *a)
{
    a->depth++;
}

/* Leaves a callback; frees a when that was asked for meanwhile. */
static void leave(struct awire *a)
{
    if (--a->depth == 0 && a->dead)
        awire_destroy(a);
}

/* The connection ended: pending calls fail, the owner hears why (unless
 * it closed or freed it), and it goes. */
static void finish(struct awire *a, const char *err)
{
    if (a->dead)
        return;
    bufferevent_disable(a->bev, EV_READ | EV_WRITE);
    enter(a);
    fail_pending(a);
    if (!a->closing && !a->dead && a->ops.closed)
        a->ops.closed(a->priv, err);
    a->dead = true;
    leave(a);
}

static void on_aread(struct bufferevent *bev, void *arg)
{
    struct awire *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(a);
    size_t len;
    while (!a->dead && (len = evbuffer_get_length(in)) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        if (redisReaderFeed(a->reader, v.iov_base, v.iov_len) != REDIS_OK) {
            finish(a, "out of memory");
            break;
        }
        evbuffer_drain(in, v.iov_len);
        for (;;) {
            void *r = NULL;
            if (redisReaderGetReply(a->reader, &r) != REDIS_OK) {
                char err[512];
                snprintf(err, sizeof(err), "Redis at %s: protocol error: %s", a->where,
                         a->reader->errstr);
                finish(a, err);
                break;
            }
            if (!r)
                break;
            a->replied = true;
            struct acb *c = a->head;
            if (c) {
                a->head = c->next;
                if (!a->head)
                    a->tail = NULL;
                a->npending--;
                c->cb(r, c->priv);
                free(c);
            } else if (a->ops.push && !a->closing) {
                a->ops.push(a->priv, r);
            }
            freeReplyObject(r);
            if (a->dead)
                break;
        }
    }
    if (!a->dead && a->closing && !a->head)
        finish(a, NULL);
    leave(a);
}

static void on_aevent(struct bufferevent *bev, short what, void *arg)
{
    struct awire *a = arg;
    char err[600];
    if (what & BEV_EVENT_CONNECTED) {
        a->connected = true;
        bufferevent_set_timeouts(bev, NULL, NULL);
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            keepalive(fd);
        if (a->ops.connected) {
            enter(a);
            a->ops.connected(a->priv);
            leave(a);
        }
        return;
    }
    SSL *ssl = a->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
    unsigned long code = 0;
    if (ssl)
        for (unsigned long e; (e = bufferevent_get_openssl_error(bev));)
            code = e;
    int sockerr = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_TIMEOUT) {
        if (a->tls)
            tls_describe(ssl, a->tls, 0, true, a->where, err, sizeof(err));
        else
            snprintf(err, sizeof(err), "cannot connect to Redis at %s: Connection timed out",
                     a->where);
    } else if (ssl && !a->connected) {
        tls_describe(ssl, a->tls, code, false, a->where, err, sizeof(err));
    } else if (ssl && !a->replied) {
        tls_refused(a->tls, code, a->where, err, sizeof(err));
    } else if (ssl && code) {
        tls_describe(NULL, a->tls, code, false, a->where, err, sizeof(err));
    } else if (a->connected && !a->replied && !a->tls) {
        snprintf(err, sizeof(err),
                 "Redis at %s closed the connection before answering (a TLS port? use rediss://)",
                 a->where);
    } else if (what & BEV_EVENT_EOF) {
        snprintf(err, sizeof(err), "Redis at %s closed the connection", a->where);
    } else {
        int dns = bufferevent_socket_get_dns_error(bev);
        snprintf(err, sizeof(err), "%s Redis at %s: %s",
                 a->connected ? "lost the connection to" : "cannot connect to", a->where,
                 dns       ? evutil_gai_strerror(dns)
                 : sockerr ? evutil_socket_error_to_string(sockerr)
                           : "connection lost");
    }
    finish(a, err);
}

int awire_connect(struct event_base *base, const char *host, int port, bool unix_socket,
                  struct wire_tls *tls, const char *sni, int timeout_ms,
                  const struct awire_ops *ops, void *priv, struct awire **ret)
{
    struct awire *a = calloc(1, sizeof(*a));
    char err[600];
    if (!a)
        return -ENOMEM;
    a->ops = *ops;
    a->priv = priv;
    a->tls = tls;
    if (unix_socket)
        snprintf(a->where, sizeof(a->where), "%s", host);
    else
        snprintf(a->where, sizeof(a->where), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    a->reader = redisReaderCreate();
    if (!a->reader)
        goto nomem;
    if (tls) {
        SSL *ssl = tls_ssl(tls, host, sni, err, sizeof(err));
        if (!ssl)
            goto nomem;
        a->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!a->bev) {
            SSL_free(ssl);
            goto nomem;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(a->bev, 1);
    } else {
        a->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!a->bev)
            goto nomem;
    }
    bufferevent_setcb(a->bev, on_aread, NULL, on_aevent, a);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(a->bev, &tv, &tv);
    bufferevent_enable(a->bev, EV_READ | EV_WRITE);
    /* Every callback runs from the loop, never from in here: a host name
     * that does not resolve (libevent resolves it synchronously without an
     * evdns base) fails the connect at once, and the owner must hear of it
     * (closed) only after it has the awire. */
    int r;
    if (unix_socket) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", host);
        r = bufferevent_socket_connect(a->bev, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        r = bufferevent_socket_connect_hostname(a->bev, NULL, AF_UNSPEC, host, port);
    }
    if (r < 0) {
        /* The connect failed at once (resolution, no route): report it
         * from the loop, like any other failure. */
        bufferevent_trigger_event(a->bev, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
    }
    *ret = a;
    return 0;
nomem:
    awire_destroy(a);
    return -ENOMEM;
}

int awire_send(struct awire *a, const char *cmd, size_t len, awire_cb *cb, void *priv)
{
    if (a->closing || a->dead)
        return -EIO;
    if (cb) {
        struct acb *c = calloc(1, sizeof(*c));
        if (!c)
            return -ENOMEM;
        c->cb = cb;
        c->priv = priv;
        if (a->tail)
            a->tail->next = c;
        else
            a->head = c;
        a->tail = c;
        a->npending++;
    }
    if (bufferevent_write(a->bev, cmd, len) < 0)
        return -EIO; /* the callback is failed with the connection */
    return 0;
}

int awire_sendf(struct awire *a, awire_cb *cb, void *priv, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    int r = awire_send(a, cmd, (size_t)len, cb, priv);
    redisFreeCommand(cmd);
    return r;
}

int awire_send_argv(struct awire *a, awire_cb *cb, void *priv, int argc, const char **argv,
                    const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return -ENOMEM;
    int r = awire_send(a, cmd, (size_t)len, cb, priv);
    redisFreeCommand(cmd);
    return r;
}

void awire_close(struct awire *a)
{
    if (!a || a->dead)
        return;
    a->closing = true;
    if (!a->head) {
        enter(a);
        finish(a, NULL);
        leave(a);
    }
}

void awire_free(struct awire *a)
{
    if (!a || a->dead)
        return;
    a->closing = true;
    enter(a);
    finish(a, NULL);
    leave(a);
}

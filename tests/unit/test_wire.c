/* Unit tests for src/queue/wire.c's synchronous connection, against a
 * peer this test plays itself on a Unix socket (no Redis, no thread: what
 * the peer says is written before the call that reads it): the bytes of
 * the commands, pipelining, replies that come in pieces, a subscription's
 * replies, and the sentence each failure is told with. TLS needs a real
 * server and is tested in tests/integration. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "queue/queue.h"
#include "queue/wire.h"

/* The peer: a listening socket at path, and the connection it accepted. */
struct peer {
    char dir[32], path[64];
    int listen_fd, fd;
};

static void peer_listen(struct peer *p)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(p->dir, sizeof(p->dir), "/tmp/stratq-wire-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->path, sizeof(p->path), "%s/redis.sock", p->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
    p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->listen_fd >= 0);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(p->listen_fd, 4), 0);
    p->fd = -1;
}

/* Connects a wire to the peer (io timeout io_ms) and accepts it. */
static struct wire *peer_connect(struct peer *p, int io_ms)
{
    struct wire *w = NULL;
    char err[256];
    assert_int_equal(wire_connect(p->path, 0, true, NULL, NULL, 1000, io_ms, &w, err, sizeof(err)),
                     0);
    p->fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(p->fd >= 0);
    return w;
}

static void peer_say(const struct peer *p, const char *bytes)
{
    size_t len = strlen(bytes);
    assert_int_equal(write(p->fd, bytes, len), (ssize_t)len);
}

/* What the wire sent the peer so far, NUL-terminated. */
static const char *peer_heard(const struct peer *p)
{
    static char buf[4096];
    ssize_t n = recv(p->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void peer_close(struct peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static void peer_free(struct peer *p)
{
    peer_close(p);
    close(p->listen_fd);
    unlink(p->path);
    rmdir(p->dir);
}

static void test_commands_and_replies(void **state)
{
    (void)state;
    struct peer p;
    peer_listen(&p);
    struct wire *w = peer_connect(&p, 1000);
    assert_true(wire_fd(w) >= 0);

    /* One command, one reply. */
    peer_say(&p, "+PONG\r\n");
    redisReply *r = wire_command(w, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    assert_string_equal(peer_heard(&p), "*1\r\n$4\r\nPING\r\n");

    /* Binary arguments with their lengths, a NUL and CRLF included. */
    const char *argv[] = {"SET", "k\0y", "a\r\nb"};
    const size_t lens[] = {3, 3, 4};
    peer_say(&p, ":1\r\n");
    r = wire_command_argv(w, 3, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$4\r\na\r\nb\r\n";
    static char heard[64];
    ssize_t n = recv(p.fd, heard, sizeof(heard), MSG_DONTWAIT);
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(heard, want, sizeof(want) - 1);

    /* Pipelined: queued commands go out together at the first read, and
     * their replies come back one by one, in order, whatever pieces the
     * bytes arrive in. */
    assert_int_equal(wire_appendf(w, "GET %s", "a"), 0);
    assert_int_equal(wire_append_argv(w, 2, (const char *[]){"GET", "b"}, NULL), 0);
    assert_int_equal(wire_append(w, "*1\r\n$4\r\nPING\r\n", 14), 0);
    assert_string_equal(peer_heard(&p), ""); /* nothing sent yet */
    peer_say(&p, "$1\r\nA\r\n$-1\r\n*2\r\n$1");
    assert_int_equal(wire_get_reply(w, &r), 0);
    assert_string_equal(r->str, "A");
    freeReplyObject(r);
    assert_string_equal(peer_heard(&p),
                        "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"
                        "*1\r\n$4\r\nPING\r\n");
    assert_int_equal(wire_get_reply(w, &r), 0);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    peer_say(&p, "\r\nx\r\n:2\r\n");
    assert_int_equal(wire_get_reply(w, &r), 0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "x");
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);

    /* An error reply is a reply, not a failure of the connection. */
    peer_say(&p, "-ERR unknown command\r\n");
    r = wire_command(w, "NOPE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->str, "ERR unknown command");
    freeReplyObject(r);

    /* Closed after answering one of two commands. */
    assert_int_equal(wire_appendf(w, "PING"), 0);
    assert_int_equal(wire_appendf(w, "PING"), 0);
    peer_say(&p, "+PONG\r\n");
    assert_int_equal(wire_get_reply(w, &r), 0);
    freeReplyObject(r);
    peer_heard(&p); /* (a socket closed with bytes unread resets the connection) */
    peer_close(&p);
    assert_int_equal(wire_get_reply(w, &r), -EIO);
    assert_null(r);
    char closed[200];
    snprintf(closed, sizeof(closed), "Redis at %s closed the connection", p.path);
    assert_string_equal(wire_errstr(w), closed);
    wire_free(w);
    peer_free(&p);
}

/* A subscription: what has arrived is read without blocking, then taken
 * reply by reply. */
static void test_subscription(void **state)
{
    (void)state;
    struct peer p;
    peer_listen(&p);
    struct wire *w = peer_connect(&p, 1000);
    redisReply *r = (redisReply *)1;

    assert_int_equal(wire_read_available(w), 0); /* nothing yet */
    assert_int_equal(wire_next_reply(w, &r), 0);
    assert_null(r);
    peer_say(&p,
             "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$");
    assert_int_equal(wire_read_available(w), 0);
    assert_int_equal(wire_next_reply(w, &r), 0);
    assert_non_null(r);
    assert_string_equal(r->element[2]->str, "hi");
    freeReplyObject(r);
    assert_int_equal(wire_next_reply(w, &r), 0);
    assert_null(r); /* the second one is not whole yet */
    peer_say(&p, "3\r\nyou\r\n");
    assert_int_equal(wire_read_available(w), 0);
    assert_int_equal(wire_next_reply(w, &r), 0);
    assert_string_equal(r->element[2]->str, "you");
    freeReplyObject(r);

    /* The end of the stream. */
    peer_close(&p);
    assert_int_equal(wire_read_available(w), -EIO);
    assert_non_null(strstr(wire_errstr(w), "closed the connection"));
    wire_free(w);
    peer_free(&p);
}

/* Each way a connection fails, and what it says: the place (host:port,
 * [v6]:port, or the socket's path) and, before any reply, the hint that
 * the port may want TLS. */
static void test_failures(void **state)
{
    (void)state;
    struct peer p;
    char want[512];
    redisReply *r;
    peer_listen(&p);

    /* Closed before answering: the wire never had a reply. */
    struct wire *w = peer_connect(&p, 1000);
    peer_close(&p);
    assert_null(wire_command(w, "PING"));
    snprintf(want, sizeof(want),
             "Redis at %s closed the connection before answering (a TLS port? use rediss://)",
             p.path);
    assert_string_equal(wire_errstr(w), want);
    wire_free(w);

    /* No answer within the time. */
    w = peer_connect(&p, 50);
    assert_int_equal(wire_appendf(w, "PING"), 0);
    assert_int_equal(wire_get_reply(w, &r), -EIO);
    assert_null(r);
    snprintf(want, sizeof(want),
             "Redis at %s did not answer within 50 ms (a TLS port? use rediss://)", p.path);
    assert_string_equal(wire_errstr(w), want);
    /* After a reply, the same without the hint; wire_set_timeout counts. */
    peer_say(&p, "+PONG\r\n");
    assert_int_equal(wire_get_reply(w, &r), 0);
    freeReplyObject(r);
    wire_set_timeout(w, 30);
    assert_null(wire_command(w, "PING"));
    snprintf(want, sizeof(want), "Redis at %s did not answer within 30 ms", p.path);
    assert_string_equal(wire_errstr(w), want);
    wire_free(w);
    peer_close(&p);

    /* Bytes that are not RESP. */
    w = peer_connect(&p, 1000);
    peer_say(&p, "HTTP/1.1 400 Bad Request\r\n");
    assert_null(wire_command(w, "PING"));
    snprintf(want, sizeof(want), "Redis at %s: protocol error: ", p.path);
    assert_memory_equal(wire_errstr(w), want, strlen(want));
    wire_free(w);
    peer_close(&p);

    /* Nothing listens. */
    char err[256];
    w = NULL;
    unlink(p.path);
    assert_int_equal(wire_connect(p.path, 0, true, NULL, NULL, 200, 200, &w, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_null(w);
    snprintf(want, sizeof(want), "cannot connect to Redis at %s: No such file or directory",
             p.path);
    assert_string_equal(err, want);
    char longpath[200];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(wire_connect(longpath, 0, true, NULL, NULL, 200, 200, &w, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_non_null(strstr(err, "the socket path is too long"));
    peer_free(&p);

    /* TCP: a port nothing listens on (one just bound and closed). */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    int port = ntohs(sa.sin_port);
    assert_int_equal(
        wire_connect("127.0.0.1", port, false, NULL, NULL, 500, 500, &w, err, sizeof(err)),
        -ECONNREFUSED);
    snprintf(want, sizeof(want), "cannot connect to Redis at 127.0.0.1:%d: Connection refused",
             port);
    assert_string_equal(err, want);
}

/* A TCP connection is told by host:port, an IPv6 address in brackets. */
static void test_tcp_place(void **state)
{
    (void)state;
    static const struct {
        int family;
        const char *host, *fmt;
    } rows[] = {{AF_INET, "127.0.0.1", "Redis at 127.0.0.1:%d closed the connection before"},
                {AF_INET6, "::1", "Redis at [::1]:%d closed the connection before"}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int l = socket(rows[i].family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_storage ss = {.ss_family = (sa_family_t)rows[i].family};
        if (rows[i].family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
        socklen_t sl =
            rows[i].family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (l < 0 || bind(l, (struct sockaddr *)&ss, sl) < 0) {
            if (l >= 0)
                close(l); /* no IPv6 on this host */
            continue;
        }
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &sl), 0);
        int port = ntohs(rows[i].family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
        struct wire *w = NULL;
        char err[256], want[128];
        assert_int_equal(
            wire_connect(rows[i].host, port, false, NULL, NULL, 1000, 1000, &w, err, sizeof(err)),
            0);
        int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        close(fd);
        assert_null(wire_command(w, "PING"));
        snprintf(want, sizeof(want), rows[i].fmt, port);
        assert_memory_equal(wire_errstr(w), want, strlen(want));
        wire_free(w);
        close(l);
    }
}

/* The TLS settings: files that are not what they should be are refused
 * with the setting to fix. */
static void test_tls_settings(void **state)
{
    (void)state;
    struct wire_tls *t = NULL;
    char err[512];
    struct queue_tls opt = {.cacert = "/etc/hostname"};
    assert_int_equal(wire_tls_new(&opt, &t, err, sizeof(err)), -EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "STRATQ_REDIS_CACERT: cannot load the CA bundle /etc/hostname: "));
    opt = (struct queue_tls){.cert = "/etc/hostname", .key = "/etc/hostname"};
    assert_int_equal(wire_tls_new(&opt, &t, err, sizeof(err)), -EINVAL);
    assert_non_null(
        strstr(err, "STRATQ_REDIS_CERT: cannot load the client certificate /etc/hostname: "));
    /* The system's CAs; and insecure, which checks nothing. */
    opt = (struct queue_tls){0};
    assert_int_equal(wire_tls_new(&opt, &t, err, sizeof(err)), 0);
    assert_non_null(t);
    wire_tls_free(t);
    log_set_level_name("error"); /* (insecure is a warning in the log) */
    opt = (struct queue_tls){.insecure = true, .cacert = "/etc/hostname"};
    assert_int_equal(wire_tls_new(&opt, &t, err, sizeof(err)), 0);
    wire_tls_free(t);
    wire_tls_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_and_replies),
        cmocka_unit_test(test_subscription),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_tcp_place),
        cmocka_unit_test(test_tls_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/cli/sse.c: the event stream client against a scripted
 * API, a child process on a loopback port that answers one GET with the
 * bytes a test gives it, step by step. The client is the real one (libcurl
 * and the SSE parser), so the tests see what `stratq logs -f` and `stratq
 * monitor` see: events cut anywhere by the network, multi-line data,
 * comments, CRLF line ends, fields it ignores, oversized lines, refusals,
 * the end of a stream, and the reconnection's back-off. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sse.h"
#include "common/config.h"
#include "common/util.h"

#define HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
/* How long a test waits for what must come. */
#define WAIT_MS 10000

/* A script step that closes the connection. */
static const char CLOSE[] = "close";

/* The scripted API: it accepts one connection, reads the request's head
 * (handed to the test on `request`), writes the script's first step at
 * once and each later one when the test writes a byte on `go`. It exits
 * at a CLOSE step; after a last step of bytes it keeps the connection
 * open until it is killed. */
struct api {
    pid_t pid;
    int port;
    int go;
    int request;
};

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            _exit(1);
        p += w;
        n -= (size_t)w;
    }
}

static void serve(int lfd, int go, int request, const char *const *script)
{
    char head[4096];
    size_t len = 0;
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
        _exit(1);
    while (!memmem(head, len, "\r\n\r\n", 4)) {
        ssize_t n = len < sizeof(head) ? read(c, head + len, sizeof(head) - len) : 0;
        if (n <= 0)
            _exit(1);
        len += (size_t)n;
    }
    if (write(request, head, len) != (ssize_t)len)
        _exit(1);
    close(request);
    char byte;
    for (size_t i = 0; script[i]; i++) {
        if (i > 0 && read(go, &byte, 1) != 1)
            _exit(0);
        if (script[i] == CLOSE)
            _exit(0);
        send_all(c, script[i], strlen(script[i]));
    }
    while (read(go, &byte, 1) == 1)
        ;
    _exit(0);
}

/* A socket bound on 127.0.0.1 at a port of the kernel's choice. */
static int bound_socket(int *ret_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *ret_port = ntohs(a.sin_port);
    return fd;
}

static void point_at(int port)
{
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    assert_int_equal(config_set(CFG_API_URL, url, err, sizeof(err)), 0);
}

/* Starts the scripted API and points the client at it. */
static struct api api_start(const char *const *script)
{
    struct api a;
    int go[2], req[2];
    int lfd = bound_socket(&a.port);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(req, O_CLOEXEC), 0);
    a.pid = fork();
    assert_true(a.pid >= 0);
    if (a.pid == 0) {
        close(go[1]);
        close(req[0]);
        serve(lfd, go[0], req[1], script);
    }
    close(lfd);
    close(go[0]);
    close(req[1]);
    a.go = go[1];
    a.request = req[0];
    point_at(a.port);
    return a;
}

static void api_go(const struct api *a)
{
    assert_int_equal(write(a->go, "g", 1), 1);
}

/* The head of the request the API got (it has one once sse_open returned). */
static void api_request(const struct api *a, char *buf, size_t len)
{
    ssize_t n = read(a->request, buf, len - 1);
    assert_true(n > 0);
    buf[n] = '\0';
}

/* Waits until the API has closed the connection (a CLOSE step). */
static void api_closed(struct api *a)
{
    int status;
    assert_int_equal(waitpid(a->pid, &status, 0), a->pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    a->pid = -1;
}

static void api_stop(struct api *a)
{
    if (a->pid > 0) {
        kill(a->pid, SIGKILL);
        waitpid(a->pid, NULL, 0);
    }
    close(a->go);
    close(a->request);
}

static struct sse *open_stream(void)
{
    struct sse *s = NULL;
    char err[600];
    int r = sse_open("/v1/events", WAIT_MS, &s, err, sizeof(err));
    if (r < 0)
        fail_msg("sse_open: %d %s", r, err);
    return s;
}

/* sse_next until it returns other than 0 (it does when one of curl's
 * timers wakes it), for up to WAIT_MS. */
static int next(struct sse *s, char **ret_data, char ret_name[SSE_NAME_MAX])
{
    int64_t deadline = util_mono_ms() + WAIT_MS;
    int r;
    do
        r = sse_next(s, (int)(deadline - util_mono_ms()), ret_data, ret_name);
    while (r == 0 && util_mono_ms() < deadline);
    return r;
}

static void expect_event(struct sse *s, const char *data, const char *name)
{
    char *got = NULL, got_name[SSE_NAME_MAX];
    assert_int_equal(next(s, &got, got_name), 1);
    assert_string_equal(got, data);
    assert_string_equal(got_name, name);
    free(got);
}

static void test_an_event_cut_across_reads_is_put_together(void **state)
{
    (void)state;
    const char *script[] = {
        HEAD, ": stratq events\n\n", "data: first\n\ndata: hel", "lo", "\n", "\n", NULL};
    struct api a = api_start(script);
    struct sse *s = open_stream();
    char req[4096];
    api_request(&a, req, sizeof(req));
    assert_true(!strncmp(req, "GET /v1/events HTTP/1.1\r\n", 25));
    assert_non_null(strstr(req, "\r\nAccept: text/event-stream\r\n"));
    assert_null(strstr(req, "Authorization"));

    char *data = NULL, name[SSE_NAME_MAX];
    api_go(&a); /* a comment alone, then a blank line: no event */
    assert_int_equal(sse_next(s, 200, &data, name), 0);
    api_go(&a);
    expect_event(s, "first", "");
    /* "data: hel" came with "first": nothing until its blank line. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sse_next(s, 100, &data, name), 0);
        api_go(&a);
    }
    expect_event(s, "hello", "");
    assert_int_equal(sse_next(s, 100, &data, name), 0);
    sse_free(s);
    api_stop(&a);
}

static void test_fields_comments_and_line_ends(void **state)
{
    (void)state;
    const char *script[] = {
        HEAD ": greeting\r\n\r\n"
             "event: output\r\nid: 7\r\ndata: {\"a\":1,\r\n: between\r\ndata:\"b\":2}\r\n"
             "retry: 100\r\ndatum: not a field of ours\r\n\r\n"
             "event: lonely\n\n"
             "data: plain\n\n"
             "data: x\ndata:\n\n"
             "data:\n\n"
             "data:  two spaces\n\n"
             "event: job\nevent: output\ndata: last name wins\n\n"
             "event: nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\ndata: long name\n\n",
        NULL};
    struct api a = api_start(script);
    struct sse *s = open_stream();
    expect_event(s, "{\"a\":1,\n\"b\":2}", "output");
    /* The name of an event without data does not pass to the next. */
    expect_event(s, "plain", "");
    expect_event(s, "x\n", "");
    expect_event(s, "", "");
    expect_event(s, " two spaces", "");
    expect_event(s, "last name wins", "output");
    expect_event(s, "long name", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
    sse_free(s);
    api_stop(&a);
}

/* A line of SSE_LINE_MAX bytes is read; one byte more ends the stream,
 * though the API keeps it open. */
static void test_a_line_past_the_limit_ends_the_stream(void **state)
{
    (void)state;
    const size_t big = SSE_LINE_MAX + 1;
    char *longest = malloc(big + 3), *longer = malloc(big + 2);
    assert_non_null(longest);
    assert_non_null(longer);
    memcpy(longest, "data: ", 6);
    memset(longest + 6, 'x', SSE_LINE_MAX - 6);
    memcpy(longest + SSE_LINE_MAX, "\n\n", 3);
    memcpy(longer, "data: ", 6);
    memset(longer + 6, 'y', big - 6);
    memcpy(longer + big, "\n", 2);
    const char *script[] = {HEAD, longest, longer, NULL};
    struct api a = api_start(script);
    struct sse *s = open_stream();
    char *data = NULL, name[SSE_NAME_MAX];
    api_go(&a);
    assert_int_equal(next(s, &data, name), 1);
    assert_int_equal(strlen(data), SSE_LINE_MAX - 6);
    assert_int_equal(strspn(data, "x"), SSE_LINE_MAX - 6);
    free(data);
    api_go(&a);
    assert_int_equal(next(s, &data, name), -ECONNRESET);
    sse_free(s);
    api_stop(&a);
    free(longest);
    free(longer);
}

/* Events already received come out before the end is told, though the
 * client reads them and the end together. */
static void test_the_end_comes_after_the_events(void **state)
{
    (void)state;
    const char *script[] = {HEAD, "data: a\n\ndata: b\n\ndata: never dispatched\n", CLOSE, NULL};
    struct api a = api_start(script);
    struct sse *s = open_stream();
    char *data = NULL, name[SSE_NAME_MAX];
    api_go(&a);
    api_go(&a);
    api_closed(&a);
    expect_event(s, "a", "");
    expect_event(s, "b", "");
    assert_int_equal(next(s, &data, name), -ECONNRESET);
    assert_int_equal(sse_next(s, WAIT_MS, &data, name), -ECONNRESET);
    sse_free(s);
    api_stop(&a);
}

static void expect_open_fails(int want, const char *want_err)
{
    struct sse *s = NULL;
    char err[600];
    assert_int_equal(sse_open("/v1/events", WAIT_MS, &s, err, sizeof(err)), want);
    assert_null(s);
    assert_string_equal(err, want_err);
}

static void test_a_refusal_says_what_the_api_answered(void **state)
{
    (void)state;
    const char *not_found[] = {"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                               "Content-Length: 23\r\n\r\n{\"error\": \"not found\"}\n",
                               NULL};
    struct api a = api_start(not_found);
    expect_open_fails(-EPROTO,
                      "the API answered 404 to GET /v1/events: {\"error\": \"not found\"}\n");
    api_stop(&a);

    const char *plain[] = {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", CLOSE, NULL};
    a = api_start(plain);
    api_go(&a);
    expect_open_fails(-EPROTO, "the API answered 200 to GET /v1/events: hello");
    api_stop(&a);
}

static void test_an_api_that_is_not_there_or_silent(void **state)
{
    (void)state;
    char want[200];
    int port, fd = bound_socket(&port); /* bound, not listening: refused */
    point_at(port);
    snprintf(want, sizeof(want),
             "cannot reach the stratq API at http://127.0.0.1:%d/v1/events: Couldn't connect to "
             "server",
             port);
    expect_open_fails(-EIO, want);
    close(fd);

    /* It takes the request and says nothing. */
    const char *silent[] = {NULL};
    struct api a = api_start(silent);
    struct sse *s;
    char err[600];
    int64_t t0 = util_mono_ms();
    assert_int_equal(sse_open("/v1/events", 300, &s, err, sizeof(err)), -EIO);
    assert_true(util_mono_ms() - t0 >= 300);
    snprintf(want, sizeof(want),
             "cannot reach the stratq API at http://127.0.0.1:%d/v1/events: no answer in time",
             a.port);
    assert_string_equal(err, want);

    /* cli_abort set (the monitor got SIGINT): no waiting. */
    volatile sig_atomic_t stop = 1;
    cli_abort = &stop;
    assert_int_equal(sse_open("/v1/events", WAIT_MS, &s, err, sizeof(err)), -EINTR);
    assert_string_equal(err, "interrupted");
    cli_abort = NULL;
    api_stop(&a);
}

static void test_the_token_goes_in_a_header(void **state)
{
    (void)state;
    const char *script[] = {HEAD, NULL};
    struct api a = api_start(script);
    setenv("STRATQ_API_TOKEN", "tok-123", 1);
    struct sse *s = open_stream();
    char req[4096];
    api_request(&a, req, sizeof(req));
    assert_non_null(strstr(req, "\r\nAuthorization: Bearer tok-123\r\n"));
    sse_free(s);
    api_stop(&a);

    /* A token that would add a header line of its own is refused. */
    setenv("STRATQ_API_TOKEN", "tok\r\nX-Admin: 1", 1);
    expect_open_fails(-EINVAL, "STRATQ_API_TOKEN holds a control character");
    unsetenv("STRATQ_API_TOKEN");
}

/* The job events sse_jobs_next returns, their ids in order ("-" for a
 * lost stream), until the stream is lost. */
static void job_events(bool outputs, char *ids, size_t len)
{
    const char *script[] = {HEAD
                            "data: {\"id\":\"a\",\"status\":\"queued\"}\n\n"
                            "event: job\ndata: {\"id\":\"b\",\"status\":\"running\"}\n\n"
                            "event: output\ndata: {\"id\":\"c\",\"output\":{\"stdout\":\"hi\"}}\n\n"
                            "event: tenant\ndata: {\"id\":\"d\"}\n\n"
                            "data: [\"e\"]\n\n"
                            "data: {\"id\":\n\n"
                            "event: job\ndata: {\"id\":\"f\",\"status\":\"succeeded\"}\n\n",
                            CLOSE, NULL};
    struct api a = api_start(script);
    struct sse_jobs j = {.outputs = outputs};
    assert_false(sse_jobs_open(&j));
    assert_true(sse_jobs_connect(&j));
    assert_true(sse_jobs_open(&j));
    assert_false(sse_jobs_connect(&j)); /* open already */
    api_go(&a);
    ids[0] = '\0';
    int64_t deadline = util_mono_ms() + WAIT_MS;
    for (int r = 0; r >= 0 && util_mono_ms() < deadline;) {
        json_t *ev = NULL;
        r = sse_jobs_next(&j, 100, &ev);
        if (r == 0)
            continue;
        size_t n = strlen(ids);
        snprintf(ids + n, len - n, "%s%d",
                 r < 0 ? "-" : json_string_value(json_object_get(ev, "id")), r);
        json_decref(ev);
    }
    assert_false(sse_jobs_open(&j));
    sse_jobs_close(&j);
    api_stop(&a);
}

static void test_job_events_and_outputs(void **state)
{
    (void)state;
    char ids[64];
    /* `job` and unnamed events are 1, `output` 2 when asked for; other
     * names, and data that is not a JSON object, are skipped. */
    job_events(true, ids, sizeof(ids));
    assert_string_equal(ids, "a1b1c2f1--1");
    job_events(false, ids, sizeof(ids));
    assert_string_equal(ids, "a1b1f1--1");
}

static void test_reconnection_backs_off(void **state)
{
    (void)state;
    int port, fd = bound_socket(&port);
    point_at(port);
    struct sse_jobs j = {0};
    int64_t t0 = util_mono_ms();
    assert_false(sse_jobs_connect(&j));
    assert_int_equal(j.delay_ms, 1000);
    assert_true(j.retry_at_ms >= t0 + 1000 && j.retry_at_ms <= util_mono_ms() + 1000);
    /* Not before its time: no attempt, the delay unchanged. */
    assert_false(sse_jobs_connect(&j));
    assert_int_equal(j.delay_ms, 1000);
    const int delays[] = {2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < ARRAY_SIZE(delays); i++) {
        j.retry_at_ms = 0;
        assert_false(sse_jobs_connect(&j));
        assert_int_equal(j.delay_ms, delays[i]);
    }
    close(fd);

    /* Not open: sse_jobs_next waits out its time and says nothing. */
    json_t *ev = NULL;
    t0 = util_mono_ms();
    assert_int_equal(sse_jobs_next(&j, 50, &ev), 0);
    assert_true(util_mono_ms() - t0 >= 50);
    assert_null(ev);

    const char *script[] = {HEAD, NULL};
    struct api a = api_start(script);
    j.retry_at_ms = 0;
    assert_true(sse_jobs_connect(&j));
    assert_int_equal(j.delay_ms, 0);
    sse_jobs_close(&j);
    assert_false(sse_jobs_open(&j));
    api_stop(&a);
}

int main(void)
{
    /* A test that waits past this has failed. */
    alarm(120);
    /* The client's requests go straight to the scripted API, with no
     * token unless a test sets one. */
    unsetenv("STRATQ_API_TOKEN");
    unsetenv("http_proxy");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_event_cut_across_reads_is_put_together),
        cmocka_unit_test(test_fields_comments_and_line_ends),
        cmocka_unit_test(test_a_line_past_the_limit_ends_the_stream),
        cmocka_unit_test(test_the_end_comes_after_the_events),
        cmocka_unit_test(test_a_refusal_says_what_the_api_answered),
        cmocka_unit_test(test_an_api_that_is_not_there_or_silent),
        cmocka_unit_test(test_the_token_goes_in_a_header),
        cmocka_unit_test(test_job_events_and_outputs),
        cmocka_unit_test(test_reconnection_backs_off),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    config_free();
    return r;
}

/* Unit tests for src/common/frame.c: the typed messages between the worker
 * supervisor and its executor. Each test plays both ends on a socketpair. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/frame.h"

static void pair_of(int sv[2], bool nonblocking)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (nonblocking)
        assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static void write_header(int fd, uint32_t type, uint32_t len)
{
    unsigned char h[FRAME_HEADER_LEN] = {(unsigned char)(type >> 24), (unsigned char)(type >> 16),
                                         (unsigned char)(type >> 8),  (unsigned char)type,
                                         (unsigned char)(len >> 24),  (unsigned char)(len >> 16),
                                         (unsigned char)(len >> 8),   (unsigned char)len};
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
}

static enum frame_dir other_way(enum frame_dir d)
{
    return d == FRAME_UP ? FRAME_DOWN : FRAME_UP;
}

/* A payload of len bytes that is of the kind the type's row names. */
static char *payload_of(const struct frame_spec *spec, size_t len)
{
    char *p = malloc(len + 1);
    assert_non_null(p);
    memset(p, 'x', len);
    if (spec->kind == FRAME_JSON) {
        /* {"k":"xxx..."}, padded to len */
        assert_true(len >= 2);
        if (len < 8) {
            memcpy(p, "{", 1);
            memset(p + 1, ' ', len - 2);
            p[len - 1] = '}';
        } else {
            memcpy(p, "{\"k\":\"", 6);
            memcpy(p + len - 2, "\"}", 2);
        }
    } else if (spec->kind == FRAME_PAIR) {
        memset(p, 0, 4); /* the first part is empty; the second is the rest */
    }
    p[len] = '\0';
    return p;
}

/* A message of type t with a header saying len, read by a reader of
 * direction dir that has nothing more: what frame_read says. */
static int read_header_only(uint32_t t, uint32_t len, enum frame_dir dir, struct frame_reader *rd)
{
    int sv[2];
    struct frame_msg m = {0};
    pair_of(sv, true);
    frame_reader_init(rd, dir);
    write_header(sv[0], t, len);
    int r = frame_read(sv[1], rd, &m);
    close(sv[0]);
    close(sv[1]);
    return r;
}

static void test_table_names_every_type_once(void **state)
{
    (void)state;
    assert_null(frame_spec(FRAME_NONE));
    assert_null(frame_spec(FRAME__COUNT));
    assert_null(frame_spec(UINT32_MAX));
    for (uint32_t t = 1; t < FRAME__COUNT; t++) {
        const struct frame_spec *s = frame_spec(t);
        assert_non_null(s);
        assert_non_null(s->name);
        assert_true(s->dir == FRAME_UP || s->dir == FRAME_DOWN);
        assert_true(s->min <= s->max);
        assert_true(s->kind != FRAME_EMPTY || s->max == 0);
        assert_true(s->kind != FRAME_PAIR || s->min >= 4);
        for (uint32_t u = 1; u < t; u++)
            assert_string_not_equal(frame_spec(u)->name, s->name);
    }
}

/* The caps on output and results come from the settings' upper bounds: a
 * message the settings allow is one the table allows. */
static void test_bounds_agree_with_the_settings(void **state)
{
    (void)state;
    assert_int_equal(config_opts[CFG_MAX_RESULT].max, FRAME_RESULT_BOUND);
    assert_int_equal(config_opts[CFG_MAX_OUTPUT].max, FRAME_OUTPUT_BOUND);
    assert_int_equal(frame_spec(FRAME_RESULT)->max, FRAME_RESULT_BOUND);
    assert_true(frame_spec(FRAME_OUTPUT_ALL)->max >= 4 + 3ull * FRAME_OUTPUT_BOUND);
    assert_true(frame_spec(FRAME_DONE)->max > FRAME_RESULT_BOUND);
}

/* For every type: a header one byte under its least length or one over its
 * most is refused at once (before any payload is sent or allocated), and
 * so is one going the other way; its most is taken (the reader waits for
 * the payload), and a message of its least length arrives. */
static void test_every_type_is_held_to_its_bounds(void **state)
{
    (void)state;
    for (uint32_t t = 1; t < FRAME__COUNT; t++) {
        const struct frame_spec *s = frame_spec(t);
        struct frame_reader rd;
        if (s->min > 0) {
            assert_int_equal(read_header_only(t, s->min - 1, s->dir, &rd), -EPROTO);
            assert_non_null(strstr(rd.why, s->name));
            assert_null(rd.buf);
        }
        assert_int_equal(read_header_only(t, s->max + 1, s->dir, &rd), -EPROTO);
        assert_non_null(strstr(rd.why, s->name));
        assert_null(rd.buf);
        assert_int_equal(read_header_only(t, s->min, other_way(s->dir), &rd), -EPROTO);
        assert_non_null(strstr(rd.why, "cannot come this way"));
        assert_int_equal(read_header_only(t, s->max, s->dir, &rd), s->max ? 0 : 1);
        frame_reader_clear(&rd);

        int sv[2];
        struct frame_msg m = {0};
        pair_of(sv, true);
        frame_reader_init(&rd, s->dir);
        char *p = payload_of(s, s->min);
        if (s->kind == FRAME_PAIR)
            assert_int_equal(frame_send_pair(sv[0], t, NULL, 0, p + 4, s->min - 4), 0);
        else
            assert_int_equal(frame_send(sv[0], t, p, s->min), 0);
        assert_int_equal(frame_read(sv[1], &rd, &m), 1);
        assert_int_equal(m.type, t);
        assert_int_equal(m.len, s->min);
        assert_true(s->kind != FRAME_JSON || json_is_object(m.json));
        frame_msg_clear(&m);
        free(p);
        close(sv[0]);
        close(sv[1]);
    }
}

/* A sender is held to the same bounds: it refuses to write what the
 * receiver would refuse (the payload is never read: PROT_NONE). */
static void test_a_sender_refuses_what_the_receiver_would(void **state)
{
    (void)state;
    int sv[2];
    pair_of(sv, false);
    for (uint32_t t = 1; t < FRAME__COUNT; t++) {
        const struct frame_spec *s = frame_spec(t);
        size_t over = (size_t)s->max + 1;
        void *big = mmap(NULL, over, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        assert_true(big != MAP_FAILED);
        if (s->kind == FRAME_PAIR)
            assert_int_equal(frame_send_pair(sv[0], t, big, over - 4, "", 0), -EMSGSIZE);
        else
            assert_int_equal(frame_send(sv[0], t, big, over), -EMSGSIZE);
        if (s->min > 0 && s->kind != FRAME_PAIR)
            assert_int_equal(frame_send(sv[0], t, "", 0), -EMSGSIZE);
        munmap(big, over);
    }
    /* Nothing was written. */
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    char c;
    assert_int_equal(read(sv[1], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
    /* A payload of the wrong kind. */
    json_t *o = json_object();
    assert_int_equal(frame_send_object(sv[0], FRAME_RESULT, o), -EINVAL);
    assert_int_equal(frame_send_pair(sv[0], FRAME_RESULT, "a", 1, "b", 1), -EINVAL);
    assert_int_equal(frame_send(sv[0], FRAME_OUTPUT, "abcd", 4), -EINVAL);
    assert_int_equal(frame_send(sv[0], FRAME_NONE, "", 0), -EINVAL);
    assert_int_equal(frame_send(sv[0], FRAME__COUNT, "", 0), -EINVAL);
    json_decref(o);
    close(sv[0]);
    close(sv[1]);
}

static void test_unknown_types_are_refused(void **state)
{
    (void)state;
    const uint32_t types[] = {FRAME_NONE, FRAME__COUNT, 0x7fffffff, UINT32_MAX};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct frame_reader rd;
        assert_int_equal(read_header_only(types[i], 0, FRAME_UP, &rd), -EPROTO);
        assert_non_null(strstr(rd.why, "unknown message type"));
    }
}

/* A length no message has (4 GiB) is refused from the header alone: no
 * allocation, no wait for the payload. */
static void test_an_oversized_length_is_refused_at_once(void **state)
{
    (void)state;
    struct frame_reader rd;
    assert_int_equal(read_header_only(FRAME_RESULT, UINT32_MAX, FRAME_UP, &rd), -EPROTO);
    assert_string_equal(rd.why, "a result message of 4294967295 bytes (it holds 1 to 536870912)");
    assert_null(rd.buf);
}

/* A RUN arrives as it was sent; a clean end of stream after it is -EPIPE,
 * and no message is made. */
static void test_run_round_trip(void **state)
{
    (void)state;
    int sv[2];
    struct frame_reader rd;
    struct frame_msg m = {0};
    pair_of(sv, false);
    frame_reader_init(&rd, FRAME_DOWN);
    json_t *msg = json_pack("{s:s, s:i}", "id", "abc", "attempt", 2);
    assert_int_equal(frame_send_object(sv[0], FRAME_RUN, msg), 0);
    json_decref(msg);
    assert_int_equal(frame_recv(sv[1], &rd, &m, -1), 0);
    assert_int_equal(m.type, FRAME_RUN);
    assert_string_equal(m.data, "{\"id\":\"abc\",\"attempt\":2}");
    assert_string_equal(json_string_value(json_object_get(m.json, "id")), "abc");
    assert_int_equal(json_integer_value(json_object_get(m.json, "attempt")), 2);
    frame_msg_clear(&m);
    close(sv[0]);
    assert_int_equal(frame_recv(sv[1], &rd, &m, -1), -EPIPE);
    assert_int_equal(m.type, FRAME_NONE);
    assert_null(m.data);
    assert_null(m.json);
    close(sv[1]);
}

/* The end of the stream between messages is -EPIPE; inside a header or a
 * payload it is a broken message. */
static void test_truncated_frames(void **state)
{
    (void)state;
    for (int cut = 0; cut < 3; cut++) {
        int sv[2];
        struct frame_reader rd;
        struct frame_msg m = {0};
        pair_of(sv, false);
        frame_reader_init(&rd, FRAME_UP);
        if (cut == 1) {
            assert_int_equal(write(sv[0], "\0\0\0", 3), 3);
        } else if (cut == 2) {
            write_header(sv[0], FRAME_RESULT, 10);
            assert_int_equal(write(sv[0], "[1,", 3), 3);
        }
        close(sv[0]);
        int r = frame_read(sv[1], &rd, &m);
        assert_int_equal(r, cut == 0 ? -EPIPE : -EPROTO);
        if (cut == 1)
            assert_string_equal(rd.why, "the stream ended inside a message's header");
        if (cut == 2)
            assert_string_equal(rd.why, "the stream ended inside a result message (3 of 10 bytes)");
        frame_reader_clear(&rd);
        close(sv[1]);
    }
}

/* A message that comes a byte at a time is read as it comes: 0 until it
 * is whole, then 1; two messages in one write are two reads. */
static void test_partial_reads_on_a_nonblocking_socket(void **state)
{
    (void)state;
    int sv[2], wire[2];
    struct frame_reader rd;
    struct frame_msg m = {0};
    pair_of(sv, true);
    pair_of(wire, false);
    frame_reader_init(&rd, FRAME_UP);
    /* The bytes of a RESULT and a DONE, as frame_send writes them. */
    assert_int_equal(frame_send(wire[0], FRAME_RESULT, "[1,2]", 5), 0);
    json_t *done = json_pack("{s:s}", "status", "succeeded");
    assert_int_equal(frame_send_object(wire[0], FRAME_DONE, done), 0);
    json_decref(done);
    char bytes[256];
    ssize_t n = read(wire[1], bytes, sizeof(bytes));
    assert_true(n == FRAME_HEADER_LEN + 5 + FRAME_HEADER_LEN + 22);
    close(wire[0]);
    close(wire[1]);

    assert_int_equal(frame_read(sv[1], &rd, &m), 0);
    for (ssize_t i = 0; i < FRAME_HEADER_LEN + 5; i++) {
        assert_int_equal(write(sv[0], bytes + i, 1), 1);
        int r = frame_read(sv[1], &rd, &m);
        assert_int_equal(r, i == FRAME_HEADER_LEN + 4 ? 1 : 0);
    }
    assert_int_equal(m.type, FRAME_RESULT);
    assert_int_equal(m.len, 5);
    assert_string_equal(m.data, "[1,2]");
    assert_null(m.json); /* bytes are not parsed */
    frame_msg_clear(&m);
    /* The DONE in one piece, and a RESULT's header after it. */
    assert_int_equal(write(sv[0], bytes + FRAME_HEADER_LEN + 5, (size_t)n - FRAME_HEADER_LEN - 5),
                     n - FRAME_HEADER_LEN - 5);
    assert_int_equal(write(sv[0], bytes, 3), 3);
    assert_int_equal(frame_read(sv[1], &rd, &m), 1);
    assert_int_equal(m.type, FRAME_DONE);
    assert_string_equal(json_string_value(json_object_get(m.json, "status")), "succeeded");
    frame_msg_clear(&m);
    assert_int_equal(frame_read(sv[1], &rd, &m), 0);
    assert_int_equal(rd.header_got, 3);
    frame_reader_clear(&rd);
    close(sv[0]);
    close(sv[1]);
}

/* The kinds are checked once the payload is whole. */
static void test_payload_kinds(void **state)
{
    (void)state;
    static const struct {
        uint32_t type;
        const char *payload;
        size_t len;
        int want;
    } cases[] = {
        {FRAME_RUN, "{\"id\":\"a\"}", 10, 1}, {FRAME_RUN, "[1,2]", 5, -EPROTO},
        {FRAME_RUN, "{\"id\":", 6, -EPROTO},  {FRAME_READY, "\"ok\"", 4, -EPROTO},
        {FRAME_OUTPUT, "\0\0\0\2abc", 7, 1},  {FRAME_OUTPUT, "\0\0\0\4abc", 7, -EPROTO},
        {FRAME_OUTPUT_ALL, "\0\0\0\0", 4, 1}, {FRAME_RESULT, "not json at all", 15, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int sv[2];
        struct frame_reader rd;
        struct frame_msg m = {0};
        pair_of(sv, true);
        frame_reader_init(&rd, frame_spec(cases[i].type)->dir);
        write_header(sv[0], cases[i].type, (uint32_t)cases[i].len);
        assert_int_equal(write(sv[0], cases[i].payload, cases[i].len), (ssize_t)cases[i].len);
        assert_int_equal(frame_read(sv[1], &rd, &m), cases[i].want);
        if (cases[i].want < 0)
            assert_non_null(strstr(rd.why, frame_spec(cases[i].type)->name));
        frame_msg_clear(&m);
        close(sv[0]);
        close(sv[1]);
    }
}

static void test_pairs_and_empty_messages_round_trip(void **state)
{
    (void)state;
    int sv[2];
    struct frame_reader rd;
    struct frame_msg m = {0};
    pair_of(sv, true);
    frame_reader_init(&rd, FRAME_UP);
    assert_int_equal(frame_send_pair(sv[0], FRAME_OUTPUT, "out\n", 4, "err", 3), 0);
    assert_int_equal(frame_read(sv[1], &rd, &m), 1);
    const char *a, *b;
    size_t alen, blen;
    frame_msg_pair(&m, &a, &alen, &b, &blen);
    assert_int_equal(alen, 4);
    assert_memory_equal(a, "out\n", 4);
    assert_int_equal(blen, 3);
    assert_memory_equal(b, "err", 3);
    frame_msg_clear(&m);
    assert_int_equal(frame_send_pair(sv[0], FRAME_OUTPUT_ALL, NULL, 0, NULL, 0), 0);
    assert_int_equal(frame_read(sv[1], &rd, &m), 1);
    frame_msg_pair(&m, &a, &alen, &b, &blen);
    assert_int_equal(alen + blen, 0);
    frame_msg_clear(&m);
    /* A CANCEL has no payload at all. */
    frame_reader_init(&rd, FRAME_DOWN);
    assert_int_equal(frame_send(sv[0], FRAME_CANCEL, NULL, 0), 0);
    assert_int_equal(frame_recv(sv[1], &rd, &m, 1000), 0);
    assert_int_equal(m.type, FRAME_CANCEL);
    assert_null(m.data);
    assert_int_equal(m.len, 0);
    frame_msg_clear(&m);
    /* Nothing more comes: a wait runs out; then a clean end. */
    assert_int_equal(frame_recv(sv[1], &rd, &m, 50), -ETIMEDOUT);
    close(sv[0]);
    assert_int_equal(frame_recv(sv[1], &rd, &m, 1000), -EPIPE);
    close(sv[1]);
}

/* 8 MiB through a socket that holds far less, both ends non-blocking: the
 * sender waits for room, the receiver reads it piece by piece. */
static void test_a_large_result_crosses_nonblocking_sockets(void **state)
{
    (void)state;
    int sv[2];
    pair_of(sv, true);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    size_t len = 8u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('0' + i % 10);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        _exit(frame_send(sv[0], FRAME_RESULT, big, len) == 0 &&
                      frame_send_pair(sv[0], FRAME_OUTPUT_ALL, big, 3, big + 3, 4) == 0
                  ? 0
                  : 1);
    }
    close(sv[0]);
    struct frame_reader rd;
    struct frame_msg m = {0};
    frame_reader_init(&rd, FRAME_UP);
    assert_int_equal(frame_recv(sv[1], &rd, &m, 30000), 0);
    assert_int_equal(m.type, FRAME_RESULT);
    assert_int_equal(m.len, len);
    assert_memory_equal(m.data, big, len);
    frame_msg_clear(&m);
    assert_int_equal(frame_recv(sv[1], &rd, &m, 30000), 0);
    assert_int_equal(m.type, FRAME_OUTPUT_ALL);
    assert_int_equal(m.len, 4 + 7);
    frame_msg_clear(&m);
    assert_int_equal(frame_recv(sv[1], &rd, &m, 30000), -EPIPE);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(big);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_names_every_type_once),
        cmocka_unit_test(test_bounds_agree_with_the_settings),
        cmocka_unit_test(test_every_type_is_held_to_its_bounds),
        cmocka_unit_test(test_a_sender_refuses_what_the_receiver_would),
        cmocka_unit_test(test_unknown_types_are_refused),
        cmocka_unit_test(test_an_oversized_length_is_refused_at_once),
        cmocka_unit_test(test_run_round_trip),
        cmocka_unit_test(test_truncated_frames),
        cmocka_unit_test(test_partial_reads_on_a_nonblocking_socket),
        cmocka_unit_test(test_payload_kinds),
        cmocka_unit_test(test_pairs_and_empty_messages_round_trip),
        cmocka_unit_test(test_a_large_result_crosses_nonblocking_sockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

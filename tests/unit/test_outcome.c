/* Unit tests for src/worker/outcome.c: the status, error type and message
 * of every way a job's run can end, from its facts. The messages are
 * written out here as the executor reported them before the decision had a
 * module of its own (they are what users read and docs/strategies.md
 * shows); the order in which the ways are tried is checked pair by pair. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "worker/outcome.h"

/* The limits of every row unless it names its own. */
#define TIMEOUT_S 12.0
#define MEMORY_MB 512
#define MAX_OUTPUT 1048576
#define MAX_RESULT 16777216
#define MAX_DEPTH 256
#define MAX_VALUES 4000000
#define MAX_TMP 134217728
#define MAX_ENTRIES 100000

/* A row's facts, shorter: how the process ended, what the header said. */
#define KILLED_BY(sig) .signal = (sig), .exit_code = -1
#define NO_HEADER .header_check = JSONV_SYNTAX, .header_status = -1
#define SAYS(st) .header_named = true, .header_status = QUEUE_STATUS_##st
#define SAYS_SUCCEEDED(check) SAYS(SUCCEEDED), .result_check = (check)

/* Fills the limits a row left at 0. */
static struct outcome_facts with_limits(struct outcome_facts f)
{
    if (f.timeout_s == 0)
        f.timeout_s = TIMEOUT_S;
    if (f.memory_mb == 0)
        f.memory_mb = MEMORY_MB;
    if (f.max_output == 0)
        f.max_output = MAX_OUTPUT;
    if (f.max_result == 0)
        f.max_result = MAX_RESULT;
    if (f.result_limits.max_depth == 0)
        f.result_limits = (struct jsonv_limits){MAX_DEPTH, MAX_VALUES};
    if (f.max_tmp == 0)
        f.max_tmp = MAX_TMP;
    if (f.max_tmp_entries == 0)
        f.max_tmp_entries = MAX_ENTRIES;
    return f;
}

static void expect(const char *what, const struct outcome_facts *f, enum outcome_reason reason,
                   const char *status, const char *type, const char *message)
{
    struct outcome o;
    outcome_decide(f, &o);
    if (o.reason != reason || strcmp(queue_status_name(o.status), status) ||
        strcmp(o.error_type ? o.error_type : "-", type) || strcmp(o.message, message))
        fail_msg("%s: got %s %s %s \"%s\", want %s %s %s \"%s\"", what,
                 outcome_reason_name(o.reason), queue_status_name(o.status),
                 o.error_type ? o.error_type : "-", o.message, outcome_reason_name(reason), status,
                 type, message);
}

/* What a row wants: the way, the status and the error type. */
#define WANT(reason, status, type) OUTCOME_##reason, status, type

struct row {
    const char *what;
    struct outcome_facts f;
    enum outcome_reason reason;
    const char *status, *type, *message; /* type "-": no error type of ours */
};

static const struct row rows[] = {
    /* How the process ended, with nothing else to say. */
    {"exit 0, no header",
     {NO_HEADER},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 0 without a result"},
    {"exit 1, no header",
     {.exit_code = 1, NO_HEADER},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 1 without a result"},
    {"exit 127 (no interpreter)",
     {.exit_code = 127, NO_HEADER},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 127 without a result"},
    {"neither exited nor signalled",
     {.exit_code = -1, NO_HEADER},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code -1 without a result"},
    {"a header that is not JSON",
     {.exit_code = 0, .header_check = JSONV_SYNTAX},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 0 without a result"},
    {"a JSON header with no status string",
     {.exit_code = 2},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 2 without a result"},
    {"the status of a header that is not JSON is not read",
     {.exit_code = 2, .header_check = JSONV_SYNTAX, SAYS(SUCCEEDED)},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 2 without a result"},
    {"SIGSEGV",
     {KILLED_BY(SIGSEGV), NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 11 (SEGV)"},
    {"SIGABRT",
     {KILLED_BY(SIGABRT), NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 6 (ABRT)"},
    {"a signal without a name",
     {KILLED_BY(34), NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 34 (?)"},
    {"SIGTERM, much CPU: not the CPU limit",
     {KILLED_BY(SIGTERM), .cpu_ms = 60000, NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 15 (TERM)"},
    {"exit 0, much CPU: not the CPU limit",
     {.cpu_ms = 60000, NO_HEADER},
     WANT(EXIT, "crashed", "Crashed"),
     "the job's process exited with code 0 without a result"},

    /* The CPU-time limit: SIGXCPU at any CPU time; a SIGKILL no one else
     * sent from three quarters of the soft limit (timeout_s 12: 13 s). */
    {"SIGXCPU",
     {KILLED_BY(SIGXCPU), NO_HEADER},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},
    {"SIGKILL at 3/4 of 13 s",
     {KILLED_BY(SIGKILL), .cpu_ms = 9750, NO_HEADER},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},
    {"SIGKILL just short of 3/4 of 13 s",
     {KILLED_BY(SIGKILL), .cpu_ms = 9749, NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 9 (KILL)"},
    {"SIGKILL at the hard limit, 14 s",
     {KILLED_BY(SIGKILL), .cpu_ms = 14000, NO_HEADER},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},
    {"SIGKILL with no CPU time",
     {KILLED_BY(SIGKILL), NO_HEADER},
     WANT(SIGNAL, "crashed", "Crashed"),
     "the job's process was killed by signal 9 (KILL)"},
    {"timeout_s 2.5: soft limit 4 s, 3 s is 3/4",
     {KILLED_BY(SIGKILL), .cpu_ms = 3000, .timeout_s = 2.5, NO_HEADER},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},
    {"timeout_s 2: soft limit 3 s in both modes",
     {KILLED_BY(SIGKILL), .cpu_ms = 2250, .timeout_s = 2, NO_HEADER},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},
    {"SIGXCPU after the header said succeeded",
     {KILLED_BY(SIGXCPU), SAYS_SUCCEEDED(JSONV_OK)},
     WANT(CPU, "cpu_exceeded", "CpuExceeded"),
     "the job used up its CPU time limit"},

    /* What the executor did: the kill it sent explains the signal. */
    {"cancelled",
     {KILLED_BY(SIGKILL), .cancelled = true, NO_HEADER},
     WANT(CANCELLED, "cancelled", "Cancelled"),
     "the job was cancelled while it ran and was killed"},
    {"timed out",
     {KILLED_BY(SIGKILL), .cpu_ms = 60000, .timed_out = true, NO_HEADER},
     WANT(TIMEOUT, "timeout", "Timeout"),
     "the job ran past its timeout of 12 s and was killed"},
    {"timed out, fractional",
     {KILLED_BY(SIGKILL), .timeout_s = 0.25, .timed_out = true},
     WANT(TIMEOUT, "timeout", "Timeout"),
     "the job ran past its timeout of 0.25 s and was killed"},
    {"stdout and stderr over the cap",
     {KILLED_BY(SIGKILL), .output_over = true, NO_HEADER},
     WANT(OUTPUT, "output_exceeded", "OutputExceeded"),
     "the job wrote more than 1048576 bytes to stdout and stderr (STRATQ_MAX_OUTPUT) and was "
     "killed"},
    {"result over the cap on fd 4",
     {KILLED_BY(SIGKILL), .result_over = true, NO_HEADER},
     WANT(RESULT_BYTES, "output_exceeded", "ResultTooLarge"),
     "the job's result is larger than 16777216 bytes (STRATQ_MAX_RESULT)"},
    {"directory counted over its bytes",
     {KILLED_BY(SIGKILL), .tmp_exceeded = true, .max_tmp = 1000, NO_HEADER},
     WANT(TMP_BYTES, "output_exceeded", "TmpExceeded"),
     "the job's temporary files went past its directory's 1000 bytes (STRATQ_JOB_MAX_TMP) and "
     "it was killed"},
    {"directory counted over its entries",
     {KILLED_BY(SIGKILL), .tmp_exceeded = true, .tmp_too_many = true, NO_HEADER},
     WANT(TMP_ENTRIES, "output_exceeded", "TmpExceeded"),
     "the job made more than 100000 files in its directory and was killed"},
    {"directory over the cap after a success",
     {.tmp_exceeded = true, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(TMP_BYTES, "output_exceeded", "TmpExceeded"),
     "the job's temporary files went past its directory's 134217728 bytes (STRATQ_JOB_MAX_TMP) "
     "and it was killed"},

    /* Full filesystems and the cgroup: unless the header says succeeded. */
    {"directory's tmpfs full, job failed",
     {.exit_code = 0, .tmp_full = true, SAYS(FAILED)},
     WANT(TMP_FULL, "output_exceeded", "TmpExceeded"),
     "the job's temporary files filled its directory's 134217728 bytes (STRATQ_JOB_MAX_TMP)"},
    {"directory's tmpfs full, no header",
     {.exit_code = 1, .tmp_full = true, NO_HEADER},
     WANT(TMP_FULL, "output_exceeded", "TmpExceeded"),
     "the job's temporary files filled its directory's 134217728 bytes (STRATQ_JOB_MAX_TMP)"},
    {"directory's tmpfs full, too many entries counted before",
     {.tmp_full = true, .tmp_too_many = true, NO_HEADER},
     WANT(TMP_ENTRIES, "output_exceeded", "TmpExceeded"),
     "the job made more than 100000 files in its directory and was killed"},
    {"directory's tmpfs full, job succeeded",
     {.tmp_full = true, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(SUCCEEDED, "succeeded", "-"),
     ""},
    {"cgroup OOM kill",
     {KILLED_BY(SIGKILL), .oom = true, NO_HEADER},
     WANT(CGROUP_OOM, "memory_exceeded", "MemoryExceeded"),
     "the job's processes together used more than its memory limit of 512 MiB and were killed"},
    {"cgroup OOM kill of a child, job failed",
     {.exit_code = 0, .oom = true, SAYS(FAILED)},
     WANT(CGROUP_OOM, "memory_exceeded", "MemoryExceeded"),
     "the job's processes together used more than its memory limit of 512 MiB and were killed"},
    {"cgroup OOM kill of a child, job succeeded",
     {.oom = true, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(SUCCEEDED, "succeeded", "-"),
     ""},
    {"/dev/shm full",
     {.exit_code = 0, .shm_full = true, .memory_mb = 64, SAYS(FAILED)},
     WANT(SHM_FULL, "memory_exceeded", "MemoryExceeded"),
     "the job's shared memory (/dev/shm) filled its memory limit of 64 MiB"},
    {"/dev/shm full and an OOM kill",
     {KILLED_BY(SIGKILL), .shm_full = true, .oom = true},
     WANT(CGROUP_OOM, "memory_exceeded", "MemoryExceeded"),
     "the job's processes together used more than its memory limit of 512 MiB and were killed"},
    {"/dev/shm full, job succeeded",
     {.shm_full = true, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(SUCCEEDED, "succeeded", "-"),
     ""},
    {"/dev/shm full, MemoryError",
     {.shm_full = true, SAYS(MEMORY_EXCEEDED)},
     WANT(SHM_FULL, "memory_exceeded", "MemoryExceeded"),
     "the job's shared memory (/dev/shm) filled its memory limit of 512 MiB"},

    /* The header. */
    {"header too deep",
     {.header_check = JSONV_TOO_DEEP},
     WANT(HEADER_SIZE, "output_exceeded", "ResultTooLarge"),
     "the job's result header holds more than 64 values or nests deeper than 8 levels"},
    {"header with too many values",
     {KILLED_BY(SIGSEGV), .header_check = JSONV_TOO_MANY},
     WANT(HEADER_SIZE, "output_exceeded", "ResultTooLarge"),
     "the job's result header holds more than 64 values or nests deeper than 8 levels"},
    {"header says output_exceeded",
     {SAYS(OUTPUT_EXCEEDED)},
     WANT(RESULT_BYTES, "output_exceeded", "ResultTooLarge"),
     "the job's result is larger than 16777216 bytes (STRATQ_MAX_RESULT)"},
    {"succeeded", {SAYS_SUCCEEDED(JSONV_OK)}, OUTCOME_SUCCEEDED, "succeeded", "-", ""},
    {"succeeded, then exit 1",
     {.exit_code = 1, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(SUCCEEDED, "succeeded", "-"),
     ""},
    {"succeeded, then SIGKILL below 3/4",
     {KILLED_BY(SIGKILL), .cpu_ms = 100, SAYS_SUCCEEDED(JSONV_OK)},
     WANT(SUCCEEDED, "succeeded", "-"),
     ""},
    {"succeeded, result not JSON",
     {SAYS_SUCCEEDED(JSONV_SYNTAX), .result_at = 7, .result_len = 9},
     WANT(RESULT_NOT_JSON, "crashed", "HarnessError"),
     "the job's result is not JSON (byte 7 of 9)"},
    {"succeeded, result too deep",
     {SAYS_SUCCEEDED(JSONV_TOO_DEEP)},
     WANT(RESULT_DEPTH, "output_exceeded", "ResultTooLarge"),
     "the job's result nests deeper than 256 levels (STRATQ_MAX_RESULT_DEPTH)"},
    {"succeeded, result with too many values",
     {SAYS_SUCCEEDED(JSONV_TOO_MANY), .result_limits = {10, 20}},
     WANT(RESULT_VALUES, "output_exceeded", "ResultTooLarge"),
     "the job's result holds more than 20 values (STRATQ_MAX_RESULT_VALUES)"},
    {"failed, with its error",
     {SAYS(FAILED), .header_error = true},
     WANT(FAILED, "failed", "-"),
     ""},
    {"failed, exit 3",
     {.exit_code = 3, SAYS(FAILED), .header_error = true},
     WANT(FAILED, "failed", "-"),
     ""},
    {"failed, no error object",
     {SAYS(FAILED)},
     WANT(FAILED_BARE, "failed", "Error"),
     "the job failed"},
    {"MemoryError",
     {SAYS(MEMORY_EXCEEDED), .memory_mb = 100},
     WANT(MEMORY_ERROR, "memory_exceeded", "MemoryError"),
     "the job ran out of memory (memory_mb=100)"},
    {"header says a status the harness never writes",
     {SAYS(TIMEOUT)},
     WANT(HEADER_UNKNOWN, "crashed", "HarnessError"),
     "the harness reported an unknown status"},
    {"header says queued",
     {KILLED_BY(SIGSEGV), SAYS(QUEUED)},
     WANT(HEADER_UNKNOWN, "crashed", "HarnessError"),
     "the harness reported an unknown status"},
    {"header says a status no one knows",
     {.header_named = true, .header_status = -1},
     WANT(HEADER_UNKNOWN, "crashed", "HarnessError"),
     "the harness reported an unknown status"},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct outcome_facts f = with_limits(rows[i].f);
        expect(rows[i].what, &f, rows[i].reason, rows[i].status, rows[i].type, rows[i].message);
    }
}

/* What the reply takes from the header's error: the whole object of a
 * failure that has one, the traceback of a MemoryError; nothing else. */
static void test_from_header(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct outcome_facts f = with_limits(rows[i].f);
        struct outcome o;
        outcome_decide(&f, &o);
        unsigned want = o.reason == OUTCOME_FAILED         ? OUTCOME_FROM_HEADER_ERROR
                        : o.reason == OUTCOME_MEMORY_ERROR ? OUTCOME_FROM_HEADER_TRACEBACK
                                                           : 0;
        assert_int_equal(o.from_header, want);
        /* An error of some kind for all but a success. */
        assert_int_equal(o.error_type || o.from_header, o.status != QUEUE_STATUS_SUCCEEDED);
    }
}

/* The CPU-time limit: one formula for both modes, and the SIGKILL rule at
 * three quarters of its soft limit. */
static void test_cpu_limit(void **state)
{
    static const struct {
        double timeout_s;
        long long soft, hard;
    } limits[] = {
        {0.001, 2, 3}, {0.5, 2, 3},      {1, 2, 3},       {1.5, 3, 4},        {2, 3, 4},
        {12, 13, 14},  {12.001, 14, 15}, {300, 301, 302}, {3600, 3601, 3602}, {86400, 86401, 86402},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        struct rlimit rl = outcome_cpu_rlimit(limits[i].timeout_s);
        assert_int_equal(rl.rlim_cur, limits[i].soft);
        assert_int_equal(rl.rlim_max, limits[i].hard);
        struct outcome_facts f = with_limits((struct outcome_facts){
            KILLED_BY(SIGKILL), .timeout_s = limits[i].timeout_s, NO_HEADER});
        struct outcome o;
        f.cpu_ms = limits[i].soft * 750 - 1;
        outcome_decide(&f, &o);
        assert_int_equal(o.reason, OUTCOME_SIGNAL);
        f.cpu_ms = limits[i].soft * 750;
        outcome_decide(&f, &o);
        assert_int_equal(o.reason, OUTCOME_CPU);
        /* SIGXCPU is the limit whatever the CPU time. */
        f.signal = SIGXCPU;
        f.cpu_ms = 0;
        outcome_decide(&f, &o);
        assert_int_equal(o.reason, OUTCOME_CPU);
    }
}

/* Each way, made to apply on top of other facts. */
static void make(enum outcome_reason r, struct outcome_facts *f)
{
    switch (r) {
    case OUTCOME_CANCELLED:
        f->cancelled = true;
        break;
    case OUTCOME_TIMEOUT:
        f->timed_out = true;
        break;
    case OUTCOME_OUTPUT:
        f->output_over = true;
        break;
    case OUTCOME_RESULT_BYTES:
        f->result_over = true;
        break;
    case OUTCOME_TMP_ENTRIES:
        f->tmp_too_many = true;
        /* fall through */
    case OUTCOME_TMP_BYTES:
        f->tmp_exceeded = true;
        break;
    case OUTCOME_TMP_FULL:
        f->tmp_full = true;
        break;
    case OUTCOME_HEADER_SIZE:
        f->header_check = JSONV_TOO_MANY;
        break;
    case OUTCOME_CGROUP_OOM:
        f->oom = true;
        break;
    case OUTCOME_SHM_FULL:
        f->shm_full = true;
        break;
    case OUTCOME_CPU:
        f->signal = SIGXCPU;
        f->exit_code = -1;
        break;
    case OUTCOME_SUCCEEDED:
    case OUTCOME_RESULT_NOT_JSON:
    case OUTCOME_RESULT_DEPTH:
    case OUTCOME_RESULT_VALUES:
        f->header_check = JSONV_OK;
        f->header_named = true;
        f->header_status = QUEUE_STATUS_SUCCEEDED;
        f->result_check = r == OUTCOME_SUCCEEDED         ? JSONV_OK
                          : r == OUTCOME_RESULT_NOT_JSON ? JSONV_SYNTAX
                          : r == OUTCOME_RESULT_DEPTH    ? JSONV_TOO_DEEP
                                                         : JSONV_TOO_MANY;
        break;
    case OUTCOME_FAILED:
    case OUTCOME_FAILED_BARE:
    case OUTCOME_MEMORY_ERROR:
    case OUTCOME_HEADER_UNKNOWN:
        f->header_check = JSONV_OK;
        f->header_named = true;
        f->header_status = r == OUTCOME_MEMORY_ERROR     ? QUEUE_STATUS_MEMORY_EXCEEDED
                           : r == OUTCOME_HEADER_UNKNOWN ? -1
                                                         : QUEUE_STATUS_FAILED;
        f->header_error = r == OUTCOME_FAILED;
        break;
    case OUTCOME_SIGNAL:
        f->signal = SIGSEGV;
        f->exit_code = -1;
        break;
    case OUTCOME_EXIT:
    default:
        f->signal = 0;
        f->exit_code = 3;
        break;
    }
}

/* Whether way a, applied on top of way b, does not win: a full filesystem
 * or memory limit does not overrule a header that says succeeded. */
static bool yields(enum outcome_reason a, enum outcome_reason b)
{
    bool a_full = a == OUTCOME_TMP_FULL || a == OUTCOME_CGROUP_OOM || a == OUTCOME_SHM_FULL;
    bool b_succeeded = b == OUTCOME_SUCCEEDED || b == OUTCOME_RESULT_NOT_JSON ||
                       b == OUTCOME_RESULT_DEPTH || b == OUTCOME_RESULT_VALUES;
    return a_full && b_succeeded;
}

/* Every way beats every way after it in OUTCOME_REASONS: a run with the
 * facts of both ends the earlier way. (Where the two set the same fact, the
 * header's status or how the process ended, the earlier one's stands.) */
static void test_order(void **state)
{
    (void)state;
    for (int b = 0; b < OUTCOME__COUNT; b++) {
        struct outcome_facts alone = with_limits((struct outcome_facts){NO_HEADER});
        struct outcome o;
        make(b, &alone);
        outcome_decide(&alone, &o);
        if (o.reason != (enum outcome_reason)b)
            fail_msg("%s alone ends %s", outcome_reason_name(b), outcome_reason_name(o.reason));
        for (int a = 0; a < b; a++) {
            struct outcome_facts f = alone;
            make(a, &f);
            outcome_decide(&f, &o);
            int want = yields(a, b) ? b : a;
            if ((int)o.reason != want)
                fail_msg("%s on top of %s ends %s, want %s", outcome_reason_name(a),
                         outcome_reason_name(b), outcome_reason_name(o.reason),
                         outcome_reason_name(want));
        }
    }
}

/* The table: a name for each way, a status the executor may report (never
 * one the worker or the API sets), and an error type for all but a
 * success and a failure that reports its own. */
static void test_table(void **state)
{
    (void)state;
    for (int r = 0; r < OUTCOME__COUNT; r++) {
        struct outcome_facts f = with_limits((struct outcome_facts){NO_HEADER});
        struct outcome o;
        make(r, &f);
        outcome_decide(&f, &o);
        assert_string_not_equal(outcome_reason_name(r), "?");
        assert_true(queue_status_has(o.status, QUEUE_TERMINAL));
        assert_int_not_equal(o.status, QUEUE_STATUS_DEAD);
        assert_int_equal(o.error_type == NULL, r == OUTCOME_SUCCEEDED || r == OUTCOME_FAILED);
        assert_int_equal(o.message[0] == '\0', o.error_type == NULL);
    }
    assert_string_equal(outcome_reason_name(OUTCOME__COUNT), "?");
    assert_string_equal(outcome_reason_name(-1), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),      cmocka_unit_test(test_from_header),
        cmocka_unit_test(test_cpu_limit), cmocka_unit_test(test_order),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* How a job ended: the status, error type and message the executor reports,
 * decided from plain facts about the job's run (how its process ended, what
 * the executor saw and did while it ran, what the harness's header line
 * said), with no I/O, so that every combination can be tested alone
 * (tests/unit/test_outcome.c). The executor gathers the facts (executor.c,
 * build_done) and turns the outcome into its reply.
 *
 * Also here, because the decision depends on it: the job's CPU-time limit,
 * one formula for both modes (the cold child sets it before its exec, the
 * warm child from its request). */
#ifndef STRATQ_WORKER_OUTCOME_H
#define STRATQ_WORKER_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

#include "../common/jsonv.h"
#include "../queue/status.h"

/* The job's RLIMIT_CPU: the soft limit (SIGXCPU) the whole second after
 * timeout_s plus one, so that a job that uses CPU no faster than the wall
 * clock reaches its timeout first; the hard limit (SIGKILL) a second
 * later. */
struct rlimit outcome_cpu_rlimit(double timeout_s);

/* The caps within which the executor parses the result header. The
 * harness's header, {"status": ..., "error": {"type", "message",
 * "traceback"}}, holds 6 values at most; one over these is not its. */
extern const struct jsonv_limits outcome_header_limits;

/* Everything the decision looks at. Zeroed, it is a process that exited
 * with code 0 and wrote no header. */
struct outcome_facts {
    /* How the job's process ended (wait4): the signal that killed it (0:
     * none), or its exit code (-1: it did not exit); its CPU time, user and
     * system. */
    int signal;
    int exit_code;
    long long cpu_ms;

    /* Its limits: timeout_s, memory_mb, STRATQ_MAX_OUTPUT and
     * STRATQ_MAX_RESULT (bytes), STRATQ_MAX_RESULT_DEPTH and _VALUES,
     * STRATQ_JOB_MAX_TMP (bytes) and how many entries its directory may
     * hold. */
    double timeout_s;
    long long memory_mb;
    size_t max_output, max_result;
    struct jsonv_limits result_limits;
    long long max_tmp;
    int max_tmp_entries;

    /* What the executor did: killed it on a cancel request, at its
     * deadline, for printing more than max_output, for a result over
     * max_result (fd 4), for a directory over max_tmp (tmp_too_many: over
     * max_tmp_entries). */
    bool cancelled;
    bool timed_out;
    bool output_over;
    bool result_over;
    bool tmp_exceeded;
    bool tmp_too_many;
    /* What the executor found after it ended: its directory's tmpfs was
     * full (SANDBOX_FULL_DIR), its /dev/shm was full (SANDBOX_FULL_SHM),
     * the kernel's OOM killer struck its cgroup. */
    bool tmp_full;
    bool shm_full;
    bool oom;

    /* The header line on fd 4 (written by the harness, or by the job's own
     * code): jsonv_check() of it within outcome_header_limits (JSONV_SYNTAX
     * when there is no header line); whether it has a string "status";
     * that status (queue_status_parse(): -1 when unknown); whether its
     * "error" is an object. */
    int header_check;
    bool header_named;
    int header_status;
    bool header_error;

    /* A success's result (the text after the header), looked at only when
     * the header says succeeded: jsonv_check() of it within result_limits,
     * where it stopped being valid, and its length. */
    int result_check;
    size_t result_at;
    size_t result_len;
};

/* Each way a job can end, as X(ID, status, error type, flags); the order
 * is the order in which the decision tries them. An error type of NULL:
 * no error. The flags say what of the header's error the reply takes. */
#define OUTCOME_FROM_HEADER_ERROR 1u     /* the header's error object, as it is */
#define OUTCOME_FROM_HEADER_TRACEBACK 2u /* the header's error's traceback, a string */
#define OUTCOME_REASONS(X)                                                                         \
    X(CANCELLED, CANCELLED, "Cancelled", 0)                                                        \
    X(TIMEOUT, TIMEOUT, "Timeout", 0)                                                              \
    X(OUTPUT, OUTPUT_EXCEEDED, "OutputExceeded", 0)                                                \
    X(RESULT_BYTES, OUTPUT_EXCEEDED, "ResultTooLarge", 0)                                          \
    X(TMP_ENTRIES, OUTPUT_EXCEEDED, "TmpExceeded", 0)                                              \
    X(TMP_BYTES, OUTPUT_EXCEEDED, "TmpExceeded", 0)                                                \
    X(TMP_FULL, OUTPUT_EXCEEDED, "TmpExceeded", 0)                                                 \
    X(HEADER_SIZE, OUTPUT_EXCEEDED, "ResultTooLarge", 0)                                           \
    X(CGROUP_OOM, MEMORY_EXCEEDED, "MemoryExceeded", 0)                                            \
    X(SHM_FULL, MEMORY_EXCEEDED, "MemoryExceeded", 0)                                              \
    X(CPU, CPU_EXCEEDED, "CpuExceeded", 0)                                                         \
    X(SUCCEEDED, SUCCEEDED, NULL, 0)                                                               \
    X(RESULT_NOT_JSON, CRASHED, "HarnessError", 0)                                                 \
    X(RESULT_DEPTH, OUTPUT_EXCEEDED, "ResultTooLarge", 0)                                          \
    X(RESULT_VALUES, OUTPUT_EXCEEDED, "ResultTooLarge", 0)                                         \
    X(FAILED, FAILED, NULL, OUTCOME_FROM_HEADER_ERROR)                                             \
    X(FAILED_BARE, FAILED, "Error", 0)                                                             \
    X(MEMORY_ERROR, MEMORY_EXCEEDED, "MemoryError", OUTCOME_FROM_HEADER_TRACEBACK)                 \
    X(HEADER_UNKNOWN, CRASHED, "HarnessError", 0)                                                  \
    X(SIGNAL, CRASHED, "Crashed", 0)                                                               \
    X(EXIT, CRASHED, "Crashed", 0)

enum outcome_reason {
#define X(id, status, type, flags) OUTCOME_##id,
    OUTCOME_REASONS(X)
#undef X
        OUTCOME__COUNT
};

struct outcome {
    enum outcome_reason reason;
    enum queue_status status;
    /* The error's type and message; NULL and "" when there is no error of
     * ours (a success, or a failure that reports the header's error). */
    const char *error_type;
    char message[256];
    unsigned from_header; /* OUTCOME_FROM_HEADER_* */
};

/* Decides how the job described by facts ended. Never fails. */
void outcome_decide(const struct outcome_facts *facts, struct outcome *ret_outcome);

/* The reason's name ("CPU", "RESULT_NOT_JSON"), for tests and log lines. */
const char *outcome_reason_name(enum outcome_reason r);

#endif

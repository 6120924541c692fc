/* How a job ended, from the facts of its run (outcome.h). */
#define _GNU_SOURCE
#include "outcome.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const struct jsonv_limits outcome_header_limits = {.max_depth = 8, .max_values = 64};

static const struct {
    const char *name;
    enum queue_status status;
    const char *type;
    unsigned from_header;
} reasons[OUTCOME__COUNT] = {
#define X(id, st, type, flags) [OUTCOME_##id] = {#id, QUEUE_STATUS_##st, type, flags},
    OUTCOME_REASONS(X)
#undef X
};

struct rlimit outcome_cpu_rlimit(double timeout_s)
{
    rlim_t soft = (rlim_t)ceil(timeout_s) + 1;
    return (struct rlimit){.rlim_cur = soft, .rlim_max = soft + 1};
}

const char *outcome_reason_name(enum outcome_reason r)
{
    return (unsigned)r < OUTCOME__COUNT ? reasons[r].name : "?";
}

/* Whether the process ended at its CPU-time limit. SIGXCPU is the soft
 * limit. The first process of a pid namespace ignores SIGXCPU; the kernel
 * then kills it at the hard limit. The kernel checks that limit against
 * tick-sampled CPU time, which on a busy machine runs ahead of the precise
 * time wait4() reports (seen 1-3 s ahead with 4 threads on 2 shared cores):
 * a SIGKILL that no one else sent (not a timeout, cancel, OOM or output
 * kill, all decided before this) after three quarters of the soft limit is
 * that limit. */
static bool cpu_limit_hit(const struct outcome_facts *f)
{
    long long soft_ms = (long long)outcome_cpu_rlimit(f->timeout_s).rlim_cur * 1000;
    return f->signal == SIGXCPU || (f->signal == SIGKILL && f->cpu_ms >= soft_ms * 3 / 4);
}

/* What the header says of a success's result, checked once by the
 * executor within the caps (its text is then stored as the job wrote it). */
static enum outcome_reason result_reason(const struct outcome_facts *f)
{
    switch (f->result_check) {
    case JSONV_OK:
        return OUTCOME_SUCCEEDED;
    case JSONV_SYNTAX: /* not what the harness writes: the job wrote it itself */
        return OUTCOME_RESULT_NOT_JSON;
    case JSONV_TOO_DEEP:
        return OUTCOME_RESULT_DEPTH;
    default:
        return OUTCOME_RESULT_VALUES;
    }
}

/* Which way the job ended: the first that applies, in order. What the
 * executor did to the job comes first (it explains whatever followed),
 * then the limits the kernel or the job's filesystems enforced, then what
 * the header says, then how the process ended. A full filesystem or
 * memory limit does not overrule a header that says succeeded: the job
 * got past it. */
static enum outcome_reason reason_of(const struct outcome_facts *f)
{
    bool named = f->header_check == JSONV_OK && f->header_named;
    int hs = named ? f->header_status : -1;
    bool succeeded = hs == QUEUE_STATUS_SUCCEEDED;

    if (f->cancelled)
        return OUTCOME_CANCELLED;
    if (f->timed_out)
        return OUTCOME_TIMEOUT;
    if (f->output_over)
        return OUTCOME_OUTPUT;
    /* Cut off here, or (the same limit) not written by the harness. */
    if (f->result_over || hs == QUEUE_STATUS_OUTPUT_EXCEEDED)
        return OUTCOME_RESULT_BYTES;
    /* Counted past its limit and killed; or a write past it failed
     * (ENOSPC), and the job with it. */
    if (f->tmp_exceeded || (f->tmp_full && !succeeded))
        return f->tmp_too_many   ? OUTCOME_TMP_ENTRIES
               : f->tmp_exceeded ? OUTCOME_TMP_BYTES
                                 : OUTCOME_TMP_FULL;
    /* Not the harness's: its header holds a handful of values. */
    if (f->header_check == JSONV_TOO_DEEP || f->header_check == JSONV_TOO_MANY)
        return OUTCOME_HEADER_SIZE;
    if ((f->oom || f->shm_full) && !succeeded)
        return f->oom ? OUTCOME_CGROUP_OOM : OUTCOME_SHM_FULL;
    if (cpu_limit_hit(f))
        return OUTCOME_CPU;
    if (named) {
        if (succeeded)
            return result_reason(f);
        if (hs == QUEUE_STATUS_FAILED)
            return f->header_error ? OUTCOME_FAILED : OUTCOME_FAILED_BARE;
        /* Python's MemoryError under the job's address-space limit, which
         * the executor cannot see for itself. */
        if (hs == QUEUE_STATUS_MEMORY_EXCEEDED)
            return OUTCOME_MEMORY_ERROR;
        return OUTCOME_HEADER_UNKNOWN;
    }
    return f->signal ? OUTCOME_SIGNAL : OUTCOME_EXIT;
}

/* The message of an error of reason r that a limit on the job's result or
 * its directory ended, into buf; false for another reason. */
static bool describe_limit(const struct outcome_facts *f, enum outcome_reason r, char *buf,
                           size_t len)
{
    switch (r) {
#define SAY(...) snprintf(buf, len, __VA_ARGS__)
    case OUTCOME_RESULT_BYTES:
        SAY("the job's result is larger than %zu bytes (STRATQ_MAX_RESULT)", f->max_result);
        break;
    case OUTCOME_RESULT_NOT_JSON:
        SAY("the job's result is not JSON (byte %zu of %zu)", f->result_at, f->result_len);
        break;
    case OUTCOME_RESULT_DEPTH:
        SAY("the job's result nests deeper than %zu levels (STRATQ_MAX_RESULT_DEPTH)",
            f->result_limits.max_depth);
        break;
    case OUTCOME_RESULT_VALUES:
        SAY("the job's result holds more than %zu values (STRATQ_MAX_RESULT_VALUES)",
            f->result_limits.max_values);
        break;
    case OUTCOME_HEADER_SIZE:
        SAY("the job's result header holds more than %zu values or nests deeper than %zu levels",
            outcome_header_limits.max_values, outcome_header_limits.max_depth);
        break;
    case OUTCOME_TMP_ENTRIES:
        SAY("the job made more than %d files in its directory and was killed", f->max_tmp_entries);
        break;
    case OUTCOME_TMP_BYTES:
        SAY("the job's temporary files went past its directory's %lld bytes (STRATQ_JOB_MAX_TMP) "
            "and it was killed",
            f->max_tmp);
        break;
    case OUTCOME_TMP_FULL:
        SAY("the job's temporary files filled its directory's %lld bytes (STRATQ_JOB_MAX_TMP)",
            f->max_tmp);
        break;
    default:
        return false;
#undef SAY
    }
    return true;
}

/* The message of the error of reason r, into buf. */
static void describe(const struct outcome_facts *f, enum outcome_reason r, char *buf, size_t len)
{
    const char *sig = f->signal ? sigabbrev_np(f->signal) : NULL;

    if (describe_limit(f, r, buf, len))
        return;
    switch (r) {
#define SAY(...) snprintf(buf, len, __VA_ARGS__)
    case OUTCOME_CANCELLED:
        SAY("the job was cancelled while it ran and was killed");
        break;
    case OUTCOME_TIMEOUT:
        SAY("the job ran past its timeout of %g s and was killed", f->timeout_s);
        break;
    case OUTCOME_OUTPUT:
        SAY("the job wrote more than %zu bytes to stdout and stderr (STRATQ_MAX_OUTPUT) "
            "and was killed",
            f->max_output);
        break;
    case OUTCOME_CGROUP_OOM:
        SAY("the job's processes together used more than its memory limit of %lld MiB and were "
            "killed",
            f->memory_mb);
        break;
    case OUTCOME_SHM_FULL:
        SAY("the job's shared memory (/dev/shm) filled its memory limit of %lld MiB", f->memory_mb);
        break;
    case OUTCOME_CPU:
        SAY("the job used up its CPU time limit");
        break;
    case OUTCOME_FAILED_BARE:
        SAY("the job failed");
        break;
    case OUTCOME_MEMORY_ERROR:
        /* The header is written from inside the job's process, where the
         * job's code can write one too: the status stands (it is about the
         * job alone), but what it says is ours. */
        SAY("the job ran out of memory (memory_mb=%lld)", f->memory_mb);
        break;
    case OUTCOME_HEADER_UNKNOWN:
        SAY("the harness reported an unknown status");
        break;
    case OUTCOME_SIGNAL:
        SAY("the job's process was killed by signal %d (%s)", f->signal, sig ? sig : "?");
        break;
    case OUTCOME_EXIT:
        SAY("the job's process exited with code %d without a result", f->exit_code);
        break;
    default: /* no error of ours: a success, or the header's own error */
        buf[0] = '\0';
        break;
#undef SAY
    }
}

void outcome_decide(const struct outcome_facts *facts, struct outcome *ret_outcome)
{
    enum outcome_reason r = reason_of(facts);
    *ret_outcome = (struct outcome){
        .reason = r,
        .status = reasons[r].status,
        .error_type = reasons[r].type,
        .from_header = reasons[r].from_header,
    };
    describe(facts, r, ret_outcome->message, sizeof(ret_outcome->message));
}

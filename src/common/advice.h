/* The worker scaling guide's thresholds and its advice, in one place:
 * `stratq monitor` (with or without the environment figures that
 * scripts/monitor-workers.sh gathers) decides with these functions, and so
 * can anything else that knows the numbers (the API's /v1/queue, say).
 * Pure functions: no I/O, no clock, no allocation but the JSON they fill. */
#ifndef STRATQ_ADVICE_H
#define STRATQ_ADVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The guide (docs/operations.md, "monitor-workers.sh"): keep 2 to 10
 * workers; scale up when the queue stays above 5, the average wait exceeds
 * 30 s or utilisation exceeds 80%; scale down when the queue stays at 0
 * and utilisation is under 30%. One more worker for every 5 jobs above 5.
 * scripts/scale-workers.sh refuses counts outside the same bounds, and a
 * test keeps its copy equal to these. */
#define ADVICE_MIN_WORKERS 2
#define ADVICE_MAX_WORKERS 10
#define ADVICE_UP_QUEUE 5
#define ADVICE_UP_WAIT_S 30
#define ADVICE_UP_UTIL 80
#define ADVICE_DOWN_UTIL 30
#define ADVICE_JOBS_PER_WORKER 5

/* A number that is not known (a negative count, wait or percentage). */
#define ADVICE_UNKNOWN (-1)

enum advice_action { ADVICE_HOLD, ADVICE_SCALE_UP, ADVICE_SCALE_DOWN };

/* What "utilisation" is measured by. The guide means CPU and memory, which
 * only the environment can measure (docker stats, kubectl top, /proc);
 * without them the share of live workers that are busy, which the API
 * knows everywhere, stands in. */
enum advice_basis {
    ADVICE_BASIS_BUSY,
    ADVICE_BASIS_RESOURCES,
};

/* The numbers the advice is taken from. Unknown numbers are negative. */
struct advice_in {
    /* Queue lengths of the window the guide's "consistently" looks at,
     * the current one first; ADVICE_UNKNOWN for a sample whose queue could
     * not be read. npending 0: not even the current one. */
    const long long *pending;
    size_t npending;
    /* The window's span in seconds, named in the reasons when > 0 (else
     * they count its samples). */
    long long window_s;
    /* Mean wait (start minus creation) of the last wait_jobs succeeded
     * jobs, in seconds. */
    double wait_s;
    long long wait_jobs;
    /* What wait_s is over, as the reason says it ("12 jobs, last 5 min");
     * NULL: the last wait_jobs jobs. */
    const char *wait_over;
    enum advice_basis basis;
    double busy_percent;                /* ADVICE_BASIS_BUSY */
    double cpu_percent, memory_percent; /* ADVICE_BASIS_RESOURCES */
    long long workers;                  /* live workers (or the autoscaler's count) */
    /* The environment of scripts/scale-workers.sh, for the command to run;
     * NULL: no command. */
    const char *env;
    /* The autoscaler (an HPA) that owns the count, or NULL. */
    const char *autoscaler;
    long long autoscaler_min, autoscaler_max;
};

#define ADVICE_MAX_REASONS 4
#define ADVICE_TEXT 512

struct advice {
    enum advice_action action; /* what to do, within the 2-10 bounds */
    enum advice_action wanted; /* what the numbers alone call for */
    long long workers;         /* ADVICE_UNKNOWN when unknown */
    long long suggested;       /* ADVICE_UNKNOWN when workers is */
    size_t nreasons;
    char reasons[ADVICE_MAX_REASONS][ADVICE_TEXT];
    char command[ADVICE_TEXT]; /* "scripts/scale-workers.sh ENV N [--pin]", or "" */
    char note[ADVICE_TEXT];    /* or "" */
};

/* The guide's advice for in. Always succeeds. */
void advice_decide(const struct advice_in *in, struct advice *ret);

/* "hold", "scale_up", "scale_down". */
const char *advice_action_name(enum advice_action a);

/* Sets obj's keys action, wanted, reasons, workers, suggested_workers,
 * command and note (unknown numbers and empty texts as null). Returns 0, or
 * -ENOMEM. */
int advice_to_json(const struct advice *a, json_t *obj);

/* advice_decide() and advice_to_json() in one call. */
int advice_fill_json(const struct advice_in *in, json_t *obj);

/* v rounded to tenths, as the guide's reports show numbers: 87.7, 40, 0.5. */
double advice_round1(double v);

/* The shortest text that reads back as v ("40", "87.7", "536870912"): how
 * jq prints a number, which the reports of monitor-workers.sh follow. */
void advice_fmt_num(double v, char *buf, size_t n);

#endif

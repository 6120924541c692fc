/* `make bench-json` (bench/json_get.py runs it): what checking that a
 * result is JSON costs, with the validator (src/common/jsonv.c) against a
 * parse by jansson, on the same bytes in the same run.
 *
 * Builds a result of MiB mebibytes of "[{},{},...]" (default 16, the
 * default STRATQ_MAX_RESULT), then, each in a child forked for it (so that
 * each peak is its own): jsonv_check() with no limits, jsonv_check() with
 * the executor's default caps (256 levels, 4,000,000 values: stops at the
 * cap), and json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL), as the API and
 * the executor did. Prints, for each, the median wall time of ROUNDS runs
 * and how far the child's peak RSS (VmHWM) rose above its RSS before the
 * first run, in MB, as one JSON object a line. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonv.h"

#define ROUNDS 5

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long vm_kb(const char *field)
{
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum method { JSONV, JSONV_CAPPED, JANSSON };

/* One run of the method; 0 when the text passed. */
static int check_once(enum method m, const char *buf, size_t len)
{
    static const struct jsonv_limits caps = {256, 4000000};
    if (m == JANSSON) {
        json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_decref(v);
        return v ? 0 : -1;
    }
    return jsonv_check(buf, len, m == JSONV ? NULL : &caps, NULL);
}

/* In a child: ROUNDS runs of the method; prints its line. */
static void measure(enum method m, const char *name, const char *buf, size_t len)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid > 0) {
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "json_cost: the %s child failed\n", name);
            exit(1);
        }
        return;
    }
    double t[ROUNDS];
    long before = vm_kb("VmRSS");
    int r = 0;
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = now_ms();
        r = check_once(m, buf, len);
        t[i] = now_ms() - t0;
    }
    qsort(t, ROUNDS, sizeof(t[0]), cmp);
    printf("{\"method\": \"%s\", \"passed\": %s, \"ms\": %.1f, \"peak_rss_growth_mb\": %.1f}\n",
           name, r == 0 ? "true" : "false", t[ROUNDS / 2],
           (double)(vm_kb("VmHWM") - before) / 1024.0);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv)
{
    double mib = argc > 1 ? atof(argv[1]) : 16;
    size_t n = (size_t)(mib * 1024 * 1024 - 1) / 3, len = 3 * n + 1;
    char *buf = malloc(len);
    if (!buf || n == 0) {
        fprintf(stderr, "usage: json_cost [MiB]\n");
        return 2;
    }
    buf[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(buf + 1 + 3 * i, i + 1 < n ? "{}," : "{}]", 3);
    printf("{\"bytes\": %zu, \"values\": %zu}\n", len, n + 1);
    measure(JSONV, "jsonv_check", buf, len);
    measure(JSONV_CAPPED, "jsonv_check, executor caps", buf, len);
    measure(JANSSON, "json_loadb", buf, len);
    free(buf);
    return 0;
}

#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int log_min_level = LOG_INFO;
static const char *log_component = "stratq";
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_component(const char *component)
{
    log_component = component;
}

int log_set_level_name(const char *name)
{
    for (int i = 0; i < (int)ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            log_min_level = i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_emit(int level, const char *msg, const char *fmt, ...)
{
    json_t *obj = NULL;
    json_error_t jerr;
    char ts[96];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (fmt && fmt[0]) {
        va_start(ap, fmt);
        obj = json_vpack_ex(&jerr, 0, fmt, ap);
        va_end(ap);
    }
    if (!obj)
        obj = json_object();
    if (!obj)
        return;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

    json_t *line = json_pack("{s:s, s:s, s:s, s:i, s:s}", "ts", ts, "level",
                             level_names[level < 0 || level > LOG_ERROR ? LOG_ERROR : level],
                             "component", log_component, "pid", (int)getpid(), "msg", msg);
    if (line) {
        json_object_update(line, obj);
        char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            size_t n = strlen(s);
            s[n] = '\n';
            /* One write per line, so lines of concurrent processes sharing
             * stderr do not interleave. */
            (void)util_write_all(STDERR_FILENO, s, n + 1);
            free(s);
        }
        json_decref(line);
    }
    json_decref(obj);
}

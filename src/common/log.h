/* Structured logging: one JSON object per line on stderr.
 *
 * The extra fields are given as a jansson json_pack() format and its
 * arguments, e.g. log_info("job done", "{s:s, s:i}", "id", id, "ms", ms).
 * The level is checked before the arguments are evaluated. */
#ifndef STRATQ_LOG_H
#define STRATQ_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern int log_min_level;

/* Sets the component name written in every line ("api", "worker", ...). */
void log_set_component(const char *component);
/* Parses "debug", "info", "warn" or "error". Returns 0 or -EINVAL. */
int log_set_level_name(const char *name);

void log_emit(int level, const char *msg, const char *fmt, ...);

#define LOG_AT(level, msg, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= log_min_level)                                                              \
            log_emit((level), (msg), __VA_ARGS__);                                                 \
    } while (0)

#define log_debug(msg, ...) LOG_AT(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) LOG_AT(LOG_ERROR, msg, __VA_ARGS__)

#endif

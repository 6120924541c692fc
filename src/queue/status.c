#define _GNU_SOURCE
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

static const struct {
    const char *name;
    unsigned props;
    const char *meaning;
} statuses[QUEUE_STATUS__COUNT] = {
#define X(id, name, props, meaning) [QUEUE_STATUS_##id] = {name, props, meaning},
    QUEUE_STATUS_TABLE(X)
#undef X
};

static const struct {
    unsigned bit;
    const char *key;
} props[] = {
#define X(id, key) {QUEUE_##id, key},
    QUEUE_STATUS_PROPS(X)
#undef X
};

const double queue_buckets[] = {QUEUE_BUCKETS};
const int queue_nbuckets = (int)ARRAY_SIZE(queue_buckets);

const char *queue_status_name(enum queue_status s)
{
    return statuses[s].name;
}

int queue_status_parse(const char *name)
{
    for (int i = 0; name && i < QUEUE_STATUS__COUNT; i++)
        if (!strcmp(name, statuses[i].name))
            return i;
    return -1;
}

bool queue_status_has(int s, unsigned want)
{
    return s >= 0 && s < QUEUE_STATUS__COUNT && (statuses[s].props & want) == want;
}

bool queue_status_is_terminal(const char *name)
{
    return queue_status_has(queue_status_parse(name), QUEUE_TERMINAL);
}

json_t *queue_status_json(void)
{
    json_t *list = json_array();
    int err = !list;
    for (int i = 0; !err && i < QUEUE_STATUS__COUNT; i++) {
        json_t *s = json_pack("{s:s}", "name", statuses[i].name);
        /* Each set and append takes the reference, even when it fails. */
        err = !s || json_array_append_new(list, s) < 0;
        for (size_t p = 0; !err && p < ARRAY_SIZE(props); p++)
            err = json_object_set_new(s, props[p].key,
                                      json_boolean(statuses[i].props & props[p].bit)) < 0;
        err = err || json_object_set_new(s, "meaning", json_string(statuses[i].meaning)) < 0;
    }
    if (err) {
        json_decref(list);
        return NULL;
    }
    return list;
}

char *queue_status_lua(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputs("-- The job statuses and their properties, from src/queue/status.h.\n"
          "local stratq_status = {\n",
          f);
    for (int i = 0; i < QUEUE_STATUS__COUNT; i++) {
        fprintf(f, "  %s = {", statuses[i].name);
        for (size_t p = 0; p < ARRAY_SIZE(props); p++)
            fprintf(f, "%s%s = %s", p ? ", " : "", props[p].key,
                    statuses[i].props & props[p].bit ? "true" : "false");
        fputs("},\n", f);
    }
    fputs("}\n-- Histogram bucket bounds (seconds), from QUEUE_BUCKETS.\nlocal stratq_buckets = {",
          f);
    for (int i = 0; i < queue_nbuckets; i++)
        fprintf(f, "%s%g", i ? ", " : "", queue_buckets[i]);
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct cfg_opt config_opts[CFG__COUNT] = {
#define X(id, flag, env, type, def, min, max, cmds, help)                                          \
    {flag, env, type, def, min, max, cmds, help},
    CONFIG_TABLE(X)
#undef X
};

static struct {
    char *s;
    long long i;
    bool set; /* given by the environment or a flag */
} values[CFG__COUNT];
static char **positional;

static int parse_value(enum cfg_id id, const char *value, const char *source, char *err,
                       size_t errlen)
{
    const struct cfg_opt *o = &config_opts[id];
    long long v = 0;

    if (o->type == CFG_INT) {
        char *end;
        errno = 0;
        v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, errlen, "%s: '%s' is not an integer", source, value);
            return -EINVAL;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: %lld is out of range [%lld, %lld]", source, v, o->min,
                     o->max);
            return -EINVAL;
        }
    } else if (o->type == CFG_BOOL) {
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            v = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            v = 0;
        else {
            snprintf(err, errlen, "%s: '%s' is not a boolean (true or false)", source, value);
            return -EINVAL;
        }
    }
    char *copy = strdup(value);
    if (!copy)
        return -ENOMEM;
    free(values[id].s);
    values[id].s = copy;
    values[id].i = v;
    values[id].set = strcmp(source, "default") != 0;
    return 0;
}

int config_set(enum cfg_id id, const char *value, char *err, size_t errlen)
{
    char source[80];
    snprintf(source, sizeof(source), "--%s", config_opts[id].flag);
    return parse_value(id, value, source, err, errlen);
}

static int find_flag(unsigned cmd, const char *name, size_t len)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        if ((config_opts[i].cmds & cmd) && strlen(config_opts[i].flag) == len &&
            !strncmp(config_opts[i].flag, name, len))
            return i;
    }
    return -1;
}

int config_load(unsigned cmd, int argc, char **argv, char ***ret_args, int *ret_nargs, char *err,
                size_t errlen)
{
    int r, nargs = 0;

    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_opt *o = &config_opts[i];
        const char *env = o->env ? getenv(o->env) : NULL;
        r = parse_value(i, o->def, "default", err, errlen);
        if (r < 0)
            return r;
        if (env && (o->cmds & cmd)) {
            r = parse_value(i, env, o->env, err, errlen);
            if (r < 0)
                return r;
        }
    }

    free(positional);
    positional = calloc((size_t)argc + 1, sizeof(char *));
    if (!positional)
        return -ENOMEM;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            positional[nargs++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int id = find_flag(cmd, name, len);
        if (id < 0) {
            snprintf(err, errlen, "unknown option '%.*s'; see --help for the options", (int)len + 2,
                     a);
            return -EINVAL;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (config_opts[id].type == CFG_BOOL)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "option --%s needs a value", config_opts[id].flag);
            return -EINVAL;
        }
        char source[80];
        snprintf(source, sizeof(source), "--%s", config_opts[id].flag);
        r = parse_value(id, value, source, err, errlen);
        if (r < 0)
            return r;
    }
    *ret_args = positional;
    *ret_nargs = nargs;
    return 0;
}

const char *config_str(enum cfg_id id)
{
    return values[id].s ? values[id].s : config_opts[id].def;
}

long long config_int(enum cfg_id id)
{
    return values[id].i;
}

bool config_is_set(enum cfg_id id)
{
    return values[id].set;
}

bool config_bool(enum cfg_id id)
{
    return values[id].i != 0;
}

void config_print_help(unsigned cmd, const char *usage, const char *what)
{
    printf("usage: %s\n\n%s\n\noptions:\n", usage, what);
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_opt *o = &config_opts[i];
        if (!(o->cmds & cmd))
            continue;
        printf("  --%-18s %s\n", o->flag, o->help);
        printf("  %-20s ", "");
        if (o->env)
            printf("env %s, ", o->env);
        printf("default '%s'", o->def);
        if (o->type == CFG_INT)
            printf(", range %lld..%lld", o->min, o->max);
        printf("\n");
    }
}

void config_free(void)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        free(values[i].s);
        values[i].s = NULL;
    }
    free(positional);
    positional = NULL;
}

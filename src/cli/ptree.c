/* Process trees from /proc (ptree.h). */
#define _GNU_SOURCE
#include "ptree.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A process's parent, at most this many generations up: deeper is a loop
 * in a snapshot taken while processes came and went. */
#define MAX_DEPTH 64

static int cmp_pid(const void *a, const void *b)
{
    const struct ptree_proc *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static const struct ptree_proc *find(const struct ptree *t, int pid)
{
    struct ptree_proc key = {.pid = pid};
    return t->n ? bsearch(&key, t->procs, t->n, sizeof(key), cmp_pid) : NULL;
}

/* Fields of /proc/PID/stat after the command name, which may hold spaces
 * and parentheses, so they are counted from its last ')'. */
static bool read_stat(const char *pid, struct ptree_proc *ret)
{
    char path[300], buf[1024];
    snprintf(path, sizeof(path), "/proc/%.20s/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');
    char state;
    int ppid;
    unsigned long long utime, stime;
    long long rss;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime cstime priority nice threads itreal
     * starttime vsize rss */
    if (!rp || sscanf(rp + 1,
                      " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                      "%*d %*u %*u %lld",
                      &state, &ppid, &utime, &stime, &rss) != 5)
        return false;
    *ret = (struct ptree_proc){atoi(pid), ppid, utime + stime, rss};
    return true;
}

int ptree_read(struct ptree *ret)
{
    DIR *d = opendir("/proc");
    struct ptree t = {0};
    size_t cap = 0;
    struct dirent *e;
    *ret = t;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        struct ptree_proc p;
        if (!isdigit((unsigned char)e->d_name[0]) || !read_stat(e->d_name, &p))
            continue;
        if (t.n == cap) {
            cap = cap ? cap * 2 : 256;
            struct ptree_proc *np = realloc(t.procs, cap * sizeof(*np));
            if (!np) {
                closedir(d);
                free(t.procs);
                return -ENOMEM;
            }
            t.procs = np;
        }
        t.procs[t.n++] = p;
    }
    closedir(d);
    if (t.n)
        qsort(t.procs, t.n, sizeof(*t.procs), cmp_pid);
    *ret = t;
    return 0;
}

void ptree_free(struct ptree *t)
{
    free(t->procs);
    t->procs = NULL;
    t->n = 0;
}

bool ptree_is_stratq(const struct ptree *t, int pid)
{
    char path[64], comm[64] = "";
    if (!find(t, pid))
        return false;
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof(comm), f) && !strncmp(comm, "stratq", 6);
    fclose(f);
    return ok;
}

/* Whether p is root or descends from it. */
static bool in_tree(const struct ptree *t, const struct ptree_proc *p, int root)
{
    for (int depth = 0; p && depth < MAX_DEPTH; depth++) {
        if (p->pid == root)
            return true;
        if (p->ppid == p->pid)
            return false;
        p = find(t, p->ppid);
    }
    return false;
}

long long ptree_rss_bytes(const struct ptree *t, int root)
{
    if (!find(t, root))
        return -1;
    long long pages = 0;
    for (size_t i = 0; i < t->n; i++)
        if (in_tree(t, &t->procs[i], root))
            pages += t->procs[i].rss_pages;
    return pages * sysconf(_SC_PAGESIZE);
}

double ptree_cpu_seconds(const struct ptree *before, const struct ptree *after, int root)
{
    if (!find(after, root))
        return -1;
    unsigned long long ticks = 0;
    for (size_t i = 0; i < after->n; i++) {
        const struct ptree_proc *p = &after->procs[i];
        if (!in_tree(after, p, root))
            continue;
        const struct ptree_proc *was = find(before, p->pid);
        unsigned long long t0 = was ? was->ticks : 0;
        if (p->ticks > t0)
            ticks += p->ticks - t0;
    }
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

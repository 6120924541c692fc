/* Process trees of this machine from /proc: what a local worker, its
 * executor and its jobs use together (RSS, CPU time). The monitor reads
 * them for workers whose host is this one. */
#ifndef STRATQ_PTREE_H
#define STRATQ_PTREE_H

#include <stdbool.h>
#include <stddef.h>

struct ptree_proc {
    int pid, ppid;
    unsigned long long ticks; /* user + system CPU time, in clock ticks */
    long long rss_pages;
};

/* A snapshot of every process, sorted by pid. */
struct ptree {
    struct ptree_proc *procs;
    size_t n;
};

/* Reads /proc into *ret (processes that end meanwhile are skipped).
 * Returns 0 or -ENOMEM; free with ptree_free(). */
int ptree_read(struct ptree *ret);
void ptree_free(struct ptree *t);

/* Whether pid is a stratq process in the snapshot (its comm starts with
 * "stratq"): a worker's pid from another machine, or reused here, is not
 * measured. */
bool ptree_is_stratq(const struct ptree *t, int pid);

/* RSS in bytes of root and all its descendants, summed (pages shared
 * between a warm executor and its forks count more than once); -1 when
 * root is not in the snapshot. */
long long ptree_rss_bytes(const struct ptree *t, int root);

/* CPU time root and its descendants spent between two snapshots, in
 * seconds; processes that started in between count from 0. -1 when root is
 * not in after. */
double ptree_cpu_seconds(const struct ptree *before, const struct ptree *after, int root);

#endif

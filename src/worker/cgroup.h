/* Per-job control groups (docs/security.md): each job's processes share a
 * cgroup that bounds their memory and their number, and through which every
 * one of them is killed when the job ends, however it tried to hide.
 *
 * cgroup v2 is used when the executor's cgroup (or STRATQ_CGROUP_DIR, a
 * delegated subtree) offers the memory and pids controllers and may enable
 * them for children; otherwise the v1 memory and pids hierarchies when they
 * are mounted and writable. Neither: the layer is unavailable, with the
 * reason. */
#ifndef STRATQ_CGROUP_H
#define STRATQ_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

/* A job's cgroup: its directories (one in v2, memory and pids in v1) and
 * the cgroup.procs files its first process writes itself into. */
struct cgroup_job {
    int version; /* 0: none */
    char dir[2][320];
    char procs[2][340];
    int ndirs;
    int slot; /* which of the executor's job cgroups */
};

/* How many job cgroups an executor keeps: the running job's, and its next
 * spare's, forked while the job's processes exit. */
#define CGROUP_SLOTS 2

/* Once, in the executor: makes this executor's own directory
 * (stratq-exec-<pid>-<inode of its pid namespace>) under the first usable
 * hierarchy, after removing the directories of executors of its pid
 * namespace that are gone. Returns 0, or -1 with the reason
 * in why. delegated: STRATQ_CGROUP_DIR, or "" to use the executor's own
 * cgroup. */
int cgroup_init(const char *delegated, char *why, size_t whylen);

/* The hierarchy in use, for logs: "v2", "v1" or "none". */
const char *cgroup_kind(void);

/* The cgroup of the next job with its process limit (max_procs: the same
 * for every job of an executor): one of the executor's CGROUP_SLOTS job
 * cgroups not in use, each made by the first job that gets it and emptied
 * by each job's end for the next. Returns 0 or -errno (the job must not
 * run without it once the layer is active; -EBUSY: every one is in use). */
int cgroup_job_create(struct cgroup_job *cj, long max_procs);

/* Sets the job's memory limit (and no swap), in MiB. */
int cgroup_job_set_memory(const struct cgroup_job *cj, long long memory_mb);

/* In the job's first process, before anything else: moves the calling
 * process into the job's cgroup. Only system calls (async-signal-safe). */
int cgroup_job_join(const struct cgroup_job *cj);

/* After the job: kills every process left in the job's cgroup and waits
 * until it is empty, for the next job (one that will not empty is removed,
 * and the next job gets a new one). Returns whether the kernel's OOM
 * killer killed a process of this job. */
bool cgroup_job_destroy(struct cgroup_job *cj);

/* Removes the job's cgroup (its processes killed first). */
void cgroup_job_remove(struct cgroup_job *cj);

/* At executor exit: removes this executor's directory. */
void cgroup_fini(void);

/* How cgroup_init() finds a hierarchy, public for tests/unit/test_cgroup.c,
 * which reads fixtures in place of /proc/self's files. */

/* This process's cgroup path in the v2 hierarchy (ctl NULL) or in the v1
 * hierarchy of controller ctl, from file (/proc/self/cgroup): 0, or -1
 * when it has none. */
int cgroup_own_path(const char *file, const char *ctl, char *out, size_t len);

/* Where the hierarchy is mounted (fstype cgroup2, or cgroup with controller
 * ctl), from file (/proc/self/mountinfo), joined with the cgroup path
 * cgpath: the directory of that cgroup. 0, or -1 when no mount holds it or
 * the path does not fit in len. */
int cgroup_mount_dir(const char *file, const char *ctl, const char *cgpath, char *out, size_t len);

#endif

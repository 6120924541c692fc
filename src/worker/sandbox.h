/* The sandbox of a job's processes (docs/security.md). Layers that need no
 * privilege are always on: no_new_privs, rlimits, a seccomp-bpf filter, a
 * Landlock ruleset (files, TCP, signals and abstract sockets), the job's own
 * session. Layers used when the host allows them: user, net, pid, ipc and
 * mount namespaces (the mount namespace gives the job a private /dev/shm),
 * a per-job cgroup, a dedicated uid. */
#ifndef STRATQ_SANDBOX_H
#define STRATQ_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "cgroup.h"

enum sandbox_layer {
    /* always on */
    SB_NO_NEW_PRIVS,
    SB_SECCOMP,
    SB_LANDLOCK,
    SB_RLIMITS,
    SB_SESSION,
    /* when the host allows them */
    SB_USERNS,
    SB_NETNS,
    SB_PIDNS,
    SB_IPCNS,
    SB_MOUNTNS,
    SB_CGROUP,
    SB_UID,
    SB__COUNT
};

struct sandbox_status {
    bool active[SB__COUNT];
    /* What the layer does when active, or why it is unavailable. */
    char why[SB__COUNT][400];
    int landlock_abi;
};

/* The layer's name as STRATQ_SANDBOX_REQUIRE and STRATQ_SANDBOX_DISABLE
 * spell it, or NULL. */
const char *sandbox_layer_name(enum sandbox_layer l);

/* Settings of the optional layers. */
struct sandbox_options {
    const char *disable; /* STRATQ_SANDBOX_DISABLE: layers not to use (and
                          * signal_scope: Landlock's signal scoping, for the
                          * tests of the seccomp filter alone) */
    bool warm;           /* STRATQ_MODE=warm: jobs need no exec */
    const char *cgroup;  /* STRATQ_CGROUP_DIR: a delegated cgroup v2 subtree, or "" */
    long long job_uid;   /* STRATQ_JOB_UID: 0 picks 200000 + the executor's pid */
    long max_procs;      /* STRATQ_JOB_MAX_PROCS */
    long long max_tmp;   /* STRATQ_JOB_MAX_TMP, bytes */
    bool check_only;     /* --check: remove the cgroup it made */
};

/* The options as the configuration (environment, flags) gives them. */
void sandbox_options_load(struct sandbox_options *opt);

/* Finds out which layers this host allows, trying the optional ones for
 * real in a throwaway child. In the executor it also sets them up for the
 * jobs to come (unless check_only: --check, which keeps nothing). Returns 0, or -1 with a message
 * in err when STRATQ_SANDBOX_DISABLE names an unknown layer. */
int sandbox_probe(struct sandbox_status *st, const struct sandbox_options *opt, char *err,
                  size_t errlen);

/* Checks a comma-separated list of layer names (STRATQ_SANDBOX_REQUIRE)
 * against the layers as sandbox_status_json() gives them. Returns 0; -1
 * with a message in err naming the missing layer and why; -2 naming an
 * unknown one. */
int sandbox_require(const char *layers_json, const char *required, char *err, size_t errlen);

/* One "name: active (...)" or "name: unavailable: why" line per layer. */
void sandbox_describe(const struct sandbox_status *st, char *buf, size_t len);

/* {"layer": "active" | "unavailable: why", ...} as compact JSON (malloc'd). */
char *sandbox_status_json(const struct sandbox_status *st);

/* In the executor, once, after sandbox_probe: compiles the seccomp filter
 * each child loads as it is, and records the Landlock rules
 * (read-only: the interpreter and its libraries under /usr, the harness,
 * data_dir if given; read-write: /dev/shm where the job has its own;
 * execute: python only), which each child applies in sandbox_enter with
 * one more of its own: read-write on the job's directory (sandbox_job's
 * dir), and on nothing else the executor or another job writes. */
int sandbox_prepare(const char *harness_dir, const char *python, const char *data_dir);

/* The descriptor a job's process has its data directory (sandbox_prepare's
 * data_dir) open as, when there is one: the job's uid may not reach it by
 * its path. The executor's child_setup() leaves it free. */
#define SANDBOX_DATA_FD 6

/* The uid and gid job processes run as (the executor's own when the uid
 * layer is off). */
uid_t sandbox_job_uid(void);
gid_t sandbox_job_gid(void);

/* Whether the process the executor forks for a job is the job's own
 * process. Not so for a non-root executor with the pid layer, where that
 * process only waits for the job, forked into the namespace it makes
 * (sandbox_enter), and mirrors how it ended: its CPU clock and memory are
 * not the job's. */
bool sandbox_job_is_child(void);

/* Whether the next job's spare may be forked while the last job's
 * processes are still exiting: whether those processes can neither name
 * nor signal it (the job's own pid namespace, or Landlock's signal
 * scoping), the seccomp filter refusing ptrace and every other way into
 * another process. Its cgroup and its directory are its own either way. */
bool sandbox_spare_beside_job(void);

/* What one job's sandbox holds outside the job: its cgroup, and the limit
 * on its number of processes. */
struct sandbox_job {
    struct cgroup_job cg;
    long nproc;
    time_t started;      /* when the job was handed its work */
    long long memory_mb; /* the memory limit set (sandbox_job_memory); 0: none yet */
    char dir[320];       /* the job's own directory, the only one it may write */
    bool dir_mounted;    /* dir is a tmpfs of its own (sandbox_job_dir) */
};

/* In the executor, before forking a job's child. Returns 0 or -errno. */
int sandbox_job_begin(struct sandbox_job *sj);
/* When the job's memory limit is known (warm mode: at dispatch, or ahead
 * of it with the last job's, which a job asking the same needs not set
 * again). */
void sandbox_job_memory(struct sandbox_job *sj, long long memory_mb);
/* Once the job's directory (sj->dir) exists: with the mount namespace,
 * makes it a tmpfs of its own of STRATQ_JOB_MAX_TMP bytes, which no file
 * the job writes can grow past (and which goes at once, whatever is in it,
 * with sandbox_job_dir_release). Without one the job's files are held to
 * that size each (RLIMIT_FSIZE) only. Returns 0 or -errno. */
int sandbox_job_dir(struct sandbox_job *sj);
/* Unmounts the job's tmpfs, if it has one: the directory is then empty. */
void sandbox_job_dir_release(struct sandbox_job *sj);
/* After the job: whether it filled what bounds it outside its address
 * space: SANDBOX_FULL_DIR, its directory's tmpfs; SANDBOX_FULL_SHM, its
 * /dev/shm (sized to its memory limit). */
#define SANDBOX_FULL_DIR 1
#define SANDBOX_FULL_SHM 2
int sandbox_job_full(const struct sandbox_job *sj);

/* After the job's child is gone: kills whatever of the job is left, removes
 * its cgroup. Returns whether the kernel's OOM killer struck the job. */
bool sandbox_job_end(struct sandbox_job *sj);

/* In the executor, once, while it has no thread but its own (before the
 * warm interpreter starts): enters the user (non-root), net, ipc and mount
 * namespaces its jobs run in, and mounts their private /dev/shm. Jobs of
 * one executor run one at a time and share these; nothing of a job outlives
 * it in them (its processes are killed, /dev/shm is emptied after it, and
 * seccomp refuses System V IPC and message queues). Returns 0 or -errno. */
int sandbox_executor_enter(void);

/* In the executor, once, on its way out (whatever sandbox_probe and the
 * calls after it got to): removes its cgroup directory (cgroup_init made
 * it in sandbox_probe) and frees the compiled filter. */
void sandbox_release(void);

/* In the executor, right before forking a job's child: with the pid layer,
 * makes that child the first process (PID 1) of a new pid namespace, so
 * that every process of the job ends when it does. Returns 0 or -errno. */
int sandbox_before_fork(void);
/* For a benchmark's plain forks (executor.c, fork_floor): children made
 * in the executor's own pid namespace, with none of a job's. 0 or -errno. */
int sandbox_fork_plain(void);

/* In a job's child, last thing before the job's code (or the exec of its
 * interpreter): cgroup, uid (or, in a user namespace, no capabilities),
 * limits, Landlock, then seccomp. Returns 0 or -errno. Only system calls
 * (async-signal-safe). */
int sandbox_enter(const struct sandbox_job *sj);

#endif

/* The sandbox of a job's process (docs/security.md). Layers that need no
 * privilege are always on: no_new_privs, rlimits, a seccomp-bpf filter and a
 * Landlock ruleset. */
#ifndef STRATQ_SANDBOX_H
#define STRATQ_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

struct sandbox_status {
    int landlock_abi; /* 0: Landlock unavailable */
    bool seccomp;
    char landlock_why[128], seccomp_why[128];
};

/* Probes what this kernel offers. */
void sandbox_probe(struct sandbox_status *st);

/* In the executor, once: records the Landlock rules (read-only: the
 * interpreter, its libraries, the standard library and site-packages under
 * /usr, the harness; read-write: work_dir only), which each child applies
 * in sandbox_enter. Returns 0, or -errno when Landlock is unavailable (the
 * children then run without that layer, which sandbox_probe reports). */
int sandbox_prepare(const char *harness_dir, const char *work_dir, const char *python);

/* In a job child, last thing before the job's code (or the exec of its
 * interpreter): file-descriptor, file-size and process limits, Landlock,
 * then the seccomp filter. Returns 0 or -errno. */
int sandbox_enter(void);

/* One line per layer for logs and `stratq worker --check`. */
void sandbox_describe(const struct sandbox_status *st, char *buf, size_t len);

#endif

/* Warm mode: the executor embeds CPython, imports the harness and the
 * preload list (numpy, pandas) once, and forks a child per job from that
 * interpreter, so a job starts in milliseconds instead of paying for
 * interpreter start-up and imports. */
#ifndef STRATQ_WARM_H
#define STRATQ_WARM_H

#include <stddef.h>
#include <sys/types.h>

/* The interpreter a warm executor embeds is the system's: its sys.executable. */
#define WARM_PYTHON "/usr/bin/python3"

/* Starts the interpreter (isolated configuration), puts harness_dir first
 * on sys.path, imports the harness and each module of the comma-separated
 * preload list. A module that fails to import is logged as a warning and
 * skipped. Returns 0 or -1 with a message in err. */
int warm_init(const char *harness_dir, const char *preload, char *err, size_t errlen);

/* fork() with CPython's at-fork protocol around it (PyOS_BeforeFork and
 * friends), which runs the registered at-fork hooks: the random module
 * reseeds itself in the child, for one. */
pid_t warm_fork(void);

/* In a child made by warm_fork(), after its descriptors are in place (job
 * request on fd 3, outcome on fd 4): runs the harness. Never returns. */
void warm_child_run(void) __attribute__((noreturn));

#endif

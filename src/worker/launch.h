/* The supervisor's side of the executor program: finding stratq-executor,
 * starting it, checking that it runs.
 *
 * The executor is a program of its own, installed beside `stratq`, so that
 * the one process that embeds CPython is the only one that maps libpython
 * (and the executor, and so every job forked from it, maps none of the
 * API's and the CLI's libraries: libcurl, libevent, OpenSSL, hiredis).
 * docs/architecture.md, "Only what a process needs", has the figures. */
#ifndef STRATQ_LAUNCH_H
#define STRATQ_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

/* The executor program's file name; it lives in the directory of the
 * running `stratq` (readlink /proc/self/exe). */
#define LAUNCH_EXECUTOR_NAME "stratq-executor"

/* The environment of the executor and of its jobs: PATH, LANG, the OpenBLAS
 * settings that are set (and ASAN_OPTIONS in sanitized builds), nothing
 * else. Caller frees with launch_env_free(). NULL when out of memory. */
char **launch_env(void);
void launch_env_free(char **envp);

/* Finds stratq-executor beside the running program and opens it (O_PATH,
 * O_CLOEXEC, fd >= 10), so that every executor this process starts is that
 * same file, even once an upgrade has replaced it on disk. Returns the fd
 * and its path in *ret_path (caller frees), or -errno with a sentence in
 * err that names the path looked at and what to do. */
int launch_open(char **ret_path, char *err, size_t errlen);

/* Starts an executor from exe_fd (launch_open) with the job settings of the
 * configuration as flags, launch_env() as its environment, /dev/null as its
 * stdin and one socket as fd 3 (EXECUTOR_FD); stdout and stderr are this
 * process's. The socket's other end is returned in *ret_fd (O_CLOEXEC),
 * the executor's pid in *ret_pid. 0 or -errno. */
int launch_executor(int exe_fd, pid_t *ret_pid, int *ret_fd);

/* For `stratq worker --check`: finds the executor as launch_open() does and
 * runs it with --version, which proves that the loader finds every library
 * it needs (libpython among them). 0 with "PATH, stratq-executor VERSION"
 * in out, or -1 with what is missing or wrong in out. */
int launch_check(char *out, size_t len);

#endif

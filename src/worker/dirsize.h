/* How much a job's directory holds, counted while the job runs, where no
 * tmpfs of its own bounds it (no mount namespace). */
#ifndef STRATQ_WORKER_DIRSIZE_H
#define STRATQ_WORKER_DIRSIZE_H

#include <stdbool.h>
#include <stddef.h>

struct dir_usage {
    long long bytes; /* allocated (st_blocks), every entry counted once per name */
    size_t entries;
    bool too_many; /* stopped at max_entries */
};

/* Counts the tree under the directory open as FD (kept open), by
 * directory descriptors, never following a symbolic link or entering
 * another filesystem, at most MAX_DEPTH directories deep (deeper ones are
 * not counted) and MAX_ENTRIES entries in all (then too_many). Returns 0,
 * or -errno when FD cannot be read. */
int dir_usage(int fd, struct dir_usage *u, size_t max_entries, int max_depth);

#endif

#define _GNU_SOURCE
#include "dirsize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void walk(int fd, dev_t dev, struct dir_usage *u, size_t max_entries, int depth)
{
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        return;
    }
    rewinddir(d);
    struct dirent *e;
    while (!u->too_many && (e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (u->entries == max_entries) {
            u->too_many = true;
            break;
        }
        u->entries++;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        u->bytes += (long long)st.st_blocks * 512;
        if (!S_ISDIR(st.st_mode) || st.st_dev != dev || depth <= 1)
            continue;
        int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            walk(sub, dev, u, max_entries, depth - 1);
            close(sub);
        }
    }
    closedir(d);
}

int dir_usage(int fd, struct dir_usage *u, size_t max_entries, int max_depth)
{
    struct stat st;
    memset(u, 0, sizeof(*u));
    if (fstat(fd, &st) < 0)
        return -errno;
    walk(fd, st.st_dev, u, max_entries, max_depth);
    return 0;
}

#define _GNU_SOURCE
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"

/* The executor's directories: one (v2) or two (v1: memory, pids). */
static struct {
    int version;
    char base[2][300];
    int nbase;
    unsigned long long pidns; /* this process's pid namespace (its inode; 0: unknown) */
    unsigned long seq;        /* the last job directory's number: job-<seq> */
    /* The two job cgroups, used in turn: a job's, and the one its next
     * spare is forked into while the job's processes are still exiting. */
    struct {
        unsigned long seq; /* job-<seq>; 0: not made */
        bool busy;         /* a job's (or a spare's) until its end */
        long oom_seen;     /* OOM kills counted in it when its last job ended */
    } slot[CGROUP_SLOTS];
} cg;

const char *cgroup_kind(void)
{
    return cg.version == 2 ? "v2" : cg.version == 1 ? "v1" : "none";
}

/* A reason, cut to fit (it is only ever read by people). */
static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

static ssize_t read_file(const char *dir, const char *name, char *buf, size_t len)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* Whether the space-separated list has word. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
            (p[n] == '\0' || p[n] == ' ' || p[n] == ',' || p[n] == '\n'))
            return true;
    return false;
}

int cgroup_own_path(const char *file, const char *ctl, char *out, size_t len)
{
    FILE *f = fopen(file, "re");
    char line[1024];
    int found = -1;
    while (f && found < 0 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        bool match = ctl ? has_word(c1 + 1, ctl) : !strcmp(line, "0") && !c1[1];
        if (match) {
            snprintf(out, len, "%s", c2 + 1);
            found = 0;
        }
    }
    if (f)
        fclose(f);
    return found;
}

int cgroup_mount_dir(const char *file, const char *ctl, const char *cgpath, char *out, size_t len)
{
    FILE *f = fopen(file, "re");
    char line[2048];
    int found = -1;
    while (f && found < 0 && fgets(line, sizeof(line), f)) {
        char root[512], mnt[512], fstype[64], opts[512];
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %511s %511s", root, mnt) != 2 ||
            sscanf(dash + 3, "%63s %*s %511s", fstype, opts) != 2)
            continue;
        if (ctl ? strcmp(fstype, "cgroup") || !has_word(opts, ctl) : strcmp(fstype, "cgroup2"))
            continue;
        const char *rel = cgpath;
        size_t rl = strlen(root);
        if (strcmp(root, "/") != 0) {
            /* The root is a whole leading part of the path: /kubepods/pod1
             * does not hold /kubepods/pod10. */
            if (strncmp(cgpath, root, rl) != 0 || (cgpath[rl] != '/' && cgpath[rl] != '\0'))
                continue;
            rel = cgpath + rl;
        }
        if (snprintf(out, len, "%s%s", mnt, strcmp(rel, "/") ? rel : "") < (int)len)
            found = 0;
    }
    if (f)
        fclose(f);
    return found;
}

/* Kills every process in dir until none is left (and reaps this process's
 * children among them). Returns 0 once the cgroup is empty. */
static int empty_cgroup(const char *dir)
{
    write_file(dir, "cgroup.kill", "1"); /* v2, kernel >= 5.14: all at once */
    for (int round = 0; round < 2000; round++) {
        char buf[8192];
        if (read_file(dir, "cgroup.procs", buf, sizeof(buf)) < 0)
            return -1;
        int n = 0;
        for (char *p = buf, *end; *p; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
                n++;
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (!n)
            return 0;
        usleep(500);
    }
    return -1;
}

static void remove_cgroup(const char *dir)
{
    empty_cgroup(dir);
    /* An exiting process may keep the directory busy a moment longer. */
    for (int i = 0; i < 200 && rmdir(dir) < 0 && errno == EBUSY; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        usleep(1000);
    }
}

/* Whether NAME is the directory of an executor that no longer runs:
 * stratq-exec-<pid>-<pid namespace> of this pid namespace, whose pid is
 * gone (or stratq-exec-<pid>, as earlier versions named it). One of
 * another pid namespace (another container's, sharing a delegated
 * directory) may well run: its pid says nothing here. */
static bool stale_name(const char *name)
{
    char *end;
    if (strncmp(name, "stratq-exec-", 12) != 0)
        return false;
    long pid = strtol(name + 12, &end, 10);
    if (end == name + 12 || pid <= 0 || pid == getpid())
        return false;
    if (*end == '-') {
        const char *ns = end + 1;
        unsigned long long ino = strtoull(ns, &end, 10);
        if (end == ns || *end || ino != cg.pidns)
            return false;
    } else if (*end) {
        return false;
    }
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Removes what executors that no longer run left under parent: their job
 * cgroups (killing anything still in them) and their own directories. */
static void remove_stale(const char *parent)
{
    DIR *d = opendir(parent);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!stale_name(e->d_name))
            continue;
        char base[600];
        snprintf(base, sizeof(base), "%s/%s", parent, e->d_name);
        DIR *jd = opendir(base);
        struct dirent *je;
        while (jd && (je = readdir(jd))) {
            if (strncmp(je->d_name, "job-", 4) == 0) {
                char job[900];
                snprintf(job, sizeof(job), "%s/%s", base, je->d_name);
                remove_cgroup(job);
            }
        }
        if (jd)
            closedir(jd);
        remove_cgroup(base);
    }
    if (d)
        closedir(d);
}

static int try_v2(const char *delegated, char *why, size_t whylen)
{
    char own[512], parent[300], ctls[512];
    if (delegated && delegated[0]) {
        snprintf(parent, sizeof(parent), "%s", delegated);
    } else if (cgroup_own_path("/proc/self/cgroup", NULL, own, sizeof(own)) < 0 ||
               cgroup_mount_dir("/proc/self/mountinfo", NULL, own, parent, sizeof(parent)) < 0) {
        say(why, whylen, "no cgroup v2 hierarchy is mounted");
        return -1;
    }
    if (read_file(parent, "cgroup.controllers", ctls, sizeof(ctls)) < 0) {
        say(why, whylen, "cannot read %s/cgroup.controllers: %s", parent, strerror(errno));
        return -1;
    }
    if (!has_word(ctls, "memory") || !has_word(ctls, "pids")) {
        snprintf(why, whylen,
                 "cgroup v2 at %s lacks the memory and pids controllers (they are with a v1 "
                 "hierarchy, or not delegated)",
                 parent);
        return -1;
    }
    remove_stale(parent);
    if (snprintf(cg.base[0], sizeof(cg.base[0]), "%s/stratq-exec-%d-%llu", parent, (int)getpid(),
                 cg.pidns) >= (int)sizeof(cg.base[0]) ||
        (mkdir(cg.base[0], 0755) < 0 && errno != EEXIST)) {
        say(why, whylen, "cannot create a cgroup under %s: %s", parent, strerror(errno));
        return -1;
    }
    int r = write_file(parent, "cgroup.subtree_control", "+memory +pids");
    if (r == 0)
        r = write_file(cg.base[0], "cgroup.subtree_control", "+memory +pids");
    if (r < 0) {
        snprintf(why, whylen,
                 r == -EBUSY ? "%s holds processes of its own, so its children cannot have the "
                               "memory and pids controllers; give the worker a delegated subtree "
                               "(STRATQ_CGROUP_DIR)"
                             : "cannot enable the memory and pids controllers in %s: %s",
                 parent, strerror(-r));
        rmdir(cg.base[0]);
        return -1;
    }
    cg.nbase = 1;
    cg.version = 2;
    return 0;
}

static int try_v1(char *why, size_t whylen)
{
    static const char *const ctl[] = {"memory", "pids"};
    for (int i = 0; i < 2; i++) {
        char own[512], dir[300];
        if (cgroup_own_path("/proc/self/cgroup", ctl[i], own, sizeof(own)) < 0 ||
            cgroup_mount_dir("/proc/self/mountinfo", ctl[i], own, dir, sizeof(dir)) < 0) {
            say(why, whylen, "no cgroup v1 %s hierarchy is mounted", ctl[i]);
            goto fail;
        }
        remove_stale(dir);
        if (snprintf(cg.base[i], sizeof(cg.base[i]), "%s/stratq-exec-%d-%llu", dir, (int)getpid(),
                     cg.pidns) >= (int)sizeof(cg.base[i]) ||
            (mkdir(cg.base[i], 0755) < 0 && errno != EEXIST)) {
            say(why, whylen, "cannot create a cgroup under %s: %s", dir, strerror(errno));
            goto fail;
        }
        cg.nbase = i + 1;
    }
    cg.version = 1;
    return 0;
fail:
    for (int i = 0; i < cg.nbase; i++)
        rmdir(cg.base[i]);
    cg.nbase = 0;
    return -1;
}

int cgroup_init(const char *delegated, char *why, size_t whylen)
{
    /* An executor's directory is named by its pid and its pid namespace:
     * only the pids of this namespace can be checked from here. */
    struct stat ns;
    cg.pidns = stat("/proc/self/ns/pid", &ns) == 0 ? (unsigned long long)ns.st_ino : 0;
    char why2[200];
    if (try_v2(delegated, why, whylen) == 0)
        return 0;
    if (delegated && delegated[0])
        return -1; /* asked for that directory: no falling back */
    if (try_v1(why2, sizeof(why2)) == 0)
        return 0;
    size_t n = strlen(why);
    snprintf(why + n, whylen - n, "; %s", why2);
    return -1;
}

/* The count of OOM kills in a job's memory cgroup so far. */
static long oom_kills(const struct cgroup_job *cj)
{
    char buf[2048], *p;
    const char *file = cj->version == 2 ? "memory.events" : "memory.oom_control";
    if (read_file(cj->dir[0], file, buf, sizeof(buf)) > 0 && (p = strstr(buf, "oom_kill ")))
        return atol(p + 9);
    return 0;
}

/* The slot for the next job: a free one, made before if there is one. */
static int free_slot(void)
{
    int pick = -1;
    for (int i = 0; i < CGROUP_SLOTS; i++)
        if (!cg.slot[i].busy && (pick < 0 || (!cg.slot[pick].seq && cg.slot[i].seq)))
            pick = i;
    return pick;
}

/* One job runs at a time in an executor (its next spare beside it at the
 * end), so its job cgroups are made once and used again, each by a job
 * after the one before has emptied it: making and removing the v1 memory
 * and pids cgroups for every job (and the kernel's work freeing them) was
 * most of what the layer cost. A job cgroup that cannot be emptied is
 * removed and a later job gets a new one. */
int cgroup_job_create(struct cgroup_job *cj, long max_procs)
{
    memset(cj, 0, sizeof(*cj));
    if (!cg.version)
        return 0;
    int s = free_slot();
    if (s < 0)
        return -EBUSY;
    bool fresh = !cg.slot[s].seq;
    unsigned long seq = fresh ? ++cg.seq : cg.slot[s].seq;
    cj->slot = s;
    for (int i = 0; i < cg.nbase; i++) {
        snprintf(cj->dir[i], sizeof(cj->dir[i]), "%s/job-%lu", cg.base[i], seq);
        snprintf(cj->procs[i], sizeof(cj->procs[i]), "%s/job-%lu/cgroup.procs", cg.base[i], seq);
        if (fresh && mkdir(cj->dir[i], 0755) < 0) {
            int e = -errno;
            cgroup_job_remove(cj);
            return e;
        }
        cj->ndirs = i + 1;
    }
    cj->version = cg.version;
    cg.slot[s].seq = seq;
    cg.slot[s].busy = true;
    if (!fresh)
        return 0; /* its limits are set, and stay */
    cg.slot[s].oom_seen = 0;
    char pids[32];
    snprintf(pids, sizeof(pids), "%ld", max_procs);
    /* v2: the pids limit is on the single directory; v1: on the pids one. */
    int r = write_file(cj->dir[cg.version == 2 ? 0 : 1], "pids.max", pids);
    if (r == 0 && cg.version == 2)
        write_file(cj->dir[0], "memory.oom.group", "1"); /* OOM kills the whole job */
    if (r < 0)
        cgroup_job_remove(cj);
    return r;
}

int cgroup_job_set_memory(const struct cgroup_job *cj, long long memory_mb)
{
    char bytes[32];
    snprintf(bytes, sizeof(bytes), "%lld", memory_mb * 1024 * 1024);
    if (cj->version == 2) {
        write_file(cj->dir[0], "memory.swap.max", "0");
        return write_file(cj->dir[0], "memory.max", bytes);
    }
    if (cj->version == 1) {
        /* Where swap is counted, the kernel keeps memory.limit_in_bytes at
         * or below memory.memsw.limit_in_bytes: raising both, the swap
         * limit must go first (the write fails while it is below); lowering
         * both, it must go last. Written before and after, either works. */
        write_file(cj->dir[0], "memory.memsw.limit_in_bytes", bytes);
        int r = write_file(cj->dir[0], "memory.limit_in_bytes", bytes);
        write_file(cj->dir[0], "memory.memsw.limit_in_bytes", bytes);
        return r;
    }
    return 0;
}

int cgroup_job_join(const struct cgroup_job *cj)
{
    for (int i = 0; i < cj->ndirs; i++) {
        int fd = open(cj->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) {
            int e = -errno;
            if (fd >= 0)
                close(fd);
            return e;
        }
        close(fd);
    }
    return 0;
}

void cgroup_job_remove(struct cgroup_job *cj)
{
    for (int i = cj->ndirs - 1; i >= 0; i--)
        remove_cgroup(cj->dir[i]);
    if (cj->version || cj->ndirs)
        cg.slot[cj->slot].seq = 0;
    cg.slot[cj->slot].busy = false;
    cj->ndirs = 0;
    cj->version = 0;
}

bool cgroup_job_destroy(struct cgroup_job *cj)
{
    if (!cj->version)
        return false;
    /* The count goes on from job to job in a cgroup used again. */
    long kills = oom_kills(cj);
    bool oom = kills > cg.slot[cj->slot].oom_seen;
    cg.slot[cj->slot].oom_seen = kills;
    bool empty = true;
    for (int i = cj->ndirs - 1; i >= 0; i--)
        empty = empty_cgroup(cj->dir[i]) == 0 && empty;
    if (!empty) {
        cgroup_job_remove(cj); /* the next job gets a new one */
        return oom;
    }
    cg.slot[cj->slot].busy = false;
    cj->ndirs = 0;
    cj->version = 0;
    return oom;
}

void cgroup_fini(void)
{
    for (int s = 0; s < CGROUP_SLOTS; s++) {
        for (int i = 0; cg.slot[s].seq && i < cg.nbase; i++) {
            char job[600];
            snprintf(job, sizeof(job), "%s/job-%lu", cg.base[i], cg.slot[s].seq);
            remove_cgroup(job);
        }
        memset(&cg.slot[s], 0, sizeof(cg.slot[s]));
    }
    for (int i = 0; i < cg.nbase; i++)
        remove_cgroup(cg.base[i]);
    cg.nbase = 0;
    cg.version = 0;
}

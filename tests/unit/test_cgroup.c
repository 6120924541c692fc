/* Unit tests for src/worker/cgroup.c. Most run anywhere, on fixtures in a
 * temporary directory: finding the hierarchy from /proc/self/cgroup and
 * /proc/self/mountinfo as v1, v2 and a container's cgroup namespace write
 * them, a delegated directory's checks and the clean-up of dead
 * executors' directories, the limits' files, and the OOM kills counted
 * from memory.events (v2) and memory.oom_control (v1) across the jobs of
 * a cgroup used again. The last test makes a job's cgroup for real, and
 * runs only as root where a hierarchy with the memory and pids
 * controllers is writable (it is skipped otherwise, saying why). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/cgroup.h"
#include "unit.h"

#define WAIT_MS 10000

struct fixture {
    char dir[64];
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/stratq-cgroup-XXXXXX");
    *state = f;
    return mkdtemp(f->dir) ? 0 : -1;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    int r = unit_rm_rf(f->dir);
    free(f);
    return r;
}

/* Writes text to dir/name, creating it. */
static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "we");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* The content of dir/name, or "(none)" when there is no such file. */
static const char *get(const char *dir, const char *name)
{
    static char buf[4096];
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return "(none)";
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static const char *own_path(const char *file, const char *ctl)
{
    static char out[512];
    return cgroup_own_path(file, ctl, out, sizeof(out)) == 0 ? out : "(none)";
}

static void test_own_cgroup_from_proc_self_cgroup(void **state)
{
    struct fixture *f = *state;
    char file[128];
    snprintf(file, sizeof(file), "%s/cgroup", f->dir);
    /* A hybrid host: v1 controllers, some mounted together, and v2. */
    put(f->dir, "cgroup",
        "12:pids:/user.slice/user-1000.slice\n"
        "11:cpu,cpuacct:/user.slice\n"
        "4:memory:/process_api/a:b\n"
        "1:name=systemd:/user.slice/session-2.scope\n"
        "0::/user.slice/session-2.scope\n");
    assert_string_equal(own_path(file, "pids"), "/user.slice/user-1000.slice");
    assert_string_equal(own_path(file, "cpu"), "/user.slice");
    assert_string_equal(own_path(file, "cpuacct"), "/user.slice");
    assert_string_equal(own_path(file, "memory"), "/process_api/a:b");
    assert_string_equal(own_path(file, NULL), "/user.slice/session-2.scope");
    /* Whole words only. */
    assert_string_equal(own_path(file, "mem"), "(none)");
    assert_string_equal(own_path(file, "acct"), "(none)");
    assert_string_equal(own_path(file, "blkio"), "(none)");

    /* v2 alone: no v1 controller. */
    put(f->dir, "cgroup", "0::/\n");
    assert_string_equal(own_path(file, NULL), "/");
    assert_string_equal(own_path(file, "memory"), "(none)");
    /* v1 alone: no v2 line. */
    put(f->dir, "cgroup", "4:memory:/x\n1:name=systemd:/x\n");
    assert_string_equal(own_path(file, NULL), "(none)");

    snprintf(file, sizeof(file), "%s/missing", f->dir);
    assert_string_equal(own_path(file, NULL), "(none)");
}

static const char *mount_dir(const char *file, const char *ctl, const char *cgpath, size_t len)
{
    static char out[512];
    assert_true(len <= sizeof(out));
    return cgroup_mount_dir(file, ctl, cgpath, out, len) == 0 ? out : "(none)";
}

static void test_cgroup_directory_from_mountinfo(void **state)
{
    struct fixture *f = *state;
    char file[128];
    snprintf(file, sizeof(file), "%s/mountinfo", f->dir);
    /* The pids hierarchy as a container sees it: its cgroup namespace's
     * root is the mount's root. Optional fields ("shared:9") come before
     * the " - " separator. */
    put(f->dir, "mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory\n"
        "39 31 0:36 /kubepods/pod1 /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n");
    assert_string_equal(mount_dir(file, "memory", "/process_api/a", 512),
                        "/sys/fs/cgroup/memory/process_api/a");
    assert_string_equal(mount_dir(file, "cpuacct", "/x", 512), "/sys/fs/cgroup/cpu,cpuacct/x");
    assert_string_equal(mount_dir(file, NULL, "/", 512), "/sys/fs/cgroup/unified");
    assert_string_equal(mount_dir(file, NULL, "/a/b", 512), "/sys/fs/cgroup/unified/a/b");
    /* Below the mount's root: the path is taken relative to it. */
    assert_string_equal(mount_dir(file, "pids", "/kubepods/pod1/job", 512),
                        "/sys/fs/cgroup/pids/job");
    assert_string_equal(mount_dir(file, "pids", "/kubepods/pod1", 512), "/sys/fs/cgroup/pids");
    assert_string_equal(mount_dir(file, "pids", "/elsewhere", 512), "(none)");
    /* A root is a whole leading part of the path, not any prefix. */
    assert_string_equal(mount_dir(file, "pids", "/kubepods/pod10/job", 512), "(none)");
    /* Not mounted: a tmpfs is no hierarchy, blkio has none. */
    assert_string_equal(mount_dir(file, "blkio", "/", 512), "(none)");
    assert_string_equal(mount_dir(file, "mode=755", "/", 512), "(none)");
    /* Too long for out: no cut path. */
    assert_string_equal(mount_dir(file, "memory", "/process_api/a", 35), "(none)");
    assert_string_equal(mount_dir(file, "memory", "/process_api/a", 36),
                        "/sys/fs/cgroup/memory/process_api/a");

    /* v2 only, where it is usually mounted. */
    put(f->dir, "mountinfo", "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    assert_string_equal(mount_dir(file, NULL, "/system.slice/w.service", 512),
                        "/sys/fs/cgroup/system.slice/w.service");
    assert_string_equal(mount_dir(file, "memory", "/", 512), "(none)");
}

/* A pid that no process has (one that just ended). */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

/* A child that waits to be killed. */
static pid_t sleeper(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;)
            pause();
    }
    return pid;
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void expect_init_fails(const char *dir, const char *fmt)
{
    char why[1024], want[1024];
    snprintf(want, sizeof(want), fmt, dir);
    assert_int_equal(cgroup_init(dir, why, sizeof(why)), -1);
    assert_string_equal(why, want);
    assert_string_equal(cgroup_kind(), "none");
}

/* A delegated directory (STRATQ_CGROUP_DIR) is used or refused, never
 * fallen back from; before its own directory is made there, the
 * directories of executors that are gone are removed and whatever still
 * runs in their job cgroups is killed. */
static void test_a_delegated_directory(void **state)
{
    struct fixture *f = *state;
    const char *d = f->dir;
    expect_init_fails(d, "cannot read %s/cgroup.controllers: No such file or directory");
    put(d, "cgroup.controllers", "cpuset cpu io memory_extra pids\n");
    expect_init_fails(d, "cgroup v2 at %s lacks the memory and pids controllers (they are with a "
                         "v1 hierarchy, or not delegated)");
    put(d, "cgroup.controllers", "cpuset cpu io memory hugetlb\n");
    expect_init_fails(d, "cgroup v2 at %s lacks the memory and pids controllers (they are with a "
                         "v1 hierarchy, or not delegated)");

    /* It has both, but (a fixture) cannot enable them: the directories
     * are cleaned up all the same, and its own is not left behind. */
    put(d, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
    char gone1[64], gone2[64], gone3[64], foreign[64], live[64], own[64], victim_procs[128];
    struct stat ns;
    assert_int_equal(stat("/proc/self/ns/pid", &ns), 0);
    pid_t victim = sleeper();
    /* Named as earlier versions did, and with the pid namespace. */
    snprintf(gone1, sizeof(gone1), "stratq-exec-%d", (int)dead_pid());
    snprintf(gone2, sizeof(gone2), "stratq-exec-%d", (int)dead_pid());
    snprintf(gone3, sizeof(gone3), "stratq-exec-%d-%llu", (int)dead_pid(),
             (unsigned long long)ns.st_ino);
    /* Another pid namespace's executor: its pid means nothing here. */
    snprintf(foreign, sizeof(foreign), "stratq-exec-%d-%llu", (int)dead_pid(),
             (unsigned long long)ns.st_ino + 1);
    snprintf(live, sizeof(live), "stratq-exec-%d-%llu", (int)getppid(),
             (unsigned long long)ns.st_ino);
    snprintf(own, sizeof(own), "stratq-exec-%d-%llu", (int)getpid(), (unsigned long long)ns.st_ino);
    const char *const dirs[] = {gone1,   "job-1",           gone2,          "job-7",
                                live,    "job-3",           gone3,          foreign,
                                "job-2", "stratq-exec-12x", "stratq-exec-", "other"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        char path[512];
        if (!strncmp(dirs[i], "job-", 4))
            snprintf(path, sizeof(path), "%s/%s/%s", d, dirs[i - 1], dirs[i]);
        else
            snprintf(path, sizeof(path), "%s/%s", d, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(victim_procs, sizeof(victim_procs), "%s/job-7/cgroup.procs", gone2);
    char pids[32];
    snprintf(pids, sizeof(pids), "%d\n", (int)victim);
    put(d, victim_procs, pids);

    expect_init_fails(d, "cannot enable the memory and pids controllers in %s: No such file or "
                         "directory");
    assert_false(exists(d, gone1));
    /* (Its fixture file keeps job-7; a cgroup's files would not.) */
    assert_true(exists(d, victim_procs));
    /* Killed and reaped by the clean-up. */
    assert_int_equal(waitpid(victim, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_true(exists(d, live));
    assert_false(exists(d, gone3));
    assert_true(exists(d, foreign));
    assert_true(exists(d, "stratq-exec-12x"));
    assert_true(exists(d, "stratq-exec-"));
    assert_true(exists(d, "other"));
    assert_false(exists(d, own));
}

static void test_the_memory_limit_files(void **state)
{
    struct fixture *f = *state;
    struct cgroup_job cj = {.version = 2, .ndirs = 1};
    snprintf(cj.dir[0], sizeof(cj.dir[0]), "%s", f->dir);
    put(f->dir, "memory.max", "");
    put(f->dir, "memory.swap.max", "");
    assert_int_equal(cgroup_job_set_memory(&cj, 512), 0);
    assert_string_equal(get(f->dir, "memory.max"), "536870912");
    assert_string_equal(get(f->dir, "memory.swap.max"), "0");

    /* v1: with no swap accounting (no memsw file) the limit is set all
     * the same. */
    cj.version = 1;
    assert_int_equal(cgroup_job_set_memory(&cj, 1), -ENOENT);
    put(f->dir, "memory.limit_in_bytes", "");
    assert_int_equal(cgroup_job_set_memory(&cj, 1048576), 0);
    assert_string_equal(get(f->dir, "memory.limit_in_bytes"), "1099511627776");
    assert_string_equal(get(f->dir, "memory.memsw.limit_in_bytes"), "(none)");
    put(f->dir, "memory.memsw.limit_in_bytes", "");
    assert_int_equal(cgroup_job_set_memory(&cj, 2), 0);
    assert_string_equal(get(f->dir, "memory.memsw.limit_in_bytes"), "2097152");

    /* No cgroup layer: nothing to write. */
    cj.version = 0;
    assert_int_equal(cgroup_job_set_memory(&cj, 3), 0);
}

/* cgroup_job_destroy on a fixture job cgroup whose memory file says text. */
static bool destroy_with(const char *dir, int version, const char *text)
{
    struct cgroup_job cj = {.version = version, .ndirs = 1};
    snprintf(cj.dir[0], sizeof(cj.dir[0]), "%s", dir);
    put(dir, version == 2 ? "memory.events" : "memory.oom_control", text);
    bool oom = cgroup_job_destroy(&cj);
    assert_int_equal(cj.version, 0);
    assert_int_equal(cj.ndirs, 0);
    return oom;
}

#define V2_EVENTS "low 0\nhigh 0\nmax 12\noom %d\noom_kill %d\noom_group_kill 0\n"

static bool destroy_v2(const char *dir, int kills)
{
    char text[200];
    snprintf(text, sizeof(text), V2_EVENTS, kills, kills);
    return destroy_with(dir, 2, text);
}

/* The kernel's OOM kill count goes on across the jobs of a cgroup used
 * again: a job was killed when it grew during that job. */
static void test_oom_kills_are_counted_per_job(void **state)
{
    struct fixture *f = *state;
    put(f->dir, "cgroup.procs", "");
    assert_false(destroy_v2(f->dir, 0));
    assert_true(destroy_v2(f->dir, 1));
    assert_false(destroy_v2(f->dir, 1));
    assert_false(destroy_v2(f->dir, 1));
    assert_true(destroy_v2(f->dir, 3));
    /* A count lower than the last one's is a new cgroup's (the last one
     * would not empty): it is the new base. */
    assert_false(destroy_v2(f->dir, 0));
    assert_true(destroy_v2(f->dir, 1));

    /* v1: "oom_kill_disable" is not the count. */
    assert_false(destroy_with(f->dir, 1, "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n"));
    assert_true(destroy_with(f->dir, 1, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"));
    assert_false(destroy_with(f->dir, 1, "oom_kill_disable 0\nunder_oom 0\n"));
    assert_true(destroy_with(f->dir, 1, "oom_kill_disable 0\nunder_oom 1\noom_kill 2\n"));

    /* No layer: nothing to count, nothing to kill. */
    struct cgroup_job none = {0};
    assert_false(cgroup_job_destroy(&none));
}

/* Every process the job's cgroup lists is killed before the next job. */
static void test_destroy_kills_what_is_left(void **state)
{
    struct fixture *f = *state;
    pid_t a = sleeper(), b = sleeper();
    char pids[64];
    snprintf(pids, sizeof(pids), "%d\n%d\n", (int)a, (int)b);
    put(f->dir, "cgroup.procs", pids);
    assert_false(destroy_v2(f->dir, 0));
    /* Killed and reaped. */
    assert_int_equal(waitpid(a, NULL, WNOHANG), -1);
    assert_int_equal(waitpid(b, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* The real thing. A job child reports on the report pipe: its join's
 * result, then how many processes it could fork under the pids limit. */
#define MAX_PROCS 8

struct real {
    int report[2];
};

static int real_setup(void **state)
{
    char why[1024];
    if (geteuid() != 0) {
        print_message("not root: no cgroup of its own to make\n");
        *state = NULL;
        return 0;
    }
    if (cgroup_init("", why, sizeof(why)) < 0) {
        print_message("no cgroup layer here: %s\n", why);
        *state = NULL;
        return 0;
    }
    struct real *r = calloc(1, sizeof(*r));
    if (!r || pipe2(r->report, O_CLOEXEC) < 0)
        return -1;
    *state = r;
    return 0;
}

static int real_teardown(void **state)
{
    struct real *r = *state;
    cgroup_fini();
    if (r) {
        close(r->report[0]);
        close(r->report[1]);
        free(r);
    }
    return 0;
}

static void report(const struct real *r, int v)
{
    if (write(r->report[1], &v, sizeof(v)) != sizeof(v))
        _exit(1);
}

static int reported(const struct real *r)
{
    struct pollfd p = {r->report[0], POLLIN, 0};
    int v = 0;
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    assert_int_equal(read(r->report[0], &v, sizeof(v)), sizeof(v));
    return v;
}

/* A job: joins cj, reports, then runs what. */
static pid_t job(const struct real *r, const struct cgroup_job *cj,
                 void (*what)(const struct real *))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        report(r, cgroup_job_join(cj));
        what(r);
        for (;;)
            pause();
    }
    assert_int_equal(reported(r), 0);
    return pid;
}

/* Forks until the pids limit refuses, each child in a session of its
 * own: hiding from a kill of the job's process group. */
static void fork_until_refused(const struct real *r)
{
    int n = 0;
    for (; n < 4 * MAX_PROCS; n++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            setsid();
            for (;;)
                pause();
        }
    }
    report(r, n);
}

static void idle(const struct real *r)
{
    (void)r;
}

/* Touches far more memory than the job's limit. Should the kernel not
 * kill it, SIGALRM ends it (and the test fails on that signal). */
static void grow(const struct real *r)
{
    const size_t len = 512 << 20;
    alarm(WAIT_MS / 1000);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(1);
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    report(r, 1); /* not reached: killed */
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_a_job_cgroup_for_real(void **state)
{
    struct real *r = *state;
    if (!r)
        skip();
    const char *kind = cgroup_kind();
    assert_true(!strcmp(kind, "v1") || !strcmp(kind, "v2"));
    const bool v2 = !strcmp(kind, "v2");

    struct cgroup_job cj, again;
    assert_int_equal(cgroup_job_create(&cj, MAX_PROCS), 0);
    assert_int_equal(cj.version, v2 ? 2 : 1);
    const int ndirs = cj.ndirs;
    assert_int_equal(ndirs, v2 ? 1 : 2);
    char suffix[64];
    struct stat ns;
    assert_int_equal(stat("/proc/self/ns/pid", &ns), 0);
    snprintf(suffix, sizeof(suffix), "/stratq-exec-%d-%llu/job-", (int)getpid(),
             (unsigned long long)ns.st_ino);
    for (int i = 0; i < cj.ndirs; i++) {
        assert_non_null(strstr(cj.dir[i], suffix));
        assert_true(exists(cj.dir[i], "cgroup.procs"));
    }
    const char *mem = cj.dir[0], *pids = cj.dir[v2 ? 0 : 1];
    assert_string_equal(get(pids, "pids.max"), "8\n");
    assert_int_equal(cgroup_job_set_memory(&cj, 64), 0);
    assert_string_equal(get(mem, v2 ? "memory.max" : "memory.limit_in_bytes"), "67108864\n");

    /* The job and all it forked are in its cgroup, up to the limit. */
    pid_t pid = job(r, &cj, fork_until_refused);
    const int forked = reported(r);
    assert_true(forked >= 1 && forked < MAX_PROCS);
    char procs[4096];
    snprintf(procs, sizeof(procs), "%s", get(pids, "cgroup.procs"));
    assert_int_equal(count_lines(procs), forked + 1);
    char line[32];
    snprintf(line, sizeof(line), "%d\n", (int)pid);
    assert_non_null(strstr(procs, line));

    /* Its end leaves nothing running, however it hid. */
    assert_false(cgroup_job_destroy(&cj));
    for (int i = 0; i < ndirs; i++)
        assert_string_equal(get(cj.dir[i], "cgroup.procs"), "");
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);

    /* The next job has the same cgroup, its limits kept; past its memory
     * the kernel kills it, and its end says so. */
    assert_int_equal(cgroup_job_create(&again, MAX_PROCS), 0);
    assert_string_equal(again.dir[0], mem);
    assert_string_equal(get(pids, "pids.max"), "8\n");
    assert_int_equal(cgroup_job_set_memory(&again, 32), 0);
    pid = job(r, &again, grow);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_true(cgroup_job_destroy(&again));

    /* The kills counted before it are not this job's. */
    assert_int_equal(cgroup_job_create(&again, MAX_PROCS), 0);
    assert_string_equal(again.dir[0], mem);
    /* And it may ask for more memory than the job before it (v1 refuses a
     * limit above the swap limit, so that one is raised first). */
    assert_int_equal(cgroup_job_set_memory(&again, 64), 0);
    assert_string_equal(get(mem, v2 ? "memory.max" : "memory.limit_in_bytes"), "67108864\n");
    if (!v2 && exists(mem, "memory.memsw.limit_in_bytes"))
        assert_string_equal(get(mem, "memory.memsw.limit_in_bytes"), "67108864\n");
    pid = job(r, &again, idle);
    assert_false(cgroup_job_destroy(&again));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);

    /* The executor's end removes its directories. */
    char base[2][320];
    for (int i = 0; i < ndirs; i++) {
        snprintf(base[i], sizeof(base[i]), "%s", cj.dir[i]);
        *strrchr(base[i], '/') = '\0';
    }
    cgroup_fini();
    assert_string_equal(cgroup_kind(), "none");
    for (int i = 0; i < ndirs; i++)
        assert_false(exists(base[i], ""));
}

/* The next job's spare gets a cgroup of its own while the last job's
 * processes are still in theirs: two, used in turn, and no third. */
static void test_two_job_cgroups_in_turn(void **state)
{
    struct real *r = *state;
    if (!r)
        skip();
    struct cgroup_job last, spare, third;
    assert_int_equal(cgroup_job_create(&last, MAX_PROCS), 0);
    pid_t pid = job(r, &last, idle);
    assert_int_equal(cgroup_job_create(&spare, MAX_PROCS), 0);
    assert_string_not_equal(spare.dir[0], last.dir[0]);
    assert_int_not_equal(spare.slot, last.slot);
    assert_int_equal(cgroup_job_create(&third, MAX_PROCS), -EBUSY);
    /* The spare's process is in its own, not in the last job's. */
    pid_t spid = job(r, &spare, idle);
    char line[32];
    snprintf(line, sizeof(line), "%d\n", (int)spid);
    assert_null(strstr(get(last.dir[0], "cgroup.procs"), line));
    assert_non_null(strstr(get(spare.dir[0], "cgroup.procs"), line));

    /* The last job's end kills only its own; its cgroup is the next
     * spare's. */
    char last_dir[320];
    snprintf(last_dir, sizeof(last_dir), "%s", last.dir[0]);
    assert_false(cgroup_job_destroy(&last));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(kill(spid, 0), 0);
    assert_int_equal(cgroup_job_create(&third, MAX_PROCS), 0);
    assert_string_equal(third.dir[0], last_dir);
    assert_false(cgroup_job_destroy(&spare));
    assert_int_equal(waitpid(spid, NULL, WNOHANG), -1);
    assert_false(cgroup_job_destroy(&third));
}

int main(void)
{
    /* A test that waits past this has failed. */
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_own_cgroup_from_proc_self_cgroup, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_directory_from_mountinfo, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_delegated_directory, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_the_memory_limit_files, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_oom_kills_are_counted_per_job, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_kills_what_is_left, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_job_cgroup_for_real, real_setup, real_teardown),
        cmocka_unit_test_setup_teardown(test_two_job_cgroups_in_turn, real_setup, real_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

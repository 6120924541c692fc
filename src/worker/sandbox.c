#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ll_create(const struct landlock_ruleset_attr *attr, size_t size, unsigned flags)
{
    return (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

void sandbox_probe(struct sandbox_status *st)
{
    memset(st, 0, sizeof(*st));
    int abi = ll_create(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi > 0) {
        st->landlock_abi = abi;
    } else {
        snprintf(st->landlock_why, sizeof(st->landlock_why), "%s",
                 errno == ENOSYS       ? "the kernel has no Landlock"
                 : errno == EOPNOTSUPP ? "Landlock is disabled at boot"
                                       : strerror(errno));
    }
    st->seccomp = prctl(PR_GET_SECCOMP) >= 0;
    if (!st->seccomp)
        snprintf(st->seccomp_why, sizeof(st->seccomp_why), "%s", strerror(errno));
}

void sandbox_describe(const struct sandbox_status *st, char *buf, size_t len)
{
    char ll[160];
    if (st->landlock_abi)
        snprintf(ll, sizeof(ll), "active (ABI %d)", st->landlock_abi);
    else
        snprintf(ll, sizeof(ll), "unavailable: %s", st->landlock_why);
    snprintf(buf, len,
             "no_new_privs: active\nrlimits: active (address space, CPU, file size, open "
             "files, core 0)\nseccomp: %s%s\nlandlock: %s\nown session and process group: "
             "active\nnamespaces, cgroup, dedicated uid: not used yet",
             st->seccomp ? "active" : "unavailable: ", st->seccomp ? "" : st->seccomp_why, ll);
}

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE                                                                                   \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                               \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |  \
     LANDLOCK_ACCESS_FS_MAKE_SYM)
#define FS_ALL                                                                                     \
    (FS_READ | FS_WRITE | LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |              \
     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK)

/* The rules, recorded once by sandbox_prepare() and applied by each child
 * in sandbox_enter(): a child builds its own ruleset rather than inherit a
 * descriptor across forks. */
#define MAX_RULES 24
static struct {
    char path[4096];
    __u64 access;
} rules[MAX_RULES];
static int nrules, landlock_abi;

static void add_rule(const char *path, __u64 access)
{
    if (nrules < MAX_RULES && access && path && path[0] == '/') {
        snprintf(rules[nrules].path, sizeof(rules[nrules].path), "%s", path);
        rules[nrules].access = access;
        nrules++;
    }
}

int sandbox_prepare(const char *harness_dir, const char *work_dir, const char *python)
{
    int abi = ll_create(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi <= 0)
        return -errno;
    landlock_abi = abi;
    /* Read-only: the interpreter, its libraries, stdlib and site-packages
     * (all under /usr on a merged-/usr system), the loader's cache, the
     * time zone, the CPU topology numpy and OpenBLAS look at, and the
     * harness. Nothing else of the host: not /etc, /home, /root, /proc. */
    static const char *const ro[] = {"/usr",           "/lib",
                                     "/lib64",         "/etc/ld.so.cache",
                                     "/etc/localtime", "/sys/devices/system/cpu",
                                     "/dev/urandom"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        add_rule(ro[i], FS_READ);
    add_rule(harness_dir, FS_READ);
    /* Execute: nothing in warm mode; in cold mode the interpreter and its
     * ELF loader only (so no /bin/sh, and nothing the job wrote). */
    if (python && python[0] == '/') {
        char real[4096];
        if (realpath(python, real))
            add_rule(real, FS_READ | LANDLOCK_ACCESS_FS_EXECUTE);
        if (realpath("/lib64/ld-linux-x86-64.so.2", real))
            add_rule(real, FS_READ | LANDLOCK_ACCESS_FS_EXECUTE);
    }
    add_rule("/dev/null", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE);
    /* POSIX semaphores (multiprocessing's locks) live in /dev/shm. Known
     * limit until jobs get a private /dev/shm: a file a job leaves there
     * outlives it. */
    add_rule("/dev/shm", FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG |
                             LANDLOCK_ACCESS_FS_REMOVE_FILE);
    /* Read-write: the executor's work directory, which holds the job's own
     * temporary directory. */
    add_rule(work_dir, FS_READ | FS_WRITE | (abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0));
    return 0;
}

/* In the child: builds the ruleset from the recorded rules and restricts
 * itself. Only system calls (async-signal-safe). */
static int landlock_enter(void)
{
    struct landlock_ruleset_attr attr = {.handled_access_fs = FS_ALL};
    if (landlock_abi >= 2)
        attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
    int fd = ll_create(&attr, sizeof(attr), 0);
    if (fd < 0)
        return -errno;
    for (int i = 0; i < nrules; i++) {
        struct landlock_path_beneath_attr rule = {.allowed_access = rules[i].access};
        rule.parent_fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (rule.parent_fd < 0)
            continue; /* a path this system does not have */
        if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0 &&
            errno == EINVAL) {
            /* A file, not a directory: only file rights apply to it. */
            rule.allowed_access &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                   LANDLOCK_ACCESS_FS_EXECUTE;
            syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        }
        close(rule.parent_fd);
    }
    int r = (int)syscall(SYS_landlock_restrict_self, fd, 0);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

/* Denied outright (EPERM): whatever reaches outside the job's own process
 * tree, the kernel's attack surface, or other processes' memory. */
static const int denied[] = {
    SCMP_SYS(ptrace),
    SCMP_SYS(process_vm_readv),
    SCMP_SYS(process_vm_writev),
    SCMP_SYS(mount),
    SCMP_SYS(umount2),
    SCMP_SYS(pivot_root),
    SCMP_SYS(chroot),
    SCMP_SYS(unshare),
    SCMP_SYS(setns),
    SCMP_SYS(bpf),
    SCMP_SYS(keyctl),
    SCMP_SYS(add_key),
    SCMP_SYS(request_key),
    SCMP_SYS(perf_event_open),
    SCMP_SYS(kexec_load),
    SCMP_SYS(kexec_file_load),
    SCMP_SYS(init_module),
    SCMP_SYS(finit_module),
    SCMP_SYS(delete_module),
    SCMP_SYS(personality),
    SCMP_SYS(userfaultfd),
    SCMP_SYS(io_uring_setup),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
    SCMP_SYS(open_by_handle_at),
    SCMP_SYS(name_to_handle_at),
    SCMP_SYS(syslog),
    SCMP_SYS(reboot),
    SCMP_SYS(swapon),
    SCMP_SYS(swapoff),
    SCMP_SYS(settimeofday),
    SCMP_SYS(clock_settime),
    SCMP_SYS(acct),
    SCMP_SYS(quotactl),
    SCMP_SYS(mknod),
    SCMP_SYS(mknodat),
    SCMP_SYS(pidfd_getfd),
    SCMP_SYS(kcmp),
    SCMP_SYS(fanotify_init),
    SCMP_SYS(lookup_dcookie),
    SCMP_SYS(vhangup),
    SCMP_SYS(iopl),
    SCMP_SYS(ioperm),
};

static int install_seccomp(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r = ctx ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < sizeof(denied) / sizeof(denied[0]); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
    /* Sockets: AF_UNIX only (socketpair, multiprocessing); no network. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                             SCMP_A0_32(SCMP_CMP_NE, AF_UNIX));
    /* New namespaces through clone: refused like unshare. clone3 passes its
     * flags in memory a filter cannot read: ENOSYS makes libc fall back to
     * clone, which is checked. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    for (int ns = 0; r == 0 && ns < 6; ns++) {
        static const unsigned long nsflags[] = {CLONE_NEWNS,  CLONE_NEWPID, CLONE_NEWNET,
                                                CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP};
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, nsflags[ns], nsflags[ns]));
    }
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Signals: to single processes only. kill(-1) would reach every process
     * of the uid and a negative pid a whole process group (kill(0) still
     * reaches the job's own group). */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                             SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)-1));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                             SCMP_A0_32(SCMP_CMP_MASKED_EQ, 0x80000000u, 0x80000000u));
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r;
}

int sandbox_enter(void)
{
    struct rlimit rl = {1024, 1024};
    setrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max = 1024UL * 1024 * 1024;
    setrlimit(RLIMIT_FSIZE, &rl);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (landlock_abi > 0) {
        int r = landlock_enter();
        if (r < 0)
            return r;
    }
    return install_seccomp();
}

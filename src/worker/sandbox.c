#define _GNU_SOURCE
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"

/* Landlock beyond the kernel headers of Debian 12 (6.1): truncation (ABI
 * 3), TCP (ABI 4), signal and abstract-socket scoping (ABI 6). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
struct ll_ruleset_attr {
    __u64 handled_access_fs, handled_access_net, scoped;
};

static const char *const layer_names[SB__COUNT] = {
    [SB_NO_NEW_PRIVS] = "no_new_privs",
    [SB_SECCOMP] = "seccomp",
    [SB_LANDLOCK] = "landlock",
    [SB_RLIMITS] = "rlimits",
    [SB_SESSION] = "session",
    [SB_USERNS] = "userns",
    [SB_NETNS] = "netns",
    [SB_PIDNS] = "pidns",
    [SB_IPCNS] = "ipcns",
    [SB_MOUNTNS] = "mountns",
    [SB_CGROUP] = "cgroup",
    [SB_UID] = "uid",
};

const char *sandbox_layer_name(enum sandbox_layer l)
{
    return (unsigned)l < SB__COUNT ? layer_names[l] : NULL;
}

/* What the executor decided, read by each child in sandbox_enter. */
static struct {
    bool use[SB__COUNT];
    int landlock_abi;
    uid_t uid;
    gid_t gid, outer_gid;
    uid_t outer_uid;
    long max_procs;
    long long max_tmp;
    int own_pidns;              /* the executor's own pid namespace (root, pid layer) */
    bool warm;                  /* jobs are forks of the warm interpreter: no exec */
    bool signal_scope;          /* Landlock scopes the job's signals (ABI 6, not disabled) */
    pid_t executor, supervisor; /* the worker's processes (host pids) */
} sb = {.own_pidns = -1};

uid_t sandbox_job_uid(void)
{
    return sb.use[SB_UID] ? sb.uid : getuid();
}

gid_t sandbox_job_gid(void)
{
    return sb.use[SB_UID] ? sb.gid : getgid();
}

static int ll_create(const void *attr, size_t size, unsigned flags)
{
    return (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

/* Parses a comma-separated list of layer names into set. "namespaces"
 * stands for the five namespaces; "signal_scope" (only where scope is not
 * NULL) sets *scope. Returns -1 with the unknown name in err. */
static int parse_layers(const char *list, bool set[SB__COUNT], bool *scope, char *err,
                        size_t errlen)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list ? list : "");
    for (char *save, *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        if (!strcmp(w, "namespaces")) {
            set[SB_USERNS] = set[SB_NETNS] = set[SB_PIDNS] = set[SB_IPCNS] = set[SB_MOUNTNS] = true;
            continue;
        }
        if (scope && !strcmp(w, "signal_scope")) {
            *scope = true;
            continue;
        }
        int i = 0;
        while (i < SB__COUNT && strcmp(layer_names[i], w) != 0)
            i++;
        if (i == SB__COUNT) {
            snprintf(err, errlen,
                     "unknown sandbox layer '%s'; the layers are no_new_privs, seccomp, landlock, "
                     "rlimits, session, userns, netns, pidns, ipcns, mountns (or namespaces), "
                     "cgroup, uid",
                     w);
            return -1;
        }
        set[i] = true;
    }
    return 0;
}

/* Writes text to path (a /proc file): async-signal-safe. */
static int put(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = write(fd, text, len) == (ssize_t)len ? 0 : -errno;
    close(fd);
    return r;
}

/* Formats "<n> <n> 1\n" without stdio (async-signal-safe). */
static size_t id_map(char *buf, unsigned long id)
{
    char digits[24];
    size_t n = 0, k = 0;
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < n; i++)
            buf[k++] = digits[n - 1 - i];
        buf[k++] = ' ';
    }
    buf[k++] = '1';
    buf[k++] = '\n';
    return k;
}

/* The namespaces of use[] other than the pid one, entered by the calling
 * process; a non-root caller goes through a user namespace in which it
 * keeps its own uid and gid. The mount namespace gets a private /dev/shm.
 * Only system calls. */
static int enter_namespaces(const bool use[SB__COUNT])
{
    int flags = (use[SB_USERNS] ? CLONE_NEWUSER : 0) | (use[SB_NETNS] ? CLONE_NEWNET : 0) |
                (use[SB_IPCNS] ? CLONE_NEWIPC : 0) | (use[SB_MOUNTNS] ? CLONE_NEWNS : 0);
    if (flags && unshare(flags) < 0)
        return -errno;
    if (use[SB_USERNS]) {
        /* A non-dumpable process's /proc/self files are root's: it could not
         * write its own maps. Nothing else runs in this process meanwhile. */
        char map[64];
        int dumpable = prctl(PR_GET_DUMPABLE);
        prctl(PR_SET_DUMPABLE, 1);
        int r = put("/proc/self/setgroups", "deny", 4);
        if (r == 0)
            r = put("/proc/self/uid_map", map, id_map(map, sb.outer_uid));
        if (r == 0)
            r = put("/proc/self/gid_map", map, id_map(map, sb.outer_gid));
        prctl(PR_SET_DUMPABLE, dumpable > 0 ? 1 : 0);
        if (r < 0)
            return r;
    }
    if (use[SB_MOUNTNS]) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=1g,nr_inodes=4096,mode=1777") < 0)
            return -errno;
    }
    return 0;
}

/* Runs fn in a throwaway child; returns 0 or the -errno it failed with. */
static int in_child(int (*fn)(const void *), const void *arg)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        close(p[0]);
        int r = fn(arg);
        (void)!write(p[1], &r, sizeof(r));
        _exit(0);
    }
    close(p[1]);
    int r = -ECHILD;
    if (read(p[0], &r, sizeof(r)) != sizeof(r))
        r = -ECHILD;
    close(p[0]);
    waitpid(pid, NULL, 0);
    return r;
}

static int try_namespaces(const void *arg)
{
    const bool *use = arg;
    int r = enter_namespaces(use);
    if (r == 0 && use[SB_PIDNS] && unshare(CLONE_NEWPID) < 0)
        r = -errno;
    return r;
}

static int try_uid(const void *arg)
{
    (void)arg;
    if (setgroups(0, NULL) < 0 || setresgid(sb.gid, sb.gid, sb.gid) < 0 ||
        setresuid(sb.uid, sb.uid, sb.uid) < 0)
        return -errno;
    return 0;
}

static int try_cgroup(const void *arg)
{
    return cgroup_job_join(arg);
}

/* Processes of the real uid, as the kernel counts them for RLIMIT_NPROC
 * (those this pid namespace can see). */
static long count_uid_procs(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long n = 0;
    while (d && (e = readdir(d))) {
        char path[300], line[256];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        unsigned long ruid;
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "Uid: %lu", &ruid) == 1) {
                n += ruid == uid;
                break;
            }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

void sandbox_options_load(struct sandbox_options *opt)
{
    *opt = (struct sandbox_options){
        .disable = config_str(CFG_SANDBOX_DISABLE),
        .cgroup = config_str(CFG_CGROUP_DIR),
        .job_uid = config_int(CFG_JOB_UID),
        .max_procs = (long)config_int(CFG_JOB_MAX_PROCS),
        .max_tmp = config_int(CFG_JOB_MAX_TMP),
        .warm = !strcmp(config_str(CFG_MODE), "warm"),
    };
}

static void set_why(struct sandbox_status *st, enum sandbox_layer l, bool active, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void set_why(struct sandbox_status *st, enum sandbox_layer l, bool active, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->why[l], sizeof(st->why[l]), fmt, ap);
    va_end(ap);
    st->active[l] = active;
}

static const char *errno_why(int e)
{
    return e == -EPERM || e == -EACCES
               ? "not permitted here (an unprivileged container, or the host forbids it)"
               : strerror(-e);
}

/* The layers that are always on, and the two the kernel alone decides:
 * seccomp and Landlock (with its ABI and whether it scopes signals). */
static void probe_fixed_layers(struct sandbox_status *st, const struct sandbox_options *opt,
                               bool no_signal_scope)
{
    set_why(st, SB_NO_NEW_PRIVS, true, "active");
    set_why(st, SB_SESSION, true, "active (own session and process group)");
    set_why(st, SB_RLIMITS, true,
            "active (address space, CPU time, %ld processes, file size, open files, no core)",
            opt->max_procs);
    if (prctl(PR_GET_SECCOMP) >= 0)
        set_why(st, SB_SECCOMP, true,
                "active (no sockets but AF_UNIX; no ptrace, mount, namespaces, bpf, ...)");
    else
        set_why(st, SB_SECCOMP, false, "unavailable: %s", strerror(errno));
    int abi = ll_create(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi > 0) {
        st->landlock_abi = sb.landlock_abi = abi;
        sb.signal_scope = abi >= 6 && !no_signal_scope;
        const char *scopes = abi < 6           ? ""
                             : sb.signal_scope ? ", signals and abstract sockets"
                                               : ", abstract sockets (signal scoping disabled)";
        set_why(st, SB_LANDLOCK, true, "active (ABI %d: files%s%s)", abi, abi >= 4 ? ", TCP" : "",
                scopes);
    } else {
        set_why(st, SB_LANDLOCK, false, "unavailable: %s",
                errno == ENOSYS       ? "the kernel has no Landlock"
                : errno == EOPNOTSUPP ? "Landlock is disabled at boot"
                                      : strerror(errno));
    }
}

/* The dedicated uid: root only, tried with a real child. */
static void probe_uid(struct sandbox_status *st, const struct sandbox_options *opt,
                      const bool off[SB__COUNT], bool root)
{
    sb.uid = (uid_t)(opt->job_uid ? opt->job_uid : 200000 + getpid());
    sb.gid = (gid_t)sb.uid;
    int ru;
    if (off[SB_UID])
        set_why(st, SB_UID, false, "unavailable: disabled by STRATQ_SANDBOX_DISABLE");
    else if (!root)
        set_why(st, SB_UID, false, "unavailable: the worker is not root");
    else if ((ru = in_child(try_uid, NULL)) < 0)
        set_why(st, SB_UID, false, "unavailable: %s", errno_why(ru));
    else
        set_why(st, SB_UID, true, "active (uid %lu, not the worker's)", (unsigned long)sb.uid);
    sb.use[SB_UID] = st->active[SB_UID];
}

/* The user namespace, which a non-root worker needs for the others; sets
 * use[SB_USERNS] when it works. */
static void probe_userns(struct sandbox_status *st, const bool off[SB__COUNT], bool root,
                         bool use[SB__COUNT])
{
    if (off[SB_USERNS])
        set_why(st, SB_USERNS, false, "unavailable: disabled by STRATQ_SANDBOX_DISABLE");
    else if (root)
        set_why(st, SB_USERNS, false,
                "unavailable: not needed, the worker is root (the other namespaces need no user "
                "namespace, and jobs get a uid of their own)");
    else {
        use[SB_USERNS] = true;
        int r = in_child(try_namespaces, use);
        if (r == 0)
            set_why(st, SB_USERNS, true, "active (lets a non-root worker make the namespaces)");
        else
            set_why(st, SB_USERNS, false, "unavailable: %s", errno_why(r));
        use[SB_USERNS] = st->active[SB_USERNS];
    }
}

/* Namespaces: as root directly; otherwise through a user namespace. Each
 * is tried alone in a real child. */
static void probe_namespaces(struct sandbox_status *st, const bool off[SB__COUNT], bool root)
{
    bool use[SB__COUNT] = {false};
    probe_userns(st, off, root, use);
    static const struct {
        enum sandbox_layer l;
        const char *what;
    } ns[] = {{SB_NETNS, "no network interfaces, not even loopback"},
              {SB_IPCNS, "System V IPC and POSIX message queues of its own"},
              {SB_MOUNTNS, "a private /dev/shm, gone with the job"},
              {SB_PIDNS, "the job sees only its own processes, which all end with it"}};
    for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
        enum sandbox_layer l = ns[i].l;
        if (off[l]) {
            set_why(st, l, false, "unavailable: disabled by STRATQ_SANDBOX_DISABLE");
            continue;
        }
        if (!root && !use[SB_USERNS]) {
            set_why(st, l, false, "unavailable: a non-root worker needs a user namespace for it");
            continue;
        }
        bool one[SB__COUNT] = {false};
        one[SB_USERNS] = use[SB_USERNS];
        one[l] = true;
        int r = in_child(try_namespaces, one);
        if (r == 0)
            set_why(st, l, true, "active (%s)", ns[i].what);
        else
            set_why(st, l, false, "unavailable: %s", errno_why(r));
        use[l] = st->active[l];
    }
    if (!use[SB_NETNS] && !use[SB_IPCNS] && !use[SB_MOUNTNS] && !use[SB_PIDNS] && use[SB_USERNS]) {
        use[SB_USERNS] = false; /* nothing to make with it */
        set_why(st, SB_USERNS, false, "unavailable: no other namespace is in use");
    }
}

/* The per-job cgroup, tried with a real child. */
static void probe_cgroup(struct sandbox_status *st, const struct sandbox_options *opt,
                         const bool off[SB__COUNT])
{
    char why[300] = "";
    if (off[SB_CGROUP]) {
        set_why(st, SB_CGROUP, false, "unavailable: disabled by STRATQ_SANDBOX_DISABLE");
    } else if (cgroup_init(opt->cgroup, why, sizeof(why)) < 0) {
        set_why(st, SB_CGROUP, false, "unavailable: %s", why);
    } else {
        struct cgroup_job cj;
        int r = cgroup_job_create(&cj, opt->max_procs);
        if (r == 0)
            r = in_child(try_cgroup, &cj);
        cgroup_job_remove(&cj);
        if (r == 0)
            set_why(st, SB_CGROUP, true,
                    "active (%s: memory limit, at most %ld processes, all killed with the job)",
                    cgroup_kind(), opt->max_procs);
        else
            set_why(st, SB_CGROUP, false,
                    "unavailable: cannot move a process into a job "
                    "cgroup: %s",
                    strerror(-r));
        if (r < 0 || opt->check_only)
            cgroup_fini();
    }
}

int sandbox_probe(struct sandbox_status *st, const struct sandbox_options *opt, char *err,
                  size_t errlen)
{
    bool off[SB__COUNT] = {false};
    memset(st, 0, sizeof(*st));
    memset(&sb, 0, sizeof(sb));
    sb.own_pidns = -1;
    bool no_signal_scope = false;
    if (parse_layers(opt->disable, off, &no_signal_scope, err, errlen) < 0)
        return -1;
    for (int i = SB_NO_NEW_PRIVS; i <= SB_SESSION; i++)
        if (off[i]) {
            snprintf(err, errlen,
                     "the %s layer is always on; STRATQ_SANDBOX_DISABLE may name only userns, "
                     "netns, pidns, ipcns, mountns (or namespaces), cgroup, uid and "
                     "signal_scope",
                     layer_names[i]);
            return -1;
        }
    sb.outer_uid = getuid();
    sb.outer_gid = getgid();
    sb.max_procs = opt->max_procs;
    sb.max_tmp = opt->max_tmp > 0 ? opt->max_tmp : 128 * 1024 * 1024;
    sb.warm = opt->warm;
    sb.executor = getpid();
    sb.supervisor = getppid();
    bool root = geteuid() == 0;

    probe_fixed_layers(st, opt, no_signal_scope);
    probe_uid(st, opt, off, root);
    probe_namespaces(st, off, root);
    probe_cgroup(st, opt, off);
    for (int i = SB_USERNS; i < SB__COUNT; i++)
        sb.use[i] = st->active[i];
    return 0;
}

int sandbox_require(const char *layers_json, const char *required, char *err, size_t errlen)
{
    bool want[SB__COUNT] = {false};
    if (parse_layers(required, want, NULL, err, errlen) < 0)
        return -2;
    json_t *layers = json_loads(layers_json ? layers_json : "{}", 0, NULL);
    int r = 0;
    for (int i = 0; r == 0 && i < SB__COUNT; i++) {
        const char *v = json_string_value(json_object_get(layers, layer_names[i]));
        if (want[i] && (!v || strcmp(v, "active") != 0)) {
            snprintf(err, errlen, "the %s layer named in STRATQ_SANDBOX_REQUIRE is %s",
                     layer_names[i], v ? v : "unknown");
            r = -1;
        }
    }
    json_decref(layers);
    return r;
}

void sandbox_describe(const struct sandbox_status *st, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < SB__COUNT && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s: %s", i ? "\n" : "", layer_names[i],
                              st->why[i]);
}

char *sandbox_status_json(const struct sandbox_status *st)
{
    json_t *o = json_object();
    for (int i = 0; i < SB__COUNT; i++)
        json_object_set_new(o, layer_names[i], json_string(st->active[i] ? "active" : st->why[i]));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
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
 * descriptor across forks. It opens the rules' paths before it takes the
 * job's uid, which may not be able to reach them (a checkout under a 0700
 * home): a rule is on the file, not on the path to it. */
#define MAX_RULES 24
static struct {
    char path[4096];
    __u64 access;
    int fd; /* in the child, between landlock_open() and landlock_enter() */
} rules[MAX_RULES];
static int nrules;
/* The data directory the child opens as SANDBOX_DATA_FD, or "". */
static char data_dir_path[4096];

static void add_rule(const char *path, __u64 access)
{
    if (nrules < MAX_RULES && access && path && path[0] == '/') {
        snprintf(rules[nrules].path, sizeof(rules[nrules].path), "%s", path);
        rules[nrules].access = access;
        nrules++;
    }
}

static int build_seccomp(void);

int sandbox_prepare(const char *harness_dir, const char *python, const char *data_dir)
{
    int abi = sb.landlock_abi;
    __u64 trunc = abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0;
    nrules = 0;
    snprintf(data_dir_path, sizeof(data_dir_path), "%s", data_dir ? data_dir : "");
    int r = build_seccomp();
    if (r < 0 || abi <= 0)
        return r;
    /* Read-only: the interpreter, its libraries, stdlib and site-packages
     * (all under /usr on a merged-/usr system), the loader's cache, the
     * time zone, the CPU topology numpy and OpenBLAS look at, the harness
     * and the data directory. Nothing else of the host: not /etc, /home,
     * /root, /proc. */
    static const char *const ro[] = {"/usr",           "/lib",
                                     "/lib64",         "/etc/ld.so.cache",
                                     "/etc/localtime", "/sys/devices/system/cpu",
                                     "/dev/urandom"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        add_rule(ro[i], FS_READ);
    add_rule(harness_dir, FS_READ);
    if (data_dir && data_dir[0])
        add_rule(data_dir, FS_READ);
    /* Execute: the Python interpreter and its ELF loader only (so no
     * /bin/sh, and nothing the job wrote). */
    if (python && python[0] == '/') {
        char real[4096];
        if (realpath(python, real))
            add_rule(real, FS_READ | LANDLOCK_ACCESS_FS_EXECUTE);
        if (realpath("/lib64/ld-linux-x86-64.so.2", real))
            add_rule(real, FS_READ | LANDLOCK_ACCESS_FS_EXECUTE);
    }
    add_rule("/dev/null", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | trunc);
    /* POSIX shared memory and semaphores (multiprocessing) live in
     * /dev/shm: the job's own tmpfs when the mount namespace is in use.
     * Without one it is the host's (the pod's), shared by every job of the
     * uid, and Landlock cannot tell one job's files there from another's:
     * the job gets none (docs/security.md). */
    if (sb.use[SB_MOUNTNS])
        add_rule("/dev/shm", FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG |
                                 LANDLOCK_ACCESS_FS_REMOVE_FILE | trunc);
    /* The last rule is the job's own directory (landlock_open), read-write;
     * not the executor's work directory that holds it, where the job could
     * list what others left or rename its own out of the cleanup's way. */
    return 0;
}

/* The job's directory: the rule after the recorded ones. */
static int job_dir_fd = -1;

/* In the child, with the executor's credentials: opens the rules' paths,
 * and the job's directory DIR. */
static void landlock_open(const char *dir)
{
    for (int i = 0; i < nrules; i++)
        rules[i].fd = open(rules[i].path, O_PATH | O_CLOEXEC);
    job_dir_fd = dir[0] ? open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
}

/* In the child, after landlock_open(): builds the ruleset from the
 * recorded rules and restricts itself. Only system calls. */
static int landlock_enter(void)
{
    int abi = sb.landlock_abi;
    struct ll_ruleset_attr attr = {.handled_access_fs = FS_ALL};
    size_t size = sizeof(__u64);
    if (abi >= 2)
        attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 4) {
        /* No TCP at all: no rule allows a port. */
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = 2 * sizeof(__u64);
    }
    if (abi >= 6) {
        /* No signal to a process outside the job, no abstract socket of
         * the host. */
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | (sb.signal_scope ? LL_SCOPE_SIGNAL : 0);
        size = sizeof(attr);
    }
    int fd = ll_create(&attr, size, 0);
    if (fd < 0)
        return -errno;
    if (job_dir_fd >= 0) {
        __u64 trunc = abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0;
        struct landlock_path_beneath_attr rule = {.allowed_access =
                                                      FS_READ | FS_WRITE | trunc |
                                                      (abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0),
                                                  .parent_fd = job_dir_fd};
        int r = (int)syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        int e = errno;
        close(job_dir_fd);
        job_dir_fd = -1;
        if (r < 0) {
            close(fd);
            return -e;
        }
    }
    for (int i = 0; i < nrules; i++) {
        struct landlock_path_beneath_attr rule = {.allowed_access = rules[i].access};
        rule.parent_fd = rules[i].fd;
        rules[i].fd = -1;
        if (rule.parent_fd < 0)
            continue; /* a path this system does not have */
        if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0 &&
            errno == EINVAL) {
            /* A file, not a directory: only file rights apply to it. */
            rule.allowed_access &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                   LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_TRUNCATE;
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
    /* System V IPC and POSIX message queues outlive a process: a job has
     * no use for them. It can make none, and must reach none it did not
     * make: the calls that take an id (or, *_STAT_ANY, an index into every
     * object of the namespace, with no permission check) or a queue's name
     * are refused too. */
    SCMP_SYS(shmget),
    SCMP_SYS(shmat),
    SCMP_SYS(shmdt),
    SCMP_SYS(shmctl),
    SCMP_SYS(semget),
    SCMP_SYS(semop),
    SCMP_SYS(semtimedop),
    SCMP_SYS(semctl),
    SCMP_SYS(msgget),
    SCMP_SYS(msgsnd),
    SCMP_SYS(msgrcv),
    SCMP_SYS(msgctl),
    SCMP_SYS(mq_open),
    SCMP_SYS(mq_unlink),
    SCMP_SYS(mq_timedsend),
    SCMP_SYS(mq_timedreceive),
    SCMP_SYS(mq_notify),
    SCMP_SYS(mq_getsetattr),
    /* Signals that kill()'s rules below cannot be made to cover: a queued
     * signal with the sender's own siginfo, and a signal through a pidfd
     * (which names any process the job could open one for). Python uses
     * neither on its own. */
    SCMP_SYS(rt_sigqueueinfo),
    SCMP_SYS(rt_tgsigqueueinfo),
    SCMP_SYS(pidfd_send_signal),
    /* Reaching a socket by its address. Landlock (up to ABI 7) has no right
     * over connecting to a pathname UNIX socket, and seccomp cannot see the
     * path: a job connects to nothing at all (its own socketpairs need no
     * connect), and its sockets are stream or seqpacket ones (below), which
     * cannot send to an address. So no Redis unixsocket, docker.sock, dbus
     * or /dev/log. */
    SCMP_SYS(connect),
    /* Watching host paths for names made in them (Landlock governs
     * opening, not looking). */
    SCMP_SYS(inotify_init),
    SCMP_SYS(inotify_init1),
    SCMP_SYS(inotify_add_watch),
    /* Memory no limit sees: a memfd's pages count against no address space
     * once unmapped. */
    SCMP_SYS(memfd_create),
    SCMP_SYS(memfd_secret),
};

/* Changing a file's metadata: Landlock governs opening and writing, not
 * chmod, chown, times or extended attributes, which need only that the
 * caller own the file: by path, any file of the uid; by descriptor, any it
 * could open, even read-only (the data directory). Where the job has a uid
 * of its own it owns only its own files; where it shares the worker's
 * (no uid layer) these are refused, its own temporary files' included
 * (docs/security.md). */
static const int metadata_calls[] = {
    SCMP_SYS(chmod),        SCMP_SYS(fchmod),    SCMP_SYS(fchmodat),    SCMP_SYS(chown),
    SCMP_SYS(fchown),       SCMP_SYS(lchown),    SCMP_SYS(fchownat),    SCMP_SYS(utime),
    SCMP_SYS(utimes),       SCMP_SYS(futimesat), SCMP_SYS(utimensat),   SCMP_SYS(setxattr),
    SCMP_SYS(lsetxattr),    SCMP_SYS(fsetxattr), SCMP_SYS(removexattr), SCMP_SYS(lremovexattr),
    SCMP_SYS(fremovexattr),
};

/* Refuses (EPERM) the system call when its argument arg, an int, equals
 * value (the low 32 bits only: the kernel ignores the rest). */
static int deny_eq(scmp_filter_ctx ctx, int sys, unsigned arg, uint32_t value)
{
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), sys, 1,
                            (struct scmp_arg_cmp){arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, value});
}

/* The filter, compiled once per executor by build_seccomp() and loaded by
 * each child as it is: compiling it (libseccomp) costs more than the rest
 * of a child's sandbox together. */
static struct sock_fprog filter;

/* Writes the compiled filter of CTX into `filter`. A BPF program has at
 * most 4,096 instructions (32 KiB), which a pipe holds whole. */
static int export_filter(scmp_filter_ctx ctx)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    int r = seccomp_export_bpf(ctx, p[1]);
    close(p[1]);
    size_t cap = 65536, n = 0;
    char *buf = r == 0 ? malloc(cap) : NULL;
    if (r == 0 && !buf)
        r = -ENOMEM;
    for (ssize_t got = 1; r == 0 && got > 0 && n < cap; n += (size_t)got)
        if ((got = read(p[0], buf + n, cap - n)) < 0)
            r = errno == EINTR ? 0 : -errno;
    close(p[0]);
    if (r == 0 && (n == 0 || n % sizeof(struct sock_filter) || n == cap))
        r = -EINVAL;
    if (r < 0) {
        free(buf);
        return r;
    }
    free(filter.filter);
    filter.filter = (struct sock_filter *)(void *)buf;
    filter.len = (unsigned short)(n / sizeof(struct sock_filter));
    return 0;
}

/* The filter's rules on sockets and on metadata changes. */
static int seccomp_files_and_sockets(scmp_filter_ctx ctx)
{
    int r = 0;
    /* Sockets: AF_UNIX only (socketpair, multiprocessing); no network. And
     * of those only stream and seqpacket ones: a datagram socket sends to
     * any address it names (sendto, sendmsg), connected or not. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                             SCMP_A0_32(SCMP_CMP_NE, AF_UNIX));
    static const int socket_calls[] = {SCMP_SYS(socket), SCMP_SYS(socketpair)};
    static const uint32_t datagram[] = {SOCK_DGRAM, SOCK_RAW, SOCK_RDM};
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(socket_calls); i++)
        for (size_t k = 0; r == 0 && k < ARRAY_SIZE(datagram); k++)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), socket_calls[i], 1,
                                 SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, datagram[k]));
    /* (fchmodat2, Linux 6.6, by its number: libseccomp 2.5 lacks it.) */
    for (size_t i = 0; r == 0 && !sb.use[SB_UID] && i < ARRAY_SIZE(metadata_calls); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), metadata_calls[i], 0);
    if (r == 0 && !sb.use[SB_UID])
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), 452, 0);
    return r;
}

/* The filter's rules on new namespaces. */
static int seccomp_namespaces(scmp_filter_ctx ctx)
{
    int r = 0;
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
    return r;
}

/* The filter's rules on signals. */
static int seccomp_signals(scmp_filter_ctx ctx)
{
    int r = 0;
    /* Signals: to single processes only. kill(-1) would reach every process
     * of the uid and a negative pid a whole process group (kill(0) still
     * reaches the job's own group). tkill and tgkill name one thread
     * (CPython: signal.pthread_kill, raise) and refuse pids below 1. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                             SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)-1));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                             SCMP_A0_32(SCMP_CMP_MASKED_EQ, 0x80000000u, 0x80000000u));
    /* Nor to the worker's own processes, by whichever call names a pid,
     * where the job shares their pid namespace (with the pid layer they
     * are not in the job's, and the same numbers are the job's own). This
     * keeps the executor and the supervisor, not every process of the uid:
     * for those, Landlock's signal scoping (ABI 6), the uid layer or the
     * pid namespace (docs/security.md). */
    if (!sb.use[SB_PIDNS]) {
        const pid_t worker[] = {sb.executor, sb.supervisor};
        for (size_t i = 0; r == 0 && i < sizeof(worker) / sizeof(worker[0]); i++) {
            if (worker[i] <= 0)
                continue;
            uint32_t pid = (uint32_t)worker[i];
            r = deny_eq(ctx, SCMP_SYS(kill), 0, pid);
            if (r == 0)
                r = deny_eq(ctx, SCMP_SYS(tkill), 0, pid);
            if (r == 0)
                r = deny_eq(ctx, SCMP_SYS(tgkill), 0, pid);
            if (r == 0)
                r = deny_eq(ctx, SCMP_SYS(tgkill), 1, pid);
        }
    }
    /* Signals on I/O (SIGIO, or the one F_SETSIG picks) to an owner the job
     * names: fcntl F_SETOWN, F_SETOWN_EX, F_SETSIG and a socket's ioctl
     * FIOSETOWN and SIOCSPGRP. A job has no use for them. */
    static const uint32_t fcntl_cmds[] = {F_SETOWN, F_SETOWN_EX, F_SETSIG};
    for (size_t i = 0; r == 0 && i < sizeof(fcntl_cmds) / sizeof(fcntl_cmds[0]); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fcntl), 1,
                             SCMP_A1_32(SCMP_CMP_EQ, fcntl_cmds[i]));
    static const uint32_t ioctl_cmds[] = {FIOSETOWN, SIOCSPGRP};
    for (size_t i = 0; r == 0 && i < sizeof(ioctl_cmds) / sizeof(ioctl_cmds[0]); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                             SCMP_A1_32(SCMP_CMP_EQ, ioctl_cmds[i]));
    return r;
}

/* The filter's rules on exec. */
static int seccomp_exec(scmp_filter_ctx ctx)
{
    int r = 0;
    /* A warm job is a fork of the executor's interpreter, already running:
     * it needs no exec, and without one it cannot run the ELF loader on a
     * program (ld.so /bin/sh), a memfd, or a binary it wrote. A cold job's
     * interpreter is exec'd after this filter: exec stays (Landlock lets
     * only the interpreter and its loader execute). */
    if (r == 0 && sb.warm)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execve), 0);
    if (r == 0 && sb.warm)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(execveat), 0);
    return r;
}

static int build_seccomp(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r = ctx ? 0 : -ENOMEM;
    /* A binary tree of the system call numbers rather than a list
     * (libseccomp 2.5): a call with argument rules is found in a few
     * comparisons, and loading the filter in each child costs half as much
     * (the kernel runs it for every system call number to cache what it
     * always allows). Older libraries: the list, the same rules. */
    if (ctx)
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; r == 0 && i < sizeof(denied) / sizeof(denied[0]); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
    int (*const parts[])(scmp_filter_ctx) = {seccomp_files_and_sockets, seccomp_namespaces,
                                             seccomp_signals, seccomp_exec};
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(parts); i++)
        r = parts[i](ctx);
    if (r == 0)
        r = export_filter(ctx);
    if (ctx)
        seccomp_release(ctx);
    return r;
}

/* In the child, last: the filter built by sandbox_prepare. */
static int load_seccomp(void)
{
    if (!filter.filter)
        return -EINVAL;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) < 0 ? -errno : 0;
}

int sandbox_job_begin(struct sandbox_job *sj)
{
    memset(sj, 0, sizeof(*sj));
    /* RLIMIT_NPROC counts every process of the job's real uid: its own
     * when the job has a uid (or a user namespace) of its own, otherwise
     * the worker's, whose processes are counted in. */
    if (sb.use[SB_UID] || sb.use[SB_USERNS])
        sj->nproc = sb.max_procs;
    else if (geteuid() != 0) /* root is not held to RLIMIT_NPROC at all */
        sj->nproc = count_uid_procs(getuid()) + sb.max_procs;
    return sb.use[SB_CGROUP] ? cgroup_job_create(&sj->cg, sb.max_procs) : 0;
}

void sandbox_job_memory(struct sandbox_job *sj, long long memory_mb)
{
    sj->started = time(NULL);
    if (sj->memory_mb == memory_mb)
        return; /* set ahead, when the spare was made */
    sj->memory_mb = memory_mb;
    /* The job's /dev/shm holds no more than its memory limit: pages there
     * are memory no address-space limit sees. (Empty now: the last job's
     * were swept.) */
    if (sb.use[SB_MOUNTNS]) {
        char opts[64];
        snprintf(opts, sizeof(opts), "size=%lldm,nr_inodes=4096,mode=1777", memory_mb);
        mount(NULL, "/dev/shm", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
    }
    /* Each process of the job has its own address-space limit, which a
     * Python job reports as MemoryError; the cgroup bounds them together,
     * with room for what the interpreter itself holds. */
    if (sj->cg.version)
        cgroup_job_set_memory(&sj->cg, memory_mb + 32);
}

int sandbox_job_dir(struct sandbox_job *sj)
{
    if (!sb.use[SB_MOUNTNS] || !sj->dir[0])
        return 0;
    char opts[160];
    long long inodes = sb.max_tmp / 4096 > 1024 ? sb.max_tmp / 4096 : 1024;
    snprintf(opts, sizeof(opts), "size=%lld,nr_inodes=%lld,mode=0700,uid=%lu,gid=%lu", sb.max_tmp,
             inodes, (unsigned long)sandbox_job_uid(), (unsigned long)sandbox_job_gid());
    if (mount("tmpfs", sj->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        return -errno;
    sj->dir_mounted = true;
    return 0;
}

void sandbox_job_dir_release(struct sandbox_job *sj)
{
    if (sj->dir_mounted)
        umount2(sj->dir, MNT_DETACH);
    sj->dir_mounted = false;
}

/* Whether the tmpfs at PATH has less than a page free. */
static bool fs_full(const char *path)
{
    struct statvfs st;
    return statvfs(path, &st) == 0 && st.f_blocks > 0 && st.f_bavail * st.f_frsize < 8192;
}

int sandbox_job_full(const struct sandbox_job *sj)
{
    return (sj->dir_mounted && fs_full(sj->dir) ? SANDBOX_FULL_DIR : 0) |
           (sb.use[SB_MOUNTNS] && fs_full("/dev/shm") ? SANDBOX_FULL_SHM : 0);
}

/* Removes what a job left in its /dev/shm (POSIX shared memory and
 * semaphores it did not unlink): the executor's private tmpfs, of which
 * everything is the last job's. (Without the mount namespace a job has no
 * /dev/shm to leave anything in.) */
static void sweep_dev_shm(void)
{
    int dfd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            S_ISDIR(st.st_mode))
            continue;
        unlinkat(dfd, e->d_name, 0);
    }
    if (d)
        closedir(d);
    else if (dfd >= 0)
        close(dfd);
}

bool sandbox_job_end(struct sandbox_job *sj)
{
    bool oom = sj->cg.version ? cgroup_job_destroy(&sj->cg) : false;
    if (sj->started && sb.use[SB_MOUNTNS])
        sweep_dev_shm();
    return oom;
}

int sandbox_executor_enter(void)
{
    bool use[SB__COUNT];
    memcpy(use, sb.use, sizeof(use));
    use[SB_PIDNS] = false; /* one per job */
    /* A root executor makes each job's pid namespace itself, right before
     * the fork (sandbox_before_fork), and needs its own to come back to. */
    if (sb.use[SB_PIDNS] && !sb.use[SB_USERNS] &&
        (sb.own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    return enter_namespaces(use);
}

void sandbox_release(void)
{
    cgroup_fini();
    if (sb.own_pidns >= 0)
        close(sb.own_pidns);
    sb.own_pidns = -1;
    free(filter.filter);
    filter = (struct sock_fprog){0, NULL};
}

int sandbox_before_fork(void)
{
    /* unshare(CLONE_NEWPID) is refused once the children's namespace is no
     * longer the caller's own: setns back to it first. */
    if (sb.use[SB_PIDNS] && !sb.use[SB_USERNS] &&
        (setns(sb.own_pidns, CLONE_NEWPID) < 0 || unshare(CLONE_NEWPID) < 0))
        return -errno;
    return 0;
}

int sandbox_fork_plain(void)
{
    /* Back in the executor's own pid namespace (after sandbox_before_fork
     * the children's is the last job's, which ended with it). */
    if (sb.own_pidns >= 0 && setns(sb.own_pidns, CLONE_NEWPID) < 0)
        return -errno;
    return 0;
}

/* Non-root (a user namespace), where the executor cannot come back to its
 * own pid namespace: the job's child makes the namespace and forks into it,
 * and stays outside only to wait for the job (the namespace's first
 * process) and end the same way, so the executor sees the job's status. */
static void __attribute__((noreturn)) wait_and_mirror(pid_t pid)
{
    int st = 0;
    close_range(0, ~0U, 0);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            _exit(126);
    if (WIFSIGNALED(st)) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(WTERMSIG(st), &dfl, NULL);
        kill(getpid(), WTERMSIG(st));
        _exit(128 + WTERMSIG(st));
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 126);
}

/* In the child, with the executor's credentials: the data directory as
 * SANDBOX_DATA_FD, which the job reads its datasets through (openat), so
 * that its uid need not reach the directory by its path. */
static int open_data_dir(void)
{
    if (!data_dir_path[0])
        return 0;
    int fd = open(data_dir_path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return 0; /* jobs find no datasets, as when it is unset */
    if (fd != SANDBOX_DATA_FD) {
        int r = dup2(fd, SANDBOX_DATA_FD);
        close(fd);
        if (r < 0)
            return -errno;
    }
    return 0;
}

bool sandbox_job_is_child(void)
{
    return !(sb.use[SB_PIDNS] && sb.use[SB_USERNS]);
}

bool sandbox_spare_beside_job(void)
{
    return sb.use[SB_PIDNS] || sb.signal_scope;
}

int sandbox_enter(const struct sandbox_job *sj)
{
    int r;
    if ((r = open_data_dir()) < 0)
        return r;
    if (sb.landlock_abi > 0)
        landlock_open(sj->dir);
    if (sj->cg.version && (r = cgroup_job_join(&sj->cg)) < 0)
        return r;
    if (sb.use[SB_PIDNS] && sb.use[SB_USERNS]) {
        if (unshare(CLONE_NEWPID) < 0)
            return -errno;
        pid_t pid = fork();
        if (pid < 0)
            return -errno;
        if (pid > 0)
            wait_and_mirror(pid);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
            return -errno;
    }
    if (sb.use[SB_UID]) {
        if (setgroups(0, NULL) < 0 || setresgid(sb.gid, sb.gid, sb.gid) < 0 ||
            setresuid(sb.uid, sb.uid, sb.uid) < 0)
            return -errno;
        /* A change of credentials clears these two. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || prctl(PR_SET_DUMPABLE, 0) < 0)
            return -errno;
    }
    if (sb.use[SB_USERNS]) {
        /* The capabilities the user namespace gave: none is needed now. */
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct caps[2];
        memset(caps, 0, sizeof(caps));
        if (syscall(SYS_capset, &h, caps) < 0)
            return -errno;
    }
    struct rlimit rl = {1024, 1024};
    setrlimit(RLIMIT_NOFILE, &rl);
    /* No file the job writes grows past what its directory may hold. */
    rl.rlim_cur = rl.rlim_max = (rlim_t)sb.max_tmp;
    setrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = rl.rlim_max = (rlim_t)sj->nproc;
    if (sj->nproc > 0)
        setrlimit(RLIMIT_NPROC, &rl);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (sb.landlock_abi > 0 && (r = landlock_enter()) < 0)
        return r;
    return load_seccomp();
}

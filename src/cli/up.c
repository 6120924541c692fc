#define _GNU_SOURCE
#include "up.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../queue/conn.h"
#include "../queue/queue.h"

#define MAX_CHILDREN 260

enum child_kind { CHILD_REDIS, CHILD_API, CHILD_WORKER };

struct child {
    enum child_kind kind;
    int index;
    pid_t pid;
    int64_t started_ms;
    bool retiring; /* scaled down: draining, not to be restarted */
    bool retired;  /* gone for good; the slot may be reused */
    char log[512];
};

struct up {
    struct child children[MAX_CHILDREN];
    int nchildren;
    char redis_url[128];
    char redis_server[512];
    int redis_port;
    char state_dir[400];
    char api_url[160];
    char error[700]; /* the last rescale's problem, for up.json */
    bool own_redis;
    int next_worker; /* index of the next worker started */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("stratq up: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool find_in_path(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
    for (char *save, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, outlen, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* Adds "--flag value" for every option stratq up was given that the child's
 * subcommand also reads, so `stratq up --queue q` reaches the workers. */
static int forward_options(unsigned child_cmd, char **argv, int n, char bufs[][400])
{
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_opt *o = &config_opts[i];
        if (!(o->cmds & CMD_UP) || !(o->cmds & child_cmd) || !config_is_set(i) ||
            i == CFG_REDIS_URL || i == CFG_REDIS_SENTINEL_PASSWORD || i == CFG_API_PORT)
            continue;
        snprintf(bufs[i], 400, "--%s=%s", o->flag, config_str(i));
        argv[n++] = bufs[i];
    }
    return n;
}

static pid_t spawn(char *const argv[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Own process group: a terminal's Ctrl-C reaches stratq up alone, which
     * then stops the children in order. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(126);
    execv(argv[0], argv);
    _exit(127);
}

static int start_child(struct up *u, struct child *c)
{
    char *argv[CFG__COUNT + 16];
    char fwd[CFG__COUNT][400];
    char port[16], conf[520], self[4200];
    int n = 0;

    _cleanup_free_ char *exe_dir = util_exe_dir();
    snprintf(self, sizeof(self), "%s/stratq", exe_dir ? exe_dir : ".");
    switch (c->kind) {
    case CHILD_REDIS:
        snprintf(conf, sizeof(conf), "%s/redis/redis.conf", u->state_dir);
        argv[n++] = u->redis_server;
        argv[n++] = conf;
        break;
    case CHILD_API:
        argv[n++] = self;
        argv[n++] = "api";
        snprintf(port, sizeof(port), "%lld", config_int(CFG_API_PORT));
        argv[n++] = "--port";
        argv[n++] = port;
        n = forward_options(CMD_API, argv, n, fwd);
        break;
    case CHILD_WORKER:
        argv[n++] = self;
        argv[n++] = "worker";
        n = forward_options(CMD_WORKER, argv, n, fwd);
        break;
    }
    argv[n] = NULL;
    c->pid = spawn(argv, c->log);
    c->started_ms = util_mono_ms();
    return c->pid < 0 ? -errno : 0;
}

/* The local Redis: loopback only, AOF on, a random password, all in a
 * 0600 file under the 0700 state directory. */
static int write_redis_conf(struct up *u, const char *password)
{
    char path[520];
    snprintf(path, sizeof(path), "%s/redis/redis.conf", u->state_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -errno;
    }
    fprintf(f,
            "port %d\nbind 127.0.0.1\nprotected-mode yes\ndir \"%s/redis\"\nappendonly yes\n"
            "save \"\"\ndaemonize no\nrequirepass %s\n",
            u->redis_port, u->state_dir, password);
    return fclose(f) == 0 ? 0 : -errno;
}

static struct child *add_child(struct up *u, enum child_kind kind, int index, const char *name)
{
    struct child *c = NULL;
    for (int i = 0; i < u->nchildren && !c; i++)
        if (u->children[i].retired)
            c = &u->children[i];
    if (!c && u->nchildren < MAX_CHILDREN)
        c = &u->children[u->nchildren++];
    if (!c)
        return NULL;
    *c = (struct child){0};
    c->kind = kind;
    c->index = index;
    snprintf(c->log, sizeof(c->log), "%s/logs/%s.log", u->state_dir, name);
    return c;
}

static bool wait_redis(struct up *u, int timeout_ms)
{
    struct queue_url url;
    char err[256];
    /* A Redis of the user's takes every STRATQ_REDIS_* setting (TLS,
     * Sentinel); the one stratq up starts is a plain local server. */
    if (!u->own_redis ? queue_url_load(&url, err, sizeof(err)) < 0
                      : queue_url_parse(u->redis_url, &url, err, sizeof(err)) < 0) {
        log_error("bad Redis settings", "{s:s}", "error", err);
        return false;
    }
    bool ok = queue_sync_ping(&url, timeout_ms);
    queue_url_free(&url);
    return ok;
}

static size_t discard(char *d, size_t s, size_t n, void *a)
{
    (void)d;
    (void)a;
    return s * n;
}

static bool wait_api(const char *url, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    CURL *c = curl_easy_init();
    bool ok = false;
    if (!c)
        return false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    while (!ok && util_mono_ms() < deadline) {
        long code = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        ok = code == 200;
        if (!ok)
            usleep(50000);
    }
    curl_easy_cleanup(c);
    return ok;
}

/* Sends SIGTERM to every child of the kind and waits up to timeout_ms for
 * them to exit, then SIGKILLs what is left. */
static void stop_kind(struct up *u, enum child_kind kind, int timeout_ms)
{
    int64_t deadline = util_mono_ms() + timeout_ms;
    for (int i = 0; i < u->nchildren; i++)
        if (u->children[i].kind == kind && u->children[i].pid > 0)
            kill(u->children[i].pid, SIGTERM);
    for (;;) {
        int alive = 0;
        for (int i = 0; i < u->nchildren; i++) {
            struct child *c = &u->children[i];
            if (c->kind != kind || c->pid <= 0)
                continue;
            if (waitpid(c->pid, NULL, WNOHANG) == c->pid)
                c->pid = 0;
            else
                alive++;
        }
        if (!alive)
            return;
        if (util_mono_ms() >= deadline) {
            for (int i = 0; i < u->nchildren; i++) {
                struct child *c = &u->children[i];
                if (c->kind == kind && c->pid > 0) {
                    kill(c->pid, SIGKILL);
                    waitpid(c->pid, NULL, 0);
                    c->pid = 0;
                }
            }
            return;
        }
        usleep(20000);
    }
}

static const char *kind_name(enum child_kind k)
{
    return k == CHILD_REDIS ? "redis-server" : k == CHILD_API ? "api" : "worker";
}

/* Workers running and not being scaled away, and those draining. */
static void count_workers(const struct up *u, int *active, int *draining)
{
    *active = *draining = 0;
    for (int i = 0; i < u->nchildren; i++) {
        const struct child *c = &u->children[i];
        if (c->kind != CHILD_WORKER || c->retired)
            continue;
        if (c->retiring)
            (*draining)++;
        else
            (*active)++;
    }
}

/* <state>/up.json: how scripts find this stack (scripts/scale-workers.sh
 * local, scripts/monitor-workers.sh local). Written whole, then renamed. */
static void write_state(const struct up *u)
{
    char path[520], tmp[530];
    int active, draining;
    count_workers(u, &active, &draining);
    snprintf(path, sizeof(path), "%s/up.json", u->state_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return;
    json_t *o =
        json_pack("{s:i, s:s, s:i, s:i, s:s?}", "pid", (int)getpid(), "api_url", u->api_url,
                  "workers", active, "draining", draining, "error", u->error[0] ? u->error : NULL);
    char *text = json_dumps(o, JSON_PRESERVE_ORDER);
    fprintf(f, "%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static bool start_worker(struct up *u)
{
    char name[32];
    int index = ++u->next_worker;
    snprintf(name, sizeof(name), "worker-%d", index);
    struct child *c = add_child(u, CHILD_WORKER, index, name);
    if (!c) {
        snprintf(u->error, sizeof(u->error),
                 "no room for another worker (%d processes at most, draining ones included)",
                 MAX_CHILDREN);
        say("%s", u->error);
        return false;
    }
    start_child(u, c);
    return true;
}

/* SIGHUP: the number in <state>/workers is how many workers to run. New
 * ones start; surplus ones (the newest first) get SIGTERM and drain: each
 * finishes its job, or gives it back to the queue after the drain timeout,
 * so no job is lost. */
static void rescale(struct up *u)
{
    char path[520], text[32] = "";
    snprintf(path, sizeof(path), "%s/workers", u->state_dir);
    FILE *f = fopen(path, "re");
    u->error[0] = '\0';
    if (!f || !fgets(text, sizeof(text), f)) {
        snprintf(u->error, sizeof(u->error),
                 "SIGHUP: cannot read %s; write the number of workers there first", path);
        say("%s", u->error);
        if (f)
            fclose(f);
        write_state(u);
        return;
    }
    fclose(f);
    char *end;
    long want = strtol(text, &end, 10);
    while (*end == '\n' || *end == ' ')
        end++;
    if (end == text || *end || want < 1 || want > 256) {
        snprintf(u->error, sizeof(u->error),
                 "SIGHUP: %s must hold a number of workers from 1 to 256", path);
        say("%s", u->error);
        write_state(u);
        return;
    }
    int active, draining;
    count_workers(u, &active, &draining);
    while (active < want && start_worker(u))
        active++;
    for (int i = u->nchildren - 1; i >= 0 && active > want; i--) {
        struct child *c = &u->children[i];
        if (c->kind != CHILD_WORKER || c->retired || c->retiring)
            continue;
        c->retiring = true;
        active--;
        if (c->pid > 0)
            kill(c->pid, SIGTERM);
        else
            c->retired = true;
    }
    say("scaled to %ld workers", want);
    write_state(u);
}

static int supervise(struct up *u, sigset_t *mask)
{
    for (;;) {
        siginfo_t si;
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(mask, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            return 0;
        if (sig == SIGHUP)
            rescale(u);
        /* SIGCHLD or a periodic check: restart whatever died. */
        bool changed = false;
        for (int i = 0; i < u->nchildren; i++) {
            struct child *c = &u->children[i];
            int status;
            if (c->retired)
                continue;
            if (c->pid > 0 && waitpid(c->pid, &status, WNOHANG) == c->pid) {
                if (c->retiring) {
                    say("%s %d (pid %d) drained and stopped", kind_name(c->kind), c->index,
                        (int)c->pid);
                    c->pid = 0;
                    c->retired = changed = true;
                    continue;
                }
                say("%s %d (pid %d) exited (%s %d); restarting it", kind_name(c->kind), c->index,
                    (int)c->pid, WIFSIGNALED(status) ? "signal" : "code",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                c->pid = 0;
            }
            /* Restart at most once a second, so a crash loop does not spin. */
            if (c->pid == 0 && !c->retiring && util_mono_ms() - c->started_ms >= 1000)
                start_child(u, c);
        }
        if (changed)
            write_state(u);
    }
}

/* <state>, <state>/logs and <state>/redis; false (with the message
 * printed) when one cannot be made. */
static bool make_state_dirs(const struct up *u)
{
    char logs[512], rdir[512];
    snprintf(logs, sizeof(logs), "%s/logs", u->state_dir);
    snprintf(rdir, sizeof(rdir), "%s/redis", u->state_dir);
    if ((mkdir(u->state_dir, 0700) < 0 && errno != EEXIST) ||
        (mkdir(logs, 0700) < 0 && errno != EEXIST) || (mkdir(rdir, 0700) < 0 && errno != EEXIST)) {
        fprintf(stderr, "stratq up: cannot create %s: %s\n", u->state_dir, strerror(errno));
        return false;
    }
    return true;
}

/* The local redis-server, with a new password, up and answering; false
 * (with the message printed) when it cannot be. */
static bool start_own_redis(struct up *u)
{
    if (!find_in_path("redis-server", u->redis_server, sizeof(u->redis_server))) {
        fprintf(stderr, "stratq up: redis-server not found on PATH; install it with "
                        "'sudo apt-get install redis-server' (or pass --redis-url)\n");
        return false;
    }
    u->redis_port = free_port();
    char password[UTIL_ID_LEN + 1];
    util_new_id(password);
    if (write_redis_conf(u, password + 12) < 0) {
        fprintf(stderr, "stratq up: cannot write %s/redis/redis.conf: %s\n", u->state_dir,
                strerror(errno));
        return false;
    }
    snprintf(u->redis_url, sizeof(u->redis_url), "redis://:%s@127.0.0.1:%d", password + 12,
             u->redis_port);
    start_child(u, add_child(u, CHILD_REDIS, 0, "redis"));
    if (!wait_redis(u, 10000)) {
        fprintf(stderr, "stratq up: redis-server did not start; see %s/logs/redis.log\n",
                u->state_dir);
        stop_kind(u, CHILD_REDIS, 5000);
        return false;
    }
    say("redis   127.0.0.1:%d (data and password in %s/redis)", u->redis_port, u->state_dir);
    return true;
}

/* The Redis the stack uses: its own unless --redis-url, a cluster or
 * sentinels name another, handed to the children. False when its own
 * could not start. */
static bool set_up_redis(struct up *u)
{
    u->own_redis = !config_is_set(CFG_REDIS_URL) && !config_str(CFG_REDIS_CLUSTER_NODES)[0] &&
                   !config_str(CFG_REDIS_SENTINELS)[0];
    if (u->own_redis) {
        if (!start_own_redis(u))
            return false;
    } else {
        snprintf(u->redis_url, sizeof(u->redis_url), "%s", config_str(CFG_REDIS_URL));
        say("redis   %s", strchr(u->redis_url, '@') ? strchr(u->redis_url, '@') + 1 : u->redis_url);
    }
    /* The children read the URL (and the sentinels' password) from the
     * environment, not from argv, so no password shows in /proc/PID/cmdline. */
    setenv("STRATQ_REDIS_URL", u->redis_url, 1);
    if (config_is_set(CFG_REDIS_SENTINEL_PASSWORD))
        setenv("STRATQ_REDIS_SENTINEL_PASSWORD", config_str(CFG_REDIS_SENTINEL_PASSWORD), 1);
    return true;
}

/* Starts the API and, once it is healthy, the workers, then supervises
 * them until SIGINT or SIGTERM; 1 when the API did not come up. */
static int run_stack(struct up *u, sigset_t *mask)
{
    char *api_url = u->api_url, health[200];
    /* Where to reach it from this machine: a wildcard bind is reached on
     * loopback. */
    const char *bind = config_str(CFG_API_BIND);
    if (!strcmp(bind, "0.0.0.0") || !strcmp(bind, "::") || !bind[0])
        bind = "127.0.0.1";
    snprintf(u->api_url, sizeof(u->api_url),
             strchr(bind, ':') ? "http://[%s]:%lld" : "http://%s:%lld", bind,
             config_int(CFG_API_PORT));
    snprintf(health, sizeof(health), "%s/healthz", api_url);
    start_child(u, add_child(u, CHILD_API, 0, "api"));
    if (!wait_api(health, 15000)) {
        fprintf(stderr, "stratq up: the API did not become healthy at %s; see %s/logs/api.log\n",
                api_url, u->state_dir);
        return 1;
    }
    say("api     %s", api_url);
    for (int i = 0; i < config_int(CFG_WORKERS); i++)
        start_worker(u);
    say("workers %lld, logs in %s/logs", config_int(CFG_WORKERS), u->state_dir);
    write_state(u);
    say("ready: STRATQ_API_URL=%s stratq submit examples/hello.py --wait", api_url);
    say("Ctrl-C stops everything; scripts/scale-workers.sh local N rescales");
    supervise(u, mask);
    say("stopping");
    return 0;
}

/* Removes <state>/up.json and stops the workers (letting them drain), the
 * API and the Redis. */
static void stop_stack(struct up *u)
{
    char state_file[520];
    snprintf(state_file, sizeof(state_file), "%s/up.json", u->state_dir);
    unlink(state_file);
    stop_kind(u, CHILD_WORKER, (int)(config_int(CFG_DRAIN_TIMEOUT) + 5) * 1000);
    stop_kind(u, CHILD_API, 5000);
    stop_kind(u, CHILD_REDIS, 10000);
    say("stopped");
}

int up_main(int argc, char **argv)
{
    static struct up u;
    char err[256];
    char **args;
    int nargs;

    int r = config_load(CMD_UP, argc, argv, &args, &nargs, err, sizeof(err));
    if (r == 1) {
        config_print_help(CMD_UP, "stratq up [--workers N] [--port P] [--redis-url URL]",
                          "Runs the whole stack on this machine: redis-server (unless "
                          "--redis-url is given), the API and N workers. Ctrl-C stops it all.");
        config_free();
        return 0;
    }
    if (r < 0 || nargs > 0) {
        fprintf(stderr, "stratq up: %s\n", r < 0 ? err : "takes no arguments");
        config_free();
        return 2;
    }
    snprintf(u.state_dir, sizeof(u.state_dir), "%s", config_str(CFG_STATE_DIR));
    if (!make_state_dirs(&u)) {
        config_free();
        return 1;
    }

    /* Signals are taken synchronously with sigtimedwait(). */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (!set_up_redis(&u)) {
        config_free();
        return 1;
    }
    int rc = run_stack(&u, &mask);
    stop_stack(&u);
    curl_global_cleanup();
    config_free();
    return rc;
}

"""Redis Sentinel for the tests: one primary, two replicas (``replicaof``)
and three sentinels (``redis-server <conf> --sentinel``), all on free
loopback ports, each with its own config file and directory under one
temporary directory, and the steps of a failover: ask a sentinel for the
primary, SIGKILL the primary by pid, wait for ``+switch-master`` and for
every sentinel to name the new primary, bring the old node back as a
replica of the new one.

The sentinels decide quickly (``down-after-milliseconds`` 2000,
``failover-timeout`` 3000): a SIGKILLed primary is replaced (SIGKILL to
``+switch-master``) in 2.5 to 4.0 s, about 3.2 s typically (19
failovers; ``python3 tests/integration/sentinel.py --failovers 15``
measures it): the sentinels see the primary down 1 to 2 s after the kill,
as the last PONG was up to a second before it, then vote within 0.1 s and
wait up to a second for the promoted replica's INFO. Not 1000: a
sentinel reconnects to an instance at most once a second, and right after
``+switch-master`` that can leave it a full second without a PONG from the
new primary, which a ``down-after`` of 1000 counts as down: with 1000 the
sentinels failed the new primary over again within a second in 2 of 7
failovers here (the false positive of redis/redis#8607), and 0 of 15
with 2000.

Every event every sentinel publishes (``PSUBSCRIBE *``) is recorded with
the time it arrived, by one thread started with ``start``, so that a
failover's timeline (``+sdown``, ``+odown``, ``+elected-leader``,
``+promoted-slave``, ``+switch-master``) is read from what the sentinels
said, not guessed. Waiting is on a condition with a deadline
(``wait_for``), never a bare sleep; every redis-server is started and
stopped by its pid (SIGTERM, SIGKILL past the deadline).

Used by tests/integration/test_sentinel.py and tests/chaos/failover.py;
it needs no pytest and no stratq.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from stack import StackError, free_port, wait_for  # noqa: E402

REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")
MASTER = "mymaster"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
# How long a failover may take before the harness gives up: down-after
# (2 s), the vote, and at worst a failed election and the retry that
# failover-timeout allows (2 x 3 s), with room for a busy machine.
FAILOVER_TIMEOUT = 30.0


def _stop(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Signals ``proc`` by its pid and waits; SIGKILL past the deadline."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """One redis-server process (a data node or a sentinel) with a config
    file of its own (sentinels rewrite theirs; data nodes too, when a
    sentinel reconfigures them and sends CONFIG REWRITE)."""

    kind = "redis"

    def __init__(self, workdir, name, password=None):
        self.name = name
        self.port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / f"{name}.conf"
        self.log_path = workdir / f"{name}.log"
        self.password = password
        self.proc = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, lines=20):
        return f"{self.kind} {self.name} on {self.addr} (log {self.log_path}):\n" + \
            "\n".join(self.log().splitlines()[-lines:])

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           decode_responses=True, **kw)

    def cmd(self, *args):
        c = self.client()
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def _argv(self, extra):
        return [REDIS_SERVER, str(self.conf), *extra]

    def _spawn(self, extra=()):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._argv(extra), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        client = self.client(socket_timeout=2)

        def up():
            if self.proc.poll() is not None:
                raise StackError(f"{self.describe()}\nexited with {self.proc.returncode}")
            try:
                return client.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError,
                    redis.exceptions.TimeoutError):
                return False

        try:
            wait_for(up, START_TIMEOUT, lambda: f"{self.kind} {self.name} on {self.addr} to answer PING")
        finally:
            client.close()

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
        _stop(self.proc, sig)

    def pause(self):
        """SIGSTOP: the process stays, answers nothing (its sockets stay
        open and the kernel still buffers what is sent to it)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL by pid, and reap it."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)


class DataNode(Server):
    def write_conf(self):
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{self.dir}"',
            'save ""',
            "appendonly no",
            # A replica syncs at once (the default waits 5 s for more
            # replicas before a diskless full sync).
            "repl-diskless-sync-delay 0",
        ]
        if self.password:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, replicaof=None):
        """Starts the node, as a replica of the node ``replicaof`` if given
        (the config file may hold a ``replicaof`` a sentinel wrote since;
        the command line wins)."""
        if not self.conf.exists():
            self.write_conf()
        extra = ["--replicaof", "127.0.0.1", str(replicaof.port)] if replicaof else []
        self._spawn(extra)

    def info(self, section="replication"):
        c = self.client()
        try:
            return c.info(section)
        finally:
            c.close()

    def role(self):
        try:
            return self.info().get("role")
        except redis.exceptions.RedisError:
            return None

    def link_up(self):
        try:
            info = self.info()
        except redis.exceptions.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up"


class SentinelNode(Server):
    kind = "sentinel"

    def __init__(self, workdir, name):
        super().__init__(workdir, name)  # the sentinels themselves have no password

    def write_conf(self, master, primary, quorum, down_after_ms, failover_timeout_ms, password):
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{self.dir}"',
            # Every address here is an IP (127.0.0.1): no name to resolve,
            # and the sentinels announce IPs, as stratq is given them.
            "sentinel resolve-hostnames no",
            "sentinel announce-hostnames no",
            f"sentinel monitor {master} 127.0.0.1 {primary.port} {quorum}",
            f"sentinel down-after-milliseconds {master} {down_after_ms}",
            f"sentinel failover-timeout {master} {failover_timeout_ms}",
            f"sentinel parallel-syncs {master} 1",
        ]
        if password:
            lines.append(f"sentinel auth-pass {master} {password}")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _argv(self, extra):
        return [REDIS_SERVER, str(self.conf), "--sentinel", *extra]

    def start(self):
        self._spawn()

    def master_addr(self, master):
        """(host, port) of the primary this sentinel names, or None."""
        try:
            reply = self.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master)
        except redis.exceptions.RedisError:
            return None
        return (reply[0], int(reply[1])) if reply else None

    def state(self, master):
        """SENTINEL MASTER as a dict, or None."""
        try:
            flat = self.cmd("SENTINEL", "MASTER", master)
        except redis.exceptions.RedisError:
            return None
        return _pairs(flat)

    def replicas(self, master):
        """{port: SENTINEL REPLICAS entry} (empty when unreachable)."""
        try:
            rows = self.cmd("SENTINEL", "REPLICAS", master)
        except redis.exceptions.RedisError:
            return {}
        return {int(e["port"]): e for e in (_pairs(r) for r in rows)}


def _pairs(flat):
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[0::2], flat[1::2]))


class EventLog:
    """Every message of every sentinel (``PSUBSCRIBE *``), each with the
    monotonic time it was read, by one thread polling the connections."""

    def __init__(self, sentinels):
        self.events = []  # (t, sentinel port, channel, data)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conns = []
        for s in sentinels:
            conn = redis.connection.Connection(host="127.0.0.1", port=s.port, socket_timeout=5,
                                               decode_responses=True)
            conn.send_command("PSUBSCRIBE", "*")
            conn.read_response()
            self.conns.append((s.port, conn))
        self.thread = threading.Thread(target=self._run, name="sentinel-events", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            quiet = True
            for port, conn in self.conns:
                try:
                    while conn.can_read(timeout=0):
                        msg = conn.read_response()
                        quiet = False
                        if msg and msg[0] == "pmessage":
                            with self.lock:
                                self.events.append((time.monotonic(), port, msg[2], msg[3]))
                except (redis.exceptions.RedisError, OSError, ValueError):
                    continue  # a stopped sentinel: its connection says nothing more
            if quiet:
                self.stopping.wait(0.01)

    def since(self, t0, channel=None):
        with self.lock:
            return [e for e in self.events if e[0] >= t0 and (channel is None or e[2] == channel)]

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        for _, conn in self.conns:
            conn.disconnect()


class Failover:
    """What one failover took, from the sentinels' own events."""

    def __init__(self, old, started_at):
        self.old = old
        self.started_at = started_at
        self.new = None
        self.switched_at = None
        self.agreed_at = None
        self.events = []

    @property
    def seconds(self):
        """The SIGKILL of the primary (or SENTINEL FAILOVER) to the first
        +switch-master."""
        return None if self.switched_at is None else self.switched_at - self.started_at

    def first(self, channel):
        """Seconds from the start to a sentinel's first ``channel`` event."""
        ts = [t for t, _, c, _ in self.events if c == channel]
        return min(ts) - self.started_at if ts else None

    def timeline(self):
        """'+sdown 1.02s, +odown 1.10s, ...' of the first of each event."""
        seen = []
        for t, port, channel, _ in self.events:
            if channel not in [c for c, _ in seen]:
                seen.append((channel, t - self.started_at))
        return ", ".join(f"{c} {s:.2f}s" for c, s in seen)


class SentinelGroup:
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels
    (quorum: a majority) under ``workdir``. ``password``: the data nodes'
    ``requirepass`` (and ``masterauth``, and the sentinels' auth-pass)."""

    def __init__(self, workdir, replicas=2, sentinels=3, master=MASTER, password=None,
                 down_after_ms=2000, failover_timeout_ms=3000):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.master = master
        self.password = password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.nodes = [DataNode(self.workdir, f"node{i}", password) for i in range(1 + replicas)]
        self.sentinels = [SentinelNode(self.workdir, f"sentinel{i}") for i in range(sentinels)]
        self.quorum = sentinels // 2 + 1
        self.events = None
        self.failovers = []
        self._pending = None

    # -- start and stop ----------------------------------------------------

    def start(self):
        try:
            primary, replicas = self.nodes[0], self.nodes[1:]
            primary.start()
            for node in replicas:
                node.start(replicaof=primary)
            self.wait_replicas(primary, len(replicas))
            for s in self.sentinels:
                s.write_conf(self.master, primary, self.quorum, self.down_after_ms,
                             self.failover_timeout_ms, self.password)
                s.start()
            self.events = EventLog(self.sentinels)
            self.wait_settled(primary)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stops every process by its pid: sentinels first (so that no
        failover starts while the data nodes go), then the data nodes."""
        if self.events:
            self.events.close()
            self.events = None
        for s in self.sentinels:
            s.stop()
        for node in self.nodes:
            node.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what stratq is given ----------------------------------------------

    @property
    def sentinel_addrs(self):
        return ",".join(s.addr for s in self.sentinels)

    def url(self):
        """A Redis URL whose host nothing listens on (with Sentinel the
        host is not used; the password, if any, is)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{free_port()}"

    def stratq_env(self, master=None, **extra):
        """The environment that points a stratq daemon at the sentinels.
        The URL goes in the environment, as `stratq up` passes a URL with a
        password, so that it is not in /proc/PID/cmdline."""
        env = {
            "STRATQ_REDIS_URL": self.url(),
            "STRATQ_REDIS_SENTINELS": self.sentinel_addrs,
            "STRATQ_REDIS_SENTINEL_MASTER": master or self.master,
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # -- the topology --------------------------------------------------------

    def node_at(self, port):
        for node in self.nodes:
            if node.port == port:
                return node
        raise StackError(f"no data node of this group on port {port}")

    def primary_addr(self, sentinel=0):
        """(host, port) of the primary, as sentinel number ``sentinel``
        names it (``SENTINEL get-master-addr-by-name``)."""
        return self.sentinels[sentinel].master_addr(self.master)

    def primary(self, sentinel=0):
        """The data node the sentinel names primary."""
        addr = self.primary_addr(sentinel)
        if addr is None:
            raise StackError(f"sentinel {self.sentinels[sentinel].addr} names no primary {self.master}")
        return self.node_at(addr[1])

    def replicas(self):
        """The live data nodes but the primary."""
        p = self.primary()
        return [n for n in self.nodes if n is not p and n.alive()]

    def client(self, **kw):
        """A client of the current primary."""
        return self.primary().client(**kw)

    def wait_replicas(self, primary, n, timeout=START_TIMEOUT):
        """``n`` replicas connected to ``primary`` (state online), each
        with its link up."""

        def online():
            try:
                info = primary.info()
            except redis.exceptions.RedisError:
                return False
            slaves = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            return len([s for s in slaves if s.get("state") == "online"]) >= n

        def why():
            # What each node says, so that a miss in CI can be read later.
            try:
                seen = {k: v for k, v in primary.info().items() if k.startswith(("slave", "connected"))}
            except redis.exceptions.RedisError as e:
                seen = f"INFO failed: {e}"
            logs = "\n".join(node.describe(8) for node in self.nodes)
            return f"{n} replicas online on the primary {primary.addr} (it reports {seen})\n{logs}"

        wait_for(online, timeout, why)

    def wait_settled(self, primary, timeout=START_TIMEOUT):
        """Every sentinel names ``primary``, sees it up, sees every other
        live data node as its replica (up, link ok) and every other
        sentinel."""
        others = [n for n in self.nodes if n is not primary and n.alive()]
        last = {}

        def settled():
            for s in self.sentinels:
                if s.master_addr(self.master) != ("127.0.0.1", primary.port):
                    last["why"] = f"{s.addr} names {s.master_addr(self.master)}"
                    return False
                st = s.state(self.master) or {}
                if st.get("flags") != "master" or int(st.get("num-other-sentinels", -1)) != len(self.sentinels) - 1:
                    last["why"] = f"{s.addr}: {st}"
                    return False
                reps = s.replicas(self.master)
                for n in others:
                    e = reps.get(n.port)
                    if not e or e.get("flags") != "slave" or e.get("master-link-status") != "ok" \
                            or int(e.get("master-port", 0)) != primary.port:
                        last["why"] = f"{s.addr} sees replica {n.addr} as {e}"
                        return False
            return True

        wait_for(settled, timeout, lambda: f"the sentinels to settle on {primary.addr}: {last.get('why')}")

    # -- a failover ------------------------------------------------------------

    def kill_primary(self):
        """SIGKILLs the current primary by its pid; returns the node. The
        failover is then waited for with ``wait_failover``."""
        old = self.primary()
        self._pending = Failover(old, time.monotonic())
        old.kill()
        return old

    def manual_failover(self):
        """``SENTINEL FAILOVER``: the primary, alive, is demoted to a
        replica of one of its replicas (which then answers READONLY to
        writes, and ends its clients' blocking calls with UNBLOCKED).
        Returns the old primary; wait for the new one with
        ``wait_failover``."""
        old = self.primary()
        self._pending = Failover(old, time.monotonic())
        self.sentinels[0].cmd("SENTINEL", "FAILOVER", self.master)
        return old

    def cut_replication(self):
        """Pauses every replica (SIGSTOP) and has the primary drop their
        links (CLIENT KILL TYPE replica): from here on what the primary
        takes reaches no replica, as when its network to them breaks, and
        the replicas, paused, cannot reconnect and catch up from the
        backlog. What the primary had sent before still reaches them when
        they resume. Returns the paused replicas (``resume`` each)."""
        primary = self.primary()
        paused = [n for n in self.nodes if n is not primary and n.alive()]
        for n in paused:
            n.pause()
        primary.cmd("CLIENT", "KILL", "TYPE", "replica")
        wait_for(lambda: not any(k.startswith("slave") and isinstance(v, dict)
                                 for k, v in primary.info().items()),
                 START_TIMEOUT, f"{primary.addr} to have no replica left")
        return paused

    def wait_failover(self, timeout=FAILOVER_TIMEOUT):
        """After ``kill_primary`` or ``manual_failover``: waits for a sentinel's +switch-master
        away from the killed node, then for every sentinel to name the new
        primary and for that node to say it is the primary. Returns the
        Failover (``.new``, ``.seconds``, ``.timeline()``)."""
        f = self._pending
        if f is None:
            raise StackError("wait_failover without kill_primary or manual_failover")
        prefix = f"{self.master} 127.0.0.1 {f.old.port} "

        def switched():
            for t, _, _, data in self.events.since(f.started_at, "+switch-master"):
                if data.startswith(prefix):
                    return t, int(data.split()[-1])
            return None

        def why():
            return (f"+switch-master away from {f.old.addr}; the sentinels said: "
                    f"{[(round(t - f.started_at, 2), p, c, d) for t, p, c, d in self.events.since(f.started_at)]}")

        f.switched_at, port = wait_for(switched, timeout, why, interval=0.01)
        f.new = self.node_at(port)
        wait_for(lambda: all(s.master_addr(self.master) == ("127.0.0.1", port) for s in self.sentinels),
                 timeout, f"every sentinel to name {f.new.addr}")
        wait_for(lambda: f.new.role() == "master", timeout, f"{f.new.addr} to say role:master")
        f.agreed_at = time.monotonic()
        f.events = self.events.since(f.started_at)
        self.failovers.append(f)
        self._pending = None
        return f

    def restart_as_replica(self, node, timeout=START_TIMEOUT):
        """Starts ``node`` (a killed one) again on its port as a replica of
        the current primary; waits for its link and for every sentinel to
        see it as a healthy replica."""
        primary = self.primary()
        node.start(replicaof=primary)
        wait_for(node.link_up, timeout, f"{node.addr} to replicate from {primary.addr}")
        self.wait_settled(primary, timeout)


def main(argv=None):
    """Measures the harness: N failovers in a row, each a SIGKILL of the
    primary, its replacement, and the old node back as a replica."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=main.__doc__.split(";")[0])
    ap.add_argument("--failovers", type=int, default=3)
    ap.add_argument("--down-after-ms", type=int, default=2000)
    ap.add_argument("--failover-timeout-ms", type=int, default=3000)
    ap.add_argument("--workdir", help="keep the configs and logs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="stratq-sentinel-") as tmp:
        if args.workdir:
            tmp = args.workdir
        t0 = time.monotonic()
        group = SentinelGroup(Path(tmp), down_after_ms=args.down_after_ms,
                              failover_timeout_ms=args.failover_timeout_ms)
        with group:
            print(f"started and settled in {time.monotonic() - t0:.2f}s: primary {group.primary().addr}, "
                  f"sentinels {group.sentinel_addrs}")
            for i in range(args.failovers):
                c = group.client()
                c.set("marker", i)
                c.execute_command("WAIT", 2, 2000)
                c.close()
                old = group.kill_primary()
                f = group.wait_failover()
                got = f.new.client().get("marker")
                t1 = time.monotonic()
                group.restart_as_replica(old)
                print(f"failover {i + 1}: {old.addr} -> {f.new.addr} in {f.seconds:.2f}s "
                      f"(all sentinels agree {f.agreed_at - f.started_at:.2f}s; marker {got!r}); "
                      f"old node back as replica in {time.monotonic() - t1:.2f}s\n  {f.timeline()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

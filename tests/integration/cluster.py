"""A real Redis Cluster for the tests: three primaries (no replicas) on free
loopback ports, AOF on, each in its own directory, made with
``redis-cli --cluster create``; and the steps of a slot migration, one at a
time, so that a test can hold a slot half-migrated (ASK, TRYAGAIN) or move
it for good (MOVED).

Waiting is on a condition with a deadline (``wait_for``), never a bare
sleep; every redis-server is stopped by its pid.
"""

import os
import signal
import subprocess

import redis

from stack import cluster_port, wait_for

REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("STRATQ_TEST_REDIS_CLI", "/usr/bin/redis-cli")
START_TIMEOUT = 30.0

# The CRC16-XMODEM of Redis Cluster, for picking names by slot (the C side
# is checked against CLUSTER KEYSLOT in tests/unit/test_conn.c).


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384




class Node:
    def __init__(self, port, workdir):
        self.port = port
        self.dir = workdir / str(port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / f"nodes-{port}.conf"
        self.log_path = workdir / f"redis-{port}.log"
        self.proc = None
        self.id = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", str(self.conf),
                 "--cluster-node-timeout", "5000", "--appendonly", "yes",
                 "--dir", str(self.dir), "--save", "", "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = self.client(socket_timeout=2)

        def up():
            assert self.proc.poll() is None, f"redis-server {self.port} exited:\n{self.log_path.read_text()}"
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                return False
            except redis.exceptions.BusyLoadingError:
                return False

        wait_for(up, START_TIMEOUT, f"redis-server {self.port} to answer PING")
        client.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kw)

    def cmd(self, *args):
        c = self.client(socket_timeout=10)
        try:
            return c.execute_command(*args)
        finally:
            c.close()


class Cluster:
    """Three primaries on free ports; ``nodes[0]`` is the one seed the
    tests give stratq unless they say otherwise."""

    def __init__(self, workdir, n=3):
        self.workdir = workdir
        self.nodes = [Node(cluster_port(), workdir) for _ in range(n)]

    def start(self):
        for node in self.nodes:
            node.start()
        res = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[n.addr for n in self.nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        assert res.returncode == 0, f"redis-cli --cluster create failed:\n{res.stdout}\n{res.stderr}"
        for node in self.nodes:
            node.id = node.cmd("CLUSTER", "MYID")
        self.wait_ok()

    def wait_ok(self):
        def ok():
            for node in self.nodes:
                try:
                    info = node.cmd("CLUSTER", "INFO")
                except redis.exceptions.RedisError:
                    return False
                if "cluster_state:ok" not in info:
                    return False
                # Every node must agree on who owns every slot, or a
                # client could be sent back and forth.
            views = {tuple(sorted(self.owners_seen_by(n).items())) for n in self.nodes}
            return len(views) == 1

        wait_for(ok, START_TIMEOUT, "every cluster node to say cluster_state:ok and agree on slots")

    def owners_seen_by(self, node):
        """{(first slot, last slot): port} as ``node`` sees them."""
        out = {}
        for first, last, primary, *_ in node.cmd("CLUSTER", "SLOTS"):
            out[(int(first), int(last))] = int(primary[1])
        return out

    def stop(self):
        for node in self.nodes:
            node.stop()

    @property
    def seeds(self):
        return ",".join(n.addr for n in self.nodes)

    def owner(self, slot):
        for (first, last), port in self.owners_seen_by(self.nodes[0]).items():
            if first <= slot <= last:
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node owns slot {slot}")

    def name_on(self, node, prefix, avoid=()):
        """A queue name with this prefix whose slot ``node`` owns."""
        for i in range(100000):
            name = f"{prefix}{i}"
            if self.owner(key_slot(name)) is node and name not in avoid:
                return name
        raise AssertionError(f"no name {prefix}N hashes onto {node.addr}")

    # A slot migration, step by step (the order CLUSTER SETSLOT's manual
    # gives): IMPORTING on the target, MIGRATING on the source, MIGRATE of
    # the keys, then SETSLOT NODE on the target, the source and the rest.

    def begin_migration(self, slot, src, dst):
        dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
        src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id)

    def migrate_keys(self, slot, src, dst, keys=None):
        """MIGRATE the given keys (all the slot's when None) to dst."""
        while True:
            batch = keys if keys is not None else src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not batch:
                return
            src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *batch)
            if keys is not None:
                return

    def end_migration(self, slot, src, dst):
        self.migrate_keys(slot, src, dst)
        dst.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        src.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        for node in self.nodes:
            if node is not src and node is not dst:
                node.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        wait_for(lambda: all(self.owner_seen(n, slot) == dst.port for n in self.nodes),
                 START_TIMEOUT, f"every node to see slot {slot} on {dst.addr}")

    def owner_seen(self, node, slot):
        for (first, last), port in self.owners_seen_by(node).items():
            if first <= slot <= last:
                return port
        return None

    def move_slot(self, slot, src, dst):
        self.begin_migration(slot, src, dst)
        self.end_migration(slot, src, dst)

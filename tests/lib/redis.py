"""
redis.py -- a private redis-server for the Redis engine's tests (issue #13), and a cluster of
Herald nodes sharing it.

    with RedisServer() as r:                    # Debian's /usr/bin/redis-server, own temp dir
        r.address                               # "unix:/tmp/herald-redis.../redis.sock"
        r.cli("DBSIZE")                         # "0": redis-cli on the same socket
        r.kill()                                # SIGKILL, by its PID
        r.start()                               # again: same dir, socket and config

    with Cluster(persist=True) as c:            # one Redis, nodes n1 n2 n3 with engine = redis
        n1, n2, n3 = c.nodes                    # herald.Herald objects, started
        c.redis.kill()

RedisServer(tmpdir=None, persist=False, port=None): the server runs in the foreground as our
child, from a redis.conf written into `tmpdir` (a fresh temp dir, removed by cleanup(), when
None), listening on `tmpdir`/redis.sock, or with `port` on 127.0.0.1:port instead (0: a free
port). Without persistence `save ""` and `appendonly no`: a restart starts empty. With
persist=True, `appendonly yes` and `appendfsync always`: every write is on disk before Redis
answers it, so even a SIGKILL loses nothing and start() loads it back. start() returns once
the server answers PING with PONG (not while it is still loading). stop() sends SIGTERM and
expects exit status 0; kill() sends SIGKILL; restart() is stop() then start(). Processes are
signalled only by their own PID, and the server is started with PR_SET_PDEATHSIG, so it dies
with the test process. log_text() is its log, for failure messages.

Cluster(names=("n1", "n2", "n3"), persist=False, config=None, sites=None, workers=2): a
RedisServer and one Herald per name, each with node_config() (engine = redis, the server's
redis_address, redis_timeout = REDIS_TIMEOUT, node_name = the name) over `config`, and the
same `sites` (give each site its `secret`, so a token is good on every node, as in a real
cluster). Each node has its own temp dir, port and API sockets (herald.Herald's). start()
waits until every node's /stats says the engine is available. stop() stops every node still
running with SIGTERM (exit 0 and a clean stderr, herald.Herald.stop), then Redis; a node the
test already stopped (say with SIGKILL, stop(sig=signal.SIGKILL, expect_rc=-9)) is skipped.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from herald import Herald, _pdeathsig, free_port
from procs import Child, stop_child

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"

# The nodes' redis_timeout, in seconds: a Redis command's deadline.
REDIS_TIMEOUT = 1.0


class RedisServer(Child):
    def __init__(self, tmpdir=None, persist=False, port=None):
        self.own_dir = tmpdir is None
        self.dir = tmpdir
        self.persist = persist
        self.port = port
        self.proc = None
        self.returncode = None
        self._log = None

    # -- where -----------------------------------------------------------

    @property
    def socket_path(self):
        return os.path.join(self.dir, "redis.sock")

    @property
    def address(self):
        """Herald's redis_address for this server."""
        if self.port:
            return "127.0.0.1:%d" % self.port
        return "unix:" + self.socket_path

    def _connect(self, timeout):
        if self.port:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = ("127.0.0.1", self.port)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = self.socket_path
        s.settimeout(timeout)
        try:
            s.connect(target)
        except BaseException:
            s.close()
            raise
        return s

    # -- lifecycle -------------------------------------------------------

    def _write_conf(self):
        lines = [
            "daemonize no",
            "dir %s" % self.dir,
            "logfile \"\"",          # stdout, which is redis.log
            "loglevel notice",
            "databases 16",
        ]
        if self.port:
            lines += ["port %d" % self.port, "bind 127.0.0.1"]
        else:
            lines += ["port 0", "unixsocket %s" % self.socket_path, "unixsocketperm 700"]
        if self.persist:
            lines += ["save \"\"", "appendonly yes", "appendfsync always"]
        else:
            lines += ["save \"\"", "appendonly no"]
        with open(os.path.join(self.dir, "redis.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        """Start the server (a fresh temp dir the first time) and wait until it answers PONG."""
        assert self.proc is None, "redis-server is already running"
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("no %s: install redis-server (make deps)" % REDIS_SERVER)
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="herald-redis%d-" % os.getpid())
        if self.port == 0:
            self.port = free_port()
        self._write_conf()
        self._log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.returncode = None
        self.proc = subprocess.Popen([REDIS_SERVER, os.path.join(self.dir, "redis.conf")],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     preexec_fn=_pdeathsig)
        deadline = time.monotonic() + timeout
        try:
            while not self._pong():
                if self.proc.poll() is not None:
                    raise RuntimeError("redis-server exited with status %s:\n%s"
                                       % (self.proc.returncode, self.log_text()))
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer PING within %.0fs:\n%s"
                                       % (timeout, self.log_text()))
                time.sleep(0.02)
        except BaseException:
            self._reap(signal.SIGKILL)
            raise
        return self

    def _pong(self):
        """Does the server answer PING with PONG (not -LOADING) right now?"""
        try:
            with self._connect(0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _reap(self, sig, timeout=10.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None and sig == signal.SIGKILL:
            os.kill(self.proc.pid, signal.SIGCONT)   # a stopped process still dies at once
        stop_child(self.proc, sig, timeout)
        self.returncode = self.proc.returncode
        self.proc = None
        if self._log is not None and not self._log.closed:
            self._log.close()
        return self.returncode

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM (Redis flushes its AOF and exits 0) and wait; asserts exit status 0."""
        if self.proc is None:
            return None
        was_running = self.proc.poll() is None
        rc = self._reap(signal.SIGTERM, timeout)
        assert was_running, "redis-server had exited (status %s) before it was stopped:\n%s" % (
            rc, self.log_text()[-3000:])
        assert rc == 0, "redis-server exited with status %s on SIGTERM:\n%s" % (
            rc, self.log_text()[-3000:])
        return rc

    def kill(self):
        """SIGKILL, by its PID, as a crash: nothing is flushed that was not already."""
        assert self.running(), "redis-server is not running"
        return self._reap(signal.SIGKILL)

    def restart(self, timeout=10.0):
        """stop() (if it still runs), then start() on the same dir, socket and config."""
        if self.running():
            self.stop()
        elif self.proc is not None:
            self._reap(signal.SIGKILL)
        return self.start(timeout)

    def cleanup(self):
        """Kill the server if it still runs and remove the temp dir (if it is ours)."""
        self._reap(signal.SIGKILL)
        if self.own_dir and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- talking to it ---------------------------------------------------

    def cli(self, *args, timeout=5.0):
        """redis-cli ARGS... on the same socket (or port); its stdout, stripped. Fails on error."""
        where = ["-h", "127.0.0.1", "-p", str(self.port)] if self.port else \
            ["-s", self.socket_path]
        p = subprocess.run([REDIS_CLI] + where + [str(a) for a in args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace").strip()
        assert p.returncode == 0 and not out.startswith("ERR") and \
            not out.startswith("(error)"), "redis-cli %s: status %d: %s %s" % (
                " ".join(map(str, args)), p.returncode, out, p.stderr.decode("utf-8", "replace"))
        return out

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""


def node_config(redis, name):
    """The [herald] keys that make a node of `redis`'s cluster, named `name`."""
    return {
        "engine": "redis",
        "redis_address": redis.address,
        "redis_timeout": "%dms" % int(REDIS_TIMEOUT * 1000),
        "node_name": name,
    }


class Cluster:
    def __init__(self, names=("n1", "n2", "n3"), persist=False, config=None, sites=None,
                 workers=2, redis_port=None):
        self.redis = RedisServer(persist=persist, port=redis_port)
        self.names = list(names)
        self.config = dict(config or {})
        self.sites = sites
        self.workers = workers
        self.nodes = []
        self.addresses = {}     # a node's redis_address other than the server's (a RedisRelay)

    def node_config(self, name):
        cfg = dict(self.config)
        cfg.update(node_config(self.redis, name))
        if name in self.addresses:
            cfg["redis_address"] = self.addresses[name]
        return cfg

    def node(self, name):
        return self.nodes[self.names.index(name)]

    def start(self, timeout=10.0):
        """Redis, then every node; returns once each node's /stats says the engine is up."""
        try:
            self.redis.start()
            for name in self.names:
                h = Herald(config=self.node_config(name), workers=self.workers,
                           sites=self.sites)
                self.nodes.append(h)
                h.start()
            for h in self.nodes:
                self.wait_available(h, True, timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    @staticmethod
    def wait_available(h, want, timeout):
        """Wait until h's /stats says engine.available == want; assert it did."""
        s = h.wait_stat("engine.available", want, timeout)
        assert s["engine"]["available"] is want, \
            "node %s: /stats engine %r after %.0fs, expected available %r:\n%s" % (
                h.config.get("node_name"), s["engine"], timeout, want, h.log_text()[-3000:])
        return s

    def stop(self):
        """Every node still running with SIGTERM (each must exit 0, stderr clean), then Redis."""
        errors = []
        for h in self.nodes:
            try:
                h.stop()
            except AssertionError as e:
                errors.append(e)
        try:
            if self.redis.proc is not None:
                self.redis.stop()
        except AssertionError as e:
            errors.append(e)
        if errors:
            raise errors[0]

    def cleanup(self):
        for h in self.nodes:
            h.cleanup()
        self.redis.cleanup()

    def __enter__(self):
        if not self.nodes:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
            else:
                try:
                    self.stop()
                except AssertionError as e:
                    print("also, on stopping the cluster: %s" % e)
        finally:
            self.cleanup()
        return False


# -- Redis Sentinel (issue #13: redis_sentinels, redis_sentinel_master) -------------------------
#
#   with SentinelGroup() as g:                  # a master, a replica and 3 Sentinels, all TCP
#       g.master, g.replica                     # RedisServer on 127.0.0.1, free ports
#       g.sentinels                             # [SentinelServer] watching g.name ("herald-test")
#       g.addresses                             # "127.0.0.1:P1, 127.0.0.1:P2, 127.0.0.1:P3"
#       g.master.kill(); port = g.wait_failover(old_port, 15)
#
#   with SentinelCluster(config=..., sites=...) as c:   # a SentinelGroup and nodes n1 n2 n3
#       c.group.master.kill()
#
# SentinelGroup(name="herald-test", sentinels=3, quorum=2): start() starts the master, then the
# replica (`replicaof` the master) and waits until its replication link is up, then the
# Sentinels (`sentinel monitor NAME 127.0.0.1 <master port> QUORUM`, down-after 1000 ms,
# failover-timeout 5000 ms, parallel-syncs 1, announcing 127.0.0.1 and their own port), and
# returns once every Sentinel names the master, sees the replica (up, link ok) and sees every
# other Sentinel: from then on a failover can happen. Without persistence (the replica holds
# the data). Every process is our child with PR_SET_PDEATHSIG, signalled by its PID only, each
# in its own temp dir (removed by cleanup()). stop() stops the Sentinels, then whichever
# server still runs, each with SIGTERM and exit status 0 expected.
#
# SentinelCluster(names, config, sites, workers, group=None): Cluster's nodes, each with
# sentinel_node_config() instead of redis_address: redis_sentinels = the group's Sentinels (or
# `sentinels`, a list of "IP:PORT"), redis_sentinel_master = its name. With group=None it
# starts and stops a SentinelGroup of its own; a group given is the caller's to stop.
#
# call(port, *args): one command to 127.0.0.1:port in RESP, its reply as Python values (str,
# int, None, list); an error reply raises RedisReplyError. pairs(list) makes a dict of a flat
# [field, value, ...] reply (SENTINEL replicas, SENTINEL sentinels).

SENTINEL_MASTER = "herald-test"


class RedisRelay:
    """
    A relay on a unix socket (path, in tmpdir) to `server`'s socket (a RedisServer, looked up
    at each connect, so it may start later), a thread pair per connection.
    silence() makes every connection that has sent SUBSCRIBE (a node's pub/sub link) drop
    what Redis sends it from then on, while it stays open both ways: a subscription dead
    without a closed connection, which only a probe through Redis can notice. Connections
    made after silence() are relayed whole. close() ends everything.
    """

    def __init__(self, server, tmpdir):
        self.server = server
        self.path = os.path.join(tmpdir, "relay.sock")
        self.lock = threading.Lock()
        self.conns = []                 # [[client, server, subscribed, silenced]]
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                server.connect(self.server.socket_path)
            except OSError:
                client.close()
                continue
            conn = [client, server, False, False]
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._pump, args=(conn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, False), daemon=True).start()

    def _pump(self, conn, up):
        """Node to Redis (up), noting a SUBSCRIBE; or Redis to node, unless silenced."""
        src, dst = (conn[0], conn[1]) if up else (conn[1], conn[0])
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up and b"SUBSCRIBE" in data.upper():
                    conn[2] = True
                if up or not conn[3]:
                    dst.sendall(data)
        except OSError:
            pass
        self._end(conn)

    def _end(self, conn):
        for s in conn[:2]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)
                for s in conn[:2]:
                    s.close()

    def silence(self):
        """Returns how many subscribed connections were silenced."""
        with self.lock:
            subs = [c for c in self.conns if c[2]]
            for c in subs:
                c[3] = True
        return len(subs)

    def close(self):
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            self._end(c)


class RedisReplyError(Exception):
    """An error reply (-ERR ..., -READONLY ...) from call()."""


def _resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        return RedisReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise OSError("connection closed mid-reply")
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise OSError("not a RESP reply: %r" % (line,))


def call(port, *args, timeout=2.0):
    """One command to 127.0.0.1:port; its reply (an error reply raises RedisReplyError)."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            r = _resp_read(f)
    if isinstance(r, RedisReplyError):
        raise r
    return r


def pairs(flat):
    """{field: value} of a flat [field, value, ...] list."""
    return dict(zip(flat[0::2], flat[1::2]))


class TcpRedisServer(RedisServer):
    """
    A RedisServer on 127.0.0.1 (a free port unless `port`), announcing 127.0.0.1, with
    diskless replication at once; with replicaof=PORT a replica of 127.0.0.1:PORT.
    """

    def __init__(self, replicaof=None, tmpdir=None, persist=False, port=0):
        super().__init__(tmpdir=tmpdir, persist=persist, port=port)
        self.replicaof = replicaof

    def _write_conf(self):
        super()._write_conf()
        lines = ["replica-announce-ip 127.0.0.1", "repl-diskless-sync-delay 0"]
        if self.replicaof:
            lines.append("replicaof 127.0.0.1 %d" % self.replicaof)
        with open(os.path.join(self.dir, "redis.conf"), "a") as f:
            f.write("\n".join(lines) + "\n")

    def role(self):
        """ROLE's first element: "master" or "slave" (None when it does not answer)."""
        try:
            return call(self.port, "ROLE", timeout=1.0)[0]
        except (OSError, RedisReplyError):
            return None

    def info(self, section):
        """INFO section as a dict (None when it does not answer)."""
        try:
            text = call(self.port, "INFO", section, timeout=1.0)
        except (OSError, RedisReplyError):
            return None
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith("#"))


class SentinelServer(RedisServer):
    """
    One Sentinel (`redis-server sentinel.conf --sentinel`) on 127.0.0.1, a free port unless
    `port`, watching `name` at 127.0.0.1:master_port. Its sentinel.conf, which Sentinel
    rewrites as it learns, is written once: start() again keeps what it learnt.
    """

    def __init__(self, master_port, name=SENTINEL_MASTER, quorum=2, down_after_ms=1000,
                 failover_timeout_ms=5000, tmpdir=None, port=0):
        super().__init__(tmpdir=tmpdir, persist=False, port=port)
        self.master_port = master_port
        self.name = name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def conf_path(self):
        return os.path.join(self.dir, "sentinel.conf")

    def _write_conf(self):
        if os.path.exists(self.conf_path):
            return
        lines = [
            "daemonize no",
            "dir %s" % self.dir,
            "logfile \"\"",
            "loglevel notice",
            "port %d" % self.port,
            "bind 127.0.0.1",
            "sentinel resolve-hostnames no",
            "sentinel announce-ip 127.0.0.1",
            "sentinel announce-port %d" % self.port,
            "sentinel monitor %s 127.0.0.1 %d %d" % (self.name, self.master_port, self.quorum),
            "sentinel down-after-milliseconds %s %d" % (self.name, self.down_after_ms),
            "sentinel failover-timeout %s %d" % (self.name, self.failover_timeout_ms),
            "sentinel parallel-syncs %s 1" % self.name,
        ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        """Start the Sentinel (a fresh temp dir the first time); wait until it answers PONG."""
        assert self.proc is None, "the Sentinel is already running"
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("no %s: install redis-server (make deps)" % REDIS_SERVER)
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="herald-sentinel%d-" % os.getpid())
        if self.port == 0:
            self.port = free_port()
        self._write_conf()
        self._log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.returncode = None
        self.proc = subprocess.Popen([REDIS_SERVER, self.conf_path, "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     preexec_fn=_pdeathsig)
        deadline = time.monotonic() + timeout
        try:
            while not self._pong():
                if self.proc.poll() is not None:
                    raise RuntimeError("the Sentinel exited with status %s:\n%s"
                                       % (self.proc.returncode, self.log_text()))
                if time.monotonic() > deadline:
                    raise RuntimeError("the Sentinel did not answer PING within %.0fs:\n%s"
                                       % (timeout, self.log_text()))
                time.sleep(0.02)
        except BaseException:
            self._reap(signal.SIGKILL)
            raise
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def master_addr(self):
        """SENTINEL get-master-addr-by-name: (host, port), or None."""
        r = call(self.port, "SENTINEL", "get-master-addr-by-name", self.name)
        return None if r is None else (r[0], int(r[1]))

    def replicas(self):
        return [pairs(x) for x in call(self.port, "SENTINEL", "replicas", self.name)]

    def others(self):
        return [pairs(x) for x in call(self.port, "SENTINEL", "sentinels", self.name)]


class SentinelGroup:
    def __init__(self, name=SENTINEL_MASTER, sentinels=3, quorum=2):
        self.name = name
        self.nsentinels = sentinels
        self.quorum = quorum
        self.master = None
        self.replica = None
        self.servers = []
        self.sentinels = []

    @property
    def addresses(self):
        """The nodes' redis_sentinels: every Sentinel, comma-separated."""
        return ", ".join(s.address for s in self.sentinels)

    def server(self, port):
        """The TcpRedisServer on `port` (the master or the replica, whichever it is now)."""
        return next(s for s in self.servers if s.port == port)

    def start(self, timeout=30.0):
        try:
            self.master = TcpRedisServer().start()
            self.servers.append(self.master)
            self.replica = TcpRedisServer(replicaof=self.master.port)
            self.servers.append(self.replica)
            self.replica.start()
            self._until(lambda: (self.replica.info("replication") or {}).get(
                "master_link_status") == "up", 15, "the replica's link to the master is up")
            for _ in range(self.nsentinels):
                s = SentinelServer(self.master.port, self.name, self.quorum)
                self.sentinels.append(s)
                s.start()
            self.wait_ready(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                if cond():
                    return
            except (OSError, RedisReplyError) as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError("not within %.0fs: %s (last error %r)\n%s" % (
                    timeout, what, last, self.logs()))
            time.sleep(0.1)

    def _ready(self, s, master_port, replica_port):
        if s.master_addr() != ("127.0.0.1", master_port):
            return False
        reps = s.replicas()
        if not any(int(r["port"]) == replica_port and r["ip"] == "127.0.0.1" and
                   "down" not in r["flags"] and "disconnected" not in r["flags"] and
                   r.get("master-link-status") == "ok" for r in reps):
            return False
        others = [o for o in s.others() if "down" not in o["flags"]]
        return len(others) == self.nsentinels - 1

    def wait_ready(self, timeout=30.0):
        """Every Sentinel names the master, sees the replica up and every other Sentinel."""
        self._until(lambda: all(self._ready(s, self.master.port, self.replica.port)
                                for s in self.sentinels), timeout,
                    "every Sentinel agrees on master %d, sees replica %d and %d others"
                    % (self.master.port, self.replica.port, self.nsentinels - 1))

    def wait_failover(self, old_port, timeout=15.0):
        """Wait until every running Sentinel names a master other than old_port, and that
        server says ROLE master; returns its port."""
        found = []

        def done():
            named = {s.master_addr() for s in self.sentinels if s.running()}
            if len(named) != 1:
                return False
            addr = named.pop()
            if addr is None or addr[1] == old_port:
                return False
            if self.server(addr[1]).role() != "master":
                return False
            found.append(addr[1])
            return True
        self._until(done, timeout, "a failover away from %d" % old_port)
        return found[-1]

    def logs(self, tail=2500):
        out = []
        for s in self.servers + self.sentinels:
            if s.dir:
                out.append("--- %s %d:\n%s" % (type(s).__name__, s.port or 0,
                                               s.log_text()[-tail:]))
        return "\n".join(out)

    def stop(self):
        """SIGTERM the Sentinels, then every server still running; each must exit 0."""
        errors = []
        for s in self.sentinels + self.servers:
            try:
                if s.proc is not None:
                    s.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def cleanup(self):
        for s in self.sentinels + self.servers:
            s.cleanup()

    def __enter__(self):
        if self.master is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.cleanup()
        return False


def sentinel_node_config(group, name, sentinels=None):
    """The [herald] keys that make a node named `name` of the cluster behind `group`."""
    return {
        "engine": "redis",
        "redis_sentinels": ", ".join(sentinels) if sentinels is not None else group.addresses,
        "redis_sentinel_master": group.name,
        "redis_timeout": "%dms" % int(REDIS_TIMEOUT * 1000),
        "node_name": name,
    }


class SentinelCluster(Cluster):
    def __init__(self, names=("n1", "n2", "n3"), config=None, sites=None, workers=2,
                 group=None, sentinels=None):
        self.own_group = group is None
        self.group = group if group is not None else SentinelGroup()
        self.redis = None
        self.sentinels = sentinels
        self.names = list(names)
        self.config = dict(config or {})
        self.sites = sites
        self.workers = workers
        self.nodes = []
        self.addresses = {}     # a node's redis_address other than the server's (a RedisRelay)

    def node_config(self, name):
        cfg = dict(self.config)
        cfg.update(sentinel_node_config(self.group, name, self.sentinels))
        return cfg

    def start(self, timeout=10.0):
        """The group (if it is ours), then every node; returns once each says it is up."""
        try:
            if self.own_group and self.group.master is None:
                self.group.start()
            for name in self.names:
                h = Herald(config=self.node_config(name), workers=self.workers,
                           sites=self.sites)
                self.nodes.append(h)
                h.start()
            for h in self.nodes:
                self.wait_available(h, True, timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def stop(self):
        """Every node still running with SIGTERM (exit 0, stderr clean), then our group."""
        errors = []
        for h in self.nodes:
            try:
                h.stop()
            except AssertionError as e:
                errors.append(e)
        try:
            if self.own_group:
                self.group.stop()
        except AssertionError as e:
            errors.append(e)
        if errors:
            raise errors[0]

    def cleanup(self):
        for h in self.nodes:
            h.cleanup()
        if self.own_group:
            self.group.cleanup()

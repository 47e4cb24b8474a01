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

    def node_config(self, name):
        cfg = dict(self.config)
        cfg.update(node_config(self.redis, name))
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

#!/usr/bin/python3
"""
cluster.py -- the several-nodes benchmark of issue #13 (engine = redis), run by
`make bench` after bench/run.py, or alone by `make bench-cluster` (never by
`make test`).

    /usr/bin/python3 bench/cluster.py                full run (8-14 minutes on 2 cores)
    BENCH_QUICK=1 /usr/bin/python3 bench/cluster.py  smoke run, 5 x 2,000 conns, ~2 minutes

In one run, on loopback: one redis-server (Debian's /usr/bin/redis-server, no
persistence, a unix socket for Herald and 127.0.0.1:PORT for Nchan) and

  herald  5 Herald nodes (engine = redis, workers = 1 each, node_name n0..n4)
  nchan   5 nginx instances with Nchan on the same kind of Redis
          (bench/peers/nchan/nginx-redis.conf.in: nchan_redis_url, 1 worker
          each, so 5 nginx workers for 5 Herald nodes)

each node holding 18,000 WebSocket connections (90,000 in all: every process
here is capped at 20,000 open files). The load generator is sharded the same
way: one build/bench/loadgen per node, connected to its node only, started
with --shard (it says READY once connected, waits for GO on stdin, and keeps
its connections until its stdin is closed) and --id-base (user names do not
repeat across shards). Then, for comparison, one node alone at 18,000
connections: Herald with engine = memory and Nchan with its memory store.

Workloads (BENCH_QUICK=1 scales them down):
  memory     idle connections: the nodes' RSS before connecting and while
             they are held, bytes per connection; Redis' RSS and used_memory
             the same way; the kernel's socket memory (slab caches of
             sockets, files, dentries and epoll items, plus TCP buffer
             pages), half of each loopback pair's being the server's side.
  broadcast  90,000 subscribers; shard 0 publishes M messages of 100 B
             through node 0's API (broadcast to everyone), the other shards
             only receive (loadgen broadcast --publishers 0) and check every
             seq. deliveries/s = all deliveries over (the last delivery in
             any shard - the first publish); latency from the payload's
             CLOCK_MONOTONIC stamp, the shards' histograms merged.
  targeted   a fixed 10,000 publishes/s in all: each shard publishes 2,000/s to
             its own users through the NEXT node's API (shard i -> node i+1),
             so every target is on another node than the publisher.
  tlow       the same at 2,000/s in all: cross-node latency under a light load.
  tmax       the same at full speed, 2 publishers per shard: the ceiling.
Before GO (and before the idle memory is read) the driver waits, at most 60 s,
until every Herald node's /stats says its engine is available and Redis has
taken fewer than 2,000 commands/s for 1.5 s: the rows are the steady state.
How long that took is recorded, and the nodes' log lines are counted by
phase: "connect" (connecting and settling), "run" (the measured window) and
"close" (the shards disconnecting), in the notes under the table.
Redis is measured between GO and the last result line: CPU (utime + stime
from /proc/PID/stat), INFO commandstats (calls per command) and INFO stats
(total_net_input_bytes, total_net_output_bytes), each divided by the
publishes; the nodes' and the load generators' CPU likewise.

Fairness: the two clusters run alternately, workload by workload (herald
then nchan, then nchan then herald for the second round of broadcast and
targeted when BENCH_CLUSTER_ROUNDS=2, the full run's default). Every run
gets a fresh Redis and fresh nodes. The CPU used by processes other than
ours during a run is recorded; above 5% of the machine the run is flagged.
The Herald binary is copied at start, so a rebuild during the run changes
nothing.

Results: a table on stdout, build/bench/cluster.md and every raw figure in
build/bench/cluster.json. Ratios > 1 mean Herald is better.

Environment: BENCH_QUICK=1, BENCH_ONLY (runs only if unset or naming
"cluster"), BENCH_CLUSTER_WORKLOADS=memory,broadcast,targeted,tmax,single
(a subset), BENCH_CLUSTER_SERVERS=herald,nchan (a subset), BENCH_CLUSTER_ROUNDS, BENCH_CLUSTER_DEADLINE=SECONDS (1200 full,
420 quick), BENCH_KEEP_TMP=1 (keep the temp dirs and logs).

Every process started gets PR_SET_PDEATHSIG and is stopped by its own PID
(nginx: and the workers its master forked), temp dirs build/bench/tmp-* are
removed afterwards (kept for a failed run).
"""

import calendar
import hashlib
import json
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # noqa: E402  (spawn, reap, PDEATHSIG, memory_kib, children_of ...)

REPO = base.REPO
BUILD = base.BUILD
LOADGEN = base.LOADGEN
NGINX = base.NGINX
REDIS_SERVER = "/usr/bin/redis-server"
NCHAN_REDIS_TEMPLATE = REPO / "bench" / "peers" / "nchan" / "nginx-redis.conf.in"
NCHAN_TEMPLATE = base.NCHAN_TEMPLATE

QUICK = base.QUICK
FULL = {
    "nodes": 5, "conns": 18000, "mem_settle": 3.0,
    "fan_messages": 100, "fan_size": 100,
    "tgt_rate": 10000, "tgt_duration": 10, "tgt_publishers": 4, "low_rate": 2000,
    "max_duration": 10, "max_publishers": 2,
    "rounds": 2, "deadline": 1200, "connect_timeout": 180, "run_timeout": 240,
}
SMALL = {
    "nodes": 5, "conns": 2000, "mem_settle": 1.0,
    "fan_messages": 20, "fan_size": 100,
    "tgt_rate": 2000, "tgt_duration": 3, "tgt_publishers": 2, "low_rate": 500,
    "max_duration": 3, "max_publishers": 2,
    "rounds": 1, "deadline": 420, "connect_timeout": 60, "run_timeout": 90,
}
S = dict(SMALL if QUICK else FULL)
S["rounds"] = int(os.environ.get("BENCH_CLUSTER_ROUNDS", S["rounds"]))
WORKLOADS = ("memory", "broadcast", "targeted", "tlow", "tmax", "single")
NOISY_SHARE = 0.05
SETTLE_MAX = 60.0      # s: the longest wait for a steady state after the shards connected
SETTLE_RATE = 2000.0   # Redis commands/s below which the cluster counts as settled
STOP_TIMEOUT = 15.0
KEEP_TMP = bool(os.environ.get("BENCH_KEEP_TMP"))
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
# The slab caches a TCP socket's kernel side lives in (both ends of a loopback pair).
SOCK_CACHES = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq")


def log(msg):
    print("bench-cluster: " + msg, file=sys.stderr, flush=True)


class Failed(Exception):
    """A run could not be measured (a node did not start, a shard failed ...)."""


# -- /proc ------------------------------------------------------------------

def log_time(text):
    """A log line's time stamp (UTC; Herald's ISO 8601, or nginx's local time) as epoch s."""
    if "T" in text:
        base_s, _, frac = text.partition(".")
        t = calendar.timegm(time.strptime(base_s, "%Y-%m-%dT%H:%M:%S"))
        return t + (float("0." + frac) if frac else 0.0)
    return time.mktime(time.strptime(text, "%Y/%m/%d %H:%M:%S"))


def proc_cpu(pid):
    """utime + stime of pid in seconds (None once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """CPU seconds all tasks spent (user + nice + system + irq + softirq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / TICK


def kernel_sockets():
    """Bytes in the socket slab caches and in TCP buffers, and meminfo's Slab."""
    out = {"slab_bytes": 0, "caches": {}}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in SOCK_CACHES:
                    b = int(parts[1]) * int(parts[3])
                    out["caches"][parts[0]] = b
                    out["slab_bytes"] += b
    except OSError:
        out["slab_bytes"] = None
    with open("/proc/net/sockstat") as f:
        m = re.search(r"^TCP:.* mem (\d+)", f.read(), re.M)
        out["tcp_mem_bytes"] = int(m.group(1)) * PAGE if m else 0
    with open("/proc/meminfo") as f:
        m = re.search(r"^Slab:\s+(\d+)", f.read(), re.M)
        out["meminfo_slab_bytes"] = int(m.group(1)) * 1024 if m else 0
    return out


# -- Redis ------------------------------------------------------------------

def resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("redis: connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise OSError("redis: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise OSError("redis: not a RESP reply: %r" % line)


class Redis:
    """A private redis-server: no persistence, a unix socket and 127.0.0.1:port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tmp-redis-", dir=str(BUILD))
        self.sock = os.path.join(self.dir, "redis.sock")
        self.port = None
        self.proc = None

    def start(self):
        for _attempt in range(3):
            self.port = base.free_port()
            with open(os.path.join(self.dir, "redis.conf"), "w") as f:
                f.write("daemonize no\ndir %s\nlogfile \"\"\nloglevel notice\n"
                        "port %d\nbind 127.0.0.1\nunixsocket %s\nunixsocketperm 700\n"
                        "save \"\"\nappendonly no\n" % (self.dir, self.port, self.sock))
            log_f = open(os.path.join(self.dir, "redis.log"), "ab")
            self.proc = base.spawn([REDIS_SERVER, os.path.join(self.dir, "redis.conf")],
                                   "redis-server", cwd=self.dir, stdout=log_f,
                                   stderr=subprocess.STDOUT)
            log_f.close()
            end = time.monotonic() + 10
            while time.monotonic() < end and self.proc.poll() is None:
                try:
                    if self.call("PING") == "PONG":
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            base.reap(self.proc)
        raise Failed("redis-server did not start: " + self.log_tail())

    def call(self, *args, timeout=5.0):
        req = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            req += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall(req)
            with s.makefile("rb") as f:
                return resp_read(f)

    def info(self, section):
        text = self.call("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith("#"))

    def snapshot(self):
        """CPU, RSS, commandstats and traffic right now."""
        stats = self.info("stats")
        cmds = {}
        for k, v in self.info("commandstats").items():
            m = re.search(r"calls=(\d+)", v)
            if m:
                cmds[k.replace("cmdstat_", "")] = int(m.group(1))
        mem = self.info("memory")
        cpu = self.info("cpu")
        return {"cpu_s": proc_cpu(self.proc.pid),
                "info_cpu_s": float(cpu.get("used_cpu_sys", 0)) + float(cpu.get("used_cpu_user", 0)), "rss_kib": base.memory_kib([self.proc.pid])
                ["rss_kib"], "used_memory": int(mem.get("used_memory", 0)),
                "net_in": int(stats.get("total_net_input_bytes", 0)),
                "net_out": int(stats.get("total_net_output_bytes", 0)),
                "commands": int(stats.get("total_commands_processed", 0)), "cmds": cmds}

    def log_tail(self, n=800):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:].strip().replace("\n", " | ")
        except OSError:
            return ""

    def stop(self, keep_dir=False):
        rc = base.reap(self.proc) if self.proc is not None else None
        if not keep_dir and not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc


# -- FastCGI, just enough for GET /stats ----------------------------------

def _fcgi_record(rtype, content):
    return struct.pack(">BBHHBx", 1, rtype, 1, len(content), 0) + content


def _fcgi_pairs(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k + v
    return out


def fcgi_get(path, uri, timeout=5.0):
    """GET uri on Herald's API socket; the JSON answer (None if not 200 JSON)."""
    params = {"REQUEST_METHOD": "GET", "REQUEST_URI": uri, "SCRIPT_NAME": uri,
              "DOCUMENT_URI": uri, "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1",
              "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1",
              "SERVER_NAME": "localhost", "SERVER_PORT": "80", "CONTENT_LENGTH": ""}
    req = (_fcgi_record(1, struct.pack(">HB5x", 1, 0)) + _fcgi_record(4, _fcgi_pairs(params))
           + _fcgi_record(4, b"") + _fcgi_record(5, b""))
    out = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(req)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            done = False
            while len(buf) >= 8:
                _v, rtype, _rid, clen, plen = struct.unpack(">BBHHBx", buf[:8])
                if len(buf) < 8 + clen + plen:
                    break
                if rtype == 6:
                    out += buf[8:8 + clen]
                elif rtype == 3:
                    done = True
                buf = buf[8 + clen + plen:]
            if done:
                break
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.search(rb"^Status:\s*(\d+)", head, re.M | re.I)
    if m and m.group(1) != b"200":
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


# -- nodes ------------------------------------------------------------------

class Node:
    """One server process (a Herald node, or an nginx master and its workers)."""

    kind = "?"

    def __init__(self, idx):
        self.idx = idx
        self.proc = None
        self.port = None
        self.dir = tempfile.mkdtemp(prefix="tmp-%s%d-" % (self.kind, idx), dir=str(BUILD))
        self.rc = None

    def logfile(self, name):
        return open(os.path.join(self.dir, name), "wb")

    def log_text(self):
        return base.read_logs(self.dir)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return [self.proc.pid]

    def start(self):
        for _attempt in range(3):
            self.port = base.free_port()
            self.launch()
            end = time.monotonic() + 20
            while time.monotonic() < end and self.proc.poll() is None:
                if self.ready():
                    return self
                time.sleep(0.05)
            self.stop(keep_dir=True)
            if "in use" not in self.log_text():
                break
        raise Failed("%s node %d did not start (status %s): %s" % (
            self.kind, self.idx, self.proc.returncode if self.proc else None,
            self.log_text()[-600:].replace("\n", " | ")))

    def stop(self, keep_dir=False):
        if self.proc is not None and self.rc is None:
            strays = base.children_of(self.proc.pid) if self.proc.poll() is None else []
            self.rc = base.reap(self.proc, timeout=STOP_TIMEOUT, extra_pids=strays)
        if not keep_dir and not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.rc


class HeraldNode(Node):
    kind = "herald"

    def __init__(self, idx, binary, secret, redis):
        super().__init__(idx)
        self.binary = binary
        self.secret = secret
        self.redis = redis
        self.api = os.path.join(self.dir, "api.sock")

    def launch(self):
        ini = os.path.join(self.dir, "herald.ini")
        with open(ini, "w") as f:
            f.write("[herald]\nlisten = 127.0.0.1:%d\napi_socket = %s\nsecret = %s\n"
                    "workers = 1\n"
                    "; as bench/run.py: no pings, a large queue cap, warnings only,\n"
                    "; no limit on an address's rate of new connections\n"
                    "ping_interval = 0\nmax_queued_bytes = 64M\nlog_level = warn\n"
                    "connect_rate = 0\n" % (self.port, self.api, self.secret))
            if self.redis is not None:
                f.write("engine = redis\nredis_address = unix:%s\nredis_prefix = bench:\n"
                        "node_name = n%d\n" % (self.redis.sock, self.idx))
        self.proc = base.spawn([self.binary, "-c", ini], "herald n%d" % self.idx, cwd=self.dir,
                               stdout=self.logfile("stdout.log"),
                               stderr=self.logfile("stderr.log"))

    def ready(self):
        if not os.path.exists(self.api):
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
            st = fcgi_get(self.api, "/stats")
        except OSError:
            return False
        return bool(st and st.get("engine", {}).get("available"))

    def stats(self):
        try:
            return fcgi_get(self.api, "/stats")
        except OSError as e:
            return {"error": str(e)}

    def sub_args(self):
        return ["--sub", "ws://127.0.0.1:%d/ws?token={token}" % self.port,
                "--secret", self.secret]

    def pub_arg(self):
        return "fcgi:" + self.api

    def idle_sub_args(self):
        return self.sub_args()


class NchanNode(Node):
    kind = "nchan"

    def __init__(self, idx, redis):
        super().__init__(idx)
        self.redis = redis

    def launch(self):
        os.chmod(self.dir, 0o755)  # the workers run as nobody when we are root
        template = NCHAN_REDIS_TEMPLATE if self.redis is not None else NCHAN_TEMPLATE
        with open(template) as f:
            conf = f.read()
        conf = conf.replace("@DIR@", self.dir).replace("@PORT@", str(self.port))
        conf = conf.replace("@WORKERS@", "1")
        if self.redis is not None:
            conf = conf.replace("@REDIS_URL@", "redis://127.0.0.1:%d" % self.redis.port)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = base.spawn([NGINX, "-p", self.dir + "/", "-e",
                                os.path.join(self.dir, "error.log"), "-c", path],
                               "nginx %d" % self.idx, cwd=self.dir,
                               stdout=self.logfile("stdout.log"),
                               stderr=self.logfile("stderr.log"))

    def ready(self):
        if len(base.children_of(self.proc.pid)) < 1 or not base.http_answers(self.port):
            return False
        # A publish answers 201/202 only once the worker reaches its store (Redis).
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/pub/probe%d" % (self.port, self.idx),
                                         data=b"probe", method="POST")
            with urllib.request.urlopen(req, timeout=2.0) as r:
                return r.status in (201, 202)
        except OSError:
            return False

    def pids(self):
        return [self.proc.pid] + base.children_of(self.proc.pid)

    def stats(self):
        return None

    def sub_args(self):
        return ["--sub", "ws://127.0.0.1:%d/sub/{channel}" % self.port]

    def idle_sub_args(self):
        """Idle connections each on its own user's channel, as Herald's are each a user
        (idle mode's {channel} is "all": one channel for everyone)."""
        return ["--sub", "ws://127.0.0.1:%d/sub/{user}" % self.port]

    def pub_arg(self):
        return "http://127.0.0.1:%d/pub/{channel}" % self.port


class System:
    """The servers of one run: n nodes, with or without a shared Redis."""

    def __init__(self, kind, nodes, with_redis, binary=None):
        self.kind = kind
        self.redis = Redis() if with_redis else None
        self.nodes = []
        self.n = nodes
        self.binary = binary
        self.secret = "".join(secrets.choice(string.ascii_letters + string.digits)
                              for _ in range(32))

    def start(self):
        if self.redis is not None:
            self.redis.start()
        for i in range(self.n):
            node = (HeraldNode(i, self.binary, self.secret, self.redis) if self.kind == "herald"
                    else NchanNode(i, self.redis))
            self.nodes.append(node)
            node.start()
        return self

    def pids(self):
        return [p for n in self.nodes for p in n.pids()]

    def alive(self):
        return all(n.alive() for n in self.nodes) and (
            self.redis is None or self.redis.proc.poll() is None)

    def problems(self, t_go=None, t_end=None):
        """The nodes' log lines, counted by message and by phase: "connect" (before the
        measured window: connecting and settling), "run" (the window), "close" (after)."""
        counts = {}
        self.dropped_before_go = set()
        for n in self.nodes:
            lines = [ln for ln in n.log_text().splitlines() if ln.strip()]
            if n.kind == "nchan":
                # nginx's own warnings about the directives (nchan_redis_url is "discouraged")
                # and the readiness probe's GET /probe are not the run's business.
                lines = [ln for ln in lines if re.search(r"\[(error|crit|alert|emerg)\]", ln)
                         and "/html/probe\" failed" not in ln]
            for ln in lines:
                m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z (.*)$", ln)
                if not m:
                    m = re.match(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) (.*)$", ln)
                when, msg = (m.group(1), m.group(2)) if m else (None, ln)
                msg = re.sub(r"\d+#\d+: \*?\d* ?", "", msg)[:200]
                phase = "?"
                if when and t_go:
                    ts = log_time(when)
                    phase = "connect" if ts < t_go else \
                        ("run" if t_end is None or ts <= t_end else "close")
                if phase == "connect" and "no reply within" in msg:
                    self.dropped_before_go.add(n.idx)
                key = (phase, msg)
                counts.setdefault(key, set()).add(n.idx)
                counts[(phase, msg, "n")] = counts.get((phase, msg, "n"), 0) + 1
        out = []
        for key, nodes in counts.items():
            if len(key) == 2:
                out.append("%s log, %s: %dx on %d node%s: %s" % (
                    self.kind, key[0], counts[key + ("n",)], len(nodes),
                    "" if len(nodes) == 1 else "s", key[1]))
        return sorted(out)

    def stop(self, keep_dir=False):
        rcs = []
        for n in self.nodes:
            rcs.append(n.stop(keep_dir=keep_dir))
        if self.redis is not None:
            self.redis.stop(keep_dir=keep_dir)
        return rcs


# -- shards -----------------------------------------------------------------

class Shard:
    """One loadgen process with --shard, its pipes and what it printed."""

    def __init__(self, idx, argv, errpath):
        self.idx = idx
        self.argv = [str(a) for a in argv]
        self.errpath = errpath
        with open(errpath, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, preexec_fn=base._pdeathsig)
        base._live[self.proc.pid] = (self.proc, "loadgen shard %d" % idx)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.ready = None
        self.result = None

    def feed(self):
        """Read what is there; False at EOF."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("READY"):
                self.ready = text
            elif text.startswith("{"):
                self.result = json.loads(text)
        return True

    def send(self, line):
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stderr_tail(self, n=600):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:].strip()
        except OSError:
            return ""


def wait_for(shards, what, timeout):
    """Read the shards' stdout until what(shard) holds for every one, or fail."""
    sel = selectors.DefaultSelector()
    for sh in shards:
        sel.register(sh.proc.stdout, selectors.EVENT_READ, sh)
    end = time.monotonic() + timeout
    try:
        while not all(what(sh) for sh in shards):
            left = end - time.monotonic()
            if left <= 0:
                bad = [sh for sh in shards if not what(sh)]
                raise Failed("shard %d: nothing within %.0f s: %s" % (
                    bad[0].idx, timeout, bad[0].stderr_tail().splitlines()[-1:]))
            for key, _ in sel.select(min(left, 1.0)):
                sh = key.data
                if not sh.feed():
                    sel.unregister(sh.proc.stdout)
                    if not what(sh):
                        sh.proc.wait(5)
                        last = sh.stderr_tail().splitlines()
                        raise Failed("shard %d exited (status %s): %s" % (
                            sh.idx, sh.proc.returncode, last[-1] if last else "?"))
    finally:
        sel.close()


def end_shards(shards):
    for sh in shards:
        sh.close_stdin()
    for sh in shards:
        try:
            sh.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        base.reap(sh.proc, timeout=3.0)
        try:
            sh.proc.stdout.close()
        except OSError:
            pass


def stats_problems(all_stats):
    """What a Herald node's /stats says went wrong (counters that should stay 0)."""
    out = []
    for i, st in enumerate(all_stats):
        if not st or "error" in st:
            out.append("node %d: /stats failed: %s" % (i, (st or {}).get("error")))
            continue
        bad = {k: st.get(k) for k in ("accept_errors", "slow_consumers") if st.get(k)}
        for group in ("protocol_errors", "api_errors", "client_errors"):
            bad.update({"%s.%s" % (group, k): v for k, v in (st.get(group) or {}).items() if v})
        if (st.get("recoveries") or {}).get("failed"):
            bad["recoveries.failed"] = st["recoveries"]["failed"]
        if not (st.get("engine") or {}).get("available"):
            bad["engine.available"] = False
        if bad:
            out.append("node %d /stats: %s" % (i, json.dumps(bad)))
    return out


def cpu_of(pids):
    return sum(c for c in (proc_cpu(p) for p in pids) if c is not None)


def snapshot(system, shards):
    """Everything measured at one instant of a run."""
    snap = {"t": time.monotonic(), "machine_cpu_s": machine_cpu(),
            "nodes_cpu_s": cpu_of(system.pids()),
            "loadgen_cpu_s": cpu_of([sh.proc.pid for sh in shards]),
            "self_cpu_s": cpu_of([os.getpid()]),
            "nodes_mem": base.memory_kib(system.pids()),
            "node_rss_kib": [base.memory_kib(n.pids())["rss_kib"] for n in system.nodes]}
    if system.redis is not None:
        snap["redis"] = system.redis.snapshot()
        snap["redis_pid_cpu_s"] = snap["redis"]["cpu_s"]
    return snap


def window(a, b, system):
    """What happened between two snapshots."""
    wall = b["t"] - a["t"]
    ours = (b["nodes_cpu_s"] - a["nodes_cpu_s"]) + (b["loadgen_cpu_s"] - a["loadgen_cpu_s"]) + \
        (b["self_cpu_s"] - a["self_cpu_s"])
    w = {"wall_s": round(wall, 3), "nodes_cpu_s": round(b["nodes_cpu_s"] - a["nodes_cpu_s"], 3),
         "loadgen_cpu_s": round(b["loadgen_cpu_s"] - a["loadgen_cpu_s"], 3)}
    if "redis" in a:
        ra, rb = a["redis"], b["redis"]
        w["redis_cpu_s"] = round(rb["cpu_s"] - ra["cpu_s"], 3)
        w["redis_info_cpu_s"] = round(rb["info_cpu_s"] - ra["info_cpu_s"], 6)
        ours += w["redis_cpu_s"]
        w["redis_net_in"] = rb["net_in"] - ra["net_in"]
        w["redis_net_out"] = rb["net_out"] - ra["net_out"]
        w["redis_commands"] = rb["commands"] - ra["commands"]
        w["redis_cmds"] = {k: v - ra["cmds"].get(k, 0) for k, v in rb["cmds"].items()
                           if v - ra["cmds"].get(k, 0) > 0}
    other = (b["machine_cpu_s"] - a["machine_cpu_s"]) - ours
    cores = os.cpu_count() or 1
    if wall > 0:
        w["nodes_cpu_share"] = round(w["nodes_cpu_s"] / (wall * cores), 3)
        w["loadgen_cpu_share"] = round(w["loadgen_cpu_s"] / (wall * cores), 3)
        w["redis_cpu_share"] = round(w.get("redis_cpu_s", 0) / (wall * cores), 3)
    w["other_cpu_share"] = round(max(other, 0.0) / (wall * (os.cpu_count() or 1)), 3) \
        if wall > 0 else 0
    return w


def merge_hist(results, key):
    h = {}
    for r in results:
        for us, n in r.get(key, []):
            h[us] = h.get(us, 0) + n
    return h


def quantiles(h):
    total = sum(h.values())
    if not total:
        return None
    out = {}
    keys = sorted(h)
    for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
        want, seen = max(1, int(q * total + 0.999999)), 0
        for us in keys:
            seen += h[us]
            if seen >= want:
                out[name] = us
                break
    out["max"] = keys[-1]
    return out


# -- runs -------------------------------------------------------------------

class Bench:
    def __init__(self, binary):
        self.binary = binary
        self.runs = []
        self.t0 = time.monotonic()
        self.deadline = self.t0 + float(os.environ.get("BENCH_CLUSTER_DEADLINE", S["deadline"]))

    def find(self, workload, system, rnd=0):
        for r in self.runs:
            if (r["workload"], r["system"], r["round"]) == (workload, system, rnd) and \
                    not r.get("discarded"):
                return r
        return None

    def run_quiet(self, workload, system_name, rnd=0):
        """run(), once more (if time allows) when other processes took more than
        NOISY_SHARE of the CPU; the first try stays in cluster.json, marked discarded."""
        rec = self.run(workload, system_name, rnd)
        share = (rec.get("summary") or {}).get("other_cpu_share") or 0
        if share > NOISY_SHARE and self.deadline - time.monotonic() > (120 if QUICK else 400):
            rec["discarded"] = "other processes used %.0f%% of the CPU" % (100 * share)
            log("%s %s: %s; again" % (workload, system_name, rec["discarded"]))
            time.sleep(5)
            rec = self.run(workload, system_name, rnd)
        return rec

    def run(self, workload, system_name, rnd=0):
        """One fresh system, one workload, every shard; the record."""
        rec = {"workload": workload, "system": system_name, "round": rnd, "error": None}
        self.runs.append(rec)
        single = system_name.endswith("-single")
        kind = system_name.split("-")[0]
        if self.deadline - time.monotonic() < (60 if QUICK else 120):
            rec["error"] = "skipped: BENCH_CLUSTER_DEADLINE reached"
            log("%s %s: skipped, deadline reached" % (workload, system_name))
            return rec
        nodes = 1 if single else S["nodes"]
        system = System(kind, nodes, with_redis=not single, binary=self.binary)
        shards = []
        t = time.monotonic()
        try:
            system.start()
            time.sleep(0.5)
            rec["ksock_before"] = kernel_sockets()
            rec["before"] = snapshot(system, [])
            shards = self.start_shards(workload, system, rec)
            wait_for(shards, lambda sh: sh.ready is not None, S["connect_timeout"])
            rec["connect_s"] = round(time.monotonic() - t, 2)
            self.settle(system, rec)
            rec["t_go_wall"] = time.time()
            if workload == "memory":
                self.measure_idle(system, shards, rec)
            else:
                a = snapshot(system, shards)
                for sh in shards:
                    sh.send("GO\n")
                wait_for(shards, lambda sh: sh.result is not None, S["run_timeout"] + 30)
                b = snapshot(system, shards)
                rec["window"] = window(a, b, system)
                rec["t_end_wall"] = time.time()
            rec["results"] = [sh.result for sh in shards]
            if system.kind == "herald":
                rec["node_stats"] = [n.stats() for n in system.nodes]
                rec["stats_problems"] = stats_problems(rec["node_stats"])
            end_shards(shards)
            for sh in shards:
                if sh.result is None:
                    sh.feed()
            if not system.alive():
                dead = [n for n in system.nodes if not n.alive()]
                rec["error"] = "%s exited during the run (status %s): %s" % (
                    "node %d" % dead[0].idx if dead else "redis",
                    dead[0].proc.returncode if dead else system.redis.proc.returncode,
                    dead[0].log_text()[-400:] if dead else system.redis.log_tail())
        except (Failed, OSError, ValueError) as e:
            rec["error"] = str(e)
        finally:
            for sh in shards:
                if sh.proc.poll() is None:
                    sh.close_stdin()
                    base.reap(sh.proc, timeout=3.0)
            rec["stderr"] = [sh.stderr_tail(400) for sh in shards]
            rec["problems"] = system.problems(rec.get("t_go_wall"), rec.get("t_end_wall")) + \
                rec.get("stats_problems", [])
            rec["nodes_dropped_link_before_go"] = sorted(system.dropped_before_go)
            keep = rec["error"] is not None
            rcs = system.stop(keep_dir=keep)
            rec["stop_status"] = rcs
            if kind == "herald" and any(rc not in (0, None) for rc in rcs):
                rec["problems"].append("exit status on SIGTERM: %s" % rcs)
            for sh in shards:
                if not keep and not KEEP_TMP:
                    try:
                        os.unlink(sh.errpath)
                    except OSError:
                        pass
            if keep:
                rec["kept_dirs"] = [n.dir for n in system.nodes]
        rec["wall_s"] = round(time.monotonic() - t, 1)
        self.summarise(rec)
        log("%-9s %-13s round %d: %s (%.0f s)%s" % (
            workload, system_name, rnd, rec["error"] or "ok", rec["wall_s"],
            "; " + "; ".join(rec["problems"])[:300] if rec["problems"] else ""))
        return rec

    def start_shards(self, workload, system, rec):
        n, conns = len(system.nodes), S["conns"]
        tmpdir = system.nodes[0].dir
        shards = []
        for i, node in enumerate(system.nodes):
            argv = [LOADGEN]
            if workload == "memory":
                argv += ["idle"] + node.idle_sub_args() + ["--conns", conns]
                timeout = S["connect_timeout"] + 120
            elif workload == "broadcast":
                argv += ["broadcast"] + node.sub_args() + [
                    "--conns", conns, "--messages", S["fan_messages"], "--size", S["fan_size"]]
                if i == 0:
                    argv += ["--pub", node.pub_arg(), "--publishers", 1]
                else:
                    argv += ["--publishers", 0]
                timeout = S["run_timeout"]
            else:
                target = system.nodes[(i + 1) % n]  # publish through the next node
                argv += ["targeted"] + node.sub_args() + ["--conns", conns,
                                                           "--pub", target.pub_arg()]
                if workload in ("targeted", "tlow"):
                    rate = S["tgt_rate"] if workload == "targeted" else S["low_rate"]
                    argv += ["--publishers", S["tgt_publishers"],
                             "--rate", rate / float(n), "--duration", S["tgt_duration"]]
                else:
                    argv += ["--publishers", S["max_publishers"], "--rate", 0,
                             "--duration", S["max_duration"]]
                timeout = S["run_timeout"]
            argv += ["--id-base", i * conns, "--shard", "--timeout", timeout]
            shards.append(Shard(i, argv, os.path.join(tmpdir, "loadgen%d.stderr" % i)))
        rec["argv"] = [sh.argv for sh in shards]
        return shards

    def settle(self, system, rec):
        """After READY: wait (at most SETTLE_MAX s) until every Herald node says its engine
        is available and Redis has been quiet (< SETTLE_RATE commands/s) for 1.5 s, so the
        runs measure the steady state. How long it took, and whether a node was
        unavailable meanwhile, are recorded (the logs say why)."""
        t0 = time.monotonic()
        last, quiet, unavailable = None, 0, 0
        while time.monotonic() - t0 < SETTLE_MAX:
            ok = True
            if system.kind == "herald":
                for n in system.nodes:
                    st = n.stats() or {}
                    if not (st.get("engine") or {}).get("available"):
                        ok = False
                        unavailable += 1
            if system.redis is not None:
                now = (time.monotonic(), system.redis.snapshot()["commands"])
                if last is not None and (now[1] - last[1]) / (now[0] - last[0]) > SETTLE_RATE:
                    ok = False
                last = now
            quiet = quiet + 1 if ok else 0
            if quiet >= 3:
                break
            time.sleep(0.5)
        rec["settle_s"] = round(time.monotonic() - t0, 2)
        rec["settled"] = quiet >= 3
        rec["unavailable_polls"] = unavailable
        if not rec["settled"]:
            log("%s %s: not settled after %.0f s; measuring anyway" % (
                rec["workload"], rec["system"], SETTLE_MAX))

    def measure_idle(self, system, shards, rec):
        time.sleep(S["mem_settle"])
        a = snapshot(system, shards)
        rec["ksock_held"] = kernel_sockets()
        rec["held"] = a
        hold = 2.0
        time.sleep(hold)
        b = snapshot(system, shards)
        rec["window"] = window(a, b, system)
        rec["t_end_wall"] = time.time()  # closing the connections is the "close" phase
        for sh in shards:
            sh.close_stdin()
        wait_for(shards, lambda sh: sh.result is not None, 60)

    # -- figures from one run ---------------------------------------------

    def summarise(self, rec):
        res = [r for r in rec.get("results") or [] if r]
        if rec["error"] or not res or len(res) != len(rec.get("argv", [])):
            if not rec["error"]:
                rec["error"] = "a shard printed no result"
            return
        s = {}
        conns = sum(r.get("connected", 0) for r in res)
        s["connected"] = conns
        want = S["conns"] * len(res)
        if conns < want:
            rec["error"] = "only %d of %d connections upgraded" % (conns, want)
        for k in ("connect_errors", "disconnects", "closes", "protocol_errors", "missing",
                  "duplicates", "misrouted", "publish_errors", "publishes", "deliveries"):
            s[k] = sum(r.get(k, 0) for r in res)
        s["timed_out"] = any(r.get("timed_out") for r in res)
        w = rec.get("window", {})
        if rec["workload"] == "memory":
            before, held = rec["before"]["nodes_mem"], rec["held"]["nodes_mem"]
            s["rss_bytes_per_conn"] = round((held["rss_kib"] - before["rss_kib"]) * 1024 / conns)
            s["pss_bytes_per_conn"] = round((held["pss_kib"] - before["pss_kib"]) * 1024 / conns)
            per = [round((h - b0) * 1024 / r.get("connected", 1)) for h, b0, r in zip(
                rec["held"]["node_rss_kib"], rec["before"]["node_rss_kib"], res)]
            s["rss_bytes_per_conn_by_node"] = per
            dropped = rec.get("nodes_dropped_link_before_go", [])
            s["nodes_dropped_link_before_go"] = dropped
            if rec["system"] == "herald" and dropped and len(dropped) < len(per):
                s["rss_bytes_per_conn_dropped"] = round(
                    sum(per[i] for i in dropped) / len(dropped))
                s["rss_bytes_per_conn_not_dropped"] = round(
                    sum(v for i, v in enumerate(per) if i not in dropped) / (len(per) - len(dropped)))
            kb, kh = rec["ksock_before"], rec["ksock_held"]
            if kb["slab_bytes"] is not None:
                pair = (kh["slab_bytes"] - kb["slab_bytes"]) + \
                    (kh["tcp_mem_bytes"] - kb["tcp_mem_bytes"])
                s["kernel_bytes_per_conn"] = round(pair / 2 / conns)
            s["meminfo_slab_bytes_per_pair"] = round(
                (kh["meminfo_slab_bytes"] - kb["meminfo_slab_bytes"]) / conns)
            if "redis" in rec["held"]:
                rb, rh = rec["before"]["redis"], rec["held"]["redis"]
                s["redis_rss_bytes_per_conn"] = round((rh["rss_kib"] - rb["rss_kib"]) * 1024
                                                      / conns)
                s["redis_used_bytes_per_conn"] = round((rh["used_memory"] - rb["used_memory"])
                                                       / conns)
                s["redis_idle_cpu_share"] = round(w["redis_cpu_s"] / w["wall_s"], 4)
                setup = window(rec["before"], rec["held"], None)
                s["redis_cmds_per_conn"] = {k: round(v / conns, 2) for k, v in sorted(
                    setup["redis_cmds"].items(), key=lambda kv: -kv[1])}
                s["redis_bytes_in_per_conn"] = round(setup["redis_net_in"] / conns)
            s["nodes_idle_cpu_share"] = round(w["nodes_cpu_s"] / w["wall_s"], 4)
        elif rec["workload"] == "broadcast":
            t0 = min(r["t_first_pub_ns"] for r in res if r.get("t_first_pub_ns"))
            t1 = max(r["t_last_delivery_ns"] for r in res)
            s["deliveries_per_s"] = round(s["deliveries"] / ((t1 - t0) / 1e9)) if t1 > t0 else 0
            s["expected"] = S["fan_messages"] * conns
            s["lat_us"] = quantiles(merge_hist(res, "lat_hist"))
            s["publishes"] = res[0]["publishes"]
        else:
            s["publishes_per_s"] = round(sum(r.get("publishes_per_s", 0) for r in res))
            s["lat_us"] = quantiles(merge_hist(res, "lat_hist"))
            s["pub_lat_us"] = quantiles(merge_hist(res, "pub_lat_hist"))
        pubs = s.get("publishes") or 0
        if rec["workload"] != "memory" and pubs:
            s["nodes_cpu_us_per_publish"] = round(w["nodes_cpu_s"] * 1e6 / pubs, 1)
            if "redis_cpu_s" in w:
                s["redis_cpu_us_per_publish"] = round(w["redis_cpu_s"] * 1e6 / pubs, 1)
                s["redis_info_cpu_us_per_publish"] = round(w["redis_info_cpu_s"] * 1e6 / pubs, 1)
                s["redis_bytes_in_per_publish"] = round(w["redis_net_in"] / pubs)
                s["redis_bytes_out_per_publish"] = round(w["redis_net_out"] / pubs)
                s["redis_commands_per_publish"] = round(w["redis_commands"] / pubs, 2)
                s["redis_cmds_per_publish"] = {k: round(v / pubs, 2) for k, v in
                                               sorted(w["redis_cmds"].items(),
                                                      key=lambda kv: -kv[1])}
        s["other_cpu_share"] = w.get("other_cpu_share")
        s["window"] = w
        s["system"] = rec["system"]
        for k in ("connect_s", "settle_s", "settled", "unavailable_polls"):
            if k in rec:
                s[k] = rec[k]
        rec["summary"] = s


# -- the table --------------------------------------------------------------

def fmt_int(x):
    return "-" if x is None else "{:,}".format(int(round(x)))


def fmt_ms(us):
    return "-" if us is None else ("%.2f" % (us / 1000.0))


def lat3(s):
    q = (s or {}).get("lat_us")
    if not q:
        return "-"
    return "%s / %s / %s" % (fmt_ms(q["p50"]), fmt_ms(q["p99"]), fmt_ms(q["p999"]))


def cmds_text(s):
    c = (s or {}).get("redis_cmds_per_publish")
    if not c:
        return "-"
    return ", ".join("%s %g" % (k, v) for k, v in list(c.items())[:4])


def kind_of(s):
    return s.get("system", "").split("-")[0]


def cpu_split(s):
    w = s.get("window") or {}
    if "nodes_cpu_share" not in w:
        return None
    parts = [w["nodes_cpu_share"]] + ([w["redis_cpu_share"]] if "redis_cpu_s" in w else []) + \
        [w["loadgen_cpu_share"], w.get("other_cpu_share", 0)]
    return " / ".join("%.0f" % (100 * x) for x in parts)


def ratio(h, p, better):
    if h is None or p is None or not h or not p:
        return ""
    return "%.2fx" % (h / p if better == "higher" else p / h)


def build_table(b):
    """Rows: label, herald cell, nchan cell, ratio."""
    n, c = S["nodes"], S["conns"]
    total = n * c
    rows = []

    def summ(workload, system, rnd=0):
        r = b.find(workload, system, rnd)
        if r is None:
            return None
        if r["error"]:
            return {"_error": r["error"]}
        return r.get("summary")

    def add(label, key_or_fn, workload, better=None, systems=("herald", "nchan"), rnd=0,
            fmt=fmt_int):
        vals = []
        for sysname in systems:
            s = summ(workload, sysname, rnd)
            if s is None:
                vals.append((None, "-"))
            elif "_error" in s:
                vals.append((None, "FAILED"))
            else:
                v = key_or_fn(s) if callable(key_or_fn) else s.get(key_or_fn)
                vals.append((v, "-" if v is None else fmt(v) if not isinstance(v, str) else v))
        if all(v[1] == "-" for v in vals):
            return
        rat = ratio(vals[0][0], vals[1][0], better) if better and len(vals) == 2 else ""
        rows.append([label, vals[0][1], vals[1][1], rat])

    tag = "%d x %s" % (n, fmt_int(c))
    add("idle memory, %s conns: node RSS bytes/conn" % tag, "rss_bytes_per_conn", "memory",
        "lower")
    add("  by node: min / max", lambda s: "%s / %s" % (
        fmt_int(min(s["rss_bytes_per_conn_by_node"])),
        fmt_int(max(s["rss_bytes_per_conn_by_node"]))), "memory", fmt=str)
    add("  nodes whose Redis link dropped while connecting (of %d)" % n,
        lambda s: "%d" % len(s.get("nodes_dropped_link_before_go", [])) if kind_of(s) == "herald"
        else None, "memory", fmt=str)
    add("  Redis RSS bytes/conn", "redis_rss_bytes_per_conn", "memory", "lower")
    add("  kernel socket memory bytes/conn (server side, est.)", "kernel_bytes_per_conn",
        "memory")
    add("  s to connect all / to settle after", lambda s: "%.1f / %.1f" % (
        s["connect_s"], s["settle_s"]) if "settle_s" in s else None, "memory", fmt=str)
    add("  Redis CPU while idle (% of a core)",
        lambda s: "%.1f%%" % (100 * s["redis_idle_cpu_share"]) if "redis_idle_cpu_share" in s
        else None, "memory")
    for rnd in range(S["rounds"]):
        rt = " (round %d)" % (rnd + 1) if S["rounds"] > 1 else ""
        add("broadcast %s subs x %d x %d B%s: deliveries/s" % (
            fmt_int(total), S["fan_messages"], S["fan_size"], rt), "deliveries_per_s",
            "broadcast", "higher", rnd=rnd)
        add("  latency p50 / p99 / p999 (ms)", lat3, "broadcast", rnd=rnd, fmt=str)
        add("  missing / duplicates", lambda s: "%d / %d" % (s["missing"], s["duplicates"]),
            "broadcast", rnd=rnd, fmt=str)
        add("  Redis CPU per message (us; INFO cpu, finer than /proc's ticks)",
            "redis_info_cpu_us_per_publish", "broadcast", "lower", rnd=rnd)
    for rnd in range(S["rounds"]):
        rt = " (round %d)" % (rnd + 1) if S["rounds"] > 1 else ""
        add("targeted, fixed %s/s, target on another node%s: pub/s" % (
            fmt_int(S["tgt_rate"]), rt), "publishes_per_s", "targeted", "higher", rnd=rnd)
        add("  latency p50 / p99 / p999 (ms)", lat3, "targeted", rnd=rnd, fmt=str)
        add("  latency p99 (ms)", lambda s: (s.get("lat_us") or {}).get("p99"), "targeted",
            "lower", rnd=rnd, fmt=fmt_ms)
        add("  missing / duplicates / publish errors",
            lambda s: "%d / %d / %d" % (s["missing"], s["duplicates"], s["publish_errors"]),
            "targeted", rnd=rnd, fmt=str)
        add("  Redis CPU per publish (us)", "redis_cpu_us_per_publish", "targeted", "lower",
            rnd=rnd)
        add("  Redis commands per publish", cmds_text, "targeted", rnd=rnd, fmt=str)
        add("  Redis bytes in / out per publish",
            lambda s: "%s / %s" % (fmt_int(s.get("redis_bytes_in_per_publish")),
                                   fmt_int(s.get("redis_bytes_out_per_publish"))),
            "targeted", rnd=rnd, fmt=str)
        add("  nodes' CPU per publish (us)", "nodes_cpu_us_per_publish", "targeted", "lower",
            rnd=rnd)
        add("  CPU used, % of the machine: nodes / Redis / loadgen / others", cpu_split,
            "targeted", rnd=rnd, fmt=str)
    add("targeted, fixed %s/s (a lighter load), other node: pub/s" % fmt_int(S["low_rate"]),
        "publishes_per_s", "tlow", "higher")
    add("  latency p50 / p99 / p999 (ms)", lat3, "tlow", fmt=str)
    add("  missing / duplicates", lambda s: "%d / %d" % (s["missing"], s["duplicates"]), "tlow",
        fmt=str)
    add("  CPU used, % of the machine: nodes / Redis / loadgen / others", cpu_split, "tlow",
        fmt=str)
    add("targeted, full speed, %d pubs/shard, other node: pub/s" % S["max_publishers"],
        "publishes_per_s", "tmax", "higher")
    add("  latency p50 / p99 / p999 (ms)", lat3, "tmax", fmt=str)
    add("  missing / duplicates", lambda s: "%d / %d" % (s["missing"], s["duplicates"]), "tmax",
        fmt=str)
    add("  Redis CPU per publish (us)", "redis_cpu_us_per_publish", "tmax", "lower")
    one = ("herald-single", "nchan-single")
    add("one node, memory engine / store, %s conns: RSS bytes/conn" % fmt_int(c),
        "rss_bytes_per_conn", "memory", "lower", systems=one)
    add("  kernel socket memory bytes/conn (est.)", "kernel_bytes_per_conn", "memory",
        systems=one)
    add("one node, broadcast %s subs x %d x %d B: deliveries/s" % (
        fmt_int(c), S["fan_messages"], S["fan_size"]), "deliveries_per_s", "broadcast",
        "higher", systems=one)
    add("  latency p50 / p99 / p999 (ms)", lat3, "broadcast", systems=one, fmt=str)
    add("one node, targeted %s/s, %s users: pub/s" % (fmt_int(S["tgt_rate"]), fmt_int(c)),
        "publishes_per_s", "targeted", "higher", systems=one)
    add("  latency p50 / p99 / p999 (ms)", lat3, "targeted", systems=one, fmt=str)
    add("  nodes' CPU per publish (us)", "nodes_cpu_us_per_publish", "targeted", "lower",
        systems=one)
    add("  CPU used, % of the machine: nodes / loadgen / others", cpu_split, "targeted",
        systems=one, fmt=str)
    return rows


def render(rows, md=False):
    head = ["Metric", "Herald", "Nchan", "Herald vs Nchan"]
    if md:
        out = ["| " + " | ".join(head) + " |", "|---|--:|--:|--:|"]
        out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(4)]
    fmt = lambda r: "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                              for i, c in enumerate(r))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def targets(b):
    """The issue's targets, each with the figure from this run."""
    out = []
    mem = (b.find("memory", "herald") or {}).get("summary") or {}
    if mem:
        out.append("memory <= 1 KiB/conn: %s B node RSS (%s with Redis' RSS share): %s" % (
            fmt_int(mem.get("rss_bytes_per_conn")),
            fmt_int((mem.get("rss_bytes_per_conn") or 0) + (mem.get("redis_rss_bytes_per_conn")
                                                            or 0)),
            "met" if (mem.get("rss_bytes_per_conn") or 1e9) <= 1024 else "MISSED"))
    for rnd in range(S["rounds"]):
        h = (b.find("broadcast", "herald", rnd) or {}).get("summary") or {}
        p = (b.find("broadcast", "nchan", rnd) or {}).get("summary") or {}
        if h.get("deliveries_per_s") and p.get("deliveries_per_s"):
            r = h["deliveries_per_s"] / p["deliveries_per_s"]
            out.append("broadcast >= 4x Nchan+Redis (round %d): %.2fx: %s" % (
                rnd + 1, r, "met" if r >= 4 else "MISSED"))
        t = (b.find("targeted", "herald", rnd) or {}).get("summary") or {}
        if t.get("lat_us"):
            p99 = t["lat_us"]["p99"] / 1000.0
            out.append("targeted p99 < 2 ms at %s/s (round %d): %.2f ms: %s" % (
                fmt_int(S["tgt_rate"]), rnd + 1, p99, "met" if p99 < 2 else "MISSED"))
    bad = []
    for r in b.runs:
        s = r.get("summary") or {}
        if r["system"].startswith("herald") and (s.get("missing") or s.get("duplicates")):
            bad.append("%s %s round %d: %d missing, %d duplicates" % (
                r["workload"], r["system"], r["round"] + 1, s["missing"], s["duplicates"]))
    if any(r["system"].startswith("herald") and r.get("summary") for r in b.runs):
        out.append("0 missing, 0 duplicate (Herald, every run): %s" % (
            "met" if not bad else "MISSED: " + "; ".join(bad)))
    return out


def notes(b, m):
    lines = [
        "Machine: %s, %d cores, kernel %s, %s; load average %s at start." % (
            m["cpu"], m["cores"], m["kernel"], m["date"], m["loadavg_at_start"]),
        "Versions: herald %s (binary sha256 %s); redis-server %s; nginx %s + nchan %s." % (
            m["herald"], m["herald_sha"], m["redis"], m["nginx"], m["nchan"]),
        "Cluster: %d nodes x %s connections, one loadgen shard per node. Herald: engine = "
        "redis, workers = 1 per node, Redis on a unix socket. Nchan: %d nginx instances, "
        "worker_processes 1 each (%d nginx workers for %d Herald nodes), nchan_redis_url "
        "redis://127.0.0.1:PORT, storage mode distributed (the default)." % (
            S["nodes"], fmt_int(S["conns"]), S["nodes"], S["nodes"], S["nodes"]),
        "Publishing: Herald over FastCGI, one request per connection (the PHP helper's way); "
        "Nchan over HTTP/1.1 keep-alive. Targeted: shard i publishes to its own users "
        "through node i+1, %d publishers per shard at %s/s each." % (
            S["tgt_publishers"], fmt_int(S["tgt_rate"] / S["nodes"])),
        "Memory: the nodes' RSS while held minus before connecting, over the connections "
        "(nginx: masters + workers). Kernel: the socket slab caches (%s) and TCP buffer "
        "pages, before and while held, halved (both ends of each loopback connection are "
        "in this kernel)." % ", ".join(SOCK_CACHES),
        "Redis per publish: its CPU (utime + stime), INFO commandstats and "
        "total_net_input/output_bytes between GO and the last shard's result, divided by "
        "the 2xx publishes (broadcast: per message).",
        "Ratios: > 1 means Herald is better.",
    ]
    if QUICK:
        lines.append("BENCH_QUICK=1: a smoke run at small scale; do not quote these figures.")
    noisy = ["%s %s round %d (%.0f%%)" % (r["workload"], r["system"], r["round"] + 1,
                                          100 * r["summary"]["other_cpu_share"])
             for r in b.runs if r.get("summary") and not r.get("discarded") and
             (r["summary"].get("other_cpu_share") or 0) > NOISY_SHARE]
    if noisy:
        lines.append("Other processes used more than %.0f%% of the CPU during: %s." % (
            100 * NOISY_SHARE, ", ".join(noisy)))
    for r in b.runs:
        if r.get("discarded"):
            continue
        if r["error"]:
            lines.append("%s %s round %d: %s" % (r["workload"], r["system"], r["round"] + 1,
                                                 r["error"][:400]))
        for p in r.get("problems") or []:
            lines.append("%s %s round %d: %s" % (r["workload"], r["system"], r["round"] + 1,
                                                 p[:400]))
        s = r.get("summary") or {}
        odd = {k: s[k] for k in ("connect_errors", "disconnects", "protocol_errors",
                                 "misrouted", "publish_errors") if s.get(k)}
        if s.get("timed_out"):
            odd["timed_out"] = True
        if odd:
            lines.append("%s %s round %d: %s" % (r["workload"], r["system"], r["round"] + 1,
                                                 json.dumps(odd)))
    return lines


def report(b, m):
    rows = build_table(b)
    tg = targets(b)
    nts = notes(b, m)
    md = ["# Herald cluster benchmark%s" % (" (BENCH_QUICK smoke run)" if QUICK else ""), "",
          render(rows, md=True), "", "Targets (issue #13):", ""] + ["- " + t for t in tg] + \
        [""] + ["- " + ln for ln in nts]
    with open(BUILD / "cluster.md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(BUILD / "cluster.json", "w") as f:
        json.dump({"machine": m, "scale": S, "runs": b.runs, "table": rows, "targets": tg},
                  f, indent=1)
        f.write("\n")
    text = render(rows) + "\n\nTargets (issue #13):\n" + "\n".join("  " + t for t in tg) + \
        "\n\n" + "\n".join(nts)
    print(text, flush=True)


def machine(binary):
    m = base.machine()
    rev = base.command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = base.command_output(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                 "lib", "src"])
    m["herald"] = rev + ("+dirty" if dirty else "")
    with open(binary, "rb") as f:
        m["herald_sha"] = hashlib.sha256(f.read()).hexdigest()[:12]
    v = base.command_output([REDIS_SERVER, "--version"])
    mm = re.search(r"v=(\S+)", v)
    m["redis"] = mm.group(1) if mm else v
    m["python"] = platform.python_version()
    return m


def preflight():
    for path, what in ((LOADGEN, "make build/bench/loadgen"), (base.HERALD, "make"),
                       (REDIS_SERVER, "apt-get install redis-server")):
        if not os.access(path, os.X_OK):
            sys.exit("bench-cluster: no %s (%s)" % (path, what))
    if not (os.access(NGINX, os.X_OK) and os.path.exists(base.NCHAN_MODULE)):
        return "nginx or %s missing (apt-get install libnginx-mod-nchan)" % base.NCHAN_MODULE
    return None


def main():
    only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
    if only and "cluster" not in only:
        log("BENCH_ONLY=%s does not name cluster: nothing to do" % ",".join(only))
        return 0
    wl = [x for x in os.environ.get("BENCH_CLUSTER_WORKLOADS", ",".join(WORKLOADS)).split(",")
          if x]
    bad = [x for x in wl if x not in WORKLOADS]
    if bad:
        sys.exit("bench-cluster: unknown workload %s (known: %s)" % (
            ",".join(bad), ",".join(WORKLOADS)))
    BUILD.mkdir(parents=True, exist_ok=True)
    no_nchan = preflight()
    base.raise_nofile()
    signal.signal(signal.SIGTERM, base.on_signal)
    signal.signal(signal.SIGINT, base.on_signal)
    # A private copy: someone rebuilding build/herald during the run changes nothing here.
    bindir = tempfile.mkdtemp(prefix="tmp-herald-bin-", dir=str(BUILD))
    binary = os.path.join(bindir, "herald")
    shutil.copy2(base.HERALD, binary)
    m = machine(binary)
    b = Bench(binary)
    wanted = [x for x in os.environ.get("BENCH_CLUSTER_SERVERS", "herald,nchan").split(",") if x]
    systems = [x for x in ("herald", "nchan") if x in wanted and not (x == "nchan" and no_nchan)]
    log("%s run: %d nodes x %d connections; %s; workloads %s" % (
        "quick" if QUICK else "full", S["nodes"], S["conns"], ", ".join(systems),
        ",".join(wl)))
    try:
        if "memory" in wl:
            for sysname in systems:
                b.run_quiet("memory", sysname)
        for rnd in range(S["rounds"]):
            order = systems if rnd % 2 == 0 else systems[::-1]
            for workload in ("broadcast", "targeted"):
                if workload in wl:
                    for sysname in order:
                        b.run_quiet(workload, sysname, rnd)
        for workload in ("tlow", "tmax"):
            if workload in wl:
                for sysname in systems:
                    b.run_quiet(workload, sysname)
        if "single" in wl:
            for workload in ("memory", "broadcast", "targeted"):
                for sysname in systems:
                    b.run(workload, sysname + "-single")
    except base.Stop as e:
        log("stopped by %s; writing what was measured" % e)
    finally:
        base.kill_all_live()
        shutil.rmtree(bindir, ignore_errors=True)
    if no_nchan:
        log("nchan not run: " + no_nchan)
    report(b, m)
    log("wrote %s and %s in %.0f s" % (BUILD / "cluster.md", BUILD / "cluster.json",
                                       time.monotonic() - b.t0))
    return 1 if b.runs and all(r["error"] for r in b.runs) else 0


if __name__ == "__main__":
    sys.exit(main())

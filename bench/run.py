#!/usr/bin/python3
"""
run.py -- Herald's benchmark driver, run by `make bench` (never by `make test`).

    /usr/bin/python3 bench/run.py            full run (about 7 minutes on 2 cores)
    BENCH_QUICK=1 /usr/bin/python3 bench/run.py   smoke run, about 75 seconds

Starts each server under test in turn on loopback -- Herald, Nchan (Debian's
nginx + libnginx-mod-nchan), a Node `ws` server (one process, as most users
run it) and rawsrv (the raw-write ceiling) -- each with W = os.cpu_count()
workers, runs build/bench/loadgen against it, stops it, and prints a table of
Herald beside each peer. Contract: /work/spec/bench.md.

Workloads (full run; BENCH_QUICK=1 scales every one down):
  memory     10,000 and 19,000 idle connections: server RSS before connecting
             and while they are held, bytes per connection.
  broadcast  10,000 subscribers, 200 messages of 100 B and of 1 KiB:
             deliveries/s, latency p50/p99/p999, missing/duplicates.
  targeted   10,000 users, 8 publishers at full speed for 10 s; then a fixed
             10,000 publishes/s (the p99 target) on the same kind of run.
  api        8 publishers, 100,000 publishes to a user nobody has: the publish
             endpoint alone.
  held       19,000 connections held while publishing to single users at
             5,000/s for 10 s, expecting no error at all.
  php        targeted, 10,000 users, published by real php-fpm workers
             (8, pm = static) running bench/php/publish.php: Herald through
             php-client per connection and with 'persistent', Nchan over a
             kept HTTP/1.1 connection per worker (bench/phpbench.py).
  compare    only with BENCH_BASELINE=PATH (another Herald binary, e.g. the
             last release built from its tag): this build and that one, run
             alternately (AB BA AB ...) BENCH_COMPARE_RUNS times (5) on the
             publish endpoint per connection and kept, targeted at full
             speed, and a 1 KiB broadcast; each case's medians, their ratio
             and each side's spread ((max - min) / median) are printed, so a
             change can be told from the run's own noise.
Then each build/bench/bench_* micro-benchmark, if built.

CPU per publish: every run records the CPU time of the server, the load
generator and (php) the php-fpm pool (cpu_s in results.json); the table shows
it per publish for the publish-only, kept targeted and php rows, so a driver
that costs more than the server it measures shows.

Fairness between runs: every run gets a fresh server. The CPU time other
processes used during a run (/proc/stat minus this script's and its children's
rusage) is recorded; a run where it passed 5% of the machine is run again, up
to twice, and flagged in the notes if it stays noisy. A broadcast that ends
within 5 s is repeated 5 times and the median is shown.

Results: a plain table on stdout, build/bench/results.md (markdown), and every
raw figure in build/bench/results.json. Ratios are written so that > 1 always
means Herald is better: throughput herald/peer, memory and latency peer/herald.

Several nodes (engine = redis, issue #13) are bench/cluster.py's: `make bench`
runs it after this script, `make bench-cluster` alone. BENCH_ONLY may name
"cluster" among the workloads: this script leaves it to cluster.py (and does
nothing when it is the only one named); cluster.py runs only when BENCH_ONLY is
unset or names it.

Environment knobs: BENCH_QUICK=1 (smoke run), BENCH_ONLY=memory,broadcast,...
(a subset of the workloads memory, broadcast, targeted, api, held, compare,
micro; and cluster, see above), BENCH_SERVERS=herald,nchan,... (a subset of
the servers), BENCH_DEADLINE=SECONDS (bound on the whole run; 3600 full, 600 quick),
BENCH_KEEP_TMP=1 (keep the servers' temp dirs and logs), BENCH_BASELINE,
BENCH_COMPARE_RUNS and BENCH_COMPARE_ONLY (the compare workload; the last
keeps the cases whose label holds it, e.g. "api").

Every process this script starts gets PR_SET_PDEATHSIG, is stopped by its own
PID (SIGTERM, then SIGKILL after a timeout; for nginx also the workers its
master forked), and its temp dir build/bench/tmp-* is removed afterwards.
"""

import ctypes
import datetime
import glob
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import phpbench

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "bench"
LOADGEN = BUILD / "loadgen"
HERALD = REPO / "build" / "herald"
BASELINE = os.environ.get("BENCH_BASELINE", "")
COMPARE_RUNS = int(os.environ.get("BENCH_COMPARE_RUNS", "5"))
COMPARE_ONLY = os.environ.get("BENCH_COMPARE_ONLY", "")
RAWSRV = BUILD / "rawsrv"
NGINX = "/usr/sbin/nginx"
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
NCHAN_TEMPLATE = REPO / "bench" / "peers" / "nchan" / "nginx.conf.in"
NODE_DIR = REPO / "bench" / "peers" / "node"

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
W = os.cpu_count() or 1
SERVERS = ("herald", "nchan", "node", "raw")
WORKLOADS = ("memory", "broadcast", "targeted", "api", "held", "php", "compare", "micro")

# Scale of each workload: the full run, and the BENCH_QUICK=1 smoke run.
FULL = {
    "mem_conns": [10000, 19000], "mem_settle": 1.5, "mem_hold": 4.0,
    "fan_conns": 10000, "fan_messages": 200, "fan_sizes": [100, 1024], "fan_repeat": 5,
    "tgt_conns": 10000, "tgt_publishers": 8, "tgt_duration": 10, "tgt_rate": 10000,
    "api_publishes": 100000, "api_publishers": 8,
    "held_conns": 19000, "held_rate": 5000, "held_duration": 10,
    "php_children": 8,
    "lg_timeout": 180, "deadline": 3600,
}
SMALL = {
    "mem_conns": [2000], "mem_settle": 0.5, "mem_hold": 1.5,
    "fan_conns": 1000, "fan_messages": 20, "fan_sizes": [100, 1024], "fan_repeat": 1,
    "tgt_conns": 1000, "tgt_publishers": 8, "tgt_duration": 2, "tgt_rate": 2000,
    "api_publishes": 5000, "api_publishers": 8,
    "held_conns": 2000, "held_rate": 1000, "held_duration": 2,
    "php_children": 8,
    "lg_timeout": 60, "deadline": 600,
}
SCALE = SMALL if QUICK else FULL

START_TIMEOUT = 15.0  # a server must answer within this long
STOP_TIMEOUT = 10.0   # SIGTERM, then SIGKILL after this long
NOISY_SHARE = 0.05    # a run where others used more CPU than this is run again,
NOISY_RETRIES = 2     # at most this many times, then flagged in the notes
FAN_SHORT_S = 5.0     # a broadcast over sooner than this is repeated (fan_repeat times)

_live = {}  # pid -> (Popen, description): everything started and not yet reaped


class DeadlineExceeded(Exception):
    """The whole run's time bound (BENCH_DEADLINE) is used up."""


class Stop(Exception):
    """SIGTERM or SIGINT arrived: clean up and leave."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def _pdeathsig():
    """In the child before exec: die with SIGKILL when this driver dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(argv, desc, **kw):
    """Popen with PDEATHSIG, remembered in _live until reaped."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen([str(a) for a in argv], preexec_fn=_pdeathsig, **kw)
    _live[p.pid] = (p, desc)
    return p


def reap(p, timeout=STOP_TIMEOUT, extra_pids=()):
    """Stop one process we started: SIGTERM, wait, then SIGKILL it and extra_pids."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("pid %d (%s) ignored SIGTERM for %.0fs: SIGKILL"
                % (p.pid, _live.get(p.pid, (None, "?"))[1], timeout))
            p.kill()
            p.wait(5)
    for pid in extra_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _live.pop(p.pid, None)
    return p.returncode


def kill_all_live():
    """On the way out: stop whatever is still running, by PID."""
    for pid, (p, _desc) in list(_live.items()):
        reap(p, timeout=3.0)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_answers(port, request=b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
    """True once something on the port answers an HTTP request."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(request)
            return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def children_of(pid):
    """PIDs whose parent is pid (nginx workers of our master)."""
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.split("/")[2]))
    return kids


def cpu_seconds():
    """(CPU seconds all tasks spent in user and system mode, of those ours and our
    reaped descendants'); the difference over a run is other people's load."""
    import resource
    with open("/proc/stat") as f:
        user, nice, system = (int(x) for x in f.readline().split()[1:4])
    tick = os.sysconf("SC_CLK_TCK")
    ours = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        ours += ru.ru_utime + ru.ru_stime
    return ((user + nice + system) / tick, ours)


def proc_cpu_s(pids):
    """CPU seconds (user + system) the given processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    """CPU seconds of this script's reaped children so far."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def memory_kib(pids):
    """Summed VmRSS and Pss (KiB) of the given processes."""
    rss = pss = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
                rss += int(m.group(1)) if m else 0
            with open("/proc/%d/smaps_rollup" % pid) as f:
                m = re.search(r"^Pss:\s+(\d+)", f.read(), re.M)
                pss += int(m.group(1)) if m else 0
        except OSError:
            pass
    return {"rss_kib": rss, "pss_kib": pss}


# -- servers ----------------------------------------------------------------

def read_logs(d):
    """A server's stderr.log and error.log in directory d, as text ("" when missing)."""
    text = ""
    for name in ("stderr.log", "error.log"):
        try:
            with open(os.path.join(d, name), "rb") as f:
                text += f.read().decode("utf-8", "replace")
        except OSError:
            pass
    return text


class Server:
    """One server under test, started fresh for each workload run."""

    name = "?"
    pub_http = True  # publishes over HTTP (else FastCGI)

    def __init__(self):
        self.proc = None
        self.port = None
        self.dir = None
        self.secret = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="tmp-%s-" % self.name, dir=str(BUILD))
        for attempt in range(3):
            self.port = free_port()
            self.launch()
            if self.wait_ready():
                return self
            rc = self.stop(keep_dir=True)
            if attempt == 2 or "in use" not in self.log_tail():
                raise RuntimeError("%s did not start (status %s): %s"
                                   % (self.name, rc, self.log_tail()))
        return self

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.05)
        return False

    def logfile(self, name):
        return open(os.path.join(self.dir, name), "wb")

    def log_tail(self, n=600):
        return read_logs(self.dir)[-n:].strip().replace("\n", " | ")

    def pids(self):
        return [self.proc.pid]

    def memory(self):
        return memory_kib(self.pids())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, keep_dir=False):
        rc = None
        if self.proc is not None:
            rc = reap(self.proc, extra_pids=self.stray_pids())
        if self.dir and not keep_dir and not os.environ.get("BENCH_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def stray_pids(self):
        return []

    def loadgen_args(self):
        """--sub, --pub (and --secret) for this server."""
        raise NotImplementedError


class Herald(Server):
    name = "herald"
    pub_http = False
    binary = HERALD

    def launch(self):
        self.secret = "".join(secrets.choice(string.ascii_letters + string.digits)
                              for _ in range(32))
        self.api = os.path.join(self.dir, "api.sock")
        ini = os.path.join(self.dir, "herald.ini")
        with open(ini, "w") as f:
            f.write("[herald]\n"
                    "listen = 127.0.0.1:%d\n"
                    "api_socket = %s\n"
                    "secret = %s\n"
                    "workers = %d\n"
                    "; no pings during benchmarks; a large queue cap, as the contract says\n"
                    "ping_interval = 0\n"
                    "max_queued_bytes = 64M\n"
                    "; the peers write no line per request either (nginx access_log off)\n"
                    "log_level = warn\n" % (self.port, self.api, self.secret, W))
        line = self.no_connect_rate(ini)
        with open(ini, "a") as f:
            f.write(line)
        self.proc = spawn([self.binary, "-c", ini], self.name, cwd=self.dir,
                          stdout=self.logfile("stdout.log"), stderr=self.logfile("stderr.log"))

    def no_connect_rate(self, ini):
        """The line that turns connect_rate off, if this binary knows the setting.

        loadgen opens its connections from several loopback addresses, and the
        peers limit no address's rate of new connections: with the default
        (20/s, a burst of 200) most of a benchmark's connections would be
        refused at accept. A baseline built before the setting refuses it as an
        unknown key, so it is asked first (--check-config)."""
        line = "; the peers limit no address's rate of new connections\nconnect_rate = 0\n"
        probe = ini + ".probe"
        with open(ini) as src, open(probe, "w") as f:
            f.write(src.read() + line)
        try:
            ok = subprocess.run([self.binary, "-c", probe, "--check-config"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=30).returncode == 0
        finally:
            os.unlink(probe)
        return line if ok else ""

    def ready(self):
        if not os.path.exists(self.api):
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
            return True
        except OSError:
            return False

    def loadgen_args(self):
        return ["--sub", "ws://127.0.0.1:%d/ws?token={token}" % self.port,
                "--secret", self.secret, "--pub", "fcgi:" + self.api]


class HeraldBaseline(Herald):
    """Another Herald binary (BENCH_BASELINE), run with the same settings, for `compare`."""
    name = "herald-base"
    binary = BASELINE


class Nchan(Server):
    name = "nchan"

    def launch(self):
        os.chmod(self.dir, 0o755)  # the workers run as nobody when we are root
        with open(NCHAN_TEMPLATE) as f:
            conf = f.read()
        conf = conf.replace("@DIR@", self.dir).replace("@PORT@", str(self.port))
        conf = conf.replace("@WORKERS@", str(W))
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = spawn([NGINX, "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                           "-c", path], "nginx", cwd=self.dir,
                          stdout=self.logfile("stdout.log"), stderr=self.logfile("stderr.log"))

    def ready(self):
        return len(children_of(self.proc.pid)) >= W and http_answers(self.port)

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def stray_pids(self):
        return children_of(self.proc.pid) if self.proc.poll() is None else []

    def loadgen_args(self):
        return ["--sub", "ws://127.0.0.1:%d/sub/{channel}" % self.port,
                "--pub", "http://127.0.0.1:%d/pub/{channel}" % self.port]


class Node(Server):
    name = "node"

    def launch(self):
        self.proc = spawn(["node", NODE_DIR / "server.js", str(self.port)], "node",
                          cwd=self.dir, stdout=self.logfile("stdout.log"),
                          stderr=self.logfile("stderr.log"))

    def ready(self):
        return http_answers(self.port)

    def loadgen_args(self):
        return ["--sub", "ws://127.0.0.1:%d/ws?user={user}" % self.port,
                "--pub", "http://127.0.0.1:%d/pub/{channel}" % self.port]


class Raw(Server):
    name = "raw"

    def launch(self):
        self.proc = spawn([RAWSRV, "--listen", "127.0.0.1:%d" % self.port, "--threads", str(W)],
                          "rawsrv", cwd=self.dir, stdout=self.logfile("stdout.log"),
                          stderr=self.logfile("stderr.log"))

    def ready(self):
        return http_answers(self.port)

    def loadgen_args(self):
        return ["--sub", "ws://127.0.0.1:%d/ws" % self.port,
                "--pub", "http://127.0.0.1:%d/pub/{channel}" % self.port]


class RawSync(Raw):
    """rawsrv --sync: one write(2) per frame, the answer after the writes."""
    name = "raw-sync"

    def launch(self):
        self.proc = spawn([RAWSRV, "--listen", "127.0.0.1:%d" % self.port, "--threads", str(W),
                           "--sync"], "rawsrv --sync", cwd=self.dir,
                          stdout=self.logfile("stdout.log"), stderr=self.logfile("stderr.log"))


SERVER_CLASSES = {"herald": Herald, "nchan": Nchan, "node": Node, "raw": Raw,
                  "raw-sync": RawSync, "herald-base": HeraldBaseline}


# -- loadgen ----------------------------------------------------------------

class Bench:
    """The run: which servers can run, the deadline, and every result so far."""

    def __init__(self, servers, workloads):
        self.servers = servers
        self.workloads = workloads
        self.skipped = {}  # server -> why it cannot run
        self.t0 = time.monotonic()
        self.deadline = self.t0 + float(os.environ.get("BENCH_DEADLINE", SCALE["deadline"]))
        self.runs = []

    def remaining(self):
        return self.deadline - time.monotonic()

    def lg_timeout(self, wanted):
        left = self.remaining() - 20
        if left < 10:
            raise DeadlineExceeded()
        return int(min(wanted, left))

    def find(self, workload, server, variant):
        """The run with these keys; of repeated runs, the median by deliveries/s."""
        found = [r for r in self.runs if not r.get("discarded") and
                 (r["workload"], r["server"], r["variant"]) == (workload, server, variant)]
        good = sorted((r for r in found if r["result"] and not r["error"]),
                      key=lambda r: r["result"].get("deliveries_per_s", 0))
        if len(good) > 1:
            return good[(len(good) - 1) // 2]
        return found[0] if found else None

    def skip(self, workload, server, variant, why):
        """Record a run that cannot be made, and why."""
        self.runs.append({"workload": workload, "server": server, "variant": variant,
                          "result": None, "error": "skipped: " + why})
        log("%s %s %s: skipped: %s" % (workload, server, variant, why))

    def run(self, workload, server, variant, mode, opts, idle_hold=None):
        """run_once, again (after a pause) while other processes took a share of the
        CPU above NOISY_SHARE, at most NOISY_RETRIES times; earlier tries are kept
        in results.json, marked discarded."""
        for attempt in range(NOISY_RETRIES + 1):
            rec = self.run_once(workload, server, variant, mode, opts, idle_hold)
            if rec["error"] or rec.get("foreign_cpu_share", 0) <= NOISY_SHARE:
                break
            if attempt < NOISY_RETRIES:
                rec["discarded"] = "other processes used %.0f%% of the CPU" % (
                    100 * rec["foreign_cpu_share"])
                log("%s %s %s: %s; again" % (workload, server, variant, rec["discarded"]))
                time.sleep(5)
        return rec

    def run_once(self, workload, server, variant, mode, opts, idle_hold=None):
        """Start a fresh server, run one loadgen, stop the server; record everything."""
        rec = {"workload": workload, "server": server, "variant": variant, "mode": mode,
               "opts": opts, "result": None, "error": None}
        self.runs.append(rec)
        if server in self.skipped:
            rec["error"] = "skipped: " + self.skipped[server]
            return rec
        try:
            timeout = self.lg_timeout(opts.get("timeout", SCALE["lg_timeout"]))
        except DeadlineExceeded:
            rec["error"] = "skipped: BENCH_DEADLINE reached"
            log("%s %s %s: skipped, deadline reached" % (workload, server, variant))
            return rec
        srv = SERVER_CLASSES[server]()
        pool = None
        t = time.monotonic()
        cpu0 = cpu_seconds()
        try:
            srv.start()
            argv = [LOADGEN, mode] + srv.loadgen_args()
            if "php" in opts:
                pool, pub = phpbench.start_pool(sys.modules[__name__], srv, opts["php"],
                                                SCALE["php_children"])
                at = argv.index("--pub")
                argv[at:at + 2] = pub
            time.sleep(0.3)
            rec["mem_before"] = srv.memory()
            for k, v in opts.items():
                if k == "keep":
                    argv += ["--keep"] if v else []
                elif k not in ("timeout", "php"):
                    argv += ["--" + k, str(v)]
            argv += ["--timeout", str(timeout)]
            rec["argv"] = [str(a) for a in argv]
            probe = {"server": lambda: proc_cpu_s(srv.pids())}
            if pool is not None:
                probe["php"] = lambda: proc_cpu_s(pool.pids())
            self.loadgen(rec, srv, argv, timeout, idle_hold, probe)
            got, want = rec["result"].get("connected"), opts.get("conns")
            if got is not None and want and got < want:
                rec["error"] = "only %d of %d connections upgraded" % (got, want)
            if not srv.alive():
                rec["error"] = "%s exited during the run (status %s): %s" % (
                    server, srv.proc.returncode, srv.log_tail())
        except (RuntimeError, OSError, ValueError) as e:
            rec["error"] = str(e)
        finally:
            if pool is not None:
                pool.stop()
            srv.stop(keep_dir=rec["error"] is not None and not rec["error"].startswith("skip"))
        rec["wall_s"] = round(time.monotonic() - t, 2)
        cpu1 = cpu_seconds()
        foreign = (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1])
        rec["foreign_cpu_s"] = round(max(foreign, 0.0), 2)
        rec["foreign_cpu_share"] = round(max(foreign, 0.0) / (rec["wall_s"] * W), 3)
        log("%-9s %-8s %-10s %s (%.1fs)" % (workload, server, variant,
                                              "ok" if not rec["error"] else rec["error"],
                                              rec["wall_s"]))
        return rec

    def loadgen(self, rec, srv, argv, timeout, idle_hold, probe):
        """Runs loadgen; in idle mode samples the server's memory after READY.
        rec["cpu_s"] gets the CPU seconds of loadgen and of each of probe's
        processes (name -> function giving their CPU seconds so far): over
        the whole run, or in a php run (--shard) from READY, once the
        subscribers are connected, to the result line."""
        errpath = os.path.join(srv.dir, "loadgen.stderr")
        window = argv[1] == "targeted" and "--script" in argv
        # Nothing else of ours is reaped while it runs: the children's CPU is loadgen's.
        cpu0, before = children_cpu_s(), {k: f() for k, f in probe.items()}
        with open(errpath, "wb") as err:
            p = spawn(argv + (["--shard"] if window else []), "loadgen", stdout=subprocess.PIPE,
                      stderr=err, stdin=subprocess.PIPE if window else subprocess.DEVNULL)
        try:
            out = b""
            if idle_hold is not None or window:
                out, ready = self.wait_ready_line(p, timeout + 5)
                if ready and idle_hold is not None:
                    time.sleep(idle_hold)
                    rec["mem_held"] = srv.memory()
            if window and not ready:
                raise RuntimeError("loadgen did not connect its subscribers in time")
            if window:
                cpu0, before = proc_cpu_s([p.pid]), {k: f() for k, f in probe.items()}
                p.stdin.write(b"GO\n")
                p.stdin.flush()
                out, _ = self.wait_ready_line(p, timeout + 5, out, rb"(?:^|\n)\{[^\n]*\n")
                rec["cpu_s"] = {k: round(f() - before[k], 3) for k, f in probe.items()}
                rec["cpu_s"]["loadgen"] = round(proc_cpu_s([p.pid]) - cpu0, 3)
            more, _ = p.communicate(timeout=timeout + 15)
            out += more
        except subprocess.TimeoutExpired:
            reap(p, timeout=2.0)
            raise RuntimeError("loadgen did not finish within its --timeout")
        finally:
            if p.poll() is None:
                reap(p, timeout=2.0)
            _live.pop(p.pid, None)
        if not window:
            rec["cpu_s"] = {k: round(f() - before[k], 3) for k, f in probe.items()}
            rec["cpu_s"]["loadgen"] = round(children_cpu_s() - cpu0, 3)
        with open(errpath, "rb") as f:
            rec["loadgen_stderr"] = f.read().decode("utf-8", "replace")[-1500:]
        lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
        rec["loadgen_rc"] = p.returncode
        try:
            rec["result"] = json.loads(lines[-1]) if lines else None
        except ValueError:
            rec["result"] = None
        if p.returncode != 0 or rec["result"] is None:
            last = rec["loadgen_stderr"].strip().splitlines()
            raise RuntimeError("loadgen status %s: %s" % (p.returncode, last[-1] if last else "?"))

    @staticmethod
    def wait_ready_line(p, timeout, buf=b"", until=rb"READY"):
        """Reads loadgen's stdout until its READY line (or what until matches,
        after buf); returns (everything read, seen?)."""
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        start = len(buf)
        try:
            while not re.search(until, buf[start:]):
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return buf, False
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    return buf, False
                buf += chunk
            return buf, True
        finally:
            sel.close()


# -- workloads --------------------------------------------------------------

def wl_memory(b):
    s = SCALE
    for n in s["mem_conns"]:
        for srv in b.servers:
            rec = b.run("memory", srv, str(n), "idle",
                        {"conns": n, "hold": s["mem_settle"] + s["mem_hold"]},
                        idle_hold=s["mem_settle"])
            res = rec.get("result")
            if res and rec.get("mem_held") and res.get("connected"):
                conns = res["connected"]
                for kind in ("rss", "pss"):
                    delta = rec["mem_held"][kind + "_kib"] - rec["mem_before"][kind + "_kib"]
                    rec[kind + "_bytes_per_conn"] = round(delta * 1024 / conns)


def wl_broadcast(b):
    s = SCALE
    for size in s["fan_sizes"]:
        for srv in b.servers + (["raw-sync"] if "raw" in b.servers else []):
            for _ in range(s["fan_repeat"]):
                rec = b.run("broadcast", srv, str(size), "broadcast",
                            {"conns": s["fan_conns"], "messages": s["fan_messages"],
                             "size": size, "timeout": 2 * s["lg_timeout"]})
                if not rec["result"] or rec["result"].get("seconds", 0) >= FAN_SHORT_S:
                    break


def wl_targeted(b):
    s = SCALE
    base = {"conns": s["tgt_conns"], "publishers": s["tgt_publishers"],
            "duration": s["tgt_duration"], "timeout": s["tgt_duration"] + 90}
    for srv in b.servers:
        if srv == "raw":
            continue
        b.run("targeted", srv, "max", "targeted", dict(base, rate=0))
        if srv == "herald":
            b.run("targeted", srv, "max-kept", "targeted", dict(base, rate=0, keep=True))
    for srv in b.servers:
        if srv != "raw":
            b.run("targeted", srv, "rate", "targeted", dict(base, rate=s["tgt_rate"]))


def wl_api(b):
    s = SCALE
    base = {"messages": s["api_publishes"], "publishers": s["api_publishers"]}
    for srv in b.servers:
        if srv == "raw":
            continue
        if srv == "herald":
            b.run("api", srv, "per-conn", "api", dict(base, keep=False))
            b.run("api", srv, "kept", "api", dict(base, keep=True))
        else:
            b.run("api", srv, "kept", "api", dict(base, keep=True))


def wl_held(b):
    s = SCALE
    for srv in b.servers:
        if srv == "raw":
            continue
        b.run("held", srv, str(s["held_conns"]), "targeted",
              {"conns": s["held_conns"], "publishers": s["tgt_publishers"],
               "rate": s["held_rate"], "duration": s["held_duration"],
               "timeout": s["held_duration"] + 120})


def wl_php(b):
    phpbench.workload(sys.modules[__name__], b)


# (label, loadgen mode, options, result field): what `compare` runs on both builds.
def compare_cases():
    s = SCALE
    api = {"messages": s["api_publishes"], "publishers": s["api_publishers"]}
    tgt = {"conns": s["tgt_conns"], "publishers": s["tgt_publishers"],
           "duration": s["tgt_duration"], "timeout": s["tgt_duration"] + 90, "rate": 0}
    fan = {"conns": s["fan_conns"], "messages": s["fan_messages"], "size": 1024,
           "timeout": 2 * s["lg_timeout"]}
    cases = [("api per-conn", "api", dict(api, keep=False), "publishes_per_s"),
             ("api kept", "api", dict(api, keep=True), "publishes_per_s"),
             ("targeted max", "targeted", dict(tgt), "publishes_per_s"),
             ("targeted max-kept", "targeted", dict(tgt, keep=True), "publishes_per_s"),
             ("broadcast 1 KiB", "broadcast", fan, "deliveries_per_s")]
    return [c for c in cases if COMPARE_ONLY in c[0]]


def wl_compare(b):
    """This build and BENCH_BASELINE alternately, case by case: AB, BA, AB, ..."""
    if not BASELINE:
        b.skipped["herald-base"] = "BENCH_BASELINE not set (compare runs only with it)"
        return
    for label, mode, opts, _ in compare_cases():
        for k in range(COMPARE_RUNS):
            order = ("herald", "herald-base") if k % 2 == 0 else ("herald-base", "herald")
            for srv in order:
                b.run_once("compare", srv, label, mode, opts)


def compare_lines(b):
    """One line per compare case: medians, ratio this/baseline, and each side's spread."""
    out = []
    for label, _, _, key in compare_cases():
        vals = {}
        for srv in ("herald", "herald-base"):
            vals[srv] = sorted(r["result"][key] for r in b.runs
                               if (r["workload"], r["server"], r["variant"]) ==
                               ("compare", srv, label) and r["result"] and not r["error"])
        if not vals["herald"] or not vals["herald-base"]:
            continue
        med = {k: v[(len(v) - 1) // 2] for k, v in vals.items()}
        spread = {k: (v[-1] - v[0]) / med[k] if med[k] else 0 for k, v in vals.items()}
        ratio = med["herald"] / med["herald-base"] if med["herald-base"] else 0
        within = abs(ratio - 1) <= max(spread.values())
        out.append("%s: this %s, baseline %s (medians of %d and %d; %s); ratio %.3f; spread "
                   "%.1f%% and %.1f%%: %s" % (
                       label, fmt_int(med["herald"]), fmt_int(med["herald-base"]),
                       len(vals["herald"]), len(vals["herald-base"]), key, ratio,
                       100 * spread["herald"], 100 * spread["herald-base"],
                       "within the spread" if within else "OUTSIDE the spread"))
    return out


def micro_benchmarks(b):
    """Runs each build/bench/bench_* and keeps its `name: N ns/op` lines."""
    out = []
    for path in sorted(glob.glob(str(BUILD / "bench_*"))):
        if not os.access(path, os.X_OK) or b.remaining() < 30:
            continue
        name = os.path.basename(path)
        p = spawn([path], name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            so, se = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            reap(p, timeout=2.0)
            out.append({"program": name, "error": "did not finish in 120 s", "lines": []})
            continue
        _live.pop(p.pid, None)
        lines = [ln for ln in so.decode("utf-8", "replace").splitlines() if "ns/op" in ln]
        entry = {"program": name, "lines": lines}
        if p.returncode != 0:
            entry["error"] = "status %d: %s" % (p.returncode, se.decode()[-300:].strip())
        out.append(entry)
        log("%s: %d lines" % (name, len(lines)))
    return out


# -- preflight and machine --------------------------------------------------

def preflight(wanted):
    """Which servers can run; fatal only if loadgen or Herald is missing."""
    if not os.access(LOADGEN, os.X_OK):
        sys.exit("bench: no %s (make build/bench/loadgen)" % LOADGEN)
    skipped = {}
    if not os.access(HERALD, os.X_OK):
        sys.exit("bench: no %s (make)" % HERALD)
    if not (os.access(NGINX, os.X_OK) and os.path.exists(NCHAN_MODULE)):
        skipped["nchan"] = "nginx or %s missing (apt-get install libnginx-mod-nchan)" \
            % NCHAN_MODULE
    if shutil.which("node") is None:
        skipped["node"] = "no node on the PATH"
    elif not (NODE_DIR / "node_modules" / "ws").is_dir():
        r = subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                            "--silent"], stdin=subprocess.DEVNULL, capture_output=True)
        if r.returncode != 0:
            skipped["node"] = "npm ci failed: " + r.stderr.decode()[-200:].strip()
    if not os.access(RAWSRV, os.X_OK):
        skipped["raw"] = "no %s (make build/bench/rawsrv)" % RAWSRV
    if BASELINE and not os.access(BASELINE, os.X_OK):
        sys.exit("bench: BENCH_BASELINE=%s is not an executable" % BASELINE)
    return {k: v for k, v in skipped.items() if k in wanted}


def command_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        return (r.stdout + r.stderr).decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    ws_version = "?"
    try:
        with open(NODE_DIR / "node_modules" / "ws" / "package.json") as f:
            ws_version = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    rev = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--", "daemon",
                            "fcgi"])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "workers": W, "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "herald": rev + ("+dirty" if dirty else ""),
        "nginx": command_output([NGINX, "-v"]).replace("nginx version: ", ""),
        "nchan": command_output(["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"]),
        "node": command_output(["node", "--version"]), "ws": ws_version,
        "loadavg_at_start": open("/proc/loadavg").read().split()[0],
        "quick": QUICK,
    }


# -- the table --------------------------------------------------------------

def lat(b, workload, server, variant, q):
    r = b.find(workload, server, variant)
    res = r and r["result"]
    if not res or r["error"] or "lat_us" not in res:
        return None
    return res["lat_us"].get(q)


def pub_lat(b, workload, server, variant, q):
    """The publish round trip's quantile q (us), as the publisher saw it."""
    r = b.find(workload, server, variant)
    res = r and r["result"]
    if not res or r["error"] or "pub_lat_us" not in res:
        return None
    return res["pub_lat_us"].get(q)


def cpu_per_pub(b, workload, server, variant, who):
    """'a / b / ...': CPU microseconds per answered publish of each of who."""
    r = b.find(workload, server, variant)
    if not r or r["error"] or not r["result"] or not r["result"].get("publishes"):
        return None
    cpu = r.get("cpu_s", {})
    if any(w not in cpu for w in who):
        return None
    return " / ".join("%.1f" % (cpu[w] * 1e6 / r["result"]["publishes"]) for w in who)


def field(b, workload, server, variant, key):
    r = b.find(workload, server, variant)
    if not r or r["error"] or not r["result"]:
        return None
    return r["result"].get(key)


def rows(b):
    """The table's rows: label, kind, which way is better, {server: value}, raw share?"""
    s = SCALE
    out = []
    peers = b.servers

    def add(label, kind, better, get, herald_variant=None, frac=False, servers=None):
        vals = {}
        for srv in servers or peers:
            vals[srv] = get(srv, herald_variant if srv == "herald" and herald_variant else None)
        out.append({"label": label, "kind": kind, "better": better, "values": vals,
                    "raw_fraction": frac})

    for n in s["mem_conns"]:
        def mem(srv, _v, n=n):
            r = b.find("memory", srv, str(n))
            return r.get("rss_bytes_per_conn") if r and not r["error"] else None
        add("idle memory, %s conns: bytes/conn" % fmt_int(n), "int", "lower", mem)

    for size in s["fan_sizes"]:
        v = str(size)
        tag = "broadcast %s subs x %d x %s" % (fmt_int(s["fan_conns"]), s["fan_messages"],
                                               "1 KiB" if size == 1024 else "%d B" % size)
        add(tag + ": deliveries/s", "int", "higher",
            lambda srv, _v, v=v: field(b, "broadcast", srv, v, "deliveries_per_s"), frac=True)
        if "raw" in peers:
            add("  raw, one write(2) per frame (--sync)", "int", "higher",
                lambda srv, _v, v=v: field(b, "broadcast", "raw-sync", v, "deliveries_per_s"),
                servers=["raw"])
        for q in ("p50", "p99", "p999"):
            add("  latency %s (ms)" % q, "ms", "lower",
                lambda srv, _v, v=v, q=q: lat(b, "broadcast", srv, v, q))
        add("  missing / duplicates", "text", None,
            lambda srv, _v, v=v: misdup(b, "broadcast", srv, v))

    tgt = [x for x in peers if x != "raw"]
    tag = "targeted %s users, %d pubs, max rate" % (fmt_int(s["tgt_conns"]),
                                                    s["tgt_publishers"])
    for variant, note in (("max", ""), ("max-kept", " [herald kept]")):
        if variant == "max-kept" and "herald" not in peers:
            continue
        add(tag + note + ": pub/s", "int", "higher",
            lambda srv, hv, variant=variant: field(b, "targeted", srv, hv or "max",
                                                   "publishes_per_s"),
            herald_variant=variant, servers=tgt)
        for q in ("p50", "p99", "p999"):
            add("  latency %s (ms)" % q, "ms", "lower",
                lambda srv, hv, q=q: lat(b, "targeted", srv, hv or "max", q),
                herald_variant=variant, servers=tgt)
    add("targeted at a fixed %s/s: pub/s" % fmt_int(s["tgt_rate"]), "int", "higher",
        lambda srv, _v: field(b, "targeted", srv, "rate", "publishes_per_s"), servers=tgt)
    for q in ("p50", "p99", "p999"):
        add("  latency %s (ms)" % q, "ms", "lower",
            lambda srv, _v, q=q: lat(b, "targeted", srv, "rate", q), servers=tgt)
    add("  missing / duplicates", "text", None,
        lambda srv, _v: misdup(b, "targeted", srv, "rate"), servers=tgt)

    tag = "publish only, %d pubs, %s msgs" % (s["api_publishers"], fmt_int(s["api_publishes"]))
    add(tag + " [herald per-conn]: pub/s", "int", "higher",
        lambda srv, hv: field(b, "api", srv, hv or "kept", "publishes_per_s"),
        herald_variant="per-conn", servers=tgt)
    add(tag + " [herald kept]: pub/s", "int", "higher",
        lambda srv, hv: field(b, "api", srv, hv or "kept", "publishes_per_s"),
        herald_variant="kept", servers=tgt)
    add("  CPU per publish (us): server / loadgen", "text", None,
        lambda srv, hv: cpu_per_pub(b, "api", srv, hv or "kept", ("server", "loadgen")),
        herald_variant="kept", servers=tgt)

    php = [x for x in ("herald", "nchan") if x in peers]
    tag = "php-fpm x%d publishing, targeted %s users" % (s["php_children"],
                                                         fmt_int(s["tgt_conns"]))
    for variant, note in (("per-conn", " [herald per-conn]"), ("persistent",
                                                              " [herald persistent]")):
        add(tag + note + ": pub/s", "int", "higher",
            lambda srv, hv: field(b, "php", srv, hv or "kept", "publishes_per_s"),
            herald_variant=variant, servers=php)
        add("  publish round trip p99 (ms)", "ms", "lower",
            lambda srv, hv: pub_lat(b, "php", srv, hv or "kept", "p99"),
            herald_variant=variant, servers=php)
        add("  delivery latency p99 (ms)", "ms", "lower",
            lambda srv, hv: lat(b, "php", srv, hv or "kept", "p99"),
            herald_variant=variant, servers=php)
        add("  CPU per publish (us): server / php-fpm / loadgen", "text", None,
            lambda srv, hv: cpu_per_pub(b, "php", srv, hv or "kept",
                                        ("server", "php", "loadgen")),
            herald_variant=variant, servers=php)

    v = str(s["held_conns"])
    add("%s held + %s/s targeted, %d s: errors" % (fmt_int(s["held_conns"]),
                                                   fmt_int(s["held_rate"]), s["held_duration"]),
        "text", None, lambda srv, _v: held_errors(b, srv, v), servers=tgt)
    add("  latency p99 (ms)", "ms", "lower", lambda srv, _v: lat(b, "held", srv, v, "p99"),
        servers=tgt)
    return out


def misdup(b, workload, server, variant):
    """Missing and duplicate deliveries, summed over every repeat of the run."""
    done = [r["result"] for r in b.runs if (r["workload"], r["server"], r["variant"]) ==
            (workload, server, variant) and r["result"] and not r["error"]
            and not r.get("discarded")]
    if not done:
        return None
    return "%d / %d" % (sum(x.get("missing", 0) for x in done),
                        sum(x.get("duplicates", 0) for x in done))


def held_errors(b, server, variant):
    """Everything that went wrong in the held run, or 'none'."""
    r = b.find("held", server, variant)
    if not r:
        return None
    if r["error"]:
        return "FAILED"
    res = r["result"]
    keys = ("connect_errors", "publish_errors", "missing", "duplicates", "misrouted",
            "disconnects", "protocol_errors")
    bad = ["%s=%d" % (k, res[k]) for k in keys if res.get(k)]
    if res.get("timed_out"):
        bad.append("timed_out")
    return ", ".join(bad) if bad else "none"


def fmt_int(x):
    return "{:,}".format(int(round(x)))


def fmt_value(kind, x):
    if x is None:
        return "-"
    if kind == "int":
        return fmt_int(x)
    if kind == "ms":
        return "%.2f" % (x / 1000.0)
    return str(x)


def ratio(row, peer):
    """> 1 means Herald is better, whatever the unit."""
    h, p = row["values"].get("herald"), row["values"].get(peer)
    if row["better"] is None or h is None or p is None or peer not in row["values"]:
        return ""
    if row["better"] == "higher":
        return "%.2fx" % (h / p) if p else ""
    return "%.2fx" % (p / h) if h > 0 else ""


COLS = [("herald", "Herald"), ("nchan", "Nchan"), ("node", "Node (1 proc)"), ("raw", "Raw")]


def table_cells(b):
    head = ["Metric"] + [t for k, t in COLS if k in b.servers]
    peers = [k for k, _ in COLS if k in b.servers and k not in ("herald", "raw")]
    head += ["vs %s" % dict(COLS)[p].split()[0] for p in peers]
    head += ["Herald/Raw"] if "raw" in b.servers else []
    body = []
    for row in rows(b):
        if all(v is None for v in row["values"].values()):
            continue  # a workload left out by BENCH_ONLY, or a row no server produced
        cells = [row["label"]]
        for k, _t in COLS:
            if k in b.servers:
                cells.append(fmt_value(row["kind"], row["values"].get(k))
                             if k in row["values"] else "")
        cells += [ratio(row, p) for p in peers]
        if "raw" in b.servers:
            h, r = row["values"].get("herald"), row["values"].get("raw")
            cells.append("%.0f%%" % (100.0 * h / r) if row["raw_fraction"] and h and r else "")
        body.append(cells)
    return head, body


def notes(b, m):
    s = SCALE
    lines = [
        "Machine: %s, %d cores, kernel %s, %s." % (m["cpu"], m["cores"], m["kernel"], m["date"]),
        "Versions: herald %s; nginx %s + nchan %s; node %s + ws %s." % (
            m["herald"], m["nginx"], m["nchan"], m["node"], m["ws"]),
        "Every server runs W=%d workers (Herald threads, nginx worker processes, rawsrv "
        "threads), except Node: one process, as most users run it." % W,
        "Ratios: > 1 means Herald is better (throughput herald/peer; memory and latency "
        "peer/herald). Herald/Raw: Herald's deliveries/s as a share of rawsrv's.",
        "Publishing: Herald over FastCGI, one request per connection as the PHP helper "
        "does, unless marked [kept]; Nchan, Node and Raw over HTTP/1.1 keep-alive.",
        "Raw: rawsrv (W worker threads + 1 publish thread, as Herald has API threads) "
        "answers each publish at once and writes all the frames queued meanwhile in one "
        "write(2) per connection (up to 64 KiB): the ceiling for a server that coalesces "
        "as Herald does. Its --sync row is the other bound: one write(2) per delivery, "
        "the answer after the writes.",
        "Memory: server RSS while the connections are held minus before connecting, divided "
        "by the connections (nginx: master + workers summed; Pss in results.json).",
    ]
    if any(r["workload"] == "php" for r in b.runs):
        lines.append("php: a php-fpm pool (opcache, pm = static, %d children) runs "
                     "bench/php/publish.php, driven by loadgen over FastCGI; each request "
                     "publishes one event to a random user through php-client (Herald), or "
                     "POSTs it to Nchan over a kept HTTP/1.1 connection per worker (the Nchan "
                     "column of both php rows). CPU per publish is counted from the "
                     "subscribers' READY to the result." % s["php_children"])
    if s["fan_repeat"] > 1:
        lines.append("Broadcast: a run that ends within %.0f s is run %d times; the table shows "
                     "the median by deliveries/s (every run is in results.json)."
                     % (FAN_SHORT_S, s["fan_repeat"]))
    if QUICK:
        lines.append("BENCH_QUICK=1: a smoke run at small scale; do not quote these figures.")
    for srv, why in b.skipped.items():
        lines.append("%s not run: %s" % (srv, why))
    noisy = ["%s %s %s (%.0f%%)" % (r["workload"], r["server"], r["variant"],
                                    100 * r["foreign_cpu_share"])
             for r in b.runs if r.get("foreign_cpu_share", 0) > NOISY_SHARE
             and not r.get("discarded")]
    if noisy:
        lines.append("Other processes used more than %.0f%% of the CPU during: %s. Rerun on a "
                     "quiet machine before quoting those rows." % (100 * NOISY_SHARE,
                                                                  ", ".join(noisy)))
    for r in b.runs:
        if r["error"] and not r["error"].startswith("skipped: " + b.skipped.get(r["server"], "~")):
            lines.append("%s %s %s: %s" % (r["workload"], r["server"], r["variant"],
                                           r["error"][:300]))
    return lines


def render_text(head, body):
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                              for i, c in enumerate(r))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def render_md(head, body):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in body:
        out.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(out)


def report(b, m, micro):
    head, body = table_cells(b)
    nts = notes(b, m)
    micro_lines = []
    for e in micro:
        micro_lines += ["%s: %s" % (e["program"], ln) for ln in e["lines"]]
        if e.get("error"):
            micro_lines.append("%s: %s" % (e["program"], e["error"]))
    cmp = compare_lines(b)
    text = render_text(head, body) + "\n\n" + "\n".join(nts)
    if cmp:
        text += "\n\nThis build against %s, alternated:\n" % BASELINE + \
            "\n".join("  " + ln for ln in cmp)
    if micro_lines:
        text += "\n\nMicro-benchmarks:\n" + "\n".join("  " + ln for ln in micro_lines)
    print(text)
    md = ["# Herald benchmarks%s" % (" (BENCH_QUICK smoke run)" if QUICK else ""), "",
          render_md(head, body), ""] + ["- " + ln for ln in nts]
    if cmp:
        md += ["", "## This build against %s, alternated" % BASELINE, ""] + \
            ["- " + ln for ln in cmp]
    if micro_lines:
        md += ["", "## Micro-benchmarks", "", "```"] + micro_lines + ["```"]
    with open(BUILD / "results.md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(BUILD / "results.json", "w") as f:
        json.dump({"machine": m, "scale": SCALE, "skipped": b.skipped, "runs": b.runs,
                   "table": {"head": head, "rows": body}, "micro": micro,
                   "baseline": BASELINE, "compare": cmp}, f, indent=1)
        f.write("\n")


# -- main -------------------------------------------------------------------

def raise_nofile():
    """Children inherit the hard limit as their soft limit (19,000 sockets need it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def on_signal(signum, _frame):
    raise Stop("signal %d" % signum)


def main():
    servers = [x for x in os.environ.get("BENCH_SERVERS", ",".join(SERVERS)).split(",") if x]
    workloads = [x for x in os.environ.get("BENCH_ONLY", ",".join(WORKLOADS)).split(",") if x]
    if "cluster" in workloads:  # bench/cluster.py's, run after this script
        workloads.remove("cluster")
        if not workloads:
            log("BENCH_ONLY=cluster: nothing for run.py (bench/cluster.py runs it)")
            return 0
    bad = [x for x in servers if x not in SERVERS] + [x for x in workloads if x not in WORKLOADS]
    if bad:
        sys.exit("bench: unknown server or workload: %s (servers %s; workloads %s)"
                 % (", ".join(bad), ",".join(SERVERS), ",".join(WORKLOADS)))
    BUILD.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    b = Bench(servers, workloads)
    b.skipped = preflight(servers)
    m = machine()
    log("%s run: %s on %s, %d cores, W=%d; servers %s" % (
        "quick" if QUICK else "full", m["kernel"], m["cpu"], m["cores"], W, ",".join(servers)))
    micro = []
    try:
        for name in workloads:
            if name == "micro":
                micro = micro_benchmarks(b)
            else:
                globals()["wl_" + name](b)
    except Stop as e:
        log("stopped by %s; writing what was measured" % e)
    finally:
        kill_all_live()
    report(b, m, micro)
    log("wrote %s and %s in %.0f s" % (BUILD / "results.md", BUILD / "results.json",
                                       time.monotonic() - b.t0))
    failed = [r for r in b.runs if r["error"] and not r["error"].startswith("skipped")]
    return 1 if failed and all(r["error"] for r in b.runs) else 0


if __name__ == "__main__":
    sys.exit(main())

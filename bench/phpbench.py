"""
phpbench.py -- the "php" workload of bench/run.py: real php-fpm workers publish.

A private php-fpm (Debian's /usr/sbin/php-fpm8.2, no php.ini, opcache on as
in production, pm = static with PHP_CHILDREN children) runs bench/php/
publish.php. loadgen's targeted mode drives it over FastCGI (--pub
fcgi:POOL_SOCKET --script publish.php, kept connections, one per child):
each request is one PHP page that publishes one event to one random user
out of 10,000 connected ones, and loadgen checks that the user got it. The
rows:

  herald, per-conn     php-client as it is by default: one FastCGI connection
                       to Herald per publish
  herald, persistent   php-client with 'persistent' => true: one kept
                       connection per php-fpm worker (issue #14)
  nchan, kept          the same script POSTs to Nchan's publisher location
                       over one kept HTTP/1.1 connection per worker
                       (pfsockopen): the cheapest way PHP can publish to it

The pool runs beside the server under test and the load generator
on the same cores: its CPU time is measured too (run.py's cpu_s), so the
table can say what each publish cost PHP, the server and the driver.

run.py calls start_pool(rt, srv, variant) after the server is up and
stop_pool afterwards; rt is run.py's module (spawn, reap, children_of,
log), so every process stays in its list of the living and is stopped by
PID, children included.
"""

import os
import socket
import time
from pathlib import Path

FPM_BIN = "/usr/sbin/php-fpm8.2"
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "php" / "publish.php"
START_TIMEOUT = 15.0

# (variant, server): the rows, in the order they run.
CASES = (("per-conn", "herald"), ("persistent", "herald"), ("kept", "nchan"))


def missing():
    """Why the workload cannot run here, or None."""
    if not os.access(FPM_BIN, os.X_OK):
        return "no %s (apt-get install php8.2-fpm)" % FPM_BIN
    return None


class Pool:
    """One php-fpm pool for one run, in the server's temp dir."""

    def __init__(self, rt, d, children, env):
        self.rt = rt
        self.dir = d
        self.children = children
        self.env = env
        self.socket = os.path.join(d, "php.sock")
        self.proc = None

    def conf(self):
        envs = "".join("env[%s] = %s\n" % kv for kv in sorted(self.env.items()))
        return ("[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\nlog_level = warning\n"
                "daemonize = no\nprocess_control_timeout = 2s\n\n"
                "[bench]\nlisten = {sock}\nlisten.mode = 0666\nlisten.backlog = 512\n"
                "pm = static\npm.max_children = {n}\nclear_env = yes\n{envs}"
                "php_admin_flag[display_errors] = off\nphp_admin_flag[log_errors] = on\n"
                "php_admin_value[error_log] = {d}/php-errors.log\n"
                "php_admin_value[memory_limit] = 128M\n").format(
                    d=self.dir, sock=self.socket, n=self.children, envs=envs)

    def start(self):
        path = os.path.join(self.dir, "fpm.conf")
        with open(path, "w") as f:
            f.write(self.conf())
        # No php.ini (-n): opcache as production runs PHP, nothing else.
        argv = [FPM_BIN, "-F", "-n", "-y", path, "-d", "zend_extension=opcache",
                "-d", "opcache.enable=1", "-d", "opcache.validate_timestamps=0"]
        if os.geteuid() == 0:
            argv.append("-R")  # as root, php-fpm runs a pool with no `user` only with -R
        out = open(os.path.join(self.dir, "fpm.stderr"), "wb")
        self.proc = self.rt.spawn(argv, "php-fpm", cwd=self.dir, stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("php-fpm exited (status %s): %s" % (
                    self.proc.returncode, self.log_tail()))
            if len(self.pids()) > self.children and self.answers():
                return self
            time.sleep(0.05)
        raise RuntimeError("php-fpm did not start: " + self.log_tail())

    def answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def pids(self):
        return [self.proc.pid] + self.rt.children_of(self.proc.pid) if self.proc else []

    def log_tail(self):
        text = ""
        for name in ("fpm.stderr", "fpm.log", "php-errors.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return text[-600:].strip().replace("\n", " | ")

    def stop(self):
        if self.proc is not None:
            kids = self.rt.children_of(self.proc.pid) if self.proc.poll() is None else []
            self.rt.reap(self.proc, extra_pids=kids)
        self.proc = None


def start_pool(rt, srv, variant, children):
    """A pool publishing to srv; returns (pool, loadgen's --pub and --script arguments)."""
    if srv.name == "nchan":
        env = {"HERALD_BENCH_TARGET": "nchan", "HERALD_BENCH_PORT": str(srv.port)}
    else:
        env = {"HERALD_BENCH_TARGET": "herald", "HERALD_BENCH_SOCKET": srv.api,
               "HERALD_BENCH_PERSISTENT": "1" if variant == "persistent" else "0"}
    pool = Pool(rt, srv.dir, children, env)
    try:
        pool.start()
    except BaseException:
        pool.stop()
        raise
    return pool, ["--pub", "fcgi:" + pool.socket, "--script", str(SCRIPT)]


def workload(rt, b):
    """The three rows (CASES), each on a fresh server and pool."""
    s = rt.SCALE
    why = missing()
    base = {"conns": s["tgt_conns"], "publishers": s["php_children"],
            "duration": s["tgt_duration"], "timeout": s["tgt_duration"] + 90, "rate": 0,
            "keep": True}
    for variant, server in CASES:
        if server not in b.servers:
            continue
        if why is not None:
            b.skip("php", server, variant, why)
            continue
        b.run("php", server, variant, "targeted", dict(base, php=variant))

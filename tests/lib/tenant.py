"""
tenant.py -- a hostile tenant for the tests, and the bystanders it must not disturb.

On a shared host every site's PHP user is a local user who can open any API socket it can
reach. Tenant runs an attack (tests/lib/tenant_child.py) in a child process as another local
user, nobody, through a directory and a socket that user may open (PublicDir); Watch keeps
publishing to bystanders on every site while it runs, timing each publish.

    pub = PublicDir()                                    # mode 0755, holds the child's code
    sites = {"a": {"api_socket": pub.socket("a"), "api_socket_mode": "0666", ...}, ...}
    with Herald(sites=sites) as h, Watch(h, ["a", "b"]) as w:
        with Tenant(pub, "trickle", pub.socket("a"), 4) as t:
            t.ready()                                    # the attack is in place
            time.sleep(8)
        w.check()                                        # every publish answered and received
        print(w.summary())                               # "... max 12.3 ms"
    pub.remove()

The child is ended by its PID.
"""

import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from herald import Bystander, _pdeathsig
from procs import stop_child

LIB = Path(__file__).resolve().parent
USER = "nobody"


def require_root():
    assert os.geteuid() == 0, "a hostile tenant runs as another user: run the suite as root"


class PublicDir:
    """A temporary directory another user may enter: sockets, and the child's code."""

    def __init__(self):
        require_root()
        self.path = tempfile.mkdtemp(prefix="herald-tenant%d-" % os.getpid())
        os.chmod(self.path, 0o755)
        for name in ("fcgi.py", "tenant_child.py"):
            shutil.copy(LIB / name, os.path.join(self.path, name))
            os.chmod(os.path.join(self.path, name), 0o644)

    def socket(self, name):
        return os.path.join(self.path, "api-%s.sock" % name)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Tenant:
    """One attack, run as nobody in a child process; its JSON lines read as they come."""

    def __init__(self, pub, mode, sock, n=1, user=USER):
        self.uid = pwd.getpwnam(user).pw_uid
        argv = ["setpriv", "--reuid=%s" % user, "--regid=nogroup", "--clear-groups",
                "/usr/bin/python3", "-B", os.path.join(pub.path, "tenant_child.py"),
                mode, sock, str(n)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=pub.path,
                                     env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                                     preexec_fn=_pdeathsig)
        self._buf = b""

    def line(self, timeout=30.0):
        """The child's next JSON line."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if r else b""
            if not chunk:
                err = self.proc.stderr.read().decode("utf-8", "replace") \
                    if self.proc.poll() is not None else ""
                raise AssertionError("the tenant said nothing more (exit %s)\n%s"
                                     % (self.proc.poll(), err[-3000:]))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def ready(self, timeout=30.0):
        """Wait for {"ready": true}; returns the whole line."""
        got = self.line(timeout)
        assert got.get("ready") is True, got
        return got

    def result(self, timeout=60.0):
        return self.line(timeout)

    def stop(self):
        if self.proc.poll() is None:
            stop_child(self.proc, signal.SIGKILL, 5)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_tenant(pub, mode, sock, n=1, timeout=60.0):
    """Run a short attack to its end and return what it reported."""
    with Tenant(pub, mode, sock, n) as t:
        return t.result(timeout)


class Watch:
    """
    Bystanders on every named site of h (a raw WebSocket client each), checked in turn every
    `period` seconds from a thread while a test attacks: each check publishes through the
    site's API (as root) and reads the message back. check() asserts every publish was
    answered and received within `limit` seconds.
    """

    def __init__(self, h, sites, period=0.1, limit=1.0):
        self.bystanders = [(name, Bystander(h.site(name) if name else h)) for name in sites]
        self.period = period
        self.limit = limit
        self.times = []       # (site, seconds) per check
        self.errors = []      # (site, repr of the exception)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for name, b in self.bystanders:
                t0 = time.monotonic()
                try:
                    b.check()
                    self.times.append((name, time.monotonic() - t0))
                except Exception as e:  # noqa: BLE001 -- reported by check()
                    self.errors.append((name, repr(e)))
                    self.times.append((name, time.monotonic() - t0))
            self._stop.wait(self.period)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def max_latency(self, site=None):
        t = [s for n, s in self.times if site is None or n == site]
        return max(t) if t else 0.0

    def summary(self):
        by = {}
        for n, s in self.times:
            by.setdefault(n, []).append(s)
        return ", ".join("site %s: %d publishes, max %.1f ms" % (n or "-", len(v), max(v) * 1000)
                         for n, v in by.items())

    def check(self, rounds=3, timeout=10.0):
        """
        Once every site has had `rounds` checks (or timeout), stop, then assert every check
        passed within the limit.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                sum(1 for s, _ in self.times if s == name) < rounds
                for name, _ in self.bystanders):
            time.sleep(self.period)
        self.stop()
        assert not self.errors, "bystanders disturbed: %r" % self.errors[:5]
        for name, _ in self.bystanders:
            n = sum(1 for s, _ in self.times if s == name)
            assert n >= rounds, "only %d checks on site %s" % (n, name)
        assert self.max_latency() < self.limit, self.summary()

    def close(self):
        self.stop()
        for _, b in self.bystanders:
            b.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

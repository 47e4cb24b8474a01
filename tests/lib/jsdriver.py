"""
jsdriver.py -- herald.js clients in node, for the integration tests.

Node runs a script of tests/js as our child: its stdout is read line by line on a thread (JSON
objects into `seen`, anything else into `other`), its stderr kept in a temp file for failure
messages; wait() collects lines until a condition holds, settle() for a while, finish() says
goodbye on stdin and expects node to exit. 60-herald-js.py runs tests/js/herald-js.test.js so.

tests/js/herald-js-driver.js runs several php-client/js/herald.js clients (the `ws` package
standing in for the browser's WebSocket); Driver steers it one JSON line at a time and collects
every state change, event, presence change, recovery, onError and promise outcome it reports.
Used by 62-herald-js-channels.py and 64-herald-js-recovery.py through the `driver` fixture
(tests/integration/conftest.py). Needs node (Debian's nodejs) and `npm ci --prefix tests/js`.
"""

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from herald import _pdeathsig
from procs import stop_child

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE = "/usr/bin/node"
DRIVER_JS = os.path.join(ROOT, "tests", "js", "herald-js-driver.js")
WS_PACKAGE = os.path.join(ROOT, "tests", "js", "node_modules", "ws", "package.json")

# The channel rules both suites give their daemon.
CHANNELS = {
    "public_channels": "news:* pub:*",
    "client_publish": "chat:*",
    "presence_channels": "room:*",
}
# Reconnect quickly: the tests restart and cut connections on purpose.
FAST_RETRY = {"backoffBase": 50, "backoffMax": 200}


def require_ws_package():
    assert os.path.exists(WS_PACKAGE), \
        "the ws package is missing: run `npm ci --prefix tests/js` in the repository root"


class Node:
    """A node script (tests/js/...) as our child, and every line it wrote to stdout."""

    def __init__(self, *args):
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([NODE] + list(args), cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errfile,
                                     preexec_fn=_pdeathsig)
        self.lines = queue.Queue()
        self.seen = []          # every JSON line so far, in order
        self.other = []         # the lines that are not JSON (TAP and the like)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def take(self, line):
        """File one line of node's stdout: a JSON object in seen, anything else in other."""
        if line.startswith("{"):
            self.seen.append(json.loads(line))
        else:
            self.other.append(line)

    def _pump(self, timeout):
        """Take one line (or wait up to timeout for it); False once node has exited."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            return False
        self.take(line)
        return True

    def wait(self, predicate, timeout, what):
        """Collect lines until predicate(self.seen) holds; fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("timed out after %.0fs waiting for %s; node said:\n%s"
                            % (timeout, what, self.dump()))
            if not self._pump(left):
                pytest.fail("node exited while waiting for %s:\n%s" % (what, self.dump()))

    def settle(self, seconds):
        """Collect whatever arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._pump(deadline - time.monotonic()):
                return

    def dump(self):
        self.errfile.seek(0)
        err = self.errfile.read().decode("utf-8", "replace")
        return "\n".join(self.other[-40:] + [json.dumps(r) for r in self.seen[-80:]]) + \
            ("\nstderr:\n" + err[-3000:] if err else "")

    def finish(self, goodbye):
        """Write `goodbye` to node's stdin and close it; return node's exit status."""
        try:
            self.proc.stdin.write(goodbye)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            return self.proc.wait(10)
        finally:
            self.kill()

    def kill(self):
        stop_child(self.proc, signal.SIGKILL)
        self.reader.join(2)
        self.proc.stdout.close()
        self.errfile.close()


class Driver(Node):
    """A herald-js-driver.js process: named herald.js clients, and everything they report."""

    def __init__(self):
        require_ws_package()
        super().__init__(DRIVER_JS)
        self.next_id = 0
        self.wait(lambda s: any(r.get("kind") == "ready" for r in s), 10, "the driver to start")

    def take(self, line):
        report = json.loads(line)
        assert report.get("kind") != "bad", "the driver refused a command: %r" % report
        self.seen.append(report)

    def send(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    # -- commands ------------------------------------------------------

    def new(self, c, url, token=None, **options):
        self.send(**{"do": "new", "c": c, "url": url, "token": token,
                     "options": dict(FAST_RETRY, **options)})

    def start_call(self, c, method, *args):
        """ann[method](*args) without waiting; returns the id its result will carry."""
        self.next_id += 1
        self.send(**{"do": "call", "c": c, "id": self.next_id, "method": method,
                     "args": list(args)})
        return self.next_id

    def result(self, call_id, timeout=5, what=None):
        self.wait(lambda s: any(r.get("kind") == "result" and r["id"] == call_id for r in s),
                  timeout, what or "the result of call %d" % call_id)
        return next(r for r in self.seen if r.get("kind") == "result" and r["id"] == call_id)

    def call(self, c, method, *args, timeout=5):
        """ann[method](*args) and its outcome: {"ok": True, "value": ...} or the error."""
        return self.result(self.start_call(c, method, *args), timeout,
                           "%s.%s%r" % (c, method, args))

    def ok(self, c, method, *args, timeout=5):
        """The value of a call that must succeed."""
        r = self.call(c, method, *args, timeout=timeout)
        assert r["ok"] is True, "%s.%s%r failed: %r" % (c, method, args, r)
        return r["value"]

    def refused(self, c, method, *args, timeout=5):
        """The error of a call that must reject with a HeraldError."""
        r = self.call(c, method, *args, timeout=timeout)
        assert r["ok"] is False, "%s.%s%r should have failed: %r" % (c, method, args, r)
        assert r["name"] == "HeraldError", r
        assert isinstance(r["code"], str) and isinstance(r["message"], str), r
        return r

    def close(self, c):
        self.send(**{"do": "close", "c": c})

    def finish(self):
        """Close every client and let node exit; return its exit status."""
        return super().finish(b'{"do": "exit"}\n')

    # -- what the clients saw ------------------------------------------

    def reports(self, c, kind, **match):
        return [r for r in self.seen if r.get("c") == c and r.get("kind") == kind
                and all(r.get(k) == v for k, v in match.items())]

    def events(self, c, event=None):
        return [(r["event"], r["data"], r["meta"]) for r in self.reports(c, "event")
                if event is None or r["event"] == event]

    def presence(self, c, channel=None):
        return [(r["type"], r["channel"], r["member"]) for r in self.reports(c, "presence")
                if channel is None or r["channel"] == channel]

    def wait_open(self, c, n=1, timeout=10):
        self.wait(lambda s: len(self.reports(c, "state", state="open")) >= n, timeout,
                  "%s to open (%d)" % (c, n))


def user_token(herald, user, name=None, channels=("chat:*", "room:*")):
    """A connection token for `user` that may subscribe to `channels`, with info {name}."""
    claims = {"channels": list(channels)}
    if name is not None:
        claims["info"] = {"name": name}
    return herald.token(user, **claims)


def publish_until_delivered(herald, channel, event, data, n=1, timeout=10):
    """Publish to `channel` until it reaches n connections (a resubscription is on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        got = herald.publish_channel(channel, event, data)
        if got == n:
            return
        assert got == 0 and time.monotonic() < deadline, \
            "publish to %s delivered %r, expected %d" % (channel, got, n)
        time.sleep(0.1)

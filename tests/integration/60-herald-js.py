"""
60-herald-js.py -- the browser client php-client/js/herald.js, run under Node with the `ws`
package standing in for the browser's WebSocket.

Runs tests/js/herald-js.test.js: first alone (its unit tests: backoff delays, token placement,
dispatch, close(), reconnect bookkeeping, against a fake WebSocket), then in live mode against a
real Herald, where two clients (token as subprotocol, token as ?token=) must receive a publish,
notice that Herald went away (close 1001), keep retrying while it is down, reconnect by
themselves once it is back on the same port (asking getToken() again), and receive the next
publish.

Needs node (Debian's nodejs, v20) and `npm ci --prefix tests/js`.
"""

import json
import os
import queue
import subprocess
import threading
import time

import pytest

from herald import Herald

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE = "/usr/bin/node"
TEST_JS = os.path.join(ROOT, "tests", "js", "herald-js.test.js")
WS_PACKAGE = os.path.join(ROOT, "tests", "js", "node_modules", "ws", "package.json")


def require_ws_package():
    assert os.path.exists(WS_PACKAGE), \
        "the ws package is missing: run `npm ci --prefix tests/js` in the repository root"


def test_unit_tests_of_herald_js_pass():
    require_ws_package()
    p = subprocess.run([NODE, TEST_JS], capture_output=True, timeout=60, cwd=ROOT)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    plan = int(out.splitlines()[0].split("..")[1])
    oks = [l for l in out.splitlines() if l.startswith("ok ")]
    assert plan >= 15 and len(oks) == plan, out
    assert "not ok" not in out, out
    assert any("backoff" in l for l in oks), out


class NodeClients:
    """The live half of herald-js.test.js: a node process whose stdout lines we collect."""

    def __init__(self, url, token):
        self.proc = subprocess.Popen([NODE, TEST_JS, url, token], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.seen = []      # every JSON line so far, in order
        self.other = []     # TAP and anything else
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def wait(self, predicate, timeout, what):
        """Collect lines until predicate(self.seen) holds; fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("timed out waiting for %s; node said:\n%s" % (what, self.dump()))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail("node exited while waiting for %s:\n%s\n%s"
                            % (what, self.dump(), self.proc.stderr.read().decode()))
            if line.startswith("{"):
                self.seen.append(json.loads(line))
            else:
                self.other.append(line)

    def dump(self):
        return "\n".join(self.other + [json.dumps(s) for s in self.seen])

    def finish(self):
        """Ask node to close both clients and exit; return its exit status."""
        try:
            self.proc.stdin.write(b"close\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(10)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(2)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def count(seen, client=None, **match):
    """How many lines from `client` (None: any) have all the `match` items."""
    return sum(1 for s in seen
               if (client is None or s.get("client") == client)
               and all(s.get(k) == v for k, v in match.items()))


CLIENTS = ("proto", "query")


def events(seen, client):
    return [(s["event"], s["data"]) for s in seen
            if s.get("live") == "event" and s["client"] == client]


def test_receives_publish_and_reconnects_by_itself_after_a_restart():
    require_ws_package()
    first = Herald(workers=2)
    second = None
    node = None
    try:
        first.start()
        token = first.token("js-user")
        node = NodeClients(first.ws_url, token)
        node.wait(lambda s: all(count(s, c, state="open") == 1 for c in CLIENTS), 10,
                  "both clients to open")
        first.wait_stat("connections", 2)
        assert first.publish(["js-user"], "order.shipped", {"id": 7}) == 2
        node.wait(lambda s: all(events(s, c) for c in CLIENTS), 5, "the first publish")
        for c in CLIENTS:
            assert events(node.seen, c) == [("order.shipped", {"id": 7})]

        # Herald goes away: each client sees close 1001 and keeps retrying while it is down.
        first.stop()
        node.wait(lambda s: all(count(s, c, state="close", code=1001) == 1 for c in CLIENTS),
                  5, "close 1001 on shutdown")
        node.wait(lambda s: all(count(s, c, state="close", code=1006) >= 1 for c in CLIENTS),
                  5, "a failed reconnect attempt while Herald is down")
        time.sleep(1.0)

        # Back on the same port, API socket and secret: the old token is still good.
        second = Herald(workers=2, config={"listen": first.listen,
                                           "api_socket": first.api_socket,
                                           "secret": first.secret})
        second.start()
        second._tokens.append(token)     # the harness checks it never reaches the log
        node.wait(lambda s: all(count(s, c, state="open") == 2 for c in CLIENTS), 20,
                  "both clients to reconnect")
        for c in CLIENTS:
            assert count(node.seen, c, live="token") >= 3, \
                "getToken() should run before every attempt:\n" + node.dump()
            retries = [s["retryIn"] for s in node.seen
                       if s.get("client") == c and s.get("state") == "close"]
            assert all(isinstance(r, int) and 0 <= r < 30000 for r in retries), retries
        second.wait_stat("connections", 2)
        assert second.publish(["js-user"], "after.restart", {"n": 2}) == 2
        node.wait(lambda s: all(len(events(s, c)) == 2 for c in CLIENTS), 5,
                  "the publish after the restart")
        for c in CLIENTS:
            assert events(node.seen, c)[1] == ("after.restart", {"n": 2})

        assert node.finish() == 0
        s = second.wait_stat("connections", 0)
        assert s["connections"] == 0, "close() should have closed both connections"
        second.stop()
    finally:
        if node is not None:
            node.kill()
        for h in (second, first):
            if h is not None:
                h.cleanup()

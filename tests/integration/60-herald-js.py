"""
60-herald-js.py -- the browser client php-client/js/herald.js, run under Node with the `ws`
package standing in for the browser's WebSocket.

Runs tests/js/herald-js.test.js: first alone (its unit tests: backoff delays, token placement,
dispatch, close(), reconnect bookkeeping, against a fake WebSocket), then in live mode against a
real Herald, where two clients (token as subprotocol, token as ?token=) must receive a publish,
notice that Herald went away (close 1001), keep retrying while it is down, reconnect by
themselves once it is back on the same port (asking getToken() again), and receive the next
publish.

Both run twice: against herald.js (require(), the classic-script build) and against herald.mjs
(import(), the ES module it is generated from; herald-js.test.js --module).

Needs node (Debian 12's nodejs, 18.19, or newer) and `npm ci --prefix tests/js`.
"""

import os
import subprocess
import time

import pytest

from herald import Herald
from jsdriver import NODE, ROOT, Node, require_ws_package

TEST_JS = os.path.join(ROOT, "tests", "js", "herald-js.test.js")
# The entry point under test: herald-js.test.js's flags, and the line it ends its TAP with.
ENTRIES = {"herald.js": ([], "# tested herald.js (require)"),
           "herald.mjs": (["--module"], "# tested herald.mjs (import)")}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_unit_tests_of_herald_js_pass(entry):
    require_ws_package()
    flags, tested = ENTRIES[entry]
    p = subprocess.run([NODE, TEST_JS] + flags, capture_output=True, timeout=60, cwd=ROOT)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    plan = int(out.splitlines()[0].split("..")[1])
    oks = [l for l in out.splitlines() if l.startswith("ok ")]
    assert plan >= 15 and len(oks) == plan, out
    assert "not ok" not in out, out
    assert any("backoff" in l for l in oks), out
    assert out.splitlines()[-1] == tested, out


class NodeClients(Node):
    """The live half of herald-js.test.js: two clients, each JSON line they print in seen."""

    def __init__(self, url, token, flags=()):
        require_ws_package()
        super().__init__(TEST_JS, *flags, url, token)

    def finish(self):
        """Ask node to close both clients and exit; return its exit status."""
        return super().finish(b"close\n")


def count(seen, client=None, **match):
    """How many lines from `client` (None: any) have all the `match` items."""
    return sum(1 for s in seen
               if (client is None or s.get("client") == client)
               and all(s.get(k) == v for k, v in match.items()))


CLIENTS = ("proto", "query")


def events(seen, client):
    return [(s["event"], s["data"]) for s in seen
            if s.get("live") == "event" and s["client"] == client]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_receives_publish_and_reconnects_by_itself_after_a_restart(entry):
    require_ws_package()
    h = Herald(workers=2)
    node = None
    try:
        h.start()
        token = h.token("js-user")
        node = NodeClients(h.ws_url, token, ENTRIES[entry][0])
        node.wait(lambda s: all(count(s, c, state="open") == 1 for c in CLIENTS), 10,
                  "both clients to open")
        h.wait_stat("connections", 2)
        assert h.publish(["js-user"], "order.shipped", {"id": 7}) == 2
        node.wait(lambda s: all(events(s, c) for c in CLIENTS), 5, "the first publish")
        for c in CLIENTS:
            assert events(node.seen, c) == [("order.shipped", {"id": 7})]

        # Herald goes away: each client sees close 1001 and keeps retrying while it is down.
        h.stop()
        node.wait(lambda s: all(count(s, c, state="close", code=1001) == 1 for c in CLIENTS),
                  5, "close 1001 on shutdown")
        node.wait(lambda s: all(count(s, c, state="close", code=1006) >= 1 for c in CLIENTS),
                  5, "a failed reconnect attempt while Herald is down")
        time.sleep(1.0)

        # Back on the same port, API socket and secret: the old token is still good.
        h.restart()
        node.wait(lambda s: all(count(s, c, state="open") == 2 for c in CLIENTS), 20,
                  "both clients to reconnect")
        for c in CLIENTS:
            assert count(node.seen, c, live="token") >= 3, \
                "getToken() should run before every attempt:\n" + node.dump()
            retries = [s["retryIn"] for s in node.seen
                       if s.get("client") == c and s.get("state") == "close"]
            assert all(isinstance(r, int) and 0 <= r < 30000 for r in retries), retries
        h.wait_stat("connections", 2)
        assert h.publish(["js-user"], "after.restart", {"n": 2}) == 2
        node.wait(lambda s: all(len(events(s, c)) == 2 for c in CLIENTS), 5,
                  "the publish after the restart")
        for c in CLIENTS:
            assert events(node.seen, c)[1] == ("after.restart", {"n": 2})

        assert node.finish() == 0
        s = h.wait_stat("connections", 0)
        assert s["connections"] == 0, "close() should have closed both connections"
        h.stop()
    finally:
        if node is not None:
            node.kill()
        h.cleanup()

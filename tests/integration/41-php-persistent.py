"""
41-php-persistent.py -- herald.php's `persistent` option under the real php-fpm, against the real
daemon: pages served by one php-fpm worker (pm = static, 1 child), each calling
herald_configure(['persistent' => true]) and herald_publish(), as a site's pages would.

Covers: many pages share one kept API connection (Herald's side of it seen with `ss -x`: the same
socket inode page after page); a page that dies mid-request does not poison the next one, whether
the request was whole and waiting for its answer or half-sent, and whether or not the client's
shutdown function got to run (an earlier shutdown function with a fatal error skips it): the
next page's publish reaches the browser tab exactly once and returns its own count, not the
dead page's; a Herald restarted between pages costs the next page nothing.

How a page dies mid-request, deterministically: Herald is stopped (SIGSTOP), so the request
waits in the socket; the test then sends the worker SIGPROF, the signal PHP's max_execution_time
timer raises. PHP acts on it when the socket call it is waiting in returns (the page's timeout is
short, 2 s): "Maximum execution time exceeded" right there, before the client's next statement,
skipping every finally block, as when the time limit strikes while a page waits on Herald.
"""

import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import fcgi
from herald import expect_nothing, recv_json, uid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERALD_PHP = os.path.join(ROOT, "php-client", "herald.php")

HERALD_CONFIG = {"allow_anonymous": "yes"}
PHPFPM_CHILDREN = 1

PUBLISH = """
$n = herald_publish($_GET['user'], $_GET['event'], ['i' => (int) ($_GET['i'] ?? 0)]);
echo json_encode(['n' => $n, 'pid' => getmypid()]);
"""

# A page that will be killed while herald_publish() waits. "size" makes the body big enough
# that the request cannot be written whole while Herald sleeps (half-sent); "skip_hook" registers,
# first, a shutdown function that dies, so the client's own shutdown function never runs.
DYING = """
set_time_limit(60);
if (isset($_GET['skip_hook'])) {
    register_shutdown_function(function () { no_such_function(); });
}
herald_publish($_GET['user'], 'dying', str_repeat('x', (int) $_GET['size']));
echo "not reached";
"""


def write_page(tmp_path, herald, name, body, timeout=20.0):
    """A page that loads herald.php and configures it with persistent => true."""
    path = tmp_path / name
    path.write_text("<?php\ndeclare(strict_types=1);\nrequire %s;\n"
                    "herald_configure(['socket' => %s, 'persistent' => true, 'timeout' => %r]);\n%s"
                    % (json.dumps(HERALD_PHP), json.dumps(herald.api_socket), timeout, body))
    return str(path)


def get(fpm, script, timeout=30.0, **query):
    """Run a page under php-fpm as nginx would; returns fcgi.Response."""
    qs = "&".join("%s=%s" % kv for kv in query.items())
    return fcgi.request(fpm.socket, "GET", "/page?" + qs, b"",
                        {"SCRIPT_FILENAME": script, "QUERY_STRING": qs}, timeout)


def publish_page(fpm, script, user, event, i=0):
    r = get(fpm, script, user=user, event=event, i=i)
    assert r.status == 200, (r, fpm.log_text())
    return json.loads(r.body)


def api_conns(herald):
    """Herald's side of each open API connection: {socket inode: bytes waiting unread}."""
    out = subprocess.run(["ss", "-xn"], capture_output=True, text=True, check=True).stdout
    conns = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 6 and f[4] == herald.api_socket:
            conns[int(f[5])] = int(f[2])
    return conns


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def php_errors_since(fpm, mark):
    return fpm.php_errors()[mark:]


class Stopped:
    """Herald stopped (SIGSTOP) inside the block, continued on the way out whatever happens."""

    def __init__(self, herald):
        self.pid = herald.proc.pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


def in_thread(fn, *args, **kw):
    """Start fn in a thread; returns a callable that joins it and gives its result."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the joining test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join(timeout=30.0):
        t.join(timeout)
        assert not t.is_alive(), "page still running"
        if "error" in box:
            raise box["error"]
        return box["value"]
    return join


def test_pages_share_one_kept_connection(herald, phpfpm, run, tmp_path):
    user = uid()
    script = write_page(tmp_path, herald, "publish.php", PUBLISH)

    async def go():
        async with herald.connect(herald.token(user)) as tab:
            seen = set()
            pids = set()
            for i in range(20):
                out = await asyncio.to_thread(publish_page, phpfpm, script, user, "tick", i)
                assert out["n"] == 1, out
                pids.add(out["pid"])
                seen |= set(api_conns(herald))
            for i in range(20):
                assert await recv_json(tab) == {"event": "tick", "data": {"i": i}}
            await expect_nothing(tab, 0.2)
            assert len(pids) == 1, pids
            # Each page would otherwise open and close its own: nothing would stay open.
            assert len(seen) == 1, "API connections seen across 20 pages: %r" % seen
            assert set(api_conns(herald)) == seen

    run(go())
    assert "herald:" not in phpfpm.php_errors(), phpfpm.php_errors()


@pytest.mark.parametrize("size", [10, 4 << 20], ids=["request-whole", "request-half-sent"])
@pytest.mark.parametrize("skip_hook", [False, True], ids=["hook-runs", "hook-skipped"])
def test_a_page_that_dies_mid_request_does_not_poison_the_next(herald, phpfpm, run, tmp_path,
                                                                 size, skip_hook):
    user = uid()
    publish = write_page(tmp_path, herald, "publish.php", PUBLISH)
    # PHP takes the signal once the socket call it is in returns: with a short timeout, soon.
    dying = write_page(tmp_path, herald, "dying.php", DYING, timeout=2.0)
    worker = phpfpm.child_pids()[0]

    async def go():
        async with herald.connect(herald.token(user)) as tab:
            out = await asyncio.to_thread(publish_page, phpfpm, publish, user, "before")
            assert out["n"] == 1
            assert await recv_json(tab) == {"event": "before", "data": {"i": 0}}
            kept = set(api_conns(herald))
            assert len(kept) == 1, kept
            mark = len(phpfpm.php_errors())

            query = {"user": uid("nobody"), "size": size}
            if skip_hook:
                query["skip_hook"] = 1
            with Stopped(herald):
                page = in_thread(get, phpfpm, dying, **query)
                # The request's bytes wait unread on Herald's side: the page is inside publish.
                wait_for(lambda: any(api_conns(herald).values()), "the dying page's request")
                time.sleep(0.2)
                os.kill(worker, signal.SIGPROF)
                r = page()
                assert b"not reached" not in r.body, r
                # php-fpm may write the page's fatal error to its log after the answer.
                wait_for(lambda: "Maximum execution time" in php_errors_since(phpfpm, mark),
                         "PHP's log of the page's fatal error")
                # The next page starts while Herald still sleeps: whatever the dead page left
                # in the connection is not there yet to be noticed, only remembered.
                nxt = in_thread(publish_page, phpfpm, publish, user, "after")
                time.sleep(0.3)
            out = nxt()
            assert out["n"] == 1, out
            assert await recv_json(tab) == {"event": "after", "data": {"i": 0}}
            await expect_nothing(tab, 0.3)
            assert phpfpm.child_pids() == [worker], "the worker survived the fatal error"
            assert not (set(api_conns(herald)) & kept), "the dead page's connection was reused"
            out = await asyncio.to_thread(publish_page, phpfpm, publish, user, "again")
            assert out["n"] == 1, out
            assert await recv_json(tab) == {"event": "again", "data": {"i": 0}}
            assert "herald: publish failed" not in php_errors_since(phpfpm, mark)

    run(go())


def test_herald_restarted_between_pages(herald, phpfpm, run, tmp_path):
    user = uid()
    script = write_page(tmp_path, herald, "publish.php", PUBLISH)
    assert publish_page(phpfpm, script, user, "warm")["n"] == 0
    assert len(api_conns(herald)) == 1
    mark = len(phpfpm.php_errors())

    herald.stop()
    herald.restart()

    async def go():
        async with herald.connect(herald.token(user)) as tab:
            out = await asyncio.to_thread(publish_page, phpfpm, script, user, "after.restart")
            assert out["n"] == 1, out
            assert await recv_json(tab) == {"event": "after.restart", "data": {"i": 0}}
            await expect_nothing(tab, 0.2)

    run(go())
    assert "herald:" not in php_errors_since(phpfpm, mark)
    assert len(api_conns(herald)) == 1

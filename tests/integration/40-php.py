"""
40-php.py -- the PHP client as a site uses it: the real PHP CLI (/usr/bin/php) running scripts
that require php-client/herald.php, against a real Herald, with browser tabs played by
websockets clients.

Covers the issue's "done when" (a user with two tabs and another user: herald_publish reaches
exactly the two tabs), tokens from herald_token() accepted by the daemon, publish to one and to
several users, broadcast, configuration by environment (HERALD_SOCKET, HERALD_SECRET) and by
herald_configure(), and the promise that a failing Herald never breaks the page: no socket, an
error answer, a daemon that never answers within the timeout all give `false` and exactly one
"herald: ..." line in the PHP error log, and nothing on the page. Herald\\Client raises
Herald\\Exception subclasses carrying the HTTP status as their code.

Each PHP run gets its own error log (php -d error_log=FILE) and display_errors=stderr, so any
PHP warning or notice shows up on stderr, which must stay empty.
"""

import asyncio
import json
import os
import struct
import subprocess
import time
import uuid

import pytest

import fcgi
from standin import UnixStandIn
from herald import expect_nothing, recv_json, uid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERALD_PHP = os.path.join(ROOT, "php-client", "herald.php")
PHP = "/usr/bin/php"

HERALD_CONFIG = {"allow_anonymous": "yes", "api_max_body": "4k"}
HERALD_WORKERS = 2


class PhpRun:
    """What one PHP script run left behind: stdout, stderr, exit status, error log lines."""

    def __init__(self, proc, error_log, elapsed):
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()
        self.rc = proc.returncode
        self.elapsed = elapsed
        try:
            with open(error_log) as f:
                self.log_lines = f.read().splitlines()
        except FileNotFoundError:
            self.log_lines = []

    def __repr__(self):
        return "PhpRun(rc=%d, stdout=%r, stderr=%r, log=%r)" % (
            self.rc, self.stdout, self.stderr, self.log_lines)


def php(tmp_path, body, herald=None, env=None, timeout=20):
    """
    Run `<?php require herald.php; <body>` with the PHP CLI. With `herald`, HERALD_SOCKET and
    HERALD_SECRET point at it; `env` adds or (with None) removes variables.
    """
    n = len(list(tmp_path.glob("script-*.php")))
    script = tmp_path / ("script-%d.php" % n)
    error_log = tmp_path / ("error-%d.log" % n)
    script.write_text("<?php\ndeclare(strict_types=1);\nrequire %s;\n%s\n"
                      % (json.dumps(HERALD_PHP), body))
    e = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    if herald is not None:
        e["HERALD_SOCKET"] = herald.api_socket
        e["HERALD_SECRET"] = herald.secret
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    argv = [PHP, "-d", "error_log=%s" % error_log, "-d", "log_errors=1",
            "-d", "display_errors=stderr", "-d", "error_reporting=-1", str(script)]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return PhpRun(proc, error_log, time.monotonic() - t0)


def php_ok(tmp_path, body, herald=None, env=None):
    """Run a script that must succeed cleanly; return its stdout."""
    r = php(tmp_path, body, herald, env)
    assert r.rc == 0 and r.stderr == "" and r.log_lines == [], r
    return r.stdout


def php_token(tmp_path, herald, user_php):
    """A token made by herald_token(<user_php>) in PHP; registered for the daemon's log check."""
    tok = php_ok(tmp_path, "echo herald_token(%s);" % user_php, herald)
    herald._tokens.append(tok)  # the harness then checks it never reaches Herald's log
    return tok


def assert_one_herald_line(r, what="publish"):
    """The failure contract of herald.php: one error log line, nothing on the page."""
    assert r.rc == 0, r
    assert r.stderr == "", "PHP printed warnings: %r" % r.stderr
    assert len(r.log_lines) == 1, r.log_lines
    assert ("herald: %s failed: " % what) in r.log_lines[0], r.log_lines


# -- tokens and publish -----------------------------------------------------

def test_token_from_php_and_publish_reach_only_that_users_tab(herald, run, tmp_path):
    tok42 = php_token(tmp_path, herald, "'42'")
    tok7 = php_token(tmp_path, herald, "7")

    async def go():
        async with herald.connect(tok42) as tab42, herald.connect(tok7) as tab7:
            await herald_sees_connections(herald, 2)
            out = php_ok(tmp_path, "var_export(herald_publish('42', 'order.shipped', "
                                   "['id' => 7]));", herald)
            assert out == "1"
            assert await recv_json(tab42) == {"event": "order.shipped", "data": {"id": 7}}
            await expect_nothing(tab7)

    run(go())


def test_done_when_two_tabs_of_one_user_get_it_and_the_other_user_does_not(herald, run,
                                                                          tmp_path):
    alice, bob = uid("alice"), uid("bob")
    tok_alice = php_token(tmp_path, herald, repr(alice))
    tok_bob = php_token(tmp_path, herald, repr(bob))

    async def go():
        async with herald.connect(tok_alice) as tab1, \
                herald.connect(tok_alice, via="protocol") as tab2, \
                herald.connect(tok_bob) as other:
            await herald_sees_connections(herald, 3)
            out = php_ok(tmp_path, "echo herald_publish(%r, 'cart.updated', "
                                   "['items' => 3, 'total' => '9.50']);" % alice, herald)
            assert out == "2"
            for tab in (tab1, tab2):
                assert await recv_json(tab) == {"event": "cart.updated",
                                                "data": {"items": 3, "total": "9.50"}}
            await expect_nothing(other)
            await expect_nothing(tab1, 0.1)

    run(go())


def test_publish_to_several_users_and_int_ids(herald, run, tmp_path):
    a, b = uid("a"), uid("b")
    toks = [php_token(tmp_path, herald, u) for u in (repr(a), repr(b), "1001", repr(uid("c")))]

    async def go():
        async with herald.connect(toks[0]) as ta, herald.connect(toks[1]) as tb, \
                herald.connect(toks[2]) as t1001, herald.connect(toks[3]) as outsider:
            await herald_sees_connections(herald, 4)
            out = php_ok(tmp_path, "echo herald_publish([%r, %r, 1001], 'team.note', "
                                   "'lunch at noon');" % (a, b), herald)
            assert out == "3"
            for tab in (ta, tb, t1001):
                assert await recv_json(tab) == {"event": "team.note", "data": "lunch at noon"}
            await expect_nothing(outsider)

    run(go())


def test_data_survives_the_trip_from_php_to_the_browser(herald, run, tmp_path):
    user = uid()
    tok = php_token(tmp_path, herald, repr(user))
    body = r"""
        $data = [
            'text' => "caf\u{e9} \u{1F600} </script> \"q\" a/b",
            'nul' => "a\0b",
            'list' => [1, 2.5, true, null],
            'empty_map' => new stdClass(),
            'nested' => ['deep' => ['deeper' => [1]]],
        ];
        echo herald_publish(%r, 'data.check', $data);
    """ % user

    async def go():
        async with herald.connect(tok) as tab:
            await herald_sees_connections(herald, 1)
            r = php(tmp_path, body, herald)
            assert (r.stdout, r.stderr, r.log_lines) == ("1", "", []), r
            assert await recv_json(tab) == {"event": "data.check", "data": {
                "text": "caf\u00e9 \U0001F600 </script> \"q\" a/b",
                "nul": "a\u0000b",
                "list": [1, 2.5, True, None],
                "empty_map": {},
                "nested": {"deep": {"deeper": [1]}},
            }}

    run(go())


def test_broadcast_reaches_every_connection(herald, run, tmp_path):
    toks = [php_token(tmp_path, herald, repr(uid())) for _ in range(2)]

    async def go():
        async with herald.connect(toks[0]) as t1, herald.connect(toks[1]) as t2, \
                herald.connect() as anonymous:
            await herald_sees_connections(herald, 3)
            out = php_ok(tmp_path, "echo herald_broadcast('maintenance', "
                                   "['at' => '22:00']);", herald)
            assert out == "3"
            for tab in (t1, t2, anonymous):
                assert await recv_json(tab) == {"event": "maintenance", "data": {"at": "22:00"}}

    run(go())


def test_herald_configure_instead_of_the_environment(herald, run, tmp_path):
    user = uid()
    configure = "herald_configure(['socket' => %r, 'secret' => %r]);\n" % (
        herald.api_socket, herald.secret)
    no_env = {"HERALD_SOCKET": "/nonexistent/herald.sock", "HERALD_SECRET": "wrong-secret"}
    tok = php_ok(tmp_path, configure + "echo herald_token(%r);" % user, env=no_env)
    herald._tokens.append(tok)

    async def go():
        async with herald.connect(tok) as tab:
            await herald_sees_connections(herald, 1)
            out = php_ok(tmp_path, configure + "echo herald_publish(%r, 'hello', 1);" % user,
                         env=no_env)
            assert out == "1"
            assert await recv_json(tab) == {"event": "hello", "data": 1}

    run(go())


def test_herald_configure_with_a_bad_option_logs_once_and_keeps_the_old_settings(herald,
                                                                               tmp_path):
    r = php(tmp_path, """
        herald_configure(['socket' => %r]);
        herald_configure(['sockett' => '/tmp/typo.sock']);
        echo "page continued ", herald_publish('nobody-%s', 'x');
    """ % (herald.api_socket, uuid.uuid4().hex), herald,
        env={"HERALD_SOCKET": "/nonexistent/herald.sock"})
    assert_one_herald_line(r, "configure")
    assert r.stdout == "page continued 0"


# -- failures never break the page -------------------------------------------

def test_missing_socket_returns_false_with_one_log_line(tmp_path):
    missing = str(tmp_path / "no-such-dir" / "herald.sock")
    r = php(tmp_path, """
        var_export(herald_publish('42', 'order.shipped', ['id' => 7]));
        echo "\\n";
        var_export(herald_broadcast('news'));
        echo "\\npage continued";
    """, env={"HERALD_SOCKET": missing, "HERALD_SECRET": "s3cret"})
    assert r.stdout == "false\nfalse\npage continued", r
    assert r.rc == 0 and r.stderr == "", r
    assert len(r.log_lines) == 2, r.log_lines
    for line in r.log_lines:
        assert "herald: publish failed: " in line and missing in line, line


def test_refused_input_returns_false_with_one_log_line(herald, tmp_path):
    before = herald.stats()["published"]
    r = php(tmp_path, "var_export(herald_publish('42', '', ['id' => 7])); echo ' page';", herald)
    assert r.stdout == "false page", r
    assert_one_herald_line(r)
    assert herald.stats()["published"] == before


def test_event_name_with_a_control_character_returns_false_with_one_log_line(herald, tmp_path):
    # Herald refuses control characters in event names (400); the client may catch it first.
    before = herald.stats()["published"]
    r = php(tmp_path, r"""var_export(herald_publish('42', "order\nshipped", 1)); echo ' page';""",
            herald)
    assert r.stdout == "false page", r
    assert_one_herald_line(r)
    assert herald.stats()["published"] == before


def test_daemon_error_answer_returns_false_with_one_log_line(herald, tmp_path):
    # api_max_body is 4k in HERALD_CONFIG: Herald answers 413.
    r = php(tmp_path, "var_export(herald_publish('42', 'big', str_repeat('x', 8000)));"
                      "echo ' page';", herald)
    assert r.stdout == "false page", r
    assert_one_herald_line(r)
    assert "413" in r.log_lines[0], r.log_lines


def test_client_raises_api_exception_with_the_http_status(herald, tmp_path):
    out = php_ok(tmp_path, r"""
        $c = new Herald\Client();
        try {
            $c->publish('42', 'big', str_repeat('x', 8000));
            echo "no exception";
        } catch (Herald\Exception $e) {
            echo get_class($e), ' ', $e->getCode(), ' ', $e instanceof Herald\Exception ? 'base' : '';
        }
        echo "\n", json_encode($c->health()['ok']);
    """, herald)
    assert out == "Herald\\ApiException 413 base\ntrue"


class FakeApi(UnixStandIn):
    """
    A FastCGI responder on a unix socket in place of Herald. answer=None accepts and never
    answers; otherwise every request gets (status, body).
    """

    def __init__(self, path, answer=None):
        self.answer = answer
        self.conns = []
        self.requests = 0
        super().__init__(path)

    def handle(self, c):
        self.conns.append(c)
        if self.answer is not None:
            self._respond(c)

    def _respond(self, c):
        c.settimeout(5)
        buf = b""
        try:
            # Read records until the empty STDIN record that ends the request.
            while True:
                recs = fcgi.parse_records(buf)
                if any(r[1] == fcgi.FCGI_STDIN and r[3] == b"" for r in recs):
                    break
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            self.requests += 1
            status, body = self.answer
            out = ("Status: %d Oops\r\nContent-Type: application/json\r\n\r\n" % status).encode() \
                + body.encode()
            c.sendall(fcgi.record(fcgi.FCGI_STDOUT, 1, out) + fcgi.record(fcgi.FCGI_STDOUT, 1)
                      + fcgi.record(fcgi.FCGI_END_REQUEST, 1, struct.pack(">IB3x", 0, 0)))
        finally:
            c.close()

    def close(self):
        super().close()
        for c in self.conns:
            c.close()


def test_read_timeout_is_honored_against_a_daemon_that_never_answers(tmp_path):
    path = str(tmp_path / "silent.sock")
    fake = FakeApi(path, answer=None)
    try:
        r = php(tmp_path, """
            herald_configure(['socket' => %r, 'timeout' => 0.5]);
            $t0 = microtime(true);
            $r = herald_publish('42', 'order.shipped', ['id' => 7]);
            printf("%%s %%.3f", var_export($r, true), microtime(true) - $t0);
        """ % path, env={"HERALD_SECRET": "s3cret"})
        result, took = r.stdout.split()
        assert result == "false", r
        assert 0.45 <= float(took) < 1.0, "herald_publish took %s s with timeout 0.5" % took
        assert_one_herald_line(r)
        assert "did not answer" in r.log_lines[0], r.log_lines
        assert len(fake.conns) == 1
    finally:
        fake.close()


@pytest.mark.parametrize("status,error", [
    (400, "event must be a string of 1 to 200 bytes"),
    (404, "no such path"),
    (405, "method not allowed"),
    (500, "internal error"),
])
def test_error_statuses_become_api_exceptions_and_one_log_line(tmp_path, status, error):
    path = str(tmp_path / "api.sock")
    fake = FakeApi(path, answer=(status, json.dumps({"ok": False, "error": error})))
    try:
        r = php(tmp_path, r"""
            herald_configure(['socket' => %r]);
            try {
                (new Herald\Client(['socket' => %r]))->publish('42', 'e', 1);
            } catch (Herald\ApiException $e) {
                echo $e->getCode(), ' ', $e->getMessage(), ' ', $e instanceof Herald\Exception ? 'base' : '';
            }
            echo "\n";
            var_export(herald_publish('42', 'e', 1));
        """ % (path, path), env={"HERALD_SECRET": "s3cret"})
        assert r.stdout == "%d %s base\nfalse" % (status, error), r
        assert_one_herald_line(r)
        assert error in r.log_lines[0] and str(status) in r.log_lines[0], r.log_lines
        assert fake.requests == 2
    finally:
        fake.close()


async def herald_sees_connections(h, n, timeout=3.0):
    """Wait until Herald counts exactly n connections (earlier tests' tabs are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        c = h.stats()["connections"]
        if c == n:
            return
        assert time.monotonic() < deadline, "Herald has %d connections, expected %d" % (c, n)
        await asyncio.sleep(0.05)

"""
36-status.py -- `herald status`: a running Herald's figures, site by site, as the admin of a
shared host reads them without Prometheus (docs/deploy.md, "herald status").

Proves, with the real daemon (two or four sites), real WebSocket clients and the real binary
run as root and as nobody:
- the table: each site's connections, users, published and delivered (since start, and a
  second over the last minute, which GET /stats now gives as "last_minute"), errors with their
  kinds below (an API 404, a refused handshake), uptime; exit status 0;
- --site NAME shows that site only; a name no site has is a usage error (2), naming the sites;
- --json prints every answer as GET /stats gave it, as one JSON object by site;
- usage errors exit 2 and say what is wrong; `herald --help` names the subcommand;
- a daemon that is not running (no socket file, or a file nothing listens on): exit 1, each
  site saying "is herald running?";
- a socket the caller may not open (run as nobody): exit 1, "permission denied ... run as root
  or as the site's group" (or the group api_socket_group names), while the site nobody may use
  answers; a site whose publish_uids leaves root out: the 403 and what to do;
- fake API sockets (python unix servers) that answer garbage, hang up, send no JSON, a JSON
  answer without the figures, an answer over the size cap, a 503, or nothing at all: exit 1
  within --timeout, every site named with its reason, no crash; --json says the same (and
  prints the answer without the figures as it came);
- without -c, the config the daemon would use: /etc/herald/herald.ini if there is one, else
  the development defaults (site "default", /tmp/herald.sock).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

import fcgi
import rawws
from herald import Herald, _pdeathsig, herald_bin, uid, wait_connections

HERALD_SITES = {"a": {"ws_path": "/a/ws"}, "b": {"ws_path": "/b/ws"}}
HERALD_CONFIG = {"allow_anonymous": "yes"}
HERALD_WORKERS = 2
LEGEND = "PUBLISH/S, DELIVER/S"


def status(*args, as_nobody=False, timeout=20):
    """Run `herald status ARGS` (as nobody:nogroup, no other groups); returns (rc, out, err, s)."""
    argv = [herald_bin(), "status"] + list(args)
    if as_nobody:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + argv
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       cwd="/", preexec_fn=_pdeathsig)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def table(out):
    """
    The table's rows by site: {site: {column: cell}} for a site that answered, {site:
    "error: ..."} for one that did not; and the lines after the table.
    """
    lines = out.split("\n")
    head = lines[0].split()
    assert head[:3] == ["SITE", "UPTIME", "CONNS"], out
    rows, i = {}, 1
    while i < len(lines) and lines[i].strip():
        name, rest = lines[i].split(None, 1)
        if rest.startswith("error: "):
            rows[name] = rest
        else:
            cells = [name] + rest.split()
            assert len(cells) == len(head), lines[i]
            rows[name] = dict(zip(head, cells))
        i += 1
    return rows, lines[i:]


def per_second(n):
    """A count over the last minute as the table shows its rate."""
    return "%.2f" % (n / 60.0)


# -- the table -----------------------------------------------------------------------------

def test_the_table_shows_each_sites_figures():
    with Herald(sites=HERALD_SITES, config=HERALD_CONFIG, workers=2) as h:
        a, b = h.site("a"), h.site("b")
        u1, u2, u3 = uid("st"), uid("st"), uid("st")
        tabs = [a.raw_ws(u1), a.raw_ws(u1), a.raw_ws(u2), b.raw_ws(u3)]
        try:
            wait_connections(a, 3)
            wait_connections(b, 1)
            for i in range(7):
                assert a.broadcast("tick", i) == 3
            for i in range(2):
                assert b.publish([u3], "tock", i) == 1
            # errors: a path no route has on a, a forged token at b's door
            assert h.api("GET", "/nope", site="a")[0] == 404
            ws = h.raw()
            try:
                assert ws.handshake("/b/ws?token=" + a.token(u3))[0] == 401
            finally:
                ws.close()
            b.wait_stat("handshakes_refused.bad_token", 1)

            rc, out, err, _ = status("-c", os.path.join(h.dir, "herald.ini"))
            assert (rc, err) == (0, ""), (rc, out, err)
            rows, rest = table(out)
            assert set(rows) == {"a", "b"}, out
            ra, rb = rows["a"], rows["b"]
            assert (ra["CONNS"], ra["USERS"], ra["PUBLISHED"], ra["DELIVERED"]) == \
                ("3", "2", "7", "21"), out
            assert (ra["PUBLISH/S"], ra["DELIVER/S"]) == (per_second(7), per_second(21)), out
            assert float(ra["PUBLISH/S"]) > 0
            assert (rb["CONNS"], rb["USERS"], rb["PUBLISHED"], rb["DELIVERED"]) == \
                ("1", "1", "2", "2"), out
            assert (rb["PUBLISH/S"], rb["DELIVER/S"]) == (per_second(2), per_second(2)), out
            assert (ra["ERRORS"], rb["ERRORS"]) == ("1", "1"), out
            assert ra["UPTIME"].endswith("s") and ra["UPTIME"][:-1].isdigit(), out
            assert any(line.startswith(LEGEND) for line in rest), out
            assert "a errors: api errors 404: 1" in rest, out
            assert "b errors: handshakes refused bad_token: 1" in rest, out

            # the daemon's own /stats says the same over the last minute
            assert a.stats()["last_minute"] == {"published": 7, "delivered": 21, "seconds": 60}
            assert b.stats()["last_minute"] == {"published": 2, "delivered": 2, "seconds": 60}
        finally:
            for t in tabs:
                t.close()


def test_site_shows_one_site_and_an_unknown_one_is_a_usage_error(herald):
    ini = os.path.join(herald.dir, "herald.ini")
    rc, out, err, _ = status("-c", ini, "--site", "b")
    assert (rc, err) == (0, ""), (rc, out, err)
    rows, _ = table(out)
    assert list(rows) == ["b"], out

    rc, out, err, _ = status("--config=" + ini, "--site=nope")
    assert (rc, out) == (2, ""), (rc, out, err)
    assert err == "herald status: no site named nope in %s (its sites: a b)\n" % ini, err


def test_json_prints_every_answer_by_site(herald):
    herald.site("a").broadcast("tick", 1)
    rc, out, err, _ = status("-c", os.path.join(herald.dir, "herald.ini"), "--json")
    assert (rc, err) == (0, ""), (rc, out, err)
    got = json.loads(out)
    assert list(got) == ["a", "b"], got
    for name, answer in got.items():
        assert answer["ok"] is True and answer["site"] == name, answer
        assert answer["last_minute"]["seconds"] == 60, answer
        assert set(answer) >= {"connections", "users", "published", "delivered", "api_errors",
                               "handshakes_refused", "protocol_errors", "rpc", "uptime"}, answer
    assert got["a"]["last_minute"]["published"] >= 1


def test_usage_errors_exit_2_and_say_what_is_wrong(herald):
    ini = os.path.join(herald.dir, "herald.ini")
    cases = [
        (["--bogus"], "unknown option --bogus"),
        (["-c", ini, "extra"], "unexpected argument extra"),
        (["-c"], "this option needs a value: -c"),
        (["-c", ini, "--timeout", "soon"], "--timeout takes seconds"),
        (["-c", ini, "--timeout", "0"], "--timeout takes seconds"),
        (["-c", ini, "--site"], "this option needs a value: --site"),
    ]
    for args, said in cases:
        rc, out, err, _ = status(*args)
        assert (rc, out) == (2, ""), (args, rc, out, err)
        assert err.startswith("herald status: ") and said in err, (args, err)
    rc, out, err, _ = status("--help")
    assert rc == 0 and out.startswith("usage: herald status"), (rc, out, err)
    p = subprocess.run([herald_bin(), "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"herald status [-c FILE]" in p.stdout, p.stdout[:400]


# -- when a site cannot be read ---------------------------------------------------------------

def test_a_daemon_that_is_not_running_exits_1_and_says_so():
    pub = tempfile.mkdtemp(prefix="herald-st%d-" % os.getpid())
    try:
        sockets = {n: os.path.join(pub, "%s.sock" % n) for n in HERALD_SITES}
        sites = {n: dict(keys, api_socket=sockets[n]) for n, keys in HERALD_SITES.items()}
        with Herald(sites=sites, config=HERALD_CONFIG, workers=1) as h:
            ini = os.path.join(pub, "herald.ini")
            shutil.copy(os.path.join(h.dir, "herald.ini"), ini)
            assert status("-c", ini)[0] == 0
        # stopped: the socket files are gone
        rc, out, err, _ = status("-c", ini)
        assert rc == 1, (rc, out, err)
        rows, _ = table(out)
        for n, path in sockets.items():
            assert rows[n] == "error: no such socket %s: is herald running?" % path, out
        # a socket file left behind, which nothing listens on
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sockets["a"])
        s.close()
        rc, out, err, _ = status("-c", ini, "--site", "a")
        assert rc == 1, (rc, out, err)
        assert table(out)[0] == {"a": "error: nothing listens on %s: is herald running?"
                                 % sockets["a"]}, out
        assert LEGEND not in out  # no site answered: nothing to explain
    finally:
        shutil.rmtree(pub, ignore_errors=True)


def test_a_socket_the_caller_may_not_open_exits_1_with_the_permission_message():
    assert os.geteuid() == 0, "36-status runs `herald status` as root and as nobody: run as root"
    pub = tempfile.mkdtemp(prefix="herald-st%d-" % os.getpid())
    try:
        os.chmod(pub, 0o755)
        sock = {n: os.path.join(pub, "%s.sock" % n) for n in "abcd"}
        sites = {
            "a": {"ws_path": "/a/ws", "api_socket": sock["a"]},  # 0660 root:root
            "b": {"ws_path": "/b/ws", "api_socket": sock["b"], "api_socket_group": "daemon"},
            "c": {"ws_path": "/c/ws", "api_socket": sock["c"], "api_socket_mode": "0666"},
            "d": {"ws_path": "/d/ws", "api_socket": sock["d"], "api_socket_mode": "0666",
                  "publish_uids": "nobody"},
        }
        with Herald(sites=sites, config=HERALD_CONFIG, workers=1) as h:
            # herald.ini readable by all, as /etc/herald/herald.ini is (secrets stay in theirs)
            ini = os.path.join(pub, "herald.ini")
            shutil.copy(os.path.join(h.dir, "herald.ini"), ini)
            os.chmod(ini, 0o644)

            rc, out, err, _ = status("-c", ini, as_nobody=True)
            assert (rc, err) == (1, ""), (rc, out, err)
            rows, _ = table(out)
            assert rows["a"] == ("error: permission denied on %s: run as root or as the "
                                 "site's group" % sock["a"]), out
            assert rows["b"] == ("error: permission denied on %s: run as root or as a member "
                                 "of group daemon" % sock["b"]), out
            assert isinstance(rows["c"], dict) and isinstance(rows["d"], dict), out

            # root opens every socket; d's publish_uids lets only nobody publish, but root
            # may read every site's figures
            rc, out, err, _ = status("-c", ini)
            assert (rc, err) == (0, ""), (rc, out, err)
            rows, _ = table(out)
            assert all(isinstance(rows[n], dict) for n in "abcd"), out
            h.site("a").broadcast("still", 1)  # the daemon is unharmed
    finally:
        shutil.rmtree(pub, ignore_errors=True)


class FakeApi:
    """
    A unix socket that plays a broken Herald API: for each connection it reads the request,
    then `behave(conn)` answers (or not). Serves until close().
    """

    def __init__(self, path, behave):
        self.path, self.behave = path, behave
        self.stop = threading.Event()
        self.conns = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.conns.append(conn)
            conn.settimeout(2)
            try:
                if self.behave is not hang_up:
                    conn.recv(65536)
                self.behave(conn)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def fcgi_answer(stdout):
    """A whole FastCGI answer to request 1: stdout in records, then END_REQUEST."""
    return fcgi.stream_records(fcgi.FCGI_STDOUT, 1, stdout) + \
        fcgi.record(fcgi.FCGI_END_REQUEST, 1, struct.pack(">IB3x", 0, 0))


def garbage(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n")
    conn.shutdown(socket.SHUT_WR)


def hang_up(conn):
    conn.close()


def silent(conn):
    pass  # keeps the connection open and says nothing


def not_json(conn):
    conn.sendall(fcgi_answer(b"Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{nope"))


def no_figures(conn):
    conn.sendall(fcgi_answer(b"Status: 200 OK\r\n\r\n" + json.dumps(
        {"ok": True, "site": "x", "uptime": 5, "connections": "many"}).encode()))


def too_big(conn):
    conn.sendall(fcgi_answer(b"Status: 200 OK\r\n\r\n" + b"[" + b"0," * 150000 + b"0]"))


def unavailable(conn):
    conn.sendall(fcgi_answer(b"Status: 503 Service Unavailable\r\n\r\n"
                             b'{"ok":false,"error":"engine_unavailable"}'))


def test_fake_sockets_that_answer_garbage_or_nothing_end_within_the_deadline():
    fakes = {"garbage": garbage, "hangup": hang_up, "silent": silent, "notjson": not_json,
             "nofigures": no_figures, "toobig": too_big, "unavailable": unavailable}
    want = {
        "garbage": "error: malformed answer: not FastCGI",
        "hangup": "error: the connection closed before the answer was complete",
        "silent": "error: no answer within 1.5 s: is herald stuck?",
        "notjson": "error: malformed answer: not JSON",
        "nofigures": 'error: malformed answer: "connections" is not a count',
        "toobig": "error: malformed answer: over 256 KiB",
        "unavailable": "error: herald answered 503: engine_unavailable",
    }
    d = tempfile.mkdtemp(prefix="herald-st%d-" % os.getpid())
    servers = []
    try:
        ini = os.path.join(d, "herald.ini")
        with open(ini, "w") as f:
            for n in fakes:
                f.write("[site %s]\nws_path = /%s\napi_socket = %s/%s.sock\n\n" % (n, n, d, n))
        for n, behave in fakes.items():
            servers.append(FakeApi(os.path.join(d, n + ".sock"), behave))

        rc, out, err, took = status("-c", ini, "--timeout", "1.5")
        assert (rc, err) == (1, ""), (rc, out, err)
        assert 1.4 <= took < 8, took  # the silent one is waited for, once, for all
        rows, _ = table(out)
        assert list(rows) == list(fakes), out
        for n, line in want.items():
            if n == "hangup":  # closed before or after the request was written
                line = "error: the connection closed before the "
            assert rows[n].startswith(line), (n, rows[n])

        rc, out, err, took = status("-c", ini, "--timeout", "1.5", "--json")
        assert rc == 1 and took < 8, (rc, out, err)
        got = json.loads(out)
        # --json prints what came as it came: a JSON object with "ok": true is an answer
        assert got.pop("nofigures") == {"ok": True, "site": "x", "uptime": 5,
                                        "connections": "many"}, out
        for n, line in want.items():
            if n == "nofigures":
                continue
            if n == "hangup":
                line = "error: the connection closed before the "
            assert got[n]["ok"] is False, got[n]
            assert got[n]["error"].startswith(line[len("error: "):]), (n, got[n])
    finally:
        for s in servers:
            s.close()
        shutil.rmtree(d, ignore_errors=True)


def test_without_c_the_config_is_the_one_the_daemon_would_use():
    system = "/etc/herald/herald.ini"
    rc, out, err, _ = status("--timeout", "2")
    assert rc in (0, 1), (rc, out, err)
    rows, _ = table(out)
    if os.path.exists(system):
        assert list(rows) == list(table(status("-c", system, "--timeout", "2")[1])[0]), out
    else:
        # the development defaults: one site, "default", on /tmp/herald.sock
        assert list(rows) == ["default"], out
        assert rc == 0 or "/tmp/herald.sock" in rows["default"], out

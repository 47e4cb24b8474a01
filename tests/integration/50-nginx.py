"""
50-nginx.py -- Herald behind nginx, with the snippets a site actually includes.

Loads nginx/herald-map.conf (in http{}) and nginx/herald.conf (in server{}) into a private nginx
(/usr/sbin/nginx, single process, `daemon off`, everything under a temporary prefix) on
127.0.0.1:<free port>. Two strings are replaced, each checked to occur exactly once: the upstream
address (unix:/run/herald/ws.sock becomes this run's socket, or a TCP address) and the access
log path. Everything else is the file as shipped.

Checks what a site owner would see: a browser-style client reaches Herald through nginx's /ws
with ?token= and with the subprotocol token, a publish arrives, a bad token comes back as 401
with Herald's JSON body, a quiet connection survives several ping intervals, and the access
log records the request without the token. One test puts a recorder in Herald's place to show
the request head Herald receives (HTTP/1.1, Upgrade, Connection, X-Forwarded-For, X-Real-IP).
Handshakes Herald refuses directly (HTTP/1.0, no `upgrade` in Connection, a plain GET) are
refused through nginx by Herald itself, with its body and its /stats counter, while a client
connected through nginx keeps receiving; browsers' variants (Firefox's "keep-alive, Upgrade",
any case) still get 101.
"""

import asyncio
import json
import os
import shutil
import socket
import tempfile
import time

import pytest
import websockets

import nginx
import rawws
from herald import Bystander, Herald, recv_json, wait_connections, without_id
from nginx import copy_snippet, read
from standin import UnixStandIn

SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        include {tmp}/herald.conf;
        include {tmp}/herald-publish.conf;
        location / {{ return 404; }}
    }}"""


class Nginx(nginx.Nginx):
    """The shared test nginx (tests/lib/nginx.py), with nginx/herald-publish.conf too."""

    def __init__(self, upstream, api_socket="/nonexistent/api.sock"):
        super().__init__(upstream, SERVER)
        try:
            copy_snippet("herald-publish.conf", "unix:/run/herald/api.sock",
                         "unix:" + api_socket, self.tmp)
        except BaseException:
            self.cleanup()
            raise


def wait_for(predicate, timeout, what):
    """Poll predicate() until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


@pytest.fixture
def sock_dir():
    d = tempfile.mkdtemp(prefix="herald-ws-%d-" % os.getpid())
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unix_socket_query_and_subprotocol_token_publish_and_clean_access_log(sock_dir, run):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        token = h.token("42")

        async def scenario():
            async with websockets.connect(ngx.ws_url + "?token=" + token,
                                          open_timeout=5) as by_query, \
                    websockets.connect(ngx.ws_url, open_timeout=5,
                                       subprotocols=["herald", "herald.token." + token]) \
                    as by_proto:
                assert by_proto.subprotocol == "herald"
                assert h.publish(["42"], "order.shipped", {"id": 7}) == 2
                for ws in (by_query, by_proto):
                    assert await recv_json(ws) == {"event": "order.shipped", "data": {"id": 7}}

        run(scenario())

        # nginx writes the access log line when the proxied connection ends.
        wait_for(lambda: read(ngx.access_log).count("\n") >= 2, 5, "two access log lines")
        log = read(ngx.access_log)
        lines = log.splitlines()
        assert len(lines) == 2, log
        for line in lines:
            assert '"GET /ws HTTP/1.1" 101 ' in line, line
        for name, text in (("access log", log), ("site log", read(ngx.site_log)),
                           ("error log", ngx.errors())):
            assert token not in text, "token leaked into the nginx " + name
            assert "token=" not in text, "query string leaked into the nginx " + name
        assert read(ngx.site_log) == "", "the /ws location must use its own access log"


def test_tcp_upstream_publish_and_broadcast(run):
    with Herald(workers=2) as h, Nginx("127.0.0.1:%d" % h.port) as ngx:
        async def scenario():
            async with websockets.connect(ngx.ws_url + "?token=" + h.token("alice"),
                                          open_timeout=5) as alice, \
                    websockets.connect(ngx.ws_url, open_timeout=5, subprotocols=[
                        "herald", "herald.token." + h.token("bob")]) as bob:
                assert h.publish(["alice"], "note", {"text": "for alice"}) == 1
                assert await recv_json(alice) == {"event": "note",
                                                  "data": {"text": "for alice"}}
                assert h.broadcast("news", [1, 2, 3]) == 2
                assert await recv_json(alice) == {"event": "news", "data": [1, 2, 3]}
                # The broadcast is the first thing bob sees: the note was alice's only.
                assert await recv_json(bob) == {"event": "news", "data": [1, 2, 3]}

        run(scenario())


def read_until(sock, marker):
    """Bytes from sock until `marker` has come (or the peer has hung up)."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def header_map(head):
    """An HTTP head as text: (its first line, {lower-case field name: value})."""
    lines = head.split("\r\n")
    fields = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
    return lines[0], fields


def exchange(port, request, source="127.0.0.1"):
    """
    Send one raw HTTP request to nginx from `source`; return (status, {lower-case field: value},
    body bytes) once the body is in (by Content-Length) or nginx has hung up.
    """
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as s:
        s.sendall(request.encode() if isinstance(request, str) else request)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                n = int(header_map(head.decode("latin-1"))[1].get("content-length", "-1"))
                if 0 <= n <= len(body):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    line, headers = header_map(head.decode("latin-1"))
    return int(line.split(" ")[1]), headers, body


def http(port, method, path, body=None, source="127.0.0.1"):
    """One HTTP/1.1 request from source; returns (status, body bytes)."""
    data = json.dumps(body).encode() if body is not None else b""
    req = ("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n" % (method, path, len(data)))
    status, _, rest = exchange(port, req.encode() + data, source)
    return status, rest


def test_http_publish_location_for_local_callers_only(sock_dir, run):
    with Herald(workers=2) as h, Nginx("127.0.0.1:%d" % h.port, h.api_socket) as ngx:
        async def scenario():
            async with websockets.connect(ngx.ws_url + "?token=" + h.token("carol"),
                                          open_timeout=5) as carol:
                st, body = http(ngx.port, "POST", "/herald/publish",
                                {"users": ["carol"], "event": "from.cron", "data": 7})
                assert st == 200 and json.loads(body)["delivered"] == 1, body
                assert await recv_json(carol) == {"event": "from.cron", "data": 7}
                st, body = http(ngx.port, "GET", "/herald/presence?user=carol")
                assert st == 200 and json.loads(body)["connections"] == 1, body
                # Herald's own errors come through as they are.
                st, body = http(ngx.port, "POST", "/herald/publish", {"event": "x"})
                assert st == 400 and "missing users" in json.loads(body)["error"]
                # Another address, even on this machine, is refused by nginx.
                st, body = http(ngx.port, "POST", "/herald/publish",
                                {"users": ["carol"], "event": "intruder"}, source="127.0.0.2")
                assert st == 403
                # Only the accepted publish counts: not Herald's 400, not nginx's 403.
                st, body = http(ngx.port, "GET", "/herald/stats")
                assert st == 200 and json.loads(body)["published"] == 1, body

        run(scenario())


def upgrade_from(port, source, token):
    """A WebSocket handshake through nginx from a given loopback address; returns the status."""
    req = ("GET /ws?token=%s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % token)
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(req.encode())
    return s, int(read_until(s, b"\r\n").split(b" ")[1])


@pytest.mark.parametrize("upstream", ["unix", "tcp"])
def test_the_client_address_herald_counts_is_the_one_nginx_saw(sock_dir, upstream):
    # nginx forwards the visitor's address in X-Forwarded-For (herald.conf) and Herald
    # believes it only from trusted_proxies (by default loopback and unix peers): the
    # per-address limit then holds per visitor, not for nginx as a whole.
    ws_sock = os.path.join(sock_dir, "ws.sock")
    config = {"max_connections_per_ip": 1}
    if upstream == "unix":
        config["listen"] = "unix:" + ws_sock
    with Herald(config=config, workers=2) as h, \
            Nginx("unix:" + ws_sock if upstream == "unix" else "127.0.0.1:%d" % h.port) as ngx:
        token = h.token("visitor")
        held = []
        try:
            for source, want in (("127.0.0.2", 101), ("127.0.0.3", 101), ("127.0.0.2", 429)):
                s, status = upgrade_from(ngx.port, source, token)
                held.append(s)
                assert status == want, (source, status)
            assert h.stats()["handshakes_refused"]["too_many_from_address"] == 1
            assert "refused 127.0.0.2: too_many_from_address" in h.log_text()
        finally:
            for s in held:
                s.close()


def raw_upgrade(port, path):
    """Send a WebSocket upgrade by hand; return (status, headers dict, body bytes)."""
    return exchange(port, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port))


def test_bad_token_through_nginx_is_401_for_the_client(sock_dir, run):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        bad = h.token("42")[:-4] + "AAAA"   # signature no longer matches

        async def refused(**kwargs):
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
                await websockets.connect(open_timeout=5, **kwargs)
            return e.value.status_code

        assert run(refused(uri=ngx.ws_url + "?token=" + bad)) == 401
        assert run(refused(uri=ngx.ws_url,
                           subprotocols=["herald", "herald.token." + bad])) == 401
        assert run(refused(uri=ngx.ws_url)) == 401

        status, headers, body = raw_upgrade(ngx.port, "/ws?token=" + bad)
        assert status == 401
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == {"ok": False, "error": "bad_token"}
        status, _, body = raw_upgrade(ngx.port, "/ws")
        assert (status, json.loads(body)) == (401, {"ok": False, "error": "no_token"})
        assert bad not in read(ngx.access_log) + read(ngx.error_log)


def test_quiet_connection_survives_several_ping_intervals(sock_dir, run):
    # With a 1 s ping interval Herald closes a connection that is silent for 2 s; the pings
    # and the client's pongs must cross nginx for this one to stay open.
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock, "ping_interval": "1s"}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        async def scenario():
            async with websockets.connect(
                    ngx.ws_url, subprotocols=["herald", "herald.token." + h.token("7")],
                    open_timeout=5, ping_interval=None) as ws:
                await asyncio.sleep(4.5)
                assert ws.open, "connection closed while idle: %s %s" % (ws.close_code,
                                                                         ws.close_reason)
                assert h.publish(["7"], "still.here", None) == 1
                assert await recv_json(ws) == {"event": "still.here", "data": None}

        run(scenario())


class Recorder(UnixStandIn):
    """Stands in for Herald on a unix socket: records each request head, answers 401."""

    def __init__(self, path):
        self.heads = []
        super().__init__(path, backlog=8)

    def handle(self, c):
        with c:
            c.settimeout(5)
            self.heads.append(read_until(c, b"\r\n\r\n").decode("latin-1"))
            body = b'{"ok":false,"error":"bad_token"}'
            c.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def test_request_head_herald_receives_through_nginx(sock_dir):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    rec = Recorder(ws_sock)
    try:
        with Nginx("unix:" + ws_sock) as ngx:
            status, _, _ = raw_upgrade(ngx.port, "/ws?token=abc")
            assert status == 401
            with socket.create_connection(("127.0.0.1", ngx.port), timeout=5) as s:
                s.sendall(b"GET /ws HTTP/1.1\r\nHost: example.test\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 401")
            for kw in (dict(headers={"Connection": "keep-alive, Upgrade"}),
                       dict(version="HTTP/1.0"),
                       dict(headers={"Connection": "keep-alive"})):
                with rawws.RawWS(("127.0.0.1", ngx.port), timeout=5) as ws:
                    assert ws.handshake("/ws", **kw)[0] == 401
        assert len(rec.heads) == 5, rec.heads
        line, f = header_map(rec.heads[0])
        assert line == "GET /ws?token=abc HTTP/1.1"
        assert f["upgrade"] == "websocket"
        assert f["connection"] == "upgrade"
        assert f["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
        assert f["sec-websocket-version"] == "13"
        assert f["host"] == "127.0.0.1"
        assert f["x-real-ip"] == "127.0.0.1"
        assert f["x-forwarded-for"] == "127.0.0.1"
        assert f["x-forwarded-proto"] == "http"
        # A plain GET is passed on without an upgrade, so Herald answers it (400 no_upgrade).
        line, f = header_map(rec.heads[1])
        assert line == "GET /ws HTTP/1.1"
        assert f["connection"] == "close" and "upgrade" not in f
        assert f["host"] == "example.test"
        # Firefox's "keep-alive, Upgrade" becomes the one token Herald needs.
        line, f = header_map(rec.heads[2])
        assert (f["upgrade"], f["connection"]) == ("websocket", "upgrade")
        # An HTTP/1.0 upgrade comes as HTTP/1.1 (nginx's proxy_http_version), so it comes
        # without Upgrade; an upgrade without the Connection token comes with "close".
        line, f = header_map(rec.heads[3])
        assert line == "GET /ws HTTP/1.1"
        assert "upgrade" not in f and f["connection"] == "upgrade"
        line, f = header_map(rec.heads[4])
        assert f["upgrade"] == "websocket" and f["connection"] == "close"
    finally:
        rec.close()


# Handshakes Herald refuses when they come to it directly (10-handshake.py) must be refused
# through nginx too, by Herald, with its body and its counter: herald-map.conf passes on only
# the upgrade the client asked for. An HTTP/1.0 upgrade reaches Herald without Upgrade (nginx
# speaks HTTP/1.1 upstream whatever the client spoke), so Herald counts it as no_upgrade where,
# sent directly, it is bad_request. Each is sent by hand: client libraries send no such heads.
INVALID_UPGRADES = [
    ("http-1.0", dict(version="HTTP/1.0")),
    ("http-1.0-firefox-connection", dict(version="HTTP/1.0",
                                         headers={"Connection": "keep-alive, Upgrade"})),
    ("no-connection-header", dict(headers={"Connection": None})),
    ("connection-keep-alive", dict(headers={"Connection": "keep-alive"})),
    ("connection-upgraded", dict(headers={"Connection": "Upgraded"})),
    ("connection-space-is-no-separator", dict(headers={"Connection": "keep-alive upgrade"})),
    ("no-upgrade-header", dict(headers={"Upgrade": None})),
    ("upgrade-not-websocket", dict(headers={"Upgrade": "h2c"})),
    ("plain-get", dict(headers={"Upgrade": None, "Connection": None,
                                "Sec-WebSocket-Key": None, "Sec-WebSocket-Version": None})),
    ("plain-get-http-1.0", dict(version="HTTP/1.0", headers={
        "Upgrade": None, "Connection": None, "Sec-WebSocket-Key": None,
        "Sec-WebSocket-Version": None})),
]


@pytest.mark.parametrize("kw", [kw for _, kw in INVALID_UPGRADES],
                         ids=[name for name, _ in INVALID_UPGRADES])
def test_invalid_upgrade_through_nginx_is_refused_and_counted_by_herald(sock_dir, kw):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        bystander = Bystander(h, ("127.0.0.1", ngx.port))
        try:
            wait_connections(h, 1)
            before = h.stats()["handshakes_refused"]
            with rawws.RawWS(("127.0.0.1", ngx.port), timeout=5) as ws:
                status, headers, body = ws.handshake("/ws?token=" + h.token("42"), **kw)
                assert status != 101, "nginx switched protocols for an invalid upgrade"
                assert status == 400, (status, body)
                assert headers.get("Content-Type", "").startswith("application/json"), \
                    dict(headers)
                # Herald's own answer. (nginx may keep the client's connection for another
                # request, as it does after any response: Herald has closed its side.)
                assert json.loads(body) == {"ok": False, "error": "no_upgrade"}
            s = h.wait_stat("handshakes_refused.no_upgrade", before["no_upgrade"] + 1)
            assert s["handshakes_refused"] == dict(before, no_upgrade=before["no_upgrade"] + 1)
            assert s["connections"] == 1
            bystander.check()
        finally:
            bystander.close()


# What browsers and other clients send: Firefox "keep-alive, Upgrade", any case of both tokens,
# the token anywhere in the Connection list, tabs around it.
VALID_UPGRADES = [
    ("firefox", {"Connection": "keep-alive, Upgrade"}),
    ("lower-case", {"Connection": "upgrade", "Upgrade": "websocket"}),
    ("upper-case", {"Connection": "UPGRADE", "Upgrade": "WEBSOCKET"}),
    ("mixed-case", {"Connection": "UpGrade", "Upgrade": "WebSocket"}),
    ("token-first", {"Connection": "Upgrade, keep-alive"}),
    ("no-spaces", {"Connection": "keep-alive,Upgrade,TE"}),
    ("tabs", {"Connection": "keep-alive,\tUpgrade\t"}),
]


def test_valid_upgrade_variants_pass_through_nginx(sock_dir):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        opened = []
        try:
            for name, headers in VALID_UPGRADES:
                ws = rawws.RawWS(("127.0.0.1", ngx.port), timeout=5)
                opened.append(ws)
                status, got, body = ws.handshake("/ws?token=" + h.token(name), headers=headers)
                assert status == 101, (name, status, body)
                assert got.get("Sec-WebSocket-Accept") == rawws.accept_key(ws.key), name
            wait_connections(h, len(VALID_UPGRADES))
            for (name, _), ws in zip(VALID_UPGRADES, opened):
                assert h.publish([name], "variant", name) == 1
                f = ws.recv_data(timeout=3)
                assert without_id(json.loads(f.payload)) == {"event": "variant", "data": name}
            assert sum(h.stats()["handshakes_refused"].values()) == 0
        finally:
            for ws in opened:
                ws.close()

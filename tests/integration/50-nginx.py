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
log records the request without the token.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

from herald import Herald

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NGINX = "/usr/sbin/nginx"
SNIPPET_SOCKET = "unix:/run/herald/ws.sock"
SNIPPET_LOG = "/var/log/nginx/herald-ws.access.log"

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # The site's own log, in the default (combined) format that would record ?token=.
    access_log {tmp}/site-access.log combined;
    include {tmp}/herald-map.conf;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        include {tmp}/herald.conf;
        location / {{ return 404; }}
    }}
}}
"""


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_snippet(name, old, new, dest_dir):
    """Copy nginx/<name> to dest_dir with `old` (which must occur exactly once) replaced."""
    with open(os.path.join(ROOT, "nginx", name)) as f:
        text = f.read()
    assert text.count(old) == 1, "%s should mention %s exactly once" % (name, old)
    with open(os.path.join(dest_dir, name), "w") as f:
        f.write(text.replace(old, new))


class Nginx:
    """A private nginx in front of Herald at `upstream` ("unix:/path" or "127.0.0.1:port")."""

    def __init__(self, upstream):
        self.tmp = tempfile.mkdtemp(prefix="herald-nginx-%d-" % os.getpid())
        self.upstream = upstream
        self.proc = None
        self.port = None
        self.access_log = os.path.join(self.tmp, "herald-ws.access.log")
        self.site_log = os.path.join(self.tmp, "site-access.log")
        self.error_log = os.path.join(self.tmp, "error.log")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.mkdir(os.path.join(self.tmp, d))
        copy_snippet("herald-map.conf", SNIPPET_SOCKET, upstream, self.tmp)
        copy_snippet("herald.conf", SNIPPET_LOG, self.access_log, self.tmp)

    def __enter__(self):
        for _ in range(5):          # a port picked by free_port() can be taken in between
            self.port = free_port()
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port))
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.tmp, "-c", conf, "-e", self.error_log],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_listening(5.0):
                return self
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None \
                else ""
            self._kill()
            if "Address already in use" not in err + self.errors():
                raise RuntimeError("nginx did not start: %s\n%s" % (err, self.errors()))
        raise RuntimeError("nginx found no free port")

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)       # graceful: flushes the logs
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def __exit__(self, *exc):
        self._kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    def errors(self):
        return read(self.error_log)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(predicate, timeout, what):
    """Poll predicate() until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


async def receive_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def run(coro, timeout=30.0):
    """Run one test coroutine with an upper bound on its time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def sock_dir():
    d = tempfile.mkdtemp(prefix="herald-ws-%d-" % os.getpid())
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unix_socket_query_and_subprotocol_token_publish_and_clean_access_log(sock_dir):
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        token = h.token("42")

        async def scenario():
            by_query = await websockets.connect(ngx.ws_url + "?token=" + token, open_timeout=5)
            by_proto = await websockets.connect(
                ngx.ws_url, subprotocols=["herald", "herald.token." + token], open_timeout=5)
            assert by_proto.subprotocol == "herald"
            delivered = h.publish(["42"], "order.shipped", {"id": 7})
            assert delivered == 2
            for ws in (by_query, by_proto):
                assert await receive_json(ws) == {"event": "order.shipped", "data": {"id": 7}}
            await by_query.close()
            await by_proto.close()

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


def test_tcp_upstream_publish_and_broadcast():
    with Herald(workers=2) as h, Nginx("127.0.0.1:%d" % h.port) as ngx:
        async def scenario():
            alice = await websockets.connect(ngx.ws_url + "?token=" + h.token("alice"),
                                             open_timeout=5)
            bob = await websockets.connect(
                ngx.ws_url, subprotocols=["herald", "herald.token." + h.token("bob")],
                open_timeout=5)
            assert h.publish(["alice"], "note", {"text": "for alice"}) == 1
            assert await receive_json(alice) == {"event": "note", "data": {"text": "for alice"}}
            assert h.broadcast("news", [1, 2, 3]) == 2
            assert await receive_json(alice) == {"event": "news", "data": [1, 2, 3]}
            # bob got nothing before the broadcast.
            assert await receive_json(bob) == {"event": "news", "data": [1, 2, 3]}
            await alice.close()
            await bob.close()

        run(scenario())


def raw_upgrade(port, path):
    """Send a WebSocket upgrade by hand; return (status, headers dict, body bytes)."""
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "-1"))
                if n >= 0 and len(body) >= n:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, headers, body


def test_bad_token_through_nginx_is_401_for_the_client(sock_dir):
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


def test_quiet_connection_survives_several_ping_intervals(sock_dir):
    # With a 1 s ping interval Herald closes a connection that is silent for 2 s; the pings
    # and the client's pongs must cross nginx for this one to stay open.
    ws_sock = os.path.join(sock_dir, "ws.sock")
    with Herald(config={"listen": "unix:" + ws_sock, "ping_interval": "1s"}, workers=2) as h, \
            Nginx("unix:" + ws_sock) as ngx:
        async def scenario():
            ws = await websockets.connect(
                ngx.ws_url, subprotocols=["herald", "herald.token." + h.token("7")],
                open_timeout=5, ping_interval=None)
            await asyncio.sleep(4.5)
            assert ws.open, "connection closed while idle: %s %s" % (ws.close_code,
                                                                     ws.close_reason)
            assert h.publish(["7"], "still.here", None) == 1
            assert await receive_json(ws) == {"event": "still.here", "data": None}
            await ws.close()

        run(scenario())

"""
45-make-run: what `make run` promises a newcomer. The demo script
(php-client/demo/run.sh, which `make run` calls) starts Herald on its
embedded defaults and the demo page; a WebSocket client connects with a
token from herald_token() and receives what herald_publish() sends: exactly
the targeted user's tabs, no one else's. Ctrl-C (SIGINT) stops both
processes and removes the socket.

The script is run with its ports moved through the environment (the only
difference from `make run`), so the test never collides with a developer's
own `make run`.
"""
import asyncio
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import websockets

from herald import REPO, expect_nothing, free_port, herald_bin, recv_json

RUN_SH = REPO / "php-client" / "demo" / "run.sh"
HERALD_PHP = REPO / "php-client" / "herald.php"


class Demo:
    """run.sh in its own process group, its output in a file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-demo-")
        self.ws_port = free_port()
        self.http_port = free_port()
        self.socket = os.path.join(self.dir, "api.sock")
        self.out_path = os.path.join(self.dir, "out.log")
        self.env = dict(os.environ, HERALD_LISTEN="127.0.0.1:%d" % self.ws_port,
                        HERALD_SOCKET=self.socket, DEMO_PORT=str(self.http_port))
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(["sh", str(RUN_SH), str(herald_bin())], env=self.env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while "Ctrl-C stops" not in self.text():
            assert self.proc.poll() is None, "run.sh exited: %s" % self.text()
            assert time.monotonic() < deadline, "no banner: %s" % self.text()
            time.sleep(0.05)
        self.wait_http()

    def text(self):
        return Path(self.out_path).read_text(errors="replace")

    def wait_http(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(self.url("/herald.js"), timeout=2).read()
                return
            except OSError:
                assert time.monotonic() < deadline, "demo page never answered"
                time.sleep(0.05)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def php(self, code):
        """Run PHP code with herald.php loaded and the demo's environment."""
        env = dict(self.env, HERALD_SECRET="herald-dev-secret")
        r = subprocess.run(["php", "-d", "error_log=" + os.path.join(self.dir, "php.log"),
                            "-r", "require '%s'; %s" % (HERALD_PHP, code)],
                           env=env, capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode()

    def stop(self):
        """Ctrl-C as a terminal sends it: SIGINT to the whole group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError("run.sh did not stop on SIGINT")
        self.out.close()

    def cleanup(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if not self.out.closed:
            self.out.close()
        subprocess.run(["rm", "-rf", self.dir])


@pytest.fixture
def demo():
    d = Demo()
    try:
        yield d
    finally:
        d.cleanup()


def connect(demo, token):
    return websockets.connect("ws://127.0.0.1:%d/ws" % demo.ws_port,
                              subprotocols=["herald", "herald.token." + token],
                              open_timeout=5, close_timeout=2)


def test_banner_says_how_to_connect_and_publish(demo):
    text = demo.text()
    assert "ws://127.0.0.1:%d/ws" % demo.ws_port in text
    assert demo.socket in text
    assert "herald_publish(" in text and "herald_token(" in text
    assert "http://127.0.0.1:%d/?user=42" % demo.http_port in text


def test_a_publish_reaches_exactly_the_targeted_users_tabs(demo):
    tok42 = demo.php("echo herald_token('42');")
    tok7 = demo.php("echo herald_token('7');")

    async def go():
        async with connect(demo, tok42) as tab1, connect(demo, tok42) as tab2, \
                connect(demo, tok7) as other:
            out = demo.php("echo herald_publish('42', 'order.shipped', ['id' => 7]);")
            assert out == "2"
            want = {"event": "order.shipped", "data": {"id": 7}}
            assert await recv_json(tab1) == want
            assert await recv_json(tab2) == want
            await expect_nothing(other, 0.5)
            assert demo.php("echo herald_publish('7', 'ping', null);") == "1"
            assert await recv_json(other) == {"event": "ping", "data": None}
            await expect_nothing(tab1, 0.3)
    asyncio.run(go())


def test_the_demo_page_and_its_publish_form(demo):
    page = urllib.request.urlopen(demo.url("/?user=7"), timeout=5).read().decode()
    assert '<script src="herald.js"></script>' in page
    token = re.search(r'token: "([A-Za-z0-9_.-]+)"', page).group(1)
    assert "ws://127.0.0.1:%d/ws" % demo.ws_port in page
    js = urllib.request.urlopen(demo.url("/herald.js"), timeout=5).read().decode()
    assert "function Herald" in js or "class Herald" in js

    async def go():
        async with connect(demo, token) as ws:
            form = urllib.parse.urlencode({"to": "7", "text": "hi"}).encode()
            answer = urllib.request.urlopen(demo.url("/publish.php"), form, timeout=5).read()
            assert json.loads(answer) == {"delivered": 1}
            assert await recv_json(ws) == {"event": "demo.message", "data": {"text": "hi"}}
    asyncio.run(go())


def test_ctrl_c_stops_herald_and_the_page(demo):
    assert os.path.exists(demo.socket)
    demo.stop()
    assert demo.proc.returncode == 0, demo.text()
    assert not os.path.exists(demo.socket), "api socket left behind"
    for port in (demo.ws_port, demo.http_port):
        with pytest.raises(OSError):
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2)
    text = demo.text()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in text, text

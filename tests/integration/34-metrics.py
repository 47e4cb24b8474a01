"""
34-metrics.py -- GET /metrics in Prometheus' text format (issue #14), with the real Herald, real
WebSocket clients, the FastCGI API (tests/lib/fcgi.py), Debian's promtool and a real Prometheus
server started by the test.

The module's Herald has two sites, a and b, and metrics_listen on a free loopback port.

Proves:
- format: `promtool check metrics` finds nothing wrong in the text from a site's API socket
  nor from metrics_listen (Content-Type text/plain; version=0.0.4); HELP and TYPE come once
  per family;
- site isolation: site a's socket shows only series with site="a" and no process-wide ones
  (build, descriptors, engine); b's likewise; metrics_listen shows both sites and the
  process's (herald_build_info{version=...} 1, herald_process_open_fds under
  herald_process_max_fds, herald_engine_up{engine="memory"} 1);
- counters: N publishes to a connected user add N to herald_messages_published_total and
  herald_frames_delivered_total{kind="user"}; a broadcast and a channel publish count under
  their kinds; a token refused counts under handshakes_refused_total{reason="bad_token"} of its
  site only; a client's close 1000 and a dropped TCP connection (1006) count in
  herald_closes_total by code; API requests count by route and status, an unknown path as
  route="other" (never the path itself);
- histograms move: after N publishes to a connected client, herald_publish_latency_seconds and
  herald_delivery_lag_seconds each counted exactly N more, +Inf equals _count, buckets are
  cumulative;
- a real Prometheus (scrape_interval 1s) scraping metrics_listen answers through
  /api/v1/query with the figures the test caused (N publishes on site b, one refused
  handshake), within a bounded wait; it is killed by its PID at the end;
- hostile peers on metrics_listen: garbage gets 400, an oversized head 431, another path 404,
  POST 405 with Allow; a slowloris is closed after the head deadline while other scrapes and
  WebSocket clients carry on; a flood of connections beyond the cap is closed at once; each
  is counted in herald_metrics_refused_total by reason, and HEAD gets the head alone;
- nginx/herald-metrics.conf, loaded verbatim into a real nginx but for the socket path, serves
  site a's series (and only a's) at /herald/metrics, and promtool accepts them;
- a metrics_listen address already taken stops the start with a line that names it;
- with engine = redis: the engine's series (up, errors, reconnects, round-trip histogram)
  are there, pass promtool, and the round trips move.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

import fcgi
import nginx
from herald import Bystander, Herald, free_port, recv_json
from procs import stop_child
from redis import RedisServer

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METRICS_PORT = free_port()
HERALD_SITES = {"a": {"ws_path": "/a/ws"}, "b": {"ws_path": "/b/ws"}}
HERALD_CONFIG = {"metrics_listen": "127.0.0.1:%d" % METRICS_PORT}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse(text):
    """{(name, ((label, value), ...)): float} of every sample; HELP/TYPE lines checked once."""
    out, families = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        key = (m.group(1), labels)
        assert key not in out, "sample twice: %r" % line
        out[key] = float(m.group(3))
    assert len(families) == len(set(families)), "a family's TYPE twice"
    return out


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_ok(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", (p.stdout, p.stderr)


def scrape_site(h, site):
    """GET /metrics on a site's API socket: (headers, text)."""
    r = fcgi.request(h.site_api_socket(site), "GET", "/metrics")
    assert r.status == 200, (r.status, r.body[:200])
    return r.headers, r.body.decode()


def http(port, raw, timeout=5.0):
    """Send raw bytes to 127.0.0.1:port and read until the server closes: the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def scrape_listener(port=METRICS_PORT):
    """GET /metrics on metrics_listen: (status line, headers dict, body text)."""
    reply = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return lines[0], headers, body.decode()


def test_promtool_accepts_both(herald):
    headers, text = scrape_site(herald, "a")
    assert headers["Content-Type"] == CONTENT_TYPE
    promtool_ok(text)
    status, headers, text = scrape_listener()
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["connection"] == "close"
    promtool_ok(text)
    s = parse(text)
    assert value(s, "herald_build_info", version="0.1.0") == 1
    assert 0 < value(s, "herald_process_open_fds") < value(s, "herald_process_max_fds")
    assert value(s, "herald_engine_up", engine="memory") == 1
    # /metrics on the API socket takes GET only, like /stats.
    st, hd, j = herald.api("POST", "/metrics", site="a")
    assert st == 405 and hd["Allow"] == "GET" and j["ok"] is False


def test_site_isolation(herald):
    for me, other in (("a", "b"), ("b", "a")):
        _, text = scrape_site(herald, me)
        s = parse(text)
        assert s, text
        for (name, labels) in s:
            assert ("site", me) in labels, (name, labels)
        assert 'site="%s"' % other not in text
        for name in ("herald_build_info", "herald_process_open_fds", "herald_engine_up",
                     "herald_metrics_refused_total"):
            assert name not in text
    _, _, text = scrape_listener()
    assert 'herald_connections{site="a"}' in text and 'herald_connections{site="b"}' in text


def test_counters_and_histograms_move(herald, run):
    user, n = "metrics-u1", 5

    async def body():
        before = parse(scrape_site(herald, "a")[1])
        async with herald.connect(herald.token(user, site="a"), site="a") as ws:
            for i in range(n):
                assert herald.publish([user], "m.tick", i, site="a") == 1
                assert (await recv_json(ws))["data"] == i
            assert herald.broadcast("m.all", 1, site="a") == 1
            await recv_json(ws)
            # Frames are counted as written; the client has read them, so they were.
            after = parse(scrape_site(herald, "a")[1])
        return before, after

    before, after = run(body())

    def delta(name, **labels):
        return value(after, name, site="a", **labels) - value(before, name, site="a", **labels)

    assert delta("herald_messages_published_total", kind="user") == n
    assert delta("herald_messages_published_total", kind="broadcast") == 1
    assert delta("herald_frames_delivered_total", kind="user") == n
    assert delta("herald_frames_delivered_total", kind="broadcast") == 1
    assert delta("herald_publish_latency_seconds_count") == n + 1
    assert delta("herald_delivery_lag_seconds_count") == n + 1
    assert delta("herald_api_requests_total", route="publish", status="200") == n + 1
    for h in ("herald_publish_latency_seconds", "herald_delivery_lag_seconds"):
        buckets = sorted(((float(dict(lb)["le"]), v) for (nm, lb), v in after.items()
                          if nm == h + "_bucket" and ("site", "a") in lb), key=lambda x: x[0])
        assert buckets[-1][0] == float("inf")
        assert buckets[-1][1] == value(after, h + "_count", site="a")
        assert all(x[1] <= y[1] for x, y in zip(buckets, buckets[1:])), buckets
        assert value(after, h + "_sum", site="a") > 0
    # Site b saw none of it.
    b = parse(scrape_site(herald, "b")[1])
    assert value(b, "herald_messages_published_total", site="b", kind="user") == 0


def test_refusals_closes_and_routes(herald, run):
    before_a = parse(scrape_site(herald, "a")[1])
    before_b = parse(scrape_site(herald, "b")[1])

    async def body():
        bad = herald.token("x", secret="s" * 32)
        with pytest.raises(Exception):
            async with herald.connect(bad, site="a"):
                pass
        async with herald.connect(herald.token("metrics-c1", site="a"), site="a") as ws:
            await ws.close(code=1000)
        raw = herald.raw_ws("metrics-c2", site="a")
        raw.sock.close()

    run(body())
    herald.api("GET", "/user/42/secret", site="a")
    herald.api("POST", "/stats", site="a")

    def delta(name, **labels):
        after = parse(scrape_site(herald, "a")[1])
        return value(after, name, site="a", **labels) - value(before_a, name, site="a", **labels)

    deadline = time.monotonic() + 5
    while delta("herald_closes_total", code="1006") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert delta("herald_handshakes_refused_total", reason="bad_token") == 1
    assert delta("herald_closes_total", code="1000") == 1
    assert delta("herald_closes_total", code="1006") == 1
    assert delta("herald_api_requests_total", route="other", status="404") == 1
    assert delta("herald_api_requests_total", route="stats", status="405") == 1
    after_a = scrape_site(herald, "a")[1]
    assert "/user/42" not in after_a and "metrics-c1" not in after_a
    after_b = parse(scrape_site(herald, "b")[1])
    assert value(after_b, "herald_handshakes_refused_total", site="b", reason="bad_token") == \
        value(before_b, "herald_handshakes_refused_total", site="b", reason="bad_token")


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=5) as r:
        j = json.load(r)
    assert j["status"] == "success", j
    return [float(x["value"][1]) for x in j["data"]["result"]]


def test_prometheus_scrapes_listener(herald):
    tmp = tempfile.mkdtemp(prefix="herald-prom-")
    port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: herald\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % METRICS_PORT)
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    base = parse(scrape_listener()[2])
    n = 7
    for i in range(n):
        herald.publish(["nobody-here"], "m.p", i, site="b")
    with pytest.raises(Exception):
        herald.raw_ws(token=herald.token("x", secret="t" * 32), site="b")
    want_pub = value(base, "herald_messages_published_total", site="b", kind="user") + n
    want_ref = value(base, "herald_handshakes_refused_total", site="b", reason="bad_token") + 1
    prom = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 45
        got = None
        while time.monotonic() < deadline:
            try:
                pub = prom_query(port, 'herald_messages_published_total{site="b",kind="user"}')
                ref = prom_query(port,
                                 'herald_handshakes_refused_total{site="b",reason="bad_token"}')
                up = prom_query(port, 'up{job="herald"}')
                got = (pub, ref, up)
                if pub == [want_pub] and ref == [want_ref] and up == [1.0]:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert got == ([want_pub], [want_ref], [1.0]), got
        assert prom_query(port, 'herald_build_info{version="0.1.0"}') == [1.0]
    finally:
        stop_child(prom, signal.SIGTERM, 10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def refused(reason):
    return value(parse(scrape_listener()[2]), "herald_metrics_refused_total", reason=reason)


def test_hostile_listener(herald):
    bystander = Bystander(herald)
    try:
        before = {r: refused(r) for r in ("bad_request", "not_found", "bad_method", "too_large",
                                          "timeout", "too_many_connections")}
        assert http(METRICS_PORT, b"\x00\xffgarbage\r\n\r\n").startswith(
            b"HTTP/1.1 400 Bad Request\r\n")
        assert http(METRICS_PORT, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000).startswith(
            b"HTTP/1.1 431 ")
        assert http(METRICS_PORT, b"GET /stats HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 404 Not Found\r\n")
        reply = http(METRICS_PORT, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in reply
        head = http(METRICS_PORT, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) > 1000

        # A slowloris holds its slot until the head deadline; others are served meanwhile.
        slow = socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=20)
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        t0 = time.monotonic()
        assert scrape_listener()[0] == "HTTP/1.1 200 OK"
        bystander.check()
        assert slow.recv(100) == b""
        assert 3 < time.monotonic() - t0 < 15
        slow.close()

        # A flood past the cap: the extra connections are closed at once, unread.
        flood = [socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=5)
                 for _ in range(100)]
        # Look until the extra ones are closed, well within the held ones' head deadline.
        open_ = list(flood)
        for s in flood:
            s.setblocking(False)
        deadline = time.monotonic() + 3
        while len(flood) - len(open_) < 36 and time.monotonic() < deadline:
            time.sleep(0.1)
            for s in list(open_):
                try:
                    if s.recv(1) == b"":
                        open_.remove(s)
                except ConnectionResetError:
                    open_.remove(s)
                except BlockingIOError:
                    pass
        closed = len(flood) - len(open_)
        assert 36 <= closed <= 100 - 64 + 1, closed
        for s in flood:
            s.close()
        bystander.check()
        deadline = time.monotonic() + 5
        while True:
            try:
                status = scrape_listener()[0]
                break
            except (OSError, KeyError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert status == "HTTP/1.1 200 OK"
        for reason in ("bad_request", "not_found", "bad_method", "too_large", "timeout"):
            assert refused(reason) == before[reason] + 1, reason
        assert refused("too_many_connections") == before["too_many_connections"] + closed
        bystander.check()
    finally:
        bystander.close()


def test_redis_engine_series():
    with RedisServer() as r:
        port = free_port()
        with Herald(config={"engine": "redis", "redis_address": r.address,
                            "metrics_listen": "127.0.0.1:%d" % port}) as h:
            # Ready comes before the links are up: wait for the engine, then publish.
            deadline = time.monotonic() + 10
            while True:
                s = parse(scrape_listener(port)[2])
                if value(s, "herald_engine_up", engine="redis") == 1 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert value(s, "herald_engine_up", engine="redis") == 1
            before = value(s, "herald_engine_rtt_seconds_count", engine="redis")
            h.publish(["nobody"], "e", 1)
            text = scrape_listener(port)[2]
            promtool_ok(text)
            s = parse(text)
            assert value(s, "herald_engine_up", engine="redis") == 1
            # The publish was a round trip to Redis at least (its script).
            assert value(s, "herald_engine_rtt_seconds_count", engine="redis") > before
            assert ("herald_engine_errors_total", (("engine", "redis"),)) in s
            assert ("herald_engine_reconnects_total", (("engine", "redis"),)) in s
            # One site's socket has no engine series: they are the process's.
            assert "herald_engine_" not in scrape_site(h, None)[1]


NGINX_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        include {tmp}/herald-metrics.conf;
        location / {{ return 404; }}
    }}"""


def test_nginx_location_serves_one_site(herald):
    n = nginx.Nginx(herald.listen, NGINX_SERVER)
    try:
        nginx.copy_snippet("herald-metrics.conf", "unix:/run/herald/api.sock",
                           "unix:" + herald.site_api_socket("a"), n.tmp)
        n.start()
        with urllib.request.urlopen(n.url + "/herald/metrics", timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == CONTENT_TYPE
            text = r.read().decode()
        promtool_ok(text)
        assert 'herald_connections{site="a"}' in text and 'site="b"' not in text
    finally:
        n.stop()
        n.cleanup()


def test_metrics_listen_taken_fails_the_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        h = Herald(config={"metrics_listen": "127.0.0.1:%d" % port})
        with pytest.raises(RuntimeError) as e:
            h.start()
        assert "127.0.0.1:%d" % port in str(e.value) and "in use" in str(e.value), e.value

"""
81-hostile-api.py -- a hostile local user against the API sockets (issue #11, items 1 and 2).

On a shared host each site's PHP user can open any API socket it can reach. Here that user is
nobody, run by tests/lib/tenant.py through sockets of mode 0666: site a lists only root in
publish_uids (nobody is refused), site b lists root and nobody (nobody is a publisher there).
Meanwhile bystanders on both sites are published to every 100 ms through the API, as root, and
each publish must be answered and received within 1 s. The figures print with pytest -s.

- The request that made libfcgi abort (a PARAMS value length of 0x7ffffffe): a refused caller
  gets 403, an allowed one 400, both as JSON; the daemon stays up.
- PARAMS are bounded: 100 MiB of them from a refused and an allowed caller
  (api_max_body = 1k) leave the daemon's memory where it was.
- Trickling callers hold no thread: four send a request and then a byte a second, closed at
  once after their answer; four more keep the connection and trickle a next request, closed
  at its deadline (5 s).
- One uid holds at most api_max_connections on a site's socket; more are closed at once and
  counted as api_errors["503"].
- A caller that pipelines 48,000 requests and reads no answer gets nothing more read until it
  does: Herald holds one answer, not 65 MiB of them.
- A busy site leaves threads for another: root floods site a with publishes while site b's are
  timed.
"""

import json
import threading
import time

import pytest

import fcgi
from herald import ASAN_ENV, Herald, sanitized, uid
from procs import rss_kib
from tenant import PublicDir, Tenant, Watch, run_tenant


@pytest.fixture(scope="module")
def pub():
    with PublicDir() as p:
        yield p


def sites_for(pub, prefix="", **extra):
    common = {"api_socket_mode": "0666", **extra}
    return {"a": {"ws_path": "/a/ws", "publish_uids": "root",
                  "api_socket": pub.socket(prefix + "a"), **common},
            "b": {"ws_path": "/b/ws", "publish_uids": "root nobody",
                  "api_socket": pub.socket(prefix + "b"), **common}}


@pytest.fixture
def h(pub):
    """A daemon per test, so each attack is seen on its own (the old one died of the first)."""
    with Herald(sites=sites_for(pub, api_max_body="1k"), workers=2, env=ASAN_ENV) as herald:
        yield herald


def api_errors(h, site, status):
    return h.site(site).stats()["api_errors"][str(status)]


class RssSampler:
    """The daemon's highest resident memory while a with-block runs, sampled every 20 ms."""

    def __init__(self, pid):
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)
        self.after = rss_kib(self.pid)


@pytest.mark.parametrize("site,status", [("a", 403), ("b", 400)])
def test_the_libfcgi_abort_request_is_answered_and_the_daemon_stays_up(h, pub, site, status):
    before = api_errors(h, site, status)
    with Watch(h, ["a", "b"]) as w:
        got = run_tenant(pub, "bomb", pub.socket(site))
        time.sleep(0.3)
        w.check()
    print("\nPARAMS value length 0x7ffffffe from nobody on site %s: answered %s; %s"
          % (site, got["status"], w.summary()))
    assert got["status"] == status, got
    assert h.running(), h.log_text()[-3000:]
    assert api_errors(h, site, status) == before + 1


@pytest.mark.parametrize("site,status", [("a", 403), ("b", 431)])
def test_a_params_flood_is_dropped_not_kept(h, pub, site, status):
    """100 MiB of PARAMS: nothing of a refused caller's is kept, an allowed one's at most 64 KiB."""
    with Watch(h, ["a", "b"]) as w, RssSampler(h.proc.pid) as rss:
        results = [None, None]

        def flood(i):
            results[i] = run_tenant(pub, "params", pub.socket(site), 100)
        threads = [threading.Thread(target=flood, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        w.check()
    grew = (rss.peak - rss.before) / 1024
    print("\n2 x 100 MiB of PARAMS from nobody on site %s (api_max_body 1k): sent %s MiB, "
          "answered %s; herald RSS %.1f -> peak %.1f MiB (+%.1f); %s"
          % (site, [round(r["sent"] / 2**20, 1) for r in results],
             [r["status"] for r in results], rss.before / 1024, rss.peak / 1024, grew,
             w.summary()))
    for r in results:
        # Read and dropped up to 16 MiB, then closed; a caller that stops earlier is answered.
        assert r["sent"] < 24 << 20, r
        assert r["status"] in (status, None), r
    assert grew < 16, "RSS grew by %.1f MiB" % grew


@pytest.mark.parametrize("site,status", [("a", 403), ("b", 431)])
def test_params_over_the_limit_are_answered(h, pub, site, status):
    """1 MiB in one PARAMS pair: a refused caller gets its 403, an allowed one 431, as JSON."""
    before = api_errors(h, site, status)
    with Watch(h, ["a", "b"]) as w:
        got = run_tenant(pub, "params", pub.socket(site), 1)
        w.check()
    print("\n1 MiB of PARAMS from nobody on site %s: answered %s after %.2f s; %s"
          % (site, got["status"], got["seconds"], w.summary()))
    assert got["status"] == status, got
    assert api_errors(h, site, status) == before + 1


@pytest.mark.parametrize("mode", ["trickle", "trickle-keep"])
def test_trickling_callers_hold_no_thread(h, pub, mode):
    """Four trickling connections on each site (more than api_threads' 4 in all)."""
    with Watch(h, ["a", "b"]) as w:
        ta = Tenant(pub, mode, pub.socket("a"), 4)
        tb = Tenant(pub, mode, pub.socket("b"), 4)
        try:
            ta.ready()
            tb.ready()
            t0 = time.monotonic()
            ra, rb = ta.result(40), tb.result(40)
            took = time.monotonic() - t0
        finally:
            ta.stop()
            tb.stop()
        w.check()
    print("\n%s: 4 + 4 connections from nobody answered %s and %s, closed after %s and %s s "
          "(%.1f s); %s" % (mode, ra["statuses"], rb["statuses"],
                            [round(c, 1) for c in ra["closed_after"]],
                            [round(c, 1) for c in rb["closed_after"]], took, w.summary()))
    assert ra["statuses"] == [403] * 4 and rb["statuses"] == [200] * 4, (ra, rb)
    for c in ra["closed_after"] + rb["closed_after"]:
        # Without FCGI_KEEP_CONN: closed right after the answer. With it: at the deadline.
        assert c is not None and c < (2.5 if mode == "trickle" else 8.0), (ra, rb)


def test_one_uid_holds_at_most_api_max_connections(h, pub):
    before = api_errors(h, "a", 503)
    with Watch(h, ["a", "b"]) as w:
        with Tenant(pub, "hold", pub.socket("a"), 200) as t:
            got = t.ready()
            time.sleep(1)
            # root, the site's publisher, is another caller: its connections still come in.
            assert h.site("a").api_ok("GET", "/health")["ok"] is True
        w.check()
    print("\nnobody opened %d connections to site a: %d closed at once (api_max_connections "
          "64); %s" % (got["opened"], got["closed_at_once"], w.summary()))
    assert got["opened"] == 200 and got["closed_at_once"] == 136, got
    assert api_errors(h, "a", 503) == before + 136
    # Logged, but at most a line a second per site: a flood of refusals floods no log.
    lines = [ln for ln in h.log_text().splitlines() if "holds api_max_connections (64)" in ln]
    assert 1 <= len(lines) <= 3, lines


def end_request_ids(s, n):
    """Read from s until n END_REQUEST records are in; their request ids, and the bytes read."""
    ids, buf, total = [], b"", 0
    while len(ids) < n:
        chunk = s.recv(1 << 16)
        assert chunk, "closed after %d answers" % len(ids)
        total += len(chunk)
        buf += chunk
        off = 0
        while off + fcgi.HEADER.size <= len(buf):
            _, rtype, rid, clen, plen = fcgi.HEADER.unpack_from(buf, off)
            if off + fcgi.HEADER.size + clen + plen > len(buf):
                break
            if rtype == fcgi.FCGI_END_REQUEST:
                ids.append(rid)
            off += fcgi.HEADER.size + clen + plen
        buf = buf[off:]
    return ids, total


def test_a_caller_that_does_not_read_its_answers_queues_no_more(h):
    """
    48,000 pipelined /stats on one kept connection (about 65 MiB of answers, far over the
    bound below), answers not read for 2 s: Herald writes what the socket takes and reads
    nothing more meanwhile (the caller's writes block), so its memory stays put; once read,
    every answer is there, in order.
    """
    import socket
    n = 48000
    data = b"".join(fcgi.encode_request("GET", "/stats", request_id=i % 65535 + 1,
                                        keep_conn=True) for i in range(n))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # sendall's timeout bounds the whole write, which lasts until Herald has answered nearly
    # all (about 13 s under ASan).
    s.settimeout(60)
    s.connect(h.site_api_socket("a"))
    writer = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    try:
        with Watch(h, ["a", "b"]) as w, RssSampler(h.proc.pid) as rss:
            writer.start()
            time.sleep(2)
            ids, total = end_request_ids(s, n)
            writer.join(60)
            w.check()
        assert ids == [i % 65535 + 1 for i in range(n)]
        print("\n%d pipelined /stats, unread for 2 s: %d answers (%.1f MiB) in order; RSS "
              "%.1f -> peak %.1f MiB; %s" % (n, len(ids), total / 2**20, rss.before / 1024,
                                            rss.peak / 1024, w.summary()))
        # The answers, had they been queued while unread, would be 64 MiB on top of what the
        # requests cost: over either bound. ASan's allocator keeps much of what 48,000
        # requests allocated and freed (46 MiB measured), hence its larger bound.
        assert total / 2**20 > 48
        assert (rss.peak - rss.before) / 1024 < (64 if sanitized() else 8)
    finally:
        s.close()


def test_pipelined_requests_are_answered_in_order_within_a_sites_share(h):
    """With two sites a site's requests go through its share: pipelined ones wait their turn."""
    for site in ("a", "b"):
        assert fcgi.pipelined(h.site_api_socket(site), 7) == [(i + 1, 200) for i in range(7)]


def test_a_busy_site_leaves_threads_for_another(pub):
    """Site a's own publisher floods it from 12 kept connections; site b's publishes are timed."""
    with Herald(sites=sites_for(pub, "busy-"), workers=2, config={"api_threads": "2"}) as h:
        stop = threading.Event()
        done = [0]
        user = uid()

        def flood():
            body = json.dumps({"users": [user], "event": "flood", "data": "x" * 512})
            with fcgi.Connection(h.site_api_socket("a"), keep_conn=True, timeout=5) as c:
                while not stop.is_set():
                    assert c.request("POST", "/publish", body).status == 200
                    done[0] += 1
        threads = [threading.Thread(target=flood, daemon=True) for _ in range(12)]
        with Watch(h, ["b"], period=0.05) as w:
            for t in threads:
                t.start()
            time.sleep(3)
            stop.set()
            for t in threads:
                t.join(10)
            w.check()
        print("\nsite a flooded by 12 callers (%d publishes in 3 s, api_threads 2); %s"
              % (done[0], w.summary()))
        assert done[0] > 100

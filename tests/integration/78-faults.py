"""
78-faults.py -- faults, with the real binary, measuring what is lost and what each side is
told (issue 5). Each test prints its figures (pytest -s shows them) for docs/reliability.md.

- clients that die mid-frame (half a frame header, half a payload, or in the middle of a
  fragmented message; then FIN, RST, or their process SIGKILLed): nobody else is affected,
  nothing is counted as a protocol error (nobody is left to be told), the connections are
  cleaned up, and what was published to those users meanwhile is recovered on reconnect with
  since (recovered true, in order, nothing twice);
- half-open connections (a peer that stops reading and answering, as one that vanished without
  a FIN looks): dropped by the pings within about two intervals; publishes to them in that time
  are answered delivered 1 but never reach anyone, and every one of them is recovered on
  reconnect with since; healthy clients keep receiving promptly meanwhile;
- the API socket flooded: rounds of 300 connections sending garbage and hanging up do not
  delay a well-behaved publisher; 300 connections opened and held do not stop the WebSocket side
  (handshakes, client publishes), and neither do held connections that send nothing, half a
  request, or garbage without hanging up: the API hands a connection to libfcgi only once its
  whole request has arrived (lib/api/gate.c), so none of them holds a thread (figures printed);
- php-fpm SIGKILLed (master and children) during RPCs: every caller is answered rpc_failed or
  rpc_unavailable at once, not after rpc_timeout; calls meanwhile are rpc_unavailable; RPC
  works again once php-fpm is back;
- Herald SIGKILLed and restarted while PHP keeps calling herald_publish(): every publish that
  returned a count before the kill reached every connected tab exactly once; every publish
  while it was down returned false (one error_log line each, and fast); nothing is delivered
  twice; clients coming back with since are told recovered false (history_file is written on
  a clean shutdown only), and get every publish made after they are back.
"""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import fcgi
import rawws
from herald import REPO, Herald, _pdeathsig, wait_connections, without_id
from rawws import next_json, until_stream
from phpfpm import PhpFpm


def user_path(h, user, since=None):
    path = "/ws?token=" + h.token(user)
    return path if since is None else path + "&since=" + since


def user_ws(h, user, since=None):
    return rawws.open_ws(("127.0.0.1", h.port), user_path(h, user, since))


def position(h, user):
    """The user's stream position now, from a connection made and closed for it."""
    with user_ws(h, user, "") as ws:
        f = next_json(ws)
        assert f["op"] == "stream" and f["recovered"] is True, f
        return f["id"]


class Reader(threading.Thread):
    """
    Reads one raw WebSocket on a thread (answering pings), keeping every text message
    with its arrival time, until the server closes it or stop() is called.
    """

    def __init__(self, ws, name):
        super().__init__(daemon=True, name=name)
        self.ws = ws
        self.got = []            # (time.time(), decoded message)
        self.close_code = None
        self.eof = False
        self.error = None
        self._halt = threading.Event()

    def run(self):
        try:
            while not self._halt.is_set():
                try:
                    f = self.ws.recv_data(0.1)
                except rawws.Timeout:
                    continue
                if f.opcode == rawws.OP_CLOSE:
                    self.close_code = f.close_code
                    continue
                self.got.append((time.time(), json.loads(f.payload)))
        except rawws.Closed:
            self.eof = True
        except Exception as e:   # reported by the test through .error
            self.error = e

    def stop(self):
        self._halt.set()
        self.join(5)
        assert not self.is_alive(), "reader %s did not stop" % self.name
        self.ws.close()
        assert self.error is None, "reader %s: %r" % (self.name, self.error)

    def wait_eof(self, timeout=5):
        self.join(timeout)
        assert self.eof, "reader %s: still open after %.0fs" % (self.name, timeout)


# -- clients dying mid-frame ----------------------------------------------------

def frame(payload, fin=True, opcode=rawws.OP_TEXT):
    return rawws.build_frame(opcode, payload, fin=fin)


CUTS = {
    # half of a 16-bit-length header: the server has not even the payload length
    "half-header": frame(b"x" * 1000)[:3],
    # header and mask complete, 300 of 1000 payload bytes
    "half-payload": frame(b"y" * 1000)[:308],
    # a complete first fragment, then half of the continuation
    "mid-message": frame(b'{"op":"subscribe",', fin=False)
    + frame(b'"channel":"x"}' + b" " * 500, opcode=rawws.OP_CONT)[:100],
}

CHILD = r"""
import socket, sys
sys.path.insert(0, sys.argv[1])
import rawws
ws = rawws.RawWS(("127.0.0.1", int(sys.argv[2])), 5)
status, _, body = ws.handshake(sys.argv[3])
assert status == 101, (status, body)
ws.send(bytes.fromhex(sys.argv[4]))
print("sent", flush=True)
sys.stdin.read()     # until killed, leaving the stream frame and m1 unread: an RST
"""


def start_child(h, user, since, cut):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPO / "tests" / "lib"), str(h.port),
         user_path(h, user, since), cut.hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_pdeathsig)
    return proc


def test_clients_dying_mid_frame_hurt_no_one_and_their_users_recover():
    with Herald(workers=2) as h:
        watchers = [Reader(user_ws(h, "watch-%d" % i), "watch-%d" % i) for i in range(3)]
        for r in watchers:
            r.start()
        victims = {}           # user -> (how, cut name, since)
        socks, children = [], []
        try:
            wait_connections(h, 3, timeout=5)
            base = h.stats()
            for how in ("fin", "rst", "killed"):
                for cut in CUTS:
                    user = "victim-%s-%s" % (how, cut)
                    victims[user] = (how, cut, position(h, user))
            wait_connections(h, 3, timeout=5)
            # Every victim connects with since (nothing missed yet) ...
            for user, (how, cut, since) in victims.items():
                if how == "killed":
                    children.append((user, start_child(h, user, since, CUTS[cut])))
                else:
                    ws = user_ws(h, user, since)
                    assert until_stream(ws)[0] == []
                    socks.append((user, how, ws))
            wait_connections(h, 3 + len(victims), timeout=10)
            # ... is sent m1 (which it never reads), then sends its half frame and dies.
            queued = {"m1": 0, "m2": 0, "m3": 0}
            for user in victims:
                queued["m1"] += h.publish([user], "m", 1)
            expect = {user: [1, 2, 3] for user in victims}
            for user, how, ws in socks:
                if how == "fin":
                    # Read m1, so that close() sends a FIN (unread data would make it an RST),
                    # and come back later from m1's id.
                    m1 = next_json(ws)
                    assert without_id(m1) == {"event": "m", "data": 1}
                    victims[user] = (how, victims[user][1], m1["id"])
                    expect[user] = [2, 3]
                ws.send(CUTS[victims[user][1]])
            for user, proc in children:
                line = proc.stdout.readline()
                assert line == b"sent\n", (line, proc.stderr.read())
            h.publish(["watch-0", "watch-1", "watch-2"], "w", 1)
            for user, how, ws in socks:
                if how == "rst":
                    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
                ws.close()
            for user, proc in children:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            for user in victims:               # racing with the deaths: 1 or 0
                queued["m2"] += h.publish([user], "m", 2)
            wait_connections(h, 3, timeout=10)
            for user in victims:
                queued["m3"] += h.publish([user], "m", 3)
            h.publish(["watch-0", "watch-1", "watch-2"], "w", 2)

            s = h.stats()
            assert s["protocol_errors"] == base["protocol_errors"], \
                "a vanished client was counted as a protocol error: %r" % s["protocol_errors"]
            assert s["handshakes_refused"] == base["handshakes_refused"]
            assert h.running()
            # Each victim's user comes back with since and gets what it had not read.
            recovered = 0
            for user, (how, cut, since) in victims.items():
                with user_ws(h, user, since) as ws:
                    replay, f = until_stream(ws)
                    assert [without_id(m) for m in replay] == \
                        [{"event": "m", "data": i} for i in expect[user]], (user, replay)
                    assert f["recovered"] is True and f["id"] == replay[-1]["id"], f
                    recovered += len(replay)
            deadline = time.monotonic() + 3
            while any(len(r.got) < 2 for r in watchers) and time.monotonic() < deadline:
                time.sleep(0.02)
            for r in watchers:
                assert [without_id(m) for _, m in r.got] == \
                    [{"event": "w", "data": 1}, {"event": "w", "data": 2}], r.got
            print("\nmid-frame deaths: %d clients (FIN, RST, SIGKILL x %s); delivered counts "
                  "while dying: m1 %d, m2 %d, m3 %d of %d; recovered on reconnect: %d of %d "
                  "messages, recovered true for all; protocol_errors unchanged"
                  % (len(victims), "/".join(CUTS), queued["m1"], queued["m2"], queued["m3"],
                     len(victims), recovered, sum(len(e) for e in expect.values())))
            assert queued["m1"] == len(victims) and queued["m3"] == 0, queued
        finally:
            for user, proc in children:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                for f in (proc.stdin, proc.stdout, proc.stderr):
                    f.close()
            for _, _, ws in socks:
                ws.close()
            for r in watchers:
                r.stop()


# -- half-open connections -------------------------------------------------------

def test_half_open_clients_are_dropped_by_pings_and_lose_nothing_after_recovery():
    """
    5 clients stop reading and answering (a peer gone without FIN looks the same from
    here: nothing comes back). For 4 s each is published to every 100 ms, as are 2
    healthy clients. ping_interval is 1s.
    """
    n_ghosts, rounds, period = 5, 40, 0.1
    with Herald(workers=2, config={"ping_interval": "1s"}) as h:
        healthy = [Reader(user_ws(h, "alive-%d" % i), "alive-%d" % i) for i in range(2)]
        for r in healthy:
            r.start()
        ghosts = []
        try:
            for i in range(n_ghosts):
                ws = user_ws(h, "ghost-%d" % i, "")
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                ghosts.append((ws, until_stream(ws)[1]["id"]))
            silent_since = time.monotonic()
            queued = [[] for _ in range(n_ghosts)]     # delivered count per publish
            dropped_at = [None] * n_ghosts
            sent_at = {}
            for k in range(rounds):
                t = time.monotonic()
                for i in range(n_ghosts):
                    d = h.publish(["ghost-%d" % i], "g", k)
                    queued[i].append(d)
                    if d == 0 and dropped_at[i] is None:
                        dropped_at[i] = time.monotonic() - silent_since
                sent_at[k] = time.time()
                assert h.publish(["alive-0", "alive-1"], "a", k) == 2
                time.sleep(max(0.0, period - (time.monotonic() - t)))
            assert None not in dropped_at, "a silent client was never dropped: %r" % queued
            s = wait_connections(h, 2, timeout=5)
            assert s["users"] == 2
            # Every publish to a ghost is recovered on reconnect, in order, once.
            for i, (ws, since) in enumerate(ghosts):
                with user_ws(h, "ghost-%d" % i, since) as back:
                    replay, f = until_stream(back)
                    assert [m["data"] for m in replay] == list(range(rounds)), replay
                    assert f["recovered"] is True
            time.sleep(0.3)
            lat = []
            for r in healthy:
                assert [m["data"] for _, m in r.got] == list(range(rounds))
                lat += [t - sent_at[m["data"]] for t, m in r.got]
            lost_live = [sum(q) for q in queued]
            print("\nhalf-open: %d silent clients dropped %.2f-%.2f s after going silent "
                  "(ping_interval 1s); publishes answered delivered=1 after they went silent "
                  "(never read): %s; recovered on reconnect: %d/%d each, recovered true; "
                  "healthy clients got %d/%d, max %.1f ms after the publish returned"
                  % (n_ghosts, min(dropped_at), max(dropped_at), lost_live, rounds, rounds,
                     len(healthy[0].got), rounds, max(lat) * 1000))
            assert 0.9 <= min(dropped_at) and max(dropped_at) <= 3.5, dropped_at
            assert max(lat) < 1.0
        finally:
            for ws, _ in ghosts:
                ws.close()
            for r in healthy:
                r.stop()


# -- the API socket flooded -------------------------------------------------------

GARBAGE = [
    b"GET /publish HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00" * 64,
    os.urandom(256).replace(b"\x01", b"\x02"),        # never a version-1 record header
    b"\xff" * 8 + b'{"users":["x"],"event":"e"}',
]


def api_publish_timed(h, user, data, timeout):
    """One publish to user; (seconds it took, delivered or the exception)."""
    t0 = time.monotonic()
    try:
        status, _, j = h.api("POST", "/publish", {"users": [user], "event": "p", "data": data},
                             timeout=timeout)
        assert status == 200, (status, j)
        return time.monotonic() - t0, j["delivered"]
    except (fcgi.FcgiError, OSError) as e:
        return time.monotonic() - t0, e


# One caller (uid) may hold api_max_connections (64) per site; these floods come from the
# test's own uid, the publisher's too, so the limit is raised: what they check is that held
# connections take no thread. 81-hostile-api.py checks the limit itself, with another uid.
HOLD_LIMIT = {"api_max_connections": "1000"}


def garbage_flood(h, stop, counts, per_round=300):
    """
    Until stop: rounds of per_round API connections open at once, each sending garbage;
    each is hung up as soon as Herald has closed its end (counted in counts["unclosed"] if
    Herald has not within 5 s). Waiting for Herald keeps the flood under the unix backlog
    (1024): past it a connect fails at once with EAGAIN, for a well-behaved caller too.
    """
    while not stop.is_set():
        socks, left = [], []
        try:
            for i in range(per_round):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                socks.append(s)
                s.settimeout(2)
                s.connect(h.api_socket)
                try:
                    s.sendall(GARBAGE[i % len(GARBAGE)])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                counts["sent"] += 1
            left = list(socks)
            deadline = time.monotonic() + 5
            while left and time.monotonic() < deadline:
                ready, _, _ = select.select(left, [], [], 0.1)
                for s in ready:
                    try:
                        data = s.recv(4096)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        left.remove(s)
                        s.close()      # at once: libfcgi's close waits for ours
            counts["unclosed"] += len(left)
        finally:
            for s in socks:
                s.close()
        counts["rounds"] += 1


def test_api_garbage_flood_does_not_delay_a_well_behaved_publisher():
    """
    A thread opens 300 API connections of garbage at a time, round after round (each hung
    up once Herald has dropped it), while a caller publishes 20 times, 25 ms apart, and a
    WebSocket client reads.
    """
    with Herald(workers=2, config=HOLD_LIMIT) as h:
        watcher = Reader(user_ws(h, "watcher"), "watcher")
        watcher.start()
        stop = threading.Event()
        counts = {"sent": 0, "rounds": 0, "unclosed": 0}
        flooder = threading.Thread(target=garbage_flood, args=(h, stop, counts), daemon=True)
        try:
            before = h.stats()["api_requests"]
            t0 = time.monotonic()
            flooder.start()
            results = []
            for k in range(20):
                time.sleep(0.025)
                results.append(api_publish_timed(h, "watcher", k, 5))
            stop.set()
            flooder.join(10)
            flood_time = time.monotonic() - t0
            took = [t for t, _ in results]
            assert [d for _, d in results] == [1] * 20, results
            deadline = time.monotonic() + 3
            while len(watcher.got) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [m["data"] for _, m in watcher.got] == list(range(20))
            print("\napi garbage flood: %d garbage connections in %d rounds of 300 in %.2f s; "
                  "20 publishes meanwhile: max %.1f ms, all delivered"
                  % (counts["sent"], counts["rounds"], flood_time, max(took) * 1000))
            assert counts["rounds"] >= 2 and counts["unclosed"] == 0, counts
            assert max(took) < 1.0, took
            assert h.api_ok("GET", "/health")["ok"] is True
            assert h.stats()["api_requests"] - before >= 21
        finally:
            stop.set()
            flooder.join(5)
            watcher.stop()


HOLDS = {
    "idle": b"",
    "half-request": fcgi.begin_request() + fcgi.record(fcgi.FCGI_PARAMS, 1, b"\x0e")[:10],
    "garbage": GARBAGE[0],
}


def hold_api_connections(h, n, data):
    held = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(h.api_socket)
        if data:
            s.sendall(data)
        held.append(s)
    return held


def test_api_flood_of_held_connections_does_not_stop_the_websocket_side():
    cfg = {"public_channels": "room:*", "client_publish": "room:*", **HOLD_LIMIT}
    with Herald(workers=2, config=cfg) as h:
        a, b = user_ws(h, "a"), user_ws(h, "b")
        held = []
        try:
            for ws in (a, b):
                ws.send_frame(rawws.OP_TEXT, json.dumps(
                    {"op": "subscribe", "channel": "room:1", "ref": 1}))
                assert next_json(ws)["op"] == "ok"
            held = hold_api_connections(h, 300, b"")
            time.sleep(0.2)
            t0 = time.monotonic()
            for k in range(20):
                a.send_frame(rawws.OP_TEXT, json.dumps(
                    {"op": "publish", "channel": "room:1", "event": "chat", "data": k}))
                m = next_json(b)
                assert (m["data"], m["from"]) == (k, "a"), m
            # New WebSocket clients are still admitted and served.
            with user_ws(h, "c", "") as c:
                assert until_stream(c)[1]["recovered"] is True
            print("\napi held-connection flood: 300 idle API connections; 20 client publishes "
                  "between two browsers took %.1f ms in all; a new handshake succeeded"
                  % ((time.monotonic() - t0) * 1000))
        finally:
            for s in held:
                s.close()
            a.close()
            b.close()


@pytest.mark.parametrize("hold", list(HOLDS))
def test_api_flood_of_held_connections_does_not_stall_a_well_behaved_publisher(hold):
    with Herald(workers=2, config=HOLD_LIMIT) as h:
        watcher = Reader(user_ws(h, "watcher"), "watcher")
        watcher.start()
        held = []
        try:
            held = hold_api_connections(h, 300, HOLDS[hold])
            took, got = api_publish_timed(h, "watcher", 1, 3)
            print("\napi %s flood: 300 held API connections (api_threads 4); a publish "
                  "%s after %.2f s" % (hold, "answered" if got == 1 else "NOT answered (%s)"
                                       % got, took))
            assert got == 1 and took < 2.0, (took, got)
        finally:
            for s in held:
                s.close()
            watcher.stop()


# -- php-fpm killed during RPCs ------------------------------------------------------

def rpc_frame(ref, method, data=None):
    return json.dumps({"op": "rpc", "method": method, "data": data, "ref": ref})


def test_php_fpm_killed_during_rpcs_answers_every_caller_at_once_then_recovers():
    fpm = PhpFpm(children=3)
    fpm.start()
    h = None
    clients = []
    try:
        h = fpm.herald({"rpc_timeout": "10s"}, workers=2)
        clients = [user_ws(h, "caller-%d" % i) for i in range(3)]
        bystander = user_ws(h, "bystander")
        clients.append(bystander)
        for ws in clients[:3]:
            ws.send_frame(rawws.OP_TEXT, rpc_frame(1, "slow", {"ms": 8000}))
        calls = fpm.wait_calls(3, timeout=5, method="slow")
        assert len(calls) == 3, calls
        assert h.stats()["rpc"]["inflight"] == 3
        before = h.stats()
        pids = [fpm.proc.pid] + fpm.child_pids()
        t_kill = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        answers, took = [], []
        for ws in clients[:3]:
            ans = next_json(ws, timeout=5)
            took.append(time.monotonic() - t_kill)
            answers.append(ans)
        fpm.proc.wait(5)
        codes = sorted(a["code"] for a in answers)
        for a in answers:
            assert a["op"] == "error" and a["ref"] == 1, a
            assert a["code"] in ("rpc_failed", "rpc_unavailable"), a
        after = h.stats()
        assert after["rpc"]["inflight"] == 0
        assert after["rpc"]["failed"] - before["rpc"]["failed"] == 3
        errs = {k: after["client_errors"][k] - before["client_errors"][k]
                for k in ("rpc_failed", "rpc_unavailable")}
        assert sum(errs.values()) == 3, errs
        # While php-fpm is down: rpc_unavailable at once; the connections stay open.
        t0 = time.monotonic()
        clients[0].send_frame(rawws.OP_TEXT, rpc_frame(2, "echo", 1))
        down = next_json(clients[0])
        down_took = time.monotonic() - t0
        assert (down["op"], down["ref"], down["code"]) == ("error", 2, "rpc_unavailable"), down
        assert h.publish(["bystander"], "still", 1) == 1
        assert without_id(next_json(bystander)) == {"event": "still", "data": 1}
        # php-fpm is back: RPC works again on the same connections.
        fpm.stop()
        fpm.start()
        for i, ws in enumerate(clients[:3]):
            ws.send_frame(rawws.OP_TEXT, rpc_frame(3, "echo", i))
            ans = next_json(ws, timeout=5)
            assert ans["op"] == "reply" and ans["ref"] == 3 and ans["data"]["data"] == i, ans
        print("\nphp-fpm SIGKILLed with 3 RPCs in flight (rpc_timeout 10s): answered %s "
              "after %.0f-%.0f ms; a call while down: rpc_unavailable after %.1f ms; "
              "RPC back after php-fpm restarted" % (codes, min(took) * 1000, max(took) * 1000,
                                                   down_took * 1000))
        assert max(took) < 1.0, took
        assert down_took < 1.0
    finally:
        for ws in clients:
            ws.close()
        try:
            if h is not None:
                h.stop()
        finally:
            if h is not None:
                h.cleanup()
            fpm.cleanup()


# -- Herald SIGKILLed and restarted under a publishing PHP --------------------------

PUBLISHER = r"""<?php
declare(strict_types=1);
require %(herald_php)s;
$stop = $argv[1];
$end = microtime(true) + (float) $argv[2];
for ($i = 0; microtime(true) < $end && !file_exists($stop); $i++) {
    $t0 = microtime(true);
    $r = herald_publish(['ann', 'bob'], 'seq', ['n' => $i]);
    $t1 = microtime(true);
    echo json_encode(['n' => $i, 't0' => $t0, 't1' => $t1, 'r' => $r]), "\n";
    usleep(20000);
}
"""


def test_herald_killed_and_restarted_while_php_publishes():
    tabs = [("ann", 1), ("ann", 2), ("bob", 1)]
    with Herald(workers=2, config={"history_file": "{dir}/history"}) as h:
        d = h.dir
        script = os.path.join(d, "publisher.php")
        with open(script, "w") as f:
            f.write(PUBLISHER % {"herald_php": json.dumps(
                str(REPO / "php-client" / "herald.php"))})
        stop_file, out_path, err_log = (os.path.join(d, n) for n in
                                        ("stop", "published.jsonl", "php-errors.log"))
        first, second = {}, {}
        php = None
        try:
            for user, n in tabs:
                ws = user_ws(h, user, "")
                assert until_stream(ws)[1]["recovered"] is True
                first[(user, n)] = Reader(ws, "%s-%d" % (user, n))
                first[(user, n)].start()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
            env["HERALD_SOCKET"] = h.api_socket
            with open(out_path, "wb") as out:
                php = subprocess.Popen(
                    ["/usr/bin/php", "-d", "error_log=" + err_log, "-d",
                     "display_errors=stderr", script, stop_file, "15"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, env=env,
                    preexec_fn=_pdeathsig)
            time.sleep(1.5)

            t_kill0 = time.time()
            h.proc.send_signal(signal.SIGKILL)
            t_kill1 = time.time()
            h.proc.wait(5)
            assert h.stop(signal.SIGKILL, expect_rc=-signal.SIGKILL) == -signal.SIGKILL
            for r in first.values():
                r.wait_eof(5)
            time.sleep(0.7)                        # down: PHP keeps publishing
            t_restart = time.time()
            h.restart()
            t_ready = time.time()
            time.sleep(0.5)                        # up, nobody connected yet
            old_last = {k: r.got[-1][1]["id"] for k, r in first.items()}
            reconnected = {}
            for key in tabs:
                ws = user_ws(h, key[0], old_last[key])
                replay, f = until_stream(ws)
                reconnected[key] = (time.time(), replay, f)
                second[key] = Reader(ws, "%s-%d-again" % key)
                second[key].start()
            time.sleep(1.0)
            with open(stop_file, "w"):
                pass
            _, php_err = php.communicate(timeout=10)
            assert php.returncode == 0 and php_err == b"", (php.returncode, php_err)
            time.sleep(0.3)
        finally:
            if php is not None and php.poll() is None:
                php.kill()
                php.wait(5)
            for r in list(first.values()) + list(second.values()):
                r.stop()

        rows = [json.loads(line) for line in open(out_path)]
        with open(err_log) if os.path.exists(err_log) else open(os.devnull) as f:
            log_lines = f.read().splitlines()
        # A publish answered before the kill signal was sent; one still running when it was
        # sent (either answer, either fate: the answer may be lost after the frames were
        # written); one started after it.
        answered = [r for r in rows if r["t1"] < t_kill0]
        in_flight = [r for r in rows if r["t1"] >= t_kill0 and r["t0"] <= t_kill1]
        later = [r for r in rows if r["t0"] > t_kill1]
        failed = [r for r in rows if r["r"] is False]
        assert all(r["r"] == 3 for r in answered), [r for r in answered if r["r"] != 3]
        assert failed, "no publish fell in the downtime"
        assert all(r["t0"] < t_ready for r in failed), "a publish failed after the restart"
        assert all(r["r"] is False for r in later if r["t1"] < t_restart), \
            "a publish succeeded while Herald was down"
        assert all(r["r"] is not False for r in rows if r["t0"] > t_ready)
        assert len([ln for ln in log_lines if "herald: publish failed: " in ln]) == len(failed)
        assert len(log_lines) == len(failed), log_lines[:5]
        fail_took = max(r["t1"] - r["t0"] for r in failed)
        ok_later = [r for r in later if r["r"] is not False]

        # What each tab received.
        must_not = {r["n"] for r in failed if r not in in_flight}
        flight_n = {r["n"] for r in in_flight}
        report = []
        for key in tabs:
            got1 = [m["data"]["n"] for _, m in first[key].got]
            back_at, replay, f = reconnected[key]
            got2 = [m["data"]["n"] for _, m in second[key].got]
            assert f["recovered"] is False and replay == [], (key, f, replay)
            assert f["id"].split(":")[0] != old_last[key].split(":")[0], "same epoch"
            assert got1 == sorted(set(got1)) and got2 == sorted(set(got2)), "out of order/twice"
            assert not set(got1) & set(got2), "a message delivered twice: %r" % (
                set(got1) & set(got2))
            missing = {r["n"] for r in answered} - set(got1)
            assert not missing, "%s: answered before the kill, never received: %r" % (
                key, sorted(missing))
            assert set(got1) <= {r["n"] for r in answered} | flight_n, sorted(got1)
            assert not (set(got1) | set(got2)) & must_not, "a failed publish was delivered"
            after_back = {r["n"] for r in ok_later if r["t0"] > back_at}
            before_back = {r["n"] for r in ok_later if r["t1"] < back_at - 0.2}
            assert after_back <= set(got2), sorted(after_back - set(got2))
            assert not before_back & set(got2), "replayed after recovered false"
            report.append("%s tab %d: %d before the kill (%d of them in flight), %d after "
                          "coming back" % (key[0], key[1], len(got1),
                                           len(set(got1) & flight_n), len(got2)))
        s = h.stats()
        assert s["recoveries"] == {"ok": 0, "failed": 3}, s["recoveries"]
        print("\nSIGKILL under load: %d herald_publish calls every 20 ms; %d answered 3 before "
              "the kill and reached all 3 tabs; %d in flight at the kill (answered %s); while "
              "down (%.2f s from kill to ready) %d returned false, each within %.1f ms, with "
              "%d error_log lines; after the restart %d returned a count (%d of them 0: the "
              "tabs were not back yet, and were not replayed); on reconnect every tab was told "
              "recovered false; delivered twice: 0; %s"
              % (len(rows), len(answered), len(in_flight), [r["r"] for r in in_flight],
                 t_ready - t_kill0, len(failed), fail_took * 1000, len(log_lines),
                 len(ok_later), len([r for r in ok_later if r["r"] == 0]), "; ".join(report)))

"""
76-limits.py -- the limits that keep one client, one address or one flood from
taking Herald away from everyone else (issue 5), against the real binary:

- max_connections: the next handshake gets 503 {"ok":false,"error":"too_many_connections"},
  counted in /stats handshakes_refused, across both workers; refusals hold no slot, and a
  slot frees as soon as a connection closes;
- max_connections_per_ip: per client address (clients bound to 127.0.0.1, 127.0.0.2 and
  127.0.0.3 count separately), the refused address named in the log. A trusted proxy's
  client (127.0.0.1 is one by default) is counted at the upgrade and refused with 429
  too_many_from_address; any other peer is counted from accept, handshaking or open, and
  refused by closing its socket at once, unread (so half-sent heads cannot pile up: 82-hostile-ws),
  counted under the same name;
- X-Forwarded-For names the client only when the peer is in trusted_proxies: walked from the
  right past trusted hops ("1.2.3.4, 127.0.0.1" counts 1.2.3.4, and an entry a client wrote
  further left is not believed); from any other peer the header is ignored and the peer counts;
- the handshake deadline under a crowd: thirty slowloris clients dripping their heads a byte
  at a time are all answered 408 and closed after handshake_timeout, all counted, and while
  they hang on they hold no max_connections slot, so real clients still connect and receive
  (the single-client cases, partial head, drip and silence, are in 10-handshake.py);
- command_rate/command_burst: commands past the burst are answered
  {"op":"error","ref":R,"code":"rate_limited"} and dropped (a rate-limited subscribe does not
  subscribe), counted in /stats client_errors.rate_limited; the connection stays open, a
  full bucket is back after burst/rate seconds, a client at the rate is never limited, and
  another connection's bucket is its own.

max_message_size (close 1009, counted under protocol_errors) is proven in 20-frames.py
(test_one_frame_over_max_message_size_is_1009 and the two tests after it).
"""

import json
import re
import select
import socket
import time
import uuid

import rawws
from herald import Bystander, Herald, stat, uid, wait_connections, without_id
from wscmd import ErrorCounts, error_msg

HERALD_CONFIG = {
    "public_channels": "pub:*",
    "command_rate": "5",
    "command_burst": "10",
}
HERALD_WORKERS = 2


class SourceWS(rawws.RawWS):
    """A rawws.RawWS whose socket is bound to a chosen loopback source address."""

    def __init__(self, address, source, timeout=3.0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.bind((source, 0))
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        self.address = address
        self.timeout = timeout
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.key = None


CLOSED = "closed at once"   # handshake()'s status for a socket refused at accept, unanswered


def handshake(h, user, source="127.0.0.1", xff=None):
    """
    One handshake as `user` from `source`, with an X-Forwarded-For header if given.
    Returns (status, body, ws): ws is open on 101, closed otherwise (after checking
    that a refusal is JSON and that the server hangs up). A socket Herald closed
    without answering (refused at accept) gives (CLOSED, None, None).
    """
    ws = SourceWS(("127.0.0.1", h.port), source)
    try:
        headers = {"X-Forwarded-For": xff} if xff is not None else None
        try:
            status, hdrs, body = ws.handshake("/ws?token=" + h.token(user), headers)
        except rawws.Closed:
            ws.close()
            return CLOSED, None, None
        if status == 101:
            assert hdrs["Sec-WebSocket-Accept"] == rawws.accept_key(ws.key)
            return status, body, ws
        assert hdrs.get("Content-Type", "").startswith("application/json"), dict(hdrs)
        assert ws.wait_eof(3), "connection still open after a %d refusal" % status
    except BaseException:
        ws.close()
        raise
    ws.close()
    return status, json.loads(body), None


def refused_count(h, reason):
    return h.stats()["handshakes_refused"][reason]


def receives(h, ws, user):
    """ws (the only connection of `user`) gets a publish to that user."""
    tag = uuid.uuid4().hex[:8]
    assert h.publish([user], "limits.check", tag) == 1
    got = without_id(json.loads(ws.recv_data(3).payload))
    assert got == {"event": "limits.check", "data": tag}, got


def log_refusals(h, reason):
    """The addresses the log says were refused for `reason`, in order."""
    return re.findall(r"conn: refused (\S+): %s" % reason, h.log_text())


# -- max_connections --------------------------------------------------------

def test_max_connections_refuses_with_503_counts_it_and_a_closed_slot_is_reused():
    with Herald(workers=2, config={"max_connections": "6"}) as h:
        open_ws = {}
        try:
            for i in range(6):      # over 2 workers (SO_REUSEPORT): the limit is daemon-wide
                user = "full-%d" % i
                st, body, ws = handshake(h, user)
                assert st == 101, (i, body)
                open_ws[user] = ws
            wait_connections(h, 6)
            before = refused_count(h, "too_many_connections")
            for _ in range(5):
                st, body, _ = handshake(h, uid("late"))
                assert (st, body) == (503, {"ok": False, "error": "too_many_connections"})
            s = h.wait_stat("handshakes_refused.too_many_connections", before + 5)
            assert stat(s, "handshakes_refused.too_many_connections") == before + 5
            assert s["connections"] == 6, "a refused handshake took a slot"
            for user, ws in open_ws.items():
                receives(h, ws, user)

            # One leaves: its slot is free once Herald has seen it go, and only one slot.
            open_ws.pop("full-3").close()
            wait_connections(h, 5)
            st, body, ws = handshake(h, "full-3b")
            assert st == 101, body
            open_ws["full-3b"] = ws
            receives(h, ws, "full-3b")
            st, body, _ = handshake(h, uid("late"))
            assert (st, body) == (503, {"ok": False, "error": "too_many_connections"})
            assert refused_count(h, "too_many_connections") == before + 6
        finally:
            for ws in open_ws.values():
                ws.close()
        wait_connections(h, 0)
        # Every slot came back: the daemon takes max_connections again.
        again = [handshake(h, "again-%d" % i) for i in range(6)]
        try:
            assert [st for st, _, _ in again] == [101] * 6
        finally:
            for _, _, ws in again:
                if ws is not None:
                    ws.close()


# -- max_connections_per_ip -------------------------------------------------

def test_max_connections_per_ip_counts_each_client_address_separately():
    with Herald(workers=2, config={"max_connections_per_ip": "2"}) as h:
        held = []
        try:
            before = refused_count(h, "too_many_from_address")
            # 127.0.0.1 is a trusted proxy (its client 10.1.1.1 is counted at the upgrade:
            # 429); 127.0.0.2 is not (counted from accept: its third socket is closed
            # unanswered).
            for source, xff, refusal in (
                    ("127.0.0.1", "10.1.1.1", (429, {"ok": False,
                                                     "error": "too_many_from_address"})),
                    ("127.0.0.2", None, (CLOSED, None))):
                for i in range(2):
                    st, body, ws = handshake(h, "%s-%d" % (source, i), source, xff)
                    assert st == 101, (source, i, body)
                    held.append(ws)
                st, body, _ = handshake(h, uid("third"), source, xff)
                assert (st, body) == refusal, source
            st, body, ws = handshake(h, "127.0.0.3-0", "127.0.0.3")
            assert st == 101, body
            held.append(ws)
            s = h.wait_stat("handshakes_refused.too_many_from_address", before + 2)
            assert stat(s, "handshakes_refused.too_many_from_address") == before + 2
            assert stat(s, "handshakes_refused.too_many_connections") == 0
            assert s["connections"] == 5
            assert log_refusals(h, "too_many_from_address") == ["10.1.1.1", "127.0.0.2"]
            # Everyone admitted is served.
            users = ["127.0.0.1-0", "127.0.0.1-1", "127.0.0.2-0", "127.0.0.2-1", "127.0.0.3-0"]
            for user, ws in zip(users, held):
                receives(h, ws, user)
            # A connection from 127.0.0.2 closes: that address may connect once more.
            held.pop(2).close()
            wait_connections(h, 4)
            st, body, ws = handshake(h, "127.0.0.2-2", "127.0.0.2")
            assert st == 101, body
            held.append(ws)
            st, body, _ = handshake(h, uid("again"), "127.0.0.2")
            assert st == CLOSED, body
            assert refused_count(h, "too_many_from_address") == before + 3
        finally:
            for ws in held:
                ws.close()


def test_a_trusted_proxy_that_names_no_client_is_not_limited_per_address():
    """
    Its clients cannot be told apart: counting them as one address would let one of them
    use up everyone's connect_rate. It is logged once, pointing at the nginx snippet.
    """
    cfg = {"max_connections_per_ip": "1", "connect_rate": "1", "connect_burst": "1"}
    with Herald(workers=2, config=cfg) as h:
        held = []
        try:
            for i in range(4):
                st, body, ws = handshake(h, uid("noxff"), "127.0.0.1")
                assert st == 101, (i, body)
                held.append(ws)
            assert refused_count(h, "too_many_from_address") == 0
            assert refused_count(h, "too_fast") == 0
            warned = [ln for ln in h.log_text().splitlines()
                      if "names no client in X-Forwarded-For" in ln]
            assert len(warned) == 1 and "127.0.0.1" in warned[0], warned
        finally:
            for ws in held:
                ws.close()


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client():
    cfg = {"max_connections_per_ip": "1", "trusted_proxies": "127.0.0.1"}
    with Herald(workers=2, config=cfg) as h:
        held = []

        def expect(status, xff, source="127.0.0.1"):
            st, body, ws = handshake(h, uid("xff"), source, xff)
            assert st == status, (xff, source, st, body)
            if ws is not None:
                held.append(ws)

        try:
            expect(101, "10.0.0.1")                     # the proxy's client 10.0.0.1
            expect(429, "10.0.0.1")                     # ... has its one connection
            expect(101, "10.0.0.2")                     # another client behind the proxy
            expect(101, "1.2.3.4, 127.0.0.1")           # past a trusted hop: 1.2.3.4
            expect(429, "1.2.3.4")                      # the same client, direct through
            expect(429, "9.9.9.9, 1.2.3.4, 127.0.0.1")  # 9.9.9.9 is what 1.2.3.4 claimed
            expect(101, None)                           # the proxy naming no client
            expect(101, "10.0.0.3", "127.0.0.2")        # an untrusted peer: counted as itself
            expect(CLOSED, "10.0.0.4", "127.0.0.2")     # ... whatever it claims (at accept)
            assert log_refusals(h, "too_many_from_address") == \
                ["10.0.0.1", "1.2.3.4", "1.2.3.4", "127.0.0.2"]
            s = h.stats()
            assert s["connections"] == 5
            assert stat(s, "handshakes_refused.too_many_from_address") == 4
        finally:
            for ws in held:
                ws.close()


def test_x_forwarded_for_from_a_peer_not_in_trusted_proxies_is_ignored():
    # 127.0.0.1 is no trusted proxy here: it is counted as itself from accept, and its
    # second socket is closed unanswered whatever its header says.
    cfg = {"max_connections_per_ip": "1", "trusted_proxies": "10.9.9.9"}
    with Herald(workers=2, config=cfg) as h:
        st, body, first = handshake(h, uid("a"), xff="10.0.0.1")
        try:
            assert st == 101, body
            st, body, _ = handshake(h, uid("b"), xff="10.0.0.2")
            assert (st, body) == (CLOSED, None)
            time.sleep(1.1)     # refusals at accept are logged at most once a second
            st, body, _ = handshake(h, uid("c"), xff="10.0.0.1, 10.9.9.9")
            assert st == CLOSED, body
            assert log_refusals(h, "too_many_from_address") == ["127.0.0.1", "127.0.0.1"]
            assert refused_count(h, "too_many_from_address") == 2
        finally:
            first.close()


# -- the handshake deadline under a crowd -----------------------------------

def test_a_crowd_of_slowloris_clients_is_cut_off_and_holds_no_slot():
    """
    30 clients drip a head one byte per 150 ms round. handshake_timeout is 1s: each gets
    408 and is closed by about 1-2 s, all 30 are counted, and meanwhile two real clients
    connect (max_connections = 2: a pending handshake is not a connection) and receive.
    """
    n = 30
    cfg = {"handshake_timeout": "1s", "max_connections": "2"}
    with Herald(workers=2, config=cfg) as h:
        before = refused_count(h, "timeout")
        head = ("GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "X-Slow: " % h.token("slow")).encode() + b"s" * 400
        slow = [h.raw(timeout=5) for _ in range(n)]
        real = []
        try:
            for ws in slow:
                ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.monotonic()
            answered = {}
            sent = 0
            while len(answered) < n and time.monotonic() - t0 < 5:
                for ws in slow:
                    if ws not in answered and sent < len(head):
                        ws.send(head[sent:sent + 1])
                sent += 1
                if sent == 2:
                    # Real clients, while the crowd hangs on.
                    for i in range(2):
                        st, body, ws = handshake(h, "real-%d" % i)
                        assert st == 101, body
                        real.append(ws)
                    for i, ws in enumerate(real):
                        receives(h, ws, "real-%d" % i)
                ready, _, _ = select.select([ws.sock for ws in slow if ws not in answered],
                                            [], [], 0.15)
                for ws in slow:
                    if ws.sock in ready:
                        answered[ws] = time.monotonic() - t0
            assert len(answered) == n, "%d of %d slow clients still open after %.1fs" % (
                n - len(answered), n, time.monotonic() - t0)
            for ws in slow:
                st, _, body = ws.read_response(timeout=2)
                assert (st, json.loads(body)) == (408, {"ok": False, "error": "timeout"})
                assert ws.wait_eof(2)
            times = sorted(answered.values())
            print("\nslowloris: %d clients answered 408 after %.2f-%.2f s (handshake_timeout 1s)"
                  % (n, times[0], times[-1]))
            assert 0.8 <= times[0] and times[-1] <= 3.0, times
            s = h.wait_stat("handshakes_refused.timeout", before + n)
            assert stat(s, "handshakes_refused.timeout") == before + n
            assert s["connections"] == 2
            for i, ws in enumerate(real):
                receives(h, ws, "real-%d" % i)
            # The two real clients are the whole quota: slow ones never held any of it.
            st, body, _ = handshake(h, uid("third"))
            assert (st, body) == (503, {"ok": False, "error": "too_many_connections"})
        finally:
            for ws in slow + real:
                ws.close()


# -- command_rate and command_burst (this module's Herald: 5/s, burst 10) ---

def command_frames(cmds):
    """All the commands as masked text frames in one byte string (one write)."""
    return b"".join(rawws.build_frame(rawws.OP_TEXT, json.dumps(c)) for c in cmds)


def answers(ws, n, timeout=5):
    """The next n data frames of ws, decoded."""
    return [json.loads(ws.recv_data(timeout).payload) for _ in range(n)]


def subs(channels, first_ref):
    return [{"op": "subscribe", "channel": ch, "ref": first_ref + i}
            for i, ch in enumerate(channels)]


def check_answers(got, first_ref, n_ok):
    """Answers in order: n_ok oks, then rate_limited errors, each carrying its ref."""
    for i, ans in enumerate(got):
        ref = first_ref + i
        if i < n_ok:
            assert without_id(ans) == {"op": "ok", "ref": ref}, (i, ans)
        else:
            error_msg(ans, "rate_limited", ref)


def test_commands_over_the_burst_are_rate_limited_dropped_and_counted(herald):
    user = uid("chatty")
    channels = ["pub:%s-%d" % (user, i) for i in range(30)]
    bystander = Bystander(herald)
    ws = herald.raw_ws(user)
    try:
        counts = ErrorCounts(herald)
        # 30 subscribes in one write: the burst (10) passes, 20 are refused with their refs;
        # a 31st command without a ref is refused without one.
        ws.send(command_frames(subs(channels, 1) + [{"op": "unsubscribe", "channel": "pub:x"}]))
        got = answers(ws, 31)
        check_answers(got[:30], 1, 10)
        error_msg(got[30], "rate_limited")
        counts.check("rate_limited", 21)
        # The refused ones were dropped: only the first 10 channels have a subscriber.
        for i, ch in enumerate(channels):
            n = herald.api_ok("POST", "/publish", {"channel": ch, "event": "e"})["delivered"]
            assert n == (1 if i < 10 else 0), (ch, n)
        for i in range(10):
            got = without_id(json.loads(ws.recv_data(3).payload))
            assert got == {"channel": channels[i], "event": "e", "data": None}, got
        assert ws.alive(), "a rate-limited connection was closed"
        bystander.check()

        # After burst/rate = 2 s the bucket is full again: 10 pass, the 11th does not.
        time.sleep(2.2)
        counts = ErrorCounts(herald)
        ws.send(command_frames(subs(channels[10:21], 100)))
        check_answers(answers(ws, 11), 100, 10)
        counts.check("rate_limited", 1)
    finally:
        ws.close()
        bystander.close()


def test_a_client_at_the_command_rate_is_never_limited(herald):
    ws = herald.raw_ws(uid("steady"))
    try:
        counts = ErrorCounts(herald)
        # 4/s for 3 s, after using up the whole burst first: refill alone must carry it.
        ws.send(command_frames(subs(["pub:steady-%d" % i for i in range(10)], 1)))
        check_answers(answers(ws, 10), 1, 10)
        for i in range(12):
            time.sleep(0.25)
            ws.send(command_frames([{"op": "unsubscribe", "channel": "pub:steady-%d" % i,
                                     "ref": 100 + i}]))
            assert answers(ws, 1)[0] == {"op": "ok", "ref": 100 + i}
        counts.check("rate_limited", 0)
    finally:
        ws.close()


def test_each_connection_has_its_own_bucket(herald):
    user = uid("same-user")
    a = herald.raw_ws(user)
    b = herald.raw_ws(user)            # the same user's other tab
    other = herald.raw_ws(uid("other"))
    try:
        counts = ErrorCounts(herald)
        a.send(command_frames(subs(["pub:a-%d" % i for i in range(25)], 1)))
        b.send(command_frames(subs(["pub:b-%d" % i for i in range(10)], 1)))
        other.send(command_frames(subs(["pub:o-%d" % i for i in range(10)], 1)))
        check_answers(answers(a, 25), 1, 10)
        check_answers(answers(b, 10), 1, 10)
        check_answers(answers(other, 10), 1, 10)
        counts.check("rate_limited", 15)
        for ws in (a, b, other):
            assert ws.alive()
    finally:
        for ws in (a, b, other):
            ws.close()

"""
10-handshake.py -- the WebSocket opening handshake, as a browser or a broken
client sees it: the token in the query or as a subprotocol, every refusal in
the contract (status, JSON body, the /stats counter named after the reason),
the handshake timeout, anonymous clients, and bytes pipelined behind the head.

Every refusal test also checks that a client connected beforehand (the
bystander) still receives a publish afterwards.
"""

import base64
import json
import os
import select
import socket
import time

import pytest

import rawws
from herald import Herald, expect_nothing, recv_json, stat, without_id

GOOD_ORIGINS = ("http://good.example", "https://app.example:8443")

HERALD_CONFIG = {
    "allowed_origins": ", ".join(GOOD_ORIGINS),
    "handshake_timeout": "1s",
}


def tok_path(h, user="alice", **kw):
    return "/ws?token=" + h.token(user, **kw)


def key_of(n):
    return base64.b64encode(os.urandom(n)).decode()


def assert_refused(h, status, reason, path=None, **kw):
    """
    Send one handshake; assert the status, the JSON error body, that the
    server then closes the connection, and that handshakes_refused.<reason>
    went up by exactly one. Returns the response headers.
    """
    before = h.stats()["handshakes_refused"][reason]
    with h.raw() as ws:
        st, hdrs, body = ws.handshake(path if path is not None else tok_path(h), **kw)
        assert st == status, "expected %d, got %d %r" % (status, st, body)
        assert hdrs.get("Content-Type", "").startswith("application/json"), dict(hdrs)
        assert json.loads(body) == {"ok": False, "error": reason}
        assert ws.wait_eof(3), "connection still open after a %d refusal" % status
    s = h.wait_stat("handshakes_refused." + reason, before + 1)
    assert stat(s, "handshakes_refused." + reason) == before + 1
    return hdrs


# -- accepted -------------------------------------------------------------

def test_token_in_query_is_accepted_and_receives(herald, run):
    async def go():
        async with herald.connect(herald.token("q-user")) as ws:
            assert ws.subprotocol is None
            assert herald.publish(["q-user"], "order.shipped", {"id": 1}) == 1
            assert await recv_json(ws) == {"event": "order.shipped", "data": {"id": 1}}
    run(go())


def test_token_as_subprotocol_is_accepted_and_server_selects_herald(herald, run):
    async def go():
        async with herald.connect(herald.token("p-user"), via="protocol") as ws:
            assert ws.subprotocol == "herald"
            assert herald.publish(["p-user"], "hello", [1, 2]) == 1
            assert await recv_json(ws) == {"event": "hello", "data": [1, 2]}
    run(go())


def test_raw_101_has_accept_key_and_exactly_herald_protocol(herald):
    with herald.raw() as ws:
        tok = herald.token("raw-proto")
        st, hdrs, _ = ws.handshake("/ws", {"Sec-WebSocket-Protocol":
                                           "herald, herald.token." + tok})
        assert st == 101
        assert hdrs["Sec-WebSocket-Accept"] == rawws.accept_key(ws.key)
        assert hdrs["Upgrade"].lower() == "websocket"
        assert "upgrade" in hdrs["Connection"].lower()
        assert hdrs["Sec-WebSocket-Protocol"] == "herald"
        assert herald.publish(["raw-proto"], "e", 1) == 1
        f = ws.recv_data()
        assert without_id(json.loads(f.payload)) == {"event": "e", "data": 1}


def test_query_token_101_selects_no_protocol(herald):
    with herald.raw() as ws:
        st, hdrs, _ = ws.handshake(tok_path(herald, "raw-q"))
        assert st == 101
        assert "Sec-WebSocket-Protocol" not in hdrs


@pytest.mark.parametrize("headers", [
    {"Connection": "keep-alive, Upgrade"},
    {"Connection": "Upgrade, keep-alive"},
    {"Connection": "keep-alive,upgrade"},
    {"Upgrade": "WebSocket"},
    {"Upgrade": "WEBSOCKET", "Connection": "UPGRADE"},
    {"upgrade": "websocket", "connection": "upgrade", "sec-websocket-version": "13"},
    {"Upgrade": "foo/2, websocket"},
], ids=["conn-list-last", "conn-list-first", "conn-list-nospace", "upgrade-mixed-case",
        "all-upper", "lowercase-names", "upgrade-list"])
def test_upgrade_and_connection_lists_and_case_are_accepted(herald, headers):
    with herald.raw() as ws:
        st, hdrs, body = ws.handshake(tok_path(herald, "case-user"), headers)
        assert st == 101, body
        assert hdrs["Sec-WebSocket-Accept"] == rawws.accept_key(ws.key)
        assert ws.alive()


@pytest.mark.parametrize("origin", GOOD_ORIGINS)
def test_allowed_origin_is_accepted(herald, run, origin):
    async def go():
        async with herald.connect(herald.token("o-user"), origin=origin) as ws:
            assert herald.publish(["o-user"], "o", origin) == 1
            assert await recv_json(ws) == {"event": "o", "data": origin}
    run(go())


def test_no_origin_is_accepted_when_origins_are_restricted(herald):
    with herald.raw() as ws:
        st, _, body = ws.handshake(tok_path(herald, "no-origin"), {"Origin": None})
        assert st == 101, body
        assert ws.alive()


def test_head_just_under_max_header_size_is_accepted(herald):
    with herald.raw() as ws:
        st, _, body = ws.handshake(tok_path(herald, "big-head"), {"X-Pad": "p" * 7000})
        assert st == 101, body
        assert ws.alive()


def test_token_expired_within_leeway_is_accepted(herald):
    with herald.raw() as ws:
        st, _, body = ws.handshake(tok_path(herald, "leeway", ttl=-5))
        assert st == 101, body


def test_token_nbf_within_leeway_is_accepted(herald):
    with herald.raw() as ws:
        st, _, body = ws.handshake(tok_path(herald, "leeway", nbf=int(time.time()) + 5))
        assert st == 101, body


def test_token_without_exp_is_accepted(herald):
    with herald.raw() as ws:
        st, _, body = ws.handshake(tok_path(herald, "no-exp", ttl=None))
        assert st == 101, body


def test_absolute_form_target_is_read_by_its_path(herald, bystander):
    """RFC 9112 3.2.2: a server accepts "GET http://host/ws"; the path decides."""
    with herald.raw() as ws:
        st, _, body = ws.handshake("http://127.0.0.1/ws?token=" + herald.token("abs-user"))
        assert st == 101, body
        assert herald.publish(["abs-user"], "abs", 1) == 1
        assert without_id(json.loads(ws.recv_data(3).payload)) == {"event": "abs", "data": 1}
    bystander.check()


def test_pipelined_ping_in_the_same_write_as_the_head_gets_its_pong(herald, bystander):
    with herald.raw() as ws:
        ping = rawws.build_frame(rawws.OP_PING, b"right-behind")
        st, _, body = ws.handshake(tok_path(herald, "pipelined"), extra=ping)
        assert st == 101, body
        f = ws.recv_frame(3)
        assert f.opcode == rawws.OP_PONG and f.payload == b"right-behind" and not f.masked
        assert ws.alive()
    bystander.check()


def test_established_connection_outlives_handshake_timeout(herald):
    with herald.raw_ws("patient") as ws:
        time.sleep(1.6)  # handshake_timeout is 1s: it must not apply after the upgrade
        assert herald.publish(["patient"], "late", None) == 1
        f = ws.recv_data()
        assert without_id(json.loads(f.payload)) == {"event": "late", "data": None}


def test_head_arriving_byte_by_byte_is_accepted(herald):
    with herald.raw() as ws:
        tok = herald.token("dribble")
        key = rawws.new_key()
        head = ("GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n" % (tok, key)).encode()
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        for i in range(len(head)):
            assert ws.send(head[i:i + 1])
            if i % 8 == 0:
                time.sleep(0.003)
        assert time.monotonic() - t0 < 0.8, "too slow to test: handshake_timeout is 1s"
        st, hdrs, body = ws.read_response()
        assert st == 101, body
        assert hdrs["Sec-WebSocket-Accept"] == rawws.accept_key(key)
        assert ws.alive()


def test_percent_encoded_token_and_other_query_params_are_accepted(herald):
    with herald.raw() as ws:
        tok = herald.token("pct").replace(".", "%2E").replace("-", "%2D")
        st, _, body = ws.handshake("/ws?v=2&token=" + tok + "&lang=fr")
        assert st == 101, body
        assert herald.publish(["pct"], "pct", None) == 1
        assert without_id(json.loads(ws.recv_data().payload)) == {"event": "pct", "data": None}


def test_token_subprotocol_without_herald_selects_no_protocol(herald):
    """RFC 6455 4.2.2: the server may only select a subprotocol the client offered."""
    with herald.raw() as ws:
        st, hdrs, body = ws.handshake("/ws", {"Sec-WebSocket-Protocol":
                                              "herald.token." + herald.token("solo")})
        if st == 101:
            assert "Sec-WebSocket-Protocol" not in hdrs, hdrs["Sec-WebSocket-Protocol"]
        else:
            assert st == 401, body


# -- refused --------------------------------------------------------------

def bad_sig(h):
    head, payload, sig = h.token("mallory").split(".")
    sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    return "/ws?token=" + ".".join((head, payload, sig))


def swapped_payload(h):
    head, _, sig = h.token("mallory").split(".")
    _, payload, _ = h.token("admin").split(".")
    return "/ws?token=" + ".".join((head, payload, sig))


REFUSALS = [
    # name, status, reason, path (callable on h, or None = valid token), handshake kwargs
    ("post", 405, "bad_method", None, dict(method="POST")),
    ("put", 405, "bad_method", None, dict(method="PUT")),
    ("http-1.0", 400, "bad_request", None, dict(version="HTTP/1.0")),
    ("no-host-header", 400, "bad_request", None, dict(headers={"Host": None})),
    ("garbage-request-line", 400, "bad_request", None,
     dict(raw=b"THIS IS NOT HTTP\r\n\r\n")),
    ("header-without-colon", 400, "bad_request", None,
     dict(raw=b"GET /ws HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")),
    ("wrong-path", 404, "not_found", lambda h: "/nope?token=" + h.token("u"), {}),
    ("path-prefix", 404, "not_found", lambda h: "/wsx?token=" + h.token("u"), {}),
    ("no-upgrade-header", 400, "no_upgrade", None, dict(headers={"Upgrade": None})),
    ("upgrade-not-websocket", 400, "no_upgrade", None, dict(headers={"Upgrade": "h2c"})),
    ("no-connection-header", 400, "no_upgrade", None, dict(headers={"Connection": None})),
    ("connection-without-upgrade", 400, "no_upgrade", None,
     dict(headers={"Connection": "keep-alive"})),
    ("key-missing", 400, "bad_key", None, dict(headers={"Sec-WebSocket-Key": None})),
    ("key-short", 400, "bad_key", None, dict(headers={"Sec-WebSocket-Key": "abc"})),
    ("key-not-base64", 400, "bad_key", None,
     dict(headers={"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="})),
    ("key-15-bytes", 400, "bad_key", None, dict(headers={"Sec-WebSocket-Key": key_of(15)})),
    ("key-17-bytes", 400, "bad_key", None, dict(headers={"Sec-WebSocket-Key": key_of(17)})),
    ("version-8", 426, "bad_version", None, dict(headers={"Sec-WebSocket-Version": "8"})),
    ("version-missing", 426, "bad_version", None,
     dict(headers={"Sec-WebSocket-Version": None})),
    ("origin-not-allowed", 403, "origin", None, dict(headers={"Origin": "http://evil.example"})),
    ("origin-other-scheme", 403, "origin", None,
     dict(headers={"Origin": "https://good.example"})),
    ("origin-other-port", 403, "origin", None,
     dict(headers={"Origin": "https://app.example:8444"})),
    ("head-over-max-header-size", 431, "too_large", None,
     dict(headers={"X-Big": "b" * 9000})),
    ("too-many-headers", 431, "too_large", None,
     dict(extra_lines=["X-H%d: 1" % i for i in range(1000)])),
    ("no-token", 401, "no_token", lambda h: "/ws", {}),
    ("bad-signature", 401, "bad_token", bad_sig, {}),
    ("payload-swapped", 401, "bad_token", swapped_payload, {}),
    ("alg-none", 401, "bad_token", lambda h: tok_path(h, alg="none"), {}),
    ("alg-none-header-hs256-signature", 401, "bad_token",
     lambda h: tok_path(h, header={"alg": "none", "typ": "JWT"}), {}),
    ("alg-hs512", 401, "bad_token", lambda h: tok_path(h, alg="HS512"), {}),
    ("expired", 401, "bad_token", lambda h: tok_path(h, ttl=-3600), {}),
    ("nbf-future", 401, "bad_token", lambda h: tok_path(h, nbf=int(time.time()) + 3600), {}),
    ("wrong-secret", 401, "bad_token",
     lambda h: tok_path(h, secret="not-the-secret-not-the-secret-xx"), {}),
    ("not-a-jwt", 401, "bad_token", lambda h: "/ws?token=abc", {}),
    ("three-garbage-parts", 401, "bad_token", lambda h: "/ws?token=a.b.c", {}),
    ("no-sub", 401, "bad_token", lambda h: "/ws?token=" + h.token(None), {}),
    ("sub-too-long", 401, "bad_token", lambda h: "/ws?token=" + h.token("u" * 129), {}),
    ("exp-not-a-number", 401, "bad_token", lambda h: tok_path(h, ttl=None, exp="soon"), {}),
    ("bad-token-as-subprotocol", 401, "bad_token", lambda h: "/ws",
     dict(headers={"Sec-WebSocket-Protocol": "herald, herald.token.abc.def.ghi"})),
]


@pytest.mark.parametrize("name,status,reason,path,kw", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal(herald, bystander, name, status, reason, path, kw):
    hdrs = assert_refused(herald, status, reason, path(herald) if path else None, **kw)
    if status == 426:
        assert hdrs.get("Sec-WebSocket-Version") == "13"
    bystander.check()


# -- handshake timeout (1s here) ------------------------------------------

def test_partial_head_gets_408_after_handshake_timeout(herald, bystander):
    before = herald.stats()["handshakes_refused"]["timeout"]
    with herald.raw(timeout=5) as ws:
        t0 = time.monotonic()
        ws.send(("GET %s HTTP/1.1\r\nHost: x\r\n" % tok_path(herald)).encode())
        st, hdrs, body = ws.read_response(timeout=4)
        elapsed = time.monotonic() - t0
        assert st == 408
        assert json.loads(body) == {"ok": False, "error": "timeout"}
        assert 0.8 <= elapsed <= 3.0, "408 after %.2fs with handshake_timeout=1s" % elapsed
        assert ws.wait_eof(2)
    s = herald.wait_stat("handshakes_refused.timeout", before + 1)
    assert s["handshakes_refused"]["timeout"] == before + 1
    bystander.check()


def test_slowloris_drip_is_cut_off_by_handshake_timeout(herald, bystander):
    """One byte every 150 ms keeps the connection busy but must not extend the deadline."""
    head = ("GET %s HTTP/1.1\r\nHost: x\r\n" % tok_path(herald)).encode() + b"X-Slow: " + \
        b"s" * 200
    with herald.raw(timeout=5) as ws:
        t0 = time.monotonic()
        answered = False
        for i in range(len(head)):
            if not ws.send(head[i:i + 1]):
                break
            r, _, _ = select.select([ws.sock], [], [], 0.15)
            if r:
                answered = True
                break
            if time.monotonic() - t0 > 4:
                break
        elapsed = time.monotonic() - t0
        assert answered or elapsed < 4, "still reading a dripped head after %.1fs" % elapsed
        st, _, body = ws.read_response(timeout=2)
        assert st == 408, body
        assert elapsed <= 3.0
        assert ws.wait_eof(2)
    bystander.check()


def test_silent_connection_is_closed_after_handshake_timeout(herald, bystander):
    with herald.raw(timeout=5) as ws:
        t0 = time.monotonic()
        r, _, _ = select.select([ws.sock], [], [], 4)
        assert r, "a connection that sent nothing is still open after 4s"
        data = b""
        try:
            data = ws.sock.recv(4096)
        except ConnectionResetError:
            pass
        if data:
            assert data.startswith(b"HTTP/1.1 408 "), data
        assert time.monotonic() - t0 <= 3.0
        assert ws.wait_eof(2)
    bystander.check()


# -- anonymous ------------------------------------------------------------

def test_anonymous_clients_get_broadcasts_only_when_allowed(run):
    with Herald(config={"allow_anonymous": "yes"}) as h:
        async def go():
            async with h.connect() as anon, h.connect(h.token("known")) as known:
                assert h.broadcast("news", {"n": 1}) == 2
                assert await recv_json(anon) == {"event": "news", "data": {"n": 1}}
                assert await recv_json(known) == {"event": "news", "data": {"n": 1}}
                assert h.publish(["known"], "private", "x") == 1
                assert await recv_json(known) == {"event": "private", "data": "x"}
                await expect_nothing(anon)
        run(go())
        # A bad token is still refused: it does not fall back to anonymous.
        with h.raw() as ws:
            st, _, body = ws.handshake("/ws?token=" + h.token("x", ttl=-3600))
            assert st == 401 and json.loads(body) == {"ok": False, "error": "bad_token"}


def test_no_token_is_refused_by_default(herald, run):
    async def go():
        import websockets.exceptions
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with herald.connect():
                pass
        assert e.value.status_code == 401
    run(go())

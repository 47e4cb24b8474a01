"""
30-api.py -- the FastCGI API as PHP (through the client) or nginx would use
it: publish to users' tabs across workers, broadcast, batches, /health and
/stats, every error answer (status, JSON body, Allow header, /stats counter),
routing by SCRIPT_NAME or REQUEST_URI, malformed FastCGI records, keep-conn,
and the SIGTERM shutdown (close 1001 to every client, sockets removed, exit 0).
"""

import asyncio
import json
import os
import signal
import time
import uuid

import pytest
import websockets.exceptions

import fcgi
import rawws
from herald import Herald, expect_nothing, recv_json, uid, wait_connections, without_id

HERALD_CONFIG = {"allow_anonymous": "yes", "api_max_body": "1k"}
HERALD_WORKERS = 2


# -- publish --------------------------------------------------------------

def test_publish_reaches_every_tab_of_the_user_and_nobody_else(herald, run):
    alice, bob = uid("alice"), uid("bob")

    async def go():
        async with herald.connect(herald.token(alice)) as t1, \
                herald.connect(herald.token(alice), via="protocol") as t2, \
                herald.connect(herald.token(alice)) as t3, \
                herald.connect(herald.token(bob)) as other, \
                herald.connect() as anon:
            data = {"order": 42, "items": ["a", "b"], "total": 9.5}
            assert herald.publish([alice], "order.shipped", data) == 3
            for t in (t1, t2, t3):
                assert await recv_json(t) == {"event": "order.shipped", "data": data}
            for t in (t1, t2, t3, other, anon):
                await expect_nothing(t, 0.3)
    run(go())


def test_publish_reaches_eight_tabs_spread_over_both_workers(herald):
    u = uid("many")
    tabs = [herald.raw_ws(u) for _ in range(8)]  # SO_REUSEPORT: 2^-7 chance all on one
    try:
        assert herald.publish([u], "fan.out", {"n": 8}) == 8
        for t in tabs:
            got = without_id(json.loads(t.recv_data().payload))
            assert got == {"event": "fan.out", "data": {"n": 8}}
    finally:
        for t in tabs:
            t.close()


def test_integer_and_string_user_ids_are_the_same_user(herald, run):
    n = int(uuid.uuid4().int % 10 ** 9)

    async def go():
        async with herald.connect(herald.token(n)) as by_int, \
                herald.connect(herald.token(str(n + 1))) as by_str:
            assert herald.publish([n], "e1", 1) == 1
            assert await recv_json(by_int) == {"event": "e1", "data": 1}
            assert herald.publish([str(n)], "e2", 2) == 1
            assert await recv_json(by_int) == {"event": "e2", "data": 2}
            assert herald.publish([n + 1], "e3", 3) == 1
            assert await recv_json(by_str) == {"event": "e3", "data": 3}
            await expect_nothing(by_int)
    run(go())


def test_publish_to_several_users_counts_all_their_connections(herald, run):
    a, b, c = uid("a"), uid("b"), uid("c")

    async def go():
        async with herald.connect(herald.token(a)) as a1, herald.connect(herald.token(a)) as a2, \
                herald.connect(herald.token(b)) as b1, herald.connect(herald.token(c)) as c1:
            assert herald.publish([a, b, uid("nobody")], "multi", {"x": True}) == 3
            for t in (a1, a2, b1):
                assert await recv_json(t) == {"event": "multi", "data": {"x": True}}
            await expect_nothing(c1)
    run(go())


def test_unknown_user_delivers_zero(herald):
    assert herald.publish([uid("nobody")], "lost", 1) == 0
    assert herald.publish([987654321012], "lost", 1) == 0


def test_data_types_round_trip_and_absent_data_is_null(herald, run):
    u = uid()
    values = [None, "str ✓ \"quoted\" \\ 😀", "nul \u0000 inside", 0, -17, 3.25, True,
              [1, [2, {"k": None}]],
              {"nested": {"deep": [1, 2, 3]}, "empty": {}}]

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            for v in values:
                assert herald.publish([u], "types", v) == 1
                assert await recv_json(ws) == {"event": "types", "data": v}
            j = herald.api_ok("POST", "/publish", {"users": [u], "event": "no.data"})
            assert j["delivered"] == 1
            assert await recv_json(ws) == {"event": "no.data", "data": None}
            odd = "ordre.expédié \"q\" ✓"
            assert herald.publish([u], odd, 1) == 1
            assert await recv_json(ws) == {"event": odd, "data": 1}
    run(go())


def test_many_publishes_arrive_in_order(herald, run):
    u = uid()

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            for i in range(50):
                assert herald.publish([u], "seq", i) == 1
            got = [(await recv_json(ws))["data"] for _ in range(50)]
            assert got == list(range(50))
    run(go())


def test_longest_user_id_and_event_are_accepted(herald, run):
    u = "u" * 128
    ev = "e" * 200

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            assert herald.publish([u], ev, None) == 1
            assert await recv_json(ws) == {"event": ev, "data": None}
    run(go())


def test_body_of_exactly_api_max_body_is_accepted(herald):
    base = {"users": [uid()], "event": "edge", "data": ""}
    pad = 1024 - len(json.dumps(base).encode())
    base["data"] = "p" * pad
    body = json.dumps(base).encode()
    assert len(body) == 1024
    status, _, j = herald.api("POST", "/publish", body)
    assert status == 200 and j == {"ok": True, "delivered": 0}


# -- broadcast and batch (fresh daemons, for exact counts) ----------------

def test_broadcast_reaches_everyone_including_anonymous(run):
    with Herald(config={"allow_anonymous": "yes"}, workers=2) as h:
        async def go():
            async with h.connect(h.token("x")) as x1, h.connect(h.token("x")) as x2, \
                    h.connect(h.token("y"), via="protocol") as y, h.connect() as anon:
                assert h.broadcast("all.hands", {"m": "hi"}) == 4
                for t in (x1, x2, y, anon):
                    assert await recv_json(t) == {"event": "all.hands", "data": {"m": "hi"}}
                    await expect_nothing(t, 0.2)
        run(go())


def test_batch_answers_counts_in_order_and_delivers_in_order(run):
    with Herald(config={"allow_anonymous": "yes"}, workers=2) as h:
        async def go():
            async with h.connect(h.token("a")) as a, h.connect(h.token("b")) as b, \
                    h.connect() as anon:
                batch = [
                    {"users": ["a"], "event": "one", "data": 1},
                    {"broadcast": True, "event": "two", "data": 2},
                    {"users": ["nobody"], "event": "three", "data": 3},
                    {"users": ["a", "b"], "event": "four"},
                ]
                j = h.api_ok("POST", "/publish", batch)
                assert j == {"ok": True, "delivered": [1, 3, 0, 2]}
                assert [await recv_json(a) for _ in range(3)] == [
                    {"event": "one", "data": 1}, {"event": "two", "data": 2},
                    {"event": "four", "data": None}]
                assert [await recv_json(b) for _ in range(2)] == [
                    {"event": "two", "data": 2}, {"event": "four", "data": None}]
                assert await recv_json(anon) == {"event": "two", "data": 2}
                for t in (a, b, anon):
                    await expect_nothing(t, 0.2)
        run(go())


def test_batch_with_one_bad_element_is_refused_whole(herald, run):
    u = uid()

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            before = herald.stats()
            batch = [{"users": [u], "event": "good", "data": 1},
                     {"users": [u], "event": ""},
                     {"broadcast": True, "event": "good.too"}]
            status, headers, j = herald.api("POST", "/publish", batch)
            assert status == 400, j
            assert j["ok"] is False and isinstance(j["error"], str) and j["error"]
            await expect_nothing(ws, 0.5)
            after = herald.stats()
            assert after["published"] == before["published"]
            assert after["delivered"] == before["delivered"]
    run(go())


def test_broadcast_to_three_hundred_clients(run):
    # 300 sockets from 127.0.0.1 stand in for 300 browsers: a trusted proxy naming no
    # client, which per-address limits leave alone (76-limits).
    with Herald(config={"allow_anonymous": "yes"}, workers=2) as h:
        clients = [h.raw_ws() for _ in range(300)]
        try:
            wait_connections(h, 300, timeout=5)
            assert h.broadcast("crowd", {"big": True}) == 300
            for c in clients:
                f = c.recv_data(5)
                got = without_id(json.loads(f.payload))
                assert got == {"event": "crowd", "data": {"big": True}}
        finally:
            for c in clients:
                c.close()
        wait_connections(h, 0, timeout=5)


def test_a_client_that_never_reads_does_not_hold_up_the_others():
    import socket
    with Herald(workers=1) as h:
        slow = h.raw_ws("slow")
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        fast = h.raw_ws("fast")
        try:
            payload = {"blob": "s" * 60000}
            t0 = time.monotonic()
            for i in range(300):  # ~18 MB queued towards a reader that never reads
                assert h.publish(["slow"], "flood", payload) in (0, 1)
                if i % 50 == 0:
                    assert h.publish(["fast"], "tick", i) == 1
                    f = fast.recv_data(3)
                    assert without_id(json.loads(f.payload)) == {"event": "tick", "data": i}
            assert time.monotonic() - t0 < 20
            assert h.running()
        finally:
            slow.close()
            fast.close()


def test_a_reader_over_max_queued_bytes_is_closed_with_1008_and_counted():
    """
    A stalled reader's backlog is capped: past max_queued_bytes its queued
    frames are dropped and it gets close 1008 (after whatever frame was half
    written), /stats counts it, and the other tabs of the same user and other
    users keep receiving every message.
    """
    with Herald(workers=1, config={"max_queued_bytes": "256k"}) as h:
        slow = h.raw_ws("shared")
        other_tab = h.raw_ws("shared")
        other_user = h.raw_ws("someone-else")
        try:
            payload = {"blob": "s" * 30000}
            counts = []
            # up to 18 MB: loopback socket buffers take several MB before Herald queues
            for i in range(600):
                counts.append(h.publish(["shared"], "flood", payload))
                f = other_tab.recv_data(3)
                assert json.loads(f.payload)["event"] == "flood"
                if counts[-1] == 1:
                    break
            # both tabs got it until the slow one overflowed; then only the other
            assert counts[0] == 2 and counts[-1] == 1, counts
            # the slow reader, once it reads (within the 2 s close linger), finds
            # whole frames and then 1008
            while True:
                f = slow.recv_frame(5)
                if f.opcode == 0x8:
                    assert f.close_code == 1008
                    break
                assert json.loads(f.payload)["event"] == "flood"
            assert h.wait_stat("slow_consumers", 1)["slow_consumers"] == 1
            assert h.wait_stat("connections", 2)["connections"] == 2
            assert h.publish(["shared"], "after", 1) == 1
            got = without_id(json.loads(other_tab.recv_data(3).payload))
            assert got == {"event": "after", "data": 1}
            assert h.publish(["someone-else"], "still", "here") == 1
            got = without_id(json.loads(other_user.recv_data(3).payload))
            assert got == {"event": "still", "data": "here"}
        finally:
            slow.close()
            other_tab.close()
            other_user.close()


# -- /health and /stats ---------------------------------------------------

def test_health(herald):
    status, headers, j = herald.api("GET", "/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert j["ok"] is True and j["workers"] == 2
    assert isinstance(j["uptime"], int) and 0 <= j["uptime"] < 3600


def test_stats_shape(herald):
    s = herald.stats()
    for k in ("uptime", "workers", "connections", "users", "published", "delivered",
              "connections_total", "api_requests", "slow_consumers"):
        assert isinstance(s[k], int) and s[k] >= 0, (k, s.get(k))
    assert s["workers"] == 2
    assert set(s["handshakes_refused"]) >= {
        "bad_request", "not_found", "bad_method", "timeout", "no_upgrade", "bad_key",
        "bad_version", "origin", "too_large", "no_token", "bad_token"}
    assert set(s["protocol_errors"]) >= {"1002", "1007", "1009"}
    assert set(s["api_errors"]) >= {"400", "404", "405", "413"}
    for group in ("handshakes_refused", "protocol_errors", "api_errors"):
        assert all(isinstance(v, int) and v >= 0 for v in s[group].values()), s[group]


def test_stats_counts_connections_users_published_delivered(run):
    with Herald(config={"allow_anonymous": "yes"}, workers=2) as h:
        s0 = h.stats()
        assert (s0["connections"], s0["users"], s0["published"], s0["delivered"]) == (0, 0, 0, 0)

        async def go():
            tabs = [h.connect(h.token("alice")) for _ in range(3)]
            async with tabs[0] as a1, tabs[1] as a2, tabs[2] as a3, \
                    h.connect(h.token("bob")) as b, h.connect() as anon:
                assert b.open and anon.open
                s = wait_connections(h, 5)
                assert s["users"] == 2, "3 tabs of alice + bob (+1 anonymous) over 2 workers"
                assert s["connections_total"] >= 5
                assert h.publish(["alice"], "e", 1) == 3
                assert h.publish(["alice", "bob", "carol"], "e", 2) == 4
                assert h.broadcast("e", 3) == 5
                s = h.stats()
                assert s["published"] == 3
                assert s["delivered"] == 12
                await a3.close()
                s = wait_connections(h, 4)
                assert s["users"] == 2
                await a1.close()
                await a2.close()
                s = wait_connections(h, 2)
                assert s["users"] == 1
        run(go())
        s = wait_connections(h, 0)
        assert s["users"] == 0
        assert s["connections_total"] == 5


def test_stats_counts_api_requests(herald):
    s1 = herald.stats()
    herald.api("GET", "/health")
    herald.api("POST", "/publish", {"users": ["x"], "event": "e"})
    herald.api("GET", "/nope")
    s2 = herald.stats()
    assert s2["api_requests"] - s1["api_requests"] == 4


# -- errors ---------------------------------------------------------------

def assert_api_error(h, status, method, path, body=None, extra_params=None):
    before = h.stats()["api_errors"][str(status)]
    st, headers, j = h.api(method, path, body, extra_params)
    assert st == status, "expected %d, got %d %r" % (status, st, j)
    assert headers.get("Content-Type", "").startswith("application/json"), dict(headers)
    assert isinstance(j, dict) and set(j) == {"ok", "error"}, j
    assert j["ok"] is False and isinstance(j["error"], str) and j["error"].strip(), j
    s = h.wait_stat("api_errors.%d" % status, before + 1)
    assert s["api_errors"][str(status)] == before + 1
    return headers


P = {"users": ["someone"], "event": "e", "data": 1}


def pub(**kw):
    d = dict(P)
    d.update(kw)
    return {k: v for k, v in d.items() if v is not ...}


API_ERRORS = [
    ("malformed-json", b'{"users": ["a"], "event": ', 400),
    ("empty-body", b"", 400),
    ("not-json", b"users=a&event=e", 400),
    ("trailing-garbage", b'{"broadcast": true, "event": "e"} x', 400),
    ("json-string", b'"publish"', 400),
    ("json-number", b"42", 400),
    ("json-null", b"null", 400),
    ("users-not-array", pub(users="someone"), 400),
    ("users-empty", pub(users=[]), 400),
    ("user-too-long", pub(users=["u" * 129]), 400),
    ("user-empty-string", pub(users=[""]), 400),
    ("user-control-char", pub(users=["a\nb"]), 400),
    ("user-nul", pub(users=["a\u0000b"]), 400),
    ("user-float", pub(users=[1.5]), 400),
    ("user-null", pub(users=[None]), 400),
    ("user-bool", pub(users=[True]), 400),
    ("user-nested-array", pub(users=[["a"]]), 400),
    ("user-object", pub(users=[{"id": 1}]), 400),
    ("one-bad-user-among-good", pub(users=["ok", None]), 400),
    ("event-missing", pub(event=...), 400),
    ("event-empty", pub(event=""), 400),
    ("event-not-string", pub(event=5), 400),
    ("event-null", pub(event=None), 400),
    ("event-too-long", pub(event="e" * 201), 400),
    ("event-201-bytes-of-utf8", pub(event="é" * 100 + "e"), 400),
    ("event-control-char", pub(event="order\nshipped"), 400),
    ("users-and-broadcast", pub(broadcast=True), 400),
    ("neither-users-nor-broadcast", pub(users=...), 400),
    ("broadcast-false", pub(users=..., broadcast=False), 400),
    ("broadcast-not-bool", pub(users=..., broadcast="yes"), 400),
    ("batch-with-non-object", [P, 1], 400),
    ("batch-nested", [[P]], 400),
    ("batch-one-bad", [P, pub(event="")], 400),
    ("batch-empty", [], 400),
    ("duplicate-member", b'{"users": ["a"], "event": "e", "event": "f"}', 400),
    ("channel-not-string", pub(users=..., channel=5), 400),
    ("channel-empty", pub(users=..., channel=""), 400),
    ("channel-with-space", pub(users=..., channel="news now"), 400),
    ("channel-pattern", pub(users=..., channel="news:*"), 400),
    ("channel-too-long", pub(users=..., channel="c" * 129), 400),
    ("channel-and-users", pub(channel="news"), 400),
    ("channel-and-broadcast", pub(users=..., channel="news", broadcast=True), 400),
    ("batch-one-bad-channel", [pub(users=..., channel="news"), pub(users=..., channel="a b")],
     400),
    ("data-integer-over-64-bit", b'{"users":["a"],"event":"e","data":18446744073709551616}', 400),
]


def test_user_and_batch_count_limits_hold_at_their_boundaries():
    """
    A message names at most 10,000 users and a batch holds at most 1,000
    messages: one more is a 400 with a clear error, counted, and nothing from
    the refused request is delivered.
    """
    with Herald(workers=2, config={"api_max_body": "1M"}) as h:
        watcher = h.raw_ws("u-9999")
        try:
            many = [("u-%d" % i) for i in range(10000)]
            assert h.publish(many, "ok", 1) == 1
            got = without_id(json.loads(watcher.recv_data(3).payload))
            assert got == {"event": "ok", "data": 1}
            assert_api_error(h, 400, "POST", "/publish",
                             pub(users=many + ["u-10000"], event="too.many"))
            batch_ok = [pub(users=["u-9999"], event="b", data=i) for i in range(1000)]
            st, _, j = h.api("POST", "/publish", batch_ok)
            assert st == 200 and j["delivered"] == [1] * 1000
            for i in range(1000):
                assert json.loads(watcher.recv_data(3).payload)["data"] == i
            assert_api_error(h, 400, "POST", "/publish", batch_ok + [P])
            _, _, j = h.api("POST", "/publish", pub(users=many + ["u-10000"]))
            assert "at most 10000" in j["error"], j
            _, _, j = h.api("POST", "/publish", batch_ok + [P])
            assert "1 to 1000" in j["error"], j
            # nothing of the refused requests arrived
            assert h.publish(["u-9999"], "last", 0) == 1
            got = without_id(json.loads(watcher.recv_data(3).payload))
            assert got == {"event": "last", "data": 0}
        finally:
            watcher.close()


@pytest.mark.parametrize("name,body,status", API_ERRORS, ids=[e[0] for e in API_ERRORS])
def test_publish_error(herald, bystander, name, body, status):
    assert_api_error(herald, status, "POST", "/publish", body)
    bystander.check()


PRESENCE_ERRORS = [
    ("no-query", "/presence"),
    ("neither-channel-nor-user", "/presence?users=42"),
    ("user-empty", "/presence?user="),
    ("user-too-long", "/presence?user=" + "u" * 129),
    ("user-control-char", "/presence?user=a%0Ab"),
    ("user-nul", "/presence?user=a%00b"),
    ("user-bad-percent-escape", "/presence?user=a%zz"),
    ("channel-bad-percent-escape", "/presence?channel=room%zz"),
]


@pytest.mark.parametrize("name,path", PRESENCE_ERRORS, ids=[e[0] for e in PRESENCE_ERRORS])
def test_presence_error(herald, bystander, name, path):
    """GET /presence needs one valid channel= or user=: else 400, counted, no one hurt."""
    assert_api_error(herald, 400, "GET", path)
    bystander.check()


def test_unknown_path_is_404(herald, bystander):
    assert_api_error(herald, 404, "POST", "/nope", P)
    assert_api_error(herald, 404, "GET", "/")
    assert_api_error(herald, 404, "GET", "/publish/extra")
    bystander.check()


def test_a_path_that_is_not_utf8_gets_a_json_404(herald, bystander):
    # Found by fuzz_api: the path is quoted in the error, which once made the
    # body invalid JSON (and left it empty).
    st, _, j = herald.api("POST", "/x", P, extra_params={"SCRIPT_NAME": b"/publis\xec\x01"})
    assert st == 404 and j["ok"] is False and j["error"].startswith("no such endpoint: /publis")
    bystander.check()


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/publish", "POST"), ("PUT", "/publish", "POST"), ("DELETE", "/publish", "POST"),
    ("POST", "/health", "GET"), ("POST", "/stats", "GET"), ("POST", "/presence", "GET"),
    ("DELETE", "/presence", "GET")])
def test_wrong_method_is_405_with_allow(herald, bystander, method, path, allowed):
    headers = assert_api_error(herald, 405, method, path, b"{}" if method == "POST" else None)
    assert "Allow" in headers, dict(headers)
    assert allowed in [m.strip() for m in headers["Allow"].split(",")], headers["Allow"]
    bystander.check()


def test_body_over_api_max_body_is_413(herald, bystander):
    body = json.dumps(pub(data="x" * 2000)).encode()
    assert_api_error(herald, 413, "POST", "/publish", body)
    bystander.check()


def test_body_of_one_byte_over_api_max_body_is_413(herald, bystander):
    base = {"users": ["x"], "event": "edge", "data": ""}
    base["data"] = "p" * (1025 - len(json.dumps(base).encode()))
    body = json.dumps(base).encode()
    assert len(body) == 1025
    assert_api_error(herald, 413, "POST", "/publish", body)
    bystander.check()


def test_huge_body_is_413_and_api_keeps_working(herald, bystander):
    body = b'{"users":["x"],"event":"e","data":"' + b"h" * (4 * 1024 * 1024) + b'"}'
    assert_api_error(herald, 413, "POST", "/publish", body)
    bystander.check()


# -- routing --------------------------------------------------------------

NO_SCRIPT = {"SCRIPT_NAME": None, "DOCUMENT_URI": None}


@pytest.mark.parametrize("extra", [NO_SCRIPT, {"SCRIPT_NAME": "", "DOCUMENT_URI": None}],
                         ids=["absent", "empty"])
def test_routed_by_request_uri_without_script_name(herald, run, extra):
    u = uid()

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            status, _, j = herald.api("POST", "/publish?debug=1&x=/health",
                                      {"users": [u], "event": "via.uri"}, extra)
            assert (status, j) == (200, {"ok": True, "delivered": 1})
            assert await recv_json(ws) == {"event": "via.uri", "data": None}
    run(go())
    status, _, j = herald.api("GET", "/health?verbose=1", None, extra)
    assert status == 200 and j["ok"] is True and "uptime" in j
    status, _, j = herald.api("GET", "/stats?x=1", None, extra)
    assert status == 200 and "api_errors" in j
    status, _, j = herald.api("GET", "/nope?to=/health", None, extra)
    assert status == 404 and j["ok"] is False


def test_script_name_wins_over_request_uri(herald):
    status, _, j = herald.api("GET", "/elsewhere", None,
                              {"SCRIPT_NAME": "/health", "DOCUMENT_URI": "/health"})
    assert status == 200 and j["ok"] is True and "uptime" in j


# -- FastCGI transport ----------------------------------------------------

def test_response_is_well_formed_fastcgi(herald):
    r = fcgi.request(herald.api_socket, "GET", "/health")
    assert r.protocol_status == fcgi.FCGI_REQUEST_COMPLETE
    assert r.headers["Status"].startswith("200")
    assert r.headers["Content-Type"].startswith("application/json")
    r = fcgi.request(herald.api_socket, "GET", "/nope")
    assert r.headers["Status"].startswith("404")


def test_without_keep_conn_the_server_closes_after_the_answer(herald):
    data, closed = fcgi.raw_exchange(herald.api_socket,
                                     fcgi.encode_request("GET", "/health"), timeout=3)
    assert closed, "connection still open 3s after END_REQUEST without FCGI_KEEP_CONN"
    types = [r[1] for r in fcgi.parse_records(data)]
    assert fcgi.FCGI_STDOUT in types and types[-1] == fcgi.FCGI_END_REQUEST


def test_management_records_are_answered_before_the_request(herald):
    """FCGI_GET_VALUES gets an (empty) GET_VALUES_RESULT, an unknown one UNKNOWN_TYPE."""
    data, _ = fcgi.raw_exchange(
        herald.api_socket,
        fcgi.record(fcgi.FCGI_GET_VALUES, 0, fcgi.encode_params({"FCGI_MPXS_CONNS": ""}))
        + fcgi.record(200, 0, b"\0" * 8) + fcgi.encode_request("GET", "/health"), timeout=3)
    recs = fcgi.parse_records(data)
    assert [(t, rid) for _, t, rid, _ in recs[:2]] == [(fcgi.FCGI_GET_VALUES_RESULT, 0),
                                                       (fcgi.FCGI_UNKNOWN_TYPE, 0)], recs
    assert recs[1][3][0] == 200
    out = b"".join(c for _, t, _, c in recs if t == fcgi.FCGI_STDOUT)
    assert out.startswith(b"Status: 200") and recs[-1][1] == fcgi.FCGI_END_REQUEST


def test_pipelined_requests_on_a_kept_connection_are_answered_in_order(herald):
    """Several whole requests in one write (nothing waits for an answer): each answered, in turn."""
    assert fcgi.pipelined(herald.api_socket, 5) == [(i + 1, 200) for i in range(5)]


def test_keep_conn_serves_several_requests_on_one_connection(herald, run):
    u = uid()

    async def go():
        async with herald.connect(herald.token(u)) as ws:
            with fcgi.Connection(herald.api_socket, keep_conn=True) as c:
                sock = c.sock
                r = c.request("GET", "/health")
                assert r.status == 200 and json.loads(r.body)["ok"] is True
                for i in range(3):
                    r = c.request("POST", "/publish", json.dumps(
                        {"users": [u], "event": "kc", "data": i}), request_id=i + 1)
                    assert (r.status, json.loads(r.body)) == (200, {"ok": True, "delivered": 1})
                    assert await recv_json(ws) == {"event": "kc", "data": i}
                r = c.request("GET", "/nope")
                assert r.status == 404
                r = c.request("GET", "/stats")
                assert r.status == 200 and "connections" in json.loads(r.body)
                assert c.sock is sock and c.requests == 6
                assert not c.server_closed(0.3), "server closed a FCGI_KEEP_CONN connection"
    run(go())


def test_idle_kept_connections_do_not_hold_the_api_threads():
    """
    More idle FCGI_KEEP_CONN connections (nginx's fastcgi_keep_conn) than API
    threads: new callers are still answered at once, and so is each kept
    connection's next request.
    """
    with Herald(workers=1, config={"api_threads": 2}) as h:
        kept = [fcgi.Connection(h.api_socket, keep_conn=True, timeout=2) for _ in range(6)]
        try:
            for c in kept:
                assert c.request("GET", "/health").status == 200
            t0 = time.monotonic()
            status, _, j = h.api("GET", "/health", timeout=2)
            assert status == 200 and j["ok"] is True
            for i, c in enumerate(reversed(kept)):
                r = c.request("GET", "/health", request_id=2)
                assert r.status == 200, (i, r)
            # all answered without waiting out the 5 s read timeout of an idle connection
            assert time.monotonic() - t0 < 2.0
        finally:
            for c in kept:
                c.close()


def publish_still_works(h, bystander):
    assert h.running(), h.log_text()[-3000:]
    status, _, j = h.api("GET", "/health")
    assert status == 200 and j["ok"] is True
    bystander.check()


MALFORMED = {
    "garbage": b"GET /publish HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(64),
    "wrong-version": fcgi.record(fcgi.FCGI_BEGIN_REQUEST, 1, b"\0\1\0\0\0\0\0\0", version=2)
    + fcgi.stream_records(fcgi.FCGI_PARAMS, 1, fcgi.encode_params(
        fcgi.build_params("GET", "/health"))) + fcgi.record(fcgi.FCGI_STDIN, 1),
    "truncated-header": fcgi.begin_request()[:5],
    "truncated-params": fcgi.begin_request() + fcgi.record(
        fcgi.FCGI_PARAMS, 1, fcgi.encode_params({"REQUEST_METHOD": "GET"}))[:13],
    "huge-content-length": fcgi.begin_request() + fcgi.record(
        fcgi.FCGI_PARAMS, 1, b"\x0e\x03REQUEST_METHODGET", content_length=0xFFFF),
    "param-length-past-record": fcgi.begin_request() + fcgi.record(
        fcgi.FCGI_PARAMS, 1, b"\x7f\x7fab") + fcgi.record(fcgi.FCGI_PARAMS, 1)
    + fcgi.record(fcgi.FCGI_STDIN, 1),
    "four-byte-length-huge": fcgi.begin_request() + fcgi.record(
        fcgi.FCGI_PARAMS, 1, b"\xff\xff\xff\xff\x01ab") + fcgi.record(fcgi.FCGI_PARAMS, 1)
    + fcgi.record(fcgi.FCGI_STDIN, 1),
    "stdin-before-params": fcgi.begin_request() + fcgi.record(fcgi.FCGI_STDIN, 1, b"{}"),
    "unknown-record-type": fcgi.record(99, 1, b"whatever") + fcgi.encode_request("GET", "/health"),
    "authorizer-role": fcgi.begin_request(role=2) + fcgi.record(fcgi.FCGI_PARAMS, 1)
    + fcgi.record(fcgi.FCGI_STDIN, 1),
    "stdin-longer-than-content-length": fcgi.begin_request() + fcgi.stream_records(
        fcgi.FCGI_PARAMS, 1, fcgi.encode_params(fcgi.build_params(
            "POST", "/publish", b"{}"))) + fcgi.stream_records(
        fcgi.FCGI_STDIN, 1, b'{"broadcast":true,"event":"e"}' + b" " * 5000),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_fastcgi_does_not_stop_the_api(herald, bystander, name):
    for _ in range(6):  # more than api_threads (4)
        fcgi.raw_exchange(herald.api_socket, MALFORMED[name], timeout=2, close_after=0.3)
    publish_still_works(herald, bystander)


def test_half_sent_request_held_open_does_not_block_other_requests(herald, bystander):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(herald.api_socket)
        s.sendall(fcgi.begin_request() + fcgi.record(fcgi.FCGI_PARAMS, 1, b"\x0e")[:10])
        publish_still_works(herald, bystander)
    finally:
        s.close()
    publish_still_works(herald, bystander)


# -- shutdown -------------------------------------------------------------

def test_sigterm_closes_clients_with_1001_removes_sockets_and_exits_0(run):
    h = Herald(config={"listen": "unix:{dir}/ws.sock", "shutdown_timeout": "3s"}, workers=2)
    h.start()
    try:
        ws_sock = os.path.join(h.dir, "ws.sock")
        assert os.path.exists(ws_sock) and os.path.exists(h.api_socket)
        clients = []
        for i in range(4):
            ws = rawws.open_ws(ws_sock, "/ws?token=" + h.token("u%d" % (i % 2)))
            clients.append(ws)
        assert h.publish(["u0"], "before", None) == 2
        for ws in clients[0::2]:
            got = without_id(json.loads(ws.recv_data().payload))
            assert got == {"event": "before", "data": None}
        t0 = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        for ws in clients:
            code, _ = ws.wait_close(5)
            assert code == 1001
            ws.close_frame(1001)
        for ws in clients:
            assert ws.wait_eof(5)
            ws.close()
        h.proc.wait(10)
        assert time.monotonic() - t0 < 5
        assert h.stop() == 0
        assert not os.path.exists(ws_sock), "ws unix socket left behind"
        assert not os.path.exists(h.api_socket), "api socket left behind"
    finally:
        h.cleanup()


def test_sigterm_with_websockets_clients_tcp(run):
    with Herald(workers=2) as h:
        async def go():
            async with h.connect(h.token("a")) as a, h.connect(h.token("b"), via="protocol") as b:
                h.proc.send_signal(signal.SIGTERM)
                for ws in (a, b):
                    with pytest.raises(websockets.exceptions.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 5)
                    assert ws.close_code == 1001
        run(go())
        h.proc.wait(10)
        assert h.stop() == 0
        assert not os.path.exists(h.api_socket)


def test_shutdown_does_not_wait_forever_for_clients_that_never_answer(run):
    h = Herald(config={"shutdown_timeout": "1s"}, workers=2)
    h.start()
    try:
        mute = [h.raw_ws("mute%d" % i) for i in range(3)]
        t0 = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        h.proc.wait(8)
        assert time.monotonic() - t0 < 4, "exit took %.1fs with shutdown_timeout=1s" % (
            time.monotonic() - t0)
        assert h.stop() == 0
        for ws in mute:
            code, _ = ws.wait_close(2)
            assert code == 1001
            ws.close()
    finally:
        h.cleanup()


def test_sigint_also_shuts_down_cleanly():
    with Herald(workers=1) as h:
        with h.raw_ws("int") as ws:
            assert h.stop(signal.SIGINT) == 0
            code, _ = ws.wait_close(3)
            assert code == 1001


# -- the API socket's file: mode and group ----------------------------------

def test_api_socket_is_0660_by_default():
    import stat as st
    with Herald(workers=1) as h:
        mode = st.S_IMODE(os.stat(h.api_socket).st_mode)
        assert mode == 0o660, oct(mode)


def test_api_socket_mode_and_group_are_configurable():
    """Only the configured group (a site's PHP user) may publish: the file says so."""
    import grp
    import stat as st
    group = grp.getgrnam("nogroup")
    with Herald(workers=1, config={"api_socket_mode": "0600",
                                   "api_socket_group": "nogroup"}) as h:
        info = os.stat(h.api_socket)
        assert st.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
        assert info.st_gid == group.gr_gid
        assert h.api("GET", "/health")[0] == 200


def test_an_unknown_api_socket_group_stops_startup_with_a_clear_error():
    h = Herald(workers=1, config={"api_socket_group": "no-such-group-herald"})
    with pytest.raises(RuntimeError) as e:
        h.start()
    assert "api_socket_group: no group named no-such-group-herald" in str(e.value)
    assert "(exit status 1)" in str(e.value)

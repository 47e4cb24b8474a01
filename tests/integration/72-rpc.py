"""
72-rpc.py -- RPC and the connect/disconnect hooks (docs/protocol.md section 3) with the real
Herald, a real php-fpm started here (tests/lib/phpfpm.py) running tests/integration/php/rpc.php
through php-client/herald.php's herald_rpc_request()/herald_rpc_reply()/herald_rpc_error(), and
real WebSocket clients.

Proves:
- a round trip: PHP sees the verified user id (null when anonymous), the connection id (the same
  for every call of one connection, and the one its connect hook saw), the data, the time and
  Herald's FastCGI parameters, and its answer comes back as {"op":"reply","ref","data"}; the
  signature check in the script refuses requests that do not come from Herald;
- a php-fpm slower than rpc_timeout: rpc_timeout after about rpc_timeout, the late answer
  dropped, and meanwhile the worker is not blocked (on a single-worker Herald another client's
  RPC, a publish and a bystander are served promptly);
- failing PHP: a fatal error (rpc_failed), a bare 503 (rpc_failed), an error code Herald must not
  relay (rpc_failed), text that is not JSON (rpc_bad_reply), a reply over max_message_size
  (rpc_bad_reply); herald_rpc_error() reaches the client with its own code and message;
- php-fpm stopped: rpc_unavailable at once, the connect hook failing silently, and everything
  working again once php-fpm is back;
- limits: rpc_max_per_conn (rpc_busy for that connection only; its own connect hook does not
  count) and rpc_max_inflight (rpc_busy for the whole site, hooks over it dropped and counted
  in rpc.dropped; that one site's budget is not another's: 82-hostile-ws); RPC not configured: rpc_disabled; bad method names: bad_command;
- the connect and disconnect hooks: called with the user and connection id, disconnect however
  the connection ended (close frame, TCP FIN or RST without a close frame, closed by Herald for
  a protocol error);
- /stats rpc counters (calls, replies, app_errors, failed, inflight) and client_errors for every
  error Herald makes; each error leaves the connection open and a bystander receiving.
"""

import asyncio
import time

import pytest

import rawws
from herald import Bystander, Herald, uid
from phpfpm import PhpFpm
from wscmd import ErrorCounts, client, error_msg, expect_error

HERALD_CONFIG = {
    "allow_anonymous": "yes",
    "public_channels": "public:*",
    "rpc_timeout": "1s",
    "rpc_max_per_conn": "2",
    "rpc_hooks": "connect disconnect",
    "max_message_size": "64k",
}
HERALD_WORKERS = 2
PHPFPM_CHILDREN = 8
HERALD_PHPFPM = True      # the herald fixture (conftest.py): RPC and hooks to php-fpm


def rpc_stats(h):
    return dict(h.stats()["rpc"])


def reply_of(ans, ref):
    assert ans.get("op") == "reply" and ans.get("ref") == ref and set(ans) == \
        {"op", "ref", "data"}, "expected a reply to %r, got %r" % (ref, ans)
    return ans["data"]


# -- the PHP side of the harness -----------------------------------------------

def test_the_script_refuses_requests_that_do_not_come_from_herald(herald, phpfpm):
    body = {"type": "rpc", "method": "echo", "user": "42", "connection": "c1",
            "data": {"x": 1}, "time": int(time.time())}
    r = phpfpm.request(body)
    assert r.status == 200 and r.body.startswith(b"{"), r
    r = phpfpm.request(body, signature="0" * 64)
    assert r.status == 403, r
    assert b'"forbidden"' in r.body
    r = phpfpm.request(dict(body, time=int(time.time()) - 600))
    assert r.status == 403, r


# -- round trip ---------------------------------------------------------------

def test_rpc_round_trip_with_user_connection_and_data(herald, run, phpfpm):
    u = uid("rt")
    data = {"list": [1, 2.5, {"b": None}], "s": "caf\u00e9 \u2713 \"q\"", "t": True, "n": -7}

    async def go():
        async with client(herald, u) as c, client(herald, u) as c2:
            got = reply_of(await c.call("rpc", method="echo", data=data), 1)
            assert got["type"] == "rpc" and got["method"] == "echo", got
            assert got["user"] == u and got["data"] == data, got
            assert got["uri"] == "/herald/rpc", got
            assert isinstance(got["connection"], str) and got["connection"], got
            assert isinstance(got["time"], int) and abs(got["time"] - time.time()) < 60, got
            conn_id = got["connection"]

            # No data: null. The same connection id for the same connection.
            got = reply_of(await c.call("rpc", method="echo"), 2)
            assert got["data"] is None and got["connection"] == conn_id, got
            # Another tab of the same user: another connection id.
            got = reply_of(await c2.call("rpc", method="echo", data=0), 1)
            assert got["user"] == u and got["data"] == 0 and got["connection"] != conn_id, got
            # A string ref comes back as is; every JSON type survives both ways.
            for i, v in enumerate([None, "", "x" * 30000, [], {}, 1.5, False]):
                ref = "r-%d" % i
                await c.send({"op": "rpc", "method": "echo", "data": v, "ref": ref})
                assert reply_of(await c.answer(ref), ref)["data"] == v
            # A reply that is not an object.
            got = reply_of(await c.call("rpc", method="big", data={"bytes": 5}), 3)
            assert got == "xxxxx"
        return conn_id

    rejected = len(phpfpm.calls(rejected=True))
    conn_id = run(go())
    assert len(phpfpm.calls(rejected=True)) == rejected, "the script refused Herald's signature"
    calls = [x for x in phpfpm.calls(type="rpc", user=u) if x.get("connection") == conn_id]
    assert len(calls) >= 2, calls
    srv = calls[0]["server"]
    assert srv["REQUEST_METHOD"] == "POST" and srv["REQUEST_URI"] == "/herald/rpc", srv
    assert srv["CONTENT_TYPE"] == "application/json", srv
    assert srv["SERVER_SOFTWARE"].startswith("herald/"), srv
    assert srv["GATEWAY_INTERFACE"] == "CGI/1.1" and srv["SERVER_PROTOCOL"] == "HTTP/1.1", srv
    assert srv["REMOTE_ADDR"] == "127.0.0.1" and srv["HAS_SIGNATURE"] is True, srv
    assert int(srv["CONTENT_LENGTH"]) > 0
    # The connect hook saw the same connection id.
    assert [x["connection"] for x in phpfpm.calls(type="connect", user=u)].count(conn_id) == 1


def test_anonymous_rpc_has_a_null_user(herald, run):
    async def go():
        async with client(herald) as anon:
            got = reply_of(await anon.call("rpc", method="echo", data="hi"), 1)
            assert got["user"] is None and got["data"] == "hi", got
    run(go())


# -- PHP's own errors and PHP failing ---------------------------------------------

@pytest.mark.parametrize("data,code,message", [
    (None, "out_of_stock", "no more items"),
    ({"code": "conflict.v2-x", "message": "already taken \u2713", "status": 409},
     "conflict.v2-x", "already taken \u2713"),
    ({"code": "c" * 64, "message": "m", "status": 599}, "c" * 64, "m"),
])
def test_herald_rpc_error_reaches_the_client_with_its_code(herald, run, bystander, data, code,
                                                           message):
    async def go():
        async with client(herald, uid("ae")) as c:
            counts = ErrorCounts(herald)
            before = rpc_stats(herald)
            ans = await c.call("rpc", method="apperror", data=data)
            assert ans == {"op": "error", "ref": 1, "code": code, "message": message}
            await c.alive()
            counts.check(code="rpc_failed", n=0)     # PHP's errors are not Herald's
            after = rpc_stats(herald)
            assert after["app_errors"] - before["app_errors"] == 1, (before, after)
            bystander.check()
    run(go())


def test_unknown_method_is_answered_by_php(herald, run):
    async def go():
        async with client(herald, uid("nm")) as c:
            method = "A-z.0:_" + "m" * 93
            assert len(method) == 100
            ans = await c.call("rpc", method=method)
            assert ans == {"op": "error", "ref": 1, "code": "no_such_method",
                           "message": "unknown method " + method}
    run(go())


@pytest.mark.parametrize("method,data,code", [
    ("fatal", None, "rpc_failed"),
    ("status", {"status": 503}, "rpc_failed"),
    ("status", {"status": 400}, "rpc_failed"),
    ("badcode", None, "rpc_failed"),
    ("notjson", None, "rpc_bad_reply"),
    ("big", {"bytes": 100000}, "rpc_bad_reply"),
], ids=["fatal", "bare_503", "bare_400", "bad_error_code", "not_json", "over_max_message_size"])
def test_failing_php_is_answered_with_herald_error(herald, run, bystander, phpfpm, method, data,
                                                  code):
    async def go():
        async with client(herald, uid("f")) as c:
            assert phpfpm.wait_calls(1, type="connect", user=c.user)
            assert herald.wait_stat("rpc.inflight", 0)["rpc"]["inflight"] == 0
            before = rpc_stats(herald)
            await expect_error(herald, c, bystander, code, "rpc", method=method, data=data)
            after = rpc_stats(herald)
            assert after["failed"] - before["failed"] == 1, (before, after)
            assert after["calls"] - before["calls"] == 1, (before, after)
            # And the next call works.
            assert reply_of(await c.call("rpc", method="echo", data=2), c.ref)["data"] == 2
    run(go())


# -- slow php-fpm --------------------------------------------------------------

def test_slow_php_times_out_and_other_clients_are_unaffected(herald, run, bystander, phpfpm):
    async def go():
        async with client(herald, uid("slow")) as slow, client(herald, uid("other")) as other:
            counts = ErrorCounts(herald)
            t0 = time.monotonic()
            ref = await slow.start("rpc", method="slow", data={"ms": 3000})
            assert phpfpm.wait_calls(1, method="slow", user=slow.user), "PHP never got it"
            got = reply_of(await other.call("rpc", method="echo", data=1, timeout=0.8), 1)
            assert got["data"] == 1
            bystander.check()
            ans = await slow.answer(ref, timeout=3)
            took = time.monotonic() - t0
            error_msg(ans, "rpc_timeout", ref)
            assert 0.9 <= took < 2.5, "rpc_timeout 1s answered after %.2fs" % took
            counts.check("rpc_timeout")
            # PHP answers at 3 s: nothing more reaches the client.
            await slow.nothing(max(0.1, 3.6 - (time.monotonic() - t0)))
            await slow.alive()
    run(go())


def test_slow_rpc_does_not_block_its_worker(run):
    """One worker: everything below shares the loop that waits for PHP."""
    with PhpFpm(children=4) as fpm, fpm.herald(HERALD_CONFIG, workers=1) as h:
        b = Bystander(h)
        ch = "public:" + uid()

        async def go():
            async with client(h, uid("slow")) as slow, client(h, uid("other")) as other, \
                    client(h, uid("sub")) as sub:
                await sub.subscribe(ch)
                t0 = time.monotonic()
                ref = await slow.start("rpc", method="slow", data={"ms": 2500})
                assert fpm.wait_calls(1, method="slow"), "PHP never got it"
                t1 = time.monotonic()
                assert h.publish([sub.user], "direct", 1) == 1
                assert await sub.next(0.5) == {"event": "direct", "data": 1}
                await other.subscribe(ch)
                await other.ok("unsubscribe", channel=ch)
                assert reply_of(await other.call("rpc", method="echo", data=7, timeout=0.8),
                                3)["data"] == 7
                j = h.api_ok("POST", "/publish", {"channel": ch, "event": "e", "data": 2})
                assert j["delivered"] == 1
                assert await sub.next(0.5) == {"channel": ch, "event": "e", "data": 2}
                b.check()
                served = time.monotonic() - t1
                assert served < 0.9, "the worker served others in %.2fs during a slow RPC" % served
                error_msg(await slow.answer(ref, timeout=3), "rpc_timeout", ref)
                assert time.monotonic() - t0 < 2.5
                await slow.nothing(max(0.1, 3.0 - (time.monotonic() - t0)))
                await slow.alive()
        try:
            run(go())
        finally:
            b.close()


# -- php-fpm stopped -------------------------------------------------------------

def test_php_fpm_stopped_is_rpc_unavailable_then_back(herald, run, bystander, phpfpm):
    async def go():
        async with client(herald, uid("down")) as c:
            assert reply_of(await c.call("rpc", method="echo", data=1), 1)["data"] == 1
            phpfpm.stop()
            try:
                t0 = time.monotonic()
                await expect_error(herald, c, bystander, "rpc_unavailable", "rpc", method="echo")
                assert time.monotonic() - t0 < 0.9, "rpc_unavailable must not wait rpc_timeout"
                # A connection made now: its connect hook fails, silently.
                before = rpc_stats(herald)
                async with client(herald, uid("new")) as new:
                    await new.subscribe("public:" + uid())
                    assert herald.publish([new.user], "hello", 1) == 1
                    assert await new.next() == {"event": "hello", "data": 1}
                    await new.nothing(0.2)
                    deadline = time.monotonic() + 3
                    while rpc_stats(herald)["failed"] == before["failed"] and \
                            time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert rpc_stats(herald)["failed"] > before["failed"]
            finally:
                phpfpm.start()
            assert reply_of(await c.call("rpc", method="echo", data=3), c.ref)["data"] == 3
    run(go())


# -- limits ----------------------------------------------------------------------

def test_rpc_max_per_conn_is_rpc_busy_for_that_connection_only(herald, run, bystander, phpfpm):
    async def go():
        async with client(herald, uid("busy")) as c, client(herald, uid("free")) as free:
            # Let the connect hooks finish first: only the client's own calls are in flight.
            assert phpfpm.wait_calls(1, type="connect", user=c.user)
            assert phpfpm.wait_calls(1, type="connect", user=free.user)
            await asyncio.sleep(0.2)
            counts = ErrorCounts(herald)
            r1 = await c.start("rpc", method="slow", data={"ms": 600})
            r2 = await c.start("rpc", method="slow", data={"ms": 600})
            t0 = time.monotonic()
            r3 = await c.start("rpc", method="echo", data=3)
            error_msg(await c.answer(r3, timeout=0.5), "rpc_busy", r3)
            assert time.monotonic() - t0 < 0.5
            assert reply_of(await free.call("rpc", method="echo", data=4, timeout=0.5),
                            1)["data"] == 4
            assert reply_of(await c.answer(r1, timeout=2), r1) == {"slept": 600}
            assert reply_of(await c.answer(r2, timeout=2), r2) == {"slept": 600}
            counts.check("rpc_busy")
            assert reply_of(await c.call("rpc", method="echo", data=5), c.ref)["data"] == 5
            bystander.check()
    run(go())


def test_the_connect_hook_does_not_use_up_the_clients_rpc_calls(herald, run):
    # PHP answers this user's connect hook after 0.5 s; meanwhile the client makes
    # rpc_max_per_conn (2) calls of its own, which is within its limit.
    async def go():
        async with client(herald, uid("slowconnect")) as c:
            r1 = await c.start("rpc", method="echo", data=1)
            r2 = await c.start("rpc", method="echo", data=2)
            assert reply_of(await c.answer(r1, timeout=2), r1)["data"] == 1
            assert reply_of(await c.answer(r2, timeout=2), r2)["data"] == 2
    run(go())


def test_rpc_max_inflight_is_rpc_busy_for_everyone_and_drops_hooks(run):
    with PhpFpm(children=4) as fpm, \
            fpm.herald({"rpc_timeout": "2s", "rpc_max_inflight": "2", "rpc_hooks": "connect"},
                       workers=2) as h:
        async def go():
            async with client(h, uid("a")) as a, client(h, uid("b")) as b:
                assert len(fpm.wait_calls(2, type="connect")) == 2
                assert h.wait_stat("rpc.inflight", 0)["rpc"]["inflight"] == 0
                counts = ErrorCounts(h)
                r1 = await a.start("rpc", method="slow", data={"ms": 800})
                r2 = await a.start("rpc", method="slow", data={"ms": 800})
                assert len(fpm.wait_calls(2, method="slow")) == 2
                s = h.stats()["rpc"]
                assert s["inflight"] == 2, s
                error_msg(await b.call("rpc", method="echo", timeout=0.5), "rpc_busy", 1)
                counts.check("rpc_busy")
                # A connection made now: its connect hook is dropped, and counted.
                async with client(h, uid("late")) as late:
                    await late.alive()
                    s2 = h.wait_stat("rpc.dropped", s["dropped"] + 1)["rpc"]
                    assert s2["dropped"] == s["dropped"] + 1, (s, s2)
                    assert fpm.calls(type="connect", user=late.user) == []
                assert reply_of(await a.answer(r1, timeout=2), r1) == {"slept": 800}
                assert reply_of(await a.answer(r2, timeout=2), r2) == {"slept": 800}
                assert h.wait_stat("rpc.inflight", 0)["rpc"]["inflight"] == 0
                assert reply_of(await b.call("rpc", method="echo", data=1), 2)["data"] == 1
        run(go())


def test_rpc_not_configured_is_rpc_disabled(run):
    with Herald(config={"allow_anonymous": "yes"}, workers=1) as h:
        b = Bystander(h)

        async def go():
            async with client(h, uid("nr")) as c, client(h) as anon:
                await expect_error(h, c, b, "rpc_disabled", "rpc", method="echo", data=1)
                await expect_error(h, anon, b, "rpc_disabled", "rpc", method="echo")
        try:
            run(go())
        finally:
            b.close()


@pytest.mark.parametrize("fields", [
    {},
    {"method": ""},
    {"method": "m" * 101},
    {"method": "tasks list"},
    {"method": "tasks/list"},
    {"method": "t\u00e2ches"},
    {"method": 7},
    {"method": ["echo"]},
], ids=["missing", "empty", "too_long", "space", "slash", "non_ascii", "int", "array"])
def test_bad_method_is_bad_command(herald, run, bystander, phpfpm, fields):
    async def go():
        async with client(herald, uid("bm")) as c:
            n = len(phpfpm.calls(type="rpc"))
            await expect_error(herald, c, bystander, "bad_command", "rpc", data=1, **fields)
            assert len(phpfpm.calls(type="rpc")) == n, "a bad method reached PHP"
    run(go())


# -- hooks ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["close_frame", "abort", "rst", "protocol_error"])
def test_connect_and_disconnect_hooks_however_the_connection_ends(herald, run, phpfpm, how):
    u = uid("hook")

    async def go():
        if how == "protocol_error":
            ws = herald.raw_ws(u)
            try:
                ws.send(rawws.build_frame(rawws.OP_TEXT, b"{}", mask=False))   # 1002
                assert ws.wait_close()[0] == 1002
            finally:
                ws.close()
            return
        async with client(herald, u) as c:
            assert reply_of(await c.call("rpc", method="echo"), 1)["user"] == u
            if how == "abort":
                c.abort()
            elif how == "rst":
                c.rst()

    run(go())
    connects = phpfpm.wait_calls(1, type="connect", user=u)
    assert len(connects) == 1, connects
    conn_id = connects[0]["connection"]
    assert isinstance(conn_id, str) and conn_id
    assert connects[0]["server"]["REQUEST_URI"] == "/herald/connect"
    disconnects = phpfpm.wait_calls(1, timeout=5, type="disconnect", user=u)
    assert [d["connection"] for d in disconnects] == [conn_id], disconnects
    assert disconnects[0]["server"]["REQUEST_URI"] == "/herald/disconnect"
    assert abs(disconnects[0]["time"] - time.time()) < 60


def test_anonymous_connections_call_the_hooks_with_a_null_user(herald, run, phpfpm):
    before = len(phpfpm.calls(type="connect", user=None))

    async def go():
        async with client(herald) as anon:
            got = reply_of(await anon.call("rpc", method="echo"), 1)
            return got["connection"]

    conn_id = run(go())
    assert [c["connection"] for c in phpfpm.wait_calls(before + 1, type="connect", user=None)
            ][before:] == [conn_id]
    assert conn_id in [c["connection"] for c in
                       phpfpm.wait_calls(1, timeout=5, type="disconnect", connection=conn_id)]


# -- /stats --------------------------------------------------------------------------

def test_stats_count_calls_replies_app_errors_and_failures(herald, run, phpfpm):
    u = uid("st")

    async def go():
        async with client(herald, u) as c:
            assert phpfpm.wait_calls(1, type="connect", user=u)
            # Every hook (this connection's connect, earlier ones' disconnect) has finished.
            assert herald.wait_stat("rpc.inflight", 0)["rpc"]["inflight"] == 0
            before = rpc_stats(herald)
            reply_of(await c.call("rpc", method="echo"), 1)
            assert (await c.call("rpc", method="apperror"))["code"] == "out_of_stock"
            error_msg(await c.call("rpc", method="fatal"), "rpc_failed", 3)
            after = rpc_stats(herald)
            delta = {k: after[k] - before[k] for k in ("calls", "replies", "app_errors", "failed",
                                                       "dropped")}
            assert delta == {"calls": 3, "replies": 1, "app_errors": 1, "failed": 1,
                             "dropped": 0}, (before, after)
            assert after["inflight"] == 0
    run(go())

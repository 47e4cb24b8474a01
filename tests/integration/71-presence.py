"""
71-presence.py -- presence channels (docs/protocol.md, "Presence" and GET /presence) with the
real Herald and real WebSocket clients.

Proves: a user's first tab in a channel makes one join (with the info claim of that tab's token)
for every subscriber, further tabs are silent, and only the last tab going makes one leave,
whether it unsubscribes, closes normally, drops TCP without a close frame (FIN or RST), is a
process killed with SIGKILL, stops answering pings, or stops reading and is closed with 1008; ten tabs over both workers subscribing
or vanishing at the same moment still make exactly one join and one leave; the subscribe ok
answer lists the members, the subscriber included; GET /presence?channel= (members, info,
connections) and ?user= (online, connections) through FastCGI, and their 400s; anonymous
subscribers are not members; every subscriber sees one channel's events in the same order.
"""

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

import rawws
from herald import Herald, _pdeathsig, by_user, uid
from wscmd import NoMessage, client

HERALD_CONFIG = {
    "allow_anonymous": "yes",
    "public_channels": "room:* lobby",
    "presence_channels": "room:*",
}
HERALD_WORKERS = 2


def info_of(user):
    return {"name": "N " + user, "tags": ["a", 1]}


def member(user):
    return {"user": user, "info": info_of(user)}


def tab(h, user, info=None):
    """A client of `user` whose token carries an info claim."""
    return client(h, user, info=info_of(user) if info is None else info)


def join(ch, user, info=None):
    return {"op": "join", "channel": ch, "user": user,
            "info": info_of(user) if info is None else info}


def leave(ch, user):
    return {"op": "leave", "channel": ch, "user": user}


async def presence_event(c, timeout=3.0):
    """The next join or leave on c, passing over a join for c's own user (its own arrival)."""
    deadline = time.monotonic() + timeout
    while True:
        m = await c.next(max(0.01, deadline - time.monotonic()))
        assert m.get("op") in ("join", "leave"), "expected join or leave, got %r" % (m,)
        if m["op"] == "join" and m["user"] == c.user:
            continue
        return m


async def no_presence(c, timeout=0.4):
    """Assert no join or leave reaches c (its own user's join excepted) within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            m = await c.next(max(0.01, deadline - time.monotonic()))
        except NoMessage:
            return
        if m.get("op") == "join" and m.get("user") == c.user:
            continue
        raise AssertionError("expected no presence event, got %r" % (m,))


async def wait_online(h, user, want, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        got = h.online(user)
        if got == want or time.monotonic() > deadline:
            assert got == want, "/presence?user=%s is %r, expected %r" % (user, got, want)
            return
        await asyncio.sleep(0.05)


async def observe(h, ch, stack):
    """An observer connection subscribed to ch (entered into the AsyncExitStack)."""
    o = await stack.enter_async_context(tab(h, uid("obs")))
    await o.subscribe(ch)
    return o


# -- join, silence, leave ----------------------------------------------------------

def test_first_tab_joins_other_tabs_are_silent_last_tab_leaves(herald, run):
    ch, ann, obs = "room:" + uid(), uid("ann"), uid("obs")

    async def go():
        async with tab(herald, obs) as o:
            ans = await o.subscribe(ch)
            assert ans == {"op": "ok", "ref": 1, "members": [member(obs)]}
            async with tab(herald, ann) as t1:
                ans = await t1.subscribe(ch)
                assert set(ans) == {"op", "ref", "members"}
                assert by_user(ans["members"]) == by_user([member(ann), member(obs)])
                assert await presence_event(o) == join(ch, ann)

                # A second tab with other info: silent, and the first tab's info stays.
                async with tab(herald, ann, info={"name": "second"}) as t2:
                    ans = await t2.subscribe(ch)
                    assert by_user(ans["members"]) == by_user([member(ann), member(obs)])
                    await no_presence(o)
                    await no_presence(t1)
                    assert herald.members(ch) == by_user([
                        dict(member(ann), connections=2), dict(member(obs), connections=1)])
                    assert herald.online(ann) == (True, 2)

                    # The first tab leaves the channel: still a member through the second.
                    await t1.ok("unsubscribe", channel=ch)
                    await no_presence(o)
                    assert herald.members(ch) == by_user([
                        dict(member(ann), connections=1), dict(member(obs), connections=1)])
                # The second (last) tab closes: one leave.
                assert await presence_event(o) == leave(ch, ann)
                await no_presence(o)
                await no_presence(t1)
                assert herald.members(ch) == [dict(member(obs), connections=1)]
                # t1 is still connected, just not in the channel.
                assert herald.online(ann) == (True, 1)
            await wait_online(herald, ann, (False, 0))
    run(go())


def test_last_tab_unsubscribing_leaves_and_coming_back_joins_again(herald, run):
    ch, ann = "room:" + uid(), uid("ann")

    async def go():
        async with tab(herald, uid("obs")) as o, tab(herald, ann) as t:
            await o.subscribe(ch)
            await t.subscribe(ch)
            assert await presence_event(o) == join(ch, ann)
            await t.ok("unsubscribe", channel=ch)
            assert await presence_event(o) == leave(ch, ann)
            await t.ok("unsubscribe", channel=ch)        # again: ok, no second leave
            await t.subscribe(ch)
            assert await presence_event(o) == join(ch, ann)
            await no_presence(o)
    run(go())


CHILD = r"""
import asyncio, json, sys
import websockets.client

async def main():
    ws = await websockets.client.connect(sys.argv[1], open_timeout=5)
    await ws.send(json.dumps({"op": "subscribe", "channel": sys.argv[2], "ref": 1}))
    print(await asyncio.wait_for(ws.recv(), 5), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def killed_client(h, user, ch):
    """A separate process holding a subscribed connection of `user`, then SIGKILLed by PID."""
    url = h.ws_url + "?token=" + h.token(user, info=info_of(user))
    proc = subprocess.Popen(["/usr/bin/python3", "-c", CHILD, url, ch], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_pdeathsig)
    try:
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 10)
        assert b'"ok"' in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
        return proc
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise


@pytest.mark.parametrize("how", ["abort", "rst", "raw_close", "kill_process"])
def test_abrupt_disconnect_of_the_last_tab_still_leaves(herald, run, how):
    ch, ann = "room:" + uid(), uid("ann")

    async def go():
        async with tab(herald, uid("obs")) as o:
            await o.subscribe(ch)
            if how in ("abort", "rst"):
                async with tab(herald, ann) as t:
                    await t.subscribe(ch)
                    assert await presence_event(o) == join(ch, ann)
                    if how == "abort":
                        t.abort()
                    else:
                        t.rst()
                    assert await presence_event(o, 5) == leave(ch, ann)
            elif how == "raw_close":
                ws = herald.raw_ws(token=herald.token(ann, info=info_of(ann)))
                try:
                    ws.send_frame(rawws.OP_TEXT, '{"op":"subscribe","channel":"%s","ref":1}' % ch)
                    f = ws.recv_data()
                    assert f.opcode == rawws.OP_TEXT and b'"ok"' in f.payload, f
                    assert await presence_event(o) == join(ch, ann)
                finally:
                    ws.close()                  # FIN, no close frame
                assert await presence_event(o, 5) == leave(ch, ann)
            else:
                proc = await killed_client(herald, ann, ch)
                try:
                    assert await presence_event(o) == join(ch, ann)
                finally:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                    proc.stdout.close()
                    proc.stderr.close()
                assert await presence_event(o, 5) == leave(ch, ann)
            await no_presence(o)
            await wait_online(herald, ann, (False, 0))
            assert herald.members(ch) == [dict(member(o.user), connections=1)]
    run(go())


def test_ten_tabs_over_both_workers_make_one_join_and_one_leave(herald, run):
    ch, ann, bob = "room:" + uid(), uid("ann"), uid("bob")

    async def go():
        async with tab(herald, uid("obs")) as o, tab(herald, bob) as b:
            await o.subscribe(ch)
            await b.subscribe(ch)
            assert await presence_event(o) == join(ch, bob)
            # Round 1: ten tabs subscribe at once; nine go one way or another, then the last.
            cms = [tab(herald, ann) for _ in range(10)]
            tabs = [await cm.__aenter__() for cm in cms]
            try:
                await asyncio.gather(*(t.subscribe(ch) for t in tabs))
                assert await presence_event(o) == join(ch, ann)
                assert await presence_event(b) == join(ch, ann)
                await no_presence(o)
                assert herald.members(ch) == by_user([
                    dict(member(ann), connections=10), dict(member(bob), connections=1),
                    dict(member(o.user), connections=1)])
                assert herald.online(ann) == (True, 10)
                for i, t in enumerate(tabs[:9]):
                    if i % 3 == 0:
                        t.abort()
                    elif i % 3 == 1:
                        await t.ok("unsubscribe", channel=ch)
                    else:
                        await t.ws.close()
                await no_presence(o, 0.5)
                await no_presence(b, 0.1)
                await wait_online(herald, ann, (True, 4))   # three tabs only unsubscribed
                assert [m for m in herald.members(ch) if m["user"] == ann] == \
                    [dict(member(ann), connections=1)]
                tabs[9].abort()
                assert await presence_event(o, 5) == leave(ch, ann)
                assert await presence_event(b, 5) == leave(ch, ann)
                await no_presence(o)
            finally:
                for cm in cms:
                    await cm.__aexit__(None, None, None)

            # Round 2: ten tabs come and then all vanish at the same moment.
            cms = [tab(herald, ann) for _ in range(10)]
            tabs = [await cm.__aenter__() for cm in cms]
            try:
                await asyncio.gather(*(t.subscribe(ch) for t in tabs))
                assert await presence_event(o) == join(ch, ann)
                for t in tabs:
                    t.abort()
                assert await presence_event(o, 5) == leave(ch, ann)
                await no_presence(o, 0.6)
            finally:
                for cm in cms:
                    await cm.__aexit__(None, None, None)
            await wait_online(herald, ann, (False, 0))
    run(go(), timeout=45)


# -- what members look like -----------------------------------------------------

def test_info_claim_and_integer_user_ids_in_answers_events_and_api(herald, run):
    ch = "room:" + uid()
    n = int(uuid.uuid4().int % 10 ** 9)
    rich = {"name": "Zoë \"Z\"", "avatar": "/a/1.png", "roles": ["admin"], "n": 3,
            "nested": {"ok": True, "none": None}}

    async def go():
        async with tab(herald, uid("obs")) as o, \
                client(herald, token=herald.token(n, info=rich)) as z:
            await o.subscribe(ch)
            ans = await z.subscribe(ch)
            assert {"user": str(n), "info": rich} in ans["members"], ans
            assert await presence_event(o) == join(ch, str(n), rich)
            assert dict(user=str(n), info=rich, connections=1) in herald.members(ch)
            assert herald.online(str(n)) == (True, 1)
    run(go())


def test_anonymous_subscribers_are_not_members_but_see_events(herald, run):
    ch, ann = "room:" + uid(), uid("ann")

    async def go():
        async with tab(herald, uid("obs")) as o:
            await o.subscribe(ch)
            async with client(herald) as anon:
                anon_ok = await anon.subscribe(ch)
                await no_presence(o)
                assert herald.members(ch) == [dict(member(o.user), connections=1)]
                async with tab(herald, ann) as t:
                    ans = await t.subscribe(ch)
                    assert by_user(ans["members"]) == by_user([member(ann), member(o.user)])
                    assert await presence_event(anon) == join(ch, ann)
                    assert await presence_event(o) == join(ch, ann)
                assert await presence_event(anon) == leave(ch, ann)
                assert await presence_event(o) == leave(ch, ann)
            await no_presence(o)
            # Not a member, but told who is, like any subscriber of a presence channel.
            assert anon_ok.get("members") == [member(o.user)], anon_ok
    run(go())


def test_every_subscriber_sees_one_channels_events_in_the_same_order(herald, run):
    ch = "room:" + uid()
    users = [uid("p%d" % i) for i in range(6)]

    async def go():
        stack_cms = [tab(herald, uid("obs%d" % i)) for i in range(4)]
        observers = [await cm.__aenter__() for cm in stack_cms]
        cms = []
        try:
            for ob in observers:
                await ob.subscribe(ch)
            # Drain the observers' joins of one another.
            for i, ob in enumerate(observers):
                for _ in range(len(observers) - 1 - i):
                    await presence_event(ob)
            cms = [tab(herald, u) for u in users]
            members = [await cm.__aenter__() for cm in cms]
            await asyncio.gather(*(m.subscribe(ch) for m in members))
            for i, m in enumerate(members):
                if i % 2:
                    m.abort()
                else:
                    await m.start("unsubscribe", channel=ch)
            seqs = []
            for ob in observers:
                seqs.append([(e["op"], e["user"]) for e in
                             [await presence_event(ob, 5) for _ in range(12)]])
                await no_presence(ob, 0.2)
            for s in seqs:
                assert s == seqs[0], "observers saw different orders:\n%r\n%r" % (seqs[0], s)
                for u in users:
                    assert s.index(("join", u)) < s.index(("leave", u)), s
        finally:
            for cm in cms + stack_cms:
                await cm.__aexit__(None, None, None)
    run(go(), timeout=45)


def test_a_publish_to_a_presence_channel_reaches_its_subscribers(herald, run):
    ch = "room:" + uid()

    async def go():
        async with tab(herald, uid("a")) as a, client(herald) as anon:
            await a.subscribe(ch)
            await anon.subscribe(ch)
            j = herald.api_ok("POST", "/publish", {"channel": ch, "event": "e", "data": 1})
            assert j["delivered"] == 2
            for c in (a, anon):
                m = await c.next()
                while m.get("op") == "join":
                    m = await c.next()
                assert m == {"channel": ch, "event": "e", "data": 1}
    run(go())


# -- the API ----------------------------------------------------------------

@pytest.mark.parametrize("query", ["channel=lobby", "channel=news", "channel=room:a*b",
                                   "channel=", "channel=room:" + "x" * 124])
def test_presence_of_a_channel_that_is_not_a_valid_presence_channel_is_400(herald, query):
    before = herald.stats()["api_errors"]["400"]
    status, headers, j = herald.api("GET", "/presence?" + query)
    assert status == 400, (status, j)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert j["ok"] is False and isinstance(j["error"], str) and j["error"], j
    assert herald.wait_stat("api_errors.400", before + 1)["api_errors"]["400"] == before + 1


def test_presence_of_an_empty_channel_and_an_offline_user(herald):
    ch = "room:" + uid()
    assert herald.api_ok("GET", "/presence?channel=" + ch) == \
        {"ok": True, "channel": ch, "members": []}
    u = uid("nobody")
    assert herald.api_ok("GET", "/presence?user=" + u) == \
        {"ok": True, "user": u, "online": False, "connections": 0}


def test_a_connection_that_stops_answering_pings_leaves(run):
    ch = "room:" + uid()
    cfg = dict(HERALD_CONFIG, ping_interval="1s")
    with Herald(config=cfg, workers=1) as h:
        async def go():
            async with tab(h, uid("obs")) as o:     # websockets answers pings itself
                await o.subscribe(ch)
                ann = uid("ann")
                ws = h.raw_ws(token=h.token(ann, info=info_of(ann)))
                try:
                    ws.send_frame(rawws.OP_TEXT, '{"op":"subscribe","channel":"%s","ref":1}' % ch)
                    assert b'"ok"' in ws.recv_data().payload
                    assert await presence_event(o) == join(ch, ann)
                    # Now silent: no pongs, nothing read. Dropped after two ping periods.
                    t0 = time.monotonic()
                    assert await presence_event(o, 6) == leave(ch, ann)
                    assert time.monotonic() - t0 > 0.9
                finally:
                    ws.close()
                await no_presence(o)
        run(go())


def test_a_reader_closed_with_1008_leaves(run):
    ch = "room:" + uid()
    cfg = dict(HERALD_CONFIG, max_queued_bytes="256k")
    with Herald(config=cfg, workers=1) as h:
        async def go():
            async with tab(h, uid("obs")) as o:
                await o.subscribe(ch)
                ann = uid("ann")
                slow = h.raw_ws(token=h.token(ann, info=info_of(ann)))
                try:
                    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    slow.send_frame(rawws.OP_TEXT,
                                    '{"op":"subscribe","channel":"%s","ref":1}' % ch)
                    assert b'"ok"' in slow.recv_data().payload
                    assert await presence_event(o) == join(ch, ann)
                    # ann never reads again: flood ann alone (up to 18 MB) until Herald
                    # gives up on it (delivered 0), then the observer hears the leave.
                    for _ in range(600):
                        if h.publish([ann], "flood", {"blob": "s" * 30000}) == 0:
                            break
                    else:
                        raise AssertionError("the stalled reader was never dropped")
                    assert await presence_event(o, 5) == leave(ch, ann)
                    assert h.wait_stat("slow_consumers", 1)["slow_consumers"] == 1
                finally:
                    slow.close()
                await no_presence(o)
        run(go())

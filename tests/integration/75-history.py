"""
75-history.py -- history and recovery (docs/protocol.md, "Recovery: ids, history and since")
with the real Herald and real WebSocket clients (websockets).

Proves:
- every message of a stream carries "id": "<8 lowercase hex>:<offset>": to a user (API), into a
  channel (API and client publish); one epoch per daemon; offsets increase within a stream and,
  from one counter, across streams; broadcasts and presence join/leave carry none; the id
  comes first in a user message and right after "channel" in a channel message; a publish to
  two users gives each user's stream its own id, a batch is numbered in its order and keeps
  its per-item delivered counts;
- ?since= (empty) answers {"op":"stream","id":<the stream's position>,"recovered":true} and
  nothing else; without since there is no stream frame; anonymous connections ignore since;
- a reconnect with since = the last id seen gets exactly the messages it missed, oldest first,
  then the stream frame (recovered true, the newest id), then live messages;
- subscribe with since: the missed channel messages, then {"op":"ok","ref","id","recovered"}
  (with members on a presence channel); without since the ok carries the id only;
- recovered false, and nothing replayed, for: an id of the previous run (the daemon restarted),
  a forged epoch, history_size=3 with 5 missed (and true with exactly 3 missed), an id older
  than history_ttl=1s, unparsable and out-of-range ids (a subscribe since longer than any id
  is bad_command); history_max_bytes=1M: the older stream's messages go, the newer's stay;
  history_size=0: no ids, since ignored; anonymous connections recover channels;
- no gap and no duplicate: a client that disconnects and reconnects with since several times
  while the API publishes to its user and its channel and another client publishes into the
  channel receives, over all its connections, exactly the published sequences, in order;
  and a connection that keeps subscribing again to a channel it holds while the API publishes
  into it loses none of the channel's messages;
- several tabs of one user with different since values each get their own replay, then every
  live message once, also with the tabs spread over two workers (the debug log names each
  connection's worker);
- /stats "history" (streams: only those holding a message, messages, bytes: the kept bodies
  with the entries and streams holding them, max_bytes, evicted, not_kept) and "recoveries"
  (ok, failed: only asks with a non-empty since count).
"""

import asyncio
import contextlib
import json
import random
import re
import threading
import time
import urllib.parse

import websockets.client

from herald import Herald, uid
from wstab import parse_id, stream_frame

HERALD_CONFIG = {
    "allow_anonymous": "yes",
    "public_channels": "pub:* chat:* room:*",
    "client_publish": "chat:*",
    "presence_channels": "room:*",
    "history_size": "1000",
    "command_rate": "0",
}
HERALD_WORKERS = 2
EMPTY_HISTORY = {"streams": 0, "messages": 0, "bytes": 0, "max_bytes": 64 << 20, "evicted": 0,
                 "not_kept": 0}

def off(sid):
    return parse_id(sid)[1]


def epoch(sid):
    return parse_id(sid)[0]


def other_epoch(sid):
    """The same offset under another epoch."""
    e, o = parse_id(sid)
    return "%08x:%d" % (int(e, 16) ^ 0x5a5a5a5a, o)


def pub_user(h, user, event, data=None):
    return h.api_ok("POST", "/publish", {"users": [user], "event": event, "data": data})[
        "delivered"]


def pub_chan(h, channel, event, data=None):
    return h.api_ok("POST", "/publish", {"channel": channel, "event": event, "data": data})[
        "delivered"]


class Tab:
    """One WebSocket connection: every message with its id kept, refs counted from 1."""

    def __init__(self, ws):
        self.ws = ws
        self.ref = 0
        self.raw = []          # every text received, in order

    async def next(self, timeout=3.0):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), "expected a text frame, got %r" % (raw,)
        self.raw.append(raw)
        return json.loads(raw)

    async def nothing(self, timeout=0.3):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError("expected no message, got %r" % (raw,))

    async def send(self, **cmd):
        await self.ws.send(json.dumps(cmd))

    async def command(self, op, **fields):
        """Send op with the next ref; returns the ref."""
        self.ref += 1
        await self.send(op=op, ref=self.ref, **fields)
        return self.ref

    async def until_answer(self, ref, timeout=3.0):
        """Messages up to the answer for ref: (messages before it, the answer)."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            m = await self.next(max(0.05, deadline - time.monotonic()))
            if m.get("op") in ("ok", "error") and m.get("ref") == ref:
                return before, m
            before.append(m)

    async def subscribe(self, channel, **fields):
        """subscribe and return (messages replayed before the ok, the ok)."""
        ref = await self.command("subscribe", channel=channel, **fields)
        before, ans = await self.until_answer(ref)
        assert ans.get("op") == "ok", "subscribe %s %r answered %r" % (channel, fields, ans)
        return before, ans

    async def until_stream(self, timeout=3.0):
        """The user stream's replay: (messages before the stream frame, the frame)."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            m = await self.next(max(0.05, deadline - time.monotonic()))
            if m.get("op") == "stream":
                return before, m
            before.append(m)


def ws_url(h, user=None, since=None, quote=True, **claims):
    params = []
    if user is not None:
        params.append("token=" + h.token(user, **claims))
    if since is not None:
        params.append("since=" + (urllib.parse.quote(since, safe="") if quote else since))
    return "ws://127.0.0.1:%d/ws%s" % (h.port, "?" + "&".join(params) if params else "")


@contextlib.asynccontextmanager
async def tab(h, user=None, since=None, quote=True, **claims):
    """A Tab of `user` (None: anonymous), with ?since= when since is not None."""
    async with websockets.client.connect(ws_url(h, user, since, quote, **claims),
                                         open_timeout=5, close_timeout=2,
                                         max_size=None) as ws:
        yield Tab(ws)


def msg(event, data, sid=None):
    """A user message as Herald sends it (sid None: whatever id, checked apart)."""
    return {"event": event, "data": data} if sid is None else \
        {"id": sid, "event": event, "data": data}


def strip(m):
    """m without its id, after checking the id's form."""
    m = dict(m)
    parse_id(m.pop("id"))
    return m


def ok_frame(ans, ref, recovered=None, sid=None, members=None):
    """Check a subscribe ok with a position; recovered None: must not be there."""
    keys = {"op", "ref", "id"} | ({"recovered"} if recovered is not None else set()) | \
        ({"members"} if members is not None else set())
    assert set(ans) == keys, ans
    assert ans["op"] == "ok" and ans["ref"] == ref, ans
    if recovered is not None:
        assert ans["recovered"] is recovered, ans
    if members is not None:
        assert sorted(ans["members"], key=lambda x: x["user"]) == members, ans
    parse_id(ans["id"])
    if sid is not None:
        assert ans["id"] == sid, (ans, sid)
    return ans["id"]


def recoveries(h):
    r = h.stats()["recoveries"]
    return r["ok"], r["failed"]


# -- ids -------------------------------------------------------------------------------------

def test_ids_on_user_and_channel_messages_none_on_broadcast_or_presence(herald, run):
    u, b = uid("ids"), uid("idb")
    room, chat = "room:" + uid(), "chat:" + uid()

    async def go():
        async with tab(herald, u) as a, tab(herald, b) as bt:
            _, ok = await a.subscribe(room)
            ok_frame(ok, 1, members=[{"user": u}])
            room_pos = ok["id"]
            _, ok = await a.subscribe(chat)
            chat_pos = ok_frame(ok, 2)
            await bt.subscribe(room)
            assert await a.next() == {"op": "join", "channel": room, "user": b}
            await bt.subscribe(chat)
            ids = []
            # Sequential publishes to three streams: the counter orders them all.
            for i in range(3):
                assert pub_user(herald, u, "e", i) == 1
                m = await a.next()
                assert strip(m) == msg("e", i), m
                assert a.raw[-1].startswith('{"id":"'), a.raw[-1]
                ids.append(("u", m["id"]))
                assert pub_chan(herald, chat, "deploy", {"v": i}) == 2
                m = await a.next()
                assert strip(m) == {"channel": chat, "event": "deploy", "data": {"v": i}}, m
                assert a.raw[-1].startswith('{"channel":"%s","id":"' % chat), a.raw[-1]
                await bt.next()
                ids.append(("c", m["id"]))
                ref = await bt.command("publish", channel=chat, event="chat", data={"t": i})
                m = await a.next()
                assert strip(m) == {"channel": chat, "event": "chat", "data": {"t": i},
                                    "from": b}, m
                ids.append(("c", m["id"]))
                before, ans = await bt.until_answer(ref)
                assert ans == {"op": "ok", "ref": ref}, ans
                # the sender's echo carries the same id
                echo = before[0] if before else await bt.next()
                assert echo == m, (echo, m)
            epochs = {epoch(sid) for _, sid in ids} | {epoch(room_pos), epoch(chat_pos)}
            assert len(epochs) == 1, ids
            offsets = [off(sid) for _, sid in ids]
            assert offsets == sorted(set(offsets)), ids
            assert off(chat_pos) < offsets[0]
            # a room publish is a stream too; broadcasts and presence are not
            assert pub_chan(herald, room, "r", 1) == 2
            m = await a.next()
            assert off(m["id"]) > offsets[-1] and strip(m) == {"channel": room, "event": "r",
                                                              "data": 1}
            await bt.next()
            assert herald.broadcast("all", {"x": 1}) >= 2
            assert await a.next() == {"event": "all", "data": {"x": 1}}
            assert a.raw[-1] == '{"event":"all","data":{"x":1}}', a.raw[-1]
            await bt.next()
            ref = await bt.command("unsubscribe", channel=room)
            await bt.until_answer(ref)
            assert await a.next() == {"op": "leave", "channel": room, "user": b}
            await a.nothing()
    run(go())


def test_a_publish_to_several_users_and_a_batch_number_each_stream(herald, run):
    a, b, ch = uid("ma"), uid("mb"), "pub:" + uid()

    async def go():
        async with tab(herald, a) as ta, tab(herald, a) as ta2, tab(herald, b) as tb, \
                tab(herald, None) as anon:
            await ta.subscribe(ch)
            await anon.subscribe(ch)
            j = herald.api_ok("POST", "/publish", [
                {"users": [a, b], "event": "both", "data": 1},
                {"channel": ch, "event": "c", "data": 2},
                {"users": [b], "event": "b", "data": 3},
                {"broadcast": True, "event": "all", "data": 4}])
            # delivered counts are still per item of the batch
            assert j["delivered"][:3] == [3, 2, 1] and j["delivered"][3] >= 4, j
            got_a = [await ta.next() for _ in range(3)]
            got_a2 = [await ta2.next() for _ in range(2)]
            got_b = [await tb.next() for _ in range(3)]
            got_anon = [await anon.next() for _ in range(2)]
        # one message to two users: one id in each user's stream, not the same one
        assert strip(got_a[0]) == msg("both", 1) and strip(got_b[0]) == msg("both", 1)
        assert got_a[0]["id"] != got_b[0]["id"]
        # both tabs of a: the same frame, the same id
        assert got_a2 == [got_a[0], got_a[2]]
        assert strip(got_a[1]) == {"channel": ch, "event": "c", "data": 2}
        assert got_anon[0] == got_a[1]
        assert strip(got_b[1]) == msg("b", 3)
        assert got_a[2] == got_b[2] == got_anon[1] == {"event": "all", "data": 4}
        # numbered in the batch's order, from one counter
        offs = [off(got_a[0]["id"]), off(got_b[0]["id"]), off(got_a[1]["id"]),
                off(got_b[1]["id"])]
        assert sorted(offs) == offs and len(set(offs)) == 4, offs
        assert {epoch(m["id"]) for m in (got_a[0], got_b[0], got_a[1], got_b[1])} == \
            {epoch(got_a[0]["id"])}
        # an anonymous connection recovers channels (only the user stream needs a user)
        pub_chan(herald, ch, "c", 5)
        async with tab(herald, None, since=got_a[0]["id"]) as anon:
            replay, ok = await anon.subscribe(ch, since=got_a[1]["id"])
            assert [strip(m) for m in replay] == [{"channel": ch, "event": "c", "data": 5}]
            ok_frame(ok, 1, recovered=True, sid=replay[0]["id"])
    run(go())


def test_since_empty_is_the_position_and_nothing_else(herald, run):
    u = uid("pos")

    async def go():
        # A user nobody published to: the stream is made at the current counter.
        async with tab(herald, u, since="") as t:
            f = await t.next()
            first = stream_frame(f, True)
            await t.nothing()
        async with tab(herald, u) as watch:
            for i in range(2):
                pub_user(herald, u, "e", i)
            seen = [(await watch.next())["id"] for _ in range(2)]
            assert off(first) < off(seen[0]) < off(seen[1])
            async with tab(herald, u, since="") as t:
                stream_frame(await t.next(), True, seen[-1])
                await t.nothing()
            # Without since: no stream frame at all, only live messages.
            async with tab(herald, u) as t:
                await t.nothing()
                pub_user(herald, u, "live", 1)
                assert strip(await t.next()) == msg("live", 1)
                await watch.next()
        # Anonymous connections have no user stream: since is ignored.
        async with tab(herald, None, since="") as anon, \
                tab(herald, None, since=seen[0]) as anon2:
            await anon.nothing()
            await anon2.nothing()
            herald.broadcast("hello")
            assert await anon.next() == {"event": "hello", "data": None}
            assert await anon2.next() == {"event": "hello", "data": None}
    run(go())


# -- recovery ----------------------------------------------------------------------------------

def test_reconnect_with_since_replays_exactly_what_was_missed_then_live(herald, run):
    u, other, ch = uid("rec"), uid("oth"), "pub:" + uid()

    async def go():
        before = recoveries(herald)
        async with tab(herald, u, since="") as t:
            stream_frame(await t.next(), True)
            pub_user(herald, u, "seen", 0)
            last = (await t.next())["id"]
        # Missed while away, interleaved with other streams (offsets are not contiguous).
        for i in range(5):
            pub_user(herald, u, "missed", i)
            pub_user(herald, other, "x", i)
            pub_chan(herald, ch, "y", i)
        async with tab(herald, u, since=last) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [msg("missed", i) for i in range(5)]
            offs = [off(m["id"]) for m in replay]
            assert offs == sorted(set(offs)) and offs[0] > off(last)
            assert all(b - a == 3 for a, b in zip(offs, offs[1:])), offs
            stream_frame(f, True, replay[-1]["id"])
            pub_user(herald, u, "live", 1)
            m = await t.next()
            assert strip(m) == msg("live", 1) and off(m["id"]) > offs[-1]
            await t.nothing()
            newest = m["id"]
        # Nothing missed: recovered, nothing replayed, the position unchanged.
        async with tab(herald, u, since=newest) as t:
            stream_frame(await t.next(), True, newest)
            await t.nothing()
        # The same since again (a tab that saw less): the same replay again.
        async with tab(herald, u, since=last, quote=False) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [msg("missed", i) for i in range(5)] + \
                [msg("live", 1)]
            stream_frame(f, True, newest)
        ok, failed = recoveries(herald)
        assert (ok - before[0], failed - before[1]) == (3, 0)
    run(go())


def test_subscribe_with_since_replays_the_channel_then_ok(herald, run):
    u, pubr = uid("sub"), uid("pub")
    ch, room = "chat:" + uid(), "room:" + uid()

    async def go():
        async with tab(herald, pubr) as p:
            await p.subscribe(ch)
            async with tab(herald, u) as t:
                replay, ok = await t.subscribe(ch, since="")
                assert replay == []
                pos = ok_frame(ok, 1, recovered=True)
                pub_chan(herald, ch, "e", 0)
                last = (await t.next())["id"]
                assert off(last) > off(pos)
                await p.next()
            # Away: two API publishes and a client publish into the channel.
            pub_chan(herald, ch, "e", 1)
            ref = await p.command("publish", channel=ch, event="chat", data="hi")
            before, _ = await p.until_answer(ref)   # numbered once answered
            pub_chan(herald, ch, "e", 2)
            for _ in range(3 - len(before)):
                await p.next()
            async with tab(herald, u) as t:
                replay, ok = await t.subscribe(ch, since=last)
                assert [strip(m) for m in replay] == [
                    {"channel": ch, "event": "e", "data": 1},
                    {"channel": ch, "event": "chat", "data": "hi", "from": pubr},
                    {"channel": ch, "event": "e", "data": 2}]
                offs = [off(m["id"]) for m in replay]
                assert offs == sorted(set(offs)) and offs[0] > off(last)
                ok_frame(ok, 1, recovered=True, sid=replay[-1]["id"])
                pub_chan(herald, ch, "e", 3)
                m = await t.next()
                assert strip(m) == {"channel": ch, "event": "e", "data": 3}
                assert off(m["id"]) > offs[-1]
                await t.nothing()
                # Subscribing again is one subscription: nothing replayed (it has been
                # receiving all along), its position is what it has been sent.
                replay, ok = await t.subscribe(ch, since=last)
                assert replay == []
                ok_frame(ok, 2, recovered=True, sid=m["id"])
                replay, ok = await t.subscribe(ch)
                assert replay == []
                ok_frame(ok, 3, sid=m["id"])
                # Without since: the position only.
                replay, ok = await t.subscribe("pub:" + uid())
                assert replay == []
                ok_frame(ok, 4)
                # A presence channel: members, the position and recovered.
                replay, ok = await t.subscribe(room, since="")
                ok_frame(ok, 5, recovered=True, members=[{"user": u}])
                # the subscriber's own join (presence events carry no id)
                assert await t.next() == {"op": "join", "channel": room, "user": u}
                pub_chan(herald, room, "r", 0)
                rlast = (await t.next())["id"]
            pub_chan(herald, room, "r", 1)
            async with tab(herald, u) as t:
                replay, ok = await t.subscribe(room, since=rlast)
                assert [strip(m) for m in replay] == [{"channel": room, "event": "r", "data": 1}]
                ok_frame(ok, 1, recovered=True, sid=replay[0]["id"], members=[{"user": u}])
    run(go())


def test_ids_of_a_previous_run_are_not_recovered():
    u, ch = uid("restart"), "chat:" + uid()

    async def first(h):
        async with tab(h, u, since="") as t:
            stream_frame(await t.next(), True)
            await t.subscribe(ch)
            pub_user(h, u, "e", 1)
            pub_chan(h, ch, "c", 1)
            return (await t.next())["id"], (await t.next())["id"]

    async def second(h, uid_old, cid_old):
        pub_user(h, u, "e", 2)
        pub_chan(h, ch, "c", 2)
        async with tab(h, u, since=uid_old) as t:
            f = await t.next()
            sid = stream_frame(f, False)
            assert epoch(sid) != epoch(uid_old)
            replay, ok = await t.subscribe(ch, since=cid_old)
            assert replay == []
            ok_frame(ok, 1, recovered=False)
            assert epoch(ok["id"]) == epoch(sid)
            await t.nothing()
            # The new run's own ids recover as usual.
            pub_user(h, u, "e", 3)
            m = await t.next()
            assert strip(m) == msg("e", 3)
        async with tab(h, u, since=sid) as t:
            replay, f = await t.until_stream()
            assert [strip(x) for x in replay] == [msg("e", 3)]
            stream_frame(f, True, m["id"])

    with Herald(config=HERALD_CONFIG, workers=1) as h1:
        uid_old, cid_old = asyncio.run(asyncio.wait_for(first(h1), 20))
    with Herald(config=HERALD_CONFIG, workers=1) as h2:
        asyncio.run(asyncio.wait_for(second(h2, uid_old, cid_old), 20))
        assert h2.stats()["recoveries"] == {"ok": 1, "failed": 2}


def test_forged_malformed_and_out_of_range_ids_are_not_recovered(herald, run):
    u, ch = uid("bad"), "pub:" + uid()

    async def go():
        async with tab(herald, u, since="") as t:
            pos = stream_frame(await t.next(), True)
            await t.subscribe(ch)
            pub_user(herald, u, "e", 1)
            pub_chan(herald, ch, "c", 1)
            good = (await t.next())["id"]
            cgood = (await t.next())["id"]
        e = epoch(good)
        bad = [other_epoch(good), other_epoch(pos), e + ":", e + ":1x", e + "::1", e,
               e.upper() + ":" + str(off(pos)) if e.upper() != e else "Z" + e[1:] + ":1",
               "x", ":" + str(off(good)), e + ":99999999999999999999999",
               e + ":18446744073709551615", "%s:%d" % (e, off(good) + 10 ** 9),
               e + ":" + "9" * 200]
        for since in bad:
            async with tab(herald, u, since=since) as t:
                f = await t.next()
                stream_frame(f, False, good)
                await t.nothing(0.1)
                if len(since) > 31:
                    # longer than any id: the command itself is refused
                    ref = await t.command("subscribe", channel=ch, since=since)
                    _, ans = await t.until_answer(ref)
                    assert ans["op"] == "error" and ans["code"] == "bad_command", ans
                    continue
                replay, ok = await t.subscribe(ch, since=since)
                assert replay == []
                ok_frame(ok, 1, recovered=False, sid=cgood)
        # A since that is not valid percent-encoding: not recoverable either.
        async with tab(herald, u, since="%zz", quote=False) as t:
            stream_frame(await t.next(), False, good)
        # And the good ones still are.
        async with tab(herald, u, since=pos) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [msg("e", 1)]
            stream_frame(f, True, good)
    run(go())


def test_history_size_bounds_what_can_be_recovered(run):
    u, ch = uid("size"), "pub:" + uid()

    async def go(h):
        async with tab(h, u, since="") as t, tab(h, uid("w")) as w:
            pos = stream_frame(await t.next(), True)
            _, ok = await w.subscribe(ch)
            cpos = ok["id"]
            await t.subscribe(ch)
            # a second tab of u, connected all along, learns every id
            async with tab(h, u) as watch:
                for i in range(5):
                    pub_user(h, u, "e", i)
                    pub_chan(h, ch, "c", i)
                uids = [(await watch.next())["id"] for _ in range(5)]
                cids = [(await w.next())["id"] for _ in range(5)]
        # 5 missed, 3 kept: not recoverable, nothing replayed
        async with tab(h, u, since=pos) as t:
            stream_frame(await t.next(), False, uids[-1])
            await t.nothing(0.1)
            replay, ok = await t.subscribe(ch, since=cpos)
            assert replay == []
            ok_frame(ok, 1, recovered=False, sid=cids[-1])
        # 4 missed: still not
        async with tab(h, u, since=uids[0]) as t:
            stream_frame(await t.next(), False, uids[-1])
            replay, ok = await t.subscribe(ch, since=cids[0])
            assert replay == [] and ok["recovered"] is False
        # exactly the 3 kept missed: recovered
        async with tab(h, u, since=uids[1]) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [msg("e", i) for i in (2, 3, 4)]
            assert [m["id"] for m in replay] == uids[2:]
            stream_frame(f, True, uids[-1])
            replay, ok = await t.subscribe(ch, since=cids[1])
            assert [m["id"] for m in replay] == cids[2:]
            ok_frame(ok, 1, recovered=True, sid=cids[-1])
        s = h.stats()
        assert s["history"]["messages"] == 6 and s["history"]["evicted"] == 4, s["history"]
        assert s["recoveries"] == {"ok": 2, "failed": 4}, s["recoveries"]

    with Herald(config=dict(HERALD_CONFIG, history_size="3")) as h:
        run(go(h))


def test_history_ttl_drops_old_messages(run):
    u, ch = uid("ttl"), "pub:" + uid()

    async def go(h):
        async with tab(h, u, since="") as t:
            pos = stream_frame(await t.next(), True)
            _, ok = await t.subscribe(ch)
            cpos = ok["id"]
        pub_user(h, u, "e", 1)
        pub_chan(h, ch, "c", 1)
        # young enough: recovered
        async with tab(h, u, since=pos) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [msg("e", 1)]
            stream_frame(f, True)
            replay, ok = await t.subscribe(ch, since=cpos)
            assert len(replay) == 1 and ok["recovered"] is True
        await asyncio.sleep(2.2)
        # past history_ttl: dropped, so not recoverable from before them
        async with tab(h, u, since=pos) as t:
            stream_frame(await t.next(), False)
            await t.nothing(0.1)
            replay, ok = await t.subscribe(ch, since=cpos)
            assert replay == [] and ok["recovered"] is False
        s = h.stats()["history"]
        assert s["messages"] == 0 and s["bytes"] == 0 and s["evicted"] == 2, s

    with Herald(config=dict(HERALD_CONFIG, history_ttl="1s")) as h:
        run(go(h))


def test_history_max_bytes_drops_the_oldest_first_across_streams(run):
    a, b = "pub:" + uid("A"), "pub:" + uid("B")
    big = "x" * 100000

    async def go(h):
        async with tab(h, uid("pos")) as t:
            _, ok = await t.subscribe(a)
            apos = ok["id"]
            _, ok = await t.subscribe(b)
            bpos = ok["id"]
            ref = await t.command("unsubscribe", channel=a)
            await t.until_answer(ref)
            ref = await t.command("unsubscribe", channel=b)
            await t.until_answer(ref)
        # 0.8 MB into A, then (1.5 s later) 0.8 MB into B: over the 1 MB budget, A's oldest
        # must go (as many as needed, oldest first), B must stay whole.
        for i in range(8):
            pub_chan(h, a, "big", {"i": i, "pad": big})
        await asyncio.sleep(1.5)
        for i in range(8):
            pub_chan(h, b, "big", {"i": i, "pad": big})
        deadline = time.monotonic() + 5
        while h.stats()["history"]["bytes"] > 1 << 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        s = h.stats()["history"]
        assert s["bytes"] <= 1 << 20 and s["not_kept"] == 0, s
        assert s["messages"] + s["evicted"] == 16 and 8 <= s["messages"] < 16, s
        async with tab(h, uid("late")) as t:
            replay, ok = await t.subscribe(a, since=apos)
            assert replay == [] and ok["recovered"] is False, ok
            replay, ok = await t.subscribe(b, since=bpos)
            assert [m["data"]["i"] for m in replay] == list(range(8))
            ok_frame(ok, 2, recovered=True, sid=replay[-1]["id"])

    with Herald(config=dict(HERALD_CONFIG, history_max_bytes="1M")) as h:
        run(go(h))


def test_history_size_0_means_no_ids_and_since_is_ignored(run):
    u, b, ch = uid("off"), uid("offb"), "chat:" + uid()

    async def go(h):
        async with tab(h, u, since="") as t, tab(h, b) as bt:
            await t.nothing()
            ref = await t.command("subscribe", channel=ch, since="")
            assert await t.next() == {"op": "ok", "ref": ref}
            await bt.subscribe(ch)
            pub_user(h, u, "e", 1)
            assert await t.next() == msg("e", 1)
            pub_chan(h, ch, "c", 1)
            assert await t.next() == {"channel": ch, "event": "c", "data": 1}
            await bt.command("publish", channel=ch, event="m", data=2)
            assert await t.next() == {"channel": ch, "event": "m", "data": 2, "from": b}
        async with tab(h, u, since="abcdef01:1") as t:
            await t.nothing()
        s = h.stats()
        assert s["history"] == EMPTY_HISTORY, s
        assert s["recoveries"] == {"ok": 0, "failed": 0}, s

    with Herald(config=dict(HERALD_CONFIG, history_size="0")) as h:
        run(go(h))


# -- no gap, no duplicate ----------------------------------------------------------------------

def test_no_gap_no_duplicate_across_reconnects_while_publishing(herald, run):
    u, pubr, ch = uid("load"), uid("loadp"), "chat:" + uid()
    rnd = random.Random()
    seed = rnd.randrange(1 << 30)
    rnd.seed(seed)
    stop = threading.Event()
    api_user, api_chan = [], []
    errors = []

    def api_publisher():
        n = 0
        try:
            while not stop.is_set():
                pub_user(herald, u, "u", n)
                api_user.append(n)
                pub_chan(herald, ch, "c", {"api": n})
                api_chan.append(n)
                n += 1
                time.sleep(0.003)
        except BaseException as e:   # reported by the test, not lost in the thread
            errors.append(e)

    got_user, got_chan = [], []      # (offset, data) in the order received, all connections
    state = {"u": "", "c": ""}
    stats = {"replayed_user": 0, "replayed_chan": 0, "sessions": 0}

    async def session(dwell, started=None, abort=False):
        """One connection: recover both streams, read live for dwell seconds, go."""
        stats["sessions"] += 1
        async with tab(herald, u, since=state["u"]) as t:
            ref = await t.command("subscribe", channel=ch, since=state["c"])
            stream = ok = None
            deadline = None
            while True:
                if stream is not None and ok is not None and deadline is None:
                    deadline = time.monotonic() + dwell
                    if started is not None:
                        started.set()
                left = 5.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    m = await t.next(left)
                except asyncio.TimeoutError:
                    assert deadline is not None, "no stream frame or ok within 5 s"
                    break
                if m.get("op") == "stream":
                    assert stream is None, m
                    stream = stream_frame(m, True)
                    # the position is the newest id replayed, or the since itself
                    if state["u"]:
                        assert off(stream) == off(state["u"]), (m, state)
                    state["u"] = stream
                elif m.get("op") == "ok" and m.get("ref") == ref:
                    assert ok is None, m
                    ok = ok_frame(m, ref, recovered=True)
                    if state["c"]:
                        assert off(ok) == off(state["c"]), (m, state)
                    state["c"] = ok
                elif "channel" in m:
                    assert m["channel"] == ch, m
                    o = off(m["id"])
                    assert not got_chan or o > got_chan[-1][0], \
                        "channel %s after %d (seed %d)" % (m, got_chan[-1][0], seed)
                    got_chan.append((o, m["data"]))
                    state["c"] = m["id"]
                    stats["replayed_chan"] += ok is None
                elif "event" in m:
                    assert m["event"] == "u", m
                    o = off(m["id"])
                    assert not got_user or o > got_user[-1][0], \
                        "user %s after %d (seed %d)" % (m, got_user[-1][0], seed)
                    got_user.append((o, m["data"]))
                    state["u"] = m["id"]
                    stats["replayed_user"] += stream is None
                else:
                    raise AssertionError("unexpected %r" % (m,))
            if abort:
                t.ws.transport.abort()

    async def go():
        started = asyncio.Event()
        first = asyncio.ensure_future(session(0.3, started))
        await asyncio.wait_for(started.wait(), 5)
        thread = threading.Thread(target=api_publisher, daemon=True)
        thread.start()
        sent_ws = 0
        async with tab(herald, pubr) as p:
            await p.subscribe(ch)

            async def drain():
                while True:
                    await p.ws.recv()
            drainer = asyncio.ensure_future(drain())

            async def ws_publisher():
                nonlocal sent_ws
                while not stop.is_set():
                    await p.send(op="publish", channel=ch, event="c", data={"ws": sent_ws})
                    sent_ws += 1
                    await asyncio.sleep(0.006)
            wsp = asyncio.ensure_future(ws_publisher())
            try:
                await first
                for i in range(6):
                    await asyncio.sleep(rnd.uniform(0.05, 0.25))     # away
                    await session(rnd.uniform(0.1, 0.3), abort=i % 2 == 0)
            finally:
                stop.set()
                await wsp
                thread.join(10)
                assert not thread.is_alive(), "the API publisher did not stop"
            # all of p's publishes are in once a later command is answered
            ref = await p.command("unsubscribe", channel="pub:none")
            drainer.cancel()
            while True:
                m = json.loads(await asyncio.wait_for(p.ws.recv(), 5))
                if m.get("ref") == ref:
                    break
        assert not errors, errors
        # A last connection takes what was published since the previous one left.
        await session(0.3)
        return sent_ws

    sent_ws = run(go(), timeout=40)
    assert len(api_user) > 100 and sent_ws > 50, (len(api_user), sent_ws)
    assert stats["replayed_user"] > 0 and stats["replayed_chan"] > 0, stats
    # The user stream: exactly what was published, in order, once.
    assert [d for _, d in got_user] == api_user, "seed %d" % seed
    # The channel: both publishers' messages, each in its order, once (offsets rose strictly).
    assert [d["api"] for _, d in got_chan if "api" in d] == api_chan, "seed %d" % seed
    assert [d["ws"] for _, d in got_chan if "ws" in d] == list(range(sent_ws)), "seed %d" % seed
    assert len(got_chan) == len(api_chan) + sent_ws


def test_subscribing_again_while_publishing_loses_nothing(herald, run):
    """
    A subscribe to a channel the connection already holds must not move its delivery
    position past frames still queued to its worker (before 92ebc89 it did: a handful of
    every ~10,000 messages went missing while the client kept resubscribing).
    """
    u, ch = uid("again"), "chat:" + uid()
    stop = threading.Event()
    sent, errors = [], []

    def api_publisher():
        n = 0
        try:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                pub_chan(herald, ch, "c", n)
                sent.append(n)
                n += 1
        except BaseException as e:
            errors.append(e)
        finally:
            stop.set()

    async def go():
        got = []
        async with tab(herald, u) as t:
            _, ok = await t.subscribe(ch)
            thread = threading.Thread(target=api_publisher, daemon=True)
            thread.start()

            async def spam():
                k = 0
                while not stop.is_set():
                    # whole batches reach the worker in one read, between two publishes
                    for _ in range(20):
                        cmd = {"op": "subscribe", "channel": ch}
                        if k % 3 == 0:
                            cmd["since"] = ok["id"]
                        await t.ws.send(json.dumps(cmd))
                        k += 1
                    await asyncio.sleep(0.001)
                return k
            spammer = asyncio.ensure_future(spam())
            try:
                while not stop.is_set() or not spammer.done():
                    try:
                        m = await t.next(0.5)
                    except asyncio.TimeoutError:
                        continue
                    got.append(m)
            finally:
                stop.set()
                n_spam = await spammer
                thread.join(10)
            # the rest: everything published has been numbered and queued by now
            ref = await t.command("subscribe", channel=ch)
            before, ans = await t.until_answer(ref)
            got += before
            while True:
                try:
                    got.append(await t.next(0.3))
                except asyncio.TimeoutError:
                    break
        assert not errors, errors
        assert n_spam > 500 and len(sent) > 500, (n_spam, len(sent))
        # nothing but channel messages (subscribes without ref are answered only on failure)
        assert all("channel" in m for m in got), [m for m in got if "channel" not in m][:3]
        data = [m["data"] for m in got]
        missing = sorted(set(sent) - set(data))
        assert not missing, "%d of %d lost: %r" % (len(missing), len(sent), missing[:20])
        assert data == sent
        offs = [off(m["id"]) for m in got]
        assert offs == sorted(set(offs))
        assert off(ans["id"]) == offs[-1], (ans, offs[-1])

    run(go(), timeout=30)


# -- tabs ------------------------------------------------------------------------------------

def test_tabs_of_one_user_with_different_since(herald, run):
    u = uid("tabs")

    async def go():
        async with tab(herald, u) as watch:
            for i in range(6):
                pub_user(herald, u, "e", i)
            ids = [(await watch.next())["id"] for _ in range(6)]
            sinces = [ids[1], ids[3], ids[5], "", other_epoch(ids[0])]
            cms = [tab(herald, u, since=s) for s in sinces]
            tabs = [await cm.__aenter__() for cm in cms]
            try:
                for k, (t, s) in enumerate(zip(tabs, sinces)):
                    replay, f = await t.until_stream()
                    if k < 3:
                        first = ids.index(s) + 1
                        assert [m["id"] for m in replay] == ids[first:], (k, replay)
                        assert [strip(m) for m in replay] == [msg("e", i)
                                                              for i in range(first, 6)]
                        stream_frame(f, True, ids[-1])
                    else:
                        assert replay == []
                        stream_frame(f, k == 3, ids[-1])
                pub_user(herald, u, "live", 1)
                live = await watch.next()
                for t in tabs:
                    assert await t.next() == live
                for t in tabs + [watch]:
                    await t.nothing(0.1)
            finally:
                for cm in cms:
                    await cm.__aexit__(None, None, None)
    run(go())


def test_tabs_on_two_workers_each_get_their_replay_and_live_once(run):
    u = uid("wk")

    def worker_of_conns(h):
        found = {}
        for m in re.finditer(r"conn=(\d+) open user=(\S+)", h.log_text()):
            if m.group(2) == u:
                found[int(m.group(1))] = int(m.group(1)) >> 48
        return found

    async def go(h):
        async with tab(h, u) as watch:
            for i in range(4):
                pub_user(h, u, "e", i)
            ids = [(await watch.next())["id"] for _ in range(4)]
            cms, tabs, sinces = [], [], []
            try:
                # open tabs until both workers hold some (the kernel spreads them)
                while len(tabs) < 24:
                    s = ids[len(tabs) % 4]
                    cm = tab(h, u, since=s)
                    tabs.append(await cm.__aenter__())
                    cms.append(cm)
                    sinces.append(s)
                    await asyncio.sleep(0.02)
                    if len(tabs) >= 6 and len(set(worker_of_conns(h).values())) == 2:
                        break
                assert set(worker_of_conns(h).values()) == {0, 1}, worker_of_conns(h)
                for t, s in zip(tabs, sinces):
                    replay, f = await t.until_stream()
                    assert [m["id"] for m in replay] == ids[ids.index(s) + 1:]
                    stream_frame(f, True, ids[-1])
                for i in range(3):
                    pub_user(h, u, "live", i)
                live = [await watch.next() for _ in range(3)]
                for t in tabs:
                    assert [await t.next() for _ in range(3)] == live
                    await t.nothing(0.05)
            finally:
                for cm in cms:
                    await cm.__aexit__(None, None, None)

    with Herald(config=dict(HERALD_CONFIG, log_level="debug"), workers=2) as h:
        run(go(h), timeout=40)


# -- /stats ----------------------------------------------------------------------------------------

def test_stats_history_and_recoveries(run):
    u, ch = uid("st"), "chat:" + uid()

    async def go(h):
        s = h.stats()
        assert s["history"] == EMPTY_HISTORY, s
        assert s["recoveries"] == {"ok": 0, "failed": 0}, s
        async with tab(h, u) as t:
            # a since "" answers the position but makes no stream (an empty one costs nothing)
            async with tab(h, u, since="") as t2:
                pos = stream_frame(await t2.next(), True)
            s = h.stats()
            assert s["history"]["streams"] == 0 and s["recoveries"] == {"ok": 0, "failed": 0}
            for i in range(3):
                pub_user(h, u, "e", "x" * (i * 50))
            frames = [await t.next() for _ in range(3)]
            _, ok = await t.subscribe(ch)
            cpos = ok["id"]
            pub_chan(h, ch, "c", 1)
            frames.append(await t.next())
            # kept: the last two of the user, the channel's one; each as its body (the
            # message without its id), an entry, and the two streams holding them
            bodies = [len(r.encode()) - len('"id":"%s",' % f["id"])
                      for r, f in zip(t.raw[1:3] + t.raw[-1:], frames[1:])]
            s = h.stats()["history"]
            assert {k: s[k] for k in ("streams", "messages", "evicted", "not_kept")} == \
                {"streams": 2, "messages": 3, "evicted": 1, "not_kept": 0}, s
            assert sum(bodies) + 3 * 32 < s["bytes"] <= sum(bodies) + 3 * 200 + 2 * 400, \
                (s, bodies)
            assert s["max_bytes"] == 64 << 20
            async with tab(h, u, since=frames[0]["id"]) as t2:        # ok
                replay, f = await t2.until_stream()
                assert len(replay) == 2
                replay, ok = await t2.subscribe(ch, since=cpos)           # ok
                assert len(replay) == 1 and ok["recovered"] is True
                # positions come from one counter: the user's was read before any publish
                assert off(pos) < off(cpos)
            async with tab(h, u, since=pos) as t2:                     # failed: 1st dropped
                stream_frame(await t2.next(), False)
                _, ok = await t2.subscribe(ch, since=other_epoch(pos))   # failed
                assert ok["recovered"] is False
                _, ok = await t2.subscribe("chat:" + uid(), since="")    # not counted
                assert ok["recovered"] is True
            s = h.stats()
            assert s["recoveries"] == {"ok": 2, "failed": 2}, s["recoveries"]
            assert s["history"]["streams"] == 2, s["history"]

    with Herald(config=dict(HERALD_CONFIG, history_size="2"), workers=2) as h:
        run(go(h))

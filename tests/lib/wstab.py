"""
wstab.py -- a browser tab of the cluster suites (86-redis.py, 89-redis-sentinel.py): one
WebSocket connection to a node's site, as herald.js would open it, read message by message,
and the checks on what Herald answers with it.

    async with tab(site, "42", since="") as t:   # ?token=...&since= on the site's ws_path
        before, frame = await t.until_stream()   # the user stream's replay, then its frame
        stream_frame(frame, True)                # {"op":"stream","id","recovered":true}
        m = await t.next()                       # the next message (JSON), or AssertionError

`site` is a herald.Site (its token(), port and ws_path); every wait is bounded.
"""

import asyncio
import contextlib
import json
import re
import time
import urllib.parse

import websockets.client

ID_RE = re.compile(r"([0-9a-f]{8}):(0|[1-9][0-9]*)")


def parse_id(sid):
    """An id "<epoch>:<offset>" as (epoch, offset); AssertionError when it is not one."""
    assert isinstance(sid, str), "id %r is not a string" % (sid,)
    m = ID_RE.fullmatch(sid)
    assert m, "bad stream id %r" % (sid,)
    return m.group(1), int(m.group(2))


class Tab:
    """One WebSocket connection to a node's site: every message kept, refs counted from 1."""

    def __init__(self, ws, where):
        self.ws = ws
        self.where = where
        self.ref = 0

    async def next(self, timeout=3.0):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: no message within %.1fs" % (self.where, timeout))
        assert isinstance(raw, str), "expected a text frame, got %r" % (raw,)
        return json.loads(raw)

    async def nothing(self, timeout=0.5):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError("%s: expected no message, got %r" % (self.where, raw))

    async def until_stream(self, timeout=3.0):
        """The user stream's replay: (messages before the stream frame, the frame)."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            m = await self.next(max(0.05, deadline - time.monotonic()))
            if m.get("op") == "stream":
                return before, m
            before.append(m)

    async def subscribe(self, channel, timeout=3.0, **fields):
        """subscribe; returns (messages before the ok, the ok), which must be an ok."""
        self.ref += 1
        await self.ws.send(json.dumps(dict(fields, op="subscribe", channel=channel,
                                           ref=self.ref)))
        before = []
        deadline = time.monotonic() + timeout
        while True:
            m = await self.next(max(0.05, deadline - time.monotonic()))
            if m.get("op") in ("ok", "error") and m.get("ref") == self.ref:
                assert m["op"] == "ok", "%s: subscribe %s %r answered %r" % (
                    self.where, channel, fields, m)
                return before, m
            before.append(m)

    async def alive(self, timeout=2.0):
        """A ping is answered with a pong: the connection is open and served."""
        pong = await self.ws.ping()
        await asyncio.wait_for(pong, timeout)


def ws_url(site, user, since=None):
    params = ["token=" + site.token(user)]
    if since is not None:
        params.append("since=" + urllib.parse.quote(since, safe=""))
    return "ws://127.0.0.1:%d%s?%s" % (site.port, site.ws_path, "&".join(params))


@contextlib.asynccontextmanager
async def tab(site, user, since=None, where=None):
    """A Tab of `user` on a node's site, with ?since= when since is not None."""
    async with websockets.client.connect(ws_url(site, user, since), open_timeout=5,
                                         close_timeout=2, max_size=None) as ws:
        yield Tab(ws, where or "%s/%s %s" % (site.h.config.get("node_name"), site.name, user))


def stream_frame(f, recovered, sid=None):
    """Check a {"op":"stream"} frame; returns its id."""
    assert isinstance(f, dict) and set(f) == {"op", "id", "recovered"}, f
    assert f["op"] == "stream" and f["recovered"] is recovered, f
    parse_id(f["id"])
    if sid is not None:
        assert f["id"] == sid, (f, sid)
    return f["id"]

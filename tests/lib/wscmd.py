"""
wscmd.py -- Herald's client commands (docs/protocol.md, section 1) over a real
websockets connection, for the channel, presence and RPC suites (70-72).

    async with client(herald, "42", channels=["team:*"]) as c:
        ans = await c.call("subscribe", channel="team:12")     # {"op":"ok","ref":1}
        msg = await c.next()                                    # the next message that
                                                                # is not an answer to a ref

Answers ({"op": "ok"|"error"|"reply", "ref": R}) are matched to their command
by ref and kept aside, so a test can wait for an answer while events arrive,
and the other way round. Everything else (events, join/leave, errors without
a ref) is queued in arrival order for next(). Every wait has a timeout.

Stream positions (history and recovery: "id": "<8 hex>:<offset>" on messages
of a user or channel stream and on subscribe answers) are checked for their
form, then moved out of the message into Cmd.ids, so the channel, presence
and RPC suites compare the messages those features define.

next() raises NoMessage (an AssertionError) when nothing comes in time; a
helper that waits for silence catches that and nothing else, so a bad frame
still fails the test.

Also: checking an error answer (error_msg, expect_error), counting /stats
client_errors around a bad command (ErrorCounts), and closing a connection
without a close frame (abort(), rst()).
"""

import asyncio
import collections
import contextlib
import json
import re
import socket
import struct
import time

ANSWER_OPS = ("ok", "error", "reply")

STREAM_ID = re.compile(r"[0-9a-f]{8}:[0-9]+")

ERROR_CODES = ("bad_json", "bad_command", "bad_channel", "forbidden", "bad_token",
               "not_subscribed", "too_many_subscriptions", "rpc_disabled", "rpc_busy",
               "rpc_unavailable", "rpc_timeout", "rpc_failed", "rpc_bad_reply")


class NoMessage(AssertionError):
    """Cmd.next() waited its whole timeout and nothing came (its only way of failing so)."""


class Cmd:
    """One connection's command channel: refs from 1, answers by ref, other messages in order."""

    def __init__(self, ws, user=None):
        self.ws = ws
        self.user = user
        self.ref = 0
        self.answers = {}
        self.other = collections.deque()
        self.ids = []           # stream positions seen, in order: (message without id, id)

    async def send(self, msg):
        """Send a dict as JSON, or a str/bytes exactly as given."""
        if isinstance(msg, dict):
            msg = json.dumps(msg)
        await self.ws.send(msg)

    async def _read_one(self, timeout):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), "expected a text frame, got %r" % (raw,)
        m = json.loads(raw)
        if isinstance(m, dict) and "id" in m and m.get("op") in (None, "ok"):
            sid = m.pop("id")
            assert isinstance(sid, str) and STREAM_ID.fullmatch(sid), \
                "bad stream id %r in %r" % (sid, raw)
            self.ids.append((m, sid))
        if isinstance(m, dict) and m.get("op") in ANSWER_OPS and "ref" in m:
            key = json.dumps(m["ref"])
            assert key not in self.answers, "two answers for ref %s: %r" % (key, m)
            self.answers[key] = m
        else:
            self.other.append(m)

    async def answer(self, ref, timeout=3.0):
        """The answer carrying `ref` (an int or a str), waiting up to `timeout`."""
        key = json.dumps(ref)
        deadline = time.monotonic() + timeout
        while key not in self.answers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no answer for ref %s within %.1fs (other messages: %r)"
                                     % (key, timeout, list(self.other)))
            try:
                await self._read_one(left)
            except asyncio.TimeoutError:
                pass
        return self.answers.pop(key)

    async def call(self, op, timeout=3.0, **fields):
        """Send {"op": op, "ref": next, **fields} and return its answer."""
        ref = await self.start(op, **fields)
        return await self.answer(ref, timeout)

    async def start(self, op, **fields):
        """Send a command with the next ref without waiting; returns the ref."""
        self.ref += 1
        cmd = {"op": op}
        cmd.update(fields)
        cmd["ref"] = self.ref
        await self.send(cmd)
        return self.ref

    async def ok(self, op, timeout=3.0, **fields):
        """call() that must be answered ok; returns the answer."""
        ans = await self.call(op, timeout, **fields)
        assert ans.get("op") == "ok" and ans.get("ref") == self.ref, \
            "%s %r answered %r" % (op, fields, ans)
        return ans

    async def subscribe(self, channel, **fields):
        return await self.ok("subscribe", channel=channel, **fields)

    async def next(self, timeout=2.0):
        """The next message that is not an answer to a ref."""
        deadline = time.monotonic() + timeout
        while not self.other:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoMessage("no message within %.1fs" % timeout)
            try:
                await self._read_one(left)
            except asyncio.TimeoutError:
                pass
        return self.other.popleft()

    async def nothing(self, timeout=0.3):
        """Assert that no message other than answers arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.other:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await self._read_one(left)
            except asyncio.TimeoutError:
                return
        raise AssertionError("expected no message, got %r" % (self.other[0],))

    async def alive(self, timeout=3.0):
        """Prove the connection is open and still obeys commands: an unsubscribe is answered ok."""
        await self.ok("unsubscribe", timeout, channel="alive.check")

    def abort(self):
        """Drop the TCP connection at once, without a close frame."""
        self.ws.transport.abort()

    def rst(self):
        """Reset the TCP connection (SO_LINGER 0): no close frame, no FIN."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()


@contextlib.asynccontextmanager
async def client(h, user=None, token=None, **claims):
    """
    A Cmd on a new connection to Herald `h`: as `user` (a token with `claims`
    is made), with an explicit `token`, or anonymous (neither).
    """
    if token is None and user is not None:
        token = h.token(user, **claims)
    async with h.connect(token) as ws:
        yield Cmd(ws, None if user is None else str(user))


def error_msg(ans, code, ref=None):
    """Assert ans is {"op":"error", "code": code, "message": str} with `ref` (or none)."""
    assert isinstance(ans, dict) and ans.get("op") == "error" and ans.get("code") == code, \
        "expected error %s, got %r" % (code, ans)
    assert isinstance(ans.get("message"), str) and ans["message"], ans
    if ref is None:
        assert "ref" not in ans, ans
    else:
        assert ans.get("ref") == ref, ans
    assert set(ans) <= {"op", "ref", "code", "message"}, ans


async def expect_error(h, c, bystander, code, op, **fields):
    """
    Send one command that must fail with `code`: answered with its ref, counted once in
    /stats client_errors, the connection still obeys commands, the bystander (a
    herald.Bystander) still receives. Returns the answer.
    """
    counts = ErrorCounts(h)
    ans = await c.call(op, **fields)
    error_msg(ans, code, c.ref)
    await c.alive()
    counts.check(code)
    bystander.check()
    return ans


class ErrorCounts:
    """/stats client_errors before a bad command; check() that exactly `code` went up by n."""

    def __init__(self, h):
        self.h = h
        self.before = dict(h.stats()["client_errors"])
        for code in ERROR_CODES:
            assert code in self.before, "/stats client_errors has no %s: %r" % (code, self.before)

    def check(self, code, n=1, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            after = dict(self.h.stats()["client_errors"])
            if after.get(code) == self.before[code] + n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        delta = {k: after.get(k, 0) - self.before.get(k, 0) for k in after
                 if after.get(k, 0) != self.before.get(k, 0)}
        expected = {code: n} if n else {}
        assert delta == expected, "client_errors changed by %r, expected %r" % (delta, expected)

"""
86-redis.py -- several Herald nodes sharing their traffic through one Redis (`engine = redis`,
issue #13), with real nodes, a real redis-server (Debian's, on a unix socket in a temp dir,
tests/lib/redis.py), real WebSocket clients (websockets) and the FastCGI API of each node.

The module's cluster: one Redis without persistence and three nodes n1, n2, n3 (same
redis_address, node_name n1..n3, each its own port and API sockets, history kept), each with
the same two sites a and b (same secret per site on every node, as a real cluster has). The
tests that kill a node or Redis start a cluster of their own.

Proves:
- fan-out: a publish through any node's API reaches the user's connections on every node
  (user on n2 and n3, published on n1), a channel's subscribers on all three nodes and, for a
  broadcast, every connection of the site on all three, each exactly once, with one id per
  stream message that every node's connection sees the same;
- order: 300 messages to one user published alternately through the three APIs arrive at a
  connection on each node in publish order, each once, with one epoch and consecutive offsets
  following the stream's position;
- recovery on another node: a client that saw some messages on n2 reconnects to n3 with
  ?since= (and a channel subscriber with subscribe since) and gets exactly what it missed,
  oldest first, then recovered true, then live messages;
- a node SIGKILLed while the API publishes in a loop: the user's connections on the other
  nodes get every message, in order, offsets consecutive; the killed node's client reconnects
  to another node with since and recovers all it missed;
- a new Redis server (the generation raised) whose stream's next touch is another tab's
  replay: nothing lost, so the replay is recovered true, the connection holding the stream
  is told nothing and the numbering goes on in the new epoch; with the last message lost
  (the counter one behind), the tab that saw it is told recovered false and the connection
  holding the stream gets the gap frame before the new epoch's first message;
- a pub/sub link gone silent (a relay drops what Redis sends it, the connection stays open,
  nothing is published): the probe notices within PROBE_WITHIN, the link is reconnected, and
  the client gets the message it dropped from history, once, in order, no gap frame;
- Redis SIGKILLed: a publish on any node answers 503 {"ok":false,"error":"engine_unavailable"}
  within redis_timeout plus a second, open WebSockets stay open (a ping is answered, nothing
  is sent to them, no close), /stats says engine {"name":"redis","available":false}; Redis
  restarted (appendonly, appendfsync always): every node publishes again within
  RECONNECT_WITHIN, /stats available again, a connection kept open all along receives the
  new messages with no gap (numbered on, in a new epoch: a new server), and a client that saw
  id X recovers everything published after X, before the crash (with the ids they had) and
  after it;
- Redis restarted without persistence (the stream's epoch changes): since=<old id> on the user
  stream and on a channel answers recovered false with nothing replayed, even once the new
  epoch's offsets have passed the old id's;
- sites: a publish (user "u1", a channel, a broadcast) through site b's API of any node never
  reaches site a on any node, site a's numbering is untouched by it, and since= on site a
  never returns site b's messages;
- /stats of every site of every node: "engine": {"name": "redis", "available": true}.
"""

import asyncio
import contextlib
import json
import signal
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import websockets.client
import websockets.exceptions

from herald import _pdeathsig, random_secret, uid
from redis import REDIS_TIMEOUT, Cluster, RedisRelay
from wstab import parse_id, stream_frame, tab

PHP = "/usr/bin/php"
HERALD_PHP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "php-client",
                          "herald.php")
# argv: socket A, socket B, stop file, user. Alternates between the two nodes' APIs (a new
# herald_configure each time), prints each number once herald_publish answered it, and stops
# when the stop file appears; a false answer (logged by the helper) ends it with status 1.
PHP_LOOP = r"""
require '%(herald)s';
[, $a, $b, $stop, $user] = $argv;
for ($i = 0; !file_exists($stop); $i++) {
    herald_configure(['socket' => $i %% 2 ? $b : $a]);
    if (herald_publish($user, 'loop', $i) === false) {
        exit(1);
    }
    echo $i, "\n";
    usleep(3000);
}
"""

CONFIG = {
    "public_channels": "chan:*",
    "history_size": "1000",
    "command_rate": "0",
}

# Seconds within which every node publishes again once a restarted Redis answers PING.
RECONNECT_WITHIN = 5.0



def sites():
    """Two sites, each with one secret every node shares, told apart by path."""
    return {"a": {"secret": random_secret(), "ws_path": "/a/ws"},
            "b": {"secret": random_secret(), "ws_path": "/b/ws"}}


def new_cluster(persist=False):
    return Cluster(names=("n1", "n2", "n3"), persist=persist, config=CONFIG, sites=sites())


@pytest.fixture(scope="module")
def cluster():
    with new_cluster() as c:
        yield c


def site_a(c):
    """Site a of each node: [n1, n2, n3]."""
    return [h.site("a") for h in c.nodes]


# -- ids ---------------------------------------------------------------------------------------

def off(sid):
    return parse_id(sid)[1]


def epoch(sid):
    return parse_id(sid)[0]


def strip(m):
    """m without its id, after checking the id's form."""
    m = dict(m)
    parse_id(m.pop("id"))
    return m


def consecutive(ids, after=None, new_server=False):
    """Assert ids share one epoch and their offsets follow each other (from after's + 1).
    new_server: Redis restarted in between, so the numbering may go on in a new epoch."""
    if not new_server:
        assert len({epoch(i) for i in ids} | ({epoch(after)} if after else set())) <= 1, \
            "more than one epoch: %r" % (sorted({epoch(i) for i in ids}),)
    offs = [off(i) for i in ids]
    start = off(after) + 1 if after else (offs[0] if offs else 0)
    want = list(range(start, start + len(offs)))
    if offs != want:
        bad = next(k for k, (a, b) in enumerate(zip(offs, want)) if a != b)
        raise AssertionError("offsets not consecutive from %d: at #%d got %r, expected %r"
                             % (start, bad, offs[bad:bad + 5], want[bad:bad + 5]))


def stream_keys(user):
    """The Redis keys of site a's user stream (rhist.h): its meta hash and its history list."""
    return "herald:{a/u:%s}:m" % user, "herald:{a/u:%s}:h" % user


# -- clients -----------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def live(site, user):
    """
    A Tab of `user` opened as herald.js opens one (?since= empty) and past its stream frame,
    from which on every message of the stream reaches it (docs/protocol.md, "Recovery").
    Yields (tab, the stream's position).
    """
    async with tab(site, user, since="") as t:
        before, f = await t.until_stream()
        assert before == [], before
        yield t, stream_frame(f, True)


async def subscribed(t, channel):
    """Subscribe t to channel; returns the channel's position (the ok's id)."""
    before, ok = await t.subscribe(channel)
    assert before == [] and set(ok) == {"op", "ref", "id"}, (before, ok)
    parse_id(ok["id"])
    return ok["id"]


def publish(site, user, event, data=None):
    """POST /publish to one user through that node's site API; asserts 200 ok."""
    j = site.api_ok("POST", "/publish", {"users": [user], "event": event, "data": data})
    assert isinstance(j["delivered"], int), j
    return j


def unavailable(site, body, within):
    """A POST /publish that must answer 503 engine_unavailable, and within `within` seconds."""
    t0 = time.monotonic()
    status, headers, j = site.api("POST", "/publish", body, timeout=within + 5)
    took = time.monotonic() - t0
    assert (status, j) == (503, {"ok": False, "error": "engine_unavailable"}), (status, j)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert took < within, "the 503 took %.2fs (allowed %.2fs)" % (took, within)


def wait_publishable(site, within):
    """Publish to a throwaway user until it is accepted (503 meanwhile); assert within time."""
    probe = uid("probe")
    deadline = time.monotonic() + within
    while True:
        status, _, j = site.api("POST", "/publish", {"users": [probe], "event": "probe"})
        if status == 200:
            assert j.get("ok") is True, j
            return
        assert (status, j) == (503, {"ok": False, "error": "engine_unavailable"}), (status, j)
        assert time.monotonic() < deadline, \
            "node %s still refuses publishes %.0fs after Redis came back:\n%s" % (
                site.h.config.get("node_name"), within, site.log_text()[-3000:])
        time.sleep(0.1)


# -- fan-out -----------------------------------------------------------------------------------

def test_a_publish_on_any_node_reaches_user_channel_and_broadcast_on_every_node_once(
        cluster, run):
    n1, n2, n3 = site_a(cluster)
    u, ch = uid("fan"), "chan:" + uid()
    subs = [uid("sub") for _ in range(3)]

    async def go():
        async with live(n2, u) as (t2, pos2), live(n3, u) as (t3, pos3), \
                live(n1, subs[0]) as (s1, _), live(n2, subs[1]) as (s2, _), \
                live(n3, subs[2]) as (s3, _):
            assert pos2 == pos3
            cpos = [await subscribed(s, ch) for s in (s1, s2, s3)]
            assert len(set(cpos)) == 1, cpos

            # a user on n2 and n3, published on n1
            publish(n1, u, "fan.user", {"k": 1})
            got = [await t.next() for t in (t2, t3)]
            assert [strip(m) for m in got] == [{"event": "fan.user", "data": {"k": 1}}] * 2
            assert got[0]["id"] == got[1]["id"]
            consecutive([got[0]["id"]], after=pos2)

            # a channel with a subscriber on each node, published on n2
            j = n2.api_ok("POST", "/publish", {"channel": ch, "event": "fan.chan",
                                               "data": [2]})
            assert isinstance(j["delivered"], int), j
            got = [await s.next() for s in (s1, s2, s3)]
            assert [strip(m) for m in got] == \
                [{"channel": ch, "event": "fan.chan", "data": [2]}] * 3
            assert len({m["id"] for m in got}) == 1, got
            consecutive([got[0]["id"]], after=cpos[0])

            # a broadcast on n3: every connection of the site, on every node (no id)
            j = n3.api_ok("POST", "/publish", {"broadcast": True, "event": "fan.all",
                                               "data": "3"})
            assert isinstance(j["delivered"], int), j
            for t in (t2, t3, s1, s2, s3):
                assert await t.next() == {"event": "fan.all", "data": "3"}, t.where

            # each exactly once: nothing more anywhere
            for t in (t2, t3, s1, s2, s3):
                await t.nothing(0.5)
    run(go())


def test_300_messages_through_alternating_nodes_arrive_on_every_node_in_order_once(
        cluster, run):
    nodes = site_a(cluster)
    u = uid("seq")
    n = 300

    def publish_all():
        for i in range(n):
            publish(nodes[i % 3], u, "seq", i)

    async def read(t):
        return [await t.next(5.0) for _ in range(n)]

    async def go():
        async with live(nodes[0], u) as (t1, pos), live(nodes[1], u) as (t2, p2), \
                live(nodes[2], u) as (t3, p3):
            assert pos == p2 == p3
            loop = asyncio.get_running_loop()
            sent = loop.run_in_executor(None, publish_all)
            got = await asyncio.gather(read(t1), read(t2), read(t3))
            await sent
            for t, msgs in zip((t1, t2, t3), got):
                assert [m.get("data") for m in msgs] == list(range(n)), t.where
                assert all(strip(m) == {"event": "seq", "data": i}
                           for i, m in enumerate(msgs)), t.where
                consecutive([m["id"] for m in msgs], after=pos)
                await t.nothing(0.3)
            assert got[0] == got[1] == got[2]
    run(go(), timeout=45)


# -- recovery on another node ------------------------------------------------------------------

def test_a_user_recovers_on_another_node_exactly_what_it_missed(cluster, run):
    n1, n2, n3 = site_a(cluster)
    u = uid("away")

    async def go():
        async with live(n2, u) as (t, pos):
            for i in range(5):
                publish((n1, n2, n3)[i % 3], u, "seen", i)
            seen = [await t.next() for _ in range(5)]
            assert [strip(m) for m in seen] == [{"event": "seen", "data": i} for i in range(5)]
            consecutive([m["id"] for m in seen], after=pos)
            last = seen[-1]["id"]
        for i in range(7):
            publish(n1, u, "missed", i)
        async with tab(n3, u, since=last) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == \
                [{"event": "missed", "data": i} for i in range(7)], replay
            consecutive([m["id"] for m in replay], after=last)
            stream_frame(f, True, replay[-1]["id"])
            publish(n2, u, "live", 1)
            m = await t.next()
            assert strip(m) == {"event": "live", "data": 1}
            consecutive([m["id"]], after=replay[-1]["id"])
            await t.nothing()
        # nothing missed since: recovered, nothing replayed, on yet another node
        async with tab(n1, u, since=m["id"]) as t:
            stream_frame(await t.next(), True, m["id"])
            await t.nothing()
    run(go())


def test_a_channel_subscriber_recovers_on_another_node_exactly_what_it_missed(cluster, run):
    n1, n2, n3 = site_a(cluster)
    u, ch = uid("chaway"), "chan:" + uid()

    async def go():
        async with live(n2, u) as (t, _):
            cpos = await subscribed(t, ch)
            for i in range(4):
                n1.publish_channel(ch, "seen", i)
            seen = [await t.next() for _ in range(4)]
            assert [strip(m) for m in seen] == \
                [{"channel": ch, "event": "seen", "data": i} for i in range(4)]
            consecutive([m["id"] for m in seen], after=cpos)
            last = seen[-1]["id"]
        for i in range(6):
            (n1, n3)[i % 2].publish_channel(ch, "missed", i)
        async with live(n3, u) as (t, _):
            replay, ok = await t.subscribe(ch, since=last)
            assert [strip(m) for m in replay] == \
                [{"channel": ch, "event": "missed", "data": i} for i in range(6)], replay
            consecutive([m["id"] for m in replay], after=last)
            assert ok == {"op": "ok", "ref": 1, "id": replay[-1]["id"], "recovered": True}, ok
            n2.publish_channel(ch, "live", 1)
            m = await t.next()
            assert strip(m) == {"channel": ch, "event": "live", "data": 1}
            consecutive([m["id"]], after=replay[-1]["id"])
            await t.nothing()
    run(go())


# -- a node dies -------------------------------------------------------------------------------

def test_a_killed_node_loses_nothing_for_the_others_and_its_client_recovers_elsewhere(run):
    u = uid("kill")

    async def go(c):
        n1, n2, n3 = site_a(c)
        sent = []
        errors = []
        stop = threading.Event()

        stop_file = os.path.join(c.redis.dir, "stop-%s" % u)

        def publisher():
            # Real PHP (the CLI and php-client's herald_publish), publishing in a loop through
            # the surviving nodes' APIs in turn; each number it prints was answered.
            script = PHP_LOOP % {"herald": HERALD_PHP}
            proc = subprocess.Popen([PHP, "-d", "display_errors=stderr", "-r", script,
                                     n1.api_socket, n3.api_socket, stop_file, u],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=_pdeathsig)
            try:
                for line in proc.stdout:
                    sent.append(int(line))
                proc.wait(10)
                if proc.returncode != 0:
                    errors.append("PHP exited %d: %s" % (proc.returncode, proc.stderr.read()))
            except BaseException as e:
                errors.append(e)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        async with live(n1, u) as (t1, pos), live(n2, u) as (t2, _), \
                live(n3, u) as (t3, _):
            got = {t1: [], t2: [], t3: []}
            closed = {}

            async def collect(t):
                try:
                    while True:
                        got[t].append(json.loads(await t.ws.recv()))
                except websockets.exceptions.ConnectionClosed as e:
                    closed[t] = e

            async def until(cond, timeout, what):
                """Wait for cond(); what() says what did not happen."""
                deadline = time.monotonic() + timeout
                while not cond():
                    assert not errors, errors
                    assert time.monotonic() < deadline, what()
                    await asyncio.sleep(0.01)

            readers = [asyncio.ensure_future(collect(t)) for t in (t1, t2, t3)]
            thread = threading.Thread(target=publisher, daemon=True)
            thread.start()
            try:
                await until(lambda: len(got[t2]) >= 60, 15,
                            lambda: "n2's client got %d messages" % len(got[t2]))
                c.node("n2").stop(sig=signal.SIGKILL, expect_rc=-signal.SIGKILL)
                at_kill = len(sent)
                await until(lambda: t2 in closed, 5, lambda: "n2's client still open after SIGKILL")
                await until(lambda: len(sent) >= at_kill + 150, 20,
                            lambda: "%d published after the kill" % (len(sent) - at_kill))
            finally:
                stop.set()
                with open(stop_file, "w"):
                    pass
                thread.join(15)
            assert not errors, errors
            # the survivors: every message, in order, once, offsets consecutive
            for t in (t1, t3):
                await until(lambda: len(got[t]) >= len(sent), 10,
                            lambda: "%s got %d of %d" % (t.where, len(got[t]), len(sent)))
                await asyncio.sleep(0.3)
                assert [m.get("data") for m in got[t]] == sent, t.where
                assert all(strip(m) == {"event": "loop", "data": i}
                           for i, m in enumerate(got[t])), t.where
                consecutive([m["id"] for m in got[t]], after=pos)
            for r in readers:
                r.cancel()
            # the killed node's client: reconnects to n3 with since and recovers all the rest
            before = got[t2]
            assert 60 <= len(before) < len(sent), (len(before), len(sent))
            assert [m.get("data") for m in before] == sent[:len(before)]
            async with tab(n3, u, since=before[-1]["id"]) as t:
                replay, f = await t.until_stream(10)
                assert [m.get("data") for m in before + replay] == sent
                consecutive([m["id"] for m in before + replay], after=pos)
                stream_frame(f, True, replay[-1]["id"])
                await t.nothing()

    with new_cluster() as c:
        run(go(c), timeout=50)


# -- the position check ------------------------------------------------------------------------

# RED_CHECK_EVERY (40 s) and the tick that confirms a stream behind (1 s), and some slack.
POSITION_CHECK_WITHIN = 45


def test_a_message_that_never_arrived_by_pub_sub_is_caught_up_by_the_position_check(cluster,
                                                                                    run):
    """Redis numbered and kept a message whose PUBLISH never reached the node (made here by
    writing it into the stream's keys by hand, as the script would, without a PUBLISH): the
    node's periodic position check sees Redis ahead of what arrived, and the connection gets
    the message from history, in order, once."""
    n1, n2, n3 = site_a(cluster)
    u = uid("lost")
    meta, hist = stream_keys(u)

    async def go():
        async with live(n2, u) as (t, pos):
            publish(n1, u, "before", 1)
            first = await t.next()
            ep, at = parse_id(first["id"])
            assert cluster.redis.cli("HINCRBY", meta, "o", "1") == str(at + 1)
            cluster.redis.cli("LPUSH", hist, '%d:{"event":"lost","data":2}' % (at + 1))
            m = await t.next(POSITION_CHECK_WITHIN)
            assert m == {"id": "%s:%d" % (ep, at + 1), "event": "lost", "data": 2}, m
            publish(n3, u, "after", 3)
            m = await t.next()
            assert strip(m) == {"event": "after", "data": 3}
            assert parse_id(m["id"]) == (ep, at + 2)
            await t.nothing(0.3)
    run(go(), timeout=POSITION_CHECK_WITHIN + 10)


def test_a_new_redis_server_goes_on_numbering_and_only_a_lost_id_is_told_recovered_false(
        cluster, run):
    """The cluster's generation is raised (what the first node to reach a new Redis server
    does: a restart or a failover; here by hand), so the stream's next touch starts a new
    epoch, here another tab's replay on the same node. Nothing was lost: the replay is
    recovered true, the connection holding the stream gets no gap frame, and the next
    message's id is the new epoch's at the next offset. Then the same with the last message
    lost (the new server never had it, as after a failover that lost writes: its counter one
    behind and its history without it): the tab that saw it is told recovered false, and the
    connection holding the stream gets {"op":"stream","gap":true,"recovered":false} before
    the new epoch's first message, which reuses the lost offset under the new epoch."""
    n1, n2, n3 = site_a(cluster)
    u = uid("relabel")
    meta, hist = stream_keys(u)

    async def go():
        async with live(n2, u) as (a, pos):
            publish(n1, u, "old", 1)
            publish(n1, u, "old", 2)
            seen = [await a.next() for _ in range(2)]
            consecutive([m["id"] for m in seen], after=pos)
            last = seen[-1]["id"]
            cluster.redis.cli("INCR", "herald:gen")
            async with tab(n2, u, since=last) as b:
                replay, f = await b.until_stream()
                assert replay == [], replay
                newest = stream_frame(f, True)
                assert epoch(newest) != epoch(last) and off(newest) == off(last), (newest, last)
                publish(n3, u, "new", 3)
                for t in (a, b):
                    m = await t.next()
                    assert strip(m) == {"event": "new", "data": 3}, m
                    assert parse_id(m["id"]) == (epoch(newest), off(last) + 1), (m, newest)
                    await t.nothing(0.3)
                last = m["id"]

            # the new server lost the last message
            cluster.redis.cli("INCR", "herald:gen")
            assert cluster.redis.cli("HINCRBY", meta, "o", "-1") == str(off(last) - 1)
            cluster.redis.cli("LPOP", hist)
            async with tab(n2, u, since=last) as b:
                replay, f = await b.until_stream()
                assert replay == [], replay
                newest = stream_frame(f, False)
                assert epoch(newest) != epoch(last) and off(newest) == off(last) - 1, \
                    (newest, last)
                gap = await a.next()
                assert gap == {"op": "stream", "id": newest, "recovered": False, "gap": True}, gap
                publish(n1, u, "after", 4)
                for t in (a, b):
                    m = await t.next()
                    assert strip(m) == {"event": "after", "data": 4}, m
                    assert parse_id(m["id"]) == (epoch(newest), off(last)), (m, newest)
                    await t.nothing(0.3)
    run(go(), timeout=20)


PROBE_WITHIN = REDIS_TIMEOUT + 1 + 1 + 2     # the probe's deadline, its period, and slack


def test_a_silent_pub_sub_link_is_found_by_the_probe_and_its_clients_get_what_it_dropped(run):
    """n2 reaches Redis through a relay. The relay silences n2's pub/sub connection: Redis's
    pushes are dropped, the connection stays open and nothing is published. The probe (a
    PUBLISH to the node's own channel every second, due back within redis_timeout + 1 s)
    notices: n2 logs it and reconnects the link within PROBE_WITHIN. A message published
    during the silence, which Redis counted as delivered to n2, reaches n2's client from
    history, in order, once, with no gap frame; the next one arrives live. n1's client got
    both live all along."""
    u = uid("silent")
    c = Cluster(names=("n1", "n2"), config=CONFIG, sites=sites())
    tmp = tempfile.mkdtemp(prefix="herald-relay-")
    relay = RedisRelay(c.redis, tmp)
    c.addresses["n2"] = "unix:" + relay.path

    async def go():
        n1, n2 = (h.site("a") for h in c.nodes)
        async with live(n1, u) as (t1, pos), live(n2, u) as (t2, _):
            publish(n1, u, "before", 1)
            first = [await t.next() for t in (t1, t2)]
            assert first[0] == first[1] and strip(first[0]) == {"event": "before", "data": 1}
            consecutive([first[0]["id"]], after=pos)
            mark = len(n2.h.log_text())
            assert relay.silence() == 1
            t0 = time.monotonic()
            publish(n1, u, "silenced", 2)
            m1 = await t1.next()
            assert strip(m1) == {"event": "silenced", "data": 2}
            consecutive([m1["id"]], after=first[0]["id"])
            # nothing published meanwhile: only the probe can find the link dead
            m2 = await t2.next(PROBE_WITHIN)
            took = time.monotonic() - t0
            assert m2 == m1, (m2, m1)
            assert "the pub/sub link stopped delivering" in n2.h.log_text()[mark:], \
                n2.h.log_text()[mark:]
            print("n2's client got the silenced message %.2fs after it was published" % took)
            publish(n1, u, "after", 3)
            for t in (t1, t2):
                m = await t.next()
                assert strip(m) == {"event": "after", "data": 3}, m
                consecutive([m["id"]], after=m1["id"])
                await t.nothing(0.3)

    try:
        with c:
            run(go(), timeout=30)
    finally:
        relay.close()
        shutil.rmtree(tmp, ignore_errors=True)


# -- Redis dies --------------------------------------------------------------------------------

def test_redis_killed_refuses_publishes_at_once_keeps_connections_and_recovers_after_restart(
        run):
    u, kept, ch = uid("rk"), uid("kept"), "chan:" + uid()

    async def go(c):
        n1, n2, n3 = site_a(c)
        async with live(n2, kept) as (k, kpos):
            async with live(n1, u) as (t, pos):
                for i in range(3):
                    publish((n1, n2, n3)[i], u, "before", i)
                    publish(n1, kept, "k", i)
                seen = [await t.next() for _ in range(3)]
                consecutive([m["id"] for m in seen], after=pos)
                x = seen[-1]["id"]
            for i in range(3, 5):           # published after X, before the crash
                publish(n2, u, "before", i)
            kgot = [await k.next() for _ in range(3)]

            c.redis.kill()
            killed = time.monotonic()
            for h in (n1, n2, n3):
                unavailable(h, {"users": [u], "event": "lost", "data": 0}, REDIS_TIMEOUT + 1)
                unavailable(h, {"channel": ch, "event": "lost", "data": 0}, REDIS_TIMEOUT + 1)
                unavailable(h, {"broadcast": True, "event": "lost"}, REDIS_TIMEOUT + 1)
                s = c.wait_available(h, False, REDIS_TIMEOUT + 1)
                assert s["engine"] == {"name": "redis", "available": False}, s["engine"]
            # past the deadline of anything in flight: the connection is still served
            await asyncio.sleep(max(0, killed + REDIS_TIMEOUT + 0.5 - time.monotonic()))
            assert k.ws.open
            await k.alive()
            await k.nothing(0.3)

            c.redis.restart()
            for h in (n1, n2, n3):
                wait_publishable(h, RECONNECT_WITHIN)
                s = c.wait_available(h, True, RECONNECT_WITHIN)
                assert s["engine"] == {"name": "redis", "available": True}, s["engine"]
            for i in range(5, 8):
                publish((n1, n3, n1)[i - 5], u, "after", i)
                publish(n3, kept, "k", i)
            # the connection kept open all along: the new messages, no gap, nothing lost
            kgot += [await k.next() for _ in range(3)]
            assert [{f: v for f, v in m.items() if f != "id"} for m in kgot] == \
                [{"event": "k", "data": i} for i in (0, 1, 2, 5, 6, 7)], kgot
            consecutive([m["id"] for m in kgot], after=kpos, new_server=True)
            assert len({epoch(m["id"]) for m in kgot}) == 2, kgot
            await k.nothing()
        # the client that saw X: everything after X, from before the crash and after it
        async with tab(n3, u, since=x) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == \
                [{"event": "before", "data": i} for i in (3, 4)] + \
                [{"event": "after", "data": i} for i in (5, 6, 7)], replay
            consecutive([m["id"] for m in replay], after=x, new_server=True)
            # one id per message: those from before the crash keep the ids they were sent with
            assert all(epoch(m["id"]) == epoch(x) for m in replay[:2]), (x, replay)
            stream_frame(f, True, replay[-1]["id"])
            await t.nothing()

    with new_cluster(persist=True) as c:
        run(go(c), timeout=50)


def test_redis_restarted_without_persistence_answers_recovered_false_never_a_partial_replay(
        run):
    u, ch = uid("lost"), "chan:" + uid()

    async def go(c):
        n1, n2, n3 = site_a(c)
        async with live(n1, u) as (t, pos):
            cpos = await subscribed(t, ch)
            for i in range(3):
                publish(n1, u, "old", i)
                n2.publish_channel(ch, "old", i)
            seen = [await t.next() for _ in range(6)]
        x = [m["id"] for m in seen if "channel" not in m][-1]
        cx = [m["id"] for m in seen if "channel" in m][-1]
        consecutive([m["id"] for m in seen if "channel" not in m], after=pos)
        consecutive([m["id"] for m in seen if "channel" in m], after=cpos)

        c.redis.kill()
        c.redis.start()                     # empty: no persistence
        for h in (n1, n2, n3):
            wait_publishable(h, RECONNECT_WITHIN)
        # the new epoch's offsets pass the old ids': a replay by offset alone would be partial
        for i in range(8):
            publish(n3, u, "new", i)
            n1.publish_channel(ch, "new", i)
        async with tab(n2, u, since=x) as t:
            first = await t.next()
            newest = stream_frame(first, False)
            assert epoch(newest) != epoch(x) and off(newest) > off(x), (newest, x)
            replay, ok = await t.subscribe(ch, since=cx)
            assert replay == [], replay
            assert set(ok) == {"op", "ref", "id", "recovered"} and ok["recovered"] is False, ok
            assert epoch(ok["id"]) != epoch(cx) and off(ok["id"]) > off(cx), (ok, cx)
            await t.nothing()
            # and it is live from there
            publish(n1, u, "live", 1)
            m = await t.next()
            assert strip(m) == {"event": "live", "data": 1}
            consecutive([m["id"]], after=newest)

    with new_cluster(persist=False) as c:
        run(go(c), timeout=40)


# -- bad input -----------------------------------------------------------------------------------

def test_bad_input_on_a_node_is_refused_counted_and_disturbs_no_other_node(cluster, run):
    """The API's and the browser's bad-input rules (#7) hold on a node of the cluster: a clear
    error, counted in that node's /stats, nothing reaches Redis (the stream's numbering does
    not move), and the clients on the other nodes keep receiving."""
    n1, n2, n3 = site_a(cluster)
    u = uid("bad")
    bad = [
        (b"{not json", 400),
        ({"users": [], "event": "e"}, 400),
        ({"users": ["x"], "event": "e", "channel": "c"}, 400),
        ({"channel": "bad name with spaces", "event": "e"}, 400),
        (b"[]", 400),
    ]

    async def go():
        async with live(n2, u) as (t2, pos), live(n3, u) as (t3, _):
            before = n1.api_ok("GET", "/stats")["api_errors"].get("400", 0)
            for body, status in bad:
                st, _, j = n1.api("POST", "/publish", body)
                assert st == status and j["ok"] is False and j["error"], (body, st, j)
            after = n1.api_ok("GET", "/stats")["api_errors"].get("400", 0)
            assert after - before == len(bad), (before, after)
            # A browser's bad command gets an error of its own, counted on its node only.
            errs = sum(n1.api_ok("GET", "/stats")["client_errors"].values())
            async with tab(n1, uid("badtab")) as bad_tab:
                await bad_tab.ws.send("not json")
                m = await bad_tab.next()
                assert m.get("op") == "error" and isinstance(m.get("code"), str), m
            assert sum(n1.api_ok("GET", "/stats")["client_errors"].values()) == errs + 1
            publish(n1, u, "after", 1)
            for t in (t2, t3):
                m = await t.next()
                assert strip(m) == {"event": "after", "data": 1}, (t.where, m)
                assert parse_id(m["id"]) == (parse_id(pos)[0], parse_id(pos)[1] + 1), (m, pos)
    run(go())


# -- sites -------------------------------------------------------------------------------------

def test_site_b_never_reaches_site_a_on_any_node_and_since_on_a_never_returns_b(cluster, run):
    a = site_a(cluster)
    b = [h.site("b") for h in cluster.nodes]
    u, ch = "u1", "chan:" + uid()

    async def go():
        async with live(a[0], u) as (a1, apos), live(a[1], u) as (a2, _), \
                live(a[2], u) as (a3, _), live(b[1], u) as (b2, bpos):
            for t in (a1, a2, a3, b2):
                await subscribed(t, ch)
            for i in range(3):
                publish(b[i], u, "b.user", i)
                b[i].publish_channel(ch, "b.chan", i)
            b[2].broadcast("b.all", 1)
            # (site b gets them all: each stream in its order; streams may interleave)
            got = [await b2.next() for _ in range(7)]
            b_user = [m for m in got if "id" in m and "channel" not in m]
            assert [strip(m) for m in b_user] == \
                [{"event": "b.user", "data": i} for i in range(3)], got
            assert [strip(m) for m in got if "channel" in m] == \
                [{"channel": ch, "event": "b.chan", "data": i} for i in range(3)], got
            assert {"event": "b.all", "data": 1} in got, got
            b_ids = [m["id"] for m in b_user]
            consecutive(b_ids, after=bpos)
            for t in (a1, a2, a3):
                await t.nothing(0.5)

            # site a's numbering is its own: its next message follows its own position
            publish(a[1], u, "a.user", 1)
            for t in (a1, a2, a3):
                m = await t.next()
                assert strip(m) == {"event": "a.user", "data": 1}, t.where
                consecutive([m["id"]], after=apos)
            a_last = m["id"]
            await b2.nothing(0.5)

        # since= on site a: a's own messages only, never b's
        async with tab(a[2], u, since=apos) as t:
            replay, f = await t.until_stream()
            assert [strip(m) for m in replay] == [{"event": "a.user", "data": 1}], replay
            stream_frame(f, True, a_last)
        # an id of b's stream: never b's messages; and as an id of another stream's epoch
        # (each stream has its own), recovered false with nothing replayed
        assert epoch(b_ids[0]) != epoch(apos), (b_ids[0], apos)
        async with tab(a[0], u, since=b_ids[0]) as t:
            replay, f = await t.until_stream()
            assert not [m for m in replay if m.get("event", "").startswith("b.")], replay
            assert replay == [], replay
            stream_frame(f, False, a_last)
    run(go())


# -- /stats ------------------------------------------------------------------------------------

def test_stats_of_every_site_on_every_node_name_the_redis_engine_available(cluster):
    for h in cluster.nodes:
        for name in ("a", "b"):
            s = h.site(name).stats()
            assert s["site"] == name, s
            assert s["engine"] == {"name": "redis", "available": True}, \
                (h.config.get("node_name"), name, s["engine"])

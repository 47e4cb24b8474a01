"""
89-redis-sentinel.py -- Herald nodes that find their Redis through Redis Sentinel
(`redis_sentinels`, `redis_sentinel_master`, issue #13) and follow a failover, with real
processes: Debian's redis-server as a master, a replica and three Sentinels, all on 127.0.0.1
(tests/lib/redis.py, SentinelGroup), three Herald nodes, real WebSocket clients (websockets)
and each node's FastCGI API.

The group: a master and a replica (`replicaof`, no persistence: the replica holds the data),
and three Sentinels watching "herald-test" with quorum 2, down-after 1000 ms, failover-timeout
5000 ms, parallel-syncs 1; the nodes start only once every Sentinel names the master, sees
the replica and the two other Sentinels. Each node: engine = redis, redis_sentinels = the
three, redis_sentinel_master = herald-test, redis_timeout = 1s, its own node_name, history
kept, channels chan:* public, and the same site "a" (one secret) as every other node.

Proves:
- the nodes find the master through the Sentinels alone (no redis_address): a publish on any
  node reaches a user's connections and a channel's subscribers on every node, once, ids
  consecutive; every node's /stats says engine {"name":"redis","available":true}; the
  nodes' connections are on the master, none on the replica;
- a failover (the master SIGKILLed while three publishers, one per node, publish to a user
  and to a channel through the nodes' APIs) is followed within FOLLOW_WITHIN (10 s) of the
  kill: every node answers 200 again by then (the times are measured and printed), 503
  {"ok":false,"error":"engine_unavailable"} only between the kill and then, nothing else;
  every publish answered 200 reaches the user's connection and the channel's subscriber on
  every node exactly once (unless inside a gap that client was told of), in each
  publisher's order, with one id per message that every node's client sees the same; the
  ids of each client's stream are consecutive (past the failover in a new epoch, as the new
  master numbers on), or the client was told
  {"op":"stream",("channel",)"id","recovered":false,"gap":true} right there, and the next id
  follows that frame's: never a silent gap (a publish answered 503 may have been applied,
  but only the one in flight at the kill); no WebSocket is closed, each
  still answers a ping; a client reconnecting to another node with since= (the last id its
  connection saw before the kill, and one twenty messages earlier) gets exactly the messages
  after it (recovered true) or nothing and recovered false, never a partial replay;
- SENTINEL FAILOVER (the replica promoted while the old master still runs and takes the
  nodes' writes for some seconds, until the Sentinels demote it and kill its clients): the
  publishes answered 200 in that window are lost from history, so the connected clients must
  be told recovered false (no silent gap), and a client that saw an id the old master handed
  out in that window must get recovered false on reconnecting with since=, never "recovered":
  true with part of what it missed (the new master numbers on from where it was promoted);
- a stale or useless Sentinel answer is not trusted: a node whose list starts with a
  Sentinel address nobody listens on, one that does not know the master (nil), and one that
  names the replica, still ends up on the master (its ROLE checked) and serves the cluster;
  a node whose only live Sentinel names the replica never becomes available and refuses
  publishes with 503.
"""

import asyncio
import contextlib
import json
import socketserver
import threading
import time

import pytest
import websockets.client
import websockets.exceptions

from herald import Herald, free_port, random_secret, uid
from redis import SentinelCluster, call, sentinel_node_config
import wstab
from wstab import parse_id, stream_frame

CONFIG = {
    "public_channels": "chan:*",
    "history_size": "5000",
    "command_rate": "0",
}

# Seconds after the master's SIGKILL within which every node must publish again (issue #13).
FOLLOW_WITHIN = 10.0

UNAVAILABLE = {"ok": False, "error": "engine_unavailable"}


def sites():
    return {"a": {"secret": random_secret(), "ws_path": "/a/ws"}}


def new_cluster():
    return SentinelCluster(names=("n1", "n2", "n3"), config=CONFIG, sites=sites())


@pytest.fixture(scope="module")
def cluster():
    with new_cluster() as c:
        yield c


def site_a(c):
    return [h.site("a") for h in c.nodes]


def name_of(site):
    return site.h.config.get("node_name")


def logs(c, tail=4000):
    """Every node's stderr (its "redis:" lines and the rest), then the Redis side's logs."""
    out = ["--- node %s stderr:\n%s" % (h.config.get("node_name"), h.log_text()[-tail:])
           for h in c.nodes]
    return "\n".join(out) + "\n" + c.group.logs()


# -- ids ---------------------------------------------------------------------------------------

def follows(sid, prev):
    """Is sid the id right after prev: the next offset, in the same epoch or, past a failover,
    a new one (the new master numbers on, rhist.c)? A message lost there is still caught:
    every accepted publish must arrive unless inside a gap the client was told of."""
    (e, o), (pe, po) = parse_id(sid), parse_id(prev)
    return o == po + 1


def consecutive(ids, after):
    prev = after
    for k, i in enumerate(ids):
        assert follows(i, prev), "id #%d %s does not follow %s: %r" % (k, i, prev, ids)
        prev = i


# -- clients ---------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def tab(site, user, since=None):
    async with wstab.tab(site, user, since, where="%s %s" % (name_of(site), user)) as t:
        yield t



@contextlib.asynccontextmanager
async def live(site, user):
    """A Tab of `user` opened with ?since= (empty) and past its stream frame: (tab, position)."""
    async with tab(site, user, since="") as t:
        before, f = await t.until_stream()
        assert before == [], before
        yield t, stream_frame(f, True)


async def subscribed(t, channel):
    before, ok = await t.subscribe(channel)
    assert before == [] and set(ok) == {"op", "ref", "id"}, (before, ok)
    parse_id(ok["id"])
    return ok["id"]


def strip(m):
    m = dict(m)
    parse_id(m.pop("id"))
    return m


# -- 1. the master, found through the Sentinels ------------------------------------------------

def herald_clients(port):
    """The connections on the Redis at port that are not a Sentinel's, a replication link's
    or this very CLIENT LIST: Herald's."""
    out = []
    for line in call(port, "CLIENT", "LIST").splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name", "").startswith("sentinel-") or f.get("cmd") == "client|list" or \
                set(f.get("flags", "")) & set("SM"):
            continue
        out.append(f)
    return out


def test_the_nodes_find_the_master_through_the_sentinels(cluster, run):
    nodes = site_a(cluster)
    g = cluster.group
    u, ch = uid("find"), "chan:" + uid()
    subs = [uid("sub") for _ in nodes]
    for h in cluster.nodes:
        assert "redis_address" not in h.config and \
            h.config["redis_sentinels"] == g.addresses, h.config

    async def go():
        async with live(nodes[0], u) as (t1, pos), live(nodes[1], u) as (t2, p2), \
                live(nodes[2], u) as (t3, p3), live(nodes[0], subs[0]) as (s1, _), \
                live(nodes[1], subs[1]) as (s2, _), live(nodes[2], subs[2]) as (s3, _):
            assert pos == p2 == p3
            cpos = [await subscribed(s, ch) for s in (s1, s2, s3)]
            assert len(set(cpos)) == 1, cpos
            tabs, chans = (t1, t2, t3), (s1, s2, s3)
            uids, cids = [], []
            for k, site in enumerate(nodes):
                j = site.api_ok("POST", "/publish", {"users": [u], "event": "find.user",
                                                     "data": k})
                assert j["delivered"] == 3, j
                got = [await t.next() for t in tabs]
                assert [strip(m) for m in got] == [{"event": "find.user", "data": k}] * 3, got
                assert len({m["id"] for m in got}) == 1, got
                uids.append(got[0]["id"])
                j = site.api_ok("POST", "/publish", {"channel": ch, "event": "find.chan",
                                                     "data": k})
                got = [await s.next() for s in chans]
                assert [strip(m) for m in got] == \
                    [{"channel": ch, "event": "find.chan", "data": k}] * 3, got
                assert len({m["id"] for m in got}) == 1, got
                cids.append(got[0]["id"])
            consecutive(uids, pos)
            consecutive(cids, cpos[0])
            for t in tabs + chans:
                await t.nothing(0.3)
    run(go())

    for h in cluster.nodes:
        s = h.site("a").stats()
        assert s["engine"] == {"name": "redis", "available": True}, \
            (h.config["node_name"], s["engine"])
    # where they are: at least the two links of each node on the master, none on the replica
    on_master = herald_clients(g.master.port)
    assert len(on_master) >= 2 * len(cluster.nodes), on_master
    assert herald_clients(g.replica.port) == [], herald_clients(g.replica.port)
    # and what they wrote is replicated
    assert call(g.replica.port, "DBSIZE") > 0


# -- 3. stale and useless Sentinel answers -----------------------------------------------------

class FakeSentinel:
    """
    A TCP server on 127.0.0.1 that answers SENTINEL get-master-addr-by-name with `answer`
    ((host, port), or None for nil: "no such master") and counts how often it was asked.
    """

    def __init__(self, answer):
        self.answer = answer
        self.asked = 0
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    line = self.rfile.readline()
                    if not line.startswith(b"*"):
                        return
                    args = []
                    for _ in range(int(line[1:])):
                        n = int(self.rfile.readline()[1:])
                        args.append(self.rfile.read(n + 2)[:-2].decode())
                    if [a.lower() for a in args[:2]] == ["sentinel", "get-master-addr-by-name"]:
                        fake.asked += 1
                        if fake.answer is None:
                            self.wfile.write(b"*-1\r\n")
                        else:
                            h, p = fake.answer[0].encode(), str(fake.answer[1]).encode()
                            self.wfile.write(b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                                             % (len(h), h, len(p), p))
                    else:
                        self.wfile.write(b"-ERR unknown command\r\n")
                    self.wfile.flush()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_a_stale_sentinel_answer_is_not_trusted(cluster, run):
    g = cluster.group
    n1 = cluster.nodes[0].site("a")
    dead = "127.0.0.1:%d" % free_port()          # nothing listens there
    nil = FakeSentinel(None)                     # does not know the master
    liar = FakeSentinel(("127.0.0.1", g.replica.port))   # names the replica
    u, ch = uid("stale"), "chan:" + uid()
    try:
        # Behind the dead one, the ignorant one and the liar, the real Sentinels.
        cfg = dict(CONFIG)
        cfg.update(sentinel_node_config(g, "n4", [dead, nil.address, liar.address] +
                                        [s.address for s in g.sentinels]))
        with Herald(config=cfg, sites=cluster.sites) as h4:
            n4 = h4.site("a")
            cluster.wait_available(h4, True, 10)
            assert liar.asked >= 1 and nil.asked >= 1, (liar.asked, nil.asked, h4.log_text())
            assert herald_clients(g.replica.port) == [], \
                (herald_clients(g.replica.port), h4.log_text())

            async def go():
                async with live(n1, u) as (t1, pos), live(n4, u) as (t4, p4), \
                        live(n4, uid("s")) as (s4, _):
                    assert pos == p4
                    cpos = await subscribed(s4, ch)
                    n4.api_ok("POST", "/publish", {"users": [u], "event": "s", "data": 1})
                    n1.api_ok("POST", "/publish", {"users": [u], "event": "s", "data": 2})
                    n1.api_ok("POST", "/publish", {"channel": ch, "event": "c", "data": 3})
                    for t in (t1, t4):
                        got = [await t.next() for _ in range(2)]
                        assert [strip(m) for m in got] == \
                            [{"event": "s", "data": 1}, {"event": "s", "data": 2}], got
                        consecutive([m["id"] for m in got], pos)
                    m = await s4.next()
                    assert strip(m) == {"channel": ch, "event": "c", "data": 3}, m
                    consecutive([m["id"]], cpos)
                    for t in (t1, t4, s4):
                        await t.nothing(0.3)
            run(go())

        # Only the liar (and a dead one): a replica is never taken for the master.
        cfg = dict(CONFIG)
        cfg.update(sentinel_node_config(g, "n5", [dead, liar.address]))
        asked = liar.asked
        with Herald(config=cfg, sites=cluster.sites) as h5:
            time.sleep(3)
            s = h5.site("a").stats()
            assert s["engine"] == {"name": "redis", "available": False}, \
                (s["engine"], h5.log_text())
            status, _, j = h5.site("a").api("POST", "/publish",
                                            {"users": [u], "event": "never", "data": 0})
            assert (status, j) == (503, UNAVAILABLE), (status, j, h5.log_text())
            assert liar.asked >= asked + 2, (liar.asked, asked, h5.log_text())
    finally:
        nil.close()
        liar.close()


# -- 2. failovers ------------------------------------------------------------------------------

class Publisher(threading.Thread):
    """
    Publishes through one node's API in a loop, alternately to the user and to the channel,
    each data [node, seq]; records (seq, kind, t0, t1, status, answer) of every request.
    """

    def __init__(self, k, site, user, channel, stop):
        super().__init__(daemon=True)
        self.k = k
        self.site = site
        self.user = user
        self.channel = channel
        self.stop = stop
        self.records = []
        self.errors = []

    def run(self):
        seq = 0
        try:
            while not self.stop.is_set():
                kind = "u" if seq % 2 == 0 else "c"
                body = {"event": "fo", "data": [self.k, seq]}
                if kind == "u":
                    body["users"] = [self.user]
                else:
                    body["channel"] = self.channel
                t0 = time.monotonic()
                status, _, j = self.site.api("POST", "/publish", body, timeout=10)
                t1 = time.monotonic()
                self.records.append((seq, kind, t0, t1, status, j))
                if not (status == 200 and j.get("ok") is True) and \
                        (status, j) != (503, UNAVAILABLE):
                    self.errors.append("node %d publish #%d answered %s %r" % (
                        self.k + 1, seq, status, j))
                seq += 1
                time.sleep(0.01)
        except BaseException as e:
            self.errors.append("node %d: %r" % (self.k + 1, e))


def check_stream(where, frames, pos, channel, accepted, maybe):
    """
    One client's frames of one stream, in order: messages and told gaps. Asserts: no silent
    gap (each id follows the one before, or a recovered:false gap frame came right there and
    it follows that frame's id), no duplicate, each publisher's order, every accepted publish
    there unless inside a told gap, nothing that was refused (unless maybe applied). Returns
    (the messages [(id, (node, seq))], the told gaps [(messages before it, prev id, its id)]).
    """
    msgs, told, prev = [], [], pos
    for f in frames:
        if f.get("op") == "stream":
            want = {"op", "id", "recovered", "gap"} | ({"channel"} if channel else set())
            assert set(f) == want and f["recovered"] is False and f["gap"] is True and \
                f.get("channel") == channel, "%s: bad frame %r" % (where, f)
            parse_id(f["id"])
            told.append((len(msgs), prev, f["id"]))
            prev = f["id"]
            continue
        want = {"event": "fo", "data": f.get("data")}
        if channel:
            want["channel"] = channel
        assert strip(f) == want, "%s: bad message %r" % (where, f)
        assert follows(f["id"], prev), \
            "%s: SILENT GAP: message %s %r came after %s with no recovered:false frame " \
            "(told gaps so far: %r)" % (where, f["id"], f["data"], prev, told)
        prev = f["id"]
        msgs.append((f["id"], tuple(f["data"])))
    got = [m for _, m in msgs]
    assert len(set(got)) == len(got), "%s: a message twice: %r" % (
        where, [m for m in got if got.count(m) > 1])
    for k in range(3):
        mine = [s for n, s in got if n == k]
        assert mine == sorted(mine), "%s: node %d's publishes out of order: %r" % (
            where, k + 1, mine)
    extra = [m for m in got if m not in accepted and m not in maybe]
    assert not extra, "%s: got publishes that were refused (and not in flight): %r" % (
        where, extra)
    have = set(got)
    missing = [m for m in accepted if m not in have]
    if missing:
        # A loss is allowed only where the client was told (recovered false) it may have lost.
        def in_told_gap(m):
            for at, _, _ in told:
                before = [x for x in got[:at] if x[0] == m[0]]
                after = [x for x in got[at:] if x[0] == m[0]]
                if all(x[1] < m[1] for x in before) and all(x[1] > m[1] for x in after):
                    return True
            return False
        silent = [m for m in missing if not in_told_gap(m)]
        assert not silent, "%s: %d publishes answered 200 never arrived, with no " \
            "recovered:false around them: %r (told gaps %r)" % (where, len(silent),
                                                                  silent[:20], told)
        print("%s: %d publishes answered 200 never arrived, each inside a told gap: %r..."
              % (where, len(missing), missing[:10]))
    if told:
        print("%s: told recovered:false %d time(s): %r" % (where, len(told), told))
    return msgs, told


class Traffic:
    """
    On each node of c: a tab of one user and a subscriber of one channel (both connected with
    since= and past their stream frame / subscribe ok), and a Publisher through that node's
    API; every frame each client gets is kept with the time it came.
    """

    def __init__(self, c):
        self.c = c
        self.nodes = site_a(c)
        self.u, self.ch = uid("fo"), "chan:" + uid()
        self.stop_ev = threading.Event()
        self.pubs = [Publisher(k, s, self.u, self.ch, self.stop_ev)
                     for k, s in enumerate(self.nodes)]
        self.utabs, self.stabs = [], []
        self.got, self.closed, self.readers = {}, {}, []

    async def open(self, stack):
        upos, cpos = [], []
        for site in self.nodes:
            t, p = await stack.enter_async_context(live(site, self.u))
            self.utabs.append(t)
            upos.append(p)
            s, _ = await stack.enter_async_context(live(site, uid("fsub")))
            self.stabs.append(s)
            cpos.append(await subscribed(s, self.ch))
        assert len(set(upos)) == 1 and len(set(cpos)) == 1, (upos, cpos)
        self.upos, self.cpos = upos[0], cpos[0]
        self.clients = self.utabs + self.stabs
        self.got = {t: [] for t in self.clients}

    async def _collect(self, t):
        try:
            while True:
                raw = await t.ws.recv()
                self.got[t].append((time.monotonic(), json.loads(raw)))
        except websockets.exceptions.ConnectionClosed as e:
            self.closed[t] = e

    def start(self):
        self.readers = [asyncio.ensure_future(self._collect(t)) for t in self.clients]
        for p in self.pubs:
            p.start()

    async def until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            assert not any(p.errors for p in self.pubs), [p.errors for p in self.pubs]
            if time.monotonic() > deadline:
                raise AssertionError("%s\n%s" % (what(), logs(self.c)))
            await asyncio.sleep(0.02)

    def messages(self, t, before=None):
        return [f for tm, f in self.got[t] if f.get("event") and (before is None or tm < before)]

    def publishing_since(self, since, n=5):
        """Has every node answered its last n publishes with 200, all sent after `since`?"""
        return all(len(p.records) >= n and all(r[4] == 200 and r[2] > since
                                               for r in p.records[-n:]) for p in self.pubs)

    async def stop(self):
        self.stop_ev.set()
        loop = asyncio.get_running_loop()
        for p in self.pubs:
            await loop.run_in_executor(None, p.join, 15)
        assert not any(p.errors for p in self.pubs), [p.errors for p in self.pubs]

    def check_api(self, event, last_503, maybe_before=None):
        """
        Every publish answered before `event` was 200; 503 engine_unavailable only from then
        to last_503 (request sent by then); returns each node's seconds from `event` to its
        first 200 after its last 503. Sorts the publishes into accepted (200) and maybe (503,
        but the one in flight when a node's link dropped: the first of each run of 503s, and
        with maybe_before, only if sent before it) per stream kind.
        """
        self.accepted = {"u": [], "c": []}
        self.maybe = {"u": set(), "c": set()}
        took = []
        for p in self.pubs:
            early = [r for r in p.records if r[3] < event and r[4] != 200]
            assert not early, "node n%d refused before the failover (%.2fs before it): %r\n%s" \
                % (p.k + 1, event - early[0][2], early[:5], logs(self.c))
            refused = [r for r in p.records if r[4] == 503]
            late = [r for r in refused if r[2] > last_503]
            assert not late, "node n%d still answered 503 %.1fs after the failover: %r\n%s" % (
                p.k + 1, late[0][2] - event, late[:3], logs(self.c))
            prev = 200
            for seq, kind, t0, t1, status, _ in p.records:
                if status == 200:
                    self.accepted[kind].append((p.k, seq))
                elif prev == 200 and (maybe_before is None or t0 < maybe_before):
                    self.maybe[kind].add((p.k, seq))
                prev = status
            last = max((r[0] for r in refused), default=-1)
            again = next(r for r in p.records if r[0] > last and r[4] == 200 and r[2] > event)
            took.append(again[3] - event)
            print("node n%d: %d publishes, %d answered 503 (the first %.2fs after the "
                  "failover began), 200 again %.2fs after it" % (
                      p.k + 1, len(p.records), len(refused),
                      (refused[0][3] - event) if refused else float("nan"), took[-1]))
        return took

    async def drain(self):
        """Wait until every accepted publish reached its clients; none closed, all alive."""
        def complete(t, kind):
            # Every accepted publish, or, when the client was told it lost some (a gap frame;
            # check_stream then proves each missing one lies inside a told gap), at least the
            # last each node's publisher had accepted: nothing is still on its way.
            frames = self.messages(t)
            have = {tuple(f["data"]) for f in frames if "data" in f}
            if all(m in have for m in self.accepted[kind]):
                return True
            told = any(f.get("op") == "stream" and f.get("gap") for _, f in self.got[t])
            lasts = {}
            for m in self.accepted[kind]:
                lasts[m[0]] = max(lasts.get(m[0], m), m)
            return told and all(m in have for m in lasts.values())
        await self.until(lambda: all(complete(t, "u") for t in self.utabs) and
                         all(complete(t, "c") for t in self.stabs), 10,
                         lambda: "accepted publishes that never arrived, per client: %r" % [
                             (t.where, len([m for m in self.accepted[k]
                                            if m not in {tuple(f["data"])
                                                         for f in self.messages(t)}]))
                             for t, k in [(t, "u") for t in self.utabs] +
                             [(t, "c") for t in self.stabs]])
        await asyncio.sleep(0.5)
        assert not self.closed, "WebSockets closed during the failover: %r" % (
            {t.where: repr(e) for t, e in self.closed.items()})
        for t in self.clients:
            await t.alive()
        for r in self.readers:
            r.cancel()

    def check_clients(self):
        """check_stream on every client; one id per message on every node. Returns streams."""
        self.streams = {}
        for t in self.utabs:
            frames = [f for _, f in self.got[t]]
            assert all("channel" not in f for f in frames), (t.where, frames)
            self.streams[t] = check_stream(t.where, frames, self.upos, None,
                                           self.accepted["u"], self.maybe["u"])
        for t in self.stabs:
            frames = [f for _, f in self.got[t] if f.get("channel") == self.ch]
            other = [f for _, f in self.got[t] if f.get("channel") != self.ch]
            # its own user stream has no messages; at most a gap frame, if it thought it might
            assert all(f.get("op") == "stream" and f["recovered"] is False and
                       f.get("gap") is True for f in other), (t.where, other)
            self.streams[t] = check_stream(t.where, frames, self.cpos, self.ch,
                                           self.accepted["c"], self.maybe["c"])
        for group in (self.utabs, self.stabs):
            ids = {}
            for t in group:
                for i, m in self.streams[t][0]:
                    assert ids.setdefault(m, i) == i, "message %r has ids %s and %s" % (
                        m, ids[m], i)
        print("accepted: %d to the user, %d to the channel (%d and %d refused ones may have "
              "been applied)" % (len(self.accepted["u"]), len(self.accepted["c"]),
                                 len(self.maybe["u"]), len(self.maybe["c"])))

    async def reconnect(self, t, since, site):
        """
        t's stream, read on `site` by a new connection with since: either recovered true and
        exactly every accepted publish t had not seen up to since, in order, ids consecutive
        from since; or recovered false and nothing replayed. Returns recovered.
        """
        is_user = t in self.utabs
        kind = "u" if is_user else "c"
        msgs, told = self.streams[t]
        at = [i for i, _ in msgs].index(since)
        seen = {m for _, m in msgs[:at + 1]}
        owed = [m for m in self.accepted[kind] if m not in seen]
        if is_user:
            async with tab(site, self.u, since=since) as r:
                replay, f = await r.until_stream(10)
                assert set(f) == {"op", "id", "recovered"}, f
                await r.nothing(0.3)
        else:
            async with live(site, uid("late")) as (r, _):
                replay, f = await r.subscribe(self.ch, timeout=10, since=since)
                assert set(f) == {"op", "ref", "id", "recovered"}, f
                await r.nothing(0.3)
        what = "%s: since %s on %s" % (t.where, since, name_of(site))
        rec = f["recovered"]
        parse_id(f["id"])
        got = [(m["id"], tuple(m["data"])) for m in replay]
        if rec is True:
            consecutive([i for i, _ in got], since)
            assert f["id"] == (got[-1][0] if got else since), (what, f)
            data = [m for _, m in got]
            lost = [m for m in owed if m not in set(data)]
            assert not lost, \
                "%s: PARTIAL REPLAY: recovered true with %d messages (%s..%s), but %d " \
                "publishes answered 200 that this client had not seen by then are not in " \
                "it: %r..." % (what, len(got), got[0][0] if got else "-",
                               got[-1][0] if got else "-", len(lost), lost[:10])
            extra = [m for m in data if m in seen or
                     (m not in self.accepted[kind] and m not in self.maybe[kind])]
            assert not extra, "%s: replayed what it had seen or was refused: %r" % (
                what, extra[:10])
            mine = {k: [s for n, s in data if n == k] for k in range(3)}
            assert all(v == sorted(v) for v in mine.values()), (what, mine)
            if not [x for x in told if x[0] > at]:
                # nothing was lost after since: the replay is what the live client got
                assert got == msgs[at + 1:], (what, len(got), len(msgs[at + 1:]))
            print("%s: recovered, %d replayed" % (what, len(got)))
        else:
            assert rec is False and replay == [], \
                "%s: a partial replay: %d messages, then %r" % (what, len(replay), f)
            print("%s: recovered false" % what)
        return rec


def test_a_failover_is_followed_within_10_s_with_no_silent_gap(run):
    async def go(c):
        g = c.group
        tr = Traffic(c)
        old_master = g.master.port
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            await tr.open(stack)
            tr.start()
            try:
                await tr.until(lambda: all(len(tr.messages(t)) >= 30 for t in tr.clients), 15,
                               lambda: "before the kill: %r" % [len(tr.messages(t))
                                                                for t in tr.clients])
                killed = time.monotonic()        # the kill is between these two
                g.master.kill()
                reaped = time.monotonic()
                switched = loop.run_in_executor(None, g.wait_failover, old_master, 20)
                # Waited for a little longer than FOLLOW_WITHIN, to say how long it took.
                await tr.until(lambda: tr.publishing_since(killed), FOLLOW_WITHIN + 8,
                               lambda: "not every node publishes again %.0fs after the kill: "
                               "%r" % (time.monotonic() - killed,
                                       [(p.k + 1, p.records[-1][4:]) for p in tr.pubs]))
                new_master = await switched
                sentinels_by = time.monotonic() - killed
                await asyncio.sleep(1.0)
            finally:
                await tr.stop()

            follow = tr.check_api(killed, killed + FOLLOW_WITHIN, maybe_before=reaped)
            print("the Sentinels named %d (was %d) by %.2fs after the kill; the nodes "
                  "published again after %s s" % (new_master, old_master, sentinels_by,
                                                   ", ".join("%.2f" % t for t in follow)))
            for k, took in enumerate(follow):
                assert took <= FOLLOW_WITHIN, \
                    "node n%d answered 200 again only %.2fs after the kill\n%s" % (
                        k + 1, took, logs(c))
            await tr.drain()
            try:
                tr.check_clients()
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, logs(c))) from None

            # Another node, with since: the last id seen before the kill, and 20 before it.
            for k in range(3):
                for t in (tr.utabs[k], tr.stabs[k]):
                    seen = [f["id"] for f in tr.messages(t, before=killed)]
                    assert len(seen) >= 21, (t.where, len(seen))
                    for since in (seen[-1], seen[-21]):
                        await tr.reconnect(t, since, tr.nodes[(k + 1) % 3])
        assert herald_clients(new_master)

    with new_cluster() as c:
        run(go(c), timeout=45)
        for h in c.nodes:
            s = h.site("a").stats()
            assert s["engine"] == {"name": "redis", "available": True}, s["engine"]


def test_a_sentinel_failover_that_loses_writes_is_never_replayed_as_recovered(run):
    """
    SENTINEL FAILOVER: the replica is promoted while the old master keeps running and, until
    the Sentinels turn it into a replica (and kill its clients) some seconds later, still
    takes the nodes' writes, which the new master never gets. Publishes answered 200 in that
    window are delivered live, then lost from history. The connected clients must be told
    (recovered false), and a client that saw an id the old master handed out in that window
    must, on reconnecting with since=, get recovered false (or everything it missed), never
    "recovered": true with part of it.
    """
    async def go(c):
        g = c.group
        tr = Traffic(c)
        old = g.master
        async with contextlib.AsyncExitStack() as stack:
            await tr.open(stack)
            tr.start()
            try:
                await tr.until(lambda: all(len(tr.messages(t)) >= 30 for t in tr.clients), 15,
                               lambda: "before the failover: %r" % [len(tr.messages(t))
                                                                    for t in tr.clients])
                began = time.monotonic()
                assert call(g.sentinels[0].port, "SENTINEL", "FAILOVER", g.name) == "OK"
                await tr.until(lambda: g.replica.role() == "master", 10,
                               lambda: "the replica was not promoted")
                promoted = time.monotonic()
                await asyncio.sleep(1.0)
                # ids the old master handed out after the promotion: written nowhere else
                marks = {t: tr.messages(t)[-1]["id"] for t in (tr.utabs[0], tr.stabs[0])}
                assert all(tm > promoted + 0.5 for t in marks
                           for tm, f in tr.got[t] if f.get("id") == marks[t]), marks
                await tr.until(lambda: old.role() == "slave" and not herald_clients(old.port),
                               30, lambda: "the nodes are still on the old master")
                moved = time.monotonic()
                await tr.until(lambda: tr.publishing_since(moved), FOLLOW_WITHIN,
                               lambda: "not every node publishes again")
                # go on until the new master's numbering has passed the marks
                await tr.until(lambda: all(
                    parse_id(tr.messages(t)[-1]["id"])[1] > parse_id(marks[t])[1] + 10
                    for t in marks), 15, lambda: "the numbering did not pass %r" % marks)
            finally:
                await tr.stop()
            print("promoted %.2fs after SENTINEL FAILOVER; the nodes left the old master "
                  "%.2fs after it" % (promoted - began, moved - began))
            tr.check_api(began, moved + FOLLOW_WITHIN)
            await tr.drain()
            tr.check_clients()
            for t, since in marks.items():
                await tr.reconnect(t, since, tr.nodes[1])

    with new_cluster() as c:
        run(go(c), timeout=50)

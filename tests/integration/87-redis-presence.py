"""
87-redis-presence.py -- presence and who is online across Herald nodes sharing one Redis
(`engine = redis`, issue #13), with real nodes, a real redis-server (tests/lib/redis.py), real
WebSocket clients (tests/lib/wscmd.py) and each node's FastCGI API.

The module's cluster: one Redis and three nodes n1, n2, n3 (node_name n1..n3), each with one
site "a" whose secret they share and whose room:* channels are public presence channels. The
test that kills a node starts a cluster of its own.

Proves:
- members from every node: three users subscribed to one presence channel on three nodes;
  each subscribe ok lists everyone subscribed before it and the subscriber; earlier members
  get one join per later one, wherever it connected; GET /presence?channel= on every node lists
  all three, with info and connections;
- one user, two tabs on two nodes: one member (connections 2 on every node's /presence), one
  join to observers on every node; the first tab closing says nothing; the last one closing
  makes exactly one leave on every node, and the member is gone from every node's /presence;
- GET /presence?user= on n1 (and n3) answers online, with the cluster's connection count, for
  a user connected on n2 (and n3), and offline once every tab closed;
- a node SIGKILLed: its members leave (a leave reaches the subscribers on the other nodes) and
  are gone from /presence?channel= and ?user= on the surviving nodes within PRESENCE_EXPIRY
  (plus PRESENCE_GRACE for the test's own polling).
"""

import asyncio
import contextlib
import signal
import time

import pytest

from herald import by_user, random_secret, uid
from redis import Cluster
from wscmd import NoMessage, client

CONFIG = {
    "public_channels": "room:*",
    "presence_channels": "room:*",
    "command_rate": "0",
}

# Seconds after which a node that died without a word no longer counts in presence: its
# members leave and its users are offline everywhere else.
PRESENCE_EXPIRY = 25  # RED_PRESENCE_TTL (20 s) + RED_UPKEEP_EVERY (5 s): docs/reliability.md
PRESENCE_GRACE = 5

# Seconds within which what one node did is seen through another node's API.
SPREAD_WITHIN = 3.0


def new_cluster():
    return Cluster(names=("n1", "n2", "n3"), config=CONFIG,
                   sites={"a": {"secret": random_secret()}})


@pytest.fixture(scope="module")
def cluster():
    with new_cluster() as c:
        yield c


def sites(c):
    """Site a of each node: [n1, n2, n3]."""
    return [h.site("a") for h in c.nodes]


def info_of(user):
    return {"name": "N " + user}


def member(user, connections=None):
    m = {"user": user, "info": info_of(user)}
    if connections is not None:
        m["connections"] = connections
    return m


def tab(site, user):
    """A wscmd client of `user` on a node, its token carrying an info claim."""
    return client(site, user, info=info_of(user))


def join(ch, user):
    return {"op": "join", "channel": ch, "user": user, "info": info_of(user)}


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


async def no_presence(c, timeout=0.5):
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


async def members_everywhere(nodes, ch, want, timeout=SPREAD_WITHIN):
    """Every node's GET /presence?channel= lists exactly `want` (sorted by user) in time."""
    want = by_user(want)
    deadline = time.monotonic() + timeout
    while True:
        got = [s.members(ch) for s in nodes]
        if all(g == want for g in got):
            return
        if time.monotonic() > deadline:
            raise AssertionError("members of %s after %.1fs: %s; expected %r" % (
                ch, timeout, "; ".join("%s %r" % (s.h.config.get("node_name"), g)
                                       for s, g in zip(nodes, got)), want))
        await asyncio.sleep(0.05)


async def online_everywhere(nodes, user, want, timeout=SPREAD_WITHIN):
    """Every node's GET /presence?user= answers `want` ((online, connections)) in time."""
    deadline = time.monotonic() + timeout
    while True:
        got = [s.online(user) for s in nodes]
        if all(g == want for g in got):
            return
        if time.monotonic() > deadline:
            raise AssertionError("/presence?user=%s after %.1fs: %s; expected %r" % (
                user, timeout, "; ".join("%s %r" % (s.h.config.get("node_name"), g)
                                         for s, g in zip(nodes, got)), want))
        await asyncio.sleep(0.05)


async def observers(nodes, ch, stack):
    """One observer per node, subscribed to ch in turn, their joins to each other drained."""
    obs = []
    for s in nodes:
        o = await stack.enter_async_context(tab(s, uid("obs")))
        ans = await o.subscribe(ch)
        assert by_user(ans["members"]) == by_user([member(p.user) for p in obs + [o]]), ans
        for earlier in obs:
            assert await presence_event(earlier) == join(ch, o.user)
        obs.append(o)
    return obs


# -- members -----------------------------------------------------------------------------------

def test_members_of_a_presence_channel_come_from_every_node(cluster, run):
    nodes = sites(cluster)
    ch = "room:" + uid()
    users = [uid("ann"), uid("bob"), uid("cat")]

    async def go():
        async with contextlib.AsyncExitStack() as stack:
            tabs = []
            for s, u in zip(nodes, users):
                t = await stack.enter_async_context(tab(s, u))
                ans = await t.subscribe(ch)
                assert set(ans) == {"op", "ref", "members"}, ans
                assert by_user(ans["members"]) == by_user([member(x) for x in users[:len(tabs)
                                                                                     + 1]]), ans
                for earlier in tabs:
                    assert await presence_event(earlier) == join(ch, u), earlier.user
                tabs.append(t)
            await members_everywhere(nodes, ch, [member(u, 1) for u in users])
            for t in tabs:
                await no_presence(t, 0.3)
    run(go())


def test_two_tabs_on_two_nodes_are_one_member_one_join_and_one_leave(cluster, run):
    _, n2, n3 = nodes = sites(cluster)
    ch, ann = "room:" + uid(), uid("ann")

    async def go():
        async with contextlib.AsyncExitStack() as stack:
            obs = await observers(nodes, ch, stack)
            others = [member(o.user, 1) for o in obs]
            async with tab(n2, ann) as t1:
                ans = await t1.subscribe(ch)
                assert by_user(ans["members"]) == by_user(
                    [member(ann)] + [member(o.user) for o in obs]), ans
                for o in obs:
                    assert await presence_event(o) == join(ch, ann), o.user
                async with tab(n3, ann) as t2:
                    ans = await t2.subscribe(ch)
                    assert by_user(ans["members"]) == by_user(
                        [member(ann)] + [member(o.user) for o in obs]), ans
                    for o in obs:
                        await no_presence(o)
                    await no_presence(t1)
                    await members_everywhere(nodes, ch, others + [member(ann, 2)])
                # the first tab (on n3) goes: ann is still a member, through n2
                for o in obs:
                    await no_presence(o)
                await members_everywhere(nodes, ch, others + [member(ann, 1)])
            # the last tab goes: one leave on every node, and only one
            for o in obs:
                assert await presence_event(o) == leave(ch, ann), o.user
            for o in obs:
                await no_presence(o)
            await members_everywhere(nodes, ch, others)
    run(go())


# -- online ------------------------------------------------------------------------------------

def test_online_on_one_node_answers_for_a_user_connected_on_another(cluster, run):
    n1, n2, n3 = nodes = sites(cluster)
    v = uid("on")

    async def go():
        assert n1.online(v) == (False, 0)
        async with tab(n2, v) as t1:
            await t1.alive()
            await online_everywhere([n1, n3], v, (True, 1))
            async with tab(n3, v) as t2:
                await t2.alive()
                await online_everywhere(nodes, v, (True, 2))
            await online_everywhere(nodes, v, (True, 1))
        await online_everywhere(nodes, v, (False, 0))
    run(go())


# -- a node dies -------------------------------------------------------------------------------

def test_a_killed_nodes_members_leave_and_go_offline_within_the_expiry(run):
    ch, k = "room:" + uid(), uid("gone")

    async def go(c):
        n1, n2, n3 = sites(c)
        assert n2.running()
        async with tab(n1, uid("o1")) as o1, tab(n3, uid("o3")) as o3:
            await o1.subscribe(ch)
            ans = await o3.subscribe(ch)
            assert by_user(ans["members"]) == by_user([member(o1.user), member(o3.user)]), ans
            assert await presence_event(o1) == join(ch, o3.user)
            async with tab(n2, k) as victim:
                await victim.subscribe(ch)
                for o in (o1, o3):
                    assert await presence_event(o) == join(ch, k)
                alive = [member(o1.user, 1), member(o3.user, 1)]
                await members_everywhere([n1, n3], ch, alive + [member(k, 1)])
                await online_everywhere([n1, n3], k, (True, 1))

                c.node("n2").stop(sig=signal.SIGKILL, expect_rc=-signal.SIGKILL)
                deadline = time.monotonic() + PRESENCE_EXPIRY + PRESENCE_GRACE
                for o in (o1, o3):
                    m = await presence_event(o, max(0.1, deadline - time.monotonic()))
                    assert m == leave(ch, k), m
                left = deadline - time.monotonic()
                await members_everywhere([n1, n3], ch, alive, timeout=max(0.1, left))
                await online_everywhere([n1, n3], k, (False, 0), timeout=max(0.1, left))
                for o in (o1, o3):
                    await no_presence(o)

    with new_cluster() as c:
        run(go(c), timeout=PRESENCE_EXPIRY + PRESENCE_GRACE + 15)

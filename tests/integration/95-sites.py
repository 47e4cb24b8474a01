"""
95-sites.py -- several sites on one daemon ([site NAME] sections, docs/config.md) with the real
Herald, real WebSocket clients (websockets; tests/lib/rawws.py where a test chooses the Host
header) and the FastCGI API (tests/lib/fcgi.py) on each site's own socket.

Proves:
- users: the same user id "42" on sites a and b is two people: a publish through a's socket
  reaches a's tabs only, and each site counts its own published and delivered; a broadcast
  reaches every connection of its site (anonymous ones too) and none of the other's;
- tokens and policies: a token signed with a's secret is refused on b's path (401, counted in
  b's handshakes_refused.bad_token, not a's) and the other way round, by ?token= or by
  subprotocol; each site applies its own allowed_origins (403, counted in that site's
  "origin") and its own allow_anonymous over the [herald] default (401 no_token); a path no
  site answers is 404;
- hosts: two sites on the same ws_path told apart by `host` (case-insensitive, the port
  ignored), a site with a matching host winning over a host-less site on the same path, and a
  Host that matches no site and no host-less site getting 404;
- channels and presence: a public channel of the same name on both sites, published into
  through a's API or by a's client (client_publish, "from" stamped), reaches a's subscribers
  only; a presence channel's members, subscribe answers, join events, GET /presence?channel=
  and ?user= each see only their own site;
- /stats on a site's socket: only that site's connections, users, channels, subscriptions,
  published, delivered, api_requests and api_errors, and its "site" name; GET /health on every
  site socket; without [site] sections, one site named "default" whose keys are [herald]'s;
- publish_uids (SO_PEERCRED): a request from a process running as nobody through a socket it
  may open (mode 0666) is refused with 403 and a JSON body when nobody is not listed, counted
  in that site's api_errors["403"] only, and delivers nothing; root, listed, still publishes; a
  site without publish_uids serves nobody; a site listing only nobody's numeric uid refuses
  root's publish, yet lets root read /stats and /health (herald status), nothing else;
- config errors (`--check-config`, and a start that exits 1): a global key in a [site]
  section (FILE:LINE: KEY is global), two sites with the same api_socket, the same host and
  ws_path, a site without a secret of its own, two sites with the same secret (which is not
  printed), a repeated or badly named site, an unknown user in publish_uids; and the valid
  files next to them say "config ok";
- after every bad input (a wrong token, a refused origin, a 403), a bystander on each site
  still receives;
- reload (SIGHUP): a site's new secret applies at once (old tokens 401, open connections kept),
  and a file that adds a site is refused whole, the running sites untouched.
"""

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import websockets.exceptions

import rawws
from herald import (Bystander, Herald, _pdeathsig, by_user, check_config, expect_nothing,
                    random_secret, recv_json, stat, uid, wait_connections, without_id)
from wscmd import NoMessage, client

LIB = Path(__file__).resolve().parents[1] / "lib"

HERALD_CONFIG = {
    # Defaults for every site ([herald] keys that are per-site).
    "allow_anonymous": "yes",
    "public_channels": "news room room:*",
    "client_publish": "room",
    "presence_channels": "room:*",
}
HERALD_SITES = {
    "a": {"ws_path": "/a/ws", "allowed_origins": "https://a.example"},
    "b": {"ws_path": "/b/ws", "allowed_origins": "https://b.example", "allow_anonymous": "no"},
}
HERALD_WORKERS = 2


@pytest.fixture
def bystanders(herald):
    """One innocent client on each site, connected before the test body runs."""
    bs = [Bystander(herald.site(name)) for name in HERALD_SITES]
    yield bs
    for b in bs:
        b.close()


def refused(site, reason):
    """handshakes_refused[reason] in the site's /stats."""
    return site.stats()["handshakes_refused"][reason]


def api_errors(site, status):
    """api_errors[status] in the site's /stats (0 if the daemon lists no such status yet)."""
    return site.stats()["api_errors"].get(str(status), 0)


def handshake(h, path, token=None, host=None, origin=None, protocol=False):
    """
    A raw opening handshake: the token in ?token= (or, with protocol=True, as the subprotocol
    herald.token.<token>), the Host and Origin headers as given. Returns (status, body as
    parsed JSON or None, the RawWS), the RawWS still open after a 101.
    """
    headers = {}
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    if token is not None and protocol:
        headers["Sec-WebSocket-Protocol"] = "herald, herald.token." + token
    elif token is not None:
        path += "?token=" + token
    ws = h.raw()
    try:
        status, _, body = ws.handshake(path, headers)
    except BaseException:
        ws.close()
        raise
    if status != 101:
        ws.close()
    try:
        j = json.loads(body) if body else None
    except ValueError:
        j = None
    return status, j, ws


def refusal(h, status, path, **kw):
    """A handshake that must be refused with `status` and {"ok":false,"error":"..."}."""
    got, j, ws = handshake(h, path, **kw)
    if got == 101:
        ws.close()
    assert got == status, "handshake on %s %r: %d, expected %d" % (path, kw.get("host"), got,
                                                                   status)
    assert isinstance(j, dict) and j.get("ok") is False and isinstance(j.get("error"), str), j
    return j


def accepted(h, path, **kw):
    """A handshake that must succeed; returns its open RawWS."""
    status, j, ws = handshake(h, path, **kw)
    assert status == 101, "handshake on %s %r: %d %r, expected 101" % (path, kw.get("host"),
                                                                       status, j)
    return ws


def raw_event(ws, timeout=3.0):
    """The next data frame on a RawWS, as a message without its id."""
    f = ws.recv_data(timeout=timeout)
    assert f.opcode == rawws.OP_TEXT, f
    return without_id(json.loads(f.payload))


def raw_nothing(ws, timeout=0.3):
    """Assert no data frame reaches a RawWS within timeout."""
    try:
        f = ws.recv_data(timeout=timeout)
    except rawws.Timeout:
        return
    raise AssertionError("expected no message, got %r" % (f,))


# -- users and broadcasts ----------------------------------------------------------------

def test_the_same_user_id_on_two_sites_is_two_people(herald, run):
    a, b = herald.site("a"), herald.site("b")

    async def go():
        async with a.connect(a.token("42")) as a1, \
                a.connect(a.token("42"), via="protocol") as a2, \
                b.connect(b.token("42")) as b1:
            sa0, sb0 = a.stats(), b.stats()
            assert a.publish(["42"], "only.a", {"site": "a"}) == 2
            for t in (a1, a2):
                assert await recv_json(t) == {"event": "only.a", "data": {"site": "a"}}
            await expect_nothing(b1)

            assert b.publish(["42"], "only.b", {"site": "b"}) == 1
            assert await recv_json(b1) == {"event": "only.b", "data": {"site": "b"}}
            await expect_nothing(a1)
            await expect_nothing(a2, 0.1)

            sa1, sb1 = a.stats(), b.stats()
            assert (sa1["published"] - sa0["published"], sa1["delivered"] - sa0["delivered"]) \
                == (1, 2), "site a counted %r" % ((sa0, sa1),)
            assert (sb1["published"] - sb0["published"], sb1["delivered"] - sb0["delivered"]) \
                == (1, 1), "site b counted %r" % ((sb0, sb1),)

            assert a.api_ok("GET", "/presence?user=42") == \
                {"ok": True, "user": "42", "online": True, "connections": 2}
            assert b.api_ok("GET", "/presence?user=42") == \
                {"ok": True, "user": "42", "online": True, "connections": 1}
    run(go())


def test_a_broadcast_reaches_every_connection_of_its_site_and_no_other(herald, run):
    a, b = herald.site("a"), herald.site("b")
    u, v = uid("bc"), uid("bc")

    async def go():
        async with a.connect() as a_anon, a.connect(a.token(u)) as a_user, \
                b.connect(b.token(u)) as b_user, b.connect(b.token(v)) as b_other:
            wait_connections(a, 2)
            wait_connections(b, 2)
            assert a.broadcast("maintenance", {"site": "a"}) == 2
            for t in (a_anon, a_user):
                assert await recv_json(t) == {"event": "maintenance", "data": {"site": "a"}}
            for t in (b_user, b_other):
                await expect_nothing(t, 0.2)

            assert b.broadcast("maintenance", {"site": "b"}) == 2
            for t in (b_user, b_other):
                assert await recv_json(t) == {"event": "maintenance", "data": {"site": "b"}}
            for t in (a_anon, a_user):
                await expect_nothing(t, 0.2)
    run(go())


# -- tokens and handshake policies --------------------------------------------------------

@pytest.mark.parametrize("protocol", [False, True], ids=["query", "subprotocol"])
def test_a_token_of_one_site_is_refused_on_the_other(herald, bystanders, protocol):
    a, b = herald.site("a"), herald.site("b")
    u = uid("tok")
    for own, other in ((a, b), (b, a)):
        before_own, before_other = refused(own, "bad_token"), refused(other, "bad_token")
        refusal(herald, 401, other.ws_path, token=own.token(u), protocol=protocol)
        assert other.wait_stat("handshakes_refused.bad_token", before_other + 1)[
            "handshakes_refused"]["bad_token"] == before_other + 1
        assert refused(own, "bad_token") == before_own, \
            "site %s counted a refusal made on site %s" % (own.name, other.name)
        # The same token is good on its own site.
        ws = accepted(herald, own.ws_path, token=own.token(u), protocol=protocol)
        try:
            assert own.publish([u], "mine", own.name) == 1
            assert raw_event(ws) == {"event": "mine", "data": own.name}
        finally:
            ws.close()
        for by in bystanders:
            by.check()


def test_each_site_applies_its_own_origins_and_anonymous_rule(herald, bystanders):
    a, b = herald.site("a"), herald.site("b")
    u = uid("pol")

    # Origins: b's origin is not a's.
    before_a, before_b = refused(a, "origin"), refused(b, "origin")
    refusal(herald, 403, a.ws_path, token=a.token(u), origin="https://b.example")
    assert a.wait_stat("handshakes_refused.origin", before_a + 1)[
        "handshakes_refused"]["origin"] == before_a + 1
    assert refused(b, "origin") == before_b
    accepted(herald, a.ws_path, token=a.token(u), origin="https://a.example").close()
    accepted(herald, b.ws_path, token=b.token(u), origin="https://b.example").close()

    # allow_anonymous: yes under [herald] (so on a), no on b.
    before_a, before_b = refused(a, "no_token"), refused(b, "no_token")
    refusal(herald, 401, b.ws_path)
    assert b.wait_stat("handshakes_refused.no_token", before_b + 1)[
        "handshakes_refused"]["no_token"] == before_b + 1
    assert refused(a, "no_token") == before_a
    anon = accepted(herald, a.ws_path)
    try:
        # a's broadcast reaches the anonymous client and a's bystander, not b's.
        wait_connections(a, 2)
        assert a.broadcast("to.anonymous", 1) == 2
        assert raw_event(anon) == {"event": "to.anonymous", "data": 1}
        assert raw_event(bystanders[0].ws) == {"event": "to.anonymous", "data": 1}
        raw_nothing(bystanders[1].ws)
    finally:
        anon.close()
    for by in bystanders:
        by.check()


def test_a_path_no_site_answers_is_404(herald, bystanders):
    """Refused before any site is known: counted under `unrouted` on every site (config.md)."""
    a, b = herald.site("a"), herald.site("b")
    key = "unrouted.handshakes_refused.not_found"
    before = {s.name: s.stats() for s in (a, b)}
    paths = ("/ws", "/c/ws", "/a/ws/", "/a")
    for path in paths:
        refusal(herald, 404, path, token=a.token(uid("lost")))
    for s in (a, b):
        after = s.wait_stat(key, stat(before[s.name], key) + len(paths))
        assert stat(after, key) == stat(before[s.name], key) + len(paths), (s.name, after)
        assert stat(after, "handshakes_refused.not_found") == \
            stat(before[s.name], "handshakes_refused.not_found"), \
            "site %s counted a refusal no site made" % s.name
    for by in bystanders:
        by.check()


HOST_SITES = {
    "a": {"host": "a.test", "ws_path": "/ws"},
    "b": {"host": "b.test", "ws_path": "/ws"},
    "any": {"ws_path": "/shared"},
    "d": {"host": "d.test", "ws_path": "/shared"},
}


def test_sites_on_the_same_path_are_told_apart_by_host():
    with Herald(sites=HOST_SITES, workers=2) as h:
        site = {name: h.site(name) for name in HOST_SITES}
        bystanders = [Bystander(s) for s in site.values()]
        u = uid("host")
        try:
            # Host b.test with a port lands on b: b's token is good, a's is refused there.
            before = {n: refused(s, "bad_token") for n, s in site.items()}
            ws = accepted(h, "/ws", host="b.test:1234", token=site["b"].token(u))
            try:
                assert site["a"].publish([u], "wrong.site", 0) == 0
                assert site["b"].publish([u], "right.site", "b") == 1
                assert raw_event(ws) == {"event": "right.site", "data": "b"}
            finally:
                ws.close()
            refusal(h, 401, "/ws", host="b.test:1234", token=site["a"].token(u))
            assert site["b"].wait_stat("handshakes_refused.bad_token", before["b"] + 1)[
                "handshakes_refused"]["bad_token"] == before["b"] + 1
            assert refused(site["a"], "bad_token") == before["a"]

            # The host is compared without regard to case.
            accepted(h, "/ws", host="A.Test", token=site["a"].token(u)).close()

            # A host that matches no site on /ws, and no host-less site there: 404.
            refusal(h, 404, "/ws", host="c.test", token=site["a"].token(u))
            refusal(h, 404, "/ws", host="127.0.0.1:%d" % h.port, token=site["a"].token(u))
            refusal(h, 404, "/nope", host="b.test", token=site["b"].token(u))

            # On /shared, d answers d.test; the host-less site answers every other host.
            ws = accepted(h, "/shared", host="d.test:8080", token=site["d"].token(u))
            try:
                assert site["any"].publish([u], "wrong.site", 0) == 0
                assert site["d"].publish([u], "right.site", "d") == 1
                assert raw_event(ws) == {"event": "right.site", "data": "d"}
            finally:
                ws.close()
            for host in ("other.test", "a.test", "127.0.0.1:%d" % h.port):
                accepted(h, "/shared", host=host, token=site["any"].token(u)).close()
            before = {n: refused(s, "bad_token") for n, s in site.items()}
            refusal(h, 401, "/shared", host="d.test", token=site["any"].token(u))
            refusal(h, 401, "/shared", host="other.test", token=site["d"].token(u))
            for name in ("d", "any"):
                assert site[name].wait_stat("handshakes_refused.bad_token", before[name] + 1)[
                    "handshakes_refused"]["bad_token"] == before[name] + 1, name
            for name in ("a", "b"):
                assert refused(site[name], "bad_token") == before[name], name

            # Each site's /stats says which it is; /health is answered on every socket.
            for name, s in site.items():
                assert s.stats()["site"] == name
                assert s.api_ok("GET", "/health")["ok"] is True
            for by in bystanders:
                by.check()
        finally:
            for by in bystanders:
                by.close()


def test_a_websockets_client_reaches_a_host_site_through_the_helper(run):
    """tests/lib/herald.py sends a site's host as the Host header (used by suites to come)."""
    with Herald(sites={"a": HOST_SITES["a"], "b": HOST_SITES["b"]}, workers=1) as h:
        a, b = h.site("a"), h.site("b")

        async def go():
            async with a.connect(a.token("42")) as ta, b.connect(b.token("42")) as tb:
                assert a.publish(["42"], "e", "a") == 1
                assert await recv_json(ta) == {"event": "e", "data": "a"}
                await expect_nothing(tb)
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
                async with b.connect(a.token("42")):
                    pass
            assert e.value.status_code == 401
        run(go())


# -- channels and presence ----------------------------------------------------------------

def test_a_channel_of_the_same_name_on_two_sites_is_two_channels(herald, run):
    a, b = herald.site("a"), herald.site("b")
    ann, bob = uid("ann"), uid("bob")

    async def go():
        wait_connections(a, 0)
        wait_connections(b, 0)
        async with client(a, ann) as ca, client(b, bob) as cb, client(b, ann) as cb_ann:
            for c in (ca, cb, cb_ann):
                await c.subscribe("news")
            sa = a.wait_stat("subscriptions", 1)
            sb = b.wait_stat("subscriptions", 2)
            assert (sa["channels"], sa["subscriptions"]) == (1, 1), sa
            assert (sb["channels"], sb["subscriptions"]) == (1, 2), sb

            assert a.publish_channel("news", "headline", {"site": "a"}) == 1
            assert await ca.next() == {"channel": "news", "event": "headline",
                                       "data": {"site": "a"}}
            await cb.nothing()
            await cb_ann.nothing(0.1)

            assert b.publish_channel("news", "headline", {"site": "b"}) == 2
            for c in (cb, cb_ann):
                assert await c.next() == {"channel": "news", "event": "headline",
                                          "data": {"site": "b"}}
            await ca.nothing()
    run(go())


def test_a_client_publish_reaches_its_own_sites_subscribers_only(herald, run):
    a, b = herald.site("a"), herald.site("b")
    ann, bob, carl = uid("ann"), uid("bob"), uid("carl")

    async def go():
        async with client(a, ann) as a_ann, client(a, bob) as a_bob, \
                client(b, ann) as b_ann, client(b, carl) as b_carl:
            for c in (a_ann, a_bob, b_ann, b_carl):
                await c.subscribe("room")
            await a_ann.ok("publish", channel="room", event="chat", data={"text": "on a"},
                           echo=False)
            assert await a_bob.next() == {"channel": "room", "event": "chat",
                                          "data": {"text": "on a"}, "from": ann}
            await a_ann.nothing(0.1)
            await b_ann.nothing()
            await b_carl.nothing(0.1)

            await b_carl.ok("publish", channel="room", event="chat", data={"text": "on b"})
            for c in (b_ann, b_carl):
                assert await c.next() == {"channel": "room", "event": "chat",
                                          "data": {"text": "on b"}, "from": carl}
            await a_ann.nothing()
            await a_bob.nothing(0.1)
    run(go())


def info_of(user, site):
    return {"name": "N " + user, "site": site}


def member(user, site):
    return {"user": user, "info": info_of(user, site)}


async def presence_events(c, timeout=0.4):
    """Every join or leave reaching c within timeout (its own user's join left out)."""
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return got
        try:
            m = await c.next(left)
        except NoMessage:
            return got
        if m.get("op") == "join" and m.get("user") == c.user:
            continue
        got.append(m)


def test_presence_is_per_site(herald, run):
    a, b = herald.site("a"), herald.site("b")
    ch, ann, bob, carl = "room:" + uid(), uid("ann"), uid("bob"), uid("carl")

    async def go():
        async with client(a, ann, info=info_of(ann, "a")) as a_ann, \
                client(a, bob, info=info_of(bob, "a")) as a_bob:
            assert (await a_ann.subscribe(ch))["members"] == [member(ann, "a")]
            ans = await a_bob.subscribe(ch)
            assert by_user(ans["members"]) == by_user([member(ann, "a"), member(bob, "a")])
            assert await presence_events(a_ann) == [
                {"op": "join", "channel": ch, "user": bob, "info": info_of(bob, "a")}]

            async with client(b, carl, info=info_of(carl, "b")) as b_carl, \
                    client(b, ann, info=info_of(ann, "b")) as b_ann:
                # b's channel of the same name has only b's members: carl, and b's own ann.
                assert (await b_carl.subscribe(ch))["members"] == [member(carl, "b")]
                ans = await b_ann.subscribe(ch)
                assert by_user(ans["members"]) == by_user([member(carl, "b"), member(ann, "b")])
                assert await presence_events(b_carl) == [
                    {"op": "join", "channel": ch, "user": ann, "info": info_of(ann, "b")}]
                assert await presence_events(a_ann, 0.2) == []
                assert await presence_events(a_bob, 0.1) == []

                assert a.members(ch) == by_user([
                    dict(member(ann, "a"), connections=1), dict(member(bob, "a"), connections=1)])
                assert b.members(ch) == by_user([
                    dict(member(carl, "b"), connections=1), dict(member(ann, "b"), connections=1)])
                assert a.online(bob) == (True, 1)
                assert b.online(bob) == (False, 0)
                assert a.online(carl) == (False, 0)
                assert b.online(carl) == (True, 1)
            # b's members leave: b's list empties, a hears nothing and its list is as it was.
            await until(lambda: b.members(ch) == [], "b's members of %s to leave" % ch)
            assert await presence_events(a_ann, 0.3) == []
            assert a.members(ch) == by_user([
                dict(member(ann, "a"), connections=1), dict(member(bob, "a"), connections=1)])
            assert b.online(ann) == (False, 0)
            assert a.online(ann) == (True, 1)
        await until(lambda: a.members(ch) == [], "a's members of %s to leave" % ch)
        assert b.members(ch) == []
    run(go())


async def until(cond, what, timeout=3.0):
    """Poll cond() until it is true; fail naming `what` after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out waiting for " + what
        await asyncio.sleep(0.05)


# -- /stats and /health per site ----------------------------------------------------------

def test_stats_on_a_sites_socket_count_that_site_only(herald, run):
    a, b = herald.site("a"), herald.site("b")
    x, y = uid("x"), uid("y")

    async def go():
        wait_connections(a, 0)
        wait_connections(b, 0)
        async with a.connect(a.token(x)) as x1, a.connect(a.token(x)) as x2, \
                a.connect(a.token(y)) as y1, a.connect() as anon, \
                b.connect(b.token(x)) as bx:
            assert all(t.open for t in (x1, x2, y1, anon, bx))
            sa = wait_connections(a, 4)
            sb = wait_connections(b, 1)
            assert (sa["site"], sa["users"]) == ("a", 2), sa
            assert (sb["site"], sb["users"]) == ("b", 1), sb

            sa0, sb0 = a.stats(), b.stats()
            assert a.publish([x], "e", 1) == 2
            assert a.broadcast("e", 2) == 4
            status, _, j = a.api("POST", "/publish", "{not json")
            assert status == 400 and j["ok"] is False, (status, j)
            sa1, sb1 = a.stats(), b.stats()

            def delta(s0, s1, *path):
                v0, v1 = s0, s1
                for p in path:
                    v0, v1 = v0[p], v1[p]
                return v1 - v0

            assert delta(sa0, sa1, "published") == 2
            assert delta(sa0, sa1, "delivered") == 6
            assert delta(sa0, sa1, "api_requests") == 4, "a's stats, 2 publishes, a bad one"
            assert delta(sa0, sa1, "api_errors", "400") == 1
            assert delta(sb0, sb1, "published") == 0
            assert delta(sb0, sb1, "delivered") == 0
            assert delta(sb0, sb1, "api_requests") == 1, "only b's own GET /stats"
            assert delta(sb0, sb1, "api_errors", "400") == 0
            assert (sb1["connections"], sb1["users"]) == (1, 1)
        sa = wait_connections(a, 0)
        sb = wait_connections(b, 0)
        assert (sa["users"], sb["users"]) == (0, 0)
    run(go())


def test_health_is_answered_on_every_site_socket(herald):
    for name in HERALD_SITES:
        status, headers, j = herald.api("GET", "/health", site=name)
        assert status == 200, (name, status, j)
        assert headers.get("Content-Type", "").startswith("application/json"), dict(headers)
        assert j["ok"] is True and j["workers"] == HERALD_WORKERS, (name, j)
        assert herald.stats(site=name)["site"] == name


def test_without_site_sections_there_is_one_site_named_default():
    """The classic file: [herald] only; its per-site keys (here host) are the one site's."""
    with Herald(config={"host": "push.test"}, workers=1) as h:
        s = h.stats()
        assert s["site"] == "default", s
        u = uid("dflt")
        ws = accepted(h, "/ws", host="Push.Test:8443", token=h.token(u))
        try:
            assert h.publish([u], "e", "default") == 1
            assert raw_event(ws) == {"event": "e", "data": "default"}
        finally:
            ws.close()
        refusal(h, 404, "/ws", host="other.test", token=h.token(u))


# -- publish_uids ------------------------------------------------------------------------

# Run by a child as another user: one FastCGI request, answered on stdout as JSON.
AS_CALLER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import fcgi
r = fcgi.request(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].encode(), None, 5.0)
print(json.dumps({"uid": os.getuid(), "status": r.status,
                  "content_type": r.headers.get("Content-Type", ""),
                  "body": r.body.decode("utf-8", "replace")}))
"""


def require_root():
    assert os.geteuid() == 0, (
        "95-sites: the publish_uids tests must run as root (they call the API as root and as "
        "nobody, and compare); run the suite as root, e.g. in the test container")


def as_nobody(libdir, socket_path, method, path, body=b""):
    """One FastCGI request from a child process running as nobody:nogroup, no other groups."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = body.decode()
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            sys.executable, "-B", "-c", AS_CALLER, libdir, socket_path, method, path, body]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
                       cwd=libdir, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                       preexec_fn=_pdeathsig)
    assert p.returncode == 0, "the child running as nobody failed (%d):\n%s" % (
        p.returncode, p.stderr.decode("utf-8", "replace")[-3000:])
    r = json.loads(p.stdout)
    assert r["uid"] == pwd.getpwnam("nobody").pw_uid, r
    try:
        r["json"] = json.loads(r["body"])
    except ValueError:
        r["json"] = None
    return r


def check_as_nobody(libdir, by):
    """Bystander.check() for a site whose API only nobody may use: publish as nobody."""
    by.n += 1
    data = {"n": by.n, "text": "still here"}
    r = as_nobody(libdir, by.h.api_socket, "POST", "/publish",
                  {"users": [by.user], "event": "bystander.check", "data": data})
    assert (r["status"], r["json"]) == (200, {"ok": True, "delivered": 1}), r
    assert raw_event(by.ws) == {"event": "bystander.check", "data": data}


def assert_forbidden(status, content_type, j):
    assert status == 403, "expected 403, got %d %r" % (status, j)
    assert content_type.startswith("application/json"), content_type
    assert isinstance(j, dict) and set(j) == {"ok", "error"}, j
    assert j["ok"] is False and isinstance(j["error"], str) and j["error"].strip(), j


def test_publish_uids_lets_only_the_listed_users_use_a_sites_api():
    require_root()
    # A directory the user nobody may enter and read: the sockets, and fcgi.py for the child.
    pub = tempfile.mkdtemp(prefix="herald-pub%d-" % os.getpid())
    try:
        os.chmod(pub, 0o755)
        shutil.copy(LIB / "fcgi.py", os.path.join(pub, "fcgi.py"))
        os.chmod(os.path.join(pub, "fcgi.py"), 0o644)
        sock = {n: os.path.join(pub, "api-%s.sock" % n) for n in ("a", "b", "c")}
        nobody_uid = pwd.getpwnam("nobody").pw_uid
        sites = {
            "a": {"ws_path": "/a/ws", "publish_uids": "root", "api_socket": sock["a"],
                  "api_socket_mode": "0666"},
            "b": {"ws_path": "/b/ws", "api_socket": sock["b"], "api_socket_mode": "0666"},
            "c": {"ws_path": "/c/ws", "publish_uids": str(nobody_uid), "api_socket": sock["c"],
                  "api_socket_mode": "0666"},
        }
        with Herald(sites=sites, workers=2) as h:
            site = {n: h.site(n) for n in sites}
            for n in sites:
                assert os.stat(sock[n]).st_mode & 0o777 == 0o666, n

            def errors_403(name):
                """api_errors["403"] of a site, read by a caller it lets in (c: nobody only)."""
                if name == "c":
                    r = as_nobody(pub, sock["c"], "GET", "/stats")
                    assert r["status"] == 200 and r["json"]["site"] == "c", r
                    return r["json"]["api_errors"].get("403", 0)
                return api_errors(site[name], 403)

            ua, ub, uc = uid("ua"), uid("ub"), uid("uc")
            tabs, bystanders = {}, []
            try:
                tabs = {"a": site["a"].raw_ws(ua), "b": site["b"].raw_ws(ub),
                        "c": site["c"].raw_ws(uc)}
                bystanders = [Bystander(s) for s in site.values()]
                before = {n: errors_403(n) for n in site}

                # nobody on a: 403 for a publish (delivering nothing) and for /stats.
                r = as_nobody(pub, sock["a"], "POST", "/publish",
                              {"users": [ua], "event": "sneaky", "data": 1})
                assert_forbidden(r["status"], r["content_type"], r["json"])
                raw_nothing(tabs["a"])
                r = as_nobody(pub, sock["a"], "GET", "/stats")
                assert_forbidden(r["status"], r["content_type"], r["json"])
                s = site["a"].wait_stat("api_errors.403", before["a"] + 2)
                assert s["api_errors"]["403"] == before["a"] + 2, s["api_errors"]
                assert errors_403("b") == before["b"]
                assert errors_403("c") == before["c"]

                # root, listed on a, still publishes there, and everyone still receives.
                assert site["a"].publish([ua], "from.root", 2) == 1
                assert raw_event(tabs["a"]) == {"event": "from.root", "data": 2}
                for by in bystanders[:2]:
                    by.check()
                check_as_nobody(pub, bystanders[2])

                # b has no publish_uids: anyone who can open its socket may publish.
                r = as_nobody(pub, sock["b"], "POST", "/publish",
                              {"users": [ub], "event": "from.nobody", "data": 3})
                assert (r["status"], r["json"]) == (200, {"ok": True, "delivered": 1}), r
                assert raw_event(tabs["b"]) == {"event": "from.nobody", "data": 3}

                # c lists nobody's uid only: nobody publishes, root is refused.
                r = as_nobody(pub, sock["c"], "POST", "/publish",
                              {"users": [uc], "event": "from.nobody", "data": 4})
                assert (r["status"], r["json"]) == (200, {"ok": True, "delivered": 1}), r
                assert raw_event(tabs["c"]) == {"event": "from.nobody", "data": 4}
                status, headers, j = h.api("POST", "/publish",
                                           {"users": [uc], "event": "from.root", "data": 5},
                                           site="c")
                assert_forbidden(status, headers.get("Content-Type", ""), j)
                raw_nothing(tabs["c"])
                # ... but root may read c's figures (herald status): /stats, /health and
                # /metrics answer; any other request of root's is refused, counted.
                status, _, j = h.api("GET", "/stats", site="c")
                assert (status, j["site"]) == (200, "c"), j
                status, _, j = h.api("GET", "/health", site="c")
                assert (status, j["ok"]) == (200, True), j
                status, headers, j = h.api("GET", "/presence?user=" + uc, site="c")
                assert_forbidden(status, headers.get("Content-Type", ""), j)
                assert "may only read /health, /stats and /metrics" in j["error"], j
                assert errors_403("c") == before["c"] + 2
                assert errors_403("a") == before["a"] + 2
                assert errors_403("b") == before["b"]
                for by in bystanders[:2]:
                    by.check()
                check_as_nobody(pub, bystanders[2])
            finally:
                for by in bystanders:
                    by.close()
                for t in tabs.values():
                    t.close()
    finally:
        shutil.rmtree(pub, ignore_errors=True)


# -- config errors -------------------------------------------------------------------------

S1, S2, S3 = random_secret(), random_secret(), random_secret()


def ini(*sections):
    """An INI text from (header, {key: value}) pairs, one line per key, in order."""
    out = []
    for header, keys in sections:
        out.append("[%s]" % header)
        out += ["%s = %s" % kv for kv in keys.items()]
        out.append("")
    return "\n".join(out)


def site_keys(name, secret, **more):
    keys = {"secret": secret, "api_socket": "{dir}/api-%s.sock" % name,
            "ws_path": "/%s/ws" % name}
    keys.update(more)
    return ("site " + name, keys)


GLOBAL = ("herald", {"listen": "127.0.0.1:9601", "workers": "1"})


def two_sites(a=None, b=None, glob=None):
    """[herald] and sites a and b, each with its own secret, socket and path, then edits."""
    g = dict(GLOBAL[1], **(glob or {}))
    sa = dict(site_keys("a", S1)[1], **(a or {}))
    sb = dict(site_keys("b", S2)[1], **(b or {}))
    return ini(("herald", {k: v for k, v in g.items() if v is not None}),
               ("site a", {k: v for k, v in sa.items() if v is not None}),
               ("site b", {k: v for k, v in sb.items() if v is not None}))


def config_error(text):
    """--check-config on `text` must exit 1 with one "herald: ..." line; returns that line."""
    r = check_config(text)
    assert r.returncode == 1, "expected exit status 1 for:\n%s\ngot %r" % (text, r)
    assert "config ok" not in r.stdout, r
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("herald: "), r
    for secret in (S1, S2, S3):
        assert secret not in r.stderr, "a secret is printed in the error: %r" % r.stderr
    return lines[-1]


def config_ok(text):
    r = check_config(text)
    assert r.returncode == 0 and "config ok" in r.stdout, \
        "expected config ok for:\n%s\ngot %r" % (text, r)


def test_valid_site_files_say_config_ok(tmp_path):
    config_ok(two_sites())
    # Two sites on one path told apart by host; a host site beside a host-less one.
    config_ok(two_sites(a={"host": "a.test", "ws_path": "/ws"},
                        b={"host": "b.test", "ws_path": "/ws"}))
    config_ok(two_sites(a={"host": "a.test", "ws_path": "/ws"}, b={"ws_path": "/ws"}))
    # Every per-site key in a [site] section; per-site defaults under [herald].
    config_ok(two_sites(
        glob={"allow_anonymous": "yes", "public_channels": "news", "command_rate": "10"},
        a={"allow_anonymous": "no", "allowed_origins": "https://a.example", "token_leeway": "5s",
           "host": "a.test", "api_socket_mode": "0660", "api_socket_group": "nogroup",
           "api_max_body": "64k", "publish_uids": "root, nobody, 0",
           "public_channels": "news room:*", "client_publish": "room:*",
           "presence_channels": "room:*", "max_subscriptions": "10",
           "rpc_socket": "unix:{dir}/fpm.sock", "rpc_script": "{dir}/rpc.php",
           "rpc_timeout": "2s", "rpc_max_per_conn": "2", "rpc_hooks": "subscribe",
           "command_rate": "5", "command_burst": "20"}))
    # A site's secret from its own secret_file.
    secret_file = tmp_path / "secret-b"
    secret_file.write_text(S3 + "\n")
    config_ok(two_sites(b={"secret": None, "secret_file": str(secret_file)}))


@pytest.mark.parametrize("key,value", [("listen", "127.0.0.1:9602"), ("workers", "2"),
                                       ("max_message_size", "64k"), ("history_size", "10")])
def test_a_global_key_in_a_site_section_is_an_error_naming_file_and_line(key, value):
    text = two_sites(b={key: value})
    line = text.splitlines().index("%s = %s" % (key, value)) + 1
    msg = config_error(text)
    assert re.search(r"herald\.ini:%d: %s is global: set it under \[herald\]"
                     % (line, re.escape(key)), msg), msg


def test_an_unknown_key_in_a_site_section_is_an_error():
    msg = config_error(two_sites(b={"listne": "x"}))
    assert "listne" in msg, msg


def test_two_sites_with_the_same_api_socket_is_an_error():
    msg = config_error(two_sites(b={"api_socket": "{dir}/api-a.sock"}))
    assert "api_socket" in msg, msg


@pytest.mark.parametrize("a,b", [
    ({"host": "dup.test", "ws_path": "/same/ws"}, {"host": "DUP.test", "ws_path": "/same/ws"}),
    ({"ws_path": "/same/ws"}, {"ws_path": "/same/ws"}),
], ids=["same-host", "no-host"])
def test_two_sites_with_the_same_host_and_ws_path_is_an_error(a, b):
    msg = config_error(two_sites(a=a, b=b))
    assert "ws_path" in msg or "/same/ws" in msg, msg


@pytest.mark.parametrize("glob,a,b", [
    (None, None, {"secret": None}),
    # A secret under [herald] is no site's own: not for one site, not for both.
    ({"secret": S3}, None, {"secret": None}),
    ({"secret": S3}, {"secret": None}, {"secret": None}),
], ids=["none-anywhere", "herald-secret-for-one", "herald-secret-for-both"])
def test_each_site_needs_a_secret_of_its_own(glob, a, b):
    msg = config_error(two_sites(glob=glob, a=a, b=b))
    assert "secret" in msg, msg


def test_two_sites_with_the_same_secret_is_an_error():
    msg = config_error(two_sites(b={"secret": S1}))
    assert "secret" in msg, msg


def test_a_repeated_site_name_is_an_error():
    text = ini(GLOBAL, site_keys("shop1", S1), site_keys("b", S2),
               ("site shop1", {"secret": S3, "api_socket": "{dir}/api-shop1b.sock",
                               "ws_path": "/shop1b/ws"}))
    msg = config_error(text)
    assert "shop1" in msg, msg


@pytest.mark.parametrize("name", ["Shop", "a.b", "a b", "x" * 33, ""])
def test_a_bad_site_name_is_an_error(name):
    text = ini(GLOBAL, site_keys("a", S1),
               ("site " + name, {"secret": S2, "api_socket": "{dir}/api-bad.sock",
                                 "ws_path": "/bad/ws"}))
    msg = config_error(text)
    assert "site" in msg.lower(), msg
    if name.strip():
        assert name in msg, msg


def test_an_unknown_user_in_publish_uids_is_an_error():
    msg = config_error(two_sites(a={"publish_uids": "root, no-such-user-herald"}))
    assert "no-such-user-herald" in msg, msg


def test_a_bad_site_config_stops_startup_with_exit_status_1():
    h = Herald(sites={"a": {"ws_path": "/a/ws", "api_socket": "{dir}/same.sock"},
                      "b": {"ws_path": "/b/ws", "api_socket": "{dir}/same.sock"}}, workers=1)
    with pytest.raises(RuntimeError) as e:
        h.start()
    assert "(exit status 1)" in str(e.value), str(e.value)
    assert "api_socket" in str(e.value), str(e.value)
    for secret in h.secrets.values():
        assert secret not in str(e.value)


# -- reload ------------------------------------------------------------------------------------

def sighup_and_wait(h, marker, timeout=5.0):
    """Send SIGHUP and wait until the log has one more line containing marker."""
    before = h.log_text().count(marker)
    h.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while h.log_text().count(marker) == before:
        assert time.monotonic() < deadline, "no %r after SIGHUP:\n%s" % (
            marker, h.log_text()[-3000:])
        assert h.running(), "herald died on SIGHUP:\n" + h.log_text()[-3000:]
        time.sleep(0.02)


def test_a_reload_changes_one_sites_secret_and_refuses_a_new_site(run):
    """
    SIGHUP with a new secret for a: a's open connection keeps receiving, a's old tokens are
    refused and new ones accepted, b is untouched. A file that adds a site is refused whole:
    the running sites go on, and the new site's path stays 404.
    """
    with Herald(workers=2, sites={"a": {"ws_path": "/a/ws"}, "b": {"ws_path": "/b/ws"}}) as h:
        a, b = h.site("a"), h.site("b")
        ini = os.path.join(h.dir, "herald.ini")
        old_a, new_a = h.secrets["a"], random_secret()

        async def go():
            async with a.connect(a.token("42")) as wa, b.connect(b.token("42")) as wb:
                text = open(ini).read()
                assert text.count(old_a) == 1
                with open(ini, "w") as f:
                    f.write(text.replace(old_a, new_a))
                h.secrets["a"] = new_a  # a.token() signs with it; the log check looks for it
                sighup_and_wait(h, "configuration reloaded from")
                assert a.publish(["42"], "after.reload") == 1
                assert await recv_json(wa) == {"event": "after.reload", "data": None}
                assert b.publish(["42"], "b.after") == 1
                assert await recv_json(wb) == {"event": "b.after", "data": None}
                with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
                    async with a.connect(h.token("42", secret=old_a)):
                        pass
                assert e.value.status_code == 401
                async with a.connect(a.token("42")) as wa2:
                    assert a.publish(["42"], "two.tabs") == 2
                    for t in (wa, wa2):
                        assert await recv_json(t) == {"event": "two.tabs", "data": None}

                with open(ini, "a") as f:
                    f.write("\n[site c]\nsecret = %s\nws_path = /c/ws\napi_socket = %s\n"
                            % (random_secret(), os.path.join(h.dir, "api-c.sock")))
                sighup_and_wait(h, "needs a restart")
                with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
                    async with h.connect(None, path="/c/ws"):
                        pass
                assert e.value.status_code == 404
                assert not os.path.exists(os.path.join(h.dir, "api-c.sock"))
                assert a.publish(["42"], "still.a") == 1
                assert await recv_json(wa) == {"event": "still.a", "data": None}
        run(go())

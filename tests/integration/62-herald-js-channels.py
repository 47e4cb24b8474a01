"""
62-herald-js-channels.py -- herald.js's channels, presence and RPC against the real daemon.

Several php-client/js/herald.js clients run in one node process, tests/js/herald-js-driver.js
(the `ws` package standing in for the browser's WebSocket), which this file steers one JSON
line at a time and which reports every state change, event, presence change, onError and
promise outcome back. Checked, as docs/protocol.md and spec issue 4 describe them:

  - a subscribe made before the socket is open is queued; the public channel then receives a
    channel publish made through the API (POST /publish {"channel": ...}), with meta.channel;
  - refusals reject the promise with a HeraldError: forbidden, bad_token, bad_channel;
  - a client publish into a client_publish channel reaches the others with meta.from set to
    the sender's verified user id; echo: false skips the sending tab only; forbidden and
    not_subscribed;
  - presence: the subscribe answer lists the members, a second client's join and leave reach
    the first, members() follows them, a user's second tab joins silently;
  - after Herald restarts, the client subscribes again to every channel by itself (the
    channel token included), sends a subscribe queued while Herald was down, and rejects
    publish/rpc made meanwhile with 'disconnected';
  - rpc rejects with rpc_disabled without an rpc_socket, with the client-made 'timeout'
    when php-fpm does not answer in time (the daemon's late answer is dropped), and with
    rpc_unavailable when php-fpm is gone;
  - a full round trip through a real php-fpm (tests/lib/phpfpm.py running
    tests/integration/php/rpc.php): rpc resolves PHP's reply, rejects with PHP's own
    herald_rpc_error() code and message; the subscribe hook allows and denies.

Needs node (Debian 12's nodejs, 18.19, or newer) and `npm ci --prefix tests/js`.
"""

import os
import shutil
import tempfile
import time

from herald import Herald, by_user
from jsdriver import CHANNELS, publish_until_delivered, user_token
from phpfpm import PhpFpm
from standin import UnixStandIn

HERALD_CONFIG = dict(CHANNELS)       # the module's shared daemon (conftest.py): no rpc_socket


def test_queued_subscribe_to_a_public_channel_receives_an_api_publish(herald, driver):
    driver.new("reader", herald.ws_url, user_token(herald, "reader"))
    sub = driver.start_call("reader", "subscribe", "news:1")   # before the socket opens
    r = driver.result(sub, 10, "the queued subscribe")
    assert r == {"c": "reader", "kind": "result", "id": sub, "ok": True, "value": {}}, r
    assert herald.publish_channel("news:1", "headline", {"title": "Herald 1.0"}) == 1
    driver.wait(lambda s: driver.events("reader"), 5, "the channel publish")
    assert driver.events("reader") == [
        ("headline", {"title": "Herald 1.0"}, {"channel": "news:1", "from": None})]

    # A publish to the user still arrives, without a channel; another channel does not.
    assert herald.publish_channel("news:2", "other", 1) == 0
    assert herald.publish(["reader"], "direct", {"n": 1}) == 1
    driver.wait(lambda s: len(driver.events("reader")) == 2, 5, "the user publish")
    assert driver.events("reader")[1] == ("direct", {"n": 1}, {"channel": None, "from": None})

    # unsubscribe: nothing more from the channel.
    assert driver.ok("reader", "unsubscribe", "news:1") is None
    assert herald.publish_channel("news:1", "headline", {"title": "late"}) == 0
    assert driver.ok("reader", "members", "news:1") == []


def test_refused_subscribes_reject_with_their_codes(herald, driver):
    driver.new("eve", herald.ws_url, user_token(herald, "eve"))
    driver.wait_open("eve")
    r = driver.refused("eve", "subscribe", "secret:1")
    assert (r["code"], r["channel"]) == ("forbidden", "secret:1"), r
    assert r["message"], r

    # A channel token: for this user and channel it works; for another channel or user, or
    # expired, or signed with another secret, it is a bad_token.
    good = herald.token("eve", channel="doc:7")
    assert driver.ok("eve", "subscribe", "doc:7", {"token": good}) == {}
    for bad in (herald.token("eve", channel="doc:8"), herald.token("mallory", channel="doc:9"),
                herald.token("eve", ttl=-120, channel="doc:9"),
                herald.token("eve", secret="another-secret-of-32-bytes-xxxxx", channel="doc:9")):
        r = driver.refused("eve", "subscribe", "doc:9", {"token": bad})
        assert (r["code"], r["channel"]) == ("bad_token", "doc:9"), r

    r = driver.refused("eve", "subscribe", "no spaces!")
    assert r["code"] == "bad_channel", r

    assert herald.publish_channel("secret:1", "x") == 0
    assert herald.publish_channel("doc:9", "x") == 0
    assert herald.publish_channel("doc:7", "for.eve", 7) == 1
    driver.wait(lambda s: driver.events("eve"), 5, "the doc:7 publish")
    assert driver.events("eve") == [("for.eve", 7, {"channel": "doc:7", "from": None})]
    assert driver.reports("eve", "error") == []


def test_client_publish_reaches_others_with_from_and_echo_false_skips_the_sender(herald,
                                                                                  driver):
    ann_token = user_token(herald, "ann")
    driver.new("ann", herald.ws_url, ann_token)
    driver.new("ann2", herald.ws_url, ann_token)     # ann's second tab
    driver.new("bob", herald.ws_url, user_token(herald, "bob"))
    for c in ("ann", "ann2", "bob"):
        driver.wait_open(c)
        assert driver.ok(c, "subscribe", "chat:1") == {}

    assert driver.ok("ann", "publish", "chat:1", {"text": "hi"}, {"event": "chat"}) is None
    hi = ("chat", {"text": "hi"}, {"channel": "chat:1", "from": "ann"})
    driver.wait(lambda s: all(driver.events(c) for c in ("ann", "ann2", "bob")), 5,
                "the publish at every tab (echo is on by default)")
    for c in ("ann", "ann2", "bob"):
        assert driver.events(c) == [hi], c

    # echo: false skips the sending connection only; ann's other tab still gets it.
    assert driver.ok("ann", "publish", "chat:1", "quiet", {"event": "typing",
                                                           "echo": False}) is None
    # A marker ann does get: one channel's messages arrive in order, so once ann has the
    # marker, a "typing" that was going to reach her would have come first.
    assert driver.ok("ann", "publish", "chat:1", None, {"event": "marker"}) is None
    driver.wait(lambda s: all(len(driver.events(c)) == 3 for c in ("ann2", "bob"))
                and len(driver.events("ann")) == 2, 5, "typing and marker")
    typing = ("typing", "quiet", {"channel": "chat:1", "from": "ann"})
    marker = ("marker", None, {"channel": "chat:1", "from": "ann"})
    assert driver.events("bob") == [hi, typing, marker]
    assert driver.events("ann2") == [hi, typing, marker]
    assert driver.events("ann") == [hi, marker]

    # The default event is "message"; from is bob's verified id.
    assert driver.ok("bob", "publish", "chat:1", [1, 2]) is None
    driver.wait(lambda s: len(driver.events("ann")) == 3, 5, "bob's message")
    assert driver.events("ann")[2] == ("message", [1, 2], {"channel": "chat:1", "from": "bob"})

    # Refusals: a public channel that is not client_publish; a channel not subscribed to.
    assert driver.ok("bob", "subscribe", "news:1") == {}
    r = driver.refused("bob", "publish", "news:1", "spam")
    assert (r["code"], r["channel"]) == ("forbidden", "news:1"), r
    r = driver.refused("bob", "publish", "chat:2", "hello?")
    assert (r["code"], r["channel"]) == ("not_subscribed", "chat:2"), r
    driver.settle(0.3)
    assert len(driver.events("ann")) == 3, driver.events("ann")
    assert driver.events("bob", "message") == [("message", [1, 2],
                                                {"channel": "chat:1", "from": "bob"})]


def test_presence_join_and_leave_reach_other_members_and_members_follows(herald, driver):
    # Herald announces a user's first tab to every subscriber of the channel, that tab
    # included (docs/protocol.md, Presence): each client sees its own user's join too.
    ann_token = user_token(herald, "ann", "Ann")
    ann = {"user": "ann", "info": {"name": "Ann"}}
    bob = {"user": "bob", "info": {"name": "Bob"}}
    carol = {"user": "carol", "info": {"name": "Carol"}}
    dave = {"user": "dave", "info": {"name": "Dave"}}
    join = lambda m: ("join", "room:1", m)      # noqa: E731
    leave = lambda m: ("leave", "room:1", m)    # noqa: E731

    driver.new("ann", herald.ws_url, ann_token)
    driver.wait_open("ann")
    assert driver.ok("ann", "subscribe", "room:1") == {"members": [ann]}
    assert driver.ok("ann", "members", "room:1") == [ann]

    driver.new("bob", herald.ws_url, user_token(herald, "bob", "Bob"))
    driver.wait_open("bob")
    got = driver.ok("bob", "subscribe", "room:1")
    assert by_user(got["members"]) == [ann, bob], got
    driver.wait(lambda s: len(driver.presence("ann")) == 2, 5, "ann to see bob join")
    assert driver.presence("ann") == [join(ann), join(bob)]
    assert by_user(driver.ok("ann", "members", "room:1")) == [ann, bob]

    # ann's second tab comes in silently; then carol joins and leaves.
    driver.new("ann2", herald.ws_url, ann_token)
    driver.wait_open("ann2")
    assert by_user(driver.ok("ann2", "subscribe", "room:1")["members"]) == [ann, bob]
    driver.new("carol", herald.ws_url, user_token(herald, "carol", "Carol"))
    driver.wait_open("carol")
    assert by_user(driver.ok("carol", "subscribe", "room:1")["members"]) == [ann, bob, carol]
    assert driver.ok("carol", "unsubscribe", "room:1") is None
    driver.wait(lambda s: len(driver.presence("bob")) == 3, 5, "bob to see carol come and go")
    assert driver.presence("bob") == [join(bob), join(carol), leave(carol)], \
        "ann's second tab must not announce ann again"
    assert by_user(driver.ok("bob", "members", "room:1")) == [ann, bob]
    assert driver.ok("carol", "members", "room:1") == []

    # bob goes away (close()): ann's tabs see him leave, with the info he joined with.
    driver.close("bob")
    for c in ("ann", "ann2"):
        driver.wait(lambda s: leave(bob) in driver.presence(c), 5, "%s to see bob leave" % c)
        assert driver.ok(c, "members", "room:1") == [ann], c
    assert driver.presence("ann") == [join(ann), join(bob), join(carol), leave(carol),
                                      leave(bob)]

    # ann's first tab closes: her second tab is still there, so no leave for ann. dave
    # joins after that, and ann's second tab sees dave's join and nothing before it.
    driver.close("ann")
    driver.settle(0.3)
    driver.new("dave", herald.ws_url, user_token(herald, "dave", "Dave"))
    driver.wait_open("dave")
    got = driver.ok("dave", "subscribe", "room:1")
    assert by_user(got["members"]) == [ann, dave], got
    driver.wait(lambda s: join(dave) in driver.presence("ann2"), 5, "ann2 to see dave join")
    assert driver.presence("ann2") == [join(carol), leave(carol), leave(bob), join(dave)]
    assert by_user(driver.ok("ann2", "members", "room:1")) == [ann, dave]
    j = herald.api_ok("GET", "/presence?channel=room:1")
    assert sorted(m["user"] for m in j["members"]) == ["ann", "dave"], j


def test_resubscribes_by_itself_after_herald_restarts(driver):
    with Herald(workers=2, config=CHANNELS) as h:
        rita = {"user": "rita", "info": {"name": "Rita"}}
        driver.new("rita", h.ws_url, user_token(h, "rita", "Rita"))
        driver.wait_open("rita")
        chan_token = h.token("rita", channel="doc:7")
        assert driver.ok("rita", "subscribe", "news:1") == {}
        assert driver.ok("rita", "subscribe", "doc:7", {"token": chan_token}) == {}
        assert driver.ok("rita", "subscribe", "room:1") == {"members": [rita]}
        assert driver.ok("rita", "subscribe", "pub:gone") == {}
        assert driver.ok("rita", "unsubscribe", "pub:gone") is None

        h.stop()
        driver.wait(lambda s: driver.reports("rita", "state", state="close", code=1001), 5,
                    "close 1001 on shutdown")
        # While Herald is down: a subscribe waits in the queue, publish and rpc fail at once.
        queued = driver.start_call("rita", "subscribe", "news:2")
        r = driver.refused("rita", "publish", "chat:1", "x")
        assert (r["code"], r["channel"]) == ("disconnected", "chat:1"), r
        assert driver.refused("rita", "rpc", "tasks.list", None)["code"] == "disconnected"
        driver.settle(0.3)
        assert not any(r.get("id") == queued for r in driver.reports("rita", "result"))

        # Back on the same port and secret: the old tokens are still good.
        h.restart()
        driver.wait_open("rita", 2, 15)
        assert driver.result(queued, 5)["ok"] is True, driver.dump()
        for channel in ("news:1", "doc:7", "news:2", "room:1"):
            publish_until_delivered(h, channel, "after.restart", {"channel": channel})
        driver.wait(lambda s: len(driver.events("rita", "after.restart")) == 4, 5,
                    "a publish on every resubscribed channel")
        assert sorted(m["channel"] for _, _, m in driver.events("rita", "after.restart")) == \
            ["doc:7", "news:1", "news:2", "room:1"]
        assert h.publish_channel("pub:gone", "x") == 0, "pub:gone was unsubscribed"
        assert driver.ok("rita", "members", "room:1") == [rita]
        assert driver.reports("rita", "error") == [], "every resubscription succeeded"
        # Each subscribe by rita's h tab announced her, to herself too: once per daemon.
        # The resubscription's members equal the old ones, so no join or leave is made up.
        assert driver.presence("rita") == [("join", "room:1", rita)] * 2
        assert driver.finish() == 0


def test_rpc_without_rpc_socket_rejects_with_rpc_disabled(herald, driver):
    driver.new("ron", herald.ws_url, user_token(herald, "ron"))
    driver.wait_open("ron")
    r = driver.refused("ron", "rpc", "tasks.list", {"done": False})
    assert r["code"] == "rpc_disabled", r
    assert r["channel"] is None, r
    assert driver.reports("ron", "error") == []


class SilentFpm(UnixStandIn):
    """A php-fpm that accepts and reads, and never answers."""

    def __init__(self, path):
        self.conns = []
        super().__init__(path)

    def handle(self, conn):
        self.conns.append(conn)

    def close(self):
        super().close()
        for c in self.conns:
            c.close()


def test_rpc_times_out_on_the_client_and_fails_when_php_fpm_is_gone(driver):
    tmp = tempfile.mkdtemp(prefix="herald-t%d-fpm-" % os.getpid())
    fpm = None
    h = None
    try:
        fpm = SilentFpm(os.path.join(tmp, "fpm.sock"))
        script = os.path.join(tmp, "rpc.php")
        with open(script, "w") as f:
            f.write("<?php\n")
        h = Herald(workers=2, config=dict(CHANNELS, rpc_socket="unix:" + fpm.path,
                                          rpc_script=script, rpc_timeout="2s"))
        h.start()
        driver.new("tim", h.ws_url, user_token(h, "tim"))
        driver.wait_open("tim")
        t0 = time.monotonic()
        r = driver.refused("tim", "rpc", "slow.thing", {"n": 1}, {"timeout": 300})
        took = time.monotonic() - t0
        assert r["code"] == "timeout", r
        assert 0.25 <= took < 1.8, "the client's timeout is 300 ms, took %.2fs" % took
        deadline = time.monotonic() + 5
        while not fpm.conns and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fpm.conns, "Herald never called php-fpm"

        # Herald's own rpc_timeout (2 s) answers later, to a ref the client dropped.
        driver.settle(2.5)
        assert driver.reports("tim", "error") == [], "a late answer must not reach onError"
        assert len(driver.reports("tim", "result")) == 1
        assert driver.ok("tim", "subscribe", "news:1") == {}, "the connection still works"

        # php-fpm goes away: the socket refuses connections.
        fpm.close()
        fpm = None
        r = driver.refused("tim", "rpc", "tasks.list", None, {"timeout": 5000})
        assert r["code"] == "rpc_unavailable", r
        assert driver.finish() == 0
        h.stop()
    finally:
        if h is not None:
            h.cleanup()
        if fpm is not None:
            fpm.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_rpc_and_the_subscribe_hook_through_php_fpm(driver):
    with PhpFpm(children=3) as fpm, \
            fpm.herald(dict(CHANNELS, rpc_hooks="subscribe", rpc_timeout="5s")) as h:
        driver.new("ivy", h.ws_url, user_token(h, "ivy"))
        driver.wait_open("ivy")

        got = driver.ok("ivy", "rpc", "echo", {"done": False, "n": [1, 2]}, timeout=10)
        assert (got["type"], got["method"], got["user"], got["data"]) == \
            ("rpc", "echo", "ivy", {"done": False, "n": [1, 2]}), got
        assert driver.ok("ivy", "rpc", "slow", {"ms": 10}, timeout=10) == {"slept": 10}

        r = driver.refused("ivy", "rpc", "apperror", {"code": "out_of_stock",
                                                      "message": "no more mugs"}, timeout=10)
        assert (r["code"], r["message"], r["channel"]) == ("out_of_stock", "no more mugs", None)
        r = driver.refused("ivy", "rpc", "no.such.method", None, timeout=10)
        assert r["code"] == "no_such_method", r
        r = driver.refused("ivy", "rpc", "fatal", None, timeout=10)
        assert r["code"] == "rpc_failed", r

        # A slow PHP: the client gives up first; Herald's reply, when it comes, is dropped.
        r = driver.refused("ivy", "rpc", "slow", {"ms": 1500}, {"timeout": 300})
        assert r["code"] == "timeout", r
        driver.settle(1.6)
        assert driver.reports("ivy", "error") == []

        # The subscribe hook decides channels no static rule allows.
        assert driver.ok("ivy", "subscribe", "hook-allow:1", timeout=10) == {}
        r = driver.refused("ivy", "subscribe", "hook-deny:1", timeout=10)
        assert (r["code"], r["channel"]) == ("forbidden", "hook-deny:1"), r
        assert h.publish_channel("hook-allow:1", "hooked", 1) == 1
        driver.wait(lambda s: driver.events("ivy", "hooked"), 5, "the hooked channel publish")
        assert fpm.php_errors().count("herald_tests_no_such_function") >= 1
        assert driver.finish() == 0

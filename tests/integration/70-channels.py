"""
70-channels.py -- channels end to end (docs/protocol.md sections 1 and 2): the real Herald,
a real php-fpm answering the subscribe hook (tests/lib/phpfpm.py, tests/integration/php/rpc.php),
and real WebSocket clients (websockets).

Proves:
- the subscribe authorization matrix, rule by rule: public_channels (a prefix* pattern and an
  exact name), the token's channels claim (exact and prefix*), a channel token (valid; expired,
  for another user, for another channel, badly signed, without exp: bad_token), the subscribe
  hook (true and {"allow": true} allow; false and {"allow": false} deny with forbidden; a hook
  slower than rpc_timeout: rpc_timeout; php-fpm stopped: rpc_unavailable, and allowed again once
  it is back), the hook asked only when no static rule allows, and forbidden with no rule at all;
  anonymous connections: public channels only (not even what the hook would allow), never
  publish;
- max_subscriptions (too_many_subscriptions; subscribing twice is one subscription),
  unsubscribe (ok even when not subscribed), /stats channels and subscriptions;
- POST /publish {"channel"}: the delivered count and the {"channel","event","data"} envelope,
  to every tab of every subscriber and nobody else;
- client publish: the client_publish pattern (forbidden), must be subscribed (not_subscribed),
  "from" stamped by Herald (the client's own "from" ignored), event and data defaults, echo false
  skips only the sending connection while the same user's other tab receives;
- across workers: 20 subscribers spread over 2 workers all get API and client publishes, each
  publisher's messages in the order it sent them;
- the error replies bad_json, bad_command and bad_channel (and every code above): the right
  code, answered with the ref when one could be read, counted in /stats client_errors, the
  connection stays open, and a bystander keeps receiving; a command without ref is answered
  only when it fails; binary messages are ignored.
"""

import asyncio
import time
import uuid

import pytest

from herald import Bystander, Herald, uid
from wscmd import ErrorCounts, client, error_msg, expect_error

HERALD_CONFIG = {
    "allow_anonymous": "yes",
    "public_channels": "public:* news",
    "client_publish": "chat:* public:talk*",
    "max_subscriptions": "4",
    "rpc_hooks": "subscribe",
    "rpc_timeout": "1s",
}
HERALD_WORKERS = 2
HERALD_PHPFPM = True      # the herald fixture (conftest.py): php-fpm answers the hook


# -- who may subscribe ---------------------------------------------------------

def test_public_channel_by_pattern_and_by_exact_name(herald, run, phpfpm):
    ch = "public:lobby-" + uid()

    async def go():
        async with client(herald, uid("a")) as a, client(herald, uid("b")) as b:
            assert await a.subscribe(ch) == {"op": "ok", "ref": 1}
            assert await a.subscribe("news") == {"op": "ok", "ref": 2}
            assert herald.publish_channel(ch, "deploy", {"v": 3}) == 1
            assert await a.next() == {"channel": ch, "event": "deploy", "data": {"v": 3}}
            assert herald.publish_channel("news", "headline", "hi") == 1
            assert await a.next() == {"channel": "news", "event": "headline", "data": "hi"}
            await b.nothing()
            # "news" is an exact name: "news2" is not public (the hook says no).
            error_msg(await b.call("subscribe", channel="news2"), "forbidden", b.ref)
    run(go())
    # Static rules never ask PHP.
    assert phpfpm.calls(type="subscribe", channel=ch) == []
    assert phpfpm.calls(type="subscribe", channel="news") == []


def test_token_channels_claim_exact_and_prefix_pattern(herald, run, phpfpm):
    u, k = uid("claims"), uuid.uuid4().hex[:8]
    exact, prefix = "team:12-" + k, "doc-%s:" % k

    async def go():
        async with client(herald, u, channels=[exact, prefix + "*"]) as c, \
                client(herald, uid("other")) as other:
            await c.subscribe(exact)
            await c.subscribe(prefix + "7")
            await c.subscribe(prefix + "7/sub.page")
            # Not in the claim: the exact name's longer sibling, another prefix.
            error_msg(await c.call("subscribe", channel=exact + "3"), "forbidden", c.ref)
            error_msg(await c.call("subscribe", channel="doc-x%s:7" % k), "forbidden", c.ref)
            # Someone else's token has no such claim.
            error_msg(await other.call("subscribe", channel=exact), "forbidden", other.ref)
            assert herald.publish_channel(prefix + "7", "e", 1) == 1
            assert await c.next() == {"channel": prefix + "7", "event": "e", "data": 1}
    run(go())
    assert phpfpm.calls(type="subscribe", user=u, channel=exact) == []
    assert phpfpm.calls(type="subscribe", user=u, channel=prefix + "7") == []


BAD_CLAIMS = [
    ("channels-not-array", {"channels": "news"}),
    ("channels-over-1000", {"channels": ["a"] * 1001}),
    ("channels-bad-pattern", {"channels": ["public:ok", "a b"]}),
    ("channels-not-string", {"channels": [7]}),
    ("info-not-object", {"info": "Ann"}),
    ("info-over-1k", {"info": {"bio": "x" * 1100}}),
]


@pytest.mark.parametrize("claims", [c for _, c in BAD_CLAIMS], ids=[n for n, _ in BAD_CLAIMS])
def test_a_token_with_a_bad_claim_is_refused_401_and_counted(herald, bystander, claims):
    """A token whose channels or info claim is malformed is refused at the handshake (401
    bad_token), counted, and disturbs no other client; the same token without it opens."""
    user = uid("claims")
    before = herald.stats()["handshakes_refused"]["bad_token"]
    with herald.raw() as ws:
        status, _, body = ws.handshake("/ws?token=" + herald.token(user, **claims))
    assert status == 401, (status, body)
    s = herald.wait_stat("handshakes_refused.bad_token", before + 1)
    assert s["handshakes_refused"]["bad_token"] == before + 1
    with herald.raw() as ws:
        assert ws.handshake("/ws?token=" + herald.token(user))[0] == 101
    bystander.check()


def test_channel_token_allows_that_user_that_channel(herald, run, phpfpm):
    u, ch = uid("ct"), "doc:" + uid()

    async def go():
        async with client(herald, u) as c:
            assert await c.subscribe(ch, token=herald.token(u, ttl=60, channel=ch)) == \
                {"op": "ok", "ref": 1}
            assert herald.publish_channel(ch, "edit", {"line": 3}) == 1
            assert await c.next() == {"channel": ch, "event": "edit", "data": {"line": 3}}
    run(go())
    assert phpfpm.calls(type="subscribe", channel=ch) == []


@pytest.mark.parametrize("case", ["expired", "other_user", "other_channel", "bad_signature",
                                  "no_exp", "not_a_jwt", "integer_sub_other_user"])
def test_bad_channel_token_is_bad_token(herald, run, bystander, case):
    u, ch = uid("ct"), "doc:" + uid()
    tokens = {
        "expired": lambda: herald.token(u, ttl=-300, channel=ch),
        "other_user": lambda: herald.token(uid("mallory"), ttl=60, channel=ch),
        "other_channel": lambda: herald.token(u, ttl=60, channel=ch + "x"),
        "bad_signature": lambda: herald.token(u, ttl=60, channel=ch,
                                              secret="not-the-secret-at-all-0123456789"),
        "no_exp": lambda: herald.token(u, ttl=None, channel=ch),
        "not_a_jwt": lambda: "not.a.jwt",
        "integer_sub_other_user": lambda: herald.token(12345, ttl=60, channel=ch),
    }

    async def go():
        async with client(herald, u) as c:
            await expect_error(herald, c, bystander, "bad_token", "subscribe", channel=ch,
                               token=tokens[case]())
            # Not subscribed: a publish to the channel reaches nobody.
            assert herald.publish_channel(ch, "e", 1) == 0
            await c.nothing()
    run(go())


def test_channel_token_is_checked_before_the_hook(herald, run, phpfpm):
    # PHP would refuse hook-no:...; a valid channel token allows it without asking.
    u, ch = uid("ct"), "hook-no:" + uid()

    async def go():
        async with client(herald, u) as c:
            await c.subscribe(ch, token=herald.token(u, ttl=60, channel=ch))
    run(go())
    assert phpfpm.calls(type="subscribe", channel=ch) == []


def test_no_rule_and_no_hook_is_forbidden(run):
    with Herald(config={"public_channels": "public:*"}, workers=1) as h:
        b = Bystander(h)

        async def go():
            async with client(h, uid("x")) as c:
                await expect_error(h, c, b, "forbidden", "subscribe", channel="team:" + uid())
                await c.subscribe("public:" + uid())
        try:
            run(go())
        finally:
            b.close()


# -- the subscribe hook ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["hook-allow", "hook-obj"])
def test_subscribe_hook_allows(herald, run, phpfpm, kind):
    u, ch = uid("hk"), "%s:%s" % (kind, uid())

    async def go():
        async with client(herald, u) as c:
            assert await c.subscribe(ch) == {"op": "ok", "ref": 1}
            assert herald.publish_channel(ch, "e", [1]) == 1
            assert await c.next() == {"channel": ch, "event": "e", "data": [1]}
    run(go())
    calls = phpfpm.calls(type="subscribe", channel=ch)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["user"] == u and isinstance(call["connection"], str) and call["connection"]
    assert abs(call["time"] - time.time()) < 60
    assert call["server"]["REQUEST_URI"] == "/herald/subscribe"
    assert call["server"]["REQUEST_METHOD"] == "POST"


@pytest.mark.parametrize("kind", ["hook-deny", "hook-no", "other"])
def test_subscribe_hook_denies_with_forbidden(herald, run, bystander, phpfpm, kind):
    u, ch = uid("hk"), "%s:%s" % (kind, uid())

    async def go():
        async with client(herald, u) as c:
            await expect_error(herald, c, bystander, "forbidden", "subscribe", channel=ch)
            assert herald.publish_channel(ch, "e", 1) == 0
    run(go())
    assert len(phpfpm.calls(type="subscribe", channel=ch, user=u)) == 1


def test_subscribe_hook_slower_than_rpc_timeout_is_rpc_timeout(herald, run, bystander):
    u, ch = uid("hk"), "hook-slow:" + uid()

    async def go():
        async with client(herald, u) as c:
            t0 = time.monotonic()
            await expect_error(herald, c, bystander, "rpc_timeout", "subscribe", channel=ch)
            took = time.monotonic() - t0
            assert 0.8 < took < 2.9, "rpc_timeout 1s answered after %.2fs" % took
            # PHP's late "true" (at 3 s) must not subscribe it after all.
            await asyncio.sleep(2.5)
            assert herald.publish_channel(ch, "late", 1) == 0
            await c.nothing()
    run(go())


def test_subscribe_hook_with_php_fpm_stopped_is_rpc_unavailable(herald, run, bystander, phpfpm):
    u = uid("hk")

    async def go():
        async with client(herald, u) as c:
            phpfpm.stop()
            try:
                t0 = time.monotonic()
                await expect_error(herald, c, bystander, "rpc_unavailable", "subscribe",
                                   channel="hook-allow:" + uid())
                assert time.monotonic() - t0 < 0.9, "rpc_unavailable must not wait rpc_timeout"
                # Static rules need no PHP.
                await c.subscribe("public:" + uid())
            finally:
                phpfpm.start()
            ch = "hook-allow:" + uid()
            await c.subscribe(ch)
            assert herald.publish_channel(ch, "back", 1) == 1
            assert await c.next() == {"channel": ch, "event": "back", "data": 1}
    run(go())


# -- anonymous connections -----------------------------------------------------

def test_anonymous_connections_subscribe_to_public_channels_and_never_publish(herald, run,
                                                                            bystander):
    pub, talk = "public:" + uid(), "public:talk-" + uid()

    async def go():
        async with client(herald) as anon, client(herald, uid("t")) as talker:
            await anon.subscribe(pub)
            await anon.subscribe(talk)
            await talker.subscribe(talk)
            # talk matches client_publish and anon is subscribed, but anonymous never publish.
            await expect_error(herald, anon, bystander, "forbidden", "publish", channel=talk,
                               event="chat", data="hi")
            await talker.nothing()
            assert herald.publish_channel(pub, "e", 1) == 1
            assert await anon.next() == {"channel": pub, "event": "e", "data": 1}
            # A known user may publish there: anon receives it, stamped.
            await talker.ok("publish", channel=talk, event="chat", data="yo")
            assert await anon.next() == {"channel": talk, "event": "chat", "data": "yo",
                                         "from": talker.user}
    run(go())


def test_anonymous_connections_get_no_channel_but_public_ones(herald, run, bystander, phpfpm):
    # The hook would allow hook-allow:...; anonymous connections get public channels only.
    ch = "hook-allow:" + uid()

    async def go():
        async with client(herald) as anon:
            await expect_error(herald, anon, bystander, "forbidden", "subscribe", channel=ch)
            assert herald.publish_channel(ch, "e", 1) == 0
            await anon.nothing()
    run(go())


# -- limits, unsubscribe, /stats -------------------------------------------------

def test_max_subscriptions_and_subscribing_twice(herald, run, bystander):
    chans = ["public:max-%d-%s" % (i, uid()) for i in range(5)]

    async def go():
        async with client(herald, uid("max")) as c:
            for ch in chans[:4]:
                await c.subscribe(ch)
            await c.subscribe(chans[0])          # twice: ok, still one subscription
            await expect_error(herald, c, bystander, "too_many_subscriptions", "subscribe",
                               channel=chans[4])
            assert herald.publish_channel(chans[0], "once", 1) == 1
            assert await c.next() == {"channel": chans[0], "event": "once", "data": 1}
            await c.nothing()
            await c.ok("unsubscribe", channel=chans[1])
            await c.subscribe(chans[4])
            assert herald.publish_channel(chans[4], "fifth", 5) == 1
            assert await c.next() == {"channel": chans[4], "event": "fifth", "data": 5}
    run(go())


def test_unsubscribe_stops_delivery_and_is_ok_when_not_subscribed(herald, run):
    ch = "public:" + uid()

    async def go():
        async with client(herald, uid("un")) as c, client(herald, uid("stay")) as stay:
            await c.subscribe(ch)
            await stay.subscribe(ch)
            assert herald.publish_channel(ch, "e", 1) == 2
            assert await c.next() == {"channel": ch, "event": "e", "data": 1}
            assert await stay.next() == {"channel": ch, "event": "e", "data": 1}
            assert await c.ok("unsubscribe", channel=ch) == {"op": "ok", "ref": 2}
            assert herald.publish_channel(ch, "e", 2) == 1
            assert await stay.next() == {"channel": ch, "event": "e", "data": 2}
            await c.nothing()
            await c.ok("unsubscribe", channel=ch)
            await c.ok("unsubscribe", channel="public:never-" + uid())
    run(go())


def test_stats_count_channels_and_subscriptions(herald, run):
    a_ch, b_ch = "public:" + uid(), "public:" + uid()

    async def go():
        # Earlier tests' connections are closed, their subscriptions gone.
        base = herald.wait_stat("subscriptions", 0)
        assert (base["channels"], base["subscriptions"]) == (0, 0), base
        async with client(herald, uid("s1")) as c1, client(herald, uid("s2")) as c2:
            await c1.subscribe(a_ch)
            await c1.subscribe(b_ch)
            await c2.subscribe(a_ch)
            s = herald.stats()
            assert s["channels"] - base["channels"] == 2, (base, s)
            assert s["subscriptions"] - base["subscriptions"] == 3, (base, s)
            await c1.ok("unsubscribe", channel=b_ch)
            s = herald.stats()
            assert s["channels"] - base["channels"] == 1, (base, s)
            assert s["subscriptions"] - base["subscriptions"] == 2, (base, s)
        s = herald.wait_stat("subscriptions", base["subscriptions"])
        assert (s["channels"], s["subscriptions"]) == (base["channels"], base["subscriptions"])
    run(go())


# -- publishing into a channel ---------------------------------------------------

def test_api_publish_reaches_every_subscribed_tab_and_nobody_else(herald, run):
    ch, a, b = "public:" + uid(), uid("a"), uid("b")

    async def go():
        async with client(herald, a) as a1, client(herald, a) as a2, client(herald, b) as b1, \
                client(herald, a) as a3, client(herald, uid("c")) as outsider:
            for c in (a1, a2, b1):
                await c.subscribe(ch)
            assert herald.publish_channel(ch, "deploy", {"v": 3}) == 3
            for c in (a1, a2, b1):
                assert await c.next() == {"channel": ch, "event": "deploy", "data": {"v": 3}}
            # Neither a tab of a subscribed user that did not subscribe, nor anyone else.
            await a3.nothing()
            await outsider.nothing()
            # Publishing to the users reaches all of a's tabs, without a channel.
            assert herald.publish([a], "direct", 1) == 3
            for c in (a1, a2, a3):
                assert await c.next() == {"event": "direct", "data": 1}
            assert herald.publish_channel("public:nobody-" + uid(), "e") == 0
    run(go())


def test_client_publish_needs_a_client_publish_pattern(herald, run, bystander):
    ch = "public:" + uid()   # public, but not in client_publish

    async def go():
        async with client(herald, uid("p")) as c:
            await c.subscribe(ch)
            await expect_error(herald, c, bystander, "forbidden", "publish", channel=ch,
                               event="chat", data="hi")
            await c.nothing()
    run(go())


def test_client_publish_needs_a_subscription(herald, run, bystander):
    u, ch = uid("p"), "chat:" + uid()

    async def go():
        async with client(herald, u, channels=["chat:*"]) as c, \
                client(herald, uid("r"), channels=["chat:*"]) as r:
            await r.subscribe(ch)
            await expect_error(herald, c, bystander, "not_subscribed", "publish", channel=ch,
                               event="chat", data="hi")
            await r.nothing()
    run(go())


def test_client_publish_is_stamped_with_the_sender_and_echo_false_skips_only_that_tab(
        herald, run):
    ann, bob, ch = uid("ann"), uid("bob"), "chat:" + uid()
    claims = {"channels": ["chat:*"]}

    async def go():
        async with client(herald, ann, **claims) as ann1, client(herald, ann, **claims) as ann2, \
                client(herald, bob, **claims) as bob1, client(herald, uid("x"), **claims) as x:
            for c in (ann1, ann2, bob1):
                await c.subscribe(ch)
            ans = await ann1.call("publish", channel=ch, event="chat", data={"text": "hi"},
                                  **{"from": "mallory"})
            assert ans == {"op": "ok", "ref": 2}
            want = {"channel": ch, "event": "chat", "data": {"text": "hi"}, "from": ann}
            for c in (ann1, ann2, bob1):
                assert await c.next() == want
            await x.nothing()

            ans = await ann1.call("publish", channel=ch, event="chat", data="quiet", echo=False)
            assert ans == {"op": "ok", "ref": 3}
            want = {"channel": ch, "event": "chat", "data": "quiet", "from": ann}
            assert await ann2.next() == want
            assert await bob1.next() == want
            await ann1.nothing()

            # event defaults to "message", data to null; echo true explicitly.
            await bob1.ok("publish", channel=ch, echo=True)
            want = {"channel": ch, "event": "message", "data": None, "from": bob}
            for c in (ann1, ann2, bob1):
                assert await c.next() == want
    run(go())


@pytest.mark.parametrize("fields", [
    {"event": ""},
    {"event": "e" * 201},
    {"event": "bad\nevent"},
    {"event": 7},
    {"echo": "no"},
], ids=["empty_event", "long_event", "control_char_event", "int_event", "string_echo"])
def test_client_publish_with_a_bad_member_is_bad_command(herald, run, bystander, fields):
    ch = "chat:" + uid()

    async def go():
        async with client(herald, uid("p"), channels=["chat:*"]) as c, \
                client(herald, uid("r"), channels=["chat:*"]) as r:
            await c.subscribe(ch)
            await r.subscribe(ch)
            await expect_error(herald, c, bystander, "bad_command", "publish", channel=ch,
                               data=1, **fields)
            await r.nothing()
    run(go())


def test_twenty_subscribers_over_two_workers_get_everything_in_order(herald, run):
    # 20 connections: with SO_REUSEPORT on 2 workers, the chance that all land on one is 2^-19.
    ch, users = "chat:fan-" + uid(), [uid("fan%d" % i) for i in range(20)]

    async def go():
        clients = []
        try:
            for u in users:
                cm = client(herald, u, channels=["chat:fan-*"])
                clients.append((cm, await cm.__aenter__()))
            cs = [c for _, c in clients]
            await asyncio.gather(*(c.subscribe(ch) for c in cs))
            assert herald.publish_channel(ch, "fan", {"n": 20}) == 20
            for c in cs:
                assert await c.next() == {"channel": ch, "event": "fan", "data": {"n": 20}}

            # A client's publish: ok once every worker has it queued; echo false skips only it.
            ans = await cs[0].call("publish", channel=ch, event="talk", data="x", echo=False)
            assert ans == {"op": "ok", "ref": 2}
            for c in cs[1:]:
                assert await c.next() == {"channel": ch, "event": "talk", "data": "x",
                                          "from": users[0]}
            await cs[0].nothing()

            # Interleaved publishes from the API and two clients: each source's messages
            # reach every subscriber in the order they were sent.
            for i in range(10):
                assert herald.publish_channel(ch, "seq", i) == 20
                await cs[3].ok("publish", channel=ch, event="seq", data=100 + i)
                await cs[17].start("publish", channel=ch, event="seq", data=200 + i)
            for ref in range(2, 12):
                assert await cs[17].answer(ref) == {"op": "ok", "ref": ref}
            seqs = []
            for c in cs:
                seqs.append([(await c.next())["data"] for _ in range(30)])
            for s in seqs:
                assert sorted(s) == sorted(seqs[0]), "subscribers got different messages"
                assert [d for d in s if d < 100] == list(range(10))
                assert [d for d in s if 100 <= d < 200] == list(range(100, 110))
                assert [d for d in s if d >= 200] == list(range(200, 210))
            for c in cs:
                await c.nothing(0.1)
        finally:
            for cm, _ in reversed(clients):
                await cm.__aexit__(None, None, None)
    run(go(), timeout=45)


# -- malformed commands -----------------------------------------------------------

# (text sent, the ref the answer must carry or None for none, expected code)
BAD_COMMANDS = [
    ("not json", None, "bad_json"),
    ('{"op":"subscribe","channel":"public:x","ref":1', None, "bad_json"),
    ('["op","subscribe"]', None, "bad_json"),
    ('"subscribe"', None, "bad_json"),
    ("42", None, "bad_json"),
    ("", None, "bad_json"),
    ('{"op":"subscribe","op":"unsubscribe","channel":"public:x","ref":7}', None, "bad_json"),
    ('{"channel":"public:x","ref":11}', 11, "bad_command"),
    ('{"op":"dance","ref":12}', 12, "bad_command"),
    ('{"op":"Subscribe","channel":"public:x","ref":13}', 13, "bad_command"),
    ('{"op":7,"ref":"r14"}', "r14", "bad_command"),
    ('{"op":null,"ref":15}', 15, "bad_command"),
    ('{"op":"subscribe\\u0000x","channel":"public:x","ref":17}', 17, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":"r\\u0000"}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":1.5}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":-1}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":9007199254740992}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":true}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":{"a":1}}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":[1]}', None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","ref":"%s"}' % ("r" * 65), None, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","token":5,"ref":16}', 16, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","since":5,"ref":18}', 18, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","since":"a\\u0000b","ref":19}', 19, "bad_command"),
    ('{"op":"subscribe","channel":"public:x","since":"%s","ref":20}' % ("1" * 32), 20,
     "bad_command"),
    ('{"op":"publish","channel":"chat:x","event":"a\\u0000b","ref":32}', 32, "bad_command"),
    ('{"op":"subscribe","ref":21}', 21, "bad_channel"),
    ('{"op":"subscribe","channel":"","ref":22}', 22, "bad_channel"),
    ('{"op":"subscribe","channel":"public:%s","ref":23}' % ("c" * 122), 23, "bad_channel"),
    ('{"op":"subscribe","channel":"public:a b","ref":24}', 24, "bad_channel"),
    ('{"op":"subscribe","channel":"public:*","ref":25}', 25, "bad_channel"),
    ('{"op":"subscribe","channel":"public:caf\\u00e9","ref":26}', 26, "bad_channel"),
    ('{"op":"subscribe","channel":"public:a\\nb","ref":27}', 27, "bad_channel"),
    ('{"op":"unsubscribe","channel":"public:a#b","ref":29}', 29, "bad_channel"),
    ('{"op":"publish","channel":"chat:a?b","event":"e","ref":30}', 30, "bad_channel"),
    ('{"op":"publish","event":"e","ref":31}', 31, "bad_channel"),
]


@pytest.mark.parametrize("text,ref,code", BAD_COMMANDS,
                         ids=["%02d-%s" % (i, c[2]) for i, c in enumerate(BAD_COMMANDS)])
def test_malformed_command_is_answered_counted_and_harmless(herald, run, bystander, text, ref,
                                                            code):
    async def go():
        async with client(herald, uid("bad")) as c:
            counts = ErrorCounts(herald)
            await c.send(text)
            if ref is None:
                ans = await c.next()
            else:
                ans = await c.answer(ref)
            error_msg(ans, code, ref)
            await c.alive()
            await c.nothing(0.2)
            counts.check(code)
            bystander.check()
    run(go())


def test_channel_names_at_the_limits_are_accepted(herald, run):
    longest = "public:" + "c" * 121
    assert len(longest) == 128
    odd = "public:Az09_-.:@/=+"

    async def go():
        async with client(herald, uid("lim")) as c:
            for ch in (longest, odd):
                await c.subscribe(ch)
                assert herald.publish_channel(ch, "e", ch) == 1
                assert await c.next() == {"channel": ch, "event": "e", "data": ch}
            # Refs at their limits come back exactly.
            for ref in (0, 2 ** 53 - 1, "", "r" * 64, "ünï"):
                await c.send({"op": "unsubscribe", "channel": "public:x", "ref": ref})
                assert await c.answer(ref) == {"op": "ok", "ref": ref}
    run(go())


def test_commands_without_ref_are_answered_only_on_failure(herald, run, bystander):
    ch = "public:" + uid()

    async def go():
        async with client(herald, uid("noref")) as c:
            await c.send({"op": "subscribe", "channel": ch})
            await c.nothing(0.3)
            assert herald.publish_channel(ch, "e", 1) == 1
            assert await c.next() == {"channel": ch, "event": "e", "data": 1}
            counts = ErrorCounts(herald)
            await c.send({"op": "subscribe", "channel": "team:" + uid()})
            error_msg(await c.next(), "forbidden")
            counts.check("forbidden")
            # Unknown members are ignored.
            await c.ok("unsubscribe", channel=ch, extra={"x": 1})
            bystander.check()
    run(go())


def test_binary_messages_are_ignored(herald, run, bystander):
    ch = "public:bin-" + uid()

    async def go():
        async with client(herald, uid("bin")) as c:
            counts = ErrorCounts(herald)
            await c.ws.send(b'{"op":"subscribe","channel":"%s","ref":1}' % ch.encode())
            await c.nothing(0.3)
            # Not answered (an answer would be kept aside under its ref, not seen by
            # nothing()), and not obeyed: the channel has no subscriber.
            assert c.answers == {}, "a binary message was answered: %r" % c.answers
            assert herald.publish_channel(ch, "e", 1) == 0, "a binary message subscribed"
            await c.alive()
            await c.nothing(0.2)
            counts.check("bad_json", 0)
            bystander.check()
    run(go())

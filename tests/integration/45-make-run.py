"""
45-make-run: what `make run` promises a newcomer. The demo script
(php-client/demo/run.sh, which `make run` calls) starts Herald on its
embedded defaults (plus the demos' channel and RPC flags), a private php-fpm
for the RPC script and the demo pages. Checked here, as a browser would use
them:

  - the banner's commands work as printed, in a terminal without the
    demo's environment: the token command's token connects, and the
    publish command's message reaches that connection, with its id;
  - notifications: a WebSocket client connects with a token from
    herald_token() and receives what herald_publish() sends: exactly the
    targeted user's tabs, no one else's; publish.php refuses bad input;
  - team chat: two users with tokens from the demo's token endpoint join a
    presence room, see each other come and go (a user's second tab is
    silent), and exchange messages stamped with the sender's verified id;
  - mobile office: tasks.add / toggle / delete / list over RPC to PHP
    (SQLite), every change pushed on office:tasks to the other users, bad
    input refused with the script's own error codes; a task completed by
    another user carries who completed it (done_by);
  - Ctrl-C (SIGINT) stops Herald, php-fpm (master and children) and the
    page server, and removes the API socket and run.sh's temp dir.

The script is run as tests/lib/demo.py says: its ports moved through the
environment (the only difference from `make run`), and TMPDIR pointing into
the test's own dir, so the test never collides with a developer's own
`make run`. 91-demo-browser.py opens the same pages in Chromium.
"""
import asyncio
import json
import os
import re
import sqlite3
import time
import urllib.request

import pytest
import websockets

import fcgi
from demo import DEMO_DIR, Demo, alive
from herald import expect_nothing, recv_json
from procs import children, proc_stat
from wscmd import Cmd, error_msg

ROOM = "room:lobby"
OFFICE = "office:tasks"
ID = re.compile(r"^[0-9a-f]+:[0-9]+$")


@pytest.fixture
def demo():
    d = Demo()
    try:
        yield d
    finally:
        d.cleanup()


def connect(demo, token):
    return websockets.connect("ws://127.0.0.1:%d/ws" % demo.ws_port,
                              subprotocols=["herald", "herald.token." + token],
                              open_timeout=5, close_timeout=2)


def test_banner_says_how_to_connect_and_publish(demo):
    text = demo.text()
    assert "ws://127.0.0.1:%d/ws" % demo.ws_port in text
    assert demo.socket in text
    assert "herald_publish(" in text and "herald_token(" in text
    assert "http://127.0.0.1:%d/?user=42" % demo.http_port in text


def test_the_banners_commands_work_as_printed(demo):
    """A newcomer copies the token command, connects, then runs the publish command."""
    token = demo.sh(demo.banner_command("token")).strip()
    assert re.match(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", token), token
    js = demo.banner_command("js")
    assert js.startswith('new Herald("ws://127.0.0.1:%d/ws", {token: "TOKEN"})' % demo.ws_port)

    async def go():
        async with connect(demo, token) as ws:
            out = demo.sh(demo.banner_command("publish"))
            assert out == "1 tab(s)\n"
            msg = await recv_json(ws, keep_id=True)
            assert ID.match(msg.pop("id", "")), msg
            assert msg == {"event": "order.shipped", "data": {"id": 7}}
    asyncio.run(go())


def test_a_publish_reaches_exactly_the_targeted_users_tabs(demo):
    tok42 = demo.php("echo herald_token('42');")
    tok7 = demo.php("echo herald_token('7');")

    async def go():
        async with connect(demo, tok42) as tab1, connect(demo, tok42) as tab2, \
                connect(demo, tok7) as other:
            out = demo.php("echo herald_publish('42', 'order.shipped', ['id' => 7]);")
            assert out == "2"
            want = {"event": "order.shipped", "data": {"id": 7}}
            assert await recv_json(tab1) == want
            assert await recv_json(tab2) == want
            await expect_nothing(other, 0.5)
            assert demo.php("echo herald_publish('7', 'ping', null);") == "1"
            assert await recv_json(other) == {"event": "ping", "data": None}
            await expect_nothing(tab1, 0.3)
    asyncio.run(go())


def test_the_demo_page_and_its_publish_form(demo):
    status, page = demo.get("/?user=7")
    assert status == 200
    assert '<script src="herald.js"></script>\n<script src="demo.js"></script>\n' \
        '<script src="notify.js"></script>' in page
    config = json.loads(re.search(r'<script type="application/json" id="demo-config">'
                                  r'(.*?)</script>', page).group(1))
    assert config == {"user": "7", "wsUrl": "ws://127.0.0.1:%d/ws" % demo.ws_port}
    js = urllib.request.urlopen(demo.url("/herald.js"), timeout=5).read().decode()
    assert "function Herald" in js or "class Herald" in js

    async def go():
        async with connect(demo, demo.token("7")) as ws:
            assert demo.post("/publish.php", {"to": "7", "text": "hi"}) == \
                (200, '{"delivered":1}\n')
            msg = await recv_json(ws, keep_id=True)
            assert ID.match(msg.pop("id", "")), msg
            assert msg == {"event": "demo.message", "data": {"text": "hi"}}
            assert demo.post("/publish.php", {"broadcast": "1", "text": "all"}) == \
                (200, '{"delivered":1}\n')
            assert await recv_json(ws, keep_id=True) == \
                {"event": "demo.broadcast", "data": {"text": "all"}}
            # Bad input: a clear error, nothing sent.
            for form in ({"to": "", "text": "x"}, {"to": "a b", "text": "x"},
                         {"to": "x" * 33, "text": "x"}, {"text": "x"},
                         {"to": "7", "text": "y" * 501}, {"to": "7", "text": b"\xff"},
                         {"to[]": "7", "text": "x"}, {"to": "7", "text[]": "x"}):
                status, body = demo.post("/publish.php", form)
                assert status == 400 and "error" in json.loads(body), (form, status, body)
            assert demo.get("/publish.php")[0] == 405
            assert demo.post("/publish.php", {"to": "7", "text": "\u00e9" * 500})[0] == 200
            msg = await recv_json(ws)
            assert msg["data"] == {"text": "\u00e9" * 500}
            await expect_nothing(ws, 0.3)
    asyncio.run(go())


def test_the_three_demos_are_linked_and_served_locally(demo):
    status, index = demo.get("/?user=ann")
    assert status == 200
    assert 'href="chat.php?user=ann"' in index and 'href="office.php?user=ann"' in index
    for page, script in (("./", "notify.js"), ("chat.php", "chat.js"),
                         ("office.php", "office.js")):
        status, html = demo.get("/%s?user=ann" % page.lstrip("./"))
        assert status == 200, html
        # herald.js, then the shared demo.js, then the page's own script.
        assert '<script src="herald.js"></script>\n<script src="demo.js"></script>\n' \
            '<script src="%s"></script>' % script in html
        assert '<link rel="stylesheet" href="demo.css">' in html
        assert '<link rel="icon" href="favicon.svg" type="image/svg+xml">' in html
        for other in ("./", "chat.php", "office.php"):
            assert other == page or 'href="%s?user=ann"' % other in html, (page, other)
        # Nothing from another site (no CDN): every src and href is relative.
        for url in re.findall(r'(?:src|href)="([^"]*)"', html):
            assert not re.match(r"(?i)^(?:[a-z]+:)?//", url), url
        config = json.loads(re.search(r'<script type="application/json" id="demo-config">'
                                      r'(.*?)</script>', html).group(1))
        assert config["user"] == "ann"
        assert config["wsUrl"] == "ws://127.0.0.1:%d/ws" % demo.ws_port
    for path in ("/favicon.svg", "/favicon.ico"):
        with urllib.request.urlopen(demo.url(path), timeout=5) as r:
            assert r.headers["Content-Type"] == "image/svg+xml", path
            assert r.read() == (DEMO_DIR / "favicon.svg").read_bytes()
    for path in ("/notify.js", "/chat.js", "/office.js", "/demo.js", "/demo.css",
                 "/herald.js"):
        status, body = demo.get(path)
        assert status == 200 and body, path
        # User text goes into the DOM as text only.
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert path == "/herald.js" or bad not in body, (path, bad)
    # A name that is not a plain id falls back to the default user, escaped or not.
    status, html = demo.get("/chat.php?user=%3Cscript%3E")
    assert status == 200 and "<script>alert" not in html and '"user":"42"' in html
    # The RPC script and the shared include are not pages.
    for path in ("/rpc.php", "/common.php"):
        assert demo.get(path)[0] == 404, path


def members(answer):
    return sorted(m["user"] for m in answer["members"])


def test_team_chat_presence_and_messages(demo):
    ann_tok, bob_tok = demo.token("ann"), demo.token("bob")
    assert demo.get("/token.php?user=ann&channel=room:lobby")[0] == 403

    async def go():
        async with connect(demo, ann_tok) as wa, connect(demo, bob_tok) as wb1, \
                connect(demo, bob_tok) as wb2:
            ann, bob1, bob2 = Cmd(wa, "ann"), Cmd(wb1, "bob"), Cmd(wb2, "bob")
            assert members(await ann.subscribe(ROOM)) == ["ann"]
            assert await ann.next() == {"op": "join", "channel": ROOM, "user": "ann",
                                        "info": {"name": "ann"}}
            assert members(await bob1.subscribe(ROOM)) == ["ann", "bob"]
            join_bob = {"op": "join", "channel": ROOM, "user": "bob", "info": {"name": "bob"}}
            assert await ann.next() == join_bob
            assert await bob1.next() == join_bob
            # bob's second tab: in the list once, and no one hears of it.
            assert members(await bob2.subscribe(ROOM)) == ["ann", "bob"]
            await ann.nothing(0.3)
            await bob1.nothing(0.1)

            # A message reaches every member's tabs, the sender's too (echo), stamped with
            # the sender's verified id: the "from" the client wrote is not the one sent.
            await ann.ok("publish", channel=ROOM, event="chat", data={"text": "hi <b>bob</b>"},
                         **{"from": "mallory"})
            want = {"channel": ROOM, "event": "chat", "data": {"text": "hi <b>bob</b>"},
                    "from": "ann"}
            for c in (ann, bob1, bob2):
                assert await c.next() == want
            await bob2.ok("publish", channel=ROOM, event="chat", data={"text": "hello"})
            want = {"channel": ROOM, "event": "chat", "data": {"text": "hello"}, "from": "bob"}
            for c in (ann, bob1, bob2):
                assert await c.next() == want

            # The office channel needs its channel token; browsers cannot publish into it.
            error_msg(await ann.call("subscribe", channel=OFFICE), "forbidden", ann.ref)
            error_msg(await ann.call("publish", channel=OFFICE, data=1), "forbidden", ann.ref)

            # One tab of bob closing is silent; the last one is a leave.
            await wb2.close()
            await ann.nothing(0.3)
            await wb1.close()
            leave = await ann.next()
            assert {k: leave[k] for k in ("op", "channel", "user")} == \
                {"op": "leave", "channel": ROOM, "user": "bob"}
    asyncio.run(asyncio.wait_for(go(), 30))


async def rpc(c, method, data):
    """An rpc command's answer (a reply or an error) with this command's ref."""
    ans = await c.call("rpc", 10.0, method=method, data=data)
    assert ans.get("ref") == c.ref, ans
    return ans


async def reply(c, method, data):
    ans = await rpc(c, method, data)
    assert ans["op"] == "reply", "%s %r answered %r" % (method, data, ans)
    return ans["data"]


def test_mobile_office_tasks_over_rpc_and_pushes(demo):
    ann_tok, bob_tok = demo.token("ann"), demo.token("bob")
    ann_office, bob_office = demo.token("ann", OFFICE), demo.token("bob", OFFICE)

    async def go():
        async with connect(demo, ann_tok) as wa, connect(demo, bob_tok) as wb:
            ann, bob = Cmd(wa, "ann"), Cmd(wb, "bob")
            # A channel token is for its own user only.
            error_msg(await bob.call("subscribe", channel=OFFICE, token=ann_office),
                      "bad_token", bob.ref)
            await bob.subscribe(OFFICE, token=bob_office)
            await ann.subscribe(OFFICE, token=ann_office)
            assert await reply(bob, "tasks.list", None) == {"rev": 0, "tasks": []}

            added = await reply(ann, "tasks.add", {"title": "  Call <Bob>  "})
            task = {"id": 1, "title": "Call <Bob>", "done": False, "by": "ann",
                    "done_by": None, "rev": 1}
            assert added == {"rev": 1, "task": task}
            push = {"channel": OFFICE, "event": "task.added",
                    "data": {"rev": 1, "task": task, "by": "ann"}}
            assert await bob.next() == push
            assert await ann.next() == push
            assert await reply(bob, "tasks.list", {}) == {"rev": 1, "tasks": [task]}

            # bob flips it, then sets it explicitly; ann sees each change.
            done = dict(task, done=True, done_by="bob", rev=2)
            assert await reply(bob, "tasks.toggle", {"id": 1}) == {"rev": 2, "task": done}
            assert await ann.next() == {"channel": OFFICE, "event": "task.changed",
                                        "data": {"rev": 2, "task": done, "by": "bob"}}
            assert await bob.next() == {"channel": OFFICE, "event": "task.changed",
                                        "data": {"rev": 2, "task": done, "by": "bob"}}
            undone = dict(task, done=False, rev=3)
            assert await reply(bob, "tasks.toggle", {"id": 1, "done": False}) == \
                {"rev": 3, "task": undone}
            assert (await ann.next())["data"] == {"rev": 3, "task": undone, "by": "bob"}
            await bob.next()

            # Characters, not bytes: 200 two-byte characters are a valid title.
            long_title = "\u00e9" * 200
            second = (await reply(ann, "tasks.add", {"title": long_title}))["task"]
            assert second["title"] == long_title and second["id"] == 2
            assert (await bob.next())["data"]["task"] == second
            await ann.next()

            # Bad input: the script's own error code and message, nothing stored or pushed.
            bad = [("tasks.add", {"title": ""}), ("tasks.add", {"title": "   "}),
                   ("tasks.add", {"title": "x" * 201}), ("tasks.add", {"title": "a\u0007b"}),
                   ("tasks.add", {"title": 7}), ("tasks.add", None), ("tasks.add", "Call"),
                   ("tasks.toggle", {"id": "1"}), ("tasks.toggle", {"id": 0}),
                   ("tasks.toggle", {"id": 1.5}), ("tasks.toggle", {"id": 1, "done": "yes"}),
                   ("tasks.delete", {}), ("tasks.delete", [1])]
            for method, data in bad:
                error_msg(await rpc(ann, method, data), "bad_input", ann.ref)
            error_msg(await rpc(ann, "tasks.delete", {"id": 99}), "not_found", ann.ref)
            error_msg(await rpc(ann, "tasks.toggle", {"id": 99}), "not_found", ann.ref)
            error_msg(await rpc(ann, "tasks.explode", None), "no_such_method", ann.ref)
            await bob.nothing(0.3)
            listed = await reply(bob, "tasks.list", None)
            assert listed == {"rev": 4, "tasks": [undone, second]}

            # Delete: the reply and the push carry the id and the next revision.
            assert await reply(ann, "tasks.delete", {"id": 1}) == {"rev": 5, "id": 1}
            assert await bob.next() == {"channel": OFFICE, "event": "task.deleted",
                                        "data": {"rev": 5, "id": 1, "by": "ann"}}
            await ann.next()
            assert await reply(ann, "tasks.list", None) == {"rev": 5, "tasks": [second]}

            # Both users at once: every change gets its own revision, none is lost.
            refs = []
            for i in range(6):
                refs.append((ann, await ann.start("rpc", method="tasks.add",
                                                  data={"title": "ann %d" % i})))
                refs.append((bob, await bob.start("rpc", method="tasks.add",
                                                  data={"title": "bob %d" % i})))
            revs = []
            for c, ref in refs:
                ans = await c.answer(ref, 10.0)
                assert ans["op"] == "reply", ans
                revs.append(ans["data"]["rev"])
            assert sorted(revs) == list(range(6, 18))
            pushed = sorted([(await bob.next())["data"]["rev"] for _ in refs])
            assert pushed == list(range(6, 18))
            final = await reply(ann, "tasks.list", None)
            assert final["rev"] == 17 and len(final["tasks"]) == 13
    asyncio.run(asyncio.wait_for(go(), 45))
    assert os.path.getsize(os.path.join(demo.run_dir, "office.sqlite")) > 0


def test_the_office_keeps_who_completed_a_task(demo):
    """done_by: who set done, kept when it is set again, gone when reopened; an office.sqlite
    from before done_by existed gains the column."""
    db = os.path.join(demo.run_dir, "office.sqlite")
    with sqlite3.connect(db) as old:
        old.executescript("""
            CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
                                done INTEGER NOT NULL DEFAULT 0, created_by TEXT NOT NULL,
                                rev INTEGER NOT NULL);
            CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), rev INTEGER NOT NULL);
            INSERT INTO revision VALUES (1, 1);
            INSERT INTO tasks (title, done, created_by, rev) VALUES ('Old and done', 1, 'cy', 1);
        """)
    old.close()

    async def go():
        async with connect(demo, demo.token("ann")) as wa, \
                connect(demo, demo.token("bob")) as wb:
            ann, bob = Cmd(wa, "ann"), Cmd(wb, "bob")
            await ann.subscribe(OFFICE, token=demo.token("ann", OFFICE))
            listed = await reply(bob, "tasks.list", None)
            assert listed["tasks"] == [{"id": 1, "title": "Old and done", "done": True,
                                        "by": "cy", "done_by": None, "rev": 1}]
            task = (await reply(ann, "tasks.add", {"title": "Send the invoice"}))["task"]
            assert task["done_by"] is None
            await ann.next()
            done = (await reply(bob, "tasks.toggle", {"id": task["id"], "done": True}))["task"]
            assert done["done"] is True and done["done_by"] == "bob"
            pushed = await ann.next()
            assert pushed["event"] == "task.changed" and pushed["data"]["by"] == "bob"
            assert pushed["data"]["task"] == done
            again = (await reply(ann, "tasks.toggle", {"id": task["id"], "done": True}))["task"]
            assert again["done_by"] == "bob" and again["rev"] > done["rev"]
            await ann.next()
            reopened = (await reply(ann, "tasks.toggle", {"id": task["id"]}))["task"]
            assert reopened["done"] is False and reopened["done_by"] is None
            await ann.next()
            flipped = (await reply(ann, "tasks.toggle", {"id": task["id"]}))["task"]
            assert flipped["done_by"] == "ann"
            await ann.next()
            final = await reply(bob, "tasks.list", None)
            assert final["tasks"][1] == flipped
    asyncio.run(asyncio.wait_for(go(), 30))


def test_the_rpc_script_answers_only_herald(demo):
    """php-fpm runs rpc.php for anyone who reaches its socket: unsigned requests get 403."""
    body = json.dumps({"type": "rpc", "method": "tasks.list", "user": "ann",
                       "connection": "1", "data": None, "time": int(time.time())}).encode()
    r = fcgi.request(os.path.join(demo.run_dir, "php-fpm.sock"), "POST", "/herald/rpc", body,
                     {"SCRIPT_FILENAME": str(DEMO_DIR / "rpc.php"),
                      "HERALD_SIGNATURE": "0" * 64}, timeout=10)
    assert r.status == 403, r
    assert json.loads(r.body)["code"] == "forbidden"


def test_ctrl_c_stops_herald_php_fpm_and_the_page(demo):
    assert os.path.exists(demo.socket)
    assert len(demo.fpm_pids) >= 3, "php-fpm master and its pool: %r" % demo.fpm_pids
    assert all(alive(p) for p in demo.fpm_pids)
    started = children(demo.proc.pid)
    demo.stop()
    assert demo.proc.returncode == 0, demo.text()
    assert not os.path.exists(demo.socket), "api socket left behind"
    for port in (demo.ws_port, demo.http_port):
        with pytest.raises(OSError):
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2)
    deadline = time.monotonic() + 3
    while any(alive(p) for p in demo.fpm_pids + started) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [(p, proc_stat(p)) for p in demo.fpm_pids + started if alive(p)]
    assert not left, "processes left after Ctrl-C: %r" % left
    assert not os.path.exists(demo.run_dir), "run.sh's temp dir left behind"
    text = demo.text()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in text, text

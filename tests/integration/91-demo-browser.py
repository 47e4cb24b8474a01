"""
91-demo-browser: the three demos of `make run` in a real browser, as a newcomer uses them.
php-client/demo/run.sh runs as in 45-make-run.py (tests/lib/demo.py: its ports moved, its
temp dir under the test's), and headless Chromium (tests/lib/browser.py) opens its pages in
tabs of one browser, each as its own user:

  - notifications: user 42 publishes from the page's form (publish.php, herald_publish())
    and from the banner's PHP command, user 7 broadcasts; 42's list shows each with its
    event name, data, id and time, 7's only the broadcast; the banner's JS line, run in a
    page's console with the banner's token, logs the next publish;
  - team chat: ann and bob in the lobby see each other in the member list and exchange
    messages typed into the form;
  - mobile office: ann adds tasks, bob ticks one off, and both tabs show it "done by bob".

No tab may show a console error or warning, an uncaught exception, a failed request or an
answer of 400 or more (a missing favicon is one), and each page's favicon link answers an
SVG. A screenshot of each demo after its interactions is kept in
$HERALD_TEST_OUT/<build>/screenshots/ (build/test-results/build/screenshots/notifications.png,
chat.png, office.png for build/herald); NAME-failed.png when that part fails.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile

import pytest

from browser import Browser, artifact_path, require_browser
from demo import Demo

ID = re.compile(r"^[0-9a-f]+:[0-9]+$")
STATE = "document.getElementById('state').textContent"
# The notifications list: [{event, id, data, time}], newest first.
RECEIVED = """Array.from(document.querySelectorAll('#received li[data-event]'), (li) => ({
    event: li.dataset.event, id: li.dataset.id,
    shown: li.querySelector('.event').textContent + ' | ' + li.querySelector('.id').textContent,
    data: JSON.parse(li.querySelector('.data').textContent),
    time: li.querySelector('time').textContent}))"""
# The chat: [[who, text]] of the messages, oldest first; the members shown.
MESSAGES = """Array.from(document.querySelectorAll('#messages li:not(.system)'),
    (li) => [li.querySelector('.who').textContent, li.lastChild.textContent])"""
MEMBERS = "Array.from(document.querySelectorAll('#members li'), (li) => li.textContent)"
# The office: [[title, done, who]] of the tasks.
TASKS = """Array.from(document.querySelectorAll('#tasks li[data-id]'), (li) => [
    li.querySelector('.title').textContent, li.querySelector('input').checked,
    li.querySelector('.by').textContent])"""
FAVICON = """fetch(document.querySelector('link[rel=icon]').href)
    .then((r) => [r.status, r.headers.get('content-type')])"""


@pytest.fixture(scope="module")
def demo():
    d = Demo()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def browser():
    require_browser()
    tmp = tempfile.mkdtemp(prefix="herald-demo-browser-%d-" % os.getpid())
    b = None
    try:
        b = Browser(tmp)
        yield b
    finally:
        if b is not None:
            b.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def screenshot(browser, demo, name, tab, capsys):
    """Keep screenshots/NAME.png of `tab` at the end, or NAME-failed.png if the block fails."""
    shot, failed = (artifact_path("screenshots/%s%s.png" % (name, sfx)) for sfx in ("", "-failed"))
    for old in (shot, failed):
        if os.path.exists(old):
            os.remove(old)
    try:
        yield
    except BaseException:
        if browser.proc.poll() is None:
            with contextlib.suppress(BaseException):    # the failure itself matters more
                browser.screenshot(failed, page=tab)
        print("--- run.sh\n%s" % demo.text()[-4000:])
        raise
    browser.screenshot(shot, page=tab)
    with capsys.disabled():
        print("\n91-demo-browser: Chromium %s; screenshot: %s" % (browser.version, shot))


def open_tab(browser, demo, path, tab):
    """Open a demo page in `tab`; wait for its connection; check its favicon."""
    assert browser.open(demo.url(path), page=tab)["status"] == 200
    browser.wait_eval(STATE, lambda s: s == "open", 10, "%s to connect" % path, page=tab)
    assert browser.eval(FAVICON, page=tab) == [200, "image/svg+xml"]


def assert_clean(browser, *tabs):
    """What a visitor's developer tools would show as wrong: nothing, in every tab."""
    for tab in tabs:
        assert browser.problems(tab) == [], "%s: %s\n%s" % (tab, browser.problems(tab),
                                                           browser.log())


def test_notifications(demo, browser, capsys):
    with screenshot(browser, demo, "notifications", "n42", capsys):
        open_tab(browser, demo, "/?user=42", "n42")
        open_tab(browser, demo, "/?user=7", "n7")

        browser.fill("#text", "Your order #1234 has shipped", page="n42")
        browser.click("#publish", page="n42")
        browser.wait_eval("document.getElementById('sent').textContent",
                          lambda t: t == "Published to user 42: delivered to 1 tab.", 5,
                          "publish.php's answer", page="n42")
        got = browser.wait_eval(RECEIVED, lambda r: len(r) == 1, 5, "the notification",
                                page="n42")[0]
        assert got["event"] == "demo.message" and ID.match(got["id"]), got
        assert got["data"] == {"text": "Your order #1234 has shipped"}
        assert got["shown"] == "demo.message | id " + got["id"]
        assert re.search(r"\d", got["time"]), got

        # The PHP command the banner prints, run as printed.
        assert demo.sh(demo.banner_command("publish")) == "1 tab(s)\n"
        got = browser.wait_eval(RECEIVED, lambda r: len(r) == 2, 5, "the banner's publish",
                                page="n42")
        assert [(g["event"], g["data"]) for g in got] == [
            ("order.shipped", {"id": 7}),
            ("demo.message", {"text": "Your order #1234 has shipped"})]
        assert ID.match(got[0]["id"]) and got[0]["id"] != got[1]["id"]

        browser.fill("#text", "Maintenance at 22:00", page="n7")
        browser.click("#broadcast", page="n7")
        for tab, n in (("n42", 3), ("n7", 1)):
            got = browser.wait_eval(RECEIVED, lambda r: len(r) == n, 5, "the broadcast",
                                    page=tab)
            assert got[0]["event"] == "demo.broadcast" and got[0]["id"] == "", got
            assert got[0]["data"] == {"text": "Maintenance at 22:00"}
            assert got[0]["shown"] == "demo.broadcast | no id (broadcast)"
        assert browser.eval("document.getElementById('count').textContent", page="n42") == "3"
        assert_clean(browser, "n42", "n7")

    # The banner's JS line, in the console of a demo page, with the banner's token.
    token = demo.sh(demo.banner_command("token")).strip()
    js = demo.banner_command("js").replace('"TOKEN"', json.dumps(token))
    assert browser.eval("window.fromConsole = " + js + ", 1", page="n7") == 1
    browser.wait_eval("window.fromConsole.state", lambda s: s == "open", 10,
                      "the console's Herald to connect", page="n7")
    assert demo.sh(demo.banner_command("publish")) == "2 tab(s)\n"    # n42's, and this one
    logs = browser.wait(lambda: [e["text"] for e in browser.events
                                 if e["kind"] == "console" and e["page"] == "n7"],
                        bool, 5, "the console's log")
    # Chromium shows the logged object as a preview: "order.shipped {id: 7}".
    assert len(logs) == 1 and re.match(r"^order\.shipped \{id: 7\}$", logs[0]), logs
    assert len(browser.eval(RECEIVED, page="n42")) == 4
    assert_clean(browser, "n42", "n7")


def test_team_chat(demo, browser, capsys):
    with screenshot(browser, demo, "chat", "ann", capsys):
        open_tab(browser, demo, "/chat.php?user=ann", "ann")
        open_tab(browser, demo, "/chat.php?user=bob", "bob")
        browser.wait_eval(MEMBERS, lambda m: m == ["ann (you)", "bob"], 5, "bob in ann's list",
                          page="ann")
        assert browser.eval(MEMBERS, page="bob") == ["ann", "bob (you)"]

        browser.fill("#text", "Hi ann, the invoice for ACME is out", page="bob")
        browser.click("#send-button", page="bob")
        want = [["bob", "Hi ann, the invoice for ACME is out"]]
        browser.wait_eval(MESSAGES, lambda m: m == want, 5, "bob's message", page="ann")
        browser.fill("#text", "Thanks bob! I'll tell them.", page="ann")
        browser.click("#send-button", page="ann")
        want.append(["ann", "Thanks bob! I'll tell them."])
        for tab in ("ann", "bob"):
            browser.wait_eval(MESSAGES, lambda m: m == want, 5, "both messages", page=tab)
        assert browser.eval("document.getElementById('text').value", page="ann") == ""
        assert_clean(browser, "ann", "bob")


def test_mobile_office(demo, browser, capsys):
    with screenshot(browser, demo, "office", "ann-office", capsys):
        open_tab(browser, demo, "/office.php?user=ann", "ann-office")
        open_tab(browser, demo, "/office.php?user=bob", "bob-office")
        for title in ("Send the invoice to ACME", "Book the train to Lyon"):
            browser.fill("#title", title, page="ann-office")
            browser.click("#add-button", page="ann-office")
            browser.wait_eval(TASKS, lambda t: t and t[-1][0] == title, 5, "the new task",
                              page="bob-office")

        browser.check('#tasks li:has-text("Send the invoice") input[type=checkbox]',
                      page="bob-office")
        want = [["Send the invoice to ACME", True, "added by ann \u00b7 done by bob"],
                ["Book the train to Lyon", False, "added by ann"]]
        for tab in ("ann-office", "bob-office"):
            browser.wait_eval(TASKS, lambda t: t == want, 5, "the task done by bob", page=tab)
        notes = browser.eval("document.getElementById('notes').textContent", page="ann-office")
        assert "bob completed \u201cSend the invoice to ACME\u201d" in notes, notes
        assert_clean(browser, "ann-office", "bob-office")

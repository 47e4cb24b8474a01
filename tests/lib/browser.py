"""
browser.py -- one headless Chromium for the browser tests (90-browser.py, 91-demo-browser.py):
tests/js/browser-e2e.js (playwright-core driving Debian's /usr/bin/chromium), steered one
JSON line at a time. Several named tabs share the browser; every console message, uncaught
exception, failed request and HTTP error of each tab is kept, so a test can assert that a
visitor saw none.

    require_browser()                        # fail (never skip) when a part is missing
    b = Browser(tmp_dir)
    b.open(url, page="ann")                  # a tab named "ann" (default "main")
    b.fill("#text", "hi", page="ann"); b.click("#send-button", page="ann")
    b.wait_eval("document.title", lambda t: "x" in t, 5, "the title", page="ann")
    b.problems("ann")                        # console errors, page errors, failed requests
    b.screenshot(artifact_path("screenshots/chat.png"), page="ann")
    b.close()                                # the browser and Chromium's process group

Artifacts go to $HERALD_TEST_OUT/<build dir>/ (default build/test-results/build/ for
build/herald, build-san/ for the sanitized binary).
"""

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from herald import REPO, _pdeathsig, herald_bin
from nginx import read
from procs import children, proc_stat, stop_child

NODE = "/usr/bin/node"
DRIVER = str(REPO / "tests" / "js" / "browser-e2e.js")
PLAYWRIGHT = str(REPO / "tests" / "js" / "node_modules" / "playwright-core" / "package.json")
CHROMIUM = "/usr/bin/chromium"


def require_browser():
    """Assert Chromium and playwright-core are installed (`make deps` installs both)."""
    assert os.access(CHROMIUM, os.X_OK), "no %s: `make deps` installs chromium" % CHROMIUM
    assert os.path.exists(PLAYWRIGHT), \
        "playwright-core is missing: run `npm ci --prefix tests/js` in the repository root"


def artifact_path(name):
    """Where test artifacts go: $HERALD_TEST_OUT (default build/test-results)/<build dir>/."""
    out = os.path.abspath(os.environ.get("HERALD_TEST_OUT")
                          or os.path.join(str(REPO), "build", "test-results"))
    path = os.path.join(out, os.path.basename(os.path.dirname(herald_bin())), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def children_started(pid):
    """[(pid, start time)] of the processes whose parent is `pid`."""
    out = []
    for child in children(pid):
        st = proc_stat(child)
        if st is not None:
            out.append((child, st.start))
    return out


def kill_group(pid, started):
    """
    SIGKILL the process group led by `pid` (playwright starts Chromium as a group leader), if
    `pid` is still the process that began at `started` (not a reused PID).
    """
    st = proc_stat(pid)
    if st is None or st.start != started:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Browser:
    """tests/js/browser-e2e.js: one headless Chromium with named tabs, steered line by line."""

    # What a tab reports on its own; everything else is the answer to a command.
    EVENTS = ("console", "pageerror", "requestfailed", "httperror")

    def __init__(self, tmp):
        self.profile = os.path.join(tmp, "profile")
        os.mkdir(self.profile)
        self.stderr_path = os.path.join(tmp, "node.stderr")
        self.replies = queue.Queue()
        self.events = []                # every EVENTS line, with its "page"
        self.console = []               # the same, as text, for failure messages
        self.page_errors = []
        self.chromium = []              # [(pid, start time)] of the browser node started
        # Everything Chromium and playwright write goes under `tmp`: temp files, and what
        # Chromium keeps in the home directory even with a user data dir (its crash report
        # database under ~/.config, dconf's cache under ~/.cache).
        env = dict(os.environ, TMPDIR=tmp, HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                   XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([NODE, DRIVER, self.profile], cwd=str(REPO), env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, preexec_fn=_pdeathsig)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ready = self._expect("ready", 30)
        self.version = ready.get("version")
        self.chromium = children_started(self.proc.pid)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                msg = json.loads(line)
            except ValueError:
                msg = {"kind": "bad", "error": "not JSON: " + line}
            kind = msg.get("kind")
            if kind not in self.EVENTS:
                self.replies.put(msg)
                continue
            self.events.append(msg)
            if kind == "console":
                text = "%s: %s" % (msg["type"], msg["text"])
            elif kind == "pageerror":
                self.page_errors.append(msg["message"])
                text = "pageerror: " + msg["message"]
            elif kind == "requestfailed":
                text = "request failed: %s %s" % (msg["url"], msg["error"])
            else:
                text = "HTTP %s: %s" % (msg["status"], msg["url"])
            self.console.append("[%s] %s" % (msg.get("page"), text))
        self.replies.put(None)

    def _expect(self, kind, timeout):
        try:
            msg = self.replies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("browser: no %r within %ss\n%s" % (kind, timeout, self.log()))
        if msg is None:
            pytest.fail("browser: node exited while waiting for %r\n%s" % (kind, self.log()))
        if msg.get("kind") != kind:
            pytest.fail("browser: expected %r, got %r\n%s" % (kind, msg, self.log()))
        return msg

    def command(self, cmd, kind, timeout=20):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        return self._expect(kind, timeout)

    def open(self, url, page="main"):
        return self.command({"do": "open", "url": url, "page": page}, "opened")

    def dom(self, page="main"):
        """What tests/integration/web/page.php shows (90-browser.py)."""
        return self.command({"do": "dom", "page": page}, "dom")

    def eval(self, expr, page="main"):
        """The JSON value of the JS expression `expr` in the tab (a Promise is awaited)."""
        return self.command({"do": "eval", "expr": expr, "page": page}, "eval")["value"]

    def fill(self, selector, value, page="main"):
        self.command({"do": "fill", "selector": selector, "value": value, "page": page},
                     "acted")

    def click(self, selector, page="main"):
        self.command({"do": "click", "selector": selector, "page": page}, "acted")

    def check(self, selector, page="main"):
        self.command({"do": "check", "selector": selector, "page": page}, "acted")

    def wait_dom(self, predicate, timeout, what, page="main"):
        """Read page.php until predicate(dom) holds; fail after `timeout` seconds."""
        return self.wait(lambda: self.dom(page), predicate, timeout, what)

    def wait_eval(self, expr, predicate, timeout, what, page="main"):
        """Evaluate `expr` in the tab until predicate(value) holds; fail after `timeout` s."""
        return self.wait(lambda: self.eval(expr, page), predicate, timeout, what)

    def wait(self, read_page, predicate, timeout, what):
        """Call read_page() until predicate(its value) holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = read_page()
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for %s; the page shows %r\n%s"
                            % (what, value, self.log()))
            time.sleep(0.05)

    def problems(self, page):
        """What went wrong in the tab, as a visitor's developer tools would show it: console
        errors and warnings, uncaught exceptions, failed requests, answers of 400 or more."""
        out = []
        for e in self.events:
            if e.get("page") != page:
                continue
            if e["kind"] == "console" and e["type"] not in ("error", "warning"):
                continue
            out.append(e)
        return out

    def screenshot(self, path, page="main"):
        return self.command({"do": "screenshot", "path": path, "page": page}, "screenshot")

    def log(self):
        return "--- page console\n%s\n--- node stderr\n%s" % (
            "\n".join(self.console[-40:]), read(self.stderr_path)[-3000:])

    def close(self):
        """Close the browser; escalate to SIGTERM, SIGKILL, then Chromium's own group."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"do":"exit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                stop_child(self.proc, signal.SIGTERM, 5)
        self.reader.join(5)
        self.proc.stdout.close()
        for pid, started in self.chromium:
            kill_group(pid, started)
        self.chromium = []

"""
demo.py -- php-client/demo/run.sh (what `make run` starts) for the tests that use the demo as
a newcomer would: 45-make-run.py (its pages, tokens, chat, office and Ctrl-C) and
91-demo-browser.py (the three pages in Chromium).

    d = Demo()                         # run.sh in its own process group; waits for its banner
    d.url("/chat.php?user=ann")        # a demo page on its own port
    d.banner_command("token")          # the shell command the banner prints for a token
    d.sh(command)                      # run a printed command as printed, through sh -c
    d.stop(); d.cleanup()              # Ctrl-C (SIGINT to the group); then kill what is left

run.sh gets its ports moved through the environment (the only difference from `make run`),
and TMPDIR pointing into the demo's own dir, so it never collides with a developer's own
`make run`. Processes are signalled by PID (php-fpm by the PIDs found under run.sh), never
by name.
"""

import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from herald import REPO, free_port, herald_bin
from procs import children, proc_stat

DEMO_DIR = REPO / "php-client" / "demo"
RUN_SH = DEMO_DIR / "run.sh"
HERALD_PHP = REPO / "php-client" / "herald.php"


def alive(pid):
    """The process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st.state != "Z"


class Demo:
    """run.sh in its own process group, its output in a file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-demo-")
        self.ws_port = free_port()
        self.http_port = free_port()
        self.socket = os.path.join(self.dir, "api.sock")
        self.out_path = os.path.join(self.dir, "out.log")
        self.env = dict(os.environ, HERALD_LISTEN="127.0.0.1:%d" % self.ws_port,
                        HERALD_SOCKET=self.socket, DEMO_PORT=str(self.http_port),
                        TMPDIR=self.dir)
        self.fpm_pids = []
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(["sh", str(RUN_SH), str(herald_bin())], env=self.env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.cleanup()
            raise

    def wait_ready(self):
        """Wait for the banner and the page server; find php-fpm and the temp dir."""
        deadline = time.monotonic() + 15
        while "Ctrl-C stops" not in self.text():
            assert self.proc.poll() is None, "run.sh exited: %s" % self.text()
            assert time.monotonic() < deadline, "no banner: %s" % self.text()
            time.sleep(0.05)
        # php-fpm puts itself in a session of its own: a Ctrl-C in the terminal never
        # reaches it, so run.sh must stop it, and cleanup() kills it by PID if it did not.
        self.fpm_master = [p for p in children(self.proc.pid)
                           if (proc_stat(p) or ("",))[0].startswith("php-fpm")]
        assert len(self.fpm_master) == 1, "no php-fpm child of run.sh: %s" % self.text()
        self.fpm_pids = self.fpm_master + self.fpm_children()
        m = re.search(r"Temp dir +(\S+)", self.text())
        assert m, self.text()
        self.run_dir = m.group(1)
        assert self.run_dir.startswith(self.dir + "/") and os.path.isdir(self.run_dir)
        self.wait_http()

    def fpm_children(self, want=2, timeout=5):
        """php-fpm's pool children (pm static: at least `want`), waiting for them to fork."""
        deadline = time.monotonic() + timeout
        while True:
            kids = children(self.fpm_master[0])
            if len(kids) >= want or time.monotonic() > deadline:
                return kids
            time.sleep(0.05)

    def text(self):
        """What run.sh printed so far (the banner, and the daemons' logs)."""
        return Path(self.out_path).read_text(errors="replace")

    def banner_command(self, which):
        """
        A shell command exactly as the banner prints it: "token" (the line after "token:"),
        "publish" (the indented block under "Publish from PHP", joined by newlines) or "js".
        """
        lines = self.text().splitlines()
        if which in ("token", "js"):
            for i, line in enumerate(lines):
                m = re.match(r"  %s: +(.*)$" % which, line, re.I)
                if m:
                    # The JS line is a comment, then the code on the next line.
                    return lines[i + 1].strip() if which == "js" else m.group(1)
        else:
            start = lines.index("Publish from PHP (any script, any terminal):") + 1
            block = []
            for line in lines[start:]:
                if not line.strip():
                    break
                block.append(line[2:])
            return "\n".join(block)
        raise AssertionError("no %s command in the banner:\n%s" % (which, self.text()))

    def sh(self, command):
        """
        Run `command` through sh -c in a terminal's environment: none of the HERALD_*
        variables this test gave run.sh, so the command must name what it needs itself.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        r = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                           timeout=20, cwd=self.dir)
        assert r.returncode == 0 and not r.stderr, \
            "%s\nexited %d: %s%s" % (command, r.returncode, r.stdout, r.stderr)
        return r.stdout

    def wait_http(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(self.url("/herald.js"), timeout=2).read()
                return
            except OSError:
                assert time.monotonic() < deadline, "demo page never answered"
                time.sleep(0.05)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def get(self, path):
        """GET a demo page: (status, body text)."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path, form):
        """POST a form to a demo page: (status, body text)."""
        data = urllib.parse.urlencode(form).encode()
        try:
            with urllib.request.urlopen(self.url(path), data, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def token(self, user, channel=None):
        """A token from the demo's token endpoint (a channel token with `channel`)."""
        q = {"user": user}
        if channel:
            q["channel"] = channel
        status, body = self.get("/token.php?" + urllib.parse.urlencode(q))
        assert status == 200, body
        return body

    def php(self, code):
        """Run PHP code with herald.php loaded and the demo's environment."""
        env = dict(self.env, HERALD_SECRET="herald-dev-secret")
        r = subprocess.run(["php", "-d", "error_log=" + os.path.join(self.dir, "php.log"),
                            "-r", "require '%s'; %s" % (HERALD_PHP, code)],
                           env=env, capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode()

    def stop(self):
        """Ctrl-C as a terminal sends it: SIGINT to the whole group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError("run.sh did not stop on SIGINT")
        self.out.close()

    def cleanup(self):
        """Kill whatever is left of run.sh's group and php-fpm, by PID; remove the dir."""
        if self.proc.poll() is None:
            for master in children(self.proc.pid):
                if (proc_stat(master) or ("",))[0].startswith("php-fpm"):
                    self.fpm_pids += [master] + children(master)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        for pid in self.fpm_pids:
            st = proc_stat(pid)
            if st and st.state != "Z" and st.comm.startswith("php-fpm"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not self.out.closed:
            self.out.close()
        subprocess.run(["rm", "-rf", self.dir])

"""
phpfpm.py -- a private php-fpm for the RPC and hook tests: Debian's
/usr/sbin/php-fpm8.2 in the foreground, with no php.ini (-n), a generated
config in its own temp dir, and one pool listening on a unix socket there.

    fpm = PhpFpm().start()
    with fpm.herald({"rpc_hooks": "connect"}) as h:   # rpc_socket, rpc_script, the secret
        ...
    fpm.stop()          # php-fpm is gone: calls to it fail (rpc_unavailable)
    fpm.start()         # back, same socket path, same settings
    fpm.cleanup()       # stop and remove the temp dir

Flags: -F (foreground, our child), -n (no php.ini: only the pool's settings
apply), -y (the generated config), and -R when running as root: without it
php-fpm refuses a pool with no `user` ("user has not been defined"), and a
`user` line would be ignored, with a notice, when not root.

The pool is pm = static (all children ready at once), display_errors off so a
fatal error is a 500 as in production, errors and the workers' stderr in
php-errors.log and fpm.log in the temp dir. The script learns its settings
(the secret, where to record calls) from a JSON file whose path is in the
pool's env[HERALD_TEST_CONF]; configure() rewrites that file atomically, so
it can change while php-fpm runs. calls() reads back what the script
recorded, one JSON object per request.

Processes are stopped by PID only: the master gets SIGTERM (it then stops
its children), then SIGKILL after a timeout, and any child still alive is
killed by its own PID, found in /proc as a child of our master. The master
is started with PR_SET_PDEATHSIG so it dies with the test process.

The `phpfpm` fixture (tests/integration/conftest.py) gives each test module
one php-fpm (PHPFPM_CHILDREN in the module sets the pool size).
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import fcgi
import procs
from herald import REPO, Herald, _pdeathsig
from procs import Child, stop_child

FPM_BIN = "/usr/sbin/php-fpm8.2"
RPC_SCRIPT = str(REPO / "tests" / "integration" / "php" / "rpc.php")


def sign(secret, body):
    """HERALD_SIGNATURE for a body: hex HMAC-SHA256 with the site's secret."""
    if isinstance(body, str):
        body = body.encode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class PhpFpm(Child):
    def __init__(self, children=6, script=RPC_SCRIPT, request_timeout=30):
        self.children = children
        self.script = script
        self.request_timeout = request_timeout
        self.dir = None
        self.proc = None
        self.socket = None
        self.settings = {}
        self.starts = 0

    # -- paths ---------------------------------------------------------

    @property
    def rpc_socket(self):
        """The value for Herald's rpc_socket."""
        return "unix:" + self.socket

    def path(self, name):
        return os.path.join(self.dir, name)

    # -- config --------------------------------------------------------

    def _write_conf(self):
        conf = """\
[global]
pid = {d}/fpm.pid
error_log = {d}/fpm.log
log_level = notice
daemonize = no
process_control_timeout = 2s

[herald-tests]
listen = {sock}
listen.mode = 0666
listen.backlog = 128
pm = static
pm.max_children = {children}
request_terminate_timeout = {rt}s
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
env[HERALD_TEST_CONF] = {d}/rpc.json
access.log = {d}/access.log
access.format = "%{{REQUEST_URI}}e %s %{{mili}}d"
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_log] = {d}/php-errors.log
php_admin_value[error_reporting] = -1
php_admin_value[memory_limit] = 128M
"""
        with open(self.path("fpm.conf"), "w") as f:
            f.write(conf.format(d=self.dir, sock=self.socket, children=self.children,
                                rt=self.request_timeout))

    def configure(self, **settings):
        """
        Merge settings into rpc.json (atomically: the script may be reading
        it). The script uses "secret" and "record"; anything else is for the
        script's own use.
        """
        self.settings.update(settings)
        tmp = self.path("rpc.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.settings, f)
        os.replace(tmp, self.path("rpc.json"))

    # -- lifecycle -----------------------------------------------------

    def start(self, timeout=10.0):
        """Start php-fpm (a fresh temp dir the first time) and wait for its socket."""
        assert self.proc is None, "php-fpm is already running"
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="herald-fpm-t%d-" % os.getpid())
            self.socket = self.path("php.sock")
            self.configure(record=self.path("calls.jsonl"))
            self._write_conf()
        argv = [FPM_BIN, "-F", "-n", "-y", self.path("fpm.conf")]
        if os.geteuid() == 0:
            argv.append("-R")   # as root php-fpm refuses to run a pool as root without it
        self._out = open(self.path("fpm.stderr"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._out, cwd=self.dir, preexec_fn=_pdeathsig)
        self.starts += 1
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("php-fpm exited with status %s:\n%s"
                                       % (self.proc.returncode, self.log_text()))
                if self._socket_answers() and len(self.child_pids()) >= self.children:
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError("php-fpm did not listen on %s within %.0fs:\n%s"
                                       % (self.socket, timeout, self.log_text()))
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def _socket_answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def child_pids(self):
        """PIDs whose parent is our master (its pool children), from /proc."""
        return [] if self.proc is None else procs.children(self.proc.pid)

    def stop(self, timeout=5.0):
        """
        Stop php-fpm: SIGTERM to the master, SIGKILL after `timeout`; children
        still alive after that are killed by PID. Afterwards nothing listens
        on the socket (connecting fails), whether or not the file remains.
        """
        if self.proc is None:
            return
        pool = self.child_pids()
        stop_child(self.proc, signal.SIGTERM, timeout)
        for pid in pool:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        if not self._out.closed:
            self._out.close()
        deadline = time.monotonic() + 2
        while self._socket_answers():
            assert time.monotonic() < deadline, "php-fpm's socket still answers after stop"
            time.sleep(0.02)

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def cleanup(self):
        """Stop php-fpm if running and remove its temp dir."""
        try:
            self.stop()
        finally:
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def herald(self, config=None, workers=2):
        """
        Start a Herald whose RPC and hooks go to this php-fpm (rpc_socket and
        rpc_script added to `config`), and point the script at its secret.
        One Herald at a time per php-fpm: the script knows one secret.
        """
        cfg = dict(config or {}, rpc_socket=self.rpc_socket, rpc_script=self.script)
        h = Herald(config=cfg, workers=workers)
        h.start()
        self.configure(secret=h.secret)
        return h

    # -- what happened -------------------------------------------------

    def _read(self, name):
        try:
            with open(self.path(name), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        """php-fpm's own log, its stderr, and PHP's error log, for failure messages."""
        return "--- fpm.log\n%s--- fpm.stderr\n%s--- php-errors.log\n%s" % (
            self._read("fpm.log"), self._read("fpm.stderr"), self._read("php-errors.log"))

    def php_errors(self):
        return self._read("php-errors.log")

    def calls(self, **match):
        """Every request the script recorded, oldest first; keep those whose fields match."""
        out = []
        # The script appends while we read: a last line without its newline is
        # still being written, and is left for the next look.
        text = self._read("calls.jsonl")
        for line in text[:text.rfind("\n") + 1].splitlines():
            if not line.strip():
                continue
            c = json.loads(line)
            if all(c.get(k) == v for k, v in match.items()):
                out.append(c)
        return out

    def wait_calls(self, n, timeout=3.0, **match):
        """Poll calls(**match) until it holds at least n records; return them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.calls(**match)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    # -- talk to it directly (as Herald would) --------------------------

    def request(self, body, kind="rpc", signature=None, extra_params=None, timeout=5.0):
        """
        One FastCGI request to the script with Herald's parameters, signed with
        the configured secret unless `signature` is given. Returns fcgi.Response.
        """
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if signature is None:
            signature = sign(self.settings["secret"], body)
        params = {
            "SCRIPT_FILENAME": self.script,
            "SCRIPT_NAME": None,
            "DOCUMENT_URI": None,
            "SERVER_SOFTWARE": "herald/test",
            "HERALD_SIGNATURE": signature,
        }
        params.update(extra_params or {})
        return fcgi.request(self.socket, "POST", "/herald/" + kind, body, params, timeout)

"""
herald.py -- start a real Herald for a test, talk to it, and check how it ended.

    with Herald(config={"allow_anonymous": "yes"}) as h:
        tok = h.token("42")
        async with h.connect(tok) as ws:
            assert h.publish(["42"], "order.shipped", {"id": 1}) == 1
            assert await recv_json(ws) == {"event": "order.shipped", "data": {"id": 1}}

Each instance gets its own temp dir holding herald.ini, the API socket and the
daemon's stderr, a free loopback port, and a random secret. stop() (and
leaving the with block) sends SIGTERM, expects exit status 0, and fails the
test if stderr shows a sanitizer report, or any token made by token(), or the
secret. The daemon is started with PR_SET_PDEATHSIG, so it dies with the test
process even if the test runner is killed.

Several sites on one daemon ([site NAME] sections, docs/config.md):

    with Herald(sites={"a": {"ws_path": "/a/ws"}, "b": {"ws_path": "/b/ws"}},
                config={"allow_anonymous": "yes"}) as h:
        a = h.site("a")                      # the helpers below, bound to site a
        async with a.connect(a.token("42")) as ws:
            assert h.publish(["42"], "e", 1, site="a") == 1

Each site gets its own random secret and its own API socket ({dir}/api-NAME.sock)
unless its dict names them; config keys still go under [herald], which then has
no secret and no api_socket of its own. token(), api(), publish(), broadcast(),
publish_channel(), members(), online(), stats(), wait_stat(), connect() and
raw_ws() take site=NAME; without it they use the first site. h.site(NAME)
returns a Site, whose methods are Herald's bound to that site, so
Bystander(h.site("a")) and wscmd.client(h.site("a"), "42") work.
Without sites, config={"secret_file": PATH} replaces the random secret: token() and the
log check use the file's, as for a site's secret_file.
extra_ini= is raw INI text appended to herald.ini as is, and check_config(text)
runs `herald -c FILE --check-config` on a file of that text.

Beside the class: uid() (a user id no other test uses), wait_connections(h, n),
by_user(members), stat(), recv_json(), expect_nothing(), and Bystander; for tests that
measure memory, ASAN_ENV (a small ASan quarantine) and sanitized().

The binary is $HERALD_BIN (absolute, or relative to the current directory or
the repository root), by default build/herald in this repository.
"""

import asyncio
import base64
import ctypes
import hashlib
import hmac
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import websockets.client

import fcgi
import rawws
from procs import Child, stop_child

REPO = Path(__file__).resolve().parents[2]

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")

HS_REASONS = ("bad_request", "not_found", "bad_method", "timeout", "no_upgrade", "bad_key",
              "bad_version", "origin", "too_large", "no_token", "bad_token")


def herald_bin():
    """The daemon binary to test, from $HERALD_BIN or build/herald."""
    b = os.environ.get("HERALD_BIN")
    if not b:
        return str(REPO / "build" / "herald")
    p = Path(b)
    if p.is_absolute():
        return str(p)
    if p.exists():
        return str(p.resolve())
    return str(REPO / p)


# For a test that measures memory: under ASan freed memory waits in a quarantine (256 MiB by
# default) before it is reused, and RSS would count it as held. Harmless for a plain build.
ASAN_ENV = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16")
            .lstrip(":")}


def sanitized():
    """Is the binary under test built with ASan (whose allocator keeps more memory)?"""
    with open(herald_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def make_token(secret, sub, ttl=3600, alg="HS256", header=None, **claims):
    """
    A compact JWS. sub=None or ttl=None leaves that claim out; a claim given
    as None is left out too. `alg` picks both the header's alg (unless a raw
    `header` dict is given) and how it is signed: HS256/HS384/HS512 with
    HMAC, anything else (e.g. "none") with an empty signature.
    """
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    payload = {}
    if sub is not None:
        payload["sub"] = sub
    if ttl is not None:
        payload["exp"] = int(time.time()) + ttl
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signing_input = b64url(json.dumps(hdr, separators=(",", ":"))) + "." + \
        b64url(json.dumps(payload, separators=(",", ":")))
    if alg in _HASHES:
        key = secret.encode() if isinstance(secret, str) else secret
        sig = b64url(hmac.new(key, signing_input.encode(), _HASHES[alg]).digest())
    else:
        sig = ""
    return signing_input + "." + sig


def _read_secret_file(path):
    """A secret_file's secret as Herald reads it (one trailing newline stripped), or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[:-len(end)]
    return text


def _pdeathsig():
    """In the child before exec: die with SIGKILL when the test process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def random_secret():
    """32 random letters and digits: a secret no other instance or site shares."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def uid(prefix="u"):
    """A user id (or a name part) no other test uses: prefix-<10 hex digits>."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class CheckConfig:
    """What `herald -c FILE --check-config` did: returncode, stdout, stderr, the file's text."""

    def __init__(self, returncode, stdout, stderr, text):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.text = text

    def __repr__(self):
        return "CheckConfig(rc=%r, stdout=%r, stderr=%r)" % (self.returncode, self.stdout,
                                                             self.stderr)


def check_config(text, timeout=10.0):
    """
    Write `text` as herald.ini in a fresh temp dir ("{dir}" in it stands for that
    dir), run `herald -c herald.ini --check-config` there, and return a CheckConfig.
    The dir is removed afterwards.
    """
    d = tempfile.mkdtemp(prefix="herald-cc%d-" % os.getpid())
    try:
        text = text.replace("{dir}", d)
        ini = os.path.join(d, "herald.ini")
        with open(ini, "w") as f:
            f.write(text)
        p = subprocess.run([herald_bin(), "-c", ini, "--check-config"], cwd=d,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           preexec_fn=_pdeathsig)
        return CheckConfig(p.returncode, p.stdout.decode("utf-8", "replace"),
                           p.stderr.decode("utf-8", "replace"), text)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Herald(Child):
    def __init__(self, config=None, workers=2, args=None, use_config_file=True, env=None,
                 sites=None, extra_ini=None, nofile=None):
        """
        config: extra [herald] keys ("{dir}" in a value is the temp dir). sites: None
        for the classic single-site file, or {NAME: {per-site key: value}} for one
        [site NAME] section each (a value of None leaves that key out, e.g.
        {"secret": None} for a site without a secret of its own). extra_ini: raw
        text appended to herald.ini. nofile: the daemon's RLIMIT_NOFILE, soft and
        hard (it cannot raise it), set in the child before exec.
        """
        self.nofile = nofile
        self.config = dict(config or {})
        self.sites = None if sites is None else {n: dict(v or {}) for n, v in sites.items()}
        self.extra_ini = extra_ini
        self.secrets = {}       # site name -> its secret (None: not known to the test)
        self.api_sockets = {}   # site name -> its API socket path
        self.workers = workers
        self.args = list(args or [])
        self.use_config_file = use_config_file
        self.env = env
        self.proc = None
        self.dir = None
        self.port = None
        self.secret = None
        self.api_socket = None
        self.ws_url = None
        self.listen = None
        self.returncode = None
        self._tokens = []
        self._final_log = None

    # -- lifecycle -----------------------------------------------------

    def start(self, ready_timeout=10.0):
        """Write herald.ini into a fresh temp dir, start the daemon, wait for "ready"."""
        if not os.access(herald_bin(), os.X_OK):
            raise RuntimeError("no Herald binary at %s (build it, or set HERALD_BIN)"
                               % herald_bin())
        self.dir = tempfile.mkdtemp(prefix="herald-t%d-" % os.getpid())
        self.secret = random_secret()
        self.api_socket = os.path.join(self.dir, "api.sock")
        if self.sites is not None:
            if not self.use_config_file:
                raise ValueError("sites need use_config_file=True")
            if not self.sites:
                raise ValueError("sites= needs at least one site")
            for name, keys in self.sites.items():
                self.secrets[name] = keys["secret"] if "secret" in keys else random_secret()
        try:
            for attempt in range(3):
                self.port = free_port()
                self.listen = "127.0.0.1:%d" % self.port
                if self._spawn(ready_timeout):
                    break
                # The free port was taken between our probe and the bind: retry.
                if attempt == 2 or "in use" not in self.log_text():
                    raise RuntimeError("herald did not become ready (exit status %s):\n%s"
                                       % (self.proc.returncode, self.log_text()))
        except BaseException:
            self.cleanup()
            raise
        self.ws_url = "ws://127.0.0.1:%d%s" % (self.port, self.ws_path())
        return self

    def restart(self, ready_timeout=15.0):
        """
        Start the daemon again after stop(), as an init system restarts a service:
        same temp dir, port, API socket, secret and settings (herald.ini is written
        again from self.config, so a test may change it first).
        """
        assert self.proc is None, "stop it first"
        self._final_log = None
        if not self._spawn(ready_timeout):
            raise RuntimeError("herald did not start again (exit status %s):\n%s"
                               % (self.proc.returncode, self.log_text()))
        return self

    def _settings(self):
        s = {
            "listen": self.listen,
            "api_socket": self.api_socket,
            "secret": self.secret,
            "workers": str(self.workers),
        }
        if self.sites is not None:
            # Each [site] has its own; the [herald] section has none unless config says so.
            del s["api_socket"], s["secret"]
        # "{dir}" in a value stands for this instance's temp dir.
        s.update({k: str(v).replace("{dir}", self.dir) for k, v in self.config.items()})
        if self.sites is None and "secret_file" in self.config and "secret" not in self.config:
            # As for a site: the file's secret is the daemon's (both keys would be an error).
            del s["secret"]
            self.secret = _read_secret_file(s["secret_file"])
        if self.sites is None:
            self.api_socket = s["api_socket"]
        self.listen = s["listen"]
        return s

    def _site_settings(self):
        """{name: {key: value}} for the [site] sections, defaults filled in, None dropped."""
        out = {}
        for name, keys in self.sites.items():
            s = {}
            if "secret" not in keys and "secret_file" not in keys:
                s["secret"] = self.secrets[name]
            if "api_socket" not in keys:
                s["api_socket"] = os.path.join(self.dir, "api-%s.sock" % name)
            s.update({k: str(v).replace("{dir}", self.dir) for k, v in keys.items()
                      if v is not None})
            if "secret_file" in s and "secret" not in s and self.secrets.get(name) is None:
                self.secrets[name] = _read_secret_file(s["secret_file"])
            elif "secret" not in s:
                self.secrets[name] = None
            self.api_sockets[name] = s.get("api_socket")
            out[name] = s
        first = next(iter(self.sites))
        self.api_socket = self.api_sockets[first]
        self.secret = self.secrets[first]
        return out

    def _spawn(self, ready_timeout):
        settings = self._settings()
        if self.use_config_file:
            ini = os.path.join(self.dir, "herald.ini")
            with open(ini, "w") as f:
                f.write("[herald]\n")
                for k, v in settings.items():
                    f.write("%s = %s\n" % (k, v))
                if self.sites is not None:
                    for name, keys in self._site_settings().items():
                        f.write("\n[site %s]\n" % name)
                        for k, v in keys.items():
                            f.write("%s = %s\n" % (k, v))
                if self.extra_ini:
                    f.write("\n" + self.extra_ini.replace("{dir}", self.dir) + "\n")
            argv = [herald_bin(), "-c", ini] + self.args
        else:
            if self.config:
                raise ValueError("config keys need use_config_file=True")
            argv = [herald_bin(), "--listen", settings["listen"], "--api-socket",
                    settings["api_socket"], "--secret", settings["secret"], "--workers",
                    settings["workers"]] + self.args
        env = dict(os.environ)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.env or {})
        self.log_path = os.path.join(self.dir, "herald.log")
        self._log = open(self.log_path, "wb")
        self._out = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._log, cwd=self.dir, env=env,
                                     preexec_fn=self._preexec)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if re.search(r"\bready\b", self.log_text()):
                return True
            if self.proc.poll() is not None:
                self._close_logs()
                return False
            time.sleep(0.02)
        stop_child(self.proc, signal.SIGKILL)
        self._close_logs()
        raise RuntimeError("herald did not log 'ready' within %.0fs:\n%s"
                           % (ready_timeout, self.log_text()))

    def _preexec(self):
        """In the child before exec: die with the test process; the file limit, if set."""
        _pdeathsig()
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def _close_logs(self):
        for f in (getattr(self, "_log", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        """Everything the daemon wrote to stderr so far."""
        if self._final_log is not None:
            return self._final_log
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def check_log(self):
        """Assert stderr has no sanitizer report, no token and no secret."""
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            assert m not in text, "sanitizer report in herald's stderr:\n" + text[-6000:]
        for tok in self._tokens:
            sig = tok.rsplit(".", 1)[-1]
            assert tok not in text, "a token appears in herald's log:\n" + text[-3000:]
            assert len(sig) < 20 or sig not in text, \
                "a token signature appears in herald's log:\n" + text[-3000:]
        assert self.secret is None or self.secret not in text, \
            "the secret appears in herald's log"
        for name, secret in self.secrets.items():
            assert secret is None or secret not in text, \
                "site %s's secret appears in herald's log" % name

    def stop(self, sig=signal.SIGTERM, timeout=10.0, expect_rc=None):
        """
        Signal the daemon and wait for it. For SIGTERM/SIGINT the exit status
        must be 0 (or expect_rc). Always checks the log. Returns the status.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            sig = None  # it was already gone: that is a crash unless expected
        elif not stop_child(self.proc, sig, timeout):
            self._close_logs()
            self._final_log = self.log_text()
            raise AssertionError("herald did not exit within %.0fs of signal %d:\n%s"
                                 % (timeout, sig, self._final_log[-4000:]))
        self.returncode = self.proc.returncode
        self._close_logs()
        self._final_log = self.log_text()
        self.proc = None
        if expect_rc is None and sig in (signal.SIGTERM, signal.SIGINT, None):
            expect_rc = 0
        if expect_rc is not None:
            assert self.returncode == expect_rc, \
                "herald exited with status %s (expected %s)%s:\n%s" % (
                    self.returncode, expect_rc,
                    " before it was stopped" if sig is None else "", self._final_log[-6000:])
        self.check_log()
        return self.returncode

    def cleanup(self):
        """Kill the daemon if still running (by its PID) and remove the temp dir."""
        if self.proc is not None:
            stop_child(self.proc, signal.SIGKILL)
        self._close_logs()
        if self._final_log is None and self.dir:
            self._final_log = self.log_text()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
            else:
                try:
                    self.stop()
                except AssertionError as e:
                    print("also, on stopping herald: %s" % e)
        finally:
            self.cleanup()
        return False

    # -- tokens --------------------------------------------------------

    def token(self, sub, ttl=3600, alg="HS256", secret=None, header=None, site=None, **claims):
        """
        A JWT for this daemon's secret (or `secret`, or site `site`'s secret);
        remembered for the log check.
        """
        if secret is None:
            secret = self.secret if site is None else self.site_secret(site)
        t = make_token(secret, sub, ttl, alg, header, **claims)
        self._tokens.append(t)
        return t

    # -- sites ---------------------------------------------------------

    def site(self, name):
        """A Site: this daemon's helpers bound to site `name`."""
        self._site_keys(name)
        return Site(self, name)

    def _site_keys(self, name):
        if self.sites is None:
            raise ValueError("this Herald was started without sites")
        if name not in self.sites:
            raise KeyError("no site %r (sites: %s)" % (name, ", ".join(self.sites)))
        return self.sites[name]

    def site_secret(self, name):
        """Site `name`'s secret (the one its tokens are signed with)."""
        self._site_keys(name)
        secret = self.secrets.get(name)
        if secret is None:
            raise ValueError("site %s has no secret this test knows" % name)
        return secret

    def site_api_socket(self, name=None):
        """Site `name`'s API socket (the only one without sites; the first site's for None)."""
        if name is None:
            return self.api_socket
        self._site_keys(name)
        return self.api_sockets.get(name) or os.path.join(self.dir, "api-%s.sock" % name)

    def ws_path(self, site=None):
        """
        The WebSocket path of `site` (or of the first site): its ws_path, else the
        one under [herald], else /ws. Without sites always /ws, as before.
        """
        if self.sites is None:
            if site is not None:
                self._site_keys(site)
            return "/ws"
        keys = self.sites[next(iter(self.sites))] if site is None else self._site_keys(site)
        return keys.get("ws_path") or self.config.get("ws_path") or "/ws"

    def site_host(self, site=None):
        """The host a site answers (its `host`, else [herald]'s), or None for any host."""
        if self.sites is None:
            return self.config.get("host") or None
        keys = self.sites[next(iter(self.sites))] if site is None else self._site_keys(site)
        return keys.get("host") or self.config.get("host") or None

    # -- API -----------------------------------------------------------

    def api(self, method, path, body=None, extra_params=None, timeout=5.0, site=None):
        """
        One FastCGI request (to site `site`'s API socket when given). body:
        bytes/str sent as is, anything else as JSON. Returns (status, headers,
        parsed JSON or None).
        """
        if body is None:
            raw = b""
        elif isinstance(body, (bytes, bytearray)):
            raw = bytes(body)
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body).encode()
        r = fcgi.request(self.site_api_socket(site), method, path, raw, extra_params, timeout)
        try:
            parsed = json.loads(r.body) if r.body else None
        except ValueError:
            parsed = None
        return r.status, r.headers, parsed

    def api_ok(self, method, path, body=None, extra_params=None, site=None):
        status, headers, j = self.api(method, path, body, extra_params, site=site)
        assert status == 200, "%s %s -> %d %r" % (method, path, status, j)
        assert headers.get("Content-Type", "").startswith("application/json"), headers
        assert isinstance(j, dict) and j.get("ok") is True, j
        return j

    def publish(self, users, event, data=None, site=None):
        """POST /publish to users; asserts 200 and returns "delivered"."""
        j = self.api_ok("POST", "/publish", {"users": users, "event": event, "data": data},
                        site=site)
        return j["delivered"]

    def broadcast(self, event, data=None, site=None):
        j = self.api_ok("POST", "/publish", {"broadcast": True, "event": event, "data": data},
                        site=site)
        return j["delivered"]

    def publish_channel(self, channel, event, data=None, site=None):
        """POST /publish {"channel": ...}; asserts 200 and returns "delivered"."""
        j = self.api_ok("POST", "/publish", {"channel": channel, "event": event, "data": data},
                        site=site)
        return j["delivered"]

    def members(self, channel, site=None):
        """GET /presence?channel=: the members ({user, info}), sorted by user."""
        j = self.api_ok("GET", "/presence?channel=" + channel, site=site)
        assert j["channel"] == channel, j
        return by_user(j["members"])

    def online(self, user, site=None):
        """GET /presence?user=: (online, connections)."""
        j = self.api_ok("GET", "/presence?user=" + user, site=site)
        assert j["user"] == user, j
        return j["online"], j["connections"]

    def stats(self, site=None):
        return self.api_ok("GET", "/stats", site=site)

    def wait_stat(self, path, expected, timeout=3.0, site=None):
        """Poll /stats until the value at "a.b" equals expected; return the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats(site=site)
            if stat(s, path) == expected or time.monotonic() > deadline:
                return s
            time.sleep(0.05)

    # -- WebSocket -----------------------------------------------------

    def connect(self, token=None, via="query", origin=None, path=None, site=None,
                host_header=None, **kw):
        """
        A websockets client connect() (use with `async with`). via="query"
        puts the token in ?token=, via="protocol" offers the subprotocols
        "herald" and "herald.token.<token>". token=None connects without one.
        path defaults to the site's ws_path ("/ws" without sites); host_header
        (by default the site's `host`, if it has one) is sent as the Host
        header while the TCP connection still goes to 127.0.0.1.
        """
        if path is None:
            path = self.ws_path(site)
        if host_header is None and self.sites is not None:
            host_header = self.site_host(site)
        if host_header is None:
            url = "ws://127.0.0.1:%d%s" % (self.port, path)
        else:
            url = "ws://%s%s" % (host_header, path)
            kw.setdefault("host", "127.0.0.1")
            kw.setdefault("port", self.port)
        subprotocols = None
        if token is not None:
            if via == "query":
                url += "?token=" + token
            elif via == "protocol":
                subprotocols = ["herald", "herald.token." + token]
            else:
                raise ValueError("via must be 'query' or 'protocol'")
        kw.setdefault("open_timeout", 5)
        kw.setdefault("close_timeout", 2)
        return websockets.client.connect(url, subprotocols=subprotocols, origin=origin, **kw)

    def raw(self, timeout=3.0):
        """A rawws.RawWS connected to the WebSocket port (no handshake yet)."""
        return rawws.RawWS(("127.0.0.1", self.port), timeout)

    def raw_ws(self, user=None, token=None, timeout=3.0, site=None):
        """
        A rawws.RawWS with the handshake done, as `user` (a token is made), on
        site `site`'s path and with its Host (when it has one).
        """
        if token is None and user is not None:
            token = self.token(user, site=site)
        path = self.ws_path(site) if self.sites is not None else "/ws"
        if token is not None:
            path += "?token=" + token
        host = self.site_host(site) if self.sites is not None else None
        headers = {"Host": host} if host else None
        return rawws.open_ws(("127.0.0.1", self.port), path, headers=headers, timeout=timeout)


class Site:
    """
    One site of a Herald started with sites=: the Herald's helpers with site=NAME
    filled in, so code written for a Herald (Bystander, wscmd.client) works on it.
    """

    def __init__(self, herald, name):
        self.h = herald
        self.name = name

    @property
    def secret(self):
        return self.h.site_secret(self.name)

    @property
    def api_socket(self):
        return self.h.site_api_socket(self.name)

    @property
    def ws_path(self):
        return self.h.ws_path(self.name)

    @property
    def host(self):
        return self.h.site_host(self.name)

    @property
    def port(self):
        return self.h.port

    def token(self, sub, ttl=3600, alg="HS256", secret=None, header=None, **claims):
        return self.h.token(sub, ttl, alg, secret, header, site=self.name, **claims)

    def api(self, method, path, body=None, extra_params=None, timeout=5.0):
        return self.h.api(method, path, body, extra_params, timeout, site=self.name)

    def api_ok(self, method, path, body=None, extra_params=None):
        return self.h.api_ok(method, path, body, extra_params, site=self.name)

    def publish(self, users, event, data=None):
        return self.h.publish(users, event, data, site=self.name)

    def broadcast(self, event, data=None):
        return self.h.broadcast(event, data, site=self.name)

    def publish_channel(self, channel, event, data=None):
        return self.h.publish_channel(channel, event, data, site=self.name)

    def members(self, channel):
        return self.h.members(channel, site=self.name)

    def online(self, user):
        return self.h.online(user, site=self.name)

    def stats(self):
        return self.h.stats(site=self.name)

    def wait_stat(self, path, expected, timeout=3.0):
        return self.h.wait_stat(path, expected, timeout, site=self.name)

    def connect(self, token=None, via="query", origin=None, path=None, **kw):
        return self.h.connect(token, via, origin, path, site=self.name, **kw)

    def raw(self, timeout=3.0):
        return self.h.raw(timeout)

    def raw_ws(self, user=None, token=None, timeout=3.0):
        return self.h.raw_ws(user, token, timeout, site=self.name)

    def running(self):
        return self.h.running()

    def log_text(self):
        return self.h.log_text()


def stat(s, path):
    """Value at a dotted path in a /stats dict ("handshakes_refused.bad_key")."""
    for part in path.split("."):
        s = s[part]
    return s


def wait_connections(h, n, timeout=3.0):
    """Wait until /stats of h (a Herald or a Site) shows n connections; return those stats."""
    s = h.wait_stat("connections", n, timeout)
    assert s["connections"] == n, "%s has %d connections, expected %d" % (
        "site " + h.name if isinstance(h, Site) else "herald", s["connections"], n)
    return s


def by_user(members):
    """Presence members ({user, info}) sorted by user."""
    return sorted(members, key=lambda m: m["user"])


ID_RE = re.compile(r"^[0-9a-f]{8}:[0-9]+$")


def without_id(msg):
    """
    A message with its history id ("id": "<epoch>:<offset>", docs/protocol.md)
    checked for form and taken out, so tests about something else can compare
    the rest exactly. Messages without one are returned as they are.
    """
    if isinstance(msg, dict) and "id" in msg:
        msg = dict(msg)
        assert ID_RE.match(msg.pop("id")), "bad message id in %r" % (msg,)
    return msg


async def recv_json(ws, timeout=2.0, keep_id=False):
    """The next message on a websockets client, decoded from JSON (id checked and dropped)."""
    msg = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(msg, str), "expected a text frame, got %r" % (msg,)
    msg = json.loads(msg)
    return msg if keep_id else without_id(msg)


async def expect_nothing(ws, timeout=0.3):
    """Assert no message arrives on ws within timeout."""
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return
    raise AssertionError("expected no message, got %r" % (msg,))


class Bystander:
    """
    An innocent client, connected before a test does something bad, that must
    still receive a publish afterwards: proof that the bad input hurt no one
    else. Uses a raw socket so it works from plain (non-async) tests. With
    `address` ((host, port) of a proxy in front of Herald, such as nginx) it
    connects there, to /ws, instead of to Herald's own port.
    """

    def __init__(self, herald, address=None):
        self.h = herald
        self.user = "bystander-" + uuid.uuid4().hex[:12]
        if address is None:
            self.ws = herald.raw_ws(self.user)
        else:
            self.ws = rawws.open_ws(address, "/ws?token=" + herald.token(self.user))
        self.n = 0

    def check(self):
        assert self.h.running(), "herald is no longer running:\n" + self.h.log_text()[-4000:]
        self.n += 1
        data = {"n": self.n, "text": "still here"}
        delivered = self.h.publish([self.user], "bystander.check", data)
        assert delivered == 1, "publish to the bystander delivered %r" % delivered
        f = self.ws.recv_data(timeout=3)
        assert f.opcode == rawws.OP_TEXT and f.fin and not f.masked, f
        assert without_id(json.loads(f.payload)) == {"event": "bystander.check", "data": data}

    def close(self):
        self.ws.close()

"""
96-deploy.py -- the shared host of docs/deploy.md, built from its own files.

One Herald with two sites, shop.example.com and blog.example.com, each with its own secret, API
socket, php-fpm pool and Unix user, behind one nginx:

  deploy/herald.ini              Herald, started as the unit starts it
  deploy/nginx-{shop,blog}.conf  the TLS vhosts (nginx/herald.conf included in each, and
                                 nginx/herald-map.conf once in http{}, by tests/lib/nginx.py)
  deploy/php-fpm-{shop,blog}.conf  both pools in one php-fpm8.2 master, as Debian runs them
  deploy/herald-override.conf    with systemd/herald.service: systemd-analyze verify, and
                                 its SupplementaryGroups= given to Herald

Each file is used as shipped except for a small table of replacements, each checked to occur in
the file, so an edit that breaks the guide breaks this test:
  paths   /etc/herald, /run/herald, /run/php, /var/www, /var/lib/herald, /var/log/nginx,
          /etc/letsencrypt/live -> the same paths under a temp dir;
  ports   443 and 80 -> free ports on 127.0.0.1 (server_name kept: every request carries the
          site's name as SNI and Host);
  users   shop -> www-data, blog -> nobody (group nogroup), herald -> daemon.

What a visitor and each site's PHP see: a visitor of shop with a token from shop's PHP page
(herald_token) receives what shop's PHP publishes (herald_publish, a second request through
nginx); blog's visitor with the same user id receives nothing, and the other way round; each
site's token is refused (401) on the other's host; shop's PHP can neither publish through blog's
API socket (Permission denied, herald_publish false, blog's /stats unchanged) nor read blog's
secret; a process that may open blog's socket but is not in publish_uids gets 403, and so does
root; the sockets have the configured modes and groups; /stats per site as docs/deploy.md reads
it (the PHP CLI as the site's user), and `herald status --site SITE` as the site's user (as
root: each site's 403, exit 1); a name that is no site's host gets 404; SIGHUP reloads as
the unprivileged user (a new secret applies, open connections stay); SIGTERM leaves no socket
behind and keeps the history. And docs/deploy.md shows every deploy/ file verbatim.

Herald runs as systemd/herald.service runs it: as the user herald (here daemon), with the
override's SupplementaryGroups= (here www-data and nogroup), after ExecStartPre's
--check-config; the last test starts it by hand as root, when `user = herald` makes it switch
after binding. Needs root (CI runs the suites as root) for that, and for pools that run as other
users, as on the real host. Every process is stopped by its own PID.
"""

import asyncio
import grp
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import websockets

import fcgi
from herald import (REPO, SANITIZER_MARKERS, _pdeathsig, expect_nothing, free_port, herald_bin,
                    recv_json)
from nginx import Nginx, read
from phpfpm import PhpFpm

DEPLOY = REPO / "deploy"
GUIDE = REPO / "docs" / "deploy.md"
SITES = ("shop", "blog")
HOSTS = {"shop": "shop.example.com", "blog": "blog.example.com"}
# The Unix users and groups of the guide, and who plays them here.
USERS = {"shop": ("www-data", "www-data"), "blog": ("nobody", "nogroup"),
         "herald": ("daemon", "daemon")}
DEBIAN_NGINX = "/etc/nginx"          # snippets/fastcgi-php.conf and fastcgi.conf, from nginx-common

# -- loading the deploy files --------------------------------------------------------------


def deploy_text(name):
    with open(DEPLOY / name) as f:
        return f.read()


def rewrite(name, table, braces=False):
    """
    deploy/<name> with each (old, new) of table replaced; each old must occur in the file.
    braces=True doubles the file's own braces first, for text that goes through str.format.
    """
    text = deploy_text(name)
    if braces:
        text = text.replace("{", "{{").replace("}", "}}")
    for old, new in table:
        assert old in text, "deploy/%s no longer contains %r: update docs/deploy.md and %s" % (
            name, old, os.path.basename(__file__))
        text = text.replace(old, new)
    return text


def path_table(root, *prefixes):
    """Absolute path prefixes moved under root."""
    return [(p, root + p) for p in prefixes]


def user_lines(mapping):
    """INI lines `key = name` whose name is a guide user, as (old, new) on whole lines."""
    return [("\n%s = %s\n" % (k, old), "\n%s = %s\n" % (k, new)) for k, old, new in mapping]


def ini_values(text, key):
    """Every value of `key = value` in an INI text, in order (comments dropped)."""
    return [v.split(" ;")[0].strip()
            for v in re.findall(r"^\s*%s\s*=\s*(.*)$" % re.escape(key), text, re.M)]


def override_groups():
    """The groups deploy/herald-override.conf leaves in SupplementaryGroups= (empty resets)."""
    groups = []
    for value in re.findall(r"^SupplementaryGroups=(.*)$", deploy_text("herald-override.conf"),
                            re.M):
        groups = [] if value.strip() == "" else groups + value.split()
    return groups


# -- the guide shows the files --------------------------------------------------------------

FILE_TAG = re.compile(r"^<!-- file: (\S+) -->$")


def guide_blocks():
    """[(path, block text)] for each fenced block right after a `<!-- file: PATH -->` line."""
    lines = GUIDE.read_text().split("\n")
    out = []
    for i, line in enumerate(lines):
        m = FILE_TAG.match(line)
        if not m:
            continue
        assert i + 1 < len(lines) and lines[i + 1].startswith("```"), \
            "docs/deploy.md:%d: a file tag must be followed by a fenced block" % (i + 1)
        end = lines.index("```", i + 2)
        out.append((m.group(1), "\n".join(lines[i + 2:end]) + "\n"))
    return out


def test_the_guide_shows_every_deploy_file_verbatim():
    blocks = guide_blocks()
    shown = [path for path, _ in blocks]
    for path, text in blocks:
        assert path.startswith("deploy/"), "docs/deploy.md shows %s, not a deploy/ file" % path
        assert (REPO / path).is_file(), "docs/deploy.md shows %s, which does not exist" % path
        assert text == (REPO / path).read_text(), \
            "docs/deploy.md's copy of %s differs from the file" % path
    files = sorted(str(p.relative_to(REPO)) for p in DEPLOY.rglob("*") if p.is_file())
    assert sorted(set(shown)) == files, "deploy/ files not shown in docs/deploy.md: %s" % (
        sorted(set(files) - set(shown)))
    assert len(shown) == len(set(shown)), "a file is shown twice"
    # The command the guide gives for reading a site's counters is the one tested below.
    assert "runuser -u shop -- php -r '%s'" % STATS_PHP in GUIDE.read_text()
    # Any other config block in the guide would be untested.
    fences = re.findall(r"^```(\w+)", GUIDE.read_text(), re.M)
    assert fences.count("ini") + fences.count("nginx") + fences.count("systemd") == len(blocks)
    for name in files:
        head = (REPO / name).read_text()[:1200]
        # deploy/cluster/ (several nodes and Redis) is run by 88-redis-nginx.py instead.
        loader = "88-redis-nginx.py" if name.startswith("deploy/cluster/") else "96-deploy.py"
        assert "tests/integration/" + loader in head, \
            "%s should say in its opening comment that %s loads it" % (name, loader)


def test_blog_files_are_shop_files_for_blog():
    # The two sites differ only by name: a change made to one and not the other is a mistake.
    for kind in ("nginx-%s.conf", "php-fpm-%s.conf"):
        assert deploy_text(kind % "blog") == deploy_text(kind % "shop").replace("shop", "blog")


def test_the_unit_with_the_override_fits_the_sites():
    unit = (REPO / "systemd" / "herald.service").read_text()
    override = deploy_text("herald-override.conf")
    ini = deploy_text("herald.ini")
    # Herald chgrps each API socket to its site's group: it must be in every one of them.
    assert sorted(override_groups()) == sorted(ini_values(ini, "api_socket_group"))
    # The unit's user and directories are the ones herald.ini names.
    assert "User=herald\n" in unit and ini_values(ini, "user") == ["herald"]
    assert "RuntimeDirectory=herald\n" in unit
    assert all(v.startswith("unix:/run/herald/") for v in ini_values(ini, "listen"))
    assert all(v.startswith("/run/herald/") for v in ini_values(ini, "api_socket"))
    assert "StateDirectory=herald\n" in unit
    assert all(v.startswith("/var/lib/herald/") for v in ini_values(ini, "history_file"))
    assert "ExecStartPre=/usr/local/bin/herald -c /etc/herald/herald.ini --check-config" in unit
    d = tempfile.mkdtemp(prefix="herald-deploy-unit-%d-" % os.getpid())
    try:
        with open(os.path.join(d, "herald.service"), "w") as f:
            f.write(unit.replace("/usr/local/bin/herald", herald_bin()))
        os.mkdir(os.path.join(d, "herald.service.d"))
        with open(os.path.join(d, "herald.service.d", "override.conf"), "w") as f:
            f.write(override)
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "herald.service")],
                           capture_output=True, text=True, timeout=60)
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if "herald.service" in line or "override.conf" in line]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- the host ---------------------------------------------------------------------------------

PAGES = {
    # What a site's page does for its visitor: a token signed with this site's secret.
    "token.php": """<?php
require_once '{client}/herald.php';
herald_configure(['secret' => trim(file_get_contents(getenv('HERALD_SECRET_FILE')))]);
header('Content-Type: text/plain');
header('Cache-Control: no-store');
echo herald_token((string) $_GET['user'], 600);
""",
    # What a site's PHP does when something happens for a user.
    "publish.php": """<?php
require_once '{client}/herald.php';
header('Content-Type: application/json');
echo json_encode(['delivered' => herald_publish((string) $_POST['user'], 'note',
                                                ['text' => (string) $_POST['text']])]);
""",
    # The site's own counters, through its own API socket.
    "stats.php": """<?php
require_once '{client}/herald.php';
header('Content-Type: application/json');
echo json_encode((new Herald\\Client())->stats());
""",
}

# Only in shop's web root: shop's PHP trying the other site's socket and secret.
CROSS_PHP = """<?php
require_once '{client}/herald.php';
herald_configure(['socket' => '{socket}']);
$n = herald_publish((string) $_POST['user'], 'note', ['text' => 'from the other site']);
$secret = @file_get_contents('{secret}');
header('Content-Type: application/json');
echo json_encode(['delivered' => $n, 'secret_read' => $secret !== false]);
"""

# What docs/deploy.md runs to read a site's counters (the shop one; the test points it at each).
STATS_PHP = ('require "/usr/local/share/herald/php-client/herald.php"; echo json_encode((new '
             'Herald\\Client(["socket" => "/run/herald/shop.sock"]))->stats()), "\\n";')

# Run as a user who is in blog's group but is not blog: the socket opens, publish_uids refuses.
FOREIGN_CALLER = """
import json, sys
import fcgi
r = fcgi.request(sys.argv[1], "POST", "/publish",
                 json.dumps({"users": ["42"], "event": "note", "data": {"text": "intruder"}}))
print(json.dumps({"status": r.status, "body": r.body.decode()}))
"""


def uid(name):
    return pwd.getpwnam(name).pw_uid


def gid(name):
    return grp.getgrnam(name).gr_gid


def mkdir(path, owner="root", group="root", mode=0o755):
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid(owner), gid(group))
    os.chmod(path, mode)


def proc_ids(pid):
    """(real uid, real gid) of a process, from /proc."""
    with open("/proc/%d/status" % pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])


class Pools(PhpFpm):
    """
    Debian's php-fpm8.2 running the two deploy pools in one master. tests/lib/phpfpm.py starts
    it, waits, and stops it and its children by PID; its config is ours: a [global] section
    that includes the rewritten pool files, as Debian's php-fpm.conf includes pool.d/*.conf.
    (PhpFpm.start() writes no config of its own when the directory is already set.)
    """

    def __init__(self, directory, pools, sockets):
        super().__init__(children=0)
        self.dir = directory
        self.sockets = sockets
        self.socket = sockets[0]
        os.mkdir(self.path("pool.d"))
        for name, text in pools.items():
            with open(self.path("pool.d/%s.conf" % name), "w") as f:
                f.write(text)
        with open(self.path("fpm.conf"), "w") as f:
            f.write("[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n"
                    "process_control_timeout = 2s\ninclude = {d}/pool.d/*.conf\n"
                    .format(d=self.dir))

    def _socket_answers(self):
        for path in self.sockets:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect(path)
            except OSError:
                return False
            finally:
                s.close()
        return True


class Host:
    """Herald, php-fpm and nginx of the guide, under one temp dir standing for /."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="herald-deploy-%d-" % os.getpid())
        os.chmod(self.root, 0o755)
        self.herald = self.fpm = self.nginx = None
        self.secrets = {}
        self.old_secrets = []                  # replaced by test_new_secret_by_reload...
        self.tokens = []                       # every token handed out, to look for in logs
        self.herald_log = self.p("/herald.log")
        self.client = self.p("/usr/local/share/herald/php-client")

    def p(self, path):
        """The temp dir's stand-in for an absolute path of the guide."""
        return self.root + path

    def start(self):
        self._layout()
        self._start_herald()
        self._start_fpm()
        self._start_nginx()
        return self

    # -- what the admin does before starting anything (docs/deploy.md, 1-2) -----------------

    def _layout(self):
        hu, hg = USERS["herald"]
        mkdir(self.p("/etc/herald"))
        mkdir(self.p("/run/herald"), hu, hg, 0o755)          # systemd's RuntimeDirectory=herald
        mkdir(self.p("/run/php"))
        mkdir(self.p("/var/lib/herald"), hu, hg, 0o700)      # StateDirectory=herald
        mkdir(self.p("/var/log/nginx"))
        shutil.copytree(REPO / "php-client" / "src", os.path.join(self.client, "src"))
        shutil.copy(REPO / "php-client" / "herald.php", self.client)
        mkdir(self.p("/pylib"))
        shutil.copy(REPO / "tests" / "lib" / "fcgi.py", self.p("/pylib"))
        for d, _, files in os.walk(self.p("/usr")):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        for site in SITES:
            user, group = USERS[site]
            # openssl rand -hex 32 > /etc/herald/SITE.secret; chown herald:SITE; chmod 0440
            self.secrets[site] = secrets.token_hex(32)
            secret = self.p("/etc/herald/%s.secret" % site)
            with open(secret, "w") as f:
                f.write(self.secrets[site] + "\n")
            os.chown(secret, uid(hu), gid(group))
            os.chmod(secret, 0o440)
            mkdir(self.p("/var/www/%s" % site), user, group, 0o755)
            mkdir(self.p("/var/www/%s/public" % site), user, group, 0o755)
            mkdir(self.p("/var/www/%s/log" % site), user, group, 0o750)
            for name, text in PAGES.items():
                self._page(site, name, text.replace("{client}", self.client))
            self._certificate(HOSTS[site])
        self._page("shop", "cross.php", CROSS_PHP.replace("{client}", self.client).replace(
            "{socket}", self.p("/run/herald/blog.sock")).replace(
            "{secret}", self.p("/etc/herald/blog.secret")))

    def _page(self, site, name, text):
        path = self.p("/var/www/%s/public/%s" % (site, name))
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    def _certificate(self, host):
        d = self.p("/etc/letsencrypt/live/" + host)
        os.makedirs(d)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=" + host, "-addext", "subjectAltName=DNS:" + host,
                        "-keyout", d + "/privkey.pem", "-out", d + "/fullchain.pem"],
                       check=True, capture_output=True, timeout=30)

    # -- Herald --------------------------------------------------------------------------------

    def ini(self):
        """deploy/herald.ini as this host runs it."""
        return rewrite("herald.ini", path_table(self.root, "/run/herald/", "/etc/herald/",
                                                "/var/lib/herald/") + user_lines([
            ("user", "herald", USERS["herald"][0]),
            ("api_socket_group", "shop", USERS["shop"][1]),
            ("publish_uids", "shop", USERS["shop"][0]),
            ("api_socket_group", "blog", USERS["blog"][1]),
            ("publish_uids", "blog", USERS["blog"][0])]))

    def _start_herald(self):
        self.ini_path = self.p("/etc/herald/herald.ini")
        with open(self.ini_path, "w") as f:
            f.write(self.ini())
        os.chmod(self.ini_path, 0o644)
        self.start_herald()

    def start_herald(self, as_root=False):
        """
        Start Herald as systemd/herald.service does: as User=herald, Group=herald, with the
        override's SupplementaryGroups=, after ExecStartPre's --check-config; or, as_root, as
        an admin starting it by hand, when the `user` line makes it switch after binding.
        """
        hu, hg = USERS["herald"]
        if as_root:
            ids = None
        else:
            ids = (uid(hu), gid(hg), [gid(USERS[g][1]) for g in override_groups()])

        def preexec():
            if ids is not None:
                os.setgroups(ids[2])
                os.setgid(ids[1])
                os.setuid(ids[0])
            _pdeathsig()        # after the switch: changing credentials clears it

        r = subprocess.run([herald_bin(), "-c", self.ini_path, "--check-config"],
                           capture_output=True, text=True, timeout=30, cwd=self.root,
                           preexec_fn=preexec)
        assert r.returncode == 0 and "config ok" in r.stdout + r.stderr, \
            "herald --check-config refused deploy/herald.ini:\n" + r.stdout + r.stderr
        log = open(self.herald_log, "ab")
        self.log_start = log.tell()
        self.herald = subprocess.Popen([herald_bin(), "-c", self.ini_path],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       cwd=self.root, preexec_fn=preexec)
        log.close()
        deadline = time.monotonic() + 10
        while not re.search(r"\bready\b", self.herald_text()[self.log_start:]):
            if self.herald.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("herald did not become ready (status %s):\n%s"
                                   % (self.herald.poll(), self.herald_text()))
            time.sleep(0.02)

    def herald_text(self):
        return read(self.herald_log)

    def stop_herald(self):
        """SIGTERM by PID, as systemctl stop does; its exit status (killed after 10 s)."""
        if self.herald is None or self.herald.poll() is not None:
            return self.herald and self.herald.returncode
        self.herald.send_signal(signal.SIGTERM)
        try:
            return self.herald.wait(10)
        except subprocess.TimeoutExpired:
            self.herald.kill()
            self.herald.wait(5)
            return None

    # -- php-fpm and nginx ----------------------------------------------------------------------

    def _start_fpm(self):
        pools = {}
        for site in SITES:
            user, group = USERS[site]
            pools[site] = rewrite("php-fpm-%s.conf" % site, path_table(
                self.root, "/run/php/", "/run/herald/", "/etc/herald/", "/var/www/") +
                user_lines([("user", site, user), ("group", site, group)]))
        mkdir(self.p("/fpm"))
        self.fpm = Pools(self.p("/fpm"), pools,
                         [self.p("/run/php/php8.2-fpm-%s.sock" % s) for s in SITES]).start()

    def _start_nginx(self):
        # The vhosts go through str.format in tests/lib/nginx.py: braces doubled first, then
        # the placeholders it fills ({port}) and ours ({port80}) put in.
        table = [("listen 443 ssl;", "listen 127.0.0.1:{port} ssl;"),
                 ("listen 80;", "listen 127.0.0.1:{port80};")] + path_table(
            self.root, "/etc/letsencrypt/live/", "/var/www/", "/var/log/nginx/", "/run/php/")
        servers = [rewrite("nginx-%s.conf" % site, table, braces=True) for site in SITES]
        self.nginx = Nginx("unix:" + self.p("/run/herald/ws.sock"), "\n".join(servers),
                           port80=free_port())
        # The vhosts include snippets/ relative to nginx's conf dir, as in /etc/nginx: the
        # repository's herald.conf (as tests/lib/nginx.py copied it) and Debian's own PHP ones.
        os.mkdir(os.path.join(self.nginx.tmp, "snippets"))
        shutil.copy(os.path.join(self.nginx.tmp, "herald.conf"),
                    os.path.join(self.nginx.tmp, "snippets", "herald.conf"))
        for name in ("snippets/fastcgi-php.conf", "fastcgi.conf"):
            src = os.path.join(DEBIAN_NGINX, name)
            assert os.path.exists(src), "%s is missing: Debian's nginx-common ships it" % src
            shutil.copy(src, os.path.join(self.nginx.tmp, name))
        self.nginx.start()
        self.port = self.nginx.port
        self.port80 = self.nginx.fmt["port80"]
        self.tls = ssl.create_default_context()
        for site in SITES:
            self.tls.load_verify_locations(
                self.p("/etc/letsencrypt/live/%s/fullchain.pem" % HOSTS[site]))

    # -- a visitor's requests ---------------------------------------------------------------------

    def request(self, site, method, path, form=None, headers=None, tls=True):
        """One request to https://<site><path> (SNI and Host: the site's name) via nginx."""
        if tls:
            conn = SiteConnection(self.port, HOSTS[site], self.tls)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port80, timeout=10)
        hdrs = {"Host": HOSTS[site]}
        hdrs.update(headers or {})
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, hdrs)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def php(self, site, page, form=None, query=""):
        """A PHP page of the site; its body, after asserting 200."""
        status, _, body = self.request(site, "POST" if form else "GET", "/" + page + query,
                                       form)
        assert status == 200, "%s %s answered %d: %r\n%s" % (site, page, status, body[:300],
                                                            self.logs())
        return body.decode()

    def token(self, site, user):
        tok = self.php(site, "token.php", query="?user=" + user)
        self.tokens.append(tok)
        return tok

    def publish(self, site, user, text):
        return json.loads(self.php(site, "publish.php", {"user": user, "text": text}))["delivered"]

    def stats(self, site):
        return json.loads(self.php(site, "stats.php"))

    def connect(self, site, token):
        """A visitor's WebSocket: wss://<site>/ws through nginx, token as the subprotocol."""
        return websockets.connect(
            "wss://%s:%d/ws" % (HOSTS[site], self.port), host="127.0.0.1", port=self.port,
            ssl=self.tls, server_hostname=HOSTS[site], origin="https://" + HOSTS[site],
            subprotocols=["herald", "herald.token." + token], open_timeout=5)

    def logs(self):
        out = ["--- herald\n" + self.herald_text()[-3000:]]
        if self.fpm is not None and self.fpm.dir:
            out.append(self.fpm.log_text()[-2000:])
        for site in SITES:
            out.append("--- %s php errors\n%s" % (
                site, read(self.p("/var/www/%s/log/php-error.log" % site))[-1500:]))
        if self.nginx is not None:
            out.append("--- nginx\n" + self.nginx.errors()[-2000:])
        return "\n".join(out)

    def cleanup(self):
        try:
            if self.nginx is not None:
                self.nginx.cleanup()
            if self.fpm is not None:
                self.fpm.stop()
        finally:
            self.stop_herald()
            shutil.rmtree(self.root, ignore_errors=True)


class SiteConnection(http.client.HTTPSConnection):
    """HTTPS to nginx on 127.0.0.1 with the site's name as SNI, as a browser would send it."""

    def __init__(self, port, server_name, context):
        super().__init__("127.0.0.1", port, context=context, timeout=10)
        self.server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)


@pytest.fixture(scope="module")
def host():
    assert os.geteuid() == 0, \
        "96-deploy needs root: its php-fpm pools run as www-data and nobody, and Herald " \
        "switches from root to daemon after binding, as on the host docs/deploy.md describes"
    h = Host()
    try:
        h.start()
    except BaseException:
        print(h.logs())
        h.cleanup()
        raise
    yield h
    h.cleanup()


def refused(h, site, token, name=None):
    """A handshake on site's /ws with token that must fail: (status, JSON body)."""
    status, _, body = h.request(site, "GET", "/ws", headers={
        "Host": name or HOSTS[site], "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": "https://" + HOSTS[site],
        "Sec-WebSocket-Protocol": "herald, herald.token." + token})
    return status, json.loads(body)


# -- the tests ----------------------------------------------------------------------------------


def test_sockets_and_processes_are_as_configured(host):
    ws = os.stat(host.p("/run/herald/ws.sock"))
    assert ws.st_mode & 0o777 == 0o666                               # listen_mode
    hu, hg = USERS["herald"]
    assert ws.st_uid == uid(hu)
    for site in SITES:
        st = os.stat(host.p("/run/herald/%s.sock" % site))
        assert st.st_mode & 0o777 == 0o660, (site, oct(st.st_mode))   # api_socket_mode
        assert st.st_gid == gid(USERS[site][1]), (site, st.st_gid)    # api_socket_group
        assert st.st_uid == uid(hu), (site, st.st_uid)
    assert proc_ids(host.herald.pid) == (uid(hu), gid(hg))
    # Each pool's PHP runs as its site's user (ondemand: the children of earlier requests).
    for site in SITES:
        host.token(site, "probe")
    users = {proc_ids(pid) for pid in host.fpm.child_pids()}
    for site in SITES:
        assert (uid(USERS[site][0]), gid(USERS[site][1])) in users, (site, users)
    assert users <= {(uid(USERS[s][0]), gid(USERS[s][1])) for s in SITES}, users


def test_plain_http_is_sent_to_https(host):
    status, headers, _ = host.request("shop", "GET", "/token.php?user=1", tls=False)
    assert status == 301 and headers["Location"] == "https://shop.example.com/token.php?user=1"


def test_each_sites_php_reaches_its_own_visitors_only(host, run):
    user = "42"                                  # the same id on both sites: two people

    async def scenario():
        async with host.connect("shop", host.token("shop", user)) as shop, \
                host.connect("blog", host.token("blog", user)) as blog:
            assert shop.subprotocol == blog.subprotocol == "herald"
            before = {s: host.stats(s) for s in SITES}
            assert host.publish("shop", user, "your order shipped") == 1
            assert await recv_json(shop) == {"event": "note",
                                             "data": {"text": "your order shipped"}}
            await expect_nothing(blog, 1.0)
            assert host.publish("blog", user, "a reply to your comment") == 1
            assert await recv_json(blog) == {"event": "note",
                                             "data": {"text": "a reply to your comment"}}
            await expect_nothing(shop, 1.0)
            after = {s: host.stats(s) for s in SITES}
            for s in SITES:                      # /stats is per site
                assert after[s]["published"] - before[s]["published"] == 1, (s, after[s])
                assert after[s]["delivered"] - before[s]["delivered"] == 1, (s, after[s])
                assert after[s]["connections"] == 1, (s, after[s])

    run(scenario())


def test_a_token_of_one_site_is_refused_on_the_other(host, run):
    for site, other in (("shop", "blog"), ("blog", "shop")):
        status, body = refused(host, site, host.token(other, "42"))
        assert (status, body) == (401, {"ok": False, "error": "bad_token"}), (site, status, body)

    async def through_websockets():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with host.connect("shop", host.token("blog", "42")):
                pass
        return e.value.status_code

    assert run(through_websockets()) == 401


def test_a_plain_get_of_ws_reaches_herald(host):
    # docs/deploy.md, "Checking it": curl -s https://shop.example.com/ws
    for site in SITES:
        status, _, body = host.request(site, "GET", "/ws")
        assert (status, json.loads(body)) == (400, {"ok": False, "error": "no_upgrade"}), site


def test_a_name_that_is_no_sites_host_gets_404(host):
    # nginx sends www.shop.example.com to its default server (shop's, the first), and passes the
    # name on; Herald has no site for it.
    status, body = refused(host, "shop", host.token("shop", "42"), name="www.shop.example.com")
    assert (status, body) == (404, {"ok": False, "error": "not_found"}), (status, body)


def test_shop_php_cannot_publish_through_blog_socket_or_read_blog_secret(host, run):
    async def scenario():
        async with host.connect("blog", host.token("blog", "7")) as blog:
            before = host.stats("blog")
            got = json.loads(host.php("shop", "cross.php", {"user": "7"}))
            assert got == {"delivered": False, "secret_read": False}, got
            await expect_nothing(blog, 1.0)
            after = host.stats("blog")
            for key in ("published", "delivered", "api_errors"):
                assert after[key] == before[key], (key, before[key], after[key])

    run(scenario())
    log = read(host.p("/var/www/shop/log/php-error.log"))
    assert "herald: publish failed:" in log and "Permission denied" in log, log


def test_publish_uids_refuses_a_caller_that_can_open_the_socket(host, run):
    # A user in blog's group (the socket opens) who is not blog (publish_uids): 403.
    async def scenario():
        async with host.connect("blog", host.token("blog", "42")) as blog:
            before = host.stats("blog")
            r = subprocess.run(
                ["/usr/bin/python3", "-c", FOREIGN_CALLER, host.p("/run/herald/blog.sock")],
                user="bin", group="bin", extra_groups=[USERS["blog"][1]], cwd=host.root,
                env={"PYTHONPATH": host.p("/pylib"), "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True, timeout=20)
            assert r.returncode == 0, r.stderr
            got = json.loads(r.stdout)
            assert got["status"] == 403, got
            assert json.loads(got["body"])["ok"] is False, got
            await expect_nothing(blog, 1.0)
            after = host.stats("blog")
            assert after["published"] == before["published"], after

    run(scenario())


def test_stats_of_each_site_as_the_guide_reads_them(host):
    # docs/deploy.md, as root: runuser -u SITE -- php -r '<STATS_PHP for /run/herald/SITE.sock>'
    for site in SITES:
        code = STATS_PHP.replace("/usr/local/share/herald/php-client", host.client).replace(
            "/run/herald/shop.sock", host.p("/run/herald/%s.sock" % site))
        r = subprocess.run(["runuser", "-u", USERS[site][0], "--", "php", "-r", code],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
                           cwd=host.root)
        assert r.returncode == 0, r.stdout + r.stderr
        stats = json.loads(r.stdout)
        assert stats["ok"] is True and "published" in stats, stats
    # root is in no site's publish_uids: it may read /stats, never publish.
    for site in SITES:
        sock = host.p("/run/herald/%s.sock" % site)
        r = fcgi.request(sock, "GET", "/stats")
        assert r.status == 200 and json.loads(r.body)["site"] == site, (site, r)
        r = fcgi.request(sock, "POST", "/publish",
                         json.dumps({"users": ["1"], "event": "e", "data": 1}).encode())
        assert r.status == 403 and json.loads(r.body)["ok"] is False, (site, r)
        assert "may only read /health, /stats and /metrics" in json.loads(r.body)["error"], r


def test_herald_status_of_each_site_as_the_guide_runs_it(host):
    # docs/deploy.md, "herald status": runuser -u $site -- herald status --site $site
    for site in SITES:
        r = subprocess.run(["runuser", "-u", USERS[site][0], "--", herald_bin(), "status", "-c",
                            host.ini_path, "--site", site], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20, cwd=host.root)
        assert (r.returncode, r.stderr) == (0, ""), r.stdout + r.stderr
        head, row = r.stdout.splitlines()[:2]
        assert head.split()[:3] == ["SITE", "UPTIME", "CONNS"], r.stdout
        assert row.split()[0] == site and "error:" not in row, r.stdout
    # root is in no site's publish_uids, yet it may read every site's figures: the admin's
    # `herald status` (all sites) works as root.
    r = subprocess.run([herald_bin(), "status", "-c", host.ini_path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20, cwd=host.root)
    assert (r.returncode, r.stderr) == (0, ""), r.stdout + r.stderr
    table = r.stdout.split("\n\n")[0].splitlines()[1:]   # the rows, before the error lists
    rows = {line.split()[0]: line for line in table}
    for site in SITES:
        assert site in rows and "error:" not in rows[site], r.stdout


def test_new_secret_by_reload_then_stop_as_systemd_does(host, run):
    # docs/deploy.md: a new secret is written into the file, then `systemctl reload herald`
    # (SIGHUP): Herald reads it again as the unprivileged user (the file is herald's, group
    # SITE, 0440). The open connection stays; the old token is refused from then on; PHP signs
    # with the new secret at once.
    path = host.p("/etc/herald/shop.secret")

    async def scenario():
        old = host.token("shop", "9")
        async with host.connect("shop", old) as before:
            host.old_secrets.append(host.secrets["shop"])
            host.secrets["shop"] = secrets.token_hex(32)
            with open(path, "w") as f:               # as `openssl rand -hex 32 > FILE`
                f.write(host.secrets["shop"] + "\n")
            st = os.stat(path)
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (
                uid(USERS["herald"][0]), gid(USERS["shop"][1]), 0o440)
            reloads = host.herald_text().count("configuration reloaded")
            host.herald.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while host.herald_text().count("configuration reloaded") == reloads:
                assert "SIGHUP:" not in host.herald_text(), host.herald_text()
                assert time.monotonic() < deadline, "no reload in the log:\n" + host.herald_text()
                await asyncio.sleep(0.05)
            assert refused(host, "shop", old) == (401, {"ok": False, "error": "bad_token"})
            async with host.connect("shop", host.token("shop", "9")) as after:
                assert host.publish("shop", "9", "after the reload") == 2
                for ws in (before, after):
                    assert await recv_json(ws) == {"event": "note",
                                                   "data": {"text": "after the reload"}}

    run(scenario())
    # systemctl stop: SIGTERM; exit 0, the sockets gone, history kept for the next start.
    assert host.stop_herald() == 0, host.herald_text()
    for name in ("ws", "shop", "blog"):
        assert not os.path.lexists(host.p("/run/herald/%s.sock" % name)), name
    assert os.path.exists(host.p("/var/lib/herald/history")), "no history_file written"
    text = host.herald_text()
    for marker in SANITIZER_MARKERS:
        assert marker not in text, text[-6000:]
    for secret in list(host.secrets.values()) + host.old_secrets:
        assert secret not in text, "a secret in Herald's log"
    logs = text + "".join(read(os.path.join(host.nginx.tmp, n)) for n in os.listdir(
        host.nginx.tmp) if n.endswith(".log")) + "".join(
        read(host.p("/var/log/nginx/%s.access.log" % s)) for s in SITES)
    for tok in host.tokens:
        assert tok.rsplit(".", 1)[-1] not in logs, "a token in a log"


def test_started_by_hand_as_root_it_switches_to_user(host, run):
    # `herald -c /etc/herald/herald.ini` typed as root: it binds, gives each API socket to its
    # site's group, then runs as `user`. (Its PR_SET_PDEATHSIG is cleared by that switch: it is
    # stopped by PID below, or by the fixture.)
    if host.herald.poll() is None:                 # when run on its own
        assert host.stop_herald() == 0, host.herald_text()
    host.start_herald(as_root=True)
    hu, hg = USERS["herald"]
    assert proc_ids(host.herald.pid) == (uid(hu), gid(hg)), "Herald did not switch to `user`"
    for site in SITES:
        assert os.stat(host.p("/run/herald/%s.sock" % site)).st_gid == gid(USERS[site][1])

    async def scenario():
        async with host.connect("blog", host.token("blog", "5")) as blog:
            assert host.publish("blog", "5", "by hand") == 1
            assert await recv_json(blog) == {"event": "note", "data": {"text": "by hand"}}

    run(scenario())
    assert host.stop_herald() == 0, host.herald_text()
    for name in ("ws", "shop", "blog"):
        assert not os.path.lexists(host.p("/run/herald/%s.sock" % name)), name

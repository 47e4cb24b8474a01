"""
test_package.py -- the Debian package, built by `make deb`, on a brand-new Debian 12.

Run once by tests/run.sh (as root: it builds a root with mmdebstrap and chroots into it):

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/package

The tests run in order, each on what the one before left (a failed step fails the rest):

  1. `make deb` gives build/herald_<HERALD_VERSION>-<rev>_amd64.deb with the files a host
     needs where Debian puts them; lintian reports no error.
  2. A fresh bookworm minbase root (tests/lib/debroot.py) with php-cli: `dpkg -i` alone
     fails on the missing libraries, `apt-get -f install` completes it.
  3. What postinst made: the herald user, /etc/herald/secret (random, root:herald 0640),
     the conffile; herald(8) names every option of `herald --help`;
     `herald --check-config -c /etc/herald/herald.ini` passes as installed.
  4. Herald started as the installed unit says (its ExecStartPre and ExecStart, as its
     User, Group and SupplementaryGroups, in its RuntimeDirectory), on a free TCP port
     given as a flag: a WebSocket client on the host's loopback with a token signed with
     the generated secret receives what PHP CLI in the root publishes through PHP's
     include path as www-data; a user outside www-data cannot publish. SIGTERM drains it
     (exit 0, its sockets removed).
  5. Installing the same package again keeps the secret and the user.
  6. `apt-get remove` keeps the configuration; `apt-get purge` then leaves nothing of
     Herald's: every path in the root is as before the install, with its mode and owner
     (apt's and dpkg's own state and logs, /run and the files of the libraries apt pulled
     in aside), and the user databases differ only by the herald user and group, which
     purge keeps on purpose (debian/postrm says why).

Every step is bounded by a timeout; the root is deleted at the end (kept for nothing).
"""

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

TREE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TREE / "tests" / "lib"))

from debroot import DebRoot  # noqa: E402
from herald import free_port, make_token  # noqa: E402
from rawws import next_json, open_ws  # noqa: E402

ROOT_PARENT = os.environ.get("HERALD_PKG_ROOT_DIR", "/var/tmp")

# What apt and dpkg keep about themselves and log: not files of Herald's. And /run, a
# tmpfs on a booted system (adduser leaves its lock there); /run/herald is checked apart.
STATE_DIRS = ("var/lib/dpkg", "var/lib/apt", "var/cache/apt", "var/cache/debconf",
              "var/cache/ldconfig", "var/log", "run")

# The user databases: compared line by line instead (the herald user and group stay), and
# the backups ("/etc/shadow-") useradd and groupadd write when they add them.
USER_DBS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
USER_DB_BACKUPS = {db + "-" for db in USER_DBS}

# Paths the package must install (dpkg-deb -c), beside the binary's libraries.
PACKAGE_FILES = (
    "/usr/sbin/herald",
    "/usr/share/man/man8/herald.8.gz",
    "/lib/systemd/system/herald.service",
    "/lib/systemd/system/herald@.service",
    "/etc/herald/herald.ini",
    "/usr/share/php/Herald/herald.php",
    "/usr/share/php/Herald/src/Client.php",
    "/usr/share/herald/js/herald.js",
    "/usr/share/herald/nginx/herald.conf",
    "/usr/share/herald/nginx/herald-map.conf",
    "/usr/share/doc/herald/copyright",
    "/usr/share/doc/herald/changelog.Debian.gz",
    "/usr/share/doc/herald/examples/herald.ini.example",
)


def sh(argv, timeout, cwd=TREE, check=True):
    """Run a host command; asserts exit 0 unless check=False."""
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s\n%s" % (" ".join(argv), p.returncode,
                                                       p.stdout[-4000:], p.stderr[-4000:]))
    return p


def herald_version():
    """HERALD_VERSION of lib/cfg/cfg.h."""
    m = re.search(r'^#define HERALD_VERSION "([^"]+)"', (TREE / "lib/cfg/cfg.h").read_text(),
                  re.M)
    assert m, "no HERALD_VERSION in lib/cfg/cfg.h"
    return m.group(1)


class Stage:
    """What the steps so far made: each test asserts the one it needs."""
    deb = None            # the built package's path
    root = None           # the DebRoot
    before = None         # the root's files before the install
    before_pkgs = None    # the packages installed before it
    before_users = None   # the user databases' lines before it
    installed = False
    secret = None
    ran = False


@pytest.fixture(scope="module")
def stage():
    s = Stage()
    yield s
    if s.root is not None:
        s.root.remove()


def installed_packages(root):
    """The names of the packages installed in the root."""
    out = root.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\\n"],
                   timeout=60).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("ii")}


def user_lines(root):
    """{database: set of its lines} for the root's user databases."""
    return {db: set(Path(root.file(db)).read_text().splitlines()) for db in USER_DBS}


def unit_service(root, name):
    """The [Service] keys of an installed unit: {key: [values in order]}."""
    keys, section = {}, None
    for line in Path(root.file("/lib/systemd/system/" + name)).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def test_make_deb_builds_the_package(stage):
    sh(["make", "deb"], timeout=1800)
    version = herald_version()
    debs = sorted((TREE / "build").glob("herald_*_amd64.deb"))
    assert len(debs) == 1, debs
    assert re.fullmatch(r"herald_%s-[0-9]+_amd64\.deb" % re.escape(version), debs[0].name), \
        "%s is not version %s" % (debs[0].name, version)
    fields = sh(["dpkg-deb", "-f", str(debs[0]), "Package", "Depends", "Recommends"],
                timeout=30).stdout
    assert "Package: herald" in fields
    for lib in ("libev4", "libfcgi0ldbl", "libjansson4", "libssl3", "libinih1", "libhiredis"):
        assert lib in fields, "Depends lacks %s (dpkg-shlibdeps):\n%s" % (lib, fields)
    assert "adduser" in fields, fields
    listing = sh(["dpkg-deb", "-c", str(debs[0])], timeout=30).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    missing = [p for p in PACKAGE_FILES if p not in paths]
    assert not missing, "not in the package: %s" % missing
    js = {p.name for p in (TREE / "php-client/js").iterdir() if p.is_file()}
    assert js <= {Path(p).name for p in paths if p.startswith("/usr/share/herald/js/")}
    stage.deb = debs[0]


def test_lintian_reports_no_error(stage):
    assert stage.deb is not None, "no package (the build failed)"
    changes = stage.deb.with_suffix(".changes")
    assert changes.exists(), changes
    p = sh(["lintian", "--display-info", "--pedantic", str(changes)], timeout=600,
           check=False)
    print(p.stdout)
    errors = [line for line in p.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "lintian errors:\n" + p.stdout
    assert p.returncode == 0, "lintian exited %d:\n%s\n%s" % (p.returncode, p.stdout,
                                                             p.stderr)


def test_installs_on_a_fresh_debian_12(stage):
    assert stage.deb is not None, "no package (the build failed)"
    stage.root = root = DebRoot.build(ROOT_PARENT, timeout=900)
    root.run(["apt-get", "update", "-q"], timeout=600)
    root.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "php-cli"],
             timeout=900)
    stage.before = root.files(STATE_DIRS)
    stage.before_pkgs = installed_packages(root)
    stage.before_users = user_lines(root)
    assert not any(line.startswith("herald:") for line in stage.before_users["/etc/passwd"])

    deb_in_root = "/tmp/" + stage.deb.name
    Path(root.file(deb_in_root)).write_bytes(stage.deb.read_bytes())
    p = root.run(["dpkg", "-i", deb_in_root], timeout=300, check=False)
    assert p.returncode != 0, "dpkg -i succeeded without herald's libraries:\n" + p.stdout
    assert "dependency problems" in p.stderr, p.stderr
    root.run(["apt-get", "-f", "install", "-y", "-q"], timeout=900)
    os.unlink(root.file(deb_in_root))
    status = root.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", "herald"],
                      timeout=60).stdout
    assert status.startswith("install ok installed %s-" % herald_version()), status
    stage.installed = True


def test_postinst_made_user_secret_and_conffile(stage):
    assert stage.installed, "herald is not installed (an earlier step failed)"
    root = stage.root
    passwd = root.run(["getent", "passwd", "herald"], timeout=30).stdout.split(":")
    assert passwd[6].strip() == "/usr/sbin/nologin", passwd
    assert int(passwd[2]) < 1000, "herald is not a system user: %s" % passwd
    gid = int(root.run(["getent", "group", "herald"], timeout=30).stdout.split(":")[2])

    st = os.stat(root.file("/etc/herald/secret"))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid), \
        "secret is %o %d:%d" % (st.st_mode & 0o777, st.st_uid, st.st_gid)
    text = Path(root.file("/etc/herald/secret")).read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", text), "secret is not 64 hex digits"
    stage.secret = text.strip()

    st = os.stat(root.file("/var/lib/herald"))
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, int(passwd[2]))

    conffiles = root.run(["dpkg-query", "-W", "-f", "${Conffiles}", "herald"],
                         timeout=30).stdout
    assert "/etc/herald/herald.ini" in conffiles, conffiles
    assert "secret" not in conffiles, "the generated secret must not be a conffile"
    ini = Path(root.file("/etc/herald/herald.ini")).read_text()
    assert re.search(r"^secret_file = /etc/herald/secret$", ini, re.M)
    assert not re.search(r"^secret\s*=", ini, re.M), "the package ships a secret"
    assert os.stat(root.file("/etc/herald/herald.ini")).st_mode & 0o777 == 0o644


def test_man_page_names_every_option(stage):
    assert stage.installed, "herald is not installed (an earlier step failed)"
    root = stage.root
    help_text = root.run(["/usr/sbin/herald", "--help"], timeout=30).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text))
    options |= set(re.findall(r"(?<![\w-])(-[a-z])\b", help_text))
    # Subcommands: a word after "herald" on a usage line that is no option or placeholder.
    subcommands = set(re.findall(r"^\s*(?:usage:)?\s*herald ([a-z][a-z-]*)\b", help_text, re.M))
    assert "--check-config" in options and "--listen" in options, help_text
    with gzip.open(root.file("/usr/share/man/man8/herald.8.gz"), "rt") as f:
        man = f.read().replace("\\-", "-")
    missing = sorted(o for o in options | subcommands
                     if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), man))
    assert not missing, "herald(8) does not name: %s" % missing
    th = next(line for line in man.splitlines() if line.startswith(".TH "))
    assert '"herald %s"' % herald_version() in th, "herald(8) is not of this version: " + th
    for section in ("OPTIONS", "SIGNALS", "FILES", "CONFIGURATION"):
        assert ".SH %s" % section in man
    assert "SIGHUP" in man and "SIGTERM" in man and "/etc/herald/herald.ini" in man


def test_check_config_passes_as_installed(stage):
    assert stage.installed, "herald is not installed (an earlier step failed)"
    p = stage.root.run(["/usr/sbin/herald", "--check-config", "-c", "/etc/herald/herald.ini"],
                       timeout=60)
    assert p.stdout.strip() == "config ok", p.stdout + p.stderr


def as_unit_user(service, argv):
    """argv run as the unit's User, Group and SupplementaryGroups, with its NoNewPrivileges."""
    groups = []
    for v in service.get("SupplementaryGroups", []):
        groups = groups + v.split() if v else []
    cmd = ["setpriv", "--reuid=" + service["User"][-1], "--regid=" + service["Group"][-1],
           "--groups=" + ",".join(groups) if groups else "--clear-groups"]
    if service.get("NoNewPrivileges", ["no"])[-1] == "yes":
        cmd.append("--no-new-privs")
    return cmd + ["--"] + argv


def php_publish(root, user, group, who):
    """Run PHP CLI in the root as `user`: herald_publish() through the include path."""
    code = ("require 'Herald/herald.php';"
            "herald_configure(['socket' => '/run/herald/api.sock']);"
            "echo json_encode(herald_publish(%s, 'pkg.installed', ['from' => %s])), \"\\n\";"
            % (json.dumps(who), json.dumps(user)))
    return root.run(["setpriv", "--reuid=" + user, "--regid=" + group, "--init-groups", "--",
                     "php", "-d", "log_errors=1", "-d", "error_log=/dev/stderr", "-r", code],
                    timeout=60)


def test_runs_as_the_unit_says_and_delivers_a_php_publish(stage, tmp_path):
    assert stage.installed and stage.secret, "herald is not installed (an earlier step failed)"
    root = stage.root
    service = unit_service(root, "herald.service")
    assert service["Type"] == ["notify"] and service["User"] == ["herald"], service
    assert service["ExecStart"][0].startswith("/usr/sbin/herald "), service["ExecStart"]
    # What systemd does before ExecStartPre: the RuntimeDirectory, owned by User.
    run_dir = "/run/" + service["RuntimeDirectory"][-1]
    os.makedirs(root.file(run_dir), int(service["RuntimeDirectoryMode"][-1], 8))
    os.chown(root.file(run_dir), *[int(x) for x in root.run(
        ["sh", "-c", "id -u herald; id -g herald"], timeout=30).stdout.split()])

    port = free_port()
    flags = ["--listen", "127.0.0.1:%d" % port]
    for pre in service.get("ExecStartPre", []):
        p = root.run(as_unit_user(service, shlex.split(pre) + flags), timeout=60)
        assert "config ok" in p.stdout
    log = open(tmp_path / "herald.log", "w+")
    h = root.spawn(as_unit_user(service, shlex.split(service["ExecStart"][-1]) + flags),
                   stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not re.search(r"\bready\b", (tmp_path / "herald.log").read_text()):
            assert h.running(), "herald exited:\n" + (tmp_path / "herald.log").read_text()
            assert time.monotonic() < deadline, "herald not ready in 30 s"
            time.sleep(0.1)
        api = os.stat(root.file(run_dir + "/api.sock"))
        www = int(root.run(["getent", "group", "www-data"], timeout=30).stdout.split(":")[2])
        assert (api.st_mode & 0o777, api.st_gid) == (0o660, www), "api socket mode or group"

        token = make_token(stage.secret, "pkg-user", ttl=600)
        ws = open_ws(("127.0.0.1", port), "/ws?token=" + token, timeout=10)
        try:
            delivered = None
            deadline = time.monotonic() + 10
            while delivered != 1:
                assert time.monotonic() < deadline, "never delivered: %r" % delivered
                out = php_publish(root, "www-data", "www-data", "pkg-user").stdout.strip()
                delivered = json.loads(out)
                assert delivered in (0, 1), out
                if delivered == 0:
                    time.sleep(0.2)
            msg = next_json(ws, timeout=10)
            while msg.get("event") != "pkg.installed":
                msg = next_json(ws, timeout=10)
            assert msg["data"] == {"from": "www-data"}, msg
        finally:
            ws.close()

        # nobody is not in www-data: the socket's mode keeps it out, and herald.php says so.
        p = php_publish(root, "nobody", "nogroup", "pkg-user")
        assert p.stdout.strip() == "false", p.stdout
        assert "herald: publish failed" in p.stderr, p.stderr
    finally:
        status = h.stop(timeout=20)
        log.close()
    text = (tmp_path / "herald.log").read_text()
    assert status == 0, "herald exited %d:\n%s" % (status, text)
    assert "stopped" in text, text
    assert os.listdir(root.file(run_dir)) == [], "sockets left in " + run_dir
    # What systemd does after the unit stops: the RuntimeDirectory goes.
    os.rmdir(root.file(run_dir))
    stage.ran = True


def test_reinstall_keeps_secret_and_user(stage):
    assert stage.ran, "herald did not run (an earlier step failed)"
    root = stage.root
    uid = root.run(["id", "-u", "herald"], timeout=30).stdout
    deb_in_root = "/tmp/" + stage.deb.name
    Path(root.file(deb_in_root)).write_bytes(stage.deb.read_bytes())
    root.run(["dpkg", "-i", deb_in_root], timeout=300)
    os.unlink(root.file(deb_in_root))
    assert Path(root.file("/etc/herald/secret")).read_text().strip() == stage.secret
    assert root.run(["id", "-u", "herald"], timeout=30).stdout == uid


def test_remove_keeps_config_and_purge_leaves_nothing(stage):
    assert stage.ran, "herald did not run (an earlier step failed)"
    root = stage.root
    root.run(["apt-get", "remove", "-y", "-q", "herald"], timeout=300)
    assert not os.path.exists(root.file("/usr/sbin/herald"))
    assert not os.path.exists(root.file("/usr/share/php/Herald"))
    for kept in ("/etc/herald/herald.ini", "/etc/herald/secret", "/var/lib/herald"):
        assert os.path.exists(root.file(kept)), "remove took %s (only purge may)" % kept

    root.run(["apt-get", "purge", "-y", "-q", "herald"], timeout=300)
    status = root.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "herald"],
                      timeout=60, check=False).stdout
    assert status.strip() in ("", "un"), "herald still known to dpkg: %r" % status

    # The libraries and adduser that apt-get -f install pulled in stay; their files are
    # theirs, not Herald's.
    pulled = installed_packages(root) - stage.before_pkgs
    assert "herald" not in pulled
    theirs = set()
    for pkg in pulled:
        theirs |= set(root.run(["dpkg-query", "-L", pkg], timeout=60).stdout.splitlines())
    after = root.files(STATE_DIRS)
    added = sorted(p for p in set(after) - set(stage.before)
                   if p not in theirs and p not in USER_DB_BACKUPS)
    gone = sorted(set(stage.before) - set(after))
    changed = sorted(p for p in set(after) & set(stage.before)
                     if after[p] != stage.before[p] and p not in theirs
                     and p not in USER_DB_BACKUPS)
    assert not os.path.exists(root.file("/run/herald"))
    assert not added, "left behind after purge: %s" % added
    assert not gone, "removed by install and purge: %s" % gone
    assert not changed, "mode or owner changed: %s" % changed

    now = user_lines(root)
    for db in USER_DBS:
        assert stage.before_users[db] <= now[db], "%s lost lines" % db
        new = now[db] - stage.before_users[db]
        assert {line.split(":")[0] for line in new} <= {"herald"}, "%s gained %s" % (db, new)
    assert any(line.startswith("herald:") for line in now["/etc/passwd"]), \
        "purge removed the herald user; debian/postrm says it is kept"

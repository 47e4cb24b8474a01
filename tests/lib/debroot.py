"""
debroot.py -- a brand-new Debian 12 root for the package suite (tests/package).

    root = DebRoot.build(parent, timeout=900)   # mmdebstrap minbase, the host's apt sources
    root.run(["apt-get", "install", "-y", "php-cli"], timeout=600)   # a CompletedProcess
    h = root.spawn(["setpriv", ..., "/usr/sbin/herald", ...])        # a Spawned: h.stop()
    root.files()                                # {path: (kind, mode, uid, gid)}: before/after
    root.remove()                               # refuses while anything is mounted under it

The root is built by mmdebstrap from the host's active apt sources (sources.list and
sources.list.d/*.list|*.sources, the keyrings they name), with the host's apt settings
that decide how the archive is reached (proxies, Check-Valid-Until, Check-Date) and its
/etc/resolv.conf. Every command runs chrooted inside its own private mount and pid
namespace (unshare), where /proc and a small /dev (bound from the host's null, zero,
full, random, urandom) are mounted: nothing is ever mounted in the test's own namespace,
and the mounts and every process a command leaves go with its namespace. The network
namespace is the host's, so a daemon in the root answers on the host's loopback.
"""

import ctypes
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from procs import children

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Run by sh in a new mount and pid namespace: mount /proc and /dev under the root $1, then
# run the rest there. Without "-s" it execs the command (which becomes pid 1, killed with
# the namespace); with "-s" sh stays pid 1 and passes SIGTERM on, since the kernel drops
# a signal to a pid 1 that has no handler for it (Herald waits for its signals blocked).
ENTER_SH = r"""
set -e
r=$1; shift
mount -t proc -o nosuid,nodev,noexec herald-pkg-proc "$r/proc"
mount -t tmpfs -o mode=755,nosuid,size=1024k herald-pkg-dev "$r/dev"
for n in null zero full random urandom; do
    : > "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
done
mkdir -m 1777 "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
if [ "$1" != -s ]; then
    exec chroot "$r" "$@"
fi
shift
chroot "$r" "$@" &
pid=$!
trap 'kill -TERM "$pid"' TERM INT
while :; do
    st=0
    wait "$pid" || st=$?
    kill -0 "$pid" 2>/dev/null || exit "$st"
done
"""


def host_source_files():
    """The host's active apt source files, as apt-config names their places."""
    out = subprocess.run(["apt-config", "shell", "SL", "Dir::Etc::SourceList/f",
                          "SP", "Dir::Etc::SourceParts/d"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    where = dict(line.split("=", 1) for line in out.split())
    sl, sp = where["SL"].strip("'"), where["SP"].strip("'")
    files = []
    if os.path.isfile(sl):
        with open(sl) as f:
            if any(line.strip().startswith("deb") for line in f):
                files.append(sl)
    if os.path.isdir(sp):
        for name in sorted(os.listdir(sp)):
            if name.endswith((".list", ".sources")) and os.path.isfile(os.path.join(sp, name)):
                files.append(os.path.join(sp, name))
    assert files, "the host has no apt sources"
    return files


def host_apt_options():
    """apt settings that decide how the host reaches its archive, as --aptopt values."""
    out = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    keep = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::ftp::Proxy",
            "Acquire::socks::Proxy", "Acquire::Check-Valid-Until ", "Acquire::Check-Date ")
    return [line for line in out.splitlines() if line.startswith(keep)]


def child_env():
    """The environment of a fresh root login, plus the host's proxy variables."""
    env = {"PATH": ROOT_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
           "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _pdeathsig():
    """In the child before exec: SIGKILL when the test dies, so unshare --kill-child ends
    the namespace and everything in it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(1, signal.SIGKILL) != 0:  # PR_SET_PDEATHSIG
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def mounted_under(path):
    """True when anything is mounted at or below `path` in this mount namespace."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == path or point.startswith(path + "/"):
                return True
    return False


class Spawned:
    """A long-running command in the root: its namespace's pid 1 (sh) passes SIGTERM on."""

    def __init__(self, proc):
        self.proc = proc  # the unshare process; its child is the namespace's sh

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM the command (through sh), wait; SIGKILL the namespace after. Its status."""
        if self.proc.poll() is None:
            for pid in children(self.proc.pid):
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # unshare --kill-child takes the namespace's pid 1, so every process in it.
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("the command did not stop within %gs of SIGTERM" % timeout)
        return self.proc.returncode


class DebRoot:
    """One Debian 12 minbase root in a directory of its own, deleted by remove()."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, "root")

    @classmethod
    def build(cls, parent, timeout=900):
        """mmdebstrap a bookworm minbase root in a new directory under `parent`."""
        os.makedirs(parent, exist_ok=True)
        root = cls(tempfile.mkdtemp(prefix="herald-pkg-root.", dir=parent))
        log = os.path.join(root.workdir, "mmdebstrap.log")
        # In namespaces of its own, so its mounts and, on a timeout, every process it
        # started (--kill-child) go with it.
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               "--kill-child", "--", "mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory"]
        cmd += ["--aptopt=" + opt for opt in host_apt_options()]
        cmd += ["bookworm", root.path] + host_source_files()
        try:
            with open(log, "w") as out:
                p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=timeout,
                                   preexec_fn=_pdeathsig)
            if p.returncode != 0:
                with open(log) as f:
                    tail = f.read()[-3000:]
                raise AssertionError("mmdebstrap failed (%d):\n%s" % (p.returncode, tail))
            shutil.copyfile("/etc/resolv.conf", os.path.join(root.path, "etc/resolv.conf"))
            os.chmod(os.path.join(root.path, "etc/resolv.conf"), 0o644)
        except BaseException:
            root.remove()
            raise
        return root

    def _cmd(self, argv, stay=False):
        """The unshare command line that runs argv chrooted in the root."""
        return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                "--kill-child", "--", "sh", "-c", ENTER_SH, "enter", self.path] + \
            (["-s"] if stay else []) + ["/usr/bin/env", "-i"] + \
            ["%s=%s" % kv for kv in sorted(child_env().items())] + list(argv)

    def run(self, argv, timeout, check=True, input=None):
        """Run argv in the root and wait; asserts exit 0 unless check=False."""
        try:
            p = subprocess.run(self._cmd(argv), capture_output=True, text=True, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               timeout=timeout, preexec_fn=_pdeathsig)
        except subprocess.TimeoutExpired as e:
            out = e.stdout or b""
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            raise AssertionError("%s: no end within %ss; output:\n%s" %
                                 (" ".join(argv), timeout, out[-3000:]))
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d:\n%s\n%s" % (" ".join(argv), p.returncode,
                                                           p.stdout[-4000:], p.stderr[-4000:]))
        return p

    def spawn(self, argv, stdout, stderr):
        """Start argv in the root in the background; stop it with the Spawned's stop()."""
        return Spawned(subprocess.Popen(self._cmd(argv, stay=True), stdin=subprocess.DEVNULL,
                                        stdout=stdout, stderr=stderr, preexec_fn=_pdeathsig))

    def file(self, rel):
        """The host path of the root's file `rel` (absolute inside the root)."""
        return os.path.join(self.path, rel.lstrip("/"))

    def files(self, ignore=()):
        """Every path in the root but those under `ignore`: {path: (kind, mode, uid, gid)}."""
        out = {}
        for top, dirs, names in os.walk(self.path):
            rel_top = os.path.relpath(top, self.path)
            rel_top = "" if rel_top == "." else rel_top + "/"
            dirs[:] = [d for d in dirs if not (rel_top + d).startswith(tuple(ignore))]
            for name in dirs + names:
                rel = rel_top + name
                if rel.startswith(tuple(ignore)):
                    continue
                st = os.lstat(os.path.join(top, name))
                out["/" + rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                  st.st_uid, st.st_gid)
        return out

    def remove(self):
        """Delete the root, unless something is still mounted under it (then say so)."""
        for _ in range(50):
            if not mounted_under(self.workdir):
                shutil.rmtree(self.workdir, ignore_errors=False)
                return
            time.sleep(0.1)
        raise AssertionError("something is still mounted under %s; left in place" % self.workdir)

"""
procs.py -- the child processes the tests start (Herald, php-fpm, nginx, node): reading them
in /proc, stopping them by PID, and the `with` block they share.

    stop_child(proc, signal.SIGTERM, 5)    # True: it exited on the signal; False: SIGKILLed
    children(fpm.proc.pid)                 # PIDs whose parent it is
    proc_stat(pid).state                   # "Z" for a zombie; None once the PID is gone
    rss_kib(pid)                           # resident memory, KiB

Processes are only ever signalled by their own PID (STYLE.md 3.8), never by name.
"""

import collections
import os
import signal
import subprocess

ProcStat = collections.namedtuple("ProcStat", "comm state ppid start")


def proc_stat(pid):
    """
    A process's name, state, parent PID and start time (clock ticks after boot, to tell a
    reused PID) from /proc/PID/stat, or None once it is gone.
    """
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and ')', so split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return ProcStat(stat[stat.index("(") + 1:stat.rindex(")")], fields[0], int(fields[1]),
                    fields[19])


def rss_kib(pid):
    """A process's resident memory in KiB (VmRSS in /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def children(pid):
    """PIDs whose parent is `pid`, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st is not None and st.ppid == pid:
                out.append(int(d))
    return out


def stop_child(proc, sig=signal.SIGTERM, timeout=5.0):
    """
    Send `sig` to the subprocess.Popen `proc` if it still runs and wait up to `timeout`
    seconds; SIGKILL it after that. True if it was gone by then without the SIGKILL.
    """
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return False


class Child:
    """
    The `with` block of a helper that owns a process in `self.proc` (None when not started):
    start() on entry unless already started, cleanup() on the way out, and cleanup() also
    when start() fails, so nothing it made is left behind.
    """

    def __enter__(self):
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.cleanup()
                raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

"""
85-service.py -- Herald as a service: systemd's readiness protocol
(READY=1, RELOADING=1, STOPPING=1 on NOTIFY_SOCKET), --user/--group
dropping root once the sockets are bound, and the unit file in systemd/
passing `systemd-analyze verify`.

Each test starts its own daemon on loopback (tests/lib/herald.py) and stops
it by its PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from herald import REPO, Herald, free_port, herald_bin, recv_json


def notify_socket():
    """A datagram socket where the daemon will report, as systemd would listen."""
    d = tempfile.mkdtemp(prefix="herald-notify-")
    path = os.path.join(d, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    return d, path, s


def messages_until(s, want, timeout=5.0):
    """Datagrams received until one holds the line want; returns them all."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(s.recv(4096).decode())
        except socket.timeout:
            break
        if want in got[-1].split("\n"):
            return got
    raise AssertionError("no %r from herald within %.0fs; got %r" % (want, timeout, got))


def test_systemd_is_told_ready_reloading_and_stopping():
    d, path, s = notify_socket()
    h = Herald(env={"NOTIFY_SOCKET": path})
    try:
        h.start()
        got = messages_until(s, "READY=1")
        assert any(line.startswith("STATUS=") for m in got for line in m.split("\n"))
        h.proc.send_signal(signal.SIGHUP)
        got = messages_until(s, "RELOADING=1")
        messages_until(s, "READY=1")
        h.proc.send_signal(signal.SIGTERM)
        messages_until(s, "STOPPING=1")
        assert h.stop() == 0
    finally:
        h.cleanup()
        s.close()
        shutil.rmtree(d, ignore_errors=True)


def test_an_abstract_notify_socket_works_too():
    name = "herald-test-notify-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    h = Herald(env={"NOTIFY_SOCKET": "@" + name})
    try:
        h.start()
        messages_until(s, "READY=1")
    finally:
        h.stop()
        h.cleanup()
        s.close()


def test_user_and_group_drop_root_after_binding(run):
    # As root, the daemon binds its sockets, then runs as nobody:nogroup; as
    # anyone else it refuses the switch with a clear error.
    h = Herald(config={"user": "nobody", "group": "nogroup"})
    if os.geteuid() != 0:
        with pytest.raises(RuntimeError) as e:
            h.start()
        assert "--user/--group need root to switch" in str(e.value)
        return
    try:
        h.start()
        os.chmod(h.dir, 0o755)
        with open("/proc/%d/status" % h.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Uid"].split()[:2] == ["65534", "65534"], status["Uid"]
        assert status["Gid"].split()[:2] == ["65534", "65534"], status["Gid"]
        assert status["Groups"].split() == ["65534"], status["Groups"]
        assert "running as uid 65534 gid 65534" in h.log_text()

        async def go():
            async with h.connect(h.token("svc-user")) as ws:
                assert h.publish(["svc-user"], "still.works", 1) == 1
                assert (await recv_json(ws))["event"] == "still.works"
        run(go())
        assert h.stop() == 0
    finally:
        h.cleanup()


def test_logs_under_journald_carry_a_priority_and_no_timestamp():
    # systemd names the journal stream in JOURNAL_STREAM; Herald then writes
    # "<6>main: ready" (journald adds the time) instead of its own stamps.
    d = tempfile.mkdtemp(prefix="herald-journal-")
    log = os.path.join(d, "stderr")
    proc = None
    try:
        with open(log, "wb") as f:
            st = os.fstat(f.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            proc = subprocess.Popen(
                [herald_bin(), "--listen", "127.0.0.1:%d" % free_port(), "--api-socket",
                 os.path.join(d, "api.sock"), "--workers", "1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, env=env)
        deadline = time.monotonic() + 10
        while "main: ready" not in open(log).read() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        lines = open(log).read().splitlines()
        assert "<6>main: ready" in lines, lines
        assert any(line.startswith("<4>main: using the built-in development secret")
                   for line in lines), lines
        assert all(line[:1] == "<" and line[2:3] == ">" for line in lines), lines
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(d, ignore_errors=True)


def test_user_that_does_not_exist_stops_startup_with_a_clear_error():
    h = Herald(config={"user": "no-such-user-herald"})
    with pytest.raises(RuntimeError) as e:
        h.start()
    assert "--user no-such-user-herald: no such user" in str(e.value)


def test_the_unit_file_passes_systemd_analyze_verify():
    # The unit as shipped, with the binary and config paths pointed at this build.
    d = tempfile.mkdtemp(prefix="herald-unit-")
    try:
        ini = os.path.join(d, "herald.ini")
        with open(ini, "w") as f:
            f.write("[herald]\nsecret = 0123456789abcdef0123456789\n")
        with open(os.path.join(REPO, "systemd", "herald.service")) as f:
            unit = f.read()
        assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
        unit = unit.replace("/usr/local/bin/herald", herald_bin()).replace(
            "/etc/herald/herald.ini", ini)
        path = os.path.join(d, "herald.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                           text=True, timeout=60)
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if "herald.service" in line]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_template_unit_passes_systemd_analyze_verify_and_keeps_herald_service():
    # systemd/herald@.service (N nodes on one machine, docs/deploy.md section 10), verified as
    # instance 2 with the binary and config paths pointed at this build. It keeps every setting
    # of herald.service but the command lines, so that the two cannot drift apart.
    with open(os.path.join(REPO, "systemd", "herald.service")) as f:
        single = f.read()
    with open(os.path.join(REPO, "systemd", "herald@.service")) as f:
        unit = f.read()

    def settings(text):
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    kept = settings(unit)
    lost = [line for line in settings(single) if line not in kept and
            not line.startswith(("Description=", "After=", "ExecStartPre=", "ExecStart="))]
    assert lost == [], "herald@.service lacks these lines of herald.service: %r" % lost
    assert "After=network.target redis-server.service" in kept
    assert "RuntimeDirectoryPreserve=yes" in kept     # one instance's stop keeps the others'
    d = tempfile.mkdtemp(prefix="herald-unit-")
    try:
        ini = os.path.join(d, "herald.ini")
        with open(ini, "w") as f:
            f.write("[herald]\nsecret = 0123456789abcdef0123456789\n")
        with open(os.path.join(d, "herald@.service"), "w") as f:
            f.write(unit.replace("/usr/local/bin/herald", herald_bin()).replace(
                "/etc/herald/herald.ini", ini))
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "herald@2.service")],
                           capture_output=True, text=True, timeout=60)
        problems = [line for line in (r.stdout + r.stderr).splitlines() if "herald@" in line]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)

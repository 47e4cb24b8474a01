"""
tenant_child.py -- what a hostile local user does to a Herald API socket; run by tenant.py in a
child process as that user (nobody), never imported by the tests themselves.

    python3 tenant_child.py MODE SOCKET [N]

Prints one JSON line {"ready": true} once the attack is in place (for the long ones), then one
JSON line with what it saw, and exits; the parent may also end it by its PID. Modes:

  bomb      BEGIN_REQUEST, one PARAMS pair whose value length is 0x7ffffffe, an empty PARAMS,
            an empty STDIN: the request that made libfcgi abort. Reports the answer's status.
  params    BEGIN_REQUEST, then one PARAMS pair whose value is N MiB, as fast as the socket
            takes it.
            Reports the bytes sent before Herald answered or closed, and the answer's status.
  trickle   N connections, each sends a whole request (answered or not), then one byte a
            second, never closing. Reports, per connection, the answer's status and how long
            after the first trickled byte Herald closed it (null: still open when it stopped).
  trickle-keep  the same with FCGI_KEEP_CONN: the trickled bytes are a next request that
            never ends.
  hold      N connections, opened and left idle. Reports how many Herald closed at once.
"""

import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fcgi  # noqa: E402


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def status_of(data):
    """The HTTP status in a FastCGI answer's STDOUT, or None."""
    out = b"".join(c for _, t, _, c in fcgi.parse_records(data) if t == fcgi.FCGI_STDOUT)
    for line in out.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            return int(line.split()[1])
    return None


def read_answer(s, timeout):
    """Bytes until END_REQUEST, EOF or timeout."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if any(t == fcgi.FCGI_END_REQUEST for _, t, _, _ in fcgi.parse_records(data)):
            break
    return data


def bomb(path):
    s = connect(path)
    s.sendall(fcgi.begin_request() + fcgi.record(fcgi.FCGI_PARAMS, 1, b"\x01\xff\xff\xff\xfe" + b"a")
              + fcgi.record(fcgi.FCGI_PARAMS, 1) + fcgi.record(fcgi.FCGI_STDIN, 1))
    data = read_answer(s, 5)
    say({"status": status_of(data), "bytes": len(data)})


def params(path, mib):
    s = connect(path)
    # One pair whose value is mib MiB: well formed, it only asks to be kept whole.
    s.sendall(fcgi.begin_request() + fcgi.record(
        fcgi.FCGI_PARAMS, 1, b"\x01" + struct.pack(">I", (mib << 20) | 0x80000000) + b"x"))
    chunk = fcgi.record(fcgi.FCGI_PARAMS, 1, b"p" * 65528)
    sent, t0 = 0, time.monotonic()
    s.setblocking(False)
    answered = b""
    while sent < mib << 20 and time.monotonic() - t0 < 20:
        r, w, _ = select.select([s], [s], [], 1)
        if r:
            try:
                got = s.recv(65536)
            except OSError:
                got = b""
            answered += got
            if not got:
                break
        if w:
            try:
                sent += s.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            except BlockingIOError:
                pass
    s.setblocking(True)
    s.settimeout(2)
    try:
        s.sendall(fcgi.record(fcgi.FCGI_PARAMS, 1) + fcgi.record(fcgi.FCGI_STDIN, 1))
    except OSError:
        pass
    answered += read_answer(s, 3)
    say({"sent": sent, "status": status_of(answered), "seconds": time.monotonic() - t0})


def trickle(path, n, keep):
    socks = [connect(path) for _ in range(n)]
    req = fcgi.encode_request("POST", "/publish", b'{"users":["no-such-user"],"event":"x"}',
                              keep_conn=keep)
    statuses = []
    for s in socks:
        s.sendall(req)
        statuses.append(status_of(read_answer(s, 3)))
    say({"ready": True})
    # The next request, a byte a second: a BEGIN_REQUEST that never ends.
    nxt = fcgi.begin_request(request_id=2, keep_conn=True) + b"\x01" * 1000
    closed = [None] * n
    t0 = time.monotonic()
    for i in range(30):
        for k, s in enumerate(socks):
            if closed[k] is not None:
                continue
            # Only a refused send says Herald closed: it may shut its side and go on reading.
            try:
                s.send(nxt[i:i + 1])
            except OSError:
                closed[k] = time.monotonic() - t0
        if all(c is not None for c in closed):
            break
        time.sleep(1)
    say({"statuses": statuses, "closed_after": closed})


def hold(path, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(connect(path))
        except OSError:
            break
    time.sleep(0.5)
    closed = 0
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        try:
            if r and not s.recv(1):
                closed += 1
        except OSError:
            closed += 1
    say({"ready": True, "opened": len(socks), "closed_at_once": closed})
    time.sleep(60)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    {"bomb": lambda: bomb(path), "params": lambda: params(path, n),
     "trickle": lambda: trickle(path, n, False), "trickle-keep": lambda: trickle(path, n, True),
     "hold": lambda: hold(path, n)}[mode]()


if __name__ == "__main__":
    main()

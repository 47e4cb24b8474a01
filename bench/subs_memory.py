#!/usr/bin/python3
"""
subs_memory.py -- Herald's memory per channel subscription (docs/performance.md).

    /usr/bin/python3 bench/subs_memory.py [CONNECTIONS [CHANNELS]]   (2000 10)

Starts build/herald on loopback, opens CONNECTIONS WebSockets (one user
each), then has each subscribe to CHANNELS channels, first channels they all
share, then channels of their own, and prints the daemon's RSS growth per
connection and per subscription for both. Uses Debian's python3-websockets;
stops the daemon it started, by PID.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "subs-memory-secret-0123456789"
PORT = 19711


def token(sub):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(SECRET.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))


async def subscribe_all(conns, k, name, op):
    for i, c in enumerate(conns):
        for j in range(k):
            await c.send(json.dumps({"op": op, "channel": name(i, j), "ref": j}))
        for _ in range(k):
            await c.recv()


async def measure(pid, n, k):
    base = rss(pid)
    conns = [await websockets.connect("ws://127.0.0.1:%d/ws?token=%s" % (PORT, token("u%d" % i)))
             for i in range(n)]
    await asyncio.sleep(0.5)
    before = rss(pid)
    print("%d connections: %.0f B each" % (n, (before - base) / n))
    for label, name in (("shared", lambda i, j: "c%d" % j),
                        ("own", lambda i, j: "d%d-%d" % (i, j))):
        await subscribe_all(conns, k, name, "subscribe")
        await asyncio.sleep(0.5)
        after = rss(pid)
        print("%d subscriptions each, channels %s: %.0f B per subscription"
              % (k, label, (after - before) / (n * k)))
        await subscribe_all(conns, k, name, "unsubscribe")
        await asyncio.sleep(0.5)
        before = rss(pid)
    for c in conns:
        await c.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tmp = tempfile.mkdtemp(prefix="herald-subs-")
    ini = os.path.join(tmp, "herald.ini")
    with open(ini, "w") as f:
        f.write("[herald]\nlisten = 127.0.0.1:%d\napi_socket = %s/api.sock\nsecret = %s\n"
                "workers = 2\npublic_channels = *\nmax_subscriptions = 1000\ncommand_rate = 0\n"
                % (PORT, tmp, SECRET))
    proc = subprocess.Popen([os.path.join(ROOT, "build", "herald"), "-c", ini],
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        asyncio.run(measure(proc.pid, n, k))
    finally:
        proc.terminate()
        proc.wait(10)
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()

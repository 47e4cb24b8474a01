"""
80-fd-limit.py -- regression for descriptors above 1024 (libfcgi CVE-2012-6687: select() on an
fd >= FD_SETSIZE writes past the fd_set), and for Herald's own RLIMIT_NOFILE.

Herald is started with a soft RLIMIT_NOFILE of 1024 (the usual default; the hard limit stays
what it is here, 20,000) and must raise its soft limit to the hard limit itself, or it could not
hold more than about a thousand browsers. Then the test opens 1,150 WebSocket connections, so
every descriptor Herald opens afterwards is above 1024, including the API connections PHP makes:
/health, /stats and /publish must still answer, and a broadcast and a publish to all 1,150
users must reach every one of them. The test process raises its own soft limit (to at most
4,096) to hold its ends of the connections.
"""

import asyncio
import contextlib
import os
import resource

from herald import Herald, recv_json

N_CONNECTIONS = 1150
TEST_NOFILE = 4096


def proc_limits(pid):
    """(soft, hard) "Max open files" of a process, from /proc/<pid>/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@contextlib.contextmanager
def herald_started_with_soft_limit_1024(**kw):
    """A Herald whose inherited soft RLIMIT_NOFILE is 1024; this process gets TEST_NOFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= TEST_NOFILE, \
        "this test needs a hard RLIMIT_NOFILE of at least %d, not %d" % (TEST_NOFILE, hard)
    h = Herald(**kw)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        try:
            h.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, TEST_NOFILE), hard))
        yield h, hard
        h.stop()
    finally:
        h.cleanup()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_herald_raises_its_soft_fd_limit_to_the_hard_limit():
    with herald_started_with_soft_limit_1024(workers=2) as (h, hard):
        soft_h, hard_h = proc_limits(h.proc.pid)
        assert hard_h == hard
        assert soft_h == hard_h, \
            "Herald kept a soft RLIMIT_NOFILE of %d (hard %d): it must raise it" % (soft_h, hard_h)


async def open_many(h, tokens, batch=100):
    """Open one connection per token, `batch` handshakes at a time."""
    conns = []
    for i in range(0, len(tokens), batch):
        conns += await asyncio.gather(*(h.connect(t, via="protocol" if j % 2 else "query")
                                        for j, t in enumerate(tokens[i:i + batch])))
    return conns


async def all_receive(conns, expected, timeout=15.0):
    got = await asyncio.gather(*(recv_json(ws, timeout) for ws in conns))
    wrong = [i for i, g in enumerate(got) if g != expected]
    assert not wrong, "%d of %d connections got something else, e.g. #%d: %r" % (
        len(wrong), len(conns), wrong[0], got[wrong[0]])


def test_api_and_fan_out_with_more_than_1100_descriptors(run):
    # 1,150 sockets from 127.0.0.1 stand in for 1,150 browsers: a trusted proxy naming no
    # client, which per-address limits leave alone (76-limits).
    with herald_started_with_soft_limit_1024(workers=2) as (h, _):
        users = ["fd-%d" % i for i in range(N_CONNECTIONS)]
        tokens = [h.token(u) for u in users]

        async def go():
            conns = await open_many(h, tokens)
            try:
                assert all(ws.open for ws in conns)
                nfds = open_fds(h.proc.pid)
                assert nfds > 1100, "Herald holds only %d descriptors" % nfds

                # Every API connection is now an fd above 1024.
                for _ in range(20):
                    status, _, j = h.api("GET", "/health")
                    assert status == 200 and j["ok"] is True, j
                s = h.wait_stat("connections", N_CONNECTIONS, timeout=5)
                assert (s["connections"], s["users"]) == (N_CONNECTIONS, N_CONNECTIONS), s

                assert h.publish([users[7]], "one", {"to": users[7]}) == 1
                assert await recv_json(conns[7], 5) == {"event": "one", "data": {"to": users[7]}}

                assert h.broadcast("to.everyone", {"n": 1}) == N_CONNECTIONS
                await all_receive(conns, {"event": "to.everyone", "data": {"n": 1}})

                assert h.publish(users, "to.all.users", [2]) == N_CONNECTIONS
                await all_receive(conns, {"event": "to.all.users", "data": [2]})

                # And a newcomer, whose descriptor is above 1024 too, is served.
                async with h.connect(h.token("late")) as late:
                    h.wait_stat("connections", N_CONNECTIONS + 1)
                    assert h.publish(["late"], "welcome", None) == 1
                    assert await recv_json(late, 5) == {"event": "welcome", "data": None}
            finally:
                for i in range(0, len(conns), 200):
                    await asyncio.gather(*(ws.close() for ws in conns[i:i + 200]),
                                         return_exceptions=True)
            assert h.wait_stat("connections", 0, timeout=5)["connections"] == 0

        run(go(), timeout=50)

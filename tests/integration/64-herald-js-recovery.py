"""
64-herald-js-recovery.py -- herald.js's history and recovery against the real daemon.

php-client/js/herald.js clients run in tests/js/herald-js-driver.js (node, the `ws` package
standing in for the browser's WebSocket), steered by the `driver` fixture (conftest.py,
tests/lib/jsdriver.py). Checked, as docs/protocol.md ("Recovery") and spec issue 5 describe
them:

  - a client that loses its TCP connection (cut by CutProxy, a relay between it and Herald:
    the same daemon, so the same epoch) reconnects with ?since=, resubscribes with since, and
    gets exactly the user and channel messages published while it was away, in order, then
    the live ones, none twice; onRecover reports (null, true) and (channel, true), each after
    its stream's replay; a second cut with nothing missed replays nothing;
  - after Herald restarts (a new epoch), onRecover reports (null, false) and (channel, false),
    and the new epoch's messages, whose offsets start low again, are delivered;
  - with history_size = 2, five missed messages cannot be recovered: (null, false) and
    (channel, false), nothing replayed; two missed can, and are;
  - with history_file, a clean restart keeps the epoch: (null, true) and (channel, true),
    nothing delivered twice, and the offsets carry on.

Needs node (Debian 12's nodejs, 18.19, or newer) and `npm ci --prefix tests/js`.
"""

import socket
import threading
import time

import pytest

from herald import Herald
from jsdriver import CHANNELS, user_token

HERALD_CONFIG = dict(CHANNELS)       # the module's shared daemon: default history (100)


class CutProxy:
    """
    A TCP relay on a free loopback port to Herald's port. cut() ends every relayed connection
    at once, both ways, as a lost network does (the client sees 1006, Herald an EOF). While
    `down` is set, new connections are accepted and closed at once, so reconnects fail.
    """

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.down = False
        self.pairs = []                 # [(client side, Herald side)] being relayed
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.url = "ws://127.0.0.1:%d/ws" % self.port
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs.append((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._end(src, dst)

    def _end(self, a, b):
        """Shut both sockets down (which wakes their other pump) and close them."""
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            pairs = [p for p in self.pairs if a in p]
            self.pairs = [p for p in self.pairs if a not in p]
        for pair in pairs:
            for s in pair:
                s.close()

    def cut(self):
        """End every connection being relayed."""
        with self.lock:
            pairs = list(self.pairs)
        for client, server in pairs:
            self._end(client, server)

    def close(self):
        self.down = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(2)
        self.cut()


@pytest.fixture
def proxy(herald):
    p = CutProxy(herald.port)
    try:
        yield p
    finally:
        p.close()


def wait_offline(herald, user, timeout=5):
    """Wait until Herald holds no connection of `user` (it has seen the cut)."""
    deadline = time.monotonic() + timeout
    while True:
        j = herald.api_ok("GET", "/presence?user=%s" % user)
        if j["connections"] == 0:
            return
        assert time.monotonic() < deadline, "Herald still holds %s's connection: %r" % (user, j)
        time.sleep(0.05)


def cut_and_wait(driver, proxy, herald, c, user):
    """Cut c's connection, keep it from reconnecting, and wait until both ends know."""
    closes = len(driver.reports(c, "state", state="close"))
    proxy.down = True
    proxy.cut()
    driver.wait(lambda s: len(driver.reports(c, "state", state="close")) > closes, 5,
                "%s to see its connection cut" % c)
    wait_offline(herald, user)


def recoveries(driver, c):
    return [(r["stream"], r["recovered"]) for r in driver.reports(c, "recover")]


def data_of(driver, c, event):
    return [d for _, d, _ in driver.events(c, event)]


def index_of(driver, pred):
    """Index in driver.seen of the first report pred accepts."""
    return next(i for i, r in enumerate(driver.seen) if pred(r))


def id_parts(stream_id):
    epoch, offset = stream_id.split(":")
    return epoch, int(offset)


def publish_both(herald, user, channel, u, c):
    """Publish u to the user and c to the channel; returns both "delivered" counts."""
    return (herald.publish([user], "u", u), herald.publish_channel(channel, "c", c))


def subscribed(driver, herald, c, url=None, first=()):
    """
    Client c, user c, open (on url, else herald's own) and subscribed to news:1; then each
    value of `first` published to the user and to news:1, and all of them received.
    """
    driver.new(c, url or herald.ws_url, user_token(herald, c))
    driver.wait_open(c)
    assert driver.ok(c, "subscribe", "news:1") == {}
    for n in first:
        assert publish_both(herald, c, "news:1", n, n) == (1, 1)
    driver.wait(lambda s: len(driver.events(c)) == 2 * len(first), 5, "the first messages")


def test_a_cut_connection_recovers_exactly_what_it_missed(herald, proxy, driver):
    subscribed(driver, herald, "ann", proxy.url, first=[1])
    before = driver.ok("ann", "position")
    assert set(before["channels"]) == {"news:1"}, before
    epoch = id_parts(before["user"])[0]
    assert id_parts(before["channels"]["news:1"])[0] == epoch, before
    ok_before = herald.stats()["recoveries"]["ok"]

    cut_and_wait(driver, proxy, herald, "ann", "ann")
    assert driver.reports("ann", "state", state="close")[0]["code"] == 1006
    for n in (2, 3, 4):
        assert publish_both(herald, "ann", "news:1", n, n) == (0, 0)
    assert herald.publish(["ann"], "u", 5) == 0
    n_before = len(driver.seen)
    proxy.down = False

    driver.wait(lambda s: len(recoveries(driver, "ann")) == 2, 10, "both recoveries")
    assert sorted(recoveries(driver, "ann"), key=str) == [("news:1", True), (None, True)]
    driver.wait(lambda s: len(driver.events("ann")) == 2 + 7, 5, "the seven missed messages")
    assert data_of(driver, "ann", "u") == [1, 2, 3, 4, 5]
    assert data_of(driver, "ann", "c") == [1, 2, 3, 4]
    # Each stream's replay comes before its onRecover, and after the reconnect.
    user_rec = index_of(driver, lambda r: r.get("kind") == "recover" and r["stream"] is None)
    chan_rec = index_of(driver, lambda r: r.get("kind") == "recover" and r["stream"])
    replayed = [i for i, r in enumerate(driver.seen) if i >= n_before
                and r.get("kind") == "event"]
    assert all(i > n_before for i in (user_rec, chan_rec))
    assert [i for i in replayed if driver.seen[i]["event"] == "u"][-1] < user_rec
    assert [i for i in replayed if driver.seen[i]["event"] == "c"][-1] < chan_rec

    # Live again: the next ones arrive once, and nothing comes twice.
    assert publish_both(herald, "ann", "news:1", 6, 5) == (1, 1)
    driver.wait(lambda s: len(driver.events("ann")) == 11, 5, "the live messages")
    driver.settle(0.3)
    assert data_of(driver, "ann", "u") == [1, 2, 3, 4, 5, 6]
    assert data_of(driver, "ann", "c") == [1, 2, 3, 4, 5]
    after = driver.ok("ann", "position")
    assert id_parts(after["user"])[0] == epoch
    assert id_parts(after["user"])[1] > id_parts(before["user"])[1]
    assert id_parts(after["channels"]["news:1"])[1] > id_parts(before["channels"]["news:1"])[1]
    assert herald.stats()["recoveries"]["ok"] >= ok_before + 2

    # A second cut with nothing missed: both recovered, nothing replayed.
    cut_and_wait(driver, proxy, herald, "ann", "ann")
    proxy.down = False
    driver.wait(lambda s: len(recoveries(driver, "ann")) == 4, 10, "the second recoveries")
    assert sorted(recoveries(driver, "ann")[2:], key=str) == [("news:1", True), (None, True)]
    assert publish_both(herald, "ann", "news:1", 7, 6) == (1, 1)
    driver.wait(lambda s: len(driver.events("ann")) == 13, 5, "the last live messages")
    driver.settle(0.3)
    assert data_of(driver, "ann", "u") == [1, 2, 3, 4, 5, 6, 7]
    assert data_of(driver, "ann", "c") == [1, 2, 3, 4, 5, 6]
    assert driver.reports("ann", "error") == []


def test_after_a_restart_nothing_is_recovered_and_the_new_epoch_is_delivered(driver):
    with Herald(workers=2, config=CHANNELS) as h:
        subscribed(driver, h, "rex", first=[1, 2, 3])
        old_epoch = id_parts(driver.ok("rex", "position")["user"])[0]

        h.stop()
        driver.wait(lambda s: driver.reports("rex", "state", state="close", code=1001), 5,
                    "close 1001 on shutdown")
        h.restart()             # the same port, API socket and secret; a new epoch
        driver.wait_open("rex", 2, 15)
        driver.wait(lambda s: len(recoveries(driver, "rex")) == 2, 5, "both recoveries")
        assert sorted(recoveries(driver, "rex"), key=str) == [("news:1", False), (None, False)]

        # The new epoch numbers from low offsets again: its messages are not taken for repeats.
        assert publish_both(h, "rex", "news:1", 10, 10) == (1, 1)
        driver.wait(lambda s: len(driver.events("rex")) == 8, 5, "the new epoch's messages")
        assert data_of(driver, "rex", "u") == [1, 2, 3, 10]
        assert data_of(driver, "rex", "c") == [1, 2, 3, 10]
        pos = driver.ok("rex", "position")
        assert id_parts(pos["user"])[0] != old_epoch, pos
        assert id_parts(pos["channels"]["news:1"])[0] == id_parts(pos["user"])[0], pos
        assert h.stats()["recoveries"]["failed"] >= 2
        assert driver.finish() == 0


def test_more_missed_than_history_size_is_not_recovered(driver):
    h = Herald(workers=2, config=dict(CHANNELS, history_size=2))
    proxy = None
    try:
        h.start()
        proxy = CutProxy(h.port)
        subscribed(driver, h, "hal", proxy.url, first=[0])

        # Five missed, two kept: too many.
        cut_and_wait(driver, proxy, h, "hal", "hal")
        for n in (1, 2, 3, 4, 5):
            assert publish_both(h, "hal", "news:1", n, n) == (0, 0)
        proxy.down = False
        driver.wait(lambda s: len(recoveries(driver, "hal")) == 2, 10, "both recoveries")
        assert sorted(recoveries(driver, "hal"), key=str) == [("news:1", False), (None, False)]
        assert publish_both(h, "hal", "news:1", 6, 6) == (1, 1)
        driver.wait(lambda s: len(driver.events("hal")) == 4, 5, "the live messages")
        driver.settle(0.3)
        assert data_of(driver, "hal", "u") == [0, 6], "nothing replayed"
        assert data_of(driver, "hal", "c") == [0, 6], "nothing replayed"

        # Two missed, two kept: recovered, both replayed.
        cut_and_wait(driver, proxy, h, "hal", "hal")
        for n in (7, 8):
            assert publish_both(h, "hal", "news:1", n, n) == (0, 0)
        proxy.down = False
        driver.wait(lambda s: len(recoveries(driver, "hal")) == 4, 10, "the next recoveries")
        assert sorted(recoveries(driver, "hal")[2:], key=str) == [("news:1", True), (None, True)]
        driver.wait(lambda s: len(driver.events("hal")) == 8, 5, "the two replayed")
        driver.settle(0.3)
        assert data_of(driver, "hal", "u") == [0, 6, 7, 8]
        assert data_of(driver, "hal", "c") == [0, 6, 7, 8]
        assert driver.reports("hal", "error") == []
        assert driver.finish() == 0
        h.stop()
    finally:
        if proxy is not None:
            proxy.close()
        h.cleanup()


def test_a_restart_with_history_file_is_recovered(driver):
    with Herald(workers=2, config=dict(CHANNELS, history_file="{dir}/history")) as h:
        subscribed(driver, h, "kit", first=[1, 2])
        before = driver.ok("kit", "position")

        h.stop()
        h.restart()             # the same port, API socket, secret and history_file
        driver.wait_open("kit", 2, 15)
        driver.wait(lambda s: len(recoveries(driver, "kit")) == 2, 5, "both recoveries")
        assert sorted(recoveries(driver, "kit"), key=str) == [("news:1", True), (None, True)]
        assert publish_both(h, "kit", "news:1", 3, 3) == (1, 1)
        driver.wait(lambda s: len(driver.events("kit")) == 6, 5, "the live messages")
        driver.settle(0.3)
        assert data_of(driver, "kit", "u") == [1, 2, 3]
        assert data_of(driver, "kit", "c") == [1, 2, 3]
        after = driver.ok("kit", "position")
        assert id_parts(after["user"])[0] == id_parts(before["user"])[0], (before, after)
        assert id_parts(after["user"])[1] > id_parts(before["user"])[1], (before, after)
        assert driver.finish() == 0

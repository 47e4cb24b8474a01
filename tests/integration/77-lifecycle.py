"""
77-lifecycle.py -- reload, drain and restart, heartbeats and backpressure (issue 5), with the
real binary:

- SIGHUP reloads the file: connections already open stay open and keep receiving, even those
  whose Origin or token the new file would refuse; new handshakes follow the new
  allowed_origins (403 for the old one) and the new secret (401 bad_token for a token signed
  with the old one); a setting that needs a restart (listen, workers) keeps its running value
  with one warning per key, while the reloadable ones in the same file apply; a file that does
  not load (a bad value, an unknown key, a missing file) changes nothing and logs one error,
  and a good file after it applies; a new log_level applies at once;
- SIGTERM drains (the close 1001 to every client, the sockets removed and exit 0 are proven in
  30-api.py, test_sigterm_*): with history_file set, clients that come back to the restarted
  daemon with since get what was published to them before the shutdown and what was published
  after the restart before they reconnected, in order, with recovered true, then live
  messages, no gap and no duplicate; without history_file they are told recovered false;
- --check-config FILE with the real binary: "config ok" and 0, or one line naming
  file:line and the key and 1; it binds nothing and never prints the secret;
- heartbeats: with ping_interval=1s a client that stops reading and answering is dropped
  within about two intervals and forgotten everywhere: /stats connections and users, its
  presence channel (the other members get its leave), /presence?user, and the registry (a
  publish to it delivers 0), while a client that answers pings stays;
- backpressure: readers that never read, flooded by broadcasts, are each closed with 1008 once
  over max_queued_bytes and counted in slow_consumers; meanwhile the other readers get every
  message promptly (latency measured), and the daemon's RSS stays bounded;
- a reconnect whose replay would not fit in max_queued_bytes gets its 101 and is told
  recovered false, rather than a bare close 1008 on every retry.

A restart here is the same daemon started again with the same temp dir, port, API socket,
secret and settings, as an init system restarts a service (Herald.restart()).
"""

import json
import os
import signal
import socket
import stat as st
import subprocess
import time
import uuid

import pytest

import rawws
from herald import Herald, free_port, herald_bin, uid, without_id
from procs import rss_kib
from rawws import next_json


def ws_at(h, query="", timeout=3.0):
    """A raw WebSocket to h with this query string (e.g. "token=...&since=")."""
    return rawws.open_ws(("127.0.0.1", h.port), "/ws?" + query, timeout=timeout)


def user_ws(h, user, since=None):
    q = "token=" + h.token(user)
    if since is not None:
        q += "&since=" + since
    return ws_at(h, q)


def no_more(ws, timeout=0.3):
    try:
        f = ws.recv_data(timeout)
    except rawws.Timeout:
        return
    raise AssertionError("expected nothing more, got %r" % (f,))


def offset(msg_id):
    return int(msg_id.split(":")[1])


def epoch(msg_id):
    return msg_id.split(":")[0]


def stream_frame(ws, recovered):
    f = next_json(ws)
    assert f.get("op") == "stream" and f.get("recovered") is recovered, f
    assert set(f) == {"op", "id", "recovered"}, f
    return f["id"]


# -- SIGHUP -----------------------------------------------------------------

def ini_path(h):
    return os.path.join(h.dir, "herald.ini")


def rewrite_ini(h, **changes):
    """Change keys of h's herald.ini (None removes one), written atomically."""
    with open(ini_path(h)) as f:
        lines = f.read().splitlines()
    out, seen = [], set()
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in changes:
            seen.add(key)
            if changes[key] is not None:
                out.append("%s = %s" % (key, changes[key]))
        else:
            out.append(line)
    out += ["%s = %s" % (k, v) for k, v in changes.items() if k not in seen and v is not None]
    write_ini(h, "\n".join(out) + "\n")


def write_ini(h, text):
    tmp = ini_path(h) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, ini_path(h))


def sighup(h, marker="configuration reloaded from", timeout=5.0):
    """Send SIGHUP and wait until the log has one more line containing marker."""
    before = h.log_text().count(marker)
    h.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while h.log_text().count(marker) == before:
        assert time.monotonic() < deadline, "no %r in the log %.0fs after SIGHUP:\n%s" % (
            marker, timeout, h.log_text()[-3000:])
        assert h.running(), "herald died on SIGHUP:\n" + h.log_text()[-3000:]
        time.sleep(0.02)


def status_of(h, token=None, origin=None):
    """The status of one handshake (with the token in the query and this Origin)."""
    headers = {"Origin": origin} if origin else None
    with h.raw() as ws:
        st_, _, _ = ws.handshake("/ws" + ("?token=" + token if token else ""), headers)
        return st_


def receives(h, ws, user):
    tag = uuid.uuid4().hex[:8]
    assert h.publish([user], "still.here", tag) == 1
    assert without_id(next_json(ws)) == {"event": "still.here", "data": tag}


OLD_ORIGIN, NEW_ORIGIN = "https://old.example", "https://new.example"


def test_sighup_applies_new_origins_and_secret_to_new_handshakes_only():
    with Herald(workers=2, config={"allowed_origins": OLD_ORIGIN}) as h:
        old_tok = h.token("old-tab")
        held = [rawws.open_ws(("127.0.0.1", h.port), "/ws?token=" + old_tok,
                              headers={"Origin": OLD_ORIGIN}) for _ in range(4)]
        try:
            assert status_of(h, h.token("x"), NEW_ORIGIN) == 403
            new_secret = "n3w-" + uuid.uuid4().hex
            rewrite_ini(h, allowed_origins=NEW_ORIGIN, secret=new_secret)
            sighup(h)
            assert h.running()
            # Connections made under the old settings are untouched and keep receiving.
            assert h.publish(["old-tab"], "after.reload", 1) == 4
            for ws in held:
                assert without_id(next_json(ws)) == {"event": "after.reload", "data": 1}
                assert ws.alive()
            # New handshakes: the new origin and the new secret only.
            new_tok = h.token("new-tab", secret=new_secret)
            before = h.stats()["handshakes_refused"]
            assert status_of(h, new_tok, OLD_ORIGIN) == 403
            assert status_of(h, h.token("old-secret"), NEW_ORIGIN) == 401
            assert status_of(h, old_tok) == 401
            after = h.stats()["handshakes_refused"]
            assert after["origin"] == before["origin"] + 1
            assert after["bad_token"] == before["bad_token"] + 2
            with rawws.open_ws(("127.0.0.1", h.port), "/ws?token=" + new_tok,
                               headers={"Origin": NEW_ORIGIN}) as ws:
                receives(h, ws, "new-tab")
            assert new_secret not in h.log_text(), "the new secret is in the log"
        finally:
            for ws in held:
                ws.close()


def test_sighup_keeps_settings_that_need_a_restart_and_warns():
    with Herald(workers=2) as h:
        other_port = free_port()
        with h.raw_ws("kept") as ws:
            assert status_of(h) == 401          # no anonymous connections yet
            rewrite_ini(h, listen="127.0.0.1:%d" % other_port, workers="3",
                        allow_anonymous="yes")
            sighup(h)
            log = h.log_text()
            for key in ("listen", "workers"):
                line = "reload: %s changed, which needs a restart; keeping the running value" \
                    % key
                assert log.count(line) == 1, "no (or repeated) warning for %s:\n%s" % (
                    key, log[-2000:])
            assert " warn cfg: reload: listen changed" in log
            # Still 2 workers, still on the old port, nothing on the new one.
            assert h.api_ok("GET", "/health")["workers"] == 2
            receives(h, ws, "kept")
            with pytest.raises(ConnectionRefusedError):
                rawws.RawWS(("127.0.0.1", other_port), 1).close()
            # The reloadable setting in the same file did apply.
            assert status_of(h) == 101


@pytest.mark.parametrize("breakage,error", [
    ("max_message_size = lots", "max_message_size: expected a size such as 64k or 1M"),
    ("allowed_origni = https://typo.example", "unknown key 'allowed_origni'"),
    (None, "No such file or directory"),
], ids=["bad-value", "unknown-key", "file-missing"])
def test_sighup_with_a_file_that_does_not_load_changes_nothing(breakage, error):
    with Herald(workers=2, config={"allowed_origins": OLD_ORIGIN}) as h:
        with h.raw_ws("steady") as ws:
            with open(ini_path(h)) as f:
                good = f.read()
            broken = good.replace("allowed_origins = " + OLD_ORIGIN,
                                  "allowed_origins = " + NEW_ORIGIN)
            assert broken != good
            if breakage is None:
                os.rename(ini_path(h), ini_path(h) + ".away")
            else:
                write_ini(h, broken + breakage + "\n")
            sighup(h, marker="keeping the running configuration")
            line = [ln for ln in h.log_text().splitlines() if "SIGHUP:" in ln]
            assert len(line) == 1 and " error main: SIGHUP: " in line[0], line
            assert ini_path(h) in line[0] and error in line[0], line
            if breakage is not None:
                assert ":%d: " % (len(broken.splitlines()) + 1) in line[0], line
            # Nothing changed: the old origin still in, the new one still out.
            assert status_of(h, h.token("a"), OLD_ORIGIN) == 101
            assert status_of(h, h.token("b"), NEW_ORIGIN) == 403
            receives(h, ws, "steady")
            # A good file after the bad one applies as usual.
            if breakage is None:
                os.rename(ini_path(h) + ".away", ini_path(h))
            write_ini(h, broken)
            sighup(h)
            assert status_of(h, h.token("c"), NEW_ORIGIN) == 101
            assert status_of(h, h.token("d"), OLD_ORIGIN) == 403
            receives(h, ws, "steady")


def test_sighup_log_level_applies_at_once():
    with Herald(workers=2, config={"log_level": "info"}) as h:
        debug_line = "debug auth: conn="
        assert status_of(h, h.token("x", ttl=-3600)) == 401
        time.sleep(0.1)
        assert debug_line not in h.log_text()
        rewrite_ini(h, log_level="debug")
        sighup(h)
        assert status_of(h, h.token("x", ttl=-3600)) == 401
        deadline = time.monotonic() + 3
        while debug_line not in h.log_text():
            assert time.monotonic() < deadline, "no debug line after log_level = debug"
            time.sleep(0.02)
        # Up to error: the reload's own info line is no longer written, nor are warnings.
        rewrite_ini(h, log_level="error", workers="5", allowed_origins=NEW_ORIGIN)
        before = h.log_text()
        h.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while status_of(h, h.token("y"), OLD_ORIGIN) != 403:     # the reload has happened
            assert time.monotonic() < deadline, "the reload did not apply"
            time.sleep(0.05)
        assert status_of(h, h.token("x", ttl=-3600)) == 401
        time.sleep(0.1)
        new = h.log_text()[len(before):]
        # The restart-only warning for workers is logged before the new level applies.
        assert "reload: workers changed, which needs a restart" in new, new
        assert "configuration reloaded" not in new and debug_line not in new, new


# -- SIGTERM, history_file and recovery across a restart ---------------------

def pub_user(h, user, event, data, expect):
    assert h.publish([user], event, data) == expect


def pub_chan(h, ch, event, data, expect):
    j = h.api_ok("POST", "/publish", {"channel": ch, "event": event, "data": data})
    assert j["delivered"] == expect, j


def subscribe(ws, ch, ref, since=None):
    cmd = {"op": "subscribe", "channel": ch, "ref": ref}
    if since is not None:
        cmd["since"] = since
    ws.send_frame(rawws.OP_TEXT, json.dumps(cmd))


def read_until_op(ws, op, n_max=50):
    """Messages up to the first with this op: (messages before it, that frame)."""
    got = []
    for _ in range(n_max):
        m = next_json(ws)
        if m.get("op") == op:
            return got, m
        got.append(m)
    raise AssertionError("no %s frame within %d messages: %r" % (op, n_max, got))


def graceful_close(ws):
    ws.close_frame(1000)
    ws.wait_close(3)
    ws.close()


def test_sigterm_with_history_file_clients_recover_across_the_restart():
    cfg = {"history_file": "{dir}/history", "public_channels": "room:*"}
    room = "room:" + uid()
    with Herald(workers=2, config=cfg) as h:
        hist_file = os.path.join(h.dir, "history")
        ann, bob, carol = user_ws(h, "ann", ""), user_ws(h, "bob", ""), user_ws(h, "carol")
        clients = [ann, bob, carol]
        try:
            stream_frame(ann, True)
            stream_frame(bob, True)
            subscribe(carol, room, 1)
            assert read_until_op(carol, "ok")[0] == []
            pub_user(h, "ann", "m", 1, 1)
            pub_user(h, "ann", "m", 2, 1)
            pub_user(h, "bob", "b", 1, 1)
            pub_chan(h, room, "c", 1, 1)
            ann_last = [next_json(ann)["id"], next_json(ann)["id"]][-1]
            bob_last = next_json(bob)["id"]
            carol_last = next_json(carol)["id"]
            # ann and carol leave; while they are away, before the shutdown:
            graceful_close(ann)
            graceful_close(carol)
            h.wait_stat("connections", 1)
            pub_user(h, "ann", "m", 3, 0)
            pub_user(h, "ann", "m", 4, 0)
            pub_chan(h, room, "c", 2, 0)

            # SIGTERM: bob, still connected, is told 1001; the history is written.
            h.proc.send_signal(signal.SIGTERM)
            assert bob.wait_close(5)[0] == 1001
            bob.close()
            h.proc.wait(10)
            assert h.stop() == 0
            assert os.path.exists(hist_file), "no history file after SIGTERM"
            assert st.S_IMODE(os.stat(hist_file).st_mode) == 0o600
            assert not os.path.exists(h.api_socket)

            h.restart()
            assert not os.path.exists(hist_file), "history file not removed once read"
            # After the restart, before anyone is back:
            pub_user(h, "ann", "m", 5, 0)
            pub_user(h, "bob", "b", 2, 0)
            pub_chan(h, room, "c", 3, 0)

            ann = user_ws(h, "ann", ann_last)
            bob = user_ws(h, "bob", bob_last)
            carol = user_ws(h, "carol")
            clients += [ann, bob, carol]
            replay, f = read_until_op(ann, "stream")
            assert [without_id(m) for m in replay] == \
                [{"event": "m", "data": i} for i in (3, 4, 5)]
            ids = [m["id"] for m in replay]
            assert {epoch(i) for i in ids} == {epoch(ann_last)}, "epoch changed: %r" % ids
            assert offset(ann_last) < offset(ids[0]) < offset(ids[1]) < offset(ids[2])
            assert f == {"op": "stream", "id": ids[-1], "recovered": True}
            replay, f = read_until_op(bob, "stream")
            assert [without_id(m) for m in replay] == [{"event": "b", "data": 2}]
            assert f == {"op": "stream", "id": replay[-1]["id"], "recovered": True}
            subscribe(carol, room, 7, since=carol_last)
            replay, ok = read_until_op(carol, "ok")
            assert [without_id(m) for m in replay] == \
                [{"channel": room, "event": "c", "data": i} for i in (2, 3)]
            assert ok == {"op": "ok", "ref": 7, "id": replay[-1]["id"], "recovered": True}

            # Then live, once each, and nothing else.
            pub_user(h, "ann", "m", 6, 1)
            pub_chan(h, room, "c", 4, 1)
            assert without_id(next_json(ann)) == {"event": "m", "data": 6}
            assert without_id(next_json(carol)) == {"channel": room, "event": "c", "data": 4}
            for ws in (ann, bob, carol):
                no_more(ws)
            assert h.stats()["recoveries"] == {"ok": 3, "failed": 0}
        finally:
            for ws in clients:
                ws.close()


def test_sigterm_without_history_file_clients_are_told_recovered_false():
    room = "room:" + uid()
    with Herald(workers=2, config={"public_channels": "room:*"}) as h:
        ann, carol = user_ws(h, "ann", ""), user_ws(h, "carol")
        clients = [ann, carol]
        try:
            stream_frame(ann, True)
            subscribe(carol, room, 1)
            read_until_op(carol, "ok")
            pub_user(h, "ann", "m", 1, 1)
            pub_chan(h, room, "c", 1, 1)
            ann_last, carol_last = next_json(ann)["id"], next_json(carol)["id"]
            h.proc.send_signal(signal.SIGTERM)
            for ws in (ann, carol):
                assert ws.wait_close(5)[0] == 1001
            h.proc.wait(10)
            assert h.stop() == 0

            h.restart()
            pub_user(h, "ann", "m", 2, 0)
            pub_chan(h, room, "c", 2, 0)
            ann, carol = user_ws(h, "ann", ann_last), user_ws(h, "carol")
            clients += [ann, carol]
            replay, f = read_until_op(ann, "stream")
            assert replay == [] and f["recovered"] is False, (replay, f)
            assert epoch(f["id"]) != epoch(ann_last)
            subscribe(carol, room, 2, since=carol_last)
            replay, ok = read_until_op(carol, "ok")
            assert replay == [] and ok["recovered"] is False, (replay, ok)
            assert epoch(ok["id"]) == epoch(f["id"])
            pub_user(h, "ann", "m", 3, 1)
            assert without_id(next_json(ann)) == {"event": "m", "data": 3}
            no_more(ann)
            no_more(carol)
            assert h.stats()["recoveries"] == {"ok": 0, "failed": 2}
        finally:
            for ws in clients:
                ws.close()


# -- --check-config -----------------------------------------------------------

def check_config(path, *extra):
    p = subprocess.run([herald_bin(), "--check-config", "-c", str(path)] + list(extra),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


SECRET = "check-config-secret-0123456789"


@pytest.mark.parametrize("lines,lineno,message", [
    (["workers = 2", "max_message_size = abc"], 4,
     "max_message_size: expected a size such as 64k or 1M, got 'abc'"),
    (["listne = 127.0.0.1:1"], 3, "unknown key 'listne'"),
    (["workers = 2", "workers = 3"], 4, "repeated key 'workers' (first set on line 3)"),
    (["ping_interval = 500ms"], 3, "ping_interval"),
    (["trusted_proxies = 10.0.0.0/99"], 3, "trusted_proxies"),
    (["command_burst = 0"], 3, "command_burst"),
], ids=["bad-size", "unknown-key", "repeated-key", "ping-out-of-range", "bad-proxy",
        "burst-zero"])
def test_check_config_names_file_line_and_key(tmp_path, lines, lineno, message):
    ini = tmp_path / "herald.ini"
    ini.write_text("[herald]\nsecret = %s\n%s\n" % (SECRET, "\n".join(lines)))
    rc, out, err = check_config(ini)
    assert rc == 1 and out == "", (rc, out, err)
    assert err.count("\n") == 1, "expected one line, got %r" % err
    assert err.startswith("herald: %s:%d: " % (ini, lineno)), err
    assert message in err, err
    assert SECRET not in err


def test_check_config_accepts_a_good_file_and_binds_nothing(tmp_path):
    port = free_port()
    api = tmp_path / "api.sock"
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    ini = tmp_path / "herald.ini"
    ini.write_text("[herald]\nlisten = 127.0.0.1:%d\napi_socket = %s\nsecret_file = %s\n"
                   "max_connections = 100\nmax_connections_per_ip = 10\n"
                   "trusted_proxies = 127.0.0.1, 10.0.0.0/8, unix\ncommand_rate = 20\n"
                   "history_file = %s\n" % (port, api, secret_file, tmp_path / "hist"))
    rc, out, err = check_config(ini)
    assert (rc, out, err) == (0, "config ok\n", "")
    assert not api.exists(), "--check-config created the API socket"
    with pytest.raises(ConnectionRefusedError):
        rawws.RawWS(("127.0.0.1", port), 1).close()
    # The secret file is read: an unreadable one is an error naming the key.
    secret_file.unlink()
    rc, out, err = check_config(ini)
    assert rc == 1 and err.count("\n") == 1, (rc, err)
    assert err.startswith("herald: %s:4: secret_file: cannot read" % ini), err
    # So are an empty one and one over 64k; the error does not show what the file holds.
    for text, why in (("\n", "is empty"), ("s" * (64 * 1024 + 1), "is larger than 64k")):
        secret_file.write_text(text)
        rc, out, err = check_config(ini)
        assert rc == 1 and out == "" and err.count("\n") == 1, (rc, out, err)
        assert err.startswith("herald: %s:4: secret_file: " % ini) and why in err, err
        assert "ssss" not in err, err


# -- heartbeats ---------------------------------------------------------------

def other_event(observer, timeout=3.0):
    """The observer's next message that is not about itself (it sees its own join)."""
    while True:
        m = next_json(observer, timeout)
        if m.get("user") != "observer":
            return m


def test_a_client_that_stops_answering_pings_is_dropped_and_forgotten_everywhere():
    cfg = {"ping_interval": "1s", "presence_channels": "room:*", "public_channels": "room:*"}
    room = "room:" + uid()
    with Herald(workers=2, config=cfg) as h:
        observer = h.raw_ws("observer")      # answers pings (recv_data does)
        mute = h.raw_ws("mute")
        try:
            subscribe(observer, room, 1)
            read_until_op(observer, "ok")
            subscribe(mute, room, 1)
            _, ok = read_until_op(mute, "ok")
            silent_since = time.monotonic()  # the last byte mute sends
            assert other_event(observer) == {"op": "join", "channel": room, "user": "mute"}
            s = h.stats()
            assert (s["connections"], s["users"]) == (2, 2)
            # mute now reads nothing and answers nothing. The observer keeps answering.
            leave = other_event(observer, timeout=6)
            gone_after = time.monotonic() - silent_since
            assert leave == {"op": "leave", "channel": room, "user": "mute"}
            print("\nheartbeat: a silent client was dropped %.2f s after its last byte "
                  "(ping_interval 1s)" % gone_after)
            assert 0.9 <= gone_after <= 3.0, gone_after
            s = h.wait_stat("connections", 1)
            assert (s["connections"], s["users"]) == (1, 1)
            assert h.api_ok("GET", "/presence?user=mute")["online"] is False
            members = h.api_ok("GET", "/presence?channel=" + room)["members"]
            assert [m["user"] for m in members] == ["observer"]
            assert h.publish(["mute"], "anyone", 1) == 0
            # The answering client outlives several intervals and still receives.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                with pytest.raises(rawws.Timeout):     # answers pings meanwhile
                    observer.recv_data(max(0.01, deadline - time.monotonic()))
            receives(h, observer, "observer")
            assert h.stats()["connections"] == 1
        finally:
            observer.close()
            mute.close()


# -- backpressure ---------------------------------------------------------------

def test_stalled_readers_are_cut_at_max_queued_bytes_others_unhurt_memory_bounded():
    """
    10 readers that never read and 2 that do; 400 broadcasts of 256 KiB (100 MiB to each
    reader). A broadcast's frame is shared, so what a stalled reader pins is every frame it
    has not been written yet: uncapped (max_queued_bytes = 1G) the daemon's RSS grows by
    about 96 MiB (124 MiB under ASan). With max_queued_bytes = 1M each stalled reader is
    dropped with 1008 once 1 MiB behind, RSS grows by a few MiB (about 20 under ASan, with
    its quarantine held to 16 MiB), and the reading clients get all 400 promptly.
    """
    n_slow, n_pub = 10, 400
    env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16")
           .lstrip(":")}
    with Herald(workers=2, config={"max_queued_bytes": "1M"}, env=env) as h:
        slow = []
        for i in range(n_slow):
            ws = h.raw_ws("stalled-%d" % i)
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.append(ws)
        fast = [h.raw_ws("fast-%d" % i) for i in range(2)]
        try:
            h.wait_stat("connections", n_slow + 2)
            base = peak = rss_kib(h.proc.pid)
            pad = "p" * 262144
            delivered, latency = [], []
            for i in range(n_pub):
                t0 = time.monotonic()
                delivered.append(h.broadcast("flood", {"i": i, "pad": pad}))
                for ws in fast:
                    m = next_json(ws, timeout=5)
                    assert m["data"]["i"] == i, m["data"]["i"]
                latency.append(time.monotonic() - t0)
                if i % 10 == 0:
                    peak = max(peak, rss_kib(h.proc.pid))
            peak = max(peak, rss_kib(h.proc.pid))
            latency.sort()
            grew_mb = (peak - base) / 1024.0
            print("\nbackpressure: %d broadcasts of 256 KiB to %d stalled + 2 reading clients; "
                  "delivered %d -> %d; fast readers' latency median %.1f ms, p99 %.1f ms, "
                  "max %.1f ms; RSS %.1f MiB -> peak %.1f MiB (+%.1f MiB)" % (
                      n_pub, n_slow, delivered[0], delivered[-1],
                      latency[len(latency) // 2] * 1000, latency[int(len(latency) * .99)] * 1000,
                      latency[-1] * 1000, base / 1024.0, peak / 1024.0, grew_mb))
            assert delivered[0] == n_slow + 2 and delivered[-1] == 2, delivered
            assert delivered == sorted(delivered, reverse=True), "a dropped reader came back"
            assert latency[-1] < 2.0, "a reading client waited %.2fs for a broadcast" % latency[-1]
            assert grew_mb < 48, "RSS grew by %.1f MiB" % grew_mb
            s = h.wait_stat("connections", 2)
            assert s["slow_consumers"] == n_slow and s["connections"] == 2
            assert h.log_text().count("closing with 1008") == n_slow
            for i in range(n_slow):
                assert h.publish(["stalled-%d" % i], "gone", 1) == 0
            for i, ws in enumerate(fast):
                receives(h, ws, "fast-%d" % i)
        finally:
            for ws in slow + fast:
                ws.close()


def test_a_recovery_larger_than_max_queued_bytes_is_not_a_1008_loop():
    """
    A tab away while 10 messages of 10 KB were published comes back with since; the
    replay (100 KB) is over max_queued_bytes (64k). It must get its 101 and then either
    the whole replay with recovered true, or recovered false: it must not be closed, or
    it would reconnect with the same since and be closed again, for as long as the
    history lasts. (Before df7fc2d the 101 itself was dropped with the queue and the
    client got a bare close frame 1008.)
    """
    with Herald(workers=1, config={"max_queued_bytes": "64k"}) as h:
        with user_ws(h, "away", "") as ws:
            since = stream_frame(ws, True)
        h.wait_stat("connections", 0)
        for i in range(10):
            pub_user(h, "away", "e", {"i": i, "pad": "x" * 10000}, 0)
        for attempt in range(2):
            with h.raw(timeout=3) as ws:
                status, _, body = ws.handshake("/ws?since=%s&token=%s"
                                               % (since, h.token("away")))
                assert status == 101, body
                replay, f = read_until_op(ws, "stream")
                if f["recovered"]:
                    assert [m["data"]["i"] for m in replay] == list(range(10))
                else:
                    assert replay == []
        assert h.stats()["slow_consumers"] == 0

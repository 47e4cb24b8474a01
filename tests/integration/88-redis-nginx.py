"""
88-redis-nginx.py -- the Redis engine as docs/deploy.md deploys it: several Herald processes
behind one nginx upstream (section 10), and two machines sharing one Redis (section 11), built
from the shipped files:

  deploy/cluster/herald.ini            one machine: the ini every node reads; Redis on a unix
                                       socket (a private redis-server, tests/lib/redis.py)
  deploy/cluster/herald-two-boxes.ini  two machines: Redis by IP:PORT with redis_password_file
                                       (a redis-server on 127.0.0.1 that wants the password)
  systemd/herald@.service              each node runs with its ExecStart's flags: --listen
                                       unix:/run/herald/ws-N.sock, --api-socket
                                       /run/herald/api-N.sock, --node-name HOST-N
  nginx/herald-map-cluster.conf        in http{} in place of herald-map.conf: the least_conn
                                       upstream, its server lines replaced by this run's sockets;
                                       nginx/herald.conf in server{} (tests/lib/nginx.py)

Only paths and addresses are replaced (each checked to occur): /run/herald/ and /etc/herald/
move under temp dirs, Redis's socket or address becomes the test server's, %i is the node's
number and %l the host's short name. The nodes are tests/lib/herald.py's Herald (each must exit
0 on SIGTERM with a clean stderr); visitors speak WebSocket to nginx on 127.0.0.1 with the
site's Host and Origin and the token as herald.js sends it (subprotocol, ?since=).

Proves:
- one machine, three nodes: six visitors through nginx are spread over the nodes (each
  node's /stats connections: at most one apart, all three used); a publish on node 1's API
  reaches the visitors held by nodes 2 and 3, exactly once, and no one else; with node 1
  holding two and the others none, the next two visitors go to nodes 2 and 3 (least_conn:
  round robin would give node 1 one of them);
- a node stopped (SIGTERM, as `systemctl stop herald@2`): its visitors get close 1001, the
  others stay connected; each reconnects through the same nginx with ?since=<last id>, lands on
  a node still running, and gets what was published meanwhile, in order, then
  {"op":"stream","recovered":true}, then live messages, once;
- two machines, each nginx and two nodes, one Redis that refuses commands without the
  password: every node's engine is available (so redis_password_file worked); a visitor on
  machine 2 receives what machine 1's API publishes; machine 2's nodes stopped, it reconnects
  to machine 1 (as a balancer or DNS would send it) with since and recovers what it missed;
- both inis pass `herald --check-config`, alone and with the unit's ExecStartPre flags;
  ExecStart is ExecStartPre without --check-config; the inis leave listen, api_socket and
  node_name to the unit; nginx/herald-map-cluster.conf is herald-map.conf word for word but
  its opening comment and the upstream, whose servers are the unit's sockets 1..4, as many as
  the guide's `systemctl enable --now herald@{1..4}`.
"""

import asyncio
import configparser
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import websockets.client
import websockets.exceptions

import nginx
from herald import REPO, Herald, expect_nothing, herald_bin, uid
from redis import Cluster, RedisServer

CLUSTER = REPO / "deploy" / "cluster"
UNIT = REPO / "systemd" / "herald@.service"
MAP = REPO / "nginx" / "herald-map.conf"
MAP_CLUSTER = REPO / "nginx" / "herald-map-cluster.conf"
GUIDE = REPO / "docs" / "deploy.md"

HOST = "shop.example.com"
ORIGIN = "https://shop.example.com"
ID_RE = re.compile(r"[0-9a-f]{8}:(0|[1-9][0-9]*)")

# The test nginx's server{}: the site's name, /ws from nginx/herald.conf.
SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        server_name %s;
        include {tmp}/herald.conf;
        location / {{ return 404; }}
    }}""" % HOST

UPSTREAM_SERVER = re.compile(r"^    server unix:/run/herald/ws-(\d+)\.sock;\n", re.M)


# -- the shipped files ---------------------------------------------------------------------------

def rewrite(path, table):
    """The file's text with each (old, new) of table replaced; each old must occur in it."""
    text = path.read_text()
    for old, new in table:
        assert old in text, "%s no longer contains %r: update docs/deploy.md and %s" % (
            path.relative_to(REPO), old, os.path.basename(__file__))
        text = text.replace(old, new)
    return text


def ini_keys(text):
    """The [herald] keys of an ini (the cluster files have no [site] section)."""
    p = configparser.ConfigParser(interpolation=None, comment_prefixes=(";",),
                                  inline_comment_prefixes=None)
    p.read_string(text)
    assert p.sections() == ["herald"], p.sections()
    return dict(p["herald"])


def unit_line(key):
    """The value of the one `key=` line of systemd/herald@.service."""
    values = re.findall(r"^%s=(.*)$" % re.escape(key), UNIT.read_text(), re.M)
    assert len(values) == 1, (key, values)
    return values[0]


def unit_flags(n, host, rundir, key="ExecStart"):
    """
    The flags the unit gives instance n after `-c /etc/herald/herald.ini`, as a list: %i is n,
    %l the short host name, /run/herald/ the run dir (systemd's RuntimeDirectory).
    """
    argv = unit_line(key).split()
    assert argv[:3] == ["/usr/local/bin/herald", "-c", "/etc/herald/herald.ini"], argv
    return [a.replace("%i", str(n)).replace("%l", host).replace("/run/herald/", rundir + "/")
            for a in argv[3:]]


def flag_map(flags):
    """["--listen", "unix:...", ...] as {"--listen": "unix:...", ...}."""
    assert len(flags) % 2 == 0 and all(f.startswith("--") for f in flags[::2]), flags
    return dict(zip(flags[::2], flags[1::2]))


def short_hostname():
    """systemd's %l: the host name up to its first dot."""
    return socket.gethostname().split(".")[0]


# -- a machine: nodes of herald@.service and nginx in front ---------------------------------------

class ClusterNginx(nginx.Nginx):
    """
    The shared test nginx (tests/lib/nginx.py) with nginx/herald-map-cluster.conf in http{} in
    place of herald-map.conf, its four server lines replaced by one per socket given.
    """

    def __init__(self, sockets):
        super().__init__("unix:/nonexistent/unused.sock", SERVER)
        try:
            text = MAP_CLUSTER.read_text()
            assert UPSTREAM_SERVER.findall(text) == ["1", "2", "3", "4"], text
            at = UPSTREAM_SERVER.search(text).start()
            text = UPSTREAM_SERVER.sub("", text)
            text = text[:at] + "".join("    server unix:%s;\n" % s for s in sockets) + text[at:]
            with open(os.path.join(self.tmp, MAP_CLUSTER.name), "w") as f:
                f.write(text)
            include = "include {tmp}/herald-map.conf;"
            assert self.conf_template.count(include) == 1, self.conf_template
            self.conf_template = self.conf_template.replace(
                include, "include {tmp}/%s;" % MAP_CLUSTER.name)
        except BaseException:
            self.cleanup()
            raise


class Machine:
    """Nodes 1..n as herald@N.service runs them on one host, and the host's nginx."""

    def __init__(self, ini, table, host, n):
        self.host = host
        self.rundir = None      # systemd's /run/herald, made by start()
        self.keys = ini_keys(rewrite(CLUSTER / ini, table))
        self.nodes = []
        self.sockets = []
        self.nginx = None
        self.n = n

    def start(self):
        self.rundir = tempfile.mkdtemp(prefix="herald-run-%d-" % os.getpid())
        for i in range(1, self.n + 1):
            flags = unit_flags(i, self.host, self.rundir)
            f = flag_map(flags)
            assert set(f) == {"--listen", "--api-socket", "--node-name"}, f
            # The harness writes the deploy file's keys, and listen and api_socket as the flags
            # set them (so that it knows where to talk); the flags are given as the unit gives
            # them.
            cfg = dict(self.keys, listen=f["--listen"], api_socket=f["--api-socket"],
                       node_name=f["--node-name"])
            h = Herald(config=cfg, args=flags)
            self.nodes.append(h)
            h.start()
            self.sockets.append(f["--listen"][len("unix:"):])
        for h in self.nodes:
            Cluster.wait_available(h, True, 10.0)
        self.nginx = ClusterNginx(self.sockets).start()
        return self

    def stop(self):
        """Every node still running with SIGTERM (exit 0, clean stderr), then nginx."""
        for h in self.nodes:
            h.stop()
        for s in self.sockets:
            assert not os.path.lexists(s), "%s left behind" % s
        if self.nginx is not None:
            self.nginx.stop()

    def cleanup(self):
        if self.nginx is not None:
            self.nginx.cleanup()
        for h in self.nodes:
            h.cleanup()
        if self.rundir is not None:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def counts(self):
        """Each running node's open WebSockets (/stats connections); None for a stopped one."""
        return [h.stats()["connections"] if h.running() else None for h in self.nodes]

    def logs(self):
        out = ["--- %s\n%s" % (h.config.get("node_name"), h.log_text()[-2000:])
               for h in self.nodes]
        if self.nginx is not None:
            out.append("--- nginx\n" + self.nginx.errors()[-2000:])
        return "\n".join(out)


@contextlib.contextmanager
def running(*machines):
    """Start the machines; stop them cleanly at the end (asserting), clean up always."""
    try:
        for m in machines:
            m.start()
        yield machines
        for m in machines:
            m.stop()
    except BaseException:
        for m in machines:
            print(m.logs())
        raise
    finally:
        for m in machines:
            m.cleanup()


@contextlib.contextmanager
def redis_server(**kw):
    """A RedisServer, stopped with SIGTERM at the end (exit 0 asserted), removed always."""
    r = RedisServer(**kw)
    try:
        r.start()
        yield r
        r.stop()
    finally:
        r.cleanup()


@pytest.fixture
def etc():
    """The temp dir standing for /etc/herald: the site's secret and the Redis password."""
    d = tempfile.mkdtemp(prefix="herald-etc-%d-" % os.getpid())
    with open(os.path.join(d, "shop.secret"), "w") as f:
        f.write(os.urandom(32).hex() + "\n")              # openssl rand -hex 32
    with open(os.path.join(d, "redis.password"), "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    for name in ("shop.secret", "redis.password"):
        os.chmod(os.path.join(d, name), 0o440)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def one_box(redis, etc, n=3):
    """Section 10: deploy/cluster/herald.ini, Redis on its unix socket."""
    return Machine("herald.ini", [("/run/redis/redis-server.sock", redis.socket_path),
                                  ("/etc/herald/", etc + "/")], short_hostname(), n)


# -- visitors -----------------------------------------------------------------------------------

class Visitor:
    """A WebSocket through nginx, as herald.js opens it: token as subprotocol, ?since=."""

    def __init__(self, machine, user):
        self.m = machine
        self.user = user
        self.ws = None
        self.last = None        # the id of the last message of the user's stream
        self.node = None        # index of the node that holds it, found from /stats

    async def open(self, since="", nginx_of=None):
        ngx = (nginx_of or self.m).nginx
        token = self.m.nodes[0].token(self.user)
        url = "ws://%s/ws?since=%s" % (HOST, urllib.parse.quote(since, safe=""))
        self.ws = await websockets.client.connect(
            url, host="127.0.0.1", port=ngx.port, origin=ORIGIN,
            subprotocols=["herald", "herald.token." + token], open_timeout=5, close_timeout=2)
        assert self.ws.subprotocol == "herald"
        return self

    async def next(self, timeout=3.0):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), raw
        return json.loads(raw)

    async def stream(self, recovered=True):
        """Messages replayed before the {"op":"stream"} frame, which is checked."""
        replay = []
        while True:
            m = await self.next()
            if m.get("op") == "stream":
                assert set(m) == {"op", "id", "recovered"} and m["recovered"] is recovered, m
                assert ID_RE.fullmatch(m["id"]), m
                self.last = m["id"]
                return replay
            replay.append(m)

    async def message(self):
        """The next message, an event of the user stream; its id becomes .last."""
        m = await self.next()
        assert ID_RE.fullmatch(m.get("id", "")), m
        self.last = m.pop("id")
        return m

    async def close(self):
        if self.ws is not None:
            await self.ws.close()


async def connect_counted(m, v, since="", nginx_of=None, timeout=3.0):
    """Open v through nginx and find, from the nodes' /stats, which node took it."""
    before = m.counts()
    await v.open(since, nginx_of)
    replay = await v.stream()
    deadline = time.monotonic() + timeout
    while True:
        now = m.counts()
        up = [i for i, (a, b) in enumerate(zip(before, now))
              if a is not None and b is not None and b == a + 1]
        if len(up) == 1 and sum(x or 0 for x in now) == sum(x or 0 for x in before) + 1:
            v.node = up[0]
            return replay
        assert time.monotonic() < deadline, "no single node took %s: %r -> %r" % (
            v.user, before, now)
        await asyncio.sleep(0.05)


async def wait_idle(m, timeout=5.0):
    """Wait until no running node holds a connection (those of a previous test are gone)."""
    deadline = time.monotonic() + timeout
    while any(c for c in m.counts()):
        assert time.monotonic() < deadline, "connections left: %r" % (m.counts(),)
        await asyncio.sleep(0.05)


def publish(h, user, event, data):
    """POST /publish through one node's API socket; asserts 200 ok."""
    j = h.api_ok("POST", "/publish", {"users": [user], "event": event, "data": data})
    assert isinstance(j["delivered"], int), j
    return j


async def closed_with(v, code, timeout=5.0):
    """v's connection is closed by the server with `code` (nothing else arrives first)."""
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        m = await asyncio.wait_for(v.ws.recv(), timeout)
        raise AssertionError("%s: expected a close, got %r" % (v.user, m))
    assert v.ws.close_code == code, (v.user, v.ws.close_code, v.ws.close_reason)


# -- one machine, three nodes --------------------------------------------------------------------

def test_visitors_are_spread_over_the_nodes_and_a_publish_on_node_1_reaches_the_others(
        etc, run):
    with redis_server() as redis, running(one_box(redis, etc)) as (m,):
        async def go():
            await wait_idle(m)
            vs = [Visitor(m, uid("spread")) for _ in range(6)]
            try:
                for v in vs:
                    assert await connect_counted(m, v) == []
                counts = m.counts()
                assert sum(counts) == 6 and max(counts) - min(counts) <= 1, counts
                assert sorted({v.node for v in vs}) == [0, 1, 2], [v.node for v in vs]

                # Node 1's API, a visitor held by node 2 and one held by node 3.
                targets = [next(v for v in vs if v.node == k) for k in (1, 2)]
                for i, v in enumerate(targets):
                    publish(m.nodes[0], v.user, "order.shipped", {"order": i})
                for i, v in enumerate(targets):
                    assert await v.message() == {"event": "order.shipped",
                                                 "data": {"order": i}}, v.user
                for v in vs:
                    await expect_nothing(v.ws, 0.5)

                # least_conn, not round robin: with node 1 holding two and the others none,
                # the next two go to nodes 2 and 3 (round robin would give node 1 one more).
                for v in vs:
                    if v.node != 0:
                        await v.close()
                deadline = time.monotonic() + 5
                while m.counts() != [2, 0, 0]:
                    assert time.monotonic() < deadline, m.counts()
                    await asyncio.sleep(0.05)
                more = [Visitor(m, uid("least")) for _ in range(2)]
                vs += more
                for v in more:
                    await connect_counted(m, v)
                assert sorted(v.node for v in more) == [1, 2], [v.node for v in more]
                assert m.counts() == [2, 1, 1], m.counts()
            finally:
                for v in vs:
                    await v.close()
        run(go())


def test_a_stopped_nodes_visitors_get_1001_and_recover_on_another_node_through_nginx(
        etc, run):
    with redis_server() as redis, running(one_box(redis, etc)) as (m,):
        async def go():
            await wait_idle(m)
            vs = [Visitor(m, uid("moved")) for _ in range(6)]
            try:
                for v in vs:
                    await connect_counted(m, v)
                for v in vs:
                    publish(m.nodes[0], v.user, "seen", 0)
                    assert await v.message() == {"event": "seen", "data": 0}

                # systemctl stop herald@2: SIGTERM; Herald closes every WebSocket with 1001.
                gone = [v for v in vs if v.node == 1]
                stay = [v for v in vs if v.node != 1]
                assert gone and stay, [v.node for v in vs]
                loop = asyncio.get_running_loop()
                stopping = loop.run_in_executor(None, m.nodes[1].stop)
                for v in gone:
                    await closed_with(v, 1001)
                await stopping
                assert m.counts()[1] is None

                # Published while they are away, through node 1 and node 3.
                for v in gone:
                    for i in range(3):
                        publish(m.nodes[(0, 2)[i % 2]], v.user, "missed", i)

                # herald.js reconnects with ?since=<last id>; nginx skips the stopped node.
                for v in gone:
                    last = v.last
                    replay = await connect_counted(m, v, since=last)
                    assert v.node in (0, 2), v.node
                    assert [{k: x[k] for k in x if k != "id"} for x in replay] == \
                        [{"event": "missed", "data": i} for i in range(3)], replay
                    offsets = [int(x["id"].split(":")[1]) for x in replay]
                    start = int(last.split(":")[1]) + 1
                    assert offsets == list(range(start, start + 3)), (last, replay)
                    assert v.last == replay[-1]["id"]

                # Live again, each once; those that stayed never noticed.
                for v in vs:
                    publish(m.nodes[2], v.user, "live", 1)
                for v in vs:
                    assert await v.message() == {"event": "live", "data": 1}, v.user
                for v in vs:
                    await expect_nothing(v.ws, 0.3)
                assert sum(m.counts()[k] for k in (0, 2)) == 6, m.counts()
            finally:
                for v in vs:
                    await v.close()
        run(go(), timeout=45)
        assert "ws-2.sock" in m.nginx.errors(), "nginx never tried the stopped node"


# -- two machines, one Redis with a password ----------------------------------------------------

def test_two_machines_share_one_redis_with_a_password_and_a_visitor_moves_between_them(
        etc, run):
    with open(os.path.join(etc, "redis.password")) as f:
        password = f.read().strip()
    with redis_server(port=0) as redis:
        # redis.conf on the Redis machine: requirepass (set here once it answers PING).
        redis.cli("CONFIG", "SET", "requirepass", password)
        assert redis.cli("DBSIZE").startswith("NOAUTH"), "Redis should want the password"
        table = [("10.0.0.5:6379", "127.0.0.1:%d" % redis.port), ("/etc/herald/", etc + "/")]
        web1 = Machine("herald-two-boxes.ini", table, "web1", 2)
        web2 = Machine("herald-two-boxes.ini", table, "web2", 2)
        with running(web1, web2):
            assert [h.config["node_name"] for h in web1.nodes + web2.nodes] == \
                ["web1-1", "web1-2", "web2-1", "web2-2"]

            async def go():
                v = Visitor(web2, uid("far"))
                try:
                    await connect_counted(web2, v)
                    # web1's PHP publishes through web1's own API socket.
                    publish(web1.nodes[0], v.user, "note", "from web1")
                    assert await v.message() == {"event": "note", "data": "from web1"}
                    await expect_nothing(v.ws, 0.5)

                    # web2 goes down (its nodes stopped as at a shutdown).
                    loop = asyncio.get_running_loop()
                    stopping = [loop.run_in_executor(None, h.stop) for h in web2.nodes]
                    await closed_with(v, 1001)
                    for s in stopping:
                        await s
                    publish(web1.nodes[1], v.user, "note", "while away")

                    # The balancer (or DNS) sends the reconnect to web1.
                    replay = await connect_counted(web1, v, since=v.last, nginx_of=web1)
                    assert [{k: x[k] for k in x if k != "id"} for x in replay] == \
                        [{"event": "note", "data": "while away"}], replay
                    publish(web1.nodes[0], v.user, "note", "back")
                    assert await v.message() == {"event": "note", "data": "back"}
                    await expect_nothing(v.ws, 0.3)
                finally:
                    await v.close()
            run(go(), timeout=45)


# -- the files agree -----------------------------------------------------------------------------

@pytest.mark.parametrize("ini", ["herald.ini", "herald-two-boxes.ini"])
def test_the_cluster_ini_passes_check_config_alone_and_with_the_units_flags(ini, etc):
    rundir = tempfile.mkdtemp(prefix="herald-run-%d-" % os.getpid())
    try:
        text = rewrite(CLUSTER / ini, [("/etc/herald/", etc + "/")])
        keys = ini_keys(text)
        assert keys["engine"] == "redis" and keys["redis_address"], keys
        for key in ("listen", "api_socket", "node_name"):
            assert key not in keys, "%s sets %s, which herald@.service gives each node" % (
                ini, key)
        path = os.path.join(rundir, "herald.ini")
        with open(path, "w") as f:
            f.write(text)
        pre = unit_flags(1, short_hostname(), rundir, key="ExecStartPre")
        assert pre[-1] == "--check-config", pre
        for flags in ([], pre[:-1]):
            r = subprocess.run([herald_bin(), "-c", path] + flags + ["--check-config"],
                               capture_output=True, text=True, timeout=30, cwd=rundir)
            assert r.returncode == 0 and "config ok" in r.stdout + r.stderr, \
                "herald --check-config %s refused deploy/cluster/%s:\n%s%s" % (
                    " ".join(flags), ini, r.stdout, r.stderr)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def test_the_unit_nginx_and_guide_agree():
    # The check before each start is the start itself, checked.
    assert unit_line("ExecStartPre") == unit_line("ExecStart") + " --check-config"
    f = flag_map(unit_flags(7, "web1", "/run/herald"))
    assert f == {"--listen": "unix:/run/herald/ws-7.sock",
                 "--api-socket": "/run/herald/api-7.sock", "--node-name": "web1-7"}, f
    # nginx's upstream: the unit's sockets 1..4, least_conn, the counts shared by the workers.
    text = MAP_CLUSTER.read_text()
    up = re.search(r"^upstream herald_ws \{\n(.*?)^\}\n", text, re.M | re.S)
    assert up and "    least_conn;\n" in up.group(1) and "    zone herald_ws " in up.group(1)
    assert UPSTREAM_SERVER.findall(up.group(1)) == ["1", "2", "3", "4"]
    guide = GUIDE.read_text()
    assert "systemctl enable --now herald@{1..4}" in guide
    # The guide shows the unit's ExecStart as it is (deploy/cluster/ files: 96-deploy.py).
    assert "\nExecStart=%s\n" % unit_line("ExecStart") in guide
    # Everything else is herald-map.conf's: the maps and the log format cannot drift apart.
    single = MAP.read_text()
    up1 = re.search(r"^upstream herald_ws \{\n.*?^\}\n", single, re.M | re.S)

    def body(t, start):
        return t[t.index("\n\n") + 2:start]

    assert body(text, up.start()).startswith(body(single, up1.start())), \
        "the maps of herald-map-cluster.conf differ from herald-map.conf's"
    assert text[up.end():] == single[up1.end():], \
        "the log format of herald-map-cluster.conf differs from herald-map.conf's"

"""
nginx.py -- a private nginx for the tests, fronting Herald with the snippets a site includes.

Debian's /usr/sbin/nginx, single process, `daemon off`, everything under a temporary prefix,
on 127.0.0.1:<free port>. The repository's nginx/herald-map.conf and nginx/herald.conf are
copied in with only two strings replaced, each checked to occur exactly once: the upstream
address (unix:/run/herald/ws.sock becomes the test's socket or TCP address) and the access log
path. Each suite gives its own server{} body; `{tmp}` in it is the prefix, `{port}` the port.
Used by 50-nginx.py and 90-browser.py. nginx is stopped by its own PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from herald import REPO, _pdeathsig, free_port
from procs import Child, stop_child

NGINX = "/usr/sbin/nginx"
SNIPPET_UPSTREAM = "server unix:/run/herald/ws.sock;"
SNIPPET_LOG = "access_log /var/log/nginx/herald-ws.access.log "

HTTP_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {{tmp}}/nginx.pid;
error_log {{tmp}}/error.log info;
events {{{{ worker_connections 256; }}}}
http {{{{
    client_body_temp_path {{tmp}}/body;
    proxy_temp_path {{tmp}}/proxy;
    fastcgi_temp_path {{tmp}}/fastcgi;
    uwsgi_temp_path {{tmp}}/uwsgi;
    scgi_temp_path {{tmp}}/scgi;
    # The site's own log, in the default (combined) format that would record ?token=.
    access_log {{tmp}}/site-access.log combined;
    include {{tmp}}/herald-map.conf;
{server}
}}}}
"""


def read(path):
    """A file's text, or "" when it does not exist (yet)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def copy_snippet(name, old, new, dest_dir):
    """Copy nginx/<name> to dest_dir with `old` (which must occur exactly once) replaced."""
    with open(os.path.join(REPO, "nginx", name)) as f:
        text = f.read()
    assert text.count(old) == 1, "%s should mention %s exactly once" % (name, old)
    with open(os.path.join(dest_dir, name), "w") as f:
        f.write(text.replace(old, new))


class Nginx(Child):
    """nginx in front of Herald at `upstream` ("unix:/path" or "127.0.0.1:port")."""

    def __init__(self, upstream, server, **fmt):
        self.tmp = tempfile.mkdtemp(prefix="herald-nginx-%d-" % os.getpid())
        self.conf_template = HTTP_CONF.format(server=server)
        self.fmt = fmt
        self.proc = None
        self.port = None
        self.access_log = os.path.join(self.tmp, "herald-ws.access.log")
        self.site_log = os.path.join(self.tmp, "site-access.log")
        self.error_log = os.path.join(self.tmp, "error.log")
        try:
            for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                os.mkdir(os.path.join(self.tmp, d))
            copy_snippet("herald-map.conf", SNIPPET_UPSTREAM, "server %s;" % upstream, self.tmp)
            copy_snippet("herald.conf", SNIPPET_LOG, "access_log %s " % self.access_log,
                         self.tmp)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def start(self):
        """Start on a free port; retried when the port is taken in between."""
        for _ in range(5):
            self.port = free_port()
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self.conf_template.format(tmp=self.tmp, port=self.port, **self.fmt))
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.tmp, "-c", conf, "-e", self.error_log],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=_pdeathsig)
            if self._wait_listening(5.0):
                return self
            self.stop()
            if "Address already in use" not in self.errors():
                raise RuntimeError("nginx did not start:\n" + self.errors())
        raise RuntimeError("nginx found no free port")

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        """SIGQUIT (graceful: flushes the logs), SIGKILL after 5 s; by PID only."""
        if self.proc is not None:
            stop_child(self.proc, signal.SIGQUIT)
        self.proc = None

    def cleanup(self):
        """Stop nginx and remove its prefix."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def errors(self):
        return read(self.error_log)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

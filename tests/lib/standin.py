"""
standin.py -- a server on a unix socket that stands in for Herald, so a test
can see exactly what a client (PHP's helper, nginx) sends and script what it
gets back. Subclasses implement handle(conn); each accepted connection is
handled in turn on one background thread.
"""
import socket
import threading


class UnixStandIn:
    def __init__(self, path, backlog=16):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.handle(c)

    def handle(self, conn):
        """Serve one connection; the subclass owns closing it."""
        raise NotImplementedError

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()

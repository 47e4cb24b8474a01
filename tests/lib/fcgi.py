"""
fcgi.py -- a minimal FastCGI client (responder role) for the integration tests.

Speaks just enough of the FastCGI 1.0 record protocol to drive Herald's API
socket the way nginx and PHP do: BEGIN_REQUEST, PARAMS (name-value pairs, then
an empty PARAMS record), STDIN (the body, then an empty STDIN record), and reads
STDOUT/STDERR until END_REQUEST. The STDOUT stream is a CGI response (headers,
a blank line, the body); the "Status:" header gives the HTTP status.

Also exports the pieces the negative tests need to build broken input by hand:
record(), encode_params(), and raw_exchange() to send arbitrary bytes and see
what comes back (or whether the server hangs up).

Every socket operation has a timeout; nothing here can block forever.
"""

import socket
import struct
import threading
import time

FCGI_VERSION_1 = 1

FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_DATA = 8
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_UNKNOWN_TYPE = 11

FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1

FCGI_REQUEST_COMPLETE = 0

HEADER = struct.Struct(">BBHHBx")  # version, type, requestId, contentLength, paddingLength
MAX_CONTENT = 0xFFFF


class FcgiError(Exception):
    """The peer broke the protocol, closed early, or did not answer in time."""


class CIDict(dict):
    """A dict of header fields whose keys compare case-insensitively."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in items:
            self[k] = v

    def __setitem__(self, key, value):
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


class Response:
    """One FastCGI answer: the parsed CGI response plus the raw streams."""

    def __init__(self, status, headers, body, stdout, stderr, app_status, protocol_status):
        self.status = status                    # HTTP status from "Status:" (200 if absent)
        self.headers = headers                  # CIDict of the CGI response headers
        self.body = body                        # bytes after the blank line
        self.stdout = stdout                    # the whole STDOUT stream
        self.stderr = stderr                    # the whole STDERR stream
        self.app_status = app_status            # END_REQUEST appStatus
        self.protocol_status = protocol_status  # END_REQUEST protocolStatus

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, dict(self.headers), self.body[:200])


def record(rtype, request_id, content=b"", version=FCGI_VERSION_1, padding=None,
           content_length=None):
    """
    Encode one record. padding defaults to aligning the record to 8 bytes;
    content_length overrides the length field (to lie about it in tests).
    """
    if padding is None:
        padding = (8 - len(content) % 8) % 8
    if content_length is None:
        content_length = len(content)
    return HEADER.pack(version, rtype, request_id, content_length, padding) + content + \
        b"\0" * padding


def stream_records(rtype, request_id, data):
    """Encode a stream (PARAMS, STDIN): as many records as needed, then the empty one."""
    out = []
    for off in range(0, len(data), MAX_CONTENT):
        out.append(record(rtype, request_id, data[off:off + MAX_CONTENT]))
    out.append(record(rtype, request_id, b""))
    return b"".join(out)


def _nv_len(n):
    return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    """Encode name-value pairs (str or bytes) in FastCGI's length-prefixed form."""
    out = []
    for name, value in params.items():
        if isinstance(name, str):
            name = name.encode()
        if isinstance(value, str):
            value = value.encode()
        out.append(_nv_len(len(name)) + _nv_len(len(value)) + name + value)
    return b"".join(out)


def begin_request(request_id=1, role=FCGI_RESPONDER, keep_conn=False):
    """The BEGIN_REQUEST record."""
    body = struct.pack(">HB5x", role, FCGI_KEEP_CONN if keep_conn else 0)
    return record(FCGI_BEGIN_REQUEST, request_id, body)


def build_params(method, uri, body=b"", extra_params=None):
    """
    The CGI variables nginx's fastcgi_params would send for this request.
    extra_params adds or overrides; a value of None removes the variable.
    """
    path, _, query = uri.partition("?")
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "herald-tests",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "SCRIPT_NAME": path,
        "DOCUMENT_URI": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "application/json" if body else "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
    }
    for k, v in (extra_params or {}).items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = v
    return params


def encode_request(method, uri, body=b"", extra_params=None, request_id=1, keep_conn=False):
    """All the bytes of one request, ready to write."""
    params = build_params(method, uri, body, extra_params)
    return (begin_request(request_id, keep_conn=keep_conn)
            + stream_records(FCGI_PARAMS, request_id, encode_params(params))
            + stream_records(FCGI_STDIN, request_id, body))


def parse_cgi(stdout):
    """Split a CGI response into (status, CIDict headers, body)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = stdout.find(sep)
        if i >= 0:
            head, body = stdout[:i], stdout[i + len(sep):]
            break
    else:
        raise FcgiError("no end of CGI headers in STDOUT: %r" % stdout[:300])
    headers = CIDict()
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise FcgiError("malformed CGI header line %r" % line)
        headers[name.decode("latin-1").strip()] = value.decode("latin-1").strip()
    status = 200
    if "Status" in headers:
        try:
            status = int(headers["Status"].split()[0])
        except (ValueError, IndexError):
            raise FcgiError("malformed Status header %r" % headers["Status"])
    return status, headers, body


class Connection:
    """
    One FastCGI connection to a unix socket (or (host, port) tuple). With
    keep_conn=True the connection stays open after each END_REQUEST and later
    requests reuse it; if the server hangs up instead, the next request
    raises FcgiError rather than silently reconnecting.
    """

    def __init__(self, address, timeout=5.0, keep_conn=False):
        self.address = address
        self.timeout = timeout
        self.keep_conn = keep_conn
        self.sock = None
        self._buf = b""
        self.requests = 0

    def connect(self):
        fam = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.address)
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_exact(self, n, deadline):
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FcgiError("timed out waiting for the FastCGI answer")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise FcgiError("timed out waiting for the FastCGI answer")
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise FcgiError("connection closed by the server after %d of %d bytes"
                                % (len(self._buf), n))
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_record(self, deadline):
        """Read one record: (version, type, request_id, content)."""
        version, rtype, rid, clen, plen = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        content = self._read_exact(clen, deadline)
        self._read_exact(plen, deadline)
        return version, rtype, rid, content

    def request(self, method, uri, body=b"", extra_params=None, request_id=1):
        """Send one request and read its answer; returns a Response."""
        if self.sock is None:
            if self.requests and self.keep_conn:
                raise FcgiError("keep-conn connection already closed")
            self.connect()
        if isinstance(body, str):
            body = body.encode()
        data = encode_request(method, uri, body, extra_params, request_id, self.keep_conn)
        self.sock.settimeout(self.timeout)
        writer = None
        if len(data) <= 65536:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise FcgiError("server closed the connection while we sent: %s" % e)
        else:
            # Like nginx, keep reading while a big body goes out: the server
            # may answer (413) before it has read everything.
            writer = threading.Thread(target=self._send_quietly, args=(data,), daemon=True)
            writer.start()
        self.requests += 1
        try:
            return self._read_response(request_id)
        finally:
            if writer is not None:
                writer.join(self.timeout)

    def _send_quietly(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _read_response(self, request_id):
        deadline = time.monotonic() + self.timeout
        stdout, stderr = [], []
        while True:
            version, rtype, rid, content = self.read_record(deadline)
            if version != FCGI_VERSION_1:
                raise FcgiError("record with version %d" % version)
            if rid != request_id:
                raise FcgiError("record for request %d, expected %d" % (rid, request_id))
            if rtype == FCGI_STDOUT:
                stdout.append(content)
            elif rtype == FCGI_STDERR:
                stderr.append(content)
            elif rtype == FCGI_END_REQUEST:
                if len(content) != 8:
                    raise FcgiError("END_REQUEST of %d bytes" % len(content))
                app_status, proto_status = struct.unpack(">IB3x", content)
                break
            else:
                raise FcgiError("unexpected record type %d" % rtype)
        if not self.keep_conn:
            self.close()
        out = b"".join(stdout)
        status, headers, resp_body = parse_cgi(out)
        return Response(status, headers, resp_body, out, b"".join(stderr), app_status,
                        proto_status)

    def server_closed(self, wait=0.5):
        """True if the server has closed this (idle) connection within `wait` seconds."""
        if self.sock is None:
            return True
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return data == b""


def request(address, method, uri, body=b"", extra_params=None, timeout=5.0):
    """One request on a fresh connection; returns a Response (iterable as status, headers, body)."""
    return Connection(address, timeout=timeout).request(method, uri, body, extra_params)


def raw_exchange(address, data, timeout=2.0, close_after=None, chunks=None):
    """
    Connect, write `data` (or each of `chunks`, with a short pause between),
    then read until the server closes or `timeout` passes. With close_after
    set (seconds), hang up ourselves after that long instead. Returns
    (received bytes, True if the server closed the connection).
    """
    fam = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    received = b""
    closed = False
    try:
        s.connect(address)
        try:
            for i, c in enumerate(chunks if chunks is not None else [data]):
                if i:
                    time.sleep(0.05)
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            return received, True
        limit = close_after if close_after is not None else timeout
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    finally:
        s.close()
    return received, closed


def pipelined(address, n, wait=1.0):
    """
    n kept requests (GET /stats and /health in turn, ids 1..n) written at once, nothing
    waiting for an answer; returns the answers' (request id, status), in the order read.
    """
    data = b"".join(encode_request("GET", "/health" if i % 2 else "/stats",
                                   request_id=i + 1, keep_conn=True) for i in range(n))
    got, _ = raw_exchange(address, data, timeout=wait + 2, close_after=wait)
    out, status = [], {}
    for _, t, rid, c in parse_records(got):
        if t == FCGI_STDOUT and c.startswith(b"Status: "):
            status[rid] = int(c.split()[1])
        elif t == FCGI_END_REQUEST:
            out.append((rid, status.get(rid)))
    return out


def parse_records(data):
    """Split bytes into complete records [(version, type, request_id, content)], tail ignored."""
    out = []
    off = 0
    while off + HEADER.size <= len(data):
        version, rtype, rid, clen, plen = HEADER.unpack_from(data, off)
        end = off + HEADER.size + clen + plen
        if end > len(data):
            break
        out.append((version, rtype, rid, data[off + HEADER.size:off + HEADER.size + clen]))
        off = end
    return out

"""
rawws.py -- a raw-socket WebSocket client for feeding Herald malformed input.

Unlike the websockets library, nothing here is validated or fixed up on the
way out: the tests choose every header of the opening handshake and every bit
of every frame (FIN, RSV, opcode, mask, which length encoding, lying lengths,
fragments), then read what the server answers frame by frame, wait for its
close frame and code, and detect when it drops the TCP connection.

The address is (host, port) for TCP or a str path for a unix socket. Every
read has a deadline. next_json(ws) and until_stream(ws) read Herald's JSON
frames and a recovery's replay.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

from fcgi import CIDict

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Closed(Exception):
    """The server closed the TCP connection while we expected data."""


class Timeout(Exception):
    """Nothing (or not enough) arrived before the deadline."""


def accept_key(key):
    """The Sec-WebSocket-Accept value the server must send for this key."""
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def new_key(nbytes=16):
    return base64.b64encode(os.urandom(nbytes)).decode()


def mask_bytes(payload, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                length_form=None, declared_len=None):
    """
    Encode one client frame.
      rsv          3-bit value placed in RSV1..RSV3 (4 = RSV1, 2 = RSV2, 1 = RSV3)
      mask         False sends the payload unmasked with the MASK bit clear
      length_form  None (minimal), 7, 16 or 64: which length encoding to use
      declared_len the length written in the header, if it should differ from
                   len(payload) (the payload is sent as given)
    """
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if declared_len is None else declared_len
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if n < 126 else (16 if n < 65536 else 64)
    if length_form == 7:
        head = struct.pack(">BB", b0, mbit | n)
    elif length_form == 16:
        head = struct.pack(">BBH", b0, mbit | 126, n)
    elif length_form == 64:
        head = struct.pack(">BBQ", b0, mbit | 127, n)
    else:
        raise ValueError("length_form must be 7, 16 or 64")
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    """The payload of a close frame: 2-byte code plus reason, or empty."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack(">H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack(">H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        return "Frame(fin=%d rsv=%d op=%d masked=%d len=%d %r)" % (
            self.fin, self.rsv, self.opcode, self.masked, len(self.payload), self.payload[:80])


class RawWS:
    """
    One raw connection. Use as a context manager, or call close(). source: a local
    address to connect from (TCP only), such as "127.0.0.2" for another client address.
    """

    def __init__(self, address, timeout=3.0, source=None):
        self.address = address
        self.timeout = timeout
        fam = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            if source is not None:
                self.sock.bind((source, 0))
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise
        self.buf = b""
        self.eof = False
        self.key = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- bytes ---------------------------------------------------------

    def send(self, data):
        """Write raw bytes. Returns False if the server already hung up."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("no data before the deadline (have %d bytes)" % len(self.buf))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("no data before the deadline (have %d bytes)" % len(self.buf))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the server (have %d bytes)" % len(self.buf))
        self.buf += chunk

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker, timeout=None, limit=1 << 20):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (marker, limit))
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def wait_eof(self, timeout=None):
        """
        Read (and discard) until the server closes the TCP connection. Returns
        True if it did within the timeout, False if it is still open.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self.buf = b""
        if self.eof:
            return True
        while True:
            try:
                self._fill(deadline)
            except Closed:
                return True
            except Timeout:
                return False
            self.buf = b""

    # -- handshake -----------------------------------------------------

    def handshake(self, path="/ws", headers=None, method="GET", version="HTTP/1.1",
                  extra_lines=(), extra=b"", raw=None, timeout=None):
        """
        Send an opening handshake and read the response head (and body, by
        Content-Length). headers override the defaults (Host, Upgrade,
        Connection, Sec-WebSocket-Key, Sec-WebSocket-Version); a value of None
        drops that header. extra_lines are appended verbatim as header lines,
        `extra` is written in the same send right after the head, and `raw`
        replaces the whole request. Returns (status, CIDict headers, body).
        On 101 any bytes after the head stay buffered for recv_frame().
        """
        if raw is None:
            self.key = new_key()
            h = {
                "Host": "127.0.0.1",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": self.key,
                "Sec-WebSocket-Version": "13",
            }
            for k, v in (headers or {}).items():
                for existing in list(h):
                    if existing.lower() == k.lower():
                        del h[existing]
                if v is not None:
                    h[k] = v
            self.key = next((v for k, v in h.items() if k.lower() == "sec-websocket-key"),
                            None)
            lines = ["%s %s %s" % (method, path, version)]
            lines += ["%s: %s" % kv for kv in h.items()]
            lines += list(extra_lines)
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not self.send(raw + extra):
            raise Closed("server closed before the handshake was sent")
        return self.read_response(timeout)

    def read_response(self, timeout=None):
        """Read an HTTP response head (and its Content-Length body)."""
        head = self.read_until(b"\r\n\r\n", timeout)
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError("bad status line %r" % lines[0])
        status = int(parts[1])
        headers = CIDict()
        self.header_list = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
            self.header_list.append((name.strip(), value.strip()))
        body = b""
        if status != 101 and "Content-Length" in headers:
            body = self.read_exact(int(headers["Content-Length"]), timeout)
        elif status != 101:
            # No length: the body runs to the end of the connection.
            deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
            try:
                while True:
                    self._fill(deadline)
            except Closed:
                pass
            body, self.buf = self.buf, b""
        return status, headers, body

    # -- frames --------------------------------------------------------

    def send_frame(self, opcode, payload=b"", **kw):
        """build_frame() and send it; False if the server already hung up."""
        return self.send(build_frame(opcode, payload, **kw))

    def ping(self, payload=b""):
        return self.send_frame(OP_PING, payload)

    def close_frame(self, code=None, reason=b""):
        return self.send_frame(OP_CLOSE, close_payload(code, reason))

    def recv_frame(self, timeout=None):
        """Read one server frame. Raises Timeout, or Closed on EOF."""
        t = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + t

        def need(n):
            while len(self.buf) < n:
                self._fill(deadline)

        need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            need(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            hlen = 4
        elif n == 127:
            need(10)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            hlen = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            need(hlen + 4)
            key = self.buf[hlen:hlen + 4]
            hlen += 4
        need(hlen + n)
        payload = self.buf[hlen:hlen + n]
        if masked:
            payload = mask_bytes(payload, key)
        self.buf = self.buf[hlen + n:]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def recv_data(self, timeout=None):
        """
        The next data frame, answering server pings and skipping pongs. A close
        frame is returned as is, so callers see it.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            return f

    def expect_pong(self, payload, timeout=None):
        """Wait for the pong carrying `payload`, skipping other frames except close."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PONG and f.payload == payload:
                return f
            if f.opcode == OP_CLOSE:
                raise AssertionError("expected a pong, got close %r %r"
                                     % (f.close_code, f.close_reason))

    def wait_close(self, timeout=None):
        """
        Read frames until the server's close frame. Returns (code or None for
        an empty payload, reason bytes). Raises Closed if the TCP connection
        ends without a close frame, Timeout if nothing comes.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                self.last_close = f
                return f.close_code, f.close_reason

    def alive(self, timeout=None):
        """Prove the connection is still usable: a ping gets its pong."""
        tag = os.urandom(8).hex().encode()
        if not self.ping(tag):
            raise AssertionError("connection closed by the server")
        self.expect_pong(tag, timeout)
        return True


def open_ws(address, path, headers=None, timeout=3.0):
    """Connect and complete a handshake; asserts 101 and a correct Accept."""
    ws = RawWS(address, timeout)
    try:
        status, h, body = ws.handshake(path, headers)
        assert status == 101, "handshake refused: %d %r" % (status, body)
        assert h.get("Sec-WebSocket-Accept") == accept_key(ws.key), \
            "bad Sec-WebSocket-Accept %r" % h.get("Sec-WebSocket-Accept")
    except BaseException:
        ws.close()
        raise
    return ws


def next_json(ws, timeout=5.0):
    """The next data frame of a RawWS, which must be a text frame of valid JSON, decoded."""
    f = ws.recv_data(timeout)
    assert f.opcode == OP_TEXT, f
    try:
        return json.loads(f.payload)
    except ValueError:
        raise AssertionError("a frame that is not JSON: %r" % f.payload[:300])


def until_stream(ws, n_max=200):
    """Messages up to the {"op":"stream"} frame (after ?since=): (messages, that frame)."""
    got = []
    for _ in range(n_max):
        m = next_json(ws)
        if m.get("op") == "stream":
            return got, m
        got.append(m)
    raise AssertionError("no stream frame within %d messages: %r" % (n_max, got[:3]))

"""
20-frames.py -- WebSocket frames after the handshake, sent bit by bit with
rawws: control frames, fragmentation, UTF-8 validation across fragments,
the message size limit, every length encoding, the close handshake, and a
client that vanishes mid-frame.

Each protocol error must close with the right code, bump
/stats protocol_errors["<code>"], and leave a bystander client receiving.
Each accepted sequence must leave the connection usable (a ping gets its
pong) and no protocol error counted.
"""

import json
import socket
import struct
import time

import pytest

import rawws
from herald import Herald, wait_connections
from rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame

MAX = 100 * 1024

HERALD_CONFIG = {"max_message_size": "100k"}


def fr(op, payload=b"", **kw):
    return build_frame(op, payload, **kw)


def close_fr(code=None, reason=b""):
    return fr(OP_CLOSE, rawws.close_payload(code, reason))


def total_protocol_errors(h):
    return sum(h.stats()["protocol_errors"].values())


def assert_protocol_error(h, bystander, code, frames, user="frames"):
    """Send frames on a fresh connection; expect close `code`, TCP close, a counter bump."""
    before = h.stats()["protocol_errors"][str(code)]
    with h.raw_ws(user) as ws:
        for f in frames:
            if not ws.send(f):
                break
        got, reason = ws.wait_close(5)
        assert got == code, "expected close %d, got %r %r" % (code, got, reason)
        assert ws.last_close.fin and not ws.last_close.masked
        ws.close_frame(code)  # answer the close, as a client would
        assert ws.wait_eof(3), "TCP connection still open after close %d" % code
    s = h.wait_stat("protocol_errors.%d" % code, before + 1)
    assert s["protocol_errors"][str(code)] == before + 1
    bystander.check()


def assert_stays_open(h, frames, user="frames-ok"):
    """Send frames; the connection must still answer a ping and nothing is counted."""
    before = total_protocol_errors(h)
    with h.raw_ws(user) as ws:
        for f in frames:
            assert ws.send(f), "server hung up"
        assert ws.alive(3)
    assert total_protocol_errors(h) == before


# -- transport ------------------------------------------------------------

def test_frames_arriving_byte_by_byte_are_reassembled(herald):
    with herald.raw_ws("dribble") as ws:
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A command split across two fragments, sent a byte at a time: the
        # answer echoes its ref, so it shows the message was put together whole.
        cmd = '{"op":"unsubscribe","channel":"a","ref":"fragmenté ✓'.encode()
        data = fr(OP_TEXT, cmd, fin=False) + fr(OP_CONT, b' end"}') + \
            fr(OP_PING, b"tiny steps") + fr(OP_BINARY, b"x" * 300)
        for i in range(len(data)):
            assert ws.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)
        f = ws.recv_frame(3)
        assert f.opcode == OP_TEXT
        assert json.loads(f.payload) == {"op": "ok", "ref": "fragmenté ✓ end"}
        f = ws.recv_frame(3)
        assert (f.opcode, f.payload) == (OP_PONG, b"tiny steps")
        assert ws.alive()


def test_a_thousand_pings_in_one_write_get_one_pong_for_the_last(herald):
    # RFC 6455 5.5.3: a pong for the latest ping suffices. Herald keeps at most one pong
    # waiting per connection (a ping flood from a client that never reads holds one
    # pong, not one per ping: 82-hostile-ws), so the burst is answered once, with the
    # last payload (or a few times, if the write arrives in several reads).
    with herald.raw_ws("burst") as ws:
        ws.send(b"".join(fr(OP_PING, b"%d" % i) for i in range(1000)))
        got = []
        while not got or got[-1] != b"999":
            f = ws.recv_frame(5)
            assert f.opcode == OP_PONG, f
            got.append(f.payload)
        assert len(got) <= 3, got
        with pytest.raises(rawws.Timeout):
            ws.recv_frame(0.3)
        assert ws.alive()


# -- control frames -------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"hello", b"\x00\xff" * 10, b"p" * 125],
                         ids=["empty", "text", "binary", "125-bytes"])
def test_ping_gets_pong_with_same_payload(herald, payload):
    with herald.raw_ws("pinger") as ws:
        ws.ping(payload)
        f = ws.recv_frame(3)
        assert (f.opcode, f.payload, f.fin, f.masked) == (OP_PONG, payload, True, False)


def test_unsolicited_pong_is_ignored(herald):
    assert_stays_open(herald, [fr(OP_PONG, b"unasked")])


def test_ping_of_126_bytes_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_PING, b"p" * 126)])


def test_fragmented_ping_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_PING, b"p", fin=False)])


# -- frame header errors --------------------------------------------------

def test_unmasked_frame_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_TEXT, b"hi", mask=False)])


@pytest.mark.parametrize("rsv", [4, 2, 1], ids=["rsv1", "rsv2", "rsv3"])
def test_rsv_bit_is_1002(herald, bystander, rsv):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_TEXT, b"hi", rsv=rsv)])


@pytest.mark.parametrize("opcode", [3, 7, 0xB, 0xF])
def test_reserved_opcode_is_1002(herald, bystander, opcode):
    assert_protocol_error(herald, bystander, 1002, [fr(opcode, b"x")])


def test_64bit_length_with_top_bit_set_is_1002(herald, bystander):
    head = struct.pack(">BBQ", 0x82, 0x80 | 127, 1 << 63) + b"\0\0\0\0"
    assert_protocol_error(herald, bystander, 1002, [head])


# -- fragmentation --------------------------------------------------------

def test_continuation_without_start_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_CONT, b"orphan")])


def test_new_text_inside_fragmented_message_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002,
                          [fr(OP_TEXT, b"part one", fin=False), fr(OP_TEXT, b"intruder")])


def test_new_binary_inside_fragmented_text_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002,
                          [fr(OP_TEXT, b"part one", fin=False), fr(OP_BINARY, b"intruder")])


def test_ping_between_fragments_gets_pong_and_message_completes(herald):
    before = total_protocol_errors(herald)
    with herald.raw_ws("interleave") as ws:
        ws.send(fr(OP_TEXT, b"first ", fin=False))
        ws.send(fr(OP_CONT, b"second ", fin=False))
        ws.ping(b"mid-message")
        f = ws.recv_frame(3)
        assert (f.opcode, f.payload) == (OP_PONG, b"mid-message")
        ws.send(fr(OP_CONT, b"last"))
        assert ws.alive()
        # and a new message may start after the fragmented one ended
        ws.send(fr(OP_TEXT, b"next"))
        assert ws.alive()
    assert total_protocol_errors(herald) == before


def test_fragmented_binary_is_accepted(herald):
    assert_stays_open(herald, [fr(OP_BINARY, b"\x00\x01", fin=False),
                               fr(OP_CONT, b"\x02", fin=False), fr(OP_CONT, b"\x03")])


# -- UTF-8 ----------------------------------------------------------------

def test_valid_multibyte_text_and_empty_text_are_accepted(herald):
    assert_stays_open(herald, [fr(OP_TEXT, "héllo ✓ 😀 €".encode()), fr(OP_TEXT, b"")])


def test_binary_is_not_checked_for_utf8(herald):
    assert_stays_open(herald, [fr(OP_BINARY, b"\xff\xfe\xc0\xaf")])


@pytest.mark.parametrize("payload", [
    b"\xff\xfe",
    b"abc\xc0\xaf",           # overlong '/'
    b"\xed\xa0\x80",          # UTF-16 surrogate U+D800
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"ok so far \xe2\x82",    # truncated at the end of the message
    b"\x80",                  # lone continuation byte
], ids=["ff-fe", "overlong", "surrogate", "above-max", "truncated", "lone-continuation"])
def test_invalid_utf8_text_is_1007(herald, bystander, payload):
    assert_protocol_error(herald, bystander, 1007, [fr(OP_TEXT, payload)])


def test_code_point_split_across_fragments_is_accepted(herald):
    euro = "€".encode()      # e2 82 ac
    smile = "😀".encode()    # f0 9f 98 80
    assert_stays_open(herald, [
        fr(OP_TEXT, b"price: " + euro[:2], fin=False), fr(OP_CONT, euro[2:]),
        fr(OP_TEXT, smile[:1], fin=False), fr(OP_CONT, smile[1:3], fin=False),
        fr(OP_CONT, smile[3:]),
    ])


def test_invalid_sequence_split_across_fragments_is_1007(herald, bystander):
    assert_protocol_error(herald, bystander, 1007,
                          [fr(OP_TEXT, b"price: \xe2\x82", fin=False), fr(OP_CONT, b"A")])


def test_message_ending_inside_a_code_point_after_fragments_is_1007(herald, bystander):
    assert_protocol_error(herald, bystander, 1007,
                          [fr(OP_TEXT, b"abc", fin=False), fr(OP_CONT, b"\xf0\x9f")])


# -- sizes ----------------------------------------------------------------

def test_16bit_length_frame_is_accepted(herald):
    assert_stays_open(herald, [fr(OP_TEXT, b"a" * 1000, length_form=16)])


def test_64bit_length_frame_is_accepted(herald):
    assert_stays_open(herald, [fr(OP_BINARY, b"b" * 70000, length_form=64)])


def test_message_of_exactly_max_message_size_is_accepted(herald):
    assert_stays_open(herald, [fr(OP_TEXT, b"m" * MAX)])


def test_fragments_adding_up_to_exactly_the_limit_are_accepted(herald):
    third = MAX // 4
    assert_stays_open(herald, [fr(OP_TEXT, b"f" * third, fin=False),
                               fr(OP_CONT, b"f" * third, fin=False),
                               fr(OP_CONT, b"f" * (MAX - 2 * third))])


def test_one_frame_over_max_message_size_is_1009(herald, bystander):
    assert_protocol_error(herald, bystander, 1009, [fr(OP_TEXT, b"x" * (MAX + 1))])


def test_frame_header_announcing_too_much_is_1009_without_the_payload(herald, bystander):
    assert_protocol_error(herald, bystander, 1009,
                          [fr(OP_BINARY, b"", declared_len=10 * 1024 * 1024, length_form=64)])


def test_fragments_adding_up_over_max_message_size_is_1009(herald, bystander):
    part = 40000
    assert_protocol_error(herald, bystander, 1009, [
        fr(OP_TEXT, b"y" * part, fin=False), fr(OP_CONT, b"y" * part, fin=False),
        fr(OP_CONT, b"y" * part)])


# -- close handshake ------------------------------------------------------

@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_client_close_is_echoed_with_same_code(herald, code):
    before = total_protocol_errors(herald)
    with herald.raw_ws("closer") as ws:
        ws.close_frame(code, "bye ✓")
        got, _ = ws.wait_close(3)
        assert got == code
        assert ws.wait_eof(3), "server kept the TCP connection after the close handshake"
    assert total_protocol_errors(herald) == before


def test_empty_close_is_answered_and_connection_closed(herald):
    with herald.raw_ws("closer") as ws:
        ws.close_frame()
        got, _ = ws.wait_close(3)
        assert got in (None, 1000), got
        assert ws.wait_eof(3)


@pytest.mark.parametrize("code", [1005, 999, 1016, 1006, 1015, 0, 5000])
def test_close_with_invalid_code_is_1002(herald, bystander, code):
    assert_protocol_error(herald, bystander, 1002, [close_fr(code)])


def test_close_with_one_byte_payload_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [fr(OP_CLOSE, b"\x03")])


def test_close_reason_not_utf8_is_1007(herald, bystander):
    assert_protocol_error(herald, bystander, 1007, [close_fr(1000, b"bad \xff reason")])


def test_close_of_126_bytes_is_1002(herald, bystander):
    assert_protocol_error(herald, bystander, 1002, [close_fr(1000, b"r" * 124)])


# -- vanishing clients ----------------------------------------------------

def test_client_dropping_tcp_mid_frame_is_cleaned_up(herald, bystander):
    base = herald.stats()["connections"]
    ws = herald.raw_ws("dropper")
    wait_connections(herald, base + 1)
    ws.send(fr(OP_TEXT, b"z" * 1000)[:300])
    ws.close()
    wait_connections(herald, base)
    bystander.check()


def test_client_dropping_tcp_mid_handshake_is_cleaned_up(herald, bystander):
    base = herald.stats()["connections"]
    with herald.raw() as ws:
        ws.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
    time.sleep(0.2)
    wait_connections(herald, base)
    bystander.check()


def test_publishing_to_a_reset_connection_does_not_hurt_the_daemon(herald, bystander):
    base = herald.stats()["connections"]
    ws = herald.raw_ws("vanished")
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close()  # RST
    for i in range(20):
        n = herald.publish(["vanished"], "into.the.void", {"i": i, "pad": "v" * 4000})
        assert n in (0, 1)
    wait_connections(herald, base)
    assert herald.publish(["vanished"], "gone", None) == 0
    bystander.check()


# -- keepalive ------------------------------------------------------------

def test_server_pings_and_drops_a_client_that_never_answers():
    with Herald(config={"ping_interval": "1s"}, workers=1) as h:
        with h.raw_ws("answers") as good, h.raw_ws("mute") as mute:
            pinged = False
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:
                try:
                    f = good.recv_frame(0.2)
                except rawws.Timeout:
                    continue
                assert f.opcode == OP_PING, f
                assert not f.masked and len(f.payload) <= 125
                good.send_frame(OP_PONG, f.payload)
                pinged = True
            assert pinged, "no ping from the server in 5s with ping_interval=1s"
            # the mute client read nothing and answered nothing: it must be gone
            assert mute.wait_eof(3), "client silent for 5 intervals still connected"
            assert good.alive(), "a client answering pings was dropped"
            assert h.publish(["answers"], "still", 1) == 1
            assert h.publish(["mute"], "gone", 1) == 0

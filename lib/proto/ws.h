/*
 * ws.h -- WebSocket (RFC 6455) frame codec, server side.
 *
 * Owns:       struct ws_frame (one parsed header) and struct ws_seq (the
 *             fragmentation state of one connection). No I/O, no allocation.
 * Called by:  conn.c (decode on read), msg.c (encode once per publish).
 * Invariants: pure functions, safe on any thread; input is caller-owned.
 * Errors:     parsers return bytes consumed (>0), WS_NEED_MORE, or
 *             WS_INVALID with *close_code set to the code to close with.
 * Tests:      tests/unit/test_ws.c, tests/fuzz/fuzz_ws.c.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *  | |1|2|3|       |K|             |                               |
 *  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *  |     Extended payload length continued, if payload len == 127  |
 *  + - - - - - - - - - - - - - - - +-------------------------------+
 *  |                               | Masking-key, if MASK set to 1 |
 *  +-------------------------------+-------------------------------+
 *  | Masking-key (continued)       |          Payload Data         |
 *  +-------------------------------- - - - - - - - - - - - - - - - +
 */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_NEED_MORE (-2)
#define WS_INVALID (-1)

/* Largest header the server writes (no mask) and a client sends (mask). */
#define WS_MAX_SERVER_HEADER 10
#define WS_MAX_CLIENT_HEADER 14

#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NO_STATUS 1005 /* never sent on the wire */
#define WS_CLOSE_ABNORMAL 1006  /* never sent on the wire */
#define WS_CLOSE_BAD_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

/* One frame header as read off the wire. */
struct ws_frame {
    unsigned fin : 1;
    unsigned masked : 1;
    unsigned opcode : 4;
    uint8_t mask[4];
    uint64_t payload_len;
};

/* What the next frame may be, given the frames before it on one connection. */
struct ws_seq {
    uint8_t in_message; /* a TEXT/BINARY without FIN was seen */
    uint8_t opcode;     /* WS_OP_TEXT or WS_OP_BINARY while in_message */
};

/*
 * Parse one client frame header from buf[0..len). Returns the header length
 * (2..14) with *f filled, WS_NEED_MORE, or WS_INVALID with *close_code set:
 * 1002 for RSV bits, unknown opcodes, an unmasked frame, a fragmented or
 * over-125-byte control frame, a non-minimal or 64-bit length with the top
 * bit set; 1009 when payload_len > max_payload (control frames excepted,
 * which are capped at 125 anyway).
 */
int ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload, struct ws_frame *f,
                    int *close_code);

/*
 * Check a parsed frame against the fragmentation state and advance it.
 * Returns 0, or WS_INVALID with *close_code = 1002 for a CONT outside a
 * message or a TEXT/BINARY inside one. Control frames leave *seq alone.
 */
int ws_seq_next(struct ws_seq *seq, const struct ws_frame *f, int *close_code);

/*
 * XOR n bytes at p with the mask, p being at byte offset `offset` of the
 * payload (so a payload can be unmasked in pieces).
 */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/*
 * Write an unmasked server frame header for a payload of len bytes into
 * out (at least WS_MAX_SERVER_HEADER bytes). Returns its length.
 */
size_t ws_encode_header(uint8_t *out, int fin, int opcode, uint64_t len);

/*
 * Validate a received CLOSE payload (unmasked). Empty is valid (*code =
 * 1005). One byte, a code that may not be sent (RFC 6455 7.4: <1000,
 * 1004-1006, 1015, 1012-2999 unassigned...) or a reason that is not UTF-8
 * makes it invalid: returns WS_INVALID with *close_code set (1002, or 1007
 * for the reason). Returns 0 and *code otherwise.
 */
int ws_parse_close(const uint8_t *payload, size_t len, int *code, int *close_code);

/* Is this a close code a peer may send? (1000-1003, 1007-1011, 3000-4999) */
int ws_close_code_valid(int code);

#endif

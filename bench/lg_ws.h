/*
 * lg_ws.h -- WebSocket (RFC 6455) client side for the load generator: the
 * handshake key and answer check, frame header decoding, masked encoding,
 * and finding the payload's "s" and "t" numbers.
 *
 * Owns:       struct lg_ws_frame (one decoded header). No I/O, no allocation.
 * Called by:  lg_recv.c (key, accept), lg_conn.c (answer, frames, payload).
 * Invariants: pure functions over caller-owned bytes; safe on any thread.
 * Errors:     parsers return bytes consumed (>0), LG_WS_NEED_MORE or
 *             LG_WS_INVALID (picohttpparser's contract, STYLE 3.5.2).
 */
#ifndef HERALD_LG_WS_H
#define HERALD_LG_WS_H

#include <stddef.h>
#include <stdint.h>

#define LG_WS_NEED_MORE (-2)
#define LG_WS_INVALID (-1)

#define LG_WS_OP_CONT 0x0
#define LG_WS_OP_TEXT 0x1
#define LG_WS_OP_BINARY 0x2
#define LG_WS_OP_CLOSE 0x8
#define LG_WS_OP_PING 0x9
#define LG_WS_OP_PONG 0xa

#define LG_WS_KEY_LEN 24       /* base64 of 16 bytes */
#define LG_WS_ACCEPT_LEN 28    /* base64 of a SHA-1 */
#define LG_WS_MAX_HEAD 8192    /* largest handshake answer head we wait for */
#define LG_WS_CLIENT_HEADER 14 /* largest header a client frame needs */

/* One frame header as decoded. */
struct lg_ws_frame {
    unsigned fin;    /* 1 on the last frame of a message */
    unsigned opcode; /* LG_WS_OP_* */
    unsigned masked; /* 1 if the server masked it (a protocol error) */
    uint8_t mask[4]; /* the masking key when masked */
    uint64_t len;    /* payload length */
};

/* Sec-WebSocket-Key for 16 random bytes: 24 base64 characters and a NUL. */
void lg_ws_key(const unsigned char raw[16], char out[LG_WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept a server must answer to key: 28 characters and a NUL. */
void lg_ws_accept(const char *key, char out[LG_WS_ACCEPT_LEN + 1]);

/*
 * Check a handshake answer in buf: "HTTP/1.1 101" with Sec-WebSocket-Accept
 * equal to accept. Returns the head's length (bytes after it are frames),
 * LG_WS_NEED_MORE, or LG_WS_INVALID with *why set to a static reason.
 */
int lg_ws_check_answer(const char *buf, size_t len, const char *accept, const char **why);

/* Decode the frame header at p. Returns its length, NEED_MORE or INVALID. */
int lg_ws_frame_header(const uint8_t *p, size_t len, struct lg_ws_frame *f);

/* XOR len bytes at p with the frame's masking key (server frames should not be masked). */
void lg_ws_unmask(uint8_t *p, uint64_t len, const uint8_t mask[4]);

/*
 * Encode one final client frame (masked with mask) into out, which must hold
 * len + LG_WS_CLIENT_HEADER bytes. Returns the frame's length.
 */
size_t lg_ws_encode(uint8_t *out, unsigned opcode, const uint8_t *payload, size_t len,
                    uint32_t mask);

/*
 * Find the first "s": and "t": numbers in a text message (whitespace
 * allowed around the colon). Returns 0 with both set, -1 if either is absent.
 */
int lg_ws_find_st(const uint8_t *p, size_t len, uint64_t *s, uint64_t *t);

#endif

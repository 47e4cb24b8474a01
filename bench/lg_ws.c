/*
 * lg_ws.c -- WebSocket (RFC 6455) client side for the load generator: the
 * handshake key and answer check, frame header decoding, masked encoding,
 * and finding the payload's "s" and "t" numbers.
 *
 * Owns:       nothing. No I/O, no allocation, no locks.
 * Called by:  lg_recv.c and lg_conn.c, on the receiver thread.
 * Invariants: pure functions; input is caller-owned and read-only except
 *             for lg_ws_unmask, which rewrites it in place.
 * Errors:     bytes consumed (>0), LG_WS_NEED_MORE (-2), LG_WS_INVALID (-1).
 * Spec notes: the answer check wants exactly "HTTP/1.1 101" and the right
 *             Sec-WebSocket-Accept; Upgrade and Connection are not checked
 *             (every server under test sends them, and the accept key
 *             already proves the server understood the request). Header
 *             names compare case-insensitively (RFC 7230 3.2). Reserved
 *             bits are refused as no extension is negotiated (RFC 6455 5.2).
 * Tests:      every run against the four servers under test.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *  |   ... 64-bit length continued | Masking-key, if MASK set to 1 |
 *  +-------------------------------+-------------------------------+
 */
#include "lg_ws.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void lg_ws_key(const unsigned char raw[16], char out[LG_WS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)out, raw, 16);
}

void lg_ws_accept(const char *key, char out[LG_WS_ACCEPT_LEN + 1])
{
    unsigned char cat[LG_WS_KEY_LEN + sizeof ws_guid], digest[SHA_DIGEST_LENGTH];
    size_t klen = strnlen(key, LG_WS_KEY_LEN);

    memcpy(cat, key, klen);
    memcpy(cat + klen, ws_guid, sizeof ws_guid - 1);
    SHA1(cat, klen + sizeof ws_guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* Does the header line [p, end) name `name` (case-insensitively)? Sets *val. */
static int header_is(const char *p, const char *end, const char *name, const char **val)
{
    size_t n = strlen(name);

    if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n) != 0)
        return 0;
    p += n + 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    *val = p;
    return 1;
}

int lg_ws_check_answer(const char *buf, size_t len, const char *accept, const char **why)
{
    const char *head_end = memmem(buf, len, "\r\n\r\n", 4);
    const char *line, *eol, *val;
    int accepted = 0;

    if (head_end == NULL) {
        if (len >= LG_WS_MAX_HEAD) {
            *why = "answer head too large";
            return LG_WS_INVALID;
        }
        return LG_WS_NEED_MORE;
    }
    if ((size_t)(head_end - buf) < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        *why = "status is not 101";
        return LG_WS_INVALID;
    }
    line = (const char *)memchr(buf, '\n', (size_t)(head_end + 2 - buf)) + 1;
    for (; line < head_end + 2; line = eol + 2) {
        eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
        if (header_is(line, eol, "Sec-WebSocket-Accept", &val)) {
            const char *v_end = eol;

            while (v_end > val && (v_end[-1] == ' ' || v_end[-1] == '\t'))
                v_end--;
            if ((size_t)(v_end - val) != LG_WS_ACCEPT_LEN ||
                memcmp(val, accept, LG_WS_ACCEPT_LEN) != 0) {
                *why = "wrong Sec-WebSocket-Accept";
                return LG_WS_INVALID;
            }
            accepted = 1;
        }
    }
    if (!accepted) {
        *why = "no Sec-WebSocket-Accept";
        return LG_WS_INVALID;
    }
    return (int)(head_end + 4 - buf);
}

int lg_ws_frame_header(const uint8_t *p, size_t len, struct lg_ws_frame *f)
{
    size_t need = 2;
    uint64_t n;

    if (len < 2)
        return LG_WS_NEED_MORE;
    if (p[0] & 0x70)
        return LG_WS_INVALID;
    f->fin = p[0] >> 7;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    n = p[1] & 0x7f;
    if (n == 126)
        need += 2;
    else if (n == 127)
        need += 8;
    if (f->masked)
        need += 4;
    if (len < need)
        return LG_WS_NEED_MORE;
    if (n == 126) {
        n = (uint64_t)p[2] << 8 | p[3];
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
        if (n >> 63)
            return LG_WS_INVALID;
    }
    if (f->masked)
        memcpy(f->mask, p + need - 4, 4);
    if (f->opcode >= 8 && (!f->fin || n > 125))
        return LG_WS_INVALID;
    f->len = n;
    return (int)need;
}

void lg_ws_unmask(uint8_t *p, uint64_t len, const uint8_t mask[4])
{
    for (uint64_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];
}

size_t lg_ws_encode(uint8_t *out, unsigned opcode, const uint8_t *payload, size_t len,
                    uint32_t mask)
{
    uint8_t key[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                      (uint8_t)mask};
    size_t h = 2;

    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = payload[i] ^ key[i & 3];
    return h + len;
}

/* Parse the number after `"x"` at p (p points at the opening quote); -1 if none. */
static int number_after_key(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    p += 3;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p != ':')
        return -1;
    p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    for (*v = 0; p < end && *p >= '0' && *p <= '9'; p++)
        *v = *v * 10 + (uint64_t)(*p - '0');
    return 0;
}

int lg_ws_find_st(const uint8_t *p, size_t len, uint64_t *s, uint64_t *t)
{
    const uint8_t *end = p + len, *q = p;
    int have_s = 0, have_t = 0;

    while (!(have_s && have_t) && (q = memchr(q, '"', (size_t)(end - q))) != NULL) {
        if (end - q >= 3 && q[2] == '"') {
            if (q[1] == 's' && !have_s && number_after_key(q, end, s) == 0)
                have_s = 1;
            else if (q[1] == 't' && !have_t && number_after_key(q, end, t) == 0)
                have_t = 1;
        }
        q++;
    }
    return have_s && have_t ? 0 : -1;
}

/*
 * gate.h -- the FastCGI record reader that stands between an API caller
 * and libfcgi: every byte a caller sends passes through it before libfcgi
 * sees anything.
 *
 * Owns:       struct gate, the framing state of one connection (no buffer:
 *             a record split across reads keeps at most its 8 header bytes
 *             and the 8 bytes of a BEGIN_REQUEST body).
 * Called by:  apiconn.c, on whichever API thread holds the connection;
 *             tests/fuzz/fuzz_gate.c.
 * Invariants: pure: no I/O, no locks, no allocation. Content is handed back
 *             as views into the caller's bytes (picohttpparser's contract),
 *             so the caller decides what to keep and how much.
 * Errors:     gate_next returns bytes consumed, or GATE_INVALID with the
 *             reason in *err (gate_strerror names it).
 * Spec notes: FastCGI 1.0 (Open Market, 1996), responder role only. A
 *             connection carries one request at a time: records of another
 *             request id, a second BEGIN_REQUEST before the first ends, and
 *             the other roles are refused rather than answered
 *             FCGI_CANT_MPX_CONN / FCGI_UNKNOWN_ROLE, which no caller of
 *             ours (nginx, the PHP helper) ever needs. Management records
 *             (request id 0) are allowed between requests and reported, so
 *             the caller can answer them itself.
 * Tests:      tests/unit/test_gate.c, tests/fuzz/fuzz_gate.c.
 *
 * A record, as on the wire (big-endian):
 *
 *    0         1        2-3          4-5             6           7
 *   +---------+--------+------------+---------------+-----------+----------+
 *   | version | type   | request id | content length| padding   | reserved |
 *   +---------+--------+------------+---------------+-----------+----------+
 *   | content (0..65535 bytes)            | padding (0..255 bytes)         |
 *
 * A request is BEGIN_REQUEST (8-byte body: role, flags), PARAMS records
 * (name-value pairs, then an empty one), STDIN records (the body, then an
 * empty one). PARAMS content is a stream: a pair may span records.
 */
#ifndef HERALD_GATE_H
#define HERALD_GATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GATE_HEADER 8
#define GATE_VERSION 1
#define GATE_MAX_CONTENT 0xffff

/* Record types (FastCGI 1.0, section 8). */
#define GATE_BEGIN_REQUEST 1
#define GATE_ABORT_REQUEST 2
#define GATE_END_REQUEST 3
#define GATE_PARAMS 4
#define GATE_STDIN 5
#define GATE_STDOUT 6
#define GATE_GET_VALUES 9
#define GATE_GET_VALUES_RESULT 10
#define GATE_UNKNOWN_TYPE 11

#define GATE_RESPONDER 1 /* the only role served */
#define GATE_KEEP_CONN 1 /* BEGIN_REQUEST flag: keep the connection after the answer */

#define GATE_INVALID (-1)

/* What the bytes gate_next consumed turned out to be. */
enum gate_event {
    GATE_NONE,        /* framing only (header, padding): nothing to act on */
    GATE_BEGIN,       /* a request began: request_id and keep_conn are set */
    GATE_PARAMS_DATA, /* PARAMS content in *chunk */
    GATE_PARAMS_END,  /* the empty PARAMS record */
    GATE_STDIN_DATA,  /* STDIN content (the body) in *chunk */
    GATE_STDIN_END,   /* the empty STDIN record: the request is whole */
    GATE_ABORT,       /* the caller aborted the request it had begun */
    GATE_MANAGEMENT,  /* a whole management record; its type in mgmt_type */
};

/* Why bytes were refused. */
enum gate_error {
    GATE_E_VERSION = 1, /* not version 1: not FastCGI at all, most likely */
    GATE_E_TYPE,        /* a type a caller never sends, or unknown */
    GATE_E_ORDER,       /* a record out of its place in the request */
    GATE_E_REQUEST_ID,  /* a record of another request (multiplexing) */
    GATE_E_BEGIN,       /* a BEGIN_REQUEST body that is not 8 bytes */
    GATE_E_ROLE,        /* not the responder role */
};

struct gate_chunk {
    const uint8_t *p; /* borrowed: into the bytes given to gate_next */
    size_t len;
};

struct gate {
    uint8_t hdr[GATE_HEADER]; /* a header split across reads */
    uint8_t hdr_len;
    uint8_t type;     /* of the record being read */
    uint8_t phase;    /* GATE_PHASE_* in gate.c */
    uint8_t body_len; /* bytes of a BEGIN_REQUEST body in body */
    uint8_t body[8];
    uint8_t keep_conn;     /* the request's FCGI_KEEP_CONN flag */
    uint8_t mgmt_type;     /* with GATE_MANAGEMENT */
    uint16_t request_id;   /* of the request being read */
    uint16_t record_id;    /* of the record being read */
    uint32_t content_left; /* content bytes of the record still to come */
    uint32_t padding_left;
    uint8_t in_record; /* past a header, in its content or padding */
};

/* Ready a gate for a new connection. */
void gate_init(struct gate *g);

/*
 * Consume framing from p[0..n): at most up to the next event. Returns bytes
 * consumed (0 only when n is 0) with *ev set, and *chunk for the _DATA
 * events; or GATE_INVALID with *err set, after which the connection must
 * be dropped.
 */
ssize_t gate_next(struct gate *g, const uint8_t *p, size_t n, enum gate_event *ev,
                  struct gate_chunk *chunk, int *err);

/* Is the gate between requests (nothing of a request read)? */
int gate_idle(const struct gate *g);

/*
 * Check a whole PARAMS stream the way libfcgi's reader will walk it: every
 * name and value length (1 byte, or 4 with the top bit set) within the
 * stream. Returns the number of pairs, or -1.
 */
int gate_params_check(const uint8_t *p, size_t n);

/* Write a record header for type, request id, content and padding lengths. */
void gate_header(uint8_t out[GATE_HEADER], int type, unsigned id, size_t clen, size_t plen);

/* A short name for a gate_error, for logs. */
const char *gate_strerror(int err);

#endif

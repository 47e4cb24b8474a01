/*
 * fcgi_client.h -- FastCGI 1.0 client codec: the request Herald sends to
 * php-fpm for RPC and hooks, and a streaming decoder of the answer.
 *
 * Owns:       the request buffer fcgic_encode returns (the caller frees it),
 *             and in struct fcgic_parser the stdout copy (p->out) and the
 *             first FCGIC_ERR_KEEP bytes of stderr (p->err, inline).
 * Called by:  lib/rpc/rpc.c, on a worker thread, which does the socket I/O
 *             with libev and feeds what it reads to fcgic_parser_feed.
 * Invariants: no I/O, no locks, no globals: safe on any thread, one parser
 *             per request. Memory is bounded: stdout by max_stdout, stderr
 *             by FCGIC_ERR_KEEP, everything else by a few fixed bytes.
 * Errors:     fcgic_encode returns 0 or -1; fcgic_parser_feed FCGIC_MORE,
 *             FCGIC_DONE, FCGIC_E_PROTOCOL or FCGIC_E_TOO_LARGE (an error
 *             is sticky); fcgic_parse_response 0 or -1.
 * Tests:      tests/unit/test_fcgi_client.c, tests/fuzz/fuzz_fcgi_client.c.
 */
#ifndef HERALD_FCGI_CLIENT_H
#define HERALD_FCGI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* fcgic_parser_feed results */
#define FCGIC_MORE 0
#define FCGIC_DONE 1
#define FCGIC_E_PROTOCOL (-1)
#define FCGIC_E_TOO_LARGE (-2)

/* END_REQUEST protocolStatus values (FastCGI 1.0, 5.5) */
#define FCGIC_REQUEST_COMPLETE 0
#define FCGIC_CANT_MPX_CONN 1
#define FCGIC_OVERLOADED 2
#define FCGIC_UNKNOWN_ROLE 3

#define FCGIC_HEADER_LEN 8
/*
 * Most content bytes in one record we write: a multiple of 8, so that with
 * its padding a record still holds at most 65535 bytes after the header
 * (php-fpm refuses a PARAMS record whose content plus padding is over that).
 */
#define FCGIC_MAX_CONTENT 65528
#define FCGIC_ERR_KEEP 1024 /* stderr bytes kept in p->err */
#define FCGIC_MAX_HEAD 8192 /* CGI header section, blank line included */

/* One FastCGI parameter (a CGI variable). Not NUL-terminated. */
struct fcgic_param {
    const char *name; /* borrowed */
    size_t name_len;
    const char *value; /* borrowed */
    size_t value_len;
};

/*
 * Whole request: BEGIN_REQUEST (RESPONDER, flags 0: php-fpm closes the
 * connection after the answer), PARAMS records, an empty PARAMS, STDIN
 * records, an empty STDIN. Every record is padded to a multiple of 8. Each
 * PARAMS record holds whole name-value pairs (php-fpm decodes every record
 * on its own), so one pair, length bytes included, must fit in
 * FCGIC_MAX_CONTENT bytes. Returns 0 with a malloc'd buffer in *out (the
 * caller frees it) and its length in *out_len; or -1, with *out NULL, when
 * a pair is too long, request_id is 0 (reserved for management records),
 * a NULL pointer comes with a non-zero length, or the size overflows.
 */
int fcgic_encode(uint16_t request_id, const struct fcgic_param *params, size_t nparams,
                 const char *body, size_t body_len, char **out, size_t *out_len);

/* Where the decoder is within the record stream. */
enum fcgic_state {
    FCGIC_ST_HEADER,  /* reading the 8 header bytes */
    FCGIC_ST_CONTENT, /* reading content_left bytes of content */
    FCGIC_ST_PADDING, /* skipping padding_left bytes */
    FCGIC_ST_DONE,    /* END_REQUEST read: every later byte is ignored */
    FCGIC_ST_ERROR    /* refused: result holds the error, for good */
};

/* Streaming decoder of the answer's records; fields below "after DONE" are the output. */
struct fcgic_parser {
    enum fcgic_state state;
    int result;          /* the sticky error in FCGIC_ST_ERROR */
    uint16_t request_id; /* ours; records for any other id are skipped */
    size_t max_stdout;   /* most stdout bytes accepted */
    uint8_t hdr[FCGIC_HEADER_LEN];
    size_t hdr_len;      /* header bytes read so far */
    uint8_t type;        /* current record's type; 0 while skipping one not ours */
    size_t content_left; /* current record's content bytes still to read */
    size_t padding_left; /* then its padding bytes */
    uint8_t end_body[8]; /* END_REQUEST body, as it arrives */
    size_t end_len;      /* END_REQUEST body bytes read so far */
    size_t out_cap;      /* bytes allocated at out */

    /* after DONE: */
    char *out;                    /* owned: stdout, NUL-terminated, NULL when there was none */
    size_t out_len;               /* stdout bytes, NUL excluded */
    size_t err_len;               /* stderr bytes seen (only the first FCGIC_ERR_KEEP are kept) */
    char err[FCGIC_ERR_KEEP + 1]; /* first stderr bytes, NUL-terminated */
    uint32_t app_status;          /* END_REQUEST appStatus (the script's exit status) */
    int protocol_status; /* END_REQUEST protocolStatus, FCGIC_REQUEST_COMPLETE when served */
};

/* Start decoding the answer to request_id (1..65535) with stdout capped at max_stdout bytes. */
void fcgic_parser_init(struct fcgic_parser *p, uint16_t request_id, size_t max_stdout);

/*
 * Feed bytes as they arrive, in any split. FCGIC_MORE (0) wants more;
 * FCGIC_DONE (1) END_REQUEST seen (bytes after it are ignored, and later
 * calls return FCGIC_DONE again); FCGIC_E_PROTOCOL (-1) a version other
 * than 1, a type other than STDOUT, STDERR or END_REQUEST for our id, or an
 * END_REQUEST body under 8 bytes; FCGIC_E_TOO_LARGE (-2) stdout over
 * max_stdout. Records for another request id, and management records (id
 * 0), are skipped whatever their type. After an error every call returns
 * the same error. data may be NULL when len is 0.
 */
int fcgic_parser_feed(struct fcgic_parser *p, const char *data, size_t len);

/*
 * Free p->out. The caller may keep the stdout instead: copy p->out and set
 * it to NULL before this call, then free() it later. Safe to call twice.
 */
void fcgic_parser_free(struct fcgic_parser *p);

/* A CGI answer, split; the pointers point into the buffer given to fcgic_parse_response. */
struct fcgic_response {
    int status;               /* 100..999 */
    const char *content_type; /* borrowed; NULL when absent */
    size_t content_type_len;
    const char *body; /* borrowed: what follows the blank line */
    size_t body_len;
};

/*
 * Split a CGI answer: header lines ending in "\r\n" or "\n", an empty line,
 * the body. Header names are case-insensitive, values are trimmed of
 * blanks. "Status: NNN reason" (or just NNN, 100..999) sets the status;
 * without it a Location header gives 302, and anything else 200. Returns 0
 * with *r filled, or -1 if malformed: no blank line within the first
 * FCGIC_MAX_HEAD bytes, a header line without ':' or with an empty name or
 * a blank or control byte in its name, or a bad Status.
 */
int fcgic_parse_response(const char *buf, size_t len, struct fcgic_response *r);

#endif

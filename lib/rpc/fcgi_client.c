/*
 * fcgi_client.c -- FastCGI 1.0 client codec: encode one RESPONDER request
 * for php-fpm, decode its answer's records as they arrive, and split the
 * CGI answer (headers, blank line, body) that the STDOUT stream carries.
 *
 * Owns:       the buffer fcgic_encode returns (until the caller takes it),
 *             and a parser's stdout copy (p->out) until fcgic_parser_free.
 *             No I/O, no locks, no globals.
 * Called by:  lib/rpc/rpc.c, on a worker thread: it encodes a call once,
 *             writes the bytes with libev, and feeds every read to the
 *             parser until FCGIC_DONE or an error.
 * Invariants: the parser keeps at most 8 header bytes, 8 END_REQUEST body
 *             bytes, FCGIC_ERR_KEEP stderr bytes and max_stdout + 1 stdout
 *             bytes, whatever the peer sends; it reads each input byte once
 *             and never past len. Every record we write has at most
 *             FCGIC_MAX_CONTENT content bytes and is padded to a multiple
 *             of 8. fcgic_parse_response allocates nothing and returns views
 *             into its input.
 * Spec notes: FastCGI 1.0 (fastcgi-archives "FastCGI Specification").
 *             php-fpm (main/fastcgi.c) reads a PARAMS record whole into a
 *             65535-byte buffer and decodes its pairs on their own, so a
 *             pair never straddles two of our records, and content plus
 *             padding stays within 65535. A management record (id 0) or a
 *             record for another id is skipped unread, whatever its type;
 *             php-fpm answers a type it does not know with UNKNOWN_TYPE on
 *             id 0. DONE comes as soon as END_REQUEST's content is read:
 *             its padding, and anything after it, is ignored.
 * Tests:      tests/unit/test_fcgi_client.c, tests/fuzz/fuzz_fcgi_client.c.
 *
 * A record (FastCGI 1.0, 3.3):
 *
 *   byte 0    version (1)          byte 4-5  contentLength (big-endian)
 *   byte 1    type                 byte 6    paddingLength
 *   byte 2-3  requestId (b-e)      byte 7    reserved
 *   then contentLength bytes of content, then paddingLength bytes.
 *
 * A name-value pair: nameLength, valueLength (each 1 byte when <= 127, else
 * 4 bytes big-endian with the top bit set), then the name, then the value.
 */
#include "fcgi_client.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define FCGI_VERSION 1
#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_RESPONDER 1
#define SKIP 0           /* p->type of a record that is not ours */
#define END_BODY_LEN 8   /* appStatus(4) protocolStatus(1) reserved(3) */
#define NV_SHORT_MAX 127 /* longest length in the 1-byte form */
#define OUT_MIN_CAP 4096 /* first stdout allocation, when max_stdout allows */

/* An output buffer. With p NULL it only counts, and notes a count that would overflow. */
struct wbuf {
    uint8_t *p; /* borrowed; NULL: count only */
    size_t len;
    int overflow;
};

static const uint8_t zeros[8];

/* Append n bytes from src (or count them). */
static void put(struct wbuf *w, const void *src, size_t n)
{
    if (n > SIZE_MAX - w->len) {
        w->overflow = 1;
        return;
    }
    if (w->p != NULL && n > 0)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

/* Padding bytes after clen content bytes, up to a multiple of 8. */
static size_t pad_len(size_t clen)
{
    return (8 - clen % 8) % 8;
}

/* Append a record header for clen (<= FCGIC_MAX_CONTENT) content bytes. */
static void put_header(struct wbuf *w, uint8_t type, uint16_t id, size_t clen)
{
    uint8_t h[FCGIC_HEADER_LEN] = {
        FCGI_VERSION,         type,          (uint8_t)(id >> 8),     (uint8_t)id,
        (uint8_t)(clen >> 8), (uint8_t)clen, (uint8_t)pad_len(clen), 0,
    };

    put(w, h, sizeof(h));
}

/* Append a whole record: header, content, padding. */
static void put_record(struct wbuf *w, uint8_t type, uint16_t id, const void *c, size_t clen)
{
    put_header(w, type, id, clen);
    put(w, c, clen);
    put(w, zeros, pad_len(clen));
}

/* Bytes a name-value length takes: 1, or 4 over 127. */
static size_t nv_len_size(size_t n)
{
    return n > NV_SHORT_MAX ? 4 : 1;
}

/* Bytes one pair takes, lengths included (each length <= FCGIC_MAX_CONTENT: no overflow). */
static size_t pair_size(const struct fcgic_param *pm)
{
    return nv_len_size(pm->name_len) + nv_len_size(pm->value_len) + pm->name_len + pm->value_len;
}

/* Append one name-value length, in the 1- or 4-byte form. */
static void put_nv_len(struct wbuf *w, size_t n)
{
    uint8_t b[4] = {(uint8_t)(n >> 24 | 0x80), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};

    if (n <= NV_SHORT_MAX)
        put(w, b + 3, 1);
    else
        put(w, b, 4);
}

/* Append one name-value pair. */
static void put_pair(struct wbuf *w, const struct fcgic_param *pm)
{
    put_nv_len(w, pm->name_len);
    put_nv_len(w, pm->value_len);
    put(w, pm->name, pm->name_len);
    put(w, pm->value, pm->value_len);
}

/* Append the PARAMS stream: whole pairs packed into records, then the empty record. */
static void put_params(struct wbuf *w, uint16_t id, const struct fcgic_param *params, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t clen = 0, j = i;

        while (j < n && clen + pair_size(&params[j]) <= FCGIC_MAX_CONTENT)
            clen += pair_size(&params[j++]);
        put_header(w, FCGI_PARAMS, id, clen);
        for (; i < j; i++)
            put_pair(w, &params[i]);
        put(w, zeros, pad_len(clen));
    }
    put_record(w, FCGI_PARAMS, id, NULL, 0);
}

/* Append the STDIN stream in records of at most FCGIC_MAX_CONTENT bytes, then the empty one. */
static void put_stdin(struct wbuf *w, uint16_t id, const char *body, size_t len)
{
    size_t off = 0;

    while (off < len) {
        size_t n = len - off < FCGIC_MAX_CONTENT ? len - off : FCGIC_MAX_CONTENT;

        put_record(w, FCGI_STDIN, id, body + off, n);
        off += n;
    }
    put_record(w, FCGI_STDIN, id, NULL, 0);
}

/* Append the whole request. */
static void put_request(struct wbuf *w, uint16_t id, const struct fcgic_param *params,
                        size_t nparams, const char *body, size_t body_len)
{
    /* roleB1 roleB0 flags (0: no FCGI_KEEP_CONN) reserved[5] */
    static const uint8_t begin[8] = {0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0};

    put_record(w, FCGI_BEGIN_REQUEST, id, begin, sizeof(begin));
    put_params(w, id, params, nparams);
    put_stdin(w, id, body, body_len);
}

/* Can fcgic_encode take these arguments? Every pair must fit in one record. */
static int encode_args_ok(uint16_t id, const struct fcgic_param *params, size_t nparams,
                          const char *body, size_t body_len, char **out, size_t *out_len)
{
    if (id == 0 || out == NULL || out_len == NULL)
        return 0;
    if ((params == NULL && nparams > 0) || (body == NULL && body_len > 0))
        return 0;
    if (body_len > SIZE_MAX / 2) /* with its headers it could not be counted */
        return 0;
    for (size_t i = 0; i < nparams; i++) {
        const struct fcgic_param *pm = &params[i];

        if (pm->name_len > FCGIC_MAX_CONTENT || pm->value_len > FCGIC_MAX_CONTENT)
            return 0;
        if ((pm->name == NULL && pm->name_len > 0) || (pm->value == NULL && pm->value_len > 0))
            return 0;
        if (pair_size(pm) > FCGIC_MAX_CONTENT)
            return 0;
    }
    return 1;
}

/* Encode a whole request: count its bytes, allocate once, write them. */
int fcgic_encode(uint16_t request_id, const struct fcgic_param *params, size_t nparams,
                 const char *body, size_t body_len, char **out, size_t *out_len)
{
    struct wbuf count = {NULL, 0, 0};
    struct wbuf w = {NULL, 0, 0};

    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (!encode_args_ok(request_id, params, nparams, body, body_len, out, out_len))
        return -1;
    put_request(&count, request_id, params, nparams, body, body_len);
    if (count.overflow)
        return -1;
    w.p = xmalloc(count.len);
    put_request(&w, request_id, params, nparams, body, body_len);
    *out = (char *)w.p;
    *out_len = w.len;
    return 0;
}

/* Reset a parser for the answer to request_id. */
void fcgic_parser_init(struct fcgic_parser *p, uint16_t request_id, size_t max_stdout)
{
    memset(p, 0, sizeof(*p));
    p->state = FCGIC_ST_HEADER;
    p->request_id = request_id;
    /* leaves room for the NUL and for doubling the buffer without overflow */
    p->max_stdout = max_stdout < SIZE_MAX / 2 ? max_stdout : SIZE_MAX / 2;
}

/* Refuse the stream for good with err. */
static int parser_fail(struct fcgic_parser *p, int err)
{
    p->state = FCGIC_ST_ERROR;
    p->result = err;
    return err;
}

/* Make room for need bytes at p->out (need <= max_stdout + 1): double, capped there. */
static void grow_out(struct fcgic_parser *p, size_t need)
{
    size_t cap = p->out_cap ? p->out_cap : OUT_MIN_CAP;

    while (cap < need)
        cap *= 2;
    if (cap > p->max_stdout + 1)
        cap = p->max_stdout + 1;
    p->out = xrealloc(p->out, cap);
    p->out_cap = cap;
}

/* Append stdout bytes; begin_record has checked that they fit under max_stdout. */
static void keep_stdout(struct fcgic_parser *p, const uint8_t *s, size_t n)
{
    if (n == 0)
        return;
    if (p->out_len + n + 1 > p->out_cap)
        grow_out(p, p->out_len + n + 1);
    memcpy(p->out + p->out_len, s, n);
    p->out_len += n;
    p->out[p->out_len] = '\0';
}

/* Count stderr bytes, keeping the first FCGIC_ERR_KEEP. */
static void keep_stderr(struct fcgic_parser *p, const uint8_t *s, size_t n)
{
    if (p->err_len < FCGIC_ERR_KEEP) {
        size_t room = FCGIC_ERR_KEEP - p->err_len;
        size_t k = n < room ? n : room;

        memcpy(p->err + p->err_len, s, k);
        p->err[p->err_len + k] = '\0';
    }
    p->err_len = n > SIZE_MAX - p->err_len ? SIZE_MAX : p->err_len + n;
}

/* Keep the first END_BODY_LEN bytes of END_REQUEST's content. */
static void keep_end_body(struct fcgic_parser *p, const uint8_t *s, size_t n)
{
    size_t k = END_BODY_LEN - p->end_len;

    if (n < k)
        k = n;
    memcpy(p->end_body + p->end_len, s, k);
    p->end_len += k;
}

/* The current record's content is read: finish the request, or go on to its padding. */
static int end_content(struct fcgic_parser *p)
{
    const uint8_t *b = p->end_body;

    if (p->type == FCGI_END_REQUEST) {
        p->app_status = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        p->protocol_status = b[4];
        p->state = FCGIC_ST_DONE;
        return FCGIC_DONE;
    }
    p->state = p->padding_left > 0 ? FCGIC_ST_PADDING : FCGIC_ST_HEADER;
    return FCGIC_MORE;
}

/* A whole header is in p->hdr (version checked): decide what its record is to us. */
static int begin_record(struct fcgic_parser *p)
{
    const uint8_t *h = p->hdr;
    uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
    size_t clen = (size_t)h[4] << 8 | h[5];
    int ours = id != 0 && id == p->request_id;

    p->hdr_len = 0;
    p->content_left = clen;
    p->padding_left = h[6];
    p->type = ours ? h[1] : SKIP;
    if (ours && h[1] == SKIP)
        return parser_fail(p, FCGIC_E_PROTOCOL); /* type 0 is no FastCGI type */
    switch (p->type) {
    case SKIP:
    case FCGI_STDERR: break;
    case FCGI_STDOUT:
        if (clen > p->max_stdout - p->out_len)
            return parser_fail(p, FCGIC_E_TOO_LARGE);
        break;
    case FCGI_END_REQUEST:
        if (clen < END_BODY_LEN)
            return parser_fail(p, FCGIC_E_PROTOCOL);
        break;
    default: return parser_fail(p, FCGIC_E_PROTOCOL);
    }
    p->state = FCGIC_ST_CONTENT;
    return clen > 0 ? FCGIC_MORE : end_content(p);
}

/* Take up to n (>= 1) header bytes; refuse a bad version from its first byte. */
static int take_header(struct fcgic_parser *p, const uint8_t *s, size_t n, size_t *used)
{
    size_t k = FCGIC_HEADER_LEN - p->hdr_len;

    if (n < k)
        k = n;
    memcpy(p->hdr + p->hdr_len, s, k);
    p->hdr_len += k;
    *used = k;
    if (p->hdr[0] != FCGI_VERSION)
        return parser_fail(p, FCGIC_E_PROTOCOL);
    return p->hdr_len < FCGIC_HEADER_LEN ? FCGIC_MORE : begin_record(p);
}

/* Take up to n content bytes of the current record, straight from the input. */
static int take_content(struct fcgic_parser *p, const uint8_t *s, size_t n, size_t *used)
{
    size_t k = n < p->content_left ? n : p->content_left;

    if (p->type == FCGI_STDOUT)
        keep_stdout(p, s, k);
    else if (p->type == FCGI_STDERR)
        keep_stderr(p, s, k);
    else if (p->type == FCGI_END_REQUEST)
        keep_end_body(p, s, k);
    p->content_left -= k;
    *used = k;
    return p->content_left > 0 ? FCGIC_MORE : end_content(p);
}

/* Skip up to n padding bytes. */
static int take_padding(struct fcgic_parser *p, size_t n, size_t *used)
{
    size_t k = n < p->padding_left ? n : p->padding_left;

    p->padding_left -= k;
    *used = k;
    if (p->padding_left == 0)
        p->state = FCGIC_ST_HEADER;
    return FCGIC_MORE;
}

/* Decode as much of data as the state allows; stop at DONE or an error. */
int fcgic_parser_feed(struct fcgic_parser *p, const char *data, size_t len)
{
    const uint8_t *s = (const uint8_t *)data;
    int r = FCGIC_MORE;

    if (p->state == FCGIC_ST_DONE)
        return FCGIC_DONE;
    if (p->state == FCGIC_ST_ERROR)
        return p->result;
    while (len > 0 && r == FCGIC_MORE) {
        size_t used = 0;

        if (p->state == FCGIC_ST_HEADER)
            r = take_header(p, s, len, &used);
        else if (p->state == FCGIC_ST_CONTENT)
            r = take_content(p, s, len, &used);
        else
            r = take_padding(p, len, &used);
        s += used;
        len -= used;
    }
    return r;
}

/* Free the stdout copy (unless the caller took it). */
void fcgic_parser_free(struct fcgic_parser *p)
{
    free(p->out);
    p->out = NULL;
    p->out_len = 0;
    p->out_cap = 0;
}

/* Does the header name n[0..len) equal lower (lower case), ignoring case? */
static int name_is(const char *n, size_t len, const char *lower)
{
    size_t i;

    for (i = 0; i < len && lower[i] != '\0'; i++) {
        char c = n[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return 0;
    }
    return i == len && lower[i] == '\0';
}

/* Parse a Status value: three digits, 100..999, then the end or a blank and a reason. */
static int parse_status(const char *v, size_t len)
{
    int code = 0;

    if (len < 3 || (len > 3 && v[3] != ' ' && v[3] != '\t'))
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        code = code * 10 + (v[i] - '0');
    }
    return code >= 100 ? code : -1;
}

/* Is this byte a blank (SP or HTAB)? */
static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Is name[0..len) a usable header name: not empty, no blank or control byte? */
static int name_ok(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c <= ' ' || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Take one header line (no line end): note Status, Location, Content-Type. */
static int take_cgi_header(const char *line, size_t len, struct fcgic_response *r, int *status,
                           int *location)
{
    const char *colon = memchr(line, ':', len);
    const char *v, *end = line + len;
    size_t nlen;

    if (colon == NULL || !name_ok(line, (size_t)(colon - line)))
        return -1;
    nlen = (size_t)(colon - line);
    for (v = colon + 1; v < end && is_blank(*v); v++)
        ;
    while (end > v && is_blank(end[-1]))
        end--;
    if (name_is(line, nlen, "status")) {
        *status = parse_status(v, (size_t)(end - v));
        if (*status < 0)
            return -1;
    } else if (name_is(line, nlen, "location")) {
        *location = 1;
    } else if (name_is(line, nlen, "content-type")) {
        r->content_type = v;
        r->content_type_len = (size_t)(end - v);
    }
    return 0;
}

/* Split a CGI answer into status, content type and body (views into buf); *r is zeroed on -1. */
int fcgic_parse_response(const char *buf, size_t len, struct fcgic_response *r)
{
    size_t limit = len < FCGIC_MAX_HEAD ? len : FCGIC_MAX_HEAD;
    size_t pos = 0;
    int status = 0, location = 0;
    struct fcgic_response res = {0, NULL, 0, NULL, 0};

    *r = res;
    if (buf == NULL || len == 0)
        return -1;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', limit - pos);
        size_t eol, line_len;

        if (nl == NULL)
            return -1; /* no blank line within the limit */
        eol = (size_t)(nl - buf);
        line_len = eol - pos;
        if (line_len > 0 && buf[eol - 1] == '\r')
            line_len--;
        if (line_len == 0) {
            pos = eol + 1;
            break;
        }
        if (take_cgi_header(buf + pos, line_len, &res, &status, &location) != 0)
            return -1;
        pos = eol + 1;
    }
    res.status = status ? status : location ? 302 : 200;
    res.body = buf + pos;
    res.body_len = len - pos;
    *r = res;
    return 0;
}

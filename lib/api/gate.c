/*
 * gate.c -- the FastCGI record reader in front of libfcgi (see gate.h).
 *
 * Owns:       nothing beyond the struct gate it is handed.
 * Called by:  apiconn.c on API threads, one connection at a time.
 * Invariants: a record is checked from its header before any of its
 *             content is handed on, so the caller never buffers a byte of
 *             a record it would refuse; content is reported as it arrives,
 *             in views of at most what was given.
 */
#include "gate.h"

#include <string.h>

enum {
    GATE_PHASE_IDLE,   /* between requests: BEGIN_REQUEST or management records */
    GATE_PHASE_PARAMS, /* reading PARAMS */
    GATE_PHASE_STDIN,  /* reading STDIN */
};

void gate_init(struct gate *g)
{
    memset(g, 0, sizeof *g);
}

int gate_idle(const struct gate *g)
{
    return g->phase == GATE_PHASE_IDLE && !g->in_record && g->hdr_len == 0;
}

/* Check a record that belongs to the request in progress. */
static int gate_request_record(const struct gate *g, int want_phase)
{
    if (g->phase == GATE_PHASE_IDLE)
        return GATE_E_ORDER;
    if (g->record_id != g->request_id)
        return GATE_E_REQUEST_ID;
    if (want_phase >= 0 && g->phase != want_phase)
        return GATE_E_ORDER;
    return 0;
}

/* Check a header just completed in g->hdr against where the request stands. */
static int gate_check_header(struct gate *g)
{
    size_t clen = (size_t)g->hdr[4] << 8 | g->hdr[5];

    if (g->hdr[0] != GATE_VERSION)
        return GATE_E_VERSION;
    g->type = g->hdr[1];
    g->record_id = (uint16_t)(g->hdr[2] << 8 | g->hdr[3]);
    if (g->record_id == 0) {
        /* A management record: only between requests, never a request's type. */
        if (g->type < GATE_GET_VALUES)
            return GATE_E_TYPE;
        return g->phase == GATE_PHASE_IDLE ? 0 : GATE_E_ORDER;
    }
    switch (g->type) {
    case GATE_BEGIN_REQUEST:
        if (g->phase != GATE_PHASE_IDLE)
            return GATE_E_ORDER;
        return clen == sizeof g->body ? 0 : GATE_E_BEGIN;
    case GATE_ABORT_REQUEST: return gate_request_record(g, -1);
    case GATE_PARAMS: return gate_request_record(g, GATE_PHASE_PARAMS);
    case GATE_STDIN: return gate_request_record(g, GATE_PHASE_STDIN);
    default: return GATE_E_TYPE;
    }
}

/* The record's content is complete: what it means, or 0 with *err set. */
static enum gate_event gate_content_done(struct gate *g, int *err)
{
    if (g->record_id == 0) {
        g->mgmt_type = g->type;
        return GATE_MANAGEMENT;
    }
    switch (g->type) {
    case GATE_BEGIN_REQUEST:
        if ((g->body[0] << 8 | g->body[1]) != GATE_RESPONDER) {
            *err = GATE_E_ROLE;
            return GATE_NONE;
        }
        g->keep_conn = g->body[2] & GATE_KEEP_CONN;
        g->request_id = g->record_id;
        g->phase = GATE_PHASE_PARAMS;
        return GATE_BEGIN;
    case GATE_ABORT_REQUEST: g->phase = GATE_PHASE_IDLE; return GATE_ABORT;
    case GATE_PARAMS: g->phase = GATE_PHASE_STDIN; return GATE_PARAMS_END;
    default: g->phase = GATE_PHASE_IDLE; return GATE_STDIN_END;
    }
}

/* Take header bytes; a complete header is checked and may end its record at once. */
static ssize_t gate_take_header(struct gate *g, const uint8_t *p, size_t n, enum gate_event *ev,
                                int *err)
{
    size_t want = (size_t)GATE_HEADER - g->hdr_len, take = want < n ? want : n;

    memcpy(g->hdr + g->hdr_len, p, take);
    g->hdr_len += (uint8_t)take;
    if (g->hdr_len < GATE_HEADER)
        return (ssize_t)take;
    g->hdr_len = 0;
    if ((*err = gate_check_header(g)) != 0)
        return GATE_INVALID;
    g->content_left = (uint32_t)g->hdr[4] << 8 | g->hdr[5];
    g->padding_left = g->hdr[6];
    g->body_len = 0;
    g->in_record = g->content_left > 0 || g->padding_left > 0;
    /* Only an empty record can end here: PARAMS or STDIN ends, an ABORT, management. */
    if (g->content_left == 0) {
        *ev = gate_content_done(g, err);
        if (*err != 0)
            return GATE_INVALID;
    }
    return (ssize_t)take;
}

/* Take content bytes of the record being read. */
static ssize_t gate_take_content(struct gate *g, const uint8_t *p, size_t n, enum gate_event *ev,
                                 struct gate_chunk *chunk, int *err)
{
    size_t take = g->content_left < n ? g->content_left : n;

    g->content_left -= (uint32_t)take;
    g->in_record = g->content_left > 0 || g->padding_left > 0;
    if (g->record_id != 0 && g->type == GATE_PARAMS) {
        *ev = GATE_PARAMS_DATA;
    } else if (g->record_id != 0 && g->type == GATE_STDIN) {
        *ev = GATE_STDIN_DATA;
    } else {
        /* BEGIN_REQUEST's body is kept (its length was checked); other content is not used. */
        if (g->record_id != 0 && g->type == GATE_BEGIN_REQUEST) {
            memcpy(g->body + g->body_len, p, take);
            g->body_len += (uint8_t)take;
        }
        if (g->content_left == 0) {
            *ev = gate_content_done(g, err);
            if (*err != 0)
                return GATE_INVALID;
        }
        return (ssize_t)take;
    }
    chunk->p = p;
    chunk->len = take;
    return (ssize_t)take;
}

ssize_t gate_next(struct gate *g, const uint8_t *p, size_t n, enum gate_event *ev,
                  struct gate_chunk *chunk, int *err)
{
    size_t take;

    *ev = GATE_NONE;
    *err = 0;
    chunk->p = NULL;
    chunk->len = 0;
    if (n == 0)
        return 0;
    if (!g->in_record)
        return gate_take_header(g, p, n, ev, err);
    if (g->content_left > 0)
        return gate_take_content(g, p, n, ev, chunk, err);
    take = g->padding_left < n ? g->padding_left : n;
    g->padding_left -= (uint32_t)take;
    g->in_record = g->padding_left > 0;
    return (ssize_t)take;
}

/* Read one name or value length at p[*off]; -1 when it does not fit in n. */
static int gate_nv_length(const uint8_t *p, size_t n, size_t *off, size_t *len)
{
    if (*off >= n)
        return -1;
    if (p[*off] < 0x80) {
        *len = p[(*off)++];
        return 0;
    }
    if (n - *off < 4)
        return -1;
    *len = (size_t)(p[*off] & 0x7f) << 24 | (size_t)p[*off + 1] << 16 | (size_t)p[*off + 2] << 8 |
           p[*off + 3];
    *off += 4;
    return 0;
}

int gate_params_check(const uint8_t *p, size_t n)
{
    size_t off = 0, name, value;
    int pairs = 0;

    while (off < n) {
        if (gate_nv_length(p, n, &off, &name) != 0 || gate_nv_length(p, n, &off, &value) != 0)
            return -1;
        if (name > n - off || value > n - off - name)
            return -1;
        off += name + value;
        pairs++;
    }
    return pairs;
}

void gate_header(uint8_t out[GATE_HEADER], int type, unsigned id, size_t clen, size_t plen)
{
    out[0] = GATE_VERSION;
    out[1] = (uint8_t)type;
    out[2] = (uint8_t)(id >> 8);
    out[3] = (uint8_t)id;
    out[4] = (uint8_t)(clen >> 8);
    out[5] = (uint8_t)clen;
    out[6] = (uint8_t)plen;
    out[7] = 0;
}

const char *gate_strerror(int err)
{
    switch (err) {
    case GATE_E_VERSION: return "not FastCGI (record version is not 1)";
    case GATE_E_TYPE: return "a record type a caller does not send";
    case GATE_E_ORDER: return "a record out of order";
    case GATE_E_REQUEST_ID: return "records of another request (multiplexing)";
    case GATE_E_BEGIN: return "a BEGIN_REQUEST body that is not 8 bytes";
    case GATE_E_ROLE: return "a role other than responder";
    default: return "no error";
    }
}

/*
 * relay.c -- libfcgi fed from memory (see relay.h).
 *
 * Owns:       the relay's memory file, FCGX_Request and buffers.
 * Called by:  one API thread per relay.
 * Invariants: FCGX_Request.keepConnection is 1 whenever libfcgi could act
 *             on it, so libfcgi never closes in_fd on a normal request; if
 *             it closes it after an error (ipcFd becomes -1), the relay
 *             forgets it and makes a new one next time. libfcgi's streams
 *             are freed with FCGX_Free, never flushed, so it writes nothing.
 *
 * How one request goes: the canonical request (BEGIN_REQUEST with the
 * caller's id, responder, no flags; PARAMS; the empty PARAMS record) is
 * appended to in_fd, whose offset is where the last request ended, and
 * FCGX_Accept_r reads it to the end: libfcgi stops at the empty PARAMS
 * record, which is the file's last byte. No STDIN goes to libfcgi: the body
 * is the caller's to hand the handler. The handler reads the params and
 * writes the CGI response into memory; it goes out as STDOUT records of at
 * most 65535 bytes, the empty STDOUT record and END_REQUEST (FastCGI 1.0,
 * sections 5.1 and 5.5). Once in_fd passes RELAY_REWIND it is emptied, so
 * it does not grow: two calls per several thousand requests.
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "xmalloc.h"

#define RELAY_MAX_RECORDS 8        /* PARAMS records per write: params are at most a few */
#define RELAY_REWIND (1 << 20)     /* bytes the memory file may reach before it is emptied */
#define RELAY_BUF 1024             /* first size of a buffer */

void relay_reserve(struct relay_buf *b, size_t n, size_t limit)
{
    size_t want;

    if (b->len + n <= b->cap)
        return;
    /* Doubling: a buffer filled in many small pieces costs few copies. */
    want = b->cap ? b->cap : RELAY_BUF;
    while (want < b->len + n)
        want *= 2;
    if (limit != 0 && want > limit)
        want = limit;
    b->p = xrealloc(b->p, want);
    b->cap = want;
}

void relay_put(struct relay_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    relay_reserve(b, n, 0);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Make the memory file if there is none; it starts empty. Returns 0, or -1 with errno set. */
static int relay_open(struct relay *r)
{
    if (r->in_fd >= 0)
        return 0;
    r->in_end = 0;
    r->in_fd = memfd_create("herald-api", MFD_CLOEXEC);
    return r->in_fd >= 0 ? 0 : -1;
}

/* Empty the memory file once it has grown past RELAY_REWIND. Returns 0, or -1. */
static int relay_rewind(struct relay *r)
{
    if (r->in_end < RELAY_REWIND)
        return 0;
    if (ftruncate(r->in_fd, 0) != 0 || lseek(r->in_fd, 0, SEEK_SET) != 0)
        return -1;
    r->in_end = 0;
    return 0;
}

int relay_init(struct relay *r, char **cause)
{
    memset(r, 0, sizeof *r);
    r->in_fd = -1;
    FCGX_InitRequest(&r->req, -1, 0);
    if (relay_open(r) != 0) {
        *cause = xasprintf("memfd_create: %s", strerror(errno));
        relay_free(r);
        return -1;
    }
    return 0;
}

void relay_free(struct relay *r)
{
    /* ipcFd is in_fd (or -1): libfcgi must not close it again. */
    r->req.ipcFd = -1;
    FCGX_Free(&r->req, 0);
    if (r->in_fd >= 0)
        close(r->in_fd);
    r->in_fd = -1;
    free(r->cgi.p);
    free(r->answer.p);
    memset(&r->cgi, 0, sizeof r->cgi);
    memset(&r->answer, 0, sizeof r->answer);
}

/* Append the canonical request for id and params to in_fd, where libfcgi will read next. */
static int relay_write_request(struct relay *r, unsigned id, const uint8_t *params, size_t plen)
{
    uint8_t begin[GATE_HEADER + 8] = {0}, hdrs[RELAY_MAX_RECORDS][GATE_HEADER], tail[GATE_HEADER];
    struct iovec iov[2 * RELAY_MAX_RECORDS + 2];
    size_t total = sizeof begin + sizeof tail;
    int n = 0, k = 0;

    gate_header(begin, GATE_BEGIN_REQUEST, id, 8, 0);
    begin[GATE_HEADER + 1] = GATE_RESPONDER;
    iov[n++] = (struct iovec){begin, sizeof begin};
    for (size_t off = 0; off < plen; off += GATE_MAX_CONTENT, k++) {
        size_t len = plen - off < GATE_MAX_CONTENT ? plen - off : GATE_MAX_CONTENT;

        if (k == RELAY_MAX_RECORDS) {
            errno = E2BIG;
            return -1;
        }
        gate_header(hdrs[k], GATE_PARAMS, id, len, 0);
        iov[n++] = (struct iovec){hdrs[k], GATE_HEADER};
        iov[n++] = (struct iovec){(void *)(params + off), len};
        total += GATE_HEADER + len;
    }
    gate_header(tail, GATE_PARAMS, id, 0, 0);
    iov[n++] = (struct iovec){tail, sizeof tail};
    if (pwritev(r->in_fd, iov, n, r->in_end) != (ssize_t)total)
        return -1;
    r->in_end += (off_t)total;
    return 0;
}

/* Wrap the handler's CGI response in STDOUT records and END_REQUEST for id. */
static void relay_frame_answer(struct relay *r, unsigned id)
{
    uint8_t hdr[GATE_HEADER], end[GATE_HEADER + 8] = {0};

    r->answer.len = 0;
    for (size_t off = 0; off < r->cgi.len; off += GATE_MAX_CONTENT) {
        size_t len = r->cgi.len - off < GATE_MAX_CONTENT ? r->cgi.len - off : GATE_MAX_CONTENT;

        gate_header(hdr, GATE_STDOUT, id, len, 0);
        relay_put(&r->answer, hdr, sizeof hdr);
        relay_put(&r->answer, r->cgi.p + off, len);
    }
    gate_header(hdr, GATE_STDOUT, id, 0, 0);
    relay_put(&r->answer, hdr, sizeof hdr);
    /* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE (0). */
    gate_header(end, GATE_END_REQUEST, id, 8, 0);
    relay_put(&r->answer, end, sizeof end);
}

int relay_run(struct relay *r, unsigned id, const uint8_t *params, size_t plen,
              relay_handler *handler, void *arg, uint8_t **answer, size_t *len)
{
    const char *step = "memfd_create";

    if (relay_open(r) != 0)
        goto fail;
    step = "emptying the memory file";
    if (relay_rewind(r) != 0)
        goto fail;
    step = "writing the request";
    if (relay_write_request(r, id, params, plen) != 0)
        goto fail;
    r->req.ipcFd = r->in_fd;
    /* FCGX_Accept_r first finishes the previous request: it must not close in_fd. */
    r->req.keepConnection = 1;
    if (FCGX_Accept_r(&r->req) < 0) {
        /* libfcgi closed in_fd: the gate let through something libfcgi refused. */
        log_msg(LOG_ERROR, "api", "libfcgi refused a request the gate passed");
        r->in_fd = -1;
        r->req.ipcFd = -1;
        return -1;
    }
    r->req.keepConnection = 1;
    r->cgi.len = 0;
    handler(arg, &r->req, &r->cgi);
    /* Free the request's streams and params unflushed: libfcgi writes nothing. */
    FCGX_Free(&r->req, 0);
    relay_frame_answer(r, id);
    *answer = r->answer.p;
    *len = r->answer.len;
    return 0;
fail:
    log_msg(LOG_ERROR, "api", "relay: %s: %s", step, strerror(errno));
    return -1;
}

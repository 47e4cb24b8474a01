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
 * written into the mapped memory file where libfcgi's offset will be, and
 * FCGX_Accept_r reads it: libfcgi stops at the empty PARAMS record. No STDIN
 * goes to libfcgi: the body is the caller's to hand the handler. The handler
 * reads the params and writes the CGI response into memory; it goes out as
 * STDOUT records of at most 65535 bytes, the empty STDOUT record and
 * END_REQUEST (FastCGI 1.0, sections 5.1 and 5.5).
 *
 * Where libfcgi's offset will be is known without asking: it reads in its
 * own fixed size (measured once, by relay_probe), so each request starts
 * that size, times its own length rounded up, after the last. The file has
 * a fixed size and libfcgi is sent back to its start once past
 * RELAY_REWIND, where the offset is also checked; a request's bytes are
 * zeroed once read, so a wrong guess meets zeros and fails rather than an
 * old request. A request thus costs libfcgi's one read and nothing more.
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "xmalloc.h"

#define RELAY_MAX_RECORDS 8 /* PARAMS records per request: params are at most a few */
#define RELAY_MAX_REQUEST                                                                          \
    (GATE_HEADER + 8 + RELAY_MAX_RECORDS * (GATE_HEADER + GATE_MAX_CONTENT) + GATE_HEADER)
#define RELAY_MAX_CHUNK (1 << 16) /* largest read size of libfcgi's the relay relies on */
/* The file's fixed size: any request that starts before RELAY_REWIND, and one read past it. */
#define RELAY_FILE (RELAY_REWIND + RELAY_MAX_REQUEST + RELAY_MAX_CHUNK)
#define RELAY_BUF 1024 /* first size of a buffer */

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

static int relay_feed(struct relay *r, unsigned id, const uint8_t *params, size_t plen);

/* Forget the memory file and its mapping (libfcgi may already have closed the file). */
static void relay_close(struct relay *r)
{
    if (r->map != NULL)
        munmap(r->map, RELAY_FILE);
    if (r->in_fd >= 0)
        close(r->in_fd);
    r->map = NULL;
    r->in_fd = -1;
    r->req.ipcFd = -1;
}

/*
 * Learn how far libfcgi reads past a request: hand it one empty request and
 * see where the file's offset ends. libfcgi fills its buffer with one read of
 * its own fixed size whenever the buffer is empty (fcgiapp.c, FillBuffProc),
 * so a request of n bytes moves the offset by that size times n rounded up.
 * Knowing it, the next request can be written where libfcgi will read without
 * a call to move the offset. Returns 0, or -1 with errno set.
 */
static int relay_probe(struct relay *r)
{
    off_t end;

    if (relay_feed(r, 1, NULL, 0) != 0)
        return -1;
    FCGX_Free(&r->req, 0);
    end = lseek(r->in_fd, 0, SEEK_CUR);
    if (end < 0)
        return -1;
    r->chunk = end >= (off_t)r->in_len && end <= RELAY_MAX_CHUNK ? (size_t)end : 0;
    if (r->chunk == 0)
        log_msg(LOG_WARN, "api",
                "libfcgi read %lld bytes of a %zu-byte request: the API makes "
                "one more call a request",
                (long long)end, r->in_len);
    r->in_at = (size_t)end;
    return 0;
}

/* Make and map the memory file if there is none. Returns 0, or -1 with errno set. */
static int relay_open(struct relay *r)
{
    void *map;

    if (r->in_fd >= 0)
        return 0;
    r->in_fd = memfd_create("herald-api", MFD_CLOEXEC);
    if (r->in_fd < 0)
        return -1;
    if (ftruncate(r->in_fd, RELAY_FILE) != 0)
        goto fail;
    map = mmap(NULL, RELAY_FILE, PROT_READ | PROT_WRITE, MAP_SHARED, r->in_fd, 0);
    if (map == MAP_FAILED)
        goto fail;
    r->map = map;
    r->in_at = 0;
    if (relay_probe(r) != 0)
        goto fail;
    return 0;
fail:
    relay_close(r);
    return -1;
}

/*
 * Put libfcgi's offset where the next request goes: back to the start once
 * it passes RELAY_REWIND (checking there that it is where it was expected),
 * or on every request when the probe could not tell libfcgi's read size.
 * Returns 0, or -1 with errno set.
 */
static int relay_seek(struct relay *r)
{
    off_t at;

    if (r->in_at >= RELAY_REWIND) {
        if (r->chunk != 0) {
            at = lseek(r->in_fd, 0, SEEK_CUR);
            if (at < 0)
                return -1;
            if (at != (off_t)r->in_at) {
                log_msg(LOG_ERROR, "api",
                        "libfcgi read to %lld, not %zu: the API makes one "
                        "more call a request",
                        (long long)at, r->in_at);
                r->chunk = 0;
            }
        }
        r->in_at = 0;
    } else if (r->chunk != 0) {
        return 0;
    }
    return lseek(r->in_fd, (off_t)r->in_at, SEEK_SET) < 0 ? -1 : 0;
}

int relay_init(struct relay *r, char **cause)
{
    memset(r, 0, sizeof *r);
    r->in_fd = -1;
    FCGX_InitRequest(&r->req, -1, 0);
    if (relay_open(r) != 0) {
        *cause = xasprintf("the API's memory file: %s", strerror(errno));
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
    relay_close(r);
    free(r->cgi.p);
    free(r->answer.p);
    memset(&r->cgi, 0, sizeof r->cgi);
    memset(&r->answer, 0, sizeof r->answer);
}

/* Write the canonical request for id and params into the file at in_at; its length is in_len. */
static int relay_write_request(struct relay *r, unsigned id, const uint8_t *params, size_t plen)
{
    uint8_t *p = r->map + r->in_at;
    size_t n = 0;

    if (plen > RELAY_MAX_RECORDS * GATE_MAX_CONTENT) {
        errno = E2BIG;
        return -1;
    }
    memset(p, 0, GATE_HEADER + 8);
    gate_header(p, GATE_BEGIN_REQUEST, id, 8, 0);
    p[GATE_HEADER + 1] = GATE_RESPONDER;
    n = GATE_HEADER + 8;
    for (size_t off = 0; off < plen; off += GATE_MAX_CONTENT) {
        size_t len = plen - off < GATE_MAX_CONTENT ? plen - off : GATE_MAX_CONTENT;

        gate_header(p + n, GATE_PARAMS, id, len, 0);
        memcpy(p + n + GATE_HEADER, params + off, len);
        n += GATE_HEADER + len;
    }
    gate_header(p + n, GATE_PARAMS, id, 0, 0);
    r->in_len = n + GATE_HEADER;
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

/*
 * Write request id at in_at and have libfcgi read it (FCGX_Accept_r), then
 * zero what was read: were libfcgi's offset ever not where it was expected,
 * it would meet zeros and fail, never an old request. Returns 0 with req
 * holding the request, or -1 (errno EPROTO) with the file closed: libfcgi
 * refused it, or read another request than id.
 */
static int relay_feed(struct relay *r, unsigned id, const uint8_t *params, size_t plen)
{
    int rc;

    if (relay_write_request(r, id, params, plen) != 0)
        return -1;
    r->req.ipcFd = r->in_fd;
    /* FCGX_Accept_r first finishes the previous request: it must not close in_fd. */
    r->req.keepConnection = 1;
    rc = FCGX_Accept_r(&r->req);
    memset(r->map + r->in_at, 0, r->in_len);
    if (rc >= 0 && r->req.requestId == (int)id)
        return 0;
    if (rc >= 0)
        FCGX_Free(&r->req, 0);
    /* After an error libfcgi may have closed in_fd; the next request makes a new file. */
    if (r->req.ipcFd < 0)
        r->in_fd = -1;
    relay_close(r);
    errno = EPROTO;
    return -1;
}

int relay_run(struct relay *r, unsigned id, const uint8_t *params, size_t plen,
              relay_handler *handler, void *arg, uint8_t **answer, size_t *len)
{
    const char *step = "making the memory file";

    if (relay_open(r) != 0)
        goto fail;
    step = "placing libfcgi's offset";
    if (relay_seek(r) != 0)
        goto fail;
    step = "libfcgi refused a request the gate passed";
    if (relay_feed(r, id, params, plen) != 0)
        goto fail;
    r->in_at += r->chunk != 0 ? (r->in_len + r->chunk - 1) / r->chunk * r->chunk : r->in_len;
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

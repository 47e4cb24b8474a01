/*
 * relay.c -- libfcgi fed from memory (see relay.h).
 *
 * Owns:       the relay's memory files and FCGX_Request.
 * Called by:  one API thread per relay.
 * Invariants: FCGX_Request.keepConnection is 1 whenever libfcgi could act
 *             on it, so libfcgi never closes our files on a normal
 *             request; if it closes one after an error (ipcFd becomes -1),
 *             the relay forgets it and makes a new one next time.
 *
 * How one request goes: the canonical request (BEGIN_REQUEST with the
 * caller's id, responder, no flags; PARAMS; empty PARAMS; empty STDIN) is
 * written at the start of in_fd, which is rewound; FCGX_Accept_r reads it
 * (ipcFd = in_fd). Then ipcFd becomes out_fd, rewound, and the handler's
 * answer plus END_REQUEST land there when FCGX_Finish_r flushes; they are
 * read back whole. Bytes left in a file from a longer earlier request are
 * never reached: libfcgi stops at the empty PARAMS record, and the answer's
 * length is where libfcgi's writes ended.
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

#define RELAY_MAX_RECORDS 8  /* PARAMS records per write: params are at most a few */

/* Make f's memory file if it has none. Returns 0, or -1 with errno set. */
static int relay_open(int *fd, const char *name)
{
    if (*fd >= 0)
        return 0;
    *fd = memfd_create(name, MFD_CLOEXEC);
    return *fd >= 0 ? 0 : -1;
}

int relay_init(struct relay *r, char **cause)
{
    r->in_fd = r->out_fd = -1;
    FCGX_InitRequest(&r->req, -1, 0);
    if (relay_open(&r->in_fd, "herald-api-in") != 0 ||
        relay_open(&r->out_fd, "herald-api-out") != 0) {
        *cause = xasprintf("memfd_create: %s", strerror(errno));
        relay_free(r);
        return -1;
    }
    return 0;
}

void relay_free(struct relay *r)
{
    /* ipcFd is one of our files (or -1): libfcgi must not close it again. */
    r->req.ipcFd = -1;
    FCGX_Free(&r->req, 0);
    if (r->in_fd >= 0)
        close(r->in_fd);
    if (r->out_fd >= 0)
        close(r->out_fd);
    r->in_fd = r->out_fd = -1;
}

/* Write the canonical request for id and params at the start of in_fd, and rewind it. */
static int relay_write_request(struct relay *r, unsigned id, const uint8_t *params, size_t plen)
{
    uint8_t begin[GATE_HEADER + 8] = {0}, hdrs[RELAY_MAX_RECORDS][GATE_HEADER], tail[16];
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
    gate_header(tail + GATE_HEADER, GATE_STDIN, id, 0, 0);
    iov[n++] = (struct iovec){tail, sizeof tail};
    if (pwritev(r->in_fd, iov, n, 0) != (ssize_t)total)
        return -1;
    return lseek(r->in_fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* Read the answer libfcgi wrote to out_fd (len bytes from its start). */
static int relay_read_answer(struct relay *r, uint8_t **answer, size_t *len)
{
    off_t end = lseek(r->out_fd, 0, SEEK_CUR);
    uint8_t *buf;

    if (end <= 0)
        return -1;
    buf = xmalloc((size_t)end);
    if (pread(r->out_fd, buf, (size_t)end, 0) != end) {
        free(buf);
        return -1;
    }
    *answer = buf;
    *len = (size_t)end;
    return 0;
}

int relay_run(struct relay *r, unsigned id, const uint8_t *params, size_t plen,
              relay_handler *handler, void *arg, uint8_t **answer, size_t *len)
{
    const char *step = "memfd_create";

    if (relay_open(&r->in_fd, "herald-api-in") != 0 ||
        relay_open(&r->out_fd, "herald-api-out") != 0)
        goto fail;
    step = "writing the request";
    if (lseek(r->out_fd, 0, SEEK_SET) != 0 || relay_write_request(r, id, params, plen) != 0)
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
    r->req.ipcFd = r->out_fd;
    r->req.keepConnection = 1;
    handler(arg, &r->req);
    FCGX_Finish_r(&r->req);
    if (r->req.ipcFd < 0) {
        /* An error made libfcgi close out_fd. */
        r->out_fd = -1;
        step = "writing the answer";
        goto fail;
    }
    step = "reading the answer back";
    if (relay_read_answer(r, answer, len) != 0)
        goto fail;
    return 0;
fail:
    log_msg(LOG_ERROR, "api", "relay: %s: %s", step, strerror(errno));
    return -1;
}

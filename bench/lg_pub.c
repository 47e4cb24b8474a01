/*
 * lg_pub.c -- the load generator's publishers: one POST at a time over
 * FastCGI (Herald's API socket) or HTTP/1.1 (nchan, node, rawsrv).
 *
 * Owns:       per lg_pub: its socket, request buffer and read buffer.
 * Called by:  lg_run.c, each lg_pub on its own publisher thread; loadgen.c
 *             parses --pub with lg_pub_parse.
 * Invariants: blocking sockets with SO_SNDTIMEO/SO_RCVTIMEO (which also
 *             bound connect on Linux); one request in flight; the answer
 *             is read whole before the next request, so a kept connection
 *             never carries leftovers.
 * Errors:     -1 with p->err set when no complete answer was read; the
 *             connection is then closed. A kept connection found closed
 *             before the first answer byte is retried once on a new one
 *             (the request cannot have been acted upon twice: Herald,
 *             nginx and node all answer before closing a kept connection).
 * Spec notes: FastCGI 1.0 as the PHP helper speaks it: request id 1, role
 *             RESPONDER, FCGI_KEEP_CONN only with --keep (otherwise the
 *             server closes after END_REQUEST, and so do we); the answer's
 *             "Status: NNN" CGI header is the status, 200 when absent.
 *             HTTP: Content-Length or chunked answers, Connection: close
 *             and HTTP/1.0 honoured; we always ask for keep-alive.
 * Tests:      the api, broadcast and targeted runs against each server.
 *
 *   FastCGI record: version(1) type(1) requestId(2) contentLength(2)
 *                   paddingLength(1) reserved(1) content padding
 *   request:  BEGIN_REQUEST{role=1, flags} PARAMS... PARAMS{} STDIN... STDIN{}
 *   answer:   STDOUT... [STDERR...] END_REQUEST{appStatus(4) protocolStatus(1)}
 */
#include "lg_pub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lg_util.h"

#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1
#define FCGI_MAX_CONTENT 65535

#define PUB_RBUF (128 * 1024) /* holds any one FastCGI record, or an HTTP head */
#define PUB_OUT_KEEP 4096     /* FastCGI STDOUT bytes kept to find Status */

struct lg_pub {
    const struct lg_pub_cfg *cfg; /* borrowed */
    int fd;                       /* -1 when not connected */
    unsigned long requests;       /* answered on the current connection */
    unsigned long connects;       /* connections opened */
    char *req;                    /* owned: the request being sent */
    size_t reqlen, reqcap;
    size_t rpos, rlen;          /* unread bytes are rbuf[rpos..rlen) */
    int got_bytes;              /* has any answer byte arrived? */
    char out[PUB_OUT_KEEP + 1]; /* FastCGI STDOUT head */
    size_t outlen;
    char err[256];
    uint8_t rbuf[PUB_RBUF];
};

/* Set p->err and return -1. */
static int fail(struct lg_pub *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

int lg_pub_parse(const char *spec, int keep, int timeout_ms, struct lg_pub_cfg *cfg, char **cause)
{
    char host[64];
    const char *rest, *slash;
    unsigned long port;
    char *end;

    memset(cfg, 0, sizeof *cfg);
    cfg->keep = keep;
    cfg->timeout_ms = timeout_ms;
    if (strncmp(spec, "fcgi:", 5) == 0) {
        cfg->kind = LG_PUB_FCGI;
        if (strlen(spec + 5) == 0 || strlen(spec + 5) >= sizeof cfg->un.sun_path)
            goto bad;
        cfg->un.sun_family = AF_UNIX;
        strcpy(cfg->un.sun_path, spec + 5);
        return 0;
    }
    if (strncmp(spec, "http://", 7) != 0)
        goto bad;
    cfg->kind = LG_PUB_HTTP;
    rest = spec + 7;
    slash = strchr(rest, '/');
    if (slash == NULL || (size_t)(slash - rest) >= sizeof host || strlen(slash) >= sizeof cfg->path)
        goto bad;
    memcpy(host, rest, (size_t)(slash - rest));
    host[slash - rest] = '\0';
    memcpy(cfg->host, host, sizeof host);
    strcpy(cfg->path, slash);
    end = strchr(host, ':');
    if (end == NULL)
        goto bad;
    *end++ = '\0';
    port = strtoul(end, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        goto bad;
    cfg->in.sin_family = AF_INET;
    cfg->in.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                  &cfg->in.sin_addr) != 1)
        goto bad;
    return 0;
bad:
    if (asprintf(cause,
                 "--pub %s: expected fcgi:/path/to/socket or "
                 "http://IPv4:PORT/path",
                 spec) < 0)
        *cause = NULL;
    return -1;
}

struct lg_pub *lg_pub_new(const struct lg_pub_cfg *cfg)
{
    struct lg_pub *p = lg_util_calloc(1, sizeof *p);

    p->cfg = cfg;
    p->fd = -1;
    return p;
}

/* Close the connection, if any. */
static void pub_close(struct lg_pub *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->requests = 0;
    p->rpos = p->rlen = 0;
}

void lg_pub_free(struct lg_pub *p)
{
    if (p == NULL)
        return;
    pub_close(p);
    free(p->req);
    free(p);
}

const char *lg_pub_error(const struct lg_pub *p)
{
    return p->err;
}

unsigned long lg_pub_connects(const struct lg_pub *p)
{
    return p->connects;
}

/* Open a blocking socket with timeouts and connect it. */
static int pub_connect(struct lg_pub *p)
{
    const struct lg_pub_cfg *c = p->cfg;
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000, .tv_usec = c->timeout_ms % 1000 * 1000};
    int fcgi = c->kind == LG_PUB_FCGI, one = 1;
    const char *what = fcgi ? c->un.sun_path : c->host;

    p->fd = socket(fcgi ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0)
        return fail(p, "socket: %s", strerror(errno));
    if (setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        (!fcgi && setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)) {
        fail(p, "setsockopt: %s", strerror(errno));
        goto fail;
    }
    if (fcgi ? connect(p->fd, (const struct sockaddr *)&c->un, sizeof c->un)
             : connect(p->fd, (const struct sockaddr *)&c->in, sizeof c->in)) {
        fail(p, "connect %s: %s", what, errno == EINPROGRESS ? "timed out" : strerror(errno));
        goto fail;
    }
    p->connects++;
    return 0;
fail:
    pub_close(p);
    return -1;
}

/* Append n bytes to the request. */
static void req_put(struct lg_pub *p, const void *data, size_t n)
{
    if (p->reqlen + n > p->reqcap) {
        p->reqcap = (p->reqlen + n) * 2;
        p->req = lg_util_realloc(p->req, p->reqcap);
    }
    memcpy(p->req + p->reqlen, data, n);
    p->reqlen += n;
}

/* Send the whole request. */
static int send_all(struct lg_pub *p)
{
    for (size_t off = 0; off < p->reqlen;) {
        ssize_t n = send(p->fd, p->req + off, p->reqlen - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(p, "send: %s", errno == EAGAIN ? "timed out" : strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

/*
 * Wait in poll(POLLIN) until the Unix socket has bytes. A task asleep in
 * recv on a Unix stream socket is woken each time the server reads what it
 * sent (unix_write_space wakes every waiter, whatever it waits for): one
 * useless wakeup per request, which costs the server too (its read pays for
 * the wakeup) and which PHP never pays (its streams poll for POLLIN before
 * they read). poll's waiter ignores wakeups for writability. 0, or -1.
 */
static int wait_readable(struct lg_pub *p)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int r;

    while ((r = poll(&pfd, 1, p->cfg->timeout_ms)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return fail(p, "poll: %s", strerror(errno));
    if (r == 0)
        return fail(p, "recv: timed out");
    return 0;
}

/* Read more answer bytes. 0, or -1 on error, timeout or EOF. */
static int fill(struct lg_pub *p)
{
    ssize_t n;

    if (p->rpos == p->rlen) {
        p->rpos = p->rlen = 0;
    } else if (p->rlen == PUB_RBUF) {
        memmove(p->rbuf, p->rbuf + p->rpos, p->rlen - p->rpos);
        p->rlen -= p->rpos;
        p->rpos = 0;
    }
    if (p->rlen == PUB_RBUF)
        return fail(p, "answer part larger than %d bytes", PUB_RBUF);
    if (p->cfg->kind == LG_PUB_FCGI && wait_readable(p) != 0)
        return -1;
    while ((n = recv(p->fd, p->rbuf + p->rlen, PUB_RBUF - p->rlen, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return fail(p, "recv: %s", errno == EAGAIN ? "timed out" : strerror(errno));
    if (n == 0)
        return fail(p, "connection closed before the answer was complete");
    p->rlen += (size_t)n;
    p->got_bytes = 1;
    return 0;
}

/* Make at least n unread bytes available. */
static int need(struct lg_pub *p, size_t n)
{
    while (p->rlen - p->rpos < n)
        if (fill(p) != 0)
            return -1;
    return 0;
}

/* Append one FastCGI record header. */
static void fcgi_header(struct lg_pub *p, int type, size_t len)
{
    uint8_t h[8] = {1, (uint8_t)type, 0, 1, (uint8_t)(len >> 8), (uint8_t)len, 0, 0};

    req_put(p, h, sizeof h);
}

/* Append one name-value pair (both shorter than 128 bytes) to buf. */
static size_t fcgi_pair(uint8_t *buf, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);

    buf[0] = (uint8_t)nl;
    buf[1] = (uint8_t)vl;
    memcpy(buf + 2, name, nl);
    memcpy(buf + 2 + nl, value, vl);
    return 2 + nl + vl;
}

/* Build the FastCGI request for body. */
static void fcgi_build(struct lg_pub *p, const char *body, size_t len)
{
    uint8_t begin[8] = {0, FCGI_RESPONDER, p->cfg->keep ? FCGI_KEEP_CONN : 0, 0, 0, 0, 0, 0};
    uint8_t params[512];
    char clen[24];
    size_t n = 0;

    snprintf(clen, sizeof clen, "%zu", len);
    n += fcgi_pair(params + n, "REQUEST_METHOD", "POST");
    n += fcgi_pair(params + n, "SCRIPT_NAME", "/publish");
    n += fcgi_pair(params + n, "REQUEST_URI", "/publish");
    n += fcgi_pair(params + n, "CONTENT_TYPE", "application/json");
    n += fcgi_pair(params + n, "CONTENT_LENGTH", clen);
    n += fcgi_pair(params + n, "SERVER_PROTOCOL", "HTTP/1.1");
    if (p->cfg->script[0] != '\0')
        n += fcgi_pair(params + n, "SCRIPT_FILENAME", p->cfg->script);
    fcgi_header(p, FCGI_BEGIN_REQUEST, sizeof begin);
    req_put(p, begin, sizeof begin);
    fcgi_header(p, FCGI_PARAMS, n);
    req_put(p, params, n);
    fcgi_header(p, FCGI_PARAMS, 0);
    for (size_t off = 0; off < len; off += FCGI_MAX_CONTENT) {
        size_t k = len - off < FCGI_MAX_CONTENT ? len - off : FCGI_MAX_CONTENT;

        fcgi_header(p, FCGI_STDIN, k);
        req_put(p, body + off, k);
    }
    fcgi_header(p, FCGI_STDIN, 0);
}

/* The CGI status in the STDOUT head: "Status: NNN", else 200. */
static int cgi_status(const char *out)
{
    for (const char *line = out; line != NULL && *line != '\0';) {
        if (strncasecmp(line, "Status:", 7) == 0)
            return atoi(line + 7);
        if (line[0] == '\r' || line[0] == '\n')
            break;
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return 200;
}

/* Read FastCGI records until END_REQUEST. */
static int fcgi_read(struct lg_pub *p, int *status)
{
    p->outlen = 0;
    for (;;) {
        const uint8_t *h;
        size_t clen, plen, keep;

        if (need(p, 8) != 0)
            return -1;
        h = p->rbuf + p->rpos;
        if (h[0] != 1)
            return fail(p, "FastCGI record version %u", h[0]);
        clen = (size_t)h[4] << 8 | h[5];
        plen = h[6];
        if (need(p, 8 + clen + plen) != 0)
            return -1;
        h = p->rbuf + p->rpos;
        if (h[1] == FCGI_STDOUT) {
            keep = PUB_OUT_KEEP - p->outlen < clen ? PUB_OUT_KEEP - p->outlen : clen;
            memcpy(p->out + p->outlen, h + 8, keep);
            p->outlen += keep;
        } else if (h[1] == FCGI_END_REQUEST) {
            p->rpos += 8 + clen + plen;
            if (clen < 8 || h[8 + 4] != 0)
                return fail(p, "FastCGI END_REQUEST with protocol status %d",
                            clen < 8 ? -1 : h[8 + 4]);
            p->out[p->outlen] = '\0';
            *status = cgi_status(p->out);
            return 0;
        }
        p->rpos += 8 + clen + plen;
    }
}

/* Build the HTTP request for body. */
static int http_build(struct lg_pub *p, const char *channel, const char *body, size_t len)
{
    struct lg_vars v = {.id = -1, .channel = channel};
    char path[1024], head[1400];
    int n;

    if (lg_util_expand(path, sizeof path, p->cfg->path, &v, NULL) < 0)
        return fail(p, "cannot expand %s", p->cfg->path);
    n = snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 path, p->cfg->host, len);
    if (n < 0 || (size_t)n >= sizeof head)
        return fail(p, "request head too long");
    req_put(p, head, (size_t)n);
    req_put(p, body, len);
    return 0;
}

/* Find the end of one CRLF-terminated line from rpos; its length without CRLF. */
static int read_line(struct lg_pub *p, size_t *len)
{
    for (size_t scanned = 0;;) {
        const uint8_t *s = p->rbuf + p->rpos;
        const uint8_t *e = memmem(s + scanned, p->rlen - p->rpos - scanned, "\r\n", 2);

        if (e != NULL) {
            *len = (size_t)(e - s);
            return 0;
        }
        scanned = p->rlen - p->rpos > 0 ? p->rlen - p->rpos - 1 : 0;
        if (fill(p) != 0)
            return -1;
    }
}

/* Skip n body bytes. */
static int skip(struct lg_pub *p, uint64_t n)
{
    while (n > 0) {
        size_t avail = p->rlen - p->rpos, take;

        if (avail == 0) {
            if (fill(p) != 0)
                return -1;
            continue;
        }
        take = avail < n ? avail : (size_t)n;
        p->rpos += take;
        n -= take;
    }
    return 0;
}

/* Skip a chunked body, trailers included. */
static int skip_chunked(struct lg_pub *p)
{
    for (;;) {
        size_t len;
        unsigned long long size;

        if (read_line(p, &len) != 0)
            return -1;
        size = strtoull((const char *)p->rbuf + p->rpos, NULL, 16);
        p->rpos += len + 2;
        if (size == 0)
            break;
        if (skip(p, size + 2) != 0)
            return -1;
    }
    for (;;) {
        size_t len;

        if (read_line(p, &len) != 0)
            return -1;
        p->rpos += len + 2;
        if (len == 0)
            return 0;
    }
}

/* Read one HTTP answer whole; *close set when the server will not keep it. */
static int http_read(struct lg_pub *p, int *status, int *close_after)
{
    long long clen = -1;
    int chunked = 0;
    size_t len;

    if (read_line(p, &len) != 0)
        return -1;
    if (len < 12 || memcmp(p->rbuf + p->rpos, "HTTP/1.", 7) != 0)
        return fail(p, "not an HTTP answer");
    *close_after = p->rbuf[p->rpos + 7] == '0';
    *status = atoi((const char *)p->rbuf + p->rpos + 9);
    for (p->rpos += len + 2;; p->rpos += len + 2) {
        const char *line;

        if (read_line(p, &len) != 0)
            return -1;
        if (len == 0)
            break;
        line = (const char *)p->rbuf + p->rpos;
        if (len > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoll(line + 15, NULL, 10);
        else if (len > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0)
            chunked = memmem(line, len, "chunked", 7) != NULL;
        else if (len > 11 && strncasecmp(line, "Connection:", 11) == 0)
            *close_after = memmem(line, len, "close", 5) != NULL ||
                           (*close_after && memmem(line, len, "eep-alive", 9) == NULL);
    }
    p->rpos += 2;
    if (*status / 100 == 1 || *status == 204 || *status == 304)
        return 0;
    if (chunked)
        return skip_chunked(p);
    if (clen >= 0)
        return skip(p, (uint64_t)clen);
    /* No length: the body runs to EOF, which is the expected end here. */
    *close_after = 1;
    while (fill(p) == 0)
        p->rpos = p->rlen;
    return 0;
}

/* One attempt: connect if needed, send the built request, read the answer. */
static int attempt(struct lg_pub *p, int *status)
{
    int close_after = 0, r;

    if (p->fd < 0 && pub_connect(p) != 0)
        return -1;
    p->got_bytes = 0;
    if (send_all(p) != 0)
        return -1;
    if (p->cfg->kind == LG_PUB_FCGI) {
        r = fcgi_read(p, status);
        close_after = !p->cfg->keep;
    } else {
        r = http_read(p, status, &close_after);
    }
    if (r != 0)
        return -1;
    p->requests++;
    if (close_after)
        pub_close(p);
    return 0;
}

int lg_pub_post(struct lg_pub *p, const char *channel, const char *body, size_t len, int *status)
{
    p->reqlen = 0;
    if (p->cfg->kind == LG_PUB_FCGI)
        fcgi_build(p, body, len);
    else if (http_build(p, channel, body, len) != 0)
        return -1;
    for (int tries = 0;; tries++) {
        int reused = p->fd >= 0 && p->requests > 0;

        if (attempt(p, status) == 0)
            return 0;
        pub_close(p);
        if (!reused || p->got_bytes || tries > 0)
            return -1;
    }
}

/*
 * apiconn.c -- one caller's connection to an API socket (see apiconn.h).
 *
 * Owns:       struct apiconn and its buffers.
 * Called by:  api.c, on the API thread that holds the connection.
 * Invariants: the socket is non-blocking and every call on it is made
 *             once per step: a caller that sends nothing, trickles, or
 *             never reads its answer costs a file descriptor and its
 *             bounded buffers until its deadline, never a thread. The
 *             answer is written in full before the next request is read,
 *             so a caller cannot queue answers it does not read.
 *
 * A request moves through: bytes read -> gate (framing) -> params and body
 * kept within their limits, or counted and dropped -> whole (READY) ->
 * answered through libfcgi (relay.c) -> answer written -> the next request
 * on a kept connection (FCGI_KEEP_CONN), or close. Closing never waits on
 * the peer: a Unix socket has no RST to fear, so there is no lingering read.
 */
#include "apiconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cfg.h"
#include "xmalloc.h"

#define APICONN_READS 16      /* reads per wakeup before the connection yields its thread */
#define APICONN_KEEP_CAP 4096 /* a buffer this small is kept between requests */

struct apiconn *apiconn_new(int fd, int site, long uid, double now, double timeout)
{
    struct apiconn *c = xcalloc(1, sizeof *c);

    c->fd = fd;
    c->site = site;
    c->uid = uid;
    gate_init(&c->gate);
    /* The first request must come in time: a caller that connects and waits holds nothing. */
    c->deadline = now + timeout;
    atomic_init(&c->expired, 0);
    atomic_init(&c->listed, 0);
    return c;
}

/* Let go of a buffer's bytes. */
static void apiconn_buf_free(struct relay_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Empty a buffer; a small one stays allocated for the connection's next request. */
static void apiconn_buf_clear(struct relay_buf *b)
{
    if (b->cap > APICONN_KEEP_CAP)
        apiconn_buf_free(b);
    b->len = 0;
}

/* Forget the request's params and body. */
static void apiconn_reset(struct apiconn *c)
{
    apiconn_buf_clear(&c->params);
    apiconn_buf_clear(&c->body);
    c->refuse = 0;
    c->read_only = 0;
    c->dropped = 0;
}

void apiconn_free(struct apiconn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    apiconn_buf_free(&c->params);
    apiconn_buf_free(&c->body);
    free(c->rest);
    free(c->out);
    free(c);
}

int apiconn_mid_request(const struct apiconn *c)
{
    return !gate_idle(&c->gate);
}

/* May this caller use the site's socket (publish_uids, checked per request for reloads)? */
static int apiconn_allowed(const struct apiconn *c, const struct cfg_site *site)
{
    if (site->nuids == 0)
        return 1;
    for (size_t i = 0; i < site->nuids; i++)
        if (c->uid >= 0 && site->uids[i] == (uid_t)c->uid)
            return 1;
    return 0;
}

/*
 * Append p[0..n) to b, which may hold at most max bytes (plus a NUL);
 * -1, and nothing added, past that. Never allocates past the limit.
 */
static int apiconn_keep(struct relay_buf *b, const uint8_t *p, size_t n, size_t max)
{
    if (n > max - b->len)
        return -1;
    relay_reserve(b, n + 1, max + 1);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Refuse the request with status: keep nothing more of it. */
static void apiconn_refuse(struct apiconn *c, int status)
{
    if (c->refuse == 0)
        c->refuse = status;
    c->dropped += c->params.len + c->body.len;
    apiconn_buf_clear(&c->params);
    apiconn_buf_clear(&c->body);
}

/* A request began: its limits are the site's now. */
static void apiconn_begin(struct apiconn *c, const struct cfg_site *site, double now,
                          double timeout)
{
    apiconn_reset(c);
    c->max_body = site->api_max_body;
    /* root could read every site's secret anyway; it may look, not publish. */
    if (!apiconn_allowed(c, site) && c->uid == 0)
        c->read_only = 1;
    else if (!apiconn_allowed(c, site))
        c->refuse = 403;
    if (c->deadline == 0)
        c->deadline = now + timeout;
}

/* Content of the request: kept within its limit, or dropped. Returns -1 past the drain cap. */
static int apiconn_content(struct apiconn *c, enum gate_event ev, const struct gate_chunk *ch)
{
    if (c->refuse == 0 && ev == GATE_PARAMS_DATA &&
        apiconn_keep(&c->params, ch->p, ch->len, APICONN_MAX_PARAMS) != 0)
        apiconn_refuse(c, 431);
    else if (c->refuse == 0 && ev == GATE_STDIN_DATA &&
             apiconn_keep(&c->body, ch->p, ch->len, c->max_body) != 0)
        apiconn_refuse(c, 413);
    else if (c->refuse == 0)
        return 0;
    c->dropped += ch->len;
    if (c->dropped <= APICONN_DRAIN_MAX)
        return 0;
    c->fail = c->refuse;
    c->fail_why = "sent 16 MiB more than it may";
    return -1;
}

/* The params are whole: would libfcgi's reader walk them safely? */
static void apiconn_params_end(struct apiconn *c)
{
    if (c->refuse == 0 && gate_params_check(c->params.p, c->params.len) < 0)
        apiconn_refuse(c, 400);
}

/* Queue a reply to a management record: GET_VALUES gets an empty result, others UNKNOWN_TYPE. */
static void apiconn_management(struct apiconn *c, int type)
{
    uint8_t rec[GATE_HEADER + 8] = {0};
    size_t n = GATE_HEADER;

    if (type == GATE_GET_VALUES) {
        gate_header(rec, GATE_GET_VALUES_RESULT, 0, 0, 0);
    } else {
        gate_header(rec, GATE_UNKNOWN_TYPE, 0, 8, 0);
        rec[GATE_HEADER] = (uint8_t)type;
        n += 8;
    }
    c->out = xrealloc(c->out, c->out_len + n);
    memcpy(c->out + c->out_len, rec, n);
    c->out_len += n;
}

/* Keep the bytes read past a whole request for the next one. */
static void apiconn_keep_rest(struct apiconn *c, const uint8_t *p, size_t n)
{
    uint8_t *rest = xmalloc(n);

    memcpy(rest, p, n);
    free(c->rest);
    c->rest = rest;
    c->rest_len = n;
}

/*
 * Feed bytes through the gate. READY when a request is whole (the bytes
 * after it kept), WRITE when a management reply is queued, READ for more,
 * CLOSE when the bytes are not FastCGI or the caller sent too much.
 */
static enum apiconn_step apiconn_feed(struct apiconn *c, const struct cfg_site *site,
                                      const uint8_t *p, size_t n, double now, double timeout)
{
    while (n > 0) {
        struct gate_chunk ch;
        enum gate_event ev;
        int err;
        ssize_t r = gate_next(&c->gate, p, n, &ev, &ch, &err);

        if (r < 0) {
            c->fail = 400;
            c->fail_why = gate_strerror(err);
            return APICONN_CLOSE;
        }
        if (c->deadline == 0)
            c->deadline = now + timeout;
        p += r;
        n -= (size_t)r;
        if (ev == GATE_BEGIN) {
            apiconn_begin(c, site, now, timeout);
        } else if (ev == GATE_PARAMS_DATA || ev == GATE_STDIN_DATA) {
            if (apiconn_content(c, ev, &ch) != 0)
                return APICONN_CLOSE;
        } else if (ev == GATE_PARAMS_END) {
            apiconn_params_end(c);
        } else if (ev == GATE_ABORT) {
            apiconn_reset(c);
        } else if (ev == GATE_MANAGEMENT) {
            apiconn_management(c, c->gate.mgmt_type);
        } else if (ev == GATE_STDIN_END) {
            if (n > 0)
                apiconn_keep_rest(c, p, n);
            return APICONN_READY;
        }
    }
    return c->out_len > 0 ? APICONN_WRITE : APICONN_READ;
}

/* Go on with the bytes kept from the last read, if any. */
static enum apiconn_step apiconn_resume(struct apiconn *c, const struct cfg_site *site, double now,
                                        double timeout)
{
    uint8_t *rest = c->rest;
    size_t n = c->rest_len;
    enum apiconn_step st;

    c->rest = NULL;
    c->rest_len = 0;
    st = rest != NULL ? apiconn_feed(c, site, rest, n, now, timeout) : APICONN_READ;
    free(rest);
    return st;
}

enum apiconn_step apiconn_read(struct apiconn *c, const struct cfg_site *site, uint8_t *buf,
                               size_t size, double now, double timeout)
{
    if (atomic_load(&c->expired))
        return APICONN_CLOSE;
    for (int i = 0; i < APICONN_READS; i++) {
        ssize_t n = read(c->fd, buf, size);
        enum apiconn_step st;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return APICONN_READ;
        if (n <= 0)
            return APICONN_CLOSE;
        st = apiconn_feed(c, site, buf, (size_t)n, now, timeout);
        if (st == APICONN_WRITE)
            return apiconn_write(c, site, now, timeout);
        if (st != APICONN_READ)
            return st;
    }
    /* Still more: let other connections have the thread; epoll says it is readable. */
    return APICONN_READ;
}

/* Send as much of p[0..n) as the socket takes now; *sent says how much. -1 when it is broken. */
static int apiconn_send(int fd, const uint8_t *p, size_t n, size_t *sent)
{
    *sent = 0;
    while (*sent < n) {
        ssize_t r = send(fd, p + *sent, n - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        *sent += (size_t)r;
    }
    return 0;
}

/* Add p[0..n) to what is still to be written, after what already waits. */
static void apiconn_queue_out(struct apiconn *c, const uint8_t *p, size_t n)
{
    size_t pending = c->out_len - c->out_off;
    uint8_t *out = xmalloc(pending + n);

    if (pending > 0)
        memcpy(out, c->out + c->out_off, pending);
    memcpy(out + pending, p, n);
    free(c->out);
    c->out = out;
    c->out_len = pending + n;
    c->out_off = 0;
}

/* The answer is written: close, or go on with the next request. */
static enum apiconn_step apiconn_answered(struct apiconn *c, const struct cfg_site *site,
                                          double now, double timeout)
{
    c->answering = 0;
    if (!c->gate.keep_conn)
        return APICONN_CLOSE;
    c->deadline = 0;
    return apiconn_resume(c, site, now, timeout);
}

enum apiconn_step apiconn_serve(struct apiconn *c, const struct cfg_site *site, struct relay *r,
                                relay_handler *handler, void *arg, double now, double timeout)
{
    uint8_t *answer;
    size_t len, sent = 0;
    int rc;

    if (c->body.p != NULL)
        c->body.p[c->body.len] = '\0';
    /* A refused request's params were never kept: libfcgi gets none. */
    rc = relay_run(r, c->gate.request_id, c->params.p, c->params.len, handler, arg, &answer, &len);
    apiconn_reset(c);
    if (rc != 0)
        return APICONN_CLOSE;
    c->answering = 1;
    c->deadline = now + timeout;
    /* Usually the socket takes it all at once, from the relay's buffer: nothing is copied. */
    if (c->out_off == c->out_len) {
        if (apiconn_send(c->fd, answer, len, &sent) != 0)
            return APICONN_CLOSE;
        if (sent == len)
            return apiconn_answered(c, site, now, timeout);
    }
    /* Behind a management reply still waiting, or what the socket did not take. */
    apiconn_queue_out(c, answer + sent, len - sent);
    return apiconn_write(c, site, now, timeout);
}

enum apiconn_step apiconn_write(struct apiconn *c, const struct cfg_site *site, double now,
                                double timeout)
{
    size_t sent;

    if (atomic_load(&c->expired) ||
        apiconn_send(c->fd, c->out + c->out_off, c->out_len - c->out_off, &sent) != 0)
        return APICONN_CLOSE;
    c->out_off += sent;
    if (c->out_off < c->out_len)
        return APICONN_WRITE;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    /* A management reply sits between records: go on reading where the gate stands. */
    if (!c->answering)
        return APICONN_READ;
    return apiconn_answered(c, site, now, timeout);
}

/*
 * lg_conn.c -- one client connection's bytes once its socket is up: the 101
 * answer, frames, reassembly, control frames, and the check of each delivery;
 * plus the send queue and the end of a connection.
 *
 * Owns:       a connection's buffers while it lives (out, frag) and its
 *             broadcast bitmap (kept after the end for lg_recv_missing).
 * Called by:  lg_recv.c, on the receiver thread.
 * Invariants: a frame is handled only once it is whole in the buffer given;
 *             a message split in fragments is copied into c->frag, the only
 *             per-message allocation. Control frames may arrive between
 *             fragments (RFC 6455 5.4).
 * Errors:     a malformed frame, a continuation without a start, a new
 *             message inside a fragmented one, or an oversized message end
 *             the connection (protocol_errors and disconnects); a message
 *             whose "s" and "t" cannot be found, or a seq nobody published,
 *             counts in protocol_errors only.
 * Spec notes: a masked server frame is unmasked and accepted. A close frame
 *             is answered with a masked close echoing its code, then the
 *             socket is closed without waiting for the server's FIN.
 * Tests:      broadcast and targeted runs (Herald); a stand-in server that
 *             fragments, pings between fragments and splits writes.
 */
#include "lg_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg_hist.h"
#include "lg_track.h"
#include "lg_util.h"

/* Keep the first failure's reason for the caller's stderr line. */
void lg_conn_note(struct lg_recv *r, uint32_t id, const char *what, const char *why)
{
    if (r->first_error[0] == '\0')
        snprintf(r->first_error, sizeof r->first_error, "connection %u: %s: %s", id, what, why);
}

/* Free a connection's buffers (not its bitmap: lg_recv_missing reads it). */
static void conn_release(struct lg_conn *c)
{
    free(c->in);
    free(c->out);
    free(c->frag);
    c->in = c->out = c->frag = NULL;
    c->inlen = c->incap = c->outlen = 0;
    c->fraglen = 0;
    c->frag_op = 0;
}

/* End a connection: close the socket, free its buffers, count the reason. */
void lg_conn_end(struct lg_recv *r, struct lg_conn *c, enum lg_conn_end why)
{
    if (c->state == LG_CS_CONNECTING || c->state == LG_CS_HANDSHAKE)
        r->inflight--;
    if (c->state == LG_CS_OPEN) {
        r->st.live--;
        r->st.live_received -= c->received;
    }
    if (c->fd >= 0 && close(c->fd) != 0)
        perror("loadgen: close");
    c->fd = -1;
    c->state = LG_CS_DEAD;
    conn_release(c);
    switch (why) {
    case LG_END_CONNECT: r->st.connect_errors++; break;
    case LG_END_HANDSHAKE: r->st.handshake_errors++; break;
    case LG_END_CLOSE: r->st.closes++; break;
    case LG_END_LOST: r->st.disconnects++; break;
    case LG_END_PROTOCOL:
        r->st.protocol_errors++;
        r->st.disconnects++;
        break;
    case LG_END_SHUTDOWN: break;
    }
}

/* Set the events epoll watches for c: always input, output while bytes wait. */
int lg_conn_watch(struct lg_recv *r, struct lg_conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(c - r->conns)};

    if (epoll_ctl(r->epfd, op, c->fd, &ev) != 0) {
        lg_conn_note(r, (uint32_t)(c - r->conns), "epoll_ctl", strerror(errno));
        return -1;
    }
    c->want_out = (events & EPOLLOUT) != 0;
    return 0;
}

/* Send bytes, queueing what the socket does not take now. 0 or -1 (lost). */
int lg_conn_send(struct lg_recv *r, struct lg_conn *c, const void *data, size_t len)
{
    ssize_t n = 0;

    if (c->outlen == 0) {
        n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n < 0)
            n = 0;
        if ((size_t)n == len)
            return 0;
    }
    c->out = lg_util_realloc(c->out, c->outlen + len - (size_t)n);
    memcpy(c->out + c->outlen, (const uint8_t *)data + n, len - (size_t)n);
    c->outlen += (uint32_t)(len - (size_t)n);
    if (!c->want_out && lg_conn_watch(r, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT) != 0)
        return -1;
    return 0;
}

/* Write queued bytes once the socket is writable. 0 or -1 (lost). */
int lg_conn_flush(struct lg_recv *r, struct lg_conn *c)
{
    ssize_t n = c->outlen ? send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    memmove(c->out, c->out + n, c->outlen - (size_t)n);
    c->outlen -= (uint32_t)n;
    if (c->outlen > 0)
        return 0;
    free(c->out);
    c->out = NULL;
    return lg_conn_watch(r, c, EPOLL_CTL_MOD, EPOLLIN);
}

/* The handshake succeeded. */
static void conn_upgraded(struct lg_recv *r, struct lg_conn *c)
{
    c->state = LG_CS_OPEN;
    r->inflight--;
    r->st.connected++;
    r->st.live++;
    if (!r->cfg.targeted && r->cfg.messages > 0)
        c->bits = lg_util_calloc((r->cfg.messages + 7) / 8, 1);
}

/* Check one text message: find its seq and timestamp, classify the arrival. */
static void on_message(struct lg_recv *r, struct lg_conn *c, const uint8_t *p, size_t len,
                       uint64_t now)
{
    uint32_t id = (uint32_t)(c - r->conns);
    uint64_t seq, t;
    enum lg_track_result res;

    if (lg_ws_find_st(p, len, &seq, &t) != 0) {
        r->st.protocol_errors++;
        return;
    }
    if (r->cfg.track == NULL) {
        res = LG_TRACK_NEW;
    } else if (r->cfg.targeted) {
        res = lg_track_deliver(r->cfg.track, seq, id);
    } else if (seq >= r->cfg.messages) {
        res = LG_TRACK_UNKNOWN;
    } else if (c->bits[seq >> 3] & (1u << (seq & 7))) {
        res = LG_TRACK_DUP;
    } else {
        c->bits[seq >> 3] |= (uint8_t)(1u << (seq & 7));
        res = LG_TRACK_NEW;
    }
    switch (res) {
    case LG_TRACK_NEW:
        r->st.deliveries++;
        r->st.live_received++;
        c->received++;
        lg_hist_record(&r->st.lat, now > t ? now - t : 0);
        if (r->st.t_first_delivery == 0)
            r->st.t_first_delivery = now;
        r->st.t_last_delivery = now;
        break;
    case LG_TRACK_DUP: r->st.duplicates++; break;
    case LG_TRACK_MISROUTED: r->st.misrouted++; break;
    case LG_TRACK_UNKNOWN: r->st.protocol_errors++; break;
    }
}

/* Answer a ping or a close with a masked frame carrying its payload. */
static int send_control(struct lg_recv *r, struct lg_conn *c, unsigned op, const uint8_t *p,
                        size_t len)
{
    uint8_t frame[125 + LG_WS_CLIENT_HEADER];
    uint32_t mask = (uint32_t)(lg_util_rand(&r->rng) >> 32);

    return lg_conn_send(r, c, frame, lg_ws_encode(frame, op, p, len > 125 ? 125 : len, mask));
}

/* Act on one complete frame. 0, or -1 when the connection ended. */
static int on_frame(struct lg_recv *r, struct lg_conn *c, const struct lg_ws_frame *f,
                    const uint8_t *p, uint64_t now)
{
    switch (f->opcode) {
    case LG_WS_OP_TEXT:
    case LG_WS_OP_BINARY:
        if (c->frag_op != 0)
            break;
        if (f->fin) {
            on_message(r, c, p, f->len, now);
            return 0;
        }
        c->frag = lg_util_malloc(f->len);
        memcpy(c->frag, p, f->len);
        c->fraglen = f->len;
        c->frag_op = (uint8_t)f->opcode;
        return 0;
    case LG_WS_OP_CONT:
        if (c->frag_op == 0 || c->fraglen + f->len > LG_MAX_MESSAGE)
            break;
        c->frag = lg_util_realloc(c->frag, c->fraglen + f->len);
        memcpy(c->frag + c->fraglen, p, f->len);
        c->fraglen += f->len;
        if (f->fin) {
            on_message(r, c, c->frag, c->fraglen, now);
            free(c->frag);
            c->frag = NULL;
            c->fraglen = 0;
            c->frag_op = 0;
        }
        return 0;
    case LG_WS_OP_PING:
        r->st.pings++;
        if (send_control(r, c, LG_WS_OP_PONG, p, f->len) != 0) {
            lg_conn_end(r, c, LG_END_LOST);
            return -1;
        }
        return 0;
    case LG_WS_OP_PONG: return 0;
    case LG_WS_OP_CLOSE:
        /* Echo the status code; the socket closes right after, so ignore failures. */
        (void)send_control(r, c, LG_WS_OP_CLOSE, p, f->len >= 2 ? 2 : 0);
        lg_conn_end(r, c, LG_END_CLOSE);
        return -1;
    }
    lg_conn_end(r, c, LG_END_PROTOCOL);
    return -1;
}

/* Parse what arrived: the 101 answer, then frames. Bytes used, or -1 if ended. */
long lg_conn_consume(struct lg_recv *r, struct lg_conn *c, uint8_t *buf, size_t len, uint64_t now)
{
    size_t pos = 0;

    if (c->state == LG_CS_HANDSHAKE) {
        const char *why = NULL;
        int h = lg_ws_check_answer((const char *)buf, len, c->accept, &why);
        const uint8_t *eol;
        char line[128];

        if (h == LG_WS_NEED_MORE)
            return 0;
        if (h == LG_WS_INVALID) {
            eol = memchr(buf, '\r', len < 64 ? len : 64);
            snprintf(line, sizeof line, "%s (%.*s)", why,
                     (int)(eol ? (size_t)(eol - buf) : (len < 64 ? len : 64)), (const char *)buf);
            lg_conn_note(r, (uint32_t)(c - r->conns), "handshake", line);
            lg_conn_end(r, c, LG_END_HANDSHAKE);
            return -1;
        }
        conn_upgraded(r, c);
        pos = (size_t)h;
    }
    while (pos < len) {
        struct lg_ws_frame f;
        int hl = lg_ws_frame_header(buf + pos, len - pos, &f);

        if (hl == LG_WS_NEED_MORE)
            break;
        if (hl == LG_WS_INVALID || f.len > LG_MAX_MESSAGE) {
            lg_conn_end(r, c, LG_END_PROTOCOL);
            return -1;
        }
        if (len - pos - (size_t)hl < f.len)
            break;
        if (f.masked)
            lg_ws_unmask(buf + pos + hl, f.len, f.mask);
        if (on_frame(r, c, &f, buf + pos + hl, now) != 0)
            return -1;
        pos += (size_t)hl + f.len;
    }
    return (long)pos;
}

/*
 * conn.c -- one client connection, from accept to free. Whether it may
 * be (site, address, token, counts) is conn_admit.c's.
 *
 * Owns:       struct conn and everything it points to (see conn.h).
 * Called by:  worker.c, on the owning worker's thread only.
 * Invariants: reads go into the worker's shared buffer and are decoded
 *             there, in place: an idle conn holds no read buffer, a head
 *             that arrives whole (the usual case) is parsed where it lies,
 *             only a partial one is copied out (sized to what came, at most
 *             max_header_size), and a split frame keeps only its header
 *             bytes (hdr) and, for control frames, at most 125 payload
 *             bytes. Writes are queued (one msg ref each) and written with
 *             writev from the worker's prepare watcher, once per loop
 *             iteration. Every close we start counts in stats exactly once,
 *             where it starts.
 *
 * Budget: every byte a peer makes us hold counts against max_queued_bytes
 * at its real cost: a frame's length, its queue entry, and for a frame made
 * for this conn alone (answers, pongs, close frames) its allocation, as
 * glibc rounds it (conn_extra). Pings are answered as RFC 6455 5.5.3
 * allows: a ping that comes while an earlier pong still waits, unstarted,
 * replaces that pong's payload, so a flood of pings from a client that
 * never reads holds one pong, not one per ping.
 *
 * Closing: a close frame (or an HTTP refusal) is queued, the conn leaves
 * the registry (CLOSING), the queue drains, writing is shut down, and the
 * conn lingers until the peer closes or the linger deadline passes. Closing
 * the socket with unread input would send a RST that can destroy the close
 * frame before the peer reads it.
 */
#include "conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd.h"
#include "handshake.h"
#include "engine.h"
#include "histo.h"
#include "http.h"
#include "lim.h"
#include "log.h"
#include "msg.h"
#include "stats.h"
#include "tok.h"
#include "xmalloc.h"

#define CONN_LINGER 2.0   /* seconds a closing conn waits for the peer */
#define CONN_IOV_MAX 1024 /* IOV_MAX on Linux: a backlog of small frames goes out in few writes */

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);

struct conn *conn_from_link(struct reg_link *l)
{
    return (struct conn *)((char *)l - offsetof(struct conn, link));
}

const struct cfg_site *conn_cfg(const struct conn *c)
{
    return c->x->cfg->sites[c->site];
}

struct conn_ctx_site *conn_site(const struct conn *c)
{
    return &c->x->sites[c->site];
}

struct stats *conn_stats(const struct conn *c)
{
    return c->site >= 0 ? &c->x->sites[c->site].stats : &c->x->stats;
}

void conn_accept(struct conn_ctx *x, int fd)
{
    char addr[LIM_ADDR_MAX];
    struct conn *c;
    int counted;

    if (conn_admit_socket(x, fd, addr, &counted) != 0)
        return;
    c = xcalloc(1, sizeof *c);
    c->x = x;
    c->fd = fd;
    /* With one site every connection is its from the first byte: its 404s and timeouts too. */
    c->site = x->nsites == 1 ? 0 : -1;
    c->id = ++x->next_conn_id;
    c->state = CONN_HANDSHAKE;
    if (counted) {
        c->addr = xstrdup(addr);
        c->addr_checked = c->addr_counted = 1;
    }
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    ev_io_start(x->loop, &c->io);
    conn_ctx_timer_add(x, c, CONN_TIMER_HANDSHAKE,
                       ev_now(x->loop) + x->cfg->handshake_timeout_ms / 1000.0);
    x->nconns++;
}

/* Watch for writability too, or stop watching it. */
static void conn_want_write(struct conn *c, int want)
{
    if (c->want_write == want)
        return;
    c->want_write = want;
    ev_io_stop(c->x->loop, &c->io);
    ev_io_set(&c->io, c->fd, want ? EV_READ | EV_WRITE : EV_READ);
    ev_io_start(c->x->loop, &c->io);
}

static void conn_overflow(struct conn *c);

/* glibc's chunk for malloc(n) on 64-bit: n and a size word, rounded up to 16, at least 32. */
static size_t conn_chunk(size_t n)
{
    size_t chunk = (n + 8 + 15) & ~(size_t)15;

    return chunk < 32 ? 32 : chunk;
}

/* What queuing m costs beyond its length: its entry and, for a frame of c's own, its msg. */
static uint32_t conn_extra(const struct msg *m, int own)
{
    size_t extra = conn_chunk(sizeof(struct conn_out));

    if (own)
        extra += conn_chunk(sizeof *m + m->len) - m->len;
    return (uint32_t)extra;
}

/* Queue m, taking over a reference; 0 when that would pass max_queued_bytes (conn_send). */
static int conn_queue(struct conn *c, struct msg *m, int own)
{
    uint32_t extra = conn_extra(m, own);
    struct conn_out *o;

    if (c->state == CONN_OPEN &&
        (c->overflow || c->out_bytes + m->len + extra > c->x->cfg->max_queued_bytes)) {
        msg_unref(m);
        conn_overflow(c);
        return 0;
    }
    o = conn_ctx_out_get(c->x);
    o->msg = m;
    o->extra = extra;
    o->next = NULL;
    if (c->out_tail != NULL)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_bytes += m->len + extra;
    if (!c->want_write)
        conn_ctx_pending_add(c->x, c);
    return 1;
}

int conn_send(struct conn *c, struct msg *m)
{
    return conn_queue(c, msg_ref(m), 0);
}

int conn_send_own(struct conn *c, struct msg *m)
{
    return conn_queue(c, m, 1);
}

/*
 * A publish's frame o was written whole: count its delivery lag. The clock
 * is read once per flush, at its first such frame (*now 0 until then), so
 * a flush of answers and pongs reads none; now NULL: dropped, not written.
 */
static void conn_count_lag(struct conn *c, const struct conn_out *o, uint64_t *now)
{
    uint64_t queued = atomic_load_explicit(&o->msg->queued, memory_order_relaxed);

    if (queued == 0 || now == NULL || c->site < 0)
        return;
    if (*now == 0)
        *now = histo_now_ns();
    histo_observe(&conn_stats(c)->delivery_lag, *now > queued ? *now - queued : 0);
}

/* Drop written bytes from the front of the queue (now: conn_count_lag's; NULL: dropped). */
static void conn_consume(struct conn *c, size_t n, uint64_t *now)
{
    while (n > 0 && c->out_head != NULL) {
        struct conn_out *o = c->out_head;
        size_t left = o->msg->len - c->out_off;

        /* Being written: a later ping gets a pong of its own. */
        if (o == c->pong)
            c->pong = NULL;
        if (n < left) {
            c->out_off += (uint32_t)n;
            c->out_bytes -= n;
            return;
        }
        n -= left;
        conn_count_lag(c, o, now);
        c->out_bytes -= left + o->extra;
        c->out_off = 0;
        c->out_head = o->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        msg_unref(o->msg);
        conn_ctx_out_put(c->x, o);
    }
}

/* The queue is empty: after a close or refusal, shut down our side. */
static void conn_drained(struct conn *c)
{
    conn_want_write(c, 0);
    if (c->state == CONN_CLOSING && c->close_queued && !c->write_shut) {
        c->write_shut = 1;
        if (shutdown(c->fd, SHUT_WR) != 0)
            conn_kill(c);
    }
}

void conn_flush(struct conn *c)
{
    struct iovec iov[CONN_IOV_MAX];
    uint64_t now = 0; /* read at the first publish's frame written (conn_count_lag) */

    while (c->out_head != NULL) {
        struct conn_out *o = c->out_head;
        size_t off = c->out_off;
        int n = 0;
        ssize_t r;

        for (; o != NULL && n < CONN_IOV_MAX; o = o->next, n++) {
            iov[n].iov_base = o->msg->data + off;
            iov[n].iov_len = o->msg->len - off;
            off = 0;
        }
        r = writev(c->fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_want_write(c, 1);
                return;
            }
            log_msg(LOG_DEBUG, "conn", "conn=%llu write: %s", (unsigned long long)c->id,
                    strerror(errno));
            conn_kill(c);
            return;
        }
        conn_consume(c, (size_t)r, &now);
    }
    conn_drained(c);
}

/* This worker holds (1) or no longer holds (0) a connection of user, as the engine says. */
static void conn_hold_user(const struct conn *c, const char *user, int held)
{
    struct eng_stream s = {c->site, 'u', user};

    eng_hold(c->x->hub->engine, &s, c->x->id, held);
}

/* Leave OPEN: out of the registry and the open array. */
static void conn_leave_open(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    c->x->ops->on_close(c);
    if (c->total_counted)
        lim_total_release(c->x->hub->lim);
    c->total_counted = 0;
    if (c->link.user != NULL)
        eng_count(c->x->hub->engine, c->site, c->link.user->id, -1);
    if (c->link.user != NULL && c->link.user->nlinks == 1)
        conn_hold_user(c, c->link.user->id, 0);
    reg_remove(&conn_site(c)->reg, &c->link);
    conn_ctx_open_remove(c->x, c);
    conn_stats(c)->connections--;
}

/*
 * Queue a final message (a close frame, counted by its code when c was
 * open), then linger until the peer closes.
 */
static void conn_begin_closing(struct conn *c, struct msg *m, int code)
{
    if (c->state == CONN_OPEN)
        stats_count_close(conn_stats(c), code);
    conn_leave_open(c);
    conn_ctx_timer_remove(c->x, c);
    c->state = CONN_CLOSING;
    c->close_queued = 1;
    conn_send_own(c, m);
    conn_ctx_timer_add(c->x, c, CONN_TIMER_CLOSING, ev_now(c->x->loop) + CONN_LINGER);
}

void conn_close(struct conn *c, int code)
{
    if (c->state == CONN_OPEN) {
        log_msg(LOG_DEBUG, "conn", "conn=%llu closing with %d", (unsigned long long)c->id, code);
        conn_begin_closing(c, msg_new_close(code), code);
    } else if (c->state == CONN_HANDSHAKE) {
        conn_kill(c);
    }
}

/*
 * Drop every queued frame but one already partly written (cutting it would
 * corrupt the stream), so a close frame can follow it.
 */
static void conn_truncate_queue(struct conn *c)
{
    struct conn_out *keep = c->out_off > 0 ? c->out_head : NULL;
    struct conn_out *o = keep != NULL ? keep->next : c->out_head;

    c->pong = NULL;

    while (o != NULL) {
        struct conn_out *next = o->next;

        msg_unref(o->msg);
        conn_ctx_out_put(c->x, o);
        o = next;
    }
    if (keep != NULL) {
        keep->next = NULL;
        c->out_tail = keep;
        c->out_bytes = keep->msg->len - c->out_off + keep->extra;
    } else {
        c->out_head = c->out_tail = NULL;
        c->out_bytes = 0;
    }
}

/* A reader too slow for what it is sent: drop its backlog; conn_service closes it. */
static void conn_overflow(struct conn *c)
{
    if (c->overflow)
        return;
    log_msg(LOG_INFO, "conn", "conn=%llu slow consumer: %llu bytes unsent, closing with 1008",
            (unsigned long long)c->id, (unsigned long long)c->out_bytes);
    c->overflow = 1;
    conn_stats(c)->slow_consumers++;
    conn_truncate_queue(c);
    conn_ctx_pending_add(c->x, c);
}

void conn_service(struct conn *c)
{
    if (c->overflow && c->state == CONN_OPEN)
        conn_close(c, WS_CLOSE_POLICY);
    if (c->state != CONN_DEAD)
        conn_flush(c);
}

/* A protocol violation: count it and close with its code. */
static void conn_fail(struct conn *c, int code)
{
    stats_count_protocol_error(conn_stats(c), code);
    conn_close(c, code);
}

void conn_kill(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->state == CONN_OPEN)
        stats_count_close(conn_stats(c), WS_CLOSE_ABNORMAL);
    conn_leave_open(c);
    conn_ctx_timer_remove(c->x, c);
    c->state = CONN_DEAD;
    ev_io_stop(c->x->loop, &c->io);
    conn_ctx_pending_add(c->x, c);
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->x->loop, &c->io);
    conn_ctx_timer_remove(c->x, c);
    conn_consume(c, SIZE_MAX, NULL); /* dropped, not written: no lag */
    close(c->fd);
    lim_fd_release(c->x->hub->lim);
    if (c->addr_counted)
        lim_addr_leave(c->x->hub->lim, c->x->cfg, c->addr, lim_now());
    c->x->nconns--;
    free(c->head);
    free(c->ctrl);
    free(c->mbuf);
    c->x->ops->on_free(c);
    free(c->addr);
    free(c);
}

/* Refuse the handshake with the HTTP status for reason r. */
static void conn_refuse(struct conn *c, enum hs_reason r)
{
    char buf[512];
    size_t n = hs_write_refusal(buf, sizeof buf, r);

    conn_stats(c)->handshakes_refused[r]++;
    log_msg(LOG_DEBUG, "hs", "conn=%llu refused: %s (%d)", (unsigned long long)c->id,
            hs_reason_name(r), hs_status(r));
    free(c->head);
    c->head = NULL;
    c->head_len = c->head_cap = 0;
    conn_begin_closing(c, msg_new_raw(buf, n), 0);
}

void conn_expire(struct conn *c)
{
    if (c->state == CONN_HANDSHAKE)
        conn_refuse(c, HS_TIMEOUT);
    else
        conn_kill(c);
}

static void conn_feed(struct conn *c, uint8_t *p, size_t n);

/* Tell the client layer, with ?since= decoded ("?" when it cannot be: not recoverable). */
static void conn_opened(struct conn *c, const struct hs_result *res)
{
    char since[ENG_ID_MAX];
    int n;

    if (!res->has_since) {
        c->x->ops->on_open(c, NULL);
        return;
    }
    n = http_percent_decode(res->since, since, sizeof since - 1);
    if (n < 0)
        n = snprintf(since, sizeof since, "?");
    since[n] = '\0';
    c->x->ops->on_open(c, since);
}

/*
 * The head is complete: check it, answer 101 or refuse. Every head that
 * gets here counts against its address's rate, refused or not, so a loop
 * of bad requests through a proxy is cut off like a loop of good ones.
 */
static void conn_upgrade(struct conn *c, const struct http_request *req)
{
    struct tok_claims claims;
    struct hs_result res;
    enum hs_reason r;
    char buf[256];

    memset(&claims, 0, sizeof claims);
    r = conn_admit(c, req, &res, &claims);
    if (r != HS_OK) {
        tok_claims_free(&claims);
        conn_refuse(c, r);
        return;
    }
    conn_send_own(c, msg_new_raw(buf, hs_write_accept(buf, sizeof buf, &res)));
    conn_ctx_timer_remove(c->x, c);
    c->state = CONN_OPEN;
    conn_ctx_open_add(c->x, c);
    conn_stats(c)->connections++;
    conn_stats(c)->connections_total++;
    if (claims.sub[0] != '\0') {
        reg_add(&conn_site(c)->reg, &c->link, claims.sub, strlen(claims.sub));
        if (c->link.user->nlinks == 1)
            conn_hold_user(c, claims.sub, 1);
        eng_count(c->x->hub->engine, c->site, claims.sub, 1);
    }
    log_msg(LOG_DEBUG, "conn", "conn=%llu open user=%s", (unsigned long long)c->id,
            claims.sub[0] ? claims.sub : "(anonymous)");
    tok_claims_free(&claims);
    conn_opened(c, &res);
}

/*
 * http_parse_request said r about buf[0..len): refuse, or upgrade and
 * decode the frames the client sent right behind its head (the rest of buf,
 * then more[0..nmore), read with it), so they are not lost.
 */
static void conn_head_done(struct conn *c, int r, const struct http_request *req, uint8_t *buf,
                           size_t len, uint8_t *more, size_t nmore)
{
    if (r == HTTP_NEED_MORE || r == HTTP_TOO_MANY_HEADERS ||
        (r > 0 && (size_t)r > c->x->cfg->max_header_size)) {
        conn_refuse(c, HS_TOO_LARGE);
    } else if (r < 0) {
        conn_refuse(c, HS_BAD_REQUEST);
    } else {
        conn_upgrade(c, req);
        conn_feed(c, buf + r, len - (size_t)r);
        conn_feed(c, more, nmore);
    }
    free(c->head);
    c->head = NULL;
    c->head_len = c->head_cap = 0;
}

/* Make room in c->head for n bytes in all: a power of two from 256, at most max_header_size. */
static void conn_head_room(struct conn *c, size_t n)
{
    size_t max = c->x->cfg->max_header_size, cap = c->head_cap ? c->head_cap : 256;

    while (cap < n)
        cap *= 2;
    if (cap > max)
        cap = max > n ? max : n;
    if (cap != c->head_cap) {
        c->head = xrealloc(c->head, cap);
        c->head_cap = (uint32_t)cap;
    }
}

/* The first bytes of a head, in the worker's buffer: parse them there; keep a partial head. */
static void conn_head_first(struct conn *c, uint8_t *p, size_t n)
{
    struct http_request req;
    int r = http_parse_request((const char *)p, n, &req);

    if (r == HTTP_NEED_MORE && n < c->x->cfg->max_header_size) {
        conn_head_room(c, n);
        memcpy(c->head, p, n);
        c->head_len = (uint32_t)n;
        return;
    }
    conn_head_done(c, r, &req, p, n, NULL, 0);
}

/* More of a partial head: append what fits under max_header_size and parse it all again. */
static void conn_head_more(struct conn *c, uint8_t *p, size_t n)
{
    size_t max = c->x->cfg->max_header_size;
    size_t take = c->head_len < max ? max - c->head_len : 0;
    struct http_request req;
    int r;

    if (take > n)
        take = n;
    conn_head_room(c, c->head_len + take);
    memcpy(c->head + c->head_len, p, take);
    c->head_len += (uint32_t)take;
    r = http_parse_request(c->head, c->head_len, &req);
    if (r == HTTP_NEED_MORE && c->head_len < max)
        return;
    conn_head_done(c, r, &req, (uint8_t *)c->head, c->head_len, p + take, n - take);
}

/*
 * Read what the socket has into the loop's shared buffer. Returns its
 * length, or 0: nothing yet, or the peer is gone (then c is killed).
 */
static size_t conn_read(struct conn *c)
{
    ssize_t n = read(c->fd, c->x->rbuf, c->x->rbuf_size);

    if (n > 0)
        return (size_t)n;
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        conn_kill(c);
    return 0;
}

/* Read into the loop's shared buffer; act on the head once it is complete. */
static void conn_read_handshake(struct conn *c)
{
    size_t n = conn_read(c);

    if (n == 0)
        return;
    if (c->head == NULL)
        conn_head_first(c, c->x->rbuf, n);
    else
        conn_head_more(c, c->x->rbuf, n);
}

/* A whole data message has arrived: text is a command, binary is ignored. */
static void conn_message_end(struct conn *c)
{
    if (c->mtext && !utf8_complete(&c->utf8)) {
        conn_fail(c, WS_CLOSE_BAD_DATA);
        return;
    }
    if (c->mtext)
        c->x->ops->on_message(c, (const char *)c->mbuf, (size_t)c->mlen);
    else
        log_msg(LOG_DEBUG, "conn", "conn=%llu binary message of %llu bytes ignored",
                (unsigned long long)c->id, (unsigned long long)c->mlen);
    free(c->mbuf);
    c->mbuf = NULL;
    c->mlen = c->mcap = 0;
}

/* The peer sent CLOSE: check it and echo its code. */
static void conn_close_received(struct conn *c)
{
    int code, close_code;

    if (ws_parse_close(c->ctrl, c->ctrl_len, &code, &close_code) != 0) {
        conn_fail(c, close_code);
        return;
    }
    if (code == WS_CLOSE_NO_STATUS)
        conn_begin_closing(c, msg_new(WS_OP_CLOSE, NULL, 0), code);
    else
        conn_begin_closing(c, msg_new_close(code), code);
}

/*
 * Answer the ping just read. A pong still waiting, unstarted, takes this
 * ping's payload instead of a second pong being queued (RFC 6455 5.5.3: a
 * pong for the latest ping suffices); one partly written is left alone.
 * A payload of the same length is written over the old one: that pong is
 * c's own and nothing has read it yet (msg.h), so a flood of pings costs
 * no allocation at all.
 */
static void conn_pong(struct conn *c)
{
    struct conn_out *o = c->pong;
    struct msg *m;

    if (o != NULL && o->msg->len == 2u + c->ctrl_len) {
        memcpy(o->msg->data + 2, c->ctrl, c->ctrl_len); /* a control frame's header is 2 bytes */
        return;
    }
    m = msg_new(WS_OP_PONG, c->ctrl, c->ctrl_len);
    if (o == NULL) {
        if (conn_send_own(c, m))
            c->pong = c->out_tail;
        return;
    }
    c->out_bytes -= o->msg->len + o->extra;
    msg_unref(o->msg);
    o->msg = m;
    o->extra = conn_extra(m, 1);
    c->out_bytes += m->len + o->extra;
}

/* A frame's payload is complete. */
static void conn_frame_end(struct conn *c)
{
    c->in_frame = 0;
    switch (c->frame.opcode) {
    case WS_OP_PING: conn_pong(c); break;
    case WS_OP_PONG: c->ping_out = 0; break;
    case WS_OP_CLOSE: conn_close_received(c); break;
    default:
        if (c->frame.fin)
            conn_message_end(c);
        break;
    }
}

/* A frame header has been read: set up for its payload. Returns 0 on failure. */
static int conn_frame_start(struct conn *c)
{
    const struct ws_frame *f = &c->frame;

    c->in_frame = 1;
    c->frame_left = f->payload_len;
    c->frame_off = 0;
    if (f->opcode >= WS_OP_CLOSE) {
        if (c->ctrl == NULL)
            c->ctrl = xmalloc(125);
        c->ctrl_len = 0;
    } else {
        if (f->opcode != WS_OP_CONT) {
            c->mtext = f->opcode == WS_OP_TEXT;
            c->mlen = 0;
            utf8_init(&c->utf8);
        }
        if (c->mlen + f->payload_len > c->x->cfg->max_message_size) {
            conn_fail(c, WS_CLOSE_TOO_BIG);
            return 0;
        }
    }
    if (c->frame_left == 0)
        conn_frame_end(c);
    return 1;
}

/* Parse a frame header from p (completing a split one). Returns bytes used. */
static size_t conn_header(struct conn *c, const uint8_t *p, size_t n)
{
    size_t old = c->hdr_len, hn = n;
    const uint8_t *h = p;
    int r, code;

    if (old > 0) {
        size_t take = n < sizeof c->hdr - old ? n : sizeof c->hdr - old;

        memcpy(c->hdr + old, p, take);
        h = c->hdr;
        hn = old + take;
    }
    r = ws_parse_header(h, hn, c->x->cfg->max_message_size, &c->frame, &code);
    if (r == WS_NEED_MORE) {
        if (old == 0)
            memcpy(c->hdr, p, n);
        c->hdr_len = (uint8_t)hn;
        return n;
    }
    c->hdr_len = 0;
    if (r < 0 || ws_seq_next(&c->seq, &c->frame, &code) != 0) {
        conn_fail(c, code);
        return n;
    }
    if (!conn_frame_start(c))
        return n;
    return (size_t)r - old;
}

/* Append payload bytes to the message being reassembled. */
static void conn_append(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->mlen + n > c->mcap) {
        uint64_t cap = c->mcap ? c->mcap : 256;

        while (cap < c->mlen + n)
            cap *= 2;
        if (cap > c->x->cfg->max_message_size)
            cap = c->x->cfg->max_message_size;
        c->mbuf = xrealloc(c->mbuf, cap);
        c->mcap = cap;
    }
    memcpy(c->mbuf + c->mlen, p, n);
    c->mlen += n;
}

/* Unmask and take payload bytes of the current frame. Returns bytes used. */
static size_t conn_payload(struct conn *c, uint8_t *p, size_t n)
{
    size_t take = n < c->frame_left ? n : (size_t)c->frame_left;

    ws_unmask(p, take, c->frame.mask, c->frame_off);
    if (c->frame.opcode >= WS_OP_CLOSE) {
        memcpy(c->ctrl + c->ctrl_len, p, take);
        c->ctrl_len += (uint8_t)take;
    } else {
        if (c->mtext && utf8_feed(&c->utf8, p, take) != 0) {
            conn_fail(c, WS_CLOSE_BAD_DATA);
            return n;
        }
        conn_append(c, p, take);
    }
    c->frame_left -= take;
    c->frame_off += take;
    if (c->frame_left == 0)
        conn_frame_end(c);
    return take;
}

/* Decode frames from p[0..n), in place, while the conn stays open. */
static void conn_feed(struct conn *c, uint8_t *p, size_t n)
{
    while (n > 0 && c->state == CONN_OPEN) {
        size_t used = c->in_frame ? conn_payload(c, p, n) : conn_header(c, p, n);

        p += used;
        n -= used;
    }
}

/* Read into the loop's shared buffer and decode there. */
static void conn_read_frames(struct conn *c)
{
    size_t n = conn_read(c);

    if (n == 0)
        return;
    c->got_rx = 1;
    if (c->state == CONN_OPEN)
        conn_feed(c, c->x->rbuf, n);
}

/* The socket is readable or writable. */
static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = (struct conn *)((char *)io - offsetof(struct conn, io));

    if (revents & EV_WRITE) {
        conn_flush(c);
        if (c->state == CONN_DEAD)
            return;
    }
    if (revents & EV_READ) {
        if (c->state == CONN_HANDSHAKE)
            conn_read_handshake(c);
        else
            conn_read_frames(c);
    }
}

/*
 * lg_recv.c -- the receiver: N WebSocket client connections on one epoll
 * loop: connecting, the upgrade request, reading, and the loop itself.
 *
 * Owns:       the connection array, the epoll fd, one shared read buffer,
 *             and per connection only what it needs right now: unparsed
 *             bytes between reads (NULL almost always). What the bytes mean
 *             is lg_conn.c's business.
 * Called by:  loadgen.c, on the main thread, which is the receiver thread.
 * Invariants: level-triggered epoll, non-blocking sockets, one recv of at
 *             most LG_READ_CHUNK per readiness event so no connection
 *             starves the others. Reads land in the shared buffer; only a
 *             frame split across reads is copied out, exactly sized, into
 *             the connection, so 19,000 idle connections cost ~100 bytes
 *             each. A connection slot is used once (ids are never reused),
 *             so an epoll event for a connection that ended is ignored.
 *             At most LG_RECV_MAX_INFLIGHT connects and handshakes at once;
 *             each has LG_HS_TIMEOUT_NS to finish.
 * Errors:     each failing connection is counted by reason and closed;
 *             only epoll_create/epoll_wait failures stop the run.
 * Spec notes: client sockets bind 127.0.0.(1 + id % K) with port 0 and
 *             IP_BIND_ADDRESS_NO_PORT, so the port is picked at connect
 *             time per 4-tuple and K sources give K ephemeral port ranges.
 *             The Sec-WebSocket-Key is 16 bytes from getrandom(2).
 * Tests:      idle, broadcast and targeted runs against Herald.
 */
#include "lg_recv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lg_conn.h"
#include "lg_tok.h"
#include "lg_util.h"
#include "lg_ws.h"

#define LG_RBUF (1024 * 1024)      /* the shared read buffer */
#define LG_READ_CHUNK (256 * 1024) /* most bytes one recv takes */
#define LG_HS_TIMEOUT_NS (15ull * 1000000000u)
#define LG_EVENTS 1024
#define LG_TICK_MS 20 /* epoll_wait bound: how often done() is asked */

struct lg_recv *lg_recv_new(const struct lg_recv_cfg *cfg, char **cause)
{
    struct lg_recv *r = lg_util_calloc(1, sizeof *r);
    const char *host = cfg->tmpl + 5, *slash, *colon;
    char ip[48];
    unsigned long port;

    r->epfd = -1;
    r->cfg = *cfg;
    slash = strchr(host, '/');
    colon = slash ? memchr(host, ':', (size_t)(slash - host)) : NULL;
    if (strncmp(cfg->tmpl, "ws://", 5) != 0 || colon == NULL ||
        (size_t)(colon - host) >= sizeof ip || (size_t)(slash - host) >= sizeof r->host ||
        memchr(host, '{', (size_t)(slash - host)) != NULL) {
        if (asprintf(cause, "--sub %s: expected ws://IPv4:PORT/path", cfg->tmpl) < 0)
            *cause = NULL;
        goto fail;
    }
    memcpy(ip, host, (size_t)(colon - host));
    ip[colon - host] = '\0';
    memcpy(r->host, host, (size_t)(slash - host));
    port = strtoul(colon + 1, NULL, 10);
    r->dst.sin_family = AF_INET;
    r->dst.sin_port = htons((uint16_t)port);
    if (port == 0 || port > 65535 ||
        inet_pton(AF_INET, strcmp(ip, "localhost") == 0 ? "127.0.0.1" : ip, &r->dst.sin_addr) !=
            1) {
        if (asprintf(cause, "--sub %s: expected ws://IPv4:PORT/path", cfg->tmpl) < 0)
            *cause = NULL;
        goto fail;
    }
    r->path_tmpl = slash;
    r->need_token = strstr(slash, "{token}") != NULL;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        if (asprintf(cause, "epoll_create1: %s", strerror(errno)) < 0)
            *cause = NULL;
        goto fail;
    }
    r->conns = lg_util_calloc(cfg->conns ? cfg->conns : 1, sizeof *r->conns);
    for (uint32_t i = 0; i < cfg->conns; i++)
        r->conns[i].fd = -1;
    r->rbuf = lg_util_malloc(LG_RBUF);
    r->rng = lg_util_seed();
    return r;
fail:
    if (r->epfd >= 0)
        close(r->epfd);
    free(r);
    return NULL;
}

void lg_recv_free(struct lg_recv *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->cfg.conns; i++) {
        if (r->conns[i].fd >= 0)
            lg_conn_end(r, &r->conns[i], LG_END_SHUTDOWN);
        free(r->conns[i].bits);
    }
    if (r->epfd >= 0 && close(r->epfd) != 0)
        perror("loadgen: close");
    free(r->conns);
    free(r->rbuf);
    free(r);
}

/* Start the TCP connect of connection id. */
static void conn_start(struct lg_recv *r, uint32_t id, uint64_t now)
{
    struct lg_conn *c = &r->conns[id];
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;

    c->started = now;
    c->state = LG_CS_CONNECTING;
    r->inflight++;
    src.sin_addr.s_addr = htonl(0x7f000001u + id % (uint32_t)r->cfg.src_ips);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        lg_conn_note(r, id, "socket", strerror(errno));
        goto fail;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) {
        lg_conn_note(r, id, "setsockopt", strerror(errno));
        goto fail;
    }
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
        lg_conn_note(r, id, "bind", strerror(errno));
        goto fail;
    }
    if (connect(c->fd, (struct sockaddr *)&r->dst, sizeof r->dst) != 0 && errno != EINPROGRESS) {
        lg_conn_note(r, id, "connect", strerror(errno));
        goto fail;
    }
    if (lg_conn_watch(r, c, EPOLL_CTL_ADD, EPOLLOUT) == 0)
        return;
fail:
    lg_conn_end(r, c, LG_END_CONNECT);
}

/* Build and send the upgrade request once the TCP connect completed. */
static void conn_connected(struct lg_recv *r, struct lg_conn *c)
{
    uint32_t id = (uint32_t)(c - r->conns);
    char user[24], token[LG_TOK_MAX], path[2048], req[2600], key[LG_WS_KEY_LEN + 1];
    unsigned char raw[16];
    struct lg_vars v = {.id = id, .user = user, .token = NULL};
    int err = 0, n;
    socklen_t len = sizeof err;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        lg_conn_note(r, id, "connect", strerror(err));
        lg_conn_end(r, c, LG_END_CONNECT);
        return;
    }
    snprintf(user, sizeof user, "u%llu", (unsigned long long)(r->cfg.id_base + id));
    v.channel = r->cfg.targeted ? user : "all";
    if (r->need_token && r->cfg.secret != NULL &&
        lg_tok_sign(r->cfg.secret, user, (long long)time(NULL) + 86400, token, sizeof token) > 0)
        v.token = token;
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        lg_conn_note(r, id, "getrandom", strerror(errno));
        lg_conn_end(r, c, LG_END_CONNECT);
        return;
    }
    lg_ws_key(raw, key);
    lg_ws_accept(key, c->accept);
    n = lg_util_expand(path, sizeof path, r->path_tmpl, &v, NULL);
    if (n >= 0)
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, r->host, key);
    if (n < 0 || (size_t)n >= sizeof req) {
        lg_conn_note(r, id, "request", "URL template does not expand");
        lg_conn_end(r, c, LG_END_HANDSHAKE);
        return;
    }
    c->state = LG_CS_HANDSHAKE;
    if (lg_conn_watch(r, c, EPOLL_CTL_MOD, EPOLLIN) != 0 ||
        lg_conn_send(r, c, req, (size_t)n) != 0) {
        lg_conn_note(r, id, "send", strerror(errno));
        lg_conn_end(r, c, LG_END_HANDSHAKE);
    }
}

/* Keep the len unparsed bytes at p in the connection (p may point into c->in). */
static void keep_rest(struct lg_conn *c, const uint8_t *p, size_t len)
{
    if (len == 0) {
        free(c->in);
        c->in = NULL;
        c->inlen = c->incap = 0;
        return;
    }
    if (c->in != NULL && p >= c->in && p < c->in + c->incap) {
        memmove(c->in, p, len);
        if (len <= LG_RBUF / 2) {
            c->in = lg_util_realloc(c->in, len);
            c->incap = (uint32_t)len;
        }
    } else {
        free(c->in);
        c->in = lg_util_malloc(len);
        c->incap = (uint32_t)len;
        memcpy(c->in, p, len);
    }
    c->inlen = (uint32_t)len;
}

/* Read once from a connection and parse what arrived. */
static void conn_read(struct lg_recv *r, struct lg_conn *c)
{
    int big = c->inlen > LG_RBUF / 2;
    uint8_t *base = r->rbuf;
    size_t have = 0, room;
    ssize_t n;
    uint64_t now;
    long used;

    if (big) {
        if (c->incap < c->inlen + LG_READ_CHUNK) {
            c->incap = c->inlen + LG_READ_CHUNK;
            c->in = lg_util_realloc(c->in, c->incap);
        }
        base = c->in;
        have = c->inlen;
        room = LG_READ_CHUNK;
    } else {
        if (c->inlen > 0)
            memcpy(r->rbuf, c->in, c->inlen);
        have = c->inlen;
        room = LG_RBUF - have < LG_READ_CHUNK ? LG_RBUF - have : LG_READ_CHUNK;
    }
    n = recv(c->fd, base + have, room, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (c->state == LG_CS_HANDSHAKE)
            lg_conn_note(r, (uint32_t)(c - r->conns), "handshake",
                         n == 0 ? "closed by the server" : strerror(errno));
        lg_conn_end(r, c, c->state == LG_CS_HANDSHAKE ? LG_END_HANDSHAKE : LG_END_LOST);
        return;
    }
    now = lg_util_now_ns();
    have += (size_t)n;
    used = lg_conn_consume(r, c, base, have, now);
    if (used < 0)
        return;
    keep_rest(c, base + used, have - (size_t)used);
}

/* Fail handshakes that have taken too long. */
static void sweep_timeouts(struct lg_recv *r, uint64_t now)
{
    if (now - r->last_sweep < 1000000000u)
        return;
    r->last_sweep = now;
    for (uint32_t i = 0; i < r->next && r->inflight > 0; i++) {
        struct lg_conn *c = &r->conns[i];

        if ((c->state == LG_CS_CONNECTING || c->state == LG_CS_HANDSHAKE) &&
            now - c->started > LG_HS_TIMEOUT_NS) {
            lg_conn_note(r, i, c->state == LG_CS_CONNECTING ? "connect" : "handshake", "timed out");
            lg_conn_end(r, c, c->state == LG_CS_CONNECTING ? LG_END_CONNECT : LG_END_HANDSHAKE);
        }
    }
}

/* Dispatch one epoll event. */
static void on_event(struct lg_recv *r, const struct epoll_event *ev)
{
    struct lg_conn *c = &r->conns[ev->data.u64];

    if (c->state == LG_CS_CONNECTING) {
        conn_connected(r, c);
        return;
    }
    if (c->state != LG_CS_HANDSHAKE && c->state != LG_CS_OPEN)
        return;
    if ((ev->events & EPOLLOUT) && lg_conn_flush(r, c) != 0) {
        lg_conn_end(r, c, c->state == LG_CS_HANDSHAKE ? LG_END_HANDSHAKE : LG_END_LOST);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(r, c);
}

/* The loop: connect while ids remain, serve events, until done or deadline. */
static int loop(struct lg_recv *r, uint64_t deadline,
                int (*done)(void *arg, const struct lg_recv_stats *st), void *arg, char **cause)
{
    struct epoll_event ev[LG_EVENTS];

    for (;;) {
        uint64_t now = lg_util_now_ns();
        int n, wait_ms;

        while (r->next < r->cfg.conns && r->inflight < LG_RECV_MAX_INFLIGHT)
            conn_start(r, r->next++, now);
        sweep_timeouts(r, now);
        if (done(arg, &r->st) || now >= deadline)
            return 0;
        wait_ms = (int)((deadline - now) / 1000000u) + 1;
        n = epoll_wait(r->epfd, ev, LG_EVENTS, wait_ms < LG_TICK_MS ? wait_ms : LG_TICK_MS);
        if (n < 0 && errno != EINTR) {
            if (asprintf(cause, "epoll_wait: %s", strerror(errno)) < 0)
                *cause = NULL;
            return -1;
        }
        for (int i = 0; i < n; i++)
            on_event(r, &ev[i]);
    }
}

/* done() for the connect phase: every connection upgraded or failed. */
static int all_connected(void *arg, const struct lg_recv_stats *st)
{
    const struct lg_recv *r = arg;

    return r->next == r->cfg.conns && r->inflight == 0;
}

int lg_recv_connect(struct lg_recv *r, uint64_t deadline, char **cause)
{
    int rc;

    r->st.t_connect_start = lg_util_now_ns();
    rc = loop(r, deadline, all_connected, r, cause);
    r->st.t_connected = lg_util_now_ns();
    return rc;
}

int lg_recv_run(struct lg_recv *r, uint64_t deadline,
                int (*done)(void *arg, const struct lg_recv_stats *st), void *arg, char **cause)
{
    return loop(r, deadline, done, arg, cause);
}

const struct lg_recv_stats *lg_recv_stats(const struct lg_recv *r)
{
    return &r->st;
}

const char *lg_recv_first_error(const struct lg_recv *r)
{
    return r->first_error;
}

uint64_t lg_recv_missing(const struct lg_recv *r)
{
    uint64_t missing = 0, m = r->cfg.messages;
    uint8_t *ok;

    if (r->cfg.track == NULL || r->cfg.targeted)
        return 0;
    ok = lg_util_malloc(m);
    for (uint64_t seq = 0; seq < m; seq++)
        ok[seq] = (uint8_t)lg_track_was_ok(r->cfg.track, seq);
    for (uint32_t i = 0; i < r->cfg.conns; i++) {
        const uint8_t *bits = r->conns[i].bits;

        for (uint64_t seq = 0; bits != NULL && seq < m; seq++)
            missing += ok[seq] && !(bits[seq >> 3] & (1u << (seq & 7)));
    }
    free(ok);
    return missing;
}

uint32_t *lg_recv_live_ids(const struct lg_recv *r, uint32_t *n)
{
    uint32_t *ids = lg_util_calloc(r->st.live ? r->st.live : 1, sizeof *ids);

    *n = 0;
    for (uint32_t i = 0; i < r->cfg.conns; i++)
        if (r->conns[i].state == LG_CS_OPEN)
            ids[(*n)++] = i;
    return ids;
}

/*
 * mlisten.c -- the metrics listener (mlisten.h).
 *
 * Owns:       struct mlisten and its connections (struct mconn).
 * Called by:  main.c; everything else runs on the listener's own thread.
 * Invariants: one thread owns every connection; it never blocks on a peer
 *             (non-blocking sockets, level-triggered epoll). It blocks only
 *             while scrape.c gathers the figures, which waits for the
 *             workers and the engine, never for a peer. Each connection
 *             carries one request: its head is read whole (at most
 *             MLISTEN_MAX_HEAD bytes), parsed by lib/proto/http.c, answered,
 *             and the connection is closed once the answer is written
 *             ("Connection: close"). Every answer but a scrape's 200, and
 *             every connection closed before its answer, is counted by
 *             reason in herald_metrics_refused_total.
 */
#include "mlisten.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "lim.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "scrape.h"
#include "xmalloc.h"

#define MLISTEN_MAX_CONNS LIM_FD_METRICS /* open at once; more are closed at accept */
#define MLISTEN_MAX_HEAD 8192            /* bytes of a request head */
#define MLISTEN_HEAD_TIMEOUT 5           /* seconds for the head to arrive */
#define MLISTEN_IO_TIMEOUT 10            /* seconds for the answer to be taken */
#define MLISTEN_EVENTS 16                /* events per wait */
#define MLISTEN_POLL_MS 100              /* how often the thread looks at deadlines and stopping */
#define MLISTEN_PAUSE 0.1                /* seconds accepting pauses after EMFILE */
#define MLISTEN_TAG_LISTENER 1u /* the listener's epoll tag; a connection's is its pointer */

/* Why a connection got no metrics, as herald_metrics_refused_total's reason. */
enum mlisten_reason {
    MLISTEN_BAD_REQUEST,
    MLISTEN_NOT_FOUND,
    MLISTEN_BAD_METHOD,
    MLISTEN_TOO_LARGE,
    MLISTEN_TIMEOUT,
    MLISTEN_TOO_MANY,
    MLISTEN_NREASONS
};

static const char *const mlisten_reason_names[MLISTEN_NREASONS] = {
    "bad_request", "not_found", "bad_method", "too_large", "timeout", "too_many_connections"};

/* One peer's connection. */
struct mconn {
    struct mconn *prev, *next; /* borrowed: every open connection */
    int fd;
    double deadline; /* monotonic seconds: close when passed */
    size_t len;      /* bytes of head in buf */
    char *out;       /* owned: the answer, or NULL while reading */
    size_t out_len, out_off;
    char buf[MLISTEN_MAX_HEAD];
};

struct mlisten {
    struct api *a; /* borrowed */
    int lfd;
    int epfd;
    pthread_t tid;
    int started;
    atomic_int stopping;
    struct mconn *conns; /* owned */
    int nconns;
    double paused_until; /* accepting resumes then, after EMFILE; 0 = not paused */
    atomic_uint_fast64_t refused[MLISTEN_NREASONS];
};

/* Seconds on the monotonic clock. */
static double mlisten_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count a refusal. */
static void mlisten_refused(struct mlisten *m, enum mlisten_reason r)
{
    atomic_fetch_add_explicit(&m->refused[r], 1, memory_order_relaxed);
}

/* Close c and forget it; input still unread is drained first, so no RST cuts the answer. */
static void mlisten_close(struct mlisten *m, struct mconn *c)
{
    char sink[4096];

    for (int i = 0; i < 16 && read(c->fd, sink, sizeof sink) > 0; i++)
        ;
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    m->nconns--;
    free(c->out);
    free(c);
}

/* Watch c for reading or writing. Returns 0, or -1 (c closed). */
static int mlisten_watch(struct mlisten *m, struct mconn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (epoll_ctl(m->epfd, op, c->fd, &ev) == 0)
        return 0;
    log_msg(LOG_WARN, "metrics", "epoll_ctl: %s; closing a connection", strerror(errno));
    mlisten_close(m, c);
    return -1;
}

/* The reason phrase of the statuses this listener answers with. */
static const char *mlisten_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    default: return "Request Header Fields Too Large";
    }
}

/* Make c's answer (the head only when head_only) and start writing it. */
static void mlisten_answer(struct mlisten *m, struct mconn *c, int status, const char *type,
                           const char *body, size_t blen, int head_only)
{
    char *head = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                           "Connection: close\r\n\r\n",
                           status, mlisten_status_text(status), type, blen,
                           status == 405 ? "Allow: GET, HEAD\r\n" : "");
    size_t hlen = strlen(head);

    c->out_len = hlen + (head_only ? 0 : blen);
    c->out = xrealloc(head, c->out_len + 1);
    if (!head_only)
        memcpy(c->out + hlen, body, blen);
    c->out_off = 0;
    c->deadline = mlisten_now() + MLISTEN_IO_TIMEOUT;
}

/* A short plain-text refusal, counted. */
static void mlisten_refuse(struct mlisten *m, struct mconn *c, int status, enum mlisten_reason r,
                           const char *text)
{
    mlisten_refused(m, r);
    mlisten_answer(m, c, status, "text/plain; charset=utf-8", text, strlen(text), 0);
}

/* Append the listener's own family: its refusals by reason. */
static void mlisten_write_refused(struct mlisten *m, struct metrics_buf *b)
{
    const char *name = "herald_metrics_refused_total";

    metrics_family(b, name, "counter",
                   "Connections to metrics_listen answered without metrics, or closed.");
    for (int r = 0; r < MLISTEN_NREASONS; r++) {
        struct metrics_label l = {"reason", mlisten_reason_names[r]};

        metrics_sample(b, name, &l, 1, atomic_load(&m->refused[r]));
    }
}

/* c's head is whole (or can no longer be): answer it. */
static void mlisten_request(struct mlisten *m, struct mconn *c, const struct http_request *req)
{
    struct http_str path = http_target_path(req->target);
    int get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
    int head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    struct metrics_buf b;

    if (path.len != 8 || memcmp(path.p, "/metrics", 8) != 0) {
        mlisten_refuse(m, c, 404, MLISTEN_NOT_FOUND, "not found: try /metrics\n");
        return;
    }
    if (!get && !head) {
        mlisten_refuse(m, c, 405, MLISTEN_BAD_METHOD, "use GET or HEAD for /metrics\n");
        return;
    }
    metrics_buf_init(&b);
    scrape_write(m->a, -1, &b);
    mlisten_write_refused(m, &b);
    mlisten_answer(m, c, 200, METRICS_CONTENT_TYPE, b.p, b.len, head);
    metrics_buf_free(&b);
}

/* Read what c sent; answer once the head is whole. Returns 0, or -1 (c closed). */
static int mlisten_read(struct mlisten *m, struct mconn *c)
{
    struct http_request req;
    ssize_t n = 1; /* > 0: no end of input seen */
    int r;

    while (c->len < sizeof c->buf && (n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len)) > 0)
        c->len += (size_t)n;
    r = http_parse_request(c->buf, c->len, &req);
    if (r == HTTP_NEED_MORE && c->len == sizeof c->buf) {
        mlisten_refuse(m, c, 431, MLISTEN_TOO_LARGE, "request head too large\n");
    } else if (r == HTTP_NEED_MORE) {
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            /* Gone before its head was whole: a bad request, unless it sent nothing (a probe). */
            if (c->len > 0)
                mlisten_refused(m, MLISTEN_BAD_REQUEST);
            mlisten_close(m, c);
            return -1;
        }
        return 0;
    } else if (r < 0) {
        mlisten_refuse(m, c, 400, MLISTEN_BAD_REQUEST, "bad request\n");
    } else {
        mlisten_request(m, c, &req);
    }
    return 0;
}

/* Write what is left of c's answer; close c once it is all written. Returns 0, or -1. */
static int mlisten_write(struct mlisten *m, struct mconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return mlisten_watch(m, c, EPOLLOUT, EPOLL_CTL_MOD);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        c->out_off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    mlisten_close(m, c);
    return -1;
}

/* c has an event: read its request, or go on writing its answer. */
static void mlisten_on_conn(struct mlisten *m, struct mconn *c)
{
    if (c->out == NULL && (mlisten_read(m, c) != 0 || c->out == NULL))
        return;
    mlisten_write(m, c);
}

/* Stop watching the listener for a moment: the descriptors ran out (EMFILE). */
static void mlisten_pause(struct mlisten *m)
{
    log_msg(LOG_WARN, "metrics", "accept: %s; pausing", strerror(errno));
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->lfd, NULL);
    m->paused_until = mlisten_now() + MLISTEN_PAUSE;
}

/* Accept the peers waiting; over MLISTEN_MAX_CONNS, close them at once, counted. */
static void mlisten_accept(struct mlisten *m)
{
    for (int i = 0; i < MLISTEN_EVENTS; i++) {
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct mconn *c;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                mlisten_pause(m);
            return;
        }
        if (m->nconns >= MLISTEN_MAX_CONNS) {
            mlisten_refused(m, MLISTEN_TOO_MANY);
            close(fd);
            continue;
        }
        c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->deadline = mlisten_now() + MLISTEN_HEAD_TIMEOUT;
        c->next = m->conns;
        if (m->conns != NULL)
            m->conns->prev = c;
        m->conns = c;
        m->nconns++;
        mlisten_watch(m, c, EPOLLIN, EPOLL_CTL_ADD);
    }
}

/* Close the connections whose deadline passed; resume accepting after a pause. */
static void mlisten_sweep(struct mlisten *m)
{
    double now = mlisten_now();
    struct mconn *c, *next;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = MLISTEN_TAG_LISTENER};

    for (c = m->conns; c != NULL; c = next) {
        next = c->next;
        if (c->deadline <= now) {
            mlisten_refused(m, MLISTEN_TIMEOUT);
            mlisten_close(m, c);
        }
    }
    if (m->paused_until != 0 && now >= m->paused_until) {
        m->paused_until = 0;
        if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->lfd, &ev) != 0)
            log_msg(LOG_ERROR, "metrics", "epoll_ctl: %s; not accepting", strerror(errno));
    }
}

/* The thread: wait for peers and their requests, until stopped. */
static void *mlisten_thread(void *arg)
{
    struct mlisten *m = arg;
    struct epoll_event ev[MLISTEN_EVENTS];

    while (!atomic_load(&m->stopping)) {
        int n = epoll_wait(m->epfd, ev, MLISTEN_EVENTS, MLISTEN_POLL_MS);

        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == MLISTEN_TAG_LISTENER)
                mlisten_accept(m);
            else
                mlisten_on_conn(m, ev[i].data.ptr);
        }
        mlisten_sweep(m);
    }
    return NULL;
}

struct mlisten *mlisten_start(struct api *a, const char *addr, char **cause)
{
    struct mlisten *m = xcalloc(1, sizeof *m);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = MLISTEN_TAG_LISTENER};
    int r;

    m->a = a;
    m->epfd = -1;
    m->lfd = net_listen(addr, 0, 0, cause);
    if (m->lfd < 0)
        goto fail;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->lfd, &ev) != 0) {
        *cause = xasprintf("metrics_listen epoll: %s", strerror(errno));
        goto fail;
    }
    r = pthread_create(&m->tid, NULL, mlisten_thread, m);
    if (r != 0) {
        *cause = xasprintf("metrics_listen thread: %s", strerror(r));
        goto fail;
    }
    m->started = 1;
    log_msg(LOG_INFO, "metrics", "serving /metrics on %s", addr);
    return m;
fail:
    mlisten_stop(m);
    return NULL;
}

void mlisten_stop(struct mlisten *m)
{
    if (m == NULL)
        return;
    atomic_store(&m->stopping, 1);
    if (m->started)
        pthread_join(m->tid, NULL);
    while (m->conns != NULL)
        mlisten_close(m, m->conns);
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->lfd >= 0)
        close(m->lfd);
    free(m);
}

/*
 * rawsrv.c -- the raw-write ceiling of WebSocket fan-out on this machine, the
 * reference Herald's broadcast figures are divided by in bench/run.py.
 *
 *     rawsrv --listen 127.0.0.1:PORT --threads W [--sync]
 *
 * Owns:       W worker threads, each with its own SO_REUSEPORT listener on
 *             PORT, its own epoll set, an eventfd, a job queue, and an array of
 *             the connections it upgraded; and one publish thread (the same
 *             struct, without listener) that serves the publishers' HTTP
 *             connections. Nothing is shared between threads but the jobs (one
 *             struct pub per publish, with atomic counters).
 * Called by:  bench/run.py (make bench) only; the load comes from
 *             build/bench/loadgen. Contract: /work/spec/bench.md.
 * Invariants: a connection belongs to one thread at a time and is only
 *             touched by it: the worker that accepted it, or the publish thread
 *             once the worker handed it over. Frames to one connection leave in
 *             publish order: once a write is short, later frames are appended
 *             to that connection's queue instead of written. A connection is
 *             freed only after the epoll batch that closed it, and never while
 *             a publish it asked for is in flight.
 * Errors:     a failed write or read closes that one connection; a bad HTTP
 *             request gets 400/404/405/411/413/431 (all but 404 then close);
 *             setup errors print one line and exit 1.
 *
 * How a publish runs: a plain HTTP `POST /pub/all` (Content-Length body) is
 * accepted by any worker, which hands the connection, with the request read so
 * far, to the publish thread -- so a publisher never waits behind a worker's
 * fan-out loop, as Herald's publishers never wait behind its workers (its API
 * has threads of its own). The publish thread encodes the body once, as-is,
 * into one unmasked text frame (0x81, 7/16/64-bit length, payload), queues a
 * fan-out job on every worker and wakes each through its eventfd. Each worker
 * write(2)s the frame to each of its connections in a tight loop. The HTTP
 * connection is kept alive. Two ways to answer:
 *
 *   default   answer 200 {"delivered":N} at once, N = the upgraded connections
 *             of all threads. Every frame queued on a thread while it was busy
 *             writing goes out in its next round, concatenated, in one write(2)
 *             per connection (up to RAW_BATCH_BYTES). This is the ceiling for a
 *             server that, like Herald (a writev of queued frames), answers the
 *             publisher before the fan-out ends and coalesces what piles up.
 *             A round is not interrupted: a frame that arrives mid-round waits
 *             for the next one (Herald looks at its queue every 64 conns, so
 *             it may batch a little more, and beat this on a short run).
 *   --sync    one write(2) per frame per connection, and the answer only once
 *             every thread has written the frame (the thread that finishes last
 *             posts the publish back to the first, which answers with the count
 *             of connections written to). The next request on that HTTP
 *             connection is read after the answer. This is the cost of the
 *             writes themselves, one frame at a time.
 *
 * Deliberately not done, because this measures the cost of the writes alone:
 * no routing, users, channels or tokens (every upgraded connection gets every
 * publish); no JSON, no envelope, no UTF-8 check of the body; no reading of
 * client frames (whatever a client sends is read and dropped: no pongs, no
 * close handshake -- a client's EOF just closes the socket); no pings or
 * timeouts; no Origin, Upgrade or Connection header checks beyond
 * Sec-WebSocket-Key and Sec-WebSocket-Version: 13; no TLS; IPv4 only. Queued
 * leftovers are copied per connection (capped at 64 MiB, then closed) rather
 * than shared, since short writes should not happen on a healthy run. On
 * EMFILE the accepting thread sleeps 10 ms, blocking its loop.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define RAW_MAX_HEAD 8192
#define RAW_MAX_BODY (1u << 20)
#define RAW_MAX_QUEUED (64u << 20)
#define RAW_MAX_EVENTS 256
#define RAW_MAX_THREADS 256
#define RAW_BATCH_BYTES (64u << 10) /* queued frames coalesced into one write(2), at most */
#define RAW_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum conn_state {
    CONN_HTTP,    /* reading a request: handshake or publish */
    CONN_MOVING,  /* handed to the publish thread; the worker no longer touches it */
    CONN_WAITING, /* its publish is in flight; input is left unread */
    CONN_WS,      /* upgraded; in its worker's ws array */
    CONN_CLOSED,  /* fd closed; freed after the batch or when its publish ends */
};

struct conn {
    int fd;
    enum conn_state state;
    int dead;        /* closed while CONN_WAITING: the publish frees it */
    uint32_t events; /* epoll interest currently registered */
    size_t ws_index; /* position in worker.ws while CONN_WS */
    char *in;        /* owned; request bytes not yet handled */
    size_t in_len, in_cap;
    char *out; /* owned; bytes a short write left over */
    size_t out_off, out_len, out_cap;
    struct conn *next_free; /* borrowed; graveyard link */
};

struct pub {
    char *frame; /* owned; the encoded frame */
    size_t len;
    atomic_int pending;    /* threads that have not finished the fan-out */
    atomic_long delivered; /* connections the frame was written or queued to */
    struct worker *origin; /* borrowed; the thread that answers (--sync) */
    struct conn *client;   /* borrowed; the HTTP connection waiting, NULL if answered */
};

enum job_kind {
    JOB_FANOUT, /* write pub's frame to every connection of this thread */
    JOB_DONE,   /* every thread finished: answer pub's client (--sync) */
    JOB_ADOPT,  /* a publisher's connection, handed to the publish thread */
};

struct job {
    enum job_kind kind;
    struct pub *pub;   /* borrowed; freed by the origin on JOB_DONE */
    struct conn *conn; /* owned; JOB_ADOPT: the connection handed over */
    struct job *next;  /* owned by the queue */
};

struct worker {
    int id;
    int epfd, lfd, efd;
    pthread_t thread;
    pthread_mutex_t lock;    /* guards head and tail */
    struct job *head, *tail; /* owned; jobs posted by any thread */
    struct conn **ws;        /* owned array of owned conns */
    size_t nws, ws_cap;
    atomic_size_t nws_seen; /* nws, for other threads' answers */
    char *batch;            /* owned; frames concatenated for one write */
    size_t batch_cap;
    struct conn *graveyard; /* owned; closed conns freed after the batch */
};

static char listen_tag, wake_tag; /* epoll data for the listener and eventfd */
static struct worker *workers;    /* owned; the W workers */
static struct worker pub_thread;  /* serves the publishers' connections */
static int nworkers;
static int sync_mode; /* --sync: answer after the writes, one frame each */

static void fail(const char *what)
{
    fprintf(stderr, "rawsrv: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "rawsrv: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

/* Registers the interest the connection's state and queue call for. */
static int conn_want(struct worker *w, struct conn *c)
{
    uint32_t ev = 0;
    if (c->state == CONN_HTTP || c->state == CONN_WS)
        ev |= EPOLLIN;
    if (c->out_off < c->out_len)
        ev |= EPOLLOUT;
    if (ev == c->events)
        return 0;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        return -1;
    c->events = ev;
    return 0;
}

/* Closes the socket; the struct is freed later (see the header). */
static void conn_close(struct worker *w, struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->state == CONN_WS) {
        w->ws[c->ws_index] = w->ws[--w->nws];
        w->ws[c->ws_index]->ws_index = c->ws_index;
        atomic_store_explicit(&w->nws_seen, w->nws, memory_order_relaxed);
    }
    if (close(c->fd) < 0 && errno != EINTR)
        fprintf(stderr, "rawsrv: close: %s\n", strerror(errno));
    if (c->state == CONN_WAITING) {
        c->dead = 1;
        c->state = CONN_CLOSED;
        return;
    }
    c->state = CONN_CLOSED;
    c->next_free = w->graveyard;
    w->graveyard = c;
}

static void conn_free(struct conn *c)
{
    free(c->in);
    free(c->out);
    free(c);
}

/* Appends bytes to the connection's queue of unsent output. */
static int queue_out(struct conn *c, const char *p, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len - c->out_off + n > RAW_MAX_QUEUED)
        return -1;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            c->out_cap = (c->out_len + n) * 2;
            c->out = xrealloc(c->out, c->out_cap);
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* write(2)s the bytes, queuing what a short write leaves; -1 = close it. */
static int conn_send(struct worker *w, struct conn *c, const char *p, size_t n)
{
    if (c->out_off < c->out_len)
        return queue_out(c, p, n);
    ssize_t k;
    do {
        k = write(c->fd, p, n);
    } while (k < 0 && errno == EINTR);
    if (k < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        k = 0;
    }
    if ((size_t)k == n)
        return 0;
    if (queue_out(c, p + k, n - (size_t)k) < 0)
        return -1;
    return conn_want(w, c);
}

/* Writes as much of the queue as the socket takes; -1 = close it. */
static int conn_flush(struct worker *w, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t k = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (size_t)k;
    }
    return conn_want(w, c);
}

/* Sends a small HTTP answer with a JSON body. */
static int http_reply(struct worker *w, struct conn *c, const char *status, const char *body)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     status, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    return conn_send(w, c, buf, (size_t)n);
}

/* Finds header `name` in a request head; returns its trimmed value or NULL. */
static const char *header_value(const char *head, size_t head_len, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *end = head + head_len;
    const char *line = memchr(head, '\n', head_len);
    while (line != NULL && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* Answers the WebSocket handshake and moves the connection to the ws array. */
static int upgrade(struct worker *w, struct conn *c, const char *head, size_t head_len)
{
    size_t klen = 0, vlen = 0;
    const char *key = header_value(head, head_len, "Sec-WebSocket-Key", &klen);
    const char *ver = header_value(head, head_len, "Sec-WebSocket-Version", &vlen);
    if (key == NULL || klen != 24 || ver == NULL || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        http_reply(w, c, "400 Bad Request", "{\"error\":\"not a websocket handshake\"}");
        return -1;
    }
    char cat[24 + sizeof RAW_WS_GUID];
    memcpy(cat, key, 24);
    memcpy(cat + 24, RAW_WS_GUID, sizeof RAW_WS_GUID - 1);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, sizeof cat - 1, sha);
    unsigned char acc[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    EVP_EncodeBlock(acc, sha, SHA_DIGEST_LENGTH);

    char buf[192];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     (const char *)acc);
    if (n < 0 || (size_t)n >= sizeof buf || conn_send(w, c, buf, (size_t)n) < 0)
        return -1;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (w->nws == w->ws_cap) {
        w->ws_cap = w->ws_cap ? w->ws_cap * 2 : 1024;
        w->ws = xrealloc(w->ws, w->ws_cap * sizeof *w->ws);
    }
    c->ws_index = w->nws;
    w->ws[w->nws++] = c;
    atomic_store_explicit(&w->nws_seen, w->nws, memory_order_relaxed);
    c->state = CONN_WS;
    return conn_want(w, c);
}

/* Puts a job on a worker's queue and wakes its loop. */
static void post_job(struct worker *to, enum job_kind kind, struct pub *p, struct conn *c)
{
    struct job *j = xrealloc(NULL, sizeof *j);
    *j = (struct job){.kind = kind, .pub = p, .conn = c};
    pthread_mutex_lock(&to->lock);
    if (to->tail != NULL)
        to->tail->next = j;
    else
        to->head = j;
    to->tail = j;
    pthread_mutex_unlock(&to->lock);
    uint64_t one = 1;
    while (write(to->efd, &one, sizeof one) < 0) {
        if (errno != EINTR && errno != EAGAIN)
            fail("eventfd write");
        if (errno == EAGAIN)
            break; /* the counter is already non-zero: the loop will wake */
    }
}

/* Encodes the body as one text frame and hands it to every thread; -1 = close c. */
static int start_pub(struct worker *w, struct conn *c, const char *body, size_t len)
{
    struct pub *p = xrealloc(NULL, sizeof *p);
    unsigned char hdr[10];
    size_t h = 0;
    hdr[h++] = 0x81;
    if (len < 126) {
        hdr[h++] = (unsigned char)len;
    } else if (len < 65536) {
        hdr[h++] = 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    p->frame = xrealloc(NULL, h + len);
    memcpy(p->frame, hdr, h);
    memcpy(p->frame + h, body, len);
    p->len = h + len;
    atomic_init(&p->pending, nworkers);
    atomic_init(&p->delivered, 0);
    p->origin = w;
    p->client = sync_mode ? c : NULL;
    if (sync_mode)
        c->state = CONN_WAITING;
    for (int i = 0; i < nworkers; i++)
        post_job(&workers[i], JOB_FANOUT, p, NULL);
    if (sync_mode)
        return 0;
    size_t n = 0;
    for (int i = 0; i < nworkers; i++)
        n += atomic_load_explicit(&workers[i].nws_seen, memory_order_relaxed);
    char answer[64];
    snprintf(answer, sizeof answer, "{\"delivered\":%zu}", n);
    return http_reply(w, c, "200 OK", answer);
}

/* Drops the first n bytes of the input buffer. */
static void consume_in(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Handles one POST whose head is complete; 1 = wait for more, -1 = close. */
static int handle_post(struct worker *w, struct conn *c, size_t head_len, const char *path,
                       size_t path_len)
{
    size_t vlen;
    const char *v = header_value(c->in, head_len, "Content-Length", &vlen);
    if (v == NULL) {
        http_reply(w, c, "411 Length Required", "{\"error\":\"no content-length\"}");
        return -1;
    }
    char num[24];
    char *end;
    if (vlen == 0 || vlen >= sizeof num)
        goto bad;
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    errno = 0;
    unsigned long long cl = strtoull(num, &end, 10);
    if (*end != '\0' || errno != 0 || num[0] == '-')
        goto bad;
    if (cl > RAW_MAX_BODY) {
        http_reply(w, c, "413 Payload Too Large", "{\"error\":\"body too large\"}");
        return -1;
    }
    if (c->in_len < head_len + cl)
        return 1;
    if (path_len == 8 && memcmp(path, "/pub/all", 8) == 0) {
        int r = start_pub(w, c, c->in + head_len, (size_t)cl);
        consume_in(c, head_len + (size_t)cl);
        return r < 0 ? -1 : conn_want(w, c);
    }
    consume_in(c, head_len + (size_t)cl);
    return http_reply(w, c, "404 Not Found", "{\"error\":\"not found\"}");
bad:
    http_reply(w, c, "400 Bad Request", "{\"error\":\"bad content-length\"}");
    return -1;
}

/* Gives a publisher's connection to the publish thread; the caller must not
 * touch c again. */
static int hand_over(struct worker *w, struct conn *c)
{
    if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
        return -1;
    c->state = CONN_MOVING;
    post_job(&pub_thread, JOB_ADOPT, NULL, c);
    return 1;
}

/* Handles every complete request in the input buffer; -1 = close it, 1 = the
 * connection went to the publish thread. */
static int handle_http(struct worker *w, struct conn *c)
{
    while (c->state == CONN_HTTP && c->in_len > 0) {
        char *eoh = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (eoh == NULL) {
            if (c->in_len > RAW_MAX_HEAD) {
                http_reply(w, c, "431 Request Header Fields Too Large", "{}");
                return -1;
            }
            return 0;
        }
        size_t head_len = (size_t)(eoh - c->in) + 4;
        char *sp1 = memchr(c->in, ' ', head_len);
        char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - c->in)) : NULL;
        if (sp2 == NULL) {
            http_reply(w, c, "400 Bad Request", "{\"error\":\"bad request line\"}");
            return -1;
        }
        const char *path = sp1 + 1;
        size_t path_len = (size_t)(sp2 - path);
        size_t mlen = (size_t)(sp1 - c->in);
        if (mlen == 3 && memcmp(c->in, "GET", 3) == 0 && w != &pub_thread)
            return upgrade(w, c, c->in, head_len);
        if (mlen != 4 || memcmp(c->in, "POST", 4) != 0) {
            http_reply(w, c, "405 Method Not Allowed", "{\"error\":\"method\"}");
            return -1;
        }
        if (w != &pub_thread)
            return hand_over(w, c);
        int r = handle_post(w, c, head_len, path, path_len);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    return 0;
}

/* Reads what the socket has: requests while CONN_HTTP, dropped bytes once CONN_WS;
 * -1 = close it, 1 = handed to the publish thread. */
static int conn_read(struct worker *w, struct conn *c)
{
    for (;;) {
        char drop[4096];
        char *dst = drop;
        size_t room = sizeof drop;
        if (c->state == CONN_HTTP) {
            if (c->in_cap - c->in_len < 4096) {
                if (c->in_cap >= RAW_MAX_HEAD + RAW_MAX_BODY + 8192)
                    return -1;
                c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
                c->in = xrealloc(c->in, c->in_cap);
            }
            dst = c->in + c->in_len;
            room = c->in_cap - c->in_len;
        }
        ssize_t k = read(c->fd, dst, room);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k <= 0)
            return -1;
        if (c->state != CONN_HTTP)
            continue;
        c->in_len += (size_t)k;
        int r = handle_http(w, c);
        if (r != 0)
            return r; /* closed, or no longer ours */
        if (c->state != CONN_HTTP)
            break;
    }
    return 0;
}

/* Writes the frame to every upgraded connection of this thread; returns how many. */
static long fan_out(struct worker *w, const char *frame, size_t len)
{
    long n = 0;
    for (size_t i = w->nws; i-- > 0;) {
        struct conn *c = w->ws[i];
        if (conn_send(w, c, frame, len) < 0)
            conn_close(w, c); /* moves the last entry, already done, to i */
        else
            n++;
    }
    return n;
}

/* Answers the client of a finished publish and frees the publish. */
static void finish_pub(struct worker *w, struct pub *p)
{
    struct conn *c = p->client;
    char body[64];
    snprintf(body, sizeof body, "{\"delivered\":%ld}", atomic_load(&p->delivered));
    free(p->frame);
    free(p);
    if (c->dead) {
        c->next_free = w->graveyard; /* freed after this batch, like any closed conn */
        w->graveyard = c;
        return;
    }
    c->state = CONN_HTTP;
    if (http_reply(w, c, "200 OK", body) < 0 || conn_want(w, c) < 0 || handle_http(w, c) < 0)
        conn_close(w, c);
}

/* Writes the frames of the fan-out jobs from j on (one with --sync, else as many
 * as fit RAW_BATCH_BYTES) to every connection, one write(2) each; returns the
 * first job left. */
static struct job *run_fanouts(struct worker *w, struct job *j)
{
    int k = 0;
    size_t total = 0;
    struct job *x;
    for (x = j; x != NULL && x->kind == JOB_FANOUT; x = x->next, k++) {
        if (k > 0 && (sync_mode || total + x->pub->len > RAW_BATCH_BYTES))
            break;
        total += x->pub->len;
    }
    const char *frames = j->pub->frame;
    if (k > 1) {
        if (total > w->batch_cap) {
            w->batch_cap = total * 2;
            w->batch = xrealloc(w->batch, w->batch_cap);
        }
        size_t off = 0;
        for (x = j; off < total; x = x->next) {
            memcpy(w->batch + off, x->pub->frame, x->pub->len);
            off += x->pub->len;
        }
        frames = w->batch;
    }
    long n = fan_out(w, frames, total);
    while (k-- > 0) {
        struct pub *p = j->pub;
        struct job *next = j->next;
        atomic_fetch_add(&p->delivered, n);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            if (p->client != NULL) {
                post_job(p->origin, JOB_DONE, p, NULL);
            } else {
                free(p->frame);
                free(p);
            }
        }
        free(j);
        j = next;
    }
    return j;
}

/* Takes over a publisher's connection a worker handed over, with its request. */
static void adopt(struct worker *w, struct conn *c)
{
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    c->state = CONN_HTTP;
    c->events = EPOLLIN;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &e) < 0 || handle_http(w, c) < 0 ||
        conn_want(w, c) < 0)
        conn_close(w, c);
}

/* Runs the jobs other threads (or this one) posted. */
static void run_jobs(struct worker *w)
{
    uint64_t count;
    if (read(w->efd, &count, sizeof count) < 0 && errno != EAGAIN && errno != EINTR)
        fail("eventfd read");
    pthread_mutex_lock(&w->lock);
    struct job *j = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (j != NULL) {
        if (j->kind == JOB_FANOUT) {
            j = run_fanouts(w, j);
            continue;
        }
        struct job *next = j->next;
        if (j->kind == JOB_DONE)
            finish_pub(w, j->pub);
        else
            adopt(w, j->conn);
        free(j);
        j = next;
    }
}

/* Accepts every pending connection on this thread's listener. */
static void accept_all(struct worker *w)
{
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "rawsrv: accept: %s; pausing 10 ms\n", strerror(errno));
                usleep(10000);
                return;
            }
            fail("accept");
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            fail("TCP_NODELAY");
        struct conn *c = xrealloc(NULL, sizeof *c);
        *c = (struct conn){.fd = fd, .state = CONN_HTTP, .events = EPOLLIN};
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
            fail("epoll_ctl add");
    }
}

/* Dispatches one epoll event of a connection. */
static void conn_event(struct worker *w, struct conn *c, uint32_t ev)
{
    if (c->state == CONN_CLOSED)
        return;
    if ((ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN)) {
        conn_close(w, c);
        return;
    }
    if ((ev & EPOLLOUT) && conn_flush(w, c) < 0) {
        conn_close(w, c);
        return;
    }
    if ((ev & EPOLLIN) && (c->state == CONN_HTTP || c->state == CONN_WS) && conn_read(w, c) < 0)
        conn_close(w, c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[RAW_MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(w->epfd, evs, RAW_MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &listen_tag)
                accept_all(w);
            else if (ptr == &wake_tag)
                run_jobs(w);
            else
                conn_event(w, ptr, evs[i].events);
        }
        while (w->graveyard != NULL) {
            struct conn *c = w->graveyard;
            w->graveyard = c->next_free;
            conn_free(c);
        }
    }
    return NULL;
}

/* Creates a thread's epoll set, eventfd and queue lock (and nothing to accept). */
static void loop_init(struct worker *w, int id)
{
    *w = (struct worker){.id = id, .lfd = -1};
    atomic_init(&w->nws_seen, 0);
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        fail("pthread_mutex_init");
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->efd < 0)
        fail("epoll_create1/eventfd");
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &wake_tag};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ee) < 0)
        fail("epoll_ctl");
}

/* Creates a worker: its loop and its SO_REUSEPORT listener. */
static void worker_init(struct worker *w, int id, const struct sockaddr_in *addr)
{
    int one = 1;
    loop_init(w, id);
    w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->lfd < 0)
        fail("socket");
    if (setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        fail("setsockopt");
    if (bind(w->lfd, (const struct sockaddr *)addr, sizeof *addr) < 0)
        fail("bind");
    if (listen(w->lfd, 4096) < 0)
        fail("listen");
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &listen_tag};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &le) < 0)
        fail("epoll_ctl");
}

/* Parses "a.b.c.d:port". */
static int parse_listen(const char *s, struct sockaddr_in *addr)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: rawsrv --listen 127.0.0.1:PORT --threads W [--sync]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"sync", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_at = NULL;
    nworkers = 0;
    int o;
    while ((o = getopt_long(argc, argv, "l:t:s", opts, NULL)) != -1) {
        if (o == 'l')
            listen_at = optarg;
        else if (o == 't')
            nworkers = atoi(optarg);
        else if (o == 's')
            sync_mode = 1;
        else
            usage();
    }
    struct sockaddr_in addr;
    if (listen_at == NULL || optind != argc || nworkers < 1 || nworkers > RAW_MAX_THREADS ||
        parse_listen(listen_at, &addr) < 0)
        usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        fail("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        fail("setrlimit");
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        fail("signal");

    workers = xrealloc(NULL, (size_t)nworkers * sizeof *workers);
    for (int i = 0; i < nworkers; i++)
        worker_init(&workers[i], i, &addr);
    loop_init(&pub_thread, nworkers);
    errno = pthread_create(&pub_thread.thread, NULL, worker_main, &pub_thread);
    if (errno != 0)
        fail("pthread_create");
    for (int i = 0; i < nworkers; i++) {
        errno = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (errno != 0)
            fail("pthread_create");
    }
    fprintf(stderr, "rawsrv: ready on %s with %d threads + 1%s, file limit %llu\n", listen_at,
            nworkers, sync_mode ? " (--sync)" : "", (unsigned long long)rl.rlim_cur);
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    return 0;
}

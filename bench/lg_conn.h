/*
 * lg_conn.h -- the receiver's private header: one client connection's state,
 * struct lg_recv's fields, and what lg_recv.c and lg_conn.c call of each other.
 *
 * Owns:       the definitions of struct lg_conn and struct lg_recv (opaque
 *             to everyone but lg_recv.c and lg_conn.c).
 * Called by:  lg_recv.c (sockets, epoll, reads) and lg_conn.c (the bytes of
 *             an upgraded connection: the 101, frames, deliveries).
 * Invariants: the receiver thread only.
 * Errors:     functions that can end a connection return -1 once it ended;
 *             the connection must not be used after that but for its slot.
 */
#ifndef HERALD_LG_CONN_H
#define HERALD_LG_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_recv.h"
#include "lg_ws.h"

#define LG_MAX_MESSAGE (64u << 20) /* largest frame or reassembled message */

enum lg_conn_state {
    LG_CS_NONE,       /* not started */
    LG_CS_CONNECTING, /* TCP connect in progress */
    LG_CS_HANDSHAKE,  /* request sent, waiting for 101 */
    LG_CS_OPEN,       /* upgraded */
    LG_CS_DEAD,       /* ended; never reused */
};

/* Why a connection ended: which counter it bumps. */
enum lg_conn_end {
    LG_END_CONNECT,   /* connect_errors */
    LG_END_HANDSHAKE, /* handshake_errors */
    LG_END_CLOSE,     /* closes */
    LG_END_LOST,      /* disconnects */
    LG_END_PROTOCOL,  /* protocol_errors + disconnects */
    LG_END_SHUTDOWN,  /* ours, at the end of the run: no counter */
};

/* One client connection: 112 bytes while idle. */
struct lg_conn {
    int fd;            /* -1 when not open */
    uint8_t state;     /* enum lg_conn_state */
    uint8_t frag_op;   /* opcode of the message being reassembled, 0 if none */
    uint8_t want_out;  /* EPOLLOUT is registered */
    uint32_t received; /* deliveries */
    uint32_t inlen;    /* bytes in in */
    uint32_t incap;    /* capacity of in */
    uint32_t outlen;   /* bytes in out */
    uint8_t *in;       /* owned: unparsed bytes kept between reads, or NULL */
    uint8_t *out;      /* owned: bytes not yet sent, or NULL */
    uint8_t *frag;     /* owned: fragmented message so far, or NULL */
    size_t fraglen;
    uint8_t *bits;                     /* owned: broadcast seqs received, or NULL */
    uint64_t started;                  /* ns when the connect began */
    char accept[LG_WS_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept we expect */
};

/* The receiver (declared opaque in lg_recv.h). */
struct lg_recv {
    struct lg_recv_cfg cfg;
    int epfd;
    char host[64];         /* Host header */
    const char *path_tmpl; /* borrowed: the template from its path on */
    struct sockaddr_in dst;
    int need_token;        /* the template has {token} */
    uint32_t next;         /* next id to connect */
    uint32_t inflight;     /* connects and handshakes in progress */
    uint64_t last_sweep;   /* ns of the last handshake timeout sweep */
    uint64_t rng;          /* masking keys */
    struct lg_conn *conns; /* owned: cfg.conns slots */
    uint8_t *rbuf;         /* owned: LG_RBUF bytes */
    char first_error[256];
    struct lg_recv_stats st;
};

/* Keep the first failure's reason for the caller's stderr line. */
void lg_conn_note(struct lg_recv *r, uint32_t id, const char *what, const char *why);

/* End a connection: close the socket, free its buffers, count the reason. */
void lg_conn_end(struct lg_recv *r, struct lg_conn *c, enum lg_conn_end why);

/* Set the events epoll watches for c (op: EPOLL_CTL_ADD or _MOD). 0 or -1. */
int lg_conn_watch(struct lg_recv *r, struct lg_conn *c, int op, uint32_t events);

/* Send bytes, queueing what the socket does not take now. 0 or -1 (lost). */
int lg_conn_send(struct lg_recv *r, struct lg_conn *c, const void *data, size_t len);

/* Write queued bytes once the socket is writable. 0 or -1 (lost). */
int lg_conn_flush(struct lg_recv *r, struct lg_conn *c);

/*
 * Parse what arrived on c: the 101 answer while in handshake, then frames.
 * Returns the bytes used (the rest is an incomplete frame), or -1 when the
 * connection ended. May rewrite buf (unmasking).
 */
long lg_conn_consume(struct lg_recv *r, struct lg_conn *c, uint8_t *buf, size_t len, uint64_t now);

#endif

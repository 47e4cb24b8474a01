/*
 * conn.h -- one client connection: handshake, frame reading, out-queue.
 * Three files implement it: conn.c (the connection), conn_admit.c (the
 * handshake's policy: whether it may be) and conn_ctx.c (what a loop's
 * connections share).
 *
 * Owns:       struct conn, its socket, its handshake buffer (only while a
 *             partial head waits for the rest), the message being
 *             reassembled, and one msg reference per queued frame.
 * Called by:  worker.c (accept, publish, timers, flush, free), which embeds
 *             the struct conn_ctx its connections share; a conn reaches its
 *             owner (client.c) only through the ctx's conn_ops.
 * Invariants: only the owning loop's thread touches a conn. A conn is
 *             never freed inside its own callback: conn_kill marks it dead
 *             and puts it on the ctx's pending list; the worker frees it
 *             from its prepare watcher, after every callback has returned.
 *             An OPEN conn is in the registry and in ctx->open; leaving
 *             OPEN takes it out of both, so publishes only reach OPEN conns.
 */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <jansson.h>

#include "handshake.h"
#include "lim.h"
#include "reg.h"
#include "rpc.h"
#include "stats.h"
#include "sub.h"
#include "utf8.h"
#include "ws.h"

struct conn;
struct cmd_hub;
struct msg;
struct client;
struct cfg;
struct cfg_site;
struct stats;
struct http_request;
struct tok_claims;

enum conn_state {
    CONN_HANDSHAKE, /* reading the request head */
    CONN_OPEN,      /* upgraded: frames both ways */
    CONN_CLOSING,   /* close frame or refusal queued: flush, then shut down */
    CONN_DEAD,      /* waiting on the pending list to be freed */
};

/* Which timed list a conn is on (each is FIFO by deadline). */
enum conn_timer {
    CONN_TIMER_NONE,
    CONN_TIMER_HANDSHAKE,
    CONN_TIMER_CLOSING,
};

/*
 * What a connection hands its owner, the protocol spoken over it (client.c
 * in Herald, a test's functions in test_conn.c), on the worker's thread.
 * One table for every connection of a worker (worker_new); the owner keeps
 * its state in c->client, which conn.c never looks into.
 */
struct conn_ops {
    /* The verified token's payload, beyond sub and exp: 0, or -1 with *why (refused 401). */
    int (*on_claims)(struct conn *c, const json_t *payload, const char **why);
    /* After the 101; since is the client's ?since= decoded, NULL when it sent none. */
    void (*on_open)(struct conn *c, const char *since);
    /* One whole text message, valid UTF-8. */
    void (*on_message)(struct conn *c, const char *text, size_t len);
    /* The connection is leaving OPEN, still in the registry. */
    void (*on_close)(struct conn *c);
    /* The connection is being freed: free c->client (NULL, or never opened, is fine). */
    void (*on_free)(struct conn *c);
    /*
     * The engine may have lost messages of a stream c holds (kind 'u': its
     * user's; 'c': channel name): catch up from what c was sent, which was
     * of epoch (engine.h eng_item.epoch; "": the stream's current one).
     */
    void (*on_gap)(struct conn *c, char kind, const char *name, const char *epoch);
};

/* One queued frame: a reference to a msg, shared or the conn's own. */
struct conn_out {
    struct conn_out *next; /* owned by the queue */
    struct msg *msg;       /* ref */
    uint32_t extra;        /* what it costs beyond msg->len (conn.c, conn_extra) */
};

/* What a worker keeps per site for its connections: users, channels, counters. */
struct conn_ctx_site {
    struct reg reg;        /* the site's users with a connection here */
    struct sub_table subs; /* the site's channel subscriptions here */
    struct stats stats;    /* counters of the site's connections here */
};

/* A FIFO of conns with deadlines, linked through conn->tnext/tprev. */
struct conn_list {
    struct conn *head; /* borrowed: earliest deadline */
    struct conn *tail; /* borrowed */
};

/*
 * What the connections of one loop share, and all a connection knows of
 * the thread it lives on (worker.c embeds it): the loop, the settings, the
 * tables, the lists a connection moves between, and the recycled buffers.
 */
struct conn_ctx {
    int id;                      /* the worker's: its bit in the directory's masks */
    struct ev_loop *loop;        /* borrowed */
    const struct cfg *cfg;       /* borrowed: the config snapshot */
    struct cmd_hub *hub;         /* borrowed: queues, sites, the engine, limits */
    const struct conn_ops *ops;  /* borrowed: what its connections tell their owner */
    struct conn_ctx_site *sites; /* owned: one per hub site, same index */
    int nsites;
    struct rpc_ctx rpc; /* PHP calls in flight (rpc.c), charged to sites[i].stats */
    struct stats stats; /* what no site owns: accept errors, and with several
                           sites the handshakes refused before one was known */
    struct conn **open; /* owned array; conns borrowed */
    size_t nopen;
    size_t capopen;
    size_t nconns; /* conns in any state */
    struct conn_list handshaking;
    struct conn_list closing;
    struct conn *pending;      /* borrowed: conns to flush or free */
    struct conn_out *out_free; /* owned: recycled out-queue entries */
    size_t nout_free;
    uint8_t *rbuf; /* owned: shared read buffer */
    size_t rbuf_size;
    ev_tstamp refused_logged;    /* when a flood of refusals was last logged */
    unsigned long refused_quiet; /* refusals not logged since then */
    uint64_t next_conn_id;       /* worker id << 48, then a counter */
};

struct conn {
    ev_io io;           /* read, plus write while the queue is blocked */
    struct conn_ctx *x; /* borrowed: its loop's shared state */
    struct conn *tnext; /* borrowed: next on the timed list */
    struct conn *tprev; /* borrowed */
    struct conn *pnext; /* borrowed: next on the pending list */
    ev_tstamp deadline; /* for the timed list */
    uint64_t id;
    int fd;
    int site;                  /* index of its site (cfg->sites, hub->sites); -1 while
                                  several sites could still answer its handshake */
    uint32_t slot;             /* index in w->open while OPEN */
    uint8_t state;             /* enum conn_state */
    uint8_t timer;             /* enum conn_timer */
    unsigned in_pending : 1;   /* on w->pending */
    unsigned want_write : 1;   /* io watches EV_WRITE */
    unsigned close_queued : 1; /* shut down writing once the queue drains */
    unsigned write_shut : 1;
    unsigned got_rx : 1;        /* bytes arrived since the last ping round */
    unsigned ping_out : 1;      /* a ping round is unanswered */
    unsigned in_frame : 1;      /* reading a payload */
    unsigned mtext : 1;         /* the message being read is TEXT */
    unsigned overflow : 1;      /* over max_queued_bytes: close 1008 before the next poll */
    unsigned total_counted : 1; /* counted by lim_total_take until it leaves OPEN */
    unsigned addr_checked : 1;  /* checked against its address (at accept, or the upgrade) */
    unsigned addr_counted : 1;  /* counted by lim_addr_enter under addr until freed */
    uint8_t hdr_len;            /* bytes of a split frame header in hdr */
    uint8_t hdr[WS_MAX_CLIENT_HEADER];
    uint8_t ctrl_len;
    char *head; /* owned: a partial request head, or NULL */
    uint32_t head_len;
    uint32_t head_cap;
    struct ws_frame frame; /* the frame being read */
    uint64_t frame_left;   /* payload bytes still to come */
    uint64_t frame_off;    /* payload bytes read (mask offset) */
    struct ws_seq seq;
    struct utf8_state utf8; /* of the text message being read */
    uint8_t *ctrl;          /* owned: control payload (125 bytes), while reading one */
    uint8_t *mbuf;          /* owned: data message being reassembled */
    uint64_t mlen;
    uint64_t mcap;
    struct conn_out *out_head; /* owned */
    struct conn_out *out_tail; /* borrowed */
    struct conn_out *pong;     /* borrowed: the queued pong not yet started, or NULL */
    uint32_t out_off;          /* bytes of out_head already written */
    uint64_t out_bytes;        /* what the queue costs: unsent bytes plus each entry's extra */
    struct reg_link link;      /* registry entry, when a user is known */
    struct client *client;     /* owned by the ops (conn_ops): protocol state, or NULL */
    uint64_t user_last;        /* newest offset of the user's stream sent (hist.h) */
    uint64_t user_skipped;     /* while user_replaying: the newest live offset held back */
    int user_replaying;        /* a replay of the user's stream is on its way */
    char *addr;                /* owned: the client address counted by lim.h, or NULL */
};

/*
 * Take over an accepted socket and start reading its handshake, or close
 * it at once, unread, counted in /stats handshakes_refused: when WebSockets
 * would pass their share of the file limit (too_many_connections), or when
 * a peer that is not a trusted proxy is over max_connections_per_ip or
 * connect_rate (too_many_from_address, too_fast).
 */
void conn_accept(struct conn_ctx *x, int fd);

/*
 * Queue a shared frame (takes a new reference); the worker flushes before
 * polling. Returns 1, or 0 when the conn is over max_queued_bytes: then its
 * backlog is dropped and it is closed with 1008 from the prepare watcher,
 * not here, so publish loops over the registry are never disturbed. What a
 * frame costs against max_queued_bytes is its length and its queue entry.
 */
int conn_send(struct conn *c, struct msg *m);

/*
 * Queue a frame made for c alone (an answer, a close frame), taking over
 * the caller's reference: as conn_send, but it also costs its allocation.
 */
int conn_send_own(struct conn *c, struct msg *m);

/* Run deferred work (the 1008 close of an overflowed conn), then flush. */
void conn_service(struct conn *c);

/* Write what is queued; on a full socket, wait for EV_WRITE. */
void conn_flush(struct conn *c);

/* Start a close handshake with this code (OPEN), or drop the conn otherwise. */
void conn_close(struct conn *c, int code);

/* Give up on the conn now: unregister it and put it on the pending list. */
void conn_kill(struct conn *c);

/* A timed list deadline passed (handshake timeout or closing linger). */
void conn_expire(struct conn *c);

/* Free a dead conn: stop its watcher, close its socket, drop its queue. */
void conn_free(struct conn *c);

/* The connection that embeds this registry link. */
struct conn *conn_from_link(struct reg_link *l);

/* The settings of c's site (c->site must be set; the process's are c->x->cfg). */
const struct cfg_site *conn_cfg(const struct conn *c);

/* What c's worker keeps of c's site (c->site must be set). */
struct conn_ctx_site *conn_site(const struct conn *c);

/* The counters c's events go to: its site's, or the worker's before it has one. */
struct stats *conn_stats(const struct conn *c);

/*
 * Ready x for worker id's connections on loop (borrowed, as are cfg, hub,
 * ops): its read buffer, per site a registry, subscriptions and counters,
 * and an RPC context whose calls end in rpc_done.
 */
void conn_ctx_init(struct conn_ctx *x, int id, struct ev_loop *loop, const struct cfg *cfg,
                   struct cmd_hub *hub, const struct conn_ops *ops, rpc_done_fn *rpc_done);

/* Use a new config snapshot (a reload): the connections and their RPC calls both see it. */
void conn_ctx_use_cfg(struct conn_ctx *x, const struct cfg *cfg);

/* Free what x owns, RPC calls still in flight included; every conn must be gone. */
void conn_ctx_free(struct conn_ctx *x);

/* Timed lists: append with a deadline, or remove. */
void conn_ctx_timer_add(struct conn_ctx *x, struct conn *c, int which, ev_tstamp deadline);
void conn_ctx_timer_remove(struct conn_ctx *x, struct conn *c);

/* The open array: add an upgraded conn, remove one leaving OPEN. */
void conn_ctx_open_add(struct conn_ctx *x, struct conn *c);
void conn_ctx_open_remove(struct conn_ctx *x, struct conn *c);

/* Put a conn on the pending list (flush or free before the next poll). */
void conn_ctx_pending_add(struct conn_ctx *x, struct conn *c);

/* Out-queue entries, recycled per loop: no malloc per delivery. */
struct conn_out *conn_ctx_out_get(struct conn_ctx *x);
void conn_ctx_out_put(struct conn_ctx *x, struct conn_out *o);

/* -- conn_admit.c: whether a connection may be ------------------------------ */

/*
 * Check a new socket against the descriptor budget and, for a peer that is
 * not a trusted proxy, against its address's limits (a proxy's clients are
 * checked at the upgrade, by X-Forwarded-For). Returns 0 with *counted set
 * when addr was counted, or -1 when the socket was refused, counted, logged
 * and closed.
 */
int conn_admit_socket(struct conn_ctx *x, int fd, char addr[LIM_ADDR_MAX], int *counted);

/*
 * The handshake's policy for c's complete head req: pick the site (setting
 * c->site), check the client's address, verify the token, count the
 * connection. Returns HS_OK with *res and *claims filled, or the reason to
 * refuse with (logged; the caller counts and answers it).
 */
enum hs_reason conn_admit(struct conn *c, const struct http_request *req, struct hs_result *res,
                          struct tok_claims *claims);

#endif

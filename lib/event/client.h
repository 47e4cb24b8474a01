/*
 * client.h -- what a connected browser may ask of Herald: subscribe,
 * unsubscribe, publish into a channel, and call PHP (docs/protocol.md).
 *
 * Owns:       struct client, a connection's protocol state, allocated
 *             only for connections that need it (a token with claims,
 *             a first command), so an idle connection pays one pointer.
 * Called by:  conn.c through client_conn_ops, which main.c hands the
 *             workers (claims at the handshake, each text message, the
 *             connection opening, leaving and freed); rpc.c (a call's result),
 *             worker.c (a channel delivery's skip check), on the owning
 *             worker's thread only.
 * Invariants: authorization is decided here and only here; answers go
 *             back on the same connection, in the order commands arrived
 *             except for those that wait for PHP.
 */
#ifndef HERALD_CLIENT_H
#define HERALD_CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct conn;
struct conn_ops;
struct sub;
struct rpc_call;
struct rpc_result;

#define CLIENT_MAX_INFO 1024 /* bytes of the info claim, encoded */

struct client_wait;

struct client {
    char **channels; /* owned: the token's channels claim (patterns) */
    size_t nchannels;
    char *info;       /* owned: the token's info claim as JSON text, or NULL */
    struct sub *subs; /* owned through sub.c: this connection's subscriptions */
    size_t nsubs;
    struct rpc_call *calls; /* borrowed: calls in flight for this connection */
    unsigned ncalls;
    struct client_wait *waits; /* owned: engine answers this connection waits for */
    double tokens;             /* command_rate bucket: commands allowed now */
    double refilled;           /* loop time of the last refill; 0 = never */
};

/* The browser protocol as a connection's owner: the functions below, for worker_new. */
extern const struct conn_ops client_conn_ops;

/*
 * Keep what the verified token grants beyond the user id (channels, info).
 * Returns 0, or -1 with *why set when those claims are malformed.
 */
int client_claims(struct conn *c, const json_t *payload, const char **why);

/*
 * The connection is open (after the 101): replay the user's stream after
 * since (NULL: the client did not ask), then the connect hook.
 */
void client_opened(struct conn *c, const char *since);

/* One complete, valid UTF-8 text message from the browser. */
void client_message(struct conn *c, const char *text, size_t len);

/* The connection is leaving OPEN: unsubscribe everything, detach calls, the disconnect hook. */
void client_closed(struct conn *c);

/* Free the state (after client_closed, or for a connection that never opened). */
void client_free(struct client *cl);

/* A call to PHP ended (rpc.c); the call is freed when this returns. */
void client_rpc_done(struct rpc_call *call, const struct rpc_result *res);

/*
 * eng_event_fn (main.c hands it to the engine, with the hub as arg): a
 * presence join or leave, published unnumbered to the channel's subscribers.
 */
void client_presence_event(void *hub, int site, int join, const char *channel, const char *user,
                           const char *info);

#endif

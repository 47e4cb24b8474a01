/*
 * rlink.h -- one link to a Redis server on a libev loop: connect (and AUTH,
 * SELECT) in the background, run commands with a deadline each, notice a
 * dead or hung server, and reconnect with backoff. The Redis engine (issue
 * #13) talks to Redis through it.
 *
 * Owns:       struct rlink, its hiredis context, and each command in flight
 *             until its answer has been handed on.
 * Called by:  the thread that runs its loop, only.
 * Invariants: every command gets exactly one answer through its callback:
 *             Redis's reply, or RLINK_E_TIMEOUT when no reply came within
 *             the deadline, or RLINK_E_DOWN when the connection went away
 *             first. hiredis 0.14 has no timeouts of its own in async mode,
 *             so the deadlines are this module's: replies come in the order
 *             commands were sent, so the oldest command's deadline is the
 *             only one that needs a timer. Its deadline is timeout after
 *             it was sent or after the server's last reply, whichever is
 *             later: a server working through a burst is not dead. A
 *             command that times out takes
 *             the connection with it (a server that does not answer one
 *             command answers none after it); the link reconnects, waiting
 *             backoff_min, doubled after each failure up to backoff_max.
 *             While the link is down, rlink_command refuses at once.
 * Tests:      tests/unit/test_rlink.c, against a real redis-server.
 */
#ifndef HERALD_RLINK_H
#define HERALD_RLINK_H

#include <ev.h>
#include <hiredis/hiredis.h>

#include "histo.h"

enum rlink_err {
    RLINK_OK = 0,
    RLINK_E_DOWN = -1,    /* not connected, or the connection went away before the reply */
    RLINK_E_TIMEOUT = -2, /* no reply within the deadline: the connection is dropped */
    RLINK_E_REPLY = -3,   /* Redis answered with an error reply */
};

/* Where and how to reach Redis. The strings are copied. */
struct rlink_cfg {
    const char *address;  /* "HOST:PORT" or "unix:PATH" */
    const char *password; /* AUTH with it, or NULL */
    int db;               /* SELECT it when not 0 */
    double timeout;       /* seconds a command may take */
    double backoff_min;   /* seconds before the first reconnect */
    double backoff_max;   /* the longest wait between reconnects */
    /* Or, instead of address: ask these Sentinels ("IP:PORT") where master is, on each connect. */
    char *const *sentinels;
    size_t nsentinels;
    const char *master;
};

struct rlink;

/*
 * What links count for /metrics (rlink_set_stats): written on the links'
 * loop thread, read by any thread, so atomic. Several links may share one.
 */
struct rlink_stats {
    atomic_uint_fast64_t errors;     /* commands answered with an error: down, timeout, refused */
    atomic_uint_fast64_t reconnects; /* the link came up again after having been up */
    struct histo_shared rtt;         /* a command sent -> its reply read */
};

/*
 * A command's answer: err and, for RLINK_OK and RLINK_E_REPLY, the reply
 * (hiredis's, valid during the call only; NULL otherwise).
 */
typedef void rlink_reply_fn(void *arg, int err, const redisReply *reply);

/* The link came up (1: connected, authenticated, database selected) or went down (0). */
typedef void rlink_state_fn(void *arg, int up);

/*
 * A link on loop, connecting at once in the background. on_state (may be
 * NULL) is told each change. Returns NULL, logged, when address is
 * malformed.
 */
struct rlink *rlink_new(struct ev_loop *loop, const struct rlink_cfg *cfg, rlink_state_fn *on_state,
                        void *arg);

/* What a subscriber link pushes. */
enum rlink_push {
    RLINK_PUSH_MESSAGE,      /* a message published on a channel it subscribed to */
    RLINK_PUSH_SUBSCRIBED,   /* a SUBSCRIBE took effect */
    RLINK_PUSH_UNSUBSCRIBED, /* an UNSUBSCRIBE took effect */
};

/* A push: its channel, and for a message its payload (all valid during the call only). */
typedef void rlink_push_fn(void *arg, int type, const char *channel, size_t clen, const char *data,
                           size_t dlen);

/*
 * Make l a subscriber link: pushes go to fn. Every array it reads must
 * then be a push of the expected shape, or the connection is dropped. A
 * reconnect loses every subscription: the owner subscribes again when
 * on_state says the link is up.
 */
void rlink_set_push(struct rlink *l, rlink_push_fn *fn, void *arg);

/* SUBSCRIBE (or UNSUBSCRIBE) channel; its push says when it took effect. RLINK_E_DOWN at once. */
int rlink_subscribe(struct rlink *l, const char *channel);
int rlink_unsubscribe(struct rlink *l, const char *channel);

/*
 * Drop the connection and reconnect after the backoff, as for a timeout:
 * for an owner that found the link dead by its own probe (a subscriber
 * link has no command to time).
 */
void rlink_reset(struct rlink *l);

/* Count l's errors, reconnects and round trips in st (borrowed; it must outlive l). */
void rlink_set_stats(struct rlink *l, struct rlink_stats *st);

/* Is the link up now? */
int rlink_up(const struct rlink *l);

/*
 * Send a command (hiredis's format: "SET %s %b", ...). Returns RLINK_OK, and
 * done(arg, ...) is called once, later; or RLINK_E_DOWN at once, and done
 * is never called.
 */
int rlink_command(struct rlink *l, rlink_reply_fn *done, void *arg, const char *fmt, ...);

/* rlink_command with an argument vector (binary-safe, any count). */
int rlink_command_argv(struct rlink *l, rlink_reply_fn *done, void *arg, int argc,
                       const char **argv, const size_t *argvlen);

/*
 * A Lua script, sent by its SHA1 digest (EVALSHA): static text, and the
 * digest rlink fills the first time any link sends it ({text, ""}).
 */
struct rlink_script {
    const char *text;
    char sha[41];
};

/*
 * EVALSHA s with the arguments argv (numkeys, keys, args), as
 * rlink_command_argv. The first time s goes on a connection, a SCRIPT LOAD
 * goes ahead of it, so Redis never needs the text again (nor evicts it).
 * Redis not knowing it anyway (a SCRIPT FLUSH) is answered RLINK_E_REPLY
 * and drops the connection, so no later command overtakes it; the next
 * connection loads the scripts again.
 */
int rlink_eval(struct rlink *l, rlink_reply_fn *done, void *arg, struct rlink_script *s, int argc,
               const char **argv, const size_t *argvlen);

/* rlink_eval with hiredis's format for the arguments ("2 %s %s %d", ...). */
int rlink_evalf(struct rlink *l, rlink_reply_fn *done, void *arg, struct rlink_script *s,
                const char *fmt, ...);

/*
 * Close the link; every command still in flight is answered RLINK_E_DOWN
 * first. Not from inside one of its own callbacks.
 */
void rlink_free(struct rlink *l);

struct rlink_budget;

/*
 * A reply reader with the link's bounded reply objects (at most
 * RREPLY_MAX_ELEMENTS elements in one reply, rreply.h), for the fuzz target; free it
 * with redisReaderFree, and *budget (malloc'd) with free.
 */
redisReader *rlink_reader_new(struct rlink_budget **budget);

#endif

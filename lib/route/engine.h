/*
 * engine.h -- the engine: everything that would cross a process boundary
 * if several Herald nodes shared their traffic. Publishing (numbering,
 * keeping and handing out a message), reading history back, presence, and
 * which users and channels are held where, all go through this table of
 * operations. memory (engine_memory.c) is the first implementation and the
 * default: one process's tables. A network engine (Redis) implements the
 * same table against this header alone.
 *
 * Owns:       the interface and its types; an engine owns its own state.
 * Called by:  lib/api/routes.c on API threads, client.c and conn.c on
 *             worker threads, main.c (creates it before any thread starts
 *             and frees it after every thread has ended).
 * Invariants: every operation may be called on any thread, at once on
 *             several. Nothing here blocks on the network: an operation
 *             with an answer takes a done callback, which runs exactly once,
 *             either before the operation returns (memory always does) or
 *             later: for a call from a worker, on that worker's loop (an
 *             engine keeps what it needs per loop), so the callback may
 *             touch the worker's connections; for a call from a thread
 *             without a loop (an API thread, which then waits), on any
 *             thread. A caller therefore keeps what arg points at alive
 *             until done has run, and never holds a lock across a call
 *             that done would take.
 *
 * What reaches the workers reaches them through the deliver callback the
 * engine was made with (main.c hands it cmd_deliver): the engine knows
 * the local workers only as bits of a dir_mask, and a job only as a
 * pointer it passes on. A presence event reaches the subscribers through
 * the event callback, which publishes it (unnumbered) through the engine.
 *
 * Errors: ENG_OK (0) or a negative enum eng_err. An error means the
 * operation did nothing: no message numbered or handed out, no member
 * added. memory never fails; a network engine answers ENG_E_UNAVAILABLE
 * while it cannot reach its server, and the caller refuses at once (the
 * API with 503) rather than accept and drop.
 */
#ifndef HERALD_ENGINE_H
#define HERALD_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "dir.h"
#include "hist.h"
#include "msg.h"

struct rlink_stats;

#define ENG_ID_MAX HIST_ID_MAX /* a message id, "<epoch>:<offset>", with its NUL */
#define ENG_EPOCH_MAX 10       /* an id's epoch (8 hex digits), with its NUL */

enum eng_err {
    ENG_OK = 0,
    ENG_E_UNAVAILABLE = -1, /* the engine cannot reach its store now: nothing was done */
};

/* A stream: a user's ('u') or a channel's ('c') messages in one site. */
struct eng_stream {
    int site;         /* index of the site (cfg->sites) */
    char kind;        /* 'u' or 'c' */
    const char *name; /* borrowed: NUL-terminated user id or channel name */
};

/*
 * One message of a publish and its targets (broadcast, users or a channel).
 * Numbered, a message to users gets a frame per user instead of msg, each
 * with that user's id, made only for users online when it was routed.
 */
struct eng_item {
    struct msg *msg; /* ref, owned by the item; NULL when frames is used */
    int broadcast;   /* every open connection */
    char **users;    /* owned: NUL-terminated ids, deduplicated */
    size_t nusers;
    struct msg **frames; /* owned, or NULL: users[u]'s numbered frame (a ref), or NULL */
    uint64_t *offsets;   /* owned, with frames: users[u]'s stream offset */
    char *channel;       /* owned: every subscriber of this channel, or NULL */
    uint64_t skip_conn;  /* with channel: this connection id is left out; 0 = none */
    uint64_t offset;     /* channel: the stream offset in msg's id (hist.h); 0 = none */
    size_t group;        /* the caller's count for it: the API message it came from */
    uint64_t reached;    /* set by a network engine: the nodes it reached (Redis: subscribers) */
    int catch_up;        /* no message: the stream (channel, or users[0]) may have a gap here:
                            each holder reads what it missed since what it was sent */
    char epoch[16];      /* catch_up: the epoch of what holders were sent, when it is no longer
                            the stream's (they ask from it); "": the stream's own */
};

/* Release what an item owns (not the item itself): its message refs and strings. */
static inline void eng_item_clear(struct eng_item *it)
{
    msg_unref(it->msg);
    for (size_t u = 0; u < it->nusers; u++) {
        free(it->users[u]);
        if (it->frames != NULL)
            msg_unref(it->frames[u]);
    }
    free(it->frames);
    free(it->offsets);
    free(it->users);
    free(it->channel);
}

/*
 * A publish. With texts, item i has its targets and its envelope in
 * texts[i] (JSON text, malloc'd); the engine makes the frames, numbering
 * and keeping each message when it keeps history, and may take a text
 * over (texts[i] becomes NULL); the caller frees what is left. Without
 * texts, every item has its msg already and is handed out unnumbered
 * (presence events).
 */
struct eng_pub {
    int site;
    struct eng_item *items; /* borrowed: the job's items, filled in by the engine */
    size_t nitems;
    char **texts; /* borrowed, or NULL */
    void *job;    /* opaque: handed to deliver as it is */
    int detached; /* handed to deliver: nobody waits for the workers */
};

/* What a client that asked for since has missed in one stream. */
struct eng_since {
    int ok;                  /* 1: recoverable, items are every message missed */
    struct hist_item *items; /* oldest first; valid during done only (take a ref to keep one) */
    size_t n;
    uint64_t last;       /* the stream's position: its newest offset */
    char id[ENG_ID_MAX]; /* last's id */
    /* The epoch of id took over from prev ("" for none) after offset start: items up to
     * start are prev's, with prev's ids (redis: numbering goes on after a new server). */
    char prev[ENG_EPOCH_MAX];
    uint64_t start;
};

/* Where a user is online: this node's workers, and connections elsewhere. */
struct eng_online {
    struct dir_mask local; /* the workers here holding the user */
    uint64_t remote;       /* connections on other nodes (memory: 0) */
};

/* One site's figures for /stats. */
struct eng_counts {
    size_t users;    /* users with an open connection */
    size_t channels; /* channels with a subscriber */
    struct hist_stats history;
};

/* Hand job to the workers in mask (none: it is done at once); see cmd_deliver. */
typedef void eng_deliver_fn(void *arg, void *job, const struct dir_mask *mask, int detached);
/* Run fn(fnarg) on worker's loop, later: a network engine's answers to a worker; see cmd_post. */
typedef void eng_post_fn(void *arg, int worker, void (*fn)(void *), void *fnarg);
/*
 * Hand items the engine made (taken over: an array of nitems, each with
 * its msg or frames) for site to the workers in mask, nobody waiting: a
 * message another node published; see cmd_hand.
 */
typedef void eng_hand_fn(void *arg, int site, struct eng_item *items, size_t nitems,
                         const struct dir_mask *mask);
/* A user became (join) or stopped being a member of a presence channel. */
typedef void eng_event_fn(void *arg, int site, int join, const char *channel, const char *user,
                          const char *info);
typedef void eng_done_fn(void *arg, int err);
typedef void eng_since_fn(void *arg, int err, const struct eng_since *r);
/* members is a new reference, the callback's (NULL on error). */
typedef void eng_members_fn(void *arg, int err, json_t *members);
typedef void eng_online_fn(void *arg, int err, const struct eng_online *r);
typedef void eng_counts_fn(void *arg, int err, const struct eng_counts *r);

struct engine;

struct eng_ops {
    const char *name;

    /*
     * Number, keep and hand out p (struct eng_pub), then call done(arg, err).
     * Ordering: the messages of one stream reach every worker in the order
     * of their offsets, across publishers on every thread. Atomicity: a
     * message is numbered, kept and handed out as one step; a connection
     * that holds its stream (hold) before that step gets it, one that
     * replays (since) after it finds it in history and not twice. On
     * ENG_OK p->job went to deliver (with detached as given); on an error
     * it did not, and it is still the caller's.
     */
    void (*publish)(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg);

    /*
     * Worker `worker` now holds (held = 1) or no longer holds (0) a
     * connection of this user or a subscriber of this channel. Called by
     * the worker itself: held after its own tables have the connection,
     * released before they drop it, so a publish never misses a
     * connection that was open for the whole of its routing.
     */
    void (*hold)(struct engine *e, const struct eng_stream *s, int worker, int held);

    /*
     * What a client that has seen up to since (an id, or "" for nothing)
     * missed in s. Makes no stream. done's r->ok is 0 when some of it may
     * be gone (older than history keeps, or of another epoch): never a
     * partial answer passed off as whole. With ok 0, r->items may still
     * hold every message of the stream's current epoch (a network engine
     * whose store lost the older ones): the client is told it lost some,
     * and gets those.
     */
    void (*since)(struct engine *e, const struct eng_stream *s, const char *since,
                  eng_since_fn *done, void *arg);

    /* Write offset's id in s into id (ENG_ID_MAX bytes). Answers at once. */
    void (*id)(struct engine *e, const struct eng_stream *s, uint64_t offset, char *id);

    /*
     * One more connection of user in presence channel ch; info is the
     * user's JSON object text or NULL, kept with the user's first. On a
     * user's first connection (across every worker and node), the engine
     * calls its event callback with join = 1, once. done gets the member
     * list as it was right after this join, consistent with the events
     * that follow it.
     */
    void (*join)(struct engine *e, const struct eng_stream *ch, const char *user, const char *info,
                 eng_members_fn *done, void *arg);

    /* One connection less; on the user's last, the event callback with join = 0, once. */
    void (*leave)(struct engine *e, const struct eng_stream *ch, const char *user);

    /* The members of ch: [{"user","info"}], with "connections" too when counts is set. */
    void (*members)(struct engine *e, const struct eng_stream *ch, int counts, eng_members_fn *done,
                    void *arg);

    /* Where user (of site) has connections. */
    void (*online)(struct engine *e, int site, const char *user, eng_online_fn *done, void *arg);

    /* The site's users, channels and history figures. */
    void (*counts)(struct engine *e, int site, eng_counts_fn *done, void *arg);

    /*
     * Optional. One connection of user (of site) more (delta 1) or less
     * (-1) on this node: for online counts across nodes. Called by the
     * worker after its hold when the connection opens, before its release
     * when it closes.
     */
    void (*count)(struct engine *e, int site, const char *user, int delta);

    /*
     * Optional. Worker `worker`'s thread says so, once, before its loop
     * runs: the engine's late answers to calls from this thread go to this
     * worker's loop (through post).
     */
    void (*bind)(struct engine *e, int worker);

    /*
     * Optional. Stop the engine's own threads, once the workers' loops have
     * ended and before they are freed: from then on every call answers at
     * once (ENG_E_UNAVAILABLE) and nothing more is posted to a worker.
     */
    void (*stop)(struct engine *e);

    /* Free the engine, once no thread calls it; a call still unanswered gets ENG_E_UNAVAILABLE. */
    void (*free)(struct engine *e);
};

struct engine {
    const struct eng_ops *ops;
    int history;               /* numbers and keeps messages (history_size > 0) */
    eng_deliver_fn *deliver;   /* borrowed: from main.c */
    eng_event_fn *event;       /* borrowed: from main.c */
    eng_post_fn *post;         /* borrowed: from main.c; used by network engines */
    eng_hand_fn *hand;         /* borrowed: from main.c; used by network engines */
    void *arg;                 /* borrowed: for deliver, event, post and hand */
    struct rlink_stats *links; /* the engine's own: its Redis links' counters, or NULL */
};

/* The calls, by the table. */
static inline void eng_publish(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg)
{
    e->ops->publish(e, p, done, arg);
}

static inline void eng_hold(struct engine *e, const struct eng_stream *s, int worker, int held)
{
    e->ops->hold(e, s, worker, held);
}

static inline void eng_since(struct engine *e, const struct eng_stream *s, const char *since,
                             eng_since_fn *done, void *arg)
{
    e->ops->since(e, s, since, done, arg);
}

static inline void eng_id(struct engine *e, const struct eng_stream *s, uint64_t offset, char *id)
{
    e->ops->id(e, s, offset, id);
}

static inline void eng_join(struct engine *e, const struct eng_stream *ch, const char *user,
                            const char *info, eng_members_fn *done, void *arg)
{
    e->ops->join(e, ch, user, info, done, arg);
}

static inline void eng_leave(struct engine *e, const struct eng_stream *ch, const char *user)
{
    e->ops->leave(e, ch, user);
}

static inline void eng_members(struct engine *e, const struct eng_stream *ch, int counts,
                               eng_members_fn *done, void *arg)
{
    e->ops->members(e, ch, counts, done, arg);
}

static inline void eng_online(struct engine *e, int site, const char *user, eng_online_fn *done,
                              void *arg)
{
    e->ops->online(e, site, user, done, arg);
}

static inline void eng_counts(struct engine *e, int site, eng_counts_fn *done, void *arg)
{
    e->ops->counts(e, site, done, arg);
}

static inline void eng_count(struct engine *e, int site, const char *user, int delta)
{
    if (e->ops->count != NULL)
        e->ops->count(e, site, user, delta);
}

static inline void eng_bind(struct engine *e, int worker)
{
    if (e->ops->bind != NULL)
        e->ops->bind(e, worker);
}

static inline void eng_stop(struct engine *e)
{
    if (e != NULL && e->ops->stop != NULL)
        e->ops->stop(e);
}

static inline void eng_free(struct engine *e)
{
    if (e != NULL)
        e->ops->free(e);
}

/* -- engine_memory.c: one process's tables ------------------------------- */

/*
 * The memory engine for nsites sites (names[i] is site i's) and nworkers
 * workers, keeping history in hist (borrowed: main.c loads, sweeps and
 * saves it). deliver, event and arg are as in struct engine.
 */
struct engine *eng_memory_new(struct hist *hist, int nsites, const char *const *names, int nworkers,
                              eng_deliver_fn *deliver, eng_event_fn *event, void *arg);

/* -- engine_redis.c: several nodes sharing one Redis --------------------- */

/* What the Redis engine needs to know (strings copied). */
struct eng_redis_cfg {
    const char *address;    /* "HOST:PORT" or "unix:PATH" */
    char *const *sentinels; /* or, instead of address, Sentinels to ask ("IP:PORT") */
    size_t nsentinels;
    const char *master;   /* the name they watch the master under */
    const char *password; /* or NULL */
    int db;
    const char *prefix; /* every key and channel starts with it */
    const char *node;   /* this node's name, unique in the cluster */
    double timeout;     /* a command's deadline, seconds */
    int history_size;   /* messages kept per stream; 0 = none */
    int history_ttl;    /* seconds */
};

/*
 * The Redis engine for nsites sites (names[i] is site i's) and nworkers
 * workers; it runs a thread of its own. NULL, logged, when the address is
 * malformed. deliver, event, post, hand and arg are as in struct engine.
 */
struct engine *eng_redis_new(const struct eng_redis_cfg *cfg, int nsites, const char *const *names,
                             int nworkers, eng_deliver_fn *deliver, eng_event_fn *event,
                             eng_post_fn *post, eng_hand_fn *hand, void *arg);

#endif

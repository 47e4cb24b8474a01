/*
 * engine_redis.h -- the Redis engine's own types, shared by its two files
 * only: engine_redis.c (the operations, the request queue, the thread)
 * and engine_redis_sub.c (what the node keeps up in Redis: its pub/sub
 * channels and what arrives on them, its links, presence and online
 * counts). Nothing else includes it: engine.h is the engine's interface.
 *
 * Owns:       the definitions only.
 * Called by:  engine_redis.c, engine_redis_sub.c.
 * Invariants: as engine_redis.c says: the fields under "the engine's
 *             thread" are touched on that thread only (and by eng_stop
 *             once it has ended); those under "the callers' side" under
 *             lock.
 */
#ifndef HERALD_ENGINE_REDIS_H
#define HERALD_ENGINE_REDIS_H

#include <pthread.h>
#include <stdatomic.h>

#include <ev.h>
#include <jansson.h>
#include <uthash.h>

#include "engine.h"
#include "rhist.h"
#include "rlink.h"
#include "rpres.h"

#define RED_PROBE_EVERY 1.0  /* seconds between probes of the pub/sub link */
#define RED_UPKEEP_EVERY 5.0 /* seconds between refreshes of presence and online entries */
#define RED_PRESENCE_TTL 20  /* seconds an entry lives unrefreshed: a dead node's go by then */
#define RED_CHECK_EVERY 40.0 /* seconds between checks of every held stream's position */
#define RED_CHECK_BATCH 256  /* streams per positions script */
#define RED_SCRIPT_STREAMS                                                                         \
    2000 /* a publish script's streams (about 16 ms of Redis): whole messages */

enum red_req_type {
    RED_PUBLISH,
    RED_SINCE,
    RED_WANT,    /* subscribe (want) or unsubscribe a stream's channel */
    RED_JOIN,    /* presence */
    RED_LEAVE,   /* presence */
    RED_MEMBERS, /* presence */
    RED_ONLINE,  /* a user's connections in the cluster */
    RED_COUNT,   /* a user's connections here changed */
};

/* A call handed to the engine's thread. */
struct red_req {
    struct red_req *next;   /* borrowed: the next queued */
    struct red_engine *eng; /* borrowed */
    enum red_req_type type;
    int worker; /* the caller's worker, or -1 */
    int site;
    /* RED_PUBLISH */
    void *job;
    int detached;
    struct eng_item *items; /* borrowed: the job's */
    size_t nitems;
    char **texts;   /* owned: taken over from the caller */
    size_t scripts; /* scripts not answered yet (and one while sending) */
    int failed;     /* one of them failed */
    eng_done_fn *done;
    /* the others: a stream, and for presence a user */
    char kind;
    char *name;  /* owned */
    char *since; /* owned */
    char *user;  /* owned */
    char *info;  /* owned, or NULL */
    int want;    /* RED_WANT */
    int counts;  /* RED_MEMBERS */
    long n;      /* RED_COUNT: the user's connections here now */
    eng_since_fn *since_done;
    eng_members_fn *members_done;
    eng_online_fn *online_done;
    void *arg;
    struct red_req *wnext; /* borrowed: next waiting on the same channel */
};

/* A finished call's answer, carried to the caller's thread. */
struct red_answer {
    struct red_req *req; /* owned */
    int err;
    struct eng_since since;   /* RED_SINCE: its items owned */
    json_t *members;          /* RED_JOIN, RED_MEMBERS: a reference, or NULL */
    struct eng_online online; /* RED_ONLINE */
};

/* A stream this node holds: on how many workers, and its epoch as last seen. */
struct red_hold {
    UT_hash_handle hh;
    int nworkers;
    long connections;                /* a user's: its connections here */
    char epoch[RHIST_EPOCH_LEN + 1]; /* "" until seen */
    char key[];                      /* "<site>/<kind>:<name>" */
};

enum red_state { RED_IDLE, RED_SUBSCRIBING, RED_ACTIVE, RED_UNSUBSCRIBING };

/* A member of a presence channel, as this node holds it. */
struct red_member {
    UT_hash_handle hh;
    char *user; /* owned: the key */
    int n;      /* connections joined here */
    char *info; /* owned: the first one's, or NULL */
};

/* A pub/sub channel of this node (engine thread only). */
struct red_chan {
    UT_hash_handle hh;
    char *channel; /* owned: the key */
    int site;
    char kind;  /* 'u', 'c', 'b' (a site's broadcasts) or 'p' (the probe) */
    char *name; /* owned: the stream's name, or "" */
    int want;
    int lost;          /* its subscription went while wanted: holders catch up once it is back */
    int catch_pending; /* a catch-up waits for the engine to be available */
    char catch_epoch[RHIST_EPOCH_LEN + 1]; /* and the epoch its holders ask from, or "" */
    enum red_state state;
    struct red_req *waiting;    /* owned: replays waiting for the subscription */
    struct red_member *members; /* owned: presence members joined here */
    /* What arrived here of the stream, against its position in Redis (the position check). */
    char epoch[RHIST_EPOCH_LEN + 1]; /* of the newest numbered message seen, or "" */
    uint64_t seen;                   /* its offset */
    uint64_t suspect;                /* Redis was past seen at the last check: confirm, or 0 */
};

struct red_site {
    char *name;       /* owned */
    struct dir users; /* which workers hold which users */
    struct dir chans; /* which workers hold which channels */
};

struct red_engine {
    struct engine e; /* first: the engine.h view */
    struct red_site *sites;
    int nsites;
    int nworkers;
    char *prefix;
    char *node;                /* node_name */
    char *incarnation;         /* "<node>#<pid>-<start>": this run of the node (rpres.h) */
    struct rlink_cfg link_cfg; /* its strings owned */
    int history_size, history_ttl;
    /* the callers' side */
    pthread_mutex_t lock; /* the queue, holds, stopped */
    struct red_req *head, *tail;
    struct red_hold *holds;
    int stopped;
    atomic_int available;
    /* the engine's thread */
    pthread_t thread;
    int started;
    struct ev_loop *loop;
    ev_async wake;
    ev_async quit;
    ev_timer probe;
    ev_timer upkeep;
    ev_timer check;
    size_t nsuspects;     /* channels with suspect set */
    ev_tstamp suspect_at; /* when the first of them was set */
    struct rlink *cmd, *sub;
    struct red_chan *chans;
    int probe_pending;
    ev_tstamp probe_sent; /* when Redis published the probe (its PUBLISH answered), or 0 */
    int cmd_was_up;       /* the command link has been up before: a reconnect sets counts again */
    int gen_pending; /* the generation is being raised for the server just reached: not available */
    struct rlink_stats link_stats; /* both links' errors, reconnects, round trips (/metrics) */
};

/* -- engine_redis.c ------------------------------------------------------ */

/* The pub/sub channel of a stream (malloc'd); kind 'b': the site's broadcasts, 'p': the probe. */
char *red_channel(const struct red_engine *r, int site, char kind, const char *name);
/*
 * Remember a stream's epoch from an id; returns whether it replaced another,
 * copied into old (RHIST_EPOCH_LEN + 1 bytes) unless NULL.
 */
int red_note_epoch(struct red_engine *r, int site, char kind, const char *name, const char *id,
                   char *old);
/* Send a to its caller, or answer q with err alone. */
/* The stream's epoch as this node last saw it, into epoch[RHIST_EPOCH_LEN + 1] ("": none). */
void red_hold_epoch(struct red_engine *r, int site, char kind, const char *name, char *epoch);
void red_answer_send(struct red_engine *r, struct red_answer *a);
void red_answer_err(struct red_engine *r, struct red_req *q, int err);
/* Read what replay q asked for; its channel's subscription is in place, or not needed. */
void red_since_send(struct red_engine *r, struct red_req *q);
void red_req_free(struct red_req *q);

/* -- engine_redis_sub.c --------------------------------------------------- */

/* The channel entry, made when missing. */
struct red_chan *red_chan_get(struct red_engine *r, int site, char kind, const char *name);
/* Bring c's subscription to what is wanted; frees c once nothing needs it. */
void red_reconcile(struct red_engine *r, struct red_chan *c);
/* Answer every replay waiting on c with err. */
void red_chan_fail(struct red_engine *r, struct red_chan *c, int err);
/* Free c and its members (the engine is going). */
void red_chan_free(struct red_chan *c);
/* rlink callbacks of the two links. */
void red_on_push(void *arg, int type, const char *channel, size_t clen, const char *data,
                 size_t dlen);
void red_cmd_state(void *arg, int up);
void red_sub_state(void *arg, int up);
/* ev_timer callbacks: the pub/sub probe, and the upkeep of presence and online entries. */
void red_on_probe(struct ev_loop *loop, ev_timer *t, int revents);
void red_on_upkeep(struct ev_loop *loop, ev_timer *t, int revents);
void red_on_check(struct ev_loop *loop, ev_timer *t, int revents);
/* A numbered message (or a replay's end) of c's stream was seen here: id "<epoch>:<offset>". */
void red_chan_saw(struct red_chan *c, const char *epoch, uint64_t offset);
/* c's stream may have a gap: its holders here catch up from epoch ("": the one seen now). */
void red_catch_up(struct red_engine *r, struct red_chan *c, const char *epoch);
/* A presence channel and a site's counts as rpres names them. */
struct rpres_chan red_pres_chan(const struct red_engine *r, const struct red_chan *c);
struct rpres_site red_pres_site(const struct red_engine *r, int site);
/* Presence on the engine's thread: RED_JOIN, RED_LEAVE, RED_MEMBERS. */
void red_presence_run(struct red_engine *r, struct red_req *q);

#endif

/*
 * rhist.h -- message history kept in Redis, for the Redis engine (issue
 * #13): numbering, keeping and publishing a message is one Lua script, so
 * offsets are gap-free and in order across every node that shares the
 * Redis; reading back what a client missed is another.
 *
 * Owns:       nothing past a call: the answers are handed to callbacks.
 * Called by:  the thread that runs the link's loop (rlink.h).
 * Invariants: a stream's keys are "<prefix>{<site>/<kind>:<name>}:m" (its
 *             meta hash: epoch "e", newest offset "o") and "...:h" (a list
 *             of "<offset>:<payload>", newest first, at most size long);
 *             the braces keep both in one Redis Cluster slot. An id is
 *             "<epoch>:<offset>". The epoch is chosen by whoever touches
 *             the stream first (a publish or a read), and changes only
 *             when the meta hash is lost (expired, evicted, or Redis
 *             restarted without persistence): then every older id is
 *             answered "not recoverable", never a partial replay. The meta
 *             hash outlives the list (meta_ttl >= ttl), so an expired list
 *             keeps its numbering.
 * Tests:      tests/unit/test_rhist.c, against a real redis-server.
 */
#ifndef HERALD_RHIST_H
#define HERALD_RHIST_H

#include <stddef.h>
#include <stdint.h>

#include "rlink.h"

#define RHIST_EPOCH_LEN 8 /* lowercase hex digits */
#define RHIST_ID_MAX 32   /* "<epoch>:<offset>" and its NUL */

/* One stream and how it is kept. */
struct rhist_stream {
    const char *prefix; /* redis_prefix, e.g. "herald:" */
    const char *site;
    char kind;        /* 'u' or 'c' */
    const char *name; /* the user id or channel name */
    int size;         /* messages kept; 0: numbered and published, not kept */
    int ttl;          /* seconds the list lives after its last publish */
    int meta_ttl;     /* seconds the numbering lives after its last use; >= ttl */
};

/* A publish's answer: its id (valid during the call), or an rlink error. */
typedef void rhist_published_fn(void *arg, int err, const char *id);

/* One missed message: its offset and its payload (valid during the call). */
struct rhist_item {
    uint64_t offset;
    const char *payload;
    size_t len;
};

/*
 * What a read found. ok: 1 when the items are every message after since
 * (oldest first), 0 when some may be gone: then they are empty, or, when
 * since was of another epoch, every message of the stream's current epoch
 * (what the client can still have; never part of it). id is the stream's
 * position ("<epoch>:<newest offset>"), for the client to recover from
 * later. The epoch took over from prev ("" for none) after offset start:
 * items up to start are prev's messages, and their ids are prev's.
 */
struct rhist_read {
    int ok;
    char id[RHIST_ID_MAX];
    char prev[RHIST_EPOCH_LEN + 1];
    uint64_t start;
};

/* A read's answer (rd NULL unless err is RLINK_OK); all valid during the call only. */
typedef void rhist_since_fn(void *arg, int err, const struct rhist_read *rd,
                            const struct rhist_item *items, size_t n);

/*
 * One message to several streams of one site (their prefix, site, size
 * and ttls are streams[0]'s), published in one step: numbered, kept and
 * PUBLISHed as "<id> <tag> <payload>" on pubsub[i] ("" or NULL: not
 * published) for each stream, then as " <tag> <payload>" (no id) on each
 * of plain. tag is one word naming who published ("-" for nobody).
 */
struct rhist_pub {
    const struct rhist_stream *streams;
    const char *const *pubsub; /* one per stream, or NULL */
    size_t n;
    const char *const *plain; /* channels published on unnumbered */
    size_t nplain;
    const char *tag;
    const char *payload;
    size_t len;
};

/*
 * A publish's ids, one per stream (valid during the call), and how many
 * subscribers its PUBLISHes reached in all; or an rlink error.
 */
typedef void rhist_numbered_fn(void *arg, int err, const char (*ids)[RHIST_ID_MAX], size_t n,
                               uint64_t reached);

/* One message's answer in a batch: its ids (one per stream) and the subscribers reached. */
struct rhist_result {
    const char (*ids)[RHIST_ID_MAX];
    size_t n;
    uint64_t reached;
};

/* A batch's answers, one per message (valid during the call), or an rlink error (res NULL). */
typedef void rhist_batch_fn(void *arg, int err, const struct rhist_result *res, size_t nmsgs);

/*
 * Publish msgs[0..nmsgs) in one step (one script): all of them, or, when
 * the script cannot run, none. Returns as rhist_publish_many.
 */
int rhist_publish_batch(struct rlink *l, const struct rhist_pub *msgs, size_t nmsgs,
                        rhist_batch_fn *done, void *arg);

/*
 * Publish p. Returns RLINK_OK (done is called later), or at once, with
 * done never called: RLINK_E_DOWN, or RLINK_E_REPLY when a stream's names
 * do not fit in a key.
 */
int rhist_publish_many(struct rlink *l, const struct rhist_pub *p, rhist_numbered_fn *done,
                       void *arg);

/*
 * Number payload[0..len) in stream s, keep it, and PUBLISH "<id> - <payload>"
 * on pubsub (unless NULL), in one step: rhist_publish_many for one stream.
 */
int rhist_publish(struct rlink *l, const struct rhist_stream *s, const char *payload, size_t len,
                  const char *pubsub, rhist_published_fn *done, void *arg);

/*
 * What a client that has seen up to since (an id, or "" for nothing) missed
 * in s. Returns as rhist_publish.
 */
int rhist_since(struct rlink *l, const struct rhist_stream *s, const char *since,
                rhist_since_fn *done, void *arg);

/* A stream's newest offset and epoch ("" when Redis has none: never published, or lost). */
struct rhist_position {
    uint64_t offset;
    char epoch[RHIST_EPOCH_LEN + 1];
};

typedef void rhist_positions_fn(void *arg, int err, const struct rhist_position *pos, size_t n);

/*
 * Where streams s[0..n) stand in Redis, read only (one script). Returns
 * as rhist_publish_many.
 */
int rhist_positions(struct rlink *l, const struct rhist_stream *s, size_t n,
                    rhist_positions_fn *done, void *arg);

/* The positions reply's check: 0 with pos[0..n) filled, or -1. */
int rhist_parse_positions(const redisReply *r, size_t n, struct rhist_position *pos);

/* raised: 1 if this call raised the generation, 0 if this master already had. */
typedef void rhist_raised_fn(void *arg, int err, int raised);

/*
 * Raise the cluster's generation ("<prefix>gen") for the server the link
 * is on, unless it (by its run id) already had it raised: every node asks
 * as its link comes up, one raise is done per server (a first start, a
 * restart, a failover), and each stream goes on in a new epoch as it is
 * next touched. Returns as rhist_publish_many.
 */
int rhist_raise_generation(struct rlink *l, const char *prefix, rhist_raised_fn *done, void *arg);

/*
 * The checks behind the answers, on a reply from Redis (untrusted: its
 * shape, epoch, offsets and their order are checked), for the fuzz target
 * and tests. A publish's: 0 with id filled, or -1. A read's: 0 with *ok,
 * id and *items (malloc'd, pointing into r; *n of them), or -1.
 */
int rhist_parse_published(const redisReply *r, char *id);
/*
 * A batch's answer, ns[m] streams in message m: 0 with ids (every
 * message's, in order) and reached[m] filled, or -1.
 */
int rhist_parse_batch(const redisReply *r, const size_t *ns, size_t nmsgs,
                      char (*ids)[RHIST_ID_MAX], uint64_t *reached);
/* A publish's answer for n streams: 0 with ids and *reached filled, or -1. */
int rhist_parse_numbered(const redisReply *r, size_t n, char (*ids)[RHIST_ID_MAX],
                         uint64_t *reached);
int rhist_parse_since(const redisReply *r, int *ok, char *id, char *prev, uint64_t *start,
                      struct rhist_item **items, size_t *n);

#endif

/*
 * hist.h -- message history: every user stream and channel numbers its
 * messages and keeps the last ones, so a client that was away can ask
 * for what it missed (docs/protocol.md, "Recovery").
 *
 * Owns:       struct hist (striped tables of streams), each stream's kept
 *             frames (one msg reference per entry).
 * Called by:  fcgi/routes.c (API publishes) and client.c (browser
 *             publishes) to number and keep messages; conn.c and client.c
 *             to replay; main.c to sweep old entries; any thread.
 * Invariants: an id is "<epoch>:<offset>". The epoch is random per process
 *             (history lives in memory); offsets come from one counter for
 *             the whole process, so they only grow, in every stream, even
 *             across a stream that was dropped and made again. A stream's
 *             offsets are handed out under its stripe lock, and the caller
 *             submits the delivery job before unlocking, so every worker
 *             sees a stream's messages in offset order. A since offset is
 *             recoverable when it is at or above the stream's floor: the
 *             highest offset that may have been dropped.
 */
#ifndef HERALD_HIST_H
#define HERALD_HIST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#define HIST_STRIPES 64
#define HIST_ID_MAX 32         /* "xxxxxxxx:" + 20 digits + NUL fits */
#define HIST_KEY_MAX 200       /* site name (32), "/u:" or "/c:", a user id or channel (128), NUL */

struct msg;

struct hist_entry {
    struct hist_entry *next;   /* owned by the stream */
    uint64_t offset;
    double time;               /* hist_clock() when kept */
    struct msg *msg;           /* ref */
};

struct hist_stream {
    char *key;                 /* owned: "u:<user>" or "c:<channel>" */
    struct hist_entry *head;   /* owned: oldest kept */
    struct hist_entry *tail;   /* borrowed: newest */
    size_t count;
    uint64_t floor;            /* offsets up to here may be gone */
    uint64_t last;             /* newest offset handed out; floor when none */
    double touched;            /* last append or replay, for dropping idle streams */
    unsigned stripe;
    UT_hash_handle hh;
};

struct hist {
    pthread_mutex_t lock[HIST_STRIPES];
    struct hist_stream *table[HIST_STRIPES];  /* owned: uthash heads */
    char epoch[9];             /* 8 hex digits */
    atomic_uint_fast64_t next_offset;
    size_t size;               /* entries kept per stream; 0 = history off */
    double ttl;                /* seconds an entry is kept */
    size_t max_bytes;          /* frames kept, whole process */
    atomic_size_t bytes;
    atomic_size_t messages;
    atomic_size_t streams;
    atomic_uint_fast64_t evicted;
};

/* Set up with the bounds from the config; picks a new random epoch. */
void hist_init(struct hist *h, size_t size, double ttl, size_t max_bytes);

void hist_free(struct hist *h);

/* Is history on (history_size > 0)? */
static inline int hist_on(const struct hist *h)
{
    return h->size > 0;
}

/* The stripe a key lives in, for callers that lock several (in increasing order). */
unsigned hist_stripe_of(const char *key);

/* Lock or unlock one stripe. */
void hist_lock(struct hist *h, unsigned stripe);
void hist_unlock(struct hist *h, unsigned stripe);

/* key's stream, made if missing; its stripe must be locked by the caller. */
struct hist_stream *hist_get(struct hist *h, const char *key);

/* Lock key's stripe and return its stream, made if missing; hist_end unlocks. */
struct hist_stream *hist_begin(struct hist *h, const char *key);

/* Write offset off's id, "<epoch>:<off>", into id (HIST_ID_MAX); returns id. */
char *hist_id(const struct hist *h, uint64_t off, char *id);

/* Hand out the stream's next offset and write its id into id (HIST_ID_MAX). */
uint64_t hist_next(struct hist *h, struct hist_stream *s, char *id);

/* Keep frame m (a reference is taken) as the entry for offset off. */
void hist_push(struct hist *h, struct hist_stream *s, uint64_t off, struct msg *m);

/* Unlock the stream's stripe. */
void hist_end(struct hist *h, struct hist_stream *s);

/*
 * What a client that has seen up to since (an id, or "" for nothing) has
 * missed in key's stream. Returns 1 (recoverable: *out holds *n frame
 * references, oldest first, for the caller to send and unref) or 0 (not:
 * nothing in *out). Either way *last is the stream's newest offset and id
 * its id. The stream is made if missing, so its position exists from now on.
 */
int hist_since(struct hist *h, const char *key, const char *since, struct msg ***out,
               size_t *n, uint64_t *last, char *id);

/* Drop entries past their age (or older ones while over max_bytes) and idle empty streams. */
void hist_sweep(struct hist *h);

/* Seconds on the monotonic clock entries are stamped with. */
double hist_clock(void);

/*
 * Write the whole history to path (hist_file.c), when no other thread uses
 * it. Returns 0, or -1 (logged).
 */
int hist_save(struct hist *h, const char *path);

/*
 * Read a history written by hist_save, before any other thread starts, and
 * remove the file. Keeps its epoch and offsets; drops entries past history_ttl
 * counting the time the daemon was down. Returns 0, or -1 (logged; history
 * starts empty) when there is no usable file.
 */
int hist_load(struct hist *h, const char *path);

/*
 * "<site>/u:<user>" or "<site>/c:<channel>" into buf; returns buf. The
 * site's name, not its index, so a history file still fits after the
 * sections of the config are reordered.
 */
char *hist_key(char *buf, size_t size, const char *site, char kind, const char *name);

#endif

/*
 * hist.h -- message history: every user stream and channel numbers its
 * messages and keeps the last ones, so a client that was away can ask
 * for what it missed (docs/protocol.md, "Recovery").
 *
 * Owns:       struct hist (striped tables of streams), each stream's
 *             entries, the shared message bodies they reference, and per
 *             site a byte budget, counters and a table of dropped floors.
 * Called by:  engine_memory.c (publishes to number and keep messages,
 *             replays, /stats), any thread; main.c to sweep old entries and
 *             to save and load the file.
 * Invariants: an id is "<epoch>:<offset>". The epoch is random per process
 *             unless read back from history_file; offsets come from one
 *             counter for the whole process, so they only grow, in every
 *             stream. A stream's offsets are handed out under its stripe
 *             lock, and the caller submits the delivery job before
 *             unlocking, so every worker sees a stream's messages in offset
 *             order.
 *
 *             A stream exists only while it holds at least one message: a
 *             subscribe or a recovery never makes one, and one trimmed to
 *             empty is freed at once. Its floor is the highest offset that
 *             may have been dropped. A key without a stream has its bucket's
 *             floor: each site has HIST_BUCKETS "dropped floors", a key's
 *             bucket chosen by its hash; when a stream is freed (or a message
 *             is not kept) its bucket rises to the stream's newest offset, so
 *             no message of a missing stream is above its bucket. A bucket is
 *             in exactly one stripe (bucket % HIST_STRIPES is the key's
 *             stripe) and guarded by that stripe's lock.
 *
 *             A since offset is recoverable iff it is of this epoch and
 *             floor <= since <= position, where position is the stream's
 *             newest offset, or for a missing stream the counter read under
 *             the stripe lock (no offset of that key can be between since and
 *             it without a stream holding it or the bucket rising past since).
 *             A false "not recoverable" is allowed (another key of the bucket
 *             raised it); a false "recoverable" never.
 *
 *             A message to many users is one body, shared by every entry of
 *             it; the frame with its id is made when it is sent. Each site's
 *             bytes count real memory: every body once while an entry holds
 *             it, every entry and every stream with its key, plus malloc's
 *             overhead. hist_sweep keeps a site under history_max_bytes,
 *             oldest first; a publish that would take the site past twice
 *             that before the sweep runs is numbered and delivered but not
 *             kept (its stream's floor rises to it).
 */
#ifndef HERALD_HIST_H
#define HERALD_HIST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uthash.h>

#define HIST_STRIPES 64
#define HIST_BUCKETS 4096 /* dropped floors per site: a multiple of HIST_STRIPES */
#define HIST_ID_MAX 32    /* "xxxxxxxx:" + 20 digits + NUL fits */
#define HIST_KEY_MAX 200  /* site name (32), "/u:" or "/c:", a user id or channel (128), NUL */
#define HIST_MALLOC_OVERHEAD 16 /* bytes malloc adds to an allocation, counted in the budget */

/* A message's envelope without its id (proto_channel_text), shared by its entries. */
struct hist_body {
    atomic_uint refs; /* every holder: entries, replays, the publisher */
    atomic_uint kept; /* entries holding it: its size counts while > 0 */
    size_t len;       /* bytes of text, NUL excluded */
    char *text;       /* owned: NUL-terminated JSON object text */
};

struct hist_entry {
    struct hist_entry *next; /* owned by the stream */
    uint64_t offset;
    double time;            /* hist_clock() when kept */
    struct hist_body *body; /* ref */
};

struct hist_stream {
    struct hist_entry *head; /* owned: oldest kept; never NULL */
    struct hist_entry *tail; /* borrowed: newest, whose offset is last */
    size_t count;
    uint64_t floor;  /* offsets up to here may be gone */
    uint64_t last;   /* newest offset handed out */
    unsigned bucket; /* of the key: its stripe is bucket % HIST_STRIPES */
    int site;        /* index of the site whose budget it counts in */
    UT_hash_handle hh;
    char key[]; /* "<site>/u:<user>" or "<site>/c:<channel>" */
};

/* One site's budget, counters and dropped floors. */
struct hist_site {
    char *name;             /* owned: the site's name, as keys start with it */
    size_t max_bytes;       /* history_max_bytes: the sweep's budget; twice it is a hard bound */
    atomic_size_t bytes;    /* memory held, counted as hist.h says */
    atomic_size_t messages; /* entries kept */
    atomic_size_t streams;
    atomic_uint_fast64_t evicted;  /* entries dropped: size, age or budget */
    atomic_uint_fast64_t not_kept; /* messages delivered but not kept (past the hard bound) */
    uint64_t floors[HIST_BUCKETS]; /* bucket b: under stripe b % HIST_STRIPES's lock */
    double *weights;               /* owned: the sweep's bytes by age bin (its thread only) */
    double span;                   /* the sweep's: age of the oldest entry, which the bins divide */
    int cut;                       /* the sweep's: drop entries of age bins >= cut */
};

struct hist {
    pthread_mutex_t lock[HIST_STRIPES];
    struct hist_stream *table[HIST_STRIPES]; /* owned: uthash heads */
    char epoch[9];                           /* 8 lowercase hex digits */
    atomic_uint_fast64_t next_offset;
    size_t size;             /* entries kept per stream; 0 = history off */
    double ttl;              /* seconds an entry is kept */
    struct hist_site *sites; /* owned: one per configured site, in the config's order */
    int nsites;
};

/* What a body of len bytes, an entry and a stream cost in their site's budget (hist.h). */
static inline size_t hist_body_cost(size_t len)
{
    return sizeof(struct hist_body) + HIST_MALLOC_OVERHEAD + len + 1 + HIST_MALLOC_OVERHEAD;
}

static inline size_t hist_entry_cost(void)
{
    return sizeof(struct hist_entry) + HIST_MALLOC_OVERHEAD;
}

/* A stream with a key of keylen bytes, with its share of the hash table's buckets. */
static inline size_t hist_stream_cost(size_t keylen)
{
    return sizeof(struct hist_stream) + keylen + 1 + HIST_MALLOC_OVERHEAD + 16;
}

/* What hist_since hands back for one missed message. */
struct hist_item {
    uint64_t offset;
    struct hist_body *body; /* ref: the caller unrefs */
};

/* One site's counters, as /stats shows them. */
struct hist_stats {
    uint64_t streams, messages, bytes, max_bytes, evicted, not_kept;
};

/* A site's secret, which the history file's MAC key is derived from. */
struct hist_secret {
    const void *key; /* borrowed */
    size_t len;
};

/*
 * Set up with the bounds from the config and nsites sites (names[i] and
 * max_bytes[i] of site i); picks a new random epoch.
 */
void hist_init(struct hist *h, size_t size, double ttl, int nsites, const char *const *names,
               const size_t *max_bytes);

/* Free every stream, entry and the sites; no other thread may use h. */
void hist_free(struct hist *h);

/* Is history on (history_size > 0)? */
static inline int hist_on(const struct hist *h)
{
    return h->size > 0;
}

/* A body taking over text (malloc'd, len bytes, NUL-terminated); refs starts at 1. */
struct hist_body *hist_body_new(char *text, size_t len);

/* Take one more reference. */
static inline struct hist_body *hist_body_ref(struct hist_body *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

/* Drop a reference; the last frees. NULL is a no-op. */
void hist_body_unref(struct hist_body *b);

/* The stripe a key lives in, for callers that lock several (in increasing order). */
unsigned hist_stripe_of(const char *key);

/* Lock or unlock one stripe. */
void hist_lock(struct hist *h, unsigned stripe);
void hist_unlock(struct hist *h, unsigned stripe);

/* Write offset off's id, "<epoch>:<off>", into id (HIST_ID_MAX); returns id. */
char *hist_id(const struct hist *h, uint64_t off, char *id);

/*
 * Number a message of key's stream in site and keep body (a reference is
 * taken) as its entry, stamped now (hist_clock), making the stream if
 * needed; the caller holds key's stripe lock and submits the delivery
 * before unlocking. Past twice the site's budget the message is not kept.
 * Returns the offset, with its id written into id (HIST_ID_MAX).
 */
uint64_t hist_publish(struct hist *h, int site, const char *key, struct hist_body *body, double now,
                      char *id);

/*
 * What a client that has seen up to since (an id, or "" for nothing) has
 * missed in key's stream of site. Returns 1 (recoverable: *out holds *n
 * items, oldest first, for the caller to send and unref, then free) or 0
 * (not: nothing in *out). Either way *last is the position (hist.h) and id
 * its id. Makes no stream.
 */
int hist_since(struct hist *h, int site, const char *key, const char *since, struct hist_item **out,
               size_t *n, uint64_t *last, char *id);

/*
 * Once a second: drop entries past their age, then in each site over its
 * budget the oldest, whatever their stream, until it fits.
 */
void hist_sweep(struct hist *h);

/* Site's counters. */
void hist_stats(struct hist *h, int site, struct hist_stats *out);

/* Seconds on the monotonic clock entries are stamped with. */
double hist_clock(void);

/*
 * "<site>/u:<user>" or "<site>/c:<channel>" into buf; returns buf. The
 * site's name, not its index, so a history file still fits after the
 * sections of the config are reordered.
 */
char *hist_key(char *buf, size_t size, const char *site, char kind, const char *name);

/* -- hist_file.c: history across a clean restart -------------------------- */

/*
 * Is path's directory one Herald may keep history in: a directory (not a
 * symlink), owned by root, the effective uid or owner, not writable by
 * group or others? Returns 0, or -1 with *cause set (one line, malloc'd).
 */
int hist_check_dir(const char *path, uid_t owner, char **cause);

/*
 * Write the whole history to path, each site's part authenticated with a
 * key derived from secrets[site], when no other thread uses it. Returns 0,
 * or -1 (logged; nothing is written).
 */
int hist_save(struct hist *h, const char *path, const struct hist_secret *secrets);

/*
 * Read a history written by hist_save, before any other thread starts, and
 * remove the file. The file must be a regular file owned by owner (the
 * user Herald runs as once it drops privileges), not writable by group or
 * others, in a directory hist_check_dir accepts. Returns 0 when some site's
 * history was read, or -1 (logged; history starts empty, with a new epoch
 * when no site's part could be used).
 */
int hist_load(struct hist *h, const char *path, const struct hist_secret *secrets, uid_t owner);

/*
 * The reader behind hist_load, on the file's bytes (untrusted): validates
 * everything, keeps what verifies, logs one line per part it refuses.
 * now is the wall clock, for the time the daemon was down. Returns as
 * hist_load. For the fuzz target and tests.
 */
int hist_file_read(struct hist *h, const char *buf, size_t len, const struct hist_secret *secrets,
                   double now);

/*
 * For hist_file_read, before other threads start: key's stream of site as
 * read from a file (checked): floor, newest offset last, and n entries
 * (items[i] stamped times[i] on hist_clock, references taken). Entries past
 * history_ttl are left out, the floor rising over them; with none left
 * there is no stream and key's bucket rises to last.
 */
void hist_restore(struct hist *h, int site, const char *key, uint64_t floor, uint64_t last,
                  size_t n, const struct hist_item *items, const double *times);

/* The largest history file hist_load reads: a bound from the sites' budgets. */
size_t hist_file_max(const struct hist *h);

#endif

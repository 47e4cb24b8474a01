/*
 * lg_track.h -- what was published, shared by the publisher threads and the
 * receiver, so every delivery can be checked: missing, duplicate, misrouted.
 *
 * Owns:       struct lg_track: per broadcast seq an "answered 2xx" flag; per
 *             targeted seq its target connection and two flags.
 * Called by:  lg_run.c publisher threads (lg_track_target, lg_track_ok),
 *             lg_conn.c on the receiver thread (lg_track_deliver), and
 *             loadgen.c and lg_recv.c once every thread has stopped
 *             (lg_track_missing, lg_track_was_ok).
 * Invariants: publishers and the receiver touch it concurrently; every
 *             shared word is atomic. The targeted table grows by chunks
 *             that are never moved or freed until lg_track_free.
 * Errors:     lg_track_target returns -1 past LG_TRACK_MAX_SEQ.
 */
#ifndef HERALD_LG_TRACK_H
#define HERALD_LG_TRACK_H

#include <stdint.h>

#define LG_TRACK_CHUNK_BITS 16
#define LG_TRACK_CHUNKS 4096
#define LG_TRACK_MAX_SEQ ((uint64_t)LG_TRACK_CHUNKS << LG_TRACK_CHUNK_BITS) /* 268M */

/* What one delivery turned out to be. */
enum lg_track_result {
    LG_TRACK_NEW,       /* first arrival, at the right connection */
    LG_TRACK_DUP,       /* arrived before at this connection */
    LG_TRACK_MISROUTED, /* targeted seq at a connection it was not meant for */
    LG_TRACK_UNKNOWN,   /* a seq nobody published */
};

struct lg_track;

/* A tracker for broadcast (messages seqs) or targeted (0: grows) runs. */
struct lg_track *lg_track_new(int targeted, uint64_t messages);

/* Free it; NULL is a no-op. */
void lg_track_free(struct lg_track *t);

/* Targeted: record that seq goes to connection id, before it is sent. 0 or -1. */
int lg_track_target(struct lg_track *t, uint64_t seq, uint32_t id);

/* Record that seq's publish was answered 2xx. */
void lg_track_ok(struct lg_track *t, uint64_t seq);

/* Was seq's publish answered 2xx? */
int lg_track_was_ok(const struct lg_track *t, uint64_t seq);

/*
 * Targeted: classify the arrival of seq at connection id (receiver thread
 * only). Broadcast duplicates are found with the connection's own bitmap.
 */
enum lg_track_result lg_track_deliver(struct lg_track *t, uint64_t seq, uint32_t id);

/* Targeted: seqs below nseq answered 2xx that never arrived where they should. */
uint64_t lg_track_missing(const struct lg_track *t, uint64_t nseq);

#endif

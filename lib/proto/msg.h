/*
 * msg.h -- a shared outgoing frame: encoded once, sent to many.
 *
 * Owns:       struct msg, an immutable WebSocket frame (header + payload)
 *             with an atomic reference count.
 * Called by:  proto.c (makes every JSON frame: one per publish, on the
 *             thread that publishes), conn.c and worker.c (control frames:
 *             pong, close, ping, the 101); conn.c's out-queue entries each
 *             hold one reference.
 * Invariants: the bytes never change after msg_new*, but for one case: a
 *             pong a conn holds alone and has not started writing takes a
 *             later ping's payload in place (conn.c, conn_pong). Only refs
 *             and queued are touched by more than one thread, atomically.
 *             The last msg_unref frees.
 */
#ifndef HERALD_MSG_H
#define HERALD_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    atomic_uint refs;
    uint32_t len; /* bytes in data[]: the whole frame */
    /* A publish's frame: when it was handed to the workers (histo_now_ns), for the
     * delivery lag; 0 for every other frame (answers, replays, control frames). */
    atomic_uint_fast64_t queued;
    uint8_t data[]; /* frame header followed by the payload */
};

/*
 * Encode a FIN frame of the given opcode around payload; refs starts at 1.
 * payload NULL leaves the len payload bytes for the caller to write, at
 * msg_payload, before the frame is shared.
 */
struct msg *msg_new(int opcode, const void *payload, size_t len);

/* Bytes sent as they are (an HTTP response before the upgrade). */
struct msg *msg_new_raw(const void *data, size_t len);

/* A CLOSE frame carrying code (and no reason). */
struct msg *msg_new_close(int code);

/* The payload of a frame made by msg_new (server frames are never masked). */
const uint8_t *msg_payload(const struct msg *m, size_t *len);

/* Take one more reference. */
static inline struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Drop a reference; frees the frame when it was the last. NULL is a no-op. */
void msg_unref(struct msg *m);

#endif

/*
 * msg.c -- shared outgoing frames.
 *
 * Owns:       struct msg allocations.
 * Called by:  proto.c, conn.c and worker.c; any thread.
 * Invariants: a publish is encoded here exactly once, whatever the number
 *             of recipients; recipients share it by reference (h2o's shared
 *             chunks, Redis' incrRefCount). Release order: the thread that
 *             drops the last reference frees, after an acquire fence.
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "xmalloc.h"

struct msg *msg_new(int opcode, const void *payload, size_t len)
{
    uint8_t head[WS_MAX_SERVER_HEADER];
    size_t hlen = ws_encode_header(head, 1, opcode, len);
    struct msg *m = xmalloc(sizeof *m + hlen + len);

    atomic_init(&m->refs, 1);
    atomic_init(&m->queued, 0);
    m->len = (uint32_t)(hlen + len);
    memcpy(m->data, head, hlen);
    if (len > 0 && payload != NULL)
        memcpy(m->data + hlen, payload, len);
    return m;
}

struct msg *msg_new_raw(const void *data, size_t len)
{
    struct msg *m = xmalloc(sizeof *m + len);

    atomic_init(&m->refs, 1);
    atomic_init(&m->queued, 0);
    m->len = (uint32_t)len;
    memcpy(m->data, data, len);
    return m;
}

struct msg *msg_new_close(int code)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    return msg_new(WS_OP_CLOSE, body, sizeof body);
}

void msg_unref(struct msg *m)
{
    if (m == NULL)
        return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        free(m);
    }
}

const uint8_t *msg_payload(const struct msg *m, size_t *len)
{
    uint8_t b1 = m->len >= 2 ? m->data[1] & 0x7f : 0;
    size_t hdr = b1 < 126 ? 2 : b1 == 126 ? 4 : 10;

    *len = m->len >= hdr ? m->len - hdr : 0;
    return m->data + hdr;
}

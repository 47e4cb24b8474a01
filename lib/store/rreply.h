/*
 * rreply.h -- reply objects for hiredis's reader with a budget: what an
 * untrusted (or broken) server sends cannot make Herald allocate without
 * bound, nor crash hiredis. Every Redis connection Herald opens (rlink.c,
 * rsentinel.c) reads its replies with these.
 *
 * Owns:       nothing: the objects belong to hiredis's reader, then to
 *             whoever it hands a reply.
 * Called by:  hiredis's reader, on the thread of the connection's loop.
 * Invariants: an array is refused (and with it the connection) when the
 *             reply would hold more than RREPLY_MAX_ELEMENTS elements in
 *             all, nested arrays counted together: hiredis 0.14 allocates
 *             an array's pointers as soon as its header arrives, so
 *             "*2000000000\r\n" alone would cost 16 GB. A string costs
 *             what was received for it. With pushes set (a subscriber
 *             connection), every array must be a well-formed push, since
 *             hiredis asserts on any other shape there. With counted set,
 *             a reply no command waits for (inflight 0) is refused, pushes
 *             aside: hiredis asserts on one too.
 * Tests:      tests/unit/test_rlink.c (fake servers), tests/fuzz/fuzz_rhist.c.
 */
#ifndef HERALD_RREPLY_H
#define HERALD_RREPLY_H

#include <hiredis/hiredis.h>

/* The most elements one reply may hold, nested arrays counted together. */
#define RREPLY_MAX_ELEMENTS (1 << 20)

/* What the reply being read has cost so far: the reader's privdata. */
struct rreply_budget {
    long long elements;
    int pushes;    /* a subscriber connection: every array must be a well-formed push */
    int counted;   /* inflight is kept: a reply nobody waits for is refused */
    long inflight; /* commands sent whose reply has not been handed over */
};

/* The functions, for a reader whose privdata is a struct rreply_budget. */
extern redisReplyObjectFunctions rreply_fns;

#endif

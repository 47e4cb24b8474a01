/*
 * lg_run.h -- one run's options, and its publisher threads with the state
 * they share.
 *
 * Owns:       struct lg_opts (filled by loadgen.c from the command line) and
 *             struct lg_run (the publishers' shared counters, and the
 *             publisher threads between lg_run_start and lg_run_join).
 * Called by:  loadgen.c, on the main thread; the threads it starts run
 *             lg_run.c's loop and call lg_pub.c and lg_track.c.
 * Invariants: the threads share only struct lg_run's atomics and the
 *             lg_track tables; everything else a thread touches is its own.
 * Errors:     lg_run_start returns -1 with *cause (owned by the caller);
 *             publish failures are counted in errors, never fatal.
 */
#ifndef HERALD_LG_RUN_H
#define HERALD_LG_RUN_H

#include <stdatomic.h>
#include <stdint.h>

#include "lg_hist.h"
#include "lg_pub.h"
#include "lg_track.h"

enum lg_mode { LG_MODE_IDLE, LG_MODE_BROADCAST, LG_MODE_TARGETED, LG_MODE_API };

/* The command line (see /work/spec/bench.md). */
struct lg_opts {
    enum lg_mode mode;
    const char *sub;    /* borrowed from argv: --sub, or NULL */
    const char *pub;    /* borrowed from argv: --pub, or NULL */
    const char *secret; /* borrowed from argv: --secret, or NULL */
    const char *script; /* borrowed from argv: --script (php-fpm's SCRIPT_FILENAME), or NULL */
    uint64_t conns, messages, size;
    uint64_t id_base; /* --id-base: users are u{id_base + id} */
    int src_ips, publishers, keep;
    int shard; /* --shard: READY/GO on stdin, hold until stdin EOF, extra JSON */
    double rate, duration, hold, timeout; /* rate in publishes/s, the rest in seconds */
};

struct lg_publisher;

/* What the publisher threads share; zero it, fill the first block, then start. */
struct lg_run {
    const struct lg_opts *o;  /* borrowed */
    struct lg_pub_cfg pubcfg; /* parsed --pub */
    struct lg_track *track;   /* borrowed: NULL in api mode */
    const uint32_t *live;     /* borrowed: targeted, the connection ids to pick from */
    uint32_t nlive;
    uint64_t deadline;              /* ns: --timeout */
    uint64_t t0;                    /* ns: the schedule starts here (set by lg_run_start) */
    uint64_t stop_at;               /* ns: targeted publishing ends here */
    _Atomic uint64_t next_seq;      /* the next seq to publish */
    _Atomic uint64_t ok, errors;    /* answers 2xx, and the rest */
    _Atomic uint64_t t_first_pub;   /* ns of the first publish sent, 0 before */
    _Atomic uint64_t t_last_answer; /* ns of the last answer */
    _Atomic int done;               /* publisher threads finished */
    _Atomic int stop;               /* set by lg_run_join: publish no more */
    unsigned long pub_conns;        /* connections the publishers opened, once joined */
    struct lg_publisher *pubs;      /* owned: o->publishers threads, started to joined */
};

/*
 * Start o->publishers threads; the schedule starts now. Seqs come from
 * one counter; with --rate R seq k is sent at t0 + k/R. Broadcast and api
 * stop after --messages, targeted after --duration; all at the deadline.
 */
int lg_run_start(struct lg_run *run, char **cause);

/*
 * Tell the threads to stop, join them, add their publish round trips into
 * *rtt, and print the first publish error (if any) on stderr.
 */
void lg_run_join(struct lg_run *run, struct lg_hist *rtt);

#endif

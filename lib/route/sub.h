/*
 * sub.h -- one worker's channel subscriptions: channel name -> the
 * connections here that subscribed to it.
 *
 * Owns:       struct sub_chan (per channel with a subscriber here) and
 *             struct sub (one connection in one channel).
 * Called by:  client.c (subscribe, unsubscribe, a connection going away)
 *             and worker.c (delivering a channel message), on the owning
 *             worker's thread only.
 * Invariants: a sub_chan exists exactly while it has a subscriber; each
 *             sub is on its channel's list and on its connection's list.
 *             Other workers learn which workers hold a channel from the
 *             shared directory (dir.h), which the caller keeps in step
 *             using the "channel appeared/vanished" results below.
 */
#ifndef HERALD_SUB_H
#define HERALD_SUB_H

#include <stddef.h>

#include <uthash.h>

struct conn;
struct sub_chan;

struct sub {
    struct sub *next;       /* borrowed: next subscriber of the channel */
    struct sub *prev;       /* borrowed */
    struct sub *conn_next;  /* borrowed: the connection's next subscription */
    struct sub_chan *chan;  /* borrowed */
    struct conn *conn;      /* borrowed: the subscriber */
    uint64_t last;          /* newest offset of the channel's stream sent (hist.h) */
    uint64_t skipped;       /* while replaying: the newest live offset held back */
    unsigned presence : 1;  /* counted in the shared presence table */
    unsigned replaying : 1; /* a replay is on its way: live numbered frames wait for it */
};

struct sub_chan {
    char *name; /* owned: NUL-terminated */
    size_t nsubs;
    struct sub *subs; /* owned: first subscriber */
    UT_hash_handle hh;
};

struct sub_table {
    struct sub_chan *chans; /* owned: uthash table by name */
    size_t nchans;
    size_t nsubs;
};

/* An empty table. */
void sub_init(struct sub_table *t);

/* Free every channel and subscription (at worker exit, after the connections). */
void sub_free(struct sub_table *t);

/* The channel named name[0..len) on this worker, or NULL. */
struct sub_chan *sub_find(const struct sub_table *t, const char *name, size_t len);

/* The connection's subscription to name[0..len), found on its own list, or NULL. */
struct sub *sub_of_conn(struct sub *list, const char *name, size_t len);

/*
 * Subscribe c (whose list head is *list) to name[0..len); the name must be
 * valid and c must not be subscribed yet. Sets *appeared when the channel
 * had no subscriber on this worker before.
 */
struct sub *sub_add(struct sub_table *t, struct sub **list, struct conn *c, const char *name,
                    size_t len, int *appeared);

/*
 * Remove s from its channel and from *list, and free it. Returns 1 when the
 * channel has no subscriber left on this worker (it is freed too).
 */
int sub_remove(struct sub_table *t, struct sub **list, struct sub *s);

#endif

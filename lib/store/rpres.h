/*
 * rpres.h -- presence and online counts kept in Redis, for the Redis
 * engine (issue #13): which users are members of a presence channel
 * across every node, with join and leave once per user in the cluster,
 * and how many connections each user has on each node.
 *
 * Owns:       nothing past a call: answers are handed to callbacks.
 * Called by:  the thread that runs the link's loop (rlink.h).
 * Invariants: a node is known by its incarnation ("<node_name>#<pid>-<start>"),
 *             so a node that restarts under the same name never inherits
 *             the counts of the one that died. A presence channel's keys
 *             share one hash tag, "<prefix>{<site>/c:<name>}": ":pz" (a
 *             sorted set of "<node>|<user>", scored by when the entry
 *             expires), ":pc" (connections per "<node>|<user>"), ":pu"
 *             (live entries per user) and ":pi" (each member's info). A
 *             node refreshes its entries (rpres_refresh); every script
 *             first removes the expired ones, so a dead node's members
 *             leave within ttl of its last refresh, and a leave is then
 *             published like any other. Join and leave events are
 *             PUBLISHed by the scripts on the channel's pub/sub channel as
 *             "p - <json>", json {"j":1|0,"u":user,"i":info}. Online counts
 *             are per site: a hash per node incarnation,
 *             "<prefix>{<site>}:on:<node>" (user -> connections), which
 *             expires unless refreshed, and the set of nodes,
 *             "<prefix>{<site>}:nodes".
 * Tests:      tests/unit/test_rpres.c, against a real redis-server.
 */
#ifndef HERALD_RPRES_H
#define HERALD_RPRES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rlink.h"

/* A presence channel as this node sees it. */
struct rpres_chan {
    const char *prefix; /* redis_prefix */
    const char *site;
    const char *name;   /* the channel */
    const char *node;   /* this node's incarnation */
    const char *pubsub; /* the channel's pub/sub channel, for the events */
    int ttl;            /* seconds an entry lives unless refreshed */
};

/* A site's online counts as this node sees them. */
struct rpres_site {
    const char *prefix;
    const char *site;
    const char *node;
    int ttl;
};

/* The members, [{"user","info"}] (with "connections" when asked): a new reference, or NULL. */
typedef void rpres_members_fn(void *arg, int err, json_t *members);

/* A user's connections in the cluster, and on this node. */
typedef void rpres_online_fn(void *arg, int err, uint64_t total, uint64_t here);

/*
 * One more connection of user in ch (info: a JSON object's text, or
 * NULL); on the user's first in the cluster, the join is published. done
 * (may be NULL) gets the members right after. Returns RLINK_OK (done is
 * called later), or RLINK_E_DOWN / RLINK_E_REPLY at once.
 */
int rpres_join(struct rlink *l, const struct rpres_chan *ch, const char *user, const char *info,
               rpres_members_fn *done, void *arg);

/* One connection less; on the user's last in the cluster, the leave is published. */
int rpres_leave(struct rlink *l, const struct rpres_chan *ch, const char *user);

/* The members of ch, with each one's connections when counts is set. */
int rpres_members(struct rlink *l, const struct rpres_chan *ch, int counts, rpres_members_fn *done,
                  void *arg);

/* A member as this node holds it. */
struct rpres_member {
    const char *user;
    int connections;  /* joined here */
    const char *info; /* or NULL */
};

/*
 * This node holds m[0..n) in ch: their entries live another ttl, with
 * these counts; an entry Redis lost is made again (and its join published).
 */
int rpres_refresh(struct rlink *l, const struct rpres_chan *ch, const struct rpres_member *m,
                  size_t n);

/* user has n connections on this node now (0: none). */
int rpres_count(struct rlink *l, const struct rpres_site *s, const char *user, int n);

/* This node is alive: its counts live another ttl. */
int rpres_alive(struct rlink *l, const struct rpres_site *s);

/* user's connections on every live node, and on this one. */
int rpres_online(struct rlink *l, const struct rpres_site *s, const char *user,
                 rpres_online_fn *done, void *arg);

/* The members reply's check (untrusted): the JSON array, or NULL when malformed. */
json_t *rpres_parse_members(const redisReply *r, int counts);

#endif

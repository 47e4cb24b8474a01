/*
 * pres.h -- presence: which users are in each presence channel, across
 * every worker.
 *
 * Owns:       struct pres (striped tables channel -> member -> count).
 * Called by:  engine_memory.c: for client.c on worker threads (a
 *             connection joins or leaves), for lib/api/routes.c on API
 *             threads (GET /presence).
 * Invariants: a member exists while at least one of the user's connections
 *             is subscribed to the channel, on any worker. The emit callback
 *             runs under the channel's stripe lock, so the join and leave
 *             events of one channel are handed on in the order the counts
 *             changed; it must not call back into pres.
 */
#ifndef HERALD_PRES_H
#define HERALD_PRES_H

#include <pthread.h>
#include <stddef.h>

#include <jansson.h>
#include <uthash.h>

#define PRES_STRIPES 64

struct pres_chan;

struct pres {
    pthread_mutex_t lock[PRES_STRIPES];
    struct pres_chan *table[PRES_STRIPES]; /* owned: uthash heads */
};

/* A user's first connection entered (join = 1) or last one left (join = 0). */
typedef void (*pres_emit_fn)(void *arg, int join, const char *channel, const char *user,
                             const char *info);

void pres_init(struct pres *p);

void pres_free(struct pres *p);

/*
 * Count one more connection of user in channel; info is the user's JSON
 * object text or NULL, kept if this is the user's first connection there.
 * On the first, calls emit(arg, 1, ...) under the lock. If members is not
 * NULL, *members gets the member list (as pres_members) taken under the
 * same lock, so it agrees with the events that follow.
 */
void pres_join(struct pres *p, const char *channel, const char *user, const char *info,
               pres_emit_fn emit, void *arg, json_t **members);

/* Count one connection less; on the last, calls emit(arg, 0, ...) under the lock. */
void pres_leave(struct pres *p, const char *channel, const char *user, pres_emit_fn emit,
                void *arg);

/*
 * The members of channel as a new JSON array of {"user","info"} objects
 * (with "connections" too when counts is set); an empty array for a
 * channel nobody is in.
 */
json_t *pres_members(struct pres *p, const char *channel, int counts);

#endif

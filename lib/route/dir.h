/*
 * dir.h -- the directory: which workers hold a connection of each user.
 *
 * Owns:       struct dir (striped hash tables of user id -> worker mask).
 * Called by:  engine_memory.c: its holds (eng_hold, from conn.c for users
 *             and client.c for channels, on a worker's thread, when the
 *             first connection on that worker opens or subscribes and when
 *             the last one closes or leaves), once per publish (routing, on
 *             API and worker threads), online lookups and /stats counts.
 * Invariants: safe on any thread: each stripe has its own mutex, held only
 *             for one hash lookup. A worker sets its bit after adding the
 *             user to its own registry and clears it before removing, so a
 *             publish routed by a stale mask at worst finds nothing (as if
 *             it came a moment earlier or later) and never misses a user
 *             whose connection was open for its whole routing.
 * Tests:      tests/unit/test_dir.c.
 *
 * Why: a publish to one user used to wake every worker, and a cross-thread
 * wakeup is the costliest step of a targeted publish (tens of microseconds
 * on a virtual machine). Now it wakes only the workers that hold the user,
 * and none for a user who is offline.
 */
#ifndef HERALD_DIR_H
#define HERALD_DIR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#define DIR_MAX_WORKERS 256
#define DIR_STRIPES 64

/* A set of workers: bit i is worker i. */
struct dir_mask {
    uint64_t bits[DIR_MAX_WORKERS / 64];
};

struct dir_entry;

struct dir {
    pthread_mutex_t lock[DIR_STRIPES];
    struct dir_entry *table[DIR_STRIPES]; /* owned: uthash heads */
};

/* An empty directory. */
void dir_init(struct dir *d);

/* Free every entry; no thread may use d any more. */
void dir_free(struct dir *d);

/* Worker `worker` now holds a connection of user id (len bytes). */
void dir_add(struct dir *d, const char *id, size_t len, int worker);

/* Worker `worker` holds no connection of user id any more. */
void dir_remove(struct dir *d, const char *id, size_t len, int worker);

/* How many distinct users have a connection on some worker. */
size_t dir_count(struct dir *d);

/* OR into *mask the workers holding user id (a NUL-terminated string). */
void dir_lookup(struct dir *d, const char *id, struct dir_mask *mask);

/* Mark workers 0..n-1; is a mask empty; how many workers does it hold. */
void dir_mask_all(struct dir_mask *mask, int n);
int dir_mask_empty(const struct dir_mask *mask);
int dir_mask_has(const struct dir_mask *mask, int worker);

#endif

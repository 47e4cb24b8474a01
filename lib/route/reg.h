/*
 * reg.h -- the registry of one worker: user id -> that user's connections.
 *
 * Owns:       struct reg_user entries (the id strings and hash handles).
 *             Connections are not owned: each embeds a struct reg_link.
 * Called by:  conn.c (add after a successful handshake, remove on close),
 *             worker.c (publish: find a user and walk its links).
 * Invariants: one registry per worker, touched only by that worker's
 *             thread. A user entry exists exactly while it has a link;
 *             a link is in at most one user's list.
 * Tests:      tests/unit/test_reg.c.
 */
#ifndef HERALD_REG_H
#define HERALD_REG_H

#include <stddef.h>

#include <uthash.h>

struct reg_user;

/* Embedded in each connection; zeroed means "not registered". */
struct reg_link {
    struct reg_link *next; /* borrowed: next tab of the same user */
    struct reg_link *prev; /* borrowed */
    struct reg_user *user; /* borrowed: NULL when not registered */
};

struct reg_user {
    char *id;               /* owned: NUL-terminated user id */
    size_t nlinks;          /* open connections of this user here */
    struct reg_link *links; /* borrowed: first connection */
    UT_hash_handle hh;
};

struct reg {
    struct reg_user *users; /* owned: uthash table by id */
    size_t nusers;
};

/* An empty registry. */
void reg_init(struct reg *r);

/* Free the user entries (links stay with their owners, unlinked). */
void reg_free(struct reg *r);

/* Register link under user id (len bytes, not NUL-terminated). */
void reg_add(struct reg *r, struct reg_link *link, const char *id, size_t len);

/* Unregister link; drops the user entry with its last link. No-op if unlinked. */
void reg_remove(struct reg *r, struct reg_link *link);

/* The user with this id, or NULL. */
struct reg_user *reg_find(const struct reg *r, const char *id, size_t len);

#endif

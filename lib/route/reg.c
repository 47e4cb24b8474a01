/*
 * reg.c -- per-worker registry of users and their connections.
 *
 * Owns:       struct reg_user entries in a uthash table keyed by user id.
 * Called by:  conn.c and worker.c, on the owning worker's thread only.
 * Invariants: links are intrusive (Redis pubsub keeps lists of clients per
 *             channel; we embed the list node in the connection instead, so
 *             registering a tab allocates nothing but a new user's entry).
 */
#include "reg.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void reg_init(struct reg *r)
{
    r->users = NULL;
    r->nusers = 0;
}

void reg_free(struct reg *r)
{
    struct reg_user *u, *tmp;

    HASH_ITER (hh, r->users, u, tmp) {
        for (struct reg_link *l = u->links; l != NULL; l = l->next)
            l->user = NULL;
        HASH_DEL(r->users, u);
        free(u->id);
        free(u);
    }
    r->nusers = 0;
}

struct reg_user *reg_find(const struct reg *r, const char *id, size_t len)
{
    struct reg_user *u = NULL;

    HASH_FIND(hh, r->users, id, len, u);
    return u;
}

void reg_add(struct reg *r, struct reg_link *link, const char *id, size_t len)
{
    struct reg_user *u = reg_find(r, id, len);

    if (u == NULL) {
        u = xcalloc(1, sizeof *u);
        u->id = xstrndup(id, len);
        HASH_ADD_KEYPTR(hh, r->users, u->id, len, u);
        r->nusers++;
    }
    link->prev = NULL;
    link->next = u->links;
    if (u->links != NULL)
        u->links->prev = link;
    u->links = link;
    link->user = u;
    u->nlinks++;
}

void reg_remove(struct reg *r, struct reg_link *link)
{
    struct reg_user *u = link->user;

    if (u == NULL)
        return;
    if (link->prev != NULL)
        link->prev->next = link->next;
    else
        u->links = link->next;
    if (link->next != NULL)
        link->next->prev = link->prev;
    link->next = link->prev = NULL;
    link->user = NULL;
    if (--u->nlinks == 0) {
        HASH_DEL(r->users, u);
        free(u->id);
        free(u);
        r->nusers--;
    }
}

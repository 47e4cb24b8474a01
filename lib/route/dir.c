/*
 * dir.c -- the directory of which workers hold each user (see dir.h).
 *
 * Owns:       struct dir_entry allocations.
 * Called by:  engine_memory.c, on any thread: holds (a worker's first
 *             and last connection of a user or channel), routing a publish,
 *             online lookups, /stats counts. cmd.c uses its worker masks.
 * Invariants: an entry exists exactly while its mask is non-empty; each
 *             stripe's table is touched only under that stripe's mutex.
 */
#include "dir.h"

#include <stdlib.h>
#include <string.h>

#include "stripe.h"
#include "xmalloc.h"

struct dir_entry {
    UT_hash_handle hh;
    struct dir_mask mask;
    char id[]; /* NUL-terminated user id */
};

void dir_init(struct dir *d)
{
    for (int i = 0; i < DIR_STRIPES; i++) {
        pthread_mutex_init(&d->lock[i], NULL);
        d->table[i] = NULL;
    }
}

void dir_free(struct dir *d)
{
    struct dir_entry *e, *tmp;

    for (int i = 0; i < DIR_STRIPES; i++) {
        HASH_ITER (hh, d->table[i], e, tmp) {
            HASH_DEL(d->table[i], e);
            free(e);
        }
        pthread_mutex_destroy(&d->lock[i]);
    }
}

void dir_add(struct dir *d, const char *id, size_t len, int worker)
{
    unsigned s = stripe_of(id, len, DIR_STRIPES);
    struct dir_entry *e;

    pthread_mutex_lock(&d->lock[s]);
    HASH_FIND(hh, d->table[s], id, len, e);
    if (e == NULL) {
        e = xcalloc(1, sizeof *e + len + 1);
        memcpy(e->id, id, len);
        HASH_ADD_KEYPTR(hh, d->table[s], e->id, len, e);
    }
    e->mask.bits[worker / 64] |= UINT64_C(1) << (worker % 64);
    pthread_mutex_unlock(&d->lock[s]);
}

void dir_remove(struct dir *d, const char *id, size_t len, int worker)
{
    unsigned s = stripe_of(id, len, DIR_STRIPES);
    struct dir_entry *e;

    pthread_mutex_lock(&d->lock[s]);
    HASH_FIND(hh, d->table[s], id, len, e);
    if (e != NULL) {
        e->mask.bits[worker / 64] &= ~(UINT64_C(1) << (worker % 64));
        if (dir_mask_empty(&e->mask)) {
            HASH_DEL(d->table[s], e);
            free(e);
        }
    }
    pthread_mutex_unlock(&d->lock[s]);
}

size_t dir_count(struct dir *d)
{
    size_t n = 0;

    for (int i = 0; i < DIR_STRIPES; i++) {
        pthread_mutex_lock(&d->lock[i]);
        n += HASH_COUNT(d->table[i]);
        pthread_mutex_unlock(&d->lock[i]);
    }
    return n;
}

void dir_lookup(struct dir *d, const char *id, struct dir_mask *mask)
{
    size_t len = strlen(id);
    unsigned s = stripe_of(id, len, DIR_STRIPES);
    struct dir_entry *e;

    pthread_mutex_lock(&d->lock[s]);
    HASH_FIND(hh, d->table[s], id, len, e);
    if (e != NULL)
        for (size_t i = 0; i < DIR_MAX_WORKERS / 64; i++)
            mask->bits[i] |= e->mask.bits[i];
    pthread_mutex_unlock(&d->lock[s]);
}

void dir_mask_all(struct dir_mask *mask, int n)
{
    memset(mask, 0, sizeof *mask);
    for (int i = 0; i < n && i < DIR_MAX_WORKERS; i++)
        mask->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

int dir_mask_empty(const struct dir_mask *mask)
{
    for (size_t i = 0; i < DIR_MAX_WORKERS / 64; i++)
        if (mask->bits[i] != 0)
            return 0;
    return 1;
}

int dir_mask_has(const struct dir_mask *mask, int worker)
{
    return (mask->bits[worker / 64] >> (worker % 64)) & 1;
}

/*
 * pres.c -- presence across workers (see pres.h).
 *
 * Owns:       struct pres_chan and struct pres_member allocations.
 * Called by:  engine_memory.c: worker threads (join, leave) and API
 *             threads (members).
 * Invariants: each stripe's channels and their members are touched only
 *             under that stripe's mutex; lock order is pres -> dir -> cmd
 *             queue (the emit callback publishes the event: it looks up the
 *             directory and submits a job), and no thread takes a pres lock while holding
 *             either of the others.
 */
#include "pres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stripe.h"
#include "xmalloc.h"

struct pres_member {
    char *user;        /* owned */
    char *info;        /* owned: JSON object text (for events), or NULL */
    json_t *info_json; /* ref: the same, parsed once for member lists; never changed */
    size_t count;      /* the user's connections in the channel */
    UT_hash_handle hh;
};

struct pres_chan {
    char *name;                  /* owned */
    struct pres_member *members; /* owned: uthash by user */
    UT_hash_handle hh;
};

void pres_init(struct pres *p)
{
    for (int i = 0; i < PRES_STRIPES; i++) {
        pthread_mutex_init(&p->lock[i], NULL);
        p->table[i] = NULL;
    }
}

/* Free a member. */
static void pres_member_free(struct pres_member *m)
{
    free(m->user);
    free(m->info);
    json_decref(m->info_json);
    free(m);
}

void pres_free(struct pres *p)
{
    struct pres_chan *ch, *ctmp;
    struct pres_member *m, *mtmp;

    for (int i = 0; i < PRES_STRIPES; i++) {
        HASH_ITER (hh, p->table[i], ch, ctmp) {
            HASH_ITER (hh, ch->members, m, mtmp) {
                HASH_DEL(ch->members, m);
                pres_member_free(m);
            }
            HASH_DEL(p->table[i], ch);
            free(ch->name);
            free(ch);
        }
        pthread_mutex_destroy(&p->lock[i]);
    }
}

/* The member list of ch as a JSON array; ch may be NULL. Under the stripe lock. */
static json_t *pres_list(const struct pres_chan *ch, int counts)
{
    json_t *arr = json_array();
    const struct pres_member *m;

    if (ch == NULL)
        return arr;
    for (m = ch->members; m != NULL; m = m->hh.next) {
        json_t *o = json_pack("{s:s}", "user", m->user);

        if (o == NULL)
            continue;
        /* Shared, not copied: jansson's reference counts are atomic. */
        if (m->info_json != NULL)
            json_object_set(o, "info", m->info_json);
        if (counts)
            json_object_set_new(o, "connections", json_integer((json_int_t)m->count));
        json_array_append_new(arr, o);
    }
    return arr;
}

void pres_join(struct pres *p, const char *channel, const char *user, const char *info,
               pres_emit_fn emit, void *arg, json_t **members)
{
    unsigned s = stripe_of(channel, strlen(channel), PRES_STRIPES);
    struct pres_chan *ch;
    struct pres_member *m;

    pthread_mutex_lock(&p->lock[s]);
    HASH_FIND_STR(p->table[s], channel, ch);
    if (ch == NULL) {
        ch = xcalloc(1, sizeof *ch);
        ch->name = xstrdup(channel);
        HASH_ADD_KEYPTR(hh, p->table[s], ch->name, strlen(ch->name), ch);
    }
    HASH_FIND_STR(ch->members, user, m);
    if (m == NULL) {
        m = xcalloc(1, sizeof *m);
        m->user = xstrdup(user);
        m->info = info != NULL ? xstrdup(info) : NULL;
        m->info_json = info != NULL ? json_loads(info, 0, NULL) : NULL;
        HASH_ADD_KEYPTR(hh, ch->members, m->user, strlen(m->user), m);
    }
    if (m->count++ == 0)
        emit(arg, 1, channel, user, m->info);
    if (members != NULL)
        *members = pres_list(ch, 0);
    pthread_mutex_unlock(&p->lock[s]);
}

void pres_leave(struct pres *p, const char *channel, const char *user, pres_emit_fn emit, void *arg)
{
    unsigned s = stripe_of(channel, strlen(channel), PRES_STRIPES);
    struct pres_chan *ch;
    struct pres_member *m = NULL;

    pthread_mutex_lock(&p->lock[s]);
    HASH_FIND_STR(p->table[s], channel, ch);
    if (ch != NULL)
        HASH_FIND_STR(ch->members, user, m);
    if (m == NULL) {
        pthread_mutex_unlock(&p->lock[s]);
        log_msg(LOG_ERROR, "pres", "leave of %s from %s, which it never joined", user, channel);
        return;
    }
    if (--m->count == 0) {
        emit(arg, 0, channel, user, NULL);
        HASH_DEL(ch->members, m);
        pres_member_free(m);
        if (ch->members == NULL) {
            HASH_DEL(p->table[s], ch);
            free(ch->name);
            free(ch);
        }
    }
    pthread_mutex_unlock(&p->lock[s]);
}

json_t *pres_members(struct pres *p, const char *channel, int counts)
{
    unsigned s = stripe_of(channel, strlen(channel), PRES_STRIPES);
    struct pres_chan *ch;
    json_t *arr;

    pthread_mutex_lock(&p->lock[s]);
    HASH_FIND_STR(p->table[s], channel, ch);
    arr = pres_list(ch, counts);
    pthread_mutex_unlock(&p->lock[s]);
    return arr;
}

/*
 * sub.c -- one worker's channel subscriptions (see sub.h).
 *
 * Owns:       struct sub_chan and struct sub allocations.
 * Called by:  the owning worker's thread only.
 * Invariants: a channel's list is doubly linked so a connection leaving
 *             costs O(1) per subscription; a connection's own list is
 *             singly linked and short (max_subscriptions).
 */
#include "sub.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void sub_init(struct sub_table *t)
{
    t->chans = NULL;
    t->nchans = 0;
    t->nsubs = 0;
}

void sub_free(struct sub_table *t)
{
    struct sub_chan *ch, *tmp;

    HASH_ITER (hh, t->chans, ch, tmp) {
        struct sub *s = ch->subs;

        while (s != NULL) {
            struct sub *next = s->next;

            free(s);
            s = next;
        }
        HASH_DEL(t->chans, ch);
        free(ch->name);
        free(ch);
    }
    t->nchans = 0;
    t->nsubs = 0;
}

struct sub_chan *sub_find(const struct sub_table *t, const char *name, size_t len)
{
    struct sub_chan *ch;

    HASH_FIND(hh, t->chans, name, len, ch);
    return ch;
}

struct sub *sub_of_conn(struct sub *list, const char *name, size_t len)
{
    for (struct sub *s = list; s != NULL; s = s->conn_next)
        if (strlen(s->chan->name) == len && memcmp(s->chan->name, name, len) == 0)
            return s;
    return NULL;
}

struct sub *sub_add(struct sub_table *t, struct sub **list, struct conn *c, const char *name,
                    size_t len, int *appeared)
{
    struct sub_chan *ch = sub_find(t, name, len);
    struct sub *s = xcalloc(1, sizeof *s);

    *appeared = 0;
    if (ch == NULL) {
        ch = xcalloc(1, sizeof *ch);
        ch->name = xstrndup(name, len);
        HASH_ADD_KEYPTR(hh, t->chans, ch->name, len, ch);
        t->nchans++;
        *appeared = 1;
    }
    s->chan = ch;
    s->conn = c;
    s->next = ch->subs;
    if (ch->subs != NULL)
        ch->subs->prev = s;
    ch->subs = s;
    ch->nsubs++;
    s->conn_next = *list;
    *list = s;
    t->nsubs++;
    return s;
}

int sub_remove(struct sub_table *t, struct sub **list, struct sub *s)
{
    struct sub_chan *ch = s->chan;
    struct sub **pp;

    for (pp = list; *pp != NULL; pp = &(*pp)->conn_next) {
        if (*pp == s) {
            *pp = s->conn_next;
            break;
        }
    }
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        ch->subs = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    ch->nsubs--;
    t->nsubs--;
    free(s);
    if (ch->nsubs > 0)
        return 0;
    HASH_DEL(t->chans, ch);
    free(ch->name);
    free(ch);
    t->nchans--;
    return 1;
}

/*
 * site.c -- one site's shared tables (site.h).
 *
 * Owns:       struct site.
 * Called by:  main.c, at start and at exit, on the main thread.
 * Invariants: see site.h.
 */
#include "site.h"

#include <stdlib.h>

#include "xmalloc.h"

void site_init(struct site *s, const char *name)
{
    s->name = xstrdup(name);
    dir_init(&s->users);
    dir_init(&s->chans);
    pres_init(&s->pres);
    atomic_init(&s->rpc_inflight, 0);
}

void site_free(struct site *s)
{
    dir_free(&s->users);
    dir_free(&s->chans);
    pres_free(&s->pres);
    free(s->name);
    s->name = NULL;
}

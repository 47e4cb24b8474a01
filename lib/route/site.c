/*
 * site.c -- one site's name, RPC count and rates (site.h).
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
    atomic_init(&s->rpc_inflight, 0);
    rate_init(&s->published);
    rate_init(&s->delivered);
}

void site_free(struct site *s)
{
    free(s->name);
    s->name = NULL;
}

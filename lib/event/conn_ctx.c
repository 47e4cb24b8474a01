/*
 * conn_ctx.c -- what the connections of one loop share (see conn.h,
 * struct conn_ctx): the timed lists, the open array, the pending list and
 * the recycled out-queue entries.
 *
 * Owns:       what a conn_ctx owns: the read buffer, the sites' tables, the
 *             RPC context, the open array and the recycled entries.
 * Called by:  worker.c (init, a reload, free, and the lists: expiry,
 *             flushing, broadcast) and conn.c as a connection moves between
 *             states, on the loop's thread.
 * Invariants: only the loop's thread touches a conn_ctx. A conn is on at
 *             most one timed list (c->timer says which), in the open array
 *             exactly while OPEN (c->slot is its index), and on the pending
 *             list at most once (c->in_pending).
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "site.h"
#include "xmalloc.h"

#define CONN_OUT_FREE_MAX 4096 /* recycled out-queue entries a loop keeps */
#define CONN_RBUF_SIZE (64 * 1024)

void conn_ctx_init(struct conn_ctx *x, int id, struct ev_loop *loop, const struct cfg *cfg,
                   struct cmd_hub *hub, const struct conn_ops *ops, rpc_done_fn *rpc_done)
{
    memset(x, 0, sizeof *x);
    x->id = id;
    x->loop = loop;
    x->hub = hub;
    x->ops = ops;
    /* Connection ids are unique in the process: the worker in the top bits. */
    x->next_conn_id = (uint64_t)id << 48;
    x->rbuf_size = CONN_RBUF_SIZE;
    x->rbuf = xmalloc(x->rbuf_size);
    x->sites = xcalloc((size_t)hub->nsites, sizeof *x->sites);
    x->nsites = hub->nsites;
    rpc_ctx_init(&x->rpc, loop, cfg, rpc_done, x->nsites);
    for (int i = 0; i < x->nsites; i++) {
        reg_init(&x->sites[i].reg);
        sub_init(&x->sites[i].subs);
        rpc_ctx_site(&x->rpc, i, &x->sites[i].stats.rpc, &hub->sites[i].rpc_inflight);
    }
    conn_ctx_use_cfg(x, cfg);
}

void conn_ctx_use_cfg(struct conn_ctx *x, const struct cfg *cfg)
{
    x->cfg = cfg;
    x->rpc.cfg = cfg;
}

void conn_ctx_free(struct conn_ctx *x)
{
    rpc_ctx_free(&x->rpc);
    while (x->out_free != NULL) {
        struct conn_out *o = x->out_free;

        x->out_free = o->next;
        free(o);
    }
    for (int i = 0; i < x->nsites; i++) {
        reg_free(&x->sites[i].reg);
        sub_free(&x->sites[i].subs);
    }
    free(x->sites);
    free(x->open);
    free(x->rbuf);
    x->sites = NULL;
    x->open = NULL;
    x->rbuf = NULL;
}

void conn_ctx_timer_add(struct conn_ctx *x, struct conn *c, int which, ev_tstamp deadline)
{
    struct conn_list *l = which == CONN_TIMER_HANDSHAKE ? &x->handshaking : &x->closing;

    c->timer = (uint8_t)which;
    c->deadline = deadline;
    c->tnext = NULL;
    c->tprev = l->tail;
    if (l->tail != NULL)
        l->tail->tnext = c;
    else
        l->head = c;
    l->tail = c;
}

void conn_ctx_timer_remove(struct conn_ctx *x, struct conn *c)
{
    struct conn_list *l;

    if (c->timer == CONN_TIMER_NONE)
        return;
    l = c->timer == CONN_TIMER_HANDSHAKE ? &x->handshaking : &x->closing;
    if (c->tprev != NULL)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext != NULL)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tnext = c->tprev = NULL;
    c->timer = CONN_TIMER_NONE;
}

void conn_ctx_open_add(struct conn_ctx *x, struct conn *c)
{
    if (x->nopen == x->capopen) {
        x->capopen = x->capopen ? x->capopen * 2 : 64;
        x->open = xrealloc(x->open, x->capopen * sizeof *x->open);
    }
    c->slot = (uint32_t)x->nopen;
    x->open[x->nopen++] = c;
}

void conn_ctx_open_remove(struct conn_ctx *x, struct conn *c)
{
    struct conn *last = x->open[--x->nopen];

    x->open[c->slot] = last;
    last->slot = c->slot;
}

void conn_ctx_pending_add(struct conn_ctx *x, struct conn *c)
{
    if (c->in_pending)
        return;
    c->in_pending = 1;
    c->pnext = x->pending;
    x->pending = c;
}

struct conn_out *conn_ctx_out_get(struct conn_ctx *x)
{
    struct conn_out *o = x->out_free;

    if (o == NULL)
        return xmalloc(sizeof *o);
    x->out_free = o->next;
    x->nout_free--;
    return o;
}

void conn_ctx_out_put(struct conn_ctx *x, struct conn_out *o)
{
    if (x->nout_free >= CONN_OUT_FREE_MAX) {
        free(o);
        return;
    }
    o->next = x->out_free;
    x->out_free = o;
    x->nout_free++;
}

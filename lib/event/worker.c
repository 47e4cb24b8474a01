/*
 * worker.c -- event-loop threads that own the connections.
 *
 * Owns:       struct worker: its loop, listener watcher, timers, open
 *             array, timed lists, pending list, registry, stats, recycled
 *             out-queue entries and shared read buffer.
 * Called by:  main.c (lifecycle); conn.c (lists, on the same thread); other
 *             threads only through the command queue.
 * Invariants: one libev loop per thread, and only that thread touches the
 *             worker or its conns. Publishes only queue frames; the prepare
 *             watcher writes every touched conn once per loop iteration
 *             (gathering a burst of publishes into one writev) and frees
 *             dead conns, outside of any conn's own callback.
 *
 * Fan-out is bound by the kernel's cost per write, not by ours, so the
 * lever is frames per write. While flushing a broadcast to thousands of
 * conns, the worker looks at its command queue every WORKER_FLUSH_CHUNK
 * conns: a publish that arrives meanwhile is queued at once, the conns not
 * yet written carry both frames in one writev, and the publisher gets its
 * answer within a chunk's time instead of after the whole flush.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "rate.h"
#include "rpc.h"
#include "site.h"
#include "ws.h"
#include "xmalloc.h"

#define WORKER_TICK 0.1         /* seconds between timed-list checks */
#define WORKER_ACCEPT_PAUSE 0.1 /* seconds to stop accepting after EMFILE */
#define WORKER_FLUSH_CHUNK 64   /* conns written between looks at the command queue */

static void *worker_main(void *arg);
static void worker_on_accept(struct ev_loop *loop, ev_io *io, int revents);
static void worker_on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents);
static void worker_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents);
static void worker_on_tick(struct ev_loop *loop, ev_timer *t, int revents);
static void worker_on_ping(struct ev_loop *loop, ev_timer *t, int revents);
static void worker_on_wake(struct ev_loop *loop, ev_async *a, int revents);
static void worker_run_queued(struct worker *w);

#define WORKER_OF(ptr, field) ((struct worker *)((char *)(ptr)-offsetof(struct worker, field)))

/*
 * Use a config snapshot (at start, and on each reload): what the worker
 * keeps derived from it, the ping period, follows. The sites are the same
 * in every snapshot (cfg_same_sites), so conn->site stays valid.
 */
static void worker_use_cfg(struct worker *w, const struct cfg *cfg)
{
    conn_ctx_use_cfg(&w->cx, cfg);
    ev_timer_stop(w->cx.loop, &w->ping);
    if (cfg->ping_interval_ms > 0 && !w->shutting_down) {
        double iv = cfg->ping_interval_ms / 1000.0;

        ev_timer_set(&w->ping, iv, iv);
        ev_timer_start(w->cx.loop, &w->ping);
    }
}

struct worker *worker_new(int id, const struct cfg *cfg, struct cmd_hub *hub,
                          const struct conn_ops *ops, rpc_done_fn *rpc_done, int lfd, char **cause)
{
    struct worker *w = xcalloc(1, sizeof *w);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);

    if (loop == NULL) {
        *cause = xasprintf("worker %d: cannot create an event loop", id);
        free(w);
        return NULL;
    }
    w->own_lfd = lfd < 0;
    w->lfd = lfd >= 0 ? lfd : net_listen(cfg->listen, cfg->listen_mode, 1, cause);
    if (w->lfd < 0) {
        ev_loop_destroy(loop);
        free(w);
        return NULL;
    }
    conn_ctx_init(&w->cx, id, loop, cfg, hub, ops, rpc_done);
    w->ping_msg = msg_new(WS_OP_PING, NULL, 0);
    ev_io_init(&w->accept_io, worker_on_accept, w->lfd, EV_READ);
    ev_io_start(w->cx.loop, &w->accept_io);
    ev_init(&w->accept_pause, worker_on_accept_pause);
    ev_prepare_init(&w->prepare, worker_on_prepare);
    ev_prepare_start(w->cx.loop, &w->prepare);
    ev_timer_init(&w->tick, worker_on_tick, WORKER_TICK, WORKER_TICK);
    ev_timer_start(w->cx.loop, &w->tick);
    ev_init(&w->ping, worker_on_ping);
    worker_use_cfg(w, cfg);
    cmd_queue_init(&w->queue, w->cx.loop, worker_on_wake);
    ev_async_start(w->cx.loop, &w->queue.wake);
    return w;
}

int worker_start(struct worker *w, char **cause)
{
    int r = pthread_create(&w->thread, NULL, worker_main, w);

    if (r != 0) {
        *cause = xasprintf("worker %d: pthread_create: %s", w->cx.id, strerror(r));
        return -1;
    }
    return 0;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

/* Free every conn still held, whatever its state. */
static void worker_free_conns(struct worker *w)
{
    while (w->cx.nopen > 0)
        conn_kill(w->cx.open[w->cx.nopen - 1]);
    while (w->cx.handshaking.head != NULL)
        conn_kill(w->cx.handshaking.head);
    while (w->cx.closing.head != NULL)
        conn_kill(w->cx.closing.head);
    while (w->cx.pending != NULL) {
        struct conn *c = w->cx.pending;

        w->cx.pending = c->pnext;
        c->in_pending = 0;
        if (c->state == CONN_DEAD)
            conn_free(c);
    }
}

/*
 * Finish jobs that arrived after the loop ended (other workers' presence
 * events while shutting down): detached ones are freed by their last worker.
 */
static void worker_drop_queued(struct worker *w)
{
    struct cmd_node *node = cmd_queue_take(&w->queue);

    while (node != NULL) {
        struct cmd_node *next = node->next;

        /* An engine's answer still owns what it carries: let it free that. */
        if (node->job->type == CMD_RUN)
            node->job->run(node->job->run_arg);
        cmd_job_done(node->job);
        node = next;
    }
}

void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    worker_free_conns(w);
    worker_drop_queued(w);
    ev_io_stop(w->cx.loop, &w->accept_io);
    ev_timer_stop(w->cx.loop, &w->accept_pause);
    ev_prepare_stop(w->cx.loop, &w->prepare);
    ev_timer_stop(w->cx.loop, &w->tick);
    ev_timer_stop(w->cx.loop, &w->ping);
    ev_async_stop(w->cx.loop, &w->queue.wake);
    cmd_queue_destroy(&w->queue);
    if (w->own_lfd)
        close(w->lfd);
    conn_ctx_free(&w->cx);
    msg_unref(w->ping_msg);
    ev_loop_destroy(w->cx.loop);
    free(w);
}

/* The thread: run the loop until shutdown has finished. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;

    eng_bind(w->cx.hub->engine, w->cx.id);
    ev_run(w->cx.loop, 0);
    return NULL;
}

/* Accept what is waiting; on EMFILE, pause accepting briefly. */
static void worker_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = WORKER_OF(io, accept_io);

    for (int i = 0; i < 64 && !w->shutting_down; i++) {
        int fd = net_accept(w->lfd);

        if (fd >= 0) {
            conn_accept(&w->cx, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        w->cx.stats.accept_errors++;
        if (errno == EMFILE || errno == ENFILE) {
            log_msg(LOG_WARN, "net", "worker %d: accept: %s; pausing accepts", w->cx.id,
                    strerror(errno));
            ev_io_stop(loop, &w->accept_io);
            ev_timer_set(&w->accept_pause, WORKER_ACCEPT_PAUSE, 0);
            ev_timer_start(loop, &w->accept_pause);
        } else if (errno != ECONNABORTED) {
            log_msg(LOG_WARN, "net", "worker %d: accept: %s", w->cx.id, strerror(errno));
        }
        return;
    }
}

/* Resume accepting after an EMFILE pause. */
static void worker_on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = WORKER_OF(t, accept_pause);

    if (!w->shutting_down)
        ev_io_start(loop, &w->accept_io);
}

/*
 * Before polling: write every conn with queued frames, free dead ones. The
 * list is taken whole and worked through in rounds: a conn that a publish
 * run mid-flush puts back goes to the next round, behind the conns still
 * waiting in this one, so none is starved while publishes keep coming.
 */
static void worker_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = WORKER_OF(p, prepare);
    unsigned n = 0;
    struct conn *c, *round;

    while ((round = w->cx.pending) != NULL) {
        w->cx.pending = NULL;
        while ((c = round) != NULL) {
            round = c->pnext;
            c->in_pending = 0;
            if (c->state == CONN_DEAD)
                conn_free(c);
            else
                conn_service(c);
            if (++n % WORKER_FLUSH_CHUNK == 0)
                worker_run_queued(w);
        }
    }
    /* The disconnect hooks of the closed connections still reach PHP (until the deadline). */
    if (w->shutting_down && w->cx.nconns == 0 && w->cx.rpc.calls == NULL)
        ev_break(loop, EVBREAK_ALL);
}

/* Expire the heads of a timed list whose deadlines have passed. */
static void worker_expire(struct conn_list *l, ev_tstamp now)
{
    while (l->head != NULL && l->head->deadline <= now)
        conn_expire(l->head);
}

/* Timed lists, and the end of a shutdown that took too long. */
static void worker_on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = WORKER_OF(t, tick);
    ev_tstamp now = ev_now(loop);

    worker_expire(&w->cx.handshaking, now);
    worker_expire(&w->cx.closing, now);
    if (w->shutting_down && now >= w->shutdown_deadline) {
        log_msg(LOG_WARN, "worker", "worker %d: shutdown timeout, dropping %zu connections",
                w->cx.id, w->cx.nconns);
        worker_free_conns(w);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* A ping round: drop conns silent since the last round, ping the rest. */
static void worker_on_ping(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = WORKER_OF(t, ping);

    for (size_t i = 0; i < w->cx.nopen;) {
        struct conn *c = w->cx.open[i];

        if (c->ping_out && !c->got_rx) {
            log_msg(LOG_DEBUG, "conn", "conn=%llu no answer to ping", (unsigned long long)c->id);
            conn_kill(c); /* moves the last conn into slot i */
            continue;
        }
        c->got_rx = 0;
        c->ping_out = 1;
        conn_send(c, w->ping_msg);
        i++;
    }
}

/* Queue a channel item to the channel's subscribers here. */
static uint64_t worker_publish_channel(struct worker *w, int site, const struct eng_item *it)
{
    struct sub_chan *ch = sub_find(&w->cx.sites[site].subs, it->channel, strlen(it->channel));
    uint64_t n = 0;

    if (ch == NULL)
        return 0;
    for (struct sub *s = ch->subs; s != NULL; s = s->next) {
        if (s->conn->id == it->skip_conn)
            continue;
        /* A replay on its way may not have it: it is read again after that (client.c). */
        if (it->offset != 0 && s->replaying) {
            if (it->offset > s->skipped)
                s->skipped = it->offset;
            continue;
        }
        /* Already sent by a replay (hist.h): no duplicate. */
        if (it->offset != 0 && it->offset <= s->last)
            continue;
        if (it->offset != 0)
            s->last = it->offset;
        n += (uint64_t)conn_send(s->conn, it->msg);
    }
    return n;
}

/* A stream may have a gap (engine.h): each of its holders here catches up. */
static void worker_catch_up(struct worker *w, int site, const struct eng_item *it)
{
    struct sub_chan *ch;
    struct reg_user *user;

    if (it->channel != NULL) {
        ch = sub_find(&w->cx.sites[site].subs, it->channel, strlen(it->channel));
        for (struct sub *s = ch != NULL ? ch->subs : NULL; s != NULL; s = s->next)
            w->cx.ops->on_gap(s->conn, 'c', it->channel, it->epoch);
        return;
    }
    user = reg_find(&w->cx.sites[site].reg, it->users[0], strlen(it->users[0]));
    for (struct reg_link *l = user != NULL ? user->links : NULL; l != NULL; l = l->next)
        w->cx.ops->on_gap(conn_from_link(l), 'u', it->users[0], it->epoch);
}

/* Queue one publish item to its targets in site; returns the conns it reached. */
static uint64_t worker_publish(struct worker *w, int site, const struct eng_item *it)
{
    uint64_t n = 0;

    if (it->catch_up) {
        worker_catch_up(w, site, it);
        return 0;
    }
    if (it->channel != NULL)
        return worker_publish_channel(w, site, it);
    if (it->broadcast) {
        for (size_t i = 0; i < w->cx.nopen; i++)
            if (w->cx.open[i]->site == site)
                n += (uint64_t)conn_send(w->cx.open[i], it->msg);
        return n;
    }
    for (size_t u = 0; u < it->nusers; u++) {
        struct reg_user *user =
            reg_find(&w->cx.sites[site].reg, it->users[u], strlen(it->users[u]));
        /* Numbered: the user's own frame; none when the user had no connection at
         * routing: one made since came after this message (its position is past it). */
        struct msg *m = it->frames != NULL ? it->frames[u] : it->msg;
        uint64_t off = it->offsets != NULL ? it->offsets[u] : 0;

        if (user == NULL || m == NULL)
            continue;
        for (struct reg_link *l = user->links; l != NULL; l = l->next) {
            struct conn *c = conn_from_link(l);

            if (off != 0 && c->user_replaying) {
                if (off > c->user_skipped)
                    c->user_skipped = off;
                continue;
            }
            if (off != 0 && off <= c->user_last)
                continue;
            if (off != 0)
                c->user_last = off;
            n += (uint64_t)conn_send(c, m);
        }
    }
    return n;
}

/* Close every conn with 1001 and stop accepting; the loop ends when all are gone. */
static void worker_shutdown(struct worker *w)
{
    w->shutting_down = 1;
    w->shutdown_deadline = ev_now(w->cx.loop) + w->cx.cfg->shutdown_timeout_ms / 1000.0;
    ev_io_stop(w->cx.loop, &w->accept_io);
    ev_timer_stop(w->cx.loop, &w->accept_pause);
    ev_timer_stop(w->cx.loop, &w->ping);
    while (w->cx.handshaking.head != NULL)
        conn_kill(w->cx.handshaking.head);
    while (w->cx.nopen > 0)
        conn_close(w->cx.open[w->cx.nopen - 1], WS_CLOSE_GOING_AWAY);
}

/* Queue every item of a publish job, then add up what was reached under one lock. */
static void worker_run_publish(struct worker *w, struct cmd_job *job)
{
    uint64_t local[16], *n = job->nitems <= 16 ? local : xcalloc(job->nitems, sizeof *n);
    uint64_t total = 0;
    struct stats *st = &w->cx.sites[job->site].stats;

    for (size_t i = 0; i < job->nitems; i++) {
        const struct eng_item *it = &job->items[i];

        n[i] = worker_publish(w, job->site, it);
        total += n[i];
        st->delivered_kind[stats_kind_of(it->channel != NULL, it->broadcast)] += n[i];
    }
    st->delivered += total;
    if (total > 0)
        rate_add(&w->cx.hub->sites[job->site].delivered, total, rate_now());
    pthread_mutex_lock(&job->lock);
    for (size_t i = 0; i < job->nitems; i++)
        job->delivered[job->items[i].group] += n[i];
    pthread_mutex_unlock(&job->lock);
    if (n != local)
        free(n);
}

/* Add the job's site's counters, and those no site owns, to a stats job. */
static void worker_add_stats(struct worker *w, struct cmd_job *job)
{
    struct conn_ctx_site *ws = &w->cx.sites[job->site];

    ws->stats.subscriptions = ws->subs.nsubs;
    pthread_mutex_lock(&job->lock);
    stats_add(&job->stats, &ws->stats);
    stats_add(&job->unrouted, &w->cx.stats);
    pthread_mutex_unlock(&job->lock);
}

/* Run one job for this worker and report it done. */
static void worker_run(struct worker *w, struct cmd_job *job)
{
    switch (job->type) {
    case CMD_PUBLISH: worker_run_publish(w, job); break;
    case CMD_STATS: worker_add_stats(w, job); break;
    case CMD_COUNT_USER: {
        const char *id = job->items[0].users[0];
        struct reg_user *u = reg_find(&w->cx.sites[job->site].reg, id, strlen(id));

        pthread_mutex_lock(&job->lock);
        job->delivered[0] += u != NULL ? u->nlinks : 0;
        pthread_mutex_unlock(&job->lock);
        break;
    }
    case CMD_SHUTDOWN: worker_shutdown(w); break;
    case CMD_RELOAD: worker_use_cfg(w, job->cfg); break;
    case CMD_RUN: job->run(job->run_arg); break;
    }
    cmd_job_done(job);
}

/* Jobs arrived from another thread. */
static void worker_on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    worker_run_queued(WORKER_OF(a, queue.wake));
}

/* Run every job waiting in the queue, oldest first. */
static void worker_run_queued(struct worker *w)
{
    struct cmd_node *node = cmd_queue_take(&w->queue);

    while (node != NULL) {
        /* The node lives in the job, which its sender frees once done. */
        struct cmd_node *next = node->next;

        worker_run(w, node->job);
        node = next;
    }
}

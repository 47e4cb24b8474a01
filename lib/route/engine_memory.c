/*
 * engine_memory.c -- the memory engine (engine.h): one process's tables.
 * Per site, the directory of which workers hold each user and channel
 * (dir.c) and the presence members (pres.c); across sites, the history
 * (hist.c). Every operation answers before it returns.
 *
 * Owns:       struct mem_engine, each site's directories and presence;
 *             the frames and history bodies a publish makes, until the
 *             job goes to deliver. Not the history: main.c's.
 * Called by:  any thread, through engine.h.
 * Invariants: a publish locks the history stripes its streams live in, in
 *             increasing order, and holds them until the job is handed to
 *             deliver; no other lock is held on entry. Under them each
 *             user's connections are looked up in the directory after its
 *             offset is handed out: a connection that registered before is
 *             found (and gets the frame), one that registers after reads
 *             the stream's position under the same lock, after this offset,
 *             and skips it (worker.c), so none is missed or served twice.
 *             Presence events run under the channel's presence stripe lock
 *             (pres.h), which orders them; they take the directory's and
 *             the queues' locks only, never a history stripe.
 *
 * A message to many users is kept once, as one body shared by every user's
 * entry (hist.h). A user's frame, which carries that user's id, is made
 * here only for a user the directory shows online, once for all the
 * workers holding the user; an offline user costs an entry, no frame.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "pres.h"
#include "proto.h"
#include "xmalloc.h"

struct mem_site {
    char *name;       /* owned: as in the config */
    struct dir users; /* which workers hold which users */
    struct dir chans; /* which workers hold which channels */
    struct pres pres; /* presence members */
};

struct mem_engine {
    struct engine e;        /* first: the engine.h view */
    struct hist *hist;      /* borrowed */
    struct mem_site *sites; /* owned: one per configured site */
    int nsites;
    int nworkers;
};

static struct mem_engine *mem_of(struct engine *e)
{
    return (struct mem_engine *)e;
}

/* OR into mask the workers holding any target of p. */
static void mem_route(struct mem_engine *m, const struct eng_pub *p, struct dir_mask *mask)
{
    struct mem_site *site = &m->sites[p->site];

    memset(mask, 0, sizeof *mask);
    for (size_t i = 0; i < p->nitems; i++) {
        const struct eng_item *it = &p->items[i];

        if (it->broadcast) {
            dir_mask_all(mask, m->nworkers);
            return;
        }
        if (it->channel != NULL)
            dir_lookup(&site->chans, it->channel, mask);
        for (size_t u = 0; u < it->nusers; u++)
            dir_lookup(&site->users, it->users[u], mask);
    }
}

/* Mark the stripes of every stream p publishes to. */
static void mem_stripes(struct mem_engine *m, const struct eng_pub *p,
                        unsigned char used[HIST_STRIPES])
{
    const char *site = m->sites[p->site].name;
    char key[HIST_KEY_MAX];

    for (size_t i = 0; i < p->nitems; i++) {
        const struct eng_item *it = &p->items[i];

        if (it->channel != NULL)
            used[hist_stripe_of(hist_key(key, sizeof key, site, 'c', it->channel))] = 1;
        for (size_t u = 0; u < it->nusers; u++)
            used[hist_stripe_of(hist_key(key, sizeof key, site, 'u', it->users[u]))] = 1;
    }
}

/* Number a message to users, each in its own stream, and make the online users' frames. */
static void mem_number_users(struct mem_engine *m, int site, struct eng_item *it,
                             struct hist_body *body, double now, struct dir_mask *mask)
{
    struct mem_site *s = &m->sites[site];
    char key[HIST_KEY_MAX], id[HIST_ID_MAX];
    struct dir_mask one;

    it->offsets = xmalloc(it->nusers * sizeof *it->offsets);
    it->frames = xcalloc(it->nusers, sizeof *it->frames);
    for (size_t u = 0; u < it->nusers; u++) {
        hist_key(key, sizeof key, s->name, 'u', it->users[u]);
        it->offsets[u] = hist_publish(m->hist, site, key, body, now, id);
        memset(&one, 0, sizeof one);
        dir_lookup(&s->users, it->users[u], &one);
        if (dir_mask_empty(&one))
            continue;
        it->frames[u] = proto_text_frame(body->text, id);
        for (size_t w = 0; w < sizeof one.bits / sizeof one.bits[0]; w++)
            mask->bits[w] |= one.bits[w];
    }
}

/* Number and keep every message of p, in place; its stripes are locked. Fills mask. */
static void mem_number(struct mem_engine *m, struct eng_pub *p, struct dir_mask *mask)
{
    struct mem_site *site = &m->sites[p->site];
    char key[HIST_KEY_MAX], id[HIST_ID_MAX];
    double now = hist_clock();

    memset(mask, 0, sizeof *mask);
    for (size_t i = 0; i < p->nitems; i++) {
        struct eng_item *it = &p->items[i];
        struct hist_body *body;

        it->group = i;
        if (it->broadcast) {
            it->msg = proto_text_frame(p->texts[i], NULL);
            dir_mask_all(mask, m->nworkers);
            continue;
        }
        /* The history keeps the text itself: no copy. */
        body = hist_body_new(p->texts[i], strlen(p->texts[i]));
        p->texts[i] = NULL;
        if (it->channel != NULL) {
            hist_key(key, sizeof key, site->name, 'c', it->channel);
            it->offset = hist_publish(m->hist, p->site, key, body, now, id);
            it->msg = proto_text_frame(body->text, id);
            dir_lookup(&site->chans, it->channel, mask);
        } else {
            mem_number_users(m, p->site, it, body, now, mask);
        }
        hist_body_unref(body);
    }
}

/* Number, keep and hand out under the stripes of p's streams. */
static void mem_publish_kept(struct mem_engine *m, struct eng_pub *p)
{
    unsigned char used[HIST_STRIPES] = {0};
    struct dir_mask mask;

    mem_stripes(m, p, used);
    for (unsigned s = 0; s < HIST_STRIPES; s++)
        if (used[s])
            hist_lock(m->hist, s);
    mem_number(m, p, &mask);
    m->e.deliver(m->e.arg, p->job, &mask, p->detached);
    for (unsigned s = 0; s < HIST_STRIPES; s++)
        if (used[s])
            hist_unlock(m->hist, s);
}

/* eng_ops.publish */
static void mem_publish(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg)
{
    struct mem_engine *m = mem_of(e);
    struct dir_mask mask;

    if (p->texts != NULL && e->history) {
        mem_publish_kept(m, p);
    } else {
        /* No ids: one frame per message, as it is. */
        for (size_t i = 0; p->texts != NULL && i < p->nitems; i++) {
            p->items[i].msg = proto_text_frame(p->texts[i], NULL);
            p->items[i].group = i;
        }
        mem_route(m, p, &mask);
        e->deliver(e->arg, p->job, &mask, p->detached);
    }
    if (done != NULL)
        done(arg, ENG_OK);
}

/* The directory a stream's holders are in. */
static struct dir *mem_dir(struct mem_engine *m, const struct eng_stream *s)
{
    return s->kind == 'u' ? &m->sites[s->site].users : &m->sites[s->site].chans;
}

/* eng_ops.hold */
static void mem_hold(struct engine *e, const struct eng_stream *s, int worker, int held)
{
    struct dir *d = mem_dir(mem_of(e), s);

    if (held)
        dir_add(d, s->name, strlen(s->name), worker);
    else
        dir_remove(d, s->name, strlen(s->name), worker);
}

/* eng_ops.since: hist_since on s's key; the items are unref'd after done. */
static void mem_since(struct engine *e, const struct eng_stream *s, const char *since,
                      eng_since_fn *done, void *arg)
{
    struct mem_engine *m = mem_of(e);
    char key[HIST_KEY_MAX];
    struct eng_since r = {0};

    hist_key(key, sizeof key, m->sites[s->site].name, s->kind, s->name);
    r.ok = hist_since(m->hist, s->site, key, since, &r.items, &r.n, &r.last, r.id);
    done(arg, ENG_OK, &r);
    for (size_t i = 0; i < r.n; i++)
        hist_body_unref(r.items[i].body);
    free(r.items);
}

/* eng_ops.id: one epoch for the whole process. */
static void mem_id(struct engine *e, const struct eng_stream *s, uint64_t offset, char *id)
{
    (void)s;
    hist_id(mem_of(e)->hist, offset, id);
}

/* What pres's emit callback needs to reach the engine's event callback. */
struct mem_event {
    struct engine *e;
    int site;
};

/* pres_emit_fn: under the channel's presence lock. */
static void mem_emit(void *arg, int join, const char *channel, const char *user, const char *info)
{
    struct mem_event *ev = arg;

    ev->e->event(ev->e->arg, ev->site, join, channel, user, info);
}

/* eng_ops.join */
static void mem_join(struct engine *e, const struct eng_stream *ch, const char *user,
                     const char *info, eng_members_fn *done, void *arg)
{
    struct mem_event ev = {e, ch->site};
    json_t *members = NULL;

    pres_join(&mem_of(e)->sites[ch->site].pres, ch->name, user, info, mem_emit, &ev,
              done != NULL ? &members : NULL);
    if (done != NULL)
        done(arg, ENG_OK, members);
}

/* eng_ops.leave */
static void mem_leave(struct engine *e, const struct eng_stream *ch, const char *user)
{
    struct mem_event ev = {e, ch->site};

    pres_leave(&mem_of(e)->sites[ch->site].pres, ch->name, user, mem_emit, &ev);
}

/* eng_ops.members */
static void mem_members(struct engine *e, const struct eng_stream *ch, int counts,
                        eng_members_fn *done, void *arg)
{
    done(arg, ENG_OK, pres_members(&mem_of(e)->sites[ch->site].pres, ch->name, counts));
}

/* eng_ops.online: the directory knows the workers; the workers count the connections. */
static void mem_online(struct engine *e, int site, const char *user, eng_online_fn *done, void *arg)
{
    struct eng_online r;

    memset(&r, 0, sizeof r);
    dir_lookup(&mem_of(e)->sites[site].users, user, &r.local);
    done(arg, ENG_OK, &r);
}

/* eng_ops.counts */
static void mem_counts(struct engine *e, int site, eng_counts_fn *done, void *arg)
{
    struct mem_engine *m = mem_of(e);
    struct eng_counts r;

    r.users = dir_count(&m->sites[site].users);
    r.channels = dir_count(&m->sites[site].chans);
    hist_stats(m->hist, site, &r.history);
    done(arg, ENG_OK, &r);
}

/* eng_ops.free */
static void mem_free(struct engine *e)
{
    struct mem_engine *m = mem_of(e);

    for (int i = 0; i < m->nsites; i++) {
        dir_free(&m->sites[i].users);
        dir_free(&m->sites[i].chans);
        pres_free(&m->sites[i].pres);
        free(m->sites[i].name);
    }
    free(m->sites);
    free(m);
}

static const struct eng_ops mem_ops = {
    .name = "memory",
    .publish = mem_publish,
    .hold = mem_hold,
    .since = mem_since,
    .id = mem_id,
    .join = mem_join,
    .leave = mem_leave,
    .members = mem_members,
    .online = mem_online,
    .counts = mem_counts,
    .free = mem_free,
};

struct engine *eng_memory_new(struct hist *hist, int nsites, const char *const *names, int nworkers,
                              eng_deliver_fn *deliver, eng_event_fn *event, void *arg)
{
    struct mem_engine *m = xcalloc(1, sizeof *m);

    m->e.ops = &mem_ops;
    m->e.history = hist_on(hist);
    m->e.deliver = deliver;
    m->e.event = event;
    m->e.arg = arg;
    m->hist = hist;
    m->nworkers = nworkers;
    m->nsites = nsites;
    m->sites = xcalloc((size_t)nsites, sizeof *m->sites);
    for (int i = 0; i < nsites; i++) {
        m->sites[i].name = xstrdup(names[i]);
        dir_init(&m->sites[i].users);
        dir_init(&m->sites[i].chans);
        pres_init(&m->sites[i].pres);
    }
    return &m->e;
}

/*
 * engine_redis.c -- the Redis engine (engine.h): several Herald nodes
 * share one Redis, and with it their messages, history and numbering.
 *
 * A publish is one Lua script per message (rhist.c): it numbers the
 * message in each of its streams, keeps it, and PUBLISHes it on each
 * stream's pub/sub channel, so ids are gap-free and in order across every
 * node. A node SUBSCRIBEs only to the streams it holds (a user with a
 * connection here, a channel with a subscriber here), and to its sites'
 * broadcast channels; what arrives is handed to the local workers that
 * hold the stream, as the memory engine hands out a local publish. The
 * publishing node gets its own message back the same way: there is one
 * path to a connection, whoever published.
 *
 * Owns:       struct red_engine: the engine's thread and loop, its two
 *             links (commands, and pub/sub), the request queue, the table
 *             of streams held here (with each one's epoch, for ids), the
 *             table of pub/sub channels and their state, and each site's
 *             local directories and presence (memory's, for now).
 * Called by:  any thread, through engine.h; the links only on the
 *             engine's thread.
 * Invariants: Redis is touched only on the engine's thread; callers hand
 *             it requests through a locked queue and an ev_async, in
 *             order, so a hold's SUBSCRIBE is queued before the same
 *             worker's replay. A replay of a stream waits until this
 *             node's subscription to it has taken effect: a message is
 *             then either in what the replay reads or arrives by pub/sub
 *             (or both; the worker skips what it has sent), never
 *             neither. Answers to a worker go to that worker's loop
 *             through post; to a thread without a loop (the API), from the
 *             engine's thread. Pub/sub messages and answers to one worker
 *             travel the same queue, so they stay in the order they left.
 *             While either link is down the engine is unavailable: a
 *             publish is refused at once, never accepted and dropped.
 */
#include "engine_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "proto.h"
#include "xmalloc.h"

#define RED_BACKOFF_MIN 0.1    /* seconds before the first reconnect */
#define RED_BACKOFF_MAX 2.0    /* the longest wait between reconnects */
#define RED_META_TTL_MIN 86400 /* a stream's numbering outlives its messages by a day at least */

static struct red_engine *red_of(struct engine *e)
{
    return (struct red_engine *)e;
}

static void red_run_req(struct red_engine *r, struct red_req *q);
static void red_online_run(struct red_engine *r, struct red_req *q);
static void red_since_saw(struct red_engine *r, const struct red_req *q, const char *id,
                          uint64_t last, const char *old);

/* The worker the calling thread is (eng_bind), or -1: a thread without a loop. */
static __thread int red_worker = -1;

/* -- answers ------------------------------------------------------------ */

void red_req_free(struct red_req *q)
{
    for (size_t i = 0; q->texts != NULL && i < q->nitems; i++)
        free(q->texts[i]);
    free(q->texts);
    free(q->name);
    free(q->since);
    free(q->user);
    free(q->info);
    free(q);
}

/* Run a's callback (on the caller's thread) and free it. */
static void red_answer_run(void *arg)
{
    struct red_answer *a = arg;
    struct red_req *q = a->req;

    switch (q->type) {
    case RED_PUBLISH:
        if (q->done != NULL)
            q->done(q->arg, a->err);
        break;
    case RED_SINCE:
        q->since_done(q->arg, a->err, a->err == ENG_OK ? &a->since : NULL);
        for (size_t i = 0; i < a->since.n; i++)
            hist_body_unref(a->since.items[i].body);
        free(a->since.items);
        break;
    case RED_JOIN:
    case RED_MEMBERS:
        if (q->members_done != NULL)
            q->members_done(q->arg, a->err, a->err == ENG_OK ? a->members : NULL);
        else
            json_decref(a->members);
        break;
    case RED_ONLINE: q->online_done(q->arg, a->err, &a->online); break;
    default: break;
    }
    red_req_free(q);
    free(a);
}

/* Send a to its caller: its worker's loop, or here for a thread that waits. */
void red_answer_send(struct red_engine *r, struct red_answer *a)
{
    int stopped;

    pthread_mutex_lock(&r->lock);
    stopped = r->stopped;
    pthread_mutex_unlock(&r->lock);
    if (a->req->worker >= 0 && !stopped)
        r->e.post(r->e.arg, a->req->worker, red_answer_run, a);
    else
        red_answer_run(a);
}

/* Answer q with err alone. */
void red_answer_err(struct red_engine *r, struct red_req *q, int err)
{
    struct red_answer *a = xcalloc(1, sizeof *a);

    a->req = q;
    a->err = err;
    red_answer_send(r, a);
}

/* -- the request queue -------------------------------------------------- */

/* red_queue with r's lock held. */
static int red_queue_locked(struct red_engine *r, struct red_req *q)
{
    q->eng = r;
    if (r->stopped)
        return -1;
    if (r->tail != NULL)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    return 0;
}

/* Queue q for the engine's thread; 0, or -1 (q untouched) once stopped. */
static int red_queue(struct red_engine *r, struct red_req *q)
{
    int queued;

    pthread_mutex_lock(&r->lock);
    queued = red_queue_locked(r, q);
    pthread_mutex_unlock(&r->lock);
    if (queued != 0)
        return -1;
    ev_async_send(r->loop, &r->wake);
    return 0;
}

/* ev_async: run what the callers queued, in order. */
static void red_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    struct red_engine *r = w->data;
    struct red_req *q;

    pthread_mutex_lock(&r->lock);
    q = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (q != NULL) {
        struct red_req *next = q->next;

        q->next = NULL;
        red_run_req(r, q);
        q = next;
    }
}

/* -- names -------------------------------------------------------------- */

/* The pub/sub channel of a stream: "<prefix>{<site>/<kind>:<name>}" (malloc'd). */
char *red_channel(const struct red_engine *r, int site, char kind, const char *name)
{
    if (kind == 'b')
        return xasprintf("%s{%s}:b", r->prefix, r->sites[site].name);
    if (kind == 'p')
        return xasprintf("%snode:%s", r->prefix, r->node);
    return xasprintf("%s{%s/%c:%s}", r->prefix, r->sites[site].name, kind, name);
}

/* A stream as rhist names it. */
static struct rhist_stream red_stream(const struct red_engine *r, int site, char kind,
                                      const char *name)
{
    int meta_ttl = r->history_ttl > RED_META_TTL_MIN ? r->history_ttl : RED_META_TTL_MIN;

    return (struct rhist_stream){r->prefix,       r->sites[site].name, kind,    name,
                                 r->history_size, r->history_ttl,      meta_ttl};
}

/* The holds table's key for a stream (malloc'd). */
static char *red_hold_key(int site, char kind, const char *name)
{
    return xasprintf("%d/%c:%s", site, kind, name);
}

/*
 * Remember a stream's epoch (from an id "<epoch>:<offset>") for eng_id;
 * returns whether it replaced another one.
 */
int red_note_epoch(struct red_engine *r, int site, char kind, const char *name, const char *id,
                   char *old)
{
    char *key = red_hold_key(site, kind, name);
    struct red_hold *h;
    int changed = 0;

    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->holds, key, h);
    if (h != NULL && strlen(id) > RHIST_EPOCH_LEN && id[RHIST_EPOCH_LEN] == ':') {
        changed = h->epoch[0] != '\0' && memcmp(h->epoch, id, RHIST_EPOCH_LEN) != 0;
        if (changed && old != NULL)
            memcpy(old, h->epoch, sizeof h->epoch);
        memcpy(h->epoch, id, RHIST_EPOCH_LEN);
        h->epoch[RHIST_EPOCH_LEN] = '\0';
    }
    pthread_mutex_unlock(&r->lock);
    free(key);
    return changed;
}

/* The stream's epoch as this node last saw it into epoch ("" when none). */
void red_hold_epoch(struct red_engine *r, int site, char kind, const char *name, char *epoch)
{
    char *key = red_hold_key(site, kind, name);
    struct red_hold *h;

    epoch[0] = '\0';
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->holds, key, h);
    if (h != NULL)
        memcpy(epoch, h->epoch, sizeof h->epoch);
    pthread_mutex_unlock(&r->lock);
    free(key);
}

/* -- publishing --------------------------------------------------------- */

/* One script of a publish request: its messages are items first.. of the request. */
struct red_script {
    struct red_req *q;
    size_t first;
};

/* rhist_batch_fn: a script's messages are published (every one of them) or not (none). */
static void red_published(void *arg, int err, const struct rhist_result *res, size_t n)
{
    struct red_script *s = arg;
    struct red_req *q = s->q;
    struct red_engine *r = q->eng;
    struct dir_mask none;

    if (err != RLINK_OK)
        q->failed = 1;
    for (size_t i = 0; err == RLINK_OK && i < n && s->first + i < q->nitems; i++)
        q->items[s->first + i].reached = res[i].reached;
    free(s);
    if (--q->scripts > 0)
        return;
    if (q->failed) {
        red_answer_err(r, q, ENG_E_UNAVAILABLE);
        return;
    }
    /* The workers get the messages by pub/sub, this node's too; the job itself reaches none. */
    memset(&none, 0, sizeof none);
    r->e.deliver(r->e.arg, q->job, &none, q->detached);
    red_answer_err(r, q, ENG_OK);
}

/* The tag a message carries: who published it, so a channel can leave that connection out. */
static void red_tag(const struct red_engine *r, const struct eng_item *it, char *tag, size_t size)
{
    if (it->channel != NULL && it->skip_conn != 0)
        snprintf(tag, size, "%s/%" PRIu64, r->node, it->skip_conn);
    else
        snprintf(tag, size, "-");
}

/* One message of a batch, and what its rhist_pub points at. */
struct red_msg {
    struct rhist_stream *streams; /* owned */
    char **chans;                 /* owned: one per stream, or the broadcast channel */
    size_t nchans;
    char tag[160];
};

/* Fill m and p for item it of q (its text is text). */
static void red_msg_make(struct red_engine *r, const struct red_req *q, const struct eng_item *it,
                         const char *text, struct red_msg *m, struct rhist_pub *p)
{
    size_t n = it->broadcast ? 0 : it->channel != NULL ? 1 : it->nusers;

    m->streams = xcalloc(n + 1, sizeof *m->streams);
    m->chans = xcalloc(n + 1, sizeof *m->chans);
    m->nchans = it->broadcast ? 1 : n;
    for (size_t k = 0; k < n; k++) {
        const char *name = it->channel != NULL ? it->channel : it->users[k];
        char kind = it->channel != NULL ? 'c' : 'u';

        m->streams[k] = red_stream(r, q->site, kind, name);
        m->chans[k] = red_channel(r, q->site, kind, name);
    }
    if (it->broadcast)
        m->chans[0] = red_channel(r, q->site, 'b', "");
    red_tag(r, it, m->tag, sizeof m->tag);
    *p = (struct rhist_pub){m->streams,  (const char *const *)m->chans, n, NULL, 0, m->tag, text,
                            strlen(text)};
    if (it->broadcast || !r->e.history) {
        /* Unnumbered: published on each channel as it is. */
        p->plain = p->pubsub;
        p->nplain = m->nchans;
        p->pubsub = NULL;
        p->n = 0;
    }
}

/* RED_PUBLISH on the engine's thread: the whole request is one script, all or nothing. */
static void red_publish_run(struct red_engine *r, struct red_req *q)
{
    struct red_msg *m = xcalloc(q->nitems, sizeof *m);
    struct rhist_pub *p = xcalloc(q->nitems, sizeof *p);
    struct red_script *s;
    size_t first = 0;

    for (size_t i = 0; i < q->nitems; i++)
        red_msg_make(r, q, &q->items[i], q->texts[i], &m[i], &p[i]);
    /* Held until every script is sent, so an early answer cannot end the request. */
    q->scripts = 1;
    while (first < q->nitems) {
        size_t n = 1, streams = p[first].n;

        /* A script holds Redis for its whole run: whole messages, about RED_SCRIPT_STREAMS. */
        while (first + n < q->nitems && streams + p[first + n].n <= RED_SCRIPT_STREAMS)
            streams += p[first + n++].n;
        s = xcalloc(1, sizeof *s);
        *s = (struct red_script){q, first};
        q->scripts++;
        if (rhist_publish_batch(r->cmd, &p[first], n, red_published, s) != RLINK_OK) {
            q->scripts--;
            q->failed = 1;
            free(s);
        }
        first += n;
    }
    for (size_t i = 0; i < q->nitems; i++) {
        for (size_t k = 0; k < m[i].nchans; k++)
            free(m[i].chans[k]);
        free(m[i].chans);
        free(m[i].streams);
    }
    free(m);
    free(p);
    /* Let go of the hold taken above (a script of no message). */
    s = xcalloc(1, sizeof *s);
    *s = (struct red_script){q, q->nitems};
    red_published(s, q->failed ? RLINK_E_DOWN : RLINK_OK, NULL, 0);
}

/* eng_ops.publish */
static void red_publish(struct engine *e, struct eng_pub *p, eng_done_fn *done, void *arg)
{
    struct red_engine *r = red_of(e);
    struct red_req *q;
    struct dir_mask mask;

    if (p->texts == NULL) {
        /* Presence events: this node's, handed out here as they are. */
        memset(&mask, 0, sizeof mask);
        for (size_t i = 0; i < p->nitems; i++)
            if (p->items[i].channel != NULL)
                dir_lookup(&r->sites[p->site].chans, p->items[i].channel, &mask);
        e->deliver(e->arg, p->job, &mask, p->detached);
        if (done != NULL)
            done(arg, ENG_OK);
        return;
    }
    if (!atomic_load(&r->available)) {
        if (done != NULL)
            done(arg, ENG_E_UNAVAILABLE);
        return;
    }
    q = xcalloc(1, sizeof *q);
    q->type = RED_PUBLISH;
    q->worker = red_worker;
    q->site = p->site;
    q->job = p->job;
    q->detached = p->detached;
    q->items = p->items;
    q->nitems = p->nitems;
    q->texts = xcalloc(p->nitems, sizeof *q->texts);
    for (size_t i = 0; i < p->nitems; i++) {
        q->texts[i] = p->texts[i];
        p->texts[i] = NULL;
    }
    q->done = done;
    q->arg = arg;
    if (red_queue(r, q) != 0) {
        red_req_free(q);
        if (done != NULL)
            done(arg, ENG_E_UNAVAILABLE);
    }
}

/* -- replays ------------------------------------------------------------ */

/* rhist_since_fn: hand the missed messages to the caller. */
static void red_since_done(void *arg, int err, const struct rhist_read *rd,
                           const struct rhist_item *items, size_t n)
{
    struct red_req *q = arg;
    struct red_engine *r = q->eng;
    struct red_answer *a = xcalloc(1, sizeof *a);
    char old[RHIST_EPOCH_LEN + 1];
    const char *colon;
    int changed;

    a->req = q;
    a->err = err == RLINK_OK ? ENG_OK : ENG_E_UNAVAILABLE;
    if (a->err == ENG_OK) {
        const char *id = rd->id;

        a->since.ok = rd->ok;
        snprintf(a->since.id, sizeof a->since.id, "%s", id);
        snprintf(a->since.prev, sizeof a->since.prev, "%s", rd->prev);
        a->since.start = rd->start;
        colon = strchr(id, ':');
        a->since.last = colon != NULL ? strtoull(colon + 1, NULL, 10) : 0;
        a->since.items = xcalloc(n > 0 ? n : 1, sizeof *a->since.items);
        for (size_t i = 0; i < n; i++) {
            a->since.items[i].offset = items[i].offset;
            a->since.items[i].body =
                hist_body_new(xstrndup(items[i].payload, items[i].len), items[i].len);
        }
        a->since.n = n;
        /* This read started a new epoch: the other holders were sent the old one's ids. */
        changed = red_note_epoch(r, q->site, q->kind, q->name, id, old);
        red_since_saw(r, q, id, a->since.last, changed ? old : NULL);
    }
    red_answer_send(r, a);
}

/*
 * A replay read up to last: what this node has of the stream is at least
 * that. If the read started a new epoch, replacing old, the stream's
 * holders here catch up from old.
 */
static void red_since_saw(struct red_engine *r, const struct red_req *q, const char *id,
                          uint64_t last, const char *old)
{
    char *channel = red_channel(r, q->site, q->kind, q->name);
    char epoch[RHIST_EPOCH_LEN + 1];
    struct red_chan *c;

    HASH_FIND_STR(r->chans, channel, c);
    free(channel);
    if (c == NULL || strlen(id) <= RHIST_EPOCH_LEN)
        return;
    memcpy(epoch, id, RHIST_EPOCH_LEN);
    epoch[RHIST_EPOCH_LEN] = '\0';
    red_chan_saw(c, epoch, last);
    if (old != NULL)
        red_catch_up(r, c, old);
}

void red_since_send(struct red_engine *r, struct red_req *q)
{
    struct rhist_stream st = red_stream(r, q->site, q->kind, q->name);

    if (rhist_since(r->cmd, &st, q->since, red_since_done, q) != RLINK_OK)
        red_answer_err(r, q, ENG_E_UNAVAILABLE);
}

/* RED_SINCE on the engine's thread: read now, or once the subscription has taken effect. */
static void red_since_run(struct red_engine *r, struct red_req *q)
{
    char *channel = red_channel(r, q->site, q->kind, q->name);
    struct red_chan *c;

    HASH_FIND_STR(r->chans, channel, c);
    free(channel);
    if (!rlink_up(r->cmd) || !rlink_up(r->sub)) {
        red_answer_err(r, q, ENG_E_UNAVAILABLE);
    } else if (c != NULL && c->want && c->state != RED_ACTIVE) {
        q->wnext = c->waiting;
        c->waiting = q;
    } else {
        red_since_send(r, q);
    }
}

/* eng_ops.since */
static void red_since(struct engine *e, const struct eng_stream *s, const char *since,
                      eng_since_fn *done, void *arg)
{
    struct red_engine *r = red_of(e);
    struct red_req *q = xcalloc(1, sizeof *q);

    q->type = RED_SINCE;
    q->worker = red_worker;
    q->site = s->site;
    q->kind = s->kind;
    q->name = xstrdup(s->name);
    q->since = xstrdup(since);
    q->since_done = done;
    q->arg = arg;
    if (red_queue(r, q) != 0) {
        red_req_free(q);
        done(arg, ENG_E_UNAVAILABLE, NULL);
    }
}

/* Run one queued request. */
static void red_run_req(struct red_engine *r, struct red_req *q)
{
    struct red_chan *c;

    switch (q->type) {
    case RED_PUBLISH: red_publish_run(r, q); break;
    case RED_SINCE: red_since_run(r, q); break;
    case RED_WANT:
        c = red_chan_get(r, q->site, q->kind, q->name);
        c->want = q->want;
        red_reconcile(r, c);
        red_req_free(q);
        break;
    case RED_JOIN:
    case RED_LEAVE:
    case RED_MEMBERS: red_presence_run(r, q); break;
    case RED_ONLINE:
    case RED_COUNT: red_online_run(r, q); break;
    }
}

/* -- holds, ids --------------------------------------------------------- */

/* eng_ops.hold: route here by the directory; subscribe on the node's first holder. */
static void red_hold(struct engine *e, const struct eng_stream *s, int worker, int held)
{
    struct red_engine *r = red_of(e);
    struct dir *d = s->kind == 'u' ? &r->sites[s->site].users : &r->sites[s->site].chans;
    char *key = red_hold_key(s->site, s->kind, s->name);
    struct red_hold *h;
    int change = 0;

    if (held)
        dir_add(d, s->name, strlen(s->name), worker);
    else
        dir_remove(d, s->name, strlen(s->name), worker);
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->holds, key, h);
    if (held && h == NULL) {
        h = xcalloc(1, sizeof *h + strlen(key) + 1);
        strcpy(h->key, key);
        HASH_ADD_STR(r->holds, key, h);
    }
    if (h != NULL) {
        h->nworkers += held ? 1 : -1;
        change = (held && h->nworkers == 1) || (!held && h->nworkers == 0);
        if (h->nworkers == 0) {
            HASH_DEL(r->holds, h);
            free(h);
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(key);
    if (change) {
        struct red_req *q = xcalloc(1, sizeof *q);

        q->type = RED_WANT;
        q->site = s->site;
        q->kind = s->kind;
        q->name = xstrdup(s->name);
        q->want = held;
        if (red_queue(r, q) != 0)
            red_req_free(q);
    }
}

/* eng_ops.id: the stream's epoch as this node last saw it. */
static void red_id(struct engine *e, const struct eng_stream *s, uint64_t offset, char *id)
{
    char epoch[RHIST_EPOCH_LEN + 1];

    red_hold_epoch(red_of(e), s->site, s->kind, s->name, epoch);
    snprintf(id, ENG_ID_MAX, "%s:%" PRIu64, epoch[0] != '\0' ? epoch : "00000000", offset);
}

/* -- presence, online, counts ---------------------------------------------- */

/* A request about (site, kind, name) from the calling thread. */
static struct red_req *red_req_new(enum red_req_type type, int site, char kind, const char *name)
{
    struct red_req *q = xcalloc(1, sizeof *q);

    q->type = type;
    q->worker = red_worker;
    q->site = site;
    q->kind = kind;
    q->name = xstrdup(name);
    return q;
}

/* Queue q; once stopped, answer it here with ENG_E_UNAVAILABLE. */
static void red_submit(struct red_engine *r, struct red_req *q)
{
    if (red_queue(r, q) == 0)
        return;
    q->worker = -1;
    red_answer_err(r, q, ENG_E_UNAVAILABLE);
}

/* eng_ops.join */
static void red_join(struct engine *e, const struct eng_stream *ch, const char *user,
                     const char *info, eng_members_fn *done, void *arg)
{
    struct red_req *q = red_req_new(RED_JOIN, ch->site, 'c', ch->name);

    q->user = xstrdup(user);
    q->info = info != NULL ? xstrdup(info) : NULL;
    q->members_done = done;
    q->arg = arg;
    red_submit(red_of(e), q);
}

/* eng_ops.leave */
static void red_leave(struct engine *e, const struct eng_stream *ch, const char *user)
{
    struct red_req *q = red_req_new(RED_LEAVE, ch->site, 'c', ch->name);

    q->user = xstrdup(user);
    if (red_queue(red_of(e), q) != 0)
        red_req_free(q);
}

/* eng_ops.members */
static void red_members(struct engine *e, const struct eng_stream *ch, int counts,
                        eng_members_fn *done, void *arg)
{
    struct red_req *q = red_req_new(RED_MEMBERS, ch->site, 'c', ch->name);

    q->counts = counts;
    q->members_done = done;
    q->arg = arg;
    red_submit(red_of(e), q);
}

/* eng_ops.online: the user's connections on the other nodes, from Redis. */
static void red_online(struct engine *e, int site, const char *user, eng_online_fn *done, void *arg)
{
    struct red_req *q = red_req_new(RED_ONLINE, site, 'u', user);

    q->online_done = done;
    q->arg = arg;
    red_submit(red_of(e), q);
}

/* eng_ops.count: the node's count of user's connections goes to Redis, as a value. */
static void red_count(struct engine *e, int site, const char *user, int delta)
{
    struct red_engine *r = red_of(e);
    char *key = red_hold_key(site, 'u', user);
    struct red_hold *h;
    struct red_req *q = red_req_new(RED_COUNT, site, 'u', user);

    /* Under the lock, in queue order: the last value queued is the one Redis keeps. */
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->holds, key, h);
    if (h != NULL)
        h->connections += delta;
    q->n = h != NULL && h->connections > 0 ? h->connections : 0;
    if (red_queue_locked(r, q) != 0)
        red_req_free(q);
    pthread_mutex_unlock(&r->lock);
    free(key);
    ev_async_send(r->loop, &r->wake);
}

/* rpres_online_fn: the other nodes' connections, and the workers here. */
static void red_online_done(void *arg, int err, uint64_t total, uint64_t here)
{
    struct red_req *q = arg;
    struct red_engine *r = q->eng;
    struct red_answer *a = xcalloc(1, sizeof *a);

    a->req = q;
    a->err = err == RLINK_OK ? ENG_OK : ENG_E_UNAVAILABLE;
    dir_lookup(&r->sites[q->site].users, q->name, &a->online.local);
    a->online.remote = total - here;
    red_answer_send(r, a);
}

/* RED_ONLINE and RED_COUNT on the engine's thread. */
static void red_online_run(struct red_engine *r, struct red_req *q)
{
    struct rpres_site s = red_pres_site(r, q->site);

    if (q->type == RED_COUNT) {
        rpres_count(r->cmd, &s, q->name, (int)q->n);
        red_req_free(q);
        return;
    }
    if (rpres_online(r->cmd, &s, q->name, red_online_done, q) != RLINK_OK)
        red_answer_err(r, q, ENG_E_UNAVAILABLE);
}

/* eng_ops.counts: unavailable while Redis is out of reach, for /stats to say so. */
static void red_counts(struct engine *e, int site, eng_counts_fn *done, void *arg)
{
    struct red_engine *r = red_of(e);
    struct eng_counts c;

    memset(&c, 0, sizeof c);
    c.users = dir_count(&r->sites[site].users);
    c.channels = dir_count(&r->sites[site].chans);
    done(arg, atomic_load(&r->available) ? ENG_OK : ENG_E_UNAVAILABLE, &c);
}

/* -- the thread ----------------------------------------------------------- */

/* ev_async: stop (eng_stop): close the links here, on their thread, and end the loop. */
static void red_on_quit(struct ev_loop *loop, ev_async *w, int revents)
{
    struct red_engine *r = w->data;
    struct red_chan *c, *tmp;

    ev_timer_stop(loop, &r->probe);
    ev_timer_stop(loop, &r->upkeep);
    ev_timer_stop(loop, &r->check);
    ev_async_stop(loop, &r->wake);
    ev_async_stop(loop, &r->quit);
    /* Waiting replays are answered before the links go (their answers may post to workers). */
    HASH_ITER (hh, r->chans, c, tmp) {
        red_chan_fail(r, c, ENG_E_UNAVAILABLE);
    }
    rlink_free(r->sub);
    rlink_free(r->cmd);
    r->sub = r->cmd = NULL;
    ev_break(loop, EVBREAK_ALL);
}

/* The engine's thread: connect, then run the loop until stopped. */
static void *red_main(void *arg)
{
    struct red_engine *r = arg;

    for (int i = 0; i < r->nsites; i++)
        red_chan_get(r, i, 'b', "")->want = 1;
    red_chan_get(r, 0, 'p', "")->want = 1;
    ev_timer_start(r->loop, &r->probe);
    ev_timer_start(r->loop, &r->upkeep);
    ev_timer_start(r->loop, &r->check);
    ev_run(r->loop, 0);
    return NULL;
}

/* eng_ops.bind */
static void red_bind(struct engine *e, int worker)
{
    red_worker = worker;
}

/* eng_ops.stop */
static void red_stop(struct engine *e)
{
    struct red_engine *r = red_of(e);
    struct red_req *q;

    pthread_mutex_lock(&r->lock);
    r->stopped = 1;
    pthread_mutex_unlock(&r->lock);
    if (r->started) {
        ev_async_send(r->loop, &r->quit);
        pthread_join(r->thread, NULL);
        r->started = 0;
    }
    /* What was queued after the loop's last turn gets its answer here. */
    pthread_mutex_lock(&r->lock);
    q = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (q != NULL) {
        struct red_req *next = q->next;

        if (q->type == RED_WANT || q->type == RED_LEAVE || q->type == RED_COUNT)
            red_req_free(q);
        else
            red_answer_err(r, q, ENG_E_UNAVAILABLE);
        q = next;
    }
}

/* eng_ops.free */
static void red_free(struct engine *e)
{
    struct red_engine *r = red_of(e);
    struct red_hold *h, *htmp;
    struct red_chan *c, *ctmp;

    red_stop(e);
    rlink_free(r->sub);
    rlink_free(r->cmd);
    HASH_ITER (hh, r->holds, h, htmp) {
        HASH_DEL(r->holds, h);
        free(h);
    }
    HASH_ITER (hh, r->chans, c, ctmp) {
        HASH_DEL(r->chans, c);
        red_chan_free(c);
    }
    for (int i = 0; i < r->nsites; i++) {
        dir_free(&r->sites[i].users);
        dir_free(&r->sites[i].chans);
        free(r->sites[i].name);
    }
    free(r->sites);
    ev_loop_destroy(r->loop);
    pthread_mutex_destroy(&r->lock);
    free((char *)r->link_cfg.address);
    if (r->link_cfg.password != NULL)
        explicit_bzero((char *)r->link_cfg.password, strlen(r->link_cfg.password));
    free((char *)r->link_cfg.password);
    free(r->prefix);
    free(r->node);
    free(r->incarnation);
    free(r);
}

static const struct eng_ops red_ops = {
    .name = "redis",
    .publish = red_publish,
    .hold = red_hold,
    .since = red_since,
    .id = red_id,
    .join = red_join,
    .leave = red_leave,
    .members = red_members,
    .online = red_online,
    .counts = red_counts,
    .count = red_count,
    .bind = red_bind,
    .stop = red_stop,
    .free = red_free,
};

struct engine *eng_redis_new(const struct eng_redis_cfg *cfg, int nsites, const char *const *names,
                             int nworkers, eng_deliver_fn *deliver, eng_event_fn *event,
                             eng_post_fn *post, eng_hand_fn *hand, void *arg)
{
    struct red_engine *r = xcalloc(1, sizeof *r);
    int err;

    r->e = (struct engine){&red_ops, cfg->history_size > 0, deliver, event, post, hand, arg, NULL};
    r->nsites = nsites;
    r->nworkers = nworkers;
    r->sites = xcalloc((size_t)nsites, sizeof *r->sites);
    for (int i = 0; i < nsites; i++) {
        r->sites[i].name = xstrdup(names[i]);
        dir_init(&r->sites[i].users);
        dir_init(&r->sites[i].chans);
    }
    r->prefix = xstrdup(cfg->prefix);
    r->node = xstrdup(cfg->node);
    r->incarnation = xasprintf("%s#%ld-%ld", cfg->node, (long)getpid(), (long)time(NULL));
    r->history_size = cfg->history_size;
    r->history_ttl = cfg->history_ttl;
    r->link_cfg = (struct rlink_cfg){
        .address = cfg->address != NULL ? xstrdup(cfg->address) : NULL,
        .password = cfg->password != NULL ? xstrdup(cfg->password) : NULL,
        .db = cfg->db,
        .timeout = cfg->timeout,
        .backoff_min = RED_BACKOFF_MIN,
        .backoff_max = RED_BACKOFF_MAX,
        /* Borrowed until the links are made (they copy them). */
        .sentinels = cfg->sentinels,
        .nsentinels = cfg->nsentinels,
        .master = cfg->master,
    };
    pthread_mutex_init(&r->lock, NULL);
    r->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&r->wake, red_on_wake);
    r->wake.data = r;
    ev_async_init(&r->quit, red_on_quit);
    r->quit.data = r;
    ev_timer_init(&r->probe, red_on_probe, RED_PROBE_EVERY, RED_PROBE_EVERY);
    r->probe.data = r;
    ev_timer_init(&r->upkeep, red_on_upkeep, RED_UPKEEP_EVERY, RED_UPKEEP_EVERY);
    r->upkeep.data = r;
    ev_timer_init(&r->check, red_on_check, RED_CHECK_EVERY, RED_CHECK_EVERY);
    r->check.data = r;
    ev_async_start(r->loop, &r->wake);
    ev_async_start(r->loop, &r->quit);
    /* Made here, before the thread runs the loop; used only on that thread from then on. */
    r->cmd = rlink_new(r->loop, &r->link_cfg, red_cmd_state, r);
    r->sub = rlink_new(r->loop, &r->link_cfg, red_sub_state, r);
    if (r->cmd == NULL || r->sub == NULL) {
        red_free(&r->e);
        return NULL;
    }
    rlink_set_push(r->sub, red_on_push, r);
    rlink_set_stats(r->cmd, &r->link_stats);
    rlink_set_stats(r->sub, &r->link_stats);
    r->e.links = &r->link_stats;
    r->link_cfg.sentinels = NULL;
    r->link_cfg.nsentinels = 0;
    r->link_cfg.master = NULL;
    err = pthread_create(&r->thread, NULL, red_main, r);
    if (err != 0) {
        log_msg(LOG_ERROR, "redis", "pthread_create: %s", strerror(err));
        red_free(&r->e);
        return NULL;
    }
    r->started = 1;
    return &r->e;
}

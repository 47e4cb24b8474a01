/*
 * engine_redis_sub.c -- what a node of the Redis engine keeps up in Redis
 * (engine_redis.h): its pub/sub channels (subscribed only while a worker
 * holds the stream) and what arrives on them, handed to the workers; the
 * state of its two links, and the probe that proves the pub/sub one still
 * delivers; presence and online entries, refreshed so that a dead node's
 * expire (rpres.h).
 *
 * Owns:       the channel table (struct red_chan) and each channel's
 *             presence members joined here.
 * Called by:  engine_redis.c, and the links' callbacks: the engine's
 *             thread only.
 * Invariants: a channel's subscription moves IDLE -> SUBSCRIBING -> ACTIVE
 *             -> UNSUBSCRIBING -> IDLE, one command in flight at a time,
 *             so hiredis never sees a SUBSCRIBE and UNSUBSCRIBE of one
 *             channel cross. A subscription lost while wanted (the link
 *             went, or stopped delivering) is marked lost; once it is back
 *             its holders catch up from history (engine.h catch_up), as do
 *             they when a stream's epoch changes under them: never a
 *             silent gap.
 */
#include "engine_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "proto.h"
#include "xmalloc.h"

static void red_confirm(struct red_engine *r);
static void red_presence_event(struct red_engine *r, const struct red_chan *c, const char *json);
static void red_resync_counts(struct red_engine *r);
static void red_refresh_presence(struct red_engine *r);

/* -- pub/sub: what arrives ---------------------------------------------- */

/* An item for a message of c: "<id> <tag> <payload>"; NULL when malformed. */
static struct eng_item *red_item(struct red_engine *r, struct red_chan *c, const char *data,
                                 size_t len)
{
    const char *sp1 = memchr(data, ' ', len), *sp2, *payload;
    char id[RHIST_ID_MAX], old[RHIST_EPOCH_LEN + 1], *end;
    struct eng_item *it;
    uint64_t off = 0;

    if (sp1 == NULL || (size_t)(sp1 - data) >= sizeof id ||
        (sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - data))) == NULL)
        return NULL;
    memcpy(id, data, (size_t)(sp1 - data));
    id[sp1 - data] = '\0';
    payload = sp2 + 1;
    if (strcmp(id, "p") == 0) {
        red_presence_event(r, c, payload);
        return NULL;
    }
    if (id[0] != '\0') {
        const char *colon = strchr(id, ':');

        if (colon == NULL || colon - id != RHIST_EPOCH_LEN)
            return NULL;
        off = strtoull(colon + 1, &end, 10);
        if (*end != '\0' || off == 0)
            return NULL;
    }
    it = xcalloc(1, sizeof *it);
    if (c->kind == 'c') {
        size_t nl = strlen(r->node);

        it->channel = xstrdup(c->name);
        it->offset = off;
        it->msg = proto_text_frame(payload, id[0] != '\0' ? id : NULL);
        if ((size_t)(sp2 - sp1 - 1) > nl + 1 && strncmp(sp1 + 1, r->node, nl) == 0 &&
            sp1[1 + nl] == '/')
            it->skip_conn = strtoull(sp1 + 2 + nl, NULL, 10);
    } else if (c->kind == 'u') {
        it->users = xcalloc(1, sizeof *it->users);
        it->users[0] = xstrdup(c->name);
        it->nusers = 1;
        it->frames = xcalloc(1, sizeof *it->frames);
        it->frames[0] = proto_text_frame(payload, id[0] != '\0' ? id : NULL);
        it->offsets = xcalloc(1, sizeof *it->offsets);
        it->offsets[0] = off;
    } else {
        it->broadcast = 1;
        it->msg = proto_text_frame(payload, NULL);
    }
    /* Another epoch: Redis lost the stream; what holders were sent belongs to the old one. */
    if (off != 0 && red_note_epoch(r, c->site, c->kind, c->name, id, old))
        red_catch_up(r, c, old);
    if (off != 0) {
        char epoch[RHIST_EPOCH_LEN + 1];

        memcpy(epoch, id, RHIST_EPOCH_LEN);
        epoch[RHIST_EPOCH_LEN] = '\0';
        red_chan_saw(c, epoch, off);
    }
    return it;
}

/* The workers here holding c's stream. */
static void red_holders(struct red_engine *r, const struct red_chan *c, struct dir_mask *mask)
{
    memset(mask, 0, sizeof *mask);
    if (c->kind == 'b')
        dir_mask_all(mask, r->nworkers);
    else if (c->kind == 'c')
        dir_lookup(&r->sites[c->site].chans, c->name, mask);
    else
        dir_lookup(&r->sites[c->site].users, c->name, mask);
}

/* c's stream may have a gap: its holders here read what they missed (engine.h catch_up). */
void red_catch_up(struct red_engine *r, struct red_chan *c, const char *epoch)
{
    struct eng_item *it;
    struct dir_mask mask;
    char now[RHIST_EPOCH_LEN + 1];

    if (c->kind != 'u' && c->kind != 'c')
        return;
    /* The holders' positions are in the epoch seen now; by the time they ask, a message of
     * another one may have arrived and moved it. */
    if (epoch[0] == '\0') {
        red_hold_epoch(r, c->site, c->kind, c->name, now);
        epoch = now;
    }
    /* Its holders would ask what Redis cannot be asked now: once available, from the oldest
     * epoch they may have been sent. */
    if (!atomic_load(&r->available)) {
        if (!c->catch_pending)
            snprintf(c->catch_epoch, sizeof c->catch_epoch, "%s", epoch);
        c->catch_pending = 1;
        return;
    }
    it = xcalloc(1, sizeof *it);
    it->catch_up = 1;
    snprintf(it->epoch, sizeof it->epoch, "%s", epoch);
    if (c->kind == 'c') {
        it->channel = xstrdup(c->name);
    } else {
        it->users = xcalloc(1, sizeof *it->users);
        it->users[0] = xstrdup(c->name);
        it->nusers = 1;
    }
    red_holders(r, c, &mask);
    r->e.hand(r->e.arg, c->site, it, 1, &mask);
}

/* Free an item red_item made, when it goes to no worker. */
static void red_item_free(struct eng_item *it)
{
    eng_item_clear(it);
    free(it);
}

/* A message arrived on c: hand it to the workers here that hold its stream. */
static void red_on_message(struct red_engine *r, struct red_chan *c, const char *data, size_t len)
{
    struct eng_item *it;
    struct dir_mask mask;

    if (c->kind == 'p') {
        r->probe_pending = 0;
        return;
    }
    if (len >= 2 && data[0] == 'p' && data[1] == ' ') {
        red_item(r, c, data, len); /* a presence event: handed on as one */
        return;
    }
    it = red_item(r, c, data, len);
    if (it == NULL) {
        log_msg(LOG_WARN, "redis", "a malformed message on %s: dropped", c->channel);
        return;
    }
    /* A catch-up waits (the engine cannot read now): it will bring this one from history,
     * after telling the holders what they lost; live, it would come before that. */
    if (c->catch_pending && (it->offset != 0 || (it->offsets != NULL && it->offsets[0] != 0))) {
        red_item_free(it);
        return;
    }
    red_holders(r, c, &mask);
    r->e.hand(r->e.arg, c->site, it, 1, &mask);
}

/* rlink_push_fn for the pub/sub link. */
void red_on_push(void *arg, int type, const char *channel, size_t clen, const char *data,
                 size_t dlen)
{
    struct red_engine *r = arg;
    struct red_chan *c;
    struct red_req *q;

    HASH_FIND(hh, r->chans, channel, clen, c);
    if (c == NULL)
        return;
    if (type == RLINK_PUSH_MESSAGE) {
        red_on_message(r, c, data, dlen);
        return;
    }
    if (type == RLINK_PUSH_SUBSCRIBED && c->state == RED_SUBSCRIBING) {
        c->state = RED_ACTIVE;
        if (c->lost) {
            c->lost = 0;
            red_catch_up(r, c, "");
        }
        q = c->waiting;
        c->waiting = NULL;
        while (q != NULL) {
            struct red_req *next = q->wnext;

            q->wnext = NULL;
            red_since_send(r, q);
            q = next;
        }
    } else if (type == RLINK_PUSH_UNSUBSCRIBED && c->state == RED_UNSUBSCRIBING) {
        c->state = RED_IDLE;
    }
    red_reconcile(r, c);
}

/* -- pub/sub: what this node holds ---------------------------------------- */

/* The channel entry, made when missing. */
struct red_chan *red_chan_get(struct red_engine *r, int site, char kind, const char *name)
{
    char *channel = red_channel(r, site, kind, name);
    struct red_chan *c;

    HASH_FIND_STR(r->chans, channel, c);
    if (c != NULL) {
        free(channel);
        return c;
    }
    c = xcalloc(1, sizeof *c);
    c->channel = channel;
    c->site = site;
    c->kind = kind;
    c->name = xstrdup(name);
    HASH_ADD_KEYPTR(hh, r->chans, c->channel, strlen(c->channel), c);
    return c;
}

/* Answer every replay waiting on c with err. */
void red_chan_fail(struct red_engine *r, struct red_chan *c, int err)
{
    struct red_req *q = c->waiting;

    c->waiting = NULL;
    while (q != NULL) {
        struct red_req *next = q->wnext;

        red_answer_err(r, q, err);
        q = next;
    }
}

/* Bring c's subscription to what is wanted; drop the entry once nothing needs it. */
void red_reconcile(struct red_engine *r, struct red_chan *c)
{
    if (!rlink_up(r->sub)) {
        c->lost |= c->want && c->state != RED_IDLE;
        c->state = RED_IDLE;
        red_chan_fail(r, c, ENG_E_UNAVAILABLE);
    } else if (c->want && c->state == RED_IDLE) {
        if (rlink_subscribe(r->sub, c->channel) == RLINK_OK)
            c->state = RED_SUBSCRIBING;
    } else if (!c->want && c->state == RED_ACTIVE) {
        if (rlink_unsubscribe(r->sub, c->channel) == RLINK_OK)
            c->state = RED_UNSUBSCRIBING;
    }
    if (!c->want && c->state == RED_IDLE && c->waiting == NULL && c->members == NULL) {
        HASH_DEL(r->chans, c);
        red_chan_free(c);
    }
}

/* -- the links ------------------------------------------------------------ */

/* Available while both links are up, and no failover is being told to Redis. */
static void red_update_available(struct red_engine *r)
{
    int up = rlink_up(r->cmd) && rlink_up(r->sub) && !r->gen_pending;
    struct red_chan *c, *tmp;

    if (atomic_exchange(&r->available, up) == up)
        return;
    log_msg(up ? LOG_INFO : LOG_WARN, "redis",
            up ? "engine available" : "engine unavailable: publishes are refused (503)");
    /* Catch-ups held while the engine could not read: they can now. */
    HASH_ITER (hh, r->chans, c, tmp) {
        if (up && c->catch_pending && c->state == RED_ACTIVE) {
            c->catch_pending = 0;
            red_catch_up(r, c, c->catch_epoch);
        }
    }
}

/*
 * rhist_raised_fn: publishing may go on. A raise the link dropped is asked
 * again as it comes back up; one Redis refused is logged, and not retried.
 */
static void red_raised(void *arg, int err, int raised)
{
    struct red_engine *r = arg;

    r->gen_pending = 0;
    if (err == RLINK_OK && raised)
        log_msg(LOG_INFO, "redis",
                "a Redis server new to the cluster (a first start, a restart or a failover): "
                "every stream goes on in a new epoch");
    else if (err != RLINK_OK)
        log_msg(LOG_WARN, "redis", "cannot raise the generation for a new Redis server");
    red_update_available(r);
}

/*
 * The link came up, maybe on another server than before (a restart or a
 * failover) that may have lost writes and numbers on from where its copy
 * stood, so ids could name two messages. The cluster's generation is
 * raised once per server (rhist.c: by its run id): every stream goes on in
 * a new epoch as it is next touched, and a client's id past what this
 * server numbered is told recovered false rather than replayed someone
 * else's message under it. Publishing waits for it, so no message is
 * numbered here before.
 */
static void red_raise_generation(struct red_engine *r)
{
    if (rhist_raise_generation(r->cmd, r->prefix, red_raised, r) == RLINK_OK)
        r->gen_pending = 1;
}

/* rlink_state_fn for the command link: after a reconnect, Redis is told again what is here. */
void red_cmd_state(void *arg, int up)
{
    struct red_engine *r = arg;

    if (up)
        red_raise_generation(r);
    red_update_available(r);
    if (!up)
        return;
    if (r->cmd_was_up) {
        red_resync_counts(r);
        /* What Redis has against what arrived, at once: a failover may have lost writes. */
        red_on_check(r->loop, &r->check, 0);
    }
    r->cmd_was_up = 1;
    red_refresh_presence(r);
}

/* rlink_state_fn for the pub/sub link: its subscriptions went with it, or come back now. */
void red_sub_state(void *arg, int up)
{
    struct red_engine *r = arg;
    struct red_chan *c, *tmp;

    r->probe_pending = 0;
    HASH_ITER (hh, r->chans, c, tmp) {
        c->lost |= c->want && c->state != RED_IDLE;
        c->state = RED_IDLE;
        red_reconcile(r, c);
    }
    red_update_available(r);
}

/*
 * rlink_reply_fn for the probe's PUBLISH: the message is on its way from
 * now. Timed from here, not from when it was queued: behind a burst of
 * commands the PUBLISH itself may wait, which says nothing of the pub/sub
 * link.
 */
static void red_probed(void *arg, int err, const redisReply *reply)
{
    struct red_engine *r = arg;

    if (err != RLINK_OK)
        r->probe_pending = 0;
    else if (r->probe_pending)
        r->probe_sent = ev_now(r->loop);
}

/* ev_timer: probe the pub/sub link through Redis, end to end; a silent one is reconnected. */
void red_on_probe(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct red_engine *r = t->data;
    char *channel = red_channel(r, 0, 'p', "");
    struct red_chan *c;

    if (r->nsuspects > 0 && ev_now(loop) - r->suspect_at >= RED_PROBE_EVERY)
        red_confirm(r);
    HASH_FIND_STR(r->chans, channel, c);
    if (!rlink_up(r->cmd) || !rlink_up(r->sub) || c == NULL || c->state != RED_ACTIVE) {
        free(channel);
        return;
    }
    if (r->probe_pending) {
        if (r->probe_sent > 0 && ev_now(loop) - r->probe_sent > r->link_cfg.timeout) {
            log_msg(LOG_WARN, "redis", "the pub/sub link stopped delivering: reconnecting it");
            rlink_reset(r->sub);
        }
        free(channel);
        return;
    }
    if (rlink_command(r->cmd, red_probed, r, "PUBLISH %s p", channel) == RLINK_OK) {
        r->probe_pending = 1;
        r->probe_sent = 0;
    }
    free(channel);
}

/* -- presence -------------------------------------------------------------- */

struct rpres_chan red_pres_chan(const struct red_engine *r, const struct red_chan *c)
{
    return (struct rpres_chan){r->prefix,  r->sites[c->site].name, c->name, r->incarnation,
                               c->channel, RED_PRESENCE_TTL};
}

struct rpres_site red_pres_site(const struct red_engine *r, int site)
{
    return (struct rpres_site){r->prefix, r->sites[site].name, r->incarnation, RED_PRESENCE_TTL};
}

void red_chan_free(struct red_chan *c)
{
    struct red_member *m, *tmp;

    HASH_ITER (hh, c->members, m, tmp) {
        HASH_DEL(c->members, m);
        free(m->user);
        free(m->info);
        free(m);
    }
    free(c->channel);
    free(c->name);
    free(c);
}

/* "p - {"j":1|0,"u":user,"i":info}" arrived on c: tell the engine's event callback. */
static void red_presence_event(struct red_engine *r, const struct red_chan *c, const char *json)
{
    json_t *o = json_loads(json, 0, NULL), *info;
    const char *user = json_string_value(json_object_get(o, "u"));
    char *text = NULL;

    if (user == NULL || !json_is_integer(json_object_get(o, "j")) || c->kind != 'c') {
        log_msg(LOG_WARN, "redis", "a malformed presence event on %s: dropped", c->channel);
        json_decref(o);
        return;
    }
    info = json_object_get(o, "i");
    if (json_is_object(info))
        text = json_dumps(info, JSON_COMPACT);
    r->e.event(r->e.arg, c->site, json_integer_value(json_object_get(o, "j")) != 0, c->name, user,
               text);
    free(text);
    json_decref(o);
}

static void red_member_note(struct red_chan *c, const struct red_req *q, int delta);

/* rpres_members_fn: the members go to the caller. */
static void red_members_done(void *arg, int err, json_t *members)
{
    struct red_req *q = arg;
    struct red_answer *a = xcalloc(1, sizeof *a);
    struct red_chan *c;

    /* A join the caller is told failed is no join: it will never leave. */
    if (err != RLINK_OK && q->type == RED_JOIN) {
        c = red_chan_get(q->eng, q->site, 'c', q->name);
        red_member_note(c, q, -1);
        red_reconcile(q->eng, c);
    }
    a->req = q;
    a->err = err == RLINK_OK ? ENG_OK : ENG_E_UNAVAILABLE;
    a->members = members;
    red_answer_send(q->eng, a);
}

/* One more (or one less) connection of q's user joined here in c. */
static void red_member_note(struct red_chan *c, const struct red_req *q, int delta)
{
    struct red_member *m;

    HASH_FIND_STR(c->members, q->user, m);
    if (m == NULL && delta > 0) {
        m = xcalloc(1, sizeof *m);
        m->user = xstrdup(q->user);
        m->info = q->info != NULL ? xstrdup(q->info) : NULL;
        HASH_ADD_KEYPTR(hh, c->members, m->user, strlen(m->user), m);
    }
    if (m == NULL)
        return;
    m->n += delta;
    if (m->n <= 0) {
        HASH_DEL(c->members, m);
        free(m->user);
        free(m->info);
        free(m);
    }
}

void red_presence_run(struct red_engine *r, struct red_req *q)
{
    struct red_chan *c = red_chan_get(r, q->site, 'c', q->name);
    struct rpres_chan ch = red_pres_chan(r, c);
    int err;

    switch (q->type) {
    case RED_JOIN:
        err = rpres_join(r->cmd, &ch, q->user, q->info, red_members_done, q);
        if (err == RLINK_OK)
            red_member_note(c, q, 1);
        break;
    case RED_LEAVE:
        rpres_leave(r->cmd, &ch, q->user);
        red_member_note(c, q, -1);
        red_reconcile(r, c);
        red_req_free(q);
        return;
    default: err = rpres_members(r->cmd, &ch, q->counts, red_members_done, q); break;
    }
    if (err != RLINK_OK)
        red_answer_err(r, q, ENG_E_UNAVAILABLE);
    red_reconcile(r, c);
}

/* Tell Redis every member joined here, in every channel: they live another ttl. */
static void red_refresh_presence(struct red_engine *r)
{
    struct red_chan *c, *tmp;

    HASH_ITER (hh, r->chans, c, tmp) {
        size_t n = HASH_COUNT(c->members), i = 0;
        struct rpres_member *list;
        struct red_member *m, *mtmp;
        struct rpres_chan ch;

        if (n == 0)
            continue;
        list = xcalloc(n, sizeof *list);
        HASH_ITER (hh, c->members, m, mtmp) {
            list[i++] = (struct rpres_member){m->user, m->n, m->info};
        }
        ch = red_pres_chan(r, c);
        rpres_refresh(r->cmd, &ch, list, n);
        free(list);
    }
}

/* The command link is back after a drop: set this node's count of every user again. */
static void red_resync_counts(struct red_engine *r)
{
    struct red_hold *h, *tmp;

    pthread_mutex_lock(&r->lock);
    HASH_ITER (hh, r->holds, h, tmp) {
        int site;
        char kind;
        int off = 0;

        if (sscanf(h->key, "%d/%c:%n", &site, &kind, &off) != 2 || off == 0 || kind != 'u' ||
            site < 0 || site >= r->nsites) {
            continue;
        }
        struct rpres_site s = red_pres_site(r, site);

        rpres_count(r->cmd, &s, h->key + off, (int)h->connections);
    }
    pthread_mutex_unlock(&r->lock);
}

void red_on_upkeep(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct red_engine *r = t->data;

    if (!rlink_up(r->cmd))
        return;
    for (int i = 0; i < r->nsites; i++) {
        struct rpres_site s = red_pres_site(r, i);

        rpres_alive(r->cmd, &s);
    }
    red_refresh_presence(r);
}

/* -- the position check ----------------------------------------------------- */

void red_chan_saw(struct red_chan *c, const char *epoch, uint64_t offset)
{
    if (strcmp(c->epoch, epoch) != 0) {
        snprintf(c->epoch, sizeof c->epoch, "%s", epoch);
        c->seen = offset;
    } else if (offset > c->seen) {
        c->seen = offset;
    }
}

/* A positions script's context: the channels it asked about, by name (they may go meanwhile). */
struct red_check {
    struct red_engine *r;
    char **channels; /* owned */
    size_t n;
};

/* rhist_positions_fn: a stream Redis has past what arrived here is suspect until it arrives. */
static void red_checked(void *arg, int err, const struct rhist_position *pos, size_t n)
{
    struct red_check *k = arg;
    struct red_engine *r = k->r;

    for (size_t i = 0; i < n && err == RLINK_OK; i++) {
        struct red_chan *c;

        HASH_FIND_STR(r->chans, k->channels[i], c);
        if (c == NULL || c->state != RED_ACTIVE || pos[i].epoch[0] == '\0')
            continue;
        if (c->epoch[0] != '\0' && strcmp(c->epoch, pos[i].epoch) != 0) {
            /* Redis lost the stream and numbers it afresh. */
            red_chan_saw(c, pos[i].epoch, pos[i].offset);
            red_catch_up(r, c, "");
        } else if (pos[i].offset < c->seen) {
            /* The counter went back: a failover lost what this node saw. */
            log_msg(LOG_WARN, "redis",
                    "%s: Redis is at %" PRIu64 ", behind the %" PRIu64
                    " this node saw: its holders catch up",
                    c->channel, pos[i].offset, c->seen);
            c->seen = pos[i].offset;
            red_catch_up(r, c, "");
        } else if (pos[i].offset > c->seen && c->suspect == 0) {
            if (r->nsuspects++ == 0)
                r->suspect_at = ev_now(r->loop);
            c->suspect = pos[i].offset;
        }
    }
    for (size_t i = 0; i < k->n; i++)
        free(k->channels[i]);
    free(k->channels);
    free(k);
}

/* Ask Redis where the streams of chans[0..n) stand. */
static void red_check_batch(struct red_engine *r, struct red_chan **chans, size_t n)
{
    struct rhist_stream *st = xcalloc(n, sizeof *st);
    struct red_check *k = xcalloc(1, sizeof *k);
    int meta_ttl = r->history_ttl > 86400 ? r->history_ttl : 86400;

    k->r = r;
    k->n = n;
    k->channels = xcalloc(n, sizeof *k->channels);
    for (size_t i = 0; i < n; i++) {
        st[i] = (struct rhist_stream){r->prefix,       r->sites[chans[i]->site].name,
                                      chans[i]->kind,  chans[i]->name,
                                      r->history_size, r->history_ttl,
                                      meta_ttl};
        k->channels[i] = xstrdup(chans[i]->channel);
    }
    if (rhist_positions(r->cmd, st, n, red_checked, k) != RLINK_OK)
        red_checked(k, RLINK_E_DOWN, NULL, 0);
    free(st);
}

/*
 * Every RED_CHECK_EVERY: compare each held stream's position in Redis with
 * what arrived here (Centrifugo's position check), so a message lost
 * between Redis and this node without the link dropping is still noticed.
 * A stream found behind is confirmed a tick later (red_confirm): the
 * message may only have been on its way.
 */
void red_on_check(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct red_engine *r = t->data;
    struct red_chan *batch[RED_CHECK_BATCH], *c, *tmp;
    size_t n = 0;

    if (!r->e.history || !rlink_up(r->cmd))
        return;
    HASH_ITER (hh, r->chans, c, tmp) {
        if ((c->kind != 'u' && c->kind != 'c') || c->state != RED_ACTIVE)
            continue;
        batch[n++] = c;
        if (n == RED_CHECK_BATCH) {
            red_check_batch(r, batch, n);
            n = 0;
        }
    }
    if (n > 0)
        red_check_batch(r, batch, n);
}

/* From the probe's tick: a suspect stream whose message has not arrived since is caught up. */
static void red_confirm(struct red_engine *r)
{
    struct red_chan *c, *tmp;

    if (r->nsuspects == 0)
        return;
    HASH_ITER (hh, r->chans, c, tmp) {
        if (c->suspect == 0)
            continue;
        if (c->seen < c->suspect) {
            log_msg(LOG_WARN, "redis",
                    "%s: Redis is at %" PRIu64 ", this node saw %" PRIu64 ": its holders catch up",
                    c->channel, c->suspect, c->seen);
            c->seen = c->suspect;
            red_catch_up(r, c, "");
        }
        c->suspect = 0;
    }
    r->nsuspects = 0;
}

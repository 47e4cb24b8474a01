/*
 * client.c -- browser commands: subscribe, unsubscribe, publish, rpc
 * (see client.h and docs/protocol.md).
 *
 * Owns:       struct client; the worker's side of subscriptions (sub.c),
 *             and the engine's holds and presence memberships for them.
 * Called by:  conn.c and rpc.c on the owning worker's thread.
 * Invariants: a subscription exists in the worker's table, on the
 *             connection's list, held in the engine (for its worker) and,
 *             on presence channels, joined in the engine, or in none of
 *             them. A publish from a browser goes to the channel's workers
 *             as a detached job: a worker never waits for another.
 */
#include "client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chan.h"
#include "cmd.h"
#include "conn.h"
#include "engine.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "rpc.h"
#include "site.h"
#include "sub.h"
#include "tok.h"
#include "xmalloc.h"

#define CLIENT_MAX_CLAIM_CHANNELS 1000

/* The connection's verified user id, or NULL when anonymous. */
static const char *client_user(const struct conn *c)
{
    return c->link.user != NULL ? c->link.user->id : NULL;
}

/* The connection's state, made on first need. */
static struct client *client_get(struct conn *c)
{
    if (c->client == NULL)
        c->client = xcalloc(1, sizeof *c->client);
    return c->client;
}

/* Queue m (consumed; c's own, so it costs its allocation too); a frame not encoded is logged. */
static void client_send(struct conn *c, struct msg *m)
{
    if (m == NULL) {
        log_msg(LOG_ERROR, "client", "conn=%llu: cannot encode an answer",
                (unsigned long long)c->id);
        return;
    }
    conn_send_own(c, m);
}

/* Answer ok, with members (stolen) on presence channels; a command without ref gets none. */
static void client_ok(struct conn *c, const json_t *ref, json_t *members)
{
    if (ref == NULL) {
        json_decref(members);
        return;
    }
    client_send(c, proto_ok(ref, members));
}

/* Answer with an error of Herald's own, and count it. */
static void client_fail(struct conn *c, const json_t *ref, enum proto_err e, const char *why)
{
    conn_stats(c)->client_errors[e]++;
    log_msg(LOG_DEBUG, "client", "conn=%llu %s: %s", (unsigned long long)c->id, proto_err_name(e),
            why);
    client_send(c, proto_error(ref, proto_err_name(e), why));
}

int client_claims(struct conn *c, const json_t *payload, const char **why)
{
    const json_t *chans = json_object_get(payload, "channels");
    const json_t *info = json_object_get(payload, "info");
    struct client *cl;
    size_t i;
    json_t *v;

    if (chans == NULL && info == NULL)
        return 0;
    if (chans != NULL &&
        (!json_is_array(chans) || json_array_size(chans) > CLIENT_MAX_CLAIM_CHANNELS)) {
        *why = "the channels claim must be an array of at most 1000 patterns";
        return -1;
    }
    json_array_foreach (chans, i, v) {
        if (!json_is_string(v) || !chan_pattern_valid(json_string_value(v))) {
            *why = "the channels claim holds something that is not a channel pattern";
            return -1;
        }
    }
    if (info != NULL && !json_is_object(info)) {
        *why = "the info claim must be a JSON object";
        return -1;
    }
    cl = client_get(c);
    if (info != NULL) {
        cl->info = json_dumps(info, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (cl->info == NULL || strlen(cl->info) > CLIENT_MAX_INFO) {
            *why = "the info claim is over 1 KiB";
            return -1;
        }
    }
    cl->nchannels = json_array_size(chans);
    cl->channels = cl->nchannels > 0 ? xcalloc(cl->nchannels, sizeof *cl->channels) : NULL;
    json_array_foreach (chans, i, v)
        cl->channels[i] = xstrdup(json_string_value(v));
    return 0;
}

/* The request body every PHP call starts from: user and connection id. */
static json_t *client_rpc_body(struct conn *c)
{
    char id[48];
    const char *user = client_user(c);

    snprintf(id, sizeof id, "%llx", (unsigned long long)c->id);
    return json_pack("{s:o, s:s}", "user", user != NULL ? json_string(user) : json_null(),
                     "connection", id);
}

/* Start a PHP call for c and put it on c's list. Returns PROTO_OK, or the error to answer. */
static enum proto_err client_call(struct conn *c, enum rpc_kind kind, json_t *body,
                                  const json_t *ref, const char *channel, const char *since)
{
    struct client *cl = client_get(c);
    struct rpc_call *call;
    enum proto_err err;

    if (cl->ncalls >= (unsigned)conn_cfg(c)->rpc_max_per_conn) {
        json_decref(body);
        return PROTO_E_RPC_BUSY;
    }
    call = rpc_start(&c->x->rpc, c->site, kind, c, body, &err);
    if (call == NULL)
        return err;
    call->ref = ref != NULL ? json_deep_copy(ref) : NULL;
    call->channel = channel != NULL ? xstrdup(channel) : NULL;
    call->since = since != NULL ? xstrdup(since) : NULL;
    call->conn_next = cl->calls;
    cl->calls = call;
    cl->ncalls++;
    return PROTO_OK;
}

/*
 * Does a static rule let c subscribe? PROTO_OK yes; PROTO_E_FORBIDDEN when
 * no rule grants the channel (a subscribe hook may still); another error
 * (a bad channel token) to answer as it is.
 */
static enum proto_err client_may_subscribe(struct conn *c, const struct proto_cmd *cmd,
                                           const char **why)
{
    const struct cfg_site *cfg = conn_cfg(c);
    struct client *cl = c->client;
    struct tok_claims claims;
    const char *granted;
    enum proto_err r;
    int bad;

    if (chan_match_any(cfg->public_channels, cfg->npublic_channels, cmd->channel, cmd->channel_len))
        return PROTO_OK;
    if (cl != NULL && chan_match_any(cl->channels, cl->nchannels, cmd->channel, cmd->channel_len))
        return PROTO_OK;
    /* Anonymous connections may have public channels only. */
    if (cmd->token == NULL || client_user(c) == NULL)
        return PROTO_E_FORBIDDEN;
    bad = tok_verify(cmd->token, cmd->token_len, (const unsigned char *)cfg->secret,
                     cfg->secret_len, time(NULL), cfg->token_leeway, &claims);
    if (bad != 0) {
        *why = tok_strerror(bad);
        return PROTO_E_BAD_TOKEN;
    }
    granted = json_string_value(json_object_get(claims.payload, "channel"));
    r = PROTO_E_BAD_TOKEN;
    if (granted == NULL)
        *why = "a connection token is not a channel token (no channel claim)";
    else if (claims.exp == 0)
        *why = "a channel token needs exp";
    else if (strcmp(granted, cmd->channel) != 0)
        *why = "the channel token is for another channel";
    else if (strcmp(claims.sub, client_user(c)) != 0)
        *why = "the channel token is for another user";
    else
        r = PROTO_OK;
    tok_claims_free(&claims);
    return r;
}

/*
 * An engine call a connection waits on (engine.h: the answer may come
 * later, on this worker's loop). It is on the client's list until its
 * answer is handled; a connection that closes first detaches it (c = NULL,
 * as RPC calls are), and the answer then only frees it.
 */
struct client_wait {
    struct client_wait *next; /* borrowed: next on the client's list */
    struct conn *c;           /* borrowed; NULL once the connection closed */
    struct engine *engine;    /* borrowed: the one asked */
    int site;                 /* the connection's */
    char kind;                /* 'c': a subscribe; 'u': the user's stream at open */
    char *name;               /* owned: the channel, or the user */
    json_t *ref;              /* a subscribe's ref (a reference), or NULL: answer nothing */
    char *since;              /* owned: as the client gave it, or NULL */
    int again;                /* the subscription was already in place: no replay */
    int rounds;               /* replays read again, live frames having overtaken one */
    int gap;                  /* a catch-up (on_gap): say only what could not be recovered */
    int gap_told;             /* and it has been said */
    int ok;                   /* every round so far recovered all it was asked */
    char *joiner;             /* owned: the user whose join this is (presence), or NULL */
    json_t *members;          /* presence members to answer with (a reference), or NULL */
};

/* A wait for c on stream (kind, name), on c's list. */
static struct client_wait *client_wait_new(struct conn *c, char kind, const char *name,
                                           const json_t *ref, const char *since)
{
    struct client *cl = client_get(c);
    struct client_wait *w = xcalloc(1, sizeof *w);

    w->engine = c->x->hub->engine;
    w->c = c;
    w->site = c->site;
    w->kind = kind;
    w->name = xstrdup(name);
    w->ref = json_incref((json_t *)ref);
    w->since = since != NULL ? xstrdup(since) : NULL;
    w->next = cl->waits;
    cl->waits = w;
    return w;
}

/* The answer is handled (or its connection gone): off the list, and freed. */
static void client_wait_end(struct client_wait *w)
{
    if (w->c != NULL) {
        struct client_wait **pp = &w->c->client->waits;

        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
    }
    free(w->name);
    json_decref(w->ref);
    free(w->since);
    free(w->joiner);
    json_decref(w->members);
    free(w);
}

/* The stream w waits on, as the engine names it. */
static struct eng_stream client_wait_stream(const struct client_wait *w)
{
    return (struct eng_stream){w->site, w->kind, w->name};
}

/* Where w's stream position goes: the user's, or the subscription's (NULL if it went since). */
static uint64_t *client_wait_last(const struct client_wait *w)
{
    struct sub *s;

    if (w->kind == 'u')
        return &w->c->user_last;
    s = sub_of_conn(w->c->client->subs, w->name, strlen(w->name));
    return s != NULL ? &s->last : NULL;
}

/*
 * offset's id as the replay numbers it (ids are "<epoch>:<offset>",
 * engine.h): a message up to where the epoch took over keeps the id it was
 * sent with; a position (message 0) is named in the current epoch.
 */
static void client_replay_id(const struct eng_since *r, uint64_t offset, int message, char *id)
{
    const char *colon = strrchr(r->id, ':');

    if (message && offset <= r->start && offset > 0 && r->prev[0] != '\0')
        snprintf(id, ENG_ID_MAX, "%s:%" PRIu64, r->prev, offset);
    else
        snprintf(id, ENG_ID_MAX, "%.*s:%" PRIu64, colon != NULL ? (int)(colon - r->id) : 0, r->id,
                 offset);
}

/*
 * Send what was missed unless it would overflow the out-queue; returns
 * whether that was all of it. A client that recovers after a reconnect and
 * cannot have all gets nothing (docs/protocol.md: it reloads). A catch-up
 * of a connected client that lost some (engine.h) is told first, at the
 * position just before what it can still have, then gets that: it was
 * live for all of it.
 */
static int client_send_missed(struct client_wait *w, const struct eng_since *r)
{
    struct conn *c = w->c;
    char mid[ENG_ID_MAX];
    size_t bytes = 0;

    /* A replay that would overflow max_queued_bytes would only get the client
     * closed with 1008, and again on every retry: tell it to reload instead. */
    for (size_t i = 0; i < r->n; i++)
        bytes += r->items[i].body->len + ENG_ID_MAX + 16;
    if (bytes > c->x->cfg->max_queued_bytes / 2 || (!r->ok && !w->gap))
        return 0;
    /* Told before anything else: another round may follow, and its messages with it. */
    if (!r->ok && w->gap && !w->gap_told) {
        client_replay_id(r, r->n > 0 ? r->items[0].offset - 1 : r->last, 0, mid);
        client_send(c, proto_gap(w->kind == 'c' ? w->name : NULL, mid));
        w->gap_told = 1;
    }
    for (size_t i = 0; i < r->n; i++) {
        client_replay_id(r, r->items[i].offset, 1, mid);
        client_send(c, proto_text_frame(r->items[i].body->text, mid));
    }
    return r->ok;
}

/* Answer w's subscribe with position id (a stream's) and what since recovered. */
static void client_wait_answer(struct client_wait *w, const char *id, int ok)
{
    if (w->ref == NULL)
        return;
    if (id == NULL)
        client_ok(w->c, w->ref, w->members);
    else
        client_send(w->c, proto_ok_stream(w->ref, w->members, id, w->since != NULL ? ok : -1));
    w->members = NULL;
}

/*
 * Live frames of w's stream held back while its replay was on its way
 * (worker.c): where their newest offset goes, and the flag that holds them,
 * or NULL when the subscription went.
 */
static uint64_t *client_wait_skipped(const struct client_wait *w, unsigned *replaying)
{
    struct sub *s;

    if (w->kind == 'u') {
        *replaying = (unsigned)w->c->user_replaying;
        return &w->c->user_skipped;
    }
    s = sub_of_conn(w->c->client->subs, w->name, strlen(w->name));
    *replaying = s != NULL ? s->replaying : 0;
    return s != NULL ? &s->skipped : NULL;
}

/* Live frames flow to w's stream again, the replay done. */
static void client_wait_replay_off(struct client_wait *w)
{
    struct sub *s;

    if (w->kind == 'u') {
        w->c->user_replaying = 0;
        w->c->user_skipped = 0;
        return;
    }
    s = sub_of_conn(w->c->client->subs, w->name, strlen(w->name));
    if (s != NULL) {
        s->replaying = 0;
        s->skipped = 0;
    }
}

static void client_replayed(void *arg, int err, const struct eng_since *r);

/*
 * A network engine's live frames can overtake a replay (engine.h): those
 * held back past what the replay read are read again, from its end, also
 * when the replay could not recover everything (the client is told so at
 * the end, and still gets what came after). Returns whether another round
 * is on its way.
 */
static int client_replay_again(struct client_wait *w, const struct eng_since *r)
{
    unsigned replaying;
    uint64_t *skipped = client_wait_skipped(w, &replaying);

    if (skipped == NULL || !replaying || *skipped <= r->last)
        return 0;
    *skipped = 0;
    w->rounds++;
    eng_since(w->engine, &(struct eng_stream){w->site, w->kind, w->name}, r->id, client_replayed,
              w);
    return 1;
}

/*
 * A catch-up is done: only a loss is told (proto_gap), the page then reloads
 * its state. id NULL: the engine could not answer; the client is told at
 * the position it has, as what was held back for the replay is gone.
 */
static void client_gap_answered(struct client_wait *w, const char *id, int ok)
{
    char own[ENG_ID_MAX];
    uint64_t *last = client_wait_last(w);

    if (id == NULL) {
        eng_id(w->engine, &(struct eng_stream){w->site, w->kind, w->name}, last != NULL ? *last : 0,
               own);
        id = own;
    }
    if (ok) {
        conn_stats(w->c)->recoveries_ok++;
    } else {
        conn_stats(w->c)->recoveries_failed++;
        if (!w->gap_told)
            client_send(w->c, proto_gap(w->kind == 'c' ? w->name : NULL, id));
    }
    client_wait_end(w);
}

/* eng_since_fn: replay, record the position, then answer as the replay says. */
static void client_replayed(void *arg, int err, const struct eng_since *r)
{
    struct client_wait *w = arg;
    uint64_t *last;
    int ok;

    if (w->c == NULL) {
        client_wait_end(w);
        return;
    }
    ok = err == ENG_OK && client_send_missed(w, r);
    last = client_wait_last(w);
    if (err == ENG_OK && last != NULL)
        *last = r->last;
    ok = w->rounds == 0 ? ok : w->ok && ok;
    w->ok = ok;
    if (err == ENG_OK && client_replay_again(w, r))
        return;
    client_wait_replay_off(w);
    if (w->gap) {
        client_gap_answered(w, err == ENG_OK ? r->id : NULL, ok);
        return;
    }
    if (w->since != NULL && w->since[0] != '\0') {
        if (ok)
            conn_stats(w->c)->recoveries_ok++;
        else
            conn_stats(w->c)->recoveries_failed++;
    }
    if (w->kind == 'u')
        client_send(w->c, proto_stream(err == ENG_OK ? r->id : "", ok));
    else
        client_wait_answer(w, err == ENG_OK ? r->id : "", ok);
    client_wait_end(w);
}

/* The members are in (or there are none to ask for): replay, or answer at once. */
static void client_wait_members_done(struct client_wait *w)
{
    struct engine *e = w->c->x->hub->engine;
    struct eng_stream st = client_wait_stream(w);
    uint64_t *last = client_wait_last(w);
    char id[ENG_ID_MAX];

    if (!e->history || (w->again && w->ref == NULL)) {
        client_wait_answer(w, NULL, 1);
        client_wait_end(w);
    } else if (w->again) {
        /* In place all along: its position is what it has been sent; nothing to replay. */
        eng_id(e, &st, last != NULL ? *last : 0, id);
        client_wait_answer(w, id, 1);
        client_wait_end(w);
    } else {
        eng_since(e, &st, w->since != NULL ? w->since : "", client_replayed, w);
    }
}

/*
 * A join went through: the subscription is a member from now on, or, if
 * it went away (or its connection) while the engine answered, it leaves.
 */
static void client_joined(struct client_wait *w)
{
    struct eng_stream ch = client_wait_stream(w);
    struct sub *s = NULL;

    if (w->c != NULL)
        s = sub_of_conn(w->c->client->subs, w->name, strlen(w->name));
    if (s != NULL)
        s->presence = 1;
    else
        eng_leave(w->engine, &ch, w->joiner);
}

/* eng_members_fn: keep the members for the answer, then go on. */
static void client_got_members(void *arg, int err, json_t *members)
{
    struct client_wait *w = arg;

    w->members = err == ENG_OK ? members : json_array();
    if (err == ENG_OK && w->joiner != NULL)
        client_joined(w);
    if (w->c == NULL) {
        client_wait_end(w);
        return;
    }
    client_wait_members_done(w);
}

/* Ask for the members when channel is a presence channel (joining when c is a user), then go on. */
static void client_wait_start(struct client_wait *w, int join)
{
    struct conn *c = w->c;
    const struct cfg_site *cfg = conn_cfg(c);
    struct engine *e = c->x->hub->engine;
    struct eng_stream ch = client_wait_stream(w);

    if (!chan_match_any(cfg->presence_channels, cfg->npresence_channels, w->name,
                        strlen(w->name))) {
        client_wait_members_done(w);
        return;
    }
    /* An anonymous subscriber sees the members and their events, but is not one. */
    if (join && client_user(c) != NULL) {
        w->joiner = xstrdup(client_user(c));
        eng_join(e, &ch, w->joiner, c->client->info, client_got_members, w);
    } else
        eng_members(e, &ch, 0, client_got_members, w);
}

/* Subscribe c (allowed, not yet subscribed), replay what it missed, and answer ok. */
static void client_subscribe_now(struct conn *c, const json_t *ref, const char *channel,
                                 const char *since)
{
    struct client *cl = client_get(c);
    struct eng_stream ch = {c->site, 'c', channel};
    struct sub *s;
    int appeared;

    s = sub_add(&conn_site(c)->subs, &cl->subs, c, channel, strlen(channel), &appeared);
    cl->nsubs++;
    /* Its replay (client_wait_members_done) comes first; live numbered frames wait for it. */
    s->replaying = c->x->hub->engine->history;
    if (appeared)
        eng_hold(c->x->hub->engine, &ch, c->x->id, 1);
    client_wait_start(client_wait_new(c, 'c', channel, ref, since), 1);
}

/*
 * Answer a subscribe that is already in place: the connection has been
 * receiving all along, so nothing is replayed, and its position is what it
 * has been sent (a newer id could be ahead of frames still on their way).
 */
static void client_subscribe_again(struct conn *c, const json_t *ref, struct sub *s,
                                   const char *since)
{
    struct client_wait *w = client_wait_new(c, 'c', s->chan->name, ref, since);

    w->again = 1;
    client_wait_start(w, 0);
}

/* {"op":"subscribe"} */
static void client_subscribe(struct conn *c, const struct proto_cmd *cmd)
{
    struct client *cl = c->client;
    const char *why = "not allowed to subscribe to this channel";
    struct sub *s = cl != NULL ? sub_of_conn(cl->subs, cmd->channel, cmd->channel_len) : NULL;
    enum proto_err r;

    if (s != NULL) {
        client_subscribe_again(c, cmd->ref, s, cmd->since);
        return;
    }
    if (cl != NULL && cl->nsubs >= (size_t)conn_cfg(c)->max_subscriptions) {
        client_fail(c, cmd->ref, PROTO_E_TOO_MANY_SUBSCRIPTIONS,
                    "this connection holds max_subscriptions channels");
        return;
    }
    r = client_may_subscribe(c, cmd, &why);
    if (r == PROTO_OK) {
        client_subscribe_now(c, cmd->ref, cmd->channel, cmd->since);
        return;
    }
    if (r == PROTO_E_FORBIDDEN && (conn_cfg(c)->hooks & CFG_HOOK_SUBSCRIBE) &&
        client_user(c) != NULL) {
        json_t *body = client_rpc_body(c);

        json_object_set_new(body, "channel", json_string(cmd->channel));
        r = client_call(c, RPC_SUBSCRIBE, body, cmd->ref, cmd->channel, cmd->since);
        if (r == PROTO_OK)
            return;
        why = "PHP could not be asked";
    }
    client_fail(c, cmd->ref, r, why);
}

/* Remove one subscription of c, with its presence and directory entries. */
static void client_drop_sub(struct conn *c, struct sub *s)
{
    char *name = xstrdup(s->chan->name);
    struct eng_stream ch = {c->site, 'c', name};

    if (s->presence)
        eng_leave(c->x->hub->engine, &ch, client_user(c));
    if (sub_remove(&conn_site(c)->subs, &c->client->subs, s))
        eng_hold(c->x->hub->engine, &ch, c->x->id, 0);
    c->client->nsubs--;
    free(name);
}

/* {"op":"unsubscribe"} */
static void client_unsubscribe(struct conn *c, const struct proto_cmd *cmd)
{
    struct sub *s =
        c->client != NULL ? sub_of_conn(c->client->subs, cmd->channel, cmd->channel_len) : NULL;

    if (s != NULL)
        client_drop_sub(c, s);
    client_ok(c, cmd->ref, NULL);
}

/*
 * A one-item publish job to channel's subscribers in site but skip_conn,
 * with frame m (consumed; NULL when the engine makes it from the envelope).
 */
static struct cmd_job *client_channel_job(const struct cmd_hub *hub, int site, const char *channel,
                                          struct msg *m, uint64_t skip_conn)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, hub->nqueues, 1);

    job->site = site;
    job->items[0].msg = m;
    job->items[0].channel = xstrdup(channel);
    job->items[0].skip_conn = skip_conn;
    return job;
}

/* eng_done_fn for a detached job: one the engine did not take is still ours. */
static void client_handed_out(void *job, int err)
{
    if (err == ENG_OK)
        return;
    log_msg(LOG_WARN, "client", "a browser's publish was not sent: the engine is unavailable");
    cmd_job_free(job);
}

/* Publish job (detached: a worker never waits for another), made from *text when not NULL. */
static void client_hand_out(struct cmd_hub *hub, struct cmd_job *job, char **text)
{
    struct eng_pub p = {job->site, job->items, job->nitems, text, job, 1};

    eng_publish(hub->engine, &p, client_handed_out, job);
}

/* {"op":"publish"} */
static void client_publish(struct conn *c, const struct proto_cmd *cmd)
{
    const struct cfg_site *cfg = conn_cfg(c);
    struct cmd_job *job;
    char *text;

    if (client_user(c) == NULL || !chan_match_any(cfg->client_publish, cfg->nclient_publish,
                                                  cmd->channel, cmd->channel_len)) {
        client_fail(c, cmd->ref, PROTO_E_FORBIDDEN, "not allowed to publish into this channel");
        return;
    }
    if (c->client == NULL || sub_of_conn(c->client->subs, cmd->channel, cmd->channel_len) == NULL) {
        client_fail(c, cmd->ref, PROTO_E_NOT_SUBSCRIBED, "subscribe to the channel first");
        return;
    }
    text = proto_channel_text(cmd->channel, cmd->event, cmd->data, client_user(c));
    if (text == NULL) {
        client_fail(c, cmd->ref, PROTO_E_BAD_COMMAND, "data cannot be encoded");
        return;
    }
    job = client_channel_job(c->x->hub, c->site, cmd->channel, NULL, cmd->echo ? 0 : c->id);
    client_hand_out(c->x->hub, job, &text);
    free(text);
    client_ok(c, cmd->ref, NULL);
}

/* {"op":"rpc"} */
static void client_rpc(struct conn *c, const struct proto_cmd *cmd)
{
    json_t *body;
    enum proto_err r;

    if (conn_cfg(c)->rpc_socket == NULL) {
        client_fail(c, cmd->ref, PROTO_E_RPC_DISABLED, "RPC is not configured on this server");
        return;
    }
    body = client_rpc_body(c);
    json_object_set_new(body, "method", json_string(cmd->method));
    json_object_set(body, "data", cmd->data != NULL ? cmd->data : json_null());
    r = client_call(c, RPC_CALL, body, cmd->ref, NULL, NULL);
    if (r != PROTO_OK)
        client_fail(c, cmd->ref, r,
                    r == PROTO_E_RPC_BUSY ? "too many calls in flight" : "PHP cannot be reached");
}

/* Take one command from c's bucket (command_rate per second, command_burst deep). */
static int client_rate_ok(struct conn *c)
{
    const struct cfg_site *cfg = conn_cfg(c);
    struct client *cl = client_get(c);
    double now = ev_now(c->x->loop);

    if (cfg->command_rate == 0)
        return 1;
    if (cl->refilled == 0)
        cl->tokens = cfg->command_burst;
    else
        cl->tokens += (now - cl->refilled) * cfg->command_rate;
    if (cl->tokens > cfg->command_burst)
        cl->tokens = cfg->command_burst;
    cl->refilled = now;
    if (cl->tokens < 1)
        return 0;
    cl->tokens -= 1;
    return 1;
}

void client_message(struct conn *c, const char *text, size_t len)
{
    struct proto_cmd cmd;
    const char *why = NULL;
    enum proto_err r = proto_parse(text, len, &cmd, &why);

    if (!client_rate_ok(c)) {
        r = PROTO_E_RATE_LIMITED;
        why = "over command_rate: slow down";
    }
    if (r != PROTO_OK) {
        client_fail(c, cmd.ref, r, why);
        proto_cmd_free(&cmd);
        return;
    }
    switch (cmd.op) {
    case PROTO_SUBSCRIBE: client_subscribe(c, &cmd); break;
    case PROTO_UNSUBSCRIBE: client_unsubscribe(c, &cmd); break;
    case PROTO_PUBLISH: client_publish(c, &cmd); break;
    case PROTO_RPC: client_rpc(c, &cmd); break;
    }
    proto_cmd_free(&cmd);
}

/* ?since= on the URL: replay the user's stream, then say where it stands. */
static void client_recover_user(struct conn *c, const char *since)
{
    struct client_wait *w;

    if (since == NULL || client_user(c) == NULL || !c->x->hub->engine->history)
        return;
    w = client_wait_new(c, 'u', client_user(c), NULL, since);
    c->user_replaying = 1;
    eng_since(c->x->hub->engine, &(struct eng_stream){c->site, 'u', w->name}, since,
              client_replayed, w);
}

void client_opened(struct conn *c, const char *since)
{
    enum proto_err err;

    client_recover_user(c, since);
    if (!(conn_cfg(c)->hooks & CFG_HOOK_CONNECT))
        return;
    /* A notification: not the client's call, so not on its list or its rpc_max_per_conn.
     * rpc.c counts a hook it could not send (dropped) or not deliver (failed). */
    rpc_start(&c->x->rpc, c->site, RPC_CONNECT, NULL, client_rpc_body(c), &err);
}

void client_closed(struct conn *c)
{
    struct client *cl = c->client;
    json_t *body;
    enum proto_err err;

    if (cl != NULL) {
        while (cl->subs != NULL)
            client_drop_sub(c, cl->subs);
        for (struct rpc_call *call = cl->calls; call != NULL; call = call->conn_next)
            call->conn = NULL;
        cl->calls = NULL;
        cl->ncalls = 0;
        /* Engine answers still to come find their connection gone, and free themselves. */
        for (struct client_wait *w = cl->waits; w != NULL; w = w->next)
            w->c = NULL;
        cl->waits = NULL;
    }
    if (!(conn_cfg(c)->hooks & CFG_HOOK_DISCONNECT))
        return;
    body = client_rpc_body(c);
    rpc_start(&c->x->rpc, c->site, RPC_DISCONNECT, NULL, body, &err);
}

void client_free(struct client *cl)
{
    if (cl == NULL)
        return;
    /* client_closed detached them already, unless the connection never closed as OPEN. */
    for (struct client_wait *w = cl->waits; w != NULL; w = w->next)
        w->c = NULL;
    for (size_t i = 0; i < cl->nchannels; i++)
        free(cl->channels[i]);
    free(cl->channels);
    free(cl->info);
    free(cl);
}

/* Take call off its connection's list. */
static void client_unlink_call(struct conn *c, struct rpc_call *call)
{
    struct rpc_call **pp;

    for (pp = &c->client->calls; *pp != NULL; pp = &(*pp)->conn_next) {
        if (*pp == call) {
            *pp = call->conn_next;
            c->client->ncalls--;
            return;
        }
    }
}

/* PHP's own error answer {"code","message"} (rpc.c checked the code) to the client. */
static void client_app_error(struct conn *c, const struct rpc_call *call,
                             const struct rpc_result *res)
{
    const char *code = json_string_value(json_object_get(res->answer, "code"));
    const char *message = json_string_value(json_object_get(res->answer, "message"));

    client_send(c, proto_error(call->ref, code, message != NULL ? message : ""));
}

/* Does a subscribe hook's answer allow: true or {"allow": true}? */
static int client_hook_allows(const struct rpc_result *res)
{
    if (res->err != PROTO_OK || res->status / 100 != 2)
        return 0;
    return json_is_true(res->answer) || json_is_true(json_object_get(res->answer, "allow"));
}

/* The subscribe hook answered. */
static void client_hook_subscribed(struct conn *c, const struct rpc_call *call,
                                   const struct rpc_result *res)
{
    struct client *cl = c->client;

    if (res->err != PROTO_OK) {
        client_fail(c, call->ref, res->err, res->why);
        return;
    }
    if (!client_hook_allows(res)) {
        client_fail(c, call->ref, PROTO_E_FORBIDDEN, "PHP did not allow this channel");
        return;
    }
    if (sub_of_conn(cl->subs, call->channel, strlen(call->channel)) != NULL)
        client_ok(c, call->ref, NULL);
    else if (cl->nsubs >= (size_t)conn_cfg(c)->max_subscriptions)
        client_fail(c, call->ref, PROTO_E_TOO_MANY_SUBSCRIPTIONS,
                    "this connection holds max_subscriptions channels");
    else
        client_subscribe_now(c, call->ref, call->channel, call->since);
}

void client_rpc_done(struct rpc_call *call, const struct rpc_result *res)
{
    struct conn *c = call->conn;

    /* Hooks are started with no connection: nobody waits for their answer. */
    if (c == NULL)
        return;
    client_unlink_call(c, call);
    if (call->kind == RPC_SUBSCRIBE) {
        client_hook_subscribed(c, call, res);
        return;
    }
    if (res->err != PROTO_OK)
        client_fail(c, call->ref, res->err, res->why);
    else if (res->status / 100 == 2)
        client_send(c, proto_reply(call->ref, res->body, res->body_len));
    else
        client_app_error(c, call, res);
}

void client_presence_event(void *hub, int site, int join, const char *channel, const char *user,
                           const char *info)
{
    struct msg *m = proto_presence(join, channel, user, info);

    if (m == NULL) {
        log_msg(LOG_ERROR, "client", "cannot encode a presence event for %s", channel);
        return;
    }
    client_hand_out(hub, client_channel_job(hub, site, channel, m, 0), NULL);
}

/*
 * conn_ops.on_gap: read what c missed of the stream since what it was
 * sent. A replay already on its way reads again from its end (its held-back
 * mark is set past anything), since what was lost may be after it.
 */
static void client_on_gap(struct conn *c, char kind, const char *name, const char *epoch)
{
    struct engine *e = c->x->hub->engine;
    struct client_wait w0 = {.c = c, .kind = kind, .name = (char *)name};
    struct client_wait *w;
    unsigned replaying;
    uint64_t *skipped, *last;
    char id[ENG_ID_MAX];

    if (c->client == NULL || !e->history)
        return;
    skipped = client_wait_skipped(&w0, &replaying);
    last = client_wait_last(&w0);
    if (skipped == NULL || last == NULL)
        return;
    if (replaying) {
        *skipped = UINT64_MAX;
        return;
    }
    if (epoch[0] != '\0')
        snprintf(id, sizeof id, "%s:%" PRIu64, epoch, *last);
    else
        eng_id(e, &(struct eng_stream){c->site, kind, name}, *last, id);
    w = client_wait_new(c, kind, name, NULL, id);
    w->gap = 1;
    if (kind == 'u')
        c->user_replaying = 1;
    else
        sub_of_conn(c->client->subs, name, strlen(name))->replaying = 1;
    eng_since(e, &(struct eng_stream){c->site, kind, name}, id, client_replayed, w);
}

/* conn_ops.on_free: the connection's protocol state goes with it. */
static void client_on_free(struct conn *c)
{
    client_free(c->client);
    c->client = NULL;
}

const struct conn_ops client_conn_ops = {
    .on_claims = client_claims,
    .on_open = client_opened,
    .on_message = client_message,
    .on_close = client_closed,
    .on_free = client_on_free,
    .on_gap = client_on_gap,
};

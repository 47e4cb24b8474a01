/*
 * rlink.c -- one link to Redis on a libev loop (rlink.h), over hiredis's
 * async API and its libev adapter.
 *
 * Owns:       struct rlink, its redisAsyncContext (NULL while down) and the
 *             list of commands in flight, oldest first.
 * Called by:  the loop's thread only.
 * Invariants: a command is on the list from the moment hiredis took it
 *             until hiredis hands its reply (or NULL, when the context
 *             goes) to rlink_on_reply, which frees it. It is answered once:
 *             when the deadline passes first, it is answered then and
 *             marked, and the reply that hiredis hands over later (NULL,
 *             as the context is freed) only frees it. The context is freed
 *             only outside hiredis's callbacks (the deadline timer,
 *             rlink_free); a connection hiredis drops itself is freed by
 *             hiredis after its disconnect callback. A script (rlink_eval)
 *             goes by its digest, loaded once per connection: the list of
 *             loaded ones starts empty with each connection.
 */
#include "rlink.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <openssl/evp.h>

#include "log.h"
#include "net.h"
#include "rreply.h"
#include "rsentinel.h"
#include "xmalloc.h"

/* The fuzz target's reader budget (rlink_reader_new). */
struct rlink_budget {
    struct rreply_budget b;
};

struct rlink_cmd {
    struct rlink_cmd *next; /* borrowed: the next command sent */
    struct rlink *l;        /* borrowed */
    rlink_reply_fn *done;
    void *arg;
    ev_tstamp due; /* when it times out */
    int answered;  /* done has been called (a timeout) */
    int gone;      /* its reply was handed over: freed after this loop turn (rlink_on_check) */
};

/* The scripts one connection has loaded, at most (more are loaded before each use). */
#define RLINK_SCRIPTS_MAX 32

struct rlink {
    struct ev_loop *loop;
    char *host;     /* owned: numeric address, or NULL for a unix socket */
    int port;       /* with host */
    char *path;     /* owned: unix socket path, or NULL */
    char *password; /* owned, or NULL */
    int db;
    double timeout, backoff_min, backoff_max;
    double backoff;           /* the wait before the next reconnect */
    redisAsyncContext *ac;    /* owned: NULL while down */
    int up;                   /* connected, AUTH and SELECT done */
    ev_timer retry;           /* the next reconnect */
    ev_timer deadline;        /* the oldest command's */
    ev_check reap;            /* frees the commands whose replies were handed over */
    ev_tstamp progress;       /* the last reply (or the connect): a busy server still answers */
    struct rlink_cmd *gone;   /* owned: those commands */
    struct rlink_cmd *head;   /* owned: commands in flight, oldest first */
    struct rlink_cmd *tail;   /* borrowed */
    rlink_state_fn *on_state; /* may be NULL */
    void *arg;
    rlink_push_fn *on_push; /* a subscriber link's, or NULL */
    void *push_arg;
    struct rreply_budget budget; /* of the reply being read */
    char **sentinels;            /* owned: ask them where the master is, or NULL */
    size_t nsentinels;
    size_t next_sentinel; /* the one to ask first next time */
    char *master;         /* owned: the name they watch it under */
    struct rsentinel *asking;
    const struct rlink_script *loaded[RLINK_SCRIPTS_MAX]; /* on this connection */
    size_t nloaded;
    struct rlink_stats *stats; /* borrowed, or NULL */
    int was_up;                /* has been up before: coming up again is a reconnect */
};

static void rlink_connect(struct rlink *l);

redisReader *rlink_reader_new(struct rlink_budget **budget)
{
    redisReader *r = redisReaderCreateWithFunctions(&rreply_fns);

    *budget = xcalloc(1, sizeof **budget);
    if (r != NULL)
        r->privdata = &(*budget)->b;
    return r;
}

/* Split "HOST:PORT" (numeric host, [IPv6], or localhost) or "unix:PATH" into l; -1 when malformed.
 */
static int rlink_parse(struct rlink *l, const char *address)
{
    const char *colon = strrchr(address, ':');
    unsigned char bin[16];
    char *end;
    long port;

    if (net_is_unix(address)) {
        l->path = xstrdup(address + 5);
        return l->path[0] == '/' ? 0 : -1;
    }
    if (colon == NULL)
        return -1;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535 || end == colon + 1)
        return -1;
    /* "[::1]:6379": the brackets only mark where the address ends. */
    if (address[0] == '[' && colon > address + 1 && colon[-1] == ']')
        l->host = xstrndup(address + 1, (size_t)(colon - address - 2));
    else
        l->host = xstrndup(address, (size_t)(colon - address));
    if (strcmp(l->host, "localhost") == 0) {
        free(l->host);
        l->host = xstrdup("127.0.0.1");
    }
    l->port = (int)port;
    /* Numeric only: hiredis would resolve a name with a blocking lookup. */
    return net_parse_addr(l->host, bin) == 0 ? 0 : -1;
}

/* The link went down (or never came up): tell the owner, once. */
static void rlink_went_down(struct rlink *l)
{
    if (!l->up)
        return;
    l->up = 0;
    if (l->on_state != NULL)
        l->on_state(l->arg, 0);
}

/* Try again after the backoff, which doubles up to backoff_max. */
static void rlink_schedule(struct rlink *l)
{
    ev_timer_set(&l->retry, l->backoff, 0);
    ev_timer_start(l->loop, &l->retry);
    l->backoff *= 2;
    if (l->backoff > l->backoff_max)
        l->backoff = l->backoff_max;
}

/* Arm the deadline for the oldest command in flight, or stop it when there is none. */
static void rlink_arm(struct rlink *l)
{
    struct rlink_cmd *c = l->head;
    ev_tstamp due;

    ev_timer_stop(l->loop, &l->deadline);
    while (c != NULL && c->answered)
        c = c->next;
    if (c == NULL)
        return;
    /* A command waits its turn behind the others: it times out when the server has answered
     * nothing for a whole timeout, not when a burst queued before it takes longer. */
    due = c->due > l->progress + l->timeout ? c->due : l->progress + l->timeout;
    ev_timer_set(&l->deadline, due - ev_now(l->loop) > 0 ? due - ev_now(l->loop) : 0, 0);
    ev_timer_start(l->loop, &l->deadline);
}

/* Answer every command not answered yet with err (they stay listed until hiredis lets go). */
static void rlink_fail_all(struct rlink *l, int err)
{
    for (struct rlink_cmd *c = l->head; c != NULL; c = c->next) {
        if (c->answered)
            continue;
        c->answered = 1;
        if (l->stats != NULL)
            atomic_fetch_add_explicit(&l->stats->errors, 1, memory_order_relaxed);
        c->done(c->arg, err, NULL);
    }
    ev_timer_stop(l->loop, &l->deadline);
}

/* Count c's answer: its round trip (it was sent a timeout before its due), or an error. */
static void rlink_count(struct rlink *l, const struct rlink_cmd *c, const redisReply *reply)
{
    double rtt = ev_now(l->loop) - (c->due - l->timeout);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        atomic_fetch_add_explicit(&l->stats->errors, 1, memory_order_relaxed);
    if (reply != NULL)
        histo_observe_shared(&l->stats->rtt, rtt > 0 ? (uint64_t)(rtt * 1e9) : 0);
}

/* hiredis: a command's reply, or NULL when its context goes. */
static void rlink_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rlink_cmd *c = privdata;
    struct rlink *l;
    const redisReply *reply = r;
    struct rlink_cmd **pp;

    /* hiredis 0.14 hands a push on a channel it has no entry for to the previous callback
     * again: that command is answered already (and kept until the loop turn ends). */
    if (c->gone)
        return;
    l = c->l;
    if (reply != NULL) {
        l->budget.inflight--;
        l->progress = ev_now(l->loop);
    }
    pp = &l->head;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    if (l->tail == c) {
        l->tail = NULL;
        for (struct rlink_cmd *t = l->head; t != NULL; t = t->next)
            l->tail = t;
    }
    if (!c->answered && l->stats != NULL)
        rlink_count(l, c, reply);
    if (!c->answered) {
        if (reply == NULL)
            c->done(c->arg, RLINK_E_DOWN, NULL);
        else
            c->done(c->arg, reply->type == REDIS_REPLY_ERROR ? RLINK_E_REPLY : RLINK_OK, reply);
    }
    /* A master turned replica under us (a failover): find the new one. */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && l->nsentinels > 0 &&
        strstr(reply->str, "READONLY") != NULL && l->ac != NULL &&
        !(l->ac->c.flags & REDIS_DISCONNECTING)) {
        log_msg(LOG_WARN, "redis", "%s:%d is a replica now; asking the Sentinels again", l->host,
                l->port);
        redisAsyncDisconnect(l->ac);
    }
    /* The server forgot the scripts (SCRIPT FLUSH): what follows must not overtake this one. */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && l->ac != NULL &&
        !(l->ac->c.flags & REDIS_DISCONNECTING)) {
        log_msg(LOG_WARN, "redis", "the server lost the scripts; reconnecting to load them again");
        redisAsyncDisconnect(l->ac);
    }
    c->gone = 1;
    c->next = l->gone;
    l->gone = c;
    ev_check_start(l->loop, &l->reap);
    rlink_arm(l);
}

/* Free the commands whose replies were handed over, once hiredis is done with this turn. */
static void rlink_on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
    struct rlink *l = w->data;

    while (l->gone != NULL) {
        struct rlink_cmd *c = l->gone;

        l->gone = c->next;
        free(c);
    }
    ev_check_stop(loop, w);
}

/* c went to hiredis: list it, and time it if it is the oldest. */
static void rlink_track(struct rlink *l, struct rlink_cmd *c)
{
    l->budget.inflight++;
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    if (!ev_is_active(&l->deadline))
        rlink_arm(l);
}

/* Send a command on the context as it is, up or not (the handshake needs that). */
static int rlink_send(struct rlink *l, rlink_reply_fn *done, void *arg, const char *fmt, va_list ap)
{
    struct rlink_cmd *c = xcalloc(1, sizeof *c);

    c->l = l;
    c->done = done;
    c->arg = arg;
    c->due = ev_now(l->loop) + l->timeout;
    if (redisvAsyncCommand(l->ac, rlink_on_reply, c, fmt, ap) != REDIS_OK) {
        free(c);
        return RLINK_E_DOWN;
    }
    rlink_track(l, c);
    return RLINK_OK;
}

/* rlink_send with the arguments given here. */
static int rlink_send_f(struct rlink *l, rlink_reply_fn *done, void *arg, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = rlink_send(l, done, arg, fmt, ap);
    va_end(ap);
    return r;
}

/* Drop the connection (not from inside a hiredis callback), and reconnect later. */
static void rlink_drop(struct rlink *l, int err)
{
    redisAsyncContext *ac = l->ac;

    rlink_fail_all(l, err);
    rlink_went_down(l);
    if (ac != NULL) {
        /* NULL first: freeing runs the disconnect callback, which must see it gone. */
        l->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    rlink_schedule(l);
}

/* The oldest command's deadline passed. */
static void rlink_on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rlink *l = t->data;

    log_msg(LOG_WARN, "redis", "no reply within %.3g s: dropping the connection and reconnecting",
            l->timeout);
    rlink_drop(l, RLINK_E_TIMEOUT);
}

/* A handshake step Redis refused (a wrong password, a database it has not): drop, retry later. */
static int rlink_refused(struct rlink *l, int err, const redisReply *reply)
{
    if (err != RLINK_E_REPLY)
        return err != RLINK_OK;
    /* The first refusal says why; those queued behind it only repeat it. */
    if (l->ac != NULL && !(l->ac->c.flags & REDIS_DISCONNECTING)) {
        log_msg(LOG_ERROR, "redis", "the server refused the connection: %s", reply->str);
        redisAsyncDisconnect(l->ac);
    }
    return 1;
}

/* AUTH or SELECT answered. */
static void rlink_on_step(void *arg, int err, const redisReply *reply)
{
    rlink_refused(arg, err, reply);
}

/* The handshake's last step (PING, or ROLE with Sentinels) answered: the link is up. */
static void rlink_on_ready(void *arg, int err, const redisReply *reply)
{
    struct rlink *l = arg;

    if (rlink_refused(l, err, reply) || l->ac == NULL || (l->ac->c.flags & REDIS_DISCONNECTING))
        return;
    if (l->nsentinels > 0 && !(reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                               reply->element[0]->type == REDIS_REPLY_STRING &&
                               strcmp(reply->element[0]->str, "master") == 0)) {
        /* The Sentinels' answer was stale (a failover under way): ask again. */
        log_msg(LOG_WARN, "redis", "%s:%d is not the master; asking the Sentinels again", l->host,
                l->port);
        l->next_sentinel++;
        redisAsyncDisconnect(l->ac);
        return;
    }
    /* From now on every array is a push: the handshake's (ROLE's) are not. */
    l->budget.pushes = l->on_push != NULL;
    l->up = 1;
    if (l->was_up && l->stats != NULL)
        atomic_fetch_add_explicit(&l->stats->reconnects, 1, memory_order_relaxed);
    l->was_up = 1;
    l->backoff = l->backoff_min;
    log_msg(LOG_INFO, "redis", "connected");
    if (l->on_state != NULL)
        l->on_state(l->arg, 1);
}

/* hiredis: the connection is made, or failed (then hiredis frees the context). */
static void rlink_on_connect(const redisAsyncContext *ac, int status)
{
    struct rlink *l = ac->data;

    if (l == NULL)
        return;
    if (status == REDIS_OK)
        return;
    log_msg(LOG_WARN, "redis", "cannot connect: %s; retrying in %.3g s", ac->errstr, l->backoff);
    l->ac = NULL;
    rlink_fail_all(l, RLINK_E_DOWN);
    rlink_schedule(l);
}

/* hiredis: the connection is gone (then hiredis frees the context). */
static void rlink_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rlink *l = ac->data;

    if (l == NULL)
        return;
    log_msg(LOG_WARN, "redis", "connection lost%s%s; reconnecting in %.3g s",
            ac->errstr[0] != '\0' ? ": " : "", ac->errstr, l->backoff);
    l->ac = NULL;
    rlink_fail_all(l, RLINK_E_DOWN);
    rlink_went_down(l);
    rlink_schedule(l);
}

/* Start connecting; the handshake commands are queued behind the connect. */
static void rlink_connect_to(struct rlink *l)
{
    redisAsyncContext *ac =
        l->path != NULL ? redisAsyncConnectUnix(l->path) : redisAsyncConnect(l->host, l->port);

    if (ac == NULL || ac->err) {
        log_msg(LOG_WARN, "redis", "cannot connect: %s; retrying in %.3g s",
                ac != NULL ? ac->errstr : "out of memory", l->backoff);
        if (ac != NULL)
            redisAsyncFree(ac);
        rlink_schedule(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->budget.pushes = 0;
    l->budget.counted = 1;
    l->budget.inflight = 0;
    l->nloaded = 0;
    l->progress = ev_now(l->loop);
    ac->c.reader->fn = &rreply_fns;
    ac->c.reader->privdata = &l->budget;
    redisLibevAttach(l->loop, ac);
    redisAsyncSetConnectCallback(ac, rlink_on_connect);
    redisAsyncSetDisconnectCallback(ac, rlink_on_disconnect);
    if (l->password != NULL)
        rlink_send_f(l, rlink_on_step, l, "AUTH %s", l->password);
    if (l->db != 0)
        rlink_send_f(l, rlink_on_step, l, "SELECT %d", l->db);
    if (l->nsentinels > 0)
        rlink_send_f(l, rlink_on_ready, l, "ROLE");
    else
        rlink_send_f(l, rlink_on_ready, l, "PING");
}

/* rsentinel_fn: connect to the master the Sentinels name, or try again after the backoff. */
static void rlink_on_master(void *arg, int ok, const char *host, int port)
{
    struct rlink *l = arg;
    /* host lives in the question, which goes now. */
    char *master = ok ? xstrdup(host) : NULL;

    rsentinel_cancel(l->asking);
    l->asking = NULL;
    if (!ok) {
        log_msg(LOG_WARN, "redis", "no Sentinel named the master %s; asking again in %.3g s",
                l->master, l->backoff);
        l->next_sentinel++;
        rlink_schedule(l);
        return;
    }
    if (l->host == NULL || strcmp(l->host, master) != 0 || l->port != port)
        log_msg(LOG_INFO, "redis", "the Sentinels name %s:%d as master %s", master, port,
                l->master);
    free(l->host);
    l->host = master;
    l->port = port;
    rlink_connect_to(l);
}

/* Connect: to the address, or to the master the Sentinels name first. */
static void rlink_connect(struct rlink *l)
{
    if (l->nsentinels == 0) {
        rlink_connect_to(l);
        return;
    }
    l->asking = rsentinel_ask(l->loop, l->sentinels, l->nsentinels, l->next_sentinel, l->master,
                              l->timeout, rlink_on_master, l);
}

/* The backoff is over: connect again. */
static void rlink_on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    rlink_connect(t->data);
}

struct rlink *rlink_new(struct ev_loop *loop, const struct rlink_cfg *cfg, rlink_state_fn *on_state,
                        void *arg)
{
    struct rlink *l = xcalloc(1, sizeof *l);

    if (cfg->nsentinels > 0) {
        l->sentinels = xcalloc(cfg->nsentinels, sizeof *l->sentinels);
        for (size_t i = 0; i < cfg->nsentinels; i++)
            l->sentinels[i] = xstrdup(cfg->sentinels[i]);
        l->nsentinels = cfg->nsentinels;
        l->master = xstrdup(cfg->master);
    } else if (rlink_parse(l, cfg->address) != 0) {
        log_msg(LOG_ERROR, "redis", "%s: expected HOST:PORT (a numeric address) or unix:/PATH",
                cfg->address);
        free(l->host);
        free(l->path);
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->password = cfg->password != NULL ? xstrdup(cfg->password) : NULL;
    l->db = cfg->db;
    l->timeout = cfg->timeout;
    l->backoff_min = l->backoff = cfg->backoff_min;
    l->backoff_max = cfg->backoff_max;
    l->on_state = on_state;
    l->arg = arg;
    ev_timer_init(&l->retry, rlink_on_retry, 0, 0);
    l->retry.data = l;
    ev_timer_init(&l->deadline, rlink_on_deadline, 0, 0);
    l->deadline.data = l;
    ev_check_init(&l->reap, rlink_on_reap);
    l->reap.data = l;
    rlink_connect(l);
    return l;
}

/* hiredis: a push on a subscriber link, or NULL when the context goes. */
static void rlink_on_push(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rlink *l = privdata;
    const redisReply *p = r;
    const redisReply *kind, *chan, *data;
    int type;

    /* The shape was checked as it was read (rreply.c). */
    if (p == NULL || l->on_push == NULL || p->type != REDIS_REPLY_ARRAY || p->elements != 3)
        return;
    kind = p->element[0];
    chan = p->element[1];
    data = p->element[2];
    if (strcmp(kind->str, "message") == 0)
        type = RLINK_PUSH_MESSAGE;
    else if (strcmp(kind->str, "subscribe") == 0)
        type = RLINK_PUSH_SUBSCRIBED;
    else if (strcmp(kind->str, "unsubscribe") == 0)
        type = RLINK_PUSH_UNSUBSCRIBED;
    else
        return;
    l->on_push(l->push_arg, type, chan->str, chan->len,
               type == RLINK_PUSH_MESSAGE ? data->str : NULL,
               type == RLINK_PUSH_MESSAGE ? data->len : 0);
}

void rlink_set_push(struct rlink *l, rlink_push_fn *fn, void *arg)
{
    l->on_push = fn;
    l->push_arg = arg;
    l->budget.pushes = l->up;
}

/* SUBSCRIBE or UNSUBSCRIBE one channel. */
static int rlink_subscription(struct rlink *l, const char *verb, const char *channel)
{
    if (!l->up || l->ac == NULL)
        return RLINK_E_DOWN;
    if (redisAsyncCommand(l->ac, rlink_on_push, l, "%s %s", verb, channel) != REDIS_OK)
        return RLINK_E_DOWN;
    return RLINK_OK;
}

int rlink_subscribe(struct rlink *l, const char *channel)
{
    return rlink_subscription(l, "SUBSCRIBE", channel);
}

int rlink_unsubscribe(struct rlink *l, const char *channel)
{
    return rlink_subscription(l, "UNSUBSCRIBE", channel);
}

void rlink_reset(struct rlink *l)
{
    if (l->ac == NULL)
        return;
    log_msg(LOG_WARN, "redis", "reconnecting a link that stopped answering");
    ev_timer_stop(l->loop, &l->retry);
    rlink_drop(l, RLINK_E_DOWN);
}

void rlink_set_stats(struct rlink *l, struct rlink_stats *st)
{
    l->stats = st;
}

int rlink_up(const struct rlink *l)
{
    return l->up;
}

int rlink_command(struct rlink *l, rlink_reply_fn *done, void *arg, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (!l->up)
        return RLINK_E_DOWN;
    va_start(ap, fmt);
    r = rlink_send(l, done, arg, fmt, ap);
    va_end(ap);
    return r;
}

int rlink_command_argv(struct rlink *l, rlink_reply_fn *done, void *arg, int argc,
                       const char **argv, const size_t *argvlen)
{
    struct rlink_cmd *c;

    if (!l->up)
        return RLINK_E_DOWN;
    c = xcalloc(1, sizeof *c);
    c->l = l;
    c->done = done;
    c->arg = arg;
    c->due = ev_now(l->loop) + l->timeout;
    if (redisAsyncCommandArgv(l->ac, rlink_on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free(c);
        return RLINK_E_DOWN;
    }
    rlink_track(l, c);
    return RLINK_OK;
}

/* Scripts are shared by every link, on any loop's thread: their digests are made under this. */
static pthread_mutex_t rlink_script_lock = PTHREAD_MUTEX_INITIALIZER;

/* s's digest, made the first time. */
static void rlink_script_digest(struct rlink_script *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    pthread_mutex_lock(&rlink_script_lock);
    if (s->sha[0] == '\0') {
        if (!EVP_Digest(s->text, strlen(s->text), md, &len, EVP_sha1(), NULL) || len != 20)
            abort(); /* SHA1 is built into every OpenSSL: this is no input's doing */
        for (unsigned int i = 0; i < len; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    }
    pthread_mutex_unlock(&rlink_script_lock);
}

/* SCRIPT LOAD answered: the digest must be the one EVALSHA sends. */
static void rlink_on_loaded(void *arg, int err, const redisReply *reply)
{
    const struct rlink_script *s = arg;

    if (err == RLINK_OK && (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, s->sha) != 0))
        log_msg(LOG_ERROR, "redis", "SCRIPT LOAD answered another digest than %s", s->sha);
    else if (err == RLINK_E_REPLY)
        log_msg(LOG_ERROR, "redis", "SCRIPT LOAD refused: %s", reply->str);
}

/* SCRIPT LOAD s unless this connection has, then EVALSHA it with args (formatted, numkeys on). */
static int rlink_send_eval(struct rlink *l, rlink_reply_fn *done, void *arg, struct rlink_script *s,
                           const char *args, size_t len)
{
    struct rlink_cmd *c;
    const char *rest = memchr(args, '\n', len);
    char *cmd;
    size_t i;
    int n, head;

    rlink_script_digest(s);
    for (i = 0; i < l->nloaded && l->loaded[i] != s; i++)
        ;
    if (i == l->nloaded) {
        if (rlink_send_f(l, rlink_on_loaded, (void *)s, "SCRIPT LOAD %s", s->text) != RLINK_OK)
            return RLINK_E_DOWN;
        if (l->nloaded < RLINK_SCRIPTS_MAX)
            l->loaded[l->nloaded++] = s;
    }
    /* "*<n>\r\n<args>" becomes "*<n + 2>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n<args>". */
    if (args[0] != '*' || rest == NULL)
        return RLINK_E_DOWN;
    n = atoi(args + 1) + 2;
    rest++;
    len -= (size_t)(rest - args);
    head = snprintf(NULL, 0, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", n, s->sha);
    cmd = xmalloc((size_t)head + len + 1);
    snprintf(cmd, (size_t)head + 1, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", n, s->sha);
    memcpy(cmd + head, rest, len); /* the arguments are binary */
    c = xcalloc(1, sizeof *c);
    c->l = l;
    c->done = done;
    c->arg = arg;
    c->due = ev_now(l->loop) + l->timeout;
    if (redisAsyncFormattedCommand(l->ac, rlink_on_reply, c, cmd, (size_t)head + len) != REDIS_OK) {
        free(cmd);
        free(c);
        return RLINK_E_DOWN;
    }
    free(cmd);
    rlink_track(l, c);
    return RLINK_OK;
}

int rlink_eval(struct rlink *l, rlink_reply_fn *done, void *arg, struct rlink_script *s, int argc,
               const char **argv, const size_t *argvlen)
{
    char *args = NULL;
    long long len;
    int r;

    if (!l->up)
        return RLINK_E_DOWN;
    len = redisFormatCommandArgv(&args, argc, argv, argvlen);
    if (len < 0)
        return RLINK_E_DOWN;
    r = rlink_send_eval(l, done, arg, s, args, (size_t)len);
    redisFreeCommand(args);
    return r;
}

int rlink_evalf(struct rlink *l, rlink_reply_fn *done, void *arg, struct rlink_script *s,
                const char *fmt, ...)
{
    char *args = NULL;
    va_list ap;
    int len, r;

    if (!l->up)
        return RLINK_E_DOWN;
    va_start(ap, fmt);
    len = redisvFormatCommand(&args, fmt, ap);
    va_end(ap);
    if (len < 0)
        return RLINK_E_DOWN;
    r = rlink_send_eval(l, done, arg, s, args, (size_t)len);
    redisFreeCommand(args);
    return r;
}

void rlink_free(struct rlink *l)
{
    if (l == NULL)
        return;
    ev_timer_stop(l->loop, &l->retry);
    rlink_fail_all(l, RLINK_E_DOWN);
    if (l->ac != NULL) {
        redisAsyncContext *ac = l->ac;

        l->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    ev_timer_stop(l->loop, &l->deadline);
    rsentinel_cancel(l->asking);
    for (size_t i = 0; i < l->nsentinels; i++)
        free(l->sentinels[i]);
    free(l->sentinels);
    free(l->master);
    rlink_on_reap(l->loop, &l->reap, 0);
    free(l->host);
    free(l->path);
    if (l->password != NULL)
        explicit_bzero(l->password, strlen(l->password));
    free(l->password);
    free(l);
}

/*
 * rsentinel.c -- ask Redis Sentinels where the master is (rsentinel.h).
 *
 * Owns:       struct rsentinel and its hiredis context to the Sentinel
 *             being asked (NULL between attempts).
 * Called by:  rlink.c, on its loop's thread.
 * Invariants: one Sentinel is asked at a time, under a deadline; the
 *             context is freed only outside hiredis's callbacks (the
 *             deadline timer, the next-step timer, cancel): inside them it
 *             is only disconnected, and hiredis frees it. Every step that
 *             ends an attempt goes through the next-step timer, so done
 *             never runs inside rsentinel_ask or a hiredis callback.
 */
#include "rsentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

#include "log.h"
#include "net.h"
#include "rreply.h"
#include "xmalloc.h"

struct rsentinel {
    struct ev_loop *loop;
    char **addrs; /* owned copies */
    size_t n;
    size_t tried; /* Sentinels asked so far */
    size_t at;    /* the one being asked */
    char *master; /* owned */
    double timeout;
    rsentinel_fn *done;
    void *arg;
    redisAsyncContext *ac; /* the attempt's, or NULL */
    ev_timer deadline;     /* the attempt's */
    ev_timer step;         /* 0 s: go on outside the callbacks */
    int found;             /* host and port hold the answer */
    char host[RSENTINEL_HOST_MAX];
    int port;
    struct rreply_budget budget;
};

static void rsentinel_try(struct rsentinel *s);

int rsentinel_parse(const struct redisReply *r, char *host, int *port)
{
    unsigned char bin[16];
    char *end;
    long p;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= RSENTINEL_HOST_MAX || r->element[0]->len == 0)
        return -1;
    memcpy(host, r->element[0]->str, r->element[0]->len);
    host[r->element[0]->len] = '\0';
    p = strtol(r->element[1]->str, &end, 10);
    if (*end != '\0' || end == r->element[1]->str || p < 1 || p > 65535 ||
        net_parse_addr(host, bin) != 0)
        return -1;
    *port = (int)p;
    return 0;
}

/* End the attempt in progress (outside hiredis's callbacks) and go on from the step timer. */
static void rsentinel_next(struct rsentinel *s)
{
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->step, 0, 0);
    ev_timer_start(s->loop, &s->step);
}

/* hiredis: the Sentinel's answer, or NULL when the context goes. */
static void rsentinel_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rsentinel *s = privdata;

    /* NULL: the context is going; its connect or disconnect callback goes on. */
    if (s == NULL || ac->data != s || r == NULL)
        return;
    s->budget.inflight--;
    if (rsentinel_parse(r, s->host, &s->port) == 0)
        s->found = 1;
    else
        log_msg(LOG_WARN, "redis", "Sentinel %s does not know master %s", s->addrs[s->at],
                s->master);
    /* Done with it either way: hiredis frees it once this callback returns. */
    ac->data = NULL;
    s->ac = NULL;
    redisAsyncDisconnect(ac);
    rsentinel_next(s);
}

/* hiredis: connected, or not (then hiredis frees the context). */
static void rsentinel_on_connect(const redisAsyncContext *ac, int status)
{
    struct rsentinel *s = ac->data;

    if (s == NULL || status == REDIS_OK)
        return;
    log_msg(LOG_WARN, "redis", "cannot reach Sentinel %s: %s", s->addrs[s->at], ac->errstr);
    /* hiredis frees it next, calling what is pending: none of it concerns s any more. */
    ((redisAsyncContext *)ac)->data = NULL;
    s->ac = NULL;
    rsentinel_next(s);
}

/* hiredis: the connection went (then hiredis frees the context). */
static void rsentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rsentinel *s = ac->data;

    if (s == NULL)
        return;
    s->ac = NULL;
    rsentinel_next(s);
}

/* The attempt took too long: drop it and ask the next one. */
static void rsentinel_on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rsentinel *s = t->data;
    redisAsyncContext *ac = s->ac;

    log_msg(LOG_WARN, "redis", "Sentinel %s did not answer within %.3g s", s->addrs[s->at],
            s->timeout);
    if (ac != NULL) {
        s->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    rsentinel_next(s);
}

/* The step timer: answer, or ask the next Sentinel, or give up. */
static void rsentinel_on_step(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rsentinel *s = t->data;

    if (s->found) {
        s->done(s->arg, 1, s->host, s->port);
        return;
    }
    if (s->tried == s->n) {
        s->done(s->arg, 0, NULL, 0);
        return;
    }
    rsentinel_try(s);
}

/* Split "HOST:PORT" or "[V6]:PORT" into host and *port; -1 when malformed. */
static int rsentinel_addr(const char *a, char *host, size_t size, int *port)
{
    const char *colon = strrchr(a, ':');
    const char *h = a;
    size_t len;

    if (colon == NULL)
        return -1;
    len = (size_t)(colon - a);
    if (a[0] == '[' && len >= 2 && colon[-1] == ']') {
        h = a + 1;
        len -= 2;
    }
    if (len == 0 || len >= size)
        return -1;
    memcpy(host, h, len);
    host[len] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, size, "127.0.0.1");
    *port = atoi(colon + 1);
    return *port >= 1 && *port <= 65535 ? 0 : -1;
}

/* Ask the next Sentinel. */
static void rsentinel_try(struct rsentinel *s)
{
    char host[RSENTINEL_HOST_MAX];
    int port;
    redisAsyncContext *ac;

    s->at = (s->at + 1) % s->n;
    s->tried++;
    if (rsentinel_addr(s->addrs[s->at], host, sizeof host, &port) != 0 ||
        (ac = redisAsyncConnect(host, port)) == NULL || ac->err) {
        log_msg(LOG_WARN, "redis", "cannot reach Sentinel %s", s->addrs[s->at]);
        rsentinel_next(s);
        return;
    }
    s->ac = ac;
    ac->data = s;
    ac->c.reader->fn = &rreply_fns;
    s->budget = (struct rreply_budget){.counted = 1, .inflight = 1};
    ac->c.reader->privdata = &s->budget;
    redisLibevAttach(s->loop, ac);
    redisAsyncSetConnectCallback(ac, rsentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac, rsentinel_on_disconnect);
    redisAsyncCommand(ac, rsentinel_on_reply, s, "SENTINEL get-master-addr-by-name %s", s->master);
    ev_timer_set(&s->deadline, s->timeout, 0);
    ev_timer_start(s->loop, &s->deadline);
}

struct rsentinel *rsentinel_ask(struct ev_loop *loop, char *const *addrs, size_t n, size_t first,
                                const char *master, double timeout, rsentinel_fn *done, void *arg)
{
    struct rsentinel *s = xcalloc(1, sizeof *s);

    s->loop = loop;
    s->addrs = xcalloc(n, sizeof *s->addrs);
    for (size_t i = 0; i < n; i++)
        s->addrs[i] = xstrdup(addrs[i]);
    s->n = n;
    s->at = (first + n - 1) % n; /* rsentinel_try moves on to first */
    s->master = xstrdup(master);
    s->timeout = timeout;
    s->done = done;
    s->arg = arg;
    ev_timer_init(&s->deadline, rsentinel_on_deadline, 0, 0);
    s->deadline.data = s;
    ev_timer_init(&s->step, rsentinel_on_step, 0, 0);
    s->step.data = s;
    rsentinel_next(s);
    return s;
}

void rsentinel_cancel(struct rsentinel *s)
{
    if (s == NULL)
        return;
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_stop(s->loop, &s->step);
    if (s->ac != NULL) {
        s->ac->data = NULL;
        redisAsyncFree(s->ac);
    }
    for (size_t i = 0; i < s->n; i++)
        free(s->addrs[i]);
    free(s->addrs);
    free(s->master);
    free(s);
}

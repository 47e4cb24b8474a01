/*
 * rreply.c -- hiredis reply objects with a budget (rreply.h).
 *
 * Owns:       nothing past a call (hiredis's reader owns the objects).
 * Called by:  hiredis's reader.
 * Invariants: as rreply.h says; a refusal returns NULL, which hiredis
 *             takes as an error and the connection goes.
 */
#include "rreply.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/*
 * On a subscriber link, is r a fit part of a push ("message", channel,
 * payload; or "subscribe"/"unsubscribe", channel, count)? hiredis asserts
 * on any other shape (a crash, not an error), so it is refused here.
 */
static int rreply_push_part(const redisReadTask *task, const redisReply *r)
{
    const redisReply *kind = ((redisReply *)task->parent->obj)->element[0];

    if (task->parent->parent != NULL)
        return 0;
    if (task->idx < 2)
        return r->type == REDIS_REPLY_STRING;
    if (strcmp(kind->str, "message") == 0)
        return r->type == REDIS_REPLY_STRING;
    return r->type == REDIS_REPLY_INTEGER;
}

static void *rreply_attach(const redisReadTask *task, redisReply *r)
{
    struct rreply_budget *b = task->privdata;

    if (task->parent != NULL && b != NULL && b->pushes && !rreply_push_part(task, r)) {
        log_msg(LOG_ERROR, "redis", "a malformed pub/sub message: dropping the connection");
        freeReplyObject(r);
        return NULL;
    }
    if (task->parent != NULL)
        ((redisReply *)task->parent->obj)->element[task->idx] = r;
    return r;
}

/* A new reply starts at the top: its budget starts again. */
static redisReply *rreply_object(const redisReadTask *task, int type)
{
    struct rreply_budget *b = task->privdata;
    redisReply *r;

    if (task->parent == NULL && b != NULL) {
        b->elements = 0;
        if (b->counted && b->inflight <= 0 && !(b->pushes && type == REDIS_REPLY_ARRAY)) {
            log_msg(LOG_ERROR, "redis", "a reply nothing asked for: dropping the connection");
            return NULL;
        }
    }
    r = calloc(1, sizeof *r);
    if (r != NULL)
        r->type = type;
    return r;
}

static void *rreply_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = rreply_object(task, task->type);
    char *copy = malloc(len + 1);

    if (r == NULL || copy == NULL) {
        free(r);
        free(copy);
        return NULL;
    }
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->str = copy;
    r->len = len;
    return rreply_attach(task, r);
}

static void *rreply_array(const redisReadTask *task, int elements)
{
    struct rreply_budget *b = task->privdata;
    redisReply *r = rreply_object(task, REDIS_REPLY_ARRAY);

    if (r == NULL)
        return NULL;
    if (b != NULL && (elements < 0 || b->elements + elements > RREPLY_MAX_ELEMENTS)) {
        log_msg(LOG_ERROR, "redis", "a reply of more than %d elements: dropping the connection",
                RREPLY_MAX_ELEMENTS);
        free(r);
        return NULL;
    }
    if (b != NULL && b->pushes && (task->parent != NULL || elements != 3)) {
        log_msg(LOG_ERROR, "redis", "a malformed pub/sub message: dropping the connection");
        free(r);
        return NULL;
    }
    if (b != NULL)
        b->elements += elements;
    if (elements > 0 && (r->element = calloc((size_t)elements, sizeof *r->element)) == NULL) {
        free(r);
        return NULL;
    }
    r->elements = (size_t)(elements > 0 ? elements : 0);
    return rreply_attach(task, r);
}

static void *rreply_integer(const redisReadTask *task, long long value)
{
    redisReply *r = rreply_object(task, REDIS_REPLY_INTEGER);

    if (r == NULL)
        return NULL;
    r->integer = value;
    return rreply_attach(task, r);
}

static void *rreply_nil(const redisReadTask *task)
{
    redisReply *r = rreply_object(task, REDIS_REPLY_NIL);

    return r != NULL ? rreply_attach(task, r) : NULL;
}

redisReplyObjectFunctions rreply_fns = {
    rreply_string, rreply_array, rreply_integer, rreply_nil, freeReplyObject,
};

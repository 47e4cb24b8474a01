/*
 * rhist.c -- message history in Redis (rhist.h): its Lua scripts, sent
 * by their digests (rlink_eval: EVALSHA, loaded once per connection), and
 * the parsing of what they answer.
 *
 * Owns:       each call's small context, until its answer is handed on.
 * Called by:  the link's loop thread.
 * Invariants: the scripts touch only the two keys they are given, so a
 *             stream is atomic on its own and the keys fit Redis Cluster.
 *             A new stream's epoch comes from Redis's clock inside the
 *             script (8 hex digits of its microseconds): two creations of
 *             one stream are never in the same microsecond, and no node
 *             needs randomness of its own. Everything Redis answers is
 *             checked before use: a reply of another shape is an error.
 */
#include "rhist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

#define RHIST_KEY_MAX 400

/* A read's answer starts {epoch, last, ok, epoch before, its end}; then the entries. */
#define RHIST_SINCE_HEAD 5

/*
 * A stream's epoch: the one in its meta hash mk, unless there is none, or
 * it was made before the cluster's generation (the key gk, raised when a
 * node finds a new Redis server: a restart or a failover, which may have
 * lost writes) changed, or fresh is set: then a new one, from Redis's
 * clock. The counter is kept, so (epoch, offset) never names two messages.
 * After a new generation the numbering goes on: 'p' keeps the epoch before
 * and 's' the offset it reached here, so an id of p up to s still names the
 * message this server has (what a replica has is a prefix of its master's)
 * and only ids past s, which this server never numbered, are lost. A fresh
 * epoch (a read found the counter behind an id it handed out) has none.
 */
#define RHIST_EPOCH_LUA                                                                            \
    "local function epoch(mk, gk, fresh)\n"                                                        \
    "  local g = redis.call('GET', gk) or '0'\n"                                                   \
    "  local v = redis.call('HMGET', mk, 'e', 'g')\n"                                              \
    "  if v[1] and v[2] == g and not fresh then return v[1] end\n"                                 \
    "  local t = redis.call('TIME')\n"                                                             \
    "  local e = string.format('%08x', (tonumber(t[1]) * 1000000 + tonumber(t[2])) % "             \
    "4294967296)\n"                                                                                \
    "  if e == v[1] then e = string.format('%08x', (tonumber(e, 16) + 1) % 4294967296) end\n"      \
    "  local p = (v[1] and not fresh) and v[1] or ''\n"                                            \
    "  redis.call('HSET', mk, 'e', e, 'g', g, 's', redis.call('HGET', mk, 'o') or '0', 'p', p)\n"  \
    "  return e\n"                                                                                 \
    "end\n"

/*
 * A batch of messages, in one step. ARGV: size, ttl, meta_ttl, the
 * number of messages, the generation's key, then for each: payload, tag, its number of streams
 * (n), of unnumbered channels (u), then n pub/sub channels (one per
 * stream, "" for none) and u channels. KEYS: two per stream (meta, list),
 * in order. Each stream: the epoch, made once, then number, keep
 * (bounded), expire, publish "<id> <tag> <payload>"; each unnumbered
 * channel gets " <tag> <payload>". Answers, per message, {epoch, offset}
 * per stream then how many subscribers its PUBLISHes reached.
 */
static const char rhist_publish_lua[] = RHIST_EPOCH_LUA
    "local size, ttl, mttl = tonumber(ARGV[1]), ARGV[2], ARGV[3]\n"
    "local a, k, out = 6, 1, {}\n"
    "for m = 1, tonumber(ARGV[4]) do\n"
    "  local p, tag, n, u = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
    "  local rc = 0\n"
    "  a = a + 4\n"
    "  for i = 1, n do\n"
    "    local mk, hk = KEYS[k], KEYS[k + 1]\n"
    "    local e = epoch(mk, ARGV[5])\n"
    "    local o = redis.call('HINCRBY', mk, 'o', 1)\n"
    "    if size > 0 then\n"
    "      redis.call('LPUSH', hk, o .. ':' .. p)\n"
    "      redis.call('LTRIM', hk, 0, size - 1)\n"
    "      redis.call('EXPIRE', hk, ttl)\n"
    "    end\n"
    "    redis.call('EXPIRE', mk, mttl)\n"
    "    if ARGV[a] ~= '' then\n"
    "      rc = rc + redis.call('PUBLISH', ARGV[a], e .. ':' .. o .. ' ' .. tag .. ' ' .. p)\n"
    "    end\n"
    "    out[#out + 1] = e\n"
    "    out[#out + 1] = o\n"
    "    a, k = a + 1, k + 2\n"
    "  end\n"
    "  for j = 1, u do\n"
    "    rc = rc + redis.call('PUBLISH', ARGV[a], ' ' .. tag .. ' ' .. p)\n"
    "    a = a + 1\n"
    "  end\n"
    "  out[#out + 1] = rc\n"
    "end\n"
    "return out\n";
static struct rlink_script rhist_publish_s = {rhist_publish_lua, ""};

/*
 * The position (making the epoch if the stream has none, as a read must
 * hand out an id to recover from), then what came after since: whole, or
 * not recoverable.
 */
static const char rhist_since_lua[] = RHIST_EPOCH_LUA
    "local e = epoch(KEYS[1], ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')\n"
    "local m = redis.call('HMGET', KEYS[1], 'p', 's')\n"
    "local p, start = m[1] or '', tonumber(m[2] or '0')\n"
    "if ARGV[1] == '' then return {e, last, 1, p, start} end\n"
    "local se, so = string.match(ARGV[1], '^(%x+):(%d+)$')\n"
    "so = tonumber(so)\n"
    "if se == e and so ~= nil and so > last then\n"
    "  -- the counter went back (a failover lost writes): never hand these ids out again\n"
    "  e = epoch(KEYS[1], ARGV[3], true)\n"
    "  p, start = '', last\n"
    "end\n"
    "-- this epoch's ids, or the one before's up to where this one took over\n"
    "local whole = so ~= nil and ((se == e and so <= last) or (p ~= '' and se == p and so <= "
    "start))\n"
    "if whole and so == last then return {e, last, 1, p, start} end\n"
    "-- what was asked; or, when that cannot be had, every message of this epoch\n"
    "local from = whole and so or start\n"
    "if from >= last then return {e, last, 0, p, start} end\n"
    "local out = {e, last, 0, p, start}\n"
    "local kept = redis.call('LRANGE', KEYS[2], 0, -1)\n"
    "for i = #kept, 1, -1 do\n"
    "  local off = tonumber(string.match(kept[i], '^(%d+):'))\n"
    "  if off > from then out[#out + 1] = kept[i] end\n"
    "end\n"
    "if #out == 5 or tonumber(string.match(out[6], '^(%d+):')) ~= from + 1 then\n"
    "  return {e, last, 0, p, start}\n"
    "end\n"
    "if whole then out[3] = 1 end\n"
    "return out\n";
static struct rlink_script rhist_since_s = {rhist_since_lua, ""};

/*
 * The generation, raised once per master: KEYS the generation and the run id
 * of the master that last raised it (replicated with it, so a new master
 * finds its predecessor's). Effects are replicated, not the script, as the
 * run id differs on each server.
 */
static const char rhist_raise_lua[] =
    "redis.replicate_commands()\n"
    "local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''\n"
    "if id ~= '' and redis.call('GET', KEYS[2]) == id then return 0 end\n"
    "redis.call('INCR', KEYS[1])\n"
    "redis.call('SET', KEYS[2], id)\n"
    "return 1\n";
static struct rlink_script rhist_raise_s = {rhist_raise_lua, ""};

/* Each meta key's newest offset and epoch (nothing made, nothing changed): {o, e, o, e, ...}. */
static const char rhist_positions_lua[] = "local out = {}\n"
                                          "for i = 1, #KEYS do\n"
                                          "  local v = redis.call('HMGET', KEYS[i], 'o', 'e')\n"
                                          "  out[#out + 1] = tonumber(v[1] or '0')\n"
                                          "  out[#out + 1] = v[2] or ''\n"
                                          "end\n"
                                          "return out\n";
static struct rlink_script rhist_positions_s = {rhist_positions_lua, ""};

/* One call in flight: where its answer goes. */
struct rhist_call {
    rhist_published_fn *published;
    rhist_numbered_fn *numbered;
    rhist_batch_fn *batch;
    size_t *ns; /* owned: each message's number of streams */
    size_t nmsgs;
    rhist_since_fn *since;
    void *arg;
};

/* "<prefix>{<site>/<kind>:<name>}:<suffix>" into buf; -1 when it does not fit. */
static int rhist_key(char *buf, const struct rhist_stream *s, char suffix)
{
    int n = snprintf(buf, RHIST_KEY_MAX, "%s{%s/%c:%s}:%c", s->prefix, s->site, s->kind, s->name,
                     suffix);

    return n > 0 && n < RHIST_KEY_MAX ? 0 : -1;
}

/* An integer element as a uint64_t; -1 when it is not one. */
static int rhist_int(const redisReply *r, uint64_t *out)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return -1;
    *out = (uint64_t)r->integer;
    return 0;
}

/* Is e an epoch: 8 lowercase hex digits? It goes into every id a client sees. */
static int rhist_epoch_ok(const redisReply *e)
{
    if (e->type != REDIS_REPLY_STRING || e->len != RHIST_EPOCH_LEN)
        return 0;
    for (size_t i = 0; i < RHIST_EPOCH_LEN; i++)
        if (!((e->str[i] >= '0' && e->str[i] <= '9') || (e->str[i] >= 'a' && e->str[i] <= 'f')))
            return 0;
    return 1;
}

/* "<epoch>:<offset>" into id, from an epoch element; -1 unless rhist_epoch_ok. */
static int rhist_id(char *id, const redisReply *epoch, uint64_t off)
{
    if (!rhist_epoch_ok(epoch))
        return -1;
    snprintf(id, RHIST_ID_MAX, "%s:%" PRIu64, epoch->str, off);
    return 0;
}

int rhist_parse_batch(const redisReply *r, const size_t *ns, size_t nmsgs,
                      char (*ids)[RHIST_ID_MAX], uint64_t *reached)
{
    size_t want = 0, e = 0, id = 0;
    uint64_t off;

    for (size_t m = 0; m < nmsgs; m++)
        want += 2 * ns[m] + 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != want)
        return -1;
    for (size_t m = 0; m < nmsgs; m++) {
        for (size_t i = 0; i < ns[m]; i++, e += 2)
            if (rhist_int(r->element[e + 1], &off) != 0 ||
                rhist_id(ids[id++], r->element[e], off) != 0)
                return -1;
        if (rhist_int(r->element[e++], &reached[m]) != 0)
            return -1;
    }
    return 0;
}

int rhist_parse_numbered(const redisReply *r, size_t n, char (*ids)[RHIST_ID_MAX],
                         uint64_t *reached)
{
    return rhist_parse_batch(r, &n, 1, ids, reached);
}

int rhist_parse_published(const redisReply *r, char *id)
{
    uint64_t reached;

    return rhist_parse_numbered(r, 1, (char(*)[RHIST_ID_MAX])id, &reached);
}

/* rlink_reply_fn for a publish: the ids and counts of each message. */
static void rhist_on_published(void *arg, int err, const redisReply *r)
{
    struct rhist_call *call = arg;
    size_t nids = 0;
    char(*ids)[RHIST_ID_MAX];
    uint64_t *reached = xcalloc(call->nmsgs, sizeof *reached);
    struct rhist_result *res = xcalloc(call->nmsgs, sizeof *res);

    for (size_t m = 0; m < call->nmsgs; m++)
        nids += call->ns[m];
    ids = xcalloc(nids > 0 ? nids : 1, sizeof *ids);
    if (err == RLINK_OK && rhist_parse_batch(r, call->ns, call->nmsgs, ids, reached) != 0) {
        log_msg(LOG_ERROR, "redis", "the publish script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    for (size_t m = 0, at = 0; m < call->nmsgs; at += call->ns[m], m++)
        res[m] =
            (struct rhist_result){(const char(*)[RHIST_ID_MAX])ids + at, call->ns[m], reached[m]};
    if (call->batch != NULL)
        call->batch(call->arg, err, err == RLINK_OK ? res : NULL, call->nmsgs);
    else if (call->numbered != NULL)
        call->numbered(call->arg, err, err == RLINK_OK ? res[0].ids : NULL, call->ns[0],
                       reached[0]);
    else
        call->published(call->arg, err, err == RLINK_OK ? ids[0] : NULL);
    free(ids);
    free(reached);
    free(res);
    free(call->ns);
    free(call);
}

/* Parse the missed entries ("<offset>:<payload>", oldest first, offsets rising) of a read. */
static int rhist_items(const redisReply *r, uint64_t last, struct rhist_item *items)
{
    uint64_t prev = 0;

    for (size_t i = RHIST_SINCE_HEAD; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *colon;
        char *end;
        uint64_t off;

        if (e->type != REDIS_REPLY_STRING || (colon = memchr(e->str, ':', e->len)) == NULL ||
            colon == e->str || !(e->str[0] >= '0' && e->str[0] <= '9'))
            return -1;
        off = strtoull(e->str, &end, 10);
        if (end != colon || off <= prev || off > last)
            return -1;
        prev = off;
        items[i - RHIST_SINCE_HEAD].offset = off;
        items[i - RHIST_SINCE_HEAD].payload = colon + 1;
        items[i - RHIST_SINCE_HEAD].len = e->len - (size_t)(colon + 1 - e->str);
    }
    return 0;
}

int rhist_parse_since(const redisReply *r, int *ok, char *id, char *prev, uint64_t *start,
                      struct rhist_item **items, size_t *n)
{
    uint64_t last, good;
    const redisReply *p;

    *items = NULL;
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < RHIST_SINCE_HEAD ||
        rhist_int(r->element[1], &last) != 0 || rhist_int(r->element[2], &good) != 0 ||
        rhist_id(id, r->element[0], last) != 0 || good > 1 ||
        rhist_int(r->element[4], start) != 0 || *start > last)
        return -1;
    /* The epoch before: "" or an epoch. */
    p = r->element[3];
    if (p->type != REDIS_REPLY_STRING || (p->len != 0 && !rhist_epoch_ok(p)))
        return -1;
    memcpy(prev, p->str, p->len);
    prev[p->len] = '\0';
    *ok = (int)good;
    if (r->elements == RHIST_SINCE_HEAD)
        return 0;
    *items = xcalloc(r->elements - RHIST_SINCE_HEAD, sizeof **items);
    if (rhist_items(r, last, *items) != 0) {
        free(*items);
        *items = NULL;
        return -1;
    }
    *n = r->elements - RHIST_SINCE_HEAD;
    return 0;
}

/* rlink_reply_fn for a read: {epoch, last, ok, epoch before, its end, entries...}. */
static void rhist_on_since(void *arg, int err, const redisReply *r)
{
    struct rhist_call *call = arg;
    struct rhist_item *items = NULL;
    struct rhist_read rd = {0};
    size_t n = 0;

    if (err == RLINK_OK &&
        rhist_parse_since(r, &rd.ok, rd.id, rd.prev, &rd.start, &items, &n) != 0) {
        log_msg(LOG_ERROR, "redis", "the history script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    if (err == RLINK_OK)
        call->since(call->arg, RLINK_OK, &rd, items, n);
    else
        call->since(call->arg, err, NULL, NULL, 0);
    free(items);
    free(call);
}

/*
 * A call on s: its two keys into meta and list, and its context. NULL when
 * s's names do not fit in a key (the caller answers RLINK_E_REPLY).
 */
static struct rhist_call *rhist_call_new(const struct rhist_stream *s, char *meta, char *list,
                                         void *arg)
{
    struct rhist_call *call;

    if (rhist_key(meta, s, 'm') != 0 || rhist_key(list, s, 'h') != 0)
        return NULL;
    call = xcalloc(1, sizeof *call);
    call->arg = arg;
    return call;
}

/* A growing argument vector. */
struct rhist_argv {
    char **v;
    size_t *len;
    size_t n, cap;
};

/* Append a copy of s[0..len). */
static void rhist_arg(struct rhist_argv *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 32;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
        a->len = xrealloc(a->len, a->cap * sizeof *a->len);
    }
    a->v[a->n] = xmalloc(len + 1);
    memcpy(a->v[a->n], s, len);
    a->v[a->n][len] = '\0';
    a->len[a->n++] = len;
}

static void rhist_arg_str(struct rhist_argv *a, const char *s)
{
    rhist_arg(a, s, strlen(s));
}

static void rhist_arg_num(struct rhist_argv *a, long long v)
{
    char num[32];

    snprintf(num, sizeof num, "%lld", v);
    rhist_arg_str(a, num);
}

static void rhist_argv_free(struct rhist_argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
}

/* The batch's keys into keys, its ARGV into args; -1 when a stream's key does not fit. */
static int rhist_batch_args(const struct rhist_pub *msgs, size_t nmsgs, struct rhist_argv *keys,
                            struct rhist_argv *args)
{
    const struct rhist_stream *first = NULL;
    char key[RHIST_KEY_MAX];

    for (size_t m = 0; m < nmsgs && first == NULL; m++)
        if (msgs[m].n > 0)
            first = &msgs[m].streams[0];
    rhist_arg_num(args, first != NULL ? first->size : 0);
    rhist_arg_num(args, first != NULL ? first->ttl : 1);
    rhist_arg_num(args, first != NULL ? first->meta_ttl : 1);
    rhist_arg_num(args, (long long)nmsgs);
    /* A batch of broadcasts only touches no stream: its generation key is never read. */
    snprintf(key, sizeof key, "%sgen", first != NULL ? first->prefix : "");
    rhist_arg_str(args, key);
    for (size_t m = 0; m < nmsgs; m++) {
        const struct rhist_pub *p = &msgs[m];

        rhist_arg(args, p->payload, p->len);
        rhist_arg_str(args, p->tag != NULL ? p->tag : "-");
        rhist_arg_num(args, (long long)p->n);
        rhist_arg_num(args, (long long)p->nplain);
        for (size_t i = 0; i < p->n; i++) {
            if (rhist_key(key, &p->streams[i], 'm') != 0)
                return -1;
            rhist_arg_str(keys, key);
            if (rhist_key(key, &p->streams[i], 'h') != 0)
                return -1;
            rhist_arg_str(keys, key);
            rhist_arg_str(args, p->pubsub != NULL && p->pubsub[i] != NULL ? p->pubsub[i] : "");
        }
        for (size_t i = 0; i < p->nplain; i++)
            rhist_arg_str(args, p->plain[i]);
    }
    return 0;
}

/* Send the batch's script with call as its context (freed here when it cannot be sent). */
static int rhist_send_batch(struct rlink *l, const struct rhist_pub *msgs, size_t nmsgs,
                            struct rhist_call *call)
{
    struct rhist_argv keys = {0}, args = {0}, all = {0};
    int r = RLINK_E_REPLY;

    call->nmsgs = nmsgs;
    call->ns = xcalloc(nmsgs > 0 ? nmsgs : 1, sizeof *call->ns);
    for (size_t m = 0; m < nmsgs; m++)
        call->ns[m] = msgs[m].n;
    if (rhist_batch_args(msgs, nmsgs, &keys, &args) == 0) {
        rhist_arg_num(&all, (long long)keys.n);
        for (size_t i = 0; i < keys.n; i++)
            rhist_arg(&all, keys.v[i], keys.len[i]);
        for (size_t i = 0; i < args.n; i++)
            rhist_arg(&all, args.v[i], args.len[i]);
        r = rlink_eval(l, rhist_on_published, call, &rhist_publish_s, (int)all.n,
                       (const char **)all.v, all.len);
    }
    rhist_argv_free(&keys);
    rhist_argv_free(&args);
    rhist_argv_free(&all);
    if (r != RLINK_OK) {
        free(call->ns);
        free(call);
    }
    return r;
}

int rhist_publish_batch(struct rlink *l, const struct rhist_pub *msgs, size_t nmsgs,
                        rhist_batch_fn *done, void *arg)
{
    struct rhist_call *call = xcalloc(1, sizeof *call);

    call->batch = done;
    call->arg = arg;
    return rhist_send_batch(l, msgs, nmsgs, call);
}

int rhist_publish_many(struct rlink *l, const struct rhist_pub *p, rhist_numbered_fn *done,
                       void *arg)
{
    struct rhist_call *call = xcalloc(1, sizeof *call);

    call->numbered = done;
    call->arg = arg;
    return rhist_send_batch(l, p, 1, call);
}

int rhist_publish(struct rlink *l, const struct rhist_stream *s, const char *payload, size_t len,
                  const char *pubsub, rhist_published_fn *done, void *arg)
{
    struct rhist_pub p = {s, &pubsub, 1, NULL, 0, "-", payload, len};
    struct rhist_call *call = xcalloc(1, sizeof *call);

    call->published = done;
    call->arg = arg;
    return rhist_send_batch(l, &p, 1, call);
}

int rhist_since(struct rlink *l, const struct rhist_stream *s, const char *since,
                rhist_since_fn *done, void *arg)
{
    char meta[RHIST_KEY_MAX], list[RHIST_KEY_MAX];
    struct rhist_call *call = rhist_call_new(s, meta, list, arg);
    int r;

    if (call == NULL)
        return RLINK_E_REPLY;
    call->since = done;
    r = rlink_evalf(l, rhist_on_since, call, &rhist_since_s, "2 %s %s %s %d %sgen", meta, list,
                    since, s->meta_ttl, s->prefix);
    if (r != RLINK_OK)
        free(call);
    return r;
}

/* A raise in flight. */
struct rhist_raise_call {
    rhist_raised_fn *done;
    void *arg;
};

/* rlink_reply_fn for a raise: 0 or 1. */
static void rhist_on_raised(void *arg, int err, const redisReply *r)
{
    struct rhist_raise_call *call = arg;
    int raised = 0;

    if (err == RLINK_OK) {
        if (r->type == REDIS_REPLY_INTEGER && (r->integer == 0 || r->integer == 1)) {
            raised = (int)r->integer;
        } else {
            log_msg(LOG_ERROR, "redis", "the raise script answered something else than it returns");
            err = RLINK_E_REPLY;
        }
    }
    call->done(call->arg, err, raised);
    free(call);
}

int rhist_raise_generation(struct rlink *l, const char *prefix, rhist_raised_fn *done, void *arg)
{
    struct rhist_raise_call *call = xcalloc(1, sizeof *call);
    int r;

    *call = (struct rhist_raise_call){done, arg};
    r = rlink_evalf(l, rhist_on_raised, call, &rhist_raise_s, "2 %sgen %sgenby", prefix, prefix);
    if (r != RLINK_OK)
        free(call);
    return r;
}

/* A positions call in flight. */
struct rhist_pos_call {
    rhist_positions_fn *done;
    void *arg;
    size_t n;
};

/* rlink_reply_fn for positions. */
static void rhist_on_positions(void *arg, int err, const redisReply *r)
{
    struct rhist_pos_call *call = arg;
    struct rhist_position *pos = xcalloc(call->n > 0 ? call->n : 1, sizeof *pos);

    if (err == RLINK_OK && rhist_parse_positions(r, call->n, pos) != 0) {
        log_msg(LOG_ERROR, "redis", "the positions script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    call->done(call->arg, err, err == RLINK_OK ? pos : NULL, call->n);
    free(pos);
    free(call);
}

int rhist_parse_positions(const redisReply *r, size_t n, struct rhist_position *pos)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[2 * i + 1];

        if (rhist_int(r->element[2 * i], &pos[i].offset) != 0 || e->type != REDIS_REPLY_STRING ||
            (e->len != 0 && e->len != RHIST_EPOCH_LEN))
            return -1;
        memcpy(pos[i].epoch, e->str, e->len);
        pos[i].epoch[e->len] = '\0';
    }
    return 0;
}

int rhist_positions(struct rlink *l, const struct rhist_stream *s, size_t n,
                    rhist_positions_fn *done, void *arg)
{
    struct rhist_argv all = {0};
    struct rhist_pos_call *call;
    char key[RHIST_KEY_MAX];
    int r = RLINK_E_REPLY;

    rhist_arg_num(&all, (long long)n);
    for (size_t i = 0; i < n; i++) {
        if (rhist_key(key, &s[i], 'm') != 0)
            goto out;
        rhist_arg_str(&all, key);
    }
    call = xcalloc(1, sizeof *call);
    *call = (struct rhist_pos_call){done, arg, n};
    r = rlink_eval(l, rhist_on_positions, call, &rhist_positions_s, (int)all.n,
                   (const char **)all.v, all.len);
    if (r != RLINK_OK)
        free(call);
out:
    rhist_argv_free(&all);
    return r;
}

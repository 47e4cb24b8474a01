/*
 * rhist.c -- message history in Redis (rhist.h): two Lua scripts, sent
 * with EVAL (Redis keeps the compiled script by its digest), and the
 * parsing of what they answer.
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

/*
 * For each stream (KEYS in pairs: meta, list): the epoch, made once, then
 * number, keep (bounded), expire, and publish on ARGV[5 + i]; then publish
 * unnumbered on each channel after those. ARGV: payload, size, ttl,
 * meta_ttl, tag. A pub/sub message is "<id> <tag> <payload>", the id
 * empty when unnumbered. Answers {epoch, offset} per stream, then how many
 * subscribers the PUBLISHes reached in all.
 */
static const char rhist_publish_lua[] =
    "local n = #KEYS / 2\n"
    "local out = {}\n"
    "local rc = 0\n"
    "for i = 1, n do\n"
    "  local m, h = KEYS[2 * i - 1], KEYS[2 * i]\n"
    "  local e = redis.call('HGET', m, 'e')\n"
    "  if not e then\n"
    "    local t = redis.call('TIME')\n"
    "    e = string.format('%08x', (tonumber(t[1]) * 1000000 + tonumber(t[2])) % 4294967296)\n"
    "    redis.call('HSET', m, 'e', e)\n"
    "  end\n"
    "  local o = redis.call('HINCRBY', m, 'o', 1)\n"
    "  if tonumber(ARGV[2]) > 0 then\n"
    "    redis.call('LPUSH', h, o .. ':' .. ARGV[1])\n"
    "    redis.call('LTRIM', h, 0, tonumber(ARGV[2]) - 1)\n"
    "    redis.call('EXPIRE', h, ARGV[3])\n"
    "  end\n"
    "  redis.call('EXPIRE', m, ARGV[4])\n"
    "  if ARGV[5 + i] ~= '' then\n"
    "    rc = rc + redis.call('PUBLISH', ARGV[5 + i], e .. ':' .. o .. ' ' .. ARGV[5] .. ' ' .. "
    "ARGV[1])\n"
    "  end\n"
    "  out[#out + 1] = e\n"
    "  out[#out + 1] = o\n"
    "end\n"
    "for j = 6 + n, #ARGV do\n"
    "  rc = rc + redis.call('PUBLISH', ARGV[j], ' ' .. ARGV[5] .. ' ' .. ARGV[1])\n"
    "end\n"
    "out[#out + 1] = rc\n"
    "return out\n";

/*
 * The position (making the epoch if the stream has none, as a read must
 * hand out an id to recover from), then what came after since: whole, or
 * not recoverable.
 */
static const char rhist_since_lua[] =
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "if not e then\n"
    "  local t = redis.call('TIME')\n"
    "  e = string.format('%08x', (tonumber(t[1]) * 1000000 + tonumber(t[2])) % 4294967296)\n"
    "  redis.call('HSET', KEYS[1], 'e', e)\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')\n"
    "if ARGV[1] == '' then return {e, last, 1} end\n"
    "local se, so = string.match(ARGV[1], '^(%x+):(%d+)$')\n"
    "so = tonumber(so)\n"
    "if se ~= e or so == nil or so > last then return {e, last, 0} end\n"
    "if so == last then return {e, last, 1} end\n"
    "local out = {e, last, 0}\n"
    "local kept = redis.call('LRANGE', KEYS[2], 0, -1)\n"
    "for i = #kept, 1, -1 do\n"
    "  local off = tonumber(string.match(kept[i], '^(%d+):'))\n"
    "  if off > so then out[#out + 1] = kept[i] end\n"
    "end\n"
    "if #out > 3 and tonumber(string.match(out[4], '^(%d+):')) == so + 1 then out[3] = 1 end\n"
    "if out[3] == 0 then return {e, last, 0} end\n"
    "return out\n";

/* One call in flight: where its answer goes. */
struct rhist_call {
    rhist_published_fn *published;
    rhist_numbered_fn *numbered;
    size_t n; /* numbered: the streams */
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

/* "<epoch>:<offset>" into id, from an epoch element; -1 unless it is 8 lowercase hex digits. */
static int rhist_id(char *id, const redisReply *epoch, uint64_t off)
{
    if (epoch->type != REDIS_REPLY_STRING || epoch->len != RHIST_EPOCH_LEN)
        return -1;
    /* It goes into every id a client sees: what the scripts make, and nothing else. */
    for (size_t i = 0; i < RHIST_EPOCH_LEN; i++)
        if (!((epoch->str[i] >= '0' && epoch->str[i] <= '9') ||
              (epoch->str[i] >= 'a' && epoch->str[i] <= 'f')))
            return -1;
    snprintf(id, RHIST_ID_MAX, "%s:%" PRIu64, epoch->str, off);
    return 0;
}

int rhist_parse_numbered(const redisReply *r, size_t n, char (*ids)[RHIST_ID_MAX],
                         uint64_t *reached)
{
    uint64_t off;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n + 1 ||
        rhist_int(r->element[2 * n], reached) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (rhist_int(r->element[2 * i + 1], &off) != 0 ||
            rhist_id(ids[i], r->element[2 * i], off) != 0)
            return -1;
    return 0;
}

int rhist_parse_published(const redisReply *r, char *id)
{
    uint64_t reached;

    return rhist_parse_numbered(r, 1, (char(*)[RHIST_ID_MAX])id, &reached);
}

/* rlink_reply_fn for a publish: {epoch, offset} per stream. */
static void rhist_on_published(void *arg, int err, const redisReply *r)
{
    struct rhist_call *call = arg;
    char(*ids)[RHIST_ID_MAX] = xcalloc(call->n > 0 ? call->n : 1, sizeof *ids);
    uint64_t reached = 0;

    if (err == RLINK_OK && rhist_parse_numbered(r, call->n, ids, &reached) != 0) {
        log_msg(LOG_ERROR, "redis", "the publish script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    if (call->numbered != NULL)
        call->numbered(call->arg, err, err == RLINK_OK ? (const char(*)[RHIST_ID_MAX])ids : NULL,
                       call->n, reached);
    else
        call->published(call->arg, err, err == RLINK_OK ? ids[0] : NULL);
    free(ids);
    free(call);
}

/* Parse the missed entries ("<offset>:<payload>", oldest first, offsets rising) of a read. */
static int rhist_items(const redisReply *r, uint64_t last, struct rhist_item *items)
{
    uint64_t prev = 0;

    for (size_t i = 3; i < r->elements; i++) {
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
        items[i - 3].offset = off;
        items[i - 3].payload = colon + 1;
        items[i - 3].len = e->len - (size_t)(colon + 1 - e->str);
    }
    return 0;
}

int rhist_parse_since(const redisReply *r, int *ok, char *id, struct rhist_item **items, size_t *n)
{
    uint64_t last, good;

    *items = NULL;
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || rhist_int(r->element[1], &last) != 0 ||
        rhist_int(r->element[2], &good) != 0 || rhist_id(id, r->element[0], last) != 0 ||
        good > 1 || (good == 0 && r->elements > 3))
        return -1;
    *ok = (int)good;
    if (r->elements == 3)
        return 0;
    *items = xcalloc(r->elements - 3, sizeof **items);
    if (rhist_items(r, last, *items) != 0) {
        free(*items);
        *items = NULL;
        return -1;
    }
    *n = r->elements - 3;
    return 0;
}

/* rlink_reply_fn for a read: {epoch, last, ok, entries...}. */
static void rhist_on_since(void *arg, int err, const redisReply *r)
{
    struct rhist_call *call = arg;
    struct rhist_item *items = NULL;
    char id[RHIST_ID_MAX];
    size_t n = 0;
    int ok = 0;

    if (err == RLINK_OK && rhist_parse_since(r, &ok, id, &items, &n) != 0) {
        log_msg(LOG_ERROR, "redis", "the history script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    if (err == RLINK_OK)
        call->since(call->arg, RLINK_OK, ok, id, items, n);
    else
        call->since(call->arg, err, 0, NULL, NULL, 0);
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

/* The EVAL command for p: script, key count, keys, ARGV; NULL when a key does not fit. */
static char **rhist_publish_args(const struct rhist_pub *p, int *argc, size_t **lens)
{
    size_t n = 9 + 3 * p->n + p->nplain, a = 0;
    char **argv = xcalloc(n, sizeof *argv);
    char num[32];

    *lens = xcalloc(n, sizeof **lens);
    argv[a++] = xstrdup("EVAL");
    argv[a++] = xstrdup(rhist_publish_lua);
    snprintf(num, sizeof num, "%zu", 2 * p->n);
    argv[a++] = xstrdup(num);
    for (size_t i = 0; i < p->n; i++) {
        argv[a] = xmalloc(RHIST_KEY_MAX);
        argv[a + 1] = xmalloc(RHIST_KEY_MAX);
        if (rhist_key(argv[a], &p->streams[i], 'm') != 0 ||
            rhist_key(argv[a + 1], &p->streams[i], 'h') != 0) {
            for (size_t k = 0; k < a + 2; k++)
                free(argv[k]);
            free(argv);
            free(*lens);
            return NULL;
        }
        a += 2;
    }
    argv[a] = xmalloc(p->len + 1);
    memcpy(argv[a], p->payload, p->len);
    argv[a][p->len] = '\0';
    (*lens)[a++] = p->len;
    snprintf(num, sizeof num, "%d", p->n > 0 ? p->streams[0].size : 0);
    argv[a++] = xstrdup(num);
    snprintf(num, sizeof num, "%d", p->n > 0 ? p->streams[0].ttl : 1);
    argv[a++] = xstrdup(num);
    snprintf(num, sizeof num, "%d", p->n > 0 ? p->streams[0].meta_ttl : 1);
    argv[a++] = xstrdup(num);
    argv[a++] = xstrdup(p->tag != NULL ? p->tag : "-");
    for (size_t i = 0; i < p->n; i++)
        argv[a++] = xstrdup(p->pubsub != NULL && p->pubsub[i] != NULL ? p->pubsub[i] : "");
    for (size_t i = 0; i < p->nplain; i++)
        argv[a++] = xstrdup(p->plain[i]);
    for (size_t i = 0; i < a; i++)
        if ((*lens)[i] == 0)
            (*lens)[i] = strlen(argv[i]);
    *argc = (int)a;
    return argv;
}

/* Send p's EVAL with call as its context. */
static int rhist_send_publish(struct rlink *l, const struct rhist_pub *p, struct rhist_call *call)
{
    size_t *lens;
    int argc, r;
    char **argv = rhist_publish_args(p, &argc, &lens);

    if (argv == NULL) {
        free(call);
        return RLINK_E_REPLY;
    }
    call->n = p->n;
    r = rlink_command_argv(l, rhist_on_published, call, argc, (const char **)argv, lens);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    free(lens);
    if (r != RLINK_OK)
        free(call);
    return r;
}

int rhist_publish_many(struct rlink *l, const struct rhist_pub *p, rhist_numbered_fn *done,
                       void *arg)
{
    struct rhist_call *call = xcalloc(1, sizeof *call);

    call->numbered = done;
    call->arg = arg;
    return rhist_send_publish(l, p, call);
}

int rhist_publish(struct rlink *l, const struct rhist_stream *s, const char *payload, size_t len,
                  const char *pubsub, rhist_published_fn *done, void *arg)
{
    struct rhist_pub p = {s, &pubsub, 1, NULL, 0, "-", payload, len};
    struct rhist_call *call = xcalloc(1, sizeof *call);

    call->published = done;
    call->arg = arg;
    return rhist_send_publish(l, &p, call);
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
    r = rlink_command(l, rhist_on_since, call, "EVAL %s 2 %s %s %s %d", rhist_since_lua, meta, list,
                      since, s->meta_ttl);
    if (r != RLINK_OK)
        free(call);
    return r;
}

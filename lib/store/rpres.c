/*
 * rpres.c -- presence and online counts in Redis (rpres.h): Lua scripts,
 * each one atomic on one presence channel's keys or one site's counts.
 *
 * Owns:       each call's small context, until its answer is handed on.
 * Called by:  the link's loop thread.
 * Invariants: every presence script starts by dropping the expired
 *             entries (RPRES_PRUNE), publishing a leave for each user left
 *             with none, so whoever touches a channel first after a node
 *             died tells its subscribers. A leave for an entry already
 *             gone (its node was taken for dead) does nothing: a user is
 *             never counted below zero, nor left twice. What Redis answers
 *             is checked before use.
 */
#include "rpres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

#define RPRES_KEY_MAX 400

/* KEYS: :pz :pc :pu :pi. ARGV[1] node, ARGV[2] user, and the pub/sub channel as given. */
#define RPRES_PRUNE                                                                                \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"                                      \
    "local function prune(pubsub)\n"                                                               \
    "  for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do\n"                 \
    "    redis.call('ZREM', KEYS[1], e)\n"                                                         \
    "    redis.call('HDEL', KEYS[2], e)\n"                                                         \
    "    local u = string.sub(e, string.find(e, '|', 1, true) + 1)\n"                              \
    "    if redis.call('HINCRBY', KEYS[3], u, -1) <= 0 then\n"                                     \
    "      redis.call('HDEL', KEYS[3], u)\n"                                                       \
    "      redis.call('HDEL', KEYS[4], u)\n"                                                       \
    "      redis.call('PUBLISH', pubsub, 'p - {\"j\":0,\"u\":' .. cjson.encode(u) .. '}')\n"       \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function keep(ttl)\n"                                                                   \
    "  for k = 1, 4 do redis.call('EXPIRE', KEYS[k], 3 * ttl) end\n"                               \
    "end\n"                                                                                        \
    "local function members(counts)\n"                                                             \
    "  local out, conns = {}, {}\n"                                                                \
    "  if counts == '1' then\n"                                                                    \
    "    local c = redis.call('HGETALL', KEYS[2])\n"                                               \
    "    for k = 1, #c, 2 do\n"                                                                    \
    "      local u = string.sub(c[k], string.find(c[k], '|', 1, true) + 1)\n"                      \
    "      conns[u] = (conns[u] or 0) + tonumber(c[k + 1])\n"                                      \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local i = redis.call('HGETALL', KEYS[4])\n"                                                 \
    "  for k = 1, #i, 2 do\n"                                                                      \
    "    out[#out + 1] = i[k]\n"                                                                   \
    "    out[#out + 1] = i[k + 1]\n"                                                               \
    "    out[#out + 1] = conns[i[k]] or 0\n"                                                       \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "end\n"

/* ARGV: node, user, info ("" for none), ttl, pubsub, counts. */
static const char rpres_join_lua[] = RPRES_PRUNE
    "prune(ARGV[5])\n"
    "local e = ARGV[1] .. '|' .. ARGV[2]\n"
    "local n = redis.call('HINCRBY', KEYS[2], e, 1)\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), e)\n"
    "if n == 1 and redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 then\n"
    "  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])\n"
    "  local info = ARGV[3] ~= '' and ARGV[3] or 'null'\n"
    "  redis.call('PUBLISH', ARGV[5], 'p - {\"j\":1,\"u\":' .. cjson.encode(ARGV[2]) .. "
    "',\"i\":' .. info .. '}')\n"
    "end\n"
    "keep(tonumber(ARGV[4]))\n"
    "return members(ARGV[6])\n";
static struct rlink_script rpres_join_s = {rpres_join_lua, ""};

/* ARGV: node, user, ttl, pubsub. */
static const char rpres_leave_lua[] = RPRES_PRUNE
    "prune(ARGV[4])\n"
    "local e = ARGV[1] .. '|' .. ARGV[2]\n"
    "if not redis.call('ZSCORE', KEYS[1], e) then return 0 end\n"
    "if redis.call('HINCRBY', KEYS[2], e, -1) > 0 then return 1 end\n"
    "redis.call('HDEL', KEYS[2], e)\n"
    "redis.call('ZREM', KEYS[1], e)\n"
    "if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then\n"
    "  redis.call('HDEL', KEYS[3], ARGV[2])\n"
    "  redis.call('HDEL', KEYS[4], ARGV[2])\n"
    "  redis.call('PUBLISH', ARGV[4], 'p - {\"j\":0,\"u\":' .. cjson.encode(ARGV[2]) .. "
    "'}')\n"
    "end\n"
    "return 1\n";
static struct rlink_script rpres_leave_s = {rpres_leave_lua, ""};

/* ARGV: pubsub, counts. */
static const char rpres_members_lua[] = RPRES_PRUNE "prune(ARGV[1])\n"
                                                    "return members(ARGV[2])\n";
static struct rlink_script rpres_members_s = {rpres_members_lua, ""};

/*
 * ARGV: node, ttl, pubsub, then (user, connections, info) for each member
 * here: the entries live another ttl, with the node's exact counts, and
 * one Redis lost (a restart without persistence) is made again, joining.
 */
static const char rpres_refresh_lua[] =
    RPRES_PRUNE "prune(ARGV[3])\n"
                "for k = 4, #ARGV, 3 do\n"
                "  local u, e = ARGV[k], ARGV[1] .. '|' .. ARGV[k]\n"
                "  local new = not redis.call('ZSCORE', KEYS[1], e)\n"
                "  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), e)\n"
                "  redis.call('HSET', KEYS[2], e, ARGV[k + 1])\n"
                "  if new and redis.call('HINCRBY', KEYS[3], u, 1) == 1 then\n"
                "    redis.call('HSET', KEYS[4], u, ARGV[k + 2])\n"
                "    local info = ARGV[k + 2] ~= '' and ARGV[k + 2] or 'null'\n"
                "    redis.call('PUBLISH', ARGV[3], 'p - {\"j\":1,\"u\":' .. cjson.encode(u) .. "
                "',\"i\":' .. info .. '}')\n"
                "  end\n"
                "end\n"
                "keep(tonumber(ARGV[2]))\n"
                "return 1\n";
static struct rlink_script rpres_refresh_s = {rpres_refresh_lua, ""};

/*
 * KEYS: the node's hash, the site's node set. ARGV: node, user, its
 * connections here (a value, not a change: the last one sent wins), ttl.
 */
static const char rpres_count_lua[] = "if tonumber(ARGV[3]) > 0 then\n"
                                      "  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])\n"
                                      "else\n"
                                      "  redis.call('HDEL', KEYS[1], ARGV[2])\n"
                                      "end\n"
                                      "redis.call('SADD', KEYS[2], ARGV[1])\n"
                                      "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
                                      "return 1\n";
static struct rlink_script rpres_count_s = {rpres_count_lua, ""};

/*
 * KEYS: the site's node set, this node's hash. ARGV: the site's base key,
 * user. A node whose hash has expired is dropped from the set.
 */
static const char rpres_online_lua[] =
    "local total = 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local k = ARGV[1] .. ':on:' .. n\n"
    "  if redis.call('EXISTS', k) == 0 then\n"
    "    redis.call('SREM', KEYS[1], n)\n"
    "  else\n"
    "    total = total + tonumber(redis.call('HGET', k, ARGV[2]) or '0')\n"
    "  end\n"
    "end\n"
    "return {total, tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')}\n";
static struct rlink_script rpres_online_s = {rpres_online_lua, ""};

/* One call in flight: where its answer goes. */
struct rpres_call {
    rpres_members_fn *members;
    rpres_online_fn *online;
    int counts;
    void *arg;
};

/* ch's four keys into k (RPRES_KEY_MAX each); -1 when they do not fit. */
static int rpres_keys(const struct rpres_chan *ch, char k[4][RPRES_KEY_MAX])
{
    static const char *const suffix[4] = {"pz", "pc", "pu", "pi"};

    for (int i = 0; i < 4; i++) {
        int n = snprintf(k[i], RPRES_KEY_MAX, "%s{%s/c:%s}:%s", ch->prefix, ch->site, ch->name,
                         suffix[i]);

        if (n < 0 || n >= RPRES_KEY_MAX)
            return -1;
    }
    return 0;
}

/* rlink_reply_fn for a script whose answer does not matter. */
static void rpres_ignore(void *arg, int err, const redisReply *r)
{
    if (err == RLINK_E_REPLY && r != NULL)
        log_msg(LOG_ERROR, "redis", "a presence script failed: %s", r->str);
}

json_t *rpres_parse_members(const redisReply *r, int counts)
{
    json_t *out;

    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0)
        return NULL;
    out = json_array();
    for (size_t i = 0; i < r->elements; i += 3) {
        const redisReply *u = r->element[i], *info = r->element[i + 1], *n = r->element[i + 2];
        json_t *m, *io = NULL;

        if (u->type != REDIS_REPLY_STRING || info->type != REDIS_REPLY_STRING ||
            n->type != REDIS_REPLY_INTEGER || n->integer < 0) {
            json_decref(out);
            return NULL;
        }
        if (info->len > 0)
            io = json_loadb(info->str, info->len, 0, NULL);
        if (!json_is_object(io)) {
            json_decref(io);
            io = json_null();
        }
        /* "o" takes io over, also when it fails (a user that is not UTF-8): no use after. */
        m = json_pack("{s:s%, s:o}", "user", u->str, u->len, "info", io);
        if (m == NULL) {
            json_decref(out);
            return NULL;
        }
        if (counts)
            json_object_set_new(m, "connections", json_integer(n->integer));
        json_array_append_new(out, m);
    }
    return out;
}

/* rlink_reply_fn for a members list. */
static void rpres_on_members(void *arg, int err, const redisReply *r)
{
    struct rpres_call *call = arg;
    json_t *members = NULL;

    if (err == RLINK_OK && (members = rpres_parse_members(r, call->counts)) == NULL) {
        log_msg(LOG_ERROR, "redis", "the presence script answered something else than it returns");
        err = RLINK_E_REPLY;
    }
    if (call->members != NULL)
        call->members(call->arg, err, members);
    else
        json_decref(members);
    free(call);
}

/* A call that answers with the members, or with nothing (done NULL). */
static struct rpres_call *rpres_call_new(rpres_members_fn *done, int counts, void *arg)
{
    struct rpres_call *call = xcalloc(1, sizeof *call);

    call->members = done;
    call->counts = counts;
    call->arg = arg;
    return call;
}

int rpres_join(struct rlink *l, const struct rpres_chan *ch, const char *user, const char *info,
               rpres_members_fn *done, void *arg)
{
    char k[4][RPRES_KEY_MAX];
    struct rpres_call *call;
    int r;

    if (rpres_keys(ch, k) != 0)
        return RLINK_E_REPLY;
    call = rpres_call_new(done, 0, arg);
    r = rlink_evalf(l, rpres_on_members, call, &rpres_join_s, "4 %s %s %s %s %s %s %s %d %s 0",
                    k[0], k[1], k[2], k[3], ch->node, user, info != NULL ? info : "", ch->ttl,
                    ch->pubsub);
    if (r != RLINK_OK)
        free(call);
    return r;
}

int rpres_leave(struct rlink *l, const struct rpres_chan *ch, const char *user)
{
    char k[4][RPRES_KEY_MAX];

    if (rpres_keys(ch, k) != 0)
        return RLINK_E_REPLY;
    return rlink_evalf(l, rpres_ignore, NULL, &rpres_leave_s, "4 %s %s %s %s %s %s %d %s", k[0],
                       k[1], k[2], k[3], ch->node, user, ch->ttl, ch->pubsub);
}

int rpres_members(struct rlink *l, const struct rpres_chan *ch, int counts, rpres_members_fn *done,
                  void *arg)
{
    char k[4][RPRES_KEY_MAX];
    struct rpres_call *call;
    int r;

    if (rpres_keys(ch, k) != 0)
        return RLINK_E_REPLY;
    call = rpres_call_new(done, counts, arg);
    r = rlink_evalf(l, rpres_on_members, call, &rpres_members_s, "4 %s %s %s %s %s %d", k[0], k[1],
                    k[2], k[3], ch->pubsub, counts ? 1 : 0);
    if (r != RLINK_OK)
        free(call);
    return r;
}

int rpres_refresh(struct rlink *l, const struct rpres_chan *ch, const struct rpres_member *m,
                  size_t n)
{
    char k[4][RPRES_KEY_MAX], ttl[16];
    size_t argc = 8 + 3 * n;
    const char **argv = xcalloc(argc, sizeof *argv);
    char(*counts)[24] = xcalloc(n > 0 ? n : 1, sizeof *counts);
    int r;

    if (rpres_keys(ch, k) != 0) {
        free(argv);
        free(counts);
        return RLINK_E_REPLY;
    }
    snprintf(ttl, sizeof ttl, "%d", ch->ttl);
    argv[0] = "4";
    for (int i = 0; i < 4; i++)
        argv[1 + i] = k[i];
    argv[5] = ch->node;
    argv[6] = ttl;
    argv[7] = ch->pubsub;
    for (size_t i = 0; i < n; i++) {
        snprintf(counts[i], sizeof counts[i], "%d", m[i].connections);
        argv[8 + 3 * i] = m[i].user;
        argv[9 + 3 * i] = counts[i];
        argv[10 + 3 * i] = m[i].info != NULL ? m[i].info : "";
    }
    r = rlink_eval(l, rpres_ignore, NULL, &rpres_refresh_s, (int)argc, argv, NULL);
    free(argv);
    free(counts);
    return r;
}

/* A site's node set and a node's hash into set and hash; -1 when they do not fit. */
static int rpres_site_keys(const struct rpres_site *s, char *set, char *hash)
{
    int a = snprintf(set, RPRES_KEY_MAX, "%s{%s}:nodes", s->prefix, s->site);
    int b = snprintf(hash, RPRES_KEY_MAX, "%s{%s}:on:%s", s->prefix, s->site, s->node);

    return a > 0 && a < RPRES_KEY_MAX && b > 0 && b < RPRES_KEY_MAX ? 0 : -1;
}

int rpres_count(struct rlink *l, const struct rpres_site *s, const char *user, int n)
{
    char set[RPRES_KEY_MAX], hash[RPRES_KEY_MAX];

    if (rpres_site_keys(s, set, hash) != 0)
        return RLINK_E_REPLY;
    return rlink_evalf(l, rpres_ignore, NULL, &rpres_count_s, "2 %s %s %s %s %d %d", hash, set,
                       s->node, user, n, s->ttl);
}

int rpres_alive(struct rlink *l, const struct rpres_site *s)
{
    char set[RPRES_KEY_MAX], hash[RPRES_KEY_MAX];

    if (rpres_site_keys(s, set, hash) != 0)
        return RLINK_E_REPLY;
    /* An empty user is never a user (tok.c): this only refreshes the set and the expiry. */
    return rlink_evalf(l, rpres_ignore, NULL, &rpres_count_s, "2 %s %s %s %s %d %d", hash, set,
                       s->node, "", 0, s->ttl);
}

/* rlink_reply_fn for online: {total, here}. */
static void rpres_on_online(void *arg, int err, const redisReply *r)
{
    struct rpres_call *call = arg;
    uint64_t total = 0, here = 0;

    if (err == RLINK_OK) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer >= 0 &&
            r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer >= 0 &&
            r->element[1]->integer <= r->element[0]->integer) {
            total = (uint64_t)r->element[0]->integer;
            here = (uint64_t)r->element[1]->integer;
        } else {
            log_msg(LOG_ERROR, "redis",
                    "the online script answered something else than it returns");
            err = RLINK_E_REPLY;
        }
    }
    call->online(call->arg, err, total, here);
    free(call);
}

int rpres_online(struct rlink *l, const struct rpres_site *s, const char *user,
                 rpres_online_fn *done, void *arg)
{
    char set[RPRES_KEY_MAX], hash[RPRES_KEY_MAX], base[RPRES_KEY_MAX];
    struct rpres_call *call;
    int r;

    if (rpres_site_keys(s, set, hash) != 0)
        return RLINK_E_REPLY;
    snprintf(base, sizeof base, "%s{%s}", s->prefix, s->site);
    call = xcalloc(1, sizeof *call);
    call->online = done;
    call->arg = arg;
    r = rlink_evalf(l, rpres_on_online, call, &rpres_online_s, "2 %s %s %s %s", set, hash, base,
                    user);
    if (r != RLINK_OK)
        free(call);
    return r;
}

/*
 * test_rpres.c -- presence and online counts in Redis (lib/store/rpres.c)
 * against a real redis-server (tests/unit/redis_fixture.h), with a
 * subscriber link on the channel's pub/sub channel counting the join and
 * leave events the scripts publish.
 *
 * Covers:     a join answers the members, the joiner among them; join and
 *             leave are published once per user in the cluster, however
 *             many connections on however many nodes (two node ids on one
 *             Redis); a leave for an entry that does not exist does
 *             nothing; members with counts sum connections across nodes;
 *             an entry not refreshed expires (its leave published by the
 *             next script that touches the channel); a refresh keeps an
 *             entry past its ttl and makes again one Redis lost; online
 *             counts add up across nodes, a node whose hash expired is
 *             dropped, rpres_alive keeps one; names too long for a key and
 *             a link that is down are refused at once; and
 *             rpres_parse_members on replies built by hand, among them a
 *             user that is not UTF-8 beside an info object (fuzz_rpres).
 * Invariants: every wait is bounded (run_until); "no event" is checked
 *             behind a marker PUBLISHed on the same pub/sub channel after
 *             the call, which the subscriber gets after every event the
 *             call published (Redis delivers in order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "rpres.h"

/* What the callbacks of one link saw. */
struct seen {
    int ups, downs;
    int answers, err;
    json_t *members; /* owned: the last members answer */
    uint64_t total, here;
    long long integer; /* the last integer reply */
};

/* What a subscriber saw on the channel. */
struct events {
    int subscribed, marks, joins, leaves, other;
    json_t *last; /* owned: the last join or leave */
};

static void on_state(void *arg, int up)
{
    struct seen *s = arg;

    if (up)
        s->ups++;
    else
        s->downs++;
}

static void on_members(void *arg, int err, json_t *members)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    json_decref(s->members);
    s->members = members;
}

static void on_online(void *arg, int err, uint64_t total, uint64_t here)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    s->total = total;
    s->here = here;
}

static void on_reply(void *arg, int err, const redisReply *reply)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        s->integer = reply->integer;
}

/* rlink_push_fn: count the markers, the joins and the leaves ("p - <json>"). */
static void on_push(void *arg, int type, const char *channel, size_t clen, const char *data,
                    size_t dlen)
{
    struct events *e = arg;
    json_t *ev, *j;

    if (type == RLINK_PUSH_SUBSCRIBED) {
        e->subscribed++;
        return;
    }
    if (type != RLINK_PUSH_MESSAGE) {
        e->other++;
        return;
    }
    if (dlen == 4 && memcmp(data, "mark", 4) == 0) {
        e->marks++;
        return;
    }
    if (dlen < 4 || memcmp(data, "p - ", 4) != 0 ||
        (ev = json_loadb(data + 4, dlen - 4, 0, NULL)) == NULL) {
        e->other++;
        return;
    }
    j = json_object_get(ev, "j");
    if (json_is_integer(j) && json_integer_value(j) == 1)
        e->joins++;
    else if (json_is_integer(j) && json_integer_value(j) == 0)
        e->leaves++;
    else
        e->other++;
    json_decref(e->last);
    e->last = ev;
}

static const char *const room = "herald:shop:c:room";

/* Two nodes in one presence channel, one Redis. */
static const struct rpres_chan node_a = {"herald:", "shop", "room", "a#1-1", "herald:shop:c:room",
                                         30};
static const struct rpres_chan node_b = {"herald:", "shop", "room", "b#2-2", "herald:shop:c:room",
                                         30};

/* A link to the test's server, up. */
static struct rlink *link_up(struct seen *s)
{
    char address[128];
    struct rlink_cfg cfg = {
        .address = address, .timeout = 1.0, .backoff_min = 0.05, .backoff_max = 0.2};
    struct rlink *l;

    snprintf(address, sizeof address, "unix:%s", sock);
    l = rlink_new(loop, &cfg, on_state, s);
    assert_non_null(l);
    run_until(&s->ups, 1, 3);
    assert_true(rlink_up(l));
    return l;
}

/* A subscriber link on room, subscribed. */
static struct rlink *subscriber(struct seen *s, struct events *e)
{
    struct rlink *l = link_up(s);

    rlink_set_push(l, on_push, e);
    assert_int_equal(rlink_subscribe(l, room), RLINK_OK);
    run_until(&e->subscribed, 1, 3);
    assert_int_equal(e->subscribed, 1);
    return l;
}

/* Publish a marker on room through l and wait until e has it: every earlier event is in. */
static void sync_events(struct rlink *l, struct events *e)
{
    struct seen r = {0};
    int before = e->marks;

    assert_int_equal(rlink_command(l, on_reply, &r, "PUBLISH %s mark", room), RLINK_OK);
    run_until(&e->marks, before + 1, 3);
    assert_int_equal(e->marks, before + 1);
}

/* Run the loop for seconds, for an entry to expire. */
static void pause_loop(double seconds)
{
    int never = 0;

    run_until(&never, 1, seconds);
}

/* Join user on ch and wait; the members are left in s. */
static void join(struct rlink *l, const struct rpres_chan *ch, const char *user, const char *info,
                 struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rpres_join(l, ch, user, info, on_members, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
    assert_true(json_is_array(s->members));
}

/* Ask for ch's members and wait. */
static void members(struct rlink *l, const struct rpres_chan *ch, int counts, struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rpres_members(l, ch, counts, on_members, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
    assert_true(json_is_array(s->members));
}

/* Ask for user's online counts as s sees them and wait. */
static void online(struct rlink *l, const struct rpres_site *site, const char *user, struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rpres_online(l, site, user, on_online, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
}

/* A command with one argument, waited for; its integer reply. */
static long long command(struct rlink *l, const char *fmt, const char *arg)
{
    struct seen r = {0};

    assert_int_equal(rlink_command(l, on_reply, &r, fmt, arg), RLINK_OK);
    run_until(&r.answers, 1, 3);
    assert_int_equal(r.answers, 1);
    assert_int_equal(r.err, RLINK_OK);
    return r.integer;
}

/* The member user in a members array, or NULL. */
static json_t *member(json_t *list, const char *user)
{
    size_t i;
    json_t *m;

    json_array_foreach (list, i, m) {
        if (strcmp(json_string_value(json_object_get(m, "user")), user) == 0)
            return m;
    }
    return NULL;
}

/* Does the JSON value v equal the JSON text want? */
static int json_is(json_t *v, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    int same = w != NULL && json_equal(v, w);

    json_decref(w);
    return same;
}

static void test_rpres_join_answers_the_members_with_the_joiner(void **state)
{
    struct seen up = {0}, sup = {0}, s = {0};
    struct events e = {0};
    struct rlink *l, *sub;
    json_t *m;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &e);
    join(l, &node_a, "ann", "{\"name\":\"Ann\"}", &s);
    assert_int_equal(json_array_size(s.members), 1);
    m = member(s.members, "ann");
    assert_non_null(m);
    assert_true(json_is(json_object_get(m, "info"), "{\"name\":\"Ann\"}"));
    /* A join's members come without counts. */
    assert_null(json_object_get(m, "connections"));
    join(l, &node_b, "bob", NULL, &s);
    assert_int_equal(json_array_size(s.members), 2);
    assert_non_null(member(s.members, "ann"));
    assert_true(json_is_null(json_object_get(member(s.members, "bob"), "info")));
    /* One event per join, each as the header says: {"j":1,"u":user,"i":info}. */
    sync_events(l, &e);
    assert_int_equal(e.joins, 2);
    assert_int_equal(e.leaves + e.other, 0);
    assert_true(json_is(e.last, "{\"j\":1,\"u\":\"bob\",\"i\":null}"));
    json_decref(s.members);
    json_decref(e.last);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rpres_join_and_leave_once_per_cluster(void **state)
{
    struct seen up = {0}, sup = {0}, s = {0};
    struct events e = {0};
    struct rlink *l, *sub;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &e);
    join(l, &node_a, "ann", "{\"n\":1}", &s);
    sync_events(l, &e);
    assert_int_equal(e.joins, 1);
    assert_true(json_is(e.last, "{\"j\":1,\"u\":\"ann\",\"i\":{\"n\":1}}"));
    /* The same user from another node, and a second tab on the first: no new join. */
    join(l, &node_b, "ann", "{\"n\":2}", &s);
    join(l, &node_a, "ann", "{\"n\":3}", &s);
    assert_int_equal(json_array_size(s.members), 1);
    sync_events(l, &e);
    assert_int_equal(e.joins, 1);
    /* Leaves while connections remain somewhere: no leave. */
    assert_int_equal(rpres_leave(l, &node_b, "ann"), RLINK_OK);
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 0);
    members(l, &node_a, 1, &s);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "ann"), "connections")),
                     1);
    /* The last connection in the cluster: exactly one leave. */
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 1);
    assert_int_equal(e.joins, 1);
    assert_int_equal(e.other, 0);
    assert_true(json_is(e.last, "{\"j\":0,\"u\":\"ann\"}"));
    members(l, &node_a, 0, &s);
    assert_int_equal(json_array_size(s.members), 0);
    json_decref(s.members);
    json_decref(e.last);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rpres_leave_of_nothing_does_nothing(void **state)
{
    struct seen up = {0}, sup = {0}, s = {0};
    struct events e = {0};
    struct rlink *l, *sub;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &e);
    /* Never joined: no event, and nothing counted below zero. */
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    sync_events(l, &e);
    assert_int_equal(e.leaves + e.joins + e.other, 0);
    /* Had the leaves counted ann at -2, this join would not be her first. */
    join(l, &node_a, "ann", NULL, &s);
    sync_events(l, &e);
    assert_int_equal(e.joins, 1);
    /* A leave from a node she never joined on takes nothing from node a. */
    assert_int_equal(rpres_leave(l, &node_b, "ann"), RLINK_OK);
    members(l, &node_a, 1, &s);
    assert_int_equal(json_array_size(s.members), 1);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "ann"), "connections")),
                     1);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 0);
    /* Her one leave, then one too many: one event. */
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_OK);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 1);
    join(l, &node_a, "ann", NULL, &s);
    sync_events(l, &e);
    assert_int_equal(e.joins, 2);
    json_decref(s.members);
    json_decref(e.last);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rpres_members_sum_connections_across_nodes(void **state)
{
    struct seen up = {0}, s = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&up);
    join(l, &node_a, "ann", NULL, &s);
    join(l, &node_a, "ann", NULL, &s);
    join(l, &node_b, "ann", NULL, &s);
    join(l, &node_b, "bob", "{\"x\":[1,2]}", &s);
    members(l, &node_a, 1, &s);
    assert_int_equal(json_array_size(s.members), 2);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "ann"), "connections")),
                     3);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "bob"), "connections")),
                     1);
    assert_true(json_is(json_object_get(member(s.members, "bob"), "info"), "{\"x\":[1,2]}"));
    /* Without counts, no "connections" at all. */
    members(l, &node_b, 0, &s);
    assert_int_equal(json_array_size(s.members), 2);
    assert_null(json_object_get(member(s.members, "ann"), "connections"));
    json_decref(s.members);
    rlink_free(l);
}

static void test_rpres_entries_expire(void **state)
{
    struct rpres_chan brief = node_a;
    struct seen up = {0}, sup = {0}, s = {0};
    struct events e = {0};
    struct rlink *l, *sub;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &e);
    brief.ttl = 1;
    join(l, &brief, "ann", NULL, &s);
    join(l, &node_b, "bob", NULL, &s);
    /* Node a stops refreshing: after its ttl, the next script that touches the channel prunes. */
    pause_loop(1.5);
    members(l, &node_b, 1, &s);
    assert_int_equal(json_array_size(s.members), 1);
    assert_non_null(member(s.members, "bob"));
    sync_events(l, &e);
    assert_int_equal(e.joins, 2);
    assert_int_equal(e.leaves, 1);
    assert_true(json_is(e.last, "{\"j\":0,\"u\":\"ann\"}"));
    /* Pruned once: the next call finds nothing more to prune. */
    members(l, &node_b, 0, &s);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 1);
    json_decref(s.members);
    json_decref(e.last);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rpres_refresh_keeps_and_remakes_entries(void **state)
{
    struct rpres_chan ch = node_a;
    struct rpres_member ann = {"ann", 2, "{\"n\":\"Ann\"}"};
    struct seen up = {0}, sup = {0}, s = {0};
    struct events e = {0};
    struct rlink *l, *sub;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &e);
    ch.ttl = 2;
    join(l, &ch, "ann", ann.info, &s);
    join(l, &ch, "ann", ann.info, &s);
    /* Refreshed halfway through its ttl, the entry outlives the ttl of its join. */
    pause_loop(1.2);
    assert_int_equal(rpres_refresh(l, &ch, &ann, 1), RLINK_OK);
    pause_loop(1.2);
    members(l, &ch, 1, &s);
    assert_int_equal(json_array_size(s.members), 1);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "ann"), "connections")),
                     2);
    sync_events(l, &e);
    assert_int_equal(e.joins, 1);
    assert_int_equal(e.leaves, 0);
    /* Redis loses everything: the refresh makes the entry again, and publishes its join. */
    command(l, "FLUSHALL%s", "");
    members(l, &ch, 0, &s);
    assert_int_equal(json_array_size(s.members), 0);
    assert_int_equal(rpres_refresh(l, &ch, &ann, 1), RLINK_OK);
    members(l, &ch, 1, &s);
    assert_int_equal(json_array_size(s.members), 1);
    assert_int_equal(json_integer_value(json_object_get(member(s.members, "ann"), "connections")),
                     2);
    assert_true(json_is(json_object_get(member(s.members, "ann"), "info"), ann.info));
    sync_events(l, &e);
    assert_int_equal(e.joins, 2);
    assert_int_equal(e.leaves, 0);
    assert_true(json_is(e.last, "{\"j\":1,\"u\":\"ann\",\"i\":{\"n\":\"Ann\"}}"));
    /* And it is a real entry again: its last leave is published. */
    assert_int_equal(rpres_leave(l, &ch, "ann"), RLINK_OK);
    assert_int_equal(rpres_leave(l, &ch, "ann"), RLINK_OK);
    sync_events(l, &e);
    assert_int_equal(e.leaves, 1);
    json_decref(s.members);
    json_decref(e.last);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rpres_online_counts_add_up(void **state)
{
    const struct rpres_site a = {"herald:", "shop", "a#1-1", 30};
    const struct rpres_site b = {"herald:", "shop", "b#2-2", 30};
    const struct rpres_site other = {"herald:", "blog", "b#2-2", 30};
    struct seen up = {0}, s = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&up);
    assert_int_equal(rpres_count(l, &a, "ann", 2), RLINK_OK);
    assert_int_equal(rpres_count(l, &b, "ann", 3), RLINK_OK);
    assert_int_equal(rpres_count(l, &other, "ann", 7), RLINK_OK);
    online(l, &a, "ann", &s);
    assert_int_equal(s.total, 5);
    assert_int_equal(s.here, 2);
    online(l, &b, "ann", &s);
    assert_int_equal(s.total, 5);
    assert_int_equal(s.here, 3);
    /* Another site's counts are its own. */
    online(l, &other, "ann", &s);
    assert_int_equal(s.total, 7);
    assert_int_equal(s.here, 7);
    /* A count is a value, not a change: the last one wins; 0 is none. */
    assert_int_equal(rpres_count(l, &a, "ann", 1), RLINK_OK);
    online(l, &b, "ann", &s);
    assert_int_equal(s.total, 4);
    assert_int_equal(rpres_count(l, &a, "ann", 0), RLINK_OK);
    online(l, &a, "ann", &s);
    assert_int_equal(s.total, 3);
    assert_int_equal(s.here, 0);
    online(l, &a, "nobody", &s);
    assert_int_equal(s.total, 0);
    assert_int_equal(s.here, 0);
    rlink_free(l);
}

static void test_rpres_online_drops_an_expired_node(void **state)
{
    const struct rpres_site a = {"herald:", "shop", "a#1-1", 30};
    const struct rpres_site b = {"herald:", "shop", "b#2-2", 1};
    const struct rpres_site c = {"herald:", "shop", "c#3-3", 2};
    struct seen up = {0}, s = {0};
    struct rlink *l;

    redis_start(NULL);
    l = link_up(&up);
    assert_int_equal(rpres_count(l, &a, "ann", 2), RLINK_OK);
    assert_int_equal(rpres_count(l, &b, "ann", 3), RLINK_OK);
    assert_int_equal(rpres_count(l, &c, "ann", 4), RLINK_OK);
    online(l, &a, "ann", &s);
    assert_int_equal(s.total, 9);
    /* b's hash expires (ttl 1); c says it is alive halfway through its ttl of 2. */
    pause_loop(1.2);
    assert_int_equal(rpres_alive(l, &c), RLINK_OK);
    online(l, &a, "ann", &s);
    assert_int_equal(s.total, 6);
    assert_int_equal(s.here, 2);
    assert_int_equal(command(l, "SISMEMBER herald:{shop}:nodes %s", "b#2-2"), 0);
    assert_int_equal(command(l, "SISMEMBER herald:{shop}:nodes %s", "c#3-3"), 1);
    pause_loop(1.2);
    online(l, &a, "ann", &s);
    assert_int_equal(s.total, 6);
    rlink_free(l);
}

static void test_rpres_refuses_at_once(void **state)
{
    struct rpres_chan ch = node_a;
    struct rpres_site site = {"herald:", "shop", "a#1-1", 30};
    struct rpres_member ann = {"ann", 1, NULL};
    struct seen up = {0}, s = {0};
    struct rlink *l;
    char name[600];

    redis_start(NULL);
    l = link_up(&up);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    /* Names too long for a key: refused, never answered, nothing sent. */
    ch.name = name;
    assert_int_equal(rpres_join(l, &ch, "ann", NULL, on_members, &s), RLINK_E_REPLY);
    assert_int_equal(rpres_leave(l, &ch, "ann"), RLINK_E_REPLY);
    assert_int_equal(rpres_members(l, &ch, 1, on_members, &s), RLINK_E_REPLY);
    assert_int_equal(rpres_refresh(l, &ch, &ann, 1), RLINK_E_REPLY);
    ch = node_a;
    ch.site = name;
    assert_int_equal(rpres_join(l, &ch, "ann", NULL, on_members, &s), RLINK_E_REPLY);
    site.site = name;
    assert_int_equal(rpres_count(l, &site, "ann", 1), RLINK_E_REPLY);
    assert_int_equal(rpres_alive(l, &site), RLINK_E_REPLY);
    assert_int_equal(rpres_online(l, &site, "ann", on_online, &s), RLINK_E_REPLY);
    site.site = "shop";
    site.node = name;
    assert_int_equal(rpres_online(l, &site, "ann", on_online, &s), RLINK_E_REPLY);
    run_until(&s.answers, 1, 0.2);
    assert_int_equal(s.answers, 0);
    assert_int_equal(command(l, "DBSIZE%s", ""), 0);
    /* The link down: every call refused at once, never answered. */
    redis_kill();
    run_until(&up.downs, 1, 3);
    assert_int_equal(up.downs, 1);
    site.node = "a#1-1";
    assert_int_equal(rpres_join(l, &node_a, "ann", NULL, on_members, &s), RLINK_E_DOWN);
    assert_int_equal(rpres_leave(l, &node_a, "ann"), RLINK_E_DOWN);
    assert_int_equal(rpres_members(l, &node_a, 0, on_members, &s), RLINK_E_DOWN);
    assert_int_equal(rpres_refresh(l, &node_a, &ann, 1), RLINK_E_DOWN);
    assert_int_equal(rpres_count(l, &site, "ann", 1), RLINK_E_DOWN);
    assert_int_equal(rpres_alive(l, &site), RLINK_E_DOWN);
    assert_int_equal(rpres_online(l, &site, "ann", on_online, &s), RLINK_E_DOWN);
    run_until(&s.answers, 1, 0.2);
    assert_int_equal(s.answers, 0);
    rlink_free(l);
}

/* Reply objects by hand, as hiredis's reader makes them (freed by freeReplyObject). */
static redisReply *reply_new(int type)
{
    redisReply *r = calloc(1, sizeof *r);

    assert_non_null(r);
    r->type = type;
    return r;
}

static redisReply *rstring(const char *s, size_t len)
{
    redisReply *r = reply_new(REDIS_REPLY_STRING);

    r->str = malloc(len + 1);
    assert_non_null(r->str);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *rinteger(long long v)
{
    redisReply *r = reply_new(REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

/* An array of the n replies that follow (taken over). */
static redisReply *rarray(size_t n, ...)
{
    redisReply *r = reply_new(REDIS_REPLY_ARRAY);
    va_list ap;

    r->elements = n;
    r->element = calloc(n > 0 ? n : 1, sizeof *r->element);
    assert_non_null(r->element);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

#define S(lit) rstring(lit, sizeof lit - 1)

/* Does rpres_parse_members refuse r, with counts and without? Frees r. */
static int refused(redisReply *r)
{
    json_t *a = rpres_parse_members(r, 0), *b = rpres_parse_members(r, 1);
    int both = a == NULL && b == NULL;

    json_decref(a);
    json_decref(b);
    freeReplyObject(r);
    return both;
}

static void test_rpres_parse_members_refuses_malformed_replies(void **state)
{
    redisReply *r;
    json_t *m;

    /* Not an array; a member cut short; one too many. */
    assert_true(refused(S("ann")));
    assert_true(refused(rinteger(3)));
    assert_true(refused(reply_new(REDIS_REPLY_NIL)));
    assert_true(refused(rarray(2, S("ann"), S(""))));
    assert_true(refused(rarray(4, S("ann"), S(""), rinteger(1), S("bob"))));
    /* A user that is not a string, info that is not one, a count that is not a count. */
    assert_true(refused(rarray(3, rinteger(7), S(""), rinteger(1))));
    assert_true(refused(rarray(3, reply_new(REDIS_REPLY_NIL), S(""), rinteger(1))));
    assert_true(refused(rarray(3, rarray(0), S(""), rinteger(1))));
    assert_true(refused(rarray(3, S("ann"), rinteger(0), rinteger(1))));
    assert_true(refused(rarray(3, S("ann"), S(""), S("1"))));
    assert_true(refused(rarray(3, S("ann"), S(""), rinteger(-1))));
    assert_true(refused(rarray(6, S("ann"), S(""), rinteger(1), S("bob"), S(""), rinteger(-5))));
    /* What the scripts answer: accepted; info that is not an object is null. */
    r = rarray(9, S("ann"), S("{\"n\":1}"), rinteger(2), S("bob"), S(""), rinteger(0), S("eve"),
               S("not json"), rinteger(1));
    m = rpres_parse_members(r, 1);
    assert_true(json_is(m, "[{\"user\":\"ann\",\"info\":{\"n\":1},\"connections\":2},"
                           "{\"user\":\"bob\",\"info\":null,\"connections\":0},"
                           "{\"user\":\"eve\",\"info\":null,\"connections\":1}]"));
    json_decref(m);
    m = rpres_parse_members(r, 0);
    assert_true(json_is(m,
                        "[{\"user\":\"ann\",\"info\":{\"n\":1}},{\"user\":\"bob\",\"info\":null},"
                        "{\"user\":\"eve\",\"info\":null}]"));
    json_decref(m);
    freeReplyObject(r);
    r = rarray(3, S("ann"), S("[1,2]"), rinteger(1));
    m = rpres_parse_members(r, 0);
    assert_true(json_is(m, "[{\"user\":\"ann\",\"info\":null}]"));
    json_decref(m);
    freeReplyObject(r);
    r = rarray(0);
    m = rpres_parse_members(r, 1);
    assert_true(json_is(m, "[]"));
    json_decref(m);
    freeReplyObject(r);
}

static void test_rpres_parse_members_refuses_a_user_that_is_not_utf8(void **state)
{
    /* jansson refuses the user; the info object beside it must be freed once, and only once
     * (fuzz_rpres's first find, corpus/rpres/user-not-utf8-info-object). */
    assert_true(refused(rarray(3, S("\xff"), S("{}"), rinteger(1))));
    assert_true(refused(rarray(6, S("ann"), S("{\"n\":1}"), rinteger(1), S("a\0\xa8"),
                               S("{\"u\":1}"), rinteger(1))));
    assert_true(refused(rarray(3, S("\xc3"), S(""), rinteger(1))));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rpres_join_answers_the_members_with_the_joiner,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_join_and_leave_once_per_cluster, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_leave_of_nothing_does_nothing, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_members_sum_connections_across_nodes,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_entries_expire, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_refresh_keeps_and_remakes_entries, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_online_counts_add_up, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_online_drops_an_expired_node, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rpres_refuses_at_once, redis_setup, redis_teardown),
        cmocka_unit_test(test_rpres_parse_members_refuses_malformed_replies),
        cmocka_unit_test(test_rpres_parse_members_refuses_a_user_that_is_not_utf8),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

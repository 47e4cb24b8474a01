/*
 * test_rhist.c -- history in Redis (lib/store/rhist.c) against a real
 * redis-server (tests/unit/redis_fixture.h): ids are gap-free and in order
 * in a stream, also with two links (two nodes) publishing at once; a
 * client that saw an id gets exactly what followed; a trimmed list, an id
 * of another epoch or from the future are "not recoverable"; a stream
 * whose keys were lost (a Redis restart without persistence) comes back
 * with a new epoch; the publish reaches a subscriber of its pub/sub
 * channel with its id; streams of two sites never share a key. One
 * message to several streams (rhist_publish_many) is numbered in each,
 * kept, and published as "<id> <tag> <payload>" on each stream's channel
 * and " <tag> <payload>" on the unnumbered ones, answering how many
 * subscribers it reached; names too long for a key are refused before
 * anything is touched; rhist_parse_numbered on replies built by hand.
 * After a failover the generation is raised once per master however many
 * nodes ask, so a stream changes epoch once and keeps its counter; ids of
 * the epoch before, up to where it ended, still recover, one past it not.
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
#include "rhist.h"

/* What the callbacks saw. */
struct seen {
    int answers, err, ok, ups;
    char id[RHIST_ID_MAX];
    char prev[RHIST_EPOCH_LEN + 1]; /* a read's epoch before, and where it ended */
    uint64_t start;
    char items[16][64];
    uint64_t offsets[16];
    size_t lens[16];
    size_t n;
};

static void on_state(void *arg, int up)
{
    ((struct seen *)arg)->ups += up;
}

static void on_published(void *arg, int err, const char *id)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    snprintf(s->id, sizeof s->id, "%s", id != NULL ? id : "");
}

static void on_since(void *arg, int err, const struct rhist_read *rd,
                     const struct rhist_item *items, size_t n)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    s->ok = rd != NULL ? rd->ok : 0;
    s->n = n;
    snprintf(s->id, sizeof s->id, "%s", rd != NULL ? rd->id : "");
    snprintf(s->prev, sizeof s->prev, "%s", rd != NULL ? rd->prev : "");
    s->start = rd != NULL ? rd->start : 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        s->offsets[i] = items[i].offset;
        s->lens[i] = items[i].len;
        snprintf(s->items[i], sizeof s->items[i], "%.*s", (int)items[i].len, items[i].payload);
    }
}

/* Subscribers of the channel PUBSUB NUMSUB last reported. */
static long long subscribers;

static void on_numsub(void *arg, int err, const redisReply *reply)
{
    ((struct seen *)arg)->answers++;
    if (err == RLINK_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2)
        subscribers = reply->element[1]->integer;
}

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

static const struct rhist_stream news = {"herald:", "shop", 'c', "news", 3, 300, 600};

/* Publish text to s and wait; returns the id in s's seen. */
static void publish(struct rlink *l, const struct rhist_stream *st, const char *text,
                    struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rhist_publish(l, st, text, strlen(text), NULL, on_published, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
}

/* Ask what followed since in st and wait. */
static void since(struct rlink *l, const struct rhist_stream *st, const char *id, struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rhist_since(l, st, id, on_since, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
}

/* "<epoch>:<n>" with the epoch of id. */
static void same_epoch(char *out, const char *id, int n)
{
    snprintf(out, RHIST_ID_MAX, "%.*s:%d", RHIST_EPOCH_LEN, id, n);
}

static void test_rhist_numbers_keeps_and_replays(void **state)
{
    struct seen up = {0}, p = {0}, r = {0};
    struct rlink *l;
    char first[RHIST_ID_MAX], want[RHIST_ID_MAX];

    redis_start(NULL);
    l = link_up(&up);
    publish(l, &news, "{\"event\":\"a\"}", &p);
    snprintf(first, sizeof first, "%s", p.id);
    assert_int_equal(strlen(first), RHIST_EPOCH_LEN + 2);
    assert_string_equal(first + RHIST_EPOCH_LEN, ":1");
    publish(l, &news, "{\"event\":\"b\"}", &p);
    publish(l, &news, "{\"event\":\"c\"}", &p);
    same_epoch(want, first, 3);
    assert_string_equal(p.id, want);
    /* Seen the first: the other two, oldest first, and the position. */
    since(l, &news, first, &r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.offsets[0], 2);
    assert_string_equal(r.items[0], "{\"event\":\"b\"}");
    assert_string_equal(r.items[1], "{\"event\":\"c\"}");
    assert_string_equal(r.id, want);
    /* Up to date, or nothing asked: recoverable, nothing to send. */
    since(l, &news, want, &r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.n, 0);
    since(l, &news, "", &r);
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.id, want);
    /* Kept 3: after two more, what followed the first is partly gone. */
    publish(l, &news, "{\"event\":\"d\"}", &p);
    publish(l, &news, "{\"event\":\"e\"}", &p);
    since(l, &news, first, &r);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.n, 0);
    same_epoch(want, first, 2);
    since(l, &news, want, &r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.n, 3);
    /* Another epoch, or an offset from the future: never vouched for. */
    since(l, &news, strncmp(first, "00000000", 8) == 0 ? "00000001:1" : "00000000:1", &r);
    assert_int_equal(r.ok, 0);
    same_epoch(want, first, 99);
    since(l, &news, want, &r);
    assert_int_equal(r.ok, 0);
    rlink_free(l);
}

/* How many times each offset was handed out, by either link. */
static int numbered[601];
static int nnumbered;

/* rhist_published_fn: count the offset in the id. */
static void on_numbered(void *arg, int err, const char *id)
{
    const char *colon = id != NULL ? strchr(id, ':') : NULL;
    long off = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;

    assert_int_equal(err, RLINK_OK);
    assert_true(off >= 1 && off <= 600);
    numbered[off]++;
    nnumbered++;
}

static void test_rhist_two_nodes_number_without_gaps(void **state)
{
    struct seen up1 = {0}, up2 = {0}, r = {0};
    struct rlink *l1, *l2;
    char id[RHIST_ID_MAX];

    redis_start(NULL);
    l1 = link_up(&up1);
    l2 = link_up(&up2);
    memset(numbered, 0, sizeof numbered);
    nnumbered = 0;
    /* Two links (two nodes) with 300 publishes each in flight at once. */
    for (int i = 0; i < 300; i++) {
        assert_int_equal(rhist_publish(l1, &news, "x", 1, NULL, on_numbered, NULL), RLINK_OK);
        assert_int_equal(rhist_publish(l2, &news, "y", 1, NULL, on_numbered, NULL), RLINK_OK);
    }
    run_until(&nnumbered, 600, 5);
    assert_int_equal(nnumbered, 600);
    /* Every offset 1..600 handed out exactly once: no gap, no repeat. */
    for (int off = 1; off <= 600; off++)
        assert_int_equal(numbered[off], 1);
    since(l1, &news, "", &r);
    same_epoch(id, r.id, 600);
    assert_string_equal(r.id, id);
    rlink_free(l1);
    rlink_free(l2);
}

static void test_rhist_lost_keys_mean_a_new_epoch(void **state)
{
    struct seen up = {0}, p = {0}, r = {0};
    struct rlink *l;
    char old[RHIST_ID_MAX];

    redis_start(NULL);
    l = link_up(&up);
    publish(l, &news, "{\"n\":1}", &p);
    publish(l, &news, "{\"n\":2}", &p);
    snprintf(old, sizeof old, "%s", p.id);
    /* Redis restarts without persistence: the stream's keys are gone. */
    redis_kill();
    redis_start(NULL);
    run_until(&up.ups, 2, 5);
    assert_int_equal(up.ups, 2);
    publish(l, &news, "{\"n\":3}", &p);
    publish(l, &news, "{\"n\":4}", &p);
    /* Numbering starts again, in a new epoch: the old id is not recoverable, not "up to date". */
    assert_string_not_equal(p.id, old);
    assert_memory_not_equal(p.id, old, RHIST_EPOCH_LEN);
    since(l, &news, old, &r);
    assert_int_equal(r.ok, 0);
    /* Told it lost some, the client still gets all the new epoch has: never a part of it. */
    assert_int_equal(r.n, 2);
    rlink_free(l);
}

static void on_raised(void *arg, int err, int raised)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    s->ok = raised;
}

/* Ask l to raise the generation and wait; returns whether this call raised it. */
static int raise_generation(struct rlink *l, struct seen *s)
{
    int before = s->answers;

    assert_int_equal(rhist_raise_generation(l, "herald:", on_raised, s), RLINK_OK);
    run_until(&s->answers, before + 1, 3);
    assert_int_equal(s->answers, before + 1);
    assert_int_equal(s->err, RLINK_OK);
    return s->ok;
}

static void on_reply(void *arg, int err, const redisReply *reply)
{
    ((struct seen *)arg)->answers++;
}

static void test_rhist_a_failover_raises_the_generation_once(void **state)
{
    struct seen up1 = {0}, up2 = {0}, p = {0}, g = {0}, c = {0};
    struct rlink *n1, *n2;
    char first[RHIST_ID_MAX], second[RHIST_ID_MAX];

    redis_start(NULL);
    n1 = link_up(&up1);
    n2 = link_up(&up2);
    publish(n1, &news, "{\"n\":1}", &p);
    snprintf(first, sizeof first, "%s", p.id);
    /* Three nodes follow one failover to this master: one raise. */
    assert_int_equal(raise_generation(n1, &g), 1);
    assert_int_equal(raise_generation(n2, &g), 0);
    assert_int_equal(raise_generation(n1, &g), 0);
    publish(n2, &news, "{\"n\":2}", &p);
    assert_memory_not_equal(p.id, first, RHIST_EPOCH_LEN);
    assert_string_equal(p.id + RHIST_EPOCH_LEN, ":2");
    snprintf(second, sizeof second, "%s", p.id);
    publish(n1, &news, "{\"n\":3}", &p);
    assert_memory_equal(p.id, second, RHIST_EPOCH_LEN);
    assert_string_equal(p.id + RHIST_EPOCH_LEN, ":3");
    /* The next failover: this master's copy says another one raised it last. */
    assert_int_equal(rlink_command(n1, on_reply, &c, "SET herald:genby %s", "0123abcd"), RLINK_OK);
    run_until(&c.answers, 1, 3);
    assert_int_equal(raise_generation(n2, &g), 1);
    publish(n1, &news, "{\"n\":4}", &p);
    assert_memory_not_equal(p.id, second, RHIST_EPOCH_LEN);
    assert_string_equal(p.id + RHIST_EPOCH_LEN, ":4");
    rlink_free(n1);
    rlink_free(n2);
}

static void test_rhist_a_new_generation_goes_on_from_the_epoch_before(void **state)
{
    struct seen up = {0}, p = {0}, g = {0}, r = {0};
    struct rlink *l;
    char a1[RHIST_ID_MAX], a2[RHIST_ID_MAX], lost[RHIST_ID_MAX], epoch_a[RHIST_EPOCH_LEN + 1];

    redis_start(NULL);
    l = link_up(&up);
    publish(l, &news, "{\"n\":1}", &p);
    snprintf(a1, sizeof a1, "%s", p.id);
    publish(l, &news, "{\"n\":2}", &p);
    snprintf(a2, sizeof a2, "%s", p.id);
    snprintf(epoch_a, sizeof epoch_a, "%.*s", RHIST_EPOCH_LEN, a2);
    /* A new server: the next message is numbered on, in a new epoch. */
    assert_int_equal(raise_generation(l, &g), 1);
    publish(l, &news, "{\"n\":3}", &p);
    assert_memory_not_equal(p.id, a2, RHIST_EPOCH_LEN);
    assert_string_equal(p.id + RHIST_EPOCH_LEN, ":3");
    /* Ids of the epoch before, up to where it ended here, still name the same messages. */
    since(l, &news, a2, &r);
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.id, p.id);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0], "{\"n\":3}");
    assert_string_equal(r.prev, epoch_a);
    assert_int_equal(r.start, 2);
    since(l, &news, a1, &r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.offsets[0], 2);
    assert_string_equal(r.items[0], "{\"n\":2}");
    /* One past it was never numbered here (the old master's, lost): not recoverable. */
    same_epoch(lost, a2, 3);
    since(l, &news, lost, &r);
    assert_int_equal(r.ok, 0);
    /* An empty since: the position, and where the epoch took over. */
    since(l, &news, "", &r);
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.prev, epoch_a);
    assert_int_equal(r.start, 2);
    rlink_free(l);
}

static void test_rhist_publishes_with_the_id(void **state)
{
    struct seen up = {0}, sub = {0}, p = {0};
    struct rlink *l;
    char cmd[256], out[512];
    FILE *f;

    redis_start(NULL);
    l = link_up(&up);
    /* A real subscriber: redis-cli, waiting for one message on the channel. */
    snprintf(cmd, sizeof cmd, "timeout 5 redis-cli -s %s --raw SUBSCRIBE herald:p:shop 2>&1", sock);
    f = popen(cmd, "r");
    assert_non_null(f);
    /* Wait until the subscription is in place: PUBSUB NUMSUB says 1. */
    for (int i = 0; i < 300 && subscribers != 1; i++) {
        int before = sub.answers;

        assert_int_equal(rlink_command(l, on_numsub, &sub, "PUBSUB NUMSUB %s", "herald:p:shop"),
                         RLINK_OK);
        run_until(&sub.answers, before + 1, 1);
        usleep(10000);
    }
    assert_int_equal(subscribers, 1);
    assert_int_equal(rhist_publish(l, &news, "{\"e\":1}", 7, "herald:p:shop", on_published, &p),
                     RLINK_OK);
    run_until(&p.answers, 1, 3);
    assert_int_equal(p.err, RLINK_OK);
    rlink_free(l);
    redis_kill();
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    pclose(f);
    /* "<epoch>:1 - <payload>": the id first, the tag (nobody), then the payload as it was. */
    {
        char want[64];

        snprintf(want, sizeof want, "%s - {\"e\":1}", p.id);
        assert_non_null(strstr(out, want));
    }
}

static void test_rhist_sites_never_share_a_key(void **state)
{
    struct seen up = {0}, p = {0}, r = {0};
    struct rlink *l;
    struct rhist_stream blog = news;

    redis_start(NULL);
    l = link_up(&up);
    blog.site = "blog";
    publish(l, &news, "{\"shop\":1}", &p);
    publish(l, &news, "{\"shop\":2}", &p);
    /* blog's "news" is its own stream: nothing published there yet. */
    since(l, &blog, "", &r);
    assert_non_null(strstr(r.id, ":0"));
    publish(l, &blog, "{\"blog\":1}", &p);
    assert_non_null(strstr(p.id, ":1"));
    rlink_free(l);
}

static void test_rhist_refuses_names_that_do_not_fit_a_key(void **state)
{
    struct seen up = {0}, p = {0};
    struct rlink *l;
    struct rhist_stream huge = news;
    char name[600];

    redis_start(NULL);
    l = link_up(&up);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    huge.name = name;
    /* Refused at once, and never answered: nothing reaches Redis. */
    assert_int_equal(rhist_publish(l, &huge, "x", 1, NULL, on_published, &p), RLINK_E_REPLY);
    assert_int_equal(rhist_since(l, &huge, "", on_since, &p), RLINK_E_REPLY);
    run_until(&p.answers, 1, 0.2);
    assert_int_equal(p.answers, 0);
    rlink_free(l);
}

/* What a subscriber link saw. */
struct msgs {
    int subscribed, n;
    char channel[8][32];
    char data[8][64];
    size_t len[8];
};

static void on_push(void *arg, int type, const char *channel, size_t clen, const char *data,
                    size_t dlen)
{
    struct msgs *m = arg;
    int i = m->n;

    if (type == RLINK_PUSH_SUBSCRIBED) {
        m->subscribed++;
        return;
    }
    assert_int_equal(type, RLINK_PUSH_MESSAGE);
    assert_true(i < 8 && dlen <= sizeof m->data[i]);
    m->n++;
    snprintf(m->channel[i], sizeof m->channel[i], "%.*s", (int)clen, channel);
    memcpy(m->data[i], data, dlen);
    m->len[i] = dlen;
}

/* A subscriber link on the n channels, each subscription in place. */
static struct rlink *subscriber(struct seen *up, struct msgs *m, const char *const *channels, int n)
{
    struct rlink *l = link_up(up);

    rlink_set_push(l, on_push, m);
    for (int i = 0; i < n; i++)
        assert_int_equal(rlink_subscribe(l, channels[i]), RLINK_OK);
    run_until(&m->subscribed, n, 3);
    assert_int_equal(m->subscribed, n);
    return l;
}

/* The message on channel in m, or -1. */
static int message_on(const struct msgs *m, const char *channel)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->channel[i], channel) == 0)
            return i;
    return -1;
}

/* Is m's message i "<prefix><payload>" exactly? */
static int message_is(const struct msgs *m, int i, const char *prefix, const char *payload,
                      size_t len)
{
    size_t plen = strlen(prefix);

    return i >= 0 && m->len[i] == plen + len && memcmp(m->data[i], prefix, plen) == 0 &&
           memcmp(m->data[i] + plen, payload, len) == 0;
}

/* What rhist_publish_many answered. */
struct many {
    int answers, err;
    char ids[4][RHIST_ID_MAX];
    size_t n;
    uint64_t reached;
};

static void on_many(void *arg, int err, const char (*ids)[RHIST_ID_MAX], size_t n, uint64_t reached)
{
    struct many *m = arg;

    m->answers++;
    m->err = err;
    m->n = n;
    m->reached = reached;
    for (size_t i = 0; i < n && i < 4 && ids != NULL; i++)
        snprintf(m->ids[i], sizeof m->ids[i], "%s", ids[i]);
}

/* rhist_publish_many and wait. */
static void publish_many(struct rlink *l, const struct rhist_pub *p, struct many *m)
{
    int before = m->answers;

    assert_int_equal(rhist_publish_many(l, p, on_many, m), RLINK_OK);
    run_until(&m->answers, before + 1, 3);
    assert_int_equal(m->answers, before + 1);
    assert_int_equal(m->err, RLINK_OK);
}

static void test_rhist_publish_many_numbers_and_publishes_each(void **state)
{
    static const char payload[] = "{\"e\":\"a b\"} \0z";
    static const char *const with_ids[] = {"herald:p:news", "herald:p:sport", "herald:p:alice"};
    static const char *const plain[] = {"herald:p:all", "herald:p:ops"};
    static const char *const channels[] = {"herald:p:news", "herald:p:sport", "herald:p:alice",
                                           "herald:p:all", "herald:p:ops"};
    const struct rhist_stream streams[] = {news,
                                           {"herald:", "shop", 'c', "sport", 3, 300, 600},
                                           {"herald:", "shop", 'u', "alice", 3, 300, 600}};
    struct rhist_pub p = {streams, with_ids, 3, plain, 2, "api", payload, sizeof payload - 1};
    struct seen up = {0}, sup = {0}, sup2 = {0}, pub = {0}, r = {0};
    struct msgs m = {0}, m2 = {0};
    struct many got = {0};
    struct rlink *l, *sub, *sub2;
    char prefix[64];

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &m, channels, 5);
    sub2 = subscriber(&sup2, &m2, channels, 1);
    publish(l, &news, "{\"n\":1}", &pub);
    publish_many(l, &p, &got);
    /* Each stream numbered on its own: news had one already. */
    assert_int_equal(got.n, 3);
    assert_string_equal(got.ids[0] + RHIST_EPOCH_LEN, ":2");
    assert_memory_equal(got.ids[0], pub.id, RHIST_EPOCH_LEN);
    assert_string_equal(got.ids[1] + RHIST_EPOCH_LEN, ":1");
    assert_string_equal(got.ids[2] + RHIST_EPOCH_LEN, ":1");
    /* Five PUBLISHes reached six subscriptions: news has two subscribers. */
    assert_int_equal(got.reached, 6);
    run_until(&m.n, 5, 3);
    run_until(&m2.n, 1, 3);
    assert_int_equal(m.n, 5);
    assert_int_equal(m2.n, 1);
    for (int i = 0; i < 3; i++) {
        snprintf(prefix, sizeof prefix, "%s api ", got.ids[i]);
        assert_true(message_is(&m, message_on(&m, with_ids[i]), prefix, payload, p.len));
    }
    snprintf(prefix, sizeof prefix, "%s api ", got.ids[0]);
    assert_true(message_is(&m2, message_on(&m2, "herald:p:news"), prefix, payload, p.len));
    /* Unnumbered: no id, the tag, the payload. */
    assert_true(message_is(&m, message_on(&m, "herald:p:all"), " api ", payload, p.len));
    assert_true(message_is(&m, message_on(&m, "herald:p:ops"), " api ", payload, p.len));
    /* Kept, binary-safe, in each stream. */
    for (int i = 0; i < 3; i++) {
        char before[RHIST_ID_MAX];

        same_epoch(before, got.ids[i], i == 0 ? 1 : 0);
        since(l, &streams[i], before, &r);
        assert_int_equal(r.ok, 1);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.id, got.ids[i]);
        assert_string_equal(r.items[0], "{\"e\":\"a b\"} ");
        assert_int_equal(r.lens[0], sizeof payload - 1);
    }
    rlink_free(sub2);
    rlink_free(sub);
    rlink_free(l);
}

static void test_rhist_publish_many_without_channels_or_streams(void **state)
{
    static const char *const plain[] = {"herald:p:all"};
    static const char *const channels[] = {"herald:p:news", "herald:p:all"};
    const struct rhist_stream streams[] = {news, {"herald:", "shop", 'c', "sport", 3, 300, 600}};
    struct rhist_pub p = {streams, NULL, 2, NULL, 0, "api", "x", 1};
    struct seen up = {0}, sup = {0};
    struct msgs m = {0};
    struct many got = {0};
    struct rlink *l, *sub;

    redis_start(NULL);
    l = link_up(&up);
    sub = subscriber(&sup, &m, channels, 2);
    /* No pub/sub channels: numbered and kept, published nowhere, reaching nobody. */
    publish_many(l, &p, &got);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.ids[0] + RHIST_EPOCH_LEN, ":1");
    assert_string_equal(got.ids[1] + RHIST_EPOCH_LEN, ":1");
    assert_int_equal(got.reached, 0);
    /* No stream at all: only the unnumbered publish (tag "-" for nobody), and nothing before it. */
    p.n = 0;
    p.plain = plain;
    p.nplain = 1;
    p.tag = NULL;
    p.payload = "end";
    p.len = 3;
    publish_many(l, &p, &got);
    assert_int_equal(got.n, 0);
    assert_int_equal(got.reached, 1);
    run_until(&m.n, 1, 3);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.channel[0], "herald:p:all");
    assert_true(message_is(&m, 0, " - ", "end", 3));
    rlink_free(sub);
    rlink_free(l);
}

static void test_rhist_publish_many_refuses_names_that_do_not_fit_a_key(void **state)
{
    struct rhist_stream streams[3] = {news, news, news};
    struct rhist_pub p = {streams, NULL, 3, NULL, 0, "-", "x", 1};
    struct seen up = {0}, r = {0};
    struct many got = {0};
    struct rlink *l;
    char name[600];

    redis_start(NULL);
    l = link_up(&up);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    streams[1].name = name;
    /* Refused at once, never answered, and not one stream touched. */
    assert_int_equal(rhist_publish_many(l, &p, on_many, &got), RLINK_E_REPLY);
    streams[1] = news;
    streams[2].site = name;
    assert_int_equal(rhist_publish_many(l, &p, on_many, &got), RLINK_E_REPLY);
    run_until(&got.answers, 1, 0.2);
    assert_int_equal(got.answers, 0);
    since(l, &news, "", &r);
    assert_string_equal(r.id + RHIST_EPOCH_LEN, ":0");
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

static redisReply *rstring(const char *s)
{
    redisReply *r = reply_new(REDIS_REPLY_STRING);

    r->len = strlen(s);
    r->str = strdup(s);
    assert_non_null(r->str);
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

/* rhist_parse_numbered on r for n streams (at most 3); frees r. */
static int numbered_of(redisReply *r, size_t n, char (*ids)[RHIST_ID_MAX], uint64_t *reached)
{
    int rc = rhist_parse_numbered(r, n, ids, reached);

    freeReplyObject(r);
    return rc;
}

static void test_rhist_parse_numbered_refuses_malformed_replies(void **state)
{
    char ids[3][RHIST_ID_MAX];
    uint64_t reached = 0;

    /* What the script answers for 3 streams, and for none. */
    assert_int_equal(numbered_of(rarray(7, rstring("0a1b2c3d"), rinteger(2), rstring("0a1b2c3d"),
                                        rinteger(1), rstring("deadbeef"), rinteger(1), rinteger(6)),
                                 3, ids, &reached),
                     0);
    assert_string_equal(ids[0], "0a1b2c3d:2");
    assert_string_equal(ids[1], "0a1b2c3d:1");
    assert_string_equal(ids[2], "deadbeef:1");
    assert_int_equal(reached, 6);
    assert_int_equal(numbered_of(rarray(1, rinteger(4)), 0, ids, &reached), 0);
    assert_int_equal(reached, 4);
    /* Elements for another number of streams. */
    assert_int_equal(numbered_of(rarray(7, rstring("0a1b2c3d"), rinteger(2), rstring("0a1b2c3d"),
                                        rinteger(1), rstring("deadbeef"), rinteger(1), rinteger(6)),
                                 2, ids, &reached),
                     -1);
    assert_int_equal(
        numbered_of(rarray(4, rstring("0a1b2c3d"), rinteger(2), rstring("0a1b2c3d"), rinteger(1)),
                    2, ids, &reached),
        -1);
    assert_int_equal(numbered_of(rarray(2, rstring("0a1b2c3d"), rinteger(2)), 1, ids, &reached),
                     -1);
    assert_int_equal(numbered_of(rarray(0), 0, ids, &reached), -1);
    /* Reached negative, or not a number. */
    assert_int_equal(
        numbered_of(rarray(3, rstring("0a1b2c3d"), rinteger(2), rinteger(-1)), 1, ids, &reached),
        -1);
    assert_int_equal(
        numbered_of(rarray(3, rstring("0a1b2c3d"), rinteger(2), rstring("1")), 1, ids, &reached),
        -1);
    /* An offset negative, an epoch not of 8 lowercase hex digits, not an array at all. */
    assert_int_equal(
        numbered_of(rarray(3, rstring("0a1b2c3d"), rinteger(-2), rinteger(1)), 1, ids, &reached),
        -1);
    assert_int_equal(
        numbered_of(rarray(3, rstring("0A1B2C3D"), rinteger(2), rinteger(1)), 1, ids, &reached),
        -1);
    assert_int_equal(
        numbered_of(rarray(3, rstring("0a1b2c3"), rinteger(2), rinteger(1)), 1, ids, &reached), -1);
    assert_int_equal(numbered_of(rinteger(1), 0, ids, &reached), -1);
    assert_int_equal(numbered_of(rstring("0a1b2c3d:1"), 1, ids, &reached), -1);
}

/* rhist_parse_since on r; frees r (the items point into it, so only their count is kept). */
static int since_of(redisReply *r, int *ok, char *id, char *prev, uint64_t *start, size_t *n)
{
    struct rhist_item *items = NULL;
    int rc = rhist_parse_since(r, ok, id, prev, start, &items, n);

    assert_true(rc == 0 || (items == NULL && *n == 0));
    free(items);
    freeReplyObject(r);
    return rc;
}

static void test_rhist_parse_since_checks_the_epoch_before_and_its_end(void **state)
{
    char id[RHIST_ID_MAX], prev[RHIST_EPOCH_LEN + 1];
    uint64_t start = 0;
    size_t n = 0;
    int ok = 0;

    /* What the script answers: no epoch before, and one that ended at 6. */
    assert_int_equal(
        since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1), rstring(""), rinteger(0)),
                 &ok, id, prev, &start, &n),
        0);
    assert_string_equal(id, "0a1b2c3d:7");
    assert_string_equal(prev, "");
    assert_int_equal(ok, 1);
    assert_int_equal(since_of(rarray(6, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("99887766"), rinteger(6), rstring("7:{}")),
                              &ok, id, prev, &start, &n),
                     0);
    assert_string_equal(prev, "99887766");
    assert_int_equal(start, 6);
    assert_int_equal(n, 1);
    /* The end past the stream's position, negative, not a number. */
    assert_int_equal(since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("99887766"), rinteger(8)),
                              &ok, id, prev, &start, &n),
                     -1);
    assert_int_equal(since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("99887766"), rinteger(-1)),
                              &ok, id, prev, &start, &n),
                     -1);
    assert_int_equal(since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("99887766"), rstring("6")),
                              &ok, id, prev, &start, &n),
                     -1);
    /* An epoch before that is not one (it would go into ids clients see), or not a string. */
    assert_int_equal(since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("9988776\""), rinteger(6)),
                              &ok, id, prev, &start, &n),
                     -1);
    assert_int_equal(since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1),
                                     rstring("998877665"), rinteger(6)),
                              &ok, id, prev, &start, &n),
                     -1);
    assert_int_equal(
        since_of(rarray(5, rstring("0a1b2c3d"), rinteger(7), rinteger(1), rinteger(9), rinteger(6)),
                 &ok, id, prev, &start, &n),
        -1);
    /* The old shape, without them. */
    assert_int_equal(since_of(rarray(3, rstring("0a1b2c3d"), rinteger(7), rinteger(1)), &ok, id,
                              prev, &start, &n),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rhist_numbers_keeps_and_replays, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_two_nodes_number_without_gaps, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_lost_keys_mean_a_new_epoch, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_a_failover_raises_the_generation_once,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_a_new_generation_goes_on_from_the_epoch_before,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_publishes_with_the_id, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_sites_never_share_a_key, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_refuses_names_that_do_not_fit_a_key, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_publish_many_numbers_and_publishes_each,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_publish_many_without_channels_or_streams,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_publish_many_refuses_names_that_do_not_fit_a_key,
                                        redis_setup, redis_teardown),
        cmocka_unit_test(test_rhist_parse_numbered_refuses_malformed_replies),
        cmocka_unit_test(test_rhist_parse_since_checks_the_epoch_before_and_its_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

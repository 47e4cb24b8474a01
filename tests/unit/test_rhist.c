/*
 * test_rhist.c -- history in Redis (lib/store/rhist.c) against a real
 * redis-server (tests/unit/redis_fixture.h): ids are gap-free and in order
 * in a stream, also with two links (two nodes) publishing at once; a
 * client that saw an id gets exactly what followed; a trimmed list, an id
 * of another epoch or from the future are "not recoverable"; a stream
 * whose keys were lost (a Redis restart without persistence) comes back
 * with a new epoch; the publish reaches a subscriber of its pub/sub
 * channel with its id; streams of two sites never share a key.
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
    char items[16][64];
    uint64_t offsets[16];
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

static void on_since(void *arg, int err, int ok, const char *id, const struct rhist_item *items,
                     size_t n)
{
    struct seen *s = arg;

    s->answers++;
    s->err = err;
    s->ok = ok;
    s->n = n;
    snprintf(s->id, sizeof s->id, "%s", id != NULL ? id : "");
    for (size_t i = 0; i < n && i < 16; i++) {
        s->offsets[i] = items[i].offset;
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
    struct rlink_cfg cfg = {address, NULL, 0, 1.0, 0.05, 0.2};
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
    assert_int_equal(r.n, 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rhist_numbers_keeps_and_replays, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_two_nodes_number_without_gaps, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_lost_keys_mean_a_new_epoch, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_publishes_with_the_id, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_sites_never_share_a_key, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_rhist_refuses_names_that_do_not_fit_a_key, redis_setup,
                                        redis_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

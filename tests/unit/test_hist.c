/*
 * test_hist.c -- unit tests for message history (hist.c).
 *
 * Covers:     ids ("<8 lowercase hex>:<offset>", a fresh epoch per
 *             hist_init, offsets from one counter increasing across
 *             streams); hist_push bounded by count and by age (the floor
 *             rises to the last dropped offset, dropped frames unref'd);
 *             hist_since with "" (the position only), an id in range (the
 *             exact frames after it, oldest first, one reference each), at
 *             the floor, at the newest offset, below the floor, of another
 *             epoch, malformed or out of range; a stream made by hist_since
 *             and then published to; a stream dropped by hist_sweep and made
 *             again (its floor is the counter at its making, so an id from
 *             its earlier life is not recoverable); the gauges (streams,
 *             messages, bytes, evicted); hist_sweep over max_bytes dropping
 *             the oldest entries first across streams; and writer threads
 *             appending to shared streams under hist_begin/hist_end while
 *             reader threads call hist_since and a sweeper evicts, after which
 *             every stream's offsets rose strictly and every successful
 *             hist_since returned exactly the stream's entries after its id.
 * Invariants: hist measures ages with CLOCK_MONOTONIC_COARSE (a few ms of
 *             resolution), so the timed tests leave gaps of 100 ms or more.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hist.h"
#include "msg.h"
#include "ws.h"

#define BIG (1u << 30) /* a max_bytes that is never reached */

/* Sleep ms milliseconds. */
static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A text frame whose payload is text (under 126 bytes: a 2-byte header). */
static struct msg *frame(const char *text)
{
    assert_true(strlen(text) < 126);
    return msg_new(WS_OP_TEXT, text, strlen(text));
}

/* The payload of a frame made by frame(), as a string in buf. */
static const char *payload(const struct msg *m, char *buf, size_t size)
{
    size_t n = m->len - 2;

    assert_true(m->len >= 2 && (m->data[1] & 0x7f) == n && n < size);
    memcpy(buf, m->data + 2, n);
    buf[n] = '\0';
    return buf;
}

/* Publish one message to key as pub.c does; returns its offset and the frame in *out. */
static uint64_t publish(struct hist *h, const char *key, struct msg **out)
{
    char id[HIST_ID_MAX];
    struct hist_stream *s = hist_begin(h, key);
    uint64_t off = hist_next(h, s, id);
    struct msg *m = frame(id);

    hist_push(h, s, off, m);
    hist_end(h, s);
    if (out != NULL)
        *out = m;
    else
        msg_unref(m);
    return off;
}

/* "<epoch>:<off>" of h. */
static const char *id_of(const struct hist *h, uint64_t off, char *buf)
{
    snprintf(buf, HIST_ID_MAX, "%s:%" PRIu64, h->epoch, off);
    return buf;
}

/* hist_since that must fail: nothing handed back; returns the stream's position. */
static uint64_t since_fails(struct hist *h, const char *key, const char *since)
{
    struct msg **out = (struct msg **)1;
    size_t n = 99;
    uint64_t last = 0;
    char id[HIST_ID_MAX];

    if (hist_since(h, key, since, &out, &n, &last, id) != 0) {
        print_error("hist_since(\"%s\", \"%s\") recovered (%zu frames)\n", key, since, n);
        fail();
    }
    assert_null(out);
    assert_int_equal(n, 0);
    return last;
}

/* hist_since that must succeed with exactly the frames of offsets want[0..nwant). */
static uint64_t since_gives(struct hist *h, const char *key, const char *since,
                            const uint64_t *want, size_t nwant)
{
    struct msg **out;
    size_t n;
    uint64_t last;
    char id[HIST_ID_MAX], buf[64], expect[HIST_ID_MAX];

    assert_int_equal(hist_since(h, key, since, &out, &n, &last, id), 1);
    assert_int_equal(n, nwant);
    assert_string_equal(id, id_of(h, last, expect));
    if (nwant == 0)
        assert_null(out);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(payload(out[i], buf, sizeof buf), id_of(h, want[i], expect));
        msg_unref(out[i]);
    }
    free(out);
    return last;
}

static void test_hist_ids_and_epochs(void **state)
{
    struct hist h, h2;
    struct hist_stream *a, *b;
    char id[HIST_ID_MAX], key[64];
    uint64_t o1, o2, o3;

    hist_init(&h, 10, 60, BIG);
    hist_init(&h2, 0, 60, BIG);
    for (int i = 0; i < 8; i++) {
        assert_true((h.epoch[i] >= '0' && h.epoch[i] <= '9') ||
                    (h.epoch[i] >= 'a' && h.epoch[i] <= 'f'));
    }
    assert_int_equal(strlen(h.epoch), 8);
    /* random per process: two in a row collide once in 2^32 */
    assert_string_not_equal(h.epoch, h2.epoch);
    assert_true(hist_on(&h));
    assert_false(hist_on(&h2));

    assert_string_equal(hist_key(key, sizeof key, "default", 'u', "42"), "default/u:42");
    assert_string_equal(hist_key(key, sizeof key, "shop", 'c', "room:1"), "shop/c:room:1");

    a = hist_begin(&h, "u:42");
    assert_int_equal(a->stripe, hist_stripe_of("u:42"));
    assert_int_equal(a->floor, 0);
    assert_int_equal(a->last, 0);
    o1 = hist_next(&h, a, id);
    assert_int_equal(o1, 1);
    assert_string_equal(id, id_of(&h, 1, key));
    hist_end(&h, a);
    b = hist_begin(&h, "c:room:1");
    /* a stream made now starts at the counter: offset 1 went to another stream */
    assert_int_equal(b->floor, 1);
    o2 = hist_next(&h, b, id);
    hist_end(&h, b);
    a = hist_begin(&h, "u:42");
    o3 = hist_next(&h, a, id);
    /* one counter: increasing across streams, not contiguous within one */
    assert_true(o1 < o2 && o2 < o3);
    assert_int_equal(o3, 3);
    assert_int_equal(a->last, 3);
    assert_string_equal(id, id_of(&h, 3, key));
    hist_end(&h, a);
    /* the same key is the same stream */
    assert_int_equal(atomic_load(&h.streams), 2);
    hist_free(&h);
    hist_free(&h2);
}

static void test_hist_push_bounded_by_count(void **state)
{
    struct hist h;
    struct msg *m[5];
    uint64_t off[5];
    struct hist_stream *s;

    hist_init(&h, 3, 60, BIG);
    for (int i = 0; i < 5; i++)
        off[i] = publish(&h, "c:a", &m[i]);
    s = hist_begin(&h, "c:a");
    assert_int_equal(s->count, 3);
    /* two dropped: the floor is the newest dropped offset */
    assert_int_equal(s->floor, off[1]);
    assert_int_equal(s->last, off[4]);
    hist_end(&h, s);
    assert_int_equal(atomic_load(&h.messages), 3);
    assert_int_equal(atomic_load(&h.evicted), 2);
    /* dropped frames gave their reference back; kept ones still hold one */
    for (int i = 0; i < 5; i++)
        assert_int_equal(atomic_load(&m[i]->refs), i < 2 ? 1 : 2);
    hist_free(&h);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&m[i]->refs), 1);
        msg_unref(m[i]);
    }
}

static void test_hist_push_bounded_by_age(void **state)
{
    struct hist h;
    uint64_t o1, o2, o3;
    struct hist_stream *s;
    char id[HIST_ID_MAX];

    hist_init(&h, 100, 0.1, BIG);
    o1 = publish(&h, "u:1", NULL);
    o2 = publish(&h, "u:1", NULL);
    sleep_ms(250);
    o3 = publish(&h, "u:1", NULL);
    s = hist_begin(&h, "u:1");
    /* the push itself dropped the two that passed their age */
    assert_int_equal(s->count, 1);
    assert_int_equal(s->floor, o2);
    hist_end(&h, s);
    assert_int_equal(atomic_load(&h.evicted), 2);
    since_fails(&h, "u:1", id_of(&h, o1, id));
    /* what the client saw last was dropped, but nothing after it was: recoverable */
    since_gives(&h, "u:1", id_of(&h, o2, id), &o3, 1);
    /* hist_since trims by age too, without a push */
    sleep_ms(250);
    since_fails(&h, "u:1", id_of(&h, o2, id));
    s = hist_begin(&h, "u:1");
    assert_int_equal(s->count, 0);
    assert_int_equal(s->floor, o3);
    assert_int_equal(s->last, o3);
    hist_end(&h, s);
    /* an empty stream whose client saw everything is still recovered */
    assert_int_equal(since_gives(&h, "u:1", id_of(&h, o3, id), NULL, 0), o3);
    assert_int_equal(atomic_load(&h.messages), 0);
    assert_int_equal(atomic_load(&h.bytes), 0);
    hist_free(&h);
}

static void test_hist_since_empty_is_the_position(void **state)
{
    struct hist h;
    uint64_t o[3];
    struct msg **out;
    size_t n;
    uint64_t last;
    char id[HIST_ID_MAX], buf[HIST_ID_MAX];

    hist_init(&h, 10, 60, BIG);
    for (int i = 0; i < 3; i++)
        o[i] = publish(&h, "c:x", NULL);
    assert_int_equal(hist_since(&h, "c:x", "", &out, &n, &last, id), 1);
    assert_null(out);
    assert_int_equal(n, 0);
    assert_int_equal(last, o[2]);
    assert_string_equal(id, id_of(&h, o[2], buf));
    /* the position of a stream nobody published to yet: the counter now */
    assert_int_equal(hist_since(&h, "c:new", "", &out, &n, &last, id), 1);
    assert_null(out);
    assert_int_equal(last, o[2]);
    hist_free(&h);
}

static void test_hist_since_in_range_gives_exact_frames(void **state)
{
    struct hist h;
    uint64_t o[6];
    struct msg *m[6];
    char id[HIST_ID_MAX];

    hist_init(&h, 10, 60, BIG);
    /* two streams interleaved: each stream's offsets have gaps */
    for (int i = 0; i < 6; i++)
        o[i] = publish(&h, i % 2 ? "c:odd" : "c:even", &m[i]);
    {
        uint64_t want[] = {o[2], o[4]};
        struct msg **out;
        size_t n;
        uint64_t last;

        char since[HIST_ID_MAX];

        /* since the first of the stream: the two after it, oldest first */
        assert_int_equal(hist_since(&h, "c:even", id_of(&h, o[0], since), &out, &n, &last, id), 1);
        assert_string_equal(id, id_of(&h, o[4], since));
        assert_int_equal(n, 2);
        assert_int_equal(last, o[4]);
        /* the very frames kept, each with one more reference for the caller */
        assert_ptr_equal(out[0], m[2]);
        assert_ptr_equal(out[1], m[4]);
        assert_int_equal(atomic_load(&m[2]->refs), 3);
        msg_unref(out[0]);
        msg_unref(out[1]);
        free(out);
        assert_int_equal(atomic_load(&m[2]->refs), 2);
        assert_int_equal(atomic_load(&m[4]->refs), 2);
        since_gives(&h, "c:even", id_of(&h, o[0], id), want, 2);
    }
    /* an offset between two of the stream's (another stream's): what follows it */
    since_gives(&h, "c:even", id_of(&h, o[3], id), &o[4], 1);
    since_gives(&h, "c:odd", id_of(&h, o[0], id), (uint64_t[]){o[1], o[3], o[5]}, 3);
    /* at the newest: nothing missed */
    since_gives(&h, "c:odd", id_of(&h, o[5], id), NULL, 0);
    /* the floor (the counter when the stream was made) is still recoverable... */
    since_gives(&h, "c:even", id_of(&h, 0, id), (uint64_t[]){o[0], o[2], o[4]}, 3);
    since_gives(&h, "c:odd", id_of(&h, o[0], id), (uint64_t[]){o[1], o[3], o[5]}, 3);
    /* ...below it is not: c:odd was made when the counter stood at o[0] */
    since_fails(&h, "c:odd", id_of(&h, 0, id));
    /* leading zeros are the same number */
    snprintf(id, sizeof id, "%s:000%" PRIu64, h.epoch, o[0]);
    since_gives(&h, "c:even", id, (uint64_t[]){o[2], o[4]}, 2);
    hist_free(&h);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(atomic_load(&m[i]->refs), 1);
        msg_unref(m[i]);
    }
}

static void test_hist_since_below_floor_or_other_epoch(void **state)
{
    struct hist h;
    uint64_t o[5];
    char id[HIST_ID_MAX], other[9];

    hist_init(&h, 2, 60, BIG);
    for (int i = 0; i < 5; i++)
        o[i] = publish(&h, "u:7", NULL);
    /* kept: o[3], o[4]; floor o[2] */
    since_gives(&h, "u:7", id_of(&h, o[2], id), &o[3], 2);
    assert_int_equal(since_fails(&h, "u:7", id_of(&h, o[1], id)), o[4]);
    since_fails(&h, "u:7", id_of(&h, 0, id));
    /* another epoch (a restarted daemon), offsets in range or not */
    snprintf(other, sizeof other, "%s", h.epoch);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    snprintf(id, sizeof id, "%s:%" PRIu64, other, o[3]);
    since_fails(&h, "u:7", id);
    snprintf(id, sizeof id, "%s:%" PRIu64, other, o[4]);
    since_fails(&h, "u:7", id);
    hist_free(&h);
}

static void test_hist_since_malformed_ids(void **state)
{
    struct hist h;
    char id[64], up[HIST_ID_MAX];
    uint64_t o;
    const char *bad[] = {
        "x",           "12345678:",   "12345678:1x",  ":1",          "1:1",
        "zzzzzzzz:1",  "12345678",    "123456789:1",  "12345678-1",  "12345678:-1",
        "12345678: 1", "12345678:+1", "12345678:0x1", "12345678:1 ",
    };
    /* with this daemon's epoch: the same shapes, and offsets past the newest */
    const char *bad_here[] = {
        "%s:",
        "%s:1x",
        "%s:x",
        "%s:-1",
        "%s: 1",
        "%s:+1",
        "%s:1 ",
        "%s::1",
        "%s:1:1",
        "%s:18446744073709551615",
        "%s:18446744073709551616",
        "%s:99999999999999999999999999",
        "%s:1000000",
    };

    hist_init(&h, 10, 60, BIG);
    o = publish(&h, "c:m", NULL);
    assert_int_equal(o, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(since_fails(&h, "c:m", bad[i]), o);
    for (size_t i = 0; i < sizeof bad_here / sizeof bad_here[0]; i++) {
        snprintf(id, sizeof id, bad_here[i], h.epoch);
        assert_int_equal(since_fails(&h, "c:m", id), o);
    }
    /* the epoch in upper case is another epoch */
    snprintf(up, sizeof up, "%s:0", h.epoch);
    for (int i = 0; i < 8; i++)
        if (up[i] >= 'a' && up[i] <= 'f')
            up[i] = (char)(up[i] - 'a' + 'A');
    if (strncmp(up, h.epoch, 8) != 0)
        since_fails(&h, "c:m", up);
    /* a long string, not NUL-padded to any size */
    {
        char longid[4096];

        memset(longid, '7', sizeof longid - 1);
        longid[sizeof longid - 1] = '\0';
        memcpy(longid, h.epoch, 8);
        longid[8] = ':';
        since_fails(&h, "c:m", longid);
    }
    /* and the stream still answers properly */
    since_gives(&h, "c:m", id_of(&h, 0, id), &o, 1);
    hist_free(&h);
}

static void test_hist_stream_made_by_since_then_published(void **state)
{
    struct hist h;
    uint64_t pos, o1, o2;
    char id[HIST_ID_MAX];
    struct hist_stream *s;

    hist_init(&h, 10, 60, BIG);
    publish(&h, "c:other", NULL);
    publish(&h, "c:other", NULL);
    /* a client asks first: the stream is made at the counter (2) */
    pos = since_gives(&h, "u:new", "", NULL, 0);
    assert_int_equal(pos, 2);
    assert_int_equal(atomic_load(&h.streams), 2);
    s = hist_begin(&h, "u:new");
    assert_int_equal(s->floor, 2);
    assert_int_equal(s->count, 0);
    hist_end(&h, s);
    o1 = publish(&h, "u:new", NULL);
    publish(&h, "c:other", NULL);
    o2 = publish(&h, "u:new", NULL);
    /* the position it was given recovers everything since */
    since_gives(&h, "u:new", id_of(&h, pos, id), (uint64_t[]){o1, o2}, 2);
    since_gives(&h, "u:new", id_of(&h, o1, id), &o2, 1);
    /* below the floor: numbered before the stream existed, maybe for its earlier life */
    since_fails(&h, "u:new", id_of(&h, 1, id));
    hist_free(&h);
}

static void test_hist_sweep_drops_stream_made_again_with_new_floor(void **state)
{
    struct hist h;
    uint64_t pos, o1, o2, again;
    char id[HIST_ID_MAX], id1[HIST_ID_MAX];
    struct hist_stream *s;

    hist_init(&h, 10, 0.1, BIG);
    pos = since_gives(&h, "u:idle", "", NULL, 0);
    o1 = publish(&h, "u:gone", NULL);
    assert_int_equal(atomic_load(&h.streams), 2);
    /* before the age: the sweep keeps both streams and their entries */
    hist_sweep(&h);
    assert_int_equal(atomic_load(&h.streams), 2);
    assert_int_equal(atomic_load(&h.messages), 1);
    sleep_ms(250);
    publish(&h, "c:live", NULL);
    hist_sweep(&h);
    /* u:idle idle and empty, u:gone's entry aged out and then the stream: gone */
    assert_int_equal(atomic_load(&h.streams), 1);
    assert_int_equal(atomic_load(&h.messages), 1);
    assert_int_equal(atomic_load(&h.evicted), 1);
    /* made again: its floor is the counter now, so ids from its earlier life fail */
    again = since_fails(&h, "u:idle", id_of(&h, pos, id));
    assert_true(again > pos);
    s = hist_begin(&h, "u:idle");
    assert_int_equal(s->floor, again);
    assert_int_equal(s->last, again);
    hist_end(&h, s);
    assert_int_equal(since_fails(&h, "u:gone", id_of(&h, o1, id1)), again);
    assert_int_equal(since_fails(&h, "u:gone", id_of(&h, 0, id1)), again);
    /* and numbers go on growing in the new life */
    o2 = publish(&h, "u:gone", NULL);
    assert_true(o2 > o1 && o2 > again);
    since_gives(&h, "u:gone", id_of(&h, again, id), &o2, 1);
    hist_free(&h);
}

static void test_hist_gauges(void **state)
{
    struct hist h;
    struct msg *a = frame("aaaaaaaaaa"), *b = frame("bb");
    struct hist_stream *s;
    char id[HIST_ID_MAX];
    uint64_t off;

    hist_init(&h, 2, 60, BIG);
    assert_int_equal(atomic_load(&h.streams), 0);
    assert_int_equal(atomic_load(&h.bytes), 0);
    for (int i = 0; i < 3; i++) {
        s = hist_begin(&h, "c:g1");
        off = hist_next(&h, s, id);
        hist_push(&h, s, off, i == 1 ? b : a);
        hist_end(&h, s);
    }
    /* kept: b, a (a's first push evicted) */
    assert_int_equal(atomic_load(&h.streams), 1);
    assert_int_equal(atomic_load(&h.messages), 2);
    assert_int_equal(atomic_load(&h.bytes), a->len + b->len);
    assert_int_equal(a->len, 12);
    assert_int_equal(atomic_load(&h.evicted), 1);
    s = hist_begin(&h, "u:g2");
    off = hist_next(&h, s, id);
    hist_push(&h, s, off, b);
    hist_end(&h, s);
    assert_int_equal(atomic_load(&h.streams), 2);
    assert_int_equal(atomic_load(&h.messages), 3);
    assert_int_equal(atomic_load(&h.bytes), a->len + 2 * b->len);
    /* one frame kept twice holds two references */
    assert_int_equal(atomic_load(&b->refs), 3);
    /* hist_since only reads: the gauges do not move */
    {
        struct msg **out;
        size_t n;
        uint64_t last;
        char since[HIST_ID_MAX];

        assert_int_equal(hist_since(&h, "c:g1", id_of(&h, 1, since), &out, &n, &last, id), 1);
        assert_int_equal(n, 2);
        assert_ptr_equal(out[0], b);
        assert_ptr_equal(out[1], a);
        msg_unref(out[0]);
        msg_unref(out[1]);
        free(out);
    }
    assert_int_equal(atomic_load(&h.streams), 2);
    assert_int_equal(atomic_load(&h.messages), 3);
    assert_int_equal(atomic_load(&h.bytes), a->len + 2 * b->len);
    assert_int_equal(atomic_load(&h.evicted), 1);
    assert_int_equal(atomic_load(&a->refs), 2);
    assert_int_equal(atomic_load(&b->refs), 3);
    hist_free(&h);
    assert_int_equal(atomic_load(&h.streams), 0);
    assert_int_equal(atomic_load(&h.messages), 0);
    assert_int_equal(atomic_load(&h.bytes), 0);
    assert_int_equal(atomic_load(&a->refs), 1);
    assert_int_equal(atomic_load(&b->refs), 1);
    msg_unref(a);
    msg_unref(b);
}

static void test_hist_sweep_over_max_bytes_oldest_first(void **state)
{
    struct hist h;
    struct hist_stream *s;
    uint64_t a[2], b[2], c[2];
    char id[HIST_ID_MAX];
    size_t len;

    /* max_bytes is set below once the frame size is known */
    hist_init(&h, 100, 10, BIG);
    a[0] = publish(&h, "c:A", NULL);
    c[0] = publish(&h, "c:C", NULL);
    sleep_ms(200);
    b[0] = publish(&h, "c:B", NULL);
    a[1] = publish(&h, "c:A", NULL);
    sleep_ms(200);
    c[1] = publish(&h, "c:C", NULL);
    b[1] = publish(&h, "c:B", NULL);
    len = atomic_load(&h.bytes) / 6;
    assert_int_equal(atomic_load(&h.bytes), 6 * len);
    /* room for four frames and a bit: the two oldest (a[0], c[0], 400 ms) must go */
    h.max_bytes = 4 * len + len / 2;
    hist_sweep(&h);
    assert_int_equal(atomic_load(&h.messages), 4);
    assert_int_equal(atomic_load(&h.bytes), 4 * len);
    assert_int_equal(atomic_load(&h.evicted), 2);
    assert_int_equal(atomic_load(&h.streams), 3);
    s = hist_begin(&h, "c:A");
    assert_int_equal(s->count, 1);
    assert_int_equal(s->floor, a[0]);
    hist_end(&h, s);
    since_gives(&h, "c:A", id_of(&h, a[0], id), &a[1], 1);
    since_fails(&h, "c:C", id_of(&h, 0, id));
    since_gives(&h, "c:C", id_of(&h, c[0], id), &c[1], 1);
    /* B lost nothing (it was made when the counter stood at c[0]) */
    since_gives(&h, "c:B", id_of(&h, c[0], id), b, 2);
    /* room for two: the 200 ms ones (b[0], a[1]) go, the newest (c[1], b[1]) stay */
    h.max_bytes = 2 * len;
    hist_sweep(&h);
    assert_int_equal(atomic_load(&h.messages), 2);
    assert_int_equal(atomic_load(&h.evicted), 4);
    since_fails(&h, "c:B", id_of(&h, c[0], id));
    since_gives(&h, "c:B", id_of(&h, b[0], id), &b[1], 1);
    since_gives(&h, "c:C", id_of(&h, c[0], id), &c[1], 1);
    since_fails(&h, "c:A", id_of(&h, a[0], id));
    since_gives(&h, "c:A", id_of(&h, a[1], id), NULL, 0);
    assert_int_equal(atomic_load(&h.streams), 3);
    /* under the budget the sweep drops nothing young */
    h.max_bytes = BIG;
    hist_sweep(&h);
    assert_int_equal(atomic_load(&h.messages), 2);
    hist_free(&h);
}

/* -- threads ------------------------------------------------------------ */

#define TW 4       /* writer threads */
#define TR 2       /* reader threads */
#define TSTREAMS 3 /* streams they share */
#define TITER 4000 /* appends per writer */
#define TKEEP 64   /* history_size */
#define TRECS 200000

static const char *tkeys[TSTREAMS] = {"c:shared-0", "u:shared-1", "c:shared-2"};

/* Every offset appended to a stream, in history order (written under its stripe lock). */
static uint64_t tlog[TSTREAMS][TW * TITER];
static size_t tnlog[TSTREAMS];
static uint32_t tlen[TSTREAMS][TW * TITER];

/* One successful hist_since by a reader: what it asked and what it got. */
struct trec {
    int stream;
    uint64_t since, last, sum;
    size_t n;
};

struct tctx {
    struct hist *h;
    int id;
    struct trec *recs;
    size_t nrecs;
    long failed;
    long bad;
};

static atomic_int twriters_left;

static void *twrite(void *arg)
{
    struct tctx *t = arg;
    char id[HIST_ID_MAX];

    for (int i = 0; i < TITER; i++) {
        int k = (i * 7 + t->id) % TSTREAMS;
        struct hist_stream *s = hist_begin(t->h, tkeys[k]);
        uint64_t off = hist_next(t->h, s, id);
        struct msg *m = msg_new(WS_OP_TEXT, id, strlen(id));

        /* under the stripe lock: the order the stream keeps */
        if (tnlog[k] > 0 && tlog[k][tnlog[k] - 1] >= off)
            t->bad++;
        tlen[k][tnlog[k]] = m->len;
        tlog[k][tnlog[k]++] = off;
        hist_push(t->h, s, off, m);
        hist_end(t->h, s);
        msg_unref(m);
    }
    atomic_fetch_sub(&twriters_left, 1);
    return NULL;
}

/* Check one hist_since answer: frames strictly increasing, after since, ending at last. */
static void tcheck(struct tctx *t, int k, uint64_t since, struct msg **out, size_t n, uint64_t last)
{
    uint64_t prev = since, sum = 0;
    char buf[HIST_ID_MAX];

    for (size_t i = 0; i < n; i++) {
        size_t len = out[i]->len - 2;
        uint64_t off;

        if (len >= sizeof buf || memcmp(out[i]->data + 2, t->h->epoch, 8) != 0) {
            t->bad++;
            break;
        }
        memcpy(buf, out[i]->data + 2, len);
        buf[len] = '\0';
        off = strtoull(buf + 9, NULL, 10);
        if (off <= prev)
            t->bad++;
        prev = off;
        sum += off;
    }
    if (n > 0 && prev != last)
        t->bad++;
    if (t->nrecs < TRECS)
        t->recs[t->nrecs++] = (struct trec){k, since, last, sum, n};
}

static void *tread(void *arg)
{
    struct tctx *t = arg;
    uint64_t pos[TSTREAMS] = {0};
    char since[HIST_ID_MAX], id[HIST_ID_MAX];
    int round = 0;

    while (atomic_load(&twriters_left) > 0 || round < 10) {
        round++;
        for (int k = 0; k < TSTREAMS; k++) {
            struct msg **out;
            size_t n;
            uint64_t last, from = pos[k];

            if ((round + t->id) % 3 == 0) {
                /* now and then from the floor: the whole kept history */
                struct hist_stream *s = hist_begin(t->h, tkeys[k]);

                from = s->floor;
                hist_end(t->h, s);
            }
            snprintf(since, sizeof since, "%s:%" PRIu64, t->h->epoch, from);
            if (hist_since(t->h, tkeys[k], since, &out, &n, &last, id) == 1)
                tcheck(t, k, from, out, n, last);
            else
                t->failed++;
            for (size_t i = 0; i < n; i++)
                msg_unref(out[i]);
            free(out);
            if (last < pos[k])
                t->bad++;
            pos[k] = last;
        }
    }
    return NULL;
}

/* The sweeper: the byte budget is tiny, so it evicts by age all along. */
static void *tsweep(void *arg)
{
    struct hist *h = arg;

    while (atomic_load(&twriters_left) > 0) {
        hist_sweep(h);
        sleep_ms(2);
    }
    return NULL;
}

/* Does rec match the log: exactly the entries in (since, last]? */
static int trec_matches(const struct trec *r)
{
    const uint64_t *log = tlog[r->stream];
    size_t lo = 0, hi = tnlog[r->stream], n = 0;
    uint64_t sum = 0;

    /* first entry above since */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (log[mid] <= r->since)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < tnlog[r->stream] && log[i] <= r->last; i++) {
        n++;
        sum += log[i];
    }
    return n == r->n && sum == r->sum;
}

static void test_hist_threads_offsets_rise_and_since_is_exact(void **state)
{
    static struct hist h;
    pthread_t w[TW], r[TR], sw;
    struct tctx wc[TW], rc[TR];
    size_t kept = 0, bytes = 0, total = 0, checked = 0;
    long failed = 0;

    hist_init(&h, TKEEP, 60, 2048);
    memset(tnlog, 0, sizeof tnlog);
    atomic_store(&twriters_left, TW);
    for (int i = 0; i < TR; i++) {
        rc[i] = (struct tctx){.h = &h, .id = i, .recs = calloc(TRECS, sizeof(struct trec))};
        assert_non_null(rc[i].recs);
        assert_int_equal(pthread_create(&r[i], NULL, tread, &rc[i]), 0);
    }
    for (int i = 0; i < TW; i++) {
        wc[i] = (struct tctx){.h = &h, .id = i};
        assert_int_equal(pthread_create(&w[i], NULL, twrite, &wc[i]), 0);
    }
    assert_int_equal(pthread_create(&sw, NULL, tsweep, &h), 0);
    for (int i = 0; i < TW; i++) {
        assert_int_equal(pthread_join(w[i], NULL), 0);
        assert_int_equal(wc[i].bad, 0);
    }
    assert_int_equal(pthread_join(sw, NULL), 0);
    for (int i = 0; i < TR; i++) {
        assert_int_equal(pthread_join(r[i], NULL), 0);
        assert_int_equal(rc[i].bad, 0);
        failed += rc[i].failed;
        for (size_t j = 0; j < rc[i].nrecs; j++, checked++) {
            if (!trec_matches(&rc[i].recs[j])) {
                const struct trec *x = &rc[i].recs[j];

                print_error("reader %d: %s since %" PRIu64 " last %" PRIu64 " gave %zu\n", i,
                            tkeys[x->stream], x->since, x->last, x->n);
                fail();
            }
        }
        free(rc[i].recs);
    }
    print_message("%zu hist_since answers checked, %ld not recoverable\n", checked, failed);
    assert_true(checked > 0);
    for (int k = 0; k < TSTREAMS; k++) {
        struct hist_stream *s = hist_begin(&h, tkeys[k]);

        total += tnlog[k];
        for (size_t i = 1; i < tnlog[k]; i++)
            assert_true(tlog[k][i - 1] < tlog[k][i]);
        assert_true(s->count <= TKEEP);
        assert_int_equal(s->last, tlog[k][tnlog[k] - 1]);
        /* the kept entries are the stream's newest, the floor the newest dropped */
        assert_int_equal(s->floor, tlog[k][tnlog[k] - s->count - 1]);
        kept += s->count;
        for (size_t i = tnlog[k] - s->count; i < tnlog[k]; i++)
            bytes += tlen[k][i];
        hist_end(&h, s);
    }
    assert_int_equal(total, (size_t)TW * TITER);
    assert_int_equal(atomic_load(&h.next_offset), total);
    assert_int_equal(atomic_load(&h.messages), kept);
    assert_int_equal(atomic_load(&h.messages) + atomic_load(&h.evicted), total);
    assert_int_equal(atomic_load(&h.bytes), bytes);
    assert_int_equal(atomic_load(&h.streams), TSTREAMS);
    hist_free(&h);
    assert_int_equal(atomic_load(&h.bytes), 0);
    assert_int_equal(atomic_load(&h.messages), 0);
}

/* A scratch path for a history file; *fd is closed, the file removed. */
static void scratch_path(char path[64])
{
    int fd;

    snprintf(path, 64, "/tmp/herald-test-hist-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}

/* What hist_save wrote, hist_load reads back: epoch, offsets, frames; then the file is gone. */
static void test_hist_file_round_trip(void **state)
{
    struct hist a, b;
    struct msg *m, **got;
    char path[64], id[HIST_ID_MAX], buf[64], p1[64];
    uint64_t off, last;
    size_t n;

    scratch_path(path);
    hist_init(&a, 10, 300, 1 << 20);
    off = publish(&a, "shop/u:42", &m);
    payload(m, p1, sizeof p1);
    msg_unref(m);
    assert_int_equal(hist_save(&a, path), 0);
    hist_init(&b, 10, 300, 1 << 20);
    assert_int_equal(hist_load(&b, path), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_string_equal(b.epoch, a.epoch);
    assert_int_equal(hist_since(&b, "shop/u:42", "", &got, &n, &last, id), 1);
    assert_int_equal(last, off);
    free(got);
    snprintf(buf, sizeof buf, "%s:0", a.epoch);
    assert_int_equal(hist_since(&b, "shop/u:42", buf, &got, &n, &last, id), 1);
    assert_int_equal(n, 1);
    assert_string_equal(payload(got[0], buf, sizeof buf), p1);
    msg_unref(got[0]);
    free(got);
    hist_free(&a);
    hist_free(&b);
}

/* Not JSON, another version, no file: history starts empty, and the file is removed. */
static void test_hist_file_bad_files_are_ignored_and_removed(void **state)
{
    static const char *const bad[] = {
        "not json",
        "{\"version\": 1, \"epoch\": \"0123abcd\", \"next\": 5, \"streams\": []}",
        "{\"version\": 2, \"epoch\": \"short\", \"next\": 5, \"streams\": []}",
        "{\"version\": 2, \"epoch\": \"0123abcd\", \"next\": -1, \"streams\": []}",
    };
    char path[64];
    struct hist h;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f;

        scratch_path(path);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        hist_init(&h, 10, 300, 1 << 20);
        if (hist_load(&h, path) != -1)
            fail_msg("case %zu was read", i);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(atomic_load(&h.messages), 0);
        assert_int_equal(atomic_load(&h.next_offset), 0);
        hist_free(&h);
    }
    scratch_path(path);
    hist_init(&h, 10, 300, 1 << 20);
    assert_int_equal(hist_load(&h, path), -1);
    hist_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_ids_and_epochs),
        cmocka_unit_test(test_hist_push_bounded_by_count),
        cmocka_unit_test(test_hist_push_bounded_by_age),
        cmocka_unit_test(test_hist_since_empty_is_the_position),
        cmocka_unit_test(test_hist_since_in_range_gives_exact_frames),
        cmocka_unit_test(test_hist_since_below_floor_or_other_epoch),
        cmocka_unit_test(test_hist_since_malformed_ids),
        cmocka_unit_test(test_hist_stream_made_by_since_then_published),
        cmocka_unit_test(test_hist_sweep_drops_stream_made_again_with_new_floor),
        cmocka_unit_test(test_hist_gauges),
        cmocka_unit_test(test_hist_file_round_trip),
        cmocka_unit_test(test_hist_file_bad_files_are_ignored_and_removed),
        cmocka_unit_test(test_hist_sweep_over_max_bytes_oldest_first),
        cmocka_unit_test(test_hist_threads_offsets_rise_and_since_is_exact),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

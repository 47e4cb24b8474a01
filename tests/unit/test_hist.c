/*
 * test_hist.c -- unit tests for message history (hist.c) and its file
 * (hist_file.c).
 *
 * Covers:     ids ("<8 lowercase hex>:<offset>", a fresh epoch per
 *             hist_init, offsets from one counter increasing across
 *             streams); hist_publish bounded by count and by age (the floor
 *             rises to the last dropped offset, a stream trimmed to empty is
 *             freed at once and its bucket rises to its newest offset);
 *             hist_since with "" (the position only), an id in range (the
 *             exact entries after it, oldest first, a body reference each),
 *             at the floor, at the position, below the floor, of another
 *             epoch, malformed or out of range; no stream is ever made by
 *             hist_since; the dropped floors of missing streams (a key of
 *             the same bucket is refused below the bucket, never given a
 *             false "recovered", a key of another bucket is not disturbed, a
 *             stream made again starts at its bucket); a body shared by many
 *             users' entries counted once, and the exact bytes of bodies,
 *             entries and streams; the hard bound (twice the budget: a message
 *             past it is numbered, not kept, its stream's floor raised) and
 *             the sweep (oldest first across streams, per site: one site over
 *             its budget never evicts another's); per-site counters; writer
 *             threads numbering shared streams under their stripe lock while
 *             readers call hist_since and a sweeper evicts, after which every
 *             successful hist_since returned exactly the stream's messages
 *             after its id; the history file: a round trip (epoch, counter,
 *             entries, shared bodies, dropped floors), and every kind of bad
 *             file ignored and removed with clients told recovered false: a
 *             forged or re-keyed MAC, a part for another site, an injected
 *             epoch, offsets out of order, a negative age, a key of another
 *             site, a body of another stream or not Herald's, two lines for
 *             one site, a missing site, another version; a symlink, a wrong
 *             owner, group- or world-writable modes, hard links, a FIFO, an
 *             oversize file; a directory writable by others (neither read
 *             nor written) and a symlink at the temporary name (replaced, its
 *             target untouched).
 * Invariants: hist measures ages with CLOCK_MONOTONIC_COARSE (a few ms of
 *             resolution), so the timed tests leave gaps of 100 ms or more.
 *             The tests run as root (as the suite does) to try other owners.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hist.h"
#include "proto.h"
#include "stripe.h"

#define BIG ((size_t)1 << 30) /* a budget that is never reached */

static const char *const ONE[] = {"s"};
static const char *const TWO[] = {"a", "b"};
static const struct hist_secret SECRETS[] = {{"secret-of-site-a-0123456789", 27},
                                             {"secret-of-site-b-9876543210", 27}};

/* Sleep ms milliseconds. */
static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One site "s" with this budget. */
static void init1(struct hist *h, size_t size, double ttl, size_t budget)
{
    size_t b[] = {budget};

    hist_init(h, size, ttl, 1, ONE, b);
}

/* Two sites "a" and "b". */
static void init2(struct hist *h, size_t size, double ttl, size_t ba, size_t bb)
{
    size_t b[] = {ba, bb};

    hist_init(h, size, ttl, 2, TWO, b);
}

/* The envelope the memory engine keeps for a message with data n to key (a channel's names it). */
static char *text_for(const char *key, json_int_t n)
{
    const char *c = strstr(key, "/c:");
    json_t *d = json_integer(n);
    char *t = proto_channel_text(c != NULL ? c + 3 : NULL, "e", d, NULL);

    json_decref(d);
    return t;
}

/* Publish body to key of site as the memory engine does, under the key's stripe lock; returns the
 * offset. */
static uint64_t publish_body(struct hist *h, int site, const char *key, struct hist_body *b)
{
    unsigned stripe = hist_stripe_of(key);
    char id[HIST_ID_MAX], want[HIST_ID_MAX];
    uint64_t off;

    hist_lock(h, stripe);
    off = hist_publish(h, site, key, b, hist_clock(), id);
    hist_unlock(h, stripe);
    assert_string_equal(id, hist_id(h, off, want));
    return off;
}

/* Publish a fresh message (data n) to key of site; returns its offset. */
static uint64_t publish_n(struct hist *h, int site, const char *key, json_int_t n)
{
    char *t = text_for(key, n);
    struct hist_body *b = hist_body_new(t, strlen(t));
    uint64_t off = publish_body(h, site, key, b);

    hist_body_unref(b);
    return off;
}

/* Publish a message whose data is a running count. */
static uint64_t publish(struct hist *h, int site, const char *key)
{
    static json_int_t n;

    return publish_n(h, site, key, ++n);
}

/* "<epoch>:<off>" of h. */
static const char *id_of(const struct hist *h, uint64_t off, char *buf)
{
    snprintf(buf, HIST_ID_MAX, "%s:%" PRIu64, h->epoch, off);
    return buf;
}

/* hist_since that must fail: nothing handed back; returns the position. */
static uint64_t since_fails(struct hist *h, int site, const char *key, const char *since)
{
    struct hist_item *out = (struct hist_item *)1;
    size_t n = 99;
    uint64_t last = 0;
    char id[HIST_ID_MAX], want[HIST_ID_MAX];

    if (hist_since(h, site, key, since, &out, &n, &last, id) != 0) {
        print_error("hist_since(\"%s\", \"%s\") recovered (%zu items)\n", key, since, n);
        fail();
    }
    assert_null(out);
    assert_int_equal(n, 0);
    assert_string_equal(id, id_of(h, last, want));
    return last;
}

/* hist_since that must succeed with exactly the entries of offsets want[0..nwant). */
static uint64_t since_gives(struct hist *h, int site, const char *key, const char *since,
                            const uint64_t *want, size_t nwant)
{
    struct hist_item *out;
    size_t n;
    uint64_t last;
    char id[HIST_ID_MAX], expect[HIST_ID_MAX];

    if (hist_since(h, site, key, since, &out, &n, &last, id) != 1) {
        print_error("hist_since(\"%s\", \"%s\") not recovered\n", key, since);
        fail();
    }
    assert_int_equal(n, nwant);
    assert_string_equal(id, id_of(h, last, expect));
    if (nwant == 0)
        assert_null(out);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].offset, want[i]);
        assert_non_null(out[i].body);
        hist_body_unref(out[i].body);
    }
    free(out);
    return last;
}

/* The stream of key, looked at under its lock (NULL: none); fields copied into *copy. */
static int stream_of(struct hist *h, const char *key, struct hist_stream *copy)
{
    unsigned stripe = hist_stripe_of(key);
    struct hist_stream *s;

    hist_lock(h, stripe);
    HASH_FIND_STR(h->table[stripe], key, s);
    if (s != NULL)
        memcpy(copy, s, sizeof *copy);
    hist_unlock(h, stripe);
    return s != NULL;
}

/* A site's counters. */
static struct hist_stats stats(struct hist *h, int site)
{
    struct hist_stats st;

    hist_stats(h, site, &st);
    return st;
}

/* A key of site "s" whose bucket is bucket, other than avoid: "s/<kind>:<prefix><n>". */
static void key_in_bucket(char *out, size_t size, char kind, unsigned bucket, const char *avoid)
{
    for (unsigned n = 0;; n++) {
        snprintf(out, size, "s/%c:k%u", kind, n);
        if (stripe_of(out, strlen(out), HIST_BUCKETS) == bucket &&
            (avoid == NULL || strcmp(out, avoid) != 0))
            return;
    }
}

/* -- numbering, bounds, recovery ----------------------------------------------------------- */

static void test_hist_ids_and_epochs(void **state)
{
    struct hist h, h2;
    struct hist_stream s;
    char id[HIST_ID_MAX], key[64];
    uint64_t o1, o2, o3;

    init1(&h, 10, 60, BIG);
    init1(&h2, 0, 60, BIG);
    for (int i = 0; i < 8; i++)
        assert_true((h.epoch[i] >= '0' && h.epoch[i] <= '9') ||
                    (h.epoch[i] >= 'a' && h.epoch[i] <= 'f'));
    assert_int_equal(strlen(h.epoch), 8);
    /* random per process: two in a row collide once in 2^32 */
    assert_string_not_equal(h.epoch, h2.epoch);
    assert_true(hist_on(&h));
    assert_false(hist_on(&h2));
    assert_string_equal(hist_key(key, sizeof key, "default", 'u', "42"), "default/u:42");
    assert_string_equal(hist_key(key, sizeof key, "shop", 'c', "room:1"), "shop/c:room:1");
    /* cut as snprintf cuts, at every length */
    for (size_t n = 1; n <= 15; n++) {
        char want[16];

        snprintf(want, n, "shop/c:room:1");
        assert_string_equal(hist_key(key, n, "shop", 'c', "room:1"), want);
    }

    o1 = publish(&h, 0, "s/u:42");
    assert_int_equal(o1, 1);
    assert_true(stream_of(&h, "s/u:42", &s));
    assert_int_equal(s.bucket % HIST_STRIPES, hist_stripe_of("s/u:42"));
    /* a stream made by a publish starts at its bucket's floor, nothing dropped yet */
    assert_int_equal(s.floor, 0);
    assert_int_equal(s.last, 1);
    o2 = publish(&h, 0, "s/c:room:1");
    o3 = publish(&h, 0, "s/u:42");
    /* one counter: increasing across streams, not contiguous within one */
    assert_true(o1 < o2 && o2 < o3);
    assert_int_equal(o3, 3);
    assert_true(stream_of(&h, "s/u:42", &s));
    assert_int_equal(s.last, 3);
    assert_int_equal(s.count, 2);
    assert_string_equal(hist_id(&h, 3, id), id_of(&h, 3, key));
    assert_int_equal(stats(&h, 0).streams, 2);
    assert_int_equal(stats(&h, 0).messages, 3);
    hist_free(&h);
    hist_free(&h2);
}

static void test_hist_push_bounded_by_count(void **state)
{
    struct hist h;
    struct hist_body *b[5];
    uint64_t off[5];
    struct hist_stream s;

    init1(&h, 3, 60, BIG);
    for (int i = 0; i < 5; i++) {
        char *t = text_for("s/c:a", i);

        b[i] = hist_body_new(t, strlen(t));
        off[i] = publish_body(&h, 0, "s/c:a", b[i]);
    }
    assert_true(stream_of(&h, "s/c:a", &s));
    assert_int_equal(s.count, 3);
    /* two dropped: the floor is the newest dropped offset */
    assert_int_equal(s.floor, off[1]);
    assert_int_equal(s.last, off[4]);
    assert_int_equal(stats(&h, 0).messages, 3);
    assert_int_equal(stats(&h, 0).evicted, 2);
    /* dropped bodies gave their reference back; kept ones still hold one */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&b[i]->refs), i < 2 ? 1 : 2);
        assert_int_equal(atomic_load(&b[i]->kept), i < 2 ? 0 : 1);
    }
    hist_free(&h);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&b[i]->refs), 1);
        hist_body_unref(b[i]);
    }
}

static void test_hist_push_bounded_by_age_frees_empty_streams(void **state)
{
    struct hist h;
    uint64_t o1, o2, o3, pos;
    struct hist_stream s;
    char id[HIST_ID_MAX];

    init1(&h, 100, 0.1, BIG);
    o1 = publish(&h, 0, "s/u:1");
    o2 = publish(&h, 0, "s/u:1");
    sleep_ms(250);
    o3 = publish(&h, 0, "s/u:1");
    assert_true(stream_of(&h, "s/u:1", &s));
    /* the publish itself dropped the two that passed their age */
    assert_int_equal(s.count, 1);
    assert_int_equal(s.floor, o2);
    assert_int_equal(stats(&h, 0).evicted, 2);
    since_fails(&h, 0, "s/u:1", id_of(&h, o1, id));
    /* what the client saw last was dropped, but nothing after it was: recoverable */
    since_gives(&h, 0, "s/u:1", id_of(&h, o2, id), &o3, 1);
    /* hist_since trims by age too: the stream empties and is freed at once */
    sleep_ms(250);
    since_fails(&h, 0, "s/u:1", id_of(&h, o2, id));
    assert_false(stream_of(&h, "s/u:1", &s));
    assert_int_equal(stats(&h, 0).streams, 0);
    assert_int_equal(stats(&h, 0).messages, 0);
    assert_int_equal(stats(&h, 0).bytes, 0);
    /* a client that saw everything is still recovered: the bucket holds the floor (o3) */
    pos = since_gives(&h, 0, "s/u:1", id_of(&h, o3, id), NULL, 0);
    assert_int_equal(pos, atomic_load(&h.next_offset));
    since_fails(&h, 0, "s/u:1", id_of(&h, o3 - 1, id));
    hist_free(&h);
}

static void test_hist_since_makes_no_stream(void **state)
{
    struct hist h;
    char key[64], id[HIST_ID_MAX];
    uint64_t o;

    init1(&h, 10, 60, BIG);
    o = publish(&h, 0, "s/c:x");
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "s/%c:new-%d", i % 2 ? 'c' : 'u', i);
        /* the position of a key never published to: the counter now */
        assert_int_equal(since_gives(&h, 0, key, "", NULL, 0), o);
        assert_int_equal(since_gives(&h, 0, key, id_of(&h, 0, id), NULL, 0), o);
        assert_int_equal(since_fails(&h, 0, key, id_of(&h, o + 1, id)), o);
    }
    /* a thousand subscribers cost nothing */
    assert_int_equal(stats(&h, 0).streams, 1);
    assert_int_equal(stats(&h, 0).messages, 1);
    assert_int_equal(since_gives(&h, 0, "s/c:x", "", NULL, 0), o);
    hist_free(&h);
}

static void test_hist_since_in_range_gives_exact_entries(void **state)
{
    struct hist h;
    uint64_t o[6];
    char id[HIST_ID_MAX];

    init1(&h, 10, 60, BIG);
    /* two streams interleaved: each stream's offsets have gaps */
    for (int i = 0; i < 6; i++)
        o[i] = publish(&h, 0, i % 2 ? "s/c:odd" : "s/c:even");
    since_gives(&h, 0, "s/c:even", id_of(&h, o[0], id), (uint64_t[]){o[2], o[4]}, 2);
    /* an offset between two of the stream's (another stream's): what follows it */
    since_gives(&h, 0, "s/c:even", id_of(&h, o[3], id), &o[4], 1);
    since_gives(&h, 0, "s/c:odd", id_of(&h, o[0], id), (uint64_t[]){o[1], o[3], o[5]}, 3);
    /* at the newest: nothing missed */
    since_gives(&h, 0, "s/c:odd", id_of(&h, o[5], id), NULL, 0);
    /* the floor (the bucket's, 0: nothing ever dropped) is recoverable: everything */
    since_gives(&h, 0, "s/c:even", id_of(&h, 0, id), (uint64_t[]){o[0], o[2], o[4]}, 3);
    /* past the stream's newest: a future id is refused */
    since_fails(&h, 0, "s/c:odd", id_of(&h, o[5] + 1, id));
    /* leading zeros are the same number */
    snprintf(id, sizeof id, "%s:000%" PRIu64, h.epoch, o[0]);
    since_gives(&h, 0, "s/c:even", id, (uint64_t[]){o[2], o[4]}, 2);
    hist_free(&h);
}

static void test_hist_since_below_floor_or_other_epoch(void **state)
{
    struct hist h;
    uint64_t o[5];
    char id[HIST_ID_MAX], other[9];

    init1(&h, 2, 60, BIG);
    for (int i = 0; i < 5; i++)
        o[i] = publish(&h, 0, "s/u:7");
    /* kept: o[3], o[4]; floor o[2] */
    since_gives(&h, 0, "s/u:7", id_of(&h, o[2], id), &o[3], 2);
    assert_int_equal(since_fails(&h, 0, "s/u:7", id_of(&h, o[1], id)), o[4]);
    since_fails(&h, 0, "s/u:7", id_of(&h, 0, id));
    /* another epoch (a restarted daemon), offsets in range or not */
    snprintf(other, sizeof other, "%s", h.epoch);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    snprintf(id, sizeof id, "%s:%" PRIu64, other, o[3]);
    since_fails(&h, 0, "s/u:7", id);
    snprintf(id, sizeof id, "%s:%" PRIu64, other, o[4]);
    since_fails(&h, 0, "s/u:7", id);
    hist_free(&h);
}

static void test_hist_since_malformed_ids(void **state)
{
    struct hist h;
    char id[64], up[HIST_ID_MAX], longid[4096];
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

    init1(&h, 10, 60, BIG);
    o = publish(&h, 0, "s/c:m");
    assert_int_equal(o, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(since_fails(&h, 0, "s/c:m", bad[i]), o);
        assert_int_equal(since_fails(&h, 0, "s/c:none", bad[i]), o);
    }
    for (size_t i = 0; i < sizeof bad_here / sizeof bad_here[0]; i++) {
        snprintf(id, sizeof id, bad_here[i], h.epoch);
        assert_int_equal(since_fails(&h, 0, "s/c:m", id), o);
        assert_int_equal(since_fails(&h, 0, "s/c:none", id), o);
    }
    /* the epoch in upper case is another epoch */
    snprintf(up, sizeof up, "%s:0", h.epoch);
    for (int i = 0; i < 8; i++)
        if (up[i] >= 'a' && up[i] <= 'f')
            up[i] = (char)(up[i] - 'a' + 'A');
    if (strncmp(up, h.epoch, 8) != 0)
        since_fails(&h, 0, "s/c:m", up);
    /* a long string, not NUL-padded to any size */
    memset(longid, '7', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    memcpy(longid, h.epoch, 8);
    longid[8] = ':';
    since_fails(&h, 0, "s/c:m", longid);
    /* and the stream still answers properly */
    since_gives(&h, 0, "s/c:m", id_of(&h, 0, id), &o, 1);
    hist_free(&h);
}

/*
 * The dropped floors: A's stream empties and is freed, its bucket rises to
 * A's newest offset. B, of the same bucket and never published to, is then
 * refused below it (a false negative, allowed) and recovered at or above
 * it; C, of another bucket, is not disturbed. A stream made again for A or
 * B starts at the bucket: an id from before it is refused, from at or above
 * it recovers exactly what followed.
 */
static void test_hist_bucket_floors(void **state)
{
    struct hist h;
    char a[64], b[64], c[64], id[HIST_ID_MAX];
    unsigned bucket;
    uint64_t pos_b, pos_c, a1, a2, x, b1;
    struct hist_stream s;

    init1(&h, 100, 0.1, BIG);
    key_in_bucket(a, sizeof a, 'c', 7, NULL);
    bucket = 7;
    key_in_bucket(b, sizeof b, 'u', bucket, a);
    key_in_bucket(c, sizeof c, 'c', bucket + 1, NULL);
    /* B and C subscribe while nothing has happened: their position is the counter */
    pos_b = since_gives(&h, 0, b, "", NULL, 0);
    pos_c = since_gives(&h, 0, c, "", NULL, 0);
    assert_int_equal(pos_b, 0);
    a1 = publish(&h, 0, a);
    a2 = publish(&h, 0, a);
    x = publish(&h, 0, "s/c:elsewhere");
    /* nothing of B was numbered: still recoverable, with the counter as position */
    assert_int_equal(since_gives(&h, 0, b, id_of(&h, pos_b, id), NULL, 0), x);
    sleep_ms(250);
    hist_sweep(&h);
    /* A aged out: freed, its bucket at A's newest offset */
    assert_false(stream_of(&h, a, &s));
    assert_int_equal(h.sites[0].floors[bucket], a2);
    since_fails(&h, 0, a, id_of(&h, a1, id));
    since_gives(&h, 0, a, id_of(&h, a2, id), NULL, 0);
    /* B is of the same bucket: refused below it (it cannot tell B from A), never falsely
     * recovered; at the bucket and above, recovered */
    since_fails(&h, 0, b, id_of(&h, pos_b, id));
    since_fails(&h, 0, b, id_of(&h, a2 - 1, id));
    since_gives(&h, 0, b, id_of(&h, a2, id), NULL, 0);
    since_gives(&h, 0, b, id_of(&h, x, id), NULL, 0);
    /* C's bucket is untouched */
    since_gives(&h, 0, c, id_of(&h, pos_c, id), NULL, 0);
    /* B made now: its floor is the bucket's, so what follows the bucket is recovered */
    b1 = publish(&h, 0, b);
    assert_true(stream_of(&h, b, &s));
    assert_int_equal(s.floor, a2);
    since_gives(&h, 0, b, id_of(&h, a2, id), &b1, 1);
    since_gives(&h, 0, b, id_of(&h, x, id), &b1, 1);
    since_fails(&h, 0, b, id_of(&h, a1, id));
    /* and the buckets never go down: B freed with a newer offset raises it further */
    sleep_ms(250);
    hist_sweep(&h);
    assert_int_equal(h.sites[0].floors[bucket], b1);
    since_fails(&h, 0, a, id_of(&h, a2, id));
    hist_free(&h);
}

/* One body to three users: counted once, each entry and stream on its own. */
static void test_hist_shared_body_counted_once(void **state)
{
    static const char *const keys[] = {"s/u:1", "s/u:22", "s/u:333"};
    char *t = text_for("s/u:x", 12345);
    struct hist_body *b = hist_body_new(t, strlen(t));
    size_t streams = 0, want;
    struct hist h;
    uint64_t off[3];
    char id[HIST_ID_MAX];

    init1(&h, 1, 60, BIG);
    for (int i = 0; i < 3; i++) {
        off[i] = publish_body(&h, 0, keys[i], b);
        streams += hist_stream_cost(strlen(keys[i]));
    }
    want = hist_body_cost(b->len) + 3 * hist_entry_cost() + streams;
    assert_int_equal(stats(&h, 0).bytes, want);
    assert_int_equal(stats(&h, 0).messages, 3);
    assert_int_equal(atomic_load(&b->kept), 3);
    assert_int_equal(atomic_load(&b->refs), 4);
    /* each replay hands back the same body, to be framed with that user's id */
    {
        struct hist_item *out;
        size_t n;
        uint64_t last;

        assert_int_equal(hist_since(&h, 0, keys[1], id_of(&h, 0, id), &out, &n, &last, id), 1);
        assert_int_equal(n, 1);
        assert_ptr_equal(out[0].body, b);
        assert_int_equal(out[0].offset, off[1]);
        hist_body_unref(out[0].body);
        free(out);
    }
    /* a newer message to user 1 pushes the shared one out of its stream (size 1): the body
     * is still held by the other two, so only the entry goes */
    publish_n(&h, 0, keys[0], 7);
    assert_int_equal(atomic_load(&b->kept), 2);
    assert_true(stats(&h, 0).bytes > want - hist_entry_cost());
    publish_n(&h, 0, keys[1], 7);
    publish_n(&h, 0, keys[2], 7);
    /* the last entry holding it is gone: so is its size, and every reference but ours */
    assert_int_equal(atomic_load(&b->kept), 0);
    assert_int_equal(atomic_load(&b->refs), 1);
    t = text_for("s/u:x", 7);
    assert_int_equal(stats(&h, 0).bytes,
                     3 * (hist_body_cost(strlen(t)) + hist_entry_cost()) + streams);
    free(t);
    hist_free(&h);
    hist_body_unref(b);
}

/*
 * Past twice the budget a message is numbered but not kept: the stream's
 * floor (or a missing stream's bucket) rises to it, whatever the stream held
 * goes, and the bytes never pass the bound.
 */
static void test_hist_hard_bound(void **state)
{
    struct hist h;
    char key[64], id[HIST_ID_MAX], *t;
    struct hist_stream s;
    uint64_t off = 0, kept_off, lost = 0;
    size_t budget = 4096;
    struct hist_body *b;

    init1(&h, 100, 60, budget);
    kept_off = publish(&h, 0, "s/c:kept");
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "s/u:user-%d", i);
        off = publish(&h, 0, key);
        assert_true(stats(&h, 0).bytes <= 2 * budget);
    }
    /* each user got one message: kept (a stream) or not */
    assert_true(stats(&h, 0).not_kept > 0);
    assert_int_equal(stats(&h, 0).not_kept, 200 - (stats(&h, 0).streams - 1));
    /* the last one was not kept: no stream, recovery only from its offset on */
    since_fails(&h, 0, key, id_of(&h, off - 1, id));
    since_gives(&h, 0, key, id_of(&h, off, id), NULL, 0);
    /* a stream that held messages and then loses one: all it held goes, its floor rises */
    for (int i = 0; i < 100 && lost == 0; i++) {
        uint64_t before = stats(&h, 0).not_kept;

        off = publish(&h, 0, "s/c:kept");
        if (stats(&h, 0).not_kept > before)
            lost = off;
        assert_true(stats(&h, 0).bytes <= 2 * budget);
    }
    assert_true(lost != 0);
    assert_false(stream_of(&h, "s/c:kept", &s));
    since_fails(&h, 0, "s/c:kept", id_of(&h, kept_off, id));
    since_fails(&h, 0, "s/c:kept", id_of(&h, lost - 1, id));
    since_gives(&h, 0, "s/c:kept", id_of(&h, lost, id), NULL, 0);
    /* the sweep brings it back under the budget, oldest first; then messages are kept */
    hist_sweep(&h);
    assert_true(stats(&h, 0).bytes <= budget);
    off = publish(&h, 0, "s/c:again");
    since_gives(&h, 0, "s/c:again", id_of(&h, off - 1, id), &off, 1);
    hist_free(&h);

    /* a message larger than twice the budget is never kept, even into nothing */
    init1(&h, 100, 60, budget);
    t = calloc(1, 3 * budget);
    assert_non_null(t);
    memset(t, 'x', 3 * budget - 1);
    b = hist_body_new(t, 3 * budget - 1);
    off = publish_body(&h, 0, "s/u:big", b);
    assert_int_equal(stats(&h, 0).bytes, 0);
    assert_int_equal(stats(&h, 0).not_kept, 1);
    assert_int_equal(atomic_load(&b->refs), 1);
    hist_body_unref(b);
    since_fails(&h, 0, "s/u:big", id_of(&h, 0, id));
    hist_free(&h);
}

static void test_hist_sweep_over_budget_oldest_first(void **state)
{
    struct hist h;
    struct hist_stream s;
    uint64_t a[2], b[2], c[2];
    char id[HIST_ID_MAX], *t = text_for("s/u:A", 100);
    size_t msg = hist_entry_cost() + hist_body_cost(strlen(t));
    size_t stream = hist_stream_cost(strlen("s/u:A"));

    free(t);
    init1(&h, 100, 10, BIG);
    a[0] = publish_n(&h, 0, "s/u:A", 100);
    c[0] = publish_n(&h, 0, "s/u:C", 101);
    sleep_ms(200);
    b[0] = publish_n(&h, 0, "s/u:B", 102);
    a[1] = publish_n(&h, 0, "s/u:A", 103);
    sleep_ms(200);
    c[1] = publish_n(&h, 0, "s/u:C", 104);
    b[1] = publish_n(&h, 0, "s/u:B", 105);
    assert_int_equal(stats(&h, 0).bytes, 6 * msg + 3 * stream);
    /* room for four: the two oldest (a[0], c[0], 400 ms) must go */
    h.sites[0].max_bytes = 4 * msg + 3 * stream;
    hist_sweep(&h);
    assert_int_equal(stats(&h, 0).messages, 4);
    assert_int_equal(stats(&h, 0).bytes, 4 * msg + 3 * stream);
    assert_int_equal(stats(&h, 0).evicted, 2);
    assert_int_equal(stats(&h, 0).streams, 3);
    assert_true(stream_of(&h, "s/u:A", &s));
    assert_int_equal(s.count, 1);
    assert_int_equal(s.floor, a[0]);
    since_gives(&h, 0, "s/u:A", id_of(&h, a[0], id), &a[1], 1);
    since_fails(&h, 0, "s/u:C", id_of(&h, 0, id));
    since_gives(&h, 0, "s/u:C", id_of(&h, c[0], id), &c[1], 1);
    since_gives(&h, 0, "s/u:B", id_of(&h, 0, id), b, 2);
    /* room for two and their streams: the 200 ms ones (b[0], a[1]) go, and A with them */
    h.sites[0].max_bytes = 2 * msg + 2 * stream;
    hist_sweep(&h);
    assert_int_equal(stats(&h, 0).messages, 2);
    assert_int_equal(stats(&h, 0).evicted, 4);
    assert_int_equal(stats(&h, 0).streams, 2);
    assert_int_equal(stats(&h, 0).bytes, 2 * msg + 2 * stream);
    since_fails(&h, 0, "s/u:B", id_of(&h, a[0], id));
    since_gives(&h, 0, "s/u:B", id_of(&h, b[0], id), &b[1], 1);
    since_gives(&h, 0, "s/u:C", id_of(&h, c[0], id), &c[1], 1);
    since_fails(&h, 0, "s/u:A", id_of(&h, a[0], id));
    since_gives(&h, 0, "s/u:A", id_of(&h, a[1], id), NULL, 0);
    /* under the budget the sweep drops nothing young */
    h.sites[0].max_bytes = BIG;
    hist_sweep(&h);
    assert_int_equal(stats(&h, 0).messages, 2);
    hist_free(&h);
}

/* Each site has its own counters and budget: filling one never evicts the other. */
static void test_hist_sites_are_apart(void **state)
{
    struct hist h;
    struct hist_stats sa, sb;
    char id[HIST_ID_MAX];
    uint64_t first_b;

    init2(&h, 100, 60, 4096, BIG);
    first_b = publish(&h, 1, "b/c:news");
    for (int i = 0; i < 50; i++)
        publish(&h, 1, "b/c:news");
    sb = stats(&h, 1);
    for (int i = 0; i < 300; i++) {
        char key[32];

        snprintf(key, sizeof key, "a/u:%d", i);
        publish(&h, 0, key);
    }
    hist_sweep(&h);
    sa = stats(&h, 0);
    /* a is full and over: not kept, swept; b is exactly as it was */
    assert_true(sa.not_kept > 0 && sa.evicted > 0 && sa.bytes <= 4096);
    assert_int_equal(sa.max_bytes, 4096);
    sa = stats(&h, 1);
    assert_memory_equal(&sa, &sb, sizeof sb);
    assert_int_equal(sb.streams, 1);
    assert_int_equal(sb.messages, 51);
    assert_int_equal(sb.evicted + sb.not_kept, 0);
    /* b's subscriber recovers everything */
    {
        struct hist_item *out;
        size_t n;
        uint64_t last;

        assert_int_equal(
            hist_since(&h, 1, "b/c:news", id_of(&h, first_b - 1, id), &out, &n, &last, id), 1);
        assert_int_equal(n, 51);
        for (size_t i = 0; i < n; i++)
            hist_body_unref(out[i].body);
        free(out);
    }
    hist_free(&h);
}

/* -- threads ---------------------------------------------------------------------------------- */

#define TW 4       /* writer threads */
#define TR 2       /* reader threads */
#define TSTREAMS 3 /* streams they share */
#define TITER 4000 /* appends per writer */
#define TKEEP 64   /* history_size */
#define TRECS 200000

static const char *tkeys[TSTREAMS] = {"s/c:shared-0", "s/u:shared-1", "s/c:shared-2"};

/* Every offset published to a stream, in history order (written under its stripe lock). */
static uint64_t tlog[TSTREAMS][TW * TITER];
static size_t tnlog[TSTREAMS];

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
        unsigned stripe = hist_stripe_of(tkeys[k]);
        char *text = text_for(tkeys[k], i);
        struct hist_body *b = hist_body_new(text, strlen(text));
        uint64_t off;

        hist_lock(t->h, stripe);
        off = hist_publish(t->h, 0, tkeys[k], b, hist_clock(), id);
        /* under the stripe lock: the order the stream keeps */
        if (tnlog[k] > 0 && tlog[k][tnlog[k] - 1] >= off)
            t->bad++;
        tlog[k][tnlog[k]++] = off;
        hist_unlock(t->h, stripe);
        hist_body_unref(b);
    }
    atomic_fetch_sub(&twriters_left, 1);
    return NULL;
}

/* Check one hist_since answer: offsets strictly increasing, after since, ending at last. */
static void tcheck(struct tctx *t, int k, uint64_t since, struct hist_item *out, size_t n,
                   uint64_t last)
{
    uint64_t prev = since, sum = 0;

    for (size_t i = 0; i < n; i++) {
        if (out[i].offset <= prev || out[i].body == NULL)
            t->bad++;
        prev = out[i].offset;
        sum += out[i].offset;
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
            struct hist_item *out;
            size_t n;
            uint64_t last, from = (round + t->id) % 3 == 0 ? 0 : pos[k];

            snprintf(since, sizeof since, "%s:%" PRIu64, t->h->epoch, from);
            if (hist_since(t->h, 0, tkeys[k], since, &out, &n, &last, id) == 1)
                tcheck(t, k, from, out, n, last);
            else
                t->failed++;
            for (size_t i = 0; i < n; i++)
                hist_body_unref(out[i].body);
            free(out);
            pos[k] = last;
        }
    }
    return NULL;
}

/* The sweeper: the budget is small, so it evicts (and publishes past the bound) all along. */
static void *tsweep(void *arg)
{
    struct hist *h = arg;

    while (atomic_load(&twriters_left) > 0) {
        hist_sweep(h);
        sleep_ms(2);
    }
    return NULL;
}

/* Does rec match the log: exactly the offsets in (since, last]? */
static int trec_matches(const struct trec *r)
{
    const uint64_t *log = tlog[r->stream];
    size_t lo = 0, hi = tnlog[r->stream], n = 0;
    uint64_t sum = 0;

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

/* Every reader's successful answers against the log; returns how many were checked. */
static size_t tcheck_readers(struct tctx *rc, long *failed)
{
    size_t checked = 0;

    for (int i = 0; i < TR; i++) {
        assert_int_equal(rc[i].bad, 0);
        *failed += rc[i].failed;
        for (size_t j = 0; j < rc[i].nrecs; j++, checked++) {
            const struct trec *x = &rc[i].recs[j];

            if (!trec_matches(x)) {
                print_error("reader %d: %s since %" PRIu64 " last %" PRIu64 " gave %zu\n", i,
                            tkeys[x->stream], x->since, x->last, x->n);
                fail();
            }
        }
        free(rc[i].recs);
    }
    return checked;
}

static void test_hist_threads_offsets_rise_and_since_is_exact(void **state)
{
    static struct hist h;
    pthread_t w[TW], r[TR], sw;
    struct tctx wc[TW], rc[TR];
    size_t kept = 0, total = 0, checked;
    long failed = 0;
    struct hist_stream s;

    init1(&h, TKEEP, 60, 4096);
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
    for (int i = 0; i < TR; i++)
        assert_int_equal(pthread_join(r[i], NULL), 0);
    checked = tcheck_readers(rc, &failed);
    print_message("%zu hist_since answers checked, %ld not recoverable, %" PRIu64 " not kept\n",
                  checked, failed, stats(&h, 0).not_kept);
    assert_true(checked > 0);
    for (int k = 0; k < TSTREAMS; k++) {
        total += tnlog[k];
        if (!stream_of(&h, tkeys[k], &s))
            continue;
        /* what a stream keeps is its newest, its floor the newest before them */
        assert_true(s.count <= TKEEP);
        assert_int_equal(s.last, tlog[k][tnlog[k] - 1]);
        assert_int_equal(s.floor, tlog[k][tnlog[k] - s.count - 1]);
        kept += s.count;
    }
    assert_int_equal(total, (size_t)TW * TITER);
    assert_int_equal(atomic_load(&h.next_offset), total);
    assert_int_equal(stats(&h, 0).messages, kept);
    assert_int_equal(stats(&h, 0).messages + stats(&h, 0).evicted + stats(&h, 0).not_kept, total);
    assert_true(stats(&h, 0).bytes <= 2 * 4096);
    hist_free(&h);
}

/* -- the history file ------------------------------------------------------------------------ */

/* A fresh private directory (0700) in dir, and the history file's path in it. */
static void scratch(char dir[64], char path[96])
{
    snprintf(dir, 64, "/tmp/herald-test-hist-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, 96, "%s/history", dir);
}

/* Remove dir and what is in it. */
static void scratch_done(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        assert_int_equal(unlink(p), 0);
    }
    closedir(d);
    chmod(dir, 0700);
    assert_int_equal(rmdir(dir), 0);
}

/* The file's bytes (malloc'd, NUL-terminated), and their count in *len. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Write text as the file at path, with mode. */
static void spew(const char *path, const char *text, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The MAC of a site's part, as hist_file.c makes it (written independently here). */
static void sign(const struct hist_secret *sec, const char *site, const char *json, char hex[65])
{
    unsigned char key[32], mac[32];
    unsigned int kl = 0, ml = 0;
    size_t n = strlen("herald-history 3\n") + strlen(site) + 1 + strlen(json);
    char *in = malloc(n + 1);

    assert_non_null(in);
    snprintf(in, n + 1, "herald-history 3\n%s\t%s", site, json);
    assert_non_null(HMAC(EVP_sha256(), sec->key, (int)sec->len,
                         (const unsigned char *)"herald history file v3", 22, key, &kl));
    assert_non_null(HMAC(EVP_sha256(), key, (int)kl, (const unsigned char *)in, n, mac, &ml));
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    free(in);
}

typedef void (*mutate_fn)(json_t *doc);

/*
 * Rewrite site's line of the file at path: its JSON through fn (NULL: as it
 * is), signed with sec, or with the line's old MAC when sec is NULL.
 */
static void rewrite(const char *path, const char *site, mutate_fn fn, const struct hist_secret *sec)
{
    size_t len, plen = strlen(site), olen = 0;
    char *text = slurp(path, &len), *out = NULL, *line, *save = NULL;
    FILE *o = open_memstream(&out, &olen);

    assert_non_null(o);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t'), *mac = strrchr(line, '\t'), hex[65], *json;
        json_t *doc;

        if (tab == NULL || (size_t)(tab - line) != plen || strncmp(line, site, plen) != 0) {
            fprintf(o, "%s\n", line);
            continue;
        }
        *mac = '\0';
        doc = json_loads(tab + 1, 0, NULL);
        assert_non_null(doc);
        if (fn != NULL)
            fn(doc);
        json = json_dumps(doc, JSON_COMPACT);
        if (sec != NULL)
            sign(sec, site, json, hex);
        else
            snprintf(hex, sizeof hex, "%s", mac + 1);
        fprintf(o, "%s\t%s\t%s\n", site, json, hex);
        free(json);
        json_decref(doc);
    }
    fclose(o);
    spew(path, out, olen, 0600);
    free(text);
    free(out);
}

/* What make_file published, to check against after loading. */
struct made {
    char epoch[9];
    uint64_t next, users[3], chan[2], b_chan[2];
    size_t bytes[2];
};

/*
 * Save a history of two sites to path: in a, one message to users 1, 2 and 3
 * (one body) and two in channel x, a dropped floor in bucket 123; in b, two
 * in channel news.
 */
static void make_file(const char *path, struct made *m)
{
    struct hist h;
    char *t = text_for("a/u:x", 42);
    struct hist_body *b = hist_body_new(t, strlen(t));
    char key[16];

    init2(&h, 100, 300, 1 << 20, 1 << 20);
    for (int i = 0; i < 3; i++)
        m->users[i] = publish_body(
            &h, 0, hist_key(key, sizeof key, "a", 'u', (char[]){(char)('1' + i), '\0'}), b);
    hist_body_unref(b);
    m->chan[0] = publish(&h, 0, "a/c:x");
    m->b_chan[0] = publish(&h, 1, "b/c:news");
    m->chan[1] = publish(&h, 0, "a/c:x");
    m->b_chan[1] = publish(&h, 1, "b/c:news");
    h.sites[0].floors[123] = 2;
    memcpy(m->epoch, h.epoch, sizeof m->epoch);
    m->next = atomic_load(&h.next_offset);
    m->bytes[0] = stats(&h, 0).bytes;
    m->bytes[1] = stats(&h, 1).bytes;
    assert_int_equal(hist_save(&h, path, SECRETS), 0);
    hist_free(&h);
}

/* Site i was read back whole. */
static void site_kept(struct hist *h, int i, const struct made *m)
{
    char id[HIST_ID_MAX];

    assert_string_equal(h->epoch, m->epoch);
    assert_int_equal(atomic_load(&h->next_offset), m->next);
    assert_int_equal(stats(h, i).bytes, m->bytes[i]);
    if (i == 0) {
        since_gives(h, 0, "a/u:2", id_of(h, 0, id), &m->users[1], 1);
        since_gives(h, 0, "a/c:x", id_of(h, 0, id), m->chan, 2);
        assert_int_equal(h->sites[0].floors[123], 2);
    } else {
        since_gives(h, 1, "b/c:news", id_of(h, 0, id), m->b_chan, 2);
    }
}

/* Site i was refused while the epoch was kept: empty, nothing below the counter recoverable. */
static void site_refused(struct hist *h, int i, const struct made *m)
{
    const char *key = i == 0 ? "a/c:x" : "b/c:news";
    char id[HIST_ID_MAX];

    assert_string_equal(h->epoch, m->epoch);
    assert_int_equal(stats(h, i).streams, 0);
    assert_int_equal(stats(h, i).bytes, 0);
    since_fails(h, i, key, id_of(h, 0, id));
    since_fails(h, i, key, id_of(h, m->next - 1, id));
    /* a client that saw the very last id has missed nothing: still true */
    since_gives(h, i, key, id_of(h, m->next, id), NULL, 0);
    for (int b = 0; b < HIST_BUCKETS; b++)
        assert_int_equal(h->sites[i].floors[b], m->next);
}

/* Load path into a fresh two-site history; the file is gone afterwards. */
static int load(struct hist *h, const char *path, const struct hist_secret *sec)
{
    int r;

    init2(h, 100, 300, 1 << 20, 1 << 20);
    r = hist_load(h, path, sec, geteuid());
    assert_int_equal(access(path, F_OK), -1);
    return r;
}

/* What hist_save wrote, hist_load reads back: epoch, offsets, bodies shared, floors. */
static void test_hist_file_round_trip(void **state)
{
    char dir[64], path[96], id[HIST_ID_MAX];
    struct made m;
    struct hist h;
    struct hist_item *out[3];
    size_t n, len;
    uint64_t last;
    struct stat st;
    char *text;

    scratch(dir, path);
    make_file(path, &m);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    text = slurp(path, &len);
    assert_true(strncmp(text, "herald-history 3\na\t{", 20) == 0);
    /* the shared body is written once */
    assert_non_null(strstr(text, "\"data\\\":42"));
    assert_null(strstr(strstr(text, "\"data\\\":42") + 1, "\"data\\\":42"));
    free(text);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_kept(&h, 0, &m);
    site_kept(&h, 1, &m);
    /* one body for the three users again */
    for (int i = 0; i < 3; i++) {
        char key[8] = {'a', '/', 'u', ':', (char)('1' + i), '\0'};

        assert_int_equal(hist_since(&h, 0, key, id_of(&h, 0, id), &out[i], &n, &last, id), 1);
        assert_int_equal(n, 1);
    }
    assert_ptr_equal(out[0][0].body, out[1][0].body);
    assert_ptr_equal(out[0][0].body, out[2][0].body);
    assert_int_equal(atomic_load(&out[0][0].body->kept), 3);
    assert_string_equal(out[0][0].body->text, "{\"event\":\"e\",\"data\":42}");
    for (int i = 0; i < 3; i++) {
        hist_body_unref(out[i][0].body);
        free(out[i]);
    }
    /* no file: nothing read, a new epoch */
    hist_free(&h);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_string_not_equal(h.epoch, m.epoch);
    hist_free(&h);
    scratch_done(dir);
}

/* The stream "a/c:x" of a part, and its entries. */
static json_t *chan_x(json_t *doc, json_t **entries)
{
    size_t i;
    json_t *st;

    json_array_foreach (json_object_get(doc, "streams"), i, st) {
        if (strcmp(json_string_value(json_array_get(st, 0)), "a/c:x") == 0) {
            *entries = json_array_get(st, 3);
            return st;
        }
    }
    fail_msg("no a/c:x in the file");
    return NULL;
}

static void m_epoch_injected(json_t *doc)
{
    json_object_set_new(doc, "epoch", json_string("a\",\"x\":1"));
}

static void m_epoch_upper(json_t *doc)
{
    char e[9];

    snprintf(e, sizeof e, "%s", json_string_value(json_object_get(doc, "epoch")));
    for (int i = 0; i < 8; i++)
        e[i] = e[i] >= 'a' ? (char)(e[i] - 'a' + 'A') : 'A';
    json_object_set_new(doc, "epoch", json_string(e));
}

static void m_epoch_other(json_t *doc)
{
    json_object_set_new(doc, "epoch", json_string("0badbeef"));
}

static void m_next_negative(json_t *doc)
{
    json_object_set_new(doc, "next", json_integer(-1));
}

static void m_out_of_order(json_t *doc)
{
    json_t *e, *st = chan_x(doc, &e);
    json_t *a = json_array_get(json_array_get(e, 0), 0),
           *b = json_array_get(json_array_get(e, 1), 0);
    json_int_t x = json_integer_value(a);

    (void)st;
    json_integer_set(a, json_integer_value(b));
    json_integer_set(b, x);
}

static void m_offset_repeated(json_t *doc)
{
    json_t *e;

    chan_x(doc, &e);
    json_integer_set(json_array_get(json_array_get(e, 0), 0),
                     json_integer_value(json_array_get(json_array_get(e, 1), 0)));
}

static void m_negative_age(json_t *doc)
{
    json_t *e;

    chan_x(doc, &e);
    json_array_set_new(json_array_get(e, 0), 1, json_real(-5));
}

static void m_age_younger_first(json_t *doc)
{
    json_t *e;

    chan_x(doc, &e);
    json_array_set_new(json_array_get(e, 1), 1, json_real(1000));
}

static void m_key_of_other_site(json_t *doc)
{
    json_t *e;

    json_array_set_new(chan_x(doc, &e), 0, json_string("b/c:x"));
}

static void m_body_of_other_stream(json_t *doc)
{
    json_t *e;

    json_array_set_new(chan_x(doc, &e), 0, json_string("a/c:y"));
}

static void m_user_key_bad(json_t *doc)
{
    json_t *e;

    json_array_set_new(chan_x(doc, &e), 0, json_string("a/u:"));
}

static void m_body_not_herald(json_t *doc)
{
    json_array_set_new(json_object_get(doc, "bodies"), 0,
                       json_string("{\"event\":\"e\",\"data\":42,\"x\":2}"));
}

static void m_user_body_from(json_t *doc)
{
    json_array_set_new(json_object_get(doc, "bodies"), 0,
                       json_string("{\"event\":\"e\",\"data\":42,\"from\":\"x\"}"));
}

static void m_body_not_json(json_t *doc)
{
    json_array_set_new(json_object_get(doc, "bodies"), 0, json_string("{\"event\":\"e\",\"dat"));
}

static void m_body_unused(json_t *doc)
{
    json_array_append_new(json_object_get(doc, "bodies"),
                          json_string("{\"event\":\"e\",\"data\":1}"));
}

static void m_body_index_out(json_t *doc)
{
    json_t *e;

    chan_x(doc, &e);
    json_array_set_new(json_array_get(e, 0), 2, json_integer(99));
}

static void m_floor_past_next(json_t *doc)
{
    json_object_set_new(
        doc, "floors",
        json_pack("[[i, I]]", 0, json_integer_value(json_object_get(doc, "next")) + 1));
}

static void m_last_past_next(json_t *doc)
{
    json_t *e, *st = chan_x(doc, &e);
    json_int_t next = json_integer_value(json_object_get(doc, "next"));

    json_array_set_new(st, 2, json_integer(next + 1));
    json_array_set_new(json_array_get(e, 1), 0, json_integer(next + 1));
}

static void m_floor_above_entry(json_t *doc)
{
    json_t *e, *st = chan_x(doc, &e);

    json_array_set_new(st, 1,
                       json_integer(json_integer_value(json_array_get(json_array_get(e, 0), 0))));
}

static void m_stream_twice(json_t *doc)
{
    json_t *e, *st = chan_x(doc, &e);

    json_array_append_new(json_object_get(doc, "streams"), json_deep_copy(st));
}

static void m_no_entries(json_t *doc)
{
    json_t *e;

    json_array_set_new(chan_x(doc, &e), 3, json_array());
}

static void m_other_site_name(json_t *doc)
{
    json_object_set_new(doc, "site", json_string("b"));
}

static void m_extra_field(json_t *doc)
{
    json_object_set_new(doc, "extra", json_integer(1));
}

static void m_huge_count(json_t *doc)
{
    json_t *bodies = json_object_get(doc, "bodies");
    char *big = malloc(3 << 20);

    /* a body larger than twice the 1M budget: never one Herald kept */
    assert_non_null(big);
    memset(big, ' ', 3 << 20);
    memcpy(big, "{\"event\":\"e\",\"data\":1}", 22);
    json_array_set_new(bodies, 0, json_stringn(big, 3 << 20));
    free(big);
}

/* Every bad part, signed with the right key: refused, the other site kept, no crash. */
static void test_hist_file_bad_parts_are_refused(void **state)
{
    static const struct {
        const char *name;
        mutate_fn fn;
    } cases[] = {
        {"epoch injected", m_epoch_injected},
        {"epoch upper case", m_epoch_upper},
        {"next negative", m_next_negative},
        {"offsets out of order", m_out_of_order},
        {"offset repeated", m_offset_repeated},
        {"negative age", m_negative_age},
        {"younger first", m_age_younger_first},
        {"key of another site", m_key_of_other_site},
        {"body of another stream", m_body_of_other_stream},
        {"bad user key", m_user_key_bad},
        {"body not Herald's", m_body_not_herald},
        {"body not JSON", m_body_not_json},
        {"body unused", m_body_unused},
        {"user body with from", m_user_body_from},
        {"body index out", m_body_index_out},
        {"floor past next", m_floor_past_next},
        {"last past next", m_last_past_next},
        {"floor above an entry", m_floor_above_entry},
        {"stream twice", m_stream_twice},
        {"no entries", m_no_entries},
        {"another site's name", m_other_site_name},
        {"extra field", m_extra_field},
        {"over the budget", m_huge_count},
    };
    char dir[64], path[96];
    struct made m;
    struct hist h;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case: %s\n", cases[i].name);
        scratch(dir, path);
        make_file(path, &m);
        rewrite(path, "a", cases[i].fn, &SECRETS[0]);
        assert_int_equal(load(&h, path, SECRETS), 0);
        site_refused(&h, 0, &m);
        site_kept(&h, 1, &m);
        hist_free(&h);
        scratch_done(dir);
    }
    /* parts that disagree on the epoch: nothing can be trusted, a new epoch */
    scratch(dir, path);
    make_file(path, &m);
    rewrite(path, "a", m_epoch_other, &SECRETS[0]);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_string_not_equal(h.epoch, m.epoch);
    assert_int_equal(stats(&h, 0).streams + stats(&h, 1).streams, 0);
    hist_free(&h);
    scratch_done(dir);
}

/* Drop a's line (or b's, when which is 1) from the file. */
static void drop_line(const char *path, int which)
{
    size_t len;
    char *text = slurp(path, &len), *a = strstr(text, "\na\t") + 1, *b = strstr(text, "\nb\t") + 1;

    if (which == 0)
        memmove(a, b, strlen(b) + 1);
    else
        *b = '\0';
    spew(path, text, strlen(text), 0600);
    free(text);
}

/* Forged, re-keyed, doubled, missing, stray and cut lines; other versions. */
static void test_hist_file_bad_lines_are_refused(void **state)
{
    static const struct hist_secret rekeyed[] = {{"another-secret-of-a-00000000", 28},
                                                 {"secret-of-site-b-9876543210", 27}};
    char dir[64], path[96], *text;
    struct made m;
    struct hist h;
    size_t len;

    /* a forged entry (the data changed, the old MAC kept) */
    scratch(dir, path);
    make_file(path, &m);
    rewrite(path, "a", m_body_not_herald, NULL);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_refused(&h, 0, &m);
    site_kept(&h, 1, &m);
    hist_free(&h);
    /* a's secret changed since the file was written */
    make_file(path, &m);
    assert_int_equal(load(&h, path, rekeyed), 0);
    site_refused(&h, 0, &m);
    site_kept(&h, 1, &m);
    hist_free(&h);
    /* both forged: nothing verifies, a new epoch: every id of the old one is refused */
    make_file(path, &m);
    rewrite(path, "a", m_epoch_other, NULL);
    rewrite(path, "b", NULL, &SECRETS[0]);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_string_not_equal(h.epoch, m.epoch);
    assert_int_equal(atomic_load(&h.next_offset), 0);
    hist_free(&h);
    /* a's line twice */
    make_file(path, &m);
    text = slurp(path, &len);
    text = realloc(text, 2 * len + 1);
    memcpy(text + len, strstr(text, "\na\t") + 1,
           (size_t)(strstr(text, "\nb\t") - strstr(text, "\na\t")));
    text[len + (size_t)(strstr(text, "\nb\t") - strstr(text, "\na\t"))] = '\0';
    spew(path, text, strlen(text), 0600);
    free(text);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_refused(&h, 0, &m);
    site_kept(&h, 1, &m);
    hist_free(&h);
    /* a's line missing: a starts empty, b is read */
    make_file(path, &m);
    drop_line(path, 0);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_refused(&h, 0, &m);
    site_kept(&h, 1, &m);
    hist_free(&h);
    /* b's line cut short */
    make_file(path, &m);
    text = slurp(path, &len);
    spew(path, text, len - 10, 0600);
    free(text);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_kept(&h, 0, &m);
    site_refused(&h, 1, &m);
    hist_free(&h);
    /* a line for a site the config no longer has, and junk: ignored */
    make_file(path, &m);
    text = slurp(path, &len);
    text = realloc(text, len + 200);
    strcat(text, "gone\t{}\t0000\nno tab at all\n\n");
    spew(path, text, strlen(text), 0600);
    free(text);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_kept(&h, 0, &m);
    site_kept(&h, 1, &m);
    hist_free(&h);
    /* another version (the version 2 JSON), an empty file */
    spew(path, "{\"version\": 2, \"epoch\": \"0123abcd\", \"next\": 5, \"streams\": []}", 62, 0600);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_string_not_equal(h.epoch, "0123abcd");
    hist_free(&h);
    spew(path, "", 0, 0600);
    assert_int_equal(load(&h, path, SECRETS), -1);
    hist_free(&h);
    scratch_done(dir);
}

/* A file that is not a plain file of ours, or too large: never read, removed. */
static void test_hist_file_unfit_files_are_removed_unread(void **state)
{
    char dir[64], path[96], other[128], link2[128];
    struct made m;
    struct hist h;
    struct stat st;
    size_t max;
    int fd;

    scratch(dir, path);
    /* a symlink to a good file: not followed, the link removed, its target untouched */
    snprintf(other, sizeof other, "%s/elsewhere", dir);
    make_file(other, &m);
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(symlink(other, path), 0);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_string_not_equal(h.epoch, m.epoch);
    assert_int_equal(access(other, F_OK), 0);
    hist_free(&h);
    /* another owner (the suite runs as root), group or world writable */
    make_file(path, &m);
    assert_int_equal(chown(path, 12345, 12345), 0);
    assert_int_equal(load(&h, path, SECRETS), -1);
    hist_free(&h);
    for (int i = 0; i < 2; i++) {
        make_file(path, &m);
        assert_int_equal(chmod(path, i == 0 ? 0620 : 0602), 0);
        assert_int_equal(load(&h, path, SECRETS), -1);
        assert_string_not_equal(h.epoch, m.epoch);
        hist_free(&h);
    }
    /* readable by others is no threat to its integrity: read */
    make_file(path, &m);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_kept(&h, 0, &m);
    hist_free(&h);
    /* a second name for it (a hard link planted by someone who could not write it) */
    make_file(path, &m);
    snprintf(link2, sizeof link2, "%s/second-name", dir);
    assert_int_equal(link(path, link2), 0);
    assert_int_equal(load(&h, path, SECRETS), -1);
    assert_int_equal(access(link2, F_OK), 0);
    hist_free(&h);
    assert_int_equal(unlink(link2), 0);
    /* a FIFO: refused at once, not waited on */
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(load(&h, path, SECRETS), -1);
    hist_free(&h);
    /* larger than the sites' budgets allow: refused unread (a sparse file) */
    init2(&h, 100, 300, 1 << 20, 1 << 20);
    max = hist_file_max(&h);
    hist_free(&h);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)max + 1), 0);
    close(fd);
    assert_int_equal(load(&h, path, SECRETS), -1);
    hist_free(&h);
    scratch_done(dir);
}

/* A directory others may write to, or not ours, or a symlink: history neither read nor saved. */
static void test_hist_file_bad_directory(void **state)
{
    char dir[64], path[96], *cause = NULL, real[96], linked[96];
    struct made m;
    struct hist h;

    scratch(dir, path);
    make_file(path, &m);
    assert_int_equal(hist_check_dir(path, geteuid(), &cause), 0);
    assert_null(cause);
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(hist_check_dir(path, geteuid(), &cause), -1);
    assert_non_null(strstr(cause, "writable by group or others"));
    free(cause);
    init2(&h, 100, 300, 1 << 20, 1 << 20);
    assert_int_equal(hist_load(&h, path, SECRETS, geteuid()), -1);
    /* left alone: whose it is cannot be told */
    assert_int_equal(access(path, F_OK), 0);
    assert_string_not_equal(h.epoch, m.epoch);
    assert_int_equal(unlink(path), 0);
    publish(&h, 0, "a/u:1");
    assert_int_equal(hist_save(&h, path, SECRETS), -1);
    assert_int_equal(access(path, F_OK), -1);
    hist_free(&h);
    /* 01777, as /tmp: refused as well */
    assert_int_equal(chmod(dir, 01777), 0);
    assert_int_equal(hist_check_dir(path, geteuid(), &cause), -1);
    free(cause);
    /* owned by someone else, 0700 */
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(chown(dir, 12345, 12345), 0);
    assert_int_equal(hist_check_dir(path, geteuid(), &cause), -1);
    assert_non_null(strstr(cause, "belongs to uid 12345"));
    free(cause);
    /* ...unless that is the user Herald will run as (it starts as root, then switches) */
    assert_int_equal(hist_check_dir(path, 12345, &cause), 0);
    assert_int_equal(chown(dir, 0, 0), 0);
    /* a symlink to a good directory */
    snprintf(real, sizeof real, "%s/real", dir);
    snprintf(linked, sizeof linked, "%s/link", dir);
    assert_int_equal(mkdir(real, 0700), 0);
    assert_int_equal(symlink(real, linked), 0);
    snprintf(real, sizeof real, "%s/link/history", dir);
    assert_int_equal(hist_check_dir(real, geteuid(), &cause), -1);
    assert_non_null(strstr(cause, "symbolic link"));
    free(cause);
    /* a directory that does not exist */
    snprintf(real, sizeof real, "%s/none/history", dir);
    assert_int_equal(hist_check_dir(real, geteuid(), &cause), -1);
    free(cause);
    snprintf(real, sizeof real, "%s/real", dir);
    assert_int_equal(rmdir(real), 0);
    scratch_done(dir);
}

/* A symlink at the temporary name is replaced, never written through. */
static void test_hist_file_tmp_symlink_is_not_followed(void **state)
{
    char dir[64], path[96], tmp[128], victim[128], *text;
    struct made m;
    struct hist h;
    size_t len;

    scratch(dir, path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    spew(victim, "precious\n", 9, 0644);
    assert_int_equal(symlink(victim, tmp), 0);
    make_file(path, &m);
    text = slurp(victim, &len);
    assert_string_equal(text, "precious\n");
    free(text);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(load(&h, path, SECRETS), 0);
    site_kept(&h, 0, &m);
    hist_free(&h);
    /* a leftover temporary file of a save that died: replaced too */
    spew(tmp, "junk", 4, 0600);
    make_file(path, &m);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(load(&h, path, SECRETS), 0);
    hist_free(&h);
    scratch_done(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_ids_and_epochs),
        cmocka_unit_test(test_hist_push_bounded_by_count),
        cmocka_unit_test(test_hist_push_bounded_by_age_frees_empty_streams),
        cmocka_unit_test(test_hist_since_makes_no_stream),
        cmocka_unit_test(test_hist_since_in_range_gives_exact_entries),
        cmocka_unit_test(test_hist_since_below_floor_or_other_epoch),
        cmocka_unit_test(test_hist_since_malformed_ids),
        cmocka_unit_test(test_hist_bucket_floors),
        cmocka_unit_test(test_hist_shared_body_counted_once),
        cmocka_unit_test(test_hist_hard_bound),
        cmocka_unit_test(test_hist_sweep_over_budget_oldest_first),
        cmocka_unit_test(test_hist_sites_are_apart),
        cmocka_unit_test(test_hist_threads_offsets_rise_and_since_is_exact),
        cmocka_unit_test(test_hist_file_round_trip),
        cmocka_unit_test(test_hist_file_bad_parts_are_refused),
        cmocka_unit_test(test_hist_file_bad_lines_are_refused),
        cmocka_unit_test(test_hist_file_unfit_files_are_removed_unread),
        cmocka_unit_test(test_hist_file_bad_directory),
        cmocka_unit_test(test_hist_file_tmp_symlink_is_not_followed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

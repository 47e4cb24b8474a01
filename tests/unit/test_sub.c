/*
 * test_sub.c -- unit tests for one worker's subscription table (sub.c).
 *
 * Covers:     sub_add / sub_find / sub_of_conn / sub_remove; the "appeared"
 *             and "vanished" results that keep the shared directory in
 *             step; a connection's own list across several channels;
 *             removal from the head, middle and tail of a channel's list
 *             and of a connection's list; many connections and channels;
 *             sub_free with subscriptions left (ASan's leak check proves
 *             it frees everything).
 * Invariants: struct conn is opaque to sub.c and never dereferenced, so
 *             the connections here are 1-byte dummies. After every step,
 *             check_table walks the whole table: each channel's list is
 *             doubly linked right, counts agree, and each sub points back
 *             at its channel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sub.h"
#include "chan.h"

/* A distinct pointer sub.c can store but never follows. */
static struct conn *dummy_conn(void)
{
    struct conn *c = malloc(1);

    assert_non_null(c);
    return c;
}

/* Walk every channel: links, back pointers and counts agree with the totals. */
static void check_table(const struct sub_table *t)
{
    const struct sub_chan *ch;
    size_t nchans = 0, nsubs = 0;

    for (ch = t->chans; ch != NULL; ch = ch->hh.next) {
        const struct sub *prev = NULL;
        size_t n = 0;

        assert_non_null(ch->subs);
        for (const struct sub *s = ch->subs; s != NULL; s = s->next) {
            assert_ptr_equal(s->prev, prev);
            assert_ptr_equal(s->chan, ch);
            prev = s;
            n++;
        }
        assert_int_equal(n, ch->nsubs);
        assert_ptr_equal(sub_find(t, ch->name, strlen(ch->name)), ch);
        nchans++;
        nsubs += n;
    }
    assert_int_equal(nchans, t->nchans);
    assert_int_equal(HASH_COUNT(t->chans), t->nchans);
    assert_int_equal(nsubs, t->nsubs);
}

/* Subscriptions on a connection's list. */
static size_t list_len(const struct sub *list)
{
    size_t n = 0;

    for (; list != NULL; list = list->conn_next)
        n++;
    return n;
}

/* Is s on channel ch's list? */
static int on_chan(const struct sub_chan *ch, const struct sub *s)
{
    for (const struct sub *x = ch->subs; x != NULL; x = x->next)
        if (x == s)
            return 1;
    return 0;
}

/* Subscribe c to the NUL-terminated name; returns the sub, *appeared set. */
static struct sub *add(struct sub_table *t, struct sub **list, struct conn *c, const char *name,
                       int *appeared)
{
    struct sub *s = sub_add(t, list, c, name, strlen(name), appeared);

    assert_non_null(s);
    assert_ptr_equal(s->conn, c);
    assert_string_equal(s->chan->name, name);
    check_table(t);
    return s;
}

static void test_sub_add_find_remove(void **state)
{
    struct sub_table t;
    struct sub *list = NULL;
    struct conn *c = dummy_conn();
    struct sub *s;
    int appeared = -1;

    sub_init(&t);
    check_table(&t);
    assert_null(sub_find(&t, "team:12", 7));
    s = add(&t, &list, c, "team:12", &appeared);
    /* the first subscriber here: the caller adds this worker to the directory */
    assert_int_equal(appeared, 1);
    assert_int_equal(t.nchans, 1);
    assert_int_equal(t.nsubs, 1);
    assert_ptr_equal(list, s);
    assert_ptr_equal(sub_find(&t, "team:12", 7), s->chan);
    assert_int_equal(s->chan->nsubs, 1);
    assert_int_equal(s->presence, 0);
    /* names are compared whole, by length */
    assert_null(sub_find(&t, "team:1", 6));
    assert_null(sub_find(&t, "team:123", 8));
    assert_ptr_equal(sub_find(&t, "team:123", 7), s->chan);
    assert_ptr_equal(sub_of_conn(list, "team:12", 7), s);
    assert_null(sub_of_conn(list, "team:1", 6));
    assert_null(sub_of_conn(list, "team:123", 8));
    assert_null(sub_of_conn(NULL, "team:12", 7));
    /* the last subscriber gone: the channel vanishes from this worker */
    assert_int_equal(sub_remove(&t, &list, s), 1);
    check_table(&t);
    assert_null(list);
    assert_null(sub_find(&t, "team:12", 7));
    assert_int_equal(t.nchans, 0);
    assert_int_equal(t.nsubs, 0);
    sub_free(&t);
    free(c);
}

static void test_sub_appeared_and_vanished(void **state)
{
    struct sub_table t;
    struct conn *a = dummy_conn(), *b = dummy_conn();
    struct sub *la = NULL, *lb = NULL;
    struct sub *sa, *sb, *sa2;
    int appeared = -1;

    sub_init(&t);
    sa = add(&t, &la, a, "room:1", &appeared);
    assert_int_equal(appeared, 1);
    /* a second connection in the same channel: nothing for the directory */
    sb = add(&t, &lb, b, "room:1", &appeared);
    assert_int_equal(appeared, 0);
    assert_ptr_equal(sa->chan, sb->chan);
    assert_int_equal(sa->chan->nsubs, 2);
    assert_int_equal(t.nchans, 1);
    assert_int_equal(t.nsubs, 2);
    /* one of two leaves: the channel stays */
    assert_int_equal(sub_remove(&t, &la, sa), 0);
    check_table(&t);
    assert_null(la);
    assert_int_equal(sb->chan->nsubs, 1);
    /* it comes back: still not new */
    sa2 = add(&t, &la, a, "room:1", &appeared);
    assert_int_equal(appeared, 0);
    assert_int_equal(sub_remove(&t, &lb, sb), 0);
    check_table(&t);
    assert_int_equal(sub_remove(&t, &la, sa2), 1);
    check_table(&t);
    /* after vanishing, the next subscriber makes it appear again */
    sa = add(&t, &la, a, "room:1", &appeared);
    assert_int_equal(appeared, 1);
    assert_int_equal(sub_remove(&t, &la, sa), 1);
    sub_free(&t);
    free(a);
    free(b);
}

static void test_sub_conn_list_across_channels(void **state)
{
    static const char *const names[] = {"a", "b:1", "c/2", "d=3", "e@4"};
    struct sub_table t;
    struct conn *c = dummy_conn();
    struct sub *list = NULL;
    struct sub *s[5];
    int appeared;

    sub_init(&t);
    for (int i = 0; i < 5; i++) {
        s[i] = add(&t, &list, c, names[i], &appeared);
        assert_int_equal(appeared, 1);
    }
    assert_int_equal(list_len(list), 5);
    assert_int_equal(t.nchans, 5);
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(sub_of_conn(list, names[i], strlen(names[i])), s[i]);
    /* from the middle of the connection's list */
    assert_int_equal(sub_remove(&t, &list, s[2]), 1);
    check_table(&t);
    assert_int_equal(list_len(list), 4);
    assert_null(sub_of_conn(list, "c/2", 3));
    /* its head (the latest added) */
    assert_ptr_equal(list, s[4]);
    assert_int_equal(sub_remove(&t, &list, s[4]), 1);
    assert_int_equal(list_len(list), 3);
    /* its tail (the first added) */
    assert_int_equal(sub_remove(&t, &list, s[0]), 1);
    check_table(&t);
    assert_int_equal(list_len(list), 2);
    assert_ptr_equal(sub_of_conn(list, "b:1", 3), s[1]);
    assert_ptr_equal(sub_of_conn(list, "d=3", 3), s[3]);
    assert_null(sub_of_conn(list, "a", 1));
    assert_null(sub_of_conn(list, "e@4", 3));
    assert_int_equal(t.nchans, 2);
    assert_int_equal(t.nsubs, 2);
    /* a connection going away: remove everything on its list */
    while (list != NULL)
        assert_int_equal(sub_remove(&t, &list, list), 1);
    check_table(&t);
    assert_int_equal(t.nchans, 0);
    sub_free(&t);
    free(c);
}

/* Remove the subscriber at index at (0 = first added) out of five in one channel. */
static void remove_one_of_five(int at)
{
    struct sub_table t;
    struct conn *c[5];
    struct sub *list[5] = {NULL};
    struct sub *s[5];
    int appeared;

    sub_init(&t);
    for (int i = 0; i < 5; i++) {
        c[i] = dummy_conn();
        s[i] = add(&t, &list[i], c[i], "chan", &appeared);
        assert_int_equal(appeared, i == 0);
    }
    assert_int_equal(sub_remove(&t, &list[at], s[at]), 0);
    check_table(&t);
    assert_null(list[at]);
    assert_int_equal(sub_find(&t, "chan", 4)->nsubs, 4);
    for (int i = 0; i < 5; i++) {
        if (i != at) {
            assert_true(on_chan(sub_find(&t, "chan", 4), s[i]));
            assert_ptr_equal(list[i], s[i]);
        }
    }
    /* the rest, in an order that again hits head, tail and middle */
    for (int k = 0, left = 4; k < 5; k++) {
        int i = (at + 2 + 2 * k) % 5;

        if (i == at)
            continue;
        int vanished = sub_remove(&t, &list[i], s[i]);

        left--;
        assert_int_equal(vanished, left == 0);
        check_table(&t);
    }
    assert_int_equal(t.nchans, 0);
    assert_int_equal(t.nsubs, 0);
    sub_free(&t);
    for (int i = 0; i < 5; i++)
        free(c[i]);
}

static void test_sub_remove_head_middle_tail_of_channel(void **state)
{
    /* the channel's list head is the latest subscriber (index 4), its tail the first */
    for (int at = 0; at < 5; at++)
        remove_one_of_five(at);
}

static void test_sub_many_connections(void **state)
{
    enum { NCONN = 2000, NCHAN = 50, PER = 10 };
    static struct conn *conns[NCONN];
    static struct sub *lists[NCONN];
    struct sub_table t;
    char name[32];
    int appeared, nappeared = 0, nvanished = 0;

    sub_init(&t);
    /* connection i subscribes to channels i, i+1, ... i+PER-1 (mod NCHAN) */
    for (int i = 0; i < NCONN; i++) {
        conns[i] = dummy_conn();
        lists[i] = NULL;
        for (int k = 0; k < PER; k++) {
            int n = snprintf(name, sizeof name, "ch:%d", (i + k) % NCHAN);

            sub_add(&t, &lists[i], conns[i], name, (size_t)n, &appeared);
            nappeared += appeared;
        }
    }
    check_table(&t);
    assert_int_equal(nappeared, NCHAN);
    assert_int_equal(t.nchans, NCHAN);
    assert_int_equal(t.nsubs, NCONN * PER);
    assert_int_equal(sub_find(&t, "ch:7", 4)->nsubs, NCONN * PER / NCHAN);
    for (int i = 0; i < NCONN; i++)
        assert_int_equal(list_len(lists[i]), PER);
    /* every other connection goes away */
    for (int i = 0; i < NCONN; i += 2)
        while (lists[i] != NULL)
            nvanished += sub_remove(&t, &lists[i], lists[i]);
    check_table(&t);
    assert_int_equal(nvanished, 0);
    assert_int_equal(t.nsubs, NCONN * PER / 2);
    /* the rest unsubscribe channel by channel, from the end of their lists */
    for (int i = 1; i < NCONN; i += 2) {
        while (lists[i] != NULL) {
            struct sub *last = lists[i];

            while (last->conn_next != NULL)
                last = last->conn_next;
            nvanished += sub_remove(&t, &lists[i], last);
        }
    }
    check_table(&t);
    assert_int_equal(nvanished, NCHAN);
    assert_int_equal(t.nchans, 0);
    assert_int_equal(t.nsubs, 0);
    sub_free(&t);
    for (int i = 0; i < NCONN; i++)
        free(conns[i]);
}

static void test_sub_free_with_entries_left(void **state)
{
    struct sub_table t;
    struct conn *c[3];
    struct sub *list[3] = {NULL};
    char name[300];
    int appeared;

    sub_init(&t);
    for (int i = 0; i < 3; i++) {
        c[i] = dummy_conn();
        for (int k = 0; k < 20; k++) {
            int n = snprintf(name, sizeof name, "left:%d", k);

            sub_add(&t, &list[i], c[i], name, (size_t)n, &appeared);
        }
    }
    /* the longest name a channel may have */
    memset(name, 'x', CHAN_MAX_NAME);
    sub_add(&t, &list[0], c[0], name, CHAN_MAX_NAME, &appeared);
    assert_int_equal(appeared, 1);
    check_table(&t);
    /* worker exit: LeakSanitizer fails the sanitized run if anything is left */
    sub_free(&t);
    assert_null(t.chans);
    assert_int_equal(t.nchans, 0);
    assert_int_equal(t.nsubs, 0);
    /* freeing an empty table again is harmless */
    sub_free(&t);
    for (int i = 0; i < 3; i++)
        free(c[i]);
}

/* A name is copied: the caller's buffer may change or go away afterwards. */
static void test_sub_name_is_copied(void **state)
{
    struct sub_table t;
    struct conn *c = dummy_conn();
    struct sub *list = NULL;
    char buf[16] = "copy:me-and-more";
    int appeared;

    sub_init(&t);
    /* only the first 7 bytes are the name, and it is NUL-terminated in the table */
    sub_add(&t, &list, c, buf, 7, &appeared);
    memset(buf, '#', sizeof buf);
    assert_non_null(sub_find(&t, "copy:me", 7));
    assert_string_equal(list->chan->name, "copy:me");
    assert_ptr_equal(sub_of_conn(list, "copy:me", 7), list);
    sub_free(&t);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sub_add_find_remove),
        cmocka_unit_test(test_sub_appeared_and_vanished),
        cmocka_unit_test(test_sub_conn_list_across_channels),
        cmocka_unit_test(test_sub_remove_head_middle_tail_of_channel),
        cmocka_unit_test(test_sub_many_connections),
        cmocka_unit_test(test_sub_free_with_entries_left),
        cmocka_unit_test(test_sub_name_is_copied),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_lim.c -- connection limits (lim.c): the count per client address,
 * the connect_rate bucket, how idle addresses are forgotten and bounded,
 * the total, the descriptor budget and its reserve, trusted proxies, and
 * the counts staying right under several threads at once.
 *
 * Time is given, never read: every call takes `now`, so a case can step
 * the clock by exactly what the bucket needs.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "lim.h"

/* The settings lim.c reads, everything else zero. */
static struct cfg settings(int per_ip, int rate, int burst)
{
    struct cfg c;

    memset(&c, 0, sizeof c);
    c.max_connections_per_ip = per_ip;
    c.connect_rate = rate;
    c.connect_burst = burst;
    return c;
}

/* max_connections_per_ip counts each address apart; a leave frees one place. */
static void test_lim_count_per_address(void **state)
{
    struct cfg c = settings(2, 0, 1);
    struct lim l;

    lim_init(&l);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.1", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.1", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.1", 0), HS_ADDR_LIMIT);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.2", 0), HS_OK);
    /* "10.0.0.1" is no prefix of anything: "10.0.0.10" is another address */
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.10", 0), HS_OK);
    lim_addr_leave(&l, &c, "10.0.0.1", 0);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.1", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "10.0.0.1", 0), HS_ADDR_LIMIT);
    /* a leave for an address with nothing counted changes nothing */
    lim_addr_leave(&l, &c, "10.9.9.9", 0);
    lim_free(&l);
}

/* A burst at once, then connect_rate a second; what was refused costs nothing. */
static void test_lim_rate_bucket(void **state)
{
    struct cfg c = settings(0, 10, 3);
    struct lim l;

    lim_init(&l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lim_addr_enter(&l, &c, "a", 100.0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 100.0), HS_TOO_FAST);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 100.05), HS_TOO_FAST);
    /* 0.1 s at 10/s is one token, spent at once */
    assert_int_equal(lim_addr_enter(&l, &c, "a", 100.1), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 100.1), HS_TOO_FAST);
    /* another address has its own bucket */
    assert_int_equal(lim_addr_enter(&l, &c, "b", 100.1), HS_OK);
    /* a long pause refills only up to the burst */
    for (int i = 0; i < 3; i++)
        assert_int_equal(lim_addr_enter(&l, &c, "a", 1000.0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 1000.0), HS_TOO_FAST);
    /* a steady 10/s is never refused */
    for (int i = 1; i <= 50; i++)
        assert_int_equal(lim_addr_enter(&l, &c, "a", 1000.0 + i * 0.1), HS_OK);
    lim_free(&l);
}

/* The rate counts attempts: one refused by the count still spends its token. */
static void test_lim_rate_counts_refused_attempts(void **state)
{
    struct cfg c = settings(1, 1, 3);
    struct lim l;

    lim_init(&l);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_ADDR_LIMIT);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_ADDR_LIMIT);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_TOO_FAST);
    lim_addr_leave(&l, &c, "a", 0);
    /* the place is free, but the bucket is empty until a second has passed */
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0.5), HS_TOO_FAST);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 1.0), HS_OK);
    lim_free(&l);
}

/* A reload that lowers connect_burst caps a bucket filled under the old one. */
static void test_lim_reload_lowers_the_burst(void **state)
{
    struct cfg c = settings(0, 1, 100);
    struct lim l;

    lim_init(&l);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK); /* 99 left */
    c.connect_burst = 2;
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_TOO_FAST);
    /* and connect_rate 0 turns the bucket off */
    c.connect_rate = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK);
    lim_free(&l);
}

/* An address with no connection is forgotten once its bucket is full again. */
static void test_lim_idle_addresses_are_forgotten(void **state)
{
    struct cfg c = settings(0, 10, 5);
    struct lim l;

    lim_init(&l);
    assert_int_equal(lim_addr_enter(&l, &c, "a", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "b", 0), HS_OK);
    assert_int_equal(lim_sweep(&l, &c, 0), 2);
    /* a leaves with its bucket short of one token: it is kept, for the rate */
    lim_addr_leave(&l, &c, "a", 0);
    assert_int_equal(lim_sweep(&l, &c, 0.05), 2);
    /* 0.1 s later the bucket is full: a is forgotten; b still has a connection */
    assert_int_equal(lim_sweep(&l, &c, 0.1), 1);
    assert_int_equal(lim_sweep(&l, &c, 1000), 1);
    /* b leaves with a full bucket: forgotten at once */
    lim_addr_leave(&l, &c, "b", 1000);
    assert_int_equal(atomic_load(&l.naddrs), 0);
    /* with neither limit needing memory (rate off), a leave forgets at once */
    c = settings(3, 0, 1);
    assert_int_equal(lim_addr_enter(&l, &c, "c", 0), HS_OK);
    assert_int_equal(atomic_load(&l.naddrs), 1);
    lim_addr_leave(&l, &c, "c", 0);
    assert_int_equal(atomic_load(&l.naddrs), 0);
    lim_free(&l);
}

/* Many addresses, each gone with a bucket not yet full: at most LIM_IDLE_MAX are kept. */
static void test_lim_idle_addresses_are_bounded(void **state)
{
    struct cfg c = settings(0, 1, 10);
    struct lim l;
    char addr[LIM_ADDR_MAX];
    int n = LIM_IDLE_MAX + 1000;

    lim_init(&l);
    for (int i = 0; i < n; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(lim_addr_enter(&l, &c, addr, 0), HS_OK);
        lim_addr_leave(&l, &c, addr, 0);
        assert_true(atomic_load(&l.naddrs) <= LIM_IDLE_MAX + 1);
    }
    /* and every one goes once its bucket is full */
    assert_int_equal(lim_sweep(&l, &c, 10), 0);
    lim_free(&l);
}

/* max_connections in the whole daemon; 0 = no limit. */
static void test_lim_total(void **state)
{
    struct cfg c = settings(0, 0, 1);
    struct lim l;

    lim_init(&l);
    c.max_connections = 2;
    assert_int_equal(lim_total_take(&l, &c), HS_OK);
    assert_int_equal(lim_total_take(&l, &c), HS_OK);
    assert_int_equal(lim_total_take(&l, &c), HS_TOO_MANY);
    lim_total_release(&l);
    assert_int_equal(lim_total_take(&l, &c), HS_OK);
    c.max_connections = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(lim_total_take(&l, &c), HS_OK);
    lim_free(&l);
}

/* The descriptor budget: no limit until set, then exactly that many sockets. */
static void test_lim_fd_budget(void **state)
{
    struct lim l;

    lim_init(&l);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lim_fd_take(&l), 0);
    lim_set_fd_max(&l, 1001);
    assert_int_equal(lim_fd_take(&l), 0);
    assert_int_equal(lim_fd_take(&l), -1);
    assert_int_equal(atomic_load(&l.fds), 1001);
    lim_fd_release(&l);
    assert_int_equal(lim_fd_take(&l), 0);
    /* a lower budget (a reload) refuses until enough have closed */
    lim_set_fd_max(&l, 999);
    assert_int_equal(lim_fd_take(&l), -1);
    lim_fd_release(&l);
    lim_fd_release(&l);
    assert_int_equal(lim_fd_take(&l), -1);
    lim_fd_release(&l);
    assert_int_equal(lim_fd_take(&l), 0);
    lim_free(&l);
}

/* The reserve: 64, each site's API connections, and RPC calls where a site has RPC. */
static void test_lim_fd_reserve(void **state)
{
    struct cfg top;
    struct cfg_site a, b;
    struct cfg_site *sites[2] = {&a, &b};
    char sock[] = "unix:/run/php.sock";

    memset(&top, 0, sizeof top);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    top.sites = sites;
    top.nsites = 2;
    a.api_max_connections = 64;
    a.rpc_max_inflight = 256; /* no rpc_socket: no RPC descriptors */
    b.api_max_connections = 10;
    b.rpc_max_inflight = 5;
    b.rpc_socket = sock;
    assert_int_equal(lim_fd_reserve(&top), LIM_FD_SPARE + 64 + 10 + 5);
    top.nsites = 1;
    assert_int_equal(lim_fd_reserve(&top), LIM_FD_SPARE + 64);
}

/* trusted_proxies: addresses, ADDRESS/BITS and "unix". */
static void test_lim_trusted(void **state)
{
    char a0[] = "127.0.0.1", a1[] = "10.0.0.0/8", a2[] = "unix", a3[] = "fd00::/8";
    char *list[] = {a0, a1, a2, a3};
    struct cfg c;

    memset(&c, 0, sizeof c);
    c.trusted_proxies = list;
    c.ntrusted_proxies = 4;
    assert_true(lim_trusted(&c, "127.0.0.1"));
    assert_false(lim_trusted(&c, "127.0.0.2"));
    assert_true(lim_trusted(&c, "10.200.3.4"));
    assert_false(lim_trusted(&c, "11.0.0.1"));
    assert_true(lim_trusted(&c, "unix"));
    assert_true(lim_trusted(&c, "fd12::1"));
    assert_false(lim_trusted(&c, "::1"));
    assert_false(lim_trusted(&c, "not an address"));
    c.ntrusted_proxies = 0;
    assert_false(lim_trusted(&c, "unix"));
}

/* Threads entering and leaving one address: never more than the limit at once. */
struct racer {
    struct lim *l;
    const struct cfg *c;
    int admitted;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 20000; i++) {
        if (lim_addr_enter(r->l, r->c, "shared", 0) == HS_OK) {
            r->admitted++;
            lim_addr_leave(r->l, r->c, "shared", 0);
        }
    }
    return NULL;
}

static void test_lim_threads(void **state)
{
    struct cfg c = settings(3, 0, 1);
    struct racer r[4];
    pthread_t t[4];
    struct lim l;

    lim_init(&l);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){&l, &c, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].admitted > 0);
    }
    /* every place came back: the limit admits exactly 3 again */
    for (int i = 0; i < 3; i++)
        assert_int_equal(lim_addr_enter(&l, &c, "shared", 0), HS_OK);
    assert_int_equal(lim_addr_enter(&l, &c, "shared", 0), HS_ADDR_LIMIT);
    lim_free(&l);
}

/* Run the limits suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lim_count_per_address),
        cmocka_unit_test(test_lim_rate_bucket),
        cmocka_unit_test(test_lim_rate_counts_refused_attempts),
        cmocka_unit_test(test_lim_reload_lowers_the_burst),
        cmocka_unit_test(test_lim_idle_addresses_are_forgotten),
        cmocka_unit_test(test_lim_idle_addresses_are_bounded),
        cmocka_unit_test(test_lim_total),
        cmocka_unit_test(test_lim_fd_budget),
        cmocka_unit_test(test_lim_fd_reserve),
        cmocka_unit_test(test_lim_trusted),
        cmocka_unit_test(test_lim_threads),
    };

    return cmocka_run_group_tests_name("lim", tests, NULL, NULL);
}

/*
 * test_rate.c -- counts over the last minute (rate.c): what falls in and
 * out of the window, a slot reused a minute later, a late add for a second
 * already gone, saturation, and no add lost when threads add at once.
 *
 * Time is given, never read (but in rate_now's own case): every add and
 * sum takes the second, so a case steps the clock exactly.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "rate.h"

/* A new ring counts nothing, whatever the second. */
static void test_rate_starts_empty(void **state)
{
    struct rate r;

    rate_init(&r);
    assert_int_equal(rate_sum(&r, 0), 0);
    assert_int_equal(rate_sum(&r, 12345), 0);
}

/* Adds in one second and in the seconds after it all count within the minute. */
static void test_rate_sums_the_last_minute(void **state)
{
    struct rate r;

    rate_init(&r);
    rate_add(&r, 3, 1000);
    rate_add(&r, 4, 1000);
    rate_add(&r, 5, 1001);
    rate_add(&r, 0, 1002);
    assert_int_equal(rate_sum(&r, 1000), 7);
    assert_int_equal(rate_sum(&r, 1001), 12);
    /* 1000 is the oldest second of the window that ends at 1059 */
    assert_int_equal(rate_sum(&r, 1059), 12);
    assert_int_equal(rate_sum(&r, 1060), 5);
    assert_int_equal(rate_sum(&r, 1061), 0);
    /* a sum for a second before the adds does not count them */
    assert_int_equal(rate_sum(&r, 999), 0);
}

/* A minute later the same slot starts again from the new second's adds. */
static void test_rate_reuses_a_slot_a_minute_later(void **state)
{
    struct rate r;

    rate_init(&r);
    rate_add(&r, 10, 500);
    rate_add(&r, 2, 560);
    assert_int_equal(rate_sum(&r, 560), 2);
    rate_add(&r, 1, 560);
    assert_int_equal(rate_sum(&r, 560), 3);
    /* long after, with nothing added in between */
    rate_add(&r, 7, 500 + 60 * 1000);
    assert_int_equal(rate_sum(&r, 500 + 60 * 1000), 7);
}

/* An add for a second older than what its slot holds is dropped, not mixed in. */
static void test_rate_drops_a_late_add(void **state)
{
    struct rate r;

    rate_init(&r);
    rate_add(&r, 4, 120);
    rate_add(&r, 9, 60); /* the same slot, a minute before: gone already */
    assert_int_equal(rate_sum(&r, 120), 4);
    assert_int_equal(rate_sum(&r, 60), 0);
    /* an older second in another slot still counts where the window holds it */
    rate_add(&r, 1, 119);
    assert_int_equal(rate_sum(&r, 120), 5);
}

/* A second's count stops at UINT32_MAX instead of wrapping to a small number. */
static void test_rate_saturates(void **state)
{
    struct rate r;

    rate_init(&r);
    rate_add(&r, UINT32_MAX - 1, 7);
    rate_add(&r, 5, 7);
    assert_int_equal(rate_sum(&r, 7), UINT32_MAX);
    rate_add(&r, UINT64_MAX, 8);
    assert_int_equal(rate_sum(&r, 8), 2 * (uint64_t)UINT32_MAX);
}

#define THREADS 4
#define ADDS 100000

struct adder {
    struct rate *r;
    uint32_t second;
};

/* One thread's adds: ADDS of 1, spread over two seconds. */
static void *add_many(void *arg)
{
    struct adder *a = arg;

    for (int i = 0; i < ADDS; i++)
        rate_add(a->r, 1, a->second + (uint32_t)(i & 1));
    return NULL;
}

/* Threads adding to the same slots at once lose nothing. */
static void test_rate_threads_lose_nothing(void **state)
{
    struct rate r;
    pthread_t t[THREADS];
    struct adder a = {&r, 300};

    rate_init(&r);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_many, &a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(rate_sum(&r, 301), (uint64_t)THREADS * ADDS);
}

/* rate_now is the second of the monotonic clock (not the wall clock, which may jump). */
static void test_rate_now_is_the_monotonic_second(void **state)
{
    struct timespec before, after;
    uint32_t now;

    clock_gettime(CLOCK_MONOTONIC, &before);
    now = rate_now();
    clock_gettime(CLOCK_MONOTONIC, &after);
    assert_true(now >= (uint32_t)before.tv_sec && now <= (uint32_t)after.tv_sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_starts_empty),
        cmocka_unit_test(test_rate_sums_the_last_minute),
        cmocka_unit_test(test_rate_reuses_a_slot_a_minute_later),
        cmocka_unit_test(test_rate_drops_a_late_add),
        cmocka_unit_test(test_rate_saturates),
        cmocka_unit_test(test_rate_threads_lose_nothing),
        cmocka_unit_test(test_rate_now_is_the_monotonic_second),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

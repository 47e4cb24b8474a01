/*
 * test_dir.c -- the directory of users: which workers hold each user, kept
 * right across adds and removes, from several threads at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dir.h"

/* The workers holding id, as a mask. */
static struct dir_mask where(struct dir *d, const char *id)
{
    struct dir_mask m;

    memset(&m, 0, sizeof m);
    dir_lookup(d, id, &m);
    return m;
}

static void test_dir_add_lookup_remove(void **state)
{
    struct dir d;
    struct dir_mask m;

    dir_init(&d);
    assert_true(dir_mask_empty(&(struct dir_mask){{0}}));
    m = where(&d, "42");
    assert_true(dir_mask_empty(&m));
    dir_add(&d, "42", 2, 0);
    dir_add(&d, "42", 2, 1);
    dir_add(&d, "7", 1, 1);
    m = where(&d, "42");
    assert_true(dir_mask_has(&m, 0) && dir_mask_has(&m, 1) && !dir_mask_has(&m, 2));
    dir_remove(&d, "42", 2, 0);
    m = where(&d, "42");
    assert_true(!dir_mask_has(&m, 0) && dir_mask_has(&m, 1));
    dir_remove(&d, "42", 2, 1);
    m = where(&d, "42");
    /* gone from every worker: offline, no worker to wake */
    assert_true(dir_mask_empty(&m));
    /* ids are whole: "4" and "420" are other users */
    assert_true(dir_mask_empty(&(struct dir_mask){{0}}));
    m = where(&d, "4");
    assert_true(dir_mask_empty(&m));
    m = where(&d, "7");
    assert_true(dir_mask_has(&m, 1));
    /* removing what is not there changes nothing */
    dir_remove(&d, "nobody", 6, 3);
    dir_remove(&d, "7", 1, 0);
    m = where(&d, "7");
    assert_true(dir_mask_has(&m, 1));
    dir_free(&d);
}

static void test_dir_lookup_ors_into_the_mask(void **state)
{
    struct dir d;
    struct dir_mask m;

    dir_init(&d);
    dir_add(&d, "a", 1, 0);
    dir_add(&d, "b", 1, 200);
    memset(&m, 0, sizeof m);
    dir_lookup(&d, "a", &m);
    dir_lookup(&d, "b", &m);
    dir_lookup(&d, "missing", &m);
    /* a publish to a and b wakes worker 0 and worker 200, nobody else */
    assert_true(dir_mask_has(&m, 0) && dir_mask_has(&m, 200));
    assert_false(dir_mask_has(&m, 1) || dir_mask_has(&m, 199) || dir_mask_has(&m, 255));
    dir_free(&d);
}

static void test_dir_count_is_distinct_users(void **state)
{
    struct dir d;

    dir_init(&d);
    assert_int_equal(dir_count(&d), 0);
    dir_add(&d, "u0", 2, 0);
    dir_add(&d, "u0", 2, 2);
    dir_add(&d, "u1", 2, 1);
    /* workers 0 and 2 both hold "u0": counted once (what /stats "users" shows) */
    assert_int_equal(dir_count(&d), 2);
    dir_remove(&d, "u0", 2, 0);
    assert_int_equal(dir_count(&d), 2);
    dir_remove(&d, "u0", 2, 2);
    assert_int_equal(dir_count(&d), 1);
    dir_free(&d);
}

static void test_dir_mask_all(void **state)
{
    struct dir_mask m;

    dir_mask_all(&m, 3);
    assert_true(dir_mask_has(&m, 0) && dir_mask_has(&m, 2) && !dir_mask_has(&m, 3));
    dir_mask_all(&m, DIR_MAX_WORKERS);
    assert_true(dir_mask_has(&m, 63) && dir_mask_has(&m, 64) && dir_mask_has(&m, 255));
    dir_mask_all(&m, 0);
    assert_true(dir_mask_empty(&m));
}

struct churn {
    struct dir *d;
    int worker;
};

/* One worker's users come and go many times; ends with users 0..99 online. */
static void *churn(void *arg)
{
    struct churn *c = arg;
    char id[16];

    for (int round = 0; round < 50; round++) {
        for (int u = 0; u < 200; u++) {
            int n = snprintf(id, sizeof id, "u%d", u);

            dir_add(c->d, id, (size_t)n, c->worker);
        }
        for (int u = 100; u < 200; u++) {
            int n = snprintf(id, sizeof id, "u%d", u);

            dir_remove(c->d, id, (size_t)n, c->worker);
        }
    }
    return NULL;
}

static void test_dir_threads_update_their_own_bits(void **state)
{
    struct churn c[4];
    pthread_t t[4];
    struct dir d;
    struct dir_mask m;

    dir_init(&d);
    for (int i = 0; i < 4; i++) {
        c[i].d = &d;
        c[i].worker = i;
        pthread_create(&t[i], NULL, churn, &c[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    m = where(&d, "u5");
    for (int i = 0; i < 4; i++)
        assert_true(dir_mask_has(&m, i));
    m = where(&d, "u150");
    assert_true(dir_mask_empty(&m));
    dir_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dir_add_lookup_remove),
        cmocka_unit_test(test_dir_lookup_ors_into_the_mask),
        cmocka_unit_test(test_dir_count_is_distinct_users),
        cmocka_unit_test(test_dir_mask_all),
        cmocka_unit_test(test_dir_threads_update_their_own_bits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

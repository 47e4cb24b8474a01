/*
 * test_reg.c -- the per-worker registry: users, their tabs, removal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "reg.h"

/* Count the links registered under one user. */
static size_t count_links(const struct reg_user *u)
{
    size_t n = 0;

    for (const struct reg_link *l = u->links; l != NULL; l = l->next)
        n++;
    return n;
}

static void test_reg_add_and_find(void **state)
{
    struct reg r;
    struct reg_link a = {0}, b = {0}, c = {0};

    reg_init(&r);
    reg_add(&r, &a, "42", 2);
    reg_add(&r, &b, "42", 2);
    reg_add(&r, &c, "7", 1);
    assert_int_equal(r.nusers, 2);
    assert_non_null(reg_find(&r, "42", 2));
    assert_int_equal(reg_find(&r, "42", 2)->nlinks, 2);
    assert_int_equal(count_links(reg_find(&r, "42", 2)), 2);
    assert_int_equal(count_links(reg_find(&r, "7", 1)), 1);
    /* ids are compared whole: "4" is not a prefix match for "42" */
    assert_null(reg_find(&r, "4", 1));
    assert_null(reg_find(&r, "420", 3));
    reg_free(&r);
    assert_null(a.user);
    assert_null(c.user);
}

static void test_reg_remove_middle_first_last(void **state)
{
    struct reg r;
    struct reg_link l[3] = {{0}};

    reg_init(&r);
    for (int i = 0; i < 3; i++)
        reg_add(&r, &l[i], "u", 1);
    reg_remove(&r, &l[1]);
    assert_int_equal(count_links(reg_find(&r, "u", 1)), 2);
    reg_remove(&r, &l[2]);
    assert_int_equal(count_links(reg_find(&r, "u", 1)), 1);
    assert_ptr_equal(reg_find(&r, "u", 1)->links, &l[0]);
    reg_remove(&r, &l[0]);
    /* the last tab gone, the user is gone */
    assert_null(reg_find(&r, "u", 1));
    assert_int_equal(r.nusers, 0);
    reg_free(&r);
}

static void test_reg_remove_unlinked_is_noop(void **state)
{
    struct reg r;
    struct reg_link a = {0}, b = {0};

    reg_init(&r);
    reg_add(&r, &a, "x", 1);
    reg_remove(&r, &b);
    reg_remove(&r, &a);
    reg_remove(&r, &a);
    assert_int_equal(r.nusers, 0);
    reg_free(&r);
}

static void test_reg_many_users(void **state)
{
    enum { N = 5000 };
    static struct reg_link links[N];
    struct reg r;
    char id[16];

    reg_init(&r);
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "user-%d", i % 1000);

        reg_add(&r, &links[i], id, (size_t)n);
    }
    assert_int_equal(r.nusers, 1000);
    assert_int_equal(reg_find(&r, "user-999", 8)->nlinks, 5);
    for (int i = 0; i < N; i += 2)
        reg_remove(&r, &links[i]);
    /* user-1's tabs all had odd indices: none removed */
    assert_int_equal(reg_find(&r, "user-1", 6)->nlinks, 5);
    /* user-0's tabs all had even indices: every one removed, so the user is gone */
    assert_null(reg_find(&r, "user-0", 6));
    assert_int_equal(r.nusers, 500);
    reg_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reg_add_and_find),
        cmocka_unit_test(test_reg_remove_middle_first_last),
        cmocka_unit_test(test_reg_remove_unlinked_is_noop),
        cmocka_unit_test(test_reg_many_users),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_msg.c -- shared frames: encoded once, refcounted across threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"
#include "ws.h"

static void test_msg_text_frame_small(void **state)
{
    struct msg *m = msg_new(WS_OP_TEXT, "hello", 5);

    /* FIN + TEXT, unmasked, 7-bit length, then the payload as is */
    assert_int_equal(m->len, 7);
    assert_int_equal(m->data[0], 0x81);
    assert_int_equal(m->data[1], 5);
    assert_memory_equal(m->data + 2, "hello", 5);
    msg_unref(m);
}

static void test_msg_lengths_16_and_64_bit(void **state)
{
    static char big[70000];
    struct msg *m = msg_new(WS_OP_TEXT, big, 300);

    assert_int_equal(m->data[1], 126);
    assert_int_equal((m->data[2] << 8) | m->data[3], 300);
    assert_int_equal(m->len, 4 + 300);
    msg_unref(m);
    m = msg_new(WS_OP_BINARY, big, sizeof big);
    assert_int_equal(m->data[0], 0x82);
    assert_int_equal(m->data[1], 127);
    assert_int_equal(m->len, 10 + sizeof big);
    msg_unref(m);
}

static void test_msg_close_carries_code(void **state)
{
    struct msg *m = msg_new_close(1001);

    assert_int_equal(m->len, 4);
    assert_int_equal(m->data[0], 0x88);
    assert_int_equal(m->data[1], 2);
    assert_int_equal((m->data[2] << 8) | m->data[3], 1001);
    msg_unref(m);
}

static void test_msg_raw_is_unframed(void **state)
{
    struct msg *m = msg_new_raw("HTTP/1.1 101\r\n\r\n", 16);

    assert_int_equal(m->len, 16);
    assert_memory_equal(m->data, "HTTP/1.1 101\r\n\r\n", 16);
    msg_unref(m);
    msg_unref(NULL);
}

static void *ref_unref_many(void *arg)
{
    struct msg *m = arg;

    for (int i = 0; i < 100000; i++)
        msg_unref(msg_ref(m));
    return NULL;
}

static void test_msg_refcount_across_threads(void **state)
{
    struct msg *m = msg_new(WS_OP_TEXT, "x", 1);
    pthread_t t[4];

    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, ref_unref_many, m);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* every thread gave back what it took: one reference left */
    assert_int_equal(atomic_load(&m->refs), 1);
    msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_text_frame_small),
        cmocka_unit_test(test_msg_lengths_16_and_64_bit),
        cmocka_unit_test(test_msg_close_carries_code),
        cmocka_unit_test(test_msg_raw_is_unframed),
        cmocka_unit_test(test_msg_refcount_across_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

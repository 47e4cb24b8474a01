/*
 * test_proto_text.c -- unit tests for the envelope's bytes (proto.c,
 * proto_channel_text).
 *
 * Covers:     the envelope is byte for byte what jansson's dump of the same
 *             object would be (hist_file.c compares stored envelopes with
 *             it), for every kind of data (objects in their order, arrays,
 *             empty ones, strings with NUL, escapes, non-ASCII, integers at
 *             both ends, reals, literals) and for names that need every
 *             escape; a name that is not UTF-8 gives no envelope.
 * Invariants: none; no threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "proto.h"

/* The envelope is jansson's dump of the object, byte for byte (hist_file.c relies on it). */
static void test_proto_channel_text_bytes(void **state)
{
    static const char *const names[] = {
        "e", "a/b \x01\x1f\x7f \"q\" \\ \b\f\n\r\t \xc3\xa9 \xe2\x80\xa8"};
    static const char *const datas[] = {
        "{\"s\":1,\"p\":\"x\\u0000\\u001e/\"}",
        "{}",
        "[]",
        "[[],{},[{}]]",
        "\"\"",
        "true",
        "false",
        "null",
        "-9223372036854775808",
        "9223372036854775807",
        "0",
        "-1",
        "1.5",
        "-0.0",
        "1e300",
        "2.5e-7",
        "{\"z\":1,\"a\":[1,2.25,\"\\u00e9\\ud83d\\ude00\"],\"\\n k\":{\"\":null}}",
    };
    json_error_t err;

    for (size_t d = 0; d < sizeof datas / sizeof datas[0]; d++) {
        json_t *data = json_loads(datas[d], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

        assert_non_null(data);
        for (size_t i = 0; i < 2; i++) {
            json_t *o = json_object();
            char *want, *got;

            json_object_set_new(o, "channel", json_string("c:1"));
            json_object_set_new(o, "event", json_string(names[i]));
            json_object_set(o, "data", data);
            json_object_set_new(o, "from", json_string(names[i]));
            want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            got = proto_channel_text("c:1", names[i], data, names[i]);
            assert_string_equal(got, want);
            free(got);
            free(want);
            json_decref(o);
        }
        json_decref(data);
    }
    /* not UTF-8: no envelope at all, rather than one without the member */
    assert_null(proto_channel_text(NULL, "bad \xff", NULL, NULL));
    assert_null(proto_channel_text(NULL, "e", NULL, "bad \xc3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_channel_text_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

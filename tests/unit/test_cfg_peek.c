/*
 * test_cfg_peek.c -- cfg_load_peek (cfg.c, cfg_resolve.c): the settings a
 * tool such as `herald status` reads to find a running daemon's sockets,
 * without the private files a full load needs. Each case loads the same
 * file both ways, so the difference is exactly what peek leaves out.
 */
#include "cfg_helpers.h"

/* Two sites whose secret files no one can read, one socket's group missing. */
#define LOCKED_SITES                                                                               \
    "[herald]\n"                                                                                   \
    "api_socket_mode = 0660\n"                                                                     \
    "\n"                                                                                           \
    "[site shop]\n"                                                                                \
    "secret_file = /nonexistent/herald-test/shop.secret\n"                                         \
    "api_socket = /run/herald/shop.sock\n"                                                         \
    "api_socket_group = herald-test-no-such-group\n"                                               \
    "\n"                                                                                           \
    "[site blog]\n"                                                                                \
    "secret_file = /nonexistent/herald-test/blog.secret\n"                                         \
    "api_socket = /run/herald/blog.sock\n"                                                         \
    "ws_path = /live\n"

/* cfg_load refuses what it cannot read; peek gives every site's socket, and no secret. */
static void test_cfg_peek_reads_no_private_file(void **state)
{
    char *path = tmp_ini(LOCKED_SITES);
    struct cfg c;
    char *cause = NULL;

    free(load_err("-c", path, NULL));
    assert_int_equal(cfg_load_peek(path, &c, &cause), 0);
    assert_null(cause);
    assert_int_equal(c.nsites, 2);
    assert_string_equal(c.sites[0]->site, "shop");
    assert_string_equal(c.sites[0]->api_socket, "/run/herald/shop.sock");
    assert_string_equal(c.sites[0]->api_socket_group, "herald-test-no-such-group");
    assert_string_equal(c.sites[1]->site, "blog");
    assert_string_equal(c.sites[1]->api_socket, "/run/herald/blog.sock");
    assert_int_equal(c.sites[1]->api_socket_mode, 0660);
    for (size_t i = 0; i < c.nsites; i++) {
        assert_null(c.sites[i]->secret);
        assert_int_equal(c.sites[i]->secret_len, 0);
        assert_false(c.sites[i]->dev_secret);
    }
    assert_string_equal(c.file, path);
    cfg_free(&c);
    tmp_remove(path);
}

/* A secret written in the file is not kept either, nor the Redis password file read. */
static void test_cfg_peek_keeps_no_secret(void **state)
{
    char *path = tmp_ini("[herald]\n"
                         "secret = " GOOD_SECRET "\n"
                         "api_socket = /tmp/herald-peek.sock\n"
                         "engine = redis\n"
                         "redis_address = 127.0.0.1:6379\n"
                         "redis_password_file = /nonexistent/herald-test/redis.pw\n");
    struct cfg c;
    char *cause = NULL;

    free(load_err("-c", path, NULL));
    assert_int_equal(cfg_load_peek(path, &c, &cause), 0);
    assert_int_equal(c.nsites, 1);
    assert_string_equal(c.sites[0]->site, "default");
    assert_string_equal(c.sites[0]->api_socket, "/tmp/herald-peek.sock");
    assert_null(c.sites[0]->secret);
    assert_null(c.redis_password);
    cfg_free(&c);
    tmp_remove(path);
}

/* Without a file: the development defaults, as the daemon has them. */
static void test_cfg_peek_without_a_file(void **state)
{
    struct cfg c, full;
    char *cause = NULL;

    assert_int_equal(cfg_load_peek(NULL, &c, &cause), 0);
    load_ok(&full, NULL);
    assert_int_equal(c.nsites, 1);
    assert_false(c.explicit_sites);
    assert_null(c.file);
    assert_string_equal(c.sites[0]->api_socket, full.sites[0]->api_socket);
    assert_string_equal(c.sites[0]->api_socket, "/tmp/herald.sock");
    assert_null(c.sites[0]->secret);
    cfg_free(&c);
    cfg_free(&full);
}

/* Everything else is checked as in a full load, with the same message. */
static void test_cfg_peek_refuses_what_load_refuses(void **state)
{
    static const char *const bad[] = {
        "[herald]\nsecret = " GOOD_SECRET "\nno_such_key = 1\n",
        "[site a]\nsecret = a" GOOD_SECRET "\napi_socket = /tmp/x.sock\n"
        "[site b]\nsecret = b" GOOD_SECRET "\napi_socket = /tmp/x.sock\n",
        "[site a]\nsecret = " GOOD_SECRET "\nlisten = 127.0.0.1:1\n",
        "[herald]\nsecret = " GOOD_SECRET "\napi_socket = relative.sock\n",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = tmp_ini(bad[i]), *full = load_err("-c", path, NULL), *cause = NULL;
        struct cfg c;

        assert_int_equal(cfg_load_peek(path, &c, &cause), -1);
        assert_non_null(cause);
        assert_string_equal(cause, full);
        free(cause);
        free(full);
        tmp_remove(path);
    }
}

/* A file that cannot be opened is named, with the reason. */
static void test_cfg_peek_missing_file(void **state)
{
    struct cfg c;
    char *cause = NULL;

    assert_int_equal(cfg_load_peek("/nonexistent/herald-test/herald.ini", &c, &cause), -1);
    assert_string_equal(cause, "cannot open config file /nonexistent/herald-test/herald.ini: "
                               "No such file or directory");
    free(cause);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_peek_reads_no_private_file),
        cmocka_unit_test(test_cfg_peek_keeps_no_secret),
        cmocka_unit_test(test_cfg_peek_without_a_file),
        cmocka_unit_test(test_cfg_peek_refuses_what_load_refuses),
        cmocka_unit_test(test_cfg_peek_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_cfg_value.c -- unit tests for cfg_value.c, the value parsers and
 * validators behind the settings table: every value type well formed (one
 * file that sets every key off its default) and malformed or out of range
 * (one bad value per type and per range), and the size, duration and
 * loopback functions of cfg.h called directly.
 *
 * The bad values go through cfg_load rather than straight to cfg_value.h,
 * so that each message is checked exactly as the user sees it, as
 * "FILE:LINE: key: why", range included. Temporary files are made with
 * mkstemp in /tmp (cfg_helpers.h) and removed by the test that made them.
 */
#include "cfg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg_helpers.h"
#include "log.h"

/* ---- Every value type, through the file ------------------------------- */

static void test_cfg_file_values(void **state)
{
    char *path = tmp_ini("# every key, none at its default\n"
                         "[herald]\n"
                         "listen = unix:/run/herald/ws.sock\n"
                         "listen_mode = 0600\n"
                         "ws_path = /push\n"
                         "workers = 3\n"
                         "secret = " GOOD_SECRET "\n"
                         "secret_file =\n"
                         "allow_anonymous = YES\n"
                         "allowed_origins = https://a.example, https://b.example:8443  null\n"
                         "token_leeway = 2m\n"
                         "max_header_size = 16K\n"
                         "handshake_timeout = 1500ms\n"
                         "max_message_size = 1G\n"
                         "ping_interval = 0\n"
                         "api_socket = /run/herald/api.sock\n"
                         "api_socket_mode = 0666\n"
                         "api_socket_group = www-data\n"
                         "api_threads = 64\n"
                         "api_max_body = 64M\n"
                         "log_level = debug\n"
                         "shutdown_timeout = 0\n"
                         "engine = redis\n"
                         "node_name = Web_1.a-b\n"
                         "redis_address = [fd00::5]:6379\n"
                         "redis_db = 1000\n"
                         "redis_prefix = ~app/v2:!\n"
                         "redis_timeout = 10ms\n"
                         "metrics_listen = [::1]:9602\n");
    struct cfg c;

    load_ok(&c, "-c", path, NULL);
    assert_string_equal(c.listen, "unix:/run/herald/ws.sock");
    assert_int_equal(c.listen_mode, 0600);
    assert_string_equal(c.sites[0]->ws_path, "/push");
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
    assert_int_equal(c.sites[0]->secret_len, strlen(GOOD_SECRET));
    assert_int_equal(c.sites[0]->dev_secret, 0);
    assert_int_equal(c.sites[0]->allow_anonymous, 1);
    assert_int_equal(c.sites[0]->norigins, 3);
    assert_string_equal(c.sites[0]->origins[0], "https://a.example");
    assert_string_equal(c.sites[0]->origins[1], "https://b.example:8443");
    assert_string_equal(c.sites[0]->origins[2], "null");
    assert_int_equal(c.sites[0]->token_leeway, 120);
    assert_int_equal(c.max_header_size, 16384);
    assert_int_equal(c.handshake_timeout_ms, 1500);
    assert_int_equal(c.max_message_size, 1073741824);
    assert_int_equal(c.ping_interval_ms, 0);
    assert_string_equal(c.sites[0]->api_socket, "/run/herald/api.sock");
    assert_int_equal(c.sites[0]->api_socket_mode, 0666);
    assert_string_equal(c.sites[0]->api_socket_group, "www-data");
    assert_int_equal(c.api_threads, 64);
    assert_int_equal(c.sites[0]->api_max_body, 64 << 20);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    assert_string_equal(c.engine, "redis");
    assert_string_equal(c.node_name, "Web_1.a-b");
    assert_string_equal(c.redis_address, "[fd00::5]:6379");
    assert_int_equal(c.redis_db, 1000);
    assert_string_equal(c.redis_prefix, "~app/v2:!");
    assert_int_equal(c.redis_timeout_ms, 10);
    assert_string_equal(c.metrics_listen, "[::1]:9602");
    assert_string_equal(c.file, path);
    cfg_free(&c);
    tmp_remove(path);
}

/* One bad value per type and per range, with the exact cause. */
static void test_cfg_value_errors(void **state)
{
    static const struct {
        const char *ini;
        const char *cause;
    } cases[] = {
        /* int */
        {"[herald]\nworkers = x", "herald.ini:2: workers: expected an integer, got 'x'"},
        {"[herald]\nworkers = 4x", "herald.ini:2: workers: expected an integer, got '4x'"},
        {"[herald]\nworkers = 257", "herald.ini:2: workers: must be from 0 to 256, got '257'"},
        {"[herald]\nworkers = -1", "herald.ini:2: workers: must be from 0 to 256, got '-1'"},
        {"[herald]\nworkers = 99999999999999999999",
         "herald.ini:2: workers: expected an integer, got '99999999999999999999'"},
        {"[herald]\napi_threads = 0", "herald.ini:2: api_threads: must be from 1 to 64, got '0'"},
        {"[herald]\n\n\napi_threads = 65",
         "herald.ini:4: api_threads: must be from 1 to 64, got '65'"},
        /* bool */
        {"[herald]\nallow_anonymous = maybe",
         "herald.ini:2: allow_anonymous: expected yes or no (true/false, on/off, 1/0), "
         "got 'maybe'"},
        {"[herald]\nallow_anonymous =",
         "herald.ini:2: allow_anonymous: expected yes or no (true/false, on/off, 1/0), got ''"},
        /* size */
        {"[herald]\nmax_message_size = abc",
         "herald.ini:2: max_message_size: expected a size such as 64k or 1M, got 'abc'"},
        {"[herald]\nmax_message_size = 1MB",
         "herald.ini:2: max_message_size: expected a size such as 64k or 1M, got '1MB'"},
        {"[herald]\nmax_message_size = 1.5M",
         "herald.ini:2: max_message_size: expected a size such as 64k or 1M, got '1.5M'"},
        {"[herald]\nmax_message_size = 99999999999G",
         "herald.ini:2: max_message_size: expected a size such as 64k or 1M, "
         "got '99999999999G'"},
        {"[herald]\nmax_message_size = 2G",
         "herald.ini:2: max_message_size: must be from 125 to 1G, got '2G'"},
        {"[herald]\nmax_message_size = 124",
         "herald.ini:2: max_message_size: must be from 125 to 1G, got '124'"},
        {"[herald]\nmax_header_size = 128k",
         "herald.ini:2: max_header_size: must be from 1k to 64k, got '128k'"},
        {"[herald]\nmax_header_size = 1023",
         "herald.ini:2: max_header_size: must be from 1k to 64k, got '1023'"},
        {"[herald]\napi_max_body = 65M",
         "herald.ini:2: api_max_body: must be from 1k to 64M, got '65M'"},
        /* duration */
        {"[herald]\nhandshake_timeout = 10 s",
         "herald.ini:2: handshake_timeout: expected a duration such as 500ms, 30s, 5m or 1h, "
         "got '10 s'"},
        {"[herald]\nhandshake_timeout = 2d",
         "herald.ini:2: handshake_timeout: expected a duration such as 500ms, 30s, 5m or 1h, "
         "got '2d'"},
        {"[herald]\nhandshake_timeout = 50ms",
         "herald.ini:2: handshake_timeout: must be from 100ms to 10m, got '50ms'"},
        {"[herald]\nhandshake_timeout = 1h",
         "herald.ini:2: handshake_timeout: must be from 100ms to 10m, got '1h'"},
        {"[herald]\nping_interval = 500ms",
         "herald.ini:2: ping_interval: must be 0 (off) or from 1s to 1h, got '500ms'"},
        {"[herald]\nping_interval = 2h",
         "herald.ini:2: ping_interval: must be 0 (off) or from 1s to 1h, got '2h'"},
        {"[herald]\nshutdown_timeout = 61s",
         "herald.ini:2: shutdown_timeout: must be from 0 to 1m, got '61s'"},
        {"[herald]\ntoken_leeway = 1500ms",
         "herald.ini:2: token_leeway: must be whole seconds, got '1500ms'"},
        {"[herald]\ntoken_leeway = 11m",
         "herald.ini:2: token_leeway: must be from 0 to 10m, got '11m'"},
        {"[herald]\ntoken_leeway = -1s",
         "herald.ini:2: token_leeway: expected a duration such as 30s or 2m, got '-1s'"},
        /* mode */
        {"[herald]\nlisten_mode = 0999",
         "herald.ini:2: listen_mode: expected an octal mode such as 0660, got '0999'"},
        {"[herald]\napi_socket_mode = rw",
         "herald.ini:2: api_socket_mode: expected an octal mode such as 0660, got 'rw'"},
        {"[herald]\napi_socket_mode = 01777",
         "herald.ini:2: api_socket_mode: must be from 0 to 0777, got '01777'"},
        /* log level */
        {"[herald]\nlog_level = loud",
         "herald.ini:2: log_level: expected debug, info, warn or error, got 'loud'"},
        /* list */
        {"[herald]\nallowed_origins = https://a.example https://b.example/app",
         "herald.ini:2: allowed_origins: expected origins such as https://example.com "
         "(no path), got 'https://b.example/app'"},
        {"[herald]\nallowed_origins = example.com",
         "herald.ini:2: allowed_origins: expected origins such as https://example.com "
         "(no path), got 'example.com'"},
        /* strings with a shape */
        {"[herald]\nlisten =", "herald.ini:2: listen: expected HOST:PORT or unix:/path, got ''"},
        {"[herald]\nlisten = 9601",
         "herald.ini:2: listen: expected HOST:PORT or unix:/path, got '9601'"},
        {"[herald]\nlisten = :9601",
         "herald.ini:2: listen: expected HOST:PORT or unix:/path, got ':9601'"},
        {"[herald]\nlisten = 127.0.0.1:0",
         "herald.ini:2: listen: port must be from 1 to 65535, got '127.0.0.1:0'"},
        {"[herald]\nlisten = 127.0.0.1:65536",
         "herald.ini:2: listen: port must be from 1 to 65535, got '127.0.0.1:65536'"},
        {"[herald]\nlisten = 127.0.0.1:http",
         "herald.ini:2: listen: port must be from 1 to 65535, got '127.0.0.1:http'"},
        {"[herald]\nlisten = 300.1.1.1:80",
         "herald.ini:2: listen: '300.1.1.1' is not an IPv4 address"},
        {"[herald]\nlisten = ::1:80",
         "herald.ini:2: listen: expected HOST:PORT with an IP address or host name, got '::1:80'"},
        {"[herald]\nlisten = [::1:80", "herald.ini:2: listen: expected [IPv6]:PORT, got '[::1:80'"},
        {"[herald]\nlisten = [nope]:80", "herald.ini:2: listen: 'nope' is not an IPv6 address"},
        {"[herald]\nlisten = bad_host:80",
         "herald.ini:2: listen: expected HOST:PORT with an IP address or host name, "
         "got 'bad_host:80'"},
        {"[herald]\nlisten = unix:run/ws.sock",
         "herald.ini:2: listen: expected an absolute socket path, got 'run/ws.sock'"},
        {"[herald]\nlisten = "
         "unix:/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
         "herald.ini:2: listen: socket path longer than 107 bytes"},
        {"[herald]\nws_path = ws",
         "herald.ini:2: ws_path: expected a path starting with '/', got 'ws'"},
        {"[herald]\nws_path = /w s",
         "herald.ini:2: ws_path: expected a plain path without blanks, '?' or '#', got '/w s'"},
        {"[herald]\nws_path = /ws?x=1",
         "herald.ini:2: ws_path: expected a plain path without blanks, '?' or '#', got '/ws?x=1'"},
        {"[herald]\napi_socket = herald.sock",
         "herald.ini:2: api_socket: expected an absolute socket path, got 'herald.sock'"},
        {"[herald]\napi_socket =",
         "herald.ini:2: api_socket: expected an absolute socket path, got ''"},
        {"[herald]\nrpc_socket = php-fpm:9000",
         "herald.ini:2: rpc_socket: expected an IP address or localhost, not a name to look up, "
         "got 'php-fpm'"},
        {"[herald]\nhost = shop.example.com:443",
         "herald.ini:2: host: expected a host name such as shop.example.com (no port), "
         "got 'shop.example.com:443'"},
        {"[herald]\nhost = -shop.example.com",
         "herald.ini:2: host: expected a host name such as shop.example.com (no port), "
         "got '-shop.example.com'"},
        {"[herald]\nhost = shop_example.com",
         "herald.ini:2: host: expected a host name such as shop.example.com (no port), "
         "got 'shop_example.com'"},
        {"[herald]\npublish_uids = shop, -1",
         "herald.ini:2: publish_uids: expected a user name or a numeric uid, got '-1'"},
        {"[herald]\npublish_uids = shop:www",
         "herald.ini:2: publish_uids: expected a user name or a numeric uid, got 'shop:www'"},
        /* the metrics listener: TCP only */
        {"[herald]\nmetrics_listen = unix:/run/herald/metrics.sock",
         "herald.ini:2: metrics_listen: expected HOST:PORT (a TCP address), got "
         "'unix:/run/herald/metrics.sock'"},
        {"[herald]\nmetrics_listen = 127.0.0.1:0",
         "herald.ini:2: metrics_listen: port must be from 1 to 65535, got '127.0.0.1:0'"},
        /* the Redis engine */
        {"[herald]\nengine = redis-cluster",
         "herald.ini:2: engine: expected memory or redis, got 'redis-cluster'"},
        {"[herald]\nengine =", "herald.ini:2: engine: expected memory or redis, got ''"},
        {"[herald]\nredis_address = 6379",
         "herald.ini:2: redis_address: expected HOST:PORT or unix:/path, got '6379'"},
        {"[herald]\nredis_address = redis.internal:6379",
         "herald.ini:2: redis_address: expected an IP address or localhost, not a name to look "
         "up, got 'redis.internal'"},
        {"[herald]\nredis_address = ::1:6379",
         "herald.ini:2: redis_address: an IPv6 address goes in brackets, as [::1]:6379, "
         "got '::1:6379'"},
        {"[herald]\nredis_address = [::g]:6379",
         "herald.ini:2: redis_address: '::g' is not an IPv6 address"},
        {"[herald]\nredis_address = 10.0.0.5:0",
         "herald.ini:2: redis_address: port must be from 1 to 65535, got '10.0.0.5:0'"},
        {"[herald]\nredis_address = 10.0.0.256:6379",
         "herald.ini:2: redis_address: '10.0.0.256' is not an IPv4 address"},
        {"[herald]\nredis_address = unix:redis.sock",
         "herald.ini:2: redis_address: expected an absolute socket path, got 'redis.sock'"},
        {"[herald]\nredis_password_file = redis.pw",
         "herald.ini:2: redis_password_file: expected an absolute path, got 'redis.pw'"},
        {"[herald]\nredis_db = 1001", "herald.ini:2: redis_db: must be from 0 to 1000, got '1001'"},
        {"[herald]\nredis_db = -1", "herald.ini:2: redis_db: must be from 0 to 1000, got '-1'"},
        {"[herald]\nredis_timeout = 9ms",
         "herald.ini:2: redis_timeout: must be from 10ms to 1m, got '9ms'"},
        {"[herald]\nredis_timeout = 61s",
         "herald.ini:2: redis_timeout: must be from 10ms to 1m, got '61s'"},
        {"[herald]\nredis_prefix =",
         "herald.ini:2: redis_prefix: expected 1 to 64 printable ASCII characters without "
         "blanks, '{' or '}', got ''"},
        {"[herald]\nredis_prefix = {herald}:",
         "herald.ini:2: redis_prefix: expected 1 to 64 printable ASCII characters without "
         "blanks, '{' or '}', got '{herald}:'"},
        {"[herald]\nredis_prefix = my app:",
         "herald.ini:2: redis_prefix: expected 1 to 64 printable ASCII characters without "
         "blanks, '{' or '}', got 'my app:'"},
        {"[herald]\nredis_prefix = h\xc3\xa9:",
         "herald.ini:2: redis_prefix: expected 1 to 64 printable ASCII characters without "
         "blanks, '{' or '}', got 'h\xc3\xa9:'"},
        {"[herald]\nredis_prefix = "
         "p2345678901234567890123456789012345678901234567890123456789012345",
         "herald.ini:2: redis_prefix: expected 1 to 64 printable ASCII characters without "
         "blanks, '{' or '}', got "
         "'p2345678901234567890123456789012345678901234567890123456789012345'"},
        {"[herald]\nnode_name = web:1",
         "herald.ini:2: node_name: expected 1 to 64 of A-Z a-z 0-9 . _ -, got 'web:1'"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_ini_error(cases[i].ini, NULL, cases[i].cause);
}

/* ---- Parsers ---------------------------------------------------------- */

static void test_cfg_parse_size(void **state)
{
    static const struct {
        const char *in;
        int ret;
        uint64_t out;
    } cases[] = {
        {"0", 0, 0},
        {"512", 0, 512},
        {"8k", 0, 8192},
        {"8K", 0, 8192},
        {"1M", 0, 1048576},
        {"1m", 0, 1048576},
        {"2G", 0, 2147483648ULL},
        {"007", 0, 7},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -1, 0}, /* overflow in the digits */
        {"17179869183G", 0, 17179869183ULL << 30},
        {"17179869184G", -1, 0}, /* overflow in the multiplier */
        {"16777216T", -1, 0},
        {"", -1, 0},
        {"k", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {" 1", -1, 0},
        {"1 ", -1, 0},
        {"1kk", -1, 0},
        {"1KB", -1, 0},
        {"1.5M", -1, 0},
        {"0x10", -1, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t out = 12345;
        int r = cfg_parse_size(cases[i].in, &out);

        if (r != cases[i].ret)
            fail_msg("cfg_parse_size(\"%s\") = %d, want %d", cases[i].in, r, cases[i].ret);
        if (r == 0)
            assert_int_equal(out, cases[i].out);
        else
            assert_int_equal(out, 12345); /* untouched on error */
    }
}

static void test_cfg_parse_duration(void **state)
{
    static const struct {
        const char *in;
        int ret;
        int64_t ms;
    } cases[] = {
        {"0", 0, 0},
        {"10", 0, 10000}, /* a bare number is seconds */
        {"250ms", 0, 250},
        {"10s", 0, 10000},
        {"2m", 0, 120000},
        {"1h", 0, 3600000},
        {"0ms", 0, 0},
        {"9223372036854775807ms", 0, INT64_MAX},
        {"9223372036854775808ms", -1, 0}, /* overflow in the digits */
        {"9223372036854775s", 0, 9223372036854775000LL},
        {"9223372036854776s", -1, 0}, /* overflow in the multiplier */
        {"2562047788016h", -1, 0},
        {"", -1, 0},
        {"s", -1, 0},
        {"ms", -1, 0},
        {"-1s", -1, 0},
        {"1.5s", -1, 0},
        {"1 s", -1, 0},
        {"1S", -1, 0},
        {"1d", -1, 0},
        {"1sec", -1, 0},
        {"1msx", -1, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 12345;
        int r = cfg_parse_duration_ms(cases[i].in, &ms);

        if (r != cases[i].ret)
            fail_msg("cfg_parse_duration_ms(\"%s\") = %d, want %d", cases[i].in, r, cases[i].ret);
        if (r == 0)
            assert_int_equal(ms, cases[i].ms);
        else
            assert_int_equal(ms, 12345);
    }
}

static void test_cfg_listen_is_local(void **state)
{
    static const struct {
        const char *listen;
        int local;
    } cases[] = {
        {"127.0.0.1:9601", 1},
        {"127.255.255.254:1", 1},
        {"[::1]:9601", 1},
        {"[::ffff:127.0.0.1]:9601", 1},
        {"localhost:9601", 1},
        {"LOCALHOST:9601", 1},
        {"unix:/run/herald/ws.sock", 1},
        {"0.0.0.0:9601", 0},
        {"128.0.0.1:9601", 0},
        {"10.1.2.3:9601", 0},
        {"[::]:9601", 0},
        {"[::2]:9601", 0},
        {"example.com:9601", 0},
        {"localhost.example.com:9601", 0},
        {"127.0.0.1", 0}, /* malformed: no port */
        {"", 0},
        {NULL, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cfg_listen_is_local(cases[i].listen) != cases[i].local)
            fail_msg("cfg_listen_is_local(\"%s\") != %d",
                     cases[i].listen ? cases[i].listen : "(null)", cases[i].local);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_file_values),     cmocka_unit_test(test_cfg_value_errors),
        cmocka_unit_test(test_cfg_parse_size),      cmocka_unit_test(test_cfg_parse_duration),
        cmocka_unit_test(test_cfg_listen_is_local),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

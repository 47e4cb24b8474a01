/*
 * test_cfg.c -- unit tests for cfg.c, loading a configuration: defaults,
 * INI syntax and errors with their file:line, flags and their precedence,
 * the secret rules, --check-config, --help and --version, and the sync of
 * herald.ini.example and docs/config.md with the settings table. Values and
 * their messages are tested in test_cfg_value.c; temporary files are made by
 * cfg_helpers.h (mkstemp in /tmp) and removed by the test that made them.
 *
 * herald.ini.example and docs/config.md are looked for under HERALD_SRCDIR
 * if defined, else in the working directory, else two directories above the
 * test binary (build/tests/test_cfg -> the repository root).
 */
#include "cfg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg_build.h"
#include "cfg_helpers.h"
#include "log.h"
#include "xmalloc.h"

/* ---- Helpers ---------------------------------------------------------- */

/* Expect a failure whose cause is exactly want. */
static void expect_cause(char *cause, const char *want)
{
    if (strcmp(cause, want) != 0)
        fail_msg("want: %s\ngot:  %s", want, cause);
    free(cause);
}

/* Read a whole file into a malloc'd string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t n = 0;

    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    assert_true(getdelim(&s, &n, '\0', f) >= 0);
    fclose(f);
    return s;
}

/* Run cfg_load with stdout sent to a file; returns what was printed. */
static char *load_capture(int *r, enum cfg_action *action, const char *arg)
{
    char *argv[] = {"herald", (char *)arg, NULL};
    char *path = tmp_ini(""), *out, *cause = NULL;
    struct cfg c;
    int saved, fd;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    *r = cfg_load(2, argv, &c, action, &cause);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_null(cause);
    assert_null(c.listen);
    cfg_free(&c);
    out = slurp(path);
    tmp_remove(path);
    return out;
}

/* The path of a file of the repository, as described at the top; malloc'd. */
static char *repo_file(const char *rel)
{
    char exe[4096];
    ssize_t n;
    char *p;

#ifdef HERALD_SRCDIR
    return xasprintf("%s/%s", HERALD_SRCDIR, rel);
#endif
    if (access(rel, R_OK) == 0)
        return strdup(rel);
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    for (int up = 0; up < 3 && (p = strrchr(exe, '/')) != NULL; up++)
        *p = '\0';
    return xasprintf("%s/%s", exe, rel);
}

static int nprocs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* ---- Defaults, file, flags -------------------------------------------- */

/* Every setting the code names (enum cfg_key) has its entry in the table, at its index. */
static void test_cfg_every_key_has_its_table_entry(void **state)
{
    assert_int_equal(sizeof cfg_defs / sizeof cfg_defs[0], CFG_NKEYS);
    for (size_t i = 0; i < CFG_NKEYS; i++)
        assert_non_null(cfg_key_name(i));
    assert_null(cfg_key_name(CFG_NKEYS));
    assert_string_equal(cfg_key_name(CFG_KEY_LISTEN), "listen");
    assert_string_equal(cfg_key_name(CFG_KEY_SECRET), "secret");
    assert_string_equal(cfg_key_name(CFG_KEY_SECRET_FILE), "secret_file");
    assert_string_equal(cfg_key_name(CFG_KEY_PUBLISH_UIDS), "publish_uids");
    assert_string_equal(cfg_key_name(CFG_KEY_API_SOCKET_GROUP), "api_socket_group");
    assert_string_equal(cfg_key_name(CFG_KEY_GROUP), "group");
    assert_string_equal(cfg_key_name(CFG_KEY_ENGINE), "engine");
    assert_string_equal(cfg_key_name(CFG_KEY_REDIS_PASSWORD_FILE), "redis_password_file");
    assert_string_equal(cfg_key_name(CFG_NKEYS - 1), "metrics_listen");
}

/* A per-site setting lives in struct cfg_site, any other in struct cfg: never both. */
static void test_cfg_every_key_lives_at_its_level(void **state)
{
    size_t s = offsetof(struct cfg_build, s);

    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        int in_site = d->off >= s && d->off + d->width <= s + sizeof(struct cfg_site);
        int in_cfg = d->off + d->width <= sizeof(struct cfg);

        /* secret_file (per site) and redis_password_file (global) never reach a
         * snapshot: they resolve into secret and redis_password. */
        if (i == CFG_KEY_SECRET_FILE || i == CFG_KEY_REDIS_PASSWORD_FILE)
            continue;
        if ((d->flags & CFG_SITE) ? !in_site : !in_cfg)
            fail_msg("%s is %s but lives in struct %s", d->name,
                     d->flags & CFG_SITE ? "per site" : "global", in_site ? "cfg_site" : "cfg");
    }
}

static void test_cfg_defaults(void **state)
{
    struct cfg c;

    load_ok(&c, NULL);
    assert_string_equal(c.listen, "127.0.0.1:9601");
    assert_int_equal(c.listen_mode, 0666);
    assert_string_equal(c.sites[0]->ws_path, "/ws");
    assert_int_equal(c.workers, nprocs());
    assert_string_equal(c.sites[0]->secret, CFG_DEV_SECRET);
    assert_int_equal(c.sites[0]->secret_len, strlen(CFG_DEV_SECRET));
    assert_int_equal(c.sites[0]->dev_secret, 1);
    assert_int_equal(c.sites[0]->allow_anonymous, 0);
    assert_null(c.sites[0]->origins);
    assert_int_equal(c.sites[0]->norigins, 0);
    assert_int_equal(c.sites[0]->token_leeway, 30);
    assert_int_equal(c.max_header_size, 8192);
    assert_int_equal(c.handshake_timeout_ms, 10000);
    assert_int_equal(c.max_message_size, 1048576);
    assert_int_equal(c.ping_interval_ms, 30000);
    assert_string_equal(c.sites[0]->api_socket, "/tmp/herald.sock");
    assert_int_equal(c.sites[0]->api_socket_mode, 0660);
    assert_null(c.sites[0]->api_socket_group);
    assert_int_equal(c.api_threads, 4);
    assert_int_equal(c.sites[0]->api_max_body, 1048576);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.shutdown_timeout_ms, 5000);
    assert_string_equal(c.engine, "memory");
    assert_null(c.redis_address);
    assert_null(c.redis_password);
    assert_int_equal(c.redis_db, 0);
    assert_string_equal(c.redis_prefix, "herald:");
    assert_int_equal(c.redis_timeout_ms, 1000);
    assert_non_null(c.node_name); /* "<host>-<pid>": test_cfg_node_name */
    assert_null(c.file);
    cfg_free(&c);
    assert_null(c.listen);
    cfg_free(&c); /* a freed (zeroed) cfg may be freed again */
    cfg_free(NULL);
}

/* BOM, CRLF, indented keys, ';' and '#' comments, inline comments, "key: value". */
static void test_cfg_file_syntax(void **state)
{
    static const char ini[] = "\xEF\xBB\xBF; comment\r\n"
                              "# another comment\r\n"
                              "\r\n"
                              "[herald]\r\n"
                              "    workers = 2 ; inline comment\r\n"
                              "\tsecret = " GOOD_SECRET "\r\n"
                              "  # indented comment\r\n"
                              "group = a#b\r\n"
                              "api_threads: 7\r\n";
    char *path = tmp_write(ini, sizeof ini - 1);
    struct cfg c;

    load_ok(&c, "-c", path, NULL);
    assert_int_equal(c.workers, 2);
    assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
    assert_string_equal(c.group, "a#b"); /* '#' only starts a line comment */
    assert_int_equal(c.api_threads, 7);
    cfg_free(&c);
    tmp_remove(path);
}

static void test_cfg_flags_override_file(void **state)
{
    char *path = tmp_ini("[herald]\n"
                         "listen = 127.0.0.1:7000\n"
                         "workers = 2\n"
                         "log_level = warn\n"
                         "api_socket = /tmp/file.sock\n"
                         "api_threads = 9\n"
                         "secret_file = /nonexistent/secret\n");
    struct cfg c;
    char *cause;

    /* --secret replaces the file's secret_file, which is then never read */
    load_ok(&c, "--listen=0.0.0.0:7001", "-c", path, "--workers", "5", "--log-level", "error",
            "--api-socket", "/tmp/flag.sock", "--secret", GOOD_SECRET, NULL);
    assert_string_equal(c.listen, "0.0.0.0:7001");
    assert_int_equal(c.workers, 5);
    assert_int_equal(c.log_level, LOG_ERROR);
    assert_string_equal(c.sites[0]->api_socket, "/tmp/flag.sock");
    assert_int_equal(c.api_threads, 9); /* from the file: no flag */
    assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
    assert_int_equal(c.sites[0]->dev_secret, 0);
    cfg_free(&c);

    /* the last of a repeated flag wins */
    load_ok(&c, "-c", path, "--secret", GOOD_SECRET, "--workers", "1", "--workers", "4", NULL);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.log_level, LOG_WARN);
    cfg_free(&c);

    /* without the flag, the file's secret_file is read and fails */
    cause = load_err("-c", path, NULL);
    rename_file(cause, path);
    expect_cause(cause, "herald.ini:7: secret_file: cannot read /nonexistent/secret: "
                        "No such file or directory");
    tmp_remove(path);
}

static void test_cfg_workers_zero_is_cores(void **state)
{
    struct cfg c;

    load_ok(&c, "--workers", "0", NULL);
    assert_int_equal(c.workers, nprocs());
    assert_true(c.workers >= 1);
    cfg_free(&c);
    load_ok(&c, "--workers", "256", NULL);
    assert_int_equal(c.workers, 256);
    cfg_free(&c);
}

/* ---- Errors ----------------------------------------------------------- */

/* Unknown keys and sections, repeats, syntax: each named with its line. */
/* Channel patterns, RPC settings and hooks: parsed, resolved, and refused when inconsistent. */
static void test_cfg_channels_and_rpc(void **state)
{
    static const struct {
        const char *ini;
        const char *cause;
    } bad[] = {
        {"[herald]\nsecret = " GOOD_SECRET "\npublic_channels = news:* a*b\n",
         "herald.ini:3: public_channels: expected channel names or prefix* patterns of A-Z a-z "
         "0-9 _ . : @ / = + - (at most 128 bytes), got 'a*b'"},
        {"[herald]\nsecret = " GOOD_SECRET "\nrpc_hooks = connect leave\n",
         "herald.ini:3: rpc_hooks: expected connect, disconnect or subscribe, got 'leave'"},
        {"[herald]\nsecret = " GOOD_SECRET "\nrpc_script = rpc.php\n",
         "herald.ini:3: rpc_script: expected an absolute path to the PHP script, got 'rpc.php'"},
        {"[herald]\nsecret = " GOOD_SECRET "\nrpc_socket = unix:/run/php/fpm.sock\n",
         "herald.ini: rpc_socket and rpc_script go together: set both or neither"},
        {"[herald]\nsecret = " GOOD_SECRET "\nrpc_hooks = connect\n",
         "herald.ini: rpc_hooks needs rpc_socket and rpc_script"},
    };
    char *path = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\npublic_channels = news:*, lobby\n"
                         "presence_channels = room:*\nrpc_socket = 127.0.0.1:9000\n"
                         "rpc_script = /srv/app/rpc.php\nrpc_hooks = subscribe disconnect\n");
    struct cfg c;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_ini_error(bad[i].ini, NULL, bad[i].cause);
    load_ok(&c, "-c", path, NULL);
    assert_int_equal(c.sites[0]->npublic_channels, 2);
    assert_string_equal(c.sites[0]->public_channels[0], "news:*");
    assert_string_equal(c.sites[0]->public_channels[1], "lobby");
    assert_int_equal(c.sites[0]->npresence_channels, 1);
    assert_int_equal(c.sites[0]->nclient_publish, 0);
    assert_int_equal(c.sites[0]->max_subscriptions, 100);
    assert_string_equal(c.sites[0]->rpc_socket, "127.0.0.1:9000");
    assert_string_equal(c.sites[0]->rpc_script, "/srv/app/rpc.php");
    assert_int_equal(c.sites[0]->rpc_timeout_ms, 10000);
    assert_int_equal(c.sites[0]->hooks, CFG_HOOK_SUBSCRIBE | CFG_HOOK_DISCONNECT);
    cfg_free(&c);
    tmp_remove(path);
}

/* Limits, history and service settings: each bad value refused with its own line. */
static void test_cfg_limits_history_service(void **state)
{
    static const struct {
        const char *line;
        const char *cause;
    } bad[] = {
        {"trusted_proxies = 10.0.0.0/33",
         "trusted_proxies: expected unix, an IP address or ADDRESS/BITS, got '10.0.0.0/33'"},
        {"trusted_proxies = ::1/129",
         "trusted_proxies: expected unix, an IP address or ADDRESS/BITS, got '::1/129'"},
        {"trusted_proxies = 10.0.0.0/",
         "trusted_proxies: expected unix, an IP address or ADDRESS/BITS, got '10.0.0.0/'"},
        {"trusted_proxies = nginx.local",
         "trusted_proxies: expected unix, an IP address or ADDRESS/BITS, got 'nginx.local'"},
        {"history_file = history.json",
         "history_file: expected an absolute path, got 'history.json'"},
        {"command_burst = 0", "command_burst: must be from 1 to 1000000, got '0'"},
        {"history_ttl = 500ms", "history_ttl: must be from 1s to 24h, got '500ms'"},
        {"max_connections = -1", "max_connections: must be from 0 to 100000000, got '-1'"},
    };
    char *path = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\n"
                         "trusted_proxies = unix, 10.1.0.0/16 fd00::/8 192.0.2.7\n"
                         "history_file = /var/lib/herald/history.json\nhistory_size = 0\n"
                         "max_connections_per_ip = 200\ncommand_rate = 0\n");
    char ini[512];
    struct cfg c;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[512];

        snprintf(ini, sizeof ini, "[herald]\nsecret = " GOOD_SECRET "\n%s\n", bad[i].line);
        snprintf(want, sizeof want, "herald.ini:3: %s", bad[i].cause);
        expect_ini_error(ini, NULL, want);
    }
    load_ok(&c, "-c", path, NULL);
    assert_int_equal(c.ntrusted_proxies, 4);
    assert_string_equal(c.trusted_proxies[1], "10.1.0.0/16");
    assert_string_equal(c.history_file, "/var/lib/herald/history.json");
    assert_int_equal(c.history_size, 0);
    assert_int_equal(c.max_connections_per_ip, 200);
    assert_int_equal(c.sites[0]->command_rate, 0);
    assert_int_equal(c.sites[0]->command_burst, 100);
    cfg_free(&c);
    tmp_remove(path);
}

static void test_cfg_file_errors(void **state)
{
    static const struct {
        const char *ini;
        const char *cause;
    } cases[] = {
        {"workers = 2\n", "herald.ini:1: 'workers' is outside a section; put it under [herald]"},
        {"[herald]\nworkerz = 2\n", "herald.ini:2: unknown key 'workerz'"},
        {"[herald]\nWorkers = 2\n", "herald.ini:2: unknown key 'Workers'"},
        {"[herald]\nworkers = 1\n\n[foo]\n",
         "herald.ini:4: unknown section [foo] (only [herald] and [site NAME] are read)"},
        {"[foo]\nbar = 1\n",
         "herald.ini:1: unknown section [foo] (only [herald] and [site NAME] are read)"},
        {"[herald]\n[Herald]\n",
         "herald.ini:2: unknown section [Herald] (only [herald] and [site NAME] are read)"},
        {"[herald]\nworkers = 1\n; again\nworkers = 2\n",
         "herald.ini:4: repeated key 'workers' (first set on line 2)"},
        {"[herald]\nworkers = 1\n[herald]\nworkers = 1\n",
         "herald.ini:4: repeated key 'workers' (first set on line 2)"},
        {"[herald]\nsecret = " GOOD_SECRET "\nsecret_file = /etc/herald/secret\n",
         "herald.ini:3: secret_file: secret is already set on line 2; use one of them"},
        {"[herald]\nsecret_file = /etc/herald/secret\nsecret = " GOOD_SECRET "\n",
         "herald.ini:3: secret: secret_file is already set on line 2; use one of them"},
        {"[herald]\njunk\n",
         "herald.ini:2: expected 'key = value', '[herald]', '[site NAME]' or a comment"},
        {"[herald\nworkers = 1\n",
         "herald.ini:1: expected 'key = value', '[herald]', '[site NAME]' or a comment"},
        /* the first error wins, whichever kind it is */
        {"[herald]\njunk\nworkers = x\n",
         "herald.ini:2: expected 'key = value', '[herald]', '[site NAME]' or a comment"},
        {"[herald]\nworkers = x\njunk\n", "herald.ini:2: workers: expected an integer, got 'x'"},
        {"[herald]\nworkers = x\n[foo]\n", "herald.ini:2: workers: expected an integer, got 'x'"},
        /* inih would read an indented line as the previous value's continuation */
        {"[herald]\nallowed_origins = https://a.example\n    https://b.example\n",
         "herald.ini:3: unknown key 'https' (a value cannot continue on the next line)"},
    };
    char line[800];
    struct cfg c;
    char *path;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_ini_error(cases[i].ini, NULL, cases[i].cause);

    /* an overlong setting is refused, not split into several lines; a comment may be long */
    snprintf(line, sizeof line, "[herald]\n\nsecret = %0300d\n", 0);
    expect_ini_error(line, NULL, "herald.ini:3: line longer than 198 bytes");
    snprintf(line, sizeof line, "[herald]\n; %0300d\n # %0300d\nworkers = 1\n", 0, 0);
    path = tmp_ini(line);
    load_ok(&c, "-c", path, "--secret", GOOD_SECRET, NULL);
    assert_int_equal(c.workers, 1);
    cfg_free(&c);
    tmp_remove(path);

    expect_cause(load_err("-c", "/nonexistent/herald.ini", NULL),
                 "cannot open config file /nonexistent/herald.ini: No such file or directory");
}

static void test_cfg_flag_errors(void **state)
{
    expect_cause(load_err("--bogus", NULL), "unknown option '--bogus' (see --help)");
    expect_cause(load_err("-x", NULL), "unknown option '-x' (see --help)");
    expect_cause(load_err("--version=2", NULL), "unknown option '--version=2' (see --help)");
    expect_cause(load_err("--listen", NULL), "option '--listen' requires an argument");
    expect_cause(load_err("-c", NULL), "option '-c' requires an argument");
    expect_cause(load_err("--workers", "2", "extra", NULL),
                 "unexpected argument 'extra' (see --help)");
    expect_cause(load_err("--workers", "lots", NULL), "--workers: expected an integer, got 'lots'");
    expect_cause(load_err("--log-level", "trace", NULL),
                 "--log-level: expected debug, info, warn or error, got 'trace'");
    expect_cause(load_err("--api-socket", "x.sock", NULL),
                 "--api-socket: expected an absolute socket path, got 'x.sock'");
    expect_cause(load_err("--listen", "localhost", NULL),
                 "--listen: expected HOST:PORT or unix:/path, got 'localhost'");
    expect_cause(load_err("--secret", GOOD_SECRET, "--secret-file", "/x", NULL),
                 "--secret and --secret-file cannot be used together");
}

/* getopt keeps global state: a failed parse must not affect the next one. */
static void test_cfg_getopt_reset(void **state)
{
    struct cfg c;

    free(load_err("-xc", "/nonexistent", NULL));
    free(load_err("--workers", "2", "stray", NULL));
    load_ok(&c, "--workers", "3", NULL);
    assert_int_equal(c.workers, 3);
    cfg_free(&c);
    load_ok(&c, "--workers", "5", NULL);
    assert_int_equal(c.workers, 5);
    cfg_free(&c);
}

/* ---- Secret ----------------------------------------------------------- */

static void test_cfg_secret_dev_on_loopback(void **state)
{
    static const char *const listens[] = {"127.0.0.1:9601", "127.1.2.3:80", "[::1]:9601",
                                          "localhost:9601", "unix:/tmp/herald-ws.sock"};
    struct cfg c;

    for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++) {
        load_ok(&c, "--listen", listens[i], NULL);
        assert_int_equal(c.sites[0]->dev_secret, 1);
        assert_string_equal(c.sites[0]->secret, CFG_DEV_SECRET);
        cfg_free(&c);
    }
    /* naming the dev secret explicitly, on loopback without -c, is the same thing */
    load_ok(&c, "--secret", CFG_DEV_SECRET, NULL);
    assert_int_equal(c.sites[0]->dev_secret, 1);
    cfg_free(&c);
    /* a real secret is not the dev secret */
    load_ok(&c, "--secret", GOOD_SECRET, NULL);
    assert_int_equal(c.sites[0]->dev_secret, 0);
    assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
    cfg_free(&c);
}

static void test_cfg_secret_dev_refused_off_loopback(void **state)
{
    struct cfg c;

    expect_cause(load_err("--listen", "0.0.0.0:9601", NULL),
                 "no secret configured: set secret or secret_file (--secret, --secret-file) "
                 "to listen on 0.0.0.0:9601");
    expect_cause(load_err("--listen", "[::]:9601", NULL),
                 "no secret configured: set secret or secret_file (--secret, --secret-file) "
                 "to listen on [::]:9601");
    expect_cause(load_err("--listen", "10.0.0.1:9601", "--secret", CFG_DEV_SECRET, NULL),
                 "--secret: the development secret is public and only accepted on a loopback "
                 "listen address");
    load_ok(&c, "--listen", "0.0.0.0:9601", "--secret", GOOD_SECRET, NULL);
    assert_int_equal(c.sites[0]->dev_secret, 0);
    cfg_free(&c);
}

static void test_cfg_secret_dev_refused_with_file(void **state)
{
    char *empty = tmp_ini("[herald]\n");
    char *dev = tmp_ini("[herald]\nsecret = " CFG_DEV_SECRET "\n");
    char *cause;

    cause = load_err("-c", empty, NULL);
    rename_file(cause, empty);
    expect_cause(cause, "herald.ini: no secret configured: set secret or secret_file");
    cause = load_err("-c", dev, NULL);
    rename_file(cause, dev);
    expect_cause(cause, "herald.ini:2: secret: the development secret is public; "
                        "set one of your own");
    cause = load_err("-c", empty, "--secret", CFG_DEV_SECRET, NULL);
    expect_cause(cause, "--secret: the development secret is public; set one of your own");
    tmp_remove(empty);
    tmp_remove(dev);
}

static void test_cfg_secret_short(void **state)
{
    char *path = tmp_ini("[herald]\n\nsecret = 0123456789abcde\n");
    char *cause;
    struct cfg c;

    expect_cause(load_err("--secret", "short", NULL), "--secret: secret must be at least 16 bytes");
    cause = load_err("-c", path, NULL);
    rename_file(cause, path);
    expect_cause(cause, "herald.ini:3: secret: secret must be at least 16 bytes");
    load_ok(&c, "-c", path, "--secret", "0123456789abcdef", NULL); /* 16 bytes is enough */
    assert_int_equal(c.sites[0]->secret_len, 16);
    cfg_free(&c);
    tmp_remove(path);
}

static void test_cfg_secret_file(void **state)
{
    static const struct {
        const char *content;
        size_t len;
        const char *secret;
    } ok[] = {
        {GOOD_SECRET "\n", sizeof GOOD_SECRET, GOOD_SECRET},
        {GOOD_SECRET "\r\n", sizeof GOOD_SECRET + 1, GOOD_SECRET},
        {GOOD_SECRET, sizeof GOOD_SECRET - 1, GOOD_SECRET},
        {GOOD_SECRET "\n\n", sizeof GOOD_SECRET + 1, GOOD_SECRET "\n"}, /* only one newline */
        {" " GOOD_SECRET " \n", sizeof GOOD_SECRET + 2, " " GOOD_SECRET " "},
    };
    struct cfg c;
    char *cause, *ini;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *sf = tmp_write(ok[i].content, ok[i].len);

        load_ok(&c, "--secret-file", sf, NULL);
        assert_int_equal(c.sites[0]->secret_len, strlen(ok[i].secret));
        assert_memory_equal(c.sites[0]->secret, ok[i].secret, c.sites[0]->secret_len);
        assert_int_equal(c.sites[0]->dev_secret, 0);
        cfg_free(&c);
        tmp_remove(sf);
    }

    /* from the file, and a flag's --secret-file replacing the file's secret */
    {
        char *sf = tmp_ini(GOOD_SECRET "\n");
        char buf[256];

        snprintf(buf, sizeof buf, "[herald]\nsecret_file = %s\n", sf);
        ini = tmp_ini(buf);
        load_ok(&c, "-c", ini, NULL);
        assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
        cfg_free(&c);
        tmp_remove(ini);
        ini = tmp_ini("[herald]\nsecret = short\n");
        load_ok(&c, "-c", ini, "--secret-file", sf, NULL);
        assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
        cfg_free(&c);
        tmp_remove(ini);
        tmp_remove(sf);
    }

    {
        char *sf = tmp_ini("\n");

        cause = load_err("--secret-file", sf, NULL);
        rename_file(cause, sf);
        expect_cause(cause, "--secret-file: herald.ini is empty");
        tmp_remove(sf);
        sf = tmp_ini("");
        cause = load_err("--secret-file", sf, NULL);
        rename_file(cause, sf);
        expect_cause(cause, "--secret-file: herald.ini is empty");
        tmp_remove(sf);
        sf = tmp_ini("tooshort\n");
        expect_cause(load_err("--secret-file", sf, NULL),
                     "--secret-file: secret must be at least 16 bytes");
        tmp_remove(sf);
    }
    expect_cause(load_err("--secret-file", "/nonexistent/secret", NULL),
                 "--secret-file: cannot read /nonexistent/secret: No such file or directory");
    ini = tmp_ini("[herald]\nsecret_file = /nonexistent/secret\n");
    cause = load_err("-c", ini, NULL);
    rename_file(cause, ini);
    expect_cause(cause, "herald.ini:2: secret_file: cannot read /nonexistent/secret: "
                        "No such file or directory");
    tmp_remove(ini);
}

/* ---- The Redis engine (issue #13) ------------------------------------- */

/* engine = redis and its keys, from the file and from flags; redis needs an address. */
static void test_cfg_redis_engine(void **state)
{
    char *path = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\nengine = redis\n"
                         "redis_address = 10.0.0.5:6379\nredis_db = 3\nredis_prefix = shop:\n"
                         "redis_timeout = 250ms\nnode_name = web-1\n");
    char *memory = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\n");
    char *cause;
    struct cfg c;

    load_ok(&c, "-c", path, NULL);
    assert_string_equal(c.engine, "redis");
    assert_string_equal(c.redis_address, "10.0.0.5:6379");
    assert_null(c.redis_password);
    assert_int_equal(c.redis_db, 3);
    assert_string_equal(c.redis_prefix, "shop:");
    assert_int_equal(c.redis_timeout_ms, 250);
    assert_string_equal(c.node_name, "web-1");
    cfg_free(&c);

    /* the flags, over the file and alone */
    load_ok(&c, "-c", memory, "--engine", "redis", "--redis-address", "unix:/run/redis.sock",
            "--redis-db", "1", "--redis-prefix", "h:", "--redis-timeout", "2s", "--node-name",
            "a.b_c-d", NULL);
    assert_string_equal(c.engine, "redis");
    assert_string_equal(c.redis_address, "unix:/run/redis.sock");
    assert_int_equal(c.redis_db, 1);
    assert_string_equal(c.redis_prefix, "h:");
    assert_int_equal(c.redis_timeout_ms, 2000);
    assert_string_equal(c.node_name, "a.b_c-d");
    cfg_free(&c);
    load_ok(&c, "-c", path, "--engine", "memory", "--redis-address", "[::1]:6380", NULL);
    assert_string_equal(c.engine, "memory");
    assert_string_equal(c.redis_address, "[::1]:6380");
    cfg_free(&c);
    load_ok(&c, "--engine=redis", "--redis-address=localhost:6379", NULL);
    assert_string_equal(c.redis_address, "localhost:6379");
    cfg_free(&c);

    /* engine = redis needs redis_address, said where engine was set */
    expect_ini_error(
        "[herald]\nsecret = " GOOD_SECRET "\n\nengine = redis\n", NULL,
        "herald.ini:4: engine: engine = redis needs redis_address (or redis_sentinels)");
    expect_cause(load_err("--engine", "redis", NULL),
                 "--engine: engine = redis needs redis_address (or redis_sentinels)");
    cause = load_err("-c", path, "--redis-address", "", NULL);
    rename_file(cause, path);
    expect_cause(cause,
                 "herald.ini:3: engine: engine = redis needs redis_address (or redis_sentinels)");

    /* a check's refusal names the flag (each check's messages: test_cfg_value.c) */
    expect_cause(load_err("--engine", "Redis", NULL),
                 "--engine: expected memory or redis, got 'Redis'");

    /* global: a site may not set them */
    expect_ini_error("[site a]\nsecret = " GOOD_SECRET "\nengine = redis\n", NULL,
                     "herald.ini:3: engine is global: set it under [herald]");
    expect_ini_error("[site a]\nsecret = " GOOD_SECRET "\nredis_prefix = a:\n", NULL,
                     "herald.ini:3: redis_prefix is global: set it under [herald]");
    tmp_remove(path);
    tmp_remove(memory);
}

/* redis_password_file: its first line, without the line break; never echoed. */
static void test_cfg_redis_password_file(void **state)
{
    static const struct {
        const char *content;
        const char *password;
    } ok[] = {
        {"s3cret pass\n", "s3cret pass"},    {"s3cret\r\n", "s3cret"},   {"s3cret", "s3cret"},
        {"s3cret\nsecond line\n", "s3cret"}, {" s3cret \n", " s3cret "},
    };
    static const struct {
        const char *content;
        const char *cause; /* after "--redis-password-file: " */
    } bad[] = {
        {"", "herald.ini is empty"},
        {"\n", "herald.ini is empty"},
        {"\r\n", "herald.ini is empty"},
        {"\nsecret\n", "the first line of herald.ini is empty: the password goes there"},
    };
    char big[1100], buf[256];
    char *pf, *ini, *cause;
    struct cfg c;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        pf = tmp_ini(ok[i].content);
        load_ok(&c, "--redis-password-file", pf, NULL);
        assert_string_equal(c.redis_password, ok[i].password);
        cfg_free(&c);
        assert_null(c.redis_password);
        tmp_remove(pf);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[256];

        pf = tmp_ini(bad[i].content);
        cause = load_err("--redis-password-file", pf, NULL);
        rename_file(cause, pf);
        snprintf(want, sizeof want, "--redis-password-file: %s", bad[i].cause);
        expect_cause(cause, want);
        tmp_remove(pf);
    }
    /* 1k is the most; a NUL would cut the password short */
    memset(big, 'p', 1024);
    pf = tmp_write(big, 1024);
    load_ok(&c, "--redis-password-file", pf, NULL);
    assert_int_equal(strlen(c.redis_password), 1024);
    cfg_free(&c);
    tmp_remove(pf);
    pf = tmp_write(big, 1025);
    cause = load_err("--redis-password-file", pf, NULL);
    rename_file(cause, pf);
    expect_cause(cause, "--redis-password-file: herald.ini is larger than 1k");
    tmp_remove(pf);
    pf = tmp_write("pa\0ss\n", 6);
    cause = load_err("--redis-password-file", pf, NULL);
    rename_file(cause, pf);
    expect_cause(cause, "--redis-password-file: the password in herald.ini holds a NUL byte");
    tmp_remove(pf);

    /* from the file; a missing file is named with the line that names it */
    pf = tmp_ini("from-file\n");
    snprintf(buf, sizeof buf, "[herald]\nsecret = " GOOD_SECRET "\nredis_password_file = %s\n", pf);
    ini = tmp_ini(buf);
    load_ok(&c, "-c", ini, NULL);
    assert_string_equal(c.redis_password, "from-file");
    cfg_free(&c);
    tmp_remove(ini);
    tmp_remove(pf);
    ini = tmp_ini("[herald]\nsecret = " GOOD_SECRET "\nredis_password_file = /nonexistent/pw\n");
    cause = load_err("-c", ini, NULL);
    rename_file(cause, ini);
    expect_cause(cause, "herald.ini:3: redis_password_file: cannot read /nonexistent/pw: "
                        "No such file or directory");
    tmp_remove(ini);
    expect_cause(load_err("--redis-password-file", "/nonexistent/pw", NULL),
                 "--redis-password-file: cannot read /nonexistent/pw: No such file or directory");
    expect_cause(load_err("--redis-password-file", "pw.txt", NULL),
                 "--redis-password-file: expected an absolute path, got 'pw.txt'");
}

/* An unset node_name is "<host>-<pid>", the host name cut at its first '.'. */
static void test_cfg_node_name(void **state)
{
    char host[256] = "", want[128], *p;
    struct cfg c;
    size_t n;

    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    n = strcspn(host, ".");
    host[n > 53 ? 53 : n] = '\0';
    for (p = host; *p != '\0'; p++)
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", *p) == NULL)
            *p = '-';
    snprintf(want, sizeof want, "%s-%ld", host[0] != '\0' ? host : "herald", (long)getpid());
    load_ok(&c, NULL);
    assert_string_equal(c.node_name, want);
    assert_null(strchr(c.node_name, '.'));
    assert_true(strlen(c.node_name) <= 64);
    cfg_free(&c);
    load_ok(&c, "--node-name", "", NULL); /* empty is unset */
    assert_string_equal(c.node_name, want);
    cfg_free(&c);

    expect_ini_error("[herald]\nnode_name = web/1\n", NULL,
                     "herald.ini:2: node_name: expected 1 to 64 of A-Z a-z 0-9 . _ -, "
                     "got 'web/1'");
    expect_cause(load_err("--node-name",
                          "n2345678901234567890123456789012345678901234567890123456789012345",
                          NULL),
                 "--node-name: expected 1 to 64 of A-Z a-z 0-9 . _ -, "
                 "got 'n2345678901234567890123456789012345678901234567890123456789012345'");
}

/* A reload keeps the running engine, Redis and node settings: they need a restart. */
static void test_cfg_redis_reload(void **state)
{
    char *pw1 = tmp_ini("one\n"), *pw2 = tmp_ini("two\n");
    struct cfg a, b;

    load_ok(&a, "--engine", "redis", "--redis-address", "127.0.0.1:6379", "--redis-password-file",
            pw1, "--node-name", "n1", NULL);
    load_ok(&b, "--redis-address", "127.0.0.1:6380", "--redis-password-file", pw2, "--redis-prefix",
            "x:", "--redis-timeout", "5s", "--redis-db", "2", NULL);
    /* engine, node_name, redis_address, redis_db, redis_prefix, redis_timeout, the password */
    assert_int_equal(cfg_keep_restart_only(&a, &b), 7);
    assert_string_equal(b.engine, "redis");
    assert_string_equal(b.node_name, "n1");
    assert_string_equal(b.redis_address, "127.0.0.1:6379");
    assert_string_equal(b.redis_password, "one");
    assert_int_equal(b.redis_db, 0);
    assert_string_equal(b.redis_prefix, "herald:");
    assert_int_equal(b.redis_timeout_ms, 1000);
    assert_int_equal(cfg_keep_restart_only(&a, &b), 0);
    cfg_free(&b);
    load_ok(&b, "--engine", "redis", "--redis-address", "127.0.0.1:6379", "--node-name", "n1",
            NULL);
    assert_int_equal(cfg_keep_restart_only(&a, &b), 1); /* a password, where there was none */
    assert_string_equal(b.redis_password, "one");
    assert_int_equal(cfg_keep_restart_only(&b, &a), 0);
    cfg_free(&a);
    cfg_free(&b);
    tmp_remove(pw1);
    tmp_remove(pw2);
}

/* ---- Actions ---------------------------------------------------------- */

static void test_cfg_check_config(void **state)
{
    char *argv[] = {"herald", "--check-config", "--workers", "2", NULL};
    char *bad = tmp_ini("[herald]\nworkers = many\n");
    enum cfg_action action = CFG_RUN;
    char *cause = NULL;
    struct cfg c;

    assert_int_equal(cfg_load(4, argv, &c, &action, &cause), 0);
    assert_int_equal(action, CFG_CHECK);
    assert_null(cause);
    assert_int_equal(c.workers, 2);
    cfg_free(&c);
    cause = load_err("--check-config", "-c", bad, NULL);
    assert_non_null(strstr(cause, ":2: workers: expected an integer, got 'many'"));
    free(cause);
    tmp_remove(bad);
}

static void test_cfg_version_help(void **state)
{
    static const char *const flags[] = {"-c, --config FILE",
                                        "--listen HOST:PORT|unix:PATH",
                                        "--api-socket PATH",
                                        "--secret SECRET",
                                        "--secret-file FILE",
                                        "--workers N",
                                        "--log-level LEVEL",
                                        "--check-config",
                                        "--version",
                                        "--help",
                                        "docs/config.md",
                                        "herald.ini.example",
                                        "--engine memory|redis",
                                        "--redis-address HOST:PORT|unix:PATH",
                                        "--redis-password-file FILE",
                                        "--node-name NAME"};
    enum cfg_action action = CFG_RUN;
    char *out;
    int r;

    out = load_capture(&r, &action, "--version");
    assert_int_equal(r, 0);
    assert_int_equal(action, CFG_EXIT_OK);
    assert_string_equal(out, "herald 0.1.0\n");
    free(out);

    action = CFG_RUN;
    out = load_capture(&r, &action, "--help");
    assert_int_equal(r, 0);
    assert_int_equal(action, CFG_EXIT_OK);
    assert_true(strncmp(out, "usage: herald", 13) == 0);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strstr(out, flags[i]) == NULL)
            fail_msg("--help does not mention '%s':\n%s", flags[i], out);
    free(out);
}

/* ---- Several sites ---------------------------------------------------- */

#define SECRET_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SECRET_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TWO_SITES                                                                                  \
    "[herald]\nworkers = 3\npublic_channels = news\nrpc_timeout = 2s\n"                            \
    "[site shop]\nsecret = " SECRET_A "\nhost = Shop.Example.com\n"                                \
    "api_socket = /run/herald/shop.sock\npublish_uids = root 33\n"                                 \
    "[site blog]\nsecret = " SECRET_B "\nws_path = /live\n"                                        \
    "api_socket = /run/herald/blog.sock\npublic_channels = posts:*\n"

/* Each site is the [herald] values with its own on top; the sites keep the file's order. */
static void test_cfg_sites(void **state)
{
    char *path = tmp_ini(TWO_SITES);
    struct cfg c;
    const struct cfg_site *shop, *blog;

    load_ok(&c, "-c", path, NULL);
    assert_int_equal(c.nsites, 2);
    assert_true(c.explicit_sites);
    assert_int_equal(c.workers, 3);
    shop = c.sites[0];
    blog = c.sites[1];
    assert_string_equal(shop->site, "shop");
    assert_string_equal(blog->site, "blog");
    assert_int_equal(cfg_site_index(&c, "blog"), 1);
    assert_int_equal(cfg_site_index(&c, "none"), -1);
    assert_memory_equal(shop->secret, SECRET_A, shop->secret_len);
    assert_memory_equal(blog->secret, SECRET_B, blog->secret_len);
    assert_string_equal(shop->host, "Shop.Example.com");
    assert_null(blog->host);
    assert_string_equal(shop->ws_path, "/ws");
    assert_string_equal(blog->ws_path, "/live");
    assert_string_equal(shop->api_socket, "/run/herald/shop.sock");
    /* inherited from [herald], or replaced by the site */
    assert_int_equal(shop->npublic_channels, 1);
    assert_string_equal(shop->public_channels[0], "news");
    assert_string_equal(blog->public_channels[0], "posts:*");
    assert_int_equal(shop->rpc_timeout_ms, 2000);
    assert_int_equal(blog->rpc_timeout_ms, 2000);
    /* publish_uids: a name is looked up, a number taken as it is */
    assert_int_equal(shop->nuids, 2);
    assert_int_equal(shop->uids[0], 0);
    assert_int_equal(shop->uids[1], 33);
    assert_int_equal(blog->nuids, 0);
    /* a flag for a per-site key wins in every site */
    cfg_free(&c);
    load_ok(&c, "-c", path, "--public-channels", "all", NULL);
    assert_string_equal(c.sites[0]->public_channels[0], "all");
    assert_string_equal(c.sites[1]->public_channels[0], "all");
    cfg_free(&c);
    tmp_remove(path);
}

/* No [site] section: one site, "default", holding the [herald] values. */
static void test_cfg_default_site(void **state)
{
    struct cfg c;

    load_ok(&c, "--secret", GOOD_SECRET, "--public-channels", "news", NULL);
    assert_int_equal(c.nsites, 1);
    assert_false(c.explicit_sites);
    assert_string_equal(c.sites[0]->site, "default");
    assert_string_equal(c.sites[0]->secret, GOOD_SECRET);
    assert_string_equal(c.sites[0]->public_channels[0], "news");
    assert_string_equal(c.sites[0]->api_socket, c.sites[0]->api_socket);
    cfg_free(&c);
    load_ok(&c, NULL);
    assert_true(c.sites[0]->dev_secret);
    cfg_free(&c);
}

static void test_cfg_site_errors(void **state)
{
    static const struct {
        const char *ini;
        const char *cause;
    } cases[] = {
        {"[herald]\n[site a]\nlisten = 127.0.0.1:1\n",
         "herald.ini:3: listen is global: set it under [herald]"},
        {"[herald]\n[site a]\nworkerz = 1\n", "herald.ini:3: unknown key 'workerz'"},
        {"[herald]\n[site]\n",
         "herald.ini:2: [site]: a site's name is 1 to 32 of a-z, 0-9, _ and -"},
        {"[herald]\n[site Shop]\n",
         "herald.ini:2: [site Shop]: a site's name is 1 to 32 of a-z, 0-9, _ and -"},
        {"[sites a]\n",
         "herald.ini:1: unknown section [sites a] (only [herald] and [site NAME] are read)"},
        {"[site a]\nsecret = " SECRET_A "\n[site a]\n",
         "herald.ini:3: [site a] is already defined on line 1"},
        {"[site a]\nsecret = " SECRET_A "\nsecret = " SECRET_A "\n",
         "herald.ini:3: repeated key 'secret' (first set on line 2)"},
        {"[site a]\nsecret = " SECRET_A "\nsecret_file = /x\n",
         "herald.ini:3: secret_file: secret is already set on line 2; use one of them"},
        {"[site a]\nws_path = /a\n",
         "herald.ini: [site a]: no secret configured: set secret or secret_file in it "
         "(each site has its own)"},
        {"[site a]\nsecret = short\n", "herald.ini:2: secret: secret must be at least 16 bytes"},
        {"[site a]\nsecret = " SECRET_A "\nmax_subscriptions = 0\n",
         "herald.ini:3: max_subscriptions: must be from 1 to 100000, got '0'"},
        {"[site a]\nsecret = " SECRET_A "\npublish_uids = no-such-user-here\n",
         "herald.ini:3: publish_uids: no user named 'no-such-user-here'"},
        {"[site a]\nsecret = " SECRET_A "\nhost = a.example:8080\n",
         "herald.ini:3: host: expected a host name such as shop.example.com (no port), "
         "got 'a.example:8080'"},
        {"[site a]\nsecret = " SECRET_A "\n[site b]\nsecret = " SECRET_B "\n",
         "herald.ini: [site b] has the same api_socket as [site a] (/tmp/herald.sock): each "
         "site needs its own"},
        {"[site a]\nsecret = " SECRET_A "\napi_socket = /tmp/a\n[site b]\nsecret = " SECRET_B
         "\napi_socket = /tmp/b\n",
         "herald.ini: [site a] and [site b] both answer ws_path /ws for any host: give them "
         "different host or ws_path values"},
        {"[site a]\nsecret = " SECRET_A "\napi_socket = /tmp/a\nhost = x.example\n[site b]\n"
         "secret = " SECRET_B "\napi_socket = /tmp/b\nhost = X.example\n",
         "herald.ini: [site a] and [site b] both answer ws_path /ws for host x.example: give "
         "them different host or ws_path values"},
        {"[herald]\nsecret = " SECRET_A "\n[site a]\napi_socket = /tmp/a\nws_path = /a\n"
         "secret = " SECRET_B "\n[site b]\napi_socket = /tmp/b\n",
         "herald.ini: [site b]: no secret configured: set secret or secret_file in it "
         "(each site has its own)"},
        {"[site a]\nsecret = " SECRET_A "\napi_socket = /tmp/a\nws_path = /a\n"
         "[site b]\nsecret = " SECRET_A "\napi_socket = /tmp/b\n",
         "herald.ini: [site a] and [site b] have the same secret: a token of one would open "
         "the other; give each its own"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_ini_error(cases[i].ini, NULL, cases[i].cause);
}

/* A reload keeps each site's restart-only values, and needs the same sites. */
static void test_cfg_sites_reload(void **state)
{
    char *path = tmp_ini(TWO_SITES);
    char *moved = tmp_ini("[site blog]\nsecret = " SECRET_B "\napi_socket = /tmp/b\n"
                          "[site shop]\nsecret = " SECRET_A "\napi_socket = /tmp/s\n"
                          "ws_path = /s\n");
    char *changed = tmp_ini("[herald]\nworkers = 3\n"
                            "[site shop]\nsecret = " SECRET_B "\nhost = shop.example.com\n"
                            "api_socket = /run/herald/other.sock\n"
                            "[site blog]\nsecret = " SECRET_A "\nws_path = /live\n"
                            "api_socket = /run/herald/blog.sock\n");
    struct cfg a, b, c;
    char *cause = NULL;

    load_ok(&a, "-c", path, NULL);
    load_ok(&b, "-c", moved, NULL);
    assert_false(cfg_same_sites(&a, &b, &cause));
    assert_non_null(strstr(cause, "needs a restart"));
    free(cause);
    load_ok(&c, "-c", changed, NULL);
    assert_true(cfg_same_sites(&a, &c, &cause));
    assert_int_equal(cfg_keep_restart_only(&a, &c), 2); /* shop's host and api_socket */
    assert_string_equal(c.sites[0]->api_socket, "/run/herald/shop.sock");
    assert_string_equal(c.sites[0]->host, "Shop.Example.com");
    assert_memory_equal(c.sites[0]->secret, SECRET_B, c.sites[0]->secret_len); /* reloadable */
    cfg_free(&a);
    cfg_free(&b);
    cfg_free(&c);
    tmp_remove(path);
    tmp_remove(moved);
    tmp_remove(changed);
}

/* ---- Documentation in sync with the table ----------------------------- */

/* Is key set as "key =" at the start of a line of text? */
static int names_key(const char *text, const char *key)
{
    size_t n = strlen(key);

    for (const char *p = text; (p = strstr(p, key)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && strncmp(p + n, " =", 2) == 0)
            return 1;
    return 0;
}

static void test_cfg_example_file(void **state)
{
    char *path = repo_file("herald.ini.example");
    char *text = slurp(path);
    struct cfg ex, def;
    size_t i;

    for (i = 0; cfg_key_name(i) != NULL; i++)
        if (!names_key(text, cfg_key_name(i)))
            fail_msg("herald.ini.example does not set '%s'", cfg_key_name(i));
    assert_true(i >= 20);
    free(text);

    /* it loads, and every value in it is the built-in default */
    load_ok(&ex, "-c", path, "--secret", GOOD_SECRET, NULL);
    load_ok(&def, "--secret", GOOD_SECRET, NULL);
    assert_string_equal(ex.listen, def.listen);
    assert_int_equal(ex.listen_mode, def.listen_mode);
    assert_string_equal(ex.sites[0]->ws_path, def.sites[0]->ws_path);
    assert_int_equal(ex.workers, def.workers);
    assert_string_equal(ex.sites[0]->secret, def.sites[0]->secret);
    assert_int_equal(ex.sites[0]->allow_anonymous, def.sites[0]->allow_anonymous);
    assert_int_equal(ex.sites[0]->norigins, def.sites[0]->norigins);
    assert_int_equal(ex.sites[0]->token_leeway, def.sites[0]->token_leeway);
    assert_int_equal(ex.max_header_size, def.max_header_size);
    assert_int_equal(ex.handshake_timeout_ms, def.handshake_timeout_ms);
    assert_int_equal(ex.max_message_size, def.max_message_size);
    assert_int_equal(ex.ping_interval_ms, def.ping_interval_ms);
    assert_string_equal(ex.sites[0]->api_socket, def.sites[0]->api_socket);
    assert_int_equal(ex.sites[0]->api_socket_mode, def.sites[0]->api_socket_mode);
    assert_null(ex.sites[0]->api_socket_group);
    assert_int_equal(ex.api_threads, def.api_threads);
    assert_int_equal(ex.sites[0]->api_max_body, def.sites[0]->api_max_body);
    assert_int_equal(ex.log_level, def.log_level);
    assert_int_equal(ex.shutdown_timeout_ms, def.shutdown_timeout_ms);
    assert_string_equal(ex.engine, def.engine);
    assert_string_equal(ex.node_name, def.node_name);
    assert_null(ex.redis_address);
    assert_null(ex.redis_password);
    assert_int_equal(ex.redis_db, def.redis_db);
    assert_string_equal(ex.redis_prefix, def.redis_prefix);
    assert_int_equal(ex.redis_timeout_ms, def.redis_timeout_ms);
    assert_null(ex.metrics_listen);
    cfg_free(&ex);
    cfg_free(&def);
    free(path);
}

static void test_cfg_docs_name_every_key(void **state)
{
    char *path = repo_file("docs/config.md");
    char *text = slurp(path);
    char row[64];

    for (size_t i = 0; cfg_key_name(i) != NULL; i++) {
        snprintf(row, sizeof row, "| `%s` |", cfg_key_name(i));
        if (strstr(text, row) == NULL)
            fail_msg("docs/config.md has no row for '%s'", cfg_key_name(i));
    }
    free(text);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_every_key_has_its_table_entry),
        cmocka_unit_test(test_cfg_every_key_lives_at_its_level),
        cmocka_unit_test(test_cfg_defaults),
        cmocka_unit_test(test_cfg_file_syntax),
        cmocka_unit_test(test_cfg_flags_override_file),
        cmocka_unit_test(test_cfg_workers_zero_is_cores),
        cmocka_unit_test(test_cfg_channels_and_rpc),
        cmocka_unit_test(test_cfg_limits_history_service),
        cmocka_unit_test(test_cfg_file_errors),
        cmocka_unit_test(test_cfg_flag_errors),
        cmocka_unit_test(test_cfg_getopt_reset),
        cmocka_unit_test(test_cfg_secret_dev_on_loopback),
        cmocka_unit_test(test_cfg_secret_dev_refused_off_loopback),
        cmocka_unit_test(test_cfg_secret_dev_refused_with_file),
        cmocka_unit_test(test_cfg_secret_short),
        cmocka_unit_test(test_cfg_secret_file),
        cmocka_unit_test(test_cfg_redis_engine),
        cmocka_unit_test(test_cfg_redis_password_file),
        cmocka_unit_test(test_cfg_node_name),
        cmocka_unit_test(test_cfg_redis_reload),
        cmocka_unit_test(test_cfg_check_config),
        cmocka_unit_test(test_cfg_version_help),
        cmocka_unit_test(test_cfg_example_file),
        cmocka_unit_test(test_cfg_docs_name_every_key),
        cmocka_unit_test(test_cfg_sites),
        cmocka_unit_test(test_cfg_default_site),
        cmocka_unit_test(test_cfg_site_errors),
        cmocka_unit_test(test_cfg_sites_reload),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

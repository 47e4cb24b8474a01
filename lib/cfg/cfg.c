/*
 * cfg.c -- configuration: one table of settings, cfg_defs[] (indexed by
 * enum cfg_key, so code names a setting by a constant), drives the
 * built-in defaults, the INI file, the command-line flags, validation and
 * --help, in the manner of Redis src/config.c static_configs[].
 * docs/config.md and herald.ini.example document the same table; test_cfg.c
 * checks that both name every key and that the example holds the defaults.
 * What a single value means ("8k", "30s", "0660", a listen address) is
 * decided by the parsers and validators of cfg_value.c, which the table
 * points at; this file decides which setting uses which, and where it came from.
 * The sources are read by cfg_file.c (-c FILE) and cfg_flags.c (argv), and
 * cfg_resolve.c settles what depends on the machine or on other settings;
 * this file stores every value, builds the sites and answers a reload.
 *
 * Owns:       the table, and the building of one snapshot: a struct cfg
 *             (the process's settings) holding a struct cfg_site per site.
 *             Each setting lives at one level: per site (CFG_SITE, in
 *             struct cfg_site, its [herald] value the default every site
 *             starts from) or global (struct cfg); test_cfg.c checks it.
 * Called by:  main.c at startup, and on SIGHUP for a new snapshot
 *             (cfg_load, then cfg_same_sites and cfg_keep_restart_only).
 * Invariants: main thread only. At startup no other thread exists yet; on
 *             SIGHUP the workers run, but no other thread sees the snapshot
 *             being built until main.c hands it over. Every value, defaults
 *             included, goes through the same parser (cfg_set_value), so a
 *             default is written as a user would write it. Settings apply
 *             in order: defaults, then -c FILE, then flags.
 * Errors:     cfg_load returns -1 with *cause set to one malloc'd line,
 *             "FILE:LINE: key: what is wrong" for the file and
 *             "--flag: what is wrong" for flags. Secrets are never echoed.
 *             Nothing is printed and exit() is never called; only --help
 *             and --version write to stdout (cfg_flags.c).
 * Tests:      tests/unit/test_cfg.c (loading), tests/unit/test_cfg_value.c
 *             (each parser and validator, and its message through cfg_load).
 */
#include "cfg.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg_build.h"
#include "cfg_value.h"
#include "log.h"
#include "xmalloc.h"

#define CFG_DEFAULT_SITE "default" /* the one site of a file without [site] sections */

#define CFG_AT(f) .off = offsetof(struct cfg_build, f), .width = sizeof(((struct cfg_build *)0)->f)

/* clang-format off */
const struct cfg_def cfg_defs[CFG_NKEYS] = {
    [CFG_KEY_LISTEN] = {.name = "listen", .type = CFG_STRING, .def = "127.0.0.1:9601",
        CFG_AT(c.listen), .flag = "listen", .metavar = "HOST:PORT|unix:PATH",
        .check = cfg_check_listen, .help = "WebSocket address: HOST:PORT or unix:/path"},
    [CFG_KEY_LISTEN_MODE] = {.name = "listen_mode", .type = CFG_MODE, .min = 0, .max = 0777,
        .def = "0666", CFG_AT(c.listen_mode), .help = "permissions of a unix: listen socket"},
    [CFG_KEY_WS_PATH] = {.name = "ws_path", .type = CFG_STRING, .def = "/ws", .flags = CFG_SITE,
        CFG_AT(s.ws_path), .check = cfg_check_ws_path,
        .help = "URL path of the WebSocket endpoint"},
    [CFG_KEY_WORKERS] = {.name = "workers", .type = CFG_INT, .min = 0, .max = CFG_WORKERS_MAX,
        .def = "0", CFG_AT(c.workers), .flag = "workers", .metavar = "N",
        .help = "worker threads; 0 = one per CPU core"},
    [CFG_KEY_SECRET] = {.name = "secret", .type = CFG_STRING, .def = "", CFG_AT(s.secret),
        .flags = CFG_ONE_OF | CFG_RELOAD | CFG_SITE, .flag = "secret", .metavar = "SECRET",
        .help = "HS256 key for tokens, at least 16 bytes"},
    [CFG_KEY_SECRET_FILE] = {.name = "secret_file", .type = CFG_STRING, .def = "",
        CFG_AT(secret_file), .flags = CFG_ONE_OF | CFG_RELOAD | CFG_SITE, .flag = "secret-file",
        .metavar = "FILE", .help = "read the secret from this file"},
    [CFG_KEY_ALLOW_ANONYMOUS] = {.name = "allow_anonymous", .type = CFG_BOOL, .def = "no",
        CFG_AT(s.allow_anonymous), .flags = CFG_RELOAD | CFG_SITE,
        .help = "accept connections without a token (broadcasts only)"},
    [CFG_KEY_ALLOWED_ORIGINS] = {.name = "allowed_origins", .type = CFG_LIST, .def = "",
        CFG_AT(s.origins), .aux = offsetof(struct cfg_build, s.norigins),
        .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_origin,
        .help = "exact Origin values, space/comma separated; empty = any"},
    [CFG_KEY_TOKEN_LEEWAY] = {.name = "token_leeway", .type = CFG_SECONDS, .min = 0,
        .max = 10 * CFG_MINUTE, .def = "30s", CFG_AT(s.token_leeway),
        .flags = CFG_RELOAD | CFG_SITE, .help = "clock skew allowed on a token's exp and nbf"},
    [CFG_KEY_MAX_HEADER_SIZE] = {.name = "max_header_size", .type = CFG_SIZE, .min = CFG_K,
        .max = 64 * CFG_K, .def = "8k", CFG_AT(c.max_header_size), .flags = CFG_RELOAD,
        .help = "largest handshake request head; over it -> 431"},
    [CFG_KEY_HANDSHAKE_TIMEOUT] = {.name = "handshake_timeout", .type = CFG_MSEC, .min = 100,
        .max = 10 * CFG_MINUTE, .def = "10s", CFG_AT(c.handshake_timeout_ms), .flags = CFG_RELOAD,
        .help = "time allowed for the handshake; then 408 and close"},
    [CFG_KEY_MAX_MESSAGE_SIZE] = {.name = "max_message_size", .type = CFG_SIZE, .min = 125,
        .max = CFG_K * CFG_K * CFG_K, .def = "1M", CFG_AT(c.max_message_size), .flags = CFG_RELOAD,
        .help = "largest frame or reassembled message; over it -> close 1009"},
    [CFG_KEY_MAX_QUEUED_BYTES] = {.name = "max_queued_bytes", .type = CFG_SIZE, .min = CFG_K,
        .max = CFG_K * CFG_K * CFG_K, .def = "4M", CFG_AT(c.max_queued_bytes), .flags = CFG_RELOAD,
        .help = "unsent bytes a connection may have; over it -> close 1008"},
    [CFG_KEY_PING_INTERVAL] = {.name = "ping_interval", .type = CFG_MSEC, .min = CFG_SECOND,
        .max = CFG_HOUR, .def = "30s", CFG_AT(c.ping_interval_ms),
        .flags = CFG_RELOAD | CFG_ZERO_OK,
        .help = "server ping period; 2 silent periods close; 0 = no pings"},
    [CFG_KEY_API_SOCKET] = {.name = "api_socket", .type = CFG_STRING, .def = "/tmp/herald.sock",
        .flags = CFG_SITE, CFG_AT(s.api_socket), .flag = "api-socket", .metavar = "PATH",
        .check = cfg_check_socket_path, .help = "Unix socket of the FastCGI publish API"},
    [CFG_KEY_API_SOCKET_MODE] = {.name = "api_socket_mode", .type = CFG_MODE, .min = 0, .max = 0777,
        .def = "0660", .flags = CFG_SITE, CFG_AT(s.api_socket_mode),
        .help = "permissions of the api socket"},
    [CFG_KEY_API_SOCKET_GROUP] = {.name = "api_socket_group", .type = CFG_STRING, .def = "",
        .flags = CFG_SITE, CFG_AT(s.api_socket_group),
        .help = "group name for the api socket; empty = the daemon's group"},
    [CFG_KEY_HOST] = {.name = "host", .type = CFG_STRING, .def = "", CFG_AT(s.host),
        .flags = CFG_SITE, .check = cfg_check_host,
        .help = "the Host (no port) this site's WebSocket answers; empty = any host"},
    [CFG_KEY_PUBLISH_UIDS] = {.name = "publish_uids", .type = CFG_LIST, .def = "",
        CFG_AT(s.publish_uids), .aux = offsetof(struct cfg_build, s.npublish_uids),
        .flags = CFG_SITE | CFG_RELOAD, .check = cfg_check_uid,
        .help = "users or uids allowed to use the api socket (SO_PEERCRED); empty = any"},
    [CFG_KEY_API_THREADS] = {.name = "api_threads", .type = CFG_INT, .min = 1, .max = 64,
        .def = "4", CFG_AT(c.api_threads),
        .help = "FastCGI request threads; several sites: half each at most"},
    [CFG_KEY_API_MAX_CONNECTIONS] = {.name = "api_max_connections", .type = CFG_INT, .min = 1,
        .max = 100000, .def = "64", CFG_AT(s.api_max_connections), .flags = CFG_RELOAD | CFG_SITE,
        .help = "connections one caller (uid) may hold on a site's API socket; more are closed"},
    [CFG_KEY_API_MAX_BODY] = {.name = "api_max_body", .type = CFG_SIZE, .min = CFG_K,
        .max = 64 * CFG_K * CFG_K, .def = "1M", CFG_AT(s.api_max_body),
        .flags = CFG_RELOAD | CFG_SITE, .help = "largest API request body; over it -> 413"},
    [CFG_KEY_LOG_LEVEL] = {.name = "log_level", .type = CFG_LEVEL, .def = "info",
        CFG_AT(c.log_level), .flags = CFG_RELOAD, .flag = "log-level", .metavar = "LEVEL",
        .help = "lowest level logged: debug, info, warn or error"},
    [CFG_KEY_SHUTDOWN_TIMEOUT] = {.name = "shutdown_timeout", .type = CFG_MSEC, .min = 0,
        .max = 60 * CFG_SECOND, .def = "5s", CFG_AT(c.shutdown_timeout_ms), .flags = CFG_RELOAD,
        .help = "how long shutdown waits for connections to close"},
    [CFG_KEY_PUBLIC_CHANNELS] = {.name = "public_channels", .type = CFG_LIST, .def = "",
        CFG_AT(s.public_channels), .aux = offsetof(struct cfg_build, s.npublic_channels),
        .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_pattern, .flag = "public-channels",
        .metavar = "PATTERNS",
        .help = "channels anyone may subscribe to: names or prefix* patterns"},
    [CFG_KEY_CLIENT_PUBLISH] = {.name = "client_publish", .type = CFG_LIST, .def = "",
        CFG_AT(s.client_publish), .aux = offsetof(struct cfg_build, s.nclient_publish),
        .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_pattern, .flag = "client-publish",
        .metavar = "PATTERNS", .help = "channels whose subscribers may publish into them"},
    [CFG_KEY_PRESENCE_CHANNELS] = {.name = "presence_channels", .type = CFG_LIST, .def = "",
        .flags = CFG_SITE, CFG_AT(s.presence_channels),
        .aux = offsetof(struct cfg_build, s.npresence_channels), .check = cfg_check_pattern,
        .flag = "presence-channels", .metavar = "PATTERNS",
        .help = "channels that track their members and send join/leave"},
    [CFG_KEY_MAX_SUBSCRIPTIONS] = {.name = "max_subscriptions", .type = CFG_INT, .min = 1,
        .max = 100000, .def = "100", CFG_AT(s.max_subscriptions), .flags = CFG_RELOAD | CFG_SITE,
        .help = "channels per connection"},
    [CFG_KEY_RPC_SOCKET] = {.name = "rpc_socket", .type = CFG_STRING, .def = "",
        CFG_AT(s.rpc_socket), .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_rpc_socket,
        .flag = "rpc-socket", .metavar = "ADDR",
        .help = "php-fpm for RPC and hooks: unix:/path or HOST:PORT"},
    [CFG_KEY_RPC_SCRIPT] = {.name = "rpc_script", .type = CFG_STRING, .def = "",
        CFG_AT(s.rpc_script), .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_script,
        .flag = "rpc-script", .metavar = "PATH",
        .help = "absolute path of the PHP script that answers RPC and hooks"},
    [CFG_KEY_RPC_TIMEOUT] = {.name = "rpc_timeout", .type = CFG_MSEC, .min = 100,
        .max = 10 * CFG_MINUTE, .def = "10s", CFG_AT(s.rpc_timeout_ms),
        .flags = CFG_RELOAD | CFG_SITE, .help = "time allowed for one PHP call"},
    [CFG_KEY_RPC_MAX_PER_CONN] = {.name = "rpc_max_per_conn", .type = CFG_INT, .min = 1,
        .max = 10000, .def = "8", CFG_AT(s.rpc_max_per_conn), .flags = CFG_RELOAD | CFG_SITE,
        .help = "RPC calls in flight per connection; more -> rpc_busy"},
    [CFG_KEY_RPC_MAX_INFLIGHT] = {.name = "rpc_max_inflight", .type = CFG_INT, .min = 1,
        .max = 100000, .def = "256", CFG_AT(s.rpc_max_inflight), .flags = CFG_RELOAD | CFG_SITE,
        .help = "PHP calls in flight for a site, hooks included"},
    [CFG_KEY_RPC_HOOKS] = {.name = "rpc_hooks", .type = CFG_LIST, .def = "", CFG_AT(s.rpc_hooks),
        .aux = offsetof(struct cfg_build, s.nrpc_hooks), .flags = CFG_RELOAD | CFG_SITE,
        .check = cfg_check_hook, .flag = "rpc-hooks", .metavar = "HOOKS",
        .help = "PHP calls on events: connect, disconnect, subscribe"},
    [CFG_KEY_HISTORY_SIZE] = {.name = "history_size", .type = CFG_INT, .min = 0, .max = 100000,
        .def = "100", CFG_AT(c.history_size),
        .help = "messages kept per user and channel for recovery; 0 = none"},
    [CFG_KEY_HISTORY_TTL] = {.name = "history_ttl", .type = CFG_SECONDS, .min = CFG_SECOND,
        .max = 24 * CFG_HOUR, .def = "5m", CFG_AT(c.history_ttl),
        .help = "how long a message is kept for recovery"},
    [CFG_KEY_HISTORY_MAX_BYTES] = {.name = "history_max_bytes", .type = CFG_SIZE,
        .min = CFG_K * CFG_K, .max = 64 * CFG_K * CFG_K * CFG_K, .def = "64M",
        CFG_AT(s.history_max_bytes), .flags = CFG_SITE,
        .help = "memory for a site's kept messages; over it the oldest go first"},
    [CFG_KEY_HISTORY_FILE] = {.name = "history_file", .type = CFG_STRING, .def = "",
        CFG_AT(c.history_file), .check = cfg_check_abs_path, .flag = "history-file",
        .metavar = "PATH",
        .help = "where history is kept across a clean restart (SIGTERM); empty = not kept"},
    [CFG_KEY_MAX_CONNECTIONS] = {.name = "max_connections", .type = CFG_INT, .min = 0,
        .max = 100000000, .def = "0", CFG_AT(c.max_connections), .flags = CFG_RELOAD,
        .help = "open WebSockets in total; over it -> 503; 0 = no limit"},
    [CFG_KEY_MAX_CONNECTIONS_PER_IP] = {.name = "max_connections_per_ip", .type = CFG_INT, .min = 0,
        .max = 100000000, .def = "0", CFG_AT(c.max_connections_per_ip), .flags = CFG_RELOAD,
        .help = "open WebSockets per client address; over it -> 429; 0 = no limit"},
    [CFG_KEY_CONNECT_RATE] = {.name = "connect_rate", .type = CFG_INT, .min = 0, .max = 1000000,
        .def = "20", CFG_AT(c.connect_rate), .flags = CFG_RELOAD,
        .help = "new WebSockets per second per client address; over it -> 429; 0 = no limit"},
    [CFG_KEY_CONNECT_BURST] = {.name = "connect_burst", .type = CFG_INT, .min = 1, .max = 1000000,
        .def = "200", CFG_AT(c.connect_burst), .flags = CFG_RELOAD,
        .help = "new WebSockets a client address may open at once above connect_rate"},
    [CFG_KEY_TRUSTED_PROXIES] = {.name = "trusted_proxies", .type = CFG_LIST,
        .def = "127.0.0.1 ::1 unix", CFG_AT(c.trusted_proxies),
        .aux = offsetof(struct cfg_build, c.ntrusted_proxies), .flags = CFG_RELOAD,
        .check = cfg_check_proxy,
        .help = "peers whose X-Forwarded-For names the client: addresses, CIDRs, unix"},
    [CFG_KEY_COMMAND_RATE] = {.name = "command_rate", .type = CFG_INT, .min = 0, .max = 1000000,
        .def = "50", CFG_AT(s.command_rate), .flags = CFG_RELOAD | CFG_SITE,
        .help = "browser commands per second per connection; over it -> rate_limited"},
    [CFG_KEY_COMMAND_BURST] = {.name = "command_burst", .type = CFG_INT, .min = 1, .max = 1000000,
        .def = "100", CFG_AT(s.command_burst), .flags = CFG_RELOAD | CFG_SITE,
        .help = "browser commands a connection may send at once above command_rate"},
    [CFG_KEY_USER] = {.name = "user", .type = CFG_STRING, .def = "", CFG_AT(c.user), .flag = "user",
        .metavar = "USER",
        .help = "switch to this user once the sockets are bound (start as root)"},
    [CFG_KEY_GROUP] = {.name = "group", .type = CFG_STRING, .def = "", CFG_AT(c.group),
        .flag = "group", .metavar = "GROUP",
        .help = "and to this group (default: the user's primary group)"},
    [CFG_KEY_ENGINE] = {.name = "engine", .type = CFG_STRING, .def = "memory", CFG_AT(c.engine),
        .flag = "engine", .metavar = "memory|redis", .check = cfg_check_engine,
        .help = "memory: this node alone; redis: nodes sharing one Redis are one cluster"},
    [CFG_KEY_NODE_NAME] = {.name = "node_name", .type = CFG_STRING, .def = "",
        CFG_AT(c.node_name), .flag = "node-name", .metavar = "NAME", .check = cfg_check_node_name,
        .help = "this node's name in the cluster; empty = HOSTNAME-PID"},
    [CFG_KEY_REDIS_ADDRESS] = {.name = "redis_address", .type = CFG_STRING, .def = "",
        CFG_AT(c.redis_address), .flag = "redis-address", .metavar = "HOST:PORT|unix:PATH",
        .check = cfg_check_redis_address,
        .help = "the Redis of engine = redis: IP:PORT, [IPv6]:PORT, localhost:PORT or unix:/path"},
    [CFG_KEY_REDIS_PASSWORD_FILE] = {.name = "redis_password_file", .type = CFG_STRING,
        .def = "", CFG_AT(redis_password_file), .flag = "redis-password-file", .metavar = "FILE",
        .check = cfg_check_abs_path, .help = "read the Redis AUTH password from this file"},
    [CFG_KEY_REDIS_DB] = {.name = "redis_db", .type = CFG_INT, .min = 0, .max = 1000, .def = "0",
        CFG_AT(c.redis_db), .flag = "redis-db", .metavar = "N",
        .help = "the Redis database (SELECT) Herald's keys live in"},
    [CFG_KEY_REDIS_PREFIX] = {.name = "redis_prefix", .type = CFG_STRING, .def = "herald:",
        CFG_AT(c.redis_prefix), .flag = "redis-prefix", .metavar = "PREFIX",
        .check = cfg_check_redis_prefix,
        .help = "starts every Redis key; same Redis and prefix = same cluster"},
    [CFG_KEY_REDIS_TIMEOUT] = {.name = "redis_timeout", .type = CFG_MSEC, .min = 10,
        .max = 60 * CFG_SECOND, .def = "1s", CFG_AT(c.redis_timeout_ms), .flag = "redis-timeout",
        .metavar = "DURATION",
        .help = "a Redis command's deadline; a slower answer drops the connection"},
    [CFG_KEY_REDIS_SENTINELS] = {.name = "redis_sentinels", .type = CFG_LIST, .def = "",
        CFG_AT(c.redis_sentinels), .aux = offsetof(struct cfg_build, c.nredis_sentinels),
        .flag = "redis-sentinels", .metavar = "ADDRS", .check = cfg_check_redis_sentinel,
        .help = "Sentinels to ask for the master, instead of redis_address: IP:PORT, ..."},
    [CFG_KEY_REDIS_SENTINEL_MASTER] = {.name = "redis_sentinel_master", .type = CFG_STRING,
        .def = "", CFG_AT(c.redis_sentinel_master), .flag = "redis-sentinel-master",
        .metavar = "NAME", .check = cfg_check_node_name,
        .help = "the master's name the Sentinels watch (redis_sentinels)"},
    [CFG_KEY_METRICS_LISTEN] = {.name = "metrics_listen", .type = CFG_STRING, .def = "",
        CFG_AT(c.metrics_listen), .flag = "metrics-listen", .metavar = "HOST:PORT",
        .check = cfg_check_tcp_listen,
        .help = "serve Prometheus' GET /metrics here (every site); empty = off"},
};
/* clang-format on */

const char *cfg_key_name(size_t i)
{
    return i < CFG_NKEYS ? cfg_defs[i].name : NULL;
}

const struct cfg_def *cfg_def_find(const char *name)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (strcmp(cfg_defs[i].name, name) == 0)
            return &cfg_defs[i];
    return NULL;
}

/* ---- Value parsers ---------------------------------------------------- */

/*
 * The parsers are in cfg_value.c. These three give the size, duration and
 * log level parsers the signature of the others, for cfg_types[].
 */
static int parse_size_ll(const char *s, long long *out)
{
    uint64_t v;

    if (cfg_parse_size(s, &v) < 0)
        return -1;
    *out = v > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)v;
    return 0;
}

static int parse_ms_ll(const char *s, long long *out)
{
    int64_t v;

    if (cfg_parse_duration_ms(s, &v) < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_level(const char *s, long long *out)
{
    *out = log_level_parse(s);
    return *out < 0 ? -1 : 0;
}

/* How each numeric type is parsed, what a malformed value is told, and whether min..max apply. */
static const struct {
    int (*parse)(const char *s, long long *out);
    const char *expected;
    int ranged;
} cfg_types[] = {
    [CFG_BOOL] = {cfg_parse_bool, "expected yes or no (true/false, on/off, 1/0)", 0},
    [CFG_INT] = {cfg_parse_int, "expected an integer", 1},
    [CFG_SIZE] = {parse_size_ll, "expected a size such as 64k or 1M", 1},
    [CFG_MSEC] = {parse_ms_ll, "expected a duration such as 500ms, 30s, 5m or 1h", 1},
    [CFG_SECONDS] = {parse_ms_ll, "expected a duration such as 30s or 2m", 1},
    [CFG_MODE] = {cfg_parse_mode, "expected an octal mode such as 0660", 1},
    [CFG_LEVEL] = {parse_level, "expected debug, info, warn or error", 0},
};

/* Write a number in the type's unit the way a user would: "64k", "1M", "10s", "0660". */
static void fmt_value(const struct cfg_def *d, long long v, char *buf, size_t size)
{
    static const char *const suffix[2][4] = {{"G", "M", "k", ""}, {"h", "m", "s", "ms"}};
    static const long long unit[2][4] = {{CFG_K * CFG_K * CFG_K, CFG_K * CFG_K, CFG_K, 1},
                                         {CFG_HOUR, CFG_MINUTE, CFG_SECOND, 1}};
    int t = d->type == CFG_SIZE ? 0 : 1;
    size_t i = 0;

    if (v != 0 && d->type == CFG_MODE) {
        snprintf(buf, size, "0%llo", v);
        return;
    }
    if (v == 0 || (d->type != CFG_SIZE && d->type != CFG_MSEC && d->type != CFG_SECONDS)) {
        snprintf(buf, size, "%lld", v);
        return;
    }
    while (v % unit[t][i] != 0)
        i++;
    snprintf(buf, size, "%lld%s", v / unit[t][i], suffix[t][i]);
}

/* ---- Storing values --------------------------------------------------- */

/* Store a non-negative number in an int, mode_t, size_t or uint64_t field. */
static void store_num(void *p, size_t width, unsigned long long v)
{
    uint64_t v64 = v;
    uint32_t v32 = (uint32_t)v;

    memcpy(p, width == sizeof v64 ? (void *)&v64 : (void *)&v32, width);
}

/* Split on blanks and commas, check each item, and store the list in place of the old one. */
static int store_list(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why)
{
    char ***listp = (char ***)((char *)b + d->off);
    size_t *np = (size_t *)((char *)b + d->aux);
    char **list;
    size_t n;

    if (cfg_parse_list(v, d->check, &list, &n, why) < 0)
        return -1;
    cfg_free_list(*listp, *np);
    *listp = list;
    *np = n;
    return 0;
}

/* Is v allowed by the entry's range? */
static int in_range(const struct cfg_def *d, long long v)
{
    if (v == 0 && (d->flags & CFG_ZERO_OK))
        return 1;
    return v >= d->min && v <= d->max;
}

/* Set a string setting: checked, "" stores NULL. */
static int string_set(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why)
{
    char **field = (char **)((char *)b + d->off);

    if (d->check != NULL && d->check(v, why) < 0)
        return -1;
    free(*field);
    *field = *v != '\0' ? xstrdup(v) : NULL;
    return 0;
}

/* Set a numeric setting: parsed by its type, within its range, in its unit. */
static int number_set(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why)
{
    char lo[32], hi[32];
    long long n;

    if (cfg_types[d->type].parse(v, &n) < 0) {
        *why = xasprintf("%s, got '%s'", cfg_types[d->type].expected, v);
        return -1;
    }
    if (cfg_types[d->type].ranged && !in_range(d, n)) {
        fmt_value(d, d->min, lo, sizeof lo);
        fmt_value(d, d->max, hi, sizeof hi);
        *why = xasprintf("must be %sfrom %s to %s, got '%s'",
                         d->flags & CFG_ZERO_OK ? "0 (off) or " : "", lo, hi, v);
        return -1;
    }
    if (d->type == CFG_SECONDS) {
        if (n % CFG_SECOND != 0) {
            *why = xasprintf("must be whole seconds, got '%s'", v);
            return -1;
        }
        n /= CFG_SECOND;
    }
    store_num((char *)b + d->off, d->width, (unsigned long long)n);
    return 0;
}

const struct cfg_def *cfg_one_of_conflict(const struct cfg_build *b, const struct cfg_def *d,
                                          int src)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_def *o = &cfg_defs[i];

        if (o != d && (o->flags & CFG_ONE_OF) && b->src[i] == src &&
            *(char *const *)((const char *)b + o->off) != NULL)
            return o;
    }
    return NULL;
}

/* ---- Copies ----------------------------------------------------------- */

/*
 * A setting's field is found by its offset in struct cfg_build (d->off).
 * In a snapshot it lies in struct cfg (a process setting: c comes first in
 * struct cfg_build, so the offset is the same) or in struct cfg_site (a
 * site's: the offset less where s lies); secret_file and
 * redis_password_file lie in the build alone. A list's count (d->aux) lies
 * in the same struct as its items, so the ops below take the field itself
 * and find the count beside it.
 */
enum cfg_home {
    CFG_IN_CFG,   /* struct cfg */
    CFG_IN_SITE,  /* struct cfg_site */
    CFG_IN_BUILD, /* struct cfg_build only */
};

static enum cfg_home home_of(const struct cfg_def *d)
{
    size_t s = offsetof(struct cfg_build, s);

    if (d->off + d->width <= sizeof(struct cfg))
        return CFG_IN_CFG;
    if (d->off >= s && d->off + d->width <= s + sizeof(struct cfg_site))
        return CFG_IN_SITE;
    return CFG_IN_BUILD;
}

/* Setting d's field in a snapshot part: a struct cfg, or a struct cfg_site for a site's. */
static void *field_in(const struct cfg_def *d, const void *part)
{
    size_t off = home_of(d) == CFG_IN_SITE ? d->off - offsetof(struct cfg_build, s) : d->off;

    return (char *)part + off;
}

/* A list's count, beside its items (f is the items' field). */
static size_t *count_of(const struct cfg_def *d, const void *f)
{
    return (size_t *)((char *)f + (d->aux - d->off));
}

static int string_same(const struct cfg_def *d, const void *fa, const void *fb)
{
    const char *sa = *(char *const *)fa;
    const char *sb = *(char *const *)fb;

    (void)d;
    return (sa == NULL && sb == NULL) || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
}

static void string_copy(const struct cfg_def *d, const void *fa, void *fb)
{
    const char *sa = *(char *const *)fa;

    (void)d;
    free(*(char **)fb);
    *(char **)fb = sa != NULL ? xstrdup(sa) : NULL;
}

static void string_free(const struct cfg_def *d, void *f)
{
    (void)d;
    free(*(char **)f);
    *(char **)f = NULL;
}

static int list_same(const struct cfg_def *d, const void *fa, const void *fb)
{
    char *const *la = *(char **const *)fa;
    char *const *lb = *(char **const *)fb;
    size_t na = *count_of(d, fa);

    if (na != *count_of(d, fb))
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(la[i], lb[i]) != 0)
            return 0;
    return 1;
}

static void list_copy(const struct cfg_def *d, const void *fa, void *fb)
{
    char *const *la = *(char **const *)fa;
    size_t na = *count_of(d, fa);
    char **copy = na > 0 ? xcalloc(na, sizeof *copy) : NULL;

    for (size_t i = 0; i < na; i++)
        copy[i] = xstrdup(la[i]);
    cfg_free_list(*(char ***)fb, *count_of(d, fb));
    *(char ***)fb = copy;
    *count_of(d, fb) = na;
}

static void list_free(const struct cfg_def *d, void *f)
{
    cfg_free_list(*(char ***)f, *count_of(d, f));
    *(char ***)f = NULL;
    *count_of(d, f) = 0;
}

static int number_same(const struct cfg_def *d, const void *fa, const void *fb)
{
    return memcmp(fa, fb, d->width) == 0;
}

static void number_copy(const struct cfg_def *d, const void *fa, void *fb)
{
    memcpy(fb, fa, d->width);
}

static void number_free(const struct cfg_def *d, void *f)
{
    (void)d;
    (void)f;
}

/*
 * What each kind of value does (Redis config.c's typeInterface): every
 * operation on a setting goes through its type's entry, never a switch.
 */
struct cfg_type_ops {
    int (*set)(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why);
    int (*same)(const struct cfg_def *d, const void *fa, const void *fb);
    void (*copy)(const struct cfg_def *d, const void *fa, void *fb);
    void (*free)(const struct cfg_def *d, void *f);
};

static const struct cfg_type_ops string_ops = {string_set, string_same, string_copy, string_free};
static const struct cfg_type_ops list_ops = {store_list, list_same, list_copy, list_free};
static const struct cfg_type_ops number_ops = {number_set, number_same, number_copy, number_free};

static const struct cfg_type_ops *const cfg_type_ops[] = {
    [CFG_STRING] = &string_ops,  [CFG_LIST] = &list_ops,   [CFG_BOOL] = &number_ops,
    [CFG_INT] = &number_ops,     [CFG_SIZE] = &number_ops, [CFG_MSEC] = &number_ops,
    [CFG_SECONDS] = &number_ops, [CFG_MODE] = &number_ops, [CFG_LEVEL] = &number_ops,
};

_Static_assert(sizeof cfg_type_ops / sizeof cfg_type_ops[0] == CFG_NTYPES,
               "every value type has its operations");

int cfg_set_value(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why)
{
    return cfg_type_ops[d->type]->set(b, d, v, why);
}

/* Copy every setting, and where it came from, of a build that is not yet resolved. */
static void build_copy(const struct cfg_build *a, struct cfg_build *b)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_def *d = &cfg_defs[i];

        cfg_type_ops[d->type]->copy(d, (const char *)a + d->off, (char *)b + d->off);
        b->src[i] = a->src[i];
        b->line[i] = a->line[i];
    }
    b->file = a->file;
}

/* Free every setting of one part of a snapshot (home says which) that lies in part. */
static void free_part(void *part, enum cfg_home home)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (home_of(&cfg_defs[i]) == home)
            cfg_type_ops[cfg_defs[i].type]->free(&cfg_defs[i], field_in(&cfg_defs[i], part));
}

/* Free a password read from a file (redis_password), wiped first, and forget it. */
static void free_password(char **pw)
{
    if (*pw != NULL)
        explicit_bzero(*pw, strlen(*pw));
    free(*pw);
    *pw = NULL;
}

/* Free one site's settings, the secret wiped first. */
static void cfg_site_free(struct cfg_site *s)
{
    if (s->secret != NULL)
        explicit_bzero(s->secret, s->secret_len);
    free_part(s, CFG_IN_SITE);
    free(s->site);
    free(s->uids);
    memset(s, 0, sizeof *s);
}

/* ---- Sites ------------------------------------------------------------ */

/* Free a build and everything it holds (its snapshot too, unless handed over). */
static void build_free(struct cfg_build *b)
{
    for (size_t i = 0; i < b->nsites; i++) {
        for (size_t k = 0; k < b->sites[i].npairs; k++)
            free(b->sites[i].pairs[k].value);
        free(b->sites[i].pairs);
    }
    free(b->sites);
    cfg_free(&b->c);
    cfg_site_free(&b->s);
    free(b->secret_file);
    free(b->redis_password_file);
    free(b->buf);
    free(b->err);
    if (b->fp != NULL)
        fclose(b->fp);
    memset(b, 0, sizeof *b);
}

/* Hand b's site over to a new struct cfg_site named name; b's is left empty. */
static struct cfg_site *take_site(struct cfg_build *b, const char *name)
{
    struct cfg_site *s = xmalloc(sizeof *s);

    *s = b->s;
    memset(&b->s, 0, sizeof b->s);
    free(s->site);
    s->site = xstrdup(name);
    return s;
}

/*
 * Build one [site NAME]: the [herald] values (b, not yet resolved), the
 * site's own lines on top, the flags of per-site keys on top of those, then
 * resolved like a whole configuration. Returns the site, or NULL with *cause.
 */
static struct cfg_site *build_site(const struct cfg_build *b, const struct cfg_site_src *src,
                                   const struct cfg_pending *pend, size_t npend, char **cause)
{
    struct cfg_build sb = {0};
    struct cfg_site *site = NULL;
    char *why;

    build_copy(b, &sb);
    sb.site = src->name;
    sb.peek = b->peek;
    /* A secret shared through [herald] would let one site's tokens open another:
     * a site starts without one, so resolve_secret (cfg_resolve.c) asks for its own. */
    if (sb.s.secret != NULL)
        explicit_bzero(sb.s.secret, strlen(sb.s.secret));
    for (size_t o = 0; o < CFG_NKEYS; o++)
        if (cfg_defs[o].flags & CFG_ONE_OF)
            cfg_set_value(&sb, &cfg_defs[o], "", &why);
    for (size_t k = 0; k < src->npairs; k++) {
        const struct cfg_pair *p = &src->pairs[k];
        size_t i = (size_t)(p->d - cfg_defs);

        if (cfg_set_value(&sb, p->d, p->value, &why) < 0) {
            *cause = xasprintf("%s:%d: %s: %s", b->file, p->line, p->d->name, why);
            free(why);
            goto done;
        }
        sb.src[i] = CFG_SRC_FILE;
        sb.line[i] = p->line;
    }
    if (cfg_flags_apply(&sb, pend, npend, 1, cause) < 0 || cfg_resolve(&sb, cause) < 0)
        goto done;
    site = take_site(&sb, src->name);
done:
    build_free(&sb);
    return site;
}

/* Do sites a and b answer the same WebSocket requests? */
static int same_endpoint(const struct cfg_site *a, const struct cfg_site *b)
{
    if (strcmp(a->ws_path, b->ws_path) != 0)
        return 0;
    return (a->host == NULL && b->host == NULL) ||
           (a->host != NULL && b->host != NULL && strcasecmp(a->host, b->host) == 0);
}

/* What no two sites may share: API socket, endpoint, secret. Returns 0, or -1 with *cause. */
static int check_sites(const struct cfg *c, const char *file, char **cause)
{
    for (size_t i = 0; i < c->nsites; i++)
        for (size_t j = 0; j < i; j++) {
            const struct cfg_site *a = c->sites[j], *b = c->sites[i];

            if (strcmp(a->api_socket, b->api_socket) == 0)
                *cause = xasprintf("%s: [site %s] has the same api_socket as [site %s] (%s): "
                                   "each site needs its own",
                                   file, b->site, a->site, a->api_socket);
            else if (same_endpoint(a, b))
                *cause = xasprintf("%s: [site %s] and [site %s] both answer ws_path %s for %s%s: "
                                   "give them different host or ws_path values",
                                   file, a->site, b->site, a->ws_path,
                                   a->host ? "host " : "any host", a->host ? a->host : "");
            else if (a->secret != NULL && b->secret != NULL && a->secret_len == b->secret_len &&
                     memcmp(a->secret, b->secret, a->secret_len) == 0)
                *cause = xasprintf("%s: [site %s] and [site %s] have the same secret: a token "
                                   "of one would open the other; give each its own",
                                   file, a->site, b->site);
            if (*cause != NULL)
                return -1;
        }
    return 0;
}

/*
 * Settle the sites: each [site NAME] built on the [herald] values; without
 * any, the [herald] values resolved are the one site, "default".
 */
static int build_sites(struct cfg_build *b, const struct cfg_pending *pend, size_t npend,
                       char **cause)
{
    struct cfg *c = &b->c;

    if (b->nsites == 0) {
        if (cfg_resolve(b, cause) < 0)
            return -1;
        c->sites = xcalloc(1, sizeof *c->sites);
        c->sites[0] = take_site(b, CFG_DEFAULT_SITE);
        c->nsites = 1;
        return 0;
    }
    c->explicit_sites = 1;
    c->sites = xcalloc(b->nsites, sizeof *c->sites);
    for (size_t i = 0; i < b->nsites; i++) {
        c->sites[i] = build_site(b, &b->sites[i], pend, npend, cause);
        if (c->sites[i] == NULL)
            return -1;
        c->nsites++;
    }
    return check_sites(c, b->file, cause);
}

/* Set every setting to its default, through the same parser as the file. */
static int load_defaults(struct cfg_build *b, char **cause)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        char *why;

        if (cfg_set_value(b, &cfg_defs[i], cfg_defs[i].def, &why) < 0) {
            *cause = xasprintf("built-in default of %s: %s", cfg_defs[i].name, why);
            free(why);
            return -1;
        }
        b->src[i] = CFG_SRC_DEFAULT;
    }
    return 0;
}

/* cfg_load, or with peek cfg_load_peek's reading: no private file, no group membership. */
static int load(int argc, char **argv, struct cfg *out, enum cfg_action *action, int peek,
                char **cause)
{
    struct cfg_build b = {0};
    struct cfg_pending *pend = xcalloc((size_t)argc + 1, sizeof *pend);
    size_t npend = 0;
    const char *file = NULL;
    int r;

    memset(out, 0, sizeof *out);
    *action = CFG_RUN;
    *cause = NULL;
    r = cfg_flags_scan(argc, argv, &file, pend, &npend, action, cause);
    if (r != 0) {
        free(pend);
        if (r > 0)
            *action = CFG_EXIT_OK;
        return r > 0 ? 0 : -1;
    }
    b.file = file;
    b.peek = peek;
    if (load_defaults(&b, cause) < 0 || (file != NULL && cfg_file_load(&b, cause) < 0) ||
        cfg_flags_apply(&b, pend, npend, 0, cause) < 0)
        goto fail;
    if (cfg_resolve_global(&b, cause) < 0 || build_sites(&b, pend, npend, cause) < 0)
        goto fail;
    if (file != NULL)
        b.c.file = xstrdup(file);
    *out = b.c;
    memset(&b.c, 0, sizeof b.c);
    build_free(&b);
    free(pend);
    return 0;
fail:
    build_free(&b);
    free(pend);
    return -1;
}

int cfg_load(int argc, char **argv, struct cfg *out, enum cfg_action *action, char **cause)
{
    return load(argc, argv, out, action, 0, cause);
}

int cfg_load_peek(const char *file, struct cfg *out, char **cause)
{
    char *argv[] = {"herald", "-c", (char *)file, NULL};
    enum cfg_action action;

    return load(file != NULL ? 3 : 1, argv, out, &action, 1, cause);
}

/*
 * cfg_keep_restart_only for one part of the snapshots: the process's
 * settings (home CFG_IN_CFG, parts are struct cfg) or one site's
 * (CFG_IN_SITE, struct cfg_site); site names the section in warnings.
 */
static int keep_restart_only(const void *running, void *next, enum cfg_home home, const char *site)
{
    int kept = 0;

    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        const struct cfg_type_ops *ops = cfg_type_ops[d->type];

        /* Settings kept outside the snapshot (secret_file, redis_password_file) are
         * resolved into it already: the secret reloads, the Redis password is kept below. */
        if ((d->flags & CFG_RELOAD) || home_of(d) != home ||
            ops->same(d, field_in(d, running), field_in(d, next)))
            continue;
        log_msg(LOG_WARN, "cfg",
                "reload: %s%s%s%s changed, which needs a restart; "
                "keeping the running value",
                site ? "[site " : "", site ? site : "", site ? "] " : "", d->name);
        ops->copy(d, field_in(d, running), field_in(d, next));
        kept++;
    }
    return kept;
}

int cfg_keep_restart_only(const struct cfg *running, struct cfg *next)
{
    int kept = keep_restart_only(running, next, CFG_IN_CFG, NULL);
    const char *pa = running->redis_password, *pb = next->redis_password;

    /* The Redis password is in no table entry: its file's path is, and lies in the build. */
    if ((pa == NULL) != (pb == NULL) || (pa != NULL && strcmp(pa, pb) != 0)) {
        log_msg(LOG_WARN, "cfg",
                "reload: the Redis password (redis_password_file) changed, which needs a "
                "restart; keeping the running value");
        free_password(&next->redis_password);
        next->redis_password = pa != NULL ? xstrdup(pa) : NULL;
        kept++;
    }
    for (size_t i = 0; i < next->nsites && i < running->nsites; i++)
        kept += keep_restart_only(running->sites[i], next->sites[i], CFG_IN_SITE,
                                  next->explicit_sites ? next->sites[i]->site : NULL);
    return kept;
}

int cfg_same_sites(const struct cfg *running, const struct cfg *next, char **cause)
{
    int same = running->nsites == next->nsites;

    for (size_t i = 0; same && i < next->nsites; i++)
        same = strcmp(running->sites[i]->site, next->sites[i]->site) == 0;
    if (!same)
        *cause = xasprintf("the [site] sections were added, removed, renamed or reordered, "
                           "which needs a restart");
    return same;
}

int cfg_site_index(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nsites; i++)
        if (strcmp(c->sites[i]->site, name) == 0)
            return (int)i;
    return -1;
}

void cfg_free(struct cfg *c)
{
    if (c == NULL)
        return;
    free_password(&c->redis_password);
    free_part(c, CFG_IN_CFG);
    free(c->file);
    for (size_t i = 0; i < c->nsites; i++) {
        cfg_site_free(c->sites[i]);
        free(c->sites[i]);
    }
    free(c->sites);
    memset(c, 0, sizeof *c);
}

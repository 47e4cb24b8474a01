/*
 * cfg.c -- configuration: one table of settings, cfg_defs[], drives the
 * built-in defaults, the INI file, the command-line flags, validation and
 * --help, in the manner of Redis src/config.c static_configs[].
 * docs/config.md and herald.ini.example document the same table; test_cfg.c
 * checks that both name every key and that the example holds the defaults.
 * What a single value means ("8k", "30s", "0660", a listen address) is
 * decided by the parsers and validators of cfg_value.c, which the table
 * points at; this file decides which setting uses which, and where it came from.
 *
 * Owns:       the table, and the building of one struct cfg snapshot.
 * Called by:  main.c at startup (later, SIGHUP builds a new snapshot).
 * Invariants: main thread only, before other threads exist: getopt's
 *             globals are reset (optind = 0) and opterr is restored on
 *             every call. Every value, defaults included, goes through the
 *             same parser, so a default is written as a user would write it.
 *             Settings apply in order: defaults, then -c FILE, then flags.
 * Errors:     cfg_load returns -1 with *cause set to one malloc'd line,
 *             "FILE:LINE: key: what is wrong" for the file and
 *             "--flag: what is wrong" for flags. Secrets are never echoed.
 *             Nothing is printed and exit() is never called; only --help
 *             and --version write to stdout.
 * Spec notes: the file is read through a line reader of our own, so that
 *             (1) errors carry the line of the setting that caused them,
 *             (2) leading blanks are stripped, which defeats inih's
 *             multi-line values: an indented key is a key, not the
 *             continuation of the previous value, and (3) an empty
 *             [section] of the wrong name is still reported.
 * Tests:      tests/unit/test_cfg.c (loading), tests/unit/test_cfg_value.c
 *             (each parser and validator, and its message through cfg_load).
 */
#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "cfg_value.h"
#include "log.h"
#include "xmalloc.h"

#ifndef HERALD_VERSION
#endif

#define CFG_SECTION "herald"
#define CFG_SITE_SECTION "site"
#define CFG_SITE_NAME_MAX 32
#define CFG_DEFAULT_SITE "default" /* the one site of a file without [site] sections */
#define CFG_SECRET_MIN 16          /* bytes, for any secret but the development one */
#define CFG_SECRET_FILE_MAX 65536  /* a larger secret file is a mistake */
#define CFG_WORKERS_MAX 256
#define CFG_MAX_DEFS 64 /* room in the per-setting arrays of struct cfg_build */

enum cfg_type {
    CFG_STRING,  /* char *; "" stores NULL */
    CFG_BOOL,    /* int 0/1: yes/no, true/false, on/off, 1/0 */
    CFG_INT,     /* decimal integer, min..max */
    CFG_SIZE,    /* bytes with k, M, G suffixes; size_t or uint64_t field */
    CFG_MSEC,    /* duration, stored in milliseconds in an int */
    CFG_SECONDS, /* duration in whole seconds, stored in seconds in an int */
    CFG_MODE,    /* octal permission bits, mode_t */
    CFG_LIST,    /* char ** plus a size_t count at .aux; split on blanks and commas */
    CFG_LEVEL,   /* log level name, int */
};

#define CFG_RELOAD 0x1  /* may change on reload (SIGHUP); else needs a restart */
#define CFG_ZERO_OK 0x2 /* 0 ("off") is allowed below min */
#define CFG_ONE_OF 0x4  /* at most one setting with this mark per source */
#define CFG_SITE 0x8    /* may be set per [site NAME]; else [herald] only */

/* Where a setting's current value came from, in order of precedence. */
enum cfg_src {
    CFG_SRC_DEFAULT,
    CFG_SRC_FILE,
    CFG_SRC_FLAG,
};

struct cfg_def;

/* One "key = value" line of a [site NAME] section, applied once the whole file is read. */
struct cfg_pair {
    const struct cfg_def *d;
    char *value; /* owned */
    int line;
};

/* A [site NAME] section as read from the file. */
struct cfg_site_src {
    char name[CFG_SITE_NAME_MAX + 1];
    int line;               /* of its "[site NAME]" line */
    struct cfg_pair *pairs; /* owned */
    size_t npairs;
};

/* The snapshot under construction, the values that never reach it, and the reader's state. */
struct cfg_build {
    struct cfg c;               /* the snapshot; handed to the caller on success */
    char *secret_file;          /* owned: path from secret_file or --secret-file */
    const char *file;           /* borrowed: the -c path, for messages */
    int src[CFG_MAX_DEFS];      /* enum cfg_src of each setting */
    int line[CFG_MAX_DEFS];     /* line in the file of each setting read from it */
    FILE *fp;                   /* owned while the file is read */
    char *buf;                  /* owned: getline buffer */
    size_t bufsz;               /* its size */
    int lineno;                 /* line the reader handed to inih last */
    int indented;               /* that line began with blanks */
    int err_line;               /* line of the error in err */
    char *err;                  /* owned: the first error found, "FILE:LINE: ..." */
    struct cfg_site_src *sites; /* owned: the [site NAME] sections, in the file's order */
    size_t nsites;
    const char *site; /* borrowed: the site being built, for messages; NULL = top */
};

/* One setting. min and max are in the type's unit: count, bytes, milliseconds, mode bits. */
struct cfg_def {
    const char *name; /* INI key */
    enum cfg_type type;
    long long min, max;
    const char *def;     /* default, as written in the file; "" = unset */
    size_t off;          /* offsetof(struct cfg_build, field) */
    size_t width;        /* sizeof field */
    size_t aux;          /* CFG_LIST: offsetof the count */
    unsigned flags;      /* CFG_RELOAD, CFG_ZERO_OK, CFG_ONE_OF */
    const char *flag;    /* long option without "--", or NULL: file only */
    const char *metavar; /* the flag's argument in --help */
    /* CFG_STRING, and each CFG_LIST item: 0, or -1 with *why set */
    int (*check)(const char *value, char **why);
    const char *help; /* one line for --help, docs/config.md and the example */
};

#define CFG_AT(f) .off = offsetof(struct cfg_build, f), .width = sizeof(((struct cfg_build *)0)->f)

/* clang-format off */
static const struct cfg_def cfg_defs[] = {
    {.name = "listen", .type = CFG_STRING, .def = "127.0.0.1:9601", CFG_AT(c.listen),
     .flag = "listen", .metavar = "HOST:PORT|unix:PATH", .check = cfg_check_listen,
     .help = "WebSocket address: HOST:PORT or unix:/path"},
    {.name = "listen_mode", .type = CFG_MODE, .min = 0, .max = 0777, .def = "0666",
     CFG_AT(c.listen_mode), .help = "permissions of a unix: listen socket"},
    {.name = "ws_path", .type = CFG_STRING, .def = "/ws", .flags = CFG_SITE, CFG_AT(c.ws_path),
     .check = cfg_check_ws_path, .help = "URL path of the WebSocket endpoint"},
    {.name = "workers", .type = CFG_INT, .min = 0, .max = CFG_WORKERS_MAX, .def = "0",
     CFG_AT(c.workers), .flag = "workers", .metavar = "N",
     .help = "worker threads; 0 = one per CPU core"},
    {.name = "secret", .type = CFG_STRING, .def = "", CFG_AT(c.secret),
     .flags = CFG_ONE_OF | CFG_RELOAD | CFG_SITE, .flag = "secret", .metavar = "SECRET",
     .help = "HS256 key for tokens, at least 16 bytes"},
    {.name = "secret_file", .type = CFG_STRING, .def = "", CFG_AT(secret_file),
     .flags = CFG_ONE_OF | CFG_RELOAD | CFG_SITE, .flag = "secret-file", .metavar = "FILE",
     .help = "read the secret from this file"},
    {.name = "allow_anonymous", .type = CFG_BOOL, .def = "no", CFG_AT(c.allow_anonymous),
     .flags = CFG_RELOAD | CFG_SITE,
     .help = "accept connections without a token (broadcasts only)"},
    {.name = "allowed_origins", .type = CFG_LIST, .def = "", CFG_AT(c.origins),
     .aux = offsetof(struct cfg_build, c.norigins), .flags = CFG_RELOAD | CFG_SITE,
     .check = cfg_check_origin, .help = "exact Origin values, space/comma separated; empty = any"},
    {.name = "token_leeway", .type = CFG_SECONDS, .min = 0, .max = 10 * CFG_MINUTE,
     .def = "30s", CFG_AT(c.token_leeway), .flags = CFG_RELOAD | CFG_SITE,
     .help = "clock skew allowed on a token's exp and nbf"},
    {.name = "max_header_size", .type = CFG_SIZE, .min = CFG_K, .max = 64 * CFG_K,
     .def = "8k", CFG_AT(c.max_header_size), .flags = CFG_RELOAD,
     .help = "largest handshake request head; over it -> 431"},
    {.name = "handshake_timeout", .type = CFG_MSEC, .min = 100, .max = 10 * CFG_MINUTE,
     .def = "10s", CFG_AT(c.handshake_timeout_ms), .flags = CFG_RELOAD,
     .help = "time allowed for the handshake; then 408 and close"},
    {.name = "max_message_size", .type = CFG_SIZE, .min = 125, .max = CFG_K * CFG_K * CFG_K,
     .def = "1M", CFG_AT(c.max_message_size), .flags = CFG_RELOAD,
     .help = "largest frame or reassembled message; over it -> close 1009"},
    {.name = "max_queued_bytes", .type = CFG_SIZE, .min = CFG_K, .max = CFG_K * CFG_K * CFG_K,
     .def = "4M", CFG_AT(c.max_queued_bytes), .flags = CFG_RELOAD,
     .help = "unsent bytes a connection may have; over it -> close 1008"},
    {.name = "ping_interval", .type = CFG_MSEC, .min = CFG_SECOND, .max = CFG_HOUR,
     .def = "30s", CFG_AT(c.ping_interval_ms), .flags = CFG_RELOAD | CFG_ZERO_OK,
     .help = "server ping period; 2 silent periods close; 0 = no pings"},
    {.name = "api_socket", .type = CFG_STRING, .def = "/tmp/herald.sock", .flags = CFG_SITE,
     CFG_AT(c.api_socket),
     .flag = "api-socket", .metavar = "PATH", .check = cfg_check_socket_path,
     .help = "Unix socket of the FastCGI publish API"},
    {.name = "api_socket_mode", .type = CFG_MODE, .min = 0, .max = 0777, .def = "0660",
     .flags = CFG_SITE, CFG_AT(c.api_socket_mode), .help = "permissions of the api socket"},
    {.name = "api_socket_group", .type = CFG_STRING, .def = "", .flags = CFG_SITE,
     CFG_AT(c.api_socket_group),
     .help = "group name for the api socket; empty = the daemon's group"},
    {.name = "host", .type = CFG_STRING, .def = "", CFG_AT(c.host), .flags = CFG_SITE,
     .check = cfg_check_host,
     .help = "the Host (no port) this site's WebSocket answers; empty = any host"},
    {.name = "publish_uids", .type = CFG_LIST, .def = "", CFG_AT(c.publish_uids),
     .aux = offsetof(struct cfg_build, c.npublish_uids), .flags = CFG_SITE | CFG_RELOAD,
     .check = cfg_check_uid,
     .help = "users or uids allowed to use the api socket (SO_PEERCRED); empty = any"},
    {.name = "api_threads", .type = CFG_INT, .min = 1, .max = 64, .def = "4",
     CFG_AT(c.api_threads), .help = "FastCGI request threads; several sites: half each at most"},
    {.name = "api_max_connections", .type = CFG_INT, .min = 1, .max = 100000, .def = "64",
     CFG_AT(c.api_max_connections), .flags = CFG_RELOAD | CFG_SITE,
     .help = "connections one caller (uid) may hold on a site's API socket; more are closed"},
    {.name = "api_max_body", .type = CFG_SIZE, .min = CFG_K, .max = 64 * CFG_K * CFG_K,
     .def = "1M", CFG_AT(c.api_max_body), .flags = CFG_RELOAD | CFG_SITE,
     .help = "largest API request body; over it -> 413"},
    {.name = "log_level", .type = CFG_LEVEL, .def = "info", CFG_AT(c.log_level),
     .flags = CFG_RELOAD, .flag = "log-level", .metavar = "LEVEL",
     .help = "lowest level logged: debug, info, warn or error"},
    {.name = "shutdown_timeout", .type = CFG_MSEC, .min = 0, .max = 60 * CFG_SECOND,
     .def = "5s", CFG_AT(c.shutdown_timeout_ms), .flags = CFG_RELOAD,
     .help = "how long shutdown waits for connections to close"},
    {.name = "public_channels", .type = CFG_LIST, .def = "", CFG_AT(c.public_channels),
     .aux = offsetof(struct cfg_build, c.npublic_channels), .flags = CFG_RELOAD | CFG_SITE,
     .check = cfg_check_pattern,
     .flag = "public-channels", .metavar = "PATTERNS",
     .help = "channels anyone may subscribe to: names or prefix* patterns"},
    {.name = "client_publish", .type = CFG_LIST, .def = "", CFG_AT(c.client_publish),
     .aux = offsetof(struct cfg_build, c.nclient_publish), .flags = CFG_RELOAD | CFG_SITE,
     .check = cfg_check_pattern, .flag = "client-publish", .metavar = "PATTERNS",
     .help = "channels whose subscribers may publish into them"},
    {.name = "presence_channels", .type = CFG_LIST, .def = "", .flags = CFG_SITE,
     CFG_AT(c.presence_channels),
     .aux = offsetof(struct cfg_build, c.npresence_channels), .check = cfg_check_pattern,
     .flag = "presence-channels", .metavar = "PATTERNS",
     .help = "channels that track their members and send join/leave"},
    {.name = "max_subscriptions", .type = CFG_INT, .min = 1, .max = 100000, .def = "100",
     CFG_AT(c.max_subscriptions), .flags = CFG_RELOAD | CFG_SITE,
     .help = "channels per connection"},
    {.name = "rpc_socket", .type = CFG_STRING, .def = "", CFG_AT(c.rpc_socket),
     .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_rpc_socket, .flag = "rpc-socket",
     .metavar = "ADDR",
     .help = "php-fpm for RPC and hooks: unix:/path or HOST:PORT"},
    {.name = "rpc_script", .type = CFG_STRING, .def = "", CFG_AT(c.rpc_script),
     .flags = CFG_RELOAD | CFG_SITE, .check = cfg_check_script,
     .flag = "rpc-script", .metavar = "PATH",
     .help = "absolute path of the PHP script that answers RPC and hooks"},
    {.name = "rpc_timeout", .type = CFG_MSEC, .min = 100, .max = 10 * CFG_MINUTE, .def = "10s",
     CFG_AT(c.rpc_timeout_ms), .flags = CFG_RELOAD | CFG_SITE,
     .help = "time allowed for one PHP call"},
    {.name = "rpc_max_per_conn", .type = CFG_INT, .min = 1, .max = 10000, .def = "8",
     CFG_AT(c.rpc_max_per_conn), .flags = CFG_RELOAD | CFG_SITE,
     .help = "RPC calls in flight per connection; more -> rpc_busy"},
    {.name = "rpc_max_inflight", .type = CFG_INT, .min = 1, .max = 100000, .def = "256",
     CFG_AT(c.rpc_max_inflight), .flags = CFG_RELOAD | CFG_SITE,
     .help = "PHP calls in flight for a site, hooks included"},
    {.name = "rpc_hooks", .type = CFG_LIST, .def = "", CFG_AT(c.rpc_hooks),
     .aux = offsetof(struct cfg_build, c.nrpc_hooks), .flags = CFG_RELOAD | CFG_SITE,
     .check = cfg_check_hook, .flag = "rpc-hooks", .metavar = "HOOKS",
     .help = "PHP calls on events: connect, disconnect, subscribe"},
    {.name = "history_size", .type = CFG_INT, .min = 0, .max = 100000, .def = "100",
     CFG_AT(c.history_size), .help = "messages kept per user and channel for recovery; 0 = none"},
    {.name = "history_ttl", .type = CFG_SECONDS, .min = CFG_SECOND, .max = 24 * CFG_HOUR,
     .def = "5m", CFG_AT(c.history_ttl), .help = "how long a message is kept for recovery"},
    {.name = "history_max_bytes", .type = CFG_SIZE, .min = CFG_K * CFG_K,
     .max = 64 * CFG_K * CFG_K * CFG_K, .def = "64M", CFG_AT(c.history_max_bytes),
     .flags = CFG_SITE, .help = "memory for a site's kept messages; over it the oldest go first"},
    {.name = "history_file", .type = CFG_STRING, .def = "", CFG_AT(c.history_file),
     .check = cfg_check_abs_path, .flag = "history-file", .metavar = "PATH",
     .help = "where history is kept across a clean restart (SIGTERM); empty = not kept"},
    {.name = "max_connections", .type = CFG_INT, .min = 0, .max = 100000000, .def = "0",
     CFG_AT(c.max_connections), .flags = CFG_RELOAD,
     .help = "open WebSockets in total; over it -> 503; 0 = no limit"},
    {.name = "max_connections_per_ip", .type = CFG_INT, .min = 0, .max = 100000000, .def = "0",
     CFG_AT(c.max_connections_per_ip), .flags = CFG_RELOAD,
     .help = "open WebSockets per client address; over it -> 429; 0 = no limit"},
    {.name = "connect_rate", .type = CFG_INT, .min = 0, .max = 1000000, .def = "20",
     CFG_AT(c.connect_rate), .flags = CFG_RELOAD,
     .help = "new WebSockets per second per client address; over it -> 429; 0 = no limit"},
    {.name = "connect_burst", .type = CFG_INT, .min = 1, .max = 1000000, .def = "200",
     CFG_AT(c.connect_burst), .flags = CFG_RELOAD,
     .help = "new WebSockets a client address may open at once above connect_rate"},
    {.name = "trusted_proxies", .type = CFG_LIST, .def = "127.0.0.1 ::1 unix",
     CFG_AT(c.trusted_proxies), .aux = offsetof(struct cfg_build, c.ntrusted_proxies),
     .flags = CFG_RELOAD, .check = cfg_check_proxy,
     .help = "peers whose X-Forwarded-For names the client: addresses, CIDRs, unix"},
    {.name = "command_rate", .type = CFG_INT, .min = 0, .max = 1000000, .def = "50",
     CFG_AT(c.command_rate), .flags = CFG_RELOAD | CFG_SITE,
     .help = "browser commands per second per connection; over it -> rate_limited"},
    {.name = "command_burst", .type = CFG_INT, .min = 1, .max = 1000000, .def = "100",
     CFG_AT(c.command_burst), .flags = CFG_RELOAD | CFG_SITE,
     .help = "browser commands a connection may send at once above command_rate"},
    {.name = "user", .type = CFG_STRING, .def = "", CFG_AT(c.user), .flag = "user",
     .metavar = "USER", .help = "switch to this user once the sockets are bound (start as root)"},
    {.name = "group", .type = CFG_STRING, .def = "", CFG_AT(c.group), .flag = "group",
     .metavar = "GROUP", .help = "and to this group (default: the user's primary group)"},
};
/* clang-format on */

#define CFG_NDEFS (sizeof cfg_defs / sizeof cfg_defs[0])
_Static_assert(CFG_NDEFS <= CFG_MAX_DEFS, "raise CFG_MAX_DEFS");

const char *cfg_key_name(size_t i)
{
    return i < CFG_NDEFS ? cfg_defs[i].name : NULL;
}

/* The table entry for an INI key, or NULL. */
static const struct cfg_def *find_def(const char *name)
{
    for (size_t i = 0; i < CFG_NDEFS; i++)
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

/*
 * Parse v for setting d and store it in b. Returns 0, or -1 with *why set
 * to "expected ..., got 'v'" (never echoing a secret).
 */
static int set_value(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why)
{
    char *field = (char *)b + d->off;
    char lo[32], hi[32];
    long long n;

    if (d->type == CFG_STRING) {
        if (d->check != NULL && d->check(v, why) < 0)
            return -1;
        free(*(char **)field);
        *(char **)field = *v != '\0' ? xstrdup(v) : NULL;
        return 0;
    }
    if (d->type == CFG_LIST)
        return store_list(b, d, v, why);
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
    store_num(field, d->width, (unsigned long long)n);
    return 0;
}

/* ---- The INI file ----------------------------------------------------- */

/* Record the first error at line lineno: "FILE:LINE: message". */
static void __attribute__((format(printf, 3, 4)))
note_error(struct cfg_build *b, int lineno, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (b->err != NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        log_fatal("cfg", "out of memory formatting an error");
    va_end(ap);
    b->err = xasprintf("%s:%d: %s", b->file, lineno, msg);
    b->err_line = lineno;
    free(msg);
}

/*
 * Is the section text sec[0..len) "site NAME"? Returns -1 when it is not a
 * site section, 0 when it is one with a bad or missing name, else the
 * name's length with *name pointing at it.
 */
static int site_section(const char *sec, size_t len, const char **name)
{
    size_t k = strlen(CFG_SITE_SECTION), n;

    if (len < k || strncmp(sec, CFG_SITE_SECTION, k) != 0 ||
        (len > k && sec[k] != ' ' && sec[k] != '\t'))
        return -1;
    while (k < len && (sec[k] == ' ' || sec[k] == '\t'))
        k++;
    while (len > k && (sec[len - 1] == ' ' || sec[len - 1] == '\t'))
        len--;
    *name = sec + k;
    n = len - k;
    for (size_t i = 0; i < n; i++)
        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", sec[k + i]) == NULL)
            return 0;
    return n <= CFG_SITE_NAME_MAX ? (int)n : 0;
}

/* Start a [site NAME] section read at the current line. */
static void add_site(struct cfg_build *b, const char *name, size_t n)
{
    struct cfg_site_src *site;

    for (size_t i = 0; i < b->nsites; i++)
        if (strlen(b->sites[i].name) == n && memcmp(b->sites[i].name, name, n) == 0) {
            note_error(b, b->lineno, "[site %.*s] is already defined on line %d", (int)n, name,
                       b->sites[i].line);
            return;
        }
    b->sites = xrealloc(b->sites, (b->nsites + 1) * sizeof *b->sites);
    site = &b->sites[b->nsites++];
    memset(site, 0, sizeof *site);
    memcpy(site->name, name, n);
    site->line = b->lineno;
}

/* A "[name]" line: [herald], or a [site NAME] to start; inih itself reports a missing ']'. */
static void check_section_line(struct cfg_build *b, const char *s)
{
    const char *end = strchr(s + 1, ']'), *name;
    size_t len;
    int n;

    if (end == NULL)
        return;
    len = (size_t)(end - s - 1);
    if (len == strlen(CFG_SECTION) && strncmp(s + 1, CFG_SECTION, len) == 0)
        return;
    n = site_section(s + 1, len, &name);
    if (n < 0)
        note_error(b, b->lineno, "unknown section [%.*s] (only [%s] and [%s NAME] are read)",
                   (int)len, s + 1, CFG_SECTION, CFG_SITE_SECTION);
    else if (n == 0)
        note_error(b, b->lineno, "[%.*s]: a site's name is 1 to %d of a-z, 0-9, _ and -", (int)len,
                   s + 1, CFG_SITE_NAME_MAX);
    else
        add_site(b, name, (size_t)n);
}

/*
 * inih's reader: hand over one whole line, without a BOM or leading blanks,
 * counting lines so the handler knows where it is. An overlong line is
 * reported here and replaced by a blank one, so inih never splits it; an
 * overlong comment is simply dropped.
 */
static char *read_line(char *str, int num, void *stream)
{
    struct cfg_build *b = stream;
    ssize_t got = getline(&b->buf, &b->bufsz, b->fp);
    char *s = b->buf;
    size_t len;

    if (got < 0)
        return NULL;
    b->lineno++;
    if (b->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    b->indented = *s == ' ' || *s == '\t';
    s += strspn(s, " \t");
    len = strlen(s);
    if (len >= (size_t)num && (*s == ';' || *s == '#')) {
        s = "\n";
        len = 1;
    } else if (len >= (size_t)num) {
        note_error(b, b->lineno, "line longer than %d bytes", num - 2);
        s = "\n";
        len = 1;
    } else if (*s == '[') {
        check_section_line(b, s);
    }
    memcpy(str, s, len + 1);
    return str;
}

/* Is another CFG_ONE_OF setting than d already set (non-empty) from src? */
static const struct cfg_def *one_of_conflict(const struct cfg_build *b, const struct cfg_def *d,
                                             int src)
{
    for (size_t i = 0; i < CFG_NDEFS; i++) {
        const struct cfg_def *o = &cfg_defs[i];

        if (o != d && (o->flags & CFG_ONE_OF) && b->src[i] == src &&
            *(char *const *)((const char *)b + o->off) != NULL)
            return o;
    }
    return NULL;
}

/*
 * A key of the [site NAME] section read last: checked for being a per-site
 * key, not repeated, not fighting another CFG_ONE_OF; its value is parsed
 * when the site is built (build_site), with this line in any error.
 */
static int on_site_key(struct cfg_build *b, const char *name, const char *value)
{
    struct cfg_site_src *site = &b->sites[b->nsites - 1];
    const struct cfg_def *d = find_def(name);
    struct cfg_pair *p;

    if (d == NULL) {
        note_error(b, b->lineno, "unknown key '%s'%s", name,
                   b->indented ? " (a value cannot continue on the next line)" : "");
        return 0;
    }
    if (!(d->flags & CFG_SITE)) {
        note_error(b, b->lineno, "%s is global: set it under [%s]", name, CFG_SECTION);
        return 0;
    }
    for (size_t i = 0; i < site->npairs; i++) {
        p = &site->pairs[i];
        if (p->d == d) {
            note_error(b, b->lineno, "repeated key '%s' (first set on line %d)", name, p->line);
            return 0;
        }
        if ((d->flags & CFG_ONE_OF) && (p->d->flags & CFG_ONE_OF) && *value != '\0' &&
            *p->value != '\0') {
            note_error(b, b->lineno, "%s: %s is already set on line %d; use one of them", name,
                       p->d->name, p->line);
            return 0;
        }
    }
    site->pairs = xrealloc(site->pairs, (site->npairs + 1) * sizeof *site->pairs);
    p = &site->pairs[site->npairs++];
    p->d = d;
    p->value = xstrdup(value);
    p->line = b->lineno;
    return 1;
}

/* inih's handler: one "key = value" line of the file. Returns 1, or 0 on error. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_build *b = user;
    const struct cfg_def *d, *other;
    const char *site;
    char *why;
    size_t i;

    if (b->err != NULL)
        return 0;
    if (strcmp(section, CFG_SECTION) != 0) {
        if (b->nsites > 0 && site_section(section, strlen(section), &site) > 0)
            return on_site_key(b, name, value);
        if (*section == '\0')
            note_error(b, b->lineno, "'%s' is outside a section; put it under [%s]", name,
                       CFG_SECTION);
        else
            note_error(b, b->lineno, "unknown section [%s]", section);
        return 0;
    }
    d = find_def(name);
    if (d == NULL) {
        note_error(b, b->lineno, "unknown key '%s'%s", name,
                   b->indented ? " (a value cannot continue on the next line)" : "");
        return 0;
    }
    i = (size_t)(d - cfg_defs);
    if (b->src[i] == CFG_SRC_FILE) {
        note_error(b, b->lineno, "repeated key '%s' (first set on line %d)", name, b->line[i]);
        return 0;
    }
    if ((d->flags & CFG_ONE_OF) && *value != '\0' &&
        (other = one_of_conflict(b, d, CFG_SRC_FILE)) != NULL) {
        note_error(b, b->lineno, "%s: %s is already set on line %d; use one of them", name,
                   other->name, b->line[other - cfg_defs]);
        return 0;
    }
    if (set_value(b, d, value, &why) < 0) {
        note_error(b, b->lineno, "%s: %s", name, why);
        free(why);
        return 0;
    }
    b->src[i] = CFG_SRC_FILE;
    b->line[i] = b->lineno;
    return 1;
}

/* Read the -c file into b. Returns 0, or -1 with *cause set. */
static int load_file(struct cfg_build *b, char **cause)
{
    int r;

    b->fp = fopen(b->file, "re");
    if (b->fp == NULL) {
        *cause = xasprintf("cannot open config file %s: %s", b->file, strerror(errno));
        return -1;
    }
    r = ini_parse_stream(read_line, b, on_key, b);
    if (ferror(b->fp)) {
        *cause = xasprintf("cannot read config file %s: %s", b->file, strerror(errno));
        return -1;
    }
    if (r > 0 && (b->err == NULL || r < b->err_line)) {
        free(b->err);
        b->err = NULL;
        note_error(b, r, "expected 'key = value', '[%s]', '[%s NAME]' or a comment", CFG_SECTION,
                   CFG_SITE_SECTION);
    } else if (r < 0 && b->err == NULL) {
        note_error(b, b->lineno, "the INI parser failed (%d)", r);
    }
    if (b->err != NULL) {
        *cause = b->err;
        b->err = NULL;
        return -1;
    }
    return 0;
}

/* ---- Flags ------------------------------------------------------------ */

enum {
    CFG_OPT_CHECK = 1,
    CFG_OPT_VERSION,
    CFG_OPT_HELP,
    CFG_OPT_DEF = 0x100, /* + index into cfg_defs */
};

/* One table flag seen on the command line, applied after the file. */
struct cfg_pending {
    const struct cfg_def *d;
    const char *value; /* borrowed from argv */
};

/* The long options: the fixed ones, then every setting that has a flag. */
static struct option *build_options(void)
{
    static const struct option fixed[] = {
        {.name = "config", .has_arg = required_argument, .val = 'c'},
        {.name = "check-config", .has_arg = no_argument, .val = CFG_OPT_CHECK},
        {.name = "version", .has_arg = no_argument, .val = CFG_OPT_VERSION},
        {.name = "help", .has_arg = no_argument, .val = CFG_OPT_HELP},
    };
    size_t n = sizeof fixed / sizeof fixed[0];
    struct option *opts = xcalloc(n + CFG_NDEFS + 1, sizeof *opts);

    memcpy(opts, fixed, sizeof fixed);
    for (size_t i = 0; i < CFG_NDEFS; i++) {
        if (cfg_defs[i].flag == NULL)
            continue;
        opts[n].name = cfg_defs[i].flag;
        opts[n].has_arg = required_argument;
        opts[n++].val = CFG_OPT_DEF + (int)i;
    }
    return opts;
}

/* Print --help, built from the table, on stdout. */
static void print_usage(void)
{
    char left[128];

    printf("usage: herald [-c FILE] [options]\n\n");
    printf("  %-30s %s\n", "-c, --config FILE", "read settings from an INI file");
    printf("  %-30s %s\n", "", "(every key: docs/config.md, herald.ini.example)");
    for (size_t i = 0; i < CFG_NDEFS; i++) {
        const struct cfg_def *d = &cfg_defs[i];

        if (d->flag == NULL)
            continue;
        snprintf(left, sizeof left, "    --%s %s", d->flag, d->metavar);
        if (strlen(left) > 30)
            printf("  %s\n  %-30s %s\n", left, "", d->help);
        else
            printf("  %-30s %s\n", left, d->help);
    }
    printf("  %-30s %s\n", "    --check-config", "validate the configuration and exit");
    printf("  %-30s %s\n", "    --version", "print the version and exit");
    printf("  %-30s %s\n", "    --help", "print this help and exit");
    printf("\nSettings apply in order: built-in defaults, then the -c file, then flags.\n"
           "Without -c Herald runs with development defaults (listen 127.0.0.1:9601,\n"
           "api socket /tmp/herald.sock) and a public development secret, which is\n"
           "refused with -c or off loopback: then set secret or secret_file.\n");
}

/*
 * Scan argv: -c, --check-config, --help, --version, and table flags into
 * pend[]. Returns 0, 1 when --help or --version was printed, or -1.
 */
static int scan_flags(int argc, char **argv, const char **file, struct cfg_pending *pend,
                      size_t *npend, enum cfg_action *action, char **cause)
{
    struct option *opts = build_options();
    int saved_opterr = opterr, ch, r = 0;

    optind = 0; /* GNU: reinitialise fully, the previous call may have left state */
    opterr = 0;
    while (r == 0 && (ch = getopt_long(argc, argv, "+:c:", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': *file = optarg; break;
        case CFG_OPT_CHECK: *action = CFG_CHECK; break;
        case CFG_OPT_VERSION:
            printf("herald %s\n", HERALD_VERSION);
            r = 1;
            break;
        case CFG_OPT_HELP:
            print_usage();
            r = 1;
            break;
        case ':':
            *cause = xasprintf("option '%s' requires an argument", argv[optind - 1]);
            r = -1;
            break;
        case '?':
            /* optopt names a bad short option; a bad long one is the last argv read */
            if (strncmp(argv[optind - 1], "--", 2) != 0 && optopt > ' ' && optopt < 0x7f)
                *cause = xasprintf("unknown option '-%c' (see --help)", optopt);
            else
                *cause = xasprintf("unknown option '%s' (see --help)", argv[optind - 1]);
            r = -1;
            break;
        default:
            pend[*npend].d = &cfg_defs[ch - CFG_OPT_DEF];
            pend[(*npend)++].value = optarg;
            break;
        }
    }
    if (r == 0 && optind < argc) {
        *cause = xasprintf("unexpected argument '%s' (see --help)", argv[optind]);
        r = -1;
    }
    opterr = saved_opterr;
    free(opts);
    return r;
}

/*
 * Apply the flags in order, after the file (only those of per-site keys
 * when site_only: again over a site's own values, so flags still win).
 * Returns 0, or -1 with *cause set.
 */
static int apply_flags(struct cfg_build *b, const struct cfg_pending *pend, size_t npend,
                       int site_only, char **cause)
{
    for (size_t k = 0; k < npend; k++) {
        const struct cfg_def *d = pend[k].d, *other;
        size_t i = (size_t)(d - cfg_defs);
        char *why;

        if (site_only && !(d->flags & CFG_SITE))
            continue;

        if ((d->flags & CFG_ONE_OF) && *pend[k].value != '\0' &&
            (other = one_of_conflict(b, d, CFG_SRC_FLAG)) != NULL) {
            *cause = xasprintf("--%s and --%s cannot be used together", other->flag, d->flag);
            return -1;
        }
        if (set_value(b, d, pend[k].value, &why) < 0) {
            *cause = xasprintf("--%s: %s", d->flag, why);
            free(why);
            return -1;
        }
        b->src[i] = CFG_SRC_FLAG;
    }
    return 0;
}

/* ---- Copies ----------------------------------------------------------- */

/*
 * Are setting d's values in a and b the same? a and b are a struct
 * cfg_build, or a struct cfg when d's field lies in it (c comes first).
 */
static int same_value(const struct cfg_def *d, const void *a, const void *b)
{
    const char *fa = (const char *)a + d->off, *fb = (const char *)b + d->off;

    if (d->type == CFG_STRING) {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;

        return (sa == NULL && sb == NULL) || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
    }
    if (d->type == CFG_LIST) {
        char *const *la = *(char **const *)fa, *const *lb = *(char **const *)fb;
        size_t na = *(const size_t *)((const char *)a + d->aux);

        if (na != *(const size_t *)((const char *)b + d->aux))
            return 0;
        for (size_t i = 0; i < na; i++)
            if (strcmp(la[i], lb[i]) != 0)
                return 0;
        return 1;
    }
    return memcmp(fa, fb, d->width) == 0;
}

/* Copy setting d's value from a into b, replacing b's (bases as for same_value). */
static void copy_value(const struct cfg_def *d, const void *a, void *b)
{
    const char *fa = (const char *)a + d->off;
    char *fb = (char *)b + d->off;

    if (d->type == CFG_STRING) {
        const char *sa = *(char *const *)fa;

        free(*(char **)fb);
        *(char **)fb = sa != NULL ? xstrdup(sa) : NULL;
    } else if (d->type == CFG_LIST) {
        char *const *la = *(char **const *)fa;
        size_t na = *(const size_t *)((const char *)a + d->aux);
        char **copy = na > 0 ? xcalloc(na, sizeof *copy) : NULL;

        for (size_t i = 0; i < na; i++)
            copy[i] = xstrdup(la[i]);
        cfg_free_list(*(char ***)fb, *(size_t *)((char *)b + d->aux));
        *(char ***)fb = copy;
        *(size_t *)((char *)b + d->aux) = na;
    } else {
        memcpy(fb, fa, d->width);
    }
}

/* Does setting d live in struct cfg (not only in struct cfg_build, as secret_file does)? */
static int in_cfg(const struct cfg_def *d)
{
    return d->off + d->width <= sizeof(struct cfg);
}

/* Copy every setting, and where it came from, of a build that is not yet resolved. */
static void build_copy(const struct cfg_build *a, struct cfg_build *b)
{
    for (size_t i = 0; i < CFG_NDEFS; i++) {
        copy_value(&cfg_defs[i], a, b);
        b->src[i] = a->src[i];
        b->line[i] = a->line[i];
    }
    b->file = a->file;
}

/* Copy a resolved snapshot (without its sites) into the zeroed *b. */
static void cfg_copy(const struct cfg *a, struct cfg *b)
{
    for (size_t i = 0; i < CFG_NDEFS; i++)
        if (in_cfg(&cfg_defs[i]) && cfg_defs[i].off != offsetof(struct cfg_build, c.secret))
            copy_value(&cfg_defs[i], a, b);
    if (a->secret != NULL) {
        b->secret = xmalloc(a->secret_len + 1);
        memcpy(b->secret, a->secret, a->secret_len + 1);
    }
    b->secret_len = a->secret_len;
    b->dev_secret = a->dev_secret;
    b->hooks = a->hooks;
    if (a->nuids > 0) {
        b->uids = xcalloc(a->nuids, sizeof *b->uids);
        memcpy(b->uids, a->uids, a->nuids * sizeof *b->uids);
    }
    b->nuids = a->nuids;
    b->file = a->file != NULL ? xstrdup(a->file) : NULL;
    b->site = a->site != NULL ? xstrdup(a->site) : NULL;
}

/* ---- Resolution ------------------------------------------------------- */

/* Where setting i came from, for messages: "FILE:LINE: key", "--flag" or "key". */
static char *origin_of(const struct cfg_build *b, size_t i)
{
    if (b->src[i] == CFG_SRC_FILE)
        return xasprintf("%s:%d: %s", b->file, b->line[i], cfg_defs[i].name);
    if (b->src[i] == CFG_SRC_FLAG)
        return xasprintf("--%s", cfg_defs[i].flag);
    return xstrdup(cfg_defs[i].name);
}

static size_t def_index(const char *name)
{
    return (size_t)(find_def(name) - cfg_defs);
}

/* Read the secret file: one trailing "\n" or "\r\n" is dropped. Returns 0 or -1 with *cause. */
static int read_secret_file(struct cfg_build *b, char **cause)
{
    char *where = origin_of(b, def_index("secret_file"));
    char *data = xmalloc(CFG_SECRET_FILE_MAX + 1);
    size_t len = 0;
    ssize_t n = 1;
    int fd = open(b->secret_file, O_RDONLY | O_CLOEXEC);

    while (fd >= 0 && len <= CFG_SECRET_FILE_MAX && n != 0) {
        n = read(fd, data + len, CFG_SECRET_FILE_MAX + 1 - len);
        if (n < 0 && errno != EINTR)
            break;
        len += n > 0 ? (size_t)n : 0;
    }
    if (fd < 0 || n < 0) {
        *cause = xasprintf("%s: cannot read %s: %s", where, b->secret_file, strerror(errno));
        goto fail;
    }
    if (len > CFG_SECRET_FILE_MAX) {
        *cause = xasprintf("%s: %s is larger than 64k", where, b->secret_file);
        goto fail;
    }
    if (len > 0 && data[len - 1] == '\n')
        len--;
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (len == 0) {
        *cause = xasprintf("%s: %s is empty", where, b->secret_file);
        goto fail;
    }
    close(fd);
    data[len] = '\0';
    free(b->c.secret);
    b->c.secret = data;
    b->c.secret_len = len;
    free(where);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    explicit_bzero(data, CFG_SECRET_FILE_MAX + 1);
    free(data);
    free(where);
    return -1;
}

/*
 * Settle the secret: a flag overrides the other source from the file, the
 * file is read, and the development secret is used or refused.
 */
static int resolve_secret(struct cfg_build *b, char **cause)
{
    size_t is = def_index("secret"), isf = def_index("secret_file");
    size_t from = b->secret_file != NULL ? isf : is;
    char *where;

    if (b->src[is] == CFG_SRC_FLAG && b->c.secret != NULL && b->src[isf] != CFG_SRC_FLAG) {
        free(b->secret_file);
        b->secret_file = NULL;
        from = is;
    } else if (b->src[isf] == CFG_SRC_FLAG && b->secret_file != NULL &&
               b->src[is] != CFG_SRC_FLAG && b->c.secret != NULL) {
        explicit_bzero(b->c.secret, strlen(b->c.secret));
        free(b->c.secret);
        b->c.secret = NULL;
    }
    if (b->secret_file != NULL && read_secret_file(b, cause) < 0)
        return -1;
    if (b->c.secret == NULL) {
        if (b->file == NULL && cfg_listen_is_local(b->c.listen)) {
            b->c.secret = xstrdup(CFG_DEV_SECRET);
            b->c.secret_len = strlen(CFG_DEV_SECRET);
            b->c.dev_secret = 1;
            return 0;
        }
        *cause = b->site != NULL
                     ? xasprintf("%s: [site %s]: no secret configured: set secret or secret_file "
                                 "in it (each site has its own)",
                                 b->file, b->site)
                 : b->file != NULL
                     ? xasprintf("%s: no secret configured: set secret or secret_file", b->file)
                     : xasprintf("no secret configured: set secret or secret_file "
                                 "(--secret, --secret-file) to listen on %s",
                                 b->c.listen);
        return -1;
    }
    if (b->secret_file == NULL)
        b->c.secret_len = strlen(b->c.secret);
    where = origin_of(b, from);
    if (b->c.secret_len == strlen(CFG_DEV_SECRET) &&
        memcmp(b->c.secret, CFG_DEV_SECRET, b->c.secret_len) == 0) {
        if (b->file != NULL)
            *cause = xasprintf("%s: the development secret is public; set one of your own", where);
        else if (!cfg_listen_is_local(b->c.listen))
            *cause = xasprintf("%s: the development secret is public and only accepted on "
                               "a loopback listen address",
                               where);
        b->c.dev_secret = 1;
    } else if (b->c.secret_len < CFG_SECRET_MIN) {
        *cause = xasprintf("%s: secret must be at least %d bytes", where, CFG_SECRET_MIN);
    }
    free(where);
    return *cause == NULL ? 0 : -1;
}

/* Turn rpc_hooks into bits; hooks and RPC need both rpc_socket and rpc_script. */
static int resolve_rpc(struct cfg_build *b, char **cause)
{
    struct cfg *c = &b->c;

    c->hooks = 0;
    for (size_t i = 0; i < c->nrpc_hooks; i++) {
        if (strcmp(c->rpc_hooks[i], "connect") == 0)
            c->hooks |= CFG_HOOK_CONNECT;
        else if (strcmp(c->rpc_hooks[i], "disconnect") == 0)
            c->hooks |= CFG_HOOK_DISCONNECT;
        else
            c->hooks |= CFG_HOOK_SUBSCRIBE;
    }
    if ((c->rpc_socket == NULL) != (c->rpc_script == NULL)) {
        *cause = xasprintf("%s: rpc_socket and rpc_script go together: set both or neither",
                           b->file != NULL ? b->file : "config");
        return -1;
    }
    if (c->hooks != 0 && c->rpc_socket == NULL) {
        *cause = xasprintf("%s: rpc_hooks needs rpc_socket and rpc_script",
                           b->file != NULL ? b->file : "config");
        return -1;
    }
    return 0;
}

/* Turn publish_uids into uids: a number is a uid, a name is looked up. */
static int resolve_uids(struct cfg_build *b, char **cause)
{
    struct cfg *c = &b->c;
    char *where;

    free(c->uids);
    c->uids = c->npublish_uids > 0 ? xcalloc(c->npublish_uids, sizeof *c->uids) : NULL;
    c->nuids = c->npublish_uids;
    for (size_t i = 0; i < c->npublish_uids; i++) {
        const char *v = c->publish_uids[i];
        struct passwd *pw;
        long long n;

        if (cfg_parse_int(v, &n) == 0 && n >= 0 && n < UINT32_MAX) {
            c->uids[i] = (uid_t)n;
            continue;
        }
        pw = getpwnam(v);
        if (pw == NULL) {
            where = origin_of(b, def_index("publish_uids"));
            *cause = xasprintf("%s: no user named '%s'", where, v);
            free(where);
            return -1;
        }
        c->uids[i] = pw->pw_uid;
    }
    return 0;
}

/* Is this process in group gid (its effective group or a supplementary one)? */
static int in_group(gid_t gid)
{
    gid_t groups[256];
    int n = getgroups(256, groups);

    if (getegid() == gid)
        return 1;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/*
 * api_socket_group must exist, and a process that is not root must be in
 * it, or it cannot give the socket to it: said here, so that --check-config
 * (systemd's ExecStartPre) catches it rather than the start.
 */
static int resolve_group(struct cfg_build *b, char **cause)
{
    const char *name = b->c.api_socket_group;
    struct group *gr;
    char *where;

    if (name == NULL)
        return 0;
    gr = getgrnam(name);
    if (gr != NULL && (geteuid() == 0 || in_group(gr->gr_gid)))
        return 0;
    where = origin_of(b, def_index("api_socket_group"));
    if (gr == NULL)
        *cause = xasprintf("%s: no group named %s", where, name);
    else
        *cause = xasprintf("%s: this process (uid %ld) is not in group %s, so it cannot give "
                           "the api socket to it: start as root, or add the group "
                           "(systemd: SupplementaryGroups=)",
                           where, (long)geteuid(), name);
    free(where);
    return -1;
}

/* Settle the number of workers: 0 means one per core. */
static void resolve_workers(struct cfg_build *b)
{
    if (b->c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        b->c.workers = n < 1 ? 1 : n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (int)n;
    }
}

/* Resolve a site's values that depend on the machine or on other settings. */
static int resolve(struct cfg_build *b, char **cause)
{
    if (resolve_secret(b, cause) < 0 || resolve_rpc(b, cause) < 0 || resolve_uids(b, cause) < 0 ||
        resolve_group(b, cause) < 0)
        return -1;
    return 0;
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
    free(b->secret_file);
    free(b->buf);
    free(b->err);
    if (b->fp != NULL)
        fclose(b->fp);
    memset(b, 0, sizeof *b);
}

/*
 * Build one [site NAME]: the [herald] values (b, not yet resolved), the
 * site's own lines on top, the flags of per-site keys on top of those, then
 * resolved like a whole configuration. Fills *out, or returns -1 with *cause.
 */
static int build_site(const struct cfg_build *b, const struct cfg_site_src *src,
                      const struct cfg_pending *pend, size_t npend, struct cfg *out, char **cause)
{
    struct cfg_build sb = {0};
    char *why;

    build_copy(b, &sb);
    sb.site = src->name;
    /* A secret shared through [herald] would let one site's tokens open another:
     * a site starts without one, so resolve_secret asks for its own. */
    if (sb.c.secret != NULL)
        explicit_bzero(sb.c.secret, strlen(sb.c.secret));
    for (size_t o = 0; o < CFG_NDEFS; o++)
        if (cfg_defs[o].flags & CFG_ONE_OF)
            set_value(&sb, &cfg_defs[o], "", &why);
    for (size_t k = 0; k < src->npairs; k++) {
        const struct cfg_pair *p = &src->pairs[k];
        size_t i = (size_t)(p->d - cfg_defs);

        if (set_value(&sb, p->d, p->value, &why) < 0) {
            *cause = xasprintf("%s:%d: %s: %s", b->file, p->line, p->d->name, why);
            free(why);
            goto fail;
        }
        sb.src[i] = CFG_SRC_FILE;
        sb.line[i] = p->line;
    }
    if (apply_flags(&sb, pend, npend, 1, cause) < 0)
        goto fail;
    if (resolve(&sb, cause) < 0)
        goto fail;
    sb.c.site = xstrdup(src->name);
    *out = sb.c;
    memset(&sb.c, 0, sizeof sb.c);
    build_free(&sb);
    return 0;
fail:
    build_free(&sb);
    return -1;
}

/* Do sites a and b answer the same WebSocket requests? */
static int same_endpoint(const struct cfg *a, const struct cfg *b)
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
            const struct cfg *a = c->sites[j], *b = c->sites[i];

            if (strcmp(a->api_socket, b->api_socket) == 0)
                *cause = xasprintf("%s: [site %s] has the same api_socket as [site %s] (%s): "
                                   "each site needs its own",
                                   file, b->site, a->site, a->api_socket);
            else if (same_endpoint(a, b))
                *cause = xasprintf("%s: [site %s] and [site %s] both answer ws_path %s for %s%s: "
                                   "give them different host or ws_path values",
                                   file, a->site, b->site, a->ws_path,
                                   a->host ? "host " : "any host", a->host ? a->host : "");
            else if (a->secret_len == b->secret_len &&
                     memcmp(a->secret, b->secret, a->secret_len) == 0)
                *cause = xasprintf("%s: [site %s] and [site %s] have the same secret: a token "
                                   "of one would open the other; give each its own",
                                   file, a->site, b->site);
            if (*cause != NULL)
                return -1;
        }
    return 0;
}

/* (Re)make the one site of a file without [site] sections: a copy of the top level. */
static void set_default_site(struct cfg *c)
{
    if (c->nsites == 0) {
        c->sites = xcalloc(1, sizeof *c->sites);
        c->sites[0] = xcalloc(1, sizeof *c->sites[0]);
        c->nsites = 1;
    } else {
        cfg_free(c->sites[0]);
    }
    cfg_copy(c, c->sites[0]);
    c->sites[0]->site = xstrdup(CFG_DEFAULT_SITE);
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
        if (resolve(b, cause) < 0)
            return -1;
        set_default_site(c);
        return 0;
    }
    c->explicit_sites = 1;
    c->sites = xcalloc(b->nsites, sizeof *c->sites);
    for (size_t i = 0; i < b->nsites; i++) {
        c->sites[i] = xcalloc(1, sizeof *c->sites[i]);
        c->nsites++;
        if (build_site(b, &b->sites[i], pend, npend, c->sites[i], cause) < 0)
            return -1;
    }
    return check_sites(c, b->file, cause);
}

/* Set every setting to its default, through the same parser as the file. */
static int load_defaults(struct cfg_build *b, char **cause)
{
    for (size_t i = 0; i < CFG_NDEFS; i++) {
        char *why;

        if (set_value(b, &cfg_defs[i], cfg_defs[i].def, &why) < 0) {
            *cause = xasprintf("built-in default of %s: %s", cfg_defs[i].name, why);
            free(why);
            return -1;
        }
        b->src[i] = CFG_SRC_DEFAULT;
    }
    return 0;
}

int cfg_load(int argc, char **argv, struct cfg *out, enum cfg_action *action, char **cause)
{
    struct cfg_build b = {0};
    struct cfg_pending *pend = xcalloc((size_t)argc + 1, sizeof *pend);
    size_t npend = 0;
    const char *file = NULL;
    int r;

    memset(out, 0, sizeof *out);
    *action = CFG_RUN;
    *cause = NULL;
    r = scan_flags(argc, argv, &file, pend, &npend, action, cause);
    if (r != 0) {
        free(pend);
        if (r > 0)
            *action = CFG_EXIT_OK;
        return r > 0 ? 0 : -1;
    }
    b.file = file;
    if (load_defaults(&b, cause) < 0 || (file != NULL && load_file(&b, cause) < 0) ||
        apply_flags(&b, pend, npend, 0, cause) < 0)
        goto fail;
    resolve_workers(&b);
    if (build_sites(&b, pend, npend, cause) < 0)
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

/* Which settings keep_restart_only looks at. */
enum cfg_keep {
    CFG_KEEP_ALL,
    CFG_KEEP_GLOBAL, /* [herald]-only settings */
    CFG_KEEP_SITE,   /* CFG_SITE settings */
};

/* cfg_keep_restart_only for one snapshot; site names the section in warnings. */
static int keep_restart_only(const struct cfg *running, struct cfg *next, const char *site,
                             enum cfg_keep which)
{
    int kept = 0;

    for (size_t i = 0; i < CFG_NDEFS; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        int is_site = (d->flags & CFG_SITE) != 0;

        /* Settings kept outside struct cfg (secret_file) are resolved into it already. */
        if ((d->flags & CFG_RELOAD) || !in_cfg(d) || (which == CFG_KEEP_GLOBAL && is_site) ||
            (which == CFG_KEEP_SITE && !is_site) || same_value(d, running, next))
            continue;
        log_msg(LOG_WARN, "cfg",
                "reload: %s%s%s%s changed, which needs a restart; "
                "keeping the running value",
                site ? "[site " : "", site ? site : "", site ? "] " : "", d->name);
        copy_value(d, running, next);
        kept++;
    }
    return kept;
}

int cfg_keep_restart_only(const struct cfg *running, struct cfg *next)
{
    int kept;

    if (!next->explicit_sites) {
        /* The one site is a copy of the top level: keep there, then copy again. */
        kept = keep_restart_only(running, next, NULL, CFG_KEEP_ALL);
        set_default_site(next);
        return kept;
    }
    kept = keep_restart_only(running, next, NULL, CFG_KEEP_GLOBAL);
    for (size_t i = 0; i < next->nsites && i < running->nsites; i++)
        kept += keep_restart_only(running->sites[i], next->sites[i], next->sites[i]->site,
                                  CFG_KEEP_SITE);
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
    free(c->listen);
    free(c->ws_path);
    if (c->secret != NULL)
        explicit_bzero(c->secret, c->secret_len);
    free(c->secret);
    cfg_free_list(c->origins, c->norigins);
    free(c->api_socket);
    free(c->api_socket_group);
    cfg_free_list(c->public_channels, c->npublic_channels);
    cfg_free_list(c->client_publish, c->nclient_publish);
    cfg_free_list(c->presence_channels, c->npresence_channels);
    free(c->rpc_socket);
    free(c->rpc_script);
    cfg_free_list(c->rpc_hooks, c->nrpc_hooks);
    cfg_free_list(c->trusted_proxies, c->ntrusted_proxies);
    free(c->history_file);
    free(c->user);
    free(c->group);
    free(c->file);
    free(c->site);
    free(c->host);
    cfg_free_list(c->publish_uids, c->npublish_uids);
    free(c->uids);
    for (size_t i = 0; i < c->nsites; i++) {
        cfg_free(c->sites[i]);
        free(c->sites[i]);
    }
    free(c->sites);
    memset(c, 0, sizeof *c);
}

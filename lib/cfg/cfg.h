/*
 * cfg.h -- configuration: one table of settings drives the embedded
 * defaults, the INI file (inih), the command-line flags, validation and
 * --check-config.
 *
 * Owns:       struct cfg, an immutable snapshot once cfg_load returns: the
 *             [herald] settings, and in sites[] one full struct cfg per
 *             [site NAME] section (the [herald] values with the site's own
 *             on top; one site named "default" when the file has none).
 * Called by:  main.c at startup; every other module reads the snapshot.
 * Invariants: built on the main thread before any other thread starts;
 *             read-only afterwards (a reload builds a new snapshot).
 * Errors:     cfg_load returns -1 with *cause set to one line (malloc'd)
 *             naming the file, line, key and what is wrong.
 * Tests:      tests/unit/test_cfg.c, and tests/unit/test_cfg_value.c for
 *             the last three functions, which are defined in cfg_value.c.
 */
#ifndef HERALD_CFG_H
#define HERALD_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cfg_value.h" /* the value parsers, public too: cfg_parse_size, ... */

#define CFG_DEV_SECRET "herald-dev-secret"
#define HERALD_VERSION "0.1.0"

struct cfg {
    char *listen;       /* owned: "HOST:PORT" or "unix:PATH" */
    mode_t listen_mode; /* for a unix: listener */
    char *ws_path;      /* owned: e.g. "/ws" */
    int workers;        /* resolved: 0 in the file means the number of cores */
    char *secret;       /* owned: HS256 key (from secret or secret_file) */
    size_t secret_len;
    int dev_secret; /* 1 when the embedded development secret is in use */
    int allow_anonymous;
    char **origins;         /* owned: allowed Origin values */
    size_t norigins;        /* 0 = any origin */
    int token_leeway;       /* seconds */
    size_t max_header_size; /* bytes */
    int handshake_timeout_ms;
    uint64_t max_message_size;
    uint64_t max_queued_bytes; /* per connection; a slower reader is closed with 1008 */
    int ping_interval_ms;      /* 0 = no pings */
    char *api_socket;          /* owned: path */
    mode_t api_socket_mode;
    char *api_socket_group; /* owned: group name, or NULL */
    int api_threads;
    size_t api_max_body;
    int api_max_connections; /* per caller uid on a site's API socket */
    int log_level;           /* LOG_DEBUG..LOG_ERROR from log.h */
    int shutdown_timeout_ms;
    char **public_channels; /* owned: patterns anyone may subscribe to */
    size_t npublic_channels;
    char **client_publish; /* owned: patterns subscribers may publish into */
    size_t nclient_publish;
    char **presence_channels; /* owned: patterns that track members */
    size_t npresence_channels;
    int max_subscriptions; /* channels per connection */
    char *rpc_socket;      /* owned: php-fpm, "unix:PATH" or "HOST:PORT"; NULL = RPC off */
    char *rpc_script;      /* owned: absolute path of the PHP script */
    int rpc_timeout_ms;
    int rpc_max_per_conn; /* calls in flight per connection */
    int rpc_max_inflight; /* calls in flight for the site, hooks included */
    char **rpc_hooks;     /* owned: "connect", "disconnect", "subscribe" */
    size_t nrpc_hooks;
    unsigned hooks;             /* resolved: CFG_HOOK_* bits from rpc_hooks */
    int history_size;           /* messages kept per stream; 0 = no history */
    int history_ttl;            /* seconds a message is kept */
    uint64_t history_max_bytes; /* memory for the site's kept messages */
    char *history_file;         /* owned: kept across restarts here, or NULL */
    int max_connections;        /* open WebSockets in total; 0 = no limit */
    int max_connections_per_ip; /* per client address; 0 = no limit */
    int connect_rate;           /* new WebSockets per second per client address; 0 = no limit */
    int connect_burst;          /* new WebSockets allowed at once above connect_rate */
    char **trusted_proxies;     /* owned: "unix", addresses, ADDRESS/BITS */
    size_t ntrusted_proxies;
    int command_rate;  /* browser commands per second per connection; 0 = no limit */
    int command_burst; /* commands allowed at once above the rate */
    char *user;        /* owned: run as this user after binding, or NULL */
    char *group;       /* owned: and this group, or NULL (the user's) */
    char *file;        /* owned: the config file's path, or NULL */
    /* Per site (in sites[i]; the top level holds the [herald] defaults) */
    char *site;           /* owned: the site's name */
    char *host;           /* owned: the Host this site answers, or NULL = any */
    char **publish_uids;  /* owned: users or uids allowed on the API socket */
    size_t npublish_uids; /* 0 = any caller that can open the socket */
    uid_t *uids;          /* owned: resolved publish_uids */
    size_t nuids;
    /* Top level only */
    struct cfg **sites; /* owned: one per site, in the file's order; never empty */
    size_t nsites;
    int explicit_sites; /* 1 when the file has [site] sections */
};

#define CFG_HOOK_CONNECT 0x1
#define CFG_HOOK_DISCONNECT 0x2
#define CFG_HOOK_SUBSCRIBE 0x4

enum cfg_action {
    CFG_RUN,     /* start the daemon */
    CFG_CHECK,   /* --check-config: validate, print, exit */
    CFG_EXIT_OK, /* --help or --version printed: exit 0 */
};

/*
 * Build the configuration from defaults, then -c FILE, then flags, and
 * validate it. Returns 0 with *out filled and *action set, or -1 with
 * *cause set (the caller prints it, frees it, and exits 1).
 */
int cfg_load(int argc, char **argv, struct cfg *out, enum cfg_action *action, char **cause);

/*
 * For a reload: every setting of next that may not change while running
 * (no CFG_RELOAD) and differs from running gets running's value back, with
 * a warning logged for each, at the top level and in each site (the sites
 * must be the same: cfg_same_sites). Returns how many were kept.
 */
int cfg_keep_restart_only(const struct cfg *running, struct cfg *next);

/*
 * May a reload go from running to next? Adding, removing, renaming or
 * reordering sites needs a restart. Returns 1, or 0 with *cause set.
 */
int cfg_same_sites(const struct cfg *running, const struct cfg *next, char **cause);

/* The site index whose name is name, or -1. */
int cfg_site_index(const struct cfg *c, const char *name);

/* Release everything cfg_load stored in *c. */
void cfg_free(struct cfg *c);

/*
 * The INI key of the i-th setting in the table, or NULL past the end: lets
 * tests and tools enumerate every key (docs/config.md, herald.ini.example).
 */
const char *cfg_key_name(size_t i);

#endif

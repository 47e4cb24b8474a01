/*
 * cfg_types.h -- the types of a configuration: struct cfg, the snapshot
 * every module reads (the process's settings), struct cfg_site (one
 * site's), and what cfg_load asks the caller to do.
 *
 * Owns:       the definitions only; cfg.h declares the functions.
 * Called by:  cfg.h, which every user of the configuration includes, and
 *             cfg_build.h, which embeds a struct cfg in the snapshot under
 *             construction.
 * Invariants: types and constants only, and no include of cfg.h: cfg.c
 *             includes cfg_build.h, so if cfg_build.h took struct cfg from
 *             cfg.h the two would include each other (haproxy's X-t.h
 *             beside X.h, shared/STYLE.md 3.1).
 */
#ifndef HERALD_CFG_TYPES_H
#define HERALD_CFG_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * One site's settings: those a [site NAME] section may set (CFG_SITE in
 * cfg_defs), starting from the [herald] values, and what is resolved from
 * them. Without [site] sections there is one site, "default", made of the
 * [herald] values. (h2o's configurator levels: a setting is global, or
 * per site with a global default; never both places at once.)
 */
struct cfg_site {
    char *site;    /* owned: the site's name */
    char *host;    /* owned: the Host this site answers, or NULL = any */
    char *ws_path; /* owned: e.g. "/ws" */
    char *secret;  /* owned: HS256 key (from secret or secret_file) */
    size_t secret_len;
    int dev_secret; /* 1 when the embedded development secret is in use */
    int allow_anonymous;
    char **origins;   /* owned: allowed Origin values */
    size_t norigins;  /* 0 = any origin */
    int token_leeway; /* seconds */
    char *api_socket; /* owned: path */
    mode_t api_socket_mode;
    char *api_socket_group; /* owned: group name, or NULL */
    char **publish_uids;    /* owned: users or uids allowed on the API socket */
    size_t npublish_uids;   /* 0 = any caller that can open the socket */
    uid_t *uids;            /* owned: resolved publish_uids */
    size_t nuids;
    size_t api_max_body;
    int api_max_connections; /* per caller uid on a site's API socket */
    char **public_channels;  /* owned: patterns anyone may subscribe to */
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
    uint64_t history_max_bytes; /* memory for the site's kept messages */
    int command_rate;           /* browser commands per second per connection; 0 = no limit */
    int command_burst;          /* commands allowed at once above the rate */
};

/* The process's settings ([herald] only), and its sites. */
struct cfg {
    char *listen;           /* owned: "HOST:PORT" or "unix:PATH" */
    mode_t listen_mode;     /* for a unix: listener */
    int workers;            /* resolved: 0 in the file means the number of cores */
    size_t max_header_size; /* bytes */
    int handshake_timeout_ms;
    uint64_t max_message_size;
    uint64_t max_queued_bytes; /* per connection; a slower reader is closed with 1008 */
    int ping_interval_ms;      /* 0 = no pings */
    int api_threads;
    int log_level; /* LOG_DEBUG..LOG_ERROR from log.h */
    int shutdown_timeout_ms;
    int history_size;           /* messages kept per stream; 0 = no history */
    int history_ttl;            /* seconds a message is kept */
    char *history_file;         /* owned: kept across restarts here, or NULL */
    int max_connections;        /* open WebSockets in total; 0 = no limit */
    int max_connections_per_ip; /* per client address; 0 = no limit */
    int connect_rate;           /* new WebSockets per second per client address; 0 = no limit */
    int connect_burst;          /* new WebSockets allowed at once above connect_rate */
    char **trusted_proxies;     /* owned: "unix", addresses, ADDRESS/BITS */
    size_t ntrusted_proxies;
    char *user;             /* owned: run as this user after binding, or NULL */
    char *group;            /* owned: and this group, or NULL (the user's) */
    char *engine;           /* owned: "memory" (this node alone) or "redis" (nodes share one) */
    char *node_name;        /* owned: resolved: this node's name, "<host>-<pid>" unless set */
    char *redis_address;    /* owned: "HOST:PORT" or "unix:PATH"; NULL when not set */
    char *redis_password;   /* owned: resolved from redis_password_file; NULL = no AUTH */
    int redis_db;           /* SELECT it when not 0 */
    char *redis_prefix;     /* owned: starts every key Herald writes, e.g. "herald:" */
    int redis_timeout_ms;   /* a Redis command's deadline; a slower answer drops the link */
    char **redis_sentinels; /* owned: "HOST:PORT" of each Sentinel, instead of redis_address */
    size_t nredis_sentinels;
    char *redis_sentinel_master; /* owned: the master's name the Sentinels watch, or NULL */
    char *metrics_listen;        /* owned: "HOST:PORT" of the Prometheus listener, or NULL */
    char *file;                  /* owned: the config file's path, or NULL */
    struct cfg_site **sites;     /* owned: one per site, in the file's order; never empty */
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

#endif

/*
 * cfg_build.h -- the building of a struct cfg, shared by cfg's files only:
 * the settings table and its types, the snapshot under construction
 * (struct cfg_build), and the steps each file adds to it. Nothing outside
 * lib/cfg includes it.
 *
 * Owns:       the types; the table itself is defined in cfg.c.
 * Called by:  cfg.c (the table, storing values, copies, sites, load and
 *             reload), cfg_file.c (the INI file), cfg_flags.c (the command
 *             line) and cfg_resolve.c (what depends on the machine or on
 *             other settings).
 * Invariants: main thread only, as cfg_load is; a struct cfg_build lives
 *             for one cfg_load call and no other thread sees it. Every
 *             value read from a source (default, file, flag) is stored by
 *             cfg_set_value, so all sources share one parser per setting.
 * Errors:     as cfg.c says: -1 with *cause set to one malloc'd line that
 *             names where the value came from; secrets are never echoed.
 */
#ifndef HERALD_CFG_BUILD_H
#define HERALD_CFG_BUILD_H

#include <stddef.h>
#include <stdio.h>

#include "cfg_types.h" /* not cfg.h: cfg.c includes this header, and the two would circle */

#define CFG_SITE_NAME_MAX 32
#define CFG_WORKERS_MAX 256

/*
 * Every setting, in the order of cfg_defs[] (which is indexed by it): code
 * reaches a setting by name here, so a misspelt one does not compile.
 */
enum cfg_key {
    CFG_KEY_LISTEN,
    CFG_KEY_LISTEN_MODE,
    CFG_KEY_WS_PATH,
    CFG_KEY_WORKERS,
    CFG_KEY_SECRET,
    CFG_KEY_SECRET_FILE,
    CFG_KEY_ALLOW_ANONYMOUS,
    CFG_KEY_ALLOWED_ORIGINS,
    CFG_KEY_TOKEN_LEEWAY,
    CFG_KEY_MAX_HEADER_SIZE,
    CFG_KEY_HANDSHAKE_TIMEOUT,
    CFG_KEY_MAX_MESSAGE_SIZE,
    CFG_KEY_MAX_QUEUED_BYTES,
    CFG_KEY_PING_INTERVAL,
    CFG_KEY_API_SOCKET,
    CFG_KEY_API_SOCKET_MODE,
    CFG_KEY_API_SOCKET_GROUP,
    CFG_KEY_HOST,
    CFG_KEY_PUBLISH_UIDS,
    CFG_KEY_API_THREADS,
    CFG_KEY_API_MAX_CONNECTIONS,
    CFG_KEY_API_MAX_BODY,
    CFG_KEY_LOG_LEVEL,
    CFG_KEY_SHUTDOWN_TIMEOUT,
    CFG_KEY_PUBLIC_CHANNELS,
    CFG_KEY_CLIENT_PUBLISH,
    CFG_KEY_PRESENCE_CHANNELS,
    CFG_KEY_MAX_SUBSCRIPTIONS,
    CFG_KEY_RPC_SOCKET,
    CFG_KEY_RPC_SCRIPT,
    CFG_KEY_RPC_TIMEOUT,
    CFG_KEY_RPC_MAX_PER_CONN,
    CFG_KEY_RPC_MAX_INFLIGHT,
    CFG_KEY_RPC_HOOKS,
    CFG_KEY_HISTORY_SIZE,
    CFG_KEY_HISTORY_TTL,
    CFG_KEY_HISTORY_MAX_BYTES,
    CFG_KEY_HISTORY_FILE,
    CFG_KEY_MAX_CONNECTIONS,
    CFG_KEY_MAX_CONNECTIONS_PER_IP,
    CFG_KEY_CONNECT_RATE,
    CFG_KEY_CONNECT_BURST,
    CFG_KEY_TRUSTED_PROXIES,
    CFG_KEY_COMMAND_RATE,
    CFG_KEY_COMMAND_BURST,
    CFG_KEY_USER,
    CFG_KEY_GROUP,
    CFG_KEY_ENGINE,
    CFG_KEY_NODE_NAME,
    CFG_KEY_REDIS_ADDRESS,
    CFG_KEY_REDIS_PASSWORD_FILE,
    CFG_KEY_REDIS_DB,
    CFG_KEY_REDIS_PREFIX,
    CFG_KEY_REDIS_TIMEOUT,
    CFG_KEY_REDIS_SENTINELS,
    CFG_KEY_REDIS_SENTINEL_MASTER,
    CFG_KEY_METRICS_LISTEN,
    CFG_NKEYS,
};

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
    CFG_NTYPES,
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
    struct cfg c;        /* the snapshot; handed to the caller on success (first: see cfg.c) */
    struct cfg_site s;   /* the site being built: [herald]'s values, or a [site]'s */
    char *secret_file;   /* owned: path from secret_file or --secret-file */
    const char *file;    /* borrowed: the -c path, for messages */
    int src[CFG_NKEYS];  /* enum cfg_src of each setting */
    int line[CFG_NKEYS]; /* line in the file of each setting read from it */
    FILE *fp;            /* owned while the file is read */
    char *buf;           /* owned: getline buffer */
    size_t bufsz;        /* its size */
    int lineno;          /* line the reader handed to inih last */
    int indented;        /* that line began with blanks */
    int err_line;        /* line of the error in err */
    char *err;           /* owned: the first error found, "FILE:LINE: ..." */
    char *redis_password_file;  /* owned: path from redis_password_file; read into c */
    struct cfg_site_src *sites; /* owned: the [site NAME] sections, in the file's order */
    size_t nsites;
    const char *site; /* borrowed: the site being built, for messages; NULL = top */
    int peek;         /* cfg_load_peek: no private file is read, no group membership asked */
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

/* One table flag seen on the command line, applied after the file. */
struct cfg_pending {
    const struct cfg_def *d;
    const char *value; /* borrowed from argv */
};

/* The settings table, in cfg.c: one entry per key. */
extern const struct cfg_def cfg_defs[CFG_NKEYS];

/* -- cfg.c: the table and storing values ---------------------------------- */

/* The table entry for an INI key, or NULL. */
const struct cfg_def *cfg_def_find(const char *name);

/*
 * Parse v for setting d and store it in b. Returns 0, or -1 with *why set
 * to "expected ..., got 'v'" (never echoing a secret).
 */
int cfg_set_value(struct cfg_build *b, const struct cfg_def *d, const char *v, char **why);

/* Is another CFG_ONE_OF setting than d already set (non-empty) from src? It, or NULL. */
const struct cfg_def *cfg_one_of_conflict(const struct cfg_build *b, const struct cfg_def *d,
                                          int src);

/* -- cfg_file.c: the INI file --------------------------------------------- */

/*
 * Read the -c file, b->file, into b: [herald] values are stored, [site NAME]
 * sections kept in b->sites. Returns 0, or -1 with *cause set.
 */
int cfg_file_load(struct cfg_build *b, char **cause);

/* -- cfg_flags.c: the command line ---------------------------------------- */

/*
 * Scan argv: -c, --check-config, --help, --version, and table flags into
 * pend[] (room for argc). Returns 0, 1 when --help or --version was
 * printed, or -1 with *cause set.
 */
int cfg_flags_scan(int argc, char **argv, const char **file, struct cfg_pending *pend,
                   size_t *npend, enum cfg_action *action, char **cause);

/*
 * Apply the flags in order, after the file (only those of per-site keys
 * when site_only: again over a site's own values, so flags still win).
 * Returns 0, or -1 with *cause set.
 */
int cfg_flags_apply(struct cfg_build *b, const struct cfg_pending *pend, size_t npend,
                    int site_only, char **cause);

/* -- cfg_resolve.c: values that depend on the machine or other settings --- */

/* Resolve a site's values that depend on the machine or on other settings. 0, or -1 with *cause. */
int cfg_resolve(struct cfg_build *b, char **cause);

/*
 * Resolve the process's values, once, before the sites: the number of
 * workers (0 means one per core), the node's name, the Redis password read
 * from its file, and what the engine needs. 0, or -1 with *cause.
 */
int cfg_resolve_global(struct cfg_build *b, char **cause);

#endif

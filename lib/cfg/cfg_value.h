/*
 * cfg_value.h -- the value parsers and string validators behind the
 * settings table of cfg.c: numbers, sizes, durations, modes, booleans,
 * lists, listen addresses, socket and URL paths, origins, the Redis
 * engine's address, key prefix and node name.
 *
 * Owns:       nothing; these are pure functions of their arguments.
 * Called by:  cfg.c, whose table points at them; cfg_resolve.c;
 *             tests/unit/test_cfg_value.c.
 * Invariants: no I/O, no global state, safe on any thread. Only the
 *             validators' messages and cfg_parse_list's items are allocated.
 * Errors:     parsers return 0, or -1 with *out untouched; validators and
 *             cfg_parse_list return 0, or -1 with *why set to one malloc'd
 *             line such as "expected ..., got 'VALUE'" for the caller to free.
 * Spec notes: cfg_parse_size, cfg_parse_duration_ms and cfg_listen_is_local
 *             are public API too: cfg.h includes this header, so its
 *             callers reach them as before. This header needs nothing of
 *             cfg.h (cfg.c depends on it, never the reverse).
 * Tests:      tests/unit/test_cfg_value.c.
 */
#ifndef HERALD_CFG_VALUE_H
#define HERALD_CFG_VALUE_H

#include <stddef.h>
#include <stdint.h>

/* A node's name: at most this long, of these characters (cfg_resolve.c builds one too). */
#define CFG_NODE_NAME_MAX 64
#define CFG_NODE_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define CFG_REDIS_PREFIX_MAX 64

/* Units of the values: sizes are in bytes, durations in milliseconds. */
#define CFG_K 1024LL
#define CFG_SECOND 1000LL
#define CFG_MINUTE (60 * CFG_SECOND)
#define CFG_HOUR (60 * CFG_MINUTE)

/* Is this listen address on loopback (127.0.0.0/8, ::1, localhost) or a unix: path? */
int cfg_listen_is_local(const char *listen);

/*
 * Parse a size ("512", "8k", "1M", "2G") or a duration ("250ms", "10s",
 * "2m", "1h"; a bare number is seconds). Return 0, or -1 when malformed
 * or out of range.
 */
int cfg_parse_size(const char *s, uint64_t *out);
int cfg_parse_duration_ms(const char *s, int64_t *out);

/*
 * Parse a decimal integer with an optional leading '-' and nothing else
 * (no blanks, no '+'). Returns 0, or -1 when malformed or outside long long.
 */
int cfg_parse_int(const char *s, long long *out);

/* Parse one to six octal digits, such as "0660", into mode bits. Returns 0 or -1. */
int cfg_parse_mode(const char *s, long long *out);

/* Parse yes/no, true/false, on/off or 1/0, in any case, into 1 or 0. Returns 0 or -1. */
int cfg_parse_bool(const char *s, long long *out);

/*
 * Split v on blanks, tabs and commas into items, passing each to check
 * (if not NULL). Returns 0 with *out a new list of *nout malloc'd items
 * (NULL and 0 when v holds none), or -1 with *why set by check and nothing
 * stored. Free the list with cfg_free_list.
 */
int cfg_parse_list(const char *v, int (*check)(const char *item, char **why), char ***out,
                   size_t *nout, char **why);

/* Free a list from cfg_parse_list: its n items, then the array. NULL, 0 is a no-op. */
void cfg_free_list(char **list, size_t n);

/*
 * A listen address: "HOST:PORT" with an IPv4 address or a DNS name,
 * "[IPv6]:PORT", or "unix:" followed by a valid socket path (see below).
 * The port is 1 to 65535. Returns 0, or -1 with *why set.
 */
int cfg_check_listen(const char *v, char **why);

/* A TCP listen address, or "" (none): as cfg_check_listen, without unix:. 0, or -1 with *why. */
int cfg_check_tcp_listen(const char *v, char **why);

/* An absolute path short enough for sockaddr_un. Returns 0, or -1 with *why set. */
int cfg_check_socket_path(const char *v, char **why);

/*
 * A URL path: starts with '/', and has no control characters, blanks, DEL,
 * '?' or '#'. Returns 0, or -1 with *why set.
 */
int cfg_check_ws_path(const char *v, char **why);

/*
 * An Origin value: "scheme://host[:port]" with no path, or the literal
 * "null". Returns 0, or -1 with *why set.
 */
int cfg_check_origin(const char *v, char **why);

/* A channel name or prefix* pattern (chan.h). */
int cfg_check_pattern(const char *v, char **why);

/* Empty (RPC off), or an address as for listen. */
int cfg_check_rpc_socket(const char *v, char **why);

/* Empty, or an absolute path to the PHP script. */
int cfg_check_script(const char *v, char **why);

/* Empty, or an absolute path. */
int cfg_check_abs_path(const char *v, char **why);

/* "unix", an IPv4 or IPv6 address, or ADDRESS/BITS. */
int cfg_check_proxy(const char *v, char **why);

/* One of connect, disconnect, subscribe. */
int cfg_check_hook(const char *v, char **why);

/* Empty (any host), or a host name: letters, digits, dots and dashes, no port. */
int cfg_check_host(const char *v, char **why);

/* A user name or a numeric uid (whether the user exists is checked by cfg_resolve.c). */
int cfg_check_uid(const char *v, char **why);

/* memory or redis. */
int cfg_check_engine(const char *v, char **why);

/*
 * Empty (not set), "unix:" and a socket path, or HOST:PORT where HOST is a
 * numeric IPv4 address, an IPv6 address in brackets, or localhost: the
 * link connects without blocking, so no name is looked up.
 */
int cfg_check_redis_address(const char *v, char **why);

/* One Sentinel: a redis_address that is not a unix socket's (Sentinels name masters by IP). */
int cfg_check_redis_sentinel(const char *v, char **why);

/*
 * 1 to 64 bytes of printable ASCII, no blanks, and no '{' or '}', which
 * would break the Redis Cluster hash tags of the keys it starts.
 */
int cfg_check_redis_prefix(const char *v, char **why);

/* Empty (derived from the host name), or 1 to 64 of A-Z a-z 0-9 . _ - */
int cfg_check_node_name(const char *v, char **why);

#endif

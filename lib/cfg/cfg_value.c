/*
 * cfg_value.c -- the value parsers and string validators of the settings
 * table: what "8k", "30s", "0660", "yes", "a, b c" or "[::1]:9601" mean,
 * and whether a path, listen address or origin is well formed. cfg.c
 * decides which setting gets which parser; this file only reads strings.
 *
 * Owns:       nothing; every function is pure.
 * Called by:  cfg.c (its settings table, store_list, cfg_free) and
 *             cfg_resolve.c (resolve_secret, resolve_uids) only; and the
 *             unit tests.
 * Invariants: no I/O and no global state, so safe on any thread. Numbers
 *             are strict: decimal digits only, with no blanks, no '+' and no
 *             hex, and overflow is an error, never a wrap. That is why they
 *             go through parse_digits rather than strtoull, which skips
 *             leading blanks and accepts a sign.
 * Errors:     parsers return 0, or -1 with *out untouched; the caller words
 *             the message. Validators return 0, or -1 with *why set to one
 *             malloc'd line that quotes the value (never a secret: no
 *             validator is applied to one).
 * Tests:      tests/unit/test_cfg_value.c; the messages as the user sees
 *             them, through cfg_load, are checked there too.
 */
#include "cfg_value.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "chan.h"
#include "net.h"
#include "xmalloc.h"

/* ---- Numbers ---------------------------------------------------------- */

/* Accumulate decimal digits; return the first non-digit, or NULL if none or on overflow. */
static const char *parse_digits(const char *s, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (v > (limit - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

/* Declared in cfg_value.h. A suffix k, M or G (either case) multiplies by 2^10, 2^20 or 2^30. */
int cfg_parse_size(const char *s, uint64_t *out)
{
    static const char suffixes[] = "kKmMgG";
    const char *u;
    unsigned shift = 0;
    uint64_t v;
    const char *p = parse_digits(s, UINT64_MAX, &v);

    if (p == NULL)
        return -1;
    if (*p != '\0') {
        u = strchr(suffixes, *p);
        if (u == NULL || p[1] != '\0')
            return -1;
        shift = 10 * (unsigned)(1 + (u - suffixes) / 2);
    }
    if (v > UINT64_MAX >> shift)
        return -1;
    *out = v << shift;
    return 0;
}

/* Declared in cfg_value.h. No suffix means seconds; "ms", "s", "m" and "h" are lower case only. */
int cfg_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {
        {"", CFG_SECOND}, {"ms", 1}, {"s", CFG_SECOND}, {"m", CFG_MINUTE}, {"h", CFG_HOUR}};
    uint64_t v;
    const char *p = parse_digits(s, INT64_MAX, &v);

    if (p == NULL)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (v > (uint64_t)(INT64_MAX / units[i].ms))
            return -1;
        *out = (int64_t)v * units[i].ms;
        return 0;
    }
    return -1;
}

int cfg_parse_int(const char *s, long long *out)
{
    int neg = *s == '-';
    uint64_t v;
    const char *p = parse_digits(s + neg, (uint64_t)LLONG_MAX, &v);

    if (p == NULL || *p != '\0')
        return -1;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

int cfg_parse_mode(const char *s, long long *out)
{
    long long v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 6 || strspn(s, "01234567") != n)
        return -1;
    for (; *s != '\0'; s++)
        v = v * 8 + (*s - '0');
    *out = v;
    return 0;
}

int cfg_parse_bool(const char *s, long long *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* ---- Validators for strings ------------------------------------------- */

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host (brackets removed), checking
 * the port. Returns 0, or -1 with *why set. Does not look at "unix:".
 */
static int split_host_port(const char *s, char *host, size_t size, int *v6, char **why)
{
    const char *colon = strrchr(s, ':');
    const char *h = s, *hend = colon;
    uint64_t p;
    const char *end;

    *v6 = 0;
    if (colon == NULL || colon == s) {
        *why = xasprintf("expected HOST:PORT or unix:/path, got '%s'", s);
        return -1;
    }
    if (*s == '[') {
        if (colon[-1] != ']' || colon - s < 3) {
            *why = xasprintf("expected [IPv6]:PORT, got '%s'", s);
            return -1;
        }
        h = s + 1;
        hend = colon - 1;
        *v6 = 1;
    }
    end = parse_digits(colon + 1, 99999, &p);
    if (end == NULL || *end != '\0' || p < 1 || p > 65535) {
        *why = xasprintf("port must be from 1 to 65535, got '%s'", s);
        return -1;
    }
    if ((size_t)(hend - h) >= size) {
        *why = xasprintf("host name too long in '%s'", s);
        return -1;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    return 0;
}

/* A host is an IPv4 address, a bracketed IPv6 address or a DNS name. */
static int check_host(const char *host, int v6, const char *s, char **why)
{
    unsigned char addr[16];
    size_t n = strlen(host);

    if (v6) {
        if (inet_pton(AF_INET6, host, addr) == 1)
            return 0;
        *why = xasprintf("'%s' is not an IPv6 address", host);
        return -1;
    }
    if (strspn(host, "0123456789.") == n) {
        if (inet_pton(AF_INET, host, addr) == 1)
            return 0;
        *why = xasprintf("'%s' is not an IPv4 address", host);
        return -1;
    }
    if (n > 253 || host[0] == '-' || host[0] == '.' ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != n) {
        *why = xasprintf("expected HOST:PORT with an IP address or host name, got '%s'", s);
        return -1;
    }
    return 0;
}

int cfg_check_listen(const char *v, char **why)
{
    char host[256];
    int v6;

    if (strncmp(v, "unix:", 5) == 0)
        return cfg_check_socket_path(v + 5, why);
    if (split_host_port(v, host, sizeof host, &v6, why) < 0)
        return -1;
    return check_host(host, v6, v, why);
}

int cfg_check_tcp_listen(const char *v, char **why)
{
    if (v[0] == '\0')
        return 0;
    if (strncmp(v, "unix:", 5) == 0) {
        *why = xasprintf("expected HOST:PORT (a TCP address), got '%s'", v);
        return -1;
    }
    return cfg_check_listen(v, why);
}

int cfg_check_socket_path(const char *v, char **why)
{
    struct sockaddr_un sun;

    if (v[0] != '/') {
        *why = xasprintf("expected an absolute socket path, got '%s'", v);
        return -1;
    }
    if (strlen(v) >= sizeof sun.sun_path) {
        *why = xasprintf("socket path longer than %zu bytes", sizeof sun.sun_path - 1);
        return -1;
    }
    return 0;
}

int cfg_check_ws_path(const char *v, char **why)
{
    if (v[0] != '/') {
        *why = xasprintf("expected a path starting with '/', got '%s'", v);
        return -1;
    }
    for (const char *p = v; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
            *why = xasprintf("expected a plain path without blanks, '?' or '#', got '%s'", v);
            return -1;
        }
    }
    return 0;
}

int cfg_check_origin(const char *v, char **why)
{
    const char *sep = strstr(v, "://");

    if (strcmp(v, "null") == 0)
        return 0;
    if (sep == NULL || sep == v || sep[3] == '\0' || strchr(sep + 3, '/') != NULL) {
        *why = xasprintf("expected origins such as https://example.com (no path), got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_pattern(const char *v, char **why)
{
    if (!chan_pattern_valid(v)) {
        *why = xasprintf("expected channel names or prefix* patterns of A-Z a-z 0-9 _ . : @ / "
                         "= + - (at most %d bytes), got '%s'",
                         CHAN_MAX_NAME, v);
        return -1;
    }
    return 0;
}

int cfg_check_rpc_socket(const char *v, char **why)
{
    const char *colon = strrchr(v, ':');
    unsigned char addr[16];
    char host[64];
    size_t n;

    if (v[0] == '\0' || strncmp(v, "unix:", 5) == 0)
        return v[0] == '\0' ? 0 : cfg_check_listen(v, why);
    if (cfg_check_listen(v, why) < 0)
        return -1;
    /* The worker connects without blocking: no name lookup, only an address. */
    n = (size_t)(colon - v);
    if (v[0] == '[') {
        v++;
        n -= 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)n, v);
    if (strcasecmp(host, "localhost") == 0 || net_parse_addr(host, addr) == 0)
        return 0;
    *why = xasprintf("expected an IP address or localhost, not a name to look up, got '%s'", host);
    return -1;
}

int cfg_check_script(const char *v, char **why)
{
    if (v[0] != '\0' && v[0] != '/') {
        *why = xasprintf("expected an absolute path to the PHP script, got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_abs_path(const char *v, char **why)
{
    if (v[0] != '\0' && v[0] != '/') {
        *why = xasprintf("expected an absolute path, got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_proxy(const char *v, char **why)
{
    unsigned char addr[16];
    int bits;

    if (strcmp(v, "unix") == 0 || net_parse_cidr(v, addr, &bits) == 0)
        return 0;
    *why = xasprintf("expected unix, an IP address or ADDRESS/BITS, got '%s'", v);
    return -1;
}

int cfg_check_hook(const char *v, char **why)
{
    if (strcmp(v, "connect") != 0 && strcmp(v, "disconnect") != 0 && strcmp(v, "subscribe") != 0) {
        *why = xasprintf("expected connect, disconnect or subscribe, got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_host(const char *v, char **why)
{
    size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");

    if (n > 253 || v[n] != '\0' || (n > 0 && (v[0] == '.' || v[0] == '-'))) {
        *why = xasprintf("expected a host name such as shop.example.com (no port), got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_uid(const char *v, char **why)
{
    size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

    if (n == 0 || n > 32 || v[n] != '\0' || v[0] == '-') {
        *why = xasprintf("expected a user name or a numeric uid, got '%s'", v);
        return -1;
    }
    return 0;
}

int cfg_check_engine(const char *v, char **why)
{
    if (strcmp(v, "memory") != 0 && strcmp(v, "redis") != 0) {
        *why = xasprintf("expected memory or redis, got '%s'", v);
        return -1;
    }
    return 0;
}

/* Like rpc_socket, but IPv6 only in brackets: "::1:6379" is itself an IPv6 address. */
int cfg_check_redis_address(const char *v, char **why)
{
    unsigned char addr[16];
    char host[256];
    int v6;

    if (v[0] == '\0')
        return 0;
    if (strncmp(v, "unix:", 5) == 0)
        return cfg_check_socket_path(v + 5, why);
    if (split_host_port(v, host, sizeof host, &v6, why) < 0)
        return -1;
    if (v6)
        return check_host(host, v6, v, why);
    if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, addr) == 1)
        return 0;
    if (inet_pton(AF_INET6, host, addr) == 1)
        *why = xasprintf("an IPv6 address goes in brackets, as [::1]:6379, got '%s'", v);
    else if (strspn(host, "0123456789.") == strlen(host))
        *why = xasprintf("'%s' is not an IPv4 address", host);
    else
        *why =
            xasprintf("expected an IP address or localhost, not a name to look up, got '%s'", host);
    return -1;
}

int cfg_check_redis_sentinel(const char *v, char **why)
{
    if (strncmp(v, "unix:", 5) == 0) {
        *why = xasprintf("a Sentinel is reached over TCP: IP:PORT, got '%s'", v);
        return -1;
    }
    return cfg_check_redis_address(v, why);
}

int cfg_check_redis_prefix(const char *v, char **why)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= CFG_REDIS_PREFIX_MAX;

    for (const unsigned char *p = (const unsigned char *)v; ok && *p != '\0'; p++)
        ok = *p > ' ' && *p < 0x7f && *p != '{' && *p != '}';
    if (!ok) {
        *why = xasprintf("expected 1 to %d printable ASCII characters without blanks, '{' or "
                         "'}', got '%s'",
                         CFG_REDIS_PREFIX_MAX, v);
        return -1;
    }
    return 0;
}

int cfg_check_node_name(const char *v, char **why)
{
    size_t n = strspn(v, CFG_NODE_NAME_CHARS);

    if (v[n] != '\0' || n > CFG_NODE_NAME_MAX) {
        *why = xasprintf("expected 1 to %d of A-Z a-z 0-9 . _ -, got '%s'", CFG_NODE_NAME_MAX, v);
        return -1;
    }
    return 0;
}

/* ---- Listen addresses ------------------------------------------------- */

/* Declared in cfg_value.h. A malformed address is not local. */
int cfg_listen_is_local(const char *listen)
{
    char host[256], *why = NULL;
    unsigned char a[16];
    int v6;

    if (listen == NULL)
        return 0;
    if (strncmp(listen, "unix:", 5) == 0)
        return 1;
    if (split_host_port(listen, host, sizeof host, &v6, &why) < 0) {
        free(why);
        return 0;
    }
    if (v6) {
        if (inet_pton(AF_INET6, host, a) != 1)
            return 0;
        if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0)
            return 1;
        /* ::ffff:127.x.y.z, IPv4-mapped loopback */
        return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && a[12] == 127;
    }
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    return strcasecmp(host, "localhost") == 0;
}

/* ---- Lists ------------------------------------------------------------ */

void cfg_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int cfg_parse_list(const char *v, int (*check)(const char *item, char **why), char ***out,
                   size_t *nout, char **why)
{
    char **list = NULL;
    size_t n = 0;

    while (*v != '\0') {
        size_t len;
        char *item;

        v += strspn(v, " \t,");
        len = strcspn(v, " \t,");
        if (len == 0)
            break;
        item = xstrndup(v, len);
        v += len;
        if (check != NULL && check(item, why) < 0) {
            free(item);
            cfg_free_list(list, n);
            return -1;
        }
        list = xrealloc(list, (n + 1) * sizeof *list);
        list[n++] = item;
    }
    *out = list;
    *nout = n;
    return 0;
}

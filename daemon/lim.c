/*
 * lim.c -- connection limits (see lim.h).
 *
 * Owns:       struct lim_addr allocations.
 * Called by:  worker threads.
 * Invariants: each stripe's table is touched only under its mutex; the
 *             total is an atomic, raised before the per-address count and
 *             lowered again if that count refuses.
 */
#include "lim.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cfg.h"
#include "net.h"
#include "stripe.h"
#include "xmalloc.h"

struct lim_addr {
    UT_hash_handle hh;
    long count;
    char addr[];               /* NUL-terminated */
};

void lim_init(struct lim *l)
{
    atomic_init(&l->total, 0);
    for (int i = 0; i < LIM_STRIPES; i++) {
        pthread_mutex_init(&l->lock[i], NULL);
        l->table[i] = NULL;
    }
}

void lim_free(struct lim *l)
{
    struct lim_addr *a, *tmp;

    for (int i = 0; i < LIM_STRIPES; i++) {
        HASH_ITER(hh, l->table[i], a, tmp) {
            HASH_DEL(l->table[i], a);
            free(a);
        }
        pthread_mutex_destroy(&l->lock[i]);
    }
}

/* Does entry ("unix", an address, or ADDRESS/BITS) cover addr? */
static int lim_entry_covers(const char *entry, const char *addr)
{
    unsigned char want[16], got[16];
    int bits;

    if (strcmp(entry, "unix") == 0 || strcmp(addr, "unix") == 0)
        return strcmp(entry, addr) == 0;
    if (net_parse_cidr(entry, want, &bits) < 0 || net_parse_addr(addr, got) < 0)
        return 0;
    for (int i = 0; i < 16 && bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));

        if ((want[i] & mask) != (got[i] & mask))
            return 0;
    }
    return 1;
}

/* Is addr one of the trusted proxies? */
static int lim_trusted(const struct cfg *cfg, const char *addr)
{
    for (size_t i = 0; i < cfg->ntrusted_proxies; i++)
        if (lim_entry_covers(cfg->trusted_proxies[i], addr))
            return 1;
    return 0;
}

/* The peer of fd as text ("unix" for a unix socket). */
static int lim_peer(int fd, char addr[LIM_ADDR_MAX])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const void *src;

    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_UNIX) {
        strcpy(addr, "unix");
        return 0;
    }
    src = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                  : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    return inet_ntop(ss.ss_family, src, addr, LIM_ADDR_MAX) != NULL ? 0 : -1;
}

/*
 * Walk X-Forwarded-For from the right past trusted proxies; copy the first
 * other address into addr. Returns 0, or -1 when there is none usable.
 */
static int lim_forwarded(const struct cfg *cfg, struct http_str xff, char addr[LIM_ADDR_MAX])
{
    unsigned char tmp[16];
    size_t end = xff.len;

    while (end > 0) {
        size_t start = end, a, b;

        while (start > 0 && xff.p[start - 1] != ',')
            start--;
        for (a = start; a < end && (xff.p[a] == ' ' || xff.p[a] == '\t'); a++)
            ;
        for (b = end; b > a && (xff.p[b - 1] == ' ' || xff.p[b - 1] == '\t'); b--)
            ;
        if (b - a == 0 || b - a >= LIM_ADDR_MAX)
            return -1;
        memcpy(addr, xff.p + a, b - a);
        addr[b - a] = '\0';
        if (net_parse_addr(addr, tmp) < 0)
            return -1;
        if (!lim_trusted(cfg, addr))
            return 0;
        end = start > 0 ? start - 1 : 0;
    }
    return -1;
}

int lim_client_addr(const struct cfg *cfg, int fd, const struct http_request *req,
                    char addr[LIM_ADDR_MAX])
{
    const struct http_header *h;
    char fwd[LIM_ADDR_MAX];

    if (lim_peer(fd, addr) < 0)
        return -1;
    if (!lim_trusted(cfg, addr))
        return 0;
    h = http_find_header(req, "X-Forwarded-For");
    if (h != NULL && lim_forwarded(cfg, h->value, fwd) == 0)
        strcpy(addr, fwd);
    return 0;
}

/* One more connection from addr, unless it is at the limit (max >= 1). */
static int lim_addr_take(struct lim *l, const char *addr, long max)
{
    unsigned s = stripe_of(addr, strlen(addr), LIM_STRIPES);
    struct lim_addr *a;
    int ok = 1;

    pthread_mutex_lock(&l->lock[s]);
    HASH_FIND_STR(l->table[s], addr, a);
    if (a == NULL) {
        size_t len = strlen(addr);

        a = xcalloc(1, sizeof *a + len + 1);
        memcpy(a->addr, addr, len);
        HASH_ADD_KEYPTR(hh, l->table[s], a->addr, len, a);
    }
    if (a->count < max)
        a->count++;
    else
        ok = 0;
    pthread_mutex_unlock(&l->lock[s]);
    return ok;
}

enum hs_reason lim_admit(struct lim *l, const struct cfg *cfg, const char *addr)
{
    long total = atomic_fetch_add(&l->total, 1) + 1;

    if (cfg->max_connections > 0 && total > cfg->max_connections) {
        atomic_fetch_sub(&l->total, 1);
        return HS_TOO_MANY;
    }
    if (addr != NULL && !lim_addr_take(l, addr, cfg->max_connections_per_ip)) {
        atomic_fetch_sub(&l->total, 1);
        return HS_ADDR_LIMIT;
    }
    return HS_OK;
}

void lim_release(struct lim *l, const char *addr)
{
    unsigned s;
    struct lim_addr *a;

    atomic_fetch_sub(&l->total, 1);
    if (addr == NULL)
        return;
    s = stripe_of(addr, strlen(addr), LIM_STRIPES);
    pthread_mutex_lock(&l->lock[s]);
    HASH_FIND_STR(l->table[s], addr, a);
    if (a != NULL && --a->count == 0) {
        HASH_DEL(l->table[s], a);
        free(a);
    }
    pthread_mutex_unlock(&l->lock[s]);
}

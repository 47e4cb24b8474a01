/*
 * lim.c -- connection limits (see lim.h).
 *
 * Owns:       struct lim_addr allocations.
 * Called by:  worker threads; main.c (the descriptor budget, the sweep).
 * Invariants: each stripe's table is touched only under its mutex; the
 *             totals are atomics, raised first and lowered again when the
 *             raise passed the limit, so two workers never both take the
 *             last place.
 *
 * The rate is a token bucket per address: connect_burst tokens, refilled
 * at connect_rate a second, one spent per new connection. Its state is two
 * doubles in the address entry, so an address costs one entry whatever it
 * does; an entry with no connection is kept only until its bucket is full
 * again (then it says nothing a fresh entry would not), and only while
 * fewer than LIM_IDLE_MAX such entries exist: past that, forgetting one
 * early gives its address a fresh bucket, which an attacker with that many
 * addresses has anyway.
 */
#include "lim.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cfg.h"
#include "net.h"
#include "stripe.h"
#include "xmalloc.h"

/* A client at exactly connect_rate must not be refused for a rounding error. */
#define LIM_EPSILON 1e-6

struct lim_addr {
    UT_hash_handle hh;
    long count;    /* connections counted by lim_addr_enter */
    double tokens; /* connect_rate bucket, as of stamp */
    double stamp;  /* lim_now() when tokens was last brought up to date */
    char addr[];   /* NUL-terminated */
};

void lim_init(struct lim *l)
{
    atomic_init(&l->total, 0);
    atomic_init(&l->fds, 0);
    atomic_init(&l->fd_max, LONG_MAX);
    atomic_init(&l->naddrs, 0);
    atomic_init(&l->told_no_client, 0);
    for (int i = 0; i < LIM_STRIPES; i++) {
        pthread_mutex_init(&l->lock[i], NULL);
        l->table[i] = NULL;
    }
}

static void lim_forget(struct lim *l, unsigned s, struct lim_addr *a);

double lim_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void lim_free(struct lim *l)
{
    struct lim_addr *a, *tmp;

    for (unsigned i = 0; i < LIM_STRIPES; i++) {
        HASH_ITER (hh, l->table[i], a, tmp) {
            lim_forget(l, i, a);
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

/* Any trusted_proxies entry covering addr. */
int lim_trusted(const struct cfg *cfg, const char *addr)
{
    for (size_t i = 0; i < cfg->ntrusted_proxies; i++)
        if (lim_entry_covers(cfg->trusted_proxies[i], addr))
            return 1;
    return 0;
}

/* getpeername, as inet_ntop writes it. */
int lim_peer(int fd, char addr[LIM_ADDR_MAX])
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
    if (h == NULL || lim_forwarded(cfg, h->value, fwd) != 0)
        return 1;
    strcpy(addr, fwd);
    return 0;
}

int lim_addr_on(const struct cfg *cfg)
{
    return cfg->max_connections_per_ip > 0 || cfg->connect_rate > 0;
}

/* Bring a's bucket up to now: refill at connect_rate, up to connect_burst. */
static void lim_refill(struct lim_addr *a, const struct cfg *cfg, double now)
{
    if (now > a->stamp)
        a->tokens += (now - a->stamp) * cfg->connect_rate;
    if (a->tokens > cfg->connect_burst)
        a->tokens = cfg->connect_burst;
    a->stamp = now;
}

/* An entry with no connection whose bucket is full tells nothing a new one would not. */
static int lim_forgettable(const struct lim_addr *a, const struct cfg *cfg, double now)
{
    return a->count == 0 &&
           (cfg->connect_rate == 0 ||
            a->tokens + (now - a->stamp) * cfg->connect_rate >= cfg->connect_burst - LIM_EPSILON);
}

/* Unlink and free an entry (its stripe locked). */
static void lim_forget(struct lim *l, unsigned s, struct lim_addr *a)
{
    HASH_DEL(l->table[s], a);
    free(a);
    atomic_fetch_sub(&l->naddrs, 1);
}

/* addr's entry in stripe s (locked), made with a full bucket when there is none. */
static struct lim_addr *lim_entry(struct lim *l, unsigned s, const struct cfg *cfg,
                                  const char *addr, double now)
{
    size_t len = strlen(addr);
    struct lim_addr *a;

    HASH_FIND(hh, l->table[s], addr, len, a);
    if (a != NULL)
        return a;
    a = xcalloc(1, sizeof *a + len + 1);
    memcpy(a->addr, addr, len);
    a->tokens = cfg->connect_burst;
    a->stamp = now;
    HASH_ADD_KEYPTR(hh, l->table[s], a->addr, len, a);
    atomic_fetch_add(&l->naddrs, 1);
    return a;
}

enum hs_reason lim_addr_enter(struct lim *l, const struct cfg *cfg, const char *addr, double now)
{
    unsigned s = stripe_of(addr, strlen(addr), LIM_STRIPES);
    enum hs_reason r = HS_OK;
    struct lim_addr *a;

    pthread_mutex_lock(&l->lock[s]);
    a = lim_entry(l, s, cfg, addr, now);
    if (cfg->connect_rate > 0) {
        lim_refill(a, cfg, now);
        if (a->tokens < 1 - LIM_EPSILON)
            r = HS_TOO_FAST;
        else
            a->tokens -= 1;
    }
    if (r == HS_OK && cfg->max_connections_per_ip > 0 && a->count >= cfg->max_connections_per_ip)
        r = HS_ADDR_LIMIT;
    if (r == HS_OK)
        a->count++;
    pthread_mutex_unlock(&l->lock[s]);
    return r;
}

void lim_addr_leave(struct lim *l, const struct cfg *cfg, const char *addr, double now)
{
    unsigned s = stripe_of(addr, strlen(addr), LIM_STRIPES);
    struct lim_addr *a;

    pthread_mutex_lock(&l->lock[s]);
    HASH_FIND_STR(l->table[s], addr, a);
    if (a != NULL && a->count > 0 && --a->count == 0 &&
        (lim_forgettable(a, cfg, now) || atomic_load(&l->naddrs) > LIM_IDLE_MAX))
        lim_forget(l, s, a);
    pthread_mutex_unlock(&l->lock[s]);
}

long lim_sweep(struct lim *l, const struct cfg *cfg, double now)
{
    struct lim_addr *a, *tmp;

    for (unsigned s = 0; s < LIM_STRIPES; s++) {
        pthread_mutex_lock(&l->lock[s]);
        HASH_ITER (hh, l->table[s], a, tmp) {
            if (lim_forgettable(a, cfg, now))
                lim_forget(l, s, a);
        }
        pthread_mutex_unlock(&l->lock[s]);
    }
    return atomic_load(&l->naddrs);
}

enum hs_reason lim_total_take(struct lim *l, const struct cfg *cfg)
{
    long total = atomic_fetch_add(&l->total, 1) + 1;

    if (cfg->max_connections > 0 && total > cfg->max_connections) {
        atomic_fetch_sub(&l->total, 1);
        return HS_TOO_MANY;
    }
    return HS_OK;
}

void lim_total_release(struct lim *l)
{
    atomic_fetch_sub(&l->total, 1);
}

long lim_fd_reserve(const struct cfg *cfg)
{
    long n = LIM_FD_SPARE + (cfg->metrics_listen != NULL ? LIM_FD_METRICS : 0);

    for (size_t i = 0; i < cfg->nsites; i++) {
        n += cfg->sites[i]->api_max_connections;
        if (cfg->sites[i]->rpc_socket != NULL)
            n += cfg->sites[i]->rpc_max_inflight;
    }
    return n;
}

void lim_set_fd_max(struct lim *l, long max)
{
    atomic_store(&l->fd_max, max);
}

int lim_fd_take(struct lim *l)
{
    if (atomic_fetch_add(&l->fds, 1) + 1 > atomic_load(&l->fd_max)) {
        atomic_fetch_sub(&l->fds, 1);
        return -1;
    }
    return 0;
}

void lim_fd_release(struct lim *l)
{
    atomic_fetch_sub(&l->fds, 1);
}

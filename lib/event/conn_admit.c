/*
 * conn_admit.c -- whether a connection may be: the descriptor budget and
 * address limits at accept, and at the upgrade the site that answers, the
 * client's address, its token and the total count (conn.h).
 *
 * Owns:       the refusal log's rate (x->refused_logged, refused_quiet)
 *             and the admission counts a connection takes (c->addr_counted,
 *             total_counted), which conn_free gives back.
 * Called by:  conn.c, on the connection's worker thread.
 * Invariants: every refusal is counted once, in the site's counters when
 *             the site is known, and logged (floods at most a line a second
 *             per worker); a head refused for any reason still counts
 *             against its address's rate.
 */
#include "conn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd.h"
#include "handshake.h"
#include "http.h"
#include "lim.h"
#include "log.h"
#include "tok.h"
#include "xmalloc.h"

/*
 * Log a refusal by address. Those at accept, and too_fast ones anywhere,
 * come in floods: at most one line a second per worker, saying how many
 * were left out.
 */
static void conn_log_refusal(struct conn_ctx *x, const char *addr, enum hs_reason r, int at_accept)
{
    ev_tstamp now = ev_now(x->loop);
    char more[64] = "";

    if (!at_accept && r != HS_TOO_FAST) {
        log_msg(LOG_INFO, "conn", "refused %s: %s", addr, hs_reason_name(r));
        return;
    }
    if (now - x->refused_logged < 1.0) {
        x->refused_quiet++;
        return;
    }
    if (x->refused_quiet > 0)
        snprintf(more, sizeof more, " (and %lu more since the last such line)", x->refused_quiet);
    if (r == HS_TOO_MANY)
        log_msg(LOG_WARN, "conn",
                "refused a client: too_many_connections at accept: WebSockets "
                "hold all %ld descriptors the file limit leaves them (%ld are kept for the API "
                "and RPC)%s",
                atomic_load(&x->hub->lim->fd_max), lim_fd_reserve(x->cfg), more);
    else
        log_msg(LOG_INFO, "conn", "refused %s: %s%s%s", addr, hs_reason_name(r),
                at_accept ? " at accept" : "", more);
    x->refused_logged = now;
    x->refused_quiet = 0;
}

/*
 * Close a socket refused at accept, unread: count it (as conn_stats would)
 * and log it, before the close, so whoever sees it closed finds the line.
 */
static void conn_refuse_at_accept(struct conn_ctx *x, int fd, enum hs_reason r, const char *addr)
{
    struct stats *st = x->nsites == 1 ? &x->sites[0].stats : &x->stats;

    st->handshakes_refused[r]++;
    conn_log_refusal(x, addr, r, 1);
    close(fd);
}

int conn_admit_socket(struct conn_ctx *x, int fd, char addr[LIM_ADDR_MAX], int *counted)
{
    struct lim *l = x->hub->lim;
    enum hs_reason r;

    *counted = 0;
    if (lim_fd_take(l) != 0) {
        conn_refuse_at_accept(x, fd, HS_TOO_MANY, "a client");
        return -1;
    }
    if (!lim_addr_on(x->cfg) || lim_peer(fd, addr) != 0 || lim_trusted(x->cfg, addr))
        return 0;
    r = lim_addr_enter(l, x->cfg, addr, lim_now());
    if (r != HS_OK) {
        lim_fd_release(l);
        conn_refuse_at_accept(x, fd, r, addr);
        return -1;
    }
    *counted = 1;
    return 0;
}

/*
 * Verify the offered token, if any. Fills *claims on success. A token with
 * a "channel" claim is a channel token (herald_channel_token), made for a
 * subscribe command: it is not a connection token, whatever else it holds.
 */
static enum hs_reason conn_authenticate(struct conn *c, const struct hs_result *res,
                                        struct tok_claims *claims)
{
    const struct cfg_site *cfg = conn_cfg(c);
    char decoded[TOK_MAX_LEN];
    const char *why = NULL;
    const char *tok = res->token.p;
    size_t len = res->token.len;
    int r;

    if (len == 0)
        return cfg->allow_anonymous ? HS_OK : HS_NO_TOKEN;
    if (res->token_in_query) {
        r = http_percent_decode(res->token, decoded, sizeof decoded);
        if (r < 0)
            return HS_BAD_TOKEN;
        tok = decoded;
        len = (size_t)r;
    }
    r = tok_verify(tok, len, (const unsigned char *)cfg->secret, cfg->secret_len, time(NULL),
                   cfg->token_leeway, claims);
    if (r != 0) {
        log_msg(LOG_DEBUG, "auth", "conn=%llu token refused: %s", (unsigned long long)c->id,
                tok_strerror(r));
        return HS_BAD_TOKEN;
    }
    if (json_object_get(claims->payload, "channel") != NULL)
        why = "a channel token is not a connection token";
    else if (c->x->ops->on_claims(c, claims->payload, &why) == 0)
        return HS_OK;
    log_msg(LOG_DEBUG, "auth", "conn=%llu token refused: %s", (unsigned long long)c->id, why);
    return HS_BAD_TOKEN;
}

/*
 * Check the client's address (a trusted proxy's client: X-Forwarded-For)
 * against max_connections_per_ip and connect_rate, unless that was done at
 * accept, and count it there until the conn is freed. A trusted proxy that
 * names no client is not limited per address: all its clients would share
 * one address, and one of them could use up everyone's rate.
 */
static enum hs_reason conn_admit_addr(struct conn *c, const struct http_request *req)
{
    const struct cfg *cfg = c->x->cfg;
    struct lim *l = c->x->hub->lim;
    char addr[LIM_ADDR_MAX];
    enum hs_reason r;
    int known;

    if (c->addr_checked || !lim_addr_on(cfg))
        return HS_OK;
    c->addr_checked = 1;
    known = lim_client_addr(cfg, c->fd, req, addr);
    if (known == 1) {
        if (atomic_exchange(&l->told_no_client, 1) == 0)
            log_msg(LOG_WARN, "conn",
                    "the trusted proxy %s names no client in X-Forwarded-For: "
                    "max_connections_per_ip and connect_rate do not apply to its connections "
                    "(see nginx/herald.conf)",
                    addr);
        return HS_OK;
    }
    if (known < 0)
        snprintf(addr, sizeof addr, "unknown");
    r = lim_addr_enter(c->x->hub->lim, cfg, addr, lim_now());
    if (r != HS_OK) {
        conn_log_refusal(c->x, addr, r, 0);
        return r;
    }
    c->addr = xstrdup(addr);
    c->addr_counted = 1;
    return HS_OK;
}

/* Count the connection against max_connections, from its 101 until it leaves OPEN. */
static enum hs_reason conn_admit_total(struct conn *c)
{
    enum hs_reason r = lim_total_take(c->x->hub->lim, c->x->cfg);

    c->total_counted = r == HS_OK;
    if (r != HS_OK)
        conn_log_refusal(c->x, c->addr != NULL ? c->addr : "a client", r, 0);
    return r;
}

/*
 * Pick the site that answers req (by path and Host, hs_site_match) and
 * check the handshake against that site's policy. No site: hs_check's 404,
 * unless the request is wrong in a way found earlier (a POST is still a 405).
 */
static enum hs_reason conn_pick_site(struct conn *c, const struct http_request *req,
                                     struct hs_result *res)
{
    const struct cfg *cfg = c->x->cfg;
    struct hs_policy pol = {.path = NULL};
    int best = -1, score = 0;

    for (size_t i = 0; i < cfg->nsites && score < 2; i++) {
        int m = hs_site_match(req, cfg->sites[i]->ws_path, cfg->sites[i]->host);

        if (m > score) {
            score = m;
            best = (int)i;
        }
    }
    if (best >= 0) {
        c->site = best;
        pol.path = cfg->sites[best]->ws_path;
        pol.origins = (const char *const *)cfg->sites[best]->origins;
        pol.norigins = cfg->sites[best]->norigins;
    }
    return hs_check(req, &pol, res);
}

/*
 * The handshake's policy for a complete head: pick the site, check the
 * client's address, verify the token, count the connection. Returns HS_OK
 * with *claims filled, or the reason to refuse with.
 */
enum hs_reason conn_admit(struct conn *c, const struct http_request *req, struct hs_result *res,
                          struct tok_claims *claims)
{
    enum hs_reason r = conn_pick_site(c, req, res);
    /* Checked even for a head refused on its own: a loop of bad heads pays the rate too. */
    enum hs_reason a = conn_admit_addr(c, req);

    if (r == HS_OK)
        r = a;
    if (r == HS_OK)
        r = conn_authenticate(c, res, claims);
    if (r == HS_OK)
        r = conn_admit_total(c);
    return r;
}

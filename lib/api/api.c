/*
 * api.c -- the FastCGI endpoint's sockets, threads and fairness.
 *
 * Owns:       struct api (see api.h).
 * Called by:  main.c; its threads call apiconn.c for a connection's I/O and
 *             routes.c for the answers.
 * Invariants: every connection is in exactly one place: armed in the epoll
 *             set (EPOLLONESHOT, so one thread takes its next event), held
 *             by one thread, or queued on its site's ready list; its
 *             deadline entry and the list of all connections are kept under
 *             a->lock. Nothing here blocks on a caller: sockets are
 *             non-blocking, and a connection closes without lingering.
 *
 * All threads wait on one epoll set: every site's listener (EPOLLEXCLUSIVE,
 * so one thread wakes per caller) and every connection. A thread reads what
 * a connection has sent and feeds it through the gate (apiconn.c); once a
 * request is whole, it is answered through libfcgi (relay.c) and routes.c,
 * and the answer is written as far as the socket takes it. A thread takes
 * up to API_EVENTS ready connections per wait: under load they pile up, and
 * one call then takes several instead of one call each. Nothing in a batch
 * blocks, so a connection taken with others waits only for the answers
 * before it, as it would in the set for a free thread.
 *
 * Deadlines: a request must arrive whole, and its answer be taken, within
 * API_IO_TIMEOUT of its first byte (or of the answer's start); a new
 * connection must start its first request as soon. Idle kept connections
 * (FCGI_KEEP_CONN, between requests) have none. Every API_SWEEP_MS one
 * thread shuts down the sockets whose deadline passed: the shutdown wakes
 * the connection in epoll, and whichever thread takes it closes it. The
 * sweeper never closes or frees a connection it does not hold; it only
 * calls shutdown, under a->lock, which the closing thread also takes
 * before it closes the file, so the descriptor is always still ours.
 *
 * Fairness: a caller (a uid, from SO_PEERCRED) may hold api_max_connections
 * open on a site's socket; a further connection of that uid is closed at
 * once, so a hostile local user, refused or not, cannot take the
 * descriptors and memory the site's own PHP needs, nor another site's. And
 * at most `share` of a site's requests are answered at once: a whole
 * request over the share waits on its site's ready list, and the thread
 * that finishes one of the site's answers takes it next, so a busy site
 * cannot take every thread another site needs.
 *
 * Where a site sets publish_uids, the caller's uid comes from SO_PEERCRED,
 * read once at accept (the kernel records it at connect; a caller cannot
 * forge it), and is checked as each request begins, before any of its
 * params or body is kept. root outside the list is kept read-only: it may
 * GET /health, /stats and /metrics (herald status), never publish.
 */
#include "api.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <uthash.h>

#include "apiconn.h"
#include "cfg.h"
#include "fmt.h"
#include "log.h"
#include "net.h"
#include "xmalloc.h"

#define API_IO_TIMEOUT 5.0  /* seconds a request may take to arrive, or its answer to be read */
#define API_EVENTS 4        /* ready connections a thread takes per wait */
#define API_POLL_MS 50      /* how often idle threads look at `stopping` */
#define API_SWEEP_MS 50     /* how often one thread looks for passed deadlines */
#define API_BUF (64u << 10) /* a thread's read buffer */
#define API_ACCEPTS 16      /* callers accepted per wakeup of a listener */
/* In an epoll tag: a site's listener, site in the low bits. */
#define API_TAG_LISTENER (1ull << 63)

/* How many connections one caller uid holds open on a site's socket. */
struct api_caller {
    UT_hash_handle hh;
    long uid;
    int n;
};

/* Seconds on the monotonic clock. */
static double api_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *api_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Append a string to out. */
static void api_put(struct relay_buf *out, const char *s)
{
    relay_put(out, s, strlen(s));
}

/* Append n in decimal to out. */
static void api_put_num(struct relay_buf *out, size_t n)
{
    char digits[FMT_U64_MAX];

    relay_put(out, digits, fmt_u64(digits, n));
}

/*
 * Write the CGI response: Status line, headers, body (JSON ends with a
 * line feed). Put together piece by piece: every answer comes here, and
 * snprintf cost more than all the framing around it.
 */
static void api_write(struct relay_buf *out, const struct api_response *resp)
{
    size_t len = strlen(resp->body);
    int json = resp->type == NULL;

    api_put(out, "Status: ");
    api_put_num(out, (size_t)resp->status);
    api_put(out, " ");
    api_put(out, api_reason(resp->status));
    api_put(out, "\r\nContent-Type: ");
    api_put(out, json ? "application/json" : resp->type);
    api_put(out, "\r\n");
    if (resp->allow != NULL) {
        api_put(out, "Allow: ");
        api_put(out, resp->allow);
        api_put(out, "\r\n");
    }
    api_put(out, "Content-Length: ");
    api_put_num(out, len + (size_t)json);
    api_put(out, "\r\n\r\n");
    relay_put(out, resp->body, len);
    if (json)
        relay_put(out, "\n", 1);
}

/* The route: SCRIPT_NAME, or else REQUEST_URI without its query. */
static char *api_path(FCGX_Request *req)
{
    const char *s = FCGX_GetParam("SCRIPT_NAME", req->envp);
    const char *q;

    if (s != NULL && s[0] != '\0')
        return xstrdup(s);
    s = FCGX_GetParam("REQUEST_URI", req->envp);
    if (s == NULL)
        return xstrdup("");
    q = strchr(s, '?');
    return q ? xstrndup(s, (size_t)(q - s)) : xstrdup(s);
}

/* The query string: QUERY_STRING, or else what follows '?' in REQUEST_URI. */
static const char *api_query(FCGX_Request *req)
{
    const char *q = FCGX_GetParam("QUERY_STRING", req->envp);

    if (q != NULL && q[0] != '\0')
        return q;
    q = FCGX_GetParam("REQUEST_URI", req->envp);
    q = q != NULL ? strchr(q, '?') : NULL;
    return q != NULL ? q + 1 : "";
}

/*
 * Log a line about one of site's callers, at most one a second per site:
 * a caller that sends bad requests as fast as it can must not flood the
 * log (or the journal) that every site shares. The next line says how
 * many were held back.
 */
static void api_log(struct api *a, int site, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void api_log(struct api *a, int site, int level, const char *fmt, ...)
{
    struct api_site *as = &a->sites[site];
    double now = api_now();
    unsigned long held = 0;
    char line[512];
    int say;
    va_list ap;

    pthread_mutex_lock(&as->lock);
    say = now - as->logged >= 1.0;
    if (say) {
        as->logged = now;
        held = as->unlogged;
        as->unlogged = 0;
    } else {
        as->unlogged++;
    }
    pthread_mutex_unlock(&as->lock);
    if (!say)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (held > 0)
        log_msg(level, "api", "site %s: %s (and %lu such lines held back)",
                api_cfg(a)->sites[site]->site, line, held);
    else
        log_msg(level, "api", "site %s: %s", api_cfg(a)->sites[site]->site, line);
}

/* The answer to a request the gate refused to pass on (its params were not kept). */
static void api_refusal(struct api_response *resp, const struct apiconn *c,
                        const struct cfg_site *site)
{
    switch (c->refuse) {
    case 403:
        api_error(resp, 403, "uid %ld may not use this API socket (publish_uids of site %s)",
                  c->uid, site->site);
        break;
    case 413: api_error(resp, 413, "body over the limit of %zu bytes", c->max_body); break;
    case 431:
        api_error(resp, 431, "FastCGI params over the limit of %u bytes", APICONN_MAX_PARAMS);
        break;
    default:
        api_error(resp, 400, "malformed FastCGI params: a name or value runs past their end");
        break;
    }
}

/* May a read-only caller (root outside publish_uids) make this request? */
static int api_read_allowed(const char *method, const char *path)
{
    return method != NULL && strcmp(method, "GET") == 0 &&
           (strcmp(path, "/health") == 0 || strcmp(path, "/stats") == 0 ||
            strcmp(path, "/metrics") == 0);
}

/* What a relay handler needs: the API and the connection whose request it answers. */
struct api_call {
    struct api *a;
    struct apiconn *c;
};

/* Answer one whole request (relay_handler): route it, or refuse it. */
static void api_answer(void *arg, FCGX_Request *req, struct relay_buf *out)
{
    struct api_call *call = arg;
    struct api *a = call->a;
    struct apiconn *c = call->c;
    const struct cfg_site *site = api_cfg(a)->sites[c->site];
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    char *path = api_path(req);
    struct api_response resp = {0};

    if (c->refuse != 0)
        api_refusal(&resp, c, site);
    else if (c->read_only && !api_read_allowed(method, path))
        api_error(&resp, 403,
                  "uid 0 may only read /health, /stats and /metrics on this API socket "
                  "(publish_uids of site %s)",
                  site->site);
    else
        api_route(a, c->site, method ? method : "", path, api_query(req),
                  c->body.p != NULL ? (const char *)c->body.p : "", c->body.len, &resp);
    stats_count_api(&a->sites[c->site].stats, stats_route_of(path), resp.status);
    if (c->refuse != 0)
        api_log(a, c->site, LOG_INFO, "a request of uid %ld refused: %d", c->uid, resp.status);
    else if (resp.status >= 400)
        api_log(a, c->site, LOG_INFO, "%s %.100s -> %d", method ? method : "-", path, resp.status);
    api_write(out, &resp);
    free(resp.body);
    free(path);
}

/* Put c on the deadline list at its apiconn deadline, or take it off (deadline 0). */
static void api_set_deadline(struct api *a, struct apiconn *c)
{
    /* Read without the lock (the sweep may clear it): only a hint; the lock decides. */
    if (atomic_load_explicit(&c->listed, memory_order_relaxed) == c->deadline)
        return;
    pthread_mutex_lock(&a->lock);
    if (atomic_load_explicit(&c->listed, memory_order_relaxed) != 0) {
        if (c->tprev != NULL)
            c->tprev->tnext = c->tnext;
        else
            a->timed_head = c->tnext;
        if (c->tnext != NULL)
            c->tnext->tprev = c->tprev;
        else
            a->timed_tail = c->tprev;
        c->tprev = c->tnext = NULL;
    }
    /* Every deadline is "now + API_IO_TIMEOUT": appending keeps the list in order. */
    if (c->deadline != 0) {
        c->tprev = a->timed_tail;
        if (a->timed_tail != NULL)
            a->timed_tail->tnext = c;
        else
            a->timed_head = c;
        a->timed_tail = c;
    }
    atomic_store_explicit(&c->listed, c->deadline, memory_order_relaxed);
    pthread_mutex_unlock(&a->lock);
}

/* Wait for c's next event (in or out); closes it if epoll refuses. */
static void api_close(struct api *a, struct apiconn *c);

static void api_arm(struct api *a, struct apiconn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.ptr = c};

    api_set_deadline(a, c);
    if (epoll_ctl(a->epfd, op, c->fd, &ev) != 0) {
        log_msg(LOG_WARN, "api", "epoll_ctl: %s; closing a connection", strerror(errno));
        api_close(a, c);
    }
}

/*
 * Count one more (delta 1) or one fewer (-1) connection of uid on site.
 * Returns 0, or -1 when uid already holds the site's api_max_connections.
 */
static int api_count_caller(struct api *a, int site, long uid, int delta)
{
    struct api_site *as = &a->sites[site];
    struct api_caller *k;
    int ok = 0;

    pthread_mutex_lock(&as->lock);
    HASH_FIND(hh, as->callers, &uid, sizeof uid, k);
    if (k == NULL && delta > 0) {
        k = xcalloc(1, sizeof *k);
        k->uid = uid;
        HASH_ADD(hh, as->callers, uid, sizeof k->uid, k);
    }
    if (delta > 0 && k->n >= api_cfg(a)->sites[site]->api_max_connections)
        ok = -1;
    else if (k != NULL)
        k->n += delta;
    if (k != NULL && k->n == 0) {
        HASH_DEL(as->callers, k);
        free(k);
    }
    pthread_mutex_unlock(&as->lock);
    return ok;
}

/* Close c, count why, and give its caller's connection back. */
static void api_close(struct api *a, struct apiconn *c)
{
    struct api_site *as = &a->sites[c->site];
    int site = c->site;
    long uid = c->uid;

    if (atomic_load(&c->expired) && (apiconn_mid_request(c) || c->out_len > 0)) {
        c->fail = 408;
        c->fail_why = "stalled for 5 s mid-request";
    }
    if (c->fail != 0) {
        stats_count_api_status(&as->stats, c->fail);
        api_log(a, site, LOG_INFO, "uid %ld %s; closed (%d)", uid, c->fail_why, c->fail);
    }
    c->deadline = 0;
    api_set_deadline(a, c);
    pthread_mutex_lock(&a->lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&a->lock);
    apiconn_free(c);
    api_count_caller(a, site, uid, -1);
}

/* The caller's uid on fd (SO_PEERCRED), or -1 when it cannot be known. */
static long api_peer_uid(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        log_msg(LOG_WARN, "api", "SO_PEERCRED: %s", strerror(errno));
        return -1;
    }
    return (long)cr.uid;
}

/* A caller over its connection limit: close at once, count it, say so. */
static void api_refuse_caller(struct api *a, int site, int fd, long uid)
{
    close(fd);
    stats_count_api_status(&a->sites[site].stats, 503);
    api_log(a, site, LOG_WARN,
            "uid %ld holds api_max_connections (%d); closing its new "
            "connections",
            uid, api_cfg(a)->sites[site]->api_max_connections);
}

/* Accept the callers waiting on site's socket. */
static void api_accept(struct api *a, int site)
{
    for (int i = 0; i < API_ACCEPTS; i++) {
        int fd = accept4(a->sites[site].lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        struct apiconn *c;
        long uid;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_msg(LOG_WARN, "api", "accept: %s; pausing", strerror(errno));
                usleep(100 * 1000);
            }
            return;
        }
        uid = api_peer_uid(fd);
        if (api_count_caller(a, site, uid, 1) != 0) {
            api_refuse_caller(a, site, fd, uid);
            continue;
        }
        c = apiconn_new(fd, site, uid, api_now(), API_IO_TIMEOUT);
        pthread_mutex_lock(&a->lock);
        c->next = a->conns;
        if (a->conns != NULL)
            a->conns->prev = c;
        a->conns = c;
        pthread_mutex_unlock(&a->lock);
        api_arm(a, c, EPOLLIN, EPOLL_CTL_ADD);
    }
}

/* Append c to its site's queue of whole requests; as->lock held. */
static void api_enqueue(struct api_site *as, struct apiconn *c)
{
    c->qnext = NULL;
    if (as->ready_tail != NULL)
        as->ready_tail->qnext = c;
    else
        as->ready_head = c;
    as->ready_tail = c;
}

/* Start answering a whole request of c's site, or queue it when the site has its share. */
static int api_take_share(struct api *a, struct apiconn *c)
{
    struct api_site *as = &a->sites[c->site];
    int now;

    /* A share of every thread: nothing ever waits, so no lock and no count. */
    if (!a->sharing)
        return 1;
    pthread_mutex_lock(&as->lock);
    now = as->serving < a->share;
    if (now)
        as->serving++;
    else
        api_enqueue(as, c);
    pthread_mutex_unlock(&as->lock);
    return now;
}

/* An answer of site is done: the next queued request of the site, or NULL (share given back). */
static struct apiconn *api_next_in_share(struct api *a, int site)
{
    struct api_site *as = &a->sites[site];
    struct apiconn *c;

    if (!a->sharing)
        return NULL;
    pthread_mutex_lock(&as->lock);
    c = as->ready_head;
    if (c != NULL) {
        as->ready_head = c->qnext;
        if (as->ready_head == NULL)
            as->ready_tail = NULL;
    } else {
        as->serving--;
    }
    pthread_mutex_unlock(&as->lock);
    return c;
}

static void api_step(struct api *a, struct api_thread *t, struct apiconn *c, int st);

/* Answer c, then the requests of its site that queued meanwhile, within its share. */
static void api_serve(struct api *a, struct api_thread *t, struct apiconn *c)
{
    struct api_site *as = &a->sites[c->site];
    int site = c->site;

    while (c != NULL) {
        struct api_call call = {.a = a, .c = c};
        int st = apiconn_serve(c, api_cfg(a)->sites[site], &t->relay, api_answer, &call, api_now(),
                               API_IO_TIMEOUT);

        /* A pipelined next request: answered now when nothing waits for a share, else
         * it waits its turn behind those already queued. */
        if (st == APICONN_READY && !a->sharing)
            continue;
        if (st == APICONN_READY) {
            pthread_mutex_lock(&as->lock);
            api_enqueue(as, c);
            pthread_mutex_unlock(&as->lock);
        } else {
            api_step(a, t, c, st);
        }
        c = api_next_in_share(a, site);
    }
}

/* Carry on with c after a step: wait for it, answer it, or close it. */
static void api_step(struct api *a, struct api_thread *t, struct apiconn *c, int st)
{
    switch (st) {
    case APICONN_READ: api_arm(a, c, EPOLLIN, EPOLL_CTL_MOD); break;
    case APICONN_WRITE: api_arm(a, c, EPOLLOUT, EPOLL_CTL_MOD); break;
    case APICONN_READY:
        c->deadline = 0;
        api_set_deadline(a, c);
        if (api_take_share(a, c))
            api_serve(a, t, c);
        break;
    default: api_close(a, c); break;
    }
}

/* c has an event: go on writing its answer, or read what it sent. */
static void api_on_conn(struct api *a, struct api_thread *t, struct apiconn *c)
{
    const struct cfg_site *site = api_cfg(a)->sites[c->site];
    double now = api_now();
    int st;

    if (c->out_off < c->out_len)
        st = apiconn_write(c, site, now, API_IO_TIMEOUT);
    else
        st = apiconn_read(c, site, t->buf, API_BUF, now, API_IO_TIMEOUT);
    api_step(a, t, c, st);
}

/*
 * Is it time to look for passed deadlines? One thread in every
 * API_SWEEP_MS does, however busy the others are.
 */
static int api_sweep_due(struct api *a)
{
    long long now = (long long)(api_now() * 1000);
    long long due = atomic_load(&a->sweep_due_ms);

    return now >= due && atomic_compare_exchange_strong(&a->sweep_due_ms, &due, now + API_SWEEP_MS);
}

/* Shut down every connection whose deadline has passed; its holder closes it. */
static void api_sweep(struct api *a)
{
    double now = api_now();
    struct apiconn *c;

    pthread_mutex_lock(&a->lock);
    /* listed, not deadline: the holder may be changing deadline now, outside the lock. */
    while ((c = a->timed_head) != NULL &&
           atomic_load_explicit(&c->listed, memory_order_relaxed) <= now) {
        a->timed_head = c->tnext;
        if (a->timed_head != NULL)
            a->timed_head->tprev = NULL;
        else
            a->timed_tail = NULL;
        c->tprev = c->tnext = NULL;
        atomic_store_explicit(&c->listed, 0, memory_order_relaxed);
        atomic_store(&c->expired, 1);
        shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&a->lock);
}

/* A thread: wait for a new caller or a connection's next event. */
static void *api_thread(void *arg)
{
    struct api_thread *t = arg;
    struct api *a = t->a;
    struct epoll_event ev[API_EVENTS];

    while (!atomic_load(&a->stopping)) {
        int r = epoll_wait(a->epfd, ev, API_EVENTS, API_POLL_MS);

        for (int i = 0; i < r; i++) {
            if (ev[i].data.u64 & API_TAG_LISTENER)
                api_accept(a, (int)(ev[i].data.u64 & ~API_TAG_LISTENER));
            else
                api_on_conn(a, t, ev[i].data.ptr);
        }
        if (api_sweep_due(a))
            api_sweep(a);
    }
    return NULL;
}

/* Give the socket file to the configured group. */
static int api_chgrp(const char *path, const char *group, char **cause)
{
    struct group *gr = getgrnam(group);

    if (gr == NULL) {
        *cause = xasprintf("api_socket_group: no group named %s", group);
        return -1;
    }
    if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
        *cause = xasprintf("chown %s to group %s: %s", path, group, strerror(errno));
        return -1;
    }
    return 0;
}

/* Bind site i's socket, give it its group, and watch it. Returns 0, or -1 with *cause set. */
static int api_listen(struct api *a, int i, const struct cfg_site *site, char **cause)
{
    struct api_site *as = &a->sites[i];
    char *addr = xasprintf("unix:%s", site->api_socket);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};

    as->lfd = net_listen(addr, site->api_socket_mode, 0, cause);
    free(addr);
    if (as->lfd < 0)
        return -1;
    as->path = xstrdup(site->api_socket);
    if (site->api_socket_group != NULL &&
        api_chgrp(site->api_socket, site->api_socket_group, cause) != 0)
        return -1;
    ev.data.u64 = API_TAG_LISTENER | (uint64_t)i;
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, as->lfd, &ev) != 0) {
        *cause = xasprintf("api epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Close every site's listener and remove its socket file. */
static void api_unlisten(struct api *a)
{
    struct api_caller *k, *tmp;

    for (int i = 0; i < a->nsites; i++) {
        if (a->sites[i].lfd >= 0)
            close(a->sites[i].lfd);
        if (a->sites[i].path != NULL)
            net_unlink(a->sites[i].path);
        free(a->sites[i].path);
        HASH_ITER (hh, a->sites[i].callers, k, tmp) {
            HASH_DEL(a->sites[i].callers, k);
            free(k);
        }
        pthread_mutex_destroy(&a->sites[i].lock);
    }
    free(a->sites);
    a->sites = NULL;
    a->nsites = 0;
}

/* Start n threads, each with its relay. Returns 0, or -1 with *cause set. */
static int api_start_threads(struct api *a, int n, char **cause)
{
    a->threads = xcalloc((size_t)n, sizeof *a->threads);
    for (; a->nthreads < n; a->nthreads++) {
        struct api_thread *t = &a->threads[a->nthreads];
        int r;

        t->a = a;
        t->buf = xmalloc(API_BUF);
        if (relay_init(&t->relay, cause) != 0) {
            free(t->buf);
            return -1;
        }
        r = pthread_create(&t->tid, NULL, api_thread, t);
        if (r != 0) {
            *cause = xasprintf("api thread: %s", strerror(r));
            relay_free(&t->relay);
            free(t->buf);
            return -1;
        }
        t->started = 1;
    }
    return 0;
}

struct api *api_start(const struct cfg *cfg, const struct cmd_hub *hub, char **cause)
{
    struct api *a = xcalloc(1, sizeof *a);

    a->cfg = cfg;
    a->hub = hub;
    a->epfd = -1;
    a->started = time(NULL);
    pthread_mutex_init(&a->lock, NULL);
    a->sites = xcalloc(cfg->nsites, sizeof *a->sites);
    a->nsites = (int)cfg->nsites;
    for (int i = 0; i < a->nsites; i++) {
        a->sites[i].lfd = -1;
        pthread_mutex_init(&a->sites[i].lock, NULL);
    }
    /* With several sites, one site's answers may take half the threads: the rest stay free. */
    a->share =
        a->nsites > 1 && cfg->api_threads > 1 ? (cfg->api_threads + 1) / 2 : cfg->api_threads;
    a->sharing = a->share < cfg->api_threads;
    if (FCGX_Init() != 0) {
        *cause = xasprintf("FCGX_Init failed");
        goto fail;
    }
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (a->epfd < 0) {
        *cause = xasprintf("api epoll: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < a->nsites; i++)
        if (api_listen(a, i, cfg->sites[i], cause) != 0)
            goto fail;
    if (api_start_threads(a, cfg->api_threads, cause) != 0) {
        api_stop(a);
        return NULL;
    }
    return a;
fail:
    if (a->epfd >= 0)
        close(a->epfd);
    api_unlisten(a);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return NULL;
}

void api_set_cfg(struct api *a, const struct cfg *cfg)
{
    __atomic_store_n(&a->cfg, cfg, __ATOMIC_RELEASE);
}

void api_stop(struct api *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->stopping, 1);
    for (int i = 0; i < a->nthreads; i++) {
        if (a->threads[i].started)
            pthread_join(a->threads[i].tid, NULL);
        relay_free(&a->threads[i].relay);
        free(a->threads[i].buf);
    }
    /* No thread runs now: whatever is left (armed, queued) is in the list of all. */
    while (a->conns != NULL) {
        struct apiconn *c = a->conns;

        a->conns = c->next;
        apiconn_free(c);
    }
    close(a->epfd);
    api_unlisten(a);
    pthread_mutex_destroy(&a->lock);
    free(a->threads);
    free(a);
}

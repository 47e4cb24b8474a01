/*
 * api.c -- the FastCGI endpoint's socket, threads and request I/O.
 *
 * Owns:       struct api (see api.h).
 * Called by:  main.c; its threads call routes.c.
 * Invariants: each thread accepts connections itself and hands the fd to
 *             libfcgi (FCGX_Request.ipcFd) instead of letting FCGX_Accept_r
 *             accept: that lets us wait with a timeout (so the threads see
 *             a shutdown), and set read and write timeouts on the socket
 *             before libfcgi reads from it, so a caller that stalls or sends
 *             half a record costs one thread a few seconds, not forever.
 *             A malformed record makes FCGX_Accept_r drop that connection
 *             and return an error; the thread simply serves the next one.
 *
 * All threads wait on one epoll set: every site's listener (EPOLLEXCLUSIVE,
 * so one thread wakes per caller) and every connection between its requests
 * (EPOLLONESHOT, so one thread takes its next request), kept ones
 * (FCGI_KEEP_CONN, as nginx's fastcgi_keep_conn sends) included. A thread
 * hands a connection to libfcgi only once a peek shows its whole request
 * has arrived (gate.c); until then it waits on the gate's list, looked at
 * every API_POLL_MS, for at most API_IO_TIMEOUT. So an idle or stalled
 * caller costs an fd, never a thread.
 *
 * Each epoll entry carries its site index next to the fd (api_tag), and so
 * does each parked connection: a request is answered for the site whose
 * socket it came in on, and nothing in it can name another site. Where a
 * site sets publish_uids, the caller's uid comes from SO_PEERCRED, which
 * the kernel records at connect and a caller cannot forge.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "cfg.h"
#include "gate.h"
#include "log.h"
#include "net.h"
#include "xmalloc.h"

#define API_IO_TIMEOUT 5      /* seconds a caller may stall mid-request */
#define API_POLL_MS 50        /* how often idle threads look at `stopping` and the gate */
/* Bytes of a request looked at before libfcgi reads it. A larger request is
 * served as soon as this much has come: its caller is clearly sending. */
#define API_PEEK_MAX (64u << 10)
#define API_DRAIN_MAX (16u << 20) /* read and drop at most this much of a refused body */
#define API_TAG_LISTENER (1ull << 62) /* in an epoll tag: the fd is a site's listener */

/* An epoll entry's data: site index, fd, and whether it is the listener. */
static uint64_t api_tag(int site, int fd, int listener)
{
    return (uint64_t)site << 32 | (uint32_t)fd | (listener ? API_TAG_LISTENER : 0);
}

/* The site index of an epoll tag. */
static int api_tag_site(uint64_t tag)
{
    return (int)((tag & ~API_TAG_LISTENER) >> 32);
}

/* The fd of an epoll tag. */
static int api_tag_fd(uint64_t tag)
{
    return (int)(uint32_t)tag;
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
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/*
 * Write the CGI response: Status line, headers, JSON body. The head is
 * formatted here, not with FCGX_FPrintF, whose printf knows no %zu.
 */
static void api_write(FCGX_Request *req, const struct api_response *resp)
{
    size_t len = strlen(resp->body);
    char head[256];
    int n;

    n = snprintf(head, sizeof head,
                 "Status: %d %s\r\nContent-Type: application/json\r\n%s%s%s"
                 "Content-Length: %zu\r\n\r\n",
                 resp->status, api_reason(resp->status), resp->allow ? "Allow: " : "",
                 resp->allow ? resp->allow : "", resp->allow ? "\r\n" : "", len + 1);
    FCGX_PutStr(head, n, req->out);
    FCGX_PutStr(resp->body, (int)len, req->out);
    FCGX_PutChar('\n', req->out);
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

/*
 * Read the body, up to limit bytes. Returns it NUL-terminated with *len
 * set, or NULL when it is over the limit (the rest read and dropped, up to
 * API_DRAIN_MAX, so the caller sees our answer rather than a broken pipe).
 */
static char *api_read_body(FCGX_Request *req, size_t limit, size_t *len)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
    size_t cap = 4096, n = 0;
    char *buf, drop[4096];
    int r;

    if (cl != NULL && cl[0] != '\0' && strtoull(cl, NULL, 10) > limit) {
        for (size_t total = 0; total < API_DRAIN_MAX; total += (size_t)r)
            if ((r = FCGX_GetStr(drop, sizeof drop, req->in)) <= 0)
                break;
        return NULL;
    }
    buf = xmalloc(cap + 1);
    while ((r = FCGX_GetStr(buf + n, (int)(cap - n), req->in)) > 0) {
        n += (size_t)r;
        if (n > limit) {
            free(buf);
            return NULL;
        }
        if (n == cap) {
            cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
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
 * May the caller on fd use this site's socket? Yes when the site sets no
 * publish_uids; else only when the caller's uid (SO_PEERCRED) is listed.
 * *uid is the caller's, or -1 when it cannot be known (then: no).
 */
static int api_caller_allowed(const struct cfg *site, int fd, long *uid)
{
    struct ucred cr;
    socklen_t len = sizeof cr;

    *uid = -1;
    if (site->nuids == 0)
        return 1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        log_msg(LOG_WARN, "api", "SO_PEERCRED: %s; refusing the caller", strerror(errno));
        return 0;
    }
    *uid = (long)cr.uid;
    for (size_t i = 0; i < site->nuids; i++)
        if (site->uids[i] == cr.uid)
            return 1;
    return 0;
}

/* Answer one request that came in on site's socket. */
static void api_handle(struct api *a, FCGX_Request *req, int site)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    const struct cfg *cfg = api_cfg(a)->sites[site];
    char *path = api_path(req);
    struct api_response resp = {0};
    size_t len = 0;
    size_t max_body = cfg->api_max_body;
    char *body = NULL;
    long uid;

    if (!api_caller_allowed(cfg, req->ipcFd, &uid)) {
        /* Read and drop the body, not kept: a kept connection stays in step. */
        free(api_read_body(req, 0, &len));
        api_error(&resp, 403, "uid %ld may not use this API socket (publish_uids of site %s)",
                  uid, cfg->site);
    } else if ((body = api_read_body(req, max_body, &len)) == NULL) {
        api_error(&resp, 413, "body over the limit of %zu bytes", max_body);
    } else {
        api_route(a, site, method ? method : "", path, api_query(req), body, len, &resp);
    }
    stats_count_api_status(&a->sites[site].stats, resp.status);
    if (resp.status >= 400)
        log_msg(LOG_INFO, "api", "%s %s -> %d", method ? method : "-", path, resp.status);
    api_write(req, &resp);
    free(resp.body);
    free(body);
    free(path);
}

/* Seconds on the monotonic clock. */
static double api_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Accept one caller on site's socket; -1 when another thread was faster. */
static int api_accept(struct api *a, int site)
{
    struct timeval tv = {.tv_sec = API_IO_TIMEOUT};
    int fd;

    fd = accept4(a->sites[site].lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            log_msg(LOG_WARN, "api", "accept: %s; pausing", strerror(errno));
            usleep(100 * 1000);
        }
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        log_msg(LOG_WARN, "api", "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Wait (again) for fd's next bytes: in the epoll set, one thread woken for it. */
static void api_arm(struct api *a, int fd, int site, int registered)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = api_tag(site, fd, 0)};

    if (epoll_ctl(a->epfd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_msg(LOG_WARN, "api", "epoll_ctl: %s; closing a connection", strerror(errno));
        close(fd);
    }
}

/*
 * Serve one whole request on fd. A connection the caller keeps goes back
 * into the epoll set for its next request; libfcgi closes any other, and
 * any connection that ends or sends a bad record.
 */
static void api_serve(struct api *a, FCGX_Request *req, int fd, int site)
{
    req->ipcFd = fd;
    /* Keeps FCGX_Accept_r's opening FCGX_Finish_r from closing it. */
    req->keepConnection = 1;
    if (FCGX_Accept_r(req) < 0)
        return;
    api_handle(a, req, site);
    FCGX_Finish_r(req);
    if (req->ipcFd < 0)
        return;
    req->ipcFd = -1;
    api_arm(a, fd, site, 1);
}

/*
 * fd has bytes (or hung up): serve it once its whole request is there, so
 * libfcgi's blocking reads never wait on the caller; park it while it is
 * not; close it if it is not FastCGI, has gone, or has stalled since since.
 * Returns 1 when it was parked.
 */
static int api_ready(struct api *a, FCGX_Request *req, uint8_t *buf, int fd, int site,
                     double since)
{
    ssize_t n = recv(fd, buf, API_PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
    enum gate_result r;

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        api_arm(a, fd, site, 1);
        return 0;
    }
    if (n <= 0) {
        close(fd);
        return 0;
    }
    r = gate_scan(buf, (size_t)n);
    if (r == GATE_COMPLETE || (r == GATE_PARTIAL && (size_t)n == API_PEEK_MAX)) {
        api_serve(a, req, fd, site);
    } else if (r == GATE_BAD) {
        log_msg(LOG_INFO, "api", "a caller sent something that is not FastCGI; closed");
        stats_count_api_status(&a->sites[site].stats, 400);
        close(fd);
    } else if (api_now() - since > API_IO_TIMEOUT) {
        log_msg(LOG_INFO, "api", "a caller sent half a request and stalled for %ds; closed",
                API_IO_TIMEOUT);
        close(fd);
    } else {
        gate_park(&a->gate, fd, site, since);
        return 1;
    }
    return 0;
}

/*
 * Is it time to look at the gate again? One thread in every API_POLL_MS
 * does, however busy the others are: a parked connection is peeked at a
 * steady pace, not once per request served.
 */
static int api_gate_due(struct api *a)
{
    long long now = (long long)(api_now() * 1000);
    long long due = atomic_load(&a->gate_due_ms);

    return now >= due && atomic_compare_exchange_strong(&a->gate_due_ms, &due,
                                                        now + API_POLL_MS);
}

/* Look again at the connections waiting for the rest of their request. */
static void api_check_gate(struct api *a, FCGX_Request *req, uint8_t *buf)
{
    size_t n;
    struct gate_wait *w = gate_take(&a->gate, &n);

    for (size_t i = 0; i < n; i++)
        api_ready(a, req, buf, w[i].fd, w[i].site, w[i].since);
    free(w);
}

/* A thread: wait for a new caller or a connection's next request. */
static void *api_thread(void *arg)
{
    struct api *a = arg;
    uint8_t *buf = xmalloc(API_PEEK_MAX);
    struct epoll_event ev;
    FCGX_Request req;

    /* listen_sock -1: should libfcgi ever try to accept, it fails at once. */
    FCGX_InitRequest(&req, -1, 0);
    while (!atomic_load(&a->stopping)) {
        int fd, r = epoll_wait(a->epfd, &ev, 1, API_POLL_MS);
        int site = r > 0 ? api_tag_site(ev.data.u64) : 0;

        if (r > 0 && !(ev.data.u64 & API_TAG_LISTENER))
            api_ready(a, &req, buf, api_tag_fd(ev.data.u64), site, api_now());
        else if (r > 0 && (fd = api_accept(a, site)) >= 0)
            api_arm(a, fd, site, 0);
        if (api_gate_due(a))
            api_check_gate(a, &req, buf);
    }
    FCGX_Free(&req, 1);
    free(buf);
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
static int api_listen(struct api *a, int i, const struct cfg *site, char **cause)
{
    struct api_site *as = &a->sites[i];
    char *addr = xasprintf("unix:%s", site->api_socket);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};

    as->lfd = net_listen(addr, site->api_socket_mode, 0, cause);
    free(addr);
    if (as->lfd < 0)
        return -1;
    as->path = xstrdup(site->api_socket);
    if (site->api_socket_group != NULL && api_chgrp(site->api_socket, site->api_socket_group,
                                                    cause) != 0)
        return -1;
    ev.data.u64 = api_tag(i, as->lfd, 1);
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, as->lfd, &ev) != 0) {
        *cause = xasprintf("api epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Close every site's listener and remove its socket file. */
static void api_unlisten(struct api *a)
{
    for (int i = 0; i < a->nsites; i++) {
        if (a->sites[i].lfd >= 0)
            close(a->sites[i].lfd);
        if (a->sites[i].path != NULL)
            net_unlink(a->sites[i].path);
        free(a->sites[i].path);
    }
    free(a->sites);
    a->sites = NULL;
    a->nsites = 0;
}

struct api *api_start(const struct cfg *cfg, const struct cmd_hub *hub, char **cause)
{
    struct api *a = xcalloc(1, sizeof *a);

    a->cfg = cfg;
    a->hub = hub;
    a->epfd = -1;
    a->started = time(NULL);
    gate_init(&a->gate);
    a->sites = xcalloc(cfg->nsites, sizeof *a->sites);
    for (size_t i = 0; i < cfg->nsites; i++)
        a->sites[i].lfd = -1;
    a->nsites = (int)cfg->nsites;
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
    a->threads = xcalloc((size_t)cfg->api_threads, sizeof *a->threads);
    for (; a->nthreads < cfg->api_threads; a->nthreads++) {
        int r = pthread_create(&a->threads[a->nthreads], NULL, api_thread, a);

        if (r != 0) {
            *cause = xasprintf("api thread: %s", strerror(r));
            api_stop(a);
            return NULL;
        }
    }
    return a;
fail:
    if (a->epfd >= 0)
        close(a->epfd);
    api_unlisten(a);
    gate_free(&a->gate);
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
    for (int i = 0; i < a->nthreads; i++)
        pthread_join(a->threads[i], NULL);
    close(a->epfd);
    api_unlisten(a);
    gate_free(&a->gate);
    free(a->threads);
    free(a);
}

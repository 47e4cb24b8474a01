/*
 * main.c -- process lifecycle: configuration, startup order, signals,
 * shutdown.
 *
 * Owns:       the config snapshot, the workers, the API endpoint.
 * Called by:  the C runtime.
 * Invariants: signals are blocked in every thread and taken here with
 *             sigwaitinfo, so no handler runs inside a worker. Startup:
 *             config, listeners, workers, API, "ready". Shutdown (SIGTERM or
 *             SIGINT): the API stops first so no publish is half-done, then
 *             every worker closes its connections with 1001 and ends, then
 *             socket files are removed and the process exits 0. Once all
 *             is started, WebSockets get what the file limit leaves beside
 *             the descriptors then open and those kept for the API and RPC
 *             (set_fd_budget, again on each reload). `herald status` is
 *             handed to status.c before any flag is read: it starts nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cfg.h"
#include "client.h"
#include "cmd.h"
#include "engine.h"
#include "hist.h"
#include "lim.h"
#include "log.h"
#include "mlisten.h"
#include "net.h"
#include "service.h"
#include "site.h"
#include "status.h"
#include "worker.h"
#include "xmalloc.h"

struct herald {
    struct cfg *cfg;      /* owned: the running snapshot */
    struct cfg **retired; /* owned: snapshots replaced by reloads, freed at exit */
    size_t nretired;
    int argc; /* the command line, read again on SIGHUP */
    char **argv;
    int shared_lfd;          /* owned: unix listener shared by workers, or -1 */
    struct worker **workers; /* owned */
    int nworkers;
    struct cmd_queue **queues; /* owned array; queues live in the workers */
    struct cmd_hub hub;
    struct site *sites; /* owned: one per configured site */
    int nsites;
    struct hist hist;        /* message history, the memory engine's */
    struct engine *engine;   /* owned: publishing, history, presence, who is where */
    struct lim lim;          /* connection limits */
    struct api *api;         /* owned */
    struct mlisten *mlisten; /* owned: the metrics listener, or NULL (metrics_listen unset) */
    long fdlimit;            /* RLIMIT_NOFILE as raised at start, or -1 */
    long fd_base;            /* descriptors open once started, WebSockets aside, or -1 */
};

/* Each site's secret, which its part of the history file is signed with (borrowed from cfg). */
static struct hist_secret *history_secrets(const struct cfg *cfg)
{
    struct hist_secret *sec = xcalloc(cfg->nsites, sizeof *sec);

    for (size_t i = 0; i < cfg->nsites; i++)
        sec[i] = (struct hist_secret){cfg->sites[i]->secret, cfg->sites[i]->secret_len};
    return sec;
}

/* The Redis engine: history, numbering and delivery shared with every node on the same Redis. */
static struct engine *start_redis(struct herald *h, const char **names)
{
    const struct cfg *cfg = h->cfg;
    struct eng_redis_cfg rc = {
        .address = cfg->redis_address,
        .sentinels = cfg->redis_sentinels,
        .nsentinels = cfg->nredis_sentinels,
        .master = cfg->redis_sentinel_master,
        .password = cfg->redis_password,
        .db = cfg->redis_db,
        .prefix = cfg->redis_prefix,
        .node = cfg->node_name,
        .timeout = cfg->redis_timeout_ms / 1000.0,
        .history_size = cfg->history_size,
        .history_ttl = cfg->history_ttl,
    };

    if (cfg->nredis_sentinels > 0)
        log_msg(LOG_INFO, "main", "engine redis: master %s from %zu Sentinels, prefix %s, node %s",
                cfg->redis_sentinel_master, cfg->nredis_sentinels, cfg->redis_prefix,
                cfg->node_name);
    else
        log_msg(LOG_INFO, "main", "engine redis at %s, prefix %s, node %s", cfg->redis_address,
                cfg->redis_prefix, cfg->node_name);
    return eng_redis_new(&rc, (int)cfg->nsites, names, cfg->workers, cmd_deliver,
                         client_presence_event, cmd_post, cmd_hand, &h->hub);
}

/*
 * Set up the history with each site's budget and read history_file back,
 * then the engine over it. This runs before privileges are dropped: the
 * file must belong to the user Herald will run as, who wrote it at the
 * last shutdown.
 */
static int start_history(struct herald *h, char **cause)
{
    const struct cfg *cfg = h->cfg;
    const char **names = xcalloc(cfg->nsites, sizeof *names);
    size_t *budgets = xcalloc(cfg->nsites, sizeof *budgets);
    struct hist_secret *sec;

    for (size_t i = 0; i < cfg->nsites; i++) {
        names[i] = cfg->sites[i]->site;
        budgets[i] = (size_t)cfg->sites[i]->history_max_bytes;
    }
    hist_init(&h->hist, (size_t)cfg->history_size, cfg->history_ttl, (int)cfg->nsites, names,
              budgets);
    if (cfg->history_file != NULL && hist_on(&h->hist) && strcmp(cfg->engine, "memory") == 0) {
        sec = history_secrets(cfg);
        hist_load(&h->hist, cfg->history_file, sec, svc_run_uid(cfg->user));
        free(sec);
    }
    free(budgets);
    if (strcmp(cfg->engine, "redis") == 0)
        h->engine = start_redis(h, names);
    else
        h->engine = eng_memory_new(&h->hist, (int)cfg->nsites, names, cfg->workers, cmd_deliver,
                                   client_presence_event, &h->hub);
    free(names);
    if (h->engine == NULL) {
        *cause = xstrdup("the engine could not start");
        return -1;
    }
    return 0;
}

/* Write the history to history_file, signed with each site's current secret. */
static void save_history(struct herald *h)
{
    struct hist_secret *sec;

    if (h->cfg->history_file == NULL || !hist_on(&h->hist) || strcmp(h->cfg->engine, "memory") != 0)
        return;
    sec = history_secrets(h->cfg);
    hist_save(&h->hist, h->cfg->history_file, sec);
    free(sec);
}

/* --check-config: can history_file's directory be used? 0, or -1 with *cause set. */
static int check_history(const struct cfg *cfg, char **cause)
{
    if (cfg->history_file == NULL || cfg->history_size == 0)
        return 0;
    return hist_check_dir(cfg->history_file, svc_run_uid(cfg->user), cause);
}

/* Create and start the workers (and the shared unix listener, if any). */
static int start_workers(struct herald *h, char **cause)
{
    const struct cfg *cfg = h->cfg;

    h->shared_lfd = -1;
    if (net_is_unix(cfg->listen)) {
        h->shared_lfd = net_listen(cfg->listen, cfg->listen_mode, 0, cause);
        if (h->shared_lfd < 0)
            return -1;
    }
    h->sites = xcalloc(cfg->nsites, sizeof *h->sites);
    for (size_t i = 0; i < cfg->nsites; i++)
        site_init(&h->sites[h->nsites++], cfg->sites[i]->site);
    lim_init(&h->lim);
    if (start_history(h, cause) != 0)
        return -1;
    h->hub.sites = h->sites;
    h->hub.nsites = h->nsites;
    h->hub.engine = h->engine;
    h->hub.lim = &h->lim;
    h->workers = xcalloc((size_t)cfg->workers, sizeof *h->workers);
    h->queues = xcalloc((size_t)cfg->workers, sizeof *h->queues);
    for (int i = 0; i < cfg->workers; i++) {
        struct worker *w =
            worker_new(i, cfg, &h->hub, &client_conn_ops, client_rpc_done, h->shared_lfd, cause);

        if (w == NULL)
            return -1;
        h->workers[h->nworkers++] = w;
        h->queues[i] = &w->queue;
    }
    h->hub.queues = h->queues;
    h->hub.nqueues = h->nworkers;
    for (int i = 0; i < h->nworkers; i++)
        if (worker_start(h->workers[i], cause) != 0)
            return -1;
    return 0;
}

/* Ask every worker to close its connections with 1001, and wait for them. */
static void stop_workers(struct herald *h)
{
    struct cmd_job *job = cmd_job_new(CMD_SHUTDOWN, h->nworkers, 0);

    cmd_submit(&h->hub, job);
    cmd_job_wait(job);
    cmd_job_free(job);
    for (int i = 0; i < h->nworkers; i++)
        worker_join(h->workers[i]);
}

/* Free what start_workers made; the threads must have ended. */
static void free_workers(struct herald *h)
{
    for (int i = 0; i < h->nworkers; i++)
        worker_free(h->workers[i]);
    free(h->workers);
    free(h->queues);
    for (int i = 0; i < h->nsites; i++)
        site_free(&h->sites[i]);
    free(h->sites);
    eng_free(h->engine);
    hist_free(&h->hist);
    lim_free(&h->lim);
    if (h->shared_lfd >= 0) {
        close(h->shared_lfd);
        net_unlink(h->cfg->listen);
    }
}

/* Descriptors open now, WebSockets aside (listeners, loops, the API's sockets); -1 if unknown. */
static long count_other_fds(struct herald *h)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = -1; /* the directory's own descriptor */

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - atomic_load(&h->lim.fds);
}

/*
 * Let WebSockets hold what the file limit leaves beside the descriptors
 * open at start and those kept for the API and RPC (lim_fd_reserve): then
 * however many sockets browsers open, PHP can still publish and RPC can
 * still reach php-fpm. Called once started, and after each reload.
 */
static void set_fd_budget(struct herald *h)
{
    long reserve = lim_fd_reserve(h->cfg), max;

    if (h->fdlimit <= 0 || h->fd_base < 0) {
        log_msg(LOG_WARN, "main",
                "file limit unknown: WebSocket connections are not kept "
                "from taking the API's descriptors");
        return;
    }
    max = h->fdlimit - h->fd_base - reserve;
    if (max < 0)
        max = 0;
    lim_set_fd_max(&h->lim, max);
    log_msg(max < 100 ? LOG_WARN : LOG_INFO, "main",
            "file limit %ld: up to %ld WebSocket "
            "connections; %ld descriptors kept for the API and RPC, %ld in use at start",
            h->fdlimit, max, reserve, h->fd_base);
}

/*
 * SIGHUP: read the configuration again. Settings that need a restart keep
 * their running values; the workers and the API switch to the new snapshot
 * together, and the old one is kept (an API request may still be reading
 * it) until exit. A config that does not load changes nothing.
 */
static void reload(struct herald *h)
{
    struct cfg *next = xcalloc(1, sizeof *next);
    enum cfg_action action;
    struct cmd_job *job;
    char *cause = NULL;

    if (h->cfg->file == NULL) {
        log_msg(LOG_WARN, "main", "SIGHUP: started without -c, so there is no file to reload");
        free(next);
        return;
    }
    if (cfg_load(h->argc, h->argv, next, &action, &cause) != 0 ||
        !cfg_same_sites(h->cfg, next, &cause)) {
        log_msg(LOG_ERROR, "main", "SIGHUP: %s; keeping the running configuration", cause);
        free(cause);
        cfg_free(next);
        free(next);
        return;
    }
    svc_notify("RELOADING=1");
    cfg_keep_restart_only(h->cfg, next);
    log_set_level(next->log_level);
    job = cmd_job_new(CMD_RELOAD, h->nworkers, 0);
    job->cfg = next;
    cmd_submit(&h->hub, job);
    cmd_job_wait(job);
    cmd_job_free(job);
    api_set_cfg(h->api, next);
    h->retired = xrealloc(h->retired, (h->nretired + 1) * sizeof *h->retired);
    h->retired[h->nretired++] = h->cfg;
    h->cfg = next;
    set_fd_budget(h);
    log_msg(LOG_INFO, "main", "configuration reloaded from %s", next->file);
    svc_notify("READY=1");
}

/* Free the running and every retired snapshot. */
static void free_cfgs(struct herald *h)
{
    for (size_t i = 0; i < h->nretired; i++) {
        cfg_free(h->retired[i]);
        free(h->retired[i]);
    }
    free(h->retired);
    cfg_free(h->cfg);
    free(h->cfg);
}

/*
 * Wait for SIGTERM or SIGINT, reloading on SIGHUP. Once a second, drop
 * history past its age and client addresses with nothing left to count.
 */
static void wait_for_stop(struct herald *h, const sigset_t *set)
{
    struct timespec tick = {.tv_sec = 1};
    siginfo_t si;

    for (;;) {
        int sig = sigtimedwait(set, &si, &tick);

        if (sig < 0) {
            if (errno == EAGAIN) {
                hist_sweep(&h->hist);
                lim_sweep(&h->lim, h->cfg, lim_now());
            } else if (errno != EINTR) {
                log_fatal("main", "sigtimedwait: %s", strerror(errno));
            }
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            log_msg(LOG_INFO, "main", "%s received: closing connections",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        reload(h);
    }
}

/* Log what we listen on and the settings an admin checks first. */
static void log_startup(const struct herald *h, long fdlimit)
{
    const struct cfg *cfg = h->cfg;

    log_msg(LOG_INFO, "main", "herald starting: %d workers, %d api threads, file limit %ld",
            cfg->workers, cfg->api_threads, fdlimit);
    if (cfg->sites[0]->dev_secret)
        log_msg(LOG_WARN, "main",
                "using the built-in development secret: anyone can make "
                "tokens for it; set secret or secret_file in a config file for production");
    if (!cfg->explicit_sites) {
        log_msg(LOG_INFO, "main", "listening on ws %s path %s", cfg->listen,
                cfg->sites[0]->ws_path);
        log_msg(LOG_INFO, "main", "listening on api %s", cfg->sites[0]->api_socket);
        return;
    }
    log_msg(LOG_INFO, "main", "listening on ws %s", cfg->listen);
    for (size_t i = 0; i < cfg->nsites; i++) {
        const struct cfg_site *site = cfg->sites[i];

        log_msg(LOG_INFO, "main", "site %s: ws path %s, host %s, api %s", site->site, site->ws_path,
                site->host != NULL ? site->host : "any", site->api_socket);
    }
}

int main(int argc, char **argv)
{
    struct herald h;
    enum cfg_action action;
    char *cause = NULL;
    sigset_t set;
    long fdlimit;

    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return status_main(argc - 1, argv + 1);
    memset(&h, 0, sizeof h);
    h.argc = argc;
    h.argv = argv;
    h.cfg = xcalloc(1, sizeof *h.cfg);
    if (cfg_load(argc, argv, h.cfg, &action, &cause) != 0) {
        fprintf(stderr, "herald: %s\n", cause);
        free(cause);
        free(h.cfg);
        return 1;
    }
    if (action == CFG_CHECK && check_history(h.cfg, &cause) != 0) {
        fprintf(stderr, "herald: %s\n", cause);
        free(cause);
        free_cfgs(&h);
        return 1;
    }
    if (action != CFG_RUN) {
        if (action == CFG_CHECK)
            printf("config ok\n");
        free_cfgs(&h);
        return 0;
    }
    log_set_level(h.cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    fdlimit = net_raise_fd_limit();
    h.fdlimit = fdlimit;

    if (start_workers(&h, &cause) != 0)
        goto fail;
    h.api = api_start(h.cfg, &h.hub, &cause);
    if (h.api == NULL)
        goto fail;
    if (h.cfg->metrics_listen != NULL &&
        (h.mlisten = mlisten_start(h.api, h.cfg->metrics_listen, &cause)) == NULL)
        goto fail;
    if (svc_drop_privileges(h.cfg->user, h.cfg->group, &cause) != 0)
        goto fail;
    log_startup(&h, fdlimit);
    h.fd_base = count_other_fds(&h);
    set_fd_budget(&h);
    log_msg(LOG_INFO, "main", "ready");
    svc_notify("READY=1\nSTATUS=accepting connections");

    wait_for_stop(&h, &set);
    svc_notify("STOPPING=1");
    mlisten_stop(h.mlisten);
    api_stop(h.api);
    stop_workers(&h);
    eng_stop(h.engine);
    save_history(&h);
    free_workers(&h);
    log_msg(LOG_INFO, "main", "stopped");
    free_cfgs(&h);
    return 0;
fail:
    log_msg(LOG_ERROR, "main", "%s", cause);
    free(cause);
    /* Threads may be running: leave without tearing down what they use. */
    if (h.shared_lfd >= 0)
        net_unlink(h.cfg->listen);
    return 1;
}

/*
 * status.c -- `herald status [-c FILE] [--site NAME] [--json] [--timeout S]`:
 * ask a running Herald for each site's figures and print them as a table
 * (or, with --json, the answers as they came, by site).
 *
 * Owns:       the options, one struct status_site per site asked (its
 *             socket, request, decoder and answer), all freed before
 *             status_main returns.
 * Called by:  main.c (status_main), before the daemon's flags are read.
 * Invariants: one thread, nothing blocks: every site's socket is
 *             non-blocking and all of them wait in one poll(), so the whole
 *             run takes at most --timeout, however many sites hang. An
 *             answer is bounded (STATUS_MAX_ANSWER bytes of stdout, decoded
 *             by the FastCGI client codec, lib/rpc/fcgi_client.c), and
 *             anything that is not a FastCGI answer holding a JSON object
 *             is that site's error, never a crash or a hang.
 * Errors:     each site that did not answer gets one line saying why (no
 *             socket, permission, nothing listening, refused, timeout,
 *             malformed answer) and the exit status 1; see status.h.
 * Tests:      tests/integration/36-status.py; the formatting and the
 *             answer checks in tests/unit/test_status.c.
 *
 * Which config: -c FILE, else /etc/herald/herald.ini if it exists, else the
 * development defaults: what the daemon itself would run with.
 */
#include "status.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cfg.h"
#include "fcgi_client.h"
#include "status_table.h"
#include "xmalloc.h"

#define STATUS_DEFAULT_FILE "/etc/herald/herald.ini"
#define STATUS_TIMEOUT 5.0             /* seconds, without --timeout */
#define STATUS_TIMEOUT_MAX 3600.0      /* the most --timeout takes */
#define STATUS_MAX_ANSWER (256u << 10) /* stdout bytes taken from one site */
#define STATUS_READ 16384              /* bytes read per call */
#define STATUS_REQUEST_ID 1
#define STATUS_MAX_MESSAGE 300 /* bytes of a site's error message, quotes included */

struct status_opts {
    const char *file; /* borrowed (argv): -c, or NULL */
    const char *site; /* borrowed (argv): --site, or NULL for every site */
    int json;
    double timeout; /* seconds for every answer, from the start */
};

enum status_phase { STATUS_SENDING, STATUS_RECEIVING, STATUS_FINISHED };

/* One site asked: its socket while the exchange lasts, then its answer or its error. */
struct status_site {
    const struct cfg_site *cfg; /* borrowed: the site's settings */
    int fd;                     /* owned, or -1 */
    enum status_phase phase;
    char *req; /* owned: the encoded request */
    size_t req_len, req_sent;
    struct fcgic_parser parser; /* its out is owned */
    json_t *answer;             /* owned: the answer's JSON object, or NULL */
    char *error;                /* owned: why there is no answer, or NULL */
};

/* Print the usage to f. */
static void status_usage(FILE *f)
{
    fprintf(f, "usage: herald status [-c FILE] [--site NAME] [--json] [--timeout SECONDS]\n\n"
               "Ask a running Herald for each site's figures, through the sites' API sockets.\n\n"
               "  -c, --config FILE        the daemon's config file (default\n"
               "                           " STATUS_DEFAULT_FILE " if it exists,\n"
               "                           else the development defaults)\n"
               "      --site NAME          only this site\n"
               "      --json               print the answers as one JSON object, by site\n"
               "      --timeout SECONDS    wait this long for every answer (default 5)\n"
               "      --help               print this help\n\n"
               "Exit status: 0 every site answered; 1 some site did not, or the config\n"
               "could not be read; 2 a usage error.\n");
}

/* A usage error: one line, then where to look. Returns STATUS_USAGE. */
static int status_bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "herald status: %s%s%s (see herald status --help)\n", what, arg ? " " : "",
            arg ? arg : "");
    return STATUS_USAGE;
}

/* The value of option name at argv[*i] ("--name VALUE" or "--name=VALUE"), or NULL. */
static const char *status_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* Read --timeout: seconds, above 0 and at most STATUS_TIMEOUT_MAX. */
static int status_parse_timeout(const char *v, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d > 0) || d > STATUS_TIMEOUT_MAX)
        return -1;
    *out = d;
    return 0;
}

/* Parse argv into *o; 0, 1 for --help, or STATUS_USAGE (said on stderr). */
static int status_parse_args(int argc, char **argv, struct status_opts *o)
{
    o->file = o->site = NULL;
    o->json = 0;
    o->timeout = STATUS_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if ((v = status_value(argc, argv, &i, "-c", &missing)) != NULL ||
                   (v = status_value(argc, argv, &i, "--config", &missing)) != NULL) {
            o->file = v;
        } else if ((v = status_value(argc, argv, &i, "--site", &missing)) != NULL) {
            o->site = v;
        } else if ((v = status_value(argc, argv, &i, "--timeout", &missing)) != NULL) {
            if (status_parse_timeout(v, &o->timeout) != 0)
                return status_bad_usage("--timeout takes seconds, more than 0 and at most 3600:",
                                        v);
        } else if (missing) {
            return status_bad_usage("this option needs a value:", a);
        } else {
            return status_bad_usage(a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    if (o->file != NULL && o->file[0] == '\0')
        return status_bad_usage("-c needs a file name", NULL);
    return 0;
}

/* Seconds on the monotonic clock. */
static double status_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Why connect(2) to the site's socket failed, as the admin should read it (malloc'd). */
static char *status_connect_error(const struct cfg_site *site, int err)
{
    const char *path = site->api_socket;

    switch (err) {
    case ENOENT: return xasprintf("no such socket %s: is herald running?", path);
    case ECONNREFUSED: return xasprintf("nothing listens on %s: is herald running?", path);
    case EACCES:
    case EPERM:
        if (site->api_socket_group != NULL)
            return xasprintf("permission denied on %s: run as root or as a member of group %s",
                             path, site->api_socket_group);
        return xasprintf("permission denied on %s: run as root or as the site's group", path);
    case EAGAIN: return xasprintf("%s takes no more connections now: is herald stuck?", path);
    case ENOTDIR:
        return xasprintf("no such socket %s: a part of the path is not a directory", path);
    default: return xasprintf("cannot connect to %s: %s", path, strerror(err));
    }
}

/* Open the site's socket and encode its request; on failure s->error says why. */
static void status_open(struct status_site *s)
{
    static const char *const names[] = {"REQUEST_METHOD", "SCRIPT_NAME", "REQUEST_URI",
                                        "QUERY_STRING", "SERVER_SOFTWARE"};
    static const char *const values[] = {"GET", "/stats", "/stats", "",
                                         ("herald-status/" HERALD_VERSION)};
    struct fcgic_param params[sizeof names / sizeof names[0]];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    const char *path = s->cfg->api_socket;

    s->phase = STATUS_FINISHED;
    if (strlen(path) >= sizeof sun.sun_path) {
        s->error = xasprintf("socket path %s is too long", path);
        return;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        s->error = xasprintf("socket: %s", strerror(errno));
        return;
    }
    if (connect(s->fd, (struct sockaddr *)&sun, sizeof sun) != 0 && errno != EINPROGRESS) {
        s->error = status_connect_error(s->cfg, errno);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        params[i] = (struct fcgic_param){names[i], strlen(names[i]), values[i], strlen(values[i])};
    if (fcgic_encode(STATUS_REQUEST_ID, params, sizeof names / sizeof names[0], NULL, 0, &s->req,
                     &s->req_len) != 0) {
        s->error = xstrdup("cannot encode the request");
        return;
    }
    fcgic_parser_init(&s->parser, STATUS_REQUEST_ID, STATUS_MAX_ANSWER);
    s->phase = STATUS_SENDING;
}

/* The "error" a refusal's JSON body gives, or else its first line (malloc'd). */
static char *status_refusal_text(const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *e = json_string_value(json_object_get(o, "error"));
    /* not the JSON refusal herald sends: the first line (the parser's out is NUL-ended) */
    size_t n = strcspn(body, "\r\n");
    char *text = e != NULL ? xstrdup(e) : xstrndup(body, n < len ? n : len);

    json_decref(o);
    return text;
}

/* Make a message that may quote a peer's bytes printable: no control bytes, at most 300. */
static char *status_printable(char *msg)
{
    size_t n = 0;

    for (char *p = msg; *p != '\0'; p++, n++) {
        if (n == STATUS_MAX_MESSAGE) {
            memcpy(p - 3, "...", 4);
            break;
        }
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    }
    return msg;
}

/*
 * Check a whole FastCGI answer's stdout (len bytes at out): a CGI answer
 * with status 200 whose body is a JSON object with "ok": true. Returns the
 * object, or NULL with *error set (malloc'd).
 */
static json_t *status_check_answer(const char *out, size_t len, int protocol_status, char **error)
{
    struct fcgic_response r;
    json_error_t jerr;
    json_t *o;
    char *why;

    if (protocol_status != FCGIC_REQUEST_COMPLETE) {
        *error = xasprintf("the request was not served (FastCGI status %d)", protocol_status);
        return NULL;
    }
    if (out == NULL || fcgic_parse_response(out, len, &r) != 0) {
        *error = xstrdup("malformed answer: not a CGI answer (no headers, blank line, body)");
        return NULL;
    }
    if (r.status != 200) {
        why = status_refusal_text(r.body, r.body_len);
        if (r.status == 403)
            *error = xasprintf(
                "refused (403): %s: run as root or as a user the site's publish_uids lists", why);
        else
            *error = xasprintf("herald answered %d: %s", r.status, why);
        free(why);
        return NULL;
    }
    o = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o) || !json_is_true(json_object_get(o, "ok"))) {
        *error = o == NULL ? xasprintf("malformed answer: not JSON (%s)", jerr.text)
                           : xstrdup("malformed answer: not a JSON object with \"ok\": true");
        json_decref(o);
        return NULL;
    }
    return o;
}

/* End the exchange with s: close its socket, keep its answer or why there is none. */
static void status_finish(struct status_site *s, char *error)
{
    if (error == NULL)
        s->answer = status_check_answer(s->parser.out, s->parser.out_len, s->parser.protocol_status,
                                        &error);
    s->error = error != NULL ? status_printable(error) : NULL;
    s->phase = STATUS_FINISHED;
    close(s->fd);
    s->fd = -1;
}

/* Send what is left of the request. */
static void status_send(struct status_site *s)
{
    ssize_t n = send(s->fd, s->req + s->req_sent, s->req_len - s->req_sent, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        status_finish(s, xstrdup("the connection closed before the request was sent"));
        return;
    }
    if (n < 0) {
        status_finish(s, xasprintf("the request could not be sent: %s", strerror(errno)));
        return;
    }
    s->req_sent += (size_t)n;
    if (s->req_sent == s->req_len)
        s->phase = STATUS_RECEIVING;
}

/* Read what has come and feed it to the decoder. */
static void status_receive(struct status_site *s)
{
    char buf[STATUS_READ];
    ssize_t n = read(s->fd, buf, sizeof buf);
    int r;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0 && errno != ECONNRESET) {
        status_finish(s, xasprintf("reading the answer: %s", strerror(errno)));
        return;
    }
    if (n <= 0) {
        status_finish(s, xstrdup("the connection closed before the answer was complete"));
        return;
    }
    r = fcgic_parser_feed(&s->parser, buf, (size_t)n);
    if (r == FCGIC_DONE)
        status_finish(s, NULL);
    else if (r == FCGIC_E_TOO_LARGE)
        status_finish(s, xasprintf("malformed answer: over %u KiB", STATUS_MAX_ANSWER >> 10));
    else if (r != FCGIC_MORE)
        status_finish(s, xstrdup("malformed answer: not FastCGI"));
}

/* Exchange with every site at once until each is finished or the deadline passes. */
static void status_exchange(struct status_site *sites, size_t n, double timeout)
{
    struct pollfd *fds = xcalloc(n, sizeof *fds);
    size_t *which = xcalloc(n, sizeof *which);
    double deadline = status_now() + timeout;

    for (;;) {
        size_t k = 0;
        double left = deadline - status_now();

        for (size_t i = 0; i < n; i++) {
            if (sites[i].phase == STATUS_FINISHED)
                continue;
            if (left <= 0) {
                status_finish(&sites[i],
                              xasprintf("no answer within %g s: is herald stuck?", timeout));
                continue;
            }
            fds[k] = (struct pollfd){.fd = sites[i].fd,
                                     .events = sites[i].phase == STATUS_SENDING ? POLLOUT : POLLIN};
            which[k++] = i;
        }
        if (k == 0)
            break;
        if (poll(fds, k, (int)(left * 1000) + 1) < 0 && errno != EINTR) {
            const char *why = strerror(errno); /* before status_finish's close() */

            for (size_t j = 0; j < k; j++)
                status_finish(&sites[which[j]], xasprintf("poll: %s", why));
            break;
        }
        for (size_t j = 0; j < k; j++) {
            struct status_site *s = &sites[which[j]];

            if (fds[j].revents == 0)
                continue;
            if (s->phase == STATUS_SENDING)
                status_send(s);
            else
                status_receive(s);
        }
    }
    free(which);
    free(fds);
}

/* Free what one site holds. */
static void status_site_free(struct status_site *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->req);
    fcgic_parser_free(&s->parser);
    json_decref(s->answer);
    free(s->error);
}

/* The config file to read: -c, else the system one if it exists, else none (defaults). */
static const char *status_config_file(const struct status_opts *o)
{
    if (o->file != NULL)
        return o->file;
    return access(STATUS_DEFAULT_FILE, F_OK) == 0 ? STATUS_DEFAULT_FILE : NULL;
}

/* The sites to ask: every site, or --site's; NULL (said on stderr) for a name none has. */
static struct status_site *status_pick(const struct cfg *cfg, const char *only, size_t *n)
{
    struct status_site *sites = xcalloc(cfg->nsites, sizeof *sites);
    int k = only != NULL ? cfg_site_index(cfg, only) : -1;

    *n = 0;
    if (only != NULL && k < 0) {
        fprintf(stderr, "herald status: no site named %s in %s (its sites:", only,
                cfg->file != NULL ? cfg->file : "the development defaults");
        for (size_t i = 0; i < cfg->nsites; i++)
            fprintf(stderr, " %s", cfg->sites[i]->site);
        fprintf(stderr, ")\n");
        free(sites);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nsites; i++) {
        if (only != NULL && (int)i != k)
            continue;
        sites[*n].cfg = cfg->sites[i];
        sites[*n].fd = -1;
        (*n)++;
    }
    return sites;
}

int status_main(int argc, char **argv)
{
    struct status_opts o;
    struct status_site *sites;
    struct status_table_site *rows;
    struct cfg cfg;
    char *cause = NULL;
    size_t n, failed;
    int r = status_parse_args(argc, argv, &o);

    if (r == 1) {
        status_usage(stdout);
        return STATUS_OK;
    }
    if (r != 0)
        return r;
    if (cfg_load_peek(status_config_file(&o), &cfg, &cause) != 0) {
        fprintf(stderr, "herald status: %s\n", cause);
        free(cause);
        return STATUS_UNREACHABLE;
    }
    sites = status_pick(&cfg, o.site, &n);
    if (sites == NULL) {
        cfg_free(&cfg);
        return STATUS_USAGE;
    }
    for (size_t i = 0; i < n; i++)
        status_open(&sites[i]);
    status_exchange(sites, n, o.timeout);
    rows = xcalloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        rows[i] = (struct status_table_site){sites[i].cfg->site, sites[i].answer, sites[i].error};
        sites[i].error = NULL; /* the row's now */
    }
    failed =
        o.json ? status_table_print_json(stdout, rows, n) : status_table_print(stdout, rows, n);
    for (size_t i = 0; i < n; i++) {
        free(rows[i].error);
        status_site_free(&sites[i]);
    }
    free(rows);
    free(sites);
    cfg_free(&cfg);
    return failed > 0 ? STATUS_UNREACHABLE : STATUS_OK;
}

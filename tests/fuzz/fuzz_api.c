/*
 * fuzz_api.c -- libFuzzer target for the API's request handler: api_route
 * (lib/api/routes.c) with any method, path, query string and body, as libfcgi
 * hands them over.
 *
 * Input: "METHOD\nPATH\nQUERY\nBODY" (missing parts are empty; the body is
 * the rest, NUL bytes included). The hub has no workers, so publishes are
 * done as soon as they are submitted, but they still go through validation,
 * numbering and history (the memory engine, hist.c), and /presence and
 * /stats read the real tables. History and the engine are made fresh for
 * each input so they cannot grow.
 * Checks: nothing crashes or reads outside the input (ASan, UBSan); every
 * answer is a known status with a JSON object body whose "ok" agrees with
 * the status; nothing leaks (LSan).
 */
#include "api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cfg.h"
#include "engine.h"
#include "hist.h"
#include "lim.h"
#include "site.h"

static struct cfg cfg;
static struct site site;
static struct lim lim;

/* Presence events have no subscriber here. */
static void fuzz_no_event(void *arg, int site, int join, const char *channel, const char *user,
                          const char *info)
{
}

/* Load the defaults once, with presence on room:* so /presence has work to do. */
static void fuzz_setup(void)
{
    char a0[] = "fuzz_api", a1[] = "--presence-channels", a2[] = "room:*";
    char *argv[] = {a0, a1, a2, NULL};
    enum cfg_action action;
    char *cause = NULL;

    if (cfg_load(3, argv, &cfg, &action, &cause) != 0)
        abort();
    site_init(&site, "default");
    lim_init(&lim);
}

/* Cut the next '\n'-terminated part off *p; the last part runs to the end. */
static char *fuzz_part(const uint8_t **p, size_t *left, int last)
{
    const uint8_t *nl = last ? NULL : memchr(*p, '\n', *left);
    size_t n = nl != NULL ? (size_t)(nl - *p) : *left;
    char *s = malloc(n + 1);

    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl != NULL);
    *left -= n + (nl != NULL);
    return s;
}

/*
 * A JSON answer must be an object whose "ok" matches the status; the one
 * answer of another type, GET /metrics, a 200 in Prometheus' text format.
 */
static void fuzz_check(const struct api_response *resp)
{
    json_t *o;
    int ok;

    if (resp->type != NULL) {
        if (resp->status != 200 || strncmp(resp->type, "text/plain; version=0.0.4", 25) != 0 ||
            strncmp(resp->body, "# HELP ", 7) != 0)
            abort();
        return;
    }
    o = json_loads(resp->body, 0, NULL);
    ok = json_is_true(json_object_get(o, "ok"));
    if (!json_is_object(o) || ok != (resp->status == 200) ||
        (resp->status != 200 && resp->status != 400 && resp->status != 404 && resp->status != 405))
        abort();
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct cmd_hub hub;
    struct hist hist;
    struct engine *engine;
    struct eng_stream room = {0, 'c', "room:1"};
    const char *names[] = {"default"};
    const size_t budgets[] = {1 << 20};
    struct api a;
    struct api_site asite = {.lfd = -1};
    struct api_response resp;
    char *method, *path, *query, *body;
    size_t len;

    if (!ready) {
        fuzz_setup();
        ready = 1;
    }
    method = fuzz_part(&data, &size, 0);
    path = fuzz_part(&data, &size, 0);
    query = fuzz_part(&data, &size, 0);
    len = size;
    body = fuzz_part(&data, &size, 1);
    hist_init(&hist, 100, 300, 1, names, budgets);
    memset(&hub, 0, sizeof hub);
    engine = eng_memory_new(&hist, 1, names, 0, cmd_deliver, fuzz_no_event, &hub);
    eng_join(engine, &room, "42", "{\"name\":\"Ann\"}", NULL, NULL);
    hub.sites = &site;
    hub.nsites = 1;
    hub.engine = engine;
    hub.lim = &lim;
    memset(&a, 0, sizeof a);
    a.cfg = &cfg;
    a.hub = &hub;
    a.sites = &asite;
    a.nsites = 1;
    a.started = time(NULL);
    memset(&resp, 0, sizeof resp);
    api_route(&a, 0, method, path, query, body, len, &resp);
    fuzz_check(&resp);
    free(resp.body);
    eng_free(engine);
    hist_free(&hist);
    free(method);
    free(path);
    free(query);
    free(body);
    return 0;
}

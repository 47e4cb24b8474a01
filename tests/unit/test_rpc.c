/*
 * test_rpc.c -- calls to PHP (lib/rpc/rpc.c) on a real libev loop against a
 * stand-in php-fpm: a thread on a Unix socket that reads one FastCGI
 * request and answers as scripted. What a caller of rpc_start sees: the
 * request PHP gets (script, type, time, the body's signature), each way a
 * call can end and the code it ends with, the counters and the site's
 * in-flight count, the per-site limit, the timeout, and that a call ends
 * exactly once, through the context's done callback, or not at all when
 * aborted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg_helpers.h"
#include "rpc.h"

enum fpm_mode {
    FPM_JSON,       /* 200 with a JSON body */
    FPM_APP_ERROR,  /* 422 with {"code","message"} (herald_rpc_error) */
    FPM_FATAL,      /* 500 without a code */
    FPM_NOT_JSON,   /* 200 with text that is not JSON */
    FPM_OVERLOADED, /* END_REQUEST with FCGI_OVERLOADED */
    FPM_SILENT,     /* reads the request, never answers */
};

/* The stand-in php-fpm: one connection, one scripted answer. */
struct fpm {
    int lfd, fd;
    char path[64];
    enum fpm_mode mode;
    pthread_t thread;
    char params[4096]; /* "NAME=VALUE\n" per param */
    char body[4096];
    size_t body_len;
};

/* What the done callback saw. */
struct ended {
    int calls;
    enum proto_err err;
    int status;
    char body[256];
};

static struct ev_loop *loop;
static struct cfg cfg;
static char *ini;
static struct rpc_ctx ctx;
static struct rpc_counts counts;
static atomic_int inflight;
static struct ended ended;
static struct fpm fpm;

/* Read exactly n bytes; 0, or -1 at EOF or error. */
static int read_full(int fd, void *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)p + got, n - got);

        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One FastCGI name-value length (1 or 4 bytes) at *p. */
static size_t nv_len(const uint8_t **p)
{
    size_t n = **p;

    if (n < 128) {
        (*p)++;
        return n;
    }
    n = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) | ((size_t)(*p)[2] << 8) |
        (*p)[3];
    *p += 4;
    return n;
}

/* Read one request's records up to the empty STDIN; keep its params and body. */
static int fpm_read_request(struct fpm *f, unsigned *id)
{
    uint8_t h[8], c[65536 + 256];
    size_t plen = 0;

    for (;;) {
        size_t clen, pad;

        if (read_full(f->fd, h, 8) != 0)
            return -1;
        clen = (size_t)h[4] << 8 | h[5];
        pad = h[6];
        if (read_full(f->fd, c, clen + pad) != 0)
            return -1;
        *id = (unsigned)h[2] << 8 | h[3];
        if (h[1] == 4) { /* PARAMS */
            for (const uint8_t *p = c; p < c + clen;) {
                size_t nl = nv_len(&p), vl = nv_len(&p);

                plen += (size_t)snprintf(f->params + plen, sizeof f->params - plen, "%.*s=%.*s\n",
                                         (int)nl, (const char *)p, (int)vl, (const char *)p + nl);
                p += nl + vl;
            }
        } else if (h[1] == 5 && clen > 0) { /* STDIN */
            memcpy(f->body + f->body_len, c, clen);
            f->body_len += clen;
        } else if (h[1] == 5) {
            return 0;
        }
    }
}

/* Write one record of type and content for request id. */
static void fpm_record(int fd, int type, unsigned id, const void *p, size_t n)
{
    uint8_t h[8] = {
        1, (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(n >> 8), (uint8_t)n, 0, 0};

    assert_int_equal(write(fd, h, 8), 8);
    if (n > 0)
        assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void *fpm_main(void *arg)
{
    struct fpm *f = arg;
    static const char *const answers[] = {
        [FPM_JSON] = "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{\"total\":42}",
        [FPM_APP_ERROR] = "Status: 422 Unprocessable\r\nContent-Type: application/json\r\n\r\n"
                          "{\"code\":\"out_of_stock\",\"message\":\"none left\"}",
        [FPM_FATAL] = "Status: 500 Internal Server Error\r\n\r\nPHP Fatal error",
        [FPM_NOT_JSON] = "Status: 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
    };
    uint8_t end[8] = {0};
    unsigned id = 0;

    f->fd = accept(f->lfd, NULL, NULL);
    if (f->fd < 0 || fpm_read_request(f, &id) != 0 || f->mode == FPM_SILENT)
        return NULL;
    if (f->mode == FPM_OVERLOADED) {
        end[4] = 2;
    } else {
        fpm_record(f->fd, 6, id, answers[f->mode], strlen(answers[f->mode]));
        fpm_record(f->fd, 6, id, NULL, 0);
    }
    fpm_record(f->fd, 3, id, end, sizeof end);
    return NULL;
}

/* Listen at the rpc_socket of the config and answer one request as mode says. */
static void fpm_start(enum fpm_mode mode)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    fpm.mode = mode;
    fpm.fd = -1;
    fpm.body_len = 0;
    fpm.params[0] = '\0';
    fpm.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fpm.lfd >= 0);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fpm.path);
    unlink(fpm.path);
    assert_int_equal(bind(fpm.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fpm.lfd, 8), 0);
    assert_int_equal(pthread_create(&fpm.thread, NULL, fpm_main, &fpm), 0);
}

static void fpm_stop(void)
{
    /* A thread still in accept (no call reached it) is woken by a connection of our own. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fpm.path);
    if (fpm.fd < 0)
        connect(s, (struct sockaddr *)&sa, sizeof sa);
    close(s);
    pthread_join(fpm.thread, NULL);
    if (fpm.fd >= 0)
        close(fpm.fd);
    close(fpm.lfd);
    unlink(fpm.path);
}

static void on_done(struct rpc_call *call, const struct rpc_result *res)
{
    ended.calls++;
    ended.err = res->err;
    ended.status = res->status;
    snprintf(ended.body, sizeof ended.body, "%.*s", (int)res->body_len,
             res->body != NULL ? res->body : "");
    ev_break(loop, EVBREAK_ALL);
}

static void on_deadline(struct ev_loop *l, ev_timer *t, int revents)
{
    ev_break(l, EVBREAK_ALL);
}

/* Run the loop until a call ends or 5 s pass. */
static void run_until_done(void)
{
    ev_timer deadline;

    ev_timer_init(&deadline, on_deadline, 5., 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
}

/* Load a config whose PHP is our stand-in, with these extra lines. */
static void setup_with(const char *extra)
{
    char text[1024];

    snprintf(fpm.path, sizeof fpm.path, "/tmp/herald-test-rpc-%d.sock", (int)getpid());
    snprintf(text, sizeof text,
             "[herald]\nsecret = " GOOD_SECRET "\nrpc_socket = unix:%s\n"
             "rpc_script = /srv/app/herald-rpc.php\n%s",
             fpm.path, extra);
    ini = tmp_ini(text);
    load_ok(&cfg, "-c", ini, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    memset(&counts, 0, sizeof counts);
    memset(&ended, 0, sizeof ended);
    atomic_init(&inflight, 0);
    rpc_ctx_init(&ctx, loop, &cfg, on_done, 1);
    rpc_ctx_site(&ctx, 0, &counts, &inflight);
}

static int setup(void **state)
{
    setup_with("");
    return 0;
}

static int setup_tight(void **state)
{
    setup_with("rpc_max_inflight = 1\nrpc_timeout = 200ms\n");
    return 0;
}

static int teardown(void **state)
{
    rpc_ctx_free(&ctx);
    ev_loop_destroy(loop);
    cfg_free(&cfg);
    tmp_remove(ini);
    return 0;
}

/* Start a client call with body {"method":"total"}; returns the call or NULL with *err. */
static struct rpc_call *start(enum rpc_kind kind, enum proto_err *err)
{
    return rpc_start(&ctx, 0, kind, NULL, json_pack("{s:s}", "method", "total"), err);
}

static void test_rpc_php_gets_a_signed_request_and_its_answer_comes_back(void **state)
{
    enum proto_err err = PROTO_OK;
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char want[128], hex[65];

    fpm_start(FPM_JSON);
    assert_non_null(start(RPC_CALL, &err));
    assert_int_equal(atomic_load(&inflight), 1);
    run_until_done();
    fpm_stop();
    assert_int_equal(ended.calls, 1);
    assert_int_equal(ended.err, PROTO_OK);
    assert_int_equal(ended.status, 200);
    assert_string_equal(ended.body, "{\"total\":42}");
    /* What PHP got: its script, the call's type and time, and the body's signature. */
    assert_non_null(strstr(fpm.params, "SCRIPT_FILENAME=/srv/app/herald-rpc.php\n"));
    assert_non_null(strstr(fpm.params, "REQUEST_URI=/herald/rpc\n"));
    fpm.body[fpm.body_len] = '\0';
    assert_non_null(strstr(fpm.body, "\"method\":\"total\""));
    assert_non_null(strstr(fpm.body, "\"type\":\"rpc\""));
    assert_non_null(strstr(fpm.body, "\"time\":"));
    HMAC(EVP_sha256(), GOOD_SECRET, (int)strlen(GOOD_SECRET), (const unsigned char *)fpm.body,
         fpm.body_len, mac, &mac_len);
    for (size_t i = 0; i < sizeof mac; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(want, sizeof want, "HERALD_SIGNATURE=%s\n", hex);
    assert_non_null(strstr(fpm.params, want));
    assert_int_equal(counts.calls, 1);
    assert_int_equal(counts.replies, 1);
    assert_int_equal(atomic_load(&inflight), 0);
    assert_null(ctx.calls);
}

/* One call against mode: what it ended with. */
static enum proto_err call_against(enum fpm_mode mode)
{
    enum proto_err err = PROTO_OK;

    memset(&ended, 0, sizeof ended);
    fpm_start(mode);
    assert_non_null(start(RPC_CALL, &err));
    run_until_done();
    fpm_stop();
    assert_int_equal(ended.calls, 1);
    return ended.err;
}

static void test_rpc_every_way_php_can_answer(void **state)
{
    /* herald_rpc_error(): PHP's own code goes to the client, counted as an app error. */
    assert_int_equal(call_against(FPM_APP_ERROR), PROTO_OK);
    assert_int_equal(ended.status, 422);
    assert_int_equal(counts.app_errors, 1);
    assert_int_equal(call_against(FPM_FATAL), PROTO_E_RPC_FAILED);
    assert_int_equal(call_against(FPM_NOT_JSON), PROTO_E_RPC_BAD_REPLY);
    assert_int_equal(call_against(FPM_OVERLOADED), PROTO_E_RPC_UNAVAILABLE);
    assert_int_equal(counts.calls, 4);
    assert_int_equal(counts.failed, 3);
    assert_int_equal(counts.replies, 0);
    assert_int_equal(atomic_load(&inflight), 0);
}

static void test_rpc_no_php_fails_at_once(void **state)
{
    enum proto_err err = PROTO_OK;

    unlink(fpm.path);
    assert_null(start(RPC_CALL, &err));
    assert_int_equal(err, PROTO_E_RPC_UNAVAILABLE);
    assert_int_equal(ended.calls, 0);
    assert_int_equal(counts.failed, 1);
    assert_int_equal(atomic_load(&inflight), 0);
}

static void test_rpc_the_site_limit_refuses_calls_and_drops_hooks(void **state)
{
    enum proto_err err = PROTO_OK;

    fpm_start(FPM_SILENT);
    assert_non_null(start(RPC_CALL, &err));
    /* rpc_max_inflight = 1: a client's call is answered busy, a hook is dropped. */
    assert_null(start(RPC_CALL, &err));
    assert_int_equal(err, PROTO_E_RPC_BUSY);
    assert_null(start(RPC_CONNECT, &err));
    assert_int_equal(err, PROTO_E_RPC_BUSY);
    assert_int_equal(counts.dropped, 1);
    assert_int_equal(counts.calls, 1);
    assert_int_equal(atomic_load(&inflight), 1);
    /* The first ends at rpc_timeout (200ms): PHP never answered. */
    run_until_done();
    fpm_stop();
    assert_int_equal(ended.calls, 1);
    assert_int_equal(ended.err, PROTO_E_RPC_TIMEOUT);
    assert_int_equal(atomic_load(&inflight), 0);
}

static void test_rpc_abort_ends_calls_without_a_result(void **state)
{
    enum proto_err err = PROTO_OK;

    fpm_start(FPM_SILENT);
    assert_non_null(start(RPC_CALL, &err));
    rpc_ctx_free(&ctx);
    fpm_stop();
    assert_int_equal(ended.calls, 0);
    assert_int_equal(counts.failed, 1);
    assert_int_equal(atomic_load(&inflight), 0);
    assert_null(ctx.calls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_rpc_php_gets_a_signed_request_and_its_answer_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_every_way_php_can_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_no_php_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_the_site_limit_refuses_calls_and_drops_hooks,
                                        setup_tight, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_abort_ends_calls_without_a_result, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

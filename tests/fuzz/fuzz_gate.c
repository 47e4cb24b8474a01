/*
 * fuzz_gate.c -- libFuzzer target for the API's gate (lib/api/gate.c) and the
 * contract it keeps for libfcgi (lib/api/relay.c): whatever the gate accepts,
 * libfcgi's real reader parses without aborting.
 *
 * Input: the first byte picks how many bytes are handed to gate_next at a
 * time (1..256), the rest are what a caller sends. Each request the gate
 * reports whole, with PARAMS that gate_params_check passes and within
 * APICONN_MAX_PARAMS (what apiconn.c lets through), goes to libfcgi through
 * a relay exactly as the daemon does it. Checks: nothing is read outside
 * the input (ASan); content is never reported past what was given; libfcgi
 * accepts every such request and sees exactly the pairs the gate counted;
 * its answer is STDOUT records and an END_REQUEST for the caller's request
 * id; nothing leaks (LeakSanitizer). The relay, as an API thread's, lives
 * across inputs: its memory files grow and are emptied as in the daemon.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "apiconn.h"
#include "gate.h"
#include "relay.h"

static struct relay relay;
static int relay_ready;

/* The handler: count the params libfcgi parsed, and answer. */
static void answer(void *arg, FCGX_Request *req, struct relay_buf *out)
{
    static const char cgi[] = "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{}\n";
    int *n = arg;

    for (char **e = req->envp; *e != NULL; e++)
        (*n)++;
    relay_put(out, cgi, sizeof cgi - 1);
}

/* Check libfcgi's answer: STDOUT records, then END_REQUEST, all for id. */
static void check_answer(const uint8_t *p, size_t n, unsigned id)
{
    size_t off = 0;
    int ended = 0;

    while (off < n) {
        size_t clen;

        if (n - off < GATE_HEADER || ended || p[off] != GATE_VERSION ||
            (unsigned)(p[off + 2] << 8 | p[off + 3]) != id)
            abort();
        clen = (size_t)p[off + 4] << 8 | p[off + 5];
        if (p[off + 1] == GATE_END_REQUEST)
            ended = 1;
        else if (p[off + 1] != GATE_STDOUT)
            abort();
        off += GATE_HEADER + clen + p[off + 6];
    }
    if (!ended || off != n)
        abort();
}

/* Hand a whole request the gate passed to libfcgi, as the daemon does. */
static void relay_request(const uint8_t *params, size_t plen, int pairs, unsigned id)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int seen = 0;
    char *cause = NULL;

    if (!relay_ready) {
        if (FCGX_Init() != 0 || relay_init(&relay, &cause) != 0) {
            fprintf(stderr, "fuzz_gate: cannot set up libfcgi: %s\n", cause ? cause : "");
            abort();
        }
        relay_ready = 1;
    }
    if (relay_run(&relay, id, params, plen, answer, &seen, &out, &len) != 0)
        abort();
    /* libfcgi adds FCGI_ROLE=RESPONDER to the caller's pairs. */
    if (seen != pairs + 1)
        abort();
    /* The answer is the relay's own buffer, kept for the next request. */
    check_answer(out, len, id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t params[APICONN_MAX_PARAMS];
    size_t step, off = 1, plen = 0;
    int over = 0;
    struct gate g;

    if (size < 1)
        return 0;
    step = (size_t)data[0] + 1;
    gate_init(&g);
    while (off < size) {
        size_t give = size - off < step ? size - off : step;
        struct gate_chunk ch;
        enum gate_event ev;
        int err, pairs;
        ssize_t r = gate_next(&g, data + off, give, &ev, &ch, &err);

        if (r < 0)
            return 0;
        if (r == 0 || (size_t)r > give)
            abort();
        if (ch.len > 0 && (ch.p < data + off || ch.p + ch.len > data + off + (size_t)r))
            abort();
        off += (size_t)r;
        if (ev == GATE_BEGIN) {
            plen = 0;
            over = 0;
        } else if (ev == GATE_PARAMS_DATA && !over) {
            over = ch.len > sizeof params - plen;
            if (!over) {
                memcpy(params + plen, ch.p, ch.len);
                plen += ch.len;
            }
        } else if (ev == GATE_STDIN_END && !over &&
                   (pairs = gate_params_check(params, plen)) >= 0) {
            relay_request(params, plen, pairs, g.request_id);
        }
    }
    return 0;
}

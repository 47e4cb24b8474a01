/*
 * fuzz_hist_file.c -- libFuzzer target for the history file reader
 * (hist_file.c: hist_file_read, the header, each site's line and its MAC,
 * and every field behind it), with two sites, "a" and "b".
 *
 * Owns:       nothing between runs.
 * Checks:     each input is read twice into a fresh history: as it is, and
 *             with every line's MAC replaced by the right one for the site it
 *             names, so the fuzzer also reaches the checks behind the MAC (what
 *             someone holding the secret could write). Whatever is accepted
 *             holds the history's invariants: an epoch of 8 lowercase hex
 *             digits; every stream of a configured site, its key that site's,
 *             1 to history_size entries with floor < offsets strictly rising
 *             <= last <= the counter; each body a JSON object that
 *             proto_text_frame numbers into a JSON object carrying the id; the
 *             dropped floors not above the counter; each site's streams,
 *             messages and bytes what its streams hold (each body counted
 *             once), within twice its budget. After hist_free every body has
 *             given back every reference (the target holds the last one, here
 *             checked) and LeakSanitizer finds nothing.
 * Build:      make build-fuzz/fuzz_hist_file, or make fuzz; see tests/fuzz/run.sh.
 */
#include "hist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"
#include "msg.h"
#include "proto.h"
#include "xmalloc.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define FUZZ_BUDGET (1u << 20)
#define FUZZ_SIZE 8

static const char *const NAMES[] = {"a", "b"};
static const struct hist_secret SECRETS[] = {{"fuzz-secret-of-site-a", 21},
                                             {"fuzz-secret-of-site-b", 21}};

/* Lowercase hex MAC of a part, as hist_file.c signs it. */
static void sign(int site, const char *json, size_t len, char hex[65])
{
    unsigned char key[32], mac[32];
    unsigned int kl = 0, ml = 0;
    size_t hl = strlen("herald-history 3\n"), n = hl + strlen(NAMES[site]) + 1 + len;
    unsigned char *in = xmalloc(n);

    memcpy(in, "herald-history 3\n", hl);
    memcpy(in + hl, NAMES[site], strlen(NAMES[site]));
    in[hl + strlen(NAMES[site])] = '\t';
    memcpy(in + n - len, json, len);
    CHECK(HMAC(EVP_sha256(), SECRETS[site].key, (int)SECRETS[site].len,
               (const unsigned char *)"herald history file v3", 22, key, &kl) != NULL);
    CHECK(HMAC(EVP_sha256(), key, (int)kl, in, n, mac, &ml) != NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    free(in);
}

/* The input with each line "<a or b>\t...\t<64 chars>" given its right MAC (malloc'd). */
static char *resign(const char *data, size_t size)
{
    char *out = xmalloc(size + 1);
    size_t at = 0;

    memcpy(out, data, size);
    out[size] = '\0';
    while (at < size) {
        char *nl = memchr(out + at, '\n', size - at), *line = out + at, *tab, *last;
        size_t n = nl != NULL ? (size_t)(nl - line) : size - at;
        int site = n > 1 && line[1] == '\t' ? (line[0] == 'a' ? 0 : line[0] == 'b' ? 1 : -1) : -1;
        char hex[65];

        tab = site >= 0 ? line + 1 : NULL;
        last = tab != NULL && n >= 2 + 1 + 64 ? line + n - 65 : NULL;
        if (last != NULL && *last == '\t' && last > tab) {
            sign(site, tab + 1, (size_t)(last - tab - 1), hex);
            memcpy(last + 1, hex, 64);
        }
        at += n + 1;
    }
    return out;
}

/* A body seen while checking, to count each once and to check its release. */
struct seen {
    struct hist_body *body; /* ref */
    UT_hash_handle hh;
};

/* One entry's body: numbered, it is a JSON object carrying the id. */
static void check_frame(struct hist *h, const struct hist_entry *e)
{
    char id[HIST_ID_MAX];
    struct msg *m = proto_text_frame(e->body->text, hist_id(h, e->offset, id));
    size_t len;
    const uint8_t *p = msg_payload(m, &len);
    json_t *o = json_loadb((const char *)p, len, JSON_ALLOW_NUL, NULL);

    CHECK(json_is_object(o));
    CHECK(strcmp(json_string_value(json_object_get(o, "id")), id) == 0);
    json_decref(o);
    msg_unref(m);
}

/* One stream: its key, its entries in order, what it costs; bodies into *seen. */
static size_t check_stream(struct hist *h, const struct hist_stream *s, uint64_t next,
                           struct seen **seen, size_t *messages)
{
    const char *name = h->sites[s->site].name;
    size_t cost = hist_stream_cost(strlen(s->key)), count = 0;
    uint64_t prev = s->floor;

    CHECK(strncmp(s->key, name, strlen(name)) == 0 && s->key[strlen(name)] == '/');
    CHECK(s->head != NULL && s->count >= 1 && s->count <= FUZZ_SIZE);
    for (const struct hist_entry *e = s->head; e != NULL; e = e->next, count++) {
        struct seen *k;

        CHECK(e->offset > prev && atomic_load(&e->body->kept) >= 1);
        prev = e->offset;
        check_frame(h, e);
        cost += hist_entry_cost();
        HASH_FIND_PTR(*seen, &e->body, k);
        if (k == NULL) {
            k = xmalloc(sizeof *k);
            k->body = hist_body_ref(e->body);
            HASH_ADD_PTR(*seen, body, k);
            cost += hist_body_cost(e->body->len);
        }
    }
    CHECK(count == s->count && prev == s->last && s->last <= next && s->tail->offset == prev);
    *messages += count;
    return cost;
}

/* The whole history against its counters; every body seen gets a reference in *seen. */
static void check(struct hist *h, struct seen **seen)
{
    uint64_t next = atomic_load(&h->next_offset);
    size_t bytes[2] = {0}, streams[2] = {0}, messages[2] = {0};

    for (int i = 0; i < 8; i++)
        CHECK((h->epoch[i] >= '0' && h->epoch[i] <= '9') ||
              (h->epoch[i] >= 'a' && h->epoch[i] <= 'f'));
    CHECK(h->epoch[8] == '\0');
    for (int k = 0; k < HIST_STRIPES; k++)
        for (struct hist_stream *s = h->table[k]; s != NULL; s = s->hh.next) {
            CHECK(s->site == 0 || s->site == 1);
            bytes[s->site] += check_stream(h, s, next, seen, &messages[s->site]);
            streams[s->site]++;
        }
    for (int i = 0; i < 2; i++) {
        struct hist_stats st;

        hist_stats(h, i, &st);
        CHECK(st.streams == streams[i] && st.messages == messages[i] && st.bytes == bytes[i]);
        CHECK(st.bytes <= 2 * (size_t)FUZZ_BUDGET);
        for (int b = 0; b < HIST_BUCKETS; b++)
            CHECK(h->sites[i].floors[b] <= next);
    }
}

/* Read one input into a fresh history, check it, free it, check every body let go. */
static void run(const char *data, size_t size)
{
    const size_t budgets[] = {FUZZ_BUDGET, FUZZ_BUDGET};
    struct seen *seen = NULL, *k, *tmp;
    struct hist h;

    hist_init(&h, FUZZ_SIZE, 3600, 2, NAMES, budgets);
    hist_file_read(&h, data, size, SECRETS, 2e9);
    check(&h, &seen);
    hist_free(&h);
    HASH_ITER (hh, seen, k, tmp) {
        CHECK(atomic_load(&k->body->refs) == 1 && atomic_load(&k->body->kept) == 0);
        hist_body_unref(k->body);
        HASH_DEL(seen, k);
        free(k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    char *signed_copy;

    if (!quiet) {
        log_set_level(LOG_ERROR + 1);
        quiet = 1;
    }
    run((const char *)data, size);
    signed_copy = resign((const char *)data, size);
    run(signed_copy, size);
    free(signed_copy);
    return 0;
}

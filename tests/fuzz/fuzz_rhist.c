/*
 * fuzz_rhist.c -- libFuzzer target for the checks on what Redis answers the
 * history scripts (rhist_parse_published, rhist_parse_numbered,
 * rhist_parse_since in lib/store/rhist.c).
 *
 * Input: RESP bytes, as Redis would send them, read by hiredis's reply
 * reader with rlink's bounded reply objects (as on rlink's connections),
 * then handed to every check; an array of 2n+1 elements (n at most
 * FUZZ_STREAMS) also as the answer for n streams and for n+1.
 * Checks: nothing crashes or reads outside the reply (ASan, UBSan); an
 * accepted publish answer has an id "<8 hex>:<offset>"; an accepted
 * answer for n streams has exactly 2n+1 elements, each id
 * "<8 hex>:<offset>" with the offset of its element, and reached the
 * last element's count, and one for n+1 streams is refused; an accepted
 * read has ok 0 or 1 (with items or without: rhist.h), items whose
 * offsets rise and do not pass the position, and payloads inside the
 * reply's own strings; nothing leaks (LSan).
 */
#include "rhist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Is id "<RHIST_EPOCH_LEN lowercase hex digits>:<digits>"? */
static int fuzz_id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n <= RHIST_EPOCH_LEN + 1 || n >= RHIST_ID_MAX || id[RHIST_EPOCH_LEN] != ':')
        return 0;
    for (size_t i = 0; i < RHIST_EPOCH_LEN; i++)
        if (strchr("0123456789abcdef", id[i]) == NULL)
            return 0;
    for (size_t i = RHIST_EPOCH_LEN + 1; i < n; i++)
        if (id[i] < '0' || id[i] > '9')
            return 0;
    return 1;
}

/* The most streams one answer is checked for. */
#define FUZZ_STREAMS 64

/* The checks on a publish's answer for several streams. */
static void fuzz_numbered(const redisReply *r)
{
    static char ids[FUZZ_STREAMS + 1][RHIST_ID_MAX];
    uint64_t reached;
    size_t n;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) / 2 > FUZZ_STREAMS)
        return;
    n = (r->elements - 1) / 2;
    if (rhist_parse_numbered(r, n + 1, ids, &reached) == 0)
        abort();
    if (rhist_parse_numbered(r, n, ids, &reached) != 0)
        return;
    if (r->elements != 2 * n + 1 || r->element[2 * n]->type != REDIS_REPLY_INTEGER ||
        r->element[2 * n]->integer < 0 || reached != (uint64_t)r->element[2 * n]->integer)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!fuzz_id_ok(ids[i]) || r->element[2 * i + 1]->type != REDIS_REPLY_INTEGER ||
            strtoull(ids[i] + RHIST_EPOCH_LEN + 1, NULL, 10) !=
                (uint64_t)r->element[2 * i + 1]->integer ||
            memcmp(ids[i], r->element[2 * i]->str, RHIST_EPOCH_LEN) != 0)
            abort();
}

/* The checks on one reply. */
static void fuzz_reply(const redisReply *r)
{
    char id[RHIST_ID_MAX];
    struct rhist_item *items;
    char prev[RHIST_EPOCH_LEN + 1];
    uint64_t last, start;
    size_t n;
    int ok;

    if (rhist_parse_published(r, id) == 0 && !fuzz_id_ok(id))
        abort();
    fuzz_numbered(r);
    if (rhist_parse_since(r, &ok, id, prev, &start, &items, &n) != 0) {
        if (items != NULL || n != 0)
            abort();
        return;
    }
    if (!fuzz_id_ok(id) || (ok != 0 && ok != 1) || n != r->elements - 5)
        abort();
    last = strtoull(id + RHIST_EPOCH_LEN + 1, NULL, 10);
    if (start > last || (prev[0] != '\0' && strlen(prev) != RHIST_EPOCH_LEN))
        abort();
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i + 5];

        if (items[i].offset > last || (i > 0 && items[i].offset <= items[i - 1].offset) ||
            items[i].payload < e->str || items[i].payload + items[i].len != e->str + e->len)
            abort();
    }
    free(items);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rlink_budget *budget;
    redisReader *reader = rlink_reader_new(&budget);
    void *reply = NULL;

    if (reader == NULL)
        abort();
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        /* Every whole reply in the input, as a connection would read them. */
        while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL) {
            fuzz_reply(reply);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(reader);
    free(budget);
    return 0;
}

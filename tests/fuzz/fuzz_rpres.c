/*
 * fuzz_rpres.c -- libFuzzer target for the check on what Redis answers the
 * presence scripts' members list (rpres_parse_members in
 * lib/store/rpres.c).
 *
 * Input: RESP bytes, as Redis would send them, read by hiredis's reply
 * reader with rlink's bounded reply objects (as on rlink's connections),
 * then handed to the check with counts 0 and 1.
 * Checks: nothing crashes or reads outside the reply (ASan, UBSan); both
 * calls accept or refuse alike; an accepted reply is an array of
 * (string, string, integer >= 0) triples, and the answer a JSON array
 * with one object per triple: "user" the triple's bytes exactly, "info"
 * the object its text parses to or null, and "connections" (the count)
 * only with counts; a reply of that shape whose users are all valid UTF-8
 * is never refused (the members list would be lost); nothing leaks (LSan).
 */
#include "rpres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

/* Is r an array of (string, string, integer >= 0) triples? */
static int fuzz_shape_ok(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0)
        return 0;
    for (size_t i = 0; i < r->elements; i += 3)
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            r->element[i + 1]->type != REDIS_REPLY_STRING ||
            r->element[i + 2]->type != REDIS_REPLY_INTEGER || r->element[i + 2]->integer < 0)
            return 0;
    return 1;
}

/* Are all the users valid UTF-8 (what a JSON string may hold)? */
static int fuzz_users_ok(const redisReply *r)
{
    for (size_t i = 0; i < r->elements; i += 3) {
        json_t *s = json_stringn(r->element[i]->str, r->element[i]->len);

        if (s == NULL)
            return 0;
        json_decref(s);
    }
    return 1;
}

/* Is m the member the triple at r->element[i] says, with or without counts? */
static int fuzz_member_ok(const json_t *m, const redisReply *r, size_t i, int counts)
{
    const redisReply *u = r->element[i], *info = r->element[i + 1], *n = r->element[i + 2];
    json_t *user = json_object_get(m, "user"), *io = json_object_get(m, "info");
    json_t *conns = json_object_get(m, "connections"), *want;
    int same;

    if (!json_is_object(m) || json_object_size(m) != (counts ? 3u : 2u) || !json_is_string(user) ||
        json_string_length(user) != u->len || memcmp(json_string_value(user), u->str, u->len) != 0)
        return 0;
    if (counts && (!json_is_integer(conns) || json_integer_value(conns) != n->integer))
        return 0;
    want = info->len > 0 ? json_loadb(info->str, info->len, 0, NULL) : NULL;
    if (json_is_object(want))
        same = json_equal(io, want);
    else
        same = json_is_null(io);
    json_decref(want);
    return same;
}

/* The checks on one reply. */
static void fuzz_reply(const redisReply *r)
{
    json_t *plain = rpres_parse_members(r, 0), *counted = rpres_parse_members(r, 1);

    if ((plain == NULL) != (counted == NULL))
        abort();
    if (plain == NULL) {
        if (fuzz_shape_ok(r) && fuzz_users_ok(r))
            abort();
        return;
    }
    if (!fuzz_shape_ok(r) || !json_is_array(plain) || !json_is_array(counted) ||
        json_array_size(plain) != r->elements / 3 || json_array_size(counted) != r->elements / 3)
        abort();
    for (size_t i = 0; i < r->elements / 3; i++)
        if (!fuzz_member_ok(json_array_get(plain, i), r, 3 * i, 0) ||
            !fuzz_member_ok(json_array_get(counted, i), r, 3 * i, 1))
            abort();
    json_decref(plain);
    json_decref(counted);
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

/*
 * fuzz_proto.c -- libFuzzer target for the client command parser and the
 * frame encoders (proto.c).
 *
 * Owns:       nothing; the input is read only.
 * Checks:     proto_parse returns success or one of the codes, with an
 *             explanation on error; a parsed command holds only what the
 *             protocol allows (an op member spelt exactly, a valid channel,
 *             event and method, a usable ref, a token only on subscribe);
 *             the frames built from it the way client.c builds them
 *             (proto_channel_text + proto_text_frame with its data and an
 *             id, proto_ok and
 *             proto_error with its ref, proto_reply splicing its data
 *             re-encoded, proto_presence with an object as info) are single
 *             unmasked text frames whose payload is valid JSON carrying the
 *             same values; each frame and the command's document hold
 *             exactly one reference when released, so the release frees
 *             them. Leaks are libFuzzer's per-input LSan check
 *             (-detect_leaks=1, the default): a counting jansson allocator,
 *             as in fuzz_tok.c, cannot be used here, because proto.c frees
 *             json_dumps() output with free(), which is right for jansson's
 *             default allocator and invisible to a custom one.
 * Build:      make build-fuzz/fuzz_proto, or make fuzz; see tests/fuzz/run.sh.
 */
#include "proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "msg.h"
#include "ws.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define FUZZ_ID "0badcafe:42"
#define FUZZ_USER "fuzz-user"

/* The JSON payload of m, one FIN text frame; m is released (its last reference). */
static json_t *frame_json(struct msg *m)
{
    uint64_t plen;
    size_t hlen = 2;
    json_t *v;

    CHECK(m != NULL && atomic_load(&m->refs) == 1 && m->len >= 2);
    CHECK(m->data[0] == (0x80 | WS_OP_TEXT) && (m->data[1] & 0x80) == 0);
    plen = m->data[1] & 0x7f;
    if (plen == 126) {
        CHECK(m->len >= 4);
        plen = (uint64_t)m->data[2] << 8 | m->data[3];
        CHECK(plen >= 126);
        hlen = 4;
    } else if (plen == 127) {
        CHECK(m->len >= 10);
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = plen << 8 | m->data[i];
        CHECK(plen > 0xffff);
        hlen = 10;
    }
    CHECK(m->len == hlen + plen);
    v = json_loadb((const char *)m->data + hlen, plen, JSON_ALLOW_NUL, NULL);
    CHECK(json_is_object(v));
    msg_unref(m);
    return v;
}

/* Is member key of o the string s (NUL-terminated)? */
static int member_is(const json_t *o, const char *key, const char *s)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) && strlen(s) == json_string_length(v) &&
           strcmp(json_string_value(v), s) == 0;
}

/* Does answer o carry ref exactly as given (no member when ref is NULL)? */
static int ref_is(const json_t *o, const json_t *ref)
{
    const json_t *v = json_object_get(o, "ref");

    return ref == NULL ? v == NULL : v != NULL && json_equal((json_t *)v, (json_t *)ref);
}

/* The op name as sent for each enum proto_op. */
static const char *const op_names[] = {
    [PROTO_SUBSCRIBE] = "subscribe",
    [PROTO_UNSUBSCRIBE] = "unsubscribe",
    [PROTO_PUBLISH] = "publish",
    [PROTO_RPC] = "rpc",
};

/* What every parsed command must hold. */
static void check_command(const struct proto_cmd *cmd)
{
    CHECK(json_is_object(cmd->root));
    /* the op member is exactly the op's name: nothing after a NUL, say */
    CHECK((unsigned)cmd->op < sizeof(op_names) / sizeof(op_names[0]));
    CHECK(member_is(cmd->root, "op", op_names[cmd->op]));
    if (cmd->ref != NULL) {
        CHECK(json_is_integer(cmd->ref) || json_is_string(cmd->ref));
        if (json_is_integer(cmd->ref))
            CHECK(json_integer_value(cmd->ref) >= 0 &&
                  json_integer_value(cmd->ref) <= 9007199254740991LL);
        else
            CHECK(json_string_length(cmd->ref) <= PROTO_MAX_REF &&
                  strlen(json_string_value(cmd->ref)) == json_string_length(cmd->ref));
    }
    if (cmd->op == PROTO_RPC) {
        CHECK(cmd->method != NULL && strlen(cmd->method) >= 1 &&
              strlen(cmd->method) <= PROTO_MAX_METHOD);
        CHECK(cmd->channel == NULL && cmd->token == NULL && cmd->event == NULL);
        return;
    }
    CHECK(cmd->op == PROTO_SUBSCRIBE || cmd->op == PROTO_UNSUBSCRIBE || cmd->op == PROTO_PUBLISH);
    CHECK(cmd->channel != NULL && chan_name_valid(cmd->channel, cmd->channel_len));
    CHECK(strlen(cmd->channel) == cmd->channel_len && cmd->method == NULL);
    CHECK(cmd->token == NULL || cmd->op == PROTO_SUBSCRIBE);
    if (cmd->op == PROTO_PUBLISH)
        CHECK(cmd->event != NULL && proto_event_valid(cmd->event, strlen(cmd->event)));
    else
        CHECK(cmd->event == NULL && cmd->data == NULL);
}

/* Encode what client.c would send for a parsed command, and read it back. */
static void check_frames(const struct proto_cmd *cmd)
{
    json_t *o;
    char *text;

    o = frame_json(proto_ok(cmd->ref, NULL));
    CHECK(member_is(o, "op", "ok") && ref_is(o, cmd->ref) && json_object_size(o) <= 2);
    json_decref(o);
    if (cmd->op == PROTO_PUBLISH) {
        text = proto_channel_text(cmd->channel, cmd->event, cmd->data, FUZZ_USER);
        CHECK(text != NULL);
        o = frame_json(proto_text_frame(text, FUZZ_ID));
        free(text);
        CHECK(member_is(o, "channel", cmd->channel) && member_is(o, "event", cmd->event));
        CHECK(member_is(o, "id", FUZZ_ID));
        CHECK(member_is(o, "from", FUZZ_USER));
        CHECK(cmd->data != NULL ? json_equal(json_object_get(o, "data"), cmd->data)
                                : json_is_null(json_object_get(o, "data")));
        json_decref(o);
    }
    if (cmd->data == NULL)
        return;
    /* the data re-encoded, as PHP's answer would be, spliced into a reply */
    text = json_dumps(cmd->data, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(text != NULL);
    o = frame_json(proto_reply(cmd->ref, text, strlen(text)));
    CHECK(member_is(o, "op", "reply") && ref_is(o, cmd->ref));
    CHECK(json_equal(json_object_get(o, "data"), cmd->data));
    json_decref(o);
    /*
     * An object as a presence member's info. Info comes from a token claim,
     * which tok.c parses without JSON_ALLOW_NUL, so it never holds a NUL;
     * proto_presence parses it the same way and would drop such an info.
     */
    if (json_is_object(cmd->data) && cmd->channel != NULL && strstr(text, "\\u0000") == NULL) {
        o = frame_json(proto_presence(1, cmd->channel, FUZZ_USER, text));
        CHECK(member_is(o, "op", "join") && member_is(o, "channel", cmd->channel));
        CHECK(json_equal(json_object_get(o, "info"), cmd->data));
        json_decref(o);
    }
    /* an array as a member list (stolen by proto_ok) */
    if (json_is_array(cmd->data)) {
        o = frame_json(proto_ok(cmd->ref, json_deep_copy(cmd->data)));
        CHECK(json_equal(json_object_get(o, "members"), cmd->data));
        json_decref(o);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_cmd cmd;
    const char *why = NULL;
    enum proto_err r = proto_parse((const char *)data, size, &cmd, &why);
    json_t *o;

    if (r == PROTO_OK) {
        check_command(&cmd);
        check_frames(&cmd);
    } else {
        CHECK(r >= PROTO_E_FIRST && r < PROTO_NERR && why != NULL && why[0] != '\0');
        CHECK(r != PROTO_E_BAD_JSON || cmd.ref == NULL);
        /* the refusal, as client_fail sends it */
        o = frame_json(proto_error(cmd.ref, proto_err_name(r), why));
        CHECK(member_is(o, "op", "error") && member_is(o, "code", proto_err_name(r)));
        CHECK(member_is(o, "message", why) && ref_is(o, cmd.ref));
        json_decref(o);
    }
    /* nothing kept a reference into the command's document */
    CHECK(cmd.root == NULL || cmd.root->refcount == 1);
    proto_cmd_free(&cmd);
    CHECK(cmd.root == NULL && cmd.ref == NULL);
    return 0;
}

/*
 * test_proto.c -- unit tests for the client protocol's JSON (proto.c).
 *
 * Covers:     proto_parse on every op with every member and with defaults,
 *             and on every refusal: bad JSON, not an object, op missing or
 *             unknown, each bad kind of ref (negative, 2^53, real, 65-byte
 *             string, string with NUL, wrong types), channel missing,
 *             invalid or too long, token not a string, event empty, 201
 *             bytes, with a control character or NUL, echo not a boolean,
 *             method invalid or 101 bytes; the ref handed back whenever it
 *             was readable; proto_event_valid, proto_code_valid and
 *             proto_err_name; and every encoder (proto_ok, proto_error,
 *             proto_reply, proto_channel_text + proto_text_frame, proto_presence), whose
 *             frames are taken apart and compared as JSON.
 * Invariants: every proto_parse input and every proto_reply splice sits at
 *             the end of a page followed by a PROT_NONE page (guard.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "msg.h"
#include "proto.h"
#include "ws.h"

#define OK PROTO_OK /* proto_parse's success */

#define C10 "cccccccccc"
#define C50 C10 C10 C10 C10 C10
#define C64 C50 C10 "cccc"
#define C100 C50 C50
#define C128 C100 C10 C10 "cccccccc"
#define C200 C100 C100

/* ---- helpers ---- */

/* proto_parse on text[0..len), placed against a guard page. */
static int parse(const char *text, size_t len, struct proto_cmd *cmd, const char **why)
{
    char *p = guard_place(text, len);
    int r;

    *why = NULL;
    r = proto_parse(p, len, cmd, why);
    /* every string the command hands back lives in its document, not the input */
    guard_release(p, len);
    return r;
}

/* proto_parse on a NUL-terminated text, expecting success. */
static void parse_ok(const char *text, struct proto_cmd *cmd)
{
    const char *why;
    int r = parse(text, strlen(text), cmd, &why);

    if (r != OK) {
        print_error("%s: got %d (%s), want success\n", text, r, why ? why : "?");
        fail();
    }
}

/* Is v equal to the JSON text want? */
static int json_is(const json_t *v, const char *want)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int eq;

    assert_non_null(w);
    eq = v != NULL && json_equal((json_t *)v, w);
    json_decref(w);
    return eq;
}

/*
 * The payload of m, a complete unmasked FIN text frame, checked and copied
 * into a malloc'd NUL-terminated string (*len: its length); m is released.
 */
static char *frame_text(struct msg *m, size_t *len)
{
    uint64_t plen;
    size_t hlen = 2;
    char *out;

    assert_non_null(m);
    assert_int_equal(m->refs, 1);
    assert_true(m->len >= 2);
    /* FIN, no RSV bits, TEXT; servers never mask */
    assert_int_equal(m->data[0], 0x80 | WS_OP_TEXT);
    assert_int_equal(m->data[1] & 0x80, 0);
    plen = m->data[1] & 0x7f;
    if (plen == 126) {
        assert_true(m->len >= 4);
        plen = (uint64_t)m->data[2] << 8 | m->data[3];
        assert_true(plen >= 126);
        hlen = 4;
    } else if (plen == 127) {
        assert_true(m->len >= 10);
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = plen << 8 | m->data[i];
        assert_true(plen > 0xffff);
        hlen = 10;
    }
    assert_int_equal(m->len, hlen + plen);
    out = malloc(plen + 1);
    assert_non_null(out);
    memcpy(out, m->data + hlen, plen);
    out[plen] = '\0';
    *len = plen;
    msg_unref(m);
    return out;
}

/* The payload of m parsed as JSON (an object); m is released. */
static json_t *frame_json(struct msg *m)
{
    size_t len;
    char *text = frame_text(m, &len);
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, &err);

    if (v == NULL) {
        print_error("frame is not JSON (%s): %s\n", err.text, text);
        fail();
    }
    assert_true(json_is_object(v));
    free(text);
    return v;
}

/* m's payload is, as JSON, the JSON text want; m is released. */
static void frame_is(struct msg *m, const char *want)
{
    json_t *v = frame_json(m);

    if (!json_is(v, want)) {
        char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        print_error("frame: got %s, want %s\n", got, want);
        free(got);
        fail();
    }
    json_decref(v);
}

/* m's payload is exactly the bytes want (member order included); m is released. */
static void frame_bytes_are(struct msg *m, const char *want)
{
    size_t len;
    char *text = frame_text(m, &len);

    if (len != strlen(want) || memcmp(text, want, len) != 0) {
        print_error("frame: got %s, want %s\n", text, want);
        fail();
    }
    free(text);
}

/* A JSON value from text (any type). */
static json_t *js(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    assert_non_null(v);
    return v;
}

/* ---- parsing: the error table ---- */

/* One proto_parse case: input (len 0: strlen), result, and the ref handed back. */
struct parse_case {
    const char *what;
    const char *text;
    size_t len;
    int ret;         /* OK or a PROTO_E_ code */
    const char *ref; /* JSON text of cmd->ref, or NULL for none */
};

static const struct parse_case parse_cases[] = {
    /* -- not a JSON object: bad_json, and no ref can be read -- */
    {"empty", "", 0, PROTO_E_BAD_JSON, NULL},
    {"spaces", "   ", 0, PROTO_E_BAD_JSON, NULL},
    {"not json", "not json", 0, PROTO_E_BAD_JSON, NULL},
    {"truncated", "{\"op\":\"subscribe\",\"channel\":\"a\",\"ref\":1", 0, PROTO_E_BAD_JSON, NULL},
    {"array", "[{\"op\":\"subscribe\"}]", 0, PROTO_E_BAD_JSON, NULL},
    {"string", "\"subscribe\"", 0, PROTO_E_BAD_JSON, NULL},
    {"number", "42", 0, PROTO_E_BAD_JSON, NULL},
    {"null", "null", 0, PROTO_E_BAD_JSON, NULL},
    {"true", "true", 0, PROTO_E_BAD_JSON, NULL},
    {"trailing garbage", "{\"op\":\"rpc\",\"method\":\"m\"} x", 0, PROTO_E_BAD_JSON, NULL},
    {"two objects", "{}{}", 0, PROTO_E_BAD_JSON, NULL},
    /* a raw NUL byte is not JSON, inside a string or after the object */
    {"raw nul in string", "{\"op\":\"rpc\0\",\"method\":\"m\"}", 26, PROTO_E_BAD_JSON, NULL},
    {"raw nul after", "{\"op\":\"rpc\",\"method\":\"m\"}\0", 26, PROTO_E_BAD_JSON, NULL},
    /* invalid UTF-8 (the WebSocket layer checks too; this is the second line) */
    {"bad utf-8", "{\"op\":\"rpc\",\"method\":\"m\",\"data\":\"\xff\"}", 0, PROTO_E_BAD_JSON, NULL},
    /* duplicate members are refused outright, so "which op wins" never arises */
    {"duplicate op", "{\"op\":\"rpc\",\"op\":\"subscribe\",\"method\":\"m\",\"ref\":1}", 0,
     PROTO_E_BAD_JSON, NULL},
    /* integers past int64: jansson refuses them */
    {"huge integer ref", "{\"op\":\"rpc\",\"method\":\"m\",\"ref\":99999999999999999999}", 0,
     PROTO_E_BAD_JSON, NULL},
    /* a JSON string escape that is not valid: lone surrogate */
    {"lone surrogate", "{\"op\":\"rpc\",\"method\":\"m\",\"data\":\"\\ud800\"}", 0,
     PROTO_E_BAD_JSON, NULL},

    /* -- op -- */
    {"empty object", "{}", 0, PROTO_E_BAD_COMMAND, NULL},
    {"op missing", "{\"channel\":\"a\",\"ref\":11}", 0, PROTO_E_BAD_COMMAND, "11"},
    {"op unknown", "{\"op\":\"dance\",\"ref\":12}", 0, PROTO_E_BAD_COMMAND, "12"},
    {"op wrong case", "{\"op\":\"Subscribe\",\"channel\":\"a\",\"ref\":13}", 0, PROTO_E_BAD_COMMAND,
     "13"},
    {"op number", "{\"op\":7,\"ref\":\"r14\"}", 0, PROTO_E_BAD_COMMAND, "\"r14\""},
    {"op null", "{\"op\":null,\"ref\":15}", 0, PROTO_E_BAD_COMMAND, "15"},
    {"op array", "{\"op\":[\"rpc\"],\"ref\":16}", 0, PROTO_E_BAD_COMMAND, "16"},
    {"op empty", "{\"op\":\"\",\"ref\":17}", 0, PROTO_E_BAD_COMMAND, "17"},
    {"op trailing space", "{\"op\":\"rpc \",\"method\":\"m\",\"ref\":18}", 0, PROTO_E_BAD_COMMAND,
     "18"},
    /* "subscribe" followed by an escaped NUL and more is not "subscribe" */
    {"op with nul", "{\"op\":\"subscribe\\u0000x\",\"channel\":\"a\",\"ref\":19}", 0,
     PROTO_E_BAD_COMMAND, "19"},

    /* -- ref: integers 0..2^53-1 or strings of at most 64 bytes -- */
    {"ref 0", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":0}", 0, OK, "0"},
    {"ref 2^53-1", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":9007199254740991}", 0, OK,
     "9007199254740991"},
    {"ref 2^53", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":9007199254740992}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref int64 max", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":9223372036854775807}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref -1", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":-1}", 0, PROTO_E_BAD_COMMAND,
     NULL},
    {"ref int64 min", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":-9223372036854775808}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref -0", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":-0}", 0, OK, "0"},
    {"ref real", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":1.5}", 0, PROTO_E_BAD_COMMAND,
     NULL},
    {"ref integral real", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":1.0}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref exponent", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":1e3}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref true", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":true}", 0, PROTO_E_BAD_COMMAND,
     NULL},
    {"ref null", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":null}", 0, PROTO_E_BAD_COMMAND,
     NULL},
    {"ref object", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":{\"a\":1}}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    {"ref array", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":[1]}", 0, PROTO_E_BAD_COMMAND,
     NULL},
    {"ref empty string", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\"\"}", 0, OK, "\"\""},
    {"ref 64 bytes", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\"" C64 "\"}", 0, OK,
     "\"" C64 "\""},
    {"ref 65 bytes", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\"" C64 "c\"}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    /* 32 two-byte characters are 64 bytes; the limit is bytes, not characters */
    {"ref 64 utf-8 bytes",
     "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\""
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
     0, OK,
     "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\""},
    {"ref 33 utf-8 chars",
     "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\""
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
     0, PROTO_E_BAD_COMMAND, NULL},
    {"ref with nul", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\"a\\u0000b\"}", 0,
     PROTO_E_BAD_COMMAND, NULL},
    /* a bad ref is reported before a bad op (it is checked first) */
    {"bad ref and bad op", "{\"op\":\"dance\",\"ref\":-1}", 0, PROTO_E_BAD_COMMAND, NULL},

    /* -- channel, on each op that has one -- */
    {"channel missing", "{\"op\":\"subscribe\",\"ref\":21}", 0, PROTO_E_BAD_CHANNEL, "21"},
    {"channel missing unsubscribe", "{\"op\":\"unsubscribe\",\"ref\":21}", 0, PROTO_E_BAD_CHANNEL,
     "21"},
    {"channel missing publish", "{\"op\":\"publish\",\"event\":\"e\",\"ref\":21}", 0,
     PROTO_E_BAD_CHANNEL, "21"},
    {"channel empty", "{\"op\":\"subscribe\",\"channel\":\"\",\"ref\":22}", 0, PROTO_E_BAD_CHANNEL,
     "22"},
    {"channel 128", "{\"op\":\"subscribe\",\"channel\":\"" C128 "\",\"ref\":23}", 0, OK, "23"},
    {"channel 129", "{\"op\":\"subscribe\",\"channel\":\"" C128 "c\",\"ref\":23}", 0,
     PROTO_E_BAD_CHANNEL, "23"},
    {"channel space", "{\"op\":\"subscribe\",\"channel\":\"a b\",\"ref\":24}", 0,
     PROTO_E_BAD_CHANNEL, "24"},
    {"channel pattern", "{\"op\":\"subscribe\",\"channel\":\"team:*\",\"ref\":25}", 0,
     PROTO_E_BAD_CHANNEL, "25"},
    {"channel utf-8", "{\"op\":\"subscribe\",\"channel\":\"caf\\u00e9\",\"ref\":26}", 0,
     PROTO_E_BAD_CHANNEL, "26"},
    {"channel newline", "{\"op\":\"subscribe\",\"channel\":\"a\\nb\",\"ref\":27}", 0,
     PROTO_E_BAD_CHANNEL, "27"},
    {"channel nul", "{\"op\":\"subscribe\",\"channel\":\"ab\\u0000\",\"ref\":28}", 0,
     PROTO_E_BAD_CHANNEL, "28"},
    {"channel hash unsubscribe", "{\"op\":\"unsubscribe\",\"channel\":\"a#b\",\"ref\":29}", 0,
     PROTO_E_BAD_CHANNEL, "29"},
    {"channel question publish", "{\"op\":\"publish\",\"channel\":\"a?b\",\"ref\":30}", 0,
     PROTO_E_BAD_CHANNEL, "30"},
    {"channel number", "{\"op\":\"subscribe\",\"channel\":12,\"ref\":31}", 0, PROTO_E_BAD_CHANNEL,
     "31"},
    {"channel null", "{\"op\":\"subscribe\",\"channel\":null,\"ref\":32}", 0, PROTO_E_BAD_CHANNEL,
     "32"},
    {"channel array", "{\"op\":\"subscribe\",\"channel\":[\"a\"],\"ref\":33}", 0,
     PROTO_E_BAD_CHANNEL, "33"},

    /* -- token (subscribe only) -- */
    {"token number", "{\"op\":\"subscribe\",\"channel\":\"a\",\"token\":5,\"ref\":41}", 0,
     PROTO_E_BAD_COMMAND, "41"},
    {"token null", "{\"op\":\"subscribe\",\"channel\":\"a\",\"token\":null,\"ref\":42}", 0,
     PROTO_E_BAD_COMMAND, "42"},
    {"token object", "{\"op\":\"subscribe\",\"channel\":\"a\",\"token\":{},\"ref\":43}", 0,
     PROTO_E_BAD_COMMAND, "43"},
    /* the channel is checked before the token */
    {"token bad and channel bad", "{\"op\":\"subscribe\",\"token\":5,\"ref\":44}", 0,
     PROTO_E_BAD_CHANNEL, "44"},
    /* other ops do not read token: an unknown member there */
    {"token on unsubscribe", "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"token\":5,\"ref\":45}", 0,
     OK, "45"},
    {"token on publish", "{\"op\":\"publish\",\"channel\":\"a\",\"token\":5,\"ref\":46}", 0, OK,
     "46"},

    /* -- event (publish only) -- */
    {"event empty", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"\",\"ref\":51}", 0,
     PROTO_E_BAD_COMMAND, "51"},
    {"event 200", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"" C200 "\",\"ref\":52}", 0, OK,
     "52"},
    {"event 201", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"" C200 "c\",\"ref\":52}", 0,
     PROTO_E_BAD_COMMAND, "52"},
    {"event newline", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"bad\\nevent\",\"ref\":53}",
     0, PROTO_E_BAD_COMMAND, "53"},
    {"event tab", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"\\t\",\"ref\":53}", 0,
     PROTO_E_BAD_COMMAND, "53"},
    {"event 0x1f", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"a\\u001f\",\"ref\":53}", 0,
     PROTO_E_BAD_COMMAND, "53"},
    {"event del", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"a\\u007f\",\"ref\":53}", 0,
     PROTO_E_BAD_COMMAND, "53"},
    {"event nul", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"a\\u0000b\",\"ref\":54}", 0,
     PROTO_E_BAD_COMMAND, "54"},
    {"event number", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":7,\"ref\":55}", 0,
     PROTO_E_BAD_COMMAND, "55"},
    {"event null", "{\"op\":\"publish\",\"channel\":\"a\",\"event\":null,\"ref\":56}", 0,
     PROTO_E_BAD_COMMAND, "56"},
    /* spaces, punctuation and non-ASCII are fine in an event */
    {"event free text",
     "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"order shipped! \\u00e9\"}", 0, OK, NULL},
    /* subscribe does not read event or echo */
    {"event on subscribe", "{\"op\":\"subscribe\",\"channel\":\"a\",\"event\":7,\"echo\":1}", 0, OK,
     NULL},

    /* -- echo (publish only) -- */
    {"echo string", "{\"op\":\"publish\",\"channel\":\"a\",\"echo\":\"no\",\"ref\":61}", 0,
     PROTO_E_BAD_COMMAND, "61"},
    {"echo number", "{\"op\":\"publish\",\"channel\":\"a\",\"echo\":0,\"ref\":62}", 0,
     PROTO_E_BAD_COMMAND, "62"},
    {"echo null", "{\"op\":\"publish\",\"channel\":\"a\",\"echo\":null,\"ref\":63}", 0,
     PROTO_E_BAD_COMMAND, "63"},

    /* -- method (rpc only) -- */
    {"method missing", "{\"op\":\"rpc\",\"ref\":71}", 0, PROTO_E_BAD_COMMAND, "71"},
    {"method empty", "{\"op\":\"rpc\",\"method\":\"\",\"ref\":72}", 0, PROTO_E_BAD_COMMAND, "72"},
    {"method 100", "{\"op\":\"rpc\",\"method\":\"" C100 "\",\"ref\":73}", 0, OK, "73"},
    {"method 101", "{\"op\":\"rpc\",\"method\":\"" C100 "c\",\"ref\":73}", 0, PROTO_E_BAD_COMMAND,
     "73"},
    {"method space", "{\"op\":\"rpc\",\"method\":\"tasks list\",\"ref\":74}", 0,
     PROTO_E_BAD_COMMAND, "74"},
    {"method slash", "{\"op\":\"rpc\",\"method\":\"tasks/list\",\"ref\":75}", 0,
     PROTO_E_BAD_COMMAND, "75"},
    {"method utf-8", "{\"op\":\"rpc\",\"method\":\"t\\u00e2che\",\"ref\":76}", 0,
     PROTO_E_BAD_COMMAND, "76"},
    {"method nul", "{\"op\":\"rpc\",\"method\":\"a\\u0000b\",\"ref\":77}", 0, PROTO_E_BAD_COMMAND,
     "77"},
    {"method number", "{\"op\":\"rpc\",\"method\":5,\"ref\":78}", 0, PROTO_E_BAD_COMMAND, "78"},
    {"method every char", "{\"op\":\"rpc\",\"method\":\"AZaz09_.:-\",\"ref\":79}", 0, OK, "79"},
    /* rpc needs no channel, and ignores a bad one */
    {"rpc with bad channel", "{\"op\":\"rpc\",\"method\":\"m\",\"channel\":5}", 0, OK, NULL},

    /* -- unknown members are ignored -- */
    {"unknown members",
     "{\"op\":\"unsubscribe\",\"channel\":\"a\",\"x\":[1,{\"y\":null}],\"ref\":81}", 0, OK, "81"},
};

/* Every row of parse_cases, the ref checked on success and on error alike; all rows run. */
static void test_proto_parse_table(void **state)
{
    int failed = 0;

    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len ? c->len : strlen(c->text);
        struct proto_cmd cmd;
        const char *why;
        int r = parse(c->text, len, &cmd, &why);

        if (r != c->ret) {
            print_error("case \"%s\": got %d (%s), want %d\n", c->what, r, why ? why : "-", c->ret);
            failed++;
        } else if (r != OK && (why == NULL || why[0] == '\0')) {
            print_error("case \"%s\": no explanation\n", c->what);
            failed++;
        } else if (c->ref == NULL ? cmd.ref != NULL : !json_is(cmd.ref, c->ref)) {
            print_error("case \"%s\": wrong ref\n", c->what);
            failed++;
        }
        proto_cmd_free(&cmd);
    }
    assert_int_equal(failed, 0);
}

/* A nesting depth past jansson's limit is bad JSON, not a crash. */
static void test_proto_parse_deep_nesting(void **state)
{
    enum { DEPTH = 5000 };
    static const char head[] = "{\"op\":\"rpc\",\"method\":\"m\",\"data\":";
    size_t len = sizeof head - 1 + 2 * DEPTH + 1;
    char *text = malloc(len);
    struct proto_cmd cmd;
    const char *why;

    assert_non_null(text);
    memcpy(text, head, sizeof head - 1);
    memset(text + sizeof head - 1, '[', DEPTH);
    memset(text + sizeof head - 1 + DEPTH, ']', DEPTH);
    text[len - 1] = '}';
    assert_int_equal(parse(text, len, &cmd, &why), PROTO_E_BAD_JSON);
    assert_null(cmd.ref);
    proto_cmd_free(&cmd);
    free(text);
}

/* NULL text (an empty message from a caller with no buffer) is bad JSON. */
static void test_proto_parse_null_text(void **state)
{
    struct proto_cmd cmd;
    const char *why = NULL;

    assert_int_equal(proto_parse(NULL, 0, &cmd, &why), PROTO_E_BAD_JSON);
    assert_non_null(why);
    assert_null(cmd.ref);
    proto_cmd_free(&cmd);
}

/* ---- parsing: each op with every member ---- */

static void test_proto_parse_subscribe(void **state)
{
    struct proto_cmd cmd;

    parse_ok("{\"op\":\"subscribe\",\"channel\":\"doc:7\",\"token\":\"a.b.c\",\"ref\":2}", &cmd);
    assert_int_equal(cmd.op, PROTO_SUBSCRIBE);
    assert_non_null(cmd.root);
    assert_true(json_is(cmd.ref, "2"));
    assert_string_equal(cmd.channel, "doc:7");
    assert_int_equal(cmd.channel_len, 5);
    assert_string_equal(cmd.token, "a.b.c");
    assert_int_equal(cmd.token_len, 5);
    assert_null(cmd.event);
    assert_null(cmd.method);
    assert_null(cmd.data);
    proto_cmd_free(&cmd);
    /* without token and ref */
    parse_ok("{\"channel\":\"team:12\",\"op\":\"subscribe\"}", &cmd);
    assert_int_equal(cmd.op, PROTO_SUBSCRIBE);
    assert_null(cmd.ref);
    assert_string_equal(cmd.channel, "team:12");
    assert_int_equal(cmd.channel_len, 7);
    assert_null(cmd.token);
    assert_int_equal(cmd.token_len, 0);
    proto_cmd_free(&cmd);
    /* an empty token is passed on (tok_verify refuses it: bad_token, not bad_command) */
    parse_ok("{\"op\":\"subscribe\",\"channel\":\"a\",\"token\":\"\"}", &cmd);
    assert_non_null(cmd.token);
    assert_int_equal(cmd.token_len, 0);
    proto_cmd_free(&cmd);
}

static void test_proto_parse_unsubscribe(void **state)
{
    struct proto_cmd cmd;

    parse_ok("{\"op\":\"unsubscribe\",\"channel\":\"team:12\",\"ref\":\"r-3\"}", &cmd);
    assert_int_equal(cmd.op, PROTO_UNSUBSCRIBE);
    assert_true(json_is(cmd.ref, "\"r-3\""));
    assert_string_equal(cmd.channel, "team:12");
    assert_int_equal(cmd.channel_len, 7);
    assert_null(cmd.token);
    assert_null(cmd.event);
    assert_null(cmd.data);
    proto_cmd_free(&cmd);
}

static void test_proto_parse_publish(void **state)
{
    struct proto_cmd cmd;

    parse_ok("{\"op\":\"publish\",\"channel\":\"team:12\",\"event\":\"chat\","
             "\"data\":{\"text\":\"hi\"},\"echo\":false,\"ref\":4}",
             &cmd);
    assert_int_equal(cmd.op, PROTO_PUBLISH);
    assert_true(json_is(cmd.ref, "4"));
    assert_string_equal(cmd.channel, "team:12");
    assert_string_equal(cmd.event, "chat");
    assert_true(json_is(cmd.data, "{\"text\":\"hi\"}"));
    assert_int_equal(cmd.echo, 0);
    assert_null(cmd.token);
    assert_null(cmd.method);
    proto_cmd_free(&cmd);
    /* echo true */
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\",\"echo\":true,\"data\":[1,2]}", &cmd);
    assert_int_equal(cmd.echo, 1);
    assert_true(json_is(cmd.data, "[1,2]"));
    proto_cmd_free(&cmd);
    /* defaults: event "message", echo on, data absent (NULL, sent as null) */
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\"}", &cmd);
    assert_string_equal(cmd.event, "message");
    assert_int_equal(cmd.echo, 1);
    assert_null(cmd.data);
    assert_null(cmd.ref);
    proto_cmd_free(&cmd);
    /* data null is present: a JSON null, not NULL */
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\",\"data\":null}", &cmd);
    assert_non_null(cmd.data);
    assert_true(json_is_null(cmd.data));
    proto_cmd_free(&cmd);
    /* data of every type */
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\",\"data\":\"s\\u0000\"}", &cmd);
    assert_true(json_is(cmd.data, "\"s\\u0000\""));
    proto_cmd_free(&cmd);
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\",\"data\":-1.25e2}", &cmd);
    assert_true(json_is_real(cmd.data));
    proto_cmd_free(&cmd);
    parse_ok("{\"op\":\"publish\",\"channel\":\"a\",\"data\":false}", &cmd);
    assert_true(json_is_false(cmd.data));
    proto_cmd_free(&cmd);
    /* an event at the limit, in two-byte characters: 100 x U+00E9 = 200 bytes */
    {
        char text[1024];
        int n = snprintf(text, sizeof text, "{\"op\":\"publish\",\"channel\":\"a\",\"event\":\"");

        for (int i = 0; i < 100; i++)
            n += snprintf(text + n, sizeof text - (size_t)n, "\xc3\xa9");
        snprintf(text + n, sizeof text - (size_t)n, "\"}");
        parse_ok(text, &cmd);
        assert_int_equal(strlen(cmd.event), 200);
        proto_cmd_free(&cmd);
        /* one more byte is too many */
        snprintf(text + n, sizeof text - (size_t)n, "x\"}");
        {
            const char *why;

            assert_int_equal(parse(text, strlen(text), &cmd, &why), PROTO_E_BAD_COMMAND);
            proto_cmd_free(&cmd);
        }
    }
}

static void test_proto_parse_rpc(void **state)
{
    struct proto_cmd cmd;

    parse_ok("{\"op\":\"rpc\",\"method\":\"tasks.list\",\"data\":{\"done\":false},\"ref\":5}",
             &cmd);
    assert_int_equal(cmd.op, PROTO_RPC);
    assert_true(json_is(cmd.ref, "5"));
    assert_string_equal(cmd.method, "tasks.list");
    assert_true(json_is(cmd.data, "{\"done\":false}"));
    assert_null(cmd.channel);
    assert_int_equal(cmd.channel_len, 0);
    assert_null(cmd.token);
    assert_null(cmd.event);
    proto_cmd_free(&cmd);
    /* without data or ref */
    parse_ok("{\"op\":\"rpc\",\"method\":\"ns:a-b_c.d\"}", &cmd);
    assert_string_equal(cmd.method, "ns:a-b_c.d");
    assert_null(cmd.data);
    assert_null(cmd.ref);
    proto_cmd_free(&cmd);
}

/* proto_cmd_free on a zeroed command, and twice on a parsed one. */
static void test_proto_cmd_free_is_safe(void **state)
{
    struct proto_cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    proto_cmd_free(&cmd);
    parse_ok("{\"op\":\"rpc\",\"method\":\"m\"}", &cmd);
    proto_cmd_free(&cmd);
    assert_null(cmd.root);
    proto_cmd_free(&cmd);
}

/* ---- validators and names ---- */

static void test_proto_event_valid(void **state)
{
    char buf[PROTO_MAX_EVENT + 2];

    assert_true(proto_event_valid("message", 7));
    assert_true(proto_event_valid("order.shipped", 13));
    assert_true(proto_event_valid(" ", 1));
    assert_true(proto_event_valid("caf\xc3\xa9", 5));
    assert_false(proto_event_valid("", 0));
    assert_false(proto_event_valid("a\nb", 3));
    assert_false(proto_event_valid("a\x7f", 2));
    assert_false(proto_event_valid("a\0b", 3));
    /* the length is what counts: "ab" out of "ab\n" */
    assert_true(proto_event_valid("ab\n", 2));
    for (int b = 0; b < 0x20; b++) {
        char one[1] = {(char)b};

        assert_false(proto_event_valid(one, 1));
    }
    memset(buf, 'e', sizeof buf);
    {
        char *p = guard_place(buf, PROTO_MAX_EVENT);

        assert_true(proto_event_valid(p, PROTO_MAX_EVENT));
        guard_release(p, PROTO_MAX_EVENT);
        p = guard_place(buf, PROTO_MAX_EVENT + 1);
        assert_false(proto_event_valid(p, PROTO_MAX_EVENT + 1));
        guard_release(p, PROTO_MAX_EVENT + 1);
    }
}

static void test_proto_code_valid(void **state)
{
    char buf[PROTO_MAX_CODE + 1];

    assert_true(proto_code_valid("forbidden", 9));
    assert_true(proto_code_valid("app.not-found_2", 15));
    assert_true(proto_code_valid("0", 1));
    assert_false(proto_code_valid("", 0));
    assert_false(proto_code_valid("Forbidden", 9));
    assert_false(proto_code_valid("no way", 6));
    assert_false(proto_code_valid("a:b", 3));
    assert_false(proto_code_valid("a/b", 3));
    assert_false(proto_code_valid("a\0", 2));
    assert_false(proto_code_valid("caf\xc3\xa9", 5));
    memset(buf, 'x', sizeof buf);
    assert_true(proto_code_valid(buf, PROTO_MAX_CODE));
    assert_false(proto_code_valid(buf, PROTO_MAX_CODE + 1));
}

static void test_proto_err_names(void **state)
{
    /* the table of docs/protocol.md, in its order */
    static const char *const names[PROTO_NERR] = {
        "ok", /* success: never sent, not counted */
        "bad_json",
        "bad_command",
        "bad_channel",
        "forbidden",
        "bad_token",
        "not_subscribed",
        "too_many_subscriptions",
        "rpc_disabled",
        "rpc_busy",
        "rpc_unavailable",
        "rpc_timeout",
        "rpc_failed",
        "rpc_bad_reply",
        "rate_limited",
    };

    assert_int_equal(PROTO_OK, 0);
    assert_int_equal(PROTO_E_FIRST, 1);
    for (int e = 0; e < PROTO_NERR; e++) {
        assert_string_equal(proto_err_name((enum proto_err)e), names[e]);
        /* every name is itself a valid code */
        assert_true(proto_code_valid(names[e], strlen(names[e])));
    }
    assert_string_equal(proto_err_name(PROTO_NERR), "internal");
    assert_string_equal(proto_err_name((enum proto_err)(PROTO_NERR + 100)), "internal");
}

/* ---- encoders ---- */

static void test_proto_ok(void **state)
{
    json_t *ref;

    /* no ref, no members: exactly {"op":"ok"} */
    frame_bytes_are(proto_ok(NULL, NULL), "{\"op\":\"ok\"}");
    ref = js("7");
    frame_bytes_are(proto_ok(ref, NULL), "{\"op\":\"ok\",\"ref\":7}");
    json_decref(ref);
    ref = js("9007199254740991");
    frame_is(proto_ok(ref, NULL), "{\"op\":\"ok\",\"ref\":9007199254740991}");
    json_decref(ref);
    /* a string ref that needs escaping */
    ref = js("\"r\\\"}{\\\\\\u00e9\"");
    frame_is(proto_ok(ref, NULL), "{\"op\":\"ok\",\"ref\":\"r\\\"}{\\\\\\u00e9\"}");
    json_decref(ref);
    /* members (stolen: ASan reports a leak or a double free if not) */
    ref = js("1");
    frame_is(proto_ok(ref, js("[{\"user\":\"42\",\"info\":{\"name\":\"Ann\"}},{\"user\":\"7\"}]")),
             "{\"op\":\"ok\",\"ref\":1,\"members\":[{\"user\":\"42\",\"info\":{\"name\":\"Ann\"}},"
             "{\"user\":\"7\"}]}");
    json_decref(ref);
    frame_is(proto_ok(NULL, js("[]")), "{\"op\":\"ok\",\"members\":[]}");
}

static void test_proto_ok_ref_from_parse(void **state)
{
    struct proto_cmd cmd;
    struct msg *m;

    /* the answer outlives the command: the ref is copied */
    parse_ok("{\"op\":\"unsubscribe\",\"channel\":\"a\",\"ref\":\"abc\"}", &cmd);
    m = proto_ok(cmd.ref, NULL);
    proto_cmd_free(&cmd);
    frame_bytes_are(m, "{\"op\":\"ok\",\"ref\":\"abc\"}");
}

static void test_proto_error(void **state)
{
    json_t *ref = js("3");

    frame_bytes_are(proto_error(ref, "forbidden", "not allowed to subscribe to team:12"),
                    "{\"op\":\"error\",\"ref\":3,\"code\":\"forbidden\","
                    "\"message\":\"not allowed to subscribe to team:12\"}");
    json_decref(ref);
    /* without ref: no "ref" member at all */
    frame_bytes_are(proto_error(NULL, "bad_json", "a command is one JSON object"),
                    "{\"op\":\"error\",\"code\":\"bad_json\","
                    "\"message\":\"a command is one JSON object\"}");
    /* a message that needs escaping (PHP's own text) */
    ref = js("\"x\"");
    frame_is(proto_error(ref, "app.error", "line1\n\"quoted\" \\ {} \xc3\xa9"),
             "{\"op\":\"error\",\"ref\":\"x\",\"code\":\"app.error\","
             "\"message\":\"line1\\n\\\"quoted\\\" \\\\ {} \\u00e9\"}");
    json_decref(ref);
    /* an empty message */
    frame_is(proto_error(NULL, "rpc_failed", ""),
             "{\"op\":\"error\",\"code\":\"rpc_failed\",\"message\":\"\"}");
}

/* proto_reply with data[0..len) placed against a guard page. */
static struct msg *reply_guarded(const json_t *ref, const char *data, size_t len)
{
    char *p = guard_place(data, len);
    struct msg *m = proto_reply(ref, p, len);

    guard_release(p, len);
    return m;
}

static void test_proto_reply(void **state)
{
    static const char *const datas[] = {
        "[{\"id\":1,\"title\":\"Call Bob\"}]",
        "null",
        "true",
        "0",
        "-1.5e10",
        "\"plain\"",
        /* strings full of what a naive splice would trip on */
        "\"}\"",
        "\"{\\\"op\\\":\\\"ok\\\"}\"",
        "{\"a\":\"}}}\",\"b\":\"{{{\",\"c\":[\"]\",\"[\"]}",
        "{\"ref\":99,\"op\":\"evil\",\"data\":\"\\u0000\"}",
        "{}",
        "[]",
        /* whitespace inside is kept as it is: still valid JSON */
        " { \"spaced\" : [ 1 , 2 ] } ",
    };
    json_t *refs[3] = {js("5"), js("\"r}\""), NULL};

    for (size_t r = 0; r < 3; r++) {
        for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
            json_t *got = frame_json(reply_guarded(refs[r], datas[i], strlen(datas[i])));
            json_t *want = js(datas[i]);

            assert_string_equal(json_string_value(json_object_get(got, "op")), "reply");
            if (refs[r] != NULL)
                assert_true(json_equal(json_object_get(got, "ref"), refs[r]));
            else
                assert_null(json_object_get(got, "ref"));
            if (!json_equal(json_object_get(got, "data"), want)) {
                print_error("reply data %s came out wrong\n", datas[i]);
                fail();
            }
            assert_int_equal(json_object_size(got), refs[r] != NULL ? 3 : 2);
            json_decref(want);
            json_decref(got);
        }
    }
    json_decref(refs[0]);
    json_decref(refs[1]);
    /* exact bytes: the data goes in verbatim, after op and ref */
    refs[0] = js("7");
    frame_bytes_are(reply_guarded(refs[0], "{\"x\" : 1}", 9),
                    "{\"op\":\"reply\",\"ref\":7,\"data\":{\"x\" : 1}}");
    /* only len bytes of data are used */
    frame_bytes_are(reply_guarded(refs[0], "[1][2]", 3),
                    "{\"op\":\"reply\",\"ref\":7,\"data\":[1]}");
    json_decref(refs[0]);
}

/* Replies past the 7-bit and 16-bit frame length forms. */
static void test_proto_reply_long(void **state)
{
    static const size_t sizes[] = {100, 200, 65535, 70000};
    json_t *ref = js("1");

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        char *data = malloc(n + 2);
        json_t *got;

        assert_non_null(data);
        data[0] = '"';
        memset(data + 1, 'z', n);
        data[n + 1] = '"';
        got = frame_json(reply_guarded(ref, data, n + 2));
        assert_int_equal(json_string_length(json_object_get(got, "data")), n);
        json_decref(got);
        free(data);
    }
    json_decref(ref);
}

/* The frame of a channel envelope, as the memory engine makes it (id NULL: history off). */
static struct msg *channel_message(const char *channel, const char *event, const json_t *data,
                                   const char *from, const char *id)
{
    char *text = proto_channel_text(channel, event, data, from);
    struct msg *m;

    assert_non_null(text);
    m = proto_text_frame(text, id);
    free(text);
    return m;
}

static void test_proto_channel_message(void **state)
{
    json_t *data = js("{\"text\":\"hi\",\"n\":[1,2.5,null,true]}");

    /* the order the docs show: channel, event, data, from */
    frame_bytes_are(channel_message("team:12", "chat", data, "42", NULL),
                    "{\"channel\":\"team:12\",\"event\":\"chat\","
                    "\"data\":{\"text\":\"hi\",\"n\":[1,2.5,null,true]},\"from\":\"42\"}");
    /* without from (a message from PHP) */
    frame_bytes_are(channel_message("team:12", "deploy", data, NULL, NULL),
                    "{\"channel\":\"team:12\",\"event\":\"deploy\","
                    "\"data\":{\"text\":\"hi\",\"n\":[1,2.5,null,true]}}");
    /* the data is copied, not taken: it is still ours */
    assert_int_equal(data->refcount, 1);
    json_decref(data);
    /* data NULL (absent) is sent as null */
    frame_bytes_are(channel_message("a", "message", NULL, "7", NULL),
                    "{\"channel\":\"a\",\"event\":\"message\",\"data\":null,\"from\":\"7\"}");
    frame_bytes_are(channel_message("a", "message", NULL, NULL, NULL),
                    "{\"channel\":\"a\",\"event\":\"message\",\"data\":null}");
    /* strings that need escaping, in the event, the data and the sender */
    data = js("\"a\\u0000b \\\"q\\\" \\u00e9\"");
    frame_is(channel_message("a", "ev \\ \"x\" \xc3\xa9", data, "user \"1\"", NULL),
             "{\"channel\":\"a\",\"event\":\"ev \\\\ \\\"x\\\" \\u00e9\","
             "\"data\":\"a\\u0000b \\\"q\\\" \\u00e9\",\"from\":\"user \\\"1\\\"\"}");
    json_decref(data);
    /* scalar data */
    data = js("0");
    frame_is(channel_message("a", "e", data, NULL, NULL),
             "{\"channel\":\"a\",\"event\":\"e\",\"data\":0}");
    /* with history: the id goes right after the channel, or first for a user's message */
    frame_bytes_are(channel_message("team:12", "e", data, NULL, "0badcafe:17"),
                    "{\"channel\":\"team:12\",\"id\":\"0badcafe:17\",\"event\":\"e\","
                    "\"data\":0}");
    frame_bytes_are(proto_text_frame("{\"event\":\"e\",\"data\":0}", "0badcafe:18"),
                    "{\"id\":\"0badcafe:18\",\"event\":\"e\",\"data\":0}");
    json_decref(data);
}

/* What a client publishes comes out to the others the same, as JSON. */
static void test_proto_publish_round_trip(void **state)
{
    static const char *const datas[] = {
        "{\"text\":\"hi\"}",
        "[1,\"two\",{\"three\":[3]}]",
        "\"\\u0000\\u001f\\\"\"",
        "-0.5",
        "12345678901",
        "null",
        "{\"nested\":{\"deep\":{\"er\":[[[]]]}}}",
    };

    for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
        char text[512];
        struct proto_cmd cmd;
        json_t *got, *want = js(datas[i]);

        snprintf(text, sizeof text,
                 "{\"op\":\"publish\",\"channel\":\"chat:1\",\"event\":\"e.v\",\"data\":%s}",
                 datas[i]);
        parse_ok(text, &cmd);
        got = frame_json(channel_message(cmd.channel, cmd.event, cmd.data, "42", NULL));
        proto_cmd_free(&cmd);
        assert_true(json_equal(json_object_get(got, "data"), want));
        assert_string_equal(json_string_value(json_object_get(got, "channel")), "chat:1");
        assert_string_equal(json_string_value(json_object_get(got, "event")), "e.v");
        assert_string_equal(json_string_value(json_object_get(got, "from")), "42");
        json_decref(got);
        json_decref(want);
    }
}

static void test_proto_presence(void **state)
{
    frame_bytes_are(proto_presence(1, "room:1", "42", "{\"name\":\"Ann\"}"),
                    "{\"op\":\"join\",\"channel\":\"room:1\",\"user\":\"42\","
                    "\"info\":{\"name\":\"Ann\"}}");
    frame_bytes_are(proto_presence(0, "room:1", "42", NULL),
                    "{\"op\":\"leave\",\"channel\":\"room:1\",\"user\":\"42\"}");
    /* a join without info */
    frame_bytes_are(proto_presence(1, "room:1", "7", NULL),
                    "{\"op\":\"join\",\"channel\":\"room:1\",\"user\":\"7\"}");
    /* info with nesting and escapes */
    frame_is(proto_presence(1, "room:1", "u \"x\"",
                            "{\"name\":\"A \\\"n\\\" {}\",\"roles\":[\"a\",\"b\"],\"o\":{}}"),
             "{\"op\":\"join\",\"channel\":\"room:1\",\"user\":\"u \\\"x\\\"\","
             "\"info\":{\"name\":\"A \\\"n\\\" {}\",\"roles\":[\"a\",\"b\"],\"o\":{}}}");
    /* info that is not JSON is left out rather than sent broken */
    frame_is(proto_presence(1, "room:1", "42", "{not json"),
             "{\"op\":\"join\",\"channel\":\"room:1\",\"user\":\"42\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_parse_table),
        cmocka_unit_test(test_proto_parse_deep_nesting),
        cmocka_unit_test(test_proto_parse_null_text),
        cmocka_unit_test(test_proto_parse_subscribe),
        cmocka_unit_test(test_proto_parse_unsubscribe),
        cmocka_unit_test(test_proto_parse_publish),
        cmocka_unit_test(test_proto_parse_rpc),
        cmocka_unit_test(test_proto_cmd_free_is_safe),
        cmocka_unit_test(test_proto_event_valid),
        cmocka_unit_test(test_proto_code_valid),
        cmocka_unit_test(test_proto_err_names),
        cmocka_unit_test(test_proto_ok),
        cmocka_unit_test(test_proto_ok_ref_from_parse),
        cmocka_unit_test(test_proto_error),
        cmocka_unit_test(test_proto_reply),
        cmocka_unit_test(test_proto_reply_long),
        cmocka_unit_test(test_proto_channel_message),
        cmocka_unit_test(test_proto_publish_round_trip),
        cmocka_unit_test(test_proto_presence),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

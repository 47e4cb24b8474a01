/*
 * proto.c -- the client protocol's JSON (see proto.h).
 *
 * Owns:       nothing beyond each command's document.
 * Called by:  worker threads; no state.
 * Invariants: a command is checked completely before anyone acts on it:
 *             types, lengths and character sets. Outgoing frames are
 *             encoded once and shared (struct msg); names inside them are
 *             Herald-checked, so no client text reaches another client
 *             except as a JSON string or the JSON value it sent.
 */
#include "proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "fmt.h"
#include "msg.h"
#include "utf8.h"
#include "ws.h"
#include "xmalloc.h"

/* JSON numbers are exact up to 2^53 in browsers. */
#define PROTO_MAX_INT_REF ((json_int_t)9007199254740991LL)

static const char *const proto_err_names[PROTO_NERR] = {
    "ok",           "bad_json",      "bad_command",     "bad_channel",
    "forbidden",    "bad_token",     "not_subscribed",  "too_many_subscriptions",
    "rpc_disabled", "rpc_busy",      "rpc_unavailable", "rpc_timeout",
    "rpc_failed",   "rpc_bad_reply", "rate_limited",
};

const char *proto_err_name(enum proto_err e)
{
    return (unsigned)e < PROTO_NERR ? proto_err_names[e] : "internal";
}

int proto_text_valid(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int proto_event_valid(const char *s, size_t len)
{
    return proto_text_valid(s, len, PROTO_MAX_EVENT);
}

int proto_code_valid(const char *s, size_t len)
{
    if (len == 0 || len > PROTO_MAX_CODE)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Is s[0..len) a valid RPC method name? */
static int proto_method_valid(const char *s, size_t len)
{
    if (len == 0 || len > PROTO_MAX_METHOD)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* Is v a usable ref: an integer 0..2^53-1 or a string of at most PROTO_MAX_REF bytes? */
static int proto_ref_valid(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 && json_integer_value(v) <= PROTO_MAX_INT_REF;
    if (json_is_string(v))
        return json_string_length(v) <= PROTO_MAX_REF &&
               strlen(json_string_value(v)) == json_string_length(v);
    return 0;
}

/* Read "op" into cmd->op. */
static enum proto_err proto_read_op(const json_t *root, struct proto_cmd *cmd, const char **why)
{
    const json_t *v = json_object_get(root, "op");
    const char *op = json_string_value(v);

    if (op == NULL) {
        *why = "missing op";
        return PROTO_E_BAD_COMMAND;
    }
    /* "subscribe\u0000x" is not subscribe. */
    if (strlen(op) != json_string_length(v)) {
        *why = "unknown op";
        return PROTO_E_BAD_COMMAND;
    }
    if (strcmp(op, "subscribe") == 0)
        cmd->op = PROTO_SUBSCRIBE;
    else if (strcmp(op, "unsubscribe") == 0)
        cmd->op = PROTO_UNSUBSCRIBE;
    else if (strcmp(op, "publish") == 0)
        cmd->op = PROTO_PUBLISH;
    else if (strcmp(op, "rpc") == 0)
        cmd->op = PROTO_RPC;
    else {
        *why = "unknown op";
        return PROTO_E_BAD_COMMAND;
    }
    return PROTO_OK;
}

/* Read "channel" (required for every op but rpc). */
static enum proto_err proto_read_channel(const json_t *root, struct proto_cmd *cmd,
                                         const char **why)
{
    const json_t *ch = json_object_get(root, "channel");

    if (!json_is_string(ch)) {
        *why = "channel must be a string";
        return PROTO_E_BAD_CHANNEL;
    }
    if (!chan_name_valid(json_string_value(ch), json_string_length(ch))) {
        *why = "channel must be 1 to 128 bytes of A-Z a-z 0-9 _ . : @ / = + -";
        return PROTO_E_BAD_CHANNEL;
    }
    cmd->channel = json_string_value(ch);
    cmd->channel_len = json_string_length(ch);
    return PROTO_OK;
}

/* Read the members of subscribe and publish. */
static enum proto_err proto_read_channel_op(const json_t *root, struct proto_cmd *cmd,
                                            const char **why)
{
    const json_t *tok = json_object_get(root, "token");
    const json_t *since = json_object_get(root, "since");
    const json_t *event = json_object_get(root, "event");
    const json_t *echo = json_object_get(root, "echo");
    enum proto_err r = proto_read_channel(root, cmd, why);

    if (r != PROTO_OK)
        return r;
    if (cmd->op == PROTO_SUBSCRIBE && since != NULL) {
        if (!json_is_string(since) || json_string_length(since) > PROTO_MAX_SINCE ||
            strlen(json_string_value(since)) != json_string_length(since)) {
            *why = "since must be a message id string";
            return PROTO_E_BAD_COMMAND;
        }
        cmd->since = json_string_value(since);
    }
    if (cmd->op == PROTO_SUBSCRIBE && tok != NULL) {
        if (!json_is_string(tok)) {
            *why = "token must be a string";
            return PROTO_E_BAD_COMMAND;
        }
        cmd->token = json_string_value(tok);
        cmd->token_len = json_string_length(tok);
    }
    if (cmd->op != PROTO_PUBLISH)
        return PROTO_OK;
    if (event != NULL && (!json_is_string(event) ||
                          !proto_event_valid(json_string_value(event), json_string_length(event)) ||
                          strlen(json_string_value(event)) != json_string_length(event))) {
        *why = "event must be a string of 1 to 200 bytes without control characters";
        return PROTO_E_BAD_COMMAND;
    }
    if (echo != NULL && !json_is_boolean(echo)) {
        *why = "echo must be true or false";
        return PROTO_E_BAD_COMMAND;
    }
    cmd->event = event != NULL ? json_string_value(event) : "message";
    cmd->echo = echo == NULL || json_is_true(echo);
    cmd->data = json_object_get(root, "data");
    return PROTO_OK;
}

/* Read the members of rpc. */
static enum proto_err proto_read_rpc(const json_t *root, struct proto_cmd *cmd, const char **why)
{
    const json_t *method = json_object_get(root, "method");

    if (!json_is_string(method) ||
        !proto_method_valid(json_string_value(method), json_string_length(method))) {
        *why = "method must be 1 to 100 bytes of A-Z a-z 0-9 _ . : -";
        return PROTO_E_BAD_COMMAND;
    }
    cmd->method = json_string_value(method);
    cmd->data = json_object_get(root, "data");
    return PROTO_OK;
}

enum proto_err proto_parse(const char *text, size_t len, struct proto_cmd *cmd, const char **why)
{
    json_t *ref;
    enum proto_err r;

    memset(cmd, 0, sizeof *cmd);
    cmd->root =
        json_loadb(text != NULL ? text : "", len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!json_is_object(cmd->root)) {
        *why = "a command is one JSON object";
        return PROTO_E_BAD_JSON;
    }
    ref = json_object_get(cmd->root, "ref");
    if (ref != NULL) {
        if (!proto_ref_valid(ref)) {
            *why = "ref must be an integer from 0 to 2^53-1 or a string of at most 64 bytes";
            return PROTO_E_BAD_COMMAND;
        }
        cmd->ref = ref;
    }
    if ((r = proto_read_op(cmd->root, cmd, why)) != PROTO_OK)
        return r;
    if (cmd->op == PROTO_RPC)
        return proto_read_rpc(cmd->root, cmd, why);
    return proto_read_channel_op(cmd->root, cmd, why);
}

void proto_cmd_free(struct proto_cmd *cmd)
{
    json_decref(cmd->root);
    memset(cmd, 0, sizeof *cmd);
}

/* Encode o (stolen) as one text frame. */
static struct msg *proto_frame(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    struct msg *m;

    json_decref(o);
    if (text == NULL)
        return NULL;
    m = msg_new(WS_OP_TEXT, text, strlen(text));
    free(text);
    return m;
}

/* A new object {"op":op} with "ref" copied when there is one. */
static json_t *proto_answer(const char *op, const json_t *ref)
{
    json_t *o = json_object();

    json_object_set_new(o, "op", json_string(op));
    if (ref != NULL)
        json_object_set_new(o, "ref", json_deep_copy(ref));
    return o;
}

struct msg *proto_ok(const json_t *ref, json_t *members)
{
    json_t *o = proto_answer("ok", ref);

    if (members != NULL)
        json_object_set_new(o, "members", members);
    return proto_frame(o);
}

struct msg *proto_ok_stream(const json_t *ref, json_t *members, const char *id, int recovered)
{
    json_t *o = proto_answer("ok", ref);

    json_object_set_new(o, "id", json_string(id));
    if (recovered >= 0)
        json_object_set_new(o, "recovered", json_boolean(recovered));
    if (members != NULL)
        json_object_set_new(o, "members", members);
    return proto_frame(o);
}

struct msg *proto_stream(const char *id, int recovered)
{
    json_t *o = proto_answer("stream", NULL);

    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "recovered", json_boolean(recovered));
    return proto_frame(o);
}

struct msg *proto_gap(const char *channel, const char *id)
{
    json_t *o = proto_answer("stream", NULL);

    if (channel != NULL)
        json_object_set_new(o, "channel", json_string(channel));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "recovered", json_false());
    json_object_set_new(o, "gap", json_true());
    return proto_frame(o);
}

struct msg *proto_error(const json_t *ref, const char *code, const char *message)
{
    json_t *o = proto_answer("error", ref);

    json_object_set_new(o, "code", json_string(code));
    json_object_set_new(o, "message", json_string(message));
    return proto_frame(o);
}

struct msg *proto_reply(const json_t *ref, const char *data, size_t len)
{
    json_t *o = proto_answer("reply", ref);
    char *head = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hlen;
    char *buf;
    struct msg *m;

    json_decref(o);
    if (head == NULL)
        return NULL;
    /* {"op":"reply","ref":7} -> {"op":"reply","ref":7,"data":<data>} */
    hlen = strlen(head) - 1;
    buf = xmalloc(hlen + 8 + len + 1);
    memcpy(buf, head, hlen);
    memcpy(buf + hlen, ",\"data\":", 8);
    memcpy(buf + hlen + 8, data, len);
    buf[hlen + 8 + len] = '}';
    m = msg_new(WS_OP_TEXT, buf, hlen + 8 + len + 1);
    free(buf);
    free(head);
    return m;
}

/* An envelope being written. */
struct proto_text {
    char *p;
    size_t len, cap;
};

/* Room for n more bytes at the end of t; returns where they go. */
static char *proto_room(struct proto_text *t, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap != 0 ? t->cap * 2 : 512;

        while (cap < t->len + n)
            cap *= 2;
        t->p = xrealloc(t->p, cap);
        t->cap = cap;
    }
    return t->p + t->len;
}

/* Append s[0..n). */
static void proto_add(struct proto_text *t, const char *s, size_t n)
{
    memcpy(proto_room(t, n), s, n);
    t->len += n;
}

/*
 * Append s[0..n) as a JSON string, escaped byte for byte as jansson
 * escapes it (hist_file.c compares envelopes by their bytes). -1, as
 * jansson fails, when s is not UTF-8.
 */
static int proto_add_string(struct proto_text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *p, *start;

    if (!utf8_valid((const uint8_t *)s, n))
        return -1;
    p = start = proto_room(t, 6 * n + 2);
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;

        if (esc != NULL) {
            memcpy(p, esc, 2);
            p += 2;
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    t->len += (size_t)(p - start);
    return 0;
}

/* Append v in decimal, as jansson's "%" JSON_INTEGER_FORMAT writes it. */
static void proto_add_int(struct proto_text *t, json_int_t v)
{
    char *p = proto_room(t, FMT_U64_MAX + 1);
    size_t sign = v < 0;

    *p = '-';
    t->len += sign + fmt_u64(p + sign, v < 0 ? 0ull - (uint64_t)v : (uint64_t)v);
}

/* Append a real as jansson writes it: its own rules for the digits, so its own dump. */
static int proto_add_real(struct proto_text *t, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (s == NULL)
        return -1;
    proto_add(t, s, strlen(s));
    free(s);
    return 0;
}

static int proto_add_json(struct proto_text *t, const json_t *v);

/* Append an object's members in their order, as jansson's compact dump does. */
static int proto_add_object(struct proto_text *t, json_t *o)
{
    const char *key;
    size_t klen;
    json_t *v;
    int first = 1;

    proto_add(t, "{", 1);
    json_object_keylen_foreach(o, key, klen, v)
    {
        if (!first)
            proto_add(t, ",", 1);
        first = 0;
        if (proto_add_string(t, key, klen) != 0)
            return -1;
        proto_add(t, ":", 1);
        if (proto_add_json(t, v) != 0)
            return -1;
    }
    proto_add(t, "}", 1);
    return 0;
}

/* Append an array's values. */
static int proto_add_array(struct proto_text *t, json_t *a)
{
    size_t i;
    json_t *v;

    proto_add(t, "[", 1);
    json_array_foreach (a, i, v) {
        if (i > 0)
            proto_add(t, ",", 1);
        if (proto_add_json(t, v) != 0)
            return -1;
    }
    proto_add(t, "]", 1);
    return 0;
}

/*
 * Append v as json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER |
 * JSON_ENCODE_ANY) writes it, byte for byte; -1 where it would fail.
 * Nesting is bounded by the parser's depth limit (jansson's 2048), which
 * every value here passed.
 */
static int proto_add_json(struct proto_text *t, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return proto_add_object(t, (json_t *)v);
    case JSON_ARRAY: return proto_add_array(t, (json_t *)v);
    case JSON_STRING: return proto_add_string(t, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: proto_add_int(t, json_integer_value(v)); return 0;
    case JSON_REAL: return proto_add_real(t, v);
    case JSON_TRUE: proto_add(t, "true", 4); return 0;
    case JSON_FALSE: proto_add(t, "false", 5); return 0;
    default: proto_add(t, "null", 4); return 0;
    }
}

/* Append ,"name":"value" (no comma when first). -1 when value is not UTF-8. */
static int proto_add_member(struct proto_text *t, const char *name, const char *value, int first)
{
    if (!first)
        proto_add(t, ",", 1);
    proto_add(t, "\"", 1);
    proto_add(t, name, strlen(name));
    proto_add(t, "\":", 2);
    return proto_add_string(t, value, strlen(value));
}

/*
 * Written straight, not built as a jansson object and dumped: this runs for
 * every publish, and jansson's object (a hash table, its keys) and its
 * dumper (a call and a UTF-8 decode per character) cost more than all the
 * rest of the envelope. The bytes are jansson's (test_proto compares them).
 */
char *proto_channel_text(const char *channel, const char *event, const json_t *data,
                         const char *from)
{
    struct proto_text t = {0};
    int bad = 0;

    proto_add(&t, "{", 1);
    if (channel != NULL)
        bad |= proto_add_member(&t, "channel", channel, 1);
    bad |= proto_add_member(&t, "event", event, channel == NULL);
    proto_add(&t, ",\"data\":", 8);
    if (data != NULL)
        bad |= proto_add_json(&t, data);
    else
        proto_add(&t, "null", 4);
    if (from != NULL)
        bad |= proto_add_member(&t, "from", from, 0);
    proto_add(&t, "}", 2); /* and the NUL */
    if (bad != 0) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

struct msg *proto_text_frame(const char *text, const char *id)
{
    static const char chan[] = "{\"channel\":\"", open[] = "\"id\":\"", close[] = "\",";
    size_t len = strlen(text), at = 1, idlen, n;
    struct msg *m;
    char *buf;

    if (id == NULL)
        return msg_new(WS_OP_TEXT, text, len);
    /* Channel names need no escaping, so the member ends at the next quote. */
    if (strncmp(text, chan, sizeof chan - 1) == 0)
        at = (size_t)(strchr(text + sizeof chan - 1, '"') - text) + 2;
    idlen = strlen(id);
    n = len + sizeof open - 1 + idlen + sizeof close - 1;
    /* Written straight into the frame: one copy of the text per frame. */
    m = msg_new(WS_OP_TEXT, NULL, n);
    buf = (char *)m->data + m->len - n;
    memcpy(buf, text, at);
    memcpy(buf + at, open, sizeof open - 1);
    memcpy(buf + at + sizeof open - 1, id, idlen);
    memcpy(buf + at + sizeof open - 1 + idlen, close, sizeof close - 1);
    memcpy(buf + n - (len - at), text + at, len - at);
    return m;
}

struct msg *proto_presence(int join, const char *channel, const char *user, const char *info)
{
    json_t *o = json_object();
    json_t *i = info != NULL ? json_loads(info, 0, NULL) : NULL;

    json_object_set_new(o, "op", json_string(join ? "join" : "leave"));
    json_object_set_new(o, "channel", json_string(channel));
    json_object_set_new(o, "user", json_string(user));
    if (i != NULL)
        json_object_set_new(o, "info", i);
    return proto_frame(o);
}

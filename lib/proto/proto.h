/*
 * proto.h -- the client protocol's JSON: commands parsed from browsers,
 * and the frames Herald sends back (docs/protocol.md, section 1).
 *
 * Owns:       struct proto_cmd (a parsed command and its JSON document).
 * Called by:  client.c and rpc.c on worker threads; any thread may call
 *             it (no state).
 * Invariants: proto_parse only reads and checks: it never decides whether
 *             a command is allowed. Every string it hands back points into
 *             the command's own document and lives until proto_cmd_free.
 */
#ifndef HERALD_PROTO_H
#define HERALD_PROTO_H

#include <stddef.h>

#include <jansson.h>

struct msg;

#define PROTO_MAX_EVENT 200
#define PROTO_MAX_METHOD 100
#define PROTO_MAX_REF 64
#define PROTO_MAX_CODE 64
#define PROTO_MAX_SINCE 31 /* a message id: HIST_ID_MAX - 1 */

enum proto_op {
    PROTO_SUBSCRIBE,
    PROTO_UNSUBSCRIBE,
    PROTO_PUBLISH,
    PROTO_RPC,
};

/* Error codes Herald answers with, in the order of docs/protocol.md's table. */
/* What a parse or a command came to: PROTO_OK (0), or the error to answer with. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_E_BAD_JSON,
    PROTO_E_BAD_COMMAND,
    PROTO_E_BAD_CHANNEL,
    PROTO_E_FORBIDDEN,
    PROTO_E_BAD_TOKEN,
    PROTO_E_NOT_SUBSCRIBED,
    PROTO_E_TOO_MANY_SUBSCRIPTIONS,
    PROTO_E_RPC_DISABLED,
    PROTO_E_RPC_BUSY,
    PROTO_E_RPC_UNAVAILABLE,
    PROTO_E_RPC_TIMEOUT,
    PROTO_E_RPC_FAILED,
    PROTO_E_RPC_BAD_REPLY,
    PROTO_E_RATE_LIMITED,
    PROTO_NERR,
};

/* The first error, where a loop over the errors starts (PROTO_OK is none). */
#define PROTO_E_FIRST PROTO_E_BAD_JSON

/* The error's name as sent to clients and shown in /stats ("ok" for PROTO_OK). */
const char *proto_err_name(enum proto_err e);

struct proto_cmd {
    enum proto_op op;
    json_t *root;        /* owned: the whole message */
    json_t *ref;         /* borrowed: NULL when absent or unusable */
    const char *channel; /* borrowed: NUL-terminated, or NULL */
    size_t channel_len;
    const char *token; /* borrowed: subscribe's channel token, or NULL */
    const char *since; /* borrowed: subscribe's last seen id ("" = none), or NULL */
    size_t token_len;
    const char *event;  /* borrowed: publish's event ("message" if absent) */
    const char *method; /* borrowed: rpc's method */
    json_t *data;       /* borrowed: publish and rpc data; NULL when absent */
    int echo;           /* publish: the sender gets its own message */
};

/*
 * Parse one text message. Returns PROTO_OK and fills *cmd, or the error to answer
 * with *why set to a static explanation. On error cmd->ref may still be set
 * (answer with it); either way the caller calls proto_cmd_free.
 */
enum proto_err proto_parse(const char *text, size_t len, struct proto_cmd *cmd, const char **why);

/* Release the command's document. Safe on a zeroed or freed command. */
void proto_cmd_free(struct proto_cmd *cmd);

/* Is s[0..len) 1..max bytes with no control characters (NUL included)? User ids, events. */
int proto_text_valid(const char *s, size_t len, size_t max);

/* Is s a valid event name (1..PROTO_MAX_EVENT bytes, no control characters)? */
int proto_event_valid(const char *s, size_t len);

/* Is s a valid error code from PHP (1..PROTO_MAX_CODE bytes of a-z 0-9 _ . -)? */
int proto_code_valid(const char *s, size_t len);

/* {"op":"ok","ref":R[,"members":M]}; members is stolen (may be NULL). */
struct msg *proto_ok(const json_t *ref, json_t *members);

/*
 * {"op":"ok","ref":R,"id":I[,"recovered":B][,"members":M]}: a subscribe on a
 * channel with history; recovered < 0 leaves it out; members is stolen.
 */
struct msg *proto_ok_stream(const json_t *ref, json_t *members, const char *id, int recovered);

/* {"op":"stream","id":I,"recovered":B}: the user stream's position after a replay. */
struct msg *proto_stream(const char *id, int recovered);

/*
 * {"op":"stream","channel":channel (when not NULL),"id":id,"recovered":false,
 * "gap":true}: messages of a stream may have been lost while the connection
 * was open (a cluster's Redis lost them).
 */
struct msg *proto_gap(const char *channel, const char *id);

/* {"op":"error","ref":R,"code":C,"message":M}; ref may be NULL. */
struct msg *proto_error(const json_t *ref, const char *code, const char *message);

/* {"op":"reply","ref":R,"data":D} with D, already checked JSON text, spliced in. */
struct msg *proto_reply(const json_t *ref, const char *data, size_t len);

/*
 * Every published message's envelope: {"channel":C,"event":E,"data":D
 * [,"from":F]} as JSON text (malloc'd), to be framed by proto_text_frame;
 * channel NULL (users, broadcast) leaves out "channel", data NULL means
 * null, from may be NULL.
 */
char *proto_channel_text(const char *channel, const char *event, const json_t *data,
                         const char *from);

/*
 * A text frame of an envelope made here ({"event"...} or {"channel"...}),
 * with "id":ID added after its channel member, or first (id NULL: as is).
 */
struct msg *proto_text_frame(const char *text, const char *id);

/* {"op":"join"|"leave","channel":C,"user":U[,"info":I]}; info is JSON text or NULL. */
struct msg *proto_presence(int join, const char *channel, const char *user, const char *info);

#endif

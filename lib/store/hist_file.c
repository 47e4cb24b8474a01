/*
 * hist_file.c -- history across a restart: written on a clean shutdown,
 * read back at start, so clients that reconnect to the new process still
 * recover what they missed (same epoch, offsets carry on).
 *
 * Owns:       the file at history_file while it is written or read.
 * Called by:  main.c only, before the workers start (load, as root when
 *             Herald starts as root) and after they have stopped (save, as
 *             the user it runs as): no other thread touches the history then.
 *             tests/fuzz/fuzz_hist_file.c calls hist_file_read.
 * Invariants: the file is untrusted input. Each site's part is authenticated
 *             with a key derived from that site's secret and checked field by
 *             field; a part that fails is logged and ignored, and its site
 *             starts empty with every dropped floor at the file's counter, so
 *             its clients are told "recovered": false and never get a
 *             message that is not theirs. The file is opened without
 *             following symlinks, must be a regular file of the user Herald
 *             runs as, not writable by group or others, in a directory that
 *             is neither; the temporary file is created with O_EXCL. It is
 *             written to that temporary name, synced and renamed, so it is
 *             whole or absent, and removed as soon as it is read, so a
 *             process that later dies without saving can never hand its
 *             epoch and offsets out twice. Mode 0600: it holds payloads.
 *
 * Format, version 3 (text, one line per site, every site of the config):
 *
 *   herald-history 3\n
 *   <site>\t<json>\t<mac>\n
 *
 *   <json>  {"site":S,"epoch":E,"next":N,"saved":T,"floors":[[bucket,floor],...],
 *            "bodies":[text,...],"streams":[[key,floor,last,[[offset,age,body],...]],...]}
 *           E: 8 lowercase hex digits, the same on every line; N: the offset
 *           counter; T: the wall clock at saving (seconds); floors: the
 *           site's non-zero dropped floors; bodies: each envelope once
 *           (shared by many users' entries), as proto_channel_text makes it;
 *           entries oldest first, body an index into bodies, age in seconds.
 *   <mac>   64 lowercase hex digits: HMAC-SHA256 over "herald-history 3\n"
 *           "<site>\t<json>", keyed with HMAC-SHA256(the site's secret,
 *           "herald history file v3").
 *
 * Tests:      tests/unit/test_hist.c, tests/fuzz/fuzz_hist_file.c,
 *             tests/integration/77-lifecycle.py, 83-hostile-history.py.
 */
#include "hist.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "chan.h"
#include "log.h"
#include "proto.h"
#include "tok.h"
#include "xmalloc.h"

#define HIST_FILE_HEADER "herald-history 3\n"
#define HIST_FILE_KDF "herald history file v3"
#define HIST_FILE_MAC_HEX 64
#define HIST_FILE_LINE_SLACK (1u << 20) /* floors, numbers, keys: past 4 x the site's budget */
#define HIST_FILE_MAX_AGE 1e9           /* seconds; any larger age is not one we wrote */

/* The MAC of one site's part, keyed from its secret. Returns 0, or -1 if OpenSSL fails. */
static int hist_file_mac(const struct hist_secret *sec, const char *site, const char *json,
                         size_t len, unsigned char mac[32])
{
    unsigned char key[32];
    unsigned int klen = 0;
    size_t outl = 0;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int r = -1;

    if (ctx != NULL &&
        HMAC(EVP_sha256(), sec->key, (int)sec->len, (const unsigned char *)HIST_FILE_KDF,
             strlen(HIST_FILE_KDF), key, &klen) != NULL &&
        EVP_MAC_init(ctx, key, klen, params) &&
        EVP_MAC_update(ctx, (const unsigned char *)HIST_FILE_HEADER, strlen(HIST_FILE_HEADER)) &&
        EVP_MAC_update(ctx, (const unsigned char *)site, strlen(site)) &&
        EVP_MAC_update(ctx, (const unsigned char *)"\t", 1) &&
        EVP_MAC_update(ctx, (const unsigned char *)json, len) &&
        EVP_MAC_final(ctx, mac, &outl, 32) && outl == 32)
        r = 0;
    OPENSSL_cleanse(key, sizeof key);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    return r;
}

/* Lowercase hex of 32 bytes into hex (65). */
static void hist_file_hex(const unsigned char mac[32], char hex[HIST_FILE_MAC_HEX + 1])
{
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* The longest line a site's part may have: its history at the hard bound, escaped, and slack. */
static size_t hist_file_line_max(const struct hist_site *hs)
{
    return 4 * hs->max_bytes + HIST_FILE_LINE_SLACK;
}

size_t hist_file_max(const struct hist *h)
{
    size_t n = strlen(HIST_FILE_HEADER);

    for (int i = 0; i < h->nsites; i++)
        n += hist_file_line_max(&h->sites[i]);
    return n;
}

int hist_check_dir(const char *path, uid_t owner, char **cause)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    struct stat st;

    *cause = NULL;
    if (slash == NULL)
        *cause = xasprintf("history_file %s: not an absolute path", path);
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    if (*cause == NULL && lstat(dir, &st) != 0)
        *cause = xasprintf("history_file %s: its directory %s: %s", path, dir, strerror(errno));
    else if (*cause == NULL && !S_ISDIR(st.st_mode))
        *cause = xasprintf("history_file %s: %s is not a directory (a symbolic link is "
                           "refused)",
                           path, dir);
    else if (*cause == NULL && st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != owner)
        *cause = xasprintf("history_file %s: its directory %s belongs to uid %ld, not to root or "
                           "to the user Herald runs as (uid %ld)",
                           path, dir, (long)st.st_uid, (long)owner);
    else if (*cause == NULL && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        *cause = xasprintf("history_file %s: its directory %s is writable by group or others "
                           "(mode %04o): anyone there could plant or swap the file; make it "
                           "0700",
                           path, dir, (unsigned)(st.st_mode & 07777));
    free(dir);
    return *cause == NULL ? 0 : -1;
}

/* -- writing --------------------------------------------------------------------------------- */

/* A body's place in the file's bodies array, found by its address while one part is written. */
struct hist_file_ref {
    const struct hist_body *body; /* borrowed: the key */
    json_int_t index;
    UT_hash_handle hh;
};

/* The index of body in bodies (appended on first sight, remembered in *refs). */
static json_int_t hist_file_body_index(struct hist_file_ref **refs, json_t *bodies,
                                       const struct hist_body *body)
{
    struct hist_file_ref *r;

    HASH_FIND_PTR(*refs, &body, r);
    if (r != NULL)
        return r->index;
    r = xmalloc(sizeof *r);
    r->body = body;
    r->index = (json_int_t)json_array_size(bodies);
    json_array_append_new(bodies, json_stringn(body->text, body->len));
    HASH_ADD_PTR(*refs, body, r);
    return r->index;
}

/* One stream as [key, floor, last, [[offset, age, body], ...]]. */
static json_t *hist_file_stream(const struct hist_stream *s, double now,
                                struct hist_file_ref **refs, json_t *bodies)
{
    json_t *entries = json_array();

    for (const struct hist_entry *e = s->head; e != NULL; e = e->next) {
        double age = now - e->time;

        json_array_append_new(entries,
                              json_pack("[I, f, I]", (json_int_t)e->offset, age > 0 ? age : 0.0,
                                        hist_file_body_index(refs, bodies, e->body)));
    }
    return json_pack("[s, I, I, o]", s->key, (json_int_t)s->floor, (json_int_t)s->last, entries);
}

/* Site i's part as JSON text (malloc'd), or NULL if it cannot be encoded. */
static char *hist_file_site_json(struct hist *h, int i, double now)
{
    struct hist_site *hs = &h->sites[i];
    json_t *floors = json_array(), *bodies = json_array(), *streams = json_array(), *doc;
    struct hist_file_ref *refs = NULL, *r, *tmp;
    char *text;

    for (int b = 0; b < HIST_BUCKETS; b++)
        if (hs->floors[b] != 0)
            json_array_append_new(floors, json_pack("[i, I]", b, (json_int_t)hs->floors[b]));
    for (int k = 0; k < HIST_STRIPES; k++)
        for (struct hist_stream *s = h->table[k]; s != NULL; s = s->hh.next)
            if (s->site == i)
                json_array_append_new(streams, hist_file_stream(s, now, &refs, bodies));
    HASH_ITER (hh, refs, r, tmp) {
        HASH_DEL(refs, r);
        free(r);
    }
    doc = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o}", "site", hs->name, "epoch", h->epoch,
                    "next", (json_int_t)atomic_load(&h->next_offset), "saved",
                    (json_int_t)time(NULL), "floors", floors, "bodies", bodies, "streams", streams);
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* Write the header and every site's line to f. Returns 0, or -1 (errno set). */
static int hist_file_write(struct hist *h, FILE *f, const struct hist_secret *secrets)
{
    double now = hist_clock();
    unsigned char mac[32];
    char hex[HIST_FILE_MAC_HEX + 1];

    if (fputs(HIST_FILE_HEADER, f) == EOF)
        return -1;
    for (int i = 0; i < h->nsites; i++) {
        const char *name = h->sites[i].name;
        char *json = hist_file_site_json(h, i, now);
        size_t len = json != NULL ? strlen(json) : 0;
        int r = 0;

        /* A site left out starts empty at the next start, its clients told so. */
        if (json == NULL ||
            len + strlen(name) + 2 + HIST_FILE_MAC_HEX + 1 > hist_file_line_max(&h->sites[i]))
            log_msg(LOG_ERROR, "hist", "site %s: history too large to save; it is lost", name);
        else if (hist_file_mac(&secrets[i], name, json, len, mac) != 0)
            log_msg(LOG_ERROR, "hist", "site %s: cannot sign its history; it is lost", name);
        else if (hist_file_hex(mac, hex), fprintf(f, "%s\t%s\t%s\n", name, json, hex) < 0)
            r = -1;
        free(json);
        if (r != 0)
            return -1;
    }
    return fflush(f) == 0 ? 0 : -1;
}

/* Create path exclusively, never through a symlink; an old one is removed and tried once more. */
static int hist_file_create(const char *path)
{
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(path, flags, 0600);

    if (fd < 0 && errno == EEXIST && unlink(path) == 0)
        fd = open(path, flags, 0600);
    return fd;
}

/* fsync path's directory, so the rename survives a crash. */
static void hist_file_sync_dir(const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int fd;

    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int hist_save(struct hist *h, const char *path, const struct hist_secret *secrets)
{
    char *tmp = xasprintf("%s.tmp", path), *cause = NULL;
    int fd = -1, r = -1;
    FILE *f = NULL;

    if (hist_check_dir(path, geteuid(), &cause) != 0) {
        log_msg(LOG_ERROR, "hist", "%s; history is not saved", cause);
        free(cause);
        free(tmp);
        return -1;
    }
    fd = hist_file_create(tmp);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f != NULL && hist_file_write(h, f, secrets) == 0 && fsync(fd) == 0)
        r = 0;
    if (f != NULL)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    if (r == 0 && rename(tmp, path) != 0)
        r = -1;
    if (r != 0) {
        log_msg(LOG_ERROR, "hist", "cannot write %s: %s; history is lost", fd < 0 ? tmp : path,
                strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    } else {
        hist_file_sync_dir(path);
        log_msg(LOG_INFO, "hist", "history saved to %s", path);
    }
    free(tmp);
    return r;
}

/* -- reading ---------------------------------------------------------------------------------- */

/* One configured site's line of the file, as found. */
struct hist_file_part {
    json_t *doc;     /* owned: its JSON, once its MAC verified and it parsed */
    int lines;       /* lines that named the site */
    const char *why; /* static: why it is refused, or NULL */
};

/* A body of a part, once checked. */
struct hist_file_body {
    char *channel; /* owned: its channel, or NULL for a message to users */
    size_t len;
    int used; /* entries referring to it */
};

/* Site index of the name[0..len), or -1. */
static int hist_file_site(const struct hist *h, const char *name, size_t len)
{
    for (int i = 0; i < h->nsites; i++)
        if (strlen(h->sites[i].name) == len && memcmp(h->sites[i].name, name, len) == 0)
            return i;
    return -1;
}

/*
 * One line, "<site>\t<json>\t<mac>" (complete: it ended with a newline):
 * authenticate it and parse its JSON into its site's part. Returns 0, or -1
 * for a line that names no configured site.
 */
static int hist_file_line(struct hist *h, const char *line, size_t n, int complete,
                          const struct hist_secret *secrets, struct hist_file_part *parts)
{
    const char *tab = memchr(line, '\t', n), *mac = line + n - HIST_FILE_MAC_HEX;
    unsigned char want[32];
    char hex[HIST_FILE_MAC_HEX + 1];
    int i = tab != NULL ? hist_file_site(h, line, (size_t)(tab - line)) : -1;
    struct hist_file_part *p = i >= 0 ? &parts[i] : NULL;
    size_t jlen;

    if (p == NULL)
        return -1;
    if (++p->lines > 1) {
        p->why = "it has more than one line";
        return 0;
    }
    if (!complete || n < (size_t)(tab - line) + 2 + HIST_FILE_MAC_HEX || mac[-1] != '\t') {
        p->why = "its line is cut short or malformed";
        return 0;
    }
    jlen = (size_t)(mac - 1 - (tab + 1));
    if (hist_file_mac(&secrets[i], h->sites[i].name, tab + 1, jlen, want) != 0) {
        p->why = "its MAC cannot be computed";
        return 0;
    }
    hist_file_hex(want, hex);
    if (CRYPTO_memcmp(hex, mac, HIST_FILE_MAC_HEX) != 0) {
        p->why = "it does not verify with the site's secret (forged, or the secret changed)";
        return 0;
    }
    p->doc = json_loadb(tab + 1, jlen, JSON_REJECT_DUPLICATES, NULL);
    if (p->doc == NULL)
        p->why = "it is not JSON";
    return 0;
}

/* Split what follows the header into lines, each to hist_file_line. Returns lines of no site. */
static size_t hist_file_lines(struct hist *h, const char *p, size_t len,
                              const struct hist_secret *secrets, struct hist_file_part *parts)
{
    const char *end = p + len;
    size_t strays = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;

        if (hist_file_line(h, p, (size_t)(stop - p), nl != NULL, secrets, parts) != 0)
            strays++;
        p = nl != NULL ? nl + 1 : end;
    }
    return strays;
}

/* Is e 8 lowercase hex digits? */
static int hist_file_epoch_ok(const char *e)
{
    if (strlen(e) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f')))
            return 0;
    return 1;
}

/* A part's header fields: its site is name, its epoch and counter well formed. */
static const char *hist_file_head(json_t *doc, const char *name, const char **epoch,
                                  json_int_t *next, json_int_t *saved)
{
    const char *site;
    json_t *floors, *bodies, *streams;

    if (json_unpack_ex(doc, NULL, JSON_STRICT, "{s:s, s:s, s:I, s:I, s:o, s:o, s:o}", "site", &site,
                       "epoch", epoch, "next", next, "saved", saved, "floors", &floors, "bodies",
                       &bodies, "streams", &streams) != 0)
        return "its fields are not those of a history";
    if (strcmp(site, name) != 0)
        return "it names another site";
    if (!hist_file_epoch_ok(*epoch) || *next < 0 || *next > INT64_MAX / 2 || *saved < 0)
        return "its epoch, counter or time is malformed";
    return NULL;
}

/*
 * The epoch and counter every usable part agrees on, and when it was saved
 * (0), or -1 when none is usable or they disagree (then every part is refused).
 */
static int hist_file_agree(struct hist *h, struct hist_file_part *parts, const char **epoch,
                           json_int_t *next, json_int_t *saved)
{
    int found = 0, agree = 1;

    for (int i = 0; i < h->nsites; i++) {
        const char *e;
        json_int_t n, sv;

        if (parts[i].why != NULL || parts[i].doc == NULL)
            continue;
        parts[i].why = hist_file_head(parts[i].doc, h->sites[i].name, &e, &n, &sv);
        if (parts[i].why != NULL)
            continue;
        if (found && (strcmp(e, *epoch) != 0 || n != *next))
            agree = 0;
        *epoch = e;
        *next = n;
        *saved = sv;
        found = 1;
    }
    if (found && agree)
        return 0;
    for (int i = 0; i < h->nsites; i++)
        if (parts[i].why == NULL && parts[i].doc != NULL)
            parts[i].why = "the sites' parts disagree on the epoch or the counter";
    return -1;
}

/* floors: [[bucket, floor], ...], buckets increasing, 0 < floor <= next. */
static const char *hist_file_check_floors(const json_t *floors, json_int_t next)
{
    json_int_t prev = -1, b, f;
    size_t i;
    json_t *v;

    if (!json_is_array(floors) || json_array_size(floors) > HIST_BUCKETS)
        return "its floors are not a list of buckets";
    json_array_foreach (floors, i, v) {
        if (json_unpack_ex(v, NULL, JSON_STRICT, "[II]", &b, &f) != 0 || b <= prev ||
            b >= HIST_BUCKETS || f <= 0 || f > next)
            return "a floor is malformed, out of order or out of range";
        prev = b;
    }
    return NULL;
}

/*
 * Is text exactly an envelope Herald makes (proto_channel_text: "from" only
 * on a channel, from a browser)? Its channel goes into b.
 */
static const char *hist_file_check_body(const char *text, size_t len, struct hist_file_body *b)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    json_t *data = NULL;
    const char *ch = NULL, *ev = NULL, *from = NULL;
    size_t chl = 0, evl = 0, froml = 0;
    char *again = NULL;
    const char *why = "a body is not a message Herald makes";

    if (json_is_object(o) &&
        json_unpack_ex(o, NULL, JSON_STRICT, "{s?s%, s:s%, s:o, s?s%}", "channel", &ch, &chl,
                       "event", &ev, &evl, "data", &data, "from", &from, &froml) == 0 &&
        (ch == NULL || chan_name_valid(ch, chl)) && proto_event_valid(ev, evl) &&
        (from == NULL || (ch != NULL && tok_user_valid(from, froml))))
        again = proto_channel_text(ch, ev, data, from);
    if (again != NULL && strlen(again) == len && memcmp(again, text, len) == 0) {
        b->channel = ch != NULL ? xstrdup(ch) : NULL;
        b->len = len;
        why = NULL;
    }
    free(again);
    json_decref(o);
    return why;
}

/* bodies: each a string that hist_file_check_body accepts, within the budget. */
static const char *hist_file_check_bodies(const json_t *bodies, size_t max,
                                          struct hist_file_body *out)
{
    size_t i;
    json_t *v;

    json_array_foreach (bodies, i, v) {
        const char *why;

        if (!json_is_string(v) || json_string_length(v) > max)
            return "a body is not a string or too large";
        why = hist_file_check_body(json_string_value(v), json_string_length(v), &out[i]);
        if (why != NULL)
            return why;
    }
    return NULL;
}

/* Is key "<name>/u:<user>" or "<name>/c:<channel>"? *chan: the channel, or NULL. */
static int hist_file_check_key(const char *key, size_t klen, const char *name, const char **chan)
{
    size_t n = strlen(name);
    const char *rest = key + n + 3;

    if (klen != strlen(key) || klen >= HIST_KEY_MAX || klen < n + 4 || memcmp(key, name, n) != 0 ||
        key[n] != '/' || key[n + 2] != ':')
        return -1;
    *chan = key[n + 1] == 'c' ? rest : NULL;
    if (key[n + 1] == 'u')
        return tok_user_valid(rest, klen - n - 3) ? 0 : -1;
    return key[n + 1] == 'c' && chan_name_valid(rest, klen - n - 3) ? 0 : -1;
}

/* One entry [offset, age, body] after *prev (and no younger than *prev_age), of chan's stream. */
static const char *hist_file_check_entry(const json_t *e, const char *chan, json_int_t *prev,
                                         double *prev_age, struct hist_file_body *bodies,
                                         size_t nbodies, size_t *cost)
{
    json_int_t off, bi;
    double age;
    struct hist_file_body *b;

    if (json_unpack_ex((json_t *)e, NULL, JSON_STRICT, "[IFI]", &off, &age, &bi) != 0)
        return "an entry is malformed";
    if (off <= *prev || !isfinite(age) || age < 0 || age > *prev_age || bi < 0 ||
        (size_t)bi >= nbodies)
        return "an entry's offset, age or body is out of range or out of order";
    b = &bodies[bi];
    if ((chan == NULL) != (b->channel == NULL) || (chan != NULL && strcmp(chan, b->channel) != 0))
        return "an entry's body is a message of another stream";
    if (b->used++ == 0)
        *cost += hist_body_cost(b->len);
    *cost += hist_entry_cost();
    *prev = off;
    *prev_age = age;
    return NULL;
}

/* One stream [key, floor, last, [entry, ...]] of site name; what it will take into *cost. */
static const char *hist_file_check_stream(const json_t *st, const char *name, json_int_t next,
                                          struct hist_file_body *bodies, size_t nbodies,
                                          size_t *cost, const char **key)
{
    json_int_t floor, last, prev;
    double prev_age = HIST_FILE_MAX_AGE;
    const char *chan, *why;
    json_t *entries, *e;
    size_t klen, i;

    if (json_unpack_ex((json_t *)st, NULL, JSON_STRICT, "[s%IIo]", key, &klen, &floor, &last,
                       &entries) != 0)
        return "a stream is malformed";
    if (hist_file_check_key(*key, klen, name, &chan) != 0)
        return "a stream's key is not one of the site's users or channels";
    if (floor < 0 || floor >= last || last > next || !json_is_array(entries) ||
        json_array_size(entries) == 0)
        return "a stream's floor, newest offset or entries are out of range";
    prev = floor;
    json_array_foreach (entries, i, e) {
        why = hist_file_check_entry(e, chan, &prev, &prev_age, bodies, nbodies, cost);
        if (why != NULL)
            return why;
    }
    if (prev != last)
        return "a stream's newest offset is not its newest entry's";
    *cost += hist_stream_cost(klen);
    return NULL;
}

/* A key seen in a part, to refuse a stream given twice. */
struct hist_file_seen {
    const char *key; /* borrowed from the part's JSON */
    UT_hash_handle hh;
};

/* streams: each checked, no key twice, within the budget with the bodies they use. */
static const char *hist_file_check_streams(const json_t *streams, const struct hist_site *hs,
                                           json_int_t next, struct hist_file_body *bodies,
                                           size_t nbodies)
{
    struct hist_file_seen *seen = NULL, *k, *tmp;
    const char *why = NULL, *key;
    size_t cost = 0, i;
    json_t *st;

    if (!json_is_array(streams))
        return "its streams are not a list";
    json_array_foreach (streams, i, st) {
        why = hist_file_check_stream(st, hs->name, next, bodies, nbodies, &cost, &key);
        if (why == NULL) {
            HASH_FIND_STR(seen, key, k);
            why = k != NULL ? "a stream is given twice" : NULL;
        }
        if (why == NULL && cost > 2 * hs->max_bytes)
            why = "it holds more than twice history_max_bytes";
        if (why != NULL)
            break;
        k = xmalloc(sizeof *k);
        k->key = key;
        HASH_ADD_KEYPTR(hh, seen, k->key, strlen(k->key), k);
    }
    HASH_ITER (hh, seen, k, tmp) {
        HASH_DEL(seen, k);
        free(k);
    }
    for (i = 0; why == NULL && i < nbodies; i++)
        if (bodies[i].used == 0)
            why = "a body is used by no entry";
    return why;
}

/* A part's floors, bodies and streams; on success its checked bodies are in *out (nbodies). */
static const char *hist_file_check(const struct hist_site *hs, json_t *doc, json_int_t next,
                                   struct hist_file_body **out, size_t *nbodies)
{
    json_t *floors = json_object_get(doc, "floors"), *bodies = json_object_get(doc, "bodies");
    const char *why = hist_file_check_floors(floors, next);

    *nbodies = json_is_array(bodies) ? json_array_size(bodies) : 0;
    *out = xcalloc(*nbodies + 1, sizeof **out);
    if (why == NULL && !json_is_array(bodies))
        why = "its bodies are not a list";
    if (why == NULL)
        why = hist_file_check_bodies(bodies, 2 * hs->max_bytes, *out);
    if (why == NULL)
        why = hist_file_check_streams(json_object_get(doc, "streams"), hs, next, *out, *nbodies);
    return why;
}

/* Free what hist_file_check made. */
static void hist_file_bodies_free(struct hist_file_body *b, size_t n)
{
    for (size_t i = 0; b != NULL && i < n; i++)
        free(b[i].channel);
    free(b);
}

/* Keep one stream of a checked part: its entries aged by away seconds more. */
static void hist_file_commit_stream(struct hist *h, int site, const json_t *st,
                                    struct hist_body **bodies, double now, double away)
{
    json_t *entries = json_array_get(st, 3), *e;
    size_t n = json_array_size(entries), i;
    struct hist_item *items = xcalloc(n, sizeof *items);
    double *times = xcalloc(n, sizeof *times);

    json_array_foreach (entries, i, e) {
        items[i].offset = (uint64_t)json_integer_value(json_array_get(e, 0));
        items[i].body = bodies[json_integer_value(json_array_get(e, 2))];
        times[i] = now - (json_number_value(json_array_get(e, 1)) + away);
    }
    hist_restore(h, site, json_string_value(json_array_get(st, 0)),
                 (uint64_t)json_integer_value(json_array_get(st, 1)),
                 (uint64_t)json_integer_value(json_array_get(st, 2)), n, items, times);
    free(items);
    free(times);
}

/* Keep a checked part: its floors, bodies and streams. */
static void hist_file_commit(struct hist *h, int site, json_t *doc, double away)
{
    json_t *floors = json_object_get(doc, "floors"), *bodies = json_object_get(doc, "bodies");
    json_t *streams = json_object_get(doc, "streams"), *v;
    size_t nb = json_array_size(bodies), i;
    struct hist_body **hb = xcalloc(nb + 1, sizeof *hb);
    double now = hist_clock();

    json_array_foreach (floors, i, v)
        h->sites[site].floors[json_integer_value(json_array_get(v, 0))] =
            (uint64_t)json_integer_value(json_array_get(v, 1));
    json_array_foreach (bodies, i, v) {
        size_t len = json_string_length(v);
        char *text = xmalloc(len + 1);

        memcpy(text, json_string_value(v), len + 1);
        hb[i] = hist_body_new(text, len);
    }
    json_array_foreach (streams, i, v)
        hist_file_commit_stream(h, site, v, hb, now, away);
    for (i = 0; i < nb; i++)
        hist_body_unref(hb[i]);
    free(hb);
}

/* Check and keep the parts that agree; every other site starts with its floors at next. */
static int hist_file_keep(struct hist *h, struct hist_file_part *parts, json_int_t next,
                          double away)
{
    int kept = 0;

    for (int i = 0; i < h->nsites; i++) {
        struct hist_site *hs = &h->sites[i];
        struct hist_file_body *bodies = NULL;
        size_t nb = 0;

        if (parts[i].why == NULL && parts[i].doc != NULL)
            parts[i].why = hist_file_check(hs, parts[i].doc, next, &bodies, &nb);
        hist_file_bodies_free(bodies, nb);
        if (parts[i].why == NULL && parts[i].doc != NULL) {
            hist_file_commit(h, i, parts[i].doc, away);
            kept++;
            continue;
        }
        /* Whatever the site had is unknown: nothing up to the counter is recoverable. */
        for (int b = 0; b < HIST_BUCKETS; b++)
            hs->floors[b] = (uint64_t)next;
        log_msg(LOG_WARN, "hist",
                "history file: site %s: %s; its history starts empty "
                "(its clients are told recovered: false)",
                hs->name, parts[i].why != NULL ? parts[i].why : "it has no line");
    }
    return kept;
}

int hist_file_read(struct hist *h, const char *buf, size_t len, const struct hist_secret *secrets,
                   double now)
{
    struct hist_file_part *parts = xcalloc((size_t)h->nsites, sizeof *parts);
    size_t hl = strlen(HIST_FILE_HEADER), strays;
    const char *epoch = NULL;
    json_int_t next = 0, saved = 0;
    int r = -1, kept;

    if (len < hl || memcmp(buf, HIST_FILE_HEADER, hl) != 0) {
        log_msg(LOG_WARN, "hist",
                "history file: not a version 3 history; ignored, history "
                "starts empty");
        free(parts);
        return -1;
    }
    strays = hist_file_lines(h, buf + hl, len - hl, secrets, parts);
    if (strays > 0)
        log_msg(LOG_WARN, "hist", "history file: %zu lines name no configured site; ignored",
                strays);
    if (hist_file_agree(h, parts, &epoch, &next, &saved) != 0) {
        int said = 0;

        for (int i = 0; i < h->nsites; i++) {
            if (parts[i].why == NULL)
                continue;
            log_msg(LOG_WARN, "hist", "history file: site %s: %s; ignored, history starts empty",
                    h->sites[i].name, parts[i].why);
            said = 1;
        }
        if (!said)
            log_msg(LOG_WARN, "hist", "history file: no site's part in it; history starts empty");
    } else {
        memcpy(h->epoch, epoch, sizeof h->epoch);
        atomic_store(&h->next_offset, (uint64_t)next);
        kept = hist_file_keep(h, parts, next, now > (double)saved ? now - (double)saved : 0);
        log_msg(LOG_INFO, "hist", "history read: epoch %s, offset %" PRIu64 ", %d of %d sites",
                h->epoch, (uint64_t)next, kept, h->nsites);
        r = 0;
    }
    for (int i = 0; i < h->nsites; i++)
        json_decref(parts[i].doc);
    free(parts);
    return r;
}

/* Why the open file fd may not be read as a history file, or NULL. */
static const char *hist_file_unfit(int fd, uid_t owner, size_t max, struct stat *st)
{
    if (fstat(fd, st) != 0)
        return "cannot be examined";
    if (!S_ISREG(st->st_mode))
        return "is not a regular file";
    if (st->st_uid != owner)
        return "does not belong to the user Herald runs as";
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return "is writable by group or others";
    if (st->st_nlink != 1)
        return "has other names (hard links)";
    if ((uint64_t)st->st_size > max)
        return "is larger than its sites' budgets allow";
    return NULL;
}

/* Read the whole of fd (size bytes, as fstat said) into a malloc'd buffer, or NULL. */
static char *hist_file_slurp(int fd, size_t size)
{
    char *buf = xmalloc(size + 1);
    size_t got = 0;

    while (got <= size) {
        ssize_t n = read(fd, buf + got, size + 1 - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != size) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    return buf;
}

int hist_load(struct hist *h, const char *path, const struct hist_secret *secrets, uid_t owner)
{
    int fd, r;
    const char *why;
    char *cause, *buf;
    struct stat st;

    if (hist_check_dir(path, owner, &cause) != 0) {
        log_msg(LOG_ERROR, "hist", "%s; history is neither read nor saved there", cause);
        free(cause);
        return -1;
    }
    /* O_NONBLOCK: a FIFO planted there must not block the start. */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return -1;
        log_msg(LOG_WARN, "hist", "history file %s: %s; removed, history starts empty", path,
                errno == ELOOP ? "is a symbolic link" : strerror(errno));
        unlink(path);
        return -1;
    }
    why = hist_file_unfit(fd, owner, hist_file_max(h), &st);
    buf = why == NULL ? hist_file_slurp(fd, (size_t)st.st_size) : NULL;
    if (why == NULL && buf == NULL)
        why = "cannot be read";
    close(fd);
    unlink(path);
    if (why != NULL) {
        log_msg(LOG_WARN, "hist", "history file %s %s; removed, history starts empty", path, why);
        return -1;
    }
    r = hist_file_read(h, buf, (size_t)st.st_size, secrets, (double)time(NULL));
    free(buf);
    return r;
}

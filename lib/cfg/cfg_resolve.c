/*
 * cfg_resolve.c -- the values that depend on the machine or on other
 * settings, settled once every source is read: the secret (or its file),
 * the RPC hooks, the publish_uids and api_socket_group looked up, the
 * number of workers, the node's name, the Redis password (from its file)
 * and what engine = redis needs.
 *
 * Owns:       nothing past the call; it reads files and the user and group
 *             databases, and fills the resolved fields of struct cfg.
 * Called by:  cfg.c: once for the top level (cfg_resolve_global), and once
 *             per site (cfg_resolve), or for the top level when the file
 *             has no [site] sections. For cfg_load_peek (b->peek) no secret
 *             or password file is read and no group membership is checked.
 * Invariants: main thread only, within cfg_load. A message names where
 *             the value came from (origin_of): the file and line, the flag,
 *             or the key for a default.
 * Errors:     -1 with *cause set to one malloc'd line; the secret, the
 *             Redis password and their files' contents are never echoed,
 *             and what is read from those files is wiped before it is freed.
 * Tests:      tests/unit/test_cfg.c, tests/unit/test_cfg_value.c.
 */
#include "cfg_build.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "cfg_value.h"
#include "xmalloc.h"

#define CFG_SECRET_MIN 16           /* bytes, for any secret but the development one */
#define CFG_SECRET_FILE_MAX 65536   /* a larger secret file is a mistake */
#define CFG_REDIS_PASSWORD_MAX 1024 /* bytes of redis_password_file, the whole file */

/* Where setting i came from, for messages: "FILE:LINE: key", "--flag" or "key". */
static char *origin_of(const struct cfg_build *b, size_t i)
{
    if (b->src[i] == CFG_SRC_FILE)
        return xasprintf("%s:%d: %s", b->file, b->line[i], cfg_defs[i].name);
    if (b->src[i] == CFG_SRC_FLAG)
        return xasprintf("--%s", cfg_defs[i].flag);
    return xstrdup(cfg_defs[i].name);
}

/* Wipe and free a buffer of size bytes read from a private file. */
static void wipe_free(char *data, size_t size)
{
    explicit_bzero(data, size);
    free(data);
}

/*
 * Read a private file (a secret, a password) whole, refusing one larger
 * than max bytes. Returns 0 with *out a malloc'd buffer of max + 1 bytes,
 * NUL-terminated after its *len bytes, or -1 with *cause set ("WHERE:
 * cannot read PATH: ERROR", "WHERE: PATH is larger than Nk").
 */
static int read_private(const char *where, const char *path, size_t max, char **out, size_t *len,
                        char **cause)
{
    char *data = xmalloc(max + 1);
    size_t got = 0;
    ssize_t n = 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1;

    while (fd >= 0 && got <= max && n != 0) {
        n = read(fd, data + got, max + 1 - got);
        if (n < 0 && errno != EINTR)
            break;
        got += n > 0 ? (size_t)n : 0;
    }
    if (fd < 0 || n < 0)
        *cause = xasprintf("%s: cannot read %s: %s", where, path, strerror(errno));
    else if (got > max)
        *cause = xasprintf("%s: %s is larger than %zuk", where, path, max / 1024);
    else
        r = 0;
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        wipe_free(data, max + 1);
        return -1;
    }
    data[got] = '\0';
    *out = data;
    *len = got;
    return 0;
}

/* Read the secret file: one trailing "\n" or "\r\n" is dropped. Returns 0 or -1 with *cause. */
static int read_secret_file(struct cfg_build *b, char **cause)
{
    char *where = origin_of(b, CFG_KEY_SECRET_FILE);
    char *data;
    size_t len;
    int r = -1;

    if (read_private(where, b->secret_file, CFG_SECRET_FILE_MAX, &data, &len, cause) < 0)
        goto done;
    if (len > 0 && data[len - 1] == '\n')
        len--;
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (len == 0) {
        *cause = xasprintf("%s: %s is empty", where, b->secret_file);
        wipe_free(data, CFG_SECRET_FILE_MAX + 1);
        goto done;
    }
    data[len] = '\0';
    free(b->s.secret);
    b->s.secret = data;
    b->s.secret_len = len;
    r = 0;
done:
    free(where);
    return r;
}

/*
 * Settle the secret: a flag overrides the other source from the file, the
 * file is read, and the development secret is used or refused.
 */
static int resolve_secret(struct cfg_build *b, char **cause)
{
    size_t is = CFG_KEY_SECRET, isf = CFG_KEY_SECRET_FILE;
    size_t from = b->secret_file != NULL ? isf : is;
    char *where;

    if (b->peek) {
        /* Only the sockets are wanted: no secret is kept, none is asked for. */
        if (b->s.secret != NULL)
            explicit_bzero(b->s.secret, strlen(b->s.secret));
        free(b->s.secret);
        b->s.secret = NULL;
        return 0;
    }
    if (b->src[is] == CFG_SRC_FLAG && b->s.secret != NULL && b->src[isf] != CFG_SRC_FLAG) {
        free(b->secret_file);
        b->secret_file = NULL;
        from = is;
    } else if (b->src[isf] == CFG_SRC_FLAG && b->secret_file != NULL &&
               b->src[is] != CFG_SRC_FLAG && b->s.secret != NULL) {
        explicit_bzero(b->s.secret, strlen(b->s.secret));
        free(b->s.secret);
        b->s.secret = NULL;
    }
    if (b->secret_file != NULL && read_secret_file(b, cause) < 0)
        return -1;
    if (b->s.secret == NULL) {
        if (b->file == NULL && cfg_listen_is_local(b->c.listen)) {
            b->s.secret = xstrdup(CFG_DEV_SECRET);
            b->s.secret_len = strlen(CFG_DEV_SECRET);
            b->s.dev_secret = 1;
            return 0;
        }
        *cause = b->site != NULL
                     ? xasprintf("%s: [site %s]: no secret configured: set secret or secret_file "
                                 "in it (each site has its own)",
                                 b->file, b->site)
                 : b->file != NULL
                     ? xasprintf("%s: no secret configured: set secret or secret_file", b->file)
                     : xasprintf("no secret configured: set secret or secret_file "
                                 "(--secret, --secret-file) to listen on %s",
                                 b->c.listen);
        return -1;
    }
    if (b->secret_file == NULL)
        b->s.secret_len = strlen(b->s.secret);
    where = origin_of(b, from);
    if (b->s.secret_len == strlen(CFG_DEV_SECRET) &&
        memcmp(b->s.secret, CFG_DEV_SECRET, b->s.secret_len) == 0) {
        if (b->file != NULL)
            *cause = xasprintf("%s: the development secret is public; set one of your own", where);
        else if (!cfg_listen_is_local(b->c.listen))
            *cause = xasprintf("%s: the development secret is public and only accepted on "
                               "a loopback listen address",
                               where);
        b->s.dev_secret = 1;
    } else if (b->s.secret_len < CFG_SECRET_MIN) {
        *cause = xasprintf("%s: secret must be at least %d bytes", where, CFG_SECRET_MIN);
    }
    free(where);
    return *cause == NULL ? 0 : -1;
}

/* Turn rpc_hooks into bits; hooks and RPC need both rpc_socket and rpc_script. */
static int resolve_rpc(struct cfg_build *b, char **cause)
{
    struct cfg_site *c = &b->s;

    c->hooks = 0;
    for (size_t i = 0; i < c->nrpc_hooks; i++) {
        if (strcmp(c->rpc_hooks[i], "connect") == 0)
            c->hooks |= CFG_HOOK_CONNECT;
        else if (strcmp(c->rpc_hooks[i], "disconnect") == 0)
            c->hooks |= CFG_HOOK_DISCONNECT;
        else
            c->hooks |= CFG_HOOK_SUBSCRIBE;
    }
    if ((c->rpc_socket == NULL) != (c->rpc_script == NULL)) {
        *cause = xasprintf("%s: rpc_socket and rpc_script go together: set both or neither",
                           b->file != NULL ? b->file : "config");
        return -1;
    }
    if (c->hooks != 0 && c->rpc_socket == NULL) {
        *cause = xasprintf("%s: rpc_hooks needs rpc_socket and rpc_script",
                           b->file != NULL ? b->file : "config");
        return -1;
    }
    return 0;
}

/* Turn publish_uids into uids: a number is a uid, a name is looked up. */
static int resolve_uids(struct cfg_build *b, char **cause)
{
    struct cfg_site *c = &b->s;
    char *where;

    free(c->uids);
    c->uids = c->npublish_uids > 0 ? xcalloc(c->npublish_uids, sizeof *c->uids) : NULL;
    c->nuids = c->npublish_uids;
    for (size_t i = 0; i < c->npublish_uids; i++) {
        const char *v = c->publish_uids[i];
        struct passwd *pw;
        long long n;

        if (cfg_parse_int(v, &n) == 0 && n >= 0 && n < UINT32_MAX) {
            c->uids[i] = (uid_t)n;
            continue;
        }
        pw = getpwnam(v);
        if (pw == NULL) {
            where = origin_of(b, CFG_KEY_PUBLISH_UIDS);
            *cause = xasprintf("%s: no user named '%s'", where, v);
            free(where);
            return -1;
        }
        c->uids[i] = pw->pw_uid;
    }
    return 0;
}

/* Is this process in group gid (its effective group or a supplementary one)? */
static int in_group(gid_t gid)
{
    gid_t groups[256];
    int n = getgroups(256, groups);

    if (getegid() == gid)
        return 1;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/*
 * api_socket_group must exist, and a process that is not root must be in
 * it, or it cannot give the socket to it: said here, so that --check-config
 * (systemd's ExecStartPre) catches it rather than the start.
 */
static int resolve_group(struct cfg_build *b, char **cause)
{
    const char *name = b->s.api_socket_group;
    struct group *gr;
    char *where;

    if (name == NULL || b->peek)
        return 0;
    gr = getgrnam(name);
    if (gr != NULL && (geteuid() == 0 || in_group(gr->gr_gid)))
        return 0;
    where = origin_of(b, CFG_KEY_API_SOCKET_GROUP);
    if (gr == NULL)
        *cause = xasprintf("%s: no group named %s", where, name);
    else
        *cause = xasprintf("%s: this process (uid %ld) is not in group %s, so it cannot give "
                           "the api socket to it: start as root, or add the group "
                           "(systemd: SupplementaryGroups=)",
                           where, (long)geteuid(), name);
    free(where);
    return -1;
}

/*
 * Read redis_password_file: its first line, without its "\n" or "\r\n",
 * is the password. Returns 0 or -1 with *cause; the rest is wiped.
 */
static int read_redis_password(struct cfg_build *b, char **cause)
{
    const char *path = b->redis_password_file;
    char *where, *data, *nl;
    size_t len, size = CFG_REDIS_PASSWORD_MAX + 1;
    int r = -1;

    if (path == NULL || b->peek)
        return 0;
    where = origin_of(b, CFG_KEY_REDIS_PASSWORD_FILE);
    if (read_private(where, path, CFG_REDIS_PASSWORD_MAX, &data, &len, cause) < 0)
        goto done;
    if ((nl = memchr(data, '\n', len)) != NULL)
        len = (size_t)(nl - data);
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (len == 0 && nl != NULL && nl[1] != '\0')
        *cause =
            xasprintf("%s: the first line of %s is empty: the password goes there", where, path);
    else if (len == 0)
        *cause = xasprintf("%s: %s is empty", where, path);
    /* hiredis sends AUTH as a C string: a NUL would silently cut the password short */
    else if (memchr(data, '\0', len) != NULL)
        *cause = xasprintf("%s: the password in %s holds a NUL byte", where, path);
    else
        r = 0;
    if (r < 0) {
        wipe_free(data, size);
        goto done;
    }
    explicit_bzero(data + len, size - len);
    b->c.redis_password = data; /* NULL until now: read once, for the top level */
done:
    free(where);
    return r;
}

/*
 * An unset node_name becomes "<host>-<pid>": the host name up to its first
 * '.', other characters than a node name's made '-', cut so the whole fits.
 */
static void resolve_node_name(struct cfg_build *b)
{
    char host[256] = "";
    size_t n;

    if (b->c.node_name != NULL)
        return;
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    n = strcspn(host, ".");
    if (n > CFG_NODE_NAME_MAX - 11) /* room for "-" and a pid of up to 10 digits */
        n = CFG_NODE_NAME_MAX - 11;
    host[n] = '\0';
    for (char *p = host; *p != '\0'; p++)
        if (strchr(CFG_NODE_NAME_CHARS, *p) == NULL)
            *p = '-';
    b->c.node_name = xasprintf("%s-%ld", n > 0 ? host : "herald", (long)getpid());
}

/* Where Redis is: redis_address, or the Sentinels and the master they watch; never both. */
static int resolve_redis_where(struct cfg_build *b, char **cause)
{
    const struct cfg *c = &b->c;
    const char *why = NULL;
    enum cfg_key key = CFG_KEY_REDIS_SENTINELS;
    char *where;

    if (c->redis_address != NULL && c->nredis_sentinels > 0)
        why = "set redis_address or redis_sentinels, not both";
    else if (c->nredis_sentinels > 0 && c->redis_sentinel_master == NULL)
        why = "redis_sentinels needs redis_sentinel_master, the name the Sentinels watch";
    else if (c->nredis_sentinels == 0 && c->redis_sentinel_master != NULL)
        why = "redis_sentinel_master needs redis_sentinels", key = CFG_KEY_REDIS_SENTINEL_MASTER;
    else if (strcmp(c->engine, "redis") == 0 && c->redis_address == NULL &&
             c->nredis_sentinels == 0)
        why = "engine = redis needs redis_address (or redis_sentinels)", key = CFG_KEY_ENGINE;
    if (why == NULL)
        return 0;
    where = origin_of(b, key);
    *cause = xasprintf("%s: %s", where, why);
    free(where);
    return -1;
}

int cfg_resolve_global(struct cfg_build *b, char **cause)
{
    if (b->c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        b->c.workers = n < 1 ? 1 : n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (int)n;
    }
    if (resolve_redis_where(b, cause) != 0)
        return -1;
    resolve_node_name(b);
    return read_redis_password(b, cause);
}

int cfg_resolve(struct cfg_build *b, char **cause)
{
    if (resolve_secret(b, cause) < 0 || resolve_rpc(b, cause) < 0 || resolve_uids(b, cause) < 0 ||
        resolve_group(b, cause) < 0)
        return -1;
    return 0;
}

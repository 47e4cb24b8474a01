/*
 * cfg_resolve.c -- the values that depend on the machine or on other
 * settings, settled once every source is read: the secret (or its file),
 * the RPC hooks, the publish_uids and api_socket_group looked up, the
 * number of workers.
 *
 * Owns:       nothing past the call; it reads files and the user and group
 *             databases, and fills the resolved fields of struct cfg.
 * Called by:  cfg.c: once for the top level (workers), and once per site,
 *             or for the top level when the file has no [site] sections.
 * Invariants: main thread only, within cfg_load. A message names where
 *             the value came from (origin_of): the file and line, the flag,
 *             or the key for a default.
 * Errors:     -1 with *cause set to one malloc'd line; the secret and the
 *             secret file's contents are never echoed, and a secret read
 *             from a file is wiped before it is freed.
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

#define CFG_SECRET_MIN 16         /* bytes, for any secret but the development one */
#define CFG_SECRET_FILE_MAX 65536 /* a larger secret file is a mistake */

/* Where setting i came from, for messages: "FILE:LINE: key", "--flag" or "key". */
static char *origin_of(const struct cfg_build *b, size_t i)
{
    if (b->src[i] == CFG_SRC_FILE)
        return xasprintf("%s:%d: %s", b->file, b->line[i], cfg_defs[i].name);
    if (b->src[i] == CFG_SRC_FLAG)
        return xasprintf("--%s", cfg_defs[i].flag);
    return xstrdup(cfg_defs[i].name);
}

/* Read the secret file: one trailing "\n" or "\r\n" is dropped. Returns 0 or -1 with *cause. */
static int read_secret_file(struct cfg_build *b, char **cause)
{
    char *where = origin_of(b, CFG_KEY_SECRET_FILE);
    char *data = xmalloc(CFG_SECRET_FILE_MAX + 1);
    size_t len = 0;
    ssize_t n = 1;
    int fd = open(b->secret_file, O_RDONLY | O_CLOEXEC);

    while (fd >= 0 && len <= CFG_SECRET_FILE_MAX && n != 0) {
        n = read(fd, data + len, CFG_SECRET_FILE_MAX + 1 - len);
        if (n < 0 && errno != EINTR)
            break;
        len += n > 0 ? (size_t)n : 0;
    }
    if (fd < 0 || n < 0) {
        *cause = xasprintf("%s: cannot read %s: %s", where, b->secret_file, strerror(errno));
        goto fail;
    }
    if (len > CFG_SECRET_FILE_MAX) {
        *cause = xasprintf("%s: %s is larger than 64k", where, b->secret_file);
        goto fail;
    }
    if (len > 0 && data[len - 1] == '\n')
        len--;
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (len == 0) {
        *cause = xasprintf("%s: %s is empty", where, b->secret_file);
        goto fail;
    }
    close(fd);
    data[len] = '\0';
    free(b->s.secret);
    b->s.secret = data;
    b->s.secret_len = len;
    free(where);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    explicit_bzero(data, CFG_SECRET_FILE_MAX + 1);
    free(data);
    free(where);
    return -1;
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

    if (name == NULL)
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

void cfg_resolve_workers(struct cfg_build *b)
{
    if (b->c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        b->c.workers = n < 1 ? 1 : n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (int)n;
    }
}

int cfg_resolve(struct cfg_build *b, char **cause)
{
    if (resolve_secret(b, cause) < 0 || resolve_rpc(b, cause) < 0 || resolve_uids(b, cause) < 0 ||
        resolve_group(b, cause) < 0)
        return -1;
    return 0;
}

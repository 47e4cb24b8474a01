/*
 * service.c -- systemd notification and privilege drop (see service.h).
 *
 * Owns:       a datagram socket for the length of one notification.
 * Called by:  main.c only.
 * Invariants: the notification socket path comes from the environment
 *             systemd sets; '@' is an abstract socket. Privileges are
 *             dropped group first, then user, and checked afterwards, so a
 *             half-dropped process never runs on.
 */
#include "service.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

void svc_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    socklen_t len;
    int fd;

    if (path == NULL || path[0] == '\0')
        return;
    if ((path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof sun.sun_path) {
        log_msg(LOG_WARN, "service", "NOTIFY_SOCKET %s is not a socket path; not notifying", path);
        return;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    if (path[0] == '@')
        sun.sun_path[0] = '\0';
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        log_msg(LOG_WARN, "service", "cannot notify systemd (%s): %s", state, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Look up the name, uid and primary gid of user (a name or a number). */
static int svc_user(const char *user, char name[256], uid_t *uid, gid_t *gid, char **cause)
{
    struct passwd *pw = getpwnam(user);

    if (pw == NULL) {
        char *end;
        long n = strtol(user, &end, 10);

        if (*end != '\0' || n < 0 || (pw = getpwuid((uid_t)n)) == NULL) {
            *cause = xasprintf("--user %s: no such user", user);
            return -1;
        }
    }
    if (strlen(pw->pw_name) >= 256) {
        *cause = xasprintf("--user %s: name too long", user);
        return -1;
    }
    strcpy(name, pw->pw_name);
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* Look up group (a name or a number). */
static int svc_group(const char *group, gid_t *gid, char **cause)
{
    struct group *gr = getgrnam(group);
    char *end;
    long n;

    if (gr != NULL) {
        *gid = gr->gr_gid;
        return 0;
    }
    n = strtol(group, &end, 10);
    if (*end != '\0' || n < 0) {
        *cause = xasprintf("--group %s: no such group", group);
        return -1;
    }
    *gid = (gid_t)n;
    return 0;
}

int svc_drop_privileges(const char *user, const char *group, char **cause)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    char name[256];

    if (user == NULL && group == NULL)
        return 0;
    if (user != NULL && svc_user(user, name, &uid, &gid, cause) < 0)
        return -1;
    if (group != NULL && svc_group(group, &gid, cause) < 0)
        return -1;
    if (geteuid() != 0) {
        if (uid == geteuid() && gid == getegid())
            return 0;
        *cause =
            xasprintf("--user/--group need root to switch (running as uid %d)", (int)geteuid());
        return -1;
    }
    if ((user != NULL ? initgroups(name, gid) : setgroups(1, &gid)) != 0 || setgid(gid) != 0 ||
        setuid(uid) != 0) {
        *cause =
            xasprintf("cannot switch to uid %d gid %d: %s", (int)uid, (int)gid, strerror(errno));
        return -1;
    }
    if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
        *cause = xasprintf("still root after dropping privileges; refusing to run");
        return -1;
    }
    log_msg(LOG_INFO, "service", "running as uid %d gid %d", (int)uid, (int)gid);
    return 0;
}

uid_t svc_run_uid(const char *user)
{
    char name[256], *cause = NULL;
    uid_t uid;
    gid_t gid;

    if (user == NULL || svc_user(user, name, &uid, &gid, &cause) != 0) {
        free(cause);
        return geteuid();
    }
    return uid;
}

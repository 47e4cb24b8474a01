/*
 * net.c -- bind, listen and accept for TCP and unix sockets (Redis anet.c).
 *
 * Owns:       nothing; returns fds to its callers.
 * Called by:  main.c at startup, worker.c for TCP listeners and accepts.
 * Invariants: all fds non-blocking and close-on-exec; an existing socket
 *             file is replaced only if nothing answers on it, so a second
 *             Herald cannot silently steal a running one's socket.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xmalloc.h"

int net_is_unix(const char *addr)
{
    return strncmp(addr, "unix:", 5) == 0;
}

/* Is something listening on this unix socket path? */
static int unix_in_use(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int used;

    if (fd < 0)
        return 0;
    used = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
    close(fd);
    return used;
}

/* Fill sun with path; 0, or -1 with *cause set when it does not fit. */
static int unix_address(const char *path, struct sockaddr_un *sun, char **cause)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) {
        *cause = xasprintf("socket path too long: %s", path);
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

/* Bind a unix socket at path, replacing a stale socket file. */
static int listen_unix(const char *path, mode_t mode, char **cause)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    if (unix_address(path, &sun, cause) < 0)
        return -1;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *cause = xasprintf("%s exists and is not a socket", path);
            return -1;
        }
        if (unix_in_use(&sun)) {
            *cause = xasprintf("%s is in use by another process", path);
            return -1;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *cause = xasprintf("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || chmod(path, mode) != 0 ||
        listen(fd, 1024) != 0) {
        *cause = xasprintf("%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Split "HOST:PORT" or "[V6]:PORT" into host and port strings. */
static int split_host_port(const char *addr, char *host, size_t hostlen, const char **port)
{
    const char *colon;
    size_t n;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');

        if (end == NULL || end[1] != ':')
            return -1;
        n = (size_t)(end - addr - 1);
        if (n >= hostlen)
            return -1;
        memcpy(host, addr + 1, n);
        host[n] = '\0';
        *port = end + 2;
        return 0;
    }
    colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= hostlen)
        return -1;
    n = (size_t)(colon - addr);
    memcpy(host, addr, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

/*
 * Resolve "HOST:PORT" (flags: AI_PASSIVE to bind, AI_NUMERICHOST to never
 * wait on DNS) and make a non-blocking socket for its first address.
 * Returns the fd with *res set (the caller frees it), or -1 with *cause set.
 */
static int tcp_socket(const char *addr, int flags, struct addrinfo **res, char **cause)
{
    struct addrinfo hints;
    char host[256];
    const char *port;
    int fd, r;

    if (split_host_port(addr, host, sizeof host, &port) != 0) {
        *cause = xasprintf("bad address: %s", addr);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    if ((flags & AI_NUMERICHOST) && strcasecmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    r = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
    if (r != 0) {
        *cause = xasprintf("%s: %s", addr, gai_strerror(r));
        return -1;
    }
    fd = socket((*res)->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *cause = xasprintf("socket: %s", strerror(errno));
        freeaddrinfo(*res);
    }
    return fd;
}

/* Bind a TCP socket to the first address HOST resolves to. */
static int listen_tcp(const char *addr, int reuseport, char **cause)
{
    struct addrinfo *res;
    int one = 1, fd = tcp_socket(addr, AI_PASSIVE, &res, cause);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        *cause = xasprintf("%s: %s", addr, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Start a non-blocking TCP connect to numeric HOST:PORT ("localhost" is 127.0.0.1). */
static int connect_tcp(const char *addr, char **cause)
{
    struct addrinfo *res;
    /* Numeric only: a DNS lookup would block the worker's loop. */
    int fd = tcp_socket(addr, AI_NUMERICHOST, &res, cause);

    if (fd < 0)
        return -1;
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        *cause = xasprintf("%s: %s", addr, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Connect to a unix socket without blocking; a full backlog is a failure. */
static int connect_unix(const char *path, char **cause)
{
    struct sockaddr_un sun;
    int fd;

    if (unix_address(path, &sun, cause) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *cause = xasprintf("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0 && errno != EINPROGRESS) {
        *cause = xasprintf("unix:%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int net_connect(const char *addr, char **cause)
{
    if (net_is_unix(addr))
        return connect_unix(addr + 5, cause);
    return connect_tcp(addr, cause);
}

int net_parse_addr(const char *s, unsigned char addr[16])
{
    struct in_addr v4;

    if (inet_pton(AF_INET6, s, addr) == 1)
        return 0;
    if (inet_pton(AF_INET, s, &v4) != 1)
        return -1;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &v4, 4);
    return 0;
}

int net_parse_cidr(const char *s, unsigned char addr[16], int *bits)
{
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    char base[INET6_ADDRSTRLEN];
    int v6, max;
    long b;
    char *end;

    if (n >= sizeof base)
        return -1;
    memcpy(base, s, n);
    base[n] = '\0';
    v6 = strchr(base, ':') != NULL;
    max = v6 ? 128 : 32;
    if (net_parse_addr(base, addr) < 0)
        return -1;
    b = max;
    if (slash != NULL) {
        b = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || b < 0 || b > max)
            return -1;
    }
    *bits = (int)b + (v6 ? 0 : 96);
    return 0;
}

int net_listen(const char *addr, mode_t mode, int reuseport, char **cause)
{
    if (net_is_unix(addr))
        return listen_unix(addr + 5, mode, cause);
    return listen_tcp(addr, reuseport, cause);
}

int net_accept(int lfd)
{
    int fd, one = 1;

    do
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    /* Fails harmlessly (EOPNOTSUPP) on unix sockets. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void net_unlink(const char *addr)
{
    if (net_is_unix(addr))
        addr += 5;
    unlink(addr);
}

long net_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return (long)rl.rlim_cur;
}

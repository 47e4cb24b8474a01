/*
 * xmalloc.h -- allocation that aborts on failure (tmux xmalloc.c): running
 * out of memory is not an error a connection can recover from.
 *
 * Called by:  every module. Thread-safe (plain libc underneath).
 */
#ifndef HERALD_XMALLOC_H
#define HERALD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf that aborts on failure; returns the new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/*
 * guard.h -- put a parser's input at the very end of mapped memory, so a
 * read one byte past it faults at once instead of passing unnoticed
 * (the trick of picohttpparser's test.c, STYLE 3.8).
 *
 * Owns:       the mappings it creates; each guard_place is undone by one
 *             guard_release with the same length.
 * Called by:  tests/unit/test_*.c, for every parser input.
 * Invariants: the copy ends exactly where a PROT_NONE page starts; the
 *             bytes before the copy on its first page are readable, so only
 *             overreads are caught (underreads are ASan's job).
 */
#ifndef HERALD_TEST_GUARD_H
#define HERALD_TEST_GUARD_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Pages for len bytes of data (at least one), not counting the guard page. */
static inline size_t guard_data_size(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = len ? (len + page - 1) / page : 1;

    return pages * page;
}

/*
 * Map the data pages plus a PROT_NONE page, copy data[0..len) so that it
 * ends right before the guard page, and return the copy (writable). Aborts
 * on failure: a test cannot go on without it.
 */
static inline void *guard_place(const void *data, size_t len)
{
    size_t size = guard_data_size(len);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *base;

    base = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        abort();
    if (mprotect(base + size, page, PROT_NONE) != 0)
        abort();
    if (len)
        memcpy(base + size - len, data, len);
    return base + size - len;
}

/* Unmap what guard_place(data, len) returned as p. */
static inline void guard_release(void *p, size_t len)
{
    size_t size = guard_data_size(len);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *base = (unsigned char *)p + len - size;

    munmap(base, size + page);
}

#endif

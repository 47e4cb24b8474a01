/*
 * chan.c -- channel names and patterns (see chan.h).
 *
 * Owns:       nothing.
 * Called by:  any thread; no state.
 * Invariants: the character set is small on purpose: names appear in JSON,
 *             in log lines and in PHP code, and need no escaping in any.
 */
#include "chan.h"

#include <string.h>

/* May c appear in a channel name? */
static int chan_char_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("_.:@/=+-", c) != NULL;
}

int chan_name_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > CHAN_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!chan_char_ok((unsigned char)s[i]))
            return 0;
    return 1;
}

int chan_pattern_valid(const char *p)
{
    size_t len = strlen(p);

    if (len == 1 && p[0] == '*')
        return 1;
    if (len > 1 && p[len - 1] == '*')
        len--;
    return chan_name_valid(p, len);
}

int chan_match(const char *p, const char *name, size_t len)
{
    size_t plen = strlen(p);

    if (plen > 0 && p[plen - 1] == '*')
        return len >= plen - 1 && memcmp(p, name, plen - 1) == 0;
    return plen == len && memcmp(p, name, len) == 0;
}

int chan_match_any(char *const *patterns, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (chan_match(patterns[i], name, len))
            return 1;
    return 0;
}

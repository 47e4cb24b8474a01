/*
 * chan.h -- channel names and the patterns that grant them.
 *
 * Owns:       nothing: pure functions over caller's strings.
 * Called by:  cfg_value.c (checking pattern lists), client.c (commands),
 *             lib/api/routes.c (API channel names), any thread.
 * Invariants: a name is 1..CHAN_MAX_NAME bytes of [A-Za-z0-9_.:@/=+-]; a
 *             pattern is a name, a name followed by '*', or "*" alone.
 *             Names never contain '*', so a pattern can never be mistaken
 *             for a name.
 */
#ifndef HERALD_CHAN_H
#define HERALD_CHAN_H

#include <stddef.h>

#define CHAN_MAX_NAME 128

/* Is s[0..len) a valid channel name? */
int chan_name_valid(const char *s, size_t len);

/* Is the NUL-terminated p a valid pattern? */
int chan_pattern_valid(const char *p);

/* Does pattern p grant channel name[0..len)? */
int chan_match(const char *p, const char *name, size_t len);

/* Does any of the n patterns grant name[0..len)? */
int chan_match_any(char *const *patterns, size_t n, const char *name, size_t len);

#endif

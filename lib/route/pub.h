/*
 * pub.h -- hand a publish to the workers: number its messages and keep
 * them in history when history is on, then submit the job to exactly the
 * workers holding its targets.
 *
 * Owns:       nothing past the call: the job goes to the workers.
 * Called by:  lib/api/routes.c (API publishes, then waits) and client.c
 *             (browser publishes, detached), on their own threads.
 * Invariants: each user and channel stream gets its offsets and its job
 *             submitted under its history stripe lock, so every worker
 *             receives a stream's messages in offset order.
 */
#ifndef HERALD_PUB_H
#define HERALD_PUB_H

struct cmd_hub;
struct cmd_job;

/*
 * Submit job, whose item i has its targets but no frame yet: its envelope is
 * texts[i] (JSON text, malloc'd), from which the frames are made here. With
 * history on, each message to a stream is numbered and kept, and history
 * takes over its text (texts[i] becomes NULL); a message to users gets one
 * frame per user online, each with its own id. The caller frees what is left
 * in texts. Returns the job to wait on and to read delivered[] from (indexed
 * by item), or NULL when detached: the job is then the workers'.
 */
struct cmd_job *pub_submit(const struct cmd_hub *hub, struct cmd_job *job, char **texts,
                           int detached);

/*
 * Submit job to the workers holding its targets as it is, unnumbered (for
 * what history does not keep: presence events). Returns it unless detached.
 */
struct cmd_job *pub_hand_out(const struct cmd_hub *hub, struct cmd_job *job, int detached);

#endif

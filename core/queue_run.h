/*
 * queue_run.h - queue runs and forced deliveries (Exim's -q family and
 * -M), in the daemon or, with no daemon running, in the command line's
 * own process.
 *
 * A run lists the spool, keeps the messages that the selection matches
 * (queue_select.h) and attempts each through queue_force(), all at once;
 * it ends when every attempt has ended. It is logged "Start queue run:
 * pid=N -q<flags> ..." and "End queue run: ..." as Exim logs it, with
 * the pid of the process that asked for it.
 *
 * Thread use: the loop thread of the queue.
 */
#ifndef SLUICE_QUEUE_RUN_H
#define SLUICE_QUEUE_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "queue.h"
#include "queue_select.h"

/* Reports the end of a run or delivery: attempted is how many messages
 * an attempt started for. */
typedef void (*queue_run_done_fn)(void *arg, size_t attempted);

/*
 * Starts a run. sel is borrowed for the call and must have been
 * prepared. skip_waiting leaves out messages whose next attempt is
 * scheduled for later unless sel forces them. The daemon sets it,
 * because its scheduler keeps each message's next attempt time. done
 * runs once, on the loop thread, possibly before this returns. config and queue are
 * borrowed until then.
 * NOTE: the -H file of every message is read on the calling thread, so
 * a run over a large queue stalls the daemon's loop while it selects.
 */
void queue_run_start(struct queue *queue, const struct config *config,
    const struct queue_select *sel, long pid, bool skip_waiting,
    queue_run_done_fn done, void *arg);

/*
 * Attempts one message now (-M: flags QUEUE_FORCE_THAW; -Mc: 0). A
 * message without its -D file is logged "Spool file <id>-D not found",
 * as Exim does, and not attempted.
 */
void queue_run_deliver(struct queue *queue, const struct config *config,
    const char *id, unsigned flags, queue_run_done_fn done, void *arg);

#endif

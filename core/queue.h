/*
 * queue.h - the delivery queue: every message on the spool, its next
 * attempt, and the attempts themselves.
 *
 * An attempt reads the message's -H (and -J), locks its -D, groups the
 * undelivered recipients by domain and delivers each group over SMTP to
 * the smarthost, or to the domain's MX hosts (its own A/AAAA when it has
 * no MX). A 2xx is recorded in the -J journal, durably, before the "=>"
 * line is logged, so a restart never delivers it again; a 5xx is
 * recorded too and logged "**"; a 4xx or a connection failure is logged
 * "==" and the message is tried again after a fixed interval. When every
 * recipient is done the spool files go and "Completed" is logged.
 *
 * Thread use: the loop thread only.
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct evbuffer;
struct scheduler;
struct spool_header;
struct spool_store;
struct dns_resolver;
struct queue;

/* The retry interval when no "begin retry" rule applies, and after a
 * message was found locked by another process. */
#define QUEUE_RETRY_INTERVAL_USEC	(15ULL * 60 * 1000000)
/* How long a stopping daemon lets running deliveries finish before it
 * abandons them; an abandoned recipient stays queued. */
#define QUEUE_DRAIN_TIMEOUT_USEC	(10ULL * 1000000)

struct queue_stats {
	size_t messages;		/* on the queue now */
	size_t attempts_running;
	uint64_t delivered;		/* recipients */
	uint64_t deferred;
	uint64_t failed;
	uint64_t completed;		/* messages */
};

/* Creates the queue; config, store and resolver are borrowed and must
 * outlive it. */
struct queue *queue_new(struct event_base *base, const struct config *config,
    struct spool_store *store, struct dns_resolver *resolver);

/* With dont_deliver (the daemon's -N), every attempt marks its message
 * with the spool's -N flag and pretends to deliver it: each recipient is
 * logged with "*>" and marked delivered without a connection. */
void queue_set_dont_deliver(struct queue *queue, bool dont_deliver);

/* Frees the queue; running attempts must have ended (queue_shutdown).
 * Accepts NULL. */
void queue_free(struct queue *queue);

/* Adds a message that is on the spool (a new arrival, or one found at
 * start-up) and tries it at once. Adding one twice has no effect. */
void queue_add(struct queue *queue, const char *id);
/* The same, for a message whose -H file the caller has read (header is
 * borrowed): its class and domains count in the summary at once. */
void queue_add_header(struct queue *queue, const char *id,
    const struct spool_header *header);

/* Takes the classes, sources, pools and shaping of the policy now
 * current (after a reload). */
void queue_policy_reloaded(struct queue *queue);

/* The queue's classes and egress paths. */
struct scheduler *queue_scheduler(struct queue *queue);

/*
 * Writes the summary that `sluice -bpq` prints to out: totals, then
 * lines per class, destination domain, site and path. Each counts
 * (message, domain) pairs in four states. Scheduled pairs wait for
 * their next attempt, ready ones are routed and wait on their path, in
 * flight ones are being delivered, and suspended ones are ready on a
 * suspended path.
 */
void queue_summary(struct queue *queue, struct evbuffer *out);

typedef void (*queue_done_fn)(void *arg);

/*
 * Starts no new attempt from now on. Running attempts may finish for up
 * to QUEUE_DRAIN_TIMEOUT_USEC; then they are abandoned and their
 * undelivered recipients stay queued. done runs on the loop thread once
 * no attempt is left (possibly before this returns).
 */
void queue_shutdown(struct queue *queue, queue_done_fn done, void *arg);

void queue_stats(const struct queue *queue, struct queue_stats *out);

/* ---- operators: forced attempts and actions on one message ---- */

/* Flags of queue_force(). */
#define QUEUE_FORCE_THAW	(1u << 0)	/* attempt a frozen message
						 * too, unfreezing it */

/* Reports the end of a forced attempt of id (borrowed for the call):
 * attempted is false when none could start (the message is locked by
 * another process, frozen, gone or being changed by an operator). */
typedef void (*queue_attempt_fn)(void *arg, const char *id, bool attempted);

/*
 * Attempts the message now, whatever its next attempt time (Exim's -M,
 * -qf), adding it to the queue if needed. When an attempt is running
 * already, no second one starts and done waits for that one. done runs
 * on the loop thread, possibly before this returns. The attempt also
 * tries hosts that are before their host-level retry time.
 */
void queue_force(struct queue *queue, const char *id, unsigned flags,
    queue_attempt_fn done, void *arg);

/* True if the message is queued and not due: its next attempt is
 * scheduled for later, or one is running. */
bool queue_is_waiting(struct queue *queue, const char *id);

/* Return value of queue_hold() besides 0. */
#define QUEUE_BUSY	1

/* Reports the outcome of queue_hold(): 0 or QUEUE_BUSY. */
typedef void (*queue_hold_fn)(void *arg, int result);

/*
 * Keeps attempts of the message from starting while an operator's
 * action changes its files. done gets 0 (also for a message the queue
 * does not know) once the last attempt's -H rewrite is on disk, so the
 * action reads the current file. It gets QUEUE_BUSY at once when an
 * attempt is running or the message is being removed. Every 0 is paired with a
 * queue_release(). done may run before this returns.
 */
void queue_hold(struct queue *queue, const char *id, queue_hold_fn done,
    void *arg);

/* Flags of queue_release(). */
#define QUEUE_RELEASE_REMOVED	(1u << 0)	/* the files are gone */
#define QUEUE_RELEASE_ATTEMPT	(1u << 1)	/* attempt it now (thawed) */

void queue_release(struct queue *queue, const char *id, unsigned how);

#endif

/*
 * queue_list.h - the queue listings of -bp, -bpr, -bpu, -bpa, -bpi and
 * -bpc, byte for byte as Exim prints them.
 *
 * Each message is a block: a line with age, size, id and sender (plus
 * " (login)" when an untrusted caller set the sender and " *** frozen
 * ***" when it is frozen), one line per recipient indented by eight
 * spaces and marked "D" when delivered, and an empty line. -bpu leaves
 * delivered recipients out; -bpa adds the delivered addresses that are
 * not recipients themselves (generated ones) as "       +D address".
 * -bpi prints only the ids (as Exim 4.97 and later), -bpc only their
 * number. A message that cannot be read gets "*** spool read error:
 * <reason> ***" or "*** spool format error: size=<n> ***" in place of
 * its recipients.
 *
 * The listing reads the spool directly (spool_list.h), as Exim does, so
 * it works with the daemon stopped and never waits for it.
 */
#ifndef SLUICE_QUEUE_LIST_H
#define SLUICE_QUEUE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "spool_list.h"

enum queue_list_kind {
	QUEUE_LIST_ALL,			/* -bp */
	QUEUE_LIST_UNDELIVERED,		/* -bpu */
	QUEUE_LIST_GENERATED,		/* -bpa */
	QUEUE_LIST_IDS,			/* -bpi */
	QUEUE_LIST_COUNT,		/* -bpc */
};

struct queue_list_options {
	enum queue_list_kind kind;
	bool unsorted;			/* -bpr: directory order */
	/* When id_count > 0, only these messages, in this order, and a
	 * missing one is listed with a read error. */
	const char *const *ids;
	size_t id_count;
};

/* Size of the buffers of the two formatters below. */
#define QUEUE_LIST_FIELD_SIZE	32

/*
 * Formats the time a message has been queued as Exim's -bp does: "%2dm"
 * up to 90 minutes, then "%2dh" in rounded hours up to 72, then "%2dd"
 * in rounded days. buf has QUEUE_LIST_FIELD_SIZE bytes.
 */
void queue_list_format_age(int64_t seconds, char *buf);

/*
 * Formats a size in five columns as Exim does: five spaces for 0, bytes
 * below 1K, "9.9K" below 10K, "999K" below 1M, "9.9M" below 10M, then
 * "%4dM". buf has QUEUE_LIST_FIELD_SIZE bytes.
 */
void queue_list_format_size(uint64_t size, char *buf);

/*
 * Size that -bp shows: the live header fields, plus the -D file without
 * its first line, plus one for the empty line between them. 0 when the
 * -D file is missing.
 */
uint64_t queue_list_message_size(const struct spool_list_message *m);

/* Prints one message's block for kind (not QUEUE_LIST_COUNT), at time
 * now. */
void queue_list_print_message(FILE *out, const struct spool_list_message *m,
    enum queue_list_kind kind, time_t now);

/*
 * Lists the queue of config's spool to out. Returns 0, or -1 after
 * printing the reason to stderr when the spool cannot be read.
 */
int queue_list_run(FILE *out, const struct config *config,
    const struct queue_list_options *options, time_t now);

#endif

/*
 * queue_select.h - which messages a queue run attempts: Exim's -q
 * flags, -R and -S, and the id range of "-q <id> [<id>]".
 *
 * A run without f attempts only messages that are due. f ignores the
 * next attempt time, and ff attempts frozen messages too, unfreezing
 * them. i keeps only messages never attempted before. -R keeps messages
 * with an undelivered recipient that contains the string, and -S those
 * whose sender contains it, both without regard to case. With r, the
 * string is a POSIX extended regular expression instead. An id range keeps the
 * messages whose ids sort, by strcmp(), between the two ids (one id:
 * from it on).
 *
 * A selection travels to the daemon as words of a control command, so
 * the command line and the daemon select the same messages.
 */
#ifndef SLUICE_QUEUE_SELECT_H
#define SLUICE_QUEUE_SELECT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "spool_list.h"

/* Bytes of a -R or -S string. */
#define QUEUE_SELECT_MATCH_MAX	1024

enum queue_select_force {
	QUEUE_SELECT_DUE,		/* -q */
	QUEUE_SELECT_FORCE,		/* -qf */
	QUEUE_SELECT_FORCE_FROZEN,	/* -qff */
};

struct queue_select {
	enum queue_select_force force;
	bool first_only;		/* -qi */
	bool two_stage;			/* -qq: accepted; runs as one stage */
	bool local_only;		/* -ql: sluice has no local deliveries */
	char *recipient_match;		/* -R, or NULL */
	bool recipient_regex;
	char *sender_match;		/* -S, or NULL */
	bool sender_regex;
	char *start_id;			/* -q <id> [<id>], or NULL */
	char *stop_id;

	/* Compiled by queue_select_prepare(). */
	bool prepared;
	regex_t recipient_re;
	regex_t sender_re;
};

/* Compiles the regular expressions. Returns 0, or -1 with *error set
 * (caller frees). */
int queue_select_prepare(struct queue_select *sel, char **error);

/* Frees the strings and compiled expressions; sel is zeroed. */
void queue_select_free(struct queue_select *sel);

/* True if the message passes every test but the "due" one, which only
 * the daemon can apply. Messages that could not be read pass only when
 * nothing but the id range is asked, so a forced run still tries them. */
bool queue_select_match(const struct queue_select *sel,
    const struct spool_list_message *m);

/* True if the id alone is within the range. */
bool queue_select_in_range(const struct queue_select *sel, const char *id);

/* The flags after "-q" as Exim logs them ("qff", "i"; "" for none). buf
 * has at least 8 bytes. */
void queue_select_flags(const struct queue_select *sel, char *buf,
    size_t size);

/*
 * Writes the selection as control command words into a new string
 * (caller frees), and reads them back from argv. queue_select_decode()
 * returns 0, or -1 with *error set (caller frees).
 */
char *queue_select_encode(const struct queue_select *sel);
int queue_select_decode(int argc, char **argv, struct queue_select *sel,
    char **error);

#endif

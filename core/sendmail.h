/*
 * sendmail.h - the sendmail command: reads a message from stdin, as
 * cron, PHP's mail(), mutt, git send-email and shell scripts hand it
 * over, and passes it to the daemon's submission socket (submit.h).
 *
 * Input: lines may end in LF or CRLF, mixed; every line is stored with
 * LF, as Exim stores it. Without -i a line holding only "." ends the
 * message. A missing final newline is added. NUL bytes are kept.
 *
 * Recipients come from the arguments, each an address or a
 * comma-separated list, and with -t from the To:, Cc: and Bcc: fields
 * (only the Resent- ones when the message has any Resent- field); then
 * the argument addresses are taken out of that list, as Exim does with
 * extract_addresses_remove_arguments, and Bcc: is dropped.
 *
 * When no daemon answers, the request goes to the daemon's drop folder
 * (see submit.c), durable before the command exits 0 and says on stderr
 * that the message waits for the daemon.
 *
 * -odb, -odf, -odi and -odq are accepted and all behave alike, since
 * the daemon attempts each message as soon as it is stored.
 *
 * Errors in a message the daemon refuses (no recipients, a malformed
 * recipient, any other refusal) are printed with -oep and -oeq. With
 * -oem, -oew and -oee, the default, the daemon mails a report to the
 * sender instead (submit.h), and nothing is printed.
 *
 * Exit status, as Exim 4.96 gives it: 0 once the daemon reports the
 * message durable on its spool, or once it waits in the drop folder; 0
 * with -oee when the error report was mailed; 1 for an error, mailed
 * with -oem or printed; 2 when no recipients were found and the report
 * that -oem or -oee asks for cannot be mailed because no daemon runs.
 */
#ifndef SLUICE_SENDMAIL_H
#define SLUICE_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "options.h"

/* A list of addresses; items owned. */
struct sendmail_addresses {
	char **items;
	size_t count;
};

/* Most addresses one message may name. */
#define SENDMAIL_ADDRESSES_MAX	1000

/*
 * Appends the addresses of an RFC 5322 address list (value, len bytes,
 * may be folded) to list: "Name <a@b>", bare "a@b", groups and comments
 * as the RFC allows. Returns 0, or -1 when the list would pass
 * SENDMAIL_ADDRESSES_MAX.
 */
int sendmail_parse_address_list(const char *value, size_t len,
    struct sendmail_addresses *list);

/*
 * Appends the recipients named in a header section (headers, len bytes,
 * LF line ends) to list, as -t reads them. Returns 0, or -1 when there
 * are too many.
 */
int sendmail_header_recipients(const char *headers, size_t len,
    struct sendmail_addresses *list);

void sendmail_addresses_free(struct sendmail_addresses *list);

/* What goes with a message to the daemon; every pointer borrowed. */
struct sendmail_envelope {
	const char *sender;		/* -f or MAIL FROM, or NULL */
	const char *full_name;		/* -F, or NULL */
	const char *protocol;		/* "local-smtp", "local-esmtp",
					 * "local-bsmtp" or NULL */
	bool remove_bcc;		/* -t */
	bool no_delivery;		/* -N */
	/* -oem, -oee: the daemon mails a refusal to the sender. */
	bool errors_mail;
	/* The daemon must check this message (a recipient is malformed, or
	 * none is given), so it must not wait in the drop folder. */
	bool needs_daemon;
	const struct sendmail_addresses *recipients;
};

/*
 * Hands a message (msg, len bytes with LF line ends) to the daemon, or
 * to its drop folder when no daemon runs. Returns 0 when it is durable,
 * with the message id in reply ("" for the drop folder); 1 when the
 * daemon refused it, with the reason in reply; 2 when it refused it and
 * mailed a report to the sender (env->errors_mail), with the reason in
 * reply; -1 after printing why it could not be handed over.
 */
int sendmail_submit(const struct config *config,
    const struct sendmail_envelope *env, const char *msg, size_t len,
    char *reply, size_t size);

/* Runs -bs (an SMTP session on stdin and stdout) or -bS (batched SMTP
 * on stdin). Returns the exit status. */
int sendmail_smtp_run(const struct config *config, const struct options *o);

/* Runs the command for options (action OPTIONS_ACTION_SUBMIT); returns
 * the exit status. */
int sendmail_run(const struct config *config, const struct options *o);

#endif

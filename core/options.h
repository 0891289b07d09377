/*
 * options.h - the command line in Exim's form.
 *
 * The program name picks defaults as Exim's does: "mailq" lists the
 * queue (-bp) and "runq" runs it (-q). "sluice", "exim", "exim4" and any
 * other name take the options alone. "sendmail" is such a name too;
 * "rmail" adds -i -oee, "rsmtp" stands for -bS (batched SMTP on stdin)
 * and "newaliases" for -bi, which has nothing to do.
 * Arguments that are not options, when no option names an action, are
 * the recipients of a message read from stdin (-bm). Options follow Exim's spelling:
 * a value may be glued to its option (-Cfile) or follow it (-C file);
 * after -M, -Mf and the other message actions every remaining argument
 * is a message id (or, for -Mar, -Mmd and -Mes, an address), even one
 * that starts with "-".
 *
 * Errors are printed to stderr in Exim's words, with "sluice:" in place
 * of "exim:".
 */
#ifndef SLUICE_OPTIONS_H
#define SLUICE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "msg_action.h"
#include "queue_list.h"
#include "queue_select.h"

enum options_action {
	OPTIONS_ACTION_NONE,
	OPTIONS_ACTION_HELP,		/* --help */
	OPTIONS_ACTION_VERSION,		/* -bV, --version */
	OPTIONS_ACTION_DAEMON,		/* -bd, -bdf */
	OPTIONS_ACTION_PRINT_OPTIONS,	/* -bP */
	OPTIONS_ACTION_LIST_QUEUE,	/* -bp, -bpc, ... */
	OPTIONS_ACTION_MESSAGE,		/* -Mf, -Mt, -Mrm, -Mmd, ... */
	OPTIONS_ACTION_DELIVER,		/* -M, -Mc */
	OPTIONS_ACTION_VIEW,		/* -Mvb, -Mvh, -Mvl, -Mvc */
	OPTIONS_ACTION_GIVE_UP,		/* -Mg */
	OPTIONS_ACTION_QUEUE_RUN,	/* -q..., -R, -S */
	OPTIONS_ACTION_HOST_CHECK,	/* -bh address */
	OPTIONS_ACTION_SUBMIT,		/* -bm, -t, or recipients: sendmail */
	OPTIONS_ACTION_ALIASES,		/* -bi, newaliases: nothing to do */
	OPTIONS_ACTION_TEST_RETRY,	/* -brt domain|address [domain] [error] */
	OPTIONS_ACTION_DUMP_TABLE,	/* -bpt name: a saved policy table */
	OPTIONS_ACTION_ROUTE_TEST,	/* -bt [address...] */
	OPTIONS_ACTION_VERIFY,		/* -bv [address...] */
	OPTIONS_ACTION_SCHEDULER,	/* -bpq, -Msuspend, -Mresume */
};

/* How an error in a submitted message is reported (-oe...). */
enum options_error_mode {
	OPTIONS_ERRORS_MAIL,		/* -oem, -oew: the default */
	OPTIONS_ERRORS_MAIL_EXIT_ZERO,	/* -oee: rmail's default */
	OPTIONS_ERRORS_PRINT,		/* -oep, -oeq */
};

enum options_view {
	OPTIONS_VIEW_BODY,		/* -Mvb: the -D file */
	OPTIONS_VIEW_HEADER,		/* -Mvh: the -H file */
	OPTIONS_VIEW_LOG,		/* -Mvl: the msglog file */
	OPTIONS_VIEW_MESSAGE,		/* -Mvc: the whole message */
};

struct options {
	enum options_action action;
	const char *program;		/* basename of argv[0] */
	const char *action_option;	/* "-Mf", "-bp", ... for messages */

	const char *config_file;
	const char *defines[CONFIG_DEFINES_MAX];
	size_t define_count;
	bool verbose;			/* -v, -d */

	/* -bd, -bdf */
	bool foreground;
	const char *override_listen;	/* -oX */
	const char *pid_file;		/* -oP */
	const char *syslog_tag;		/* -L: log to syslog under this tag */
	const char *queue_interval;	/* -q30m with -bd: not needed */

	/* -bP */
	bool value_only;		/* -n */

	/* -bh */
	const char *host_check;		/* ip[.port] */
	const char *table_name;		/* -bpt */
	/* The daemon's command for OPTIONS_ACTION_SCHEDULER:
	 * "queue-summary", "suspend" or "resume". */
	const char *scheduler_command;

	/* -bp */
	enum queue_list_kind list_kind;
	bool list_unsorted;

	/* -M... */
	enum msg_action_kind message_kind;
	bool deliver_thaw;		/* -M, not -Mc */
	enum options_view view;

	/* -bm, -t: reading a message to send */
	bool extract_recipients;	/* -t */
	bool dot_ends_message;		/* false with -i, -oi */
	const char *sender;		/* -f, -r: borrowed from argv */
	const char *full_name;		/* -F */
	char delivery_mode;		/* -od<c>: 'b', 'f', 'i', 'q' */
	enum options_error_mode error_mode;
	bool no_delivery;		/* -N */
	bool smtp_stdin;		/* -bs, -bS */
	bool smtp_batch;		/* -bS: batched, no replies */
	bool submit_option;		/* one of the above was given */

	/* -q..., -R, -S: owned; options_free() frees it */
	struct queue_select select;

	/* Arguments after the options: message ids, addresses, names. */
	char **args;
	int arg_count;
};

/*
 * Parses argv into *out. Returns 0, or -1 after printing the error to
 * stderr. On success free the result with options_free().
 */
int options_parse(int argc, char **argv, struct options *out);

void options_free(struct options *options);

/* Prints the usage text. */
void options_usage(FILE *out);

#endif

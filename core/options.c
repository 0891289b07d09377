/*
 * options.c - the command line in Exim's form (see options.h).
 *
 * The error texts are those of Exim 4.96 for the same mistakes
 * ("no message ids given after -Mf option", "malformed message id ...",
 * "incompatible command-line options or arguments").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msgid.h"
#include "options.h"
#include "util.h"

#define DEFAULT_CONFIG_FILE SLUICE_SYSCONFDIR "/sluice/sluice.conf"

void
options_usage(FILE *out)
{
	fprintf(out,
	    "usage: sluice [options] [arguments]\n"
	    "  -bd            run the SMTP daemon in the background\n"
	    "  -bdf           run the SMTP daemon in the foreground\n"
	    "  -bh ip[.port]  run a test SMTP session on stdin as if from ip\n"
	    "  -bP [name...]  print configuration options (-n: values only)\n"
	    "  -brt dom|addr [dom2] [error]\n"
	    "                 print the retry rule that applies\n"
	    "  -bpt name      print a saved Lua policy table: counters, "
	    "scores, warmup or\n"
	    "                 suppress (a sluice extension)\n"
	    "  -bt [addr...]  print how each address would be routed (-bv: "
	    "verify it)\n"
	    "  -bV            print the version and check the configuration\n"
	    "  -bp [id...]    list the queue; -bpr unsorted, -bpu undelivered "
	    "recipients only,\n"
	    "                 -bpa with generated addresses, -bpi ids only, "
	    "-bpc the count\n"
	    "  -bpq           queued mail by class, domain, site and egress "
	    "path (a sluice\n"
	    "                 extension, from the running daemon)\n"
	    "  -M id...       deliver now, thawing frozen messages (-Mc: "
	    "leave them frozen)\n"
	    "  -Mf/-Mt id...  freeze, thaw\n"
	    "  -Mrm id...     remove without a bounce\n"
	    "  -Mmd id addr.. mark recipients delivered (-Mmad id...: all "
	    "of them)\n"
	    "  -Mar id addr.. add recipients; -Mes id addr: change the "
	    "sender\n"
	    "  -Msuspend source site seconds [reason]\n"
	    "                 hold an egress path (site * for all of the "
	    "source's);\n"
	    "                 -Mresume source site lets it send again\n"
	    "  -Mvh/-Mvb/-Mvl/-Mvc id\n"
	    "                 print the -H file, the -D file, the message "
	    "log or the message\n"
	    "  -q[i][f[f]] [id [id]]\n"
	    "                 attempt queued messages now: f ignores retry "
	    "times, ff thaws\n"
	    "                 frozen ones too, i takes first attempts only\n"
	    "  -R[r][f[f]] s  the same for messages with a recipient "
	    "containing s\n"
	    "  -S[r][f[f]] s  the same for messages with a sender "
	    "containing s\n"
	    "  -C file        use this configuration file (default %s)\n"
	    "  -D NAME[=val]  define a configuration macro (up to %d)\n"
	    "  -oX list       listen on these ports or addresses instead\n"
	    "  -oP file       write the daemon's pid to this file\n"
	    "  -N             pretend deliveries: log them with *>, send "
	    "nothing\n"
	    "  -v             report what a queue run or delivery did\n"
	    "  [-bm] addr...  read a message on stdin and send it; -t takes "
	    "the recipients\n"
	    "                 from To:, Cc: and Bcc:, -i lets a lone dot be "
	    "content, -f sets\n"
	    "                 the sender (trusted users), -F the full name "
	    "for From:\n"
	    "  -bs, -bS       SMTP on stdin and stdout; batched, without "
	    "replies\n"
	    "Called as mailq, the program lists the queue (-bp); as runq it "
	    "runs it (-q);\n"
	    "as sendmail or rmail it reads a message; as rsmtp it reads "
	    "batched SMTP (-bS);\nas newaliases it does nothing.\n",
	    DEFAULT_CONFIG_FILE, CONFIG_DEFINES_MAX);
}

static int
options_bad(const char *option)
{
	fprintf(stderr, "sluice: unknown, malformed, or incomplete option %s\n",
	    option);
	return -1;
}

static int
options_incompatible(void)
{
	fprintf(stderr, "sluice: incompatible command-line options or "
	    "arguments\n");
	return -1;
}

/* Returns the value of an option that takes one: glued or the next
 * argument. */
static const char *
options_value(int argc, char **argv, int *i, size_t prefix_len)
{
	if (argv[*i][prefix_len] != '\0')
		return argv[*i] + prefix_len;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int
options_set_action(struct options *o, enum options_action action,
    const char *option)
{
	if (o->action != OPTIONS_ACTION_NONE && o->action != action)
		return options_incompatible();
	o->action = action;
	o->action_option = option;
	return 0;
}

/* -bp, -bpa, -bpc, -bpi, -bpr, -bpra, -bpri, -bpru, -bpu */
static int
options_parse_list(struct options *o, const char *arg)
{
	static const struct {
		const char *name;
		enum queue_list_kind kind;
		bool unsorted;
	} forms[] = {
		{ "-bp", QUEUE_LIST_ALL, false },
		{ "-bpa", QUEUE_LIST_GENERATED, false },
		{ "-bpc", QUEUE_LIST_COUNT, false },
		{ "-bpi", QUEUE_LIST_IDS, false },
		{ "-bpr", QUEUE_LIST_ALL, true },
		{ "-bpra", QUEUE_LIST_GENERATED, true },
		{ "-bpri", QUEUE_LIST_IDS, true },
		{ "-bpru", QUEUE_LIST_UNDELIVERED, true },
		{ "-bpu", QUEUE_LIST_UNDELIVERED, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		if (strcmp(arg, forms[i].name) == 0) {
			o->list_kind = forms[i].kind;
			o->list_unsorted = forms[i].unsorted;
			return options_set_action(o, OPTIONS_ACTION_LIST_QUEUE, arg);
		}
	}
	return options_bad(arg);
}

/* -M and its variants. Returns 0 when arg is one of them. */
static int
options_parse_message(struct options *o, const char *arg)
{
	static const struct {
		const char *name;
		enum options_action action;
		int kind;		/* enum msg_action_kind or view */
		bool thaw;
	} forms[] = {
		{ "-M", OPTIONS_ACTION_DELIVER, 0, true },
		{ "-Mc", OPTIONS_ACTION_DELIVER, 0, false },
		{ "-Mf", OPTIONS_ACTION_MESSAGE, MSG_ACTION_FREEZE, false },
		{ "-Mt", OPTIONS_ACTION_MESSAGE, MSG_ACTION_THAW, false },
		{ "-Mrm", OPTIONS_ACTION_MESSAGE, MSG_ACTION_REMOVE, false },
		{ "-Mmd", OPTIONS_ACTION_MESSAGE, MSG_ACTION_MARK_DELIVERED,
		    false },
		{ "-Mmad", OPTIONS_ACTION_MESSAGE,
		    MSG_ACTION_MARK_ALL_DELIVERED, false },
		{ "-Mar", OPTIONS_ACTION_MESSAGE, MSG_ACTION_ADD_RECIPIENTS,
		    false },
		{ "-Mes", OPTIONS_ACTION_MESSAGE, MSG_ACTION_EDIT_SENDER, false },
		{ "-Mg", OPTIONS_ACTION_GIVE_UP, 0, false },
		{ "-Mvb", OPTIONS_ACTION_VIEW, OPTIONS_VIEW_BODY, false },
		{ "-Mvh", OPTIONS_ACTION_VIEW, OPTIONS_VIEW_HEADER, false },
		{ "-Mvl", OPTIONS_ACTION_VIEW, OPTIONS_VIEW_LOG, false },
		{ "-Mvc", OPTIONS_ACTION_VIEW, OPTIONS_VIEW_MESSAGE, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		if (strcmp(arg, forms[i].name) != 0)
			continue;
		if (forms[i].action == OPTIONS_ACTION_MESSAGE)
			o->message_kind = (enum msg_action_kind)forms[i].kind;
		if (forms[i].action == OPTIONS_ACTION_VIEW)
			o->view = (enum options_view)forms[i].kind;
		o->deliver_thaw = forms[i].thaw;
		return options_set_action(o, forms[i].action, arg);
	}
	if (strcmp(arg, "-Msuspend") == 0 || strcmp(arg, "-Mresume") == 0) {
		o->scheduler_command = arg[2] == 's' ? "suspend" : "resume";
		return options_set_action(o, OPTIONS_ACTION_SCHEDULER, arg);
	}
	if (strncmp(arg, "-MG", 3) == 0) {
		fprintf(stderr, "sluice: named queues (-MG) are not supported\n");
		return -1;
	}
	return options_bad(arg);
}

/*
 * -R and -S with their flags: r (regular expression), f and ff. rest is
 * what follows the letter, and the string is the next argument.
 */
static int
options_parse_match(struct options *o, int argc, char **argv, int *i,
    const char *rest, bool recipient)
{
	const char *arg = argv[*i];
	bool regex = false;
	int forces = 0;

	for (; *rest != '\0'; rest++) {
		if (*rest == 'r' && !regex && forces == 0)
			regex = true;
		else if (*rest == 'f' && forces < 2)
			forces++;
		else
			return options_bad(arg);
	}
	if (*i + 1 >= argc) {
		fprintf(stderr, "sluice: string expected after -%c\n",
		    recipient ? 'R' : 'S');
		return -1;
	}
	if (strlen(argv[*i + 1]) > QUEUE_SELECT_MATCH_MAX) {
		fprintf(stderr, "sluice: string after -%c is longer than %d "
		    "bytes\n", recipient ? 'R' : 'S', QUEUE_SELECT_MATCH_MAX);
		return -1;
	}
	(*i)++;
	if (recipient) {
		free(o->select.recipient_match);
		o->select.recipient_match = xstrdup(argv[*i]);
		o->select.recipient_regex = regex;
	} else {
		free(o->select.sender_match);
		o->select.sender_match = xstrdup(argv[*i]);
		o->select.sender_regex = regex;
	}
	if (forces > (int)o->select.force)
		o->select.force = (enum queue_select_force)forces;
	if (o->action == OPTIONS_ACTION_DAEMON)
		return options_incompatible();
	return options_set_action(o, OPTIONS_ACTION_QUEUE_RUN, arg);
}

/* -q[q][i][f[f]][l][<time>], and -qR... and -qS... */
static int
options_parse_queue(struct options *o, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];
	const char *p = arg + 2;
	int seconds;

	if (*p == 'R' || *p == 'S')
		return options_parse_match(o, argc, argv, i, p + 1, *p == 'R');
	if (*p == 'q') {
		o->select.two_stage = true;
		p++;
	}
	if (*p == 'i') {
		o->select.first_only = true;
		p++;
	}
	if (*p == 'f') {
		o->select.force = QUEUE_SELECT_FORCE;
		if (*++p == 'f') {
			o->select.force = QUEUE_SELECT_FORCE_FROZEN;
			p++;
		}
	}
	if (*p == 'l') {
		o->select.local_only = true;
		p++;
	}
	if (*p == 'G') {
		fprintf(stderr, "sluice: named queues (-qG) are not supported\n");
		return -1;
	}
	if (*p != '\0') {
		/* An interval: the daemon runs its queue all the time. */
		if (config_parse_time(p, &seconds) < 0) {
			fprintf(stderr, "sluice: bad time value %s: abandoned\n",
			    arg);
			return -1;
		}
		if (o->action != OPTIONS_ACTION_NONE &&
		    o->action != OPTIONS_ACTION_DAEMON)
			return options_incompatible();
		o->queue_interval = arg;
		return 0;
	}
	if (o->action == OPTIONS_ACTION_DAEMON)
		return options_incompatible();
	return options_set_action(o, OPTIONS_ACTION_QUEUE_RUN, arg);
}

/* -b options. */
static int
options_parse_b(struct options *o, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];

	if (strcmp(arg, "-bh") == 0) {
		if (*i + 1 >= argc)
			return options_bad(arg);
		o->host_check = argv[++*i];
		return options_set_action(o, OPTIONS_ACTION_HOST_CHECK, arg);
	}
	if (strcmp(arg, "-bd") == 0 || strcmp(arg, "-bdf") == 0) {
		o->foreground = arg[3] == 'f';
		if (o->action == OPTIONS_ACTION_QUEUE_RUN)
			return options_incompatible();
		return options_set_action(o, OPTIONS_ACTION_DAEMON, arg);
	}
	if (strcmp(arg, "-bm") == 0)
		return options_set_action(o, OPTIONS_ACTION_SUBMIT, arg);
	if (strcmp(arg, "-brt") == 0)
		return options_set_action(o, OPTIONS_ACTION_TEST_RETRY, arg);
	if (strcmp(arg, "-bi") == 0)
		return options_set_action(o, OPTIONS_ACTION_ALIASES, arg);
	if (strcmp(arg, "-bt") == 0)
		return options_set_action(o, OPTIONS_ACTION_ROUTE_TEST, arg);
	if (strcmp(arg, "-bv") == 0)
		return options_set_action(o, OPTIONS_ACTION_VERIFY, arg);
	if (strcmp(arg, "-bs") == 0) {
		o->smtp_stdin = true;
		return options_set_action(o, OPTIONS_ACTION_SUBMIT, arg);
	}
	if (strcmp(arg, "-bS") == 0) {
		o->smtp_stdin = true;
		o->smtp_batch = true;
		return options_set_action(o, OPTIONS_ACTION_SUBMIT, arg);
	}
	if (strcmp(arg, "-bP") == 0)
		return options_set_action(o, OPTIONS_ACTION_PRINT_OPTIONS, arg);
	if (strcmp(arg, "-bV") == 0)
		return options_set_action(o, OPTIONS_ACTION_VERSION, arg);
	if (strcmp(arg, "-bpt") == 0) {
		if (*i + 1 >= argc)
			return options_bad(arg);
		o->table_name = argv[++*i];
		return options_set_action(o, OPTIONS_ACTION_DUMP_TABLE, arg);
	}
	if (strcmp(arg, "-bpq") == 0) {
		o->scheduler_command = "queue-summary";
		return options_set_action(o, OPTIONS_ACTION_SCHEDULER, arg);
	}
	if (strncmp(arg, "-bp", 3) == 0)
		return options_parse_list(o, arg);
	return options_bad(arg);
}

/*
 * The options of sendmail's command line that describe a message read
 * from stdin, and those Exim accepts from sendmail callers and ignores.
 * Returns 1 when arg is none of them, else 0 or -1 after an error.
 */
static int
options_parse_submit(struct options *o, int argc, char **argv, int *i)
{
	static const char *const ignored[] = {
		"-U", "-x", "-Ac", "-Am", "-oo", "-om", "-m",
	};
	static const char *const ignored_with_value[] = { "-h", "-O", "-X" };
	const char *arg = argv[*i];
	const char *value;

	if (strcmp(arg, "-t") == 0 || strcmp(arg, "-ti") == 0) {
		o->extract_recipients = true;
		if (arg[2] == 'i')
			o->dot_ends_message = false;
	} else if (strcmp(arg, "-i") == 0 || strcmp(arg, "-oi") == 0 ||
	    strcmp(arg, "-oitrue") == 0) {
		o->dot_ends_message = false;
	} else if (strcmp(arg, "-N") == 0) {
		/* A submitted message is marked -N in its spool file; a
		 * daemon started with -N pretends for every message. */
		o->no_delivery = true;
	} else if (arg[1] == 'f' || arg[1] == 'r' || arg[1] == 'F') {
		if ((value = options_value(argc, argv, i, 2)) == NULL)
			return options_bad(arg);
		if (arg[1] == 'F')
			o->full_name = value;
		else
			o->sender = value;
	} else if (strncmp(arg, "-od", 3) == 0) {
		if (strchr("bfiq", arg[3]) == NULL || arg[3] == '\0' ||
		    (arg[4] != '\0' && strcmp(arg + 3, "qs") != 0))
			return options_bad(arg);
		o->delivery_mode = arg[3];
	} else if (strncmp(arg, "-oe", 3) == 0) {
		if (arg[3] == '\0' || arg[4] != '\0' ||
		    strchr("meqpw", arg[3]) == NULL)
			return options_bad(arg);
		o->error_mode = arg[3] == 'e' ? OPTIONS_ERRORS_MAIL_EXIT_ZERO :
		    arg[3] == 'p' || arg[3] == 'q' ? OPTIONS_ERRORS_PRINT :
		    OPTIONS_ERRORS_MAIL;
	} else if (arg[1] == 'B') {
		/* Sendmail's body type: 8-bit content needs no mode here. */
		if (arg[2] == '\0' && *i + 1 < argc)
			(*i)++;
	} else {
		for (size_t k = 0; k < ARRAY_SIZE(ignored); k++)
			if (strcmp(arg, ignored[k]) == 0)
				return 0;
		for (size_t k = 0; k < ARRAY_SIZE(ignored_with_value); k++) {
			if (strncmp(arg, ignored_with_value[k], 2) == 0) {
				if (options_value(argc, argv, i, 2) == NULL)
					return options_bad(arg);
				return 0;
			}
		}
		return 1;
	}
	o->submit_option = true;
	return 0;
}

/* Checks the arguments after the options against the action. */
static int
options_check_args(struct options *o)
{
	const char *option = o->action_option;
	int ids = o->arg_count;

	switch (o->action) {
	case OPTIONS_ACTION_PRINT_OPTIONS:
	case OPTIONS_ACTION_TEST_RETRY:
	case OPTIONS_ACTION_ROUTE_TEST:
	case OPTIONS_ACTION_VERIFY:
		return 0;
	case OPTIONS_ACTION_SCHEDULER:
		if ((strcmp(o->scheduler_command, "queue-summary") == 0 &&
		    o->arg_count != 0) ||
		    (strcmp(o->scheduler_command, "resume") == 0 &&
		    o->arg_count != 2) ||
		    (strcmp(o->scheduler_command, "suspend") == 0 &&
		    o->arg_count < 3)) {
			fprintf(stderr, "sluice: usage: -bpq, -Msuspend SOURCE "
			    "SITE SECONDS [REASON], -Mresume SOURCE SITE\n");
			return -1;
		}
		return 0;
	case OPTIONS_ACTION_DUMP_TABLE:
		if (o->arg_count != 0) {
			fprintf(stderr, "sluice: -bpt takes one table name\n");
			return -1;
		}
		return 0;
	case OPTIONS_ACTION_MESSAGE:
	case OPTIONS_ACTION_DELIVER:
	case OPTIONS_ACTION_VIEW:
	case OPTIONS_ACTION_GIVE_UP:
		if (o->arg_count == 0) {
			fprintf(stderr, "sluice: no message ids given after %s "
			    "option\n", option);
			return -1;
		}
		if (o->action == OPTIONS_ACTION_MESSAGE &&
		    (o->message_kind == MSG_ACTION_ADD_RECIPIENTS ||
		    o->message_kind == MSG_ACTION_MARK_DELIVERED ||
		    o->message_kind == MSG_ACTION_EDIT_SENDER))
			ids = 1;	/* then addresses */
		break;
	case OPTIONS_ACTION_LIST_QUEUE:
		option = "-bp";
		break;
	case OPTIONS_ACTION_QUEUE_RUN:
		if (o->arg_count > 2)
			return options_incompatible();
		option = "-q";
		break;
	case OPTIONS_ACTION_SUBMIT:
		/* An SMTP session names its recipients itself. */
		if (o->smtp_stdin && (o->extract_recipients || o->arg_count > 0))
			return options_incompatible();
		return 0;
	case OPTIONS_ACTION_NONE:
	case OPTIONS_ACTION_ALIASES:
		return 0;
	default:
		if (o->arg_count > 0)
			return options_bad(o->args[0]);
		return 0;
	}

	for (int i = 0; i < ids; i++) {
		if (!msgid_valid(o->args[i], strlen(o->args[i]))) {
			fprintf(stderr, "sluice: malformed message id %s after %s "
			    "option\n", o->args[i], option);
			return -1;
		}
	}
	if (o->action == OPTIONS_ACTION_QUEUE_RUN && o->arg_count > 0) {
		o->select.start_id = xstrdup(o->args[0]);
		if (o->arg_count > 1)
			o->select.stop_id = xstrdup(o->args[1]);
	}
	return 0;
}

/* The action a program name stands for when no option names one. */
static void
options_apply_program(struct options *o)
{
	if (strcmp(o->program, "rmail") == 0) {
		o->dot_ends_message = false;
		o->error_mode = OPTIONS_ERRORS_MAIL_EXIT_ZERO;
	}
	if (o->action != OPTIONS_ACTION_NONE)
		return;
	if (o->arg_count > 0 || o->submit_option ||
	    strcmp(o->program, "rmail") == 0) {
		o->action = OPTIONS_ACTION_SUBMIT;
		o->action_option = "-bm";
	} else if (strcmp(o->program, "newaliases") == 0) {
		o->action = OPTIONS_ACTION_ALIASES;
		o->action_option = "-bi";
	} else if (strcmp(o->program, "mailq") == 0) {
		o->action = OPTIONS_ACTION_LIST_QUEUE;
		o->action_option = "-bp";
	} else if (strcmp(o->program, "runq") == 0) {
		o->action = OPTIONS_ACTION_QUEUE_RUN;
		o->action_option = "-q";
	}
}

int
options_parse(int argc, char **argv, struct options *o)
{
	const char *slash;
	int i;

	memset(o, 0, sizeof(*o));
	o->config_file = DEFAULT_CONFIG_FILE;
	o->program = argc > 0 && argv[0] != NULL ? argv[0] : "sluice";
	if ((slash = strrchr(o->program, '/')) != NULL)
		o->program = slash + 1;
	o->dot_ends_message = true;
	if (strcmp(o->program, "rsmtp") == 0) {
		/* As -bS before every other option. */
		o->smtp_stdin = true;
		o->smtp_batch = true;
		o->action = OPTIONS_ACTION_SUBMIT;
		o->action_option = "-bS";
	}

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value;
		int rc = 0;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		if (strcmp(arg, "--help") == 0) {
			rc = options_set_action(o, OPTIONS_ACTION_HELP, arg);
		} else if (strcmp(arg, "--version") == 0) {
			rc = options_set_action(o, OPTIONS_ACTION_VERSION, arg);
		} else if (strncmp(arg, "-b", 2) == 0) {
			rc = options_parse_b(o, argc, argv, &i);
		} else if (strncmp(arg, "-M", 2) == 0) {
			/* Everything after a message action is its
			 * arguments. */
			if (options_parse_message(o, arg) < 0)
				goto fail;
			i++;
			break;
		} else if (strncmp(arg, "-q", 2) == 0) {
			rc = options_parse_queue(o, argc, argv, &i);
		} else if (arg[1] == 'R' || arg[1] == 'S') {
			rc = options_parse_match(o, argc, argv, &i, arg + 2,
			    arg[1] == 'R');
		} else if ((rc = options_parse_submit(o, argc, argv, &i)) != 1) {
			/* handled, or an error */
		} else if (strcmp(arg, "-n") == 0) {
			o->value_only = true;
		} else if (strcmp(arg, "-v") == 0 || strcmp(arg, "-ov") == 0 ||
		    strncmp(arg, "-d", 2) == 0) {
			/* NOTE: -d gives no debug output yet, only what -v
			 * gives. */
			o->verbose = true;
		} else if (strncmp(arg, "-C", 2) == 0) {
			if ((value = options_value(argc, argv, &i, 2)) == NULL)
				rc = options_bad(arg);
			else
				o->config_file = value;
		} else if (strncmp(arg, "-D", 2) == 0) {
			if ((value = options_value(argc, argv, &i, 2)) == NULL) {
				rc = options_bad(arg);
			} else if (o->define_count >= CONFIG_DEFINES_MAX) {
				fprintf(stderr, "sluice: too many -D options (at "
				    "most %d)\n", CONFIG_DEFINES_MAX);
				rc = -1;
			} else {
				o->defines[o->define_count++] = value;
			}
		} else if (strncmp(arg, "-oX", 3) == 0) {
			if ((value = options_value(argc, argv, &i, 3)) == NULL)
				rc = options_bad(arg);
			else
				o->override_listen = value;
		} else if (strncmp(arg, "-L", 2) == 0) {
			if ((value = options_value(argc, argv, &i, 2)) == NULL) {
				rc = options_bad(arg);
			} else if (value[0] == '\0' ||
			    strlen(value) > LOG_SYSLOG_TAG_MAX) {
				fprintf(stderr, "sluice: the -L syslog tag must "
				    "have 1 to %d characters: \"%.64s\"\n",
				    LOG_SYSLOG_TAG_MAX, value);
				rc = -1;
			} else {
				o->syslog_tag = value;
			}
		} else if (strncmp(arg, "-oP", 3) == 0) {
			if ((value = options_value(argc, argv, &i, 3)) == NULL)
				rc = options_bad(arg);
			else
				o->pid_file = value;
		} else {
			rc = options_bad(arg);
		}
		if (rc < 0)
			goto fail;
	}

	o->args = argv + i;
	o->arg_count = argc - i;
	options_apply_program(o);
	if (o->queue_interval != NULL && o->action != OPTIONS_ACTION_DAEMON) {
		fprintf(stderr, "sluice: %s without -bd: the daemon (-bd) runs "
		    "the queue all the time, and there is no separate queue "
		    "runner\n", o->queue_interval);
		goto fail;
	}
	if (o->no_delivery && o->action != OPTIONS_ACTION_SUBMIT &&
	    o->action != OPTIONS_ACTION_DAEMON) {
		fprintf(stderr, "sluice: -N is supported only when submitting a "
		    "message and with -bd\n");
		goto fail;
	}
	if (options_check_args(o) < 0)
		goto fail;
	return 0;

fail:
	options_free(o);
	return -1;
}

void
options_free(struct options *o)
{
	queue_select_free(&o->select);
}

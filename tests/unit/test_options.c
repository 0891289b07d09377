/*
 * test_options.c - the command line in Exim's form: program names, the
 * -bp, -M and -q families, and the errors Exim gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "options.h"
#include "util.h"

#define ID1	"1tt1Jd-00000000CXd-1jGj"
#define ID2	"1tt1Jd-000CXd-DI"

/* Parses a NULL-terminated argument list; returns options_parse()'s
 * result. */
static int
parse(struct options *o, const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
		assert_true(argc < (int)ARRAY_SIZE(argv) - 1);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	return options_parse(argc, argv, o);
}

/* Parses with stderr redirected; returns what was printed (caller
 * frees). */
static char *
parse_error(const char *first, ...)
{
	char *argv[32], *text = NULL;
	size_t len = 0;
	struct options o;
	FILE *capture = open_memstream(&text, &len);
	int saved = dup(STDERR_FILENO), argc = 0, rc;
	FILE *tmp = tmpfile();
	va_list ap;

	assert_non_null(capture);
	assert_non_null(tmp);
	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;

	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	rc = options_parse(argc, argv, &o);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (rc == 0) {
		options_free(&o);
		fail_msg("%s ... was accepted", argv[1]);
	}
	rewind(tmp);
	for (int c; (c = fgetc(tmp)) != EOF;)
		fputc(c, capture);
	fclose(tmp);
	fclose(capture);
	return text;
}

static void
assert_error(char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("got \"%s\", want \"%s\"", got, want);
	free(got);
}

static void
program_names(void **state)
{
	struct options o;

	(void)state;
	assert_int_equal(parse(&o, "/usr/sbin/mailq", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_LIST_QUEUE);
	assert_int_equal(o.list_kind, QUEUE_LIST_ALL);
	options_free(&o);

	/* mailq still takes options. */
	assert_int_equal(parse(&o, "mailq", "-bpc", NULL), 0);
	assert_int_equal(o.list_kind, QUEUE_LIST_COUNT);
	options_free(&o);

	assert_int_equal(parse(&o, "/usr/sbin/runq", "-C", "x.conf", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_QUEUE_RUN);
	assert_string_equal(o.config_file, "x.conf");
	options_free(&o);

	assert_int_equal(parse(&o, "exim4", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_NONE);
	options_free(&o);
}

static void
listing_variants(void **state)
{
	static const struct {
		const char *option;
		enum queue_list_kind kind;
		bool unsorted;
	} cases[] = {
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
	struct options o;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(parse(&o, "sluice", cases[i].option, ID1, NULL),
		    0);
		if (o.list_kind != cases[i].kind ||
		    o.list_unsorted != cases[i].unsorted)
			fail_msg("%s: got kind %d unsorted %d", cases[i].option,
			    (int)o.list_kind, o.list_unsorted);
		assert_int_equal(o.arg_count, 1);
		options_free(&o);
	}
	assert_error(parse_error("sluice", "-bpx", NULL),
	    "sluice: unknown, malformed, or incomplete option -bpx\n");
}

static void
message_actions_take_the_rest(void **state)
{
	struct options o;

	(void)state;
	/* Everything after -Mf is an id, even "-v". */
	assert_error(parse_error("sluice", "-Mf", ID1, "-v", NULL),
	    "sluice: malformed message id -v after -Mf option\n");
	assert_int_equal(parse(&o, "sluice", "-Mrm", ID1, ID2, NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_MESSAGE);
	assert_int_equal(o.message_kind, MSG_ACTION_REMOVE);
	assert_int_equal(o.arg_count, 2);
	options_free(&o);

	/* -Mar: an id, then addresses that need not look like ids. */
	assert_int_equal(parse(&o, "sluice", "-Mar", ID1, "a@b.c", "-x", NULL),
	    0);
	assert_int_equal(o.message_kind, MSG_ACTION_ADD_RECIPIENTS);
	assert_int_equal(o.arg_count, 3);
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "-M", ID1, NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_DELIVER);
	assert_true(o.deliver_thaw);
	options_free(&o);
	assert_int_equal(parse(&o, "sluice", "-Mc", ID1, NULL), 0);
	assert_false(o.deliver_thaw);
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "-Mvl", ID2, NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_VIEW);
	assert_int_equal(o.view, OPTIONS_VIEW_LOG);
	options_free(&o);

	assert_error(parse_error("sluice", "-Mg", NULL),
	    "sluice: no message ids given after -Mg option\n");
	assert_error(parse_error("sluice", "-Mzz", ID1, NULL),
	    "sluice: unknown, malformed, or incomplete option -Mzz\n");
}

static void
queue_run_flags(void **state)
{
	static const struct {
		const char *option;
		enum queue_select_force force;
		bool first, two_stage, local;
	} cases[] = {
		{ "-q", QUEUE_SELECT_DUE, false, false, false },
		{ "-qf", QUEUE_SELECT_FORCE, false, false, false },
		{ "-qff", QUEUE_SELECT_FORCE_FROZEN, false, false, false },
		{ "-qi", QUEUE_SELECT_DUE, true, false, false },
		{ "-qqiff", QUEUE_SELECT_FORCE_FROZEN, true, true, false },
		{ "-qfl", QUEUE_SELECT_FORCE, false, false, true },
	};
	struct options o;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(parse(&o, "sluice", cases[i].option, NULL), 0);
		if (o.action != OPTIONS_ACTION_QUEUE_RUN ||
		    o.select.force != cases[i].force ||
		    o.select.first_only != cases[i].first ||
		    o.select.two_stage != cases[i].two_stage ||
		    o.select.local_only != cases[i].local)
			fail_msg("%s: got action %d force %d first %d two %d "
			    "local %d", cases[i].option, (int)o.action,
			    (int)o.select.force, o.select.first_only,
			    o.select.two_stage, o.select.local_only);
		options_free(&o);
	}

	assert_int_equal(parse(&o, "sluice", "-qf", ID1, ID2, NULL), 0);
	assert_string_equal(o.select.start_id, ID1);
	assert_string_equal(o.select.stop_id, ID2);
	options_free(&o);
	assert_error(parse_error("sluice", "-q", ID1, ID1, ID1, NULL),
	    "sluice: incompatible command-line options or arguments\n");
	assert_error(parse_error("sluice", "-qfff", NULL),
	    "sluice: bad time value -qfff: abandoned\n");
	assert_error(parse_error("sluice", "-qGhigh", NULL),
	    "sluice: named queues (-qG) are not supported\n");
}

static void
recipient_and_sender_matches(void **state)
{
	struct options o;

	(void)state;
	assert_int_equal(parse(&o, "sluice", "-Rrf", "^bob@", "-S", "alice",
	    NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_QUEUE_RUN);
	assert_string_equal(o.select.recipient_match, "^bob@");
	assert_true(o.select.recipient_regex);
	assert_string_equal(o.select.sender_match, "alice");
	assert_false(o.select.sender_regex);
	assert_int_equal(o.select.force, QUEUE_SELECT_FORCE);
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "-qRff", "example.net", NULL), 0);
	assert_int_equal(o.select.force, QUEUE_SELECT_FORCE_FROZEN);
	assert_string_equal(o.select.recipient_match, "example.net");
	options_free(&o);

	assert_error(parse_error("sluice", "-R", NULL),
	    "sluice: string expected after -R\n");
	assert_error(parse_error("sluice", "-Rx", "a", NULL),
	    "sluice: unknown, malformed, or incomplete option -Rx\n");
}

static void
daemon_with_interval(void **state)
{
	struct options o;
	char *error;

	(void)state;
	assert_int_equal(parse(&o, "sluice", "-bd", "-q30m", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_DAEMON);
	assert_string_equal(o.queue_interval, "-q30m");
	options_free(&o);
	assert_int_equal(parse(&o, "sluice", "-q1h", "-bdf", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_DAEMON);
	assert_true(o.foreground);
	options_free(&o);

	error = parse_error("sluice", "-q30m", NULL);
	assert_non_null(strstr(error, "-q30m without -bd"));
	free(error);
	assert_error(parse_error("sluice", "-bd", "-qf", NULL),
	    "sluice: incompatible command-line options or arguments\n");
	assert_error(parse_error("sluice", "-bp", "-Mf", ID1, NULL),
	    "sluice: incompatible command-line options or arguments\n");
}

static void
other_options(void **state)
{
	struct options o;

	(void)state;
	assert_int_equal(parse(&o, "sluice", "-bh", "192.0.2.1", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_HOST_CHECK);
	assert_string_equal(o.host_check, "192.0.2.1");
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "-n", "-bP", "spool_directory",
	    NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_PRINT_OPTIONS);
	assert_true(o.value_only);
	assert_int_equal(o.arg_count, 1);
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "--version", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_VERSION);
	options_free(&o);

	assert_int_equal(parse(&o, "sluice", "-v", "-qf", NULL), 0);
	assert_true(o.verbose);
	options_free(&o);

	assert_error(parse_error("sluice", "-bV", "extra", NULL),
	    "sluice: unknown, malformed, or incomplete option extra\n");
}

static void
syslog_tag(void **state)
{
	struct options o;

	(void)state;
	assert_int_equal(parse(&o, "exim", "-L", "mta-in", "-bd", NULL), 0);
	assert_string_equal(o.syslog_tag, "mta-in");
	assert_int_equal(o.action, OPTIONS_ACTION_DAEMON);
	options_free(&o);

	assert_int_equal(parse(&o, "exim", "-Lmta-out", "-q", NULL), 0);
	assert_string_equal(o.syslog_tag, "mta-out");
	options_free(&o);

	/* 32 characters at most, as Exim. */
	assert_int_equal(parse(&o, "exim", "-L",
	    "abcdefghijklmnopqrstuvwxyz012345", "-bV", NULL), 0);
	options_free(&o);
	assert_error(parse_error("exim", "-L",
	    "abcdefghijklmnopqrstuvwxyz0123456", "-bV", NULL),
	    "sluice: the -L syslog tag must have 1 to 32 characters: "
	    "\"abcdefghijklmnopqrstuvwxyz0123456\"\n");
	assert_error(parse_error("exim", "-L", "", "-bV", NULL),
	    "sluice: the -L syslog tag must have 1 to 32 characters: \"\"\n");
	assert_error(parse_error("exim", "-L", NULL),
	    "sluice: unknown, malformed, or incomplete option -L\n");
}

/* The shapes in which cron, PHP, mutt and git call sendmail. */
static void
submission(void **state)
{
	struct options o;

	(void)state;
	assert_int_equal(parse(&o, "sluice", "someone@example.net", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_SUBMIT);
	assert_true(o.dot_ends_message);
	assert_int_equal(o.arg_count, 1);
	options_free(&o);

	assert_int_equal(parse(&o, "/usr/sbin/sendmail", "-FCronDaemon",
	    "-i", "-odi", "-oem", "-oi", "-t", "-f", "user", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_SUBMIT);
	assert_true(o.extract_recipients);
	assert_false(o.dot_ends_message);
	assert_string_equal(o.full_name, "CronDaemon");
	assert_string_equal(o.sender, "user");
	assert_int_equal(o.delivery_mode, 'i');
	assert_int_equal(o.error_mode, OPTIONS_ERRORS_MAIL);
	assert_int_equal(o.arg_count, 0);
	options_free(&o);

	/* Debian cron: -B takes a glued value; mutt ends with "--". */
	assert_int_equal(parse(&o, "sendmail", "-i", "-B8BITMIME", "-oem",
	    "root", NULL), 0);
	assert_int_equal(o.arg_count, 1);
	assert_string_equal(o.args[0], "root");
	options_free(&o);
	assert_int_equal(parse(&o, "sendmail", "-oem", "-oi", "-B", "8BITMIME",
	    "--", "-odd@example.net", NULL), 0);
	assert_int_equal(o.arg_count, 1);
	assert_string_equal(o.args[0], "-odd@example.net");
	options_free(&o);

	assert_int_equal(parse(&o, "sendmail", "-oep", "-r", "", "a@b", NULL),
	    0);
	assert_int_equal(o.error_mode, OPTIONS_ERRORS_PRINT);
	assert_string_equal(o.sender, "");
	options_free(&o);

	assert_int_equal(parse(&o, "/usr/bin/rmail", "a@b", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_SUBMIT);
	assert_false(o.dot_ends_message);
	assert_int_equal(o.error_mode, OPTIONS_ERRORS_MAIL_EXIT_ZERO);
	options_free(&o);

	assert_int_equal(parse(&o, "newaliases", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_ALIASES);
	options_free(&o);

	assert_error(parse_error("sendmail", "-odx", "a@b", NULL),
	    "sluice: unknown, malformed, or incomplete option -odx\n");
	assert_error(parse_error("sendmail", "-oez", "a@b", NULL),
	    "sluice: unknown, malformed, or incomplete option -oez\n");
	assert_error(parse_error("sendmail", "-f", NULL),
	    "sluice: unknown, malformed, or incomplete option -f\n");
	assert_int_equal(parse(&o, "sendmail", "-bs", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_SUBMIT);
	assert_true(o.smtp_stdin);
	options_free(&o);

	assert_error(parse_error("sendmail", "-t", "-bs", NULL),
	    "sluice: incompatible command-line options or arguments\n");

	/* rsmtp is -bS. */
	assert_int_equal(parse(&o, "rsmtp", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_SUBMIT);
	assert_true(o.smtp_stdin);
	assert_true(o.smtp_batch);
	options_free(&o);
	assert_int_equal(parse(&o, "sluice", "-bS", NULL), 0);
	assert_true(o.smtp_batch);
	options_free(&o);
	assert_error(parse_error("sendmail", "-bS", "a@b", NULL),
	    "sluice: incompatible command-line options or arguments\n");

	/* -bt and -bv take addresses, or none to read them from stdin. */
	assert_int_equal(parse(&o, "sluice", "-bt", "a@b", "c", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_ROUTE_TEST);
	assert_int_equal(o.arg_count, 2);
	options_free(&o);
	assert_int_equal(parse(&o, "exim", "-v", "-bv", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_VERIFY);
	assert_true(o.verbose);
	assert_int_equal(o.arg_count, 0);
	options_free(&o);

	/* -N marks a submitted message, or makes the daemon pretend. */
	assert_int_equal(parse(&o, "sendmail", "-N", "a@b", NULL), 0);
	assert_true(o.no_delivery);
	options_free(&o);
	assert_int_equal(parse(&o, "sluice", "-bdf", "-N", NULL), 0);
	assert_int_equal(o.action, OPTIONS_ACTION_DAEMON);
	assert_true(o.no_delivery);
	options_free(&o);
	assert_error(parse_error("sluice", "-N", "-qf", NULL),
	    "sluice: -N is supported only when submitting a message and "
	    "with -bd\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(program_names),
		cmocka_unit_test(listing_variants),
		cmocka_unit_test(message_actions_take_the_rest),
		cmocka_unit_test(queue_run_flags),
		cmocka_unit_test(recipient_and_sender_matches),
		cmocka_unit_test(daemon_with_interval),
		cmocka_unit_test(other_options),
		cmocka_unit_test(syslog_tag),
		cmocka_unit_test(submission),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

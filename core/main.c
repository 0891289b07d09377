/*
 * main.c - the sluice command line: reads the options (core/options.c),
 * loads the configuration and runs the action they name.
 *
 * One binary serves every name an Exim installation has: "exim",
 * "exim4", "sluice" and "sendmail" take Exim's options, "mailq" lists
 * the queue, "runq" runs it, "rmail" reads a message and "newaliases"
 * does nothing (make install creates those names as links).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "options.h"
#include "permission.h"
#include "policy_tables.h"
#include "queue_cli.h"
#include "retry.h"
#include "route_test.h"
#include "sendmail.h"
#include "smtp_test_session.h"
#include "util.h"
#include "version.h"

static int
main_print_options(const struct config *config, const struct options *o)
{
	int rc = 0;

	if (o->arg_count == 0)
		return config_print(stdout, config, NULL, o->value_only) < 0;
	for (int i = 0; i < o->arg_count; i++)
		if (config_print(stdout, config, o->args[i], o->value_only) < 0)
			rc = 1;
	return rc;
}

static int
main_daemon(struct config *config, const struct options *o, char **argv)
{
	struct daemon_options options = {
		.foreground = o->foreground,
		.override_listen = o->override_listen,
		.pid_file = o->pid_file,
		.dont_deliver = o->no_delivery,
		.argv = (const char *const *)argv,
	};

	/* Exim's daemon starts a queue runner every interval; sluice's
	 * attempts each message when it is due, so the interval is not
	 * needed. */
	if (o->queue_interval != NULL)
		log_write(LOG_MAIN, NULL, "%s ignored: the daemon attempts every "
		    "message when it is due and needs no queue run interval",
		    o->queue_interval);
	return daemon_run(config, &options);
}

/* -bpt NAME: prints a policy table as the daemon last saved it. */
static int
main_dump_table(const struct config *config, const char *name)
{
	char *error = NULL;

	if (policy_tables_configure(config->day_rollover,
	    config->policy_table_max_entries, &error) < 0 ||
	    policy_tables_dump(config->spool_directory, name, stdout,
	    &error) < 0) {
		fprintf(stderr, "sluice: -bpt: %s\n", error);
		free(error);
		return 1;
	}
	return 0;
}

/*
 * -L TAG: admin users only, as in Exim, so that others cannot write
 * lines under a tag of their choosing. Returns 0, or 1 after printing
 * why the tag is refused.
 */
static int
main_syslog_tag(const struct config *config, const char *tag)
{
	struct permission_admins admins;
	struct permission_caller self;
	char *error = NULL;

	permission_caller_self(&self);
	if (self.uid != 0) {
		if (permission_admins_load(config, &admins, &error) < 0) {
			fprintf(stderr, "sluice: %s\n", error);
			free(error);
			return 1;
		}
		if (!permission_is_admin(&admins, &self)) {
			fprintf(stderr, "sluice: -L is allowed only for admin "
			    "users\n");
			return 1;
		}
	}
	if (log_force_syslog(tag) < 0)
		fatal_bug("-L tag not checked by options_parse()");
	return 0;
}

static int
main_run(struct config *config, struct options *o, char **argv)
{
	switch (o->action) {
	case OPTIONS_ACTION_VERSION:
		version_print_config(stdout, config->config_file);
		return 0;
	case OPTIONS_ACTION_PRINT_OPTIONS:
		return main_print_options(config, o);
	case OPTIONS_ACTION_TEST_RETRY:
		return retry_test(config, o->args, o->arg_count, stdout);
	case OPTIONS_ACTION_DUMP_TABLE:
		return main_dump_table(config, o->table_name);
	case OPTIONS_ACTION_SCHEDULER:
		return queue_cli_scheduler(config, o);
	case OPTIONS_ACTION_ROUTE_TEST:
	case OPTIONS_ACTION_VERIFY:
		return route_test_run(config, o->args, o->arg_count,
		    o->action == OPTIONS_ACTION_VERIFY, o->verbose);
	case OPTIONS_ACTION_HOST_CHECK:
		return smtp_test_session_run(config, o->host_check);
	case OPTIONS_ACTION_DAEMON:
		return main_daemon(config, o, argv);
	case OPTIONS_ACTION_LIST_QUEUE:
		return queue_cli_list(config, o);
	case OPTIONS_ACTION_VIEW:
		return queue_cli_view(config, o);
	case OPTIONS_ACTION_MESSAGE:
		return queue_cli_message(config, o);
	case OPTIONS_ACTION_DELIVER:
		return queue_cli_deliver(config, o);
	case OPTIONS_ACTION_GIVE_UP:
		return queue_cli_give_up(config, o);
	case OPTIONS_ACTION_QUEUE_RUN:
		return queue_cli_run(config, o);
	case OPTIONS_ACTION_SUBMIT:
		return sendmail_run(config, o);
	case OPTIONS_ACTION_ALIASES:
		/* NOTE: bi_command is not an option yet; without it Exim
		 * does nothing here either. */
		return 0;
	case OPTIONS_ACTION_NONE:
	case OPTIONS_ACTION_HELP:
		break;
	}
	fatal_bug("unhandled action %d", (int)o->action);
}

int
main(int argc, char **argv)
{
	struct options o;
	struct config *config = NULL;
	char *error = NULL;
	int rc;

#ifdef SLUICE_TEST_HOOKS
	clock_fake_init_from_env();
#endif
	if (options_parse(argc, argv, &o) < 0)
		return 1;
	if (o.action == OPTIONS_ACTION_HELP) {
		options_usage(stdout);
		options_free(&o);
		return 0;
	}
	if (o.action == OPTIONS_ACTION_NONE) {
		options_usage(stderr);
		options_free(&o);
		return 1;
	}
	/* As Exim, -bV prints its first lines even when the configuration
	 * then turns out to be broken. */
	if (o.action == OPTIONS_ACTION_VERSION) {
		version_print(stdout);
		fflush(stdout);
	}

	if (config_load(o.config_file, o.defines, o.define_count, &config,
	    &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		log_panic_early(config, error);
		free(error);
		config_free(config);
		options_free(&o);
		return 1;
	}
	if (o.syslog_tag != NULL && main_syslog_tag(config, o.syslog_tag) != 0) {
		config_free(config);
		options_free(&o);
		return 1;
	}
	if (log_configure(config, &error) < 0) {
		fprintf(stderr, "sluice: %s: %s\n", config->config_file, error);
		log_panic_early(config, error);
		free(error);
		config_free(config);
		options_free(&o);
		return 1;
	}

	rc = main_run(config, &o, argv);

	log_close();
	config_free(config);
	options_free(&o);
	return rc;
}

/*
 * main.c - the sluice command line.
 *
 * Options follow Exim's: -bd/-bdf run the daemon, -bP prints options,
 * -bV the version, -C picks the configuration file, -D defines a macro,
 * -oX and -oP override the listeners and the pid file. An option may
 * take its value glued (-Cfile) or as the next argument (-C file).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

#define DEFAULT_CONFIG_FILE SLUICE_SYSCONFDIR "/sluice/sluice.conf"

enum main_action {
	ACTION_NONE,
	ACTION_DAEMON,
	ACTION_PRINT_OPTIONS,
	ACTION_VERSION,
	ACTION_HELP,
};

struct main_args {
	enum main_action action;
	bool foreground;
	bool value_only;		/* -n with -bP */
	const char *config_file;
	const char *defines[CONFIG_DEFINES_MAX];
	size_t define_count;
	const char *override_listen;
	const char *pid_file;
	char **names;			/* -bP arguments */
	int name_count;
};

static void
main_usage(FILE *out)
{
	fprintf(out,
	    "usage: sluice [options]\n"
	    "  -bd            run the SMTP daemon in the background\n"
	    "  -bdf           run the SMTP daemon in the foreground\n"
	    "  -bP [name...]  print configuration options (-n: values only)\n"
	    "  -bV            print the version and check the configuration\n"
	    "  -C file        use this configuration file (default %s)\n"
	    "  -D NAME[=val]  define a configuration macro (up to %d)\n"
	    "  -oX list       listen on these ports or addresses instead\n"
	    "  -oP file       write the daemon's pid to this file\n",
	    DEFAULT_CONFIG_FILE, CONFIG_DEFINES_MAX);
}

static int
main_bad_option(const char *option)
{
	fprintf(stderr, "sluice: unknown, malformed, or incomplete option %s\n",
	    option);
	return -1;
}

/* Returns the value of an option that takes one: glued or the next
 * argument. */
static const char *
main_option_value(int argc, char **argv, int *i, size_t prefix_len)
{
	if (argv[*i][prefix_len] != '\0')
		return argv[*i] + prefix_len;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int
main_parse_args(int argc, char **argv, struct main_args *args)
{
	int i;

	memset(args, 0, sizeof(*args));
	args->config_file = DEFAULT_CONFIG_FILE;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-')
			break;
		if (strcmp(arg, "--help") == 0) {
			args->action = ACTION_HELP;
		} else if (strcmp(arg, "--version") == 0 || strcmp(arg, "-bV") == 0) {
			args->action = ACTION_VERSION;
		} else if (strcmp(arg, "-bd") == 0) {
			args->action = ACTION_DAEMON;
		} else if (strcmp(arg, "-bdf") == 0) {
			args->action = ACTION_DAEMON;
			args->foreground = true;
		} else if (strcmp(arg, "-bP") == 0) {
			args->action = ACTION_PRINT_OPTIONS;
		} else if (strcmp(arg, "-n") == 0) {
			args->value_only = true;
		} else if (strncmp(arg, "-C", 2) == 0) {
			if ((value = main_option_value(argc, argv, &i, 2)) == NULL)
				return main_bad_option(arg);
			args->config_file = value;
		} else if (strncmp(arg, "-D", 2) == 0) {
			if ((value = main_option_value(argc, argv, &i, 2)) == NULL)
				return main_bad_option(arg);
			if (args->define_count >= CONFIG_DEFINES_MAX) {
				fprintf(stderr, "sluice: too many -D options (at most %d)\n",
				    CONFIG_DEFINES_MAX);
				return -1;
			}
			args->defines[args->define_count++] = value;
		} else if (strncmp(arg, "-oX", 3) == 0) {
			if ((value = main_option_value(argc, argv, &i, 3)) == NULL)
				return main_bad_option(arg);
			args->override_listen = value;
		} else if (strncmp(arg, "-oP", 3) == 0) {
			if ((value = main_option_value(argc, argv, &i, 3)) == NULL)
				return main_bad_option(arg);
			args->pid_file = value;
		} else {
			return main_bad_option(arg);
		}
	}

	args->names = argv + i;
	args->name_count = argc - i;
	if (args->name_count > 0 && args->action != ACTION_PRINT_OPTIONS)
		return main_bad_option(argv[i]);
	return 0;
}

static int
main_print_options(const struct config *config, const struct main_args *args)
{
	int rc = 0;

	if (args->name_count == 0)
		return config_print(stdout, config, NULL, args->value_only) < 0;
	for (int i = 0; i < args->name_count; i++)
		if (config_print(stdout, config, args->names[i],
		    args->value_only) < 0)
			rc = 1;
	return rc;
}

int
main(int argc, char **argv)
{
	struct main_args args;
	struct config *config = NULL;
	char *error = NULL;
	int rc;

#ifdef SLUICE_TEST_HOOKS
	clock_fake_init_from_env();
#endif
	if (main_parse_args(argc, argv, &args) < 0)
		return 1;
	if (args.action == ACTION_HELP) {
		main_usage(stdout);
		return 0;
	}
	if (args.action == ACTION_NONE) {
		main_usage(stderr);
		return 1;
	}

	if (config_load(args.config_file, args.defines, args.define_count,
	    &config, &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		log_panic_early(config, error);
		free(error);
		config_free(config);
		return 1;
	}
	if (log_configure(config, &error) < 0) {
		fprintf(stderr, "sluice: %s: %s\n", config->config_file, error);
		log_panic_early(config, error);
		free(error);
		config_free(config);
		return 1;
	}

	switch (args.action) {
	case ACTION_VERSION:
		printf("sluice version %s\n", PACKAGE_VERSION);
		printf("Configuration file is %s\n", config->config_file);
		rc = 0;
		break;
	case ACTION_PRINT_OPTIONS:
		rc = main_print_options(config, &args);
		break;
	case ACTION_DAEMON: {
		struct daemon_options options = {
			.foreground = args.foreground,
			.override_listen = args.override_listen,
			.pid_file = args.pid_file,
			.argv = (const char *const *)argv,
		};

		rc = daemon_run(config, &options);
		break;
	}
	default:
		fatal_bug("unhandled action %d", (int)args.action);
	}

	log_close();
	config_free(config);
	return rc;
}

/*
 * daemon.h - the listening daemon: listeners, signals, pid file,
 * privilege drop and the event loop that owns every connection.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stdbool.h>

#include "config.h"

struct daemon_options {
	bool foreground;		/* -bdf: do not detach */
	const char *override_listen;	/* -oX list, or NULL */
	const char *pid_file;		/* -oP path, or NULL */
	bool dont_deliver;		/* -N: pretend every delivery */
	const char *const *argv;	/* for logging and future re-exec */
};

/* Runs the daemon until SIGTERM or SIGINT; returns the exit status. */
int daemon_run(struct config *config, const struct daemon_options *options);

#endif

/*
 * daemon_reload.c - SIGHUP reload (see daemon_reload.h).
 *
 * Order: load the file, restore the options that need a restart, check
 * the relay lists, then build the new policy state. Only when all of
 * that succeeded do the SMTP server and the logs switch, so a failure
 * at any step leaves the running configuration and policy in place.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_reload.h"
#include "log.h"
#include "match.h"
#include "policy.h"
#include "smtp_server.h"
#include "util.h"

enum daemon_reload_type {
	DAEMON_RELOAD_STRING,
	DAEMON_RELOAD_BOOL,
	DAEMON_RELOAD_INT,
	DAEMON_RELOAD_MSGID_FORMAT,
};

/* Options a running daemon keeps until it is restarted. */
static const struct {
	const char *name;
	enum daemon_reload_type type;
	size_t offset;
	const char *why;
} daemon_reload_fixed[] = {
#define FIXED(name, type, why) \
	{ #name, DAEMON_RELOAD_##type, offsetof(struct config, name), why }
	FIXED(spool_directory, STRING, "the spool is open"),
	FIXED(split_spool_directory, BOOL, "the spool is open"),
	FIXED(exim_user, STRING, "privileges are dropped"),
	FIXED(exim_group, STRING, "privileges are dropped"),
	FIXED(message_id_format, MSGID_FORMAT, "ids are made at start-up"),
	FIXED(local_interfaces, STRING, "listeners are bound at start-up"),
	FIXED(daemon_smtp_ports, STRING, "listeners are bound at start-up"),
	FIXED(pid_file_path, STRING, "the pid file is written"),
	FIXED(log_file_path, STRING, "log files are created at start-up"),
	FIXED(smarthost, STRING, "the queue keeps its start-up settings"),
	FIXED(delivery_port, INT, "the queue keeps its start-up settings"),
	FIXED(dns_servers, STRING, "the resolver is set up at start-up"),
	FIXED(dns_port, INT, "the resolver is set up at start-up"),
	FIXED(admin_groups, STRING, "the control socket keeps its start-up "
	    "settings"),
#undef FIXED
};

/* Gives next the running value of every fixed option that changed,
 * with a log line for each. */
static void
daemon_reload_keep_fixed(const struct config *running, struct config *next)
{
	for (size_t i = 0; i < ARRAY_SIZE(daemon_reload_fixed); i++) {
		size_t off = daemon_reload_fixed[i].offset;
		const void *old = (const char *)running + off;
		void *new = (char *)next + off;
		bool changed = false;

		switch (daemon_reload_fixed[i].type) {
		case DAEMON_RELOAD_STRING:
			if ((changed = strcmp(*(char *const *)old,
			    *(char **)new) != 0)) {
				free(*(char **)new);
				*(char **)new = xstrdup(*(char *const *)old);
			}
			break;
		case DAEMON_RELOAD_BOOL:
			changed = *(const bool *)old != *(bool *)new;
			*(bool *)new = *(const bool *)old;
			break;
		case DAEMON_RELOAD_INT:
			changed = *(const int *)old != *(int *)new;
			*(int *)new = *(const int *)old;
			break;
		case DAEMON_RELOAD_MSGID_FORMAT:
			changed = *(const enum msgid_format *)old !=
			    *(enum msgid_format *)new;
			*(enum msgid_format *)new = *(const enum msgid_format *)old;
			break;
		}
		if (changed)
			log_write(LOG_MAIN, NULL, "SIGHUP received: %s changed but "
			    "keeps its running value (%s); restart the daemon to "
			    "apply it", daemon_reload_fixed[i].name,
			    daemon_reload_fixed[i].why);
	}
}

/* The checks smtp_server_init() makes, made first so that it cannot
 * fail once the reload has gone past the point of no return. */
static int
daemon_reload_check_lists(const struct config *config, char **error)
{
	if (match_check_named_domainlist(config, "local_domains", error) < 0 ||
	    match_check_named_domainlist(config, "relay_to_domains",
	    error) < 0 ||
	    match_check_named_hostlist(config, "relay_from_hosts", error) < 0 ||
	    match_check_hostlist(config, "smtp_reserve_hosts",
	    config->smtp_reserve_hosts, error) < 0)
		return -1;
	return 0;
}

struct config *
daemon_reload(struct event_base *base, const struct config *running,
    struct spool_store *store)
{
	struct config *next = NULL;
	char *error = NULL;

	/* NOTE: -D macros given when the daemon started are not applied
	 * again, since the daemon does not keep them. */
	if (config_load(running->config_file, NULL, 0, &next, &error) < 0)
		goto fail;
	daemon_reload_keep_fixed(running, next);
	if (daemon_reload_check_lists(next, &error) < 0 ||
	    policy_reload(next, &error) < 0)
		goto fail;

	/* From here on nothing fails: the lists were checked, and
	 * log_configure() reads only settings that were checked when the
	 * daemon started or that keep their running values. */
	if (smtp_server_init(base, next, store, &error) < 0)
		fatal_bug("relay lists passed their check, then failed: %s",
		    error);
	if (log_configure(next, &error) < 0) {
		log_write(LOG_MAIN, NULL, "SIGHUP received: log_selector not "
		    "applied: %s", error);
		free(error);
	}
	log_write(LOG_MAIN, NULL, "SIGHUP received: configuration and policy "
	    "reloaded");
	return next;

fail:
	log_write(LOG_MAIN, NULL, "SIGHUP received: reload failed: %s", error);
	free(error);
	config_free(next);
	return NULL;
}

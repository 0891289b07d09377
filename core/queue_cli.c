/*
 * queue_cli.c - the queue tools of the command line (see queue_cli.h).
 *
 * A request to the daemon is one connection per command: "message ...",
 * "deliver ..." or "run ..." (queue_control.h). Its reply lines "out
 * TEXT" are printed on stdout as they come, and "exit N" gives the exit
 * status. The first connection decides for the whole command whether a
 * daemon runs. When none does, the same work runs here, with the
 * daemon's own modules on a private event loop.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "clock.h"
#include "control.h"
#include "dns.h"
#include "log.h"
#include "log_line.h"
#include "msg_action.h"
#include "permission.h"
#include "queue.h"
#include "queue_cli.h"
#include "queue_control.h"
#include "queue_list.h"
#include "queue_run.h"
#include "queue_view.h"
#include "spool_store.h"
#include "util.h"

/* Longest reply line accepted from the daemon. */
#define QUEUE_CLI_REPLY_LINE_MAX	(1024 * 1024)

/* queue_cli_ask_daemon(): no daemon listens on the control socket. */
#define QUEUE_CLI_NO_DAEMON	(-2)

/* The daemon's modules, run in this process when no daemon runs. */
struct queue_cli_local {
	struct event_base *base;
	struct spool_store *store;
	struct dns_resolver *resolver;
	struct queue *queue;
	bool done;			/* the current step has ended */
	bool drained;			/* the queue has shut down */
	int status;
	size_t attempted;
};

static bool
queue_cli_is_admin(const struct config *config)
{
	struct permission_admins admins;
	struct permission_caller self;
	char *error = NULL;

	permission_caller_self(&self);
	if (self.uid == 0)
		return true;
	if (permission_admins_load(config, &admins, &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		return false;
	}
	return permission_is_admin(&admins, &self);
}

/* Prints one reply line; returns true at the last one. */
static bool
queue_cli_reply_line(const char *line, int *status)
{
	size_t out_len = strlen(QUEUE_CONTROL_OUT);
	size_t exit_len = strlen(QUEUE_CONTROL_EXIT);
	size_t log_len = strlen(QUEUE_CONTROL_LOG);

	if (strncmp(line, QUEUE_CONTROL_OUT, out_len) == 0) {
		printf("%s\n", line + out_len);
	} else if (strncmp(line, QUEUE_CONTROL_LOG, log_len) == 0) {
		fprintf(stderr, "LOG: MAIN\n  %s\n", line + log_len);
	} else if (strncmp(line, QUEUE_CONTROL_EXIT, exit_len) == 0) {
		*status = atoi(line + exit_len) != 0 ? 1 : 0;
	} else if (strcmp(line, "ok") == 0) {
		return true;
	} else if (strncmp(line, "error: ", 7) == 0) {
		fprintf(stderr, "sluice: the daemon rejected the request: %s\n",
		    line + 7);
		*status = 1;
		return true;
	}
	return false;
}

/*
 * Sends command to the running daemon and prints its reply. Returns the
 * exit status, or QUEUE_CLI_NO_DAEMON when no daemon listens.
 */
static int
queue_cli_ask_daemon(const struct config *config, const char *command)
{
	char *path = xasprintf("%s/%s", config->spool_directory,
	    CONTROL_SOCKET_NAME);
	char *request = xasprintf("%s\n", command);
	char *line = NULL;
	size_t line_size = 0, sent = 0, len = strlen(request);
	int fd, status = 1;
	bool ended = false;
	ssize_t n;
	FILE *reply;

	fd = control_connect(path);
	if (fd < 0) {
		int saved = errno;

		free(request);
		/* No socket, a stale one, or one this user may not reach:
		 * act without the daemon, as far as permissions allow. */
		if (saved == ENOENT || saved == ECONNREFUSED ||
		    saved == EACCES) {
			free(path);
			return QUEUE_CLI_NO_DAEMON;
		}
		fprintf(stderr, "sluice: cannot reach the daemon at %s: %s\n",
		    path, strerror(saved));
		free(path);
		return 1;
	}
	free(path);
	while (sent < len) {
		n = write(fd, request + sent, len - sent);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "sluice: cannot send a request to the "
			    "daemon: %s\n", strerror(errno));
			free(request);
			close(fd);
			return 1;
		}
		sent += (size_t)n;
	}
	free(request);

	if ((reply = fdopen(fd, "r")) == NULL)
		fatal("cannot read the daemon's reply");
	while (!ended && (n = getline(&line, &line_size, reply)) > 0) {
		if ((size_t)n > QUEUE_CLI_REPLY_LINE_MAX) {
			fprintf(stderr, "sluice: the daemon's reply has a line "
			    "longer than %d bytes\n", QUEUE_CLI_REPLY_LINE_MAX);
			break;
		}
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		ended = queue_cli_reply_line(line, &status);
	}
	if (!ended) {
		fprintf(stderr, "sluice: the daemon closed the connection "
		    "before its reply was complete\n");
		status = 1;
	}
	free(line);
	fclose(reply);
	fflush(stdout);
	return status;
}

/* Switches to exim_user for good when started as root, so the files
 * written here belong to the daemon's user, as the daemon's own do. */
static int
queue_cli_become_exim_user(const struct config *config)
{
	struct passwd *pw;
	gid_t gid;

	if (geteuid() != 0 || config->exim_user == NULL ||
	    config->exim_user[0] == '\0')
		return 0;
	if ((pw = getpwnam(config->exim_user)) == NULL) {
		fprintf(stderr, "sluice: exim_user \"%s\" is not a known user\n",
		    config->exim_user);
		return -1;
	}
	gid = pw->pw_gid;
	if (config->exim_group != NULL && config->exim_group[0] != '\0') {
		struct group *gr = getgrnam(config->exim_group);

		if (gr == NULL) {
			fprintf(stderr, "sluice: exim_group \"%s\" is not a known "
			    "group\n", config->exim_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		fprintf(stderr, "sluice: cannot switch to exim_user %s: %s\n",
		    config->exim_user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Starts the spool store (and for deliveries the resolver and queue) on
 * a private event loop. Returns 0, or -1 after printing why not. */
static int
queue_cli_local_start(struct queue_cli_local *local,
    const struct config *config, bool with_queue)
{
	struct dns_options dns;
	char *error = NULL;

	memset(local, 0, sizeof(*local));
	if (queue_cli_become_exim_user(config) < 0)
		return -1;
	if (evthread_use_pthreads() < 0 ||
	    (local->base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	signal(SIGPIPE, SIG_IGN);
	local->store = spool_store_new(local->base, config->spool_directory,
	    config->split_spool_directory, NULL, &error);
	if (local->store == NULL)
		goto fail;
	if (!with_queue)
		return 0;
	dns_options_from_config(&dns, config);
	if ((local->resolver = dns_resolver_new(local->base, &dns,
	    &error)) == NULL)
		goto fail;
	local->queue = queue_new(local->base, config, local->store,
	    local->resolver);
	return 0;

fail:
	fprintf(stderr, "sluice: %s\n", error);
	free(error);
	return -1;
}

/* Runs the loop until the current step has ended. */
static void
queue_cli_local_wait(struct queue_cli_local *local, bool *flag)
{
	while (!*flag)
		if (event_base_loop(local->base, EVLOOP_ONCE) < 0)
			fatalx("the event loop failed");
}

static void
queue_cli_local_drained_cb(void *arg)
{
	struct queue_cli_local *local = arg;

	local->drained = true;
}

/* Lets queued spool writes finish and frees everything. Accepts a
 * partly started local. */
static void
queue_cli_local_stop(struct queue_cli_local *local)
{
	if (local->queue != NULL) {
		queue_shutdown(local->queue, queue_cli_local_drained_cb, local);
		queue_cli_local_wait(local, &local->drained);
	}
	spool_store_free(local->store);
	queue_free(local->queue);
	dns_resolver_free(local->resolver);
	if (local->base != NULL)
		event_base_free(local->base);
}

/* ---- -bp and -Mv* ---- */

int
queue_cli_list(const struct config *config, const struct options *o)
{
	struct queue_list_options list = {
		.kind = o->list_kind,
		.unsorted = o->list_unsorted,
		.ids = (const char *const *)o->args,
		.id_count = (size_t)o->arg_count,
	};

	if (!queue_cli_is_admin(config)) {
		fprintf(stderr, "sluice: permission denied\n");
		return 1;
	}
	if (queue_list_run(stdout, config, &list, clock_now()) < 0)
		return 1;
	return fflush(stdout) == 0 ? 0 : 1;
}

int
queue_cli_view(const struct config *config, const struct options *o)
{
	int rc;

	if (o->arg_count > 1) {
		printf("*** Only one message can be listed at once\n");
		return 1;
	}
	if (!queue_cli_is_admin(config)) {
		printf("Permission denied\n");
		return 1;
	}
	rc = queue_view_print(stdout, config, o->view, o->args[0]);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}

/* ---- -Mf, -Mt, -Mrm, -Mmd, -Mmad, -Mar, -Mes ---- */

static char *
queue_cli_message_command(const struct options *o, const char *id,
    char **addresses, int address_count)
{
	char *quoted = control_quote(id);
	char *command = xasprintf("message %s %s",
	    queue_control_kind_name((int)o->message_kind), quoted);

	free(quoted);
	for (int i = 0; i < address_count; i++) {
		char *joined;

		quoted = control_quote(addresses[i]);
		joined = xasprintf("%s %s", command, quoted);
		free(quoted);
		free(command);
		command = joined;
	}
	return command;
}

static void
queue_cli_action_done(void *arg, struct msg_action_result *result)
{
	struct queue_cli_local *local = arg;

	fputs(result->output, stdout);
	local->status = result->status;
	local->done = true;
	msg_action_result_free(result);
}

/* Runs one action in this process. */
static int
queue_cli_local_action(struct queue_cli_local *local,
    const struct config *config, const struct options *o, const char *id,
    char **addresses, int address_count, bool admin)
{
	struct msg_action_request req;
	char user[64];

	permission_user_name(getuid(), user, sizeof(user));
	memset(&req, 0, sizeof(req));
	req.kind = o->message_kind;
	req.id = id;
	req.addresses = (const char *const *)addresses;
	req.address_count = (size_t)address_count;
	req.caller_uid = getuid();
	req.caller_admin = admin;
	req.user = user;
	local->done = false;
	msg_action_run(local->store, config, &req, queue_cli_action_done, local);
	queue_cli_local_wait(local, &local->done);
	return local->status;
}

int
queue_cli_message(const struct config *config, const struct options *o)
{
	bool with_addresses = o->message_kind == MSG_ACTION_ADD_RECIPIENTS ||
	    o->message_kind == MSG_ACTION_MARK_DELIVERED ||
	    o->message_kind == MSG_ACTION_EDIT_SENDER;
	int id_count = with_addresses ? 1 : o->arg_count;
	char **addresses = with_addresses ? o->args + 1 : NULL;
	int address_count = with_addresses ? o->arg_count - 1 : 0;
	struct queue_cli_local local;
	bool local_started = false, admin = false;
	int status = 0, rc = 0;

	if (address_count > MSG_ACTION_ADDRESSES_MAX) {
		fprintf(stderr, "sluice: at most %d addresses can follow %s\n",
		    MSG_ACTION_ADDRESSES_MAX, o->action_option);
		return 1;
	}
	for (int i = 0; i < id_count; i++) {
		const char *id = o->args[i];

		if (!local_started) {
			char *command = queue_cli_message_command(o, id,
			    addresses, address_count);

			rc = queue_cli_ask_daemon(config, command);
			free(command);
			if (rc != QUEUE_CLI_NO_DAEMON) {
				status |= rc;
				continue;
			}
			/* No daemon: act here, as far as this user may. */
			admin = queue_cli_is_admin(config);
			if (!admin) {
				printf("Permission denied\n");
				status = 1;
				continue;
			}
			if (queue_cli_local_start(&local, config, false) < 0)
				return 1;
			local_started = true;
		}
		status |= queue_cli_local_action(&local, config, o, id,
		    addresses, address_count, admin);
	}
	if (local_started)
		queue_cli_local_stop(&local);
	fflush(stdout);
	return status;
}

/* ---- -M, -Mc, -q, -R, -S ---- */

/* -v with no daemon: every main log line of a message, as the run here
 * writes it, in the shape of Exim's -v. Only this run's messages are
 * attempted in this process, so every such line is one of theirs. */
static void
queue_cli_verbose_line(const char *msgid, const struct timeval *tv,
    const char *text)
{
	(void)msgid;
	(void)tv;
	fprintf(stderr, "LOG: MAIN\n  %.*s\n", (int)strcspn(text, "\n"),
	    text);
}

static void
queue_cli_run_done(void *arg, size_t attempted)
{
	struct queue_cli_local *local = arg;

	local->attempted += attempted;
	local->done = true;
}

int
queue_cli_deliver(const struct config *config, const struct options *o)
{
	struct queue_cli_local local;
	bool local_started = false;
	int status = 0;

	if (!queue_cli_is_admin(config)) {
		fprintf(stderr, "sluice: Permission denied\n");
		return 1;
	}
	for (int i = 0; i < o->arg_count; i++) {
		const char *id = o->args[i];

		if (o->verbose)
			fprintf(stderr, "delivering %s\n", id);
		if (!local_started) {
			char *command = xasprintf("deliver %s %s%s",
			    o->deliver_thaw ? "thaw" : "keep-frozen", id,
			    o->verbose ? " verbose" : "");
			int rc = queue_cli_ask_daemon(config, command);

			free(command);
			if (rc != QUEUE_CLI_NO_DAEMON) {
				status |= rc;
				continue;
			}
			if (queue_cli_local_start(&local, config, true) < 0)
				return 1;
			local_started = true;
			if (o->verbose)
				log_set_watch_hook(queue_cli_verbose_line);
		}
		local.done = false;
		queue_run_deliver(local.queue, config, id,
		    o->deliver_thaw ? QUEUE_FORCE_THAW : 0, queue_cli_run_done,
		    &local);
		queue_cli_local_wait(&local, &local.done);
	}
	if (local_started) {
		queue_cli_local_stop(&local);
		log_set_watch_hook(NULL);
	}
	return status;
}

/* -v prints the run's start and end as Exim's -v prints log lines. */
static void
queue_cli_run_verbose(const struct options *o, bool start)
{
	char flags[16], text[LOG_TEXT_MAX + 1];
	struct log_queue_run line = {
		.start = start,
		.pid = (long)getpid(),
		.flags = flags,
		.recipient_match = o->select.recipient_match,
		.recipient_regex = o->select.recipient_regex,
		.sender_match = o->select.sender_match,
		.sender_regex = o->select.sender_regex,
	};

	if (!o->verbose)
		return;
	queue_select_flags(&o->select, flags, sizeof(flags));
	log_line_format_queue_run_options(text, sizeof(text), &line);
	fprintf(stderr, "LOG: queue_run MAIN\n  %s\n", text);
}

int
queue_cli_run(const struct config *config, struct options *o)
{
	struct queue_cli_local local;
	char *error = NULL, *words, *command;
	int rc;

	if (!queue_cli_is_admin(config)) {
		fprintf(stderr, "sluice: permission denied\n");
		return 1;
	}
	if (queue_select_prepare(&o->select, &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		return 1;
	}
	queue_cli_run_verbose(o, true);
	words = queue_select_encode(&o->select);
	command = xasprintf("run %s%s", o->verbose ? "verbose " : "", words);
	free(words);
	rc = queue_cli_ask_daemon(config, command);
	free(command);
	if (rc == QUEUE_CLI_NO_DAEMON) {
		if (queue_cli_local_start(&local, config, true) < 0)
			return 1;
		if (o->verbose)
			log_set_watch_hook(queue_cli_verbose_line);
		queue_run_start(local.queue, config, &o->select, (long)getpid(),
		    false, queue_cli_run_done, &local);
		queue_cli_local_wait(&local, &local.done);
		queue_cli_local_stop(&local);
		log_set_watch_hook(NULL);
		rc = 0;
	}
	queue_cli_run_verbose(o, false);
	return rc;
}

int
queue_cli_give_up(const struct config *config, const struct options *o)
{
	struct options give_up = *o;

	/* The same path as -Mrm: the daemon acts, or this process when no
	 * daemon runs, and the bounce is queued like any message. */
	give_up.message_kind = MSG_ACTION_GIVE_UP;
	return queue_cli_message(config, &give_up);
}

int
queue_cli_scheduler(const struct config *config, const struct options *o)
{
	char command[CONTROL_LINE_MAX];
	size_t used;
	int rc;

	used = strlcpy_s(command, o->scheduler_command, sizeof(command));
	for (int i = 0; i < o->arg_count && used < sizeof(command); i++) {
		/* The control socket splits its line at spaces and has no
		 * quoting: a word of the reason is an argument like the
		 * others, and no argument may hold a space or be empty. */
		if (o->args[i][0] == '\0' || strpbrk(o->args[i], " \t\r\n") !=
		    NULL) {
			if (i < 3 || strpbrk(o->args[i], "\r\n") != NULL) {
				fprintf(stderr, "sluice: invalid argument \"%s\"\n",
				    o->args[i]);
				return 1;
			}
		}
		used += (size_t)snprintf(command + used, sizeof(command) - used,
		    " %s", o->args[i]);
	}
	if (used >= sizeof(command)) {
		fprintf(stderr, "sluice: arguments too long\n");
		return 1;
	}
	rc = queue_cli_ask_daemon(config, command);
	if (rc == QUEUE_CLI_NO_DAEMON) {
		fprintf(stderr, "sluice: %s needs the running daemon, which "
		    "holds the scheduler's state; none answers at %s/%s\n",
		    o->action_option, config->spool_directory,
		    CONTROL_SOCKET_NAME);
		return 1;
	}
	return rc;
}

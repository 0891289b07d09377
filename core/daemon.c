/*
 * daemon.c - the listening daemon (see daemon.h).
 *
 * Start-up order: parse the listening addresses, look up the daemon's
 * user, create the spool directory, bind the listeners (the only step
 * that may need root), detach unless -bdf, write the pid file, drop
 * privileges, then open the control socket and enter the event loop.
 * Any failure before the loop is reported on stderr and in the panic
 * log, and the daemon exits 1 with nothing half-started.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "daemon_reload.h"
#include "dns.h"
#include "listener.h"
#include "log.h"
#include "log_line.h"
#include "policy.h"
#include "queue.h"
#include "queue_control.h"
#include "smtp_server.h"
#include "spool_header.h"
#include "spool_store.h"
#include "submit.h"
#include "util.h"

#define DAEMON_LISTEN_BACKLOG	1024
#define DAEMON_LISTEN_LOG_MAX	10	/* listeners named in the start line */

struct daemon {
	struct config *config;		/* the newest: start-up or reloaded */
	struct config **reloaded;	/* owned; kept until exit, since open
					 * sessions and the queue may still
					 * point into older ones */
	size_t reloaded_count;
	const struct daemon_options *options;
	struct event_base *base;
	struct spool_store *spool;
	struct dns_resolver *resolver;
	struct queue *queue;
	bool sessions_done;		/* shutdown: every SMTP session ended */
	bool queue_done;		/* shutdown: every delivery ended */
	struct listener_addr addrs[LISTENER_MAX];
	struct evconnlistener *listeners[LISTENER_MAX];
	int listen_fds[LISTENER_MAX];
	size_t listener_count;
	struct event *signal_events[5];
	size_t signal_count;
	char *pid_file;
	char *listening;		/* " [ip]:port ..." for log lines */
	uid_t uid;
	gid_t gid;
	bool change_user;
	int stop_signal;
};

/* Reports a start-up failure on stderr and in the panic log. */
static int
daemon_fail(struct daemon *d, const char *fmt, ...) SLUICE_PRINTF(2, 3);

static int
daemon_fail(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	char *message;

	va_start(ap, fmt);
	message = xvasprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "sluice: %s\n", message);
	log_write(LOG_MAIN | LOG_PANIC, NULL, "%s", message);
	free(message);
	return 1;
}

/* Makes a relative path absolute against the start-up directory, since
 * a detached daemon runs in "/". Returns a new string. */
static char *
daemon_absolute_path(const char *path)
{
	char cwd[4096];

	if (path[0] == '/' || path[0] == '\0' || strcmp(path, "syslog") == 0)
		return xstrdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		fatal("cannot find the current directory");
	if (strncmp(path, "./", 2) == 0)
		path += 2;
	return xasprintf("%s/%s", cwd, path);
}

static void
daemon_absolutize(char **path)
{
	char *absolute = daemon_absolute_path(*path);

	free(*path);
	*path = absolute;
}

static int
daemon_lookup_user(struct daemon *d)
{
	const struct config *c = d->config;
	struct passwd *pw;
	struct group *gr;

	d->uid = getuid();
	d->gid = getgid();
	/* An empty exim_user keeps the invoking user (development setups). */
	d->change_user = geteuid() == 0 && c->exim_user != NULL &&
	    c->exim_user[0] != '\0';
	if (!d->change_user)
		return 0;

	errno = 0;
	if ((pw = getpwnam(c->exim_user)) == NULL)
		return daemon_fail(d, "exim_user \"%s\" is not a known user%s%s: "
		    "create it or set exim_user in %s", c->exim_user,
		    errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "",
		    c->config_file);
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	if (c->exim_group != NULL && c->exim_group[0] != '\0') {
		if ((gr = getgrnam(c->exim_group)) == NULL)
			return daemon_fail(d, "exim_group \"%s\" is not a known group: "
			    "create it or set exim_group in %s", c->exim_group,
			    c->config_file);
		d->gid = gr->gr_gid;
	}
	if (d->uid == 0)
		return daemon_fail(d, "exim_user \"%s\" is root: the daemon must "
		    "run as an unprivileged user", c->exim_user);
	return 0;
}

/* Creates the spool directory (and its parents' last level) owned by the
 * daemon's user. */
static int
daemon_make_spool(struct daemon *d)
{
	const char *spool = d->config->spool_directory;

	if (mkdir(spool, 0750) < 0 && errno != EEXIST)
		return daemon_fail(d, "cannot create spool directory %s: %s", spool,
		    strerror(errno));
	if (d->change_user && chown(spool, d->uid, d->gid) < 0)
		return daemon_fail(d, "cannot give spool directory %s to uid %ld: %s",
		    spool, (long)d->uid, strerror(errno));
	return 0;
}

/* Creates the log files while still root, so exim_user owns them. */
static int
daemon_open_logs(struct daemon *d)
{
	char *error = NULL;

	if (log_open_files(&error) < 0) {
		daemon_fail(d, "%s", error);
		free(error);
		return 1;
	}
	return 0;
}

static int
daemon_open_listeners(struct daemon *d)
{
	const struct config *c = d->config;
	char *error = NULL;
	size_t used = 0, size;
	int n;

	n = listener_parse(c->local_interfaces, c->daemon_smtp_ports,
	    d->options->override_listen, d->addrs, LISTENER_MAX, &error);
	if (n < 0) {
		daemon_fail(d, "%s: %s", c->config_file, error);
		free(error);
		return 1;
	}
	d->listener_count = (size_t)n;

	size = d->listener_count * (LISTENER_NAME_SIZE + 1) + 8;
	d->listening = xcalloc(1, size);
	for (size_t i = 0; i < d->listener_count; i++) {
		d->listen_fds[i] = listener_open(&d->addrs[i], DAEMON_LISTEN_BACKLOG);
		if (d->listen_fds[i] < 0) {
			int saved = errno;

			for (size_t j = 0; j < i; j++)
				close(d->listen_fds[j]);
			d->listener_count = 0;
			return daemon_fail(d, "cannot listen on %s: %s", d->addrs[i].name,
			    strerror(saved));
		}
		if (i < DAEMON_LISTEN_LOG_MAX)
			used += (size_t)snprintf(d->listening + used, size - used, " %s",
			    d->addrs[i].name);
		else if (i == DAEMON_LISTEN_LOG_MAX)
			used += (size_t)snprintf(d->listening + used, size - used, " ...");
	}
	return 0;
}

static void
daemon_detach(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		fatal("cannot fork to detach the daemon");
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		fatal("setsid failed");
	if (chdir("/") < 0)
		fatal("cannot change to /");
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

static int
daemon_write_pid_file(struct daemon *d)
{
	const struct config *c = d->config;
	char text[32];
	int fd, len;

	if (d->options->pid_file != NULL)
		d->pid_file = daemon_absolute_path(d->options->pid_file);
	else if (d->options->override_listen != NULL)
		return 0;	/* -oX without -oP: no pid file, as in Exim */
	else if (c->pid_file_path != NULL && c->pid_file_path[0] != '\0')
		d->pid_file = daemon_absolute_path(c->pid_file_path);
	else
		d->pid_file = xasprintf("%s/exim-daemon.pid", c->spool_directory);

	len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	fd = open(d->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd < 0 || write(fd, text, (size_t)len) != len) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return daemon_fail(d, "cannot write pid file %s: %s", d->pid_file,
		    strerror(saved));
	}
	close(fd);
	return 0;
}

/* Removes the pid file only if it still names this process. */
static void
daemon_remove_pid_file(struct daemon *d)
{
	char text[32];
	ssize_t n;
	int fd;

	if (d->pid_file == NULL)
		return;
	if ((fd = open(d->pid_file, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n > 0) {
		text[n] = '\0';
		if (strtol(text, NULL, 10) == (long)getpid() &&
		    unlink(d->pid_file) < 0)
			log_write(LOG_MAIN, NULL, "cannot remove pid file %s: %s",
			    d->pid_file, strerror(errno));
	}
}

/*
 * Switches to the daemon's user and group for good: supplementary groups
 * first, then the gid, then the uid, and proves that root cannot be
 * regained.
 */
static int
daemon_drop_privileges(struct daemon *d)
{
	if (!d->change_user)
		return 0;
	if (setgroups(0, NULL) < 0)
		return daemon_fail(d, "cannot clear supplementary groups: %s",
		    strerror(errno));
	if (setresgid(d->gid, d->gid, d->gid) < 0)
		return daemon_fail(d, "cannot change to gid %ld: %s", (long)d->gid,
		    strerror(errno));
	if (setresuid(d->uid, d->uid, d->uid) < 0)
		return daemon_fail(d, "cannot change to uid %ld: %s", (long)d->uid,
		    strerror(errno));
	if (setuid(0) == 0 || seteuid(0) == 0)
		fatal_bug("root privileges could be regained after dropping them");
	return 0;
}

static void
daemon_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
    struct sockaddr *addr, int addr_len, void *arg)
{
	smtp_server_accept(fd, addr, (socklen_t)addr_len);
}

static void
daemon_accept_error_cb(struct evconnlistener *listener, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* Out of descriptors or memory: the listener keeps going and the
	 * kernel queues connections meanwhile. */
	log_write(LOG_MAIN | LOG_PANIC, NULL, "accept() failed: %s",
	    evutil_socket_error_to_string(err));
}

static void
daemon_sessions_done_cb(void *arg)
{
	struct daemon *d = arg;

	d->sessions_done = true;
	if (d->queue_done)
		event_base_loopexit(d->base, NULL);
}

static void
daemon_queue_done_cb(void *arg)
{
	struct daemon *d = arg;

	d->queue_done = true;
	if (d->sessions_done)
		event_base_loopexit(d->base, NULL);
}

static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		d->stop_signal = (int)sig;
#ifdef SLUICE_TEST_HOOKS
		/* A test that stopped the clock must still see the daemon
		 * stop: its drain and session timers run on that clock. */
		clock_fake_freeze(false);
#endif
		/* The loop ends once every SMTP session and every running
		 * delivery has finished; nothing new starts meanwhile. */
		queue_shutdown(d->queue, daemon_queue_done_cb, d);
		smtp_server_shutdown(daemon_sessions_done_cb, d);
		break;
	case SIGHUP: {
		struct config *next = daemon_reload(d->base, d->config, d->spool);

		if (next != NULL) {
			d->reloaded = xreallocarray(d->reloaded,
			    d->reloaded_count + 1, sizeof(*d->reloaded));
			d->reloaded[d->reloaded_count++] = next;
			d->config = next;
			queue_policy_reloaded(d->queue);
		}
		break;
	}
	case SIGUSR1: {
		/* Process status for exiwhat, as Exim writes it. */
		char *path = xasprintf("%s/exim-process.info",
		    d->config->spool_directory);
		FILE *f = fopen(path, "a");

		if (f != NULL) {
			fprintf(f, "%ld daemon(sluice %s): listening for SMTP on%s\n",
			    (long)getpid(), PACKAGE_VERSION, d->listening);
			fclose(f);
		}
		free(path);
		break;
	}
	}
}

/* The daemon of this process, for control commands. */
static struct daemon *running_daemon;

static int
daemon_stats_command(int argc, char **argv, struct evbuffer *out)
{
	struct smtp_server_stats smtp;
	struct spool_store_stats spool;
	struct queue_stats queue;

	smtp_server_stats(&smtp);
	spool_store_stats(running_daemon->spool, &spool);
	queue_stats(running_daemon->queue, &queue);
	evbuffer_add_printf(out, "queue_messages=%zu\n"
	    "queue_attempts_running=%zu\n"
	    "queue_recipients_delivered=%llu\n"
	    "queue_recipients_deferred=%llu\n"
	    "queue_recipients_failed=%llu\n"
	    "queue_messages_completed=%llu\n",
	    queue.messages, queue.attempts_running,
	    (unsigned long long)queue.delivered,
	    (unsigned long long)queue.deferred,
	    (unsigned long long)queue.failed,
	    (unsigned long long)queue.completed);
	evbuffer_add_printf(out, "spool_commit_rounds=%llu\n"
	    "spool_messages_committed=%llu\n"
	    "spool_commits_failed=%llu\n"
	    "spool_max_batch=%llu\n"
	    "spool_sync_calls=%llu\n",
	    (unsigned long long)spool.commit_rounds,
	    (unsigned long long)spool.messages_committed,
	    (unsigned long long)spool.commits_failed,
	    (unsigned long long)spool.max_batch,
	    (unsigned long long)spool.sync_calls);
	evbuffer_add_printf(out, "smtp_sessions=%zu\n"
	    "smtp_sessions_total=%llu\n"
	    "smtp_messages_accepted=%llu\n"
	    "smtp_messages_rejected=%llu\n"
	    "smtp_messages_failed=%llu\n"
	    "smtp_recipients_rejected=%llu\n",
	    smtp.sessions_open, (unsigned long long)smtp.sessions_total,
	    (unsigned long long)smtp.messages_accepted,
	    (unsigned long long)smtp.messages_rejected,
	    (unsigned long long)smtp.messages_failed,
	    (unsigned long long)smtp.recipients_rejected);
	return 0;
}

#ifdef SLUICE_TEST_HOOKS
/* "clock" prints the fake clock; "clock advance SECONDS" moves it (a
 * decimal fraction is allowed, a negative value steps the wall clock
 * back) and fires every timer that becomes due. */
static int
daemon_clock_command(int argc, char **argv, struct evbuffer *out)
{
	struct timeval now;

	if (argc == 3 && strcmp(argv[1], "advance") == 0) {
		char *end;
		double seconds = strtod(argv[2], &end);

		if (*end != '\0' || end == argv[2] || seconds > 1e9 ||
		    seconds < -1e9) {
			evbuffer_add_printf(out, "invalid number of seconds \"%.32s\"",
			    argv[2]);
			return -1;
		}
		clock_fake_advance((int64_t)(seconds * 1e6));
	} else if (argc == 2 && strcmp(argv[1], "freeze") == 0) {
		clock_fake_freeze(true);
	} else if (argc == 2 && strcmp(argv[1], "thaw") == 0) {
		clock_fake_freeze(false);
	} else if (argc != 1) {
		evbuffer_add_printf(out,
		    "usage: clock [advance SECONDS | freeze | thaw]");
		return -1;
	}
	clock_now_tv(&now);
	evbuffer_add_printf(out, "now=%lld.%06ld offset_usec=%lld\n",
	    (long long)now.tv_sec, (long)now.tv_usec,
	    (long long)clock_fake_offset_usec());
	return 0;
}
#endif

static void
daemon_arrival_cb(void *arg, const char *id)
{
	queue_add(arg, id);
}

static void
daemon_scan_cb(void *arg, const char *id, struct spool_header *header)
{
	struct daemon *d = arg;

	queue_add_header(d->queue, id, header);
	spool_header_free(header);
	free(header);
}

/*
 * Creates the resolver and the queue, and queues every message the spool
 * holds (the scan moves unreadable ones aside). New arrivals join the
 * queue as soon as they are acknowledged.
 */
static int
daemon_start_queue(struct daemon *d, char **error)
{
	struct dns_options options;
	struct spool_scan_result scan;

	dns_options_from_config(&options, d->config);
	if ((d->resolver = dns_resolver_new(d->base, &options, error)) == NULL)
		return -1;
	d->queue = queue_new(d->base, d->config, d->spool, d->resolver);
	queue_set_dont_deliver(d->queue, d->options->dont_deliver);
	memset(&scan, 0, sizeof(scan));
	if (spool_store_scan(d->spool, daemon_scan_cb, d, &scan, error) < 0)
		return -1;
	if (scan.messages > 0 || scan.broken > 0 || scan.removed > 0)
		log_write(LOG_MAIN, NULL, "spool scan: %zu messages queued, "
		    "%zu moved to input/.broken, %zu leftover files removed",
		    scan.messages, scan.broken, scan.removed);
	smtp_server_set_arrival_hook(daemon_arrival_cb, d->queue);
	return 0;
}

static int
daemon_setup_loop(struct daemon *d)
{
	static const int signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	char *error = NULL;
	char *control_path;

	if (evthread_use_pthreads() < 0)
		return daemon_fail(d, "libevent has no pthreads support");
	if ((d->base = event_base_new()) == NULL)
		return daemon_fail(d, "cannot create the event loop");

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
		struct event *ev = evsignal_new(d->base, signals[i],
		    daemon_signal_cb, d);

		if (ev == NULL || evsignal_add(ev, NULL) < 0)
			return daemon_fail(d, "cannot catch signal %d", signals[i]);
		d->signal_events[d->signal_count++] = ev;
	}

	d->spool = spool_store_new(d->base, d->config->spool_directory,
	    d->config->split_spool_directory, NULL, &error);
	if (d->spool == NULL || smtp_server_init(d->base, d->config, d->spool,
	    &error) < 0 || daemon_start_queue(d, &error) < 0) {
		daemon_fail(d, "%s", error);
		free(error);
		return 1;
	}
	for (size_t i = 0; i < d->listener_count; i++) {
		d->listeners[i] = evconnlistener_new(d->base, daemon_accept_cb, d,
		    LEV_OPT_CLOSE_ON_FREE, -1, d->listen_fds[i]);
		if (d->listeners[i] == NULL)
			return daemon_fail(d, "cannot watch listener %s",
			    d->addrs[i].name);
		evconnlistener_set_error_cb(d->listeners[i], daemon_accept_error_cb);
	}

	control_register("stats", "print the daemon's counters",
	    daemon_stats_command);
#ifdef SLUICE_TEST_HOOKS
	control_register("clock", "print or advance the test clock",
	    daemon_clock_command);
#endif
	queue_control_init(d->config, d->queue, d->spool);
	if (policy_start(d->base, d->config, &error) < 0) {
		daemon_fail(d, "%s", error);
		free(error);
		return 1;
	}
	control_register("policy", "print the Lua policy's state",
	    policy_control_command);
	queue_policy_reloaded(d->queue);
	/* Local submission: sendmail reaches the daemon here. The control
	 * socket comes last, so that a client that finds it finds the
	 * daemon ready. */
	control_path = xasprintf("%s/%s", d->config->spool_directory,
	    SUBMIT_SOCKET_NAME);
	if (submit_open(d->base, d->config, d->spool, control_path,
	    daemon_arrival_cb, d->queue, &error) < 0) {
		daemon_fail(d, "%s", error);
		free(error);
		free(control_path);
		return 1;
	}
	free(control_path);
	control_path = xasprintf("%s/%s", d->config->spool_directory,
	    CONTROL_SOCKET_NAME);
	if (control_open(d->base, control_path, &error) < 0) {
		daemon_fail(d, "%s", error);
		free(error);
		free(control_path);
		return 1;
	}
	free(control_path);
	return 0;
}

static void
daemon_teardown(struct daemon *d)
{
	for (size_t i = 0; i < d->listener_count; i++) {
		if (d->listeners[i] != NULL)
			evconnlistener_free(d->listeners[i]);
		else
			close(d->listen_fds[i]);
	}
	for (size_t i = 0; i < d->signal_count; i++)
		event_free(d->signal_events[i]);
	/* Spool operations still queued finish here, before the loop goes;
	 * their callbacks may touch the queue and answer control clients
	 * waiting for a message, so both go after them. */
	spool_store_free(d->spool);
	submit_close();
	control_close();
	policy_stop();
	queue_free(d->queue);
	dns_resolver_free(d->resolver);
	if (d->base != NULL)
		event_base_free(d->base);
	daemon_remove_pid_file(d);
	free(d->pid_file);
	free(d->listening);
	for (size_t i = 0; i < d->reloaded_count; i++)
		config_free(d->reloaded[i]);
	free(d->reloaded);
}

int
daemon_run(struct config *config, const struct daemon_options *options)
{
	struct daemon d;
	int rc;

	memset(&d, 0, sizeof(d));
	running_daemon = &d;
	d.config = config;
	d.options = options;

	daemon_absolutize(&config->spool_directory);
	daemon_absolutize(&config->config_file);	/* for SIGHUP */
	daemon_absolutize(&config->pid_file_path);

	if ((rc = daemon_lookup_user(&d)) != 0 ||
	    (rc = daemon_make_spool(&d)) != 0 ||
	    (rc = daemon_open_logs(&d)) != 0 ||
	    (rc = daemon_open_listeners(&d)) != 0)
		goto out;

	if (!options->foreground)
		daemon_detach();
	if ((rc = daemon_write_pid_file(&d)) != 0 ||
	    (rc = daemon_drop_privileges(&d)) != 0 ||
	    (rc = daemon_setup_loop(&d)) != 0)
		goto out;

	if (!d.change_user) {
		struct passwd *pw = getpwuid(getuid());

		log_write(LOG_MAIN, NULL, "running as the invoking user %s (uid %ld)"
		    "%s", pw != NULL ? pw->pw_name : "?", (long)getuid(),
		    getuid() == 0 ? ": exim_user is empty, so root privileges are "
		    "kept; set exim_user for production" : "");
	}
	log_write(LOG_MAIN, NULL, "sluice %s daemon started: pid=%ld, "
	    "listening for SMTP on%s", PACKAGE_VERSION, (long)getpid(),
	    d.listening);
	if (options->foreground)
		printf("sluice %s listening for SMTP on%s\n", PACKAGE_VERSION,
		    d.listening);
	fflush(stdout);

	event_base_dispatch(d.base);

	log_write(LOG_MAIN, NULL, "sluice %s daemon stopped: pid=%ld, %s "
	    "received", PACKAGE_VERSION, (long)getpid(),
	    d.stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
	rc = 0;
out:
	daemon_teardown(&d);
	return rc;
}

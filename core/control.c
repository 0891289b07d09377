/*
 * control.c - the daemon's control socket (see control.h).
 *
 * Each client sends one command line, gets the reply and is closed.
 * Lines are bounded by CONTROL_LINE_MAX, clients by CONTROL_CLIENTS_MAX,
 * and a client that sends nothing for CONTROL_TIMEOUT_SEC is dropped.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "log.h"
#include "util.h"

#define CONTROL_COMMANDS_MAX	64
#define CONTROL_TIMEOUT_SEC	30

struct control_command {
	const char *name;
	const char *help;
	control_command_fn fn;
};

static struct control_command commands[CONTROL_COMMANDS_MAX];
static size_t command_count;
static struct evconnlistener *control_listener;
static char *control_path;
static size_t client_count;

void
control_register(const char *name, const char *help, control_command_fn fn)
{
	for (size_t i = 0; i < command_count; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			commands[i].help = help;
			commands[i].fn = fn;
			return;
		}
	}
	if (command_count >= CONTROL_COMMANDS_MAX)
		fatal_bug("more than %d control commands", CONTROL_COMMANDS_MAX);
	commands[command_count].name = name;
	commands[command_count].help = help;
	commands[command_count].fn = fn;
	command_count++;
}

static int
control_help(int argc, char **argv, struct evbuffer *out)
{
	for (size_t i = 0; i < command_count; i++)
		evbuffer_add_printf(out, "%s: %s\n", commands[i].name,
		    commands[i].help);
	return 0;
}

/* Splits line in place at spaces; returns the number of words or -1. */
static int
control_split(char *line, char **argv)
{
	int argc = 0;
	char *save = NULL;

	for (char *word = strtok_r(line, " \t", &save); word != NULL;
	    word = strtok_r(NULL, " \t", &save)) {
		if (argc >= CONTROL_ARGS_MAX)
			return -1;
		argv[argc++] = word;
	}
	return argc;
}

static void
control_execute(char *line, struct evbuffer *out)
{
	char *argv[CONTROL_ARGS_MAX];
	struct evbuffer *reply = evbuffer_new();
	int argc = control_split(line, argv);
	int rc = -1;

	if (reply == NULL)
		fatalx("out of memory for a control reply");
	if (argc < 0) {
		evbuffer_add_printf(reply, "more than %d words", CONTROL_ARGS_MAX);
	} else if (argc == 0) {
		evbuffer_add_printf(reply, "empty command; try \"help\"");
	} else {
		size_t i;

		for (i = 0; i < command_count; i++)
			if (strcmp(commands[i].name, argv[0]) == 0)
				break;
		if (i == command_count)
			evbuffer_add_printf(reply, "unknown command \"%.64s\"; "
			    "try \"help\"", argv[0]);
		else
			rc = commands[i].fn(argc, argv, reply);
	}

	if (rc == 0) {
		evbuffer_add_buffer(out, reply);
		evbuffer_add_printf(out, "ok\n");
	} else {
		evbuffer_add_printf(out, "error: ");
		evbuffer_add_buffer(out, reply);
		evbuffer_add_printf(out, "\n");
	}
	evbuffer_free(reply);
}

static void
control_client_free(struct bufferevent *bev)
{
	bufferevent_free(bev);
	client_count--;
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	/* The reply has gone out: the exchange is over. */
	control_client_free(bev);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
			evbuffer_add_printf(bufferevent_get_output(bev),
			    "error: command longer than %d bytes\n",
			    CONTROL_LINE_MAX);
			goto reply;
		}
		return;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len > CONTROL_LINE_MAX)
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "error: command longer than %d bytes\n", CONTROL_LINE_MAX);
	else
		control_execute(line, bufferevent_get_output(bev));
	free(line);
reply:
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, control_write_cb, NULL, NULL);
	bufferevent_enable(bev, EV_WRITE);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	control_client_free(bev);
}

static void
control_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
    struct sockaddr *addr, int socklen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(listener);
	struct timeval timeout = { CONTROL_TIMEOUT_SEC, 0 };
	struct bufferevent *bev;

	if (client_count >= CONTROL_CLIENTS_MAX) {
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	client_count++;
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, NULL);
	bufferevent_set_timeouts(bev, &timeout, &timeout);
	bufferevent_enable(bev, EV_READ);
}

int
control_open(struct event_base *base, const char *path, char **error)
{
	struct sockaddr_un sun;
	mode_t old_mask;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_s(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		*error = xasprintf("control socket path %s is longer than %zu bytes",
		    path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	control_register("help", "list the commands", control_help);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error = xasprintf("cannot create the control socket: %s",
		    strerror(errno));
		return -1;
	}
	/* A socket left by a daemon that crashed is in the way; a live
	 * daemon's is not removed because the pid file check ran first. */
	if (unlink(path) < 0 && errno != ENOENT) {
		*error = xasprintf("cannot remove the old control socket %s: %s",
		    path, strerror(errno));
		close(fd);
		return -1;
	}
	old_mask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old_mask);
		*error = xasprintf("cannot bind the control socket %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	umask(old_mask);

	control_listener = evconnlistener_new(base, control_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, fd);
	if (control_listener == NULL) {
		*error = xasprintf("cannot listen on the control socket %s", path);
		close(fd);
		unlink(path);
		return -1;
	}
	control_path = xstrdup(path);
	return 0;
}

void
control_close(void)
{
	if (control_listener == NULL)
		return;
	evconnlistener_free(control_listener);
	control_listener = NULL;
	unlink(control_path);
	free(control_path);
	control_path = NULL;
}

int
control_request(const char *path, const char *command, char *reply,
    size_t size)
{
	struct sockaddr_un sun;
	size_t used = 0;
	ssize_t n;
	int fd;

	if (size == 0)
		fatal_bug("control_request with an empty reply buffer");
	reply[0] = '\0';
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_s(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    write(fd, command, strlen(command)) < 0 || write(fd, "\n", 1) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	while (used + 1 < size &&
	    (n = read(fd, reply + used, size - used - 1)) > 0)
		used += (size_t)n;
	reply[used] = '\0';
	close(fd);

	if (used >= 3 && strcmp(reply + used - 3, "ok\n") == 0 &&
	    (used == 3 || reply[used - 4] == '\n'))
		return 0;
	return 1;
}

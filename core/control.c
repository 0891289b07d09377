/*
 * control.c - the daemon's control socket (see control.h).
 *
 * Each client sends one command line, gets the reply and is closed.
 * Lines are bounded by CONTROL_LINE_MAX, clients by CONTROL_CLIENTS_MAX,
 * and a client that sends nothing for CONTROL_TIMEOUT_SEC is dropped.
 * While an asynchronous command runs, the client has no time limit, and
 * bytes it sends meanwhile are discarded. If it disconnects, the
 * request is marked orphaned and its reply is dropped when it finishes.
 */
#include <errno.h>
#include <libgen.h>
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
#define CONTROL_SOCKET_MODE	0666

struct control_command {
	const char *name;
	const char *help;
	control_command_fn fn;
	control_async_fn async_fn;
	bool public_access;
};

struct control_client {
	struct bufferevent *bev;
	struct permission_caller caller;
	bool admin;
	struct control_request *pending;	/* asynchronous command running */
	struct control_client *prev, *next;
};

struct control_request {
	struct control_client *client;	/* NULL once the client is gone */
	struct permission_caller caller;
	bool admin;
	struct evbuffer *out;
};

static struct control_command commands[CONTROL_COMMANDS_MAX];
static size_t command_count;
static struct evconnlistener *control_listener;
static char *control_path;
static struct control_client *clients;
static size_t client_count;
static struct permission_admins control_admins;
static bool control_admins_set;

static void control_write_cb(struct bufferevent *bev, void *arg);

static void
control_add(const char *name, const char *help, control_command_fn fn,
    control_async_fn async_fn, bool public_access)
{
	struct control_command *c = NULL;

	for (size_t i = 0; i < command_count && c == NULL; i++)
		if (strcmp(commands[i].name, name) == 0)
			c = &commands[i];
	if (c == NULL) {
		if (command_count >= CONTROL_COMMANDS_MAX)
			fatal_bug("more than %d control commands",
			    CONTROL_COMMANDS_MAX);
		c = &commands[command_count++];
	}
	c->name = name;
	c->help = help;
	c->fn = fn;
	c->async_fn = async_fn;
	c->public_access = public_access;
}

void
control_register(const char *name, const char *help, control_command_fn fn)
{
	control_add(name, help, fn, NULL, false);
}

void
control_register_async(const char *name, const char *help,
    bool public_access, control_async_fn fn)
{
	control_add(name, help, NULL, fn, public_access);
}

void
control_set_admins(const struct permission_admins *admins)
{
	control_admins = *admins;
	control_admins_set = true;
}

static bool
control_caller_is_admin(const struct permission_caller *caller)
{
	struct permission_admins self;

	if (control_admins_set)
		return permission_is_admin(&control_admins, caller);
	memset(&self, 0, sizeof(self));
	self.exim_uid = geteuid();
	self.exim_gid = getegid();
	return permission_is_admin(&self, caller);
}

const struct permission_caller *
control_request_caller(const struct control_request *req)
{
	return &req->caller;
}

bool
control_request_is_admin(const struct control_request *req)
{
	return req->admin;
}

struct evbuffer *
control_request_output(struct control_request *req)
{
	return req->out;
}

void
control_request_flush(struct control_request *req)
{
	if (req->client != NULL)
		evbuffer_add_buffer(bufferevent_get_output(req->client->bev),
		    req->out);
}

static int
control_help(int argc, char **argv, struct evbuffer *out)
{
	for (size_t i = 0; i < command_count; i++)
		evbuffer_add_printf(out, "%s: %s%s\n", commands[i].name,
		    commands[i].help, commands[i].public_access ? "" :
		    " (admin users only)");
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

/* Queues the end of the exchange: the client is closed once the reply
 * has been written. */
static void
control_client_reply_done(struct control_client *client)
{
	bufferevent_setcb(client->bev, NULL, control_write_cb, NULL, client);
	bufferevent_disable(client->bev, EV_READ);
	bufferevent_enable(client->bev, EV_WRITE);
	/* With nothing to write the write callback never comes. */
	if (evbuffer_get_length(bufferevent_get_output(client->bev)) == 0)
		control_write_cb(client->bev, client);
}

static void
control_client_free(struct control_client *client)
{
	if (client->pending != NULL)
		client->pending->client = NULL;
	if (client->prev != NULL)
		client->prev->next = client->next;
	else
		clients = client->next;
	if (client->next != NULL)
		client->next->prev = client->prev;
	bufferevent_free(client->bev);
	free(client);
	client_count--;
}

void
control_request_finish(struct control_request *req, int rc,
    const char *error)
{
	struct control_client *client = req->client;

	if (client != NULL) {
		struct evbuffer *out = bufferevent_get_output(client->bev);

		client->pending = NULL;
		if (rc == 0) {
			evbuffer_add_buffer(out, req->out);
			evbuffer_add_printf(out, "ok\n");
		} else {
			evbuffer_add_printf(out, "error: %s\n",
			    error != NULL ? error : "failed");
		}
	}
	evbuffer_free(req->out);
	free(req);
	if (client != NULL)
		control_client_reply_done(client);	/* may free client */
}

/* Discards what a client sends while its asynchronous command runs. */
static void
control_discard_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void control_event_cb(struct bufferevent *bev, short what, void *arg);

static void
control_start_async(struct control_client *client,
    const struct control_command *command, int argc, char **argv)
{
	struct control_request *req = xcalloc(1, sizeof(*req));

	if ((req->out = evbuffer_new()) == NULL)
		fatalx("out of memory for a control reply");
	req->client = client;
	req->caller = client->caller;
	req->admin = client->admin;
	client->pending = req;
	/* The command may take as long as the deliveries it waits for. */
	bufferevent_set_timeouts(client->bev, NULL, NULL);
	bufferevent_setcb(client->bev, control_discard_cb, NULL,
	    control_event_cb, client);
	command->async_fn(req, argc, argv);	/* may free client */
}

/* Runs one command line. Returns true when an asynchronous command took
 * over the client, which must not be touched afterwards. */
static bool
control_execute(struct control_client *client, char *line)
{
	struct evbuffer *out = bufferevent_get_output(client->bev);
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
		if (i == command_count) {
			evbuffer_add_printf(reply, "unknown command \"%.64s\"; "
			    "try \"help\"", argv[0]);
		} else if (!commands[i].public_access && !client->admin) {
			evbuffer_add_printf(reply, "permission denied: \"%s\" is "
			    "for admin users only", commands[i].name);
		} else if (commands[i].async_fn != NULL) {
			evbuffer_free(reply);
			control_start_async(client, &commands[i], argc, argv);
			return true;
		} else {
			rc = commands[i].fn(argc, argv, reply);
		}
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
	return false;
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	/* The reply has gone out: the exchange is over. */
	control_client_free(arg);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_client *client = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;
	bool async_started = false;

	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
			evbuffer_add_printf(bufferevent_get_output(bev),
			    "error: command longer than %d bytes\n",
			    CONTROL_LINE_MAX);
			control_client_reply_done(client);
		}
		return;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len > CONTROL_LINE_MAX)
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "error: command longer than %d bytes\n", CONTROL_LINE_MAX);
	else
		async_started = control_execute(client, line);
	free(line);
	if (!async_started)
		control_client_reply_done(client);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	control_client_free(arg);
}

static void
control_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
    struct sockaddr *addr, int socklen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(listener);
	struct timeval timeout = { CONTROL_TIMEOUT_SEC, 0 };
	struct control_client *client;
	struct permission_caller caller;
	struct bufferevent *bev;

	if (client_count >= CONTROL_CLIENTS_MAX) {
		close(fd);
		return;
	}
	if (permission_caller_peer(fd, &caller) < 0) {
		log_write(LOG_MAIN, NULL, "control socket: cannot get the "
		    "credentials of a client: %s", strerror(errno));
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	client = xcalloc(1, sizeof(*client));
	client->bev = bev;
	client->caller = caller;
	client->admin = control_caller_is_admin(&caller);
	client->next = clients;
	if (clients != NULL)
		clients->prev = client;
	clients = client;
	client_count++;
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, client);
	bufferevent_set_timeouts(bev, &timeout, &timeout);
	bufferevent_enable(bev, EV_READ);
}

/*
 * Gives others search permission on the directory of the socket, so that
 * every local user can reach it; they still cannot list the directory.
 */
static void
control_open_directory(const char *path)
{
	char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	struct stat st;

	if (stat(dir, &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
		if (chmod(dir, (st.st_mode & 07777) | S_IXOTH) == 0)
			log_write(LOG_MAIN, NULL, "control socket: gave others "
			    "search permission on %s, so that every local user "
			    "can reach %s", dir, path);
		else
			log_write(LOG_MAIN, NULL, "control socket: cannot give "
			    "others search permission on %s (%s): only its "
			    "owner and group can reach %s", dir, strerror(errno),
			    path);
	}
	free(copy);
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
	control_add("help", "list the commands", control_help, NULL, true);

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
	/* The socket starts as 0600, so no client connects before the
	 * chmod() below opens it to all. */
	old_mask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old_mask);
		*error = xasprintf("cannot bind the control socket %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	umask(old_mask);
	if (chmod(path, CONTROL_SOCKET_MODE) < 0) {
		*error = xasprintf("cannot set the mode of the control socket "
		    "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	control_open_directory(path);

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
	while (clients != NULL)
		control_client_free(clients);
	unlink(control_path);
	free(control_path);
	control_path = NULL;
}

int
control_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_s(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
control_request(const char *path, const char *command, char *reply,
    size_t size)
{
	size_t used = 0;
	ssize_t n;
	int fd;

	if (size == 0)
		fatal_bug("control_request with an empty reply buffer");
	reply[0] = '\0';
	if ((fd = control_connect(path)) < 0)
		return -1;
	if (write(fd, command, strlen(command)) < 0 || write(fd, "\n", 1) < 0) {
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

char *
control_quote(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s);
	size_t o = 0;
	char *out;

	if (len == 0)
		return xstrdup("%");
	out = xmalloc(len * 3 + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '%' || c >= 0x7f) {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

static int
control_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
control_unquote(char *s)
{
	char *out = s;

	if (strcmp(s, "%") == 0) {
		s[0] = '\0';
		return 0;
	}
	while (*s != '\0') {
		if (*s != '%') {
			*out++ = *s++;
			continue;
		}
		int high = control_hex_digit(s[1]);
		int low = high < 0 ? -1 : control_hex_digit(s[2]);

		if (low < 0 || (high == 0 && low == 0))
			return -1;
		*out++ = (char)(high * 16 + low);
		s += 3;
	}
	*out = '\0';
	return 0;
}

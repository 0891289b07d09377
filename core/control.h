/*
 * control.h - the daemon's control socket.
 *
 * A Unix stream socket at <spool_directory>/sluice-control, mode 0666,
 * so that any local user can connect: the command-line tools of every
 * user reach the running daemon through it. A client writes one command
 * line and reads the reply: lines of text, the last of which is "ok" or
 * starts with "error: ". Command-line tools use it for anything that
 * changes the state of a running daemon; test builds add a fake-clock
 * command.
 *
 * Every request is checked against the client's credentials as the
 * kernel reports them (uid, gid and supplementary groups; see
 * permission.h). Commands registered with control_register() are for
 * admin users only; a public command is run for anyone and makes its
 * own checks with control_request_caller().
 *
 * Commands are registered by the modules that serve them, so the socket
 * code knows none of them. An asynchronous command may finish later,
 * after deliveries or disk writes: the client waits, with no time limit,
 * until control_request_finish() is called.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "permission.h"

struct event_base;
struct evbuffer;
struct control_request;

#define CONTROL_SOCKET_NAME	"sluice-control"
#define CONTROL_LINE_MAX	4096
#define CONTROL_ARGS_MAX	32
#define CONTROL_CLIENTS_MAX	64

/*
 * A command handler appends its reply lines to out and returns 0, or
 * returns -1 after appending the text of an error (without "error: ").
 * argv[0] is the command name.
 */
typedef int (*control_command_fn)(int argc, char **argv, struct evbuffer *out);

/*
 * An asynchronous command handler. It appends reply lines to
 * control_request_output(req) and calls control_request_finish(req, ...)
 * exactly once, before it returns or later. argv is borrowed for the
 * duration of the call only.
 */
typedef void (*control_async_fn)(struct control_request *req, int argc,
    char **argv);

/* Registers an admin-only command. */
void control_register(const char *name, const char *help,
    control_command_fn fn);

/* Registers an asynchronous command; public_access lets any user run it,
 * so the handler must check the caller itself. */
void control_register_async(const char *name, const char *help,
    bool public_access, control_async_fn fn);

/* Sets who counts as an admin user (copied). Until it is called, only
 * root and the daemon's own user do. */
void control_set_admins(const struct permission_admins *admins);

/* The client's credentials, borrowed until control_request_finish(). */
const struct permission_caller *control_request_caller(
    const struct control_request *req);
bool control_request_is_admin(const struct control_request *req);

/* The reply being built, borrowed until control_request_finish(). */
struct evbuffer *control_request_output(struct control_request *req);

/* Sends the reply lines built so far now, before the request ends, for
 * output that a client shows as it comes. Loop thread only. */
void control_request_flush(struct control_request *req);

/*
 * Ends the request: with rc 0 the reply lines and then "ok" go to the
 * client, with -1 "error: " and the text of error. A client that has
 * gone away gets nothing. Frees req.
 */
void control_request_finish(struct control_request *req, int rc,
    const char *error);

/* Opens the socket at path (replacing a stale one). Returns 0, or -1
 * with *error set (caller frees). */
int control_open(struct event_base *base, const char *path, char **error);
/* Closes the socket and every client connection, and unlinks the path. */
void control_close(void);

/*
 * Connects to the control socket at path. Returns the connected socket
 * (the caller closes it), or -1 with errno set: ENOENT or ECONNREFUSED
 * mean that no daemon is running.
 */
int control_connect(const char *path);

/*
 * Quotes an argument so that it is one word of a command line: bytes up
 * to the space, '%' and bytes from 0x7f up become %XX, and the empty
 * string becomes "%". Returns a new string (caller frees).
 */
char *control_quote(const char *s);

/* Undoes control_quote() in place. Returns 0, or -1 for a malformed
 * escape or one that gives a NUL byte. */
int control_unquote(char *s);

/*
 * Sends one command to a running daemon and copies the reply into reply
 * (at most size bytes, terminated). Returns 0 when the reply ended in
 * "ok", 1 when it ended in "error: ...", -1 if the daemon could not be
 * reached (errno set).
 */
int control_request(const char *path, const char *command, char *reply,
    size_t size);

#endif

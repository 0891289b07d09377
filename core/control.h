/*
 * control.h - the daemon's control socket.
 *
 * A Unix stream socket at <spool_directory>/sluice-control, mode 0600,
 * owned by the daemon's user. A client writes one command line and reads
 * the reply: lines of text, the last of which is "ok" or starts with
 * "error: ". Command-line tools use it for anything that changes the
 * state of a running daemon; test builds add a fake-clock command.
 *
 * Commands are registered by the modules that serve them, so the socket
 * code knows none of them.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stddef.h>

struct event_base;
struct evbuffer;

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

void control_register(const char *name, const char *help,
    control_command_fn fn);

/* Opens the socket at path (replacing a stale one). Returns 0, or -1
 * with *error set (caller frees). */
int control_open(struct event_base *base, const char *path, char **error);
/* Closes the socket and every client connection, and unlinks the path. */
void control_close(void);

/*
 * Sends one command to a running daemon and copies the reply into reply
 * (at most size bytes, terminated). Returns 0 when the reply ended in
 * "ok", 1 when it ended in "error: ...", -1 if the daemon could not be
 * reached (errno set).
 */
int control_request(const char *path, const char *command, char *reply,
    size_t size);

#endif

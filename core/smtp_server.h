/*
 * smtp_server.h - one SMTP session per accepted connection: greeting,
 * EHLO/HELO, the mail transaction, relay control, and the hand-over of
 * each received message to the spool.
 *
 * A message is acknowledged with "250 OK id=<id>" only after the spool
 * store reports its commit durable; a failed commit gets 451.
 *
 * Relay control: a recipient is accepted when its domain is in the
 * domainlist local_domains or relay_to_domains, or when the client's IP
 * address is in the hostlist relay_from_hosts; any other recipient gets
 * "550 relay not permitted". There is no local delivery, so a
 * local_domains recipient is queued like a relayed one.
 *
 * All functions belong to the event loop thread.
 */
#ifndef SLUICE_SMTP_SERVER_H
#define SLUICE_SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "config.h"

struct bufferevent;
struct event_base;
struct spool_store;

/* Counters since start-up, for the control socket's "stats". */
struct smtp_server_stats {
	size_t sessions_open;
	uint64_t sessions_total;
	uint64_t messages_accepted;	/* answered 250 after DATA */
	uint64_t messages_rejected;	/* content refused after DATA */
	uint64_t messages_failed;	/* answered 4xx after DATA */
	uint64_t recipients_rejected;	/* relay not permitted */
	uint64_t connections_refused;	/* over smtp_accept_max or
					 * smtp_accept_max_per_host */
};

/*
 * Sets what every new session uses: config and store stay owned by the
 * caller and must outlive the sessions (and any commit in flight, which
 * spool_store_free() completes). Checks the relay lists. Returns 0, or
 * -1 with *error set (caller frees) when a list contains an item that
 * cannot be matched.
 */
int smtp_server_init(struct event_base *base, const struct config *config,
    struct spool_store *store, char **error);

/* Called for each message once it is durable on the spool and has been
 * acknowledged, so that delivery can start at once. */
typedef void (*smtp_server_arrival_fn)(void *arg, const char *id);
void smtp_server_set_arrival_hook(smtp_server_arrival_fn fn, void *arg);

/*
 * Starts a session on an accepted, non-blocking socket; takes ownership
 * of fd. A connection over smtp_accept_max or smtp_accept_max_per_host,
 * or outside smtp_reserve_hosts once only the reserve is left, is
 * answered 421 and closed; one that sends before the greeting gets
 * "554 SMTP synchronization error" (smtp_enforce_sync).
 */
void smtp_server_accept(int fd, const struct sockaddr *peer,
    socklen_t peer_len);

/*
 * Starts a session on bev, the server's end of a connection that is not
 * a socket (one end of a bufferevent pair), as if peer had connected:
 * -bh and the fuzz target drive sessions this way. Takes ownership of
 * bev. No connection limit or synchronization check applies, as in
 * Exim's -bh.
 */
void smtp_server_start(struct bufferevent *bev, const struct sockaddr *peer,
    socklen_t peer_len);

/*
 * Turns every session into a test session, as for -bh: a message is
 * read and checked but not stored, the reply to its final dot is
 * followed by a notice that its id is not real, and each policy
 * decision is written to trace as a ">>> " line. Call it before
 * smtp_server_init(), which then accepts a NULL store.
 */
void smtp_server_set_host_checking(FILE *trace);

typedef void (*smtp_server_done_fn)(void *arg);

/*
 * Begins the daemon's shutdown: sessions waiting for a command get
 * "421 <host> Service not available, closing transmission
 * channel" and closed, and so is every new connection. A session in the
 * middle of DATA finishes its message (and gets its 250 once the spool
 * has it) and is then answered 421. Once no session is left, or after
 * SMTP_SERVER_SHUTDOWN_GRACE_SEC, when the rest are cut off, done(arg)
 * runs once. Calling it again changes nothing.
 */
void smtp_server_shutdown(smtp_server_done_fn done, void *arg);

/* Number of open sessions. */
size_t smtp_server_session_count(void);

void smtp_server_stats(struct smtp_server_stats *out);

#endif

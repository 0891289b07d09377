/*
 * smtp_pool.h - outbound SMTP connections shared by all deliveries:
 * reuse, caps, egress sources and the TLS choice per host.
 *
 * A delivery hands the pool one message and a path: a destination (host
 * name, IP address, port) and optionally the egress source to connect
 * from. Without a source the pool takes one from the
 * egress_sources option, by address family and in turn; with none of
 * the family, the system chooses and EHLO sends primary_hostname.
 *
 * The pool keeps connections open between messages:
 *  - After a message, a connection that can carry more (fewer than
 *    connection_max_messages so far, no error) goes to the next delivery
 *    waiting for the same path, or stays idle for connection_idle_timeout
 *    and then gets QUIT. A path is (source IP, EHLO name, destination IP,
 *    port), so a message never leaves from another address than asked.
 *  - An idle connection that the server closes, or where it sends a 421,
 *    is just dropped.
 *  - When a reused connection fails before the server has answered
 *    anything of a message, the message is tried once more on a new
 *    connection, so a server that closed an idle connection at the
 *    wrong moment costs nothing.
 *
 * Caps: at most outbound_connections_max connections in all, idle ones
 * included, and outbound_connections_max_per_host to one destination IP
 * address. A delivery past a cap waits in line (first come, first
 * served among those that fit) until a connection closes or becomes
 * free; an idle connection to another host is closed to make room.
 *
 * TLS: the pool creates the client TLS context (tls_verify_certificates
 * of the remote side is the option remote_tls_verify_certificates) and
 * matches each destination against hosts_require_tls and
 * hosts_avoid_tls.
 *
 * Thread use: the loop thread. Fatal: out of memory, invalid host lists
 * or TLS settings at start-up (configuration errors).
 */
#ifndef SLUICE_SMTP_POOL_H
#define SLUICE_SMTP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_client.h"

struct config;
struct dns_address;
struct dns_resolver;
struct event_base;
struct smtp_pool;
struct smtp_pool_request;

/* The destination of a message, and the source it leaves from. */
struct smtp_pool_path {
	const char *host_name;	/* MX or smarthost name, or the IP itself */
	const char *ip;		/* destination address */
	int port;
	const char *source_ip;	/* NULL: the pool chooses */
	const char *helo_name;	/* with source_ip; NULL: its configured
				 * name, else primary_hostname */
	/* Messages per connection on this path, when lower than
	 * connection_max_messages; 0 for no own limit. */
	unsigned max_messages;
	/* The cap on connections open at once, idle and closing ones
	 * included, over every path of one group. A group is an egress
	 * path of the scheduler: one source towards one site, whatever
	 * its hosts and addresses. group NULL or group_max 0: no cap. */
	const char *group;
	unsigned group_max;
};

struct smtp_pool_stats {
	size_t open;		/* connections, idle ones included */
	size_t idle;
	size_t waiting;		/* deliveries waiting for a cap */
	uint64_t connections;	/* opened since the start */
	uint64_t messages;	/* results handed over */
	uint64_t reused;	/* of them, over a reused connection */
};

/* Creates the pool; config and resolver are borrowed and must outlive
 * it. Loads the egress sources and starts their PTR checks. */
struct smtp_pool *smtp_pool_new(struct event_base *base,
    const struct config *config, struct dns_resolver *resolver);

/* Closes every connection at once, cancels every request without
 * calling back, and frees the pool. Accepts NULL. */
void smtp_pool_free(struct smtp_pool *pool);

/* Sends QUIT on the idle connections and keeps none idle from now on. */
void smtp_pool_shutdown(struct smtp_pool *pool);

/*
 * Delivers message over path. path is borrowed for the call. message
 * and everything it points to (recipients, DSN records, header, -D file)
 * must stay valid until the callback runs or the request is cancelled,
 * because a request may wait in line before its connection starts. cb runs once, never before this returns, with the result
 * (result->connection_open is always false: the pool keeps the
 * connection). Returns the request, valid until cb runs or it is
 * cancelled, or NULL with *error set (caller frees) when the path or
 * message is unusable.
 */
struct smtp_pool_request *smtp_pool_deliver(struct smtp_pool *pool,
    const struct smtp_pool_path *path,
    const struct smtp_client_message *message, smtp_client_cb cb, void *arg,
    char **error);

/* Stops a request; its callback will not run. A connection carrying its
 * message is closed. */
void smtp_pool_cancel(struct smtp_pool_request *request);

/* True when address is one of this host's (for MX records that point
 * back here). */
bool smtp_pool_is_local(const struct dns_address *address, void *pool);

void smtp_pool_stats(const struct smtp_pool *pool,
    struct smtp_pool_stats *out);

#endif

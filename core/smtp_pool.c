/*
 * smtp_pool.c - outbound SMTP connections: reuse, caps, egress sources
 * and TLS per host (see smtp_pool.h).
 *
 * Objects:
 *  - struct pool_conn: one open connection (an smtp_client), busy with
 *    a request or idle with a timer. It goes when the client does.
 *  - struct smtp_pool_request: one message over one path. It waits in
 *    line while a cap stops it, then runs on a connection until the
 *    client's result comes back.
 * Waiting requests are served from a timer on the loop, never inside
 * the callback or call that freed a connection, so no caller sees its
 * own callbacks run before it returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "config.h"
#include "dns.h"
#include "egress.h"
#include "local_address.h"
#include "log.h"
#include "match.h"
#include "smtp_pool.h"
#include "smtp_tls.h"
#include "spool_header.h"
#include "util.h"

struct pool_conn {
	struct smtp_pool *pool;
	struct smtp_client *client;
	/* The path the connection serves. */
	char source_ip[INET6_ADDRSTRLEN];	/* "" when not bound */
	char *helo_name;
	char *host_name;
	char ip[INET6_ADDRSTRLEN];
	int port;
	unsigned max_messages;		/* of its path; 0 for the option's */
	char *group;			/* its path's group, or NULL */
	struct smtp_pool_request *request;	/* NULL while idle */
	struct clock_timer *idle_timer;
	bool quitting;			/* QUIT sent; on pool->quitting */
	struct pool_conn *prev, *next;
};

struct smtp_pool_request {
	struct smtp_pool *pool;
	struct pool_conn *conn;		/* while running */
	struct smtp_client_target target;	/* strings below */
	char *host_name, *helo_name;
	char ip[INET6_ADDRSTRLEN];
	char source_ip[INET6_ADDRSTRLEN];	/* "" when not bound */
	unsigned max_messages;		/* per connection; 0: the option */
	char *group;			/* see smtp_pool_path; or NULL */
	unsigned group_max;
	struct smtp_client_message message;	/* borrowed contents */
	smtp_client_cb cb;
	void *arg;
	bool retried;			/* after a stale connection */
	bool waiting;
	struct smtp_pool_request *prev, *next;	/* the line */
};

struct smtp_pool {
	struct event_base *base;
	const struct config *config;
	struct smtp_client_options options;
	struct egress_set *egress;
	struct local_addresses *local;
	struct smtp_tls_context *tls;
	struct pool_conn *conns;	/* busy or idle */
	struct pool_conn *quitting;	/* until their clients are gone */
	size_t open, idle;
	struct smtp_pool_request *first, *last;	/* waiting, in order */
	size_t waiting;
	struct clock_timer *serve_timer;
	bool stopping;
	struct smtp_pool_stats stats;
};

static void pool_client_cb(void *arg, struct smtp_result *result);
static void pool_schedule_serve(struct smtp_pool *pool);
static bool pool_try_start(struct smtp_pool_request *request, bool fresh);
static void pool_wait(struct smtp_pool_request *request, bool front);

/* --- connections ---------------------------------------------------- */

/* Takes a connection off its list (and a busy or idle one out of the
 * counts). */
static void
pool_conn_unlink(struct pool_conn *conn)
{
	struct smtp_pool *pool = conn->pool;
	struct pool_conn **head = conn->quitting ? &pool->quitting :
	    &pool->conns;

	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		*head = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	if (conn->quitting)
		return;
	if (conn->request == NULL)
		pool->idle--;
	pool->open--;
}

static void
pool_conn_free(struct pool_conn *conn)
{
	pool_conn_unlink(conn);
	clock_timer_free(conn->idle_timer);
	free(conn->helo_name);
	free(conn->host_name);
	free(conn->group);
	free(conn);
}

/* The client of an idle or quitting connection is gone (the server
 * ended the connection, or QUIT is done). */
static void
pool_client_gone_cb(void *arg, struct smtp_client *client)
{
	struct pool_conn *conn = arg;
	struct smtp_pool *pool = conn->pool;

	(void)client;
	pool_conn_free(conn);
	pool_schedule_serve(pool);
}

/* Ends an idle connection with QUIT. It stops counting against the caps
 * now and stays listed until the client is gone. */
static void
pool_conn_quit(struct pool_conn *conn)
{
	struct smtp_pool *pool = conn->pool;

	clock_timer_cancel(conn->idle_timer);
	pool_conn_unlink(conn);
	conn->quitting = true;
	conn->next = pool->quitting;
	if (pool->quitting != NULL)
		pool->quitting->prev = conn;
	pool->quitting = conn;
	smtp_client_set_idle_cb(conn->client, pool_client_gone_cb, conn);
	smtp_client_quit(conn->client);
	pool_schedule_serve(pool);
}

static void
pool_idle_timeout_cb(void *arg)
{
	pool_conn_quit(arg);
}

/* Parks a connection whose message is done, or ends it. */
static void
pool_conn_release(struct pool_conn *conn)
{
	struct smtp_pool *pool = conn->pool;
	unsigned max = (unsigned)pool->config->connection_max_messages;

	if (conn->max_messages > 0 && (max == 0 || conn->max_messages < max))
		max = conn->max_messages;
	conn->request = NULL;
	pool->idle++;
	if (pool->stopping || pool->config->connection_idle_timeout == 0 ||
	    (max > 0 && smtp_client_messages(conn->client) >= max)) {
		pool_conn_quit(conn);
		return;
	}
	smtp_client_set_idle_cb(conn->client, pool_client_gone_cb, conn);
	clock_timer_arm(conn->idle_timer,
	    (uint64_t)pool->config->connection_idle_timeout * 1000000);
	pool_schedule_serve(pool);
}

/* True when conn serves the request's path. */
static bool
pool_conn_matches(const struct pool_conn *conn,
    const struct smtp_pool_request *request)
{
	return conn->port == request->target.port &&
	    strcmp(conn->ip, request->ip) == 0 &&
	    strcmp(conn->source_ip, request->source_ip) == 0 &&
	    strcmp(conn->helo_name, request->helo_name) == 0 &&
	    strcasecmp(conn->host_name, request->host_name) == 0;
}

/* Counts the connections of group, closing ones included, because the
 * server has a session open until the client is gone. */
static size_t
pool_group_conns(const struct smtp_pool *pool, const char *group)
{
	size_t n = 0;

	for (int list = 0; list < 2; list++)
		for (const struct pool_conn *c = list == 0 ? pool->conns :
		    pool->quitting; c != NULL; c = c->next)
			if (c->group != NULL && strcmp(c->group, group) == 0)
				n++;
	return n;
}

/* True when the request's group has no room for another connection. */
static bool
pool_group_full(const struct smtp_pool *pool,
    const struct smtp_pool_request *request)
{
	return request->group != NULL && request->group_max > 0 &&
	    pool_group_conns(pool, request->group) >= request->group_max;
}

/* An idle connection of the request's group, to another host. */
static struct pool_conn *
pool_group_idle(const struct smtp_pool *pool,
    const struct smtp_pool_request *request)
{
	for (struct pool_conn *c = pool->conns; c != NULL; c = c->next)
		if (c->request == NULL && c->group != NULL &&
		    strcmp(c->group, request->group) == 0)
			return c;
	return NULL;
}

static size_t
pool_conns_to(const struct smtp_pool *pool, const char *ip)
{
	size_t n = 0;

	for (const struct pool_conn *c = pool->conns; c != NULL; c = c->next)
		if (strcmp(c->ip, ip) == 0)
			n++;
	return n;
}

/* Finds an idle connection: for the request's path (match), or, when
 * match is false, any idle one whose address is ip (or any at all for
 * ip NULL). */
static struct pool_conn *
pool_find_idle(const struct smtp_pool *pool,
    const struct smtp_pool_request *request, bool match, const char *ip)
{
	for (struct pool_conn *c = pool->conns; c != NULL; c = c->next) {
		if (c->request != NULL)
			continue;
		if (match ? pool_conn_matches(c, request) :
		    (ip == NULL || strcmp(c->ip, ip) == 0))
			return c;
	}
	return NULL;
}

/* --- running a request ---------------------------------------------- */

/* Hands a result that could not come from a client to the caller. */
static void
pool_request_fail(struct smtp_pool_request *request, const char *error)
{
	struct smtp_result *result = smtp_result_new_deferred(&request->target,
	    &request->message, SMTP_ERROR_LOCAL, 0, error);

	log_write(LOG_MAIN | LOG_PANIC, request->message.header->id,
	    "cannot deliver to %s [%s]: %s", request->host_name, request->ip,
	    error);
	pool_client_cb(request, result);
}

/* Runs a request on an idle connection of its path. */
static void
pool_run_on(struct smtp_pool_request *request, struct pool_conn *conn)
{
	struct smtp_pool *pool = request->pool;
	char *error = NULL;

	clock_timer_cancel(conn->idle_timer);
	smtp_client_set_idle_cb(conn->client, NULL, NULL);
	pool->idle--;
	conn->request = request;
	request->conn = conn;
	if (smtp_client_next(conn->client, &request->message, pool_client_cb,
	    request, &error) != 0) {
		/* The message passed the checks when the request came in,
		 * so the connection is what failed: use a new one. */
		free(error);
		conn->request = NULL;
		request->conn = NULL;
		pool->idle++;
		pool_conn_quit(conn);
		if (!pool_try_start(request, true))
			pool_wait(request, true);
	}
}

/* Opens a new connection for a request. */
static void
pool_run_new(struct smtp_pool_request *request)
{
	struct smtp_pool *pool = request->pool;
	struct pool_conn *conn = xcalloc(1, sizeof(*conn));
	char *error = NULL;

	conn->client = smtp_client_start(pool->base, &request->target,
	    &request->message, &pool->options, pool_client_cb, request,
	    &error);
	if (conn->client == NULL) {
		free(conn);
		pool_request_fail(request, error);
		free(error);
		return;
	}
	conn->pool = pool;
	strlcpy_s(conn->source_ip, request->source_ip,
	    sizeof(conn->source_ip));
	conn->helo_name = xstrdup(request->helo_name);
	conn->host_name = xstrdup(request->host_name);
	strlcpy_s(conn->ip, request->ip, sizeof(conn->ip));
	conn->port = request->target.port;
	conn->max_messages = request->max_messages;
	conn->group = request->group != NULL ? xstrdup(request->group) : NULL;
	conn->request = request;
	conn->idle_timer = clock_timer_new(pool->base, pool_idle_timeout_cb,
	    conn);
	conn->next = pool->conns;
	if (pool->conns != NULL)
		pool->conns->prev = conn;
	pool->conns = conn;
	pool->open++;
	pool->stats.connections++;
	request->conn = conn;
}

/* Whether the caps let one more connection open to ip. */
static bool
pool_caps_allow(const struct smtp_pool *pool, const char *ip)
{
	int max = pool->config->outbound_connections_max;
	int per_host = pool->config->outbound_connections_max_per_host;

	if (max > 0 && pool->open >= (size_t)max)
		return false;
	return per_host <= 0 || pool_conns_to(pool, ip) < (size_t)per_host;
}

/* Starts a request now if a connection is free or may open; returns
 * false when it must wait. fresh skips idle connections. */
static bool
pool_try_start(struct smtp_pool_request *request, bool fresh)
{
	struct smtp_pool *pool = request->pool;
	struct pool_conn *idle;

	if (!fresh && (idle = pool_find_idle(pool, request, true, NULL)) != NULL) {
		pool_run_on(request, idle);
		return true;
	}
	if (pool_group_full(pool, request)) {
		/* An idle one of the group to another host makes room once
		 * its client is gone, which serves the line again. */
		if ((idle = pool_group_idle(pool, request)) != NULL)
			pool_conn_quit(idle);
		return false;
	}
	if (!pool_caps_allow(pool, request->ip)) {
		int per_host = pool->config->outbound_connections_max_per_host;
		bool host_full = per_host > 0 &&
		    pool_conns_to(pool, request->ip) >= (size_t)per_host;

		/* An idle connection of another path may make room: one to
		 * the same address when the per-host cap stops us, any
		 * other for the global one. */
		idle = pool_find_idle(pool, request, false,
		    host_full ? request->ip : NULL);
		if (idle == NULL)
			return false;
		pool_conn_quit(idle);
		if (!pool_caps_allow(pool, request->ip))
			return false;
	}
	pool_run_new(request);
	return true;
}

static void
pool_unlink_waiting(struct smtp_pool_request *request)
{
	struct smtp_pool *pool = request->pool;

	if (request->prev != NULL)
		request->prev->next = request->next;
	else
		pool->first = request->next;
	if (request->next != NULL)
		request->next->prev = request->prev;
	else
		pool->last = request->prev;
	request->prev = request->next = NULL;
	request->waiting = false;
	pool->waiting--;
}

static void
pool_wait(struct smtp_pool_request *request, bool front)
{
	struct smtp_pool *pool = request->pool;

	request->waiting = true;
	if (front) {
		request->next = pool->first;
		if (pool->first != NULL)
			pool->first->prev = request;
		else
			pool->last = request;
		pool->first = request;
	} else {
		request->prev = pool->last;
		if (pool->last != NULL)
			pool->last->next = request;
		else
			pool->first = request;
		pool->last = request;
	}
	pool->waiting++;
}

/* Starts every waiting request that fits, in order; the others go
 * back to the end of the line in the order they had. A result handed
 * over on the way may add or cancel requests, hence the count. */
static void
pool_serve_cb(void *arg)
{
	struct smtp_pool *pool = arg;

	for (size_t n = pool->waiting; n > 0 && pool->first != NULL; n--) {
		struct smtp_pool_request *request = pool->first;

		pool_unlink_waiting(request);
		if (!pool_try_start(request, request->retried))
			pool_wait(request, false);
	}
}

static void
pool_schedule_serve(struct smtp_pool *pool)
{
	if (pool->waiting > 0 && !clock_timer_pending(pool->serve_timer))
		clock_timer_arm(pool->serve_timer, 0);
}

/* The client's result for a request. */
static void
pool_client_cb(void *arg, struct smtp_result *result)
{
	struct smtp_pool_request *request = arg;
	struct smtp_pool *pool = request->pool;
	struct pool_conn *conn = request->conn;

	request->conn = NULL;
	if (conn != NULL) {
		if (result->connection_open)
			pool_conn_release(conn);
		else
			pool_conn_free(conn);
	}
	if (result->stale && !request->retried) {
		/* Nothing of the message was answered: once more, on a new
		 * connection. */
		smtp_result_free(result);
		request->retried = true;
		if (!pool_try_start(request, true))
			pool_wait(request, true);
		return;
	}
	result->connection_open = false;
	pool->stats.messages++;
	if (result->reused)
		pool->stats.reused++;
	request->cb(request->arg, result);
	free(request->host_name);
	free(request->helo_name);
	free(request->group);
	free(request);
	pool_schedule_serve(pool);
}

/* --- the public side ------------------------------------------------ */

/* Chooses the source and EHLO name of a request, and its TLS mode. */
static int
pool_request_path(struct smtp_pool *pool, struct smtp_pool_request *request,
    const struct smtp_pool_path *path, char **error)
{
	const struct config *config = pool->config;
	const struct egress_source *source = NULL;
	struct sockaddr_storage ss;
	int family = strchr(path->ip, ':') != NULL ? AF_INET6 : AF_INET;
	int rc;

	if (path->source_ip != NULL) {
		source = egress_set_find(pool->egress, path->source_ip);
		strlcpy_s(request->source_ip, path->source_ip,
		    sizeof(request->source_ip));
	} else if (egress_set_count(pool->egress, family) > 0) {
		/* An idle connection to the address from any source of the
		 * set is as good as a new one, and cheaper. */
		for (struct pool_conn *c = pool->conns; c != NULL; c = c->next)
			if (c->request == NULL && strcmp(c->ip, path->ip) == 0 &&
			    c->port == path->port &&
			    egress_set_find(pool->egress, c->source_ip) != NULL &&
			    strcasecmp(c->host_name, path->host_name != NULL ?
			    path->host_name : path->ip) == 0)
				source = egress_set_find(pool->egress,
				    c->source_ip);
		if (source == NULL)
			source = egress_set_pick(pool->egress, family);
		strlcpy_s(request->source_ip, source->ip,
		    sizeof(request->source_ip));
	}
	request->helo_name = xstrdup(path->helo_name != NULL ? path->helo_name :
	    source != NULL ? source->ehlo_name : config->primary_hostname);
	request->host_name = xstrdup(path->host_name != NULL ? path->host_name :
	    path->ip);
	strlcpy_s(request->ip, path->ip, sizeof(request->ip));
	request->max_messages = path->max_messages;
	if (path->group != NULL && path->group_max > 0) {
		request->group = xstrdup(path->group);
		request->group_max = path->group_max;
	}

	request->target.host_name = request->host_name;
	request->target.ip = request->ip;
	request->target.port = path->port;
	request->target.source_ip = request->source_ip[0] != '\0' ?
	    request->source_ip : NULL;
	request->target.helo_name = request->helo_name;
	request->target.tls_context = pool->tls;
	request->target.tls_tempfail_tryclear = config->tls_tempfail_tryclear;
	request->target.tls = SMTP_TLS_TRY;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (inet_pton(family, path->ip, family == AF_INET ?
	    (void *)&((struct sockaddr_in *)&ss)->sin_addr :
	    (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr) != 1) {
		*error = xasprintf("invalid IP address \"%s\"", path->ip);
		return -1;
	}
	rc = match_hostlist(config, "hosts_require_tls",
	    config->hosts_require_tls, (struct sockaddr *)&ss, error);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		request->target.tls = SMTP_TLS_REQUIRE;
		return 0;
	}
	rc = match_hostlist(config, "hosts_avoid_tls", config->hosts_avoid_tls,
	    (struct sockaddr *)&ss, error);
	if (rc < 0)
		return -1;
	if (rc == 1)
		request->target.tls = SMTP_TLS_AVOID;
	return 0;
}

struct smtp_pool_request *
smtp_pool_deliver(struct smtp_pool *pool, const struct smtp_pool_path *path,
    const struct smtp_client_message *message, smtp_client_cb cb, void *arg,
    char **error)
{
	struct smtp_pool_request *request = xcalloc(1, sizeof(*request));

	request->pool = pool;
	request->cb = cb;
	request->arg = arg;
	request->message = *message;
	if (pool_request_path(pool, request, path, error) != 0 ||
	    smtp_client_check(&request->target, message, error) != 0) {
		free(request->host_name);
		free(request->helo_name);
		free(request->group);
		free(request);
		return NULL;
	}
	/* Even a request that could start now waits for the loop, so that
	 * an error result never reaches cb before this returns. */
	pool_wait(request, false);
	pool_schedule_serve(pool);
	return request;
}

void
smtp_pool_cancel(struct smtp_pool_request *request)
{
	struct smtp_pool *pool = request->pool;
	struct pool_conn *conn = request->conn;

	if (request->waiting)
		pool_unlink_waiting(request);
	if (conn != NULL) {
		smtp_client_abort(conn->client);
		pool_conn_free(conn);
	}
	free(request->host_name);
	free(request->helo_name);
	free(request->group);
	free(request);
	pool_schedule_serve(pool);
}

bool
smtp_pool_is_local(const struct dns_address *address, void *arg)
{
	const struct smtp_pool *pool = arg;

	return local_addresses_contain(pool->local, address->family,
	    &address->addr);
}

void
smtp_pool_stats(const struct smtp_pool *pool, struct smtp_pool_stats *out)
{
	*out = pool->stats;
	out->open = pool->open;
	out->idle = pool->idle;
	out->waiting = pool->waiting;
}

static uint64_t
pool_usec(int seconds)
{
	return (uint64_t)seconds * 1000000;
}

struct smtp_pool *
smtp_pool_new(struct event_base *base, const struct config *config,
    struct dns_resolver *resolver)
{
	struct smtp_pool *pool = xcalloc(1, sizeof(*pool));
	char *error = NULL, *warning = NULL;

	pool->base = base;
	pool->config = config;
	smtp_client_options_init(&pool->options);
	pool->options.connect_timeout_usec = pool_usec(config->connect_timeout);
	pool->options.greeting_timeout_usec =
	    pool_usec(config->greeting_timeout);
	pool->options.command_timeout_usec = pool_usec(config->command_timeout);
	pool->options.data_timeout_usec = pool_usec(config->data_timeout);
	pool->options.final_timeout_usec = pool_usec(config->final_timeout);
	pool->options.max_rcpt = (unsigned)config->max_rcpt;
	pool->options.keep_open = config->connection_max_messages != 1 &&
	    config->connection_idle_timeout > 0;

	if (match_check_hostlist(config, "hosts_require_tls",
	    config->hosts_require_tls, &error) != 0 ||
	    match_check_hostlist(config, "hosts_avoid_tls",
	    config->hosts_avoid_tls, &error) != 0)
		fatalx("%s", error);
	pool->tls = smtp_tls_context_new(config->remote_tls_verify_certificates,
	    &error);
	if (pool->tls == NULL)
		fatalx("%s", error);
	pool->egress = egress_set_load(config, resolver, &error);
	if (pool->egress == NULL)
		fatalx("%s", error);
	pool->local = local_addresses_load(config, &warning);
	if (warning != NULL) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "%s; an MX record that "
		    "points at this host may go unnoticed", warning);
		free(warning);
	}
	pool->serve_timer = clock_timer_new(base, pool_serve_cb, pool);
	return pool;
}

void
smtp_pool_shutdown(struct smtp_pool *pool)
{
	struct pool_conn *conn = pool->conns;

	pool->stopping = true;
	while (conn != NULL) {
		struct pool_conn *next = conn->next;

		if (conn->request == NULL)
			pool_conn_quit(conn);
		conn = next;
	}
}

void
smtp_pool_free(struct smtp_pool *pool)
{
	if (pool == NULL)
		return;
	while (pool->first != NULL) {
		struct smtp_pool_request *request = pool->first;

		pool_unlink_waiting(request);
		free(request->host_name);
		free(request->helo_name);
		free(request->group);
		free(request);
	}
	while (pool->conns != NULL) {
		struct pool_conn *conn = pool->conns;
		struct smtp_pool_request *request = conn->request;

		smtp_client_abort(conn->client);
		pool_conn_free(conn);
		if (request != NULL) {
			free(request->host_name);
			free(request->helo_name);
			free(request->group);
			free(request);
		}
	}
	while (pool->quitting != NULL) {
		struct pool_conn *conn = pool->quitting;

		smtp_client_abort(conn->client);
		pool_conn_free(conn);
	}
	clock_timer_free(pool->serve_timer);
	egress_set_free(pool->egress);
	local_addresses_free(pool->local);
	smtp_tls_context_free(pool->tls);
	free(pool);
}

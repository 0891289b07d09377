/*
 * dns.c - asynchronous MX and address lookups with c-ares (see dns.h).
 *
 * c-ares reports which sockets it wants watched through its socket-state
 * callback; each gets a persistent libevent event that hands readiness
 * back to ares_process_fd(). c-ares's retransmit deadline is kept on one
 * clock_timer. Each lookup also has its own clock_timer for the overall
 * timeout, so tests that move the fake clock see it expire.
 *
 * A lookup is an MX query followed by an A and an AAAA query per host,
 * all of the address queries in flight at once, or one PTR query. The
 * lookup counts its outstanding queries, because c-ares still calls back
 * for queries whose lookup has already finished (callback run, timed out
 * or cancelled). So a lookup is freed only once it is finished and none
 * is outstanding.
 *
 * Every query looks in the answer cache first (dns_cache.h); a hit calls
 * the query's callback at once, as c-ares does for a query that fails
 * at once, with the cached answer. Answers that c-ares returns are
 * stored with the TTL that dns_answer_inspect() finds in them.
 *
 * A query for a name and type that another query already asked, and
 * whose answer has not come yet, joins that one (a struct dns_flight)
 * instead of going to the server again: when hundreds of messages to
 * one domain start at once, the server sees one query, and every waiting
 * query gets its own copy of the answer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <ares.h>
#include <event2/event.h>

#include "clock.h"
#include "dns.h"
#include "dns_cache.h"
#include "util.h"

/* Defaults: c-ares tries each server twice, 5 seconds apart, as the
 * stub resolver of glibc does; a whole lookup may take a minute. */
#define DNS_DEFAULT_QUERY_TIMEOUT_MS	5000
#define DNS_DEFAULT_TRIES		2
#define DNS_DEFAULT_LOOKUP_TIMEOUT_USEC	(60ull * 1000000)
#define DNS_DEFAULT_PORT		53
/* Answers kept; see dns_cache.h for the memory this bounds. */
#define DNS_DEFAULT_CACHE_ENTRIES	4096

/* Record types (RFC 1035 section 3.2.2, RFC 3596). */
#define DNS_TYPE_A	1
#define DNS_TYPE_PTR	12
#define DNS_TYPE_MX	15
#define DNS_TYPE_AAAA	28

/* One socket that c-ares asked to watch. */
struct dns_socket {
	ares_socket_t fd;
	struct event *event;
	struct dns_resolver *resolver;
	struct dns_socket *next;
};

/* One query on the wire and the identical queries waiting for it. */
struct dns_flight {
	struct dns_resolver *resolver;
	char *name;
	int type;
	struct dns_query **waiters;
	size_t waiter_count;
	struct dns_flight *next;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	struct dns_flight *flights;	/* queries on the wire */
	struct dns_options options;	/* servers is not kept */
	struct dns_socket *sockets;
	struct clock_timer *retransmit_timer;
	struct dns_lookup *lookups;	/* not finished yet */
	struct dns_cache *cache;	/* NULL without caching */
	bool destroying;
};

enum dns_lookup_kind {
	DNS_LOOKUP_MX,
	DNS_LOOKUP_HOST,
	DNS_LOOKUP_PTR,
};

struct dns_lookup {
	struct dns_resolver *resolver;
	struct dns_result *result;	/* NULL once handed to the callback */
	dns_result_cb cb;
	void *arg;
	unsigned outstanding;		/* c-ares queries not called back */
	bool finished;
	enum dns_lookup_kind kind;
	char *ptr_name;			/* the in-addr.arpa or ip6.arpa name */
	struct clock_timer *start_timer;
	struct clock_timer *timeout_timer;
	struct dns_lookup *prev, *next;	/* resolver->lookups, until finished */
};

/* The argument of one c-ares query. */
struct dns_query {
	struct dns_lookup *lookup;
	size_t host;			/* index into result->hosts */
	int family;			/* AF_INET, AF_INET6, or 0 for MX */
	int type;
	char *name;			/* as asked */
	unsigned cname_queries;		/* queries made for a chain's end */
};

static void dns_update_timer(struct dns_resolver *resolver);
static void dns_lookup_detach(struct dns_lookup *lookup);
static void dns_lookup_release(struct dns_lookup *lookup);

const char *
dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:		return "ok";
	case DNS_NO_DATA:	return "no data";
	case DNS_NOT_FOUND:	return "not found";
	case DNS_NO_MAIL:	return "no mail";
	case DNS_TEMPFAIL:	return "temporary failure";
	}
	return "unknown";
}

void
dns_options_init(struct dns_options *options)
{
	memset(options, 0, sizeof(*options));
	options->port = DNS_DEFAULT_PORT;
	options->query_timeout_ms = DNS_DEFAULT_QUERY_TIMEOUT_MS;
	options->tries = DNS_DEFAULT_TRIES;
	options->lookup_timeout_usec = DNS_DEFAULT_LOOKUP_TIMEOUT_USEC;
	options->want_ipv4 = true;
	options->want_ipv6 = true;
	options->shuffle_equal_mx = true;
	options->allow_mx_to_ip = false;
	options->cache_entries = DNS_DEFAULT_CACHE_ENTRIES;
}

void
dns_options_from_config(struct dns_options *options,
    const struct config *config)
{
	dns_options_init(options);
	options->servers = config->dns_servers;
	if (config->dns_port > 0)
		options->port = config->dns_port;
	options->allow_mx_to_ip = config->allow_mx_to_ip;
}

/* --- c-ares on the event loop --------------------------------------- */

static void
dns_socket_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_socket *s = arg;
	struct dns_resolver *resolver = s->resolver;

	/* s may be freed by the socket-state callback inside this call. */
	ares_process_fd(resolver->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_update_timer(resolver);
}

static void
dns_socket_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *resolver = data;
	struct dns_socket **link = &resolver->sockets;
	struct dns_socket *s;
	short what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	while (*link != NULL && (*link)->fd != fd)
		link = &(*link)->next;
	s = *link;

	if (what == 0) {
		if (s != NULL) {
			*link = s->next;
			event_free(s->event);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->resolver = resolver;
		s->next = resolver->sockets;
		resolver->sockets = s;
	} else {
		event_free(s->event);
	}
	s->event = event_new(resolver->base, fd, what | EV_PERSIST,
	    dns_socket_cb, s);
	if (s->event == NULL || event_add(s->event, NULL) != 0)
		fatalx("cannot watch a DNS socket");
}

static void
dns_retransmit_cb(void *arg)
{
	struct dns_resolver *resolver = arg;

	ares_process_fd(resolver->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_update_timer(resolver);
}

/* Arms the timer for c-ares's next deadline, if it has one. */
static void
dns_update_timer(struct dns_resolver *resolver)
{
	struct timeval tv, *next;

	if (resolver->destroying)
		return;
	next = ares_timeout(resolver->channel, NULL, &tv);
	if (next == NULL) {
		clock_timer_cancel(resolver->retransmit_timer);
		return;
	}
	clock_timer_arm(resolver->retransmit_timer,
	    (uint64_t)next->tv_sec * 1000000 + (uint64_t)next->tv_usec);
}

static int
dns_set_servers(struct dns_resolver *resolver, const char *servers, int port,
    char **error)
{
	struct sockaddr_storage addrs[DNS_SERVERS_MAX];
	struct ares_addr_port_node nodes[DNS_SERVERS_MAX];
	size_t count;
	int rc;

	if (dns_servers_parse(servers, port, addrs, DNS_SERVERS_MAX, &count,
	    error) != 0)
		return -1;
	if (count == 0)
		return 0;	/* keep what c-ares read from resolv.conf */
	memset(nodes, 0, sizeof(nodes));
	for (size_t i = 0; i < count; i++) {
		nodes[i].next = i + 1 < count ? &nodes[i + 1] : NULL;
		nodes[i].family = addrs[i].ss_family;
		if (addrs[i].ss_family == AF_INET)
			memcpy(&nodes[i].addr.addr4,
			    &((struct sockaddr_in *)&addrs[i])->sin_addr,
			    sizeof(struct in_addr));
		else
			memcpy(&nodes[i].addr.addr6,
			    &((struct sockaddr_in6 *)&addrs[i])->sin6_addr,
			    sizeof(struct in6_addr));
		nodes[i].udp_port = port;
		nodes[i].tcp_port = port;
	}
	rc = ares_set_servers_ports(resolver->channel, nodes);
	if (rc != ARES_SUCCESS) {
		*error = xasprintf("cannot set the DNS servers: %s",
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const struct dns_options *options,
    char **error)
{
	static bool library_ready;
	struct dns_resolver *resolver;
	struct ares_options ao;
	int rc;

	if (!library_ready) {
		rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS) {
			*error = xasprintf("cannot initialise c-ares: %s",
			    ares_strerror(rc));
			return NULL;
		}
		library_ready = true;
	}

	resolver = xcalloc(1, sizeof(*resolver));
	resolver->base = base;
	resolver->options = *options;
	resolver->options.servers = NULL;
	if (resolver->options.port <= 0)
		resolver->options.port = DNS_DEFAULT_PORT;

	memset(&ao, 0, sizeof(ao));
	ao.flags = ARES_FLAG_NOSEARCH;
	ao.timeout = (int)options->query_timeout_ms;
	ao.tries = options->tries > 0 ? (int)options->tries : 1;
	ao.sock_state_cb = dns_socket_state_cb;
	ao.sock_state_cb_data = resolver;
	rc = ares_init_options(&resolver->channel, &ao, ARES_OPT_FLAGS |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		*error = xasprintf("cannot start the DNS resolver: %s",
		    ares_strerror(rc));
		free(resolver);
		return NULL;
	}
	if (dns_set_servers(resolver, options->servers,
	    resolver->options.port, error) != 0) {
		ares_destroy(resolver->channel);
		free(resolver);
		return NULL;
	}
	resolver->retransmit_timer = clock_timer_new(base, dns_retransmit_cb,
	    resolver);
	if (options->cache_entries > 0)
		resolver->cache = dns_cache_new(options->cache_entries);
	return resolver;
}

void
dns_resolver_free(struct dns_resolver *resolver)
{
	if (resolver == NULL)
		return;
	/* Finish every lookup first, so that no callback runs and no query
	 * starts. ares_destroy() then calls back each query with
	 * ARES_EDESTRUCTION, which frees the lookups that still have one. */
	resolver->destroying = true;
	while (resolver->lookups != NULL) {
		struct dns_lookup *lookup = resolver->lookups;

		dns_lookup_detach(lookup);
		dns_lookup_release(lookup);
	}
	ares_destroy(resolver->channel);
	while (resolver->sockets != NULL) {
		struct dns_socket *s = resolver->sockets;

		resolver->sockets = s->next;
		event_free(s->event);
		free(s);
	}
	clock_timer_free(resolver->retransmit_timer);
	dns_cache_free(resolver->cache);
	free(resolver);
}

size_t
dns_resolver_cache_size(const struct dns_resolver *resolver)
{
	return resolver->cache != NULL ? dns_cache_size(resolver->cache) : 0;
}

/* Frees the lookup once it is finished and has no query in c-ares. */
static void
dns_lookup_release(struct dns_lookup *lookup)
{
	if (!lookup->finished || lookup->outstanding > 0)
		return;
	clock_timer_free(lookup->start_timer);
	clock_timer_free(lookup->timeout_timer);
	dns_result_free(lookup->result);
	free(lookup->ptr_name);
	free(lookup);
}

/* Takes the lookup off the resolver's list and stops its timer. */
static void
dns_lookup_detach(struct dns_lookup *lookup)
{
	struct dns_resolver *resolver = lookup->resolver;

	if (lookup->finished)
		return;
	lookup->finished = true;
	clock_timer_cancel(lookup->start_timer);
	clock_timer_cancel(lookup->timeout_timer);
	if (lookup->prev != NULL)
		lookup->prev->next = lookup->next;
	else
		resolver->lookups = lookup->next;
	if (lookup->next != NULL)
		lookup->next->prev = lookup->prev;
	lookup->prev = lookup->next = NULL;
}

/* Hands the result to the callback; the lookup may be freed after. */
static void
dns_lookup_finish(struct dns_lookup *lookup)
{
	struct dns_result *result = lookup->result;

	dns_lookup_detach(lookup);
	lookup->result = NULL;
	lookup->cb(lookup->arg, result);
	dns_lookup_release(lookup);
}

static void
dns_lookup_fail(struct dns_lookup *lookup, enum dns_status status,
    char *error)
{
	free(lookup->result->error);
	lookup->result->status = status;
	lookup->result->error = error;
	dns_lookup_finish(lookup);
}

static void dns_query_cb(void *arg, int status, int timeouts,
    unsigned char *answer, int len);

/* Hands the answer of a flight to each of its queries, each with a copy
 * since a callback may change it. */
static void
dns_flight_cb(void *arg, int status, int timeouts, unsigned char *answer,
    int len)
{
	struct dns_flight *f = arg;
	struct dns_flight **link = &f->resolver->flights;

	/* Unlinked first: a callback may start the same query again, and
	 * that one must go to the server. */
	while (*link != NULL && *link != f)
		link = &(*link)->next;
	if (*link == f)
		*link = f->next;
	for (size_t i = 0; i < f->waiter_count; i++) {
		unsigned char *copy = NULL;

		if (answer != NULL && len > 0) {
			copy = xmalloc((size_t)len);
			memcpy(copy, answer, (size_t)len);
		}
		dns_query_cb(f->waiters[i], status, timeouts, copy, len);
		free(copy);
	}
	free(f->waiters);
	free(f->name);
	free(f);
}

/* Sends q, or joins it to the same query already on the wire. */
static void
dns_query_send(struct dns_resolver *resolver, struct dns_query *q)
{
	struct dns_flight *f;

	for (f = resolver->flights; f != NULL; f = f->next) {
		if (f->type == q->type && strcasecmp(f->name, q->name) == 0) {
			f->waiters = xreallocarray(f->waiters,
			    f->waiter_count + 1, sizeof(*f->waiters));
			f->waiters[f->waiter_count++] = q;
			return;
		}
	}
	f = xcalloc(1, sizeof(*f));
	f->resolver = resolver;
	f->name = xstrdup(q->name);
	f->type = q->type;
	f->waiters = xcalloc(1, sizeof(*f->waiters));
	f->waiters[f->waiter_count++] = q;
	f->next = resolver->flights;
	resolver->flights = f;
	/* c-ares may call dns_flight_cb before ares_query returns. */
	ares_query(resolver->channel, q->name, 1 /* C_IN */, q->type,
	    dns_flight_cb, f);
}

/*
 * Starts one query: the MX (family 0) or PTR of the lookup, or the A or
 * AAAA of host, under name when it is not NULL (the end of a CNAME
 * chain, after cname_queries such queries). A cached answer calls back
 * at once.
 */
static void
dns_query_start(struct dns_lookup *lookup, size_t host, int family,
    const char *name, unsigned cname_queries)
{
	struct dns_resolver *resolver = lookup->resolver;
	struct dns_query *q = xcalloc(1, sizeof(*q));
	const struct dns_cache_entry *cached = NULL;

	q->lookup = lookup;
	q->host = host;
	q->family = family;
	q->cname_queries = cname_queries;
	if (family == AF_INET || family == AF_INET6) {
		q->type = family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA;
		q->name = xstrdup(name != NULL ? name :
		    lookup->result->hosts[host].name);
	} else if (lookup->kind == DNS_LOOKUP_PTR) {
		q->type = DNS_TYPE_PTR;
		q->name = xstrdup(lookup->ptr_name);
	} else {
		q->type = DNS_TYPE_MX;
		q->name = xstrdup(lookup->result->domain);
	}
	lookup->outstanding++;
	if (resolver->cache != NULL)
		cached = dns_cache_get(resolver->cache, q->name, q->type,
		    clock_monotonic_usec());
	if (cached != NULL) {
		/* A copy, since the callback may change the cache. A
		 * negative timeouts count marks the answer as cached. */
		unsigned char *answer = xmalloc(cached->len + 1);

		memcpy(answer, cached->answer, cached->len);
		dns_query_cb(q, cached->status, -1, answer, (int)cached->len);
		free(answer);
		return;
	}
	dns_query_send(resolver, q);
}

/*
 * Handles an MX target that is an IP address, which RFC 5321 section 5.1
 * does not allow: with allow_mx_to_ip it is the host's address, else the
 * host has none (as Exim does). Returns true when no query is needed.
 */
static bool
dns_host_is_literal(struct dns_lookup *lookup, size_t index)
{
	struct dns_host *host = &lookup->result->hosts[index];
	unsigned char addr[sizeof(struct in6_addr)];
	int family = AF_INET;

	if (lookup->kind != DNS_LOOKUP_MX)
		return false;
	if (inet_pton(AF_INET, host->name, addr) != 1) {
		family = AF_INET6;
		if (inet_pton(AF_INET6, host->name, addr) != 1)
			return false;
	}
	if (lookup->resolver->options.allow_mx_to_ip) {
		dns_host_add_address(host, family, addr);
		dns_host_merge_status(host, DNS_OK);
	} else {
		dns_host_merge_status(host, DNS_NOT_FOUND);
	}
	return true;
}

/* Starts the A and AAAA queries of every host. */
static void
dns_lookup_resolve_hosts(struct dns_lookup *lookup)
{
	const struct dns_options *options = &lookup->resolver->options;
	size_t count = lookup->result->host_count;

	/* Holds the lookup alive while queries that fail at once call
	 * back inside dns_query_start(). */
	lookup->outstanding++;
	for (size_t i = 0; i < count && !lookup->finished; i++) {
		if (dns_host_is_literal(lookup, i))
			continue;
		if (options->want_ipv4)
			dns_query_start(lookup, i, AF_INET, NULL, 0);
		if (options->want_ipv6 && !lookup->finished)
			dns_query_start(lookup, i, AF_INET6, NULL, 0);
	}
	lookup->outstanding--;
	if (lookup->finished) {
		dns_lookup_release(lookup);
		return;
	}
	if (lookup->outstanding == 0) {
		dns_result_settle(lookup->result);
		dns_lookup_finish(lookup);
	}
}

static void
dns_mx_answer(struct dns_lookup *lookup, int ares_status,
    const unsigned char *answer, int len)
{
	struct dns_result *result = lookup->result;
	enum dns_status status = dns_status_from_ares(ares_status);
	char *error = NULL;

	if (status == DNS_OK)
		status = dns_mx_answer_parse(answer, len, &result->hosts,
		    &result->host_count, &error);
	switch (status) {
	case DNS_OK:
		if (lookup->resolver->options.shuffle_equal_mx)
			dns_hosts_shuffle_equal(result->hosts,
			    result->host_count, arc4random_uniform);
		break;
	case DNS_NO_DATA:
		/* RFC 5321 section 5.1: no MX, so the domain is its own
		 * mail host. */
		result->implicit_mx = true;
		result->hosts = xcalloc(1, sizeof(*result->hosts));
		result->hosts[0].name = dns_name_copy(result->domain);
		result->hosts[0].status = DNS_NO_DATA;
		result->host_count = 1;
		break;
	case DNS_NOT_FOUND:
		dns_lookup_fail(lookup, status,
		    xasprintf("domain %s does not exist", result->domain));
		return;
	case DNS_NO_MAIL:
		dns_lookup_fail(lookup, status, xasprintf("domain %s accepts "
		    "no mail (null MX record)", result->domain));
		return;
	case DNS_TEMPFAIL:
		dns_lookup_fail(lookup, status, error != NULL ? error :
		    xasprintf("MX lookup for %s failed: %s", result->domain,
		    ares_strerror(ares_status)));
		return;
	}
	dns_lookup_resolve_hosts(lookup);
}

/*
 * Takes an A or AAAA answer into its host. When the answer ends in a
 * CNAME whose target it does not resolve, queries the target instead,
 * a bounded number of times.
 */
static void
dns_address_answer(struct dns_query *q, int ares_status,
    const unsigned char *answer, int len, const struct dns_answer_info *info,
    bool inspected)
{
	struct dns_lookup *lookup = q->lookup;
	struct dns_host *host = &lookup->result->hosts[q->host];
	enum dns_status status = dns_status_from_ares(ares_status);
	char *error = NULL;

	if (status == DNS_OK && inspected && info->type_records == 0 &&
	    info->cname_links > 0) {
		if (q->cname_queries < DNS_CNAME_QUERIES_MAX) {
			dns_query_start(lookup, q->host, q->family,
			    info->chain_end, q->cname_queries + 1);
			return;
		}
		status = DNS_NOT_FOUND;	/* the chain never ends */
	}
	if (status == DNS_OK &&
	    dns_address_answer_add(host, q->family, answer, len, &error) != 0) {
		free(error);
		status = DNS_TEMPFAIL;
	}
	dns_host_merge_status(host, status);
}

/* Takes a PTR answer: each name becomes a host without addresses. */
static void
dns_ptr_answer(struct dns_lookup *lookup, int ares_status,
    const unsigned char *answer, int len)
{
	struct dns_result *result = lookup->result;
	enum dns_status status = dns_status_from_ares(ares_status);
	unsigned char addr[sizeof(struct in6_addr)] = { 0 };
	struct hostent *he = NULL;

	/* c-ares copies addr into the hostent; which one does not matter
	 * here, only the names. */
	if (status == DNS_OK && ares_parse_ptr_reply(answer, len, addr,
	    sizeof(struct in_addr), AF_INET, &he) != ARES_SUCCESS)
		status = DNS_TEMPFAIL;
	if (he != NULL) {
		for (size_t i = 0; he->h_aliases[i] != NULL &&
		    result->host_count < DNS_MX_HOSTS_MAX; i++) {
			result->hosts = xreallocarray(result->hosts,
			    result->host_count + 1, sizeof(*result->hosts));
			memset(&result->hosts[result->host_count], 0,
			    sizeof(*result->hosts));
			result->hosts[result->host_count].name =
			    dns_name_copy(he->h_aliases[i]);
			result->hosts[result->host_count].status = DNS_OK;
			result->host_count++;
		}
		ares_free_hostent(he);
	}
	if (status == DNS_OK && result->host_count == 0)
		status = DNS_NO_DATA;
	free(result->error);
	result->error = NULL;
	result->status = status == DNS_NO_DATA ? DNS_NOT_FOUND : status;
	if (result->status != DNS_OK)
		result->error = xasprintf("PTR lookup for %s: %s",
		    result->domain, dns_status_name(status));
	dns_lookup_finish(lookup);
}

/* Stores what c-ares answered in the cache, for as long as the answer
 * allows. Returns whether info describes the answer. */
static bool
dns_query_remember(struct dns_query *q, int status,
    const unsigned char *answer, int len, int timeouts,
    struct dns_answer_info *info)
{
	struct dns_cache *cache = q->lookup->resolver->cache;
	char *error = NULL;
	uint32_t ttl;

	if (answer == NULL || len <= 0 ||
	    dns_answer_inspect(answer, (size_t)len, q->type, info,
	    &error) != 0) {
		free(error);
		return false;
	}
	/* timeouts < 0 marks an answer that came from the cache. */
	if (cache == NULL || timeouts < 0)
		return true;
	if (status == ARES_SUCCESS)
		ttl = info->ttl;
	else if (status == ARES_ENODATA || status == ARES_ENOTFOUND)
		ttl = info->has_soa ? (info->negative_ttl <
		    DNS_CACHE_NEGATIVE_TTL_MAX ? info->negative_ttl :
		    DNS_CACHE_NEGATIVE_TTL_MAX) : 0;
	else
		return true;
	dns_cache_put(cache, q->name, q->type, status, answer, (size_t)len,
	    ttl, clock_monotonic_usec());
	return true;
}

static void
dns_query_free(struct dns_query *q)
{
	free(q->name);
	free(q);
}

static void
dns_query_cb(void *arg, int status, int timeouts, unsigned char *answer,
    int len)
{
	struct dns_query *q = arg;
	struct dns_lookup *lookup = q->lookup;
	struct dns_answer_info info;
	bool inspected;

	lookup->outstanding--;
	if (lookup->finished || status == ARES_EDESTRUCTION ||
	    status == ARES_ECANCELLED) {
		dns_query_free(q);
		dns_lookup_release(lookup);
		return;
	}
	inspected = dns_query_remember(q, status, answer, len, timeouts,
	    &info);
	if (q->family == 0) {
		dns_query_free(q);
		if (lookup->kind == DNS_LOOKUP_PTR)
			dns_ptr_answer(lookup, status, answer, len);
		else
			dns_mx_answer(lookup, status, answer, len);
		return;
	}
	/* Holds the lookup alive while a query for a CNAME's target may
	 * call back at once. */
	lookup->outstanding++;
	dns_address_answer(q, status, answer, len, &info, inspected);
	dns_query_free(q);
	lookup->outstanding--;
	if (lookup->finished) {
		dns_lookup_release(lookup);
		return;
	}
	if (lookup->outstanding == 0) {
		dns_result_settle(lookup->result);
		dns_lookup_finish(lookup);
	}
}

static void
dns_lookup_timeout_cb(void *arg)
{
	struct dns_lookup *lookup = arg;
	uint64_t usec = lookup->resolver->options.lookup_timeout_usec;

	dns_lookup_fail(lookup, DNS_TEMPFAIL, xasprintf("DNS lookup for %s "
	    "timed out after %llu.%03llu s", lookup->result->domain,
	    (unsigned long long)(usec / 1000000),
	    (unsigned long long)(usec % 1000000 / 1000)));
}

/* Starts the first queries, from the loop: c-ares calls back inside
 * ares_query() when a query fails at once (and so does a cache hit),
 * and the callback of a lookup must not run before the function that
 * started it returns. */
static void
dns_lookup_start_cb(void *arg)
{
	struct dns_lookup *lookup = arg;
	struct dns_resolver *resolver = lookup->resolver;

	clock_timer_arm(lookup->timeout_timer,
	    resolver->options.lookup_timeout_usec);
	if (lookup->kind == DNS_LOOKUP_HOST) {
		dns_lookup_resolve_hosts(lookup);
	} else {
		lookup->outstanding++;
		dns_query_start(lookup, 0, 0, NULL, 0);
		lookup->outstanding--;
		dns_lookup_release(lookup);
	}
	/* The lookup may be gone here. */
	dns_update_timer(resolver);
}

static struct dns_lookup *
dns_lookup_start(struct dns_resolver *resolver, const char *name,
    enum dns_lookup_kind kind, char *ptr_name, dns_result_cb cb, void *arg)
{
	struct dns_lookup *lookup;
	struct dns_result *result;

	result = xcalloc(1, sizeof(*result));
	result->domain = dns_name_copy(name);
	result->status = DNS_TEMPFAIL;
	if (kind == DNS_LOOKUP_HOST) {
		result->hosts = xcalloc(1, sizeof(*result->hosts));
		result->hosts[0].name = dns_name_copy(name);
		result->hosts[0].status = DNS_NO_DATA;
		result->host_count = 1;
	}

	lookup = xcalloc(1, sizeof(*lookup));
	lookup->resolver = resolver;
	lookup->result = result;
	lookup->cb = cb;
	lookup->arg = arg;
	lookup->kind = kind;
	lookup->ptr_name = ptr_name;
	lookup->start_timer = clock_timer_new(resolver->base,
	    dns_lookup_start_cb, lookup);
	lookup->timeout_timer = clock_timer_new(resolver->base,
	    dns_lookup_timeout_cb, lookup);
	lookup->next = resolver->lookups;
	if (resolver->lookups != NULL)
		resolver->lookups->prev = lookup;
	resolver->lookups = lookup;
	clock_timer_arm(lookup->start_timer, 0);
	return lookup;
}

static int
dns_check_name(const char *name, char **error)
{
	if (dns_name_check(name) == 0)
		return 0;
	*error = xasprintf("\"%.*s\" is not a valid domain name",
	    DNS_NAME_MAX + 1, name);
	return -1;
}

struct dns_lookup *
dns_lookup_mx(struct dns_resolver *resolver, const char *domain,
    dns_result_cb cb, void *arg, char **error)
{
	if (dns_check_name(domain, error) != 0)
		return NULL;
	return dns_lookup_start(resolver, domain, DNS_LOOKUP_MX, NULL, cb,
	    arg);
}

struct dns_lookup *
dns_lookup_host(struct dns_resolver *resolver, const char *name,
    dns_result_cb cb, void *arg, char **error)
{
	if (dns_check_name(name, error) != 0)
		return NULL;
	return dns_lookup_start(resolver, name, DNS_LOOKUP_HOST, NULL, cb,
	    arg);
}

/* Writes the reverse-lookup name of an address (RFC 1035 section 3.5,
 * RFC 3596 section 2.5). Returns NULL when text is not an address. */
static char *
dns_reverse_name(const char *text)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char a[sizeof(struct in6_addr)];
	char name[80];
	size_t n = 0;

	if (inet_pton(AF_INET, text, a) == 1)
		return xasprintf("%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1],
		    a[0]);
	if (inet_pton(AF_INET6, text, a) != 1)
		return NULL;
	for (int i = 15; i >= 0; i--) {
		name[n++] = hex[a[i] & 0x0f];
		name[n++] = '.';
		name[n++] = hex[a[i] >> 4];
		name[n++] = '.';
	}
	memcpy(name + n, "ip6.arpa", sizeof("ip6.arpa"));
	return xstrdup(name);
}

struct dns_lookup *
dns_lookup_ptr(struct dns_resolver *resolver, const char *address,
    dns_result_cb cb, void *arg, char **error)
{
	char *ptr_name = dns_reverse_name(address);

	if (ptr_name == NULL) {
		*error = xasprintf("\"%.60s\" is not an IP address", address);
		return NULL;
	}
	return dns_lookup_start(resolver, address, DNS_LOOKUP_PTR, ptr_name,
	    cb, arg);
}

void
dns_lookup_cancel(struct dns_lookup *lookup)
{
	dns_lookup_detach(lookup);
	dns_lookup_release(lookup);
}

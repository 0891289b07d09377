/*
 * dns.h - asynchronous DNS for outbound mail: MX hosts and their
 * addresses, looked up with c-ares on the libevent loop.
 *
 * dns_lookup_mx() finds where mail for a domain goes (RFC 5321 section
 * 5.1): the MX records sorted by preference, each host resolved to its
 * A and AAAA records. A domain without MX records gets an implicit MX,
 * the domain itself at preference 0. A null MX (a single record "."
 * at preference 0, RFC 7505) means the domain accepts no mail.
 * dns_lookup_host() resolves one host name, for a smarthost.
 *
 * The resolver queries the servers named by the dns_servers option (an
 * Exim list of IPv4 or IPv6 addresses) on port dns_port. When
 * dns_servers is empty, c-ares reads /etc/resolv.conf as usual. Only
 * plain queries are made: no search domains are appended and /etc/hosts
 * is not read.
 *
 * Every lookup ends in exactly one call of its callback, unless it is
 * cancelled first: with DNS_OK and at least one address, with a
 * permanent failure (DNS_NOT_FOUND, DNS_NO_MAIL) or with DNS_TEMPFAIL
 * (server failure, refusal, malformed answer, timeout). Each lookup has
 * an overall timeout on the sluice clock, besides c-ares's own
 * per-query retries.
 *
 * Thread use: everything belongs to the thread that runs the event base.
 * Fatal: out of memory and failures to create libevent events only.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct dns_resolver;
struct dns_lookup;

/* Bounds on what an answer may add to a result; records past them are
 * dropped (MX records after sorting, so the preferred ones stay). */
#define DNS_NAME_MAX		253	/* a domain name without the final dot */
#define DNS_MX_HOSTS_MAX	32
#define DNS_HOST_ADDRESSES_MAX	16	/* per host, both families together */
#define DNS_SERVERS_MAX		8

enum dns_status {
	DNS_OK = 0,
	DNS_NO_DATA,	/* the name exists but has no record of the type */
	DNS_NOT_FOUND,	/* permanent: no such domain, or no usable host */
	DNS_NO_MAIL,	/* permanent: null MX, the domain takes no mail */
	DNS_TEMPFAIL,	/* temporary: try again later */
};

struct dns_address {
	int family;			/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	char text[INET6_ADDRSTRLEN];	/* printable form, as in "[ip]" */
};

/* One MX host, or the domain itself for an implicit MX. */
struct dns_host {
	char *name;
	unsigned preference;
	enum dns_status status;		/* of its A and AAAA lookups */
	struct dns_address *addresses;
	size_t address_count;
};

struct dns_result {
	char *domain;
	enum dns_status status;		/* never DNS_NO_DATA */
	bool implicit_mx;		/* the domain had no MX records */
	/* Reason the status is not DNS_OK, for log lines; NULL when it is. */
	char *error;
	/* In the order to try. Hosts without addresses stay in the list
	 * with their own status, so that a caller can report them. Each
	 * host lists its IPv4 addresses before its IPv6 ones. */
	struct dns_host *hosts;
	size_t host_count;
};

/*
 * Receives a finished lookup. Takes ownership of result (free it with
 * dns_result_free()). The lookup handle is gone when this runs. The
 * callback may start new lookups but must not free the resolver.
 */
typedef void (*dns_result_cb)(void *arg, struct dns_result *result);

struct dns_options {
	const char *servers;		/* Exim list; NULL or "" for resolv.conf */
	int port;			/* 0 means 53 */
	unsigned query_timeout_ms;	/* per try, c-ares's retransmit time */
	unsigned tries;			/* per server */
	uint64_t lookup_timeout_usec;	/* whole lookup, all its queries */
	bool want_ipv4;
	bool want_ipv6;
	/* Shuffles MX hosts of equal preference, as RFC 5321 section 5.1
	 * recommends. Tests turn it off to get the answer's order. */
	bool shuffle_equal_mx;
};

/* Fills options with the defaults, servers from resolv.conf. */
void dns_options_init(struct dns_options *options);

/* Fills options with the defaults and the config's dns_servers and
 * dns_port (borrowed until the config is freed). */
void dns_options_from_config(struct dns_options *options,
    const struct config *config);

/*
 * Creates a resolver on base. options is copied. Returns NULL with
 * *error set (caller frees) when the server list is invalid or c-ares
 * cannot start.
 */
struct dns_resolver *dns_resolver_new(struct event_base *base,
    const struct dns_options *options, char **error);

/* Cancels every running lookup without calling its callback, and frees
 * the resolver. Accepts NULL. Must not be called from a callback. */
void dns_resolver_free(struct dns_resolver *resolver);

/*
 * Starts the MX lookup of domain (copied). Returns the lookup, valid
 * until its callback runs or it is cancelled; cb never runs before this
 * function returns. Returns NULL with *error set (caller frees) when
 * domain is not a valid domain name, which is a permanent failure.
 */
struct dns_lookup *dns_lookup_mx(struct dns_resolver *resolver,
    const char *domain, dns_result_cb cb, void *arg, char **error);

/* As dns_lookup_mx(), but resolves name itself (no MX records) into one
 * host at preference 0. */
struct dns_lookup *dns_lookup_host(struct dns_resolver *resolver,
    const char *name, dns_result_cb cb, void *arg, char **error);

/* Stops a lookup; its callback will not run. */
void dns_lookup_cancel(struct dns_lookup *lookup);

/* Accepts NULL. */
void dns_result_free(struct dns_result *result);

/* "ok", "no data", "not found", "no mail", "temporary failure". */
const char *dns_status_name(enum dns_status status);

/*
 * The functions below (dns_answer.c) handle DNS answers without any
 * network, so the unit tests can call them. The resolver uses them in
 * this order.
 */

/* Checks that name is a domain name that can be queried: 1 to
 * DNS_NAME_MAX characters (one final dot allowed), labels of 1 to 63
 * printable ASCII characters other than space. Returns 0 or -1. */
int dns_name_check(const char *name);

/*
 * Parses an Exim list of server addresses into out[0..*count), each with
 * port. Items are IPv4 or IPv6 addresses, IPv6 with or without brackets.
 * A list starting "<;" uses ';' as its separator, so IPv6 addresses need
 * no doubled colons. Returns 0, or -1 with *error set (caller frees) for
 * an item that is no address, or for more than max items.
 */
int dns_servers_parse(const char *list, int port, struct sockaddr_storage *out,
    size_t max, size_t *count, char **error);

/* Returns a copy of name without one final dot (caller frees). The
 * root "." becomes "", the target of a null MX. */
char *dns_name_copy(const char *name);

/* Maps a c-ares status to ours: NXDOMAIN is DNS_NOT_FOUND, an empty
 * answer DNS_NO_DATA, a bad name DNS_NOT_FOUND, anything else
 * DNS_TEMPFAIL. */
enum dns_status dns_status_from_ares(int ares_status);

/*
 * Parses an MX answer into hosts sorted by preference (answer order
 * within a preference), duplicates removed keeping the lowest
 * preference, at most DNS_MX_HOSTS_MAX kept. A null MX record is
 * dropped. Returns DNS_OK with *hosts set (caller frees with
 * dns_hosts_free()), DNS_NO_MAIL when a null MX was the only record,
 * DNS_NO_DATA when the answer contains no MX record, or DNS_TEMPFAIL with
 * *error set (caller frees) when it cannot be parsed.
 */
enum dns_status dns_mx_answer_parse(const unsigned char *answer, int len,
    struct dns_host **hosts, size_t *count, char **error);

/* Shuffles each run of hosts of equal preference; random_below(n)
 * returns a number in [0, n). */
void dns_hosts_shuffle_equal(struct dns_host *hosts, size_t count,
    uint32_t (*random_below)(uint32_t n));

/*
 * Adds the addresses of an A (family AF_INET) or AAAA (AF_INET6) answer
 * to host, skipping duplicates and stopping at DNS_HOST_ADDRESSES_MAX.
 * Returns 0, or -1 with *error set (caller frees) when it cannot be
 * parsed.
 */
int dns_address_answer_add(struct dns_host *host, int family,
    const unsigned char *answer, int len, char **error);

/* Folds the status of one address query into host->status: any
 * address makes it DNS_OK, else a temporary failure wins over "no such
 * name" (DNS_NOT_FOUND), which wins over DNS_NO_DATA. */
void dns_host_merge_status(struct dns_host *host, enum dns_status status);

/*
 * Sets result->status (and result->error when it is not DNS_OK) from the
 * hosts' statuses: DNS_OK when any host has an address, else
 * DNS_TEMPFAIL when any host lookup failed temporarily, else
 * DNS_NOT_FOUND. Also orders each host's addresses: IPv4 first, then
 * IPv6, each in answer order.
 */
void dns_result_settle(struct dns_result *result);

/* Frees count hosts and the array. Accepts NULL. */
void dns_hosts_free(struct dns_host *hosts, size_t count);

#endif

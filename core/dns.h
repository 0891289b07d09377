/*
 * dns.h - asynchronous DNS for outbound mail: MX hosts and their
 * addresses, looked up with c-ares on the libevent loop.
 *
 * dns_lookup_mx() finds where mail for a domain goes (RFC 5321 section
 * 5.1): the MX records sorted by preference, each host resolved to its
 * A and AAAA records. A domain without MX records gets an implicit MX,
 * the domain itself at preference 0. A null MX (a single record "."
 * at preference 0, RFC 7505) means the domain accepts no mail.
 * dns_lookup_host() resolves one host name, for a smarthost, and
 * dns_lookup_ptr() finds the names of an IP address (PTR records).
 *
 * A CNAME chain is followed: the resolver usually returns the whole
 * chain with the final records, and when an answer ends in a CNAME
 * without them, the target is queried again, up to DNS_CNAME_QUERIES_MAX
 * times. A chain of more than DNS_CNAME_LINKS_MAX links in one answer,
 * or a loop, leaves the host without an address. An MX target that is
 * an IP address is used as one only with allow_mx_to_ip (as Exim's
 * option of that name); otherwise that host has no address.
 *
 * Answers are cached in the resolver (see dns_cache.h), keyed by name
 * and type: positive answers for their smallest TTL, "no such name" and
 * "no records of this type" for the TTL of the zone's SOA record (RFC
 * 2308 section 5), both within bounds. Failures are not cached.
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
#define DNS_CNAME_LINKS_MAX	8	/* CNAMEs in one answer's chain */
#define DNS_CNAME_QUERIES_MAX	4	/* extra queries for a chain's end */

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
	bool allow_mx_to_ip;		/* see the file comment */
	size_t cache_entries;		/* 0: no cache */
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

/* As dns_lookup_mx(), but finds the PTR names of an IPv4 or IPv6
 * address (text): each becomes a host of the result, without addresses,
 * and the status is DNS_OK when there is one. */
struct dns_lookup *dns_lookup_ptr(struct dns_resolver *resolver,
    const char *address, dns_result_cb cb, void *arg, char **error);

/* Entries in the resolver's answer cache now. */
size_t dns_resolver_cache_size(const struct dns_resolver *resolver);

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

/* Adds one address (a struct in_addr or in6_addr of family) to host,
 * unless it is there already or the host has DNS_HOST_ADDRESSES_MAX. */
void dns_host_add_address(struct dns_host *host, int family,
    const void *addr);

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

/* Facts of a DNS message other than its records' data, for the cache
 * and for CNAME chains. */
struct dns_answer_info {
	int rcode;			/* 0 NOERROR, 3 NXDOMAIN, ... */
	unsigned answer_count;
	/* Smallest TTL of the answer section, in seconds. */
	uint32_t ttl;
	/* RFC 2308 section 5: the smaller of the TTL and the MINIMUM of
	 * an SOA record in the authority section, when there is one. */
	bool has_soa;
	uint32_t negative_ttl;
	/* Where the CNAME chain from the question name ends (the question
	 * name itself without CNAMEs), the links to it, and the records
	 * of the question type that this name owns. */
	char chain_end[DNS_NAME_MAX + 1];
	unsigned cname_links;
	unsigned type_records;
};

/*
 * Reads the header, question, answer and authority sections of a DNS
 * message of len bytes asked about type qtype. Compressed names are
 * followed with a bound on pointers and length. Returns 0, or -1 with
 * *error set (caller frees) for a malformed message, a CNAME chain of
 * more than DNS_CNAME_LINKS_MAX links or a CNAME loop.
 */
int dns_answer_inspect(const unsigned char *msg, size_t len, int qtype,
    struct dns_answer_info *info, char **error);

/* Tells dns_result_remove_local() whether an address is this host's. */
typedef bool (*dns_is_local_fn)(const struct dns_address *address,
    void *arg);

/* Results of dns_result_remove_local(). */
enum dns_self {
	DNS_SELF_NONE,		/* no host is this host */
	DNS_SELF_DROPPED,	/* hosts at or after our preference dropped */
	DNS_SELF_LOWEST,	/* the most preferred host is this host */
};

/*
 * Applies RFC 5321 section 5.1 for a host that is itself an MX host of
 * the domain: every host whose preference is not lower than the lowest
 * preference of a host with a local address is removed. When that
 * leaves nothing (this host is the most preferred, or the domain's own
 * address is local with an implicit MX), the result is left as it was
 * and DNS_SELF_LOWEST is returned, so that the caller can apply Exim's
 * "self" option.
 */
enum dns_self dns_result_remove_local(struct dns_result *result,
    dns_is_local_fn is_local, void *arg);

#endif

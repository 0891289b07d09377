/*
 * dns_answer.c - the DNS module's handling of answers, with no network:
 * name checks, the dns_servers list, MX and address answers, and the
 * overall status of a result (see dns.h). dns.c runs the lookups.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <ares.h>

#include "dns.h"
#include "util.h"

/* Maximum length of a server list item: a bracketed IPv6 address. */
#define DNS_SERVER_ITEM_MAX		64

int
dns_name_check(const char *name)
{
	size_t len = strlen(name);
	size_t label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
			continue;
		}
		if (c <= ' ' || c >= 0x7f || ++label > 63)
			return -1;
	}
	return label == 0 ? -1 : 0;
}

int
dns_servers_parse(const char *list, int port, struct sockaddr_storage *out,
    size_t max, size_t *count, char **error)
{
	struct config_list_iter iter;
	char item[DNS_SERVER_ITEM_MAX];
	const char *value;

	*count = 0;
	if (port <= 0 || port > 65535) {
		*error = xasprintf("dns_port %d is out of range (1 to 65535)",
		    port);
		return -1;
	}
	if (list == NULL)
		return 0;
	config_list_init(&iter, list);
	while ((value = config_list_next(&iter, item, sizeof(item))) != NULL) {
		struct sockaddr_storage *ss = &out[*count];
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		size_t len = strlen(value);

		if (*value == '\0')
			continue;
		if (*count >= max) {
			*error = xasprintf("dns_servers lists more than %zu "
			    "servers", max);
			return -1;
		}
		memset(ss, 0, sizeof(*ss));
		if (value[0] == '[' && len > 2 && value[len - 1] == ']') {
			item[len - 1] = '\0';
			value++;
		}
		if (inet_pton(AF_INET, value, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
		} else if (inet_pton(AF_INET6, value, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)port);
		} else {
			*error = xasprintf("dns_servers: \"%s\" is not an IPv4 "
			    "or IPv6 address (the port comes from dns_port; "
			    "write IPv6 lists as \"<; ::1 ; 2001:db8::53\")",
			    value);
			return -1;
		}
		(*count)++;
	}
	if (iter.error) {
		*error = xasprintf("dns_servers: an item is longer than %d "
		    "characters", DNS_SERVER_ITEM_MAX - 1);
		return -1;
	}
	return 0;
}

enum dns_status
dns_status_from_ares(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NO_DATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		return DNS_NOT_FOUND;
	default:
		return DNS_TEMPFAIL;
	}
}

char *
dns_name_copy(const char *name)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	return xstrndup(name, len);
}

struct dns_mx_entry {
	const struct ares_mx_reply *reply;
	size_t order;			/* position in the answer */
};

static int
dns_mx_entry_compare(const void *a, const void *b)
{
	const struct dns_mx_entry *x = a, *y = b;

	if (x->reply->priority != y->reply->priority)
		return x->reply->priority < y->reply->priority ? -1 : 1;
	return x->order < y->order ? -1 : (x->order > y->order);
}

enum dns_status
dns_mx_answer_parse(const unsigned char *answer, int len,
    struct dns_host **hosts, size_t *count, char **error)
{
	struct ares_mx_reply *replies = NULL;
	struct dns_mx_entry *entries = NULL;
	struct dns_host *out = NULL;
	size_t total = 0, kept = 0;
	bool null_mx = false;
	int rc;

	*hosts = NULL;
	*count = 0;
	rc = ares_parse_mx_reply(answer, len, &replies);
	if (rc == ARES_ENODATA)
		return DNS_NO_DATA;
	if (rc != ARES_SUCCESS) {
		*error = xasprintf("malformed MX answer: %s", ares_strerror(rc));
		return DNS_TEMPFAIL;
	}

	for (const struct ares_mx_reply *r = replies; r != NULL; r = r->next)
		total++;
	entries = xcalloc(total, sizeof(*entries));
	total = 0;
	for (const struct ares_mx_reply *r = replies; r != NULL; r = r->next) {
		/* RFC 7505: "." as the target means no mail service. */
		if (r->host[0] == '\0' || strcmp(r->host, ".") == 0) {
			null_mx = true;
			continue;
		}
		entries[total].reply = r;
		entries[total].order = total;
		total++;
	}
	if (total == 0) {
		free(entries);
		ares_free_data(replies);
		return null_mx ? DNS_NO_MAIL : DNS_NO_DATA;
	}
	qsort(entries, total, sizeof(*entries), dns_mx_entry_compare);

	out = xcalloc(total < DNS_MX_HOSTS_MAX ? total : DNS_MX_HOSTS_MAX,
	    sizeof(*out));
	for (size_t i = 0; i < total && kept < DNS_MX_HOSTS_MAX; i++) {
		char *name = dns_name_copy(entries[i].reply->host);
		bool duplicate = false;

		/* Sorted, so an earlier copy has the lower preference. */
		for (size_t j = 0; j < kept && !duplicate; j++)
			duplicate = strcasecmp(out[j].name, name) == 0;
		if (duplicate) {
			free(name);
			continue;
		}
		out[kept].name = name;
		out[kept].preference = entries[i].reply->priority;
		out[kept].status = DNS_NO_DATA;
		kept++;
	}
	free(entries);
	ares_free_data(replies);
	*hosts = out;
	*count = kept;
	return DNS_OK;
}

void
dns_hosts_shuffle_equal(struct dns_host *hosts, size_t count,
    uint32_t (*random_below)(uint32_t n))
{
	size_t start = 0;

	while (start < count) {
		size_t end = start + 1;

		while (end < count &&
		    hosts[end].preference == hosts[start].preference)
			end++;
		/* Fisher-Yates over hosts[start..end). */
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + random_below((uint32_t)(i - start + 1));
			struct dns_host swap = hosts[i];

			hosts[i] = hosts[j];
			hosts[j] = swap;
		}
		start = end;
	}
}

void
dns_host_add_address(struct dns_host *host, int family, const void *addr)
{
	struct dns_address *a;
	size_t size = family == AF_INET ? sizeof(struct in_addr) :
	    sizeof(struct in6_addr);

	if (host->address_count >= DNS_HOST_ADDRESSES_MAX)
		return;
	for (size_t i = 0; i < host->address_count; i++)
		if (host->addresses[i].family == family &&
		    memcmp(&host->addresses[i].addr, addr, size) == 0)
			return;
	host->addresses = xreallocarray(host->addresses,
	    host->address_count + 1, sizeof(*host->addresses));
	a = &host->addresses[host->address_count++];
	memset(a, 0, sizeof(*a));
	a->family = family;
	memcpy(&a->addr, addr, size);
	inet_ntop(family, &a->addr, a->text, sizeof(a->text));
}

int
dns_address_answer_add(struct dns_host *host, int family,
    const unsigned char *answer, int len, char **error)
{
	struct ares_addrttl v4[DNS_HOST_ADDRESSES_MAX];
	struct ares_addr6ttl v6[DNS_HOST_ADDRESSES_MAX];
	int n = DNS_HOST_ADDRESSES_MAX;
	int rc;

	if (family == AF_INET)
		rc = ares_parse_a_reply(answer, len, NULL, v4, &n);
	else
		rc = ares_parse_aaaa_reply(answer, len, NULL, v6, &n);
	if (rc == ARES_ENODATA)
		return 0;
	if (rc != ARES_SUCCESS) {
		*error = xasprintf("malformed %s answer for %s: %s",
		    family == AF_INET ? "A" : "AAAA", host->name,
		    ares_strerror(rc));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (family == AF_INET)
			dns_host_add_address(host, AF_INET, &v4[i].ipaddr);
		else
			dns_host_add_address(host, AF_INET6, &v6[i].ip6addr);
	}
	return 0;
}

void
dns_host_merge_status(struct dns_host *host, enum dns_status status)
{
	if (host->address_count > 0)
		host->status = DNS_OK;
	else if (status == DNS_TEMPFAIL || host->status == DNS_TEMPFAIL)
		host->status = DNS_TEMPFAIL;
	else if (status == DNS_NOT_FOUND || host->status == DNS_NOT_FOUND)
		host->status = DNS_NOT_FOUND;
	else
		host->status = DNS_NO_DATA;
}

/* Puts IPv4 addresses before IPv6 ones, keeping the answer order within
 * each family, since the A and AAAA answers arrive in either order. */
static void
dns_host_order_addresses(struct dns_host *host)
{
	for (size_t i = 1; i < host->address_count; i++) {
		struct dns_address moving = host->addresses[i];
		size_t j = i;

		while (j > 0 && moving.family == AF_INET &&
		    host->addresses[j - 1].family != AF_INET) {
			host->addresses[j] = host->addresses[j - 1];
			j--;
		}
		host->addresses[j] = moving;
	}
}

void
dns_result_settle(struct dns_result *result)
{
	bool tempfail = false;

	free(result->error);
	result->error = NULL;
	for (size_t i = 0; i < result->host_count; i++)
		dns_host_order_addresses(&result->hosts[i]);
	for (size_t i = 0; i < result->host_count; i++) {
		if (result->hosts[i].address_count > 0) {
			result->status = DNS_OK;
			return;
		}
		if (result->hosts[i].status == DNS_TEMPFAIL)
			tempfail = true;
	}
	if (tempfail) {
		result->status = DNS_TEMPFAIL;
		result->error = xasprintf("host address lookup for %s did not "
		    "complete", result->domain);
	} else if (result->implicit_mx) {
		result->status = DNS_NOT_FOUND;
		result->error = xasprintf("%s has no MX record and no address "
		    "record", result->domain);
	} else {
		result->status = DNS_NOT_FOUND;
		result->error = xasprintf("all MX records of %s point to hosts "
		    "without an address", result->domain);
	}
}

void
dns_hosts_free(struct dns_host *hosts, size_t count)
{
	if (hosts == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(hosts[i].name);
		free(hosts[i].addresses);
	}
	free(hosts);
}

void
dns_result_free(struct dns_result *result)
{
	if (result == NULL)
		return;
	dns_hosts_free(result->hosts, result->host_count);
	free(result->domain);
	free(result->error);
	free(result);
}

/* --- raw messages: TTLs and CNAME chains ---------------------------- */

#define DNS_HEADER_SIZE		12
#define DNS_TYPE_CNAME		5
#define DNS_TYPE_SOA		6
/* Compression pointers followed in one name; a real name needs far
 * fewer, and a loop stops here. */
#define DNS_POINTERS_MAX	32

/* Reads a 16- or 32-bit number at msg[pos] in network order. */
static unsigned
dns_get16(const unsigned char *msg, size_t pos)
{
	return ((unsigned)msg[pos] << 8) | msg[pos + 1];
}

static uint32_t
dns_get32(const unsigned char *msg, size_t pos)
{
	return ((uint32_t)msg[pos] << 24) | ((uint32_t)msg[pos + 1] << 16) |
	    ((uint32_t)msg[pos + 2] << 8) | msg[pos + 3];
}

/*
 * Reads the (possibly compressed) name at *pos into out (lower case,
 * labels joined by dots, no final dot, "" for the root) and moves *pos
 * past it in the message. Returns 0, or -1 when the name runs past the
 * message, is longer than DNS_NAME_MAX or follows too many pointers.
 */
static int
dns_read_name(const unsigned char *msg, size_t len, size_t *pos,
    char out[DNS_NAME_MAX + 1])
{
	size_t at = *pos, n = 0;
	unsigned pointers = 0;
	bool jumped = false;

	for (;;) {
		unsigned label;

		if (at >= len)
			return -1;
		label = msg[at];
		if ((label & 0xc0) == 0xc0) {
			if (at + 1 >= len || ++pointers > DNS_POINTERS_MAX)
				return -1;
			if (!jumped)
				*pos = at + 2;
			jumped = true;
			at = ((label & 0x3f) << 8) | msg[at + 1];
			continue;
		}
		if ((label & 0xc0) != 0)
			return -1;	/* the extended label types are unused */
		if (label == 0) {
			if (!jumped)
				*pos = at + 1;
			out[n] = '\0';
			return 0;
		}
		if (at + 1 + label > len || n + label + (n > 0) > DNS_NAME_MAX)
			return -1;
		if (n > 0)
			out[n++] = '.';
		for (unsigned i = 0; i < label; i++) {
			unsigned char c = msg[at + 1 + i];

			out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		at += 1 + label;
	}
}

/* One resource record of a message, its data still in place. */
struct dns_rr {
	char owner[DNS_NAME_MAX + 1];
	unsigned type;
	uint32_t ttl;
	size_t data;		/* offset of the data in the message */
	unsigned data_len;
};

static int
dns_read_rr(const unsigned char *msg, size_t len, size_t *pos,
    struct dns_rr *rr)
{
	if (dns_read_name(msg, len, pos, rr->owner) != 0 || *pos + 10 > len)
		return -1;
	rr->type = dns_get16(msg, *pos);
	rr->ttl = dns_get32(msg, *pos + 4);
	rr->data_len = dns_get16(msg, *pos + 8);
	rr->data = *pos + 10;
	if (rr->data + rr->data_len > len)
		return -1;
	/* RFC 2181 section 8: a TTL with the top bit set means zero. */
	if (rr->ttl > 0x7fffffff)
		rr->ttl = 0;
	*pos = rr->data + rr->data_len;
	return 0;
}

/* The records of the answer section, at most this many looked at. */
#define DNS_ANSWER_RRS_MAX	256

struct dns_cname {
	char owner[DNS_NAME_MAX + 1];
	char target[DNS_NAME_MAX + 1];
};

/* Follows the chain of CNAMEs from info->chain_end, which starts as the
 * question name. */
static int
dns_follow_chain(const struct dns_cname *cnames, size_t count,
    struct dns_answer_info *info, char **error)
{
	for (;;) {
		const struct dns_cname *next = NULL;

		for (size_t i = 0; i < count && next == NULL; i++)
			if (strcmp(cnames[i].owner, info->chain_end) == 0)
				next = &cnames[i];
		if (next == NULL)
			return 0;
		if (++info->cname_links > DNS_CNAME_LINKS_MAX) {
			*error = xasprintf("CNAME chain of more than %d links "
			    "(or a loop) from %s", DNS_CNAME_LINKS_MAX,
			    cnames[0].owner);
			return -1;
		}
		strlcpy_s(info->chain_end, next->target,
		    sizeof(info->chain_end));
	}
}

int
dns_answer_inspect(const unsigned char *msg, size_t len, int qtype,
    struct dns_answer_info *info, char **error)
{
	struct dns_cname *cnames = NULL;
	char qname[DNS_NAME_MAX + 1];
	size_t cname_count = 0, pos = DNS_HEADER_SIZE;
	unsigned qdcount, ancount, nscount;
	bool have_ttl = false;
	int rc = -1;

	memset(info, 0, sizeof(*info));
	if (len < DNS_HEADER_SIZE)
		goto malformed;
	info->rcode = msg[3] & 0x0f;
	qdcount = dns_get16(msg, 4);
	ancount = dns_get16(msg, 6);
	nscount = dns_get16(msg, 8);
	info->answer_count = ancount;
	if (qdcount != 1)
		goto malformed;
	if (dns_read_name(msg, len, &pos, info->chain_end) != 0 ||
	    pos + 4 > len)
		goto malformed;
	pos += 4;

	if (ancount > DNS_ANSWER_RRS_MAX)
		ancount = DNS_ANSWER_RRS_MAX;
	cnames = xcalloc(ancount > 0 ? ancount : 1, sizeof(*cnames));
	for (unsigned i = 0; i < ancount; i++) {
		struct dns_rr rr;

		if (dns_read_rr(msg, len, &pos, &rr) != 0)
			goto malformed;
		if (!have_ttl || rr.ttl < info->ttl)
			info->ttl = rr.ttl;
		have_ttl = true;
		if (rr.type == DNS_TYPE_CNAME) {
			size_t at = rr.data;

			strlcpy_s(cnames[cname_count].owner, rr.owner,
			    sizeof(cnames[cname_count].owner));
			if (dns_read_name(msg, len, &at,
			    cnames[cname_count].target) != 0)
				goto malformed;
			cname_count++;
		}
	}
	if (dns_follow_chain(cnames, cname_count, info, error) != 0)
		goto out;

	/* Count the records of the type that the chain's end owns; the
	 * first pass has checked that every record can be read. */
	pos = DNS_HEADER_SIZE;
	dns_read_name(msg, len, &pos, qname);
	pos += 4;
	for (unsigned i = 0; i < ancount; i++) {
		struct dns_rr rr;

		dns_read_rr(msg, len, &pos, &rr);
		if ((int)rr.type == qtype &&
		    strcmp(rr.owner, info->chain_end) == 0)
			info->type_records++;
	}

	/* The authority section: an SOA sets the negative TTL. */
	for (unsigned i = 0; i < nscount && i < DNS_ANSWER_RRS_MAX; i++) {
		struct dns_rr rr;
		char name[DNS_NAME_MAX + 1];
		size_t at;

		if (dns_read_rr(msg, len, &pos, &rr) != 0)
			break;		/* the answer is what matters */
		if (rr.type != DNS_TYPE_SOA)
			continue;
		at = rr.data;
		if (dns_read_name(msg, len, &at, name) != 0 ||
		    dns_read_name(msg, len, &at, name) != 0 ||
		    at + 20 > rr.data + rr.data_len)
			continue;
		info->has_soa = true;
		info->negative_ttl = dns_get32(msg, at + 16);
		if (rr.ttl < info->negative_ttl)
			info->negative_ttl = rr.ttl;
		break;
	}
	rc = 0;
	goto out;

malformed:
	*error = xstrdup("malformed DNS message");
out:
	free(cnames);
	return rc;
}

/* --- this host among the MX hosts ----------------------------------- */

enum dns_self
dns_result_remove_local(struct dns_result *result, dns_is_local_fn is_local,
    void *arg)
{
	size_t keep = result->host_count;

	/* Hosts are sorted by preference, so the first local one has the
	 * lowest preference of them. */
	for (size_t i = 0; i < result->host_count && keep == result->host_count;
	    i++) {
		const struct dns_host *h = &result->hosts[i];

		for (size_t j = 0; j < h->address_count; j++) {
			if (is_local(&h->addresses[j], arg)) {
				keep = i;
				break;
			}
		}
	}
	if (keep == result->host_count)
		return DNS_SELF_NONE;
	/* Hosts of the same preference before it go too. */
	while (keep > 0 && result->hosts[keep - 1].preference ==
	    result->hosts[keep].preference)
		keep--;
	if (keep == 0)
		return DNS_SELF_LOWEST;
	for (size_t i = keep; i < result->host_count; i++) {
		free(result->hosts[i].name);
		free(result->hosts[i].addresses);
	}
	result->host_count = keep;
	return DNS_SELF_DROPPED;
}

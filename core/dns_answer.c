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

static void
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

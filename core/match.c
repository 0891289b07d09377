/*
 * match.c - host list and domain list matching (see match.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "match.h"
#include "util.h"

/* The target of a list walk. With check_only, the walk checks every
 * item without matching. */
struct match_ctx {
	const struct config *config;
	enum config_list_kind kind;
	const unsigned char *ip;	/* 4 or 16 bytes, or NULL */
	size_t ip_len;
	const char *domain;
	bool check_only;
	char **error;
	char *matched;			/* the deciding item, or NULL */
	size_t matched_size;
};

static const char *
match_kind_name(enum config_list_kind kind)
{
	return kind == CONFIG_HOSTLIST ? "hostlist" : "domainlist";
}

static int
match_fail(struct match_ctx *m, const char *list_name, const char *item,
    const char *why)
{
	*m->error = xasprintf("%s %s: item \"%s\" %s", match_kind_name(m->kind),
	    list_name, item, why);
	return -1;
}

/*
 * Parses "address" or "address/prefix" into a 4- or 16-byte address and
 * a prefix length. Returns 0, or -1 if item is not of that form.
 */
static int
match_parse_network(const char *item, unsigned char ip[16], size_t *ip_len,
    unsigned *prefix)
{
	char text[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned long long bits;

	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, item, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, ip) == 1)
		*ip_len = 4;
	else if (inet_pton(AF_INET6, text, ip) == 1)
		*ip_len = 16;
	else
		return -1;

	*prefix = (unsigned)(*ip_len * 8);
	if (slash != NULL) {
		if (parse_uint(slash + 1, *ip_len * 8, &bits) < 0)
			return -1;
		*prefix = (unsigned)bits;
	}
	return 0;
}

/* True if the first prefix bits of a and b are equal. */
static bool
match_prefix_equal(const unsigned char *a, const unsigned char *b,
    unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (0xffu << (8 - rest))) == 0;
}

/* Matches one host list item that is not a reference or negated.
 * Returns 1, 0 or -1. */
static int
match_host_item(struct match_ctx *m, const char *list_name, const char *item)
{
	unsigned char ip[16];
	size_t ip_len;
	unsigned prefix;

	if (strcmp(item, "*") == 0)
		return m->check_only ? 0 : 1;
	if (match_parse_network(item, ip, &ip_len, &prefix) < 0)
		return match_fail(m, list_name, item, "is not supported in a host "
		    "list: use \"*\", IP addresses or networks (address/prefix)");
	if (m->check_only || m->ip == NULL || ip_len != m->ip_len)
		return 0;
	return match_prefix_equal(ip, m->ip, prefix) ? 1 : 0;
}

/* Matches one domain list item that is not a reference or negated.
 * Returns 1, 0 or -1. */
static int
match_domain_item(struct match_ctx *m, const char *list_name,
    const char *item)
{
	const char *domain = m->domain;
	size_t len, domain_len;

	if (strchr(item, ';') != NULL || item[0] == '^' ||
	    (item[0] == '@' && item[1] != '\0'))
		return match_fail(m, list_name, item, "is not supported in a domain "
		    "list: use \"*\", \"*suffix\", \"@\", \"+name\" or domains");
	if (strcmp(item, "*") == 0)
		return m->check_only ? 0 : 1;
	if (strcmp(item, "@") == 0) {
		if (m->check_only)
			return 0;
		return m->config->primary_hostname != NULL &&
		    strcasecmp(domain, m->config->primary_hostname) == 0;
	}
	if (item[0] == '*') {
		if (m->check_only)
			return 0;
		len = strlen(item + 1);
		domain_len = strlen(domain);
		return domain_len >= len &&
		    strcasecmp(domain + domain_len - len, item + 1) == 0;
	}
	if (!address_domain_valid(item, strlen(item)))
		return match_fail(m, list_name, item, "is not a valid domain");
	if (m->check_only)
		return 0;
	return strcasecmp(domain, item) == 0;
}

static int match_list(struct match_ctx *m, const char *list_name,
    const char *list, int depth);

/* Matches "+name" against the named list. Returns 1, 0 or -1. */
static int
match_reference(struct match_ctx *m, const char *list_name, const char *item,
    int depth)
{
	const char *name = item + 1;
	const char *list = config_named_list(m->config, m->kind, name);

	if (list == NULL)
		return match_fail(m, list_name, item, "names a list that is not "
		    "defined");
	if (depth >= MATCH_DEPTH_MAX)
		return match_fail(m, list_name, item, "nests lists too deeply "
		    "(does a list name itself?)");
	return match_list(m, name, list, depth + 1);
}

static int
match_list(struct match_ctx *m, const char *list_name, const char *list,
    int depth)
{
	struct config_list_iter iter;
	char buf[MATCH_ITEM_MAX];
	char *item;
	bool negated;
	int rc;

	if (list == NULL)
		return 0;
	config_list_init(&iter, list);
	while ((item = config_list_next(&iter, buf, sizeof(buf))) != NULL) {
		negated = false;
		while (*item == '!') {
			negated = !negated;
			item++;
			while (*item == ' ' || *item == '\t')
				item++;
		}
		if (*item == '\0')
			continue;

		if (*item == '+')
			rc = match_reference(m, list_name, item, depth);
		else if (m->kind == CONFIG_HOSTLIST)
			rc = match_host_item(m, list_name, item);
		else
			rc = match_domain_item(m, list_name, item);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			/* The innermost item is kept, unless a "!" here
			 * turns the result around. */
			if (m->matched != NULL && (m->matched[0] == '\0' ||
			    negated))
				snprintf(m->matched, m->matched_size, "%s%s",
				    negated ? "!" : "", item);
			return negated ? 0 : 1;
		}
	}
	if (iter.error) {
		*m->error = xasprintf("%s %s: an item is longer than %d bytes",
		    match_kind_name(m->kind), list_name, MATCH_ITEM_MAX - 1);
		return -1;
	}
	return 0;
}

/* Stores the address of addr as 4 bytes (IPv4, also when mapped into
 * IPv6) or 16 bytes. Returns false for another family. */
static bool
match_sockaddr_ip(const struct sockaddr *addr, unsigned char ip[16],
    size_t *ip_len)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	if (addr->sa_family == AF_INET) {
		memcpy(ip, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		*ip_len = 4;
		return true;
	}
	if (addr->sa_family == AF_INET6) {
		const unsigned char *a6 =
		    ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;

		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(ip, a6 + 12, 4);
			*ip_len = 4;
		} else {
			memcpy(ip, a6, 16);
			*ip_len = 16;
		}
		return true;
	}
	return false;
}

int
match_hostlist(const struct config *config, const char *list_name,
    const char *list, const struct sockaddr *addr, char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_HOSTLIST,
	    .error = error };
	unsigned char ip[16];
	size_t ip_len;

	if (addr != NULL && match_sockaddr_ip(addr, ip, &ip_len)) {
		m.ip = ip;
		m.ip_len = ip_len;
	}
	return match_list(&m, list_name, list, 0);
}

int
match_domainlist(const struct config *config, const char *list_name,
    const char *list, const char *domain, char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_DOMAINLIST,
	    .domain = domain, .error = error };

	return match_list(&m, list_name, list, 0);
}

int
match_named_hostlist(const struct config *config, const char *name,
    const struct sockaddr *addr, char **error)
{
	return match_hostlist(config, name,
	    config_named_list(config, CONFIG_HOSTLIST, name), addr, error);
}

int
match_named_domainlist(const struct config *config, const char *name,
    const char *domain, char **error)
{
	return match_domainlist(config, name,
	    config_named_list(config, CONFIG_DOMAINLIST, name), domain, error);
}

int
match_named_hostlist_item(const struct config *config, const char *name,
    const struct sockaddr *addr, char *matched, size_t size, char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_HOSTLIST,
	    .error = error, .matched = matched, .matched_size = size };
	unsigned char ip[16];
	size_t ip_len;

	matched[0] = '\0';
	if (addr != NULL && match_sockaddr_ip(addr, ip, &ip_len)) {
		m.ip = ip;
		m.ip_len = ip_len;
	}
	return match_list(&m, name,
	    config_named_list(config, CONFIG_HOSTLIST, name), 0);
}

int
match_named_domainlist_item(const struct config *config, const char *name,
    const char *domain, char *matched, size_t size, char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_DOMAINLIST,
	    .domain = domain, .error = error, .matched = matched,
	    .matched_size = size };

	matched[0] = '\0';
	return match_list(&m, name,
	    config_named_list(config, CONFIG_DOMAINLIST, name), 0);
}

int
match_check_hostlist(const struct config *config, const char *list_name,
    const char *list, char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_HOSTLIST,
	    .check_only = true, .error = error };

	return match_list(&m, list_name, list, 0) < 0 ? -1 : 0;
}

int
match_check_named_hostlist(const struct config *config, const char *name,
    char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_HOSTLIST,
	    .check_only = true, .error = error };

	return match_list(&m, name,
	    config_named_list(config, CONFIG_HOSTLIST, name), 0) < 0 ? -1 : 0;
}

int
match_check_named_domainlist(const struct config *config, const char *name,
    char **error)
{
	struct match_ctx m = { .config = config, .kind = CONFIG_DOMAINLIST,
	    .check_only = true, .error = error };

	return match_list(&m, name,
	    config_named_list(config, CONFIG_DOMAINLIST, name), 0) < 0 ? -1 : 0;
}

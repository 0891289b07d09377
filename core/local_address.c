/*
 * local_address.c - the IP addresses of this host (see local_address.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "local_address.h"
#include "util.h"

/* Bytes of a local_interfaces item, "[ipv6]:port" at most. */
#define LOCAL_ITEM_MAX	80

struct local_address {
	int family;
	struct in6_addr addr;		/* an in_addr in the first 4 bytes */
};

struct local_addresses {
	struct local_address *items;
	size_t count;
};

static void
local_addresses_add(struct local_addresses *set, int family,
    const void *addr)
{
	struct local_address *item;
	size_t size = family == AF_INET ? sizeof(struct in_addr) :
	    sizeof(struct in6_addr);

	if (local_addresses_contain(set, family, addr))
		return;
	set->items = xreallocarray(set->items, set->count + 1,
	    sizeof(*set->items));
	item = &set->items[set->count++];
	memset(item, 0, sizeof(*item));
	item->family = family;
	memcpy(&item->addr, addr, size);
}

/*
 * Adds the address of a local_interfaces item: "ip", "ip.port" for IPv4
 * or "[ip]:port". Wildcard addresses add nothing (the interfaces are
 * there already), nor does anything else that is not an address.
 */
static void
local_addresses_add_item(struct local_addresses *set, const char *item)
{
	char text[LOCAL_ITEM_MAX];
	unsigned char addr[sizeof(struct in6_addr)];
	static const unsigned char zero[sizeof(struct in6_addr)];
	char *dot;

	if (strlcpy_s(text, item[0] == '[' ? item + 1 : item, sizeof(text)) >=
	    sizeof(text))
		return;
	if (item[0] == '[') {
		char *close = strchr(text, ']');

		if (close == NULL)
			return;
		*close = '\0';
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		if (memcmp(addr, zero, sizeof(zero)) != 0)
			local_addresses_add(set, AF_INET6, addr);
		return;
	}
	/* Exim writes an IPv4 address with a port as 192.0.2.1.25. */
	if (inet_pton(AF_INET, text, addr) != 1) {
		if ((dot = strrchr(text, '.')) == NULL)
			return;
		*dot = '\0';
		if (inet_pton(AF_INET, text, addr) != 1)
			return;
	}
	if (memcmp(addr, zero, sizeof(struct in_addr)) != 0)
		local_addresses_add(set, AF_INET, addr);
}

struct local_addresses *
local_addresses_load(const struct config *config, char **warning)
{
	struct local_addresses *set = xcalloc(1, sizeof(*set));
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];
	struct ifaddrs *list = NULL;

	*warning = NULL;
	if (getifaddrs(&list) != 0) {
		*warning = xasprintf("cannot list the network interfaces: %s",
		    strerror(errno));
		list = NULL;
	}
	for (struct ifaddrs *ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
		const struct sockaddr *sa = ifa->ifa_addr;

		if (sa == NULL)
			continue;
		if (sa->sa_family == AF_INET)
			local_addresses_add(set, AF_INET,
			    &((const struct sockaddr_in *)sa)->sin_addr);
		else if (sa->sa_family == AF_INET6)
			local_addresses_add(set, AF_INET6,
			    &((const struct sockaddr_in6 *)sa)->sin6_addr);
	}
	if (list != NULL)
		freeifaddrs(list);

	config_list_init(&iter, config->local_interfaces);
	while (config_list_next(&iter, item, sizeof(item)) != NULL)
		local_addresses_add_item(set, item);
	return set;
}

void
local_addresses_free(struct local_addresses *set)
{
	if (set == NULL)
		return;
	free(set->items);
	free(set);
}

bool
local_addresses_contain(const struct local_addresses *set, int family,
    const void *addr)
{
	const unsigned char *bytes = addr;

	if (family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
		family = AF_INET;
		bytes += 12;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct local_address *item = &set->items[i];

		if (item->family != family)
			continue;
		if (memcmp(&item->addr, bytes, family == AF_INET ?
		    sizeof(struct in_addr) : sizeof(struct in6_addr)) == 0)
			return true;
	}
	return false;
}

size_t
local_addresses_count(const struct local_addresses *set)
{
	return set->count;
}

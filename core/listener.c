/*
 * listener.c - parse and open listening addresses (see listener.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"
#include "util.h"

#define LISTENER_ITEM_MAX	256

/* Ports of the usual mail services, for machines without /etc/services. */
static const struct {
	const char *name;
	int port;
} known_services[] = {
	{ "smtp", 25 },
	{ "submission", 587 },
	{ "submissions", 465 },
	{ "smtps", 465 },
};

int
listener_parse_port(const char *text)
{
	unsigned long long value;
	struct servent *service;

	if (parse_uint(text, 65535, &value) == 0)
		return value == 0 ? -1 : (int)value;
	for (size_t i = 0; i < ARRAY_SIZE(known_services); i++)
		if (strcmp(text, known_services[i].name) == 0)
			return known_services[i].port;
	service = getservbyname(text, "tcp");
	if (service != NULL)
		return ntohs((uint16_t)service->s_port);
	return -1;
}

/* Parses a numeric address into addr; port is set by the caller. */
static int
listener_parse_ip(const char *text, struct listener_addr *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		out->addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		out->addr_len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static void
listener_set_port(struct listener_addr *out, int port)
{
	char ip[INET6_ADDRSTRLEN];

	if (out->addr.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;

		sin->sin_port = htons((uint16_t)port);
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;

		sin6->sin6_port = htons((uint16_t)port);
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	}
	snprintf(out->name, sizeof(out->name), "[%s]:%d", ip, port);
}

/*
 * Splits one interface item into address text and port: "[ip]:port",
 * "ip.port" (the last dot-separated part of an IPv4 address with five
 * parts, or of an IPv6 address followed by ".port"), or a bare address
 * (port 0: use daemon_smtp_ports).
 */
static int
listener_split_item(const char *item, char *ip, size_t ip_size, int *port)
{
	const char *dot;
	struct listener_addr probe;

	*port = 0;
	if (item[0] == '[') {
		const char *close = strchr(item, ']');

		if (close == NULL || (size_t)(close - item - 1) >= ip_size)
			return -1;
		memcpy(ip, item + 1, (size_t)(close - item - 1));
		ip[close - item - 1] = '\0';
		if (close[1] == '\0')
			return 0;
		if (close[1] != ':' || (*port = listener_parse_port(close + 2)) < 0)
			return -1;
		return 0;
	}

	if (strlcpy_s(ip, item, ip_size) >= ip_size)
		return -1;
	if (listener_parse_ip(ip, &probe) == 0)
		return 0;

	/* Not an address as it stands: try "address.port". */
	dot = strrchr(item, '.');
	if (dot == NULL || (size_t)(dot - item) >= ip_size)
		return -1;
	memcpy(ip, item, (size_t)(dot - item));
	ip[dot - item] = '\0';
	if ((*port = listener_parse_port(dot + 1)) < 0)
		return -1;
	return 0;
}

static int
listener_add(const char *item, const char *ports, struct listener_addr *out,
    size_t max, size_t *count, char **error)
{
	char ip[INET6_ADDRSTRLEN + 8];
	struct listener_addr parsed;
	struct config_list_iter iter;
	char port_text[LISTENER_ITEM_MAX];
	int port;

	if (listener_split_item(item, ip, sizeof(ip), &port) < 0 ||
	    listener_parse_ip(ip, &parsed) < 0) {
		*error = xasprintf("invalid listening address \"%s\": expected an "
		    "IP address, \"ip.port\" or \"[ip]:port\"", item);
		return -1;
	}

	if (port != 0) {
		if (*count >= max)
			goto too_many;
		listener_set_port(&parsed, port);
		out[(*count)++] = parsed;
		return 0;
	}

	config_list_init(&iter, ports);
	while (config_list_next(&iter, port_text, sizeof(port_text)) != NULL) {
		if ((port = listener_parse_port(port_text)) < 0) {
			*error = xasprintf("invalid port \"%s\" in daemon_smtp_ports: "
			    "expected a number from 1 to 65535 or a service name",
			    port_text);
			return -1;
		}
		if (*count >= max)
			goto too_many;
		out[*count] = parsed;
		listener_set_port(&out[*count], port);
		(*count)++;
	}
	if (iter.error) {
		*error = xasprintf("daemon_smtp_ports has an item longer than %d "
		    "characters", LISTENER_ITEM_MAX - 1);
		return -1;
	}
	return 0;

too_many:
	*error = xasprintf("more than %zu listening addresses", max);
	return -1;
}

/* Splits -oX into its interface and port items, as Exim does. */
static void
listener_split_override(const char *override, char **interfaces, char **ports)
{
	struct config_list_iter iter;
	char item[LISTENER_ITEM_MAX];
	size_t ilen = 0, plen = 0;
	size_t size = strlen(override) * 2 + 8;

	*interfaces = xcalloc(1, size);
	*ports = xcalloc(1, size);
	config_list_init(&iter, override);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		bool is_port = strpbrk(item, ".:") == NULL;
		char *list = is_port ? *ports : *interfaces;
		size_t *len = is_port ? &plen : &ilen;

		/* Rebuild as a ";"-separated list so IPv6 colons survive. */
		if (*len == 0)
			*len += (size_t)snprintf(list, size, "<; ");
		*len += (size_t)snprintf(list + *len, size - *len, "%s ; ", item);
	}
}

int
listener_parse(const char *interfaces, const char *ports,
    const char *override, struct listener_addr *out, size_t max,
    char **error)
{
	char *override_interfaces = NULL, *override_ports = NULL;
	struct config_list_iter iter;
	char item[LISTENER_ITEM_MAX];
	size_t count = 0;
	int rc = -1;

	*error = NULL;
	if (override != NULL) {
		listener_split_override(override, &override_interfaces,
		    &override_ports);
		if (override_interfaces[0] != '\0')
			interfaces = override_interfaces;
		if (override_ports[0] != '\0')
			ports = override_ports;
	}

	config_list_init(&iter, interfaces);
	while (config_list_next(&iter, item, sizeof(item)) != NULL)
		if (listener_add(item, ports, out, max, &count, error) < 0)
			goto out;
	if (iter.error) {
		*error = xasprintf("local_interfaces has an item longer than %d "
		    "characters", LISTENER_ITEM_MAX - 1);
		goto out;
	}
	if (count == 0) {
		*error = xstrdup("no listening address: local_interfaces or "
		    "daemon_smtp_ports is empty");
		goto out;
	}
	rc = (int)count;
out:
	free(override_interfaces);
	free(override_ports);
	return rc;
}

int
listener_open(const struct listener_addr *addr, int backlog)
{
	int fd, on = 1, saved;

	fd = socket(addr->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
		goto fail;
	/* An IPv6 wildcard must not also take the IPv4 port: local_interfaces
	 * lists 0.0.0.0 separately when both are wanted. */
	if (addr->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&addr->addr, addr->addr_len) < 0)
		goto fail;
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/*
 * listener.h - the addresses the daemon listens on.
 *
 * local_interfaces is an Exim list of addresses, each optionally with its
 * own port as "1.2.3.4.25" or "[1.2.3.4]:25"; the others get every port
 * of daemon_smtp_ports (numbers or service names). The -oX option
 * replaces either list: its items without "." or ":" are ports, the
 * others interfaces.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define LISTENER_MAX		64	/* addresses x ports */
#define LISTENER_NAME_SIZE	(INET6_ADDRSTRLEN + 16)

struct listener_addr {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char name[LISTENER_NAME_SIZE];	/* "[127.0.0.1]:2525" */
};

/*
 * Fills out[] from the two lists and the -oX override (NULL if none).
 * Returns the number of addresses, or -1 with *error set (caller frees).
 */
int listener_parse(const char *interfaces, const char *ports,
    const char *override, struct listener_addr *out, size_t max,
    char **error);

/* Parses one port: a decimal number 1..65535 or a service name.
 * Returns the port or -1. */
int listener_parse_port(const char *text);

/* Opens, binds and listens on a non-blocking socket; returns the fd, or
 * -1 with errno set. */
int listener_open(const struct listener_addr *addr, int backlog);

#endif

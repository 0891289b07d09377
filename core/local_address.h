/*
 * local_address.h - the IP addresses of this host, to recognise an MX
 * record that points back at it (RFC 5321 section 5.1).
 *
 * The set contains the addresses of the network interfaces, as
 * getifaddrs(3) lists them when the set is loaded, and the explicit
 * addresses of local_interfaces. Addresses that only route to this host
 * without being on an interface (127.0.0.2 and up on Linux) are not in
 * it, as they are not for Exim either.
 *
 * Thread use: the set is immutable once loaded. Fatal: out of memory.
 */
#ifndef SLUICE_LOCAL_ADDRESS_H
#define SLUICE_LOCAL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct local_addresses;

/* Loads the set. Never fails: when the interface list cannot be read,
 * the set has only the configured addresses and *warning is set (caller
 * frees); otherwise *warning is NULL. */
struct local_addresses *local_addresses_load(const struct config *config,
    char **warning);

/* Accepts NULL. */
void local_addresses_free(struct local_addresses *set);

/* True when addr (a struct in_addr or in6_addr of family) is in the set.
 * An IPv4-mapped IPv6 address counts as its IPv4 address. */
bool local_addresses_contain(const struct local_addresses *set, int family,
    const void *addr);

size_t local_addresses_count(const struct local_addresses *set);

#endif

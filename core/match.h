/*
 * match.h - matching hosts and domains against Exim host lists and
 * domain lists (hostlist relay_from_hosts, domainlist local_domains, ...).
 *
 * Lists use Exim's list syntax (config_list_init()): colon-separated,
 * "::" for a literal colon, "<;" at the start to change the separator,
 * which IPv6 items usually need. Items are tried in order; the first
 * that matches decides, and a "!" in front of it makes that decision
 * "no". When no item matches, the result is "no".
 *
 * Host list items:    "*", an IPv4 or IPv6 address, an address with a
 *                     prefix length ("192.0.2.0/24", "2001:db8::/32"),
 *                     "+name" for a named hostlist.
 * Domain list items:  "*", "*suffix" (e.g. "*.example.com"), "@" for
 *                     primary_hostname, "+name" for a named domainlist,
 *                     a domain (compared without case).
 * Any other form (host names, regular expressions, lookups such as
 * "lsearch;file", "@[]", "@mx_any") is not supported yet: it is an
 * error, which match_*_check() reports at start-up so that a list never
 * silently matches less than the operator wrote.
 *
 * An IPv4-mapped IPv6 address (::ffff:192.0.2.1) matches as the IPv4
 * address it carries.
 *
 * Errors are strings that the caller frees. Nothing here is fatal
 * except running out of memory.
 */
#ifndef SLUICE_MATCH_H
#define SLUICE_MATCH_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* Bounds: one list item, and how deep "+name" references may nest
 * (which also stops a list that names itself). */
#define MATCH_ITEM_MAX		1024
#define MATCH_DEPTH_MAX		16

/*
 * Match results: 1 matched, 0 did not, -1 the list is invalid, with
 * *error set ("hostlist relay_from_hosts: ...", caller frees). config
 * supplies named lists and primary_hostname; list may be NULL (empty).
 */
int match_hostlist(const struct config *config, const char *list_name,
    const char *list, const struct sockaddr *addr, char **error);
int match_domainlist(const struct config *config, const char *list_name,
    const char *list, const char *domain, char **error);

/* Match against the named list "name" (match_named_*), which may be
 * undefined: an undefined list matches nothing. */
int match_named_hostlist(const struct config *config, const char *name,
    const struct sockaddr *addr, char **error);
int match_named_domainlist(const struct config *config, const char *name,
    const char *domain, char **error);

/* Checks every item of a list (and the lists it names) without matching
 * anything; list may be NULL. Returns 0, or -1 with *error set. */
int match_check_hostlist(const struct config *config, const char *list_name,
    const char *list, char **error);

/*
 * As match_named_hostlist() and match_named_domainlist(), and also
 * stores in matched (size bytes) the item that decided the result, with
 * "!" in front when it was negated, or "" when none did: for the ">>>"
 * lines of -bh.
 */
int match_named_hostlist_item(const struct config *config, const char *name,
    const struct sockaddr *addr, char *matched, size_t size, char **error);
int match_named_domainlist_item(const struct config *config,
    const char *name, const char *domain, char *matched, size_t size,
    char **error);

/* Checks every item of a named list (and the lists it names) without
 * matching anything. Returns 0, or -1 with *error set. */
int match_check_named_hostlist(const struct config *config,
    const char *name, char **error);
int match_check_named_domainlist(const struct config *config,
    const char *name, char **error);

#endif

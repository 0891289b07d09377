/*
 * egress.h - the egress sources: local IP addresses that deliveries
 * connect from, each with the host name it sends in EHLO.
 *
 * The set comes from the egress_sources option now ("ip" or "ip/name"
 * items). The Lua policy will supply it later, so nothing else reads the
 * option, and a delivery takes its source as an input (see
 * smtp_pool.h). When the set is loaded:
 *  - a source whose address cannot be bound on this host is logged to
 *    mainlog and paniclog and left out;
 *  - each source's PTR records are looked up, and a source whose PTR
 *    names do not include its EHLO name gets a warning in mainlog,
 *    since receiving servers penalise the mismatch.
 * A source without a name sends primary_hostname.
 *
 * Thread use: the loop thread. Fatal: out of memory only.
 */
#ifndef SLUICE_EGRESS_H
#define SLUICE_EGRESS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct dns_resolver;
struct egress_set;

/* Sources in one set, at most; more is a configuration error. */
#define EGRESS_SOURCES_MAX	256

struct egress_source {
	char ip[INET6_ADDRSTRLEN];
	int family;			/* AF_INET or AF_INET6 */
	char *ehlo_name;
};

/*
 * Loads the set from config->egress_sources, checking each address and
 * starting the PTR checks with resolver (NULL skips them). Returns NULL
 * with *error set (caller frees) for an invalid list. Sources that
 * cannot be used are logged and left out, which is not an error.
 */
struct egress_set *egress_set_load(const struct config *config,
    struct dns_resolver *resolver, char **error);

/* Cancels the PTR checks still running and frees the set. Accepts NULL. */
void egress_set_free(struct egress_set *set);

/* Usable sources of a family (AF_UNSPEC: of both). */
size_t egress_set_count(const struct egress_set *set, int family);

/* The next usable source of family, taking turns; NULL when the set has
 * none of that family. Borrowed until the set is freed. */
const struct egress_source *egress_set_pick(struct egress_set *set,
    int family);

/* The usable source with address ip, or NULL. */
const struct egress_source *egress_set_find(const struct egress_set *set,
    const char *ip);

/*
 * Parses one egress_sources item, "ip" or "ip/ehlo-name", into source
 * (ehlo_name NULL when absent; the caller frees it). Returns 0, or -1
 * with *error set (caller frees).
 */
int egress_source_parse(const char *item, struct egress_source *source,
    char **error);

/* Checks that ip can be bound here: returns 0, or an errno value. */
int egress_source_check_bind(const struct egress_source *source);

#endif

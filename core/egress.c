/*
 * egress.c - the egress sources and their checks (see egress.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "dns.h"
#include "egress.h"
#include "log.h"
#include "util.h"

/* A running PTR check of one source. */
struct egress_ptr_check {
	struct egress_set *set;
	size_t source;			/* index into set->sources */
	struct dns_lookup *lookup;
};

struct egress_set {
	struct egress_source *sources;
	size_t count;
	size_t next[2];			/* turn per family: IPv4, IPv6 */
	struct egress_ptr_check *checks;	/* one per source */
};

int
egress_source_parse(const char *item, struct egress_source *source,
    char **error)
{
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned char addr[sizeof(struct in6_addr)];
	char ip[INET6_ADDRSTRLEN];

	memset(source, 0, sizeof(*source));
	if (len == 0 || len >= sizeof(ip)) {
		*error = xasprintf("egress_sources: \"%s\" does not start with "
		    "an IP address", item);
		return -1;
	}
	memcpy(ip, item, len);
	ip[len] = '\0';
	if (inet_pton(AF_INET, ip, addr) == 1) {
		source->family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, addr) == 1) {
		source->family = AF_INET6;
	} else {
		*error = xasprintf("egress_sources: \"%s\" is not an IPv4 or "
		    "IPv6 address", ip);
		return -1;
	}
	/* The canonical form, so that sources compare as text. */
	inet_ntop(source->family, addr, source->ip, sizeof(source->ip));
	if (slash != NULL) {
		if (slash[1] == '\0') {
			*error = xasprintf("egress_sources: no EHLO name after "
			    "\"/\" in \"%s\"", item);
			return -1;
		}
		source->ehlo_name = xstrdup(slash + 1);
	}
	return 0;
}

int
egress_source_check_bind(const struct egress_source *source)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc = 0;

	memset(&ss, 0, sizeof(ss));
	if (source->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		inet_pton(AF_INET, source->ip, &sin->sin_addr);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, source->ip, &sin6->sin6_addr);
		len = sizeof(*sin6);
	}
	fd = socket(source->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		rc = errno;
	close(fd);
	return rc;
}

static void
egress_ptr_cb(void *arg, struct dns_result *result)
{
	struct egress_ptr_check *check = arg;
	const struct egress_source *source =
	    &check->set->sources[check->source];
	bool matched = false;

	check->lookup = NULL;
	if (result->status != DNS_OK) {
		log_write(LOG_MAIN, NULL, "egress source %s: no PTR record "
		    "found (%s); receiving servers may reject mail from it",
		    source->ip, result->error != NULL ? result->error :
		    dns_status_name(result->status));
		dns_result_free(result);
		return;
	}
	for (size_t i = 0; i < result->host_count && !matched; i++)
		matched = strcasecmp(result->hosts[i].name,
		    source->ehlo_name) == 0;
	if (!matched)
		log_write(LOG_MAIN, NULL, "egress source %s: its PTR record "
		    "names %s, not its EHLO name %s; receiving servers may "
		    "penalise the mismatch", source->ip,
		    result->host_count > 0 ? result->hosts[0].name : "",
		    source->ehlo_name);
	dns_result_free(result);
}

/* Adds one item to the set, or logs why it is left out. */
static int
egress_set_add(struct egress_set *set, const struct config *config,
    const char *item, char **error)
{
	struct egress_source source;
	int rc;

	if (egress_source_parse(item, &source, error) != 0)
		return -1;
	if (egress_set_find(set, source.ip) != NULL) {
		*error = xasprintf("egress_sources: %s is listed twice",
		    source.ip);
		free(source.ehlo_name);
		return -1;
	}
	if ((rc = egress_source_check_bind(&source)) != 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "egress source %s is not "
		    "usable on this host (%s): deliveries will not use it",
		    source.ip, strerror(rc));
		free(source.ehlo_name);
		return 0;
	}
	if (source.ehlo_name == NULL)
		source.ehlo_name = xstrdup(config->primary_hostname);
	set->sources = xreallocarray(set->sources, set->count + 1,
	    sizeof(*set->sources));
	set->sources[set->count++] = source;
	return 0;
}

struct egress_set *
egress_set_load(const struct config *config, struct dns_resolver *resolver,
    char **error)
{
	struct egress_set *set = xcalloc(1, sizeof(*set));
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];
	size_t items = 0;

	config_list_init(&iter, config->egress_sources);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (item[0] == '\0')
			continue;
		if (++items > EGRESS_SOURCES_MAX) {
			*error = xasprintf("egress_sources lists more than %d "
			    "sources", EGRESS_SOURCES_MAX);
			goto fail;
		}
		if (egress_set_add(set, config, item, error) != 0)
			goto fail;
	}
	if (iter.error) {
		*error = xasprintf("egress_sources: an item is longer than %d "
		    "characters", CONFIG_LIST_ITEM_MAX);
		goto fail;
	}

	set->checks = xcalloc(set->count > 0 ? set->count : 1,
	    sizeof(*set->checks));
	for (size_t i = 0; i < set->count && resolver != NULL; i++) {
		struct egress_ptr_check *check = &set->checks[i];
		char *lookup_error = NULL;

		check->set = set;
		check->source = i;
		check->lookup = dns_lookup_ptr(resolver, set->sources[i].ip,
		    egress_ptr_cb, check, &lookup_error);
		if (check->lookup == NULL) {
			log_write(LOG_MAIN, NULL, "egress source %s: cannot "
			    "look up its PTR record: %s", set->sources[i].ip,
			    lookup_error);
			free(lookup_error);
		}
	}
	return set;

fail:
	egress_set_free(set);
	return NULL;
}

void
egress_set_free(struct egress_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; set->checks != NULL && i < set->count; i++)
		if (set->checks[i].lookup != NULL)
			dns_lookup_cancel(set->checks[i].lookup);
	for (size_t i = 0; i < set->count; i++)
		free(set->sources[i].ehlo_name);
	free(set->checks);
	free(set->sources);
	free(set);
}

size_t
egress_set_count(const struct egress_set *set, int family)
{
	size_t n = 0;

	for (size_t i = 0; i < set->count; i++)
		if (family == AF_UNSPEC || set->sources[i].family == family)
			n++;
	return n;
}

const struct egress_source *
egress_set_pick(struct egress_set *set, int family)
{
	size_t *turn = &set->next[family == AF_INET6 ? 1 : 0];

	for (size_t k = 0; k < set->count; k++) {
		const struct egress_source *source =
		    &set->sources[(*turn + k) % set->count];

		if (source->family == family) {
			*turn = (*turn + k + 1) % set->count;
			return source;
		}
	}
	return NULL;
}

const struct egress_source *
egress_set_find(const struct egress_set *set, const char *ip)
{
	for (size_t i = 0; i < set->count; i++)
		if (strcmp(set->sources[i].ip, ip) == 0)
			return &set->sources[i];
	return NULL;
}

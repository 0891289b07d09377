/*
 * route_test.c - "sluice -bt" and "sluice -bv" (see route_test.h).
 *
 * Each address is routed on its own: the lookups run on a private event
 * loop, which runs until the lookup in hand calls back, so the output
 * follows the order of the addresses. The routing rules are the queue's
 * (core/queue.c): the smarthost option's hosts when it is set, else the
 * domain's MX hosts; then the policy's route handler may name the site,
 * the egress pool and hosts of its own, and the source is chosen as the
 * scheduler would choose it now (core/scheduler.h), for mail of the
 * class that mail from outside gets by default.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns.h"
#include "local_address.h"
#include "log_line.h"
#include "policy.h"
#include "policy_queue.h"
#include "route_test.h"
#include "scheduler.h"
#include "submit.h"
#include "util.h"

/* Host addresses listed per address; more are left out. */
#define ROUTE_TEST_HOSTS_MAX	64
/* Bytes of one smarthost item, and of one address read from stdin. */
#define ROUTE_TEST_ITEM_MAX	512
#define ROUTE_TEST_LINE_MAX	1024
#define ROUTE_TEST_REASON_MAX	256
#define ROUTE_TEST_SMTP_PORT	25

struct route_test_host {
	char name[DNS_NAME_MAX + 1];
	char ip[INET6_ADDRSTRLEN];
	int mx;				/* preference, or -1 without MX */
	int port;
};

enum route_test_status {
	ROUTE_TEST_ROUTED,
	ROUTE_TEST_FAILED,		/* undeliverable */
	ROUTE_TEST_DEFERRED,		/* cannot be resolved at this time */
};

struct route_test_result {
	enum route_test_status status;
	char reason[ROUTE_TEST_REASON_MAX];
	const char *router;
	const char *transport;
	/* The site, egress pool and source of a delivery, printed after
	 * the router line; the route handler's hosts replace the others. */
	char site[POLICY_SITE_MAX + 1];
	char pool[POLICY_QUEUE_NAME_MAX + 1];
	char route[POLICY_QUEUE_NAME_MAX + 1];	/* the router's name */
	char source[POLICY_QUEUE_NAME_MAX + 64];
	size_t explicit_count;
	char explicit_hosts[POLICY_ROUTE_HOSTS_MAX][POLICY_HOST_NAME_MAX + 1];
	int port;			/* the route's, or 0 */
	struct route_test_host hosts[ROUTE_TEST_HOSTS_MAX];
	size_t host_count;
};

struct route_test {
	const struct config *config;
	struct event_base *base;
	struct dns_resolver *resolver;
	struct local_addresses *local;
	struct scheduler *sched;
	/* The lookup in hand. */
	bool done;
	struct dns_result *result;
};

static void
route_test_lookup_cb(void *arg, struct dns_result *result)
{
	struct route_test *rt = arg;

	rt->result = result;
	rt->done = true;
}

/* Runs the loop until the lookup started with route_test_lookup_cb
 * calls back; returns its result (caller frees). */
static struct dns_result *
route_test_wait(struct route_test *rt)
{
	while (!rt->done)
		if (event_base_loop(rt->base, EVLOOP_ONCE) < 0)
			fatalx("the event loop failed during a DNS lookup");
	rt->done = false;
	return rt->result;
}

static bool
route_test_is_local(const struct dns_address *address, void *arg)
{
	const struct route_test *rt = arg;

	return local_addresses_contain(rt->local, address->family,
	    &address->addr);
}

static void
route_test_add_host(struct route_test_result *r, const char *name,
    const char *ip, int mx, int port)
{
	struct route_test_host *h;

	if (r->host_count >= ROUTE_TEST_HOSTS_MAX)
		return;
	h = &r->hosts[r->host_count++];
	strlcpy_s(h->name, name, sizeof(h->name));
	strlcpy_s(h->ip, ip, sizeof(h->ip));
	h->mx = mx;
	h->port = port;
}

static void
route_test_add_dns_hosts(struct route_test_result *r,
    const struct dns_result *result, bool with_mx, int port)
{
	for (size_t i = 0; i < result->host_count; i++) {
		const struct dns_host *host = &result->hosts[i];

		for (size_t j = 0; j < host->address_count; j++)
			route_test_add_host(r, host->name,
			    host->addresses[j].text,
			    with_mx ? (int)host->preference : -1, port);
	}
}

static void
route_test_set(struct route_test_result *r, enum route_test_status status,
    const char *reason)
{
	r->status = status;
	strlcpy_s(r->reason, reason, sizeof(r->reason));
}

/* Every host of the smarthost option, resolved in order. */
static void
route_test_smarthost(struct route_test *rt, struct route_test_result *r)
{
	struct config_list_iter iter;
	char item[ROUTE_TEST_ITEM_MAX], name[ROUTE_TEST_ITEM_MAX];
	int port;

	size_t index = 0;

	if (r->router == NULL)
		r->router = LOG_ROUTER_SMARTHOST;
	config_list_init(&iter, rt->config->smarthost);
	for (;;) {
		struct dns_result *result;
		char *error = NULL;

		/* The route handler's hosts, else the smarthost option's. */
		if (r->explicit_count > 0) {
			if (index >= r->explicit_count)
				break;
			strlcpy_s(item, r->explicit_hosts[index++], sizeof(item));
		} else if (config_list_next(&iter, item, sizeof(item)) == NULL) {
			break;
		}
		if (host_item_split(item, r->port > 0 ? r->port :
		    rt->config->delivery_port, name, sizeof(name), &port) < 0) {
			fprintf(stderr, "sluice: invalid smarthost item \"%s\" "
			    "skipped\n", item);
			continue;
		}
		if (host_is_ip_literal(name)) {
			route_test_add_host(r, name, name, -1, port);
			continue;
		}
		if (dns_lookup_host(rt->resolver, name, route_test_lookup_cb, rt,
		    &error) == NULL) {
			fprintf(stderr, "sluice: smarthost %s: %s\n", name, error);
			free(error);
			continue;
		}
		result = route_test_wait(rt);
		if (result->status == DNS_OK)
			route_test_add_dns_hosts(r, result, false, port);
		else
			fprintf(stderr, "sluice: smarthost %s: %s\n", name,
			    result->error != NULL ? result->error :
			    dns_status_name(result->status));
		dns_result_free(result);
	}
	if (r->host_count == 0)
		route_test_set(r, ROUTE_TEST_DEFERRED,
		    "no smarthost address could be found");
}

/*
 * Asks the policy's route handler about domain (mx: its MX hosts, NULL
 * with a smarthost) and fills in the site, the pool and the route's own
 * hosts; a failing handler defers the address, as the queue does.
 */
static void
route_test_policy(struct route_test *rt, struct route_test_result *r,
    const char *domain, const struct dns_result *mx)
{
	struct policy_route_in in = {
		.sender = "",
		.domain = domain,
		.tenant = "",
		.campaign = "",
	};
	struct policy_route_out out;
	enum policy_queue_result rc;

	/* Without a policy the output stays Exim's. */
	if (!policy_enabled())
		return;
	rc = scheduler_route(rt->sched, &in, scheduler_class_find(rt->sched,
	    NULL, false), mx, &out);
	if (rc == POLICY_QUEUE_FAILED) {
		route_test_set(r, ROUTE_TEST_DEFERRED,
		    "the policy's route handler failed");
		return;
	}
	strlcpy_s(r->site, out.site, sizeof(r->site));
	strlcpy_s(r->pool, out.pool, sizeof(r->pool));
	if (out.route[0] != '\0') {
		strlcpy_s(r->route, out.route, sizeof(r->route));
		r->router = r->route;
	}
	r->port = out.port;
	for (size_t i = 0; i < out.host_count; i++)
		strlcpy_s(r->explicit_hosts[r->explicit_count++], out.hosts[i],
		    sizeof(r->explicit_hosts[0]));
}

/* The source the scheduler would choose now for a routed address. */
static void
route_test_source(struct route_test *rt, struct route_test_result *r,
    const char *domain)
{
	char *error = NULL;
	struct sched_path *path = scheduler_choose(rt->sched, NULL, r->site,
	    r->pool, scheduler_class_find(rt->sched, NULL, false), domain,
	    &error);
	const char *ip;

	if (path == NULL) {
		route_test_set(r, ROUTE_TEST_DEFERRED, error);
		free(error);
		return;
	}
	ip = sched_path_source_ip(path);
	if (ip[0] == '\0')
		strlcpy_s(r->source, "chosen by the system", sizeof(r->source));
	else
		snprintf(r->source, sizeof(r->source), "%s [%s]",
		    sched_path_source_name(path), ip);
}

/* The domain's MX hosts, as the queue uses them. */
static void
route_test_mx(struct route_test *rt, const char *domain,
    struct route_test_result *r)
{
	struct dns_result *result;
	char *error = NULL;

	r->router = LOG_ROUTER_DNSLOOKUP;
	if (dns_lookup_mx(rt->resolver, domain, route_test_lookup_cb, rt,
	    &error) == NULL) {
		free(error);
		route_test_set(r, ROUTE_TEST_FAILED, "Unrouteable address");
		return;
	}
	result = route_test_wait(rt);
	switch (result->status) {
	case DNS_OK:
		if (dns_result_remove_local(result, route_test_is_local, rt) ==
		    DNS_SELF_LOWEST) {
			/* The queue freezes such a message. */
			route_test_set(r, ROUTE_TEST_DEFERRED,
			    result->implicit_mx ? "remote host address is the "
			    "local host" : "lowest numbered MX record points "
			    "to local host");
			break;
		}
		route_test_policy(rt, r, domain, result);
		if (r->status != ROUTE_TEST_ROUTED)
			break;
		if (r->explicit_count > 0)
			route_test_smarthost(rt, r);
		else
			route_test_add_dns_hosts(r, result, !result->implicit_mx,
			    r->port > 0 ? r->port : rt->config->delivery_port);
		if (r->host_count == 0)
			route_test_set(r, ROUTE_TEST_FAILED,
			    "Unrouteable address");
		break;
	case DNS_NOT_FOUND:
	case DNS_NO_DATA:
		route_test_set(r, ROUTE_TEST_FAILED, "Unrouteable address");
		break;
	case DNS_NO_MAIL:
		route_test_set(r, ROUTE_TEST_FAILED,
		    "Domain does not accept mail (null MX)");
		break;
	case DNS_TEMPFAIL:
		route_test_set(r, ROUTE_TEST_DEFERRED,
		    "host lookup did not complete");
		break;
	}
	dns_result_free(result);
}

/* Prints the route in Exim's -bt shape, host names and addresses in
 * aligned columns. */
static void
route_test_print_route(const char *address, const struct route_test_result *r)
{
	size_t name_width = 0, ip_width = 0;

	printf("%s\n  router = %s, transport = %s\n", address, r->router,
	    r->transport);
	if (r->site[0] != '\0')
		printf("  site = %s, pool = %s, source = %s\n", r->site, r->pool,
		    r->source);
	for (size_t i = 0; i < r->host_count; i++) {
		size_t name_len = strlen(r->hosts[i].name);
		size_t ip_len = strlen(r->hosts[i].ip);

		if (name_len > name_width)
			name_width = name_len;
		if (ip_len > ip_width)
			ip_width = ip_len;
	}
	for (size_t i = 0; i < r->host_count; i++) {
		const struct route_test_host *h = &r->hosts[i];

		printf("  host %-*s [%s]%*s", (int)name_width, h->name, h->ip,
		    (int)(ip_width - strlen(h->ip)), "");
		if (h->mx >= 0)
			printf(" MX=%d", h->mx);
		if (h->port != ROUTE_TEST_SMTP_PORT)
			printf(" port=%d", h->port);
		putchar('\n');
	}
}

/* Routes and prints one address; returns its status. */
static enum route_test_status
route_test_one(struct route_test *rt, const char *input, bool verify,
    bool verbose)
{
	const struct config *config = rt->config;
	const char *qualify = config->qualify_recipient != NULL &&
	    config->qualify_recipient[0] != '\0' ? config->qualify_recipient :
	    config->qualify_domain;
	struct route_test_result *r = xcalloc(1, sizeof(*r));
	const char *problem = submit_check_address(input);
	enum route_test_status status;
	char *address;

	address = strchr(input, '@') != NULL || problem != NULL ?
	    xstrdup(input) : xasprintf("%s@%s", input, qualify);
	r->transport = LOG_TRANSPORT_REMOTE;
	if (problem != NULL)
		route_test_set(r, ROUTE_TEST_FAILED, problem);
	else if (config->smarthost != NULL && config->smarthost[0] != '\0') {
		r->router = LOG_ROUTER_SMARTHOST;
		route_test_policy(rt, r, strrchr(address, '@') + 1, NULL);
		if (r->status == ROUTE_TEST_ROUTED)
			route_test_smarthost(rt, r);
	} else {
		route_test_mx(rt, strrchr(address, '@') + 1, r);
	}
	if (r->status == ROUTE_TEST_ROUTED && r->site[0] != '\0')
		route_test_source(rt, r, strrchr(address, '@') + 1);

	switch (r->status) {
	case ROUTE_TEST_ROUTED:
		if (verify && !verbose)
			printf("%s verified\n", address);
		else
			route_test_print_route(address, r);
		break;
	case ROUTE_TEST_FAILED:
		printf("%s %s: %s\n", address, verify ? "failed to verify" :
		    "is undeliverable", r->reason);
		break;
	case ROUTE_TEST_DEFERRED:
		printf("%s cannot be resolved at this time: %s\n", address,
		    r->reason);
		break;
	}
	fflush(stdout);
	status = r->status;
	free(address);
	free(r);
	return status;
}

/* Reads one address per line from stdin after a "> " prompt. Returns
 * the worst status seen. */
static enum route_test_status
route_test_stdin(struct route_test *rt, bool verify, bool verbose)
{
	enum route_test_status worst = ROUTE_TEST_ROUTED, status;
	char line[ROUTE_TEST_LINE_MAX];
	char *start, *end;

	for (;;) {
		fputs("> ", stdout);
		fflush(stdout);
		if (fgets(line, sizeof(line), stdin) == NULL) {
			putchar('\n');
			break;
		}
		if (strchr(line, '\n') == NULL && !feof(stdin)) {
			int c;

			/* The rest of an over-long line is skipped. */
			while ((c = getchar()) != EOF && c != '\n')
				;
			printf("address longer than %d bytes ignored\n",
			    ROUTE_TEST_LINE_MAX - 2);
			continue;
		}
		start = line + strspn(line, " \t");
		end = start + strcspn(start, "\r\n");
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (*start == '\0')
			continue;
		status = route_test_one(rt, start, verify, verbose);
		if (status == ROUTE_TEST_FAILED || worst == ROUTE_TEST_ROUTED)
			worst = status;
	}
	return worst;
}

int
route_test_run(const struct config *config, char *const *addresses,
    int count, bool verify, bool verbose)
{
	struct route_test rt = { .config = config };
	enum route_test_status worst = ROUTE_TEST_ROUTED, status;
	struct dns_options options;
	char *error = NULL;

	if ((rt.base = event_base_new()) == NULL)
		fatalx("cannot create an event loop for -bt");
	dns_options_from_config(&options, config);
	if ((rt.resolver = dns_resolver_new(rt.base, &options, &error)) ==
	    NULL) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		event_base_free(rt.base);
		return 1;
	}
	rt.local = local_addresses_load(config, &error);
	if (error != NULL) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		error = NULL;
	}
	if (policy_start(NULL, config, &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		local_addresses_free(rt.local);
		dns_resolver_free(rt.resolver);
		event_base_free(rt.base);
		return 1;
	}
	rt.sched = scheduler_new(rt.base, config);
	{
		struct policy_state *ps = policy_current();

		scheduler_load(rt.sched, ps);
		policy_state_unref(ps);
	}

	if (count == 0)
		worst = route_test_stdin(&rt, verify, verbose);
	for (int i = 0; i < count; i++) {
		status = route_test_one(&rt, addresses[i], verify, verbose);
		if (status == ROUTE_TEST_FAILED || worst == ROUTE_TEST_ROUTED)
			worst = status;
	}

	scheduler_free(rt.sched);
	policy_stop();
	local_addresses_free(rt.local);
	dns_resolver_free(rt.resolver);
	event_base_free(rt.base);
	return worst == ROUTE_TEST_FAILED ? 2 :
	    worst == ROUTE_TEST_DEFERRED ? 1 : 0;
}

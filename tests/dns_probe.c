/*
 * dns_probe.c - resolves one domain with sluice's DNS module and prints
 * what it found, for the end-to-end tests (tests/e2e/test_dns_client.py).
 *
 *   dns_probe --server LIST [--port N] [--timeout SEC] [--query-timeout MS]
 *             [--tries N] [--no-shuffle] [--ipv4-only] [--host]
 *             [--repeat N] DOMAIN
 *
 * --repeat starts N identical lookups at once and prints each result.
 *
 * --server is required, so a test can never reach the resolvers of
 * /etc/resolv.conf. Output, one item per line:
 *
 *   status ok implicit=no
 *   host 10 mx1.example.test ok 127.0.0.5 ::1
 *   error <text>                (only when the status is not ok)
 *
 * Exit status: 0 ok, 1 permanent failure, 2 temporary failure, 64 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns.h"
#include "util.h"

struct probe {
	struct event_base *base;
	int exit_status;
	unsigned long long remaining;	/* lookups not called back */
};

/* The status as one word, for the tests to match. */
static const char *
status_word(enum dns_status status)
{
	switch (status) {
	case DNS_OK:		return "ok";
	case DNS_NO_DATA:	return "no-data";
	case DNS_NOT_FOUND:	return "not-found";
	case DNS_NO_MAIL:	return "no-mail";
	case DNS_TEMPFAIL:	return "tempfail";
	}
	return "unknown";
}

static void
result_cb(void *arg, struct dns_result *result)
{
	struct probe *probe = arg;

	printf("status %s implicit=%s\n", status_word(result->status),
	    result->implicit_mx ? "yes" : "no");
	for (size_t i = 0; i < result->host_count; i++) {
		const struct dns_host *h = &result->hosts[i];

		printf("host %u %s %s", h->preference, h->name,
		    status_word(h->status));
		for (size_t j = 0; j < h->address_count; j++)
			printf(" %s", h->addresses[j].text);
		printf("\n");
	}
	if (result->error != NULL)
		printf("error %s\n", result->error);
	probe->exit_status = result->status == DNS_OK ? 0 :
	    result->status == DNS_TEMPFAIL ? 2 : 1;
	dns_result_free(result);
	if (--probe->remaining == 0)
		event_base_loopbreak(probe->base);
}

static void
usage(void)
{
	fprintf(stderr, "usage: dns_probe --server LIST [--port N] "
	    "[--timeout SEC] [--query-timeout MS] [--tries N] [--no-shuffle] "
	    "[--ipv4-only] [--host] [--repeat N] DOMAIN\n");
	exit(64);
}

static unsigned long long
number_arg(const char *name, const char *text, unsigned long long max)
{
	unsigned long long value;

	if (parse_uint(text, max, &value) != 0) {
		fprintf(stderr, "dns_probe: %s must be a number from 0 to %llu, "
		    "got \"%s\"\n", name, max, text);
		exit(64);
	}
	return value;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "server", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "query-timeout", required_argument, NULL, 'q' },
		{ "tries", required_argument, NULL, 'r' },
		{ "no-shuffle", no_argument, NULL, 'n' },
		{ "ipv4-only", no_argument, NULL, '4' },
		{ "host", no_argument, NULL, 'h' },
		{ "repeat", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct dns_options options;
	struct dns_resolver *resolver;
	struct probe probe = { NULL, 2, 1 };
	unsigned long long repeat = 1;
	bool host_only = false;
	char *error = NULL;
	int c;

	dns_options_init(&options);
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 's':
			options.servers = optarg;
			break;
		case 'p':
			options.port = (int)number_arg("--port", optarg, 65535);
			break;
		case 't':
			options.lookup_timeout_usec =
			    number_arg("--timeout", optarg, 3600) * 1000000;
			break;
		case 'q':
			options.query_timeout_ms = (unsigned)number_arg(
			    "--query-timeout", optarg, 60000);
			break;
		case 'r':
			options.tries = (unsigned)number_arg("--tries", optarg,
			    10);
			break;
		case 'n':
			options.shuffle_equal_mx = false;
			break;
		case '4':
			options.want_ipv6 = false;
			break;
		case 'h':
			host_only = true;
			break;
		case 'R':
			repeat = number_arg("--repeat", optarg, 1000);
			if (repeat == 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind + 1 != argc || options.servers == NULL ||
	    *options.servers == '\0')
		usage();

	probe.base = event_base_new();
	if (probe.base == NULL)
		fatalx("cannot create an event base");
	resolver = dns_resolver_new(probe.base, &options, &error);
	if (resolver == NULL) {
		fprintf(stderr, "dns_probe: %s\n", error);
		free(error);
		return 64;
	}
	probe.remaining = repeat;
	for (unsigned long long i = 0; i < repeat; i++) {
		if ((host_only ? dns_lookup_host(resolver, argv[optind],
		    result_cb, &probe, &error) : dns_lookup_mx(resolver,
		    argv[optind], result_cb, &probe, &error)) == NULL) {
			printf("status invalid\nerror %s\n", error);
			free(error);
			probe.exit_status = 1;
			repeat = 0;
			break;
		}
	}
	if (repeat > 0)
		event_base_dispatch(probe.base);
	dns_resolver_free(resolver);
	event_base_free(probe.base);
	return probe.exit_status;
}

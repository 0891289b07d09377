/*
 * test_listener.c - parsing of local_interfaces, daemon_smtp_ports and
 * the -oX override.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "listener.h"

struct good_case {
	const char *interfaces;
	const char *ports;
	const char *override;
	const char *want;	/* names joined by spaces */
};

static const struct good_case good_cases[] = {
	{ "127.0.0.1", "2525", NULL, "[127.0.0.1]:2525" },
	{ "127.0.0.1", "smtp", NULL, "[127.0.0.1]:25" },
	{ "127.0.0.1", "25 : 587", NULL, "[127.0.0.1]:25 [127.0.0.1]:587" },
	{ "127.0.0.1 : 127.0.0.2.2600", "25", NULL,
	    "[127.0.0.1]:25 [127.0.0.2]:2600" },
	{ "<; 0.0.0.0 ; ::0", "25", NULL, "[0.0.0.0]:25 [::]:25" },
	{ "<; ::1", "submission", NULL, "[::1]:587" },
	{ "<; [::1]:2526 ; 127.0.0.1", "25", NULL,
	    "[::1]:2526 [127.0.0.1]:25" },
	{ "<; ::1.2527", "25", NULL, "[::1]:2527" },
	{ "<; [127.0.0.3]:26", "25", NULL, "[127.0.0.3]:26" },
	/* -oX: items without "." or ":" are ports, the others addresses. */
	{ "127.0.0.1", "25", "2600", "[127.0.0.1]:2600" },
	{ "0.0.0.0", "25", "127.0.0.4", "[127.0.0.4]:25" },
	{ "0.0.0.0", "25", "127.0.0.4 : 2601", "[127.0.0.4]:2601" },
	{ "0.0.0.0", "25", "127.0.0.5.2602", "[127.0.0.5]:2602" },
};

struct bad_case {
	const char *interfaces;
	const char *ports;
	const char *want_error;
};

static const struct bad_case bad_cases[] = {
	{ "127.0.0.1", "0", "invalid port \"0\" in daemon_smtp_ports: expected a "
	    "number from 1 to 65535 or a service name" },
	{ "127.0.0.1", "65536", "invalid port \"65536\" in daemon_smtp_ports: "
	    "expected a number from 1 to 65535 or a service name" },
	{ "127.0.0.1", "no-such-service", "invalid port \"no-such-service\" in "
	    "daemon_smtp_ports: expected a number from 1 to 65535 or a service "
	    "name" },
	{ "mail.example.test", "25", "invalid listening address "
	    "\"mail.example.test\": expected an IP address, \"ip.port\" or "
	    "\"[ip]:port\"" },
	{ "[127.0.0.1", "25", "invalid listening address \"[127.0.0.1\": "
	    "expected an IP address, \"ip.port\" or \"[ip]:port\"" },
	{ "<; [127.0.0.1]:x", "25", "invalid listening address \"[127.0.0.1]:x\": "
	    "expected an IP address, \"ip.port\" or \"[ip]:port\"" },
	{ "", "25", "no listening address: local_interfaces or "
	    "daemon_smtp_ports is empty" },
};

static void
test_listener_good_cases(void **state)
{
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		const struct good_case *c = &good_cases[i];
		struct listener_addr addrs[LISTENER_MAX];
		char got[1024] = "";
		char *error = NULL;
		int n;

		n = listener_parse(c->interfaces, c->ports, c->override, addrs,
		    LISTENER_MAX, &error);
		if (n < 0)
			fail_msg("case %zu (%s / %s): got error \"%s\"", i,
			    c->interfaces, c->ports, error);
		for (int j = 0; j < n; j++) {
			if (j > 0)
				strcat(got, " ");
			strcat(got, addrs[j].name);
		}
		if (strcmp(got, c->want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, c->want);
	}
}

static void
test_listener_bad_cases(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct listener_addr addrs[LISTENER_MAX];
		char *error = NULL;
		int n;

		n = listener_parse(c->interfaces, c->ports, NULL, addrs,
		    LISTENER_MAX, &error);
		if (n >= 0)
			fail_msg("case %zu (%s / %s): parsed, want an error", i,
			    c->interfaces, c->ports);
		if (strcmp(error, c->want_error) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, error,
			    c->want_error);
		free(error);
	}
}

static void
test_listener_too_many(void **state)
{
	struct listener_addr addrs[2];
	char *error = NULL;

	assert_int_equal(listener_parse("127.0.0.1", "25 : 26 : 27", NULL, addrs,
	    2, &error), -1);
	assert_string_equal(error, "more than 2 listening addresses");
	free(error);
}

static void
test_listener_opens_loopback(void **state)
{
	struct listener_addr addr;
	char *error = NULL;
	int fd;

	/* Port 1 cannot be bound by an unprivileged user, so a free high
	 * port is found by trying; 0 is not allowed by the parser. */
	assert_int_equal(listener_parse("127.0.0.1", "40000", NULL, &addr, 1,
	    &error), 1);
	fd = listener_open(&addr, 16);
	if (fd < 0)
		skip();		/* port in use on this machine */
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listener_good_cases),
		cmocka_unit_test(test_listener_bad_cases),
		cmocka_unit_test(test_listener_too_many),
		cmocka_unit_test(test_listener_opens_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

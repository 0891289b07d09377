/*
 * test_local_address.c - this host's addresses: the interfaces' ones
 * (127.0.0.1 and ::1 are on lo) and the explicit local_interfaces items
 * in each of their forms, but no wildcard and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "config.h"
#include "local_address.h"
#include "util.h"

static bool
contains(const struct local_addresses *set, const char *ip)
{
	unsigned char addr[16];
	int family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;

	assert_int_equal(inet_pton(family, ip, addr), 1);
	return local_addresses_contain(set, family, addr);
}

static void
interfaces_and_configured(void **state)
{
	static const struct {
		const char *ip;
		bool local;
	} cases[] = {
		{ "127.0.0.1", true },		/* on lo */
		{ "192.0.2.7", true },		/* plain item */
		{ "192.0.2.8", true },		/* ip.port */
		{ "2001:db8::9", true },	/* [ip]:port */
		{ "::ffff:192.0.2.7", true },	/* IPv4-mapped */
		{ "127.0.0.5", false },		/* routes here, on no interface */
		{ "192.0.2.99", false },
		{ "0.0.0.0", false },
	};
	struct config config;
	struct local_addresses *set;
	char *warning = NULL;

	(void)state;
	memset(&config, 0, sizeof(config));
	config.local_interfaces = (char *)"<; 0.0.0.0 ; ::0 ; 192.0.2.7 ; "
	    "192.0.2.8.2525 ; [2001:db8::9]:25 ; not-an-address";
	set = local_addresses_load(&config, &warning);
	assert_null(warning);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (contains(set, cases[i].ip) != cases[i].local)
			fail_msg("%s: got %d, want %d", cases[i].ip,
			    !cases[i].local, cases[i].local);
	assert_true(local_addresses_count(set) >= 4);
	local_addresses_free(set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(interfaces_and_configured),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

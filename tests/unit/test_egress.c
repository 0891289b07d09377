/*
 * test_egress.c - egress sources: the "ip/ehlo-name" items, the check
 * that an address can be bound here, and taking turns among the usable
 * sources of a family. The addresses are loopback ones (127.0.0.0/8 is
 * all local on Linux) and 192.0.2.1 (TEST-NET-1, never on this host);
 * only bind() is called, nothing is sent.
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
#include "egress.h"
#include "util.h"

static void
parse_items_table(void **state)
{
	static const struct {
		const char *item;
		const char *ip;		/* NULL: an error is expected */
		int family;
		const char *name;
	} cases[] = {
		{ "127.0.0.3", "127.0.0.3", AF_INET, NULL },
		{ "127.0.0.3/out3.example.test", "127.0.0.3", AF_INET,
		  "out3.example.test" },
		{ "2001:db8::1/v6.example.test", "2001:db8::1", AF_INET6,
		  "v6.example.test" },
		{ "2001:0db8:0::0001", "2001:db8::1", AF_INET6, NULL },
		{ "127.0.0.3/", NULL, 0, NULL },
		{ "/name.test", NULL, 0, NULL },
		{ "mail.example.test", NULL, 0, NULL },
		{ "127.0.0.300", NULL, 0, NULL },
		{ "", NULL, 0, NULL },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct egress_source source;
		char *error = NULL;
		int rc = egress_source_parse(cases[i].item, &source, &error);

		if (cases[i].ip == NULL) {
			if (rc != -1 || error == NULL)
				fail_msg("\"%s\": got %d, want an error",
				    cases[i].item, rc);
			free(error);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\": got error \"%s\"", cases[i].item,
			    error);
		assert_string_equal(source.ip, cases[i].ip);
		assert_int_equal(source.family, cases[i].family);
		if (cases[i].name == NULL)
			assert_null(source.ehlo_name);
		else
			assert_string_equal(source.ehlo_name, cases[i].name);
		free(source.ehlo_name);
	}
}

static void
bind_check(void **state)
{
	struct egress_source here = { .ip = "127.0.0.3", .family = AF_INET };
	struct egress_source away = { .ip = "192.0.2.1", .family = AF_INET };

	(void)state;
	assert_int_equal(egress_source_check_bind(&here), 0);
	assert_int_not_equal(egress_source_check_bind(&away), 0);
}

static void
set_takes_turns_by_family(void **state)
{
	struct config config;
	struct egress_set *set;
	const struct egress_source *s;
	char *error = NULL;

	(void)state;
	memset(&config, 0, sizeof(config));
	config.primary_hostname = (char *)"primary.test";
	/* 192.0.2.1 cannot be bound here: logged and left out. */
	config.egress_sources = (char *)"<; 127.0.0.3/a.test ; 192.0.2.1 ; "
	    "127.0.0.4";
	set = egress_set_load(&config, NULL, &error);
	assert_non_null(set);
	assert_int_equal(egress_set_count(set, AF_INET), 2);
	assert_int_equal(egress_set_count(set, AF_INET6), 0);
	assert_null(egress_set_pick(set, AF_INET6));
	assert_null(egress_set_find(set, "192.0.2.1"));

	s = egress_set_pick(set, AF_INET);
	assert_string_equal(s->ip, "127.0.0.3");
	assert_string_equal(s->ehlo_name, "a.test");
	s = egress_set_pick(set, AF_INET);
	assert_string_equal(s->ip, "127.0.0.4");
	assert_string_equal(s->ehlo_name, "primary.test");
	s = egress_set_pick(set, AF_INET);
	assert_string_equal(s->ip, "127.0.0.3");
	egress_set_free(set);
}

static void
set_rejects_bad_lists(void **state)
{
	static const char *const lists[] = {
		"127.0.0.3 : 127.0.0.3",
		"127.0.0.3 : nonsense",
	};
	struct config config;

	(void)state;
	memset(&config, 0, sizeof(config));
	config.primary_hostname = (char *)"primary.test";
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		char *error = NULL;

		config.egress_sources = (char *)lists[i];
		if (egress_set_load(&config, NULL, &error) != NULL)
			fail_msg("\"%s\": loaded, want an error", lists[i]);
		assert_non_null(error);
		free(error);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_items_table),
		cmocka_unit_test(bind_check),
		cmocka_unit_test(set_takes_turns_by_family),
		cmocka_unit_test(set_rejects_bad_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_match.c - host list and domain list matching.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "config.h"
#include "match.h"

static struct sockaddr_storage
make_addr(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	}
	return ss;
}

/* A configuration with primary_hostname and up to four named lists. */
struct test_config {
	struct config config;
	struct config_named_list lists[4];
	size_t count;
};

static void
add_list(struct test_config *t, enum config_list_kind kind, const char *name,
    const char *value)
{
	struct config_named_list *l = &t->lists[t->count];

	assert_true(t->count < 4);
	l->kind = kind;
	l->name = (char *)name;
	l->value = (char *)value;
	l->next = t->config.named_lists;
	t->config.named_lists = l;
	t->count++;
}

static void
init_config(struct test_config *t)
{
	memset(t, 0, sizeof(*t));
	t->config.primary_hostname = (char *)"mx.example.net";
}

static int
host_matches(const char *list, const char *ip)
{
	struct test_config t;
	struct sockaddr_storage ss = make_addr(ip);
	char *error = NULL;
	int rc;

	init_config(&t);
	rc = match_hostlist(&t.config, "test", list, (struct sockaddr *)&ss,
	    &error);
	if (rc < 0)
		fail_msg("list \"%s\" failed: %s", list, error);
	return rc;
}

static int
domain_matches(const char *list, const char *domain)
{
	struct test_config t;
	char *error = NULL;
	int rc;

	init_config(&t);
	rc = match_domainlist(&t.config, "test", list, domain, &error);
	if (rc < 0)
		fail_msg("list \"%s\" failed: %s", list, error);
	return rc;
}

static void
hostlist_table(void **state)
{
	static const struct {
		const char *list;
		const char *ip;
		int want;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", 1 },
		{ "127.0.0.1", "127.0.0.2", 0 },
		{ "", "127.0.0.1", 0 },
		{ "*", "192.0.2.7", 1 },
		{ "*", "2001:db8::1", 1 },
		{ "10.0.0.0/8 : 127.0.0.0/8", "127.1.2.3", 1 },
		{ "10.0.0.0/8", "11.0.0.1", 0 },
		{ "192.0.2.128/25", "192.0.2.129", 1 },
		{ "192.0.2.128/25", "192.0.2.127", 0 },
		{ "192.0.2.1/31", "192.0.2.0", 1 },	/* host bits ignored */
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "192.0.2.5/32", "192.0.2.5", 1 },
		{ "<; 2001:db8::/32 ; ::1", "2001:db8:ffff::1", 1 },
		{ "<; 2001:db8::/32 ; ::1", "::1", 1 },
		{ "<; 2001:db8::/32", "2001:db9::1", 0 },
		{ "2001::db8::::/32", "2001:db8::5", 1 },	/* doubled colons */
		{ "127.0.0.1", "::ffff:127.0.0.1", 1 },		/* mapped IPv4 */
		{ "<; ::1", "127.0.0.1", 0 },
		{ "!127.0.0.2 : 127.0.0.0/8", "127.0.0.2", 0 },
		{ "!127.0.0.2 : 127.0.0.0/8", "127.0.0.3", 1 },
		{ "! 127.0.0.2 : *", "127.0.0.2", 0 },
		{ "!!127.0.0.2", "127.0.0.2", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = host_matches(cases[i].list, cases[i].ip);

		if (got != cases[i].want)
			fail_msg("hostlist \"%s\" with %s: got %d, want %d",
			    cases[i].list, cases[i].ip, got, cases[i].want);
	}
}

static void
hostlist_rejects_unsupported_items(void **state)
{
	static const char *const lists[] = {
		"mail.example.com",
		"127.0.0.1/33",
		"<; ::1/129",
		"10.0.0.0/",
		"net-lsearch;/etc/hosts.allow",
		"@[]",
		"+undefined_list",
	};
	struct test_config t;
	struct sockaddr_storage ss = make_addr("127.0.0.1");

	(void)state;
	init_config(&t);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char *error = NULL;
		int rc = match_hostlist(&t.config, "relay_from_hosts", lists[i],
		    (struct sockaddr *)&ss, &error);

		if (rc != -1)
			fail_msg("hostlist \"%s\": got %d, want -1", lists[i], rc);
		assert_non_null(error);
		assert_non_null(strstr(error, "hostlist relay_from_hosts: "));
		free(error);
	}
}

static void
domainlist_table(void **state)
{
	static const struct {
		const char *list;
		const char *domain;
		int want;
	} cases[] = {
		{ "example.com", "example.com", 1 },
		{ "example.com", "EXAMPLE.Com", 1 },
		{ "Example.COM", "example.com", 1 },
		{ "example.com", "mail.example.com", 0 },
		{ "example.com", "example.org", 0 },
		{ "", "example.com", 0 },
		{ "*", "anything.example", 1 },
		{ "*.example.com", "mail.example.com", 1 },
		{ "*.example.com", "example.com", 0 },
		{ "*example.com", "example.com", 1 },
		{ "*example.com", "badexample.com", 1 },
		{ "*.example.com", "a.b.EXAMPLE.com", 1 },
		{ "@", "mx.example.net", 1 },
		{ "@", "example.net", 0 },
		{ "a.test : b.test : c.test", "b.test", 1 },
		{ "!b.test : *.test", "b.test", 0 },
		{ "!b.test : *.test", "c.test", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = domain_matches(cases[i].list, cases[i].domain);

		if (got != cases[i].want)
			fail_msg("domainlist \"%s\" with %s: got %d, want %d",
			    cases[i].list, cases[i].domain, got, cases[i].want);
	}
}

static void
domainlist_rejects_unsupported_items(void **state)
{
	static const char *const lists[] = {
		"^.*\\.example\\.com$",
		"lsearch;/etc/virtual_domains",
		"@mx_any",
		"@[]",
		"bad_domain.example",
		"-leading.example",
	};
	struct test_config t;

	(void)state;
	init_config(&t);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char *error = NULL;
		int rc = match_domainlist(&t.config, "local_domains", lists[i],
		    "example.com", &error);

		if (rc != -1)
			fail_msg("domainlist \"%s\": got %d, want -1", lists[i], rc);
		assert_non_null(error);
		free(error);
	}
}

static void
named_lists_and_references(void **state)
{
	struct test_config t;
	struct sockaddr_storage near = make_addr("192.0.2.10");
	struct sockaddr_storage far = make_addr("198.51.100.1");
	char *error = NULL;

	(void)state;
	init_config(&t);
	add_list(&t, CONFIG_HOSTLIST, "office", "192.0.2.0/24");
	add_list(&t, CONFIG_HOSTLIST, "relay_from_hosts", "127.0.0.1 : +office");
	add_list(&t, CONFIG_DOMAINLIST, "local_domains", "@ : local.test");
	add_list(&t, CONFIG_DOMAINLIST, "relay_to_domains", "!+local_domains : *");

	assert_int_equal(match_named_hostlist(&t.config, "relay_from_hosts",
	    (struct sockaddr *)&near, &error), 1);
	assert_int_equal(match_named_hostlist(&t.config, "relay_from_hosts",
	    (struct sockaddr *)&far, &error), 0);
	assert_int_equal(match_named_domainlist(&t.config, "local_domains",
	    "LOCAL.test", &error), 1);
	assert_int_equal(match_named_domainlist(&t.config, "local_domains",
	    "mx.example.net", &error), 1);
	assert_int_equal(match_named_domainlist(&t.config, "relay_to_domains",
	    "local.test", &error), 0);
	assert_int_equal(match_named_domainlist(&t.config, "relay_to_domains",
	    "other.test", &error), 1);
	/* An undefined list matches nothing and is no error. */
	assert_int_equal(match_named_domainlist(&t.config, "undefined",
	    "local.test", &error), 0);
	assert_null(error);
}

static void
self_reference_is_an_error(void **state)
{
	struct test_config t;
	char *error = NULL;

	(void)state;
	init_config(&t);
	add_list(&t, CONFIG_DOMAINLIST, "loop", "+loop");
	assert_int_equal(match_named_domainlist(&t.config, "loop", "a.test",
	    &error), -1);
	assert_non_null(strstr(error, "nests lists too deeply"));
	free(error);
}

static void
check_finds_bad_item_after_match(void **state)
{
	struct test_config t;
	char *error = NULL;

	(void)state;
	init_config(&t);
	/* Matching stops at "*", but the start-up check reads every item. */
	add_list(&t, CONFIG_HOSTLIST, "relay_from_hosts", "* : mail.example.com");
	add_list(&t, CONFIG_DOMAINLIST, "local_domains", "local.test");
	assert_int_equal(match_check_named_hostlist(&t.config,
	    "relay_from_hosts", &error), -1);
	assert_non_null(strstr(error, "mail.example.com"));
	free(error);
	error = NULL;
	assert_int_equal(match_check_named_domainlist(&t.config,
	    "local_domains", &error), 0);
	assert_int_equal(match_check_named_domainlist(&t.config,
	    "relay_to_domains", &error), 0);
	assert_null(error);
}

static void
overlong_item_is_an_error(void **state)
{
	struct test_config t;
	char *list = malloc(MATCH_ITEM_MAX + 10);
	char *error = NULL;

	(void)state;
	init_config(&t);
	memset(list, 'a', MATCH_ITEM_MAX + 9);
	list[MATCH_ITEM_MAX + 9] = '\0';
	assert_int_equal(match_domainlist(&t.config, "long", list, "a.test",
	    &error), -1);
	assert_non_null(strstr(error, "longer than"));
	free(error);
	free(list);
}

static void
matched_item_is_reported(void **state)
{
	static const struct {
		const char *list;	/* "relay_to_domains" */
		const char *domain;
		int want;
		const char *matched;
	} cases[] = {
		{ "relay.test : *.relay.test", "a.relay.test", 1, "*.relay.test" },
		{ "relay.test", "other.test", 0, "" },
		{ "!bad.relay.test : *.relay.test", "bad.relay.test", 0,
		    "!bad.relay.test" },
		{ "+local_domains", "LOCAL.test", 1, "local.test" },
		{ "!+local_domains : *", "local.test", 0, "!+local_domains" },
		{ "!+local_domains : *", "other.test", 1, "*" },
	};
	struct sockaddr_storage near = make_addr("192.0.2.10");
	char matched[MATCH_ITEM_MAX + 1];
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct test_config t;
		int rc;

		init_config(&t);
		add_list(&t, CONFIG_DOMAINLIST, "local_domains", "local.test");
		add_list(&t, CONFIG_DOMAINLIST, "relay_to_domains",
		    cases[i].list);
		rc = match_named_domainlist_item(&t.config, "relay_to_domains",
		    cases[i].domain, matched, sizeof(matched), &error);
		if (rc != cases[i].want || strcmp(matched, cases[i].matched) != 0)
			fail_msg("\"%s\" in \"%s\": got %d matched \"%s\", want %d "
			    "matched \"%s\"", cases[i].domain, cases[i].list, rc,
			    matched, cases[i].want, cases[i].matched);
	}

	{
		struct test_config t;

		init_config(&t);
		add_list(&t, CONFIG_HOSTLIST, "relay_from_hosts",
		    "<; ::1 ; 192.0.2.0/24");
		assert_int_equal(match_named_hostlist_item(&t.config,
		    "relay_from_hosts", (struct sockaddr *)&near, matched,
		    sizeof(matched), &error), 1);
		assert_string_equal(matched, "192.0.2.0/24");
		/* An undefined list matches nothing and names no item. */
		assert_int_equal(match_named_hostlist_item(&t.config, "undefined",
		    (struct sockaddr *)&near, matched, sizeof(matched), &error),
		    0);
		assert_string_equal(matched, "");
	}
}

static void
check_unnamed_hostlist(void **state)
{
	struct test_config t;
	char *error = NULL;

	(void)state;
	init_config(&t);
	/* In a colon-separated list "::" is a colon, so the second item is
	 * ":1", which is no address. */
	assert_int_equal(match_check_hostlist(&t.config, "smtp_reserve_hosts",
	    "192.0.2.0/24 : ::1", &error), -1);
	assert_non_null(strstr(error, "\":1\""));
	free(error);
	error = NULL;
	assert_int_equal(match_check_hostlist(&t.config, "smtp_reserve_hosts",
	    "<; 192.0.2.0/24 ; ::1", &error), 0);
	assert_int_equal(match_check_hostlist(&t.config, "smtp_reserve_hosts",
	    NULL, &error), 0);
	assert_null(error);
	assert_int_equal(match_check_hostlist(&t.config, "smtp_reserve_hosts",
	    "mail.example.com", &error), -1);
	assert_string_equal(error, "hostlist smtp_reserve_hosts: item "
	    "\"mail.example.com\" is not supported in a host list: use \"*\", "
	    "IP addresses or networks (address/prefix)");
	free(error);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostlist_table),
		cmocka_unit_test(hostlist_rejects_unsupported_items),
		cmocka_unit_test(domainlist_table),
		cmocka_unit_test(domainlist_rejects_unsupported_items),
		cmocka_unit_test(named_lists_and_references),
		cmocka_unit_test(self_reference_is_an_error),
		cmocka_unit_test(check_finds_bad_item_after_match),
		cmocka_unit_test(overlong_item_is_an_error),
		cmocka_unit_test(matched_item_is_reported),
		cmocka_unit_test(check_unnamed_hostlist),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

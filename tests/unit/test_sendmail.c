/*
 * test_sendmail.c - the addresses sendmail takes from its arguments and,
 * with -t, from the To:, Cc: and Bcc: fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sendmail.h"
#include "util.h"

/* Checks that list contains exactly the addresses in want, joined by
 * spaces. */
static void
assert_addresses(const struct sendmail_addresses *list, const char *want,
    const char *input)
{
	char got[1024] = "";

	for (size_t i = 0; i < list->count; i++) {
		if (i > 0)
			strcat(got, " ");
		assert_true(strlen(got) + strlen(list->items[i]) < sizeof(got));
		strcat(got, list->items[i]);
	}
	if (strcmp(got, want) != 0)
		fail_msg("from \"%s\": got \"%s\", want \"%s\"", input, got, want);
}

static void
address_lists(void **state)
{
	static const struct {
		const char *input;
		const char *want;
	} cases[] = {
		{ "a@example.org", "a@example.org" },
		{ " Bob <bob@example.org> , carol@example.org (Carol)",
		    "bob@example.org carol@example.org" },
		{ "\"Doe, Dan\" <dan@example.org>", "dan@example.org" },
		{ "team: a@x.test, b@y.test;, c@z.test",
		    "a@x.test b@y.test c@z.test" },
		{ "undisclosed-recipients:;", "" },
		{ "<@relay.test,@r2.test:d@x.test>", "d@x.test" },
		{ "\"odd local\"@x.test", "\"odd local\"@x.test" },
		{ "a@x.test,\n\tb@x.test", "a@x.test b@x.test" },
		{ ",,, ,", "" },
		{ "<unterminated@x.test", "unterminated@x.test" },
		{ "(comment (nested) only)", "" },
		{ "", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sendmail_addresses list = { 0 };

		assert_int_equal(sendmail_parse_address_list(cases[i].input,
		    strlen(cases[i].input), &list), 0);
		assert_addresses(&list, cases[i].want, cases[i].input);
		sendmail_addresses_free(&list);
	}
}

static void
header_recipients(void **state)
{
	static const struct {
		const char *headers;
		const char *want;
	} cases[] = {
		{ "To: a@x.test\nCc: b@x.test,\n c@x.test\nBcc: d@x.test\n"
		    "Subject: to: e@x.test\n", "a@x.test b@x.test c@x.test d@x.test" },
		{ "Resent-To: r@x.test\nTo: a@x.test\nresent-bcc: s@x.test\n",
		    "r@x.test s@x.test" },
		{ "TO: a@x.test\nReply-To: no@x.test\nX-To: no@x.test\n",
		    "a@x.test" },
		{ "To: last@x.test", "last@x.test" },
		{ "no colon here\nTo a@x.test\n", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sendmail_addresses list = { 0 };

		assert_int_equal(sendmail_header_recipients(cases[i].headers,
		    strlen(cases[i].headers), &list), 0);
		assert_addresses(&list, cases[i].want, cases[i].headers);
		sendmail_addresses_free(&list);
	}
}

static void
too_many_addresses(void **state)
{
	struct sendmail_addresses list = { 0 };
	size_t len = (SENDMAIL_ADDRESSES_MAX + 1) * 2;
	char *many = xmalloc(len + 1);

	(void)state;
	for (size_t i = 0; i < len; i += 2) {
		many[i] = 'a';
		many[i + 1] = ',';
	}
	many[len] = '\0';
	assert_int_equal(sendmail_parse_address_list(many, len, &list), -1);
	assert_int_equal(list.count, SENDMAIL_ADDRESSES_MAX);
	sendmail_addresses_free(&list);
	free(many);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(address_lists),
		cmocka_unit_test(header_recipients),
		cmocka_unit_test(too_many_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_queue_select.c - which messages a queue run takes, and how a
 * selection travels to the daemon (control_quote() included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control.h"
#include "queue_select.h"
#include "util.h"

#define ID_A	"1tt1Jd-00000000CXd-1jGj"
#define ID_B	"1tt1Je-00000000CXd-0000"
#define ID_C	"1tt1Jf-00000000CXd-0000"

static void
make_message(struct spool_list_message *m, const char *id, const char *sender)
{
	memset(m, 0, sizeof(*m));
	strlcpy_s(m->id, id, sizeof(m->id));
	m->status = SPOOL_LIST_OK;
	m->header.sender = xstrdup(sender);
	spool_header_add_recipient(&m->header, "Bob@Example.NET");
	spool_header_add_recipient(&m->header, "carol@example.org");
}

static void
quote_round_trip(void **state)
{
	static const char *const cases[] = {
		"plain", "", "with space", "100%", "tab\there", "\x7f\xff",
		"a%20b",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *quoted = control_quote(cases[i]);

		if (strpbrk(quoted, " \t\n") != NULL || quoted[0] == '\0')
			fail_msg("\"%s\" quoted as \"%s\"", cases[i], quoted);
		assert_int_equal(control_unquote(quoted), 0);
		if (strcmp(quoted, cases[i]) != 0)
			fail_msg("got \"%s\", want \"%s\"", quoted, cases[i]);
		free(quoted);
	}
}

static void
unquote_rejects_bad_escapes(void **state)
{
	static const char *const cases[] = { "%", "%4", "%zz", "a%00b" };

	(void)state;
	/* "%" alone is the empty string, so start after it. */
	for (size_t i = 1; i < ARRAY_SIZE(cases); i++) {
		char *copy = xstrdup(cases[i]);

		if (control_unquote(copy) != -1)
			fail_msg("\"%s\" was accepted", cases[i]);
		free(copy);
	}
}

static void
encode_decode_round_trip(void **state)
{
	struct queue_select sel = {
		.force = QUEUE_SELECT_FORCE_FROZEN,
		.first_only = true,
		.two_stage = true,
		.recipient_match = xstrdup("a b%c"),
		.recipient_regex = true,
		.sender_match = xstrdup(""),
		.start_id = xstrdup(ID_A),
	};
	struct queue_select back;
	char *text = queue_select_encode(&sel), *error = NULL;
	char *argv[CONTROL_ARGS_MAX];
	int argc = 0;

	(void)state;
	for (char *save = NULL, *w = strtok_r(text, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	if (queue_select_decode(argc, argv, &back, &error) < 0)
		fail_msg("decode: %s", error);
	assert_int_equal(back.force, QUEUE_SELECT_FORCE_FROZEN);
	assert_true(back.first_only);
	assert_true(back.two_stage);
	assert_false(back.local_only);
	assert_string_equal(back.recipient_match, "a b%c");
	assert_true(back.recipient_regex);
	assert_string_equal(back.sender_match, "");
	assert_false(back.sender_regex);
	assert_string_equal(back.start_id, ID_A);
	assert_null(back.stop_id);
	assert_true(back.prepared);
	queue_select_free(&back);
	queue_select_free(&sel);
	free(text);
}

static void
decode_rejects_unknown_words(void **state)
{
	char word[] = "colour=blue";
	char bad_force[] = "force=3";
	char bad_regex[] = "recipient_regex=(";
	char *argv[1];
	struct queue_select sel;
	char *error = NULL;

	(void)state;
	argv[0] = word;
	assert_int_equal(queue_select_decode(1, argv, &sel, &error), -1);
	free(error);
	argv[0] = bad_force;
	assert_int_equal(queue_select_decode(1, argv, &sel, &error), -1);
	free(error);
	argv[0] = bad_regex;
	error = NULL;
	assert_int_equal(queue_select_decode(1, argv, &sel, &error), -1);
	assert_non_null(strstr(error, "-Rr"));
	free(error);
}

static void
match_recipient_and_sender(void **state)
{
	struct queue_select sel = { .recipient_match = xstrdup("example.net") };
	struct spool_list_message m;
	char *error = NULL;

	(void)state;
	make_message(&m, ID_A, "alice@example.org");
	assert_int_equal(queue_select_prepare(&sel, &error), 0);
	/* Without regard to case. */
	assert_true(queue_select_match(&sel, &m));
	/* Only undelivered recipients count. */
	spool_header_mark_delivered(&m.header, "Bob@Example.NET");
	assert_false(queue_select_match(&sel, &m));
	queue_select_free(&sel);

	sel.sender_match = xstrdup("^ALICE@");
	sel.sender_regex = true;
	assert_int_equal(queue_select_prepare(&sel, &error), 0);
	assert_true(queue_select_match(&sel, &m));
	free(m.header.sender);
	m.header.sender = xstrdup("");
	assert_false(queue_select_match(&sel, &m));
	queue_select_free(&sel);
	spool_list_message_free(&m);
}

static void
match_range_and_first_delivery(void **state)
{
	struct queue_select sel = {
		.start_id = xstrdup(ID_B),
		.stop_id = xstrdup(ID_B),
		.first_only = true,
	};
	struct spool_list_message m;
	char *error = NULL;

	(void)state;
	assert_int_equal(queue_select_prepare(&sel, &error), 0);
	assert_false(queue_select_in_range(&sel, ID_A));
	assert_true(queue_select_in_range(&sel, ID_B));
	assert_false(queue_select_in_range(&sel, ID_C));
	make_message(&m, ID_B, "alice@example.org");
	assert_false(queue_select_match(&sel, &m));
	m.header.deliver_firsttime = true;
	assert_true(queue_select_match(&sel, &m));
	/* An unreadable message is not known to be a first delivery. */
	m.status = SPOOL_LIST_READ_ERROR;
	assert_false(queue_select_match(&sel, &m));
	sel.first_only = false;
	assert_true(queue_select_match(&sel, &m));
	spool_list_message_free(&m);
	queue_select_free(&sel);
}

static void
flags_as_logged(void **state)
{
	static const struct {
		struct queue_select sel;
		const char *want;
	} cases[] = {
		{ { .force = QUEUE_SELECT_DUE }, "" },
		{ { .force = QUEUE_SELECT_FORCE }, "f" },
		{ { .force = QUEUE_SELECT_FORCE_FROZEN, .first_only = true,
		    .two_stage = true }, "qiff" },
		{ { .local_only = true }, "l" },
	};
	char buf[16];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		queue_select_flags(&cases[i].sel, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf,
			    cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quote_round_trip),
		cmocka_unit_test(unquote_rejects_bad_escapes),
		cmocka_unit_test(encode_decode_round_trip),
		cmocka_unit_test(decode_rejects_unknown_words),
		cmocka_unit_test(match_recipient_and_sender),
		cmocka_unit_test(match_range_and_first_delivery),
		cmocka_unit_test(flags_as_logged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

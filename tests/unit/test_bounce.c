/*
 * test_bounce.c - bounce composition: the header section, the three MIME
 * parts of the report, NOTIFY and RET handling, the size limit on the
 * returned body, the wrapping of X-Failed-Recipients:, delay warnings
 * (their schedule, who gets none, their shape) and "relayed" notices. Each result
 * is split at its MIME boundary and the parts are checked one by one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounce.h"
#include "config.h"
#include "spool_header.h"
#include "util.h"

#define SMTP_REASON "SMTP error from remote mail server after " \
	"RCPT TO:<ivan@example.com>: 550 5.1.1 no such user"
#define BODY "first line\nsecond line\n"

struct fixture {
	struct config config;
	struct spool_header original;
	struct bounce_list list;
	struct bounce_content content;
	char *parts[8];			/* split from content.body */
	size_t part_count;
};

static void
add_field(struct spool_header *h, char flag, const char *text)
{
	spool_header_add_field(h, flag, text, strlen(text));
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->config.primary_hostname = "mx1.example.net";
	f->config.qualify_domain = "example.net";
	f->config.dsn_from = "";
	f->config.bounce_return_message = true;
	f->config.bounce_return_size_limit = 100 * 1024;

	strcpy(f->original.id, "1tt1Ju-00000000CZ3-4Bqv");
	f->original.sender = xstrdup("alice@example.org");
	add_field(&f->original, SPOOL_FIELD_RECEIVED,
	    "Received: from [192.0.2.7]\n\tby mx1.example.net\n");
	add_field(&f->original, SPOOL_FIELD_MESSAGE_ID,
	    "Message-ID: <4f1c2a9e@example.org>\n");
	add_field(&f->original, SPOOL_FIELD_OTHER, "Subject: budget\n");
	add_field(&f->original, SPOOL_FIELD_DELETED, "Bcc: hidden@example.org\n");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < f->part_count; i++)
		free(f->parts[i]);
	bounce_content_free(&f->content);
	bounce_list_clear(&f->list);
	spool_header_free(&f->original);
	free(f);
	return 0;
}

/* Reads the boundary from the Content-Type: field. */
static char *
find_boundary(const char *headers)
{
	const char *p = strstr(headers, "boundary=");
	size_t n;

	assert_non_null(p);
	p += strlen("boundary=");
	n = strcspn(p, "\n;");
	return xstrndup(p, n);
}

/* Splits the body into its MIME parts and checks the closing line. */
static void
split_parts(struct fixture *f)
{
	char *boundary = find_boundary(f->content.headers);
	char *open = xasprintf("--%s\n", boundary);
	char *close = xasprintf("\n--%s--\n", boundary);
	const char *body = f->content.body, *p, *end;
	size_t close_len = strlen(close);

	assert_true(f->content.body_len >= close_len);
	end = body + f->content.body_len - close_len;
	assert_string_equal(end, close);
	assert_memory_equal(body, open, strlen(open));
	p = body + strlen(open);
	while (p < end) {
		char *delimiter = xasprintf("\n--%s\n", boundary);
		const char *next = strstr(p, delimiter);

		if (next == NULL || next > end)
			next = end;
		assert_true(f->part_count < ARRAY_SIZE(f->parts));
		f->parts[f->part_count++] = xstrndup(p, (size_t)(next - p));
		p = next == end ? end : next + strlen(delimiter);
		free(delimiter);
	}
	free(open);
	free(close);
	free(boundary);
}

static int
compose(struct fixture *f, const char *body, uint64_t body_size)
{
	int rc = bounce_compose(&f->config, &f->original, &f->list, body,
	    body != NULL ? strlen(body) : 0, body_size, 1741944433, 1804289383,
	    &f->content);

	if (rc == 1)
		split_parts(f);
	return rc;
}

static void
add_smtp_failure(struct fixture *f, int dsn_flags)
{
	struct spool_recipient rcpt = { .address = "ivan@example.com",
		.dsn_flags = dsn_flags };

	bounce_list_add(&f->list, "ivan@example.com", &rcpt,
	    "mx2.example.com", "198.51.100.20",
	    "550 5.1.1 no such user", SMTP_REASON);
}

static void
test_header_section(void **state)
{
	struct fixture *f = *state;

	add_smtp_failure(f, 0);
	bounce_list_add(&f->list, "nobody@nowhere.test", NULL, NULL, NULL,
	    NULL, "Unrouteable address");
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_string_equal(f->content.headers,
	    "X-Failed-Recipients: ivan@example.com, nobody@nowhere.test\n"
	    "Auto-Submitted: auto-replied\n"
	    "From: Mail Delivery System <Mailer-Daemon@example.net>\n"
	    "To: alice@example.org\n"
	    "References: <4f1c2a9e@example.org>\n"
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=1741944433-eximdsn-1804289383\n"
	    "MIME-Version: 1.0\n"
	    "Subject: Mail delivery failed: returning message to sender\n");
	assert_string_equal(f->content.recipient, "alice@example.org");
}

static void
test_text_part(void **state)
{
	struct fixture *f = *state;

	add_smtp_failure(f, 0);
	bounce_list_add(&f->list, "nobody@nowhere.test", NULL, NULL, NULL,
	    NULL, "Unrouteable address");
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_int_equal(f->part_count, 3);
	assert_string_equal(f->parts[0],
	    "Content-type: text/plain; charset=us-ascii\n\n"
	    "This message was created automatically by mail delivery "
	    "software.\n\n"
	    "A message that you sent could not be delivered to one or more "
	    "of its\nrecipients. This is a permanent error. The following "
	    "address(es) failed:\n\n"
	    "  ivan@example.com\n"
	    "    host mx2.example.com [198.51.100.20]\n"
	    "    SMTP error from remote mail server after "
	    "RCPT TO:<ivan@example.com>:\n"
	    "    550 5.1.1 no such user\n\n"
	    "  nobody@nowhere.test\n"
	    "    Unrouteable address\n");
}

static void
test_delivery_status_part(void **state)
{
	struct fixture *f = *state;

	add_smtp_failure(f, 0);
	bounce_list_add(&f->list, "nobody@nowhere.test", NULL, NULL, NULL,
	    NULL, "Unrouteable address");
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_string_equal(f->parts[1],
	    "Content-type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; mx1.example.net\n\n"
	    "Action: failed\n"
	    "Final-Recipient: rfc822;ivan@example.com\n"
	    "Status: 5.0.0\n"
	    "Remote-MTA: dns; mx2.example.com\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\n\n"
	    "Action: failed\n"
	    "Final-Recipient: rfc822;nobody@nowhere.test\n"
	    "Status: 5.0.0\n");
}

static void
test_returned_message(void **state)
{
	struct fixture *f = *state;

	add_smtp_failure(f, 0);
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_string_equal(f->parts[2],
	    "Content-type: message/rfc822\n\n"
	    "Return-path: <alice@example.org>\n"
	    "Received: from [192.0.2.7]\n\tby mx1.example.net\n"
	    "Message-ID: <4f1c2a9e@example.org>\n"
	    "Subject: budget\n\n"
	    BODY);
}

static void
test_null_sender_gets_none(void **state)
{
	struct fixture *f = *state;

	free(f->original.sender);
	f->original.sender = xstrdup("");
	add_smtp_failure(f, 0);
	assert_int_equal(compose(f, BODY, strlen(BODY)), 0);
	assert_null(f->content.headers);
}

static void
test_notify_never_excluded(void **state)
{
	struct fixture *f = *state;

	add_smtp_failure(f, BOUNCE_NOTIFY_NEVER);
	assert_int_equal(compose(f, BODY, strlen(BODY)), 0);

	/* SUCCESS alone excludes failures too; FAILURE,DELAY admits. */
	assert_false(bounce_notify_failure(BOUNCE_NOTIFY_SUCCESS));
	assert_true(bounce_notify_failure(BOUNCE_NOTIFY_FAILURE |
	    BOUNCE_NOTIFY_DELAY));
	assert_true(bounce_notify_failure(0));

	bounce_list_add(&f->list, "other@example.com", NULL, NULL, NULL, NULL,
	    "Unrouteable address");
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_non_null(strstr(f->content.headers,
	    "X-Failed-Recipients: other@example.com\n"));
	assert_null(strstr(f->content.body, "ivan@example.com"));
}

static void
test_ret_hdrs_returns_header_only(void **state)
{
	struct fixture *f = *state;

	f->original.dsn_ret = 2;
	add_smtp_failure(f, 0);
	assert_int_equal(bounce_body_limit(&f->config, &f->original), 0);
	assert_int_equal(compose(f, NULL, strlen(BODY)), 1);
	assert_int_equal(f->part_count, 3);
	assert_string_equal(f->parts[2],
	    "Content-type: text/rfc822-headers\n\n"
	    "Return-path: <alice@example.org>\n"
	    "Received: from [192.0.2.7]\n\tby mx1.example.net\n"
	    "Message-ID: <4f1c2a9e@example.org>\n"
	    "Subject: budget\n");
}

static void
test_body_cut_is_reported(void **state)
{
	struct fixture *f = *state;

	f->config.bounce_return_size_limit = 11;
	assert_int_equal(bounce_body_limit(&f->config, &f->original), 11);
	add_smtp_failure(f, 0);
	/* The caller read the first 11 bytes of a 23-byte body. */
	assert_int_equal(compose(f, "first line\n", strlen(BODY)), 1);
	assert_non_null(strstr(f->parts[0], "cut to its first 11 of 23 "
	    "bytes"));
	assert_non_null(strstr(f->parts[2], "\n\nfirst line\n"));
	assert_null(strstr(f->parts[2], "second"));
}

static void
test_no_returned_message(void **state)
{
	struct fixture *f = *state;

	f->config.bounce_return_message = false;
	add_smtp_failure(f, 0);
	assert_int_equal(bounce_body_limit(&f->config, &f->original), 0);
	assert_int_equal(compose(f, NULL, 0), 1);
	assert_int_equal(f->part_count, 2);
}

static void
test_dsn_from_and_envid(void **state)
{
	struct fixture *f = *state;

	f->config.dsn_from = "Postmaster <postmaster@example.net>";
	f->original.dsn_envid = xstrdup("QQ314159");
	add_smtp_failure(f, 0);
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_non_null(strstr(f->content.headers,
	    "\nFrom: Postmaster <postmaster@example.net>\n"));
	assert_non_null(strstr(f->parts[1],
	    "Reporting-MTA: dns; mx1.example.net\n"
	    "Original-Envelope-Id: QQ314159\n"));
}

static void
test_orcpt_and_multiline_reply(void **state)
{
	struct fixture *f = *state;
	struct spool_recipient rcpt = { .address = "ivan@example.com",
		.orcpt = "rfc822;ivan@old.example.com" };

	bounce_list_add(&f->list, "ivan@example.com", &rcpt, "mx2.example.com",
	    "198.51.100.20", "550-5.1.1 first\n550 5.1.1 second",
	    "SMTP error from remote mail server after RCPT TO:"
	    "<ivan@example.com>: 550-5.1.1 first\n550 5.1.1 second");
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	assert_non_null(strstr(f->parts[1],
	    "Original-Recipient: rfc822;ivan@old.example.com\n"));
	assert_non_null(strstr(f->parts[1],
	    "Diagnostic-Code: smtp; 550-5.1.1 first\n 550 5.1.1 second\n"));
	assert_non_null(strstr(f->parts[0],
	    "RCPT TO:<ivan@example.com>:\n"
	    "    550-5.1.1 first\n"
	    "    550 5.1.1 second\n"));
}

static void
test_failed_recipients_wrap(void **state)
{
	struct fixture *f = *state;
	const char *line2;

	for (int i = 0; i < BOUNCE_FAILED_PER_LINE + 2; i++) {
		char address[64];

		snprintf(address, sizeof(address), "u%d@example.com", i);
		bounce_list_add(&f->list, address, NULL, NULL, NULL, NULL,
		    "Unrouteable address");
	}
	assert_int_equal(compose(f, BODY, strlen(BODY)), 1);
	line2 = strstr(f->content.headers, "u49@example.com,\n  "
	    "u50@example.com, u51@example.com\n");
	assert_non_null(line2);
	assert_null(strstr(f->content.headers, "u48@example.com,\n"));
}

static void
test_long_reason_is_cut(void **state)
{
	struct fixture *f = *state;
	char *long_text = xmalloc(BOUNCE_TEXT_MAX * 2 + 1);

	memset(long_text, 'x', BOUNCE_TEXT_MAX * 2);
	long_text[BOUNCE_TEXT_MAX * 2] = '\0';
	bounce_list_add(&f->list, "a@example.com", NULL, NULL, NULL, long_text,
	    long_text);
	assert_int_equal(strlen(f->list.items[0].message), BOUNCE_TEXT_MAX);
	assert_int_equal(strlen(f->list.items[0].reply), BOUNCE_TEXT_MAX);
	free(long_text);
}

static void
test_warning_schedule(void **state)
{
	struct config_timelist list = { .values = { 4 * 3600, 8 * 3600,
		24 * 3600 }, .count = 3 };
	struct config_timelist single = { .values = { 24 * 3600 },
		.count = 1 };
	struct config_timelist never = { .values = { 0 }, .count = 1 };
	/* (list, warnings sent, hours until the next one; -1 for never) */
	const struct {
		const struct config_timelist *list;
		int sent;
		int64_t hours;
	} cases[] = {
		{ &list, 0, 4 }, { &list, 1, 8 }, { &list, 2, 24 },
		{ &list, 3, 40 }, { &list, 4, 56 },
		{ &single, 0, 24 }, { &single, 1, 48 }, { &single, 2, 72 },
		{ &never, 0, -1 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t due = bounce_warning_due(cases[i].list, cases[i].sent);
		int64_t want = cases[i].hours < 0 ? -1 : cases[i].hours * 3600;

		if (due != want)
			fail_msg("case %zu: got %lld, want %lld", i,
			    (long long)due, (long long)want);
	}
}

static void
test_warning_not_for_lists(void **state)
{
	struct fixture *f = *state;
	static const char *const fields[] = { "List-Id: <x.example.org>\n",
	    "Precedence: bulk\n", "Precedence: junk\n",
	    "Auto-Submitted: auto-generated\n" };

	assert_true(bounce_warning_wanted(&f->original));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		struct spool_header h = { 0 };

		h.sender = xstrdup("alice@example.org");
		add_field(&h, SPOOL_FIELD_OTHER, fields[i]);
		if (bounce_warning_wanted(&h))
			fail_msg("wanted with %s", fields[i]);
		spool_header_free(&h);
	}
	free(f->original.sender);
	f->original.sender = xstrdup("");
	assert_false(bounce_warning_wanted(&f->original));
}

static void
test_warning_shape(void **state)
{
	struct fixture *f = *state;
	struct spool_recipient never = { .address = "x@example.com",
		.dsn_flags = BOUNCE_NOTIFY_FAILURE };

	bounce_list_add(&f->list, "slow@example.com", NULL, "mx.example.com",
	    "192.0.2.9", NULL, "Connection refused");
	bounce_list_add(&f->list, "x@example.com", &never, NULL, NULL, NULL,
	    "Connection refused");
	assert_int_equal(bounce_compose_warning(&f->config, &f->original,
	    &f->list, 3 * 3600, 1741944433, 7, &f->content), 1);
	split_parts(f);
	assert_non_null(strstr(f->content.headers, "\nSubject: Warning: "
	    "message 1tt1Ju-00000000CZ3-4Bqv delayed 3 hours\n"));
	assert_null(strstr(f->content.headers, "X-Failed-Recipients"));
	assert_int_equal(f->part_count, 3);
	assert_non_null(strstr(f->parts[0], "after more than 3 hours on the "
	    "queue on mx1.example.net.\n"));
	assert_non_null(strstr(f->parts[0], "  slow@example.com\n    Delay "
	    "reason: Connection refused\n"));
	/* NOTIFY=FAILURE leaves x@ out. */
	assert_null(strstr(f->content.body, "x@example.com"));
	assert_non_null(strstr(f->parts[1], "\nAction: delayed\n"
	    "Final-Recipient: rfc822;slow@example.com\nStatus: 4.0.0\n"
	    "Remote-MTA: dns; mx.example.com\n"));
	assert_non_null(strstr(f->parts[2], "Content-type: text/rfc822-headers"
	    "\n\nReturn-path: <alice@example.org>\n"));
}

static void
test_relayed_notice(void **state)
{
	struct fixture *f = *state;
	struct spool_recipient success = { .address = "ok@example.com",
		.dsn_flags = BOUNCE_NOTIFY_SUCCESS | BOUNCE_NOTIFY_FAILURE };
	struct spool_recipient failure_only = { .address = "f@example.com",
		.dsn_flags = BOUNCE_NOTIFY_FAILURE };

	bounce_list_add(&f->list, "f@example.com", &failure_only, NULL, NULL,
	    NULL, "relayed");
	assert_int_equal(bounce_compose_relayed(&f->config, &f->original,
	    &f->list, 1741944433, 7, &f->content), 0);

	bounce_list_add(&f->list, "ok@example.com", &success, "mx.example.com",
	    "192.0.2.9", "250 OK", "relayed");
	assert_int_equal(bounce_compose_relayed(&f->config, &f->original,
	    &f->list, 1741944433, 7, &f->content), 1);
	split_parts(f);
	assert_non_null(strstr(f->content.headers,
	    "\nSubject: Delivery Status Notification\n"));
	assert_int_equal(f->part_count, 3);
	assert_non_null(strstr(f->parts[1], "\nAction: relayed\n"
	    "Final-Recipient: rfc822;ok@example.com\nStatus: 2.0.0\n"
	    "Remote-MTA: dns; mx.example.com\n"));
	assert_null(strstr(f->content.body, "f@example.com"));
	assert_true(bounce_notify_success(BOUNCE_NOTIFY_SUCCESS));
	assert_false(bounce_notify_success(0));
	assert_false(bounce_notify_success(BOUNCE_NOTIFY_NEVER));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_header_section, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_text_part, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delivery_status_part,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_returned_message, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_null_sender_gets_none,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_never_excluded,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ret_hdrs_returns_header_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_cut_is_reported,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_returned_message,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsn_from_and_envid,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_orcpt_and_multiline_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_recipients_wrap,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_reason_is_cut, setup,
		    teardown),
		cmocka_unit_test(test_warning_schedule),
		cmocka_unit_test_setup_teardown(test_warning_not_for_lists,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_warning_shape, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relayed_notice, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

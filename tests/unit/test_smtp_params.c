/*
 * test_smtp_params.c - the ESMTP parameters of MAIL and RCPT (DSN,
 * SMTPUTF8, SIZE, BODY), UTF-8 in addresses, enhanced status codes on
 * replies, and how DSN and SMTPUTF8 data reach the -H file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"
#include "config.h"
#include "receive.h"
#include "smtp_server_esc.h"
#include "smtp_server_params.h"
#include "spool_header.h"
#include "util.h"

static const struct smtp_params_offer offer_all = {
	.esmtp = true, .auth = true, .dsn = true, .smtputf8 = true,
};

/* xtext and ORCPT */

static void
xtext_cases(void **state)
{
	static const struct {
		const char *text;
		bool valid;
	} cases[] = {
		{ "abc", true },
		{ "a+2Bb", true },
		{ "+3D", true },
		{ "QQ+2B+3D", true },
		{ "", false },
		{ "a=b", false },
		{ "a+2b", false },	/* hex digits must be upper case */
		{ "a+2", false },
		{ "a+", false },
		{ "a+GG", false },
		{ "a b", false },
		{ "a\x7f", false },
		{ "a\xc3\xa9", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (smtp_params_xtext_valid(cases[i].text) != cases[i].valid)
			fail_msg("xtext \"%s\": got %d, want %d", cases[i].text,
			    !cases[i].valid, cases[i].valid);
}

static void
orcpt_cases(void **state)
{
	static const struct {
		const char *text;
		bool valid;
	} cases[] = {
		{ "rfc822;bob@example.test", true },
		{ "RFC822;b+2Bob@example.test", true },
		{ "utf-8;b\\x{E9}b@example.test", true },
		{ "rfc822;", false },
		{ ";bob@example.test", false },
		{ "bob@example.test", false },
		{ "rfc 822;bob@example.test", false },
		{ "rfc822;bob=x@example.test", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (smtp_params_orcpt_valid(cases[i].text) != cases[i].valid)
			fail_msg("ORCPT \"%s\": got %d, want %d", cases[i].text,
			    !cases[i].valid, cases[i].valid);
}

/* MAIL parameters */

static void
mail_params_accepted(void **state)
{
	struct smtp_mail_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];

	(void)state;
	assert_int_equal(smtp_params_parse_mail("SIZE=1000 BODY=8BITMIME "
	    "SMTPUTF8 RET=HDRS ENVID=QQ+2B314 AUTH=<>", &offer_all, &p,
	    reply), 0);
	assert_int_equal(p.size, 1000);
	assert_true(p.smtputf8);
	assert_int_equal(p.dsn_ret, SMTP_DSN_RET_HDRS);
	assert_string_equal(p.envid, "QQ+2B314");

	assert_int_equal(smtp_params_parse_mail("ret=full", &offer_all, &p,
	    reply), 0);
	assert_int_equal(p.dsn_ret, SMTP_DSN_RET_FULL);
	assert_false(p.smtputf8);
	assert_string_equal(p.envid, "");

	assert_int_equal(smtp_params_parse_mail("", &offer_all, &p, reply), 0);
	assert_int_equal(p.dsn_ret, SMTP_DSN_RET_NONE);
}

static void
mail_params_rejected(void **state)
{
	static const struct {
		const char *params;
		const char *reply;
	} cases[] = {
		{ "RET=FULL RET=HDRS", "501 RET can be specified once only" },
		{ "RET=ALL", "501 Value for RET is invalid" },
		{ "ENVID=a ENVID=b", "501 ENVID can be specified once only" },
		{ "ENVID=a+2x", "501 Value for ENVID is not valid xtext" },
		{ "SMTPUTF8=yes", "501 SMTPUTF8 takes no value" },
		{ "SIZE=ten", "501 SIZE requires a decimal number of octets" },
		{ "BODY=BINARYMIME", "501 BODY must be 7BIT or 8BITMIME" },
		{ "X-NEW=1", "555 X-NEW: parameter not recognized" },
		{ "SIZE==1", "501 malformed parameter after the address" },
	};
	struct smtp_mail_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];
	char envid[SMTP_PARAMS_ENVID_MAX + 16];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (smtp_params_parse_mail(cases[i].params, &offer_all, &p,
		    reply) != -1)
			fail_msg("\"%s\" accepted", cases[i].params);
		if (strcmp(reply, cases[i].reply) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"",
			    cases[i].params, reply, cases[i].reply);
	}

	/* RFC 3461 section 4.4: ENVID is at most 100 characters. */
	snprintf(envid, sizeof(envid), "ENVID=%0*d", SMTP_PARAMS_ENVID_MAX, 0);
	assert_int_equal(smtp_params_parse_mail(envid, &offer_all, &p, reply),
	    0);
	snprintf(envid, sizeof(envid), "ENVID=%0*d", SMTP_PARAMS_ENVID_MAX + 1,
	    0);
	assert_int_equal(smtp_params_parse_mail(envid, &offer_all, &p, reply),
	    -1);
	assert_string_equal(reply, "501 ENVID is longer than 100 characters");
}

/* A parameter of an extension that was not offered is unknown. */
static void
mail_params_need_offer(void **state)
{
	static const char *const params[] = {
		"RET=FULL", "ENVID=x", "SMTPUTF8", "SIZE=1", "BODY=7BIT",
		"AUTH=<>",
	};
	struct smtp_params_offer none = { 0 };
	struct smtp_mail_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(params); i++) {
		if (smtp_params_parse_mail(params[i], &none, &p, reply) != -1)
			fail_msg("\"%s\" accepted without its offer", params[i]);
		assert_int_equal(strncmp(reply, "555 ", 4), 0);
	}
}

/* RCPT parameters */

static void
rcpt_params_accepted(void **state)
{
	struct smtp_rcpt_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];

	(void)state;
	assert_int_equal(smtp_params_parse_rcpt("NOTIFY=SUCCESS,failure,DELAY "
	    "ORCPT=rfc822;b+2B1@example.test", &offer_all, &p, reply), 0);
	assert_int_equal(p.dsn_notify, SMTP_DSN_NOTIFY_SUCCESS |
	    SMTP_DSN_NOTIFY_FAILURE | SMTP_DSN_NOTIFY_DELAY);
	assert_string_equal(p.orcpt, "rfc822;b+2B1@example.test");

	assert_int_equal(smtp_params_parse_rcpt("NOTIFY=NEVER", &offer_all, &p,
	    reply), 0);
	assert_int_equal(p.dsn_notify, SMTP_DSN_NOTIFY_NEVER);
	assert_string_equal(p.orcpt, "");

	/* Exim's rf_notify_* values, which the -H file stores. */
	assert_int_equal(SMTP_DSN_NOTIFY_NEVER, 2);
	assert_int_equal(SMTP_DSN_NOTIFY_SUCCESS, 4);
	assert_int_equal(SMTP_DSN_NOTIFY_FAILURE, 8);
	assert_int_equal(SMTP_DSN_NOTIFY_DELAY, 16);
}

static void
rcpt_params_rejected(void **state)
{
	static const struct {
		const char *params;
		const char *reply;
	} cases[] = {
		{ "NOTIFY=NEVER,SUCCESS",
		    "501 Invalid value for NOTIFY parameter" },
		{ "NOTIFY=SUCCESS,,DELAY",
		    "501 Invalid value for NOTIFY parameter" },
		{ "NOTIFY=SUCCESS,", "501 Invalid value for NOTIFY parameter" },
		{ "NOTIFY=ALWAYS", "501 Invalid value for NOTIFY parameter" },
		{ "NOTIFY=DELAY NOTIFY=DELAY",
		    "501 NOTIFY can be specified once only" },
		{ "ORCPT=rfc822;a@x ORCPT=rfc822;b@x",
		    "501 ORCPT can be specified once only" },
		{ "ORCPT=a@x", "501 Value for ORCPT is not addr-type;xtext" },
		{ "SIZE=1", "555 SIZE: parameter not recognized" },
	};
	struct smtp_rcpt_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];
	char orcpt[ADDRESS_PARAM_VALUE_MAX + 32];
	const char *q;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (smtp_params_parse_rcpt(cases[i].params, &offer_all, &p,
		    reply) != -1)
			fail_msg("\"%s\" accepted", cases[i].params);
		if (strcmp(reply, cases[i].reply) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"",
			    cases[i].params, reply, cases[i].reply);
	}

	/* RFC 3461 section 4.2: ORCPT is at most 500 characters. */
	snprintf(orcpt, sizeof(orcpt), "ORCPT=rfc822;%0*d",
	    SMTP_PARAMS_ORCPT_MAX - 7, 0);
	assert_int_equal(smtp_params_parse_rcpt(orcpt, &offer_all, &p, reply),
	    0);
	snprintf(orcpt, sizeof(orcpt), "ORCPT=rfc822;%0*d",
	    SMTP_PARAMS_ORCPT_MAX - 6, 0);
	assert_int_equal(smtp_params_parse_rcpt(orcpt, &offer_all, &p, reply),
	    -1);
	assert_string_equal(reply, "501 malformed parameter after the address");

	q = "NOTIFY=SUCCESS";
	assert_int_equal(smtp_params_parse_rcpt(q, &(struct smtp_params_offer){
	    .esmtp = true }, &p, reply), -1);
	assert_string_equal(reply, "555 NOTIFY: parameter not recognized");
}

/* UTF-8 in addresses */

static void
utf8_char_lengths(void **state)
{
	static const struct {
		const char *text;
		size_t len;
	} cases[] = {
		{ "\xc3\xa9", 2 },		/* U+00E9 */
		{ "\xe2\x82\xac", 3 },		/* U+20AC */
		{ "\xf0\x9f\x98\x80", 4 },	/* U+1F600 */
		{ "\xc0\xaf", 0 },		/* overlong '/' */
		{ "\xc1\xbf", 0 },		/* overlong */
		{ "\xe0\x80\xaf", 0 },		/* overlong */
		{ "\xed\xa0\x80", 0 },		/* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", 0 },	/* over U+10FFFF */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\xc3", 0 },			/* cut short by the NUL */
		{ "\xe2\x82", 0 },
		{ "\xa9", 0 },			/* a continuation byte */
		{ "\xc3\x28", 0 },
		{ "a", 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (address_utf8_char_len(cases[i].text) != cases[i].len)
			fail_msg("case %zu: got %zu, want %zu", i,
			    address_utf8_char_len(cases[i].text), cases[i].len);
	assert_true(address_utf8_valid("ascii \xc3\xa9t\xc3\xa9"));
	assert_false(address_utf8_valid("caf\xc3"));
}

static void
utf8_addresses(void **state)
{
	static const struct {
		const char *arg;
		bool valid;
		const char *address;
	} cases[] = {
		{ "<j\xc3\xb6rg@example.test>", true, "j\xc3\xb6rg@example.test" },
		{ "<user@b\xc3\xbc\x63her.example>", true,
		    "user@b\xc3\xbc\x63her.example" },
		{ "<\"j\xc3\xb6 rg\"@example.test>", true,
		    "\"j\xc3\xb6 rg\"@example.test" },
		{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>",
		    true, NULL },
		{ "<j\xc3rg@example.test>", false, NULL },
		{ "<j\xc0\xafrg@example.test>", false, NULL },
		{ "<user@b\xed\xa0\x80.example>", false, NULL },
		{ "<user@.\xc3\xa9>", false, NULL },
	};
	struct address_path path;
	const char *error;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = address_parse_path_flags(cases[i].arg,
		    ADDRESS_RECIPIENT, ADDRESS_ALLOW_UTF8, &path, &error);

		if ((rc == 0) != cases[i].valid)
			fail_msg("case %zu: got %d (%s)", i, rc,
			    rc < 0 ? error : "valid");
		if (rc == 0) {
			assert_true(path.utf8);
			if (cases[i].address != NULL)
				assert_string_equal(path.address,
				    cases[i].address);
		}
		/* Without the flag every one of them is rejected. */
		assert_int_equal(address_parse_path_flags(cases[i].arg,
		    ADDRESS_RECIPIENT, 0, &path, &error), -1);
	}

	assert_int_equal(address_parse_path_flags("<a@example.test>",
	    ADDRESS_SENDER, ADDRESS_ALLOW_UTF8, &path, &error), 0);
	assert_false(path.utf8);
	assert_int_equal(address_parse_path_flags("<j\xc3rg@example.test>",
	    ADDRESS_SENDER, ADDRESS_ALLOW_UTF8, &path, &error), -1);
	assert_string_equal(error, "invalid UTF-8 in address");
	assert_int_equal(address_parse_path("<j\xc3\xb6rg@example.test>",
	    ADDRESS_SENDER, false, &path, &error), -1);
	assert_string_equal(error,
	    "8-bit characters are not allowed without SMTPUTF8");
}

/* Lengths stay counted in octets: a local part of 32 two-byte
 * characters is 64 octets, one more is too long. */
static void
utf8_lengths_in_octets(void **state)
{
	char arg[ADDRESS_SIZE * 2];
	struct address_path path;
	const char *error;
	size_t n = 0;

	(void)state;
	arg[n++] = '<';
	for (int i = 0; i < 32; i++) {
		arg[n++] = '\xc3';
		arg[n++] = '\xa9';
	}
	snprintf(arg + n, sizeof(arg) - n, "@example.test>");
	assert_int_equal(address_parse_path_flags(arg, ADDRESS_SENDER,
	    ADDRESS_ALLOW_UTF8, &path, &error), 0);
	memmove(arg + 3, arg + 1, strlen(arg + 1) + 1);
	arg[1] = '\xc3';
	arg[2] = '\xa9';
	assert_int_equal(address_parse_path_flags(arg, ADDRESS_SENDER,
	    ADDRESS_ALLOW_UTF8, &path, &error), -1);
	assert_string_equal(error, "local part longer than 64 characters");
}

/* Enhanced status codes */

static void
esc_codes(void **state)
{
	static const struct {
		const char *text;
		const char *verb;
		const char *code;
	} cases[] = {
		{ "250 OK", "MAIL", "2.1.0" },
		{ "250 Accepted", "RCPT", "2.1.5" },
		{ "250 OK", "NOOP", "2.0.0" },
		{ "250 OK id=1abcde-0000000000a-0000", NULL, "2.0.0" },
		{ "250 Reset OK", "RSET", "2.0.0" },
		{ "221 mx.test closing connection", "QUIT", "2.0.0" },
		{ "235 Authentication succeeded", NULL, "2.7.0" },
		{ "452 too many recipients", "RCPT", "4.5.3" },
		{ "452 Space shortage, please try later", "MAIL", "4.3.1" },
		{ "500 unrecognized command", "XYZZ", "5.5.1" },
		{ "500 Line too long", NULL, "5.5.2" },
		{ "501 <a@>: domain missing or malformed", "MAIL", "5.1.7" },
		{ "501 <a@>: domain missing or malformed", "RCPT", "5.1.3" },
		{ "501 Invalid value for NOTIFY parameter", "RCPT", "5.5.4" },
		{ "503 sender not yet given", "RCPT", "5.5.1" },
		{ "530 Authentication required", "MAIL", "5.7.0" },
		{ "535 Incorrect authentication data", NULL, "5.7.8" },
		{ "550 relay not permitted", "RCPT", "5.7.1" },
		{ "552 Message size exceeds maximum permitted", "MAIL",
		    "5.3.4" },
		{ "553 UTF-8 addresses require the SMTPUTF8 parameter on MAIL",
		    "RCPT", "5.6.7" },
		{ "550 no such user", "RCPT", "5.0.0" },
		{ "451 Temporary local problem - please try later", NULL,
		    "4.3.0" },
		{ "354 Enter message", "DATA", NULL },
		{ "334 VXNlcm5hbWU6", NULL, NULL },
		{ "hello", NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *got = smtp_esc_code(cases[i].text, cases[i].verb);

		if (cases[i].code == NULL ? got != NULL : got == NULL ||
		    strcmp(got, cases[i].code) != 0)
			fail_msg("\"%s\" to %s: got %s, want %s", cases[i].text,
			    cases[i].verb != NULL ? cases[i].verb : "(none)",
			    got != NULL ? got : "(none)",
			    cases[i].code != NULL ? cases[i].code : "(none)");
	}
}

static void
esc_apply_lines(void **state)
{
	static const struct {
		const char *text;
		const char *verb;
		const char *want;	/* NULL: sent unchanged */
	} cases[] = {
		{ "250 OK", "MAIL", "250 2.1.0 OK" },
		{ "501-5.5.2 text\r\n501 more", NULL,
		    "501-5.5.2 text\r\n501 5.5.4 more" },
		{ "501-bad\r\n501 Too many syntax or protocol errors", NULL,
		    "501-5.5.4 bad\r\n501 5.5.4 Too many syntax or protocol "
		    "errors" },
		{ "214-Commands supported:\r\n214 HELO EHLO", "HELP",
		    "214-2.0.0 Commands supported:\r\n214 2.0.0 HELO EHLO" },
		{ "250", NULL, "250 2.0.0" },
		{ "530 5.7.0 Authentication required", "MAIL",
		    "530 5.7.0 Authentication required" },
		{ "354 Enter message", "DATA", NULL },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = smtp_esc_apply(cases[i].text, cases[i].verb);

		if (cases[i].want == NULL) {
			if (got != NULL)
				fail_msg("\"%s\": got \"%s\", want unchanged",
				    cases[i].text, got);
			continue;
		}
		if (got == NULL || strcmp(got, cases[i].want) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"",
			    cases[i].text, got != NULL ? got : "(unchanged)",
			    cases[i].want);
		free(got);
	}
}

/* DSN and SMTPUTF8 in the -H file */

static char *
format_header(const struct receive_message *m)
{
	struct config config = { .primary_hostname = (char *)"mx.example.net" };
	struct spool_header h = { 0 };
	char *error = NULL, *text;
	size_t len;

	if (receive_build_header(&config, m, &h, &error) != 0)
		fail_msg("build: %s", error);
	text = spool_header_format(&h, &len);
	assert_non_null(text);
	spool_header_free(&h);
	return text;
}

static void
dsn_in_spool_header(void **state)
{
	static const char *const recipients[] = {
		"a@example.test", "b@example.test", "c@example.test",
	};
	static const char *const orcpts[] = {
		"rfc822;a@example.test", "rfc822;b+2B@example.test", NULL,
	};
	static const unsigned notify[] = {
		0, SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE,
		SMTP_DSN_NOTIFY_NEVER,
	};
	struct receive_message m = {
		.id = "1abcde-0000000000a-0000", .sender = "s@example.test",
		.recipients = recipients, .recipient_count = 3,
		.host_ip = "192.0.2.1", .host_port = 1025,
		.protocol = "utf8esmtp", .login = "mail",
		.headers = "Subject: x\n", .headers_len = 11,
		.smtputf8 = true, .dsn_ret = SMTP_DSN_RET_HDRS,
		.dsn_envid = "QQ+2B1", .orcpts = orcpts, .dsn_notify = notify,
	};
	char *text;

	(void)state;
	text = format_header(&m);
	/* Exim 4.96 writes these after the TLS lines, in this order, and
	 * does not mark the ENVID tainted. */
	assert_non_null(strstr(text, "\n-smtputf8\n-dsn_envid QQ+2B1\n"
	    "-dsn_ret 2\n"));
	assert_non_null(strstr(text, "\n-received_protocol utf8esmtp\n"));
	/* Without NOTIFY the plain form, so a's ORCPT is not kept. */
	assert_non_null(strstr(text, "\n3\na@example.test\n"
	    "b@example.test rfc822;b+2B@example.test 24,12  0,-1#3\n"
	    "c@example.test  0,2  0,-1#3\n\n"));
	free(text);
}

static void
submission_gets_fixups(void **state)
{
	static const char *const recipients[] = { "a@example.test" };
	struct receive_message m = {
		.id = "1abcde-0000000000a-0000", .sender = "s@example.test",
		.recipients = recipients, .recipient_count = 1,
		.host_ip = "192.0.2.1", .host_port = 1025, .protocol = "esmtpa",
		.login = "mail", .headers = "Subject: x\n", .headers_len = 11,
	};
	char *text;

	(void)state;
	text = format_header(&m);
	assert_null(strstr(text, "Message-Id:"));
	assert_null(strstr(text, "Date:"));
	free(text);

	m.submission = true;
	text = format_header(&m);
	assert_non_null(strstr(text,
	    "I Message-Id: <E1abcde-0000000000a-0000@mx.example.net>"));
	assert_non_null(strstr(text, "  Date: "));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(xtext_cases),
		cmocka_unit_test(orcpt_cases),
		cmocka_unit_test(mail_params_accepted),
		cmocka_unit_test(mail_params_rejected),
		cmocka_unit_test(mail_params_need_offer),
		cmocka_unit_test(rcpt_params_accepted),
		cmocka_unit_test(rcpt_params_rejected),
		cmocka_unit_test(utf8_char_lengths),
		cmocka_unit_test(utf8_addresses),
		cmocka_unit_test(utf8_lengths_in_octets),
		cmocka_unit_test(esc_codes),
		cmocka_unit_test(esc_apply_lines),
		cmocka_unit_test(dsn_in_spool_header),
		cmocka_unit_test(submission_gets_fixups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

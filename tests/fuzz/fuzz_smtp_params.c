/*
 * fuzz_smtp_params.c - libFuzzer target for the ESMTP parameters of MAIL
 * and RCPT (core/smtp_server_params.c) and the enhanced status codes put
 * on replies (core/smtp_server_esc.c); see tests/fuzz/README.md.
 *
 * The input, cut at its first NUL, is parsed as MAIL parameters and as
 * RCPT parameters, with every extension offered and with none, and is
 * also given to the code inserter as a reply text. What must hold:
 *  - an accepted MAIL has an ENVID that is empty or valid xtext of at
 *    most 100 characters, and a RET of none, FULL or HDRS;
 *  - an accepted RCPT has NOTIFY bits from the defined set, NEVER only
 *    alone, and an ORCPT that is empty or a valid addr-type;xtext;
 *  - a rejected one has a reply that starts "501 " or "555 ";
 *  - with nothing offered, only an empty parameter list is accepted;
 *  - a reply with codes inserted keeps every line's reply code, and is
 *    longer than the input by at most one code and a space per line
 *    (a line ends at each CR).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_server_esc.h"
#include "smtp_server_params.h"

static void
fail(const char *what, const char *input)
{
	fprintf(stderr, "fuzz_smtp_params: %s: \"%s\"\n", what, input);
	abort();
}

static void
check_reply(const char *reply, const char *input)
{
	if (strncmp(reply, "501 ", 4) != 0 && strncmp(reply, "555 ", 4) != 0)
		fail("rejected with an unexpected reply", input);
}

static void
check_mail(const char *input, const struct smtp_params_offer *offer)
{
	struct smtp_mail_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];

	if (smtp_params_parse_mail(input, offer, &p, reply) != 0) {
		check_reply(reply, input);
		return;
	}
	if (!offer->esmtp && input[0] != '\0')
		fail("MAIL parameter accepted without an offer", input);
	if (p.envid[0] != '\0' && (!smtp_params_xtext_valid(p.envid) ||
	    strlen(p.envid) > SMTP_PARAMS_ENVID_MAX))
		fail("accepted ENVID is not bounded xtext", input);
	if (p.dsn_ret != SMTP_DSN_RET_NONE && p.dsn_ret != SMTP_DSN_RET_FULL &&
	    p.dsn_ret != SMTP_DSN_RET_HDRS)
		fail("RET out of range", input);
}

static void
check_rcpt(const char *input, const struct smtp_params_offer *offer)
{
	const unsigned all = SMTP_DSN_NOTIFY_NEVER | SMTP_DSN_NOTIFY_SUCCESS |
	    SMTP_DSN_NOTIFY_FAILURE | SMTP_DSN_NOTIFY_DELAY;
	struct smtp_rcpt_params p;
	char reply[SMTP_PARAMS_REPLY_SIZE];

	if (smtp_params_parse_rcpt(input, offer, &p, reply) != 0) {
		check_reply(reply, input);
		return;
	}
	if (!offer->dsn && input[0] != '\0')
		fail("RCPT parameter accepted without an offer", input);
	if ((p.dsn_notify & ~all) != 0 ||
	    ((p.dsn_notify & SMTP_DSN_NOTIFY_NEVER) != 0 &&
	    p.dsn_notify != SMTP_DSN_NOTIFY_NEVER))
		fail("NOTIFY bits out of range", input);
	if (p.orcpt[0] != '\0' && !smtp_params_orcpt_valid(p.orcpt))
		fail("accepted ORCPT is not addr-type;xtext", input);
}

static void
check_esc(const char *input)
{
	char *coded = smtp_esc_apply(input, "MAIL");
	size_t lines = 1;
	const char *p, *q;

	if (coded == NULL)
		return;
	for (p = input; (p = strchr(p, '\r')) != NULL; p++)
		lines++;
	if (strlen(coded) > strlen(input) + lines * (SMTP_ESC_SIZE + 1))
		fail("coded reply grew too much", input);
	/* Each line keeps its first three bytes. */
	for (p = input, q = coded;;) {
		size_t code_len = strcspn(p, "\r");

		if (code_len > 3)
			code_len = 3;
		if (strncmp(p, q, code_len) != 0)
			fail("a line lost its reply code", input);
		p = strchr(p, '\r');
		q = strchr(q, '\r');
		if (p == NULL || q == NULL) {
			if (p != q)
				fail("coded reply has other lines", input);
			break;
		}
		p++;
		q++;
	}
	free(coded);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct smtp_params_offer all = {
		.esmtp = true, .auth = true, .dsn = true, .smtputf8 = true,
	};
	static const struct smtp_params_offer none = { 0 };
	char *input = malloc(size + 1);

	if (input == NULL)
		return 0;
	memcpy(input, data, size);
	input[size] = '\0';
	check_mail(input, &all);
	check_mail(input, &none);
	check_rcpt(input, &all);
	check_rcpt(input, &none);
	check_esc(input);
	free(input);
	return 0;
}

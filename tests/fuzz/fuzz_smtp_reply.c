/*
 * fuzz_smtp_reply.c - libFuzzer target for what the SMTP client reads
 * from a server: reply lines, the EHLO keywords of a complete reply, and
 * the xtext encoder that DSN parameters go through (see
 * tests/fuzz/README.md for how to build and run it).
 *
 * The input is split into lines at LF (a CR before it is dropped, as
 * the client does) and fed to one reply after the other: a new reply
 * starts after a complete one or an error. Each complete reply must keep
 * its bounds (code from 200 to 599, text within SMTP_REPLY_TEXT_MAX and
 * terminated, no NUL inside), and its EHLO keywords must parse within
 * theirs. Each line is also xtext-encoded, and the result must be valid
 * xtext of the announced length.
 *
 * Any broken property calls abort(), which libFuzzer reports as a crash
 * with the input that caused it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_wire.h"

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_smtp_reply: %s\n", what);
	abort();
}

static void
check_reply(const struct smtp_reply *reply)
{
	struct smtp_ehlo ehlo;

	if (reply->code < 200 || reply->code > 599)
		fail("reply code out of range");
	if (reply->len > SMTP_REPLY_TEXT_MAX || reply->text[reply->len] != '\0')
		fail("reply text over its bound or not terminated");
	if (strlen(reply->text) != reply->len)
		fail("NUL byte inside the reply text");
	if (reply->line_count == 0 || reply->line_count > SMTP_REPLY_LINES_MAX)
		fail("line count out of range");
	smtp_ehlo_parse(reply, &ehlo);
	if (ehlo.rcpt_max > 1000000)
		fail("RCPTMAX over its bound");
}

static void
check_xtext(const char *line, size_t len)
{
	char *text = malloc(len + 1);
	size_t need, size = 3 * len + 1;
	char *out = malloc(size);

	if (text == NULL || out == NULL)
		abort();
	memcpy(text, line, len);
	text[len] = '\0';
	need = smtp_xtext_encode(text, out, size);
	if (need >= size || strlen(out) != need)
		fail("xtext length differs from the one announced");
	if (need > 0 && !smtp_xtext_valid(out))
		fail("xtext encoding is not valid xtext");
	free(text);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply *reply = malloc(sizeof(*reply));
	const char *p = (const char *)data, *end = p + size;

	if (reply == NULL)
		abort();
	smtp_reply_init(reply);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		const char *error = NULL;
		int rc;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		check_xtext(p, len);
		rc = smtp_reply_add_line(reply, p, len, &error);
		if (rc < 0 && error == NULL)
			fail("an error without a description");
		if (rc == 1)
			check_reply(reply);
		if (rc != 0)
			smtp_reply_init(reply);
		p = nl != NULL ? nl + 1 : end;
	}
	free(reply);
	return 0;
}

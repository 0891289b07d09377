/*
 * test_smtp_client.c - the SMTP client's pure parts: the reply parser
 * with its bounds, EHLO keywords, the DATA encoding (CRLF line ends,
 * dot-stuffing, bare CR) and the "defer (n)" codes. Then the checks
 * smtp_client_start() makes before it connects anywhere, and the
 * greeting timeout on the fake clock, against a loopback listener that
 * never sends a greeting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "clock.h"
#include "smtp_client.h"
#include "smtp_wire.h"
#include "spool_header.h"
#include "util.h"

/* --- replies -------------------------------------------------------- */

/* Feeds lines until the reply completes or fails; returns the last
 * smtp_reply_add_line() result. */
static int
feed(struct smtp_reply *reply, const char *const *lines, size_t count,
    const char **error)
{
	int rc = 0;

	smtp_reply_init(reply);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = smtp_reply_add_line(reply, lines[i], strlen(lines[i]),
		    error);
	return rc;
}

static void
reply_valid_table(void **state)
{
	static const struct {
		const char *lines[4];
		size_t count;
		int code;
		const char *text;
	} cases[] = {
		{ { "250 OK" }, 1, 250, "250 OK" },
		{ { "220" }, 1, 220, "220" },
		{ { "354 Go ahead" }, 1, 354, "354 Go ahead" },
		{ { "550 5.1.1 <a@b.test>: no such user" }, 1, 550,
		  "550 5.1.1 <a@b.test>: no such user" },
		{ { "250-first", "250-second", "250 third" }, 3, 250,
		  "250-first\n250-second\n250 third" },
		{ { "421-a", "421" }, 2, 421, "421-a\n421" },
		{ { "250-", "250 " }, 2, 250, "250-\n250 " },
	};
	struct smtp_reply *reply = xmalloc(sizeof(*reply));

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *error = NULL;
		int rc = feed(reply, cases[i].lines, cases[i].count, &error);

		if (rc != 1)
			fail_msg("case %zu: got %d (%s), want a complete reply",
			    i, rc, error ? error : "");
		assert_int_equal(reply->code, cases[i].code);
		assert_int_equal(reply->line_count, cases[i].count);
		assert_string_equal(reply->text, cases[i].text);
		assert_int_equal(reply->len, strlen(cases[i].text));
		assert_false(reply->truncated);
	}
	free(reply);
}

static void
reply_partial_needs_more(void **state)
{
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	const char *error = NULL;

	(void)state;
	smtp_reply_init(reply);
	assert_int_equal(smtp_reply_add_line(reply, "250-one", 7, &error), 0);
	assert_false(reply->complete);
	assert_int_equal(smtp_reply_add_line(reply, "250 two", 7, &error), 1);
	assert_true(reply->complete);
	/* Nothing may follow the last line. */
	assert_int_equal(smtp_reply_add_line(reply, "250 x", 5, &error), -1);
	assert_non_null(error);
	free(reply);
}

static void
reply_malformed_table(void **state)
{
	static const struct {
		const char *lines[3];
		size_t count;
		const char *error;
	} cases[] = {
		{ { "" }, 1, "does not start with a reply code" },
		{ { "25" }, 1, "does not start with a reply code" },
		{ { "abc def" }, 1, "does not start with a reply code" },
		{ { "199 too low" }, 1, "does not start with a reply code" },
		{ { "600 too high" }, 1, "does not start with a reply code" },
		{ { "260 bad second digit" }, 1,
		  "does not start with a reply code" },
		{ { "25x" }, 1, "does not start with a reply code" },
		{ { "250x" }, 1, "not followed by a space or '-'" },
		{ { "250-a", "251 b" }, 2, "different codes" },
		{ { "250-a", "garbage" }, 2, "does not start with a reply code" },
	};
	struct smtp_reply *reply = xmalloc(sizeof(*reply));

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *error = NULL;
		int rc = feed(reply, cases[i].lines, cases[i].count, &error);

		if (rc != -1)
			fail_msg("case %zu (\"%s\"): got %d, want an error", i,
			    cases[i].lines[0], rc);
		if (error == NULL || strstr(error, cases[i].error) == NULL)
			fail_msg("case %zu: got error \"%s\", want \"%s\"", i,
			    error ? error : "(none)", cases[i].error);
	}
	free(reply);
}

/* Lines of hostile lengths: up to the bound they parse, past it they
 * fail, and nothing writes past the kept text. */
static void
reply_hostile_lengths(void **state)
{
	static const size_t lengths[] = {
		3, 4, 512, 1000, SMTP_REPLY_LINE_MAX - 1, SMTP_REPLY_LINE_MAX,
		SMTP_REPLY_LINE_MAX + 1, SMTP_REPLY_LINE_MAX * 4,
	};
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	char *line = xmalloc(SMTP_REPLY_LINE_MAX * 4 + 1);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lengths); i++) {
		const char *error = NULL;
		size_t len = lengths[i];
		int want = len <= SMTP_REPLY_LINE_MAX ? 1 : -1;
		int rc;

		memset(line, 'x', len);
		memcpy(line, "550 ", len < 4 ? len : 4);
		smtp_reply_init(reply);
		rc = smtp_reply_add_line(reply, line, len, &error);
		if (rc != want)
			fail_msg("line of %zu bytes: got %d, want %d", len, rc,
			    want);
		assert_true(reply->len <= SMTP_REPLY_TEXT_MAX);
	}
	free(line);
	free(reply);
}

static void
reply_too_many_lines(void **state)
{
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	const char *error = NULL;
	int rc = 0;
	size_t i;

	(void)state;
	smtp_reply_init(reply);
	for (i = 0; i < SMTP_REPLY_LINES_MAX && rc == 0; i++)
		rc = smtp_reply_add_line(reply, "250-more", 8, &error);
	assert_int_equal(rc, 0);
	assert_int_equal(reply->line_count, SMTP_REPLY_LINES_MAX);
	assert_int_equal(smtp_reply_add_line(reply, "250 last", 8, &error),
	    -1);
	assert_string_equal(error, "too many reply lines");
	free(reply);
}

static void
reply_text_truncated_not_failed(void **state)
{
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	char *line = xmalloc(SMTP_REPLY_LINE_MAX + 1);
	const char *error = NULL;

	(void)state;
	memset(line, 'y', SMTP_REPLY_LINE_MAX);
	memcpy(line, "550-", 4);
	smtp_reply_init(reply);
	/* Six lines of the longest kind are more than the text keeps. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(smtp_reply_add_line(reply, line,
		    SMTP_REPLY_LINE_MAX, &error), 0);
	line[3] = ' ';
	assert_int_equal(smtp_reply_add_line(reply, line, SMTP_REPLY_LINE_MAX,
	    &error), 1);
	assert_true(reply->truncated);
	assert_int_equal(reply->len, SMTP_REPLY_TEXT_MAX);
	assert_int_equal(strlen(reply->text), SMTP_REPLY_TEXT_MAX);
	assert_int_equal(reply->code, 550);
	free(line);
	free(reply);
}

static void
reply_nul_kept_as_question_mark(void **state)
{
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	const char *error = NULL;

	(void)state;
	smtp_reply_init(reply);
	assert_int_equal(smtp_reply_add_line(reply, "550 a\0b", 7, &error), 1);
	assert_string_equal(reply->text, "550 a?b");
	free(reply);
}

/* --- EHLO ----------------------------------------------------------- */

static void
ehlo_keywords(void **state)
{
	static const char *lines[] = {
		"250-SIZE.example.test Hello there",
		"250-size 52428800",
		"250-pipelining",
		"250-8BITMIME",
		"250-STARTTLS",
		"250-CHUNKING",
		"250-XFOO bar",
		"250 SMTPUTF8",
	};
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	struct smtp_ehlo ehlo;
	const char *error = NULL;

	(void)state;
	assert_int_equal(feed(reply, lines, ARRAY_SIZE(lines), &error), 1);
	smtp_ehlo_parse(reply, &ehlo);
	assert_true(ehlo.size);
	assert_int_equal(ehlo.size_max, 52428800);
	assert_true(ehlo.pipelining);
	assert_true(ehlo.eight_bit_mime);
	assert_true(ehlo.starttls);
	assert_true(ehlo.chunking);
	assert_true(ehlo.smtputf8);
	free(reply);
}

static void
ehlo_greeting_line_is_no_keyword(void **state)
{
	static const char *only_greeting[] = { "250 SIZE 1000" };
	static const char *bare_size[] = { "250-mx.test", "250 SIZE" };
	static const char *bad_size[] = { "250-mx.test", "250 SIZE lots" };
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	struct smtp_ehlo ehlo;
	const char *error = NULL;

	(void)state;
	assert_int_equal(feed(reply, only_greeting, 1, &error), 1);
	smtp_ehlo_parse(reply, &ehlo);
	assert_false(ehlo.size);

	assert_int_equal(feed(reply, bare_size, 2, &error), 1);
	smtp_ehlo_parse(reply, &ehlo);
	assert_true(ehlo.size);
	assert_int_equal(ehlo.size_max, 0);

	assert_int_equal(feed(reply, bad_size, 2, &error), 1);
	smtp_ehlo_parse(reply, &ehlo);
	assert_true(ehlo.size);
	assert_int_equal(ehlo.size_max, 0);
	assert_false(ehlo.pipelining);
	free(reply);
}

/* --- DATA encoding -------------------------------------------------- */

/* Encodes in[0..len) split into blocks of the given size (0: one block)
 * and returns the wire form (caller frees). */
static char *
encode_in_blocks(const char *in, size_t len, size_t block, size_t *out_len)
{
	struct smtp_dot_encoder encoder;
	char *out = xmalloc(SMTP_DOT_ENCODE_MAX(len) + SMTP_DOT_FINISH_MAX + 1);
	size_t n = 0;

	if (block == 0)
		block = len > 0 ? len : 1;
	smtp_dot_encoder_init(&encoder);
	for (size_t at = 0; at < len; at += block) {
		size_t part = len - at < block ? len - at : block;
		size_t got = smtp_dot_encode(&encoder, in + at, part, out + n);

		if (got > SMTP_DOT_ENCODE_MAX(part))
			fail_msg("block of %zu bytes gave %zu, over the bound "
			    "%zu", part, got, (size_t)SMTP_DOT_ENCODE_MAX(part));
		n += got;
	}
	n += smtp_dot_encoder_finish(&encoder, true, out + n);
	out[n] = '\0';
	*out_len = n;
	return out;
}

static void
dot_encode_table(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a\n", "a\r\n.\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "\n", "\r\n.\r\n" },
		{ ".\n", "..\r\n.\r\n" },
		{ "..\n", "...\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ "a\n.b\n", "a\r\n..b\r\n.\r\n" },
		{ "x.y\n", "x.y\r\n.\r\n" },
		{ "\n.\n", "\r\n..\r\n.\r\n" },
		/* A spool in wire format already has CRLF. */
		{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "\r\n\r\n", "\r\n\r\n.\r\n" },
		/* A bare CR is content; a dot after it is stuffed too. */
		{ "a\rb\n", "a\rb\r\n.\r\n" },
		{ "a\r.b\n", "a\r..b\r\n.\r\n" },
		{ "a\r.\r\n", "a\r..\r\n.\r\n" },
		{ "a\r", "a\r\r\n.\r\n" },
		{ "\r", "\r\r\n.\r\n" },
		{ "a\r\r\n", "a\r\r\n.\r\n" },
		{ "x\n\r.\n", "x\r\n\r..\r\n.\r\n" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = strlen(cases[i].in);

		/* Every way of cutting the input into blocks gives the same
		 * bytes. */
		for (size_t block = 0; block <= len; block++) {
			size_t out_len;
			char *out = encode_in_blocks(cases[i].in, len, block,
			    &out_len);

			if (out_len != strlen(cases[i].want) ||
			    memcmp(out, cases[i].want, out_len) != 0)
				fail_msg("case %zu, blocks of %zu: got \"%s\", "
				    "want \"%s\"", i, block, out,
				    cases[i].want);
			free(out);
		}
	}
}

/* The rules written a second way, over a whole string at once. */
static size_t
reference_encode(const char *in, size_t len, char *out)
{
	size_t n = 0;
	bool line_start = true, after_cr = false;

	for (size_t i = 0; i < len; i++) {
		bool crlf = in[i] == '\r' && i + 1 < len && in[i + 1] == '\n';

		if (in[i] == '\n' || crlf) {
			out[n++] = '\r';
			out[n++] = '\n';
			i += crlf;
			line_start = true;
			after_cr = false;
		} else if (in[i] == '\r') {
			out[n++] = '\r';
			line_start = false;
			after_cr = true;
		} else {
			if (in[i] == '.' && (line_start || after_cr))
				out[n++] = '.';
			out[n++] = in[i];
			line_start = after_cr = false;
		}
	}
	if (!line_start) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	return n + 3;
}

static void
dot_encode_matches_reference(void **state)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a' };
	char in[7], want[32];

	(void)state;
	/* Every string of up to 6 bytes over the alphabet, cut every way
	 * into blocks of one size. */
	for (size_t len = 0; len <= 6; len++) {
		size_t total = 1;

		for (size_t i = 0; i < len; i++)
			total *= ARRAY_SIZE(alphabet);
		for (size_t k = 0; k < total; k++) {
			size_t code = k, want_len;

			for (size_t i = 0; i < len; i++) {
				in[i] = alphabet[code % ARRAY_SIZE(alphabet)];
				code /= ARRAY_SIZE(alphabet);
			}
			want_len = reference_encode(in, len, want);
			for (size_t block = 0; block <= len; block++) {
				size_t out_len;
				char *out = encode_in_blocks(in, len, block,
				    &out_len);

				if (out_len != want_len ||
				    memcmp(out, want, want_len) != 0)
					fail_msg("input %zu of length %zu, "
					    "blocks of %zu: output differs "
					    "from the reference", k, len,
					    block);
				free(out);
			}
		}
	}
}

static void
dot_finish_without_dot(void **state)
{
	struct smtp_dot_encoder encoder;
	char out[SMTP_DOT_ENCODE_MAX(8) + SMTP_DOT_FINISH_MAX];
	size_t n;

	(void)state;
	/* Header fields end their last line but get no dot. */
	smtp_dot_encoder_init(&encoder);
	n = smtp_dot_encode(&encoder, "X: y", 4, out);
	n += smtp_dot_encoder_finish(&encoder, false, out + n);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "X: y\r\n", 6);

	smtp_dot_encoder_init(&encoder);
	n = smtp_dot_encode(&encoder, "X: y\n", 5, out);
	n += smtp_dot_encoder_finish(&encoder, false, out + n);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "X: y\r\n", 6);

	/* finish resets the encoder for the next part. */
	assert_true(encoder.line_start);
	assert_false(encoder.cr_pending);
}

/* --- codes and names ------------------------------------------------ */

static void
defer_code_table(void **state)
{
	static const struct {
		enum smtp_error_kind kind;
		enum smtp_phase phase;
		int error;
		int want;
	} cases[] = {
		{ SMTP_ERROR_CONNECT, SMTP_PHASE_CONNECT, ECONNREFUSED,
		  ECONNREFUSED },
		{ SMTP_ERROR_TIMEOUT, SMTP_PHASE_CONNECT, ETIMEDOUT, ETIMEDOUT },
		{ SMTP_ERROR_TIMEOUT, SMTP_PHASE_RCPT, ETIMEDOUT, ETIMEDOUT },
		{ SMTP_ERROR_IO, SMTP_PHASE_BODY, ECONNRESET, ECONNRESET },
		{ SMTP_ERROR_LOCAL, SMTP_PHASE_BODY, EIO, EIO },
		{ SMTP_ERROR_CLOSED, SMTP_PHASE_MAIL, 0, SMTP_EXIM_CLOSED },
		{ SMTP_ERROR_PROTOCOL, SMTP_PHASE_EHLO, 0, SMTP_EXIM_FORMAT },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_MAIL, 0, SMTP_EXIM_MAIL_4XX },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_RCPT, 0, SMTP_EXIM_RCPT_4XX },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_DATA, 0, SMTP_EXIM_DATA_4XX },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_DOT, 0, SMTP_EXIM_DATA_4XX },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_GREETING, 0, 0 },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_EHLO, 0, 0 },
		{ SMTP_ERROR_REPLY, SMTP_PHASE_STARTTLS, 0, 0 },
		{ SMTP_ERROR_TLS, SMTP_PHASE_STARTTLS, 0,
		  SMTP_EXIM_TLS_FAILURE },
		{ SMTP_ERROR_TLS_REQUIRED, SMTP_PHASE_EHLO, 0,
		  SMTP_EXIM_TLS_REQUIRED },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct smtp_rcpt_result r = { 0 };
		int got;

		r.kind = cases[i].kind;
		r.phase = cases[i].phase;
		r.error = cases[i].error;
		got = smtp_rcpt_defer_code(&r);
		if (got != cases[i].want)
			fail_msg("%s in phase %s: got %d, want %d",
			    smtp_error_kind_name(r.kind),
			    smtp_phase_name(r.phase), got, cases[i].want);
	}
	assert_int_equal(SMTP_EXIM_CLOSED, -18);
	assert_int_equal(SMTP_EXIM_RCPT_4XX, -44);
	/* Exim's ERRNO_TLSFAILURE and ERRNO_TLSREQUIRED (its macros.h). */
	assert_int_equal(SMTP_EXIM_TLS_FAILURE, -37);
	assert_int_equal(SMTP_EXIM_TLS_REQUIRED, -38);
}

static void
names_cover_every_value(void **state)
{
	(void)state;
	assert_string_equal(smtp_outcome_name(SMTP_DELIVERED), "delivered");
	assert_string_equal(smtp_outcome_name(SMTP_DEFERRED), "deferred");
	assert_string_equal(smtp_outcome_name(SMTP_FAILED), "failed");
	for (int p = SMTP_PHASE_CONNECT; p <= SMTP_PHASE_DOT; p++)
		assert_string_not_equal(smtp_phase_name(p), "unknown");
	for (int k = SMTP_ERROR_NONE; k <= SMTP_ERROR_TLS_REQUIRED; k++)
		assert_string_not_equal(smtp_error_kind_name(k), "unknown");
	assert_string_equal(smtp_phase_name(SMTP_PHASE_STARTTLS), "starttls");
}

/* Delivered recipients go to mainlog transaction by transaction, so
 * "=>" and "->" group them; the rest follow in their own order. */
static void
log_order_groups_transactions(void **state)
{
	static const struct {
		enum smtp_outcome outcome;
		unsigned transaction;
	} rcpts[] = {
		{ SMTP_DELIVERED, 1 },	/* 0 */
		{ SMTP_DELIVERED, 2 },	/* 1: 452 first, then accepted */
		{ SMTP_FAILED, 1 },	/* 2 */
		{ SMTP_DELIVERED, 1 },	/* 3 */
		{ SMTP_DEFERRED, 0 },	/* 4 */
		{ SMTP_DELIVERED, 2 },	/* 5 */
	};
	static const size_t want[] = { 0, 3, 1, 5, 2, 4 };
	struct smtp_result result = { .rcpt_count = ARRAY_SIZE(rcpts) };
	struct smtp_rcpt_result r[ARRAY_SIZE(rcpts)];
	size_t *order;

	(void)state;
	memset(r, 0, sizeof(r));
	for (size_t i = 0; i < ARRAY_SIZE(rcpts); i++) {
		r[i].outcome = rcpts[i].outcome;
		r[i].transaction = rcpts[i].transaction;
	}
	result.rcpts = r;
	order = smtp_result_log_order(&result);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		if (order[i] != want[i])
			fail_msg("position %zu: got recipient %zu, want %zu", i,
			    order[i], want[i]);
	free(order);
}

/* --- DSN and LIMITS ------------------------------------------------- */

static void
xtext_encode_table(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{ "a@b.example", "a@b.example" },
		{ "a+b@x", "a+2Bb@x" },
		{ "a=b", "a+3Db" },
		{ "sp ace", "sp+20ace" },
		{ "tab\tnl\n", "tab+09nl+0A" },
		{ "caf\xc3\xa9", "caf+C3+A9" },
		{ "", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[64];
		size_t n = smtp_xtext_encode(cases[i].in, out, sizeof(out));

		if (strcmp(out, cases[i].out) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"",
			    cases[i].in, out, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
		if (*cases[i].out != '\0')
			assert_true(smtp_xtext_valid(out));
	}
}

static void
xtext_encode_bounded(void **state)
{
	char out[6];
	size_t n;

	(void)state;
	/* The length needed comes back; the output is cut and terminated. */
	n = smtp_xtext_encode("ab+cd", out, sizeof(out));
	assert_int_equal(n, 7);
	assert_int_equal(strlen(out), 5);
	assert_memory_equal(out, "ab+2B", 5);
	n = smtp_xtext_encode("abcdefgh", out, 1);
	assert_int_equal(n, 8);
	assert_string_equal(out, "");
}

static void
xtext_valid_table(void **state)
{
	static const struct {
		const char *text;
		bool valid;
	} cases[] = {
		{ "a@b.example", true },
		{ "a+2Bb", true },
		{ "a+2b", false },	/* hex must be upper case */
		{ "a+2", false },
		{ "a+", false },
		{ "a=b", false },
		{ "a b", false },
		{ "", false },
		{ "\x7f", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (smtp_xtext_valid(cases[i].text) != cases[i].valid)
			fail_msg("\"%s\": got %d, want %d", cases[i].text,
			    !cases[i].valid, cases[i].valid);
}

static void
ehlo_dsn_and_limits(void **state)
{
	static const struct {
		const char *line;
		unsigned rcpt_max;
	} cases[] = {
		{ "250 LIMITS RCPTMAX=50", 50 },
		{ "250 LIMITS MAILMAX=10 RCPTMAX=20", 20 },
		{ "250 limits rcptmax=3", 3 },
		{ "250 LIMITS RCPTMAX=0", 0 },
		{ "250 LIMITS RCPTMAX=1000001", 0 },
		{ "250 LIMITS RCPTMAX=x", 0 },
		{ "250 LIMITS RCPTMAX=", 0 },
		{ "250 LIMITS", 0 },
		{ "250 LIMITS RCPTMAX=99999999999999999999999999999999", 0 },
	};
	const char *dsn[] = { "250-mx.test", "250-DSN", "250 PIPELINING" };
	struct smtp_reply *reply = xmalloc(sizeof(*reply));
	struct smtp_ehlo ehlo;
	const char *error = NULL;

	(void)state;
	assert_int_equal(feed(reply, dsn, ARRAY_SIZE(dsn), &error), 1);
	smtp_ehlo_parse(reply, &ehlo);
	assert_true(ehlo.dsn);
	assert_int_equal(ehlo.rcpt_max, 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *lines[] = { "250-mx.test", cases[i].line };

		assert_int_equal(feed(reply, lines, 2, &error), 1);
		smtp_ehlo_parse(reply, &ehlo);
		if (ehlo.rcpt_max != cases[i].rcpt_max)
			fail_msg("\"%s\": got %u, want %u", cases[i].line,
			    ehlo.rcpt_max, cases[i].rcpt_max);
		assert_false(ehlo.dsn);
	}
	free(reply);
}

/* --- start-up checks ------------------------------------------------ */

#define TEST_ID		"1tt1Jd-00000000CXd-1jGj"

struct start_fixture {
	struct event_base *base;
	struct spool_header header;
	char path[64];
	int fd;
};

static int
start_setup(void **state)
{
	struct start_fixture *f = xcalloc(1, sizeof(*f));
	static const char data[] = TEST_ID "-D\nbody\n";

	f->base = event_base_new();
	strlcpy_s(f->header.id, TEST_ID, sizeof(f->header.id));
	f->header.sender = xstrdup("alice@example.test");
	strlcpy_s(f->path, "/tmp/test_smtp_client.XXXXXX", sizeof(f->path));
	f->fd = mkstemp(f->path);
	if (f->base == NULL || f->fd < 0 ||
	    write(f->fd, data, sizeof(data) - 1) != sizeof(data) - 1)
		return -1;
	*state = f;
	return 0;
}

static int
start_teardown(void **state)
{
	struct start_fixture *f = *state;

	close(f->fd);
	unlink(f->path);
	spool_header_free(&f->header);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void
never_called_cb(void *arg, struct smtp_result *result)
{
	(void)arg;
	smtp_result_free(result);
	fail_msg("the callback ran for a client that never started");
}

static void
start_rejects_bad_arguments(void **state)
{
	static const struct {
		const char *ip;
		int port;
		const char *helo;
		const char *rcpt;
		const char *error;	/* part of it */
	} cases[] = {
		{ "127.0.0.1", 0, "me.test", "b@x.test", "invalid port" },
		{ "127.0.0.1", 65536, "me.test", "b@x.test", "invalid port" },
		{ "localhost", 25, "me.test", "b@x.test", "invalid IP" },
		{ "127.0.0.1", 25, "", "b@x.test", "invalid HELO" },
		{ "127.0.0.1", 25, "me test", "b@x.test", "invalid HELO" },
		{ "127.0.0.1", 25, "me\r\nQUIT", "b@x.test", "invalid HELO" },
		{ "127.0.0.1", 25, "me.test", "", "recipient 1" },
		/* A CR or LF would smuggle a command in. */
		{ "127.0.0.1", 25, "me.test", "b@x.test>\r\nRSET",
		  "control characters" },
		{ "127.0.0.1", 25, "me.test", "b@x\x7f.test",
		  "control characters" },
	};
	struct start_fixture *f = *state;
	struct smtp_client_options options;

	smtp_client_options_init(&options);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *rcpts[] = { cases[i].rcpt };
		struct smtp_client_target target = {
			.host_name = "mx.test", .ip = cases[i].ip,
			.port = cases[i].port, .helo_name = cases[i].helo,
		};
		struct smtp_client_message message = {
			.header = &f->header, .data_fd = f->fd,
			.recipients = rcpts, .recipient_count = 1,
		};
		char *error = NULL;

		if (smtp_client_start(f->base, &target, &message, &options,
		    never_called_cb, NULL, &error) != NULL)
			fail_msg("case %zu: started, want an error", i);
		if (error == NULL || strstr(error, cases[i].error) == NULL)
			fail_msg("case %zu: got error \"%s\", want one "
			    "containing \"%s\"", i, error ? error : "(none)",
			    cases[i].error);
		free(error);
	}
}

static void
start_rejects_long_address(void **state)
{
	struct start_fixture *f = *state;
	struct smtp_client_options options;
	char *rcpt = xmalloc(SMTP_ADDRESS_MAX + 2);
	const char *rcpts[] = { rcpt };
	struct smtp_client_target target = { .host_name = NULL,
	    .ip = "127.0.0.1", .port = 25, .helo_name = "me.test" };
	struct smtp_client_message message = { .header = &f->header,
	    .data_fd = f->fd, .recipients = rcpts, .recipient_count = 1 };
	char *error = NULL;

	smtp_client_options_init(&options);
	memset(rcpt, 'a', SMTP_ADDRESS_MAX + 1);
	rcpt[SMTP_ADDRESS_MAX + 1] = '\0';
	assert_null(smtp_client_start(f->base, &target, &message, &options,
	    never_called_cb, NULL, &error));
	assert_non_null(error);
	free(error);

	/* No recipients at all. */
	message.recipient_count = 0;
	assert_null(smtp_client_start(f->base, &target, &message, &options,
	    never_called_cb, NULL, &error));
	assert_non_null(strstr(error, "no recipients"));
	free(error);
	free(rcpt);
}

static void
start_checks_data_file(void **state)
{
	struct start_fixture *f = *state;
	struct smtp_client_options options;
	const char *rcpts[] = { "bob@example.test" };
	struct smtp_client_target target = { .host_name = NULL,
	    .ip = "127.0.0.1", .port = 25, .helo_name = "me.test" };
	struct smtp_client_message message = { .header = &f->header,
	    .data_fd = f->fd, .recipients = rcpts, .recipient_count = 1 };
	char *error = NULL;

	smtp_client_options_init(&options);
	/* The -D file of another message. */
	strlcpy_s(f->header.id, "1tt1Jd-00000000CXd-2kkk",
	    sizeof(f->header.id));
	assert_null(smtp_client_start(f->base, &target, &message, &options,
	    never_called_cb, NULL, &error));
	assert_non_null(strstr(error, "does not start with"));
	free(error);

	/* A descriptor that is not open. */
	strlcpy_s(f->header.id, TEST_ID, sizeof(f->header.id));
	message.data_fd = -1;
	assert_null(smtp_client_start(f->base, &target, &message, &options,
	    never_called_cb, NULL, &error));
	assert_non_null(strstr(error, "cannot read the data file"));
	free(error);
}

#ifdef SLUICE_TEST_HOOKS
static void
record_result_cb(void *arg, struct smtp_result *result)
{
	struct smtp_result **out = arg;

	*out = result;
}

/* A server that accepts the connection (the kernel does, from the
 * listen backlog) and never sends its greeting: the command timeout
 * runs on the sluice clock, so the test moves that clock instead of
 * waiting five minutes. */
static void
greeting_timeout_on_sluice_clock(void **state)
{
	struct start_fixture *f = *state;
	struct smtp_client_options options;
	const char *rcpts[] = { "bob@example.test" };
	struct smtp_client_message message = { .header = &f->header,
	    .data_fd = f->fd, .recipients = rcpts, .recipient_count = 1 };
	struct smtp_client_target target = { .host_name = "mx.test",
	    .ip = "127.0.0.1", .port = 0, .helo_name = "me.test" };
	struct smtp_result *result = NULL;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char *error = NULL;
	int listener = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(listener >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listener, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(listener, 1), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&sin, &len),
	    0);
	target.port = ntohs(sin.sin_port);

	smtp_client_options_init(&options);
	options.connect_timeout_usec = 3600ull * 1000000;
	assert_non_null(smtp_client_start(f->base, &target, &message, &options,
	    record_result_cb, &result, &error));
	assert_null(result);
	for (int i = 0; i < 20 && result == NULL; i++) {
		clock_fake_advance(6 * 60 * 1000000LL);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_non_null(result);
	assert_int_equal(result->rcpt_count, 1);
	assert_int_equal(result->deferred, 1);
	assert_int_equal(result->rcpts[0].kind, SMTP_ERROR_TIMEOUT);
	assert_int_equal(result->rcpts[0].phase, SMTP_PHASE_GREETING);
	assert_int_equal(result->rcpts[0].error, ETIMEDOUT);
	assert_string_equal(result->rcpts[0].message,
	    "SMTP timeout after initial connection");
	assert_string_equal(result->host_name, "mx.test");
	assert_string_equal(result->ip, "127.0.0.1");
	assert_false(result->tls);
	smtp_result_free(result);
	close(listener);
}
#endif

static void
abort_before_start_frees_all(void **state)
{
	struct start_fixture *f = *state;
	struct smtp_client_options options;
	const char *rcpts[] = { "bob@example.test" };
	struct smtp_client_message message = { .header = &f->header,
	    .data_fd = f->fd, .recipients = rcpts, .recipient_count = 1 };
	struct smtp_client_target target = { .host_name = NULL,
	    .ip = "127.0.0.1", .port = 9, .helo_name = "me.test" };
	struct smtp_client *client;
	char *error = NULL;

	smtp_client_options_init(&options);
	client = smtp_client_start(f->base, &target, &message, &options,
	    never_called_cb, NULL, &error);
	assert_non_null(client);
	smtp_client_abort(client);
	/* Nothing is left to run: the start timer went with the client. */
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reply_valid_table),
		cmocka_unit_test(reply_partial_needs_more),
		cmocka_unit_test(reply_malformed_table),
		cmocka_unit_test(reply_hostile_lengths),
		cmocka_unit_test(reply_too_many_lines),
		cmocka_unit_test(reply_text_truncated_not_failed),
		cmocka_unit_test(reply_nul_kept_as_question_mark),
		cmocka_unit_test(ehlo_keywords),
		cmocka_unit_test(ehlo_greeting_line_is_no_keyword),
		cmocka_unit_test(dot_encode_table),
		cmocka_unit_test(dot_encode_matches_reference),
		cmocka_unit_test(dot_finish_without_dot),
		cmocka_unit_test(defer_code_table),
		cmocka_unit_test(names_cover_every_value),
		cmocka_unit_test(log_order_groups_transactions),
		cmocka_unit_test(xtext_encode_table),
		cmocka_unit_test(xtext_encode_bounded),
		cmocka_unit_test(xtext_valid_table),
		cmocka_unit_test(ehlo_dsn_and_limits),
		cmocka_unit_test_setup_teardown(start_rejects_bad_arguments,
		    start_setup, start_teardown),
		cmocka_unit_test_setup_teardown(start_rejects_long_address,
		    start_setup, start_teardown),
		cmocka_unit_test_setup_teardown(start_checks_data_file,
		    start_setup, start_teardown),
#ifdef SLUICE_TEST_HOOKS
		cmocka_unit_test_setup_teardown(greeting_timeout_on_sluice_clock,
		    start_setup, start_teardown),
#endif
		cmocka_unit_test_setup_teardown(abort_before_start_frees_all,
		    start_setup, start_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

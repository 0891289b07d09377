/*
 * test_smtp_server.c - the pure parts of the SMTP server: command line
 * framing, MAIL/RCPT argument parsing, the DATA content reader (dot
 * unstuffing, smuggling detection, header/body split, size limit) and
 * the spooled form of a received message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "address.h"
#include "config.h"
#include "receive.h"
#include "smtp_reader.h"
#include "spool_header.h"
#include "util.h"

/* Command line framing */

static void
line_complete_and_partial(void **state)
{
	struct smtp_line_reader r = { 0 };
	size_t len, consumed;

	(void)state;
	assert_int_equal(smtp_line_next(&r, "NOOP\r\n", 6, SMTP_LINE_MAX, &len,
	    &consumed), SMTP_LINE_OK);
	assert_int_equal(len, 4);
	assert_int_equal(consumed, 6);

	assert_int_equal(smtp_line_next(&r, "NOOP", 4, SMTP_LINE_MAX, &len,
	    &consumed), SMTP_LINE_NONE);
	assert_int_equal(consumed, 0);
	assert_int_equal(smtp_line_next(&r, "NOOP\r", 5, SMTP_LINE_MAX, &len,
	    &consumed), SMTP_LINE_NONE);
	assert_int_equal(consumed, 0);
	assert_int_equal(smtp_line_next(&r, "", 0, SMTP_LINE_MAX, &len,
	    &consumed), SMTP_LINE_NONE);
}

static void
line_pipelined_in_order(void **state)
{
	const char *input = "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA";
	const char *want[] = { "EHLO a", "MAIL FROM:<a@b>", "RCPT TO:<c@d>" };
	struct smtp_line_reader r = { 0 };
	size_t off = 0, len, consumed;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(smtp_line_next(&r, input + off,
		    strlen(input + off), SMTP_LINE_MAX, &len, &consumed),
		    SMTP_LINE_OK);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(input + off, want[i], len);
		off += consumed;
	}
	assert_int_equal(smtp_line_next(&r, input + off, strlen(input + off),
	    SMTP_LINE_MAX, &len, &consumed), SMTP_LINE_NONE);
	assert_string_equal(input + off, "DA");
}

static void
line_bad_endings(void **state)
{
	static const struct {
		const char *input;
		size_t len;
		enum smtp_line_status want;
		size_t consumed;
	} cases[] = {
		{ "NOOP\n", 5, SMTP_LINE_BARE_LF, 5 },
		{ "\n", 1, SMTP_LINE_BARE_LF, 1 },
		{ "NOOP\nQUIT\r\n", 11, SMTP_LINE_BARE_LF, 5 },
		{ "NO\rOP\r\n", 7, SMTP_LINE_BARE_CR, 7 },
		{ "NOOP\r\r\n", 7, SMTP_LINE_BARE_CR, 7 },
		{ "NO\0OP\r\n", 7, SMTP_LINE_NUL, 7 },
		{ "\r\n", 2, SMTP_LINE_OK, 2 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct smtp_line_reader r = { 0 };
		size_t len, consumed;
		enum smtp_line_status got = smtp_line_next(&r, cases[i].input,
		    cases[i].len, SMTP_LINE_MAX, &len, &consumed);

		if (got != cases[i].want || consumed != cases[i].consumed)
			fail_msg("case %zu: got status %d consumed %zu, want %d "
			    "and %zu", i, got, consumed, cases[i].want,
			    cases[i].consumed);
	}
}

/* Frames a line of n bytes plus CRLF, fed in pieces of at most max
 * bytes as the server feeds it, and returns the status of the first
 * line reported. */
static enum smtp_line_status
frame_line_of(size_t n, size_t max, size_t *line_len)
{
	struct smtp_line_reader r = { 0 };
	size_t total = n + 2 + 6, off = 0, consumed;
	char *buf = malloc(total);
	enum smtp_line_status status;

	memset(buf, 'x', n);
	memcpy(buf + n, "\r\nNOOP\r\n", 8);
	for (;;) {
		size_t avail = total - off;
		size_t want = avail < max ? avail : max;

		status = smtp_line_next(&r, buf + off, want, max, line_len,
		    &consumed);
		off += consumed;
		if (status != SMTP_LINE_NONE)
			break;
		assert_true(consumed > 0);
	}
	/* Whatever happened, the next line is framed normally. */
	assert_int_equal(smtp_line_next(&r, buf + off, total - off, max,
	    line_len, &consumed), SMTP_LINE_OK);
	assert_int_equal(*line_len, 4);
	free(buf);
	return status;
}

static void
line_length_limits(void **state)
{
	static const struct {
		size_t n;
		enum smtp_line_status want;
	} cases[] = {
		{ 0, SMTP_LINE_OK },
		{ 1, SMTP_LINE_OK },
		{ SMTP_LINE_MAX - 2, SMTP_LINE_OK },	/* 512 with CRLF */
		{ SMTP_LINE_MAX - 1, SMTP_LINE_TOO_LONG },
		{ SMTP_LINE_MAX, SMTP_LINE_TOO_LONG },
		{ SMTP_LINE_MAX * 3, SMTP_LINE_TOO_LONG },
		{ 1000000, SMTP_LINE_TOO_LONG },
	};
	size_t len;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum smtp_line_status got = frame_line_of(cases[i].n,
		    SMTP_LINE_MAX, &len);

		if (got != cases[i].want)
			fail_msg("line of %zu bytes: got %d, want %d", cases[i].n,
			    got, cases[i].want);
	}
}

static void
line_max_is_capped(void **state)
{
	size_t len;

	(void)state;
	assert_int_equal(frame_line_of(SMTP_LINE_HARD_MAX - 2, 1000000, &len),
	    SMTP_LINE_OK);
	assert_int_equal(frame_line_of(SMTP_LINE_HARD_MAX - 1, 1000000, &len),
	    SMTP_LINE_TOO_LONG);
}

/* MAIL FROM and RCPT TO arguments */

static void
address_valid_paths(void **state)
{
	static const struct {
		const char *arg;
		enum address_role role;
		const char *address;
		const char *domain;
		const char *params;
	} cases[] = {
		{ "<alice@example.org>", ADDRESS_SENDER, "alice@example.org",
		    "example.org", "" },
		{ "<>", ADDRESS_SENDER, "", "", "" },
		{ "<> SIZE=10", ADDRESS_SENDER, "", "", "SIZE=10" },
		{ " <a@b.test>", ADDRESS_SENDER, "a@b.test", "b.test", "" },
		{ "a@b.test", ADDRESS_SENDER, "a@b.test", "b.test", "" },
		{ "a@b.test BODY=8BITMIME", ADDRESS_SENDER, "a@b.test", "b.test",
		    "BODY=8BITMIME" },
		{ "<a@b.test>  SIZE=100 BODY=7BIT", ADDRESS_SENDER, "a@b.test",
		    "b.test", "SIZE=100 BODY=7BIT" },
		{ "<@x.test,@y.test:a@b.test>", ADDRESS_RECIPIENT, "a@b.test",
		    "b.test", "" },
		{ "<postmaster>", ADDRESS_RECIPIENT, "postmaster", "", "" },
		{ "<PostMaster>", ADDRESS_RECIPIENT, "PostMaster", "", "" },
		{ "<\"a b\"@x.test>", ADDRESS_SENDER, "\"a b\"@x.test", "x.test",
		    "" },
		{ "<\"a\\\"b\"@x.test>", ADDRESS_SENDER, "\"a\\\"b\"@x.test",
		    "x.test", "" },
		{ "<a..b@local.test>", ADDRESS_RECIPIENT, "a..b@local.test",
		    "local.test", "" },
		{ "<first.last+tag@Sub-1.Example.COM>", ADDRESS_RECIPIENT,
		    "first.last+tag@Sub-1.Example.COM", "Sub-1.Example.COM", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct address_path path;
		const char *error = NULL;

		if (address_parse_path(cases[i].arg, cases[i].role, false, &path,
		    &error) != 0)
			fail_msg("\"%s\": got error \"%s\", want success",
			    cases[i].arg, error);
		assert_string_equal(path.address, cases[i].address);
		assert_string_equal(address_domain(&path), cases[i].domain);
		assert_string_equal(path.params, cases[i].params);
	}
}

static void
address_invalid_paths(void **state)
{
	static const struct {
		const char *arg;
		enum address_role role;
		const char *error;
	} cases[] = {
		{ "<>", ADDRESS_RECIPIENT, "empty address" },
		{ "", ADDRESS_SENDER, "empty address" },
		{ "<a>", ADDRESS_SENDER, "sender address must contain a domain" },
		{ "<a>", ADDRESS_RECIPIENT,
		    "recipient address must contain a domain" },
		{ "<postmaster>", ADDRESS_SENDER,
		    "sender address must contain a domain" },
		{ "<a@>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<@b.test>", ADDRESS_SENDER, "no local part" },
		{ "<@b.test:>", ADDRESS_SENDER, "empty address" },
		{ "<@b_x:a@b.test>", ADDRESS_SENDER, "malformed source route" },
		{ "<a@b..test>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<a@b.test.>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<a@-b.test>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<a@b-.test>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<a@b_c.test>", ADDRESS_SENDER, "domain missing or malformed" },
		{ "<a@[192.0.2.1]>", ADDRESS_SENDER, "domain literals not allowed" },
		{ "<a\"b@x.test>", ADDRESS_SENDER, "malformed address" },
		{ "<a b@x.test>", ADDRESS_SENDER, "malformed address" },
		{ "<\"a b@x.test>", ADDRESS_SENDER,
		    "unmatched doublequote in local part" },
		{ "<\"a\\\"@x.test>", ADDRESS_SENDER,
		    "unmatched doublequote in local part" },
		{ "<a@b.test", ADDRESS_SENDER, "'>' missing at end of address" },
		{ "a@b.test>", ADDRESS_SENDER, "'>' without a matching '<'" },
		{ "<a@b.test>x", ADDRESS_SENDER, "malformed address" },
		{ "<\xc3\xa9@x.test>", ADDRESS_SENDER,
		    "8-bit characters are not allowed without SMTPUTF8" },
		{ "<a@\xc3\xa9.test>", ADDRESS_SENDER,
		    "8-bit characters are not allowed without SMTPUTF8" },
		{ "<\"\xc3\xa9\"@x.test>", ADDRESS_SENDER,
		    "8-bit characters are not allowed without SMTPUTF8" },
		{ "<a\x01b@x.test>", ADDRESS_SENDER,
		    "control characters are not allowed in an address" },
		{ "<\"a\tb\"@x.test>", ADDRESS_SENDER,
		    "control characters are not allowed in an address" },
		{ "<\"a\\\x7f\"@x.test>", ADDRESS_SENDER,
		    "control characters are not allowed in an address" },
		{ "<a@b.test\x1b>", ADDRESS_SENDER,
		    "control characters are not allowed in an address" },
		{ "<a@[192.0.2.1>", ADDRESS_RECIPIENT,
		    "domain literals not allowed" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct address_path path;
		const char *error = NULL;

		if (address_parse_path(cases[i].arg, cases[i].role, false, &path,
		    &error) != -1)
			fail_msg("\"%s\": parsed as \"%s\", want error \"%s\"",
			    cases[i].arg, path.address, cases[i].error);
		if (strcmp(error, cases[i].error) != 0)
			fail_msg("\"%s\": got error \"%s\", want \"%s\"",
			    cases[i].arg, error, cases[i].error);
	}
}

/* Parses arg as a sender and returns the error, or NULL on success. */
static const char *
parse_sender(const char *arg)
{
	struct address_path path;
	const char *error = NULL;

	return address_parse_path(arg, ADDRESS_SENDER, false, &path,
	    &error) == 0 ? NULL : error;
}

static void
address_length_limits(void **state)
{
	char arg[1024], local[ADDRESS_LOCAL_PART_MAX + 2];
	char label[ADDRESS_LABEL_MAX + 2], domain[ADDRESS_DOMAIN_MAX + 2];
	struct address_path path;
	const char *error;

	(void)state;
	memset(local, 'l', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	memset(label, 'a', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';

	/* 64 octets of local part, 63 of a label (RFC 5321 4.5.3.1). */
	snprintf(arg, sizeof(arg), "<%.64s@x.test>", local);
	assert_null(parse_sender(arg));
	snprintf(arg, sizeof(arg), "<%.65s@x.test>", local);
	assert_string_equal(parse_sender(arg),
	    "local part longer than 64 characters");
	snprintf(arg, sizeof(arg), "<\"%.62s\"@x.test>", local);
	assert_null(parse_sender(arg));
	snprintf(arg, sizeof(arg), "<\"%.63s\"@x.test>", local);
	assert_string_equal(parse_sender(arg),
	    "local part longer than 64 characters");
	snprintf(arg, sizeof(arg), "<a@%.63s.test>", label);
	assert_null(parse_sender(arg));
	snprintf(arg, sizeof(arg), "<a@%.64s.test>", label);
	assert_string_equal(parse_sender(arg),
	    "a domain label is longer than 63 characters");

	/* 254 bytes of address is the most a 256-byte path holds. */
	snprintf(domain, sizeof(domain), "%.63s.%.63s.%.56s.test", label, label,
	    label);
	snprintf(arg, sizeof(arg), "<%.64s@%s>", local, domain);
	assert_int_equal(address_parse_path(arg, ADDRESS_SENDER, false, &path,
	    &error), 0);
	assert_int_equal(strlen(path.address), ADDRESS_MAX);
	snprintf(arg, sizeof(arg), "<%.64s@a%s>", local, domain);
	assert_int_equal(address_parse_path(arg, ADDRESS_SENDER, false, &path,
	    &error), -1);
	assert_string_equal(error, "address too long");
	/* The error reply's copy of the address is cut to fit. */
	assert_int_equal(strlen(path.address), ADDRESS_MAX);

	/* However long the argument, the result stays in bounds. */
	memset(arg, 'x', sizeof(arg) - 1);
	arg[0] = '<';
	arg[sizeof(arg) - 1] = '\0';
	assert_string_equal(parse_sender(arg), "'>' missing at end of address");
}

static void
address_literals(void **state)
{
	static const struct {
		const char *arg;
		const char *error;	/* NULL: accepted */
	} cases[] = {
		{ "<a@[192.0.2.1]>", NULL },
		{ "<a@[IPv6:2001:db8::1]>", NULL },
		{ "<a@[ipv6:::1]>", NULL },
		{ "<a@[IPv6:::ffff:192.0.2.1]>", NULL },
		{ "<a@[192.0.2.1]> SIZE=10", NULL },
		{ "<a@[192.0.2]>", "malformed domain literal" },
		{ "<a@[192.0.2.256]>", "malformed domain literal" },
		{ "<a@[2001:db8::1]>", "malformed domain literal" },
		{ "<a@[IPv6:2001:db8::g]>", "malformed domain literal" },
		{ "<a@[tag:content]>", "malformed domain literal" },
		{ "<a@[]>", "malformed domain literal" },
		{ "<a@[192.0.2.1>", "malformed domain literal" },
		{ "<a@[192.0.2.1]x>", "domain missing or malformed" },
		{ "<a@[192.0.2.1].test>", "domain missing or malformed" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct address_path path;
		const char *error = NULL;
		int rc = address_parse_path(cases[i].arg, ADDRESS_RECIPIENT, true,
		    &path, &error);

		if (cases[i].error == NULL && rc != 0)
			fail_msg("\"%s\": got error \"%s\", want success",
			    cases[i].arg, error);
		if (cases[i].error != NULL && (rc == 0 ||
		    strcmp(error, cases[i].error) != 0))
			fail_msg("\"%s\": got \"%s\", want error \"%s\"",
			    cases[i].arg, rc == 0 ? "success" : error,
			    cases[i].error);
	}
	/* Without allow_domain_literals every literal is refused alike. */
	assert_string_equal(parse_sender("<a@[IPv6:::1]>"),
	    "domain literals not allowed");
}

static void
address_local_part_unquoted(void **state)
{
	static const struct {
		const char *arg;
		const char *local_part;
	} cases[] = {
		{ "<user@x.test>", "user" },
		{ "<\"a b\"@x.test>", "a b" },
		{ "<\"a\\\"b\"@x.test>", "a\"b" },
		{ "<\"user@outside.test\"@x.test>", "user@outside.test" },
		{ "<\"\\.a\"@x.test>", ".a" },
		{ "<user%outside.test@x.test>", "user%outside.test" },
		{ "<postmaster>", "postmaster" },
		{ "<>", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct address_path path;
		const char *error = NULL;
		char buf[ADDRESS_SIZE];

		/* "<postmaster>" is a recipient only, "<>" a sender only. */
		if (address_parse_path(cases[i].arg, ADDRESS_RECIPIENT, false,
		    &path, &error) != 0 && address_parse_path(cases[i].arg,
		    ADDRESS_SENDER, false, &path, &error) != 0)
			fail_msg("\"%s\": got error \"%s\"", cases[i].arg, error);
		address_local_part(&path, buf, sizeof(buf));
		if (strcmp(buf, cases[i].local_part) != 0)
			fail_msg("\"%s\": got local part \"%s\", want \"%s\"",
			    cases[i].arg, buf, cases[i].local_part);
	}
}

static void
address_error_copy_is_printable(void **state)
{
	struct address_path path;
	const char *error;

	(void)state;
	assert_int_equal(address_parse_path("<a\x01\x7f@x.test> SIZE=1",
	    ADDRESS_SENDER, false, &path, &error), -1);
	assert_string_equal(path.address, "a??@x.test");
}

static void
address_params(void **state)
{
	char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1];
	char value[ADDRESS_PARAM_VALUE_MAX + 1];
	char long_param[ADDRESS_PARAM_VALUE_MAX + 16];
	const char *p = "SIZE=100 BODY=8BITMIME  X-FLAG";
	static const char *const bad[] = {
		"=x", "SIZE=", "SIZE==1", "-X=1", "SIZE=1=2", "SI\x01ZE=1",
		"SIZE=a\x80",
	};

	(void)state;
	assert_int_equal(address_param_next(&p, keyword, value), 1);
	assert_string_equal(keyword, "SIZE");
	assert_string_equal(value, "100");
	assert_int_equal(address_param_next(&p, keyword, value), 1);
	assert_string_equal(keyword, "BODY");
	assert_string_equal(value, "8BITMIME");
	assert_int_equal(address_param_next(&p, keyword, value), 1);
	assert_string_equal(keyword, "X-FLAG");
	assert_string_equal(value, "");
	assert_int_equal(address_param_next(&p, keyword, value), 0);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *q = bad[i];

		if (address_param_next(&q, keyword, value) != -1)
			fail_msg("parameter \"%s\" accepted", bad[i]);
		assert_ptr_equal(q, bad[i]);
	}

	snprintf(long_param, sizeof(long_param), "X=%0*d",
	    ADDRESS_PARAM_VALUE_MAX + 1, 0);
	p = long_param;
	assert_int_equal(address_param_next(&p, keyword, value), -1);
	snprintf(long_param, sizeof(long_param), "%0*d=1",
	    ADDRESS_PARAM_KEYWORD_MAX + 1, 0);
	p = long_param;
	assert_int_equal(address_param_next(&p, keyword, value), -1);
}

/* DATA content */

struct data_result {
	enum smtp_data_error error;
	bool done;
	size_t consumed;
	char *headers;
	char body[4096];
	size_t body_len;
	struct smtp_data_reader reader;	/* counters, headers freed */
};

struct body_sink {
	char *buf;
	size_t len;
	size_t size;
	int fail_after;		/* fail on this call (1-based), 0 never */
	int calls;
};

static int
sink_write(void *arg, const char *buf, size_t len)
{
	struct body_sink *sink = arg;

	if (sink->fail_after != 0 && ++sink->calls >= sink->fail_after)
		return -1;
	assert_true(sink->len + len <= sink->size);
	memcpy(sink->buf + sink->len, buf, len);
	sink->len += len;
	return 0;
}

/* Feeds input[0..len) in chunks of chunk bytes (0: all at once) and
 * stops at the end of the content. */
static void
read_content(const char *input, size_t len, size_t chunk, uint64_t limit,
    struct data_result *out)
{
	struct body_sink sink = { .buf = out->body, .size = sizeof(out->body) };
	struct smtp_data_reader *r = &out->reader;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	sink.buf = out->body;
	smtp_data_init(r);
	r->size_limit = limit;
	r->write = sink_write;
	r->write_arg = &sink;
	while (off < len && !r->done) {
		size_t n = chunk == 0 || len - off < chunk ? len - off : chunk;
		size_t used = smtp_data_feed(r, input + off, n);

		assert_true(used <= n);
		off += used;
		if (used < n)
			assert_true(r->done);
	}
	out->error = r->error;
	out->done = r->done;
	out->consumed = off;
	out->headers = xstrdup(r->headers != NULL ? r->headers : "");
	assert_int_equal(strlen(out->headers), r->headers_len);
	out->body_len = sink.len;
	smtp_data_free(r);
}

/* Reads input whole and in every chunk size from 1 to 7, and checks
 * that each way gives the same result. After an error, how much body
 * was written before it depends on the chunks, so only a message
 * without error has its body compared. */
static void
read_content_all_ways(const char *input, size_t len, uint64_t limit,
    struct data_result *out)
{
	struct data_result other;

	read_content(input, len, 0, limit, out);
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		read_content(input, len, chunk, limit, &other);
		if (other.error != out->error || other.done != out->done ||
		    other.consumed != out->consumed ||
		    (out->error == SMTP_DATA_OK &&
		    (strcmp(other.headers, out->headers) != 0 ||
		    other.body_len != out->body_len ||
		    memcmp(other.body, out->body, out->body_len) != 0)))
			fail_msg("chunks of %zu bytes read \"%s\" differently",
			    chunk, input);
		free(other.headers);
	}
}

static void
data_cases(void **state)
{
	static const struct {
		const char *input;		/* up to and past the end */
		const char *headers;
		const char *body;
		size_t rest;			/* bytes left after the end */
	} cases[] = {
		{ "Subject: a\r\n\r\nbody\r\n.\r\n", "Subject: a\n", "body\n", 0 },
		/* Dot-stuffing removed; a lone dot inside a line stays. */
		{ "S: a\r\n\r\n..dot\r\n.x\r\na.\r\n...\r\n.\r\n", "S: a\n",
		    ".dot\nx\na.\n..\n", 0 },
		/* Pipelined commands after the end are left unread. */
		{ "S: a\r\n\r\nb\r\n.\r\nQUIT\r\n", "S: a\n", "b\n", 6 },
		/* A bare LF is content, and so is a bare CR. */
		{ "S: a\r\n\r\nline1\nline2\r\nx\ry\r\n.\r\n", "S: a\n",
		    "line1\nline2\nx\ry\n", 0 },
		/* After a bare LF a dot is not stuffing. */
		{ "S: a\r\n\r\nx\n.y\r\n.\r\n", "S: a\n", "x\n.y\n", 0 },
		/* A line that is not a field starts the body, no blank line. */
		{ "Subject: x\r\nnot a header\r\nmore\r\n.\r\n", "Subject: x\n",
		    "not a header\nmore\n", 0 },
		{ "Subject: y\r\n X-cont\r\n\tcont2\r\nFrom: a\r\n.\r\n",
		    "Subject: y\n X-cont\n\tcont2\nFrom: a\n", "", 0 },
		{ "Subject : spaced\r\n\r\nb\r\n.\r\n", "Subject : spaced\n",
		    "b\n", 0 },
		{ "\r\nbody only\r\n.\r\n", "", "body only\n", 0 },
		{ " folded first\r\n.\r\n", "", " folded first\n", 0 },
		{ ":no name\r\n.\r\n", "", ":no name\n", 0 },
		{ "From me\r\n.\r\n", "", "From me\n", 0 },
		{ ".\r\n", "", "", 0 },
		{ "\r\n.\r\n", "", "", 0 },
		{ "S: a\r\n\r\n\r\n\r\n.\r\n", "S: a\n", "\n\n", 0 },
	};
	struct data_result r;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = strlen(cases[i].input);

		read_content_all_ways(cases[i].input, len, 0, &r);
		if (r.error != SMTP_DATA_OK || !r.done)
			fail_msg("case %zu: error %d done %d", i, r.error, r.done);
		assert_string_equal(r.headers, cases[i].headers);
		if (r.body_len != strlen(cases[i].body) ||
		    memcmp(r.body, cases[i].body, r.body_len) != 0)
			fail_msg("case %zu: got body \"%.*s\", want \"%s\"", i,
			    (int)r.body_len, r.body, cases[i].body);
		assert_int_equal(len - r.consumed, cases[i].rest);
		free(r.headers);
	}
}

static void
data_smuggling_forms(void **state)
{
	/* Each hides a second transaction behind a dot line with a bare
	 * line end; the real end follows. */
	static const char *const forms[] = {
		"S: a\r\n\r\nx\n.\nMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\r.\rMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\n.\r\nMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\r\n.\nMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\r.\nMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\n.\rMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\nx\r\n.\rMAIL FROM:<e@vil>\r\n.\r\n",
		".\nMAIL FROM:<e@vil>\r\n.\r\n",
		"S: a\r\n\r\n.\r\r\n.\r\n",
	};
	struct data_result r;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		size_t len = strlen(forms[i]);

		read_content_all_ways(forms[i], len, 0, &r);
		if (r.error != SMTP_DATA_SMUGGLING)
			fail_msg("form %zu: got error %d, want smuggling", i,
			    r.error);
		/* The reader went on to the real end, and no further. */
		assert_true(r.done);
		assert_int_equal(r.consumed, len);
		free(r.headers);
	}
}

static void
data_smuggling_does_not_end_early(void **state)
{
	const char *input = "S: a\r\n\r\nx\n.\nQUIT\n";
	struct data_result r;

	(void)state;
	read_content_all_ways(input, strlen(input), 0, &r);
	assert_int_equal(r.error, SMTP_DATA_SMUGGLING);
	assert_false(r.done);
	assert_int_equal(r.consumed, strlen(input));
	free(r.headers);
}

static void
data_size_limit(void **state)
{
	/* With LF line ends: 11 bytes of header, a blank line and 21 of
	 * body, 33 in all. */
	const char *input = "Subject: x\r\n\r\n0123456789\r\n012345678\r\n.\r\n";
	struct data_result r;

	(void)state;
	read_content_all_ways(input, strlen(input), 33, &r);
	assert_int_equal(r.error, SMTP_DATA_OK);
	assert_int_equal(r.reader.size, 33);
	free(r.headers);

	read_content_all_ways(input, strlen(input), 32, &r);
	assert_int_equal(r.error, SMTP_DATA_TOO_BIG);
	assert_true(r.done);
	assert_int_equal(r.consumed, strlen(input));
	/* Counting goes on to the end, for the log line, but nothing more
	 * is written. */
	assert_int_equal(r.reader.size, 33);
	assert_true(r.body_len < 21);
	free(r.headers);
}

static void
data_counters(void **state)
{
	/* The message Exim 4.96 spooled with -body_linecount 2 and
	 * -max_received_linelength 18. */
	const char *input = "Subject: t\r\nFrom: alice@a.test\r\n\r\n"
	    "hello\r\n..dot\r\n.\r\n";
	const char zeros[] = "S: a\r\n\r\na\0b\0\r\n.\r\n";
	struct data_result r;

	(void)state;
	read_content_all_ways(input, strlen(input), 0, &r);
	assert_int_equal(r.reader.body_lines, 2);
	assert_int_equal(r.reader.max_line_len, 18);
	assert_int_equal(r.reader.body_size, strlen("hello\n.dot\n"));
	assert_int_equal(r.reader.body_zeros, 0);
	free(r.headers);

	read_content_all_ways(zeros, sizeof(zeros) - 1, 0, &r);
	assert_int_equal(r.reader.body_zeros, 2);
	assert_int_equal(r.body_len, 5);
	free(r.headers);
}

/* Builds a header section of count fields named name, then the end. */
static char *
many_fields(const char *name, int count)
{
	size_t size = (size_t)count * (strlen(name) + 8) + 16;
	char *buf = malloc(size);
	size_t off = 0;

	for (int i = 0; i < count; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s: x\r\n", name);
	snprintf(buf + off, size - off, "\r\n.\r\n");
	return buf;
}

static void
data_received_loop(void **state)
{
	struct data_result r;
	char *ok = many_fields("Received", SMTP_RECEIVED_MAX);
	char *loop = many_fields("received", SMTP_RECEIVED_MAX + 1);

	(void)state;
	read_content(ok, strlen(ok), 0, 0, &r);
	assert_int_equal(r.error, SMTP_DATA_OK);
	assert_int_equal(r.reader.received_count, SMTP_RECEIVED_MAX);
	free(r.headers);
	read_content(loop, strlen(loop), 0, 0, &r);
	assert_int_equal(r.error, SMTP_DATA_LOOP);
	assert_true(r.done);
	free(r.headers);
	free(ok);
	free(loop);
}

/* Reads input in one piece with the given header bounds (0 keeps the
 * default) and returns the error latched. The reader must reach the end
 * of the content whatever the error. */
static enum smtp_data_error
read_with_bounds(const char *input, size_t header_max, size_t line_max,
    unsigned fields_max)
{
	char body[64];
	struct body_sink sink = { .buf = body, .size = sizeof(body) };
	struct smtp_data_reader r;
	enum smtp_data_error error;
	size_t len = strlen(input);

	smtp_data_init(&r);
	r.write = sink_write;
	r.write_arg = &sink;
	if (header_max > 0)
		r.header_max = header_max;
	if (line_max > 0)
		r.header_line_max = line_max;
	if (fields_max > 0)
		r.header_fields_max = fields_max;
	assert_int_equal(smtp_data_feed(&r, input, len), len);
	assert_true(r.done);
	/* Memory stays within the section bound, whatever was sent. */
	assert_true(r.headers_len <= r.header_max);
	error = r.error;
	smtp_data_free(&r);
	return error;
}

static void
data_header_bounds(void **state)
{
	struct data_result r;
	char *fields = many_fields("X-Many", SMTP_HEADER_FIELDS_MAX + 1);
	size_t big_len = SMTP_HEADER_BYTES_MAX + 64;
	char *big = malloc(big_len + 8);

	(void)state;
	read_content(fields, strlen(fields), 0, 0, &r);
	assert_int_equal(r.error, SMTP_DATA_HEADER_TOO_BIG);
	assert_true(r.done);
	free(r.headers);

	/* One field larger than the whole header bound. */
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'y', big_len - 7);
	memcpy(big + big_len, "\r\n.\r\n", 6);
	read_content(big, strlen(big), 0, 0, &r);
	assert_int_equal(r.error, SMTP_DATA_HEADER_LINE_TOO_LONG);
	assert_true(r.done);
	assert_true(strlen(r.headers) <= SMTP_HEADER_FIELD_MAX);
	free(r.headers);
	free(fields);
	free(big);

	/* Each bound on its own, at and just past its value. "A: 12\n" is
	 * 6 bytes with LF line ends. */
	assert_int_equal(read_with_bounds("A: 12\r\nB: 34\r\n\r\n.\r\n", 12, 0,
	    0), SMTP_DATA_OK);
	assert_int_equal(read_with_bounds("A: 12\r\nB: 345\r\n\r\n.\r\n", 12, 0,
	    0), SMTP_DATA_HEADER_TOO_BIG);
	assert_int_equal(read_with_bounds("A: 12\r\n\r\n.\r\n", 0, 6, 0),
	    SMTP_DATA_OK);
	assert_int_equal(read_with_bounds("A: 123\r\n\r\n.\r\n", 0, 6, 0),
	    SMTP_DATA_HEADER_LINE_TOO_LONG);
	/* Continuation lines belong to their field (Exim's
	 * header_line_maxsize counts the field unfolded). */
	assert_int_equal(read_with_bounds("A: 1\r\n 2\r\nB: 3\r\n\r\n.\r\n", 0,
	    8, 0), SMTP_DATA_OK);
	assert_int_equal(read_with_bounds("A: 1\r\n 23\r\nB: 3\r\n\r\n.\r\n", 0,
	    8, 0), SMTP_DATA_HEADER_LINE_TOO_LONG);
	assert_int_equal(read_with_bounds("A: 1\r\nB: 2\r\n\r\n.\r\n", 0, 0, 2),
	    SMTP_DATA_OK);
	assert_int_equal(read_with_bounds("A: 1\r\nB: 2\r\nC: 3\r\n\r\n.\r\n", 0,
	    0, 2), SMTP_DATA_HEADER_TOO_BIG);
}

static void
data_write_failure_latches(void **state)
{
	struct body_sink sink = { 0 };
	struct smtp_data_reader r;
	char body[3 * SMTP_DATA_STAGE_SIZE];
	char sink_buf[16];

	(void)state;
	memset(body, 'z', sizeof(body));
	sink.buf = sink_buf;
	sink.size = sizeof(sink_buf);
	sink.fail_after = 1;
	smtp_data_init(&r);
	r.write = sink_write;
	r.write_arg = &sink;
	smtp_data_feed(&r, "\r\n", 2);
	smtp_data_feed(&r, body, sizeof(body));
	smtp_data_feed(&r, "\r\n.\r\n", 5);
	assert_int_equal(r.error, SMTP_DATA_WRITE_FAILED);
	assert_true(r.done);
	/* No write after the failure. */
	assert_int_equal(sink.calls, 1);
	smtp_data_free(&r);
}

/* The spooled message */

static void
use_zone(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static void
date_format(void **state)
{
	struct timeval tv = { .tv_sec = 1741944413, .tv_usec = 412345 };
	char date[RECEIVE_DATE_SIZE];

	(void)state;
	use_zone("UTC0");
	receive_format_date(&tv, date);
	assert_string_equal(date, "Fri, 14 Mar 2025 09:26:53 +0000");
	use_zone("EST5");
	receive_format_date(&tv, date);
	assert_string_equal(date, "Fri, 14 Mar 2025 04:26:53 -0500");
	use_zone("IST-5:30");
	receive_format_date(&tv, date);
	assert_string_equal(date, "Fri, 14 Mar 2025 14:56:53 +0530");
	use_zone("UTC0");
}

static void
test_message(struct receive_message *m, const char *headers,
    const char *const *recipients, size_t count)
{
	memset(m, 0, sizeof(*m));
	m->id = "1tt1Jd-00000000CXd-1jGj";
	m->sender = "alice@example.org";
	m->recipients = recipients;
	m->recipient_count = count;
	m->helo = "client.example";
	m->host_ip = "192.0.2.17";
	m->host_port = 53122;
	m->interface_ip = "198.51.100.5";
	m->interface_port = 25;
	m->protocol = "esmtp";
	m->login = "sluice";
	m->uid = 101;
	m->gid = 103;
	m->received.tv_sec = 1741944413;
	m->received.tv_usec = 412345;
	m->completed.tv_sec = 1741944413;
	m->completed.tv_usec = 498120;
	m->headers = headers;
	m->headers_len = strlen(headers);
	m->body_size = 6;
	m->body_lines = 1;
	m->max_line_len = 18;
}

static void
spooled_header_shape(void **state)
{
	static const char *const one[] = { "bob@example.net" };
	struct config config = { .primary_hostname = (char *)"mx.example.net" };
	struct receive_message m;
	struct spool_header h = { 0 };
	char *error = NULL;
	char *want;

	(void)state;
	use_zone("UTC0");
	test_message(&m, "Subject: t\nFrom: alice@example.org\nTo: bob\n"
	    " (folded)\n", one, 1);
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);

	assert_string_equal(h.id, m.id);
	assert_string_equal(h.sender, "alice@example.org");
	assert_string_equal(h.helo_name, "client.example");
	assert_true(h.tainted & SPOOL_TAINT_HELO_NAME);
	assert_string_equal(h.host_address, "192.0.2.17");
	assert_int_equal(h.host_port, 53122);
	assert_string_equal(h.received_protocol, "esmtp");
	assert_int_equal(h.body_linecount, 1);
	assert_int_equal(h.max_received_linelength, 18);
	assert_true(h.deliver_firsttime);
	assert_int_equal(h.recipients_count, 1);
	assert_string_equal(h.recipients[0].address, "bob@example.net");

	assert_int_equal(h.fields_count, 4);
	want = xasprintf("Received: from [192.0.2.17] (helo=client.example)\n"
	    "\tby mx.example.net with esmtp (sluice %s)\n"
	    "\t(envelope-from <alice@example.org>)\n"
	    "\tid 1tt1Jd-00000000CXd-1jGj\n"
	    "\tfor bob@example.net;\n"
	    "\tFri, 14 Mar 2025 09:26:53 +0000\n", PACKAGE_VERSION);
	assert_int_equal(h.fields[0].flag, SPOOL_FIELD_RECEIVED);
	assert_string_equal(h.fields[0].text, want);
	assert_int_equal(h.fields[1].flag, SPOOL_FIELD_OTHER);
	assert_string_equal(h.fields[1].text, "Subject: t\n");
	assert_int_equal(h.fields[2].flag, SPOOL_FIELD_FROM);
	assert_int_equal(h.fields[3].flag, SPOOL_FIELD_TO);
	assert_string_equal(h.fields[3].text, "To: bob\n (folded)\n");

	/* S= counts every live field, the body and one more byte. */
	assert_int_equal(receive_message_size(&h, m.body_size),
	    strlen(want) + strlen("Subject: t\nFrom: alice@example.org\n"
	    "To: bob\n (folded)\n") + 6 + 1);
	free(want);
	spool_header_free(&h);
}

static void
received_variants(void **state)
{
	static const char *const two[] = { "a@example.net", "b@example.net" };
	struct config config = { .primary_hostname = (char *)"mx.example.net" };
	struct receive_message m;
	struct spool_header h = { 0 };
	char *error = NULL;
	char *want;

	(void)state;
	use_zone("UTC0");
	/* Null sender, two recipients, a verified host name. */
	test_message(&m, "", two, 2);
	m.sender = "";
	m.host_name = "mail.example.org";
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);
	want = xasprintf("Received: from mail.example.org ([192.0.2.17] "
	    "helo=client.example)\n"
	    "\tby mx.example.net with esmtp (sluice %s)\n"
	    "\tid 1tt1Jd-00000000CXd-1jGj;\n"
	    "\tFri, 14 Mar 2025 09:26:53 +0000\n", PACKAGE_VERSION);
	assert_int_equal(h.fields_count, 1);
	assert_string_equal(h.fields[0].text, want);
	assert_string_equal(h.sender, "");
	free(want);
	spool_header_free(&h);

	/* The HELO name is left out when it is the verified name. */
	test_message(&m, "", two, 2);
	m.host_name = "client.example";
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);
	assert_non_null(strstr(h.fields[0].text,
	    "Received: from client.example ([192.0.2.17])\n"));
	spool_header_free(&h);
}

static void
local_fixups_only_when_missing(void **state)
{
	static const char *const one[] = { "bob@example.net" };
	struct config config = { .primary_hostname = (char *)"mx.example.net" };
	struct receive_message m;
	struct spool_header h = { 0 };
	char *error = NULL;

	(void)state;
	use_zone("UTC0");
	test_message(&m, "Subject: t\n", one, 1);
	m.local = true;
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);
	assert_int_equal(h.fields_count, 4);
	assert_int_equal(h.fields[2].flag, SPOOL_FIELD_MESSAGE_ID);
	assert_string_equal(h.fields[2].text,
	    "Message-Id: <E1tt1Jd-00000000CXd-1jGj@mx.example.net>\n");
	assert_string_equal(h.fields[3].text,
	    "Date: Fri, 14 Mar 2025 09:26:53 +0000\n");
	spool_header_free(&h);

	test_message(&m, "message-id: <x@y>\nDATE: today\n", one, 1);
	m.local = true;
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);
	assert_int_equal(h.fields_count, 3);
	spool_header_free(&h);

	/* Remote mail is left as sent. */
	test_message(&m, "Subject: t\n", one, 1);
	assert_int_equal(receive_build_header(&config, &m, &h, &error), 0);
	assert_int_equal(h.fields_count, 2);
	spool_header_free(&h);
}

static void
overlong_field_is_refused(void **state)
{
	static const char *const one[] = { "bob@example.net" };
	struct config config = { .primary_hostname = (char *)"mx.example.net" };
	size_t len = SPOOL_HEADER_FIELD_MAX + 10;
	char *headers = malloc(len + 1);
	struct receive_message m;
	struct spool_header h = { 0 };
	char *error = NULL;

	(void)state;
	memcpy(headers, "X-Big: ", 7);
	memset(headers + 7, 'y', len - 8);
	headers[len - 1] = '\n';
	headers[len] = '\0';
	test_message(&m, headers, one, 1);
	assert_int_equal(receive_build_header(&config, &m, &h, &error), -1);
	assert_non_null(error);
	free(error);
	spool_header_free(&h);
	free(headers);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(line_complete_and_partial),
		cmocka_unit_test(line_pipelined_in_order),
		cmocka_unit_test(line_bad_endings),
		cmocka_unit_test(line_length_limits),
		cmocka_unit_test(line_max_is_capped),
		cmocka_unit_test(address_valid_paths),
		cmocka_unit_test(address_invalid_paths),
		cmocka_unit_test(address_length_limits),
		cmocka_unit_test(address_literals),
		cmocka_unit_test(address_local_part_unquoted),
		cmocka_unit_test(address_error_copy_is_printable),
		cmocka_unit_test(address_params),
		cmocka_unit_test(data_cases),
		cmocka_unit_test(data_smuggling_forms),
		cmocka_unit_test(data_smuggling_does_not_end_early),
		cmocka_unit_test(data_size_limit),
		cmocka_unit_test(data_counters),
		cmocka_unit_test(data_received_loop),
		cmocka_unit_test(data_header_bounds),
		cmocka_unit_test(data_write_failure_latches),
		cmocka_unit_test(date_format),
		cmocka_unit_test(spooled_header_shape),
		cmocka_unit_test(received_variants),
		cmocka_unit_test(local_fixups_only_when_missing),
		cmocka_unit_test(overlong_field_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

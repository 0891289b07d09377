/*
 * test_spool_header.c - the -H file: formatting byte for byte, round
 * trips with awkward data, hostile input and journal replay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool_header.h"
#include "util.h"

#define EXAMPLE_ID	"1tt1Jd-00000000CXd-1jGj"
#define EXAMPLE_FILE	"input/" EXAMPLE_ID "-H"

/* The layout Exim writes for a message received over TLS, with invented
 * data. */
static const char example_file[] =
	EXAMPLE_ID "-H\n"
	"Debian-exim 101 103\n"
	"<alice@example.org>\n"
	"1741944413 0\n"
	"-received_time_usec .412345\n"
	"-received_time_complete 1741944413.498120\n"
	"--helo_name mail.example.org\n"
	"-host_address [192.0.2.17]:53122\n"
	"-interface_address [198.51.100.5]:25\n"
	"-received_protocol esmtps\n"
	"-body_linecount 58\n"
	"-max_received_linelength 76\n"
	"-deliver_firsttime\n"
	"-tls_cipher TLS1.3:TLS_AES_256_GCM_SHA384:256\n"
	"-tls_resumption A\n"
	"YN bob@example.net\n"
	"NN alice+copy@example.org\n"
	"3\n"
	"bob@example.net\n"
	"carol@example.net\n"
	"alice+copy@example.org\n"
	"\n"
	"222P Received: from mail.example.org ([192.0.2.17] helo=mail.example.org)\n"
	"\tby mx1.example.net with esmtps (TLS1.3)\n"
	"\t(Exim 4.98)\n"
	"\t(envelope-from <alice@example.org>)\n"
	"\tid 1tt1Jd-00000000CXd-1jGj;\n"
	"\tFri, 14 Mar 2025 09:26:53 +0000\n"
	"040F From: Alice Example <alice@example.org>\n"
	"039T To: bob@example.net, carol@example.net\n"
	"021C Cc: team@example.org\n"
	"036R Reply-To: alice+replies@example.org\n"
	"027  Subject: Quarterly numbers\n"
	"035I Message-ID: <4f1c2a9e@example.org>\n"
	"038  Date: Fri, 14 Mar 2025 09:26:50 +0000\n"
	"017* X-Spam-Flag: YES\n"
	"018  MIME-Version: 1.0\n";

static void
add_text_field(struct spool_header *h, char flag, const char *text)
{
	spool_header_add_field(h, flag, text, strlen(text));
}

/* Builds the struct that example_file holds. */
static void
build_example(struct spool_header *h)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->id, EXAMPLE_ID);
	h->login = xstrdup("Debian-exim");
	h->uid = 101;
	h->gid = 103;
	h->sender = xstrdup("alice@example.org");
	h->received_time = 1741944413;
	h->received_time_usec = 412345;
	h->received_time_complete = 1741944413;
	h->received_time_complete_usec = 498120;
	h->helo_name = xstrdup("mail.example.org");
	h->tainted = SPOOL_TAINT_HELO_NAME;
	h->host_address = xstrdup("192.0.2.17");
	h->host_port = 53122;
	h->interface_address = xstrdup("198.51.100.5");
	h->interface_port = 25;
	h->received_protocol = xstrdup("esmtps");
	h->body_linecount = 58;
	h->max_received_linelength = 76;
	h->deliver_firsttime = true;
	h->tls_cipher = xstrdup("TLS1.3:TLS_AES_256_GCM_SHA384:256");
	spool_header_add_unknown_option(h, "-tls_resumption A");
	spool_header_mark_delivered(h, "bob@example.net");
	spool_header_mark_delivered(h, "alice+copy@example.org");
	spool_header_add_recipient(h, "bob@example.net");
	spool_header_add_recipient(h, "carol@example.net");
	spool_header_add_recipient(h, "alice+copy@example.org");
	add_text_field(h, SPOOL_FIELD_RECEIVED,
	    "Received: from mail.example.org ([192.0.2.17] "
	    "helo=mail.example.org)\n"
	    "\tby mx1.example.net with esmtps (TLS1.3)\n"
	    "\t(Exim 4.98)\n"
	    "\t(envelope-from <alice@example.org>)\n"
	    "\tid 1tt1Jd-00000000CXd-1jGj;\n"
	    "\tFri, 14 Mar 2025 09:26:53 +0000\n");
	add_text_field(h, SPOOL_FIELD_FROM,
	    "From: Alice Example <alice@example.org>\n");
	add_text_field(h, SPOOL_FIELD_TO,
	    "To: bob@example.net, carol@example.net\n");
	add_text_field(h, SPOOL_FIELD_CC, "Cc: team@example.org\n");
	add_text_field(h, SPOOL_FIELD_REPLY_TO,
	    "Reply-To: alice+replies@example.org\n");
	add_text_field(h, SPOOL_FIELD_OTHER, "Subject: Quarterly numbers\n");
	add_text_field(h, SPOOL_FIELD_MESSAGE_ID,
	    "Message-ID: <4f1c2a9e@example.org>\n");
	add_text_field(h, SPOOL_FIELD_OTHER,
	    "Date: Fri, 14 Mar 2025 09:26:50 +0000\n");
	add_text_field(h, SPOOL_FIELD_DELETED, "X-Spam-Flag: YES\n");
	add_text_field(h, SPOOL_FIELD_OTHER, "MIME-Version: 1.0\n");
}

/* Formats h, failing the test with the reason if it cannot. */
static char *
format_ok(const struct spool_header *h, size_t *len)
{
	char *error = NULL;
	char *out;

	if (spool_header_check(h, &error) != 0)
		fail_msg("spool_header_check: %s", error);
	out = spool_header_format(h, len);
	assert_non_null(out);
	assert_int_equal(out[*len], '\0');
	return out;
}

static void
parse_named_ok(const char *data, size_t len, const char *filename,
    struct spool_header *h)
{
	char *error = NULL;

	if (spool_header_parse(data, len, filename, h, &error) != 0)
		fail_msg("parse failed: %s", error);
	assert_null(error);
}

static void
parse_ok(const char *data, size_t len, struct spool_header *h)
{
	parse_named_ok(data, len, EXAMPLE_FILE, h);
}

/* Formats h, parses the result, and checks that the struct and a second
 * formatting come out the same. */
static void
assert_round_trip(const struct spool_header *h)
{
	struct spool_header back;
	size_t len, len2;
	char *out = format_ok(h, &len);
	char *filename = xasprintf("input/%s-H", h->id);
	char *out2;

	parse_named_ok(out, len, filename, &back);
	free(filename);
	assert_true(spool_header_equal(h, &back));
	out2 = format_ok(&back, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(out, out2, len);
	free(out);
	free(out2);
	spool_header_free(&back);
}

/* Parses data[0..len) from an exactly sized copy, so a sanitizer build
 * catches any read past the end, and expects an error containing want. */
static void
assert_parse_error(const char *data, size_t len, const char *want)
{
	struct spool_header h;
	char *copy = xmalloc(len > 0 ? len : 1);
	char *error = NULL;

	memcpy(copy, data, len);
	if (spool_header_parse(copy, len, EXAMPLE_FILE, &h, &error) == 0)
		fail_msg("parse accepted input, want error \"%s\"", want);
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("got error \"%s\", want one containing \"%s\"", error,
		    want);
	assert_int_equal(h.recipients_count, 0);
	assert_null(h.login);
	free(error);
	free(copy);
}

/* Replaces the first occurrence of from in example_file with to. */
static char *
example_with(const char *from, const char *to, size_t *len)
{
	const char *at = strstr(example_file, from);
	size_t head, tail;
	char *out;

	assert_non_null(at);
	head = (size_t)(at - example_file);
	tail = strlen(at + strlen(from));
	*len = head + strlen(to) + tail;
	out = xmalloc(*len + 1);
	memcpy(out, example_file, head);
	memcpy(out + head, to, strlen(to));
	memcpy(out + head + strlen(to), at + strlen(from), tail + 1);
	return out;
}

static void
example_error(const char *from, const char *to, const char *want)
{
	size_t len;
	char *data = example_with(from, to, &len);

	assert_parse_error(data, len, want);
	free(data);
}

static void
format_matches_exim_layout(void **state)
{
	struct spool_header h;
	size_t len;
	char *out;

	(void)state;
	build_example(&h);
	out = format_ok(&h, &len);
	assert_int_equal(len, strlen(example_file));
	assert_string_equal(out, example_file);
	free(out);
	spool_header_free(&h);
}

static void
parse_example_fields(void **state)
{
	struct spool_header h, want;

	(void)state;
	parse_ok(example_file, strlen(example_file), &h);
	assert_string_equal(h.id, EXAMPLE_ID);
	assert_string_equal(h.login, "Debian-exim");
	assert_int_equal(h.uid, 101);
	assert_string_equal(h.sender, "alice@example.org");
	assert_int_equal(h.host_port, 53122);
	assert_int_equal(h.tainted, SPOOL_TAINT_HELO_NAME);
	assert_int_equal(h.unknown_options_count, 1);
	assert_string_equal(h.unknown_options[0], "-tls_resumption A");
	assert_int_equal(h.recipients_count, 3);
	assert_int_equal(h.recipients[1].pno, -1);
	assert_true(spool_header_is_delivered(&h, "bob@example.net"));
	assert_true(spool_header_is_delivered(&h, "alice+copy@example.org"));
	assert_false(spool_header_is_delivered(&h, "carol@example.net"));
	assert_int_equal(h.fields_count, 10);
	assert_int_equal(h.fields[0].flag, SPOOL_FIELD_RECEIVED);
	assert_int_equal(h.fields[0].len, 222);
	/* Every live field counts, but X-Spam-Flag (17 bytes) is deleted. */
	assert_int_equal(spool_header_size(&h),
	    222 + 40 + 39 + 21 + 36 + 27 + 35 + 38 + 18);

	build_example(&want);
	assert_true(spool_header_equal(&h, &want));
	spool_header_free(&want);
	spool_header_free(&h);
}

/* Every option sluice models, to pin down the order they are written in. */
static void
format_every_option(void **state)
{
	static const char want_start[] =
		"1tsznP-000AfP-13-H\nroot 0 -1\n<>\n1700000000 2\n";
	static const char want_options[] =
		"-received_time_usec .000007\n"
		"-received_time_complete 1700000001.000002\n"
		"--helo_name helo.example\n"
		"--host_address [2001:db8::1]:587\n"
		"-host_name client.example\n"
		"-host_auth plain\n"
		"-interface_address [::1]:25\n"
		"-received_protocol esmtpsa\n"
		"-aclc 0 1\n"
		"x\n"
		"--aclm _sluice_class 11\n"
		"bulk\nletter\n"
		"-spool_file_wireformat\n"
		"-max_received_linelength 998\n"
		"-body_zerocount 3\n"
		"-auth_id alice\n"
		"-auth_sender alice@example.org\n"
		"-deliver_firsttime\n"
		"-frozen 1700000100\n"
		"-N\n"
		"-local\n"
		"-localerror\n"
		"-manual_thaw\n"
		"-sender_set_untrusted\n"
		"-tls_certificate_verified\n"
		"-tls_cipher TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128\n"
		"-ident alice\n"
		"-smtputf8\n"
		"-dsn_envid QQ314159\n"
		"-dsn_ret 2\n"
		"XX\n"
		"0\n"
		"\n";
	struct spool_header h = { 0 };
	struct spool_acl_var *var;
	const char *options;
	size_t len;
	char *out;

	(void)state;
	strcpy(h.id, "1tsznP-000AfP-13");
	h.login = xstrdup("root");
	h.uid = 0;
	h.gid = -1;
	h.received_time = 1700000000;
	h.warning_count = 2;
	h.received_time_usec = 7;
	h.received_time_complete = 1700000001;
	h.received_time_complete_usec = 2;
	h.helo_name = xstrdup("helo.example");
	h.host_address = xstrdup("2001:db8::1");
	h.host_port = 587;
	h.host_name = xstrdup("client.example");
	h.host_auth = xstrdup("plain");
	h.interface_address = xstrdup("::1");
	h.interface_port = 25;
	h.received_protocol = xstrdup("esmtpsa");
	h.body_linecount = 12;	/* not written with wire format */
	h.spool_file_wireformat = true;
	h.max_received_linelength = 998;
	h.body_zerocount = 3;
	h.auth_id = xstrdup("alice");
	h.auth_sender = xstrdup("alice@example.org");
	h.deliver_firsttime = true;
	h.frozen = true;
	h.frozen_at = 1700000100;
	h.dont_deliver = true;
	h.local = true;
	h.local_error = true;
	h.manual_thaw = true;
	h.sender_set_untrusted = true;
	h.tls_certificate_verified = true;
	h.tls_cipher = xstrdup("TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128");
	h.smtputf8 = true;
	h.dsn_envid = xstrdup("QQ314159");
	h.dsn_ret = 2;
	h.tainted = SPOOL_TAINT_HELO_NAME | SPOOL_TAINT_HOST_ADDRESS;
	assert_non_null(spool_header_set_acl(&h, "acl_c0", "x"));
	var = spool_header_set_acl(&h, SPOOL_ACL_CLASS, "bulk\nletter");
	assert_non_null(var);
	var->tainted = true;
	spool_header_add_unknown_option(&h, "-ident alice");

	out = format_ok(&h, &len);
	assert_memory_equal(out, want_start, strlen(want_start));
	options = out + strlen(want_start);
	assert_string_equal(options, want_options);
	free(out);

	/* The line count is dropped with the wire format, so compare after
	 * clearing it. */
	h.body_linecount = 0;
	assert_round_trip(&h);
	spool_header_free(&h);
}

/* A message with everything hard at once. */
static void
round_trip_awkward_data(void **state)
{
	static const char flags[] = " BCFIPRST*";
	struct spool_header h = { 0 };
	struct spool_recipient *r;
	char *folded, *text;
	size_t pos = 0;

	(void)state;
	strcpy(h.id, EXAMPLE_ID);
	h.login = xstrdup("a login with spaces 12");
	h.uid = INT64_MIN;
	h.gid = INT64_MAX;
	h.sender = xstrdup("");			/* a bounce: <> */
	h.received_time = 1741944413;
	h.helo_name = xstrdup("");		/* set, but empty */
	h.auth_sender = xstrdup("<we>ird \xc3\xa9 sender");
	spool_header_set_acl(&h, SPOOL_ACL_TENANT, "line one\nline two\n");
	spool_header_set_acl(&h, SPOOL_ACL_CAMPAIGN, "");
	spool_header_set_acl(&h, "acl_c_empty_lines", "\n\n\n");
	spool_header_add_unknown_option(&h, "--(quoted)future_option a b c");

	for (int i = 0; i < 1000; i++) {
		char address[64];

		snprintf(address, sizeof(address), "user%04d@example.%s", i,
		    i % 2 ? "net" : "org");
		r = spool_header_add_recipient(&h, address);
		if (i % 7 == 0) {
			r->orcpt = xasprintf("rfc822;user%04d 12,3 #3", i);
			r->dsn_flags = 0x19;
		}
		if (i % 11 == 0)
			r->errors_to = xstrdup("owner list@example.org");
		if (i % 13 == 0)
			r->pno = i / 13;
		if (i % 2 == 0)
			spool_header_mark_delivered(&h, address);
	}
	/* Plain forms that would be misread as extended ones. */
	spool_header_add_recipient(&h, "ends in hash#3");
	spool_header_add_recipient(&h, "ends in space 42");
	spool_header_add_recipient(&h, "ends in comma,7");
	spool_header_add_recipient(&h, "caf\xc3\xa9@\xe4\xbe\x8b.example");

	/* A long folded header with 8-bit bytes. */
	folded = xmalloc(60000);
	pos += (size_t)sprintf(folded, "References:");
	while (pos < 59000)
		pos += (size_t)sprintf(folded + pos,
		    " <id%zu.\xe2\x9c\x89@x>\n", pos);
	add_text_field(&h, SPOOL_FIELD_OTHER, folded);
	free(folded);
	for (size_t i = 0; flags[i] != '\0'; i++) {
		text = xasprintf("X-Flag-%c: value\n\twith a fold\n", flags[i]);
		add_text_field(&h, flags[i], text);
		free(text);
	}
	assert_round_trip(&h);
	spool_header_free(&h);
}

/* Writes trees of 0 to 20 nodes and reads them back. */
static void
round_trip_tree_sizes(void **state)
{
	(void)state;
	for (int n = 0; n <= 20; n++) {
		struct spool_header h, back;
		char key[32];
		size_t len;
		char *out;

		build_example(&h);
		for (size_t i = 0; i < h.nonrecipients_count; i++)
			free(h.nonrecipients[i]);
		h.nonrecipients_count = 0;
		h.nonrecipients_sorted = 0;
		/* Added in reverse, so the unsorted tail is exercised. */
		for (int i = n; i > 0; i--) {
			snprintf(key, sizeof(key), "k%02d@example.net", i);
			spool_header_mark_delivered(&h, key);
		}
		out = format_ok(&h, &len);
		if (n == 0)
			assert_non_null(strstr(out, "\nXX\n"));
		parse_ok(out, len, &back);
		assert_int_equal(back.nonrecipients_count, n);
		for (int i = 1; i <= n; i++) {
			snprintf(key, sizeof(key), "k%02d@example.net", i);
			assert_true(spool_header_is_delivered(&back, key));
		}
		assert_true(spool_header_equal(&h, &back));
		free(out);
		spool_header_free(&back);
		spool_header_free(&h);
	}
}

/* A tree in any valid shape is read, not only a balanced one. */
static void
parse_degenerate_tree(void **state)
{
	struct spool_header h;
	size_t len;
	char *data;

	(void)state;
	data = example_with("YN bob@example.net\nNN alice+copy@example.org\n",
	    "NY a@x\nNY b@x\nNY c@x\nYN e@x\nNN d@x\n", &len);
	parse_ok(data, len, &h);
	assert_int_equal(h.nonrecipients_count, 5);
	assert_true(spool_header_is_delivered(&h, "d@x"));
	assert_false(spool_header_is_delivered(&h, "bob@example.net"));
	free(data);
	spool_header_free(&h);
}

static void
mark_delivered_many(void **state)
{
	struct spool_header h;
	char key[32];

	(void)state;
	build_example(&h);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "%d@example.com", (i * 7919) % 5000);
		spool_header_mark_delivered(&h, key);
		spool_header_mark_delivered(&h, key);	/* no duplicate */
	}
	assert_int_equal(h.nonrecipients_count, 5002);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "%d@example.com", i);
		assert_true(spool_header_is_delivered(&h, key));
	}
	assert_false(spool_header_is_delivered(&h, "5000@example.com"));
	assert_round_trip(&h);
	spool_header_free(&h);
}

/* Unmarking keeps the others findable, in the sorted part and after. */
static void
unmark_delivered_many(void **state)
{
	struct spool_header h;
	char key[32];

	(void)state;
	build_example(&h);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "%d@example.com", (i * 7919) % 3000);
		spool_header_mark_delivered(&h, key);
	}
	for (int i = 0; i < 3000; i += 3) {
		snprintf(key, sizeof(key), "%d@example.com", i);
		spool_header_unmark_delivered(&h, key);
		spool_header_unmark_delivered(&h, key);	/* already gone */
	}
	assert_int_equal(h.nonrecipients_count, 2002);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "%d@example.com", i);
		if (spool_header_is_delivered(&h, key) != (i % 3 != 0))
			fail_msg("%s: got %d, want %d", key,
			    spool_header_is_delivered(&h, key), i % 3 != 0);
	}
	spool_header_mark_delivered(&h, "3@example.com");
	assert_true(spool_header_is_delivered(&h, "3@example.com"));
	assert_round_trip(&h);
	spool_header_free(&h);
}

/* Forms that older writers produce, and what they mean. */
static void
parse_old_forms(void **state)
{
	static const char file[] =
		EXAMPLE_ID "-H\n"
		"user with  spaces -2 -3\n"
		"<a<b>c@example.org>\n"
		"0001741944413 00\n"
		"-host_address 192.0.2.17.0025\n"
		"-interface_address 2001:db8::5.25\n"
		"-acl 3 2\n"
		"c3\n"
		"-acl 12 2\n"
		"m2\n"
		"--(quoter)auth_id bob\n"
		"-received_time_usec .5\n"
		"-body_linecount 5\n"
		"-body_linecount 6\n"
		"XX\n"
		"4\n"
		"plain@example.org\n"
		"early@example.org 5\n"
		"one@example.org errors@example.org 18,2#1\n"
		"dsn@example.org rfc822;x 8,9  0,-1#3\n"
		"\n";
	struct spool_header h;

	(void)state;
	parse_ok(file, strlen(file), &h);
	assert_string_equal(h.login, "user with  spaces");
	assert_int_equal(h.uid, -2);
	assert_int_equal(h.gid, -3);
	assert_string_equal(h.sender, "a<b>c@example.org");
	assert_int_equal(h.received_time, 1741944413);
	assert_string_equal(h.host_address, "192.0.2.17");
	assert_int_equal(h.host_port, 25);
	assert_string_equal(h.interface_address, "2001:db8::5");
	assert_string_equal(spool_header_get_acl(&h, "acl_c3"), "c3");
	assert_string_equal(spool_header_get_acl(&h, "acl_m2"), "m2");
	assert_string_equal(h.auth_id, "bob");
	assert_int_equal(h.tainted, SPOOL_TAINT_AUTH_ID);
	assert_int_equal(h.received_time_usec, 5);
	assert_int_equal(h.body_linecount, 6);	/* the later line wins */
	assert_int_equal(h.recipients_count, 4);
	assert_string_equal(h.recipients[0].address, "plain@example.org");
	assert_string_equal(h.recipients[1].address, "early@example.org");
	assert_int_equal(h.recipients[1].pno, 5);
	assert_string_equal(h.recipients[2].address, "one@example.org");
	assert_string_equal(h.recipients[2].errors_to, "errors@example.org");
	assert_int_equal(h.recipients[2].pno, 2);
	assert_null(h.recipients[2].orcpt);
	assert_string_equal(h.recipients[3].address, "dsn@example.org");
	assert_string_equal(h.recipients[3].orcpt, "rfc822;x");
	assert_int_equal(h.recipients[3].dsn_flags, 9);
	assert_null(h.recipients[3].errors_to);
	assert_int_equal(h.recipients[3].pno, -1);
	assert_int_equal(h.fields_count, 0);
	assert_round_trip(&h);
	spool_header_free(&h);
}

/* Every prefix of a valid file is rejected or parses to fewer fields. */
static void
truncated_at_every_offset(void **state)
{
	size_t len = strlen(example_file);
	size_t body = (size_t)(strstr(example_file, "\n\n") - example_file) + 2;

	(void)state;
	for (size_t cut = 0; cut < len; cut++) {
		struct spool_header h;
		char *copy = xmalloc(cut > 0 ? cut : 1);
		char *error = NULL;
		int rc;

		memcpy(copy, example_file, cut);
		rc = spool_header_parse(copy, cut, EXAMPLE_FILE, &h, &error);
		if (rc == 0) {
			/* Only a cut between two header fields is valid. */
			assert_true(cut >= body);
			assert_true(h.fields_count < 10);
			assert_true(cut == body ||
			    example_file[cut - 1] == '\n');
			spool_header_free(&h);
		} else {
			assert_non_null(error);
			assert_memory_equal(error, EXAMPLE_FILE ":",
			    strlen(EXAMPLE_FILE) + 1);
			free(error);
		}
		free(copy);
	}
}

static void
hostile_envelope_table(void **state)
{
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
		{ EXAMPLE_ID "-H\n", "1tt1Jd-00000000CXd-1jG!-H\n",
		    "is not \"<message id>-H\"" },
		{ EXAMPLE_ID "-H\n", "1tt1Jd-000CXd-DI-H\n",
		    "does not match the file name" },
		{ "Debian-exim 101 103\n", "Debian-exim 101\n",
		    "does not end with" },
		{ "Debian-exim 101 103\n",
		    "x 1 99999999999999999999\n", "does not end with" },
		{ "<alice@example.org>\n", "alice@example.org\n",
		    "not in angle brackets" },
		{ "1741944413 0\n", "1741944413 -1\n", "<warning count>" },
		{ "1741944413 0\n", "1741944413\n", "<warning count>" },
		{ "-body_linecount 58\n", "-body_linecount 2147483648\n",
		    "not a number from 0 to 2147483647" },
		{ "-body_linecount 58\n", "-body_linecount -1\n",
		    "not a number" },
		{ "-deliver_firsttime\n", "-deliver_firsttime yes\n",
		    "takes no value" },
		{ "-tls_cipher TLS1.3:TLS_AES_256_GCM_SHA384:256\n",
		    "-tls_cipher\n", "has no value" },
		{ "-host_address [192.0.2.17]:53122\n",
		    "-host_address [192.0.2.17]:65536\n",
		    "is not \"[address]:port\"" },
		{ "-host_address [192.0.2.17]:53122\n",
		    "-host_address [192.0.2.17]\n",
		    "is not \"[address]:port\"" },
		{ "-received_time_usec .412345\n",
		    "-received_time_usec .4123456\n", "received_time_usec" },
		{ "-deliver_firsttime\n", "-aclm _x 5\nabc\n",
		    "not 5 bytes followed by a newline" },
		{ "-deliver_firsttime\n", "-aclm _x 65537\n",
		    "length is invalid or above 65536" },
		{ "-deliver_firsttime\n", "-aclm _x! 1\na\n",
		    "with a valid name" },
		{ "-deliver_firsttime\n", "-acl 20 1\na\n",
		    "with a valid name" },
		{ "-deliver_firsttime\n", "--(quoter helo_name x\n",
		    "unterminated" },
		{ "YN bob@example.net\n", "YX bob@example.net\n",
		    "is not \"<Y|N><Y|N> <address>\"" },
		{ "YN bob@example.net\n", "YN \n", "tree line is not" },
		{ "NN alice+copy@example.org\n", "NY alice+copy@example.org\n",
		    "tree line is not" },
		{ "3\nbob", "-3\nbob", "recipient count \"-3\" is not" },
		{ "3\nbob", "100001\nbob", "from 0 to 100000" },
		{ "3\nbob", "99999999999999999999999\nbob", "is not a number" },
		{ "3\nbob", "2\nbob", "empty line that ends the recipients" },
		{ "3\nbob", "4\nbob", "recipient 4 of 4 has an empty address" },
		{ "carol@example.net\n", "carol@example.net 1,2,3\n",
		    "Exim 3 format" },
		{ "carol@example.net\n", "carol@example.net 9,-1#1\n",
		    "malformed extension data" },
		{ "carol@example.net\n", "carol@example.net x 1,-2#1\n",
		    "malformed extension data" },
		{ "carol@example.net\n", "carol@example.net  0,-1#4\n",
		    "unknown extension flags" },
		{ "alice+copy@example.org\n\n", "alice+copy@example.org\n",
		    "empty line that ends the recipients" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		example_error(cases[i].from, cases[i].to, cases[i].want);
}

static void
hostile_fields_table(void **state)
{
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
		{ "018  MIME", "019  MIME", "runs past the end" },
		{ "018  MIME", "017  MIME", "does not end with a newline" },
		{ "018  MIME", "018x MIME", "flag \"x\" is unknown" },
		{ "018  MIME", "018 ", "not followed by a space" },
		{ "018  MIME", "0000000000018  MIME", "is not a number" },
		{ "018  MIME", "65537  MIME", "from 1 to 65536" },
		{ "018  MIME", "000  MIME", "from 1 to 65536" },
		{ "018  MIME", " 18  MIME", "does not start with its length" },
		{ "018  MIME-Version", "018   IME-Version",
		    "starts with white space" },
		{ "018  MIME-Version: 1.0\n", "018", "ends inside" },
		{ "018  MIME-Version: 1.0\n", "018  MIME-Version: 1.0\ngarbage",
		    "does not start with its length" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		example_error(cases[i].from, cases[i].to, cases[i].want);
}

static void
nul_bytes_rejected(void **state)
{
	size_t len = strlen(example_file);
	char *copy = xmalloc(len);
	const char *spots[] = { "Debian", "alice@example.org>", "esmtps",
	    "carol@", "YN bob", "Quarterly" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(spots); i++) {
		memcpy(copy, example_file, len);
		copy[strstr(example_file, spots[i]) - example_file + 1] = '\0';
		assert_parse_error(copy, len, "NUL byte");
	}
	free(copy);
}

/* A line at the limit passes, and one byte more fails. */
static void
line_length_limits(void **state)
{
	const char *prefix = "-helo_name ";
	size_t room = SPOOL_HEADER_LINE_MAX - strlen(prefix);
	struct spool_header h;
	char *line, *data;
	size_t len;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		line = xmalloc(SPOOL_HEADER_LINE_MAX + 8);
		strcpy(line, prefix);
		memset(line + strlen(prefix), 'h', room + (size_t)extra);
		strcpy(line + strlen(prefix) + room + (size_t)extra, "\n");
		data = example_with("-deliver_firsttime\n", line, &len);
		if (extra == 0) {
			parse_ok(data, len, &h);
			assert_int_equal(strlen(h.helo_name), room);
			assert_round_trip(&h);
			spool_header_free(&h);
		} else {
			assert_parse_error(data, len,
			    "longer than 16384 bytes");
		}
		free(data);
		free(line);
	}

	/* A header field may be longer than an envelope line. */
	build_example(&h);
	line = xmalloc(SPOOL_HEADER_FIELD_MAX + 1);
	memset(line, 'v', SPOOL_HEADER_FIELD_MAX + 1);
	memcpy(line, "X-Long: ", 8);
	line[SPOOL_HEADER_FIELD_MAX - 1] = '\n';
	spool_header_add_field(&h, SPOOL_FIELD_OTHER, line,
	    SPOOL_HEADER_FIELD_MAX);
	assert_round_trip(&h);
	line[SPOOL_HEADER_FIELD_MAX - 1] = 'v';
	line[SPOOL_HEADER_FIELD_MAX] = '\n';
	spool_header_add_field(&h, SPOOL_FIELD_OTHER, line,
	    SPOOL_HEADER_FIELD_MAX + 1);
	assert_null(spool_header_format(&h, &len));
	free(line);
	spool_header_free(&h);
}

/* Counts at their bounds pass and one more fails, in the formatter and
 * in the parser. */
static void
count_limits(void **state)
{
	struct spool_header h;
	char *error = NULL;
	char address[32];
	size_t len, extra;
	char *data, *out;

	(void)state;
	build_example(&h);
	for (size_t i = h.recipients_count; i < SPOOL_HEADER_RECIPIENTS_MAX;
	    i++) {
		snprintf(address, sizeof(address), "r%zu@example.com", i);
		spool_header_add_recipient(&h, address);
	}
	out = format_ok(&h, &len);
	free(out);
	spool_header_add_recipient(&h, "one.more@example.com");
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_string_equal(error, "more than 100000 recipients");
	free(error);
	spool_header_free(&h);

	/* 10 fields in the example, plus enough to pass the bound by one. */
	extra = SPOOL_HEADER_FIELDS_MAX - 10 + 1;
	len = strlen(example_file) + extra * 12;
	data = xmalloc(len + 1);
	strcpy(data, example_file);
	for (size_t i = 0; i < extra; i++)
		strcat(data + strlen(example_file) + i * 12, "007  X-A: b\n");
	assert_parse_error(data, len, "more than 10000 header fields");
	parse_ok(data, len - 12, &h);
	assert_int_equal(h.fields_count, SPOOL_HEADER_FIELDS_MAX);
	spool_header_free(&h);
	free(data);

	build_example(&h);
	data = xmalloc(SPOOL_HEADER_FIELD_MAX);
	memset(data, 'x', SPOOL_HEADER_FIELD_MAX);
	memcpy(data, "X-Big: ", 7);
	data[SPOOL_HEADER_FIELD_MAX - 1] = '\n';
	while (spool_header_size(&h) <= SPOOL_HEADER_FIELDS_BYTES_MAX)
		spool_header_add_field(&h, SPOOL_FIELD_OTHER, data,
		    SPOOL_HEADER_FIELD_MAX);
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_string_equal(error,
	    "header fields total more than 8388608 bytes");
	free(error);
	free(data);
	spool_header_free(&h);
}

/* What the formatter rejects, with the reason. */
static void
format_rejects_invalid(void **state)
{
	struct spool_header h;
	char *error = NULL;
	size_t len;

	(void)state;
	build_example(&h);
	free(h.sender);
	h.sender = xstrdup("two\nlines");
	assert_null(spool_header_format(&h, &len));
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_string_equal(error, "sender contains a newline");
	free(error);
	spool_header_free(&h);

	build_example(&h);
	strcpy(h.id, "not-an-id");
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_non_null(strstr(error, "message id"));
	free(error);
	spool_header_free(&h);

	build_example(&h);
	h.fields[0].flag = 'x';
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_string_equal(error, "header field 1 has an invalid flag");
	free(error);
	spool_header_free(&h);

	build_example(&h);
	h.host_port = 70000;
	assert_int_equal(spool_header_check(&h, &error), -1);
	assert_non_null(strstr(error, "out of range"));
	free(error);
	spool_header_free(&h);
}

static void
acl_names(void **state)
{
	struct spool_header h = { 0 };

	(void)state;
	assert_null(spool_header_set_acl(&h, "acl_x_sluice", "v"));
	assert_null(spool_header_set_acl(&h, "acl_m", "v"));
	assert_null(spool_header_set_acl(&h, "acl_m bad", "v"));
	assert_non_null(spool_header_set_acl(&h, SPOOL_ACL_CLASS, "one"));
	assert_non_null(spool_header_set_acl(&h, SPOOL_ACL_CLASS, "two"));
	assert_int_equal(h.acl_vars_count, 1);
	assert_string_equal(spool_header_get_acl(&h, SPOOL_ACL_CLASS), "two");
	assert_null(spool_header_get_acl(&h, SPOOL_ACL_TENANT));
	spool_header_free(&h);
}

static void
flag_for_name_table(void **state)
{
	static const struct {
		const char *name;
		char flag;
	} cases[] = {
		{ "Received", 'P' }, { "received", 'P' }, { "Reply-To", 'R' },
		{ "From", 'F' }, { "TO", 'T' }, { "Cc", 'C' }, { "bcc", 'B' },
		{ "Message-ID", 'I' }, { "message-id", 'I' }, { "Sender", 'S' },
		{ "Subject", ' ' }, { "Resent-From", ' ' }, { "Fro", ' ' },
		{ "", ' ' },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char got = spool_field_flag_for_name(cases[i].name,
		    strlen(cases[i].name));

		if (got != cases[i].flag)
			fail_msg("%s: got '%c', want '%c'", cases[i].name, got,
			    cases[i].flag);
	}
	/* The length counts, not a NUL: "From" inside "From: x". */
	assert_int_equal(spool_field_flag_for_name("From: x", 4), 'F');
}

static void
journal_replay(void **state)
{
	static const char journal[] =
		"carol@example.net\n"
		"\n"
		"bob@example.net\n"
		"|/usr/bin/procmail/address_pipe\n"
		"carol@example.net\n"
		"dave@exam";		/* cut short by a crash */
	struct spool_header h;
	char *error = NULL;

	(void)state;
	build_example(&h);
	assert_int_equal(spool_journal_apply(&h, journal, strlen(journal),
	    &error), 0);
	assert_null(error);
	assert_true(spool_header_is_delivered(&h, "carol@example.net"));
	assert_true(spool_header_is_delivered(&h,
	    "|/usr/bin/procmail/address_pipe"));
	assert_false(spool_header_is_delivered(&h, "dave@exam"));
	assert_int_equal(h.nonrecipients_count, 4);
	assert_int_equal(h.recipients_count, 3);	/* unchanged */
	assert_round_trip(&h);
	spool_header_free(&h);
}

static void
journal_errors_leave_header(void **state)
{
	struct spool_header h, before;
	char *journal, *error = NULL;

	(void)state;
	build_example(&h);
	build_example(&before);

	journal = xmalloc(SPOOL_HEADER_ADDRESS_MAX + 100);
	strcpy(journal, "carol@example.net\n");
	memset(journal + 18, 'x', SPOOL_HEADER_ADDRESS_MAX + 1);
	journal[18 + SPOOL_HEADER_ADDRESS_MAX + 1] = '\n';
	assert_int_equal(spool_journal_apply(&h, journal,
	    18 + SPOOL_HEADER_ADDRESS_MAX + 2, &error), -1);
	assert_string_equal(error, "journal line 2 is longer than 4096 bytes");
	free(error);
	assert_true(spool_header_equal(&h, &before));

	memcpy(journal, "carol@example.net\nda\0ve\n", 24);
	assert_int_equal(spool_journal_apply(&h, journal, 24, &error), -1);
	assert_string_equal(error, "journal line 2 contains a NUL byte");
	free(error);
	assert_true(spool_header_equal(&h, &before));

	/* An empty journal changes nothing. */
	assert_int_equal(spool_journal_apply(&h, journal, 0, &error), 0);
	assert_true(spool_header_equal(&h, &before));

	free(journal);
	spool_header_free(&before);
	spool_header_free(&h);
}

static void
free_accepts_zeroed(void **state)
{
	struct spool_header h = { 0 };

	(void)state;
	spool_header_free(&h);
	spool_header_free(&h);
	assert_int_equal(spool_header_size(&h), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format_matches_exim_layout),
		cmocka_unit_test(parse_example_fields),
		cmocka_unit_test(format_every_option),
		cmocka_unit_test(round_trip_awkward_data),
		cmocka_unit_test(round_trip_tree_sizes),
		cmocka_unit_test(parse_degenerate_tree),
		cmocka_unit_test(mark_delivered_many),
		cmocka_unit_test(unmark_delivered_many),
		cmocka_unit_test(parse_old_forms),
		cmocka_unit_test(truncated_at_every_offset),
		cmocka_unit_test(hostile_envelope_table),
		cmocka_unit_test(hostile_fields_table),
		cmocka_unit_test(nul_bytes_rejected),
		cmocka_unit_test(line_length_limits),
		cmocka_unit_test(count_limits),
		cmocka_unit_test(format_rejects_invalid),
		cmocka_unit_test(acl_names),
		cmocka_unit_test(flag_for_name_table),
		cmocka_unit_test(journal_replay),
		cmocka_unit_test(journal_errors_leave_header),
		cmocka_unit_test(free_accepts_zeroed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

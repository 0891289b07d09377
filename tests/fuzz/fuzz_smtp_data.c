/*
 * fuzz_smtp_data.c - libFuzzer target for the receive side of message
 * content: the DATA reader (dot-stuffing, end marker, smuggling forms,
 * the split of header and body, header bounds) and the turning of the
 * header section into a -H file (core/smtp_reader.c, core/receive.c;
 * see tests/fuzz/README.md).
 *
 * The input's first byte picks the chunk size (1 to 64 bytes, or all at
 * once); the rest is the content after DATA. What must hold:
 *  - the reader takes every byte up to its end marker and no more, and
 *    its header section stays within its bounds;
 *  - content that the reader accepted either fails to make a -H file
 *    with an error message, or makes one that the spool parser reads
 *    back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "receive.h"
#include "smtp_reader.h"
#include "spool_header.h"

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_smtp_data: %s%s%s\n", what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

/* Body bytes are counted, not kept. */
static int
count_body(void *arg, const char *buf, size_t len)
{
	*(uint64_t *)arg += len;
	(void)buf;
	return 0;
}

static void
check_spool_form(const struct smtp_data_reader *r)
{
	static const char *const recipients[] = { "b@local.test" };
	struct config config;
	struct receive_message m;
	struct spool_header h, back;
	char *error = NULL;
	char *text;
	size_t len;

	memset(&config, 0, sizeof(config));
	config.primary_hostname = (char *)"fuzz.test";
	memset(&m, 0, sizeof(m));
	m.id = "1tt1Jd-00000000CXd-1jGj";
	m.sender = "a@a.test";
	m.recipients = recipients;
	m.recipient_count = 1;
	m.helo = "client.test";
	m.host_ip = "192.0.2.1";
	m.host_port = 2525;
	m.protocol = "esmtp";
	m.login = "sluice";
	m.headers = r->headers != NULL ? r->headers : "";
	m.headers_len = r->headers_len;
	m.body_size = r->body_size;
	m.body_lines = r->body_lines;
	m.max_line_len = r->max_line_len;

	memset(&h, 0, sizeof(h));
	if (receive_build_header(&config, &m, &h, &error) < 0) {
		if (error == NULL)
			fail("header rejected without an error", NULL);
		free(error);
		spool_header_free(&h);
		return;
	}
	if ((text = spool_header_format(&h, &len)) == NULL)
		fail("accepted header does not format", NULL);
	if (spool_header_parse(text, len, "fuzz", &back, &error) != 0)
		fail("formatted header does not parse", error);
	if (back.fields_count != h.fields_count)
		fail("header field count changed in the spool", NULL);
	free(text);
	spool_header_free(&back);
	spool_header_free(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data_reader r;
	uint64_t written = 0;
	size_t chunk, off = 1;

	if (size == 0)
		return 0;
	chunk = data[0] % 65 == 0 ? size : data[0] % 65;

	smtp_data_init(&r);
	r.write = count_body;
	r.write_arg = &written;
	/* Small bounds, so that inputs reach them. */
	r.size_limit = 16384;
	r.header_max = 4096;
	r.header_line_max = 512;
	r.header_fields_max = 50;
	r.received_max = 3;

	while (off < size && !r.done) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t used = smtp_data_feed(&r, (const char *)data + off, n);

		if (used > n || (used < n && !r.done))
			fail("reader stopped before the end of a chunk", NULL);
		off += used;
	}
	if (r.headers_len > r.header_max)
		fail("header section over its bound", NULL);
	if (r.error == SMTP_DATA_OK && written != r.body_size)
		fail("body bytes written differ from the body size", NULL);
	if (r.done && r.error == SMTP_DATA_OK)
		check_spool_form(&r);
	smtp_data_free(&r);
	return 0;
}

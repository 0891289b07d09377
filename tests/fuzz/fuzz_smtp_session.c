/*
 * fuzz_smtp_session.c - libFuzzer target for whole SMTP server sessions
 * (see tests/fuzz/README.md for how to build and run it).
 *
 * The input's first byte picks how the rest is cut into chunks (1 to 64
 * bytes, or all at once), so that lines and the DATA end marker arrive
 * split in every way. The rest is what the client sends. It goes to a
 * session of core/smtp_server.c in host checking mode (as for -bh: no
 * socket, no spool), through a bufferevent pair, and the input then
 * ends as if the connection was lost.
 *
 * What must hold, besides no crash or sanitizer report: the session
 * ends once the input has, and every line it writes is a reply ("ddd "
 * or "ddd-" and CRLF) or part of the -bh notice after a message.
 * Anything else calls abort(), which libFuzzer reports with the input.
 *
 * The configuration has small limits, so that inputs reach them, and
 * offers DSN and enhanced status codes, so that their paths are run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "smtp_server.h"
#include "util.h"

static const char fuzz_config_text[] =
	"primary_hostname = fuzz.test\n"
	"spool_directory = /nonexistent/fuzz-spool\n"
	"domainlist local_domains = local.test : *.local.test\n"
	"domainlist relay_to_domains = relay.test\n"
	"hostlist relay_from_hosts = <; 192.0.2.0/28 ; 2001:db8::/64\n"
	"recipients_max = 5\n"
	"smtp_max_unknown_commands = 5\n"
	"smtp_max_synprot_errors = 8\n"
	"message_size_limit = 4K\n"
	"header_maxsize = 2K\n"
	"header_line_maxsize = 300\n"
	"received_headers_max = 3\n"
	"smtp_accept_max_per_connection = 3\n"
	"dsn_advertise_hosts = *\n"
	"smtp_enhanced_status_codes = true\n";

static struct event_base *base;
static struct config *config;

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_smtp_session: %s\n", what);
	abort();
}

/* Log lines are dropped: only their formatting is exercised. */
static void
drop_log_line(unsigned targets, const char *msgid, const char *text)
{
	(void)targets;
	(void)msgid;
	(void)text;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz-smtp-session-XXXXXX";
	char *error = NULL;
	FILE *f;
	int fd;

	(void)argc;
	(void)argv;
	if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
		fail("cannot write the configuration file");
	fputs(fuzz_config_text, f);
	fclose(f);
	if (config_load(path, NULL, 0, &config, &error) < 0)
		fail(error);
	unlink(path);

	log_set_divert(drop_log_line);
	if ((base = event_base_new()) == NULL)
		fail("cannot create an event base");
	smtp_server_set_host_checking(NULL);
	if (smtp_server_init(base, config, NULL, &error) < 0)
		fail(error);
	return 0;
}

static void
run_loop(void)
{
	do
		event_base_loop(base, EVLOOP_NONBLOCK);
	while (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0);
}

/* Checks that the output is made of reply lines and the -bh notice. */
static void
check_output(struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	const char *p, *end;

	if (len == 0)
		return;
	p = (const char *)evbuffer_pullup(out, -1);
	end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (nl == NULL)
			fail("output does not end with a line end");
		n = (size_t)(nl - p);
		if (n == 0 || strncmp(p, "**** SMTP testing: that is not a real "
		    "message id!", n) == 0) {
			p = nl + 1;
			continue;
		}
		if (n < 5 || p[n - 1] != '\r' || p[0] < '2' || p[0] > '5' ||
		    p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
		    (p[3] != ' ' && p[3] != '-'))
			fail("output line is not a reply");
		if (memchr(p, '\r', n - 1) != NULL || memchr(p, '\0', n) != NULL)
			fail("reply line holds CR or NUL");
		p = nl + 1;
	}
	evbuffer_drain(out, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer;
	struct bufferevent *pair[2];
	size_t chunk, off = 1;

	if (size == 0)
		return 0;
	chunk = data[0] % 65 == 0 ? size : data[0] % 65;

	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons(2525);
	/* Half the inputs come from a relay_from_hosts address. */
	inet_pton(AF_INET, data[0] & 0x80 ? "192.0.2.1" : "198.51.100.7",
	    &peer.sin_addr);

	if (bufferevent_pair_new(base, 0, pair) < 0)
		fail("cannot create a bufferevent pair");
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	smtp_server_start(pair[0], (const struct sockaddr *)&peer,
	    sizeof(peer));
	run_loop();
	check_output(bufferevent_get_input(pair[1]));

	while (off < size && smtp_server_session_count() > 0) {
		size_t n = size - off < chunk ? size - off : chunk;

		bufferevent_write(pair[1], data + off, n);
		off += n;
		run_loop();
		check_output(bufferevent_get_input(pair[1]));
	}
	bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED);
	run_loop();
	check_output(bufferevent_get_input(pair[1]));
	if (smtp_server_session_count() != 0)
		fail("the session outlived its input");
	bufferevent_free(pair[1]);
	run_loop();
	return 0;
}

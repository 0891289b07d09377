/*
 * smtp_test_session.c - the -bh session (see smtp_test_session.h).
 *
 * The session is the daemon's own (core/smtp_server.c), in host checking
 * mode, on one end of a bufferevent pair instead of a socket. This file
 * copies standard input into the other end and what comes out of it to
 * standard output. The pair moves bytes at once but runs the session's
 * callbacks from the event loop, so after each chunk of input the loop
 * runs until nothing is left to do. Sessions arm no timers in host
 * checking mode, so the loop never waits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "policy.h"
#include "policy_tables.h"
#include "smtp_server.h"
#include "smtp_test_session.h"
#include "util.h"

/* Bytes of standard input read at a time. */
#define SMTP_TEST_READ_SIZE	4096

/* Prints a line that sluice would have logged, as Exim's -bh does. */
static void
smtp_test_session_log_cb(unsigned targets, const char *msgid,
    const char *text)
{
	/* Lines after the first (headers for the reject log) are left
	 * out. */
	int len = (int)strcspn(text, "\n");

	fprintf(stderr, "LOG: %s%s%.*s\n", msgid != NULL ? msgid : "",
	    msgid != NULL ? " " : "", len, text);
	fflush(stderr);
}

/*
 * Parses "address" or "address.port" into peer. Returns 0 with ip set to
 * the address alone, or -1.
 */
static int
smtp_test_session_parse_host(const char *host, struct sockaddr_storage *peer,
    socklen_t *peer_len, char ip[INET6_ADDRSTRLEN])
{
	struct sockaddr_in *in = (struct sockaddr_in *)peer;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)peer;
	char text[INET6_ADDRSTRLEN + 8];
	unsigned long long port = 0;
	char *dot;

	if (strlen(host) >= sizeof(text))
		return -1;
	strlcpy_s(text, host, sizeof(text));
	memset(peer, 0, sizeof(*peer));

	/* A whole IPv4 address parses as it is, and so does IPv6 with an
	 * IPv4 tail ("::ffff:1.2.3.4"). Otherwise the part after the last
	 * dot may be a port. */
	if (inet_pton(AF_INET, text, &in->sin_addr) != 1 &&
	    inet_pton(AF_INET6, text, &in6->sin6_addr) != 1) {
		if ((dot = strrchr(text, '.')) == NULL ||
		    parse_uint(dot + 1, 65535, &port) < 0)
			return -1;
		*dot = '\0';
	}
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*peer_len = sizeof(*in);
	} else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*peer_len = sizeof(*in6);
	} else {
		return -1;
	}
	inet_ntop(peer->ss_family, peer->ss_family == AF_INET ?
	    (const void *)&in->sin_addr : (const void *)&in6->sin6_addr, ip,
	    INET6_ADDRSTRLEN);
	return 0;
}

/* Runs the session's callbacks for what it was given, then copies what
 * it wrote to standard output. */
static void
smtp_test_session_flush(struct event_base *base, struct bufferevent *client)
{
	struct evbuffer *in = bufferevent_get_input(client);
	size_t len;

	do
		event_base_loop(base, EVLOOP_NONBLOCK);
	while (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0);

	while ((len = evbuffer_get_length(in)) > 0) {
		struct evbuffer_iovec chunk;

		if (evbuffer_peek(in, -1, NULL, &chunk, 1) < 1)
			break;
		len = fwrite(chunk.iov_base, 1, chunk.iov_len, stdout);
		evbuffer_drain(in, chunk.iov_len);
		if (len < chunk.iov_len)
			break;	/* stdout is gone; the rest is dropped */
	}
	fflush(stdout);
}

int
smtp_test_session_run(const struct config *config, const char *host)
{
	struct sockaddr_storage peer;
	socklen_t peer_len = 0;
	char ip[INET6_ADDRSTRLEN];
	struct bufferevent *pair[2] = { NULL, NULL };
	struct event_base *base = NULL;
	char buf[SMTP_TEST_READ_SIZE];
	char *error = NULL;
	int rc = 1;

	if (smtp_test_session_parse_host(host, &peer, &peer_len, ip) < 0) {
		fprintf(stderr, "sluice: -bh: \"%s\" is not an IP address "
		    "(optionally followed by .port)\n", host);
		return 1;
	}
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create an event loop for -bh");
	smtp_server_set_host_checking(stderr);
	if (smtp_server_init(base, config, NULL, &error) < 0) {
		fprintf(stderr, "sluice: %s: %s\n", config->config_file, error);
		free(error);
		goto out;
	}
	if (bufferevent_pair_new(base, 0, pair) < 0)
		fatalx("cannot create a bufferevent pair for -bh");
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	log_set_divert(smtp_test_session_log_cb);
	/* The policy runs as in the daemon, so that the trace shows each
	 * handler's verdict; there is no tick timer. It reads the tables as
	 * the daemon last saved them, and what it changes is never saved. */
	if (policy_tables_configure(config->day_rollover,
	    config->policy_table_max_entries, &error) < 0) {
		fprintf(stderr, "sluice: %s: %s\n", config->config_file, error);
		free(error);
		goto out;
	}
	policy_tables_load_saved(config->spool_directory);
	if (policy_start(NULL, config, &error) < 0) {
		fprintf(stderr, "sluice: %s\n", error);
		free(error);
		goto out;
	}

	printf("\n**** SMTP testing session as if from host %s\n"
	    "**** but without any ident (RFC 1413) callback.\n"
	    "**** This is not for real!\n\n", ip);
	smtp_server_start(pair[0], (const struct sockaddr *)&peer, peer_len);
	pair[0] = NULL;		/* the session owns it now */
	smtp_test_session_flush(base, pair[1]);

	while (smtp_server_session_count() > 0) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Tell the session that its input ended, so that it
			 * replies and closes as on a lost connection. */
			bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED);
			smtp_test_session_flush(base, pair[1]);
			break;
		}
		bufferevent_write(pair[1], buf, (size_t)n);
		smtp_test_session_flush(base, pair[1]);
	}
	rc = 0;

out:
	policy_stop();
	log_set_divert(NULL);
	if (pair[1] != NULL)
		bufferevent_free(pair[1]);
	event_base_free(base);
	return rc;
}

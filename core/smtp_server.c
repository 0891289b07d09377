/*
 * smtp_server.c - SMTP sessions: connections, input, replies, limits
 * and shutdown (see smtp_server.h). The commands are in smtp_command.c,
 * the message content and its hand-over to the spool in smtp_message.c.
 *
 * Input is processed in order, one complete line at a time, so a
 * pipelining client gets its replies in the order it sent its commands.
 * Processing pauses while a message is being committed (the next
 * command's reply must not come before the message's 250) and while
 * more than SMTP_SERVER_OUTPUT_MAX bytes of replies wait for a client
 * that does not read them; the read high-water mark then bounds the
 * input held.
 *
 * Lifetime: a session is reference-counted. The connection holds one
 * reference and a commit in flight holds another. smtp_server_process()
 * holds one while it handles input, because a command may close the
 * connection. Closing the connection frees the bufferevent at once, and
 * the struct goes with the last reference. So a commit that completes
 * after the client left still finds its session, and the message, which
 * is durable by then, is logged as received.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "match.h"
#include "receive.h"
#include "smtp_server_private.h"
#include "spool_store.h"
#include "util.h"

struct smtp_server_globals smtp_server;

static struct event_base *server_base;
static struct smtp_session *sessions;
static size_t session_count;
static uint64_t session_serial;
static struct clock_timer *shutdown_timer;
static smtp_server_done_fn shutdown_done;
static void *shutdown_arg;

const char *
smtp_server_state_name(enum smtp_state state)
{
	switch (state) {
	case SMTP_STATE_CONNECTED:	return "CONNECTED";
	case SMTP_STATE_READY:		return "READY";
	case SMTP_STATE_MAIL:		return "MAIL";
	case SMTP_STATE_RCPT:		return "RCPT";
	case SMTP_STATE_DATA:		return "DATA";
	case SMTP_STATE_COMMIT:		return "COMMIT";
	case SMTP_STATE_CLOSING:	return "CLOSING";
	}
	return "unknown";
}

void
smtp_server_enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == SMTP_STATE_CLOSING && state != SMTP_STATE_CLOSING)
		fatal_bug("session %llu: state %s -> %s: a closing session "
		    "cannot reopen", (unsigned long long)s->serial,
		    smtp_server_state_name(s->state),
		    smtp_server_state_name(state));
	s->state = state;
}

static bool
smtp_server_awaits_command(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_CONNECTED ||
	    s->state == SMTP_STATE_READY || s->state == SMTP_STATE_MAIL ||
	    s->state == SMTP_STATE_RCPT;
}

/* Replies */

void
smtp_server_reply(struct smtp_session *s, const char *text)
{
	if (s->bev != NULL)
		evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", text);
}

void
smtp_server_replyf(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	smtp_server_reply(s, text);
	free(text);
}

void
smtp_server_host_text(const struct smtp_session *s, char *buf, size_t size)
{
	if (s->helo[0] != '\0')
		snprintf(buf, size, "(%s) [%s]", s->helo, s->peer_ip);
	else
		snprintf(buf, size, "[%s]", s->peer_ip);
}

void
smtp_server_log_host(const struct smtp_session *s, struct log_host *h)
{
	memset(h, 0, sizeof(*h));
	h->helo = s->helo[0] != '\0' ? s->helo : NULL;
	h->ip = s->peer_ip;
	h->port = s->peer_port;
}

/* Session lifetime */

void
smtp_server_ref(struct smtp_session *s)
{
	s->refs++;
}

void
smtp_server_unref(struct smtp_session *s)
{
	SLUICE_ASSERT(s->refs > 0);
	if (--s->refs > 0)
		return;
	SLUICE_ASSERT(s->bev == NULL);
	smtp_server_tx_free(s);
	free(s);
}

void
smtp_server_tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	spool_data_abort(tx->data);
	smtp_data_free(&tx->reader);
	spool_header_free(&tx->header);
	for (size_t i = 0; i < tx->recipient_count; i++)
		free(tx->recipients[i]);
	free(tx->recipients);
	free(tx->write_error);
	free(tx);
	s->tx = NULL;
}

/* Calls the shutdown callback once no session is left. */
static void
smtp_server_check_drained(void)
{
	smtp_server_done_fn done = shutdown_done;

	if (!smtp_server.shutting_down || sessions != NULL || done == NULL)
		return;
	shutdown_done = NULL;
	clock_timer_free(shutdown_timer);
	shutdown_timer = NULL;
	done(shutdown_arg);
}

/* Closes the connection now, dropping unsent output. A transaction not
 * yet handed to the spool is abandoned; a commit in flight keeps its
 * reference and finishes without the client. */
static void
smtp_server_close(struct smtp_session *s)
{
	if (s->bev == NULL)
		return;
	bufferevent_free(s->bev);
	s->bev = NULL;
	clock_timer_free(s->timer);
	s->timer = NULL;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	session_count--;

	if (s->state != SMTP_STATE_COMMIT)
		smtp_server_tx_free(s);
	smtp_server_unref(s);	/* the connection's reference; s may be gone */
	smtp_server_check_drained();
}

void
smtp_server_reply_and_close(struct smtp_session *s, const char *text)
{
	if (s->bev == NULL || s->state == SMTP_STATE_CLOSING)
		return;
	smtp_server_reply(s, text);
	if (s->state != SMTP_STATE_COMMIT)
		smtp_server_tx_free(s);
	smtp_server_enter_state(s, SMTP_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	/* The write callback closes once the reply is out; the timer
	 * bounds the wait for a client that does not read. */
	clock_timer_arm(s->timer, (uint64_t)SMTP_SERVER_TIMEOUT_SEC * 1000000);
}

void
smtp_server_error(struct smtp_session *s, enum smtp_error_kind kind,
    const char *reply)
{
	bool syntax = kind == SMTP_ERROR_SYNTAX;
	unsigned *count = syntax ? &s->syntax_errors : &s->unknown_commands;
	unsigned max = syntax ? SMTP_SERVER_SYNTAX_ERRORS_MAX :
	    SMTP_SERVER_UNKNOWN_COMMANDS_MAX;
	char host[SMTP_SERVER_HELO_MAX + INET6_ADDRSTRLEN + 8];
	char command[SMTP_LINE_HARD_MAX];
	char text[SMTP_LINE_MAX];

	if (++*count <= max) {
		smtp_server_reply(s, reply);
		return;
	}

	/* The drop lines are worded as Exim's, which fail2ban matches. */
	smtp_server_host_text(s, host, sizeof(host));
	log_line_escape(command, sizeof(command),
	    s->command != NULL ? s->command : "", 256, LOG_ESCAPE_QUOTED);
	if (syntax)
		log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP call from %s dropped: "
		    "too many syntax or protocol errors (last command was \"%s\")",
		    host, command);
	else
		log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP call from %s dropped: "
		    "too many unrecognized commands (last was \"%s\")", host,
		    command);
	snprintf(text, sizeof(text), "421 %s Too many %s",
	    smtp_server.config->primary_hostname,
	    syntax ? "syntax or protocol errors" : "unrecognized commands");
	smtp_server_reply_and_close(s, text);
}

/* Input */

/* Handles one framed command line, or a framing error. */
static void
smtp_server_line(struct smtp_session *s, enum smtp_line_status status,
    const char *line)
{
	switch (status) {
	case SMTP_LINE_OK:
		s->command = line;
		smtp_command_dispatch(s, line);
		break;
	case SMTP_LINE_TOO_LONG:
		s->command = "(line too long)";
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "500 Line too long");
		break;
	case SMTP_LINE_BARE_LF:
	case SMTP_LINE_BARE_CR:
		s->command = "(bare CR or LF)";
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "500 bare CR or LF in a "
		    "command line: lines must end with CRLF");
		break;
	case SMTP_LINE_NUL:
		s->command = "(NUL byte)";
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "500 NUL byte in a "
		    "command line");
		break;
	case SMTP_LINE_NONE:
		break;
	}
	s->command = NULL;
}

void
smtp_server_process(struct smtp_session *s)
{
	char line[SMTP_LINE_HARD_MAX + 1];

	smtp_server_ref(s);
	while (s->bev != NULL) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer *out = bufferevent_get_output(s->bev);
		enum smtp_line_status status;
		size_t avail, max, want, len, consumed;
		const char *p;

		if (s->state == SMTP_STATE_COMMIT ||
		    s->state == SMTP_STATE_CLOSING)
			break;
		if (evbuffer_get_length(out) > SMTP_SERVER_OUTPUT_MAX) {
			s->output_blocked = true;
			break;
		}
		if ((avail = evbuffer_get_length(in)) == 0)
			break;
		if (s->state == SMTP_STATE_DATA) {
			smtp_message_feed(s, in);
			continue;
		}

		max = smtp_command_line_max(s);
		want = avail < max ? avail : max;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		status = smtp_line_next(&s->line_reader, p, want, max, &len,
		    &consumed);
		if (status == SMTP_LINE_OK) {
			memcpy(line, p, len);
			line[len] = '\0';
		}
		evbuffer_drain(in, consumed);
		if (status == SMTP_LINE_NONE) {
			if (consumed == 0)
				break;
			continue;
		}
		smtp_server_line(s, status, line);
	}

	/* During shutdown an idle session gets its 421 at once. */
	if (s->bev != NULL && smtp_server.shutting_down &&
	    smtp_server_awaits_command(s)) {
		char reply[SMTP_LINE_MAX];

		snprintf(reply, sizeof(reply), "421 %s Service not available, "
		    "closing transmission channel",
		    smtp_server.config->primary_hostname);
		smtp_server_reply_and_close(s, reply);
	}
	smtp_server_unref(s);
}

static void
smtp_server_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state != SMTP_STATE_CLOSING)
		clock_timer_arm(s->timer,
		    (uint64_t)SMTP_SERVER_TIMEOUT_SEC * 1000000);
	smtp_server_process(s);
}

static void
smtp_server_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == SMTP_STATE_CLOSING) {
		smtp_server_close(s);	/* s may be gone */
		return;
	}
	if (s->output_blocked) {
		s->output_blocked = false;
		smtp_server_process(s);
	}
}

static void
smtp_server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char host[SMTP_SERVER_HELO_MAX + INET6_ADDRSTRLEN + 8];
	char duration[32];
	struct timeval now;

	smtp_server_host_text(s, host, sizeof(host));
	switch (s->state) {
	case SMTP_STATE_CLOSING:
		break;
	case SMTP_STATE_DATA:
		log_write(LOG_MAIN, NULL, "SMTP connection from %s lost while "
		    "reading message data", host);
		break;
	case SMTP_STATE_COMMIT:
		log_write(LOG_MAIN, s->tx->id, "SMTP connection lost after "
		    "final dot");
		break;
	default:
		clock_now_tv(&now);
		log_line_format_duration(duration, sizeof(duration),
		    (int64_t)(now.tv_sec - s->started.tv_sec) * 1000000 +
		    (now.tv_usec - s->started.tv_usec));
		log_write(LOG_MAIN, NULL, "unexpected disconnection while reading "
		    "SMTP command from %s D=%s", host, duration);
		break;
	}
	smtp_server_close(s);	/* s may be gone */
}

static void
smtp_server_timeout_cb(void *arg)
{
	struct smtp_session *s = arg;
	char host[SMTP_SERVER_HELO_MAX + INET6_ADDRSTRLEN + 8];
	char reply[SMTP_LINE_MAX];
	const char *what = "command";

	switch (s->state) {
	case SMTP_STATE_CLOSING:
		/* The client did not read the last reply. */
		smtp_server_close(s);	/* s may be gone */
		return;
	case SMTP_STATE_COMMIT:
		/* The wait is for the spool, not the client. */
		clock_timer_arm(s->timer,
		    (uint64_t)SMTP_SERVER_TIMEOUT_SEC * 1000000);
		return;
	case SMTP_STATE_DATA:
		what = "incoming data";
		break;
	default:
		break;
	}
	smtp_server_host_text(s, host, sizeof(host));
	log_write(LOG_MAIN, s->tx != NULL && s->state == SMTP_STATE_DATA ?
	    s->tx->id : NULL, "SMTP %s timeout on connection from %s",
	    s->state == SMTP_STATE_DATA ? "data" : "command", host);
	snprintf(reply, sizeof(reply), "421 %s SMTP %s timeout - closing "
	    "connection", smtp_server.config->primary_hostname, what);
	smtp_server_reply_and_close(s, reply);
}

/* Public interface */

void
smtp_server_set_arrival_hook(smtp_server_arrival_fn fn, void *arg)
{
	smtp_server.arrival_fn = fn;
	smtp_server.arrival_arg = arg;
}

int
smtp_server_init(struct event_base *base, const struct config *config,
    struct spool_store *store, char **error)
{
	struct passwd *pw;

	server_base = base;
	smtp_server.config = config;
	smtp_server.store = store;
	if (match_check_named_domainlist(config, "local_domains", error) < 0 ||
	    match_check_named_domainlist(config, "relay_to_domains",
	    error) < 0 ||
	    match_check_named_hostlist(config, "relay_from_hosts", error) < 0)
		return -1;

	/* The -H files name the user the daemon runs as, as Exim's name
	 * its exim_user. */
	free(smtp_server.login);
	pw = getpwuid(geteuid());
	smtp_server.login = xstrdup(pw != NULL ? pw->pw_name : "");
	smtp_server.uid = (int64_t)geteuid();
	smtp_server.gid = (int64_t)getegid();
	return 0;
}

/* Stores the numeric address and port of sa. */
static void
smtp_server_address_text(const struct sockaddr *sa, char *ip, size_t size,
    int *port)
{
	ip[0] = '\0';
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	}
}

void
smtp_server_accept(int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	char date[RECEIVE_DATE_SIZE];
	struct smtp_session *s;

	s = xcalloc(1, sizeof(*s));
	s->bev = bufferevent_socket_new(server_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "cannot set up a connection: "
		    "bufferevent_socket_new failed");
		close(fd);
		free(s);
		return;
	}
	s->refs = 1;
	s->serial = ++session_serial;
	s->state = SMTP_STATE_CONNECTED;
	clock_now_tv(&s->started);
	if (peer_len > sizeof(s->peer))
		peer_len = sizeof(s->peer);
	memcpy(&s->peer, peer, peer_len);
	smtp_server_address_text(peer, s->peer_ip, sizeof(s->peer_ip),
	    &s->peer_port);
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
		smtp_server_address_text((struct sockaddr *)&local, s->local_ip,
		    sizeof(s->local_ip), &s->local_port);

	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	session_count++;
	smtp_server.stats.sessions_total++;

	s->timer = clock_timer_new(server_base, smtp_server_timeout_cb, s);
	clock_timer_arm(s->timer, (uint64_t)SMTP_SERVER_TIMEOUT_SEC * 1000000);
	bufferevent_setcb(s->bev, smtp_server_read_cb, smtp_server_write_cb,
	    smtp_server_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SERVER_INPUT_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	if (smtp_server.shutting_down) {
		char reply[SMTP_LINE_MAX];

		snprintf(reply, sizeof(reply), "421 %s Service not available, "
		    "closing transmission channel",
		    smtp_server.config->primary_hostname);
		smtp_server_reply_and_close(s, reply);
		return;
	}
	receive_format_date(&s->started, date);
	smtp_server_replyf(s, "220 %s ESMTP sluice %s %s",
	    smtp_server.config->primary_hostname, PACKAGE_VERSION, date);
}

static void
smtp_server_grace_cb(void *arg)
{
	struct smtp_session *s, *next;

	for (s = sessions; s != NULL; s = next) {
		next = s->next;
		smtp_server_close(s);
	}
	smtp_server_check_drained();
}

void
smtp_server_shutdown(smtp_server_done_fn done, void *arg)
{
	struct smtp_session *s, *next;
	char reply[SMTP_LINE_MAX];

	if (smtp_server.shutting_down)
		return;
	smtp_server.shutting_down = true;

	snprintf(reply, sizeof(reply), "421 %s Service not available, "
	    "closing transmission channel",
	    smtp_server.config->primary_hostname);
	for (s = sessions; s != NULL; s = next) {
		next = s->next;
		if (smtp_server_awaits_command(s))
			smtp_server_reply_and_close(s, reply);
	}

	shutdown_done = done;
	shutdown_arg = arg;
	shutdown_timer = clock_timer_new(server_base, smtp_server_grace_cb, NULL);
	clock_timer_arm(shutdown_timer,
	    (uint64_t)SMTP_SERVER_SHUTDOWN_GRACE_SEC * 1000000);
	smtp_server_check_drained();
}

size_t
smtp_server_session_count(void)
{
	return session_count;
}

void
smtp_server_stats(struct smtp_server_stats *out)
{
	*out = smtp_server.stats;
	out->sessions_open = session_count;
}

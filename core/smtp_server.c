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
 * Limits: smtp_server_accept() turns a connection away with Exim's 421
 * texts when smtp_accept_max, smtp_accept_max_per_host or the reserve of
 * smtp_accept_reserve is used up, and with "554 SMTP synchronization
 * error" when the client talked before the greeting. A session waits at
 * most the command timeout for each complete command line, however the
 * bytes of the line trickle in; message data resets smtp_receive_timeout
 * with every block read; smtp_max_session_time bounds the whole session.
 *
 * TLS: STARTTLS and tls_on_connect_ports put an OpenSSL filter
 * bufferevent (tls_server.c) between the session and its socket; s->bev
 * is then the filter. Input also pauses while an AUTH password check
 * runs (smtp_auth.c), and BDAT chunks are read by byte count, not lines.
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
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "match.h"
#include "receive.h"
#include "smtp_policy.h"
#include "smtp_server_esc.h"
#include "smtp_server_private.h"
#include "spool_store.h"
#include "tls_server.h"
#include "util.h"

struct smtp_server_globals smtp_server;

static struct event_base *server_base;
static bool server_initialised;	/* smtp_server_init() succeeded once */
static struct smtp_session *sessions;
static size_t session_count;
static uint64_t session_serial;
static struct clock_timer *shutdown_timer;
static smtp_server_done_fn shutdown_done;
static void *shutdown_arg;

static void smtp_server_tls_up(struct smtp_session *s);
static enum tls_server_verify smtp_server_tls_verify_mode(
    struct smtp_session *s);

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
	smtp_limits_arm_timeout(s);
}

void
smtp_server_trace(const char *fmt, ...)
{
	va_list ap;

	if (!smtp_server.host_checking || smtp_server.trace == NULL)
		return;
	fputs(">>> ", smtp_server.trace);
	va_start(ap, fmt);
	vfprintf(smtp_server.trace, fmt, ap);
	va_end(ap);
	fputc('\n', smtp_server.trace);
	fflush(smtp_server.trace);
}

void
smtp_server_record_command(struct smtp_session *s, const char *verb)
{
	s->history[s->history_count % SMTP_SERVER_HISTORY_MAX] = verb;
	s->history_count++;
}

/* Writes " C=EHLO,MAIL,..." (the remembered verbs, oldest first) into
 * buf, as Exim ends the line of a session dropped for errors. */
static void
smtp_server_format_history(const struct smtp_session *s, char *buf,
    size_t size)
{
	unsigned count = s->history_count < SMTP_SERVER_HISTORY_MAX ?
	    s->history_count : SMTP_SERVER_HISTORY_MAX;
	unsigned first = s->history_count - count;
	size_t used;

	buf[0] = '\0';
	if (count == 0)
		return;
	used = (size_t)snprintf(buf, size, " C=");
	for (unsigned i = 0; i < count && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s",
		    i > 0 ? "," : "",
		    s->history[(first + i) % SMTP_SERVER_HISTORY_MAX]);
}

static bool
smtp_server_awaits_command(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_CONNECTED ||
	    s->state == SMTP_STATE_READY || s->state == SMTP_STATE_MAIL ||
	    s->state == SMTP_STATE_RCPT;
}

/* Replies */

/* True if port is in list, an Exim list of port numbers and service
 * names such as submission_ports. */
static bool
smtp_server_port_listed(const char *list, int port)
{
	struct config_list_iter iter;
	char item[64];
	unsigned long long number;
	struct servent *se;

	config_list_init(&iter, list);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (parse_uint(item, 65535, &number) == 0) {
			if ((int)number == port)
				return true;
		} else if ((se = getservbyname(item, "tcp")) != NULL &&
		    ntohs((uint16_t)se->s_port) == port) {
			return true;
		}
	}
	return false;
}

/* Copies the verb of the command being answered into verb ("" when
 * none): its first word, or "MAIL" and "RCPT" for "MAIL FROM:...". */
static void
smtp_server_command_verb(const struct smtp_session *s, char *verb,
    size_t size)
{
	size_t n = 0;

	if (s->command != NULL)
		while (n + 1 < size && isalpha((unsigned char)s->command[n])) {
			verb[n] = s->command[n];
			n++;
		}
	verb[n] = '\0';
}

void
smtp_server_reply(struct smtp_session *s, const char *text)
{
	char verb[8];
	char *coded = NULL;

	if (s->bev == NULL)
		return;
	/* RFC 2034: the replies to HELO and EHLO carry no enhanced
	 * codes, and neither does anything before EHLO. */
	if (s->esc_offered) {
		smtp_server_command_verb(s, verb, sizeof(verb));
		if (strcasecmp(verb, "EHLO") != 0 &&
		    strcasecmp(verb, "HELO") != 0)
			coded = smtp_esc_apply(text, verb[0] != '\0' ? verb :
			    NULL);
	}
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n",
	    coded != NULL ? coded : text);
	free(coded);
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
	smtp_policy_session_end(s);
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
	for (size_t i = 0; i < tx->recipient_count; i++) {
		free(tx->recipients[i]);
		free(tx->orcpts[i]);
	}
	free(tx->recipients);
	free(tx->orcpts);
	free(tx->dsn_notify);
	free(tx->dsn_envid);
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

/* Bytes of unread input discarded before a socket is closed. */
#define SMTP_SERVER_CLOSE_DRAIN_MAX	(64 * 1024)

/*
 * Reads and drops the client's input that the session will not read, so
 * that closing sends a FIN. Closing a socket with unread input sends a RST
 * instead, and the client may then lose the last reply before reading
 * it (early talkers, clients that pipeline after a 421).
 */
static void
smtp_server_drain_socket(struct smtp_session *s)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;
	evutil_socket_t fd;

	if (!s->is_socket || (fd = bufferevent_getfd(s->bev)) < 0)
		return;
	while (total < SMTP_SERVER_CLOSE_DRAIN_MAX &&
	    (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += (size_t)n;
}

static void smtp_server_tls_flushed_cb(struct evbuffer *buf,
    const struct evbuffer_cb_info *info, void *arg);

void
smtp_server_close(struct smtp_session *s)
{
	struct bufferevent *under;

	if (s->bev == NULL)
		return;
	if (s->tls_flush_wait &&
	    (under = bufferevent_get_underlying(s->bev)) != NULL)
		evbuffer_remove_cb(bufferevent_get_output(under),
		    smtp_server_tls_flushed_cb, s);
	s->tls_flush_wait = false;
	smtp_auth_session_close(s);
	smtp_server_drain_socket(s);
	bufferevent_free(s->bev);
	s->bev = NULL;
	clock_timer_free(s->timer);
	s->timer = NULL;
	clock_timer_free(s->session_timer);
	s->session_timer = NULL;

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
	/* The write callback closes once the reply is out; the timer that
	 * entering CLOSING arms bounds the wait for a client that does not
	 * read. */
	smtp_server_enter_state(s, SMTP_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
}

void
smtp_server_error(struct smtp_session *s, enum smtp_error_kind kind,
    const char *reply)
{
	const struct config *c = smtp_server.config;
	bool syntax = kind == SMTP_ERROR_SYNTAX;
	unsigned *count = syntax ? &s->syntax_errors : &s->unknown_commands;
	int max = syntax ? c->smtp_max_synprot_errors :
	    c->smtp_max_unknown_commands;
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char command[SMTP_LINE_HARD_MAX];
	char history[SMTP_SERVER_HISTORY_MAX * 12];
	char text[SMTP_LINE_MAX * 2];

	smtp_server_host_text(s, host, sizeof(host));
	log_line_escape(command, sizeof(command),
	    s->command != NULL ? s->command : "", 256, LOG_ESCAPE_QUOTED);

	/* Exim's optional line for every error (log_selector
	 * +smtp_syntax_error, +smtp_protocol_error); 503 is a protocol
	 * error, the rest are syntax errors. */
	if (strncmp(reply, "503", 3) == 0) {
		if (log_selected(LOG_SEL_SMTP_PROTOCOL_ERROR))
			log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP protocol error "
			    "in \"%s\" H=%s %s", command, host, reply + 4);
	} else if (log_selected(LOG_SEL_SMTP_SYNTAX_ERROR)) {
		log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP syntax error in "
		    "\"%s\" H=%s %s", command, host, s->error_reason != NULL ?
		    s->error_reason : reply + 4);
	}

	if (++*count <= (unsigned)max) {
		smtp_server_reply(s, reply);
		return;
	}

	/* The drop lines and replies are worded as Exim 4.96's, which
	 * fail2ban and log scanners match. */
	if (syntax) {
		smtp_server_format_history(s, history, sizeof(history));
		log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP call from %s dropped: "
		    "too many syntax or protocol errors (last command was "
		    "\"%s\", %s)", host, command, history);
		/* The error's own reply, then the code again with the
		 * reason for closing: "501-text" CRLF "501 Too many ...". */
		snprintf(text, sizeof(text), "%.3s-%s\r\n%.3s Too many syntax or "
		    "protocol errors", reply, reply + 4, reply);
	} else {
		log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP call from %s dropped: "
		    "too many unrecognized commands (last was \"%s\")", host,
		    command);
		snprintf(text, sizeof(text), "500 Too many unrecognized commands");
	}
	smtp_server_reply_and_close(s, text);
}

/* Input */

/* Handles one framed command line, or a framing error. */
static void
smtp_server_line(struct smtp_session *s, enum smtp_line_status status,
    const char *line)
{
	/* A framing error ends an AUTH exchange. */
	if (status != SMTP_LINE_OK && status != SMTP_LINE_NONE)
		s->auth_step = SMTP_AUTH_STEP_NONE;
	switch (status) {
	case SMTP_LINE_OK:
		/* An AUTH response is a secret, never named in logs. */
		if (s->auth_step != SMTP_AUTH_STEP_NONE) {
			s->command = "(AUTH response)";
			smtp_auth_line(s, line);
			break;
		}
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
		/* The line comes with its NULs shown as '?'. */
		s->command = line;
		s->error_reason = "NUL character(s) present (shown as '?')";
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "501 NUL characters are "
		    "not allowed in SMTP commands");
		s->error_reason = NULL;
		break;
	case SMTP_LINE_NONE:
		break;
	}
	s->command = NULL;

	/* The command timeout runs from one complete line to the next, so
	 * a client cannot keep a session by sending a byte at a time. */
	if (s->bev != NULL && smtp_server_awaits_command(s))
		smtp_limits_arm_timeout(s);
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
		bool secret;

		if (s->state == SMTP_STATE_COMMIT ||
		    s->state == SMTP_STATE_CLOSING || s->auth_busy)
			break;
		if (evbuffer_get_length(out) > SMTP_SERVER_OUTPUT_MAX) {
			s->output_blocked = true;
			break;
		}
		if ((avail = evbuffer_get_length(in)) == 0)
			break;
		if (s->bdat_remaining > 0) {
			smtp_message_chunk(s, in);
			continue;
		}
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
		} else if (status == SMTP_LINE_NUL) {
			/* For the log: the line without its CRLF. */
			len = consumed - 2;
			for (size_t i = 0; i < len; i++)
				line[i] = p[i] != '\0' ? p[i] : '?';
			line[len] = '\0';
		}
		evbuffer_drain(in, consumed);
		if (status == SMTP_LINE_NONE) {
			if (consumed == 0)
				break;
			continue;
		}
		secret = s->auth_step != SMTP_AUTH_STEP_NONE;
		smtp_server_line(s, status, line);
		if (secret)
			explicit_bzero(line, sizeof(line));
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

	/* Decrypted input means the handshake is over, even when its event
	 * has not run yet. */
	if (s->tls_handshaking &&
	    SSL_is_init_finished(bufferevent_openssl_get_ssl(bev)))
		smtp_server_tls_up(s);

	/* Input read before the greeting was written to the socket was
	 * sent without waiting for it (RFC 5321 4.3.1). */
	if (!s->greeted && s->is_socket && s->state == SMTP_STATE_CONNECTED &&
	    smtp_server.config->smtp_enforce_sync) {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t len = evbuffer_get_length(in);

		if (len > SMTP_SERVER_EARLY_INPUT_LOG_MAX)
			len = SMTP_SERVER_EARLY_INPUT_LOG_MAX;
		smtp_limits_sync_error(s,
		    (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len);
		return;
	}
	/* Message data restarts smtp_receive_timeout with every block;
	 * commands restart theirs only when a line is complete. */
	if (s->state == SMTP_STATE_DATA)
		smtp_limits_arm_timeout(s);
	smtp_server_process(s);
}

static void
smtp_server_tls_close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	smtp_server_close(s);
	smtp_server_unref(s);	/* the callback's reference; s may be gone */
}

/* The socket's output buffer under a TLS filter changed: once it is
 * empty the last reply is out, and the session closes from the loop
 * (not from inside the buffer's own callback). */
static void
smtp_server_tls_flushed_cb(struct evbuffer *buf,
    const struct evbuffer_cb_info *info, void *arg)
{
	struct smtp_session *s = arg;
	struct timeval now = { 0, 0 };

	if (!s->tls_flush_wait || evbuffer_get_length(buf) > 0)
		return;
	s->tls_flush_wait = false;
	evbuffer_remove_cb(buf, smtp_server_tls_flushed_cb, s);
	smtp_server_ref(s);
	if (event_base_once(server_base, -1, EV_TIMEOUT,
	    smtp_server_tls_close_cb, s, &now) < 0)
		fatalx("cannot schedule the close of an SMTP connection");
}

/*
 * A TLS filter hands its output to the socket's bufferevent, so the
 * filter's output being empty does not mean the client has the bytes.
 * Returns true if some are still buffered below; s then closes once
 * they are written (the closing timeout bounds the wait).
 */
static bool
smtp_server_tls_output_pending(struct smtp_session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	struct evbuffer *out;

	if (under == NULL)
		return false;
	out = bufferevent_get_output(under);
	if (evbuffer_get_length(out) == 0)
		return false;
	if (!s->tls_flush_wait) {
		s->tls_flush_wait = true;
		evbuffer_add_cb(out, smtp_server_tls_flushed_cb, s);
	}
	return true;
}

static void
smtp_server_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	s->greeted = true;
	if (s->state == SMTP_STATE_CLOSING) {
		if (smtp_server_tls_output_pending(s))
			return;
		smtp_server_close(s);	/* s may be gone */
		return;
	}
	if (s->output_blocked) {
		s->output_blocked = false;
		smtp_server_process(s);
	}
}

/* True if s's client is in the host list option name (value list); a
 * list that cannot be matched is logged and matches nothing. */
static bool
smtp_server_host_listed(struct smtp_session *s, const char *name,
    const char *list)
{
	char *error = NULL;
	int rc;

	if (list == NULL || list[0] == '\0')
		return false;
	rc = match_hostlist(smtp_server.config, name, list,
	    (const struct sockaddr *)&s->peer, &error);
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "%s not applied: %s", name,
		    error);
		free(error);
	}
	return rc == 1;
}

/* Whether the TLS session of s requests the client's certificate:
 * tls_verify_hosts first, as in Exim, then tls_try_verify_hosts. */
static enum tls_server_verify
smtp_server_tls_verify_mode(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;

	if (smtp_server_host_listed(s, "tls_verify_hosts", c->tls_verify_hosts))
		return TLS_SERVER_VERIFY_REQUIRE;
	if (smtp_server_host_listed(s, "tls_try_verify_hosts",
	    c->tls_try_verify_hosts))
		return TLS_SERVER_VERIFY_TRY;
	return TLS_SERVER_VERIFY_NONE;
}

/*
 * Notes the parameters of a TLS session whose handshake is done.
 * libevent may run the read callback with the client's first command
 * (EHLO) before the event callback reports the handshake, so whichever
 * of the two runs first calls this. Otherwise that EHLO reply would
 * still offer STARTTLS and leave out AUTH.
 */
static void
smtp_server_tls_up(struct smtp_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls_handshaking = false;
	tls_server_describe(ssl, s->tls_cipher, s->tls_version,
	    s->tls_standard);
	tls_server_peer(ssl, s->tls_peer_dn, sizeof(s->tls_peer_dn),
	    &s->tls_verified);
	tls_server_sni_name(ssl, s->tls_sni, sizeof(s->tls_sni));
	s->tls = true;
}

/* The TLS handshake ended: note the session's parameters, or log why
 * it failed (Exim's wording, which log scanners match). Returns false
 * when it failed. */
static bool
smtp_server_tls_event(struct smtp_session *s, short what)
{
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char reason[256];
	unsigned long code;

	if ((what & BEV_EVENT_CONNECTED) != 0) {
		smtp_server_tls_up(s);
		return true;
	}
	s->tls_handshaking = false;
	smtp_server_host_text(s, host, sizeof(host));
	code = bufferevent_get_openssl_error(s->bev);
	if (code != 0)
		ERR_error_string_n(code, reason, sizeof(reason));
	else if ((what & BEV_EVENT_EOF) != 0)
		strlcpy_s(reason, "the client closed the connection", sizeof(reason));
	else
		strlcpy_s(reason, "the connection failed", sizeof(reason));
	ERR_clear_error();
	log_write(LOG_MAIN, NULL, "TLS error on connection from %s "
	    "(SSL_accept): %s", host, reason);
	return false;
}

static void
smtp_server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char duration[32];
	struct timeval now;

	if (s->tls_handshaking) {
		if (smtp_server_tls_event(s, what))
			return;
		smtp_server_close(s);	/* s may be gone */
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) != 0)
		return;
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
		/* A -bh session whose input ended can still get a reply, and
		 * Exim sends this one. */
		if (!s->is_socket && (what & BEV_EVENT_EOF) != 0)
			smtp_server_replyf(s, "421 %s lost input connection",
			    smtp_server.config->primary_hostname);
		break;
	}
	smtp_server_close(s);	/* s may be gone */
}

void
smtp_server_start_tls(struct smtp_session *s, SSL *ssl)
{
	struct bufferevent *filter;
	struct evbuffer *in = bufferevent_get_input(s->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	memset(&s->line_reader, 0, sizeof(s->line_reader));
	tls_server_session_verify(ssl, smtp_server_tls_verify_mode(s));
	filter = bufferevent_openssl_filter_new(server_base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL)
		fatalx("cannot create a TLS bufferevent for an SMTP connection");
	s->bev = filter;
	s->tls_handshaking = true;
	bufferevent_setcb(filter, smtp_server_read_cb, smtp_server_write_cb,
	    smtp_server_event_cb, s);
	bufferevent_setwatermark(filter, EV_READ, 0, SMTP_SERVER_INPUT_MAX);
	bufferevent_enable(filter, EV_READ | EV_WRITE);
}

/* Public interface */

void
smtp_server_set_host_checking(FILE *trace)
{
	smtp_server.host_checking = true;
	smtp_server.trace = trace;
}

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
	char *tls_error = NULL;

	server_base = base;
	smtp_server.base = base;
	smtp_server.config = config;
	smtp_server.store = store;
	if (match_check_named_domainlist(config, "local_domains", error) < 0 ||
	    match_check_named_domainlist(config, "relay_to_domains",
	    error) < 0 ||
	    match_check_named_hostlist(config, "relay_from_hosts", error) < 0 ||
	    match_check_hostlist(config, "smtp_reserve_hosts",
	    config->smtp_reserve_hosts, error) < 0)
		return -1;

	/* At start a certificate that cannot be used is an error. On
	 * reload it is logged and the TLS settings in use stay, since a
	 * reload must not fail past its checks. */
	if (tls_server_load(config, &tls_error) < 0) {
		if (!server_initialised) {
			*error = tls_error;
			return -1;
		}
		log_write(LOG_MAIN | LOG_PANIC, NULL, "SIGHUP received: TLS "
		    "settings not applied, the previous ones stay: %s",
		    tls_error);
		free(tls_error);
	}
	server_initialised = true;

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

size_t
smtp_server_count_from(const char *ip)
{
	size_t n = 0;

	/* NOTE: a walk over every session, so accepting is linear in the
	 * number of open sessions when smtp_accept_max_per_host is set (an
	 * estimate, not measured: microseconds for thousands of sessions).
	 * A table keyed by address would make it constant. */
	for (const struct smtp_session *s = sessions; s != NULL; s = s->next)
		if (strcmp(s->peer_ip, ip) == 0)
			n++;
	return n;
}

/*
 * Creates a session on bev as if peer had connected from there, and
 * greets the client unless the daemon is shutting down. Takes ownership
 * of bev. fd is the socket under bev, or -1 for a pair.
 */
static void
smtp_server_session_start(struct bufferevent *bev, int fd,
    const struct sockaddr *peer, socklen_t peer_len)
{
	const struct config *c = smtp_server.config;
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	char date[RECEIVE_DATE_SIZE];
	char early[SMTP_SERVER_EARLY_INPUT_LOG_MAX];
	struct smtp_session *s;
	ssize_t n;

	s = xcalloc(1, sizeof(*s));
	s->bev = bev;
	s->is_socket = fd >= 0;
	s->refs = 1;
	s->serial = ++session_serial;
	s->state = SMTP_STATE_CONNECTED;
	smtp_policy_session_start(s);
	clock_now_tv(&s->started);
	if (peer_len > sizeof(s->peer))
		peer_len = sizeof(s->peer);
	memcpy(&s->peer, peer, peer_len);
	smtp_server_address_text(peer, s->peer_ip, sizeof(s->peer_ip),
	    &s->peer_port);
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&local,
	    &local_len) == 0)
		smtp_server_address_text((struct sockaddr *)&local, s->local_ip,
		    sizeof(s->local_ip), &s->local_port);

	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	session_count++;
	smtp_server.stats.sessions_total++;

	s->submission = s->is_socket &&
	    smtp_server_port_listed(c->submission_ports, s->local_port);
	smtp_limits_start_timers(s, server_base);
	bufferevent_setcb(s->bev, smtp_server_read_cb, smtp_server_write_cb,
	    smtp_server_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SERVER_INPUT_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	if (smtp_server.shutting_down) {
		char reply[SMTP_LINE_MAX];

		snprintf(reply, sizeof(reply), "421 %s Service not available, "
		    "closing transmission channel", c->primary_hostname);
		smtp_server_reply_and_close(s, reply);
		return;
	}
	if (s->is_socket && !smtp_limits_check_reserve(s))
		return;

	/* On a tls_on_connect_ports port the client speaks first, and
	 * the greeting waits for the handshake. */
	if (s->is_socket && tls_server_on_connect_port(c, s->local_port)) {
		char *error = NULL;
		SSL *ssl = tls_server_session_new(&error);

		if (ssl == NULL) {
			log_write(LOG_MAIN | LOG_PANIC, NULL, "TLS error on "
			    "connection from [%s]: %s", s->peer_ip, error);
			free(error);
			smtp_server_close(s);
			return;
		}
		smtp_server_start_tls(s, ssl);
	} else if (s->is_socket && c->smtp_enforce_sync &&
	    (n = recv(fd, early, sizeof(early), MSG_PEEK | MSG_DONTWAIT)) > 0) {
		smtp_limits_sync_error(s, early, (size_t)n);
		return;
	}
	if (!smtp_policy_check_connect(s))
		return;

	receive_format_date(&s->started, date);
	smtp_server_replyf(s, "220 %s ESMTP sluice %s %s", c->primary_hostname,
	    PACKAGE_VERSION, date);
}

void
smtp_server_accept(int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct bufferevent *bev;
	char ip[INET6_ADDRSTRLEN];
	int port;

	smtp_server_address_text(peer, ip, sizeof(ip), &port);
	if (!smtp_server.shutting_down && !smtp_limits_admit(fd, ip, port))
		return;
	bev = bufferevent_socket_new(server_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "cannot set up a connection: "
		    "bufferevent_socket_new failed");
		close(fd);
		return;
	}
	smtp_server_session_start(bev, fd, peer, peer_len);
}

void
smtp_server_start(struct bufferevent *bev, const struct sockaddr *peer,
    socklen_t peer_len)
{
	smtp_server_session_start(bev, -1, peer, peer_len);
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

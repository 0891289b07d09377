/*
 * smtp_client_session.c - the connection of an SMTP client on the event
 * loop (see smtp_client.h): connect, greeting, EHLO or HELO, STARTTLS,
 * reading replies, timeouts, the idle state and QUIT. The transactions
 * themselves are in smtp_client_transaction.c.
 *
 * The connection is made with a plain non-blocking connect() watched by
 * one event, so that its errno comes from SO_ERROR; only then does a
 * bufferevent take over the socket. After STARTTLS an OpenSSL filter
 * bufferevent is stacked on it and takes its place. Each complete reply
 * goes to the handler of the current state. One clock_timer contains
 * the deadline of the current state.
 *
 * Recipients accepted by RCPT stay undecided until the reply to the
 * final dot. Whatever ends the session early (a reply that applies to
 * all, a timeout, a lost connection) decides every recipient still
 * undecided in the same way, in smtp_client_decide_rest().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "smtp_client_private.h"
#include "smtp_tls.h"
#include "spool_header.h"
#include "util.h"

static void smtp_client_start_cb(struct smtp_client *client);
static void smtp_client_setup_bev(struct smtp_client *client,
    struct bufferevent *bev);

/* --- outcomes ------------------------------------------------------- */

static enum smtp_phase
smtp_client_phase(const struct smtp_client *client)
{
	switch (client->state) {
	case SMTP_STATE_START:
	case SMTP_STATE_CONNECTING:	return SMTP_PHASE_CONNECT;
	case SMTP_STATE_GREETING:	return SMTP_PHASE_GREETING;
	case SMTP_STATE_EHLO:		return SMTP_PHASE_EHLO;
	case SMTP_STATE_HELO:		return SMTP_PHASE_HELO;
	case SMTP_STATE_STARTTLS:
	case SMTP_STATE_HANDSHAKE:	return SMTP_PHASE_STARTTLS;
	case SMTP_STATE_COMMANDS:
		return smtp_client_transaction_phase(client);
	case SMTP_STATE_BODY:		return SMTP_PHASE_BODY;
	case SMTP_STATE_DOT:
	case SMTP_STATE_IDLE:
	case SMTP_STATE_QUIT:
	case SMTP_STATE_DONE:		return SMTP_PHASE_DOT;
	}
	return SMTP_PHASE_CONNECT;
}

void
smtp_client_decide(struct smtp_client *client, size_t i,
    enum smtp_outcome outcome, enum smtp_error_kind kind, int error,
    const struct smtp_reply *reply, char *message)
{
	struct smtp_rcpt_result *r = &client->result->rcpts[i];

	SLUICE_ASSERT(!client->decided[i]);
	client->decided[i] = true;
	r->outcome = outcome;
	r->phase = smtp_client_phase(client);
	r->kind = kind;
	r->error = error;
	r->transaction = client->state == SMTP_STATE_COMMANDS ||
	    client->state == SMTP_STATE_BODY ||
	    client->state == SMTP_STATE_DOT ? client->txn.number : 0;
	free(r->after);
	r->after = xstrdup(client->after);
	free(r->reply);
	r->reply = NULL;
	r->code = 0;
	if (reply != NULL) {
		r->code = reply->code;
		r->reply = xstrndup(reply->text, reply->len);
	}
	free(r->message);
	r->message = message;
	if (outcome == SMTP_DELIVERED)
		client->result->delivered++;
	else if (outcome == SMTP_DEFERRED)
		client->result->deferred++;
	else
		client->result->failed++;
}

enum smtp_outcome
smtp_outcome_of(int code)
{
	if (code >= 200 && code < 300)
		return SMTP_DELIVERED;
	return code >= 500 ? SMTP_FAILED : SMTP_DEFERRED;
}

char *
smtp_client_reply_message(const struct smtp_client *client,
    const struct smtp_reply *reply)
{
	return xasprintf("SMTP error from remote mail server after %s: %.*s",
	    client->after, (int)reply->len, reply->text);
}

void
smtp_client_decide_rest(struct smtp_client *client, enum smtp_outcome outcome,
    enum smtp_error_kind kind, int error, const struct smtp_reply *reply,
    const char *message)
{
	if (client->result == NULL)
		return;
	for (size_t i = 0; i < client->result->rcpt_count; i++) {
		if (client->decided[i])
			continue;
		smtp_client_decide(client, i, outcome, kind, error, reply,
		    message != NULL ? xstrdup(message) : NULL);
	}
	client->todo_count = 0;
	client->txn.accepted_count = 0;
	client->txn.again_count = 0;
}

/* A reply that ends the message for everyone left: a 4xx or 5xx to the
 * greeting, EHLO, HELO or STARTTLS, or a 421 at any time. */
static void
smtp_client_reply_ends_all(struct smtp_client *client,
    enum smtp_error_kind kind)
{
	char *message = smtp_client_reply_message(client, &client->reply);

	smtp_client_decide_rest(client, smtp_outcome_of(client->reply.code),
	    kind, 0, &client->reply, message);
	free(message);
}

/* Ends the connection of an idle client: the server sent something or
 * closed it. A result still being handed over goes with the connection
 * closed; otherwise the idle callback runs from the loop. */
static void
smtp_client_idle_end(struct smtp_client *client)
{
	smtp_client_finish(client);
}

void
smtp_client_fail(struct smtp_client *client, enum smtp_error_kind kind,
    int error, char *message)
{
	if (client->state == SMTP_STATE_QUIT ||
	    client->state == SMTP_STATE_IDLE) {
		/* Everything was decided; a bad end changes nothing. */
		free(message);
		smtp_client_finish(client);
		return;
	}
	/* A reused connection that died before the server answered any of
	 * this message decided nothing about it. */
	if (client->result != NULL && client->result->reused &&
	    !client->answered_any)
		client->result->stale = true;
	smtp_client_decide_rest(client, SMTP_DEFERRED, kind, error, NULL,
	    message);
	free(message);
	smtp_client_finish(client);
}

/* --- sending -------------------------------------------------------- */

void
smtp_client_enter(struct smtp_client *client, enum smtp_client_state state,
    uint64_t timeout_usec)
{
	client->state = state;
	clock_timer_arm(client->timer, timeout_usec);
}

void
smtp_client_write_line(struct smtp_client *client, const char *line)
{
	struct evbuffer *output = bufferevent_get_output(client->bev);

	evbuffer_add(output, line, strlen(line));
	evbuffer_add(output, "\r\n", 2);
}

static void
smtp_client_send(struct smtp_client *client, enum smtp_client_state state,
    const char *fmt, ...) SLUICE_PRINTF(3, 4);

/* Sends one command line and waits for its reply in state. The command
 * is kept in client->after, for the messages about its reply. */
static void
smtp_client_send(struct smtp_client *client, enum smtp_client_state state,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(client->after, sizeof(client->after), fmt, ap);
	va_end(ap);
	/* Arguments were checked against their bounds at the start. */
	SLUICE_ASSERT(n > 0 && (size_t)n < sizeof(client->after));
	smtp_client_write_line(client, client->after);
	smtp_reply_init(&client->reply);
	smtp_client_enter(client, state, client->options.command_timeout_usec);
}

void
smtp_client_send_quit(struct smtp_client *client)
{
	smtp_client_send(client, SMTP_STATE_QUIT, "QUIT");
	clock_timer_arm(client->timer, client->options.quit_timeout_usec);
}

/* --- EHLO and STARTTLS ---------------------------------------------- */

/* Decides whether to send STARTTLS after the first EHLO. */
static bool
smtp_client_wants_tls(const struct smtp_client *client)
{
	return !client->tls_active && !client->tls_refused &&
	    client->tls_context != NULL && client->tls_mode != SMTP_TLS_AVOID &&
	    client->ehlo.starttls;
}

/* Goes on after EHLO or HELO: STARTTLS, or the message. */
static void
smtp_client_after_hello(struct smtp_client *client)
{
	if (smtp_client_wants_tls(client)) {
		smtp_client_send(client, SMTP_STATE_STARTTLS, "STARTTLS");
		return;
	}
	if (!client->tls_active && client->tls_mode == SMTP_TLS_REQUIRE) {
		smtp_client_decide_rest(client, SMTP_DEFERRED,
		    SMTP_ERROR_TLS_REQUIRED, 0, NULL,
		    client->tls_context == NULL ?
		    "a TLS session is required, but TLS is not set up on this "
		    "host" : "a TLS session is required, but the server did "
		    "not offer STARTTLS");
		smtp_client_send_quit(client);
		return;
	}
	smtp_client_next_transaction(client);
}

/* Defers every recipient for a failed TLS start and ends the session,
 * or, where tls_tempfail_tryclear allows, connects again in clear. */
static void
smtp_client_tls_failed(struct smtp_client *client, char *message)
{
	if (client->tls_tryclear && client->tls_mode != SMTP_TLS_REQUIRE) {
		/* The connection is in an unknown state: start over. */
		free(message);
		smtp_client_close(client);
		memset(&client->ehlo, 0, sizeof(client->ehlo));
		client->tls_active = false;
		client->tls_refused = true;
		client->result->tls = false;
		client->result->tls_cipher[0] = '\0';
		client->result->tls_cert = SMTP_CERT_NONE;
		client->state = SMTP_STATE_START;
		clock_timer_arm(client->timer, 0);
		return;
	}
	smtp_client_fail(client, SMTP_ERROR_TLS, 0, message);
}

static void
smtp_client_start_tls(struct smtp_client *client)
{
	struct bufferevent *filter;
	char *error = NULL;
	SSL *ssl;

	ssl = smtp_tls_session_new(client->tls_context, client->host_name,
	    &error);
	if (ssl == NULL) {
		smtp_client_tls_failed(client, error);
		return;
	}
	/* The filter takes the plain bufferevent and the session over. Its
	 * callbacks are deferred to the loop, because enabling it starts
	 * the handshake, which may fail at once on bytes already read. */
	filter = bufferevent_openssl_filter_new(client->base, client->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (filter == NULL)
		fatalx("cannot create a TLS bufferevent for an SMTP connection");
	client->bev = NULL;
	strlcpy_s(client->after, "STARTTLS", sizeof(client->after));
	smtp_client_enter(client, SMTP_STATE_HANDSHAKE,
	    client->options.command_timeout_usec);
	smtp_client_setup_bev(client, filter);
}

static void
smtp_client_handle_starttls(struct smtp_client *client)
{
	int code = client->reply.code;

	if (code >= 200 && code < 300) {
		smtp_client_start_tls(client);
		return;
	}
	/* Refused: go on in clear on this connection unless TLS is
	 * required, or a 4xx and tls_tempfail_tryclear is off. */
	if (client->tls_mode != SMTP_TLS_REQUIRE &&
	    (code >= 500 || client->tls_tryclear)) {
		client->tls_refused = true;
		smtp_client_after_hello(client);
		return;
	}
	smtp_client_reply_ends_all(client, SMTP_ERROR_TLS);
	smtp_client_send_quit(client);
}

/* The handshake is done: EHLO again, as RFC 3207 section 4.2 requires. */
static void
smtp_client_tls_ready(struct smtp_client *client)
{
	SSL *ssl = bufferevent_openssl_get_ssl(client->bev);

	client->tls_active = true;
	client->result->tls = true;
	smtp_tls_describe(ssl, client->result->tls_cipher,
	    sizeof(client->result->tls_cipher), &client->result->tls_cert);
	memset(&client->ehlo, 0, sizeof(client->ehlo));
	smtp_client_send(client, SMTP_STATE_EHLO, "EHLO %s", client->helo_name);
}

/* --- replies by state ----------------------------------------------- */

static void
smtp_client_handle_ehlo(struct smtp_client *client)
{
	int code = client->reply.code;

	if (code >= 200 && code < 300) {
		client->result->esmtp = true;
		smtp_ehlo_parse(&client->reply, &client->ehlo);
		client->result->pipelining = client->ehlo.pipelining;
		client->result->dsn = client->ehlo.dsn;
		smtp_client_after_hello(client);
		return;
	}
	if (code >= 500 && !client->tls_active) {
		smtp_client_send(client, SMTP_STATE_HELO, "HELO %s",
		    client->helo_name);
		return;
	}
	smtp_client_reply_ends_all(client, SMTP_ERROR_REPLY);
	smtp_client_send_quit(client);
}

/* Acts on a complete reply in the current state. */
static void
smtp_client_handle_reply(struct smtp_client *client)
{
	int code = client->reply.code;
	bool positive = code >= 200 && code < 300;

	if (client->state == SMTP_STATE_IDLE) {
		/* Unsolicited: a 421 before closing, or noise. Either way
		 * this connection carries nothing more. */
		smtp_client_idle_end(client);
		return;
	}
	if (client->state != SMTP_STATE_GREETING)
		client->answered_any = true;
	/* 421: the server is closing the connection (RFC 5321 section
	 * 3.8), whatever the command was. */
	if (code == 421 && client->state != SMTP_STATE_QUIT &&
	    client->state != SMTP_STATE_BODY) {
		if (client->result->reused && client->state ==
		    SMTP_STATE_COMMANDS && client->txn.answered == 0)
			client->result->stale = true;
		smtp_client_reply_ends_all(client, SMTP_ERROR_REPLY);
		smtp_client_send_quit(client);
		return;
	}
	switch (client->state) {
	case SMTP_STATE_GREETING:
		if (!positive)
			break;
		smtp_client_send(client, SMTP_STATE_EHLO, "EHLO %s",
		    client->helo_name);
		return;
	case SMTP_STATE_EHLO:
		smtp_client_handle_ehlo(client);
		return;
	case SMTP_STATE_HELO:
		if (!positive)
			break;
		smtp_client_after_hello(client);
		return;
	case SMTP_STATE_STARTTLS:
		smtp_client_handle_starttls(client);
		return;
	case SMTP_STATE_COMMANDS:
		smtp_client_transaction_reply(client);
		return;
	case SMTP_STATE_BODY:
		/* A reply before the dot: only a rejection makes sense, and
		 * a QUIT now would be read as message text, so the
		 * connection just closes. */
		if (positive) {
			smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
			    xasprintf("reply before the end of data: %.*s",
			    (int)client->reply.len, client->reply.text));
			return;
		}
		smtp_client_reply_ends_all(client, SMTP_ERROR_REPLY);
		smtp_client_finish(client);
		return;
	case SMTP_STATE_DOT:
		smtp_client_dot_reply(client);
		return;
	case SMTP_STATE_QUIT:
		smtp_client_finish(client);
		return;
	case SMTP_STATE_HANDSHAKE:
	case SMTP_STATE_START:
	case SMTP_STATE_CONNECTING:
	case SMTP_STATE_IDLE:
	case SMTP_STATE_DONE:
		fatal_bug("SMTP reply in state %d", (int)client->state);
	}
	/* A 4xx or 5xx to the greeting or HELO ends the session. */
	smtp_client_reply_ends_all(client, SMTP_ERROR_REPLY);
	smtp_client_send_quit(client);
}

/* --- libevent callbacks --------------------------------------------- */

/* True while the client reads replies from bev: it stops when the
 * session ends, when the TLS filter replaces the bufferevent, and
 * while the result of an idle client is being handed over. */
static bool
smtp_client_reading(const struct smtp_client *client,
    const struct bufferevent *bev)
{
	return client->state != SMTP_STATE_DONE &&
	    client->state != SMTP_STATE_HANDSHAKE && client->bev == bev &&
	    !(client->state == SMTP_STATE_IDLE && client->result != NULL);
}

static void
smtp_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *client = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	char line[SMTP_REPLY_LINE_MAX + 2];

	while (smtp_client_reading(client, bev)) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(input, NULL,
		    &eol_len, EVBUFFER_EOL_LF);
		const char *error = NULL;
		size_t len;
		int rc;

		if (eol.pos < 0) {
			if (evbuffer_get_length(input) > SMTP_REPLY_LINE_MAX + 1)
				goto too_long;
			return;
		}
		if ((size_t)eol.pos > SMTP_REPLY_LINE_MAX + 1)
			goto too_long;
		len = (size_t)eol.pos;
		evbuffer_remove(input, line, len);
		evbuffer_drain(input, eol_len);
		/* Servers should end lines with CRLF; a bare LF is taken
		 * too, as most clients do. */
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (client->state == SMTP_STATE_IDLE) {
			smtp_client_idle_end(client);
			return;
		}
		rc = smtp_reply_add_line(&client->reply, line, len, &error);
		if (rc < 0) {
			smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
			    xasprintf("Malformed SMTP reply (%s) in response "
			    "to %s", error, client->after));
			return;
		}
		if (rc == 0)
			continue;
		smtp_client_handle_reply(client);
	}
	return;

too_long:
	smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
	    xasprintf("Malformed SMTP reply (reply line too long) in "
	    "response to %s", client->after));
}

static void
smtp_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *client = arg;

	if (client->state == SMTP_STATE_BODY) {
		smtp_client_fill_body(client);
	} else if (client->state == SMTP_STATE_DOT &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		clock_timer_arm(client->timer,
		    client->options.final_timeout_usec);
	}
}

/* Describes what went wrong on a TLS bufferevent. */
static char *
smtp_client_tls_error(struct bufferevent *bev, const char *after)
{
	unsigned long code = bufferevent_get_openssl_error(bev);
	char reason[256] = "the connection was closed";

	if (code != 0)
		ERR_error_string_n(code, reason, sizeof(reason));
	while (bufferevent_get_openssl_error(bev) != 0)
		;
	return xasprintf("TLS session failure after %s: %s", after, reason);
}

static void
smtp_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *client = arg;
	int error = EVUTIL_SOCKET_ERROR();

	if (client->state == SMTP_STATE_HANDSHAKE) {
		if (what & BEV_EVENT_CONNECTED)
			smtp_client_tls_ready(client);
		else
			smtp_client_tls_failed(client,
			    smtp_client_tls_error(bev, "STARTTLS"));
		return;
	}
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (client->state == SMTP_STATE_IDLE) {
		smtp_client_idle_end(client);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		smtp_client_fail(client, SMTP_ERROR_CLOSED, 0,
		    xasprintf("Remote host closed connection in response to "
		    "%s", client->after));
		return;
	}
	if (client->tls_active) {
		smtp_client_fail(client, SMTP_ERROR_IO, EIO,
		    smtp_client_tls_error(bev, client->after));
		return;
	}
	if (error == 0)
		error = EIO;
	smtp_client_fail(client, SMTP_ERROR_IO, error,
	    xasprintf("%s after %s", strerror(error), client->after));
}

void
smtp_client_timeout_cb(void *arg)
{
	struct smtp_client *client = arg;

	switch (client->state) {
	case SMTP_STATE_START:
		smtp_client_start_cb(client);
		return;
	case SMTP_STATE_DONE:
		smtp_client_deliver_result(client);
		return;
	case SMTP_STATE_IDLE:
		if (client->result != NULL)
			smtp_client_deliver_result(client);
		return;
	case SMTP_STATE_CONNECTING:
		smtp_client_fail(client, SMTP_ERROR_TIMEOUT, ETIMEDOUT, NULL);
		return;
	case SMTP_STATE_HANDSHAKE:
		smtp_client_tls_failed(client, xstrdup("TLS session failure "
		    "after STARTTLS: the handshake timed out"));
		return;
	default:
		break;
	}
	smtp_client_fail(client, SMTP_ERROR_TIMEOUT, ETIMEDOUT,
	    xasprintf("SMTP timeout after %s", client->after));
}

/* --- the connection ------------------------------------------------- */

static void
smtp_client_setup_bev(struct smtp_client *client, struct bufferevent *bev)
{
	client->bev = bev;
	bufferevent_setcb(bev, smtp_client_read_cb, smtp_client_write_cb,
	    smtp_client_event_cb, client);
	/* Input stops being read while a line is longer than allowed. */
	bufferevent_setwatermark(bev, EV_READ, 0, SMTP_REPLY_LINE_MAX + 2);
	bufferevent_setwatermark(bev, EV_WRITE, SMTP_OUTPUT_LOW, 0);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0)
		fatalx("cannot enable an SMTP connection");
}

/* The connection is up: a bufferevent takes over the socket. */
static void
smtp_client_connected(struct smtp_client *client)
{
	struct bufferevent *bev = bufferevent_socket_new(client->base,
	    client->fd, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL)
		fatalx("cannot create a bufferevent for an SMTP connection");
	client->fd = -1;
	smtp_client_setup_bev(client, bev);
	strlcpy_s(client->after, "initial connection", sizeof(client->after));
	smtp_reply_init(&client->reply);
	smtp_client_enter(client, SMTP_STATE_GREETING,
	    client->options.greeting_timeout_usec);
}

static void
smtp_client_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *client = arg;
	int error = 0;
	socklen_t len = sizeof(error);

	(void)what;
	event_free(client->connect_event);
	client->connect_event = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
		error = errno;
	if (error != 0) {
		smtp_client_fail(client, SMTP_ERROR_CONNECT, error, NULL);
		return;
	}
	smtp_client_connected(client);
}

/* Starts the connection, from the loop so that a failure at once still
 * reaches the callback after smtp_client_start() has returned. */
static void
smtp_client_start_cb(struct smtp_client *client)
{
	int family = client->peer.ss_family;

	client->state = SMTP_STATE_CONNECTING;
	client->transactions = 0;
	client->need_rset = false;
	strlcpy_s(client->after, "connect", sizeof(client->after));
	client->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (client->fd < 0)
		goto fail;
	if (client->source_len > 0 && bind(client->fd,
	    (struct sockaddr *)&client->source, client->source_len) != 0)
		goto fail;
	if (connect(client->fd, (struct sockaddr *)&client->peer,
	    client->peer_len) == 0) {
		smtp_client_connected(client);
		return;
	}
	if (errno != EINPROGRESS)
		goto fail;
	client->connect_event = event_new(client->base, client->fd, EV_WRITE,
	    smtp_client_connect_cb, client);
	if (client->connect_event == NULL ||
	    event_add(client->connect_event, NULL) != 0)
		fatalx("cannot watch an SMTP connection");
	clock_timer_arm(client->timer, client->options.connect_timeout_usec);
	return;

fail:
	smtp_client_fail(client, SMTP_ERROR_CONNECT, errno, NULL);
}

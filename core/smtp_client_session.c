/*
 * smtp_client_session.c - the SMTP dialogue of one delivery on the event
 * loop (see smtp_client.h).
 *
 * The connection is made with a plain non-blocking connect() watched by
 * one event, so that its errno comes from SO_ERROR; only then does a
 * bufferevent take over the socket. A client moves through the states
 * of enum smtp_client_state, one command and one reply at a time, and
 * each reply goes to the handler of the state that sent its command.
 * One clock_timer contains the deadline of the current state.
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
#include <event2/event.h>

#include "clock.h"
#include "smtp_client_private.h"
#include "spool_header.h"
#include "util.h"

static void smtp_client_send_mail(struct smtp_client *client);
static void smtp_client_send_quit(struct smtp_client *client);
static void smtp_client_fill_body(struct smtp_client *client);
static void smtp_client_start_cb(struct smtp_client *client);

static enum smtp_phase
smtp_client_phase(const struct smtp_client *client)
{
	switch (client->state) {
	case SMTP_STATE_START:
	case SMTP_STATE_CONNECTING:	return SMTP_PHASE_CONNECT;
	case SMTP_STATE_GREETING:	return SMTP_PHASE_GREETING;
	case SMTP_STATE_EHLO:		return SMTP_PHASE_EHLO;
	case SMTP_STATE_HELO:		return SMTP_PHASE_HELO;
	case SMTP_STATE_MAIL:		return SMTP_PHASE_MAIL;
	case SMTP_STATE_RCPT:		return SMTP_PHASE_RCPT;
	case SMTP_STATE_DATA:		return SMTP_PHASE_DATA;
	case SMTP_STATE_BODY:		return SMTP_PHASE_BODY;
	case SMTP_STATE_DOT:
	case SMTP_STATE_QUIT:
	case SMTP_STATE_DONE:		return SMTP_PHASE_DOT;
	}
	return SMTP_PHASE_CONNECT;
}

/* Decides recipient i. reply may be NULL; message is taken over. */
static void
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
	r->after = xstrdup(client->after);
	if (reply != NULL) {
		r->code = reply->code;
		r->reply = xstrndup(reply->text, reply->len);
	}
	r->message = message;
	if (outcome == SMTP_DELIVERED)
		client->result->delivered++;
	else if (outcome == SMTP_DEFERRED)
		client->result->deferred++;
	else
		client->result->failed++;
}

static enum smtp_outcome
smtp_outcome_of(int code)
{
	if (code >= 200 && code < 300)
		return SMTP_DELIVERED;
	return code >= 500 ? SMTP_FAILED : SMTP_DEFERRED;
}

static char *
smtp_reply_message(const struct smtp_client *client,
    const struct smtp_reply *reply)
{
	return xasprintf("SMTP error from remote mail server after %s: %.*s",
	    client->after, (int)reply->len, reply->text);
}

/* Decides every recipient still undecided, with the same outcome. */
static void
smtp_client_decide_rest(struct smtp_client *client, enum smtp_outcome outcome,
    enum smtp_error_kind kind, int error, const struct smtp_reply *reply,
    const char *message)
{
	for (size_t i = 0; i < client->result->rcpt_count; i++) {
		if (client->decided[i])
			continue;
		smtp_client_decide(client, i, outcome, kind, error, reply,
		    message != NULL ? xstrdup(message) : NULL);
	}
	client->accepted = 0;
}

/* A reply that ends the transaction for everyone left: a 4xx or 5xx to
 * the greeting, EHLO, HELO, MAIL, DATA or the dot, or a 421 at any
 * time. */
static void
smtp_client_reply_ends_all(struct smtp_client *client)
{
	char *message = smtp_reply_message(client, &client->reply);

	smtp_client_decide_rest(client, smtp_outcome_of(client->reply.code),
	    SMTP_ERROR_REPLY, 0, &client->reply, message);
	free(message);
}

/* A failure of the connection itself: no reply decides. */
static void
smtp_client_fail(struct smtp_client *client, enum smtp_error_kind kind,
    int error, char *message)
{
	if (client->state == SMTP_STATE_QUIT) {
		/* Everything was decided; a bad end to QUIT changes nothing. */
		free(message);
		smtp_client_finish(client);
		return;
	}
	smtp_client_decide_rest(client, SMTP_DEFERRED, kind, error, NULL,
	    message);
	free(message);
	smtp_client_finish(client);
}

/* --- the connection ------------------------------------------------- */

static void
smtp_client_enter(struct smtp_client *client, enum smtp_client_state state,
    uint64_t timeout_usec)
{
	client->state = state;
	clock_timer_arm(client->timer, timeout_usec);
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
	evbuffer_add_printf(bufferevent_get_output(client->bev), "%s\r\n",
	    client->after);
	smtp_reply_init(&client->reply);
	smtp_client_enter(client, state, client->options.command_timeout_usec);
}

static void
smtp_client_send_mail(struct smtp_client *client)
{
	char size[32] = "";

	if (client->ehlo.size) {
		uint64_t total = spool_header_size(client->header) + 1 +
		    (uint64_t)(client->data_end - client->data_offset);

		snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)total);
	}
	smtp_client_send(client, SMTP_STATE_MAIL, "MAIL FROM:<%s>%s",
	    client->sender, size);
}

static void
smtp_client_send_rcpt(struct smtp_client *client)
{
	smtp_client_send(client, SMTP_STATE_RCPT, "RCPT TO:<%s>",
	    client->result->rcpts[client->next_rcpt].address);
}

static void
smtp_client_send_quit(struct smtp_client *client)
{
	smtp_client_send(client, SMTP_STATE_QUIT, "QUIT");
	clock_timer_arm(client->timer, client->options.quit_timeout_usec);
}

/* Queues the header fields and the blank line after them. */
static void
smtp_client_queue_header(struct smtp_client *client)
{
	struct evbuffer *output = bufferevent_get_output(client->bev);
	const struct spool_header *h = client->header;
	char end[SMTP_DOT_FINISH_MAX];

	smtp_dot_encoder_init(&client->encoder);
	for (size_t i = 0; i < h->fields_count; i++) {
		const struct spool_header_field *f = &h->fields[i];
		char *wire;
		size_t n;

		if (f->flag == SPOOL_FIELD_DELETED)
			continue;
		wire = xmalloc(SMTP_DOT_ENCODE_MAX(f->len));
		n = smtp_dot_encode(&client->encoder, f->text, f->len, wire);
		evbuffer_add(output, wire, n);
		free(wire);
	}
	evbuffer_add(output, end,
	    smtp_dot_encoder_finish(&client->encoder, false, end));
	evbuffer_add(output, "\r\n", 2);
	smtp_dot_encoder_init(&client->encoder);
}

/*
 * Reads body blocks into the output buffer up to SMTP_OUTPUT_HIGH. At
 * the end of the file, adds the final dot and waits for its reply.
 *
 * NOTE: pread() runs on the loop thread. The -D file is usually in the
 * page cache, but a read from a slow disk stalls every connection while
 * it lasts. Reading ahead in a worker thread would remove that.
 */
static void
smtp_client_fill_body(struct smtp_client *client)
{
	struct evbuffer *output = bufferevent_get_output(client->bev);
	char block[SMTP_BODY_BLOCK];
	char wire[SMTP_DOT_ENCODE_MAX(SMTP_BODY_BLOCK)];

	clock_timer_arm(client->timer, client->options.data_timeout_usec);
	while (evbuffer_get_length(output) < SMTP_OUTPUT_HIGH) {
		ssize_t got = pread(client->data_fd, block, sizeof(block),
		    client->data_offset);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int saved = errno;

			smtp_client_fail(client, SMTP_ERROR_LOCAL, saved,
			    xasprintf("cannot read the spool data file: %s",
			    strerror(saved)));
			return;
		}
		if (got == 0) {
			size_t n = smtp_dot_encoder_finish(&client->encoder,
			    true, wire);

			evbuffer_add(output, wire, n);
			strlcpy_s(client->after, "end of data",
			    sizeof(client->after));
			smtp_reply_init(&client->reply);
			/* The final timeout starts when the dot has left. */
			client->state = SMTP_STATE_DOT;
			bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
			return;
		}
		client->data_offset += got;
		evbuffer_add(output, wire, smtp_dot_encode(&client->encoder,
		    block, (size_t)got, wire));
	}
}

/* --- replies by state ----------------------------------------------- */

static void
smtp_client_handle_rcpt(struct smtp_client *client)
{
	int code = client->reply.code;

	if (code >= 200 && code < 300) {
		client->accepted++;
	} else {
		smtp_client_decide(client, client->next_rcpt,
		    smtp_outcome_of(code), SMTP_ERROR_REPLY, 0, &client->reply,
		    smtp_reply_message(client, &client->reply));
	}
	client->next_rcpt++;
	if (client->next_rcpt < client->result->rcpt_count)
		smtp_client_send_rcpt(client);
	else if (client->accepted > 0)
		smtp_client_send(client, SMTP_STATE_DATA, "DATA");
	else
		smtp_client_send_quit(client);
}

static void
smtp_client_handle_dot(struct smtp_client *client)
{
	int code = client->reply.code;

	if (code >= 200 && code < 300)
		smtp_client_decide_rest(client, SMTP_DELIVERED,
		    SMTP_ERROR_NONE, 0, &client->reply, NULL);
	else
		smtp_client_reply_ends_all(client);
	smtp_client_send_quit(client);
}

/* Acts on a complete reply in the current state. */
static void
smtp_client_handle_reply(struct smtp_client *client)
{
	int code = client->reply.code;
	bool positive = code >= 200 && code < 300;

	/* 421: the server is closing the connection (RFC 5321 section
	 * 3.8), whatever the command was. */
	if (code == 421 && client->state != SMTP_STATE_QUIT &&
	    client->state != SMTP_STATE_BODY) {
		smtp_client_reply_ends_all(client);
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
		if (positive) {
			client->result->esmtp = true;
			smtp_ehlo_parse(&client->reply, &client->ehlo);
			smtp_client_send_mail(client);
			return;
		}
		if (code >= 500) {
			smtp_client_send(client, SMTP_STATE_HELO, "HELO %s",
			    client->helo_name);
			return;
		}
		break;
	case SMTP_STATE_HELO:
	case SMTP_STATE_MAIL:
		if (!positive)
			break;
		if (client->state == SMTP_STATE_HELO)
			smtp_client_send_mail(client);
		else
			smtp_client_send_rcpt(client);
		return;
	case SMTP_STATE_RCPT:
		smtp_client_handle_rcpt(client);
		return;
	case SMTP_STATE_DATA:
		if (code >= 300 && code < 400) {
			client->state = SMTP_STATE_BODY;
			smtp_reply_init(&client->reply);
			smtp_client_queue_header(client);
			smtp_client_fill_body(client);
			return;
		}
		if (positive) {
			smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
			    xasprintf("unexpected reply to DATA: %.*s",
			    (int)client->reply.len, client->reply.text));
			return;
		}
		break;
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
		smtp_client_reply_ends_all(client);
		smtp_client_finish(client);
		return;
	case SMTP_STATE_DOT:
		smtp_client_handle_dot(client);
		return;
	case SMTP_STATE_QUIT:
		smtp_client_finish(client);
		return;
	case SMTP_STATE_START:
	case SMTP_STATE_CONNECTING:
	case SMTP_STATE_DONE:
		fatal_bug("SMTP reply in state %d", (int)client->state);
	}
	/* A 4xx or 5xx that ends the transaction for everyone left. */
	smtp_client_reply_ends_all(client);
	smtp_client_send_quit(client);
}

/* --- libevent callbacks --------------------------------------------- */

static void
smtp_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *client = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	char line[SMTP_REPLY_LINE_MAX + 2];

	for (;;) {
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
		rc = smtp_reply_add_line(&client->reply, line, len, &error);
		if (rc < 0) {
			smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
			    xasprintf("malformed SMTP reply (%s) in response "
			    "to %s", error, client->after));
			return;
		}
		if (rc == 0)
			continue;
		smtp_client_handle_reply(client);
		if (client->state == SMTP_STATE_DONE)
			return;	/* the bufferevent is gone */
	}

too_long:
	smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
	    xasprintf("malformed SMTP reply (reply line too long) in "
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

static void
smtp_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *client = arg;
	int error = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		smtp_client_fail(client, SMTP_ERROR_CLOSED, 0,
		    xasprintf("Remote host closed connection in response to "
		    "%s", client->after));
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

	if (client->state == SMTP_STATE_START) {
		smtp_client_start_cb(client);
		return;
	}
	if (client->state == SMTP_STATE_DONE) {
		smtp_client_deliver_result(client);
		return;
	}
	if (client->state == SMTP_STATE_CONNECTING) {
		smtp_client_fail(client, SMTP_ERROR_TIMEOUT, ETIMEDOUT, NULL);
		return;
	}
	smtp_client_fail(client, SMTP_ERROR_TIMEOUT, ETIMEDOUT,
	    xasprintf("SMTP timeout after %s", client->after));
}

/* The connection is up: a bufferevent takes over the socket. */
static void
smtp_client_connected(struct smtp_client *client)
{
	client->bev = bufferevent_socket_new(client->base, client->fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (client->bev == NULL)
		fatalx("cannot create a bufferevent for an SMTP connection");
	client->fd = -1;
	bufferevent_setcb(client->bev, smtp_client_read_cb,
	    smtp_client_write_cb, smtp_client_event_cb, client);
	/* Input stops being read while a line is longer than allowed. */
	bufferevent_setwatermark(client->bev, EV_READ, 0,
	    SMTP_REPLY_LINE_MAX + 2);
	bufferevent_setwatermark(client->bev, EV_WRITE, SMTP_OUTPUT_LOW, 0);
	if (bufferevent_enable(client->bev, EV_READ | EV_WRITE) != 0)
		fatalx("cannot enable an SMTP connection");
	strlcpy_s(client->after, "initial connection", sizeof(client->after));
	smtp_reply_init(&client->reply);
	smtp_client_enter(client, SMTP_STATE_GREETING,
	    client->options.command_timeout_usec);
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

/*
 * smtp_client.c - starting an SMTP delivery, checking its arguments,
 * handing its result over, and the reuse of an idle client (see
 * smtp_client.h). The connection runs in smtp_client_session.c, the
 * transactions in smtp_client_transaction.c.
 *
 * smtp_client_finish() closes the connection at once but hands the
 * result over from the next loop iteration, so no callback of the client
 * runs on freed memory: code after a call that may finish the session
 * checks for SMTP_STATE_DONE instead. A client that becomes idle hands
 * its result over the same way, from the timer, and stays.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "smtp_client_private.h"
#include "spool_header.h"
#include "util.h"

/* --- names ---------------------------------------------------------- */

const char *
smtp_outcome_name(enum smtp_outcome outcome)
{
	switch (outcome) {
	case SMTP_DELIVERED:	return "delivered";
	case SMTP_DEFERRED:	return "deferred";
	case SMTP_FAILED:	return "failed";
	}
	return "unknown";
}

const char *
smtp_phase_name(enum smtp_phase phase)
{
	switch (phase) {
	case SMTP_PHASE_CONNECT:	return "connect";
	case SMTP_PHASE_GREETING:	return "greeting";
	case SMTP_PHASE_EHLO:		return "ehlo";
	case SMTP_PHASE_HELO:		return "helo";
	case SMTP_PHASE_STARTTLS:	return "starttls";
	case SMTP_PHASE_MAIL:		return "mail";
	case SMTP_PHASE_RCPT:		return "rcpt";
	case SMTP_PHASE_DATA:		return "data";
	case SMTP_PHASE_BODY:		return "body";
	case SMTP_PHASE_DOT:		return "dot";
	}
	return "unknown";
}

const char *
smtp_error_kind_name(enum smtp_error_kind kind)
{
	switch (kind) {
	case SMTP_ERROR_NONE:		return "none";
	case SMTP_ERROR_REPLY:		return "reply";
	case SMTP_ERROR_CONNECT:	return "connect";
	case SMTP_ERROR_TIMEOUT:	return "timeout";
	case SMTP_ERROR_CLOSED:		return "closed";
	case SMTP_ERROR_IO:		return "io";
	case SMTP_ERROR_PROTOCOL:	return "protocol";
	case SMTP_ERROR_LOCAL:		return "local";
	case SMTP_ERROR_TLS:		return "tls";
	case SMTP_ERROR_TLS_REQUIRED:	return "tls-required";
	}
	return "unknown";
}

int
smtp_rcpt_defer_code(const struct smtp_rcpt_result *rcpt)
{
	switch (rcpt->kind) {
	case SMTP_ERROR_CONNECT:
	case SMTP_ERROR_TIMEOUT:
	case SMTP_ERROR_IO:
	case SMTP_ERROR_LOCAL:
		return rcpt->error;
	case SMTP_ERROR_CLOSED:
		return SMTP_EXIM_CLOSED;
	case SMTP_ERROR_PROTOCOL:
		return SMTP_EXIM_FORMAT;
	case SMTP_ERROR_TLS:
		return SMTP_EXIM_TLS_FAILURE;
	case SMTP_ERROR_TLS_REQUIRED:
		return SMTP_EXIM_TLS_REQUIRED;
	case SMTP_ERROR_NONE:
	case SMTP_ERROR_REPLY:
		break;
	}
	switch (rcpt->phase) {
	case SMTP_PHASE_MAIL:
		return SMTP_EXIM_MAIL_4XX;
	case SMTP_PHASE_RCPT:
		return SMTP_EXIM_RCPT_4XX;
	case SMTP_PHASE_DATA:
	case SMTP_PHASE_BODY:
	case SMTP_PHASE_DOT:
		return SMTP_EXIM_DATA_4XX;
	default:
		return 0;
	}
}

/* --- options and results -------------------------------------------- */

void
smtp_client_options_init(struct smtp_client_options *options)
{
	options->connect_timeout_usec = 5ull * 60 * 1000000;
	options->greeting_timeout_usec = 5ull * 60 * 1000000;
	options->command_timeout_usec = 5ull * 60 * 1000000;
	options->data_timeout_usec = 5ull * 60 * 1000000;
	options->final_timeout_usec = 10ull * 60 * 1000000;
	options->quit_timeout_usec = 10ull * 1000000;
	options->max_rcpt = 100;
	options->keep_open = false;
}

void
smtp_result_free(struct smtp_result *result)
{
	if (result == NULL)
		return;
	for (size_t i = 0; i < result->rcpt_count; i++) {
		struct smtp_rcpt_result *r = &result->rcpts[i];

		free(r->address);
		free(r->reply);
		free(r->after);
		free(r->message);
	}
	free(result->rcpts);
	free(result->host_name);
	free(result);
}

static int
smtp_result_order_compare(const void *a, const void *b, void *arg)
{
	const struct smtp_result *result = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct smtp_rcpt_result *rx = &result->rcpts[x];
	const struct smtp_rcpt_result *ry = &result->rcpts[y];
	unsigned tx = rx->outcome == SMTP_DELIVERED ? rx->transaction : UINT_MAX;
	unsigned ty = ry->outcome == SMTP_DELIVERED ? ry->transaction : UINT_MAX;

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return x < y ? -1 : (x > y);
}

size_t *
smtp_result_log_order(const struct smtp_result *result)
{
	size_t *order = xcalloc(result->rcpt_count > 0 ? result->rcpt_count :
	    1, sizeof(*order));

	for (size_t i = 0; i < result->rcpt_count; i++)
		order[i] = i;
	qsort_r(order, result->rcpt_count, sizeof(*order),
	    smtp_result_order_compare, (void *)result);
	return order;
}

/* --- start and end -------------------------------------------------- */

void
smtp_client_close(struct smtp_client *client)
{
	if (client->connect_event != NULL) {
		event_free(client->connect_event);
		client->connect_event = NULL;
	}
	if (client->bev != NULL) {
		bufferevent_free(client->bev);
		client->bev = NULL;
	}
	if (client->fd >= 0) {
		close(client->fd);
		client->fd = -1;
	}
}

/* Frees what belongs to the current message, but not the result. */
static void
smtp_client_message_free(struct smtp_client *client)
{
	smtp_client_transaction_clear(&client->txn);
	free(client->sender);
	client->sender = NULL;
	free(client->decided);
	client->decided = NULL;
	free(client->todo);
	client->todo = NULL;
	client->todo_count = 0;
	free(client->dsn);
	client->dsn = NULL;
	client->header = NULL;
	client->data_fd = -1;
}

/* Frees everything but the result. */
static void
smtp_client_free(struct smtp_client *client)
{
	smtp_client_close(client);
	smtp_client_message_free(client);
	clock_timer_free(client->timer);
	free(client->helo_name);
	free(client->host_name);
	free(client);
}

void
smtp_client_finish(struct smtp_client *client)
{
	/* Whatever is left undecided here is a bug in the state machine. */
	for (size_t i = 0; client->result != NULL &&
	    i < client->result->rcpt_count; i++)
		SLUICE_ASSERT(client->decided[i]);
	smtp_client_close(client);
	client->state = SMTP_STATE_DONE;
	clock_timer_arm(client->timer, 0);
}

void
smtp_client_hand_over_idle(struct smtp_client *client)
{
	client->state = SMTP_STATE_IDLE;
	/* The timer hands the result over from the loop, as for a finished
	 * client, so that the callback never runs inside a libevent
	 * callback of this client. */
	clock_timer_arm(client->timer, 0);
}

void
smtp_client_deliver_result(struct smtp_client *client)
{
	struct smtp_result *result = client->result;
	smtp_client_cb cb = client->cb;
	void *arg = client->arg;

	if (result == NULL) {
		/* QUIT after smtp_client_quit(), or an idle connection that
		 * the server ended. */
		if (client->idle_cb != NULL)
			client->idle_cb(client->idle_arg, client);
		smtp_client_free(client);
		return;
	}
	result->duration_usec = clock_monotonic_usec() - client->started_usec;
	client->result = NULL;
	if (client->state == SMTP_STATE_IDLE) {
		result->connection_open = true;
		smtp_client_message_free(client);
		cb(arg, result);	/* may abort the client */
		return;
	}
	smtp_client_free(client);
	cb(arg, result);
}

void
smtp_client_abort(struct smtp_client *client)
{
	smtp_result_free(client->result);
	smtp_client_free(client);
}

unsigned
smtp_client_messages(const struct smtp_client *client)
{
	return client->messages;
}

void
smtp_client_set_idle_cb(struct smtp_client *client, smtp_client_idle_cb cb,
    void *arg)
{
	client->idle_cb = cb;
	client->idle_arg = arg;
}

void
smtp_client_quit(struct smtp_client *client)
{
	SLUICE_ASSERT(client->state == SMTP_STATE_IDLE &&
	    client->result == NULL);
	client->quitting = true;
	smtp_client_send_quit(client);
}

/* Checks text for use in a command: at most max bytes and no control
 * characters, so that no CR or LF can end the command early. */
static int
smtp_check_text(const char *text, size_t max)
{
	size_t len = strlen(text);

	if (len > max)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c == 0x7f)
			return -1;
	}
	return 0;
}

static int
smtp_parse_ip(const char *text, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* Checks the first line of the -D file and finds where the body ends. */
static int
smtp_check_data_file(const struct smtp_client_message *message,
    off_t *start, off_t *end, char **error)
{
	const char *id = message->header->id;
	size_t id_len = strlen(id);
	char first[MSGID_SIZE + 4];
	struct stat st;
	ssize_t got;

	if (id_len == 0 || id_len > MSGID_LEN_CURRENT) {
		*error = xasprintf("invalid message id \"%s\"", id);
		return -1;
	}
	do {
		got = pread(message->data_fd, first, id_len + 3, 0);
	} while (got < 0 && errno == EINTR);
	if (got < 0 || fstat(message->data_fd, &st) != 0) {
		*error = xasprintf("cannot read the data file of %s: %s", id,
		    strerror(errno));
		return -1;
	}
	if ((size_t)got != id_len + 3 || memcmp(first, id, id_len) != 0 ||
	    memcmp(first + id_len, "-D\n", 3) != 0) {
		*error = xasprintf("the data file of %s does not start with "
		    "\"%s-D\"", id, id);
		return -1;
	}
	*start = (off_t)(id_len + 3);
	*end = st.st_size;
	return 0;
}

static int
smtp_client_check_target(const struct smtp_client_target *target,
    char **error)
{
	if (target->port <= 0 || target->port > 65535) {
		*error = xasprintf("invalid port %d", target->port);
		return -1;
	}
	if (target->helo_name == NULL || *target->helo_name == '\0' ||
	    strchr(target->helo_name, ' ') != NULL ||
	    smtp_check_text(target->helo_name, SMTP_HELO_NAME_MAX) != 0) {
		*error = xstrdup("invalid HELO name");
		return -1;
	}
	if (target->host_name != NULL &&
	    smtp_check_text(target->host_name, SMTP_HELO_NAME_MAX) != 0) {
		*error = xstrdup("invalid host name");
		return -1;
	}
	return 0;
}

static int
smtp_client_check_message(const struct smtp_client_message *message,
    char **error)
{
	const char *sender = message->header->sender;
	const char *envid = message->header->dsn_envid;

	if (message->recipient_count == 0) {
		*error = xstrdup("no recipients to deliver to");
		return -1;
	}
	if (sender != NULL && smtp_check_text(sender, SMTP_ADDRESS_MAX) != 0) {
		*error = xasprintf("sender address of %s is too long or holds "
		    "control characters", message->header->id);
		return -1;
	}
	if (envid != NULL && strlen(envid) > SMTP_ENVID_MAX) {
		*error = xasprintf("the DSN envelope id of %s is longer than "
		    "%d characters", message->header->id, SMTP_ENVID_MAX);
		return -1;
	}
	for (size_t i = 0; i < message->recipient_count; i++) {
		const char *rcpt = message->recipients[i];
		const struct spool_recipient *dsn = message->dsn != NULL ?
		    message->dsn[i] : NULL;

		if (*rcpt == '\0' ||
		    smtp_check_text(rcpt, SMTP_ADDRESS_MAX) != 0) {
			*error = xasprintf("recipient %zu of %s is empty, too "
			    "long or holds control characters", i + 1,
			    message->header->id);
			return -1;
		}
		if (dsn != NULL && dsn->orcpt != NULL &&
		    strlen(dsn->orcpt) > SMTP_ADDRESS_MAX) {
			*error = xasprintf("the ORCPT of recipient %zu of %s "
			    "is longer than %d bytes", i + 1,
			    message->header->id, SMTP_ADDRESS_MAX);
			return -1;
		}
	}
	return 0;
}

/* Makes the result of a new message and its per-recipient state. */
static void
smtp_client_message_setup(struct smtp_client *client,
    const struct smtp_client_message *message, off_t start, off_t end)
{
	struct smtp_result *result = xcalloc(1, sizeof(*result));
	const struct sockaddr_storage *peer = &client->peer;

	client->header = message->header;
	client->message_max_rcpt = message->max_rcpt;
	client->data_fd = message->data_fd;
	client->data_start = start;
	client->data_offset = start;
	client->data_end = end;
	client->sender = xstrdup(message->header->sender != NULL ?
	    message->header->sender : "");
	if (message->dsn != NULL) {
		client->dsn = xcalloc(message->recipient_count,
		    sizeof(*client->dsn));
		memcpy(client->dsn, message->dsn,
		    message->recipient_count * sizeof(*client->dsn));
	}

	result->host_name = xstrdup(client->host_name);
	inet_ntop(peer->ss_family, peer->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)peer)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr,
	    result->ip, sizeof(result->ip));
	result->port = ntohs(peer->ss_family == AF_INET ?
	    ((const struct sockaddr_in *)peer)->sin_port :
	    ((const struct sockaddr_in6 *)peer)->sin6_port);
	if (client->source_len > 0) {
		const struct sockaddr_storage *src = &client->source;

		inet_ntop(src->ss_family, src->ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)src)->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)src)->sin6_addr,
		    result->source_ip, sizeof(result->source_ip));
	}
	result->rcpt_count = message->recipient_count;
	result->rcpts = xcalloc(result->rcpt_count, sizeof(*result->rcpts));
	client->todo = xcalloc(result->rcpt_count, sizeof(*client->todo));
	for (size_t i = 0; i < result->rcpt_count; i++) {
		result->rcpts[i].address = xstrdup(message->recipients[i]);
		client->todo[i] = i;
	}
	client->todo_count = result->rcpt_count;
	client->decided = xcalloc(result->rcpt_count, sizeof(bool));
	result->reused = client->messages > 0;
	result->dsn = client->ehlo.dsn;		/* a reused connection's */
	client->messages++;
	client->answered_any = false;
	client->tls_refused = false;
	client->result = result;
	client->started_usec = clock_monotonic_usec();
}

int
smtp_client_check(const struct smtp_client_target *target,
    const struct smtp_client_message *message, char **error)
{
	struct sockaddr_storage peer, source;
	socklen_t peer_len, source_len;
	off_t start, end;

	if (smtp_client_check_target(target, error) != 0 ||
	    smtp_client_check_message(message, error) != 0)
		return -1;
	if (smtp_parse_ip(target->ip, target->port, &peer, &peer_len) != 0) {
		*error = xasprintf("invalid IP address \"%s\"", target->ip);
		return -1;
	}
	if (target->source_ip != NULL && (smtp_parse_ip(target->source_ip, 0,
	    &source, &source_len) != 0 || source.ss_family != peer.ss_family)) {
		*error = xasprintf("invalid source IP address \"%s\" for %s",
		    target->source_ip, target->ip);
		return -1;
	}
	return smtp_check_data_file(message, &start, &end, error);
}

struct smtp_result *
smtp_result_new_deferred(const struct smtp_client_target *target,
    const struct smtp_client_message *message, enum smtp_error_kind kind,
    int error, const char *text)
{
	struct smtp_result *result = xcalloc(1, sizeof(*result));

	result->host_name = xstrdup(target->host_name != NULL ?
	    target->host_name : target->ip);
	strlcpy_s(result->ip, target->ip, sizeof(result->ip));
	result->port = target->port;
	if (target->source_ip != NULL)
		strlcpy_s(result->source_ip, target->source_ip,
		    sizeof(result->source_ip));
	result->rcpt_count = message->recipient_count;
	result->rcpts = xcalloc(result->rcpt_count, sizeof(*result->rcpts));
	for (size_t i = 0; i < result->rcpt_count; i++) {
		struct smtp_rcpt_result *r = &result->rcpts[i];

		r->address = xstrdup(message->recipients[i]);
		r->outcome = SMTP_DEFERRED;
		r->phase = SMTP_PHASE_CONNECT;
		r->kind = kind;
		r->error = error;
		r->after = xstrdup("connect");
		r->message = text != NULL ? xstrdup(text) : NULL;
	}
	result->deferred = result->rcpt_count;
	return result;
}

struct smtp_client *
smtp_client_start(struct event_base *base,
    const struct smtp_client_target *target,
    const struct smtp_client_message *message,
    const struct smtp_client_options *options, smtp_client_cb cb, void *arg,
    char **error)
{
	struct smtp_client *client;
	off_t start, end;

	if (smtp_client_check_target(target, error) != 0 ||
	    smtp_client_check_message(message, error) != 0)
		return NULL;

	client = xcalloc(1, sizeof(*client));
	client->base = base;
	client->fd = -1;
	client->data_fd = -1;
	client->options = *options;
	client->cb = cb;
	client->arg = arg;
	if (smtp_parse_ip(target->ip, target->port, &client->peer,
	    &client->peer_len) != 0) {
		*error = xasprintf("invalid IP address \"%s\"", target->ip);
		goto fail;
	}
	if (target->source_ip != NULL && smtp_parse_ip(target->source_ip, 0,
	    &client->source, &client->source_len) != 0) {
		*error = xasprintf("invalid source IP address \"%s\"",
		    target->source_ip);
		goto fail;
	}
	if (client->source_len > 0 &&
	    client->source.ss_family != client->peer.ss_family) {
		*error = xasprintf("source IP address %s and host address %s "
		    "are of different families", target->source_ip,
		    target->ip);
		goto fail;
	}
	if (smtp_check_data_file(message, &start, &end, error) != 0)
		goto fail;
	client->helo_name = xstrdup(target->helo_name);
	client->host_name = xstrdup(target->host_name != NULL ?
	    target->host_name : target->ip);
	client->tls_context = target->tls_context;
	client->tls_mode = target->tls;
	client->tls_tryclear = target->tls_tempfail_tryclear;
	smtp_client_message_setup(client, message, start, end);

	client->timer = clock_timer_new(base, smtp_client_timeout_cb, client);
	client->state = SMTP_STATE_START;
	clock_timer_arm(client->timer, 0);
	return client;

fail:
	free(client);
	return NULL;
}

int
smtp_client_next(struct smtp_client *client,
    const struct smtp_client_message *message, smtp_client_cb cb, void *arg,
    char **error)
{
	off_t start, end;

	SLUICE_ASSERT(client->state == SMTP_STATE_IDLE &&
	    client->result == NULL);
	if (smtp_client_check_message(message, error) != 0 ||
	    smtp_check_data_file(message, &start, &end, error) != 0)
		return -1;
	/* Bytes that arrived while the result was handed over (a 421
	 * before closing, say) would be taken as the reply to MAIL. */
	if (evbuffer_get_length(bufferevent_get_input(client->bev)) > 0) {
		*error = xstrdup("the server sent data on the idle connection");
		return -1;
	}
	client->cb = cb;
	client->arg = arg;
	smtp_client_message_setup(client, message, start, end);
	smtp_client_next_transaction(client);
	return 0;
}

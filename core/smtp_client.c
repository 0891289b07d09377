/*
 * smtp_client.c - starting an SMTP delivery, checking its arguments, and
 * handing its result over (see smtp_client.h). The protocol itself runs
 * in smtp_client_session.c.
 *
 * smtp_client_finish() closes the connection at once but hands the
 * result over from the next loop iteration, so no callback of the client
 * runs on freed memory: code after a call that may finish the session
 * checks for SMTP_STATE_DONE instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	options->command_timeout_usec = 5ull * 60 * 1000000;
	options->data_timeout_usec = 5ull * 60 * 1000000;
	options->final_timeout_usec = 10ull * 60 * 1000000;
	options->quit_timeout_usec = 10ull * 1000000;
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

/* Frees everything but the result. */
static void
smtp_client_free(struct smtp_client *client)
{
	smtp_client_close(client);
	clock_timer_free(client->timer);
	free(client->helo_name);
	free(client->sender);
	free(client->decided);
	free(client);
}

void
smtp_client_finish(struct smtp_client *client)
{
	/* Whatever is left undecided here is a bug in the state machine. */
	for (size_t i = 0; i < client->result->rcpt_count; i++)
		SLUICE_ASSERT(client->decided[i]);
	smtp_client_close(client);
	client->state = SMTP_STATE_DONE;
	clock_timer_arm(client->timer, 0);
}

void
smtp_client_deliver_result(struct smtp_client *client)
{
	struct smtp_result *result = client->result;
	smtp_client_cb cb = client->cb;
	void *arg = client->arg;

	result->duration_usec = clock_monotonic_usec() - client->started_usec;
	client->result = NULL;
	smtp_client_free(client);
	cb(arg, result);
}

void
smtp_client_abort(struct smtp_client *client)
{
	smtp_result_free(client->result);
	smtp_client_free(client);
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
smtp_check_data_file(struct smtp_client *client, char **error)
{
	const char *id = client->header->id;
	size_t id_len = strlen(id);
	char first[MSGID_SIZE + 4];
	struct stat st;
	ssize_t got;

	if (id_len == 0 || id_len > MSGID_LEN_CURRENT) {
		*error = xasprintf("invalid message id \"%s\"", id);
		return -1;
	}
	do {
		got = pread(client->data_fd, first, id_len + 3, 0);
	} while (got < 0 && errno == EINTR);
	if (got < 0 || fstat(client->data_fd, &st) != 0) {
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
	client->data_offset = (off_t)(id_len + 3);
	client->data_end = st.st_size;
	return 0;
}

static int
smtp_client_check(const struct smtp_client_target *target,
    const struct smtp_client_message *message, char **error)
{
	const char *sender = message->header->sender;

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
	if (message->recipient_count == 0) {
		*error = xstrdup("no recipients to deliver to");
		return -1;
	}
	if (sender != NULL && smtp_check_text(sender, SMTP_ADDRESS_MAX) != 0) {
		*error = xasprintf("sender address of %s is too long or holds "
		    "control characters", message->header->id);
		return -1;
	}
	for (size_t i = 0; i < message->recipient_count; i++) {
		const char *rcpt = message->recipients[i];

		if (*rcpt == '\0' ||
		    smtp_check_text(rcpt, SMTP_ADDRESS_MAX) != 0) {
			*error = xasprintf("recipient %zu of %s is empty, too "
			    "long or holds control characters", i + 1,
			    message->header->id);
			return -1;
		}
	}
	return 0;
}

struct smtp_client *
smtp_client_start(struct event_base *base,
    const struct smtp_client_target *target,
    const struct smtp_client_message *message,
    const struct smtp_client_options *options, smtp_client_cb cb, void *arg,
    char **error)
{
	struct smtp_client *client;
	struct smtp_result *result;

	if (smtp_client_check(target, message, error) != 0)
		return NULL;

	client = xcalloc(1, sizeof(*client));
	client->base = base;
	client->fd = -1;
	client->options = *options;
	client->cb = cb;
	client->arg = arg;
	client->header = message->header;
	client->data_fd = message->data_fd;
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
	if (smtp_check_data_file(client, error) != 0)
		goto fail;
	client->helo_name = xstrdup(target->helo_name);
	client->sender = xstrdup(message->header->sender != NULL ?
	    message->header->sender : "");

	result = xcalloc(1, sizeof(*result));
	result->host_name = xstrdup(target->host_name != NULL ?
	    target->host_name : target->ip);
	inet_ntop(client->peer.ss_family, client->peer.ss_family == AF_INET ?
	    (void *)&((struct sockaddr_in *)&client->peer)->sin_addr :
	    (void *)&((struct sockaddr_in6 *)&client->peer)->sin6_addr,
	    result->ip, sizeof(result->ip));
	result->port = target->port;
	if (target->source_ip != NULL)
		strlcpy_s(result->source_ip, target->source_ip,
		    sizeof(result->source_ip));
	result->rcpt_count = message->recipient_count;
	result->rcpts = xcalloc(result->rcpt_count, sizeof(*result->rcpts));
	for (size_t i = 0; i < result->rcpt_count; i++)
		result->rcpts[i].address = xstrdup(message->recipients[i]);
	client->result = result;
	client->decided = xcalloc(result->rcpt_count, sizeof(bool));

	client->started_usec = clock_monotonic_usec();
	client->timer = clock_timer_new(base, smtp_client_timeout_cb, client);
	client->state = SMTP_STATE_START;
	clock_timer_arm(client->timer, 0);
	return client;

fail:
	free(client);
	return NULL;
}

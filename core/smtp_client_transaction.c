/*
 * smtp_client_transaction.c - the transactions of one message on an
 * SMTP client connection (see smtp_client.h): MAIL, RCPT, DATA, the body
 * and the final dot.
 *
 * A transaction takes up to max_rcpt recipients (or the server's
 * RCPTMAX) from the front of client->todo and queues its commands: RSET
 * when the previous transaction did not reach its final dot, MAIL, one
 * RCPT each and DATA. With PIPELINING every command is written at once,
 * since RFC 2920 section 3.1 allows DATA as the last of a group. Without
 * it, each command waits for the reply to the one before. Replies are
 * matched to commands in order.
 *
 * Recipients that got 452 return to the front of client->todo when the
 * transaction accepted someone else, so each transaction decides at
 * least one recipient or defers the rest: the message always ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "smtp_client_private.h"
#include "spool_header.h"
#include "util.h"

/* RFC 5321 section 4.5.3.1.10: the reply to a RCPT past the server's
 * limit on recipients per transaction. */
#define SMTP_TOO_MANY_RECIPIENTS	452

static void smtp_client_transaction_end(struct smtp_client *client);

void
smtp_client_transaction_clear(struct smtp_transaction *txn)
{
	free(txn->commands);
	free(txn->accepted);
	free(txn->again);
	memset(txn, 0, sizeof(*txn));
}

enum smtp_phase
smtp_client_transaction_phase(const struct smtp_client *client)
{
	const struct smtp_transaction *txn = &client->txn;
	size_t head = txn->answered;

	if (head >= txn->command_count)
		return SMTP_PHASE_DATA;
	switch (txn->commands[head].kind) {
	case SMTP_COMMAND_RSET:
	case SMTP_COMMAND_MAIL:
		return SMTP_PHASE_MAIL;
	case SMTP_COMMAND_RCPT:
		return SMTP_PHASE_RCPT;
	case SMTP_COMMAND_DATA:
		return SMTP_PHASE_DATA;
	}
	return SMTP_PHASE_MAIL;
}

/* --- command lines -------------------------------------------------- */

/* Appends " NOTIFY=... ORCPT=..." for a recipient when the server takes
 * DSN parameters and the spool has some (RFC 3461 sections 4.1, 4.2). */
static void
smtp_client_dsn_rcpt(const struct smtp_client *client, size_t i, char *out,
    size_t size)
{
	static const struct {
		int flag;
		const char *name;
	} notify[] = {
		{ 0x02, "NEVER" },	/* Exim's rf_notify_* bits */
		{ 0x04, "SUCCESS" },
		{ 0x08, "FAILURE" },
		{ 0x10, "DELAY" },
	};
	const struct spool_recipient *dsn;
	size_t n = strlen(out);
	const char *separator = " NOTIFY=";

	if (!client->ehlo.dsn || client->dsn == NULL ||
	    (dsn = client->dsn[i]) == NULL)
		return;
	for (size_t k = 0; k < ARRAY_SIZE(notify); k++) {
		if ((dsn->dsn_flags & notify[k].flag) == 0)
			continue;
		n += (size_t)snprintf(out + n, size - n, "%s%s", separator,
		    notify[k].name);
		separator = ",";
		if (notify[k].flag == 0x02)
			break;		/* NEVER stands alone */
	}
	if (dsn->orcpt != NULL && *dsn->orcpt != '\0' && n < size) {
		const char *semicolon = strchr(dsn->orcpt, ';');

		/* RFC 3461 section 4.2: "type;xtext". A spooled value in
		 * that form goes out as it is; anything else is taken as
		 * an address of type rfc822 and encoded. */
		if (semicolon != NULL && smtp_xtext_valid(semicolon + 1)) {
			snprintf(out + n, size - n, " ORCPT=%s", dsn->orcpt);
		} else {
			n += (size_t)snprintf(out + n, size - n,
			    " ORCPT=rfc822;");
			if (n < size)
				smtp_xtext_encode(semicolon != NULL ?
				    semicolon + 1 : dsn->orcpt, out + n,
				    size - n);
		}
	}
}

/* Writes the text of a transaction command into out (size bytes). */
static void
smtp_client_command_text(const struct smtp_client *client,
    const struct smtp_command *command, char *out, size_t size)
{
	const char *prefix = client->txn.pipelined ? "pipelined " : "";
	size_t n;

	switch (command->kind) {
	case SMTP_COMMAND_RSET:
		snprintf(out, size, "%sRSET", prefix);
		break;
	case SMTP_COMMAND_DATA:
		snprintf(out, size, "%sDATA", prefix);
		break;
	case SMTP_COMMAND_RCPT:
		snprintf(out, size, "%sRCPT TO:<%s>", prefix,
		    client->result->rcpts[command->rcpt].address);
		smtp_client_dsn_rcpt(client, command->rcpt, out, size);
		break;
	case SMTP_COMMAND_MAIL:
		n = (size_t)snprintf(out, size, "%sMAIL FROM:<%s>", prefix,
		    client->sender);
		if (client->ehlo.size && n < size) {
			uint64_t total = spool_header_size(client->header) +
			    1 + (uint64_t)(client->data_end - client->data_start);

			n += (size_t)snprintf(out + n, size - n, " SIZE=%llu",
			    (unsigned long long)total);
		}
		if (client->ehlo.smtputf8 && client->header->smtputf8 &&
		    n < size)
			n += (size_t)snprintf(out + n, size - n, " SMTPUTF8");
		if (client->ehlo.dsn && client->header->dsn_ret != 0 &&
		    n < size)
			n += (size_t)snprintf(out + n, size - n, " RET=%s",
			    client->header->dsn_ret == 1 ? "FULL" : "HDRS");
		/* As with ORCPT, a spooled value that is xtext already goes
		 * out as it is. */
		if (client->ehlo.dsn && client->header->dsn_envid != NULL &&
		    n + 7 < size) {
			const char *envid = client->header->dsn_envid;

			n += (size_t)snprintf(out + n, size - n, " ENVID=");
			if (smtp_xtext_valid(envid))
				strlcpy_s(out + n, envid, size - n);
			else
				smtp_xtext_encode(envid, out + n, size - n);
		}
		break;
	}
}

/* Sets client->after to the command whose reply is due next. */
static void
smtp_client_describe_head(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;

	if (txn->answered < txn->sent)
		smtp_client_command_text(client,
		    &txn->commands[txn->answered], client->after,
		    sizeof(client->after));
}

/* Writes the commands that may go out now: all of them with
 * PIPELINING, else the next one once every reply is in. */
static void
smtp_client_send_commands(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;
	char line[SMTP_COMMAND_MAX];

	while (txn->sent < txn->command_count &&
	    (txn->pipelined || txn->sent == txn->answered)) {
		const struct smtp_command *command = &txn->commands[txn->sent];

		smtp_client_command_text(client, command, line, sizeof(line));
		/* Only the log text carries the "pipelined " prefix. */
		smtp_client_write_line(client, txn->pipelined ?
		    line + strlen("pipelined ") : line);
		txn->sent++;
	}
	smtp_client_describe_head(client);
	smtp_reply_init(&client->reply);
	smtp_client_enter(client, SMTP_STATE_COMMANDS,
	    client->options.command_timeout_usec);
}

/* --- starting and ending -------------------------------------------- */

/* Recipients the next transaction may take. */
static size_t
smtp_client_batch_size(const struct smtp_client *client)
{
	size_t max = client->todo_count;

	if (client->options.max_rcpt > 0 && client->options.max_rcpt < max)
		max = client->options.max_rcpt;
	if (client->message_max_rcpt > 0 && client->message_max_rcpt < max)
		max = client->message_max_rcpt;
	if (client->ehlo.rcpt_max > 0 && client->ehlo.rcpt_max < max)
		max = client->ehlo.rcpt_max;
	return max;
}

/* Every recipient is decided: leave the connection idle for the next
 * message, or send QUIT. */
static void
smtp_client_message_end(struct smtp_client *client)
{
	if (client->options.keep_open && !client->quitting) {
		smtp_client_hand_over_idle(client);
		return;
	}
	smtp_client_send_quit(client);
}

void
smtp_client_next_transaction(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;
	size_t batch;

	smtp_client_transaction_clear(txn);
	if (client->todo_count == 0) {
		smtp_client_message_end(client);
		return;
	}
	/* A message received with SMTPUTF8 (RFC 6531) may contain UTF-8
	 * in addresses and header fields. sluice does not downgrade it, so
	 * it goes only to a server that offers SMTPUTF8. */
	if (client->header->smtputf8 && !client->ehlo.smtputf8) {
		smtp_client_decide_rest(client, SMTP_FAILED,
		    SMTP_ERROR_PROTOCOL, 0, NULL, "the message needs SMTPUTF8 "
		    "(RFC 6531), which the remote server does not offer");
		smtp_client_message_end(client);
		return;
	}

	batch = smtp_client_batch_size(client);
	txn->number = ++client->transactions;
	txn->pipelined = client->ehlo.pipelining;
	txn->commands = xcalloc(batch + 3, sizeof(*txn->commands));
	txn->accepted = xcalloc(batch, sizeof(*txn->accepted));
	txn->again = xcalloc(batch, sizeof(*txn->again));
	if (client->need_rset)
		txn->commands[txn->command_count++].kind = SMTP_COMMAND_RSET;
	txn->commands[txn->command_count++].kind = SMTP_COMMAND_MAIL;
	for (size_t i = 0; i < batch; i++) {
		struct smtp_command *command =
		    &txn->commands[txn->command_count++];

		command->kind = SMTP_COMMAND_RCPT;
		command->rcpt = client->todo[i];
	}
	txn->commands[txn->command_count++].kind = SMTP_COMMAND_DATA;
	client->todo_count -= batch;
	memmove(client->todo, client->todo + batch,
	    client->todo_count * sizeof(*client->todo));
	/* Until the final dot is answered, the server may hold state of
	 * this transaction. */
	client->need_rset = true;
	smtp_client_send_commands(client);
}

/* Keeps a 452 reply on the recipient, to defer it with later if it is
 * not tried again. */
static void
smtp_client_note_again(struct smtp_client *client, size_t i)
{
	struct smtp_transaction *txn = &client->txn;
	struct smtp_rcpt_result *r = &client->result->rcpts[i];

	free(r->reply);
	free(r->after);
	r->code = client->reply.code;
	r->reply = xstrndup(client->reply.text, client->reply.len);
	r->after = xstrdup(client->after);
	txn->again[txn->again_count++] = i;
}

static void
smtp_client_transaction_end(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;

	if (txn->again_count > 0 && txn->accepted_count > 0) {
		/* Progress was made: try them in the next transaction,
		 * ahead of the recipients not sent yet. */
		memmove(client->todo + txn->again_count, client->todo,
		    client->todo_count * sizeof(*client->todo));
		memcpy(client->todo, txn->again,
		    txn->again_count * sizeof(*client->todo));
		client->todo_count += txn->again_count;
	} else {
		for (size_t k = 0; k < txn->again_count; k++) {
			size_t i = txn->again[k];
			struct smtp_rcpt_result *r = &client->result->rcpts[i];
			struct smtp_reply reply;

			/* Restore the reply noted for this recipient. */
			smtp_reply_init(&reply);
			reply.code = r->code;
			reply.len = strlen(r->reply);
			memcpy(reply.text, r->reply, reply.len + 1);
			strlcpy_s(client->after, r->after,
			    sizeof(client->after));
			smtp_client_decide(client, i, SMTP_DEFERRED,
			    SMTP_ERROR_REPLY, 0, &reply,
			    smtp_client_reply_message(client, &reply));
			/* Decided now, but by the reply to its RCPT. */
			r->phase = SMTP_PHASE_RCPT;
		}
	}
	txn->again_count = 0;
	smtp_client_next_transaction(client);
}

/* --- replies -------------------------------------------------------- */

/* Decides every recipient the transaction accepted, with the reply. */
static void
smtp_client_decide_accepted(struct smtp_client *client,
    enum smtp_outcome outcome, enum smtp_error_kind kind)
{
	struct smtp_transaction *txn = &client->txn;
	char *message = outcome == SMTP_DELIVERED ? NULL :
	    smtp_client_reply_message(client, &client->reply);

	for (size_t k = 0; k < txn->accepted_count; k++)
		smtp_client_decide(client, txn->accepted[k], outcome, kind, 0,
		    &client->reply, message != NULL ? xstrdup(message) : NULL);
	free(message);
}

/* MAIL (or the RSET before it) was refused: the transaction decides
 * nothing more, and its recipients and those waiting get the reply. */
static void
smtp_client_mail_refused(struct smtp_client *client)
{
	char *message = smtp_client_reply_message(client, &client->reply);

	client->txn.mail_failed = true;
	smtp_client_decide_rest(client, smtp_outcome_of(client->reply.code),
	    SMTP_ERROR_REPLY, 0, &client->reply, message);
	free(message);
}

static void
smtp_client_rcpt_reply(struct smtp_client *client, size_t i)
{
	struct smtp_transaction *txn = &client->txn;
	int code = client->reply.code;

	if (txn->mail_failed)
		return;		/* already decided with the MAIL reply */
	if (code >= 200 && code < 300)
		txn->accepted[txn->accepted_count++] = i;
	else if (code == SMTP_TOO_MANY_RECIPIENTS)
		smtp_client_note_again(client, i);
	else
		smtp_client_decide(client, i, smtp_outcome_of(code),
		    SMTP_ERROR_REPLY, 0, &client->reply,
		    smtp_client_reply_message(client, &client->reply));
}

/* Acts on the reply to DATA. Returns false when the session ended. */
static bool
smtp_client_data_reply(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;
	int code = client->reply.code;

	if (code >= 300 && code < 400) {
		if (txn->accepted_count == 0) {
			/* RFC 2920 section 3.1: the server must reject DATA
			 * when no recipient was accepted. Sending the dot
			 * now would make an empty message, so close. */
			smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
			    xasprintf("%d reply to DATA without an accepted "
			    "recipient", code));
			return false;
		}
		client->state = SMTP_STATE_BODY;
		smtp_reply_init(&client->reply);
		client->data_offset = client->data_start;
		smtp_client_queue_header_and_body(client);
		return false;
	}
	if (code >= 200 && code < 300) {
		smtp_client_fail(client, SMTP_ERROR_PROTOCOL, 0,
		    xasprintf("unexpected reply to DATA: %.*s",
		    (int)client->reply.len, client->reply.text));
		return false;
	}
	/* A refused DATA after no accepted recipient is expected with
	 * PIPELINING and decides nothing. */
	if (txn->accepted_count > 0)
		smtp_client_decide_accepted(client, smtp_outcome_of(code),
		    SMTP_ERROR_REPLY);
	txn->accepted_count = 0;
	return true;
}

void
smtp_client_transaction_reply(struct smtp_client *client)
{
	struct smtp_transaction *txn = &client->txn;
	const struct smtp_command *command;
	int code = client->reply.code;
	bool positive = code >= 200 && code < 300;

	SLUICE_ASSERT(txn->answered < txn->sent);
	command = &txn->commands[txn->answered];
	smtp_client_command_text(client, command, client->after,
	    sizeof(client->after));
	switch (command->kind) {
	case SMTP_COMMAND_RSET:
	case SMTP_COMMAND_MAIL:
		if (!positive && !txn->mail_failed)
			smtp_client_mail_refused(client);
		break;
	case SMTP_COMMAND_RCPT:
		smtp_client_rcpt_reply(client, command->rcpt);
		break;
	case SMTP_COMMAND_DATA:
		if (!smtp_client_data_reply(client))
			return;
		break;
	}
	txn->answered++;

	/* Without PIPELINING, stop early where the next command is
	 * pointless: everything failed, or DATA with no recipient. */
	if (!txn->pipelined && txn->answered == txn->sent) {
		bool data_next = txn->sent + 1 == txn->command_count;

		if (txn->mail_failed ||
		    (data_next && txn->accepted_count == 0))
			txn->command_count = txn->sent;
	}
	if (txn->answered == txn->command_count) {
		smtp_client_transaction_end(client);
		return;
	}
	smtp_client_send_commands(client);
}

void
smtp_client_dot_reply(struct smtp_client *client)
{
	int code = client->reply.code;

	client->need_rset = false;
	if (code >= 200 && code < 300)
		smtp_client_decide_accepted(client, SMTP_DELIVERED,
		    SMTP_ERROR_NONE);
	else
		smtp_client_decide_accepted(client, smtp_outcome_of(code),
		    SMTP_ERROR_REPLY);
	/* accepted_count stays, because the end of the transaction reads
	 * it: when the server took recipients, 452s may be tried again. */
	smtp_client_transaction_end(client);
}

/* --- the message ---------------------------------------------------- */

/* Queues the header fields and the blank line after them, then the
 * first body blocks. */
void
smtp_client_queue_header_and_body(struct smtp_client *client)
{
	struct evbuffer *output = bufferevent_get_output(client->bev);
	const struct spool_header *h = client->header;
	char end[SMTP_DOT_FINISH_MAX];

	bufferevent_setwatermark(client->bev, EV_WRITE, SMTP_OUTPUT_LOW, 0);
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
	smtp_client_fill_body(client);
}

/*
 * Reads body blocks into the output buffer up to SMTP_OUTPUT_HIGH. At
 * the end of the file, adds the final dot and waits for its reply.
 *
 * NOTE: pread() runs on the loop thread. The -D file is usually in the
 * page cache, but a read from a slow disk stalls every connection while
 * it lasts. Reading ahead in a worker thread would remove that.
 */
void
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
			/* The final timeout starts when the dot has left, which
			 * the write callback learns at an empty buffer. */
			client->state = SMTP_STATE_DOT;
			bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
			return;
		}
		client->data_offset += got;
		evbuffer_add(output, wire, smtp_dot_encode(&client->encoder,
		    block, (size_t)got, wire));
	}
}

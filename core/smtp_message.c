/*
 * smtp_message.c - the message of a mail transaction: its content after
 * DATA, streamed to the -D file, and its hand-over to the spool.
 *
 * After the final dot a message is either rejected (the content reader
 * latched an error, or it cannot be stored) or queued for commit. The
 * session waits in SMTP_STATE_COMMIT, reading no further commands, until
 * the spool store reports the -D and -H files durable. Only then does
 * the client get "250 OK id=<id>" and mainlog the "<=" line. A commit
 * holds a reference to its session, so it completes and is logged even
 * when the client has gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "receive.h"
#include "smtp_server_private.h"
#include "spool_store.h"
#include "util.h"

static int
smtp_message_body_write(void *arg, const char *buf, size_t len)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	if (spool_data_write(tx->data, buf, len, &tx->write_error) < 0)
		return -1;
	return 0;
}

int
smtp_message_begin(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	struct smtp_tx *tx = s->tx;
	char *error = NULL;

	clock_now_tv(&tx->received);
	msgid_new(c->message_id_format, tx->id);
	tx->data = spool_store_data_create(smtp_server.store, tx->id, &error);
	if (tx->data == NULL) {
		log_write(LOG_MAIN | LOG_PANIC, tx->id, "cannot create the spool "
		    "data file: %s", error);
		free(error);
		smtp_server_reply(s, "451 Temporary local problem - please try "
		    "later");
		return -1;
	}
	smtp_data_init(&tx->reader);
	tx->reader.size_limit = c->message_size_limit > 0 ?
	    (uint64_t)c->message_size_limit : 0;
	tx->reader.write = smtp_message_body_write;
	tx->reader.write_arg = s;
	smtp_server_enter_state(s, SMTP_STATE_DATA);
	return 0;
}

/* Describes the transaction of s for the receive module; every pointer
 * is borrowed from s. */
static void
smtp_message_describe(struct smtp_session *s, struct receive_message *m)
{
	struct smtp_tx *tx = s->tx;
	const struct smtp_data_reader *r = &tx->reader;

	memset(m, 0, sizeof(*m));
	m->id = tx->id;
	m->sender = tx->sender;
	m->recipients = (const char *const *)tx->recipients;
	m->recipient_count = tx->recipient_count;
	m->helo = s->helo[0] != '\0' ? s->helo : NULL;
	m->host_ip = s->peer_ip;
	m->host_port = s->peer_port;
	m->interface_ip = s->local_ip[0] != '\0' ? s->local_ip : NULL;
	m->interface_port = s->local_port;
	m->protocol = s->esmtp ? "esmtp" : "smtp";
	m->login = smtp_server.login;
	m->uid = smtp_server.uid;
	m->gid = smtp_server.gid;
	m->received = tx->received;
	m->completed = tx->completed;
	m->headers = r->headers != NULL ? r->headers : "";
	m->headers_len = r->headers_len;
	m->body_size = r->body_size;
	m->body_lines = r->body_lines;
	m->body_zeros = r->body_zeros;
	m->max_line_len = r->max_line_len;
}

/* Rejects the message after its final dot: logs, replies and ends the
 * transaction. */
static void
smtp_message_reject(struct smtp_session *s, const char *reply,
    const char *reason)
{
	struct smtp_tx *tx = s->tx;
	struct log_reject reject = { .sender = tx->sender,
	    .stage = "after DATA", .reason = reason };

	smtp_server_log_host(s, &reject.host);
	log_line_reject(tx->id, &reject);
	smtp_server.stats.messages_rejected++;
	smtp_server_tx_free(s);
	smtp_server_enter_state(s, SMTP_STATE_READY);
	smtp_server_reply(s, reply);
}

/* Replies 451 to a message that could not be stored for a local
 * reason, and logs why. */
static void
smtp_message_fail(struct smtp_session *s, const char *error)
{
	log_write(LOG_MAIN | LOG_PANIC, s->tx->id, "message not accepted: %s",
	    error);
	smtp_server.stats.messages_failed++;
	smtp_server_tx_free(s);
	smtp_server_enter_state(s, SMTP_STATE_READY);
	smtp_server_reply(s, "451 Error while writing spool file");
}

/* The reply and log reason for a content error the reader latched. */
static void
smtp_message_content_error(struct smtp_session *s)
{
	const struct smtp_data_reader *r = &s->tx->reader;
	char reason[256];

	switch (r->error) {
	case SMTP_DATA_SMUGGLING:
		smtp_message_reject(s, "550 bare LF or CR next to a dot: "
		    "possible SMTP smuggling", "bare LF or CR next to a dot: "
		    "possible SMTP smuggling");
		break;
	case SMTP_DATA_TOO_BIG:
		snprintf(reason, sizeof(reason), "message too big: read=%llu "
		    "max=%llu", (unsigned long long)r->size,
		    (unsigned long long)r->size_limit);
		smtp_message_reject(s, "552 Message size exceeds maximum "
		    "permitted", reason);
		break;
	case SMTP_DATA_HEADER_TOO_BIG:
		snprintf(reason, sizeof(reason), "header section over %d bytes "
		    "or %d lines", SMTP_HEADER_BYTES_MAX, SMTP_HEADER_LINES_MAX);
		smtp_message_reject(s, "552 Message header is ridiculously "
		    "long", reason);
		break;
	case SMTP_DATA_LOOP:
		smtp_message_reject(s, "550 Too many \"Received\" headers - "
		    "suspected mail loop", "Too many \"Received\" headers - "
		    "suspected mail loop");
		break;
	case SMTP_DATA_WRITE_FAILED:
		smtp_message_fail(s, s->tx->write_error != NULL ?
		    s->tx->write_error : "cannot write the data file");
		break;
	case SMTP_DATA_OK:
		fatal_bug("content error reported without an error");
	}
}

static void
smtp_message_commit_cb(void *arg, int result, const char *error)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	struct receive_message m;

	if (result == 0) {
		smtp_message_describe(s, &m);
		receive_log_arrival(&m, &tx->header);
		smtp_server.stats.messages_accepted++;
		s->messages++;
		smtp_server_replyf(s, "250 OK id=%s", tx->id);
		if (smtp_server.arrival_fn != NULL)
			smtp_server.arrival_fn(smtp_server.arrival_arg, tx->id);
	} else {
		log_write(LOG_MAIN | LOG_PANIC, tx->id, "spool commit failed: %s",
		    error);
		smtp_server.stats.messages_failed++;
		smtp_server_reply(s, "451 Error while writing spool file");
	}
	smtp_server_tx_free(s);

	/* Commands the client pipelined after the final dot get their
	 * replies only now. */
	if (s->bev != NULL) {
		smtp_server_enter_state(s, SMTP_STATE_READY);
		smtp_server_process(s);
	}
	smtp_server_unref(s);	/* the commit's reference; s may be gone */
}

/* The final dot was read: refuse the message, or hand it to the spool. */
static void
smtp_message_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct receive_message m;
	struct spool_data *data;
	char *error = NULL;
	char *header;
	size_t len;

	clock_now_tv(&tx->completed);
	if (tx->reader.error != SMTP_DATA_OK) {
		smtp_message_content_error(s);
		return;
	}

	smtp_message_describe(s, &m);
	if (receive_build_header(smtp_server.config, &m, &tx->header,
	    &error) < 0) {
		smtp_message_reject(s, "552 Message header is ridiculously "
		    "long", error);
		free(error);
		return;
	}
	if ((header = spool_header_format(&tx->header, &len)) == NULL) {
		smtp_message_fail(s, "the -H file cannot hold the message");
		return;
	}

	/* The store owns the -D file from here on. */
	data = tx->data;
	tx->data = NULL;
	smtp_server_enter_state(s, SMTP_STATE_COMMIT);
	smtp_server_ref(s);
	spool_store_commit(smtp_server.store, data, header, len,
	    smtp_message_commit_cb, s);
	free(header);
}

void
smtp_message_feed(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec chunk;
	size_t n;

	if (evbuffer_peek(in, -1, NULL, &chunk, 1) < 1)
		return;
	n = smtp_data_feed(&s->tx->reader, chunk.iov_base, chunk.iov_len);
	evbuffer_drain(in, n);
	if (s->tx->reader.done)
		smtp_message_end(s);
}

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
 *
 * Disk space: MAIL gets 452 while the spool or log directory
 * has less free space or fewer free inodes than check_spool_space,
 * check_spool_inodes, check_log_space and check_log_inodes ask for
 * (plus the size MAIL declares). A write that fails anyway for lack of
 * space, while the body streams in or at the commit, gets 452 too, and
 * the message's files are removed.
 *
 * In host checking mode (-bh) nothing is written: the content is read,
 * checked and dropped, and the reply names an id that is not real.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "policy.h"
#include "receive.h"
#include "smtp_policy.h"
#include "smtp_server_private.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

/* True if err means the file system is full (or the quota used up). */
static bool
smtp_message_errno_no_space(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

static int
smtp_message_body_write(void *arg, const char *buf, size_t len)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	if (smtp_server.host_checking)
		return 0;	/* -bh: the content is counted, not kept */
	if (spool_data_write(tx->data, buf, len, &tx->write_error) < 0) {
		tx->write_no_space = smtp_message_errno_no_space(errno);
		return -1;
	}
	return 0;
}

/*
 * Checks one directory against a space and an inode minimum, as Exim's
 * check_*_space and check_*_inodes. extra is added to the space needed.
 * Returns false after logging "<what> directory space check failed".
 */
static bool
smtp_message_directory_ok(const char *what, const char *path,
    int64_t min_space, int min_inodes, uint64_t extra)
{
	struct statvfs st;
	uint64_t space_kb, need_kb;
	int64_t inodes;

	if ((min_space <= 0 && extra == 0 && min_inodes <= 0) || path == NULL ||
	    path[0] == '\0')
		return true;
	if (statvfs(path, &st) < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "cannot check the free space "
		    "of the %s directory %s: %s", what, path, strerror(errno));
		return false;
	}
	space_kb = (uint64_t)st.f_bavail * st.f_frsize / 1024;
	need_kb = (min_space > 0 ? (uint64_t)min_space / 1024 : 0) +
	    extra / 1024;
	/* Some file systems (btrfs) have no inode limit and report 0. */
	inodes = st.f_files > 0 ? (int64_t)st.f_favail : INT64_MAX;
	if (space_kb >= need_kb && (min_inodes <= 0 || inodes >= min_inodes))
		return true;
	log_write(LOG_MAIN, NULL, "%s directory space check failed: space=%llu "
	    "inodes=%lld", what, (unsigned long long)space_kb,
	    (long long)(inodes == INT64_MAX ? -1 : inodes));
	return false;
}

/*
 * The directory of the log files, taken from the first file item of
 * log_file_path (the part before its last '/'), or <spool>/log. Writes
 * "" when logs go only to syslog, or when the directory depends on the
 * date (%D or %M), which cannot be checked in advance.
 */
static void
smtp_message_log_directory(const struct config *c, char *buf, size_t size)
{
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];
	const char *slash;

	buf[0] = '\0';
	if (c->log_file_path == NULL || c->log_file_path[0] == '\0') {
		snprintf(buf, size, "%s/log", c->spool_directory);
		return;
	}
	config_list_init(&iter, c->log_file_path);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (strcmp(item, "syslog") == 0 || item[0] == '\0')
			continue;
		if ((slash = strrchr(item, '/')) == NULL)
			snprintf(buf, size, ".");
		else if (memchr(item, '%', (size_t)(slash - item)) == NULL)
			snprintf(buf, size, "%.*s", (int)(slash - item), item);
		return;
	}
}

bool
smtp_message_check_space(struct smtp_session *s, uint64_t declared_size)
{
	const struct config *c = smtp_server.config;
	char log_dir[CONFIG_LIST_ITEM_MAX + 1];

	if (smtp_server.host_checking)
		return true;	/* -bh stores nothing */
	smtp_message_log_directory(c, log_dir, sizeof(log_dir));
	if (smtp_message_directory_ok("spool", c->spool_directory,
	    c->check_spool_space, c->check_spool_inodes, declared_size) &&
	    smtp_message_directory_ok("log", log_dir, c->check_log_space,
	    c->check_log_inodes, 0))
		return true;
	smtp_server_reply(s, "452 Space shortage, please try later");
	return false;
}

int
smtp_message_begin(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	struct smtp_tx *tx = s->tx;
	struct smtp_data_reader *r = &tx->reader;
	char *error = NULL;

	clock_now_tv(&tx->received);
	msgid_new(c->message_id_format, tx->id);
	if (!smtp_server.host_checking) {
		tx->data = spool_store_data_create(smtp_server.store, tx->id,
		    &error);
		if (tx->data == NULL) {
			log_write(LOG_MAIN | LOG_PANIC, tx->id, "cannot create the "
			    "spool data file: %s", error);
			free(error);
			smtp_server_reply(s, "451 Temporary local problem - please "
			    "try later");
			return -1;
		}
	}
	smtp_data_init(r);
	r->size_limit = c->message_size_limit > 0 ?
	    (uint64_t)c->message_size_limit : 0;
	r->write = smtp_message_body_write;
	r->write_arg = s;
	/* An option of 0 leaves the spool's own limit. */
	if (c->header_maxsize > 0)
		r->header_max = (size_t)c->header_maxsize;
	else
		r->header_max = SPOOL_HEADER_FIELDS_BYTES_MAX;
	if (c->header_line_maxsize > 0)
		r->header_line_max = (size_t)c->header_line_maxsize;
	r->header_line_max = r->header_line_max < SPOOL_HEADER_FIELD_MAX ?
	    r->header_line_max : SPOOL_HEADER_FIELD_MAX;
	r->header_fields_max = SPOOL_HEADER_FIELDS_MAX;
	r->received_max = (unsigned)c->received_headers_max;
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
	/* Exim's names: "s" for TLS, "a" for AUTH, in that order, and a
	 * "utf8" prefix when MAIL had SMTPUTF8. */
	if (!s->esmtp)
		m->protocol = s->tls ? "smtps" : "smtp";
	else if (s->auth_id[0] != '\0' && tx->smtputf8)
		m->protocol = s->tls ? "utf8esmtpsa" : "utf8esmtpa";
	else if (s->auth_id[0] != '\0')
		m->protocol = s->tls ? "esmtpsa" : "esmtpa";
	else if (tx->smtputf8)
		m->protocol = s->tls ? "utf8esmtps" : "utf8esmtp";
	else
		m->protocol = s->tls ? "esmtps" : "esmtp";
	m->chunking = tx->chunking;
	m->smtputf8 = tx->smtputf8;
	m->dsn_ret = tx->dsn_ret;
	m->dsn_envid = tx->dsn_envid;
	m->orcpts = (const char *const *)tx->orcpts;
	m->dsn_notify = tx->dsn_notify;
	m->submission = s->submission;
	if (s->auth_id[0] != '\0') {
		m->authenticator = s->authenticator;
		m->auth_id = s->auth_id;
	}
	if (s->tls) {
		m->tls_cipher = s->tls_cipher;
		m->tls_version = s->tls_version;
		m->tls_standard = s->tls_standard;
		m->tls_verified = s->tls_verified;
		if (s->tls_peer_dn[0] != '\0')
			m->tls_peer_dn = s->tls_peer_dn;
		if (s->tls_sni[0] != '\0')
			m->tls_sni = s->tls_sni;
	}
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

/* The reply to a message that could not be stored: 452 when the disk
 * is full, which the client should take as "try later" (RFC 5321
 * 4.2.2), else Exim's 451. */
static const char *
smtp_message_fail_reply(bool no_space)
{
	return no_space ? "452 Space shortage, please try later" :
	    "451 Error while writing spool file";
}

/* Replies to a message that could not be stored for a local reason, and
 * logs why; ending the transaction removes its -D file. */
static void
smtp_message_fail(struct smtp_session *s, const char *error, bool no_space)
{
	log_write(LOG_MAIN | LOG_PANIC, s->tx->id, "message not accepted: %s",
	    error);
	smtp_server.stats.messages_failed++;
	smtp_server_tx_free(s);
	smtp_server_enter_state(s, SMTP_STATE_READY);
	smtp_server_reply(s, smtp_message_fail_reply(no_space));
}

/* Logs the header limit that a message broke, in Exim's words. */
static void
smtp_message_log_header_limit(struct smtp_session *s, const char *what,
    size_t limit)
{
	char host[SMTP_SERVER_HOST_TEXT_SIZE];

	smtp_server_host_text(s, host, sizeof(host));
	log_write(LOG_MAIN, s->tx->id, "%s received from %s (more than %zu "
	    "characters): message abandoned", what, host, limit);
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
		if (r->header_fields > r->header_fields_max) {
			snprintf(reason, sizeof(reason), "more than %u header "
			    "fields", r->header_fields_max);
		} else {
			smtp_message_log_header_limit(s, "ridiculously long "
			    "message header", r->header_max);
			snprintf(reason, sizeof(reason), "header section over %zu "
			    "bytes", r->header_max);
		}
		smtp_message_reject(s, "552 Message header is ridiculously "
		    "long", reason);
		break;
	case SMTP_DATA_HEADER_LINE_TOO_LONG:
		smtp_message_log_header_limit(s, "overlong message header line",
		    r->header_line_max);
		snprintf(reason, sizeof(reason), "header field over %zu bytes",
		    r->header_line_max);
		smtp_message_reject(s, "552 A message header line is too long",
		    reason);
		break;
	case SMTP_DATA_LOOP:
		smtp_message_reject(s, "550 Too many \"Received\" headers - "
		    "suspected mail loop", "Too many \"Received\" headers - "
		    "suspected mail loop");
		break;
	case SMTP_DATA_WRITE_FAILED:
		smtp_message_fail(s, s->tx->write_error != NULL ?
		    s->tx->write_error : "cannot write the data file",
		    s->tx->write_no_space);
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
		/* NOTE: the store reports errors as text, so a full disk is
		 * recognised by strerror()'s words; a store result with the
		 * errno would be exact. */
		smtp_server_reply(s, smtp_message_fail_reply(
		    strstr(error, strerror(ENOSPC)) != NULL ||
		    strstr(error, strerror(EDQUOT)) != NULL));
	}
	smtp_server_tx_free(s);

	/* Commands the client pipelined after the final dot get their
	 * replies only now. */
	if (s->bev != NULL && !smtp_limits_commit_done(s)) {
		smtp_server_enter_state(s, SMTP_STATE_READY);
		smtp_server_process(s);
	}
	smtp_server_unref(s);	/* the commit's reference; s may be gone */
}

/* -bh: the message passed every check, so the reply is the one a stored
 * message gets. */
static void
smtp_message_end_test(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct receive_message m;

	smtp_message_describe(s, &m);
	receive_log_arrival(&m, &tx->header);
	smtp_server_replyf(s, "250 OK id=%s", tx->id);
	/* Exim's notice, which is not a reply line. */
	if (s->bev != NULL)
		evbuffer_add_printf(bufferevent_get_output(s->bev), "\n**** SMTP "
		    "testing: that is not a real message id!\n\n");
	s->messages++;
	smtp_server_tx_free(s);
	smtp_server_enter_state(s, SMTP_STATE_READY);
}

/* The final dot was read: refuse the message, or hand it to the spool. */
static void
smtp_message_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct receive_message m;
	struct spool_data *data;
	char reply[POLICY_REPLY_TEXT_MAX + 8];
	const char *reason;
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
	/* The policy gets the header as it will be spooled, and may change
	 * it or reject the message. */
	if (!smtp_policy_check_message(s, reply, sizeof(reply), &reason)) {
		smtp_message_reject(s, reply, reason);
		return;
	}
	if ((header = spool_header_format(&tx->header, &len)) == NULL) {
		smtp_message_fail(s, "the -H file cannot hold the message", false);
		return;
	}
	if (smtp_server.host_checking) {
		free(header);
		smtp_message_end_test(s);
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
smtp_message_chunk(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec chunk;
	size_t n;

	if (evbuffer_peek(in, -1, NULL, &chunk, 1) < 1)
		return;
	n = chunk.iov_len < s->bdat_remaining ? chunk.iov_len :
	    (size_t)s->bdat_remaining;
	if (!s->bdat_discard && s->tx != NULL)
		smtp_data_feed_chunk(&s->tx->reader, chunk.iov_base, n);
	evbuffer_drain(in, n);
	s->bdat_remaining -= n;
	if (s->bdat_remaining == 0)
		smtp_message_chunk_done(s);
}

void
smtp_message_chunk_done(struct smtp_session *s)
{
	if (s->bdat_discard) {
		s->bdat_discard = false;
		return;
	}
	if (s->bdat_last) {
		smtp_data_finish_chunks(&s->tx->reader);
		smtp_message_end(s);
		return;
	}
	smtp_server_enter_state(s, SMTP_STATE_RCPT);
	smtp_server_replyf(s, "250 %llu byte chunk received",
	    (unsigned long long)s->bdat_size);
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

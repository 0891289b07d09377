/*
 * smtp_policy.c - the SMTP session's calls into the Lua policy (see
 * smtp_policy.h).
 *
 * A policy's reject or defer is logged to rejectlog and mainlog as
 * Exim logs an ACL's: "H=... F=<...> rejected RCPT <...>: text", with
 * "temporarily rejected" for 4xx. A handler that failed is logged by
 * the policy engine, and the client gets 451. A recipient in the
 * suppression table (sluice.suppress) gets 550 with its reason.
 */
#include <stdio.h>
#include <string.h>

#include "log_line.h"
#include "policy.h"
#include "policy_tables.h"
#include "receive.h"
#include "smtp_policy.h"
#include "smtp_server_private.h"
#include "spool_header.h"
#include "util.h"

#define SMTP_POLICY_FAILED_REPLY \
	"451 Temporary local problem - please try later"

void
smtp_policy_session_start(struct smtp_session *s)
{
	s->policy = policy_current();
}

void
smtp_policy_session_end(struct smtp_session *s)
{
	policy_state_unref(s->policy);
	s->policy = NULL;
}

/* Describes the connection of s; strings are borrowed from s. */
static void
smtp_policy_conn(const struct smtp_session *s, struct policy_conn *conn)
{
	memset(conn, 0, sizeof(*conn));
	conn->ip = s->peer_ip;
	conn->port = s->peer_port;
	conn->local_ip = s->local_ip;
	conn->local_port = s->local_port;
	conn->helo = s->helo[0] != '\0' ? s->helo : NULL;
	/* NOTE: sessions have no STARTTLS or AUTH yet, so tls is false and
	 * auth_id nil for every client. */
	conn->tls = false;
	conn->auth_id = NULL;
}

/* Writes the verdict of event to the -bh trace. */
static void
smtp_policy_trace(const struct smtp_session *s, const char *event,
    const struct policy_verdict *v)
{
	char text[POLICY_REPLY_TEXT_MAX + 64];

	if (!policy_has_handler(s->policy, event) &&
	    v->action == POLICY_CONTINUE) {
		smtp_server_trace("policy %s: no handler", event);
		return;
	}
	policy_verdict_text(v, text, sizeof(text));
	smtp_server_trace("policy %s: %s", event, text);
}

/*
 * Answers a verdict that stops the command: logs a reject or defer and
 * sends its reply, or 451 for a failed handler. stage and address are
 * for the reject log (address may be NULL). Returns false when it
 * replied, true for CONTINUE and RELAY.
 */
static bool
smtp_policy_answer(struct smtp_session *s, const struct policy_verdict *v,
    const char *stage, const char *address)
{
	struct log_reject reject = { .stage = stage, .address = address };

	switch (v->action) {
	case POLICY_CONTINUE:
	case POLICY_RELAY:
		return true;
	case POLICY_FAILED:
		smtp_server_reply(s, SMTP_POLICY_FAILED_REPLY);
		return false;
	case POLICY_REJECT:
	case POLICY_DEFER:
		break;
	}
	smtp_server_log_host(s, &reject.host);
	reject.sender = s->tx != NULL ? s->tx->sender : NULL;
	reject.temporary = v->action == POLICY_DEFER;
	reject.reason = v->text;
	log_line_reject(NULL, &reject);
	smtp_server_replyf(s, "%d %s", v->code, v->text);
	return false;
}

bool
smtp_policy_check_connect(struct smtp_session *s)
{
	struct policy_conn conn;
	struct policy_verdict v;
	char reply[POLICY_REPLY_TEXT_MAX + 8];

	policy_refresh(&s->policy, false);
	if (s->policy == NULL)
		return true;
	smtp_policy_conn(s, &conn);
	policy_connect(s->policy, &conn, &v);
	smtp_policy_trace(s, "connect", &v);
	if (v.action == POLICY_CONTINUE || v.action == POLICY_RELAY)
		return true;
	if (v.action == POLICY_FAILED) {
		smtp_server_reply_and_close(s, SMTP_POLICY_FAILED_REPLY);
		return false;
	}
	{
		struct log_reject reject = { .stage = "connection",
		    .temporary = v.action == POLICY_DEFER, .reason = v.text };

		smtp_server_log_host(s, &reject.host);
		log_line_reject(NULL, &reject);
	}
	snprintf(reply, sizeof(reply), "%d %s", v.code, v.text);
	smtp_server_reply_and_close(s, reply);
	return false;
}

bool
smtp_policy_check_helo(struct smtp_session *s, const char *name)
{
	struct policy_conn conn;
	struct policy_verdict v;

	policy_refresh(&s->policy, false);
	if (s->policy == NULL)
		return true;
	smtp_policy_conn(s, &conn);
	policy_helo(s->policy, &conn, name, &v);
	smtp_policy_trace(s, "helo", &v);
	return smtp_policy_answer(s, &v, "EHLO or HELO", NULL);
}

bool
smtp_policy_check_mail(struct smtp_session *s, const char *sender)
{
	struct policy_conn conn;
	struct policy_tx tx = { .sender = sender };
	struct policy_verdict v;

	/* A transaction starts here: the session takes up the newest
	 * policy. */
	policy_refresh(&s->policy, true);
	if (s->policy == NULL)
		return true;
	smtp_policy_conn(s, &conn);
	policy_mail(s->policy, &conn, &tx, sender, &v);
	smtp_policy_trace(s, "mail", &v);
	return smtp_policy_answer(s, &v, "MAIL", sender);
}

/* Describes the transaction of s; strings are borrowed from it. */
static void
smtp_policy_tx(const struct smtp_session *s, struct policy_tx *tx)
{
	tx->sender = s->tx->sender;
	tx->recipients = (const char *const *)s->tx->recipients;
	tx->recipient_count = s->tx->recipient_count;
}

int
smtp_policy_check_rcpt(struct smtp_session *s, const char *rcpt)
{
	struct policy_conn conn;
	struct policy_tx tx;
	struct policy_verdict v;
	const char *reason;

	/* A suppressed recipient is rejected with or without a policy
	 * script, and before its rcpt handler runs. */
	if ((reason = policy_suppress_check(rcpt)) != NULL) {
		v.action = POLICY_REJECT;
		v.code = 550;
		strlcpy_s(v.text, reason, sizeof(v.text));
		smtp_policy_trace(s, "suppress", &v);
		smtp_policy_answer(s, &v, "RCPT", rcpt);
		return -1;
	}
	policy_refresh(&s->policy, false);
	if (s->policy == NULL)
		return 0;
	smtp_policy_conn(s, &conn);
	smtp_policy_tx(s, &tx);
	policy_rcpt(s->policy, &conn, &tx, rcpt, &v);
	smtp_policy_trace(s, "rcpt", &v);
	if (!smtp_policy_answer(s, &v, "RCPT", rcpt))
		return -1;
	return v.action == POLICY_RELAY ? 1 : 0;
}

bool
smtp_policy_check_data(struct smtp_session *s)
{
	struct policy_conn conn;
	struct policy_tx tx;
	struct policy_verdict v;

	policy_refresh(&s->policy, false);
	if (s->policy == NULL)
		return true;
	smtp_policy_conn(s, &conn);
	smtp_policy_tx(s, &tx);
	policy_data(s->policy, &conn, &tx, &v);
	smtp_policy_trace(s, "data", &v);
	return smtp_policy_answer(s, &v, "DATA", NULL);
}

bool
smtp_policy_check_message(struct smtp_session *s, char *reply, size_t size,
    const char **reason)
{
	struct smtp_tx *tx = s->tx;
	struct policy_message msg;
	struct policy_verdict v;

	policy_refresh(&s->policy, false);
	if (s->policy == NULL)
		return true;
	memset(&msg, 0, sizeof(msg));
	msg.id = tx->id;
	msg.sender = tx->sender;
	msg.recipients = (const char *const *)tx->recipients;
	msg.recipient_count = tx->recipient_count;
	msg.size = receive_message_size(&tx->header, tx->reader.body_size);
	msg.client_ip = s->peer_ip;
	msg.auth_id = NULL;
	msg.header = &tx->header;
	policy_message(s->policy, &msg, &v);
	smtp_policy_trace(s, "message", &v);

	switch (v.action) {
	case POLICY_CONTINUE:
	case POLICY_RELAY:
		return true;
	case POLICY_FAILED:
		snprintf(reply, size, "%s", SMTP_POLICY_FAILED_REPLY);
		*reason = "policy message handler failed";
		return false;
	case POLICY_REJECT:
	case POLICY_DEFER:
		break;
	}
	snprintf(reply, size, "%d %s", v.code, v.text);
	*reason = reply + 4;	/* the handler's text */
	return false;
}

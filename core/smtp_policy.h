/*
 * smtp_policy.h - the SMTP session's calls into the Lua policy: the
 * connect, helo, mail, rcpt, data and message events, their replies and
 * log lines, and the policy state each session uses.
 *
 * Each check sends the reply itself when the policy rejects or defers,
 * or when the handler failed (451), and writes the verdict to the -bh
 * trace. Relay control stays in smtp_command.c: the rcpt handler can
 * allow relaying for a recipient, never forbid the C checks.
 *
 * A session keeps the policy state it started with until its next
 * transaction starts (smtp_policy_check_mail()), so a reload never
 * changes policy in the middle of a transaction.
 */
#ifndef SLUICE_SMTP_POLICY_H
#define SLUICE_SMTP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

struct smtp_session;

/* Takes and drops the session's reference to a policy state. */
void smtp_policy_session_start(struct smtp_session *s);
void smtp_policy_session_end(struct smtp_session *s);

/* Before the greeting: returns false after sending the policy's reply
 * (or 451) and starting to close. */
bool smtp_policy_check_connect(struct smtp_session *s);

/* Return false after replying; the session goes on. */
bool smtp_policy_check_helo(struct smtp_session *s, const char *name);
bool smtp_policy_check_mail(struct smtp_session *s, const char *sender);
bool smtp_policy_check_data(struct smtp_session *s);

/* Returns 1 when the handler allowed relaying for rcpt, 0 when it had
 * no objection, or -1 after replying. */
int smtp_policy_check_rcpt(struct smtp_session *s, const char *rcpt);

/*
 * After the final dot, with s->tx->header built: runs the message
 * handler, which may change the header. Returns true to go on, or false
 * with the reply to send (reply, size bytes) and the reason for the
 * reject log (*reason, static or inside reply); the caller rejects the message with
 * them, sending exactly one reply.
 */
bool smtp_policy_check_message(struct smtp_session *s, char *reply,
    size_t size, const char **reason);

#endif

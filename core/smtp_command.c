/*
 * smtp_command.c - the SMTP commands: one table that names, for each
 * verb, the states it is allowed in, a check function and a proceed
 * function.
 *
 * A check function validates the command, sends the error reply itself
 * and returns false; it changes no session state. Only proceed
 * functions change the session. Reply texts follow Exim 4.96 where
 * scripts may match them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "address.h"
#include "log.h"
#include "log_line.h"
#include "match.h"
#include "smtp_policy.h"
#include "smtp_server_params.h"
#include "smtp_server_private.h"
#include "spool_header.h"
#include "tls_server.h"
#include "util.h"

/* Parsed arguments, passed from a check function to its proceed
 * function. */
struct smtp_command_args {
	struct address_path path;
	struct smtp_mail_params mail;	/* MAIL's parameters */
	struct smtp_rcpt_params rcpt;	/* RCPT's parameters */
	uint64_t size;			/* MAIL SIZE= or the BDAT chunk size */
	bool last;			/* BDAT ... LAST */
};

struct smtp_command {
	const char *verb;		/* matched without case */
	const char *history_name;	/* in the "C=" list of log lines */
	bool verb_is_prefix;		/* "MAIL FROM:": the argument follows */
	unsigned states;		/* SMTP_STATE_BIT()s it is allowed in */
	/* Returns the reply for the command outside those states. */
	const char *(*sequence_reply)(const struct smtp_session *s);
	bool (*check)(struct smtp_session *s, const char *arg,
	    struct smtp_command_args *args);
	void (*proceed)(struct smtp_session *s, const char *arg,
	    struct smtp_command_args *args);
};

#define STATES_COMMAND	(SMTP_STATE_BIT(SMTP_STATE_CONNECTED) | \
	SMTP_STATE_BIT(SMTP_STATE_READY) | SMTP_STATE_BIT(SMTP_STATE_MAIL) | \
	SMTP_STATE_BIT(SMTP_STATE_RCPT))

/* RFC 1870: SIZE lets MAIL grow by 26 octets; RFC 6152 adds
 * " BODY=8BITMIME" (14); RFC 6531 " SMTPUTF8" (9). With DSN, a 500-octet
 * ORCPT (RFC 3461) bounds the growth of RCPT and of MAIL (ENVID, RET). */
#define SMTP_COMMAND_SIZE_EXTRA		26
#define SMTP_COMMAND_BODY_EXTRA		14
#define SMTP_COMMAND_SMTPUTF8_EXTRA	9
#define SMTP_COMMAND_DSN_EXTRA		(ADDRESS_PARAM_VALUE_MAX + 32)

size_t
smtp_command_line_max(const struct smtp_session *s)
{
	if (!s->esmtp)
		return SMTP_LINE_MAX;
	/* RFC 4954 section 4: AUTH lines carry base64 and may be longer. */
	if (s->auth_offered)
		return SMTP_LINE_HARD_MAX;
	return SMTP_LINE_MAX + SMTP_COMMAND_SIZE_EXTRA +
	    SMTP_COMMAND_BODY_EXTRA +
	    (s->smtputf8_offered ? SMTP_COMMAND_SMTPUTF8_EXTRA : 0) +
	    (s->dsn_offered ? SMTP_COMMAND_DSN_EXTRA : 0);
}

/* Replies for commands given out of sequence. */

static const char *
smtp_command_mail_sequence(const struct smtp_session *s)
{
	if (s->state == SMTP_STATE_CONNECTED)
		return "503 HELO or EHLO required";
	return "503 sender already given";
}

static const char *
smtp_command_rcpt_sequence(const struct smtp_session *s)
{
	return "503 sender not yet given";
}

static const char *
smtp_command_data_sequence(const struct smtp_session *s)
{
	return "503 valid RCPT command must precede DATA";
}

/* HELO and EHLO */

/* Exim's default check: a domain-like name (letters, digits, '.', '-')
 * or an address literal in brackets. */
static bool
smtp_command_helo_valid(const char *arg)
{
	size_t len = strlen(arg);

	if (len == 0 || len > SMTP_SERVER_HELO_MAX)
		return false;
	if (arg[0] == '[')
		return len > 2 && arg[len - 1] == ']' &&
		    strspn(arg + 1, "0123456789abcdefABCDEF.:") == len - 2;
	return strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-") == len;
}

static bool
smtp_command_check_helo(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args, const char *verb)
{
	char text[SMTP_SERVER_HELO_MAX * 4 + 64];

	if (smtp_command_helo_valid(arg))
		return smtp_policy_check_helo(s, arg);
	log_line_escape(text, sizeof(text), arg[0] != '\0' ? arg :
	    "(no argument given)", SMTP_SERVER_HELO_MAX, LOG_ESCAPE_TEXT);
	log_write(LOG_MAIN | LOG_REJECT, NULL, "rejected %s from [%s]: "
	    "syntactically invalid argument(s): %s", verb, s->peer_ip, text);
	smtp_server_error(s, SMTP_ERROR_SYNTAX,
	    "501 Syntactically invalid HELO argument(s)");
	return false;
}

static bool
smtp_command_check_helo_cmd(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	return smtp_command_check_helo(s, arg, args, "HELO");
}

static bool
smtp_command_check_ehlo_cmd(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	return smtp_command_check_helo(s, arg, args, "EHLO");
}

/* HELO and EHLO end any transaction (RFC 5321 4.1.4). */
static void
smtp_command_greet(struct smtp_session *s, const char *arg, bool esmtp)
{
	smtp_server_tx_free(s);
	strlcpy_s(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	s->auth_offered = false;
	s->dsn_offered = false;
	s->smtputf8_offered = false;
	s->esc_offered = false;
	smtp_server_enter_state(s, SMTP_STATE_READY);
}

static void
smtp_command_proceed_helo(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	smtp_command_greet(s, arg, false);
	smtp_server_replyf(s, "250 %s Hello %s [%s]",
	    smtp_server.config->primary_hostname, s->helo, s->peer_ip);
}

/* True if STARTTLS may be offered to s: TLS is set up, the session is
 * a socket not yet encrypted, and the client is in tls_advertise_hosts
 * (a list that cannot be matched offers nothing, and is logged). */
static bool
smtp_command_offers_tls(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	char *error = NULL;
	int rc;

	if (!tls_server_available() || !s->is_socket || s->tls)
		return false;
	rc = match_hostlist(c, "tls_advertise_hosts", c->tls_advertise_hosts,
	    (const struct sockaddr *)&s->peer, &error);
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "STARTTLS not offered: %s",
		    error);
		free(error);
	}
	return rc == 1;
}

/* True if s's client is in the host list option name (value list). A
 * list that cannot be matched offers nothing, and is logged with what,
 * the extension it controls. */
static bool
smtp_command_offers(struct smtp_session *s, const char *name,
    const char *list, const char *what)
{
	const struct config *c = smtp_server.config;
	char *error = NULL;
	int rc;

	rc = match_hostlist(c, name, list, (const struct sockaddr *)&s->peer,
	    &error);
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "%s not offered: %s", what,
		    error);
		free(error);
	}
	return rc == 1;
}

/* Keywords in Exim's order of emission, HELP last. ENHANCEDSTATUSCODES,
 * which Exim does not offer, comes after PIPELINING. */
static void
smtp_command_proceed_ehlo(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	const struct config *c = smtp_server.config;
	int64_t limit = c->message_size_limit;
	char size[32] = "";

	smtp_command_greet(s, arg, true);
	s->tls_offered = smtp_command_offers_tls(s);
	s->auth_offered = smtp_auth_offers(s);
	s->chunking_offered = smtp_command_offers(s, "chunking_advertise_hosts",
	    c->chunking_advertise_hosts, "CHUNKING");
	s->dsn_offered = smtp_command_offers(s, "dsn_advertise_hosts",
	    c->dsn_advertise_hosts, "DSN");
	s->smtputf8_offered = smtp_command_offers(s, "smtputf8_advertise_hosts",
	    c->smtputf8_advertise_hosts, "SMTPUTF8");
	if (limit > 0)
		snprintf(size, sizeof(size), " %lld", (long long)limit);
	smtp_server_replyf(s, "250-%s Hello %s [%s]\r\n"
	    "250-SIZE%s\r\n"
	    "250-8BITMIME\r\n"
	    "%s"
	    "250-PIPELINING\r\n"
	    "%s%s%s%s%s"
	    "250 HELP",
	    c->primary_hostname, s->helo, s->peer_ip, size,
	    s->dsn_offered ? "250-DSN\r\n" : "",
	    c->smtp_enhanced_status_codes ? "250-ENHANCEDSTATUSCODES\r\n" : "",
	    s->auth_offered ? "250-AUTH PLAIN LOGIN\r\n" : "",
	    s->chunking_offered ? "250-CHUNKING\r\n" : "",
	    s->tls_offered ? "250-STARTTLS\r\n" : "",
	    s->smtputf8_offered ? "250-SMTPUTF8\r\n" : "");
	/* Set after the reply, which RFC 2034 leaves without codes. */
	s->esc_offered = c->smtp_enhanced_status_codes;
}

/* STARTTLS (RFC 3207) */

static bool
smtp_command_check_starttls(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	if (arg[0] != '\0') {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "501 STARTTLS takes no argument");
		return false;
	}
	if (!s->tls_offered || s->tls) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "503 STARTTLS command used when not advertised");
		return false;
	}
	return true;
}

/*
 * Replies 220 and starts the handshake. The session goes back to the
 * state before EHLO (RFC 3207 section 4.2): the client must greet again,
 * and nothing it sent in clear counts, pipelined input included.
 */
static void
smtp_command_proceed_starttls(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	char *error = NULL;
	SSL *ssl = tls_server_session_new(&error);

	if (ssl == NULL) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "STARTTLS from [%s] "
		    "refused: %s", s->peer_ip, error);
		free(error);
		smtp_server_reply(s, "454 TLS currently unavailable");
		return;
	}
	smtp_server_reply(s, "220 TLS go ahead");
	smtp_server_tx_free(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->tls_offered = false;
	s->auth_offered = false;
	s->dsn_offered = false;
	s->smtputf8_offered = false;
	s->esc_offered = false;
	smtp_server_enter_state(s, SMTP_STATE_CONNECTED);
	smtp_server_start_tls(s, ssl);
}

static const char *
smtp_command_starttls_sequence(const struct smtp_session *s)
{
	return "503 STARTTLS not permitted during a mail transaction";
}

/* AUTH (RFC 4954): the exchange is in smtp_auth.c. */

static const char *
smtp_command_auth_sequence(const struct smtp_session *s)
{
	if (s->state == SMTP_STATE_CONNECTED)
		return "503 AUTH command used when not advertised";
	return "503 AUTH not permitted during a mail transaction";
}

static void
smtp_command_proceed_auth(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	smtp_auth_command(s, arg);
}

/* MAIL FROM */

/* The offer that decides which MAIL and RCPT parameters s may use. */
static void
smtp_command_offer(const struct smtp_session *s,
    struct smtp_params_offer *offer)
{
	offer->esmtp = s->esmtp;
	offer->auth = s->auth_offered || s->auth_id[0] != '\0';
	offer->dsn = s->dsn_offered;
	offer->smtputf8 = s->smtputf8_offered;
}

/* Parses a MAIL or RCPT path, with UTF-8 allowed when utf8 is set.
 * Replies 501 and returns false when the path is invalid. */
static bool
smtp_command_parse_path(struct smtp_session *s, const char *arg,
    enum address_role role, bool utf8, struct address_path *path)
{
	char reply[ADDRESS_SIZE + 64];
	unsigned flags = 0;
	const char *error;

	if (smtp_server.config->allow_domain_literals)
		flags |= ADDRESS_ALLOW_LITERALS;
	if (utf8)
		flags |= ADDRESS_ALLOW_UTF8;
	if (address_parse_path_flags(arg, role, flags, path, &error) == 0)
		return true;
	snprintf(reply, sizeof(reply), "501 <%s>: %s", path->address, error);
	s->error_reason = error;
	smtp_server_error(s, SMTP_ERROR_SYNTAX, reply);
	s->error_reason = NULL;
	return false;
}

/* RFC 6531: a UTF-8 sender needs the SMTPUTF8 parameter.
 * The reply does not echo the address, since a client that did not ask
 * for SMTPUTF8 may not expect 8-bit text. */
static bool
smtp_command_check_utf8(struct smtp_session *s,
    const struct address_path *path, bool smtputf8)
{
	if (!path->utf8 || smtputf8)
		return true;
	s->error_reason = "UTF-8 address without SMTPUTF8";
	smtp_server_error(s, SMTP_ERROR_SYNTAX, "553 UTF-8 addresses require "
	    "the SMTPUTF8 parameter on MAIL");
	s->error_reason = NULL;
	return false;
}

static bool
smtp_command_check_mail(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	char reply[SMTP_PARAMS_REPLY_SIZE];
	const struct config *c = smtp_server.config;
	struct smtp_params_offer offer;
	int64_t limit = c->message_size_limit;

	if (c->smtp_accept_max_per_connection > 0 &&
	    s->mail_commands >= (unsigned)c->smtp_accept_max_per_connection) {
		char host[SMTP_SERVER_HOST_TEXT_SIZE];

		smtp_server_host_text(s, host, sizeof(host));
		log_write(LOG_MAIN, NULL, "SMTP connection from %s closed: too "
		    "many messages in this connection "
		    "(smtp_accept_max_per_connection=%d)", host,
		    c->smtp_accept_max_per_connection);
		smtp_server_reply_and_close(s, "421 too many messages in this "
		    "connection");
		return false;
	}
	/* RFC 4954 section 6 gives this reply its enhanced code, so it
	 * carries one even without ENHANCEDSTATUSCODES. */
	if (s->submission && s->auth_id[0] == '\0') {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "530 5.7.0 Authentication required");
		return false;
	}

	/* Whether MAIL carries SMTPUTF8 is known only after the path, so
	 * a UTF-8 sender is parsed first and checked afterwards. */
	if (!smtp_command_parse_path(s, arg, ADDRESS_SENDER,
	    s->smtputf8_offered, &args->path))
		return false;
	smtp_command_offer(s, &offer);
	if (smtp_params_parse_mail(args->path.params, &offer, &args->mail,
	    reply) < 0) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX, reply);
		return false;
	}
	if (!smtp_command_check_utf8(s, &args->path, args->mail.smtputf8))
		return false;
	args->size = args->mail.size;

	if (limit > 0 && args->size > (uint64_t)limit) {
		struct log_reject reject = { .stage = "MAIL",
		    .address = args->path.address };
		char reason[128];

		smtp_server_log_host(s, &reject.host);
		snprintf(reason, sizeof(reason), "message too big: size=%llu "
		    "max=%lld", (unsigned long long)args->size, (long long)limit);
		reject.reason = reason;
		log_line_reject(NULL, &reject);
		smtp_server_reply(s, "552 Message size exceeds maximum permitted");
		return false;
	}
	if (!smtp_message_check_space(s, args->size))
		return false;
	return smtp_policy_check_mail(s, args->path.address);
}

static void
smtp_command_proceed_mail(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	struct smtp_tx *tx = xcalloc(1, sizeof(*tx));

	strlcpy_s(tx->sender, args->path.address, sizeof(tx->sender));
	tx->declared_size = args->size;
	tx->smtputf8 = args->mail.smtputf8;
	tx->dsn_ret = args->mail.dsn_ret;
	if (args->mail.envid[0] != '\0')
		tx->dsn_envid = xstrdup(args->mail.envid);
	s->tx = tx;
	s->mail_commands++;
	smtp_server_trace("MAIL <%s>: accepted", tx->sender);
	smtp_server_enter_state(s, SMTP_STATE_MAIL);
	smtp_server_reply(s, "250 OK");
}

/* RCPT TO */

/* Writes a ">>>" line for one list match of a relay decision. */
static void
smtp_command_trace_match(const char *subject, const char *list, int rc,
    const char *matched)
{
	if (rc < 0)
		smtp_server_trace("%s in %s? error", subject, list);
	else if (matched[0] != '\0')
		smtp_server_trace("%s in %s? %s (matched \"%s\")", subject, list,
		    rc == 1 ? "yes" : "no", matched);
	else
		smtp_server_trace("%s in %s? no (end of list)", subject, list);
}

/*
 * Decides whether the recipient's domain may be accepted from this
 * client: a local_domains or relay_to_domains domain, or a client in
 * relay_from_hosts. Returns 1 yes, 0 no, -1 when a list could not be
 * matched (logged, and the caller replies 451). *local is set when the
 * domain is in local_domains.
 */
static int
smtp_command_relay_allowed(struct smtp_session *s, const char *domain,
    bool *local)
{
	const struct config *c = smtp_server.config;
	char matched[MATCH_ITEM_MAX + 1];
	char *error = NULL;
	int rc;

	/* NOTE: there is no local delivery yet, so local_domains
	 * recipients are accepted and queued exactly like relayed ones. */
	rc = match_named_domainlist_item(c, "local_domains", domain, matched,
	    sizeof(matched), &error);
	smtp_command_trace_match(domain, "local_domains", rc, matched);
	*local = rc == 1;
	if (rc == 0) {
		rc = match_named_domainlist_item(c, "relay_to_domains", domain,
		    matched, sizeof(matched), &error);
		smtp_command_trace_match(domain, "relay_to_domains", rc, matched);
	}
	if (rc == 0) {
		rc = match_named_hostlist_item(c, "relay_from_hosts",
		    (const struct sockaddr *)&s->peer, matched, sizeof(matched),
		    &error);
		smtp_command_trace_match("host", "relay_from_hosts", rc, matched);
	}
	if (rc == 0 && s->auth_id[0] != '\0') {
		smtp_server_trace("authenticated as %s: relay allowed", s->auth_id);
		rc = 1;
	}
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "relay check failed: %s",
		    error);
		free(error);
	}
	return rc;
}

/*
 * The local parts that Exim's default configuration refuses with
 * "Restricted characters in address", since they ask a later hop to
 * route the mail again: '@', '%' and '!' (the percent hack, bang paths
 * and quoted addresses), '/' and '|' (files and pipes), a leading dot,
 * and "/../" in domains that are not local. local_part is unquoted.
 */
static bool
smtp_command_local_part_restricted(const char *local_part, bool local)
{
	if (local)
		return local_part[0] == '.' ||
		    strpbrk(local_part, "@%!/|") != NULL;
	if (local_part[0] != '\0' && strchr("./|", local_part[0]) != NULL)
		return true;
	return strpbrk(local_part, "@%!") != NULL ||
	    strstr(local_part, "/../") != NULL;
}

/* Logs a rejected recipient and replies with reply, whose text after the
 * code is the reason. */
static void
smtp_command_reject_rcpt(struct smtp_session *s, const char *address,
    const char *reply)
{
	struct log_reject reject = { .sender = s->tx->sender,
	    .stage = "RCPT", .address = address, .reason = reply + 4 };

	smtp_server_log_host(s, &reject.host);
	log_line_reject(NULL, &reject);
	smtp_server.stats.recipients_rejected++;
	smtp_server_trace("RCPT <%s>: %s", address, reply);
	smtp_server_reply(s, reply);
}

/* Replies 452 to a RCPT past recipients_max, so that the client sends
 * the rest in another transaction (RFC 5321 4.5.3.1.10). The first one
 * of a transaction is logged, in Exim's words. */
static void
smtp_command_too_many_recipients(struct smtp_session *s)
{
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char sender[ADDRESS_SIZE * 4];

	if (!s->tx->recipients_over) {
		s->tx->recipients_over = true;
		smtp_server_host_text(s, host, sizeof(host));
		log_line_escape(sender, sizeof(sender), s->tx->sender,
		    ADDRESS_MAX, LOG_ESCAPE_TEXT);
		log_write(LOG_MAIN, NULL, "too many recipients: excess "
		    "temporarily rejected: sender=<%s> H=%s", sender, host);
	}
	smtp_server_reply(s, "452 too many recipients");
}

static bool
smtp_command_check_rcpt(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	const struct config *c = smtp_server.config;
	char params_reply[SMTP_PARAMS_REPLY_SIZE];
	char local_part[ADDRESS_SIZE];
	struct smtp_params_offer offer;
	size_t max;
	bool local;
	int rc, policy;

	if (s->tx->chunking) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "503 RCPT not permitted after BDAT");
		return false;
	}
	if (!smtp_command_parse_path(s, arg, ADDRESS_RECIPIENT,
	    s->tx->smtputf8, &args->path))
		return false;
	smtp_command_offer(s, &offer);
	if (smtp_params_parse_rcpt(args->path.params, &offer, &args->rcpt,
	    params_reply) < 0) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX, params_reply);
		return false;
	}

	/* The spool stores at most SPOOL_HEADER_RECIPIENTS_MAX recipients,
	 * whatever recipients_max is set to. */
	max = c->recipients_max > 0 &&
	    c->recipients_max < SPOOL_HEADER_RECIPIENTS_MAX ?
	    (size_t)c->recipients_max : SPOOL_HEADER_RECIPIENTS_MAX;
	if (s->tx->recipient_count >= max) {
		smtp_command_too_many_recipients(s);
		return false;
	}

	/* RFC 5321 4.5.1: <postmaster> is always accepted. */
	if (args->path.domain == 0)
		return true;

	rc = smtp_command_relay_allowed(s, address_domain(&args->path), &local);
	if (rc < 0) {
		smtp_server_reply(s, "451 Temporary local problem - please try "
		    "later");
		return false;
	}
	address_local_part(&args->path, local_part, sizeof(local_part));
	if (smtp_command_local_part_restricted(local_part, local)) {
		smtp_command_reject_rcpt(s, args->path.address,
		    "550 Restricted characters in address");
		return false;
	}
	/* The policy may reject the recipient, or allow relaying for it;
	 * it cannot undo the checks above. */
	if ((policy = smtp_policy_check_rcpt(s, args->path.address)) < 0)
		return false;
	if (rc == 0 && policy == 0) {
		smtp_command_reject_rcpt(s, args->path.address,
		    "550 relay not permitted");
		return false;
	}
	return true;
}

static void
smtp_command_proceed_rcpt(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	struct smtp_tx *tx = s->tx;
	const struct config *c = smtp_server.config;
	char *address;

	/* A bare <postmaster> means this host's postmaster. */
	if (args->path.domain == 0)
		address = xasprintf("postmaster@%s",
		    c->qualify_recipient != NULL && c->qualify_recipient[0] ?
		    c->qualify_recipient : c->qualify_domain != NULL &&
		    c->qualify_domain[0] ? c->qualify_domain :
		    c->primary_hostname);
	else
		address = xstrdup(args->path.address);

	if (tx->recipient_count == tx->recipient_alloc) {
		tx->recipient_alloc = tx->recipient_alloc == 0 ? 8 :
		    tx->recipient_alloc * 2;
		tx->recipients = xreallocarray(tx->recipients,
		    tx->recipient_alloc, sizeof(*tx->recipients));
		tx->orcpts = xreallocarray(tx->orcpts, tx->recipient_alloc,
		    sizeof(*tx->orcpts));
		tx->dsn_notify = xreallocarray(tx->dsn_notify,
		    tx->recipient_alloc, sizeof(*tx->dsn_notify));
	}
	tx->orcpts[tx->recipient_count] = args->rcpt.orcpt[0] != '\0' ?
	    xstrdup(args->rcpt.orcpt) : NULL;
	tx->dsn_notify[tx->recipient_count] = args->rcpt.dsn_notify;
	tx->recipients[tx->recipient_count++] = address;
	smtp_server_trace("RCPT <%s>: accepted", address);
	smtp_server_enter_state(s, SMTP_STATE_RCPT);
	smtp_server_reply(s, "250 Accepted");
}

/* Commands without arguments. */

static bool
smtp_command_check_no_arg(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	if (arg[0] == '\0')
		return true;
	smtp_server_error(s, SMTP_ERROR_SYNTAX, "501 unexpected argument data");
	return false;
}

static bool
smtp_command_check_data(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	if (s->tx->chunking) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "503 DATA not permitted after BDAT");
		return false;
	}
	return smtp_command_check_no_arg(s, arg, args) &&
	    smtp_policy_check_data(s);
}

/* BDAT (RFC 3030) */

/* Replies with reply to a BDAT whose chunk is then read and dropped, so
 * that its bytes are not taken for commands. */
static void
smtp_command_reject_bdat(struct smtp_session *s, uint64_t size,
    const char *reply)
{
	smtp_server_error(s, SMTP_ERROR_SYNTAX, reply);
	if (s->state == SMTP_STATE_CLOSING)
		return;
	s->bdat_size = size;
	s->bdat_remaining = size;
	s->bdat_discard = size > 0;
}

static bool
smtp_command_check_bdat(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	char number[24];
	size_t len = strcspn(arg, " ");
	unsigned long long size;
	const char *rest = arg + len;

	while (*rest == ' ')
		rest++;
	if (len == 0 || len >= sizeof(number)) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "501 syntax: BDAT <size> [LAST]");
		return false;
	}
	memcpy(number, arg, len);
	number[len] = '\0';
	if (parse_uint(number, UINT64_MAX, &size) < 0 ||
	    (rest[0] != '\0' && strcasecmp(rest, "LAST") != 0)) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "501 syntax: BDAT <size> [LAST]");
		return false;
	}
	args->size = size;
	args->last = rest[0] != '\0';

	/* From here on the size is known, so a rejected chunk is still
	 * read (RFC 3030 section 2). */
	if (!s->chunking_offered) {
		smtp_command_reject_bdat(s, size,
		    "503 BDAT command used when CHUNKING not advertised");
		return false;
	}
	if (s->state != SMTP_STATE_RCPT) {
		smtp_command_reject_bdat(s, size, s->state == SMTP_STATE_MAIL ?
		    "503 valid RCPT command must precede BDAT" :
		    "503 sender not yet given");
		return false;
	}
	return true;
}

static void
smtp_command_proceed_bdat(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	struct smtp_tx *tx = s->tx;

	if (!tx->chunking) {
		/* The first chunk starts the message as DATA would; a
		 * refusal has its reply, and the chunk is dropped. */
		if (!smtp_policy_check_data(s) || smtp_message_begin(s) < 0) {
			s->bdat_size = args->size;
			s->bdat_remaining = args->size;
			s->bdat_discard = args->size > 0;
			return;
		}
		tx->chunking = true;
	} else {
		smtp_server_enter_state(s, SMTP_STATE_DATA);
	}
	s->bdat_size = args->size;
	s->bdat_remaining = args->size;
	s->bdat_last = args->last;
	s->bdat_discard = false;
	if (args->size == 0)
		smtp_message_chunk_done(s);
}

static void
smtp_command_proceed_data(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	if (smtp_message_begin(s) == 0)
		smtp_server_reply(s, "354 Enter message, ending with \".\" on a "
		    "line by itself");
}

static void
smtp_command_proceed_rset(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	smtp_server_tx_free(s);
	smtp_server_enter_state(s, s->helo[0] != '\0' ? SMTP_STATE_READY :
	    SMTP_STATE_CONNECTED);
	smtp_server_reply(s, "250 Reset OK");
}

static void
smtp_command_proceed_noop(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	smtp_server_reply(s, "250 OK");
}

static void
smtp_command_proceed_quit(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	char reply[SMTP_LINE_MAX];

	snprintf(reply, sizeof(reply), "221 %s closing connection",
	    smtp_server.config->primary_hostname);
	smtp_server_reply_and_close(s, reply);
}

/* VRFY is refused as Exim refuses it without acl_smtp_vrfy: 252, so
 * the client may still try to deliver (RFC 5321 3.5.3). */
static bool
smtp_command_check_vrfy(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	if (arg[0] != '\0')
		return true;
	smtp_server_error(s, SMTP_ERROR_SYNTAX, "501 empty address");
	return false;
}

static void
smtp_command_proceed_vrfy(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	struct log_reject reject = { 0 };
	char stage[ADDRESS_SIZE + 8];

	snprintf(stage, sizeof(stage), "VRFY %.*s", ADDRESS_MAX, arg);
	smtp_server_log_host(s, &reject.host);
	reject.stage = stage;
	log_line_reject(NULL, &reject);
	smtp_server_reply(s, "252 Administrative prohibition");
}

static void
smtp_command_proceed_help(struct smtp_session *s, const char *arg,
    struct smtp_command_args *args)
{
	smtp_server_reply(s, "214-Commands supported:\r\n"
	    "214 HELO EHLO MAIL RCPT DATA NOOP QUIT RSET HELP");
}

static const struct smtp_command smtp_commands[] = {
	{ "HELO", "HELO", false, STATES_COMMAND, NULL,
	    smtp_command_check_helo_cmd, smtp_command_proceed_helo },
	{ "EHLO", "EHLO", false, STATES_COMMAND, NULL,
	    smtp_command_check_ehlo_cmd, smtp_command_proceed_ehlo },
	{ "MAIL FROM:", "MAIL", true, SMTP_STATE_BIT(SMTP_STATE_READY),
	    smtp_command_mail_sequence,
	    smtp_command_check_mail, smtp_command_proceed_mail },
	{ "RCPT TO:", "RCPT", true, SMTP_STATE_BIT(SMTP_STATE_MAIL) |
	    SMTP_STATE_BIT(SMTP_STATE_RCPT), smtp_command_rcpt_sequence,
	    smtp_command_check_rcpt, smtp_command_proceed_rcpt },
	{ "DATA", "DATA", false, SMTP_STATE_BIT(SMTP_STATE_RCPT),
	    smtp_command_data_sequence,
	    smtp_command_check_data, smtp_command_proceed_data },
	{ "BDAT", "BDAT", false, STATES_COMMAND, NULL,
	    smtp_command_check_bdat, smtp_command_proceed_bdat },
	{ "RSET", "RSET", false, STATES_COMMAND, NULL,
	    smtp_command_check_no_arg, smtp_command_proceed_rset },
	{ "NOOP", "NOOP", false, STATES_COMMAND, NULL,
	    NULL, smtp_command_proceed_noop },
	{ "QUIT", "QUIT", false, STATES_COMMAND, NULL,
	    smtp_command_check_no_arg, smtp_command_proceed_quit },
	{ "AUTH", "AUTH", false, SMTP_STATE_BIT(SMTP_STATE_READY),
	    smtp_command_auth_sequence, NULL, smtp_command_proceed_auth },
	{ "STARTTLS", "STARTTLS", false, SMTP_STATE_BIT(SMTP_STATE_CONNECTED) |
	    SMTP_STATE_BIT(SMTP_STATE_READY), smtp_command_starttls_sequence,
	    smtp_command_check_starttls, smtp_command_proceed_starttls },
	{ "VRFY", "VRFY", false, STATES_COMMAND, NULL,
	    smtp_command_check_vrfy, smtp_command_proceed_vrfy },
	{ "HELP", "HELP", false, STATES_COMMAND, NULL,
	    NULL, smtp_command_proceed_help },
};

/* Finds the command of line and sets *arg to its argument, leading
 * spaces skipped. Returns NULL for an unknown command. */
static const struct smtp_command *
smtp_command_find(const char *line, const char **arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(smtp_commands); i++) {
		const struct smtp_command *cmd = &smtp_commands[i];
		size_t len = strlen(cmd->verb);
		const char *p = line + len;

		if (strncasecmp(line, cmd->verb, len) != 0)
			continue;
		if (!cmd->verb_is_prefix && *p != '\0' && *p != ' ')
			continue;
		if (!cmd->verb_is_prefix)
			while (*p == ' ')
				p++;
		*arg = p;
		return cmd;
	}
	return NULL;
}

/* True if line is the word verb, alone or followed by a space. */
static bool
smtp_command_is_word(const char *line, const char *verb)
{
	size_t len = strlen(verb);

	return strncasecmp(line, verb, len) == 0 &&
	    (line[len] == '\0' || line[len] == ' ');
}

void
smtp_command_dispatch(struct smtp_session *s, const char *line)
{
	struct smtp_command_args args;
	const struct smtp_command *cmd;
	const char *arg = "";

	if (smtp_server.shutting_down) {
		char reply[SMTP_LINE_MAX];

		snprintf(reply, sizeof(reply), "421 %s Service not available, "
		    "closing transmission channel",
		    smtp_server.config->primary_hostname);
		smtp_server_reply_and_close(s, reply);
		return;
	}

	if ((cmd = smtp_command_find(line, &arg)) == NULL) {
		/* MAIL and RCPT without their FROM: and TO: are known
		 * commands with a bad argument. */
		if (smtp_command_is_word(line, "MAIL"))
			smtp_server_error(s, SMTP_ERROR_SYNTAX,
			    "501 syntax: MAIL FROM:<address>");
		else if (smtp_command_is_word(line, "RCPT"))
			smtp_server_error(s, SMTP_ERROR_SYNTAX,
			    "501 syntax: RCPT TO:<address>");
		else
			smtp_server_error(s, SMTP_ERROR_UNKNOWN,
			    "500 unrecognized command");
		return;
	}

	smtp_server_record_command(s, cmd->history_name);
	if ((cmd->states & SMTP_STATE_BIT(s->state)) == 0) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX, cmd->sequence_reply(s));
		return;
	}

	memset(&args, 0, sizeof(args));
	if (cmd->check != NULL && !cmd->check(s, arg, &args))
		return;
	cmd->proceed(s, arg, &args);
}

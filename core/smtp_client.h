/*
 * smtp_client.h - a non-blocking SMTP client that delivers spooled
 * messages to one host, several messages per connection when asked.
 *
 * smtp_client_start() connects to an IP address and port, optionally
 * from a chosen local address (an egress source), and reads the
 * greeting. It sends EHLO (HELO when the server rejects EHLO with 5xx),
 * then STARTTLS when the server offers it and a TLS context is given,
 * and EHLO again inside TLS. Then come the transactions of the message:
 * MAIL FROM, one RCPT TO per recipient, DATA with the message, and the
 * final dot. When the server offers PIPELINING (RFC 2920), MAIL, the
 * RCPTs and DATA of a transaction go out in one write and their replies
 * are read in order; otherwise every command waits for its reply.
 * SIZE= is sent when the server advertises SIZE, and the DSN parameters
 * (RFC 3461: RET, ENVID, NOTIFY, ORCPT) when it advertises DSN.
 *
 * A transaction carries at most max_rcpt recipients, fewer when the
 * server names a lower RCPTMAX in LIMITS (RFC 9422); the rest follow in
 * further transactions on the same connection. A recipient that gets
 * 452 (RFC 5321 section 4.5.3.1.10: too many recipients) is tried again
 * in the next transaction, as long as the transaction that refused it
 * accepted another recipient; otherwise it is deferred with that reply.
 * So every recipient is sent in exactly one accepted transaction, or
 * none.
 *
 * The message is the live header fields of a struct spool_header (flag
 * not '*'), a blank line and the body from the open -D file, read in
 * blocks with pread() after its first line "<id>-D", so a body of any
 * size passes through bounded memory: the client reads the next block
 * only when the socket's output buffer has drained below a low-water
 * mark. On the wire every line ends in CRLF whether the spool has LF or
 * CRLF, a bare CR stays as content, and a dot that starts a line is
 * doubled (RFC 5321 section 4.5.2).
 *
 * Each recipient gets an outcome: delivered (2xx after the data),
 * deferred (4xx, or a connection-level failure: refused, timed out,
 * closed, malformed reply, TLS failure, local read error) or failed
 * (5xx). The result carries what mainlog lines need: host name, IP and
 * port, the local address, TLS cipher and certificate verification, the
 * reply per recipient, the command it answered, the transaction it was
 * in, an errno for connection-level failures, and whether the
 * connection had carried an earlier message.
 *
 * Connection reuse: with options.keep_open, a client whose connection
 * is still usable after the message does not send QUIT. Its result says
 * connection_open, and the caller then owns the idle client and must
 * pass it to smtp_client_next() (another message), smtp_client_quit()
 * or smtp_client_abort(). While idle, anything from the server (a 421,
 * or the connection closing) ends the connection: the client runs its
 * idle callback, if one is set, and frees itself.
 *
 * Every phase has a timeout on the sluice clock (connect, greeting,
 * each reply to a command, each block of data written, the reply to the
 * final dot, QUIT). Server replies are bounded in line length and
 * number of lines (see smtp_wire.h); a reply beyond them is a protocol
 * error.
 *
 * Thread use: the loop thread of the given event base only.
 * Fatal: out of memory and failures to create libevent objects only.
 */
#ifndef SLUICE_SMTP_CLIENT_H
#define SLUICE_SMTP_CLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct spool_header;
struct spool_recipient;
struct smtp_client;
struct smtp_tls_context;

/* Bounds on what the client sends. RFC 5321 section 4.5.3.1.3 limits
 * a path to 256 bytes, but the spool allows longer addresses. So the
 * client accepts up to this bound and lets the server judge. */
#define SMTP_ADDRESS_MAX	1024
#define SMTP_HELO_NAME_MAX	255

/* Exim's own codes for "defer (n)" on mainlog, besides errno values. */
#define SMTP_EXIM_CLOSED	(-18)	/* the server closed the connection */
#define SMTP_EXIM_FORMAT	(-19)	/* malformed reply */
#define SMTP_EXIM_TLS_FAILURE	(-37)	/* a TLS session could not start */
#define SMTP_EXIM_TLS_REQUIRED	(-38)	/* TLS was required but not offered */
#define SMTP_EXIM_RCPT_4XX	(-44)
#define SMTP_EXIM_MAIL_4XX	(-45)
#define SMTP_EXIM_DATA_4XX	(-46)

enum smtp_outcome {
	SMTP_DELIVERED,
	SMTP_DEFERRED,
	SMTP_FAILED,
};

/* Protocol phase in which a recipient's outcome was decided. */
enum smtp_phase {
	SMTP_PHASE_CONNECT,
	SMTP_PHASE_GREETING,
	SMTP_PHASE_EHLO,
	SMTP_PHASE_HELO,
	SMTP_PHASE_STARTTLS,	/* STARTTLS and the TLS handshake */
	SMTP_PHASE_MAIL,	/* MAIL, and the RSET before it */
	SMTP_PHASE_RCPT,
	SMTP_PHASE_DATA,	/* the DATA command */
	SMTP_PHASE_BODY,	/* while the message was being sent */
	SMTP_PHASE_DOT,		/* the reply to the final dot */
};

/* Cause of a recipient's outcome. */
enum smtp_error_kind {
	SMTP_ERROR_NONE,	/* a 2xx reply: delivered */
	SMTP_ERROR_REPLY,	/* a 4xx or 5xx reply */
	SMTP_ERROR_CONNECT,	/* connect() failed; error holds errno */
	SMTP_ERROR_TIMEOUT,	/* error holds ETIMEDOUT */
	SMTP_ERROR_CLOSED,	/* the server closed the connection */
	SMTP_ERROR_IO,		/* a socket error; error holds errno */
	SMTP_ERROR_PROTOCOL,	/* a malformed or over-long reply */
	SMTP_ERROR_LOCAL,	/* reading the -D file failed; error holds errno */
	SMTP_ERROR_TLS,		/* STARTTLS or the handshake failed */
	SMTP_ERROR_TLS_REQUIRED,	/* TLS required but not offered */
};

/* Use of STARTTLS towards one host, as Exim's hosts_require_tls and
 * hosts_avoid_tls choose it. */
enum smtp_tls_mode {
	SMTP_TLS_TRY,		/* when offered (opportunistic) */
	SMTP_TLS_AVOID,		/* never */
	SMTP_TLS_REQUIRE,	/* defer the host when TLS cannot be used */
};

/* Result of checking the server's certificate (CV= on mainlog). */
enum smtp_cert_status {
	SMTP_CERT_NONE,		/* no TLS, or no certificate presented */
	SMTP_CERT_UNVERIFIED,	/* presented but not verified: CV=no */
	SMTP_CERT_VERIFIED,	/* chain and host name verified: CV=yes */
};

struct smtp_rcpt_result {
	char *address;
	enum smtp_outcome outcome;
	enum smtp_phase phase;
	enum smtp_error_kind kind;
	int code;		/* reply code, 0 when there was no reply */
	/* Ordinal of the transaction on the connection that decided it,
	 * from 1; 0 when no transaction did. Delivered recipients with the
	 * same number went in one transaction ("=>" then "->"). */
	unsigned transaction;
	/* The whole reply, lines joined by '\n' (the C="..." of a delivery
	 * and the text of a failure), or NULL. */
	char *reply;
	/* The command whose reply decided the outcome, as sent
	 * ("RCPT TO:<a@b.example>", "MAIL FROM:<s@c.example> SIZE=1234",
	 * "DATA"), or "initial connection" or "end of data". */
	char *after;
	int error;		/* errno for CONNECT, TIMEOUT, IO and LOCAL */
	/*
	 * The text for mainlog after "defer (n)" or "**": for a reply,
	 * "SMTP error from remote mail server after <after>: <reply>",
	 * where <after> starts with "pipelined " for a pipelined command;
	 * otherwise a description such as "SMTP timeout after <after>".
	 * NULL for a connect failure, whose text is strerror(error).
	 */
	char *message;
};

/* Bytes of a TLS cipher description, "TLS1.3:TLS_AES_256_GCM_SHA384:256". */
#define SMTP_TLS_CIPHER_MAX	128

struct smtp_result {
	char *host_name;
	char ip[INET6_ADDRSTRLEN];
	int port;
	char source_ip[INET6_ADDRSTRLEN];	/* "" when not bound */
	bool esmtp;		/* the server accepted EHLO */
	bool pipelining;	/* commands were pipelined */
	bool dsn;		/* the server offered DSN (RFC 3461), so the
				 * NOTIFY and RET parameters went on */
	bool tls;		/* the message went over TLS */
	/* X= as Exim logs it with OpenSSL: protocol, cipher and bits;
	 * "" without TLS. */
	char tls_cipher[SMTP_TLS_CIPHER_MAX];
	enum smtp_cert_status tls_cert;
	/* The connection carried an earlier message before this one ("*"
	 * after H= on mainlog). */
	bool reused;
	/* A reused connection failed before the server answered anything
	 * of this message, so nothing was decided by the server: a caller
	 * may try again on a new connection. */
	bool stale;
	/* The client is idle and the caller owns it (see the file
	 * comment); false when the client is gone. */
	bool connection_open;
	uint64_t duration_usec;	/* from start to the end, for DT= */
	size_t delivered, deferred, failed;
	struct smtp_rcpt_result *rcpts;		/* in the order given */
	size_t rcpt_count;
};

struct smtp_client_target {
	const char *host_name;	/* MX or smarthost name, or the IP itself */
	const char *ip;		/* IPv4 or IPv6 address to connect to */
	int port;
	const char *source_ip;	/* local address to bind, or NULL */
	const char *helo_name;	/* argument of EHLO and HELO */
	/* STARTTLS: without a context (NULL) the client never starts TLS,
	 * whatever the mode. The context is borrowed and must outlive the
	 * client. */
	const struct smtp_tls_context *tls_context;
	enum smtp_tls_mode tls;
	/* After a failed TLS handshake, connect again and deliver in
	 * clear (Exim's tls_tempfail_tryclear); a 4xx to STARTTLS goes on
	 * in clear on the same connection. Ignored for SMTP_TLS_REQUIRE. */
	bool tls_tempfail_tryclear;
};

struct smtp_client_message {
	/* Envelope sender ("" or NULL for <>), id, DSN data and header
	 * fields. */
	const struct spool_header *header;
	int data_fd;		/* the open -D file */
	const char *const *recipients;
	size_t recipient_count;
	/* Per recipient, its spool record for NOTIFY= and ORCPT=, or NULL
	 * for none; the array itself may be NULL. */
	const struct spool_recipient *const *dsn;
	/* Recipients per transaction for this message when lower than the
	 * client's max_rcpt (an egress path's limit); 0 for none. */
	unsigned max_rcpt;
};

/* Timeouts in microseconds of the sluice clock, and limits. */
struct smtp_client_options {
	uint64_t connect_timeout_usec;
	uint64_t greeting_timeout_usec;	/* the server's greeting */
	uint64_t command_timeout_usec;	/* each command's reply */
	uint64_t data_timeout_usec;	/* each block of the body written */
	uint64_t final_timeout_usec;	/* the reply to the final dot */
	uint64_t quit_timeout_usec;	/* the reply to QUIT */
	unsigned max_rcpt;	/* recipients per transaction; 0: no limit */
	bool keep_open;		/* leave a usable connection idle */
};

/* Receives the outcome of a message. Takes ownership of result (free it
 * with smtp_result_free()). Unless result->connection_open, the client
 * is already gone when this runs. */
typedef void (*smtp_client_cb)(void *arg, struct smtp_result *result);

/* Tells the owner of an idle client that its connection has ended; the
 * client frees itself right after this returns. */
typedef void (*smtp_client_idle_cb)(void *arg, struct smtp_client *client);

/* Fills options with Exim's smtp transport defaults: 5 minutes for
 * connect, the greeting, commands and data blocks, 10 for the final
 * dot; 10 seconds for QUIT; 100 recipients per transaction; no reuse. */
void smtp_client_options_init(struct smtp_client_options *options);

/*
 * Starts a delivery. target, message and options are borrowed only for
 * this call, except message->header and message->data_fd, which must
 * stay valid and open until the callback runs or the client is aborted.
 * cb never runs before this function returns. Returns the client, or
 * NULL with *error set (caller frees) when an argument is unusable. That
 * is an invalid IP or port, an address or HELO name with control
 * characters or over its bound, no recipients, or a -D file whose first
 * line is not "<id>-D".
 */
struct smtp_client *smtp_client_start(struct event_base *base,
    const struct smtp_client_target *target,
    const struct smtp_client_message *message,
    const struct smtp_client_options *options, smtp_client_cb cb, void *arg,
    char **error);

/* Makes every check smtp_client_start() makes, without starting
 * anything. Returns 0, or -1 with *error set (caller frees). */
int smtp_client_check(const struct smtp_client_target *target,
    const struct smtp_client_message *message, char **error);

/* Makes the result of a delivery that could not start: every recipient
 * deferred with kind, error (an errno or 0) and text (copied, may be
 * NULL), in phase connect. The caller frees it. */
struct smtp_result *smtp_result_new_deferred(
    const struct smtp_client_target *target,
    const struct smtp_client_message *message, enum smtp_error_kind kind,
    int error, const char *text);

/*
 * Delivers another message over an idle client (result->connection_open
 * of the last message), with the same rules as smtp_client_start(); the
 * client's own options stay. Returns 0, or -1 with *error set (caller
 * frees) when the message is unusable, or when the connection is (the
 * server sent something while it was idle). The client then stays idle,
 * and the caller should end it.
 */
int smtp_client_next(struct smtp_client *client,
    const struct smtp_client_message *message, smtp_client_cb cb, void *arg,
    char **error);

/* Sets the callback of an idle client (see smtp_client_idle_cb). */
void smtp_client_set_idle_cb(struct smtp_client *client,
    smtp_client_idle_cb cb, void *arg);

/* Ends an idle client politely: it sends QUIT, waits a short while for
 * the reply and frees itself, after running its idle callback if one is
 * set. */
void smtp_client_quit(struct smtp_client *client);

/* Closes the connection at once without calling any callback, and frees
 * the client. Must not be called from the client's own callback, except
 * for an idle client (which its result callback may abort). */
void smtp_client_abort(struct smtp_client *client);

/* Messages the client has carried, the one running included. */
unsigned smtp_client_messages(const struct smtp_client *client);

/* Accepts NULL. */
void smtp_result_free(struct smtp_result *result);

/* Returns the indexes of result->rcpts in the order mainlog lists them:
 * the delivered recipients transaction by transaction, then the others,
 * each in the order given. The caller frees the array. */
size_t *smtp_result_log_order(const struct smtp_result *result);

const char *smtp_outcome_name(enum smtp_outcome outcome);
const char *smtp_phase_name(enum smtp_phase phase);
const char *smtp_error_kind_name(enum smtp_error_kind kind);

/*
 * Returns the n of Exim's "defer (n)" for a deferred recipient: errno for
 * CONNECT, TIMEOUT, IO and LOCAL; SMTP_EXIM_CLOSED; SMTP_EXIM_FORMAT;
 * SMTP_EXIM_TLS_FAILURE and SMTP_EXIM_TLS_REQUIRED; for
 * a 4xx reply SMTP_EXIM_MAIL_4XX, _RCPT_4XX or _DATA_4XX by phase, and 0
 * for a 4xx to the greeting, EHLO or HELO.
 */
int smtp_rcpt_defer_code(const struct smtp_rcpt_result *rcpt);

#endif

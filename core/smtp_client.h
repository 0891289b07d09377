/*
 * smtp_client.h - a non-blocking SMTP client that delivers one spooled
 * message to one host for a group of its recipients.
 *
 * smtp_client_start() connects to an IP address and port, optionally
 * from a chosen local address, and reads the greeting. It sends EHLO
 * (HELO when the server rejects EHLO with 5xx), MAIL FROM and one RCPT
 * TO per recipient. When the server accepted at least one recipient, it
 * sends DATA with the message, and finally QUIT. Every command waits for
 * its reply, because there is no PIPELINING yet, nor STARTTLS or
 * CHUNKING. SIZE= is sent when the server advertises SIZE.
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
 * closed, malformed reply, local read error) or failed (5xx). The result
 * carries what mainlog lines need: host name, IP and port, the reply
 * per recipient, the command it answered, an errno for connection-level
 * failures, and whether TLS was used.
 *
 * Every phase has a timeout on the sluice clock (connect, each reply to
 * a command, each block of data written, the reply to the final dot,
 * QUIT). Server replies are bounded in line length and number of lines
 * (see smtp_wire.h); a reply beyond them is a protocol error.
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
struct smtp_client;

/* Bounds on what the client sends. RFC 5321 section 4.5.3.1.3 limits
 * a path to 256 bytes, but the spool allows longer addresses. So the
 * client accepts up to this bound and lets the server judge. */
#define SMTP_ADDRESS_MAX	1024
#define SMTP_HELO_NAME_MAX	255

/* Exim's own codes for "defer (n)" on mainlog, besides errno values. */
#define SMTP_EXIM_CLOSED	(-18)	/* the server closed the connection */
#define SMTP_EXIM_FORMAT	(-19)	/* malformed reply */
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
	SMTP_PHASE_MAIL,
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
};

struct smtp_rcpt_result {
	char *address;
	enum smtp_outcome outcome;
	enum smtp_phase phase;
	enum smtp_error_kind kind;
	int code;		/* reply code, 0 when there was no reply */
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
	 * "SMTP error from remote mail server after <after>: <reply>";
	 * otherwise a description such as "SMTP timeout after <after>".
	 * NULL for a connect failure, whose text is strerror(error).
	 */
	char *message;
};

struct smtp_result {
	char *host_name;
	char ip[INET6_ADDRSTRLEN];
	int port;
	char source_ip[INET6_ADDRSTRLEN];	/* "" when not bound */
	bool esmtp;		/* the server accepted EHLO */
	bool tls;		/* always false: STARTTLS is not implemented */
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
};

struct smtp_client_message {
	/* Envelope sender ("" or NULL for <>), id and header fields. */
	const struct spool_header *header;
	int data_fd;		/* the open -D file */
	const char *const *recipients;
	size_t recipient_count;
};

/* Timeouts, in microseconds of the sluice clock. */
struct smtp_client_options {
	uint64_t connect_timeout_usec;
	uint64_t command_timeout_usec;	/* greeting and each command's reply */
	uint64_t data_timeout_usec;	/* each block of the body written */
	uint64_t final_timeout_usec;	/* the reply to the final dot */
	uint64_t quit_timeout_usec;	/* the reply to QUIT */
};

/* Receives the outcome. Takes ownership of result (free it with
 * smtp_result_free()). The client is already gone when this runs. */
typedef void (*smtp_client_cb)(void *arg, struct smtp_result *result);

/* Fills options with Exim's smtp transport defaults: 5 minutes for
 * connect, commands and data blocks, 10 for the final dot; 10 seconds
 * for QUIT. */
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

/* Closes the connection at once without calling the callback. Must not
 * be called from the client's own callback. */
void smtp_client_abort(struct smtp_client *client);

/* Accepts NULL. */
void smtp_result_free(struct smtp_result *result);

const char *smtp_outcome_name(enum smtp_outcome outcome);
const char *smtp_phase_name(enum smtp_phase phase);
const char *smtp_error_kind_name(enum smtp_error_kind kind);

/*
 * Returns the n of Exim's "defer (n)" for a deferred recipient: errno for
 * CONNECT, TIMEOUT, IO and LOCAL; SMTP_EXIM_CLOSED; SMTP_EXIM_FORMAT; for
 * a 4xx reply SMTP_EXIM_MAIL_4XX, _RCPT_4XX or _DATA_4XX by phase, and 0
 * for a 4xx to the greeting, EHLO or HELO.
 */
int smtp_rcpt_defer_code(const struct smtp_rcpt_result *rcpt);

#endif

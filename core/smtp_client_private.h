/*
 * smtp_client_private.h - the state of one SMTP client connection,
 * shared by smtp_client.c (start, checks, result hand-over, reuse),
 * smtp_client_session.c (the connection on the event loop: connect,
 * greeting, EHLO, STARTTLS, replies, timeouts, QUIT) and
 * smtp_client_transaction.c (MAIL, RCPT, DATA and the body). Nothing
 * else includes it.
 */
#ifndef SLUICE_SMTP_CLIENT_PRIVATE_H
#define SLUICE_SMTP_CLIENT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "smtp_client.h"
#include "smtp_wire.h"

struct bufferevent;
struct clock_timer;
struct event;

/* The body is read in blocks of this size. The output buffer is filled
 * up to the high mark, and refilled when it drains below the low one. */
#define SMTP_BODY_BLOCK		16384
#define SMTP_OUTPUT_HIGH	(4 * SMTP_BODY_BLOCK)
#define SMTP_OUTPUT_LOW		SMTP_BODY_BLOCK

/* Maximum length of a command line the client writes: "RCPT TO:<a>
 * NOTIFY=... ORCPT=rfc822;<xtext of a>", where the xtext may take three
 * bytes per byte of the address, or "MAIL FROM:<a> SIZE=n RET=HDRS
 * ENVID=<xtext>", with room to spare. */
#define SMTP_COMMAND_MAX	(4 * SMTP_ADDRESS_MAX + 128)

/* Longest ENVID= value taken from the spool (RFC 3461 section 4.4 allows
 * 100 characters before xtext encoding). */
#define SMTP_ENVID_MAX		100

enum smtp_client_state {
	SMTP_STATE_START,	/* waiting for the loop to start */
	SMTP_STATE_CONNECTING,
	SMTP_STATE_GREETING,
	SMTP_STATE_EHLO,
	SMTP_STATE_HELO,
	SMTP_STATE_STARTTLS,	/* waiting for the reply to STARTTLS */
	SMTP_STATE_HANDSHAKE,	/* the TLS handshake */
	SMTP_STATE_COMMANDS,	/* RSET, MAIL, RCPT and DATA replies due */
	SMTP_STATE_BODY,
	SMTP_STATE_DOT,
	SMTP_STATE_IDLE,	/* between messages, owned by the caller */
	SMTP_STATE_QUIT,
	SMTP_STATE_DONE,	/* closed; the callback runs from the loop */
};

/* A command of a transaction whose reply is due. */
enum smtp_command_kind {
	SMTP_COMMAND_RSET,
	SMTP_COMMAND_MAIL,
	SMTP_COMMAND_RCPT,
	SMTP_COMMAND_DATA,
};

struct smtp_command {
	enum smtp_command_kind kind;
	size_t rcpt;		/* index into the result, for RCPT */
};

/*
 * One transaction (MAIL to the final dot) of the current message. Its
 * commands are queued in order; sent and answered count how far the
 * writing and the replies have got.
 */
struct smtp_transaction {
	unsigned number;		/* on the connection, from 1 */
	struct smtp_command *commands;
	size_t command_count, sent, answered;
	size_t *accepted;		/* recipients with a 2xx to RCPT */
	size_t accepted_count;
	size_t *again;			/* recipients that got 452 */
	size_t again_count;
	bool pipelined;
	bool mail_failed;		/* MAIL or RSET was refused */
};

struct smtp_client {
	struct event_base *base;
	enum smtp_client_state state;
	struct smtp_client_options options;
	smtp_client_cb cb;
	void *arg;
	smtp_client_idle_cb idle_cb;
	void *idle_arg;
	bool quitting;			/* smtp_client_quit() was called */

	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage source;
	socklen_t source_len;	/* 0 when not bound */
	char *helo_name;
	char *host_name;
	const struct smtp_tls_context *tls_context;
	enum smtp_tls_mode tls_mode;
	bool tls_tryclear;
	bool tls_active;
	bool tls_refused;		/* no TLS on this host for this message */

	int fd;			/* owned here until the bufferevent takes it */
	struct event *connect_event;
	struct bufferevent *bev;
	struct clock_timer *timer;
	uint64_t started_usec;
	unsigned messages;		/* carried, the current one included */
	unsigned transactions;		/* on this connection */
	bool need_rset;			/* the last transaction did not end */

	/* The message. */
	const struct spool_header *header;
	char *sender;
	const struct spool_recipient **dsn;	/* per recipient, or NULL */
	unsigned message_max_rcpt;	/* the message's own limit, or 0 */
	int data_fd;
	off_t data_start;	/* first byte of the body in the -D file */
	off_t data_offset;	/* next byte of the -D file to read */
	off_t data_end;
	struct smtp_dot_encoder encoder;

	struct smtp_ehlo ehlo;
	struct smtp_reply reply;
	char after[SMTP_COMMAND_MAX];	/* the command a reply answers */
	bool *decided;			/* per recipient */
	size_t *todo;			/* recipients for the next transactions */
	size_t todo_count;
	struct smtp_transaction txn;
	bool answered_any;		/* a reply of this message was read */

	struct smtp_result *result;
};

/* --- smtp_client.c -------------------------------------------------- */

/* Closes the connection; accepts a client in any state. */
void smtp_client_close(struct smtp_client *client);

/* Ends the session: closes the connection now and hands the result over
 * from the loop. Every recipient must be decided. */
void smtp_client_finish(struct smtp_client *client);

/* Runs the callback with the result and frees the client, or, for a
 * client that is quitting or whose idle connection ended, frees it. */
void smtp_client_deliver_result(struct smtp_client *client);

/* Hands the result over with the connection left open: the client
 * becomes idle. */
void smtp_client_hand_over_idle(struct smtp_client *client);

/* --- smtp_client_session.c ------------------------------------------ */

/* The client's one timer: the start, a phase's deadline, or the
 * hand-over of the result. */
void smtp_client_timeout_cb(void *arg);

/* Arms the timer for a state. */
void smtp_client_enter(struct smtp_client *client,
    enum smtp_client_state state, uint64_t timeout_usec);

/* Writes one command line (without CRLF). */
void smtp_client_write_line(struct smtp_client *client, const char *line);

/* Sends QUIT and waits for its reply. */
void smtp_client_send_quit(struct smtp_client *client);

/* Decides recipient i. reply may be NULL; message is taken over. */
void smtp_client_decide(struct smtp_client *client, size_t i,
    enum smtp_outcome outcome, enum smtp_error_kind kind, int error,
    const struct smtp_reply *reply, char *message);

/* Decides every recipient still undecided in the same way. */
void smtp_client_decide_rest(struct smtp_client *client,
    enum smtp_outcome outcome, enum smtp_error_kind kind, int error,
    const struct smtp_reply *reply, const char *message);

/* "SMTP error from remote mail server after <after>: <reply>". */
char *smtp_client_reply_message(const struct smtp_client *client,
    const struct smtp_reply *reply);

/* A failure of the connection itself: every undecided recipient is
 * deferred with message (taken over) and the session ends. */
void smtp_client_fail(struct smtp_client *client, enum smtp_error_kind kind,
    int error, char *message);

/* Outcome of a reply code: 2xx delivered, 5xx failed, else deferred. */
enum smtp_outcome smtp_outcome_of(int code);

/* --- smtp_client_transaction.c -------------------------------------- */

/* Starts the next transaction of the message, or ends the message when
 * every recipient is decided. */
void smtp_client_next_transaction(struct smtp_client *client);

/* Acts on a complete reply in SMTP_STATE_COMMANDS. */
void smtp_client_transaction_reply(struct smtp_client *client);

/* Acts on the reply to the final dot. */
void smtp_client_dot_reply(struct smtp_client *client);

/* Queues the header fields, the blank line and the first body blocks
 * (SMTP_STATE_BODY). */
void smtp_client_queue_header_and_body(struct smtp_client *client);

/* Reads body blocks into the output buffer (SMTP_STATE_BODY). */
void smtp_client_fill_body(struct smtp_client *client);

/* Phase of the command whose reply is due in SMTP_STATE_COMMANDS. */
enum smtp_phase smtp_client_transaction_phase(const struct smtp_client *client);

/* Frees the transaction's arrays and empties it. */
void smtp_client_transaction_clear(struct smtp_transaction *txn);

#endif

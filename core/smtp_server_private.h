/*
 * smtp_server_private.h - the session and transaction structures and
 * the functions shared by smtp_server.c (connections and input),
 * smtp_limits.c (admission, timeouts and the session limit),
 * smtp_command.c (the command table) and smtp_message.c (the message and
 * its hand-over to the spool). Not for use elsewhere.
 */
#ifndef SLUICE_SMTP_SERVER_PRIVATE_H
#define SLUICE_SMTP_SERVER_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "address.h"
#include "config.h"
#include "msgid.h"
#include "smtp_auth.h"
#include "smtp_reader.h"
#include "smtp_server.h"
#include "spool_header.h"
#include "tls_server.h"
#include "util.h"

struct bufferevent;
struct event_base;
struct evbuffer;
struct clock_timer;
struct log_host;
struct policy_state;
struct spool_data;

/* Named bounds of a session. The limits that operators tune are
 * options of sluice.conf with Exim's names (smtp_max_synprot_errors,
 * recipients_max, smtp_receive_timeout, ...), read from
 * smtp_server.config; these are the fixed ones. */
#define SMTP_SERVER_HELO_MAX		255	/* a domain name */
#define SMTP_SERVER_SHUTDOWN_GRACE_SEC	60
/* Unprocessed input held while a commit is in flight, and replies held
 * for a client that does not read them; over either, reading stops. */
#define SMTP_SERVER_INPUT_MAX		(64 * 1024)
#define SMTP_SERVER_OUTPUT_MAX		(64 * 1024)
/* Commands remembered for the "C=" list of a dropped session's log
 * line; the oldest are forgotten first. */
#define SMTP_SERVER_HISTORY_MAX		20
/* Bytes of early input shown in the synchronization error's log line. */
#define SMTP_SERVER_EARLY_INPUT_LOG_MAX	128
/* Room for "(helo) [ip]" as log lines name a client. */
#define SMTP_SERVER_HOST_TEXT_SIZE	(SMTP_SERVER_HELO_MAX + \
	INET6_ADDRSTRLEN + 8)

/*
 * Session states. Only smtp_server_enter_state() assigns them.
 */
enum smtp_state {
	SMTP_STATE_CONNECTED,	/* greeted; no HELO or EHLO yet */
	SMTP_STATE_READY,	/* HELO or EHLO given; no transaction */
	SMTP_STATE_MAIL,	/* MAIL accepted; no recipient yet */
	SMTP_STATE_RCPT,	/* at least one recipient accepted */
	SMTP_STATE_DATA,	/* reading the message content */
	SMTP_STATE_COMMIT,	/* content read; the spool is committing it */
	SMTP_STATE_CLOSING,	/* sending the last reply, then closing */
};

#define SMTP_STATE_BIT(state)	(1u << (state))

/* Where an AUTH exchange stands: the next input line is a response. */
enum smtp_auth_step {
	SMTP_AUTH_STEP_NONE,		/* lines are commands */
	SMTP_AUTH_STEP_PLAIN,		/* awaiting the PLAIN response */
	SMTP_AUTH_STEP_LOGIN_USER,	/* awaiting the LOGIN user name */
	SMTP_AUTH_STEP_LOGIN_PASSWORD,	/* awaiting the LOGIN password */
};

/* One mail transaction: from MAIL to the end of DATA, or to RSET. */
struct smtp_tx {
	char sender[ADDRESS_SIZE];	/* "" for the null sender */
	char **recipients;		/* owned, as accepted */
	/* DSN (RFC 3461) data of each recipient, in step with recipients:
	 * ORCPT as sent (owned, NULL if none) and NOTIFY bits. */
	char **orcpts;
	unsigned *dsn_notify;
	size_t recipient_count;
	size_t recipient_alloc;
	uint64_t declared_size;		/* MAIL's SIZE=, 0 if none */
	bool smtputf8;			/* MAIL had SMTPUTF8 (RFC 6531) */
	int dsn_ret;			/* MAIL's RET: enum smtp_dsn_ret */
	char *dsn_envid;		/* MAIL's ENVID as sent (owned), or
					 * NULL */

	/* From DATA on. */
	char id[MSGID_SIZE];
	struct timeval received;	/* when DATA was accepted */
	struct timeval completed;	/* when the final dot was read */
	struct spool_data *data;	/* the -D file; NULL once committed */
	char *write_error;		/* why writing the -D file failed */
	bool write_no_space;		/* it failed for lack of disk space */
	bool recipients_over;		/* a RCPT got 452 for recipients_max */
	bool chunking;			/* the content comes in BDAT chunks */
	struct smtp_data_reader reader;
	struct spool_header header;	/* what the commit writes as -H */
};

struct smtp_session {
	uint64_t serial;		/* for debugging and ordering */
	struct bufferevent *bev;	/* NULL once the connection is closed */
	struct clock_timer *timer;	/* command, data or closing timeout */
	struct clock_timer *session_timer;	/* smtp_max_session_time */
	bool is_socket;			/* false for -bh and the fuzz target */
	bool greeted;			/* the greeting has been written */
	bool session_expired;		/* close once the commit is done */
	enum smtp_state state;
	unsigned refs;			/* the connection, plus one per
					 * callback that keeps the session */

	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	struct sockaddr_storage peer;
	char local_ip[INET6_ADDRSTRLEN];
	int local_port;
	struct timeval started;

	char helo[SMTP_SERVER_HELO_MAX + 1];	/* "" until HELO/EHLO */
	bool esmtp;			/* EHLO was used */
	bool tls_offered;		/* the last EHLO offered STARTTLS */
	bool tls_handshaking;		/* bev is a TLS filter not yet up */
	bool tls;			/* the session is encrypted */
	bool tls_flush_wait;		/* closing once the socket's own
					 * output buffer is empty */

	/* Offered by the last EHLO. */
	bool dsn_offered;		/* DSN (RFC 3461) */
	bool smtputf8_offered;		/* SMTPUTF8 (RFC 6531) */
	bool esc_offered;		/* ENHANCEDSTATUSCODES (RFC 2034):
					 * replies carry the codes */
	bool submission;		/* a submission_ports port: AUTH before
					 * MAIL, Date: and Message-ID: added */

	/* CHUNKING (RFC 3030). */
	bool chunking_offered;		/* the last EHLO offered CHUNKING */
	uint64_t bdat_size;		/* size of the current chunk */
	uint64_t bdat_remaining;	/* bytes of the current chunk unread */
	bool bdat_last;			/* the current chunk ends the message */
	bool bdat_discard;		/* its BDAT was rejected: the bytes are
					 * read and dropped */

	/* AUTH (smtp_auth.c). */
	bool auth_offered;		/* the last EHLO offered AUTH */
	bool auth_busy;			/* a check or a delay is running:
					 * input waits */
	enum smtp_auth_step auth_step;
	char auth_mech[8];		/* "plain" or "login" */
	char auth_user[SMTP_AUTH_USER_MAX + 1];	/* during an exchange */
	char auth_id[SMTP_AUTH_USER_MAX + 1];	/* "" until authenticated */
	const char *authenticator;	/* A=: auth_mech once authenticated */
	unsigned auth_failures;
	struct clock_timer *auth_timer;	/* delays a failure's reply */
	/* Of the TLS session, for X= and the Received: field: "" unless
	 * tls is set. */
	char tls_cipher[TLS_SERVER_CIPHER_SIZE];
	char tls_version[TLS_SERVER_CIPHER_SIZE];
	char tls_standard[TLS_SERVER_CIPHER_SIZE];
	/* The client certificate's subject ("" when none was sent), and
	 * whether it verified against tls_verify_certificates. */
	char tls_peer_dn[TLS_SERVER_DN_SIZE];
	bool tls_verified;
	char tls_sni[SMTP_SERVER_HELO_MAX + 1];	/* name asked for, or "" */
	struct smtp_line_reader line_reader;
	unsigned syntax_errors;
	unsigned unknown_commands;
	unsigned mail_commands;		/* MAIL commands accepted */
	unsigned messages;		/* messages accepted */
	/* The verbs of the last commands, oldest first once it wraps. */
	const char *history[SMTP_SERVER_HISTORY_MAX];
	unsigned history_count;		/* all commands recorded */
	bool output_blocked;		/* waiting for the client to read */
	const char *command;		/* the line being handled, for logs;
					 * borrowed while it is handled */
	const char *error_reason;	/* for the syntax error log line when
					 * the reply does not say it; static */

	struct smtp_tx *tx;		/* NULL outside a transaction */
	/* The Lua policy state this session uses (a reference), or NULL;
	 * see smtp_policy.h. */
	struct policy_state *policy;
	struct smtp_session *prev, *next;
};

/* Settings and counters shared by every session, set by
 * smtp_server_init(). */
struct smtp_server_globals {
	struct event_base *base;
	const struct config *config;
	struct spool_store *store;
	bool shutting_down;
	/* Line 2 of -H: the user the daemon runs as. */
	char *login;
	int64_t uid;
	int64_t gid;
	struct smtp_server_stats stats;
	smtp_server_arrival_fn arrival_fn;
	void *arrival_arg;
	/* -bh: messages are read but not stored, and each policy decision
	 * is written to trace. */
	bool host_checking;
	FILE *trace;
};

extern struct smtp_server_globals smtp_server;

/* Names a state for log and debug lines. */
const char *smtp_server_state_name(enum smtp_state state);
void smtp_server_enter_state(struct smtp_session *s, enum smtp_state state);

/* Queues a reply; text has no CRLF (a multi-line reply has "\r\n"
 * between its lines). */
void smtp_server_reply(struct smtp_session *s, const char *text);
void smtp_server_replyf(struct smtp_session *s, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);

/* Sends text, then closes the connection once it is written. */
void smtp_server_reply_and_close(struct smtp_session *s, const char *text);

/* Kinds of client error, each with its own limit. */
enum smtp_error_kind {
	SMTP_ERROR_SYNTAX,	/* syntax or protocol: 501, 503, framing */
	SMTP_ERROR_UNKNOWN,	/* unrecognised command: 500 */
};

/*
 * Counts an error of kind and sends reply. Past the kind's limit the
 * session gets 421 instead and is closed, and mainlog and rejectlog
 * record why, naming the command being handled (s->command).
 */
void smtp_server_error(struct smtp_session *s, enum smtp_error_kind kind,
    const char *reply);

/* Writes one ">>> " line of a -bh trace; does nothing outside -bh. */
void smtp_server_trace(const char *fmt, ...) SLUICE_PRINTF(1, 2);


/* Records a command verb for the "C=" list of log lines; verb must be a
 * static string. */
void smtp_server_record_command(struct smtp_session *s, const char *verb);

/* Writes "(helo) [ip]" or "[ip]", as Exim names a client in log lines,
 * into buf. */
void smtp_server_host_text(const struct smtp_session *s, char *buf,
    size_t size);

/* Fills a log_host for s (strings borrowed from s). */
void smtp_server_log_host(const struct smtp_session *s, struct log_host *h);

/* Takes and drops a reference; the last one frees the session. */
void smtp_server_ref(struct smtp_session *s);
void smtp_server_unref(struct smtp_session *s);

/* Closes the connection now, dropping unsent output. A transaction not
 * yet handed to the spool is abandoned; a commit in flight keeps its
 * reference and finishes without the client. s may be gone afterwards. */
void smtp_server_close(struct smtp_session *s);

/* Number of open sessions from the client address ip. */
size_t smtp_server_count_from(const char *ip);

/* smtp_limits.c */

/*
 * Applies smtp_accept_max and smtp_accept_max_per_host to a new
 * connection from ip, with Exim's replies and log lines. Returns true if
 * the connection may have a session; otherwise fd has got its 421 and
 * has been closed.
 */
bool smtp_limits_admit(int fd, const char *ip, int port);

/*
 * Once the open sessions, s included, reach smtp_accept_max -
 * smtp_accept_reserve, only clients in smtp_reserve_hosts may go on.
 * Returns true if s may; otherwise s has got its 421 and is closing.
 */
bool smtp_limits_check_reserve(struct smtp_session *s);

/* Sends "554 SMTP synchronization error" to a client that sent input
 * before the greeting, logs what it sent, and closes. */
void smtp_limits_sync_error(struct smtp_session *s, const char *input,
    size_t len);

/* Creates the timers of a new session on base and arms them. */
void smtp_limits_start_timers(struct smtp_session *s,
    struct event_base *base);

/* Re-arms the timeout that fits s's state: smtp_command_timeout (or
 * smtp_receive_timeout) while a command is awaited, smtp_receive_timeout
 * while message data is read. A limit of 0 means none. */
void smtp_limits_arm_timeout(struct smtp_session *s);

/* Called once the reply to a commit is sent: if smtp_max_session_time
 * ran out meanwhile, replies 421, starts closing and returns true. */
bool smtp_limits_commit_done(struct smtp_session *s);

/* smtp_auth.c */

/* True if AUTH may be offered to s now (see smtp_auth.c). */
bool smtp_auth_offers(struct smtp_session *s);

/* Handles "AUTH mechanism [initial-response]"; arg is what follows
 * AUTH. The sequence (no transaction open) is already checked. */
void smtp_auth_command(struct smtp_session *s, const char *arg);

/* Handles one response line of an exchange (s->auth_step is set). */
void smtp_auth_line(struct smtp_session *s, const char *line);

/* Frees what AUTH holds for s; called when the connection closes. */
void smtp_auth_session_close(struct smtp_session *s);

/* smtp_server.c */

/* Ends the transaction, removing a -D file not yet committed. */
void smtp_server_tx_free(struct smtp_session *s);

/* Processes every complete line of buffered input, in order, until the
 * input runs out or the session must wait. */
void smtp_server_process(struct smtp_session *s);

/* Starts reading message content after "354". Returns 0, or -1 after
 * replying 451 when the -D file cannot be created. */
int smtp_message_begin(struct smtp_session *s);

/*
 * Checks the free space and inodes of the spool and log directories
 * against check_spool_space and the other minimums, with declared_size
 * (MAIL's SIZE=) added to the spool space needed. Returns true, or false
 * after logging and replying "452 Space shortage, please try later".
 */
bool smtp_message_check_space(struct smtp_session *s,
    uint64_t declared_size);

/* Feeds buffered input to the content reader, one contiguous chunk;
 * after the final dot, rejects the message or hands it to the spool. */
void smtp_message_feed(struct smtp_session *s, struct evbuffer *in);

/*
 * Drops the plaintext input still buffered (a client may not pipeline
 * past STARTTLS, RFC 3207 section 4.2), puts a TLS filter that takes
 * over ssl between the session and its socket, and starts the server
 * side of the handshake. Replies already queued go out in clear first.
 */
void smtp_server_start_tls(struct smtp_session *s, SSL *ssl);

/* Reads bytes of the current BDAT chunk from in, one contiguous run;
 * at the end of the chunk calls smtp_message_chunk_done(). */
void smtp_message_chunk(struct smtp_session *s, struct evbuffer *in);

/* Ends a BDAT chunk: drops a rejected one, replies 250 to one that is
 * not the last, and ends the message after the LAST one. */
void smtp_message_chunk_done(struct smtp_session *s);

/* Dispatches one command line (NUL-terminated, without CRLF). */
void smtp_command_dispatch(struct smtp_session *s, const char *line);

/* Maximum command line length in s's current state, CRLF included. */
size_t smtp_command_line_max(const struct smtp_session *s);

#endif

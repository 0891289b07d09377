/*
 * log_line.h - the Exim-format lines of mainlog and rejectlog, each built
 * by one function.
 *
 * Each kind of line has a struct of its fields, a log_line_format_*()
 * that writes the line's text (everything after the "date time [pid] id "
 * prefix) into a caller buffer, and a log_line_*() that formats the text
 * and writes it with log_write_text(). Fields appear in Exim's order,
 * only when set, and only when their log selector is on where Exim has
 * one. In the structs, NULL strings and negative times mean "absent".
 *
 * Every string from outside (addresses, host names, HELO names, SMTP
 * replies, subjects, certificate names) passes through log_line_escape(),
 * so no byte of it can end a line or break a field apart. AUTH data has
 * no field; only the authenticator's name and the authenticated id
 * appear.
 *
 * Text that does not fit the buffer is cut and ends with
 * LOG_TRUNCATED_MARK. Buffers must have room for LOG_LINE_BUFFER_MIN
 * bytes or more; LOG_TEXT_MAX + 1 fits any line log_write_text() keeps.
 * All strings are borrowed for the duration of the call.
 */
#ifndef SLUICE_LOG_LINE_H
#define SLUICE_LOG_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define LOG_LINE_BUFFER_MIN	64

/* Bytes of input kept per field before LOG_TRUNCATED_MARK. */
#define LOG_SUBJECT_MAX		100	/* T= on arrivals, as Exim */
#define LOG_CONFIRMATION_MAX	1024	/* C= on deliveries, as Exim */
#define LOG_FIELD_MAX		512	/* any other field */

/* Router and transport names that Exim's default configuration uses and
 * eximstats reports; sluice's remote deliveries log them. */
#define LOG_ROUTER_DNSLOOKUP	"dnslookup"
#define LOG_ROUTER_SMARTHOST	"smarthost"
#define LOG_TRANSPORT_REMOTE	"remote_smtp"

enum log_escape_mode {
	LOG_ESCAPE_TEXT,	/* free text, such as after ": " */
	LOG_ESCAPE_QUOTED,	/* inside "...": " is escaped too */
	LOG_ESCAPE_TOKEN,	/* one space-separated field: space too */
};

/*
 * Writes src escaped into dst: backslash as \\, newline, carriage return
 * and tab as \n, \r and \t, other bytes below 0x20 and from 0x7f up as
 * \xNN, and " or space where the mode requires. At most max_input bytes
 * of src are used; if more remain, LOG_TRUNCATED_MARK follows. Like
 * snprintf, returns the length the whole result needs; dst (size > 0) is
 * always terminated and never ends inside an escape sequence.
 */
size_t log_line_escape(char *dst, size_t size, const char *src,
    size_t max_input, enum log_escape_mode mode);

/*
 * Writes a duration as Exim does: "1w2d3h4m5s" with zero parts left
 * out, "0s" for none; with the millisec selector, durations under 5 s
 * as "1.578s". Returns the length; size must be at least 32.
 */
size_t log_line_format_duration(char *dst, size_t size, int64_t usec);

/* The other end of a connection. */
struct log_host {
	const char *name;	/* verified (incoming) or MX host name */
	const char *helo;	/* HELO/EHLO argument, incoming only */
	const char *ip;		/* NULL when there was no host */
	int port;		/* 0 when unknown */
};

enum log_cert {
	LOG_CERT_NONE,		/* no certificate presented: no CV= */
	LOG_CERT_UNVERIFIED,	/* CV=no */
	LOG_CERT_VERIFIED,	/* CV=yes */
	LOG_CERT_DANE,		/* CV=dane */
};

/* TLS of a connection; all fields are ignored while cipher is NULL. */
struct log_tls {
	const char *cipher;	/* X=, "TLS1.3:TLS_AES_256_GCM_SHA384:256" */
	bool resumed;		/* "*" after X= (tls_resumption) */
	enum log_cert cert;	/* CV= (tls_certificate_verified) */
	const char *peer_dn;	/* DN="..." (tls_peerdn) */
	const char *sni;	/* SNI= on arrivals (tls_sni) */
};

/* "<=": a message was received. */
struct log_arrival {
	const char *sender;		/* "" for the null sender <> */
	const char *bounce_of;		/* R=: id of the bounced message */
	struct log_host host;		/* H= */
	const char *interface_ip;	/* I=[ip]:port (incoming_interface) */
	int interface_port;
	const char *ident;		/* U=: local login or RFC 1413 ident */
	const char *protocol;		/* P=: "esmtps", "local", ... */
	struct log_tls tls;
	const char *authenticator;	/* A=name[:id[:sender]] */
	const char *auth_id;
	const char *auth_sender;	/* with smtp_mailauth */
	bool chunking;			/* K: BDAT was used */
	uint64_t size;			/* S= */
	int64_t receive_usec;		/* RT= (receive_time) */
	const char *message_id_header;	/* id= without <> (msg_id) */
	bool message_id_created;	/* id*= (msg_id_created) */
	const char *subject;		/* T="..." (subject) */
	const char *received_sender;	/* from <...> (received_sender) */
	const char *const *recipients;	/* for a b c (received_recipients) */
	size_t recipient_count;
};

size_t log_line_format_arrival(char *buf, size_t size,
    const struct log_arrival *arrival);
void log_line_arrival(const char *msgid, const struct log_arrival *arrival);

enum log_delivery_kind {
	LOG_DELIVERY_FIRST,		/* "=>" */
	LOG_DELIVERY_MORE,		/* "->", same transaction as the last */
	LOG_DELIVERY_SUPPRESSED,	/* "*>", -N: nothing was sent */
};

/* "=>", "->" and "*>": an address was delivered. */
struct log_delivery {
	enum log_delivery_kind kind;
	const char *address;
	const char *original;		/* " <original>" if generated */
	const char *sender;		/* F=<...> (sender_on_delivery) */
	const char *return_path;	/* P=<...> (return_path_on_delivery) */
	const char *router;		/* R=, LOG_ROUTER_DNSLOOKUP if NULL */
	const char *transport;		/* T=, LOG_TRANSPORT_REMOTE if NULL */
	uint64_t size;			/* S= (delivery_size) */
	struct log_host host;		/* H=name [ip]:port */
	bool reused_connection;		/* "*" after H= */
	const char *interface_ip;	/* I= (incoming_interface and
					 * outgoing_interface) */
	int interface_port;		/* with outgoing_port */
	struct log_tls tls;		/* not on "*>" lines */
	bool chunking;			/* K */
	const char *confirmation;	/* C="..." (smtp_confirmation); lines
					 * of a multi-line reply joined by \n */
	int64_t queue_usec;		/* QT= (queue_time) */
	int64_t deliver_usec;		/* DT= (deliver_time) */
};

size_t log_line_format_delivery(char *buf, size_t size,
    const struct log_delivery *delivery);
void log_line_delivery(const char *msgid,
    const struct log_delivery *delivery);

/* "==": a delivery attempt was deferred. */
struct log_defer {
	const char *address;
	const char *original;
	const char *router;		/* R=; with no router or transport, */
	const char *transport;		/* T=; the line says "routing" */
	int error_code;			/* "defer (n)": errno if > 0, else
					 * Exim's negative codes */
	const char *error;		/* ": text" if error_code > 0; NULL
					 * for strerror(error_code) */
	struct log_host host;		/* H= when a host was tried */
	bool reused_connection;
	int64_t deliver_usec;		/* DT= (deliver_time) */
	const char *message;		/* ": message" */
	bool retry_time_not_reached;	/* logged only with retry_defer */
};

size_t log_line_format_defer(char *buf, size_t size,
    const struct log_defer *defer);
void log_line_defer(const char *msgid, const struct log_defer *defer);

/* "**": an address failed permanently. */
struct log_failure {
	const char *address;
	const char *original;
	const char *sender;		/* F=<...> (sender_on_delivery) */
	const char *return_path;	/* P=<...> (return_path_on_delivery) */
	const char *router;		/* R= */
	const char *transport;		/* T= */
	struct log_host host;		/* H= */
	bool reused_connection;
	struct log_tls tls;
	const char *error;		/* ": error", such as strerror() */
	const char *message;		/* ": message", such as the reply */
	int64_t deliver_usec;		/* DT= (deliver_time) */
};

size_t log_line_format_failure(char *buf, size_t size,
    const struct log_failure *failure);
void log_line_failure(const char *msgid, const struct log_failure *failure);

/* "Completed": every recipient is done; QT= with queue_time_overall. */
size_t log_line_format_completed(char *buf, size_t size, int64_t queue_usec);
void log_line_completed(const char *msgid, int64_t queue_usec);

/* A rejected SMTP command; goes to mainlog and rejectlog. */
struct log_reject {
	struct log_host host;		/* H= */
	const char *sender;		/* F=<...>, once MAIL was given */
	bool temporary;			/* "temporarily rejected" (4xx) */
	const char *stage;		/* "RCPT", "MAIL", "after DATA",
					 * "EHLO or HELO", "connection" */
	const char *address;		/* " <address>" after MAIL or RCPT */
	const char *reason;		/* ": reason" */
};

size_t log_line_format_reject(char *buf, size_t size,
    const struct log_reject *reject);
void log_line_reject(const char *msgid, const struct log_reject *reject);

/* "SMTP connection from ... (TCP/IP connection count = n)", logged only
 * with smtp_connection. */
size_t log_line_format_connection(char *buf, size_t size,
    const struct log_host *host, unsigned connection_count);
void log_line_connection(const struct log_host *host,
    unsigned connection_count);

/* "Connection from ... refused: reason", logged only with
 * connection_reject. */
size_t log_line_format_connection_refused(char *buf, size_t size,
    const struct log_host *host, const char *reason);
void log_line_connection_refused(const struct log_host *host,
    const char *reason);

/* "<name> authenticator failed for <host>: <reply> (set_id=<id>)", the
 * line fail2ban's Exim filter matches; to mainlog and rejectlog. */
struct log_auth_failure {
	const char *authenticator;
	struct log_host host;
	const char *reply;		/* "535 Incorrect authentication data" */
	const char *set_id;		/* the id the client gave, or NULL */
};

size_t log_line_format_auth_failure(char *buf, size_t size,
    const struct log_auth_failure *failure);
void log_line_auth_failure(const struct log_auth_failure *failure);

/* One listening socket: "[ip]:port", or "port N (IPv6 and IPv4)" when ip
 * is NULL (the wildcard address of both families). */
struct log_listener {
	const char *ip;
	int port;
};

/* "<program> daemon started: pid=N, <queue runs>, listening for SMTP
 * on ..." (at most 10 sockets, then " ..."). */
struct log_daemon_start {
	const char *program;		/* "sluice 0.1.0" */
	long pid;
	const char *queue_runs;		/* "-q30m", NULL: "no queue runs" */
	const struct log_listener *listeners;	/* none: "not listening" */
	size_t listener_count;
};

size_t log_line_format_daemon_start(char *buf, size_t size,
    const struct log_daemon_start *start);
void log_line_daemon_start(const struct log_daemon_start *start);

/* "Start queue run: pid=N" and "End queue run: pid=N", logged only with
 * queue_run. */
size_t log_line_format_queue_run(char *buf, size_t size, bool start,
    long pid);
void log_line_queue_run(bool start, long pid);

/* The options of a queue run, for its start and end lines. */
struct log_queue_run {
	bool start;			/* "Start queue run", else "End" */
	long pid;
	const char *flags;		/* " -q<flags>", e.g. "ff" or "i";
					 * NULL or "" for a plain -q */
	const char *recipient_match;	/* " -R <string>", or NULL */
	bool recipient_regex;		/* "-Rr" */
	const char *sender_match;	/* " -S <string>", or NULL */
	bool sender_regex;		/* "-Sr" */
};

/* "Start queue run: pid=N -qff -R string -S string", logged only with
 * queue_run. */
size_t log_line_format_queue_run_options(char *buf, size_t size,
    const struct log_queue_run *run);
void log_line_queue_run_options(const struct log_queue_run *run);

/* Lines about one message that an operator's command or a forced
 * delivery causes. */
enum log_message_event {
	LOG_EVENT_FROZEN,		/* "frozen by <user>" */
	LOG_EVENT_UNFROZEN,		/* "unfrozen by <user>" */
	LOG_EVENT_REMOVED,		/* "removed by <user>" */
	LOG_EVENT_CANCELLED,		/* "cancelled by <user>" */
	LOG_EVENT_MARKED_DELIVERED,	/* "address <a> marked delivered by
					 * <user>" */
	LOG_EVENT_RECIPIENT_ADDED,	/* "recipient <a> added by <user>" */
	LOG_EVENT_SENDER_CHANGED,	/* "sender address changed to <a> by
					 * <user>" */
	LOG_EVENT_FORCED_THAW,		/* "Unfrozen by forced delivery" */
	LOG_EVENT_SKIPPED_FROZEN,	/* "Message is frozen", logged only
					 * with skip_delivery */
};

/* address is used by the events that name one ("" for <>), user by
 * those that end in "by <user>". */
size_t log_line_format_message_event(char *buf, size_t size,
    enum log_message_event event, const char *address, const char *user);
void log_line_message_event(const char *msgid, enum log_message_event event,
    const char *address, const char *user);

#endif

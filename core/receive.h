/*
 * receive.h - turning a received message into what the spool stores and
 * mainlog records: the -H contents (envelope, options, the Received:
 * field sluice adds and the message's own header fields), the size Exim
 * reports as S=, and the "<=" arrival line.
 *
 * The Received: field has the shape of Exim 4.96's default
 * received_header_text, for example
 *
 *   Received: from [192.0.2.1] (helo=client.example)
 *   	by mx.example.net with esmtp (sluice 0.1.0)
 *   	(envelope-from <alice@example.org>)
 *   	id 1tt1Jd-00000000CXd-1jGj
 *   	for bob@example.net;
 *   	Fri, 14 Mar 2025 09:26:53 +0000
 *
 * with "from name ([ip] helo=...)" when the host name is known, no
 * envelope-from line for the null sender, and a "for" line only when
 * the message has one recipient.
 *
 * Ownership: every pointer in struct receive_message is borrowed for the
 * duration of the call that takes it.
 */
#ifndef SLUICE_RECEIVE_H
#define SLUICE_RECEIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "config.h"
#include "spool_header.h"

/* Room for an RFC 5322 date-time such as "Fri, 14 Mar 2025 09:26:53
 * +0000". */
#define RECEIVE_DATE_SIZE	40

/* The receiving side's facts about one message. */
struct receive_message {
	const char *id;
	const char *sender;		/* "" for the null sender */
	const char *const *recipients;
	size_t recipient_count;

	/* Who sent it; host_ip NULL for a local submission. */
	const char *helo;		/* HELO/EHLO argument, or NULL */
	const char *host_ip;
	int host_port;
	const char *host_name;		/* verified name, or NULL */
	const char *interface_ip;	/* the local end of the connection */
	int interface_port;
	const char *protocol;		/* "esmtp", "smtp", "local", ... */
	/* The TLS session, or all NULL in clear: X= on the <= line
	 * ("TLS1.3:TLS_AES_256_GCM_SHA384:256"), and the version and the
	 * cipher's standard name for the Received: field. */
	const char *tls_cipher;
	const char *tls_version;
	const char *tls_standard;
	/* The client certificate: its subject for DN= (NULL when none was
	 * sent), and CV=yes when it verified (CV=no otherwise, on any TLS
	 * arrival, as Exim logs it). */
	const char *tls_peer_dn;
	bool tls_verified;
	const char *tls_sni;		/* SNI= (tls_sni), or NULL */
	/* AUTH: A=authenticator:auth_id, and -auth_id in -H; NULL for
	 * none. */
	const char *authenticator;
	const char *auth_id;
	bool chunking;			/* K on the <= line: BDAT was used */

	/* ESMTP parameters: SMTPUTF8 (RFC 6531), and DSN (RFC 3461) as
	 * sent, RET as enum smtp_dsn_ret. orcpts and dsn_notify are NULL
	 * or in step with recipients; an orcpts entry may be NULL. */
	bool smtputf8;
	int dsn_ret;
	const char *dsn_envid;
	const char *const *orcpts;
	const unsigned *dsn_notify;

	/* Login, uid and gid of the spool files' writer, for line 2 of -H. */
	const char *login;
	int64_t uid;
	int64_t gid;

	struct timeval received;	/* reception started */
	struct timeval completed;	/* content fully read */

	/* The content: header section with LF line endings (fields in the
	 * order received, each ending with a newline), and body facts. */
	const char *headers;
	size_t headers_len;
	uint64_t body_size;
	uint64_t body_lines;
	uint64_t body_zeros;
	size_t max_line_len;

	/* A local submission gets Message-ID: and Date: when it lacks
	 * them; mail from a remote host is left as sent, as in Exim,
	 * unless it came in on a submission port (submission). */
	bool local;
	bool submission;
};

/*
 * Writes an RFC 5322 date-time for tv in local time (English day and
 * month names, whatever the locale) into buf.
 */
void receive_format_date(const struct timeval *tv,
    char buf[RECEIVE_DATE_SIZE]);

/*
 * Fills h (zeroed by the caller) with everything the -H file contains
 * for m. Returns 0, or -1 with *error set (caller frees) when the
 * message cannot be stored, for example because a header field is
 * longer than the spool allows. Either way the caller frees h with
 * spool_header_free().
 */
int receive_build_header(const struct config *config,
    const struct receive_message *m, struct spool_header *h, char **error);

/* Adds Message-ID: <E<id>@<primary_hostname>> and Date: at the end of
 * the header fields when h has none (Exim's local fixups). */
void receive_add_local_fixups(const struct config *config,
    const struct receive_message *m, struct spool_header *h);

/* The message size Exim logs as S=: live header fields, body, plus 1. */
uint64_t receive_message_size(const struct spool_header *h,
    uint64_t body_size);

/* Writes the "<=" line for a message that is now on the spool. */
void receive_log_arrival(const struct receive_message *m,
    const struct spool_header *h);

#endif

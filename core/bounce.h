/*
 * bounce.h - delivery failure reports (bounces) in the shape Exim 4.96
 * gives them, and their injection into the queue.
 *
 * A bounce is an RFC 3464 multipart/report with three parts: a text
 * part listing each failed address with the host and the reason, a
 * message/delivery-status part with one "Action: failed" block per
 * address, and the returned message (message/rfc822, or only its
 * header as text/rfc822-headers for RET=HDRS). Its header section
 * starts with X-Failed-Recipients: and Auto-Submitted: auto-replied,
 * and From: is dsn_from (default "Mail Delivery System
 * <Mailer-Daemon@qualify_domain>").
 *
 * The bounce enters the spool as a local message with the null sender
 * and -localerror, and its "<=" line carries R=<id of the failed
 * message>. Null-sender messages never get a bounce: the queue freezes
 * them instead.
 *
 * Ownership: every string in the structs below is owned by the struct
 * that holds it; the free functions release them.
 * Thread use: bounce_inject() belongs to the store's loop thread; the
 * rest are pure functions.
 */
#ifndef SLUICE_BOUNCE_H
#define SLUICE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"

struct spool_header;
struct spool_recipient;
struct spool_store;

/* Exim's rf_notify_* bits in spool_recipient.dsn_flags (RFC 3461
 * NOTIFY=). No bit set means the default, FAILURE and DELAY. */
#define BOUNCE_NOTIFY_NEVER	0x02
#define BOUNCE_NOTIFY_SUCCESS	0x04
#define BOUNCE_NOTIFY_FAILURE	0x08
#define BOUNCE_NOTIFY_DELAY	0x10
#define BOUNCE_NOTIFY_ANY	(BOUNCE_NOTIFY_NEVER | BOUNCE_NOTIFY_SUCCESS | \
				 BOUNCE_NOTIFY_FAILURE | BOUNCE_NOTIFY_DELAY)

/* Bytes kept of one failure reason or remote reply; longer ones are cut. */
#define BOUNCE_TEXT_MAX		4096
/* X-Failed-Recipients: starts a new line after this many addresses. */
#define BOUNCE_FAILED_PER_LINE	50

/* One failed address. */
struct bounce_failure {
	char *address;
	char *orcpt;		/* DSN ORCPT=, or NULL */
	int dsn_flags;		/* BOUNCE_NOTIFY_* bits */
	char *host_name;	/* the host that rejected it, or NULL */
	char *host_ip;
	/* The remote reply, lines joined by '\n', or NULL when no server
	 * replied (an unrouteable address, a retry timeout). */
	char *reply;
	/* The reason as mainlog shows it after "**": "SMTP error from
	 * remote mail server after RCPT TO:<a@b>: 550 ...", or a local
	 * reason such as "Unrouteable address". */
	char *message;
};

/* The failures of one delivery attempt; a zeroed struct is empty. */
struct bounce_list {
	struct bounce_failure *items;
	size_t count;
};

/*
 * Appends a failure. rcpt (the address's spool record, for NOTIFY and
 * ORCPT) may be NULL; host_name, host_ip and reply may be NULL. Every
 * string is copied, and reply and message are cut at BOUNCE_TEXT_MAX.
 */
void bounce_list_add(struct bounce_list *list, const char *address,
    const struct spool_recipient *rcpt, const char *host_name,
    const char *host_ip, const char *reply, const char *message);

/* Frees the failures in list and empties it. */
void bounce_list_clear(struct bounce_list *list);

/* True if a failure report for an address with these NOTIFY bits may be
 * sent: NOTIFY absent, or containing FAILURE. */
bool bounce_notify_failure(int dsn_flags);

/* A composed bounce or warning, ready to be stored: header fields and
 * body, both with LF line ends. */
struct bounce_content {
	char *headers;
	size_t headers_len;
	char *body;
	size_t body_len;
	char *recipient;	/* the errors address: the original sender */
};

void bounce_content_free(struct bounce_content *content);

/*
 * Composes the bounce for the failures in list (only those that
 * bounce_notify_failure() admits) of the message original.
 * body[0..body_len) is the start of its body as stored in the -D file
 * (LF line ends), and body_size the whole body's size, so a body cut
 * at bounce_return_size_limit is reported as cut. now and random make
 * the MIME boundary ("<now>-eximdsn-<random>").
 *
 * Returns 1 with *out filled (free it with bounce_content_free()), or 0
 * when nothing is to be sent: a null sender, or every failure's NOTIFY
 * excludes FAILURE.
 */
int bounce_compose(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    const char *body, size_t body_len, uint64_t body_size, time_t now,
    uint32_t random, struct bounce_content *out);

/*
 * Returns the bytes of the original body that a bounce returns at most
 * under config, so the caller reads no more. 0 means no body goes back.
 */
size_t bounce_body_limit(const struct config *config,
    const struct spool_header *original);

/*
 * Returns when the delay warning after warning_count earlier ones is
 * due, in seconds after arrival, by the delay_warning time list: its
 * items in turn, then its last gap again and again. -1 for never (an
 * empty list or "0s").
 */
int64_t bounce_warning_due(const struct config_timelist *list,
    int warning_count);

/* True if the message may get delay warnings: its sender is not null and
 * it is not list or automatic mail (List-Id:, List-Post:,
 * List-Subscribe:, Precedence: bulk, list or junk, Auto-Submitted:
 * auto-generated or auto-replied), which is what Exim's default
 * delay_warning_condition tests. */
bool bounce_warning_wanted(const struct spool_header *original);

/* True if a delay warning for an address with these NOTIFY bits may be
 * sent: NOTIFY absent, or containing DELAY. */
bool bounce_notify_delay(int dsn_flags);

/*
 * Composes the "Warning: message <id> delayed <N> minutes|hours" notice
 * for the deferred addresses in list (the reason of each in its
 * message), delay seconds after arrival. The last part contains the header
 * section of the message. Returns 1 with *out filled, or 0 when no
 * warning is to be sent (bounce_warning_wanted() is false, or NOTIFY
 * excludes DELAY for every address).
 */
int bounce_compose_warning(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    int64_t delay, time_t now, uint32_t random, struct bounce_content *out);

/* True if a success notice for an address with these NOTIFY bits is
 * wanted: NOTIFY contains SUCCESS. */
bool bounce_notify_success(int dsn_flags);

/*
 * Composes the success notice (RFC 3464, "Action: relayed") for the
 * addresses in list that asked for one with NOTIFY=SUCCESS, delivered
 * to a server that does not offer DSN, so it cannot report delivery
 * itself. The last part contains the header section of the message.
 * Returns 1 with *out filled, or 0 when none is to be sent.
 */
int bounce_compose_relayed(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    time_t now, uint32_t random, struct bounce_content *out);

/*
 * Reads up to max bytes of the body of message id from its open -D file
 * into *out (caller frees), with their number in *len and the whole
 * body's size in *size. Returns 0, or -1 with errno set.
 * NOTE: it reads on the calling thread, the loop thread in the daemon;
 * max is bounce_return_size_limit (100K by default), but with no limit a
 * large body stalls the loop while it is read.
 */
int bounce_read_body(int data_fd, const char *id, size_t max, char **out,
    size_t *len, uint64_t *size);

/* Reports the end of bounce_inject(): id is the bounce's message id, or
 * NULL when it could not be stored (the reason is logged). */
typedef void (*bounce_done_fn)(void *arg, const char *id);

/*
 * Stores content as a new message from <> to content->recipient,
 * generated for the message original_id, and writes its "<=" line with
 * R=<original_id> once it is durable. done runs on the loop thread:
 * later, or before this returns when the bounce cannot be created.
 * content is borrowed for the call.
 */
void bounce_inject(struct spool_store *store, const struct config *config,
    const char *original_id, const struct bounce_content *content,
    bounce_done_fn done, void *arg);

#endif

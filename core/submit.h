/*
 * submit.h - local submission: how sendmail, rmail and every other local
 * program hands a message to the running daemon without a setuid-root
 * binary.
 *
 * The daemon listens on a Unix stream socket at
 * <spool_directory>/sluice-submit, mode 0666, so any local user can
 * connect. The kernel reports the client's uid and groups (SO_PEERCRED),
 * so the client cannot claim to be someone else. The daemon applies its
 * own configuration to what arrives, so options such as -C or -D that
 * change the client's configuration gain an untrusted caller nothing.
 *
 * A request is the envelope, one item per line, each value quoted with
 * control_quote() so that it cannot contain a newline:
 *
 *   sluice-submit 1
 *   sender <address>        -f or -r; "%" (empty) for the null sender
 *   name <full name>        -F
 *   remove-bcc              -t: Bcc: fields are kept only as deleted
 *   no-delivery             -N
 *   errors-mail             -oem, -oee: mail a refusal to the sender
 *   protocol <name>         local-smtp or local-esmtp for -bs
 *   recipient <address>     one or more
 *   data
 *
 * followed by the message with LF line ends, up to the end of the
 * stream (the client shuts down its sending side). The daemon answers
 * with one line, "ok <message id>" once the message is durable on the
 * spool, or "error: <reason>" when it refused it; the client has the
 * message's only copy until it reads "ok". A request with errors-mail
 * that is refused gets "error-mailed <report id> <reason>" instead once
 * a report to its sender is durable on the spool.
 *
 * What the daemon decides, not the client: the envelope sender (only a
 * trusted caller, root or the Exim user, may set it; anyone may ask for
 * the null sender; everyone else gets login@qualify_domain as in Exim,
 * never a failure), the From: field that a message without one gets,
 * the qualification of unqualified recipients, and P=local with U=login
 * in the "<=" line.
 *
 * NOTE: the socket keeps the configuration the daemon started with, so
 * a SIGHUP reload does not change how local submissions are treated.
 */
#ifndef SLUICE_SUBMIT_H
#define SLUICE_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct spool_store;

#define SUBMIT_SOCKET_NAME	"sluice-submit"
/* The drop folder under spool_directory, for when no daemon runs (see
 * submit.c for why it is safe): writers create "t.<random>" files of
 * mode 0640 there, holding a request as above, and rename them to
 * "m.<random>" once complete. */
#define SUBMIT_DROP_NAME	"submit-drop"
#define SUBMIT_GREETING		"sluice-submit 1"
/* The envelope part of a request: lines, and bytes in all. */
#define SUBMIT_ENVELOPE_LINE_MAX	2048
#define SUBMIT_RECIPIENTS_MAX		1000
/* A message when message_size_limit is 0 (Exim's default is 50M). */
#define SUBMIT_MESSAGE_MAX_DEFAULT	(50u * 1024 * 1024)
#define SUBMIT_CLIENTS_MAX		64

/* Called on the loop thread for each message once it is on the spool. */
typedef void (*submit_arrival_fn)(void *arg, const char *id);

/*
 * Opens the submission socket at path (replacing a stale one), creates
 * and watches the drop folder and imports the messages that wait in
 * it. config
 * and store are borrowed until submit_close(). Returns 0, or -1 with
 * *error set (caller frees).
 */
int submit_open(struct event_base *base, const struct config *config,
    struct spool_store *store, const char *path, submit_arrival_fn arrival,
    void *arrival_arg, char **error);

/* Closes the socket and drops clients whose message is not yet
 * committed (they get no "ok", so their sendmail reports a failure). */
void submit_close(void);

/*
 * Checks an envelope address as the daemon does: local@domain, or a
 * bare local part that gets qualified, with no white space, angle
 * brackets or control characters. Returns NULL, or the reason it is
 * malformed (static text).
 */
const char *submit_check_address(const char *address);

/* The largest message the daemon accepts under config. */
size_t submit_message_max(const struct config *config);

#endif

/*
 * sendmail_smtp.c - "sendmail -bs": an SMTP session on stdin and stdout,
 * as mutt and inetd-style callers use it (see sendmail.h).
 *
 * The session runs in the caller's process with no privilege. Each
 * message goes to the daemon like any local submission, so the daemon,
 * not this code, decides whether MAIL FROM may set the sender; its "<="
 * line shows P=local-esmtp (after EHLO) or P=local-smtp.
 *
 * "-bS" (and the name rsmtp) reads batched SMTP the same way, as Exim
 * does. Nothing is written while every command succeeds. The first
 * error writes the reply and the line numbers to stdout and a report to
 * stderr, and abandons the rest of the batch. The exit status is then 1
 * if a message was accepted before the error, else 2. HELO and EHLO act
 * as RSET, VRFY, EXPN, ETRN and HELP as NOOP, and QUIT ends the batch.
 * Its messages arrive with P=local-bsmtp.
 *
 * Limits: command lines over SENDMAIL_SMTP_LINE_MAX bytes get 500, the
 * recipients of one message are capped at SENDMAIL_ADDRESSES_MAX, and
 * a message over the daemon's size limit gets 552.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "address.h"
#include "control.h"
#include "sendmail.h"
#include "submit.h"
#include "util.h"
#include "version.h"

#define SENDMAIL_SMTP_LINE_MAX	2048

/* One session's transaction. */
struct sendmail_smtp {
	const struct config *config;
	bool esmtp;
	bool have_sender;
	char sender[ADDRESS_SIZE];
	struct sendmail_addresses recipients;

	/* -bS */
	bool batched;
	unsigned long line;		/* lines read so far */
	unsigned long transaction_line;	/* lines read before the last MAIL */
	unsigned long accepted;		/* messages handed over */
	const char *command;		/* the command being run, or NULL */
	char *error;			/* the first error reply, owned */
};

static void
sendmail_smtp_reply(struct sendmail_smtp *s, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);

/* Writes a reply. In a batch, keeps the first error reply instead. */
static void
sendmail_smtp_reply(struct sendmail_smtp *s, const char *fmt, ...)
{
	va_list ap;

	if (s->batched) {
		if (s->error != NULL)
			return;
		va_start(ap, fmt);
		s->error = xvasprintf(fmt, ap);
		va_end(ap);
		if (s->error[0] == '2' || s->error[0] == '3') {
			free(s->error);
			s->error = NULL;
		}
		return;
	}
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/*
 * Reports the error that ends a batch, in the shape Exim gives it: the
 * reply, the line numbers and the command on stdout, a longer text on
 * stderr. Returns the exit status: 1 if a message was accepted before
 * the error, else 2.
 */
static int
sendmail_smtp_batch_error(const struct sendmail_smtp *s)
{
	printf("%s\nTransaction started in line %lu\nError detected in line "
	    "%lu\n", s->error, s->transaction_line, s->line);
	if (s->command != NULL)
		printf("%s\n", s->command);
	fflush(stdout);
	fprintf(stderr, "An error was detected while processing a file of "
	    "BSMTP input.\nThe error message was:\n\n  %s\n\nThe SMTP "
	    "transaction started in line %lu.\nThe error was detected in "
	    "line %lu.\n", s->error, s->transaction_line, s->line);
	if (s->command != NULL)
		fprintf(stderr, "The SMTP command at fault was:\n\n   %s\n\n",
		    s->command);
	fprintf(stderr, "%lu previous message%s successfully processed.\n"
	    "The rest of the batch was abandoned.\n", s->accepted,
	    s->accepted == 1 ? " was" : "s were");
	return s->accepted > 0 ? 1 : 2;
}

static void
sendmail_smtp_reset(struct sendmail_smtp *s)
{
	s->have_sender = false;
	s->sender[0] = '\0';
	sendmail_addresses_free(&s->recipients);
}

/*
 * Reads one line into a new string without its line end (caller frees).
 * Returns the length, or -1 at the end of input. *too_long is set for a
 * line over max bytes.
 * NOTE: getline() holds a whole line in memory, so a line without a
 * newline grows this process (the caller's own) until input ends.
 */
static ssize_t
sendmail_smtp_line(struct sendmail_smtp *s, char **line, size_t *cap,
    size_t max, bool *too_long)
{
	ssize_t got = getline(line, cap, stdin);
	size_t n;

	*too_long = false;
	if (got <= 0)
		return -1;
	s->line++;
	n = (size_t)got;
	if ((*line)[n - 1] == '\n')
		n--;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	(*line)[n] = '\0';
	if (n > max)
		*too_long = true;
	return (ssize_t)n;
}

/* Reads the message after DATA up to the lone dot, undoing the dot
 * stuffing, and hands it to the daemon. */
static void
sendmail_smtp_data(struct sendmail_smtp *s, const struct options *o)
{
	struct sendmail_envelope env = { 0 };
	char reply[CONTROL_LINE_MAX];
	char *line = NULL, *msg = NULL;
	size_t cap = 0, len = 0, size = 0;
	size_t max = submit_message_max(s->config);
	bool too_long, too_big = false, ended = false;
	ssize_t n;

	sendmail_smtp_reply(s, "354 Enter message, ending with \".\" on a line "
	    "by itself");
	while ((n = sendmail_smtp_line(s, &line, &cap, SIZE_MAX,
	    &too_long)) >= 0) {
		const char *p = line;

		if (strcmp(line, ".") == 0) {
			ended = true;
			break;
		}
		if (*p == '.')
			p++;	/* RFC 5321 4.5.2 */
		n -= p - line;
		if (too_big || len + (size_t)n + 1 > max) {
			too_big = true;
			continue;
		}
		if (len + (size_t)n + 2 > size) {
			size = (len + (size_t)n + 2) * 2;
			msg = xrealloc(msg, size);
		}
		memcpy(msg + len, p, (size_t)n);
		len += (size_t)n;
		msg[len++] = '\n';
	}
	free(line);
	if (!ended) {
		free(msg);
		/* The caller's end of input ends the session; a batch
		 * reports the message it lost. */
		if (s->batched) {
			s->line++;
			s->command = NULL;
			sendmail_smtp_reply(s, "421 Lost incoming connection");
		}
		return;
	}
	if (too_big) {
		sendmail_smtp_reply(s, "552 Message size exceeds maximum permitted");
		goto out;
	}

	env.sender = s->sender;
	env.protocol = s->batched ? "local-bsmtp" : s->esmtp ? "local-esmtp" :
	    "local-smtp";
	env.no_delivery = o->no_delivery;
	env.recipients = &s->recipients;
	switch (sendmail_submit(s->config, &env, msg != NULL ? msg : "", len,
	    reply, sizeof(reply))) {
	case 0:
		s->accepted++;
		if (reply[0] != '\0')
			sendmail_smtp_reply(s, "250 OK id=%s", reply);
		else
			sendmail_smtp_reply(s, "250 OK: the message waits for the "
			    "daemon");
		break;
	case 1:
		sendmail_smtp_reply(s, "550 %s", reply);
		break;
	default:
		sendmail_smtp_reply(s, "451 Temporary local problem - please try "
		    "later");
		break;
	}
out:
	free(msg);
	sendmail_smtp_reset(s);
}

/* MAIL FROM and RCPT TO. */
static void
sendmail_smtp_path(struct sendmail_smtp *s, const char *arg, bool mail)
{
	struct address_path path;
	const char *error;

	if (address_parse_path(arg, mail ? ADDRESS_SENDER : ADDRESS_RECIPIENT,
	    true, &path, &error) < 0) {
		sendmail_smtp_reply(s, "501 %s: %s", path.address, error);
		return;
	}
	if (mail) {
		if (s->have_sender) {
			sendmail_smtp_reply(s, s->batched ? "503 Sender already "
			    "given" : "503 sender already given");
			return;
		}
		memcpy(s->sender, path.address, sizeof(s->sender));
		s->have_sender = true;
		/* A batch's report counts the lines before this MAIL. */
		s->transaction_line = s->line - 1;
		sendmail_smtp_reply(s, "250 OK");
		return;
	}
	if (!s->have_sender) {
		sendmail_smtp_reply(s, s->batched ? "503 No sender yet given" :
		    "503 sender not yet given");
		return;
	}
	if (sendmail_parse_address_list(path.address, strlen(path.address),
	    &s->recipients) < 0) {
		sendmail_smtp_reply(s, "452 too many recipients");
		return;
	}
	sendmail_smtp_reply(s, "250 Accepted");
}

/* Runs one command of a batch (-bS); returns false after QUIT. */
static bool
sendmail_smtp_batch_command(struct sendmail_smtp *s, const struct options *o,
    const char *line)
{
	static const char *const noops[] = {
		"NOOP", "VRFY", "EXPN", "ETRN", "HELP",
	};
	size_t word = strcspn(line, " ");

	if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
		sendmail_smtp_path(s, line + 10, true);
	} else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
		sendmail_smtp_path(s, line + 8, false);
	} else if (strcasecmp(line, "DATA") == 0) {
		if (!s->have_sender)
			sendmail_smtp_reply(s, "503 MAIL FROM:<sender> command "
			    "must precede DATA");
		else if (s->recipients.count == 0)
			sendmail_smtp_reply(s, "503 RCPT TO:<recipient> must "
			    "precede DATA");
		else
			sendmail_smtp_data(s, o);
	} else if ((word == 4 && (strncasecmp(line, "HELO", 4) == 0 ||
	    strncasecmp(line, "EHLO", 4) == 0)) ||
	    strcasecmp(line, "RSET") == 0) {
		sendmail_smtp_reset(s);
	} else if (strcasecmp(line, "QUIT") == 0) {
		return false;
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(noops); i++)
			if (word == 4 && strncasecmp(line, noops[i], 4) == 0)
				return true;
		sendmail_smtp_reply(s, "500 Command unrecognized");
	}
	return true;
}

/* Runs one command line; returns false after QUIT. */
static bool
sendmail_smtp_command(struct sendmail_smtp *s, const struct options *o,
    const char *line)
{
	const char *host = s->config->primary_hostname;

	if (strncasecmp(line, "EHLO ", 5) == 0 ||
	    strncasecmp(line, "HELO ", 5) == 0) {
		sendmail_smtp_reset(s);
		s->esmtp = toupper((unsigned char)line[0]) == 'E';
		if (s->esmtp)
			sendmail_smtp_reply(s, "250-%s Hello %s\r\n250-8BITMIME\r\n"
			    "250-PIPELINING\r\n250 HELP", host, line + 5);
		else
			sendmail_smtp_reply(s, "250 %s Hello %s", host, line + 5);
	} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
		sendmail_smtp_path(s, line + 10, true);
	} else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
		sendmail_smtp_path(s, line + 8, false);
	} else if (strcasecmp(line, "DATA") == 0) {
		if (!s->have_sender)
			sendmail_smtp_reply(s, "503 MAIL command must come first");
		else if (s->recipients.count == 0)
			sendmail_smtp_reply(s, "503 valid RCPT command must precede "
			    "DATA");
		else
			sendmail_smtp_data(s, o);
	} else if (strcasecmp(line, "RSET") == 0) {
		sendmail_smtp_reset(s);
		sendmail_smtp_reply(s, "250 Reset OK");
	} else if (strcasecmp(line, "NOOP") == 0) {
		sendmail_smtp_reply(s, "250 OK");
	} else if (strcasecmp(line, "QUIT") == 0) {
		sendmail_smtp_reply(s, "221 %s closing connection", host);
		return false;
	} else {
		sendmail_smtp_reply(s, "500 unrecognized command");
	}
	return true;
}

int
sendmail_smtp_run(const struct config *config, const struct options *o)
{
	struct sendmail_smtp s = { .config = config, .batched = o->smtp_batch };
	char *line = NULL;
	size_t cap = 0;
	bool too_long, more = true;
	int rc = 0;

	if (!s.batched)
		sendmail_smtp_reply(&s, "220 %s ESMTP Sluice %s",
		    config->primary_hostname, PACKAGE_VERSION);
	while (more && sendmail_smtp_line(&s, &line, &cap,
	    SENDMAIL_SMTP_LINE_MAX, &too_long) >= 0) {
		s.command = line;
		if (too_long)
			sendmail_smtp_reply(&s, "500 line too long");
		else if (s.batched)
			more = sendmail_smtp_batch_command(&s, o, line);
		else
			more = sendmail_smtp_command(&s, o, line);
		if (s.error != NULL) {
			rc = sendmail_smtp_batch_error(&s);
			break;
		}
	}
	free(s.error);
	free(line);
	sendmail_smtp_reset(&s);
	return rc;
}

/*
 * sendmail.c - the sendmail command (see sendmail.h).
 *
 * The command runs with no privilege: it reads the message, works out the
 * recipients and sends both to the daemon's submission socket, whose
 * answer decides the exit status. Who the sender is and what the
 * message may claim is the daemon's decision, made from the kernel's
 * account of the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "sendmail.h"
#include "submit.h"
#include "util.h"

/* A growing byte buffer. */
struct sendmail_buf {
	char *data;
	size_t len, size;
};

static void
sendmail_buf_add(struct sendmail_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->size) {
		b->size = (b->len + n + 1) * 2;
		b->data = xrealloc(b->data, b->size);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* True if line (n bytes, without its newline) ends the header section. */
static bool
sendmail_header_ends(const char *line, size_t n, bool in_field)
{
	size_t k = 0;

	if (n == 0)
		return true;
	if (in_field && (line[0] == ' ' || line[0] == '\t'))
		return false;
	while (k < n && line[k] > 0x20 && line[k] < 0x7f && line[k] != ':')
		k++;
	return k == 0 || k >= n || line[k] != ':';
}

/*
 * Reads the message from stdin into msg with LF line ends, stopping at
 * a lone dot when dot_ends. Sets *headers_len to the length of the
 * header section. Returns 0, or -1 after printing an error.
 */
static int
sendmail_read(FILE *in, bool dot_ends, size_t max, struct sendmail_buf *msg,
    size_t *headers_len)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	bool in_headers = true, in_field = false;
	int rc = 0;

	*headers_len = 0;
	while ((got = getline(&line, &cap, in)) > 0) {
		size_t n = (size_t)got;

		if (line[n - 1] == '\n')
			n--;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (dot_ends && n == 1 && line[0] == '.')
			break;
		if (in_headers && sendmail_header_ends(line, n, in_field)) {
			in_headers = false;
			*headers_len = msg->len;
		}
		in_field = true;
		if (msg->len + n + 1 > max) {
			fprintf(stderr, "sluice: message is larger than %zu bytes\n",
			    max);
			rc = -1;
			break;
		}
		sendmail_buf_add(msg, line, n);
		sendmail_buf_add(msg, "\n", 1);
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "sluice: cannot read the message: %s\n",
		    strerror(errno));
		rc = -1;
	}
	if (in_headers)
		*headers_len = msg->len;
	free(line);
	return rc;
}

/* True if s has a control character. */
static bool
sendmail_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The recipients: from the arguments, and with -t from the header
 * section minus the arguments. Returns 0, or -1 after an error. */
static int
sendmail_recipients(const struct options *o, const struct sendmail_buf *msg,
    size_t headers_len, struct sendmail_addresses *out)
{
	struct sendmail_addresses args = { 0 };
	int rc = -1;

	for (int i = 0; i < o->arg_count; i++) {
		if (sendmail_parse_address_list(o->args[i], strlen(o->args[i]),
		    &args) < 0)
			goto too_many;
	}
	if (!o->extract_recipients) {
		*out = args;
		return 0;
	}
	if (sendmail_header_recipients(msg->data != NULL ? msg->data : "",
	    headers_len, out) < 0)
		goto too_many;
	for (size_t i = 0; i < out->count; ) {
		bool named = false;

		for (size_t k = 0; k < args.count && !named; k++)
			named = strcasecmp(out->items[i], args.items[k]) == 0;
		if (!named) {
			i++;
			continue;
		}
		free(out->items[i]);
		out->items[i] = out->items[--out->count];
	}
	rc = 0;
	goto out;
too_many:
	fprintf(stderr, "sluice: too many recipients (at most %d)\n",
	    SENDMAIL_ADDRESSES_MAX);
out:
	sendmail_addresses_free(&args);
	return rc;
}

/* Adds "name value" to the request, the value quoted. */
static void
sendmail_request_item(struct sendmail_buf *req, const char *name,
    const char *value)
{
	char *quoted = control_quote(value);

	sendmail_buf_add(req, name, strlen(name));
	sendmail_buf_add(req, " ", 1);
	sendmail_buf_add(req, quoted, strlen(quoted));
	sendmail_buf_add(req, "\n", 1);
	free(quoted);
}

static int
sendmail_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Sends the request to the daemon and reads its one-line answer into
 * reply. Returns 0 when an answer came, -1 when the daemon could not be
 * reached (errno set) and -2 when it went away before answering.
 */
static int
sendmail_send(const char *path, const struct sendmail_buf *req, char *reply,
    size_t size)
{
	size_t got = 0;
	int fd;

	if ((fd = control_connect(path)) < 0)
		return -1;
	if (sendmail_write_all(fd, req->data, req->len) < 0 ||
	    shutdown(fd, SHUT_WR) < 0) {
		close(fd);
		return -2;
	}
	while (got + 1 < size) {
		ssize_t r = read(fd, reply + got, size - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(reply, '\n', got) != NULL)
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	return got > 0 ? 0 : -2;
}

/*
 * Leaves the request in the daemon's drop folder (see submit.c), made
 * durable before it gets its final name. Returns 0, or -1 after
 * printing an error.
 */
static int
sendmail_drop(const struct config *config, const struct sendmail_buf *req)
{
	char *dir = xasprintf("%s/%s", config->spool_directory,
	    SUBMIT_DROP_NAME);
	char *tmp = xasprintf("%s/t.XXXXXX", dir);
	char *final = NULL;
	int fd, rc = -1;

	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		fprintf(stderr, "sluice: the daemon is not running, and its drop "
		    "folder %s cannot take the message (%s): message not sent\n",
		    dir, strerror(errno));
		goto out;
	}
	final = xstrdup(tmp);
	final[strlen(dir) + 1] = 'm';
	/* NOTE: the folder itself cannot be synced, since its users may
	 * not open it; the file is, before it gets its final name. */
	if (fchmod(fd, 0640) < 0 ||
	    sendmail_write_all(fd, req->data, req->len) < 0 || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, final) < 0) {
		fprintf(stderr, "sluice: cannot write %s: %s: message not sent\n",
		    tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	fprintf(stderr, "sluice: the daemon is not running; the message waits "
	    "in %s until it starts\n", dir);
	rc = 0;
out:
	free(dir);
	free(tmp);
	free(final);
	return rc;
}

/* Reports an error in the submitted message: exit 2 for "no
 * recipients" under -oem and -oee, whose report cannot be mailed,
 * else 1. */
static int
sendmail_input_error(const struct options *o, const char *text,
    bool no_recipients)
{
	fprintf(stderr, "sluice: %s\n", text);
	return no_recipients && o->error_mode != OPTIONS_ERRORS_PRINT ? 2 : 1;
}

int
sendmail_submit(const struct config *config,
    const struct sendmail_envelope *env, const char *msg, size_t len,
    char *reply, size_t size)
{
	struct sendmail_buf req = { 0 };
	char *path = NULL;
	int rc = -1, sent;

	sendmail_buf_add(&req, SUBMIT_GREETING "\n",
	    strlen(SUBMIT_GREETING) + 1);
	if (env->sender != NULL)
		sendmail_request_item(&req, "sender", env->sender);
	if (env->full_name != NULL)
		sendmail_request_item(&req, "name", env->full_name);
	if (env->protocol != NULL)
		sendmail_request_item(&req, "protocol", env->protocol);
	if (env->remove_bcc)
		sendmail_buf_add(&req, "remove-bcc\n", 11);
	if (env->no_delivery)
		sendmail_buf_add(&req, "no-delivery\n", 12);
	if (env->errors_mail)
		sendmail_buf_add(&req, "errors-mail\n", 12);
	for (size_t i = 0; i < env->recipients->count; i++)
		sendmail_request_item(&req, "recipient",
		    env->recipients->items[i]);
	sendmail_buf_add(&req, "data\n", 5);
	if (len > 0)
		sendmail_buf_add(&req, msg, len);

	path = xasprintf("%s/%s", config->spool_directory, SUBMIT_SOCKET_NAME);
	sent = sendmail_send(path, &req, reply, size);
	if (sent == -1 && (errno == ENOENT || errno == ECONNREFUSED) &&
	    env->needs_daemon) {
		rc = -2;
	} else if (sent == -1 && (errno == ENOENT || errno == ECONNREFUSED)) {
		if (sendmail_drop(config, &req) == 0) {
			reply[0] = '\0';
			rc = 0;
		}
	} else if (sent == -1) {
		fprintf(stderr, "sluice: cannot reach the daemon at %s: %s: "
		    "message not sent\n", path, strerror(errno));
	} else if (sent == -2) {
		fprintf(stderr, "sluice: the daemon closed the connection "
		    "before accepting the message: message not sent\n");
	} else if (strncmp(reply, "ok ", 3) == 0) {
		memmove(reply, reply + 3, strlen(reply + 3) + 1);
		rc = 0;
	} else if (strncmp(reply, "error: ", 7) == 0) {
		memmove(reply, reply + 7, strlen(reply + 7) + 1);
		rc = 1;
	} else if (strncmp(reply, "error-mailed ", 13) == 0 &&
	    strchr(reply + 13, ' ') != NULL) {
		/* "error-mailed <report id> <reason>": keep the reason. */
		const char *text = strchr(reply + 13, ' ') + 1;

		memmove(reply, text, strlen(text) + 1);
		rc = 2;
	} else {
		fprintf(stderr, "sluice: unexpected answer from the daemon\n");
	}
	free(path);
	free(req.data);
	return rc;
}

int
sendmail_run(const struct config *config, const struct options *o)
{
	struct sendmail_buf msg = { 0 };
	struct sendmail_addresses rcpts = { 0 };
	struct sendmail_envelope env = { 0 };
	char reply[CONTROL_LINE_MAX];
	size_t headers_len;
	int rc = 1;

	if (o->sender != NULL && sendmail_has_control(o->sender)) {
		fprintf(stderr, "sluice: the sender address (-f) contains "
		    "control characters\n");
		return 1;
	}
	if (o->full_name != NULL && sendmail_has_control(o->full_name)) {
		fprintf(stderr, "sluice: the full name (-F) contains control "
		    "characters\n");
		return 1;
	}
	if (o->smtp_stdin)
		return sendmail_smtp_run(config, o);
	if (sendmail_read(stdin, o->dot_ends_message,
	    submit_message_max(config), &msg, &headers_len) < 0)
		goto out;
	if (sendmail_recipients(o, &msg, headers_len, &rcpts) < 0)
		goto out;
	env.errors_mail = o->error_mode != OPTIONS_ERRORS_PRINT;
	if (rcpts.count == 0) {
		if (!env.errors_mail) {
			rc = sendmail_input_error(o, "no recipients in message",
			    true);
			goto out;
		}
		env.needs_daemon = true;
	}
	/* Checked here too, so that a bad address fails now rather than
	 * in the drop folder, after the command has exited 0. With -oem
	 * and -oee the daemon checks it again and mails the report. */
	for (size_t i = 0; i < rcpts.count && !env.needs_daemon; i++) {
		const char *problem = submit_check_address(rcpts.items[i]);

		if (problem == NULL)
			continue;
		snprintf(reply, sizeof(reply), "bad recipient address \"%s\": "
		    "%s", rcpts.items[i], problem);
		if (!env.errors_mail) {
			fprintf(stderr, "sluice: %s\n", reply);
			goto out;
		}
		env.needs_daemon = true;
	}

	env.sender = o->sender;
	env.full_name = o->full_name;
	env.remove_bcc = o->extract_recipients;
	env.no_delivery = o->no_delivery;
	env.recipients = &rcpts;
	switch (sendmail_submit(config, &env, msg.data, msg.len, reply,
	    sizeof(reply))) {
	case 0:
		if (o->verbose && reply[0] != '\0')
			fprintf(stderr, "sluice: message %s accepted\n", reply);
		rc = 0;
		break;
	case 1:
		rc = sendmail_input_error(o, reply,
		    strcmp(reply, "no recipients") == 0);
		break;
	case 2:
		/* Exim prints nothing once the report is mailed. */
		if (o->verbose)
			fprintf(stderr, "sluice: %s; an error report was mailed "
			    "to the sender\n", reply);
		rc = o->error_mode == OPTIONS_ERRORS_MAIL_EXIT_ZERO ? 0 : 1;
		break;
	case -2:
		/* No daemon runs to check the message and mail the report:
		 * what the command found goes to stderr instead. */
		rc = sendmail_input_error(o, rcpts.count == 0 ?
		    "no recipients in message" : reply, rcpts.count == 0);
		break;
	default:
		break;
	}
out:
	free(msg.data);
	sendmail_addresses_free(&rcpts);
	return rc;
}

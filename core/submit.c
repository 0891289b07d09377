/*
 * submit.c - the daemon's side of local submission (see submit.h).
 *
 * A client's request is read whole, up to the end of its stream and at
 * most the largest message plus the envelope, then checked, turned into
 * the spool's -D and -H files and committed. The client gets "ok" only
 * after the commit callback reports both files durable, so a sendmail
 * that exits 0 leaves a message that survives a crash.
 *
 * The drop folder, <spool_directory>/submit-drop, takes messages while
 * no daemon runs; sendmail writes a request there, in the socket's
 * format, and the daemon imports it when it starts and, watching the
 * folder with inotify, while it runs. Why this is safe without setuid:
 *  - the folder is mode 3733, owned by the daemon's user and group:
 *    anyone may create a file, only the daemon may list it, and
 *    the sticky bit stops users from renaming or removing each other's
 *    files;
 *  - the set-group-id bit gives each file the daemon's group, so a
 *    file of mode 0640 is readable by its writer and the daemon only;
 *  - the sender's identity is the file's owner as the kernel recorded
 *    it (fstat), never a claim inside the file, and an unprivileged
 *    user cannot give a file away (chown);
 *  - a file is imported only when it is a regular file with one link,
 *    opened without following symbolic links and without blocking, so
 *    a link to someone else's file, a symbolic link or a FIFO is
 *    refused; its size is bounded as on the socket;
 *  - the daemon applies its own configuration, as for the socket.
 * A message from the drop folder that the daemon refuses (a malformed
 * recipient, say) is logged to rejectlog and removed. Its writer, whose
 * sendmail already exited 0, hears of it only when the request asked
 * for errors by mail (sendmail's default -oem).
 *
 * Error reports: when a request with "errors-mail" (sendmail -oem,
 * -oee) is refused after it was read, the refused message gets an id, as
 * in Exim. A short report with the reason and a copy of the message then
 * goes to the envelope sender that the message would have had.
 * Writers create "t." files and rename them to "m." when complete; only
 * "m." files are imported.
 *
 * Limits: the whole request sits in memory while it is checked, so each
 * of the SUBMIT_CLIENTS_MAX clients may hold up to submit_message_max()
 * bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "address.h"
#include "bounce.h"
#include "clock.h"
#include "control.h"
#include "log.h"
#include "match.h"
#include "msgid.h"
#include "permission.h"
#include "receive.h"
#include "spool_header.h"
#include "spool_store.h"
#include "submit.h"
#include "util.h"

#define SUBMIT_SOCKET_MODE	0666
#define SUBMIT_NAME_MAX		256	/* -F, after unquoting */
/* A client that sends nothing for this long is dropped, so that idle
 * connections cannot use up SUBMIT_CLIENTS_MAX. */
#define SUBMIT_READ_TIMEOUT	300	/* seconds */

/* A parsed request; pointers into the client's input or owned as
 * noted. */
struct submit_request {
	char *sender;			/* NULL when -f was not given */
	char *name;			/* NULL when -F was not given */
	bool remove_bcc;
	bool no_delivery;
	bool errors_mail;		/* report a refusal to the sender */
	const char *protocol;		/* static: "local", "local-smtp", ... */
	char **recipients;		/* owned, each owned */
	size_t recipient_count;
	const char *bad_recipient;	/* one of recipients: the malformed one */
	const char *content;		/* borrowed from the input */
	size_t content_len;
};

/* One connected client. */
struct submit_client {
	struct bufferevent *bev;
	struct permission_caller caller;
	char login[64];
	char id[MSGID_SIZE];
	bool committing;		/* the spool holds a callback to us */
	/* What the "<=" line needs, kept from the commit to its
	 * callback: the message (pointers into request and sender), its
	 * spool header, and both owned. */
	struct receive_message message;
	struct spool_header header;
	struct submit_request *request;
	char *sender;
	char *report_reason;		/* owned: why the message was refused */
	/* A message from the drop folder instead of the socket: the file
	 * (removed once the message is stored or refused) and its
	 * content. Both owned. */
	char *drop_path;
	char *drop_content;
	struct submit_client *prev, *next;
};

/* Bound on the items of trusted_users and of trusted_groups. */
#define SUBMIT_TRUSTED_MAX	64

/* trusted_users and trusted_groups, resolved at start-up. */
struct submit_trusted {
	uid_t uids[SUBMIT_TRUSTED_MAX];
	size_t uid_count;
	gid_t gids[SUBMIT_TRUSTED_MAX];
	size_t gid_count;
};

static struct {
	const struct config *config;
	struct spool_store *store;
	struct evconnlistener *listener;
	char *path;
	struct permission_admins admins;
	struct submit_trusted trusted;
	submit_arrival_fn arrival;
	void *arrival_arg;
	struct submit_client *clients;
	size_t client_count;
	char *drop_dir;			/* the drop folder, or NULL */
	int drop_fd;			/* the folder, opened */
	int inotify_fd;
	struct event *drop_event;
} submit = { .drop_fd = -1, .inotify_fd = -1 };

size_t
submit_message_max(const struct config *config)
{
	if (config->message_size_limit > 0 &&
	    (uint64_t)config->message_size_limit < SIZE_MAX / 2)
		return (size_t)config->message_size_limit;
	return SUBMIT_MESSAGE_MAX_DEFAULT;
}

static void submit_request_free(struct submit_request *r);

static void
submit_client_free(struct submit_client *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		submit.clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	submit.client_count--;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->request != NULL) {
		submit_request_free(c->request);
		free(c->request);
	}
	spool_header_free(&c->header);
	free(c->sender);
	free(c->report_reason);
	free(c->drop_path);
	free(c->drop_content);
	free(c);
}

static void
submit_write_cb(struct bufferevent *bev, void *arg)
{
	struct submit_client *c = arg;

	(void)bev;
	submit_client_free(c);
}

/* The client went away before it read its reply. */
static void
submit_closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	submit_client_free(arg);
}

/* Sends the one reply line and closes once it is written. */
static void
submit_client_reply(struct submit_client *c, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);

static void
submit_client_reply(struct submit_client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->bev == NULL) {
		/* From the drop folder: the answer is in mainlog. */
		if (unlink(c->drop_path) < 0 && errno != ENOENT)
			log_write(LOG_MAIN | LOG_PANIC, NULL, "cannot remove %s: %s",
			    c->drop_path, strerror(errno));
		submit_client_free(c);
		return;
	}
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\n", 1);
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, submit_write_cb,
	    submit_closing_event_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
submit_request_free(struct submit_request *r)
{
	free(r->sender);
	free(r->name);
	for (size_t i = 0; i < r->recipient_count; i++)
		free(r->recipients[i]);
	free(r->recipients);
}

/* True if s has a control character (or a byte from 0x7f up when
 * ascii_only): such text must not reach a header or the log. */
static bool
submit_has_control(const char *s, bool ascii_only)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || (ascii_only && ch > 0x7f))
			return true;
	}
	return false;
}

/*
 * Checks an envelope address: local@domain, or a bare local part that
 * the caller qualifies, with no white space, angle brackets or control
 * characters. Returns NULL or a reason.
 */
const char *
submit_check_address(const char *a)
{
	const char *at = strrchr(a, '@');

	if (a[0] == '\0')
		return "empty address";
	if (strlen(a) > 256)
		return "address longer than 256 bytes";
	if (submit_has_control(a, true) || strpbrk(a, " <>(),;") != NULL)
		return "malformed address";
	if (at != NULL && (at == a ||
	    !address_domain_valid(at + 1, strlen(at + 1))))
		return "malformed address";
	return NULL;
}

/* Parses one envelope line (NUL-terminated, without its newline) into
 * r. Returns 0, or -1 with *reason set to a static text. */
static int
submit_parse_item(char *line, struct submit_request *r, const char **reason)
{
	char *value = strchr(line, ' ');

	if (value != NULL) {
		*value++ = '\0';
		if (control_unquote(value) < 0) {
			*reason = "malformed request";
			return -1;
		}
	}
	if (strcmp(line, "remove-bcc") == 0 && value == NULL) {
		r->remove_bcc = true;
	} else if (strcmp(line, "no-delivery") == 0 && value == NULL) {
		r->no_delivery = true;
	} else if (strcmp(line, "errors-mail") == 0 && value == NULL) {
		r->errors_mail = true;
	} else if (strcmp(line, "sender") == 0 && value != NULL &&
	    r->sender == NULL) {
		if (submit_has_control(value, false)) {
			*reason = "sender address with control characters";
			return -1;
		}
		r->sender = xstrdup(value);
	} else if (strcmp(line, "name") == 0 && value != NULL &&
	    r->name == NULL) {
		if (submit_has_control(value, false) ||
		    strlen(value) > SUBMIT_NAME_MAX) {
			*reason = "full name with control characters or over "
			    "256 bytes";
			return -1;
		}
		r->name = xstrdup(value);
	} else if (strcmp(line, "protocol") == 0 && value != NULL &&
	    (strcmp(value, "local-smtp") == 0 ||
	    strcmp(value, "local-esmtp") == 0 ||
	    strcmp(value, "local-bsmtp") == 0)) {
		/* SMTP on stdin (-bs, -bS), as Exim names it. */
		r->protocol = value[6] == 'e' ? "local-esmtp" :
		    value[6] == 'b' ? "local-bsmtp" : "local-smtp";
	} else if (strcmp(line, "recipient") == 0 && value != NULL) {
		if (r->recipient_count >= SUBMIT_RECIPIENTS_MAX) {
			*reason = "too many recipients";
			return -1;
		}
		r->recipients = xreallocarray(r->recipients,
		    r->recipient_count + 1, sizeof(*r->recipients));
		r->recipients[r->recipient_count++] = xstrdup(value);
	} else {
		*reason = "malformed request";
		return -1;
	}
	return 0;
}

/* Splits the input into envelope and content. Returns 0, or -1 with
 * *reason set to a static text. */
static int
submit_parse_request(char *in, size_t len, struct submit_request *r,
    const char **reason)
{
	char *p = in, *end = in + len;
	bool greeted = false;

	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL || nl - p > SUBMIT_ENVELOPE_LINE_MAX) {
			*reason = "malformed request";
			return -1;
		}
		*nl = '\0';
		if (!greeted) {
			if (strcmp(p, SUBMIT_GREETING) != 0) {
				*reason = "unknown request version";
				return -1;
			}
			greeted = true;
		} else if (strcmp(p, "data") == 0) {
			r->content = nl + 1;
			r->content_len = (size_t)(end - (nl + 1));
			return 0;
		} else if (submit_parse_item(p, r, reason) < 0) {
			return -1;
		}
		p = nl + 1;
	}
}

/*
 * Resolves the names or numbers of list (trusted_users when users, else
 * trusted_groups) into ids. Returns 0, or -1 with *error set (caller
 * frees) for a name that does not exist or too many items.
 */
static int
submit_trusted_load(const char *option, const char *list, bool users,
    struct submit_trusted *t, char **error)
{
	struct config_list_iter iter;
	char item[256];
	char *name;

	config_list_init(&iter, list);
	while ((name = config_list_next(&iter, item, sizeof(item))) != NULL) {
		unsigned long long number;
		size_t *count = users ? &t->uid_count : &t->gid_count;
		long id;

		if (*count >= SUBMIT_TRUSTED_MAX) {
			*error = xasprintf("%s: more than %d items", option,
			    SUBMIT_TRUSTED_MAX);
			return -1;
		}
		if (parse_uint(name, 0x7fffffffULL, &number) == 0) {
			id = (long)number;
		} else if (users) {
			struct passwd *pw = getpwnam(name);

			if (pw == NULL) {
				*error = xasprintf("%s: user \"%s\" was not found",
				    option, name);
				return -1;
			}
			id = (long)pw->pw_uid;
		} else {
			struct group *gr = getgrnam(name);

			if (gr == NULL) {
				*error = xasprintf("%s: group \"%s\" was not "
				    "found", option, name);
				return -1;
			}
			id = (long)gr->gr_gid;
		}
		if (users)
			t->uids[(*count)++] = (uid_t)id;
		else
			t->gids[(*count)++] = (gid_t)id;
	}
	if (iter.error) {
		*error = xasprintf("%s: an item is longer than %zu bytes",
		    option, sizeof(item) - 1);
		return -1;
	}
	return 0;
}

/*
 * A trusted caller may set the envelope sender and mark a message -N:
 * root, the Exim user, a user in trusted_users, or a member (by primary
 * or supplementary group) of a group in trusted_groups, as in Exim.
 */
static bool
submit_is_trusted(const struct permission_caller *caller)
{
	const struct submit_trusted *t = &submit.trusted;

	if (caller->uid == 0 || caller->uid == submit.admins.exim_uid)
		return true;
	for (size_t i = 0; i < t->uid_count; i++)
		if (caller->uid == t->uids[i])
			return true;
	for (size_t i = 0; i < t->gid_count; i++) {
		if (caller->gid == t->gids[i])
			return true;
		for (size_t j = 0; j < caller->group_count; j++)
			if (caller->groups[j] == t->gids[i])
				return true;
	}
	return false;
}

/*
 * Matches address against untrusted_set_sender, an Exim address list:
 * "*", "local@domain" (the local part "*", "*suffix" or compared as it
 * is; the domain as a domain list item) or a domain list item alone,
 * matched against the domain; "!" negates. Returns 1, 0, or -1 for an
 * item this cannot match (logged), which counts as no.
 */
static int
submit_set_sender_allowed(const char *address)
{
	const struct config *config = submit.config;
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : "";
	size_t local_len = at != NULL ? (size_t)(at - address) : strlen(address);
	struct config_list_iter iter;
	char item[MATCH_ITEM_MAX];
	char *pattern;

	config_list_init(&iter, config->untrusted_set_sender);
	while ((pattern = config_list_next(&iter, item, sizeof(item))) !=
	    NULL) {
		bool negated = pattern[0] == '!';
		char *pat_at, *error = NULL;
		int rc = 1;

		if (negated)
			pattern++;
		pat_at = strrchr(pattern, '@');
		if (strcmp(pattern, "*") != 0 && pat_at != NULL) {
			size_t pat_local_len = (size_t)(pat_at - pattern);

			*pat_at = '\0';
			if (pattern[0] == '*')
				rc = local_len >= pat_local_len - 1 &&
				    memcmp(address + local_len -
				    (pat_local_len - 1), pattern + 1,
				    pat_local_len - 1) == 0;
			else
				rc = local_len == pat_local_len &&
				    memcmp(address, pattern, local_len) == 0;
			pattern = pat_at + 1;
		}
		if (rc == 1 && strcmp(pattern, "*") != 0)
			rc = match_domainlist(config, "untrusted_set_sender",
			    pattern, domain, &error);
		if (rc < 0) {
			log_write(LOG_MAIN | LOG_PANIC, NULL, "%s", error);
			free(error);
			return -1;
		}
		if (rc == 1)
			return negated ? 0 : 1;
	}
	return 0;
}

/* Length of the field name at the start of a header line, or 0 when
 * the line does not start a header field. */
static size_t
submit_field_name_len(const char *line, size_t len)
{
	size_t n = 0;

	while (n < len && line[n] > 0x20 && line[n] < 0x7f && line[n] != ':')
		n++;
	if (n == 0 || n >= len || line[n] != ':')
		return 0;
	return n;
}

/* The message's facts, as receive.h wants them. */
struct submit_content {
	char *headers;			/* owned, LF line ends */
	size_t headers_len;
	const char *body;		/* borrowed */
	size_t body_len;
	bool body_needs_newline;
	bool has_from;
	uint64_t body_lines;
	uint64_t body_zeros;
	size_t max_line_len;
};

/*
 * Splits content into the header section and the body. The header
 * section ends at an empty line (dropped) or at the first line that is
 * neither a field nor a continuation (which starts the body). A leading
 * "From " line, as mbox writers add, is dropped as Exim drops it.
 */
static int
submit_split_content(const char *content, size_t len, size_t header_max,
    struct submit_content *out, const char **reason)
{
	const char *p = content, *end = content + len;
	bool in_field = false;

	memset(out, 0, sizeof(*out));
	if (len >= 5 && memcmp(p, "From ", 5) == 0) {
		const char *nl = memchr(p, '\n', len);

		p = nl != NULL ? nl + 1 : end;
	}
	out->headers = xmalloc(1);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line_len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		size_t name_len;

		if (line_len == 0) {
			p++;
			break;
		}
		name_len = submit_field_name_len(p, line_len);
		if (name_len == 0 && !(in_field && (*p == ' ' || *p == '\t')))
			break;
		if (out->headers_len + line_len + 1 > header_max) {
			*reason = "message header section too large";
			return -1;
		}
		if (name_len == 4 && strncasecmp(p, "From", 4) == 0)
			out->has_from = true;
		in_field = true;
		out->headers = xrealloc(out->headers,
		    out->headers_len + line_len + 2);
		memcpy(out->headers + out->headers_len, p, line_len);
		out->headers_len += line_len;
		out->headers[out->headers_len++] = '\n';
		if (line_len > out->max_line_len)
			out->max_line_len = line_len;
		p += line_len + (nl != NULL ? 1 : 0);
	}
	out->headers[out->headers_len] = '\0';

	out->body = p;
	out->body_len = (size_t)(end - p);
	out->body_needs_newline = out->body_len > 0 && end[-1] != '\n';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line_len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		out->body_lines++;
		if (line_len > out->max_line_len)
			out->max_line_len = line_len;
		p += line_len + 1;
	}
	for (size_t i = 0; i < out->body_len; i++)
		if (out->body[i] == '\0')
			out->body_zeros++;
	return 0;
}

/* Formats "Field: name <address>\n", or "Field: address\n" without a
 * name, quoting the name when it holds characters that RFC 5322 allows
 * only in quotes. Caller frees. */
static char *
submit_address_field(const char *field_name, const char *name,
    const char *address)
{
	char *field, *quoted;
	size_t n = 0;

	if (name == NULL || name[0] == '\0') {
		field = xasprintf("%s: %s\n", field_name, address);
	} else {
		quoted = xmalloc(strlen(name) * 2 + 3);
		bool special = strpbrk(name, "()<>[]:;@\\,.\"") != NULL;

		if (special)
			quoted[n++] = '"';
		for (const char *p = name; *p != '\0'; p++) {
			if (special && (*p == '"' || *p == '\\'))
				quoted[n++] = '\\';
			quoted[n++] = *p;
		}
		if (special)
			quoted[n++] = '"';
		quoted[n] = '\0';
		field = xasprintf("%s: %s <%s>\n", field_name, quoted,
		    address);
		free(quoted);
	}
	return field;
}

/* Appends field (a whole line) to the header section. */
static void
submit_add_field(struct submit_content *content, const char *field)
{
	size_t len = strlen(field);

	content->headers = xrealloc(content->headers,
	    content->headers_len + len + 1);
	memcpy(content->headers + content->headers_len, field, len + 1);
	content->headers_len += len;
}

/*
 * Finds the address of the From: field in the header section: the part
 * in angle brackets, or else the whole value without comments and
 * white space, into buf. Returns 1, 0 when there is no From: field, or
 * -1 when it names several addresses or does not fit buf.
 */
static int
submit_from_address(const char *headers, char *buf, size_t size)
{
	const char *p = headers;
	size_t n = 0;
	int depth = 0;
	bool quoted = false, angle = false, found = false;

	while (*p != '\0' && strncasecmp(p, "From:", 5) != 0) {
		p = strchr(p, '\n');
		if (p == NULL)
			return 0;
		p++;
	}
	if (*p == '\0')
		return 0;
	for (p += 5; *p != '\0'; p++) {
		/* The field ends at a newline not followed by a
		 * continuation. */
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
			break;
		if (quoted) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = false;
			if (!angle)
				continue;
		} else if (*p == '"' && !angle) {
			quoted = true;
			n = 0;		/* a display name, not the address */
			continue;
		} else if (*p == '(' && !angle) {
			depth++;
			continue;
		} else if (*p == ')' && depth > 0) {
			depth--;
			continue;
		}
		if (depth > 0)
			continue;
		if (*p == '<' && !angle) {
			angle = true;
			n = 0;
			continue;
		}
		if (*p == '>' && angle) {
			angle = false;
			found = true;
			continue;
		}
		if (*p == ',' && !angle)
			return -1;
		if (found || isspace((unsigned char)*p))
			continue;
		if (n + 1 >= size)
			return -1;
		buf[n++] = *p;
	}
	buf[n] = '\0';
	return n > 0 ? 1 : -1;
}

/*
 * Whether an untrusted caller's message needs a Sender: field, as Exim
 * adds one: when its From: does not name exactly the caller's own
 * address (login@qualify_domain), unless it names the envelope sender
 * that untrusted_set_sender allowed.
 */
static bool
submit_needs_sender_field(const struct submit_client *c,
    const struct submit_content *content, const char *own)
{
	char from[512];

	if (submit_from_address(content->headers, from, sizeof(from)) != 1)
		return true;
	/* A bare local part is qualified as Exim qualifies it. */
	if (strchr(from, '@') == NULL && strlen(from) + 1 +
	    strlen(submit.config->qualify_domain) < sizeof(from)) {
		strcat(from, "@");
		strcat(from, submit.config->qualify_domain);
	}
	if (strcasecmp(from, own) == 0)
		return false;
	/* From: names the sender untrusted_set_sender allowed. */
	return strcmp(c->sender, own) == 0 || strcasecmp(from, c->sender) != 0;
}

/* Marks deleted every Sender: field but the first that reads keep, as
 * Exim drops an untrusted caller's own Sender: fields. */
static void
submit_keep_one_sender(struct spool_header *h, const char *keep)
{
	bool keep_found = false;

	for (size_t i = 0; i < h->fields_count; i++) {
		struct spool_header_field *f = &h->fields[i];

		if (f->flag == SPOOL_FIELD_DELETED || f->len < 7 ||
		    strncasecmp(f->text, "Sender:", 7) != 0)
			continue;
		if (!keep_found && keep != NULL && f->len == strlen(keep) &&
		    memcmp(f->text, keep, f->len) == 0)
			keep_found = true;
		else
			f->flag = SPOOL_FIELD_DELETED;
	}
}

/* The caller's name for From: when -F is not given: the first part of
 * the password file's gecos field, or NULL. Caller frees. */
static char *
submit_gecos_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);
	char *name;

	if (pw == NULL || pw->pw_gecos == NULL || pw->pw_gecos[0] == '\0')
		return NULL;
	name = xstrdup(pw->pw_gecos);
	name[strcspn(name, ",")] = '\0';
	if (submit_has_control(name, false)) {
		free(name);
		return NULL;
	}
	return name;
}

static void
submit_commit_cb(void *arg, int result, const char *error)
{
	struct submit_client *c = arg;

	c->committing = false;
	if (result < 0) {
		log_write(LOG_MAIN | LOG_PANIC, c->id, "spool commit failed: %s",
		    error);
		submit_client_reply(c, "error: the message could not be stored");
		return;
	}
	receive_log_arrival(&c->message, &c->header);
	if (submit.arrival != NULL)
		submit.arrival(submit.arrival_arg, c->id);
	/* For a drop folder file this frees c. */
	submit_client_reply(c, "ok %s", c->id);
}

/* Qualifies the recipients and checks them. Returns NULL or a reason. */
static const char *
submit_check_recipients(struct submit_request *r)
{
	const struct config *config = submit.config;
	const char *domain = config->qualify_recipient != NULL &&
	    config->qualify_recipient[0] != '\0' ? config->qualify_recipient :
	    config->qualify_domain;
	const char *reason;

	if (r->recipient_count == 0)
		return "no recipients";
	for (size_t i = 0; i < r->recipient_count; i++) {
		if ((reason = submit_check_address(r->recipients[i])) != NULL) {
			r->bad_recipient = r->recipients[i];
			return reason;
		}
		if (strchr(r->recipients[i], '@') == NULL) {
			char *q = xasprintf("%s@%s", r->recipients[i], domain);

			free(r->recipients[i]);
			r->recipients[i] = q;
		}
	}
	return NULL;
}

/* The envelope sender the daemon uses for r from c (caller frees). */
static char *
submit_sender(const struct submit_client *c, const struct submit_request *r)
{
	const char *s = r->sender;

	if (s != NULL && (strcmp(s, "") == 0 || strcmp(s, "<>") == 0))
		return xstrdup("");
	if (s != NULL && submit_check_address(s) == NULL) {
		char *q = strchr(s, '@') != NULL ? xstrdup(s) :
		    xasprintf("%s@%s", s, submit.config->qualify_domain);

		/* An untrusted caller's -f counts only where
		 * untrusted_set_sender allows it; otherwise it is ignored,
		 * as Exim ignores it. */
		if (submit_is_trusted(&c->caller) ||
		    submit_set_sender_allowed(q) == 1)
			return q;
		free(q);
	}
	return xasprintf("%s@%s", c->login, submit.config->qualify_domain);
}

/* Marks every Bcc: field deleted, as Exim keeps them after -t. */
static void
submit_remove_bcc(struct spool_header *h)
{
	for (size_t i = 0; i < h->fields_count; i++) {
		struct spool_header_field *f = &h->fields[i];

		if (f->flag == SPOOL_FIELD_BCC ||
		    (f->len > 11 && strncasecmp(f->text, "Resent-Bcc:", 11) == 0))
			f->flag = SPOOL_FIELD_DELETED;
	}
}

/*
 * Turns the request into spool files and queues their commit. On
 * success the client owns r (until it is freed) and the "<=" line is
 * written when the commit succeeds. Returns 0 once the commit is
 * queued, or -1 with *reason set (a static text, or *owned for one the
 * caller frees).
 */
static int
submit_store(struct submit_client *c, struct submit_request *r,
    const char **reason, char **owned)
{
	const struct config *config = submit.config;
	struct receive_message *m = &c->message;
	struct submit_content content;
	struct spool_data *data = NULL;
	char *name = NULL, *from = NULL, *header = NULL, *field = NULL;
	bool trusted = submit_is_trusted(&c->caller);
	size_t header_len;
	size_t header_max = config->header_maxsize > 0 ?
	    (size_t)config->header_maxsize : SPOOL_HEADER_FIELDS_BYTES_MAX;
	int rc = -1;

	memset(&content, 0, sizeof(content));
	if (submit_split_content(r->content, r->content_len, header_max,
	    &content, reason) < 0)
		goto out;
	if ((*reason = submit_check_recipients(r)) != NULL)
		goto out;
	if (r->no_delivery && !trusted) {
		*reason = "-N (no delivery) is allowed only for trusted callers";
		/* An error in the command line, which Exim prints before it
		 * reads the message, so it is never mailed. */
		r->errors_mail = false;
		goto out;
	}
	c->sender = submit_sender(c, r);
	name = r->name != NULL ? xstrdup(r->name) :
	    submit_gecos_name(c->caller.uid);
	from = xasprintf("%s@%s", c->login, config->qualify_domain);
	if (!content.has_from) {
		field = submit_address_field("From", name, from);
		submit_add_field(&content, field);
		free(field);
		field = NULL;
	} else if (!trusted && submit_needs_sender_field(c, &content, from)) {
		field = submit_address_field("Sender", name, from);
		submit_add_field(&content, field);
	}

	/* Step 1: the -H contents. */
	clock_now_tv(&m->received);
	m->completed = m->received;
	msgid_new(config->message_id_format, c->id);
	m->id = c->id;
	m->sender = c->sender;
	m->recipients = (const char *const *)r->recipients;
	m->recipient_count = r->recipient_count;
	m->protocol = r->protocol != NULL ? r->protocol : "local";
	m->login = c->login;
	m->uid = c->caller.uid;
	m->gid = c->caller.gid;
	m->headers = content.headers;
	m->headers_len = content.headers_len;
	m->body_size = content.body_len + (content.body_needs_newline ? 1 : 0);
	m->body_lines = content.body_lines;
	m->body_zeros = content.body_zeros;
	m->max_line_len = content.max_line_len;
	m->local = true;
	if (receive_build_header(config, m, &c->header, owned) < 0)
		goto out;
	m->headers = NULL;	/* freed below; the "<=" line needs only h */
	m->headers_len = 0;
	if (r->remove_bcc)
		submit_remove_bcc(&c->header);
	if (!trusted)
		submit_keep_one_sender(&c->header, field);
	c->header.dont_deliver = r->no_delivery;
	/* An untrusted caller's own address is no set sender. */
	c->header.sender_set_untrusted = !trusted && c->sender[0] != '\0' &&
	    strcmp(c->sender, from) != 0;
	if ((header = spool_header_format(&c->header, &header_len)) == NULL) {
		*reason = "the message does not fit the spool's header file";
		goto out;
	}

	/* Step 2: the -D file, then both files committed together. */
	if ((data = spool_store_data_create(submit.store, c->id, owned)) ==
	    NULL)
		goto out;
	if (spool_data_write(data, content.body, content.body_len, owned) < 0 ||
	    (content.body_needs_newline &&
	    spool_data_write(data, "\n", 1, owned) < 0)) {
		spool_data_abort(data);
		goto out;
	}
	c->committing = true;
	spool_store_commit(submit.store, data, header, header_len,
	    submit_commit_cb, c);
	rc = 0;
out:
	free(header);
	free(content.headers);
	free(name);
	free(from);
	free(field);
	return rc;
}

/* Appends text to buf, with every control byte shown as '?', so that a
 * malformed address cannot shape the report. */
static void
submit_report_add_clean(struct evbuffer *buf, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0';
	    p++) {
		char ch = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;

		evbuffer_add(buf, &ch, 1);
	}
}

/* Moves the bytes of buf into a new string (caller frees). */
static char *
submit_report_take(struct evbuffer *buf, size_t *len)
{
	char *text;

	*len = evbuffer_get_length(buf);
	text = xmalloc(*len + 1);
	evbuffer_remove(buf, text, *len);
	text[*len] = '\0';
	evbuffer_free(buf);
	return text;
}

/*
 * Composes the report on the refused request r for recipient (whose
 * ownership passes to out): a plain-text message with the reason, then
 * the message as sent, cut at bounce_return_size_limit.
 */
static void
submit_report_compose(const struct submit_request *r, const char *reason,
    char *recipient, struct bounce_content *out)
{
	const struct config *config = submit.config;
	struct evbuffer *headers = evbuffer_new(), *body = evbuffer_new();
	size_t copy_len = r->content_len;
	const char *subject;
	bool cut = false;

	if (headers == NULL || body == NULL)
		fatalx("out of memory for an error report");
	if (r->recipient_count == 0) {
		subject = "no recipient addresses";
		evbuffer_add_printf(body, "The message you sent named no "
		    "recipient address, so it could not be\ndelivered to "
		    "anyone.\n");
	} else if (r->bad_recipient != NULL) {
		subject = "malformed recipient address";
		evbuffer_add_printf(body, "The message you sent named a "
		    "recipient address that is not valid:\n  ");
		submit_report_add_clean(body, r->bad_recipient);
		evbuffer_add_printf(body, "  ");
		submit_report_add_clean(body, reason);
		evbuffer_add_printf(body, "\nIt was not delivered to any "
		    "recipient.\n");
	} else {
		subject = "message refused";
		evbuffer_add_printf(body, "This system refused the message "
		    "you sent, for this reason:\n  ");
		submit_report_add_clean(body, reason);
		evbuffer_add_printf(body, "\nIt was not delivered to any "
		    "recipient.\n");
	}
	if (config->bounce_return_size_limit > 0 &&
	    (uint64_t)config->bounce_return_size_limit < copy_len) {
		copy_len = (size_t)config->bounce_return_size_limit;
		cut = true;
	}
	evbuffer_add_printf(body, "\n------ A copy of your message, with "
	    "all its header lines, follows. ------\n\n");
	evbuffer_add(body, r->content, copy_len);
	if (copy_len > 0 && r->content[copy_len - 1] != '\n')
		evbuffer_add(body, "\n", 1);
	if (cut)
		evbuffer_add_printf(body, "\n------ The copy ends here, cut "
		    "after %zu bytes. ------\n", copy_len);

	evbuffer_add_printf(headers, "Auto-Submitted: auto-replied\n");
	if (config->dsn_from != NULL && config->dsn_from[0] != '\0')
		evbuffer_add_printf(headers, "From: %s\n", config->dsn_from);
	else
		evbuffer_add_printf(headers, "From: Mail Delivery System "
		    "<Mailer-Daemon@%s>\n", config->qualify_domain);
	evbuffer_add_printf(headers, "To: %s\n", recipient);
	evbuffer_add_printf(headers, "Subject: Mail failure - %s\n", subject);

	out->headers = submit_report_take(headers, &out->headers_len);
	out->body = submit_report_take(body, &out->body_len);
	out->recipient = recipient;
}

/* Replies to the client once the report is stored (id) or could not be
 * stored (NULL). */
static void
submit_report_done(void *arg, const char *id)
{
	struct submit_client *c = arg;

	c->committing = false;
	if (id == NULL) {
		submit_client_reply(c, "error: %s", c->report_reason);
		return;
	}
	if (submit.arrival != NULL)
		submit.arrival(submit.arrival_arg, id);
	/* For a drop folder file this frees c. */
	submit_client_reply(c, "error-mailed %s %s", id, c->report_reason);
}

/*
 * The client has sent its whole request: data, len bytes followed by a
 * NUL, borrowed until the client is freed.
 */
static void
submit_client_request(struct submit_client *c, char *data, size_t len)
{
	struct submit_request *r = xcalloc(1, sizeof(*r));
	struct bounce_content report = { 0 };
	const char *reason = NULL;
	char *owned = NULL, *sender = NULL;
	bool parsed;

	parsed = submit_parse_request(data, len, r, &reason) == 0;
	if (parsed && submit_store(c, r, &reason, &owned) == 0) {
		c->request = r;
		return;
	}
	if (owned != NULL)
		reason = owned;
	/* A report needs a sender to go to; the null sender gets none. */
	if (parsed && r->errors_mail) {
		sender = submit_sender(c, r);
		if (sender[0] == '\0') {
			free(sender);
			sender = NULL;
		}
	}
	if (sender != NULL)
		msgid_new(submit.config->message_id_format, c->id);
	log_write(LOG_MAIN | LOG_REJECT, sender != NULL ? c->id : NULL,
	    "local submission from %s (uid %ld)%s%s refused: %s", c->login,
	    (long)c->caller.uid, c->drop_path != NULL ? " in " : "",
	    c->drop_path != NULL ? c->drop_path : "", reason);
	if (sender == NULL) {
		submit_client_reply(c, "error: %s", reason);
	} else {
		submit_report_compose(r, reason, sender, &report);
		c->report_reason = xstrdup(reason);
		c->committing = true;
		/* c may be freed before this returns. */
		bounce_inject(submit.store, submit.config, c->id, &report,
		    submit_report_done, c);
		bounce_content_free(&report);
	}
	free(owned);
	submit_request_free(r);
	free(r);
}

static void
submit_read_cb(struct bufferevent *bev, void *arg)
{
	struct submit_client *c = arg;
	size_t max = submit_message_max(submit.config) +
	    (size_t)SUBMIT_RECIPIENTS_MAX * SUBMIT_ENVELOPE_LINE_MAX / 4;

	if (evbuffer_get_length(bufferevent_get_input(bev)) > max) {
		log_write(LOG_MAIN | LOG_REJECT, NULL, "local submission from %s "
		    "(uid %ld) refused: message larger than %zu bytes",
		    c->login, (long)c->caller.uid, max);
		submit_client_reply(c, "error: message too big");
	}
}

static void
submit_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct submit_client *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) != 0 && !c->committing) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t len = evbuffer_get_length(in);
		char *data;

		bufferevent_disable(c->bev, EV_READ);
		/* A terminating NUL keeps every search bounded; the request
		 * stays in the input buffer until the client is freed. */
		evbuffer_add(in, "", 1);
		if ((data = (char *)evbuffer_pullup(in, -1)) == NULL)
			fatalx("out of memory reading a local submission");
		submit_client_request(c, data, len);
		return;
	}
	/* An error, or the client went away: a message being committed
	 * still completes, and its reply goes nowhere. */
	if (!c->committing)
		submit_client_free(c);
}

static void
submit_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
    struct sockaddr *addr, int addr_len, void *arg)
{
	const struct timeval read_timeout = { SUBMIT_READ_TIMEOUT, 0 };
	struct submit_client *c;

	(void)addr;
	(void)addr_len;
	(void)arg;
	if (submit.client_count >= SUBMIT_CLIENTS_MAX) {
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	if (permission_caller_peer(fd, &c->caller) < 0) {
		log_write(LOG_MAIN, NULL, "local submission: no credentials for a "
		    "client: %s", strerror(errno));
		close(fd);
		free(c);
		return;
	}
	permission_user_name(c->caller.uid, c->login, sizeof(c->login));
	c->bev = bufferevent_socket_new(evconnlistener_get_base(listener), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("cannot create a buffer for a local submission");
	c->next = submit.clients;
	if (c->next != NULL)
		c->next->prev = c;
	submit.clients = c;
	submit.client_count++;
	bufferevent_setcb(c->bev, submit_read_cb, NULL, submit_event_cb, c);
	bufferevent_set_timeouts(c->bev, &read_timeout, &read_timeout);
	bufferevent_enable(c->bev, EV_READ);
}

/* Imports one file of the drop folder, by name. */
static void
submit_drop_import(const char *name)
{
	struct submit_client *c;
	struct stat st;
	char *path, *data = NULL;
	size_t max = submit_message_max(submit.config) +
	    (size_t)SUBMIT_RECIPIENTS_MAX * SUBMIT_ENVELOPE_LINE_MAX / 4;
	size_t got = 0;
	int fd;

	if (strncmp(name, "m.", 2) != 0 || strchr(name, '/') != NULL)
		return;
	path = xasprintf("%s/%s", submit.drop_dir, name);
	for (c = submit.clients; c != NULL; c = c->next) {
		if (c->drop_path != NULL && strcmp(c->drop_path, path) == 0) {
			free(path);	/* being imported already */
			return;
		}
	}
	fd = openat(submit.drop_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || (uint64_t)st.st_size > max) {
		log_write(LOG_MAIN | LOG_REJECT, NULL, "local submission %s "
		    "refused: not a regular file with one link of at most %zu "
		    "bytes", path, max);
		goto remove;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	data[got] = '\0';
	close(fd);
	fd = -1;

	c = xcalloc(1, sizeof(*c));
	c->caller.uid = st.st_uid;
	c->caller.gid = st.st_gid;
	{
		struct passwd *pw = getpwuid(st.st_uid);

		if (pw != NULL)
			c->caller.gid = pw->pw_gid;
	}
	permission_user_name(c->caller.uid, c->login, sizeof(c->login));
	c->drop_path = path;
	c->drop_content = data;
	c->next = submit.clients;
	if (c->next != NULL)
		c->next->prev = c;
	submit.clients = c;
	submit.client_count++;
	submit_client_request(c, data, got);
	return;

remove:
	if (fd >= 0)
		close(fd);
	unlinkat(submit.drop_fd, name, 0);
	free(path);
}

/* Imports every finished file in the drop folder. */
static void
submit_drop_scan(void)
{
	int fd = dup(submit.drop_fd);
	DIR *dir;
	struct dirent *e;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		log_write(LOG_MAIN | LOG_PANIC, NULL, "cannot read %s: %s",
		    submit.drop_dir, strerror(errno));
		return;
	}
	rewinddir(dir);
	while ((e = readdir(dir)) != NULL)
		submit_drop_import(e->d_name);
	closedir(dir);
}

static void
submit_drop_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	(void)arg;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; ) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if ((ev->mask & IN_Q_OVERFLOW) != 0)
				submit_drop_scan();
			else if (ev->len > 0)
				submit_drop_import(ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* Creates the drop folder when missing, watches it and imports what it
 * holds. Returns 0, or -1 with *error set (caller frees). */
static int
submit_drop_open(struct event_base *base, const char *dir, char **error)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error = xasprintf("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid()) {
		*error = xasprintf("%s is not a folder owned by the daemon's "
		    "user", dir);
		return -1;
	}
	if (chown(dir, geteuid(), getegid()) < 0 || chmod(dir, 03733) < 0) {
		*error = xasprintf("cannot set the owner and mode of %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	submit.drop_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	submit.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (submit.drop_fd < 0 || submit.inotify_fd < 0 ||
	    inotify_add_watch(submit.inotify_fd, dir, IN_MOVED_TO) < 0) {
		*error = xasprintf("cannot watch %s: %s", dir, strerror(errno));
		return -1;
	}
	submit.drop_event = event_new(base, submit.inotify_fd,
	    EV_READ | EV_PERSIST, submit_drop_cb, NULL);
	if (submit.drop_event == NULL || event_add(submit.drop_event, NULL) < 0)
		fatalx("cannot watch the drop folder");
	submit.drop_dir = xstrdup(dir);
	submit_drop_scan();
	return 0;
}

int
submit_open(struct event_base *base, const struct config *config,
    struct spool_store *store, const char *path, submit_arrival_fn arrival,
    void *arrival_arg, char **error)
{
	struct sockaddr_un sun;
	mode_t old_mask;
	char *drop_dir;
	int fd, rc;

	if (permission_admins_load(config, &submit.admins, error) < 0)
		return -1;
	memset(&submit.trusted, 0, sizeof(submit.trusted));
	if (submit_trusted_load("trusted_users", config->trusted_users, true,
	    &submit.trusted, error) < 0 ||
	    submit_trusted_load("trusted_groups", config->trusted_groups, false,
	    &submit.trusted, error) < 0)
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_s(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		*error = xasprintf("submission socket path %s is longer than %zu "
		    "bytes", path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error = xasprintf("cannot create the submission socket: %s",
		    strerror(errno));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		*error = xasprintf("cannot remove the old submission socket %s: "
		    "%s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* Closed to others until the chmod() below. */
	old_mask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old_mask);
		*error = xasprintf("cannot bind the submission socket %s: %s",
		    path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old_mask);
	if (chmod(path, SUBMIT_SOCKET_MODE) < 0) {
		*error = xasprintf("cannot set the mode of the submission socket "
		    "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	submit.listener = evconnlistener_new(base, submit_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, fd);
	if (submit.listener == NULL) {
		*error = xasprintf("cannot listen on the submission socket %s",
		    path);
		close(fd);
		unlink(path);
		return -1;
	}
	submit.config = config;
	submit.store = store;
	submit.path = xstrdup(path);
	submit.arrival = arrival;
	submit.arrival_arg = arrival_arg;
	drop_dir = xasprintf("%s/%s", config->spool_directory,
	    SUBMIT_DROP_NAME);
	rc = submit_drop_open(base, drop_dir, error);
	free(drop_dir);
	return rc;
}

void
submit_close(void)
{
	if (submit.listener != NULL) {
		evconnlistener_free(submit.listener);
		submit.listener = NULL;
	}
	while (submit.clients != NULL)
		submit_client_free(submit.clients);
	if (submit.path != NULL) {
		unlink(submit.path);
		free(submit.path);
		submit.path = NULL;
	}
	if (submit.drop_event != NULL)
		event_free(submit.drop_event);
	submit.drop_event = NULL;
	if (submit.inotify_fd >= 0)
		close(submit.inotify_fd);
	if (submit.drop_fd >= 0)
		close(submit.drop_fd);
	submit.inotify_fd = submit.drop_fd = -1;
	free(submit.drop_dir);
	submit.drop_dir = NULL;
}

/*
 * bounce.c - composing and injecting bounces (see bounce.h).
 *
 * The layout follows Exim 4.96's default bounce (no bounce_message_file):
 * the field order of its header section, "<epoch>-eximdsn-<random>"
 * boundaries, "Content-type:" part headers, the indented address blocks
 * of the text part, and "Status: 5.0.0" in the delivery-status part.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "bounce.h"
#include "bounce_private.h"
#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "msgid.h"
#include "receive.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

void
bounce_text_add(struct bounce_text *t, const char *s, size_t n)
{
	if (n == 0 && t->data != NULL)
		return;
	if (t->len + n + 1 > t->alloc) {
		t->alloc = (t->len + n + 1) * 2;
		t->data = xrealloc(t->data, t->alloc);
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

void
bounce_text_puts(struct bounce_text *t, const char *s)
{
	bounce_text_add(t, s, strlen(s));
}

void
bounce_text_addf(struct bounce_text *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	bounce_text_add(t, s, strlen(s));
	free(s);
}

static char *
bounce_strdup_cut(const char *s)
{
	if (s == NULL)
		return NULL;
	return xstrndup(s, strnlen(s, BOUNCE_TEXT_MAX));
}

void
bounce_list_add(struct bounce_list *list, const char *address,
    const struct spool_recipient *rcpt, const char *host_name,
    const char *host_ip, const char *reply, const char *message)
{
	struct bounce_failure *f;

	list->items = xreallocarray(list->items, list->count + 1,
	    sizeof(*list->items));
	f = &list->items[list->count++];
	memset(f, 0, sizeof(*f));
	f->address = xstrdup(address);
	if (rcpt != NULL) {
		f->orcpt = rcpt->orcpt != NULL ? xstrdup(rcpt->orcpt) : NULL;
		f->dsn_flags = rcpt->dsn_flags;
	}
	f->host_name = host_name != NULL ? xstrdup(host_name) : NULL;
	f->host_ip = host_ip != NULL ? xstrdup(host_ip) : NULL;
	f->reply = bounce_strdup_cut(reply);
	f->message = bounce_strdup_cut(message != NULL ? message :
	    "delivery failed");
}

void
bounce_list_clear(struct bounce_list *list)
{
	for (size_t i = 0; i < list->count; i++) {
		struct bounce_failure *f = &list->items[i];

		free(f->address);
		free(f->orcpt);
		free(f->host_name);
		free(f->host_ip);
		free(f->reply);
		free(f->message);
	}
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

bool
bounce_notify_failure(int dsn_flags)
{
	if ((dsn_flags & BOUNCE_NOTIFY_ANY) == 0)
		return true;
	return (dsn_flags & BOUNCE_NOTIFY_FAILURE) != 0;
}

void
bounce_content_free(struct bounce_content *content)
{
	free(content->headers);
	free(content->body);
	free(content->recipient);
	memset(content, 0, sizeof(*content));
}

size_t
bounce_body_limit(const struct config *config,
    const struct spool_header *original)
{
	/* RET=HDRS (2) returns the header section only. */
	if (!config->bounce_return_message || original->dsn_ret == 2)
		return 0;
	if (config->bounce_return_size_limit <= 0)
		return SIZE_MAX - 1;
	return (size_t)config->bounce_return_size_limit;
}

/* Returns the unfolded value of the first live field called name, or
 * NULL (caller frees). */
char *
bounce_field_value(const struct spool_header *h, const char *name)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < h->fields_count; i++) {
		const struct spool_header_field *f = &h->fields[i];
		const char *p, *end;
		struct bounce_text value = { NULL, 0, 0 };

		if (f->flag == SPOOL_FIELD_DELETED || f->len <= name_len ||
		    strncasecmp(f->text, name, name_len) != 0 ||
		    f->text[name_len] != ':')
			continue;
		p = f->text + name_len + 1;
		end = f->text + f->len;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == '\n' || end[-1] == ' ' ||
		    end[-1] == '\t'))
			end--;
		bounce_text_puts(&value, "");
		for (; p < end; p++)
			if (*p != '\n')
				bounce_text_add(&value, p, 1);
		return value.data;
	}
	return NULL;
}

/* Appends text with every line indented by indent spaces. */
void
bounce_text_indented(struct bounce_text *t, const char *text, int indent)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		bounce_text_addf(t, "%*s%.*s\n", indent, "", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
}

/*
 * The text part's block for one failure: the address, the host, then
 * the reason. A remote reply, and what follows it, goes on lines of its
 * own under the reason's "... after RCPT TO:<a@b>:" part.
 */
static void
bounce_describe(struct bounce_text *t, const struct bounce_failure *f)
{
	const char *message = f->message;
	const char *reply = f->reply != NULL && f->reply[0] != '\0' ?
	    strstr(message, f->reply) : NULL;

	bounce_text_addf(t, "  %s\n", f->address);
	if (f->host_name != NULL)
		bounce_text_addf(t, "    host %s [%s]\n", f->host_name,
		    f->host_ip != NULL ? f->host_ip : "");
	if (reply != NULL && reply > message) {
		size_t lead = (size_t)(reply - message);

		while (lead > 0 && message[lead - 1] == ' ')
			lead--;
		bounce_text_addf(t, "    %.*s\n", (int)lead, message);
		bounce_text_indented(t, reply, 4);
	} else {
		bounce_text_indented(t, message, 4);
	}
}

/* One "Action: failed" block of the delivery-status part. */
static void
bounce_status_block(struct bounce_text *t, const struct bounce_failure *f)
{
	bounce_text_puts(t, "\n");
	bounce_text_puts(t, "Action: failed\n");
	if (f->orcpt != NULL && f->orcpt[0] != '\0')
		bounce_text_addf(t, "Original-Recipient: %s%s\n",
		    strchr(f->orcpt, ';') != NULL ? "" : "rfc822;", f->orcpt);
	bounce_text_addf(t, "Final-Recipient: rfc822;%s\n", f->address);
	bounce_text_puts(t, "Status: 5.0.0\n");
	if (f->host_name != NULL)
		bounce_text_addf(t, "Remote-MTA: dns; %s\n", f->host_name);
	if (f->reply != NULL) {
		/* A multi-line reply becomes a folded field (RFC 5322 2.2.3). */
		bounce_text_puts(t, "Diagnostic-Code: smtp; ");
		for (const char *p = f->reply; *p != '\0'; p++) {
			if (*p == '\n')
				bounce_text_puts(t, "\n ");
			else if (*p != '\r')
				bounce_text_add(t, p, 1);
		}
		bounce_text_puts(t, "\n");
	}
}

/* The header fields of the bounce, without Received:, Message-Id: and
 * Date:, which the spool adds as for every local message. */
static void
bounce_headers(struct bounce_text *t, const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    const bool *included, const char *boundary)
{
	size_t shown = 0;

	bounce_text_puts(t, "X-Failed-Recipients: ");
	for (size_t i = 0; i < list->count; i++) {
		if (!included[i])
			continue;
		if (shown > 0)
			bounce_text_puts(t, shown % BOUNCE_FAILED_PER_LINE == 0 ?
			    ",\n  " : ", ");
		bounce_text_add(t, list->items[i].address,
		    strlen(list->items[i].address));
		shown++;
	}
	bounce_text_puts(t, "\n");
	bounce_report_headers(t, config, original, boundary);
	bounce_text_puts(t, "Subject: Mail delivery failed: returning message to "
	    "sender\n");
}

void
bounce_report_headers(struct bounce_text *t, const struct config *config,
    const struct spool_header *original, const char *boundary)
{
	char *message_id = bounce_field_value(original, "Message-ID");

	bounce_text_puts(t, "Auto-Submitted: auto-replied\n");
	if (config->dsn_from[0] != '\0')
		bounce_text_addf(t, "From: %s\n", config->dsn_from);
	else
		bounce_text_addf(t, "From: Mail Delivery System <Mailer-Daemon@%s>\n",
		    config->qualify_domain);
	bounce_text_addf(t, "To: %s\n", original->sender);
	if (message_id != NULL)
		bounce_text_addf(t, "References: %s\n", message_id);
	bounce_text_addf(t, "Content-Type: multipart/report; "
	    "report-type=delivery-status; boundary=%s\n", boundary);
	bounce_text_puts(t, "MIME-Version: 1.0\n");
	free(message_id);
}

/* The returned message: Return-path:, the live header fields and, unless
 * only the header section goes back, the body (cut at body_len). */
void
bounce_returned_part(struct bounce_text *t, const struct spool_header *h,
    const char *body, size_t body_len, bool headers_only)
{
	bounce_text_addf(t, "Content-type: %s\n\n", headers_only ?
	    "text/rfc822-headers" : "message/rfc822");
	bounce_text_addf(t, "Return-path: <%s>\n", h->sender);
	for (size_t i = 0; i < h->fields_count; i++)
		if (h->fields[i].flag != SPOOL_FIELD_DELETED)
			bounce_text_add(t, h->fields[i].text, h->fields[i].len);
	if (headers_only)
		return;
	bounce_text_puts(t, "\n");
	bounce_text_add(t, body, body_len);
	if (body_len > 0 && body[body_len - 1] != '\n')
		bounce_text_puts(t, "\n");
}

int
bounce_compose(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    const char *body, size_t body_len, uint64_t body_size, time_t now,
    uint32_t random, struct bounce_content *out)
{
	struct bounce_text headers = { NULL, 0, 0 }, text = { NULL, 0, 0 };
	bool *included;
	size_t count = 0, limit = bounce_body_limit(config, original);
	char boundary[64];

	memset(out, 0, sizeof(*out));
	if (original->sender == NULL || original->sender[0] == '\0')
		return 0;
	included = xcalloc(list->count + 1, sizeof(*included));
	for (size_t i = 0; i < list->count; i++) {
		included[i] = bounce_notify_failure(list->items[i].dsn_flags);
		if (included[i])
			count++;
	}
	if (count == 0) {
		free(included);
		return 0;
	}
	snprintf(boundary, sizeof(boundary), "%lld-eximdsn-%u",
	    (long long)now, (unsigned)(random & 0x7fffffff));
	bounce_headers(&headers, config, original, list, included, boundary);

	/* Part 1: the explanation for people. */
	bounce_text_addf(&text, "--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: text/plain; charset=us-ascii\n\n");
	bounce_text_puts(&text, "This message was created automatically by mail "
	    "delivery software.\n\n");
	bounce_text_puts(&text, "A message that you sent could not be delivered to "
	    "one or more of its\nrecipients. This is a permanent error. The "
	    "following address(es) failed:\n");
	for (size_t i = 0; i < list->count; i++) {
		if (!included[i])
			continue;
		bounce_text_puts(&text, "\n");
		bounce_describe(&text, &list->items[i]);
	}
	if (limit > 0 && body_size > body_len)
		bounce_text_addf(&text, "\nThe body of the returned message is cut to its "
		    "first %zu of %llu bytes.\n", body_len,
		    (unsigned long long)body_size);

	/* Part 2: the same for programs (RFC 3464). */
	bounce_text_addf(&text, "\n--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: message/delivery-status\n\n");
	bounce_text_addf(&text, "Reporting-MTA: dns; %s\n", config->primary_hostname);
	if (original->dsn_envid != NULL && original->dsn_envid[0] != '\0')
		bounce_text_addf(&text, "Original-Envelope-Id: %s\n",
		    original->dsn_envid);
	for (size_t i = 0; i < list->count; i++)
		if (included[i])
			bounce_status_block(&text, &list->items[i]);

	/* Part 3: the message itself, or its header section. */
	if (config->bounce_return_message) {
		bounce_text_addf(&text, "\n--%s\n", boundary);
		bounce_returned_part(&text, original, body,
		    body_len < limit ? body_len : limit, limit == 0);
	}
	bounce_text_addf(&text, "\n--%s--\n", boundary);

	out->headers = headers.data;
	out->headers_len = headers.len;
	out->body = text.data;
	out->body_len = text.len;
	out->recipient = xstrdup(original->sender);
	free(included);
	return 1;
}

int
bounce_read_body(int data_fd, const char *id, size_t max, char **out,
    size_t *len, uint64_t *size)
{
	off_t offset = (off_t)strlen(id) + 3;	/* "<id>-D\n" */
	struct stat st;
	size_t want, got = 0;

	*out = NULL;
	*len = 0;
	*size = 0;
	if (data_fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fstat(data_fd, &st) < 0)
		return -1;
	if (st.st_size < offset) {
		errno = EINVAL;
		return -1;
	}
	*size = (uint64_t)(st.st_size - offset);
	want = *size < max ? (size_t)*size : max;
	*out = xmalloc(want + 1);
	while (got < want) {
		ssize_t n = pread(data_fd, *out + got, want - got,
		    offset + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		if (n == 0)
			break;		/* shorter than fstat said */
		got += (size_t)n;
	}
	*len = got;
	return 0;
}

/* ---- injection ---- */

struct bounce_job {
	struct receive_message message;
	struct spool_header header;
	char id[MSGID_SIZE];
	char *original_id;
	char *login;
	const char *recipients[1];
	char *recipient;
	bounce_done_fn done;
	void *arg;
};

static void
bounce_job_free(struct bounce_job *job)
{
	spool_header_free(&job->header);
	free(job->original_id);
	free(job->login);
	free(job->recipient);
	free(job);
}

static void
bounce_commit_cb(void *arg, int result, const char *error)
{
	struct bounce_job *job = arg;
	struct log_arrival a = { 0 };

	if (result != 0) {
		log_write(LOG_MAIN | LOG_PANIC, job->original_id,
		    "cannot store the bounce message: %s", error);
		job->done(job->arg, NULL);
		bounce_job_free(job);
		return;
	}
	/* Exim's line for a bounce: "<= <> R=<id> U=<user> P=local S=...". */
	a.sender = "";
	a.bounce_of = job->original_id;
	a.ident = job->login;
	a.protocol = "local";
	a.size = receive_message_size(&job->header, job->message.body_size);
	a.receive_usec = -1;
	a.recipients = job->recipients;
	a.recipient_count = 1;
	log_line_arrival(job->id, &a);
	job->done(job->arg, job->id);
	bounce_job_free(job);
}

/* The login the bounce is stored under: the daemon's user. */
static char *
bounce_login(const struct config *config)
{
	struct passwd *pw;

	if (config->exim_user[0] != '\0')
		return xstrdup(config->exim_user);
	pw = getpwuid(geteuid());
	return xstrdup(pw != NULL && pw->pw_name != NULL ? pw->pw_name :
	    "root");
}

/* Counts the lines of the body and the longest, for the -H file. */
static void
bounce_body_facts(struct receive_message *m, const char *body, size_t len)
{
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		m->body_lines++;
		if (n > m->max_line_len)
			m->max_line_len = n;
		p += n + 1;
	}
	m->body_size = len;
}

void
bounce_inject(struct spool_store *store, const struct config *config,
    const char *original_id, const struct bounce_content *content,
    bounce_done_fn done, void *arg)
{
	struct bounce_job *job = xcalloc(1, sizeof(*job));
	struct receive_message *m = &job->message;
	struct spool_data *data = NULL;
	char *bytes = NULL, *error = NULL;
	size_t len;

	job->original_id = xstrdup(original_id);
	job->login = bounce_login(config);
	job->recipient = xstrdup(content->recipient);
	job->recipients[0] = job->recipient;
	job->done = done;
	job->arg = arg;

	clock_now_tv(&m->received);
	m->completed = m->received;
	msgid_new(config->message_id_format, job->id);
	m->id = job->id;
	m->sender = "";
	m->recipients = job->recipients;
	m->recipient_count = 1;
	m->protocol = "local";
	m->login = job->login;
	m->uid = (int64_t)geteuid();
	m->gid = (int64_t)getegid();
	m->headers = content->headers;
	m->headers_len = content->headers_len;
	m->local = true;
	bounce_body_facts(m, content->body, content->body_len);
	if (receive_build_header(config, m, &job->header, &error) < 0)
		goto fail;
	job->header.local_error = true;
	m->headers = NULL;
	m->headers_len = 0;
	if ((bytes = spool_header_format(&job->header, &len)) == NULL) {
		error = xstrdup("the bounce does not fit the spool's header "
		    "file");
		goto fail;
	}
	if ((data = spool_store_data_create(store, job->id, &error)) == NULL)
		goto fail;
	if (spool_data_write(data, content->body, content->body_len,
	    &error) < 0) {
		spool_data_abort(data);
		goto fail;
	}
	spool_store_commit(store, data, bytes, len, bounce_commit_cb, job);
	free(bytes);
	return;

fail:
	log_write(LOG_MAIN | LOG_PANIC, original_id,
	    "cannot create the bounce message: %s", error);
	free(error);
	free(bytes);
	done(arg, NULL);
	bounce_job_free(job);
}

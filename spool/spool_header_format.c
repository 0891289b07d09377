/*
 * spool_header_format.c - writing a struct spool_header as a -H file (see
 * spool_header.h for the format).
 *
 * The formatter validates as it writes: a value that would break its
 * line, exceed a bound of spool_header.h or be read back differently
 * makes it fail. So anything spool_header_format() returns parses back
 * to an equal struct, and spool_header_check() is the same run with the
 * output thrown away.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_header.h"
#include "util.h"

static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Output goes into a growing buffer, and each line is checked when it
 * ends. Only the first problem is kept in error. Writing goes on after
 * it, so the callers need no early exits, and the output is discarded.
 */
struct writer {
	char *buf;
	size_t len;
	size_t alloc;
	size_t line_start;	/* offset of the line being written */
	char *error;		/* first problem found, or NULL */
};

static void SLUICE_PRINTF(2, 3)
writer_fail(struct writer *w, const char *fmt, ...)
{
	va_list ap;

	if (w->error != NULL)
		return;
	va_start(ap, fmt);
	w->error = xvasprintf(fmt, ap);
	va_end(ap);
}

static void
put_bytes(struct writer *w, const void *data, size_t len)
{
	if (len > w->alloc - w->len) {
		size_t alloc = w->alloc < 4096 ? 4096 : w->alloc;

		while (len > alloc - w->len)
			alloc *= 2;
		w->buf = xrealloc(w->buf, alloc);
		w->alloc = alloc;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
}

static void SLUICE_PRINTF(2, 3)
put_format(struct writer *w, const char *fmt, ...)
{
	char small[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal_bug("vsnprintf failed for \"%s\"", fmt);
	if ((size_t)n < sizeof(small)) {
		put_bytes(w, small, (size_t)n);
	} else {
		char *big;

		va_start(ap, fmt);
		big = xvasprintf(fmt, ap);
		va_end(ap);
		put_bytes(w, big, (size_t)n);
		free(big);
	}
}

/* Writes a value that must stay on its line. */
static void
put_value(struct writer *w, const char *what, const char *value)
{
	size_t len = strlen(value);

	if (memchr(value, '\n', len) != NULL)
		writer_fail(w, "%s contains a newline", what);
	put_bytes(w, value, len);
}

static void
end_line(struct writer *w, const char *what)
{
	if (w->len - w->line_start > SPOOL_HEADER_LINE_MAX)
		writer_fail(w, "%s makes a line longer than %d bytes", what,
		    SPOOL_HEADER_LINE_MAX);
	put_bytes(w, "\n", 1);
	w->line_start = w->len;
}

static void
check_address(struct writer *w, const char *what, const char *address,
    bool may_be_empty)
{
	size_t len = strlen(address);

	if (len == 0 && !may_be_empty)
		writer_fail(w, "%s is empty", what);
	if (len > SPOOL_HEADER_ADDRESS_MAX)
		writer_fail(w, "%s is longer than %d bytes", what,
		    SPOOL_HEADER_ADDRESS_MAX);
}

static void
put_string_option(struct writer *w, const char *name, const char *value,
    unsigned taint_bit, unsigned tainted)
{
	if (value == NULL)
		return;
	put_bytes(w, (tainted & taint_bit) ? "--" : "-",
	    (tainted & taint_bit) ? 2 : 1);
	put_format(w, "%s ", name);
	put_value(w, name, value);
	end_line(w, name);
}

static void
put_flag_option(struct writer *w, const char *name, bool set)
{
	if (!set)
		return;
	put_format(w, "-%s", name);
	end_line(w, name);
}

static void
put_number_option(struct writer *w, const char *name, int value)
{
	if (value < 0)
		writer_fail(w, "%s is negative", name);
	put_format(w, "-%s %d", name, value);
	end_line(w, name);
}

/* "-host_address [ip]:port", the form current Exim writes. Older
 * versions wrote "ip.port", which the parser also reads. */
static void
put_address_option(struct writer *w, const char *name, const char *address,
    int port, unsigned taint_bit, unsigned tainted)
{
	if (address == NULL)
		return;
	if (address[0] == '\0' || strlen(address) > 255 ||
	    strpbrk(address, " []\n") != NULL)
		writer_fail(w, "%s is not an IP address", name);
	if (port < 0 || port > 65535)
		writer_fail(w, "%s port %d is out of range", name, port);
	put_bytes(w, (tainted & taint_bit) ? "--" : "-",
	    (tainted & taint_bit) ? 2 : 1);
	put_format(w, "%s [%s]:%d", name, address, port);
	end_line(w, name);
}

static void
put_acl_vars(struct writer *w, const struct spool_header *h)
{
	for (size_t i = 0; i < h->acl_vars_count; i++) {
		const struct spool_acl_var *var = &h->acl_vars[i];
		size_t len;

		SLUICE_ASSERT(var->name != NULL && var->value != NULL);
		len = strlen(var->value);

		if (!spool_acl_name_valid(var->name))
			writer_fail(w, "ACL variable name \"%.40s\" is invalid",
			    var->name);
		if (len > SPOOL_HEADER_ACL_VALUE_MAX)
			writer_fail(w, "ACL variable %s is longer than %d "
			    "bytes", var->name, SPOOL_HEADER_ACL_VALUE_MAX);
		/* "-aclm _sluice_class 11": the name without "acl_m". */
		put_format(w, "%s-acl%c %s %zu", var->tainted ? "-" : "",
		    var->name[4], var->name + 5, len);
		end_line(w, "ACL variable");
		put_bytes(w, var->value, len);
		put_bytes(w, "\n", 1);
		w->line_start = w->len;
	}
}

static void
put_unknown_options(struct writer *w, const struct spool_header *h)
{
	for (size_t i = 0; i < h->unknown_options_count; i++) {
		const char *line = h->unknown_options[i];

		SLUICE_ASSERT(line != NULL);
		if (line[0] != '-')
			writer_fail(w, "option line %zu does not start with "
			    "'-'", i + 1);
		put_value(w, "option line", line);
		end_line(w, "option line");
	}
}

static void
put_options(struct writer *w, const struct spool_header *h)
{
	unsigned t = h->tainted;

	if (h->received_time_usec < 0 || h->received_time_usec > 999999)
		writer_fail(w, "received_time_usec %d is out of range",
		    h->received_time_usec);
	put_format(w, "-received_time_usec .%06d", h->received_time_usec);
	end_line(w, "received_time_usec");
	if (h->received_time_complete != 0 ||
	    h->received_time_complete_usec != 0) {
		if (h->received_time_complete < 0 ||
		    h->received_time_complete_usec < 0 ||
		    h->received_time_complete_usec > 999999)
			writer_fail(w, "received_time_complete is out of "
			    "range");
		put_format(w, "-received_time_complete %lld.%06d",
		    (long long)h->received_time_complete,
		    h->received_time_complete_usec);
		end_line(w, "received_time_complete");
	}
	put_string_option(w, "helo_name", h->helo_name,
	    SPOOL_TAINT_HELO_NAME, t);
	put_address_option(w, "host_address", h->host_address, h->host_port,
	    SPOOL_TAINT_HOST_ADDRESS, t);
	put_string_option(w, "host_name", h->host_name,
	    SPOOL_TAINT_HOST_NAME, t);
	put_string_option(w, "host_auth", h->host_auth,
	    SPOOL_TAINT_HOST_AUTH, t);
	put_address_option(w, "interface_address", h->interface_address,
	    h->interface_port, SPOOL_TAINT_INTERFACE_ADDRESS, t);
	put_string_option(w, "received_protocol", h->received_protocol,
	    SPOOL_TAINT_RECEIVED_PROTOCOL, t);
	put_acl_vars(w, h);
	if (h->spool_file_wireformat)
		put_flag_option(w, "spool_file_wireformat", true);
	else
		put_number_option(w, "body_linecount", h->body_linecount);
	put_number_option(w, "max_received_linelength",
	    h->max_received_linelength);
	if (h->body_zerocount != 0)
		put_number_option(w, "body_zerocount", h->body_zerocount);
	put_string_option(w, "auth_id", h->auth_id, SPOOL_TAINT_AUTH_ID, t);
	put_string_option(w, "auth_sender", h->auth_sender,
	    SPOOL_TAINT_AUTH_SENDER, t);
	put_flag_option(w, "deliver_firsttime", h->deliver_firsttime);
	if (h->frozen) {
		if (h->frozen_at < 0)
			writer_fail(w, "frozen time is negative");
		put_format(w, "-frozen %lld", (long long)h->frozen_at);
		end_line(w, "frozen");
	}
	put_flag_option(w, "N", h->dont_deliver);
	put_flag_option(w, "local", h->local);
	put_flag_option(w, "localerror", h->local_error);
	put_flag_option(w, "manual_thaw", h->manual_thaw);
	put_flag_option(w, "sender_set_untrusted", h->sender_set_untrusted);
	put_flag_option(w, "tls_certificate_verified",
	    h->tls_certificate_verified);
	put_string_option(w, "tls_cipher", h->tls_cipher,
	    SPOOL_TAINT_TLS_CIPHER, t);
	put_unknown_options(w, h);
	put_flag_option(w, "smtputf8", h->smtputf8);
	put_string_option(w, "dsn_envid", h->dsn_envid,
	    SPOOL_TAINT_DSN_ENVID, t);
	if (h->dsn_ret != 0)
		put_number_option(w, "dsn_ret", h->dsn_ret);
	if (h->acl_vars_count + h->unknown_options_count >
	    SPOOL_HEADER_OPTIONS_MAX)
		writer_fail(w, "more than %d ACL variables and unknown options",
		    SPOOL_HEADER_OPTIONS_MAX);
}

/* Writes keys[lo..hi) as a balanced binary search tree in pre-order,
 * because Exim searches the tree it reads back in strcmp() order. The
 * recursion depth is about log2 of the count, 18 for the largest. */
static void
put_tree(struct writer *w, char **keys, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2;

	put_format(w, "%c%c ", mid > lo ? 'Y' : 'N', mid + 1 < hi ? 'Y' : 'N');
	put_value(w, "delivered address", keys[mid]);
	check_address(w, "delivered address", keys[mid], false);
	end_line(w, "delivered address");
	if (mid > lo)
		put_tree(w, keys, lo, mid);
	if (mid + 1 < hi)
		put_tree(w, keys, mid + 1, hi);
}

static void
put_nonrecipients(struct writer *w, const struct spool_header *h)
{
	size_t count = h->nonrecipients_count;
	char **keys;
	size_t unique = 0;

	if (count == 0) {
		put_bytes(w, "XX\n", 3);
		w->line_start = w->len;
		return;
	}
	if (count > SPOOL_HEADER_NONRECIPIENTS_MAX)
		writer_fail(w, "more than %d delivered addresses",
		    SPOOL_HEADER_NONRECIPIENTS_MAX);
	keys = xreallocarray(NULL, count, sizeof(*keys));
	memcpy(keys, h->nonrecipients, count * sizeof(*keys));
	for (size_t i = 0; i < count; i++)
		SLUICE_ASSERT(keys[i] != NULL);
	qsort(keys, count, sizeof(*keys), compare_keys);
	for (size_t i = 0; i < count; i++) {
		if (unique == 0 || strcmp(keys[unique - 1], keys[i]) != 0)
			keys[unique++] = keys[i];
	}
	put_tree(w, keys, 0, unique);
	free(keys);
}

/* True if a plain recipient line holding address would be read as one
 * of the extended forms: it ends in digits after '#', ' ' or ','. */
static bool
looks_extended(const char *address)
{
	size_t end = strlen(address);

	while (end > 0 && address[end - 1] >= '0' && address[end - 1] <= '9')
		end--;
	return end > 0 && end < strlen(address) &&
	    strchr("# ,", address[end - 1]) != NULL;
}

/*
 * Plain "address", or Exim's extended form, read from the right:
 * "address orcpt len(orcpt),dsn_flags errors_to len(errors_to),pno#3".
 * Exim writes the plain form when the recipient has no extra data.
 * sluice also uses the extended form when the plain one would be
 * misread, and whenever an ORCPT is set (Exim drops an ORCPT that comes
 * without DSN flags).
 */
static void
put_recipient(struct writer *w, const struct spool_recipient *r, size_t n)
{
	const char *orcpt = r->orcpt != NULL ? r->orcpt : "";
	const char *errors_to = r->errors_to != NULL ? r->errors_to : "";
	char what[48];

	snprintf(what, sizeof(what), "recipient %zu", n);
	if (r->address == NULL) {
		writer_fail(w, "%s has no address", what);
		return;
	}
	check_address(w, what, r->address, false);
	check_address(w, what, orcpt, true);
	check_address(w, what, errors_to, true);
	put_value(w, what, r->address);
	if (r->orcpt != NULL || r->errors_to != NULL || r->dsn_flags != 0 ||
	    r->pno != -1 || looks_extended(r->address)) {
		if (r->dsn_flags < 0 || r->pno < -1)
			writer_fail(w, "%s has a negative DSN flag or parent",
			    what);
		put_bytes(w, " ", 1);
		put_value(w, what, orcpt);
		put_format(w, " %zu,%d ", strlen(orcpt), r->dsn_flags);
		put_value(w, what, errors_to);
		put_format(w, " %zu,%d#3", strlen(errors_to), r->pno);
	}
	end_line(w, what);
}

static void
put_fields(struct writer *w, const struct spool_header *h)
{
	size_t total = 0;

	if (h->fields_count > SPOOL_HEADER_FIELDS_MAX)
		writer_fail(w, "more than %d header fields",
		    SPOOL_HEADER_FIELDS_MAX);
	for (size_t i = 0; i < h->fields_count; i++) {
		const struct spool_header_field *f = &h->fields[i];

		SLUICE_ASSERT(f->text != NULL);
		if (!spool_field_flag_valid(f->flag))
			writer_fail(w, "header field %zu has an invalid flag",
			    i + 1);
		if (f->len == 0 || f->text[f->len - 1] != '\n')
			writer_fail(w, "header field %zu does not end with a "
			    "newline", i + 1);
		/* Exim skips white space after the flag, so a field
		 * starting with it would be read back shifted. */
		else if (memchr(" \t\n\r\v\f", f->text[0], 6) != NULL)
			writer_fail(w, "header field %zu starts with white "
			    "space", i + 1);
		if (f->len > SPOOL_HEADER_FIELD_MAX)
			writer_fail(w, "header field %zu is longer than %d "
			    "bytes", i + 1, SPOOL_HEADER_FIELD_MAX);
		if (memchr(f->text, '\0', f->len) != NULL)
			writer_fail(w, "header field %zu contains a NUL byte",
			    i + 1);
		total += f->len;
		put_format(w, "%03zu%c ", f->len, f->flag);
		put_bytes(w, f->text, f->len);
	}
	if (total > SPOOL_HEADER_FIELDS_BYTES_MAX)
		writer_fail(w, "header fields total more than %d bytes",
		    SPOOL_HEADER_FIELDS_BYTES_MAX);
}

static char *
format_checked(const struct spool_header *h, size_t *len, char **error)
{
	struct writer w = { 0 };
	size_t id_len = strnlen(h->id, sizeof(h->id));

	if (!msgid_valid(h->id, id_len))
		writer_fail(&w, "message id \"%.*s\" is invalid", (int)id_len,
		    h->id);
	put_format(&w, "%.*s-H", (int)id_len, h->id);
	end_line(&w, "message id");

	put_value(&w, "login", h->login != NULL ? h->login : "");
	put_format(&w, " %lld %lld", (long long)h->uid, (long long)h->gid);
	end_line(&w, "login");

	put_bytes(&w, "<", 1);
	put_value(&w, "sender", h->sender != NULL ? h->sender : "");
	check_address(&w, "sender", h->sender != NULL ? h->sender : "", true);
	put_bytes(&w, ">", 1);
	end_line(&w, "sender");

	if (h->received_time < 0 || h->warning_count < 0)
		writer_fail(&w, "received time or warning count is negative");
	put_format(&w, "%lld %d", (long long)h->received_time,
	    h->warning_count);
	end_line(&w, "received time");

	put_options(&w, h);
	put_nonrecipients(&w, h);

	if (h->recipients_count > SPOOL_HEADER_RECIPIENTS_MAX)
		writer_fail(&w, "more than %d recipients",
		    SPOOL_HEADER_RECIPIENTS_MAX);
	put_format(&w, "%zu", h->recipients_count);
	end_line(&w, "recipient count");
	for (size_t i = 0; i < h->recipients_count; i++)
		put_recipient(&w, &h->recipients[i], i + 1);
	put_bytes(&w, "\n", 1);

	put_fields(&w, h);
	put_bytes(&w, "", 1);	/* the NUL after the bytes */

	if (w.error != NULL) {
		free(w.buf);
		*error = w.error;
		return NULL;
	}
	*len = w.len - 1;
	return w.buf;
}

char *
spool_header_format(const struct spool_header *h, size_t *len)
{
	char *error = NULL;
	char *out = format_checked(h, len, &error);

	free(error);
	return out;
}

int
spool_header_check(const struct spool_header *h, char **error)
{
	size_t len;
	char *out = format_checked(h, &len, error);

	if (out == NULL)
		return -1;
	free(out);
	return 0;
}

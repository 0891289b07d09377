/*
 * spool_header_parse.c - reading a -H file into a struct spool_header
 * (see spool_header.h for the format): the envelope lines, the
 * non-recipients tree, the recipients and the header fields. The option
 * lines are in spool_header_options.c and the line reader in
 * spool_header_reader.h.
 *
 * Numbers are range-checked as they are read. The non-recipients tree
 * is a pre-order dump in which each node is flagged with whether it has
 * a left and a right child. The parser counts the subtrees still to come
 * instead of recursing, so a degenerate tree of any depth costs no
 * stack.
 *
 * Exim's reader falls back to defaults on much of what it cannot read
 * (a bad number becomes 0). This one rejects it with the line number,
 * because a guessed value in an envelope can send mail to the wrong
 * place or not at all.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool_header.h"
#include "spool_header_reader.h"
#include "util.h"

/* Line 1: "<id>-H", in either id form. The file name must agree. */
static int
parse_id_line(struct reader *r, struct spool_header *h)
{
	struct span line;
	const char *base;
	size_t id_len, base_len;
	char buf[200];

	if (read_line(r, "the message id line", &line) != 0)
		return -1;
	if (line.len < 2 || memcmp(line.s + line.len - 2, "-H", 2) != 0 ||
	    !msgid_valid(line.s, line.len - 2))
		return parse_fail(r, "\"%s\" is not \"<message id>-H\"",
		    excerpt(buf, line.s, line.len));
	id_len = line.len - 2;
	memcpy(h->id, line.s, id_len);
	h->id[id_len] = '\0';

	base = strrchr(r->filename, '/');
	base = base != NULL ? base + 1 : r->filename;
	base_len = strlen(base);
	if (base_len > 2 && strcmp(base + base_len - 2, "-H") == 0 &&
	    msgid_valid(base, base_len - 2) &&
	    (base_len - 2 != id_len || memcmp(base, h->id, id_len) != 0))
		return parse_fail(r, "message id %s does not match the file "
		    "name", h->id);
	return 0;
}

/* Takes "<number>" off the end of the first *end bytes of s, with the
 * space before it. */
static bool
take_number_from_right(const char *s, size_t *end, int64_t *out)
{
	size_t start = *end;

	while (start > 0 && s[start - 1] >= '0' && s[start - 1] <= '9')
		start--;
	if (start > 0 && s[start - 1] == '-')
		start--;
	if (start == 0 || s[start - 1] != ' ' ||
	    !parse_number(s + start, *end - start, INT64_MIN, INT64_MAX, out))
		return false;
	*end = start - 1;
	return true;
}

/* Line 2: "<login> <uid> <gid>", read from the right because the login
 * may contain spaces. */
static int
parse_login_line(struct reader *r, struct spool_header *h)
{
	struct span line;
	size_t end;

	if (read_line(r, "the login line", &line) != 0)
		return -1;
	end = line.len;
	if (!take_number_from_right(line.s, &end, &h->gid) ||
	    !take_number_from_right(line.s, &end, &h->uid))
		return parse_fail(r, "login line does not end with "
		    "\" <uid> <gid>\"");
	h->login = xstrndup(line.s, end);
	return 0;
}

/* Line 3: "<sender>". The sender itself may contain '<' and '>'. */
static int
parse_sender_line(struct reader *r, struct spool_header *h)
{
	struct span line;

	if (read_line(r, "the sender line", &line) != 0)
		return -1;
	if (line.len < 2 || line.s[0] != '<' || line.s[line.len - 1] != '>')
		return parse_fail(r, "sender is not in angle brackets");
	if (line.len - 2 > SPOOL_HEADER_ADDRESS_MAX)
		return parse_fail(r, "sender is longer than %d bytes",
		    SPOOL_HEADER_ADDRESS_MAX);
	h->sender = xstrndup(line.s + 1, line.len - 2);
	return 0;
}

/* Line 4: "<received_time> <warning_count>". */
static int
parse_time_line(struct reader *r, struct spool_header *h)
{
	struct span line;
	const char *space;
	int64_t warnings;
	char buf[200];

	if (read_line(r, "the received time line", &line) != 0)
		return -1;
	space = memchr(line.s, ' ', line.len);
	if (space == NULL ||
	    !parse_number(line.s, (size_t)(space - line.s), 0, INT64_MAX,
	    &h->received_time) ||
	    !parse_number(space + 1, line.len - (size_t)(space - line.s) - 1,
	    0, INT_MAX, &warnings))
		return parse_fail(r, "\"%s\" is not \"<received time> "
		    "<warning count>\"", excerpt(buf, line.s, line.len));
	h->warning_count = (int)warnings;
	return 0;
}


/* "XX", or one "<L><R> <key>" line per node in pre-order, where L and R
 * are 'Y' or 'N' for "has a left/right child". */
static int
parse_nonrecipients(struct reader *r, struct spool_header *h)
{
	struct span line;
	size_t pending = 1;	/* subtrees announced but not yet read */

	if (peek_line(r, "the non-recipients tree", &line) != 0)
		return -1;
	if (span_is(&line, "XX")) {
		consume_line(r, &line);
		return 0;
	}
	while (pending > 0) {
		if (read_line(r, "a non-recipients tree line", &line) != 0)
			return -1;
		if (line.len < 4 || (line.s[0] != 'Y' && line.s[0] != 'N') ||
		    (line.s[1] != 'Y' && line.s[1] != 'N') || line.s[2] != ' ')
			return parse_fail(r, "non-recipients tree line is not "
			    "\"<Y|N><Y|N> <address>\"");
		if (line.len - 3 > SPOOL_HEADER_ADDRESS_MAX)
			return parse_fail(r, "delivered address is longer than "
			    "%d bytes", SPOOL_HEADER_ADDRESS_MAX);
		if (h->nonrecipients_count == SPOOL_HEADER_NONRECIPIENTS_MAX)
			return parse_fail(r, "more than %d delivered addresses",
			    SPOOL_HEADER_NONRECIPIENTS_MAX);
		if (h->nonrecipients_count == h->nonrecipients_alloc) {
			h->nonrecipients_alloc = h->nonrecipients_alloc < 8 ?
			    8 : h->nonrecipients_alloc * 2;
			h->nonrecipients = xreallocarray(h->nonrecipients,
			    h->nonrecipients_alloc, sizeof(char *));
		}
		h->nonrecipients[h->nonrecipients_count++] =
		    xstrndup(line.s + 3, line.len - 3);
		pending--;
		pending += (line.s[0] == 'Y') + (line.s[1] == 'Y');
	}
	spool_header_sort_delivered(h);
	return 0;
}

/*
 * Takes "<len>,<number>" off the right of s[0..*end), and the len bytes
 * before it with the space on each side: "<value> <len>,<number>".
 * Returns false if the text does not have that shape.
 */
static bool
take_field_from_right(const char *s, size_t *end, int64_t number_min,
    char **value, int64_t *number)
{
	size_t start = *end, comma;
	int64_t len;

	while (start > 0 && ((s[start - 1] >= '0' && s[start - 1] <= '9') ||
	    s[start - 1] == ',' || s[start - 1] == '-'))
		start--;
	if (start == 0 || s[start - 1] != ' ')
		return false;
	for (comma = start; comma < *end && s[comma] != ','; comma++)
		;
	if (comma == *end ||
	    !parse_number(s + start, comma - start, 0,
	    SPOOL_HEADER_ADDRESS_MAX, &len) ||
	    !parse_number(s + comma + 1, *end - comma - 1, number_min, INT_MAX,
	    number))
		return false;
	/* s[start - 1] is the space after the value, and one more must
	 * precede the value. */
	if ((size_t)len + 1 >= start || s[start - 2 - len] != ' ')
		return false;
	*value = len > 0 ? xstrndup(s + start - 1 - len, (size_t)len) : NULL;
	*end = start - 2 - (size_t)len;
	return true;
}

/*
 * A recipient line, read from the right as Exim does:
 *   address                          plain
 *   address pno                      early Exim 4
 *   address errors_to len,pno#1
 *   address orcpt len,dsn_flags errors_to len,pno#3
 */
static int
parse_recipient(struct reader *r, struct spool_recipient *rcpt,
    const struct span *line, size_t n, size_t count)
{
	const char *s = line->s;
	size_t end = line->len, digits = line->len;
	int64_t flags, number;

	while (digits > 0 && s[digits - 1] >= '0' && s[digits - 1] <= '9')
		digits--;
	if (digits > 0 && digits < end && s[digits - 1] == '#') {
		if (!parse_number(s + digits, end - digits, 0, 3, &flags) ||
		    (flags != 1 && flags != 3))
			return parse_fail(r, "recipient %zu of %zu has unknown "
			    "extension flags", n, count);
		end = digits - 1;
		if (!take_field_from_right(s, &end, -1, &rcpt->errors_to,
		    &number))
			goto invalid;
		rcpt->pno = (int)number;
		if (flags & 2) {
			if (!take_field_from_right(s, &end, 0, &rcpt->orcpt,
			    &number))
				goto invalid;
			rcpt->dsn_flags = (int)number;
		}
	} else if (digits > 0 && digits < end && s[digits - 1] == ' ') {
		if (!parse_number(s + digits, end - digits, 0, INT_MAX,
		    &number))
			goto invalid;
		rcpt->pno = (int)number;
		end = digits - 1;
	} else if (digits > 0 && digits < end && s[digits - 1] == ',') {
		return parse_fail(r, "recipient %zu of %zu is in the Exim 3 "
		    "format, which is not supported", n, count);
	}
	if (end == 0)
		return parse_fail(r, "recipient %zu of %zu has an empty "
		    "address", n, count);
	if (end > SPOOL_HEADER_ADDRESS_MAX)
		return parse_fail(r, "recipient %zu of %zu is longer than %d "
		    "bytes", n, count, SPOOL_HEADER_ADDRESS_MAX);
	rcpt->address = xstrndup(s, end);
	return 0;

invalid:
	return parse_fail(r, "recipient %zu of %zu has malformed extension "
	    "data", n, count);
}

static int
parse_recipients(struct reader *r, struct spool_header *h)
{
	struct span line;
	int64_t count;
	char buf[200];

	if (read_line(r, "the recipient count", &line) != 0)
		return -1;
	if (!parse_number(line.s, line.len, 0, SPOOL_HEADER_RECIPIENTS_MAX,
	    &count))
		return parse_fail(r, "recipient count \"%s\" is not a number "
		    "from 0 to %d", excerpt(buf, line.s, line.len),
		    SPOOL_HEADER_RECIPIENTS_MAX);
	for (size_t i = 0; i < (size_t)count; i++) {
		struct spool_recipient *rcpt;

		if (read_line(r, "a recipient line", &line) != 0)
			return -1;
		/* Grown as lines arrive, so a count that the file does not
		 * back up costs no memory. */
		if (h->recipients_count == h->recipients_alloc) {
			h->recipients_alloc = h->recipients_alloc < 32 ?
			    32 : h->recipients_alloc * 2;
			if (h->recipients_alloc > (size_t)count)
				h->recipients_alloc = (size_t)count;
			h->recipients = xreallocarray(h->recipients,
			    h->recipients_alloc, sizeof(*h->recipients));
		}
		rcpt = &h->recipients[h->recipients_count++];
		memset(rcpt, 0, sizeof(*rcpt));
		rcpt->pno = -1;
		if (parse_recipient(r, rcpt, &line, i + 1, (size_t)count) != 0)
			return -1;
	}
	return 0;
}

/* "NNNF text": NNN the byte length of text, F its flag, then a space. */
static int
parse_field(struct reader *r, struct spool_header *h, size_t *total)
{
	const char *p = r->data + r->pos, *end = r->data + r->len;
	const char *digits_end = p, *text;
	int64_t len;
	char flag;
	char buf[200];

	r->line = r->lines_done + 1;
	while (digits_end < end && digits_end - p < 10 &&
	    *digits_end >= '0' && *digits_end <= '9')
		digits_end++;
	if (digits_end == p)
		return parse_fail(r, "header field does not start with its "
		    "length");
	if (!parse_number(p, (size_t)(digits_end - p), 1,
	    SPOOL_HEADER_FIELD_MAX, &len))
		return parse_fail(r, "header field length \"%s\" is not a "
		    "number from 1 to %d", excerpt(buf, p,
		    (size_t)(digits_end - p)), SPOOL_HEADER_FIELD_MAX);
	if (end - digits_end < 2)
		return parse_fail(r, "file ends inside a header field's flag");
	flag = digits_end[0];
	if (!spool_field_flag_valid(flag))
		return parse_fail(r, "header field flag \"%s\" is unknown",
		    excerpt(buf, &flag, 1));
	if (digits_end[1] != ' ')
		return parse_fail(r, "header field flag is not followed by a "
		    "space");
	text = digits_end + 2;
	if ((size_t)(end - text) < (size_t)len)
		return parse_fail(r, "header field of %lld bytes runs past the "
		    "end of the file", (long long)len);
	if (text[len - 1] != '\n')
		return parse_fail(r, "header field of %lld bytes does not end "
		    "with a newline", (long long)len);
	if (memchr(" \t\n\r\v\f", text[0], 6) != NULL)
		return parse_fail(r, "header field starts with white space");
	if (memchr(text, '\0', (size_t)len) != NULL)
		return parse_fail(r, "header field contains a NUL byte");
	if (h->fields_count == SPOOL_HEADER_FIELDS_MAX)
		return parse_fail(r, "more than %d header fields",
		    SPOOL_HEADER_FIELDS_MAX);
	*total += (size_t)len;
	if (*total > SPOOL_HEADER_FIELDS_BYTES_MAX)
		return parse_fail(r, "header fields total more than %d bytes",
		    SPOOL_HEADER_FIELDS_BYTES_MAX);

	spool_header_add_field(h, flag, text, (size_t)len);
	r->lines_done += count_newlines(text, (size_t)len);
	r->pos = (size_t)(text + len - r->data);
	return 0;
}

static int
parse_fields(struct reader *r, struct spool_header *h)
{
	struct span line;
	size_t total = 0;

	if (read_line(r, "the blank line before the header fields", &line) != 0)
		return -1;
	if (line.len != 0)
		return parse_fail(r, "expected the empty line that ends the "
		    "recipients");
	while (r->pos < r->len) {
		if (parse_field(r, h, &total) != 0)
			return -1;
	}
	return 0;
}

int
spool_header_parse(const char *data, size_t len, const char *filename,
    struct spool_header *out, char **error)
{
	struct reader r = {
		.data = data,
		.len = len,
		.filename = filename != NULL ? filename : "-H file",
	};
	struct spool_header h = { 0 };
	char *problem;

	if (parse_id_line(&r, &h) != 0 ||
	    parse_login_line(&r, &h) != 0 ||
	    parse_sender_line(&r, &h) != 0 ||
	    parse_time_line(&r, &h) != 0 ||
	    spool_header_parse_options(&r, &h) != 0 ||
	    parse_nonrecipients(&r, &h) != 0 ||
	    parse_recipients(&r, &h) != 0 ||
	    parse_fields(&r, &h) != 0)
		goto fail;

	/* What was read must be writable again, or a later rewrite of the
	 * file would fail. The checks above should ensure it, and this
	 * catches any case they miss. */
	if (spool_header_check(&h, &problem) != 0) {
		r.error = xasprintf("%s: cannot be written back: %s",
		    r.filename, problem);
		free(problem);
		goto fail;
	}
	*out = h;
	return 0;

fail:
	spool_header_free(&h);
	memset(out, 0, sizeof(*out));
	*error = r.error;
	return -1;
}

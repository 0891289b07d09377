/*
 * sendmail_extract.c - the addresses in address-list header fields and
 * in sendmail's arguments (see sendmail.h).
 *
 * The parser is lenient with what local programs write: malformed input
 * gives fewer or stranger addresses, which the daemon then checks, and
 * only a list longer than SENDMAIL_ADDRESSES_MAX is an error. Every loop
 * is bounded by the input's length.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sendmail.h"
#include "util.h"

void
sendmail_addresses_free(struct sendmail_addresses *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static int
sendmail_addresses_add(struct sendmail_addresses *list, const char *p,
    size_t n)
{
	if (n == 0)
		return 0;
	if (list->count >= SENDMAIL_ADDRESSES_MAX)
		return -1;
	list->items = xreallocarray(list->items, list->count + 1,
	    sizeof(*list->items));
	list->items[list->count] = xmalloc(n + 1);
	memcpy(list->items[list->count], p, n);
	list->items[list->count][n] = '\0';
	list->count++;
	return 0;
}

/*
 * Reduces one item of an address list to its address: the part in
 * angle brackets when there is one (without a source route), else the
 * item without comments and surrounding white space. Appends it to
 * list.
 */
static int
sendmail_add_item(const char *p, size_t n, struct sendmail_addresses *list)
{
	char *out;
	size_t out_len = 0;
	const char *angle = NULL, *close_angle = NULL;
	bool quoted = false;
	int depth = 0, rc;

	for (size_t i = 0; i < n; i++) {
		if (quoted) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"') {
			quoted = true;
		} else if (p[i] == '(') {
			depth++;
		} else if (p[i] == ')' && depth > 0) {
			depth--;
		} else if (depth == 0 && p[i] == '<' && angle == NULL) {
			angle = p + i + 1;
		} else if (depth == 0 && p[i] == '>' && angle != NULL &&
		    close_angle == NULL) {
			close_angle = p + i;
		}
	}
	if (angle != NULL) {
		const char *end = close_angle != NULL ? close_angle : p + n;
		const char *colon = memchr(angle, ':', (size_t)(end - angle));

		if (angle < end && *angle == '@' && colon != NULL)
			angle = colon + 1;	/* a source route */
		p = angle;
		n = (size_t)(end - angle);
	}

	/* Drop comments and white space outside quotes. */
	out = xmalloc(n + 1);
	quoted = false;
	depth = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '\0')
			continue;	/* never part of an address */
		if (quoted) {
			out[out_len++] = ch;
			if (ch == '\\' && i + 1 < n && p[i + 1] != '\0')
				out[out_len++] = p[++i];
			else if (ch == '"')
				quoted = false;
		} else if (ch == '(') {
			depth++;
		} else if (ch == ')' && depth > 0) {
			depth--;
		} else if (depth > 0 || ch == ' ' || ch == '\t' || ch == '\n' ||
		    ch == '\r') {
			continue;
		} else {
			if (ch == '"')
				quoted = true;
			out[out_len++] = ch;
		}
	}
	rc = sendmail_addresses_add(list, out, out_len);
	free(out);
	return rc;
}

int
sendmail_parse_address_list(const char *value, size_t len,
    struct sendmail_addresses *list)
{
	const char *start = value;
	bool quoted = false, in_angle = false;
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = value[i];

		if (quoted) {
			if (ch == '\\' && i + 1 < len)
				i++;
			else if (ch == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (ch == '\\' && i + 1 < len)
				i++;
			else if (ch == '(')
				depth++;
			else if (ch == ')')
				depth--;
			continue;
		}
		switch (ch) {
		case '"':
			quoted = true;
			break;
		case '(':
			depth++;
			break;
		case '<':
			in_angle = true;
			break;
		case '>':
			in_angle = false;
			break;
		case ':':
			/* A group's display name, or a source route inside
			 * angle brackets. */
			if (!in_angle)
				start = value + i + 1;
			break;
		case ',':
		case ';':
			if (in_angle && ch == ',')
				break;
			if (sendmail_add_item(start, (size_t)(value + i - start),
			    list) < 0)
				return -1;
			start = value + i + 1;
			break;
		default:
			break;
		}
	}
	return sendmail_add_item(start, (size_t)(value + len - start), list);
}

/* True if the field at line (len bytes up to its colon) is called
 * name. */
static bool
sendmail_field_is(const char *line, size_t name_len, const char *name)
{
	return strlen(name) == name_len &&
	    strncasecmp(line, name, name_len) == 0;
}

int
sendmail_header_recipients(const char *headers, size_t len,
    struct sendmail_addresses *list)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = {
		"Resent-To", "Resent-Cc", "Resent-Bcc"
	};
	const char *const *names = plain;
	const char *end = headers + len;

	/* Any Resent- field makes only the Resent- recipients count. */
	for (const char *p = headers; p < end; ) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if ((size_t)(end - p) >= 7 && strncasecmp(p, "Resent-", 7) == 0)
			names = resent;
		p = nl != NULL ? nl + 1 : end;
	}

	for (const char *p = headers; p < end; ) {
		const char *q = p, *colon;
		size_t name_len;

		/* The field runs to the newline not followed by a
		 * continuation line. */
		for (;;) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));

			q = nl != NULL ? nl + 1 : end;
			if (q >= end || (*q != ' ' && *q != '\t'))
				break;
		}
		colon = memchr(p, ':', (size_t)(q - p));
		if (colon != NULL) {
			name_len = (size_t)(colon - p);
			for (size_t k = 0; k < 3; k++) {
				if (sendmail_field_is(p, name_len, names[k]) &&
				    sendmail_parse_address_list(colon + 1,
				    (size_t)(q - colon - 1), list) < 0)
					return -1;
			}
		}
		p = q;
	}
	return 0;
}

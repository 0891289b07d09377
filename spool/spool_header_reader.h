/*
 * spool_header_reader.h - the bounded line reader that the -H file parser
 * (spool_header_parse.c) and its option lines (spool_header_options.c)
 * share. Nothing else includes it, so the helpers are static inline and
 * keep short names.
 *
 * The reader never looks at data[len] or beyond and needs no NUL at the
 * end. Each line is found with memchr() over at most
 * SPOOL_HEADER_LINE_MAX + 1 bytes, so an overlong line is reported
 * without scanning the rest of it. The first error is kept in error as
 * "FILENAME:LINE: message", which the parser hands to its caller.
 */
#ifndef SLUICE_SPOOL_HEADER_READER_H
#define SLUICE_SPOOL_HEADER_READER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_header.h"
#include "util.h"

struct reader {
	const char *data;
	size_t len;
	size_t pos;		/* offset of the next unread byte */
	size_t lines_done;	/* complete lines before pos */
	size_t line;		/* number of the line being read, for errors */
	const char *filename;
	char *error;		/* "FILENAME:LINE: ..." once something failed */
};

/* A piece of data, not NUL-terminated. */
struct span {
	const char *s;
	size_t len;
};

static inline int SLUICE_PRINTF(2, 3)
parse_fail(struct reader *r, const char *fmt, ...)
{
	char *message;
	va_list ap;

	if (r->error != NULL)
		return -1;
	va_start(ap, fmt);
	message = xvasprintf(fmt, ap);
	va_end(ap);
	r->error = xasprintf("%s:%zu: %s", r->filename, r->line, message);
	free(message);
	return -1;
}

/* Copies s[0..len) into buf for an error message: printable ASCII as it
 * is, other bytes as \xHH, cut at about 40 bytes with "...". */
static inline const char *
excerpt(char buf[200], const char *s, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 40) {
			memcpy(buf + out, "...", 3);
			out += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[out++] = (char)c;
		else
			out += (size_t)snprintf(buf + out, 5, "\\x%02x", c);
	}
	buf[out] = '\0';
	return buf;
}

/*
 * Parses s[0..len) as a decimal number in [min, max]: digits, with a
 * leading '-' only when min is negative. Returns false on anything else,
 * including a value out of range.
 */
static inline bool
parse_number(const char *s, size_t len, int64_t min, int64_t max,
    int64_t *out)
{
	bool negative = false;
	uint64_t limit, value = 0;

	if (len > 0 && s[0] == '-' && min < 0) {
		negative = true;
		s++;
		len--;
	}
	if (len == 0)
		return false;
	/* The magnitude of min, computed without overflowing INT64_MIN. */
	limit = negative ? (uint64_t)(-(min + 1)) + 1 : (uint64_t)max;
	for (size_t i = 0; i < len; i++) {
		unsigned digit;

		if (s[i] < '0' || s[i] > '9')
			return false;
		digit = (unsigned)(s[i] - '0');
		if (value > limit / 10 ||
		    (value == limit / 10 && digit > limit % 10))
			return false;
		value = value * 10 + digit;
	}
	if (negative)
		*out = value == 0 ? 0 : -(int64_t)(value - 1) - 1;
	else
		*out = (int64_t)value;
	return *out >= min;
}

/* Finds the next line without consuming it. */
static inline int
peek_line(struct reader *r, const char *what, struct span *line)
{
	size_t avail = r->len - r->pos;
	size_t scan = avail < SPOOL_HEADER_LINE_MAX + 1 ?
	    avail : SPOOL_HEADER_LINE_MAX + 1;
	const char *start = r->data + r->pos;
	const char *newline;

	line->s = start;
	line->len = 0;
	r->line = r->lines_done + 1;
	if (avail == 0)
		return parse_fail(r, "file ends before %s", what);
	newline = memchr(start, '\n', scan);
	if (newline == NULL) {
		if (scan == avail)
			return parse_fail(r, "file ends inside %s (no newline)",
			    what);
		return parse_fail(r, "%s is longer than %d bytes", what,
		    SPOOL_HEADER_LINE_MAX);
	}
	if (memchr(start, '\0', (size_t)(newline - start)) != NULL)
		return parse_fail(r, "%s contains a NUL byte", what);
	line->s = start;
	line->len = (size_t)(newline - start);
	return 0;
}

static inline void
consume_line(struct reader *r, const struct span *line)
{
	r->pos += line->len + 1;
	r->lines_done++;
}

static inline int
read_line(struct reader *r, const char *what, struct span *line)
{
	if (peek_line(r, what, line) != 0)
		return -1;
	consume_line(r, line);
	return 0;
}

static inline size_t
count_newlines(const char *s, size_t len)
{
	size_t count = 0;
	const char *end = s + len;

	while ((s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		count++;
		s++;
	}
	return count;
}

static inline bool
span_is(const struct span *span, const char *s)
{
	return span->len == strlen(s) && memcmp(span->s, s, span->len) == 0;
}

/* Reads option lines up to the first line that does not start with '-'
 * (the start of the non-recipients tree), which is left unread. Returns
 * 0, or -1 with r->error set. Defined in spool_header_options.c. */
int spool_header_parse_options(struct reader *r, struct spool_header *h);

#endif

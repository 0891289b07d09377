/*
 * smtp_reader.c - command line framing and the DATA content reader (see
 * smtp_reader.h).
 *
 * The content reader works in two stages. The first follows the wire
 * form byte by byte: CRLF line ends, dot-stuffing, the end marker and
 * the smuggling forms. It passes the content on in LF form to the
 * second stage, which splits the header section from the body.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_reader.h"
#include "util.h"

enum smtp_line_status
smtp_line_next(struct smtp_line_reader *reader, const char *buf, size_t len,
    size_t max, size_t *line_len, size_t *consumed)
{
	const char *lf;
	size_t end;

	*line_len = 0;
	*consumed = 0;
	if (max > SMTP_LINE_HARD_MAX)
		max = SMTP_LINE_HARD_MAX;

	/* Inside an overlong line: drop input up to and including its LF. */
	if (reader->skipping) {
		if ((lf = memchr(buf, '\n', len)) == NULL) {
			*consumed = len;
			return SMTP_LINE_NONE;
		}
		*consumed = (size_t)(lf - buf) + 1;
		reader->skipping = false;
		return SMTP_LINE_TOO_LONG;
	}

	/* A line of max bytes with its CRLF has its LF within them. */
	if ((lf = memchr(buf, '\n', len < max ? len : max)) == NULL) {
		if (len < max)
			return SMTP_LINE_NONE;
		reader->skipping = true;
		*consumed = max;
		return SMTP_LINE_NONE;
	}

	end = (size_t)(lf - buf);
	*consumed = end + 1;
	if (end == 0 || buf[end - 1] != '\r')
		return SMTP_LINE_BARE_LF;
	if (memchr(buf, '\r', end - 1) != NULL)
		return SMTP_LINE_BARE_CR;
	if (memchr(buf, '\0', end - 1) != NULL)
		return SMTP_LINE_NUL;
	*line_len = end - 1;
	return SMTP_LINE_OK;
}

/* First stage states: the position in the wire form. */
enum data_state {
	DATA_LINE_START,	/* after CRLF, or at the start of the content */
	DATA_TEXT,		/* inside a line */
	DATA_CR,		/* inside a line, after a CR */
	DATA_DOT,		/* "." at the start of a line */
	DATA_DOT_CR,		/* ".\r" at the start of a line */
	DATA_BARE,		/* after a bare LF or bare CR */
	DATA_BARE_DOT,		/* "." after a bare LF or bare CR */
};

/* Second stage: what the current line of the header section is. */
enum header_line_kind {
	HEADER_LINE_START,	/* nothing of the line seen yet */
	HEADER_LINE_NAME,	/* a field name so far */
	HEADER_LINE_NAME_WS,	/* white space after the name, before ':' */
	HEADER_LINE_FIELD,	/* a field's first line, after its colon */
	HEADER_LINE_CONT,	/* a folded continuation line */
};

void
smtp_data_init(struct smtp_data_reader *reader)
{
	memset(reader, 0, sizeof(*reader));
	reader->state = DATA_LINE_START;
	reader->line_kind = HEADER_LINE_START;
	reader->header_max = SMTP_HEADER_BYTES_MAX;
	reader->header_line_max = SMTP_HEADER_FIELD_MAX;
	reader->header_fields_max = SMTP_HEADER_FIELDS_MAX;
	reader->received_max = SMTP_RECEIVED_MAX;
}

void
smtp_data_free(struct smtp_data_reader *reader)
{
	free(reader->headers);
	reader->headers = NULL;
	reader->headers_len = 0;
	reader->headers_alloc = 0;
}

static void
data_latch(struct smtp_data_reader *r, enum smtp_data_error error)
{
	if (r->error == SMTP_DATA_OK)
		r->error = error;
}

static void
data_flush(struct smtp_data_reader *r)
{
	if (r->stage_len > 0 && r->error == SMTP_DATA_OK &&
	    r->write(r->write_arg, r->stage, r->stage_len) < 0)
		data_latch(r, SMTP_DATA_WRITE_FAILED);
	r->stage_len = 0;
}

static void
data_body_put(struct smtp_data_reader *r, char c)
{
	r->body_size++;
	if (c == '\n')
		r->body_lines++;
	else if (c == '\0')
		r->body_zeros++;
	r->stage[r->stage_len++] = c;
	if (r->stage_len == sizeof(r->stage))
		data_flush(r);
}

/* Appends c to the header section, within its byte bounds. */
static void
data_header_store(struct smtp_data_reader *r, char c)
{
	if (r->headers_len >= r->header_max) {
		data_latch(r, SMTP_DATA_HEADER_TOO_BIG);
		return;
	}
	if (++r->field_len > r->header_line_max) {
		data_latch(r, SMTP_DATA_HEADER_LINE_TOO_LONG);
		return;
	}
	if (r->headers_len == r->headers_alloc) {
		r->headers_alloc = r->headers_alloc == 0 ? 1024 :
		    r->headers_alloc * 2;
		if (r->headers_alloc > r->header_max)
			r->headers_alloc = r->header_max;
		r->headers = xrealloc(r->headers, r->headers_alloc + 1);
	}
	r->headers[r->headers_len++] = c;
	r->headers[r->headers_len] = '\0';
}

/* The current line turned out not to be a header field: it and what
 * follows are the body (RFC 5322 allows no other line in the header
 * section; Exim treats it the same way). */
static void
data_start_body_here(struct smtp_data_reader *r)
{
	for (size_t i = r->line_start; i < r->headers_len; i++)
		data_body_put(r, r->headers[i]);
	r->headers_len = r->line_start;
	if (r->headers != NULL)
		r->headers[r->headers_len] = '\0';
	r->in_body = true;
}

/* A field name ended with its colon: count Received: fields. */
static void
data_field_named(struct smtp_data_reader *r)
{
	if (r->name_len == 8 &&
	    strncasecmp(r->headers + r->line_start, "Received", 8) == 0 &&
	    ++r->received_count > r->received_max)
		data_latch(r, SMTP_DATA_LOOP);
}

static bool
data_is_name_char(char c)
{
	return c > 32 && c < 127 && c != ':';
}

/* Second stage for the header section: classifies each line as it
 * arrives. */
static void
data_header_put(struct smtp_data_reader *r, char c)
{
	switch (r->line_kind) {
	case HEADER_LINE_START:
		r->line_start = r->headers_len;
		r->name_len = 0;
		if (c == '\n') {
			/* The empty line between header and body belongs to
			 * neither. */
			r->in_body = true;
			return;
		}
		if ((c == ' ' || c == '\t') && r->header_fields > 0) {
			r->line_kind = HEADER_LINE_CONT;
		} else if (data_is_name_char(c)) {
			r->line_kind = HEADER_LINE_NAME;
			r->name_len = 1;
			r->field_len = 0;
			if (++r->header_fields > r->header_fields_max)
				data_latch(r, SMTP_DATA_HEADER_TOO_BIG);
		} else {
			data_start_body_here(r);
			data_body_put(r, c);
			return;
		}
		break;
	case HEADER_LINE_NAME:
		if (c == ':') {
			r->line_kind = HEADER_LINE_FIELD;
			data_field_named(r);
		} else if (c == ' ' || c == '\t') {
			r->line_kind = HEADER_LINE_NAME_WS;
		} else if (data_is_name_char(c)) {
			r->name_len++;
		} else {
			data_start_body_here(r);
			data_body_put(r, c);
			return;
		}
		break;
	case HEADER_LINE_NAME_WS:
		if (c == ':') {
			r->line_kind = HEADER_LINE_FIELD;
			data_field_named(r);
		} else if (c != ' ' && c != '\t') {
			data_start_body_here(r);
			data_body_put(r, c);
			return;
		}
		break;
	case HEADER_LINE_FIELD:
	case HEADER_LINE_CONT:
		if (c == '\n')
			r->line_kind = HEADER_LINE_START;
		break;
	}
	data_header_store(r, c);
}

/* Second stage entry: one content byte in LF form. */
static void
data_put(struct smtp_data_reader *r, char c)
{
	r->size++;
	if (r->size_limit != 0 && r->size > r->size_limit)
		data_latch(r, SMTP_DATA_TOO_BIG);
	if (r->error != SMTP_DATA_OK)
		return;

	if (c == '\n') {
		if (r->line_len > r->max_line_len)
			r->max_line_len = r->line_len;
		r->line_len = 0;
	} else {
		r->line_len++;
	}

	if (r->in_body)
		data_body_put(r, c);
	else
		data_header_put(r, c);
}

/* First stage: one wire byte. Returns true at the end of the content. */
static bool
data_wire_byte(struct smtp_data_reader *r, char c)
{
	for (;;) {
		switch (r->state) {
		case DATA_LINE_START:
			if (c == '.') {
				r->state = DATA_DOT;
				return false;
			}
			r->state = DATA_TEXT;
			continue;
		case DATA_TEXT:
			if (c == '\r') {
				r->state = DATA_CR;
			} else if (c == '\n') {
				data_put(r, '\n');	/* a bare LF is content */
				r->state = DATA_BARE;
			} else {
				data_put(r, c);
			}
			return false;
		case DATA_CR:
			if (c == '\n') {
				data_put(r, '\n');
				r->state = DATA_LINE_START;
				return false;
			}
			data_put(r, '\r');		/* a bare CR is content */
			r->state = DATA_BARE;
			continue;
		case DATA_BARE:
			if (c == '.') {
				r->state = DATA_BARE_DOT;
				return false;
			}
			r->state = DATA_TEXT;
			continue;
		case DATA_BARE_DOT:
			/* "\n.\r", "\n.\n", "\r.\r", "\r.\n": a dot line with
			 * a bare line end before it. */
			if (c == '\r' || c == '\n')
				data_latch(r, SMTP_DATA_SMUGGLING);
			data_put(r, '.');	/* not stuffing: no line start */
			r->state = DATA_TEXT;
			continue;
		case DATA_DOT:
			if (c == '\r') {
				r->state = DATA_DOT_CR;
				return false;
			}
			if (c == '\n') {
				/* "\r\n.\n" */
				data_latch(r, SMTP_DATA_SMUGGLING);
				data_put(r, '\n');
				r->state = DATA_BARE;
				return false;
			}
			/* Dot-stuffing: the leading dot is dropped. */
			r->state = DATA_TEXT;
			continue;
		case DATA_DOT_CR:
			if (c == '\n')
				return true;
			/* "\r\n.\r" followed by anything but LF */
			data_latch(r, SMTP_DATA_SMUGGLING);
			data_put(r, '\r');
			r->state = DATA_BARE;
			continue;
		default:
			fatal_bug("content reader in unknown state %d", r->state);
		}
	}
}

size_t
smtp_data_feed(struct smtp_data_reader *reader, const char *buf, size_t len)
{
	size_t i;

	SLUICE_ASSERT(!reader->done);
	for (i = 0; i < len; i++) {
		if (data_wire_byte(reader, buf[i])) {
			reader->done = true;
			i++;
			break;
		}
	}
	data_flush(reader);
	return i;
}

void
smtp_data_feed_chunk(struct smtp_data_reader *reader, const char *buf,
    size_t len)
{
	SLUICE_ASSERT(!reader->done);
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (reader->chunk_cr) {
			reader->chunk_cr = false;
			if (c == '\n') {
				data_put(reader, '\n');
				continue;
			}
			data_put(reader, '\r');	/* a bare CR is content */
		}
		if (c == '\r')
			reader->chunk_cr = true;
		else
			data_put(reader, c);
	}
	data_flush(reader);
}

void
smtp_data_finish_chunks(struct smtp_data_reader *reader)
{
	SLUICE_ASSERT(!reader->done);
	if (reader->chunk_cr) {
		reader->chunk_cr = false;
		data_put(reader, '\r');
	}
	data_flush(reader);
	reader->done = true;
}

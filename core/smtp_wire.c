/*
 * smtp_wire.c - SMTP replies, EHLO keywords and the DATA encoding (see
 * smtp_wire.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_wire.h"
#include "util.h"

/* --- replies -------------------------------------------------------- */

void
smtp_reply_init(struct smtp_reply *reply)
{
	reply->code = 0;
	reply->line_count = 0;
	reply->complete = false;
	reply->truncated = false;
	reply->len = 0;
	reply->text[0] = '\0';
}

/* Appends line to the kept text, joined by '\n', as far as it fits. */
static void
smtp_reply_keep(struct smtp_reply *reply, const char *line, size_t len)
{
	size_t room = SMTP_REPLY_TEXT_MAX - reply->len;

	if (reply->line_count > 0) {
		if (room == 0) {
			reply->truncated = true;
			return;
		}
		reply->text[reply->len++] = '\n';
		room--;
	}
	if (len > room) {
		len = room;
		reply->truncated = true;
	}
	for (size_t i = 0; i < len; i++)
		reply->text[reply->len++] = line[i] == '\0' ? '?' : line[i];
	reply->text[reply->len] = '\0';
}

int
smtp_reply_add_line(struct smtp_reply *reply, const char *line, size_t len,
    const char **error)
{
	int code;

	if (reply->complete) {
		*error = "a line after the end of the reply";
		return -1;
	}
	if (len > SMTP_REPLY_LINE_MAX) {
		*error = "reply line too long";
		return -1;
	}
	if (reply->line_count >= SMTP_REPLY_LINES_MAX) {
		*error = "too many reply lines";
		return -1;
	}
	/* RFC 5321 section 4.2: three digits, 2-5, 0-5, 0-9. */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9') {
		*error = "reply line does not start with a reply code";
		return -1;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*error = "reply code not followed by a space or '-'";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (reply->line_count > 0 && code != reply->code) {
		*error = "reply lines with different codes";
		return -1;
	}
	reply->code = code;
	smtp_reply_keep(reply, line, len);
	reply->line_count++;
	if (len == 3 || line[3] == ' ')
		reply->complete = true;
	return reply->complete ? 1 : 0;
}

/*
 * Finds RCPTMAX=n among the parameters of a LIMITS keyword (RFC 9422
 * section 3: space-separated NAME=value pairs). params has len bytes and
 * starts right after the keyword. Returns n, or 0 when it is absent or
 * not a number from 1 to 1000000.
 */
static unsigned
smtp_ehlo_rcpt_max(const char *params, size_t len)
{
	static const char name[] = "RCPTMAX=";
	size_t i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && params[i] == ' ')
			i++;
		start = i;
		while (i < len && params[i] != ' ')
			i++;
		end = i;
		if (end - start > sizeof(name) - 1 && end - start < 32 &&
		    strncasecmp(params + start, name, sizeof(name) - 1) == 0) {
			char number[32];
			unsigned long long value;

			memcpy(number, params + start + sizeof(name) - 1,
			    end - start - (sizeof(name) - 1));
			number[end - start - (sizeof(name) - 1)] = '\0';
			if (parse_uint(number, 1000000, &value) == 0 &&
			    value > 0)
				return (unsigned)value;
		}
	}
	return 0;
}

void
smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *out)
{
	const char *line = reply->text;

	memset(out, 0, sizeof(*out));
	/* The first line is the greeting; keywords follow "250-" or "250 ". */
	line = strchr(line, '\n');
	while (line != NULL) {
		const char *keyword = line + 1;
		const char *end = strchr(keyword, '\n');
		size_t len = end != NULL ? (size_t)(end - keyword) :
		    strlen(keyword);
		char word[32];
		size_t n = 0;

		line = end;
		if (len < 4)
			continue;
		keyword += 4;
		len -= 4;
		while (n < len && n < sizeof(word) - 1 && keyword[n] != ' ')
			n++;
		memcpy(word, keyword, n);
		word[n] = '\0';

		if (strcasecmp(word, "SIZE") == 0) {
			unsigned long long max = 0;
			char number[24];
			size_t digits = len > n + 1 ? len - n - 1 : 0;

			out->size = true;
			if (digits > 0 && digits < sizeof(number)) {
				memcpy(number, keyword + n + 1, digits);
				number[digits] = '\0';
				if (parse_uint(number, UINT64_MAX, &max) == 0)
					out->size_max = max;
			}
		} else if (strcasecmp(word, "PIPELINING") == 0) {
			out->pipelining = true;
		} else if (strcasecmp(word, "STARTTLS") == 0) {
			out->starttls = true;
		} else if (strcasecmp(word, "8BITMIME") == 0) {
			out->eight_bit_mime = true;
		} else if (strcasecmp(word, "CHUNKING") == 0) {
			out->chunking = true;
		} else if (strcasecmp(word, "SMTPUTF8") == 0) {
			out->smtputf8 = true;
		} else if (strcasecmp(word, "DSN") == 0) {
			out->dsn = true;
		} else if (strcasecmp(word, "LIMITS") == 0) {
			out->rcpt_max = smtp_ehlo_rcpt_max(keyword + n,
			    len - n);
		}
	}
}

size_t
smtp_xtext_encode(const char *text, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0';
	    p++) {
		char piece[3];
		size_t len = 1;

		if (*p >= '!' && *p <= '~' && *p != '+' && *p != '=') {
			piece[0] = (char)*p;
		} else {
			piece[0] = '+';
			piece[1] = hex[*p >> 4];
			piece[2] = hex[*p & 0x0f];
			len = 3;
		}
		for (size_t i = 0; i < len; i++, n++)
			if (n + 1 < size)
				out[n] = piece[i];
	}
	if (size > 0)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

bool
smtp_xtext_valid(const char *text)
{
	const char *p = text;

	if (*p == '\0')
		return false;
	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c == '+') {
			for (int i = 1; i <= 2; i++)
				if (!((p[i] >= '0' && p[i] <= '9') ||
				    (p[i] >= 'A' && p[i] <= 'F')))
					return false;
			p += 3;
			continue;
		}
		if (c < '!' || c > '~' || c == '=')
			return false;
		p++;
	}
	return true;
}

/* --- DATA encoding -------------------------------------------------- */

void
smtp_dot_encoder_init(struct smtp_dot_encoder *encoder)
{
	encoder->line_start = true;
	encoder->after_bare_cr = false;
	encoder->cr_pending = false;
}

size_t
smtp_dot_encode(struct smtp_dot_encoder *encoder, const char *in, size_t len,
    char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (encoder->cr_pending) {
			encoder->cr_pending = false;
			if (c == '\n') {
				out[n++] = '\r';
				out[n++] = '\n';
				encoder->line_start = true;
				encoder->after_bare_cr = false;
				continue;
			}
			/* A bare CR: content, as received. */
			out[n++] = '\r';
			encoder->line_start = false;
			encoder->after_bare_cr = true;
		}
		if (c == '\r') {
			encoder->cr_pending = true;
			continue;
		}
		if (c == '\n') {
			out[n++] = '\r';
			out[n++] = '\n';
			encoder->line_start = true;
			encoder->after_bare_cr = false;
			continue;
		}
		if (c == '.' && (encoder->line_start || encoder->after_bare_cr))
			out[n++] = '.';
		out[n++] = c;
		encoder->line_start = false;
		encoder->after_bare_cr = false;
	}
	return n;
}

size_t
smtp_dot_encoder_finish(struct smtp_dot_encoder *encoder, bool terminate,
    char *out)
{
	size_t n = 0;

	if (encoder->cr_pending) {
		out[n++] = '\r';
		encoder->cr_pending = false;
		encoder->line_start = false;
	}
	if (!encoder->line_start) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	if (terminate) {
		memcpy(out + n, ".\r\n", 3);
		n += 3;
	}
	smtp_dot_encoder_init(encoder);
	return n;
}

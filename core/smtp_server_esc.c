/*
 * smtp_server_esc.c - enhanced status codes on replies (see
 * smtp_server_esc.h).
 *
 * The codes come from one table: the first entry whose reply code, verb
 * and text fragment match wins, and a reply that no entry names gets the
 * class's "undefined" code (2.0.0, 4.0.0 or 5.0.0, RFC 3463 section 3.1).
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "smtp_server_esc.h"
#include "util.h"

struct smtp_esc_rule {
	const char *reply;	/* the 3-digit code */
	const char *verb;	/* command answered, or NULL for any */
	const char *fragment;	/* text it contains, or NULL for any */
	const char *code;	/* RFC 3463 enhanced code */
};

/*
 * The codes, as RFC 3463 section 3 defines them: X.1.3 bad destination
 * syntax, X.1.5 destination valid, X.1.7 bad sender syntax. X.3.x is the
 * mail system (X.3.1 full, X.3.4 message too big), X.4.2 a bad
 * connection, X.4.6 a routing loop, X.5.x the protocol, X.7.x security
 * and policy. X.6.7 (RFC 6531) is a UTF-8 address that is not allowed,
 * and X.7.8 (RFC 4954) failed authentication.
 */
static const struct smtp_esc_rule smtp_esc_rules[] = {
	{ "250", NULL, "OK id=", "2.0.0" },
	{ "250", "MAIL", NULL, "2.1.0" },
	{ "250", "RCPT", NULL, "2.1.5" },
	{ "235", NULL, NULL, "2.7.0" },
	{ "421", NULL, "timeout", "4.4.2" },
	{ "421", NULL, "time limit", "4.4.2" },
	{ "421", NULL, "lost input connection", "4.4.2" },
	{ "421", NULL, "too many messages", "4.7.0" },
	{ "421", NULL, NULL, "4.3.2" },
	{ "435", NULL, NULL, "4.7.0" },
	{ "451", NULL, NULL, "4.3.0" },
	{ "452", NULL, "too many recipients", "4.5.3" },
	{ "452", NULL, "Space shortage", "4.3.1" },
	{ "454", NULL, NULL, "4.7.0" },
	{ "500", NULL, "unrecognized command", "5.5.1" },
	{ "500", NULL, NULL, "5.5.2" },
	{ "501", "MAIL", ">: ", "5.1.7" },
	{ "501", "RCPT", ">: ", "5.1.3" },
	{ "501", NULL, NULL, "5.5.4" },
	{ "503", NULL, NULL, "5.5.1" },
	{ "504", NULL, NULL, "5.5.4" },
	{ "530", NULL, NULL, "5.7.0" },
	{ "535", NULL, NULL, "5.7.8" },
	{ "550", NULL, "relay not permitted", "5.7.1" },
	{ "550", NULL, "Restricted characters", "5.7.1" },
	{ "550", NULL, "Received", "5.4.6" },
	{ "550", NULL, "bare LF", "5.6.0" },
	{ "552", NULL, "too many recipients", "5.5.3" },
	{ "552", NULL, NULL, "5.3.4" },
	{ "553", NULL, "SMTPUTF8", "5.6.7" },
	{ "555", NULL, NULL, "5.5.4" },
};

/* True if text starts with an enhanced code and a space: class digit,
 * '.', 1-3 digits, '.', 1-3 digits (RFC 3463 section 2). */
static bool
smtp_esc_present(const char *text)
{
	const char *p = text;

	if (*p != '2' && *p != '4' && *p != '5')
		return false;
	p++;
	for (int part = 0; part < 2; part++) {
		size_t n = 0;

		if (*p++ != '.')
			return false;
		while (isdigit((unsigned char)p[n]))
			n++;
		if (n == 0 || n > 3)
			return false;
		p += n;
	}
	return *p == ' ' || *p == '\0' || *p == '\r';
}

/* True if line starts with a reply code and a separator. */
static bool
smtp_esc_line_valid(const char *line)
{
	return isdigit((unsigned char)line[0]) &&
	    isdigit((unsigned char)line[1]) &&
	    isdigit((unsigned char)line[2]) &&
	    (line[3] == ' ' || line[3] == '-' || line[3] == '\0' ||
	    line[3] == '\r');
}

/* True if the first line of text contains fragment. */
static bool
smtp_esc_first_line_has(const char *text, const char *fragment)
{
	size_t line_len = strcspn(text, "\r");
	size_t len = strlen(fragment);

	for (size_t i = 0; i + len <= line_len; i++)
		if (strncmp(text + i, fragment, len) == 0)
			return true;
	return false;
}

const char *
smtp_esc_code(const char *text, const char *verb)
{
	if (!smtp_esc_line_valid(text))
		return NULL;
	if (text[0] != '2' && text[0] != '4' && text[0] != '5')
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(smtp_esc_rules); i++) {
		const struct smtp_esc_rule *r = &smtp_esc_rules[i];

		if (strncmp(text, r->reply, 3) != 0)
			continue;
		if (r->verb != NULL &&
		    (verb == NULL || strcasecmp(verb, r->verb) != 0))
			continue;
		if (r->fragment != NULL &&
		    !smtp_esc_first_line_has(text + 3, r->fragment))
			continue;
		return r->code;
	}
	switch (text[0]) {
	case '2':
		return "2.0.0";
	case '4':
		return "4.0.0";
	default:
		return "5.0.0";
	}
}

char *
smtp_esc_apply(const char *text, const char *verb)
{
	const char *code = smtp_esc_code(text, verb);
	const char *p = text;
	size_t lines = 1, code_len, len, n = 0;
	char *out;

	if (code == NULL)
		return NULL;
	/* Lines end at each CR, so counting CRs bounds the lines. */
	for (const char *q = text; (q = strchr(q, '\r')) != NULL; q++)
		lines++;
	code_len = strlen(code);
	len = strlen(text);
	out = xmalloc(len + lines * (code_len + 1) + 1);

	/* Each line: "NNN" separator, the code, a space, the old text. A
	 * line too short to have a separator gets a space as one. */
	for (;;) {
		size_t line_len = strcspn(p, "\r");
		bool has_text = line_len > 4;

		if (!smtp_esc_line_valid(p) ||
		    (has_text && smtp_esc_present(p + 4))) {
			memcpy(out + n, p, line_len);
			n += line_len;
		} else {
			memcpy(out + n, p, 3);
			n += 3;
			out[n++] = line_len > 3 ? p[3] : ' ';
			memcpy(out + n, code, code_len);
			n += code_len;
			if (has_text) {
				out[n++] = ' ';
				memcpy(out + n, p + 4, line_len - 4);
				n += line_len - 4;
			}
		}
		p += line_len;
		if (*p == '\0')
			break;
		/* Copy the line break ("\r\n", or a lone '\r'). */
		out[n++] = *p++;
		if (*p == '\n')
			out[n++] = *p++;
	}
	out[n] = '\0';
	return out;
}

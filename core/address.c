/*
 * address.c - parsing of MAIL FROM and RCPT TO arguments (see address.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "address.h"

/* RFC 5322 3.2.3 atext: printable ASCII except specials. */
static bool
address_is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 4.1.2 qtextSMTP: bytes allowed unescaped in a quoted string. */
static bool
address_is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/*
 * Length of the well-formed UTF-8 sequence for one non-ASCII character
 * at p (RFC 3629 section 4: no overlong forms, no surrogates, nothing
 * above U+10FFFF), or 0 when p does not start one. p is NUL-terminated,
 * and a NUL ends a sequence early.
 */
size_t
address_utf8_char_len(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		len = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef)
		len = 3;
	else if (u[0] >= 0xf0 && u[0] <= 0xf4)
		len = 4;
	else
		return 0;
	/* The second byte's range rules out the overlong forms, the
	 * surrogates (ED A0..BF) and code points over U+10FFFF. */
	if (u[0] == 0xe0)
		lo = 0xa0;
	else if (u[0] == 0xed)
		hi = 0x9f;
	else if (u[0] == 0xf0)
		lo = 0x90;
	else if (u[0] == 0xf4)
		hi = 0x8f;
	if (u[1] < lo || u[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return 0;
	return len;
}

bool
address_utf8_valid(const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = 1;

		if ((unsigned char)*p >= 0x80 &&
		    (n = address_utf8_char_len(p)) == 0)
			return false;
		p += n;
	}
	return true;
}

/* The reason to reject a byte that may not appear in an address, or NULL
 * for a printable ASCII byte. utf8 is set when SMTPUTF8 is in use, and
 * then a byte over 127 gets here only when it does not start valid UTF-8. */
static const char *
address_byte_error(unsigned char c, bool utf8)
{
	if (c >= 0x80)
		return utf8 ? "invalid UTF-8 in address" :
		    "8-bit characters are not allowed without SMTPUTF8";
	if (c < 32 || c == 127)
		return "control characters are not allowed in an address";
	return NULL;
}

/* Length of the UTF-8 character at p when utf8 allows one there, else 0. */
static size_t
address_utf8_at(const char *p, bool utf8)
{
	return utf8 && (unsigned char)*p >= 0x80 ? address_utf8_char_len(p) : 0;
}

/*
 * Checks domain[0..len) as a domain name; returns NULL or the reason.
 * With utf8, labels may hold UTF-8 characters (RFC 6531 section 3.3
 * U-labels); lengths are counted in octets.
 * NOTE: a U-label is checked as UTF-8 only, not against IDNA 2008
 * (RFC 5891), since converting it needs an IDNA library.
 */
static const char *
address_domain_check(const char *domain, size_t len, bool utf8)
{
	size_t label = 0;

	if (len == 0)
		return "domain missing or malformed";
	if (len > ADDRESS_DOMAIN_MAX)
		return "domain longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)domain[i];
		size_t n;

		if (c >= 0x80) {
			n = address_utf8_at(domain + i, utf8);
			if (n == 0 || i + n > len)
				return "domain missing or malformed";
			label += n;
			if (label > ADDRESS_LABEL_MAX)
				return "a domain label is longer than 63 "
				    "characters";
			i += n - 1;
			continue;
		}

		if (c == '.') {
			/* Labels are non-empty and do not end with a hyphen. */
			if (label == 0 || domain[i - 1] == '-')
				return "domain missing or malformed";
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return "domain missing or malformed";
		if (label == 0 && c == '-')
			return "domain missing or malformed";
		if (++label > ADDRESS_LABEL_MAX)
			return "a domain label is longer than 63 characters";
	}
	if (label == 0 || domain[len - 1] == '-')
		return "domain missing or malformed";
	return NULL;
}

bool
address_domain_valid(const char *domain, size_t len)
{
	return address_domain_check(domain, len, false) == NULL;
}

bool
address_literal_valid(const char *text, size_t len)
{
	char ip[INET6_ADDRSTRLEN + 8];
	unsigned char bytes[16];
	size_t inner;

	if (len < 3 || text[0] != '[' || text[len - 1] != ']')
		return false;
	text++;
	inner = len - 2;
	/* RFC 5321 4.1.3: IPv6 literals carry the tag "IPv6:". */
	if (inner > 5 && strncasecmp(text, "IPv6:", 5) == 0) {
		if (inner - 5 >= sizeof(ip))
			return false;
		memcpy(ip, text + 5, inner - 5);
		ip[inner - 5] = '\0';
		return inet_pton(AF_INET6, ip, bytes) == 1;
	}
	if (inner >= sizeof(ip))
		return false;
	memcpy(ip, text, inner);
	ip[inner] = '\0';
	return inet_pton(AF_INET, ip, bytes) == 1;
}

/* Measures the quoted string at p (which starts with '"'). Returns NULL
 * with *len set to its length with the quotes, or the reason it is
 * invalid. */
static const char *
address_quoted_scan(const char *p, size_t *len, bool utf8)
{
	size_t i = 1;

	for (;;) {
		unsigned char c = (unsigned char)p[i];
		const char *why;
		size_t n;

		if (c == '"') {
			*len = i + 1;
			return NULL;
		}
		if (c == '\0')
			return "unmatched doublequote in local part";
		if (c == '\\') {
			c = (unsigned char)p[i + 1];
			if (c == '\0')
				return "unmatched doublequote in local part";
			if ((why = address_byte_error(c, false)) != NULL)
				return why;
			i += 2;
		} else if (address_is_qtext(c)) {
			i++;
		} else if ((n = address_utf8_at(p + i, utf8)) > 0) {
			i += n;		/* RFC 6531 section 3.3 qtextSMTP */
		} else {
			return (why = address_byte_error(c, utf8)) != NULL ?
			    why : "malformed quoted local part";
		}
	}
}

/* Copies the argument's address text (for an error reply) into out,
 * cut at the end of the path and to the buffer, with anything outside
 * printable ASCII replaced by '?'. */
static void
address_copy_for_error(const char *start, bool bracketed,
    struct address_path *out)
{
	size_t n = 0;

	for (const char *p = start; *p != '\0' && n < ADDRESS_MAX; p++) {
		unsigned char c = (unsigned char)*p;

		if (bracketed ? c == '>' : (c == ' ' || c == '\t'))
			break;
		out->address[n++] = c >= 32 && c <= 126 ? (char)c : '?';
	}
	out->address[n] = '\0';
}

static int
address_fail(const char *start, bool bracketed, struct address_path *out,
    const char **error, const char *text)
{
	address_copy_for_error(start, bracketed, out);
	out->domain = 0;
	out->params = NULL;
	*error = text;
	return -1;
}

/* Skips a source route "@a,@b:" at p. Returns the position after the
 * colon, or NULL when the route is malformed. */
static const char *
address_skip_route(const char *p)
{
	while (*p == '@') {
		const char *start = ++p;

		while (isalnum((unsigned char)*p) || *p == '-' || *p == '.')
			p++;
		if (!address_domain_valid(start, (size_t)(p - start)))
			return NULL;
		if (*p == ',')
			p++;
		else if (*p == ':')
			return p + 1;
		else
			return NULL;
	}
	return NULL;
}

/* The reason a path does not end at p, where its end ('>' when bracketed,
 * else white space or the end of the argument) was expected. */
static const char *
address_end_error(const char *p, bool bracketed, bool in_domain, bool utf8)
{
	const char *why;

	if ((why = address_byte_error((unsigned char)*p, utf8)) != NULL &&
	    *p != '\0')
		return why;
	if (bracketed && *p == '\0')
		return "'>' missing at end of address";
	if (!bracketed && *p == '>')
		return "'>' without a matching '<'";
	if (in_domain)
		return "domain missing or malformed";
	return "malformed address";
}

int
address_parse_path(const char *arg, enum address_role role,
    bool allow_literals, struct address_path *out, const char **error)
{
	return address_parse_path_flags(arg, role, allow_literals ?
	    ADDRESS_ALLOW_LITERALS : 0, out, error);
}

/* Skips a dot-string local part at p (RFC 5321 4.1.2, with RFC 6531's
 * UTF-8 atext when utf8 is set). Returns the position after it. */
static const char *
address_skip_dot_string(const char *p, bool utf8)
{
	for (;;) {
		size_t n;

		if (address_is_atext((unsigned char)*p) || *p == '.')
			p++;
		else if ((n = address_utf8_at(p, utf8)) > 0)
			p += n;
		else
			return p;
	}
}

/* Skips the characters a domain name may hold at p. */
static const char *
address_skip_domain(const char *p, bool utf8)
{
	for (;;) {
		size_t n;

		if (isalnum((unsigned char)*p) || *p == '-' || *p == '.')
			p++;
		else if ((n = address_utf8_at(p, utf8)) > 0)
			p += n;
		else
			return p;
	}
}

/* True if text[0..len) contains a byte over 127. */
static bool
address_has_8bit(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] >= 0x80)
			return true;
	return false;
}

int
address_parse_path_flags(const char *arg, enum address_role role,
    unsigned flags, struct address_path *out, const char **error)
{
	const char *p = arg, *start, *local_end, *domain = NULL;
	bool bracketed = false, routed = false;
	bool allow_literals = (flags & ADDRESS_ALLOW_LITERALS) != 0;
	bool utf8 = (flags & ADDRESS_ALLOW_UTF8) != 0;
	const char *why;
	size_t len, local_len;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	start = p;
	if (*p == '<') {
		bracketed = true;
		start = ++p;
		if (*p == '@') {
			const char *colon = strchr(p, ':');
			const char *close = strchr(p, '>');

			/* "<@domain>" is an address without its local part,
			 * not a source route. */
			if (colon == NULL || (close != NULL && close < colon))
				return address_fail(start, true, out, error,
				    "no local part");
			if ((p = address_skip_route(p)) == NULL)
				return address_fail(start, true, out, error,
				    "malformed source route");
			start = p;
			routed = true;
		}
	}

	/* The null path: only a sender may be empty, and "<@a:>" is not
	 * one. */
	if (bracketed && *p == '>') {
		if (role != ADDRESS_SENDER || routed)
			return address_fail(start, true, out, error, "empty address");
		p++;
		goto params;
	}

	/* Local part: a quoted string or a dot-string. */
	if (*p == '"') {
		if ((why = address_quoted_scan(p, &len, utf8)) != NULL)
			return address_fail(start, bracketed, out, error, why);
		p += len;
	} else {
		p = address_skip_dot_string(p, utf8);
	}
	local_end = p;
	local_len = (size_t)(local_end - start);

	if (*p == '@') {
		if (local_len == 0)
			return address_fail(start, bracketed, out, error,
			    "no local part");
		domain = ++p;
		if (*p == '[') {
			/* An address literal runs to its closing bracket. */
			const char *close = strchr(p, ']');

			if (!allow_literals)
				return address_fail(start, bracketed, out, error,
				    "domain literals not allowed");
			if (close == NULL || !address_literal_valid(p,
			    (size_t)(close - p) + 1))
				return address_fail(start, bracketed, out, error,
				    "malformed domain literal");
			p = close + 1;
		} else {
			p = address_skip_domain(p, utf8);
		}
	}

	/* The path must end here. */
	if (bracketed ? *p != '>' : (*p != '\0' && *p != ' ' && *p != '\t'))
		return address_fail(start, bracketed, out, error,
		    address_end_error(p, bracketed, domain != NULL, utf8));
	len = (size_t)(p - start);
	if (len > ADDRESS_MAX)
		return address_fail(start, bracketed, out, error,
		    "address too long");
	if (local_len > ADDRESS_LOCAL_PART_MAX)
		return address_fail(start, bracketed, out, error,
		    "local part longer than 64 characters");
	if (domain == NULL) {
		if (local_len == 0)
			return address_fail(start, bracketed, out, error,
			    "empty address");
		/* RFC 5321 4.5.1: <postmaster> without a domain is a valid
		 * recipient. */
		if (role == ADDRESS_RECIPIENT && local_len == 10 &&
		    strncasecmp(start, "postmaster", 10) == 0) {
			memcpy(out->address, start, len);
			out->address[len] = '\0';
			if (bracketed)
				p++;
			goto params;
		}
		return address_fail(start, bracketed, out, error,
		    role == ADDRESS_SENDER ?
		    "sender address must contain a domain" :
		    "recipient address must contain a domain");
	}
	if (*domain != '[' &&
	    (why = address_domain_check(domain, (size_t)(p - domain),
	    utf8)) != NULL)
		return address_fail(start, bracketed, out, error, why);

	memcpy(out->address, start, len);
	out->address[len] = '\0';
	out->domain = (size_t)(domain - start);
	out->utf8 = address_has_8bit(out->address, len);
	if (bracketed)
		p++;

params:
	/* Parameters are separated from the path by a space; "<a@b>x" is
	 * not a path followed by a parameter. */
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return address_fail(start, bracketed, out, error,
		    "malformed address");
	while (*p == ' ' || *p == '\t')
		p++;
	out->params = p;
	return 0;
}

const char *
address_domain(const struct address_path *path)
{
	return path->domain == 0 ? "" : path->address + path->domain;
}

size_t
address_local_part(const struct address_path *path, char *buf, size_t size)
{
	const char *p = path->address;
	size_t end = path->domain > 0 ? path->domain - 1 : strlen(p);
	size_t n = 0;

	if (size == 0)
		return 0;
	if (end > 0 && p[0] == '"') {
		/* The parser checked that the quotes are balanced. */
		for (size_t i = 1; i < end && p[i] != '"' && n + 1 < size; i++) {
			if (p[i] == '\\' && i + 1 < end)
				i++;
			buf[n++] = p[i];
		}
	} else {
		for (size_t i = 0; i < end && n + 1 < size; i++)
			buf[n++] = p[i];
	}
	buf[n] = '\0';
	return n;
}

int
address_param_next(const char **params,
    char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1],
    char value[ADDRESS_PARAM_VALUE_MAX + 1])
{
	const char *p = *params;
	size_t n = 0;

	if (*p == '\0')
		return 0;

	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	if (!isalnum((unsigned char)*p))
		return -1;
	while (isalnum((unsigned char)*p) || *p == '-') {
		if (n == ADDRESS_PARAM_KEYWORD_MAX)
			return -1;
		keyword[n++] = *p++;
	}
	keyword[n] = '\0';

	/* esmtp-value = 1*(%d33-60 / %d62-126): printable, no '=' or space */
	n = 0;
	if (*p == '=') {
		p++;
		while (*p > 32 && *p < 127 && *p != '=') {
			if (n == ADDRESS_PARAM_VALUE_MAX)
				return -1;
			value[n++] = *p++;
		}
		if (n == 0)
			return -1;
	}
	value[n] = '\0';
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	*params = p;
	return 1;
}

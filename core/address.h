/*
 * address.h - the arguments of MAIL FROM and RCPT TO (RFC 5321 4.1.2):
 * a reverse- or forward-path, then ESMTP parameters.
 *
 * Accepted: "<local@domain>", the null path "<>" (MAIL only),
 * "<postmaster>" without a domain (RCPT only), and a source route
 * "<@a,@b:local@domain>", whose route is dropped (RFC 5321 appendix C).
 * As Exim 4.96 does, spaces between the colon and the path and an
 * address without angle brackets are accepted too. The local part is
 * a dot-string of atext or a quoted string (which may hold spaces and
 * backslash escapes), and the domain is a dot-separated list of
 * letter-digit-hyphen labels, or an address literal ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]") when the caller allows literals, as Exim's
 * allow_domain_literals does.
 *
 * With ADDRESS_ALLOW_UTF8 (the SMTPUTF8 parameter, RFC 6531 section 3.3),
 * the local part and the domain labels may also hold UTF-8 characters;
 * they must be well-formed, and lengths stay counted in octets.
 *
 * Rejected with a reason: control characters, bytes over 127 that are
 * not allowed UTF-8, an unclosed quote or angle bracket, a malformed
 * literal, a local part over 64 octets, a domain over 255 octets or with
 * a label over 63. NUL bytes never get here: the command reader rejects
 * a line that holds one.
 *
 * Nothing here allocates: results go into caller buffers and error
 * texts are static strings.
 */
#ifndef SLUICE_ADDRESS_H
#define SLUICE_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1: a local part is at most 64 octets, a domain 255 and
 * each of its labels 63, a path at most 256 octets with its angle
 * brackets, so an address at most 254. */
#define ADDRESS_MAX		254
#define ADDRESS_LOCAL_PART_MAX	64
#define ADDRESS_DOMAIN_MAX	255
#define ADDRESS_LABEL_MAX	63
#define ADDRESS_SIZE		(ADDRESS_MAX + 1)

/* ESMTP parameter parts (RFC 5321 4.1.2 esmtp-keyword, esmtp-value). */
#define ADDRESS_PARAM_KEYWORD_MAX	32
/* RFC 3461 section 4.2: an ORCPT value is at most 500 characters, the
 * longest value any supported parameter takes. */
#define ADDRESS_PARAM_VALUE_MAX		500

enum address_role {
	ADDRESS_SENDER,		/* MAIL FROM: the null path is allowed */
	ADDRESS_RECIPIENT,	/* RCPT TO: "<postmaster>" is allowed */
};

struct address_path {
	/* "local@domain" as received (quotes kept), "" for the null path,
	 * or "postmaster" for a bare <postmaster>. */
	char address[ADDRESS_SIZE];
	/* Offset of the domain in address, or 0 when there is none. */
	size_t domain;
	/* The address contains UTF-8 characters beyond ASCII. */
	bool utf8;
	/* ESMTP parameters after the path, leading spaces skipped; points
	 * into the parsed argument. */
	const char *params;
};

/*
 * Parses the argument after "MAIL FROM:" or "RCPT TO:" (a NUL-terminated
 * string). allow_literals admits address literals as the domain. Returns
 * 0 with *out filled, or -1 with *error set to a static text that
 * follows "<address>: " in a 501 reply (Exim's wording where Exim has
 * one, e.g. "domain missing or malformed"); the address part of that
 * reply is in out->address, cut to fit, with bytes outside printable
 * ASCII shown as '?'.
 */
int address_parse_path(const char *arg, enum address_role role,
    bool allow_literals, struct address_path *out, const char **error);

/* Flags of address_parse_path_flags(). */
enum address_parse_flag {
	ADDRESS_ALLOW_LITERALS	= 1u << 0,	/* Exim's allow_domain_literals */
	ADDRESS_ALLOW_UTF8	= 1u << 1,	/* SMTPUTF8 was offered */
};

/* Like address_parse_path(), with enum address_parse_flag bits. */
int address_parse_path_flags(const char *arg, enum address_role role,
    unsigned flags, struct address_path *out, const char **error);

/* Length (2 to 4) of the well-formed UTF-8 sequence of one non-ASCII
 * character at the start of the NUL-terminated p, or 0 if there is none. */
size_t address_utf8_char_len(const char *p);

/* True if the NUL-terminated text is well-formed UTF-8. */
bool address_utf8_valid(const char *text);

/* Domain of a parsed path, or "" when it has none. */
const char *address_domain(const struct address_path *path);

/*
 * Writes the local part of a parsed path into buf (size bytes, at least
 * ADDRESS_SIZE for any path), with the quotes of a quoted local part and
 * its backslash escapes removed: "a\"b c"@x gives a"b c. This is the
 * form policy checks look at. Returns its length.
 */
size_t address_local_part(const struct address_path *path, char *buf,
    size_t size);

/*
 * Takes the next "KEYWORD[=VALUE]" from *params and advances *params
 * past it and the spaces after it. Returns 1 with keyword and value
 * (value "" when absent) copied, 0 at the end, or -1 when the next item
 * is malformed or too long, with *params unchanged.
 */
int address_param_next(const char **params,
    char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1],
    char value[ADDRESS_PARAM_VALUE_MAX + 1]);

/* True if domain[0..len) is a syntactically valid domain name (labels of
 * letters, digits and inner hyphens, within the length limits). */
bool address_domain_valid(const char *domain, size_t len);

/* True if text[0..len) is a valid address literal with its brackets:
 * "[IPv4]" or "[IPv6:address]" (RFC 5321 4.1.3). */
bool address_literal_valid(const char *text, size_t len);

#endif

/*
 * spool_header_options.c - the option lines of a -H file (see
 * spool_header.h): "-name", "-name value" or "--name value", where "--"
 * marks tainted data, and ACL variables whose values follow on their own
 * lines. Options sluice does not model are kept verbatim.
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

/* An option line split up: "-name value" or "--name value", where "--"
 * marks tainted data and may be followed by "(quoter)". */
struct option {
	struct span line;	/* the whole line */
	struct span name;
	struct span value;
	bool has_value;		/* a space followed the name */
	bool tainted;
};

#define FIELD(member) offsetof(struct spool_header, member)
#define MEMBER(h, type, offset) ((type *)(void *)((char *)(h) + (offset)))

static const struct {
	const char *name;
	size_t offset;		/* of the char * member */
	unsigned taint_bit;
} string_options[] = {
	{ "helo_name", FIELD(helo_name), SPOOL_TAINT_HELO_NAME },
	{ "host_name", FIELD(host_name), SPOOL_TAINT_HOST_NAME },
	{ "host_auth", FIELD(host_auth), SPOOL_TAINT_HOST_AUTH },
	{ "received_protocol", FIELD(received_protocol),
	    SPOOL_TAINT_RECEIVED_PROTOCOL },
	{ "auth_id", FIELD(auth_id), SPOOL_TAINT_AUTH_ID },
	{ "auth_sender", FIELD(auth_sender), SPOOL_TAINT_AUTH_SENDER },
	{ "tls_cipher", FIELD(tls_cipher), SPOOL_TAINT_TLS_CIPHER },
	{ "dsn_envid", FIELD(dsn_envid), SPOOL_TAINT_DSN_ENVID },
};

static const struct {
	const char *name;
	size_t offset;		/* of the bool member */
} flag_options[] = {
	{ "deliver_firsttime", FIELD(deliver_firsttime) },
	{ "manual_thaw", FIELD(manual_thaw) },
	{ "N", FIELD(dont_deliver) },
	{ "local", FIELD(local) },
	{ "localerror", FIELD(local_error) },
	{ "sender_set_untrusted", FIELD(sender_set_untrusted) },
	{ "tls_certificate_verified", FIELD(tls_certificate_verified) },
	{ "spool_file_wireformat", FIELD(spool_file_wireformat) },
	{ "smtputf8", FIELD(smtputf8) },
};

static const struct {
	const char *name;
	size_t offset;		/* of the int member */
} number_options[] = {
	{ "body_linecount", FIELD(body_linecount) },
	{ "max_received_linelength", FIELD(max_received_linelength) },
	{ "body_zerocount", FIELD(body_zerocount) },
	{ "dsn_ret", FIELD(dsn_ret) },
};

static int
split_option(struct reader *r, const struct span *line, struct option *opt)
{
	const char *p = line->s + 1, *end = line->s + line->len;
	const char *space;

	memset(opt, 0, sizeof(*opt));
	opt->line = *line;
	if (p < end && *p == '-') {
		opt->tainted = true;
		p++;
		/* The quoter matters only to Exim's lookups, so it is
		 * dropped. */
		if (p < end && *p == '(') {
			const char *close = memchr(p, ')', (size_t)(end - p));

			if (close == NULL)
				return parse_fail(r, "option line has an "
				    "unterminated \"(quoter)\"");
			p = close + 1;
		}
	}
	space = memchr(p, ' ', (size_t)(end - p));
	opt->name.s = p;
	opt->name.len = (size_t)((space != NULL ? space : end) - p);
	opt->value.s = end;	/* empty, but never NULL for memchr() */
	if (space != NULL) {
		opt->has_value = true;
		opt->value.s = space + 1;
		opt->value.len = (size_t)(end - space - 1);
	}
	return 0;
}

/* Parses "[ip]:port", or the old "ip.port". */
static int
parse_address_option(struct reader *r, const struct option *opt,
    char **address, int *port)
{
	const char *v = opt->value.s, *end = v + opt->value.len;
	const char *addr_end, *port_start;
	int64_t number;

	if (opt->value.len > 0 && v[0] == '[') {
		addr_end = memchr(v, ']', opt->value.len);
		if (addr_end == NULL || addr_end + 1 == end ||
		    addr_end[1] != ':')
			goto invalid;
		v++;
		port_start = addr_end + 2;
	} else {
		addr_end = NULL;
		for (const char *p = end; p > v; p--) {
			if (p[-1] == '.') {
				addr_end = p - 1;
				break;
			}
		}
		if (addr_end == NULL)
			goto invalid;
		port_start = addr_end + 1;
	}
	if (addr_end == v || addr_end - v > 255 ||
	    memchr(v, ' ', (size_t)(addr_end - v)) != NULL ||
	    memchr(v, '[', (size_t)(addr_end - v)) != NULL ||
	    memchr(v, ']', (size_t)(addr_end - v)) != NULL ||
	    !parse_number(port_start, (size_t)(end - port_start), 0, 65535,
	    &number))
		goto invalid;
	free(*address);
	*address = xstrndup(v, (size_t)(addr_end - v));
	*port = (int)number;
	return 0;

invalid:
	return parse_fail(r, "-%.*s is not \"[address]:port\"",
	    (int)opt->name.len, opt->name.s);
}

/* Reads "<seconds>.<microseconds>" or, with seconds NULL, ".<usec>". */
static bool
parse_time_value(const struct span *value, int64_t *seconds, int *usec)
{
	const char *dot = memchr(value->s, '.', value->len);
	size_t fraction_len;
	int64_t number;

	if (dot == NULL || (seconds == NULL && dot != value->s))
		return false;
	if (seconds != NULL && !parse_number(value->s,
	    (size_t)(dot - value->s), 0, INT64_MAX, seconds))
		return false;
	fraction_len = value->len - (size_t)(dot - value->s) - 1;
	if (fraction_len > 6 ||
	    !parse_number(dot + 1, fraction_len, 0, 999999, &number))
		return false;
	*usec = (int)number;
	return true;
}

static int
check_options_count(struct reader *r, const struct spool_header *h)
{
	if (h->acl_vars_count + h->unknown_options_count >
	    SPOOL_HEADER_OPTIONS_MAX)
		return parse_fail(r, "more than %d ACL variables and unknown "
		    "options", SPOOL_HEADER_OPTIONS_MAX);
	return 0;
}

/*
 * Parses "-aclc <rest> <len>" or "-aclm <rest> <len>", and the old "-acl
 * <n> <len>" where n 0-9 is acl_c<n> and 10-19 is acl_m<n-10>. The value
 * follows on the next line(s): exactly len bytes, then a newline.
 */
static int
parse_acl_option(struct reader *r, struct spool_header *h,
    const struct option *opt)
{
	const char *space = memchr(opt->value.s, ' ', opt->value.len);
	struct spool_acl_var *var;
	char *name, *value;
	int64_t len, index;
	size_t rest_len;

	if (!opt->has_value || space == NULL)
		goto invalid;
	rest_len = (size_t)(space - opt->value.s);
	if (!parse_number(space + 1, opt->value.len - rest_len - 1, 0,
	    SPOOL_HEADER_ACL_VALUE_MAX, &len))
		return parse_fail(r, "ACL variable length is invalid or above "
		    "%d", SPOOL_HEADER_ACL_VALUE_MAX);
	if (span_is(&opt->name, "acl")) {
		if (!parse_number(opt->value.s, rest_len, 0, 19, &index))
			goto invalid;
		name = xasprintf("acl_%c%d", index < 10 ? 'c' : 'm',
		    (int)(index % 10));
	} else {
		if (rest_len > SPOOL_HEADER_ACL_NAME_MAX)
			goto invalid;
		name = xasprintf("acl_%c%.*s", opt->name.s[3], (int)rest_len,
		    opt->value.s);
	}

	if (r->len - r->pos < (size_t)len + 1) {
		parse_fail(r, "value of %s runs past the end of the file",
		    name);
		free(name);
		return -1;
	}
	if (r->data[r->pos + (size_t)len] != '\n' ||
	    memchr(r->data + r->pos, '\0', (size_t)len) != NULL) {
		parse_fail(r, "value of %s is not %lld bytes followed by a "
		    "newline", name, (long long)len);
		free(name);
		return -1;
	}
	value = xstrndup(r->data + r->pos, (size_t)len);
	var = spool_header_set_acl(h, name, value);
	free(name);
	free(value);
	if (var == NULL)
		goto invalid;
	var->tainted = opt->tainted;
	r->lines_done += count_newlines(r->data + r->pos, (size_t)len) + 1;
	r->pos += (size_t)len + 1;
	return check_options_count(r, h);

invalid:
	return parse_fail(r, "-%.*s line is not \"-%.*s <name> <length>\" "
	    "with a valid name", (int)opt->name.len, opt->name.s,
	    (int)opt->name.len, opt->name.s);
}

/* Parses the options that have a form of their own. Returns 1 if opt is
 * not one of them. */
static int
parse_special_option(struct reader *r, struct spool_header *h,
    const struct option *opt)
{
	const struct span *name = &opt->name;

	if (span_is(name, "aclc") || span_is(name, "aclm") ||
	    span_is(name, "acl"))
		return parse_acl_option(r, h, opt);
	if (span_is(name, "host_address")) {
		if (parse_address_option(r, opt, &h->host_address,
		    &h->host_port) != 0)
			return -1;
		h->tainted &= ~SPOOL_TAINT_HOST_ADDRESS;
		if (opt->tainted)
			h->tainted |= SPOOL_TAINT_HOST_ADDRESS;
		return 0;
	}
	if (span_is(name, "interface_address")) {
		if (parse_address_option(r, opt, &h->interface_address,
		    &h->interface_port) != 0)
			return -1;
		h->tainted &= ~SPOOL_TAINT_INTERFACE_ADDRESS;
		if (opt->tainted)
			h->tainted |= SPOOL_TAINT_INTERFACE_ADDRESS;
		return 0;
	}
	if (span_is(name, "received_time_usec")) {
		if (!parse_time_value(&opt->value, NULL,
		    &h->received_time_usec))
			return parse_fail(r, "-received_time_usec is not "
			    "\".<microseconds>\"");
		return 0;
	}
	if (span_is(name, "received_time_complete")) {
		if (!parse_time_value(&opt->value, &h->received_time_complete,
		    &h->received_time_complete_usec))
			return parse_fail(r, "-received_time_complete is not "
			    "\"<seconds>.<microseconds>\"");
		return 0;
	}
	if (span_is(name, "frozen")) {
		if (!parse_number(opt->value.s, opt->value.len, 0, INT64_MAX,
		    &h->frozen_at))
			return parse_fail(r, "-frozen is not followed by a "
			    "time");
		h->frozen = true;
		return 0;
	}
	return 1;
}

/* Parses string, flag and number options. Returns 1 if opt is not one of
 * them. */
static int
parse_table_option(struct reader *r, struct spool_header *h,
    const struct option *opt)
{
	int64_t number;
	char buf[200];

	for (size_t i = 0; i < ARRAY_SIZE(string_options); i++) {
		char **member;

		if (!span_is(&opt->name, string_options[i].name))
			continue;
		if (!opt->has_value)
			return parse_fail(r, "-%s has no value",
			    string_options[i].name);
		member = MEMBER(h, char *, string_options[i].offset);
		free(*member);
		*member = xstrndup(opt->value.s, opt->value.len);
		h->tainted &= ~string_options[i].taint_bit;
		if (opt->tainted)
			h->tainted |= string_options[i].taint_bit;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(flag_options); i++) {
		if (!span_is(&opt->name, flag_options[i].name))
			continue;
		if (opt->has_value)
			return parse_fail(r, "-%s takes no value",
			    flag_options[i].name);
		*MEMBER(h, bool, flag_options[i].offset) = true;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(number_options); i++) {
		if (!span_is(&opt->name, number_options[i].name))
			continue;
		if (!parse_number(opt->value.s, opt->value.len, 0, INT_MAX,
		    &number))
			return parse_fail(r, "-%s value \"%s\" is not a number "
			    "from 0 to %d", number_options[i].name,
			    excerpt(buf, opt->value.s, opt->value.len),
			    INT_MAX);
		*MEMBER(h, int, number_options[i].offset) = (int)number;
		return 0;
	}
	return 1;
}

static int
parse_option_line(struct reader *r, struct spool_header *h,
    const struct span *line)
{
	struct option opt;
	char *copy;
	int rc;

	if (split_option(r, line, &opt) != 0)
		return -1;
	rc = parse_special_option(r, h, &opt);
	if (rc == 1)
		rc = parse_table_option(r, h, &opt);
	if (rc != 1)
		return rc;

	/* Exim skips options it does not know, so that newer versions
	 * can add some. Keeping them lets a rewrite preserve them. */
	copy = xstrndup(line->s, line->len);
	spool_header_add_unknown_option(h, copy);
	free(copy);
	return check_options_count(r, h);
}

/* Reads option lines up to the first line that does not start with '-'
 * (the start of the non-recipients tree), which is left unread. */
int
spool_header_parse_options(struct reader *r, struct spool_header *h)
{
	struct span line;

	for (;;) {
		if (peek_line(r, "an option line or the non-recipients tree",
		    &line) != 0)
			return -1;
		if (line.len == 0 || line.s[0] != '-')
			break;
		consume_line(r, &line);
		if (parse_option_line(r, h, &line) != 0)
			return -1;
	}
	/* Exim does not write a line count for a wire-format body. */
	if (h->spool_file_wireformat)
		h->body_linecount = 0;
	return 0;
}

/*
 * smtp_server_params.c - the ESMTP parameters of MAIL FROM and RCPT TO
 * (see smtp_server_params.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_server_params.h"
#include "util.h"

bool
smtp_params_xtext_valid(const char *text)
{
	const char *p = text;

	if (*p == '\0')
		return false;
	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c == '+') {
			/* hexchar: '+' and two upper-case hex digits. */
			for (int i = 1; i <= 2; i++)
				if (!isdigit((unsigned char)p[i]) &&
				    (p[i] < 'A' || p[i] > 'F'))
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

bool
smtp_params_orcpt_valid(const char *text)
{
	size_t type_len = strcspn(text, ";");

	if (type_len == 0 || text[type_len] != ';')
		return false;
	for (size_t i = 0; i < type_len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (!isalnum(c) && strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
			return false;
	}
	return smtp_params_xtext_valid(text + type_len + 1);
}

/* Sets *bits from a NOTIFY value: NEVER alone, or a comma-separated list
 * of SUCCESS, FAILURE and DELAY (RFC 3461 section 4.1). Returns false for
 * anything else, an empty item included. */
static bool
smtp_params_notify(const char *value, unsigned *bits)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "SUCCESS", SMTP_DSN_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_DSN_NOTIFY_FAILURE },
		{ "DELAY", SMTP_DSN_NOTIFY_DELAY },
	};
	const char *p = value;

	*bits = 0;
	if (strcasecmp(value, "NEVER") == 0) {
		*bits = SMTP_DSN_NOTIFY_NEVER;
		return true;
	}
	for (;;) {
		size_t len = strcspn(p, ",");
		unsigned bit = 0;

		for (size_t i = 0; i < ARRAY_SIZE(words); i++)
			if (strlen(words[i].name) == len &&
			    strncasecmp(p, words[i].name, len) == 0)
				bit = words[i].bit;
		if (bit == 0)
			return false;
		*bits |= bit;
		if (p[len] == '\0')
			return true;
		p += len + 1;
	}
}

/* Writes the reply for a parameter the session did not offer, or one
 * that is malformed (rc -1 from address_param_next()). */
static int
smtp_params_unknown(int rc, const char *keyword,
    char reply[SMTP_PARAMS_REPLY_SIZE])
{
	if (rc < 0)
		snprintf(reply, SMTP_PARAMS_REPLY_SIZE,
		    "501 malformed parameter after the address");
	else
		snprintf(reply, SMTP_PARAMS_REPLY_SIZE,
		    "555 %s: parameter not recognized", keyword);
	return -1;
}

static int
smtp_params_fail(char reply[SMTP_PARAMS_REPLY_SIZE], const char *text)
{
	snprintf(reply, SMTP_PARAMS_REPLY_SIZE, "%s", text);
	return -1;
}

/* Handles one MAIL parameter. Returns 1 if keyword is not one that offer
 * allows, 0 when it was taken, -1 with reply written. */
static int
smtp_params_mail_one(const char *keyword, const char *value,
    const struct smtp_params_offer *offer, struct smtp_mail_params *out,
    char reply[SMTP_PARAMS_REPLY_SIZE])
{
	unsigned long long size;

	if (offer->esmtp && strcasecmp(keyword, "SIZE") == 0) {
		if (parse_uint(value, UINT64_MAX, &size) < 0)
			return smtp_params_fail(reply,
			    "501 SIZE requires a decimal number of octets");
		out->size = size;
	} else if (offer->auth && strcasecmp(keyword, "AUTH") == 0) {
		/* RFC 4954 section 5: the submitter's identity, which is
		 * not trusted, so it is accepted and not kept. */
	} else if (offer->esmtp && strcasecmp(keyword, "BODY") == 0) {
		if (strcasecmp(value, "7BIT") != 0 &&
		    strcasecmp(value, "8BITMIME") != 0)
			return smtp_params_fail(reply,
			    "501 BODY must be 7BIT or 8BITMIME");
	} else if (offer->smtputf8 && strcasecmp(keyword, "SMTPUTF8") == 0) {
		if (value[0] != '\0')
			return smtp_params_fail(reply,
			    "501 SMTPUTF8 takes no value");
		out->smtputf8 = true;
	} else if (offer->dsn && strcasecmp(keyword, "RET") == 0) {
		if (out->dsn_ret != SMTP_DSN_RET_NONE)
			return smtp_params_fail(reply,
			    "501 RET can be specified once only");
		if (strcasecmp(value, "FULL") == 0)
			out->dsn_ret = SMTP_DSN_RET_FULL;
		else if (strcasecmp(value, "HDRS") == 0)
			out->dsn_ret = SMTP_DSN_RET_HDRS;
		else
			return smtp_params_fail(reply,
			    "501 Value for RET is invalid");
	} else if (offer->dsn && strcasecmp(keyword, "ENVID") == 0) {
		if (out->envid[0] != '\0')
			return smtp_params_fail(reply,
			    "501 ENVID can be specified once only");
		if (strlen(value) > SMTP_PARAMS_ENVID_MAX)
			return smtp_params_fail(reply,
			    "501 ENVID is longer than 100 characters");
		if (!smtp_params_xtext_valid(value))
			return smtp_params_fail(reply,
			    "501 Value for ENVID is not valid xtext");
		strlcpy_s(out->envid, value, sizeof(out->envid));
	} else {
		return 1;
	}
	return 0;
}

int
smtp_params_parse_mail(const char *params,
    const struct smtp_params_offer *offer, struct smtp_mail_params *out,
    char reply[SMTP_PARAMS_REPLY_SIZE])
{
	char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1];
	char value[ADDRESS_PARAM_VALUE_MAX + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = address_param_next(&params, keyword, value)) == 1) {
		rc = smtp_params_mail_one(keyword, value, offer, out, reply);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return smtp_params_unknown(1, keyword, reply);
	}
	if (rc < 0)
		return smtp_params_unknown(-1, keyword, reply);
	return 0;
}

int
smtp_params_parse_rcpt(const char *params,
    const struct smtp_params_offer *offer, struct smtp_rcpt_params *out,
    char reply[SMTP_PARAMS_REPLY_SIZE])
{
	char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1];
	char value[ADDRESS_PARAM_VALUE_MAX + 1];
	bool have_notify = false;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = address_param_next(&params, keyword, value)) == 1) {
		if (offer->dsn && strcasecmp(keyword, "NOTIFY") == 0) {
			if (have_notify)
				return smtp_params_fail(reply,
				    "501 NOTIFY can be specified once only");
			if (!smtp_params_notify(value, &out->dsn_notify))
				return smtp_params_fail(reply,
				    "501 Invalid value for NOTIFY parameter");
			have_notify = true;
		} else if (offer->dsn && strcasecmp(keyword, "ORCPT") == 0) {
			if (out->orcpt[0] != '\0')
				return smtp_params_fail(reply,
				    "501 ORCPT can be specified once only");
			if (!smtp_params_orcpt_valid(value))
				return smtp_params_fail(reply, "501 Value for "
				    "ORCPT is not addr-type;xtext");
			strlcpy_s(out->orcpt, value, sizeof(out->orcpt));
		} else {
			return smtp_params_unknown(1, keyword, reply);
		}
	}
	if (rc < 0)
		return smtp_params_unknown(-1, keyword, reply);
	return 0;
}

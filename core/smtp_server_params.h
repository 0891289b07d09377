/*
 * smtp_server_params.h - the ESMTP parameters that the SMTP server takes
 * after the path of MAIL FROM and RCPT TO: SIZE (RFC 1870), BODY
 * (RFC 6152), AUTH (RFC 4954), SMTPUTF8 (RFC 6531) and the DSN
 * parameters RET, ENVID, NOTIFY and ORCPT (RFC 3461).
 *
 * A parameter is accepted only when the extension that defines it was
 * offered in the session's EHLO reply (struct smtp_params_offer). The
 * parsers are pure functions: they fill the caller's struct, or write a
 * complete reply (code and text, no CRLF) into the caller's buffer. The
 * DSN replies use Exim 4.96's wording; Exim does not check xtext, so
 * those replies are sluice's own.
 *
 * Limits: ENVID 100 characters (RFC 3461 section 4.4), ORCPT 500
 * (section 4.2), every other value ADDRESS_PARAM_VALUE_MAX.
 */
#ifndef SLUICE_SMTP_SERVER_PARAMS_H
#define SLUICE_SMTP_SERVER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"

#define SMTP_PARAMS_ENVID_MAX	100
#define SMTP_PARAMS_ORCPT_MAX	ADDRESS_PARAM_VALUE_MAX
/* Room for any reply the parsers write. */
#define SMTP_PARAMS_REPLY_SIZE	(ADDRESS_PARAM_KEYWORD_MAX + 96)

/* NOTIFY bits, with the values of Exim's rf_notify_* flags because the
 * -H file stores them as a number. */
enum smtp_dsn_notify {
	SMTP_DSN_NOTIFY_NEVER	= 0x02,
	SMTP_DSN_NOTIFY_SUCCESS	= 0x04,
	SMTP_DSN_NOTIFY_FAILURE	= 0x08,
	SMTP_DSN_NOTIFY_DELAY	= 0x10,
};

/* RET values, numbered as Exim's -dsn_ret line stores them. */
enum smtp_dsn_ret {
	SMTP_DSN_RET_NONE	= 0,
	SMTP_DSN_RET_FULL	= 1,
	SMTP_DSN_RET_HDRS	= 2,
};

/* Extensions the EHLO reply offered; a HELO session offers none. */
struct smtp_params_offer {
	bool esmtp;		/* EHLO was used: SIZE and BODY */
	bool auth;		/* AUTH was offered, or the client is
				 * authenticated: AUTH= */
	bool dsn;		/* RET, ENVID, NOTIFY, ORCPT */
	bool smtputf8;		/* SMTPUTF8 */
};

struct smtp_mail_params {
	uint64_t size;		/* SIZE=, 0 if none */
	bool smtputf8;
	enum smtp_dsn_ret dsn_ret;
	char envid[SMTP_PARAMS_ENVID_MAX + 1];	/* xtext as sent; "" if none */
};

struct smtp_rcpt_params {
	unsigned dsn_notify;	/* enum smtp_dsn_notify bits, 0 if none */
	char orcpt[SMTP_PARAMS_ORCPT_MAX + 1];	/* as sent; "" if none */
};

/*
 * Parses the parameters after MAIL's path (params as address_parse_path()
 * leaves them). Returns 0 with *out filled, or -1 with the reply to send
 * in reply.
 */
int smtp_params_parse_mail(const char *params,
    const struct smtp_params_offer *offer, struct smtp_mail_params *out,
    char reply[SMTP_PARAMS_REPLY_SIZE]);

/* The same for RCPT's parameters. */
int smtp_params_parse_rcpt(const char *params,
    const struct smtp_params_offer *offer, struct smtp_rcpt_params *out,
    char reply[SMTP_PARAMS_REPLY_SIZE]);

/* True if text is non-empty xtext (RFC 3461 section 4): printable ASCII
 * other than '+' and '=', and "+XX" with two upper-case hex digits. */
bool smtp_params_xtext_valid(const char *text);

/* True if text is a valid ORCPT value: an address type (an atom such as
 * "rfc822"), ';', then non-empty xtext (RFC 3461 section 4.2). */
bool smtp_params_orcpt_valid(const char *text);

#endif

/*
 * log_selector.c - Exim's log_selector setting (see log.h).
 *
 * The selectors are one atomic word, so every thread can test them while
 * a reload sets new ones.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "util.h"

_Static_assert(LOG_SEL_COUNT <= 64, "log selectors must fit in 64 bits");

#define SEL_BIT(sel)	(UINT64_C(1) << (sel))
#define SEL_ALL		(UINT64_MAX >> (64 - LOG_SEL_COUNT))

/* Exim's defaults, from log_default[] in Exim's src/src/globals.c.
 * outgoing_interface and queue_time_exclusive change nothing alone,
 * because I= on deliveries also needs incoming_interface and the caller
 * measures queue times. */
#define SEL_DEFAULT ( \
	SEL_BIT(LOG_SEL_ACL_WARN_SKIPPED) | \
	SEL_BIT(LOG_SEL_CONNECTION_REJECT) | \
	SEL_BIT(LOG_SEL_DELAY_DELIVERY) | \
	SEL_BIT(LOG_SEL_DKIM) | \
	SEL_BIT(LOG_SEL_DNSLIST_DEFER) | \
	SEL_BIT(LOG_SEL_ETRN) | \
	SEL_BIT(LOG_SEL_HOST_LOOKUP_FAILED) | \
	SEL_BIT(LOG_SEL_LOST_INCOMING_CONNECTION) | \
	SEL_BIT(LOG_SEL_MSG_ID) | \
	SEL_BIT(LOG_SEL_OUTGOING_INTERFACE) | \
	SEL_BIT(LOG_SEL_QUEUE_RUN) | \
	SEL_BIT(LOG_SEL_QUEUE_TIME_EXCLUSIVE) | \
	SEL_BIT(LOG_SEL_REJECTED_HEADER) | \
	SEL_BIT(LOG_SEL_RETRY_DEFER) | \
	SEL_BIT(LOG_SEL_SENDER_VERIFY_FAIL) | \
	SEL_BIT(LOG_SEL_SIZE_REJECT) | \
	SEL_BIT(LOG_SEL_SKIP_DELIVERY) | \
	SEL_BIT(LOG_SEL_SMTP_CONFIRMATION) | \
	SEL_BIT(LOG_SEL_TLS_CERTIFICATE_VERIFIED) | \
	SEL_BIT(LOG_SEL_TLS_CIPHER))

#define SELECTOR_NAME_MAX	32

static const struct {
	const char *name;
	enum log_sel sel;
} selector_names[] = {
	{ "8bitmime", LOG_SEL_8BITMIME },
	{ "acl_warn_skipped", LOG_SEL_ACL_WARN_SKIPPED },
	{ "address_rewrite", LOG_SEL_ADDRESS_REWRITE },
	{ "all_parents", LOG_SEL_ALL_PARENTS },
	{ "arguments", LOG_SEL_ARGUMENTS },
	{ "connection_id", LOG_SEL_CONNECTION_ID },
	{ "connection_reject", LOG_SEL_CONNECTION_REJECT },
	{ "delay_delivery", LOG_SEL_DELAY_DELIVERY },
	{ "deliver_time", LOG_SEL_DELIVER_TIME },
	{ "delivery_size", LOG_SEL_DELIVERY_SIZE },
	{ "dkim", LOG_SEL_DKIM },
	{ "dkim_verbose", LOG_SEL_DKIM_VERBOSE },
	{ "dmarc", LOG_SEL_DMARC },
	{ "dmarc_verbose", LOG_SEL_DMARC_VERBOSE },
	{ "dnslist_defer", LOG_SEL_DNSLIST_DEFER },
	{ "dnssec", LOG_SEL_DNSSEC },
	{ "dsn", LOG_SEL_DSN },
	{ "etrn", LOG_SEL_ETRN },
	{ "host_lookup_failed", LOG_SEL_HOST_LOOKUP_FAILED },
	{ "ident_timeout", LOG_SEL_IDENT_TIMEOUT },
	{ "incoming_interface", LOG_SEL_INCOMING_INTERFACE },
	{ "incoming_port", LOG_SEL_INCOMING_PORT },
	{ "lost_incoming_connection", LOG_SEL_LOST_INCOMING_CONNECTION },
	{ "millisec", LOG_SEL_MILLISEC },
	{ "msg_id", LOG_SEL_MSG_ID },
	{ "msg_id_created", LOG_SEL_MSG_ID_CREATED },
	{ "outgoing_interface", LOG_SEL_OUTGOING_INTERFACE },
	{ "outgoing_port", LOG_SEL_OUTGOING_PORT },
	{ "pid", LOG_SEL_PID },
	{ "pipelining", LOG_SEL_PIPELINING },
	{ "protocol_detail", LOG_SEL_PROTOCOL_DETAIL },
	{ "proxy", LOG_SEL_PROXY },
	{ "queue_run", LOG_SEL_QUEUE_RUN },
	{ "queue_time", LOG_SEL_QUEUE_TIME },
	{ "queue_time_exclusive", LOG_SEL_QUEUE_TIME_EXCLUSIVE },
	{ "queue_time_overall", LOG_SEL_QUEUE_TIME_OVERALL },
	{ "receive_time", LOG_SEL_RECEIVE_TIME },
	{ "received_recipients", LOG_SEL_RECEIVED_RECIPIENTS },
	{ "received_sender", LOG_SEL_RECEIVED_SENDER },
	{ "rejected_header", LOG_SEL_REJECTED_HEADER },
	{ "rejected_headers", LOG_SEL_REJECTED_HEADER },  /* Exim's alias */
	{ "retry_defer", LOG_SEL_RETRY_DEFER },
	{ "return_path_on_delivery", LOG_SEL_RETURN_PATH_ON_DELIVERY },
	{ "sender_on_delivery", LOG_SEL_SENDER_ON_DELIVERY },
	{ "sender_verify_fail", LOG_SEL_SENDER_VERIFY_FAIL },
	{ "size_reject", LOG_SEL_SIZE_REJECT },
	{ "skip_delivery", LOG_SEL_SKIP_DELIVERY },
	{ "smtp_confirmation", LOG_SEL_SMTP_CONFIRMATION },
	{ "smtp_connection", LOG_SEL_SMTP_CONNECTION },
	{ "smtp_incomplete_transaction", LOG_SEL_SMTP_INCOMPLETE_TRANSACTION },
	{ "smtp_mailauth", LOG_SEL_SMTP_MAILAUTH },
	{ "smtp_no_mail", LOG_SEL_SMTP_NO_MAIL },
	{ "smtp_protocol_error", LOG_SEL_SMTP_PROTOCOL_ERROR },
	{ "smtp_syntax_error", LOG_SEL_SMTP_SYNTAX_ERROR },
	{ "spf", LOG_SEL_SPF },
	{ "spf_verbose", LOG_SEL_SPF_VERBOSE },
	{ "subject", LOG_SEL_SUBJECT },
	{ "tls_certificate_verified", LOG_SEL_TLS_CERTIFICATE_VERIFIED },
	{ "tls_cipher", LOG_SEL_TLS_CIPHER },
	{ "tls_on_connect", LOG_SEL_TLS_ON_CONNECT },
	{ "tls_peerdn", LOG_SEL_TLS_PEERDN },
	{ "tls_resumption", LOG_SEL_TLS_RESUMPTION },
	{ "tls_sni", LOG_SEL_TLS_SNI },
	{ "unknown_in_list", LOG_SEL_UNKNOWN_IN_LIST },
};

static _Atomic uint64_t selector_bits = SEL_DEFAULT;

int
log_set_selector(const char *text, char **error)
{
	uint64_t bits = SEL_DEFAULT;
	const char *p = text != NULL ? text : "";

	while (*p != '\0') {
		const char *name;
		size_t len, i;
		bool on;

		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		if (*p != '+' && *p != '-') {
			size_t item_len = strcspn(p, " \t\r\n");

			*error = xasprintf("log_selector: \"%.*s\" must start "
			    "with + or -", item_len > SELECTOR_NAME_MAX ?
			    SELECTOR_NAME_MAX : (int)item_len, p);
			return -1;
		}
		on = *p++ == '+';
		name = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		len = (size_t)(p - name);
		if (len == 0) {
			*error = xasprintf("log_selector: %c must be followed "
			    "by a selector name", on ? '+' : '-');
			return -1;
		}

		if (len == 3 && strncmp(name, "all", 3) == 0) {
			bits = on ? SEL_ALL : 0;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(selector_names); i++) {
			if (strlen(selector_names[i].name) == len &&
			    strncmp(selector_names[i].name, name, len) == 0)
				break;
		}
		if (i == ARRAY_SIZE(selector_names)) {
			*error = xasprintf("log_selector: unknown selector "
			    "\"%.*s\"; use the names of Exim's log "
			    "selectors, such as +subject", len >
			    SELECTOR_NAME_MAX ? SELECTOR_NAME_MAX : (int)len,
			    name);
			return -1;
		}
		if (on)
			bits |= SEL_BIT(selector_names[i].sel);
		else
			bits &= ~SEL_BIT(selector_names[i].sel);
	}
	atomic_store(&selector_bits, bits);
	return 0;
}

bool
log_selected(enum log_sel sel)
{
	SLUICE_ASSERT((unsigned)sel < LOG_SEL_COUNT);
	return (atomic_load_explicit(&selector_bits, memory_order_relaxed) &
	    SEL_BIT(sel)) != 0;
}

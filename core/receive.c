/*
 * receive.c - the spooled form of a received message (see receive.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log_line.h"
#include "receive.h"
#include "util.h"

void
receive_format_date(const struct timeval *tv, char buf[RECEIVE_DATE_SIZE])
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	time_t t = tv->tv_sec;
	struct tm tm;
	long offset;
	int hours, minutes;

	localtime_r(&t, &tm);
	/* Zone offsets are within a day, so the casts cannot overflow. */
	offset = tm.tm_gmtoff / 60;
	hours = (int)(labs(offset) / 60 % 24);
	minutes = (int)(labs(offset) % 60);
	snprintf(buf, RECEIVE_DATE_SIZE, "%s, %02d %s %d %02d:%02d:%02d %c%02d%02d",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    offset < 0 ? '-' : '+', hours, minutes);
}

/* The Received: field for m, with its final newline; caller frees. */
static char *
receive_received_field(const struct config *config,
    const struct receive_message *m)
{
	char date[RECEIVE_DATE_SIZE];
	char *from, *envelope, *recipient, *tls, *field;

	/* Exim's $sender_rcvhost: the verified name first when there is
	 * one, the HELO name only where it adds something. */
	if (m->host_ip == NULL && m->local && m->login != NULL &&
	    m->login[0] != '\0')
		from = xasprintf("from %s ", m->login);	/* Exim's sender_ident */
	else if (m->host_ip == NULL)
		from = xstrdup("");
	else if (m->host_name != NULL && m->helo != NULL &&
	    strcasecmp(m->host_name, m->helo) != 0)
		from = xasprintf("from %s ([%s] helo=%s)\n\t", m->host_name,
		    m->host_ip, m->helo);
	else if (m->host_name != NULL)
		from = xasprintf("from %s ([%s])\n\t", m->host_name, m->host_ip);
	else if (m->helo != NULL)
		from = xasprintf("from [%s] (helo=%s)\n\t", m->host_ip, m->helo);
	else
		from = xasprintf("from [%s]\n\t", m->host_ip);

	envelope = m->sender[0] != '\0' ?
	    xasprintf("\t(envelope-from <%s>)\n", m->sender) : xstrdup("");
	recipient = m->recipient_count == 1 ?
	    xasprintf("\n\tfor %s", m->recipients[0]) : xstrdup("");
	/* Exim's default adds " (version) tls cipher" and a new line
	 * after "with protocol ", hence the two spaces. */
	tls = m->tls_version != NULL && m->tls_standard != NULL ?
	    xasprintf(" (%s) tls %s\n\t", m->tls_version, m->tls_standard) :
	    xstrdup("");
	receive_format_date(&m->completed, date);

	field = xasprintf("Received: %sby %s with %s %s(sluice %s)\n%s\tid "
	    "%s%s;\n\t%s\n", from, config->primary_hostname, m->protocol, tls,
	    PACKAGE_VERSION, envelope, m->id, recipient, date);
	free(tls);
	free(from);
	free(envelope);
	free(recipient);
	return field;
}

/* Length of the field name at the start of text (up to the colon or
 * white space). */
static size_t
receive_field_name_len(const char *text, size_t len)
{
	size_t n = 0;

	while (n < len && text[n] != ':' && text[n] != ' ' && text[n] != '\t')
		n++;
	return n;
}

/* Splits the received header section into fields: a field runs to the
 * newline that is not followed by a folded continuation line. */
static int
receive_add_fields(const struct receive_message *m, struct spool_header *h,
    char **error)
{
	const char *p = m->headers, *end = m->headers + m->headers_len;

	while (p < end) {
		const char *q = p;
		size_t len;

		for (;;) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));

			q = nl != NULL ? nl + 1 : end;
			if (q >= end || (*q != ' ' && *q != '\t'))
				break;
		}
		len = (size_t)(q - p);
		if (len > SPOOL_HEADER_FIELD_MAX) {
			*error = xasprintf("a header field is %zu bytes long, over "
			    "the spool's limit of %d", len, SPOOL_HEADER_FIELD_MAX);
			return -1;
		}
		if (h->fields_count >= SPOOL_HEADER_FIELDS_MAX) {
			*error = xasprintf("the message has more than %d header "
			    "fields", SPOOL_HEADER_FIELDS_MAX);
			return -1;
		}
		if (p[len - 1] != '\n')
			fatal_bug("received header section does not end with a "
			    "newline");
		spool_header_add_field(h,
		    spool_field_flag_for_name(p, receive_field_name_len(p, len)),
		    p, len);
		p = q;
	}
	return 0;
}

static bool
receive_has_field(const struct spool_header *h, const char *name)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < h->fields_count; i++) {
		const struct spool_header_field *f = &h->fields[i];

		if (f->flag != SPOOL_FIELD_DELETED &&
		    receive_field_name_len(f->text, f->len) == name_len &&
		    strncasecmp(f->text, name, name_len) == 0)
			return true;
	}
	return false;
}

void
receive_add_local_fixups(const struct config *config,
    const struct receive_message *m, struct spool_header *h)
{
	char date[RECEIVE_DATE_SIZE];
	char *text;

	if (!receive_has_field(h, "Message-ID")) {
		text = xasprintf("Message-Id: <E%s@%s>\n", m->id,
		    config->primary_hostname);
		spool_header_add_field(h, SPOOL_FIELD_MESSAGE_ID, text,
		    strlen(text));
		free(text);
	}
	if (!receive_has_field(h, "Date")) {
		receive_format_date(&m->completed, date);
		text = xasprintf("Date: %s\n", date);
		spool_header_add_field(h, SPOOL_FIELD_OTHER, text, strlen(text));
		free(text);
	}
}

/*
 * Adds recipient i of m to h with its DSN data. As Exim 4.96 writes -H,
 * a recipient without NOTIFY is written in the plain form, so its ORCPT
 * is not kept.
 * NOTE: a DSN for such a recipient cannot name the ORCPT it was sent
 * with; keeping it would change the -H bytes from Exim's.
 */
static void
receive_add_recipient(const struct receive_message *m, size_t i,
    struct spool_header *h)
{
	struct spool_recipient *r = spool_header_add_recipient(h,
	    m->recipients[i]);
	unsigned notify = m->dsn_notify != NULL ? m->dsn_notify[i] : 0;

	if (notify == 0)
		return;
	r->dsn_flags = (int)notify;
	if (m->orcpts != NULL && m->orcpts[i] != NULL)
		r->orcpt = xstrdup(m->orcpts[i]);
}

/*
 * Adds "-name value" to the option lines that the spool keeps verbatim,
 * after -tls_cipher, where Exim 4.96 writes -tls_peerdn and -tls_sni.
 * A value that is NULL, or not printable ASCII, is left out.
 */
static void
receive_add_tls_option(struct spool_header *h, const char *name,
    const char *value)
{
	char *line;

	if (value == NULL || value[0] == '\0')
		return;
	for (const char *p = value; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			return;
	line = xasprintf("-%s %s", name, value);
	spool_header_add_unknown_option(h, line);
	free(line);
}

int
receive_build_header(const struct config *config,
    const struct receive_message *m, struct spool_header *h, char **error)
{
	char *received;

	memcpy(h->id, m->id, strlen(m->id) + 1);
	h->login = xstrdup(m->login != NULL ? m->login : "");
	h->uid = m->uid;
	h->gid = m->gid;
	h->sender = xstrdup(m->sender);
	h->received_time = m->received.tv_sec;
	h->received_time_usec = (int)m->received.tv_usec;
	h->received_time_complete = m->completed.tv_sec;
	h->received_time_complete_usec = (int)m->completed.tv_usec;

	if (m->helo != NULL) {
		h->helo_name = xstrdup(m->helo);
		h->tainted |= SPOOL_TAINT_HELO_NAME;
	}
	if (m->host_ip != NULL) {
		h->host_address = xstrdup(m->host_ip);
		h->host_port = m->host_port;
	}
	if (m->host_name != NULL)
		h->host_name = xstrdup(m->host_name);
	if (m->interface_ip != NULL) {
		h->interface_address = xstrdup(m->interface_ip);
		h->interface_port = m->interface_port;
	}
	h->received_protocol = xstrdup(m->protocol);
	if (m->auth_id != NULL) {
		/* Exim's -host_auth names the driver, which for PLAIN and
		 * LOGIN is "plaintext". */
		h->host_auth = xstrdup("plaintext");
		h->auth_id = xstrdup(m->auth_id);
	}
	h->body_linecount = m->body_lines > INT32_MAX ? INT32_MAX :
	    (int)m->body_lines;
	h->max_received_linelength = m->max_line_len > INT32_MAX ? INT32_MAX :
	    (int)m->max_line_len;
	h->body_zerocount = m->body_zeros > INT32_MAX ? INT32_MAX :
	    (int)m->body_zeros;
	h->local = m->local;
	h->deliver_firsttime = true;

	if (m->tls_cipher != NULL) {
		h->tls_cipher = xstrdup(m->tls_cipher);
		h->tls_certificate_verified = m->tls_verified;
		receive_add_tls_option(h, "tls_peerdn", m->tls_peer_dn);
		receive_add_tls_option(h, "tls_sni", m->tls_sni);
	}
	h->smtputf8 = m->smtputf8;
	h->dsn_ret = m->dsn_ret;
	/* Exim 4.96 writes -dsn_envid without the taint mark. */
	if (m->dsn_envid != NULL)
		h->dsn_envid = xstrdup(m->dsn_envid);
	for (size_t i = 0; i < m->recipient_count; i++)
		receive_add_recipient(m, i, h);

	received = receive_received_field(config, m);
	spool_header_add_field(h, SPOOL_FIELD_RECEIVED, received,
	    strlen(received));
	free(received);
	if (receive_add_fields(m, h, error) < 0)
		return -1;
	if (m->local || m->submission)
		receive_add_local_fixups(config, m, h);
	return spool_header_check(h, error);
}

uint64_t
receive_message_size(const struct spool_header *h, uint64_t body_size)
{
	return (uint64_t)spool_header_size(h) + body_size + 1;
}

/*
 * Returns the value of the first live field called name, unfolded, with
 * white space at both ends removed (caller frees), or NULL.
 */
static char *
receive_field_value(const struct spool_header *h, const char *name)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < h->fields_count; i++) {
		const struct spool_header_field *f = &h->fields[i];
		const char *p, *end;
		char *value;
		size_t n = 0;

		if (f->flag == SPOOL_FIELD_DELETED ||
		    receive_field_name_len(f->text, f->len) != name_len ||
		    strncasecmp(f->text, name, name_len) != 0)
			continue;
		if ((p = memchr(f->text, ':', f->len)) == NULL)
			return NULL;
		p++;
		end = f->text + f->len;
		while (p < end && isspace((unsigned char)*p))
			p++;
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		value = xmalloc((size_t)(end - p) + 1);
		for (; p < end; p++) {
			if (*p != '\n')
				value[n++] = *p;
		}
		value[n] = '\0';
		return value;
	}
	return NULL;
}

void
receive_log_arrival(const struct receive_message *m,
    const struct spool_header *h)
{
	struct log_arrival a = { 0 };
	char *message_id = receive_field_value(h, "Message-ID");
	char *subject = receive_field_value(h, "Subject");
	char *id_value = message_id;
	size_t len;

	/* id= carries the Message-ID without its angle brackets. */
	if (message_id != NULL && message_id[0] == '<' &&
	    (len = strlen(message_id)) > 1 && message_id[len - 1] == '>') {
		message_id[len - 1] = '\0';
		id_value = message_id + 1;
	}

	a.sender = m->sender;
	a.host.name = m->host_name;
	a.host.helo = m->helo;
	a.host.ip = m->host_ip;
	a.host.port = m->host_port;
	a.interface_ip = m->interface_ip;
	a.interface_port = m->interface_port;
	a.ident = m->host_ip == NULL ? m->login : NULL;
	a.protocol = m->protocol;
	a.tls.cipher = m->tls_cipher;
	if (m->tls_cipher != NULL)
		a.tls.cert = m->tls_verified ? LOG_CERT_VERIFIED :
		    LOG_CERT_UNVERIFIED;
	a.tls.peer_dn = m->tls_peer_dn;
	a.tls.sni = m->tls_sni;
	a.authenticator = m->authenticator;
	a.auth_id = m->auth_id;
	a.chunking = m->chunking;
	a.size = receive_message_size(h, m->body_size);
	a.receive_usec = (int64_t)(m->completed.tv_sec - m->received.tv_sec) *
	    1000000 + (m->completed.tv_usec - m->received.tv_usec);
	a.message_id_header = id_value;
	a.message_id_created = m->local && id_value != NULL &&
	    id_value[0] == 'E' && strncmp(id_value + 1, m->id,
	    strlen(m->id)) == 0;
	a.subject = subject;
	a.recipients = m->recipients;
	a.recipient_count = m->recipient_count;
	log_line_arrival(m->id, &a);
	free(message_id);
	free(subject);
}

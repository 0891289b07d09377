/*
 * log_line.c - building Exim's message lines (see log_line.h).
 *
 * Field order and formats are those of Exim 4.96 to 4.98, so that
 * exigrep, eximstats, fail2ban and the parsers that split on spaces keep
 * working. Each builder appends to a struct line, which cuts at the
 * buffer's end and puts LOG_TRUNCATED_MARK there.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "log_line.h"
#include "util.h"

/* Sockets named on the "daemon started" line before " ...", as Exim. */
#define DAEMON_LISTENERS_MAX	10

/* A line being built in a caller's buffer. */
struct line {
	char *buf;
	size_t size;
	size_t len;
	bool cut;		/* something did not fit */
};

static void
line_init(struct line *line, char *buf, size_t size)
{
	SLUICE_ASSERT(size >= LOG_LINE_BUFFER_MIN);
	line->buf = buf;
	line->size = size;
	line->len = 0;
	line->cut = false;
	buf[0] = '\0';
}

static void
line_add_bytes(struct line *line, const char *s, size_t n)
{
	size_t room = line->size - 1 - line->len;

	if (line->cut)
		return;
	if (n > room) {
		n = room;
		line->cut = true;
	}
	memcpy(line->buf + line->len, s, n);
	line->len += n;
	line->buf[line->len] = '\0';
}

static void
line_add(struct line *line, const char *s)
{
	line_add_bytes(line, s, strlen(s));
}

static void SLUICE_PRINTF(2, 3)
line_addf(struct line *line, const char *fmt, ...)
{
	char piece[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(piece, sizeof(piece), fmt, ap);
	va_end(ap);
	if (n > 0)
		line_add_bytes(line, piece,
		    (size_t)n < sizeof(piece) ? (size_t)n : sizeof(piece) - 1);
}

static void
line_add_escaped(struct line *line, const char *s, size_t max_input,
    enum log_escape_mode mode)
{
	size_t room = line->size - line->len;
	size_t need;

	if (line->cut)
		return;
	need = log_line_escape(line->buf + line->len, room, s, max_input, mode);
	if (need >= room) {
		/* Keep the whole escapes that fit. */
		line->len += strlen(line->buf + line->len);
		line->cut = true;
		return;
	}
	line->len += need;
}

/* Appends key and the escaped value as one field: " key=value". */
static void
line_add_field(struct line *line, const char *key, const char *value)
{
	line_add(line, key);
	line_add_escaped(line, value, LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
}

/* Appends key and the value in angle brackets: " F=<value>". */
static void
line_add_angled(struct line *line, const char *key, const char *value)
{
	line_add(line, key);
	line_add(line, "<");
	line_add_escaped(line, value, LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
	line_add(line, ">");
}

static void
line_add_duration(struct line *line, const char *key, int64_t usec)
{
	char text[32];

	log_line_format_duration(text, sizeof(text), usec);
	line_add(line, key);
	line_add(line, text);
}

/* Returns the line's length, with the mark at its end if it was cut. */
static size_t
line_finish(struct line *line)
{
	size_t mark = strlen(LOG_TRUNCATED_MARK);
	size_t at = line->len;

	if (line->cut) {
		if (at > line->size - 1 - mark)
			at = line->size - 1 - mark;
		memcpy(line->buf + at, LOG_TRUNCATED_MARK, mark + 1);
		line->len = at + mark;
	}
	return line->len;
}

size_t
log_line_escape(char *dst, size_t size, const char *src, size_t max_input,
    enum log_escape_mode mode)
{
	size_t need = 0, used = 0;
	bool full = false;
	const unsigned char *p = (const unsigned char *)src;

	SLUICE_ASSERT(size > 0);
	dst[0] = '\0';
	for (; *p != '\0'; p++, used++) {
		char piece[8];

		if (used == max_input) {
			strcpy(piece, LOG_TRUNCATED_MARK);
		} else if (*p == '\\') {
			strcpy(piece, "\\\\");
		} else if (*p == '"' && mode == LOG_ESCAPE_QUOTED) {
			strcpy(piece, "\\\"");
		} else if (*p == '\n') {
			strcpy(piece, "\\n");
		} else if (*p == '\r') {
			strcpy(piece, "\\r");
		} else if (*p == '\t') {
			strcpy(piece, "\\t");
		} else if (*p < 0x20 || *p >= 0x7f ||
		    (*p == ' ' && mode == LOG_ESCAPE_TOKEN)) {
			snprintf(piece, sizeof(piece), "\\x%02x", *p);
		} else {
			piece[0] = (char)*p;
			piece[1] = '\0';
		}

		/* Keep whole pieces only, so dst never ends in half an
		 * escape; once one does not fit, only count. */
		if (!full && need + strlen(piece) < size)
			memcpy(dst + need, piece, strlen(piece) + 1);
		else
			full = true;
		need += strlen(piece);
		if (used == max_input)
			break;
	}
	return need;
}

size_t
log_line_format_duration(char *dst, size_t size, int64_t usec)
{
	static const struct {
		int64_t seconds;
		char unit;
	} units[] = {
		{ 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' },
	};
	struct line line;
	uint64_t magnitude = usec < 0 ? (uint64_t)-(usec + 1) + 1 :
	    (uint64_t)usec;
	uint64_t seconds = magnitude / 1000000;

	SLUICE_ASSERT(size >= 32);
	line.buf = dst;
	line.size = size;
	line.len = 0;
	line.cut = false;
	dst[0] = '\0';

	if (usec < 0)
		line_add(&line, "-");
	if (seconds < 5 && log_selected(LOG_SEL_MILLISEC)) {
		line_addf(&line, "%" PRIu64 ".%03" PRIu64 "s", seconds,
		    magnitude % 1000000 / 1000);
		return line.len;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		uint64_t count = seconds / (uint64_t)units[i].seconds;

		if (count > 0)
			line_addf(&line, "%" PRIu64 "%c", count, units[i].unit);
		seconds %= (uint64_t)units[i].seconds;
	}
	if (seconds > 0 || line.len == (usec < 0 ? 1u : 0u))
		line_addf(&line, "%" PRIu64 "s", seconds);
	return line.len;
}

/* Hosts. */

/* True if helo is an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]")
 * for the same address as ip. */
static bool
helo_is_address(const char *helo, const char *ip)
{
	char literal[INET6_ADDRSTRLEN + 8];
	unsigned char a[sizeof(struct in6_addr)], b[sizeof(struct in6_addr)];
	size_t len = strlen(helo);
	const char *inner = helo + 1;
	int family;

	if (len < 3 || helo[0] != '[' || helo[len - 1] != ']' ||
	    len - 2 >= sizeof(literal))
		return false;
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		inner += 5;
		len -= 5;
	}
	memcpy(literal, inner, len - 2);
	literal[len - 2] = '\0';
	family = strchr(literal, ':') != NULL ? AF_INET6 : AF_INET;
	return inet_pton(family, literal, a) == 1 &&
	    inet_pton(family, ip, b) == 1 &&
	    memcmp(a, b, family == AF_INET6 ? 16 : 4) == 0;
}

/*
 * Appends a connecting host as Exim shows it: "name [ip]", "(helo) [ip]",
 * "name (helo) [ip]" or "[ip]". The HELO name is left out when it equals
 * the verified name or is the host's own address literal. ":port"
 * follows with incoming_port.
 */
static void
line_add_incoming_host(struct line *line, const struct log_host *host)
{
	bool show_helo = host->helo != NULL && host->helo[0] != '\0' &&
	    !helo_is_address(host->helo, host->ip);

	if (host->name != NULL) {
		line_add_escaped(line, host->name, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		if (show_helo && strcasecmp(host->name, host->helo) != 0) {
			line_add(line, " (");
			line_add_escaped(line, host->helo, LOG_FIELD_MAX,
			    LOG_ESCAPE_TOKEN);
			line_add(line, ")");
		}
		line_add(line, " ");
	} else if (show_helo) {
		line_add(line, "(");
		line_add_escaped(line, host->helo, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		line_add(line, ") ");
	}
	line_add(line, "[");
	line_add_escaped(line, host->ip, LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
	line_add(line, "]");
	if (host->port > 0 && log_selected(LOG_SEL_INCOMING_PORT))
		line_addf(line, ":%d", host->port);
}

/* Appends " H=name [ip]:port*" for a host delivered to; the port only
 * with outgoing_port, "*" when the connection was used before. */
static void
line_add_outgoing_host(struct line *line, const struct log_host *host,
    bool reused)
{
	line_add(line, " H=");
	if (host->name != NULL) {
		line_add_escaped(line, host->name, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		line_add(line, " ");
	}
	line_add(line, "[");
	line_add_escaped(line, host->ip, LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
	line_add(line, "]");
	if (host->port > 0 && log_selected(LOG_SEL_OUTGOING_PORT))
		line_addf(line, ":%d", host->port);
	if (reused)
		line_add(line, "*");
}

/* Appends X=, CV= and DN= when their selectors are on. */
static void
line_add_tls(struct line *line, const struct log_tls *tls)
{
	static const char *const cert_words[] = {
		[LOG_CERT_UNVERIFIED] = "no",
		[LOG_CERT_VERIFIED] = "yes",
		[LOG_CERT_DANE] = "dane",
	};

	if (tls->cipher == NULL)
		return;
	if (log_selected(LOG_SEL_TLS_CIPHER)) {
		line_add_field(line, " X=", tls->cipher);
		if (tls->resumed && log_selected(LOG_SEL_TLS_RESUMPTION))
			line_add(line, "*");
	}
	if (tls->cert != LOG_CERT_NONE &&
	    (unsigned)tls->cert < ARRAY_SIZE(cert_words) &&
	    log_selected(LOG_SEL_TLS_CERTIFICATE_VERIFIED)) {
		line_add(line, " CV=");
		line_add(line, cert_words[tls->cert]);
	}
	if (tls->peer_dn != NULL && log_selected(LOG_SEL_TLS_PEERDN)) {
		line_add(line, " DN=\"");
		line_add_escaped(line, tls->peer_dn, LOG_FIELD_MAX,
		    LOG_ESCAPE_QUOTED);
		line_add(line, "\"");
	}
}

/* Appends the address part of a delivery line: "address <original>". */
static void
line_add_address(struct line *line, const char *address,
    const char *original)
{
	line_add_escaped(line, address, LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
	if (original != NULL)
		line_add_angled(line, " ", original);
}

/* Appends F= and P= when sender_on_delivery and return_path_on_delivery
 * are on. */
static void
line_add_envelope(struct line *line, const char *sender,
    const char *return_path)
{
	if (sender != NULL && log_selected(LOG_SEL_SENDER_ON_DELIVERY))
		line_add_angled(line, " F=", sender);
	if (return_path != NULL &&
	    log_selected(LOG_SEL_RETURN_PATH_ON_DELIVERY))
		line_add_angled(line, " P=", return_path);
}

/* Arrivals. */

size_t
log_line_format_arrival(char *buf, size_t size,
    const struct log_arrival *a)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "<= ");
	if (a->sender == NULL || a->sender[0] == '\0')
		line_add(&line, "<>");
	else
		line_add_escaped(&line, a->sender, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
	if (a->bounce_of != NULL)
		line_add_field(&line, " R=", a->bounce_of);
	if (a->host.ip != NULL) {
		line_add(&line, " H=");
		line_add_incoming_host(&line, &a->host);
	}
	if (a->interface_ip != NULL &&
	    log_selected(LOG_SEL_INCOMING_INTERFACE)) {
		line_add(&line, " I=[");
		line_add_escaped(&line, a->interface_ip, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		line_addf(&line, "]:%d", a->interface_port);
	}
	if (a->ident != NULL)
		line_add_field(&line, " U=", a->ident);
	if (a->protocol != NULL)
		line_add_field(&line, " P=", a->protocol);

	line_add_tls(&line, &a->tls);
	if (a->tls.cipher != NULL && a->tls.sni != NULL &&
	    log_selected(LOG_SEL_TLS_SNI))
		line_add_field(&line, " SNI=", a->tls.sni);
	if (a->authenticator != NULL) {
		line_add_field(&line, " A=", a->authenticator);
		if (a->auth_id != NULL) {
			line_add(&line, ":");
			line_add_escaped(&line, a->auth_id, LOG_FIELD_MAX,
			    LOG_ESCAPE_TOKEN);
			if (a->auth_sender != NULL &&
			    log_selected(LOG_SEL_SMTP_MAILAUTH)) {
				line_add(&line, ":");
				line_add_escaped(&line, a->auth_sender,
				    LOG_FIELD_MAX, LOG_ESCAPE_TOKEN);
			}
		}
	}
	if (a->chunking)
		line_add(&line, " K");
	line_addf(&line, " S=%" PRIu64, a->size);
	if (a->receive_usec >= 0 && log_selected(LOG_SEL_RECEIVE_TIME))
		line_add_duration(&line, " RT=", a->receive_usec);

	if (a->message_id_header != NULL) {
		if (a->message_id_created &&
		    log_selected(LOG_SEL_MSG_ID_CREATED))
			line_add_field(&line, " id*=", a->message_id_header);
		else if (log_selected(LOG_SEL_MSG_ID))
			line_add_field(&line, " id=", a->message_id_header);
	}
	if (a->subject != NULL && log_selected(LOG_SEL_SUBJECT)) {
		line_add(&line, " T=\"");
		line_add_escaped(&line, a->subject, LOG_SUBJECT_MAX,
		    LOG_ESCAPE_QUOTED);
		line_add(&line, "\"");
	}
	if (a->received_sender != NULL &&
	    log_selected(LOG_SEL_RECEIVED_SENDER))
		line_add_angled(&line, " from ", a->received_sender);
	if (a->recipient_count > 0 &&
	    log_selected(LOG_SEL_RECEIVED_RECIPIENTS)) {
		line_add(&line, " for");
		for (size_t i = 0; i < a->recipient_count; i++)
			line_add_field(&line, " ", a->recipients[i]);
	}
	return line_finish(&line);
}

void
log_line_arrival(const char *msgid, const struct log_arrival *arrival)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_arrival(text, sizeof(text), arrival);
	log_write_text(LOG_MAIN, msgid, text);
}

/* Deliveries. */

size_t
log_line_format_delivery(char *buf, size_t size,
    const struct log_delivery *d)
{
	static const char *const flags[] = {
		[LOG_DELIVERY_FIRST] = "=> ",
		[LOG_DELIVERY_MORE] = "-> ",
		[LOG_DELIVERY_SUPPRESSED] = "*> ",
	};
	struct line line;

	SLUICE_ASSERT((unsigned)d->kind < ARRAY_SIZE(flags));
	line_init(&line, buf, size);
	line_add(&line, flags[d->kind]);
	line_add_address(&line, d->address, d->original);
	line_add_envelope(&line, d->sender, d->return_path);
	/* eximstats counts a "=>" line without T= as a blackhole. */
	line_add_field(&line, " R=", d->router != NULL ? d->router :
	    LOG_ROUTER_DNSLOOKUP);
	line_add_field(&line, " T=", d->transport != NULL ? d->transport :
	    LOG_TRANSPORT_REMOTE);
	if (log_selected(LOG_SEL_DELIVERY_SIZE))
		line_addf(&line, " S=%" PRIu64, d->size);

	if (d->host.ip != NULL)
		line_add_outgoing_host(&line, &d->host, d->reused_connection);
	if (d->interface_ip != NULL &&
	    log_selected(LOG_SEL_INCOMING_INTERFACE) &&
	    log_selected(LOG_SEL_OUTGOING_INTERFACE)) {
		line_add(&line, " I=[");
		line_add_escaped(&line, d->interface_ip, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		line_add(&line, "]");
		if (d->interface_port > 0 &&
		    log_selected(LOG_SEL_OUTGOING_PORT))
			line_addf(&line, ":%d", d->interface_port);
	}
	if (d->kind != LOG_DELIVERY_SUPPRESSED) {
		line_add_tls(&line, &d->tls);
		if (d->chunking)
			line_add(&line, " K");
		if (d->confirmation != NULL &&
		    log_selected(LOG_SEL_SMTP_CONFIRMATION)) {
			line_add(&line, " C=\"");
			line_add_escaped(&line, d->confirmation,
			    LOG_CONFIRMATION_MAX, LOG_ESCAPE_QUOTED);
			line_add(&line, "\"");
		}
	}
	if (d->queue_usec >= 0 && log_selected(LOG_SEL_QUEUE_TIME))
		line_add_duration(&line, " QT=", d->queue_usec);
	if (d->deliver_usec >= 0 && log_selected(LOG_SEL_DELIVER_TIME))
		line_add_duration(&line, " DT=", d->deliver_usec);
	return line_finish(&line);
}

void
log_line_delivery(const char *msgid, const struct log_delivery *delivery)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_delivery(text, sizeof(text), delivery);
	log_write_text(LOG_MAIN, msgid, text);
}

/* Deferrals and failures. */

size_t
log_line_format_defer(char *buf, size_t size, const struct log_defer *d)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "== ");
	line_add_address(&line, d->address, d->original);
	if (d->router != NULL)
		line_add_field(&line, " R=", d->router);
	if (d->transport != NULL)
		line_add_field(&line, " T=", d->transport);
	if (d->router == NULL && d->transport == NULL)
		line_add(&line, " routing");
	line_addf(&line, " defer (%d)", d->error_code);
	if (d->error_code > 0) {
		char text[256];
		const char *error = d->error != NULL ? d->error :
		    strerror_r(d->error_code, text, sizeof(text));

		line_add(&line, ": ");
		line_add_escaped(&line, error, LOG_FIELD_MAX, LOG_ESCAPE_TEXT);
	}
	if (d->host.ip != NULL)
		line_add_outgoing_host(&line, &d->host, d->reused_connection);
	if (d->deliver_usec >= 0 && log_selected(LOG_SEL_DELIVER_TIME))
		line_add_duration(&line, " DT=", d->deliver_usec);
	if (d->message != NULL) {
		line_add(&line, ": ");
		line_add_escaped(&line, d->message, LOG_CONFIRMATION_MAX,
		    LOG_ESCAPE_TEXT);
	}
	return line_finish(&line);
}

void
log_line_defer(const char *msgid, const struct log_defer *defer)
{
	char text[LOG_TEXT_MAX + 1];

	if (defer->retry_time_not_reached && !log_selected(LOG_SEL_RETRY_DEFER))
		return;
	log_line_format_defer(text, sizeof(text), defer);
	log_write_text(LOG_MAIN, msgid, text);
}

size_t
log_line_format_failure(char *buf, size_t size, const struct log_failure *f)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "** ");
	line_add_address(&line, f->address, f->original);
	line_add_envelope(&line, f->sender, f->return_path);
	if (f->router != NULL)
		line_add_field(&line, " R=", f->router);
	if (f->transport != NULL)
		line_add_field(&line, " T=", f->transport);
	if (f->host.ip != NULL)
		line_add_outgoing_host(&line, &f->host, f->reused_connection);
	line_add_tls(&line, &f->tls);
	/* Exim 4.99 writes " : " before these two; 4.96 to 4.98, and
	 * sluice, ": ". */
	if (f->error != NULL) {
		line_add(&line, ": ");
		line_add_escaped(&line, f->error, LOG_FIELD_MAX,
		    LOG_ESCAPE_TEXT);
	}
	if (f->message != NULL) {
		line_add(&line, ": ");
		line_add_escaped(&line, f->message, LOG_CONFIRMATION_MAX,
		    LOG_ESCAPE_TEXT);
	}
	if (f->deliver_usec >= 0 && log_selected(LOG_SEL_DELIVER_TIME))
		line_add_duration(&line, " DT=", f->deliver_usec);
	return line_finish(&line);
}

void
log_line_failure(const char *msgid, const struct log_failure *failure)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_failure(text, sizeof(text), failure);
	log_write_text(LOG_MAIN, msgid, text);
}

size_t
log_line_format_completed(char *buf, size_t size, int64_t queue_usec)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "Completed");
	if (queue_usec >= 0 && log_selected(LOG_SEL_QUEUE_TIME_OVERALL))
		line_add_duration(&line, " QT=", queue_usec);
	return line_finish(&line);
}

void
log_line_completed(const char *msgid, int64_t queue_usec)
{
	char text[LOG_LINE_BUFFER_MIN];

	log_line_format_completed(text, sizeof(text), queue_usec);
	log_write_text(LOG_MAIN, msgid, text);
}

/* SMTP sessions. */

size_t
log_line_format_reject(char *buf, size_t size, const struct log_reject *r)
{
	struct line line;

	line_init(&line, buf, size);
	if (r->host.ip != NULL) {
		line_add(&line, "H=");
		line_add_incoming_host(&line, &r->host);
		line_add(&line, " ");
	}
	if (r->sender != NULL) {
		line_add_angled(&line, "F=", r->sender);
		line_add(&line, " ");
	}
	line_add(&line, r->temporary ? "temporarily rejected " : "rejected ");
	line_add_escaped(&line, r->stage != NULL ? r->stage : "command",
	    LOG_FIELD_MAX, LOG_ESCAPE_TEXT);
	if (r->address != NULL)
		line_add_angled(&line, " ", r->address);
	if (r->reason != NULL) {
		line_add(&line, ": ");
		line_add_escaped(&line, r->reason, LOG_CONFIRMATION_MAX,
		    LOG_ESCAPE_TEXT);
	}
	return line_finish(&line);
}

void
log_line_reject(const char *msgid, const struct log_reject *reject)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_reject(text, sizeof(text), reject);
	log_write_text(LOG_MAIN | LOG_REJECT, msgid, text);
}

size_t
log_line_format_connection(char *buf, size_t size,
    const struct log_host *host, unsigned connection_count)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "SMTP connection from ");
	line_add_incoming_host(&line, host);
	line_addf(&line, " (TCP/IP connection count = %u)", connection_count);
	return line_finish(&line);
}

void
log_line_connection(const struct log_host *host, unsigned connection_count)
{
	char text[LOG_TEXT_MAX + 1];

	if (!log_selected(LOG_SEL_SMTP_CONNECTION))
		return;
	log_line_format_connection(text, sizeof(text), host, connection_count);
	log_write_text(LOG_MAIN, NULL, text);
}

size_t
log_line_format_connection_refused(char *buf, size_t size,
    const struct log_host *host, const char *reason)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, "Connection from ");
	line_add_incoming_host(&line, host);
	line_add(&line, " refused: ");
	line_add_escaped(&line, reason, LOG_FIELD_MAX, LOG_ESCAPE_TEXT);
	return line_finish(&line);
}

void
log_line_connection_refused(const struct log_host *host, const char *reason)
{
	char text[LOG_TEXT_MAX + 1];

	if (!log_selected(LOG_SEL_CONNECTION_REJECT))
		return;
	log_line_format_connection_refused(text, sizeof(text), host, reason);
	log_write_text(LOG_MAIN, NULL, text);
}

size_t
log_line_format_auth_failure(char *buf, size_t size,
    const struct log_auth_failure *f)
{
	struct line line;

	line_init(&line, buf, size);
	line_add_escaped(&line, f->authenticator, LOG_FIELD_MAX,
	    LOG_ESCAPE_TOKEN);
	line_add(&line, " authenticator failed for ");
	line_add_incoming_host(&line, &f->host);
	line_add(&line, ": ");
	line_add_escaped(&line, f->reply, LOG_FIELD_MAX, LOG_ESCAPE_TEXT);
	if (f->set_id != NULL) {
		line_add(&line, " (set_id=");
		line_add_escaped(&line, f->set_id, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
		line_add(&line, ")");
	}
	return line_finish(&line);
}

void
log_line_auth_failure(const struct log_auth_failure *failure)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_auth_failure(text, sizeof(text), failure);
	log_write_text(LOG_MAIN | LOG_REJECT, NULL, text);
}

/* Daemon and queue runs. */

size_t
log_line_format_daemon_start(char *buf, size_t size,
    const struct log_daemon_start *s)
{
	struct line line;

	line_init(&line, buf, size);
	line_add(&line, s->program);
	line_addf(&line, " daemon started: pid=%ld, ", s->pid);
	line_add(&line, s->queue_runs != NULL ? s->queue_runs :
	    "no queue runs");
	if (s->listener_count == 0) {
		line_add(&line, ", not listening for SMTP");
		return line_finish(&line);
	}
	line_add(&line, ", listening for SMTP on");
	for (size_t i = 0; i < s->listener_count; i++) {
		const struct log_listener *l = &s->listeners[i];

		if (i == DAEMON_LISTENERS_MAX) {
			line_add(&line, " ...");
			break;
		}
		if (l->ip == NULL)
			line_addf(&line, " port %d (IPv6 and IPv4)", l->port);
		else {
			line_add(&line, " [");
			line_add(&line, l->ip);
			line_addf(&line, "]:%d", l->port);
		}
	}
	return line_finish(&line);
}

void
log_line_daemon_start(const struct log_daemon_start *start)
{
	char text[LOG_TEXT_MAX + 1];

	log_line_format_daemon_start(text, sizeof(text), start);
	log_write_text(LOG_MAIN, NULL, text);
}

size_t
log_line_format_queue_run(char *buf, size_t size, bool start, long pid)
{
	struct line line;

	line_init(&line, buf, size);
	line_addf(&line, "%s queue run: pid=%ld", start ? "Start" : "End", pid);
	return line_finish(&line);
}

void
log_line_queue_run(bool start, long pid)
{
	char text[LOG_LINE_BUFFER_MIN];

	if (!log_selected(LOG_SEL_QUEUE_RUN))
		return;
	log_line_format_queue_run(text, sizeof(text), start, pid);
	log_write_text(LOG_MAIN, NULL, text);
}

size_t
log_line_format_queue_run_options(char *buf, size_t size,
    const struct log_queue_run *run)
{
	struct line line;

	line_init(&line, buf, size);
	line_addf(&line, "%s queue run: pid=%ld", run->start ? "Start" : "End",
	    run->pid);
	if (run->flags != NULL && run->flags[0] != '\0') {
		line_add(&line, " -q");
		line_add_escaped(&line, run->flags, LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
	}
	if (run->recipient_match != NULL) {
		line_add(&line, run->recipient_regex ? " -Rr " : " -R ");
		line_add_escaped(&line, run->recipient_match, LOG_FIELD_MAX,
		    LOG_ESCAPE_TEXT);
	}
	if (run->sender_match != NULL) {
		line_add(&line, run->sender_regex ? " -Sr " : " -S ");
		line_add_escaped(&line, run->sender_match, LOG_FIELD_MAX,
		    LOG_ESCAPE_TEXT);
	}
	return line_finish(&line);
}

void
log_line_queue_run_options(const struct log_queue_run *run)
{
	char text[LOG_TEXT_MAX + 1];

	if (!log_selected(LOG_SEL_QUEUE_RUN))
		return;
	log_line_format_queue_run_options(text, sizeof(text), run);
	log_write_text(LOG_MAIN, NULL, text);
}

size_t
log_line_format_message_event(char *buf, size_t size,
    enum log_message_event event, const char *address, const char *user)
{
	struct line line;
	bool by_user = true;

	line_init(&line, buf, size);
	switch (event) {
	case LOG_EVENT_FROZEN:
		line_add(&line, "frozen");
		break;
	case LOG_EVENT_UNFROZEN:
		line_add(&line, "unfrozen");
		break;
	case LOG_EVENT_REMOVED:
		line_add(&line, "removed");
		break;
	case LOG_EVENT_CANCELLED:
		line_add(&line, "cancelled");
		break;
	case LOG_EVENT_MARKED_DELIVERED:
		line_add_angled(&line, "address ", address);
		line_add(&line, " marked delivered");
		break;
	case LOG_EVENT_RECIPIENT_ADDED:
		line_add_angled(&line, "recipient ", address);
		line_add(&line, " added");
		break;
	case LOG_EVENT_SENDER_CHANGED:
		line_add_angled(&line, "sender address changed to ", address);
		break;
	case LOG_EVENT_FORCED_THAW:
		line_add(&line, "Unfrozen by forced delivery");
		by_user = false;
		break;
	case LOG_EVENT_SKIPPED_FROZEN:
		line_add(&line, "Message is frozen");
		by_user = false;
		break;
	}
	if (by_user) {
		line_add(&line, " by ");
		line_add_escaped(&line, user != NULL ? user : "", LOG_FIELD_MAX,
		    LOG_ESCAPE_TOKEN);
	}
	return line_finish(&line);
}

void
log_line_message_event(const char *msgid, enum log_message_event event,
    const char *address, const char *user)
{
	char text[LOG_TEXT_MAX + 1];

	if (event == LOG_EVENT_SKIPPED_FROZEN &&
	    !log_selected(LOG_SEL_SKIP_DELIVERY))
		return;
	log_line_format_message_event(text, sizeof(text), event, address,
	    user);
	log_write_text(LOG_MAIN, msgid, text);
}

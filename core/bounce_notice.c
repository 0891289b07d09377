/*
 * bounce_notice.c - the notices other than bounces (see bounce.h): delay
 * warnings ("Warning: message <id> delayed ...", Action: delayed) and
 * success notices for servers without DSN (Action: relayed). They share
 * the report layout of bounces through bounce_private.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce.h"
#include "bounce_private.h"
#include "spool_header.h"
#include "util.h"

/* ---- delay warnings ---- */

int64_t
bounce_warning_due(const struct config_timelist *list, int warning_count)
{
	int64_t last, gap;

	if (list->count == 0 || list->values[0] <= 0 || warning_count < 0)
		return -1;
	if ((size_t)warning_count < list->count)
		return list->values[warning_count];
	/* Past the list, the last gap repeats: 4h:8h:24h goes on every
	 * 16h, and a single time repeats itself. */
	last = list->values[list->count - 1];
	gap = list->count > 1 ? last - list->values[list->count - 2] : last;
	if (gap <= 0)
		return -1;
	return last + gap * (int64_t)(warning_count - (int)list->count + 1);
}

/* True if the value of field name starts with one of the words in
 * values (a NULL-terminated list), compared without case. */
static bool
bounce_field_is(const struct spool_header *h, const char *name,
    const char *const *values)
{
	char *value = bounce_field_value(h, name);
	bool found = false;

	for (size_t i = 0; value != NULL && values[i] != NULL && !found; i++)
		found = strncasecmp(value, values[i], strlen(values[i])) == 0;
	free(value);
	return found;
}

bool
bounce_warning_wanted(const struct spool_header *h)
{
	static const char *const precedence[] = { "bulk", "list", "junk", NULL };
	static const char *const automatic[] = { "auto-generated",
	    "auto-replied", NULL };
	static const char *const list_fields[] = { "List-Id", "List-Post",
	    "List-Subscribe" };
	char *value;

	if (h->sender == NULL || h->sender[0] == '\0')
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(list_fields); i++) {
		if ((value = bounce_field_value(h, list_fields[i])) != NULL) {
			free(value);
			return false;
		}
	}
	return !bounce_field_is(h, "Precedence", precedence) &&
	    !bounce_field_is(h, "Auto-Submitted", automatic);
}

bool
bounce_notify_delay(int dsn_flags)
{
	if ((dsn_flags & BOUNCE_NOTIFY_ANY) == 0)
		return true;
	return (dsn_flags & BOUNCE_NOTIFY_DELAY) != 0;
}

/* "<n> minutes" below two hours, "<n> hours" from then on. */
static void
bounce_format_delay(char *buf, size_t size, int64_t seconds)
{
	if (seconds < 2 * 60 * 60)
		snprintf(buf, size, "%lld minutes", (long long)(seconds / 60));
	else
		snprintf(buf, size, "%lld hours", (long long)(seconds / 3600));
}

int
bounce_compose_warning(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    int64_t delay, time_t now, uint32_t random, struct bounce_content *out)
{
	struct bounce_text headers = { NULL, 0, 0 }, text = { NULL, 0, 0 };
	char *subject = bounce_field_value(original, "Subject");
	char *date = bounce_field_value(original, "Date");
	char boundary[64], delayed[64];
	size_t count = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < list->count; i++)
		if (bounce_notify_delay(list->items[i].dsn_flags))
			count++;
	if (!bounce_warning_wanted(original) || count == 0) {
		free(subject);
		free(date);
		return 0;
	}
	snprintf(boundary, sizeof(boundary), "%lld-eximdsn-%u",
	    (long long)now, (unsigned)(random & 0x7fffffff));
	bounce_format_delay(delayed, sizeof(delayed), delay);

	bounce_report_headers(&headers, config, original, boundary);
	bounce_text_addf(&headers, "Subject: Warning: message %s delayed %s\n",
	    original->id, delayed);

	/* Part 1: what is late, and why. */
	bounce_text_addf(&text, "--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: text/plain; charset=us-ascii\n\n");
	bounce_text_puts(&text, "This message was created automatically by mail "
	    "delivery software.\n\n");
	bounce_text_addf(&text, "A message that you sent has not yet been delivered "
	    "to one or more of its\nrecipients after more than %s on the "
	    "queue on %s.\n\n", delayed, config->primary_hostname);
	bounce_text_addf(&text, "The message identifier is:     %s\n", original->id);
	if (subject != NULL)
		bounce_text_addf(&text, "The subject of the message is: %s\n", subject);
	if (date != NULL)
		bounce_text_addf(&text, "The date of the message is:    %s\n", date);
	bounce_text_addf(&text, "\nThe address%s to which the message has not yet "
	    "been delivered:\n", count > 1 ? "es" : "");
	for (size_t i = 0; i < list->count; i++) {
		const struct bounce_failure *f = &list->items[i];

		if (!bounce_notify_delay(f->dsn_flags))
			continue;
		bounce_text_addf(&text, "\n  %s\n", f->address);
		bounce_text_puts(&text, "    Delay reason: ");
		bounce_text_indented(&text, f->message, 0);
	}
	bounce_text_puts(&text, "\nYou need not do anything. Delivery is still being "
	    "attempted, and you may\nget more of these warnings while it is. If "
	    "it never succeeds, the message\nwill come back to you with the "
	    "reason.\n");

	/* Part 2: the same for programs, "delayed" per RFC 3464. */
	bounce_text_addf(&text, "\n--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: message/delivery-status\n\n");
	bounce_text_addf(&text, "Reporting-MTA: dns; %s\n", config->primary_hostname);
	for (size_t i = 0; i < list->count; i++) {
		const struct bounce_failure *f = &list->items[i];

		if (!bounce_notify_delay(f->dsn_flags))
			continue;
		bounce_text_puts(&text, "\nAction: delayed\n");
		bounce_text_addf(&text, "Final-Recipient: rfc822;%s\n", f->address);
		bounce_text_puts(&text, "Status: 4.0.0\n");
		if (f->host_name != NULL)
			bounce_text_addf(&text, "Remote-MTA: dns; %s\n", f->host_name);
	}

	/* Part 3: the header section of the message. */
	bounce_text_addf(&text, "\n--%s\n", boundary);
	bounce_returned_part(&text, original, NULL, 0, true);
	bounce_text_addf(&text, "\n--%s--\n", boundary);

	out->headers = headers.data;
	out->headers_len = headers.len;
	out->body = text.data;
	out->body_len = text.len;
	out->recipient = xstrdup(original->sender);
	free(subject);
	free(date);
	return 1;
}

/* ---- success notices ---- */

bool
bounce_notify_success(int dsn_flags)
{
	return (dsn_flags & BOUNCE_NOTIFY_SUCCESS) != 0 &&
	    (dsn_flags & BOUNCE_NOTIFY_NEVER) == 0;
}

int
bounce_compose_relayed(const struct config *config,
    const struct spool_header *original, const struct bounce_list *list,
    time_t now, uint32_t random, struct bounce_content *out)
{
	struct bounce_text headers = { NULL, 0, 0 }, text = { NULL, 0, 0 };
	char boundary[64];
	size_t count = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < list->count; i++)
		if (bounce_notify_success(list->items[i].dsn_flags))
			count++;
	if (original->sender == NULL || original->sender[0] == '\0' ||
	    count == 0)
		return 0;
	snprintf(boundary, sizeof(boundary), "%lld-eximdsn-%u",
	    (long long)now, (unsigned)(random & 0x7fffffff));

	bounce_report_headers(&headers, config, original, boundary);
	bounce_text_puts(&headers, "Subject: Delivery Status Notification\n");

	bounce_text_addf(&text, "--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: text/plain; charset=us-ascii\n\n");
	bounce_text_puts(&text, "This message was created automatically by mail "
	    "delivery software.\n\n");
	bounce_text_puts(&text, "Your message was passed on to the next mail server "
	    "for the address(es)\nbelow. That server does not report "
	    "delivery, so this is the last notice\nyou get for them:\n");
	for (size_t i = 0; i < list->count; i++) {
		const struct bounce_failure *f = &list->items[i];

		if (!bounce_notify_success(f->dsn_flags))
			continue;
		bounce_text_addf(&text, "\n  %s\n", f->address);
		if (f->host_name != NULL)
			bounce_text_addf(&text, "    host %s [%s]\n", f->host_name,
			    f->host_ip != NULL ? f->host_ip : "");
	}

	/* "relayed": passed to a server that sends no DSN (RFC 3464
	 * section 2.3.3). */
	bounce_text_addf(&text, "\n--%s\n", boundary);
	bounce_text_puts(&text, "Content-type: message/delivery-status\n\n");
	bounce_text_addf(&text, "Reporting-MTA: dns; %s\n", config->primary_hostname);
	if (original->dsn_envid != NULL && original->dsn_envid[0] != '\0')
		bounce_text_addf(&text, "Original-Envelope-Id: %s\n",
		    original->dsn_envid);
	for (size_t i = 0; i < list->count; i++) {
		const struct bounce_failure *f = &list->items[i];

		if (!bounce_notify_success(f->dsn_flags))
			continue;
		bounce_text_puts(&text, "\nAction: relayed\n");
		if (f->orcpt != NULL && f->orcpt[0] != '\0')
			bounce_text_addf(&text, "Original-Recipient: %s%s\n",
			    strchr(f->orcpt, ';') != NULL ? "" : "rfc822;",
			    f->orcpt);
		bounce_text_addf(&text, "Final-Recipient: rfc822;%s\n", f->address);
		bounce_text_puts(&text, "Status: 2.0.0\n");
		if (f->host_name != NULL)
			bounce_text_addf(&text, "Remote-MTA: dns; %s\n", f->host_name);
	}

	/* Only the header section goes back, because RET=FULL requests
	 * the whole message in failure reports only (RFC 3461 section
	 * 4.3). */
	bounce_text_addf(&text, "\n--%s\n", boundary);
	bounce_returned_part(&text, original, NULL, 0, true);
	bounce_text_addf(&text, "\n--%s--\n", boundary);

	out->headers = headers.data;
	out->headers_len = headers.len;
	out->body = text.data;
	out->body_len = text.len;
	out->recipient = xstrdup(original->sender);
	return 1;
}

/*
 * spool_header.c - building, querying and comparing the in-memory -H
 * file (see spool_header.h). The parser is in spool_header_parse.c, the
 * formatter in spool_header_format.c and the journal in spool_journal.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool_header.h"
#include "util.h"

/* Grows an array of count elements of size bytes so one more fits. */
static void *
grow(void *array, size_t count, size_t *alloc, size_t size)
{
	if (count < *alloc)
		return array;
	*alloc = *alloc < 8 ? 8 : *alloc * 2;
	return xreallocarray(array, *alloc, size);
}

static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

bool
spool_acl_name_valid(const char *name)
{
	size_t len;

	if (strncmp(name, "acl_c", 5) != 0 && strncmp(name, "acl_m", 5) != 0)
		return false;
	len = strlen(name + 5);
	if (len == 0 || len > SPOOL_HEADER_ACL_NAME_MAX)
		return false;
	return strspn(name + 5, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == len;
}

bool
spool_field_flag_valid(char flag)
{
	return flag != '\0' && strchr(" BCFIPRST*", flag) != NULL;
}

char
spool_field_flag_for_name(const char *name, size_t len)
{
	static const struct {
		const char *name;
		char flag;
	} names[] = {
		{ "Bcc", SPOOL_FIELD_BCC },
		{ "Cc", SPOOL_FIELD_CC },
		{ "From", SPOOL_FIELD_FROM },
		{ "Message-ID", SPOOL_FIELD_MESSAGE_ID },
		{ "Received", SPOOL_FIELD_RECEIVED },
		{ "Reply-To", SPOOL_FIELD_REPLY_TO },
		{ "Sender", SPOOL_FIELD_SENDER },
		{ "To", SPOOL_FIELD_TO },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strlen(names[i].name) == len &&
		    strncasecmp(names[i].name, name, len) == 0)
			return names[i].flag;
	}
	return SPOOL_FIELD_OTHER;
}

struct spool_acl_var *
spool_header_set_acl(struct spool_header *h, const char *name,
    const char *value)
{
	struct spool_acl_var *var;

	if (!spool_acl_name_valid(name))
		return NULL;
	for (size_t i = 0; i < h->acl_vars_count; i++) {
		var = &h->acl_vars[i];
		if (strcmp(var->name, name) == 0) {
			free(var->value);
			var->value = xstrdup(value);
			return var;
		}
	}
	h->acl_vars = grow(h->acl_vars, h->acl_vars_count, &h->acl_vars_alloc,
	    sizeof(*h->acl_vars));
	var = &h->acl_vars[h->acl_vars_count++];
	var->name = xstrdup(name);
	var->value = xstrdup(value);
	var->tainted = false;
	return var;
}

const char *
spool_header_get_acl(const struct spool_header *h, const char *name)
{
	for (size_t i = 0; i < h->acl_vars_count; i++) {
		if (strcmp(h->acl_vars[i].name, name) == 0)
			return h->acl_vars[i].value;
	}
	return NULL;
}

void
spool_header_add_unknown_option(struct spool_header *h, const char *line)
{
	h->unknown_options = grow(h->unknown_options,
	    h->unknown_options_count, &h->unknown_options_alloc,
	    sizeof(*h->unknown_options));
	h->unknown_options[h->unknown_options_count++] = xstrdup(line);
}

struct spool_recipient *
spool_header_add_recipient(struct spool_header *h, const char *address)
{
	struct spool_recipient *r;

	h->recipients = grow(h->recipients, h->recipients_count,
	    &h->recipients_alloc, sizeof(*h->recipients));
	r = &h->recipients[h->recipients_count++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->pno = -1;
	return r;
}

void
spool_header_add_field(struct spool_header *h, char flag, const char *text,
    size_t len)
{
	struct spool_header_field *field;

	h->fields = grow(h->fields, h->fields_count, &h->fields_alloc,
	    sizeof(*h->fields));
	field = &h->fields[h->fields_count++];
	field->flag = flag;
	field->len = len;
	field->text = xmalloc(len + 1);
	memcpy(field->text, text, len);
	field->text[len] = '\0';
}

size_t
spool_header_size(const struct spool_header *h)
{
	size_t size = 0;

	for (size_t i = 0; i < h->fields_count; i++) {
		if (h->fields[i].flag != SPOOL_FIELD_DELETED)
			size += h->fields[i].len;
	}
	return size;
}

/*
 * The delivered addresses are an array whose first nonrecipients_sorted
 * keys are sorted, followed by a short unsorted tail of recent additions.
 * A lookup is a binary search plus a scan of the tail. When the tail
 * outgrows about the square root of the count, it is sorted and merged
 * into the prefix, so n additions cost O(n^1.5) key moves at worst
 * instead of the O(n^2) of keeping the whole array sorted.
 */
static size_t
sorted_prefix(const struct spool_header *h)
{
	return h->nonrecipients_sorted < h->nonrecipients_count ?
	    h->nonrecipients_sorted : h->nonrecipients_count;
}

bool
spool_header_is_delivered(const struct spool_header *h, const char *address)
{
	size_t sorted = sorted_prefix(h);

	if (sorted > 0 && bsearch(&address, h->nonrecipients, sorted,
	    sizeof(*h->nonrecipients), compare_keys) != NULL)
		return true;
	for (size_t i = sorted; i < h->nonrecipients_count; i++) {
		if (strcmp(h->nonrecipients[i], address) == 0)
			return true;
	}
	return false;
}

void
spool_header_sort_delivered(struct spool_header *h)
{
	size_t kept = 0;

	qsort(h->nonrecipients, h->nonrecipients_count,
	    sizeof(*h->nonrecipients), compare_keys);
	for (size_t i = 0; i < h->nonrecipients_count; i++) {
		char *key = h->nonrecipients[i];

		if (kept > 0 && strcmp(h->nonrecipients[kept - 1], key) == 0)
			free(key);
		else
			h->nonrecipients[kept++] = key;
	}
	h->nonrecipients_count = kept;
	h->nonrecipients_sorted = kept;
}

/* Sorts the tail and merges it into the sorted prefix. No key of the tail
 * is also in the prefix, because spool_header_mark_delivered() checks. */
static void
merge_delivered_tail(struct spool_header *h)
{
	size_t sorted = sorted_prefix(h);
	size_t count = h->nonrecipients_count;
	char **keys = h->nonrecipients;
	char **merged;
	size_t i = 0, j = sorted, k = 0;

	qsort(keys + sorted, count - sorted, sizeof(*keys), compare_keys);
	merged = xreallocarray(NULL, h->nonrecipients_alloc, sizeof(*keys));
	while (i < sorted && j < count) {
		if (strcmp(keys[i], keys[j]) <= 0)
			merged[k++] = keys[i++];
		else
			merged[k++] = keys[j++];
	}
	while (i < sorted)
		merged[k++] = keys[i++];
	while (j < count)
		merged[k++] = keys[j++];
	free(keys);
	h->nonrecipients = merged;
	h->nonrecipients_sorted = count;
}

void
spool_header_mark_delivered(struct spool_header *h, const char *address)
{
	size_t tail_max = 16;

	if (spool_header_is_delivered(h, address))
		return;
	h->nonrecipients = grow(h->nonrecipients, h->nonrecipients_count,
	    &h->nonrecipients_alloc, sizeof(*h->nonrecipients));
	h->nonrecipients[h->nonrecipients_count++] = xstrdup(address);

	while (tail_max * tail_max < h->nonrecipients_count)
		tail_max *= 2;
	if (h->nonrecipients_count - sorted_prefix(h) > tail_max)
		merge_delivered_tail(h);
}

void
spool_header_unmark_delivered(struct spool_header *h, const char *address)
{
	size_t sorted = sorted_prefix(h);

	for (size_t i = 0; i < h->nonrecipients_count; i++) {
		if (strcmp(h->nonrecipients[i], address) != 0)
			continue;
		/* Shifting the rest keeps the sorted prefix sorted. */
		free(h->nonrecipients[i]);
		memmove(&h->nonrecipients[i], &h->nonrecipients[i + 1],
		    (h->nonrecipients_count - i - 1) *
		    sizeof(*h->nonrecipients));
		h->nonrecipients_count--;
		h->nonrecipients_sorted = i < sorted ? sorted - 1 : sorted;
		return;
	}
}

void
spool_header_free(struct spool_header *h)
{
	free(h->login);
	free(h->sender);
	free(h->helo_name);
	free(h->host_address);
	free(h->host_name);
	free(h->host_auth);
	free(h->interface_address);
	free(h->received_protocol);
	free(h->auth_id);
	free(h->auth_sender);
	free(h->tls_cipher);
	free(h->dsn_envid);
	for (size_t i = 0; i < h->acl_vars_count; i++) {
		free(h->acl_vars[i].name);
		free(h->acl_vars[i].value);
	}
	free(h->acl_vars);
	for (size_t i = 0; i < h->unknown_options_count; i++)
		free(h->unknown_options[i]);
	free(h->unknown_options);
	for (size_t i = 0; i < h->nonrecipients_count; i++)
		free(h->nonrecipients[i]);
	free(h->nonrecipients);
	for (size_t i = 0; i < h->recipients_count; i++) {
		free(h->recipients[i].address);
		free(h->recipients[i].orcpt);
		free(h->recipients[i].errors_to);
	}
	free(h->recipients);
	for (size_t i = 0; i < h->fields_count; i++)
		free(h->fields[i].text);
	free(h->fields);
	memset(h, 0, sizeof(*h));
}

/* NULL and "" differ: an option set to "" is still written. */
static bool
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* For members whose NULL is written as "". */
static bool
same_text(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

static bool
same_scalars(const struct spool_header *a, const struct spool_header *b)
{
	return strcmp(a->id, b->id) == 0 &&
	    a->uid == b->uid && a->gid == b->gid &&
	    a->received_time == b->received_time &&
	    a->warning_count == b->warning_count &&
	    a->received_time_usec == b->received_time_usec &&
	    a->received_time_complete == b->received_time_complete &&
	    a->received_time_complete_usec == b->received_time_complete_usec &&
	    a->host_port == b->host_port &&
	    a->interface_port == b->interface_port &&
	    a->body_linecount == b->body_linecount &&
	    a->max_received_linelength == b->max_received_linelength &&
	    a->body_zerocount == b->body_zerocount &&
	    a->deliver_firsttime == b->deliver_firsttime &&
	    a->frozen == b->frozen && a->frozen_at == b->frozen_at &&
	    a->manual_thaw == b->manual_thaw &&
	    a->dont_deliver == b->dont_deliver &&
	    a->local == b->local && a->local_error == b->local_error &&
	    a->sender_set_untrusted == b->sender_set_untrusted &&
	    a->tls_certificate_verified == b->tls_certificate_verified &&
	    a->spool_file_wireformat == b->spool_file_wireformat &&
	    a->smtputf8 == b->smtputf8 &&
	    a->dsn_ret == b->dsn_ret &&
	    a->tainted == b->tainted;
}

static bool
same_strings(const struct spool_header *a, const struct spool_header *b)
{
	return same_text(a->login, b->login) &&
	    same_text(a->sender, b->sender) &&
	    same_string(a->helo_name, b->helo_name) &&
	    same_string(a->host_address, b->host_address) &&
	    same_string(a->host_name, b->host_name) &&
	    same_string(a->host_auth, b->host_auth) &&
	    same_string(a->interface_address, b->interface_address) &&
	    same_string(a->received_protocol, b->received_protocol) &&
	    same_string(a->auth_id, b->auth_id) &&
	    same_string(a->auth_sender, b->auth_sender) &&
	    same_string(a->tls_cipher, b->tls_cipher) &&
	    same_string(a->dsn_envid, b->dsn_envid);
}

static bool
same_lists(const struct spool_header *a, const struct spool_header *b)
{
	if (a->acl_vars_count != b->acl_vars_count ||
	    a->unknown_options_count != b->unknown_options_count ||
	    a->nonrecipients_count != b->nonrecipients_count ||
	    a->recipients_count != b->recipients_count ||
	    a->fields_count != b->fields_count)
		return false;
	for (size_t i = 0; i < a->acl_vars_count; i++) {
		const struct spool_acl_var *x = &a->acl_vars[i];
		const struct spool_acl_var *y = &b->acl_vars[i];

		if (strcmp(x->name, y->name) != 0 ||
		    strcmp(x->value, y->value) != 0 || x->tainted != y->tainted)
			return false;
	}
	for (size_t i = 0; i < a->unknown_options_count; i++) {
		if (strcmp(a->unknown_options[i], b->unknown_options[i]) != 0)
			return false;
	}
	for (size_t i = 0; i < a->nonrecipients_count; i++) {
		if (!spool_header_is_delivered(b, a->nonrecipients[i]))
			return false;
	}
	for (size_t i = 0; i < a->recipients_count; i++) {
		const struct spool_recipient *x = &a->recipients[i];
		const struct spool_recipient *y = &b->recipients[i];

		if (!same_string(x->address, y->address) ||
		    !same_text(x->orcpt, y->orcpt) ||
		    !same_text(x->errors_to, y->errors_to) ||
		    x->dsn_flags != y->dsn_flags || x->pno != y->pno)
			return false;
	}
	for (size_t i = 0; i < a->fields_count; i++) {
		const struct spool_header_field *x = &a->fields[i];
		const struct spool_header_field *y = &b->fields[i];

		if (x->flag != y->flag || x->len != y->len ||
		    memcmp(x->text, y->text, x->len) != 0)
			return false;
	}
	return true;
}

bool
spool_header_equal(const struct spool_header *a, const struct spool_header *b)
{
	return same_scalars(a, b) && same_strings(a, b) && same_lists(a, b);
}

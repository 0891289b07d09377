/*
 * policy_suppress.c - addresses and domains that must not be mailed
 * (sluice.suppress), each with a reason and an optional expiry.
 *
 * Entries are keyed by the lower-cased address ("bob@example.com") or
 * domain ("example.com"). This table is never evicted: losing an entry
 * would mail someone who must not be mailed, so once it is full,
 * policy_suppress_add() fails instead. The SMTP server checks every
 * recipient here at RCPT time (core/smtp_policy.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "policy_tables_private.h"
#include "util.h"

struct policy_suppression {
	int64_t expires;		/* seconds since the epoch; 0: never */
	char reason[POLICY_SUPPRESS_REASON_MAX + 1];
};

const size_t policy_suppression_value_size = sizeof(struct policy_suppression);

/* Lower-cases entry into buf; returns its length, or -1 if it is empty
 * or too long. */
static int
policy_suppress_key(const char *entry, char *buf, size_t size)
{
	size_t len = strlen(entry);

	if (len == 0 || len >= size || len > POLICY_SUPPRESS_ENTRY_MAX)
		return -1;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)tolower((unsigned char)entry[i]);
	buf[len] = '\0';
	return (int)len;
}

static bool
policy_suppress_reason_valid(const char *reason)
{
	size_t len = strlen(reason);

	if (len == 0 || len > POLICY_SUPPRESS_REASON_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (reason[i] < 0x20 || reason[i] > 0x7e)
			return false;
	return true;
}

int
policy_suppress_add(const char *entry, const char *reason, uint32_t seconds)
{
	char key[POLICY_SUPPRESS_ENTRY_MAX + 1];
	int len = policy_suppress_key(entry, key, sizeof(key));
	struct policy_table_entry *e;
	struct policy_suppression *sup;

	if (len < 0 || !policy_suppress_reason_valid(reason))
		return -1;
	e = policy_table_lookup(POLICY_TABLE_SUPPRESS, key, (size_t)len, true);
	if (e == NULL)
		return -1;	/* full */
	sup = e->value;
	strlcpy_s(sup->reason, reason, sizeof(sup->reason));
	sup->expires = seconds != 0 ? (int64_t)clock_now() + seconds : 0;
	return 0;
}

int
policy_suppress_remove(const char *entry)
{
	char key[POLICY_SUPPRESS_ENTRY_MAX + 1];
	int len = policy_suppress_key(entry, key, sizeof(key));

	if (len < 0)
		return 0;
	return policy_table_delete(POLICY_TABLE_SUPPRESS, key, (size_t)len);
}

/* Returns the live suppression for key, removing an expired one. */
static const struct policy_suppression *
policy_suppress_find(const char *key, size_t len)
{
	struct policy_table_entry *e;
	struct policy_suppression *sup;

	e = policy_table_lookup(POLICY_TABLE_SUPPRESS, key, len, false);
	if (e == NULL)
		return NULL;
	sup = e->value;
	sup->reason[POLICY_SUPPRESS_REASON_MAX] = '\0';	/* a record from disk */
	if (sup->expires != 0 && sup->expires <= (int64_t)clock_now()) {
		policy_table_delete(POLICY_TABLE_SUPPRESS, key, len);
		return NULL;
	}
	return sup;
}

const char *
policy_suppress_check(const char *address)
{
	char key[POLICY_SUPPRESS_ENTRY_MAX + 1];
	int len = policy_suppress_key(address, key, sizeof(key));
	const struct policy_suppression *sup;
	const char *at;

	if (len < 0 || policy_tables_size(POLICY_TABLE_SUPPRESS) == 0)
		return NULL;
	if ((sup = policy_suppress_find(key, (size_t)len)) != NULL)
		return sup->reason;
	at = strrchr(key, '@');
	if (at == NULL || at[1] == '\0')
		return NULL;
	sup = policy_suppress_find(at + 1, strlen(at + 1));
	return sup != NULL ? sup->reason : NULL;
}

void policy_suppress_print(FILE *out, const struct policy_table_entry *e);

/* "ENTRY expires=EPOCH|never reason=TEXT", for sluice -bpt. */
void
policy_suppress_print(FILE *out, const struct policy_table_entry *e)
{
	struct policy_suppression *sup = e->value;

	sup->reason[POLICY_SUPPRESS_REASON_MAX] = '\0';
	if (sup->expires == 0)
		fprintf(out, "%.*s expires=never reason=%s\n", (int)e->key_len,
		    e->key, sup->reason);
	else
		fprintf(out, "%.*s expires=%lld reason=%s\n", (int)e->key_len,
		    e->key, (long long)sup->expires, sup->reason);
}

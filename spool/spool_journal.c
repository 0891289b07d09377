/*
 * spool_journal.c - replaying a -J journal onto a parsed -H file (see
 * spool_header.h).
 *
 * During a delivery run each successful delivery appends one line to
 * <id>-J: the key of the delivered address (the address, or
 * "address/transport" when one address goes to several pipes or files).
 * When the run ends, the -H file is rewritten with those keys in the
 * non-recipients tree and the journal is removed. A journal found later
 * means the process stopped in between, and its keys must be applied
 * before the message is delivered again.
 *
 * The journal is checked whole before anything is applied, so a bad
 * journal leaves the header as it was.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "spool_header.h"
#include "util.h"

static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_keys(char **keys, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(keys[i]);
	free(keys);
}

/* Copies the keys of the complete lines into *keys_out (caller frees),
 * sorted and without duplicates. */
static int
read_journal(const char *data, size_t len, char ***keys_out,
    size_t *count_out, char **error)
{
	char **keys = NULL;
	size_t count = 0, alloc = 0, unique = 0, pos = 0, line = 0;

	while (pos < len) {
		const char *start = data + pos;
		const char *newline = memchr(start, '\n', len - pos);
		size_t key_len;

		line++;
		if (newline == NULL)
			break;	/* cut short by a crash: not applied */
		key_len = (size_t)(newline - start);
		pos += key_len + 1;
		if (key_len == 0)
			continue;
		if (key_len > SPOOL_HEADER_ADDRESS_MAX) {
			*error = xasprintf("journal line %zu is longer than %d "
			    "bytes", line, SPOOL_HEADER_ADDRESS_MAX);
			free_keys(keys, count);
			return -1;
		}
		if (memchr(start, '\0', key_len) != NULL) {
			*error = xasprintf("journal line %zu contains a NUL "
			    "byte", line);
			free_keys(keys, count);
			return -1;
		}
		if (count == alloc) {
			alloc = alloc < 16 ? 16 : alloc * 2;
			keys = xreallocarray(keys, alloc, sizeof(*keys));
		}
		keys[count++] = xstrndup(start, key_len);
	}

	if (count > 0)
		qsort(keys, count, sizeof(*keys), compare_keys);
	for (size_t i = 0; i < count; i++) {
		if (unique > 0 && strcmp(keys[unique - 1], keys[i]) == 0)
			free(keys[i]);
		else
			keys[unique++] = keys[i];
	}
	*keys_out = keys;
	*count_out = unique;
	return 0;
}

int
spool_journal_apply(struct spool_header *h, const char *data, size_t len,
    char **error)
{
	char **keys;
	size_t count, added = 0;

	if (read_journal(data, len, &keys, &count, error) != 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (!spool_header_is_delivered(h, keys[i]))
			added++;
	}
	if (h->nonrecipients_count + added > SPOOL_HEADER_NONRECIPIENTS_MAX) {
		*error = xasprintf("journal would make more than %d delivered "
		    "addresses", SPOOL_HEADER_NONRECIPIENTS_MAX);
		free_keys(keys, count);
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		spool_header_mark_delivered(h, keys[i]);
	free_keys(keys, count);
	return 0;
}

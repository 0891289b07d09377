/*
 * policy_tables_private.h - the hash table with LRU eviction that the
 * counters, throttles and scores of policy_tables.h are built on. Not
 * for use outside lua/policy_*.c.
 */
#ifndef SLUICE_POLICY_TABLES_PRIVATE_H
#define SLUICE_POLICY_TABLES_PRIVATE_H

#include <stddef.h>

#include "policy_tables.h"

/* One entry: its key and value share one allocation. The value is
 * zeroed when the entry is created. */
struct policy_table_entry {
	struct policy_table_entry *chain;	/* next in the hash bucket */
	struct policy_table_entry *newer;	/* LRU list, towards the newest */
	struct policy_table_entry *older;
	uint64_t hash;
	size_t key_len;
	const char *key;			/* points into the allocation */
	void *value;				/* value_size bytes, aligned */
};

/*
 * Finds the entry for key in table and marks it most recently used.
 * With create, a missing entry is added (evicting the least recently
 * used one if the table is full). Returns NULL if key is missing and
 * create is false, or if the suppression table is full.
 */
struct policy_table_entry *policy_table_lookup(enum policy_table_id table,
    const char *key, size_t key_len, bool create);

/* Removes the entry for key; returns 1, or 0 if there was none. */
int policy_table_delete(enum policy_table_id table, const char *key,
    size_t key_len);

/* Calls fn for each entry of table, oldest first; a non-zero return
 * stops the walk and is returned. fn must not add or remove entries. */
int policy_table_walk(enum policy_table_id table,
    int (*fn)(struct policy_table_entry *entry, void *arg), void *arg);

/* Adds n to table's eviction count, for counts saved by an earlier
 * run. */
void policy_tables_count_evicted(enum policy_table_id table, uint64_t n);

/* The key of the layout record in each saved table (see
 * policy_tables_persist.c): it starts with a NUL byte, which no entry's
 * key does. */
#define POLICY_TABLES_LAYOUT_KEY	"\0layout"
#define POLICY_TABLES_LAYOUT_KEY_LEN	(sizeof(POLICY_TABLES_LAYOUT_KEY) - 1)

#endif

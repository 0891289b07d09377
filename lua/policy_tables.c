/*
 * policy_tables.c - the hash tables behind sluice.counters, throttles and
 * scores, their LRU eviction, and the sliding windows they count in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_tables_private.h"
#include "util.h"

/* Buckets per table: a power of two, grown when entries exceed it. */
#define POLICY_TABLE_INITIAL_BUCKETS	64

struct policy_table {
	const char *name;		/* for log lines */
	size_t value_size;
	struct policy_table_entry **buckets;
	size_t bucket_count;		/* a power of two, or 0 before use */
	size_t size;
	size_t max_entries;
	uint64_t evicted;
	bool no_eviction;		/* full: refuse new entries */
	struct policy_table_entry *newest;	/* LRU list ends */
	struct policy_table_entry *oldest;
};

/* Value sizes come from the files that own each kind of value. */
extern const size_t policy_counter_value_size;
extern const size_t policy_throttle_value_size;
extern const size_t policy_score_value_size;
extern const size_t policy_warmup_value_size;
extern const size_t policy_suppression_value_size;

static struct policy_table tables[POLICY_TABLE_COUNT] = {
	[POLICY_TABLE_COUNTERS] = { .name = "counters" },
	[POLICY_TABLE_THROTTLES] = { .name = "throttles" },
	[POLICY_TABLE_SCORES] = { .name = "scores" },
	[POLICY_TABLE_WARMUP] = { .name = "warmup" },
	[POLICY_TABLE_SUPPRESS] = { .name = "suppress", .no_eviction = true },
};

static uint64_t
policy_table_hash(const char *key, size_t len)
{
	return hash_fnv(HASH_FNV_START, key, len);
}

static struct policy_table *
policy_table_get(enum policy_table_id id)
{
	struct policy_table *t;

	if ((unsigned)id >= POLICY_TABLE_COUNT)
		fatal_bug("unknown policy table %d", (int)id);
	t = &tables[id];
	if (t->value_size == 0) {
		switch (id) {
		case POLICY_TABLE_COUNTERS:
			t->value_size = policy_counter_value_size;
			break;
		case POLICY_TABLE_THROTTLES:
			t->value_size = policy_throttle_value_size;
			break;
		case POLICY_TABLE_SCORES:
			t->value_size = policy_score_value_size;
			break;
		case POLICY_TABLE_WARMUP:
			t->value_size = policy_warmup_value_size;
			break;
		default:
			t->value_size = policy_suppression_value_size;
			break;
		}
	}
	if (t->max_entries == 0)
		t->max_entries = POLICY_TABLE_DEFAULT_ENTRIES;
	return t;
}

static void
policy_table_lru_unlink(struct policy_table *t, struct policy_table_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
policy_table_lru_push(struct policy_table *t, struct policy_table_entry *e)
{
	e->older = t->newest;
	e->newer = NULL;
	if (t->newest != NULL)
		t->newest->newer = e;
	t->newest = e;
	if (t->oldest == NULL)
		t->oldest = e;
}

static void
policy_table_remove(struct policy_table *t, struct policy_table_entry *e)
{
	struct policy_table_entry **p = &t->buckets[e->hash & (t->bucket_count - 1)];

	while (*p != e)
		p = &(*p)->chain;
	*p = e->chain;
	policy_table_lru_unlink(t, e);
	t->size--;
	free(e);
}

static void
policy_table_grow(struct policy_table *t)
{
	size_t count = t->bucket_count == 0 ? POLICY_TABLE_INITIAL_BUCKETS :
	    t->bucket_count * 2;
	struct policy_table_entry **buckets = xcalloc(count, sizeof(*buckets));

	for (size_t i = 0; i < t->bucket_count; i++) {
		struct policy_table_entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->chain;
			e->chain = buckets[e->hash & (count - 1)];
			buckets[e->hash & (count - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->bucket_count = count;
}

/* Evicts least recently used entries until one more fits. */
static void
policy_table_make_room(struct policy_table *t)
{
	while (t->size >= t->max_entries && t->oldest != NULL) {
		t->evicted++;
		/* One line per power of two evictions, so a full table
		 * does not flood the log. */
		if ((t->evicted & (t->evicted - 1)) == 0)
			log_write(LOG_MAIN, NULL, "policy table %s is full "
			    "(%zu entries): evicted the least recently used "
			    "entry, %llu evictions so far", t->name,
			    t->max_entries, (unsigned long long)t->evicted);
		policy_table_remove(t, t->oldest);
	}
}

struct policy_table_entry *
policy_table_lookup(enum policy_table_id id, const char *key, size_t key_len,
    bool create)
{
	struct policy_table *t = policy_table_get(id);
	uint64_t hash = policy_table_hash(key, key_len);
	struct policy_table_entry *e = NULL;
	size_t value_offset;
	char *block;

	if (t->bucket_count != 0) {
		e = t->buckets[hash & (t->bucket_count - 1)];
		for (; e != NULL; e = e->chain)
			if (e->hash == hash && e->key_len == key_len &&
			    memcmp(e->key, key, key_len) == 0)
				break;
	}
	if (e != NULL) {
		if (t->newest != e) {
			policy_table_lru_unlink(t, e);
			policy_table_lru_push(t, e);
		}
		return e;
	}
	if (!create)
		return NULL;

	if (t->no_eviction && t->size >= t->max_entries)
		return NULL;
	policy_table_make_room(t);
	if (t->size >= t->bucket_count)
		policy_table_grow(t);

	/* Header, then the value at 16-byte alignment, then the key. */
	value_offset = (sizeof(*e) + 15) & ~(size_t)15;
	block = xcalloc(1, value_offset + t->value_size + key_len + 1);
	e = (struct policy_table_entry *)(void *)block;
	e->value = block + value_offset;
	memcpy(block + value_offset + t->value_size, key, key_len);
	e->key = block + value_offset + t->value_size;
	e->key_len = key_len;
	e->hash = hash;
	e->chain = t->buckets[hash & (t->bucket_count - 1)];
	t->buckets[hash & (t->bucket_count - 1)] = e;
	policy_table_lru_push(t, e);
	t->size++;
	return e;
}

int
policy_table_delete(enum policy_table_id id, const char *key, size_t key_len)
{
	struct policy_table_entry *e = policy_table_lookup(id, key, key_len,
	    false);

	if (e == NULL)
		return 0;
	policy_table_remove(policy_table_get(id), e);
	return 1;
}

int
policy_table_walk(enum policy_table_id id,
    int (*fn)(struct policy_table_entry *entry, void *arg), void *arg)
{
	struct policy_table *t = policy_table_get(id);

	for (struct policy_table_entry *e = t->oldest; e != NULL; e = e->newer) {
		int rc = fn(e, arg);

		if (rc != 0)
			return rc;
	}
	return 0;
}

void
policy_tables_reset(size_t max_entries)
{
	for (int id = 0; id < POLICY_TABLE_COUNT; id++) {
		struct policy_table *t = policy_table_get(id);

		while (t->oldest != NULL)
			policy_table_remove(t, t->oldest);
		free(t->buckets);
		t->buckets = NULL;
		t->bucket_count = 0;
		t->evicted = 0;
		t->max_entries = max_entries != 0 ? max_entries :
		    POLICY_TABLE_DEFAULT_ENTRIES;
	}
}

void
policy_tables_set_max(enum policy_table_id id, size_t max_entries)
{
	policy_table_get(id)->max_entries = max_entries != 0 ? max_entries :
	    POLICY_TABLE_DEFAULT_ENTRIES;
}

uint64_t
policy_tables_evicted(enum policy_table_id id)
{
	return policy_table_get(id)->evicted;
}

void
policy_tables_count_evicted(enum policy_table_id id, uint64_t n)
{
	struct policy_table *t = policy_table_get(id);

	t->evicted = n > UINT64_MAX - t->evicted ? UINT64_MAX : t->evicted + n;
}

size_t
policy_tables_size(enum policy_table_id id)
{
	return policy_table_get(id)->size;
}

/* ---- sliding windows ---- */

/*
 * Slot i of each ring belongs to the time units congruent to i; a slot
 * holds the count of the newest such unit written. When the clock moves
 * on, the slots between the last write and now are cleared, so a read
 * only has to ignore the slots older than its span. A clock that steps
 * back counts into the newest slot written.
 */
static void
policy_window_advance(struct policy_window *w, int64_t now)
{
	int64_t last = w->last_second;

	if (now <= last)
		return;
	if (last == 0 || now - last >= 86400) {
		memset(w, 0, sizeof(*w));
		w->last_second = now;
		return;
	}
	for (int64_t s = last + 1; s <= now && s - last <= 60; s++)
		w->seconds[s % 60] = 0;
	for (int64_t m = last / 60 + 1; m <= now / 60 && m - last / 60 <= 60; m++)
		w->minutes[m % 60] = 0;
	for (int64_t h = last / 3600 + 1; h <= now / 3600 && h - last / 3600 <= 24; h++)
		w->hours[h % 24] = 0;
	w->last_second = now;
}

static uint32_t
policy_window_saturate(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void
policy_window_add(struct policy_window *w, time_t now, uint32_t n)
{
	int64_t t;

	policy_window_advance(w, (int64_t)now);
	t = w->last_second;
	w->seconds[t % 60] = policy_window_saturate(w->seconds[t % 60], n);
	w->minutes[(t / 60) % 60] =
	    policy_window_saturate(w->minutes[(t / 60) % 60], n);
	w->hours[(t / 3600) % 24] =
	    policy_window_saturate(w->hours[(t / 3600) % 24], n);
}

uint64_t
policy_window_count(const struct policy_window *w, time_t now,
    enum policy_window_span span)
{
	int64_t t = (int64_t)now, last = w->last_second;
	uint64_t sum = 0;

	if (last == 0)
		return 0;
	if (t < last)
		t = last;
	switch (span) {
	case POLICY_WINDOW_SECOND:
		return t == last ? w->seconds[t % 60] : 0;
	case POLICY_WINDOW_MINUTE:
		for (int64_t s = t - 59; s <= last; s++)
			if (s > last - 60)
				sum += w->seconds[s % 60];
		return sum;
	case POLICY_WINDOW_HOUR:
		for (int64_t m = t / 60 - 59; m <= last / 60; m++)
			if (m > last / 60 - 60)
				sum += w->minutes[m % 60];
		return sum;
	case POLICY_WINDOW_DAY:
		for (int64_t h = t / 3600 - 23; h <= last / 3600; h++)
			if (h > last / 3600 - 24)
				sum += w->hours[h % 24];
		return sum;
	default:
		fatal_bug("unknown window span %d", (int)span);
	}
}

int
policy_window_span_parse(const char *name)
{
	static const char *const names[POLICY_WINDOW_SPAN_COUNT] = {
		"second", "minute", "hour", "day",
	};

	for (int i = 0; i < POLICY_WINDOW_SPAN_COUNT; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

int
policy_tables_configure(const char *day_rollover, int max_entries,
    char **error)
{
	char time_of_day[8], zone[8], extra;
	int fields, offset, utc_offset;

	fields = sscanf(day_rollover, "%7s %7s %c", time_of_day, zone, &extra);
	if (fields < 1 || fields > 2 ||
	    policy_counters_parse_rollover(time_of_day,
	    fields == 2 ? zone : NULL, &offset, &utc_offset) < 0 ||
	    policy_counters_set_rollover(offset, utc_offset) < 0) {
		*error = xasprintf("day_rollover: invalid value \"%s\": "
		    "expected \"HH:MM\" or \"HH:MM +HHMM\"", day_rollover);
		return -1;
	}
	for (int id = 0; id < POLICY_TABLE_COUNT; id++)
		policy_tables_set_max(id, (size_t)max_entries);
	return 0;
}

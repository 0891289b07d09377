/*
 * policy_tables_persist.c - saving the counters, scores, warm-up plans
 * and suppressions to spool_directory/hints/ and loading them at
 * start-up.
 *
 * Each record's value is a version byte followed by the entry's C
 * structure as this build lays it out. Besides the entries, each file
 * contains one layout record (key POLICY_TABLES_LAYOUT_KEY) that names the
 * record version and value size the file was written with, in a fixed
 * byte order, and the table's eviction count, so that the count
 * survives restarts and a file written by a build with another layout
 * is reported as such instead of being read as garbage. Table keys
 * never start with a NUL byte, so the layout key cannot collide with
 * an entry. A file without a layout record (from an older build) is
 * read record by record and records of another version or size are
 * skipped and counted in the log. The files are sluice's own, so a
 * record of the right size is trusted, except that the readers
 * re-terminate strings and clamp scores. Throttles are not saved: a
 * restart refills every bucket, which only lets a burst through early.
 *
 * In builds with --enable-test-hooks, SLUICE_TEST_TABLE_LAYOUT=N in the
 * environment makes saves claim record layout N, to test how a file
 * from another build is reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hints_db.h"
#include "log.h"
#include "policy_tables_private.h"
#include "util.h"

#define POLICY_TABLES_RECORD_VERSION	1
/* The layout record: format version 1, then the record version (one
 * byte), the value size (4 bytes) and the eviction count (8 bytes),
 * most significant byte first. */
#define POLICY_TABLES_LAYOUT_FORMAT	1
#define POLICY_TABLES_LAYOUT_SIZE	14
/* Time between saves; a crash loses at most this much counting. */
#define POLICY_TABLES_SAVE_USEC		(60ULL * 1000000)

extern const size_t policy_counter_value_size;
extern const size_t policy_score_value_size;
extern const size_t policy_warmup_value_size;
extern const size_t policy_suppression_value_size;

/* Writes one entry as a line of text; in the file that owns its value. */
void policy_counters_print(FILE *out, const struct policy_table_entry *e);
void policy_scores_print(FILE *out, const struct policy_table_entry *e);
void policy_warmup_print(FILE *out, const struct policy_table_entry *e);
void policy_suppress_print(FILE *out, const struct policy_table_entry *e);

static const struct {
	enum policy_table_id id;
	const char *file;
	const size_t *value_size;
	void (*print)(FILE *out, const struct policy_table_entry *e);
} policy_saved_tables[] = {
	{ POLICY_TABLE_COUNTERS, "counters", &policy_counter_value_size,
	    policy_counters_print },
	{ POLICY_TABLE_SCORES, "scores", &policy_score_value_size,
	    policy_scores_print },
	{ POLICY_TABLE_WARMUP, "warmup", &policy_warmup_value_size,
	    policy_warmup_print },
	{ POLICY_TABLE_SUPPRESS, "suppress", &policy_suppression_value_size,
	    policy_suppress_print },
};

static struct {
	char *spool;
	struct clock_timer *timer;
	bool started;
} persist;

struct policy_tables_export {
	struct hints_snapshot *snapshot;
	size_t value_size;
	unsigned char *record;		/* version byte and value */
};

static int
policy_tables_export_entry(struct policy_table_entry *e, void *arg)
{
	struct policy_tables_export *x = arg;

	memcpy(x->record + 1, e->value, x->value_size);
	hints_snapshot_add(x->snapshot, e->key, e->key_len, x->record,
	    x->value_size + 1);
	return 0;
}

/* The record version saves claim: POLICY_TABLES_RECORD_VERSION, or in
 * test builds the one SLUICE_TEST_TABLE_LAYOUT names. */
static unsigned
policy_tables_saved_version(void)
{
#ifdef SLUICE_TEST_HOOKS
	const char *v = getenv("SLUICE_TEST_TABLE_LAYOUT");
	unsigned long long n;

	if (v != NULL && parse_uint(v, 255, &n) == 0)
		return (unsigned)n;
#endif
	return POLICY_TABLES_RECORD_VERSION;
}

/* What a file's layout record says. */
struct policy_tables_layout {
	unsigned version;
	uint32_t value_size;
	uint64_t evicted;
};

static void
policy_tables_layout_encode(const struct policy_tables_layout *l,
    unsigned char out[POLICY_TABLES_LAYOUT_SIZE])
{
	out[0] = POLICY_TABLES_LAYOUT_FORMAT;
	out[1] = (unsigned char)l->version;
	for (int i = 0; i < 4; i++)
		out[2 + i] = (unsigned char)(l->value_size >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		out[6 + i] = (unsigned char)(l->evicted >> (56 - 8 * i));
}

/* Returns 0, or -1 if value is not a layout record this build reads. */
static int
policy_tables_layout_decode(const unsigned char *value, size_t len,
    struct policy_tables_layout *l)
{
	if (len != POLICY_TABLES_LAYOUT_SIZE ||
	    value[0] != POLICY_TABLES_LAYOUT_FORMAT)
		return -1;
	l->version = value[1];
	l->value_size = 0;
	for (int i = 0; i < 4; i++)
		l->value_size = l->value_size << 8 | value[2 + i];
	l->evicted = 0;
	for (int i = 0; i < 8; i++)
		l->evicted = l->evicted << 8 | value[6 + i];
	return 0;
}

static struct hints_snapshot *
policy_tables_snapshot(size_t i)
{
	struct policy_tables_export x = {
		.snapshot = hints_snapshot_new(policy_saved_tables[i].file),
		.value_size = *policy_saved_tables[i].value_size,
	};
	struct policy_tables_layout layout = {
		.version = policy_tables_saved_version(),
		.value_size = (uint32_t)x.value_size,
		.evicted = policy_tables_evicted(policy_saved_tables[i].id),
	};
	unsigned char meta[POLICY_TABLES_LAYOUT_SIZE];

	policy_tables_layout_encode(&layout, meta);
	hints_snapshot_add(x.snapshot, POLICY_TABLES_LAYOUT_KEY,
	    POLICY_TABLES_LAYOUT_KEY_LEN, meta, sizeof(meta));
	x.record = xmalloc(x.value_size + 1);
	x.record[0] = (unsigned char)layout.version;
	policy_table_walk(policy_saved_tables[i].id, policy_tables_export_entry,
	    &x);
	free(x.record);
	return x.snapshot;
}

struct policy_tables_import {
	enum policy_table_id id;
	size_t value_size;
	bool have_layout;		/* the file has a layout record */
	bool other_layout;		/* ...naming a layout this build lacks */
	struct policy_tables_layout layout;
	size_t entries;			/* records other than the layout */
	size_t skipped;			/* of another version or size */
	size_t full;			/* not loaded: the table was full */
};

static int
policy_tables_import_layout(struct policy_tables_import *im,
    const void *value, size_t value_len)
{
	im->have_layout = true;
	if (policy_tables_layout_decode(value, value_len, &im->layout) < 0) {
		/* A layout record of a format this build does not know:
		 * nothing else in the file can be trusted either. */
		im->other_layout = true;
		im->layout.version = 0;
		im->layout.value_size = 0;
		return 0;
	}
	im->other_layout = im->layout.version != POLICY_TABLES_RECORD_VERSION ||
	    im->layout.value_size != im->value_size;
	if (!im->other_layout)
		policy_tables_count_evicted(im->id, im->layout.evicted);
	return 0;
}

static int
policy_tables_import_record(const void *key, size_t key_len,
    const void *value, size_t value_len, void *arg)
{
	struct policy_tables_import *im = arg;
	const unsigned char *bytes = value;
	struct policy_table_entry *e;

	/* Btree files are read in key order, and the layout key, starting
	 * with a NUL byte, sorts before every entry. */
	if (key_len == POLICY_TABLES_LAYOUT_KEY_LEN &&
	    memcmp(key, POLICY_TABLES_LAYOUT_KEY, key_len) == 0)
		return policy_tables_import_layout(im, value, value_len);
	im->entries++;
	if (im->other_layout || key_len > 2 * POLICY_TABLE_KEY_MAX + 1 ||
	    value_len != im->value_size + 1 ||
	    bytes[0] != POLICY_TABLES_RECORD_VERSION) {
		im->skipped++;
		return 0;
	}
	e = policy_table_lookup(im->id, key, key_len, true);
	if (e == NULL) {	/* the suppression table is full */
		im->full++;
		return 0;
	}
	memcpy(e->value, bytes + 1, im->value_size);
	return 0;
}

/* Describes a file written with another record layout, for the log and
 * for -bpt. Caller frees. */
static char *
policy_tables_layout_error(const char *spool, const char *file,
    const struct policy_tables_import *im)
{
	char *saved = im->layout.version == 0 ?
	    xstrdup("a layout record this build cannot read") :
	    xasprintf("record layout %u (%lu-byte values)", im->layout.version,
	    (unsigned long)im->layout.value_size);
	char *text = xasprintf("%s/%s/%s.db was written with %s, but this "
	    "build reads record layout %d (%zu-byte values), so its %zu "
	    "entries cannot be read", spool, HINTS_DIRECTORY, file, saved,
	    POLICY_TABLES_RECORD_VERSION, im->value_size, im->entries);

	free(saved);
	return text;
}

/* Loads table i from spool/hints/ into the empty table, logging what
 * could not be loaded. */
static void
policy_tables_load_one(const char *spool, size_t i)
{
	const char *file = policy_saved_tables[i].file;
	struct policy_tables_import im = {
		.id = policy_saved_tables[i].id,
		.value_size = *policy_saved_tables[i].value_size,
	};
	char *error = NULL;
	long count = hints_db_read(spool, file, policy_tables_import_record,
	    &im, &error);

	if (count < 0) {
		log_write(LOG_MAIN, NULL, "policy table %s not loaded, "
		    "starting empty: %s", file, error);
		free(error);
		return;
	}
	if (im.other_layout) {
		error = policy_tables_layout_error(spool, file, &im);
		log_write(LOG_MAIN, NULL, "policy table %s not loaded, "
		    "starting empty: %s; the next save replaces the file",
		    file, error);
		free(error);
		return;
	}
	if (im.skipped != 0)
		log_write(LOG_MAIN, NULL, "policy table %s: %zu records of "
		    "another layout skipped", file, im.skipped);
	if (im.full != 0)
		log_write(LOG_MAIN, NULL, "policy table %s: %zu records not "
		    "loaded because the table is full", file, im.full);
}

/* Loads every saved table; a file that cannot be read leaves its table
 * empty, and the next save replaces it. */
static void
policy_tables_load(const char *spool)
{
	for (size_t i = 0; i < ARRAY_SIZE(policy_saved_tables); i++)
		policy_tables_load_one(spool, i);
}

void
policy_tables_load_saved(const char *spool)
{
	SLUICE_ASSERT(!persist.started);
	policy_tables_load(spool);
}

void
policy_tables_save_now(void)
{
	if (!persist.started)
		return;
	/* Tables only grow, so an empty one has nothing to save and no
	 * file to replace. */
	for (size_t i = 0; i < ARRAY_SIZE(policy_saved_tables); i++)
		if (policy_tables_size(policy_saved_tables[i].id) != 0)
			hints_writer_submit(policy_tables_snapshot(i));
}

static void
policy_tables_save_cb(void *arg)
{
	(void)arg;
	policy_tables_save_now();
	clock_timer_arm(persist.timer, POLICY_TABLES_SAVE_USEC);
}

int
policy_tables_persist_start(struct event_base *base, const char *spool,
    char **error)
{
	SLUICE_ASSERT(!persist.started);
	policy_tables_load(spool);
	if (hints_writer_start(spool, error) < 0)
		return -1;
	persist.spool = xstrdup(spool);
	persist.timer = clock_timer_new(base, policy_tables_save_cb, NULL);
	clock_timer_arm(persist.timer, POLICY_TABLES_SAVE_USEC);
	persist.started = true;
	return 0;
}

void
policy_tables_persist_stop(void)
{
	if (!persist.started)
		return;
	clock_timer_free(persist.timer);
	persist.timer = NULL;
	policy_tables_save_now();
	hints_writer_stop();
	free(persist.spool);
	persist.spool = NULL;
	persist.started = false;
}

struct policy_tables_printer {
	FILE *out;
	void (*print)(FILE *out, const struct policy_table_entry *e);
};

static int
policy_tables_print_entry(struct policy_table_entry *e, void *arg)
{
	struct policy_tables_printer *p = arg;

	p->print(p->out, e);
	return 0;
}

int
policy_tables_dump(const char *spool, const char *name, FILE *out,
    char **error)
{
	struct policy_tables_printer printer = { .out = out };
	struct policy_tables_import im = { 0 };
	long count;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(policy_saved_tables); i++)
		if (strcmp(name, policy_saved_tables[i].file) == 0)
			break;
	if (i == ARRAY_SIZE(policy_saved_tables)) {
		*error = xasprintf("unknown table \"%s\": expected counters, "
		    "scores, warmup or suppress", name);
		return -1;
	}
	im.id = policy_saved_tables[i].id;
	im.value_size = *policy_saved_tables[i].value_size;
	policy_tables_set_max(im.id, SIZE_MAX);
	count = hints_db_read(spool, name, policy_tables_import_record, &im,
	    error);
	if (count < 0)
		return -1;
	if (im.other_layout) {
		*error = policy_tables_layout_error(spool, name, &im);
		return -1;
	}
	printer.print = policy_saved_tables[i].print;
	policy_table_walk(im.id, policy_tables_print_entry, &printer);
	if (im.skipped != 0)
		fprintf(out, "# %zu records of another layout skipped\n",
		    im.skipped);
	/* An extension's own line, in the shape of a comment, so that
	 * scripts reading the entries can skip it. */
	fprintf(out, "# evicted=%llu\n",
	    (unsigned long long)(im.have_layout ? im.layout.evicted : 0));
	return 0;
}

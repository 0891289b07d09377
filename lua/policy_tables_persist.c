/*
 * policy_tables_persist.c - saving the counters, scores, warm-up plans
 * and suppressions to spool_directory/hints/ and loading them at
 * start-up.
 *
 * Each record's value is a version byte followed by the entry's C
 * structure as this build lays it out. A record of another version or
 * size is skipped and counted in the log. The files are sluice's own,
 * so a record of the right size is trusted, except that the readers
 * re-terminate strings and clamp scores. Throttles are not saved: a
 * restart refills every bucket, which only lets a burst through early.
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

static struct hints_snapshot *
policy_tables_snapshot(size_t i)
{
	struct policy_tables_export x = {
		.snapshot = hints_snapshot_new(policy_saved_tables[i].file),
		.value_size = *policy_saved_tables[i].value_size,
	};

	x.record = xmalloc(x.value_size + 1);
	x.record[0] = POLICY_TABLES_RECORD_VERSION;
	policy_table_walk(policy_saved_tables[i].id, policy_tables_export_entry,
	    &x);
	free(x.record);
	return x.snapshot;
}

struct policy_tables_import {
	enum policy_table_id id;
	size_t value_size;
	size_t skipped;
};

static int
policy_tables_import_record(const void *key, size_t key_len,
    const void *value, size_t value_len, void *arg)
{
	struct policy_tables_import *im = arg;
	const unsigned char *bytes = value;
	struct policy_table_entry *e;

	if (key_len > 2 * POLICY_TABLE_KEY_MAX + 1 ||
	    value_len != im->value_size + 1 ||
	    bytes[0] != POLICY_TABLES_RECORD_VERSION) {
		im->skipped++;
		return 0;
	}
	e = policy_table_lookup(im->id, key, key_len, true);
	if (e == NULL) {	/* the suppression table is full */
		im->skipped++;
		return 0;
	}
	memcpy(e->value, bytes + 1, im->value_size);
	return 0;
}

/* Loads every saved table; a file that cannot be read leaves its table
 * empty, and the next save replaces it. */
static void
policy_tables_load(const char *spool)
{
	for (size_t i = 0; i < ARRAY_SIZE(policy_saved_tables); i++) {
		struct policy_tables_import im = {
			.id = policy_saved_tables[i].id,
			.value_size = *policy_saved_tables[i].value_size,
		};
		char *error = NULL;
		long count = hints_db_read(spool, policy_saved_tables[i].file,
		    policy_tables_import_record, &im, &error);

		if (count < 0) {
			log_write(LOG_MAIN, NULL, "policy table %s not loaded, "
			    "starting empty: %s", policy_saved_tables[i].file,
			    error);
			free(error);
			continue;
		}
		if (im.skipped != 0)
			log_write(LOG_MAIN, NULL, "policy table %s: %zu records "
			    "skipped (another layout, or the table is full)",
			    policy_saved_tables[i].file, im.skipped);
	}
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
	printer.print = policy_saved_tables[i].print;
	policy_table_walk(im.id, policy_tables_print_entry, &printer);
	if (im.skipped != 0)
		fprintf(out, "# %zu records of another layout skipped\n",
		    im.skipped);
	return 0;
}

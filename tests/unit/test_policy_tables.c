/*
 * test_policy_tables.c - counters, throttles, scores, warm-up plans and
 * suppressions, in C and from Lua, on the fake clock, and their saving.
 *
 * The fake clock moves forward on request but the real clock keeps
 * running under it, so each test first moves to the start of a second
 * (align_to()) and keeps at least a second of margin on every bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "clock.h"
#include "hints_db.h"
#include "log.h"
#include "policy_tables.h"

#define USEC	1000000LL

static char logged[4096];

static void
catch_log(unsigned targets, const char *msgid, const char *text)
{
	size_t used = strlen(logged);

	(void)targets;
	(void)msgid;
	snprintf(logged + used, sizeof(logged) - used, "%s\n", text);
}

/* Moves the fake clock to the start of the next second at which
 * (seconds since the epoch - offset) is a multiple of period. */
static time_t
align_to(int64_t period, int64_t offset)
{
	struct timeval tv;
	int64_t now, target;

	clock_now_tv(&tv);
	now = (int64_t)tv.tv_sec;
	target = now + 1;
	target += ((offset - target) % period + period) % period;
	clock_fake_advance((target - now) * USEC - tv.tv_usec);
	return (time_t)target;
}

static void
advance_seconds(int64_t seconds)
{
	clock_fake_advance(seconds * USEC);
}

static int
setup(void **state)
{
	(void)state;
	policy_tables_reset(0);
	policy_counters_set_rollover(0, 0);
	logged[0] = '\0';
	log_set_divert(catch_log);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_set_divert(NULL);
	return 0;
}

#define INCR(name, n)	policy_counters_incr(name, strlen(name), n)
#define RATE(name, span)	policy_counters_rate(name, strlen(name), span)

static void
test_counter_total_and_unknown(void **state)
{
	(void)state;
	assert_int_equal(INCR("a", 2), 0);
	assert_int_equal(INCR("a", 3), 0);
	assert_int_equal(policy_counters_get("a", 1), 5);
	assert_int_equal(policy_counters_get("b", 1), 0);
	assert_int_equal(policy_tables_size(POLICY_TABLE_COUNTERS), 1);
}

static void
test_counter_name_bounds(void **state)
{
	char name[POLICY_TABLE_KEY_MAX + 2];

	(void)state;
	memset(name, 'x', sizeof(name));
	assert_int_equal(policy_counters_incr(name, 0, 1), -1);
	assert_int_equal(policy_counters_incr(name, POLICY_TABLE_KEY_MAX + 1, 1),
	    -1);
	assert_int_equal(policy_counters_incr(name, POLICY_TABLE_KEY_MAX, 1), 0);
}

static void
test_counter_second_window(void **state)
{
	(void)state;
	align_to(1, 0);
	INCR("s", 4);
	assert_int_equal(RATE("s", POLICY_WINDOW_SECOND), 4);
	advance_seconds(1);
	assert_int_equal(RATE("s", POLICY_WINDOW_SECOND), 0);
	assert_int_equal(RATE("s", POLICY_WINDOW_MINUTE), 4);
}

static void
test_counter_minute_slides(void **state)
{
	(void)state;
	align_to(60, 0);
	INCR("m", 1);			/* at :00 */
	advance_seconds(30);
	INCR("m", 2);			/* at :30 */
	assert_int_equal(RATE("m", POLICY_WINDOW_MINUTE), 3);
	advance_seconds(29);		/* :59, both inside */
	assert_int_equal(RATE("m", POLICY_WINDOW_MINUTE), 3);
	advance_seconds(2);		/* 1:01, the first has left */
	assert_int_equal(RATE("m", POLICY_WINDOW_MINUTE), 2);
	advance_seconds(30);		/* 1:31, both have left */
	assert_int_equal(RATE("m", POLICY_WINDOW_MINUTE), 0);
	assert_int_equal(RATE("m", POLICY_WINDOW_HOUR), 3);
	assert_int_equal(policy_counters_get("m", 1), 3);
}

static void
test_counter_hour_and_day_slide(void **state)
{
	(void)state;
	align_to(3600, 0);
	INCR("h", 1);
	advance_seconds(1800);
	INCR("h", 1);
	advance_seconds(1805);		/* next hour: only the second is within */
	assert_int_equal(RATE("h", POLICY_WINDOW_HOUR), 1);
	assert_int_equal(RATE("h", POLICY_WINDOW_DAY), 2);
	advance_seconds(23 * 3600);	/* the first is a day old */
	assert_int_equal(RATE("h", POLICY_WINDOW_DAY), 0);
	advance_seconds(3 * 86400);	/* a long gap clears the slots */
	INCR("h", 5);
	assert_int_equal(RATE("h", POLICY_WINDOW_DAY), 5);
	assert_int_equal(RATE("h", POLICY_WINDOW_HOUR), 5);
}

static void
test_counter_day_rollover_zone(void **state)
{
	int offset, zone;

	(void)state;
	/* 06:00 at +02:00 is 04:00 UTC. */
	assert_int_equal(policy_counters_parse_rollover("06:00", "+0200",
	    &offset, &zone), 0);
	assert_int_equal(offset, 6 * 3600);
	assert_int_equal(zone, 2 * 3600);
	assert_int_equal(policy_counters_set_rollover(offset, zone), 0);

	align_to(86400, 4 * 3600 - 120);	/* 03:58 UTC */
	INCR("d", 7);
	assert_int_equal(policy_counters_today("d", 1), 7);
	advance_seconds(60);			/* 03:59 */
	INCR("d", 1);
	assert_int_equal(policy_counters_today("d", 1), 8);
	advance_seconds(61);			/* 04:00:01, a new day */
	assert_int_equal(policy_counters_today("d", 1), 0);
	INCR("d", 2);
	assert_int_equal(policy_counters_today("d", 1), 2);
	assert_int_equal(policy_counters_get("d", 1), 10);
}

static void
test_counter_rollover_parse_errors(void **state)
{
	int offset, zone;

	(void)state;
	assert_int_equal(policy_counters_parse_rollover("24:00", NULL,
	    &offset, &zone), -1);
	assert_int_equal(policy_counters_parse_rollover("7:00", NULL,
	    &offset, &zone), -1);
	assert_int_equal(policy_counters_parse_rollover("07:60", NULL,
	    &offset, &zone), -1);
	assert_int_equal(policy_counters_parse_rollover("07:00", "0200",
	    &offset, &zone), -1);
	assert_int_equal(policy_counters_parse_rollover("07:00", "+1500",
	    &offset, &zone), -1);
	assert_int_equal(policy_counters_parse_rollover("23:30", "-0530",
	    &offset, &zone), 0);
	assert_int_equal(zone, -(5 * 3600 + 30 * 60));
	assert_int_equal(policy_counters_set_rollover(86400, 0), -1);
}

static void
test_counter_lru_eviction(void **state)
{
	(void)state;
	policy_tables_set_max(POLICY_TABLE_COUNTERS, 3);
	INCR("a", 1);
	INCR("b", 1);
	INCR("c", 1);
	assert_int_equal(policy_counters_get("a", 1), 1);	/* a is now newest */
	INCR("d", 1);						/* evicts b */
	assert_int_equal(policy_tables_size(POLICY_TABLE_COUNTERS), 3);
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_COUNTERS), 1);
	assert_int_equal(policy_counters_get("b", 1), 0);
	assert_int_equal(policy_counters_get("a", 1), 1);
	assert_non_null(strstr(logged, "policy table counters is full"));
}

static void
test_rate_parse(void **state)
{
	struct policy_rate r;

	(void)state;
	assert_int_equal(policy_rate_parse("15/s", &r), 0);
	assert_true(r.per_second == 15);
	assert_int_equal(policy_rate_parse("120/m", &r), 0);
	assert_true(r.per_second == 2);
	assert_int_equal(policy_rate_parse("3600/h", &r), 0);
	assert_true(r.per_second == 1);
	assert_int_equal(policy_rate_parse("0/s", &r), -1);
	assert_int_equal(policy_rate_parse("5/x", &r), -1);
	assert_int_equal(policy_rate_parse("5/ss", &r), -1);
	assert_int_equal(policy_rate_parse("/s", &r), -1);
	assert_int_equal(policy_rate_parse("-1/s", &r), -1);
	assert_int_equal(policy_rate_parse("5", &r), -1);
	assert_int_equal(policy_rate_parse("10000000000/s", &r), -1);
}

static void
test_throttle_burst_then_interval(void **state)
{
	struct policy_rate r;
	uint64_t wait;

	(void)state;
	assert_int_equal(policy_rate_parse("10/s", &r), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 1);
	assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 0);
	assert_true(wait > 0);
	assert_true(wait <= 100000);
	clock_fake_advance(100000);
	assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 1);
	assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 0);
	/* After a full second the bucket is full again. */
	advance_seconds(1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 1);
	assert_int_equal(policy_throttles_try("t", 1, &r, 3, &wait), 0);
}

static void
test_throttle_rejects_bad_burst(void **state)
{
	struct policy_rate r = { .per_second = 1 };
	uint64_t wait;

	(void)state;
	assert_int_equal(policy_throttles_try("t", 1, &r, 0, &wait), -1);
	assert_int_equal(policy_throttles_try("t", 1, &r,
	    POLICY_THROTTLE_BURST_MAX + 1, &wait), -1);
	assert_int_equal(policy_throttles_try("", 0, &r, 1, &wait), -1);
}

static void
test_throttle_set_rate_reverts(void **state)
{
	struct policy_rate fast, slow;
	uint64_t wait;

	(void)state;
	assert_int_equal(policy_rate_parse("1/s", &fast), 0);
	assert_int_equal(policy_rate_parse("1/m", &slow), 0);
	assert_int_equal(policy_throttles_set_rate("x", 1, &slow, 300), 0);
	assert_int_equal(policy_throttles_try("x", 1, &fast, 1, &wait), 1);
	assert_int_equal(policy_throttles_try("x", 1, &fast, 1, &wait), 0);
	assert_true(wait > 59 * USEC);		/* the slow rate applies */
	assert_true(wait <= 60 * USEC);
	advance_seconds(301);			/* the override has expired */
	assert_int_equal(policy_throttles_try("x", 1, &fast, 1, &wait), 1);
	assert_int_equal(policy_throttles_try("x", 1, &fast, 1, &wait), 0);
	assert_true(wait <= USEC);
}

static void
test_score_clamp_and_default(void **state)
{
	(void)state;
	assert_true(policy_scores_get("192.0.2.7", "gmail") == POLICY_SCORE_INITIAL);
	assert_true(policy_scores_set("192.0.2.7", "gmail", 150) == 100);
	assert_true(policy_scores_adjust("192.0.2.7", "gmail", -30) == 70);
	assert_true(policy_scores_adjust("192.0.2.7", "gmail", -500) == 0);
	assert_true(policy_scores_set("192.0.2.7", "gmail", -1) == 0);
	assert_true(policy_scores_get("192.0.2.7", "yahoo") == POLICY_SCORE_INITIAL);
	assert_true(policy_scores_set("", "gmail", 1) == -1);
}

static void
test_score_record_formula(void **state)
{
	(void)state;
	align_to(60, 0);
	assert_true(policy_scores_record("ip", "s", POLICY_OUTCOME_DELIVERED) == 51);
	assert_true(policy_scores_record("ip", "s", POLICY_OUTCOME_DEFERRED) == 49);
	assert_true(policy_scores_record("ip", "s", POLICY_OUTCOME_FAILED) == 44);
	assert_true(policy_scores_record("ip", "s", POLICY_OUTCOME_COMPLAINED) == 24);
	assert_int_equal(policy_scores_outcomes("ip", "s",
	    POLICY_OUTCOME_FAILED, POLICY_WINDOW_MINUTE), 1);
	advance_seconds(120);
	assert_int_equal(policy_scores_outcomes("ip", "s",
	    POLICY_OUTCOME_FAILED, POLICY_WINDOW_MINUTE), 0);
	assert_int_equal(policy_scores_outcomes("ip", "s",
	    POLICY_OUTCOME_FAILED, POLICY_WINDOW_HOUR), 1);
}

static int
count_pair(const char *ip, const char *site, double score, void *arg)
{
	int *seen = arg;

	if (strcmp(ip, "10.0.0.1") == 0 && strcmp(site, "b") == 0 && score == 7)
		seen[0]++;
	seen[1]++;
	return 0;
}

static void
test_score_each_walks_pairs(void **state)
{
	int seen[2] = { 0, 0 };

	(void)state;
	policy_scores_set("10.0.0.1", "a", 5);
	policy_scores_set("10.0.0.1", "b", 7);
	policy_scores_set("10.0.0.2", "a", 9);
	assert_int_equal(policy_scores_each(count_pair, seen), 0);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 3);
}

static void
test_warmup_days_follow_rollover(void **state)
{
	(void)state;
	align_to(86400, 86400 - 3600);		/* 23:00 UTC */
	assert_int_equal(policy_warmup_day("192.0.2.7"), 0);
	assert_null(policy_warmup_plan("192.0.2.7"));
	assert_int_equal(policy_warmup_start("192.0.2.7", "slow"), 1);
	assert_string_equal(policy_warmup_plan("192.0.2.7"), "slow");
	assert_int_equal(policy_warmup_sent("192.0.2.7", "gmail", 40), 0);
	assert_int_equal(policy_warmup_sent_today("192.0.2.7", "gmail"), 40);
	assert_int_equal(policy_counters_get("warmup:192.0.2.7:gmail",
	    strlen("warmup:192.0.2.7:gmail")), 40);

	advance_seconds(3601);			/* 00:00:01, day 2 */
	assert_int_equal(policy_warmup_day("192.0.2.7"), 2);
	assert_int_equal(policy_warmup_sent_today("192.0.2.7", "gmail"), 0);
	/* The same plan keeps its start, another one restarts it. */
	assert_int_equal(policy_warmup_start("192.0.2.7", "slow"), 2);
	advance_seconds(2 * 86400);
	assert_int_equal(policy_warmup_day("192.0.2.7"), 4);
	assert_int_equal(policy_warmup_start("192.0.2.7", "fast"), 1);
	assert_int_equal(policy_warmup_start("", "fast"), -1);
	assert_int_equal(policy_warmup_start("192.0.2.8", ""), -1);
}

static void
test_configure_checks_options(void **state)
{
	char *error = NULL;

	(void)state;
	assert_int_equal(policy_tables_configure("06:00 +0200", 5, &error), 0);
	for (int i = 0; i < 7; i++) {
		char name[8];

		snprintf(name, sizeof(name), "c%d", i);
		INCR(name, 1);
	}
	assert_int_equal(policy_tables_size(POLICY_TABLE_COUNTERS), 5);

	assert_int_equal(policy_tables_configure("6:00", 5, &error), -1);
	assert_non_null(strstr(error, "day_rollover: invalid value \"6:00\""));
	free(error);
	error = NULL;
	assert_int_equal(policy_tables_configure("06:00 +0200 x", 5, &error),
	    -1);
	free(error);
	error = NULL;
	assert_int_equal(policy_tables_configure("", 5, &error), -1);
	free(error);
}

static void
test_suppress_address_and_domain(void **state)
{
	(void)state;
	assert_null(policy_suppress_check("bob@example.com"));
	assert_int_equal(policy_suppress_add("Bob@Example.com", "unsubscribed",
	    0), 0);
	assert_int_equal(policy_suppress_add("spam.test", "domain blocked", 0), 0);
	assert_string_equal(policy_suppress_check("bob@example.COM"),
	    "unsubscribed");
	assert_null(policy_suppress_check("carol@example.com"));
	assert_string_equal(policy_suppress_check("anyone@SPAM.test"),
	    "domain blocked");
	assert_int_equal(policy_suppress_remove("bob@example.com"), 1);
	assert_int_equal(policy_suppress_remove("bob@example.com"), 0);
	assert_null(policy_suppress_check("bob@example.com"));
}

static void
test_suppress_expiry_and_bounds(void **state)
{
	char long_entry[POLICY_SUPPRESS_ENTRY_MAX + 2];

	(void)state;
	assert_int_equal(policy_suppress_add("a@b.test", "bounced", 3600), 0);
	advance_seconds(3599);
	assert_non_null(policy_suppress_check("a@b.test"));
	advance_seconds(2);
	assert_null(policy_suppress_check("a@b.test"));
	assert_int_equal(policy_tables_size(POLICY_TABLE_SUPPRESS), 0);

	assert_int_equal(policy_suppress_add("a@b.test", "", 0), -1);
	assert_int_equal(policy_suppress_add("a@b.test", "bad\r\nreason", 0), -1);
	memset(long_entry, 'x', sizeof(long_entry) - 1);
	long_entry[sizeof(long_entry) - 1] = '\0';
	assert_int_equal(policy_suppress_add(long_entry, "long", 0), -1);
}

static void
test_suppress_full_never_evicts(void **state)
{
	(void)state;
	policy_tables_set_max(POLICY_TABLE_SUPPRESS, 2);
	assert_int_equal(policy_suppress_add("a@x.test", "one", 0), 0);
	assert_int_equal(policy_suppress_add("b@x.test", "two", 0), 0);
	assert_int_equal(policy_suppress_add("c@x.test", "three", 0), -1);
	assert_string_equal(policy_suppress_check("a@x.test"), "one");
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_SUPPRESS), 0);
	/* An existing entry can still be updated. */
	assert_int_equal(policy_suppress_add("a@x.test", "again", 0), 0);
	assert_string_equal(policy_suppress_check("a@x.test"), "again");
}

/* ---- saving ---- */

static int
remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
make_spool(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/sluice-tables-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void
remove_spool(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_save_and_load_round_trip(void **state)
{
	struct event_base *base = event_base_new();
	char dir[64], *error = NULL;

	(void)state;
	make_spool(dir, sizeof(dir));
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	INCR("rcpt:example.com", 3);
	policy_scores_set("192.0.2.7", "gmail", 77);
	policy_warmup_start("192.0.2.9", "slow");
	policy_suppress_add("bob@example.com", "unsubscribed", 0);
	policy_tables_persist_stop();

	policy_tables_reset(0);
	assert_int_equal(policy_counters_get("rcpt:example.com", 16), 0);
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_int_equal(policy_counters_get("rcpt:example.com", 16), 3);
	assert_int_equal(policy_counters_today("rcpt:example.com", 16), 3);
	assert_true(policy_scores_get("192.0.2.7", "gmail") == 77);
	assert_string_equal(policy_warmup_plan("192.0.2.9"), "slow");
	assert_int_equal(policy_warmup_day("192.0.2.9"), 1);
	assert_string_equal(policy_suppress_check("bob@example.com"),
	    "unsubscribed");
	policy_tables_persist_stop();
	event_base_free(base);
	remove_spool(dir);
}

/* Prints saved table name into buf with policy_tables_dump(); returns
 * its result. */
static int
dump_table(const char *dir, const char *name, char *buf, size_t size,
    char **error)
{
	FILE *fp = fmemopen(buf, size, "w");
	int rc;

	assert_non_null(fp);
	rc = policy_tables_dump(dir, name, fp, error);
	fclose(fp);
	return rc;
}

static void
test_eviction_count_is_saved(void **state)
{
	struct event_base *base = event_base_new();
	char dir[64], text[1024], *error = NULL;

	(void)state;
	make_spool(dir, sizeof(dir));
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	policy_tables_set_max(POLICY_TABLE_COUNTERS, 2);
	INCR("a", 1);
	INCR("b", 1);
	INCR("c", 1);
	INCR("d", 1);
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_COUNTERS), 2);
	policy_tables_persist_stop();

	assert_int_equal(dump_table(dir, "counters", text, sizeof(text),
	    &error), 0);
	assert_non_null(strstr(text, "\nd total=1 "));
	assert_non_null(strstr(text, "\n# evicted=2\n"));
	assert_null(strstr(text, "a total"));

	/* A restart carries the count on, and evictions add to it. */
	policy_tables_reset(2);
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_COUNTERS), 2);
	INCR("e", 1);
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_COUNTERS), 3);
	policy_tables_persist_stop();
	policy_tables_reset(0);
	assert_int_equal(dump_table(dir, "counters", text, sizeof(text),
	    &error), 0);
	assert_non_null(strstr(text, "# evicted=3\n"));
	event_base_free(base);
	remove_spool(dir);
}

/* Writes a counters file with one entry of value_size bytes and, with
 * with_layout, a layout record naming version and value_size. */
static void
write_layout_file(const char *dir, unsigned version, uint32_t value_size,
    bool with_layout)
{
	struct hints_snapshot *s = hints_snapshot_new("counters");
	unsigned char layout[14] = { 1, (unsigned char)version,
	    (unsigned char)(value_size >> 24), (unsigned char)(value_size >> 16),
	    (unsigned char)(value_size >> 8), (unsigned char)value_size,
	    0, 0, 0, 0, 0, 0, 0, 9 };
	unsigned char *record = calloc(1, value_size + 1);
	char *error = NULL;

	assert_non_null(record);
	record[0] = (unsigned char)version;
	if (with_layout)
		hints_snapshot_add(s, "\0layout", 7, layout, sizeof(layout));
	hints_snapshot_add(s, "old", 3, record, value_size + 1);
	assert_int_equal(hints_db_write(dir, s, &error), 0);
	hints_snapshot_free(s);
	free(record);
}

static void
test_other_layout_is_reported(void **state)
{
	struct event_base *base = event_base_new();
	char dir[64], text[1024], *error = NULL;

	(void)state;
	make_spool(dir, sizeof(dir));
	write_layout_file(dir, 99, 640, true);
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_non_null(strstr(logged, "policy table counters not loaded, "
	    "starting empty: "));
	assert_non_null(strstr(logged, "/hints/counters.db was written with "
	    "record layout 99 (640-byte values), but this build reads record "
	    "layout 1 ("));
	assert_non_null(strstr(logged, "so its 1 entries cannot be read"));
	assert_int_equal(policy_tables_size(POLICY_TABLE_COUNTERS), 0);
	assert_int_equal(policy_tables_evicted(POLICY_TABLE_COUNTERS), 0);
	policy_tables_persist_stop();	/* nothing counted: not replaced */

	policy_tables_reset(0);
	assert_int_equal(dump_table(dir, "counters", text, sizeof(text),
	    &error), -1);
	assert_non_null(strstr(error, "record layout 99 (640-byte values)"));
	free(error);
	error = NULL;

	/* A file from before layout records: the record of another size
	 * is skipped and counted. */
	policy_tables_reset(0);
	logged[0] = '\0';
	write_layout_file(dir, 1, 3, false);
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_non_null(strstr(logged, "policy table counters: 1 records of "
	    "another layout skipped"));
	policy_tables_persist_stop();
	policy_tables_reset(0);
	assert_int_equal(dump_table(dir, "counters", text, sizeof(text),
	    &error), 0);
	assert_string_equal(text, "# 1 records of another layout skipped\n"
	    "# evicted=0\n");
	event_base_free(base);
	remove_spool(dir);
}

static void
test_corrupt_file_starts_empty(void **state)
{
	struct event_base *base = event_base_new();
	char dir[64], path[128], *error = NULL;
	FILE *fp;

	(void)state;
	make_spool(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/hints", dir);
	assert_int_equal(mkdir(path, 0750), 0);
	snprintf(path, sizeof(path), "%s/hints/counters.db", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("this is not a Berkeley DB file\n", fp);
	fclose(fp);

	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_non_null(strstr(logged, "policy table counters not loaded, "
	    "starting empty"));
	assert_non_null(strstr(logged, "unexpected file type or format"));
	assert_int_equal(policy_tables_size(POLICY_TABLE_COUNTERS), 0);
	/* The next save replaces the corrupt file. */
	INCR("x", 1);
	policy_tables_persist_stop();
	policy_tables_reset(0);
	logged[0] = '\0';
	assert_int_equal(policy_tables_persist_start(base, dir, &error), 0);
	assert_int_equal(policy_counters_get("x", 1), 1);
	assert_null(strstr(logged, "not loaded"));
	policy_tables_persist_stop();
	event_base_free(base);
	remove_spool(dir);
}

static int
sum_record(const void *key, size_t key_len, const void *value,
    size_t value_len, void *arg)
{
	long *sum = arg;
	long v;

	(void)key;
	(void)key_len;
	assert_int_equal(value_len, sizeof(v));
	memcpy(&v, value, sizeof(v));
	*sum += v;
	return 0;
}

static struct hints_snapshot *
numbered_snapshot(int count, long value)
{
	struct hints_snapshot *s = hints_snapshot_new("numbers");

	for (int i = 0; i < count; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%04d", i);
		hints_snapshot_add(s, key, strlen(key), &value, sizeof(value));
	}
	return s;
}

static void
test_crash_during_save_keeps_old(void **state)
{
	char dir[64], *error = NULL;
	struct hints_snapshot *old = numbered_snapshot(3, 1);
	long sum = 0;
	pid_t pid;
	int status;

	(void)state;
	make_spool(dir, sizeof(dir));
	assert_int_equal(hints_db_write(dir, old, &error), 0);
	hints_snapshot_free(old);

	for (int k = 1; k <= 5; k++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct hints_snapshot *next = numbered_snapshot(5, 10);
			char value[16];

			snprintf(value, sizeof(value), "%d", k);
			setenv("SLUICE_TEST_HINTS_KILL_AFTER", value, 1);
			hints_db_write(dir, next, &error);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);

		sum = 0;
		assert_int_equal(hints_db_read(dir, "numbers", sum_record, &sum,
		    &error), 3);
		assert_int_equal(sum, 3);	/* the old snapshot, whole */
	}

	/* Without the hook the new snapshot replaces the old one. */
	old = numbered_snapshot(5, 10);
	assert_int_equal(hints_db_write(dir, old, &error), 0);
	hints_snapshot_free(old);
	sum = 0;
	assert_int_equal(hints_db_read(dir, "numbers", sum_record, &sum,
	    &error), 5);
	assert_int_equal(sum, 50);
	remove_spool(dir);
}

static void
test_missing_file_reads_empty(void **state)
{
	char dir[64], *error = NULL;
	long sum = 0;

	(void)state;
	make_spool(dir, sizeof(dir));
	assert_int_equal(hints_db_read(dir, "numbers", sum_record, &sum,
	    &error), 0);
	remove_spool(dir);
}

/* ---- from Lua ---- */

static lua_State *
lua_with_tables(void)
{
	lua_State *L = luaL_newstate();

	assert_non_null(L);
	luaL_openlibs(L);
	lua_newtable(L);
	policy_tables_open(L);
	lua_setglobal(L, "sluice");
	return L;
}

/* Runs code; returns NULL on success or the error message. */
static const char *
run(lua_State *L, const char *code)
{
	if (luaL_dostring(L, code) != 0)
		return lua_tostring(L, -1);
	return NULL;
}

/* Runs code that must succeed. */
static void
run_ok(lua_State *L, const char *code)
{
	const char *err = run(L, code);

	if (err != NULL)
		fail_msg("Lua error: %s", err);
}

static void
test_lua_counters_and_throttles(void **state)
{
	lua_State *L = lua_with_tables();
	(void)state;
	align_to(1, 0);
	run_ok(L,
	    "local c = sluice.counters\n"
	    "assert(c:incr('gmail') == 1)\n"
	    "assert(c:incr('gmail', 4) == 5)\n"
	    "assert(c:get('gmail') == 5)\n"
	    "assert(c:rate('gmail', 'minute') == 5)\n"
	    "assert(c:today('gmail') == 5)\n"
	    "local t = sluice.throttles\n"
	    "assert(t:try('ip1', '2/s', 2) == true)\n"
	    "assert(t:try('ip1', '2/s', 2) == true)\n"
	    "local ok, wait = t:try('ip1', '2/s', 2)\n"
	    "assert(ok == false and wait > 0 and wait <= 0.5, tostring(wait))\n"
	    "t:set_rate('ip1', '1/h', 60)\n");
	lua_close(L);
}

static void
test_lua_scores(void **state)
{
	lua_State *L = lua_with_tables();
	(void)state;
	run_ok(L,
	    "local s = sluice.scores\n"
	    "assert(s:get('192.0.2.7', 'gmail') == 50)\n"
	    "assert(s:set('192.0.2.7', 'gmail', 120) == 100)\n"
	    "assert(s:adjust('192.0.2.7', 'gmail', -10) == 90)\n"
	    "assert(s:record('192.0.2.7', 'gmail', 'failed') == 85)\n"
	    "assert(s:outcomes('192.0.2.7', 'gmail', 'failed', 'day') == 1)\n"
	    "local n = 0\n"
	    "s:each(function(ip, site, score)\n"
	    "  n = n + 1\n"
	    "  s:adjust(ip, site, 1)\n"
	    "  assert(ip == '192.0.2.7' and site == 'gmail' and score == 85)\n"
	    "end)\n"
	    "assert(n == 1 and s:get('192.0.2.7', 'gmail') == 86)\n"
	    "local w = sluice.warmup\n"
	    "assert(w:day('192.0.2.7') == 0 and w:plan('192.0.2.7') == nil)\n"
	    "assert(w:start('192.0.2.7', 'slow') == 1)\n"
	    "assert(w:day('192.0.2.7') == 1 and w:plan('192.0.2.7') == 'slow')\n"
	    "assert(w:sent('192.0.2.7', 'gmail') == 1)\n"
	    "assert(w:sent('192.0.2.7', 'gmail', 9) == 10)\n"
	    "assert(w:sent_today('192.0.2.7', 'gmail') == 10)\n"
	    "local x = sluice.suppress\n"
	    "x:add('bob@example.com', 'unsubscribed')\n"
	    "assert(x:check('BOB@example.com') == 'unsubscribed')\n"
	    "assert(x:check('carol@example.com') == nil)\n"
	    "assert(x:remove('bob@example.com') == true)\n"
	    "assert(x:remove('bob@example.com') == false)\n");
	lua_close(L);
}

static void
test_lua_class_and_argument_checks(void **state)
{
	static const struct {
		const char *code;
		const char *error;
	} cases[] = {
		{ "sluice.counters.incr('x')", "sluice.counters expected" },
		{ "sluice.counters.get(sluice.scores, 'x')",
		    "sluice.counters expected" },
		{ "sluice.scores.get({}, 'a', 'b')", "sluice.scores expected" },
		{ "sluice.throttles.try(sluice.counters, 'x', '1/s')",
		    "sluice.throttles expected" },
		{ "sluice.counters:incr('')", "name must be 1 to" },
		{ "sluice.counters:incr('x', 1.5)", "whole number" },
		{ "sluice.counters:incr('x', -1)", "whole number" },
		{ "sluice.counters:rate('x', 'week')", "window must be" },
		{ "sluice.throttles:try('x', '15 per second')", "rate must be" },
		{ "sluice.throttles:try('x', '1/s', 0)", "whole number" },
		{ "sluice.throttles:set_rate('x', '1/s')", "seconds expected" },
		{ "sluice.scores:set('ip', 'site', 0/0)", "finite number" },
		{ "sluice.scores:record('ip', 'site', 'bounced')",
		    "outcome must be" },
		{ "sluice.scores:get('ip\\0x', 'site')", "without NUL" },
		{ "sluice.counters.incr = nil", "read-only" },
		{ "sluice.warmup.day('192.0.2.7')", "sluice.warmup expected" },
		{ "sluice.suppress.check('a@b.test')", "sluice.suppress expected" },
		{ "sluice.suppress:add('a@b.test', 'bad\\nreason')",
		    "printable ASCII" },
		{ "sluice.warmup:start('192.0.2.7', '')", "expected 1 to 64 bytes" },
		{ "sluice.warmup:sent('192.0.2.7', 'gmail', -1)", "whole number" },
	};
	lua_State *L = lua_with_tables();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = run(L, cases[i].code);

		if (err == NULL)
			fail_msg("no error from %s", cases[i].code);
		if (strstr(err, cases[i].error) == NULL)
			fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].code,
			    err, cases[i].error);
		lua_settop(L, 0);
	}
	lua_close(L);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter_total_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_name_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_second_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_minute_slides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_hour_and_day_slide, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_day_rollover_zone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_rollover_parse_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_lru_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle_burst_then_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle_rejects_bad_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle_set_rate_reverts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_score_clamp_and_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_score_record_formula, setup, teardown),
		cmocka_unit_test_setup_teardown(test_score_each_walks_pairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warmup_days_follow_rollover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suppress_address_and_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suppress_expiry_and_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suppress_full_never_evicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configure_checks_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_and_load_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_count_is_saved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_layout_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_starts_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_save_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_reads_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lua_counters_and_throttles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lua_scores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lua_class_and_argument_checks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

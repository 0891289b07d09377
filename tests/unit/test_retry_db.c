/*
 * test_retry_db.c - the retry state file: records written, read back,
 * replaced, deleted and listed in a scratch spool, and the record decoder's
 * bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "retry_db.h"
#include "retry.h"

#define HOST_KEY "T:mx.example.com:192.0.2.1"

static int
setup(void **state)
{
	char *dir = strdup("/tmp/test_retry_db_XXXXXX");

	if (dir == NULL || mkdtemp(dir) == NULL)
		return -1;
	*state = dir;
	return 0;
}

static int
teardown(void **state)
{
	char *dir = *state;
	char *command;

	if (asprintf(&command, "rm -rf '%s'", dir) < 0)
		return -1;
	if (system(command) != 0) {
		free(command);
		return -1;
	}
	free(command);
	free(dir);
	return 0;
}

static struct retry_db *
open_db(const char *dir, bool write)
{
	struct retry_db *db = NULL;
	char *error = NULL;

	if (retry_db_open(dir, write, &db, &error) != 0)
		fail_msg("retry_db_open: %s", error ? error : "not found");
	return db;
}

static void
test_missing_database_read_only(void **state)
{
	struct retry_db *db = NULL;
	char *error = NULL;

	assert_int_equal(retry_db_open(*state, false, &db, &error), 1);
	assert_null(db);
	assert_null(error);
}

static void
test_put_get_delete(void **state)
{
	struct retry_db_record record = {
		.first_failed = 1700000000, .last_try = 1700000900,
		.next_try = 1700001800, .expired = false, .error = 111,
		.more_error = 65, .text = "Connection refused",
	};
	struct retry_db_record read;
	struct retry_db *db = open_db(*state, true);
	char *error = NULL;
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/hints/retry-state.db", (char *)*state);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/hints/retry-state.lockfile",
	    (char *)*state);
	assert_int_equal(stat(path, &st), 0);

	assert_int_equal(retry_db_get(db, HOST_KEY, &read, &error), 0);
	assert_int_equal(retry_db_put(db, HOST_KEY, &record, &error), 0);
	assert_int_equal(retry_db_get(db, HOST_KEY, &read, &error), 1);
	assert_int_equal(read.first_failed, record.first_failed);
	assert_int_equal(read.last_try, record.last_try);
	assert_int_equal(read.next_try, record.next_try);
	assert_false(read.expired);
	assert_int_equal(read.error, 111);
	assert_int_equal(read.more_error, 65);
	assert_string_equal(read.text, "Connection refused");

	record.expired = true;
	record.error = -44;
	strcpy(record.text, "451 try later");
	assert_int_equal(retry_db_put(db, HOST_KEY, &record, &error), 0);
	retry_db_close(db);

	/* Another handle, read-only, sees the replaced record. */
	db = open_db(*state, false);
	assert_int_equal(retry_db_get(db, HOST_KEY, &read, &error), 1);
	assert_true(read.expired);
	assert_int_equal(read.error, -44);
	assert_string_equal(read.text, "451 try later");
	retry_db_close(db);

	db = open_db(*state, true);
	assert_int_equal(retry_db_delete(db, HOST_KEY, &error), 0);
	assert_int_equal(retry_db_delete(db, HOST_KEY, &error), 0);
	assert_int_equal(retry_db_get(db, HOST_KEY, &read, &error), 0);
	retry_db_close(db);
}

static void
test_invalid_key(void **state)
{
	struct retry_db *db = NULL;
	struct retry_db_record read;
	char *error = NULL;
	char key[RETRY_DB_KEY_MAX + 2];

	db = open_db(*state, true);
	memset(key, 'a', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(retry_db_get(db, key, &read, &error), -1);
	assert_non_null(error);
	free(error);
	error = NULL;
	assert_int_equal(retry_db_get(db, "", &read, &error), -1);
	free(error);
	retry_db_close(db);
}

static void
test_decode_bounds(void **state)
{
	struct retry_db_record record = { .first_failed = 1, .last_try = 2,
	    .next_try = 3, .text = "x" };
	struct retry_db_record read;
	unsigned char buf[RETRY_DB_RECORD_MAX];
	size_t len;

	(void)state;
	memset(record.text, 'y', sizeof(record.text));	/* no NUL */
	len = retry_db_encode(&record, buf);
	assert_true(len <= sizeof(buf));
	assert_int_equal(retry_db_decode(buf, len, &read), 0);
	assert_int_equal(strlen(read.text), RETRY_DB_TEXT_MAX - 1);

	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(retry_db_decode(buf, cut, &read), -1);
	buf[0] = 'X';
	assert_int_equal(retry_db_decode(buf, len, &read), -1);
	buf[0] = 'S';
	buf[28] = 2;			/* expired must be 0 or 1 */
	assert_int_equal(retry_db_decode(buf, len, &read), -1);
}

/* A host failure recorded by the default rule: the stored next-try time
 * is the one the schedule set, on the fake clock. */
static void
test_schedule_stored(void **state)
{
	struct retry_rule rule;
	struct retry_state retry = { 0 };
	struct retry_db_record record = { 0 }, read;
	struct retry_db *db;
	char *error = NULL;
	time_t start = clock_now();

	assert_int_equal(retry_rule_parse("* * F,2h,15m; G,16h,1h,1.5",
	    &rule, &error), 0);
	for (int i = 0; i < 9; i++) {
		retry_state_update(&retry, &rule, clock_now(),
		    RETRY_INTERVAL_MAX_DEFAULT, 0);
		clock_fake_advance((int64_t)(retry.next_try - clock_now()) *
		    1000000);
	}
	record.first_failed = retry.first_failed;
	record.last_try = retry.last_try;
	record.next_try = retry.next_try;
	record.expired = retry.expired;
	db = open_db(*state, true);
	assert_int_equal(retry_db_put(db, HOST_KEY, &record, &error), 0);
	retry_db_close(db);

	db = open_db(*state, false);
	assert_int_equal(retry_db_get(db, HOST_KEY, &read, &error), 1);
	retry_db_close(db);
	assert_int_equal(read.first_failed, start);
	/* Eight 15-minute gaps, then the first G gap of one hour. */
	assert_int_equal(read.last_try, start + 2 * 3600);
	assert_int_equal(read.next_try, start + 3 * 3600);
	assert_false(read.expired);
	retry_rule_free(&rule);
}

struct seen_records {
	char keys[4][64];
	time_t next_try[4];
	size_t count;
};

static void
record_seen(void *arg, const char *key, const struct retry_db_record *record)
{
	struct seen_records *seen = arg;

	if (seen->count < 4) {
		snprintf(seen->keys[seen->count], sizeof(seen->keys[0]), "%s",
		    key);
		seen->next_try[seen->count] = record->next_try;
	}
	seen->count++;
}

static void
test_each_visits_every_record(void **state)
{
	static const char *const keys[] = { "T:a.example:192.0.2.1",
	    "T:b.example:192.0.2.2:2525", "R:c.example" };
	struct retry_db_record record = { .first_failed = 100, .last_try = 100 };
	struct seen_records seen = { .count = 0 };
	struct retry_db *db = open_db(*state, true);
	char *error = NULL;

	for (size_t i = 0; i < 3; i++) {
		record.next_try = 1000 + (time_t)i;
		assert_int_equal(retry_db_put(db, keys[i], &record, &error), 0);
	}
	assert_int_equal(retry_db_each(db, record_seen, &seen, &error), 0);
	retry_db_close(db);

	assert_int_equal(seen.count, 3);
	for (size_t i = 0; i < 3; i++) {
		bool found = false;

		for (size_t j = 0; j < seen.count; j++) {
			if (strcmp(seen.keys[j], keys[i]) == 0) {
				found = true;
				assert_int_equal(seen.next_try[j], 1000 + (time_t)i);
			}
		}
		if (!found)
			fail_msg("key %s not visited", keys[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_database_read_only,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_delete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_invalid_key,
		    setup, teardown),
		cmocka_unit_test(test_decode_bounds),
		cmocka_unit_test_setup_teardown(test_each_visits_every_record,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_stored, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_msgid.c - message id generation, parsing and ordering.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "msgid.h"
#include "util.h"

/* The invented example: 2025-03-14 09:26:53 UTC, pid 48213. */
#define EXAMPLE_TIME	1741944413
#define EXAMPLE_PID	48213

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts ids and fails on the first duplicate. */
static void
assert_all_distinct(char **ids, size_t count)
{
	qsort(ids, count, sizeof(*ids), compare_strings);
	for (size_t i = 1; i < count; i++) {
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("id %s issued twice", ids[i]);
	}
}

static void
encode_current_example(void **state)
{
	struct msgid_parts parts = {
		.time = EXAMPLE_TIME, .pid = EXAMPLE_PID, .subsecond = 412345,
	};
	char id[MSGID_SIZE];

	(void)state;
	msgid_encode(MSGID_FORMAT_CURRENT, &parts, id);
	assert_string_equal(id, "1tt1Jd-00000000CXd-1jGj");
}

static void
encode_classic_example(void **state)
{
	/* 0.412345 s in the 1/2000 s units Exim documents is 824. */
	struct msgid_parts parts = {
		.time = EXAMPLE_TIME, .pid = EXAMPLE_PID, .subsecond = 824,
	};
	char id[MSGID_SIZE];

	(void)state;
	msgid_encode(MSGID_FORMAT_CLASSIC, &parts, id);
	assert_string_equal(id, "1tt1Jd-000CXd-DI");
}

static void
decode_both_forms(void **state)
{
	enum msgid_format format;
	struct msgid_parts parts;

	(void)state;
	assert_int_equal(msgid_decode("1tt1Jd-00000000CXd-1jGj", &format,
	    &parts), 0);
	assert_int_equal(format, MSGID_FORMAT_CURRENT);
	assert_int_equal(parts.time, EXAMPLE_TIME);
	assert_int_equal(parts.pid, EXAMPLE_PID);
	assert_int_equal(parts.subsecond, 412345);

	assert_int_equal(msgid_decode("1tt1Jd-000CXd-DI-H", &format, &parts),
	    0);
	assert_int_equal(format, MSGID_FORMAT_CLASSIC);
	assert_int_equal(parts.time, EXAMPLE_TIME);
	assert_int_equal(parts.pid, EXAMPLE_PID);
	assert_int_equal(parts.subsecond, 824);
}

static void
encode_decode_round_trip(void **state)
{
	static const struct msgid_parts cases[] = {
		{ 0, 0, 0 },
		{ EXAMPLE_TIME, 4194303, 999999 },	/* Linux pid_max - 1 */
		{ 56800235583LL, 1, 3843 },		/* 62^6 - 1 seconds */
	};
	static const enum msgid_format formats[] = {
		MSGID_FORMAT_CURRENT, MSGID_FORMAT_CLASSIC,
	};

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(formats); f++) {
		for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
			struct msgid_parts in = cases[i], out;
			enum msgid_format format;
			char id[MSGID_SIZE];

			if (formats[f] == MSGID_FORMAT_CLASSIC)
				in.subsecond %= MSGID_CLASSIC_TICKS;
			msgid_encode(formats[f], &in, id);
			assert_true(msgid_valid(id, strlen(id)));
			assert_int_equal(msgid_decode(id, &format, &out), 0);
			assert_int_equal(format, formats[f]);
			assert_int_equal(out.time, in.time);
			assert_int_equal(out.pid, in.pid);
			assert_int_equal(out.subsecond, in.subsecond);
		}
	}
}

static void
valid_table(void **state)
{
	static const struct {
		const char *text;
		bool want;
	} cases[] = {
		{ "1tt1Jd-00000000CXd-1jGj", true },
		{ "1tt1Jd-000CXd-DI", true },
		{ "zzzzzz-zzzzzzzzzzz-zzzz", true },
		{ "", false },
		{ "1tt1Jd", false },
		{ "1tt1Jd-", false },
		{ "1tt1Jd-000CXd-D", false },		/* one digit short */
		{ "1tt1Jd-000CXd-DII", false },		/* one digit long */
		{ "1tt1Jd-00000000CXd-1jG", false },
		{ "1tt1Jd-00000000CXd-1jGjj", false },
		{ "1tt1Jd_00000000CXd-1jGj", false },	/* wrong separator */
		{ "1tt1Jd-00000000CXd_1jGj", false },
		{ "1tt1J_-00000000CXd-1jGj", false },	/* '_' is not base 62 */
		{ "1tt1Jd-0000000+CXd-1jGj", false },
		{ "1tt1Jd-000CXd-D\xc3", false },
		{ "-1tt1J-000CXd-DI", false },
		{ "1tt1Jd-00000000CXd-1jG\n", false },
		{ "1tt1Jd-000CXd-DI-H", false },	/* a file name, not an id */
		{ "../../../etc/pas", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool got = msgid_valid(cases[i].text, strlen(cases[i].text));

		if (got != cases[i].want)
			fail_msg("msgid_valid(\"%s\"): got %d, want %d",
			    cases[i].text, got, cases[i].want);
	}
}

static void
valid_unterminated_buffer(void **state)
{
	/* The id is followed by more digits that len excludes. */
	const char buf[] = "1tt1Jd-000CXd-DIxxxxxxx";

	(void)state;
	assert_true(msgid_valid(buf, MSGID_LEN_CLASSIC));
	assert_false(msgid_valid(buf, MSGID_LEN_CLASSIC - 1));
	assert_false(msgid_valid(buf, MSGID_LEN_CURRENT));
}

static void
prefix_len_with_suffix(void **state)
{
	(void)state;
	assert_int_equal(msgid_prefix_len("1tt1Jd-00000000CXd-1jGj-H"),
	    MSGID_LEN_CURRENT);
	assert_int_equal(msgid_prefix_len("1tt1Jd-000CXd-DI-D"),
	    MSGID_LEN_CLASSIC);
	assert_int_equal(msgid_prefix_len("1tt1Jd-000C"), 0);
	assert_int_equal(msgid_prefix_len("hello"), 0);
}

static void
time_of_id(void **state)
{
	(void)state;
	assert_int_equal(msgid_time("1tt1Jd-00000000CXd-1jGj"), EXAMPLE_TIME);
	assert_int_equal(msgid_time("1tt1Jd-000CXd-DI"), EXAMPLE_TIME);
	assert_int_equal(msgid_time("not an id"), -1);
}

static void
compare_orders_by_time_then_subsecond(void **state)
{
	static const struct {
		const char *a, *b;
		int want;	/* sign */
	} cases[] = {
		/* time first, whatever the other fields contain */
		{ "1tt1Jc-zzzzzzzzzzz-zzzz", "1tt1Jd-00000000000-0000", -1 },
		/* then the sub-second field */
		{ "1tt1Jd-00000000CXd-0001", "1tt1Jd-00000000CXd-0002", -1 },
		/* the pid is ignored */
		{ "1tt1Jd-0000000000z-0001", "1tt1Jd-00000000001-0001", 0 },
		{ "1tt1Jd-00000z-01", "1tt1Jd-000001-01", 0 },
		/* classic 1000/3844 s (260 ms) is later than current 250 ms */
		{ "1tt1Jd-000CXd-G8", "1tt1Jd-00000000CXd-132G", 1 },
		/* classic 961/3844 s is exactly 250 ms */
		{ "1tt1Jd-000CXd-FV", "1tt1Jd-00000000CXd-132G", 0 },
		/* ids before strings that are not ids */
		{ "1tt1Jd-000CXd-DI", "Junk", -1 },
		{ "Junk", "1tt1Jd-000CXd-DI", 1 },
		{ "aaa", "bbb", -1 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int got = msgid_compare(cases[i].a, cases[i].b);
		int sign = (got > 0) - (got < 0);

		if (sign != cases[i].want)
			fail_msg("msgid_compare(%s, %s): got %d, want %d",
			    cases[i].a, cases[i].b, sign, cases[i].want);
	}
}

/* Generates count ids in a tight loop; each must be later than the one
 * before (which also makes them distinct). */
static void
check_burst(enum msgid_format format, size_t count)
{
	char **ids = xcalloc(count, sizeof(*ids));
	size_t want_len = format == MSGID_FORMAT_CLASSIC ?
	    MSGID_LEN_CLASSIC : MSGID_LEN_CURRENT;

	for (size_t i = 0; i < count; i++) {
		ids[i] = xmalloc(MSGID_SIZE);
		msgid_new(format, ids[i]);
		if (!msgid_valid(ids[i], want_len))
			fail_msg("generated id %s is not valid", ids[i]);
		if (i > 0 && msgid_compare(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %s does not follow %s", ids[i],
			    ids[i - 1]);
	}
	assert_all_distinct(ids, count);
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

static void
burst_current_distinct(void **state)
{
	(void)state;
	check_burst(MSGID_FORMAT_CURRENT, 100000);
}

static void
burst_classic_distinct(void **state)
{
	(void)state;
	check_burst(MSGID_FORMAT_CLASSIC, 100000);
}

static void
new_id_carries_pid(void **state)
{
	char id[MSGID_SIZE];
	enum msgid_format format;
	struct msgid_parts parts;

	(void)state;
	msgid_new(MSGID_FORMAT_CURRENT, id);
	assert_int_equal(msgid_decode(id, &format, &parts), 0);
	assert_int_equal(parts.pid, (uint64_t)getpid());
	msgid_new(MSGID_FORMAT_CLASSIC, id);
	assert_int_equal(msgid_decode(id, &format, &parts), 0);
	assert_int_equal(parts.pid, (uint64_t)getpid());
}

static void
same_clock_different_pids(void **state)
{
	struct msgid_parts a = {
		.time = EXAMPLE_TIME, .pid = 4242, .subsecond = 77,
	};
	struct msgid_parts b = a;
	char id_a[MSGID_SIZE], id_b[MSGID_SIZE];

	(void)state;
	b.pid = 4243;
	msgid_encode(MSGID_FORMAT_CURRENT, &a, id_a);
	msgid_encode(MSGID_FORMAT_CURRENT, &b, id_b);
	assert_string_not_equal(id_a, id_b);
	msgid_encode(MSGID_FORMAT_CLASSIC, &a, id_a);
	msgid_encode(MSGID_FORMAT_CLASSIC, &b, id_b);
	assert_string_not_equal(id_a, id_b);
}

#define FORK_IDS 2000

/* A child and its parent create ids at the same moment, in both forms;
 * none may be equal. */
static void
forked_processes_distinct(void **state)
{
	char **ids = xcalloc(4 * FORK_IDS, sizeof(*ids));
	size_t count = 0;
	int fds[2];
	pid_t child;
	FILE *in;
	char line[64];
	int status;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		FILE *out = fdopen(fds[1], "w");
		char id[MSGID_SIZE];

		close(fds[0]);
		for (int i = 0; i < 2 * FORK_IDS; i++) {
			msgid_new(i % 2 ? MSGID_FORMAT_CLASSIC :
			    MSGID_FORMAT_CURRENT, id);
			fprintf(out, "%s\n", id);
		}
		fclose(out);
		_exit(0);
	}
	close(fds[1]);
	for (int i = 0; i < 2 * FORK_IDS; i++) {
		ids[count] = xmalloc(MSGID_SIZE);
		msgid_new(i % 2 ? MSGID_FORMAT_CLASSIC : MSGID_FORMAT_CURRENT,
		    ids[count]);
		count++;
	}
	in = fdopen(fds[0], "r");
	while (fgets(line, sizeof(line), in) != NULL && count < 4 * FORK_IDS) {
		line[strcspn(line, "\n")] = '\0';
		ids[count++] = xstrdup(line);
	}
	fclose(in);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(count, 4 * FORK_IDS);

	assert_all_distinct(ids, count);
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

#define THREADS 4
#define THREAD_IDS 20000

struct thread_batch {
	enum msgid_format format;
	char (*ids)[MSGID_SIZE];
};

static void *
thread_create_ids(void *arg)
{
	struct thread_batch *batch = arg;

	for (int i = 0; i < THREAD_IDS; i++)
		msgid_new(batch->format, batch->ids[i]);
	return NULL;
}

static void
threads_distinct(void **state)
{
	static const enum msgid_format formats[] = {
		MSGID_FORMAT_CURRENT, MSGID_FORMAT_CLASSIC,
	};

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(formats); f++) {
		char (*ids)[MSGID_SIZE] = xcalloc(THREADS * THREAD_IDS,
		    MSGID_SIZE);
		char **sorted = xcalloc(THREADS * THREAD_IDS, sizeof(*sorted));
		struct thread_batch batches[THREADS];
		pthread_t threads[THREADS];

		for (int t = 0; t < THREADS; t++) {
			batches[t].format = formats[f];
			batches[t].ids = ids + t * THREAD_IDS;
			assert_int_equal(pthread_create(&threads[t], NULL,
			    thread_create_ids, &batches[t]), 0);
		}
		for (int t = 0; t < THREADS; t++)
			assert_int_equal(pthread_join(threads[t], NULL), 0);
		for (int i = 0; i < THREADS * THREAD_IDS; i++)
			sorted[i] = ids[i];
		assert_all_distinct(sorted, THREADS * THREAD_IDS);
		free(sorted);
		free(ids);
	}
}

#ifdef SLUICE_TEST_HOOKS
/* Moves the fake clock past every id created so far, so that the next
 * tests start with ids that follow the clock again. */
static void
advance_clock_past(const char *id)
{
	time_t last = msgid_time(id);
	time_t now = clock_now();

	if (last >= now)
		clock_fake_advance((int64_t)(last - now + 2) * 1000000);
}

static void
clock_step_back_keeps_order(void **state)
{
	static const enum msgid_format formats[] = {
		MSGID_FORMAT_CURRENT, MSGID_FORMAT_CLASSIC,
	};

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(formats); f++) {
		char before[MSGID_SIZE], after[MSGID_SIZE];

		msgid_new(formats[f], before);
		advance_clock_past(before);
		msgid_new(formats[f], before);
		clock_fake_advance(-3600 * (int64_t)1000000);
		msgid_new(formats[f], after);
		clock_fake_advance(3600 * (int64_t)1000000);

		if (msgid_compare(before, after) >= 0)
			fail_msg("after a clock step back: %s does not follow %s",
			    after, before);
		/* The id keeps the time from before the step. */
		assert_true(msgid_time(after) >= msgid_time(before));
	}
}

static void
wait_tick_passes_last_id(void **state)
{
	char current[MSGID_SIZE], classic[MSGID_SIZE];
	enum msgid_format format;
	struct msgid_parts parts;
	struct timeval now;

	(void)state;
	msgid_new(MSGID_FORMAT_CURRENT, current);
	msgid_new(MSGID_FORMAT_CLASSIC, classic);
	advance_clock_past(current);
	advance_clock_past(classic);

	/* Fresh ids now follow the clock; the wait is below a millisecond. */
	msgid_new(MSGID_FORMAT_CURRENT, current);
	msgid_new(MSGID_FORMAT_CLASSIC, classic);
	msgid_wait_tick();
	clock_now_tv(&now);

	assert_int_equal(msgid_decode(current, &format, &parts), 0);
	assert_true(now.tv_sec > parts.time ||
	    (now.tv_sec == parts.time &&
	    (uint64_t)now.tv_usec > parts.subsecond));
	assert_int_equal(msgid_decode(classic, &format, &parts), 0);
	assert_true(now.tv_sec > parts.time ||
	    (now.tv_sec == parts.time &&
	    (uint64_t)now.tv_usec * MSGID_CLASSIC_TICKS / 1000000 >
	    parts.subsecond));
}
#else
static void
clock_step_back_keeps_order(void **state)
{
	(void)state;
	skip();
}

static void
wait_tick_passes_last_id(void **state)
{
	(void)state;
	skip();
}
#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encode_current_example),
		cmocka_unit_test(encode_classic_example),
		cmocka_unit_test(decode_both_forms),
		cmocka_unit_test(encode_decode_round_trip),
		cmocka_unit_test(valid_table),
		cmocka_unit_test(valid_unterminated_buffer),
		cmocka_unit_test(prefix_len_with_suffix),
		cmocka_unit_test(time_of_id),
		cmocka_unit_test(compare_orders_by_time_then_subsecond),
		cmocka_unit_test(new_id_carries_pid),
		cmocka_unit_test(burst_current_distinct),
		cmocka_unit_test(burst_classic_distinct),
		cmocka_unit_test(same_clock_different_pids),
		cmocka_unit_test(forked_processes_distinct),
		cmocka_unit_test(threads_distinct),
		cmocka_unit_test(clock_step_back_keeps_order),
		cmocka_unit_test(wait_tick_passes_last_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_scheduler.c - classes, ready queues and the limits of egress
 * paths, with a small policy for shaping and the fake clock frozen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "policy.h"
#include "scheduler.h"

#define ITEMS_MAX	200

static const char policy_text[] =
    "sluice.source{ name = 'a', ip = '127.0.0.2', ehlo = 'one.example' }\n"
    "sluice.source{ name = 'b', ip = '127.0.0.3' }\n"
    "sluice.pool{ name = 'default', sources = { 'a' } }\n"
    "sluice.pool{ name = 'other', sources = { 'b' } }\n"
    "sluice.on('shaping', function(path)\n"
    "  if path.site == 'reroute.test' then\n"
    "    return { reroute_when_suspended = true }\n"
    "  end\n"
    "  if path.site == 'rate.test' then\n"
    "    return { max_message_rate = '2/s', burst = 3 }\n"
    "  elseif path.site == 'cap.test' then\n"
    "    return { daily_cap = 2 }\n"
    "  elseif path.site == 'wide.test' then\n"
    "    return { max_connections = 3 }\n"
    "  end\n"
    "  return { max_connections = 1 }\n"
    "end)\n";

struct fixture {
	char dir[64];
	struct event_base *base;
	struct config *config;
	struct scheduler *sched;
	struct sched_item items[ITEMS_MAX];
	size_t order[ITEMS_MAX];	/* item numbers, in the order they went */
	size_t gone;
	bool finish_at_once;		/* go ends the item as it starts */
};

static struct fixture *current;

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128], text[512];
	char *error = NULL;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_scheduler.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/policy.lua", f->dir);
	write_file(path, policy_text);
	snprintf(text, sizeof(text), "spool_directory = %s\n"
	    "lua_policy = %s\n", f->dir, path);
	snprintf(path, sizeof(path), "%s/sluice.conf", f->dir);
	write_file(path, text);
	if (config_load(path, NULL, 0, &f->config, &error) < 0)
		fail_msg("config: %s", error);
	f->base = event_base_new();
	assert_non_null(f->base);
	if (policy_start(NULL, f->config, &error) < 0)
		fail_msg("policy: %s", error);
	f->sched = scheduler_new(f->base, f->config);
	{
		struct policy_state *ps = policy_current();

		scheduler_load(f->sched, ps);
		policy_state_unref(ps);
	}
	clock_fake_freeze(true);
	current = f;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char command[128];

	for (size_t i = 0; i < ITEMS_MAX; i++)
		sched_item_done(&f->items[i], false);
	clock_fake_freeze(false);
	scheduler_free(f->sched);
	policy_stop();
	event_base_free(f->base);
	config_free(f->config);
	snprintf(command, sizeof(command), "rm -rf %s", f->dir);
	if (system(command) != 0)
		fail_msg("cannot remove %s", f->dir);
	free(f);
	return 0;
}

static void
item_go(void *arg)
{
	struct sched_item *item = arg;
	struct fixture *f = current;

	f->order[f->gone++] = (size_t)(item - f->items);
	if (f->finish_at_once)
		sched_item_done(item, true);
}

/* Runs the loop until nothing more is due now. */
static void
run_loop(struct fixture *f)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static struct sched_path *
path_in(struct fixture *f, const char *pool, const char *site,
    size_t class_index)
{
	char *error = NULL;
	struct sched_path *p = scheduler_choose(f->sched, "1abcde-000000-00",
	    site, pool, class_index, "example.com", &error);

	if (p == NULL)
		fail_msg("no path: %s", error);
	return p;
}

static struct sched_path *
path_to(struct fixture *f, const char *site, size_t class_index)
{
	return path_in(f, "default", site, class_index);
}

static void
submit(struct fixture *f, struct sched_path *p, size_t n, size_t class_index)
{
	struct sched_item *item = &f->items[n];

	sched_item_submit(p, item, class_index, item_go, item);
}

static void
test_default_classes(void **state)
{
	struct fixture *f = *state;
	size_t critical = scheduler_class_find(f->sched, "critical", false);

	assert_string_equal(scheduler_class_name(f->sched, critical),
	    "critical");
	assert_string_equal(scheduler_class_name(f->sched,
	    scheduler_class_find(f->sched, NULL, true)), "transactional");
	assert_string_equal(scheduler_class_name(f->sched,
	    scheduler_class_find(f->sched, "no-such-class", false)),
	    "personal");
	assert_string_equal(scheduler_class_name(f->sched,
	    scheduler_class_find(f->sched, "newsletter", true)), "newsletter");
	assert_string_equal(scheduler_class_pool(f->sched, critical), "default");
}

static void
test_path_of_source(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "gmail", 0);

	assert_string_equal(sched_path_key(p), "a/gmail");
	assert_string_equal(sched_path_source_name(p), "a");
	assert_string_equal(sched_path_source_ip(p), "127.0.0.2");
	assert_string_equal(sched_path_helo(p), "one.example");
	assert_ptr_equal(path_to(f, "gmail", 0), p);
}

/* One connection: a critical item queued after a backlog goes first,
 * then the backlog in its order. */
static void
test_strict_class_first(void **state)
{
	struct fixture *f = *state;
	size_t newsletter = scheduler_class_find(f->sched, "newsletter", false);
	size_t critical = scheduler_class_find(f->sched, "critical", false);
	struct sched_path *p = path_to(f, "one.test", newsletter);

	for (size_t i = 0; i < 10; i++)
		submit(f, p, i, newsletter);
	run_loop(f);
	assert_int_equal(f->gone, 1);		/* max_connections = 1 */
	assert_int_equal(f->order[0], 0);
	submit(f, p, 10, critical);
	sched_item_done(&f->items[0], true);
	run_loop(f);
	assert_int_equal(f->gone, 2);
	assert_int_equal(f->order[1], 10);
	for (size_t i = 2; i < 11; i++) {
		sched_item_done(&f->items[f->order[i - 1]], true);
		run_loop(f);
		assert_int_equal(f->gone, i + 1);
		assert_int_equal(f->order[i], i - 1);
	}
}

/* Weighted classes share in proportion to their priorities (50 and 10)
 * and the lighter one still moves. */
static void
test_weights(void **state)
{
	struct fixture *f = *state;
	size_t personal = scheduler_class_find(f->sched, "personal", false);
	size_t newsletter = scheduler_class_find(f->sched, "newsletter", false);
	struct sched_path *p = path_to(f, "weights.test", personal);
	size_t from_personal = 0;

	for (size_t i = 0; i < 60; i++)
		submit(f, p, i, newsletter);
	for (size_t i = 60; i < 120; i++)
		submit(f, p, i, personal);
	f->finish_at_once = true;
	run_loop(f);
	assert_true(f->gone >= 60);
	for (size_t i = 0; i < 60; i++)
		if (f->order[i] >= 60)
			from_personal++;
	assert_in_range(from_personal, 49, 51);
}

/* A rate of 2/s with a burst of 3 on a frozen clock: 3 at once, then 2
 * per second advanced. */
static void
test_rate(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "rate.test", 0);

	f->finish_at_once = true;
	for (size_t i = 0; i < 12; i++)
		submit(f, p, i, 0);
	run_loop(f);
	assert_int_equal(f->gone, 3);
	for (size_t second = 1; second <= 4; second++) {
		clock_fake_advance(1000000);
		run_loop(f);
		assert_int_equal(f->gone, 3 + 2 * second);
	}
	clock_fake_advance(1000000);
	run_loop(f);
	assert_int_equal(f->gone, 12);
}

static void
test_connections(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "wide.test", 0);

	for (size_t i = 0; i < 10; i++)
		submit(f, p, i, 0);
	run_loop(f);
	assert_int_equal(f->gone, 3);
	sched_item_done(&f->items[f->order[1]], true);
	run_loop(f);
	assert_int_equal(f->gone, 4);
}

static void
test_suspend(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "wide.test", 0);
	char error[128];

	f->finish_at_once = true;
	assert_int_equal(scheduler_suspend(f->sched, "a", "wide.test",
	    60, "testing", "test", error, sizeof(error)), 0);
	assert_true(sched_path_suspended(p, clock_now()));
	for (size_t i = 0; i < 5; i++)
		submit(f, p, i, 0);
	run_loop(f);
	assert_int_equal(f->gone, 0);
	clock_fake_advance(59 * 1000000LL);
	run_loop(f);
	assert_int_equal(f->gone, 0);
	clock_fake_advance(2 * 1000000LL);
	run_loop(f);
	assert_int_equal(f->gone, 5);

	/* Unknown sources are refused. */
	assert_int_equal(scheduler_suspend(f->sched, "nowhere", "wide.test",
	    60, "testing", "test", error, sizeof(error)), -1);
	assert_non_null(strstr(error, "nowhere"));
}

static void
test_daily_cap(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "cap.test", 0);

	f->finish_at_once = true;
	for (size_t i = 0; i < 5; i++)
		submit(f, p, i, 0);
	run_loop(f);
	assert_int_equal(f->gone, 2);
	run_loop(f);
	assert_int_equal(f->gone, 2);
	/* The next day, whatever the hour now. */
	clock_fake_advance(25 * 3600 * 1000000LL);
	run_loop(f);
	assert_int_equal(f->gone, 4);
}

static size_t rerouted;

/* Moves the item to the other pool's path. */
static void
item_reroute(void *arg)
{
	struct sched_item *item = arg;
	struct fixture *f = current;

	rerouted++;
	sched_item_submit(path_in(f, "other", "reroute.test", 0), item, 0,
	    item_go, item);
}

/* With reroute_when_suspended, waiting mail leaves a suspended path
 * once; without it, it waits. */
static void
test_reroute(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "reroute.test", 0);
	struct sched_path *q = path_to(f, "wide.test", 0);
	char error[128];

	f->finish_at_once = true;
	rerouted = 0;
	assert_int_equal(scheduler_suspend(f->sched, "127.0.0.2", NULL, 600,
	    "testing", "test", error, sizeof(error)), 0);
	assert_true(sched_path_suspended(p, clock_now()));
	assert_true(sched_path_suspended(q, clock_now()));
	for (size_t i = 0; i < 4; i++) {
		submit(f, i < 2 ? p : q, i, 0);
		f->items[i].reroute = item_reroute;
	}
	run_loop(f);
	assert_int_equal(rerouted, 2);
	assert_int_equal(f->gone, 2);
	assert_int_equal(f->order[0], 0);
	assert_int_equal(f->order[1], 1);
	assert_false(sched_path_suspended(path_in(f, "other", "reroute.test",
	    0), clock_now()));
}

/* A ready item taken out of its queue never goes. */
static void
test_cancel_ready(void **state)
{
	struct fixture *f = *state;
	struct sched_path *p = path_to(f, "one.test", 0);

	submit(f, p, 0, 0);
	submit(f, p, 1, 0);
	submit(f, p, 2, 0);
	sched_item_done(&f->items[1], false);
	f->finish_at_once = true;
	run_loop(f);
	assert_int_equal(f->gone, 2);
	assert_int_equal(f->order[0], 0);
	assert_int_equal(f->order[1], 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_classes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_path_of_source, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_strict_class_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_weights, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connections, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_suspend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daily_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reroute, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

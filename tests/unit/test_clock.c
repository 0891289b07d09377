/*
 * test_clock.c - the clock and its timers, including the fake clock of
 * test builds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"

static int fired;

static void
count_cb(void *arg)
{
	(void)arg;
	fired++;
}

static int
setup(void **state)
{
	struct event_base *base = event_base_new();

	if (base == NULL)
		return -1;
	fired = 0;
	*state = base;
	return 0;
}

static int
teardown(void **state)
{
	event_base_free(*state);
	return 0;
}

static void
run_loop_once(struct event_base *base)
{
	event_base_loop(base, EVLOOP_NONBLOCK);
}

static void
test_monotonic_never_goes_back(void **state)
{
	uint64_t previous = clock_monotonic_usec();

	for (int i = 0; i < 1000; i++) {
		uint64_t now = clock_monotonic_usec();

		assert_true(now >= previous);
		previous = now;
	}
}

static void
test_timer_cancel_and_free(void **state)
{
	struct clock_timer *timer = clock_timer_new(*state, count_cb, NULL);

	clock_timer_arm(timer, 0);
	assert_true(clock_timer_pending(timer));
	clock_timer_cancel(timer);
	assert_false(clock_timer_pending(timer));
	run_loop_once(*state);
	assert_int_equal(fired, 0);
	clock_timer_free(timer);
	clock_timer_free(NULL);
}

static void
test_timer_zero_delay_fires(void **state)
{
	struct clock_timer *timer = clock_timer_new(*state, count_cb, NULL);

	clock_timer_arm(timer, 0);
	run_loop_once(*state);
	assert_int_equal(fired, 1);
	assert_false(clock_timer_pending(timer));
	clock_timer_free(timer);
}

#ifdef SLUICE_TEST_HOOKS
static void
test_fake_advance_moves_both_clocks(void **state)
{
	time_t wall = clock_now();
	uint64_t mono = clock_monotonic_usec();

	clock_fake_advance(86400LL * 1000000);
	assert_true(clock_now() >= wall + 86400);
	assert_true(clock_monotonic_usec() >= mono + 86400ULL * 1000000);
}

static void
test_fake_advance_fires_due_timers(void **state)
{
	struct clock_timer *soon = clock_timer_new(*state, count_cb, NULL);
	struct clock_timer *later = clock_timer_new(*state, count_cb, NULL);

	clock_timer_arm(soon, 3600ULL * 1000000);	/* one hour */
	clock_timer_arm(later, 7200ULL * 1000000);	/* two hours */
	run_loop_once(*state);
	assert_int_equal(fired, 0);

	clock_fake_advance(3600LL * 1000000);
	run_loop_once(*state);
	assert_int_equal(fired, 1);
	assert_false(clock_timer_pending(soon));
	assert_true(clock_timer_pending(later));

	clock_fake_advance(3600LL * 1000000);
	run_loop_once(*state);
	assert_int_equal(fired, 2);
	clock_timer_free(soon);
	clock_timer_free(later);
}

static void
test_fake_step_back_keeps_monotonic(void **state)
{
	uint64_t mono = clock_monotonic_usec();
	int64_t offset = clock_fake_offset_usec();

	/* Step the wall clock below the real time. */
	clock_fake_advance(-offset - 60LL * 1000000);
	assert_true(clock_monotonic_usec() >= mono - 1);
	clock_fake_advance(60LL * 1000000);
}
#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monotonic_never_goes_back),
		cmocka_unit_test_setup_teardown(test_timer_cancel_and_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_zero_delay_fires, setup, teardown),
#ifdef SLUICE_TEST_HOOKS
		cmocka_unit_test_setup_teardown(test_fake_advance_moves_both_clocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_advance_fires_due_timers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_step_back_keeps_monotonic, setup, teardown),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

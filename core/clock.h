/*
 * clock.h - the one source of time for sluice, and timers that follow it.
 *
 * Every part that asks the time calls clock_now() or clock_monotonic_usec(),
 * never time(2) or gettimeofday(2) directly, and every timer is a
 * clock_timer. In builds configured with --enable-test-hooks, tests can
 * move this clock forward while the daemon runs (clock_fake_advance()):
 * both clocks jump by the same amount and every timer that becomes due
 * fires at once, so tests of retries, throttles and warm-up days never
 * wait in real time. Normal builds have no way to move the clock.
 *
 * The offset is an atomic, so worker threads may read the time too.
 * Timers belong to the loop thread.
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

struct event_base;
struct clock_timer;

typedef void (*clock_timer_fn)(void *arg);

/* Wall-clock time in seconds, and with microseconds. */
time_t clock_now(void);
void clock_now_tv(struct timeval *tv);

/* Monotonic time in microseconds, for durations and rates. */
uint64_t clock_monotonic_usec(void);

/* Creates an unarmed timer on base; the caller frees it with
 * clock_timer_free(). */
struct clock_timer *clock_timer_new(struct event_base *base,
    clock_timer_fn fn, void *arg);
/* Arms (or re-arms) the timer to fire once after delay_usec. */
void clock_timer_arm(struct clock_timer *timer, uint64_t delay_usec);
/* Accepts NULL. */
void clock_timer_cancel(struct clock_timer *timer);
bool clock_timer_pending(const struct clock_timer *timer);
/* Accepts NULL. */
void clock_timer_free(struct clock_timer *timer);

#ifdef SLUICE_TEST_HOOKS
/* Current offset of the fake wall clock from the real one, in
 * microseconds. */
int64_t clock_fake_offset_usec(void);
/* Moves both clocks forward by usec and fires every timer that becomes
 * due. A negative usec steps only the wall clock back, for tests of clock
 * steps; the monotonic clock never goes back. */
void clock_fake_advance(int64_t usec);
/* Stops both clocks (true) or lets them run on from where they stand
 * (false). While stopped, timers fire only when an advance makes them
 * due. */
void clock_fake_freeze(bool freeze);
/* Reads SLUICE_TEST_CLOCK_OFFSET (seconds) from the environment, so that
 * command-line runs can share a test's clock. */
void clock_fake_init_from_env(void);
#endif

#endif

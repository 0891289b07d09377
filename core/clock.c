/*
 * clock.c - time sources and timers (see clock.h).
 *
 * libevent runs its timers on the monotonic clock, which the fake clock
 * cannot move. So every armed clock_timer is kept on a list with its
 * deadline on sluice's own clock; when a test advances that clock, each
 * pending timer is re-armed for what remains of its delay, and those
 * already due fire on the next loop iteration.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "util.h"

/* The libevent event is a member, not a second allocation: the queue
 * has one timer per queued message. */
struct clock_timer {
	struct event event;
	clock_timer_fn fn;
	void *arg;
	uint64_t deadline_usec;		/* on clock_monotonic_usec() */
	bool armed;
#ifdef SLUICE_TEST_HOOKS
	struct clock_timer *prev, *next;	/* the armed timers */
#endif
};

/* The wall clock may be stepped back by a test; the monotonic one only
 * moves forward, so each has its own offset. */
static _Atomic int64_t fake_wall_offset_usec;
static _Atomic int64_t fake_monotonic_offset_usec;
#ifdef SLUICE_TEST_HOOKS
static struct clock_timer *armed_timers;
/* While frozen, both clocks read the real time of the freeze plus their
 * offsets, and only an advance moves them. */
static _Atomic bool fake_frozen;
static _Atomic int64_t frozen_wall_usec, frozen_monotonic_usec;
#endif

static int64_t
wall_offset_usec(void)
{
	return atomic_load_explicit(&fake_wall_offset_usec, memory_order_relaxed);
}

void
clock_now_tv(struct timeval *tv)
{
	struct timespec ts;
	int64_t usec;

	clock_gettime(CLOCK_REALTIME, &ts);
	usec = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
#ifdef SLUICE_TEST_HOOKS
	if (atomic_load(&fake_frozen))
		usec = atomic_load(&frozen_wall_usec);
#endif
	usec += wall_offset_usec();
	tv->tv_sec = (time_t)(usec / 1000000);
	tv->tv_usec = (suseconds_t)(usec % 1000000);
}

time_t
clock_now(void)
{
	struct timeval tv;

	clock_now_tv(&tv);
	return tv.tv_sec;
}

uint64_t
clock_monotonic_usec(void)
{
	struct timespec ts;
	int64_t offset = atomic_load_explicit(&fake_monotonic_offset_usec,
	    memory_order_relaxed);

	clock_gettime(CLOCK_MONOTONIC, &ts);
#ifdef SLUICE_TEST_HOOKS
	if (atomic_load(&fake_frozen))
		return (uint64_t)(atomic_load(&frozen_monotonic_usec) + offset);
#endif
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000 +
	    (uint64_t)offset;
}

static void
clock_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clock_timer *timer = arg;

	(void)fd;
	(void)what;
#ifdef SLUICE_TEST_HOOKS
	/* Not due on a frozen clock: it stays armed, and the advance that
	 * makes it due fires it. */
	if (atomic_load(&fake_frozen) &&
	    clock_monotonic_usec() < timer->deadline_usec)
		return;
#endif
	clock_timer_cancel(timer);
	timer->fn(timer->arg);	/* the callback may free the timer */
}

struct clock_timer *
clock_timer_new(struct event_base *base, clock_timer_fn fn, void *arg)
{
	struct clock_timer *timer = xcalloc(1, sizeof(*timer));

	timer->fn = fn;
	timer->arg = arg;
	if (evtimer_assign(&timer->event, base, clock_timer_cb, timer) != 0)
		fatalx("cannot create a libevent timer");
	return timer;
}

static void
clock_timer_schedule(struct clock_timer *timer, uint64_t delay_usec)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(delay_usec / 1000000);
	tv.tv_usec = (suseconds_t)(delay_usec % 1000000);
	if (evtimer_add(&timer->event, &tv) != 0)
		fatalx("cannot arm a libevent timer");
}

void
clock_timer_arm(struct clock_timer *timer, uint64_t delay_usec)
{
	clock_timer_cancel(timer);
	timer->deadline_usec = clock_monotonic_usec() + delay_usec;
	timer->armed = true;
#ifdef SLUICE_TEST_HOOKS
	timer->prev = NULL;
	timer->next = armed_timers;
	if (armed_timers != NULL)
		armed_timers->prev = timer;
	armed_timers = timer;
#endif
	clock_timer_schedule(timer, delay_usec);
}

void
clock_timer_cancel(struct clock_timer *timer)
{
	if (timer == NULL || !timer->armed)
		return;
	evtimer_del(&timer->event);
	timer->armed = false;
#ifdef SLUICE_TEST_HOOKS
	if (timer->prev != NULL)
		timer->prev->next = timer->next;
	else
		armed_timers = timer->next;
	if (timer->next != NULL)
		timer->next->prev = timer->prev;
	timer->prev = timer->next = NULL;
#endif
}

bool
clock_timer_pending(const struct clock_timer *timer)
{
	return timer->armed;
}

void
clock_timer_free(struct clock_timer *timer)
{
	if (timer == NULL)
		return;
	clock_timer_cancel(timer);
	free(timer);
}

#ifdef SLUICE_TEST_HOOKS
int64_t
clock_fake_offset_usec(void)
{
	return wall_offset_usec();
}

/* Re-arms every armed timer for what remains of its delay. */
static void
clock_fake_rearm(void)
{
	uint64_t now = clock_monotonic_usec();

	for (struct clock_timer *t = armed_timers; t != NULL; t = t->next) {
		uint64_t remaining =
		    t->deadline_usec > now ? t->deadline_usec - now : 0;

		evtimer_del(&t->event);
		clock_timer_schedule(t, remaining);
	}
}

void
clock_fake_advance(int64_t usec)
{
	atomic_fetch_add(&fake_wall_offset_usec, usec);
	if (usec > 0)
		atomic_fetch_add(&fake_monotonic_offset_usec, usec);
	clock_fake_rearm();
}

static int64_t
real_usec(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
clock_fake_freeze(bool freeze)
{
	if (freeze == atomic_load(&fake_frozen))
		return;
	if (freeze) {
		atomic_store(&frozen_wall_usec, real_usec(CLOCK_REALTIME));
		atomic_store(&frozen_monotonic_usec, real_usec(CLOCK_MONOTONIC));
		atomic_store(&fake_frozen, true);
		return;
	}
	/* The real clocks went on meanwhile: take that time out of the
	 * offsets, so that both clocks go on from where they stood. */
	atomic_fetch_sub(&fake_wall_offset_usec,
	    real_usec(CLOCK_REALTIME) - atomic_load(&frozen_wall_usec));
	atomic_fetch_sub(&fake_monotonic_offset_usec,
	    real_usec(CLOCK_MONOTONIC) - atomic_load(&frozen_monotonic_usec));
	atomic_store(&fake_frozen, false);
	clock_fake_rearm();
}

void
clock_fake_init_from_env(void)
{
	const char *value = getenv("SLUICE_TEST_CLOCK_OFFSET");
	char *end;
	long long seconds;

	if (value == NULL || *value == '\0')
		return;
	seconds = strtoll(value, &end, 10);
	if (*end != '\0')
		fatalx("SLUICE_TEST_CLOCK_OFFSET=%s is not a whole number of seconds",
		    value);
	atomic_store(&fake_wall_offset_usec, (int64_t)seconds * 1000000);
}
#endif

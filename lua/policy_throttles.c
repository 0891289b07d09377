/*
 * policy_throttles.c - token buckets by name (sluice.throttles), kept
 * with the generic cell rate algorithm (GCRA): each throttle stores only
 * the theoretical arrival time (TAT) of the next request.
 *
 * With emission interval T = 1/rate and burst b, a request at time t is
 * allowed if TAT - t <= (b - 1) * T, and then TAT = max(TAT, t) + T. So
 * b requests pass at once and then one every T; a rejected request
 * waits TAT - t - (b - 1) * T.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "policy_tables_private.h"
#include "util.h"

struct policy_throttle {
	uint64_t tat_usec;		/* monotonic clock */
	double override_per_second;	/* 0 when no override is set */
	uint64_t override_until_usec;	/* monotonic clock */
};

const size_t policy_throttle_value_size = sizeof(struct policy_throttle);

/* The largest count in a rate, so that intervals stay above 1 us/day. */
#define POLICY_RATE_COUNT_MAX	1000000000ULL

int
policy_rate_parse(const char *text, struct policy_rate *rate)
{
	static const struct { char unit; double seconds; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	const char *slash = strchr(text, '/');
	char digits[16];
	unsigned long long count;
	size_t len;

	if (slash == NULL || slash[1] == '\0' || slash[2] != '\0')
		return -1;
	len = (size_t)(slash - text);
	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, text, len);
	digits[len] = '\0';
	if (parse_uint(digits, POLICY_RATE_COUNT_MAX, &count) < 0 || count == 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (units[i].unit == slash[1]) {
			rate->per_second = (double)count / units[i].seconds;
			return 0;
		}
	return -1;
}

static struct policy_throttle *
policy_throttles_find(const char *name, size_t len)
{
	struct policy_table_entry *e;

	if (name == NULL || len == 0 || len > POLICY_TABLE_KEY_MAX)
		return NULL;
	e = policy_table_lookup(POLICY_TABLE_THROTTLES, name, len, true);
	return e->value;
}

int
policy_throttles_try(const char *name, size_t len,
    const struct policy_rate *rate, uint32_t burst, uint64_t *wait_usec)
{
	struct policy_throttle *th = policy_throttles_find(name, len);
	uint64_t now = clock_monotonic_usec(), interval, tolerance, tat;
	double per_second;

	if (th == NULL || burst == 0 || burst > POLICY_THROTTLE_BURST_MAX ||
	    !(rate->per_second > 0))
		return -1;
	per_second = rate->per_second;
	if (th->override_per_second > 0) {
		if (now < th->override_until_usec)
			per_second = th->override_per_second;
		else
			th->override_per_second = 0;
	}
	interval = (uint64_t)ceil(1e6 / per_second);
	tolerance = interval * (uint64_t)(burst - 1);
	tat = th->tat_usec > now ? th->tat_usec : now;
	if (tat - now > tolerance) {
		*wait_usec = tat - now - tolerance;
		return 0;
	}
	th->tat_usec = tat + interval;
	*wait_usec = 0;
	return 1;
}

int
policy_throttles_set_rate(const char *name, size_t len,
    const struct policy_rate *rate, uint32_t seconds)
{
	struct policy_throttle *th = policy_throttles_find(name, len);

	if (th == NULL || seconds == 0 || !(rate->per_second > 0))
		return -1;
	th->override_per_second = rate->per_second;
	th->override_until_usec = clock_monotonic_usec() +
	    (uint64_t)seconds * 1000000;
	return 0;
}

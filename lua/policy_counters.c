/*
 * policy_counters.c - named counters with sliding windows and per-day
 * totals (sluice.counters).
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "policy_tables_private.h"
#include "util.h"

struct policy_counter {
	uint64_t total;			/* since the counter was created */
	uint64_t today;			/* since the day's rollover */
	int64_t day;			/* number of the day today counts */
	struct policy_window window;
};

const size_t policy_counter_value_size = sizeof(struct policy_counter);

/* Seconds after 00:00 UTC at which a day starts: the rollover time of
 * day minus the zone's offset. */
static int rollover_shift;

int
policy_counters_set_rollover(int offset_seconds, int utc_offset_seconds)
{
	if (offset_seconds < 0 || offset_seconds >= 86400 ||
	    utc_offset_seconds < -14 * 3600 || utc_offset_seconds > 14 * 3600)
		return -1;
	rollover_shift = offset_seconds - utc_offset_seconds;
	return 0;
}

static int
policy_counters_two_digits(const char *s, int max)
{
	int v;

	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	v = (s[0] - '0') * 10 + (s[1] - '0');
	return v > max ? -1 : v;
}

int
policy_counters_parse_rollover(const char *time_of_day, const char *zone,
    int *offset_seconds, int *utc_offset_seconds)
{
	int hours, minutes, zone_hours, zone_minutes, sign;

	if (strlen(time_of_day) != 5 || time_of_day[2] != ':')
		return -1;
	hours = policy_counters_two_digits(time_of_day, 23);
	minutes = policy_counters_two_digits(time_of_day + 3, 59);
	if (hours < 0 || minutes < 0)
		return -1;
	*offset_seconds = hours * 3600 + minutes * 60;
	*utc_offset_seconds = 0;
	if (zone == NULL || strcmp(zone, "UTC") == 0)
		return 0;

	if (strlen(zone) != 5 || (zone[0] != '+' && zone[0] != '-'))
		return -1;
	sign = zone[0] == '-' ? -1 : 1;
	zone_hours = policy_counters_two_digits(zone + 1, 14);
	zone_minutes = policy_counters_two_digits(zone + 3, 59);
	if (zone_hours < 0 || zone_minutes < 0)
		return -1;
	*utc_offset_seconds = sign * (zone_hours * 3600 + zone_minutes * 60);
	return 0;
}

int64_t
policy_counters_day_of(time_t now)
{
	int64_t t = (int64_t)now - rollover_shift;

	return t >= 0 ? t / 86400 : (t - 86399) / 86400;
}

static bool
policy_counters_key_valid(const char *name, size_t len)
{
	return len > 0 && len <= POLICY_TABLE_KEY_MAX && name != NULL;
}

static struct policy_counter *
policy_counters_find(const char *name, size_t len, bool create)
{
	struct policy_table_entry *e;

	if (!policy_counters_key_valid(name, len))
		return NULL;
	e = policy_table_lookup(POLICY_TABLE_COUNTERS, name, len, create);
	return e != NULL ? e->value : NULL;
}

int
policy_counters_incr(const char *name, size_t len, uint32_t n)
{
	struct policy_counter *c = policy_counters_find(name, len, true);
	time_t now = clock_now();
	int64_t day = policy_counters_day_of(now);

	if (c == NULL)
		return -1;
	if (c->day != day) {
		c->day = day;
		c->today = 0;
	}
	c->total += n;
	c->today += n;
	policy_window_add(&c->window, now, n);
	return 0;
}

uint64_t
policy_counters_get(const char *name, size_t len)
{
	struct policy_counter *c = policy_counters_find(name, len, false);

	return c != NULL ? c->total : 0;
}

uint64_t
policy_counters_rate(const char *name, size_t len,
    enum policy_window_span span)
{
	struct policy_counter *c = policy_counters_find(name, len, false);

	return c != NULL ? policy_window_count(&c->window, clock_now(), span) : 0;
}

uint64_t
policy_counters_today(const char *name, size_t len)
{
	struct policy_counter *c = policy_counters_find(name, len, false);

	if (c == NULL || c->day != policy_counters_day_of(clock_now()))
		return 0;
	return c->today;
}

void policy_counters_print(FILE *out, const struct policy_table_entry *e);

/* "NAME total=N today=N hour=N day=N", for sluice -bpt. */
void
policy_counters_print(FILE *out, const struct policy_table_entry *e)
{
	const struct policy_counter *c = e->value;
	time_t now = clock_now();

	fprintf(out, "%.*s total=%llu today=%llu hour=%llu day=%llu\n",
	    (int)e->key_len, e->key, (unsigned long long)c->total,
	    (unsigned long long)(c->day == policy_counters_day_of(now) ?
	    c->today : 0),
	    (unsigned long long)policy_window_count(&c->window, now,
	    POLICY_WINDOW_HOUR),
	    (unsigned long long)policy_window_count(&c->window, now,
	    POLICY_WINDOW_DAY));
}

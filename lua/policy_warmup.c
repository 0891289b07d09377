/*
 * policy_warmup.c - warm-up plans of new source IPs (sluice.warmup):
 * for each IP the plan's name and the day it started, and the sends of
 * each day per site.
 *
 * Days follow the counters' day rollover, so "day 1" is the day of
 * policy_warmup_start() and day 2 begins at the next rollover. Sends
 * are counted in the counter "warmup:IP:SITE", which policies may also
 * read with sluice.counters.
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "policy_tables_private.h"
#include "util.h"

struct policy_warmup {
	int64_t start_day;		/* policy_counters_day_of() at start */
	char plan[POLICY_WARMUP_PLAN_MAX + 1];
};

const size_t policy_warmup_value_size = sizeof(struct policy_warmup);

static struct policy_warmup *
policy_warmup_find(const char *ip, bool create)
{
	size_t len = strlen(ip);
	struct policy_table_entry *e;
	struct policy_warmup *w;

	if (len == 0 || len > POLICY_WARMUP_IP_MAX)
		return NULL;
	e = policy_table_lookup(POLICY_TABLE_WARMUP, ip, len, create);
	if (e == NULL)
		return NULL;
	w = e->value;
	/* A record loaded from disk is trusted only this far. */
	w->plan[POLICY_WARMUP_PLAN_MAX] = '\0';
	return w;
}

int
policy_warmup_start(const char *ip, const char *plan)
{
	struct policy_warmup *w;
	size_t plan_len = strlen(plan);

	if (plan_len == 0 || plan_len > POLICY_WARMUP_PLAN_MAX)
		return -1;
	if ((w = policy_warmup_find(ip, true)) == NULL)
		return -1;
	/* The same plan again keeps its start, so a policy may call this
	 * on every message. */
	if (strcmp(w->plan, plan) != 0) {
		memcpy(w->plan, plan, plan_len + 1);
		w->start_day = policy_counters_day_of(clock_now());
	}
	return policy_warmup_day(ip);
}

int
policy_warmup_day(const char *ip)
{
	struct policy_warmup *w = policy_warmup_find(ip, false);
	int64_t days;

	if (w == NULL)
		return 0;
	days = policy_counters_day_of(clock_now()) - w->start_day;
	if (days < 0)	/* the clock stepped back */
		days = 0;
	return days >= INT32_MAX ? INT32_MAX : (int)days + 1;
}

const char *
policy_warmup_plan(const char *ip)
{
	struct policy_warmup *w = policy_warmup_find(ip, false);

	return w != NULL ? w->plan : NULL;
}

/* Writes the counter name of (ip, site); returns its length, or -1 if
 * it does not fit. */
static int
policy_warmup_counter(char *buf, size_t size, const char *ip,
    const char *site)
{
	int len = snprintf(buf, size, "warmup:%s:%s", ip, site);

	if (len < 0 || (size_t)len >= size || site[0] == '\0' || ip[0] == '\0')
		return -1;
	return len;
}

int
policy_warmup_sent(const char *ip, const char *site, uint32_t n)
{
	char name[POLICY_TABLE_KEY_MAX + 1];
	int len = policy_warmup_counter(name, sizeof(name), ip, site);

	if (len < 0)
		return -1;
	return policy_counters_incr(name, (size_t)len, n);
}

uint64_t
policy_warmup_sent_today(const char *ip, const char *site)
{
	char name[POLICY_TABLE_KEY_MAX + 1];
	int len = policy_warmup_counter(name, sizeof(name), ip, site);

	if (len < 0)
		return 0;
	return policy_counters_today(name, (size_t)len);
}

void policy_warmup_print(FILE *out, const struct policy_table_entry *e);

/* "IP plan=PLAN day=N", for sluice -bpt. */
void
policy_warmup_print(FILE *out, const struct policy_table_entry *e)
{
	struct policy_warmup *w = e->value;

	int64_t days = policy_counters_day_of(clock_now()) - w->start_day;

	/* Not policy_warmup_day(): its lookup would reorder the list that
	 * the caller is walking. */
	w->plan[POLICY_WARMUP_PLAN_MAX] = '\0';
	fprintf(out, "%.*s plan=%s day=%lld\n", (int)e->key_len, e->key,
	    w->plan, (long long)(days < 0 ? 1 : days + 1));
}

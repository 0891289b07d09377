/*
 * policy_scores.c - a score from 0 to 100 and outcome counts for each
 * (source IP, site) pair (sluice.scores).
 *
 * Default formula: policy_scores_record() moves the score by
 * policy_score_steps[outcome] (delivered +1, deferred -2, failed -5,
 * complained -20), clamped to 0..100. A policy that wants another
 * formula calls :set() or :adjust() instead of relying on :record().
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "policy_tables_private.h"
#include "util.h"

/* Bytes of an IP address or site name. */
#define POLICY_SCORE_PART_MAX	255

struct policy_score {
	double score;
	bool set;			/* score has been written */
	struct policy_window outcomes[POLICY_OUTCOME_COUNT];
};

const size_t policy_score_value_size = sizeof(struct policy_score);

static const double policy_score_steps[POLICY_OUTCOME_COUNT] = {
	[POLICY_OUTCOME_DELIVERED] = 1,
	[POLICY_OUTCOME_DEFERRED] = -2,
	[POLICY_OUTCOME_FAILED] = -5,
	[POLICY_OUTCOME_COMPLAINED] = -20,
};

static const char *const policy_outcome_names[POLICY_OUTCOME_COUNT] = {
	"delivered", "deferred", "failed", "complained",
};

int
policy_outcome_parse(const char *name)
{
	for (int i = 0; i < POLICY_OUTCOME_COUNT; i++)
		if (strcmp(name, policy_outcome_names[i]) == 0)
			return i;
	return -1;
}

const char *
policy_outcome_name(enum policy_outcome outcome)
{
	if ((unsigned)outcome >= POLICY_OUTCOME_COUNT)
		fatal_bug("unknown outcome %d", (int)outcome);
	return policy_outcome_names[outcome];
}

static double
policy_scores_clamp(double v)
{
	if (!(v >= POLICY_SCORE_MIN))	/* also NaN */
		return POLICY_SCORE_MIN;
	return v > POLICY_SCORE_MAX ? POLICY_SCORE_MAX : v;
}

/* The key is ip, a NUL byte, then site. */
static struct policy_score *
policy_scores_find(const char *ip, const char *site, bool create)
{
	char key[2 * POLICY_SCORE_PART_MAX + 1];
	size_t ip_len = strlen(ip), site_len = strlen(site);
	struct policy_table_entry *e;
	struct policy_score *s;

	if (ip_len == 0 || ip_len > POLICY_SCORE_PART_MAX ||
	    site_len == 0 || site_len > POLICY_SCORE_PART_MAX)
		return NULL;
	memcpy(key, ip, ip_len);
	key[ip_len] = '\0';
	memcpy(key + ip_len + 1, site, site_len);
	e = policy_table_lookup(POLICY_TABLE_SCORES, key, ip_len + 1 + site_len,
	    create);
	if (e == NULL)
		return NULL;
	s = e->value;
	if (!s->set) {
		s->score = POLICY_SCORE_INITIAL;
		s->set = true;
	}
	s->score = policy_scores_clamp(s->score);	/* a record from disk */
	return s;
}

double
policy_scores_get(const char *ip, const char *site)
{
	struct policy_score *s = policy_scores_find(ip, site, false);

	return s != NULL ? s->score : POLICY_SCORE_INITIAL;
}

double
policy_scores_set(const char *ip, const char *site, double value)
{
	struct policy_score *s = policy_scores_find(ip, site, true);

	if (s == NULL)
		return -1;
	s->score = policy_scores_clamp(value);
	return s->score;
}

double
policy_scores_adjust(const char *ip, const char *site, double delta)
{
	struct policy_score *s = policy_scores_find(ip, site, true);

	if (s == NULL)
		return -1;
	s->score = policy_scores_clamp(s->score + delta);
	return s->score;
}

double
policy_scores_record(const char *ip, const char *site,
    enum policy_outcome outcome)
{
	struct policy_score *s = policy_scores_find(ip, site, true);

	if (s == NULL)
		return -1;
	if ((unsigned)outcome >= POLICY_OUTCOME_COUNT)
		fatal_bug("unknown outcome %d", (int)outcome);
	policy_window_add(&s->outcomes[outcome], clock_now(), 1);
	s->score = policy_scores_clamp(s->score + policy_score_steps[outcome]);
	return s->score;
}

uint64_t
policy_scores_outcomes(const char *ip, const char *site,
    enum policy_outcome outcome, enum policy_window_span span)
{
	struct policy_score *s = policy_scores_find(ip, site, false);

	if (s == NULL)
		return 0;
	if ((unsigned)outcome >= POLICY_OUTCOME_COUNT)
		fatal_bug("unknown outcome %d", (int)outcome);
	return policy_window_count(&s->outcomes[outcome], clock_now(), span);
}

struct policy_scores_walk {
	policy_scores_fn fn;
	void *arg;
};

static int
policy_scores_visit(struct policy_table_entry *e, void *arg)
{
	struct policy_scores_walk *walk = arg;
	const struct policy_score *s = e->value;

	/* The key's NUL byte ends the ip; the site follows it. */
	return walk->fn(e->key, e->key + strlen(e->key) + 1, s->score,
	    walk->arg);
}

int
policy_scores_each(policy_scores_fn fn, void *arg)
{
	struct policy_scores_walk walk = { fn, arg };

	return policy_table_walk(POLICY_TABLE_SCORES, policy_scores_visit,
	    &walk);
}

void policy_scores_print(FILE *out, const struct policy_table_entry *e);

/* "IP SITE score=S delivered=N deferred=N failed=N complained=N", the
 * counts over the last day, for sluice -bpt. */
void
policy_scores_print(FILE *out, const struct policy_table_entry *e)
{
	const struct policy_score *s = e->value;
	time_t now = clock_now();

	fprintf(out, "%s %s score=%.1f", e->key, e->key + strlen(e->key) + 1,
	    policy_scores_clamp(s->score));
	for (int i = 0; i < POLICY_OUTCOME_COUNT; i++)
		fprintf(out, " %s=%llu", policy_outcome_names[i],
		    (unsigned long long)policy_window_count(&s->outcomes[i], now,
		    POLICY_WINDOW_DAY));
	fputc('\n', out);
}

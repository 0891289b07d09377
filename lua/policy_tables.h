/*
 * policy_tables.h - the tables that policies share: named counters,
 * token-bucket throttles, per-(source IP, site) scores, the warm-up
 * plans of source IPs and the suppressed recipients.
 *
 * The tables live in C, outside every Lua state, so a reload keeps them
 * and every handler sees the same numbers. Each table is a hash table
 * with a maximum size; beyond it the least recently used entry is
 * evicted, with a log line and a count (policy_tables_evicted()), except
 * in the suppression table, which rejects new entries when full. Time
 * comes from clock.h, so tests move it with the fake clock. The tables
 * belong to the loop thread.
 *
 * Lua sees them as sluice.counters, sluice.throttles, sluice.scores,
 * sluice.warmup and sluice.suppress
 * (policy_tables_lua.c, documented in doc/lua-api.md).
 */
#ifndef SLUICE_POLICY_TABLES_H
#define SLUICE_POLICY_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <lua.h>

/* Bounds on the names policies hand to the tables. */
#define POLICY_TABLE_KEY_MAX	255	/* bytes of a counter or throttle name */
#define POLICY_TABLE_DEFAULT_ENTRIES	100000

enum policy_table_id {
	POLICY_TABLE_COUNTERS,
	POLICY_TABLE_THROTTLES,
	POLICY_TABLE_SCORES,
	POLICY_TABLE_WARMUP,
	POLICY_TABLE_SUPPRESS,
	POLICY_TABLE_COUNT
};

/* Sliding windows over which counts are kept. */
enum policy_window_span {
	POLICY_WINDOW_SECOND,	/* the current second */
	POLICY_WINDOW_MINUTE,	/* the current second and the 59 before */
	POLICY_WINDOW_HOUR,	/* the current minute and the 59 before */
	POLICY_WINDOW_DAY,	/* the current hour and the 23 before */
	POLICY_WINDOW_SPAN_COUNT
};

/*
 * Counts of events in per-second, per-minute and per-hour slots. Each
 * ring stores the time slot it was last written for, so slots that the
 * clock has moved past read as zero without any sweeping.
 */
struct policy_window {
	uint32_t seconds[60];
	uint32_t minutes[60];
	uint32_t hours[24];
	int64_t last_second;	/* newest second written, seconds since the epoch */
};

/* Adds n events at time now. */
void policy_window_add(struct policy_window *w, time_t now, uint32_t n);
/* Returns the events within span as seen at time now. */
uint64_t policy_window_count(const struct policy_window *w, time_t now,
    enum policy_window_span span);
/* Parses "second", "minute", "hour" or "day"; returns -1 for anything
 * else. */
int policy_window_span_parse(const char *name);

/* Resets every table to empty and sets each table's maximum entries
 * (0 keeps POLICY_TABLE_DEFAULT_ENTRIES). */
void policy_tables_reset(size_t max_entries);
/* Sets the maximum entries of one table; extra entries are evicted at
 * the next insertion. */
void policy_tables_set_max(enum policy_table_id table, size_t max_entries);
/* Applies the options day_rollover ("HH:MM", optionally followed by a
 * zone "+HHMM") and policy_table_max_entries. Returns 0, or -1 with
 * *error set (caller frees) and nothing changed for an invalid value. */
int policy_tables_configure(const char *day_rollover, int max_entries,
    char **error);
/* Returns the entries evicted from table since the last reset, plus
 * those of earlier runs when the table was loaded from its file. */
uint64_t policy_tables_evicted(enum policy_table_id table);
/* Returns the number of entries in table. */
size_t policy_tables_size(enum policy_table_id table);

/* ---- counters (policy_counters.c) ---- */

/*
 * Sets when the per-day totals roll over: at offset_seconds after local
 * midnight in a zone utc_offset_seconds east of UTC. The default is
 * 00:00 UTC. Returns -1 for an offset outside a day or a zone offset
 * beyond +-14 hours.
 */
int policy_counters_set_rollover(int offset_seconds, int utc_offset_seconds);
/* Parses "HH:MM" and an optional "+HHMM"/"-HHMM" zone (NULL for UTC)
 * into the arguments of policy_counters_set_rollover(). Returns -1 on a
 * malformed value. */
int policy_counters_parse_rollover(const char *time_of_day, const char *zone,
    int *offset_seconds, int *utc_offset_seconds);

/* Returns the number of the day that time t falls in, days starting at
 * the rollover. */
int64_t policy_counters_day_of(time_t t);
/* Adds n to counter name (created at zero). Returns -1 if name is empty
 * or longer than POLICY_TABLE_KEY_MAX. */
int policy_counters_incr(const char *name, size_t len, uint32_t n);
/* Returns the counter's total since it was created, 0 if unknown. */
uint64_t policy_counters_get(const char *name, size_t len);
/* Returns the events added within span. */
uint64_t policy_counters_rate(const char *name, size_t len,
    enum policy_window_span span);
/* Returns the events added since the last day rollover. */
uint64_t policy_counters_today(const char *name, size_t len);

/* ---- throttles (policy_throttles.c) ---- */

/* A rate: "N/s", "N/m", "N/h" or "N/d", with 0 < N <= 10^9. */
struct policy_rate {
	double per_second;
};

/* Parses a rate such as "15/s"; returns -1 with nothing set on anything
 * else. */
int policy_rate_parse(const char *text, struct policy_rate *rate);

/* The largest burst; with the slowest rate (1/d) the bucket's time
 * still fits in 64 bits. */
#define POLICY_THROTTLE_BURST_MAX	1000000

/*
 * Takes one token from throttle name at rate with burst tokens (GCRA).
 * Returns 1 if a token was taken, 0 if not with *wait_usec set to the
 * time until one is, and -1 for an invalid name or a burst outside
 * 1..POLICY_THROTTLE_BURST_MAX. A rate set by policy_throttles_set_rate()
 * overrides rate until it expires.
 */
int policy_throttles_try(const char *name, size_t len,
    const struct policy_rate *rate, uint32_t burst, uint64_t *wait_usec);
/* Overrides the rate of throttle name for seconds; afterwards the rate
 * passed to policy_throttles_try() applies again. Returns -1 for an
 * invalid name or seconds 0. */
int policy_throttles_set_rate(const char *name, size_t len,
    const struct policy_rate *rate, uint32_t seconds);

/* ---- scores (policy_scores.c) ---- */

enum policy_outcome {
	POLICY_OUTCOME_DELIVERED,
	POLICY_OUTCOME_DEFERRED,
	POLICY_OUTCOME_FAILED,
	POLICY_OUTCOME_COMPLAINED,
	POLICY_OUTCOME_COUNT
};

#define POLICY_SCORE_MIN	0.0
#define POLICY_SCORE_MAX	100.0
#define POLICY_SCORE_INITIAL	50.0

/* Parses "delivered", "deferred", "failed" or "complained"; -1 if
 * unknown. */
int policy_outcome_parse(const char *name);
const char *policy_outcome_name(enum policy_outcome outcome);

/* Returns the score of (ip, site): POLICY_SCORE_INITIAL if unknown. */
double policy_scores_get(const char *ip, const char *site);
/* Set the score, clamped to 0..100. Return the new score, or -1 for an
 * empty or too long ip or site. */
double policy_scores_set(const char *ip, const char *site, double value);
double policy_scores_adjust(const char *ip, const char *site, double delta);
/* Counts an outcome and moves the score by the default formula (see
 * policy_scores.c). Returns the new score, or -1 as above. */
double policy_scores_record(const char *ip, const char *site,
    enum policy_outcome outcome);
/* Returns the outcomes of (ip, site) within span. */
uint64_t policy_scores_outcomes(const char *ip, const char *site,
    enum policy_outcome outcome, enum policy_window_span span);

/* Called by policy_scores_each() for every entry; a non-zero return
 * stops the walk. */
typedef int (*policy_scores_fn)(const char *ip, const char *site,
    double score, void *arg);
int policy_scores_each(policy_scores_fn fn, void *arg);

/* ---- warm-up (policy_warmup.c) ---- */

#define POLICY_WARMUP_IP_MAX	64	/* bytes of a source IP */
#define POLICY_WARMUP_PLAN_MAX	64	/* bytes of a plan name */

/* Puts ip on plan from today; the plan ip is already on keeps its start
 * day. Returns the current day (1 on the first), or -1 for an empty or
 * too long ip or plan. */
int policy_warmup_start(const char *ip, const char *plan);
/* Returns ip's day of its plan, 1 on the start day, 0 if not started. */
int policy_warmup_day(const char *ip);
/* Returns ip's plan name, or NULL if not started. */
const char *policy_warmup_plan(const char *ip);
/* Counts n sends from ip to site today. Returns -1 if the pair is too
 * long for a counter name. */
int policy_warmup_sent(const char *ip, const char *site, uint32_t n);
/* Returns the sends from ip to site since the last day rollover. */
uint64_t policy_warmup_sent_today(const char *ip, const char *site);

/* ---- suppression (policy_suppress.c) ---- */

#define POLICY_SUPPRESS_ENTRY_MAX	255	/* bytes of an address or domain */
#define POLICY_SUPPRESS_REASON_MAX	200	/* bytes of printable ASCII */

/* Suppresses entry (an address or a domain, matched without regard to
 * case) with reason, for seconds or, with 0, until removed. Returns -1
 * for an empty or too long entry, a reason that is empty, too long or
 * not printable ASCII, or a full table. */
int policy_suppress_add(const char *entry, const char *reason,
    uint32_t seconds);
/* Returns 1 if entry was removed, 0 if it was not there. */
int policy_suppress_remove(const char *entry);
/* Returns the reason address (or its domain) is suppressed, or NULL. The
 * string is valid until the table next changes. */
const char *policy_suppress_check(const char *address);

/* ---- saving (policy_tables_persist.c) ---- */

struct event_base;

/*
 * Loads the counters and scores saved under spool/hints/ (a file that
 * cannot be read is logged and its table starts empty), then saves them
 * from a writer thread every minute of the clock. Returns 0, or -1 with
 * *error set (caller frees).
 */
int policy_tables_persist_start(struct event_base *base, const char *spool,
    char **error);
/* Loads the tables saved under spool/hints/ without starting the writer,
 * for a process that reads them but must not save (-bh). Files that
 * cannot be read are logged as at start-up. */
void policy_tables_load_saved(const char *spool);
/* Hands a snapshot of the saved tables to the writer thread now. */
void policy_tables_save_now(void);
/* Saves the tables a last time and waits until the files are written. */
void policy_tables_persist_stop(void);

/*
 * Prints the saved table name ("counters", "scores", "warmup" or
 * "suppress") from spool/hints/ to out, one entry per line, for
 * "sluice -bpt NAME", then a line "# evicted=N" with the table's eviction
 * count. The figures are those of the daemon's last save. A file written
 * with another record layout is an error that names both layouts.
 * Returns 0, or -1 with *error set (caller frees).
 */
int policy_tables_dump(const char *spool, const char *name, FILE *out,
    char **error);

/* ---- Lua (policy_tables_lua.c) ---- */

/* Registers the table classes and sets sluice.counters, .throttles,
 * .scores, .warmup and .suppress in the table on top of the stack. */
void policy_tables_open(lua_State *L);

#endif

/*
 * retry.h - retry rules in Exim's syntax ("begin retry") and the retry
 * schedule they set.
 *
 * A rule line reads
 *
 *     <pattern> <error> [senders=<address list>] <param set>[; ...]
 *
 * and the first rule whose pattern, error and senders all match a
 * failure applies. A param set is "F,<cutoff>,<interval>" (a fixed
 * gap), "G,<cutoff>,<start>,<factor>" (each gap is the previous one
 * times factor, at least start) or "H,<cutoff>,<start>,<factor>" (as G,
 * but a random gap between start and the G value). Cutoffs count from
 * the first failure for the key, not from the message's arrival. The
 * first param set whose cutoff has not passed sets the next gap. Once
 * the last cutoff has passed, the failure is final.
 *
 * Patterns: "*", a domain ("example.com", "*.example.com"), an address
 * ("user@example.com", "*@example.com", "user@*.example.com") or a
 * regular expression that starts with "^" and is matched against the
 * whole address (POSIX extended syntax, not PCRE). A key without "@"
 * is matched as "*@<key>". Named lists and lookups are not supported
 * yet and are rejected when the rules are parsed.
 *
 * Errors: "*", "refused[_MX|_A]", "timeout[_connect][_MX|_A]",
 * "lost_connection", "auth_failed", "tls_required", "quota[_<time>]"
 * and "mail_4xx", "rcpt_4xx", "data_4xx", where each "x" may also be a
 * digit ("rcpt_45x", "rcpt_452").
 */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"

#define RETRY_PARAMS_MAX	16	/* param sets in one rule */
#define RETRY_PATTERN_MAX	1024	/* bytes of a pattern or senders list */
#define RETRY_FACTOR_MAX	1000000	/* G and H factor, in thousandths */
/* Exim's default and upper limit for retry_interval_max. */
#define RETRY_INTERVAL_MAX_DEFAULT	(24 * 60 * 60)

enum retry_error_kind {
	RETRY_ERROR_ANY,		/* "*": any temporary error */
	RETRY_ERROR_REFUSED,		/* connection refused */
	RETRY_ERROR_TIMEOUT,		/* connect or SMTP timeout */
	RETRY_ERROR_LOST_CONNECTION,	/* closed during the SMTP dialogue */
	RETRY_ERROR_AUTH_FAILED,	/* authentication to the server failed */
	RETRY_ERROR_TLS_REQUIRED,	/* TLS required but failed or absent */
	RETRY_ERROR_QUOTA,		/* mailbox over quota */
	RETRY_ERROR_MAIL_4XX,		/* 4xx reply to MAIL */
	RETRY_ERROR_RCPT_4XX,		/* 4xx reply to RCPT */
	RETRY_ERROR_DATA_4XX,		/* 4xx reply to DATA or the message */
};

/*
 * An error selector of a rule, or the description of a failure to find
 * a rule for. In a rule, zero fields and 'x' digits mean "any"; in a
 * failure they mean "not known", which only a rule's "any" matches.
 */
struct retry_error {
	enum retry_error_kind kind;
	char via;			/* refused, timeout: 'M' (MX), 'A', or 0 */
	bool connect;			/* timeout: while connecting */
	int quota_age;			/* quota: seconds since the last read */
	char code[4];			/* 4xx kinds: "4xx", "45x", "452" */
};

struct retry_param {
	char letter;			/* 'F', 'G' or 'H' */
	int cutoff;			/* seconds after the first failure */
	int interval;			/* F: the gap; G, H: the first gap */
	int factor;			/* G, H: thousandths (1.5 is 1500) */
};

struct retry_rule {
	char *pattern;			/* owned */
	struct retry_error error;
	char *senders;			/* owned; NULL: any sender */
	struct retry_param params[RETRY_PARAMS_MAX];
	size_t param_count;		/* 0: temporary errors are final */
	void *regex;			/* owned regex_t when pattern is "^..." */
};

struct retry_rules {
	struct retry_rule *rules;	/* owned, in configuration order */
	size_t count;
};

/*
 * Parses a rule selector such as "rcpt_45x" or "quota_3d" into *out.
 * Returns 0, or -1 with *error set (caller frees).
 */
int retry_error_parse(const char *text, struct retry_error *out,
    char **error);

/* Parses one rule line into *out. Returns 0, or -1 with *error set
 * (caller frees); on success free the rule with retry_rule_free(). */
int retry_rule_parse(const char *line, struct retry_rule *out, char **error);
void retry_rule_free(struct retry_rule *rule);

/*
 * Parses every "begin retry" line of config into *out. Returns 0, or
 * -1 with *error set to "<file> line <n>: <reason>" (caller frees).
 * Free the result with retry_rules_free().
 */
int retry_rules_parse(const struct config *config, struct retry_rules *out,
    char **error);
void retry_rules_free(struct retry_rules *rules);

/*
 * Finds the first rule for key (a domain or an address), trying
 * alternate (may be NULL) with each rule too, for failure, sent by
 * sender (NULL: rules with senders= are skipped, as Exim's -brt does).
 * Returns the rule or NULL.
 */
const struct retry_rule *retry_rules_find(const struct retry_rules *rules,
    const char *key, const char *alternate, const struct retry_error *failure,
    const char *sender);

/* Formats rule as Exim's -brt prints it ("Retry rule: *  *  F,2h,15m; "). */
void retry_rule_print(FILE *out, const struct retry_rule *rule);

/*
 * Retry state of one key: when it first failed, when it was last tried
 * and when it may be tried next (all wall-clock seconds).
 */
struct retry_state {
	time_t first_failed;
	time_t last_try;
	time_t next_try;
	bool expired;			/* past the final cutoff */
};

/*
 * Records a failure at now in *state by rule: sets next_try and expired.
 * A state with first_failed 0 is a first failure. interval_max caps
 * every gap (retry_interval_max). random supplies H rules' randomness
 * (any value, e.g. from random()). A rule without param sets, or a
 * failure past the last cutoff, sets expired.
 */
void retry_state_update(struct retry_state *state,
    const struct retry_rule *rule, time_t now, int interval_max,
    uint32_t random);

/*
 * Runs -brt with its arguments: args[0] a domain or address, then an
 * optional second domain (recognised by a "."), then an optional error
 * name. Prints the rule found, or an error, to out, as Exim's -brt
 * prints to standard output. Returns the exit status.
 */
int retry_test(const struct config *config, char **args, int arg_count,
    FILE *out);

#endif

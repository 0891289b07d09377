/*
 * test_retry.c - retry rule parsing, rule lookup, -brt output and the
 * F/G/H schedules, driven by the fake clock.
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

#include "clock.h"
#include "config.h"
#include "retry.h"

#define DEFAULT_RULE "*  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h"
#define HOUR 3600

static void
parse_ok(const char *line, struct retry_rule *rule)
{
	char *error = NULL;

	if (retry_rule_parse(line, rule, &error) < 0)
		fail_msg("\"%s\": %s", line, error);
	assert_null(error);
}

static void
parse_bad(const char *line)
{
	struct retry_rule rule;
	char *error = NULL;

	if (retry_rule_parse(line, &rule, &error) == 0)
		fail_msg("\"%s\" parsed", line);
	assert_non_null(error);
	free(error);
}

/* Prints a rule as -brt does into a string (caller frees). */
static char *
print_rule(const struct retry_rule *rule)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	assert_non_null(out);
	retry_rule_print(out, rule);
	fclose(out);
	return text;
}

static void
test_parse_default_rule(void **state)
{
	struct retry_rule rule;
	char *text;

	(void)state;
	parse_ok(DEFAULT_RULE, &rule);
	assert_string_equal(rule.pattern, "*");
	assert_int_equal(rule.error.kind, RETRY_ERROR_ANY);
	assert_null(rule.senders);
	assert_int_equal(rule.param_count, 3);
	assert_int_equal(rule.params[0].letter, 'F');
	assert_int_equal(rule.params[0].cutoff, 2 * HOUR);
	assert_int_equal(rule.params[0].interval, 15 * 60);
	assert_int_equal(rule.params[1].letter, 'G');
	assert_int_equal(rule.params[1].cutoff, 16 * HOUR);
	assert_int_equal(rule.params[1].interval, HOUR);
	assert_int_equal(rule.params[1].factor, 1500);
	assert_int_equal(rule.params[2].cutoff, 4 * 24 * HOUR);
	text = print_rule(&rule);
	assert_string_equal(text,
	    "Retry rule: *  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h; \n");
	free(text);
	retry_rule_free(&rule);
}

static void
test_parse_print_forms(void **state)
{
	static const struct {
		const char *line;
		const char *printed;
	} cases[] = {
		/* Printed forms checked against Debian's Exim 4.96 -brt. */
		{ "*@x.org quota_3d H,4d,1m,2",
		  "Retry rule: *@x.org  quota_3d  H,4d,1m; \n" },
		{ "q.org quota G,90m,1m,2.25",
		  "Retry rule: q.org  quota  G,1h30m,1m,2.25; \n" },
		{ "*.t.org timeout_connect_MX G,8h,15m,2",
		  "Retry rule: *.t.org  timeout_connect_MX  G,8h,15m,2.0; \n" },
		{ "*.rc.org rcpt_4xx F,1w3d,10m",
		  "Retry rule: *.rc.org  *  F,1w3d,10m; \n" },
		{ "*.mc.org mail_452 F,100s,11m",
		  "Retry rule: *.mc.org  *  F,1m40s,11m; \n" },
		{ "* refused_A F,1h,6m;",
		  "Retry rule: *  refused_A  F,1h,6m; \n" },
		{ "* auth_failed F,1h,1m",
		  "Retry rule: *  auth_failed  F,1h,1m; \n" },
		{ "* lost_connection", "Retry rule: *  *  \n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct retry_rule rule;
		char *text;

		parse_ok(cases[i].line, &rule);
		text = print_rule(&rule);
		assert_string_equal(text, cases[i].printed);
		free(text);
		retry_rule_free(&rule);
	}
}

static void
test_parse_errors(void **state)
{
	(void)state;
	parse_bad("");
	parse_bad("*");
	parse_bad("* bogus F,1h,1m");
	parse_bad("* rcpt_5xx F,1h,1m");
	parse_bad("* rcpt_4x F,1h,1m");
	parse_bad("* rcpt_4x5 F,1h,1m");
	parse_bad("* quota_ F,1h,1m");
	parse_bad("* quota_x F,1h,1m");
	parse_bad("* refused_B F,1h,1m");
	parse_bad("* * X,1h,1m");
	parse_bad("* * F,1h");
	parse_bad("* * F,1h,1m,2");
	parse_bad("* * G,1h,1m");
	parse_bad("* * G,1h,1m,0");
	parse_bad("* * G,1h,1m,1.2345");
	parse_bad("* * G,1h,1m,abc");
	parse_bad("* * F,1h,0s");
	parse_bad("* * F,1x,1m");
	parse_bad("^(unclosed * F,1h,1m");
	parse_bad("^a++ * F,1h,1m");
	parse_bad("^(a{1000}){1000} * F,1h,1m");
	parse_bad("+named * F,1h,1m");
	parse_bad("lsearch;/etc/x * F,1h,1m");
	parse_bad("* * senders=");
	parse_bad("* * F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;"
	    "F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;F,1h,1m;"
	    "F,1h,1m;F,1h,1m;F,1h,1m");
}

/* Parses lines into rules (no configuration file needed). */
static void
rules_from(struct retry_rules *rules, const char *const *lines, size_t count)
{
	rules->rules = calloc(count, sizeof(*rules->rules));
	assert_non_null(rules->rules);
	rules->count = 0;
	for (size_t i = 0; i < count; i++) {
		parse_ok(lines[i], &rules->rules[i]);
		rules->count++;
	}
}

/* Returns the pattern of the rule that applies, or "none". */
static const char *
find(const struct retry_rules *rules, const char *key, const char *alternate,
    const char *error_name, const char *sender)
{
	struct retry_error failure;
	const struct retry_rule *rule;
	char *error = NULL;

	memset(&failure, 0, sizeof(failure));
	if (error_name != NULL &&
	    retry_error_parse(error_name, &failure, &error) < 0)
		fail_msg("%s: %s", error_name, error);
	rule = retry_rules_find(rules, key, alternate, &failure, sender);
	return rule == NULL ? "none" : rule->pattern;
}

static void
test_find_first_match(void **state)
{
	static const char *const lines[] = {
		"*.example.com rcpt_4xx F,1h,10m",
		"^a.*@b\\.org timeout_connect_MX F,1h,1m",
		"*@x.org quota_3d F,1h,1m",
		"alice@*.r.org * F,1h,1m",
		"*.t.org timeout F,1h,1m",
		"*.tc.org timeout_connect F,1h,1m",
		"*.tm.org timeout_MX F,1h,1m",
		"*.rf.org refused F,1h,1m",
		"*.rm.org refused_MX F,1h,1m",
		"*.mc.org mail_45x F,1h,1m",
		"x.example.net * senders=*@a.b F,1h,1m",
		"* * F,2h,15m",
	};
	struct retry_rules rules;

	(void)state;
	rules_from(&rules, lines, sizeof(lines) / sizeof(lines[0]));
	/* Each expectation is what Debian's Exim 4.96 -brt printed for the
	 * same rules, or follows from its documented matching. */
	assert_string_equal(find(&rules, "a.example.com", NULL, NULL, NULL),
	    "*");
	assert_string_equal(find(&rules, "a.example.com", NULL, "rcpt_452",
	    NULL), "*.example.com");
	assert_string_equal(find(&rules, "A.EXAMPLE.COM", NULL, "rcpt_4xx",
	    NULL), "*.example.com");
	assert_string_equal(find(&rules, "ab@b.org", NULL,
	    "timeout_connect_MX", NULL), "^a.*@b\\.org");
	assert_string_equal(find(&rules, "ab@b.org", NULL, "timeout", NULL),
	    "*");
	assert_string_equal(find(&rules, "u@x.org", NULL, "quota_4d", NULL),
	    "*@x.org");
	assert_string_equal(find(&rules, "u@x.org", NULL, "quota_1d", NULL),
	    "*");
	assert_string_equal(find(&rules, "u@x.org", NULL, "quota", NULL), "*");
	assert_string_equal(find(&rules, "alice@a.r.org", NULL, NULL, NULL),
	    "alice@*.r.org");
	assert_string_equal(find(&rules, "bob@a.r.org", NULL, NULL, NULL), "*");
	assert_string_equal(find(&rules, "a.r.org", NULL, NULL, NULL), "*");
	assert_string_equal(find(&rules, "a.t.org", NULL, "timeout_connect_A",
	    NULL), "*.t.org");
	assert_string_equal(find(&rules, "a.tc.org", NULL,
	    "timeout_connect_MX", NULL), "*.tc.org");
	assert_string_equal(find(&rules, "a.tc.org", NULL, "timeout_MX", NULL),
	    "*");
	assert_string_equal(find(&rules, "a.tm.org", NULL,
	    "timeout_connect_MX", NULL), "*.tm.org");
	assert_string_equal(find(&rules, "a.tm.org", NULL, "timeout_A", NULL),
	    "*");
	assert_string_equal(find(&rules, "a.rf.org", NULL, "refused_A", NULL),
	    "*.rf.org");
	assert_string_equal(find(&rules, "a.rm.org", NULL, "refused", NULL),
	    "*");
	assert_string_equal(find(&rules, "a.mc.org", NULL, "mail_451", NULL),
	    "*.mc.org");
	assert_string_equal(find(&rules, "a.mc.org", NULL, "mail_4xx", NULL),
	    "*");
	assert_string_equal(find(&rules, "x.example.net", NULL, NULL, NULL),
	    "*");
	assert_string_equal(find(&rules, "x.example.net", NULL, NULL,
	    "me@a.b"), "x.example.net");
	assert_string_equal(find(&rules, "x.example.net", NULL, NULL,
	    "me@c.d"), "*");
	assert_string_equal(find(&rules, "mx.host", "y.example.com",
	    "rcpt_4xx", NULL), "*.example.com");
	retry_rules_free(&rules);
}

static void
test_find_no_rules(void **state)
{
	struct retry_rules rules = { NULL, 0 };

	(void)state;
	assert_string_equal(find(&rules, "example.com", NULL, NULL, NULL),
	    "none");
}

/* Fails once at the current fake time and returns the gap set. */
static int64_t
fail_now(struct retry_state *retry, const struct retry_rule *rule,
    uint32_t random)
{
	time_t now = clock_now();

	retry_state_update(retry, rule, now, RETRY_INTERVAL_MAX_DEFAULT,
	    random);
	return (int64_t)(retry->next_try - now);
}

/* Advances the fake clock to the next try time. */
static void
wait_for(const struct retry_state *retry)
{
	time_t now = clock_now();

	if (retry->next_try > now)
		clock_fake_advance((int64_t)(retry->next_try - now) * 1000000);
}

static void
test_schedule_default_rule(void **state)
{
	static const int64_t g_gaps[] = {
		HOUR, HOUR * 3 / 2, HOUR * 9 / 4, 12150, 18225,
	};
	struct retry_rule rule;
	struct retry_state retry = { 0 };
	time_t start = clock_now();

	(void)state;
	parse_ok(DEFAULT_RULE, &rule);

	/* Every 15 minutes for the first two hours. */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(fail_now(&retry, &rule, 0), 15 * 60);
		assert_false(retry.expired);
		assert_int_equal(retry.first_failed, start);
		wait_for(&retry);
	}
	assert_int_equal(clock_now() - start, 2 * HOUR);

	/* Then gaps growing by 1.5 from one hour, until 16 hours. */
	for (size_t i = 0; i < sizeof(g_gaps) / sizeof(g_gaps[0]); i++) {
		assert_int_equal(fail_now(&retry, &rule, 0), g_gaps[i]);
		wait_for(&retry);
	}
	while (clock_now() - start < 16 * HOUR) {
		assert_true(fail_now(&retry, &rule, 0) <= 24 * HOUR);
		wait_for(&retry);
	}

	/* Then every 6 hours until 4 days, then the failure is final. */
	while (clock_now() - start < 4 * 24 * HOUR) {
		assert_int_equal(fail_now(&retry, &rule, 0), 6 * HOUR);
		assert_false(retry.expired);
		wait_for(&retry);
	}
	fail_now(&retry, &rule, 0);
	assert_true(retry.expired);
	assert_int_equal(retry.first_failed, start);
	retry_rule_free(&rule);
}

static void
test_schedule_early_try(void **state)
{
	struct retry_rule rule;
	struct retry_state retry = { 0 };

	(void)state;
	parse_ok("* * G,1d,10m,2", &rule);
	assert_int_equal(fail_now(&retry, &rule, 0), 600);
	wait_for(&retry);
	assert_int_equal(fail_now(&retry, &rule, 0), 1200);
	/* Tried after 5 minutes (as by -qf): the next gap grows from the
	 * 5 minutes that passed, not the 20 that were planned, and never
	 * falls below the start. */
	clock_fake_advance(300 * 1000000LL);
	assert_int_equal(fail_now(&retry, &rule, 0), 600);
	retry_rule_free(&rule);
}

static void
test_schedule_h_random(void **state)
{
	struct retry_rule rule;
	struct retry_state retry = { 0 };
	int64_t gap;

	(void)state;
	parse_ok("* * H,1d,10m,3", &rule);
	assert_int_equal(fail_now(&retry, &rule, 12345), 600);
	wait_for(&retry);
	/* The G value would be 30 minutes, so H picks 10 to 30. */
	gap = fail_now(&retry, &rule, 0);
	assert_int_equal(gap, 600);
	wait_for(&retry);
	gap = fail_now(&retry, &rule, 1200);
	assert_int_equal(gap, 1800);
	wait_for(&retry);
	/* The G value is now 90 minutes: 600 s plus random mod 4801 s. */
	gap = fail_now(&retry, &rule, 7);
	assert_int_equal(gap, 607);
	retry_rule_free(&rule);
}

static void
test_schedule_cap_and_no_params(void **state)
{
	struct retry_rule rule;
	struct retry_state retry = { 0 };

	(void)state;
	parse_ok("* * F,10w,3d", &rule);
	assert_int_equal(fail_now(&retry, &rule, 0), 24 * HOUR);
	retry_rule_free(&rule);

	memset(&retry, 0, sizeof(retry));
	parse_ok("* *", &rule);
	fail_now(&retry, &rule, 0);
	assert_true(retry.expired);
	retry_rule_free(&rule);
}

/* Runs -brt against a configuration file with the given retry section. */
static char *
run_brt(const char *retry_section, char **args, int count, int *status)
{
	char path[] = "/tmp/test_retry_XXXXXX";
	int fd = mkstemp(path);
	FILE *file;
	struct config *config = NULL;
	char *error = NULL;
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	assert_true(fd >= 0);
	file = fdopen(fd, "w");
	assert_non_null(file);
	fprintf(file, "begin retry\n%s\n", retry_section);
	fclose(file);
	if (config_load(path, NULL, 0, &config, &error) < 0)
		fail_msg("config_load: %s", error);
	unlink(path);
	out = open_memstream(&text, &size);
	assert_non_null(out);
	*status = retry_test(config, args, count, out);
	fclose(out);
	config_free(config);
	return text;
}

static void
test_brt_output(void **state)
{
	char *one[] = { "foo" };
	char *two[] = { "mx.host", "y.example.com", "rcpt_4xx" };
	char *bad[] = { "example.com", "bogus" };
	char *text;
	int status;

	(void)state;
	text = run_brt(DEFAULT_RULE, one, 1, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(text, "Warning: \"foo\""));
	assert_non_null(strstr(text,
	    "\nRetry rule: *  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h; \n"));
	free(text);

	text = run_brt("*.example.com rcpt_4xx F,1h,10m", two, 3, &status);
	assert_int_equal(status, 0);
	assert_string_equal(text, "Retry rule: *.example.com  *  F,1h,10m; \n");
	free(text);

	text = run_brt("a.b * F,1h,1m", two + 1, 1, &status);
	assert_int_equal(status, 0);
	assert_string_equal(text, "No retry information found\n");
	free(text);

	text = run_brt(DEFAULT_RULE, bad, 2, &status);
	assert_int_equal(status, 1);
	assert_non_null(strstr(text, "bogus"));
	free(text);

	text = run_brt("* * Q,1h,1m", one, 1, &status);
	assert_int_equal(status, 1);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_default_rule),
		cmocka_unit_test(test_parse_print_forms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_find_first_match),
		cmocka_unit_test(test_find_no_rules),
		cmocka_unit_test(test_schedule_default_rule),
		cmocka_unit_test(test_schedule_early_try),
		cmocka_unit_test(test_schedule_h_random),
		cmocka_unit_test(test_schedule_cap_and_no_params),
		cmocka_unit_test(test_brt_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

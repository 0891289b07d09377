/*
 * fuzz_retry_rule.c - libFuzzer target for the retry rule parser
 * (core/retry.c; see tests/fuzz/README.md).
 *
 * The input, cut at its first NUL as a configuration line never holds
 * one, is parsed as one "begin retry" line. What must hold:
 *  - a rejected line has an error text;
 *  - an accepted rule has a pattern, at most RETRY_PARAMS_MAX param
 *    sets with letters F, G or H, positive intervals and, for G and H,
 *    a positive factor; it prints as -brt prints it;
 *  - the rule can be looked up and scheduled without a fault, and the
 *    schedule never goes back in time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

static void
fail(const char *what, const char *input)
{
	fprintf(stderr, "fuzz_retry_rule: %s: \"%s\"\n", what, input);
	abort();
}

static void
check_rule(const struct retry_rule *rule, const char *input)
{
	struct retry_rules rules = { (struct retry_rule *)rule, 1 };
	struct retry_error failure = { 0 };
	struct retry_state state = { 0 };
	FILE *out = fopen("/dev/null", "w");
	time_t now = 1000000;

	if (rule->pattern == NULL || rule->param_count > RETRY_PARAMS_MAX)
		fail("accepted rule without a pattern or with too many sets",
		    input);
	for (size_t i = 0; i < rule->param_count; i++) {
		const struct retry_param *param = &rule->params[i];

		if (strchr("FGH", param->letter) == NULL ||
		    param->interval <= 0 ||
		    (param->letter != 'F' && param->factor <= 0))
			fail("accepted an invalid param set", input);
	}
	if (out == NULL)
		fail("cannot open /dev/null", input);
	retry_rule_print(out, rule);
	fclose(out);

	retry_rules_find(&rules, "user@example.com", "mx.example.net",
	    &failure, "sender@example.org");
	for (int i = 0; i < 64 && !state.expired; i++) {
		time_t before = now;

		retry_state_update(&state, rule, now, RETRY_INTERVAL_MAX_DEFAULT,
		    (uint32_t)i * 2654435761u);
		if (state.next_try <= before)
			fail("next try not after the failure", input);
		now = state.next_try;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = malloc(size + 1);
	struct retry_rule rule;
	char *error = NULL;

	if (input == NULL)
		return 0;
	memcpy(input, data, size);
	input[size] = '\0';
	if (retry_rule_parse(input, &rule, &error) < 0) {
		if (error == NULL)
			fail("rejected without an error", input);
		free(error);
	} else {
		check_rule(&rule, input);
		retry_rule_free(&rule);
	}
	free(input);
	return 0;
}

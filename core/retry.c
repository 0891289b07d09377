/*
 * retry.c - parsing, matching and scheduling of retry rules; see
 * retry.h for the syntax.
 */
#include <ctype.h>
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "retry.h"
#include "util.h"

/* Largest {n} repeat count accepted in a "^" pattern. */
#define RETRY_REGEX_REPEAT_MAX 100

static const char *const retry_4xx_names[] = {
	[RETRY_ERROR_MAIL_4XX] = "mail_4",
	[RETRY_ERROR_RCPT_4XX] = "rcpt_4",
	[RETRY_ERROR_DATA_4XX] = "data_4",
};

/* Parses "_MX" or "_A" (or nothing) at the end of a refused or timeout
 * selector. */
static int
retry_parse_via(const char *rest, char *via)
{
	if (*rest == '\0')
		*via = 0;
	else if (strcmp(rest, "_MX") == 0)
		*via = 'M';
	else if (strcmp(rest, "_A") == 0)
		*via = 'A';
	else
		return -1;
	return 0;
}

static int
retry_parse_4xx(const char *text, struct retry_error *out, char **error)
{
	for (int kind = RETRY_ERROR_MAIL_4XX; kind <= RETRY_ERROR_DATA_4XX;
	    kind++) {
		const char *name = retry_4xx_names[kind];
		const char *digits = text + strlen(name) - 1;

		if (strncmp(text, name, strlen(name)) != 0)
			continue;
		/* Two more places: "xx", a digit then "x", or two digits. */
		if (strlen(digits) != 3 ||
		    !(isdigit((unsigned char)digits[1]) || digits[1] == 'x') ||
		    !(isdigit((unsigned char)digits[2]) || digits[2] == 'x') ||
		    (digits[1] == 'x' && digits[2] != 'x')) {
			*error = xasprintf("invalid retry error \"%s\": %.6s "
			    "must be followed by xx, a digit and x, or two "
			    "digits", text, text);
			return -1;
		}
		out->kind = (enum retry_error_kind)kind;
		memcpy(out->code, digits, 4);
		return 0;
	}
	return 1;
}

int
retry_error_parse(const char *text, struct retry_error *out, char **error)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (strcmp(text, "*") == 0)
		return 0;
	if (strcmp(text, "lost_connection") == 0) {
		out->kind = RETRY_ERROR_LOST_CONNECTION;
		return 0;
	}
	if (strcmp(text, "auth_failed") == 0) {
		out->kind = RETRY_ERROR_AUTH_FAILED;
		return 0;
	}
	if (strcmp(text, "tls_required") == 0) {
		out->kind = RETRY_ERROR_TLS_REQUIRED;
		return 0;
	}
	if (strncmp(text, "refused", 7) == 0) {
		out->kind = RETRY_ERROR_REFUSED;
		if (retry_parse_via(text + 7, &out->via) == 0)
			return 0;
	} else if (strncmp(text, "timeout", 7) == 0) {
		const char *rest = text + 7;

		out->kind = RETRY_ERROR_TIMEOUT;
		if (strncmp(rest, "_connect", 8) == 0) {
			out->connect = true;
			rest += 8;
		}
		if (retry_parse_via(rest, &out->via) == 0)
			return 0;
	} else if (strncmp(text, "quota", 5) == 0) {
		out->kind = RETRY_ERROR_QUOTA;
		if (text[5] == '\0')
			return 0;
		if (text[5] == '_' &&
		    config_parse_time(text + 6, &out->quota_age) == 0)
			return 0;
		*error = xasprintf("invalid retry error \"%s\": the time after "
		    "quota_ is not a valid time such as 3d", text);
		return -1;
	} else {
		rc = retry_parse_4xx(text, out, error);
		if (rc <= 0)
			return rc;
	}
	*error = xasprintf("unknown retry error \"%s\"", text);
	return -1;
}

/* Parses a G or H factor such as "1.5" into thousandths. */
static int
retry_parse_factor(const char *text, int *thousandths)
{
	long value = 0;
	int scale = 1000;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		value = value * 10 + (*p++ - '0');
		if (value > RETRY_FACTOR_MAX / 1000)
			return -1;
	}
	value *= 1000;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			scale /= 10;
			if (scale == 0)
				return -1;	/* more than three decimals */
			value += (*p++ - '0') * scale;
		}
	}
	if (*p != '\0' || value <= 0)
		return -1;
	*thousandths = (int)value;
	return 0;
}

/* Parses one param set "F,2h,15m" (surrounding spaces removed). */
static int
retry_parse_param(char *text, struct retry_param *out, char **error)
{
	char *fields[5];
	size_t count = 0;
	char *save = NULL;
	size_t wanted;

	for (char *f = strtok_r(text, ",", &save); f != NULL;
	    f = strtok_r(NULL, ",", &save)) {
		if (count == ARRAY_SIZE(fields))
			goto invalid;
		while (isspace((unsigned char)*f))
			f++;
		for (size_t n = strlen(f); n > 0 &&
		    isspace((unsigned char)f[n - 1]); n--)
			f[n - 1] = '\0';
		fields[count++] = f;
	}
	if (count == 0 || strlen(fields[0]) != 1 ||
	    strchr("FGH", fields[0][0]) == NULL)
		goto invalid;
	out->letter = fields[0][0];
	wanted = out->letter == 'F' ? 3 : 4;
	if (count != wanted)
		goto invalid;
	if (config_parse_time(fields[1], &out->cutoff) < 0 ||
	    config_parse_time(fields[2], &out->interval) < 0 ||
	    out->interval <= 0)
		goto invalid;
	out->factor = 0;
	if (wanted == 4 && retry_parse_factor(fields[3], &out->factor) < 0)
		goto invalid;
	return 0;

invalid:
	*error = xstrdup("invalid retry parameters: each set must be "
	    "F,<cutoff>,<interval> or G or H,<cutoff>,<interval>,<factor> with "
	    "times such as 2h and a positive interval and factor");
	return -1;
}

/* Checks a pattern or senders item that retry_match_item() accepts. */
static int
retry_check_item(const char *item, const char *what, char **error)
{
	if (item[0] == '+' || item[0] == '!' || strchr(item, ';') != NULL) {
		*error = xasprintf("%s \"%s\": negation, named lists and "
		    "lookups are not supported in retry rules yet", what, item);
		return -1;
	}
	return 0;
}

/*
 * Compiles a "^" pattern into *regex. glibc's regcomp() can take memory
 * without bound on stacked quantifiers ("a+++...", found by fuzzing), so
 * those are rejected before it runs, and so are large repeat counts.
 */
static int
retry_regex_compile(const char *pattern, regex_t *regex, char **error)
{
	int rc;

	for (const char *p = pattern; *p != '\0'; p++) {
		if (strchr("*+?}", p[0]) != NULL && p[1] != '\0' &&
		    strchr("*+?{", p[1]) != NULL &&
		    (p == pattern || p[-1] != '\\')) {
			*error = xasprintf("invalid regular expression \"%s\": "
			    "a quantifier follows another quantifier", pattern);
			return -1;
		}
		if (p[0] == '{' &&
		    strtol(p + 1, NULL, 10) > RETRY_REGEX_REPEAT_MAX) {
			*error = xasprintf("invalid regular expression \"%s\": "
			    "repeat counts above %d are not supported", pattern,
			    RETRY_REGEX_REPEAT_MAX);
			return -1;
		}
	}
	rc = regcomp(regex, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB);
	if (rc != 0) {
		char message[256];

		regerror(rc, regex, message, sizeof(message));
		*error = xasprintf("invalid regular expression \"%s\": %s",
		    pattern, message);
		return -1;
	}
	return 0;
}

static int
retry_compile(struct retry_rule *rule, char **error)
{
	regex_t *regex = xcalloc(1, sizeof(*regex));

	if (retry_regex_compile(rule->pattern, regex, error) < 0) {
		free(regex);
		return -1;
	}
	rule->regex = regex;
	return 0;
}

/* Checks every item of a senders= list, compiling its regular
 * expressions once so that matching never meets an invalid one. */
static int
retry_check_senders(const char *list, char **error)
{
	struct config_list_iter iter;
	char item[RETRY_PATTERN_MAX + 1];

	config_list_init(&iter, list);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		regex_t regex;

		if (retry_check_item(item, "senders item", error) < 0)
			return -1;
		if (item[0] != '^')
			continue;
		if (retry_regex_compile(item, &regex, error) < 0)
			return -1;
		regfree(&regex);
	}
	if (iter.error) {
		*error = xstrdup("invalid senders= list");
		return -1;
	}
	return 0;
}

/* Splits off the next whitespace-separated word of *p. */
static char *
retry_next_word(char **p)
{
	char *word;

	while (isspace((unsigned char)**p))
		(*p)++;
	if (**p == '\0')
		return NULL;
	word = *p;
	while (**p != '\0' && !isspace((unsigned char)**p))
		(*p)++;
	if (**p != '\0')
		*(*p)++ = '\0';
	return word;
}

int
retry_rule_parse(const char *line, struct retry_rule *out, char **error)
{
	char *copy = xstrdup(line);
	char *p = copy;
	char *pattern, *selector, *save = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	pattern = retry_next_word(&p);
	selector = retry_next_word(&p);
	if (pattern == NULL || selector == NULL) {
		*error = xstrdup("a retry rule needs a pattern and an error "
		    "(\"*\" for any)");
		goto cleanup;
	}
	if (strlen(pattern) > RETRY_PATTERN_MAX) {
		*error = xasprintf("retry pattern longer than %d bytes",
		    RETRY_PATTERN_MAX);
		goto cleanup;
	}
	if (retry_check_item(pattern, "retry pattern", error) < 0 ||
	    retry_error_parse(selector, &out->error, error) < 0)
		goto cleanup;
	out->pattern = xstrdup(pattern);
	if (pattern[0] == '^' && retry_compile(out, error) < 0)
		goto cleanup;

	while (isspace((unsigned char)*p))
		p++;
	if (strncmp(p, "senders=", 8) == 0) {
		char *senders;

		p += 8;
		senders = retry_next_word(&p);
		if (senders == NULL || strlen(senders) > RETRY_PATTERN_MAX) {
			*error = xstrdup("senders= needs an address list of up "
			    "to 1024 bytes");
			goto cleanup;
		}
		out->senders = xstrdup(senders);
		if (retry_check_senders(senders, error) < 0)
			goto cleanup;
	}

	for (char *set = strtok_r(p, ";", &save); set != NULL;
	    set = strtok_r(NULL, ";", &save)) {
		char *s = set;

		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			continue;	/* a trailing ";" */
		if (out->param_count == RETRY_PARAMS_MAX) {
			*error = xasprintf("more than %d retry parameter sets",
			    RETRY_PARAMS_MAX);
			goto cleanup;
		}
		if (retry_parse_param(s, &out->params[out->param_count],
		    error) < 0)
			goto cleanup;
		out->param_count++;
	}
	rc = 0;

cleanup:
	free(copy);
	if (rc < 0)
		retry_rule_free(out);
	return rc;
}

void
retry_rule_free(struct retry_rule *rule)
{
	if (rule->regex != NULL) {
		regfree(rule->regex);
		free(rule->regex);
	}
	free(rule->pattern);
	free(rule->senders);
	memset(rule, 0, sizeof(*rule));
}

int
retry_rules_parse(const struct config *config, struct retry_rules *out,
    char **error)
{
	out->rules = NULL;
	out->count = 0;
	if (config->retry_rule_count == 0)
		return 0;
	out->rules = xcalloc(config->retry_rule_count, sizeof(*out->rules));
	for (size_t i = 0; i < config->retry_rule_count; i++) {
		const struct config_retry_rule *line = &config->retry_rules[i];
		char *reason = NULL;

		if (retry_rule_parse(line->text, &out->rules[i], &reason) < 0) {
			*error = xasprintf("%s line %d: %s", line->file,
			    line->line, reason);
			free(reason);
			retry_rules_free(out);
			return -1;
		}
		out->count++;
	}
	return 0;
}

void
retry_rules_free(struct retry_rules *rules)
{
	for (size_t i = 0; i < rules->count; i++)
		retry_rule_free(&rules->rules[i]);
	free(rules->rules);
	rules->rules = NULL;
	rules->count = 0;
}

/* Matches a domain against a domain item: "*", "*suffix" or a domain. */
static bool
retry_match_domain(const char *item, const char *domain)
{
	size_t item_len = strlen(item), len = strlen(domain);

	if (item[0] == '*') {
		item++;
		item_len--;
		return len >= item_len &&
		    strcasecmp(domain + len - item_len, item) == 0;
	}
	return strcasecmp(item, domain) == 0;
}

/* Matches a local part against "*", "*suffix" or a literal local part. */
static bool
retry_match_local(const char *item, size_t item_len, const char *local,
    size_t len)
{
	if (item_len > 0 && item[0] == '*') {
		item++;
		item_len--;
		return len >= item_len &&
		    memcmp(local + len - item_len, item, item_len) == 0;
	}
	return item_len == len && memcmp(item, local, len) == 0;
}

/* Matches address ("local@domain") against one item of an address list.
 * regex is the compiled item when it starts with "^". */
static bool
retry_match_item(const char *item, const regex_t *regex, const char *address)
{
	const char *at = strrchr(address, '@');
	const char *item_at;

	if (strcmp(item, "*") == 0)
		return true;
	if (item[0] == '^') {
		if (regex != NULL)
			return regexec(regex, address, 0, NULL, 0) == 0;
		return false;
	}
	if (at == NULL)
		return false;
	item_at = strrchr(item, '@');
	if (item_at == NULL)
		return retry_match_domain(item, at + 1);
	return retry_match_local(item, (size_t)(item_at - item), address,
	    (size_t)(at - address)) && retry_match_domain(item_at + 1, at + 1);
}

/* Matches sender against a colon-separated senders= list; its regular
 * expressions are compiled for each use. */
static bool
retry_match_senders(const char *list, const char *sender)
{
	struct config_list_iter iter;
	char item[RETRY_PATTERN_MAX + 1];

	config_list_init(&iter, list);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		regex_t regex;
		bool matched;

		if (item[0] != '^') {
			if (retry_match_item(item, NULL, sender))
				return true;
			continue;
		}
		char *error = NULL;

		/* The list was checked when the rule was parsed. */
		if (retry_regex_compile(item, &regex, &error) < 0) {
			free(error);
			continue;
		}
		matched = regexec(&regex, sender, 0, NULL, 0) == 0;
		regfree(&regex);
		if (matched)
			return true;
	}
	return false;
}

/* Whether a rule's error selector covers failure. */
static bool
retry_error_matches(const struct retry_error *rule,
    const struct retry_error *failure)
{
	if (rule->kind == RETRY_ERROR_ANY)
		return true;
	if (rule->kind != failure->kind)
		return false;
	switch (rule->kind) {
	case RETRY_ERROR_REFUSED:
		return rule->via == 0 || rule->via == failure->via;
	case RETRY_ERROR_TIMEOUT:
		return (!rule->connect || failure->connect) &&
		    (rule->via == 0 || rule->via == failure->via);
	case RETRY_ERROR_QUOTA:
		return failure->quota_age >= rule->quota_age;
	case RETRY_ERROR_MAIL_4XX:
	case RETRY_ERROR_RCPT_4XX:
	case RETRY_ERROR_DATA_4XX:
		for (int i = 1; i < 3; i++)
			if (rule->code[i] != 'x' &&
			    rule->code[i] != failure->code[i])
				return false;
		return true;
	default:
		return true;
	}
}

const struct retry_rule *
retry_rules_find(const struct retry_rules *rules, const char *key,
    const char *alternate, const struct retry_error *failure,
    const char *sender)
{
	char *address = strchr(key, '@') != NULL ? xstrdup(key) :
	    xasprintf("*@%s", key);
	char *other = alternate == NULL ? NULL :
	    strchr(alternate, '@') != NULL ? xstrdup(alternate) :
	    xasprintf("*@%s", alternate);
	const struct retry_rule *found = NULL;

	for (size_t i = 0; i < rules->count && found == NULL; i++) {
		const struct retry_rule *rule = &rules->rules[i];

		if (!retry_error_matches(&rule->error, failure))
			continue;
		if (rule->senders != NULL && (sender == NULL ||
		    !retry_match_senders(rule->senders, sender)))
			continue;
		if (retry_match_item(rule->pattern, rule->regex, address) ||
		    (other != NULL &&
		    retry_match_item(rule->pattern, rule->regex, other)))
			found = rule;
	}
	free(address);
	free(other);
	return found;
}

static const char *
retry_via_suffix(char via)
{
	if (via == 'M')
		return "_MX";
	if (via == 'A')
		return "_A";
	return "";
}

/* Prints the selector as Exim's -brt does, which names only refused,
 * timeout, quota and auth_failed selectors and shows the rest as "*". */
static void
retry_error_print(FILE *out, const struct retry_error *error)
{
	char time[32];

	switch (error->kind) {
	case RETRY_ERROR_REFUSED:
		fprintf(out, "refused%s", retry_via_suffix(error->via));
		break;
	case RETRY_ERROR_TIMEOUT:
		fprintf(out, "timeout%s%s", error->connect ? "_connect" : "",
		    retry_via_suffix(error->via));
		break;
	case RETRY_ERROR_QUOTA:
		fputs("quota", out);
		if (error->quota_age > 0) {
			config_format_time(error->quota_age, time,
			    sizeof(time));
			fprintf(out, "_%s", time);
		}
		break;
	case RETRY_ERROR_AUTH_FAILED:
		fputs("auth_failed", out);
		break;
	default:
		fputc('*', out);
		break;
	}
}

void
retry_rule_print(FILE *out, const struct retry_rule *rule)
{
	char cutoff[32], interval[32];

	fprintf(out, "Retry rule: %s  ", rule->pattern);
	retry_error_print(out, &rule->error);
	fputs("  ", out);
	for (size_t i = 0; i < rule->param_count; i++) {
		const struct retry_param *param = &rule->params[i];

		config_format_time(param->cutoff, cutoff, sizeof(cutoff));
		config_format_time(param->interval, interval,
		    sizeof(interval));
		fprintf(out, "%c,%s,%s", param->letter, cutoff, interval);
		/* Exim prints the factor of G rules only, with at least one
		 * decimal: "1.5", "2.0", "2.25". */
		if (param->letter == 'G') {
			int fraction = param->factor % 1000;

			fprintf(out, ",%d.", param->factor / 1000);
			if (fraction == 0)
				fputc('0', out);
			for (int scale = 100; fraction != 0; scale /= 10) {
				fputc('0' + fraction / scale, out);
				fraction %= scale;
			}
		}
		fputs("; ", out);
	}
	fputc('\n', out);
}

void
retry_state_update(struct retry_state *state, const struct retry_rule *rule,
    time_t now, int interval_max, uint32_t random)
{
	const struct retry_param *param = NULL;
	int64_t failing, gap;

	if (state->first_failed == 0 || state->first_failed > now) {
		state->first_failed = now;
		state->last_try = 0;
		state->next_try = 0;
	}
	failing = (int64_t)(now - state->first_failed);
	for (size_t i = 0; i < rule->param_count; i++) {
		if (failing < rule->params[i].cutoff) {
			param = &rule->params[i];
			break;
		}
	}
	if (param == NULL) {
		/* Past the last cutoff (or no param sets): the failure is
		 * final, and the key may be tried again after the longest
		 * gap so that a host that recovers is noticed. */
		state->expired = true;
		state->last_try = now;
		state->next_try = now + interval_max;
		return;
	}

	gap = param->interval;
	if (param->letter != 'F' && state->last_try != 0 &&
	    state->next_try > state->last_try) {
		/* The previous gap, as planned or as it turned out when the
		 * key was tried early, whichever is shorter. */
		int64_t planned = (int64_t)(state->next_try - state->last_try);
		int64_t actual = (int64_t)(now - state->last_try);
		int64_t previous = planned < actual ? planned : actual;
		int64_t grown = previous * param->factor / 1000;

		if (grown > param->interval)
			gap = grown;
	}
	if (param->letter == 'H' && gap > param->interval)
		gap = param->interval + (int64_t)(random % (uint64_t)(gap -
		    param->interval + 1));
	if (interval_max > 0 && gap > interval_max)
		gap = interval_max;

	state->expired = false;
	state->last_try = now;
	state->next_try = now + (time_t)gap;
}

int
retry_test(const struct config *config, char **args, int arg_count,
    FILE *out)
{
	struct retry_rules rules;
	struct retry_error failure;
	const struct retry_rule *rule;
	const char *key, *alternate = NULL;
	char *error = NULL;
	int next = 1;

	if (arg_count < 1 || arg_count > 3) {
		fprintf(out, "sluice: -brt needs a domain or address, then "
		    "optionally a second domain and an error name\n");
		return 1;
	}
	key = args[0];
	if (strchr(key, '@') == NULL && strchr(key, '.') == NULL)
		fprintf(out, "Warning: \"%s\" has neither '@' nor '.', so it "
		    "is taken as a one-component domain, not a local part.\n\n",
		    key);
	if (next < arg_count && strchr(args[next], '.') != NULL)
		alternate = args[next++];
	memset(&failure, 0, sizeof(failure));
	if (next < arg_count &&
	    retry_error_parse(args[next++], &failure, &error) < 0) {
		fprintf(out, "%s\n", error);
		free(error);
		return 1;
	}
	if (next < arg_count) {
		fprintf(out, "sluice: unexpected argument \"%s\" after the "
		    "error name\n", args[next]);
		return 1;
	}
	if (retry_rules_parse(config, &rules, &error) < 0) {
		fprintf(out, "sluice: %s\n", error);
		free(error);
		return 1;
	}

	rule = retry_rules_find(&rules, key, alternate, &failure, NULL);
	if (rule == NULL)
		fprintf(out, "No retry information found\n");
	else
		retry_rule_print(out, rule);
	retry_rules_free(&rules);
	return 0;
}

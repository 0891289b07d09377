/*
 * queue_select.c - the messages of a queue run (see queue_select.h).
 *
 * Exim matches -Rr and -Sr with PCRE; sluice uses POSIX extended
 * regular expressions, which agree on the common cases (alternation,
 * classes, anchors) but lack PCRE's shorthands such as \d.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "queue_select.h"
#include "util.h"

int
queue_select_prepare(struct queue_select *sel, char **error)
{
	const int flags = REG_EXTENDED | REG_ICASE | REG_NOSUB;
	char text[256];
	int rc;

	if (sel->prepared)
		return 0;
	if (sel->recipient_match != NULL && sel->recipient_regex &&
	    (rc = regcomp(&sel->recipient_re, sel->recipient_match, flags)) != 0) {
		regerror(rc, &sel->recipient_re, text, sizeof(text));
		*error = xasprintf("invalid regular expression after -Rr: %s",
		    text);
		sel->recipient_regex = false;
		return -1;
	}
	if (sel->sender_match != NULL && sel->sender_regex &&
	    (rc = regcomp(&sel->sender_re, sel->sender_match, flags)) != 0) {
		regerror(rc, &sel->sender_re, text, sizeof(text));
		*error = xasprintf("invalid regular expression after -Sr: %s",
		    text);
		if (sel->recipient_match != NULL && sel->recipient_regex)
			regfree(&sel->recipient_re);
		sel->recipient_regex = false;
		sel->sender_regex = false;
		return -1;
	}
	sel->prepared = true;
	return 0;
}

void
queue_select_free(struct queue_select *sel)
{
	if (sel->prepared) {
		if (sel->recipient_match != NULL && sel->recipient_regex)
			regfree(&sel->recipient_re);
		if (sel->sender_match != NULL && sel->sender_regex)
			regfree(&sel->sender_re);
	}
	free(sel->recipient_match);
	free(sel->sender_match);
	free(sel->start_id);
	free(sel->stop_id);
	memset(sel, 0, sizeof(*sel));
}

static bool
queue_select_text_matches(const char *text, const char *match, bool regex,
    const regex_t *re)
{
	if (regex)
		return regexec(re, text, 0, NULL, 0) == 0;
	return strcasestr(text, match) != NULL;
}

bool
queue_select_in_range(const struct queue_select *sel, const char *id)
{
	if (sel->start_id != NULL && strcmp(id, sel->start_id) < 0)
		return false;
	if (sel->stop_id != NULL && strcmp(id, sel->stop_id) > 0)
		return false;
	return true;
}

bool
queue_select_match(const struct queue_select *sel,
    const struct spool_list_message *m)
{
	const struct spool_header *h = &m->header;
	bool found;

	SLUICE_ASSERT(sel->prepared);
	if (!queue_select_in_range(sel, m->id))
		return false;
	if (m->status != SPOOL_LIST_OK)
		return !sel->first_only && sel->recipient_match == NULL &&
		    sel->sender_match == NULL;
	if (sel->first_only && !h->deliver_firsttime)
		return false;
	if (sel->sender_match != NULL &&
	    !queue_select_text_matches(h->sender != NULL ? h->sender : "",
	    sel->sender_match, sel->sender_regex, &sel->sender_re))
		return false;
	if (sel->recipient_match == NULL)
		return true;
	found = false;
	for (size_t i = 0; i < h->recipients_count && !found; i++) {
		const char *address = h->recipients[i].address;

		found = !spool_header_is_delivered(h, address) &&
		    queue_select_text_matches(address, sel->recipient_match,
		    sel->recipient_regex, &sel->recipient_re);
	}
	return found;
}

void
queue_select_flags(const struct queue_select *sel, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s%s", sel->two_stage ? "q" : "",
	    sel->first_only ? "i" : "",
	    sel->force >= QUEUE_SELECT_FORCE ? "f" : "",
	    sel->force >= QUEUE_SELECT_FORCE_FROZEN ? "f" : "",
	    sel->local_only ? "l" : "");
}

/* Appends " key=<quoted value>" to *text. */
static void
queue_select_add(char **text, const char *key, const char *value)
{
	char *quoted, *joined;

	if (value == NULL)
		return;
	quoted = control_quote(value);
	joined = xasprintf("%s %s=%s", *text, key, quoted);
	free(quoted);
	free(*text);
	*text = joined;
}

char *
queue_select_encode(const struct queue_select *sel)
{
	char *text = xasprintf("force=%d first=%d two_stage=%d local=%d",
	    (int)sel->force, sel->first_only, sel->two_stage, sel->local_only);

	queue_select_add(&text, sel->recipient_regex ? "recipient_regex" :
	    "recipient", sel->recipient_match);
	queue_select_add(&text, sel->sender_regex ? "sender_regex" : "sender",
	    sel->sender_match);
	queue_select_add(&text, "start", sel->start_id);
	queue_select_add(&text, "stop", sel->stop_id);
	return text;
}

static int
queue_select_flag(const char *value, bool *out)
{
	if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
		return -1;
	*out = value[0] == '1';
	return 0;
}

int
queue_select_decode(int argc, char **argv, struct queue_select *sel,
    char **error)
{
	memset(sel, 0, sizeof(*sel));
	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		const char *key = argv[i];
		char *value;
		int rc = 0;

		if (eq == NULL)
			goto bad;
		*eq = '\0';
		value = eq + 1;
		if (control_unquote(value) < 0 ||
		    strlen(value) > QUEUE_SELECT_MATCH_MAX)
			goto bad;
		if (strcmp(key, "force") == 0) {
			if (strlen(value) != 1 || value[0] < '0' || value[0] > '2')
				goto bad;
			sel->force = (enum queue_select_force)(value[0] - '0');
		} else if (strcmp(key, "first") == 0) {
			rc = queue_select_flag(value, &sel->first_only);
		} else if (strcmp(key, "two_stage") == 0) {
			rc = queue_select_flag(value, &sel->two_stage);
		} else if (strcmp(key, "local") == 0) {
			rc = queue_select_flag(value, &sel->local_only);
		} else if (strcmp(key, "recipient") == 0 ||
		    strcmp(key, "recipient_regex") == 0) {
			free(sel->recipient_match);
			sel->recipient_match = xstrdup(value);
			sel->recipient_regex = key[9] != '\0';
		} else if (strcmp(key, "sender") == 0 ||
		    strcmp(key, "sender_regex") == 0) {
			free(sel->sender_match);
			sel->sender_match = xstrdup(value);
			sel->sender_regex = key[6] != '\0';
		} else if (strcmp(key, "start") == 0) {
			free(sel->start_id);
			sel->start_id = xstrdup(value);
		} else if (strcmp(key, "stop") == 0) {
			free(sel->stop_id);
			sel->stop_id = xstrdup(value);
		} else {
			goto bad;
		}
		if (rc < 0)
			goto bad;
		continue;
bad:
		*error = xasprintf("invalid queue run argument \"%.64s\"", key);
		queue_select_free(sel);
		return -1;
	}
	if (queue_select_prepare(sel, error) < 0) {
		queue_select_free(sel);
		return -1;
	}
	return 0;
}

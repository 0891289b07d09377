/*
 * config_value.c - the value syntax of sluice.conf: integers, sizes,
 * times and Exim lists (see config.h).
 *
 * The forms are those of Exim 4.96, checked against the Debian 12
 * binary: "0x10" and "010" are 16 and 8, "2048K" prints as "2M", "90m"
 * prints as "1h30m", and a time needs a unit.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "util.h"

int
config_parse_integer(const char *s, int64_t *out)
{
	long long value;
	char *end;
	int64_t factor = 1;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	value = strtoll(s, &end, 0);
	if (end == s || errno == ERANGE)
		return -1;

	switch (*end) {
	case 'k': case 'K':
		factor = 1024;
		end++;
		break;
	case 'm': case 'M':
		factor = 1024 * 1024;
		end++;
		break;
	case 'g': case 'G':
		factor = 1024 * 1024 * 1024;
		end++;
		break;
	}
	if (*end != '\0')
		return -1;
	if (value > INT64_MAX / factor || value < INT64_MIN / factor)
		return -1;
	*out = (int64_t)value * factor;
	return 0;
}

int
config_parse_size(const char *s, int64_t *bytes)
{
	int64_t value;

	if (config_parse_integer(s, &value) < 0 || value < 0)
		return -1;
	*bytes = value;
	return 0;
}

int
config_parse_time(const char *s, int *seconds)
{
	int64_t total = 0;

	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		int64_t number = 0;
		int64_t unit;

		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s)) {
			number = number * 10 + (*s - '0');
			if (number > INT_MAX)
				return -1;
			s++;
		}
		switch (*s) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 60 * 60; break;
		case 'd': unit = 24 * 60 * 60; break;
		case 'w': unit = 7 * 24 * 60 * 60; break;
		default: return -1;
		}
		s++;
		total += number * unit;
		if (total > INT_MAX)
			return -1;
	}
	*seconds = (int)total;
	return 0;
}

void
config_format_time(int seconds, char *buf, size_t size)
{
	static const struct {
		char unit;
		int seconds;
	} units[] = {
		{ 'w', 7 * 24 * 60 * 60 },
		{ 'd', 24 * 60 * 60 },
		{ 'h', 60 * 60 },
		{ 'm', 60 },
		{ 's', 1 },
	};
	size_t len = 0;

	SLUICE_ASSERT(size > 0);
	buf[0] = '\0';
	if (seconds <= 0) {
		snprintf(buf, size, "%ds", seconds);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units) && len < size; i++) {
		int count = seconds / units[i].seconds;
		int n;

		if (count == 0)
			continue;
		seconds -= count * units[i].seconds;
		n = snprintf(buf + len, size - len, "%d%c", count,
		    units[i].unit);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

void
config_format_size(int64_t bytes, char *buf, size_t size)
{
	const int64_t k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024;

	if (bytes != 0 && bytes % g == 0)
		snprintf(buf, size, "%" PRId64 "G", bytes / g);
	else if (bytes != 0 && bytes % m == 0)
		snprintf(buf, size, "%" PRId64 "M", bytes / m);
	else if (bytes != 0 && bytes % k == 0)
		snprintf(buf, size, "%" PRId64 "K", bytes / k);
	else
		snprintf(buf, size, "%" PRId64, bytes);
}

void
config_list_init(struct config_list_iter *iter, const char *list)
{
	const char *p = list != NULL ? list : "";

	while (isspace((unsigned char)*p))
		p++;
	iter->separator = ':';
	iter->error = false;
	if (p[0] == '<' && ispunct((unsigned char)p[1])) {
		iter->separator = p[1];
		p += 2;
	}
	iter->next = p;
}

char *
config_list_next(struct config_list_iter *iter, char *buf, size_t size)
{
	const char *p = iter->next;
	const char *q;
	size_t len = 0, trimmed_len = 0, n = 0;

	if (iter->error || size == 0)
		return NULL;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		iter->next = p;
		return NULL;	/* a separator at the end adds no item */
	}

	/* Measure first: trailing white space does not count towards the
	 * bound, because it is trimmed. A doubled separator is one literal
	 * separator character. */
	for (q = p; *q != '\0'; q++) {
		if (*q == iter->separator) {
			if (q[1] != iter->separator)
				break;
			q++;
		}
		len++;
		if (!isspace((unsigned char)*q))
			trimmed_len = len;
	}
	if (trimmed_len >= size) {
		iter->error = true;
		return NULL;
	}

	for (; n < trimmed_len; p++) {
		if (*p == iter->separator)
			p++;
		buf[n++] = *p;
	}
	buf[n] = '\0';
	iter->next = *q == iter->separator ? q + 1 : q;
	return buf;
}

/*
 * util.c - allocation wrappers and fatal errors (see util.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static fatal_hook_fn fatal_hook;

void
fatal_set_hook(fatal_hook_fn hook)
{
	fatal_hook = hook;
}

static void SLUICE_NORETURN
fatal_finish(int with_errno, int saved_errno, int dump_core,
    const char *prefix, const char *fmt, va_list ap)
{
	char message[1024];
	int n;

	n = snprintf(message, sizeof(message), "%s", prefix);
	if (n < 0 || (size_t)n >= sizeof(message))
		n = 0;
	vsnprintf(message + n, sizeof(message) - n, fmt, ap);
	if (with_errno) {
		size_t len = strlen(message);
		snprintf(message + len, sizeof(message) - len, ": %s",
		    strerror(saved_errno));
	}

	fprintf(stderr, "sluice: %s\n", message);
	if (fatal_hook != NULL) {
		fatal_hook_fn hook = fatal_hook;

		fatal_hook = NULL;	/* a failing hook must not recurse */
		hook(message);
	}
	if (dump_core)
		abort();
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	fatal_finish(1, saved_errno, 0, "", fmt, ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fatal_finish(0, 0, 0, "", fmt, ap);
}

void
fatal_bug_at(const char *file, int line, const char *fmt, ...)
{
	char prefix[256];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "internal error at %s:%d: ", file, line);
	va_start(ap, fmt);
	fatal_finish(0, 0, 1, prefix, fmt, ap);
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		fatal("out of memory allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t count, size_t size)
{
	void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);

	if (p == NULL)
		fatal("out of memory allocating %zu x %zu bytes", count, size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size == 0 ? 1 : size);

	if (p == NULL)
		fatal("out of memory reallocating %zu bytes", size);
	return p;
}

void *
xreallocarray(void *ptr, size_t count, size_t size)
{
	if (size != 0 && count > SIZE_MAX / size)
		fatalx("allocation of %zu x %zu bytes overflows", count, size);
	return xrealloc(ptr, count * size);
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("out of memory copying a string");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		fatal("out of memory copying a string");
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		fatal("out of memory formatting a string");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

size_t
strlcpy_s(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int
parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long value = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (value > (max - (unsigned)(*s - '0')) / 10)
			return -1;
		value = value * 10 + (unsigned)(*s - '0');
	}
	*out = value;
	return 0;
}

uint64_t
hash_fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int
host_item_split(const char *item, int default_port, char *name, size_t size,
    int *port)
{
	const char *colon, *close;
	unsigned long long value;
	size_t len;

	*port = default_port;
	if (item[0] == '[') {
		if ((close = strchr(item, ']')) == NULL)
			return -1;
		len = (size_t)(close - item - 1);
		if (len >= size || (close[1] != '\0' && close[1] != ':'))
			return -1;
		memcpy(name, item + 1, len);
		name[len] = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(item, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;		/* an IPv6 address */
		len = colon != NULL ? (size_t)(colon - item) : strlen(item);
		if (len >= size)
			return -1;
		memcpy(name, item, len);
		name[len] = '\0';
	}
	if (colon != NULL) {
		if (parse_uint(colon + 1, 65535, &value) < 0 || value == 0)
			return -1;
		*port = (int)value;
	}
	return name[0] == '\0' ? -1 : 0;
}

bool
host_is_ip_literal(const char *text)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, text, buf) == 1 ||
	    inet_pton(AF_INET6, text, buf) == 1;
}

/*
 * util.h - allocation wrappers, fatal errors and small string helpers.
 *
 * Three kinds of failure, three tools:
 *  - fatal_bug(): an internal inconsistency; logs file:line and aborts
 *    with a core dump. SLUICE_ASSERT() uses it and stays on in release
 *    builds.
 *  - fatal() / fatalx(): the environment makes going on impossible (out
 *    of memory, bad configuration at start-up); with and without errno.
 *  - everything caused by a peer or a transient local problem returns -1
 *    to the caller, which answers 4xx/5xx or retries.
 *
 * The x* allocation functions never return NULL: they call fatal().
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLUICE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SLUICE_NORETURN __attribute__((noreturn))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Called by fatal*() before the process exits, so the paniclog gets the
 * message too. The log module installs it once the logs are open. */
typedef void (*fatal_hook_fn)(const char *message);
void fatal_set_hook(fatal_hook_fn hook);

void fatal(const char *fmt, ...) SLUICE_PRINTF(1, 2) SLUICE_NORETURN;
void fatalx(const char *fmt, ...) SLUICE_PRINTF(1, 2) SLUICE_NORETURN;
void fatal_bug_at(const char *file, int line, const char *fmt, ...)
    SLUICE_PRINTF(3, 4) SLUICE_NORETURN;

#define fatal_bug(...) fatal_bug_at(__FILE__, __LINE__, __VA_ARGS__)
#define SLUICE_ASSERT(cond) \
	do { if (!(cond)) fatal_bug("assertion failed: %s", #cond); } while (0)

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) SLUICE_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) SLUICE_PRINTF(1, 0);

/* Copies at most size-1 bytes and always terminates; returns strlen(src),
 * so a result >= size means the copy was truncated. */
size_t strlcpy_s(char *dst, const char *src, size_t size);

/* Parses a decimal unsigned number that fills the whole string and is at
 * most max; returns -1 on anything else. */
int parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/* The 64-bit FNV-1a hash of len bytes, for in-memory hash tables only
 * (it is no defence against chosen keys). Start with HASH_FNV_START and
 * pass the result on to hash more bytes. */
#define HASH_FNV_START	14695981039346656037ULL
uint64_t hash_fnv(uint64_t h, const void *data, size_t len);

/*
 * Splits a host item of the smarthost option, or of a route's own
 * hosts, into name and port: "host", "host:port" ("host::port" in a
 * colon list), "[ip]", "[ip]:port", or a bare IPv6 address in a list
 * with another separator. name gets size bytes at most. Returns 0, or -1
 * for a malformed item or a port outside 1 to 65535.
 */
int host_item_split(const char *item, int default_port, char *name,
    size_t size, int *port);

/* True when text is an IPv4 or IPv6 address. */
bool host_is_ip_literal(const char *text);

#endif

/*
 * dns_cache.h - the resolver's cache of DNS answers, keyed by name (case
 * folded) and record type.
 *
 * c-ares 1.18, as Debian 12 ships it, keeps no cache, and its MX parser
 * drops TTLs, so sluice keeps whole answers here with an expiry that
 * the caller computed from the answer (dns_answer_inspect()). A negative
 * answer ("no such name", "no records of this type") is an entry too,
 * with its c-ares status. Entries are bounded in number and size: when
 * full, the least recently used entry goes.
 *
 * Times are microseconds of the monotonic sluice clock, passed in, so
 * the tests can move them.
 *
 * Thread use: one thread per cache. Fatal: out of memory only.
 */
#ifndef SLUICE_DNS_CACHE_H
#define SLUICE_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* Bounds. Answers larger than DNS_CACHE_ANSWER_MAX are not kept, so a
 * full cache has at most entries * 4 KiB of answers. */
#define DNS_CACHE_ANSWER_MAX	4096
#define DNS_CACHE_TTL_MAX	86400u	/* seconds: a day */
#define DNS_CACHE_NEGATIVE_TTL_MAX	3600u	/* seconds, RFC 2308 sec. 5 */

struct dns_cache;

struct dns_cache_entry {
	int status;			/* c-ares status of the answer */
	const unsigned char *answer;	/* borrowed until the next change */
	size_t len;
};

/* Creates a cache of at most max_entries entries (at least 1). */
struct dns_cache *dns_cache_new(size_t max_entries);

/* Accepts NULL. */
void dns_cache_free(struct dns_cache *cache);

/*
 * Stores a copy of answer (len bytes, may be 0 with answer NULL) for
 * (name, type), replacing an older entry, until now_usec + ttl seconds.
 * A ttl of 0 or an answer over DNS_CACHE_ANSWER_MAX stores nothing (and
 * drops an older entry). ttl is cut to DNS_CACHE_TTL_MAX.
 */
void dns_cache_put(struct dns_cache *cache, const char *name, int type,
    int status, const unsigned char *answer, size_t len, uint32_t ttl,
    uint64_t now_usec);

/* Finds the entry for (name, type) that has not expired at now_usec and
 * marks it as used; NULL when there is none. An expired entry found on
 * the way is dropped. */
const struct dns_cache_entry *dns_cache_get(struct dns_cache *cache,
    const char *name, int type, uint64_t now_usec);

size_t dns_cache_size(const struct dns_cache *cache);

#endif

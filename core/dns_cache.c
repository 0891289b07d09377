/*
 * dns_cache.c - a bounded cache of DNS answers with expiry and LRU
 * eviction (see dns_cache.h).
 *
 * A chained hash table finds entries; a doubly linked list keeps them
 * in order of use, the most recent first, so eviction takes the tail.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "dns_cache.h"
#include "util.h"

struct dns_cache_item {
	struct dns_cache_entry entry;
	char name[DNS_NAME_MAX + 1];	/* lower case, no final dot */
	int type;
	uint64_t expires_usec;
	uint32_t hash;
	struct dns_cache_item *chain;		/* next in the bucket */
	struct dns_cache_item *newer, *older;	/* use order */
};

struct dns_cache {
	struct dns_cache_item **buckets;
	size_t bucket_count;		/* a power of two */
	size_t count, max;
	struct dns_cache_item *newest, *oldest;
};

/* Folds a name to its key: lower case, without one final dot. Returns
 * -1 for a name too long to be a key. */
static int
dns_cache_key(const char *name, char key[DNS_NAME_MAX + 1])
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len > DNS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		key[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	key[len] = '\0';
	return 0;
}

/* FNV-1a over the key and the type. */
static uint32_t
dns_cache_hash(const char *key, int type)
{
	uint32_t h = 2166136261u;

	for (const char *p = key; *p != '\0'; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	h ^= (uint32_t)type;
	h *= 16777619u;
	return h;
}

struct dns_cache *
dns_cache_new(size_t max_entries)
{
	struct dns_cache *cache = xcalloc(1, sizeof(*cache));

	cache->max = max_entries > 0 ? max_entries : 1;
	cache->bucket_count = 16;
	while (cache->bucket_count < cache->max && cache->bucket_count < 65536)
		cache->bucket_count *= 2;
	cache->buckets = xcalloc(cache->bucket_count, sizeof(*cache->buckets));
	return cache;
}

static void
dns_cache_unlink(struct dns_cache *cache, struct dns_cache_item *item)
{
	struct dns_cache_item **link =
	    &cache->buckets[item->hash & (cache->bucket_count - 1)];

	while (*link != item)
		link = &(*link)->chain;
	*link = item->chain;
	if (item->newer != NULL)
		item->newer->older = item->older;
	else
		cache->newest = item->older;
	if (item->older != NULL)
		item->older->newer = item->newer;
	else
		cache->oldest = item->newer;
	cache->count--;
	free((void *)item->entry.answer);
	free(item);
}

void
dns_cache_free(struct dns_cache *cache)
{
	if (cache == NULL)
		return;
	while (cache->oldest != NULL)
		dns_cache_unlink(cache, cache->oldest);
	free(cache->buckets);
	free(cache);
}

static struct dns_cache_item *
dns_cache_find(struct dns_cache *cache, const char *key, int type,
    uint32_t hash)
{
	struct dns_cache_item *item =
	    cache->buckets[hash & (cache->bucket_count - 1)];

	while (item != NULL && (item->hash != hash || item->type != type ||
	    strcmp(item->name, key) != 0))
		item = item->chain;
	return item;
}

/* Makes item the most recently used. */
static void
dns_cache_touch(struct dns_cache *cache, struct dns_cache_item *item)
{
	if (cache->newest == item)
		return;
	/* Take it out of the use order... */
	if (item->newer != NULL)
		item->newer->older = item->older;
	if (item->older != NULL)
		item->older->newer = item->newer;
	else if (cache->oldest == item)
		cache->oldest = item->newer;
	/* ... and put it in front. */
	item->newer = NULL;
	item->older = cache->newest;
	if (cache->newest != NULL)
		cache->newest->newer = item;
	cache->newest = item;
	if (cache->oldest == NULL)
		cache->oldest = item;
}

void
dns_cache_put(struct dns_cache *cache, const char *name, int type,
    int status, const unsigned char *answer, size_t len, uint32_t ttl,
    uint64_t now_usec)
{
	char key[DNS_NAME_MAX + 1];
	struct dns_cache_item *item;
	uint32_t hash;

	if (dns_cache_key(name, key) != 0)
		return;
	hash = dns_cache_hash(key, type);
	if ((item = dns_cache_find(cache, key, type, hash)) != NULL)
		dns_cache_unlink(cache, item);
	if (ttl == 0 || len > DNS_CACHE_ANSWER_MAX)
		return;
	if (ttl > DNS_CACHE_TTL_MAX)
		ttl = DNS_CACHE_TTL_MAX;
	while (cache->count >= cache->max)
		dns_cache_unlink(cache, cache->oldest);

	item = xcalloc(1, sizeof(*item));
	strlcpy_s(item->name, key, sizeof(item->name));
	item->type = type;
	item->hash = hash;
	item->expires_usec = now_usec + (uint64_t)ttl * 1000000;
	item->entry.status = status;
	item->entry.len = len;
	if (len > 0) {
		unsigned char *copy = xmalloc(len);

		memcpy(copy, answer, len);
		item->entry.answer = copy;
	}
	item->chain = cache->buckets[hash & (cache->bucket_count - 1)];
	cache->buckets[hash & (cache->bucket_count - 1)] = item;
	cache->count++;
	dns_cache_touch(cache, item);
}

const struct dns_cache_entry *
dns_cache_get(struct dns_cache *cache, const char *name, int type,
    uint64_t now_usec)
{
	char key[DNS_NAME_MAX + 1];
	struct dns_cache_item *item;
	uint32_t hash;

	if (dns_cache_key(name, key) != 0)
		return NULL;
	hash = dns_cache_hash(key, type);
	if ((item = dns_cache_find(cache, key, type, hash)) == NULL)
		return NULL;
	if (item->expires_usec <= now_usec) {
		dns_cache_unlink(cache, item);
		return NULL;
	}
	dns_cache_touch(cache, item);
	return &item->entry;
}

size_t
dns_cache_size(const struct dns_cache *cache)
{
	return cache->count;
}

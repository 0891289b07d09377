/*
 * test_dns_cache.c - the resolver's answer cache: keys, expiry, the TTL
 * bound, negative entries, the size bounds and least-recently-used
 * eviction. Times are passed in, so nothing here waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <cmocka.h>

#include "dns_cache.h"
#include "util.h"

#define SEC	1000000ull
#define TYPE_A	1
#define TYPE_MX	15

static const unsigned char answer[] = "pretend DNS answer";

static void
put_get_by_name_and_type(void **state)
{
	struct dns_cache *cache = dns_cache_new(16);
	const struct dns_cache_entry *e;

	(void)state;
	dns_cache_put(cache, "Mx.Example.TEST.", TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 300, 1000 * SEC);
	assert_int_equal(dns_cache_size(cache), 1);

	/* Case and one final dot do not matter; the type does. */
	e = dns_cache_get(cache, "mx.example.test", TYPE_A, 1000 * SEC);
	assert_non_null(e);
	assert_int_equal(e->status, ARES_SUCCESS);
	assert_int_equal(e->len, sizeof(answer));
	assert_memory_equal(e->answer, answer, sizeof(answer));
	assert_null(dns_cache_get(cache, "mx.example.test", TYPE_MX,
	    1000 * SEC));
	assert_null(dns_cache_get(cache, "other.test", TYPE_A, 1000 * SEC));

	/* A newer answer replaces the older one. */
	dns_cache_put(cache, "mx.example.test", TYPE_A, ARES_ENODATA, NULL, 0,
	    60, 1001 * SEC);
	assert_int_equal(dns_cache_size(cache), 1);
	e = dns_cache_get(cache, "mx.example.test", TYPE_A, 1001 * SEC);
	assert_non_null(e);
	assert_int_equal(e->status, ARES_ENODATA);
	assert_int_equal(e->len, 0);
	dns_cache_free(cache);
}

static void
entries_expire_after_ttl(void **state)
{
	struct dns_cache *cache = dns_cache_new(16);

	(void)state;
	dns_cache_put(cache, "a.test", TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 300, 0);
	assert_non_null(dns_cache_get(cache, "a.test", TYPE_A, 300 * SEC - 1));
	assert_null(dns_cache_get(cache, "a.test", TYPE_A, 300 * SEC));
	/* The expired entry went on the way. */
	assert_int_equal(dns_cache_size(cache), 0);
	dns_cache_free(cache);
}

static void
ttl_zero_and_large_answers_not_kept(void **state)
{
	struct dns_cache *cache = dns_cache_new(16);
	unsigned char *big = xcalloc(1, DNS_CACHE_ANSWER_MAX + 1);

	(void)state;
	dns_cache_put(cache, "a.test", TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 300, 0);
	/* TTL 0 stores nothing and drops the older entry. */
	dns_cache_put(cache, "a.test", TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 0, 0);
	assert_null(dns_cache_get(cache, "a.test", TYPE_A, 0));

	dns_cache_put(cache, "big.test", TYPE_A, ARES_SUCCESS, big,
	    DNS_CACHE_ANSWER_MAX + 1, 300, 0);
	assert_null(dns_cache_get(cache, "big.test", TYPE_A, 0));
	dns_cache_put(cache, "big.test", TYPE_A, ARES_SUCCESS, big,
	    DNS_CACHE_ANSWER_MAX, 300, 0);
	assert_non_null(dns_cache_get(cache, "big.test", TYPE_A, 0));

	/* A name too long to be one is never a key. */
	memset(big, 'a', 300);
	big[300] = '\0';
	dns_cache_put(cache, (char *)big, TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 300, 0);
	assert_int_equal(dns_cache_size(cache), 1);
	free(big);
	dns_cache_free(cache);
}

static void
ttl_cut_to_a_day(void **state)
{
	struct dns_cache *cache = dns_cache_new(16);
	uint64_t day = (uint64_t)DNS_CACHE_TTL_MAX * SEC;

	(void)state;
	dns_cache_put(cache, "a.test", TYPE_A, ARES_SUCCESS, answer,
	    sizeof(answer), 0x7fffffff, 0);
	assert_non_null(dns_cache_get(cache, "a.test", TYPE_A, day - 1));
	assert_null(dns_cache_get(cache, "a.test", TYPE_A, day));
	dns_cache_free(cache);
}

static void
least_recently_used_goes(void **state)
{
	struct dns_cache *cache = dns_cache_new(3);

	(void)state;
	dns_cache_put(cache, "a.test", TYPE_A, ARES_SUCCESS, answer, 1, 300, 0);
	dns_cache_put(cache, "b.test", TYPE_A, ARES_SUCCESS, answer, 1, 300, 0);
	dns_cache_put(cache, "c.test", TYPE_A, ARES_SUCCESS, answer, 1, 300, 0);
	/* Using a.test makes b.test the oldest. */
	assert_non_null(dns_cache_get(cache, "a.test", TYPE_A, 0));
	dns_cache_put(cache, "d.test", TYPE_A, ARES_SUCCESS, answer, 1, 300, 0);
	assert_int_equal(dns_cache_size(cache), 3);
	assert_null(dns_cache_get(cache, "b.test", TYPE_A, 0));
	assert_non_null(dns_cache_get(cache, "a.test", TYPE_A, 0));
	assert_non_null(dns_cache_get(cache, "c.test", TYPE_A, 0));
	assert_non_null(dns_cache_get(cache, "d.test", TYPE_A, 0));
	dns_cache_free(cache);
}

/* Far more names than entries: the bound holds, and the newest names
 * are the ones kept. */
static void
bounded_under_many_names(void **state)
{
	struct dns_cache *cache = dns_cache_new(100);
	char name[32];

	(void)state;
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		dns_cache_put(cache, name, TYPE_A, ARES_SUCCESS, answer,
		    sizeof(answer), 300, 0);
		assert_true(dns_cache_size(cache) <= 100);
	}
	assert_int_equal(dns_cache_size(cache), 100);
	for (int i = 9900; i < 10000; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		if (dns_cache_get(cache, name, TYPE_A, 0) == NULL)
			fail_msg("%s: got nothing, want the entry", name);
	}
	snprintf(name, sizeof(name), "n%d.test", 9899);
	assert_null(dns_cache_get(cache, name, TYPE_A, 0));
	dns_cache_free(cache);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(put_get_by_name_and_type),
		cmocka_unit_test(entries_expire_after_ttl),
		cmocka_unit_test(ttl_zero_and_large_answers_not_kept),
		cmocka_unit_test(ttl_cut_to_a_day),
		cmocka_unit_test(least_recently_used_goes),
		cmocka_unit_test(bounded_under_many_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

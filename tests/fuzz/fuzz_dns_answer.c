/*
 * fuzz_dns_answer.c - libFuzzer target for DNS answers as sluice reads
 * them: the message inspector (TTLs, SOA, CNAME chains), the MX and
 * address parsers on c-ares, and the answer cache (see
 * tests/fuzz/README.md for how to build and run it).
 *
 * The first byte picks the question type the input answers (A, AAAA, MX
 * or PTR); the rest is the DNS message. Whatever the inspector accepts
 * must describe a chain within DNS_CNAME_LINKS_MAX links that ends in a
 * name within DNS_NAME_MAX; parsed MX hosts stay within DNS_MX_HOSTS_MAX
 * and sorted by preference; address lists stay within their bound. An
 * answer stored in a small cache must come back byte for byte, and the
 * cache must stay within its size.
 *
 * Any broken property calls abort(), which libFuzzer reports as a crash
 * with the input that caused it.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "dns.h"
#include "dns_cache.h"

static const int types[] = { 1, 28, 15, 12 };	/* A, AAAA, MX, PTR */

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_dns_answer: %s\n", what);
	abort();
}

static void
check_mx(const unsigned char *msg, size_t len)
{
	struct dns_host *hosts = NULL;
	size_t count = 0;
	char *error = NULL;
	enum dns_status status = dns_mx_answer_parse(msg, (int)len, &hosts,
	    &count, &error);

	if (status == DNS_OK) {
		if (count == 0 || count > DNS_MX_HOSTS_MAX)
			fail("MX host count out of range");
		for (size_t i = 1; i < count; i++)
			if (hosts[i].preference < hosts[i - 1].preference)
				fail("MX hosts not sorted by preference");
	} else if (status == DNS_TEMPFAIL && error == NULL) {
		fail("a malformed MX answer without a description");
	}
	dns_hosts_free(hosts, count);
	free(error);
}

static void
check_addresses(const unsigned char *msg, size_t len)
{
	static const int families[] = { AF_INET, AF_INET6 };

	for (size_t f = 0; f < 2; f++) {
		struct dns_host host = { .name = (char *)"fuzz.test" };
		char *error = NULL;

		dns_address_answer_add(&host, families[f], msg, (int)len,
		    &error);
		if (host.address_count > DNS_HOST_ADDRESSES_MAX)
			fail("address count over its bound");
		free(host.addresses);
		free(error);
	}
}

static void
check_cache(const unsigned char *msg, size_t len, int type,
    const struct dns_answer_info *info)
{
	static struct dns_cache *cache;
	const struct dns_cache_entry *e;
	const char *name = info->chain_end[0] != '\0' ? info->chain_end : ".";

	if (cache == NULL)
		cache = dns_cache_new(8);
	dns_cache_put(cache, name, type, ARES_SUCCESS, msg, len,
	    info->ttl > 0 ? info->ttl : 1, 0);
	e = dns_cache_get(cache, name, type, 0);
	if (len <= DNS_CACHE_ANSWER_MAX && strlen(name) <= DNS_NAME_MAX) {
		if (e == NULL || e->len != len ||
		    (len > 0 && memcmp(e->answer, msg, len) != 0))
			fail("a cached answer did not come back unchanged");
	}
	if (dns_cache_size(cache) > 8)
		fail("the cache grew past its bound");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_answer_info info;
	char *error = NULL;
	int type;

	if (size < 1)
		return 0;
	type = types[data[0] % 4];
	data++;
	size--;

	if (dns_answer_inspect(data, size, type, &info, &error) == 0) {
		if (info.cname_links > DNS_CNAME_LINKS_MAX)
			fail("CNAME chain over its bound");
		if (strlen(info.chain_end) > DNS_NAME_MAX)
			fail("chain end longer than a name");
		if (info.type_records > info.answer_count)
			fail("more records of the type than answers");
		check_cache(data, size, type, &info);
	} else if (error == NULL) {
		fail("a rejected message without a description");
	}
	free(error);

	if (type == 15)
		check_mx(data, size);
	else if (type == 1 || type == 28)
		check_addresses(data, size);
	return 0;
}

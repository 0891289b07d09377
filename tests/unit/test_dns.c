/*
 * test_dns.c - the DNS module's answer handling, without a network: name
 * checks, the dns_servers list, MX answers (order, duplicates, null MX,
 * bounds), address answers and the overall status of a result. DNS
 * answers are built here byte by byte. The last tests run lookups
 * against a loopback UDP socket that never responds, to check the
 * timeout (on the fake clock) and cancellation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <ares.h>
#include <event2/event.h>

#include "clock.h"
#include "dns.h"
#include "util.h"

#define TYPE_A		1
#define TYPE_CNAME	5
#define TYPE_SOA	6
#define TYPE_MX		15
#define TYPE_AAAA	28

/* A DNS message under construction. */
struct packet {
	unsigned char data[8192];
	size_t len;
	size_t answers;
	size_t authority;
};

static void
put8(struct packet *p, unsigned value)
{
	assert_true(p->len < sizeof(p->data));
	p->data[p->len++] = (unsigned char)value;
}

static void
put16(struct packet *p, unsigned value)
{
	put8(p, value >> 8);
	put8(p, value & 0xff);
}

/* Writes a name as labels, without compression; "" is the root. */
static void
put_name(struct packet *p, const char *name)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t len = dot != NULL ? (size_t)(dot - name) : strlen(name);

		put8(p, (unsigned)len);
		for (size_t i = 0; i < len; i++)
			put8(p, (unsigned char)name[i]);
		name += len;
		if (*name == '.')
			name++;
	}
	put8(p, 0);
}

/* Starts a response to one question; rcode 0 is NOERROR. */
static void
packet_start(struct packet *p, const char *qname, unsigned qtype,
    unsigned rcode)
{
	memset(p, 0, sizeof(*p));
	put16(p, 0x1234);		/* id */
	put16(p, 0x8180 | rcode);	/* response, RD, RA */
	put16(p, 1);			/* questions */
	put16(p, 0);			/* answers, set by packet_end */
	put16(p, 0);
	put16(p, 0);
	put_name(p, qname);
	put16(p, qtype);
	put16(p, 1);			/* class IN */
}

static void
record_start(struct packet *p, const char *owner, unsigned type,
    unsigned rdlength)
{
	put_name(p, owner);
	put16(p, type);
	put16(p, 1);
	put16(p, 0);			/* TTL 300 */
	put16(p, 300);
	put16(p, rdlength);
	p->answers++;
}

static size_t
name_length(const char *name)
{
	return *name == '\0' ? 1 : strlen(name) + 2;
}

static void
add_mx(struct packet *p, const char *owner, unsigned preference,
    const char *target)
{
	record_start(p, owner, TYPE_MX, 2 + (unsigned)name_length(target));
	put16(p, preference);
	put_name(p, target);
}

static void
add_a(struct packet *p, const char *owner, const char *ip)
{
	unsigned char addr[4];

	assert_int_equal(inet_pton(AF_INET, ip, addr), 1);
	record_start(p, owner, TYPE_A, 4);
	for (int i = 0; i < 4; i++)
		put8(p, addr[i]);
}

static void
add_aaaa(struct packet *p, const char *owner, const char *ip)
{
	unsigned char addr[16];

	assert_int_equal(inet_pton(AF_INET6, ip, addr), 1);
	record_start(p, owner, TYPE_AAAA, 16);
	for (int i = 0; i < 16; i++)
		put8(p, addr[i]);
}

static void
add_cname(struct packet *p, const char *owner, const char *target)
{
	record_start(p, owner, TYPE_CNAME, (unsigned)name_length(target));
	put_name(p, target);
}

/* Adds an SOA record to the authority section; call it after the
 * answers. */
static void
add_soa(struct packet *p, const char *zone, unsigned ttl, unsigned minimum)
{
	put_name(p, zone);
	put16(p, TYPE_SOA);
	put16(p, 1);
	put16(p, ttl >> 16);
	put16(p, ttl & 0xffff);
	put16(p, (unsigned)(name_length("ns.test") +
	    name_length("admin.test") + 20));
	put_name(p, "ns.test");
	put_name(p, "admin.test");
	for (int i = 0; i < 4; i++) {	/* serial, refresh, retry, expire */
		put16(p, 0);
		put16(p, 1);
	}
	put16(p, minimum >> 16);
	put16(p, minimum & 0xffff);
	p->authority++;
}

static void
packet_end(struct packet *p)
{
	p->data[6] = (unsigned char)(p->answers >> 8);
	p->data[7] = (unsigned char)(p->answers & 0xff);
	p->data[8] = (unsigned char)(p->authority >> 8);
	p->data[9] = (unsigned char)(p->authority & 0xff);
}

/* --- raw answers: TTLs and CNAME chains ---------------------------- */

static void
inspect_follows_cname_chain(void **state)
{
	struct packet *p = xmalloc(sizeof(*p));
	struct dns_answer_info info;
	char *error = NULL;

	(void)state;
	packet_start(p, "WWW.x.test", TYPE_A, 0);
	add_cname(p, "www.x.test", "a.x.test");
	add_cname(p, "a.x.test", "B.y.test");
	add_a(p, "b.y.test", "192.0.2.1");
	add_a(p, "other.test", "192.0.2.2");
	packet_end(p);
	assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_A, &info,
	    &error), 0);
	assert_string_equal(info.chain_end, "b.y.test");
	assert_int_equal(info.cname_links, 2);
	assert_int_equal(info.type_records, 1);
	assert_int_equal(info.ttl, 300);
	assert_int_equal(info.rcode, 0);
	assert_int_equal(info.answer_count, 4);
	assert_false(info.has_soa);

	/* The chain ends in a CNAME whose target has no record here. */
	packet_start(p, "www.x.test", TYPE_AAAA, 0);
	add_cname(p, "www.x.test", "far.z.test");
	packet_end(p);
	assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_AAAA, &info,
	    &error), 0);
	assert_string_equal(info.chain_end, "far.z.test");
	assert_int_equal(info.cname_links, 1);
	assert_int_equal(info.type_records, 0);
	free(p);
}

static void
inspect_bounds_cname_chain(void **state)
{
	struct packet *p = xmalloc(sizeof(*p));
	struct dns_answer_info info;
	char *error = NULL;
	char owner[32], target[32];

	(void)state;
	/* DNS_CNAME_LINKS_MAX links are followed... */
	packet_start(p, "n0.test", TYPE_A, 0);
	for (int i = 0; i < DNS_CNAME_LINKS_MAX; i++) {
		snprintf(owner, sizeof(owner), "n%d.test", i);
		snprintf(target, sizeof(target), "n%d.test", i + 1);
		add_cname(p, owner, target);
	}
	packet_end(p);
	assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_A, &info,
	    &error), 0);
	assert_int_equal(info.cname_links, DNS_CNAME_LINKS_MAX);

	/* ... one more is refused, and so is a loop. */
	snprintf(owner, sizeof(owner), "n%d.test", DNS_CNAME_LINKS_MAX);
	add_cname(p, owner, "last.test");
	packet_end(p);
	assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_A, &info,
	    &error), -1);
	assert_non_null(strstr(error, "CNAME chain"));
	free(error);

	packet_start(p, "a.test", TYPE_A, 0);
	add_cname(p, "a.test", "b.test");
	add_cname(p, "b.test", "a.test");
	packet_end(p);
	error = NULL;
	assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_A, &info,
	    &error), -1);
	assert_non_null(error);
	free(error);
	free(p);
}

static void
inspect_negative_ttl_from_soa(void **state)
{
	static const struct {
		unsigned ttl, minimum, want;
	} cases[] = {
		{ 600, 120, 120 },
		{ 60, 3600, 60 },
		{ 0, 3600, 0 },
		/* RFC 2181 section 8: the top bit set means 0. */
		{ 0x80000001u, 300, 0 },
	};
	struct packet *p = xmalloc(sizeof(*p));
	struct dns_answer_info info;
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		packet_start(p, "nothere.x.test", TYPE_MX, 3);	/* NXDOMAIN */
		add_soa(p, "x.test", cases[i].ttl, cases[i].minimum);
		packet_end(p);
		assert_int_equal(dns_answer_inspect(p->data, p->len, TYPE_MX,
		    &info, &error), 0);
		assert_int_equal(info.rcode, 3);
		assert_true(info.has_soa);
		if (info.negative_ttl != cases[i].want)
			fail_msg("case %zu: got %u, want %u", i,
			    info.negative_ttl, cases[i].want);
	}
	free(p);
}

/* Every prefix of a valid message, and a few broken ones, are read
 * without going past their end. */
static void
inspect_hostile_lengths(void **state)
{
	struct packet *p = xmalloc(sizeof(*p));
	struct dns_answer_info info;
	unsigned char loop[] = {
		0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
		0xc0, 12,		/* a name that points at itself */
		0, 1, 0, 1,
	};
	unsigned char long_label[12 + 70];

	(void)state;
	packet_start(p, "www.x.test", TYPE_A, 0);
	add_cname(p, "www.x.test", "a.x.test");
	add_a(p, "a.x.test", "192.0.2.1");
	add_soa(p, "x.test", 60, 60);
	packet_end(p);
	for (size_t len = 0; len < p->len; len++) {
		char *error = NULL;
		unsigned char *copy = xmalloc(len > 0 ? len : 1);
		int rc;

		memcpy(copy, p->data, len);
		rc = dns_answer_inspect(copy, len, TYPE_A, &info, &error);
		/* Only the authority section may be cut without failing. */
		if (rc == 0 && info.type_records != 1)
			fail_msg("length %zu: accepted without its answer", len);
		free(error);
		free(copy);
	}

	for (size_t len = 12; len <= sizeof(loop); len++) {
		char *error = NULL;

		assert_int_equal(dns_answer_inspect(loop, len, TYPE_A, &info,
		    &error), -1);
		free(error);
	}

	memset(long_label, 0, sizeof(long_label));
	long_label[5] = 1;		/* one question */
	long_label[12] = 64;		/* labels have at most 63 bytes */
	memset(long_label + 13, 'a', 64);
	{
		char *error = NULL;

		assert_int_equal(dns_answer_inspect(long_label,
		    sizeof(long_label), TYPE_A, &info, &error), -1);
		free(error);
	}
	free(p);
}

/* Marks 127.0.0.1 and ::1 as this host's. */
static bool
loopback_is_local(const struct dns_address *address, void *arg)
{
	(void)arg;
	return strcmp(address->text, "127.0.0.1") == 0 ||
	    strcmp(address->text, "::1") == 0;
}

static void
remove_local_table(void **state)
{
	static const struct {
		const char *hosts;	/* "pref:ip pref:ip ..." */
		enum dns_self want;
		size_t kept;
	} cases[] = {
		{ "10:192.0.2.1 20:192.0.2.2", DNS_SELF_NONE, 2 },
		{ "10:127.0.0.1", DNS_SELF_LOWEST, 1 },
		{ "10:127.0.0.1 20:192.0.2.2", DNS_SELF_LOWEST, 2 },
		{ "10:192.0.2.1 20:127.0.0.1 30:192.0.2.3", DNS_SELF_DROPPED, 1 },
		/* An equal preference goes too. */
		{ "5:192.0.2.1 10:192.0.2.2 10:::1 20:192.0.2.3",
		  DNS_SELF_DROPPED, 1 },
		{ "10:192.0.2.2 10:127.0.0.1", DNS_SELF_LOWEST, 2 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dns_result result = { .domain = (char *)"x.test" };
		char *copy = xstrdup(cases[i].hosts), *save = NULL;
		enum dns_self got;

		for (char *item = strtok_r(copy, " ", &save); item != NULL;
		    item = strtok_r(NULL, " ", &save)) {
			struct dns_host *h;
			char *ip = strchr(item, ':') + 1;
			unsigned char addr[16];
			int family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;

			result.hosts = xreallocarray(result.hosts,
			    result.host_count + 1, sizeof(*result.hosts));
			h = &result.hosts[result.host_count++];
			memset(h, 0, sizeof(*h));
			h->name = xstrdup(ip);
			h->preference = (unsigned)atoi(item);
			assert_int_equal(inet_pton(family, ip, addr), 1);
			dns_host_add_address(h, family, addr);
		}
		got = dns_result_remove_local(&result, loopback_is_local, NULL);
		if (got != cases[i].want || result.host_count != cases[i].kept)
			fail_msg("\"%s\": got %d with %zu hosts, want %d with "
			    "%zu", cases[i].hosts, (int)got, result.host_count,
			    (int)cases[i].want, cases[i].kept);
		dns_hosts_free(result.hosts, result.host_count);
		free(copy);
	}
}

/* --- names and servers ---------------------------------------------- */

static void
name_check_table(void **state)
{
	static const struct {
		const char *name;
		int want;
	} cases[] = {
		{ "example.test", 0 },
		{ "example.test.", 0 },
		{ "a", 0 },
		{ "xn--bcher-kva.example", 0 },
		{ "", -1 },
		{ ".", -1 },
		{ "a..b", -1 },
		{ ".a", -1 },
		{ "a.b..", -1 },
		{ "has space.test", -1 },
		{ "tab\t.test", -1 },
		{ "del\x7f.test", -1 },
		{ "high\xc3\xa9.test", -1 },
	};
	char label63[80], label64[80], long_name[300];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int got = dns_name_check(cases[i].name);

		if (got != cases[i].want)
			fail_msg("dns_name_check(\"%s\"): got %d, want %d",
			    cases[i].name, got, cases[i].want);
	}

	memset(label63, 'a', 63);
	strcpy(label63 + 63, ".test");
	assert_int_equal(dns_name_check(label63), 0);
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".test");
	assert_int_equal(dns_name_check(label64), -1);

	/* 253 characters pass, 254 do not (one final dot aside). */
	for (size_t i = 0; i < 253; i++)
		long_name[i] = i % 2 == 0 ? 'a' : '.';
	long_name[253] = '\0';
	assert_int_equal(dns_name_check(long_name), 0);
	long_name[253] = '.';
	long_name[254] = '\0';
	assert_int_equal(dns_name_check(long_name), 0);
	long_name[253] = 'a';
	long_name[254] = '\0';
	assert_int_equal(dns_name_check(long_name), -1);
}

static void
servers_parse_valid(void **state)
{
	struct sockaddr_storage out[DNS_SERVERS_MAX];
	struct sockaddr_in *sin = (struct sockaddr_in *)&out[0];
	struct sockaddr_in6 *sin6;
	char *error = NULL;
	char text[INET6_ADDRSTRLEN];
	size_t count = 99;

	(void)state;
	assert_int_equal(dns_servers_parse("127.0.0.1", 5353, out,
	    DNS_SERVERS_MAX, &count, &error), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 5353);
	inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
	assert_string_equal(text, "127.0.0.1");

	assert_int_equal(dns_servers_parse(" 127.0.0.1 : 127.0.0.2 ", 53, out,
	    DNS_SERVERS_MAX, &count, &error), 0);
	assert_int_equal(count, 2);

	assert_int_equal(dns_servers_parse("<; ::1 ; [::1] ; 127.0.0.3", 53,
	    out, DNS_SERVERS_MAX, &count, &error), 0);
	assert_int_equal(count, 3);
	sin6 = (struct sockaddr_in6 *)&out[1];
	assert_int_equal(out[0].ss_family, AF_INET6);
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 53);
	inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
	assert_string_equal(text, "::1");
	assert_int_equal(out[2].ss_family, AF_INET);

	/* Empty and NULL lists name no server: resolv.conf is used. */
	assert_int_equal(dns_servers_parse("", 53, out, DNS_SERVERS_MAX,
	    &count, &error), 0);
	assert_int_equal(count, 0);
	assert_int_equal(dns_servers_parse(NULL, 53, out, DNS_SERVERS_MAX,
	    &count, &error), 0);
	assert_int_equal(count, 0);
	assert_null(error);
}

static void
servers_parse_errors(void **state)
{
	static const struct {
		const char *list;
		int port;
		const char *want;	/* part of the error */
	} cases[] = {
		{ "dns.example.test", 53, "\"dns.example.test\" is not an IPv4" },
		{ "127.0.0.1.53", 53, "\"127.0.0.1.53\" is not an IPv4" },
		{ "127.0.0.1:bogus", 53, "\"bogus\" is not an IPv4" },
		{ "127.0.0.1", 0, "dns_port 0 is out of range" },
		{ "127.0.0.1", 65536, "dns_port 65536 is out of range" },
		{ "1.1.1.1:1.1.1.2:1.1.1.3:1.1.1.4:1.1.1.5:1.1.1.6:1.1.1.7:"
		  "1.1.1.8:1.1.1.9", 53, "more than 8 servers" },
		{ "<; 0000000000000000000000000000000000000000000000000000000"
		  "00000000000000000000000000000000", 53, "longer than" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sockaddr_storage out[DNS_SERVERS_MAX];
		char *error = NULL;
		size_t count;

		if (dns_servers_parse(cases[i].list, cases[i].port, out,
		    DNS_SERVERS_MAX, &count, &error) != -1)
			fail_msg("\"%s\": parsed, want an error",
			    cases[i].list);
		assert_non_null(error);
		if (strstr(error, cases[i].want) == NULL)
			fail_msg("\"%s\": got error \"%s\", want one "
			    "containing \"%s\"", cases[i].list, error,
			    cases[i].want);
		free(error);
	}
}

static void
resolver_rejects_bad_servers(void **state)
{
	struct event_base *base = event_base_new();
	struct dns_options options;
	char *error = NULL;

	(void)state;
	dns_options_init(&options);
	options.servers = "not-an-address";
	assert_null(dns_resolver_new(base, &options, &error));
	assert_non_null(error);
	assert_non_null(strstr(error, "not-an-address"));
	free(error);
	event_base_free(base);
}

static void
status_from_ares_table(void **state)
{
	static const struct {
		int ares;
		enum dns_status want;
	} cases[] = {
		{ ARES_SUCCESS, DNS_OK },
		{ ARES_ENODATA, DNS_NO_DATA },
		{ ARES_ENOTFOUND, DNS_NOT_FOUND },
		{ ARES_EBADNAME, DNS_NOT_FOUND },
		{ ARES_ESERVFAIL, DNS_TEMPFAIL },
		{ ARES_EREFUSED, DNS_TEMPFAIL },
		{ ARES_ETIMEOUT, DNS_TEMPFAIL },
		{ ARES_ECONNREFUSED, DNS_TEMPFAIL },
		{ ARES_EFORMERR, DNS_TEMPFAIL },
		{ ARES_EBADRESP, DNS_TEMPFAIL },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum dns_status got = dns_status_from_ares(cases[i].ares);

		if (got != cases[i].want)
			fail_msg("c-ares status %d: got %s, want %s",
			    cases[i].ares, dns_status_name(got),
			    dns_status_name(cases[i].want));
	}
}

/* --- MX answers ----------------------------------------------------- */

static void
expect_host(const struct dns_host *host, const char *name,
    unsigned preference)
{
	if (strcmp(host->name, name) != 0 || host->preference != preference)
		fail_msg("got host %u %s, want %u %s", host->preference,
		    host->name, preference, name);
}

static void
mx_sorted_by_preference(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;
	char *error = NULL;

	(void)state;
	packet_start(&p, "example.test", TYPE_MX, 0);
	add_mx(&p, "example.test", 30, "mx3.example.test");
	add_mx(&p, "example.test", 10, "mx1.example.test");
	add_mx(&p, "example.test", 20, "mx2a.example.test");
	add_mx(&p, "example.test", 20, "mx2b.example.test");
	add_mx(&p, "example.test", 0, "mx0.example.test");
	packet_end(&p);

	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_OK);
	assert_int_equal(count, 5);
	expect_host(&hosts[0], "mx0.example.test", 0);
	expect_host(&hosts[1], "mx1.example.test", 10);
	/* Equal preferences keep the answer's order before shuffling. */
	expect_host(&hosts[2], "mx2a.example.test", 20);
	expect_host(&hosts[3], "mx2b.example.test", 20);
	expect_host(&hosts[4], "mx3.example.test", 30);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(hosts[i].status, DNS_NO_DATA);
		assert_int_equal(hosts[i].address_count, 0);
	}
	dns_hosts_free(hosts, count);
}

static void
mx_duplicates_keep_lowest(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;
	char *error = NULL;

	(void)state;
	packet_start(&p, "example.test", TYPE_MX, 0);
	add_mx(&p, "example.test", 20, "MX1.example.test");
	add_mx(&p, "example.test", 10, "mx2.example.test");
	add_mx(&p, "example.test", 5, "mx1.example.test");
	packet_end(&p);

	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_OK);
	assert_int_equal(count, 2);
	expect_host(&hosts[0], "mx1.example.test", 5);
	expect_host(&hosts[1], "mx2.example.test", 10);
	dns_hosts_free(hosts, count);
}

static void
mx_null_record(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;
	char *error = NULL;

	(void)state;
	/* RFC 7505: a single "." MX means the domain takes no mail. */
	packet_start(&p, "nomail.test", TYPE_MX, 0);
	add_mx(&p, "nomail.test", 0, "");
	packet_end(&p);
	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_NO_MAIL);
	assert_null(hosts);
	assert_int_equal(count, 0);

	/* Beside real records it is only an unusable one. */
	packet_start(&p, "mixed.test", TYPE_MX, 0);
	add_mx(&p, "mixed.test", 0, "");
	add_mx(&p, "mixed.test", 10, "mx.mixed.test");
	packet_end(&p);
	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_OK);
	assert_int_equal(count, 1);
	expect_host(&hosts[0], "mx.mixed.test", 10);
	dns_hosts_free(hosts, count);
	assert_null(error);
}

static void
mx_answer_without_mx(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;
	char *error = NULL;

	(void)state;
	/* NOERROR with an empty answer section. */
	packet_start(&p, "plain.test", TYPE_MX, 0);
	packet_end(&p);
	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_NO_DATA);

	/* An answer that holds other types only. */
	packet_start(&p, "plain.test", TYPE_MX, 0);
	add_a(&p, "plain.test", "127.0.0.7");
	packet_end(&p);
	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_NO_DATA);
	assert_null(hosts);
	assert_null(error);
}

static void
mx_malformed_is_tempfail(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;

	(void)state;
	packet_start(&p, "example.test", TYPE_MX, 0);
	add_mx(&p, "example.test", 10, "mx1.example.test");
	packet_end(&p);

	/* Cut at every length: nothing crashes, each is a failure. */
	for (size_t len = 0; len < p.len; len++) {
		char *error = NULL;
		enum dns_status got = dns_mx_answer_parse(p.data, (int)len,
		    &hosts, &count, &error);

		if (got != DNS_TEMPFAIL && got != DNS_NO_DATA)
			fail_msg("answer cut to %zu of %zu bytes: got %s, want "
			    "a temporary failure", len, p.len,
			    dns_status_name(got));
		assert_null(hosts);
		free(error);
	}
}

static void
mx_bounded_keeps_preferred(void **state)
{
	struct packet p;
	struct dns_host *hosts;
	size_t count;
	char *error = NULL;
	char name[64];

	(void)state;
	packet_start(&p, "many.test", TYPE_MX, 0);
	/* Twice the bound, the least preferred first in the answer. */
	for (unsigned i = 2 * DNS_MX_HOSTS_MAX; i > 0; i--) {
		snprintf(name, sizeof(name), "mx%u.many.test", i);
		add_mx(&p, "many.test", i, name);
	}
	packet_end(&p);

	assert_int_equal(dns_mx_answer_parse(p.data, (int)p.len, &hosts,
	    &count, &error), DNS_OK);
	assert_int_equal(count, DNS_MX_HOSTS_MAX);
	for (unsigned i = 0; i < DNS_MX_HOSTS_MAX; i++) {
		snprintf(name, sizeof(name), "mx%u.many.test", i + 1);
		expect_host(&hosts[i], name, i + 1);
	}
	dns_hosts_free(hosts, count);
}

static uint32_t
pick_last(uint32_t n)
{
	return n - 1;
}

static uint32_t
pick_first(uint32_t n)
{
	(void)n;
	return 0;
}

static void
shuffle_stays_within_preference(void **state)
{
	struct dns_host hosts[5];
	static const char *names[] = { "a", "b", "c", "d", "e" };
	static const unsigned prefs[] = { 10, 10, 10, 20, 30 };

	(void)state;
	memset(hosts, 0, sizeof(hosts));
	for (size_t i = 0; i < 5; i++) {
		hosts[i].name = (char *)names[i];
		hosts[i].preference = prefs[i];
	}
	/* Always choosing the last place leaves the order as it was. */
	dns_hosts_shuffle_equal(hosts, 5, pick_last);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(hosts[i].name, names[i]);

	/* Always choosing the first rotates each run of equal preference. */
	dns_hosts_shuffle_equal(hosts, 5, pick_first);
	assert_string_equal(hosts[0].name, "b");
	assert_string_equal(hosts[1].name, "c");
	assert_string_equal(hosts[2].name, "a");
	assert_string_equal(hosts[3].name, "d");
	assert_string_equal(hosts[4].name, "e");
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(hosts[i].preference, prefs[i]);
}

/* --- address answers and results ------------------------------------ */

static void
address_answers_add_up(void **state)
{
	struct dns_host host = { 0 };
	struct packet p;
	char *error = NULL;

	(void)state;
	host.name = xstrdup("mx1.example.test");
	packet_start(&p, "mx1.example.test", TYPE_A, 0);
	add_a(&p, "mx1.example.test", "127.0.0.5");
	add_a(&p, "mx1.example.test", "127.0.0.6");
	add_a(&p, "mx1.example.test", "127.0.0.5");	/* duplicate */
	packet_end(&p);
	assert_int_equal(dns_address_answer_add(&host, AF_INET, p.data,
	    (int)p.len, &error), 0);

	packet_start(&p, "mx1.example.test", TYPE_AAAA, 0);
	add_aaaa(&p, "mx1.example.test", "::1");
	packet_end(&p);
	assert_int_equal(dns_address_answer_add(&host, AF_INET6, p.data,
	    (int)p.len, &error), 0);

	assert_int_equal(host.address_count, 3);
	assert_string_equal(host.addresses[0].text, "127.0.0.5");
	assert_int_equal(host.addresses[0].family, AF_INET);
	assert_string_equal(host.addresses[1].text, "127.0.0.6");
	assert_string_equal(host.addresses[2].text, "::1");
	assert_int_equal(host.addresses[2].family, AF_INET6);

	/* An empty answer adds nothing and is no error. */
	packet_start(&p, "mx1.example.test", TYPE_A, 0);
	packet_end(&p);
	assert_int_equal(dns_address_answer_add(&host, AF_INET, p.data,
	    (int)p.len, &error), 0);
	assert_int_equal(host.address_count, 3);
	assert_null(error);

	/* A broken one is. */
	assert_int_equal(dns_address_answer_add(&host, AF_INET, p.data, 5,
	    &error), -1);
	assert_non_null(strstr(error, "mx1.example.test"));
	free(error);

	free(host.name);
	free(host.addresses);
}

static void
address_answers_bounded(void **state)
{
	struct dns_host host = { 0 };
	struct packet p;
	char *error = NULL, ip[32];

	(void)state;
	host.name = xstrdup("big.example.test");
	packet_start(&p, "big.example.test", TYPE_A, 0);
	for (int i = 0; i < 3 * DNS_HOST_ADDRESSES_MAX; i++) {
		snprintf(ip, sizeof(ip), "127.0.1.%d", i + 1);
		add_a(&p, "big.example.test", ip);
	}
	packet_end(&p);
	assert_int_equal(dns_address_answer_add(&host, AF_INET, p.data,
	    (int)p.len, &error), 0);
	assert_int_equal(host.address_count, DNS_HOST_ADDRESSES_MAX);
	assert_string_equal(host.addresses[0].text, "127.0.1.1");
	free(host.name);
	free(host.addresses);
}

static void
name_copy_strips_final_dot(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "mx.example.test.", "mx.example.test" },
		{ "mx.example.test", "mx.example.test" },
		{ ".", "" },
		{ "", "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = dns_name_copy(cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("dns_name_copy(\"%s\"): got \"%s\", want \"%s\"",
			    cases[i].in, got, cases[i].want);
		free(got);
	}
}

static void
host_status_merge_table(void **state)
{
	static const struct {
		enum dns_status before, query;
		size_t addresses;
		enum dns_status want;
	} cases[] = {
		{ DNS_NO_DATA, DNS_NO_DATA, 0, DNS_NO_DATA },
		{ DNS_NO_DATA, DNS_NOT_FOUND, 0, DNS_NOT_FOUND },
		{ DNS_NOT_FOUND, DNS_NO_DATA, 0, DNS_NOT_FOUND },
		{ DNS_NOT_FOUND, DNS_TEMPFAIL, 0, DNS_TEMPFAIL },
		{ DNS_TEMPFAIL, DNS_NOT_FOUND, 0, DNS_TEMPFAIL },
		{ DNS_TEMPFAIL, DNS_OK, 1, DNS_OK },
		{ DNS_OK, DNS_TEMPFAIL, 1, DNS_OK },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dns_host host = { 0 };

		host.status = cases[i].before;
		host.address_count = cases[i].addresses;
		dns_host_merge_status(&host, cases[i].query);
		if (host.status != cases[i].want)
			fail_msg("%s then %s: got %s, want %s",
			    dns_status_name(cases[i].before),
			    dns_status_name(cases[i].query),
			    dns_status_name(host.status),
			    dns_status_name(cases[i].want));
	}
}

static struct dns_result *
result_with(const enum dns_status *statuses, const size_t *addresses,
    size_t count, bool implicit)
{
	struct dns_result *r = xcalloc(1, sizeof(*r));

	r->domain = xstrdup("example.test");
	r->implicit_mx = implicit;
	r->hosts = xcalloc(count, sizeof(*r->hosts));
	r->host_count = count;
	for (size_t i = 0; i < count; i++) {
		r->hosts[i].name = xasprintf("mx%zu.example.test", i);
		r->hosts[i].status = statuses[i];
		r->hosts[i].address_count = addresses[i];
		r->hosts[i].addresses = addresses[i] == 0 ? NULL :
		    xcalloc(addresses[i], sizeof(struct dns_address));
	}
	return r;
}

static void
result_settle_table(void **state)
{
	static const struct {
		enum dns_status hosts[2];
		size_t addresses[2];
		bool implicit;
		enum dns_status want;
		const char *error;	/* part of it, or NULL for none */
	} cases[] = {
		{ { DNS_OK, DNS_NOT_FOUND }, { 1, 0 }, false, DNS_OK, NULL },
		{ { DNS_TEMPFAIL, DNS_OK }, { 0, 2 }, false, DNS_OK, NULL },
		{ { DNS_NOT_FOUND, DNS_TEMPFAIL }, { 0, 0 }, false,
		  DNS_TEMPFAIL, "did not complete" },
		{ { DNS_NOT_FOUND, DNS_NO_DATA }, { 0, 0 }, false,
		  DNS_NOT_FOUND, "point to hosts without an address" },
		{ { DNS_NO_DATA, DNS_NO_DATA }, { 0, 0 }, true,
		  DNS_NOT_FOUND, "has no MX record and no address record" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dns_result *r = result_with(cases[i].hosts,
		    cases[i].addresses, cases[i].implicit ? 1 : 2,
		    cases[i].implicit);

		dns_result_settle(r);
		if (r->status != cases[i].want)
			fail_msg("case %zu: got %s, want %s", i,
			    dns_status_name(r->status),
			    dns_status_name(cases[i].want));
		if (cases[i].error == NULL)
			assert_null(r->error);
		else if (r->error == NULL ||
		    strstr(r->error, cases[i].error) == NULL)
			fail_msg("case %zu: got error \"%s\", want one "
			    "containing \"%s\"", i,
			    r->error ? r->error : "(none)", cases[i].error);
		dns_result_free(r);
	}
	dns_result_free(NULL);
}

static void
result_settle_orders_families(void **state)
{
	static const enum dns_status statuses[] = { DNS_OK };
	static const size_t counts[] = { 4 };
	static const char *const texts[] = { "::1", "127.0.0.5", "::2",
	    "127.0.0.6" };
	static const char *const want[] = { "127.0.0.5", "127.0.0.6", "::1",
	    "::2" };
	struct dns_result *r = result_with(statuses, counts, 1, false);

	(void)state;
	/* The AAAA answer arrived first. */
	for (size_t i = 0; i < 4; i++) {
		struct dns_address *a = &r->hosts[0].addresses[i];

		a->family = strchr(texts[i], ':') != NULL ? AF_INET6 : AF_INET;
		strlcpy_s(a->text, texts[i], sizeof(a->text));
	}
	dns_result_settle(r);
	assert_int_equal(r->status, DNS_OK);
	for (size_t i = 0; i < 4; i++)
		if (strcmp(r->hosts[0].addresses[i].text, want[i]) != 0)
			fail_msg("address %zu: got %s, want %s", i,
			    r->hosts[0].addresses[i].text, want[i]);
	dns_result_free(r);
}

/* --- lookups against a server that never answers -------------------- */

/* A UDP socket on loopback that receives queries and answers none. */
static int
silent_server(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

struct lookup_outcome {
	int calls;
	enum dns_status status;
	char *error;
};

static void
record_cb(void *arg, struct dns_result *result)
{
	struct lookup_outcome *o = arg;

	o->calls++;
	o->status = result->status;
	free(o->error);
	o->error = result->error != NULL ? xstrdup(result->error) : NULL;
	dns_result_free(result);
}

static struct dns_resolver *
silent_resolver(struct event_base *base, int port)
{
	struct dns_options options;
	char *error = NULL;
	struct dns_resolver *resolver;

	dns_options_init(&options);
	options.servers = "127.0.0.1";
	options.port = port;
	resolver = dns_resolver_new(base, &options, &error);
	if (resolver == NULL)
		fail_msg("dns_resolver_new: %s", error);
	return resolver;
}

#ifdef SLUICE_TEST_HOOKS
static void
lookup_times_out_on_sluice_clock(void **state)
{
	struct event_base *base = event_base_new();
	struct lookup_outcome outcome = { 0 };
	struct dns_resolver *resolver;
	char *error = NULL;
	int port, fd = silent_server(&port);

	(void)state;
	resolver = silent_resolver(base, port);
	assert_non_null(dns_lookup_mx(resolver, "example.test", record_cb,
	    &outcome, &error));
	/* The callback never runs before dns_lookup_mx() returns. */
	assert_int_equal(outcome.calls, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(outcome.calls, 0);

	/* A minute later on the sluice clock the whole lookup gives up,
	 * long before c-ares's own retries would end in real time. */
	clock_fake_advance(61 * 1000000LL);
	for (int i = 0; i < 100 && outcome.calls == 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(outcome.calls, 1);
	assert_int_equal(outcome.status, DNS_TEMPFAIL);
	assert_string_equal(outcome.error, "DNS lookup for example.test timed "
	    "out after 60.000 s");

	free(outcome.error);
	dns_resolver_free(resolver);
	event_base_free(base);
	close(fd);
}
#endif

static void
cancelled_lookups_never_call_back(void **state)
{
	struct event_base *base = event_base_new();
	struct lookup_outcome outcome = { 0 };
	struct dns_resolver *resolver;
	struct dns_lookup *lookup;
	char *error = NULL;
	int port, fd = silent_server(&port);

	(void)state;
	resolver = silent_resolver(base, port);

	/* Cancelled before it started, and after its query went out. */
	lookup = dns_lookup_mx(resolver, "one.test", record_cb, &outcome,
	    &error);
	dns_lookup_cancel(lookup);
	lookup = dns_lookup_mx(resolver, "two.test", record_cb, &outcome,
	    &error);
	event_base_loop(base, EVLOOP_NONBLOCK);
	dns_lookup_cancel(lookup);
	event_base_loop(base, EVLOOP_NONBLOCK);

	/* Still running when the resolver goes. */
	assert_non_null(dns_lookup_host(resolver, "three.test", record_cb,
	    &outcome, &error));
	event_base_loop(base, EVLOOP_NONBLOCK);
	dns_resolver_free(resolver);

	assert_int_equal(outcome.calls, 0);
	event_base_free(base);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(name_check_table),
		cmocka_unit_test(servers_parse_valid),
		cmocka_unit_test(servers_parse_errors),
		cmocka_unit_test(resolver_rejects_bad_servers),
		cmocka_unit_test(status_from_ares_table),
		cmocka_unit_test(mx_sorted_by_preference),
		cmocka_unit_test(mx_duplicates_keep_lowest),
		cmocka_unit_test(mx_null_record),
		cmocka_unit_test(mx_answer_without_mx),
		cmocka_unit_test(mx_malformed_is_tempfail),
		cmocka_unit_test(mx_bounded_keeps_preferred),
		cmocka_unit_test(shuffle_stays_within_preference),
		cmocka_unit_test(address_answers_add_up),
		cmocka_unit_test(address_answers_bounded),
		cmocka_unit_test(name_copy_strips_final_dot),
		cmocka_unit_test(host_status_merge_table),
		cmocka_unit_test(result_settle_table),
		cmocka_unit_test(result_settle_orders_families),
		cmocka_unit_test(inspect_follows_cname_chain),
		cmocka_unit_test(inspect_bounds_cname_chain),
		cmocka_unit_test(inspect_negative_ttl_from_soa),
		cmocka_unit_test(inspect_hostile_lengths),
		cmocka_unit_test(remove_local_table),
#ifdef SLUICE_TEST_HOOKS
		cmocka_unit_test(lookup_times_out_on_sluice_clock),
#endif
		cmocka_unit_test(cancelled_lookups_never_call_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

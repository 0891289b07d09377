/*
 * test_queue_list.c - the -bp listing: ages, sizes and message blocks,
 * in the layout of Exim 4.96.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue_list.h"
#include "spool_header.h"
#include "spool_list.h"
#include "util.h"

#define NOW		1741944413
#define CURRENT_ID	"1tt1Jd-00000000CXd-1jGj"
#define CLASSIC_ID	"1tt1Jd-000CXd-DI"

static void
format_age_table(void **state)
{
	static const struct {
		int64_t seconds;
		const char *want;
	} cases[] = {
		{ 0, " 0m" }, { 59, " 0m" }, { 60, " 1m" }, { 25 * 60, "25m" },
		{ 90 * 60 + 59, "90m" },	/* still minutes */
		{ 91 * 60, " 2h" },		/* (91 + 30) / 60 */
		{ 149 * 60, " 2h" }, { 150 * 60, " 3h" },
		{ 72 * 3600 + 29 * 60, "72h" },
		{ 72 * 3600 + 30 * 60, " 3d" },	/* 73 h, (73 + 12) / 24 */
		{ 4 * 86400, " 4d" }, { 100 * 86400, "100d" },
		{ -60, "-1m" },			/* received in the future */
	};
	char buf[QUEUE_LIST_FIELD_SIZE];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		queue_list_format_age(cases[i].seconds, buf);
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("age of %lld s: got \"%s\", want \"%s\"",
			    (long long)cases[i].seconds, buf, cases[i].want);
	}
}

static void
format_size_table(void **state)
{
	static const struct {
		uint64_t size;
		const char *want;
	} cases[] = {
		{ 0, "     " }, { 1, "    1" }, { 812, "  812" },
		{ 1023, " 1023" }, { 1024, " 1.0K" }, { 2970, " 2.9K" },
		{ 10 * 1024 - 1, "10.0K" },	/* %4.1f rounds up */
		{ 10 * 1024, "  10K" }, { 15380, "  15K" },
		{ 1024 * 1024 - 1, "1024K" }, { 1024 * 1024, " 1.0M" },
		{ 1600000, " 1.5M" }, { 10 * 1024 * 1024, "  10M" },
		{ 5ULL * 1024 * 1024 * 1024, "5120M" },
	};
	char buf[QUEUE_LIST_FIELD_SIZE];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		queue_list_format_size(cases[i].size, buf);
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("size %llu: got \"%s\", want \"%s\"",
			    (unsigned long long)cases[i].size, buf, cases[i].want);
	}
}

/* A message as spool_list_read() gives it, with two recipients. */
static void
make_message(struct spool_list_message *m, const char *id)
{
	memset(m, 0, sizeof(*m));
	strlcpy_s(m->id, id, sizeof(m->id));
	strlcpy_s(m->header.id, id, sizeof(m->header.id));
	m->status = SPOOL_LIST_OK;
	m->header_file_size = 500;
	m->header.sender = xstrdup("alice@example.org");
	m->header.login = xstrdup("www-data");
	m->header.received_time = NOW - 25 * 60;
	spool_header_add_recipient(&m->header, "bob@example.net");
	spool_header_add_recipient(&m->header, "carol@example.net");
	spool_header_add_field(&m->header, ' ', "Subject: hi\n", 12);
	spool_header_add_field(&m->header, '*', "X-Old: gone\n", 12);
	/* "<id>-D\n" and 100 bytes of body */
	m->data_file_size = (off_t)strlen(id) + 3 + 100;
}

/* Prints one block into a string (caller frees). */
static char *
print_block(const struct spool_list_message *m, enum queue_list_kind kind)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	queue_list_print_message(out, m, kind, NOW);
	fclose(out);
	return text;
}

static void
assert_block(const struct spool_list_message *m, enum queue_list_kind kind,
    const char *want)
{
	char *got = print_block(m, kind);

	if (strcmp(got, want) != 0)
		fail_msg("kind %d: got\n%s\nwant\n%s", (int)kind, got, want);
	free(got);
}

static void
message_size_counts_live_fields(void **state)
{
	struct spool_list_message m;

	(void)state;
	make_message(&m, CURRENT_ID);
	/* 12 bytes of live header, 100 of body, 1 for the empty line. */
	assert_int_equal(queue_list_message_size(&m), 113);
	m.data_file_size = -1;
	assert_int_equal(queue_list_message_size(&m), 0);
	spool_list_message_free(&m);
}

static void
block_current_id(void **state)
{
	struct spool_list_message m;

	(void)state;
	make_message(&m, CURRENT_ID);
	spool_header_mark_delivered(&m.header, "bob@example.net");
	assert_block(&m, QUEUE_LIST_ALL,
	    "25m   113 " CURRENT_ID " <alice@example.org>\n"
	    "        D bob@example.net\n"
	    "          carol@example.net\n"
	    "\n");
	assert_block(&m, QUEUE_LIST_UNDELIVERED,
	    "25m   113 " CURRENT_ID " <alice@example.org>\n"
	    "          carol@example.net\n"
	    "\n");
	assert_block(&m, QUEUE_LIST_IDS, CURRENT_ID "\n");
	spool_list_message_free(&m);
}

static void
block_classic_id_frozen_untrusted(void **state)
{
	struct spool_list_message m;

	(void)state;
	make_message(&m, CLASSIC_ID);
	m.header.frozen = true;
	m.header.sender_set_untrusted = true;
	free(m.header.sender);
	m.header.sender = xstrdup("");
	assert_block(&m, QUEUE_LIST_ALL,
	    "25m   113 " CLASSIC_ID " <> (www-data) *** frozen ***\n"
	    "          bob@example.net\n"
	    "          carol@example.net\n"
	    "\n");
	spool_list_message_free(&m);
}

static void
block_generated_addresses_sorted(void **state)
{
	struct spool_list_message m;

	(void)state;
	make_message(&m, CURRENT_ID);
	spool_header_mark_delivered(&m.header, "zed@example.net");
	spool_header_mark_delivered(&m.header, "bob@example.net");
	spool_header_mark_delivered(&m.header, "amy@example.net");
	assert_block(&m, QUEUE_LIST_GENERATED,
	    "25m   113 " CURRENT_ID " <alice@example.org>\n"
	    "        D bob@example.net\n"
	    "          carol@example.net\n"
	    "       +D amy@example.net\n"
	    "       +D zed@example.net\n"
	    "\n");
	/* Plain -bp does not show them. */
	assert_block(&m, QUEUE_LIST_ALL,
	    "25m   113 " CURRENT_ID " <alice@example.org>\n"
	    "        D bob@example.net\n"
	    "          carol@example.net\n"
	    "\n");
	spool_list_message_free(&m);
}

static void
block_read_and_format_errors(void **state)
{
	struct spool_list_message m;

	(void)state;
	memset(&m, 0, sizeof(m));
	strlcpy_s(m.id, CLASSIC_ID, sizeof(m.id));
	m.status = SPOOL_LIST_READ_ERROR;
	m.error_number = ENOENT;
	assert_block(&m, QUEUE_LIST_ALL,
	    "      " CLASSIC_ID "\n"
	    "    *** spool read error: No such file or directory ***\n\n");
	m.status = SPOOL_LIST_FORMAT_ERROR;
	m.header_file_size = 1234;
	assert_block(&m, QUEUE_LIST_UNDELIVERED,
	    "      " CLASSIC_ID "\n"
	    "    *** spool format error: size=1234 ***\n\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format_age_table),
		cmocka_unit_test(format_size_table),
		cmocka_unit_test(message_size_counts_live_fields),
		cmocka_unit_test(block_current_id),
		cmocka_unit_test(block_classic_id_frozen_untrusted),
		cmocka_unit_test(block_generated_addresses_sorted),
		cmocka_unit_test(block_read_and_format_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_spool_header.c - libFuzzer target for the -H file parser and the
 * -J journal (see tests/fuzz/README.md for how to build and run it).
 *
 * The input is parsed as a -H file. When that succeeds, the struct is
 * formatted, the result parsed again, and both the structs and a second
 * formatting must be equal: anything the parser accepts must survive a
 * rewrite unchanged. The input is also replayed as a journal onto a
 * fixed header, whose result must still format.
 *
 * Any broken property calls abort(), which libFuzzer reports as a crash
 * with the input that caused it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_header.h"

static const char journal_base[] =
	"1tt1Jd-00000000CXd-1jGj-H\n"
	"sluice 101 103\n"
	"<a@example.org>\n"
	"1741944413 0\n"
	"XX\n"
	"2\n"
	"b@example.net\n"
	"c@example.net\n"
	"\n"
	"014  Subject: fuzz\n";

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_spool_header: %s%s%s\n", what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

static void
check_round_trip(const struct spool_header *h)
{
	struct spool_header back;
	char *error = NULL;
	char *out, *out2;
	size_t len, len2;

	out = spool_header_format(h, &len);
	if (out == NULL) {
		spool_header_check(h, &error);
		fail("parsed header does not format", error);
	}
	if (spool_header_parse(out, len, "formatted", &back, &error) != 0)
		fail("formatted header does not parse", error);
	if (!spool_header_equal(h, &back))
		fail("header changed in a round trip", NULL);
	out2 = spool_header_format(&back, &len2);
	if (out2 == NULL || len2 != len || memcmp(out, out2, len) != 0)
		fail("second formatting differs", NULL);
	free(out);
	free(out2);
	spool_header_free(&back);
}

static void
check_journal(const char *data, size_t size)
{
	struct spool_header h;
	char *error = NULL;
	char *out;
	size_t len;

	if (spool_header_parse(journal_base, strlen(journal_base), "base", &h,
	    &error) != 0)
		fail("journal base does not parse", error);
	if (spool_journal_apply(&h, data, size, &error) != 0) {
		if (error == NULL)
			fail("journal failed without an error", NULL);
		free(error);
	} else {
		out = spool_header_format(&h, &len);
		if (out == NULL)
			fail("header does not format after a journal", NULL);
		free(out);
	}
	spool_header_free(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_header h;
	char *error = NULL;

	if (spool_header_parse((const char *)data, size, "input", &h,
	    &error) == 0) {
		check_round_trip(&h);
		spool_header_free(&h);
	} else {
		if (error == NULL)
			fail("parse failed without an error", NULL);
		free(error);
	}
	check_journal((const char *)data, size);
	return 0;
}

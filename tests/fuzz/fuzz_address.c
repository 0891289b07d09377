/*
 * fuzz_address.c - libFuzzer target for the MAIL FROM and RCPT TO
 * argument parser (core/address.c; see tests/fuzz/README.md).
 *
 * The input, cut at its first NUL as the command reader would never pass
 * one on, is parsed in both roles, with and without address literals,
 * and with and without UTF-8 (SMTPUTF8). What must hold:
 *  - an accepted path is printable ASCII (or, with UTF-8 allowed,
 *    well-formed UTF-8 without control characters, marked utf8 exactly
 *    when it contains a byte over 127) within the RFC 5321 lengths, its
 *    domain offset points after an '@', and written back as
 *    "<address>" it parses again to the same address;
 *  - a rejected path has an error text, and the address copy for the
 *    501 reply is printable ASCII;
 *  - the parameters after a path are taken apart until the end or an
 *    error, never beyond.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

static void
fail(const char *what, const char *input)
{
	fprintf(stderr, "fuzz_address: %s: \"%s\"\n", what, input);
	abort();
}

static void
check_printable(const char *text, const char *input)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0';
	    p++)
		if (*p < 32 || *p > 126)
			fail("result holds a byte outside printable ASCII", input);
}

static void
check_params(const char *params, const char *input)
{
	char keyword[ADDRESS_PARAM_KEYWORD_MAX + 1];
	char value[ADDRESS_PARAM_VALUE_MAX + 1];
	const char *end = params + strlen(params);
	int rc;

	while ((rc = address_param_next(&params, keyword, value)) == 1) {
		if (params > end)
			fail("parameters read past the end", input);
		if (strlen(keyword) > ADDRESS_PARAM_KEYWORD_MAX ||
		    strlen(value) > ADDRESS_PARAM_VALUE_MAX)
			fail("parameter over its bound", input);
	}
}

/* Checks an address accepted with UTF-8 allowed. */
static void
check_utf8(const struct address_path *path, const char *input)
{
	bool high = false;

	if (!address_utf8_valid(path->address))
		fail("accepted address is not valid UTF-8", input);
	for (const unsigned char *p = (const unsigned char *)path->address;
	    *p != '\0'; p++) {
		if (*p < 32 || *p == 127)
			fail("accepted address holds a control character",
			    input);
		high |= *p >= 0x80;
	}
	if (high != path->utf8)
		fail("utf8 mark does not match the address", input);
}

static void
check_one(const char *input, enum address_role role, unsigned flags)
{
	struct address_path path, again;
	char local[ADDRESS_SIZE];
	char written[ADDRESS_SIZE + 2];
	const char *error = NULL;
	size_t len;

	if (address_parse_path_flags(input, role, flags, &path, &error) != 0) {
		if (error == NULL || error[0] == '\0')
			fail("rejected without a reason", input);
		check_printable(path.address, input);
		return;
	}
	len = strlen(path.address);
	if (flags & ADDRESS_ALLOW_UTF8)
		check_utf8(&path, input);
	else
		check_printable(path.address, input);
	if (len > ADDRESS_MAX)
		fail("address longer than ADDRESS_MAX", input);
	if (path.domain > 0 && (path.domain >= len ||
	    path.address[path.domain - 1] != '@'))
		fail("domain offset does not follow an '@'", input);
	if (path.params == NULL)
		fail("no parameters pointer", input);
	if (address_local_part(&path, local, sizeof(local)) > len)
		fail("local part longer than the address", input);
	if (path.domain > ADDRESS_LOCAL_PART_MAX + 1)
		fail("local part over 64 octets accepted", input);
	check_params(path.params, input);

	/* A bare <postmaster> and the null path have their own rules. */
	if (path.domain == 0)
		return;
	snprintf(written, sizeof(written), "<%s>", path.address);
	if (address_parse_path_flags(written, role, flags, &again, &error) != 0)
		fail("written-back path does not parse", input);
	if (strcmp(again.address, path.address) != 0 ||
	    again.domain != path.domain)
		fail("written-back path parses differently", input);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = malloc(size + 1);

	if (input == NULL)
		return 0;
	memcpy(input, data, size);
	input[size] = '\0';
	for (unsigned flags = 0; flags < 4; flags++) {
		check_one(input, ADDRESS_SENDER, flags);
		check_one(input, ADDRESS_RECIPIENT, flags);
	}
	free(input);
	return 0;
}

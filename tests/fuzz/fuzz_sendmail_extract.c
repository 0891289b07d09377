/*
 * fuzz_sendmail_extract.c - libFuzzer target for the -t recipient
 * extraction (core/sendmail_extract.c; see tests/fuzz/README.md).
 *
 * The input is taken as a header section and, separately, as one
 * address list. What must hold:
 *  - neither call reads outside the input (ASan checks this);
 *  - no extracted address is empty, longer than its input, or contains
 *    white space outside a quoted part or a NUL;
 *  - the list never passes SENDMAIL_ADDRESSES_MAX.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sendmail.h"

static void
check(const struct sendmail_addresses *list, size_t input_len)
{
	if (list->count > SENDMAIL_ADDRESSES_MAX) {
		fprintf(stderr, "fuzz_sendmail_extract: %zu addresses\n",
		    list->count);
		abort();
	}
	for (size_t i = 0; i < list->count; i++) {
		size_t len = strlen(list->items[i]);

		if (len == 0 || len > input_len) {
			fprintf(stderr, "fuzz_sendmail_extract: address of %zu "
			    "bytes from %zu\n", len, input_len);
			abort();
		}
		if (strchr(list->items[i], '"') == NULL &&
		    strpbrk(list->items[i], " \t\n") != NULL) {
			fprintf(stderr, "fuzz_sendmail_extract: white space in "
			    "\"%s\"\n", list->items[i]);
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sendmail_addresses list = { 0 };
	/* An exact-size copy, so that ASan sees any read past the end. */
	char *copy = malloc(size > 0 ? size : 1);

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	sendmail_header_recipients(copy, size, &list);
	check(&list, size);
	sendmail_addresses_free(&list);
	sendmail_parse_address_list(copy, size, &list);
	check(&list, size);
	sendmail_addresses_free(&list);
	free(copy);
	return 0;
}

/*
 * fuzz_config.c - libFuzzer target for the sluice.conf reader and option
 * parser (core/config_reader.c, core/config.c; see tests/fuzz/README.md).
 *
 * The input is written to main.conf in a scratch directory and loaded.
 * What must hold: loading either succeeds or fails with a
 * "FILE:LINE: ..." message, and what was loaded prints as -bP prints it.
 *
 * The configuration is trusted input in production. The target is here
 * so that no file, however broken, crashes sluice at start-up. Inputs
 * that mention ".include" together with a '/' are skipped, so that the
 * target never reads a file outside its scratch directory (/dev/stdin
 * would stall it). Includes of main.conf itself are still exercised.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char directory[] = "/tmp/fuzz-config-XXXXXX";
static char path[sizeof(directory) + 16];

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_config: %s%s%s\n", what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(directory) == NULL)
		fail("cannot create a scratch directory", NULL);
	snprintf(path, sizeof(path), "%s/main.conf", directory);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *config = NULL;
	char *error = NULL;
	char *printed = NULL;
	size_t printed_size = 0;
	FILE *f;

	if (memmem(data, size, ".include", 8) != NULL &&
	    memchr(data, '/', size) != NULL)
		return 0;
	if ((f = fopen(path, "w")) == NULL)
		fail("cannot write", path);
	fwrite(data, 1, size, f);
	fclose(f);

	if (config_load(path, NULL, 0, &config, &error) < 0) {
		if (error == NULL || strncmp(error, path, strlen(path)) != 0)
			fail("load failed without a FILE:LINE message", error);
		free(error);
	} else {
		if ((f = open_memstream(&printed, &printed_size)) == NULL)
			fail("open_memstream failed", NULL);
		config_print(f, config, NULL, false);
		fclose(f);
		free(printed);
	}
	config_free(config);
	return 0;
}

/*
 * version.c - the -bV report (see version.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <ares.h>
#include <db.h>
#include <event2/event.h>
#include <luajit.h>
#include <openssl/crypto.h>

#include "version.h"

/* The build number Exim counts per build tree; sluice releases are
 * numbered by their version alone. */
#define VERSION_BUILD_NUMBER	1

/* Writes __DATE__ ("Mmm dd yyyy") and __TIME__ as Exim dates its build:
 * "dd-Mmm-yyyy hh:mm:ss". */
static void
version_build_date(char *buf, size_t size)
{
	const char *date = __DATE__;
	int day = (date[4] == ' ' ? 0 : date[4] - '0') * 10 + (date[5] - '0');

	snprintf(buf, size, "%02d-%.3s-%.4s %s", day, date, date + 7,
	    __TIME__);
}

void
version_print(FILE *out)
{
	char built[32];

	version_build_date(built, sizeof(built));
	fprintf(out, "sluice version %s #%d built %s\n", PACKAGE_VERSION,
	    VERSION_BUILD_NUMBER, built);
	fprintf(out, "Berkeley DB: %s\n", db_version(NULL, NULL, NULL));
	fprintf(out, "Support for: IPv6 OpenSSL%s\n",
#ifdef SLUICE_TEST_HOOKS
	    " Test_hooks"
#else
	    ""
#endif
	    );
	fprintf(out, "Libraries: libevent %s, %s, %s, c-ares %s\n",
	    event_get_version(), LUAJIT_VERSION,
	    OpenSSL_version(OPENSSL_VERSION), ares_version(NULL));
	fprintf(out, "Size of off_t: %zu\n", sizeof(off_t));
}

void
version_print_config(FILE *out, const char *config_file)
{
	fprintf(out, "Configuration file is %s\n", config_file);
}

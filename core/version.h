/*
 * version.h - the -bV report, in the shape of Exim's.
 *
 * Line 1 is "sluice version X.Y.Z #N built DD-Mon-YYYY HH:MM:SS", so
 * scripts that take the version as the third word of Exim's first line
 * keep working. The build facts, library versions and, last, the
 * configuration file follow, one "Name: value" line each.
 */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

#include <stdio.h>

/* Prints everything but the configuration file line. */
void version_print(FILE *out);

/* Prints "Configuration file is <path>". */
void version_print_config(FILE *out, const char *config_file);

#endif

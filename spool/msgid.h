/*
 * msgid.h - Exim message ids in both forms.
 *
 * current: TTTTTT-PPPPPPPPPPP-SSSS (23 characters, Exim 4.97 and later)
 * classic: TTTTTT-PPPPPP-SS        (16 characters, Exim 4.96 and earlier)
 * Base 62 digits 0-9A-Za-z, big-endian. Both are accepted wherever an id
 * is read; message_id_format picks the one generated.
 */
#ifndef SLUICE_MSGID_H
#define SLUICE_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

#define MSGID_LEN_CURRENT	23
#define MSGID_LEN_CLASSIC	16
#define MSGID_SIZE		(MSGID_LEN_CURRENT + 1)

/* Generates a new id, unique in this host (see msgid.c), into buf. */
void msgid_new(enum msgid_format format, char buf[MSGID_SIZE]);
/* True if s[0..len) is an id of either form. */
bool msgid_valid(const char *s, size_t len);
/* Receive time encoded in a valid id. */
time_t msgid_time(const char *id);
/* Orders ids as Exim's -bp does: by time, then the sub-second field. */
int msgid_compare(const char *a, const char *b);

#endif

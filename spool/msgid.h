/*
 * msgid.h - Exim message ids in both forms.
 *
 * current: TTTTTT-PPPPPPPPPPP-SSSS (23 characters, Exim 4.97 and later)
 * classic: TTTTTT-PPPPPP-SS        (16 characters, Exim 4.96 and earlier)
 * Base 62 digits 0-9A-Za-z, big-endian. Both are accepted wherever an id
 * is read; message_id_format picks the one generated.
 *
 * T is the receive time in seconds since the epoch and P the process id.
 * S is the sub-second part of the time: microseconds in the current form,
 * units of 1/3844 s in the classic form (see msgid.c for why).
 *
 * All functions are thread-safe.
 */
#ifndef SLUICE_MSGID_H
#define SLUICE_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"

#define MSGID_LEN_CURRENT	23
#define MSGID_LEN_CLASSIC	16
#define MSGID_SIZE		(MSGID_LEN_CURRENT + 1)

/* Sub-second units per second in each form. */
#define MSGID_CURRENT_TICKS	1000000u
#define MSGID_CLASSIC_TICKS	3844u		/* 62 * 62 */

/* The three fields of an id, as numbers. */
struct msgid_parts {
	time_t time;		/* seconds since the epoch */
	uint64_t pid;
	uint32_t subsecond;	/* in the form's ticks */
};

/*
 * Generates a new id into buf. Ids from one process never repeat and
 * increase with each call. This is true when the clock steps back, and
 * when ids are requested faster than the sub-second field resolves, but
 * then the time in the id runs ahead of the clock (see msgid.c). Ids
 * from different processes differ in the pid field.
 */
void msgid_new(enum msgid_format format, char buf[MSGID_SIZE]);

/*
 * Sleeps until the clock has passed the time of the last id this process
 * generated. A process calls it before it exits, so that a later process
 * that gets the same pid cannot generate an id this one already used.
 */
void msgid_wait_tick(void);

/* True if s[0..len) is an id of either form. */
bool msgid_valid(const char *s, size_t len);

/* Returns the length of the id at the start of s (MSGID_LEN_CURRENT or
 * MSGID_LEN_CLASSIC), or 0 if s does not start with one. Text may follow
 * the id, as in spool file names ("<id>-H"). */
size_t msgid_prefix_len(const char *s);

/* Writes the id for parts into buf. Fields wider than the form allows
 * keep their low-order digits. */
void msgid_encode(enum msgid_format format, const struct msgid_parts *parts,
    char buf[MSGID_SIZE]);

/* Decodes the id at the start of s. Returns 0, or -1 if s does not start
 * with an id. */
int msgid_decode(const char *s, enum msgid_format *format,
    struct msgid_parts *parts);

/* Receive time encoded in the id at the start of id, or -1 if there is
 * none. */
time_t msgid_time(const char *id);

/*
 * Orders ids as Exim's -bp does: by time, then by the sub-second field
 * converted to microseconds; the pid is ignored. Strings that are not ids
 * sort after all ids, by strcmp().
 */
int msgid_compare(const char *a, const char *b);

#endif

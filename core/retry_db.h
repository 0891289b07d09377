/*
 * retry_db.h - retry state (the "hints" of Exim's retry database) in a
 * Berkeley DB file, <spool_directory>/hints/retry-state.db.
 *
 * Exim keeps its hints in <spool>/db/, where Debian's daily cron job
 * runs exim_tidydb over every file, so sluice uses hints/ and its own
 * record layout. The "-" in the file name keeps it apart from the
 * policy tables saved in the same folder, whose names cannot contain
 * one. Hints are only hints: deleting the file is always safe, and a
 * record that does not decode is treated as missing.
 *
 * retry-state.lockfile next to it carries an fcntl() lock while a
 * handle is open (shared for reading, exclusive for writing), so other
 * processes wait. The calls block on the lock and on disk I/O, so the
 * daemon is to make them from its worker threads, never from the loop
 * thread. One handle belongs to one thread at a time.
 *
 * Keys follow Exim's: "T:<host>:<ip>[:<port>]" for a host,
 * "T:<host>:<ip>[:<port>]:<message id>" for a message-specific host
 * error, "R:<domain>" for routing, and an address for an address error.
 */
#ifndef SLUICE_RETRY_DB_H
#define SLUICE_RETRY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define RETRY_DB_KEY_MAX		1024	/* bytes of a key */
#define RETRY_DB_TEXT_MAX		512	/* bytes of an error text */

struct retry_db;

/* One retry record, as exim_dumpdb shows Exim's. */
struct retry_db_record {
	time_t first_failed;
	time_t last_try;
	time_t next_try;
	bool expired;			/* past the final cutoff of its rule */
	int error;			/* errno, or a negative sluice code */
	int more_error;			/* SMTP code or other detail; 0: none */
	char text[RETRY_DB_TEXT_MAX];	/* "Connection refused", a reply */
};

/*
 * Opens the retry state file of spool_directory, creating hints/ and the
 * file when write is true. Returns 0 with *out set, 1 when write is
 * false and the file does not exist yet, or -1 with *error set (caller
 * frees).
 */
int retry_db_open(const char *spool_directory, bool write,
    struct retry_db **out, char **error);

/* Closes the database and releases its lock. Accepts NULL. */
void retry_db_close(struct retry_db *db);

/*
 * Reads the record for key into *out. Returns 1 when found, 0 when
 * missing (or undecodable), -1 with *error set (caller frees).
 */
int retry_db_get(struct retry_db *db, const char *key,
    struct retry_db_record *out, char **error);

/* Writes or replaces the record for key and flushes it to disk.
 * Returns 0, or -1 with *error set (caller frees). */
int retry_db_put(struct retry_db *db, const char *key,
    const struct retry_db_record *record, char **error);

/* Removes the record for key (a success that cleared the failure).
 * Returns 0 whether or not it existed, or -1 with *error set. */
int retry_db_delete(struct retry_db *db, const char *key, char **error);

/*
 * Calls fn for every record that decodes, in no particular order; key
 * and record are borrowed for the call, and fn must not change the
 * database. Returns 0, or -1 with *error set (caller frees).
 */
typedef void (*retry_db_each_fn)(void *arg, const char *key,
    const struct retry_db_record *record);
int retry_db_each(struct retry_db *db, retry_db_each_fn fn, void *arg,
    char **error);

/* Encodes and decodes a record; exposed for the tests. retry_db_encode
 * returns the length written to buf (at least RETRY_DB_RECORD_MAX
 * bytes); retry_db_decode returns 0, or -1 when data is not a valid
 * record. */
#define RETRY_DB_RECORD_MAX	(4 + 3 * 8 + 1 + 2 * 4 + 2 + RETRY_DB_TEXT_MAX)
size_t retry_db_encode(const struct retry_db_record *record,
    unsigned char *buf);
int retry_db_decode(const unsigned char *data, size_t size,
    struct retry_db_record *out);

#endif

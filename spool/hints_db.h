/*
 * hints_db.h - snapshots of in-memory tables saved as Berkeley DB Btree
 * files under spool_directory/hints/ (not db/, which Debian's Exim cron
 * job tidies).
 *
 * A save writes the whole snapshot to "NAME.db.tmp", flushes it to disk
 * and renames it over "NAME.db", so a crash leaves either the old or the
 * new file, never a half-written one. A writer thread does the saves, so
 * the loop thread only copies the records into a snapshot.
 *
 * In builds with --enable-test-hooks, SLUICE_TEST_HINTS_KILL_AFTER=K in
 * the environment makes a save kill the process (SIGKILL) right after
 * its K-th record, to test what a crash leaves.
 */
#ifndef SLUICE_HINTS_DB_H
#define SLUICE_HINTS_DB_H

#include <stddef.h>
#include <stdint.h>

#define HINTS_DIRECTORY		"hints"
/* Bounds on what a file may contain; longer records are corrupt. */
#define HINTS_KEY_MAX		1024
#define HINTS_VALUE_MAX		65536

struct hints_snapshot;

/* Creates an empty snapshot of table name (letters, digits, '_'). */
struct hints_snapshot *hints_snapshot_new(const char *name);
/* Copies one record into the snapshot. */
void hints_snapshot_add(struct hints_snapshot *s, const void *key,
    size_t key_len, const void *value, size_t value_len);
size_t hints_snapshot_count(const struct hints_snapshot *s);
/* Accepts NULL. */
void hints_snapshot_free(struct hints_snapshot *s);

/* Writes s to spool/hints/NAME.db now, creating spool/hints if needed.
 * Returns 0, or -1 with *error set (caller frees). */
int hints_db_write(const char *spool, const struct hints_snapshot *s,
    char **error);

/* Called by hints_db_read() for each record; a non-zero return stops
 * the read. */
typedef int (*hints_record_fn)(const void *key, size_t key_len,
    const void *value, size_t value_len, void *arg);

/*
 * Reads spool/hints/NAME.db. Returns the number of records read, 0 if
 * the file does not exist, or -1 with *error set (caller frees) if it
 * cannot be opened or read.
 */
long hints_db_read(const char *spool, const char *name, hints_record_fn fn,
    void *arg, char **error);

/* Starts the writer thread for spool. Returns 0, or -1 with *error
 * set. */
int hints_writer_start(const char *spool, char **error);
/* Hands s to the writer thread, which owns it from now on. A snapshot of
 * the same table still waiting is replaced, as the newer one supersedes
 * it. */
void hints_writer_submit(struct hints_snapshot *s);
/* Writes every snapshot still waiting and stops the thread. */
void hints_writer_stop(void);

#endif

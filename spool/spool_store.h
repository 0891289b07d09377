/*
 * spool_store.h - durable spool storage in Exim's layout, with group
 * commit.
 *
 * Layout, under spool_directory:
 *   input/<id>-D   first line "<id>-D\n", then the body
 *   input/<id>-H   envelope and headers (bytes from spool_header_format)
 *   input/<id>-J   delivery journal, one delivered address per line
 *   input/hdr.<id> temporary -H while it is written
 *   msglog/<id>    the message's own log
 * With split_spool_directory the files of a message sit one level down,
 * in a sub-directory named by the 6th character of the id
 * (input/d/<id>-H). Readers look in the expected place first and then in
 * the other, so the option can be switched with messages on the queue.
 * Files are created mode 0640.
 *
 * A message is received in two steps, as in Exim. spool_store_data_create()
 * creates the -D file and locks its first line; the body is streamed into
 * it with spool_data_write(). spool_store_commit() then writes the -H
 * file under a temporary name, makes both files durable, renames the -H
 * file into place and syncs the directory. A message exists once both
 * files exist. Only when all of that is on disk does the commit callback
 * report success, and only then may the receiver reply 250. On any
 * failure the callback reports it and no file of the message is left
 * behind.
 *
 * Group commit: commits, journal appends, -H rewrites and removals are
 * queued to one worker thread. Each round it takes everything queued and
 * makes the whole batch durable together. It calls syncfs(2) once for a
 * batch of two or more operations, then renames, then fsyncs each
 * directory once. A batch of one, and every batch on Linux before 5.8
 * (whose syncfs(2) reports no write errors), gets fdatasync(2) per file
 * instead. Results return to the event loop thread through one
 * eventfd, and every callback runs on that thread. The loop thread
 * itself only creates and writes -D files and never syncs.
 *
 * Thread use: every function except spool_store_stats() belongs to the
 * thread that runs the event base given to spool_store_new().
 * Fatal: only out of memory and failures to create a thread or a
 * libevent event. Everything else is reported to the caller.
 */
#ifndef SLUICE_SPOOL_STORE_H
#define SLUICE_SPOOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool_backend.h"

struct event_base;
struct spool_header;
struct spool_store;
struct spool_data;

/* Bounds on what the store writes and reads. */
#define SPOOL_HEADER_FILE_MAX	(64u * 1024 * 1024)	/* one -H file */
#define SPOOL_JOURNAL_FILE_MAX	(16u * 1024 * 1024)	/* one -J file */
#define SPOOL_JOURNAL_LINE_MAX	2048	/* address, or address/transport */
#define SPOOL_ROUND_MAX		1024	/* operations in one group commit */
#define SPOOL_DATA_BUFFER_SIZE	16384	/* per message being received */

/*
 * Reports the result of a queued operation on the loop thread: result is
 * 0 on success, or -1 with error set to a message naming the file and
 * the reason (borrowed for the duration of the call).
 */
typedef void (*spool_store_cb)(void *arg, int result, const char *error);

/* Counters since spool_store_new(), for the control socket and
 * benchmarks. Messages per round is messages_committed / commit_rounds. */
struct spool_store_stats {
	uint64_t rounds;		/* worker rounds of any kind */
	uint64_t commit_rounds;		/* rounds that committed a message */
	uint64_t messages_committed;
	uint64_t commits_failed;
	uint64_t max_batch;		/* largest number of commits in a round */
	uint64_t sync_calls;		/* fdatasync, syncfs and directory fsync */
	uint64_t journal_appends;
	uint64_t header_rewrites;
	uint64_t removals;
};

/*
 * Opens the spool under spool_directory: creates spool_directory, input/
 * and msglog/ (and with split, their 62 sub-directories) when missing,
 * and starts the commit worker. backend NULL means spool_backend_posix();
 * a given backend is borrowed until spool_store_free(). Returns the
 * store, or NULL with *error set (caller frees).
 */
struct spool_store *spool_store_new(struct event_base *base,
    const char *spool_directory, bool split,
    const struct spool_backend *backend, char **error);

/*
 * Stops the worker after it has finished every queued operation, runs
 * the callbacks not yet delivered, and frees the store. Accepts NULL.
 * Must not be called from a store callback.
 */
void spool_store_free(struct spool_store *store);

/*
 * Creates and locks <id>-D in the expected place and writes its first
 * line. Returns the open data file (owned by the caller until it passes
 * it to spool_store_commit() or spool_data_abort()), or NULL with *error
 * set (caller frees). Fails when the id is invalid or the file exists.
 */
struct spool_data *spool_store_data_create(struct spool_store *store,
    const char *id, char **error);

/*
 * Appends body bytes. Memory stays bounded: at most
 * SPOOL_DATA_BUFFER_SIZE bytes are held before they are written. Returns
 * 0, or -1 with *error set (caller frees); the caller then aborts.
 */
int spool_data_write(struct spool_data *data, const void *buf, size_t len,
    char **error);

/* Body bytes appended so far (the -D file size minus its first line). */
uint64_t spool_data_size(const struct spool_data *data);

/* Removes the -D file and frees data. Accepts NULL. */
void spool_data_abort(struct spool_data *data);

/*
 * Queues the commit of a received message: header (len bytes, which must
 * start with "<id>-H\n") becomes the -H file. Takes ownership of data and
 * copies header. cb runs later on the loop thread, never before this
 * function returns. After a successful commit the -D file is closed and
 * its lock released.
 */
void spool_store_commit(struct spool_store *store, struct spool_data *data,
    const void *header, size_t len, spool_store_cb cb, void *arg);

/*
 * Queues the append of one line to <id>-J, made durable before cb
 * reports success. address is copied; it must not contain a newline and
 * is at most SPOOL_JOURNAL_LINE_MAX bytes.
 */
void spool_store_journal_append(struct spool_store *store, const char *id,
    const char *address, spool_store_cb cb, void *arg);

/*
 * Queues the replacement of <id>-H by header (copied; must start with
 * "<id>-H\n"): written to a temporary file, synced, renamed over the old
 * -H, the directory synced, and then <id>-J removed, since the new -H
 * includes what the journal recorded.
 */
void spool_store_header_rewrite(struct spool_store *store, const char *id,
    const void *header, size_t len, spool_store_cb cb, void *arg);

/*
 * Queues the removal of <id>-H, -J, -D and the msglog file, from both
 * layouts. -H goes first, so the message leaves the queue before its data
 * does. Missing files are not an error. cb may be NULL.
 */
void spool_store_remove(struct spool_store *store, const char *id,
    spool_store_cb cb, void *arg);

/* Return values of spool_store_lock() besides 0 and -1. */
#define SPOOL_LOCK_BUSY		1

/*
 * Opens <id>-D (expected place first) and takes the Exim lock on its
 * first line. Returns 0 with *fd set (caller closes it to release the
 * lock), SPOOL_LOCK_BUSY when another process or descriptor holds the
 * lock, or -1 with *error set (caller frees) when the file is missing or
 * cannot be opened.
 */
int spool_store_lock(struct spool_store *store, const char *id, int *fd,
    char **error);

/*
 * Start-up scan. Called before any operation is queued. For every
 * message in input/ in either layout and with either id form, reads and
 * parses -H, applies -J when present and calls fn. fn takes ownership of
 * header (free it with spool_header_free() and free()). A message that
 * cannot be read or parsed, or lacks its -D file, is moved to
 * input/.broken/ and logged to mainlog and paniclog. Leftover temporary
 * files are removed, and so are -D and -J files that have no -H and are
 * not locked (receptions interrupted before their commit).
 */
typedef void (*spool_scan_fn)(void *arg, const char *id,
    struct spool_header *header);

struct spool_scan_result {
	size_t messages;	/* passed to fn */
	size_t broken;		/* moved to input/.broken */
	size_t removed;		/* leftover files removed */
};

/* Returns 0, or -1 with *error set (caller frees) when a directory cannot
 * be listed or input/.broken cannot be created. */
int spool_store_scan(struct spool_store *store, spool_scan_fn fn, void *arg,
    struct spool_scan_result *result, char **error);

/*
 * Reads and parses <id>-H (expected layout first) and applies <id>-J
 * when it exists. Returns 0 with *out set (free it with
 * spool_header_free() and free()), or -1 with *error set (caller frees).
 * NOTE: it reads on the calling thread; the files are small and usually
 * in the page cache, but a slow disk stalls the loop meanwhile.
 */
int spool_store_read_header(struct spool_store *store, const char *id,
    struct spool_header **out, char **error);

/* Copies the counters; callable from any thread. */
void spool_store_stats(struct spool_store *store,
    struct spool_store_stats *out);

#ifdef SLUICE_TEST_HOOKS
/* While held, the worker takes no new operations, so a test can queue
 * several and have them committed in one round. */
void spool_store_hold(struct spool_store *store, bool hold);
#endif

#endif

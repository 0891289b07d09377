/*
 * retry_hosts.h - host-level retry state shared by every message, as
 * Exim's "T:<host>:<ip>" retry records are: a host that refused a
 * connection, timed out or failed before the SMTP transaction is not
 * tried again by any message until its retry time.
 *
 * The state lives in memory, and a writer thread copies it to the retry
 * state file (retry_db.h), so the loop thread makes no Berkeley DB call
 * after start-up. The file is read once, when the table is created, so
 * a restarted daemon keeps the retry times.
 *
 * Thread use: every function belongs to the loop thread; the writer
 * thread only touches its own queue of pending writes.
 */
#ifndef SLUICE_RETRY_HOSTS_H
#define SLUICE_RETRY_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "retry.h"

/* Hosts kept in memory; past it the entry with the earliest retry time
 * is dropped from memory, and stays in the file. */
#define RETRY_HOSTS_MAX		10000
/* Records older than this are ignored when the file is read, as Exim's
 * retry_data_expire (7 days by default) ignores old retry data. */
#define RETRY_HOSTS_DATA_EXPIRE	(7 * 24 * 60 * 60)
/* Bytes of a key: "T:" host ":" ip [":" port]. */
#define RETRY_HOSTS_KEY_SIZE	600

struct retry_hosts;

/*
 * Creates the table for spool_directory and loads the retry state file,
 * blocking while it reads. A file that cannot be read is reported in
 * *error (caller frees) and the table starts empty; the return value is
 * never NULL. spool_directory is copied.
 */
struct retry_hosts *retry_hosts_new(const char *spool_directory,
    char **error);

/* Writes what is still pending, stops the writer and frees the table.
 * Accepts NULL. */
void retry_hosts_free(struct retry_hosts *hosts);

/* Writes Exim's key for a host into buf: "T:name:ip", with ":port" when
 * port is not 25. */
void retry_hosts_key(char buf[RETRY_HOSTS_KEY_SIZE], const char *name,
    const char *ip, int port);

/* True if the host with key may not be tried before *next_try (set when
 * true). */
bool retry_hosts_waiting(struct retry_hosts *hosts, const char *key,
    time_t now, time_t *next_try);

/*
 * Records a failure of the host with key at now: rule (NULL for the
 * default interval of default_usec) sets its next retry time. error and
 * text (copied, may be NULL) are kept for the file, as exim_dumpdb shows
 * them.
 */
void retry_hosts_failed(struct retry_hosts *hosts, const char *key,
    const struct retry_rule *rule, time_t now, uint64_t default_usec,
    int error, const char *text);

/* Forgets the failures of the host with key: it answered. */
void retry_hosts_succeeded(struct retry_hosts *hosts, const char *key);

#endif

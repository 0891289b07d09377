/*
 * spool_list.h - reading the queue straight from the spool, without a
 * store or a daemon, as Exim's command-line tools do.
 *
 * The command-line tools (-bp, -Mv*, the selection of a queue run) use
 * it in their own process, and the daemon uses it to select the
 * messages of a queue run. Nothing here writes, locks or moves a file.
 * A message that is being received (no -H yet) or removed (files going)
 * is simply listed or not. A message that cannot be read is reported
 * to the caller, never moved aside.
 *
 * Both layouts are always read: input/ and its one-character
 * sub-directories, so split_spool_directory can be changed with
 * messages on the queue.
 *
 * Bounds: a -H file larger than SPOOL_HEADER_FILE_MAX and a -J file
 * larger than SPOOL_JOURNAL_FILE_MAX are read errors (EFBIG). The number
 * of messages listed is bounded only by memory.
 * Thread use: any thread; nothing is shared.
 */
#ifndef SLUICE_SPOOL_LIST_H
#define SLUICE_SPOOL_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "msgid.h"
#include "spool_header.h"

/* A message found in a directory listing. */
struct spool_list_entry {
	char id[MSGID_SIZE];
	char subdir;		/* split sub-directory, or '\0' for input/ */
};

/*
 * Lists every <id>-H under spool_directory/input, in directory order,
 * into a new array (caller frees). Returns 0, or -1 with *error set
 * (caller frees) when input/ cannot be read; a missing input/ is an
 * empty queue.
 */
int spool_list_messages(const char *spool_directory,
    struct spool_list_entry **entries, size_t *count, char **error);

/* Sorts entries as Exim's -bp does (msgid_compare). */
void spool_list_sort(struct spool_list_entry *entries, size_t count);

enum spool_list_status {
	SPOOL_LIST_OK,
	SPOOL_LIST_READ_ERROR,		/* -H, or -J, could not be read */
	SPOOL_LIST_FORMAT_ERROR,	/* -H or -J is not valid */
};

/* One message as read from the spool. */
struct spool_list_message {
	char id[MSGID_SIZE];
	enum spool_list_status status;
	int error_number;		/* errno of a read error */
	char *error;			/* what is wrong, for logs and
					 * messages; NULL when OK */
	char *input_dir;		/* where -H was found, or the expected
					 * place when it was not */
	off_t header_file_size;		/* of -H; -1 if unknown */
	off_t data_file_size;		/* of -D; -1 if it is missing */
	struct spool_header header;	/* with -J applied; valid when OK */
};

/*
 * Reads <id>-H from the expected place for split and then from the
 * other, applies <id>-J when it exists, and finds the size of <id>-D.
 * Fills *out in every case, and its status field gives the outcome. Free it with
 * spool_list_message_free().
 */
void spool_list_read(const char *spool_directory, bool split, const char *id,
    struct spool_list_message *out);

void spool_list_message_free(struct spool_list_message *m);

/* Path of <id><suffix> ("-D", "-H", "-J") beside the -H file that m was
 * read from, or in the expected place. Caller frees. */
char *spool_list_path(const struct spool_list_message *m, const char *suffix);

/*
 * Path of the message's msglog file: msglog/<id> or msglog/<c>/<id>,
 * whichever exists, preferring the expected place for split. Caller
 * frees.
 */
char *spool_list_msglog_path(const char *spool_directory, bool split,
    const char *id);

/* Reads a whole file of at most max bytes into *out (caller frees; a
 * NUL follows the data). Returns 0, or -1 with errno set (EFBIG when the
 * file is larger than max). */
int spool_list_read_file(const char *path, size_t max, char **out,
    size_t *len);

#endif

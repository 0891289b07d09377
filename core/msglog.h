/*
 * msglog.h - per-message logs, as Exim keeps them in
 * <spool_directory>/msglog/<id> (msglog/<c>/<id> with
 * split_spool_directory, c being the sixth character of the id).
 *
 * Each main log line of a message is copied to its file as
 * "YYYY-MM-DD HH:MM:SS <text>", in the forms Exim's message logs use:
 * the arrival as "Received from <the rest of the "<=" line>", a
 * delivery as "<address>: <transport> transport succeeded", a deferral
 * or failure as the main log line without its "==" or "**" flag, and
 * freezing as "*** Frozen ...". The arrival line creates the file;
 * other lines are only appended to an existing one. "Completed" is not
 * copied: the file goes with the message's other spool files. -Mvl
 * prints the file.
 *
 * Thread use: call msglog_enable() before messages are logged. Each
 * line is written by the thread that logs it, with one append, so lines
 * from different threads do not mix.
 */
#ifndef SLUICE_MSGLOG_H
#define SLUICE_MSGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

/* Bytes of spool_directory that msglog_enable() accepts. */
#define MSGLOG_DIRECTORY_MAX	4000

/*
 * Starts copying message lines into msglog files under spool_directory
 * (copied). Returns 0, or -1 when the path is too long. A later call
 * replaces the folder.
 */
int msglog_enable(const char *spool_directory, bool split);

/* Stops copying; for tests and processes that only read. */
void msglog_disable(void);

/*
 * Turns a main log line of a message into its message log form, in
 * out (size bytes). Returns false when the line is not copied.
 */
bool msglog_format(const char *text, char *out, size_t size);

#endif

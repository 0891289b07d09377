/*
 * log.h - mainlog, rejectlog and paniclog in Exim's format.
 *
 * Every line starts "YYYY-MM-DD HH:MM:SS " (local time), then "[pid] "
 * when the pid selector is on, then the message id and a space when the
 * line is about a message. Files follow log_file_path (a path with %s
 * for main/reject/panic, and/or "syslog"); the default is
 * <spool_directory>/log/%slog. A file moved away by logrotate is noticed
 * by its inode and reopened before the next write.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "config.h"
#include "util.h"

enum log_target {
	LOG_MAIN = 1,
	LOG_REJECT = 2,
	LOG_PANIC = 4,
};

/*
 * Reads log_file_path, spool_directory and log_selector from config.
 * Returns 0, or -1 with *error set (caller frees) for an unknown selector
 * name or a bad path list. Files are opened on first write.
 */
int log_configure(const struct config *config, char **error);

/* Writes one line to each target; msgid may be NULL. */
void log_write(unsigned targets, const char *msgid, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
void log_vwrite(unsigned targets, const char *msgid, const char *fmt,
    va_list ap) SLUICE_PRINTF(3, 0);

/*
 * Writes a line to the panic log when the configuration could not be
 * loaded: uses whatever config holds (defaults where it failed). Never
 * fails; a panic log that cannot be written is reported on stderr.
 */
void log_panic_early(const struct config *config, const char *message);

/* Closes the log files; the next write reopens them. */
void log_close(void);

#endif

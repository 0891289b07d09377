/*
 * log.h - mainlog, rejectlog and paniclog in Exim's format.
 *
 * Every line starts with "YYYY-MM-DD HH:MM:SS " in local time. The
 * millisec selector adds ".mmm" before the space, and the pid selector
 * adds "[pid] " after it. A line about a message continues with the
 * message id and a space. Files follow log_file_path (a path with %s for
 * main/reject/panic, and/or "syslog"); the default is
 * <spool_directory>/log/%slog. A file moved away by logrotate is noticed
 * by its inode and reopened before the next write.
 *
 * The Exim-format message lines (arrivals, deliveries, ...) are built in
 * log_line.h; this module writes lines and keeps the selectors.
 *
 * All functions may be called from any thread. Until log_configure()
 * succeeds, lines go to stderr.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "config.h"
#include "util.h"

enum log_target {
	LOG_MAIN = 1,
	LOG_REJECT = 2,
	LOG_PANIC = 4,
};

/*
 * Exim's log selectors, named as in current Exim sources
 * (src/src/macros.h) with LOG_SEL_ in front.
 * All of them are accepted in log_selector, so existing Exim settings
 * keep working; those for features sluice does not have yet change
 * nothing.
 */
enum log_sel {
	LOG_SEL_8BITMIME,
	LOG_SEL_ACL_WARN_SKIPPED,
	LOG_SEL_ADDRESS_REWRITE,
	LOG_SEL_ALL_PARENTS,
	LOG_SEL_ARGUMENTS,
	LOG_SEL_CONNECTION_ID,
	LOG_SEL_CONNECTION_REJECT,
	LOG_SEL_DELAY_DELIVERY,
	LOG_SEL_DELIVER_TIME,
	LOG_SEL_DELIVERY_SIZE,
	LOG_SEL_DKIM,
	LOG_SEL_DKIM_VERBOSE,
	LOG_SEL_DMARC,
	LOG_SEL_DMARC_VERBOSE,
	LOG_SEL_DNSLIST_DEFER,
	LOG_SEL_DNSSEC,
	LOG_SEL_DSN,
	LOG_SEL_ETRN,
	LOG_SEL_HOST_LOOKUP_FAILED,
	LOG_SEL_IDENT_TIMEOUT,
	LOG_SEL_INCOMING_INTERFACE,
	LOG_SEL_INCOMING_PORT,
	LOG_SEL_LOST_INCOMING_CONNECTION,
	LOG_SEL_MILLISEC,
	LOG_SEL_MSG_ID,
	LOG_SEL_MSG_ID_CREATED,
	LOG_SEL_OUTGOING_INTERFACE,
	LOG_SEL_OUTGOING_PORT,
	LOG_SEL_PID,
	LOG_SEL_PIPELINING,
	LOG_SEL_PROTOCOL_DETAIL,
	LOG_SEL_PROXY,
	LOG_SEL_QUEUE_RUN,
	LOG_SEL_QUEUE_TIME,
	LOG_SEL_QUEUE_TIME_EXCLUSIVE,
	LOG_SEL_QUEUE_TIME_OVERALL,
	LOG_SEL_RECEIVE_TIME,
	LOG_SEL_RECEIVED_RECIPIENTS,
	LOG_SEL_RECEIVED_SENDER,
	LOG_SEL_REJECTED_HEADER,
	LOG_SEL_RETRY_DEFER,
	LOG_SEL_RETURN_PATH_ON_DELIVERY,
	LOG_SEL_SENDER_ON_DELIVERY,
	LOG_SEL_SENDER_VERIFY_FAIL,
	LOG_SEL_SIZE_REJECT,
	LOG_SEL_SKIP_DELIVERY,
	LOG_SEL_SMTP_CONFIRMATION,
	LOG_SEL_SMTP_CONNECTION,
	LOG_SEL_SMTP_INCOMPLETE_TRANSACTION,
	LOG_SEL_SMTP_MAILAUTH,
	LOG_SEL_SMTP_NO_MAIL,
	LOG_SEL_SMTP_PROTOCOL_ERROR,
	LOG_SEL_SMTP_SYNTAX_ERROR,
	LOG_SEL_SPF,
	LOG_SEL_SPF_VERBOSE,
	LOG_SEL_SUBJECT,
	LOG_SEL_TLS_CERTIFICATE_VERIFIED,
	LOG_SEL_TLS_CIPHER,
	LOG_SEL_TLS_ON_CONNECT,
	LOG_SEL_TLS_PEERDN,
	LOG_SEL_TLS_RESUMPTION,
	LOG_SEL_TLS_SNI,
	LOG_SEL_UNKNOWN_IN_LIST,
	LOG_SEL_COUNT
};

/* Maximum length of a line's text after the prefix. Longer text is cut
 * and ends with LOG_TRUNCATED_MARK. */
#define LOG_TEXT_MAX		8192
/* Maximum length of the prefix: timestamp, "[pid] " and message id. */
#define LOG_PREFIX_MAX		80
/* Ends every text, field or line that had to be cut. */
#define LOG_TRUNCATED_MARK	"[...]"

/*
 * Reads log_file_path, spool_directory, log_selector and exim_user from
 * config. Relative paths are made absolute against the current
 * directory, so a daemon that later changes to / keeps its logs. Returns
 * 0, or -1 with *error set (caller frees) for an unknown selector name or
 * a bad path list; the previous settings then stay. Files are opened on
 * first write. When running as root, created files and directories are
 * given to exim_user.
 */
int log_configure(const struct config *config, char **error);

/*
 * Sets the selectors from an Exim log_selector string: Exim's defaults,
 * changed by "+name" and "-name" items ("+all", "-all" for every
 * selector), separated by white space. Returns 0, or -1 with *error set
 * (caller frees) and nothing changed.
 */
int log_set_selector(const char *text, char **error);

/* True if the selector is on. */
bool log_selected(enum log_sel sel);

/*
 * Writes one line to each target; msgid may be NULL. Text after a
 * newline goes only to the reject log, where Exim puts the rejected
 * message's headers below the line. The main and panic logs and stderr
 * get the first line only. Text longer than LOG_TEXT_MAX is cut.
 * Untrusted parts of the text must pass through log_line_escape() first.
 */
void log_write(unsigned targets, const char *msgid, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
void log_vwrite(unsigned targets, const char *msgid, const char *fmt,
    va_list ap) SLUICE_PRINTF(3, 0);
/* As log_write(), with text that needs no formatting. */
void log_write_text(unsigned targets, const char *msgid, const char *text);

/*
 * Hands every line to fn instead of writing it anywhere. -bh uses it to
 * show what it would log while logging nothing. fn gets the targets, the
 * message id (or NULL) and the text without the date prefix. It runs
 * under the log lock, so it must not log. NULL restores normal writing.
 */
typedef void (*log_divert_fn)(unsigned targets, const char *msgid,
    const char *text);
void log_set_divert(log_divert_fn fn);

/*
 * Also hands every main log line of a message, once written, to fn with
 * the message id, the time of the line and the text without the prefix
 * (all borrowed for the call); the per-message logs use it. fn runs on
 * the thread that logs, outside the log lock. Not called for diverted
 * lines. NULL removes it.
 */
typedef void (*log_message_fn)(const char *msgid, const struct timeval *tv,
    const char *text);
void log_set_message_hook(log_message_fn fn);

/*
 * A second slot like the message hook, called after it with the same
 * arguments, for -v: the queue tools show the lines of the messages a
 * run or forced delivery touches. NULL removes it.
 */
void log_set_watch_hook(log_message_fn fn);

/*
 * Writes the line prefix for time tv and msgid (may be NULL) into buf,
 * with the current selectors. Returns its length; size must be at least
 * LOG_PREFIX_MAX.
 */
size_t log_format_prefix(char *buf, size_t size, const struct timeval *tv,
    const char *msgid);

/*
 * Writes a line to the panic log when the configuration could not be
 * loaded. It uses the paths in config as far as they were read (config
 * may be NULL), and the default log path if log_file_path is invalid.
 * Never fails: a panic log that cannot be written is reported on stderr.
 */
void log_panic_early(const struct config *config, const char *message);

/* Number of lines that could not be written since start-up. */
uint64_t log_write_failures(void);

/*
 * Opens (creating when missing) the three log files now, so that a
 * daemon started as root creates them, owned by exim_user, before it
 * drops privileges. Returns 0, or -1 with *error set (caller frees).
 */
int log_open_files(char **error);

/* Longest syslog tag that -L accepts, as in Exim. */
#define LOG_SYSLOG_TAG_MAX	32

/*
 * Makes tag (copied) the syslog ident and sends every later
 * log_configure() to syslog only, as log_file_path = syslog does (-L).
 * Returns 0, or -1 when tag is empty or longer than LOG_SYSLOG_TAG_MAX.
 */
int log_force_syslog(const char *tag);

/* Closes the log files; the next write reopens them. */
void log_close(void);

#endif

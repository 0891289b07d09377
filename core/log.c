/*
 * log.c - writing mainlog, rejectlog and paniclog (see log.h).
 *
 * Each line is built in full (prefix, text, newline) and written with
 * one write(2) on a descriptor opened with O_APPEND, so lines from
 * several processes never interleave. Before each write the path is
 * stat()ed, as Exim does. When logrotate has renamed or removed the file,
 * the inode no longer matches, so the file is reopened. A missing file
 * is created with mode 0640, and missing directories with mode 0750.
 *
 * A line that cannot be written is counted. The first failure of a run
 * is reported on stderr and in the panic log; once a write to that file
 * works again, a line there says how many lines were lost. Nothing in
 * this module is fatal.
 *
 * One mutex guards the destinations and open files, so any thread may
 * log. The selectors live in log_selector.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "util.h"

enum log_kind { KIND_MAIN, KIND_REJECT, KIND_PANIC, KIND_COUNT };

static const char *const kind_names[KIND_COUNT] = {
	"main", "reject", "panic",
};
static const int kind_priorities[KIND_COUNT] = {
	LOG_INFO, LOG_NOTICE, LOG_ALERT,
};

/* Destinations of log lines, read from log_file_path. */
struct log_destination {
	bool to_syslog;
	char *file_template;	/* absolute path with %s, or NULL */
	bool change_owner;	/* give created files to uid:gid */
	uid_t uid;
	gid_t gid;
};

struct log_file {
	int fd;			/* -1 while closed */
	dev_t dev;
	ino_t ino;
	char path[PATH_MAX];	/* of the open file */
	uint64_t lost;		/* lines lost since the last good write */
	int last_errno;		/* of the last failure; 0 for a short write */
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool configured;				/* under log_lock */
static struct log_destination destination;	/* under log_lock */
static struct log_file files[KIND_COUNT] = {	/* under log_lock */
	[0 ... KIND_COUNT - 1] = { .fd = -1 },
};
static bool syslog_open;			/* under log_lock */
/* The syslog ident; openlog() keeps the pointer, so it is a buffer that
 * changes only while syslog is closed. */
static char syslog_tag[LOG_SYSLOG_TAG_MAX + 1] = "sluice";	/* log_lock */
static bool syslog_forced;			/* under log_lock: -L */
static log_divert_fn divert;			/* under log_lock */
static _Atomic(log_message_fn) message_hook;
static _Atomic(log_message_fn) watch_hook;

static _Atomic uint64_t write_failures;

static void log_file_write(struct log_file *file,
    const struct log_destination *dest, enum log_kind kind,
    const struct tm *tm, const char *line, size_t len, const char *prefix);

/* Destinations. */

static void
log_destination_free(struct log_destination *dest)
{
	free(dest->file_template);
	dest->file_template = NULL;
}

/* Checks the % sequences of a log file path: exactly one %s, and %D, %M
 * or %% elsewhere. */
static int
log_check_template(const char *path, char **error)
{
	int names = 0;

	for (const char *p = path; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == 's')
			names++;
		else if (*p != 'D' && *p != 'M' && *p != '%') {
			*error = xasprintf("log_file_path: \"%s\" contains %%%c; "
			    "only %%s, %%D, %%M and %%%% are allowed", path,
			    *p != '\0' ? *p : ' ');
			return -1;
		}
	}
	if (names != 1) {
		*error = xasprintf("log_file_path: \"%s\" must contain %%s "
		    "exactly once, for main, reject and panic", path);
		return -1;
	}
	/* Room for the longest name ("reject") and a date ("20250314"). */
	if (strlen(path) + 14 >= PATH_MAX) {
		*error = xasprintf("log_file_path: \"%.64s...\" is longer than "
		    "%d characters", path, PATH_MAX - 15);
		return -1;
	}
	return 0;
}

/* Returns path made absolute against the current directory; the caller
 * frees it. */
static char *
log_absolute_path(const char *path, char **error)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return xstrdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		*error = xasprintf("log_file_path: cannot make \"%s\" absolute: "
		    "cannot get the current directory: %s", path,
		    strerror(errno));
		return NULL;
	}
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	return xasprintf("%s/%s", cwd, path);
}

/* Sets the file template of dest from one log_file_path item; an empty
 * item means the default path, as in Exim. */
static int
log_set_file(struct log_destination *dest, const char *value,
    const char *spool_directory, char **error)
{
	char *path;

	if (*value == '\0' && (spool_directory == NULL ||
	    *spool_directory == '\0')) {
		*error = xstrdup("log_file_path: the default log path needs "
		    "spool_directory, which is not set");
		return -1;
	}
	path = *value == '\0' ? xasprintf("%s/log/%%slog", spool_directory) :
	    xstrdup(value);
	if (log_check_template(path, error) == 0)
		dest->file_template = log_absolute_path(path, error);
	free(path);
	return dest->file_template != NULL ? 0 : -1;
}

/* Sets *dest from a log_file_path list (empty or NULL for the
 * default). */
static int
log_parse_path(const char *list, const char *spool_directory,
    struct log_destination *dest, char **error)
{
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX];
	const char *value;
	int count = 0;

	memset(dest, 0, sizeof(*dest));
	config_list_init(&iter, list != NULL ? list : "");
	while ((value = config_list_next(&iter, item, sizeof(item))) != NULL) {
		if (++count > 2) {
			*error = xstrdup("log_file_path has more than two "
			    "items; give one file path and/or syslog");
			goto fail;
		}
		if (strcmp(value, "syslog") == 0) {
			dest->to_syslog = true;
			continue;
		}
		if (dest->file_template != NULL) {
			*error = xstrdup("log_file_path names two file paths; "
			    "give one file path and/or syslog");
			goto fail;
		}
		if (log_set_file(dest, value, spool_directory, error) != 0)
			goto fail;
	}
	if (iter.error) {
		*error = xasprintf("log_file_path: an item is longer than %zu "
		    "characters", sizeof(item) - 1);
		goto fail;
	}
	if (count == 0 && log_set_file(dest, "", spool_directory, error) != 0)
		goto fail;
	return 0;

fail:
	log_destination_free(dest);
	return -1;
}

/* Sets the owner of created files when running as root. */
static void
log_find_owner(const struct config *config, struct log_destination *dest)
{
	struct passwd *pw;
	struct group *gr;

	if (geteuid() != 0 || config->exim_user == NULL ||
	    config->exim_user[0] == '\0')
		return;
	/* An unknown user is reported by the daemon, which needs it too;
	 * until then files stay root's. */
	if ((pw = getpwnam(config->exim_user)) == NULL)
		return;
	dest->change_owner = true;
	dest->uid = pw->pw_uid;
	dest->gid = pw->pw_gid;
	if (config->exim_group != NULL && config->exim_group[0] != '\0' &&
	    (gr = getgrnam(config->exim_group)) != NULL)
		dest->gid = gr->gr_gid;
}

static void
log_close_files(void)
{
	for (int i = 0; i < KIND_COUNT; i++) {
		if (files[i].fd >= 0)
			close(files[i].fd);
		files[i].fd = -1;
	}
}

static void
log_fatal_hook(const char *message)
{
	log_write(LOG_MAIN | LOG_PANIC, NULL, "%s", message);
}

int
log_configure(const struct config *config, char **error)
{
	struct log_destination dest;

	if (log_parse_path(config->log_file_path, config->spool_directory,
	    &dest, error) != 0)
		return -1;
	if (log_set_selector(config->log_selector, error) != 0) {
		log_destination_free(&dest);
		return -1;
	}
	log_find_owner(config, &dest);

	pthread_mutex_lock(&log_lock);
	/* -L stands for log_file_path = syslog, in every configuration
	 * this process loads. */
	if (syslog_forced) {
		log_destination_free(&dest);
		dest.to_syslog = true;
	}
	log_close_files();
	log_destination_free(&destination);
	destination = dest;
	if (destination.to_syslog && !syslog_open) {
		openlog(syslog_tag, LOG_PID, LOG_MAIL);
		syslog_open = true;
	} else if (!destination.to_syslog && syslog_open) {
		closelog();
		syslog_open = false;
	}
	configured = true;
	pthread_mutex_unlock(&log_lock);

	fatal_set_hook(log_fatal_hook);
	return 0;
}

int
log_force_syslog(const char *tag)
{
	size_t len = strlen(tag);

	if (len == 0 || len > LOG_SYSLOG_TAG_MAX)
		return -1;
	pthread_mutex_lock(&log_lock);
	if (syslog_open) {
		closelog();
		syslog_open = false;
	}
	memcpy(syslog_tag, tag, len + 1);
	syslog_forced = true;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void
log_close(void)
{
	pthread_mutex_lock(&log_lock);
	log_close_files();
	if (syslog_open) {
		closelog();
		syslog_open = false;
	}
	pthread_mutex_unlock(&log_lock);
}

uint64_t
log_write_failures(void)
{
	return atomic_load(&write_failures);
}

/* Files. */

/*
 * Expands the template for one log: %s to the log's name, %D and %M to
 * the date of tm (dropped for the panic log, which Exim never dates),
 * %% to %. Returns 0, or -1 if out is too small.
 */
static int
log_expand_path(const char *template, enum log_kind kind, const struct tm *tm,
    char *out, size_t size)
{
	size_t len = 0;

	for (const char *p = template; *p != '\0'; p++) {
		char piece[40];	/* a date of any int fields fits */
		const char *add = piece;

		if (*p != '%' || p[1] == '\0') {
			piece[0] = *p;
			piece[1] = '\0';
		} else {
			p++;
			if (*p == 's')
				add = kind_names[kind];
			else if (*p == 'D' && kind != KIND_PANIC)
				snprintf(piece, sizeof(piece), "%04d%02d%02d",
				    tm->tm_year + 1900, tm->tm_mon + 1,
				    tm->tm_mday);
			else if (*p == 'M' && kind != KIND_PANIC)
				snprintf(piece, sizeof(piece), "%04d%02d",
				    tm->tm_year + 1900, tm->tm_mon + 1);
			else if (*p == '%')
				strcpy(piece, "%");
			else
				piece[0] = '\0';
		}
		if (len + strlen(add) >= size)
			return -1;
		memcpy(out + len, add, strlen(add));
		len += strlen(add);
	}
	out[len] = '\0';
	return 0;
}

/* Creates the missing directories above path, mode 0750. */
static int
log_make_directories(const char *path, const struct log_destination *dest)
{
	char dir[PATH_MAX];

	if (strlcpy_s(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *slash = strchr(dir + 1, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(dir, 0750) == 0) {
			if (dest->change_owner &&
			    chown(dir, dest->uid, dest->gid) != 0) {
				/* Root can still write to it. The daemon,
				 * once it runs as exim_user, cannot, and
				 * reports that when it reopens the log. */
			}
		} else if (errno != EEXIST) {
			return -1;
		}
		*slash = '/';
	}
	return 0;
}

/* Opens path for appending, creating it (and its directories) if it is
 * missing. Returns 0, or -1 with errno set. */
static int
log_file_open(struct log_file *file, const struct log_destination *dest,
    const char *path)
{
	const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY;
	struct stat st;
	bool created = false;
	int fd = -1;

	for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
		fd = open(path, flags | O_CREAT | O_EXCL, 0640);
		if (fd >= 0) {
			created = true;
		} else if (errno == EEXIST) {
			/* ENOENT here means the file was rotated
			 * away since, so try again. */
			fd = open(path, flags);
			if (fd < 0 && errno != ENOENT)
				return -1;
		} else if (errno == ENOENT && attempt == 0) {
			if (log_make_directories(path, dest) != 0)
				return -1;
		} else {
			return -1;
		}
	}
	if (fd < 0)
		return -1;

	if (created) {
		/* The umask may have removed bits that Exim's tools expect;
		 * a failure leaves a file that works but is less readable. */
		if (fchmod(fd, 0640) != 0 ||
		    (dest->change_owner &&
		    fchown(fd, dest->uid, dest->gid) != 0)) {
			/* As in log_make_directories(). */
		}
	}
	if (fstat(fd, &st) != 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	file->fd = fd;
	file->dev = st.st_dev;
	file->ino = st.st_ino;
	strlcpy_s(file->path, path, sizeof(file->path));
	return 0;
}

/* Writes all of buf with one write(2); returns 0, or -1 with errno set
 * (0 for a short write). */
static int
log_write_once(int fd, const char *buf, size_t len)
{
	ssize_t n;

	do {
		n = write(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = 0;
		return -1;
	}
	return 0;
}

static const char *
log_error_text(int err)
{
	return err != 0 ? strerror(err) : "short write";
}

/* Counts a lost line; the first loss of a run is reported on stderr and,
 * for the main and reject logs, in the panic log. */
static void
log_file_failed(struct log_file *file, const struct log_destination *dest,
    enum log_kind kind, const struct tm *tm, const char *path, int err,
    const char *prefix)
{
	atomic_fetch_add(&write_failures, 1);
	file->last_errno = err;
	if (file->lost++ > 0)
		return;

	fprintf(stderr, "sluice: cannot write to log file %s: %s; further "
	    "lost lines are counted and reported there later\n", path,
	    log_error_text(err));
	if (kind != KIND_PANIC && dest == &destination) {
		char line[PATH_MAX + LOG_PREFIX_MAX + 128];
		int len = snprintf(line, sizeof(line), "%scannot write to log "
		    "file %s: %s\n", prefix, path, log_error_text(err));

		if (len > 0 && (size_t)len < sizeof(line))
			log_file_write(&files[KIND_PANIC], dest, KIND_PANIC, tm,
			    line, (size_t)len, prefix);
	}
}

/*
 * Writes one complete line (with its newline) to the file of kind,
 * reopening the file first if its path now names another inode or
 * another date. prefix is the timestamp and pid part, for the report of
 * lost lines.
 */
static void
log_file_write(struct log_file *file, const struct log_destination *dest,
    enum log_kind kind, const struct tm *tm, const char *line, size_t len,
    const char *prefix)
{
	char path[PATH_MAX];
	struct stat st;

	if (log_expand_path(dest->file_template, kind, tm, path,
	    sizeof(path)) != 0) {
		log_file_failed(file, dest, kind, tm, dest->file_template,
		    ENAMETOOLONG, prefix);
		return;
	}
	if (file->fd >= 0 && (strcmp(path, file->path) != 0 ||
	    stat(path, &st) != 0 || st.st_ino != file->ino ||
	    st.st_dev != file->dev)) {
		close(file->fd);
		file->fd = -1;
	}
	if (file->fd < 0 && log_file_open(file, dest, path) != 0) {
		log_file_failed(file, dest, kind, tm, path, errno, prefix);
		return;
	}

	if (file->lost > 0) {
		char report[LOG_PREFIX_MAX + 160];
		int n = snprintf(report, sizeof(report), "%s%llu log lines "
		    "could not be written to this file (last error: %s)\n",
		    prefix, (unsigned long long)file->lost,
		    log_error_text(file->last_errno));

		if (n > 0 && (size_t)n < sizeof(report) &&
		    log_write_once(file->fd, report, (size_t)n) == 0)
			file->lost = 0;
	}
	if (log_write_once(file->fd, line, len) != 0)
		log_file_failed(file, dest, kind, tm, path, errno, prefix);
}

int
log_open_files(char **error)
{
	struct timeval tv;
	struct tm tm;
	char path[PATH_MAX];
	int rc = 0;

	clock_now_tv(&tv);
	localtime_r(&tv.tv_sec, &tm);
	pthread_mutex_lock(&log_lock);
	for (int kind = 0; kind < KIND_COUNT && configured &&
	    destination.file_template != NULL; kind++) {
		struct log_file *file = &files[kind];

		if (log_expand_path(destination.file_template, kind, &tm, path,
		    sizeof(path)) != 0) {
			*error = xasprintf("log file path %s is too long",
			    destination.file_template);
			rc = -1;
			break;
		}
		if (file->fd < 0 && log_file_open(file, &destination, path) != 0) {
			*error = xasprintf("cannot open log file %s: %s", path,
			    strerror(errno));
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&log_lock);
	return rc;
}

/* Sends text to syslog, one message per line of it. */
static void
log_syslog(enum log_kind kind, const char *line)
{
	const char *p = line;

	while (*p != '\0') {
		size_t len = strcspn(p, "\n");

		if (len > 0)
			syslog(LOG_MAIL | kind_priorities[kind], "%.*s",
			    (int)len, p);
		p += len;
		if (*p == '\n')
			p++;
	}
}

/* Writing lines. */

static size_t
log_format_time(char *buf, size_t size, const struct timeval *tv,
    struct tm *tm)
{
	time_t seconds = tv->tv_sec;
	size_t len;
	int n;

	if (localtime_r(&seconds, tm) == NULL)
		memset(tm, 0, sizeof(*tm));
	n = snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d",
	    tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
	    tm->tm_min, tm->tm_sec);
	len = n > 0 && (size_t)n < size ? (size_t)n : 0;
	if (log_selected(LOG_SEL_MILLISEC)) {
		n = snprintf(buf + len, size - len, ".%03d",
		    (int)(tv->tv_usec / 1000));
		len += n > 0 && (size_t)n < size - len ? (size_t)n : 0;
	}
	n = snprintf(buf + len, size - len, " ");
	len += n > 0 && (size_t)n < size - len ? (size_t)n : 0;
	if (log_selected(LOG_SEL_PID)) {
		n = snprintf(buf + len, size - len, "[%ld] ", (long)getpid());
		len += n > 0 && (size_t)n < size - len ? (size_t)n : 0;
	}
	return len;
}

/* Appends "<msgid> " to a prefix of length len. Ids are 23 characters
 * at most; the cap keeps the prefix bounded whatever the caller passes. */
static size_t
log_append_msgid(char *buf, size_t size, size_t len, const char *msgid)
{
	int n;

	if (msgid == NULL)
		return len;
	n = snprintf(buf + len, size - len, "%.23s ", msgid);
	return len + (n > 0 && (size_t)n < size - len ? (size_t)n : 0);
}

size_t
log_format_prefix(char *buf, size_t size, const struct timeval *tv,
    const char *msgid)
{
	struct tm tm;
	size_t len;

	SLUICE_ASSERT(size >= LOG_PREFIX_MAX);
	len = log_format_time(buf, size, tv, &tm);
	return log_append_msgid(buf, size, len, msgid);
}

/*
 * Builds the whole line into line (size LOG_PREFIX_MAX + LOG_TEXT_MAX +
 * 2) from the prefix and the first line of text, or all of it when
 * whole is true. Returns the length including the final newline.
 */
static size_t
log_build_line(char *line, const char *prefix, const char *text, bool whole)
{
	size_t prefix_len = strlen(prefix);
	size_t text_len = whole ? strlen(text) : strcspn(text, "\n");
	bool cut = text_len > LOG_TEXT_MAX;

	if (cut)
		text_len = LOG_TEXT_MAX;
	memcpy(line, prefix, prefix_len);
	memcpy(line + prefix_len, text, text_len);
	if (cut)
		memcpy(line + prefix_len + text_len -
		    strlen(LOG_TRUNCATED_MARK), LOG_TRUNCATED_MARK,
		    strlen(LOG_TRUNCATED_MARK));
	line[prefix_len + text_len] = '\n';
	line[prefix_len + text_len + 1] = '\0';
	return prefix_len + text_len + 1;
}

void
log_write_text(unsigned targets, const char *msgid, const char *text)
{
	static const unsigned kind_targets[KIND_COUNT] = {
		LOG_MAIN, LOG_REJECT, LOG_PANIC,
	};
	char time_prefix[LOG_PREFIX_MAX], prefix[LOG_PREFIX_MAX];
	char line[LOG_PREFIX_MAX + LOG_TEXT_MAX + 2];
	struct timeval tv;
	struct tm tm;
	size_t len;

	clock_now_tv(&tv);
	len = log_format_time(time_prefix, sizeof(time_prefix), &tv, &tm);
	memcpy(prefix, time_prefix, len + 1);
	log_append_msgid(prefix, sizeof(prefix), len, msgid);

	pthread_mutex_lock(&log_lock);
	if (divert != NULL) {
		divert(targets, msgid, text);
		pthread_mutex_unlock(&log_lock);
		return;
	}
	if (!configured) {
		len = log_build_line(line, prefix, text,
		    (targets & LOG_REJECT) != 0);
		fwrite(line, 1, len, stderr);
		pthread_mutex_unlock(&log_lock);
		return;
	}
	for (int kind = 0; kind < KIND_COUNT; kind++) {
		if ((targets & kind_targets[kind]) == 0)
			continue;
		/* Only the reject log gets the lines after the first, as in
		 * Exim, where they hold the rejected message's headers. */
		len = log_build_line(line, prefix, text, kind == KIND_REJECT);
		if (destination.file_template != NULL)
			log_file_write(&files[kind], &destination, kind, &tm,
			    line, len, time_prefix);
		if (destination.to_syslog) {
			line[len - 1] = '\0';
			log_syslog(kind, line);
		}
	}
	pthread_mutex_unlock(&log_lock);

	/* Outside the lock, so the hook may take its time (and log). */
	if ((targets & LOG_MAIN) != 0 && msgid != NULL) {
		log_message_fn hook = atomic_load(&message_hook);
		log_message_fn watch = atomic_load(&watch_hook);

		if (hook != NULL)
			hook(msgid, &tv, text);
		if (watch != NULL)
			watch(msgid, &tv, text);
	}
}

void
log_set_message_hook(log_message_fn fn)
{
	atomic_store(&message_hook, fn);
}

void
log_set_watch_hook(log_message_fn fn)
{
	atomic_store(&watch_hook, fn);
}

void
log_set_divert(log_divert_fn fn)
{
	pthread_mutex_lock(&log_lock);
	divert = fn;
	pthread_mutex_unlock(&log_lock);
}

void
log_vwrite(unsigned targets, const char *msgid, const char *fmt, va_list ap)
{
	char text[LOG_TEXT_MAX + 1];
	int n;

	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		strlcpy_s(text, "(log message could not be formatted)",
		    sizeof(text));
	else if ((size_t)n >= sizeof(text))
		memcpy(text + sizeof(text) - sizeof(LOG_TRUNCATED_MARK),
		    LOG_TRUNCATED_MARK, sizeof(LOG_TRUNCATED_MARK));
	log_write_text(targets, msgid, text);
}

void
log_write(unsigned targets, const char *msgid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(targets, msgid, fmt, ap);
	va_end(ap);
}

void
log_panic_early(const struct config *config, const char *message)
{
	struct log_destination dest;
	struct log_file file = { .fd = -1 };
	char time_prefix[LOG_PREFIX_MAX];
	char line[LOG_PREFIX_MAX + LOG_TEXT_MAX + 2];
	struct timeval tv;
	struct tm tm;
	char *error = NULL;
	size_t len;

	/* A bad log_file_path falls back to the default under the spool. */
	if (config == NULL || log_parse_path(config->log_file_path,
	    config->spool_directory, &dest, &error) != 0) {
		free(error);
		error = NULL;
		if (config == NULL || log_parse_path(NULL,
		    config->spool_directory, &dest, &error) != 0) {
			fprintf(stderr, "sluice: no panic log to write to (%s); "
			    "the message was: %s\n", error != NULL ? error :
			    "no configuration", message);
			free(error);
			return;
		}
	}

	clock_now_tv(&tv);
	log_format_time(time_prefix, sizeof(time_prefix), &tv, &tm);
	len = log_build_line(line, time_prefix, message, false);
	if (dest.file_template != NULL) {
		uint64_t failures = log_write_failures();

		log_file_write(&file, &dest, KIND_PANIC, &tm, line, len,
		    time_prefix);
		if (file.fd >= 0)
			close(file.fd);
		if (log_write_failures() != failures)
			fprintf(stderr, "sluice: the message was: %s\n", message);
	}
	if (dest.to_syslog) {
		line[len - 1] = '\0';
		pthread_mutex_lock(&log_lock);
		if (!syslog_open)
			openlog(syslog_tag, LOG_PID, LOG_MAIL);
		log_syslog(KIND_PANIC, line);
		if (!syslog_open)
			closelog();
		pthread_mutex_unlock(&log_lock);
	}
	log_destination_free(&dest);
}

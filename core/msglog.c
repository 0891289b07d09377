/*
 * msglog.c - per-message logs (see msglog.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "msglog.h"
#include "msgid.h"
#include "util.h"

/* The folder, set under the lock; the hook copies it under the lock. */
static pthread_mutex_t msglog_lock = PTHREAD_MUTEX_INITIALIZER;
static char msglog_directory[MSGLOG_DIRECTORY_MAX + 1];
static bool msglog_split;
/* Failed appends, counted so that a broken folder does not flood the
 * logs: only the first one of each power of two is reported. */
static atomic_ulong msglog_failures;

/* Copies the first word of text (up to a space) into out. */
static void
msglog_first_word(const char *text, char *out, size_t size)
{
	size_t n = strcspn(text, " ");

	if (n >= size)
		n = size - 1;
	memcpy(out, text, n);
	out[n] = '\0';
}

bool
msglog_format(const char *text, char *out, size_t size)
{
	if (strncmp(text, "<= ", 3) == 0) {
		snprintf(out, size, "Received from %s", text + 3);
	} else if (strncmp(text, "=> ", 3) == 0 ||
	    strncmp(text, "-> ", 3) == 0) {
		const char *transport = strstr(text, " T=");
		char address[1024], name[128];

		msglog_first_word(text + 3, address, sizeof(address));
		if (transport != NULL) {
			msglog_first_word(transport + 3, name, sizeof(name));
			snprintf(out, size, "%s: %s transport succeeded", address,
			    name);
		} else {
			snprintf(out, size, "%s", text + 3);
		}
	} else if (strncmp(text, "== ", 3) == 0 ||
	    strncmp(text, "** ", 3) == 0) {
		snprintf(out, size, "%s", text + 3);
	} else if (strncmp(text, "Frozen", 6) == 0) {
		snprintf(out, size, "*** %s", text);
	} else if (strncmp(text, "Completed", 9) == 0) {
		return false;
	} else {
		snprintf(out, size, "%s", text);
	}
	return true;
}

static void
msglog_write_cb(const char *msgid, const struct timeval *tv,
    const char *text)
{
	char path[MSGLOG_DIRECTORY_MAX + MSGID_SIZE + 16];
	char line[LOG_TEXT_MAX + 64], body[LOG_TEXT_MAX + 32];
	struct tm tm;
	time_t t = tv->tv_sec;
	size_t len;
	ssize_t n;
	int fd;

	if (!msgid_valid(msgid, strlen(msgid)) ||
	    !msglog_format(text, body, sizeof(body)))
		return;
	pthread_mutex_lock(&msglog_lock);
	if (msglog_directory[0] == '\0') {
		pthread_mutex_unlock(&msglog_lock);
		return;
	}
	if (msglog_split)
		snprintf(path, sizeof(path), "%s/msglog/%c/%s",
		    msglog_directory, msgid[5], msgid);
	else
		snprintf(path, sizeof(path), "%s/msglog/%s", msglog_directory,
		    msgid);
	pthread_mutex_unlock(&msglog_lock);

	localtime_r(&t, &tm);
	len = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S ", &tm);
	len += (size_t)snprintf(line + len, sizeof(line) - len, "%s\n", body);
	if (len >= sizeof(line))
		len = sizeof(line) - 1;

	/* Only the arrival creates the file, so a line logged after the
	 * message's files are gone ("removed by root") leaves none. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC |
	    (strncmp(text, "<= ", 3) == 0 ? O_CREAT : 0), 0640);
	if (fd < 0 && errno == ENOENT && strncmp(text, "<= ", 3) != 0)
		return;
	n = fd >= 0 ? write(fd, line, len) : -1;
	if (n < 0 || (size_t)n != len) {
		unsigned long count = atomic_fetch_add(&msglog_failures, 1) + 1;

		/* The hook runs outside the log lock, so logging is safe,
		 * and without a message id it does not come back here. */
		if ((count & (count - 1)) == 0)
			log_write(LOG_MAIN, NULL, "cannot write the message log "
			    "%s: %s (%lu failures so far)", path,
			    n < 0 ? strerror(errno) : "short write", count);
	}
	if (fd >= 0)
		close(fd);
}

int
msglog_enable(const char *spool_directory, bool split)
{
	if (strlen(spool_directory) > MSGLOG_DIRECTORY_MAX)
		return -1;
	pthread_mutex_lock(&msglog_lock);
	strlcpy_s(msglog_directory, spool_directory, sizeof(msglog_directory));
	msglog_split = split;
	pthread_mutex_unlock(&msglog_lock);
	log_set_message_hook(msglog_write_cb);
	return 0;
}

void
msglog_disable(void)
{
	log_set_message_hook(NULL);
	pthread_mutex_lock(&msglog_lock);
	msglog_directory[0] = '\0';
	pthread_mutex_unlock(&msglog_lock);
}

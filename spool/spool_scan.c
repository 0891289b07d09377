/*
 * spool_scan.c - the start-up scan of the spool (see spool_store.h).
 *
 * Both layouts are always scanned: input/ and each of its one-letter
 * sub-directories, so messages written with either split_spool_directory
 * setting are found. Each directory is read as a stream, so memory does
 * not grow with the number of queued messages.
 *
 * What the scan does with each name in a directory:
 *   <id>-H    parse it, with <id>-J applied, and hand it to the caller;
 *             move the message to input/.broken/ when that fails
 *   <id>-D    without <id>-H and not locked: a reception that stopped
 *             before its commit; removed (with its -J, if any)
 *   <id>-J    without -H and -D: left over from a removal; removed
 *   hdr.<id>  a temporary -H from an interrupted commit or rewrite;
 *             removed
 * Anything else is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "spool_header.h"
#include "spool_store.h"
#include "spool_store_private.h"
#include "util.h"

/* Bytes of an untrusted reason kept in a log line. */
#define SCAN_REASON_MAX		400

struct scan {
	struct spool_store *store;
	spool_scan_fn fn;
	void *arg;
	struct spool_scan_result *result;
	const char *dir;	/* absolute */
	const char *rel_dir;	/* relative to spool_directory, for logs */
	bool dir_split;		/* dir is a split sub-directory */
	bool broken_ready;	/* input/.broken exists */
	char **error;
};

/* Copies untrusted text into out with control and non-ASCII bytes as
 * \xNN, cut at SCAN_REASON_MAX bytes with "..." to show it. */
static void
scan_printable(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;

		if (o + 8 >= size || o >= SCAN_REASON_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static char *
scan_path(const struct scan *scan, const char *id, const char *suffix)
{
	return xasprintf("%s/%s%s", scan->dir, id, suffix);
}

static bool
scan_exists(const struct scan *scan, const char *path)
{
	const struct spool_backend *b = scan->store->backend;
	struct stat st;

	return b->stat(b->ctx, path, &st) == 0;
}

/* Reads a whole file of at most max bytes into *out (caller frees; a NUL
 * follows the data). Returns 0, or -1 with errno set (EFBIG when the file
 * is larger than max). */
static int
scan_read_file(const struct spool_backend *b, const char *path, size_t max,
    char **out, size_t *len)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd, saved_errno;

	fd = b->open(b->ctx, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd == -1)
		return -1;
	if (b->fstat(b->ctx, fd, &st) != 0)
		goto fail;
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}

	data = xmalloc((size_t)st.st_size + 1);
	/* Stop at the size fstat gave, so a file that grows is still
	 * bounded. */
	while (got < (size_t)st.st_size) {
		ssize_t n = b->read(b->ctx, fd, data + got,
		    (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	b->close(b->ctx, fd);
	data[got] = '\0';
	*out = data;
	*len = got;
	return 0;

fail:
	saved_errno = errno;
	free(data);
	b->close(b->ctx, fd);
	errno = saved_errno;
	return -1;
}

/* Moves <id>-H, -J and -D from the scanned directory to input/.broken/
 * and logs why. */
static void
scan_move_broken(struct scan *scan, const char *id, const char *name,
    const char *reason)
{
	static const char *const suffixes[] = { "-H", "-J", "-D" };
	struct spool_store *store = scan->store;
	const struct spool_backend *b = store->backend;
	char *broken = xasprintf("%s/input/.broken", store->spool_directory);
	char printable[SCAN_REASON_MAX + 8];

	scan_printable(reason, printable, sizeof(printable));
	if (!scan->broken_ready) {
		if (b->mkdir(b->ctx, broken, SPOOL_DIR_MODE) != 0 &&
		    errno != EEXIST) {
			log_write(LOG_MAIN | LOG_PANIC, NULL,
			    "%s/%s: cannot move to input/.broken: %s "
			    "(the message was skipped: %s)", scan->rel_dir,
			    name, strerror(errno), printable);
			free(broken);
			return;
		}
		scan->broken_ready = true;
	}

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		char *from = scan_path(scan, id, suffixes[i]);
		char *to = xasprintf("%s/%s%s", broken, id, suffixes[i]);

		if (b->rename(b->ctx, from, to) != 0 && errno != ENOENT)
			log_write(LOG_MAIN | LOG_PANIC, NULL,
			    "%s/%s%s: cannot move to input/.broken: %s",
			    scan->rel_dir, id, suffixes[i], strerror(errno));
		free(from);
		free(to);
	}
	log_write(LOG_MAIN | LOG_PANIC, NULL, "%s/%s: moved to input/.broken: %s",
	    scan->rel_dir, name, printable);
	scan->result->broken++;
	free(broken);
}

/* Reads <id>-J into h when there is one. Returns 0, or -1 with *reason
 * set (caller frees). */
static int
scan_apply_journal(struct scan *scan, const char *id, struct spool_header *h,
    char **reason)
{
	const struct spool_backend *b = scan->store->backend;
	char *path = scan_path(scan, id, "-J");
	char *data = NULL, *error = NULL;
	size_t len;
	int rc = 0;

	if (scan_read_file(b, path, SPOOL_JOURNAL_FILE_MAX, &data, &len) != 0) {
		if (errno != ENOENT) {
			*reason = xasprintf("cannot read %s-J: %s", id,
			    strerror(errno));
			rc = -1;
		}
	} else if (spool_journal_apply(h, data, len, &error) != 0) {
		*reason = xasprintf("%s-J: %s", id, error);
		rc = -1;
	}
	free(error);
	free(data);
	free(path);
	return rc;
}

static void
scan_header(struct scan *scan, const char *id, const char *name)
{
	struct spool_store *store = scan->store;
	const struct spool_backend *b = store->backend;
	struct spool_header *h = NULL;
	char *path = scan_path(scan, id, "-H");
	char *data_path = scan_path(scan, id, "-D");
	char *data = NULL, *reason = NULL, *other_dir = NULL, *other = NULL;
	size_t len;

	/* A copy in the expected place wins over one in the other layout. */
	if (scan->dir_split != store->split) {
		other_dir = spool_input_dir(store, id, store->split);
		other = xasprintf("%s/%s-H", other_dir, id);
		if (scan_exists(scan, other)) {
			reason = store->split ?
			    xasprintf("duplicate of input/%c/%s", id[5], name) :
			    xasprintf("duplicate of input/%s", name);
			goto broken;
		}
	}

	if (scan_read_file(b, path, SPOOL_HEADER_FILE_MAX, &data, &len) != 0) {
		if (errno == ENOENT)
			goto out;	/* removed while we listed */
		reason = errno == EFBIG ?
		    xasprintf("larger than %u bytes", SPOOL_HEADER_FILE_MAX) :
		    xasprintf("cannot read: %s", strerror(errno));
		goto broken;
	}
	if (!scan_exists(scan, data_path)) {
		reason = xasprintf("data file %s-D is missing", id);
		goto broken;
	}

	h = xcalloc(1, sizeof(*h));
	if (spool_header_parse(data, len, name, h, &reason) != 0)
		goto broken;
	if (scan_apply_journal(scan, id, h, &reason) != 0)
		goto broken;

	scan->result->messages++;
	scan->fn(scan->arg, id, h);	/* takes ownership of h */
	h = NULL;
	goto out;

broken:
	scan_move_broken(scan, id, name, reason);
out:
	if (h != NULL) {
		spool_header_free(h);
		free(h);
	}
	free(reason);
	free(data);
	free(other);
	free(other_dir);
	free(data_path);
	free(path);
}

static void
scan_remove(struct scan *scan, const char *id, const char *suffix,
    const char *why)
{
	const struct spool_backend *b = scan->store->backend;
	char *path = scan_path(scan, id, suffix);

	if (b->unlink(b->ctx, path) == 0) {
		log_write(LOG_MAIN, NULL, "%s/%s%s: removed: %s", scan->rel_dir,
		    id, suffix, why);
		scan->result->removed++;
	} else if (errno != ENOENT) {
		log_write(LOG_MAIN | LOG_PANIC, NULL,
		    "%s/%s%s: cannot remove: %s", scan->rel_dir, id, suffix,
		    strerror(errno));
	}
	free(path);
}

/* A -D file without -H: a reception that never committed, unless another
 * process still holds its lock and is writing it. */
static void
scan_orphan_data(struct scan *scan, const char *id)
{
	const struct spool_backend *b = scan->store->backend;
	char *header = scan_path(scan, id, "-H");
	char *path = scan_path(scan, id, "-D");
	int fd;

	if (scan_exists(scan, header))
		goto out;
	fd = b->open(b->ctx, path, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd == -1)
		goto out;
	if (b->lock(b->ctx, fd, (off_t)(strlen(id) + 3)) == 0) {
		/* Removed while locked, so no one starts on it meanwhile. */
		scan_remove(scan, id, "-J", "the message has no -H file");
		scan_remove(scan, id, "-D",
		    "no -H file, so its reception did not complete");
	}
	b->close(b->ctx, fd);
out:
	free(path);
	free(header);
}

static void
scan_orphan_journal(struct scan *scan, const char *id)
{
	char *header = scan_path(scan, id, "-H");
	char *data = scan_path(scan, id, "-D");

	if (!scan_exists(scan, header) && !scan_exists(scan, data))
		scan_remove(scan, id, "-J", "the message has no -H or -D file");
	free(data);
	free(header);
}

static int
scan_entry(void *arg, const char *name)
{
	struct scan *scan = arg;
	char id[MSGID_SIZE];
	size_t id_len;

	if (strncmp(name, "hdr.", 4) == 0) {
		const struct spool_backend *b = scan->store->backend;
		char *path = xasprintf("%s/%s", scan->dir, name);

		if (b->unlink(b->ctx, path) == 0) {
			log_write(LOG_MAIN, NULL, "%s/%s: removed: temporary "
			    "file of an interrupted -H write", scan->rel_dir,
			    name);
			scan->result->removed++;
		}
		free(path);
		return 0;
	}

	id_len = msgid_prefix_len(name);
	if (id_len == 0 || strlen(name) != id_len + 2 || name[id_len] != '-')
		return 0;
	memcpy(id, name, id_len);
	id[id_len] = '\0';

	switch (name[id_len + 1]) {
	case 'H':
		scan_header(scan, id, name);
		break;
	case 'D':
		scan_orphan_data(scan, id);
		break;
	case 'J':
		scan_orphan_journal(scan, id);
		break;
	}
	return 0;
}

static int
scan_dir(struct scan *scan, const char *rel_dir, bool dir_split)
{
	struct spool_store *store = scan->store;
	const struct spool_backend *b = store->backend;
	char *dir = xasprintf("%s/%s", store->spool_directory, rel_dir);
	int rc = 0;

	scan->dir = dir;
	scan->rel_dir = rel_dir;
	scan->dir_split = dir_split;
	if (b->list_dir(b->ctx, dir, scan_entry, scan) != 0) {
		/* Sub-directories exist only where split was used. */
		if (!(dir_split && errno == ENOENT)) {
			*scan->error = xasprintf("cannot list %s: %s", dir,
			    strerror(errno));
			rc = -1;
		}
	}
	free(dir);
	return rc;
}

int
spool_store_scan(struct spool_store *store, spool_scan_fn fn, void *arg,
    struct spool_scan_result *result, char **error)
{
	struct scan scan;
	char rel_dir[sizeof("input/x")];

	memset(result, 0, sizeof(*result));
	memset(&scan, 0, sizeof(scan));
	scan.store = store;
	scan.fn = fn;
	scan.arg = arg;
	scan.result = result;
	scan.error = error;

	if (scan_dir(&scan, "input", false) != 0)
		return -1;
	for (size_t i = 0; spool_base62[i] != '\0'; i++) {
		snprintf(rel_dir, sizeof(rel_dir), "input/%c", spool_base62[i]);
		if (scan_dir(&scan, rel_dir, true) != 0)
			return -1;
	}
	return 0;
}

int
spool_store_read_header(struct spool_store *store, const char *id,
    struct spool_header **out, char **error)
{
	const struct spool_backend *b = store->backend;
	struct spool_header *h = NULL;
	char *dir = NULL, *path = NULL, *data = NULL, *journal = NULL;
	size_t len, journal_len;
	int rc = -1;

	*out = NULL;
	if (!msgid_valid(id, strlen(id))) {
		*error = xasprintf("invalid message id \"%.32s\"", id);
		return -1;
	}

	/* The expected layout first, then the other one. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool split = attempt == 0 ? store->split : !store->split;

		free(dir);
		free(path);
		dir = spool_input_dir(store, id, split);
		path = xasprintf("%s/%s-H", dir, id);
		if (scan_read_file(b, path, SPOOL_HEADER_FILE_MAX, &data,
		    &len) == 0 || errno != ENOENT)
			break;
	}
	if (data == NULL) {
		*error = xasprintf("cannot read %s-H: %s", id,
		    errno == EFBIG ? "file too large" : strerror(errno));
		goto out;
	}

	h = xcalloc(1, sizeof(*h));
	if (spool_header_parse(data, len, path, h, error) != 0)
		goto out;

	free(path);
	path = xasprintf("%s/%s-J", dir, id);
	if (scan_read_file(b, path, SPOOL_JOURNAL_FILE_MAX, &journal,
	    &journal_len) == 0) {
		char *journal_error = NULL;

		if (spool_journal_apply(h, journal, journal_len,
		    &journal_error) != 0) {
			*error = xasprintf("%s-J: %s", id, journal_error);
			free(journal_error);
			goto out;
		}
	} else if (errno != ENOENT) {
		*error = xasprintf("cannot read %s-J: %s", id, strerror(errno));
		goto out;
	}

	*out = h;
	h = NULL;
	rc = 0;
out:
	if (h != NULL) {
		spool_header_free(h);
		free(h);
	}
	free(journal);
	free(data);
	free(path);
	free(dir);
	return rc;
}

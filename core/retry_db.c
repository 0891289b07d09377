/*
 * retry_db.c - retry state in Berkeley DB; see retry_db.h.
 *
 * Record layout (all integers big-endian):
 *   "SRH1"  magic and version
 *   3 x 64  first_failed, last_try, next_try
 *   8       expired (0 or 1)
 *   2 x 32  error, more_error (signed)
 *   16      text length, then the text without a NUL
 */
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retry_db.h"
#include "util.h"

#define RETRY_DB_MAGIC	"SRH1"

struct retry_db {
	DB *db;
	int lock_fd;
};

static void
retry_db_put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
retry_db_get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
retry_db_put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint32_t
retry_db_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

size_t
retry_db_encode(const struct retry_db_record *record, unsigned char *buf)
{
	size_t text_len = strnlen(record->text, RETRY_DB_TEXT_MAX - 1);
	unsigned char *p = buf;

	memcpy(p, RETRY_DB_MAGIC, 4);
	p += 4;
	retry_db_put_u64(p, (uint64_t)(int64_t)record->first_failed);
	retry_db_put_u64(p + 8, (uint64_t)(int64_t)record->last_try);
	retry_db_put_u64(p + 16, (uint64_t)(int64_t)record->next_try);
	p += 24;
	*p++ = record->expired ? 1 : 0;
	retry_db_put_u32(p, (uint32_t)record->error);
	retry_db_put_u32(p + 4, (uint32_t)record->more_error);
	p += 8;
	*p++ = (unsigned char)(text_len >> 8);
	*p++ = (unsigned char)(text_len & 0xff);
	memcpy(p, record->text, text_len);
	return (size_t)(p - buf) + text_len;
}

int
retry_db_decode(const unsigned char *data, size_t size,
    struct retry_db_record *out)
{
	const size_t fixed = 4 + 24 + 1 + 8 + 2;
	size_t text_len;

	if (size < fixed || memcmp(data, RETRY_DB_MAGIC, 4) != 0)
		return -1;
	text_len = (size_t)data[fixed - 2] << 8 | data[fixed - 1];
	if (text_len >= RETRY_DB_TEXT_MAX || size != fixed + text_len ||
	    data[28] > 1)
		return -1;
	if (memchr(data + fixed, '\0', text_len) != NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->first_failed = (time_t)(int64_t)retry_db_get_u64(data + 4);
	out->last_try = (time_t)(int64_t)retry_db_get_u64(data + 12);
	out->next_try = (time_t)(int64_t)retry_db_get_u64(data + 20);
	out->expired = data[28] == 1;
	out->error = (int)(int32_t)retry_db_get_u32(data + 29);
	out->more_error = (int)(int32_t)retry_db_get_u32(data + 33);
	memcpy(out->text, data + fixed, text_len);
	out->text[text_len] = '\0';
	return 0;
}

/* Takes the lock file's fcntl() lock, waiting for other processes. */
static int
retry_db_lock(const char *path, bool write, int *fd_out, char **error)
{
	struct flock lock = { .l_type = write ? F_WRLCK : F_RDLCK,
	    .l_whence = SEEK_SET };
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0) {
		*error = xasprintf("cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	while (fcntl(fd, F_SETLKW, &lock) < 0) {
		if (errno == EINTR)
			continue;
		*error = xasprintf("cannot lock %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*fd_out = fd;
	return 0;
}

int
retry_db_open(const char *spool_directory, bool write, struct retry_db **out,
    char **error)
{
	struct retry_db *handle = NULL;
	char *dir = NULL, *path = NULL, *lock_path = NULL;
	int lock_fd = -1;
	int rc = -1;
	int db_rc;
	DB *db = NULL;

	*out = NULL;
	dir = xasprintf("%s/hints", spool_directory);
	path = xasprintf("%s/retry-state.db", dir);
	lock_path = xasprintf("%s/retry-state.lockfile", dir);

	if (!write && access(path, F_OK) < 0 && errno == ENOENT) {
		rc = 1;
		goto cleanup;
	}
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		*error = xasprintf("cannot create %s: %s", dir, strerror(errno));
		goto cleanup;
	}
	if (retry_db_lock(lock_path, write, &lock_fd, error) < 0)
		goto cleanup;

	db_rc = db_create(&db, NULL, 0);
	if (db_rc == 0)
		db_rc = db->open(db, NULL, path, NULL, DB_HASH,
		    write ? DB_CREATE : DB_RDONLY, 0640);
	if (db_rc != 0) {
		*error = xasprintf("cannot open %s: %s", path,
		    db_strerror(db_rc));
		goto cleanup;
	}
	handle = xcalloc(1, sizeof(*handle));
	handle->db = db;
	handle->lock_fd = lock_fd;
	db = NULL;
	lock_fd = -1;
	*out = handle;
	rc = 0;

cleanup:
	if (db != NULL)
		db->close(db, 0);
	if (lock_fd >= 0)
		close(lock_fd);		/* releases the lock */
	free(dir);
	free(path);
	free(lock_path);
	return rc;
}

void
retry_db_close(struct retry_db *handle)
{
	if (handle == NULL)
		return;
	handle->db->close(handle->db, 0);
	close(handle->lock_fd);
	free(handle);
}

/* Fills a DBT for key; returns -1 with *error set when it is too long. */
static int
retry_db_key(const char *key, DBT *dbt, char **error)
{
	size_t len = strnlen(key, RETRY_DB_KEY_MAX + 1);

	if (len == 0 || len > RETRY_DB_KEY_MAX) {
		*error = xasprintf("retry key empty or longer than %d bytes",
		    RETRY_DB_KEY_MAX);
		return -1;
	}
	memset(dbt, 0, sizeof(*dbt));
	dbt->data = (void *)key;
	dbt->size = (u_int32_t)len;
	return 0;
}

int
retry_db_get(struct retry_db *handle, const char *key,
    struct retry_db_record *out, char **error)
{
	DBT k, data;
	int rc;

	if (retry_db_key(key, &k, error) < 0)
		return -1;
	memset(&data, 0, sizeof(data));
	rc = handle->db->get(handle->db, NULL, &k, &data, 0);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0) {
		*error = xasprintf("cannot read the retry state of %s: %s", key,
		    db_strerror(rc));
		return -1;
	}
	if (retry_db_decode(data.data, data.size, out) < 0)
		return 0;
	return 1;
}

int
retry_db_put(struct retry_db *handle, const char *key,
    const struct retry_db_record *record, char **error)
{
	unsigned char buf[RETRY_DB_RECORD_MAX];
	DBT k, data;
	int rc;

	if (retry_db_key(key, &k, error) < 0)
		return -1;
	memset(&data, 0, sizeof(data));
	data.data = buf;
	data.size = (u_int32_t)retry_db_encode(record, buf);
	rc = handle->db->put(handle->db, NULL, &k, &data, 0);
	if (rc == 0)
		rc = handle->db->sync(handle->db, 0);
	if (rc != 0) {
		*error = xasprintf("cannot write the retry state of %s: %s", key,
		    db_strerror(rc));
		return -1;
	}
	return 0;
}

int
retry_db_delete(struct retry_db *handle, const char *key, char **error)
{
	DBT k;
	int rc;

	if (retry_db_key(key, &k, error) < 0)
		return -1;
	rc = handle->db->del(handle->db, NULL, &k, 0);
	if (rc == 0)
		rc = handle->db->sync(handle->db, 0);
	if (rc != 0 && rc != DB_NOTFOUND) {
		*error = xasprintf("cannot delete the retry state of %s: %s", key,
		    db_strerror(rc));
		return -1;
	}
	return 0;
}

int
retry_db_each(struct retry_db *handle, retry_db_each_fn fn, void *arg,
    char **error)
{
	char key[RETRY_DB_KEY_MAX + 1];
	struct retry_db_record record;
	DBC *cursor = NULL;
	DBT k, data;
	int rc;

	rc = handle->db->cursor(handle->db, NULL, &cursor, 0);
	if (rc != 0) {
		*error = xasprintf("cannot read the retry state: %s",
		    db_strerror(rc));
		return -1;
	}
	for (;;) {
		memset(&k, 0, sizeof(k));
		memset(&data, 0, sizeof(data));
		rc = cursor->get(cursor, &k, &data, DB_NEXT);
		if (rc != 0)
			break;
		/* Keys of another layout, and records that do not decode,
		 * are skipped like missing ones. */
		if (k.size == 0 || k.size > RETRY_DB_KEY_MAX ||
		    memchr(k.data, '\0', k.size) != NULL ||
		    retry_db_decode(data.data, data.size, &record) < 0)
			continue;
		memcpy(key, k.data, k.size);
		key[k.size] = '\0';
		fn(arg, key, &record);
	}
	cursor->close(cursor);
	if (rc != DB_NOTFOUND) {
		*error = xasprintf("cannot read the retry state: %s",
		    db_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * hints_db.c - Berkeley DB snapshot files and the thread that writes
 * them.
 */
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hints_db.h"
#include "log.h"
#include "util.h"

#define HINTS_NAME_MAX		32
#define HINTS_PENDING_MAX	8	/* tables waiting to be written */
#define HINTS_CACHE_BYTES	(16 * 1024 * 1024)

struct hints_snapshot {
	char name[HINTS_NAME_MAX + 1];
	unsigned char *data;	/* records: u32 key length, u32 value length, key, value */
	size_t used;
	size_t size;
	size_t count;
};

struct hints_snapshot *
hints_snapshot_new(const char *name)
{
	struct hints_snapshot *s = xcalloc(1, sizeof(*s));
	size_t len = strlen(name);

	if (len == 0 || len > HINTS_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len)
		fatal_bug("invalid hints table name \"%s\"", name);
	memcpy(s->name, name, len + 1);
	return s;
}

void
hints_snapshot_add(struct hints_snapshot *s, const void *key, size_t key_len,
    const void *value, size_t value_len)
{
	uint32_t lengths[2] = { (uint32_t)key_len, (uint32_t)value_len };
	size_t need = sizeof(lengths) + key_len + value_len;

	if (key_len == 0 || key_len > HINTS_KEY_MAX || value_len > HINTS_VALUE_MAX)
		fatal_bug("hints record out of bounds (%zu, %zu)", key_len,
		    value_len);
	if (s->size - s->used < need) {
		size_t size = s->size == 0 ? 4096 : s->size;

		while (size - s->used < need)
			size *= 2;
		s->data = xrealloc(s->data, size);
		s->size = size;
	}
	memcpy(s->data + s->used, lengths, sizeof(lengths));
	memcpy(s->data + s->used + sizeof(lengths), key, key_len);
	memcpy(s->data + s->used + sizeof(lengths) + key_len, value, value_len);
	s->used += need;
	s->count++;
}

size_t
hints_snapshot_count(const struct hints_snapshot *s)
{
	return s->count;
}

void
hints_snapshot_free(struct hints_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->data);
	free(s);
}

/* ---- files ---- */

/* Berkeley DB's own message for the last failure in this thread, which
 * says more than db_strerror() ("unexpected file type or format"). */
static __thread char hints_db_message[256];

static void
hints_db_errcall(const DB_ENV *env, const char *prefix, const char *message)
{
	(void)env;
	(void)prefix;
	strlcpy_s(hints_db_message, message, sizeof(hints_db_message));
}

/* Returns the detail for a failure with code rc. */
static const char *
hints_db_detail(int rc)
{
	return hints_db_message[0] != '\0' ? hints_db_message : db_strerror(rc);
}

/* Creates a handle whose messages go to hints_db_message, not stderr. */
static int
hints_db_create(DB **db)
{
	int rc = db_create(db, NULL, 0);

	if (rc != 0) {
		*db = NULL;
		return rc;
	}
	hints_db_message[0] = '\0';
	(*db)->set_errcall(*db, hints_db_errcall);
	return 0;
}

#ifdef SLUICE_TEST_HOOKS
static unsigned long long
hints_kill_after(void)
{
	const char *v = getenv("SLUICE_TEST_HINTS_KILL_AFTER");
	unsigned long long k;

	if (v == NULL || parse_uint(v, 1000000000ULL, &k) < 0)
		return 0;
	return k;
}
#endif

static int
hints_fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Puts every record of s into the open database. */
static int
hints_db_put_all(DB *db, const struct hints_snapshot *s, char **error)
{
#ifdef SLUICE_TEST_HOOKS
	unsigned long long kill_after = hints_kill_after();
#endif
	size_t off = 0, written = 0;

	while (off < s->used) {
		uint32_t lengths[2];
		DBT key, value;
		int rc;

		memcpy(lengths, s->data + off, sizeof(lengths));
		memset(&key, 0, sizeof(key));
		memset(&value, 0, sizeof(value));
		key.data = s->data + off + sizeof(lengths);
		key.size = lengths[0];
		value.data = s->data + off + sizeof(lengths) + lengths[0];
		value.size = lengths[1];
		if ((rc = db->put(db, NULL, &key, &value, 0)) != 0) {
			*error = xasprintf("cannot write a record: %s",
			    hints_db_detail(rc));
			return -1;
		}
		off += sizeof(lengths) + lengths[0] + lengths[1];
		written++;
#ifdef SLUICE_TEST_HOOKS
		if (kill_after != 0 && written == kill_after)
			raise(SIGKILL);
#endif
	}
	return 0;
}

int
hints_db_write(const char *spool, const struct hints_snapshot *s,
    char **error)
{
	char *dir = xasprintf("%s/%s", spool, HINTS_DIRECTORY);
	char *path = xasprintf("%s/%s.db", dir, s->name);
	char *tmp = xasprintf("%s/%s.db.tmp", dir, s->name);
	char *failure = NULL;
	DB *db = NULL;
	int rc, result = -1;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		failure = xasprintf("cannot create %s: %s", dir, strerror(errno));
		goto cleanup;
	}
	(void)unlink(tmp);
	if ((rc = hints_db_create(&db)) != 0) {
		failure = xasprintf("db_create failed: %s", db_strerror(rc));
		goto cleanup;
	}
	/* With Berkeley DB's default cache (256 KB) a large save writes
	 * and re-reads pages many times. A 16 MB cache cut the save of
	 * 100,000 counters by about a third (bench/policy_tables.c). */
	if ((rc = db->set_cachesize(db, 0, HINTS_CACHE_BYTES, 1)) != 0) {
		failure = xasprintf("cannot set the cache size: %s",
		    hints_db_detail(rc));
		goto cleanup;
	}
	if ((rc = db->open(db, NULL, tmp, NULL, DB_BTREE, DB_CREATE | DB_EXCL,
	    0640)) != 0) {
		failure = xasprintf("cannot create %s: %s", tmp,
		    hints_db_detail(rc));
		goto cleanup;
	}
	if (hints_db_put_all(db, s, &failure) < 0)
		goto cleanup;
	/* close() flushes the pages; fsync makes them durable before the
	 * rename makes them visible. */
	rc = db->close(db, 0);
	db = NULL;
	if (rc != 0) {
		failure = xasprintf("cannot write %s: %s", tmp,
		    hints_db_detail(rc));
		goto cleanup;
	}
	if (hints_fsync_path(tmp, O_RDONLY) < 0 || rename(tmp, path) < 0 ||
	    hints_fsync_path(dir, O_RDONLY | O_DIRECTORY) < 0) {
		failure = xasprintf("cannot save %s: %s", path, strerror(errno));
		goto cleanup;
	}
	result = 0;

cleanup:
	if (db != NULL)
		db->close(db, DB_NOSYNC);
	if (result < 0) {
		(void)unlink(tmp);
		*error = failure;
	}
	free(dir);
	free(path);
	free(tmp);
	return result;
}

long
hints_db_read(const char *spool, const char *name, hints_record_fn fn,
    void *arg, char **error)
{
	char *path = xasprintf("%s/%s/%s.db", spool, HINTS_DIRECTORY, name);
	DB *db = NULL;
	DBC *cursor = NULL;
	DBT key, value;
	long count = -1;
	int rc;

	if (access(path, F_OK) < 0 && errno == ENOENT) {
		count = 0;
		goto cleanup;
	}
	if ((rc = hints_db_create(&db)) != 0) {
		*error = xasprintf("db_create failed: %s", db_strerror(rc));
		goto cleanup;
	}
	if ((rc = db->open(db, NULL, path, NULL, DB_BTREE, DB_RDONLY, 0)) != 0 ||
	    (rc = db->cursor(db, NULL, &cursor, 0)) != 0) {
		*error = xasprintf("cannot open %s: %s", path,
		    hints_db_detail(rc));
		goto cleanup;
	}
	memset(&key, 0, sizeof(key));
	memset(&value, 0, sizeof(value));
	count = 0;
	while ((rc = cursor->get(cursor, &key, &value, DB_NEXT)) == 0) {
		if (key.size == 0 || key.size > HINTS_KEY_MAX ||
		    value.size > HINTS_VALUE_MAX) {
			*error = xasprintf("%s: record of %u+%u bytes is out of "
			    "bounds", path, key.size, value.size);
			count = -1;
			goto cleanup;
		}
		count++;
		if (fn(key.data, key.size, value.data, value.size, arg) != 0)
			break;
	}
	if (rc != 0 && rc != DB_NOTFOUND) {
		*error = xasprintf("cannot read %s: %s", path,
		    hints_db_detail(rc));
		count = -1;
	}

cleanup:
	if (cursor != NULL)
		cursor->close(cursor);
	if (db != NULL)
		db->close(db, 0);
	free(path);
	return count;
}

/* ---- the writer thread ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stopping;
	char *spool;
	struct hints_snapshot *pending[HINTS_PENDING_MAX];
	size_t pending_count;
} writer = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};

static void *
hints_writer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&writer.lock);
	for (;;) {
		struct hints_snapshot *s;
		char *error = NULL;

		while (writer.pending_count == 0 && !writer.stopping)
			pthread_cond_wait(&writer.wake, &writer.lock);
		if (writer.pending_count == 0)
			break;
		s = writer.pending[0];
		memmove(writer.pending, writer.pending + 1,
		    --writer.pending_count * sizeof(writer.pending[0]));
		pthread_mutex_unlock(&writer.lock);

		if (hints_db_write(writer.spool, s, &error) < 0) {
			log_write(LOG_MAIN, NULL, "hints: saving table %s "
			    "failed: %s", s->name, error);
			free(error);
		}
		hints_snapshot_free(s);
		pthread_mutex_lock(&writer.lock);
	}
	pthread_mutex_unlock(&writer.lock);
	return NULL;
}

int
hints_writer_start(const char *spool, char **error)
{
	int rc;

	SLUICE_ASSERT(!writer.running);
	writer.spool = xstrdup(spool);
	writer.stopping = false;
	if ((rc = pthread_create(&writer.thread, NULL, hints_writer_main,
	    NULL)) != 0) {
		*error = xasprintf("cannot start the hints writer thread: %s",
		    strerror(rc));
		free(writer.spool);
		writer.spool = NULL;
		return -1;
	}
	writer.running = true;
	return 0;
}

void
hints_writer_submit(struct hints_snapshot *s)
{
	size_t i;

	SLUICE_ASSERT(writer.running);
	pthread_mutex_lock(&writer.lock);
	for (i = 0; i < writer.pending_count; i++)
		if (strcmp(writer.pending[i]->name, s->name) == 0)
			break;
	if (i < writer.pending_count) {
		hints_snapshot_free(writer.pending[i]);
		writer.pending[i] = s;
	} else if (writer.pending_count < HINTS_PENDING_MAX) {
		writer.pending[writer.pending_count++] = s;
	} else {
		fatal_bug("more than %d hints tables waiting", HINTS_PENDING_MAX);
	}
	pthread_cond_signal(&writer.wake);
	pthread_mutex_unlock(&writer.lock);
}

void
hints_writer_stop(void)
{
	if (!writer.running)
		return;
	pthread_mutex_lock(&writer.lock);
	writer.stopping = true;
	pthread_cond_signal(&writer.wake);
	pthread_mutex_unlock(&writer.lock);
	pthread_join(writer.thread, NULL);
	writer.running = false;
	free(writer.spool);
	writer.spool = NULL;
}

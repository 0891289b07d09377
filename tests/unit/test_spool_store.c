/*
 * test_spool_store.c - the spool store: commit order and durability,
 * failure at every step, group commit, journal, rewrite, removal,
 * locking, both layouts and the start-up scan.
 *
 * A recording backend wraps the POSIX one. It logs every call as
 * "<operation> <path relative to the spool>", and can make the Nth call
 * (of any operation, or of one named operation) fail with EIO. Callbacks
 * write "callback <result>" into the same log, so the tests can check
 * that every sync happened before success was reported.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "msgid.h"
#include "spool_backend.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

#define RECORDER_FDS	4096
#define CALLS_MAX	100000

/* The invented example time, 2025-03-14 09:26:53 UTC. */
#define EXAMPLE_TIME	1741944413

struct recorder {
	pthread_mutex_t mutex;
	const struct spool_backend *real;
	char root[256];
	size_t root_len;
	char *fd_paths[RECORDER_FDS];
	char *calls[CALLS_MAX];
	size_t call_count;
	/* Failure injection: while counting, every call (or only calls of
	 * fail_op) increments counted, and call number fail_at fails. */
	bool counting;
	long counted;
	long fail_at;
	const char *fail_op;
};

struct fixture {
	struct recorder recorder;
	struct spool_backend backend;
	struct event_base *base;
	struct spool_store *store;
	char root[256];
	int callbacks;
	int want_callbacks;
	int last_result;
	char last_error[512];
};

/* Recording backend. */

static const char *
relative(struct recorder *r, const char *path)
{
	if (strncmp(path, r->root, r->root_len) == 0 && path[r->root_len] == '/')
		return path + r->root_len + 1;
	return path;
}

static void
record_locked(struct recorder *r, const char *line)
{
	if (r->call_count < CALLS_MAX)
		r->calls[r->call_count++] = xstrdup(line);
}

/* Logs a call and decides whether it fails. Returns 0, or -1 with errno
 * EIO for the injected failure. */
static int
record(struct recorder *r, const char *op, const char *a, const char *b)
{
	char line[1024];
	int rc = 0;

	snprintf(line, sizeof(line), "%s%s%s%s%s", op, a ? " " : "",
	    a ? a : "", b ? " " : "", b ? b : "");
	pthread_mutex_lock(&r->mutex);
	if (r->counting && (r->fail_op == NULL || strcmp(r->fail_op, op) == 0)) {
		r->counted++;
		if (r->counted == r->fail_at) {
			strncat(line, " = FAIL", sizeof(line) - strlen(line) - 1);
			rc = -1;
		}
	}
	record_locked(r, line);
	pthread_mutex_unlock(&r->mutex);
	if (rc != 0)
		errno = EIO;
	return rc;
}

static const char *
fd_name(struct recorder *r, int fd)
{
	if (fd >= 0 && fd < RECORDER_FDS && r->fd_paths[fd] != NULL)
		return r->fd_paths[fd];
	return "?";
}

static int
rec_open(void *ctx, const char *path, int flags, mode_t mode)
{
	struct recorder *r = ctx;
	int fd;

	if (record(r, "open", relative(r, path), NULL) != 0)
		return -1;
	fd = r->real->open(r->real->ctx, path, flags, mode);
	if (fd >= 0 && fd < RECORDER_FDS) {
		pthread_mutex_lock(&r->mutex);
		free(r->fd_paths[fd]);
		r->fd_paths[fd] = xstrdup(relative(r, path));
		pthread_mutex_unlock(&r->mutex);
	}
	return fd;
}

static ssize_t
rec_read(void *ctx, int fd, void *buf, size_t len)
{
	struct recorder *r = ctx;

	if (record(r, "read", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->read(r->real->ctx, fd, buf, len);
}

static ssize_t
rec_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct recorder *r = ctx;

	if (record(r, "write", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->write(r->real->ctx, fd, buf, len);
}

static int
rec_fstat(void *ctx, int fd, struct stat *st)
{
	struct recorder *r = ctx;

	if (record(r, "fstat", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->fstat(r->real->ctx, fd, st);
}

static int
rec_stat(void *ctx, const char *path, struct stat *st)
{
	struct recorder *r = ctx;

	if (record(r, "stat", relative(r, path), NULL) != 0)
		return -1;
	return r->real->stat(r->real->ctx, path, st);
}

static int
rec_fchmod(void *ctx, int fd, mode_t mode)
{
	struct recorder *r = ctx;

	if (record(r, "fchmod", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->fchmod(r->real->ctx, fd, mode);
}

static int
rec_lock(void *ctx, int fd, off_t len)
{
	struct recorder *r = ctx;

	if (record(r, "lock", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->lock(r->real->ctx, fd, len);
}

static int
rec_fdatasync(void *ctx, int fd)
{
	struct recorder *r = ctx;

	if (record(r, "fdatasync", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->fdatasync(r->real->ctx, fd);
}

static int
rec_syncfs(void *ctx, int fd)
{
	struct recorder *r = ctx;

	if (record(r, "syncfs", fd_name(r, fd), NULL) != 0)
		return -1;
	return r->real->syncfs(r->real->ctx, fd);
}

static int
rec_close(void *ctx, int fd)
{
	struct recorder *r = ctx;
	int rc;

	rc = record(r, "close", fd_name(r, fd), NULL);
	/* Like Linux, the descriptor is gone even when close fails. */
	if (fd >= 0 && fd < RECORDER_FDS) {
		pthread_mutex_lock(&r->mutex);
		free(r->fd_paths[fd]);
		r->fd_paths[fd] = NULL;
		pthread_mutex_unlock(&r->mutex);
	}
	r->real->close(r->real->ctx, fd);
	return rc;
}

static int
rec_rename(void *ctx, const char *from, const char *to)
{
	struct recorder *r = ctx;

	if (record(r, "rename", relative(r, from), relative(r, to)) != 0)
		return -1;
	return r->real->rename(r->real->ctx, from, to);
}

static int
rec_unlink(void *ctx, const char *path)
{
	struct recorder *r = ctx;

	if (record(r, "unlink", relative(r, path), NULL) != 0)
		return -1;
	return r->real->unlink(r->real->ctx, path);
}

static int
rec_mkdir(void *ctx, const char *path, mode_t mode)
{
	struct recorder *r = ctx;

	if (record(r, "mkdir", relative(r, path), NULL) != 0)
		return -1;
	return r->real->mkdir(r->real->ctx, path, mode);
}

static int
rec_fsync_dir(void *ctx, const char *path)
{
	struct recorder *r = ctx;

	if (record(r, "fsync_dir", relative(r, path), NULL) != 0)
		return -1;
	return r->real->fsync_dir(r->real->ctx, path);
}

static int
rec_list_dir(void *ctx, const char *path, spool_list_fn fn, void *arg)
{
	struct recorder *r = ctx;

	if (record(r, "list_dir", relative(r, path), NULL) != 0)
		return -1;
	return r->real->list_dir(r->real->ctx, path, fn, arg);
}

static void
recorder_clear(struct recorder *r)
{
	pthread_mutex_lock(&r->mutex);
	for (size_t i = 0; i < r->call_count; i++)
		free(r->calls[i]);
	r->call_count = 0;
	r->counting = false;
	r->counted = 0;
	r->fail_at = 0;
	r->fail_op = NULL;
	pthread_mutex_unlock(&r->mutex);
}

/* Starts counting calls; call number fail_at (of fail_op, or of any
 * operation when fail_op is NULL) fails. fail_at 0 only counts. */
static void
recorder_arm(struct recorder *r, long fail_at, const char *fail_op)
{
	recorder_clear(r);
	pthread_mutex_lock(&r->mutex);
	r->counting = true;
	r->fail_at = fail_at;
	r->fail_op = fail_op;
	pthread_mutex_unlock(&r->mutex);
}

static void
recorder_note(struct recorder *r, const char *line)
{
	pthread_mutex_lock(&r->mutex);
	record_locked(r, line);
	pthread_mutex_unlock(&r->mutex);
}

/* Index of the first logged call equal to line at or after from, or -1. */
static long
call_index(struct recorder *r, const char *line, size_t from)
{
	for (size_t i = from; i < r->call_count; i++)
		if (strcmp(r->calls[i], line) == 0)
			return (long)i;
	return -1;
}

static size_t
count_calls(struct recorder *r, const char *prefix)
{
	size_t n = 0;

	for (size_t i = 0; i < r->call_count; i++)
		if (strncmp(r->calls[i], prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* Index of the first or last logged call that starts with prefix, or -1. */
static long
first_prefixed(struct recorder *r, const char *prefix)
{
	for (size_t i = 0; i < r->call_count; i++)
		if (strncmp(r->calls[i], prefix, strlen(prefix)) == 0)
			return (long)i;
	return -1;
}

static long
last_prefixed(struct recorder *r, const char *prefix)
{
	long last = -1;

	for (size_t i = 0; i < r->call_count; i++)
		if (strncmp(r->calls[i], prefix, strlen(prefix)) == 0)
			last = (long)i;
	return last;
}

static void
dump_calls(struct recorder *r)
{
	for (size_t i = 0; i < r->call_count; i++)
		print_message("  %zu: %s\n", i, r->calls[i]);
}

/* Fails unless line a was logged and line b after it. */
static void
assert_before(struct recorder *r, const char *a, const char *b)
{
	long ia = call_index(r, a, 0);
	long ib = ia < 0 ? -1 : call_index(r, b, (size_t)ia + 1);

	if (ia < 0 || ib < 0) {
		dump_calls(r);
		fail_msg("want \"%s\" before \"%s\"; got positions %ld and %ld",
		    a, b, ia, call_index(r, b, 0));
	}
}

/* Fixture. */

static void
store_cb(void *arg, int result, const char *error)
{
	struct fixture *f = arg;
	char line[64];

	snprintf(line, sizeof(line), "callback %d", result);
	recorder_note(&f->recorder, line);
	f->callbacks++;
	f->last_result = result;
	snprintf(f->last_error, sizeof(f->last_error), "%s",
	    error != NULL ? error : "");
	if (f->callbacks >= f->want_callbacks)
		event_base_loopbreak(f->base);
}

/* Runs the loop until the total number of callbacks reaches want. The
 * guard only stops a hung test; no result depends on time. */
static void
run_until(struct fixture *f, int want)
{
	struct timeval guard = { 120, 0 };

	f->want_callbacks = want;
	if (f->callbacks < want) {
		event_base_loopexit(f->base, &guard);
		event_base_dispatch(f->base);
	}
	assert_int_equal(f->callbacks, want);
}

static void
fixture_open_store(struct fixture *f, bool split)
{
	char *error = NULL;

	f->store = spool_store_new(f->base, f->root, split, &f->backend,
	    &error);
	if (f->store == NULL)
		fail_msg("spool_store_new: %s", error);
}

static int
setup_layout(void **state, bool split)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct recorder *r = &f->recorder;

	snprintf(f->root, sizeof(f->root), "/tmp/sluice-spool-test-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	pthread_mutex_init(&r->mutex, NULL);
	r->real = spool_backend_posix();
	snprintf(r->root, sizeof(r->root), "%s", f->root);
	r->root_len = strlen(r->root);
	f->backend = (struct spool_backend){
		.ctx = r, .open = rec_open, .read = rec_read,
		.write = rec_write, .fstat = rec_fstat, .stat = rec_stat,
		.fchmod = rec_fchmod, .lock = rec_lock,
		.fdatasync = rec_fdatasync, .syncfs = rec_syncfs,
		.close = rec_close, .rename = rec_rename,
		.unlink = rec_unlink, .mkdir = rec_mkdir,
		.fsync_dir = rec_fsync_dir, .list_dir = rec_list_dir,
	};
	f->base = event_base_new();
	assert_non_null(f->base);
	fixture_open_store(f, split);
	recorder_clear(r);
	*state = f;
	return 0;
}

static int
setup_flat(void **state)
{
	return setup_layout(state, false);
}

static int
setup_split(void **state)
{
	return setup_layout(state, true);
}

static int
remove_entry(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	spool_store_free(f->store);
	event_base_free(f->base);
	recorder_clear(&f->recorder);
	for (int i = 0; i < RECORDER_FDS; i++)
		free(f->recorder.fd_paths[i]);
	pthread_mutex_destroy(&f->recorder.mutex);
	nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Helpers. */

/* Makes a valid current-form id; time_step moves the 6th character, and
 * with it the split sub-directory. */
static void
make_id(char id[MSGID_SIZE], unsigned time_step, unsigned n)
{
	struct msgid_parts parts = {
		.time = EXAMPLE_TIME + time_step, .pid = 1000 + n,
		.subsecond = n,
	};

	msgid_encode(MSGID_FORMAT_CURRENT, &parts, id);
}

/* A -H file as spool_header_format writes it, for one recipient. */
static char *
make_header(const char *id, const char *recipient, size_t *len)
{
	static const char from[] = "From: alice@example.org\n";
	char *to = xasprintf("To: %s\n", recipient);
	char *text = xasprintf(
	    "%s-H\n"
	    "sluice 101 103\n"
	    "<alice@example.org>\n"
	    "%d 0\n"
	    "-received_time_usec .412345\n"
	    "-body_linecount 1\n"
	    "-max_received_linelength 24\n"
	    "XX\n"
	    "1\n"
	    "%s\n"
	    "\n"
	    "%03zuF %s"
	    "%03zuT %s",
	    id, EXAMPLE_TIME, recipient, strlen(from), from, strlen(to), to);

	free(to);

	*len = strlen(text);
	return text;
}

static char *
read_whole(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long size;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = xmalloc((size_t)size + 1);
	if (fread(buf, 1, (size_t)size, fp) != (size_t)size)
		size = 0;
	buf[size] = '\0';
	fclose(fp);
	return buf;
}

static bool
file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static char *
spool_file(struct fixture *f, bool split, const char *id, const char *suffix)
{
	if (split)
		return xasprintf("%s/input/%c/%s%s", f->root, id[5], id, suffix);
	return xasprintf("%s/input/%s%s", f->root, id, suffix);
}

static size_t files_found;
static char first_file_found[512];

static int
count_regular(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	if (type == FTW_F) {
		if (files_found == 0)
			snprintf(first_file_found, sizeof(first_file_found),
			    "%s", path);
		files_found++;
	}
	return 0;
}

/* Number of files (not directories) under <spool>/input. */
static size_t
input_file_count(struct fixture *f)
{
	char *input = xasprintf("%s/input", f->root);

	files_found = 0;
	first_file_found[0] = '\0';
	nftw(input, count_regular, 16, FTW_PHYS);
	free(input);
	return files_found;
}

/* Creates a message, writes body and queues its commit. Returns 0, or -1
 * when creation or writing failed (nothing is queued then). */
static int
start_message(struct fixture *f, const char *id, const char *body)
{
	struct spool_data *data;
	char *error = NULL, *header;
	size_t len;

	data = spool_store_data_create(f->store, id, &error);
	if (data == NULL) {
		free(error);
		return -1;
	}
	if (spool_data_write(data, body, strlen(body), &error) != 0) {
		free(error);
		spool_data_abort(data);
		return -1;
	}
	header = make_header(id, "bob@example.net", &len);
	spool_store_commit(f->store, data, header, len, store_cb, f);
	free(header);
	return 0;
}

static void
commit_message(struct fixture *f, const char *id, const char *body)
{
	assert_int_equal(start_message(f, id, body), 0);
	run_until(f, f->callbacks + 1);
	if (f->last_result != 0)
		fail_msg("commit of %s failed: %s", id, f->last_error);
}

/* Commit. */

static void
commit_writes_both_files(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], *path, *text, *header;
	struct stat st;
	size_t len;

	make_id(id, 0, 1);
	commit_message(f, id, "Subject: hi\n\nhello\n");

	path = spool_file(f, false, id, "-D");
	text = read_whole(path);
	assert_non_null(text);
	assert_memory_equal(text, id, strlen(id));
	assert_string_equal(text + strlen(id), "-D\nSubject: hi\n\nhello\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	free(text);
	free(path);

	path = spool_file(f, false, id, "-H");
	text = read_whole(path);
	header = make_header(id, "bob@example.net", &len);
	assert_non_null(text);
	assert_string_equal(text, header);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	free(header);
	free(text);
	free(path);

	assert_int_equal(input_file_count(f), 2);
}

static void
commit_syncs_before_success(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char id[MSGID_SIZE], data_sync[128], temp_sync[128], rename_call[256];

	make_id(id, 0, 2);
	commit_message(f, id, "body\n");

	snprintf(data_sync, sizeof(data_sync), "fdatasync input/%s-D", id);
	snprintf(temp_sync, sizeof(temp_sync), "fdatasync input/hdr.%s", id);
	snprintf(rename_call, sizeof(rename_call),
	    "rename input/hdr.%s input/%s-H", id, id);
	assert_before(r, data_sync, rename_call);
	assert_before(r, temp_sync, rename_call);
	assert_before(r, rename_call, "fsync_dir input");
	assert_before(r, "fsync_dir input", "callback 0");
	assert_int_equal(count_calls(r, "syncfs"), 0);
}

static void
commit_failure_each_step(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char id[MSGID_SIZE];
	long steps;

	/* A successful commit first, to learn how many calls it makes. */
	make_id(id, 0, 100);
	recorder_arm(r, 0, NULL);
	commit_message(f, id, "body\n");
	steps = r->counted;
	assert_true(steps >= 10);
	spool_store_remove(f->store, id, store_cb, f);
	run_until(f, f->callbacks + 1);
	assert_int_equal(input_file_count(f), 0);

	for (long step = 1; step <= steps; step++) {
		int before = f->callbacks;
		char failed_call[1100] = "";

		make_id(id, 0, 200 + (unsigned)step);
		recorder_arm(r, step, NULL);
		if (start_message(f, id, "body\n") == 0) {
			run_until(f, before + 1);
			if (f->last_result == 0) {
				dump_calls(r);
				fail_msg("step %ld: commit reported success", step);
			}
		}
		for (size_t i = 0; i < r->call_count; i++)
			if (strstr(r->calls[i], "= FAIL") != NULL)
				snprintf(failed_call, sizeof(failed_call), "%s",
				    r->calls[i]);
		if (failed_call[0] == '\0')
			fail_msg("step %ld: no call failed", step);
		if (input_file_count(f) != 0) {
			dump_calls(r);
			fail_msg("step %ld (%s): left %s behind", step,
			    failed_call, first_file_found);
		}
	}
}

static void
commit_rejects_bad_input(void **state)
{
	struct fixture *f = *state;
	struct spool_data *data;
	char id[MSGID_SIZE], other[MSGID_SIZE], *error = NULL, *header;
	size_t len;

	assert_null(spool_store_data_create(f->store, "../../etc/passwd",
	    &error));
	assert_non_null(error);
	free(error);
	error = NULL;

	make_id(id, 0, 3);
	make_id(other, 0, 4);
	data = spool_store_data_create(f->store, id, &error);
	assert_non_null(data);

	/* An existing -D is never reused. */
	assert_null(spool_store_data_create(f->store, id, &error));
	assert_non_null(strstr(error, "File exists"));
	free(error);

	/* A header for another message is refused, and nothing remains. */
	header = make_header(other, "bob@example.net", &len);
	spool_store_commit(f->store, data, header, len, store_cb, f);
	free(header);
	run_until(f, 1);
	assert_int_equal(f->last_result, -1);
	assert_non_null(strstr(f->last_error, "-H line"));
	assert_int_equal(input_file_count(f), 0);
}

static void
data_write_streams_large_body(void **state)
{
	struct fixture *f = *state;
	struct spool_data *data;
	char id[MSGID_SIZE], chunk[1000], *error = NULL, *header, *path;
	struct stat st;
	size_t len;

	make_id(id, 0, 5);
	memset(chunk, 'x', sizeof(chunk));
	data = spool_store_data_create(f->store, id, &error);
	assert_non_null(data);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(spool_data_write(data, chunk, sizeof(chunk),
		    &error), 0);
	assert_int_equal(spool_data_size(data), 1000000);
	header = make_header(id, "bob@example.net", &len);
	spool_store_commit(f->store, data, header, len, store_cb, f);
	free(header);
	run_until(f, 1);
	assert_int_equal(f->last_result, 0);

	path = spool_file(f, false, id, "-D");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1000000 + strlen(id) + 3);
	free(path);
}

/* Group commit. */

static void
group_commit_one_round(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	struct spool_store_stats stats;
	char ids[6][MSGID_SIZE];
	long first_rename, last_rename = -1, first_dir_sync;

	/* Six messages in two sub-directories, committed in one round. */
	spool_store_hold(f->store, true);
	for (unsigned i = 0; i < 6; i++) {
		make_id(ids[i], i % 2, i);
		assert_int_equal(start_message(f, ids[i], "body\n"), 0);
	}
	recorder_clear(r);
	spool_store_hold(f->store, false);
	run_until(f, 6);

	assert_int_equal(count_calls(r, "callback 0"), 6);
	assert_int_equal(count_calls(r, "syncfs"), 1);
	assert_int_equal(count_calls(r, "fdatasync"), 0);
	assert_int_equal(count_calls(r, "fsync_dir"), 2);
	assert_int_equal(count_calls(r, "rename"), 6);

	/* syncfs, then every rename, then the directory syncs, then the
	 * callbacks. */
	first_rename = call_index(r, "syncfs input", 0);
	assert_true(first_rename >= 0);
	for (size_t i = 0; i < r->call_count; i++) {
		if (strncmp(r->calls[i], "rename ", 7) == 0) {
			assert_true((long)i > first_rename);
			last_rename = (long)i;
		}
	}
	first_dir_sync = -1;
	for (size_t i = 0; i < r->call_count && first_dir_sync < 0; i++)
		if (strncmp(r->calls[i], "fsync_dir ", 10) == 0)
			first_dir_sync = (long)i;
	assert_true(first_dir_sync > last_rename);
	assert_true(call_index(r, "callback 0", 0) > first_dir_sync);

	spool_store_stats(f->store, &stats);
	assert_int_equal(stats.rounds, 1);
	assert_int_equal(stats.commit_rounds, 1);
	assert_int_equal(stats.messages_committed, 6);
	assert_int_equal(stats.max_batch, 6);
	assert_int_equal(stats.sync_calls, 3);
	assert_int_equal(input_file_count(f), 12);
}

static void
group_commit_syncfs_failure(void **state)
{
	struct fixture *f = *state;
	struct spool_store_stats stats;
	char id[MSGID_SIZE];

	spool_store_hold(f->store, true);
	for (unsigned i = 0; i < 3; i++) {
		make_id(id, i, i);
		assert_int_equal(start_message(f, id, "body\n"), 0);
	}
	recorder_arm(&f->recorder, 1, "syncfs");
	spool_store_hold(f->store, false);
	run_until(f, 3);

	assert_int_equal(count_calls(&f->recorder, "callback -1"), 3);
	assert_non_null(strstr(f->last_error, "cannot sync the file system"));
	assert_int_equal(input_file_count(f), 0);
	spool_store_stats(f->store, &stats);
	assert_int_equal(stats.commits_failed, 3);
	assert_int_equal(stats.messages_committed, 0);
}

static void
group_commit_dir_failure(void **state)
{
	struct fixture *f = *state;
	char ids[4][MSGID_SIZE], *path;
	const char *failed_dir;
	int ok = 0;

	spool_store_hold(f->store, true);
	for (unsigned i = 0; i < 4; i++) {
		make_id(ids[i], i % 2, i);
		assert_int_equal(start_message(f, ids[i], "body\n"), 0);
	}
	recorder_arm(&f->recorder, 1, "fsync_dir");
	spool_store_hold(f->store, false);
	run_until(f, 4);

	/* The first directory synced failed: its two messages are gone and
	 * the other two are complete. */
	failed_dir = NULL;
	for (size_t i = 0; i < f->recorder.call_count; i++)
		if (strstr(f->recorder.calls[i], "fsync_dir") != NULL &&
		    strstr(f->recorder.calls[i], "= FAIL") != NULL)
			failed_dir = f->recorder.calls[i] + strlen("fsync_dir ");
	assert_non_null(failed_dir);
	for (unsigned i = 0; i < 4; i++) {
		char sub[32];
		bool in_failed;

		snprintf(sub, sizeof(sub), "input/%c = FAIL", ids[i][5]);
		in_failed = strcmp(failed_dir, sub) == 0;
		path = spool_file(f, true, ids[i], "-H");
		assert_int_equal(file_exists(path), !in_failed);
		free(path);
		path = spool_file(f, true, ids[i], "-D");
		assert_int_equal(file_exists(path), !in_failed);
		free(path);
		ok += !in_failed;
	}
	assert_int_equal(ok, 2);
	assert_int_equal(count_calls(&f->recorder, "callback 0"), 2);
	assert_int_equal(count_calls(&f->recorder, "callback -1"), 2);
}

/* True if id's -H and -D are both in place, false if neither is; fails
 * the test on a half message. */
static bool
message_complete(struct fixture *f, bool split, const char *id, long step)
{
	char *header = spool_file(f, split, id, "-H");
	char *data = spool_file(f, split, id, "-D");
	bool has_header = file_exists(header), has_data = file_exists(data);

	free(header);
	free(data);
	if (has_header != has_data)
		fail_msg("step %ld: %s has %s but not %s", step, id,
		    has_header ? "-H" : "-D", has_header ? "-D" : "-H");
	return has_header;
}

static void
group_commit_failure_each_step(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char ids[3][MSGID_SIZE];
	size_t files_kept = 0;
	long steps = 0;

	/* Three commits in one round, two of them in one directory: learn
	 * how many calls the round makes, then fail each in turn. */
	for (long step = 0;; step++) {
		int before = f->callbacks, ok = 0, complete = 0;

		spool_store_hold(f->store, true);
		for (unsigned i = 0; i < 3; i++) {
			make_id(ids[i], i % 2, 300 + 3 * (unsigned)step + i);
			assert_int_equal(start_message(f, ids[i], "body\n"), 0);
		}
		recorder_arm(r, step, NULL);
		spool_store_hold(f->store, false);
		run_until(f, before + 3);
		ok = count_calls(r, "callback 0");
		if (step == 0) {
			steps = r->counted;
			assert_int_equal(ok, 3);
		} else if (ok == 3) {
			dump_calls(r);
			fail_msg("step %ld: every commit reported success", step);
		}
		for (unsigned i = 0; i < 3; i++)
			complete += message_complete(f, true, ids[i], step);
		if (complete != ok) {
			dump_calls(r);
			fail_msg("step %ld: %d messages complete, want %d", step,
			    complete, ok);
		}
		/* Only the complete messages' files, no temporary -H. */
		files_kept += 2 * (size_t)ok;
		if (input_file_count(f) != files_kept)
			fail_msg("step %ld: %zu files in input/, want %zu", step,
			    input_file_count(f), files_kept);
		if (step == steps)
			break;
	}
	assert_true(steps >= 10);
}

static void
group_commit_without_syncfs(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	struct spool_store_stats stats;
	char id[MSGID_SIZE];

	/* A backend without syncfs, as on Linux before 5.8: each file is
	 * synced on its own, and the directory still once per round. */
	spool_store_free(f->store);
	f->backend.syncfs = NULL;
	fixture_open_store(f, false);
	spool_store_hold(f->store, true);
	for (unsigned i = 0; i < 3; i++) {
		make_id(id, 0, 60 + i);
		assert_int_equal(start_message(f, id, "body\n"), 0);
	}
	recorder_clear(r);
	spool_store_hold(f->store, false);
	run_until(f, 3);

	assert_int_equal(count_calls(r, "callback 0"), 3);
	assert_int_equal(count_calls(r, "fdatasync"), 6);
	assert_int_equal(count_calls(r, "syncfs"), 0);
	assert_int_equal(count_calls(r, "fsync_dir"), 1);
	assert_true(last_prefixed(r, "fdatasync ") < first_prefixed(r, "rename "));
	spool_store_stats(f->store, &stats);
	assert_int_equal(stats.max_batch, 3);
	assert_int_equal(stats.sync_calls, 7);
	assert_int_equal(input_file_count(f), 6);
}

/* Journal, rewrite, removal. */

static void
journal_append_is_synced(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char id[MSGID_SIZE], *path, *text, sync_call[128];

	make_id(id, 0, 7);
	commit_message(f, id, "body\n");
	recorder_clear(r);
	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	run_until(f, 2);
	assert_int_equal(f->last_result, 0);
	spool_store_journal_append(f->store, id, "carol@example.net",
	    store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, 0);

	snprintf(sync_call, sizeof(sync_call), "fdatasync input/%s-J", id);
	assert_before(r, sync_call, "callback 0");
	assert_before(r, "fsync_dir input", "callback 0");
	path = spool_file(f, false, id, "-J");
	text = read_whole(path);
	assert_string_equal(text, "bob@example.net\ncarol@example.net\n");
	free(text);
	free(path);
}

static void
journal_rejects_bad_address(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], long_address[SPOOL_JOURNAL_LINE_MAX + 10], *path;

	make_id(id, 0, 8);
	commit_message(f, id, "body\n");
	spool_store_journal_append(f->store, id, "a@b\nc@d", store_cb, f);
	run_until(f, 2);
	assert_int_equal(f->last_result, -1);

	memset(long_address, 'a', sizeof(long_address) - 1);
	long_address[sizeof(long_address) - 1] = '\0';
	spool_store_journal_append(f->store, id, long_address, store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, -1);

	spool_store_journal_append(f->store, "not-an-id", "a@b", store_cb, f);
	run_until(f, 4);
	assert_int_equal(f->last_result, -1);

	path = spool_file(f, false, id, "-J");
	assert_false(file_exists(path));
	free(path);
}

static void
journal_missing_message_fails(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE];

	make_id(id, 0, 9);
	spool_store_journal_append(f->store, id, "a@b", store_cb, f);
	run_until(f, 1);
	assert_int_equal(f->last_result, -1);
	assert_non_null(strstr(f->last_error, "cannot find"));
	assert_int_equal(input_file_count(f), 0);
}

static void
rewrite_replaces_header_and_journal(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char id[MSGID_SIZE], *path, *text, *header, call[256];
	size_t len;

	make_id(id, 0, 10);
	commit_message(f, id, "body\n");
	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	run_until(f, 2);
	recorder_clear(r);

	header = make_header(id, "carol@example.net", &len);
	spool_store_header_rewrite(f->store, id, header, len, store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, 0);

	snprintf(call, sizeof(call), "fdatasync input/hdr.%s", id);
	assert_before(r, call, "fsync_dir input");
	snprintf(call, sizeof(call), "rename input/hdr.%s input/%s-H", id, id);
	assert_before(r, call, "fsync_dir input");
	snprintf(call, sizeof(call), "unlink input/%s-J", id);
	assert_before(r, "fsync_dir input", call);
	assert_before(r, call, "callback 0");

	path = spool_file(f, false, id, "-H");
	text = read_whole(path);
	assert_string_equal(text, header);
	free(text);
	free(path);
	path = spool_file(f, false, id, "-J");
	assert_false(file_exists(path));
	free(path);
	free(header);
	assert_int_equal(input_file_count(f), 2);
}

static void
rewrite_failure_keeps_old_header(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], *path, *text, *old_header, *new_header;
	size_t old_len, new_len;

	make_id(id, 0, 11);
	commit_message(f, id, "body\n");
	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	run_until(f, 2);

	old_header = make_header(id, "bob@example.net", &old_len);
	new_header = make_header(id, "carol@example.net", &new_len);
	recorder_arm(&f->recorder, 1, "rename");
	spool_store_header_rewrite(f->store, id, new_header, new_len,
	    store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, -1);

	path = spool_file(f, false, id, "-H");
	text = read_whole(path);
	assert_string_equal(text, old_header);
	free(text);
	free(path);
	/* The journal stays, and no temporary file remains. */
	path = spool_file(f, false, id, "-J");
	assert_true(file_exists(path));
	free(path);
	assert_int_equal(input_file_count(f), 3);
	free(old_header);
	free(new_header);
}

static void
remove_deletes_every_file(void **state)
{
	struct fixture *f = *state;
	struct recorder *r = &f->recorder;
	char id[MSGID_SIZE], *msglog, call_h[128], call_d[128];
	FILE *fp;

	make_id(id, 0, 12);
	commit_message(f, id, "body\n");
	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	run_until(f, 2);
	msglog = xasprintf("%s/msglog/%s", f->root, id);
	fp = fopen(msglog, "w");
	assert_non_null(fp);
	fputs("2025-03-14 09:26:53 Received from alice@example.org\n", fp);
	fclose(fp);

	recorder_clear(r);
	spool_store_remove(f->store, id, store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, 0);
	assert_int_equal(input_file_count(f), 0);
	assert_false(file_exists(msglog));
	snprintf(call_h, sizeof(call_h), "unlink input/%s-H", id);
	snprintf(call_d, sizeof(call_d), "unlink input/%s-D", id);
	assert_before(r, call_h, call_d);
	free(msglog);

	/* Removing it again is no error. */
	spool_store_remove(f->store, id, store_cb, f);
	run_until(f, 4);
	assert_int_equal(f->last_result, 0);
}

static void
same_message_keeps_order(void **state)
{
	struct fixture *f = *state;
	struct spool_store_stats stats;
	char id[MSGID_SIZE], *header, *path, *text;
	size_t len;

	/* append, rewrite, append on one message, queued together: the
	 * rewrite must not remove the line the second append wrote. */
	make_id(id, 0, 13);
	commit_message(f, id, "body\n");
	header = make_header(id, "carol@example.net", &len);
	spool_store_hold(f->store, true);
	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	spool_store_header_rewrite(f->store, id, header, len, store_cb, f);
	spool_store_journal_append(f->store, id, "carol@example.net",
	    store_cb, f);
	spool_store_hold(f->store, false);
	run_until(f, 4);
	free(header);

	path = spool_file(f, false, id, "-J");
	text = read_whole(path);
	assert_non_null(text);
	assert_string_equal(text, "carol@example.net\n");
	free(text);
	free(path);
	spool_store_stats(f->store, &stats);
	assert_int_equal(stats.rounds, 4);
	assert_int_equal(stats.journal_appends, 2);
	assert_int_equal(stats.header_rewrites, 1);
}

/* Layouts and locking. */

static void
split_layout_uses_sixth_character(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], *path, dir_sync[64];

	make_id(id, 3, 14);
	commit_message(f, id, "body\n");
	snprintf(dir_sync, sizeof(dir_sync), "fsync_dir input/%c", id[5]);
	assert_before(&f->recorder, dir_sync, "callback 0");
	path = spool_file(f, true, id, "-H");
	assert_true(file_exists(path));
	free(path);
	path = spool_file(f, true, id, "-D");
	assert_true(file_exists(path));
	free(path);
}

static void
readers_find_other_layout(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], *path, *header;
	size_t len;
	int fd = -1;
	char *error = NULL;

	/* Committed without split; then the option is switched on. */
	make_id(id, 0, 15);
	commit_message(f, id, "body\n");
	spool_store_free(f->store);
	fixture_open_store(f, true);

	spool_store_journal_append(f->store, id, "bob@example.net", store_cb,
	    f);
	run_until(f, 2);
	assert_int_equal(f->last_result, 0);
	path = spool_file(f, false, id, "-J");
	assert_true(file_exists(path));
	free(path);

	assert_int_equal(spool_store_lock(f->store, id, &fd, &error), 0);
	close(fd);

	header = make_header(id, "carol@example.net", &len);
	spool_store_header_rewrite(f->store, id, header, len, store_cb, f);
	run_until(f, 3);
	assert_int_equal(f->last_result, 0);
	free(header);
	path = spool_file(f, false, id, "-H");
	assert_true(file_exists(path));
	free(path);

	spool_store_remove(f->store, id, store_cb, f);
	run_until(f, 4);
	assert_int_equal(f->last_result, 0);
	assert_int_equal(input_file_count(f), 0);
}

/* Tries Exim's own lock (a process-associated F_SETLK) from a child
 * process; returns the child's errno, or 0 if it got the lock. */
static int
exim_style_lock(const char *path, off_t len)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			.l_start = 0, .l_len = len };
		int fd = open(path, O_RDWR | O_APPEND);

		if (fd == -1)
			_exit(100);
		_exit(fcntl(fd, F_SETLK, &fl) == 0 ? 0 : errno);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
lock_held_while_receiving(void **state)
{
	struct fixture *f = *state;
	struct spool_data *data;
	char id[MSGID_SIZE], *error = NULL, *path, *header;
	size_t len;
	int fd = -1, other, child_errno;

	make_id(id, 0, 16);
	data = spool_store_data_create(f->store, id, &error);
	assert_non_null(data);
	assert_int_equal(spool_store_lock(f->store, id, &fd, &error),
	    SPOOL_LOCK_BUSY);

	/* Opening and closing the file again in this process does not drop
	 * an open file description lock, unlike a POSIX record lock. */
	path = spool_file(f, false, id, "-D");
	other = open(path, O_RDONLY);
	assert_true(other >= 0);
	close(other);
	assert_int_equal(spool_store_lock(f->store, id, &fd, &error),
	    SPOOL_LOCK_BUSY);

	child_errno = exim_style_lock(path, (off_t)strlen(id) + 3);
	if (child_errno != EAGAIN && child_errno != EACCES)
		fail_msg("Exim-style lock from another process: got %d, "
		    "want EAGAIN or EACCES", child_errno);

	header = make_header(id, "bob@example.net", &len);
	spool_store_commit(f->store, data, header, len, store_cb, f);
	free(header);
	run_until(f, 1);
	assert_int_equal(f->last_result, 0);

	/* Committed: the lock is free, and ours now blocks Exim's. */
	assert_int_equal(spool_store_lock(f->store, id, &fd, &error), 0);
	child_errno = exim_style_lock(path, (off_t)strlen(id) + 3);
	assert_true(child_errno == EAGAIN || child_errno == EACCES);
	close(fd);
	assert_int_equal(exim_style_lock(path, (off_t)strlen(id) + 3), 0);
	free(path);
}

static void
lock_missing_message(void **state)
{
	struct fixture *f = *state;
	char id[MSGID_SIZE], *error = NULL;
	int fd = -1;

	make_id(id, 0, 17);
	assert_int_equal(spool_store_lock(f->store, id, &fd, &error), -1);
	assert_non_null(strstr(error, "No such file"));
	free(error);
}

static void
classic_id_committed(void **state)
{
	struct fixture *f = *state;
	const char *id = "1tt1Jd-000CXd-DI";
	char *path, *text;

	commit_message(f, id, "body\n");
	path = spool_file(f, false, id, "-D");
	text = read_whole(path);
	assert_string_equal(text, "1tt1Jd-000CXd-DI-D\nbody\n");
	free(text);
	free(path);
}

static void
store_new_creates_split_tree(void **state)
{
	struct fixture *f = *state;
	char *path;

	for (const char *c = "09AZaz"; *c != '\0'; c++) {
		path = xasprintf("%s/input/%c", f->root, *c);
		assert_true(file_exists(path));
		free(path);
		path = xasprintf("%s/msglog/%c", f->root, *c);
		assert_true(file_exists(path));
		free(path);
	}
}

static void
store_new_reports_bad_directory(void **state)
{
	struct event_base *base = event_base_new();
	char *error = NULL;

	assert_null(spool_store_new(base, "/proc/no-such-spool/x", false, NULL,
	    &error));
	assert_non_null(error);
	assert_non_null(strstr(error, "cannot create directory"));
	free(error);
	event_base_free(base);
}

/* Start-up scan. */

struct scan_seen {
	size_t count;
	char ids[16][MSGID_SIZE];
	bool bob_delivered[16];
};

static void
scan_collect(void *arg, const char *id, struct spool_header *header)
{
	struct scan_seen *seen = arg;

	if (seen->count < ARRAY_SIZE(seen->ids)) {
		snprintf(seen->ids[seen->count], MSGID_SIZE, "%s", id);
		seen->bob_delivered[seen->count] =
		    spool_header_is_delivered(header, "bob@example.net");
		assert_string_equal(header->id, id);
	}
	seen->count++;
	spool_header_free(header);
	free(header);
}

static bool
seen_has(const struct scan_seen *seen, const char *id)
{
	for (size_t i = 0; i < seen->count && i < ARRAY_SIZE(seen->ids); i++)
		if (strcmp(seen->ids[i], id) == 0)
			return true;
	return false;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (fp == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(text, 1, len, fp), len);
	fclose(fp);
}

/* Writes a message's -H (and -D unless data is NULL) by hand. */
static void
plant_message(struct fixture *f, bool split, const char *id,
    const char *header, size_t header_len, const char *data)
{
	char *path = spool_file(f, split, id, "-H");

	write_file(path, header, header_len);
	free(path);
	if (data != NULL) {
		path = spool_file(f, split, id, "-D");
		write_file(path, data, strlen(data));
		free(path);
	}
}

/* Sends the store's log lines to <spool>/log/mainlog and paniclog. */
static void
configure_logs(struct fixture *f)
{
	struct config config;
	char *error = NULL;

	memset(&config, 0, sizeof(config));
	config.spool_directory = f->root;
	if (log_configure(&config, &error) != 0)
		fail_msg("log_configure: %s", error);
}

static char *
read_log(struct fixture *f, const char *name)
{
	char *path = xasprintf("%s/log/%s", f->root, name);
	char *text;

	log_close();
	text = read_whole(path);
	free(path);
	return text != NULL ? text : xstrdup("");
}

static void
scan_finds_both_layouts(void **state)
{
	struct fixture *f = *state;
	struct spool_scan_result result;
	struct scan_seen seen = { 0 };
	char flat[MSGID_SIZE], split[MSGID_SIZE], classic[MSGID_SIZE];
	char *error = NULL;

	/* One message written without split, two with it, one of them in
	 * the classic id form, and a journal on one. */
	make_id(flat, 0, 20);
	commit_message(f, flat, "body\n");
	spool_store_free(f->store);
	fixture_open_store(f, true);
	make_id(split, 5, 21);
	commit_message(f, split, "body\n");
	snprintf(classic, sizeof(classic), "1tt1Jd-000CXd-DI");
	commit_message(f, classic, "body\n");
	spool_store_journal_append(f->store, split, "bob@example.net",
	    store_cb, f);
	run_until(f, 4);
	assert_int_equal(f->last_result, 0);

	assert_int_equal(spool_store_scan(f->store, scan_collect, &seen,
	    &result, &error), 0);
	assert_int_equal(result.messages, 3);
	assert_int_equal(result.broken, 0);
	assert_int_equal(result.removed, 0);
	assert_int_equal(seen.count, 3);
	assert_true(seen_has(&seen, flat));
	assert_true(seen_has(&seen, split));
	assert_true(seen_has(&seen, classic));
	for (size_t i = 0; i < seen.count; i++)
		assert_int_equal(seen.bob_delivered[i],
		    strcmp(seen.ids[i], split) == 0);
}

static void
scan_moves_broken_messages(void **state)
{
	struct fixture *f = *state;
	struct spool_scan_result result;
	struct scan_seen seen = { 0 };
	char good[MSGID_SIZE], garbage[MSGID_SIZE], no_data[MSGID_SIZE];
	char bad_journal[MSGID_SIZE], *header, *path, *mainlog, *paniclog;
	char *error = NULL, *journal, line[256];
	size_t len;

	configure_logs(f);
	make_id(good, 0, 30);
	make_id(garbage, 0, 31);
	make_id(no_data, 0, 32);
	make_id(bad_journal, 0, 33);

	header = make_header(good, "bob@example.net", &len);
	plant_message(f, false, good, header, len, "x-D\nbody\n");
	free(header);
	plant_message(f, false, garbage, "garbage\x01\n", 9, "x-D\nbody\n");
	header = make_header(no_data, "bob@example.net", &len);
	plant_message(f, false, no_data, header, len, NULL);
	free(header);
	header = make_header(bad_journal, "bob@example.net", &len);
	plant_message(f, false, bad_journal, header, len, "x-D\nbody\n");
	free(header);
	journal = xmalloc(SPOOL_HEADER_ADDRESS_MAX + 3);
	memset(journal, 'a', SPOOL_HEADER_ADDRESS_MAX + 1);
	memcpy(journal + SPOOL_HEADER_ADDRESS_MAX + 1, "\n", 2);
	path = spool_file(f, false, bad_journal, "-J");
	write_file(path, journal, strlen(journal));
	free(path);
	free(journal);

	assert_int_equal(spool_store_scan(f->store, scan_collect, &seen,
	    &result, &error), 0);
	assert_int_equal(result.messages, 1);
	assert_true(seen_has(&seen, good));
	assert_int_equal(result.broken, 3);

	/* Each broken message's files are now in input/.broken/. */
	for (const char *const *id = (const char *const[]){ garbage, no_data,
	    bad_journal, NULL }; *id != NULL; id++) {
		path = spool_file(f, false, *id, "-H");
		assert_false(file_exists(path));
		free(path);
		path = xasprintf("%s/input/.broken/%s-H", f->root, *id);
		assert_true(file_exists(path));
		free(path);
	}
	path = xasprintf("%s/input/.broken/%s-J", f->root, bad_journal);
	assert_true(file_exists(path));
	free(path);
	path = xasprintf("%s/input/.broken/%s-D", f->root, garbage);
	assert_true(file_exists(path));
	free(path);

	mainlog = read_log(f, "mainlog");
	paniclog = read_log(f, "paniclog");
	snprintf(line, sizeof(line),
	    "input/%s-H: moved to input/.broken: data file %s-D is missing",
	    no_data, no_data);
	if (strstr(mainlog, line) == NULL)
		fail_msg("mainlog lacks \"%s\"; got:\n%s", line, mainlog);
	if (strstr(paniclog, line) == NULL)
		fail_msg("paniclog lacks \"%s\"; got:\n%s", line, paniclog);
	snprintf(line, sizeof(line), "input/%s-H: moved to input/.broken: ",
	    garbage);
	assert_non_null(strstr(mainlog, line));
	snprintf(line, sizeof(line), "input/%s-H: moved to input/.broken: "
	    "%s-J: ", bad_journal, bad_journal);
	assert_non_null(strstr(mainlog, line));
	/* The file's raw control byte never reaches the log. */
	assert_null(strchr(mainlog, '\x01'));
	free(mainlog);
	free(paniclog);
}

static void
scan_removes_leftovers(void **state)
{
	struct fixture *f = *state;
	struct spool_scan_result result;
	struct scan_seen seen = { 0 };
	struct spool_data *receiving;
	char orphan[MSGID_SIZE], busy[MSGID_SIZE], journal_only[MSGID_SIZE];
	char *error = NULL, *path, *mainlog, line[256];

	configure_logs(f);
	make_id(orphan, 0, 40);
	make_id(busy, 0, 41);
	make_id(journal_only, 0, 42);

	/* A reception that stopped before its commit, one still running
	 * (its -D is locked), a journal of a removed message, a temporary
	 * -H and a file the spool does not own. */
	path = spool_file(f, false, orphan, "-D");
	write_file(path, "x-D\nbody\n", 9);
	free(path);
	receiving = spool_store_data_create(f->store, busy, &error);
	assert_non_null(receiving);
	path = spool_file(f, false, journal_only, "-J");
	write_file(path, "bob@example.net\n", 16);
	free(path);
	path = xasprintf("%s/input/hdr.%s", f->root, orphan);
	write_file(path, "partial", 7);
	free(path);
	path = xasprintf("%s/input/README", f->root);
	write_file(path, "keep\n", 5);
	free(path);

	assert_int_equal(spool_store_scan(f->store, scan_collect, &seen,
	    &result, &error), 0);
	assert_int_equal(result.messages, 0);
	assert_int_equal(result.broken, 0);
	assert_int_equal(result.removed, 3);

	path = spool_file(f, false, orphan, "-D");
	assert_false(file_exists(path));
	free(path);
	path = spool_file(f, false, busy, "-D");
	assert_true(file_exists(path));
	free(path);
	path = spool_file(f, false, journal_only, "-J");
	assert_false(file_exists(path));
	free(path);
	path = xasprintf("%s/input/README", f->root);
	assert_true(file_exists(path));
	free(path);
	assert_int_equal(input_file_count(f), 2);

	mainlog = read_log(f, "mainlog");
	snprintf(line, sizeof(line), "input/%s-D: removed: no -H file", orphan);
	if (strstr(mainlog, line) == NULL)
		fail_msg("mainlog lacks \"%s\"; got:\n%s", line, mainlog);
	free(mainlog);
	spool_data_abort(receiving);
}

static void
scan_prefers_expected_layout(void **state)
{
	struct fixture *f = *state;
	struct spool_scan_result result;
	struct scan_seen seen = { 0 };
	char id[MSGID_SIZE], *header, *path, *error = NULL;
	size_t len;

	/* The same message in both layouts; the store uses split, so the
	 * copy in input/ itself is the stray one. */
	configure_logs(f);
	make_id(id, 0, 50);
	header = make_header(id, "bob@example.net", &len);
	plant_message(f, true, id, header, len, "x-D\nbody\n");
	plant_message(f, false, id, header, len, "x-D\nbody\n");
	free(header);

	assert_int_equal(spool_store_scan(f->store, scan_collect, &seen,
	    &result, &error), 0);
	assert_int_equal(result.messages, 1);
	assert_int_equal(result.broken, 1);
	path = spool_file(f, true, id, "-H");
	assert_true(file_exists(path));
	free(path);
	path = spool_file(f, false, id, "-H");
	assert_false(file_exists(path));
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(commit_writes_both_files,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(commit_syncs_before_success,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(commit_failure_each_step,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(commit_rejects_bad_input,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(data_write_streams_large_body,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(group_commit_one_round,
		    setup_split, teardown),
		cmocka_unit_test_setup_teardown(group_commit_syncfs_failure,
		    setup_split, teardown),
		cmocka_unit_test_setup_teardown(group_commit_dir_failure,
		    setup_split, teardown),
		cmocka_unit_test_setup_teardown(group_commit_failure_each_step,
		    setup_split, teardown),
		cmocka_unit_test_setup_teardown(group_commit_without_syncfs,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(journal_append_is_synced,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(journal_rejects_bad_address,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(journal_missing_message_fails,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(rewrite_replaces_header_and_journal,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(rewrite_failure_keeps_old_header,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(remove_deletes_every_file,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(same_message_keeps_order,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(split_layout_uses_sixth_character,
		    setup_split, teardown),
		cmocka_unit_test_setup_teardown(readers_find_other_layout,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(lock_held_while_receiving,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(lock_missing_message,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(classic_id_committed,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(store_new_creates_split_tree,
		    setup_split, teardown),
		cmocka_unit_test(store_new_reports_bad_directory),
		cmocka_unit_test_setup_teardown(scan_finds_both_layouts,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(scan_moves_broken_messages,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(scan_removes_leftovers,
		    setup_flat, teardown),
		cmocka_unit_test_setup_teardown(scan_prefers_expected_layout,
		    setup_split, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

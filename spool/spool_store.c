/*
 * spool_store.c - the spool store's loop-thread side (see spool_store.h):
 * opening the spool, receiving -D files, queueing operations for the
 * commit worker (spool_commit.c) and delivering its results.
 *
 * Ownership: a struct spool_data belongs to the caller until it is
 * committed or aborted. A queued job belongs to the worker until it is on
 * the done list, and then to the loop thread, which frees it after its
 * callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <event2/event.h>

#include "spool_store.h"
#include "spool_store_private.h"
#include "util.h"

/* Maximum length of spool_directory, leaving room for "/msglog/d/<id>"
 * and "/input/d/hdr.<id>" below it. */
#define SPOOL_DIRECTORY_MAX	(PATH_MAX - 64)

struct spool_data {
	struct spool_store *store;
	char id[MSGID_SIZE];
	char *dir;
	char *path;		/* <dir>/<id>-D */
	int fd;
	uint64_t body_size;
	size_t buffered;
	char buffer[SPOOL_DATA_BUFFER_SIZE];
};

const char spool_base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void notify_cb(evutil_socket_t fd, short what, void *arg);

void
spool_job_list_init(struct spool_job_list *list)
{
	list->head = NULL;
	list->tail = &list->head;
	list->count = 0;
}

void
spool_job_list_append(struct spool_job_list *list, struct spool_job *job)
{
	job->next = NULL;
	*list->tail = job;
	list->tail = &job->next;
	list->count++;
}

char *
spool_input_dir(const struct spool_store *store, const char *id, bool split)
{
	if (split)
		return xasprintf("%s/input/%c", store->spool_directory, id[5]);
	return xasprintf("%s/input", store->spool_directory);
}

char *
spool_msglog_path(const struct spool_store *store, const char *id,
    bool split)
{
	if (split)
		return xasprintf("%s/msglog/%c/%s", store->spool_directory,
		    id[5], id);
	return xasprintf("%s/msglog/%s", store->spool_directory, id);
}

void
spool_job_fail(struct spool_job *job, const char *what, const char *path,
    int errnum)
{
	if (job->result != 0)
		return;
	job->result = -1;
	job->error = xasprintf("%s %s: %s", what, path, strerror(errnum));
}

static bool
id_valid(const char *id)
{
	return id != NULL && msgid_valid(id, strnlen(id, MSGID_SIZE));
}

static struct spool_job *
job_new(enum spool_job_kind kind, const char *id, spool_store_cb cb,
    void *arg)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));

	job->kind = kind;
	job->data_fd = -1;
	job->temp_fd = -1;
	job->cb = cb;
	job->arg = arg;
	if (id_valid(id))
		strlcpy_s(job->id, id, sizeof(job->id));
	return job;
}

static void
job_free(struct spool_job *job)
{
	free(job->dir);
	free(job->bytes);
	free(job->error);
	free(job);
}

/* Hands a job to the worker. */
static void
store_enqueue(struct spool_store *store, struct spool_job *job)
{
	pthread_mutex_lock(&store->mutex);
	spool_job_list_append(&store->queued, job);
	pthread_cond_signal(&store->cond);
	pthread_mutex_unlock(&store->mutex);
}

/* Puts a job that failed before reaching the worker on the done list, so
 * that its callback runs from the loop as every other one does. */
static void
store_finish_now(struct spool_store *store, struct spool_job *job,
    const char *error)
{
	uint64_t wake = 1;
	ssize_t n;

	job->result = -1;
	job->error = xstrdup(error);
	pthread_mutex_lock(&store->mutex);
	spool_job_list_append(&store->done, job);
	pthread_mutex_unlock(&store->mutex);
	/* A full eventfd counter (EAGAIN) still wakes the loop. */
	n = write(store->notify_fd, &wake, sizeof(wake));
	(void)n;
}

/* Runs the callbacks of every finished job and frees the jobs. */
static void
store_deliver_done(struct spool_store *store)
{
	struct spool_job *job, *next;

	pthread_mutex_lock(&store->mutex);
	job = store->done.head;
	spool_job_list_init(&store->done);
	pthread_mutex_unlock(&store->mutex);

	for (; job != NULL; job = next) {
		next = job->next;
		if (job->cb != NULL)
			job->cb(job->arg, job->result, job->error);
		job_free(job);
	}
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spool_store *store = arg;
	uint64_t count;
	ssize_t n;

	/* Only the wake-up matters: the done list contains the jobs. */
	n = read(fd, &count, sizeof(count));
	(void)n;
	store_deliver_done(store);
}

/* True if syncfs(2) reports write-back errors, which Linux does from 5.8
 * on (syncfs(2) manual page). Before that it returns 0 even when data
 * was lost, so the store must not rely on it. */
static bool
syncfs_reports_errors(void)
{
	struct utsname name;
	unsigned major, minor;

	if (uname(&name) != 0 ||
	    sscanf(name.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 8);
}

/* Creates path as a directory unless it exists. Returns 1 if it was
 * created, 0 if it existed, -1 with *error set. */
static int
make_dir(struct spool_store *store, const char *path, char **error)
{
	const struct spool_backend *b = store->backend;

	if (b->mkdir(b->ctx, path, SPOOL_DIR_MODE) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	*error = xasprintf("cannot create directory %s: %s", path,
	    strerror(errno));
	return -1;
}

/* Creates <spool>/<name> and, with split, its 62 sub-directories. Every
 * directory that gained an entry is synced, so the tree survives a crash
 * before the first commit relies on it. */
static int
make_tree(struct spool_store *store, const char *name, char **error)
{
	const struct spool_backend *b = store->backend;
	char *top = xasprintf("%s/%s", store->spool_directory, name);
	char *sub = NULL;
	int rc = -1, created, created_sub = 0;

	created = make_dir(store, top, error);
	if (created < 0)
		goto out;
	if (created && b->fsync_dir(b->ctx, store->spool_directory) != 0) {
		*error = xasprintf("cannot sync directory %s: %s",
		    store->spool_directory, strerror(errno));
		goto out;
	}
	for (size_t i = 0; store->split && spool_base62[i] != '\0'; i++) {
		free(sub);
		sub = xasprintf("%s/%c", top, spool_base62[i]);
		created = make_dir(store, sub, error);
		if (created < 0)
			goto out;
		created_sub |= created;
	}
	if (created_sub && b->fsync_dir(b->ctx, top) != 0) {
		*error = xasprintf("cannot sync directory %s: %s", top,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(sub);
	free(top);
	return rc;
}

struct spool_store *
spool_store_new(struct event_base *base, const char *spool_directory,
    bool split, const struct spool_backend *backend, char **error)
{
	struct spool_store *store;
	const struct spool_backend *b;
	char *input = NULL;

	if (strlen(spool_directory) > SPOOL_DIRECTORY_MAX) {
		*error = xasprintf("spool_directory is longer than %d bytes",
		    SPOOL_DIRECTORY_MAX);
		return NULL;
	}

	store = xcalloc(1, sizeof(*store));
	store->backend = b = backend != NULL ? backend : spool_backend_posix();
	store->spool_directory = xstrdup(spool_directory);
	store->split = split;
	store->use_syncfs = b->syncfs != NULL && syncfs_reports_errors();
	store->base = base;
	store->input_fd = -1;
	store->notify_fd = -1;
	spool_job_list_init(&store->queued);
	spool_job_list_init(&store->done);
	pthread_mutex_init(&store->mutex, NULL);
	pthread_cond_init(&store->cond, NULL);

	if (make_dir(store, spool_directory, error) < 0 ||
	    make_tree(store, "input", error) != 0 ||
	    make_tree(store, "msglog", error) != 0)
		goto fail;

	input = xasprintf("%s/input", spool_directory);
	store->input_fd = b->open(b->ctx, input,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (store->input_fd == -1) {
		*error = xasprintf("cannot open %s: %s", input,
		    strerror(errno));
		goto fail;
	}

	store->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (store->notify_fd == -1) {
		*error = xasprintf("cannot create an eventfd: %s",
		    strerror(errno));
		goto fail;
	}
	store->notify_event = event_new(base, store->notify_fd,
	    EV_READ | EV_PERSIST, notify_cb, store);
	if (store->notify_event == NULL || event_add(store->notify_event,
	    NULL) != 0)
		fatalx("cannot create the spool store's libevent event");

	if (pthread_create(&store->worker, NULL, spool_commit_worker,
	    store) != 0)
		fatalx("cannot start the spool commit worker thread");
	store->worker_started = true;
	free(input);
	return store;

fail:
	free(input);
	spool_store_free(store);
	return NULL;
}

void
spool_store_free(struct spool_store *store)
{
	const struct spool_backend *b;

	if (store == NULL)
		return;
	b = store->backend;

	if (store->worker_started) {
		pthread_mutex_lock(&store->mutex);
		store->stopping = true;
		store->held = false;
		pthread_cond_signal(&store->cond);
		pthread_mutex_unlock(&store->mutex);
		pthread_join(store->worker, NULL);
	}
	store_deliver_done(store);

	if (store->notify_event != NULL)
		event_free(store->notify_event);
	if (store->notify_fd != -1)
		close(store->notify_fd);
	if (store->input_fd != -1)
		b->close(b->ctx, store->input_fd);
	pthread_cond_destroy(&store->cond);
	pthread_mutex_destroy(&store->mutex);
	free(store->spool_directory);
	free(store);
}

struct spool_data *
spool_store_data_create(struct spool_store *store, const char *id,
    char **error)
{
	const struct spool_backend *b = store->backend;
	struct spool_data *data;
	size_t id_len;
	char first_line[MSGID_SIZE + 3];

	if (!id_valid(id)) {
		*error = xstrdup("invalid message id for a spool file");
		return NULL;
	}
	id_len = strlen(id);

	data = xcalloc(1, sizeof(*data));
	data->store = store;
	strlcpy_s(data->id, id, sizeof(data->id));
	data->dir = spool_input_dir(store, id, store->split);
	data->path = xasprintf("%s/%s-D", data->dir, id);

	/* O_EXCL: an existing -D file belongs to another message or
	 * another process, never to us. */
	data->fd = b->open(b->ctx, data->path,
	    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    SPOOL_FILE_MODE);
	if (data->fd == -1) {
		*error = xasprintf("cannot create %s: %s", data->path,
		    strerror(errno));
		goto fail;
	}

	/* The umask may have taken the group's read bit away. */
	if (b->fchmod(b->ctx, data->fd, SPOOL_FILE_MODE) != 0) {
		*error = xasprintf("cannot set the mode of %s: %s", data->path,
		    strerror(errno));
		goto fail_unlink;
	}

	/* Exim's lock covers the first line, "<id>-D\n". */
	if (b->lock(b->ctx, data->fd, (off_t)(id_len + 3)) != 0) {
		*error = xasprintf("cannot lock %s: %s", data->path,
		    strerror(errno));
		goto fail_unlink;
	}

	memcpy(first_line, id, id_len);
	memcpy(first_line + id_len, "-D\n", 3);
	if (spool_backend_write_all(b, data->fd, first_line, id_len + 3) != 0) {
		*error = xasprintf("cannot write %s: %s", data->path,
		    strerror(errno));
		goto fail_unlink;
	}
	return data;

fail_unlink:
	b->unlink(b->ctx, data->path);
fail:
	if (data->fd != -1)
		b->close(b->ctx, data->fd);
	free(data->path);
	free(data->dir);
	free(data);
	return NULL;
}

static int
data_flush(struct spool_data *data, char **error)
{
	const struct spool_backend *b = data->store->backend;

	if (data->buffered == 0)
		return 0;
	if (spool_backend_write_all(b, data->fd, data->buffer,
	    data->buffered) != 0) {
		*error = xasprintf("cannot write %s: %s", data->path,
		    strerror(errno));
		return -1;
	}
	data->buffered = 0;
	return 0;
}

int
spool_data_write(struct spool_data *data, const void *buf, size_t len,
    char **error)
{
	const char *p = buf;

	/* NOTE: write(2) on the loop thread can block when the kernel
	 * throttles a writer with too many dirty pages. Moving these writes
	 * to the worker would cost a copy of every body chunk. */
	while (len > 0) {
		size_t room = sizeof(data->buffer) - data->buffered;
		size_t n = len < room ? len : room;

		memcpy(data->buffer + data->buffered, p, n);
		data->buffered += n;
		data->body_size += n;
		p += n;
		len -= n;
		if (data->buffered == sizeof(data->buffer) &&
		    data_flush(data, error) != 0)
			return -1;
	}
	return 0;
}

uint64_t
spool_data_size(const struct spool_data *data)
{
	return data->body_size;
}

static void
data_free(struct spool_data *data)
{
	free(data->path);
	free(data->dir);
	free(data);
}

void
spool_data_abort(struct spool_data *data)
{
	const struct spool_backend *b;

	if (data == NULL)
		return;
	b = data->store->backend;
	b->unlink(b->ctx, data->path);
	b->close(b->ctx, data->fd);
	data_free(data);
}

/* True if header starts with the first line of id's -H file. */
static bool
header_matches(const char *id, const void *header, size_t len)
{
	size_t id_len = strlen(id);

	return len >= id_len + 3 && memcmp(header, id, id_len) == 0 &&
	    memcmp((const char *)header + id_len, "-H\n", 3) == 0;
}

void
spool_store_commit(struct spool_store *store, struct spool_data *data,
    const void *header, size_t len, spool_store_cb cb, void *arg)
{
	struct spool_job *job = job_new(SPOOL_JOB_COMMIT, data->id, cb, arg);
	char *error = NULL;

	job->dir = data->dir;
	data->dir = NULL;

	if (!header_matches(data->id, header, len) ||
	    len > SPOOL_HEADER_FILE_MAX) {
		spool_data_abort(data);
		store_finish_now(store, job, len > SPOOL_HEADER_FILE_MAX ?
		    "spool header is larger than the maximum -H file size" :
		    "spool header does not start with the message's -H line");
		return;
	}
	if (data_flush(data, &error) != 0) {
		spool_data_abort(data);
		store_finish_now(store, job, error);
		free(error);
		return;
	}

	job->data_fd = data->fd;	/* the worker closes it */
	job->bytes = xmalloc(len > 0 ? len : 1);
	memcpy(job->bytes, header, len);
	job->len = len;
	data_free(data);
	store_enqueue(store, job);
}

void
spool_store_journal_append(struct spool_store *store, const char *id,
    const char *address, spool_store_cb cb, void *arg)
{
	struct spool_job *job = job_new(SPOOL_JOB_JOURNAL, id, cb, arg);
	size_t len = strnlen(address, SPOOL_JOURNAL_LINE_MAX + 1);

	if (!id_valid(id)) {
		store_finish_now(store, job, "invalid message id for a journal");
		return;
	}
	if (len == 0 || len > SPOOL_JOURNAL_LINE_MAX ||
	    memchr(address, '\n', len) != NULL) {
		store_finish_now(store, job, "invalid journal address: empty, "
		    "too long or containing a newline");
		return;
	}
	job->bytes = xmalloc(len + 1);
	memcpy(job->bytes, address, len);
	job->bytes[len] = '\n';
	job->len = len + 1;
	store_enqueue(store, job);
}

void
spool_store_header_rewrite(struct spool_store *store, const char *id,
    const void *header, size_t len, spool_store_cb cb, void *arg)
{
	struct spool_job *job = job_new(SPOOL_JOB_REWRITE, id, cb, arg);

	if (!id_valid(id)) {
		store_finish_now(store, job,
		    "invalid message id for a header rewrite");
		return;
	}
	if (!header_matches(id, header, len) || len > SPOOL_HEADER_FILE_MAX) {
		store_finish_now(store, job, len > SPOOL_HEADER_FILE_MAX ?
		    "spool header is larger than the maximum -H file size" :
		    "spool header does not start with the message's -H line");
		return;
	}
	job->bytes = xmalloc(len);
	memcpy(job->bytes, header, len);
	job->len = len;
	store_enqueue(store, job);
}

void
spool_store_remove(struct spool_store *store, const char *id,
    spool_store_cb cb, void *arg)
{
	struct spool_job *job = job_new(SPOOL_JOB_REMOVE, id, cb, arg);

	if (!id_valid(id)) {
		store_finish_now(store, job, "invalid message id for a removal");
		return;
	}
	store_enqueue(store, job);
}

int
spool_store_lock(struct spool_store *store, const char *id, int *fd,
    char **error)
{
	const struct spool_backend *b = store->backend;
	char *path = NULL;
	int rc = -1, saved_errno = ENOENT;

	if (!id_valid(id)) {
		*error = xstrdup("invalid message id to lock");
		return -1;
	}

	*fd = -1;
	for (int pass = 0; pass < 2 && *fd == -1; pass++) {
		bool split = pass == 0 ? store->split : !store->split;
		char *dir = spool_input_dir(store, id, split);

		free(path);
		path = xasprintf("%s/%s-D", dir, id);
		free(dir);
		*fd = b->open(b->ctx, path,
		    O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0);
		if (*fd == -1 && errno != ENOENT) {
			saved_errno = errno;
			break;
		}
	}
	if (*fd == -1) {
		*error = xasprintf("cannot open %s: %s", path,
		    strerror(saved_errno));
		goto out;
	}

	if (b->lock(b->ctx, *fd, (off_t)(strlen(id) + 3)) != 0) {
		saved_errno = errno;
		b->close(b->ctx, *fd);
		*fd = -1;
		if (saved_errno == EAGAIN || saved_errno == EACCES) {
			rc = SPOOL_LOCK_BUSY;
			goto out;
		}
		*error = xasprintf("cannot lock %s: %s", path,
		    strerror(saved_errno));
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

void
spool_store_stats(struct spool_store *store, struct spool_store_stats *out)
{
	pthread_mutex_lock(&store->mutex);
	*out = store->stats;
	pthread_mutex_unlock(&store->mutex);
}

#ifdef SLUICE_TEST_HOOKS
void
spool_store_hold(struct spool_store *store, bool hold)
{
	pthread_mutex_lock(&store->mutex);
	store->held = hold;
	pthread_cond_signal(&store->cond);
	pthread_mutex_unlock(&store->mutex);
}
#endif

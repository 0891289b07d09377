/*
 * spool_commit.c - the spool store's commit worker (see spool_store.h).
 *
 * One thread takes every queued operation at once (at most
 * SPOOL_ROUND_MAX) and runs them as one round:
 *   1. write: the temporary -H of each commit and rewrite, the line of
 *      each journal append;
 *   2. data barrier: fdatasync(2) of each file when the round has one
 *      operation to sync, else one syncfs(2) on the spool's file system;
 *   3. rename each temporary -H over <id>-H;
 *   4. directory barrier: one fsync per directory that gained an entry;
 *   5. finish: close files, undo failed commits, remove the -J files
 *      that rewrites made redundant, do the removals;
 * and then hands the whole round to the loop thread with one eventfd
 * write. An operation fails when any step of it fails; a failed commit
 * removes every file of its message.
 *
 * syncfs(2) flushes the whole file system, not only the spool. It
 * reports a write-back error of any file on that file system since the
 * previous call, so such an error fails every operation of the round.
 * Linux before 5.8 reports no write-back errors from syncfs(2) at all
 * (syncfs(2) manual page), so there the worker syncs each file on its
 * own and batches only the directory syncs and the notification.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool_store.h"
#include "spool_store_private.h"
#include "util.h"

/* The distinct directories of a round, each synced once. Split layout
 * has 62 sub-directories plus input/ itself. */
#define ROUND_DIRS_MAX	64

struct round {
	struct spool_store *store;
	struct spool_job_list jobs;
	bool per_file;		/* fdatasync each file, no syncfs(2) */
	uint64_t sync_calls;
	const char *dirs[ROUND_DIRS_MAX];	/* borrowed from the jobs */
	size_t dir_count;
};

static char *
temp_path(const struct spool_job *job)
{
	return xasprintf("%s/hdr.%s", job->dir, job->id);
}

static char *
file_path(const struct spool_job *job, const char *suffix)
{
	return xasprintf("%s/%s%s", job->dir, job->id, suffix);
}

/* Sets job->dir to where the message's -H file is: the expected layout
 * first, then the other. Returns 0, or -1 after failing the job. */
static int
job_locate(struct spool_store *store, struct spool_job *job)
{
	const struct spool_backend *b = store->backend;
	struct stat st;
	char *path = NULL;

	for (int pass = 0; pass < 2; pass++) {
		bool split = pass == 0 ? store->split : !store->split;

		free(job->dir);
		job->dir = spool_input_dir(store, job->id, split);
		free(path);
		path = file_path(job, "-H");
		if (b->stat(b->ctx, path, &st) == 0) {
			free(path);
			return 0;
		}
		if (errno != ENOENT)
			break;
	}
	spool_job_fail(job, "cannot find", path, errno);
	free(path);
	return -1;
}

/* Opens path for writing, sets its mode and writes bytes. When close_now
 * is set the file is closed at once, else job->temp_fd keeps it open for
 * its fdatasync. Returns 0, or -1 after failing the job. */
static int
write_file(struct round *round, struct spool_job *job, const char *path,
    int flags, bool close_now)
{
	const struct spool_backend *b = round->store->backend;
	int fd;

	fd = b->open(b->ctx, path, flags | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
	    SPOOL_FILE_MODE);
	if (fd == -1) {
		spool_job_fail(job, "cannot open", path, errno);
		return -1;
	}
	job->temp_fd = fd;
	if (job->kind != SPOOL_JOB_JOURNAL)
		job->temp_created = true;

	if (b->fchmod(b->ctx, fd, SPOOL_FILE_MODE) != 0) {
		spool_job_fail(job, "cannot set the mode of", path, errno);
		return -1;
	}
	if (spool_backend_write_all(b, fd, job->bytes, job->len) != 0) {
		spool_job_fail(job, "cannot write", path, errno);
		return -1;
	}
	if (close_now) {
		job->temp_fd = -1;
		if (b->close(b->ctx, fd) != 0) {
			spool_job_fail(job, "cannot close", path, errno);
			return -1;
		}
	}
	return 0;
}

/* Step 1. */
static void
round_write(struct round *round, struct spool_job *job)
{
	char *path = NULL;

	switch (job->kind) {
	case SPOOL_JOB_COMMIT:
		path = temp_path(job);
		write_file(round, job, path, O_CREAT | O_TRUNC,
		    !round->per_file);
		break;
	case SPOOL_JOB_REWRITE:
		if (job_locate(round->store, job) != 0)
			break;
		path = temp_path(job);
		write_file(round, job, path, O_CREAT | O_TRUNC,
		    !round->per_file);
		break;
	case SPOOL_JOB_JOURNAL:
		if (job_locate(round->store, job) != 0)
			break;
		path = file_path(job, "-J");
		write_file(round, job, path, O_CREAT | O_APPEND,
		    !round->per_file);
		break;
	case SPOOL_JOB_REMOVE:
		break;
	}
	free(path);
}

static int
sync_fd(struct round *round, struct spool_job *job, int fd,
    const char *suffix)
{
	const struct spool_backend *b = round->store->backend;
	char *path;

	round->sync_calls++;
	if (b->fdatasync(b->ctx, fd) == 0)
		return 0;
	path = suffix != NULL ? file_path(job, suffix) : temp_path(job);
	spool_job_fail(job, "cannot sync", path, errno);
	free(path);
	return -1;
}

/* Step 2 for a round with one operation to sync. */
static void
round_sync_files(struct round *round, struct spool_job *job)
{
	const struct spool_backend *b = round->store->backend;
	const char *temp_suffix = job->kind == SPOOL_JOB_JOURNAL ? "-J" : NULL;
	int fd;

	if (job->result != 0 || job->kind == SPOOL_JOB_REMOVE)
		return;
	if (job->data_fd != -1 && sync_fd(round, job, job->data_fd, "-D") != 0)
		return;
	if (sync_fd(round, job, job->temp_fd, temp_suffix) != 0)
		return;

	fd = job->temp_fd;
	job->temp_fd = -1;
	if (b->close(b->ctx, fd) != 0) {
		char *path = temp_suffix != NULL ? file_path(job, temp_suffix) :
		    temp_path(job);

		spool_job_fail(job, "cannot close", path, errno);
		free(path);
	}
}

/* Step 2. */
static void
round_sync_data(struct round *round)
{
	struct spool_store *store = round->store;
	const struct spool_backend *b = store->backend;
	struct spool_job *job;
	bool any = false;
	char *input;
	int saved_errno;

	if (round->per_file) {
		for (job = round->jobs.head; job != NULL; job = job->next)
			round_sync_files(round, job);
		return;
	}

	for (job = round->jobs.head; job != NULL; job = job->next)
		any |= job->result == 0 && job->kind != SPOOL_JOB_REMOVE;
	if (!any)
		return;
	round->sync_calls++;
	if (b->syncfs(b->ctx, store->input_fd) == 0)
		return;

	saved_errno = errno;
	input = xasprintf("%s/input", store->spool_directory);
	for (job = round->jobs.head; job != NULL; job = job->next)
		if (job->kind != SPOOL_JOB_REMOVE)
			spool_job_fail(job, "cannot sync the file system of",
			    input, saved_errno);
	free(input);
}

static void
round_add_dir(struct round *round, const char *dir)
{
	for (size_t i = 0; i < round->dir_count; i++)
		if (strcmp(round->dirs[i], dir) == 0)
			return;
	/* The split layout has 63 input directories, so this cannot fill. */
	SLUICE_ASSERT(round->dir_count < ROUND_DIRS_MAX);
	round->dirs[round->dir_count++] = dir;
}

/* Step 3, and the list of directories for step 4. */
static void
round_rename(struct round *round)
{
	const struct spool_backend *b = round->store->backend;
	struct spool_job *job;

	for (job = round->jobs.head; job != NULL; job = job->next) {
		char *from, *to;

		if (job->result != 0 || job->kind == SPOOL_JOB_REMOVE)
			continue;
		/* A new -J file's directory entry needs the sync as well. */
		if (job->kind == SPOOL_JOB_JOURNAL) {
			round_add_dir(round, job->dir);
			continue;
		}
		from = temp_path(job);
		to = file_path(job, "-H");
		if (b->rename(b->ctx, from, to) == 0) {
			job->renamed = true;
			round_add_dir(round, job->dir);
		} else {
			spool_job_fail(job, "cannot rename", from, errno);
		}
		free(from);
		free(to);
	}
}

/* Step 4. */
static void
round_sync_dirs(struct round *round)
{
	const struct spool_backend *b = round->store->backend;

	for (size_t i = 0; i < round->dir_count; i++) {
		int saved_errno;

		round->sync_calls++;
		if (b->fsync_dir(b->ctx, round->dirs[i]) == 0)
			continue;
		saved_errno = errno;
		for (struct spool_job *job = round->jobs.head; job != NULL;
		    job = job->next)
			if (job->dir != NULL && job->kind != SPOOL_JOB_REMOVE &&
			    strcmp(job->dir, round->dirs[i]) == 0)
				spool_job_fail(job, "cannot sync directory",
				    round->dirs[i], saved_errno);
	}
}

static void
unlink_quietly(const struct spool_backend *b, const char *path)
{
	b->unlink(b->ctx, path);
}

static void
finish_commit(struct spool_store *store, struct spool_job *job)
{
	const struct spool_backend *b = store->backend;
	char *path;

	if (job->temp_fd != -1) {
		b->close(b->ctx, job->temp_fd);
		job->temp_fd = -1;
	}
	/* Closing the -D file releases the lock taken at its creation. */
	if (b->close(b->ctx, job->data_fd) != 0 && job->result == 0) {
		path = file_path(job, "-D");
		spool_job_fail(job, "cannot close", path, errno);
		free(path);
	}
	job->data_fd = -1;
	if (job->result == 0)
		return;

	/* Leave no half message: -H (or its temporary name) first. */
	if (job->renamed)
		path = file_path(job, "-H");
	else
		path = job->temp_created ? temp_path(job) : NULL;
	if (path != NULL)
		unlink_quietly(b, path);
	free(path);
	path = file_path(job, "-D");
	unlink_quietly(b, path);
	free(path);
}

static void
finish_rewrite(struct spool_store *store, struct spool_job *job)
{
	const struct spool_backend *b = store->backend;
	char *path;

	if (job->temp_fd != -1) {
		b->close(b->ctx, job->temp_fd);
		job->temp_fd = -1;
	}
	if (job->result == 0) {
		/* The new -H contains every address the journal recorded. A
		 * -J left behind by a failed unlink is harmless: its lines
		 * are applied again at start-up and change nothing. */
		path = file_path(job, "-J");
		unlink_quietly(b, path);
		free(path);
	} else if (!job->renamed && job->temp_created) {
		path = temp_path(job);
		unlink_quietly(b, path);
		free(path);
	}
}

/* Unlinks path and frees it. A missing file is no error. */
static void
remove_one(struct spool_store *store, struct spool_job *job, char *path)
{
	const struct spool_backend *b = store->backend;

	if (b->unlink(b->ctx, path) != 0 && errno != ENOENT)
		spool_job_fail(job, "cannot remove", path, errno);
	free(path);
}

/* Removes the message from both layouts, -H first. */
static void
finish_remove(struct spool_store *store, struct spool_job *job)
{
	static const char *const suffixes[] = { "-H", "-J", "-D" };

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		for (int pass = 0; pass < 2; pass++) {
			bool split = pass == 0 ? store->split : !store->split;

			free(job->dir);
			job->dir = spool_input_dir(store, job->id, split);
			remove_one(store, job, file_path(job, suffixes[i]));
		}
	}
	remove_one(store, job, spool_msglog_path(store, job->id, store->split));
	remove_one(store, job, spool_msglog_path(store, job->id, !store->split));
}

/* Step 5. */
static void
round_finish(struct round *round)
{
	struct spool_store *store = round->store;
	const struct spool_backend *b = store->backend;

	for (struct spool_job *job = round->jobs.head; job != NULL;
	    job = job->next) {
		switch (job->kind) {
		case SPOOL_JOB_COMMIT:
			finish_commit(store, job);
			break;
		case SPOOL_JOB_REWRITE:
			finish_rewrite(store, job);
			break;
		case SPOOL_JOB_JOURNAL:
			if (job->temp_fd != -1)
				b->close(b->ctx, job->temp_fd);
			job->temp_fd = -1;
			break;
		case SPOOL_JOB_REMOVE:
			finish_remove(store, job);
			break;
		}
	}
}

/* True if job must wait for a later round because an operation on the
 * same message is already in this one. Operations on one message must
 * run in order: a rewrite removes the -J file, so an append queued after
 * it in the same round would be lost. Commits never wait: their -D file
 * was just created with O_EXCL, so no other operation is for their id. */
static bool
round_conflicts(const struct spool_job_list *taken,
    const struct spool_job *job)
{
	if (job->kind == SPOOL_JOB_COMMIT)
		return false;
	for (const struct spool_job *j = taken->head; j != NULL; j = j->next)
		if (j->kind != SPOOL_JOB_COMMIT && strcmp(j->id, job->id) == 0)
			return true;
	return false;
}

/* Moves the jobs of the next round from the queue. Called locked. */
static void
round_take(struct spool_store *store, struct round *round)
{
	size_t to_sync = 0;

	spool_job_list_init(&round->jobs);
	while (store->queued.head != NULL &&
	    round->jobs.count < SPOOL_ROUND_MAX) {
		struct spool_job *job = store->queued.head;

		if (round_conflicts(&round->jobs, job))
			break;
		store->queued.head = job->next;
		store->queued.count--;
		spool_job_list_append(&round->jobs, job);
		if (job->kind != SPOOL_JOB_REMOVE)
			to_sync++;
	}
	if (store->queued.head == NULL)
		store->queued.tail = &store->queued.head;
	round->per_file = to_sync <= 1 || !store->use_syncfs;
}

/* Adds the round's counters and passes its jobs to the loop thread.
 * Called locked. */
static void
round_report(struct spool_store *store, struct round *round)
{
	struct spool_store_stats *stats = &store->stats;
	uint64_t commits = 0;
	struct spool_job *job, *next;

	stats->rounds++;
	stats->sync_calls += round->sync_calls;
	for (job = round->jobs.head; job != NULL; job = next) {
		next = job->next;
		switch (job->kind) {
		case SPOOL_JOB_COMMIT:
			commits++;
			if (job->result == 0)
				stats->messages_committed++;
			else
				stats->commits_failed++;
			break;
		case SPOOL_JOB_JOURNAL:
			stats->journal_appends += job->result == 0;
			break;
		case SPOOL_JOB_REWRITE:
			stats->header_rewrites += job->result == 0;
			break;
		case SPOOL_JOB_REMOVE:
			stats->removals += job->result == 0;
			break;
		}
		spool_job_list_append(&store->done, job);
	}
	if (commits > 0)
		stats->commit_rounds++;
	if (commits > stats->max_batch)
		stats->max_batch = commits;
}

static void
round_run(struct round *round)
{
	struct spool_job *job;

	for (job = round->jobs.head; job != NULL; job = job->next)
		round_write(round, job);
	round_sync_data(round);
	round_rename(round);
	round_sync_dirs(round);
	round_finish(round);
}

void *
spool_commit_worker(void *arg)
{
	struct spool_store *store = arg;
	uint64_t wake = 1;

	pthread_mutex_lock(&store->mutex);
	for (;;) {
		struct round round;
		ssize_t n;

		while (!store->stopping &&
		    (store->held || store->queued.head == NULL))
			pthread_cond_wait(&store->cond, &store->mutex);
		if (store->queued.head == NULL)
			break;		/* stopping, and nothing left to do */

		memset(&round, 0, sizeof(round));
		round.store = store;
		round_take(store, &round);
		pthread_mutex_unlock(&store->mutex);

		round_run(&round);

		pthread_mutex_lock(&store->mutex);
		round_report(store, &round);
		/* A full eventfd counter (EAGAIN) still wakes the loop. */
		n = write(store->notify_fd, &wake, sizeof(wake));
		(void)n;
	}
	pthread_mutex_unlock(&store->mutex);
	return NULL;
}

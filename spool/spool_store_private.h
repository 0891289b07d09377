/*
 * spool_store_private.h - what spool_store.c, spool_commit.c and
 * spool_scan.c share; not for use outside spool/spool_*.c.
 */
#ifndef SLUICE_SPOOL_STORE_PRIVATE_H
#define SLUICE_SPOOL_STORE_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "msgid.h"
#include "spool_backend.h"
#include "spool_store.h"

enum spool_job_kind {
	SPOOL_JOB_COMMIT,
	SPOOL_JOB_JOURNAL,
	SPOOL_JOB_REWRITE,
	SPOOL_JOB_REMOVE,
};

/* One queued operation. The loop thread builds it, the worker owns it
 * while it is queued or running, and the loop thread frees it after the
 * callback. */
struct spool_job {
	enum spool_job_kind kind;
	char id[MSGID_SIZE];
	char *dir;		/* directory of the message's input files */
	int data_fd;		/* commit: the locked -D file, else -1 */
	int temp_fd;		/* hdr.<id> or -J while written, else -1 */
	char *bytes;		/* -H contents or the journal line */
	size_t len;
	bool temp_created;	/* hdr.<id> exists and is ours to remove */
	bool renamed;		/* hdr.<id> became <id>-H */
	int result;		/* 0, or -1 with error set */
	char *error;
	spool_store_cb cb;
	void *arg;
	struct spool_job *next;
};

struct spool_job_list {
	struct spool_job *head;
	struct spool_job **tail;
	size_t count;
};

struct spool_store {
	const struct spool_backend *backend;
	char *spool_directory;
	bool split;
	bool use_syncfs;	/* one syncfs(2) per round of several */
	int input_fd;		/* input/, for syncfs(2) */

	struct event_base *base;
	struct event *notify_event;
	int notify_fd;		/* eventfd the worker signals */

	pthread_t worker;
	bool worker_started;
	pthread_mutex_t mutex;	/* guards everything below */
	pthread_cond_t cond;	/* signalled when queued grows or on stop */
	struct spool_job_list queued;
	struct spool_job_list done;
	bool stopping;
	bool held;		/* spool_store_hold(): take no new jobs */
	struct spool_store_stats stats;
};

/* Letters a split sub-directory can be named by, in Exim's base 62. */
extern const char spool_base62[];

void spool_job_list_init(struct spool_job_list *list);
void spool_job_list_append(struct spool_job_list *list,
    struct spool_job *job);

/* Directory of a message's input files in one layout; caller frees. */
char *spool_input_dir(const struct spool_store *store, const char *id,
    bool split);
/* Path of msglog/[c/]<id> in one layout; caller frees. */
char *spool_msglog_path(const struct spool_store *store, const char *id,
    bool split);

/* Sets job->result to -1 and job->error to "what path: strerror(errnum)",
 * unless the job already failed. */
void spool_job_fail(struct spool_job *job, const char *what,
    const char *path, int errnum);

/* The worker thread's main function; arg is the store. */
void *spool_commit_worker(void *arg);

#endif

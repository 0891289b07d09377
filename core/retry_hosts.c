/*
 * retry_hosts.c - host-level retry state (see retry_hosts.h).
 *
 * The loop thread owns the in-memory entries. Every change also queues a
 * write (a record, or a deletion) for the writer thread, which takes all
 * queued writes at once, opens the file, applies them and closes it
 * again, so other processes can read it in between.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "retry_db.h"
#include "retry_hosts.h"
#include "util.h"

struct retry_host {
	char *key;
	struct retry_db_record record;
};

/* One queued write: a record, or a deletion when delete is set. */
struct retry_write {
	char *key;
	bool delete;
	struct retry_db_record record;
	struct retry_write *next;
};

struct retry_hosts {
	char *spool_directory;
	struct retry_host *entries;
	size_t count;

	pthread_t writer;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* writes queued, or stopping */
	struct retry_write *pending;	/* in the order queued */
	struct retry_write **pending_tail;
	bool stopping;
};

static struct retry_host *
retry_hosts_find(struct retry_hosts *hosts, const char *key)
{
	for (size_t i = 0; i < hosts->count; i++)
		if (strcmp(hosts->entries[i].key, key) == 0)
			return &hosts->entries[i];
	return NULL;
}

static void
retry_hosts_remove_at(struct retry_hosts *hosts, size_t i)
{
	free(hosts->entries[i].key);
	hosts->entries[i] = hosts->entries[--hosts->count];
}

/* Adds an entry for key, dropping the one due first when full. */
static struct retry_host *
retry_hosts_add(struct retry_hosts *hosts, const char *key)
{
	struct retry_host *h;

	if (hosts->count >= RETRY_HOSTS_MAX) {
		size_t first = 0;

		for (size_t i = 1; i < hosts->count; i++)
			if (hosts->entries[i].record.next_try <
			    hosts->entries[first].record.next_try)
				first = i;
		retry_hosts_remove_at(hosts, first);
	}
	hosts->entries = xreallocarray(hosts->entries, hosts->count + 1,
	    sizeof(*hosts->entries));
	h = &hosts->entries[hosts->count++];
	memset(h, 0, sizeof(*h));
	h->key = xstrdup(key);
	return h;
}

/* ---- the writer thread ---- */

static void
retry_hosts_queue_write(struct retry_hosts *hosts, const char *key,
    const struct retry_db_record *record)
{
	struct retry_write *w = xcalloc(1, sizeof(*w));

	w->key = xstrdup(key);
	w->delete = record == NULL;
	if (record != NULL)
		w->record = *record;
	pthread_mutex_lock(&hosts->lock);
	*hosts->pending_tail = w;
	hosts->pending_tail = &w->next;
	pthread_cond_signal(&hosts->wake);
	pthread_mutex_unlock(&hosts->lock);
}

/* Applies a batch of writes in order; runs on the writer thread. */
static void
retry_hosts_apply(const char *spool_directory, struct retry_write *batch)
{
	struct retry_db *db = NULL;
	char *error = NULL;

	if (retry_db_open(spool_directory, true, &db, &error) != 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "host retry state not "
		    "saved: %s", error);
		free(error);
		return;
	}
	for (struct retry_write *w = batch; w != NULL; w = w->next) {
		int rc = w->delete ? retry_db_delete(db, w->key, &error) :
		    retry_db_put(db, w->key, &w->record, &error);

		if (rc < 0) {
			log_write(LOG_MAIN | LOG_PANIC, NULL, "host retry state "
			    "not saved: %s", error);
			free(error);
			error = NULL;
		}
	}
	retry_db_close(db);
}

static void *
retry_hosts_writer(void *arg)
{
	struct retry_hosts *hosts = arg;

	pthread_mutex_lock(&hosts->lock);
	for (;;) {
		struct retry_write *batch;

		while (hosts->pending == NULL && !hosts->stopping)
			pthread_cond_wait(&hosts->wake, &hosts->lock);
		if (hosts->pending == NULL)
			break;		/* stopping, and nothing left */
		batch = hosts->pending;
		hosts->pending = NULL;
		hosts->pending_tail = &hosts->pending;
		pthread_mutex_unlock(&hosts->lock);

		retry_hosts_apply(hosts->spool_directory, batch);
		while (batch != NULL) {
			struct retry_write *next = batch->next;

			free(batch->key);
			free(batch);
			batch = next;
		}

		pthread_mutex_lock(&hosts->lock);
	}
	pthread_mutex_unlock(&hosts->lock);
	return NULL;
}

/* ---- loading ---- */

struct retry_hosts_load {
	struct retry_hosts *hosts;
	time_t oldest;
};

static void
retry_hosts_load_cb(void *arg, const char *key,
    const struct retry_db_record *record)
{
	struct retry_hosts_load *load = arg;

	/* Only host records ("T:..."); routing and address records are
	 * not kept in this table. */
	if (strncmp(key, "T:", 2) != 0 || record->last_try < load->oldest)
		return;
	retry_hosts_add(load->hosts, key)->record = *record;
}

struct retry_hosts *
retry_hosts_new(const char *spool_directory, char **error)
{
	struct retry_hosts *hosts = xcalloc(1, sizeof(*hosts));
	struct retry_hosts_load load = { hosts,
	    clock_now() - RETRY_HOSTS_DATA_EXPIRE };
	struct retry_db *db = NULL;
	int rc;

	hosts->spool_directory = xstrdup(spool_directory);
	hosts->pending_tail = &hosts->pending;
	pthread_mutex_init(&hosts->lock, NULL);
	pthread_cond_init(&hosts->wake, NULL);
	if ((rc = pthread_create(&hosts->writer, NULL, retry_hosts_writer,
	    hosts)) != 0)
		fatalx("cannot start the host retry writer thread: %s",
		    strerror(rc));

	*error = NULL;
	rc = retry_db_open(spool_directory, false, &db, error);
	if (rc == 0) {
		retry_db_each(db, retry_hosts_load_cb, &load, error);
		retry_db_close(db);
	}
	return hosts;
}

void
retry_hosts_free(struct retry_hosts *hosts)
{
	if (hosts == NULL)
		return;
	pthread_mutex_lock(&hosts->lock);
	hosts->stopping = true;
	pthread_cond_signal(&hosts->wake);
	pthread_mutex_unlock(&hosts->lock);
	pthread_join(hosts->writer, NULL);
	pthread_cond_destroy(&hosts->wake);
	pthread_mutex_destroy(&hosts->lock);
	for (size_t i = 0; i < hosts->count; i++)
		free(hosts->entries[i].key);
	free(hosts->entries);
	free(hosts->spool_directory);
	free(hosts);
}

/* ---- the table ---- */

void
retry_hosts_key(char buf[RETRY_HOSTS_KEY_SIZE], const char *name,
    const char *ip, int port)
{
	if (port == 25 || port <= 0)
		snprintf(buf, RETRY_HOSTS_KEY_SIZE, "T:%.256s:%.64s", name, ip);
	else
		snprintf(buf, RETRY_HOSTS_KEY_SIZE, "T:%.256s:%.64s:%d", name,
		    ip, port);
}

bool
retry_hosts_waiting(struct retry_hosts *hosts, const char *key, time_t now,
    time_t *next_try)
{
	struct retry_host *h = retry_hosts_find(hosts, key);

	if (h == NULL || now >= h->record.next_try)
		return false;
	*next_try = h->record.next_try;
	return true;
}

void
retry_hosts_failed(struct retry_hosts *hosts, const char *key,
    const struct retry_rule *rule, time_t now, uint64_t default_usec,
    int error, const char *text)
{
	struct retry_host *h = retry_hosts_find(hosts, key);
	struct retry_state state = { 0 };

	if (h == NULL)
		h = retry_hosts_add(hosts, key);
	state.first_failed = h->record.first_failed;
	state.last_try = h->record.last_try;
	state.next_try = h->record.next_try;
	if (rule != NULL) {
		retry_state_update(&state, rule, now,
		    RETRY_INTERVAL_MAX_DEFAULT, (uint32_t)random());
	} else {
		if (state.first_failed == 0)
			state.first_failed = now;
		state.last_try = now;
		state.next_try = now + (time_t)(default_usec / 1000000);
		state.expired = false;
	}
	h->record.first_failed = state.first_failed;
	h->record.last_try = state.last_try;
	h->record.next_try = state.next_try;
	h->record.expired = state.expired;
	h->record.error = error;
	h->record.more_error = 0;
	snprintf(h->record.text, sizeof(h->record.text), "%s",
	    text != NULL ? text : "");
	retry_hosts_queue_write(hosts, key, &h->record);
}

void
retry_hosts_succeeded(struct retry_hosts *hosts, const char *key)
{
	for (size_t i = 0; i < hosts->count; i++) {
		if (strcmp(hosts->entries[i].key, key) != 0)
			continue;
		retry_hosts_remove_at(hosts, i);
		retry_hosts_queue_write(hosts, key, NULL);
		return;
	}
}

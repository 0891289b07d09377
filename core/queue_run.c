/*
 * queue_run.c - queue runs and forced deliveries (see queue_run.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "log_line.h"
#include "queue_run.h"
#include "spool_list.h"
#include "util.h"

struct queue_run {
	/* What the start and end lines show. */
	char flags[16];
	char *recipient_match;
	bool recipient_regex;
	char *sender_match;
	bool sender_regex;
	long pid;

	size_t pending;			/* attempts not ended yet */
	size_t attempted;
	bool listed;			/* every attempt has been asked for */
	queue_run_done_fn done;
	void *arg;
};

static void
queue_run_log(const struct queue_run *run, bool start)
{
	struct log_queue_run line = {
		.start = start,
		.pid = run->pid,
		.flags = run->flags,
		.recipient_match = run->recipient_match,
		.recipient_regex = run->recipient_regex,
		.sender_match = run->sender_match,
		.sender_regex = run->sender_regex,
	};

	log_line_queue_run_options(&line);
}

static void
queue_run_maybe_end(struct queue_run *run)
{
	if (!run->listed || run->pending > 0)
		return;
	queue_run_log(run, false);
	run->done(run->arg, run->attempted);
	free(run->recipient_match);
	free(run->sender_match);
	free(run);
}

static void
queue_run_attempt_cb(void *arg, const char *id, bool attempted)
{
	struct queue_run *run = arg;

	run->pending--;
	if (attempted)
		run->attempted++;
	queue_run_maybe_end(run);
}

void
queue_run_start(struct queue *queue, const struct config *config,
    const struct queue_select *sel, long pid, bool skip_waiting,
    queue_run_done_fn done, void *arg)
{
	struct queue_run *run = xcalloc(1, sizeof(*run));
	struct spool_list_entry *entries = NULL;
	size_t count = 0;
	char *error = NULL;
	unsigned flags;

	SLUICE_ASSERT(sel->prepared);
	queue_select_flags(sel, run->flags, sizeof(run->flags));
	if (sel->recipient_match != NULL)
		run->recipient_match = xstrdup(sel->recipient_match);
	run->recipient_regex = sel->recipient_regex;
	if (sel->sender_match != NULL)
		run->sender_match = xstrdup(sel->sender_match);
	run->sender_regex = sel->sender_regex;
	run->pid = pid;
	run->done = done;
	run->arg = arg;
	queue_run_log(run, true);
	flags = sel->force == QUEUE_SELECT_FORCE_FROZEN ? QUEUE_FORCE_THAW : 0;

	if (spool_list_messages(config->spool_directory, &entries, &count,
	    &error) < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "queue run: %s", error);
		free(error);
	}
	spool_list_sort(entries, count);
	/* sluice has no local deliveries, so -ql finds nothing to do. */
	if (sel->local_only)
		count = 0;

	for (size_t i = 0; i < count; i++) {
		struct spool_list_message m;
		bool selected;

		if (!queue_select_in_range(sel, entries[i].id))
			continue;
		if (skip_waiting && sel->force == QUEUE_SELECT_DUE &&
		    queue_is_waiting(queue, entries[i].id))
			continue;
		spool_list_read(config->spool_directory,
		    config->split_spool_directory, entries[i].id, &m);
		selected = queue_select_match(sel, &m) &&
		    m.data_file_size >= 0;
		spool_list_message_free(&m);
		if (!selected)
			continue;
		run->pending++;
		queue_force(queue, entries[i].id, flags, queue_run_attempt_cb,
		    run);
	}
	free(entries);
	run->listed = true;
	queue_run_maybe_end(run);
}

struct queue_delivery {
	queue_run_done_fn done;
	void *arg;
};

static void
queue_run_deliver_cb(void *arg, const char *id, bool attempted)
{
	struct queue_delivery *d = arg;
	queue_run_done_fn done = d->done;
	void *done_arg = d->arg;

	free(d);
	done(done_arg, attempted ? 1 : 0);
}

void
queue_run_deliver(struct queue *queue, const struct config *config,
    const char *id, unsigned flags, queue_run_done_fn done, void *arg)
{
	struct spool_list_message m;
	struct queue_delivery *d;
	bool missing;

	spool_list_read(config->spool_directory, config->split_spool_directory,
	    id, &m);
	missing = m.data_file_size < 0;
	spool_list_message_free(&m);
	if (missing) {
		log_write(LOG_MAIN, id, "Spool file %s-D not found", id);
		done(arg, 0);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->done = done;
	d->arg = arg;
	queue_force(queue, id, flags, queue_run_deliver_cb, d);
}

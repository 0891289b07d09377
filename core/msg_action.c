/*
 * msg_action.c - operators' actions on one queued message (see
 * msg_action.h).
 *
 * The stdout texts and exit statuses are those of Exim 4.96 (Debian 12),
 * observed action by action, so scripts that read them keep working.
 * One difference: Exim logs "recipient <a> added" for the addresses
 * before a bad one and then leaves the message unchanged. sluice checks
 * every address first and logs nothing for a request it rejects.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "bounce.h"
#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "msg_action.h"
#include "spool_header.h"
#include "spool_list.h"
#include "spool_store.h"
#include "util.h"

struct msg_action {
	struct spool_store *store;
	const struct config *config;	/* borrowed until done */
	enum msg_action_kind kind;
	char id[MSGID_SIZE];
	char **addresses;		/* parsed, without angle brackets */
	size_t address_count;
	char *user;
	msg_action_done_fn done;
	void *arg;

	int lock_fd;			/* the locked -D, or -1 */
	struct spool_list_message message;
	bool existed;			/* -H or -D was there */
	struct msg_action_result *result;
};

static void msg_action_finish(struct msg_action *a);

const char *
msg_action_option(enum msg_action_kind kind)
{
	switch (kind) {
	case MSG_ACTION_FREEZE:
		return "-Mf";
	case MSG_ACTION_THAW:
		return "-Mt";
	case MSG_ACTION_REMOVE:
		return "-Mrm";
	case MSG_ACTION_MARK_DELIVERED:
		return "-Mmd";
	case MSG_ACTION_MARK_ALL_DELIVERED:
		return "-Mmad";
	case MSG_ACTION_ADD_RECIPIENTS:
		return "-Mar";
	case MSG_ACTION_EDIT_SENDER:
		return "-Mes";
	case MSG_ACTION_GIVE_UP:
		return "-Mg";
	}
	return "-M";
}

static void SLUICE_PRINTF(2, 3)
msg_action_print(struct msg_action *a, const char *fmt, ...)
{
	struct msg_action_result *r = a->result;
	va_list ap;
	char *text, *joined;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	joined = xasprintf("%s%s", r->output, text);
	free(text);
	free(r->output);
	r->output = joined;
}

void
msg_action_result_free(struct msg_action_result *result)
{
	if (result == NULL)
		return;
	free(result->output);
	free(result);
}

static void
msg_action_free(struct msg_action *a)
{
	for (size_t i = 0; i < a->address_count; i++)
		free(a->addresses[i]);
	free(a->addresses);
	free(a->user);
	if (a->lock_fd >= 0)
		close(a->lock_fd);	/* releases the lock */
	spool_list_message_free(&a->message);
	msg_action_result_free(a->result);
	free(a);
}

/* Hands the result to the caller and frees the action. */
static void
msg_action_finish(struct msg_action *a)
{
	struct msg_action_result *result = a->result;
	msg_action_done_fn done = a->done;
	void *arg = a->arg;

	/* Exim ends every -Mmad report with an empty line. */
	if (a->kind == MSG_ACTION_MARK_ALL_DELIVERED)
		msg_action_print(a, "\n");
	result = a->result;
	a->result = NULL;
	msg_action_free(a);
	done(arg, result);
}

static void
msg_action_fail(struct msg_action *a)
{
	a->result->status = 1;
	msg_action_finish(a);
}

/* Parses the addresses of -Mar, -Mmd and -Mes. Prints Exim's report
 * and returns -1 for the first bad one. */
static int
msg_action_parse_addresses(struct msg_action *a,
    const struct msg_action_request *req)
{
	const char *what = req->kind == MSG_ACTION_EDIT_SENDER ?
	    "editing sender" : "adding recipient";

	if (req->kind == MSG_ACTION_MARK_DELIVERED) {
		/* Matched against the recipients as given, case and all. */
		for (size_t i = 0; i < req->address_count; i++)
			a->addresses[a->address_count++] =
			    xstrdup(req->addresses[i]);
		return 0;
	}
	if (req->address_count == 0) {
		msg_action_print(a, "Message %s - error while %s: no address "
		    "given\n", a->id, what);
		return -1;
	}
	if (req->kind == MSG_ACTION_EDIT_SENDER && req->address_count > 1) {
		msg_action_print(a, "Message %s - only one sender address can "
		    "be specified\n", a->id);
		return -1;
	}
	for (size_t i = 0; i < req->address_count; i++) {
		struct address_path path;
		const char *error = NULL;

		if (address_parse_path(req->addresses[i],
		    req->kind == MSG_ACTION_EDIT_SENDER ? ADDRESS_SENDER :
		    ADDRESS_RECIPIENT, true, &path, &error) < 0 ||
		    *path.params != '\0') {
			msg_action_print(a, "Message %s - error while %s:\n"
			    "  bad address %s: %s\n", a->id, what,
			    req->addresses[i], error != NULL ? error :
			    "unexpected text after the address");
			return -1;
		}
		a->addresses[a->address_count++] = xstrdup(path.address);
	}
	return 0;
}

static void
msg_action_rewrite_cb(void *arg, int result, const char *error)
{
	struct msg_action *a = arg;
	struct spool_header *h = &a->message.header;

	if (result != 0) {
		log_write(LOG_MAIN | LOG_PANIC, a->id, "cannot rewrite the -H "
		    "file after %s: %s", msg_action_option(a->kind), error);
		msg_action_print(a, "Message %s could not be changed: %s\n",
		    a->id, error);
		msg_action_fail(a);
		return;
	}

	switch (a->kind) {
	case MSG_ACTION_FREEZE:
		log_line_message_event(a->id, LOG_EVENT_FROZEN, NULL, a->user);
		msg_action_print(a, "Message %s is now frozen\n", a->id);
		break;
	case MSG_ACTION_THAW:
		log_line_message_event(a->id, LOG_EVENT_UNFROZEN, NULL, a->user);
		msg_action_print(a, "Message %s is no longer frozen\n", a->id);
		a->result->thawed = true;
		break;
	case MSG_ACTION_MARK_DELIVERED:
		for (size_t i = 0; i < a->address_count; i++)
			log_line_message_event(a->id, LOG_EVENT_MARKED_DELIVERED,
			    a->addresses[i], a->user);
		msg_action_print(a, "Message %s has been modified\n", a->id);
		break;
	case MSG_ACTION_MARK_ALL_DELIVERED:
		for (size_t i = 0; i < h->recipients_count; i++)
			log_line_message_event(a->id, LOG_EVENT_MARKED_DELIVERED,
			    h->recipients[i].address, a->user);
		msg_action_print(a, "Message %s has been modified\n", a->id);
		break;
	case MSG_ACTION_ADD_RECIPIENTS:
		for (size_t i = 0; i < a->address_count; i++)
			log_line_message_event(a->id, LOG_EVENT_RECIPIENT_ADDED,
			    a->addresses[i], a->user);
		msg_action_print(a, "Message %s has been modified\n", a->id);
		break;
	case MSG_ACTION_EDIT_SENDER:
		log_line_message_event(a->id, LOG_EVENT_SENDER_CHANGED,
		    a->addresses[0], a->user);
		msg_action_print(a, "Message %s has been modified\n", a->id);
		break;
	case MSG_ACTION_REMOVE:
	case MSG_ACTION_GIVE_UP:
		fatal_bug("a removal rewrote the -H file");
	}
	msg_action_finish(a);
}

static void
msg_action_removed_cb(void *arg, int result, const char *error)
{
	struct msg_action *a = arg;

	if (result != 0) {
		log_write(LOG_MAIN | LOG_PANIC, a->id, "cannot remove spool "
		    "files: %s", error);
		msg_action_print(a, "Message %s could not be removed: %s\n",
		    a->id, error);
		msg_action_fail(a);
		return;
	}
	a->result->removed = true;
	if (!a->existed) {
		msg_action_print(a, "Message %s has been removed or did not "
		    "exist\n", a->id);
		msg_action_fail(a);
		return;
	}
	log_line_message_event(a->id, LOG_EVENT_REMOVED, NULL, a->user);
	log_line_completed(a->id, -1);
	msg_action_print(a, "Message %s has been removed\n", a->id);
	msg_action_finish(a);
}

/* Changes the header in memory. Returns 1 when it must be written, 0
 * when there is nothing to do, -1 after printing why not. */
static int
msg_action_apply(struct msg_action *a)
{
	struct spool_header *h = &a->message.header;

	switch (a->kind) {
	case MSG_ACTION_FREEZE:
		if (h->frozen) {
			msg_action_print(a, "Message %s is already frozen\n", a->id);
			return -1;
		}
		h->frozen = true;
		h->frozen_at = clock_now();
		h->manual_thaw = false;
		return 1;
	case MSG_ACTION_THAW:
		if (!h->frozen) {
			msg_action_print(a, "Message %s is not frozen\n", a->id);
			return -1;
		}
		h->frozen = false;
		h->frozen_at = 0;
		h->manual_thaw = true;
		return 1;
	case MSG_ACTION_MARK_DELIVERED:
		for (size_t i = 0; i < a->address_count; i++) {
			bool found = false;

			for (size_t j = 0; j < h->recipients_count && !found; j++)
				found = strcmp(h->recipients[j].address,
				    a->addresses[i]) == 0;
			if (!found) {
				msg_action_print(a, "Message %s - error while "
				    "marking as delivered:\n  %s is not a "
				    "recipient: message not updated\n", a->id,
				    a->addresses[i]);
				return -1;
			}
		}
		for (size_t i = 0; i < a->address_count; i++)
			spool_header_mark_delivered(h, a->addresses[i]);
		return 1;
	case MSG_ACTION_MARK_ALL_DELIVERED:
		for (size_t i = 0; i < h->recipients_count; i++)
			spool_header_mark_delivered(h, h->recipients[i].address);
		return 1;
	case MSG_ACTION_ADD_RECIPIENTS:
		if (h->recipients_count + a->address_count >
		    SPOOL_HEADER_RECIPIENTS_MAX) {
			msg_action_print(a, "Message %s - error while adding "
			    "recipient: more than %d recipients\n", a->id,
			    SPOOL_HEADER_RECIPIENTS_MAX);
			return -1;
		}
		for (size_t i = 0; i < a->address_count; i++)
			spool_header_add_recipient(h, a->addresses[i]);
		return 1;
	case MSG_ACTION_EDIT_SENDER:
		free(h->sender);
		h->sender = xstrdup(a->addresses[0]);
		return 1;
	case MSG_ACTION_REMOVE:
	case MSG_ACTION_GIVE_UP:
		break;
	}
	return 0;
}

/* ---- -Mg ---- */

#define MSG_ACTION_GIVE_UP_REASON	"delivery cancelled by administrator"

static void
msg_action_given_up_cb(void *arg, int result, const char *error)
{
	struct msg_action *a = arg;

	if (result != 0) {
		log_write(LOG_MAIN | LOG_PANIC, a->id, "cannot remove spool "
		    "files: %s", error);
		msg_action_print(a, "Message %s could not be removed: %s\n",
		    a->id, error);
		msg_action_fail(a);
		return;
	}
	a->result->removed = true;
	log_line_completed(a->id, -1);
	msg_action_finish(a);
}

static void
msg_action_bounce_cb(void *arg, const char *id)
{
	struct msg_action *a = arg;

	if (id == NULL) {
		/* The message stays, so nothing is lost; the reason is in
		 * the log. */
		msg_action_print(a, "Message %s could not be given up: its "
		    "bounce could not be stored\n", a->id);
		msg_action_fail(a);
		return;
	}
	strlcpy_s(a->result->bounce_id, id, sizeof(a->result->bounce_id));
	spool_store_remove(a->store, a->id, msg_action_given_up_cb, a);
}

/*
 * Fails every undelivered recipient, sends the sender one bounce that
 * lists them (none for a message with the null sender, or when NOTIFY
 * excludes every failure) and removes the message once the bounce is
 * stored. a may be freed before this returns.
 */
static void
msg_action_give_up(struct msg_action *a)
{
	const struct config *config = a->config;
	struct spool_header *h = &a->message.header;
	struct bounce_list list = { 0 };
	struct bounce_content content;
	size_t limit = bounce_body_limit(config, h);
	char *body = NULL;
	size_t body_len = 0;
	uint64_t body_size = 0;
	int rc;

	for (size_t i = 0; i < h->recipients_count; i++) {
		const char *address = h->recipients[i].address;
		struct log_failure failure = {
			.address = address,
			.sender = h->sender != NULL ? h->sender : "",
			.message = MSG_ACTION_GIVE_UP_REASON,
			.deliver_usec = -1,
		};

		if (spool_header_is_delivered(h, address))
			continue;
		log_line_failure(a->id, &failure);
		bounce_list_add(&list, address, &h->recipients[i], NULL, NULL,
		    NULL, MSG_ACTION_GIVE_UP_REASON);
	}
	if (limit > 0 && bounce_read_body(a->lock_fd, a->id, limit, &body,
	    &body_len, &body_size) < 0)
		log_write(LOG_MAIN, a->id, "cannot read the message body for "
		    "its bounce: %s; the bounce returns none", strerror(errno));
	rc = bounce_compose(config, h, &list, body, body_len, body_size,
	    clock_now(), (uint32_t)random(), &content);
	free(body);
	bounce_list_clear(&list);
	if (rc == 0) {
		spool_store_remove(a->store, a->id, msg_action_given_up_cb, a);
		return;
	}
	bounce_inject(a->store, config, a->id, &content, msg_action_bounce_cb,
	    a);
	bounce_content_free(&content);
}

static void
msg_action_write(struct msg_action *a)
{
	struct spool_header *h = &a->message.header;
	char *bytes, *error = NULL;
	size_t len;

	if ((bytes = spool_header_format(h, &len)) == NULL) {
		spool_header_check(h, &error);
		msg_action_print(a, "Message %s could not be changed: %s\n",
		    a->id, error != NULL ? error : "invalid header");
		free(error);
		msg_action_fail(a);
		return;
	}
	/* The journal, already applied to h, goes with the rewrite. */
	spool_store_header_rewrite(a->store, a->id, bytes, len,
	    msg_action_rewrite_cb, a);
	free(bytes);
}

/* Locks -D and reads -H. Returns 0 to go on, -1 when the action has
 * ended (a removal goes on after a missing or unreadable message, to
 * remove whatever is left). */
static int
msg_action_open(struct msg_action *a, const struct config *config)
{
	bool remove = a->kind == MSG_ACTION_REMOVE;
	char *error = NULL;
	int rc;

	rc = spool_store_lock(a->store, a->id, &a->lock_fd, &error);
	if (rc == SPOOL_LOCK_BUSY) {
		msg_action_print(a, "Message %s is locked\n", a->id);
		return -1;
	}
	if (rc != 0) {
		free(error);
		log_write(LOG_MAIN, a->id, "Spool file %s-D not found", a->id);
		msg_action_print(a, "Spool data file for %s does not exist\n",
		    a->id);
		if (!remove)
			return -1;
		msg_action_print(a, "Continuing, to ensure all files removed\n");
		a->result->status = 1;
	} else {
		a->existed = true;
	}

	spool_list_read(config->spool_directory, config->split_spool_directory,
	    a->id, &a->message);
	if (a->message.status == SPOOL_LIST_OK) {
		a->existed = true;
		return 0;
	}
	if (a->message.status == SPOOL_LIST_READ_ERROR)
		msg_action_print(a, "Spool read error for %s-H: %s\n", a->id,
		    strerror(a->message.error_number));
	else
		msg_action_print(a, "Spool format error for %s-H\n", a->id);
	if (!remove)
		return -1;
	msg_action_print(a, "Continuing to ensure all files removed\n");
	a->result->status = 1;
	return 0;
}

void
msg_action_run(struct spool_store *store, const struct config *config,
    const struct msg_action_request *req, msg_action_done_fn done,
    void *arg)
{
	struct msg_action *a = xcalloc(1, sizeof(*a));
	int rc;

	a->store = store;
	a->config = config;
	a->kind = req->kind;
	strlcpy_s(a->id, req->id, sizeof(a->id));
	a->user = xstrdup(req->user != NULL ? req->user : "");
	a->done = done;
	a->arg = arg;
	a->lock_fd = -1;
	a->result = xcalloc(1, sizeof(*a->result));
	a->result->output = xstrdup("");
	a->addresses = xcalloc(req->address_count + 1, sizeof(*a->addresses));

	if (req->address_count > MSG_ACTION_ADDRESSES_MAX) {
		msg_action_print(a, "Message %s - at most %d addresses can be "
		    "given at once\n", a->id, MSG_ACTION_ADDRESSES_MAX);
		msg_action_fail(a);
		return;
	}
	if (msg_action_open(a, config) < 0) {
		msg_action_fail(a);
		return;
	}

	/* Admin users may do anything, and the submitter may remove its
	 * own message. */
	if (!req->caller_admin && !(a->kind == MSG_ACTION_REMOVE &&
	    a->message.status == SPOOL_LIST_OK &&
	    a->message.header.uid == (int64_t)req->caller_uid)) {
		a->result->output[0] = '\0';
		msg_action_print(a, "Permission denied\n");
		msg_action_fail(a);
		return;
	}

	if (a->kind == MSG_ACTION_REMOVE) {
		spool_store_remove(store, a->id, msg_action_removed_cb, a);
		return;
	}
	if (a->kind == MSG_ACTION_GIVE_UP) {
		msg_action_give_up(a);
		return;
	}
	if (((a->kind == MSG_ACTION_ADD_RECIPIENTS ||
	    a->kind == MSG_ACTION_MARK_DELIVERED ||
	    a->kind == MSG_ACTION_EDIT_SENDER) &&
	    msg_action_parse_addresses(a, req) < 0) ||
	    (rc = msg_action_apply(a)) < 0) {
		msg_action_fail(a);
		return;
	}
	if (rc == 0) {
		msg_action_finish(a);
		return;
	}
	msg_action_write(a);
}

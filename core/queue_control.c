/*
 * queue_control.c - the queue tools' control commands in the daemon
 * (see queue_control.h).
 *
 * An action on a message first holds it in the queue (queue_hold()), so
 * no delivery attempt starts while its files change, and a message with
 * an attempt running is reported locked, as Exim reports a message that
 * another process holds. The hold ends when the action has ended: a
 * removed message leaves the queue, a thawed one is attempted at once.
 *
 * A "deliver" or "run" asked with "verbose" watches the main log while
 * its attempts run: every line of a message it attempts is sent back as
 * a "log TEXT" reply line, as Exim's -v shows them. Lines logged on the
 * loop thread go to the client at once. The few that worker threads log
 * wait for the next such line, or for the end of the request.
 */
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "control.h"
#include "log.h"
#include "msg_action.h"
#include "permission.h"
#include "queue.h"
#include "queue_control.h"
#include "queue_run.h"
#include "queue_select.h"
#include "scheduler.h"
#include "spool_list.h"
#include "util.h"

/* Maximum bytes of log lines kept for one verbose request. Later lines
 * are dropped, and the reply ends with a line that reports it. */
#define QUEUE_CONTROL_WATCH_MAX	(1024 * 1024)

static const char *const kind_names[] = {
	[MSG_ACTION_FREEZE] = "freeze",
	[MSG_ACTION_THAW] = "thaw",
	[MSG_ACTION_REMOVE] = "remove",
	[MSG_ACTION_MARK_DELIVERED] = "mark-delivered",
	[MSG_ACTION_MARK_ALL_DELIVERED] = "mark-all-delivered",
	[MSG_ACTION_ADD_RECIPIENTS] = "add-recipients",
	[MSG_ACTION_EDIT_SENDER] = "edit-sender",
	[MSG_ACTION_GIVE_UP] = "give-up",
};

static const struct config *qc_config;
static struct queue *qc_queue;
static struct spool_store *qc_store;

const char *
queue_control_kind_name(int kind)
{
	if (kind < 0 || (size_t)kind >= ARRAY_SIZE(kind_names))
		return NULL;
	return kind_names[kind];
}

/* Appends text as "out" lines: one per line of text. */
static void
queue_control_add_output(struct evbuffer *out, const char *text)
{
	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t len = nl != NULL ? (size_t)(nl - text) : strlen(text);

		evbuffer_add_printf(out, QUEUE_CONTROL_OUT "%.*s\n", (int)len,
		    text);
		text += len + (nl != NULL ? 1 : 0);
	}
}

static void
queue_control_exit(struct control_request *req, int status)
{
	evbuffer_add_printf(control_request_output(req),
	    QUEUE_CONTROL_EXIT "%d\n", status);
	control_request_finish(req, 0, NULL);
}

/* An action on its way: copied from the request, since the hold may
 * make it wait for a rewrite of the message's -H file. */
struct message_call {
	struct control_request *req;
	struct msg_action_request action;
	char id[MSGID_SIZE];
	char user[64];
	char **addresses;
	bool held;
};

static void
message_call_free(struct message_call *call)
{
	for (size_t i = 0; i < call->action.address_count; i++)
		free(call->addresses[i]);
	free(call->addresses);
	free(call);
}

static void
queue_control_action_done(void *arg, struct msg_action_result *result)
{
	struct message_call *call = arg;
	unsigned release = 0;

	if (result->removed)
		release |= QUEUE_RELEASE_REMOVED;
	else if (result->thawed)
		release |= QUEUE_RELEASE_ATTEMPT;
	if (call->held)
		queue_release(qc_queue, call->id, release);
	if (result->bounce_id[0] != '\0')
		queue_add(qc_queue, result->bounce_id);
	queue_control_add_output(control_request_output(call->req),
	    result->output);
	queue_control_exit(call->req, result->status);
	msg_action_result_free(result);
	message_call_free(call);
}

static void
queue_control_held(void *arg, int result)
{
	struct message_call *call = arg;

	if (result == QUEUE_BUSY) {
		struct evbuffer *out = control_request_output(call->req);

		evbuffer_add_printf(out, QUEUE_CONTROL_OUT "Message %s is locked\n",
		    call->id);
		/* Exim ends every -Mmad report with an empty line. */
		if (call->action.kind == MSG_ACTION_MARK_ALL_DELIVERED)
			evbuffer_add_printf(out, QUEUE_CONTROL_OUT "\n");
		queue_control_exit(call->req, 1);
		message_call_free(call);
		return;
	}
	call->held = true;
	msg_action_run(qc_store, qc_config, &call->action,
	    queue_control_action_done, call);
}

/* message KIND ID [ADDRESS...] */
static void
queue_control_message(struct control_request *req, int argc, char **argv)
{
	const struct permission_caller *caller = control_request_caller(req);
	struct message_call *call;
	int kind = -1;

	if (argc < 3) {
		control_request_finish(req, -1,
		    "usage: message KIND ID [ADDRESS...]");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(kind_names); i++)
		if (strcmp(argv[1], kind_names[i]) == 0)
			kind = (int)i;
	if (kind < 0) {
		control_request_finish(req, -1, "unknown message action");
		return;
	}
	for (int i = 2; i < argc; i++) {
		if (control_unquote(argv[i]) < 0) {
			control_request_finish(req, -1, "malformed argument");
			return;
		}
	}
	if (!msgid_valid(argv[2], strlen(argv[2]))) {
		control_request_finish(req, -1, "malformed message id");
		return;
	}

	call = xcalloc(1, sizeof(*call));
	call->req = req;
	strlcpy_s(call->id, argv[2], sizeof(call->id));
	permission_user_name(caller->uid, call->user, sizeof(call->user));
	call->addresses = xcalloc((size_t)argc, sizeof(*call->addresses));
	for (int i = 3; i < argc; i++)
		call->addresses[i - 3] = xstrdup(argv[i]);
	call->action.kind = (enum msg_action_kind)kind;
	call->action.id = call->id;
	call->action.addresses = (const char *const *)call->addresses;
	call->action.address_count = (size_t)(argc - 3);
	call->action.caller_uid = caller->uid;
	call->action.caller_admin = control_request_is_admin(req);
	call->action.user = call->user;
	queue_hold(qc_queue, call->id, queue_control_held, call);
}

/*
 * A verbose request's view of the main log: the ids it attempts and the
 * lines logged for them so far. The log hook may run on any thread, so
 * the list and every watch's lines are under watch_lock.
 */
struct queue_watch {
	struct queue_watch *next;
	struct control_request *req;
	char (*ids)[MSGID_SIZE];	/* owned, sorted for bsearch() */
	size_t id_count;
	struct evbuffer *lines;		/* owned: "log TEXT" reply lines */
	size_t bytes;			/* of lines, sent ones included */
	bool cut;			/* lines were left out */
};

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct queue_watch *watches;	/* under watch_lock */
static pthread_t loop_thread;		/* where control replies are sent */

static int
queue_control_id_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
queue_control_watch_line(const char *msgid, const struct timeval *tv,
    const char *text)
{
	size_t len = strcspn(text, "\n");

	(void)tv;
	pthread_mutex_lock(&watch_lock);
	for (struct queue_watch *w = watches; w != NULL; w = w->next) {
		if (bsearch(msgid, w->ids, w->id_count, sizeof(*w->ids),
		    queue_control_id_compare) == NULL)
			continue;
		if (w->bytes + len > QUEUE_CONTROL_WATCH_MAX) {
			w->cut = true;
			continue;
		}
		w->bytes += len;
		evbuffer_add_printf(w->lines, QUEUE_CONTROL_LOG "%.*s\n",
		    (int)len, text);
		if (pthread_equal(pthread_self(), loop_thread)) {
			evbuffer_add_buffer(control_request_output(w->req),
			    w->lines);
			control_request_flush(w->req);
		}
	}
	pthread_mutex_unlock(&watch_lock);
}

/* Starts watching the lines of ids (copied). Returns the watch. */
static struct queue_watch *
queue_control_watch_start(struct control_request *req,
    const char (*ids)[MSGID_SIZE], size_t id_count)
{
	struct queue_watch *w = xcalloc(1, sizeof(*w));

	w->req = req;
	w->ids = xcalloc(id_count > 0 ? id_count : 1, sizeof(*w->ids));
	memcpy(w->ids, ids, id_count * sizeof(*w->ids));
	w->id_count = id_count;
	qsort(w->ids, id_count, sizeof(*w->ids), queue_control_id_compare);
	if ((w->lines = evbuffer_new()) == NULL)
		fatalx("out of memory for a log watch");
	pthread_mutex_lock(&watch_lock);
	w->next = watches;
	watches = w;
	pthread_mutex_unlock(&watch_lock);
	return w;
}

/* Ends a watch: its lines go into the reply, then the exit status. */
static void
queue_control_watch_end(struct queue_watch *w, int status)
{
	struct evbuffer *out = control_request_output(w->req);

	pthread_mutex_lock(&watch_lock);
	for (struct queue_watch **p = &watches; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&watch_lock);
	evbuffer_add_buffer(out, w->lines);
	if (w->cut)
		evbuffer_add_printf(out, QUEUE_CONTROL_LOG "(more log lines "
		    "were left out; the main log has them all)\n");
	queue_control_exit(w->req, status);
	evbuffer_free(w->lines);
	free(w->ids);
	free(w);
}

static void
queue_control_run_done(void *arg, size_t attempted)
{
	queue_control_exit(arg, 0);
}

static void
queue_control_watch_done(void *arg, size_t attempted)
{
	queue_control_watch_end(arg, 0);
}

/*
 * Lists the ids that queue_run_start() with skip_waiting attempts for
 * sel, by the same rules as queue_run.c. Only a verbose run needs them.
 * Returns the count and sets *out (caller frees).
 */
static size_t
queue_control_run_ids(const struct queue_select *sel,
    char (**out)[MSGID_SIZE])
{
	struct spool_list_entry *entries = NULL;
	size_t count = 0, found = 0;
	char *error = NULL;

	*out = NULL;
	if (sel->local_only || spool_list_messages(qc_config->spool_directory,
	    &entries, &count, &error) < 0) {
		free(error);
		return 0;
	}
	*out = xcalloc(count > 0 ? count : 1, sizeof(**out));
	for (size_t i = 0; i < count; i++) {
		struct spool_list_message m;
		bool selected;

		if (!queue_select_in_range(sel, entries[i].id))
			continue;
		if (sel->force == QUEUE_SELECT_DUE &&
		    queue_is_waiting(qc_queue, entries[i].id))
			continue;
		spool_list_read(qc_config->spool_directory,
		    qc_config->split_spool_directory, entries[i].id, &m);
		selected = queue_select_match(sel, &m) &&
		    m.data_file_size >= 0;
		spool_list_message_free(&m);
		if (selected)
			strlcpy_s((*out)[found++], entries[i].id, MSGID_SIZE);
	}
	free(entries);
	return found;
}

/* deliver thaw|keep-frozen ID [verbose] */
static void
queue_control_deliver(struct control_request *req, int argc, char **argv)
{
	bool verbose = argc == 4 && strcmp(argv[3], "verbose") == 0;
	char id[MSGID_SIZE];
	unsigned flags;

	if ((argc != 3 && !verbose) || (strcmp(argv[1], "thaw") != 0 &&
	    strcmp(argv[1], "keep-frozen") != 0)) {
		control_request_finish(req, -1,
		    "usage: deliver thaw|keep-frozen ID [verbose]");
		return;
	}
	if (control_unquote(argv[2]) < 0 ||
	    !msgid_valid(argv[2], strlen(argv[2]))) {
		control_request_finish(req, -1, "malformed message id");
		return;
	}
	flags = strcmp(argv[1], "thaw") == 0 ? QUEUE_FORCE_THAW : 0;
	if (verbose) {
		strlcpy_s(id, argv[2], sizeof(id));
		queue_run_deliver(qc_queue, qc_config, id, flags,
		    queue_control_watch_done,
		    queue_control_watch_start(req,
		    (const char (*)[MSGID_SIZE])&id, 1));
		return;
	}
	queue_run_deliver(qc_queue, qc_config, argv[2], flags,
	    queue_control_run_done, req);
}

/* run [verbose] WORD... */
static void
queue_control_run(struct control_request *req, int argc, char **argv)
{
	bool verbose = argc > 1 && strcmp(argv[1], "verbose") == 0;
	struct queue_select sel;
	char *error = NULL;
	int skip = verbose ? 2 : 1;

	if (queue_select_decode(argc - skip, argv + skip, &sel, &error) < 0) {
		control_request_finish(req, -1, error);
		free(error);
		return;
	}
	if (verbose) {
		char (*ids)[MSGID_SIZE];
		size_t count = queue_control_run_ids(&sel, &ids);
		struct queue_watch *w = queue_control_watch_start(req,
		    (const char (*)[MSGID_SIZE])ids, count);

		free(ids);
		queue_run_start(qc_queue, qc_config, &sel,
		    (long)control_request_caller(req)->pid, true,
		    queue_control_watch_done, w);
	} else {
		queue_run_start(qc_queue, qc_config, &sel,
		    (long)control_request_caller(req)->pid, true,
		    queue_control_run_done, req);
	}
	queue_select_free(&sel);
}

/* queue-summary: what sluice -bpq prints. */
static int
queue_control_summary(int argc, char **argv, struct evbuffer *out)
{
	(void)argv;
	if (argc != 1) {
		evbuffer_add_printf(out, "usage: queue-summary");
		return -1;
	}
	struct evbuffer *text = evbuffer_new();
	char *flat;

	if (text == NULL)
		fatalx("out of memory");
	queue_summary(qc_queue, text);
	evbuffer_add(text, "", 1);
	flat = (char *)evbuffer_pullup(text, -1);
	queue_control_add_output(out, flat);
	evbuffer_free(text);
	evbuffer_add_printf(out, QUEUE_CONTROL_EXIT "0\n");
	return 0;
}

/* suspend SOURCE SITE SECONDS [REASON...] and resume SOURCE SITE; SITE
 * "*" stands for every site of the source. */
static void
queue_control_suspend(struct control_request *req, int argc, char **argv)
{
	const struct permission_caller *caller = control_request_caller(req);
	bool resume = strcmp(argv[0], "resume") == 0;
	unsigned long long seconds = 0;
	char reason[200], who[64], error[256];
	struct passwd *pw;
	size_t used = 0;

	if ((resume && argc != 3) || (!resume && argc < 4)) {
		control_request_finish(req, -1, resume ?
		    "usage: resume SOURCE SITE" :
		    "usage: suspend SOURCE SITE SECONDS [REASON]");
		return;
	}
	if (!resume && (parse_uint(argv[3], 30ULL * 86400, &seconds) < 0 ||
	    seconds == 0)) {
		control_request_finish(req, -1, "SECONDS must be a whole number "
		    "from 1 to 2592000 (30 days)");
		return;
	}
	reason[0] = '\0';
	for (int i = 4; i < argc; i++)
		used += (size_t)snprintf(reason + used, used < sizeof(reason) ?
		    sizeof(reason) - used : 0, "%s%s", i > 4 ? " " : "",
		    argv[i]);
	if (reason[0] == '\0')
		strlcpy_s(reason, "operator", sizeof(reason));
	pw = getpwuid(caller->uid);
	if (pw != NULL)
		snprintf(who, sizeof(who), "%s", pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid %lu", (unsigned long)caller->uid);
	if (scheduler_suspend(queue_scheduler(qc_queue), argv[1],
	    strcmp(argv[2], "*") == 0 ? NULL : argv[2], (uint32_t)seconds,
	    reason, who, error, sizeof(error)) < 0) {
		control_request_finish(req, -1, error);
		return;
	}
	evbuffer_add_printf(control_request_output(req),
	    QUEUE_CONTROL_EXIT "0\n");
	control_request_finish(req, 0, NULL);
}

void
queue_control_init(const struct config *config, struct queue *queue,
    struct spool_store *store)
{
	struct permission_admins admins;
	char *error = NULL;

	loop_thread = pthread_self();
	qc_config = config;
	qc_queue = queue;
	qc_store = store;
	log_set_watch_hook(queue_control_watch_line);
	if (permission_admins_load(config, &admins, &error) < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "control socket: %s; only "
		    "root and the daemon's user count as admin users", error);
		free(error);
	} else {
		control_set_admins(&admins);
	}
	control_register_async("message", "act on a message: message KIND ID "
	    "[ADDRESS...]", true, queue_control_message);
	control_register_async("deliver", "attempt a message now: deliver "
	    "thaw|keep-frozen ID [verbose]", false, queue_control_deliver);
	control_register_async("run", "run the queue with the given selection: "
	    "run [verbose] WORD...", false, queue_control_run);
	control_register("queue-summary", "print queued mail by class, "
	    "domain, site and egress path", queue_control_summary);
	control_register_async("suspend", "hold an egress path: suspend SOURCE "
	    "SITE|* SECONDS [REASON]", false, queue_control_suspend);
	control_register_async("resume", "let an egress path send again: "
	    "resume SOURCE SITE|*", false, queue_control_suspend);
}

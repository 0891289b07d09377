/*
 * queue_control.c - the queue tools' control commands in the daemon
 * (see queue_control.h).
 *
 * An action on a message first holds it in the queue (queue_hold()), so
 * no delivery attempt starts while its files change, and a message with
 * an attempt running is reported locked, as Exim reports a message that
 * another process holds. The hold ends when the action has ended: a
 * removed message leaves the queue, a thawed one is attempted at once.
 */
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
#include "util.h"

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

static void
queue_control_run_done(void *arg, size_t attempted)
{
	queue_control_exit(arg, 0);
}

/* deliver thaw|keep-frozen ID */
static void
queue_control_deliver(struct control_request *req, int argc, char **argv)
{
	unsigned flags;

	if (argc != 3 || (strcmp(argv[1], "thaw") != 0 &&
	    strcmp(argv[1], "keep-frozen") != 0)) {
		control_request_finish(req, -1,
		    "usage: deliver thaw|keep-frozen ID");
		return;
	}
	if (control_unquote(argv[2]) < 0 ||
	    !msgid_valid(argv[2], strlen(argv[2]))) {
		control_request_finish(req, -1, "malformed message id");
		return;
	}
	flags = strcmp(argv[1], "thaw") == 0 ? QUEUE_FORCE_THAW : 0;
	queue_run_deliver(qc_queue, qc_config, argv[2], flags,
	    queue_control_run_done, req);
}

/* run WORD... */
static void
queue_control_run(struct control_request *req, int argc, char **argv)
{
	struct queue_select sel;
	char *error = NULL;

	if (queue_select_decode(argc - 1, argv + 1, &sel, &error) < 0) {
		control_request_finish(req, -1, error);
		free(error);
		return;
	}
	queue_run_start(qc_queue, qc_config, &sel,
	    (long)control_request_caller(req)->pid, true,
	    queue_control_run_done, req);
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

	qc_config = config;
	qc_queue = queue;
	qc_store = store;
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
	    "thaw|keep-frozen ID", false, queue_control_deliver);
	control_register_async("run", "run the queue with the given selection",
	    false, queue_control_run);
	control_register("queue-summary", "print queued mail by class, "
	    "domain, site and egress path", queue_control_summary);
	control_register_async("suspend", "hold an egress path: suspend SOURCE "
	    "SITE|* SECONDS [REASON]", false, queue_control_suspend);
	control_register_async("resume", "let an egress path send again: "
	    "resume SOURCE SITE|*", false, queue_control_suspend);
}

/*
 * msg_action.h - what an operator does to one queued message: freeze,
 * thaw, remove, mark recipients delivered, add recipients, change the
 * sender, give up with a bounce (Exim's -Mf, -Mt, -Mrm, -Mmd, -Mmad,
 * -Mar, -Mes, -Mg).
 *
 * Each action takes Exim's lock on the message's -D file, so a message
 * being delivered is "locked" and left alone. It reads the -H file with
 * its -J journal and checks that the caller may act on the message.
 * Then it changes the -H file through the spool store (written whole and
 * renamed into place) or removes the message's files, and writes the
 * mainlog line Exim writes ("frozen by root", "removed by root", ...).
 * The lock is held until the store reports the change durable.
 *
 * The daemon runs the actions its control socket receives; with no
 * daemon running, the command line runs them in its own process with its
 * own store. Either way the caller gets back what Exim prints for the
 * message on stdout and the exit status it would give, so both paths
 * print the same.
 *
 * Who may act: admin users on any message; the user who submitted a
 * message (the uid in its -H file) may also remove it.
 *
 * Thread use: the loop thread of the store.
 */
#ifndef SLUICE_MSG_ACTION_H
#define SLUICE_MSG_ACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "msgid.h"

struct spool_store;

enum msg_action_kind {
	MSG_ACTION_FREEZE,		/* -Mf */
	MSG_ACTION_THAW,		/* -Mt */
	MSG_ACTION_REMOVE,		/* -Mrm */
	MSG_ACTION_MARK_DELIVERED,	/* -Mmd id address... */
	MSG_ACTION_MARK_ALL_DELIVERED,	/* -Mmad */
	MSG_ACTION_ADD_RECIPIENTS,	/* -Mar id address... */
	MSG_ACTION_EDIT_SENDER,		/* -Mes id address */
	MSG_ACTION_GIVE_UP,		/* -Mg: fail, bounce and remove */
};

/* Addresses an action takes at most (-Mar, -Mmd). */
#define MSG_ACTION_ADDRESSES_MAX	24

struct msg_action_request {
	enum msg_action_kind kind;
	const char *id;
	const char *const *addresses;
	size_t address_count;
	uid_t caller_uid;
	bool caller_admin;
	const char *user;		/* caller's login, for log lines */
};

struct msg_action_result {
	int status;			/* Exim's exit status: 0 or 1 */
	char *output;			/* Exim's stdout text; never NULL */
	bool removed;			/* the message's files are gone */
	bool thawed;			/* it was frozen and is not now */
	/* -Mg: the id of the bounce it queued, or "" for none. */
	char bounce_id[MSGID_SIZE];
};

/* Receives the result, which the callee owns: free it with
 * msg_action_result_free(). */
typedef void (*msg_action_done_fn)(void *arg, struct msg_action_result *result);

/* Returns the option that selects kind ("-Mf", ...), for messages. */
const char *msg_action_option(enum msg_action_kind kind);

/*
 * Runs the action. Every string of req is copied. done runs on the
 * store's loop thread, possibly before this returns. config and store
 * are borrowed until then.
 */
void msg_action_run(struct spool_store *store, const struct config *config,
    const struct msg_action_request *req, msg_action_done_fn done,
    void *arg);

void msg_action_result_free(struct msg_action_result *result);

#endif

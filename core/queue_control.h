/*
 * queue_control.h - the daemon's control commands for the queue tools.
 *
 *   message KIND ID [ADDRESS...]   an action on one message (msg_action.h);
 *                                  KIND is freeze, thaw, remove,
 *                                  mark-delivered, mark-all-delivered,
 *                                  add-recipients or edit-sender
 *   deliver thaw|keep-frozen ID [verbose]
 *                                  a forced attempt (-M, -Mc)
 *   run [verbose] WORD...          a queue run (queue_select_encode())
 *
 * Arguments are quoted with control_quote(). "message" is open to every
 * user, because the submitter of a message may remove it; the action
 * itself checks the caller. "deliver" and "run" are for admin users.
 *
 * The reply, before the final "ok", has one "out TEXT" line per line
 * that Exim would print on stdout and then "exit N" with the exit status
 * Exim would give. Every command replies only when its work is done:
 * the message changed on disk, or every attempt ended. With "verbose",
 * "deliver" and "run" also reply, before "exit N", with one "log TEXT"
 * line per main log line of the messages they attempted (the text
 * without date and id), which -v prints on stderr as Exim's -v does.
 */
#ifndef SLUICE_QUEUE_CONTROL_H
#define SLUICE_QUEUE_CONTROL_H

#include "config.h"

struct queue;
struct spool_store;

/* Reply lines of the commands, read by the command line. */
#define QUEUE_CONTROL_OUT	"out "
#define QUEUE_CONTROL_EXIT	"exit "
#define QUEUE_CONTROL_LOG	"log "

/*
 * Registers the commands and sets the control socket's admin users from
 * config. config, queue and store are borrowed for the
 * daemon's life. A configuration that names an unknown group is logged,
 * and then only root and the daemon's user count as admin.
 */
void queue_control_init(const struct config *config, struct queue *queue,
    struct spool_store *store);

/* KIND words of "message", indexed by enum msg_action_kind. */
const char *queue_control_kind_name(int kind);

#endif

/*
 * daemon_reload.h - SIGHUP: reading sluice.conf and the Lua policy
 * again while the daemon runs, without dropping connections or queues.
 *
 * Options that a running daemon cannot change (its listeners, user,
 * spool, message id format, and the settings that the queue and the
 * control socket took at start-up) keep their running values, and
 * mainlog names each one that changed with "restart the daemon to
 * apply it". doc/lua-api.md lists them.
 */
#ifndef SLUICE_DAEMON_RELOAD_H
#define SLUICE_DAEMON_RELOAD_H

#include "config.h"

struct event_base;
struct spool_store;

/*
 * Loads running->config_file again and, if it and the policy it names
 * load, makes them current for new SMTP sessions and transactions.
 * Logs "SIGHUP received: configuration and policy reloaded", or
 * "SIGHUP received: reload failed: ..." and changes nothing. Returns the
 * new configuration, or NULL on failure. running stays in use by open
 * sessions, the queue and the control socket: the caller keeps it
 * until it exits.
 */
struct config *daemon_reload(struct event_base *base,
    const struct config *running, struct spool_store *store);

#endif

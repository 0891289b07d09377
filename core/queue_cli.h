/*
 * queue_cli.h - the queue tools of the command line: -bp, -Mv*, the
 * message actions (-Mf, -Mt, -Mrm, ...), forced deliveries (-M, -Mc) and
 * queue runs (-q, -R, -S).
 *
 * Listings and views read the spool directly, as Exim does. Anything
 * that changes the queue goes to the running daemon over its control
 * socket, so that the daemon stays the only process that delivers or
 * changes a message it holds. The daemon checks the caller's
 * credentials itself. With no daemon running (no socket, or nobody
 * listening on it), the command does the work in its own process, under
 * the same per-message lock Exim uses, after switching to exim_user when
 * started as root.
 *
 * Each function returns the exit status Exim gives for the same command
 * (COMPAT: 0, or 1 when some message could not be acted on).
 */
#ifndef SLUICE_QUEUE_CLI_H
#define SLUICE_QUEUE_CLI_H

#include "config.h"
#include "options.h"

int queue_cli_list(const struct config *config, const struct options *o);
int queue_cli_view(const struct config *config, const struct options *o);
int queue_cli_message(const struct config *config, const struct options *o);
int queue_cli_deliver(const struct config *config, const struct options *o);
int queue_cli_run(const struct config *config, struct options *o);
int queue_cli_give_up(const struct config *config, const struct options *o);

/* -bpq (the queue by class, domain, site and egress path), -Msuspend
 * and -Mresume: asked of the running daemon, which alone holds that
 * state. */
int queue_cli_scheduler(const struct config *config,
    const struct options *o);

#endif

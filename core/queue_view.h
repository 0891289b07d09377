/*
 * queue_view.h - Exim's -Mvh, -Mvb, -Mvl and -Mvc: one message's files
 * printed as they are.
 *
 * -Mvh prints the -H file and -Mvb the -D file, each whole, first line
 * included, as Exim 4.96 does. -Mvl prints the message log. -Mvc prints
 * the message as it would be sent: the header fields that are not
 * deleted, an empty line and the body. Files are read straight from the spool,
 * from either layout, and copied in pieces, so a large body needs no
 * memory for itself.
 */
#ifndef SLUICE_QUEUE_VIEW_H
#define SLUICE_QUEUE_VIEW_H

#include <stdio.h>

#include "config.h"
#include "options.h"

/* Prints the view of id to out, or Exim's complaint when a file cannot
 * be opened. Returns the exit status: 0, or 1 on failure. */
int queue_view_print(FILE *out, const struct config *config,
    enum options_view view, const char *id);

#endif

/*
 * smtp_test_session.h - "sluice -bh IP[.port]": an SMTP session on
 * standard input and output as if the client connected from IP, for
 * operators to check relay and limit settings without sending mail.
 *
 * The output has the shape of Exim 4.96's -bh. Standard output gets a
 * blank line, three "**** " lines naming the host, another blank line,
 * then the server's replies, and after each accepted message the notice
 * "**** SMTP testing: that is not a real message id!" between blank
 * lines. Standard error gets a ">>> " line for each policy decision and
 * "LOG: <line>" for each line sluice would have logged. Nothing is
 * logged or queued.
 *
 * As in Exim, the connection limits and the synchronization check do
 * not apply, since there is no real connection.
 * NOTE: the timeouts do not apply either, because standard input (which
 * may be a file) is read with blocking reads; Exim's -bh does time out
 * an idle session.
 */
#ifndef SLUICE_SMTP_TEST_SESSION_H
#define SLUICE_SMTP_TEST_SESSION_H

#include "config.h"

/*
 * Runs the session until the client quits, the server closes it or
 * standard input ends. host is an IPv4 or IPv6 address, optionally
 * followed by "." and a port. Returns the exit status: 0, or 1 after a
 * message on stderr when host is not an address or the relay lists
 * cannot be used.
 */
int smtp_test_session_run(const struct config *config, const char *host);

#endif

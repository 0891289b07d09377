/*
 * route_test.h - "sluice -bt" and "sluice -bv": route addresses as the
 * queue would and print the result in Exim's shape, without sending or
 * queueing anything.
 *
 * -bt prints, for each address, the router and transport and one line
 * per host address that delivery would try, in order:
 *
 *     bob@example.com
 *       router = dnslookup, transport = remote_smtp
 *       host mx1.example.com [192.0.2.10] MX=10
 *
 * (router = smarthost when the smarthost option is set). -bv prints
 * "ADDRESS verified" instead, or the -bt lines with -v. An address that
 * cannot be routed gets "ADDRESS is undeliverable: REASON" (-bt) or
 * "ADDRESS failed to verify: REASON" (-bv), one whose lookup failed for
 * now "ADDRESS cannot be resolved at this time: REASON". With no address
 * arguments, addresses are read from standard input, one per line, after
 * a "> " prompt, as Exim does.
 *
 * The DNS lookups use the daemon's resolver (core/dns.h) with the
 * configuration's dns_servers. The rules are the queue's: the MX hosts
 * not preferred to this host are dropped, and a domain whose most
 * preferred host is this host cannot be resolved.
 */
#ifndef SLUICE_ROUTE_TEST_H
#define SLUICE_ROUTE_TEST_H

#include <stdbool.h>

#include "config.h"

/*
 * Routes the addresses (count of them, or those on standard input when
 * count is 0) and prints the results to standard output. verify selects
 * -bv, and verbose (-v) prints -bv's results in the -bt shape. Returns
 * the exit status: 0 when every address routed, 2 when one is
 * undeliverable, else 1 when one could not be resolved for now.
 */
int route_test_run(const struct config *config, char *const *addresses,
    int count, bool verify, bool verbose);

#endif

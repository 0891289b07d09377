/*
 * test_log_line.c - Exim-format log lines, byte for byte.
 *
 * The expected lines are Exim's documented examples (invented data):
 * each is the text after the "date time id " prefix, built with Exim's
 * default selectors unless the case names others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "log_line.h"
#include "util.h"

#define CIPHER_256	"TLS1.3:TLS_AES_256_GCM_SHA384:256"
#define MX2		{ .name = "mx2.example.com", .ip = "198.51.100.20" }

static char line[LOG_TEXT_MAX + 1];

/* Sets Exim's defaults changed by extra (an Exim log_selector string). */
static void
use_selectors(const char *extra)
{
	char *error = NULL;

	if (log_set_selector(extra, &error) != 0)
		fail_msg("log_set_selector(\"%s\"): %s", extra, error);
}

static int
reset_selectors(void **state)
{
	(void)state;
	use_selectors("");
	return 0;
}

#define assert_line(want) assert_string_equal(line, (want))

/* Arrivals. */

static void
arrival_smtp_tls(void **state)
{
	struct log_arrival a = {
		.sender = "alice@example.org",
		.host = { .name = "mail.example.org",
		    .helo = "mail.example.org", .ip = "192.0.2.17",
		    .port = 52100 },
		.protocol = "esmtps",
		.tls = { .cipher = CIPHER_256, .cert = LOG_CERT_UNVERIFIED },
		.size = 2973,
		.receive_usec = -1,
		.message_id_header = "4f1c2a9e@example.org",
	};

	(void)state;
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= alice@example.org H=mail.example.org [192.0.2.17] "
	    "P=esmtps X=" CIPHER_256 " CV=no S=2973 id=4f1c2a9e@example.org");
}

static void
arrival_local(void **state)
{
	struct log_arrival a = {
		.sender = "www-data@web1.example.net",
		.ident = "www-data",
		.protocol = "local",
		.size = 812,
		.receive_usec = -1,
		.message_id_header =
		    "E1tt1Jf-00000000CY4-01ov@web1.example.net",
		.message_id_created = true,
	};

	(void)state;
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= www-data@web1.example.net U=www-data P=local S=812 "
	    "id=E1tt1Jf-00000000CY4-01ov@web1.example.net");

	use_selectors("+msg_id_created");
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= www-data@web1.example.net U=www-data P=local S=812 "
	    "id*=E1tt1Jf-00000000CY4-01ov@web1.example.net");
}

static void
arrival_with_port_subject_recipients(void **state)
{
	static const char *const recipients[] = {
		"dave@example.com", "erin@example.com",
	};
	struct log_arrival a = {
		.sender = "carol@example.net",
		.host = { .helo = "laptop.home", .ip = "203.0.113.44",
		    .port = 61002 },
		.protocol = "esmtpsa",
		.tls = { .cipher = "TLS1.3:TLS_AES_128_GCM_SHA256:128" },
		.authenticator = "plain_server",
		.auth_id = "carol",
		.size = 15380,
		.receive_usec = -1,
		.message_id_header = "a81c.5521@laptop.home",
		.subject = "Re: budget",
		.recipients = recipients,
		.recipient_count = 2,
	};

	(void)state;
	use_selectors("+incoming_port +subject +received_recipients");
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= carol@example.net H=(laptop.home) "
	    "[203.0.113.44]:61002 P=esmtpsa "
	    "X=TLS1.3:TLS_AES_128_GCM_SHA256:128 A=plain_server:carol "
	    "S=15380 id=a81c.5521@laptop.home T=\"Re: budget\" "
	    "for dave@example.com erin@example.com");
}

static void
arrival_bounce(void **state)
{
	struct log_arrival a = {
		.sender = "",
		.bounce_of = "1tt1Ju-00000000CZ3-4Bqv",
		.ident = "Debian-exim",
		.protocol = "local",
		.size = 4120,
		.receive_usec = -1,
	};

	(void)state;
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= <> R=1tt1Ju-00000000CZ3-4Bqv U=Debian-exim P=local "
	    "S=4120");
}

static void
arrival_optional_fields(void **state)
{
	struct log_arrival a = {
		.sender = "a@example.org",
		.host = { .name = "mail.example.org", .helo = "other.example",
		    .ip = "192.0.2.1", .port = 25 },
		.interface_ip = "192.0.2.99",
		.interface_port = 25,
		.protocol = "esmtps",
		.tls = { .cipher = CIPHER_256, .resumed = true,
		    .cert = LOG_CERT_VERIFIED, .peer_dn = "CN=\"x\"",
		    .sni = "mx.example.net" },
		.authenticator = "login",
		.auth_id = "a",
		.auth_sender = "a@example.org",
		.chunking = true,
		.size = 10,
		.receive_usec = 1578000,
		.received_sender = "A@Example.org",
	};

	(void)state;
	use_selectors("+incoming_interface +tls_resumption +tls_peerdn "
	    "+tls_sni +smtp_mailauth +receive_time +received_sender "
	    "+millisec");
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line("<= a@example.org H=mail.example.org (other.example) "
	    "[192.0.2.1] I=[192.0.2.99]:25 P=esmtps X=" CIPHER_256 "* "
	    "CV=yes DN=\"CN=\\\"x\\\"\" SNI=mx.example.net "
	    "A=login:a:a@example.org K S=10 RT=1.578s from <A@Example.org>");
}

static void
arrival_helo_forms(void **state)
{
	static const struct {
		const char *name, *helo, *ip;
		const char *want;
	} cases[] = {
		{ NULL, NULL, "192.0.2.1", "<= <> H=[192.0.2.1] S=0" },
		{ "a.example", NULL, "192.0.2.1",
		    "<= <> H=a.example [192.0.2.1] S=0" },
		{ "a.example", "A.Example", "192.0.2.1",
		    "<= <> H=a.example [192.0.2.1] S=0" },
		{ NULL, "[192.0.2.1]", "192.0.2.1", "<= <> H=[192.0.2.1] S=0" },
		{ NULL, "[192.0.2.2]", "192.0.2.1",
		    "<= <> H=([192.0.2.2]) [192.0.2.1] S=0" },
		{ NULL, "[IPv6:2001:db8:0::1]", "2001:db8::1",
		    "<= <> H=[2001:db8::1] S=0" },
		{ "a.example", "[192.0.2.1]", "192.0.2.1",
		    "<= <> H=a.example [192.0.2.1] S=0" },
		{ NULL, "evil name\r\n", "192.0.2.1",
		    "<= <> H=(evil\\x20name\\r\\n) [192.0.2.1] S=0" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct log_arrival a = {
			.sender = "",
			.host = { .name = cases[i].name, .helo = cases[i].helo,
			    .ip = cases[i].ip },
			.receive_usec = -1,
		};

		log_line_format_arrival(line, sizeof(line), &a);
		if (strcmp(line, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, line,
			    cases[i].want);
	}
}

static void
arrival_subject_capped(void **state)
{
	char subject[300];
	char want[300];
	struct log_arrival a = {
		.sender = "a@example.org",
		.size = 1,
		.receive_usec = -1,
		.subject = subject,
	};

	(void)state;
	memset(subject, 'x', 250);
	subject[250] = '\0';
	snprintf(want, sizeof(want), "<= a@example.org S=1 T=\"%.*s%s\"",
	    LOG_SUBJECT_MAX, subject, LOG_TRUNCATED_MARK);
	use_selectors("+subject");
	log_line_format_arrival(line, sizeof(line), &a);
	assert_line(want);
}

static void
arrival_many_recipients_cut(void **state)
{
	const char *recipients[2000];
	struct log_arrival a = {
		.sender = "a@example.org",
		.size = 1,
		.receive_usec = -1,
		.recipients = recipients,
		.recipient_count = ARRAY_SIZE(recipients),
	};
	size_t len;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(recipients); i++)
		recipients[i] = "someone@example.com";
	use_selectors("+received_recipients");
	len = log_line_format_arrival(line, sizeof(line), &a);
	assert_int_equal(len, strlen(line));
	assert_int_equal(len, sizeof(line) - 1);
	assert_string_equal(line + len - strlen(LOG_TRUNCATED_MARK),
	    LOG_TRUNCATED_MARK);
}

/* Deliveries. */

static void
delivery_local(void **state)
{
	struct log_delivery d = {
		.address = "bob",
		.original = "bob@example.net",
		.router = "local_user",
		.transport = "mail_spool",
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line("=> bob <bob@example.net> R=local_user T=mail_spool");
}

static void
delivery_remote_tls(void **state)
{
	struct log_delivery d = {
		.address = "dave@example.com",
		.host = MX2,
		.tls = { .cipher = CIPHER_256, .cert = LOG_CERT_VERIFIED },
		.confirmation = "250 2.0.0 Ok: queued as 4Qx7Zb0Lm",
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	/* Router and transport default to Exim's remote ones. */
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line("=> dave@example.com R=dnslookup T=remote_smtp "
	    "H=mx2.example.com [198.51.100.20] X=" CIPHER_256 " CV=yes "
	    "C=\"250 2.0.0 Ok: queued as 4Qx7Zb0Lm\"");

	d.kind = LOG_DELIVERY_MORE;
	d.address = "erin@example.com";
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line("-> erin@example.com R=dnslookup T=remote_smtp "
	    "H=mx2.example.com [198.51.100.20] X=" CIPHER_256 " CV=yes "
	    "C=\"250 2.0.0 Ok: queued as 4Qx7Zb0Lm\"");
}

static void
delivery_reused_connection(void **state)
{
	struct log_delivery d = {
		.address = "frank@example.com",
		.router = LOG_ROUTER_DNSLOOKUP,
		.transport = LOG_TRANSPORT_REMOTE,
		.host = MX2,
		.reused_connection = true,
		.tls = { .cipher = CIPHER_256, .cert = LOG_CERT_VERIFIED },
		.confirmation = "250 2.0.0 Ok: queued as 4Qx7Zc2Pq",
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line("=> frank@example.com R=dnslookup T=remote_smtp "
	    "H=mx2.example.com [198.51.100.20]* X=" CIPHER_256 " CV=yes "
	    "C=\"250 2.0.0 Ok: queued as 4Qx7Zc2Pq\"");
}

static void
delivery_more_plain_and_lmtp(void **state)
{
	struct log_delivery plain = {
		.kind = LOG_DELIVERY_MORE,
		.address = "quinn@example.org",
		.host = { .name = "mail.example.org", .ip = "192.0.2.17" },
		.confirmation = "250 OK id=1tt1WL-0000000Bq3r-2Lmn",
		.queue_usec = -1,
		.deliver_usec = -1,
	};
	struct log_delivery lmtp = {
		.kind = LOG_DELIVERY_MORE,
		.address = "kim",
		.original = "staff@example.net",
		.router = "lmtp_users",
		.transport = "dovecot_lmtp",
		.confirmation = "250 2.0.0 <kim@example.net> 8xY0KdQ Saved",
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	log_line_format_delivery(line, sizeof(line), &plain);
	assert_line("-> quinn@example.org R=dnslookup T=remote_smtp "
	    "H=mail.example.org [192.0.2.17] "
	    "C=\"250 OK id=1tt1WL-0000000Bq3r-2Lmn\"");
	log_line_format_delivery(line, sizeof(line), &lmtp);
	assert_line("-> kim <staff@example.net> R=lmtp_users T=dovecot_lmtp "
	    "C=\"250 2.0.0 <kim@example.net> 8xY0KdQ Saved\"");
}

static void
delivery_suppressed(void **state)
{
	struct log_delivery remote = {
		.kind = LOG_DELIVERY_SUPPRESSED,
		.address = "otto@example.net",
		/* -N sends nothing, so TLS and reply must not show. */
		.tls = { .cipher = CIPHER_256 },
		.confirmation = "250 OK",
		.queue_usec = -1,
		.deliver_usec = -1,
	};
	struct log_delivery local = {
		.kind = LOG_DELIVERY_SUPPRESSED,
		.address = "pat",
		.original = "pat@example.org",
		.router = "local_user",
		.transport = "mail_spool",
		.queue_usec = -1,
		.deliver_usec = -1,
	};
	struct log_delivery pipe = {
		.kind = LOG_DELIVERY_SUPPRESSED,
		.address = "|/usr/bin/procmail",
		.original = "pat+list@example.org",
		.router = "userforward",
		.transport = "address_pipe",
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	log_line_format_delivery(line, sizeof(line), &remote);
	assert_line("*> otto@example.net R=dnslookup T=remote_smtp");
	log_line_format_delivery(line, sizeof(line), &local);
	assert_line("*> pat <pat@example.org> R=local_user T=mail_spool");
	log_line_format_delivery(line, sizeof(line), &pipe);
	assert_line("*> |/usr/bin/procmail <pat+list@example.org> "
	    "R=userforward T=address_pipe");
}

static void
delivery_all_selectors(void **state)
{
	struct log_delivery d = {
		.address = "a@example.com",
		.sender = "s@example.org",
		.return_path = "bounce@example.org",
		.router = LOG_ROUTER_SMARTHOST,
		.size = 2973,
		.host = { .name = "relay.example.net", .ip = "192.0.2.5",
		    .port = 587 },
		.interface_ip = "192.0.2.9",
		.interface_port = 40001,
		.tls = { .cipher = CIPHER_256, .cert = LOG_CERT_DANE },
		.chunking = true,
		.confirmation = "250-first\n250 second \"quoted\" \\",
		.queue_usec = 93784000000LL,	/* 1d2h3m4s */
		.deliver_usec = 1578000,
	};

	(void)state;
	use_selectors("+sender_on_delivery +return_path_on_delivery "
	    "+delivery_size +outgoing_port +incoming_interface "
	    "+queue_time +deliver_time");
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line("=> a@example.com F=<s@example.org> "
	    "P=<bounce@example.org> R=smarthost T=remote_smtp S=2973 "
	    "H=relay.example.net [192.0.2.5]:587 I=[192.0.2.9]:40001 "
	    "X=" CIPHER_256 " CV=dane K "
	    "C=\"250-first\\n250 second \\\"quoted\\\" \\\\\" "
	    "QT=1d2h3m4s DT=1s");

	/* Without outgoing_interface there is no I=, as in Exim. */
	use_selectors("+incoming_interface -outgoing_interface");
	log_line_format_delivery(line, sizeof(line), &d);
	assert_null(strstr(line, " I="));
}

static void
delivery_confirmation_capped(void **state)
{
	char reply[2000];
	char want[LOG_CONFIRMATION_MAX + 100];
	struct log_delivery d = {
		.address = "a@example.com",
		.confirmation = reply,
		.queue_usec = -1,
		.deliver_usec = -1,
	};

	(void)state;
	memset(reply, 'r', sizeof(reply) - 1);
	reply[sizeof(reply) - 1] = '\0';
	snprintf(want, sizeof(want), "=> a@example.com R=dnslookup "
	    "T=remote_smtp C=\"%.*s%s\"", LOG_CONFIRMATION_MAX, reply,
	    LOG_TRUNCATED_MARK);
	log_line_format_delivery(line, sizeof(line), &d);
	assert_line(want);
}

/* Deferrals, failures, completion. */

static void
defer_examples(void **state)
{
	struct log_defer refused = {
		.address = "lee@example.info",
		.router = "dnslookup",
		.transport = "remote_smtp",
		.error_code = 111,	/* ECONNREFUSED on Linux */
		.deliver_usec = -1,
	};
	struct log_defer greylisted = {
		.address = "mia@example.com",
		.router = "dnslookup",
		.transport = "remote_smtp",
		.error_code = -44,
		.host = MX2,
		.deliver_usec = -1,
		.message = "SMTP error from remote mail server after RCPT "
		    "TO:<mia@example.com>: 451 4.7.1 Greylisted, try again "
		    "later",
	};
	struct log_defer retry = {
		.address = "lee@example.info",
		.router = "dnslookup",
		.transport = "remote_smtp",
		.error_code = -54,
		.deliver_usec = -1,
		.message = "retry time not reached for any host for "
		    "'example.info'",
		.retry_time_not_reached = true,
	};
	struct log_defer quota = {
		.address = "nina@example.net",
		.router = "local_user",
		.transport = "mail_spool",
		.error_code = -22,
		.deliver_usec = -1,
		.message = "mailbox is full (MTA-imposed quota exceeded while "
		    "writing to /var/mail/nina)",
	};

	(void)state;
	log_line_format_defer(line, sizeof(line), &refused);
	assert_line("== lee@example.info R=dnslookup T=remote_smtp "
	    "defer (111): Connection refused");
	refused.error = "Connection refused";
	log_line_format_defer(line, sizeof(line), &refused);
	assert_line("== lee@example.info R=dnslookup T=remote_smtp "
	    "defer (111): Connection refused");
	log_line_format_defer(line, sizeof(line), &greylisted);
	assert_line("== mia@example.com R=dnslookup T=remote_smtp "
	    "defer (-44) H=mx2.example.com [198.51.100.20]: SMTP error from "
	    "remote mail server after RCPT TO:<mia@example.com>: 451 4.7.1 "
	    "Greylisted, try again later");
	log_line_format_defer(line, sizeof(line), &retry);
	assert_line("== lee@example.info R=dnslookup T=remote_smtp "
	    "defer (-54): retry time not reached for any host for "
	    "'example.info'");
	log_line_format_defer(line, sizeof(line), &quota);
	assert_line("== nina@example.net R=local_user T=mail_spool "
	    "defer (-22): mailbox is full (MTA-imposed quota exceeded while "
	    "writing to /var/mail/nina)");
}

static void
defer_routing_and_times(void **state)
{
	struct log_defer d = {
		.address = "x@example.org",
		.error_code = -36,
		.host = MX2,
		.deliver_usec = 61000000,
		.message = "DNS lookup deferred",
	};

	(void)state;
	use_selectors("+deliver_time");
	log_line_format_defer(line, sizeof(line), &d);
	assert_line("== x@example.org routing defer (-36) "
	    "H=mx2.example.com [198.51.100.20] DT=1m1s: DNS lookup deferred");
}

static void
failure_examples(void **state)
{
	struct log_failure rcpt = {
		.address = "ivan@example.com",
		.router = "dnslookup",
		.transport = "remote_smtp",
		.host = MX2,
		.tls = { .cipher = CIPHER_256, .cert = LOG_CERT_VERIFIED },
		.message = "SMTP error from remote mail server after RCPT "
		    "TO:<ivan@example.com>: 550 5.1.1 <ivan@example.com>: "
		    "Recipient address rejected: User unknown",
		.deliver_usec = -1,
	};
	struct log_failure unrouteable = {
		.address = "nosuchuser@example.net",
		.message = "Unrouteable address",
		.deliver_usec = -1,
	};
	struct log_failure bounce = {
		.address = "postmaster@example.org",
		.sender = "",
		.router = "dnslookup",
		.transport = "remote_smtp",
		.host = { .name = "mx.example.org", .ip = "192.0.2.25" },
		.message = "SMTP error from remote mail server after RCPT "
		    "TO:<postmaster@example.org>: 550 5.7.1 Rejected",
		.deliver_usec = -1,
	};

	(void)state;
	log_line_format_failure(line, sizeof(line), &rcpt);
	assert_line("** ivan@example.com R=dnslookup T=remote_smtp "
	    "H=mx2.example.com [198.51.100.20] X=" CIPHER_256 " CV=yes: "
	    "SMTP error from remote mail server after RCPT "
	    "TO:<ivan@example.com>: 550 5.1.1 <ivan@example.com>: Recipient "
	    "address rejected: User unknown");
	log_line_format_failure(line, sizeof(line), &unrouteable);
	assert_line("** nosuchuser@example.net: Unrouteable address");

	use_selectors("+sender_on_delivery");
	log_line_format_failure(line, sizeof(line), &bounce);
	assert_line("** postmaster@example.org F=<> R=dnslookup "
	    "T=remote_smtp H=mx.example.org [192.0.2.25]: SMTP error from "
	    "remote mail server after RCPT TO:<postmaster@example.org>: "
	    "550 5.7.1 Rejected");
}

static void
failure_error_and_time(void **state)
{
	struct log_failure f = {
		.address = "a@example.org",
		.transport = "remote_smtp",
		.error = "Connection reset by peer",
		.message = "bad\nreply",
		.deliver_usec = 3000000,
	};

	(void)state;
	use_selectors("+deliver_time");
	log_line_format_failure(line, sizeof(line), &f);
	assert_line("** a@example.org T=remote_smtp: Connection reset by "
	    "peer: bad\\nreply DT=3s");
}

static void
completed_lines(void **state)
{
	(void)state;
	log_line_format_completed(line, sizeof(line), 3000000);
	assert_line("Completed");
	use_selectors("+queue_time_overall");
	log_line_format_completed(line, sizeof(line), 3000000);
	assert_line("Completed QT=3s");
	log_line_format_completed(line, sizeof(line), -1);
	assert_line("Completed");
}

/* Sessions and the daemon. */

static void
reject_lines(void **state)
{
	struct log_reject rcpt = {
		.host = { .helo = "win-7x2", .ip = "203.0.113.99",
		    .port = 50112 },
		.sender = "promo@bulk.example",
		.stage = "RCPT",
		.address = "nobody@example.net",
		.reason = "relay not permitted",
	};
	struct log_reject data = {
		.host = { .helo = "win-7x2", .ip = "203.0.113.99",
		    .port = 50150 },
		.sender = "promo@bulk.example",
		.stage = "after DATA",
		.reason = "content rejected",
	};

	(void)state;
	use_selectors("+incoming_port");
	log_line_format_reject(line, sizeof(line), &rcpt);
	assert_line("H=(win-7x2) [203.0.113.99]:50112 F=<promo@bulk.example> "
	    "rejected RCPT <nobody@example.net>: relay not permitted");
	log_line_format_reject(line, sizeof(line), &data);
	assert_line("H=(win-7x2) [203.0.113.99]:50150 F=<promo@bulk.example> "
	    "rejected after DATA: content rejected");
	rcpt.temporary = true;
	rcpt.sender = "";
	log_line_format_reject(line, sizeof(line), &rcpt);
	assert_line("H=(win-7x2) [203.0.113.99]:50112 F=<> temporarily "
	    "rejected RCPT <nobody@example.net>: relay not permitted");
}

static void
connection_lines(void **state)
{
	struct log_host host = { .ip = "203.0.113.99", .port = 50160 };

	(void)state;
	use_selectors("+incoming_port");
	log_line_format_connection(line, sizeof(line), &host, 3);
	assert_line("SMTP connection from [203.0.113.99]:50160 "
	    "(TCP/IP connection count = 3)");
	host.port = 50170;
	log_line_format_connection_refused(line, sizeof(line), &host,
	    "too many connections");
	assert_line("Connection from [203.0.113.99]:50170 refused: too many "
	    "connections");
}

static void
auth_failure_line(void **state)
{
	struct log_auth_failure f = {
		.authenticator = "plain_server",
		.host = { .helo = "user", .ip = "203.0.113.99", .port = 50140 },
		.reply = "535 Incorrect authentication data",
		.set_id = "admin",
	};

	(void)state;
	use_selectors("+incoming_port");
	log_line_format_auth_failure(line, sizeof(line), &f);
	assert_line("plain_server authenticator failed for (user) "
	    "[203.0.113.99]:50140: 535 Incorrect authentication data "
	    "(set_id=admin)");
	f.set_id = NULL;
	log_line_format_auth_failure(line, sizeof(line), &f);
	assert_line("plain_server authenticator failed for (user) "
	    "[203.0.113.99]:50140: 535 Incorrect authentication data");
}

static void
daemon_start_lines(void **state)
{
	static const struct log_listener wildcard[] = {
		{ NULL, 25 }, { NULL, 587 },
	};
	static const struct log_listener addresses[] = {
		{ "127.0.0.1", 2525 }, { "::1", 2525 },
	};
	struct log_listener many[12];
	struct log_daemon_start s = {
		.program = "exim 4.98",
		.pid = 812,
		.queue_runs = "-q30m",
		.listeners = wildcard,
		.listener_count = 2,
	};

	(void)state;
	log_line_format_daemon_start(line, sizeof(line), &s);
	assert_line("exim 4.98 daemon started: pid=812, -q30m, listening for "
	    "SMTP on port 25 (IPv6 and IPv4) port 587 (IPv6 and IPv4)");

	s.program = "sluice 0.1.0";
	s.queue_runs = NULL;
	s.listeners = addresses;
	log_line_format_daemon_start(line, sizeof(line), &s);
	assert_line("sluice 0.1.0 daemon started: pid=812, no queue runs, "
	    "listening for SMTP on [127.0.0.1]:2525 [::1]:2525");

	for (size_t i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = (struct log_listener){ "127.0.0.1", (int)(2500 + i) };
	s.listeners = many;
	s.listener_count = ARRAY_SIZE(many);
	log_line_format_daemon_start(line, sizeof(line), &s);
	assert_non_null(strstr(line, " [127.0.0.1]:2509 ...")); /* 10th */
	assert_null(strstr(line, ":2510"));

	s.listener_count = 0;
	log_line_format_daemon_start(line, sizeof(line), &s);
	assert_line("sluice 0.1.0 daemon started: pid=812, no queue runs, "
	    "not listening for SMTP");
}

static void
queue_run_lines(void **state)
{
	(void)state;
	log_line_format_queue_run(line, sizeof(line), true, 9120);
	assert_line("Start queue run: pid=9120");
	log_line_format_queue_run(line, sizeof(line), false, 9120);
	assert_line("End queue run: pid=9120");
}

/* Helpers. */

static void
escape_table(void **state)
{
	static const struct {
		const char *in;
		enum log_escape_mode mode;
		size_t max;
		const char *want;
	} cases[] = {
		{ "plain text", LOG_ESCAPE_TEXT, 100, "plain text" },
		{ "a b", LOG_ESCAPE_TOKEN, 100, "a\\x20b" },
		{ "say \"hi\"", LOG_ESCAPE_QUOTED, 100, "say \\\"hi\\\"" },
		{ "say \"hi\"", LOG_ESCAPE_TEXT, 100, "say \"hi\"" },
		{ "back\\slash", LOG_ESCAPE_TEXT, 100, "back\\\\slash" },
		{ "l1\r\nl2\tx", LOG_ESCAPE_TEXT, 100, "l1\\r\\nl2\\tx" },
		{ "\x01\x1f\x7f", LOG_ESCAPE_TEXT, 100, "\\x01\\x1f\\x7f" },
		{ "caf\xc3\xa9", LOG_ESCAPE_TEXT, 100, "caf\\xc3\\xa9" },
		{ "abcdef", LOG_ESCAPE_TEXT, 3, "abc" LOG_TRUNCATED_MARK },
		{ "abc", LOG_ESCAPE_TEXT, 3, "abc" },
		{ "", LOG_ESCAPE_TOKEN, 3, "" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[128];
		size_t need = log_line_escape(out, sizeof(out), cases[i].in,
		    cases[i].max, cases[i].mode);

		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out,
			    cases[i].want);
		assert_int_equal(need, strlen(cases[i].want));
	}
}

static void
escape_small_buffer_keeps_whole_escapes(void **state)
{
	char out[6];
	size_t need;

	(void)state;
	/* "ab" fits, the 4-byte "\x01" would not: stop after "ab". */
	need = log_line_escape(out, sizeof(out), "ab\x01" "cd", 100,
	    LOG_ESCAPE_TEXT);
	assert_string_equal(out, "ab");
	assert_int_equal(need, 8);
}

static void
escape_hostile_lengths(void **state)
{
	static const size_t lengths[] = { 0, 1, 511, 512, 513, 100000 };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lengths); i++) {
		char *in = xmalloc(lengths[i] + 1);
		struct log_delivery d = {
			.address = in,
			.queue_usec = -1,
			.deliver_usec = -1,
		};
		size_t len;

		memset(in, '\n', lengths[i]);
		in[lengths[i]] = '\0';
		d.confirmation = in;
		len = log_line_format_delivery(line, sizeof(line), &d);
		assert_int_equal(len, strlen(line));
		assert_true(len < sizeof(line));
		assert_null(strchr(line, '\n'));
		free(in);
	}
}

static void
duration_table(void **state)
{
	static const struct {
		int64_t usec;
		bool millisec;
		const char *want;
	} cases[] = {
		{ 0, false, "0s" },
		{ 999999, false, "0s" },
		{ 59000000, false, "59s" },
		{ 60000000, false, "1m" },
		{ 3 * 3600 * INT64_C(1000000), false, "3h" },
		{ 93784 * INT64_C(1000000), false, "1d2h3m4s" },
		{ 8 * 86400 * INT64_C(1000000), false, "1w1d" },
		{ -5000000, false, "-5s" },
		{ 1578000, true, "1.578s" },
		{ 4999999, true, "4.999s" },
		{ 5000000, true, "5s" },
		{ 0, true, "0.000s" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[32];

		use_selectors(cases[i].millisec ? "+millisec" : "");
		log_line_format_duration(out, sizeof(out), cases[i].usec);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out,
			    cases[i].want);
	}
}

static void
small_buffer_marks_cut(void **state)
{
	char small[LOG_LINE_BUFFER_MIN];
	struct log_delivery d = {
		.address = "a-rather-long-address@a-rather-long-domain.example",
		.host = MX2,
		.queue_usec = -1,
		.deliver_usec = -1,
	};
	size_t len;

	(void)state;
	len = log_line_format_delivery(small, sizeof(small), &d);
	assert_int_equal(len, sizeof(small) - 1);
	assert_int_equal(strlen(small), len);
	assert_string_equal(small + len - strlen(LOG_TRUNCATED_MARK),
	    LOG_TRUNCATED_MARK);
}

#define TEST(f) cmocka_unit_test_setup(f, reset_selectors)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(arrival_smtp_tls),
		TEST(arrival_local),
		TEST(arrival_with_port_subject_recipients),
		TEST(arrival_bounce),
		TEST(arrival_optional_fields),
		TEST(arrival_helo_forms),
		TEST(arrival_subject_capped),
		TEST(arrival_many_recipients_cut),
		TEST(delivery_local),
		TEST(delivery_remote_tls),
		TEST(delivery_reused_connection),
		TEST(delivery_more_plain_and_lmtp),
		TEST(delivery_suppressed),
		TEST(delivery_all_selectors),
		TEST(delivery_confirmation_capped),
		TEST(defer_examples),
		TEST(defer_routing_and_times),
		TEST(failure_examples),
		TEST(failure_error_and_time),
		TEST(completed_lines),
		TEST(reject_lines),
		TEST(connection_lines),
		TEST(auth_failure_line),
		TEST(daemon_start_lines),
		TEST(queue_run_lines),
		TEST(escape_table),
		TEST(escape_small_buffer_keeps_whole_escapes),
		TEST(escape_hostile_lengths),
		TEST(duration_table),
		TEST(small_buffer_marks_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

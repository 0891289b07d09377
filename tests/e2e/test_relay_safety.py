"""Relay safety: the classic ways to make an MTA relay for a client that
may not relay, tried from a host outside relay_from_hosts against a
daemon that delivers by MX records.

Every attempt must get a 5xx, and nothing may reach the spool. The
recording sink, which dnsmasq names as the MX of the outside domain, must
see nothing but the positive control. That is the same outside address
sent from a host in relay_from_hosts, which proves that delivery to the
sink works, so the sink's silence about the attempts means something.
"""

import os
import shutil
import tempfile

import sluicetest
from sink import Sink
from smtpraw import Client

# The sink listens on 127.0.0.5, the MX host of outside.test. local.test
# has no MX, so nothing for it could be delivered anywhere.
DNS_RECORDS = [
    "--mx-host=outside.test,mx.outside.test,10",
    "--host-record=mx.outside.test,127.0.0.5",
]

# Every attempt fits in one session: the syntax error limit is raised.
SETTINGS = (
    "domainlist local_domains = local.test\n"
    "hostlist relay_from_hosts = 127.0.0.1\n"
    "smtp_max_synprot_errors = 100\n"
)

# (RCPT argument, expected reply): the attempts from 127.0.0.2.
ATTEMPTS = [
    (b"<user%outside.test@local.test>",
     b"550 Restricted characters in address"),
    (b"<user%outside.test@LOCAL.TEST>",
     b"550 Restricted characters in address"),
    (b"<outside.test!user@local.test>",
     b"550 Restricted characters in address"),
    (b'<"user@outside.test"@local.test>',
     b"550 Restricted characters in address"),
    (b'<"user%outside.test"@local.test>',
     b"550 Restricted characters in address"),
    (b"<user%outside.test@outside.test>",
     b"550 Restricted characters in address"),
    (b"<@local.test:user@outside.test>", b"550 relay not permitted"),
    (b"<@local.test,@local.test:user@outside.test>",
     b"550 relay not permitted"),
    (b"<user@outside.test>", b"550 relay not permitted"),
    (b"<user@OUTSIDE.TEST>", b"550 relay not permitted"),
    (b"<User@Outside.Test>", b"550 relay not permitted"),
    (b"<postmaster@outside.test>", b"550 relay not permitted"),
    (b"<user@[127.0.0.5]>",
     b"501 <user@[127.0.0.5]>: domain literals not allowed"),
    (b"<user@outside.test.>",
     b"501 <user@outside.test.>: domain missing or malformed"),
    (b"<user@local.test.>",
     b"501 <user@local.test.>: domain missing or malformed"),
    (b"<user@local.test@outside.test>",
     b"501 <user@local.test@outside.test>: domain missing or malformed"),
    (b"<outside.test!user>",
     b"501 <outside.test!user>: recipient address must contain a domain"),
    (b"<user%outside.test>",
     b"501 <user%outside.test>: recipient address must contain a domain"),
    (b"<user@outside.test >",
     b"501 <user@outside.test >: domain missing or malformed"),
]


class RelaySafetyTest(sluicetest.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        # Only the records above, on loopback, forwarding nothing.
        cls.dnsmasq = sluicetest.Dnsmasq(DNS_RECORDS).start()
        cls.dns_port = cls.dnsmasq.port

    @classmethod
    def tearDownClass(cls):
        cls.dnsmasq.stop()

    def setUp(self):
        folder = tempfile.mkdtemp(prefix="sluice-sink-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.sink = Sink(folder, host="127.0.0.5").start()
        self.addCleanup(self.sink.stop)

    def relay_daemon(self, extra=""):
        return self.daemon(settings=SETTINGS + extra +
                           f"dns_servers = 127.0.0.1\n"
                           f"dns_port = {self.dns_port}\n"
                           f"delivery_port = {self.sink.port}\n").start()

    def spool_files(self, d):
        path = os.path.join(d.spool, "input")
        if not os.path.isdir(path):
            return []
        return sorted(name for name in os.listdir(path)
                      if not name.startswith("."))

    def attempt(self, d, attempts):
        """Try every RCPT in one transaction from 127.0.0.2; check each
        reply and that no message can follow."""
        c = Client(d.port, "127.0.0.2")
        self.addCleanup(c.close)
        c.command(b"EHLO outsider.test")
        self.assertEqual(c.command(b"MAIL FROM:<spammer@elsewhere.test>"),
                         b"250 OK\r\n")
        for arg, want in attempts:
            with self.subTest(rcpt=arg):
                self.assertEqual(c.command(b"RCPT TO:" + arg), want + b"\r\n")
        self.assertEqual(c.command(b"DATA"),
                         b"503 valid RCPT command must precede DATA\r\n")
        c.command(b"QUIT")

    def positive_control(self, d):
        """Send the same outside address from a relay_from_hosts host,
        check that it reaches the sink, and that the sink has nothing
        else."""
        c = Client(d.port, "127.0.0.1")
        self.addCleanup(c.close)
        c.command(b"EHLO insider.test")
        c.command(b"MAIL FROM:<insider@local.test>")
        self.assertEqual(c.command(b"RCPT TO:<user@outside.test>"),
                         b"250 Accepted\r\n")
        c.command(b"DATA")
        self.assertTrue(c.command(b"Subject: control\r\n\r\ncontrol\r\n.")
                        .startswith(b"250 OK id="))
        c.command(b"QUIT")
        messages = self.sink.wait_for_messages(1)
        sluicetest.wait_for(lambda: self.spool_files(d) == [], 30,
                            "the control message to leave the spool")
        messages = self.sink.messages()
        self.assertEqual(len(messages), 1, messages)
        self.assertEqual(messages[0]["mail_from"], "insider@local.test")
        self.assertEqual(messages[0]["rcpt_to"], ["user@outside.test"])

    def test_relay_attempts_refused(self):
        d = self.relay_daemon()
        self.attempt(d, ATTEMPTS)
        self.assertEqual(self.spool_files(d), [])
        reject = d.log("reject")
        for arg, want in ATTEMPTS:
            if want.startswith(b"550 "):
                line = (f"H=(outsider.test) [127.0.0.2] "
                        f"F=<spammer@elsewhere.test> rejected RCPT "
                        f"{arg.decode()}: {want[4:].decode()}\n")
                line = line.replace("RCPT <@local.test:", "RCPT <")
                line = line.replace("RCPT <@local.test,@local.test:", "RCPT <")
                self.assertIn(line, reject)
        self.positive_control(d)

    def test_domain_literal_refused_when_allowed(self):
        # With literals allowed, a literal is a domain like any other
        # that is not local, so it is not relayed either.
        d = self.relay_daemon("allow_domain_literals\n")
        self.attempt(d, [
            (b"<user@[127.0.0.5]>", b"550 relay not permitted"),
            (b"<user@[IPv6:::1]>", b"550 relay not permitted"),
            (b"<user%outside.test@[127.0.0.5]>",
             b"550 Restricted characters in address"),
        ])
        self.assertEqual(self.spool_files(d), [])
        self.positive_control(d)


if __name__ == "__main__":
    sluicetest.main()

"""sluice -bh: a test SMTP session on standard input and output as if
from a given address, in the shape of Exim 4.96's -bh output, that logs
and queues nothing."""

import os
import re

import sluicetest

SETTINGS = (
    "domainlist local_domains = local.test\n"
    "domainlist relay_to_domains = relay.test\n"
    "hostlist relay_from_hosts = 127.0.0.1\n"
)

SESSION = (b"EHLO client.test\r\n"
           b"MAIL FROM:<a@a.test>\r\n"
           b"RCPT TO:<b@local.test>\r\n"
           b"RCPT TO:<c@outside.test>\r\n"
           b"RCPT TO:<user%outside.test@local.test>\r\n"
           b"DATA\r\n"
           b"Subject: test\r\n\r\nbody\r\n.\r\n"
           b"QUIT\r\n")

ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"


class HostCheckingTest(sluicetest.DaemonTestCase):

    def host_check(self, d, host, data):
        result = d.run("-bh", host, input=data)
        return (result.returncode, result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"))

    def test_session_output(self):
        d = self.daemon(settings=SETTINGS)
        rc, out, err = self.host_check(d, "192.0.2.9", SESSION)
        self.assertEqual(rc, 0, err)
        lines = out.split("\n")
        self.assertEqual(lines[:5], [
            "",
            "**** SMTP testing session as if from host 192.0.2.9",
            "**** but without any ident (RFC 1413) callback.",
            "**** This is not for real!",
            ""])
        self.assertRegex(lines[5], r"^220 sluice\.test ESMTP sluice \S+ .*\r$")
        replies = [line for line in lines[6:] if not line.startswith("250-")]
        self.assertEqual(replies[:6], [
            "250 HELP\r",
            "250 OK\r",
            "250 Accepted\r",
            "550 relay not permitted\r",
            "550 Restricted characters in address\r",
            '354 Enter message, ending with "." on a line by itself\r'])
        self.assertRegex(replies[6], r"^250 OK id=" + ID + r"\r$")
        self.assertEqual(replies[7:], [
            "",
            "**** SMTP testing: that is not a real message id!",
            "",
            "221 sluice.test closing connection\r",
            ""])

        # Decisions and would-be log lines on stderr.
        self.assertIn(">>> local.test in local_domains? yes (matched "
                      "\"local.test\")\n", err)
        self.assertIn(">>> host in relay_from_hosts? no (end of list)\n", err)
        self.assertIn("LOG: H=(client.test) [192.0.2.9] F=<a@a.test> "
                      "rejected RCPT <c@outside.test>: relay not permitted\n",
                      err)
        self.assertIn("LOG: H=(client.test) [192.0.2.9] F=<a@a.test> "
                      "rejected RCPT <user%outside.test@local.test>: "
                      "Restricted characters in address\n", err)
        self.assertRegex(err, r"LOG: " + ID + r" <= a@a\.test "
                         r"H=\(client\.test\) \[192\.0\.2\.9\] P=esmtp S=\d+\n")

        # Nothing was queued or logged.
        self.assertFalse(os.path.exists(os.path.join(d.spool, "input")))
        self.assertEqual(d.log(), "")
        self.assertEqual(d.log("reject"), "")

    def test_relay_host_may_relay(self):
        d = self.daemon(settings=SETTINGS)
        rc, out, err = self.host_check(
            d, "127.0.0.1.2525",
            b"HELO client.test\r\nMAIL FROM:<a@a.test>\r\n"
            b"RCPT TO:<c@outside.test>\r\nQUIT\r\n")
        self.assertEqual(rc, 0, err)
        self.assertIn("**** SMTP testing session as if from host 127.0.0.1\n",
                      out)
        self.assertIn("250 Accepted\r\n", out)
        self.assertIn(">>> host in relay_from_hosts? yes (matched "
                      "\"127.0.0.1\")\n", err)
        self.assertIn(">>> RCPT <c@outside.test>: accepted\n", err)

    def test_ipv6_and_end_of_input(self):
        d = self.daemon(settings=SETTINGS)
        rc, out, err = self.host_check(d, "2001:db8::1",
                                       b"EHLO client.test\r\nNOOP\r\n")
        self.assertEqual(rc, 0, err)
        self.assertIn("as if from host 2001:db8::1\n", out)
        self.assertIn("250-sluice.test Hello client.test [2001:db8::1]\r\n",
                      out)
        # Input that ends without QUIT gets Exim's reply to it.
        self.assertTrue(out.endswith("250 OK\r\n"
                                     "421 sluice.test lost input "
                                     "connection\r\n"), out)
        self.assertIn("LOG: unexpected disconnection while reading SMTP "
                      "command from (client.test) [2001:db8::1]", err)

    def test_limits_apply(self):
        d = self.daemon(settings=SETTINGS + "recipients_max = 1\n"
                        "smtp_max_unknown_commands = 0\n")
        rc, out, err = self.host_check(
            d, "192.0.2.9",
            b"EHLO client.test\r\nMAIL FROM:<a@a.test>\r\n"
            b"RCPT TO:<b@local.test>\r\nRCPT TO:<c@local.test>\r\n"
            b"FOO\r\nNOOP\r\n")
        self.assertEqual(rc, 0, err)
        self.assertIn("250 Accepted\r\n452 too many recipients\r\n"
                      "500 Too many unrecognized commands\r\n", out)
        self.assertNotIn("NOOP", out)
        self.assertIn("LOG: too many recipients: excess temporarily "
                      "rejected: sender=<a@a.test> H=(client.test) "
                      "[192.0.2.9]\n", err)

    def test_invalid_address(self):
        d = self.daemon(settings=SETTINGS)
        for host in ("nonsense", "192.0.2.9.70000", "192.0.2", ""):
            with self.subTest(host=host):
                rc, out, err = self.host_check(d, host, b"QUIT\r\n")
                self.assertEqual(rc, 1)
                self.assertEqual(out, "")
                self.assertIn(f'sluice: -bh: "{host}" is not an IP address',
                              err)

    def test_missing_address(self):
        d = self.daemon(settings=SETTINGS)
        result = d.run("-bh")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"sluice: unknown, malformed, or incomplete option -bh",
                      result.stderr)


if __name__ == "__main__":
    sluicetest.main()

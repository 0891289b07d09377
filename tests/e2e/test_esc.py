"""ENHANCEDSTATUSCODES (RFC 2034, RFC 3463) on the SMTP server: off by
default, as in Exim; with smtp_enhanced_status_codes = true, offered in
EHLO and put on every reply after EHLO except 3xx, with the same text
after the code."""

import re

import sluicetest
from smtpraw import Client

RELAY = "domainlist relay_to_domains = relay.test\n"
ESC = RELAY + "smtp_enhanced_status_codes = true\n"
ID = rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"


class EnhancedStatusCodesTest(sluicetest.DaemonTestCase):

    def client(self, d):
        c = Client(d.port)
        self.addCleanup(c.close)
        return c

    def test_off_by_default(self):
        d = self.daemon(settings=RELAY).start()
        c = self.client(d)
        self.assertNotIn(b"ENHANCEDSTATUSCODES", c.command(b"EHLO client.test"))
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@elsewhere.test>"),
                         b"550 relay not permitted\r\n")

    def test_codes_on_a_whole_session(self):
        d = self.daemon(settings=ESC + "smtp_max_synprot_errors = 100\n")
        d.start()
        c = self.client(d)
        # The greeting and the EHLO reply carry no codes.
        self.assertRegex(c.banner, rb"^220 sluice\.test ESMTP ")
        ehlo = c.command(b"EHLO client.test")
        self.assertIn(b"\r\n250-ENHANCEDSTATUSCODES\r\n", ehlo)
        self.assertTrue(ehlo.startswith(b"250-sluice.test Hello client.test"),
                        ehlo)
        self.assertTrue(ehlo.endswith(b"\r\n250 HELP\r\n"), ehlo)

        cases = [
            (b"NOOP", b"250 2.0.0 OK\r\n"),
            (b"RCPT TO:<b@relay.test>", b"503 5.5.1 sender not yet given\r\n"),
            (b"MAIL FROM:<a@example.test>", b"250 2.1.0 OK\r\n"),
            (b"MAIL FROM:<a@example.test>",
             b"503 5.5.1 sender already given\r\n"),
            (b"RCPT TO:<b@elsewhere.test>",
             b"550 5.7.1 relay not permitted\r\n"),
            (b"RCPT TO:<b@>",
             b"501 5.1.3 <b@>: domain missing or malformed\r\n"),
            (b"RCPT TO:<b@relay.test> X-NEW=1",
             b"555 5.5.4 X-NEW: parameter not recognized\r\n"),
            (b"XYZZY", b"500 5.5.1 unrecognized command\r\n"),
            (b"RCPT TO:<b@relay.test>", b"250 2.1.5 Accepted\r\n"),
            (b"DATA", b'354 Enter message, ending with "." on a line by '
             b'itself\r\n'),
        ]
        for line, want in cases:
            with self.subTest(line=line):
                self.assertEqual(c.command(line), want)
        self.assertRegex(c.command(b"Subject: esc\r\n\r\nbody\r\n."),
                         rb"^250 2\.0\.0 OK id=" + ID + rb"\r\n$")
        self.assertEqual(c.command(b"RSET"), b"250 2.0.0 Reset OK\r\n")
        self.assertEqual(c.command(b"HELP"),
                         b"214-2.0.0 Commands supported:\r\n"
                         b"214 2.0.0 HELO EHLO MAIL RCPT DATA NOOP QUIT RSET "
                         b"HELP\r\n")
        self.assertEqual(c.command(b"QUIT"),
                         b"221 2.0.0 sluice.test closing connection\r\n")

    def test_bdat_chunk_reply(self):
        d = self.daemon(settings=ESC).start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        chunk = b"Subject: esc\r\n\r\nbody\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply(), b"250 2.0.0 %d byte chunk received\r\n"
                         % len(chunk))
        c.send(b"BDAT 0 LAST\r\n")
        self.assertRegex(c.reply(), rb"^250 2\.0\.0 OK id=" + ID)

    def test_helo_session_gets_no_codes(self):
        # RFC 2034 section 3: codes only after an EHLO that offered them.
        d = self.daemon(settings=ESC).start()
        c = self.client(d)
        self.assertEqual(c.command(b"HELO client.test"),
                         b"250 sluice.test Hello client.test [127.0.0.1]\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        # A later EHLO turns them on; a HELO after it turns them off.
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"NOOP"), b"250 2.0.0 OK\r\n")
        c.command(b"HELO client.test")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")

    def test_error_limit_reply_has_codes_on_both_lines(self):
        d = self.daemon(settings=ESC + "smtp_max_synprot_errors = 1\n")
        d.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"RCPT TO:<b@relay.test>"),
                         b"503 5.5.1 sender not yet given\r\n")
        reply = c.command(b"RCPT TO:<b@relay.test>")
        self.assertEqual(reply, b"503-5.5.1 sender not yet given\r\n"
                         b"503 5.5.1 Too many syntax or protocol errors\r\n")
        self.assertTrue(re.search(r"SMTP call from \(client.test\) "
                                  r"\[127.0.0.1\] dropped: too many syntax",
                                  d.log("reject")), d.log("reject"))


if __name__ == "__main__":
    sluicetest.main()

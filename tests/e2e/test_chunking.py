"""CHUNKING (BDAT, RFC 3030) on the SMTP server, over raw sockets since
neither swaks nor smtplib sends BDAT: chunks, LAST, BDAT 0 LAST,
pipelining, rejected chunks whose bytes are still read, and DATA after
BDAT."""

import glob
import os

import sluicetest
from smtpraw import Client

RELAY = "domainlist relay_to_domains = relay.test\n"
ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"


class ChunkingTest(sluicetest.DaemonTestCase):

    def start(self, extra=""):
        return self.daemon(settings=RELAY + extra).start()

    def client(self, d):
        c = Client(d.port)
        self.addCleanup(c.close)
        self.assertIn(b"250-CHUNKING", c.command(b"EHLO client.test"))
        return c

    def data_files(self, d):
        texts = []
        for path in glob.glob(os.path.join(d.spool, "input", "**", "*-D"),
                              recursive=True):
            with open(path, "rb") as f:
                texts.append(f.read())
        return texts

    def test_two_chunks_make_one_message(self):
        d = self.start()
        c = self.client(d)
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@relay.test>"),
                         b"250 Accepted\r\n")
        first = b"Subject: chunks\r\n\r\nline one\r"
        c.send(b"BDAT %d\r\n" % len(first) + first)
        self.assertEqual(c.reply(), b"250 %d byte chunk received\r\n"
                         % len(first))
        # The CRLF is split across the chunks; a dot line is content.
        second = b"\n.\r\nline three\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(second) + second)
        self.assertRegex(c.reply(), rb"^250 OK id=" + ID.encode())
        lines = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(lines), 1, d.log())
        self.assertRegex(lines[0], r" K ")
        data = self.data_files(d)
        self.assertEqual(len(data), 1)
        self.assertTrue(data[0].endswith(b"line one\n.\nline three\n"),
                        data[0])

    def test_pipelined_bdat_0_last(self):
        d = self.start()
        c = self.client(d)
        body = b"Subject: pipelined\r\n\r\nbody\r\n"
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@relay.test>\r\n"
               b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\nNOOP\r\n")
        self.assertEqual(c.reply(), b"250 OK\r\n")
        self.assertEqual(c.reply(), b"250 Accepted\r\n")
        self.assertEqual(c.reply(), b"250 %d byte chunk received\r\n"
                         % len(body))
        self.assertRegex(c.reply(), rb"^250 OK id=" + ID.encode())
        self.assertEqual(c.reply(), b"250 OK\r\n")

    def test_rejected_chunk_is_still_read(self):
        d = self.start()
        c = self.client(d)
        # No transaction: the chunk gets 503, and its bytes, which look
        # like commands, are dropped rather than run.
        chunk = b"MAIL FROM:<x@example.test>\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        self.assertEqual(c.reply(), b"503 sender not yet given\r\n")
        self.assertEqual(c.reply(), b"250 OK\r\n")
        # A recipient refused leaves no valid one: 503 again.
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        self.assertTrue(c.command(b"RCPT TO:<b@elsewhere.test>")
                        .startswith(b"550 "))
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"RSET\r\n")
        self.assertEqual(c.reply(),
                         b"503 valid RCPT command must precede BDAT\r\n")
        self.assertEqual(c.reply(), b"250 Reset OK\r\n")
        self.assertNotIn(" <= ", d.log())

    def test_data_and_rcpt_after_bdat_are_errors(self):
        d = self.start()
        c = self.client(d)
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        c.send(b"BDAT 5\r\nHello")
        self.assertEqual(c.reply(), b"250 5 byte chunk received\r\n")
        self.assertEqual(c.command(b"DATA"),
                         b"503 DATA not permitted after BDAT\r\n")
        self.assertEqual(c.command(b"RCPT TO:<c@relay.test>"),
                         b"503 RCPT not permitted after BDAT\r\n")
        c.send(b"BDAT 2 LAST\r\n\r\n")
        self.assertRegex(c.reply(), rb"^250 OK id=" + ID.encode())

    def test_bad_syntax(self):
        d = self.start()
        c = self.client(d)
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        self.assertEqual(c.command(b"BDAT"),
                         b"501 syntax: BDAT <size> [LAST]\r\n")
        self.assertEqual(c.command(b"BDAT 12x"),
                         b"501 syntax: BDAT <size> [LAST]\r\n")
        self.assertEqual(c.command(b"BDAT 1 FIRST"),
                         b"501 syntax: BDAT <size> [LAST]\r\n")

    def test_not_offered(self):
        d = self.start("chunking_advertise_hosts =\n")
        c = Client(d.port)
        self.addCleanup(c.close)
        self.assertNotIn(b"CHUNKING", c.command(b"EHLO client.test"))
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        c.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        self.assertEqual(c.reply(), b"503 BDAT command used when CHUNKING "
                         b"not advertised\r\n")
        self.assertEqual(c.reply(), b"250 OK\r\n")

    def test_too_big_message_is_rejected_at_last(self):
        d = self.start("message_size_limit = 100\n")
        c = self.client(d)
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        body = b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertTrue(c.reply().startswith(b"552 "))
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assertNotIn(" <= ", d.log())
        self.assertRegex(d.log(), r"message too big: read=\d+ max=100")


if __name__ == "__main__":
    sluicetest.main()

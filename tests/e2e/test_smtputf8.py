"""SMTPUTF8 (RFC 6531) on the SMTP server: offered to
smtputf8_advertise_hosts, UTF-8 addresses accepted only in a transaction
whose MAIL carries SMTPUTF8 and only when well-formed, and the message
recorded as Debian's Exim 4.96 records it (-smtputf8, protocol
utf8esmtp). Then on the SMTP client: such a message goes out with
SMTPUTF8 to a server that offers it, and fails where it is not offered."""

import os
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

import sluicetest
from smtpraw import Client, envelope, header_files

RELAY = "domainlist relay_to_domains = relay.test\n"
SENDER = "j\u00f6rg@example.test".encode()
RECIPIENT = "b\u00fc@relay.test".encode()
ID = rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"


class NextHop(socketserver.ThreadingTCPServer):
    """A minimal SMTP server on loopback that records the commands it
    gets and accepts every message; offers SMTPUTF8 when smtputf8."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, smtputf8):
        self.smtputf8 = smtputf8
        self.commands = []
        self.messages = 0
        super().__init__(("127.0.0.1", 0), NextHopHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class NextHopHandler(socketserver.StreamRequestHandler):

    def handle(self):
        server = self.server
        self.wfile.write(b"220 hop.test ESMTP\r\n")
        in_data = False
        for line in self.rfile:
            line = line.rstrip(b"\r\n")
            if in_data:
                if line == b".":
                    in_data = False
                    server.messages += 1
                    self.wfile.write(b"250 OK\r\n")
                continue
            server.commands.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-hop.test\r\n250-8BITMIME\r\n" +
                                 (b"250-SMTPUTF8\r\n" if server.smtputf8
                                  else b"") + b"250 HELP\r\n")
            elif verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


def wait_for_log(d, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in d.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in mainlog:\n{d.log()}")


class Smtputf8Test(sluicetest.DaemonTestCase):

    def client(self, d):
        c = Client(d.port)
        self.addCleanup(c.close)
        return c

    def start(self, extra=""):
        return self.daemon(settings=RELAY + "smtp_max_synprot_errors = 100\n"
                           + extra).start()

    def test_utf8_message_is_spooled(self):
        d = self.start()
        c = self.client(d)
        self.assertIn(b"\r\n250-SMTPUTF8\r\n", c.command(b"EHLO client.test"))
        self.assertEqual(c.command(b"MAIL FROM:<" + SENDER + b"> SMTPUTF8"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<" + RECIPIENT + b">"),
                         b"250 Accepted\r\n")
        c.command(b"DATA")
        reply = c.command(b"Subject: utf8\r\n\r\nbody\r\n.")
        self.assertRegex(reply, rb"^250 OK id=" + ID)
        msgid = reply[10:].strip().decode()

        header = header_files(d.spool)[msgid]
        self.assertIn(b"\n<" + SENDER + b">\n", header)
        lines = envelope(header)
        self.assertIn(b"-received_protocol utf8esmtp", lines)
        self.assertIn(b"-smtputf8", lines)
        self.assertEqual(lines[-2:], [b"1", RECIPIENT])
        self.assertIn(b"with utf8esmtp (sluice", header)
        arrival = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(arrival), 1, d.log())
        self.assertIn(" P=utf8esmtp ", arrival[0])

    def test_ascii_message_is_not_marked(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test> SMTPUTF8"),
                         b"250 OK\r\n")
        c.command(b"RCPT TO:<b@relay.test>")
        c.command(b"DATA")
        reply = c.command(b"Subject: utf8\r\n\r\nbody\r\n.")
        msgid = reply[10:].strip().decode()
        lines = envelope(header_files(d.spool)[msgid])
        # SMTPUTF8 on MAIL marks the message even with ASCII addresses,
        # as in Exim.
        self.assertIn(b"-smtputf8", lines)
        c.command(b"MAIL FROM:<a@example.test>")
        c.command(b"RCPT TO:<b@relay.test>")
        c.command(b"DATA")
        reply = c.command(b"Subject: plain\r\n\r\nbody\r\n.")
        lines = envelope(header_files(d.spool)[reply[10:].strip().decode()])
        self.assertNotIn(b"-smtputf8", lines)
        self.assertIn(b"-received_protocol esmtp", lines)

    def test_utf8_needs_the_parameter(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<" + SENDER + b">"),
                         b"553 UTF-8 addresses require the SMTPUTF8 "
                         b"parameter on MAIL\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<" + RECIPIENT + b">"),
                         b"501 <b??@relay.test>: 8-bit characters are not "
                         b"allowed without SMTPUTF8\r\n")

    def test_invalid_utf8_rejected(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        cases = [
            b"<j\xc3rg@example.test>",          # cut short
            b"<j\xc0\xafrg@example.test>",      # overlong
            b"<j\xed\xa0\x80rg@example.test>",  # surrogate
            b"<jorg@ex\xffample.test>",
        ]
        for arg in cases:
            with self.subTest(arg=arg):
                reply = c.command(b"MAIL FROM:" + arg + b" SMTPUTF8")
                self.assertTrue(reply.startswith(b"501 <"), reply)
        c.command(b"MAIL FROM:<a@example.test> SMTPUTF8")
        self.assertEqual(c.command(b"RCPT TO:<b\xc3@relay.test>"),
                         b"501 <b?@relay.test>: invalid UTF-8 in address\r\n")
        self.assertEqual(c.command(b"RCPT TO:<" + RECIPIENT + b">"),
                         b"250 Accepted\r\n")

    def test_not_offered_outside_the_list(self):
        d = self.start("smtputf8_advertise_hosts =\n")
        c = self.client(d)
        self.assertNotIn(b"SMTPUTF8", c.command(b"EHLO client.test"))
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test> SMTPUTF8"),
                         b"555 SMTPUTF8: parameter not recognized\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<" + SENDER + b">"),
                         b"501 <j??rg@example.test>: 8-bit characters are "
                         b"not allowed without SMTPUTF8\r\n")

    def send_utf8(self, d):
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<" + SENDER + b"> SMTPUTF8"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<" + RECIPIENT + b">"),
                         b"250 Accepted\r\n")
        c.command(b"DATA")
        reply = c.command(b"Subject: utf8\r\n\r\nbody\r\n.")
        self.assertRegex(reply, rb"^250 OK id=" + ID)
        return reply[10:].strip().decode()

    def test_client_passes_smtputf8_on(self):
        hop = NextHop(smtputf8=True)
        self.addCleanup(hop.stop)
        d = self.start(f"smarthost = 127.0.0.1::{hop.port}\n")
        msgid = self.send_utf8(d)
        wait_for_log(d, f"{msgid} Completed")
        mail = [line for line in hop.commands if line.startswith(b"MAIL")]
        self.assertEqual(len(mail), 1, hop.commands)
        self.assertTrue(mail[0].startswith(b"MAIL FROM:<" + SENDER + b">"),
                        mail)
        self.assertTrue(mail[0].endswith(b" SMTPUTF8"), mail)
        self.assertIn(b"RCPT TO:<" + RECIPIENT + b">", hop.commands)
        self.assertEqual(hop.messages, 1)

    def test_client_fails_where_not_offered(self):
        hop = NextHop(smtputf8=False)
        self.addCleanup(hop.stop)
        d = self.start(f"smarthost = 127.0.0.1::{hop.port}\n")
        msgid = self.send_utf8(d)
        wait_for_log(d, f"{msgid} ** ")
        failed = [line for line in d.log().splitlines()
                  if f"{msgid} ** " in line]
        self.assertIn("the message needs SMTPUTF8 (RFC 6531), which the "
                      "remote server does not offer", failed[0])
        # A bounce may follow to the sender; the message itself never
        # reached MAIL.
        self.assertFalse([line for line in hop.commands
                          if line.startswith(b"MAIL FROM:<" + SENDER)],
                         hop.commands)

    @unittest.skipUnless(os.geteuid() == 0,
                         "needs root: Debian's Exim runs under unshare")
    def test_same_envelope_as_exim(self):
        from exim_debian import Exim, EximUnavailable

        cache = os.path.join(sluicetest.BUILDDIR or tempfile.gettempdir(),
                             "exim-debs")
        try:
            exim = Exim.prepare(cache)
        except EximUnavailable as e:
            self.fail(f"Debian's Exim is not available: {e}")
        self.addCleanup(exim.cleanup)
        work = tempfile.mkdtemp(prefix="sluice-utf8-exim-")
        os.chmod(work, 0o755)
        spool = os.path.join(work, "spool")
        os.mkdir(os.path.join(work, "log"))
        config = exim.write_config(os.path.join(work, "exim.conf"), spool,
                                   os.path.join(work, "log"))
        with open(config, "a") as f:
            f.write("acl_smtp_rcpt = accept_all\n"
                    "begin acl\naccept_all:\n  accept\n")
        commands = [b"MAIL FROM:<" + SENDER + b"> SMTPUTF8",
                    b"RCPT TO:<" + RECIPIENT + b">"]
        session = (b"EHLO client.test\r\n" +
                   b"".join(line + b"\r\n" for line in commands) +
                   b"DATA\r\nSubject: utf8\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        script = ('mount --bind "$1" /etc/passwd && '
                  'mount --bind "$2" /etc/group && shift 2 && exec "$@"')
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             script, "sh", exim.passwd, exim.group, exim.binary, "-C",
             config, "-odq", "-bs", "-oMa", "192.0.2.1"],
            input=session, capture_output=True, timeout=120)
        self.assertIn(b"250 OK id=", result.stdout, result.stderr)
        theirs = envelope(list(header_files(spool).values())[0])

        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        for line in commands:
            self.assertEqual(c.command(line)[:4], b"250 ")
        c.command(b"DATA")
        reply = c.command(b"Subject: utf8\r\n\r\nbody\r\n.")
        ours = envelope(header_files(d.spool)[reply[10:].strip().decode()])
        for line in (b"-received_protocol utf8esmtp", b"-smtputf8"):
            self.assertIn(line, theirs)
            self.assertIn(line, ours)
        self.assertEqual(ours[ours.index(b"-smtputf8"):],
                         theirs[theirs.index(b"-smtputf8"):])


if __name__ == "__main__":
    sluicetest.main()

"""Receiving mail over SMTP: replies, spool files, log lines, relay
control, framing errors and SMTP smuggling, limits and shutdown."""

import os
import re
import signal
import smtplib

import sluicetest
from smtpraw import Client

RELAY_SETTINGS = (
    "domainlist local_domains = local.test\n"
    "domainlist relay_to_domains = relay.test\n"
    "hostlist relay_from_hosts = 127.0.0.1\n"
)

ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"


class ReceiveTest(sluicetest.DaemonTestCase):

    def start(self, settings=RELAY_SETTINGS):
        d = self.daemon(settings=settings).start()
        return d

    def client(self, d, source="127.0.0.1"):
        c = Client(d.port, source=source)
        self.addCleanup(c.close)
        return c

    def spool_files(self, d):
        """Return the message files in input/. A delivery attempt may be
        rewriting a -H file meanwhile, so its temporary hdr.<id> is left
        out."""
        path = os.path.join(d.spool, "input")
        if not os.path.isdir(path):
            return []
        return sorted(name for name in os.listdir(path)
                      if not name.startswith((".", "hdr.")))

    def read_spool(self, d, name):
        with open(os.path.join(d.spool, "input", name), "rb") as f:
            return f.read()

    def stats(self, d):
        text = d.control("stats")
        return dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line)

    # Accepted messages

    def test_message_spooled_with_received_header(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port,
                          local_hostname="client.test") as s:
            s.ehlo()
            s.mail("alice@a.test")
            s.rcpt("bob@local.test")
            code, text = s.data(b"Subject: test\r\nFrom: alice@a.test\r\n"
                                b"\r\nhello\r\n.dot first\r\nend\r\n")
        self.assertEqual(code, 250)
        m = re.fullmatch(rb"OK id=(" + ID.encode() + rb")", text)
        self.assertIsNotNone(m, text)
        msgid = m.group(1).decode()
        self.assertEqual(self.spool_files(d), [msgid + "-D", msgid + "-H"])

        body = self.read_spool(d, msgid + "-D")
        self.assertEqual(body, f"{msgid}-D\nhello\n.dot first\nend\n".encode())

        header = self.read_spool(d, msgid + "-H").decode()
        lines = header.split("\n")
        self.assertEqual(lines[0], msgid + "-H")
        self.assertEqual(lines[2], "<alice@a.test>")
        self.assertIn("--helo_name client.test\n", header)
        self.assertIn("-received_protocol esmtp\n", header)
        self.assertIn("-body_linecount 3\n", header)
        self.assertIn("\n1\nbob@local.test\n\n", header)
        received = re.search(
            r"\n(\d{3})P Received: from \[127\.0\.0\.1\] \(helo=client\.test\)\n"
            r"\tby sluice\.test with esmtp \(sluice [^)]+\)\n"
            r"\t\(envelope-from <alice@a\.test>\)\n"
            r"\tid " + msgid + r"\n"
            r"\tfor bob@local\.test;\n"
            r"\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n", header)
        self.assertIsNotNone(received, header)
        field = received.group(0)[1 + 5:]
        self.assertEqual(int(received.group(1)), len(field))
        self.assertIn("014  Subject: test\n", header)
        self.assertIn("019F From: alice@a.test\n", header)

        log = d.log()
        arrival = re.search(msgid + r" <= alice@a\.test H=\(client\.test\) "
                            r"\[127\.0\.0\.1\] P=esmtp S=(\d+)\n", log)
        self.assertIsNotNone(arrival, log)
        # S= is the header fields, the body and one more byte.
        size = len(field) + len("Subject: test\nFrom: alice@a.test\n") + \
            len("hello\n.dot first\nend\n") + 1
        self.assertEqual(int(arrival.group(1)), size)
        self.assertEqual(self.stats(d)["smtp_messages_accepted"], "1")
        self.assertEqual(d.log("panic"), "")

    def test_reply_texts(self):
        d = self.start()
        c = self.client(d)
        self.assertRegex(c.banner, rb"^220 sluice\.test ESMTP sluice \S+ "
                         rb"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d "
                         rb"[+-]\d{4}\r\n$")

        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"),
                         b"503 HELO or EHLO required\r\n")
        self.assertEqual(c.command(b"EHLO client.test"),
                         b"250-sluice.test Hello client.test [127.0.0.1]\r\n"
                         b"250-SIZE 52428800\r\n250-8BITMIME\r\n"
                         b"250-PIPELINING\r\n250-CHUNKING\r\n"
                         b"250-SMTPUTF8\r\n250 HELP\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@local.test>"),
                         b"503 sender not yet given\r\n")

        self.assertEqual(c.command(b"RSET"), b"250 Reset OK\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test> SIZE=100"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"DATA"),
                         b"503 valid RCPT command must precede DATA\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@local.test>"),
                         b"250 Accepted\r\n")
        self.assertEqual(c.command(b"RSET"), b"250 Reset OK\r\n")

        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assertEqual(c.command(b"VRFY b@local.test"),
                         b"252 Administrative prohibition\r\n")
        self.assertEqual(c.command(b"HELP"),
                         b"214-Commands supported:\r\n"
                         b"214 HELO EHLO MAIL RCPT DATA NOOP QUIT RSET HELP\r\n")
        self.assertEqual(c.command(b"HELO other.test"),
                         b"250 sluice.test Hello other.test [127.0.0.1]\r\n")
        self.assertEqual(c.command(b"QUIT"),
                         b"221 sluice.test closing connection\r\n")
        self.assertEqual(c.reply(), b"")

    def test_syntax_errors(self):
        d = self.start()
        c = self.client(d)
        self.assertEqual(c.command(b"HELO"),
                         b"501 Syntactically invalid HELO argument(s)\r\n")
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@>"),
                         b"501 <a@>: domain missing or malformed\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test> SIZE=big"),
                         b"501 SIZE requires a decimal number of octets\r\n")
        self.assertIn("rejected HELO from [127.0.0.1]: syntactically invalid "
                      "argument(s): (no argument given)", d.log("reject"))

    # Pipelining

    def test_pipelined_commands_answered_in_order(self):
        d = self.start()
        c = self.client(d)
        c.send(b"EHLO client.test\r\n"
               b"MAIL FROM:<a@a.test>\r\nRCPT TO:<b@local.test>\r\n"
               b"RCPT TO:<c@relay.test>\r\nDATA\r\n"
               b"Subject: one\r\n\r\nfirst\r\n.\r\n"
               b"MAIL FROM:<>\r\nRCPT TO:<d@local.test>\r\nDATA\r\n"
               b"Subject: two\r\n\r\n..second\r\n.\r\n"
               b"NOOP\r\nQUIT\r\n")

        replies = []
        while True:
            r = c.reply()
            if not r:
                break
            replies.append(r)

        self.assertEqual(len(replies), 12, replies)
        self.assertTrue(replies[0].startswith(b"250-sluice.test Hello"))
        self.assertEqual(replies[1:5], [b"250 OK\r\n", b"250 Accepted\r\n",
                                        b"250 Accepted\r\n",
                                        b"354 Enter message, ending with "
                                        b"\".\" on a line by itself\r\n"])
        self.assertRegex(replies[5], rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        self.assertEqual(replies[6:9], [b"250 OK\r\n", b"250 Accepted\r\n",
                                        replies[4]])
        self.assertRegex(replies[9], rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        self.assertEqual(replies[10:], [b"250 OK\r\n",
                                        b"221 sluice.test closing "
                                        b"connection\r\n"])

        second = replies[9][10:33].decode()
        body = self.read_spool(d, second + "-D")
        self.assertEqual(body, f"{second}-D\n.second\n".encode())
        header = self.read_spool(d, second + "-H").decode()
        self.assertEqual(header.split("\n")[2], "<>")
        self.assertNotIn("envelope-from", header)
        self.assertEqual(len(self.spool_files(d)), 4)

    # SMTP smuggling

    def test_smuggling_forms_rejected(self):
        d = self.start()
        hidden = (b"MAIL FROM:<evil@a.test>\r\nRCPT TO:<victim@local.test>\r\n"
                  b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")
        forms = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\n",
                 b"\n.\r"]
        for form in forms:
            with self.subTest(form=form):
                c = self.client(d)
                c.command(b"EHLO client.test")
                self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"),
                                 b"250 OK\r\n")
                self.assertEqual(c.command(b"RCPT TO:<b@local.test>"),
                                 b"250 Accepted\r\n")
                self.assertTrue(c.command(b"DATA").startswith(b"354 "))
                c.send(b"Subject: outer\r\n\r\ntext" + form + hidden +
                       b".\r\n")
                self.assertEqual(c.reply(),
                                 b"550 bare LF or CR next to a dot: possible "
                                 b"SMTP smuggling\r\n")
                # The session goes on after the real end.
                self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
                self.assertEqual(c.command(b"QUIT"),
                                 b"221 sluice.test closing connection\r\n")
        self.assertEqual(self.spool_files(d), [])
        self.assertEqual(self.stats(d)["smtp_messages_rejected"],
                         str(len(forms)))
        reject = d.log("reject")
        self.assertEqual(reject.count(
            "H=(client.test) [127.0.0.1] F=<a@a.test> rejected after DATA: "
            "bare LF or CR next to a dot: possible SMTP smuggling\n"),
            len(forms), reject)

    def test_bare_lf_in_body_is_content(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        c.command(b"RCPT TO:<b@local.test>")
        c.command(b"DATA")
        c.send(b"Subject: lf\r\n\r\none\ntwo\r\n.\r\n")
        reply = c.reply()
        self.assertRegex(reply, rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        msgid = reply[10:33].decode()
        self.assertEqual(self.read_spool(d, msgid + "-D"),
                         f"{msgid}-D\none\ntwo\n".encode())

    # Limits

    def test_size_limit(self):
        d = self.start(RELAY_SETTINGS + "message_size_limit = 1K\n")
        c = self.client(d)
        self.assertIn(b"250-SIZE 1024\r\n", c.command(b"EHLO client.test"))
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test> SIZE=2000"),
                         b"552 Message size exceeds maximum permitted\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"), b"250 OK\r\n")
        c.command(b"RCPT TO:<b@local.test>")
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        c.send(b"Subject: big\r\n\r\n" + b"x" * 70 * 30 + b"\r\n.\r\n")
        self.assertEqual(c.reply(),
                         b"552 Message size exceeds maximum permitted\r\n")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assertEqual(self.spool_files(d), [])
        log = d.log()
        self.assertRegex(log, r"H=\(client\.test\) \[127\.0\.0\.1\] "
                         r"rejected MAIL <a@a\.test>: message too big: "
                         r"size=2000 max=1024\n")
        self.assertRegex(log, ID + r" H=\(client\.test\) \[127\.0\.0\.1\] "
                         r"F=<a@a\.test> rejected after DATA: message too "
                         r"big: read=2115 max=1024\n")

    def test_command_line_too_long(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"NOOP " + b"x" * 600),
                         b"500 Line too long\r\n")
        self.assertEqual(c.command(b"NOOP " + b"y" * 100000),
                         b"500 Line too long\r\n")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")

    def test_bare_lf_in_command(self):
        d = self.start()
        c = self.client(d)
        c.send(b"NOOP\n")
        self.assertEqual(c.reply(), b"500 bare CR or LF in a command line: "
                         b"lines must end with CRLF\r\n")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")

    def test_too_many_unrecognized_commands(self):
        d = self.start()
        c = self.client(d)
        for _ in range(3):
            self.assertEqual(c.command(b"FOO"), b"500 unrecognized command\r\n")
        self.assertEqual(c.command(b"BAR"),
                         b"500 Too many unrecognized commands\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn('SMTP call from [127.0.0.1] dropped: too many '
                      'unrecognized commands (last was "BAR")', d.log())

    def test_too_many_syntax_errors(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        for _ in range(3):
            self.assertEqual(c.command(b"DATA"), b"503 valid RCPT command "
                             b"must precede DATA\r\n")
        # Exim 4.96's form: the error's own reply, then the code again.
        self.assertEqual(c.command(b"RCPT TO:<b@local.test>"),
                         b"503-sender not yet given\r\n"
                         b"503 Too many syntax or protocol errors\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn('SMTP call from (client.test) [127.0.0.1] dropped: too '
                      'many syntax or protocol errors (last command was '
                      '"RCPT TO:<b@local.test>",  C=EHLO,DATA,DATA,DATA,RCPT)',
                      d.log("reject"))

    # Relay control

    def relay_attempt(self, d, source, recipient):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test",
                          source_address=(source, 0)) as s:
            s.ehlo()
            s.mail("alice@a.test")
            return s.rcpt(recipient)

    def test_relay_denied_from_other_host(self):
        d = self.start()
        self.assertEqual(self.relay_attempt(d, "127.0.0.2", "bob@other.test"),
                         (550, b"relay not permitted"))
        self.assertEqual(self.relay_attempt(d, "127.0.0.2", "bob@local.test"),
                         (250, b"Accepted"))
        self.assertEqual(self.relay_attempt(d, "127.0.0.2", "bob@RELAY.test"),
                         (250, b"Accepted"))
        self.assertEqual(self.relay_attempt(d, "127.0.0.2", "postmaster"),
                         (250, b"Accepted"))
        self.assertEqual(self.relay_attempt(d, "127.0.0.1", "bob@other.test"),
                         (250, b"Accepted"))
        line = ("H=(client.test) [127.0.0.2] F=<alice@a.test> rejected RCPT "
                "<bob@other.test>: relay not permitted\n")
        self.assertEqual(d.log().count(line), 1)
        self.assertEqual(d.log("reject").count(line), 1)
        self.assertEqual(self.stats(d)["smtp_recipients_rejected"], "1")

    def test_relay_network_and_no_lists(self):
        d = self.start("hostlist relay_from_hosts = <; 10.0.0.0/8 ; "
                       "127.0.0.0/30 ; ::1\n")
        self.assertEqual(self.relay_attempt(d, "127.0.0.2", "bob@other.test"),
                         (250, b"Accepted"))
        self.assertEqual(self.relay_attempt(d, "127.0.0.5", "bob@other.test"),
                         (550, b"relay not permitted"))

    def test_unsupported_list_item_stops_start(self):
        d = self.daemon(settings="hostlist relay_from_hosts = "
                        "mail.example.com\n")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b'hostlist relay_from_hosts: item "mail.example.com" '
                      b'is not supported', result.stderr)

    # Disconnects and shutdown

    def test_disconnect_during_data_leaves_nothing(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        c.command(b"RCPT TO:<b@local.test>")
        c.command(b"DATA")
        c.send(b"Subject: cut\r\n\r\npartial")
        c.close()
        sluicetest.wait_for(lambda: "lost while reading message data"
                            in d.log(), 10, "the lost connection line")
        sluicetest.wait_for(lambda: self.stats(d)["smtp_sessions"] == "0", 10,
                            "the session to close")
        self.assertEqual(self.spool_files(d), [])

    def test_sigterm_gives_421_to_idle_session(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.reply(), b"421 sluice.test Service not available, "
                         b"closing transmission channel\r\n")
        self.assertEqual(c.reply(), b"")
        d.proc.wait(sluicetest.STOP_TIMEOUT)
        self.assertEqual(d.proc.returncode, 0)

    def shutdown_started(self, d):
        """True once a new connection is turned away with 421."""
        c = Client(d.port)
        banner = c.banner
        c.close()
        return banner.startswith(b"421 sluice.test Service not available")

    def test_sigterm_during_data_keeps_message(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        c.command(b"RCPT TO:<b@local.test>")
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        c.send(b"Subject: during shutdown\r\n\r\nstill wanted\r\n")
        d.proc.send_signal(signal.SIGTERM)
        # Once new connections are turned away, the shutdown has begun;
        # the session in DATA is still open.
        sluicetest.wait_for(lambda: self.shutdown_started(d), 10,
                            "new connections to get 421")
        c.send(b".\r\n")
        reply = c.reply()
        self.assertRegex(reply, rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        self.assertEqual(c.reply(), b"421 sluice.test Service not available, "
                         b"closing transmission channel\r\n")
        d.proc.wait(sluicetest.STOP_TIMEOUT)
        self.assertEqual(d.proc.returncode, 0)
        msgid = reply[10:33].decode()
        self.assertEqual(self.spool_files(d), [msgid + "-D", msgid + "-H"])
        self.assertIn(msgid + " <= a@a.test ", d.log())

    def test_shutdown_grace_cuts_off_stalled_data(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        c.command(b"RCPT TO:<b@local.test>")
        c.command(b"DATA")
        c.send(b"Subject: stalled\r\n\r\nnever finished\r\n")
        d.proc.send_signal(signal.SIGTERM)
        sluicetest.wait_for(lambda: self.shutdown_started(d), 10,
                            "new connections to get 421")
        self.assertIsNone(d.proc.poll())
        d.control("clock advance 61")
        self.assertEqual(c.reply(), b"")
        d.proc.wait(sluicetest.STOP_TIMEOUT)
        self.assertEqual(d.proc.returncode, 0)
        self.assertEqual(self.spool_files(d), [])

    def test_idle_timeout(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        d.control("clock advance 299")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        d.control("clock advance 301")
        self.assertEqual(c.reply(), b"421 sluice.test: SMTP command timeout "
                         b"- closing connection\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn("SMTP command timeout on connection from (client.test) "
                      "[127.0.0.1]", d.log())


if __name__ == "__main__":
    sluicetest.main()

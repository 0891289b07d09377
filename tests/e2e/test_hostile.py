"""The SMTP server against hostile clients: connection limits, per-session
limits, timeouts against idle and slow-drip clients, early talkers,
over-long and NUL-laden lines, huge headers, malformed addresses and a
full disk. Raw sockets send what smtplib cannot. Every case checks the
reply, the log line, and that the daemon still serves the next client.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import sluicetest
from smtpraw import Client
from test_receive import ID

RELAY_SETTINGS = (
    "domainlist local_domains = local.test\n"
    "hostlist relay_from_hosts = 127.0.0.1\n"
)


class HostileTestCase(sluicetest.DaemonTestCase):
    """Helpers shared by the tests of this file."""

    def start(self, extra=""):
        d = self.daemon(settings=RELAY_SETTINGS + extra).start()
        # The harness's probe connection must be gone before the
        # connection limits are counted.
        self.wait_sessions(d, 0)
        return d

    def client(self, d, source="127.0.0.1"):
        c = Client(d.port, source)
        self.addCleanup(c.close)
        self.assertTrue(c.banner.startswith(b"220 "), c.banner)
        return c

    def stats(self, d):
        text = d.control("stats")
        return dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line)

    def wait_sessions(self, d, count):
        sluicetest.wait_for(
            lambda: self.stats(d)["smtp_sessions"] == str(count), 10,
            f"{count} open SMTP sessions")

    def spool_files(self, d):
        path = os.path.join(d.spool, "input")
        if not os.path.isdir(path):
            return []
        return sorted(name for name in os.listdir(path)
                      if not name.startswith((".", "hdr.")))

    def read_all(self, c):
        """Read replies until the server closes; return them."""
        replies = []
        while True:
            r = c.reply()
            if not r:
                return replies
            replies.append(r)

    def assert_serves(self, d, source="127.0.0.1"):
        """The daemon still accepts a client and a message from it."""
        c = self.client(d, source)
        self.assertTrue(c.banner.startswith(b"220 "), c.banner)
        self.assertTrue(c.command(b"EHLO next.test").startswith(b"250-"))
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"), b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@local.test>"),
                         b"250 Accepted\r\n")
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        self.assertRegex(c.command(b"Subject: next\r\n\r\nok\r\n."),
                         rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        self.assertEqual(c.command(b"QUIT"),
                         b"221 sluice.test closing connection\r\n")

    def begin_data(self, c, recipients=(b"b@local.test",)):
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"), b"250 OK\r\n")
        for rcpt in recipients:
            self.assertEqual(c.command(b"RCPT TO:<" + rcpt + b">"),
                             b"250 Accepted\r\n")
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))


class ConnectionLimitTest(HostileTestCase):

    def test_accept_max(self):
        d = self.start("smtp_accept_max = 2\n")
        first = self.client(d)
        self.client(d)
        refused = Client(d.port)
        self.addCleanup(refused.close)
        self.assertEqual(refused.banner, b"421 Too many concurrent SMTP "
                         b"connections; please try again later.\r\n")
        self.assertEqual(refused.reply(), b"")
        self.assertIn("Connection from [127.0.0.1] refused: too many "
                      "connections\n", d.log())
        self.assertEqual(self.stats(d)["smtp_sessions"], "2")

        first.command(b"QUIT")
        self.wait_sessions(d, 1)
        self.assert_serves(d)

    def test_accept_max_per_host(self):
        d = self.start("smtp_accept_max_per_host = 1\n")
        self.client(d)
        refused = Client(d.port)
        self.addCleanup(refused.close)
        self.assertEqual(refused.banner, b"421 Too many concurrent SMTP "
                         b"connections from this IP address; please try "
                         b"again later.\r\n")
        self.assertIn("Connection from [127.0.0.1] refused: too many "
                      "connections from that IP address\n", d.log())
        # Another address is not affected.
        self.assert_serves(d, "127.0.0.2")

    def test_accept_reserve(self):
        d = self.start("smtp_accept_max = 3\nsmtp_accept_reserve = 1\n"
                       "hostlist reserved = 127.0.0.2\n"
                       "smtp_reserve_hosts = +reserved\n")
        self.client(d)
        self.client(d)
        # The third connection may only come from a reserved host.
        refused = Client(d.port)
        self.addCleanup(refused.close)
        self.assertEqual(refused.banner, b"421 sluice.test: Too many "
                         b"concurrent SMTP connections; please try again "
                         b"later\r\n")
        self.assertEqual(refused.reply(), b"")
        self.assertIn("temporarily refused connection from [127.0.0.1]: "
                      "not in reserve list: connected=3 max=3 reserve=1\n",
                      d.log())
        self.wait_sessions(d, 2)
        reserved = self.client(d, "127.0.0.2")
        self.assertTrue(reserved.banner.startswith(b"220 "))
        # Now every slot is used, reserved host or not.
        full = Client(d.port, "127.0.0.2")
        self.addCleanup(full.close)
        self.assertTrue(full.banner.startswith(b"421 Too many concurrent"))

    def test_reserve_hosts_list_checked_at_start(self):
        d = self.daemon(settings="smtp_reserve_hosts = mail.example.test\n")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b'hostlist smtp_reserve_hosts: item "mail.example.test"'
                      b' is not supported', result.stderr)


class SessionLimitTest(HostileTestCase):

    def test_messages_per_connection(self):
        d = self.start("smtp_accept_max_per_connection = 2\n")
        c = self.client(d)
        for _ in range(2):
            self.begin_data(c)
            self.assertRegex(c.command(b"Subject: x\r\n\r\nx\r\n."),
                             rb"^250 OK id=")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"),
                         b"421 too many messages in this connection\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn("SMTP connection from (client.test) [127.0.0.1] "
                      "closed: too many messages in this connection "
                      "(smtp_accept_max_per_connection=2)\n", d.log())
        self.assert_serves(d)

    def recipients_in_header(self, d, msgid):
        with open(os.path.join(d.spool, "input", msgid + "-H")) as f:
            lines = f.read().split("\n")
        # The recipient count line follows the options, before the
        # recipients and the blank line.
        blank = lines.index("")
        count_line = next(i for i in range(blank - 1, 0, -1)
                          if lines[i].isdigit() and
                          int(lines[i]) == blank - i - 1)
        return lines[count_line + 1:blank]

    def test_recipients_max(self):
        d = self.start("recipients_max = 3\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        replies = [c.command(b"RCPT TO:<r%d@local.test>" % i)
                   for i in range(5)]
        self.assertEqual(replies, [b"250 Accepted\r\n"] * 3 +
                         [b"452 too many recipients\r\n"] * 2)
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        reply = c.command(b"Subject: r\r\n\r\nr\r\n.")
        self.assertRegex(reply, rb"^250 OK id=")
        msgid = reply[10:33].decode()
        self.assertEqual(self.recipients_in_header(d, msgid),
                         ["r0@local.test", "r1@local.test", "r2@local.test"])
        self.assertEqual(d.log().count(
            "too many recipients: excess temporarily rejected: "
            "sender=<a@a.test> H=(client.test) [127.0.0.1]\n"), 1)
        # The next transaction starts from zero.
        c.command(b"MAIL FROM:<a@a.test>")
        self.assertEqual(c.command(b"RCPT TO:<r5@local.test>"),
                         b"250 Accepted\r\n")

    def test_thousand_recipients(self):
        d = self.start("recipients_max = 500\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        c.send(b"".join(b"RCPT TO:<r%d@local.test>\r\n" % i
                        for i in range(1000)))
        replies = [c.reply() for _ in range(1000)]
        self.assertEqual(replies.count(b"250 Accepted\r\n"), 500)
        self.assertEqual(replies[500:], [b"452 too many recipients\r\n"] * 500)
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        reply = c.command(b"Subject: many\r\n\r\nmany\r\n.")
        self.assertRegex(reply, rb"^250 OK id=")
        msgid = reply[10:33].decode()
        self.assertEqual(len(self.recipients_in_header(d, msgid)), 500)
        self.assertEqual(d.log().count("too many recipients: excess "
                                       "temporarily rejected"), 1)
        self.assert_serves(d)

    def test_unknown_command_limit_is_an_option(self):
        d = self.start("smtp_max_unknown_commands = 1\n")
        c = self.client(d)
        self.assertEqual(c.command(b"FOO"), b"500 unrecognized command\r\n")
        self.assertEqual(c.command(b"BAR"),
                         b"500 Too many unrecognized commands\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn('SMTP call from [127.0.0.1] dropped: too many '
                      'unrecognized commands (last was "BAR")\n', d.log())
        self.assert_serves(d)

    def test_synprot_limit_is_an_option(self):
        d = self.start("smtp_max_synprot_errors = 0\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@>"),
                         b"501-<a@>: domain missing or malformed\r\n"
                         b"501 Too many syntax or protocol errors\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn('SMTP call from (client.test) [127.0.0.1] dropped: too '
                      'many syntax or protocol errors (last command was '
                      '"MAIL FROM:<a@>",  C=EHLO,MAIL)\n', d.log("reject"))
        self.assert_serves(d)


class TimeoutTest(HostileTestCase):
    """Timeouts run on the daemon's fake clock; the short sleeps only
    let the daemon read what was sent before the clock moves."""

    def settle(self):
        time.sleep(0.2)

    def test_slow_drip_command_is_cut(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        # Each byte arrives well within the timeout, but the command is
        # never complete within it.
        for byte in (b"N", b"O", b"O"):
            c.send(byte)
            self.settle()
            d.control("clock advance 120")
        self.assertEqual(c.reply(), b"421 sluice.test: SMTP command timeout "
                         b"- closing connection\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn("SMTP command timeout on connection from (client.test) "
                      "[127.0.0.1]\n", d.log())
        self.assert_serves(d)

    def test_command_timeout_option(self):
        d = self.start("smtp_command_timeout = 1m\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        d.control("clock advance 59")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        d.control("clock advance 61")
        self.assertEqual(c.reply(), b"421 sluice.test: SMTP command timeout "
                         b"- closing connection\r\n")

    def test_data_timeout(self):
        d = self.start()
        c = self.client(d)
        self.begin_data(c)
        c.send(b"Subject: slow\r\n\r\npart")
        self.settle()
        d.control("clock advance 301")
        self.assertEqual(c.reply(), b"421 sluice.test SMTP incoming data "
                         b"timeout - closing connection.\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn("SMTP data timeout (message abandoned) on connection "
                      "from (client.test) [127.0.0.1] F=<a@a.test>\n",
                      d.log())
        self.assertEqual(self.spool_files(d), [])
        self.assert_serves(d)

    def test_data_blocks_restart_the_timeout(self):
        d = self.start("smtp_command_timeout = 1m\n")
        c = self.client(d)
        self.begin_data(c)
        # smtp_receive_timeout, not the command timeout, applies to
        # message data, and every block restarts it.
        for block in (b"Subject: s\r\n\r\n", b"one\r\n", b"two\r\n"):
            c.send(block)
            self.settle()
            d.control("clock advance 200")
        self.assertRegex(c.command(b"."), rb"^250 OK id=")

    def test_session_time_limit(self):
        d = self.start("smtp_max_session_time = 10m\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        for _ in range(3):
            d.control("clock advance 199")
            self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        d.control("clock advance 10")
        self.assertEqual(c.reply(), b"421 sluice.test: session time limit "
                         b"reached - closing connection\r\n")
        self.assertEqual(c.reply(), b"")
        self.assertIn("SMTP session time limit reached on connection from "
                      "(client.test) [127.0.0.1]: smtp_max_session_time=10m\n",
                      d.log())
        self.assert_serves(d)


class EarlyTalkerTest(HostileTestCase):

    def talk_early(self, d, data):
        """Connect and send data while the daemon is stopped, so the
        data is there before the daemon can greet; return the socket."""
        d.proc.send_signal(signal.SIGSTOP)
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            self.addCleanup(s.close)
            s.sendall(data)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        return s

    def read_until_close(self, s):
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def test_early_talker_rejected(self):
        d = self.start()
        s = self.talk_early(d, b"EHLO early.test\r\n")
        self.assertEqual(self.read_until_close(s),
                         b"554 SMTP synchronization error\r\n")
        line = ('SMTP protocol synchronization error (input sent without '
                'waiting for greeting): rejected connection from '
                'H=[127.0.0.1] input="EHLO early.test\\r\\n"\n')
        self.assertIn(line, d.log())
        self.assertIn(line, d.log("reject"))
        self.assert_serves(d)

    def test_sync_check_can_be_off(self):
        d = self.start("no_smtp_enforce_sync\n")
        s = self.talk_early(d, b"EHLO early.test\r\nQUIT\r\n")
        data = self.read_until_close(s)
        self.assertTrue(data.startswith(b"220 sluice.test "), data)
        self.assertIn(b"\r\n250-sluice.test Hello early.test", data)
        self.assertTrue(data.endswith(b"221 sluice.test closing "
                                      b"connection\r\n"))


class FramingTest(HostileTestCase):

    def test_two_thousand_octet_command(self):
        d = self.start("log_selector = +smtp_syntax_error\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<" + b"a" * 2000 + b"@a.test>"),
                         b"500 Line too long\r\n")
        self.assertIn('SMTP syntax error in "(line too long)" H=(client.test) '
                      '[127.0.0.1] Line too long\n', d.log())
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assert_serves(d)

    def test_nul_bytes(self):
        d = self.start("log_selector = +smtp_syntax_error\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a\x00b@a.test>"),
                         b"501 NUL characters are not allowed in SMTP "
                         b"commands\r\n")
        self.assertIn('SMTP syntax error in "MAIL FROM:<a?b@a.test>" '
                      'H=(client.test) [127.0.0.1] NUL character(s) present '
                      "(shown as '?')\n", d.log())
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assert_serves(d)

    def test_megabyte_header_field(self):
        d = self.start()
        c = self.client(d)
        self.begin_data(c)
        c.send(b"Subject: big\r\nX-Big: " + b"x" * (1024 * 1024) +
               b"\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(),
                         b"552 A message header line is too long\r\n")
        self.assertRegex(d.log(), ID + r" overlong message header line "
                         r"received from \(client\.test\) \[127\.0\.0\.1\] "
                         r"\(more than 65536 characters\): message "
                         r"abandoned\n")
        self.assertRegex(d.log("reject"), r"F=<a@a\.test> rejected after "
                         r"DATA: header field over 65536 bytes\n")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assertEqual(self.spool_files(d), [])
        self.assert_serves(d)

    def test_megabyte_header_section(self):
        d = self.start()
        c = self.client(d)
        self.begin_data(c)
        field = b"X-Filler: " + b"y" * 1000 + b"\r\n"
        c.send(field * 1100 + b"\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(),
                         b"552 Message header is ridiculously long\r\n")
        self.assertRegex(d.log(), ID + r" ridiculously long message header "
                         r"received from \(client\.test\) \[127\.0\.0\.1\] "
                         r"\(more than 1048576 characters\): message "
                         r"abandoned\n")
        self.assertEqual(self.spool_files(d), [])
        self.assert_serves(d)

    def test_header_limits_are_options(self):
        d = self.start("header_maxsize = 10K\nheader_line_maxsize = 100\n")
        c = self.client(d)
        self.begin_data(c)
        c.send(b"X-Long: " + b"z" * 100 + b"\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(),
                         b"552 A message header line is too long\r\n")
        c.command(b"MAIL FROM:<a@a.test>")
        c.command(b"RCPT TO:<b@local.test>")
        c.command(b"DATA")
        c.send((b"X-Short: " + b"z" * 80 + b"\r\n") * 120 +
               b"\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(),
                         b"552 Message header is ridiculously long\r\n")
        self.assertIn("(more than 10240 characters): message abandoned",
                      d.log())

    def test_received_headers_max(self):
        d = self.start("received_headers_max = 2\n")
        c = self.client(d)
        self.begin_data(c)
        c.send(b"Received: a\r\n" * 3 + b"\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(), b'550 Too many "Received" headers - '
                         b'suspected mail loop\r\n')
        self.assert_serves(d)


class AddressTest(HostileTestCase):

    def test_malformed_addresses_get_reasons(self):
        d = self.start("smtp_max_synprot_errors = 100\n"
                       "log_selector = +smtp_syntax_error\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@a.test>")
        cases = [
            (b"<b\x01c@local.test>", b"501 <b?c@local.test>: control "
             b"characters are not allowed in an address\r\n"),
            (b"<b\xc3\xa9@local.test>", b"501 <b??@local.test>: 8-bit "
             b"characters are not allowed without SMTPUTF8\r\n"),
            (b'<"b@local.test>', b'501 <"b@local.test>: unmatched '
             b'doublequote in local part\r\n'),
            (b"<b@local.test", b"501 <b@local.test>: '>' missing at end of "
             b"address\r\n"),
            (b"b@local.test>", b"501 <b@local.test>>: '>' without a matching "
             b"'<'\r\n"),
            (b"<b@[127.0.0.1]>", b"501 <b@[127.0.0.1]>: domain literals not "
             b"allowed\r\n"),
            (b"<" + b"l" * 65 + b"@local.test>", b"501 <" + b"l" * 65 +
             b"@local.test>: local part longer than 64 characters\r\n"),
            (b"<b@" + b"d" * 64 + b".test>", b"501 <b@" + b"d" * 64 +
             b".test>: a domain label is longer than 63 characters\r\n"),
        ]
        for arg, want in cases:
            with self.subTest(arg=arg):
                self.assertEqual(c.command(b"RCPT TO:" + arg), want)
        # The log escapes what the client sent.
        self.assertIn('SMTP syntax error in "RCPT TO:<b\\x01c@local.test>" '
                      'H=(client.test) [127.0.0.1] control characters are '
                      'not allowed in an address\n', d.log())
        self.assertIn('SMTP syntax error in "RCPT TO:<b\\xc3\\xa9@local.test>"',
                      d.log())
        self.assert_serves(d)

    def test_accepted_forms(self):
        d = self.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<>"), b"250 OK\r\n")
        for arg in (b'<"a b\\"c"@local.test>', b" <d@local.test>",
                    b"<@relay.test,@other.test:e@local.test>",
                    b"<postmaster>", b"<F@LOCAL.TEST>"):
            with self.subTest(arg=arg):
                self.assertEqual(c.command(b"RCPT TO:" + arg),
                                 b"250 Accepted\r\n")
        self.assertTrue(c.command(b"DATA").startswith(b"354 "))
        reply = c.command(b"Subject: forms\r\n\r\nforms\r\n.")
        self.assertRegex(reply, rb"^250 OK id=")
        msgid = reply[10:33].decode()
        with open(os.path.join(d.spool, "input", msgid + "-H")) as f:
            header = f.read()
        self.assertIn('\n5\n"a b\\"c"@local.test\nd@local.test\n'
                      'e@local.test\npostmaster@sluice.test\n'
                      'F@LOCAL.TEST\n\n', header)
        self.assertIn(msgid + ' <= <> H=(client.test) [127.0.0.1] P=esmtp',
                      d.log())

    def test_domain_literals_when_allowed(self):
        d = self.start("allow_domain_literals\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        c.command(b"MAIL FROM:<a@[IPv6:2001:db8::1]>")
        self.assertEqual(c.command(b"RCPT TO:<b@[192.0.2.1]>"),
                         b"250 Accepted\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@[192.0.2.300]>"),
                         b"501 <b@[192.0.2.300]>: malformed domain "
                         b"literal\r\n")


class DiskSpaceTest(HostileTestCase):

    def test_spool_space_check(self):
        d = self.start("check_spool_space = 1000000G\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"),
                         b"452 Space shortage, please try later\r\n")
        self.assertRegex(d.log(), r"spool directory space check failed: "
                         r"space=\d+ inodes=-?\d+\n")
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")

    def test_log_space_check(self):
        d = self.start("check_log_space = 1000000G\n")
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test>"),
                         b"452 Space shortage, please try later\r\n")
        self.assertRegex(d.log(), r"log directory space check failed: "
                         r"space=\d+ inodes=-?\d+\n")

    def test_declared_size_needs_space(self):
        d = self.start("check_spool_space = 0\nmessage_size_limit = 0\n")
        st = os.statvfs(d.spool)
        free = st.f_bavail * st.f_frsize
        c = self.client(d)
        c.command(b"EHLO client.test")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test> SIZE=%d" %
                                   (free * 2 + 1024 * 1024)),
                         b"452 Space shortage, please try later\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@a.test> SIZE=1000"),
                         b"250 OK\r\n")

    def mount_small_tmpfs(self, path, size):
        """Mount a tmpfs of size at path, or skip when that is not
        possible (not root, or no mount permission)."""
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        os.makedirs(path, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                 f"size={size}", "tmpfs", path],
                                capture_output=True)
        if result.returncode != 0:
            self.skipTest("cannot mount a tmpfs: " +
                          result.stderr.decode(errors="replace"))
        self.addCleanup(subprocess.run, ["umount", "-l", path],
                        capture_output=True)

    def test_disk_full_mid_message(self):
        d = self.daemon(settings=RELAY_SETTINGS +
                        "check_spool_space = 0\ncheck_spool_inodes = 0\n")
        self.mount_small_tmpfs(d.spool, "1m")
        # The daemon stops before the tmpfs goes (cleanups run last
        # added first).
        self.addCleanup(d.stop)
        d.start()
        self.wait_sessions(d, 0)
        c = self.client(d)
        self.begin_data(c)
        line = b"x" * 998 + b"\r\n"
        c.send(b"Subject: too big for the disk\r\n\r\n" + line * 3000 +
               b".\r\n")
        self.assertEqual(c.reply(),
                         b"452 Space shortage, please try later\r\n")
        self.assertRegex(d.log("panic"), ID + r" message not accepted: "
                         r"cannot write \S+-D: No space left on device\n")
        # The partial -D file is gone, and the session goes on.
        self.assertEqual(self.spool_files(d), [])
        self.assertEqual(c.command(b"NOOP"), b"250 OK\r\n")
        self.assert_serves(d)


if __name__ == "__main__":
    sluicetest.main()

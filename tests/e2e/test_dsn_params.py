"""DSN parameters (RFC 3461) on the SMTP server: NOTIFY and ORCPT on RCPT,
RET and ENVID on MAIL, offered only to dsn_advertise_hosts, checked with
Exim's replies, and stored in the -H file as Debian's Exim 4.96 stores
them (compared with the file Exim itself writes when the tests run as
root)."""

import os
import subprocess
import tempfile
import unittest

import sluicetest
from smtpraw import Client, envelope, header_files

RELAY = "domainlist relay_to_domains = relay.test\n"
DSN = RELAY + "dsn_advertise_hosts = 127.0.0.1\n"

# One transaction with every DSN form: NOTIFY with ORCPT, ORCPT alone
# (which Exim does not keep), NEVER, DELAY.
SESSION = [
    b"MAIL FROM:<a@example.test> RET=HDRS ENVID=QQ+2B1",
    b"RCPT TO:<b@relay.test> NOTIFY=SUCCESS,FAILURE "
    b"ORCPT=rfc822;b+2B@relay.test",
    b"RCPT TO:<c@relay.test> ORCPT=rfc822;c@relay.test",
    b"RCPT TO:<d@relay.test> NOTIFY=NEVER",
    b"RCPT TO:<e@relay.test> NOTIFY=delay",
]
STORED = [
    b"-dsn_envid QQ+2B1",
    b"-dsn_ret 2",
    b"XX",
    b"4",
    b"b@relay.test rfc822;b+2B@relay.test 22,12  0,-1#3",
    b"c@relay.test",
    b"d@relay.test  0,2  0,-1#3",
    b"e@relay.test  0,16  0,-1#3",
]


class DsnParamsTest(sluicetest.DaemonTestCase):

    def client(self, d):
        c = Client(d.port)
        self.addCleanup(c.close)
        return c

    def send_session(self, c):
        for line in SESSION:
            self.assertIn(c.command(line)[:4], (b"250 ",), line)
        self.assertEqual(c.command(b"DATA")[:4], b"354 ")
        reply = c.command(b"Subject: dsn\r\n\r\nbody\r\n.")
        self.assertTrue(reply.startswith(b"250 OK id="), reply)
        return reply[len(b"250 OK id="):].strip().decode()

    def test_not_offered_by_default(self):
        # Exim's default dsn_advertise_hosts is empty: DSN is not offered
        # and its parameters are unknown.
        d = self.daemon(settings=RELAY).start()
        c = self.client(d)
        self.assertNotIn(b"DSN", c.command(b"EHLO client.test"))
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test> RET=FULL"),
                         b"555 RET: parameter not recognized\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test>"),
                         b"250 OK\r\n")
        self.assertEqual(c.command(b"RCPT TO:<b@relay.test> NOTIFY=NEVER"),
                         b"555 NOTIFY: parameter not recognized\r\n")

    def test_offered_only_to_listed_hosts(self):
        d = self.daemon(settings=RELAY +
                        "dsn_advertise_hosts = 192.0.2.1\n").start()
        c = self.client(d)
        self.assertNotIn(b"DSN", c.command(b"EHLO client.test"))
        d2 = self.daemon(settings=DSN).start()
        c2 = self.client(d2)
        self.assertIn(b"\r\n250-DSN\r\n", c2.command(b"EHLO client.test"))

    def test_stored_as_exim_stores_them(self):
        d = self.daemon(settings=DSN).start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        msgid = self.send_session(c)
        lines = envelope(header_files(d.spool)[msgid])
        start = lines.index(b"-dsn_envid QQ+2B1")
        self.assertEqual(lines[start:], STORED)
        # The -H file still reads back: -Mvh prints it.
        result = d.run("-Mvh", msgid)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_bad_values_rejected(self):
        d = self.daemon(settings=DSN + "smtp_max_synprot_errors = 100\n"
                        "log_selector = +smtp_syntax_error\n")
        d.start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        mail_cases = [
            (b"RET=FULL RET=HDRS", b"501 RET can be specified once only"),
            (b"RET=ALL", b"501 Value for RET is invalid"),
            (b"ENVID=a ENVID=b", b"501 ENVID can be specified once only"),
            (b"ENVID=a+2x", b"501 Value for ENVID is not valid xtext"),
            (b"ENVID=" + b"x" * 101,
             b"501 ENVID is longer than 100 characters"),
        ]
        for params, want in mail_cases:
            with self.subTest(params=params):
                self.assertEqual(c.command(b"MAIL FROM:<a@example.test> " +
                                           params), want + b"\r\n")
        self.assertEqual(c.command(b"MAIL FROM:<a@example.test> ENVID=" +
                                   b"x" * 100), b"250 OK\r\n")
        rcpt_cases = [
            (b"NOTIFY=NEVER,SUCCESS",
             b"501 Invalid value for NOTIFY parameter"),
            (b"NOTIFY=SUCCESS,,DELAY",
             b"501 Invalid value for NOTIFY parameter"),
            (b"NOTIFY=SUCCESS NOTIFY=DELAY",
             b"501 NOTIFY can be specified once only"),
            (b"ORCPT=rfc822;b@x ORCPT=rfc822;c@x",
             b"501 ORCPT can be specified once only"),
            (b"ORCPT=b@relay.test",
             b"501 Value for ORCPT is not addr-type;xtext"),
            (b"ORCPT=rfc822;" + b"b" * 494,
             b"501 malformed parameter after the address"),
        ]
        for params, want in rcpt_cases:
            with self.subTest(params=params):
                self.assertEqual(c.command(b"RCPT TO:<b@relay.test> " +
                                           params), want + b"\r\n")
        # RFC 3461 section 4.2: an ORCPT of 500 characters fits, though
        # the line is then longer than 512 octets.
        line = (b"RCPT TO:<b@relay.test> NOTIFY=FAILURE ORCPT=rfc822;" +
                b"b" * 493)
        self.assertGreater(len(line), 512)
        self.assertEqual(c.command(line), b"250 Accepted\r\n")
        self.assertIn('SMTP syntax error in "RCPT TO:<b@relay.test> '
                      'NOTIFY=NEVER,SUCCESS" H=(client.test) [127.0.0.1] '
                      'Invalid value for NOTIFY parameter\n', d.log())

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
        work = tempfile.mkdtemp(prefix="sluice-dsn-exim-")
        os.chmod(work, 0o755)
        spool = os.path.join(work, "spool")
        logs = os.path.join(work, "log")
        os.mkdir(logs)
        config = exim.write_config(os.path.join(work, "exim.conf"), spool,
                                   logs)
        with open(config, "a") as f:
            f.write("dsn_advertise_hosts = *\n"
                    "acl_smtp_rcpt = accept_all\n"
                    "begin acl\naccept_all:\n  accept\n")
        session = (b"EHLO client.test\r\n" +
                   b"".join(line + b"\r\n" for line in SESSION) +
                   b"DATA\r\nSubject: dsn\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        # -bs with -oMa: a local SMTP session that Exim treats as coming
        # from a remote host; -odq only queues the message.
        script = ('mount --bind "$1" /etc/passwd && '
                  'mount --bind "$2" /etc/group && shift 2 && exec "$@"')
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             script, "sh", exim.passwd, exim.group, exim.binary, "-C",
             config, "-odq", "-bs", "-oMa", "192.0.2.1"],
            input=session, capture_output=True, timeout=120)
        self.assertIn(b"250 OK id=", result.stdout, result.stderr)
        exim_headers = list(header_files(spool).values())
        self.assertEqual(len(exim_headers), 1)
        exim_lines = envelope(exim_headers[0])

        d = self.daemon(settings=DSN).start()
        c = self.client(d)
        c.command(b"EHLO client.test")
        msgid = self.send_session(c)
        ours = envelope(header_files(d.spool)[msgid])
        self.assertEqual(ours[ours.index(b"-dsn_envid QQ+2B1"):],
                         exim_lines[exim_lines.index(b"-dsn_envid QQ+2B1"):])


if __name__ == "__main__":
    sluicetest.main()

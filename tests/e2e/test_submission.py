"""submission_ports on the SMTP server. On those ports MAIL needs AUTH
first (530 5.7.0, RFC 4954 section 6), and a message without Date: or
Message-ID: gets them (RFC 6409 section 8). The other ports are
unchanged."""

import os
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile

import sluicetest
from smtpraw import header_files

RELAY = "domainlist relay_to_domains = relay.test\n"
BARE = b"Subject: bare\r\n\r\nbody\r\n"
DATED = (b"Subject: dated\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
         b"Message-ID: <own@client.test>\r\n\r\nbody\r\n")


class SubmissionTest(sluicetest.DaemonTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-submission-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cert, self.key = sluicetest.make_certificate(self.tmp,
                                                          "sluice.test")
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "s3cret"], check=True,
            capture_output=True, timeout=30).stdout.decode().strip()
        self.passwd = os.path.join(self.tmp, "passwd")
        with open(self.passwd, "w") as f:
            f.write(f"alice:{hashed}\n")

    def start(self):
        """Start a daemon listening on d.port and on d.submission_port."""
        port = sluicetest.free_port()
        d = self.daemon(settings=RELAY +
                        f"tls_certificate = {self.cert}\n"
                        f"tls_privatekey = {self.key}\n"
                        f"auth_passwd_file = {self.passwd}\n"
                        f"submission_ports = {port}\n")
        with open(d.config) as f:
            text = f.read()
        text = text.replace(f"daemon_smtp_ports = {d.port}\n",
                            f"daemon_smtp_ports = {d.port} : {port}\n")
        with open(d.config, "w") as f:
            f.write(text)
        d.submission_port = port
        return d.start()

    def tls_client(self, port):
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        s.starttls(context=ctx)
        s.ehlo("client.test")
        return s

    def fields(self, d, msgid):
        """Return the header field lines of the message's -H file."""
        header = header_files(d.spool)[msgid].decode()
        return header[header.index("\n\n") + 2:]

    def arrivals(self, d):
        """Return the ids of the "<=" lines, in order."""
        return re.findall(r" ([0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}) "
                          r"<= ", d.log())

    def test_auth_required_before_mail(self):
        d = self.start()
        s = self.tls_client(d.submission_port)
        self.assertEqual(s.docmd("MAIL FROM:<a@example.test>"),
                         (530, b"5.7.0 Authentication required"))
        # The null sender needs AUTH too.
        self.assertEqual(s.docmd("MAIL FROM:<>"),
                         (530, b"5.7.0 Authentication required"))
        s.login("alice", "s3cret")
        self.assertEqual(s.docmd("MAIL FROM:<a@example.test>")[0], 250)

    def test_other_ports_do_not_require_auth(self):
        d = self.start()
        s = self.tls_client(d.port)
        self.assertEqual(s.docmd("MAIL FROM:<a@example.test>")[0], 250)

    def test_date_and_message_id_added(self):
        d = self.start()
        s = self.tls_client(d.submission_port)
        s.login("alice", "s3cret")
        s.sendmail("a@example.test", ["b@relay.test"], BARE)
        s.sendmail("a@example.test", ["b@relay.test"], DATED)
        bare, dated = self.arrivals(d)
        fields = self.fields(d, bare)
        self.assertRegex(fields, r"\n\d{3}I Message-Id: <E" + bare +
                         r"@sluice\.test>\n")
        self.assertRegex(fields, r"\n\d{3}  Date: \w{3}, \d\d \w{3} \d{4} ")
        # A message that has both keeps its own and gets no second one.
        fields = self.fields(d, dated)
        self.assertEqual(fields.count("Message-I"), 1, fields)
        self.assertIn("I Message-ID: <own@client.test>\n", fields)
        self.assertEqual(fields.count("Date:"), 1, fields)

    def test_other_ports_leave_the_header_alone(self):
        d = self.start()
        s = self.tls_client(d.port)
        s.sendmail("a@example.test", ["b@relay.test"], BARE)
        fields = self.fields(d, self.arrivals(d)[0])
        self.assertNotIn("Message-Id:", fields)
        self.assertNotIn("Date:", fields)


if __name__ == "__main__":
    sluicetest.main()

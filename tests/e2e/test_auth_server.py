"""AUTH PLAIN and LOGIN on the SMTP server against a password file in the
format of Debian's Exim packages: where it is offered, what the logs show,
relaying for authenticated clients, and the broken exchanges."""

import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading

import sluicetest

RELAY = "domainlist relay_to_domains = relay.test\n"
MESSAGE = b"Subject: auth\r\n\r\nbody\r\n"
CLEARTEXT = "cram-md5-cleartext-never-logged"
FAILED = (r"(plain|login) authenticator failed for \(client.test\) "
          r"\[127.0.0.1\]: 535 Incorrect authentication data")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return b"".join(lines)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


class AuthServerTest(sluicetest.DaemonTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-auth-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cert, self.key = sluicetest.make_certificate(self.tmp,
                                                          "sluice.test")
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "s3cret"], check=True,
            capture_output=True, timeout=30).stdout.decode().strip()
        self.passwd = os.path.join(self.tmp, "passwd")
        with open(self.passwd, "w") as f:
            f.write("# user:crypted:cleartext\n")
            f.write(f"other:{hashed}\n")
            f.write(f"alice:{hashed}:{CLEARTEXT}\n")

    def start(self, extra=""):
        return self.daemon(settings=RELAY +
                           f"tls_certificate = {self.cert}\n"
                           f"tls_privatekey = {self.key}\n"
                           f"auth_passwd_file = {self.passwd}\n" +
                           extra).start()

    def tls_client(self, d):
        s = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
        s.ehlo("client.test")
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        s.starttls(context=ctx)
        s.ehlo("client.test")
        return s

    def raw_tls(self, d):
        sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        f = sock.makefile("rb")
        read_reply(f)
        sock.sendall(b"EHLO client.test\r\n")
        read_reply(f)
        sock.sendall(b"STARTTLS\r\n")
        read_reply(f)
        f.close()
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        tls = ctx.wrap_socket(sock)
        tf = tls.makefile("rb")
        self.addCleanup(tls.close)
        self.addCleanup(tf.close)

        def command(line):
            tls.sendall(line.encode() + b"\r\n")
            return read_reply(tf)
        self.assertIn(b"AUTH PLAIN LOGIN", command("EHLO client.test"))
        return command

    def test_offered_only_inside_tls(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("auth"))
            self.assertEqual(s.docmd("AUTH PLAIN " +
                             b64("\0alice\0s3cret"))[0], 503)
        s = self.tls_client(d)
        self.assertIn("PLAIN LOGIN", s.esmtp_features.get("auth", ""))
        s.quit()

    def test_plain_allows_relay_and_is_logged(self):
        d = self.start()
        s = self.tls_client(d)
        # Not authenticated yet: no relay.
        s.mail("a@example.test")
        self.assertEqual(s.rcpt("b@elsewhere.test")[0], 550)
        s.rset()
        s.login("alice", "s3cret")
        s.sendmail("a@example.test", ["b@elsewhere.test"], MESSAGE)
        # Authenticated once per session.
        self.assertEqual(s.docmd("AUTH PLAIN " +
                         b64("\0alice\0s3cret"))[0], 503)
        s.quit()
        lines = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" P=esmtpsa ", lines[0])
        self.assertIn(" A=plain:alice ", lines[0])
        self.assertNotIn("s3cret", d.log())
        self.assertNotIn(CLEARTEXT, d.log())

    def test_login_exchange(self):
        d = self.start()
        command = self.raw_tls(d)
        self.assertEqual(command("AUTH LOGIN"), b"334 VXNlcm5hbWU6\r\n")
        self.assertEqual(command(b64("alice")), b"334 UGFzc3dvcmQ6\r\n")
        self.assertTrue(command(b64("s3cret")).startswith(b"235 "))
        self.assertTrue(command("MAIL FROM:<a@example.test>")
                        .startswith(b"250"))
        self.assertTrue(command("RCPT TO:<b@elsewhere.test>")
                        .startswith(b"250"))

    def test_wrong_password_is_logged_for_fail2ban(self):
        d = self.start()
        command = self.raw_tls(d)
        result = []
        # The reply to the n-th failure comes n seconds late on the
        # daemon's clock; moving the fake clock releases it.
        t = threading.Thread(target=lambda: result.append(
            command("AUTH PLAIN " + b64("\0alice\0wrong"))))
        t.start()
        sluicetest.wait_for(lambda: re.search(FAILED, d.log()) is not None,
                            10, "the failure's log line")
        d.control("clock advance 1")
        t.join(10)
        self.assertEqual(result, [b"535 Incorrect authentication data\r\n"])
        self.assertRegex(d.log(), FAILED + r" \(set_id=alice\)\n")
        self.assertNotIn(CLEARTEXT, d.log())
        # The right password still works in the same session.
        self.assertTrue(command("AUTH PLAIN " + b64("\0alice\0s3cret"))
                        .startswith(b"235 "))

    def test_repeated_failures_close_the_connection(self):
        d = self.start()
        command = self.raw_tls(d)
        for n in (1, 2, 3):
            result = []
            t = threading.Thread(target=lambda: result.append(
                command("AUTH LOGIN " + b64("alice")) and
                command(b64("wrong"))))
            t.start()
            sluicetest.wait_for(
                lambda: len(re.findall(FAILED, d.log())) == n, 10,
                f"failure {n}'s log line")
            d.control(f"clock advance {n}")
            t.join(10)
            self.assertEqual(result, [b"535 Incorrect authentication "
                                      b"data\r\n"])
        # The third failure ended the session.
        with self.assertRaises((OSError, AssertionError)):
            self.assertNotEqual(command("NOOP"), b"")

    def test_broken_exchanges(self):
        d = self.start()
        command = self.raw_tls(d)
        self.assertEqual(command("AUTH LOGIN"), b"334 VXNlcm5hbWU6\r\n")
        self.assertEqual(command("*"), b"501 Authentication cancelled\r\n")
        self.assertEqual(command("AUTH PLAIN"), b"334 \r\n")
        self.assertEqual(command("not base64!"),
                         b"501 Invalid base64 data\r\n")
        self.assertTrue(command("AUTH CRAM-MD5").startswith(b"504 "))
        # Back to commands after each of them.
        self.assertTrue(command("NOOP").startswith(b"250 "))
        self.assertTrue(command("MAIL FROM:<a@example.test>")
                        .startswith(b"250"))
        self.assertEqual(command("AUTH PLAIN " + b64("\0alice\0s3cret")),
                         b"503 AUTH not permitted during a mail "
                         b"transaction\r\n")

    def test_overlong_response_ends_the_exchange(self):
        d = self.start()
        command = self.raw_tls(d)
        self.assertEqual(command("AUTH PLAIN"), b"334 \r\n")
        self.assertTrue(command("QUFB" * 1000).startswith(b"500 "))
        self.assertTrue(command("NOOP").startswith(b"250 "))

    def test_plaintext_hosts_and_swaks_login(self):
        swaks = shutil.which("swaks")
        d = self.start("auth_plaintext_hosts = 127.0.0.1\n")
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("auth"))
            s.login("alice", "s3cret")
            s.sendmail("a@example.test", ["b@elsewhere.test"], MESSAGE)
        if swaks is not None:
            r = subprocess.run(
                [swaks, "--server", "127.0.0.1", "--port", str(d.port),
                 "--tls", "--auth", "LOGIN", "--auth-user", "alice",
                 "--auth-password", "s3cret", "--from", "a@example.test",
                 "--to", "c@elsewhere.test", "--helo", "client.test"],
                capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        log = d.log()
        self.assertIn(" P=esmtpa ", log)
        if swaks is not None:
            self.assertIn(" A=login:alice ", log)
            self.assertIn(" P=esmtpsa ", log)


if __name__ == "__main__":
    sluicetest.main()

"""TLS on the SMTP server: STARTTLS, tls_on_connect_ports, what the logs
and the Received: field show of a session, and the plaintext a client
pipelines behind STARTTLS."""

import glob
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile

import sluicetest

RELAY = "domainlist relay_to_domains = relay.test\n"
MESSAGE = b"Subject: tls\r\n\r\nbody\r\n"


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx


def read_reply(f):
    """Read one reply (joining a multi-line one) from file object f."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            return b"".join(lines)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


class TlsServerTest(sluicetest.DaemonTestCase):

    def setUp(self):
        self.certdir = tempfile.mkdtemp(prefix="sluice-tls-")
        self.addCleanup(shutil.rmtree, self.certdir, True)
        self.cert, self.key = sluicetest.make_certificate(self.certdir,
                                                          "sluice.test")

    def tls_settings(self):
        return (RELAY + f"tls_certificate = {self.cert}\n"
                f"tls_privatekey = {self.key}\n")

    def start(self, settings=None, **kwargs):
        return self.daemon(settings=self.tls_settings() if settings is None
                           else settings, **kwargs).start()

    def arrivals(self, d):
        return [line for line in d.log().splitlines() if " <= " in line]

    def spool_headers(self, d):
        texts = []
        for path in glob.glob(os.path.join(d.spool, "input", "**", "*-H"),
                              recursive=True):
            with open(path, errors="replace") as f:
                texts.append(f.read())
        return texts

    def test_starttls_offered_only_with_a_certificate(self):
        d = self.start(settings=RELAY)
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"))
            code, _ = s.docmd("STARTTLS")
            self.assertEqual(code, 503)
        d2 = self.start()
        with smtplib.SMTP("127.0.0.1", d2.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"))

    def test_tls_advertise_hosts_limits_the_offer(self):
        d = self.start(settings=self.tls_settings() +
                       "tls_advertise_hosts = 192.0.2.1\n")
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.docmd("STARTTLS")[0], 503)

    def test_message_over_starttls_is_logged_with_x(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=client_context(self.cert))
            s.ehlo("client.test")
            # Offered once only: not again inside TLS.
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.docmd("STARTTLS")[0], 503)
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)
            cipher = s.sock.cipher()
            version = s.sock.version().replace("v", "")
        lines = self.arrivals(d)
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" P=esmtps ", lines[0])
        self.assertIn(f" X={version}:{cipher[0]}:{cipher[2]} ", lines[0])
        headers = self.spool_headers(d)
        self.assertEqual(len(headers), 1)
        self.assertRegex(headers[0], r"with esmtps  \(" + re.escape(version)
                         + r"\) tls [A-Z0-9_]+\n\t\(sluice ")
        self.assertIn("-received_protocol esmtps\n", headers[0])

    def test_clear_message_has_no_x(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)
        lines = self.arrivals(d)
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" P=esmtp ", lines[0])
        self.assertNotIn(" X=", lines[0])

    def test_pipelined_plaintext_after_starttls_is_discarded(self):
        d = self.start()
        sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        f = sock.makefile("rb")
        self.assertTrue(read_reply(f).startswith(b"220 "))
        sock.sendall(b"EHLO client.test\r\n")
        self.assertIn(b"STARTTLS", read_reply(f))
        # The injection: a command behind STARTTLS in the same write.
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<a@example.test>\r\n")
        self.assertTrue(read_reply(f).startswith(b"220 "))
        f.close()
        tls = client_context(self.cert).wrap_socket(sock)
        tf = tls.makefile("rb")
        tls.sendall(b"EHLO client.test\r\n")
        # The first reply inside TLS answers the new EHLO, not the MAIL.
        self.assertTrue(read_reply(tf).startswith(b"250-sluice.test"))
        tls.sendall(b"RCPT TO:<b@relay.test>\r\n")
        self.assertTrue(read_reply(tf).startswith(b"503 "))
        tls.sendall(b"QUIT\r\n")
        self.assertTrue(read_reply(tf).startswith(b"221 "))
        tf.close()
        tls.close()

    def test_ehlo_in_the_handshake_flight_sees_tls(self):
        """The client's last handshake message and its EHLO arrive in one
        write, as Exim sends them: the EHLO reply must already be the one
        for a TLS session (no STARTTLS), whichever of libevent's read and
        event callbacks runs first."""
        passwd = os.path.join(self.certdir, "passwd")
        with open(passwd, "w") as f:
            f.write("alice:x\n")
        d = self.start(settings=self.tls_settings() +
                       f"auth_passwd_file = {passwd}\n")
        for attempt in range(5):
            with self.subTest(attempt=attempt):
                sock = socket.create_connection(("127.0.0.1", d.port),
                                                timeout=10)
                self.addCleanup(sock.close)
                f = sock.makefile("rb")
                self.addCleanup(f.close)
                read_reply(f)
                sock.sendall(b"EHLO client.test\r\nSTARTTLS\r\n")
                read_reply(f)
                self.assertTrue(read_reply(f).startswith(b"220 "))
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = client_context(self.cert).wrap_bio(incoming, outgoing)
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        if outgoing.pending:
                            sock.sendall(outgoing.read())
                        data = sock.recv(65536)
                        self.assertTrue(data, "server closed mid-handshake")
                        incoming.write(data)
                # The client's Finished is still in outgoing: the EHLO
                # record goes out with it in one write.
                tls.write(b"EHLO client.test\r\n")
                sock.sendall(outgoing.read())
                reply = b""
                while not re.search(rb"(^|\n)250 [^\n]*\n", reply):
                    try:
                        reply += tls.read(65536)
                    except ssl.SSLWantReadError:
                        data = sock.recv(65536)
                        self.assertTrue(data, "server closed the connection")
                        incoming.write(data)
                self.assertIn(b"250-sluice.test Hello", reply)
                self.assertNotIn(b"STARTTLS", reply)
                self.assertIn(b"AUTH PLAIN LOGIN", reply)

    def test_session_is_reset_after_starttls(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=client_context(self.cert))
            # No EHLO yet inside TLS: MAIL is out of sequence.
            code, text = s.docmd("MAIL FROM:<a@example.test>")
            self.assertEqual(code, 503)
            self.assertIn(b"HELO or EHLO", text)

    def test_starttls_refused_inside_a_transaction(self):
        d = self.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertEqual(s.mail("a@example.test")[0], 250)
            self.assertEqual(s.docmd("STARTTLS")[0], 503)

    def test_old_protocol_fails_alone_and_is_logged(self):
        d = self.start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            with self.assertRaises((ssl.SSLError, OSError)):
                s.starttls(context=ctx)
        sluicetest.wait_for(lambda: "TLS error on connection from" in
                            d.log(), 10, "the handshake failure's line")
        self.assertRegex(d.log(), r"TLS error on connection from "
                         r"\[127.0.0.1\] \(SSL_accept\): ")
        # The daemon goes on serving others.
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=client_context(self.cert))
            s.ehlo("client.test")
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)
        self.assertEqual(len(self.arrivals(d)), 1)

    def test_tls_on_connect_port(self):
        tls_port = sluicetest.free_port()
        d = self.daemon(settings=self.tls_settings() +
                        f"tls_on_connect_ports = {tls_port}\n")
        with open(d.config) as f:
            text = f.read()
        text = text.replace(f"daemon_smtp_ports = {d.port}\n",
                            f"daemon_smtp_ports = {d.port} : {tls_port}\n")
        with open(d.config, "w") as f:
            f.write(text)
        d.start()
        with smtplib.SMTP_SSL("127.0.0.1", tls_port, timeout=10,
                              context=client_context(self.cert)) as s:
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"))
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)
        # The other port still speaks in clear first.
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"))
        lines = self.arrivals(d)
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" P=esmtps ", lines[0])
        self.assertIn(" X=TLS1.", lines[0])

    def test_swaks_over_starttls(self):
        swaks = shutil.which("swaks")
        if swaks is None:
            self.skipTest("swaks is not installed")
        d = self.start()
        r = subprocess.run(
            [swaks, "--server", "127.0.0.1", "--port", str(d.port),
             "--tls", "--from", "a@example.test", "--to", "b@relay.test",
             "--helo", "client.test"],
            capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = self.arrivals(d)
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" X=TLS1.", lines[0])

    def test_reload_keeps_the_working_certificate(self):
        d = self.start()
        with open(d.config) as f:
            text = f.read()
        with open(d.config, "w") as f:
            f.write(text.replace(f"tls_certificate = {self.cert}\n",
                                 f"tls_certificate = {self.certdir}/"
                                 "missing.crt\n"))
        d.proc.send_signal(signal.SIGHUP)
        sluicetest.wait_for(lambda: "TLS settings not applied" in d.log(),
                            10, "the reload's TLS line")
        self.assertIn("missing.crt", d.log("panic"))
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=client_context(self.cert))
            s.ehlo("client.test")
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)
        self.assertEqual(len(self.arrivals(d)), 1)

    def test_unreadable_certificate_stops_the_start(self):
        d = self.daemon(settings=RELAY + "tls_certificate = "
                        f"{self.certdir}/missing.crt\n")
        r = d.run("-bV")
        d.proc = subprocess.Popen(
            [sluicetest.SLUICE_BIN, "-bdf", "-C", d.config],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, err = d.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.communicate()
            self.fail("the daemon started without its certificate")
        self.assertNotEqual(d.proc.returncode, 0)
        self.assertIn(b"missing.crt", err + r.stderr + d.log("panic").encode())


if __name__ == "__main__":
    sluicetest.main()

"""Client certificates on the SMTP server: asked for only from clients in
tls_verify_hosts or tls_try_verify_hosts, checked against
tls_verify_certificates, and shown on the "<=" line as Exim built with
OpenSSL shows them: CV=yes or CV=no on every TLS arrival, and
DN="/O=.../CN=..." under log_selector +tls_peerdn."""

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
MESSAGE = b"Subject: cert\r\n\r\nbody\r\n"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=120)


class ClientCertificateTest(sluicetest.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sluice-client-cert-")
        tmp = cls.tmp
        cls.server_cert, cls.server_key = sluicetest.make_certificate(
            tmp, "sluice.test")
        # A CA, a client certificate it signed, and a self-signed one
        # with the same kind of subject that the CA does not vouch for.
        cls.ca_cert = os.path.join(tmp, "ca.crt")
        ca_key = os.path.join(tmp, "ca.key")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                ca_key, "-out", cls.ca_cert, "-days", "2", "-subj",
                "/CN=Test CA")
        cls.client_key = os.path.join(tmp, "client.key")
        csr = os.path.join(tmp, "client.csr")
        cls.client_cert = os.path.join(tmp, "client.crt")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                cls.client_key, "-out", csr, "-subj",
                "/O=Sluice Test/CN=client.test")
        openssl("x509", "-req", "-in", csr, "-CA", cls.ca_cert, "-CAkey",
                ca_key, "-CAcreateserial", "-out", cls.client_cert, "-days",
                "2")
        cls.rogue_cert, cls.rogue_key = sluicetest.make_certificate(
            tmp, "rogue.test")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, extra):
        return self.daemon(settings=RELAY +
                           f"tls_certificate = {self.server_cert}\n"
                           f"tls_privatekey = {self.server_key}\n"
                           f"tls_verify_certificates = {self.ca_cert}\n" +
                           extra).start()

    def send(self, d, cert=None, key=None):
        ctx = ssl.create_default_context(cafile=self.server_cert)
        ctx.check_hostname = False
        if cert is not None:
            ctx.load_cert_chain(cert, key)
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=ctx)
            s.ehlo("client.test")
            s.sendmail("a@example.test", ["b@relay.test"], MESSAGE)

    def headers(self, d):
        return list(header_files(d.spool).values())

    def arrival(self, d):
        lines = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(lines), 1, d.log())
        return lines[0]

    def test_verified_certificate_logged(self):
        d = self.start("tls_try_verify_hosts = 127.0.0.1\n"
                       "log_selector = +tls_peerdn\n")
        self.send(d, self.client_cert, self.client_key)
        self.assertRegex(self.arrival(d), r" X=TLS1\.[23]:\S+ CV=yes "
                         r'DN="/O=Sluice Test/CN=client\.test" ')
        # The -H file records it as Exim's does.
        headers = self.headers(d)
        self.assertEqual(len(headers), 1)
        self.assertIn(b"\n-tls_certificate_verified\n-tls_cipher TLS1.",
                      headers[0])
        self.assertIn(b"\n-tls_peerdn /O=Sluice Test/CN=client.test\n",
                      headers[0])

    def test_unverified_certificate_only_logged(self):
        d = self.start("tls_try_verify_hosts = 127.0.0.1\n"
                       "log_selector = +tls_peerdn\n")
        self.send(d, self.rogue_cert, self.rogue_key)
        self.assertRegex(self.arrival(d),
                         r' CV=no DN="/CN=rogue\.test" ')

    def test_no_certificate_under_try(self):
        d = self.start("tls_try_verify_hosts = 127.0.0.1\n"
                       "log_selector = +tls_peerdn\n")
        self.send(d)
        line = self.arrival(d)
        self.assertIn(" CV=no ", line)
        self.assertNotIn(" DN=", line)

    def test_dn_needs_the_selector(self):
        d = self.start("tls_try_verify_hosts = 127.0.0.1\n")
        self.send(d, self.client_cert, self.client_key)
        line = self.arrival(d)
        self.assertIn(" CV=yes ", line)
        self.assertNotIn(" DN=", line)

    def test_not_asked_outside_the_lists(self):
        # The client has a certificate but is never asked for it.
        d = self.start("tls_try_verify_hosts = 192.0.2.1\n"
                       "log_selector = +tls_peerdn\n")
        self.send(d, self.client_cert, self.client_key)
        line = self.arrival(d)
        self.assertIn(" CV=no ", line)
        self.assertNotIn(" DN=", line)

    def test_required_certificate(self):
        d = self.start("tls_verify_hosts = 127.0.0.1\n"
                       "log_selector = +tls_peerdn\n")
        # Without a certificate, or with one the CA did not sign, the
        # handshake fails and only that connection ends.
        for cert, key in ((None, None), (self.rogue_cert, self.rogue_key)):
            with self.subTest(cert=cert):
                with self.assertRaises((ssl.SSLError, smtplib.SMTPException,
                                        ConnectionError)):
                    self.send(d, cert, key)
        self.assertEqual(len(re.findall(r"TLS error on connection from "
                                        r"\[127\.0\.0\.1\] \(SSL_accept\)",
                                        d.log())), 2, d.log())
        self.send(d, self.client_cert, self.client_key)
        self.assertIn(' CV=yes DN="/O=Sluice Test/CN=client.test" ',
                      self.arrival(d))


if __name__ == "__main__":
    sluicetest.main()

"""SNI on the SMTP server: tls_sni_certificates picks the certificate by
the name the client asks for (RFC 6066 section 3), other names and
clients without SNI get tls_certificate, the table is read again on
SIGHUP, and a malformed entry stops the start."""

import os
import shutil
import signal
import smtplib
import ssl
import tempfile
import time

import sluicetest
from smtpraw import header_files

RELAY = "domainlist relay_to_domains = relay.test\n"


class TlsSniTest(sluicetest.DaemonTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-sni-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.certs = {}
        for name in ("sluice.test", "mail.a.test", "any.b.test",
                     "new.a.test"):
            self.certs[name] = sluicetest.make_certificate(self.tmp, name)
        # Every certificate is self-signed, so one bundle of them lets
        # the client verify whichever the server sends.
        self.bundle = os.path.join(self.tmp, "bundle.pem")
        with open(self.bundle, "w") as out:
            for cert, _ in self.certs.values():
                with open(cert) as f:
                    out.write(f.read())
        # The SNI entry for mail.a.test reads these paths, which the
        # reload test rewrites.
        self.a_cert = os.path.join(self.tmp, "a.crt")
        self.a_key = os.path.join(self.tmp, "a.key")
        shutil.copy(self.certs["mail.a.test"][0], self.a_cert)
        shutil.copy(self.certs["mail.a.test"][1], self.a_key)

    def start(self, extra=""):
        cert, key = self.certs["sluice.test"]
        b_cert, b_key = self.certs["any.b.test"]
        return self.daemon(settings=RELAY +
                           f"tls_certificate = {cert}\n"
                           f"tls_privatekey = {key}\n"
                           f"tls_sni_certificates = mail.a.test "
                           f"{self.a_cert} {self.a_key} : "
                           f"*.b.test {b_cert} {b_key}\n" + extra).start()

    def served_name(self, d, server_hostname):
        """Return the CN of the certificate the server sends when the
        client asks for server_hostname (None: no SNI)."""
        ctx = ssl.create_default_context(cafile=self.bundle)
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
            s.ehlo("client.test")
            s._host = server_hostname
            s.starttls(context=ctx)
            subject = dict(item[0] for item in s.sock.getpeercert()["subject"])
            s.ehlo("client.test")
            s.sendmail("a@example.test", ["b@relay.test"],
                       b"Subject: sni\r\n\r\nbody\r\n")
        return subject["commonName"]

    def test_certificate_by_name(self):
        d = self.start("log_selector = +tls_sni\n")
        cases = [
            ("mail.a.test", "mail.a.test"),
            ("MAIL.A.TEST", "mail.a.test"),
            ("x.b.test", "any.b.test"),
            ("b.test", "sluice.test"),          # "*." needs a label
            ("y.x.b.test", "sluice.test"),      # only one label below
            ("other.test", "sluice.test"),
            (None, "sluice.test"),
        ]
        for asked, served in cases:
            with self.subTest(asked=asked):
                self.assertEqual(self.served_name(d, asked), served)
        arrivals = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(arrivals), len(cases), d.log())
        self.assertIn(" SNI=mail.a.test", arrivals[0])
        self.assertNotIn(" SNI=", arrivals[-1])
        # The -H files record the name as Exim's do.
        headers = header_files(d.spool).values()
        self.assertEqual(sum(b"\n-tls_sni mail.a.test\n" in h
                             for h in headers), 1)
        self.assertEqual(sum(b"\n-tls_sni " in h for h in headers),
                         len(cases) - 1)

    def test_reload_reads_the_certificates_again(self):
        d = self.start()
        self.assertEqual(self.served_name(d, "mail.a.test"), "mail.a.test")
        shutil.copy(self.certs["new.a.test"][0], self.a_cert)
        shutil.copy(self.certs["new.a.test"][1], self.a_key)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while self.served_name(d, "mail.a.test") != "new.a.test":
            self.assertLess(time.monotonic(), deadline,
                            "the reload did not take the new certificate")
            time.sleep(0.1)
        self.assertEqual(d.log("panic"), "")

    def test_malformed_entry_stops_the_start(self):
        cert, key = self.certs["sluice.test"]
        d = self.daemon(settings=RELAY +
                        f"tls_certificate = {cert}\n"
                        f"tls_privatekey = {key}\n"
                        "tls_sni_certificates = mail.a.test\n")
        with self.assertRaises(AssertionError) as caught:
            d.start()
        self.assertIn("tls_sni_certificates", str(caught.exception))


if __name__ == "__main__":
    sluicetest.main()

"""sluice's DNS module (core/dns.c), run through tests/dns_probe against
dnsmasq on loopback: MX order, implicit MX, null MX, NXDOMAIN versus
temporary failures, timeouts and the server list.

dnsmasq serves only the records given here: --no-resolv, no upstream
server and --local=/test/, so nothing is ever forwarded.
"""

import os
import socket
import subprocess
import unittest

import sluicetest

PROBE = os.path.join(sluicetest.BUILDDIR, "tests", "dns_probe")

RECORDS = [
    "--mx-host=example.test,mx1.example.test,10",
    "--mx-host=example.test,mx2.example.test,20",
    "--mx-host=example.test,mx0.example.test,5",   # a host without address
    "--host-record=mx1.example.test,127.0.0.5",
    "--host-record=mx2.example.test,127.0.0.6,::1",
    "--mx-host=equal.test,a.equal.test,10",
    "--mx-host=equal.test,b.equal.test,10",
    "--mx-host=equal.test,c.equal.test,10",
    "--host-record=a.equal.test,127.0.0.2",
    "--host-record=b.equal.test,127.0.0.3",
    "--host-record=c.equal.test,127.0.0.4",
    "--host-record=plain.test,127.0.0.7",
    "--host-record=v6only.test,::1",
    "--mx-host=nullmx.test,.,0",
    "--mx-host=broken.test,nohost.test,10",
    "--mx-host=alias.test,mail.alias.test,10",
    "--cname=mail.alias.test,mx1.example.test",
]


class DnsClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dnsmasq = sluicetest.Dnsmasq(RECORDS).start()
        cls.port = cls.dnsmasq.port

    @classmethod
    def tearDownClass(cls):
        cls.dnsmasq.stop()

    def probe(self, name, *options, server="127.0.0.1", port=None):
        """Run dns_probe; return (exit status, status line, host lines,
        error line)."""
        command = [PROBE, "--server", server,
                   "--port", str(port or self.port), "--timeout", "20",
                   *options, name]
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=120)
        self.assertNotEqual(result.returncode, 64,
                            f"dns_probe usage error: {result.stderr}")
        lines = result.stdout.splitlines()
        status = lines[0] if lines else ""
        hosts = [l[5:] for l in lines if l.startswith("host ")]
        errors = [l[6:] for l in lines if l.startswith("error ")]
        return result.returncode, status, hosts, errors[0] if errors else None

    def test_mx_sorted_with_addresses(self):
        rc, status, hosts, error = self.probe("example.test", "--no-shuffle")
        self.assertEqual(rc, 0)
        self.assertEqual(status, "status ok implicit=no")
        self.assertEqual(hosts, [
            "5 mx0.example.test not-found",
            "10 mx1.example.test ok 127.0.0.5",
            "20 mx2.example.test ok 127.0.0.6 ::1",
        ])
        self.assertIsNone(error)

    def test_ipv4_only(self):
        _, _, hosts, _ = self.probe("example.test", "--no-shuffle",
                                    "--ipv4-only")
        self.assertEqual(hosts[2], "20 mx2.example.test ok 127.0.0.6")

    def test_equal_preference_all_present(self):
        # Shuffled, the order may differ from run to run; the hosts and
        # their preference never do.
        for _ in range(5):
            rc, _, hosts, _ = self.probe("equal.test")
            self.assertEqual(rc, 0)
            self.assertEqual(sorted(hosts), [
                "10 a.equal.test ok 127.0.0.2",
                "10 b.equal.test ok 127.0.0.3",
                "10 c.equal.test ok 127.0.0.4",
            ])

    def test_implicit_mx(self):
        rc, status, hosts, _ = self.probe("plain.test")
        self.assertEqual(rc, 0)
        self.assertEqual(status, "status ok implicit=yes")
        self.assertEqual(hosts, ["0 plain.test ok 127.0.0.7"])

    def test_implicit_mx_ipv6(self):
        rc, _, hosts, _ = self.probe("v6only.test")
        self.assertEqual(rc, 0)
        self.assertEqual(hosts, ["0 v6only.test ok ::1"])
        rc, status, hosts, error = self.probe("v6only.test", "--ipv4-only")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status not-found implicit=yes")
        self.assertEqual(error, "v6only.test has no MX record and no "
                         "address record")

    def test_mx_through_cname(self):
        rc, _, hosts, _ = self.probe("alias.test")
        self.assertEqual(rc, 0)
        self.assertEqual(hosts, ["10 mail.alias.test ok 127.0.0.5"])

    def test_nxdomain_is_permanent(self):
        rc, status, hosts, error = self.probe("nosuch.test")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status not-found implicit=no")
        self.assertEqual(hosts, [])
        self.assertEqual(error, "domain nosuch.test does not exist")

    def test_null_mx(self):
        rc, status, _, error = self.probe("nullmx.test")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status no-mail implicit=no")
        self.assertIn("accepts no mail", error)

    def test_mx_hosts_without_address(self):
        rc, status, hosts, error = self.probe("broken.test")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status not-found implicit=no")
        self.assertEqual(hosts, ["10 nohost.test not-found"])
        self.assertIn("point to hosts without an address", error)

    def test_refused_query_is_temporary(self):
        # dnsmasq refuses names outside its local zone, having no
        # upstream server to ask.
        rc, status, _, error = self.probe("example.invalid")
        self.assertEqual(rc, 2)
        self.assertEqual(status, "status tempfail implicit=no")
        self.assertIn("MX lookup for example.invalid failed", error)

    def test_host_lookup(self):
        rc, status, hosts, _ = self.probe("mx2.example.test", "--host")
        self.assertEqual(rc, 0)
        self.assertEqual(hosts, ["0 mx2.example.test ok 127.0.0.6 ::1"])
        rc, status, _, _ = self.probe("mx0.example.test", "--host")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status not-found implicit=no")

    def test_invalid_name(self):
        rc, status, _, error = self.probe("bad..name")
        self.assertEqual(rc, 1)
        self.assertEqual(status, "status invalid")
        self.assertIn("not a valid domain name", error)

    def test_silent_server_times_out(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            command = [PROBE, "--server", "127.0.0.1", "--port",
                       str(silent.getsockname()[1]), "--timeout", "1",
                       "example.test"]
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=120)
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("error DNS lookup for example.test timed out after "
                      "1.000 s", result.stdout)

    def test_second_server_answers(self):
        # The first server in the list never responds, so c-ares moves on
        # to the second after its per-try timeout.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.2", self.port))
            rc, status, hosts, _ = self.probe(
                "plain.test", "--query-timeout", "200", "--tries", "1",
                server="127.0.0.2 : 127.0.0.1")
        self.assertEqual(rc, 0, status)
        self.assertEqual(hosts, ["0 plain.test ok 127.0.0.7"])

    def test_no_server_listening_is_temporary(self):
        port = sluicetest.free_udp_and_tcp_port("127.0.0.1")
        rc, status, _, _ = self.probe("example.test", "--query-timeout",
                                      "200", "--tries", "1", port=port)
        self.assertEqual(rc, 2)
        self.assertEqual(status, "status tempfail implicit=no")



class MergedQueryTest(unittest.TestCase):
    """Identical lookups started together share their queries."""

    def test_identical_lookups_query_once(self):
        dnsmasq = sluicetest.Dnsmasq(RECORDS + ["--log-queries"]).start()
        try:
            result = subprocess.run(
                [PROBE, "--server", "127.0.0.1", "--port",
                 str(dnsmasq.port), "--timeout", "20", "--ipv4-only",
                 "--repeat", "20", "example.test"],
                capture_output=True, text=True, timeout=120)
        finally:
            dnsmasq.proc.terminate()
            log = dnsmasq.proc.stderr.read().decode(errors="replace")
            dnsmasq.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        statuses = [l for l in result.stdout.splitlines()
                    if l.startswith("status ")]
        self.assertEqual(statuses, ["status ok implicit=no"] * 20)
        hosts = [l for l in result.stdout.splitlines()
                 if l.startswith("host 10 ")]
        self.assertEqual(hosts, ["host 10 mx1.example.test ok 127.0.0.5"]
                         * 20)
        # One MX query and one A query per host, not twenty of each.
        self.assertEqual(log.count("query[MX] example.test "), 1, log)
        self.assertEqual(log.count("query[A] mx1.example.test "), 1, log)

if __name__ == "__main__":
    if not os.access(PROBE, os.X_OK):
        raise SystemExit(f"{PROBE} is missing: run make check, which "
                         "builds it")
    unittest.main(verbosity=2)

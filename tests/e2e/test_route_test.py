"""sluice -bt and -bv: addresses routed through the daemon's DNS code
against dnsmasq on loopback. The output has the shape Exim 4.96 prints
for a dnslookup or smarthost router and the remote_smtp transport: host
names and addresses in aligned columns, MX= for MX hosts. Addresses that
cannot be routed get Exim's texts and exit codes.

dnsmasq serves only the records given here: --no-resolv, no upstream
server and --local=/test/, so nothing is ever forwarded.
"""

import unittest

import sluicetest

RECORDS = [
    "--mx-host=example.test,mx1.example.test,10",
    "--mx-host=example.test,mail-two.example.test,20",
    "--host-record=mx1.example.test,127.0.0.5",
    "--host-record=mail-two.example.test,127.0.0.16,fd00::16",
    "--host-record=plain.test,127.0.0.7",
    "--mx-host=nullmx.test,.,0",
    "--mx-host=broken.test,nohost.test,10",
    "--host-record=relay.test,127.0.0.9",
    "--mx-host=self.test,loop.test,10",
    "--host-record=loop.test,127.0.0.1",
]


class RouteTestCase(sluicetest.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dnsmasq = sluicetest.Dnsmasq(RECORDS).start()

    @classmethod
    def tearDownClass(cls):
        cls.dnsmasq.stop()

    def config(self, settings=""):
        # The daemon is never started: only its configuration is used.
        return self.daemon(settings=self.dnsmasq.settings() + settings)

    def route(self, d, *args, input=None):
        """Run sluice with args; return (exit status, stdout, stderr)."""
        r = d.run(*args, input=input)
        return r.returncode, r.stdout.decode(), r.stderr.decode()


class DnsLookupTest(RouteTestCase):

    def test_mx_hosts_aligned(self):
        d = self.config()
        rc, out, err = self.route(d, "-bt", "bob@example.test")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, (
            "bob@example.test\n"
            "  router = dnslookup, transport = remote_smtp\n"
            "  host mx1.example.test      [127.0.0.5]  MX=10\n"
            "  host mail-two.example.test [127.0.0.16] MX=20\n"
            "  host mail-two.example.test [fd00::16]   MX=20\n"))

    def test_implicit_mx_and_qualify(self):
        d = self.config("qualify_recipient = plain.test\n")
        rc, out, err = self.route(d, "-bt", "carol")
        self.assertEqual(rc, 0, err)
        # No MX records: the domain's own address, without MX=.
        self.assertEqual(out, "carol@plain.test\n"
                         "  router = dnslookup, transport = remote_smtp\n"
                         "  host plain.test [127.0.0.7]\n")

    def test_undeliverable_and_exit_codes(self):
        d = self.config()
        rc, out, _ = self.route(d, "-bt", "x@nxdomain.test",
                                 "y@nullmx.test", "z@broken.test")
        self.assertEqual(rc, 2)
        self.assertEqual(out, (
            "x@nxdomain.test is undeliverable: Unrouteable address\n"
            "y@nullmx.test is undeliverable: Domain does not accept mail "
            "(null MX)\n"
            "z@broken.test is undeliverable: Unrouteable address\n"))

    def test_verify(self):
        d = self.config()
        rc, out, _ = self.route(d, "-bv", "bob@example.test")
        self.assertEqual((rc, out), (0, "bob@example.test verified\n"))
        rc, out, _ = self.route(d, "-bv", "bob@example.test",
                                 "x@nxdomain.test")
        self.assertEqual((rc, out), (2, "bob@example.test verified\n"
                                     "x@nxdomain.test failed to verify: "
                                     "Unrouteable address\n"))
        # -v: the routing, as -bt prints it.
        rc, out, _ = self.route(d, "-v", "-bv", "a@plain.test")
        self.assertEqual((rc, out), (0, "a@plain.test\n"
                                     "  router = dnslookup, transport = "
                                     "remote_smtp\n"
                                     "  host plain.test [127.0.0.7]\n"))

    def test_addresses_on_stdin(self):
        d = self.config()
        rc, out, _ = self.route(d, "-bt", input=b"a@plain.test\n\n"
                                 b"  x@nxdomain.test  \n")
        self.assertEqual(rc, 2)
        self.assertEqual(out, "> a@plain.test\n"
                         "  router = dnslookup, transport = remote_smtp\n"
                         "  host plain.test [127.0.0.7]\n"
                         "> > x@nxdomain.test is undeliverable: "
                         "Unrouteable address\n> \n")

    def test_lookup_failure_defers(self):
        # A server that does not answer: the lookup fails for now.
        d = self.daemon(settings="dns_servers = 127.0.0.1\n"
                        f"dns_port = {sluicetest.free_port()}\n")
        rc, out, _ = self.route(d, "-bt", "bob@example.test")
        self.assertEqual((rc, out), (1, "bob@example.test cannot be "
                                     "resolved at this time: host lookup "
                                     "did not complete\n"))

    def test_mx_pointing_here(self):
        # 127.0.0.1 is this host's: the queue would freeze the message.
        d = self.config()
        rc, out, _ = self.route(d, "-bt", "x@self.test")
        self.assertEqual((rc, out), (1, "x@self.test cannot be resolved at "
                                     "this time: lowest numbered MX record "
                                     "points to local host\n"))

    def test_malformed_address(self):
        d = self.config()
        rc, out, _ = self.route(d, "-bt", "bob@bad..test")
        self.assertEqual((rc, out), (2, "bob@bad..test is undeliverable: "
                                     "malformed address\n"))


class SmarthostTest(RouteTestCase):

    def test_smarthost_hosts_and_ports(self):
        d = self.config("smarthost = relay.test : 127.0.0.3::2525 : "
                        "nohost.test\n")
        rc, out, err = self.route(d, "-bt", "bob@example.test")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, (
            "bob@example.test\n"
            "  router = smarthost, transport = remote_smtp\n"
            "  host relay.test [127.0.0.9]\n"
            "  host 127.0.0.3  [127.0.0.3] port=2525\n"))
        # The host that has no address is named on stderr.
        self.assertIn("smarthost nohost.test: ", err)


if __name__ == "__main__":
    sluicetest.main()


class PolicyRouteTest(RouteTestCase):
    """With a policy, -bt adds the site, pool and source that the
    scheduler would use, and a route handler's own hosts replace the MX
    hosts."""

    POLICY = """
sluice.source{ name = "out5", ip = "127.0.0.5" }
sluice.pool{ name = "bulk", sources = { "out5" } }
sluice.on("route", function(msg, domain, mx)
  if domain == "plain.test" then
    return { site = "direct", pool = "bulk", route = "own_hosts",
             hosts = { "relay.test" }, port = 2525 }
  end
  if mx[1] and mx[1].name == "mx1.example.test" then
    return { site = "example", pool = "bulk" }
  end
end)
"""

    def policy_config(self):
        d = self.config("lua_policy = policy.lua\n")
        with open(f"{d.dir}/policy.lua", "w") as f:
            f.write(self.POLICY)
        return d

    def test_site_pool_and_source_printed(self):
        d = self.policy_config()
        rc, out, err = self.route(d, "-bt", "bob@example.test")
        self.assertEqual((rc, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(lines[1],
                         "  router = dnslookup, transport = remote_smtp")
        self.assertEqual(lines[2], "  site = example, pool = bulk, "
                         "source = out5 [127.0.0.5]")
        self.assertIn("  host mx1.example.test      [127.0.0.5]  MX=10",
                      lines)

    def test_route_hosts_replace_mx(self):
        d = self.policy_config()
        rc, out, err = self.route(d, "-bt", "carol@plain.test")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, (
            "carol@plain.test\n"
            "  router = own_hosts, transport = remote_smtp\n"
            "  site = direct, pool = bulk, source = out5 [127.0.0.5]\n"
            "  host relay.test [127.0.0.9] port=2525\n"))

    def test_default_site_and_pool(self):
        d = self.policy_config()
        # The handler returns nil: the site is the MX host name (here
        # the domain itself, which has no MX) and the pool "default".
        rc, out, err = self.route(d, "-bt", "frank@relay.test")
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("  site = relay.test, pool = default, "
                      "source = out5 [127.0.0.5]\n", out)

    def test_unrouted_address_has_no_site(self):
        d = self.policy_config()
        rc, out, _ = self.route(d, "-bt", "erin@nullmx.test")
        self.assertEqual(rc, 2)
        self.assertNotIn("site =", out)

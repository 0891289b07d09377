"""Outbound delivery end to end: the daemon routes by MX records that
dnsmasq serves on loopback and delivers to recording sinks on
127.0.0.5, .6, .8 and .9 (nothing listens on .7). Covered: MX preference
and fallback, implicit MX, null MX, CNAME'd and IP-literal MX targets, an
MX pointing at this host (frozen), egress source binding with its EHLO
name and PTR check, PIPELINING with several recipients and 452 replies,
several messages per connection and connection_max_messages, the
per-host cap, STARTTLS (X=, CV=, SNI, hosts_require_tls, hosts_avoid_tls,
tls_tempfail_tryclear), a connection dropped mid-DATA, a multi-line
greeting, an over-long reply, an unsolicited 421 on an idle connection
and the DNS cache.
"""

import re
import shutil
import smtplib
import ssl
import tempfile

import sluicetest
from sluicetest import Dnsmasq
from test_delivery import RETRY_INTERVAL, WAIT, DeliveryTestCase, compose

SENDER = "sender@origin.test"

DNS_RECORDS = [
    # Preference and fallback: the preferred host refuses connections.
    "--mx-host=pref.test,mx1.pref.test,10",
    "--host-record=mx1.pref.test,127.0.0.7",
    "--mx-host=pref.test,mx2.pref.test,20",
    "--host-record=mx2.pref.test,127.0.0.5",
    # No MX: the domain's own address.
    "--host-record=implicit.test,127.0.0.6",
    # RFC 7505 null MX.
    "--mx-host=nullmx.test,.,0",
    # An MX target that is a CNAME of a host with an address.
    "--mx-host=cname.test,alias.cname.test,10",
    "--cname=alias.cname.test,mx2.pref.test",
    # An MX target written as an IP address.
    "--mx-host=ipmx.test,127.0.0.6,10",
    # MX records that point at the daemon itself (127.0.0.1).
    "--mx-host=self.test,mx.self.test,10",
    "--host-record=mx.self.test,127.0.0.1",
    "--mx-host=middle.test,mx1.middle.test,5",
    "--host-record=mx1.middle.test,127.0.0.7",
    "--mx-host=middle.test,mx.self.test,10",
    "--mx-host=middle.test,mx2.pref.test,20",
    # Plain and TLS hosts.
    "--mx-host=plain.test,mx.plain.test,10",
    "--host-record=mx.plain.test,127.0.0.9",
    "--mx-host=tls.test,mx.tls.test,10",
    "--host-record=mx.tls.test,127.0.0.8",
    # PTR records of the egress sources.
    "--ptr-record=3.0.0.127.in-addr.arpa,out3.sluice.test",
    "--ptr-record=4.0.0.127.in-addr.arpa,out4.sluice.test",
]

SINK_HOSTS = ["127.0.0.5", "127.0.0.6", "127.0.0.8", "127.0.0.9"]


def delivered_lines(lines):
    return [line for line in lines if line.startswith(("=> ", "-> "))]


class OutboundTestCase(DeliveryTestCase):
    """A daemon that routes by the records above, and sinks on one port."""

    dns_records = DNS_RECORDS

    @classmethod
    def setUpClass(cls):
        cls.dns = Dnsmasq(cls.dns_records).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def start(self, settings="", **sink_options):
        """Start sinks on SINK_HOSTS and a daemon that delivers to them;
        return the daemon and the sinks by address."""
        sinks = self.sinks_on_one_port(SINK_HOSTS, **sink_options)
        d = self.relay_daemon(self.dns.settings() +
                              f"delivery_port = {sinks[0].port}\n" +
                              settings).start()
        return d, dict(zip(SINK_HOSTS, sinks))

    def deliver_one(self, d, recipients, body=b"hello\r\n", final="Completed"):
        msgid = self.send(d, SENDER, recipients, compose(1, recipients, body))
        self.wait_for_line(d, msgid, final)
        return msgid, self.lines_of(d, msgid)

    def tls_context(self, hostname):
        folder = tempfile.mkdtemp(prefix="sluice-cert-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        cert, key = sluicetest.make_certificate(folder, hostname)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context, cert


class RoutingTest(OutboundTestCase):

    def test_mx_fallback_after_refused(self):
        d, sinks = self.start()
        msgid, lines = self.deliver_one(d, ["a@pref.test"])
        self.assertIn("H=mx1.pref.test [127.0.0.7] Connection refused", lines)
        [line] = delivered_lines(lines)
        self.assertRegex(line, r"^=> a@pref\.test R=dnslookup T=remote_smtp "
                         r"H=mx2\.pref\.test \[127\.0\.0\.5\] ")
        self.assertEqual(len(sinks["127.0.0.5"].messages()), 1)

    def test_implicit_mx(self):
        d, sinks = self.start()
        _, lines = self.deliver_one(d, ["a@implicit.test"])
        [line] = delivered_lines(lines)
        self.assertIn(" H=implicit.test [127.0.0.6] ", line)
        self.assertEqual(sinks["127.0.0.6"].messages()[0]["rcpt_to"],
                         ["a@implicit.test"])

    def test_null_mx_fails(self):
        d, sinks = self.start()
        _, lines = self.deliver_one(d, ["a@nullmx.test"])
        self.assertIn("** a@nullmx.test: Domain does not accept mail "
                      "(null MX)", lines)
        self.assertTrue(all(s.connections == 0 for s in sinks.values()))

    def test_cname_mx_target(self):
        d, sinks = self.start()
        _, lines = self.deliver_one(d, ["a@cname.test"])
        [line] = delivered_lines(lines)
        self.assertIn(" H=alias.cname.test [127.0.0.5] ", line)
        self.assertEqual(len(sinks["127.0.0.5"].messages()), 1)

    def test_mx_to_ip_only_with_option(self):
        d, sinks = self.start()
        _, lines = self.deliver_one(d, ["a@ipmx.test"])
        self.assertIn("** a@ipmx.test: Unrouteable address", lines)
        self.assertEqual(sinks["127.0.0.6"].connections, 0)

        d2, sinks2 = self.start("allow_mx_to_ip = true\n")
        _, lines = self.deliver_one(d2, ["a@ipmx.test"])
        [line] = delivered_lines(lines)
        self.assertIn(" H=127.0.0.6 [127.0.0.6] ", line)

    def test_self_mx_freezes(self):
        d, sinks = self.start()
        msgid = self.send(d, SENDER, ["a@self.test"],
                          compose(1, ["a@self.test"], b"loop\r\n"))
        self.wait_for_line(d, msgid, "Frozen")
        lines = self.lines_of(d, msgid)
        self.assertEqual(lines[1:], [
            "lowest numbered MX record points to local host: self.test",
            "== a@self.test R=dnslookup defer (-1): lowest numbered MX "
            "record points to local host",
            "Frozen"])
        self.wait_idle(d)
        # The frozen flag reaches -H through a rewrite that may still be
        # on its way to disk when the attempt has ended.
        sluicetest.wait_for(
            lambda: "*** frozen ***" in d.run("-bp").stdout.decode(),
            sluicetest.START_TIMEOUT, "-bp to list the message as frozen")
        # A frozen message waits for an operator: no retry comes.
        d.control(f"clock advance {RETRY_INTERVAL + 1}")
        self.wait_idle(d)
        self.assertEqual(len(self.lines_of(d, msgid)), len(lines))
        self.assertTrue(all(s.connections == 0 for s in sinks.values()))

    def test_self_mx_drops_less_preferred(self):
        # This host is MX 10 of middle.test: only MX 5 (refusing) may be
        # tried, never MX 20, which would take the mail.
        d, sinks = self.start()
        msgid = self.send(d, SENDER, ["a@middle.test"],
                          compose(1, ["a@middle.test"], b"no\r\n"))
        deferred = self.wait_for_line(d, msgid, "== a@middle.test ")
        self.assertRegex(deferred[0], r"defer \(111\): Connection refused$")
        self.wait_idle(d)
        self.assertEqual(sinks["127.0.0.5"].connections, 0)
        self.assertNotIn("Frozen", self.lines_of(d, msgid))


class EgressTest(OutboundTestCase):

    def test_source_address_and_ehlo_name(self):
        d, sinks = self.start(
            "egress_sources = 127.0.0.3/out3.sluice.test\n"
            "log_selector = +incoming_interface +outgoing_interface\n")
        _, lines = self.deliver_one(d, ["a@plain.test"])
        [message] = sinks["127.0.0.9"].messages()
        self.assertEqual(message["peer"], "127.0.0.3")
        self.assertEqual(message["helo"], "out3.sluice.test")
        [line] = delivered_lines(lines)
        self.assertIn(" H=mx.plain.test [127.0.0.9] I=[127.0.0.3] ", line)
        self.assertNotIn("egress source 127.0.0.3", d.log())

    def test_sources_checked_at_load(self):
        d, sinks = self.start(
            "egress_sources = 127.0.0.4/wrong.sluice.test : "
            "192.0.2.1/nowhere.test\n")
        sluicetest.wait_for(lambda: "egress source 127.0.0.4: its PTR "
                            "record names out4.sluice.test" in d.log(), WAIT,
                            "the PTR warning of 127.0.0.4")
        self.assertIn("egress source 192.0.2.1 is not usable on this host",
                      d.log())
        self.assertIn("egress source 192.0.2.1", d.log("panic"))
        # Deliveries use the usable source only.
        self.deliver_one(d, ["a@plain.test"])
        [message] = sinks["127.0.0.9"].messages()
        self.assertEqual(message["peer"], "127.0.0.4")
        self.assertEqual(message["helo"], "wrong.sluice.test")


class TransactionTest(OutboundTestCase):

    def test_pipelined_recipients_one_transaction(self):
        d, sinks = self.start(pipelining=True)
        rcpts = ["a@plain.test", "b@plain.test", "c@plain.test"]
        _, lines = self.deliver_one(d, rcpts)
        [message] = sinks["127.0.0.9"].messages()
        self.assertEqual(message["rcpt_to"], rcpts)
        self.assertEqual([line[:2] for line in delivered_lines(lines)],
                         ["=>", "->", "->"])

    def test_452_retried_in_next_transaction(self):
        d, sinks = self.start(pipelining=True)
        sinks["127.0.0.9"].add_rule("rcpt", 452, times=1, match="b@")
        rcpts = ["a@plain.test", "b@plain.test", "c@plain.test"]
        _, lines = self.deliver_one(d, rcpts)
        got = sinks["127.0.0.9"].messages()
        self.assertEqual([m["rcpt_to"] for m in got],
                         [["a@plain.test", "c@plain.test"], ["b@plain.test"]])
        self.assertEqual({m["connection"] for m in got}, {0})
        self.assertEqual([line[:5] for line in delivered_lines(lines)],
                         ["=> a@", "-> c@", "=> b@"])

    def test_452_persistent_defers_only_it(self):
        d, sinks = self.start(pipelining=True)
        sinks["127.0.0.9"].add_rule("rcpt", 452, times=None, match="b@")
        rcpts = ["a@plain.test", "b@plain.test", "c@plain.test"]
        msgid = self.send(d, SENDER, rcpts, compose(1, rcpts, b"x\r\n"))
        deferred = self.wait_for_line(d, msgid, "== b@plain.test ")
        self.assertRegex(deferred[0], r"defer \(-44\) H=mx\.plain\.test "
                         r"\[127\.0\.0\.9\]\*?: SMTP error from remote mail "
                         r"server after pipelined RCPT TO:<b@plain\.test>: "
                         r"452 4\.5\.3 Too many recipients$")
        self.wait_idle(d)
        lines = self.lines_of(d, msgid)
        self.assertEqual(len(delivered_lines(lines)), 2)
        rcpt_lists = [m["rcpt_to"] for m in sinks["127.0.0.9"].messages()]
        self.assertEqual(rcpt_lists, [["a@plain.test", "c@plain.test"]])

    def test_max_rcpt_splits_transactions(self):
        d, sinks = self.start("max_rcpt = 2\n", pipelining=True)
        rcpts = [f"r{i}@plain.test" for i in range(5)]
        _, lines = self.deliver_one(d, rcpts)
        got = sinks["127.0.0.9"].messages()
        self.assertEqual([len(m["rcpt_to"]) for m in got], [2, 2, 1])
        self.assertEqual(sinks["127.0.0.9"].connections, 1)
        self.assertEqual(sorted(r for m in got for r in m["rcpt_to"]), rcpts)

    def test_server_rcptmax_limit(self):
        d, sinks = self.start(pipelining=True, rcpt_max=2)
        rcpts = [f"r{i}@plain.test" for i in range(5)]
        self.deliver_one(d, rcpts)
        got = sinks["127.0.0.9"].messages()
        self.assertEqual([len(m["rcpt_to"]) for m in got], [2, 2, 1])
        # LIMITS was obeyed, so the sink never had to say 452.
        commands = sinks["127.0.0.9"].sessions[0]
        self.assertEqual(sum(c.startswith("RCPT") for c in commands), 5)

    def test_drop_mid_data_defers(self):
        d, sinks = self.start(pipelining=True)
        sinks["127.0.0.9"].add_rule("body", action="close", times=1)
        msgid = self.send(d, SENDER, ["a@plain.test"],
                          compose(1, ["a@plain.test"], b"x\r\n" * 1000))
        deferred = self.wait_for_line(d, msgid, "== a@plain.test ")
        self.assertRegex(deferred[0], r"defer \((-18|104|32)\)")
        self.assertEqual(sinks["127.0.0.9"].messages(), [])
        self.wait_idle(d)
        self.assertNotIn("Completed", self.lines_of(d, msgid))
        self.advance_to_retry(d)
        self.wait_for_line(d, msgid, "Completed")
        self.assertEqual(len(sinks["127.0.0.9"].messages()), 1)

    def test_multiline_greeting_and_long_reply(self):
        d, sinks = self.start(banner="sink.test ESMTP\nsecond line\nthird")
        self.deliver_one(d, ["a@plain.test"])
        sinks["127.0.0.9"].add_rule("rcpt", 550, text="x" * 3000,
                                    match="long@")
        msgid = self.send(d, SENDER, ["long@plain.test"],
                          compose(2, ["long@plain.test"], b"y\r\n"))
        deferred = self.wait_for_line(d, msgid, "== long@plain.test ")
        self.assertIn("defer (-19)", deferred[0])
        self.assertIn("Malformed SMTP reply (reply line too long)",
                      deferred[0])


class ConnectionTest(OutboundTestCase):

    def send_many(self, d, count, domain="plain.test"):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test",
                          timeout=30) as s:
            return [self.send_on(s, SENDER, [f"r{i}@{domain}"],
                                 compose(i, [f"r{i}@{domain}"], b"m\r\n"))
                    for i in range(count)]

    def wait_completed(self, d, ids):
        for msgid in ids:
            self.wait_for_line(d, msgid, "Completed")

    def test_messages_share_one_connection(self):
        d, sinks = self.start("outbound_connections_max_per_host = 1\n")
        ids = self.send_many(d, 5)
        self.wait_completed(d, ids)
        sink = sinks["127.0.0.9"]
        self.assertEqual(len(sink.messages()), 5)
        self.assertEqual(sink.connections, 1)
        hosts = [re.search(r" H=mx\.plain\.test \[127\.0\.0\.9\](\*?) ",
                           delivered_lines(self.lines_of(d, m))[0]).group(1)
                 for m in ids]
        self.assertEqual(hosts.count(""), 1, hosts)
        self.assertEqual(hosts.count("*"), 4, hosts)

    def test_connection_max_messages(self):
        d, sinks = self.start("outbound_connections_max_per_host = 1\n"
                              "connection_max_messages = 2\n")
        self.wait_completed(d, self.send_many(d, 5))
        sink = sinks["127.0.0.9"]
        self.assertEqual(len(sink.messages()), 5)
        self.assertEqual(sink.connections, 3)
        # The first two carried their two messages and said goodbye; the
        # third may still be idle.
        for commands in sink.sessions[:2]:
            self.assertEqual(sum(c == "DATA" for c in commands), 2)
            self.assertEqual(commands[-1], "QUIT")

    def test_per_host_cap(self):
        d, sinks = self.start("outbound_connections_max_per_host = 2\n")
        self.wait_completed(d, self.send_many(d, 8))
        sink = sinks["127.0.0.9"]
        self.assertEqual(len(sink.messages()), 8)
        self.assertLessEqual(sink.max_active, 2)

    def test_idle_421_just_closes(self):
        d, sinks = self.start("connection_idle_timeout = 1h\n",
                              idle_421_after=0.2)
        sink = sinks["127.0.0.9"]
        self.wait_completed(d, self.send_many(d, 1))
        sluicetest.wait_for(lambda: sink.idle_closes == 1, WAIT,
                            "the sink's 421 on the idle connection")
        msgid, lines = self.deliver_one(d, ["late@plain.test"])
        self.assertEqual(len(sink.messages()), 2)
        self.assertEqual(sink.connections, 2)
        self.assertEqual([line for line in lines if line.startswith("==")],
                         [])
        self.assertEqual(d.log("panic"), "")


class TlsTest(OutboundTestCase):

    def test_starttls_verified_with_sni(self):
        context, cert = self.tls_context("mx.tls.test")
        d, sinks = self.start(f"remote_tls_verify_certificates = {cert}\n",
                              tls=context)
        _, lines = self.deliver_one(d, ["a@tls.test"])
        [line] = delivered_lines(lines)
        self.assertRegex(line, r" H=mx\.tls\.test \[127\.0\.0\.8\] "
                         r"X=TLS1\.[23]:[A-Z0-9_-]+:\d+ CV=yes C=")
        [message] = sinks["127.0.0.8"].messages()
        self.assertEqual(message["sni"], "mx.tls.test")
        self.assertIn(message["tls"], ("TLSv1.2", "TLSv1.3"))

    def test_starttls_unverified(self):
        context, _ = self.tls_context("mx.tls.test")
        d, sinks = self.start(tls=context)
        _, lines = self.deliver_one(d, ["a@tls.test"])
        [line] = delivered_lines(lines)
        self.assertIn(" CV=no ", line)
        self.assertIsNotNone(sinks["127.0.0.8"].messages()[0]["tls"])

    def test_hosts_avoid_tls(self):
        context, _ = self.tls_context("mx.tls.test")
        d, sinks = self.start("hosts_avoid_tls = 127.0.0.8\n", tls=context)
        _, lines = self.deliver_one(d, ["a@tls.test"])
        self.assertNotIn(" X=", delivered_lines(lines)[0])
        self.assertNotIn("STARTTLS", sinks["127.0.0.8"].sessions[0])

    def test_hosts_require_tls_without_starttls(self):
        d, sinks = self.start("hosts_require_tls = 127.0.0.9\n")
        msgid = self.send(d, SENDER, ["a@plain.test"],
                          compose(1, ["a@plain.test"], b"x\r\n"))
        deferred = self.wait_for_line(d, msgid, "== a@plain.test ")
        self.assertRegex(deferred[0], r"defer \(-38\): a TLS session is "
                         r"required, but the server did not offer STARTTLS$")
        self.assertEqual(sinks["127.0.0.9"].messages(), [])

    def test_broken_handshake_retried_in_clear(self):
        context, _ = self.tls_context("mx.tls.test")
        d, sinks = self.start(tls=context)
        sinks["127.0.0.8"].add_rule("starttls", 220, action="garbage")
        _, lines = self.deliver_one(d, ["a@tls.test"])
        [line] = delivered_lines(lines)
        self.assertNotIn(" X=", line)
        sink = sinks["127.0.0.8"]
        self.assertEqual(sink.connections, 2)
        self.assertNotIn("STARTTLS", sink.sessions[1])

    def test_broken_handshake_defers_without_tryclear(self):
        context, _ = self.tls_context("mx.tls.test")
        d, sinks = self.start("tls_tempfail_tryclear = false\n", tls=context)
        sinks["127.0.0.8"].add_rule("starttls", 220, action="garbage")
        msgid = self.send(d, SENDER, ["a@tls.test"],
                          compose(1, ["a@tls.test"], b"x\r\n"))
        deferred = self.wait_for_line(d, msgid, "== a@tls.test ")
        self.assertRegex(deferred[0], r"defer \(-37\): TLS session failure "
                         r"after STARTTLS: ")
        self.assertEqual(sinks["127.0.0.8"].messages(), [])


class DnsCacheTest(OutboundTestCase):
    """Records with a TTL, from a dnsmasq this test stops half-way."""

    dns_records = ["--local-ttl=300",
                   "--mx-host=cached.test,mx.cached.test,10",
                   "--host-record=mx.cached.test,127.0.0.9"]

    def test_answers_outlive_the_server_until_ttl(self):
        d, sinks = self.start()
        self.deliver_one(d, ["a@cached.test"])
        self.dns.stop()
        self.addCleanup(self.dns.start)     # for tearDownClass
        self.deliver_one(d, ["b@cached.test"])
        self.assertEqual(len(sinks["127.0.0.9"].messages()), 2)

        # Past the TTL the answers are gone and the lookup fails.
        d.control("clock advance 301")
        msgid = self.send(d, SENDER, ["c@cached.test"],
                          compose(3, ["c@cached.test"], b"x\r\n"))
        deferred = self.wait_for_line(d, msgid, "== c@cached.test ")
        self.assertIn("host lookup did not complete", deferred[0])


if __name__ == "__main__":
    sluicetest.main()

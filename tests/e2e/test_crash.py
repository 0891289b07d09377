"""Crashes and stops with mail on the queue: after SIGKILL or SIGTERM and
a restart on the same spool, every acknowledged message is delivered,
and none twice.
"""

import os
import signal
import smtplib

import sluicetest
from smtpraw import Client
from test_delivery import (DNS_RECORDS, ID, WAIT,
                           DeliveryTestCase, Dnsmasq, compose, received_id)


def ids_received(sink):
    """Return the message ids of the sink's messages, in arrival order."""
    return [received_id(m["data"]) for m in sink.messages()]


SHUTDOWN_421 = (b"421 sluice.test Service not available, closing "
                b"transmission channel\r\n")


class CrashTest(DeliveryTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dns = Dnsmasq(DNS_RECORDS).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()

    def client(self, d):
        c = Client(d.port, timeout=30)
        self.addCleanup(c.close)
        return c

    def restart(self, d):
        """Start a stopped or killed daemon again on the same spool and
        wait until its control socket responds."""
        for stream in (d.proc.stdout, d.proc.stderr):
            stream.close()
        d.start()
        sluicetest.wait_for(lambda: self.control_responds(d), WAIT,
                            "the restarted daemon's control socket")

    def control_responds(self, d):
        try:
            return d.control("stats").endswith("ok\n")
        except OSError:
            return False

    def test_killed_with_smarthost_down(self):
        port = sluicetest.free_port()
        d = self.relay_daemon(f"smarthost = 127.0.0.1::{port}\n").start()
        acknowledged = []
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test",
                          timeout=30) as s:
            for i in range(20):
                rcpt = f"r{i}@a.example"
                acknowledged.append(self.send_on(
                    s, "sender@origin.test", [rcpt],
                    compose(i, [rcpt], f"message {i}\r\n".encode())))
        d.kill()
        self.assertEqual(len(set(acknowledged)), 20)
        for msgid in acknowledged:
            self.assertNotIn("Completed", self.lines_of(d, msgid))

        # The smarthost comes up on the port that was closed; the restart
        # queues every message on the spool at once. The refused
        # connections gave the host a retry time, kept in the hints file,
        # so the messages go once the clock reaches it (15 minutes).
        sink = self.sink(port=port)
        self.restart(d)
        self.wait_idle(d)
        d.control("clock advance 900")
        sink.wait_for_messages(20, timeout=WAIT)
        for msgid in acknowledged:
            self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)
        self.assertEqual(sorted(ids_received(sink)), sorted(acknowledged))
        for msgid in acknowledged:
            delivered = [line for line in self.lines_of(d, msgid)
                         if line.startswith("=> ")]
            self.assertEqual(len(delivered), 1, self.lines_of(d, msgid))
        self.assertIn("spool scan: 20 messages queued", d.log())
        self.assertEqual(d.log("panic"), "")

    def test_killed_after_one_domain_delivered(self):
        sink_a, sink_b = self.sinks_on_one_port(["127.0.0.5", "127.0.0.6"])
        sink_b.add_rule("rcpt", 451, times=None)
        d = self.relay_daemon(self.dns.settings() +
                              f"delivery_port = {sink_a.port}\n").start()
        recipients = ["one@a.test", "two@b.test"]
        msgid = self.send(d, "sender@origin.test", recipients,
                          compose(1, recipients, b"two domains\r\n"))

        self.wait_for_line(d, msgid, "=> one@a.test R=dnslookup "
                           "T=remote_smtp H=mx.a.test [127.0.0.5]")
        self.wait_for_line(d, msgid, "== two@b.test R=dnslookup "
                           "T=remote_smtp defer (-44) H=mx.b.test "
                           "[127.0.0.6]")
        d.kill()
        self.assertEqual(ids_received(sink_a), [msgid])
        self.assertEqual(sink_b.messages(), [])

        sink_b.clear_rules()
        # The restart queues the message at once.
        self.restart(d)
        got = sink_b.wait_for_messages(1, timeout=WAIT)
        self.assertEqual(received_id(got[0]["data"]), msgid)
        self.assertEqual(got[0]["rcpt_to"], ["two@b.test"])
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)

        self.assertEqual(ids_received(sink_a), [msgid])
        self.assertEqual(len(sink_b.messages()), 1)
        lines = self.lines_of(d, msgid)
        self.assertEqual(
            [line.split(" ")[1] for line in lines
             if line.startswith(("=> ", "-> "))],
            ["one@a.test", "two@b.test"], lines)

    def test_sigterm_with_sessions_and_delivery_running(self):
        sink = self.sink()
        # The first delivery gets no reply to DATA, so the sink never
        # receives its dot and the abandoned delivery must be repeated.
        sink.add_rule("data", action="stall", times=1)
        d = self.relay_daemon(f"smarthost = 127.0.0.1::{sink.port}\n").start()

        stalled = self.send(d, "sender@origin.test", ["stalled@a.example"],
                            compose(1, ["stalled@a.example"], b"stalls\r\n"))
        sluicetest.wait_for(
            lambda: any("DATA" in commands for commands in sink.sessions),
            WAIT, "the delivery to reach DATA")
        delivered = self.send(d, "sender@origin.test", ["first@a.example"],
                              compose(2, ["first@a.example"], b"goes\r\n"))
        self.wait_for_line(d, delivered, "Completed")

        # One session in a transaction, one in the middle of DATA.
        idle = self.client(d)
        idle.command(b"EHLO client.test")
        self.assertEqual(idle.command(b"MAIL FROM:<sender@origin.test>"),
                         b"250 OK\r\n")
        self.assertTrue(idle.command(b"RCPT TO:<idle@a.example>")
                        .startswith(b"250 "))
        busy = self.client(d)
        busy.command(b"EHLO client.test")
        busy.command(b"MAIL FROM:<sender@origin.test>")
        busy.command(b"RCPT TO:<late@a.example>")
        self.assertTrue(busy.command(b"DATA").startswith(b"354 "))
        busy.sock.sendall(compose(3, ["late@a.example"], b"late\r\n"))

        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(idle.reply(), SHUTDOWN_421)
        self.assertEqual(idle.reply(), b"")
        busy.sock.sendall(b".\r\n")
        reply = busy.reply()
        self.assertRegex(reply, rb"^250 OK id=" + ID.encode() + rb"\r\n$")
        late = reply[10:33].decode()
        self.assertEqual(busy.reply(), SHUTDOWN_421)

        # The stalled delivery keeps the daemon running until its drain
        # time (10 s) has passed on the fake clock. Then it is abandoned.
        self.assertIsNone(d.proc.poll())
        d.control("clock advance 11")
        d.proc.wait(sluicetest.STOP_TIMEOUT)
        self.assertEqual(d.proc.returncode, 0)
        self.assertIn("daemon stopped", d.log())
        self.assertEqual(ids_received(sink), [delivered])
        self.assertEqual(self.spool_input(d),
                         sorted([stalled + "-D", stalled + "-H",
                                 late + "-D", late + "-H"]))

        self.restart(d)
        sink.wait_for_messages(3, timeout=WAIT)
        for msgid in (stalled, late):
            self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)
        self.assertEqual(sorted(ids_received(sink)),
                         sorted([stalled, delivered, late]))
        self.assertEqual(d.log("panic"), "")


if __name__ == "__main__":
    sluicetest.main()

"""Bounces and retry times, end to end: a recipient that the sink
rejects, or that stays deferred past the final cutoff of its retry rule,
comes back to the sender as a multipart/report, which the test parses
with Python's email package. A failure of a null-sender message freezes
it instead, and the retry state of a deferred message survives a daemon
restart. A host that failed is not tried by the next message before its
retry time, also after a restart. Delay warnings go out at the
delay_warning times, and each message has its msglog file.
"""

import email
import email.policy
import os
import re
import smtplib

import sluicetest
from test_delivery import ID, WAIT, DeliveryTestCase, compose

SENDER = "alice@origin.test"


class BounceTest(DeliveryTestCase):

    def smarthost_daemon(self, sink, extra=""):
        return self.relay_daemon(
            f"smarthost = 127.0.0.1::{sink.port}\n" + extra).start()

    def bounce_id(self, d, msgid):
        """Wait for the "<=" line of the bounce of msgid; return its id."""
        pattern = re.compile(r"^\S+ \S+ (" + ID + r") <= <> R=" + msgid +
                             r" U=\S+ P=local S=\d+")

        def found():
            for line in d.log().splitlines():
                m = pattern.match(line)
                if m:
                    return m.group(1)
            return None
        return sluicetest.wait_for(found, WAIT, f"the bounce of {msgid}")

    def bounce_to(self, sink, count):
        """Wait for count messages at the sink; return the one whose MAIL
        FROM is <>, parsed, with its envelope."""
        got = sink.wait_for_messages(count, timeout=WAIT)
        bounces = [m for m in got if m["mail_from"] == ""]
        self.assertEqual(len(bounces), 1, got)
        parsed = email.message_from_bytes(bounces[0]["data"],
                                          policy=email.policy.default)
        return bounces[0], parsed

    def check_report_shape(self, bounce):
        self.assertEqual(bounce["From"],
                         "Mail Delivery System <Mailer-Daemon@sluice.test>")
        self.assertEqual(bounce["To"], SENDER)
        self.assertEqual(bounce["Auto-Submitted"], "auto-replied")
        self.assertEqual(bounce["Subject"],
                         "Mail delivery failed: returning message to sender")
        self.assertEqual(bounce.get_content_type(), "multipart/report")
        self.assertEqual(bounce.get_param("report-type"), "delivery-status")
        self.assertRegex(bounce.get_boundary(), r"^\d+-eximdsn-\d+$")
        parts = list(bounce.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status",
                          "message/rfc822"])
        return parts

    def test_rejected_recipient_bounced(self):
        sink = self.sink()
        sink.add_rule("rcpt", 550, times=None, match="bad@")
        d = self.smarthost_daemon(sink)
        recipients = ["good@a.example", "bad@a.example"]
        msgid = self.send(d, SENDER, recipients,
                          compose(1, recipients, b"one fails\r\n"))

        bounce_id = self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 2)
        self.assertEqual(envelope["rcpt_to"], [SENDER])
        self.wait_for_line(d, bounce_id, "Completed")
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)

        self.assertEqual(bounce["X-Failed-Recipients"], "bad@a.example")
        self.assertEqual(bounce["References"], "<m1@origin.test>")
        self.assertEqual(bounce["Message-Id"],
                         f"<E{bounce_id}@sluice.test>")
        parts = self.check_report_shape(bounce)

        text = parts[0].get_content().replace("\r\n", "\n")
        self.assertIn("could not be delivered to one or more of its\n"
                      "recipients. This is a permanent error.", text)
        self.assertIn("  bad@a.example\n"
                      "    host 127.0.0.1 [127.0.0.1]\n"
                      "    SMTP error from remote mail server after "
                      "RCPT TO:<bad@a.example>:\n"
                      "    550 5.1.1 Rejected\n", text)
        self.assertNotIn("good@a.example", text)

        # message/delivery-status: per-message fields, then one block
        # per recipient (RFC 3464 section 2.1).
        blocks = parts[1].get_payload()
        self.assertEqual(len(blocks), 2)
        self.assertEqual(blocks[0]["Reporting-MTA"], "dns; sluice.test")
        self.assertEqual(blocks[1]["Action"], "failed")
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822;bad@a.example")
        self.assertEqual(blocks[1]["Status"], "5.0.0")
        self.assertEqual(blocks[1]["Remote-MTA"], "dns; 127.0.0.1")
        self.assertEqual(blocks[1]["Diagnostic-Code"],
                         "smtp; 550 5.1.1 Rejected")

        returned = parts[2].get_payload()[0]
        self.assertEqual(returned["Return-path"], f"<{SENDER}>")
        self.assertEqual(returned["Subject"], "message 1")
        self.assertEqual(returned.get_content().replace("\r\n", "\n"),
                         "one fails\n")
        self.assertEqual(d.log("panic"), "")

    def test_null_sender_failure_is_frozen(self):
        sink = self.sink()
        sink.add_rule("rcpt", 550, times=None, match="bad@")
        d = self.smarthost_daemon(sink)
        msgid = self.send(d, "", ["bad@a.example"],
                          compose(1, ["bad@a.example"], b"a bounce\r\n"))

        self.wait_for_line(d, msgid, "Frozen (delivery error message)")
        lines = self.lines_of(d, msgid)
        self.assertTrue(lines[-2].startswith("** bad@a.example "), lines)
        self.assertEqual(lines[-1], "Frozen (delivery error message)")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)
        self.assertEqual(sink.messages(), [])
        self.assertEqual(d.log().count(" <= "), 1)

        # The recipient is still undelivered, and the queue shows the
        # message frozen.
        listing = d.run("-bp").stdout.decode()
        self.assertIn("*** frozen ***", listing)
        self.assertIn("bad@a.example", listing)
        self.assertNotIn("D bad@a.example", listing)

    def test_frozen_bounce_discarded_later(self):
        sink = self.sink()
        sink.add_rule("rcpt", 550, times=None, match="bad@")
        d = self.smarthost_daemon(sink, "ignore_bounce_errors_after = 2h\n")
        msgid = self.send(d, "", ["bad@a.example"],
                          compose(1, ["bad@a.example"], b"a bounce\r\n"))
        self.wait_for_line(d, msgid, "Frozen (delivery error message)")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)

        d.control("clock advance 7199")
        self.assertEqual(self.lines_of(d, msgid)[-1],
                         "Frozen (delivery error message)")
        d.control("clock advance 1")
        self.wait_for_line(d, msgid, "Completed")
        lines = self.lines_of(d, msgid)
        self.assertEqual(lines[3], "Unfrozen by errmsg timer", lines)
        self.assertTrue(lines[4].startswith("** bad@a.example "), lines)
        self.assertEqual(lines[5:], ["bad@a.example: error ignored",
                                     "Completed"])
        self.wait_for_empty_spool(d)
        self.assertEqual(sink.messages(), [])

    def test_timeout_frozen_after_cancels(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=None, match="rcpt@a.example")
        d = self.smarthost_daemon(sink, "timeout_frozen_after = 1h\n")
        msgid = self.send(d, SENDER, ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"frozen\r\n"))
        self.wait_for_line(d, msgid, "== rcpt@a.example ")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)
        result = d.run("-Mf", msgid)
        self.assertEqual(result.returncode, 0, result)

        d.control("clock advance 3600")
        self.wait_for_line(d, msgid, "Completed")
        lines = self.lines_of(d, msgid)
        self.assertIn("cancelled by timeout_frozen_after", lines)
        self.assertIn("** rcpt@a.example: delivery cancelled; message "
                      "timed out", lines)
        bounce_id = self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 1)
        parts = self.check_report_shape(bounce)
        self.assertIn("    delivery cancelled; message timed out\n",
                      parts[0].get_content().replace("\r\n", "\n"))
        self.wait_for_line(d, bounce_id, "Completed")
        self.wait_for_empty_spool(d)

    def test_no_bounce_when_all_delivered(self):
        sink = self.sink()
        d = self.smarthost_daemon(sink)
        msgid = self.send(d, SENDER, ["good@a.example"],
                          compose(1, ["good@a.example"], b"fine\r\n"))
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)
        self.assertEqual(len(sink.messages()), 1)
        self.assertNotIn("<= <>", d.log())

    def test_retry_cutoff_bounces(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=None, match="rcpt@a.example")
        d = self.smarthost_daemon(sink, "begin retry\n* * F,1h,20m\n")
        msgid = self.send(d, SENDER, ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"late\r\n"))

        # Deferred at 0, 20 and 40 minutes; the attempt at 60 minutes
        # reaches the cutoff, so its 451 is a failure.
        for attempt in (1, 2, 3):
            self.wait_for_line(d, msgid, "== rcpt@a.example ", attempt)
            self.wait_for_queued(d, msgid)
            self.wait_idle(d)
            d.control("clock advance 1200")
        failed = self.wait_for_line(d, msgid, "** rcpt@a.example ")
        self.assertRegex(failed[0], r"^\*\* rcpt@a\.example R=smarthost "
                         r"T=remote_smtp H=127\.0\.0\.1 \[127\.0\.0\.1\]")
        self.assertTrue(failed[0].endswith(
            ": 451 4.3.0 Temporary failure, try again later: retry timeout "
            "exceeded"), failed)
        self.wait_for_line(d, msgid, "Completed")
        lines = self.lines_of(d, msgid)
        self.assertEqual(len(lines), 6, lines)

        bounce_id = self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 1)
        parts = self.check_report_shape(bounce)
        self.assertIn("  rcpt@a.example\n"
                      "    host 127.0.0.1 [127.0.0.1]\n"
                      "    SMTP error from remote mail server after "
                      "RCPT TO:<rcpt@a.example>:\n"
                      "    451 4.3.0 Temporary failure, try again later: "
                      "retry timeout exceeded\n",
                      parts[0].get_content().replace("\r\n", "\n"))
        blocks = parts[1].get_payload()
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822;rcpt@a.example")
        self.assertEqual(blocks[1]["Diagnostic-Code"],
                         "smtp; 451 4.3.0 Temporary failure, try again later")
        self.wait_for_line(d, bounce_id, "Completed")
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)

    def test_give_up_bounces_and_removes(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=None, match="rcpt@a.example")
        d = self.smarthost_daemon(sink)
        msgid = self.send(d, SENDER, ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"given up\r\n"))
        self.wait_for_line(d, msgid, "== rcpt@a.example ")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)

        result = d.run("-Mg", msgid)
        self.assertEqual(result.returncode, 0, result)
        self.wait_for_line(d, msgid, "Completed")
        lines = self.lines_of(d, msgid)
        self.assertIn("** rcpt@a.example: delivery cancelled by "
                      "administrator", lines)
        bounce_id = self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 1)
        parts = self.check_report_shape(bounce)
        self.assertIn("  rcpt@a.example\n"
                      "    delivery cancelled by administrator\n",
                      parts[0].get_content().replace("\r\n", "\n"))
        self.wait_for_line(d, bounce_id, "Completed")
        self.wait_for_empty_spool(d)

    def test_retry_state_survives_restart(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=None, match="rcpt@a.example")
        d = self.smarthost_daemon(sink, "begin retry\n* * F,1h,20m\n")
        msgid = self.send(d, SENDER, ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"late\r\n"))
        self.wait_for_line(d, msgid, "== rcpt@a.example ")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)
        with open(os.path.join(d.spool, "input", msgid + "-H")) as f:
            self.assertIn("sluice_retry", f.read())
        self.assertEqual(d.stop(), 0)

        # An hour later by the clock, the first failure is an hour old:
        # the next failure is past the cutoff.
        os.environ["SLUICE_TEST_CLOCK_OFFSET"] = "3600"
        try:
            d.start()
        finally:
            del os.environ["SLUICE_TEST_CLOCK_OFFSET"]
        failed = self.wait_for_line(d, msgid, "** rcpt@a.example ")
        self.assertTrue(failed[0].endswith(": retry timeout exceeded"),
                        failed)
        self.assertEqual(
            [line for line in self.lines_of(d, msgid) if line[:3] == "== "],
            self.lines_of(d, msgid)[1:2])
        self.bounce_id(d, msgid)
        self.wait_for_line(d, msgid, "Completed")


    def test_host_retry_shared_by_messages(self):
        sink = self.sink()
        sink.add_rule("connect", 421, times=None)
        d = self.smarthost_daemon(sink)
        first = self.send(d, SENDER, ["one@a.example"],
                          compose(1, ["one@a.example"], b"first\r\n"))
        self.wait_for_line(d, first, "== one@a.example ")
        self.wait_idle(d)
        self.assertEqual(sink.connections, 1)

        # The second message finds the host before its retry time.
        second = self.send(d, SENDER, ["two@a.example"],
                           compose(2, ["two@a.example"], b"second\r\n"))
        defer = self.wait_for_line(d, second, "== two@a.example ")
        self.assertEqual(defer[0], "== two@a.example R=smarthost "
                         "T=remote_smtp defer (-54): retry time not reached "
                         "for any host for 'a.example'")
        self.wait_idle(d)
        self.assertEqual(sink.connections, 1)

        # The time is kept in the hints file and read after a restart.
        self.assertEqual(d.stop(), 0)
        self.assertTrue(os.path.exists(
            os.path.join(d.spool, "hints", "retry-state.db")))
        d.start()
        third = self.send(d, SENDER, ["three@a.example"],
                          compose(3, ["three@a.example"], b"third\r\n"))
        self.wait_for_line(d, third, "== three@a.example ")
        self.assertIn("defer (-54)", self.lines_of(d, third)[1])
        self.wait_idle(d)
        self.assertEqual(sink.connections, 1)

        # At the retry time (15 minutes, no retry rules) the host is
        # tried again, and once it answers the messages go.
        sink.clear_rules()
        d.control("clock advance 900")
        for msgid in (first, second, third):
            self.wait_for_line(d, msgid, "Completed")
        self.assertEqual(len(sink.wait_for_messages(3, timeout=WAIT)), 3)


    def read_header_file(self, d, msgid):
        with open(os.path.join(d.spool, "input", msgid + "-H")) as f:
            return f.read().splitlines()

    def test_delay_warning_at_configured_times(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=None, match="@a.example")
        d = self.smarthost_daemon(sink, "delay_warning = 30m:45m\n")
        msgid = self.send(d, SENDER, ["late@a.example"],
                          compose(1, ["late@a.example"], b"slow\r\n"))
        # A list message and a null-sender one get no warning.
        listed = compose(2, ["list@a.example"], b"list\r\n").replace(
            b"Subject:", b"Precedence: bulk\r\nSubject:")
        list_id = self.send(d, SENDER, ["list@a.example"], listed)
        null_id = self.send(d, "", ["null@a.example"],
                            compose(3, ["null@a.example"], b"null\r\n"))

        # Attempts every 15 minutes (no retry rules): the one at 30
        # minutes sends the first warning, the one at 45 the second, and
        # from then on one every 15 minutes (the last gap repeats).
        for attempt in (1, 2):
            self.wait_for_line(d, msgid, "== late@a.example ", attempt)
            self.wait_idle(d)
            self.assertNotIn("<= <> R=", d.log())
            d.control("clock advance 900")
        self.wait_for_line(d, msgid, "== late@a.example ", 3)
        warning_id = self.bounce_id(d, msgid)
        envelope, warning = self.bounce_to(sink, 1)
        self.assertEqual(envelope["rcpt_to"], [SENDER])
        self.assertEqual(warning["Subject"],
                         f"Warning: message {msgid} delayed 30 minutes")
        self.assertEqual(warning["From"],
                         "Mail Delivery System <Mailer-Daemon@sluice.test>")
        self.assertEqual(warning["Auto-Submitted"], "auto-replied")
        self.assertEqual(warning.get_content_type(), "multipart/report")
        parts = list(warning.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        text = parts[0].get_content().replace("\r\n", "\n")
        self.assertIn("has not yet been delivered to one or more of its\n"
                      "recipients after more than 30 minutes on the queue "
                      "on sluice.test.", text)
        self.assertIn(f"The message identifier is:     {msgid}\n", text)
        self.assertIn("The subject of the message is: message 1\n", text)
        self.assertIn("  late@a.example\n    Delay reason: SMTP error from "
                      "remote mail server after RCPT TO:<late@a.example>: "
                      "451 4.3.0 Temporary failure, try again later\n", text)
        blocks = parts[1].get_payload()
        self.assertEqual(blocks[1]["Action"], "delayed")
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822;late@a.example")
        self.assertEqual(blocks[1]["Status"], "4.0.0")
        self.wait_for_line(d, warning_id, "Completed")
        self.wait_idle(d)
        self.assertEqual(self.read_header_file(d, msgid)[3].split()[1], "1")

        d.control("clock advance 900")
        self.wait_for_line(d, msgid, "== late@a.example ", 4)
        sluicetest.wait_for(lambda: len(sink.messages()) == 2, WAIT,
                            "the second warning")
        second = email.message_from_bytes(sink.messages()[1]["data"],
                                          policy=email.policy.default)
        self.assertEqual(second["Subject"],
                         f"Warning: message {msgid} delayed 45 minutes")
        self.wait_idle(d)
        for other in (list_id, null_id):
            self.assertNotIn(f"R={other}", d.log())


    def test_msglog_follows_message(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=1, match="rcpt@a.example")
        d = self.smarthost_daemon(sink)
        msgid = self.send(d, SENDER, ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"logged\r\n"))
        self.wait_for_line(d, msgid, "== rcpt@a.example ")
        self.wait_for_queued(d, msgid)
        self.wait_idle(d)

        path = os.path.join(d.spool, "msglog", msgid)
        with open(path) as f:
            lines = f.read().splitlines()
        stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], stamp + r"Received from alice@origin\.test "
                         r"H=\(client\.test\) \[127\.0\.0\.1\] P=esmtp S=\d+")
        self.assertRegex(lines[1], stamp + r"rcpt@a\.example R=smarthost "
                         r"T=remote_smtp defer \(-44\) H=127\.0\.0\.1 ")
        shown = d.run("-Mvl", msgid)
        self.assertEqual(shown.returncode, 0, shown)
        self.assertEqual(shown.stdout.decode().splitlines(), lines)

        d.control("clock advance 900")
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)
        self.assertFalse(os.path.exists(path))


    def send_dsn(self, d, rcpt, notify, mail_options=("RET=HDRS",
                                                      "ENVID=env42")):
        """Send one message with DSN parameters; return its id."""
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test",
                          timeout=30) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("dsn"), s.esmtp_features)
            code, reply = s.mail(SENDER, list(mail_options))
            self.assertEqual(code, 250, reply)
            code, reply = s.rcpt(rcpt, [f"NOTIFY={notify}"])
            self.assertEqual(code, 250, reply)
            code, reply = s.data(compose(1, [rcpt], b"dsn\r\n"))
            self.assertEqual(code, 250, reply)
        return re.search(ID, reply.decode()).group(0)

    def test_success_notice_when_next_hop_lacks_dsn(self):
        sink = self.sink(dsn=False)
        d = self.smarthost_daemon(sink, "dsn_advertise_hosts = *\n")
        msgid = self.send_dsn(d, "ok@a.example", "SUCCESS,FAILURE")

        notice_id = self.bounce_id(d, msgid)
        envelope, notice = self.bounce_to(sink, 2)
        self.assertEqual(envelope["rcpt_to"], [SENDER])
        self.assertEqual(notice["Subject"], "Delivery Status Notification")
        self.assertEqual(notice.get_content_type(), "multipart/report")
        parts = list(notice.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        blocks = parts[1].get_payload()
        self.assertEqual(blocks[0]["Original-Envelope-Id"], "env42")
        self.assertEqual(blocks[1]["Action"], "relayed")
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822;ok@a.example")
        self.assertEqual(blocks[1]["Status"], "2.0.0")
        self.assertEqual(blocks[1]["Remote-MTA"], "dns; 127.0.0.1")
        self.wait_for_line(d, notice_id, "Completed")
        self.wait_for_line(d, msgid, "Completed")

    def test_notify_passed_to_dsn_server(self):
        sink = self.sink(dsn=True)
        d = self.smarthost_daemon(sink, "dsn_advertise_hosts = *\n")
        msgid = self.send_dsn(d, "ok@a.example", "SUCCESS")
        self.wait_for_line(d, msgid, "Completed")
        got = sink.wait_for_messages(1, timeout=WAIT)
        self.assertIn("RET=HDRS", got[0]["mail_params"])
        self.assertIn("ENVID=env42", got[0]["mail_params"])
        self.assertIn("NOTIFY=SUCCESS", got[0]["rcpt_params"][0])
        # That server reports delivery itself, so sluice sends nothing.
        self.wait_idle(d)
        self.assertNotIn(" R=" + msgid, d.log())
        self.assertEqual(len(sink.messages()), 1)

    def test_notify_never_gets_no_bounce(self):
        sink = self.sink()
        sink.add_rule("rcpt", 550, times=None, match="bad@")
        d = self.smarthost_daemon(sink, "dsn_advertise_hosts = *\n")
        msgid = self.send_dsn(d, "bad@a.example", "NEVER")
        self.wait_for_line(d, msgid, "Completed")
        self.wait_for_empty_spool(d)
        self.assertNotIn(" R=" + msgid, d.log())
        self.assertEqual(sink.messages(), [])

    def test_ret_hdrs_bounce_returns_header(self):
        sink = self.sink()
        sink.add_rule("rcpt", 550, times=None, match="bad@")
        d = self.smarthost_daemon(sink, "dsn_advertise_hosts = *\n")
        msgid = self.send_dsn(d, "bad@a.example", "FAILURE")
        self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 1)
        parts = list(bounce.iter_parts())
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn("dsn", parts[2].get_content())
        self.assertIn("Subject: message 1", parts[2].get_content())


    def test_mail_loop_bounced(self):
        sink = self.sink()
        d = self.smarthost_daemon(sink, "received_headers_max = 5\n")
        hops = b"".join(b"Received: from hop%d.test by next.test; "
                        b"Mon, 02 Mar 2026 10:00:00 +0000\n" % i
                        for i in range(5))
        message = hops + b"Subject: looping\n\nround and round\n"
        # A local submission is not counted at reception; with the
        # Received: field sluice adds, it has six.
        result = d.run("-f", SENDER, "rcpt@a.example", input=message)
        self.assertEqual(result.returncode, 0, result)
        failed = sluicetest.wait_for(
            lambda: [line for line in d.log().splitlines()
                     if "** rcpt@a.example" in line], WAIT, "the failure")
        self.assertTrue(failed[0].endswith(
            '** rcpt@a.example: Too many "Received" headers - suspected '
            'mail loop'), failed)
        msgid = failed[0].split()[2]
        self.bounce_id(d, msgid)
        envelope, bounce = self.bounce_to(sink, 1)
        self.assertEqual(bounce["X-Failed-Recipients"], "rcpt@a.example")
        self.wait_for_line(d, msgid, "Completed")


if __name__ == "__main__":
    sluicetest.main()

"""sluice -brt finds and prints retry rules as Exim's -brt does.

The expected lines were printed by Debian 12's Exim 4.96 for the same
rules. When the tests run as root and Exim can be prepared (see
exim_debian.py), the queries also run against Exim itself and the two
outputs must match byte for byte. The warning for a key without "@" or
"." and the error messages are sluice's own wording, so those queries
compare only the exit status.

The queue spaces the attempts of a deferred message by the rule for its
domain, on the fake clock.
"""

import os
import shutil
import tempfile
import unittest

import sluicetest
from exim_debian import Exim, EximUnavailable
from test_delivery import RELAY, WAIT, DeliveryTestCase, compose

RULES = """\
begin retry
*.example.com   rcpt_4xx   F,1h,10m
^a.*@b\\.org     timeout_connect_MX   G,8h,15m,1.5; F,2d,1h
*@x.org          quota_3d  H,4d,1m,2
q.org            quota  G,90m,1m,2.25
alice@*.r.org    *  F,1h,1m
*.t.org          timeout  F,1h,2m
*.tc.org         timeout_connect  F,1h,3m
*.rf.org         refused  F,1h,6m
*.rm.org         refused_MX  F,1h,7m
*.mc.org         mail_452  F,100s,11m
x.example.net    *   senders=*@a.b  F,1d,5m
*                auth_failed  F,1h,1m
*   *  F,2h,15m; G,16h,1h,1.5; F,4d,6h
"""

DEFAULT = "Retry rule: *  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h; \n"

# (arguments, stdout of Exim 4.96)
QUERIES = [
    (["a.example.com"], DEFAULT),
    (["a.example.com", "rcpt_452"],
     "Retry rule: *.example.com  *  F,1h,10m; \n"),
    (["ab@b.org", "timeout_connect_MX"],
     "Retry rule: ^a.*@b\\.org  timeout_connect_MX  G,8h,15m,1.5; "
     "F,2d,1h; \n"),
    (["ab@b.org", "timeout"], DEFAULT),
    (["u@x.org", "quota_4d"], "Retry rule: *@x.org  quota_3d  H,4d,1m; \n"),
    (["u@x.org", "quota_1d"], DEFAULT),
    (["q.org", "quota_1d"],
     "Retry rule: q.org  quota  G,1h30m,1m,2.25; \n"),
    (["alice@a.r.org"], "Retry rule: alice@*.r.org  *  F,1h,1m; \n"),
    (["bob@a.r.org"], DEFAULT),
    (["a.t.org", "timeout_connect_A"],
     "Retry rule: *.t.org  timeout  F,1h,2m; \n"),
    (["a.tc.org", "timeout_MX"], DEFAULT),
    (["a.rf.org", "refused_A"], "Retry rule: *.rf.org  refused  F,1h,6m; \n"),
    (["a.rm.org", "refused"], DEFAULT),
    (["a.mc.org", "mail_452"], "Retry rule: *.mc.org  *  F,1m40s,11m; \n"),
    (["a.mc.org", "mail_4xx"], DEFAULT),
    (["x.example.net"], DEFAULT),
    (["mx.host", "y.example.com", "rcpt_4xx"],
     "Retry rule: *.example.com  *  F,1h,10m; \n"),
    (["a.b", "auth_failed"], "Retry rule: *  auth_failed  F,1h,1m; \n"),
]

# (arguments, exit status); the output is sluice's own wording.
OWN_WORDING = [
    (["foo"], 0),
    (["a.b", "bogus"], 1),
    (["a.b", "rcpt_4x"], 1),
    (["a.b", "quota_x"], 1),
]


class RetryRuleTest(sluicetest.DaemonTestCase):

    def test_brt_matches_recorded_exim_output(self):
        d = self.daemon(settings=RULES)
        for args, expected in QUERIES:
            with self.subTest(args=args):
                result = d.run("-brt", *args)
                self.assertEqual(result.returncode, 0, result.stdout)
                self.assertEqual(result.stdout.decode(), expected)

    def test_brt_warning_and_errors(self):
        d = self.daemon(settings=RULES)
        for args, status in OWN_WORDING:
            with self.subTest(args=args):
                result = d.run("-brt", *args)
                self.assertEqual(result.returncode, status, result.stdout)
        result = d.run("-brt", "foo")
        self.assertIn('"foo"', result.stdout.decode())
        self.assertTrue(result.stdout.decode().endswith(DEFAULT))
        result = d.run("-brt")
        self.assertEqual(result.returncode, 1)

    def test_brt_without_rules(self):
        d = self.daemon()
        result = d.run("-brt", "example.com")
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout.decode(),
                         "No retry information found\n")

    def test_brt_invalid_rule(self):
        d = self.daemon(settings="begin retry\n* * F,1h\n")
        result = d.run("-brt", "example.com")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{d.config} line {d.settings_line + 1}",
                      result.stdout.decode())


class RetryRuleEximTest(unittest.TestCase):
    """The same queries against Debian's Exim 4.96, when it can run."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to run Exim in a sandbox")
        cache = os.path.join(sluicetest.BUILDDIR or tempfile.gettempdir(),
                             "exim-debs")
        try:
            cls.exim = Exim.prepare(cache)
        except EximUnavailable as e:
            raise unittest.SkipTest(f"Debian's Exim is not available: {e}")
        cls.addClassCleanup(cls.exim.cleanup)
        cls.dir = tempfile.mkdtemp(prefix="sluice-retry-exim-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        os.makedirs(os.path.join(cls.dir, "spool"))
        cls.config = cls.exim.write_config(
            os.path.join(cls.dir, "exim.conf"),
            os.path.join(cls.dir, "spool"), cls.dir)
        with open(cls.config, "a") as f:
            f.write(RULES)

    def test_same_output_as_exim(self):
        d = sluicetest.Daemon(settings=RULES)
        self.addCleanup(d.cleanup)
        for args, _ in QUERIES:
            with self.subTest(args=args):
                ours = d.run("-brt", *args)
                theirs = self.exim.exim(self.config, "-brt", *args)
                self.assertEqual(ours.stdout.decode(), theirs.stdout)
        for args, status in OWN_WORDING:
            with self.subTest(args=args):
                theirs = self.exim.exim(self.config, "-brt", *args)
                self.assertEqual(theirs.returncode, status, theirs.stdout)


class RetryScheduleTest(DeliveryTestCase):

    def advance(self, d, seconds):
        """Move the fake clock seconds ahead in two steps, checking that
        no attempt starts a second early and that one starts on time."""
        self.wait_idle(d)
        before = self.attempt_activity(d)
        d.control(f"clock advance {seconds - 1}")
        self.assertEqual(self.attempt_activity(d), before,
                         f"an attempt started before {seconds} s")
        d.control("clock advance 1")
        # An attempt waits for the -H rewrite of the last one, if that is
        # still on its way to disk, so wait for it to start.
        sluicetest.wait_for(lambda: self.attempt_activity(d) > before, WAIT,
                            f"an attempt to start after {seconds} s")

    def test_deferrals_follow_f_then_g(self):
        sink = self.sink()
        sink.add_rule("rcpt", 451, times=4)
        d = self.relay_daemon(
            f"smarthost = 127.0.0.1::{sink.port}\n"
            "begin retry\n"
            "*.example * F,1h,20m; G,1d,30m,2\n").start()
        msgid = self.send(d, "sender@origin.test", ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"retried\r\n"))

        # Three 20-minute gaps reach the F cutoff at one hour; then G
        # doubles the last gap: 40 minutes.
        for attempt, gap in enumerate((1200, 1200, 1200, 2400), start=1):
            self.wait_for_line(d, msgid, "== rcpt@a.example ", attempt)
            self.wait_for_queued(d, msgid)
            self.advance(d, gap)
        got = sink.wait_for_messages(1, timeout=WAIT)
        self.assertEqual(len(got), 1)
        self.wait_for_line(d, msgid, "Completed")
        self.assertEqual(d.log("panic"), "")

    def check_first_gap(self, phase, gap):
        sink = self.sink()
        sink.add_rule(phase, 451, times=1)
        d = self.relay_daemon(
            f"smarthost = 127.0.0.1::{sink.port}\n"
            "begin retry\n"
            "*.example rcpt_45x F,1h,10m\n"
            "*.example data_4xx F,1h,5m\n"
            "* * F,1h,20m\n").start()
        msgid = self.send(d, "sender@origin.test", ["rcpt@a.example"],
                          compose(1, ["rcpt@a.example"], b"retried\r\n"))
        self.wait_for_line(d, msgid, "== rcpt@a.example ")
        self.wait_for_queued(d, msgid)
        self.advance(d, gap)
        sink.wait_for_messages(1, timeout=WAIT)
        self.wait_for_line(d, msgid, "Completed")

    def test_rcpt_4xx_rule_applies(self):
        self.check_first_gap("rcpt", 600)

    def test_data_4xx_rule_applies(self):
        self.check_first_gap("dot", 300)

    def test_mail_4xx_takes_catch_all(self):
        self.check_first_gap("mail", 1200)


if __name__ == "__main__":
    unittest.main()

"""The shared policy tables in the real daemon: a policy counts
recipients per domain, and the counts carry over a SIGHUP reload, a
clean restart and, up to the last timed save, a kill -9. Suppressed
recipients get 550 at RCPT, also after a restart, and -bpt prints the
saved tables.
"""

import os
import re
import signal
import smtplib

import sluicetest

# Seconds a test waits for something before it fails; a bound on a
# failing test, not a speed assertion.
WAIT = 30.0

COUNT_POLICY = """
sluice.on("rcpt", function(tx, rcpt)
  local domain = rcpt:match("@(.+)$") or "none"
  local n = sluice.counters:incr("rcpt:" .. domain)
  sluice.log("info", string.format("count %s %d", domain, n))
end)
"""


class PolicyTablesTest(sluicetest.DaemonTestCase):

    def count_daemon(self):
        d = self.daemon(settings="lua_policy = policy.lua\n"
                        "hostlist relay_from_hosts = 127.0.0.1\n")
        with open(os.path.join(d.dir, "policy.lua"), "w") as f:
            f.write(COUNT_POLICY)
        return d

    def send(self, d, rcpt):
        with smtplib.SMTP("127.0.0.1", d.port, timeout=WAIT) as client:
            client.ehlo("client.example")
            client.sendmail("alice@example.org", [rcpt],
                            b"Subject: count\r\n\r\nHello.\r\n")

    def counts(self, d, domain):
        return [int(n) for n in
                re.findall(rf"count {re.escape(domain)} (\d+)", d.log())]

    def wait_count(self, d, domain, n):
        sluicetest.wait_for(lambda: n in self.counts(d, domain), WAIT,
                            f"count {domain} {n} in mainlog")

    def test_counts_survive_reload_and_restart(self):
        d = self.count_daemon().start()
        self.send(d, "bob@one.test")
        self.send(d, "carol@one.test")
        self.send(d, "dave@two.test")
        self.wait_count(d, "one.test", 2)

        d.proc.send_signal(signal.SIGHUP)
        sluicetest.wait_for(
            lambda: "configuration and policy reloaded" in d.log(), WAIT,
            "the reload")
        self.send(d, "erin@one.test")
        self.wait_count(d, "one.test", 3)

        self.assertEqual(d.stop(), 0)
        self.assertTrue(os.path.exists(
            os.path.join(d.spool, "hints", "counters.db")))
        result = d.run("-bpt", "counters")
        self.assertEqual(result.returncode, 0, result.stderr)
        # today= would be 0 if the test crossed midnight UTC, so only
        # the totals are checked.
        text = result.stdout.decode()
        self.assertRegex(text, r"(?m)^rcpt:one\.test total=3 today=\d+ ")
        self.assertRegex(text, r"(?m)^rcpt:two\.test total=1 today=\d+ ")
        result = d.run("-bpt", "nosuch")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"unknown table \"nosuch\"", result.stderr)
        d.start()
        self.send(d, "frank@one.test")
        self.send(d, "grace@two.test")
        self.wait_count(d, "one.test", 4)
        self.wait_count(d, "two.test", 2)

    def test_timed_save_survives_kill(self):
        d = self.count_daemon().start()
        self.send(d, "bob@three.test")
        self.wait_count(d, "three.test", 1)
        path = os.path.join(d.spool, "hints", "counters.db")
        # The tables are saved once a minute of the daemon's clock.
        d.control("clock advance 61")
        sluicetest.wait_for(lambda: os.path.exists(path), WAIT,
                            "the timed save")
        d.kill()
        d.start()
        self.send(d, "carol@three.test")
        self.wait_count(d, "three.test", 2)

    def test_suppressed_recipient_gets_550(self):
        d = self.count_daemon()
        with open(os.path.join(d.dir, "policy.lua"), "a") as f:
            f.write('sluice.suppress:add("gone@one.test", "recipient '
                    'unsubscribed")\n'
                    'sluice.suppress:add("blocked.test", "domain '
                    'blocked")\n')
        d.start()
        for rcpt, reason in (("gone@one.test", "recipient unsubscribed"),
                             ("GONE@ONE.TEST", "recipient unsubscribed"),
                             ("x@blocked.test", "domain blocked")):
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as raised:
                self.send(d, rcpt)
            code, text = raised.exception.recipients[rcpt]
            self.assertEqual(code, 550)
            self.assertEqual(text.decode(), reason)
        self.assertRegex(d.log("reject"),
                         r"rejected RCPT <gone@one\.test>: recipient "
                         r"unsubscribed")
        # The rcpt handler never ran for them.
        self.assertEqual(self.counts(d, "one.test"), [])

        # Saved at shutdown, the suppressions outlive the policy lines
        # that added them.
        self.assertEqual(d.stop(), 0)
        result = d.run("-bpt", "suppress")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("gone@one.test expires=never reason=recipient "
                      "unsubscribed", result.stdout.decode().splitlines())
        with open(os.path.join(d.dir, "policy.lua"), "w") as f:
            f.write(COUNT_POLICY)
        d.start()
        with self.assertRaises(smtplib.SMTPRecipientsRefused):
            self.send(d, "gone@one.test")
        self.send(d, "here@one.test")
        self.wait_count(d, "one.test", 1)

    def test_eviction_count_saved_and_bh_reads_tables(self):
        # 150 fillers and one count per message in a table of 100.
        d = self.daemon(settings="lua_policy = policy.lua\n"
                        "policy_table_max_entries = 100\n"
                        "hostlist relay_from_hosts = 127.0.0.1\n")
        with open(os.path.join(d.dir, "policy.lua"), "w") as f:
            f.write("""
sluice.on("rcpt", function(tx, rcpt)
  for i = 1, 150 do sluice.counters:incr("fill:" .. i) end
  local n = sluice.counters:incr("rcpt:" .. rcpt:match("@(.+)$"))
  sluice.log("info", string.format("count %s %d", rcpt:match("@(.+)$"), n))
end)
sluice.on("mail", function(tx, sender)
  if sender == "ask@example.org" then
    sluice.counters:incr("bh:touched")
    return "reject", 550, "seen " .. sluice.counters:get("rcpt:one.test")
  end
end)
""")
        d.start()
        self.send(d, "bob@one.test")
        self.wait_count(d, "one.test", 1)
        self.assertEqual(d.stop(), 0)
        result = d.run("-bpt", "counters")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.decode().splitlines()
        self.assertEqual(lines[-1], "# evicted=51")
        self.assertEqual(len(lines), 101)

        # The count carries over a restart and its save.
        d.start()
        self.assertEqual(d.stop(), 0)
        result = d.run("-bpt", "counters")
        self.assertEqual(result.stdout.decode().splitlines()[-1],
                         "# evicted=51")

        # -bh reads the saved count and saves nothing it changes.
        result = d.run("-bh", "192.0.2.7", input=(
            b"EHLO client.example\r\nMAIL FROM:<ask@example.org>\r\n"
            b"QUIT\r\n"))
        self.assertIn(b"550 seen 1\r\n", result.stdout)
        result = d.run("-bpt", "counters")
        self.assertNotIn(b"bh:touched", result.stdout)
        self.assertRegex(result.stdout.decode(),
                         r"(?m)^rcpt:one\.test total=1 ")

    def test_file_of_another_layout_is_reported(self):
        d = self.count_daemon()
        # A test build saves with the record layout this variable names,
        # as a build with a changed layout would.
        os.environ["SLUICE_TEST_TABLE_LAYOUT"] = "7"
        try:
            d.start()
        finally:
            del os.environ["SLUICE_TEST_TABLE_LAYOUT"]
        self.send(d, "bob@one.test")
        self.wait_count(d, "one.test", 1)
        self.assertEqual(d.stop(), 0)

        result = d.run("-bpt", "counters")
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr.decode(),
                         r"^sluice: -bpt: \S+/hints/counters\.db was "
                         r"written with record layout 7 \(\d+-byte values\), "
                         r"but this build reads record layout 1 "
                         r"\(\d+-byte values\), so its 1 entries cannot "
                         r"be read\n$")
        d.start()
        sluicetest.wait_for(
            lambda: "policy table counters not loaded, starting empty: "
            in d.log(), WAIT, "the layout report in mainlog")
        self.assertIn("record layout 7", d.log())
        self.send(d, "carol@one.test")
        self.wait_count(d, "one.test", 1)
        self.assertEqual(self.counts(d, "one.test"), [1, 1])


if __name__ == "__main__":
    sluicetest.main()

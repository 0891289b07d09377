"""The Lua policy against the real daemon: verdicts at MAIL, a message
classified and given a header that the sink receives, failing and
runaway handlers, stale objects, SIGHUP reloads and -bh traces.

Every policy is written into the daemon's temporary folder. Clients use
smtplib; the sink is tests/e2e/sink.py on loopback.
"""

import glob
import os
import re
import signal
import smtplib
import tempfile
import shutil

import sluicetest
from sink import Sink

ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"

# Seconds a test waits for something before it fails; a bound on a
# failing test, not a speed assertion.
WAIT = 30.0

MESSAGE = (b"From: alice@example.org\r\nTo: bob@outside.test\r\n"
           b"Subject: spring offers\r\n\r\nHello.\r\n")

CLASSIFY_POLICY = """
sluice.on("mail", function(tx, sender)
  if sender == "blocked@example.org" then
    return "reject", 550, "sender blocked by policy"
  end
end)
sluice.on("message", function(msg)
  local subject = msg:header("Subject") or ""
  if subject:find("offers") then
    msg.queue_class = "newsletter"
    msg.tenant = "acme"
    msg:add_header("X-Sluice-Class", "newsletter")
  end
end)
"""


class PolicyTest(sluicetest.DaemonTestCase):

    def policy_daemon(self, policy, settings=""):
        """A daemon whose lua_policy is policy.lua with the text policy."""
        d = self.daemon(settings="lua_policy = policy.lua\n"
                        "hostlist relay_from_hosts = 127.0.0.1\n" + settings)
        self.write_policy(d, policy)
        return d

    def write_policy(self, d, text):
        path = os.path.join(d.dir, "policy.lua")
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)

    def smtp(self, d):
        client = smtplib.SMTP("127.0.0.1", d.port, timeout=WAIT)
        self.addCleanup(self.quit, client)
        client.ehlo("client.example")
        return client

    @staticmethod
    def quit(client):
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass

    def wait_log(self, d, pattern, name="main"):
        return sluicetest.wait_for(
            lambda: re.search(pattern, d.log(name)), WAIT,
            f"{pattern!r} in {name}log")

    def test_mail_rejected_by_policy(self):
        d = self.policy_daemon(CLASSIFY_POLICY).start()
        client = self.smtp(d)
        code, text = client.mail("blocked@example.org")
        self.assertEqual((code, text), (550, b"sender blocked by policy"))
        code, _ = client.mail("alice@example.org")
        self.assertEqual(code, 250)
        self.wait_log(d, r"rejected MAIL <blocked@example\.org>: "
                      r"sender blocked by policy", name="reject")

    def test_message_classified_and_header_seen_at_sink(self):
        folder = tempfile.mkdtemp(prefix="sluice-policy-sink-")
        self.addCleanup(shutil.rmtree, folder, True)
        with Sink(folder) as sink:
            d = self.policy_daemon(
                CLASSIFY_POLICY, f"smarthost = 127.0.0.1::{sink.port}\n")
            d.start()
            client = self.smtp(d)
            client.sendmail("alice@example.org", ["bob@outside.test"],
                            MESSAGE)
            messages = sink.wait_for_messages(1, timeout=WAIT)
        self.assertIn(b"\nX-Sluice-Class: newsletter\r\n",
                      messages[0]["data"])

    def test_classes_stored_in_spool_header(self):
        # Nothing listens on the smarthost port, so the message stays.
        port = sluicetest.free_port()
        d = self.policy_daemon(CLASSIFY_POLICY,
                               f"smarthost = 127.0.0.1::{port}\n").start()
        client = self.smtp(d)
        client.sendmail("alice@example.org", ["bob@outside.test"], MESSAGE)
        files = glob.glob(os.path.join(d.spool, "input", "*-H"))
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            header = f.read()
        self.assertIn(b"-aclm _sluice_class 10\nnewsletter\n", header)
        self.assertIn(b"-aclm _sluice_tenant 4\nacme\n", header)

    def test_raising_handler_defers_and_logs(self):
        d = self.policy_daemon("""
sluice.on("message", function(msg)
  error("classifier broken")
end)
""").start()
        client = self.smtp(d)
        with self.assertRaises(smtplib.SMTPDataError) as caught:
            client.sendmail("alice@example.org", ["bob@outside.test"],
                            MESSAGE)
        self.assertEqual(caught.exception.smtp_code, 451)
        pattern = (ID + r" policy message handler failed at "
                   r"\S+/policy\.lua:3: classifier broken")
        self.wait_log(d, pattern)
        self.wait_log(d, pattern, name="panic")
        self.assertEqual(glob.glob(os.path.join(d.spool, "input", "*-H")),
                         [])

    def test_runaway_compiled_loop_stopped(self):
        d = self.policy_daemon("""
sluice.on("helo", function(conn, name)
  if name == "status.example" then
    return "reject", 550, "jit " .. tostring(jit.status())
  end
end)
sluice.on("mail", function(tx, sender)
  local limit = 200
  if sender == "spin@example.org" then limit = math.huge end
  local i = 0
  while i < limit do i = i + 1 end
end)
""", "lua_time_limit = 100\n").start()
        client = self.smtp(d)
        # Call the handler until LuaJIT has compiled its loop.
        for _ in range(5):
            self.assertEqual(client.mail("alice@example.org")[0], 250)
            client.rset()
        self.assertEqual(client.ehlo("status.example"),
                         (550, b"jit true"))
        status = d.control("policy")
        traces = int(re.search(r"traces=(\d+)", status).group(1))
        self.assertGreaterEqual(traces, 1, status)

        code, _ = client.mail("spin@example.org")
        self.assertEqual(code, 451)
        self.wait_log(d, r"policy mail handler failed at \S+/policy\.lua:7: "
                      r"time budget exceeded")
        self.wait_log(d, r"policy reloaded into a new Lua state")

        # The daemon still serves, in this session and in a new one.
        self.assertEqual(client.mail("alice@example.org")[0], 250)
        other = self.smtp(d)
        self.assertEqual(other.mail("alice@example.org")[0], 250)

    def test_kept_message_object_fails_cleanly(self):
        d = self.policy_daemon("""
local kept
sluice.on("message", function(msg) kept = msg end)
sluice.on("mail", function(tx, sender)
  if kept ~= nil then return "reject", 550, kept.id end
end)
""").start()
        client = self.smtp(d)
        client.sendmail("alice@example.org", ["bob@outside.test"], MESSAGE)
        code, _ = client.mail("alice@example.org")
        self.assertEqual(code, 451)
        self.wait_log(d, r"stale sluice\.msg: the object was kept after its "
                      r"handler returned")
        self.assertEqual(client.noop()[0], 250)

    def test_sighup_with_broken_policy_keeps_old(self):
        d = self.policy_daemon(CLASSIFY_POLICY).start()
        self.write_policy(d, "sluice.on('mail', function()\n")
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log(d, r"SIGHUP received: reload failed: \S+/policy\.lua:2:")
        client = self.smtp(d)
        self.assertEqual(client.mail("blocked@example.org")[0], 550)

    def test_sighup_switches_at_next_transaction(self):
        d = self.policy_daemon("""
sluice.on("rcpt", function(tx, rcpt) return "reject", 550, "policy v1" end)
""").start()
        client = self.smtp(d)
        client.mail("alice@example.org")
        self.assertEqual(client.rcpt("bob@outside.test"),
                         (550, b"policy v1"))

        self.write_policy(d, """
sluice.on("rcpt", function(tx, rcpt) return "reject", 550, "policy v2" end)
""")
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log(d, r"SIGHUP received: configuration and policy "
                      r"reloaded")
        # The transaction that was open keeps its policy ...
        self.assertEqual(client.rcpt("bob@outside.test"),
                         (550, b"policy v1"))
        # ... and the next one, in the same session, gets the new one.
        client.rset()
        client.mail("alice@example.org")
        self.assertEqual(client.rcpt("bob@outside.test"),
                         (550, b"policy v2"))
        self.assertEqual(client.noop()[0], 250)

    def test_sighup_keeps_options_that_need_a_restart(self):
        d = self.policy_daemon(CLASSIFY_POLICY).start()
        with open(d.config, "a") as f:
            f.write("message_id_format = classic\n")
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log(d, r"SIGHUP received: message_id_format changed but "
                      r"keeps its running value .*restart the daemon")
        self.wait_log(d, r"SIGHUP received: configuration and policy "
                      r"reloaded")

    def test_host_checking_shows_verdicts(self):
        d = self.policy_daemon(CLASSIFY_POLICY)
        result = d.run("-bh", "192.0.2.7", input=(
            b"EHLO client.example\r\nMAIL FROM:<blocked@example.org>\r\n"
            b"MAIL FROM:<alice@example.org>\r\nQUIT\r\n"))
        err = result.stderr.decode()
        self.assertIn(">>> policy helo: no handler", err)
        self.assertIn(">>> policy mail: reject 550 sender blocked by policy",
                      err)
        self.assertIn(">>> policy mail: continue", err)
        self.assertIn(b"550 sender blocked by policy", result.stdout)


if __name__ == "__main__":
    sluicetest.main()

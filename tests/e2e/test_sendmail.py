"""The sendmail command: local programs hand mail to the daemon through
its submission socket, with no setuid binary.

Each test starts a daemon that relays everything to a recording sink,
runs the command in the shapes its common callers use (PHP's mail(),
cron, git send-email, mutt), and checks at the sink the sender, the
recipients and the header, and in mainlog the "<=" line. Tests that run
the command as the unprivileged user nobody need root and are skipped
otherwise.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import sluicetest
from sink import Sink

ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"
NOBODY = 65534
# Bounds a failing test, never a speed assertion.
WAIT = 60.0
AS_NOBODY = {"user": NOBODY, "group": NOBODY, "extra_groups": []}


class SendmailCase(sluicetest.DaemonTestCase):

    # Configuration lines a test class adds.
    extra_settings = ""
    # Options for the daemon's command line.
    daemon_args = ()

    def setUp(self):
        folder = tempfile.mkdtemp(prefix="sluice-sink-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.sink = Sink(folder).start()
        self.addCleanup(self.sink.stop)
        self.d = self.daemon(
            settings=f"smarthost = 127.0.0.1::{self.sink.port}\n" +
            self.extra_settings).start(*self.daemon_args)
        submit = os.path.join(self.d.spool, "sluice-submit")
        sluicetest.wait_for(lambda: os.path.exists(submit), WAIT,
                            "the submission socket")
        # The program names, as make install links them.
        self.bindir = os.path.join(self.d.dir, "bin")
        os.mkdir(self.bindir)
        os.chmod(self.bindir, 0o755)
        for name in ("sendmail", "rmail", "newaliases", "rsmtp"):
            os.symlink(sluicetest.SLUICE_BIN, os.path.join(self.bindir, name))

    def sendmail(self, *args, input=b"", name="sendmail", user=None):
        return subprocess.run(
            [os.path.join(self.bindir, name), "-C", self.d.config, *args],
            input=input, capture_output=True, timeout=WAIT,
            **(user or {}))

    def arrival(self):
        lines = [l for l in self.d.log().splitlines() if " <= " in l]
        self.assertEqual(len(lines), 1, self.d.log())
        return lines[0]

    def delivered(self):
        return self.sink.wait_for_messages(1, timeout=WAIT)[0]


class CallerShapesTest(SendmailCase):
    """Root is trusted, so -f sets the sender."""

    def test_git_send_email_shape(self):
        r = self.sendmail("-i", "-f", "alice@example.test",
                          "bob@example.test", "carol@example.test",
                          input=b"Subject: patch\n\n.\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertEqual(got["mail_from"], "alice@example.test")
        self.assertEqual(sorted(got["rcpt_to"]),
                         ["bob@example.test", "carol@example.test"])
        # -i: the lone dot is content, sent dot-stuffed.
        self.assertIn(b"\r\n..\r\nbody\r\n", got["raw"])
        line = self.arrival()
        self.assertRegex(line, r"<= alice@example\.test U=root P=local S=")
        # No From: came in, so the daemon added one for the caller.
        self.assertRegex(got["data"], rb"\r\nFrom: [^\r]*<?root@sluice\.test>?\r\n")
        self.assertRegex(got["data"], rb"\r\nMessage-Id: <E" + ID.encode())

    def test_lone_dot_ends_without_i(self):
        r = self.sendmail("bob@example.test",
                          input=b"Subject: dot\n\nkept\n.\nlost\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertTrue(got["data"].endswith(b"\r\n\r\nkept\r\n"), got["data"])

    def test_no_final_newline_and_nul(self):
        r = self.sendmail("-i", "bob@example.test",
                          input=b"Subject: x\n\nnul\x00here")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.delivered()["data"].endswith(
            b"\r\n\r\nnul\x00here\r\n"))

    def test_rmail_and_newaliases(self):
        self.assertEqual(self.sendmail(name="newaliases").returncode, 0)
        r = self.sendmail("rmail-rcpt@example.test", name="rmail",
                          input=b"Subject: r\n\n.\nafter\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"..\r\nafter", self.delivered()["raw"])
        # rsmtp is -bS: an empty batch is no error.
        r = self.sendmail(name="rsmtp")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))

    def test_ignored_sendmail_options(self):
        r = self.sendmail("-oem", "-B8BITMIME", "-oi", "-U", "-odq", "--",
                          "bob@example.test", input=b"Subject: x\n\nhi\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.delivered()


class RefusedTest(SendmailCase):

    def report(self, count):
        """The count-th message at the sink, checked to be an error
        report from the null sender; returns it."""
        got = self.sink.wait_for_messages(count, timeout=WAIT)[count - 1]
        self.assertEqual(got["mail_from"], "")
        self.assertIn(b"\r\nAuto-Submitted: auto-replied\r\n", got["data"])
        self.assertIn(b"\r\nFrom: Mail Delivery System "
                      b"<Mailer-Daemon@sluice.test>\r\n", got["data"])
        return got

    def test_no_recipients(self):
        # -oem (the default): the report is mailed, and the exit status
        # is 1, as Exim 4.96 gives it; nothing is printed.
        r = self.sendmail("-t", input=b"Subject: none\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr), (1, b""))
        got = self.report(1)
        self.assertEqual(got["rcpt_to"], ["root@sluice.test"])
        self.assertIn(b"\r\nSubject: Mail failure - no recipient "
                      b"addresses\r\n", got["data"])
        # The copy of the message follows the explanation.
        self.assertRegex(got["data"], rb"named no recipient address(.|\r\n)*"
                         rb"\r\nSubject: none\r\n\r\nhi\r\n")
        log = self.d.log()
        refused = re.search(r" (" + ID + r") local submission from root "
                            r"\(uid 0\) refused: no recipients\n", log)
        self.assertIsNotNone(refused, log)
        self.assertRegex(log, r" <= <> R=" + refused.group(1) +
                         r" U=\S+ P=local S=")
        # -oee: the same report, and exit status 0.
        r = self.sendmail("-t", "-oee", input=b"Subject: none\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.report(2)
        # -oep prints the error and mails nothing.
        r = self.sendmail("-t", "-oep", input=b"Subject: none\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr),
                         (1, b"sluice: no recipients in message\n"))
        # With no daemon, no report can be mailed: 2, as Exim gives when
        # its report fails.
        self.d.stop()
        r = self.sendmail("-t", input=b"Subject: none\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr),
                         (2, b"sluice: no recipients in message\n"))
        self.assertEqual(len(self.sink.messages()), 2)

    def test_bad_recipient_report_mailed(self):
        r = self.sendmail("-oee", "-f", "alice@example.test",
                          "bob@bad..test", input=b"Subject: x\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        got = self.report(1)
        self.assertEqual(got["rcpt_to"], ["alice@example.test"])
        self.assertIn(b"\r\nSubject: Mail failure - malformed recipient "
                      b"address\r\n", got["data"])
        self.assertIn(b"\r\n  bob@bad..test  malformed address\r\n",
                      got["data"])
        self.assertIn(b"\r\nSubject: x\r\n\r\nhi\r\n", got["data"])
        # -oem: mailed as well, but the exit status is 1.
        r = self.sendmail("-f", "alice@example.test", "bob@bad..test",
                          input=b"Subject: x\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr), (1, b""))
        self.report(2)

    def test_sender_with_newline_refused(self):
        r = self.sendmail("-f", "a@b.test\nRCPT TO:<x@y.test>",
                          "bob@example.test", input=b"Subject: x\n\nhi\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"control characters", r.stderr)
        r = self.sendmail("-F", "Eve\nBcc: x@y.test", "bob@example.test",
                          input=b"Subject: x\n\nhi\n")
        self.assertEqual(r.returncode, 1)
        self.assertNotIn(" <= ", self.d.log())

    def test_bad_recipient_refused_at_once(self):
        # Refused before the drop folder, where it would be lost.
        self.d.stop()
        r = self.sendmail("bob@bad..test",
                          input=b"Subject: x\n\nhi\n")
        self.assertEqual((r.returncode, r.stderr), (1, b"sluice: bad "
                         b"recipient address \"bob@bad..test\": "
                         b"malformed address\n"))
        self.assertEqual(os.listdir(os.path.join(self.d.spool,
                                                 "submit-drop")), [])

    def test_bad_option_refused(self):
        r = self.sendmail("-odz", "bob@example.test")
        self.assertEqual((r.returncode, r.stderr), (1, b"sluice: unknown, "
                         b"malformed, or incomplete option -odz\n"))

    def test_daemon_down_message_waits(self):
        self.d.stop()
        r = self.sendmail("-f", "alice@example.test", "bob@example.test",
                          input=b"Subject: waited\n\nhi\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"the message waits in", r.stderr)
        self.assertEqual(self.sink.messages(), [])
        self.d.start()
        got = self.delivered()
        self.assertEqual(got["mail_from"], "alice@example.test")
        self.assertIn(b"Subject: waited", got["data"])
        self.assertRegex(self.arrival(), r"<= alice@example\.test U=root "
                         r"P=local ")
        self.assertEqual(os.listdir(os.path.join(self.d.spool,
                                                 "submit-drop")), [])


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
class UnprivilegedTest(SendmailCase):
    """The common callers, run as nobody: untrusted, so -f is ignored."""

    def test_php_mail_shape(self):
        # PHP 8 writes its headers with CRLF; the application's body has
        # LF.
        message = (b"To: Bob <bob@example.test>, carol@example.test\r\n"
                   b"Cc: \"Doe, Dan\" <dan@example.test>\r\n"
                   b"Bcc: hidden@example.test\r\n"
                   b"Subject: order\r\n"
                   b"\r\n"
                   b"line one\n.\nline three\n")
        r = self.sendmail("-t", "-i", "-f", "shop@evil.test", input=message,
                          user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertEqual(got["mail_from"], "nobody@sluice.test")
        self.assertEqual(sorted(got["rcpt_to"]),
                         ["bob@example.test", "carol@example.test",
                          "dan@example.test", "hidden@example.test"])
        self.assertNotIn(b"hidden@", got["data"])
        self.assertNotIn(b"\nBcc:", got["data"])
        self.assertIn(b"\r\nline one\r\n..\r\nline three\r\n", got["raw"])
        self.assertNotIn(b"\r\r", got["raw"])
        self.assertIn(b"Received: from nobody by sluice.test with local ",
                      got["data"])
        self.assertRegex(self.arrival(),
                         r"<= nobody@sluice\.test U=nobody P=local S=")

    def test_cron_shape(self):
        message = b"To: root\nSubject: Cron <nobody@host> job\n\noutput\n"
        r = self.sendmail("-i", "-FCronDaemon", "-odi", "-oem", "-oi", "-t",
                          input=message, user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertEqual(got["rcpt_to"], ["root@sluice.test"])
        self.assertIn(b"\r\nFrom: CronDaemon <nobody@sluice.test>\r\n",
                      got["data"])

    def test_t_removes_argument_addresses(self):
        message = b"To: a@example.test, b@example.test\n\nhi\n"
        r = self.sendmail("-t", "b@example.test", input=message,
                          user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.delivered()["rcpt_to"], ["a@example.test"])

    def test_null_sender_allowed(self):
        r = self.sendmail("-f", "<>", "bob@example.test",
                          input=b"Subject: x\n\nhi\n", user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.delivered()["mail_from"], "")

    def test_no_delivery_refused(self):
        # -N is for trusted callers.
        r = self.sendmail("-N", "bob@example.test",
                          input=b"Subject: x\n\nhi\n", user=AS_NOBODY)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"-N (no delivery) is allowed only for trusted "
                      b"callers", r.stderr)
        self.assertNotIn(" <= ", self.d.log())

    def test_sender_field_added_for_other_from(self):
        message = (b"From: The Boss <boss@corp.test>\n"
                   b"Sender: forged@corp.test\n"
                   b"Subject: x\n\nhi\n")
        r = self.sendmail("bob@example.test", input=message,
                          user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = self.delivered()["data"]
        self.assertIn(b"\r\nFrom: The Boss <boss@corp.test>\r\n", data)
        # The caller's own Sender: is dropped and Exim's is added, with
        # the name from the password file (nobody's is "nobody").
        self.assertNotIn(b"forged", data)
        self.assertRegex(data, rb"\r\nSender: ([^\r<]* <)?"
                         rb"nobody@sluice\.test>?\r\n")
        self.assertEqual(data.count(b"\nSender:"), 1)

    def test_no_sender_field_for_own_from(self):
        for from_ in (b"nobody@sluice.test", b"Me <NOBODY@sluice.test>",
                      b"nobody (me)"):
            r = self.sendmail("-F", "Me", "bob@example.test",
                              input=b"From: " + from_ + b"\n\nhi\n",
                              user=AS_NOBODY)
            self.assertEqual(r.returncode, 0, r.stderr)
        for got in self.sink.wait_for_messages(3, timeout=WAIT):
            self.assertNotIn(b"\nSender:", got["data"])

    def test_mutt_smtp_on_stdin(self):
        session = (b"EHLO laptop\r\n"
                   b"MAIL FROM:<forged@evil.test>\r\n"
                   b"RCPT TO:<bob@example.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: via -bs\r\n\r\n..stuffed\r\n.\r\n"
                   b"QUIT\r\n")
        r = self.sendmail("-bs", input=session, user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        replies = r.stdout.split(b"\r\n")
        self.assertTrue(replies[0].startswith(b"220 sluice.test ESMTP"))
        self.assertRegex(r.stdout, rb"\r\n250 OK id=" + ID.encode() +
                         rb"\r\n221 ")
        got = self.delivered()
        self.assertEqual(got["mail_from"], "nobody@sluice.test")
        self.assertIn(b"\r\n\r\n.stuffed\r\n", got["data"])
        self.assertRegex(self.arrival(), r"<= nobody@sluice\.test U=nobody "
                         r"P=local-esmtp ")

    def test_socket_open_to_all(self):
        path = os.path.join(self.d.spool, "sluice-submit")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o666)
        drop = os.path.join(self.d.spool, "submit-drop")
        self.assertEqual(os.stat(drop).st_mode & 0o7777, 0o3733)

    def test_drop_folder_as_nobody(self):
        self.d.stop()
        r = self.sendmail("-t", "-f", "forged@evil.test",
                          input=b"To: bob@example.test\n\nwaited\n",
                          user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        drop = os.path.join(self.d.spool, "submit-drop")
        (name,) = os.listdir(drop)
        st = os.stat(os.path.join(drop, name))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o640))
        self.d.start()
        got = self.delivered()
        # The owner of the file, not anything in it, names the sender.
        self.assertEqual(got["mail_from"], "nobody@sluice.test")
        self.assertRegex(self.arrival(), r"<= nobody@sluice\.test "
                         r"U=nobody P=local ")

    def test_drop_folder_refuses_links(self):
        # A message of root's, linked and symlinked into the folder by
        # another user, must not be sent as root's.
        drop = os.path.join(self.d.spool, "submit-drop")
        self.d.stop()
        victim = os.path.join(self.d.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"sluice-submit 1\nrecipient bob@example.test\ndata\n"
                    b"Subject: stolen\n\nx\n")
        os.symlink(victim, os.path.join(drop, "m.symlink"))
        os.link(victim, os.path.join(drop, "m.hardlink"))
        self.d.start()
        self.sendmail("bob@example.test", input=b"Subject: later\n\nx\n")
        got = self.delivered()
        self.assertIn(b"Subject: later", got["data"])
        self.assertEqual(self.d.log().count(" <= "), 1, self.d.log())
        self.assertEqual(self.d.log().count("not a regular file with one "
                                            "link"), 2, self.d.log())
        self.assertEqual(sorted(os.listdir(drop)), [])


def unpack_mailx():
    """Fetch bsd-mailx and its library with "apt-get download" into a
    cache (installing it would pull in an MTA) and unpack them with
    "dpkg -x"; return the root folder, or None when that is not
    possible."""
    cache = os.path.join(sluicetest.BUILDDIR or tempfile.gettempdir(),
                         "deb-cache")
    os.makedirs(cache, exist_ok=True)
    root = tempfile.mkdtemp(prefix="sluice-mailx-")
    os.chmod(root, 0o755)
    for package in ("bsd-mailx", "liblockfile1"):
        if not glob.glob(os.path.join(cache, f"{package}_*.deb")):
            r = subprocess.run(["apt-get", "download", package], cwd=cache,
                               capture_output=True, timeout=120)
            if r.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                return None
        deb = sorted(glob.glob(os.path.join(cache, f"{package}_*.deb")))[-1]
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                     "needs root for a private mount namespace")
class MailxTest(SendmailCase):
    """bsd-mailx's "mail -s", which runs /usr/sbin/sendmail: sluice is
    bind-mounted there inside a private mount namespace only."""

    def test_mail_s_as_nobody(self):
        root = unpack_mailx()
        if root is None:
            self.skipTest("bsd-mailx cannot be downloaded")
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        sbin = os.path.join(self.d.dir, "sbin")
        os.mkdir(sbin)
        os.chmod(sbin, 0o755)
        wrapper = os.path.join(sbin, "sendmail")
        with open(wrapper, "w") as f:
            f.write("#!/bin/bash\n"
                    f"exec -a sendmail {sluicetest.SLUICE_BIN} "
                    f"-C {self.d.config} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        home = os.path.join(self.d.dir, "home")
        os.mkdir(home)
        os.chown(home, NOBODY, NOBODY)
        libs = ":".join(glob.glob(os.path.join(root, "usr/lib/*")))
        script = (f"mount --bind {sbin} /usr/sbin && "
                  f"exec setpriv --reuid={NOBODY} --regid={NOBODY} "
                  f"--clear-groups env HOME={home} LD_LIBRARY_PATH={libs} "
                  f"{root}/usr/bin/bsd-mailx -s 'disk report' "
                  f"bob@example.test")
        r = subprocess.run(["unshare", "-m", "--propagation", "private",
                            "bash", "-c", script],
                           input=b"all fine\n", capture_output=True,
                           timeout=WAIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertEqual(got["mail_from"], "nobody@sluice.test")
        self.assertEqual(got["rcpt_to"], ["bob@example.test"])
        self.assertIn(b"Subject: disk report\r\n", got["data"])
        self.assertTrue(got["data"].endswith(b"\r\n\r\nall fine\r\n"))
        self.assertRegex(self.arrival(), r"<= nobody@sluice\.test U=nobody "
                         r"P=local ")


class BatchedSmtpTest(SendmailCase):
    """-bS and rsmtp: no replies. The first error ends the batch and is
    reported as Exim 4.96 reports it: the texts below are its output for
    the same input."""

    def test_two_messages_then_error(self):
        batch = (b"MAIL FROM:<alice@example.test>\n"
                 b"RCPT TO:<bob@example.test>\n"
                 b"DATA\n"
                 b"Subject: one\n\n..dotted\n.\n"
                 b"HELO ignored.example\n"
                 b"MAIL FROM:<alice@example.test>\r\n"
                 b"VRFY bob\r\n"
                 b"RCPT TO:<carol@example.test>\r\n"
                 b"DATA\r\n"
                 b"Subject: two\r\n\r\nhi\r\n.\r\n"
                 b"MAIL FROM:<alice@example.test>\n"
                 b"FOO bar\n"
                 b"RCPT TO:<never@example.test>\n")
        r = self.sendmail("-bS", input=batch)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"500 Command unrecognized\n"
                         b"Transaction started in line 16\n"
                         b"Error detected in line 18\n"
                         b"FOO bar\n")
        self.assertEqual(r.stderr, (
            b"An error was detected while processing a file of BSMTP "
            b"input.\nThe error message was:\n\n  500 Command "
            b"unrecognized\n\nThe SMTP transaction started in line 16.\n"
            b"The error was detected in line 18.\nThe SMTP command at "
            b"fault was:\n\n   FOO bar\n\n2 previous messages were "
            b"successfully processed.\nThe rest of the batch was "
            b"abandoned.\n"))
        got = self.sink.wait_for_messages(2, timeout=WAIT)
        self.assertEqual(sorted(m["rcpt_to"][0] for m in got),
                         ["bob@example.test", "carol@example.test"])
        self.assertTrue(any(b"\r\n.dotted\r\n" in m["data"] for m in got))
        arrivals = [l for l in self.d.log().splitlines() if " <= " in l]
        self.assertEqual(len(arrivals), 2)
        for line in arrivals:
            self.assertRegex(line, r"<= alice@example\.test U=root "
                             r"P=local-bsmtp ")

    def test_errors_before_any_message(self):
        for batch, out in (
                (b"RCPT TO:<x@example.test>\n",
                 b"503 No sender yet given\nTransaction started in line 0\n"
                 b"Error detected in line 1\nRCPT TO:<x@example.test>\n"),
                (b"NOOP\nVRFY x\nMAIL FROM:<a@example.test>\n"
                 b"MAIL FROM:<c@example.test>\n",
                 b"503 Sender already given\nTransaction started in line 2\n"
                 b"Error detected in line 4\nMAIL FROM:<c@example.test>\n"),
                (b"MAIL FROM:<a@example.test>\nDATA\nx\n.\n",
                 b"503 RCPT TO:<recipient> must precede DATA\n"
                 b"Transaction started in line 0\nError detected in line 2\n"
                 b"DATA\n"),
                # No final dot: the message is lost, and said so.
                (b"MAIL FROM:<a@example.test>\nRCPT TO:<x@example.test>\n"
                 b"DATA\nSubject: one\n\nhi\n",
                 b"421 Lost incoming connection\nTransaction started in "
                 b"line 0\nError detected in line 7\n")):
            r = self.sendmail(name="rsmtp", input=batch)
            self.assertEqual((r.returncode, r.stdout), (2, out), batch)
            self.assertIn(b"0 previous messages were successfully "
                          b"processed.\n", r.stderr)
        self.assertNotIn(" <= ", self.d.log())

    def test_quit_ends_batch(self):
        r = self.sendmail("-bS", input=(
            b"MAIL FROM:<a@example.test>\nRCPT TO:<bob@example.test>\n"
            b"DATA\nSubject: q\n\nhi\n.\nQUIT\nMAIL FROM:<junk\n"))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        self.assertEqual(self.delivered()["rcpt_to"], ["bob@example.test"])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
    def test_untrusted_batch_sender(self):
        r = self.sendmail("-bS", user=AS_NOBODY, input=(
            b"MAIL FROM:<forged@evil.test>\nRCPT TO:<bob@example.test>\n"
            b"DATA\nSubject: b\n\nhi\n.\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.delivered()["mail_from"], "nobody@sluice.test")
        self.assertRegex(self.arrival(), r"<= nobody@sluice\.test U=nobody "
                         r"P=local-bsmtp ")


class NoDeliveryTest(SendmailCase):
    """-N from a trusted caller: the message is logged as delivered with
    "*>" and nothing is sent."""

    def test_sendmail_N(self):
        r = self.sendmail("-N", "bob@example.test", "carol@example.test",
                          input=b"Subject: pretend\n\nhi\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        sluicetest.wait_for(lambda: " Completed" in self.d.log(), WAIT,
                            "the message to complete")
        log = self.d.log()
        self.assertRegex(log, r"(?m) \*> bob@example\.test R=\w+ "
                         r"T=remote_smtp$")
        self.assertRegex(log, r"(?m) \*> carol@example\.test R=\w+ "
                         r"T=remote_smtp$")
        self.assertNotIn(" => ", log)
        self.assertEqual(self.sink.messages(), [])


class DaemonNoDeliveryTest(SendmailCase):
    """A daemon started with -N pretends for every message it takes."""

    daemon_args = ("-N",)

    def test_every_message_pretends(self):
        r = self.sendmail("bob@example.test",
                          input=b"Subject: pretend\n\nhi\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        sluicetest.wait_for(lambda: " Completed" in self.d.log(), WAIT,
                            "the message to complete")
        self.assertRegex(self.d.log(), r"(?m) \*> bob@example\.test R=\w+ "
                         r"T=remote_smtp$")
        self.assertEqual(self.sink.messages(), [])

    def test_N_with_queue_run_refused(self):
        r = self.d.run("-N", "-q")
        self.assertEqual((r.returncode, r.stderr), (1, b"sluice: -N is "
                         b"supported only when submitting a message and "
                         b"with -bd\n"))


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
class TrustedUsersTest(SendmailCase):
    """nobody is trusted through trusted_users: its -f is the sender and
    its From: is not checked."""

    extra_settings = "trusted_users = daemon : nobody\n"

    def test_trusted_user_sets_sender(self):
        r = self.sendmail("-f", "shop@example.test", "bob@example.test",
                          input=b"From: boss@corp.test\n\nhi\n",
                          user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.delivered()
        self.assertEqual(got["mail_from"], "shop@example.test")
        self.assertNotIn(b"\nSender:", got["data"])
        self.assertRegex(self.arrival(), r"<= shop@example\.test "
                         r"U=nobody P=local ")


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
class TrustedGroupsTest(SendmailCase):
    """Membership of a trusted group counts, by a supplementary group
    too."""

    extra_settings = "trusted_groups = 4242\n"

    def test_supplementary_group_trusted(self):
        user = dict(AS_NOBODY, extra_groups=[4242])
        r = self.sendmail("-N", "-f", "shop@example.test",
                          "bob@example.test", input=b"\nhi\n", user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        sluicetest.wait_for(lambda: " Completed" in self.d.log(), WAIT,
                            "the message to complete")
        self.assertRegex(self.d.log(), r"<= shop@example\.test U=nobody ")
        # Without the group, nobody is untrusted again.
        r = self.sendmail("-f", "shop@example.test", "bob@example.test",
                          input=b"\nhi\n", user=AS_NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.delivered()["mail_from"], "nobody@sluice.test")

    def test_unknown_group_stops_start(self):
        d = self.daemon(settings="trusted_groups = no-such-group-here\n")
        r = subprocess.run([sluicetest.SLUICE_BIN, "-bdf", "-C", d.config],
                           capture_output=True, timeout=WAIT)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b'trusted_groups: group "no-such-group-here" was not '
                      b'found', r.stderr)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
class UntrustedSetSenderTest(SendmailCase):

    extra_settings = "untrusted_set_sender = *@shop.test : !x@other.test : " \
        "*-list@other.test\n"

    def test_allowed_senders(self):
        for i, (sender, expected) in enumerate((
                ("sales@shop.test", "sales@shop.test"),
                ("news-list@other.test", "news-list@other.test"),
                ("x@other.test", "nobody@sluice.test"),
                ("eve@evil.test", "nobody@sluice.test"))):
            r = self.sendmail("-f", sender, "bob@example.test",
                              input=b"From: " + sender.encode() +
                              b"\n\nhi\n", user=AS_NOBODY)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = self.sink.wait_for_messages(i + 1, timeout=WAIT)[i]
            self.assertEqual(got["mail_from"], expected, sender)
            # From: naming the sender that was allowed needs no Sender:.
            self.assertEqual(b"\nSender:" in got["data"],
                             expected == "nobody@sluice.test", sender)


if __name__ == "__main__":
    sluicetest.main()

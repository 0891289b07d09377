"""Exim's queue tools on sluice's command line: -bp, the -M actions, the
-q runs, the program names and who may use them.

Every action and run is tested twice. In WithDaemonTest the daemon runs
and the command line hands the work to it over the control socket. In
WithoutDaemonTest the daemon has stopped and the command line acts on
the spool itself, under Exim's lock. Both must print and log the
same. Messages stay queued because the smarthost port is closed until a
test starts a sink there; a forced delivery or queue run returns only
when its attempts have ended, so the sink holds the message as soon as
the command returns.

Permission tests run commands as the user nobody, so they need root
(they are skipped otherwise).
"""

import fcntl
import grp
import os
import re
import shutil
import signal
import socket
import smtplib
import subprocess
import tempfile
import threading
import unittest

import sluicetest
from sink import Sink

ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}"
NOBODY = 65534
# Bounds a failing test, never a speed assertion.
WAIT = 60.0


def run_as(uid, gid, groups):
    """subprocess.run keyword arguments that run a command as uid."""
    return {"user": uid, "group": gid, "extra_groups": groups}


class QueueToolsCase(sluicetest.DaemonTestCase):
    """A daemon whose smarthost is a closed port, and helpers."""

    settings = ""

    def setUp(self):
        self.sink_port = sluicetest.free_port()
        self.d = self.daemon(settings=(
            f"smarthost = 127.0.0.1::{self.sink_port}\n"
            "hostlist relay_from_hosts = 127.0.0.1\n" + self.settings))
        self.d.start()

    def restart(self, *extra):
        """Stop the daemon and start it again with the same spool."""
        self.stop()
        self.d.start(*extra)

    def stop(self):
        self.assertEqual(self.d.stop(), 0)
        for stream in (self.d.proc.stdout, self.d.proc.stderr):
            stream.close()

    def send(self, sender, recipients, subject="test"):
        """Send one message; return its id once its first attempt has
        deferred every recipient."""
        body = (f"From: {sender or 'mailer-daemon@sluice.test'}\r\n"
                f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo()
            code, reply = s.mail(sender)
            self.assertEqual(code, 250, reply)
            for r in recipients:
                code, reply = s.rcpt(r)
                self.assertEqual(code, 250, reply)
            code, reply = s.data(body.encode())
            self.assertEqual(code, 250, reply)
        msgid = re.search(ID.encode(), reply).group(0).decode()
        sluicetest.wait_for(
            lambda: self.d.log().count(f"{msgid} ==") >= len(recipients),
            WAIT, f"the first attempt of {msgid}")
        return msgid

    def sluice(self, *args, user=None, program=None, env=None):
        """Run sluice with the daemon's configuration; return (exit
        status, stdout, stderr)."""
        command = [program or sluicetest.SLUICE_BIN, "-C", self.d.config,
                   *args]
        result = subprocess.run(command, capture_output=True, timeout=120,
                                env=env, **(user or {}))
        return (result.returncode, result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"))

    def sink(self):
        folder = tempfile.mkdtemp(prefix="sluice-sink-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        s = Sink(folder, port=self.sink_port).start()
        self.addCleanup(s.stop)
        return s

    def delivered_ids(self, sink):
        """Ids of the messages a sink received, from their Received:."""
        found = set()
        for m in sink.messages():
            found.update(re.findall(r"id (" + ID + ")",
                                    m["data"].decode(errors="replace")))
        return found

    def input_path(self, msgid, suffix):
        return os.path.join(self.d.spool, "input", msgid + suffix)

    def listing(self, *ids):
        rc, out, err = self.sluice("-bp", *ids)
        self.assertEqual(rc, 0, err)
        return out

    def log_has(self, line):
        return re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d " + line + "$",
                         self.d.log(), re.M) is not None


class ActionTests:
    """Every -M action and -q variant; mixed into a class that sets
    running, and whose prepare() leaves the daemon running or not."""

    running = True

    def prepare(self):
        """Called once the test's messages are queued."""

    def test_freeze_and_thaw(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.assertEqual(self.sluice("-Mf", a),
                         (0, f"Message {a} is now frozen\n", ""))
        self.assertEqual(self.sluice("-Mf", a),
                         (1, f"Message {a} is already frozen\n", ""))
        self.assertIn(f"{a} <alice@example.test> *** frozen ***\n",
                      self.listing())
        self.assertTrue(self.log_has(f"{a} frozen by root"))
        self.assertEqual(self.sluice("-Mt", a),
                         (0, f"Message {a} is no longer frozen\n", ""))
        self.assertEqual(self.sluice("-Mt", a),
                         (1, f"Message {a} is not frozen\n", ""))
        self.assertNotIn("frozen", self.listing())
        self.assertTrue(self.log_has(f"{a} unfrozen by root"))

    def test_freeze_several_ids(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        self.prepare()
        self.sluice("-Mf", a)
        rc, out, _ = self.sluice("-Mf", a, b)
        self.assertEqual(rc, 1)
        self.assertEqual(out, f"Message {a} is already frozen\n"
                              f"Message {b} is now frozen\n")

    def test_remove(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.assertEqual(self.sluice("-Mrm", a),
                         (0, f"Message {a} has been removed\n", ""))
        for suffix in ("-H", "-D", "-J"):
            self.assertFalse(os.path.exists(self.input_path(a, suffix)))
        self.assertTrue(self.log_has(f"{a} removed by root"))
        self.assertTrue(self.log_has(f"{a} Completed"))
        self.assertEqual(self.listing(), "")
        rc, out, _ = self.sluice("-Mrm", a)
        self.assertEqual(rc, 1)
        self.assertEqual(out, (
            f"Spool data file for {a} does not exist\n"
            "Continuing, to ensure all files removed\n"
            f"Spool read error for {a}-H: No such file or directory\n"
            "Continuing to ensure all files removed\n"
            f"Message {a} has been removed or did not exist\n"))

    def test_mark_delivered(self):
        a = self.send("alice@example.test", ["bob@one.test", "eve@two.test"])
        self.prepare()
        self.assertEqual(self.sluice("-Mmd", a, "bob@one.test"),
                         (0, f"Message {a} has been modified\n", ""))
        self.assertIn("        D bob@one.test\n          eve@two.test\n",
                      self.listing())
        self.assertTrue(self.log_has(
            f"{a} address <bob@one.test> marked delivered by root"))
        rc, out, _ = self.sluice("-Mmd", a, "nobody@one.test")
        self.assertEqual(rc, 1)
        self.assertEqual(out, (
            f"Message {a} - error while marking as delivered:\n"
            "  nobody@one.test is not a recipient: message not updated\n"))

    def test_mark_all_delivered(self):
        a = self.send("alice@example.test", ["bob@one.test", "eve@two.test"])
        self.prepare()
        # Exim ends this report with an empty line.
        self.assertEqual(self.sluice("-Mmad", a),
                         (0, f"Message {a} has been modified\n\n", ""))
        self.assertIn("        D bob@one.test\n        D eve@two.test\n",
                      self.listing())
        for r in ("bob@one.test", "eve@two.test"):
            self.assertTrue(self.log_has(
                f"{a} address <{r}> marked delivered by root"))

    def test_add_recipients(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.assertEqual(
            self.sluice("-Mar", a, "new@three.test", "<other@three.test>"),
            (0, f"Message {a} has been modified\n", ""))
        self.assertIn("          bob@one.test\n          new@three.test\n"
                      "          other@three.test\n", self.listing())
        self.assertTrue(self.log_has(
            f"{a} recipient <new@three.test> added by root"))
        rc, out, _ = self.sluice("-Mar", a, "ok@three.test", "bad")
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith(
            f"Message {a} - error while adding recipient:\n"
            "  bad address bad: "), out)
        self.assertNotIn("ok@three.test", self.listing())

    def test_edit_sender(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.assertEqual(self.sluice("-Mes", a, "<>"),
                         (0, f"Message {a} has been modified\n", ""))
        self.assertIn(f" {a} <>\n", self.listing())
        self.assertTrue(self.log_has(
            f"{a} sender address changed to <> by root"))
        self.assertEqual(
            self.sluice("-Mes", a, "x@one.test", "y@one.test"),
            (1, f"Message {a} - only one sender address can be specified\n",
             ""))

    def test_views(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        # Through the daemon, the action waits for the -H rewrite of the
        # first attempt, so the file read below is final.
        self.sluice("-Mf", a)
        self.prepare()
        with open(self.input_path(a, "-H"), "rb") as f:
            header_file = f.read()
        with open(self.input_path(a, "-D"), "rb") as f:
            data_file = f.read()
        rc, out, _ = self.sluice("-Mvh", a)
        self.assertEqual((rc, out.encode()), (0, header_file))
        rc, out, _ = self.sluice("-Mvb", a)
        self.assertEqual((rc, out.encode()), (0, data_file))
        rc, out, _ = self.sluice("-Mvc", a)
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^Received: from ")
        self.assertTrue(out.endswith("\n\nbody of test\n"), out)
        # The message log starts with the arrival.
        rc, out, _ = self.sluice("-Mvl", a)
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Received "
                         r"from alice@example\.test ")
        os.unlink(os.path.join(self.d.spool, "msglog", a))
        self.assertEqual(self.sluice("-Mvl", a), (
            1, f"Failed to open msglog file for {a}: No such file or "
               "directory\n", ""))
        self.assertEqual(self.sluice("-Mvh", a, a), (
            1, "*** Only one message can be listed at once\n", ""))

    def test_malformed_ids(self):
        self.prepare()
        self.assertEqual(self.sluice("-Mf", "bad"), (
            1, "", "sluice: malformed message id bad after -Mf option\n"))
        self.assertEqual(self.sluice("-Mrm"), (
            1, "", "sluice: no message ids given after -Mrm option\n"))

    def test_give_up_removes(self):
        # The bounce itself is tested in test_bounce.py.
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        rc, out, err = self.sluice("-Mg", a)
        self.assertEqual(rc, 0, err)
        sluicetest.wait_for(lambda: a not in self.listing(), 30,
                            "the message to leave the queue")

    def test_deliver_now(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        self.prepare()
        self.sluice("-Mf", b)
        sink = self.sink()
        self.assertEqual(self.sluice("-M", a, b), (0, "", ""))
        # The command returns once the attempts have ended.
        self.assertEqual(self.delivered_ids(sink), {a, b})
        self.assertTrue(self.log_has(f"{b} Unfrozen by forced delivery"))
        self.assertTrue(self.log_has(f"{a} Completed"))
        self.assertEqual(self.listing(), "")

    def test_deliver_keeps_frozen(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.sluice("-Mf", a)
        sink = self.sink()
        self.assertEqual(self.sluice("-Mc", a), (0, "", ""))
        self.assertEqual(self.delivered_ids(sink), set())
        self.assertTrue(self.log_has(f"{a} Message is frozen"))
        self.assertIn("*** frozen ***", self.listing())

    def test_deliver_missing_message(self):
        self.prepare()
        missing = "1xZZZZ-00000000000-0000"
        self.assertEqual(self.sluice("-M", missing), (0, "", ""))
        self.assertTrue(self.log_has(
            f"{missing} Spool file {missing}-D not found"))

    def test_queue_run_forced(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        self.prepare()
        self.sluice("-Mf", b)
        sink = self.sink()
        rc, out, err = self.sluice("-qf")
        self.assertEqual((rc, out, err), (0, "", ""))
        self.assertEqual(self.delivered_ids(sink), {a})
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+ -qf"))
        self.assertTrue(self.log_has(r"End queue run: pid=\d+ -qf"))
        self.assertTrue(self.log_has(f"{b} Message is frozen"))
        self.assertIn(b, self.listing())

    def test_verbose_deliver_prints_log_lines(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.sink()
        rc, out, err = self.sluice("-v", "-M", a)
        self.assertEqual((rc, out), (0, ""), err)
        # Exim's -v: the id, then each main log line of the delivery.
        self.assertTrue(err.startswith(f"delivering {a}\n"), err)
        self.assertRegex(err, r"LOG: MAIN\n  => bob@one\.test R=\S+ T=\S+ ")
        self.assertTrue(err.endswith("LOG: MAIN\n  Completed\n"), err)
        self.assertNotIn(a, err[len(f"delivering {a}"):])
        self.assertEqual(self.sluice("-M", a), (0, "", ""))

    def test_verbose_run_shows_only_its_messages(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        self.prepare()
        sink = self.sink()
        rc, out, err = self.sluice("-v", "-qf", "-R", "one.test")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertEqual(self.delivered_ids(sink), {a})
        self.assertRegex(err, r"^LOG: queue_run MAIN\n  Start queue run: "
                         r"pid=\d+ -qf -R one\.test\n")
        self.assertIn("LOG: MAIN\n  => bob@one.test ", err)
        self.assertIn("LOG: MAIN\n  Completed\n", err)
        self.assertRegex(err, r"LOG: queue_run MAIN\n  End queue run: "
                         r"pid=\d+ -qf -R one\.test\n$")
        self.assertNotIn("dave@two.test", err)
        self.assertIn(b, self.listing())

    def test_queue_run_frozen_too(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        self.sluice("-Mf", a)
        sink = self.sink()
        self.assertEqual(self.sluice("-qff")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {a})
        self.assertTrue(self.log_has(f"{a} Unfrozen by forced delivery"))
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+ -qff"))

    def test_queue_run_due_only(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        sink = self.sink()
        self.assertEqual(self.sluice("-q"), (0, "", ""))
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+"))
        self.assertTrue(self.log_has(r"End queue run: pid=\d+"))
        if self.running:
            # The daemon has scheduled the next attempt for later.
            self.assertEqual(self.delivered_ids(sink), set())
        else:
            # No daemon, no retry times kept: Exim tries such messages.
            self.assertEqual(self.delivered_ids(sink), {a})

    def test_queue_run_recipient_match(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@TWO.test"])
        self.prepare()
        sink = self.sink()
        self.assertEqual(self.sluice("-Rf", "two.TEST")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {b})
        self.assertTrue(self.log_has(
            r"Start queue run: pid=\d+ -qf -R two\.TEST"))
        self.assertEqual(self.sluice("-qRrf", "^bob@")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {a, b})
        self.assertTrue(self.log_has(
            r"Start queue run: pid=\d+ -qf -Rr \^bob@"))

    def test_queue_run_sender_match(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.send("carol@example.test", ["dave@two.test"])
        self.prepare()
        sink = self.sink()
        self.assertEqual(self.sluice("-Sf", "ALICE@")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {a})
        self.assertTrue(self.log_has(
            r"Start queue run: pid=\d+ -qf -S ALICE@"))

    def test_queue_run_id_range(self):
        ids = sorted(self.send("alice@example.test", [f"r{i}@one.test"])
                     for i in range(3))
        self.prepare()
        sink = self.sink()
        self.assertEqual(self.sluice("-qf", ids[1], ids[1])[0], 0)
        self.assertEqual(self.delivered_ids(sink), {ids[1]})
        self.assertEqual(self.sluice("-qf", ids[1])[0], 0)
        self.assertEqual(self.delivered_ids(sink), {ids[1], ids[2]})

    def test_queue_run_first_delivery_only(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        # b, frozen and marked as never tried, is the only first
        # delivery; freezing keeps a restarted daemon from trying it.
        self.sluice("-Mf", b)
        self.stop()
        path = self.input_path(b, "-H")
        with open(path) as f:
            lines = f.read().split("\n")
        lines.insert(4, "-deliver_firsttime")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        if self.running:
            self.d.start()
            sluicetest.wait_for(lambda: self.log_has(
                f"{b} Message is frozen"), WAIT, "the restart's attempts")
        sink = self.sink()
        self.assertEqual(self.sluice("-qiff")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {b})
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+ -qiff"))
        self.assertIn(a, self.listing())

    def test_two_stage_run_accepted(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        sink = self.sink()
        self.assertEqual(self.sluice("-qqf")[0], 0)
        self.assertEqual(self.delivered_ids(sink), {a})
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+ -qqf"))

    def test_runq_name(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        links = tempfile.mkdtemp(prefix="sluice-names-")
        self.addCleanup(shutil.rmtree, links, ignore_errors=True)
        runq = os.path.join(links, "runq")
        os.symlink(sluicetest.SLUICE_BIN, runq)
        sink = self.sink()
        self.assertEqual(self.sluice(program=runq), (0, "", ""))
        self.assertTrue(self.log_has(r"Start queue run: pid=\d+"))
        # As -q: only a message that is due, and without a daemon every
        # message is.
        self.assertEqual(self.delivered_ids(sink),
                         set() if self.running else {a})


class WithDaemonTest(ActionTests, QueueToolsCase):
    """The daemon runs: every change goes over its control socket."""

    running = True

    def test_locked_while_delivering(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        sink = self.sink()
        sink.add_rule("data", action="stall", times=100)
        # Stopped first, so the stalled session ends when its client
        # closes the connection.
        self.addCleanup(self.d.kill)
        # The attempt hangs in DATA, so the daemon holds the lock.
        proc = subprocess.Popen(
            [sluicetest.SLUICE_BIN, "-C", self.d.config, "-M", a],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        sluicetest.wait_for(lambda: any(
            "DATA" in c.upper() for s in sink.sessions for c in s),
            WAIT, "the stalled delivery")
        self.assertEqual(self.sluice("-Mrm", a),
                         (1, f"Message {a} is locked\n", ""))
        self.assertEqual(self.sluice("-Mf", a),
                         (1, f"Message {a} is locked\n", ""))
        self.assertIn(a, self.listing())

    def test_verbose_lines_arrive_during_run(self):
        # While the daemon still delivers one message, the lines of the
        # other, finished one are already on the command's stderr.
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        sink = self.sink()
        sink.add_rule("rcpt", match="dave@", action="hold")

        # Never hang: without the lines, the held session goes on after
        # WAIT seconds, and the checks below fail.
        watchdog = threading.Timer(WAIT, sink.release)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        self.addCleanup(sink.release)

        proc = subprocess.Popen(
            [sluicetest.SLUICE_BIN, "-C", self.d.config, "-v", "-qf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        sink.wait_for_held(1)

        seen = []
        while not any(line.startswith("  => bob@one.test") for line in seen):
            line = proc.stderr.readline().decode(errors="replace")
            self.assertNotEqual(line, "", f"stderr ended early: {seen}")
            seen.append(line)
        self.assertEqual(sink.held, 1)
        self.assertIsNone(proc.poll())

        sink.release()
        rest = proc.stderr.read().decode(errors="replace")
        self.assertEqual(proc.wait(), 0)
        self.assertIn("  => dave@two.test ", rest)
        self.assertEqual(self.delivered_ids(sink), {a, b})


class WithoutDaemonTest(ActionTests, QueueToolsCase):
    """The daemon has stopped: the command line acts on the spool."""

    running = False

    def prepare(self):
        self.stop()
        self.assertFalse(os.path.exists(self.d.control_path))

    def test_locked_by_another_process(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        self.prepare()
        with open(self.input_path(a, "-D"), "r+b") as f:
            # Exim's lock: a write lock on the -D file's first line.
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, len(a) + 3, 0)
            self.assertEqual(self.sluice("-Mf", a),
                             (1, f"Message {a} is locked\n", ""))
            self.assertEqual(self.sluice("-Mrm", a),
                             (1, f"Message {a} is locked\n", ""))
        self.assertEqual(self.sluice("-Mf", a)[0], 0)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
class PermissionTest(QueueToolsCase):
    """Admin users and the control socket's credential checks."""

    def nobody(self, *groups):
        return run_as(NOBODY, NOBODY, list(groups))

    def test_non_admin_refused(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        user = self.nobody()
        self.assertEqual(self.sluice("-bp", user=user),
                         (1, "", "sluice: permission denied\n"))
        self.assertEqual(self.sluice("-Mf", a, user=user),
                         (1, "Permission denied\n", ""))
        self.assertEqual(self.sluice("-Mrm", a, user=user),
                         (1, "Permission denied\n", ""))
        self.assertEqual(self.sluice("-M", a, user=user),
                         (1, "", "sluice: Permission denied\n"))
        self.assertEqual(self.sluice("-qf", user=user),
                         (1, "", "sluice: permission denied\n"))
        self.assertNotIn("frozen", self.listing())
        self.assertIn(a, self.listing())

    def test_socket_open_to_all_checked_per_request(self):
        self.assertEqual(os.stat(self.d.control_path).st_mode & 0o777,
                         0o666)
        self.assertTrue(os.stat(self.d.spool).st_mode & 0o001)
        # nobody reaches the socket, but an admin command is refused.
        script = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(sys.argv[1])\n"
            "s.sendall(sys.argv[2].encode() + b'\\n')\n"
            "print(s.makefile().read(), end='')\n")
        for command in ("stats", "run force=1", "deliver thaw x"):
            result = subprocess.run(
                ["python3", "-c", script, self.d.control_path, command],
                capture_output=True, text=True, timeout=60,
                **self.nobody())
            self.assertEqual(result.stdout, f'error: permission denied: '
                             f'"{command.split()[0]}" is for admin users '
                             'only\n', result.stderr)
        self.assertIn("queue_messages=", self.d.control("stats"))

    def test_admin_group_member_acts_through_daemon(self):
        extra = grp.getgrnam("users").gr_gid
        with open(self.d.config, "a") as f:
            f.write("admin_groups = users\n")
        self.restart()
        a = self.send("alice@example.test", ["bob@one.test"])
        # nobody may not read the spool, but as a member of an admin
        # group (a supplementary one) the daemon acts for it.
        user = self.nobody(extra)
        self.assertEqual(self.sluice("-Mf", a, user=user),
                         (0, f"Message {a} is now frozen\n", ""))
        self.assertTrue(self.log_has(f"{a} frozen by nobody"))
        self.assertEqual(self.sluice("-Mf", a, user=self.nobody()),
                         (1, "Permission denied\n", ""))
        # Without the daemon the same user cannot reach the spool.
        self.stop()
        rc, out, err = self.sluice("-Mt", a, user=user)
        self.assertEqual(rc, 1)
        self.assertIn("*** frozen ***", self.listing())

    def test_submitter_may_remove_own_message(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        b = self.send("carol@example.test", ["dave@two.test"])
        self.stop()
        path = self.input_path(a, "-H")
        with open(path) as f:
            lines = f.read().split("\n")
        lines[1] = f"nobody {NOBODY} {NOBODY}"
        with open(path, "w") as f:
            f.write("\n".join(lines))
        self.d.start()
        user = self.nobody()
        self.assertEqual(self.sluice("-Mrm", a, user=user),
                         (0, f"Message {a} has been removed\n", ""))
        self.assertTrue(self.log_has(f"{a} removed by nobody"))
        self.assertEqual(self.sluice("-Mrm", b, user=user),
                         (1, "Permission denied\n", ""))
        self.assertEqual(self.sluice("-Mf", a, user=user)[0], 1)


class NamesAndModesTest(QueueToolsCase):
    """Program names, -bV, and -q with -bd."""

    def links(self, *names):
        folder = tempfile.mkdtemp(prefix="sluice-names-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        for name in names:
            os.symlink(sluicetest.SLUICE_BIN, os.path.join(folder, name))
        return folder

    def test_exim_names_and_mailq(self):
        a = self.send("alice@example.test", ["bob@one.test"])
        folder = self.links("exim", "exim4", "mailq")
        listing = self.listing()
        self.assertIn(a, listing)
        for name in ("exim", "exim4"):
            program = os.path.join(folder, name)
            self.assertEqual(self.sluice("-bp", program=program),
                             (0, listing, ""))
            self.assertEqual(self.sluice("-bpc", program=program),
                             (0, "1\n", ""))
        mailq = os.path.join(folder, "mailq")
        self.assertEqual(self.sluice(program=mailq), (0, listing, ""))
        self.assertEqual(self.sluice("-bpi", program=mailq), (0, a + "\n", ""))

    def test_make_install_links(self):
        if not sluicetest.BUILDDIR:
            self.skipTest("SLUICE_BUILDDIR is not set")
        dest = tempfile.mkdtemp(prefix="sluice-install-")
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        # A make of its own, not a part of the make check that runs this.
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        result = subprocess.run(
            ["make", "-C", sluicetest.BUILDDIR, "install-exec",
             f"DESTDIR={dest}", "sbindir=/sbin"],
            capture_output=True, text=True, timeout=600, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        sbin = os.path.join(dest, "sbin")
        for name in ("exim", "exim4", "mailq", "runq"):
            self.assertEqual(os.readlink(os.path.join(sbin, name)), "sluice")
        rc, out, _ = self.sluice("-bpc", program=os.path.join(sbin, "exim"))
        self.assertEqual((rc, out), (0, "0\n"))

    def test_version(self):
        rc, out, err = self.sluice("-bV")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^sluice version \d+\.\d+\.\d+ #\d+ built "
                         r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d$")
        # Scripts take the version as the third word, as from Exim.
        self.assertRegex(lines[0].split()[2], r"^\d+\.\d+\.\d+$")
        self.assertEqual(lines[-1], f"Configuration file is {self.d.config}")

    def test_version_with_broken_configuration(self):
        with open(self.d.config, "a") as f:
            f.write("no_such_option = 1\n")
        rc, out, err = self.sluice("-bV")
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith("sluice version "), out)
        self.assertIn("no_such_option", err)

    def test_syslog_tag_checked(self):
        self.assertEqual(self.sluice("-L"), (1, "", "sluice: unknown, "
                         "malformed, or incomplete option -L\n"))
        rc, out, err = self.sluice("-L", "t" * 33, "-bV")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("must have 1 to 32 characters", err)
        self.assertEqual(self.sluice("-L", "", "-bV")[0], 1)
        self.assertEqual(self.sluice("-Lsluice-x", "-bpc"), (0, "0\n", ""))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run as nobody")
    def test_syslog_tag_for_admin_users_only(self):
        self.assertEqual(self.sluice("-L", "mine", "-bpc",
                                     user=run_as(NOBODY, NOBODY, [])),
                         (1, "", "sluice: -L is allowed only for admin "
                          "users\n"))

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare") and
                         shutil.which("mknod"),
                         "needs root, unshare and mknod for a private /dev")
    def test_syslog_tag_used(self):
        # With no daemon, -M logs here. A private /dev, in a mount
        # namespace of its own, points /dev/log at a socket of the test.
        self.stop()
        folder = tempfile.mkdtemp(prefix="sluice-syslog-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        path = os.path.join(folder, "log")
        missing = "1xZZZZ-00000000000-0000"

        script = ('mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 '
                  '&& ln -s "$1" /dev/log && shift && exec "$@"')
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            result = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "sh",
                 "-c", script, "sh", path, sluicetest.SLUICE_BIN, "-C",
                 self.d.config, "-L", "sluice-tagged", "-M", missing],
                capture_output=True, timeout=WAIT)
            self.assertEqual(result.returncode, 0, result.stderr)

            server.setblocking(False)
            lines = []
            while True:
                try:
                    lines.append(server.recv(65536).decode(errors="replace"))
                except BlockingIOError:
                    break
        self.assertTrue(any(re.search(r"^<\d+>.* sluice-tagged\[\d+\]: .*"
                                      + missing + " Spool file " + missing +
                                      "-D not found$", l) for l in lines),
                        lines)
        # -L stands for log_file_path = syslog: mainlog gets nothing.
        self.assertNotIn("Spool file", self.d.log())

    def test_daemon_accepts_queue_interval(self):
        self.restart("-q30m")
        self.assertTrue(self.log_has(
            "-q30m ignored: the daemon attempts every message when it is "
            "due and needs no queue run interval"))

    def test_queue_interval_without_daemon_rejected(self):
        rc, out, err = self.sluice("-q30m")
        self.assertEqual(rc, 1)
        self.assertIn("-q30m without -bd", err)

    def test_listing_variants(self):
        a = self.send("alice@example.test", ["bob@one.test", "eve@two.test"])
        b = self.send("", ["postmaster@two.test"])
        self.sluice("-Mmd", a, "bob@one.test")
        self.sluice("-Mf", b)
        first, second = sorted([a, b])
        self.assertEqual(self.sluice("-bpc"), (0, "2\n", ""))
        self.assertEqual(self.sluice("-bpi"), (0, f"{first}\n{second}\n", ""))
        full = self.listing()
        self.assertRegex(full, (
            rf" 0m +\d+ {a} <alice@example\.test>\n"
            r"        D bob@one\.test\n"
            r"          eve@two\.test\n\n"))
        self.assertRegex(full, rf" 0m +\d+ {b} <> \*\*\* frozen \*\*\*\n"
                               r"          postmaster@two\.test\n\n")
        rc, out, _ = self.sluice("-bpu")
        self.assertNotIn("bob@one.test", out)
        self.assertIn("eve@two.test", out)
        rc, out, _ = self.sluice("-bpr")
        self.assertEqual(sorted(out.split("\n\n")), sorted(full.split("\n\n")))
        missing = "1xZZZZ-00000000000-0000"
        self.assertEqual(self.listing(missing), (
            f"      {missing}\n"
            "    *** spool read error: No such file or directory ***\n\n"))
        self.assertEqual(self.sluice("-bp", "bad"), (
            1, "", "sluice: malformed message id bad after -bp option\n"))


if __name__ == "__main__":
    sluicetest.main()

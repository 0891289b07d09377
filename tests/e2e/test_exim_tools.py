"""Exim 4.96's own tools work on sluice's queue listings and logs.

sluice and Debian 12's Exim (unpacked, never installed; see
exim_debian.py) list the same spool, and every -bp variant must come out
byte for byte the same. The queue has ages from minutes to a hundred
days, sizes in bytes, K and M, a frozen message, a delivered recipient
("D"), a generated address ("+D", -bpa) and an untrusted sender's
login. Then Exim's Perl tools run on what sluice produces: exiqgrep and
exiqsumm on "sluice -bp", exipick on the spool, exigrep and eximstats on
the mainlog (eximstats must count sluice's deliveries as deliveries).

Exim 4.96 reads only 16-character ids, so the daemon runs with
message_id_format = classic. Needs root (skipped otherwise) and, the
first time, Debian's package mirror: the .deb files are cached in
$SLUICE_BUILDDIR/exim-debs.
"""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

import sluicetest
from exim_debian import Exim, EximUnavailable
from sink import Sink

EXIM = None
ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}"
# Bounds a failing test, never a speed assertion.
WAIT = 60.0


def setUpModule():
    global EXIM
    if os.geteuid() != 0:
        raise unittest.SkipTest(
            "needs root: Exim runs under unshare --mount with private "
            "copies of /etc/passwd and /etc/group bind-mounted")
    cache = os.path.join(sluicetest.BUILDDIR or tempfile.gettempdir(),
                         "exim-debs")
    try:
        EXIM = Exim.prepare(cache)
    except EximUnavailable as e:
        raise AssertionError(f"Debian's Exim is not available: {e}") from None
    unittest.addModuleCleanup(EXIM.cleanup)


def send(port, sender, recipients, body):
    """Send one message; return its id."""
    message = (f"From: {sender or 'mailer-daemon@sluice.test'}\r\n"
               "Subject: queue tools\r\n\r\n").encode() + body
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo()
        code, reply = s.mail(sender)
        assert code == 250, reply
        for r in recipients:
            code, reply = s.rcpt(r)
            assert code == 250, reply
        code, reply = s.data(message)
        assert code == 250, reply
    return re.search(ID.encode(), reply).group(0).decode()


def edit_header_file(path, edit):
    """Rewrite a -H file: edit gets and returns its list of lines."""
    with open(path) as f:
        lines = f.read().split("\n")
    with open(path, "w") as f:
        f.write("\n".join(edit(lines)))


class EximToolsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sluice-exim-tools-")
        os.chmod(cls.dir, 0o755)
        cls.sink = Sink(os.path.join(cls.dir, "sink")).start()
        # Everything to queued.test stays queued; the rest is delivered.
        cls.sink.add_rule("rcpt", 451, times=10000, match="@queued.test")
        cls.d = sluicetest.Daemon(settings=(
            "message_id_format = classic\n"
            f"smarthost = 127.0.0.1::{cls.sink.port}\n"
            "hostlist relay_from_hosts = 127.0.0.1\n"))
        try:
            cls.prepare_queue()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.sink.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def prepare_queue(cls):
        d = cls.d.start()
        p = d.port
        ids = cls.ids = {}
        ids["delivered"] = send(p, "alice@example.test",
                                ["bob@deliver.test", "carol@deliver.test"],
                                b"delivered\r\n")
        ids["two"] = send(p, "alice@example.test",
                          ["x@queued.test", "y@queued.test"], b"two\r\n")
        ids["bounce"] = send(p, "", ["postmaster@queued.test"],
                             b"bounce\r\n")
        ids["kilo"] = send(p, "carol@example.test", ["k@queued.test"],
                           b"k" * 76 + b"\r\n" + b"0123456789" * 1200 +
                           b"\r\n")
        ids["mega"] = send(p, "dave@example.test", ["m@queued.test"],
                           (b"m" * 998 + b"\r\n") * 1600)
        ids["generated"] = send(p, "erin@example.test", ["g@queued.test"],
                                b"generated\r\n")
        sluicetest.wait_for(
            lambda: f"{ids['delivered']} Completed" in d.log() and all(
                f"{ids[k]} ==" in d.log() for k in ids if k != "delivered"),
            WAIT, "every first attempt")
        for args in (("-Mmd", ids["two"], "y@queued.test"),
                     ("-Mf", ids["bounce"])):
            result = d.run(*args)
            assert result.returncode == 0, result
        assert d.stop() == 0

        # Ages, an untrusted sender and a generated address, written
        # into the -H files the way Exim writes them.
        now = int(time.time())
        ages = {"kilo": 25 * 60 + 30, "mega": 2 * 3600 + 600,
                "generated": 4 * 86400, "two": 100 * 86400}
        for name, age in ages.items():
            cls.edit(name, lambda lines, age=age: (
                lines[:3] + [f"{now - age} 0"] + lines[4:]))
        cls.edit("kilo", lambda lines: (
            lines[:4] + ["-sender_set_untrusted"] + lines[4:]))
        cls.edit("generated", lambda lines: [
            "NN alias@queued.test" if line == "XX" else line
            for line in lines])

        cls.exim_config = EXIM.write_config(
            os.path.join(cls.dir, "exim.conf"), d.spool, d.logdir)

    @classmethod
    def edit(cls, name, fn):
        edit_header_file(os.path.join(cls.d.spool, "input",
                                      cls.ids[name] + "-H"), fn)

    def sluice(self, *args):
        result = self.d.run(*args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.decode()

    def exim(self, *args):
        result = EXIM.exim(self.exim_config, *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def tool(self, name, *args, input=None, sandbox=False):
        """Run one of Exim's Perl tools. Only those that run the exim4
        binary need the sandbox."""
        command = [os.path.join(EXIM.sbin, name), *args]
        if sandbox:
            result = EXIM.run(command)
        else:
            result = subprocess.run(command, input=input,
                                    capture_output=True, text=True,
                                    timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_listing_same_as_exim(self):
        queued = sorted(v for k, v in self.ids.items() if k != "delivered")
        for args in (["-bp"], ["-bpu"], ["-bpa"], ["-bpc"],
                     ["-bp", self.ids["kilo"], "1xZZZZ-000000-00"]):
            with self.subTest(args=args):
                self.assertEqual(self.sluice(*args), self.exim(*args))
        # Exim shuffles the unsorted listing at random, so only the
        # blocks can be compared.
        for args in (["-bpr"], ["-bpra"], ["-bpru"]):
            with self.subTest(args=args):
                self.assertEqual(
                    sorted(self.sluice(*args).split("\n\n")),
                    sorted(self.exim(*args).split("\n\n")))
        listing = self.sluice("-bp")
        # What the edits above make the listing show, so this test
        # fails if both programs stop showing it.
        self.assertEqual(re.findall(ID, listing), queued)
        ids = {k: re.escape(v) for k, v in self.ids.items()}
        for pattern in (
                rf"(?m)^25m   12K {ids['kilo']} <carol@example\.test> \(root\)$",
                rf"(?m)^ 2h  1\.5M {ids['mega']} <dave@example\.test>$",
                rf"(?m)^ 4d   \d\d\d {ids['generated']} <erin@example\.test>$",
                rf"(?m)^100d   \d\d\d {ids['two']} <alice@example\.test>$",
                rf"(?m)^ 0m   \d\d\d {ids['bounce']} <> \*\*\* frozen \*\*\*$",
                r"(?m)^        D y@queued\.test$"):
            self.assertRegex(listing, pattern)
        self.assertIn("       +D alias@queued.test\n", self.sluice("-bpa"))

    def test_exiqgrep(self):
        sluice = ["-E", sluicetest.SLUICE_BIN, "-C", self.d.config]
        exim = ["-E", EXIM.binary, "-C", self.exim_config]
        for args in (["-i", "-f", "alice"], ["-c", "-r", "queued"],
                     ["-i", "-z"], ["-i", "-x", "-o", "3600"],
                     ["-a", "-r", "y@queued"]):
            with self.subTest(args=args):
                self.assertEqual(
                    self.tool("exiqgrep", *sluice, *args),
                    self.tool("exiqgrep", *exim, *args, sandbox=True))
        self.assertEqual(self.tool("exiqgrep", *sluice, "-i", "-f", "alice"),
                         self.ids["two"] + "\n")
        self.assertRegex(self.tool("exiqgrep", *sluice, "-c", "-r", "queued"),
                         r"^5 matches out of 5 messages")

    def test_exiqsumm(self):
        summary = self.tool("exiqsumm", input=self.sluice("-bp"))
        self.assertEqual(summary, self.tool("exiqsumm", input=self.exim("-bp")))
        total = re.search(r"^\s*(\d+)\s+(\S+)\s+\S+\s+\S+\s+TOTAL$", summary,
                          re.M)
        self.assertIsNotNone(total, summary)
        self.assertEqual(total.group(1), "5")
        self.assertRegex(summary, r"(?m)^\s*5\s+\S+\s+\S+\s+\S+\s+queued\.test$")

    def test_exipick(self):
        picked = self.tool("exipick", "--spool", self.d.spool, "-i")
        self.assertEqual(sorted(picked.split()),
                         sorted(self.sluice("-bpi").split()))

    def test_exigrep(self):
        msgid = self.ids["delivered"]
        out = self.tool("exigrep", msgid,
                        os.path.join(self.d.logdir, "mainlog"))
        lines = [line for line in out.splitlines() if line]
        self.assertTrue(all(msgid in line for line in lines), out)
        self.assertRegex(lines[0], rf" {msgid} <= alice@example\.test ")
        self.assertEqual(sum(" => " in line or " -> " in line
                             for line in lines), 2, out)
        self.assertRegex(lines[-1], rf" {msgid} Completed$")

    def test_eximstats_counts_deliveries(self):
        mainlog = os.path.join(self.d.logdir, "mainlog")
        with open(mainlog) as f:
            log = f.read()
        # One SMTP transaction took both recipients: "=>" and "->".
        messages = len(re.findall(r"^\S+ \S+ \S+ => ", log, re.M))
        addresses = len(re.findall(r"^\S+ \S+ \S+ [=-]> ", log, re.M))
        received = len(re.findall(r"^\S+ \S+ \S+ <= ", log, re.M))
        self.assertEqual((messages, addresses, received), (1, 2, 6))
        out = self.tool("eximstats", "-nr", mainlog)
        self.assertRegex(out, rf"(?m)^  Received\s+\S+\s+{received}\s")
        self.assertRegex(
            out, rf"(?m)^  Delivered\s+\S+\s+{messages}\s+{addresses}\s")
        self.assertRegex(out, rf"(?m)^  remote_smtp\s+\S+\s+{messages}$")
        self.assertNotIn("blackhole", out)


if __name__ == "__main__":
    sluicetest.main()

"""Debian's Exim 4.96 as a sending client to sluice: STARTTLS, AUTH PLAIN
and CHUNKING with a real peer rather than our own client.

Exim is unpacked from the Debian packages and run in a private mount
namespace (see exim_debian.py). It refuses to deliver as root, so its
exim_user is the sandbox's Debian-exim user, which owns Exim's spool and
log folders."""

import os
import shutil
import subprocess
import tempfile
import unittest

import sluicetest
from exim_debian import EXIM_USER, Exim, EximUnavailable

EXIM = None


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


def sandbox_ids():
    """Return the uid and gid of Debian-exim in the sandbox's passwd."""
    with open(EXIM.passwd) as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == EXIM_USER:
                return int(fields[2]), int(fields[3])
    raise AssertionError(f"{EXIM_USER} missing from the sandbox passwd")


class EximClientTest(sluicetest.DaemonTestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="sluice-exim-client-")
        os.chmod(self.work, 0o755)
        self.addCleanup(shutil.rmtree, self.work, True)
        self.cert, self.key = sluicetest.make_certificate(self.work,
                                                          "sluice.test")
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "s3cret"], check=True,
            capture_output=True, timeout=30).stdout.decode().strip()
        self.passwd = os.path.join(self.work, "passwd")
        with open(self.passwd, "w") as f:
            f.write(f"alice:{hashed}\n")

    def exim_config(self, port):
        uid, gid = sandbox_ids()
        spool = os.path.join(self.work, "exim-spool")
        logs = os.path.join(self.work, "exim-log")
        for folder in (spool, logs):
            os.mkdir(folder)
            os.chown(folder, uid, gid)
        text = (
            "primary_hostname = exim.test\n"
            f"spool_directory = {spool}\n"
            f"log_file_path = {logs}/%slog\n"
            f"exim_user = {EXIM_USER}\n"
            f"exim_group = {EXIM_USER}\n"
            "keep_environment =\n"
            "begin routers\n"
            "to_sluice:\n"
            "  driver = manualroute\n"
            "  domains = *\n"
            "  route_list = * 127.0.0.1\n"
            "  self = send\n"
            "  transport = sluice_smtp\n"
            "begin transports\n"
            "sluice_smtp:\n"
            "  driver = smtp\n"
            f"  port = {port}\n"
            "  hosts_require_tls = *\n"
            "  hosts_require_auth = *\n"
            "  allow_localhost\n"
            "begin retry\n"
            "* * F,1h,1h\n"
            "begin authenticators\n"
            "plain_client:\n"
            "  driver = plaintext\n"
            "  public_name = PLAIN\n"
            "  client_send = ^alice^s3cret\n")
        path = os.path.join(self.work, "exim.conf")
        # Root owns it and only root may write it, or Exim refuses it;
        # the delivery, running as exim_user, must be able to read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(path, 0, 0)
        os.chmod(path, 0o644)
        return path, logs

    # Exim sends EHLO right behind its last handshake message, so this
    # also covers the EHLO that arrives before libevent reports the
    # handshake: that EHLO must already offer AUTH.
    def test_exim_sends_over_tls_with_auth_and_bdat(self):
        d = self.daemon(settings=(
            f"tls_certificate = {self.cert}\n"
            f"tls_privatekey = {self.key}\n"
            f"auth_passwd_file = {self.passwd}\n")).start()
        config, logs = self.exim_config(d.port)
        message = os.path.join(self.work, "message")
        with open(message, "w") as f:
            f.write("Subject: from exim\n\nbody\n")
        # Exim re-executes itself as /usr/sbin/exim4 to deliver, so the
        # unpacked sbin folder is bind-mounted there, in the sandbox only.
        result = EXIM.run(["sh", "-c", 'mount --bind "$1" /usr/sbin && '
                           'exec /usr/sbin/exim4 -C "$2" -odi -f '
                           'a@exim.test b@elsewhere.test < "$3"', "sh",
                           EXIM.sbin, config, message])
        with open(os.path.join(logs, "mainlog"), errors="replace") as f:
            exim_log = f.read()
        self.assertEqual(result.returncode, 0,
                         result.stdout + result.stderr + exim_log)
        self.assertRegex(exim_log, r"=> b@elsewhere.test .*X=TLS1\.[23]:"
                         r".*A=plain_client K C=\"250 OK id=")
        lines = [line for line in d.log().splitlines() if " <= " in line]
        self.assertEqual(len(lines), 1, d.log())
        self.assertIn(" P=esmtpsa ", lines[0])
        self.assertIn(" X=TLS1.", lines[0])
        self.assertIn(" A=plain:alice ", lines[0])
        self.assertRegex(lines[0], r" K ")


if __name__ == "__main__":
    sluicetest.main()

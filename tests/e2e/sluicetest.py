"""Helpers for sluice's end-to-end tests: a daemon on loopback ports with
its own spool, logs and configuration in a temporary folder.

Only the Python standard library is used. Every address is on loopback.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

SLUICE_BIN = os.environ.get("SLUICE_BIN", "")
SRCDIR = os.environ.get("SLUICE_SRCDIR", "")
BUILDDIR = os.environ.get("SLUICE_BUILDDIR", "")

# How long a test waits for the daemon to come up or go down before it
# fails; generous because CI machines are slow, never a speed assertion.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def free_port(host="127.0.0.1"):
    """Return a TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    """Poll predicate until it returns a true value; raise if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def free_udp_and_tcp_port(host):
    """Return a port that is free for both UDP and TCP on host."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port found on " + host)


def udp_port_taken(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        try:
            u.bind((host, port))
        except OSError:
            return True
    return False


class Dnsmasq:
    """dnsmasq on 127.0.0.1, serving only the records it is given."""

    def __init__(self, records):
        self.records = records
        self.port = None
        self.proc = None

    def start(self):
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not os.access(binary, os.X_OK):
            raise AssertionError("dnsmasq not found: install dnsmasq-base")
        self.port = free_udp_and_tcp_port("127.0.0.1")
        self.proc = subprocess.Popen(
            [binary, "--no-daemon", "--no-resolv", "--no-hosts",
             "--conf-file=/dev/null", "--bind-interfaces",
             "--listen-address=127.0.0.1", f"--port={self.port}",
             "--local=/test/", "--log-facility=-", *self.records],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(
                lambda: self.proc.poll() is not None or
                udp_port_taken("127.0.0.1", self.port),
                20, "dnsmasq to listen")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            error = self.proc.stderr.read().decode(errors="replace")
            self.stop()
            raise AssertionError("dnsmasq exited: " + error)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        self.proc = None

    def settings(self):
        """Return the daemon settings that send its DNS queries here."""
        return f"dns_servers = 127.0.0.1\ndns_port = {self.port}\n"



def make_certificate(folder, hostname):
    """Make a self-signed certificate for hostname with openssl in folder;
    return the paths of the certificate and its key. The certificate is
    also its own CA, so a client can verify the server against it."""
    cert = os.path.join(folder, hostname + ".crt")
    key = os.path.join(folder, hostname + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj",
         "/CN=" + hostname, "-addext", "subjectAltName=DNS:" + hostname],
        check=True, capture_output=True, timeout=120)
    return cert, key


class Daemon:
    """A sluice daemon in a temporary folder.

    settings: extra "name = value" lines for the configuration file.
    """

    def __init__(self, settings="", port=None, user=""):
        self.dir = tempfile.mkdtemp(prefix="sluice-e2e-")
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.spool = os.path.join(self.dir, "spool")
        self.logdir = os.path.join(self.dir, "log")
        self.config = os.path.join(self.dir, "sluice.conf")
        self.control_path = os.path.join(self.spool, "sluice-control")
        self.proc = None
        base = (
                "primary_hostname = sluice.test\n"
                f"spool_directory = {self.spool}\n"
                f"log_file_path = {self.logdir}/%slog\n"
                "local_interfaces = 127.0.0.1\n"
                f"daemon_smtp_ports = {self.port}\n"
                f"exim_user = {user}\n"
                "dns_servers = 127.0.0.1\n"
        )
        # Line number of the first line of settings, for error messages.
        self.settings_line = base.count("\n") + 1
        with open(self.config, "w") as f:
            f.write(base + settings)

    def run(self, *args, input=None, env=None):
        """Run the sluice binary with this daemon's configuration."""
        return subprocess.run(
            [SLUICE_BIN, "-C", self.config, *args],
            input=input, capture_output=True, timeout=60, env=env)

    def start(self, *extra):
        # A daemon that was killed leaves its control socket behind; the
        # new one replaces it, so remove it first to wait for the new one.
        if os.path.exists(self.control_path):
            os.unlink(self.control_path)
        self.proc = subprocess.Popen(
            [SLUICE_BIN, "-bdf", "-C", self.config, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The listeners are bound before the event loop starts, so wait for
        # the control socket too: it is the last thing set up.
        wait_for(self._accepting, START_TIMEOUT,
                 f"the daemon to listen on port {self.port}")
        # The socket file appears at bind(), a moment before listen().
        wait_for(self._control_listening, START_TIMEOUT, "the control socket")
        return self

    def _control_listening(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.control_path)
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        return True

    def _accepting(self):
        if self.proc.poll() is not None:
            out, err = self.proc.communicate()
            raise AssertionError(
                f"daemon exited with {self.proc.returncode}: "
                f"{err.decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        """Send sig and wait for the exit; return the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon ignored signal {sig}")
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self, name="main"):
        """Return the text of mainlog, rejectlog or paniclog ('' if absent)."""
        path = os.path.join(self.logdir, f"{name}log")
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def control(self, command):
        """Send one command to the control socket; return the reply text."""
        path = self.control_path
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode()

    def cleanup(self):
        self.kill()
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        if os.environ.get("SLUICE_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class DaemonTestCase(unittest.TestCase):
    """A test case that stops and removes its daemons afterwards."""

    def daemon(self, **kwargs):
        d = Daemon(**kwargs)
        self.addCleanup(d.cleanup)
        return d


def main():
    if not SLUICE_BIN or not os.access(SLUICE_BIN, os.X_OK):
        raise SystemExit("SLUICE_BIN must name the built sluice binary "
                         "(make check sets it)")
    unittest.main(verbosity=2)

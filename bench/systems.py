"""The MTAs that bench/run compares: sluice, Exim 4.96 and Postfix 3.7.

Each class writes a configuration into its run folder: listen on a free
port of 127.0.0.1, relay mail from 127.0.0.1 for any domain, and send
everything to the sink on 127.0.0.1. start() runs the daemon in the
foreground inside a measuring cgroup. All three make each message
durable before they reply 250 to its final dot. Exim and Postfix fsync
their queue files (both seen with strace -f), and sluice commits its -D
and -H files before the reply.

Settings that differ from each MTA's defaults, and why:
- Exim: smtp_accept_max = 300 (the default 20 would reject 80 of the
  100 connections), smtp_accept_queue_per_connection = 0 (the default
  10 queues every message after the 10th of a reused connection
  instead of delivering it at once), no ident or reverse DNS lookups,
  no STARTTLS offer, and exim_path naming the unpacked binary.
- Postfix: default_process_limit = 200 (the default 100 caps smtpd
  processes at exactly the 100 clients of the 100-connection runs, so a
  new connection waits while a process finishes its previous session),
  no reverse DNS lookup of clients, no TLS, no chroot, and logging to a
  file through postlogd.
- sluice: smtp_accept_max = 300 as for Exim (the default is 20 here
  too), and the lines given with bench/run --sluice-option.
"""

import os
import pwd
import grp
import signal
import socket
import subprocess

from measure import BenchError, free_port, listening, wait_until

START_TIMEOUT = 30
STOP_TIMEOUT = 15


class Server:
    """A daemon under test, whose subclasses write its configuration."""

    name = ""

    def __init__(self, tools, folder, sink_port):
        self.tools = tools
        self.folder = folder
        self.sink_port = sink_port
        self.port = free_port()
        self.process = None
        self.output = os.path.join(folder, f"{self.name}.out")

    def command(self):
        raise NotImplementedError

    def env(self):
        return self.tools.env

    def start(self, cgroup):
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=self.env(),
                preexec_fn=cgroup.enter)
        wait_until(lambda: self.ready() or self.process.poll() is not None,
                   START_TIMEOUT, f"{self.name} to listen on port {self.port}")
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with "
                             f"{self.process.returncode} at start; see "
                             f"{self.output}")

    def ready(self):
        return listening(self.port)

    def stats(self):
        """Return the daemon's own counters (none unless overridden)."""
        return {}

    def stop(self):
        """Send SIGTERM and wait. The caller's cgroup kills what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Sluice(Server):
    name = "sluice"

    def __init__(self, tools, folder, sink_port, binary, extra_lines=()):
        super().__init__(tools, folder, sink_port)
        self.binary = binary
        self.spool = os.path.join(folder, "spool")
        os.mkdir(self.spool)
        self.config = os.path.join(folder, "sluice.conf")
        # An empty exim_user keeps the user that started the daemon. No
        # DNS lookup is expected, and dns_servers keeps any on 127.0.0.1.
        _write(self.config,
               "primary_hostname = sluice.bench.test\n"
               f"spool_directory = {self.spool}\n"
               f"log_file_path = {self.spool}/%slog\n"
               "local_interfaces = 127.0.0.1\n"
               f"daemon_smtp_ports = {self.port}\n"
               "smtp_accept_max = 300\n"
               "exim_user =\n"
               "dns_servers = 127.0.0.1\n"
               "hostlist relay_from_hosts = 127.0.0.1\n"
               f"smarthost = 127.0.0.1::{sink_port}\n" +
               "".join(f"{line}\n" for line in extra_lines))

    def command(self):
        return [self.binary, "-bdf", "-C", self.config]

    def ready(self):
        return (listening(self.port) and
                os.path.exists(os.path.join(self.spool, "sluice-control")))

    def stats(self):
        """Return the counters of the control socket's "stats" command."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(os.path.join(self.spool, "sluice-control"))
            s.sendall(b"stats\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        counters = {}
        for line in data.decode("ascii", "replace").splitlines():
            name, sep, value = line.partition("=")
            if sep and value.isdigit():
                counters[name] = int(value)
        return counters


class Exim(Server):
    name = "exim"
    USER = "Debian-exim"

    def __init__(self, tools, folder, sink_port):
        super().__init__(tools, folder, sink_port)
        user = pwd.getpwnam(self.USER)
        spool = os.path.join(folder, "exim-spool")
        logs = os.path.join(folder, "exim-log")
        for path in (spool, logs):
            os.mkdir(path)
            os.chown(path, user.pw_uid, user.pw_gid)
        self.mainlog = os.path.join(logs, "mainlog")
        # Exim accepts -C only for a file that root owns and only root can
        # write. Its delivery processes re-read it as Debian-exim.
        self.config = os.path.join(folder, "exim.conf")
        _write(self.config, f"""\
primary_hostname = exim.bench.test
exim_path = {tools.exim}
spool_directory = {spool}
log_file_path = {logs}/%slog
exim_user = {self.USER}
exim_group = {self.USER}
never_users = root
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = {self.port}
smtp_accept_max = 300
smtp_accept_queue_per_connection = 0
smtp_connect_backlog = 1024
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
hostlist relay_from_hosts = 127.0.0.1
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny

begin routers

smarthost:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = remote_smtp
  no_more

begin transports

remote_smtp:
  driver = smtp
  port = {sink_port}
  allow_localhost
  hosts_avoid_tls = *

begin retry

* * F,1h,15m
""")
        os.chown(self.config, 0, 0)

    def command(self):
        return [self.tools.exim, "-bdf", "-C", self.config]


# Postfix's services for a relay that takes SMTP and delivers by SMTP,
# none chrooted (columns: service type private unpriv chroot wakeup
# maxproc command).
POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

# Queue folders: (name, group or None for the postfix user's, mode).
POSTFIX_QUEUE_FOLDERS = (
    ("active", None, 0o700), ("bounce", None, 0o700),
    ("corrupt", None, 0o700), ("defer", None, 0o700),
    ("deferred", None, 0o700), ("flush", None, 0o700),
    ("hold", None, 0o700), ("incoming", None, 0o700),
    ("saved", None, 0o700), ("trace", None, 0o700),
    ("private", None, 0o700), ("maildrop", "postdrop", 0o730),
    ("public", "postdrop", 0o710),
)


class Postfix(Server):
    name = "postfix"

    def __init__(self, tools, folder, sink_port):
        super().__init__(tools, folder, sink_port)
        user = pwd.getpwnam("postfix")
        postdrop = grp.getgrnam("postdrop").gr_gid
        self.config_dir = os.path.join(folder, "postfix-etc")
        queue = os.path.join(folder, "postfix-queue")
        data = os.path.join(folder, "postfix-data")
        self.maillog = os.path.join(folder, "postfix-maillog")
        os.mkdir(self.config_dir)
        os.mkdir(queue, 0o755)
        os.mkdir(os.path.join(queue, "pid"), 0o755)
        for name, group, mode in POSTFIX_QUEUE_FOLDERS:
            path = os.path.join(queue, name)
            os.mkdir(path)
            os.chown(path, user.pw_uid,
                     postdrop if group else user.pw_gid)
            os.chmod(path, mode)
        os.mkdir(data, 0o700)
        os.chown(data, user.pw_uid, user.pw_gid)
        _write(os.path.join(self.config_dir, "main.cf"), f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
daemon_directory = {tools.postfix_daemons}
command_directory = {tools.postfix_commands}
shlib_directory = {tools.postfix_lib}
meta_directory = {self.config_dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{sink_port}
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
default_process_limit = 200
maillog_file = {self.maillog}
maillog_file_prefixes = {folder}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C \
LD_LIBRARY_PATH={tools.postfix_lib}
""")
        _write(os.path.join(self.config_dir, "master.cf"),
               POSTFIX_MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        # Postfix reads the list of its dynamically loaded map types from
        # meta_directory; Debian's list names only optional packages.
        shipped = os.path.join(tools.root, "usr", "share", "postfix",
                               "dynamicmaps.cf")
        if os.path.exists(shipped):
            with open(shipped) as f:
                _write(os.path.join(self.config_dir, "dynamicmaps.cf"),
                       f.read())

    def command(self):
        return [os.path.join(self.tools.postfix_daemons, "master"), "-d",
                "-c", self.config_dir]


SYSTEMS = ("raw", "exim", "postfix", "sluice")

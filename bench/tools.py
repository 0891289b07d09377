"""Debian's Exim 4.96 and Postfix 3.7, unpacked for bench/run, never
installed.

Installing exim4 or postfix would start a daemon and make it the
machine's MTA. Like tests/e2e/exim_debian.py (which this module reuses
for Exim), the .deb files are fetched with "apt-get download" into a
cache folder and unpacked with "dpkg -x" into a temporary root.

Both MTAs look up their compiled-in users by name: Debian-exim, and
postfix with the group postdrop. So bench/run runs in a private mount
namespace, where copies of /etc/passwd and /etc/group that contain those
users are bind-mounted over the real files. A private /etc/resolv.conf that names
only 127.0.0.1 is mounted the same way, so that no MTA can send a DNS
query off the machine. The machine's /etc is never changed.

The Postfix package also contains smtp-source and smtp-sink, the load
generator and the sink of every run.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
import exim_debian  # noqa: E402  (path set just above)

POSTFIX_PACKAGE = "postfix"
POSTFIX_USER = "postfix"
POSTFIX_GROUP = "postdrop"

# Mounts the three private files, then runs the command in "$@". Run it
# under "unshare --mount --propagation private".
SANDBOX_SCRIPT = ('mount --bind "$1" /etc/passwd && '
                  'mount --bind "$2" /etc/group && '
                  'mount --bind "$3" /etc/resolv.conf && '
                  'shift 3 && exec "$@"')


class ToolsUnavailable(Exception):
    """A package could not be downloaded, unpacked or made to run."""


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 600), **kwargs)


def _download_postfix(cache):
    found = glob.glob(os.path.join(cache, f"{POSTFIX_PACKAGE}_*.deb"))
    if found:
        return max(found, key=os.path.getmtime)
    command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
               POSTFIX_PACKAGE]
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        result = _run(command, cwd=scratch)
        if result.returncode != 0:
            _run(["apt-get", "update", "-q"])
            result = _run(command, cwd=scratch)
        if result.returncode != 0:
            raise ToolsUnavailable(f"'{' '.join(command)}' failed:\n"
                                   f"{result.stderr.strip()}")
        for name in os.listdir(scratch):
            os.rename(os.path.join(scratch, name), os.path.join(cache, name))
    found = glob.glob(os.path.join(cache, f"{POSTFIX_PACKAGE}_*.deb"))
    if not found:
        raise ToolsUnavailable(f"apt-get download left no postfix .deb in "
                               f"{cache}")
    return max(found, key=os.path.getmtime)


def _free_ids(count, *files):
    """Return count numbers used as neither uid nor gid in files."""
    used = set()
    for path in files:
        with open(path) as f:
            for line in f:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    used.add(int(fields[2]))
    free = [n for n in range(64000, 65534) if n not in used][:count]
    if len(free) < count:
        raise ToolsUnavailable("no free uid/gid between 64000 and 65533")
    return free


class Tools:
    """Paths of the unpacked packages and of the sandbox files.

    prepare() downloads and unpacks, and cleanup() removes the unpacked
    tree. Inside the sandbox, Tools(root) rebuilds the paths from the
    root alone.
    """

    def __init__(self, root):
        self.root = root
        self.exim = os.path.join(root, "usr", "sbin", "exim4")
        self.postfix_lib = os.path.join(root, "usr", "lib", "postfix")
        self.postfix_daemons = os.path.join(self.postfix_lib, "sbin")
        self.postfix_commands = os.path.join(root, "usr", "sbin")
        self.smtp_source = os.path.join(root, "usr", "sbin", "smtp-source")
        self.smtp_sink = os.path.join(root, "usr", "sbin", "smtp-sink")
        self.passwd = os.path.join(root, "sandbox-passwd")
        self.group = os.path.join(root, "sandbox-group")
        self.resolv = os.path.join(root, "sandbox-resolv.conf")
        # The Postfix programs find their own shared libraries
        # (libpostfix-*.so) through this.
        self.env = dict(os.environ, LD_LIBRARY_PATH=self.postfix_lib)
        self.exim_version = ""
        self.postfix_version = ""
        self.installed = []

    @classmethod
    def prepare(cls, cache):
        """Download (or reuse) and unpack Exim and Postfix; raise
        ToolsUnavailable when either cannot be made to run."""
        os.makedirs(cache, exist_ok=True)
        try:
            exim = exim_debian.Exim.prepare(cache)
        except exim_debian.EximUnavailable as e:
            raise ToolsUnavailable(f"Exim: {e}")
        tools = cls(exim.root)
        tools.installed = list(exim.installed)
        tools.exim_version = exim.version
        try:
            deb = _download_postfix(cache)
            result = _run(["dpkg", "-x", deb, tools.root])
            if result.returncode != 0:
                raise ToolsUnavailable(f"dpkg -x {deb} failed: "
                                       f"{result.stderr.strip()}")
            tools._install_postfix_libraries(deb)
            tools._write_sandbox_files(exim)
            tools.postfix_version = os.path.basename(deb).split("_")[1]
            return tools
        except BaseException:
            exim.cleanup()
            raise

    def _missing_postfix_libraries(self):
        missing = set()
        for binary in (self.smtp_source, self.smtp_sink,
                       os.path.join(self.postfix_daemons, "master"),
                       os.path.join(self.postfix_daemons, "smtpd")):
            result = _run(["ldd", binary], env=self.env)
            missing.update(line.split()[0] for line in
                           result.stdout.splitlines() if "not found" in line)
        return sorted(missing)

    def _install_postfix_libraries(self, deb):
        if not self._missing_postfix_libraries():
            return
        wanted = exim_debian.library_dependencies(deb)
        command = ["apt-get", "install", "-y", "-q",
                   "--no-install-recommends", *wanted]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        result = _run(command, env=env, timeout=900)
        if result.returncode != 0:
            raise ToolsUnavailable(f"'{' '.join(command)}' failed:\n"
                                   f"{result.stderr.strip()}")
        self.installed += wanted
        still = self._missing_postfix_libraries()
        if still:
            raise ToolsUnavailable("Postfix still lacks " + ", ".join(still))

    def _write_sandbox_files(self, exim):
        """Add the Postfix users to the passwd and group copies that
        Exim.prepare wrote (with Debian-exim), and write resolv.conf."""
        if (exim.passwd, exim.group) != (self.passwd, self.group):
            raise ToolsUnavailable(
                f"expected Exim's sandbox files at {self.passwd} and "
                f"{self.group}, found {exim.passwd} and {exim.group}")
        with open(self.passwd) as f:
            names = {line.split(":")[0] for line in f}
        if POSTFIX_USER not in names:
            uid, gid, postdrop = _free_ids(3, self.passwd, self.group)
            with open(self.passwd, "a") as f:
                f.write(f"{POSTFIX_USER}:x:{uid}:{gid}:Postfix sandbox:"
                        "/nonexistent:/usr/sbin/nologin\n")
            with open(self.group, "a") as f:
                f.write(f"{POSTFIX_USER}:x:{gid}:\n"
                        f"{POSTFIX_GROUP}:x:{postdrop}:\n")
        with open(self.resolv, "w") as f:
            f.write("# bench/run: DNS queries stay on this machine\n"
                    "nameserver 127.0.0.1\n")

    def sandbox_command(self, command):
        """Return command wrapped to run in a private mount namespace
        with the sandbox's passwd, group and resolv.conf."""
        return ["unshare", "--mount", "--propagation", "private",
                "sh", "-c", SANDBOX_SCRIPT, "sh", self.passwd, self.group,
                self.resolv, *command]

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

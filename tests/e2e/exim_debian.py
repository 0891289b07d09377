"""Debian's Exim, unpacked but not installed, for the tests that run
Exim's own queue tools on sluice's spool.

Installing the exim4 packages would start a daemon and make Exim the
machine's MTA, so this module never installs them. It fetches the .deb
files with "apt-get download" into a cache folder, which later runs reuse,
and unpacks them with "dpkg -x" into a temporary root.

The exim4 binary looks up its compiled-in user "Debian-exim" before it
reads any configuration. Every Exim command therefore runs in a private
mount namespace (unshare --mount), where copies of /etc/passwd and
/etc/group that contain that user are bind-mounted over the real files.
The machine's /etc is never changed.

Needs root (unshare, mount, apt-get) and, on the first run, access to
the Debian package mirror. Only the Python standard library is used.

Command line, to look around by hand:

    python3 exim_debian.py CACHE_DIR [exim4 arguments...]

prepares Exim with CACHE_DIR as the download cache and runs exim4 with
the arguments in the sandbox (-bV when none are given).
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

PACKAGES = ("exim4-base", "exim4-daemon-heavy", "exim4-config")

# The package whose binary needs shared libraries that a fresh Debian
# machine may lack.
DAEMON_PACKAGE = "exim4-daemon-heavy"

EXIM_USER = "Debian-exim"

# Perl modules that exipick and exiqgrep load. Pod::Usage and
# Getopt::Std are in perl-modules-5.36 (package "perl"), not perl-base.
PERL_MODULES = ("Getopt::Long", "Getopt::Std", "File::Basename", "Pod::Usage")

COMMAND_TIMEOUT = 120


class EximUnavailable(Exception):
    """Exim could not be downloaded, unpacked or run in the sandbox."""


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", COMMAND_TIMEOUT),
                          **kwargs)


def _cached_deb(cache, package):
    """Return the newest cached .deb of package, or None."""
    found = glob.glob(os.path.join(cache, f"{package}_*.deb"))
    if not found:
        return None
    return max(found, key=os.path.getmtime)


def _apt_get_update():
    result = _run(["apt-get", "update", "-q"], timeout=600)
    if result.returncode != 0:
        raise EximUnavailable(
            "apt-get update failed; the test needs access to Debian's "
            f"package mirror:\n{result.stderr.strip()}")


def download(cache):
    """Download the Exim packages into cache unless they are there already.

    Returns {package: path of its .deb}. A failed download raises
    EximUnavailable with apt-get's message.
    """
    os.makedirs(cache, exist_ok=True)
    debs = {p: _cached_deb(cache, p) for p in PACKAGES}
    missing = [p for p, path in debs.items() if path is None]
    if not missing:
        return debs

    # Download into a scratch folder and move the files afterwards, so an
    # interrupted download never leaves a truncated .deb in the cache.
    # APT::Sandbox::User=root: apt's "_apt" user cannot write here.
    command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
               *missing]
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        result = _run(command, cwd=scratch, timeout=600)
        if result.returncode != 0:
            # A machine whose package lists were never fetched, or are
            # out of date, has no (current) exim4 package. Fetch the lists
            # once and try again.
            _apt_get_update()
            result = _run(command, cwd=scratch, timeout=600)
        if result.returncode != 0:
            raise EximUnavailable(
                f"'{' '.join(command)}' failed; the test needs access to "
                f"Debian's package mirror:\n{result.stderr.strip()}")
        for name in os.listdir(scratch):
            os.rename(os.path.join(scratch, name), os.path.join(cache, name))

    debs = {p: _cached_deb(cache, p) for p in PACKAGES}
    for package, path in debs.items():
        if path is None:
            raise EximUnavailable(
                f"apt-get download left no .deb for {package} in {cache}")
    return debs


def missing_libraries(binary):
    """Return the shared libraries of binary that ldd reports as not found."""
    result = _run(["ldd", binary])
    if result.returncode != 0:
        raise EximUnavailable(f"ldd {binary} failed: {result.stderr.strip()}")
    return [line.split()[0] for line in result.stdout.splitlines()
            if "not found" in line]


def missing_perl_modules():
    return [m for m in PERL_MODULES
            if _run(["perl", f"-M{m}", "-e", "1"]).returncode != 0]


def _installed(package):
    result = _run(["dpkg-query", "-W", "-f", "${db:Status-Status}", package])
    return result.returncode == 0 and result.stdout == "installed"


def library_dependencies(deb):
    """Return the lib* packages that deb depends on (first alternatives)."""
    result = _run(["dpkg-deb", "-f", deb, "Depends"])
    if result.returncode != 0:
        raise EximUnavailable(f"dpkg-deb -f {deb} failed: "
                              f"{result.stderr.strip()}")
    packages = []
    for item in result.stdout.split(","):
        name = item.split("|")[0].split("(")[0].split(":")[0].strip()
        if name.startswith("lib"):
            packages.append(name)
    return packages


def install_missing_runtime(debs, binary):
    """Install the Debian packages that Exim's binary or Perl tools lack.

    Returns the list of packages installed (usually empty: dev.sh installs
    them). Only the library dependencies of the daemon package that are
    not installed yet are added, and perl when exipick's modules are
    missing.
    """
    to_install = []
    if missing_libraries(binary):
        to_install += [p for p in library_dependencies(debs[DAEMON_PACKAGE])
                       if not _installed(p)]
    if shutil.which("perl") is None or missing_perl_modules():
        to_install.append("perl")
    if not to_install:
        return []

    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               *to_install]
    result = _run(command, env=env, timeout=900)
    if result.returncode != 0:
        _apt_get_update()
        result = _run(command, env=env, timeout=900)
    if result.returncode != 0:
        raise EximUnavailable(f"'{' '.join(command)}' failed:\n"
                              f"{result.stderr.strip()}")

    still = missing_libraries(binary)
    if still:
        raise EximUnavailable(
            f"{binary} still lacks {', '.join(still)} after installing "
            f"{' '.join(to_install)}")
    return to_install


def _free_id(*files):
    """Return a number used as neither uid nor gid in the given files."""
    used = set()
    for path in files:
        with open(path) as f:
            for line in f:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    used.add(int(fields[2]))
    for candidate in range(64000, 65534):
        if candidate not in used:
            return candidate
    raise EximUnavailable("no free uid/gid between 64000 and 65533")


class Exim:
    """Exim unpacked into a temporary root, and a sandbox to run it in.

    Create it with Exim.prepare(cache) and call cleanup() at the end.
    """

    def __init__(self, root, installed):
        self.root = root
        self.sbin = os.path.join(root, "usr", "sbin")
        self.binary = os.path.join(self.sbin, "exim4")
        self.installed = installed      # packages install_missing_runtime added
        self.passwd = os.path.join(root, "sandbox-passwd")
        self.group = os.path.join(root, "sandbox-group")
        self.version = ""

    @classmethod
    def prepare(cls, cache):
        """Download (or reuse) the packages, unpack them and check that
        exim4 -bV runs in the sandbox. Raises EximUnavailable."""
        if shutil.which("unshare") is None:
            raise EximUnavailable("unshare not found (package util-linux)")
        debs = download(cache)
        root = tempfile.mkdtemp(prefix="sluice-exim-")
        try:
            for deb in debs.values():
                result = _run(["dpkg", "-x", deb, root])
                if result.returncode != 0:
                    raise EximUnavailable(f"dpkg -x {deb} failed: "
                                          f"{result.stderr.strip()}")
            binary = os.path.join(root, "usr", "sbin", "exim4")
            exim = cls(root, install_missing_runtime(debs, binary))
            exim._write_sandbox_files()
            exim._point_tools_at_binary()
            exim._check_version()
            return exim
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _write_sandbox_files(self):
        shutil.copyfile("/etc/passwd", self.passwd)
        shutil.copyfile("/etc/group", self.group)
        with open(self.passwd) as f:
            present = any(line.startswith(EXIM_USER + ":") for line in f)
        if present:
            return
        number = _free_id("/etc/passwd", "/etc/group")
        with open(self.passwd, "a") as f:
            f.write(f"{EXIM_USER}:x:{number}:{number}:Exim sandbox:"
                    "/nonexistent:/usr/sbin/nologin\n")
        with open(self.group, "a") as f:
            f.write(f"{EXIM_USER}:x:{number}:\n")

    def _point_tools_at_binary(self):
        """Make exipick's built-in exim path name the unpacked binary.

        exipick runs "/usr/sbin/exim -C <conf> -bP spool_directory" for its
        -C option and has no option to name another binary, unlike
        exiqgrep's -E. This edits only the private unpacked copy.
        """
        path = os.path.join(self.sbin, "exipick")
        with open(path) as f:
            text = f.read()
        old = "my $exim  = '/usr/sbin/exim';"
        if old not in text:
            raise EximUnavailable(f"{path} has no line {old!r} to adjust")
        with open(path, "w") as f:
            f.write(text.replace(old, f"my $exim  = '{self.binary}';", 1))

    def _check_version(self):
        result = self.run([self.binary, "-bV"])
        first = result.stdout.splitlines()[0] if result.stdout else ""
        if not first.startswith("Exim version"):
            raise EximUnavailable(
                f"exim4 -bV failed in the sandbox (exit {result.returncode}):"
                f"\n{result.stdout}{result.stderr}")
        self.version = first

    def run(self, command, binary=False):
        """Run command in the sandbox; return the CompletedProcess.

        stdout and stderr are bytes when binary is true, else text decoded
        as UTF-8 with undecodable bytes kept as surrogate escapes.
        """
        script = ('mount --bind "$1" /etc/passwd && '
                  'mount --bind "$2" /etc/group && shift 2 && exec "$@"')
        text = {} if binary else {"encoding": "utf-8",
                                  "errors": "surrogateescape"}
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private",
             "sh", "-c", script, "sh", self.passwd, self.group, *command],
            stdin=subprocess.DEVNULL, capture_output=True,
            timeout=COMMAND_TIMEOUT, **text)

    def exim(self, config, *args, binary=False):
        """Run exim4 -C config with args in the sandbox."""
        return self.run([self.binary, "-C", config, *args], binary=binary)

    def exipick(self, *args):
        return self.run([os.path.join(self.sbin, "exipick"), *args])

    def exiqgrep(self, config, *args):
        return self.run([os.path.join(self.sbin, "exiqgrep"),
                         "-E", self.binary, "-C", config, *args])

    def write_config(self, path, spool_directory, log_directory,
                     split_spool_directory=False):
        """Write an Exim configuration for reading a spool.

        exim_user is root because Exim opens its log files as exim_user,
        and the temporary folders belong to root. Exim accepts a -C file
        only when root owns it and neither its group nor others can write
        it.
        """
        text = ("primary_hostname = exim.test\n"
                f"spool_directory = {spool_directory}\n"
                f"split_spool_directory = "
                f"{'true' if split_spool_directory else 'false'}\n"
                f"log_file_path = {log_directory}/exim-%slog\n"
                "exim_user = root\n"
                "exim_group = root\n"
                "keep_environment =\n")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
        return path

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: exim_debian.py CACHE_DIR [exim4 arguments...]")
    if os.geteuid() != 0:
        raise SystemExit("exim_debian.py: needs root (unshare and mount)")
    exim = Exim.prepare(sys.argv[1])
    try:
        if exim.installed:
            print("installed:", " ".join(exim.installed))
        result = exim.run([exim.binary, *(sys.argv[2:] or ["-bV"])])
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
    finally:
        exim.cleanup()


if __name__ == "__main__":
    sys.exit(main())

"""Measuring tools for bench/run: CPU and memory of a process tree, the
smtp-sink and smtp-source load tools, and the disk's durable-write rate.

CPU time comes from a cgroup v2 folder (cpu.stat usage_usec): every
process the MTA forks stays in its cgroup, so processes that exit, or
that are orphaned and reaped by init, are still counted. Memory is the
sum of the proportional set size (Pss in /proc/PID/smaps_rollup) of the
cgroup's processes, so library pages shared by forked processes count
once. It is sampled on a timer, so a peak shorter than the sampling
interval can be missed.

Only the Python standard library is used.
"""

import ctypes
import os
import re
import socket
import subprocess
import threading
import time

# Payload of each test message in bytes (smtp-source -l); headers come on
# top of it.
MESSAGE_BYTES = 5120

SINK_BACKLOG = 1024


class BenchError(Exception):
    """A step of the benchmark failed; the message names the step and
    the cause."""


def cgroup2_root():
    """Return the mount point of the cgroup v2 hierarchy, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return left.split(" ")[4]
    return None


class Cgroup:
    """A cgroup v2 folder that contains one MTA's processes.

    Create it, start the MTA with preexec_fn=cgroup.enter, read
    cpu_seconds() before and after the load, and call destroy() at the
    end: it kills whatever is left in the group and removes the folder.
    """

    def __init__(self, name):
        root = cgroup2_root()
        if root is None:
            raise BenchError("no cgroup v2 hierarchy is mounted; CPU time "
                             "of all of an MTA's processes cannot be "
                             "measured")
        self.path = os.path.join(root, name)
        try:
            os.mkdir(self.path)
        except OSError as e:
            raise BenchError(f"cannot create cgroup {self.path}: {e}")

    def enter(self):
        """Move the calling process into the group (a preexec_fn)."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def cpu_seconds(self):
        with open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                name, value = line.split()
                if name == "usage_usec":
                    return int(value) / 1e6
        raise BenchError(f"{self.path}/cpu.stat has no usage_usec")

    def pids(self):
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]

    def kill(self):
        """Send SIGKILL to every process in the group."""
        kill_file = os.path.join(self.path, "cgroup.kill")
        if os.path.exists(kill_file):
            with open(kill_file, "w") as f:
                f.write("1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def destroy(self, timeout=10.0):
        """Kill what is left, wait for the group to empty, remove it."""
        deadline = time.monotonic() + timeout
        while self.pids():
            self.kill()
            if time.monotonic() > deadline:
                raise BenchError(f"processes {self.pids()} of {self.path} "
                                 "survive SIGKILL")
            time.sleep(0.05)
        os.rmdir(self.path)


def _memory_kib(pid):
    """Return (Pss, Rss) of pid in KiB, or zeros once it has exited."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass    # the process exited between listing and reading
    return pss, rss


class MemorySampler:
    """A thread that records the peaks of the summed Pss and of the
    summed Rss (which counts shared pages once per process) of a cgroup.
    """

    def __init__(self, cgroup, interval=0.1):
        self.cgroup = cgroup
        self.interval = interval
        self.peak_pss_kib = 0
        self.peak_rss_kib = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        pids = self.cgroup.pids()
        self.peak_processes = max(self.peak_processes, len(pids))
        sizes = [_memory_kib(p) for p in pids]
        self.peak_pss_kib = max(self.peak_pss_kib, sum(s[0] for s in sizes))
        self.peak_rss_kib = max(self.peak_rss_kib, sum(s[1] for s in sizes))

    def stop(self):
        """Stop sampling; return the peaks (Pss, Rss) in MiB."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peak_pss_kib / 1024.0, self.peak_rss_kib / 1024.0


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Return True once something listens on 127.0.0.1:port.

    Reads /proc/net/tcp instead of connecting, so that the check opens
    no SMTP session.
    """
    expected = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == expected and fields[3] == "0A":
                return True
    return False


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for "
                             f"{what}")
        time.sleep(0.02)


class Sink:
    """Postfix's smtp-sink on 127.0.0.1, counting the messages it takes.

    smtp-sink -c rewrites a counter line ("sess=N quit=N mesg=N", ended by
    a carriage return) after every session, QUIT and message. It goes to
    a file, because a pipe that the benchmark reads too slowly would fill
    up and stall the sink, and count() reads the end of that file.
    """

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, tools, folder, user="nobody"):
        self.port = free_port()
        self.output = os.path.join(folder, "smtp-sink.out")
        self._out = open(self.output, "wb")
        self.process = subprocess.Popen(
            [tools.smtp_sink, "-c", "-u", user, f"127.0.0.1:{self.port}",
             str(SINK_BACKLOG)],
            stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, env=tools.env)
        wait_until(lambda: listening(self.port) or
                   self.process.poll() is not None, 10, "smtp-sink to listen")
        if self.process.poll() is not None:
            raise BenchError(f"smtp-sink exited with {self.process.returncode}"
                             f"; see {self.output}")

    def count(self):
        with open(self.output, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200))
            found = self.COUNTER.findall(f.read())
        return int(found[-1]) if found else 0

    def wait_for(self, messages, timeout):
        """Wait until the sink has taken messages; return the monotonic
        time at which the count was first seen, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self.count() >= messages:
                return now
            if now > deadline:
                return None
            time.sleep(0.005)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._out.close()


def run_source(tools, port, messages, sessions, recipients, reuse, log,
               timeout):
    """Send messages with smtp-source and return its wall-clock seconds.

    smtp-source waits for the reply to each message's final dot, so its
    run time is the time until the last message was accepted.
    """
    command = [tools.smtp_source, "-s", str(sessions), "-m", str(messages),
               "-l", str(MESSAGE_BYTES), "-r", str(recipients),
               "-M", "source.bench.test", "-f", "sender@source.bench.test",
               "-t", "rcpt@sink.bench.test"]
    if reuse:
        command.append("-d")
    command.append(f"127.0.0.1:{port}")
    start = time.monotonic()
    with open(log, "ab") as out:
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    env=tools.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"smtp-source did not finish in {timeout} s")
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise BenchError(f"smtp-source exited with {result.returncode}; "
                         f"see {log}")
    return elapsed


# Durable writes: the disk's ceiling for a spool.

_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(fd):
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _write_file(folder, name, payload, sync):
    temporary = os.path.join(folder, name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, payload)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return temporary, os.path.join(folder, name)


def _durable_one_at_a_time(folder, prefix, count, payload):
    dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(count):
            temporary, final = _write_file(folder, f"{prefix}{i}", payload,
                                           True)
            os.rename(temporary, final)
            os.fsync(dirfd)
    finally:
        os.close(dirfd)


def durable_writes(folder, mode, files, writers=20, batch=20):
    """Return durable 5 KB file writes per second in folder.

    mode "single": one writer; each file is created, written, fsynced,
    renamed into place, and the folder fsynced, before the next.
    mode "parallel": writers threads do the same at once, so the file
    system can join their syncs into shared journal commits.
    mode "batched": one writer makes groups of batch files durable
    together: write them all, one syncfs(2), rename them all, one fsync
    of the folder (what a spool's group commit does).
    The files are removed afterwards.
    """
    payload = os.urandom(MESSAGE_BYTES)
    os.makedirs(folder, exist_ok=True)
    start = time.monotonic()
    if mode == "single":
        _durable_one_at_a_time(folder, "s", files, payload)
    elif mode == "parallel":
        per_writer = files // writers
        files = per_writer * writers
        threads = [threading.Thread(target=_durable_one_at_a_time,
                                    args=(folder, f"p{w}-", per_writer,
                                          payload))
                   for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif mode == "batched":
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for first in range(0, files, batch):
                pending = [_write_file(folder, f"b{i}", payload, False)
                           for i in range(first, min(files, first + batch))]
                _syncfs(dirfd)
                for temporary, final in pending:
                    os.rename(temporary, final)
                os.fsync(dirfd)
        finally:
            os.close(dirfd)
    else:
        raise ValueError(f"unknown durable write mode {mode!r}")
    elapsed = time.monotonic() - start
    if mode == "parallel" and len(os.listdir(folder)) != files:
        raise BenchError(f"parallel writers left {len(os.listdir(folder))} "
                         f"files in {folder}, expected {files}")
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    return files / elapsed

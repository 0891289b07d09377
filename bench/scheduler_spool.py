#!/usr/bin/env python3
"""bench/scheduler_spool.py - start-up and idle cost of a daemon whose
spool contains N frozen messages.

Usage: bench/scheduler_spool.py BUILD_DIR [--messages N] [--idle SECONDS]

BUILD_DIR/bench/scheduler writes N frozen messages (1 to 3 recipients
at 1 or 2 domains, -H and -D files) into a fresh spool. Then
`sluice -bdf` starts on it, listening on 127.0.0.1 only, with
`log_selector = +skip_delivery`, so that the first pass logs
"Message is frozen" once per message. The figures:

- scan_seconds: from the start of the process until mainlog has the
  "spool scan: N messages queued" line;
- first_pass_seconds: from the start until the last of the N
  "Message is frozen" lines. After it nothing is due, because a frozen
  message with a sender is looked at again only when an operator thaws
  it or timeout_frozen_after (unset here) expires;
- rss and pss per message: VmRSS and PSS from /proc/PID/smaps_rollup
  after the first pass, minus those of the same daemon on an empty spool
  (measured first), divided by N;
- idle_cpu_seconds: utime + stime of every thread from /proc/PID/stat,
  over --idle seconds (default 30) after the first pass, and the context
  switches of every thread over the same time.

The log is polled every 20 ms, so times are good to about that. This is
a benchmark, not a test: it prints figures and asserts none.
"""

import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import sluicetest  # noqa: E402

POLL_SECONDS = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def smaps_rollup(pid):
    """Return (Rss, Pss) of pid in bytes."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
                values[parts[0][:-1]] = int(parts[1]) * 1024
    return values["Rss"], values["Pss"]


def cpu_seconds(pid):
    """Return utime + stime of the whole process (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name in brackets may contain spaces, so the fields are
    # counted from the last closing bracket.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid):
    """Return the voluntary and involuntary context switches of every
    thread of pid."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass            # the thread ended meanwhile
    return total


class LogFollower:
    """Reads mainlog as it grows and counts lines that match."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode(errors="replace") for line in lines]


def start_daemon(daemon):
    """Start the daemon with its standard error in a file, which cannot
    fill up and block it as an unread pipe would."""
    with open(os.path.join(daemon.dir, "stderr"), "wb") as err:
        proc = subprocess.Popen(
            [sluicetest.SLUICE_BIN, "-bdf", "-C", daemon.config],
            stdout=subprocess.DEVNULL, stderr=err)
    daemon.proc = proc
    return proc


def check_running(daemon):
    if daemon.proc.poll() is not None:
        with open(os.path.join(daemon.dir, "stderr"), "rb") as f:
            err = f.read().decode(errors="replace")
        raise SystemExit(f"daemon exited with {daemon.proc.returncode}: "
                         f"{err}")


def stop_daemon(daemon):
    proc = daemon.proc
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit("daemon ignored SIGTERM for 120 s")
    return time.monotonic() - start


def empty_daemon_memory():
    """Start a daemon on an empty spool; return its (Rss, Pss)."""
    daemon = sluicetest.Daemon(settings="log_selector = +skip_delivery\n")
    try:
        daemon.start()
        time.sleep(2)
        return smaps_rollup(daemon.proc.pid)
    finally:
        daemon.stop()
        daemon.cleanup()


def measure(build_dir, messages, idle):
    rss_empty, pss_empty = empty_daemon_memory()
    daemon = sluicetest.Daemon(settings="log_selector = +skip_delivery\n")
    try:
        generated = subprocess.run(
            [os.path.join(build_dir, "bench", "scheduler"), "spool",
             daemon.spool, str(messages)],
            check=True, capture_output=True, text=True).stdout
        print(generated, end="")

        follower = LogFollower(os.path.join(daemon.logdir, "mainlog"))
        scan = re.compile(r"spool scan: (\d+) messages queued")
        frozen = 0
        scan_seconds = first_pass_seconds = None
        start = time.monotonic()
        proc = start_daemon(daemon)
        while first_pass_seconds is None:
            check_running(daemon)
            time.sleep(POLL_SECONDS)
            for line in follower.new_lines():
                m = scan.search(line)
                if m is not None:
                    scan_seconds = time.monotonic() - start
                    if int(m.group(1)) != messages:
                        raise SystemExit(f"the scan found {m.group(1)} "
                                         f"messages, not {messages}")
                elif "Message is frozen" in line:
                    frozen += 1
            if frozen >= messages and scan_seconds is not None:
                first_pass_seconds = time.monotonic() - start

        rss, pss = smaps_rollup(proc.pid)
        cpu_before = cpu_seconds(proc.pid)
        switches_before = context_switches(proc.pid)
        log_before = os.path.getsize(follower.path)
        time.sleep(idle)
        cpu_after = cpu_seconds(proc.pid)
        switches_after = context_switches(proc.pid)
        log_growth = os.path.getsize(follower.path) - log_before

        print(f"messages {messages}")
        print(f"scan_seconds {scan_seconds:.2f}")
        print(f"first_pass_seconds {first_pass_seconds:.2f}")
        print(f"rss_empty_bytes {rss_empty}")
        print(f"pss_empty_bytes {pss_empty}")
        print(f"rss_bytes {rss}")
        print(f"pss_bytes {pss}")
        print(f"rss_bytes_per_message {(rss - rss_empty) / messages:.1f}")
        print(f"pss_bytes_per_message {(pss - pss_empty) / messages:.1f}")
        print(f"idle_seconds {idle}")
        print(f"idle_cpu_seconds {cpu_after - cpu_before:.2f}")
        print(f"idle_context_switches {switches_after - switches_before}")
        print(f"idle_log_bytes {log_growth}")
        print(f"stop_seconds {stop_daemon(daemon):.2f}")
    finally:
        daemon.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build_dir")
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.idle <= 0:
        parser.error("--idle must be more than 0 seconds")
    sluicetest.SLUICE_BIN = os.path.join(args.build_dir, "sluice")
    measure(args.build_dir, args.messages, args.idle)


if __name__ == "__main__":
    main()

"""Group commit makes many messages durable per sync.

tests/spool_load runs 20 concurrent receptions on one event loop against
a real spool, under strace counting fsync, fdatasync and syncfs. With one
commit per round each message would cost at least two syncs (its -D and
-H files) plus a directory sync; the test requires fewer than two per
message, which only batching reaches. Every message's files must then
exist, carry the right first lines and parse.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILDDIR = os.environ.get("SLUICE_BUILDDIR", "")
LOAD = os.path.join(BUILDDIR, "tests", "spool_load")
WRITERS = 20
MESSAGES_PER_WRITER = 50
SYNC_CALLS = ("fsync", "fdatasync", "syncfs")

ID_RE = re.compile(rb"^[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{11}-[0-9A-Za-z]{4}|"
                   rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{2})$")


def strace_usable():
    """Return True if strace is installed and may trace a child here."""
    if shutil.which("strace") is None:
        return False
    result = subprocess.run(["strace", "-f", "-o", os.devnull, "true"],
                            capture_output=True)
    return result.returncode == 0


def parse_strace_summary(text):
    """Return {syscall: calls} from the table that strace -c writes."""
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[-1] in SYNC_CALLS:
            calls[fields[-1]] = int(fields[3])
    return calls


def parse_header_file(data, name):
    """Check a -H file the way exipick reads one; return its id and
    recipients. Raise AssertionError naming the file on any mismatch."""
    lines = data.split(b"\n")
    msg_id = lines[0][:-2]
    if not (lines[0].endswith(b"-H") and ID_RE.match(msg_id)):
        raise AssertionError(f"{name}: invalid line 1: {lines[0]!r}")
    if not re.match(rb"^\S* -?\d+ -?\d+$", lines[1]):
        raise AssertionError(f"{name}: invalid line 2: {lines[1]!r}")
    if not re.match(rb"^<[^<>]*>$", lines[2]):
        raise AssertionError(f"{name}: invalid line 3: {lines[2]!r}")
    if not re.match(rb"^\d+ \d+$", lines[3]):
        raise AssertionError(f"{name}: invalid line 4: {lines[3]!r}")
    i = 4
    while lines[i].startswith(b"-"):
        i += 1
    if lines[i] == b"XX":
        i += 1
    else:
        while re.match(rb"^[YN][YN] ", lines[i]):
            i += 1
    count = int(lines[i])
    recipients = lines[i + 1:i + 1 + count]
    i += 1 + count
    if lines[i] != b"":
        raise AssertionError(f"{name}: no blank line after the recipients")

    # Header fields: "NNNF text", NNN the byte length of text.
    rest = b"\n".join(lines[i + 1:])
    pos = 0
    while pos < len(rest):
        m = re.match(rb"(\d{3,})(.) ", rest[pos:pos + 16])
        if m is None:
            raise AssertionError(f"{name}: bad header field at byte {pos}")
        size = int(m.group(1))
        text = rest[pos + m.end():pos + m.end() + size]
        if len(text) != size or not text.endswith(b"\n"):
            raise AssertionError(f"{name}: header field length {size} is "
                                 "wrong")
        pos += m.end() + size
    return msg_id.decode(), recipients


class GroupCommitTest(unittest.TestCase):

    def setUp(self):
        if not os.access(LOAD, os.X_OK):
            self.fail(f"{LOAD} is missing; make check builds it")
        self.dir = tempfile.mkdtemp(prefix="sluice-spool-load-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def run_load(self, spool, *extra):
        """Run spool_load; return (its figures, sync calls per syscall,
        how the syncs were counted)."""
        command = [LOAD, "--writers", str(WRITERS),
                   "--messages", str(MESSAGES_PER_WRITER), "--verify",
                   *extra, spool]

        summary = os.path.join(self.dir, "strace.txt")
        counted_by = "strace"
        if strace_usable():
            command = ["strace", "-f", "-c", "-e",
                       "trace=" + ",".join(SYNC_CALLS), "-o", summary,
                       *command]
        else:
            counted_by = "the store's own counter (strace is not usable)"
        result = subprocess.run(command, capture_output=True, timeout=600)
        self.assertEqual(result.returncode, 0,
                         result.stdout.decode() + result.stderr.decode())

        figures = {}
        for line in result.stdout.decode().splitlines():
            key, value = line.split()
            figures[key] = float(value)
        if counted_by == "strace":
            with open(summary) as f:
                syncs = parse_strace_summary(f.read())
        else:
            syncs = {"store": int(figures["sync_calls"])}

        print(f"\n{' '.join(extra) or 'flat'}: "
              f"{int(figures['messages'])} messages, "
              f"{int(figures['rounds'])} rounds, "
              f"{figures['messages_per_round']:.2f} messages per round, "
              f"max batch {int(figures['max_batch'])}, "
              f"{figures['commits_per_second']:.0f} commits/s, "
              f"syncs {syncs} counted by {counted_by}")
        return figures, syncs

    def check_spool(self, spool, want):
        """Every message has a parsable -H and a -D with its first line."""
        input_dir = os.path.join(spool, "input")
        found = 0
        for folder, dirs, files in os.walk(input_dir):
            for name in files:
                if name.startswith("hdr."):
                    self.fail(f"temporary file {name} left behind")
                if not name.endswith("-H"):
                    continue
                with open(os.path.join(folder, name), "rb") as f:
                    msg_id, recipients = parse_header_file(f.read(), name)
                self.assertEqual(name, msg_id + "-H")
                self.assertEqual(len(recipients), 1)
                data = os.path.join(folder, msg_id + "-D")
                with open(data, "rb") as f:
                    self.assertEqual(f.readline(),
                                     msg_id.encode() + b"-D\n")
                self.assertEqual(os.stat(data).st_mode & 0o777, 0o640)
                found += 1
        self.assertEqual(found, want)

    def check_group_commit(self, *extra):
        spool = os.path.join(self.dir, "spool")
        figures, syncs = self.run_load(spool, *extra)
        messages = WRITERS * MESSAGES_PER_WRITER
        self.assertEqual(figures["messages"], messages)
        self.assertEqual(figures["failures"], 0)
        self.assertEqual(figures["scanned"], messages)
        self.assertEqual(figures["broken"], 0)
        total = sum(syncs.values())
        self.assertGreater(total, 0, "no sync call was counted")
        self.assertLess(total / messages, 2.0,
                        f"{total} sync calls for {messages} messages")
        self.check_spool(spool, messages)

    def test_flat_layout(self):
        self.check_group_commit()

    def test_split_layout(self):
        self.check_group_commit("--split")


if __name__ == "__main__":
    unittest.main(verbosity=2)

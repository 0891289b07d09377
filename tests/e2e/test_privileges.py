"""A daemon started as root drops to exim_user and exim_group before it
accepts a connection, and what it creates belongs to that user."""

import os
import pwd
import socket
import unittest

import sluicetest


def proc_ids(pid):
    """Return (uids, gids, groups) from /proc/<pid>/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields["Uid"], fields["Gid"], fields["Groups"]


@unittest.skipUnless(os.geteuid() == 0, "needs root to test dropping privileges")
class PrivilegeTest(sluicetest.DaemonTestCase):

    def test_root_start_drops_to_exim_user(self):
        nobody = pwd.getpwnam("nobody")
        d = self.daemon(user="nobody").start()
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            self.assertTrue(s.makefile("rb").readline().startswith(b"220 "))
        uids, gids, groups = proc_ids(d.proc.pid)
        self.assertEqual(uids, [str(nobody.pw_uid)] * 4)  # real, effective, saved, fs
        self.assertEqual(gids, [str(nobody.pw_gid)] * 4)
        self.assertEqual(groups, [])
        for path in (d.spool, os.path.join(d.spool, "input"), d.logdir,
                     os.path.join(d.logdir, "mainlog"),
                     os.path.join(d.logdir, "paniclog")):
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid),
                             (nobody.pw_uid, nobody.pw_gid), path)
        self.assertEqual(os.stat(os.path.join(d.logdir, "mainlog")).st_mode & 0o777,
                         0o640)
        self.assertEqual(d.stop(), 0)
        self.assertIn("daemon stopped", d.log())

    def test_unknown_exim_user_stops_start_up(self):
        d = self.daemon(user="no-such-user-sluice")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b'exim_user "no-such-user-sluice" is not a known user',
                      result.stderr)

    def test_empty_exim_user_keeps_invoking_user(self):
        d = self.daemon(user="").start()
        uids, _, _ = proc_ids(d.proc.pid)
        self.assertEqual(uids[0], "0")
        self.assertIn("running as the invoking user root (uid 0)", d.log())
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    sluicetest.main()

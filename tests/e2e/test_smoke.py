"""The daemon starts, greets, answers its control socket and stops on
SIGTERM and SIGINT."""

import os
import signal
import socket

import sluicetest


class SmokeTest(sluicetest.DaemonTestCase):

    def greeting(self, d):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            f = s.makefile("rb")
            banner = f.readline()
            s.sendall(b"QUIT\r\n")
            bye = f.readline()
        return banner, bye

    def test_greets_and_stops_on_sigterm(self):
        d = self.daemon().start()
        banner, bye = self.greeting(d)
        self.assertTrue(banner.startswith(b"220 sluice.test ESMTP sluice "),
                        banner)
        self.assertTrue(banner.endswith(b"\r\n"), banner)
        self.assertEqual(bye, b"221 sluice.test closing connection\r\n")
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        log = d.log()
        self.assertIn(" daemon started: pid=", log)
        self.assertIn(f"listening for SMTP on [127.0.0.1]:{d.port}", log)
        self.assertIn("daemon stopped", log)
        self.assertEqual(d.log("panic"), "")

    def test_stops_on_sigint(self):
        d = self.daemon().start()
        self.assertEqual(d.stop(signal.SIGINT), 0)
        self.assertIn("SIGINT received", d.log())

    def test_sighup_is_logged_not_fatal(self):
        d = self.daemon().start()
        d.proc.send_signal(signal.SIGHUP)
        sluicetest.wait_for(lambda: "SIGHUP received" in d.log(), 10,
                            "the SIGHUP log line")
        banner, _ = self.greeting(d)
        self.assertTrue(banner.startswith(b"220 "), banner)
        self.assertEqual(d.stop(), 0)

    def test_sigusr1_writes_process_info(self):
        d = self.daemon().start()
        info = os.path.join(d.spool, "exim-process.info")
        d.proc.send_signal(signal.SIGUSR1)

        def process_line():
            try:
                with open(info) as f:
                    return f"{d.proc.pid} daemon(sluice " in f.read()
            except FileNotFoundError:
                return False

        # The file may exist for a moment before its line is written.
        sluicetest.wait_for(process_line, 10, "the line in exim-process.info")
        self.assertIsNone(d.proc.poll(), "SIGUSR1 must not stop the daemon")
        self.assertEqual(d.stop(), 0)

    def test_control_socket_answers(self):
        d = self.daemon().start()
        self.assertTrue(d.control("stats").endswith("ok\n"))
        self.assertEqual(d.control("nonsense"),
                         'error: unknown command "nonsense"; try "help"\n')
        self.assertEqual(d.stop(), 0)

    def test_pid_file_written_and_removed(self):
        d = self.daemon().start()
        pid_file = os.path.join(d.spool, "exim-daemon.pid")
        with open(pid_file) as f:
            self.assertEqual(f.read(), f"{d.proc.pid}\n")
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(pid_file))

    def test_port_in_use_fails_cleanly(self):
        first = self.daemon().start()
        second = self.daemon(port=first.port)
        result = second.run("-bdf")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"cannot listen on [127.0.0.1]:", result.stderr)
        self.assertIn("cannot listen on", second.log("panic"))
        self.assertEqual(first.stop(), 0)


if __name__ == "__main__":
    sluicetest.main()

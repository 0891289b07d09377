"""The command line reads the configuration as an operator meets it:
-bP output, and start-up errors reported as FILE:LINE with nothing
half-started."""

import os
import re
import socket
import subprocess

import sluicetest

OPTION_LINE = re.compile(r"^(?:[a-z_0-9]+ = .*|no_[a-z_0-9]+|[a-z_0-9]+)$")


class ConfigCliTest(sluicetest.DaemonTestCase):

    def test_bp_prints_every_option_of_shipped_config(self):
        conf = os.path.join(sluicetest.SRCDIR, "etc", "sluice.conf")
        result = subprocess.run([sluicetest.SLUICE_BIN, "-C", conf, "-bP"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        for line in lines:
            self.assertRegex(line, OPTION_LINE)
        names = [line.split(" = ")[0].removeprefix("no_") for line in lines]
        self.assertEqual(names, sorted(names))
        for name in ("primary_hostname", "qualify_domain", "qualify_recipient",
                     "local_interfaces", "daemon_smtp_ports",
                     "spool_directory", "log_file_path", "log_selector",
                     "message_size_limit", "exim_user", "exim_group",
                     "pid_file_path", "message_id_format", "lua_policy",
                     "dns_servers", "dns_port", "smarthost", "delivery_port"):
            self.assertIn(name, names)
        self.assertIn("spool_directory = /var/spool/sluice", lines)
        self.assertIn("daemon_smtp_ports = smtp", lines)
        self.assertIn("exim_user = sluice", lines)

    def test_bp_one_option_and_value_only(self):
        d = self.daemon()
        result = d.run("-bP", "spool_directory")
        self.assertEqual(result.stdout.decode(),
                         f"spool_directory = {d.spool}\n")
        result = d.run("-n", "-bP", "spool_directory")
        self.assertEqual(result.stdout.decode(), f"{d.spool}\n")
        result = d.run("-bP", "config_file")
        # As in Exim, config_file prints the bare path.
        self.assertEqual(result.stdout.decode(), f"{d.config}\n")

    def test_bp_unknown_option(self):
        d = self.daemon()
        result = d.run("-bP", "no_such_option")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout.decode(),
                         "no_such_option is not a known option\n")

    def test_macro_from_command_line(self):
        d = self.daemon(settings="SIZE = 10M\nmessage_size_limit = SIZE\n")
        self.assertEqual(d.run("-bP", "message_size_limit").stdout.decode(),
                         "message_size_limit = 10M\n")
        result = d.run("-DSIZE=2M", "-bP", "message_size_limit")
        self.assertEqual(result.stdout.decode(), "message_size_limit = 2M\n")

    def test_unknown_option_stops_start_up(self):
        d = self.daemon(settings="foo_bar = 1\n")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        where = f"{d.config}:{d.settings_line}"
        self.assertEqual(result.stderr.decode(),
                         f'sluice: {where}: unknown option "foo_bar"\n')
        self.assertIn(f'{where}: unknown option "foo_bar"', d.log("panic"))
        self.assertFalse(os.path.exists(os.path.join(d.spool,
                                                     "exim-daemon.pid")))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", d.port), timeout=2).close()

    def test_bad_value_reported_with_line(self):
        d = self.daemon(settings="\n\nmessage_size_limit = lots\n")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr.decode(),
                         rf"^sluice: {re.escape(d.config)}:{d.settings_line + 2}: .*lots")

    def test_exim_router_section_points_to_lua(self):
        d = self.daemon(settings="begin routers\ndnslookup:\n  driver = dnslookup\n")
        result = d.run("-bdf")
        self.assertEqual(result.returncode, 1)
        err = result.stderr.decode()
        self.assertIn(f"{d.config}:{d.settings_line}:", err)
        self.assertIn("Lua", err)
        self.assertIn("doc/lua-api.md", err)

    def test_unterminated_ifdef(self):
        d = self.daemon(settings=".ifdef NOT_DEFINED\nfoo = 1\n")
        result = d.run("-bP")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{d.config}:{d.settings_line}:",
                      result.stderr.decode())
        self.assertIn(".ifdef", result.stderr.decode())

    def test_include_loop(self):
        d = self.daemon()
        loop = os.path.join(d.dir, "loop.conf")
        with open(loop, "w") as f:
            f.write(f".include {loop}\n")
        with open(d.config, "a") as f:
            f.write(f".include {loop}\n")
        result = d.run("-bP")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{loop}:1:", result.stderr.decode())
        self.assertIn("loop", result.stderr.decode())

    def test_bad_command_line_option(self):
        d = self.daemon()
        result = d.run("-bZ")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode(),
                         "sluice: unknown, malformed, or incomplete option -bZ\n")


if __name__ == "__main__":
    sluicetest.main()

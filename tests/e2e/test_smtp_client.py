"""sluice's SMTP client (core/smtp_client.c), run through tests/smtp_probe
against the recording sink: replies per recipient, what reaches the
server byte for byte, and every kind of failure the client reports."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import sluicetest
from sink import Sink

PROBE = os.path.join(sluicetest.BUILDDIR, "tests", "smtp_probe")
MSGID = "1tt1Jd-00000000CXd-1jGj"


def write_message(folder, sender, recipients, fields, body, msgid=MSGID,
                  options=()):
    """Write an Exim -H/-D pair. fields: (flag, text) pairs, text ending
    in a newline; body: bytes of the -D file after its first line;
    options: more "-name value" lines."""
    lines = [f"{msgid}-H", "sluice 1000 1000", f"<{sender}>",
             "1741944413 0", "-received_time_usec .412345",
             "-body_linecount 1", "-max_received_linelength 10",
             *options, "XX", str(len(recipients))]
    lines += recipients
    header = "\n".join(lines) + "\n\n"
    for flag, text in fields:
        header += f"{len(text.encode()):03d}{flag} {text}"
    with open(os.path.join(folder, f"{msgid}-H"), "w") as f:
        f.write(header)
    with open(os.path.join(folder, f"{msgid}-D"), "wb") as f:
        f.write(f"{msgid}-D\n".encode() + body)


def parse_output(text):
    """Return (host line, {address: fields}, summary line) of the probe's
    output. fields contains the rcpt line's key=value items plus outcome,
    after, reply and message."""
    host = summary = None
    rcpts = {}
    current = None
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "host":
            host = rest
        elif word == "summary":
            summary = rest
        elif word == "rcpt":
            parts = rest.split(" ")
            current = {"outcome": parts[1]}
            for item in parts[2:]:
                key, _, value = item.partition("=")
                current[key] = value
            rcpts[parts[0]] = current
        elif word in ("after", "reply", "message"):
            current[word] = rest
    return host, rcpts, summary


FIELDS = [("P", "Received: from [127.0.0.1]\n\tby sluice.test\n"),
          ("F", "From: Alice <alice@example.test>\n"),
          ("T", "To: bob@example.test\n"),
          (" ", "Subject: hello\n")]


class SmtpClientTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-smtpc-")
        self.spool = os.path.join(self.dir, "input")
        os.mkdir(self.spool)
        self.sink = Sink(os.path.join(self.dir, "mail")).start()
        self.addCleanup(self.cleanup)

    def cleanup(self):
        self.sink.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def probe(self, *options, port=None, timeout=None):
        """Run smtp_probe on the spooled message; options go before the
        positional arguments."""
        command = [PROBE, "--host", "mx.sink.test"]
        if timeout is not None:
            command += ["--timeout", str(timeout)]
        command += list(options) + [self.spool, MSGID, "127.0.0.1",
                                    str(port or self.sink.port)]
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=120)
        self.assertEqual(result.returncode, 0,
                         f"smtp_probe failed: {result.stderr}")
        return parse_output(result.stdout)

    def deliver(self, recipients=("bob@example.test", "carol@example.test"),
                body=b"Hello\nworld\n", fields=FIELDS,
                sender="alice@example.test", **kwargs):
        write_message(self.spool, sender, list(recipients), fields, body)
        return self.probe(**kwargs)

    # --- success ----------------------------------------------------

    def test_delivers_to_every_recipient(self):
        host, rcpts, summary = self.deliver()
        self.assertEqual(host, f"mx.sink.test [127.0.0.1]:{self.sink.port} "
                         "esmtp=yes tls=no")
        self.assertEqual(summary, "delivered=2 deferred=0 failed=0")
        for address in ("bob@example.test", "carol@example.test"):
            r = rcpts[address]
            self.assertEqual(r["outcome"], "delivered")
            self.assertEqual(r["code"], "250")
            self.assertEqual(r["phase"], "dot")
            self.assertEqual(r["kind"], "none")
            self.assertEqual(r["reply"], "250 OK id=000001")
            self.assertEqual(r["after"], "end of data")
            self.assertNotIn("message", r)

        [message] = self.sink.messages()
        self.assertEqual(message["mail_from"], "alice@example.test")
        self.assertEqual(message["rcpt_to"],
                         ["bob@example.test", "carol@example.test"])
        self.assertEqual(message["helo"], "probe.test")
        self.assertEqual(message["peer"], "127.0.0.1")
        expected = (b"Received: from [127.0.0.1]\r\n\tby sluice.test\r\n"
                    b"From: Alice <alice@example.test>\r\n"
                    b"To: bob@example.test\r\n"
                    b"Subject: hello\r\n"
                    b"\r\n"
                    b"Hello\r\nworld\r\n")
        self.assertEqual(message["data"], expected)
        self.assertEqual(message["raw"], expected + b".\r\n")
        # SIZE= is headers + blank line + body as spooled, with LF ends.
        spooled = sum(len(t.encode()) for _, t in FIELDS) + 1 + len(b"Hello\nworld\n")
        self.assertEqual(message["mail_params"], f"SIZE={spooled}")

    def test_dot_stuffing_and_line_ends(self):
        body = (b".leading dot\n"
                b"..two dots\n"
                b"bare\rcarriage return\n"
                b"bare CR then dot\r.x\n"
                b"crlf line\r\n"
                b".\n"
                b"no newline at the end")
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"], body=body)
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")
        [message] = self.sink.messages()
        wire_body = (b"..leading dot\r\n"
                     b"...two dots\r\n"
                     b"bare\rcarriage return\r\n"
                     b"bare CR then dot\r..x\r\n"
                     b"crlf line\r\n"
                     b"..\r\n"
                     b"no newline at the end\r\n"
                     b".\r\n")
        self.assertTrue(message["raw"].endswith(b"\r\n\r\n" + wire_body),
                        message["raw"])
        # What the sink saw once the stuffing is undone.
        self.assertIn(b"\r\n\r\n.leading dot\r\n..two dots\r\n",
                      message["data"])

    def test_deleted_header_not_sent(self):
        fields = FIELDS + [("*", "X-Spam-Flag: YES\n"),
                           (" ", "X-Kept: 1\n")]
        self.deliver(recipients=["bob@example.test"], fields=fields)
        [message] = self.sink.messages()
        self.assertNotIn(b"X-Spam-Flag", message["data"])
        self.assertIn(b"Subject: hello\r\nX-Kept: 1\r\n\r\nHello", message["data"])

    def test_empty_body(self):
        self.deliver(recipients=["bob@example.test"], body=b"")
        [message] = self.sink.messages()
        self.assertTrue(message["raw"].endswith(b"Subject: hello\r\n\r\n.\r\n"),
                        message["raw"])

    def test_null_sender(self):
        _, rcpts, _ = self.deliver(sender="", recipients=["bob@example.test"])
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")
        self.assertEqual(self.sink.messages()[0]["mail_from"], "")
        self.assertTrue(self.sink.sessions[0][1].startswith("MAIL FROM:<> SIZE="),
                        self.sink.sessions[0])

    def test_helo_fallback_when_ehlo_rejected(self):
        self.sink.ehlo = False
        host, rcpts, _ = self.deliver(recipients=["bob@example.test"])
        self.assertTrue(host.endswith("esmtp=no tls=no"), host)
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")
        commands = self.sink.sessions[0]
        self.assertEqual(commands[0], "EHLO probe.test")
        self.assertEqual(commands[1], "HELO probe.test")
        # No SIZE= without EHLO.
        self.assertEqual(commands[2], "MAIL FROM:<alice@example.test>")
        self.assertEqual(commands[-1], "QUIT")

    def test_dsn_parameters_when_offered(self):
        recipients = ["bob@example.test rfc822;bob@example.test 23,12  0,-1#3",
                      "carol@example.test"]
        options = ["-dsn_envid env+2Bid", "-dsn_ret 2"]
        write_message(self.spool, "alice@example.test", recipients, FIELDS,
                      b"hi\n", options=options)
        self.probe()
        [plain] = self.sink.messages()
        self.assertRegex(plain["mail_params"], r"^SIZE=\d+$")
        self.assertEqual(plain["rcpt_params"], ["", ""])

        self.sink.dsn = True
        self.probe()
        dsn = self.sink.messages()[1]
        self.assertRegex(dsn["mail_params"],
                         r"^SIZE=\d+ RET=HDRS ENVID=env\+2Bid$")
        self.assertEqual(dsn["rcpt_params"],
                         ["NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test",
                          ""])

    def test_binds_source_address(self):
        self.deliver(recipients=["bob@example.test"])
        _, rcpts, _ = self.probe("--source", "127.0.0.2")
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")
        self.assertEqual([m["peer"] for m in self.sink.messages()],
                         ["127.0.0.1", "127.0.0.2"])

    def test_large_body_streams(self):
        line = b"0123456789abcdefghijklmnopqrstuvwxyz.\n"
        body = line * (8 * 1024 * 1024 // len(line))
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"], body=body)
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")
        [message] = self.sink.messages()
        sent_body = message["data"].split(b"\r\n\r\n", 1)[1]
        self.assertEqual(hashlib.sha256(sent_body).hexdigest(),
                         hashlib.sha256(body.replace(b"\n", b"\r\n")).hexdigest())

    # --- rejections by reply ----------------------------------------

    def test_rcpt_rejected_for_one(self):
        self.sink.add_rule("rcpt", 550, match="bob@")
        _, rcpts, summary = self.deliver()
        self.assertEqual(summary, "delivered=1 deferred=0 failed=1")
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["outcome"], "failed")
        self.assertEqual(bob["code"], "550")
        self.assertEqual(bob["phase"], "rcpt")
        self.assertEqual(bob["kind"], "reply")
        self.assertEqual(bob["after"], "RCPT TO:<bob@example.test>")
        self.assertEqual(bob["message"],
                         "SMTP error from remote mail server after "
                         "RCPT TO:<bob@example.test>: 550 5.1.1 Rejected")
        self.assertEqual(rcpts["carol@example.test"]["outcome"], "delivered")
        [message] = self.sink.messages()
        self.assertEqual(message["rcpt_to"], ["carol@example.test"])

    def test_rcpt_deferred_then_accepted(self):
        self.sink.add_rule("rcpt", 451, times=1, match="bob@")
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"])
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["outcome"], "deferred")
        self.assertEqual(bob["defer"], "-44")
        self.assertEqual(self.sink.messages(), [])
        # No recipient left, so no DATA: the session ends with QUIT.
        self.assertEqual(self.sink.sessions[0][-1], "QUIT")
        self.assertNotIn("DATA", self.sink.sessions[0])

        _, rcpts, _ = self.probe()
        self.assertEqual(rcpts["bob@example.test"]["outcome"], "delivered")

    def test_multiline_rejection_kept_whole(self):
        self.sink.add_rule("rcpt", 550, text="5.7.1 first line\nsecond line")
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"])
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["reply"], "550-5.7.1 first line\\n550 second line")
        self.assertTrue(bob["message"].endswith(
            "RCPT TO:<bob@example.test>: 550-5.7.1 first line\\n550 second line"),
            bob["message"])

    def test_mail_deferred_defers_all(self):
        self.sink.add_rule("mail", 451)
        _, rcpts, summary = self.deliver()
        self.assertEqual(summary, "delivered=0 deferred=2 failed=0")
        for r in rcpts.values():
            self.assertEqual(r["phase"], "mail")
            self.assertEqual(r["defer"], "-45")
            self.assertRegex(r["after"], r"^MAIL FROM:<alice@example\.test> SIZE=\d+$")
            self.assertRegex(r["message"], r"^SMTP error from remote mail server "
                             r"after MAIL FROM:<alice@example\.test> SIZE=\d+: 451 ")

    def test_data_rejected_fails_accepted(self):
        self.sink.add_rule("rcpt", 550, match="carol@")
        self.sink.add_rule("data", 554)
        _, rcpts, summary = self.deliver()
        self.assertEqual(summary, "delivered=0 deferred=0 failed=2")
        self.assertEqual(rcpts["bob@example.test"]["phase"], "data")
        self.assertEqual(rcpts["bob@example.test"]["after"], "DATA")
        self.assertEqual(rcpts["carol@example.test"]["phase"], "rcpt")

    def test_final_dot_deferred(self):
        self.sink.add_rule("dot", 451)
        _, rcpts, _ = self.deliver()
        for r in rcpts.values():
            self.assertEqual(r["outcome"], "deferred")
            self.assertEqual(r["phase"], "dot")
            self.assertEqual(r["after"], "end of data")
            self.assertEqual(r["defer"], "-46")
        self.assertEqual(self.sink.messages(), [])

    def test_greeting_421_defers_all(self):
        self.sink.add_rule("connect", 421)
        _, rcpts, _ = self.deliver()
        for r in rcpts.values():
            self.assertEqual(r["outcome"], "deferred")
            self.assertEqual(r["phase"], "greeting")
            self.assertEqual(r["after"], "initial connection")
            self.assertEqual(r["code"], "421")

    def test_greeting_554_fails_all(self):
        self.sink.add_rule("connect", 554)
        _, rcpts, _ = self.deliver()
        for r in rcpts.values():
            self.assertEqual(r["outcome"], "failed")
            self.assertEqual(r["phase"], "greeting")

    def test_421_at_rcpt_defers_the_rest(self):
        self.sink.add_rule("rcpt", 421, match="bob@")
        _, rcpts, summary = self.deliver(
            recipients=["bob@example.test", "carol@example.test"])
        self.assertEqual(summary, "delivered=0 deferred=2 failed=0")
        self.assertEqual(rcpts["carol@example.test"]["after"],
                         "RCPT TO:<bob@example.test>")
        # The sink stopped talking after 421; no further RCPT was sent.
        self.assertNotIn("RCPT TO:<carol@example.test>", self.sink.sessions[0])

    # --- connection-level failures ----------------------------------

    def test_connection_refused(self):
        port = sluicetest.free_port()
        _, rcpts, _ = self.deliver(port=port)
        for r in rcpts.values():
            self.assertEqual(r["outcome"], "deferred")
            self.assertEqual(r["kind"], "connect")
            self.assertEqual(r["error"], "111")
            self.assertEqual(r["defer"], "111")
            self.assertEqual(r["phase"], "connect")
            self.assertNotIn("message", r)

    def test_timeout_waiting_for_rcpt_reply(self):
        self.sink.add_rule("rcpt", action="stall")
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"], timeout=1)
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["kind"], "timeout")
        self.assertEqual(bob["error"], "110")
        self.assertEqual(bob["message"], "SMTP timeout after RCPT TO:<bob@example.test>")

    def test_timeout_after_final_dot(self):
        self.sink.add_rule("dot", action="stall")
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"], timeout=1)
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["outcome"], "deferred")
        self.assertEqual(bob["phase"], "dot")
        self.assertEqual(bob["message"], "SMTP timeout after end of data")

    def test_connection_closed_at_mail(self):
        self.sink.add_rule("mail", action="close")
        _, rcpts, _ = self.deliver()
        for r in rcpts.values():
            self.assertEqual(r["kind"], "closed")
            self.assertEqual(r["defer"], "-18")
            self.assertRegex(r["message"], r"^Remote host closed connection in "
                             r"response to MAIL FROM:<alice@example\.test>")

    def test_malformed_reply(self):
        server = RawServer([b"220 raw.test ready\r\n", b"this is no reply\r\n"])
        self.addCleanup(server.close)
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"],
                                   port=server.port)
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["kind"], "protocol")
        self.assertEqual(bob["defer"], "-19")
        self.assertEqual(bob["phase"], "ehlo")
        self.assertIn("Malformed SMTP reply", bob["message"])
        self.assertIn("in response to EHLO probe.test", bob["message"])

    def test_rejection_during_body(self):
        # The server replies 554 to the first line of the message, as
        # some do when they stop reading.
        # It then reads no more, so the rest of the body cannot have
        # been sent when the rejection arrives.
        server = RawServer([b"220 raw.test ready\r\n", b"250 hello\r\n",
                            b"250 sender ok\r\n", b"250 rcpt ok\r\n",
                            b"354 go ahead\r\n", b"554 5.7.1 no thanks\r\n"],
                           read_after=False)
        self.addCleanup(server.close)
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"],
                                   body=b"line\n" * (4 * 1024 * 1024),
                                   port=server.port)
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["outcome"], "failed")
        self.assertEqual(bob["phase"], "body")
        self.assertEqual(bob["code"], "554")
        self.assertEqual(bob["kind"], "reply")

    def test_endless_reply_line(self):
        server = RawServer([b"220-" + b"x" * 100000])
        self.addCleanup(server.close)
        _, rcpts, _ = self.deliver(recipients=["bob@example.test"],
                                   port=server.port)
        bob = rcpts["bob@example.test"]
        self.assertEqual(bob["kind"], "protocol")
        self.assertIn("reply line too long", bob["message"])


class RawServer:
    """A loopback server that sends fixed byte strings: the first at
    once, each other one after reading a line. Then it reads on until the
    client closes, or with read_after=False reads nothing more until the
    test ends."""

    def __init__(self, replies, read_after=True):
        self.read_after = read_after
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.replies = list(replies)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(60)
            stream = conn.makefile("rb")
            try:
                for i, reply in enumerate(self.replies):
                    conn.sendall(reply)
                    if i + 1 < len(self.replies) and not stream.readline():
                        return
                if not self.read_after:
                    self.done.wait(60)
                    return
                while stream.readline():
                    pass
            except OSError:
                pass

    def close(self):
        self.done.set()
        self.sock.close()
        self.thread.join(30)


if __name__ == "__main__":
    if not os.access(PROBE, os.X_OK):
        raise SystemExit(f"{PROBE} is missing: run make check, which "
                         "builds it")
    unittest.main(verbosity=2)

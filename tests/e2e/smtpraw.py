"""A raw-socket SMTP client for the e2e tests that must send exact bytes
(8-bit addresses, parameters smtplib would check, pipelined commands),
and helpers to read what the daemon spooled."""

import glob
import os
import socket


class Client:
    """One SMTP connection to 127.0.0.1:port from source; banner is the
    server's greeting."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout,
                                             source_address=(source, 0))
        self.file = self.sock.makefile("rb")
        self.banner = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Read one reply, all its lines, as bytes."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return b"".join(lines)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"".join(lines)

    def command(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def close(self):
        self.file.close()
        self.sock.close()


def header_files(spool):
    """Return {message id: bytes of its -H file} for the spool's input/."""
    found = {}
    pattern = os.path.join(spool, "input", "**", "*-H")
    for path in glob.glob(pattern, recursive=True):
        name = os.path.basename(path)
        with open(path, "rb") as f:
            found[name[:-2]] = f.read()
    return found


def envelope(header):
    """Return the envelope part of a -H file (bytes): the lines from the
    first option line to the empty line before the header fields."""
    lines = header.split(b"\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"-"))
    end = lines.index(b"", start)
    return lines[start:end]

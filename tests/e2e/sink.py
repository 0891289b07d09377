"""A recording SMTP sink for sluice's end-to-end tests.

The sink listens on a loopback address, accepts every message and writes
each one to a folder:

    NNNNNN.raw   the DATA bytes exactly as received, up to and including
                 the final ".\\r\\n" (dot-stuffing and line ends as sent)
    NNNNNN.eml   the message: the same bytes without the final dot and
                 with dot-stuffing removed
    NNNNNN.json  the envelope: peer address and port, HELO/EHLO name,
                 MAIL FROM address and parameters, accepted recipients,
                 and the names of the two files above

The .json file is written last, under a temporary name and renamed, so a
message is complete once its .json file exists.

Rules make it misbehave on purpose: reply with a code (451, 550, 421, ...)
at a phase, drop the connection, or never reply, for the first N times the
phase is reached (optionally only when the command's argument contains a
string, such as one recipient's address). A "hold" rule keeps the session
waiting at its phase until the test calls release(), then carries on as
usual, so a test can keep connections open while it looks at the sender.
The sink counts the sessions open at once per peer address, for tests of
connection limits per egress address.

Phases: connect (the greeting), ehlo, helo, mail, rcpt, data (the DATA
command), body (after the first line of message data: only "close"
applies, a connection lost mid-DATA), dot (the end of the message), quit,
starttls.

Options make it a richer server: PIPELINING in the EHLO reply, STARTTLS
with a certificate (Python's ssl module; SNI and the cipher are recorded
per connection and per message), a multi-line greeting, and a limit on
recipients per transaction (452 past it, advertised as LIMITS RCPTMAX).

Use in a test:

    with Sink(folder) as sink:
        sink.add_rule("rcpt", 451, times=2, match="bob@")
        ... deliver to 127.0.0.1:sink.port ...
        sink.wait_for_messages(1)

or on the command line (prints "port N" once it listens):

    python3 sink.py --dir /tmp/mail --fail rcpt:550:1:bob@

Only the Python standard library is used, and the sink refuses to listen
on anything but a loopback address.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time

PHASES = ("connect", "ehlo", "helo", "mail", "rcpt", "data", "body", "dot",
          "quit", "starttls")
ACTIONS = ("reply", "close", "stall", "garbage", "hold")

# Bounds on what a client may send.
COMMAND_LINE_MAX = 4096          # bytes of one command line
DATA_LINE_MAX = 1024 * 1024      # bytes of one message line
DEFAULT_SIZE_MAX = 100 * 1024 * 1024

DEFAULT_TEXTS = {
    421: "4.3.2 Service shutting down",
    451: "4.3.0 Temporary failure, try again later",
    452: "4.5.3 Too many recipients",
    550: "5.1.1 Rejected",
    552: "5.3.4 Message too big",
    554: "5.7.1 Transaction failed",
}


class Rule:
    """One planned misbehaviour; see the module documentation."""

    def __init__(self, phase, code=None, text=None, times=1, match=None,
                 action="reply"):
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; use one of {PHASES}")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of {ACTIONS}")
        if action == "hold" and phase == "body":
            raise ValueError("a hold rule applies at a command, the "
                             "greeting or the final dot, not at body")
        if action == "reply" and (code is None or not 200 <= code <= 599):
            raise ValueError(f"a reply rule needs a code from 200 to 599, "
                             f"got {code!r}")
        self.phase = phase
        self.code = code
        self.text = text if text is not None else DEFAULT_TEXTS.get(code, "Planned reply")
        self.times = times          # None: every time
        self.match = match
        self.action = action
        self.used = 0

    def applies(self, phase, argument):
        if phase != self.phase:
            return False
        if self.times is not None and self.used >= self.times:
            return False
        if self.match is not None and self.match not in argument:
            return False
        return True


def format_reply(code, text):
    """Return the bytes of a reply; text lines become a multi-line reply."""
    lines = text.split("\n") if text else [""]
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{line}".rstrip(" ") + "\r\n")
    return "".join(out).encode()


class Sink:
    """A recording SMTP server on a loopback address, run in a thread.

    directory: where messages are written (created if missing).
    hostname: the name in the greeting and the EHLO reply.
    ehlo: False makes the sink reply 502 to EHLO, as an old server does.
    size_max: SIZE advertised and enforced (552), in bytes.
    pipelining: advertise PIPELINING (the sink reads commands one by one
        either way, which a pipelining client cannot tell apart).
    tls: an ssl.SSLContext for the server side: STARTTLS is offered.
    banner: greeting text; lines separated by "\n" make a multi-line
        greeting.
    rcpt_max: recipients accepted per transaction, 452 past it and
        LIMITS RCPTMAX advertised; None for no limit.
    dsn: advertise DSN (RFC 3461); the sink records the parameters of
        MAIL and RCPT either way.
    idle_421_after: seconds a connection may stay idle after a message
        before the sink sends an unsolicited 421 and closes it; None for
        never. idle_closes counts those.

    Counters a test may read: connections (sessions so far), active and
    max_active (open now, most at once), active_by_peer and
    max_active_by_peer (the same per client address), held (sessions
    waiting on a hold rule now) and max_held.
    """

    def __init__(self, directory, host="127.0.0.1", port=0,
                 hostname="sink.test", ehlo=True, size_max=DEFAULT_SIZE_MAX,
                 pipelining=False, tls=None, banner=None, rcpt_max=None,
                 dsn=False, idle_421_after=None):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address; the sink "
                             f"only listens on loopback")
        self.directory = directory
        self.host = host
        self.port = port
        self.hostname = hostname
        self.ehlo = ehlo
        self.size_max = size_max
        self.pipelining = pipelining
        self.tls = tls
        self.banner = banner
        self.rcpt_max = rcpt_max
        self.dsn = dsn
        self.idle_421_after = idle_421_after
        self.idle_closes = 0
        self.active = 0             # connections open now
        self.max_active = 0         # most open at once
        self.active_by_peer = {}    # client address -> open now
        self.max_active_by_peer = {}    # client address -> maximum open
        self.held = 0               # sessions waiting on a hold rule
        self.max_held = 0
        self._released = threading.Event()
        self.rules = []
        self.sessions = []          # per connection: list of command lines
        self.connection_info = []   # per connection: peer, tls, sni
        self.connections = 0
        self._lock = threading.Lock()
        self._sequence = 0
        self._loop = None
        self._server = None
        self._thread = None
        os.makedirs(directory, exist_ok=True)

    # --- control, from the test's thread -----------------------------

    def add_rule(self, phase, code=None, times=1, match=None, text=None,
                 action="reply"):
        rule = Rule(phase, code, text, times, match, action)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self):
        with self._lock:
            self.rules.clear()

    def release(self):
        """Let every session waiting on a hold rule go on, and let later
        ones pass their hold rules without waiting, until hold()."""
        self._released.set()

    def hold(self):
        """Make hold rules wait again (the state before release())."""
        self._released.clear()

    def wait_for_held(self, count, timeout=30.0):
        """Wait until at least count sessions wait on a hold rule.
        The timeout only bounds a failing test."""
        deadline = time.monotonic() + timeout
        while self.held < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count} held "
                                     f"sessions, have {self.held}")
            time.sleep(0.05)

    def start(self):
        ready = threading.Event()
        failure = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._session, self.host, self.port,
                                         limit=DATA_LINE_MAX + 2))
            except OSError as e:
                failure.append(e)
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="smtp-sink",
                                        daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self):
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def messages(self):
        """Return the recorded messages in order: envelope dicts with the
        message bytes under "data" and the wire bytes under "raw"."""
        out = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(self.directory, name)) as f:
                envelope = json.load(f)
            with open(os.path.join(self.directory, envelope["data_file"]), "rb") as f:
                envelope["data"] = f.read()
            with open(os.path.join(self.directory, envelope["raw_file"]), "rb") as f:
                envelope["raw"] = f.read()
            out.append(envelope)
        return out

    def wait_for_messages(self, count, timeout=30.0):
        """Wait until at least count messages are recorded; return them.
        The timeout only bounds a failing test; nothing asserts a time."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count} "
                                     f"messages, have {len(found)}")
            time.sleep(0.05)

    # --- the SMTP session, on the sink's loop ------------------------

    def _rule_for(self, phase, argument=""):
        with self._lock:
            for rule in self.rules:
                if rule.applies(phase, argument):
                    rule.used += 1
                    return rule
        return None

    async def _wait_release(self):
        """Wait, on the sink's loop, until the test calls release()."""
        with self._lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)
        try:
            while not self._released.is_set():
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self.held -= 1

    async def _act(self, rule, reader, writer):
        """Carry out a rule; return False when the session must end."""
        if rule.action == "close":
            writer.close()
            return False
        if rule.action == "garbage":
            # The reply, then bytes that are neither SMTP nor TLS: after
            # "220" to STARTTLS, a broken TLS handshake.
            writer.write(format_reply(rule.code or 220, rule.text))
            writer.write(b"this is not what you expect\r\n")
            await writer.drain()
            writer.close()
            return False
        if rule.action == "stall":
            # Never reply; read on until the client gives up and closes.
            try:
                while await reader.read(65536):
                    pass
            except ConnectionError:
                pass
            return False
        writer.write(format_reply(rule.code, rule.text))
        await writer.drain()
        return rule.code != 421

    def _record(self, envelope, raw, data):
        with self._lock:
            self._sequence += 1
            base = f"{self._sequence:06d}"
        envelope["raw_file"] = base + ".raw"
        envelope["data_file"] = base + ".eml"
        envelope["size"] = len(data)
        for suffix, content in ((".raw", raw), (".eml", data)):
            with open(os.path.join(self.directory, base + suffix), "wb") as f:
                f.write(content)
        tmp = os.path.join(self.directory, base + ".json.tmp")
        with open(tmp, "w") as f:
            json.dump(envelope, f, indent=1)
        os.rename(tmp, os.path.join(self.directory, base + ".json"))
        return base

    async def _read_data(self, reader):
        """Read message lines up to the lone dot; return (raw, data) or
        None if the connection ended first (or a body rule closed it)."""
        raw = bytearray()
        data = bytearray()
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            except asyncio.LimitOverrunError:
                return None
            if not raw and self._rule_for("body") is not None:
                return None         # the only body action: drop
            raw += line
            if line == b".\r\n":
                return bytes(raw), bytes(data)
            if len(data) <= self.size_max:
                data += line[1:] if line.startswith(b".") else line

    def _ehlo_reply(self, argument, tls_active):
        lines = [f"{self.hostname} Hello {argument}",
                 f"SIZE {self.size_max}", "8BITMIME"]
        if self.pipelining:
            lines.append("PIPELINING")
        if self.tls is not None and not tls_active:
            lines.append("STARTTLS")
        if self.rcpt_max is not None:
            lines.append(f"LIMITS RCPTMAX={self.rcpt_max}")
        if self.dsn:
            lines.append("DSN")
        lines.append("HELP")
        return format_reply(250, "\n".join(lines))

    async def _start_tls(self, writer, info):
        """Run the server side of a TLS handshake; return False when it
        failed and the session must end."""
        sni = []

        def remember_sni(ssl_object, server_name, context):
            sni.append(server_name)

        self.tls.sni_callback = remember_sni
        try:
            await writer.start_tls(self.tls)
        except (ssl.SSLError, ConnectionError, OSError):
            return False
        ssl_object = writer.get_extra_info("ssl_object")
        info["tls"] = ssl_object.version()
        info["cipher"] = ssl_object.cipher()[0]
        info["sni"] = sni[0] if sni else None
        return True

    async def _session(self, reader, writer):
        commands = []
        peer = writer.get_extra_info("peername")
        info = {"peer": peer[0], "tls": None, "cipher": None, "sni": None}
        with self._lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            peer_active = self.active_by_peer.get(peer[0], 0) + 1
            self.active_by_peer[peer[0]] = peer_active
            self.max_active_by_peer[peer[0]] = max(
                self.max_active_by_peer.get(peer[0], 0), peer_active)
            self.sessions.append(commands)
            self.connection_info.append(info)
            connection = len(self.sessions) - 1
        envelope = None
        helo = None
        delivered = 0
        try:
            rule = self._rule_for("connect")
            if rule is not None and rule.action == "hold":
                await self._wait_release()
                rule = None
            if rule is not None:
                if not await self._act(rule, reader, writer):
                    return
            else:
                banner = self.banner or f"{self.hostname} ESMTP sink"
                writer.write(format_reply(220, banner))
                await writer.drain()
            while True:
                try:
                    if self.idle_421_after is not None and delivered > 0 \
                            and envelope is None:
                        line = await asyncio.wait_for(
                            reader.readuntil(b"\n"), self.idle_421_after)
                    else:
                        line = await reader.readuntil(b"\n")
                except asyncio.TimeoutError:
                    writer.write(b"421 4.4.2 Idle for too long\r\n")
                    await writer.drain()
                    with self._lock:
                        self.idle_closes += 1
                    return
                except asyncio.LimitOverrunError:
                    writer.write(b"500 5.5.2 Line too long\r\n")
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if len(line) > COMMAND_LINE_MAX:
                    writer.write(b"500 5.5.2 Line too long\r\n")
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                commands.append(text)
                verb, _, argument = text.partition(" ")
                verb = verb.upper()
                if verb in ("MAIL", "RCPT"):
                    verb, _, argument = text.partition(":")
                    verb = verb.upper().replace(" ", "")
                phase = {"EHLO": "ehlo", "HELO": "helo", "MAILFROM": "mail",
                         "RCPTTO": "rcpt", "DATA": "data",
                         "QUIT": "quit", "STARTTLS": "starttls"}.get(verb)
                rule = self._rule_for(phase, argument) if phase else None
                if rule is not None and rule.action == "hold":
                    await self._wait_release()
                    rule = None
                if rule is not None:
                    # The command counts as rejected, whatever the code.
                    if not await self._act(rule, reader, writer):
                        return
                    if phase in ("ehlo", "helo", "mail"):
                        envelope = None
                    continue
                if phase == "ehlo":
                    if not self.ehlo:
                        writer.write(b"502 5.5.1 EHLO not supported\r\n")
                    else:
                        helo = argument
                        writer.write(self._ehlo_reply(argument,
                                                      info["tls"] is not None))
                    envelope = None
                elif phase == "starttls":
                    if self.tls is None or info["tls"] is not None:
                        writer.write(b"503 5.5.1 TLS not available\r\n")
                    else:
                        writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                        await writer.drain()
                        if not await self._start_tls(writer, info):
                            return
                        helo = None
                        envelope = None
                        continue
                elif phase == "helo":
                    helo = argument
                    envelope = None
                    writer.write(f"250 {self.hostname} Hello {argument}\r\n".encode())
                elif phase == "mail":
                    envelope = self._new_envelope(peer, helo, argument)
                    envelope.update(connection=connection, tls=info["tls"],
                                    cipher=info["cipher"], sni=info["sni"])
                    writer.write(b"250 OK\r\n")
                elif phase == "rcpt":
                    if envelope is None:
                        writer.write(b"503 5.5.1 MAIL first\r\n")
                    elif (self.rcpt_max is not None and
                          len(envelope["rcpt_to"]) >= self.rcpt_max):
                        writer.write(b"452 4.5.3 Too many recipients\r\n")
                    else:
                        envelope["rcpt_to"].append(self._path(argument))
                        envelope["rcpt_params"].append(
                            argument.strip().partition(" ")[2].strip())
                        writer.write(b"250 Accepted\r\n")
                elif phase == "data":
                    if envelope is None or not envelope["rcpt_to"]:
                        writer.write(b"503 5.5.1 RCPT first\r\n")
                        continue
                    writer.write(b"354 Enter message, ending with \".\" on a line by itself\r\n")
                    await writer.drain()
                    got = await self._read_data(reader)
                    if got is None:
                        return
                    raw, data = got
                    rule = self._rule_for("dot")
                    if rule is not None and rule.action == "hold":
                        await self._wait_release()
                        rule = None
                    if rule is not None:
                        envelope = None
                        if not await self._act(rule, reader, writer):
                            return
                        continue
                    if len(data) > self.size_max:
                        writer.write(b"552 5.3.4 Message too big\r\n")
                    else:
                        base = self._record(envelope, raw, data)
                        writer.write(f"250 OK id={base}\r\n".encode())
                        delivered += 1
                    envelope = None
                elif phase == "quit":
                    writer.write(f"221 {self.hostname} closing connection\r\n".encode())
                    await writer.drain()
                    return
                elif verb == "RSET":
                    envelope = None
                    writer.write(b"250 Reset OK\r\n")
                elif verb == "NOOP":
                    writer.write(b"250 OK\r\n")
                else:
                    writer.write(b"500 5.5.1 Command unrecognized\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled: the sink stops while a client keeps its
            # connection open, as a delivery agent's idle one does.
            pass
        finally:
            with self._lock:
                self.active -= 1
                self.active_by_peer[peer[0]] -= 1
            writer.close()

    def _new_envelope(self, peer, helo, argument):
        path, _, params = argument.strip().partition(" ")
        return {"peer": peer[0], "peer_port": peer[1], "helo": helo,
                "mail_from": self._path(path), "mail_params": params.strip(),
                "rcpt_to": [], "rcpt_params": []}

    @staticmethod
    def _path(argument):
        """Return the address inside <...>."""
        argument = argument.strip().split(" ")[0]
        if argument.startswith("<") and argument.endswith(">"):
            return argument[1:-1]
        return argument


def parse_fail(text):
    """Parse PHASE:CODE[:TIMES[:MATCH]] or PHASE:close|stall[:TIMES[:MATCH]]."""
    parts = text.split(":", 3)
    if len(parts) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PHASE:CODE[:TIMES[:MATCH]]")
    phase, what = parts[0], parts[1]
    times = int(parts[2]) if len(parts) > 2 and parts[2] != "" else None
    match = parts[3] if len(parts) > 3 else None
    if what in ("close", "stall", "garbage"):
        return dict(phase=phase, action=what, times=times, match=match)
    return dict(phase=phase, code=int(what), times=times, match=match)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="folder for messages")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--hostname", default="sink.test")
    parser.add_argument("--no-ehlo", action="store_true", help="answer EHLO with 502")
    parser.add_argument("--fail", action="append", type=parse_fail, default=[],
                        help="PHASE:CODE[:TIMES[:MATCH]] or PHASE:close|stall|garbage[:TIMES[:MATCH]]; "
                             "TIMES empty means always")
    args = parser.parse_args()

    sink = Sink(args.dir, args.host, args.port, args.hostname, not args.no_ehlo)
    for rule in args.fail:
        sink.add_rule(**rule)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sink.start()
    print(f"port {sink.port}", flush=True)
    while not stop.wait(0.5):
        pass
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

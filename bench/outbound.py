#!/usr/bin/env python3
"""bench/outbound.py - messages per connection and per second that one
outbound path (one source, one destination host) carries to a local sink.

Usage: bench/outbound.py BUILD_DIR [--messages N] [--recipients N]
                         [--per-host N] [--max-messages N] [--body-bytes N]

The sink here runs in this process and records nothing to disk: it
counts messages, transactions and connections, and offers PIPELINING.
It holds its greeting back until every message is on the daemon's
spool, so the daemon's delivery queue is full when the clock starts and
the figure is the outbound path alone, not the rate of submission. Time
runs from the release of the greetings until the sink has every
message. Everything listens on loopback only.

This is a benchmark, not a test: it prints figures and asserts none.
"""

import argparse
import asyncio
import os
import smtplib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import sluicetest  # noqa: E402


class CountingSink:
    """An SMTP server on 127.0.0.2 that accepts everything and counts."""

    def __init__(self):
        self.go = None              # asyncio.Event, set by release()
        self.messages = 0
        self.transactions = 0
        self.connections = 0
        self.port = None
        self.loop = None
        self._lock = threading.Lock()
        self._ready = threading.Event()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(30)
        return self

    def release(self):
        self.loop.call_soon_threadsafe(self.go.set)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.go = asyncio.Event()
        server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.2", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _session(self, reader, writer):
        with self._lock:
            self.connections += 1
        await self.go.wait()
        writer.write(b"220 bench.test ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-bench.test\r\n250-PIPELINING\r\n"
                                 b"250-8BITMIME\r\n250 SIZE 104857600\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    with self._lock:
                        self.messages += 1
                        self.transactions += 1
                    writer.write(b"250 OK\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 OK\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def submit(port, count, recipients, body):
    """Send count messages over one SMTP session."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test",
                      timeout=120) as s:
        for i in range(count):
            rcpts = [f"r{i}.{k}@dest.bench.test" for k in range(recipients)]
            s.sendmail("sender@bench.test", rcpts, body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build_dir")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=1,
                        help="recipients per message")
    parser.add_argument("--per-host", type=int, default=10,
                        help="outbound_connections_max_per_host")
    parser.add_argument("--max-messages", type=int, default=500,
                        help="connection_max_messages")
    parser.add_argument("--body-bytes", type=int, default=2048)
    parser.add_argument("--submitters", type=int, default=8,
                        help="parallel SMTP sessions that submit")
    args = parser.parse_args()

    sluicetest.SLUICE_BIN = os.path.join(args.build_dir, "sluice")
    sink = CountingSink().start()
    daemon = sluicetest.Daemon(settings=(
        "hostlist relay_from_hosts = 127.0.0.1\n"
        f"smarthost = 127.0.0.2::{sink.port}\n"
        f"outbound_connections_max_per_host = {args.per_host}\n"
        f"connection_max_messages = {args.max_messages}\n"
        "smtp_accept_max = 100\n"))
    body = (b"Subject: bench\r\n\r\n" +
            b"x" * max(0, args.body_bytes - 20) + b"\r\n")
    try:
        daemon.start()
        per = args.messages // args.submitters
        counts = [per] * args.submitters
        counts[0] += args.messages - per * args.submitters
        started = time.monotonic()
        with ThreadPoolExecutor(args.submitters) as pool:
            for f in [pool.submit(submit, daemon.port, n, args.recipients,
                                  body) for n in counts]:
                f.result()
        submitted = time.monotonic() - started

        begin = time.monotonic()
        sink.release()
        while sink.messages < args.messages:
            time.sleep(0.01)
        seconds = time.monotonic() - begin
    finally:
        daemon.stop()
        daemon.cleanup()

    print(f"messages {args.messages}")
    print(f"recipients_per_message {args.recipients}")
    print(f"submit_seconds {submitted:.2f}")
    print(f"connections {sink.connections}")
    print(f"messages_per_connection {args.messages / sink.connections:.1f}")
    print(f"deliver_seconds {seconds:.2f}")
    print(f"messages_per_second {args.messages / seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

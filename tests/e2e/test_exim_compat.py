"""Debian 12's Exim 4.96 tools read the spool that sluice writes.

The real daemon receives messages over SMTP and keeps them queued (its
smarthost is a closed loopback port). Then Exim's own programs, unpacked
from the Debian packages and never installed (see exim_debian.py), read
sluice's spool: exim4 -bp/-bpc/-bpr/-bpu/-bpa, -Mvh, -Mvb and -Mset with
-be (Exim's C parser of -H files), exipick and exiqgrep (Perl parsers).
Each must report the ids, senders, recipients and sizes that sluice
logged, with no spool format or read error. Exim 4.96 reads only
16-character message ids, so the daemon runs with message_id_format =
classic.

A partial delivery, one recipient accepted by a sink and the other
deferred, must show as "D" for the delivered one only.

Needs root (it is skipped otherwise) and, the first time, access to
Debian's package mirror: the .deb files are cached in
$SLUICE_BUILDDIR/exim-debs. Without that access every test fails with
the reason.
"""

import email.utils
import os
import re
import shutil
import smtplib
import tempfile
import unittest

import sluicetest
from exim_debian import Exim, EximUnavailable
from sink import Sink

EXIM = None


def setUpModule():
    global EXIM
    if os.geteuid() != 0:
        raise unittest.SkipTest(
            "needs root: Exim runs under unshare --mount with private "
            "copies of /etc/passwd and /etc/group bind-mounted")
    cache = os.path.join(sluicetest.BUILDDIR or tempfile.gettempdir(),
                         "exim-debs")
    try:
        EXIM = Exim.prepare(cache)
    except EximUnavailable as e:
        raise AssertionError(f"Debian's Exim is not available: {e}") from None
    unittest.addModuleCleanup(EXIM.cleanup)
    if EXIM.installed:
        print("installed for Exim:", " ".join(EXIM.installed))
    print(EXIM.version)


# --- messages ----------------------------------------------------------

class Message:
    """One message to send: envelope, header lines and body (CRLF ends)."""

    def __init__(self, name, sender, recipients, headers, body,
                 mail_options=()):
        self.name = name
        self.sender = sender
        self.recipients = recipients
        self.headers = headers
        self.body = body
        self.mail_options = mail_options
        self.id = None      # set when sluice accepts it

    @property
    def data(self):
        return b"".join(h + b"\r\n" for h in self.headers) + b"\r\n" + self.body

    @property
    def spooled_body(self):
        """The body as the -D file stores it: LF line ends."""
        return self.body.replace(b"\r\n", b"\n")

    def header(self, name):
        """Return the value of header name as sent, folding removed."""
        prefix = name.lower().encode() + b":"
        value = None
        for line in self.headers:
            if value is not None and line[:1] in (b" ", b"\t"):
                value += b" " + line
            elif value is not None:
                break
            elif line.lower().startswith(prefix):
                value = line[len(prefix):]
        if value is None:
            return ""
        return unfold(value.decode("utf-8", "surrogateescape"))


def unfold(text):
    return " ".join(text.split())


LONG_SUBJECT = [b"Subject: A subject folded over many lines"] + [
    b"\tpart %02d of a long subject line that goes on and on" % i
    for i in range(1, 31)]

MESSAGES = [
    Message("simple", "alice@example.test", ["bob@example.test"],
            [b"From: Alice <alice@example.test>",
             b"To: bob@example.test",
             b"Subject: simple",
             b"Message-ID: <simple@example.test>"],
            b"Hello Bob.\r\n"),
    Message("two_domains", "alice@example.test",
            ["a@one.test", "b@one.test", "c@two.test"],
            [b"From: alice@example.test",
             b"To: a@one.test, b@one.test, c@two.test",
             b"Subject: three recipients"],
            b"One body\r\nfor three.\r\n"),
    Message("null_sender", "", ["postmaster@example.test"],
            [b"From: Mail Delivery System <mailer-daemon@example.test>",
             b"To: postmaster@example.test",
             b"Subject: Mail delivery failed"],
            b"This message was created automatically.\r\n"),
    Message("folded_8bit", "alice@example.test", ["bob@example.test"],
            [b"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.test>",
             b"To: bob@example.test",
             *LONG_SUBJECT,
             "X-Greeting: Grüße aus Köln".encode(),
             b"References: " + b"\r\n\t".join(
                 b"<ref%02d@example.test>" % i for i in range(20))],
            "Grüße,\r\nça va très bien.\r\n".encode()
            + b"Latin-1 bytes: \xe9t\xe9, not UTF-8.\r\n",
            mail_options=("BODY=8BITMIME",)),
    Message("cc_reply_to_bcc", "alice@example.test",
            ["bob@example.test", "carol@example.test", "hidden@example.test"],
            [b"From: Alice <alice@example.test>",
             b"To: bob@example.test",
             b"Cc: carol@example.test",
             b"Reply-To: replies@example.test",
             b"Bcc: hidden@example.test",
             b"Subject: with copies"],
            b"Copies for everyone.\r\n"),
]


def send_messages(port, messages):
    """Send messages over one SMTP session and set each one's id from the
    250 reply to DATA."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=30) as smtp:
        smtp.ehlo()
        for m in messages:
            code, reply = smtp.mail(m.sender, list(m.mail_options))
            if code != 250:
                raise AssertionError(f"MAIL for {m.name}: {code} {reply!r}")
            for r in m.recipients:
                code, reply = smtp.rcpt(r)
                if code != 250:
                    raise AssertionError(f"RCPT {r}: {code} {reply!r}")
            code, reply = smtp.data(m.data)
            found = re.search(rb"id=(\S+)", reply)
            if code != 250 or not found:
                raise AssertionError(f"DATA for {m.name}: {code} {reply!r}")
            m.id = found.group(1).decode()


def received_sizes(mainlog):
    """Return {id: S= value} from the "<=" lines of a mainlog."""
    sizes = {}
    for m in re.finditer(r"^\S+ \S+ (?:\[\d+\] )?(\S+) <= .* S=(\d+)",
                         mainlog, re.M):
        sizes[m.group(1)] = int(m.group(2))
    return sizes


def shown_size(size):
    """Format a size as Exim's queue listing does (5 columns)."""
    if size < 1024:
        text = "%d" % size
    elif size < 10 * 1024:
        text = "%.1fK" % (size / 1024)
    elif size < 1024 * 1024:
        text = "%dK" % ((size + 512) // 1024)
    elif size < 10 * 1024 * 1024:
        text = "%.1fM" % (size / (1024 * 1024))
    else:
        text = "%dM" % ((size + 512 * 1024) // (1024 * 1024))
    return text.rjust(5)


# --- output parsers ----------------------------------------------------

QUEUE_HEAD = re.compile(r"( *\d+[mhd]) (.{5}) (\S+) <(.*?)>(.*)")


def parse_queue_listing(test, text):
    """Parse an Exim -bp listing into {id: (size field, sender,
    [(recipient, delivered)])}, failing the test on any line that is not
    in the listing's format (such as a spool format error)."""
    queue = {}
    current = None
    for line in text.split("\n"):
        if current is None:
            if line == "":
                continue
            head = QUEUE_HEAD.fullmatch(line)
            test.assertIsNotNone(head, f"not a queue listing line: {line!r}")
            age, size, msgid, sender, rest = head.groups()
            test.assertEqual(len(age), 3, f"age field of {line!r}")
            test.assertEqual(rest, "", f"unexpected text after the sender "
                             f"in {line!r}")
            current = []
            queue[msgid] = (size, sender, current)
        elif line == "":
            current = None
        elif line.startswith("        D "):
            current.append((line[10:], True))
        else:
            test.assertRegex(line, r"^ {10}\S", "recipient line")
            current.append((line[10:], False))
    return queue


def parse_show_vars(line, names):
    """Split an "exipick -i --show-vars a,b" line into (id, {name: value}).

    exipick writes ID name='value' ... without escaping, so the values
    are cut at the known " name='" separators, in the requested order."""
    msgid, _, rest = line.partition(" ")
    values = {}
    for i, name in enumerate(names):
        start = f"{name}='"
        if not rest.startswith(start):
            raise AssertionError(f"expected {start!r} in {line!r}")
        rest = rest[len(start):]
        if i + 1 < len(names):
            following = f"{names[i + 1]}='"
            value, separator, tail = rest.partition("' " + following)
            if not separator:
                raise AssertionError(f"expected {following!r} in {line!r}")
            rest = following + tail
        else:
            if not rest.endswith("'"):
                raise AssertionError(f"no closing quote in {line!r}")
            value = rest[:-1]
        values[name] = value
    return msgid, values


def parse_expansions(text, keys):
    """Parse exim -be output of "key=<expansion>" arguments into
    {key: value}. Folded header values continue on lines that start with
    white space, which never look like "key=".

    Any text before the first key fails: exim -Mset prints "Failed to load
    message <id>" there (on stdout, with exit status 0) when it cannot
    read the -H file."""
    values = {}
    current = None
    for line in text.split("\n"):
        key = line.partition("=")[0]
        if key in keys and key not in values:
            current = key
            values[key] = line[len(key) + 1:]
        elif current is not None:
            values[current] += "\n" + line
        else:
            raise AssertionError(f"unexpected exim -be output: {line!r}")
    return {k: v.rstrip("\n") for k, v in values.items()}


# --- tests -------------------------------------------------------------

class FlatSpoolTest(unittest.TestCase):
    """The five messages, queued by sluice in input/, read by Exim's tools."""

    SPLIT = False

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="sluice-exim-compat-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        closed_port = sluicetest.free_port()
        settings = ("message_id_format = classic\n"
                    f"smarthost = 127.0.0.1::{closed_port}\n"
                    "hostlist relay_from_hosts = 127.0.0.1\n"
                    f"split_spool_directory = {str(cls.SPLIT).lower()}\n")
        d = sluicetest.Daemon(settings=settings)
        cls.addClassCleanup(d.cleanup)
        cls.daemon = d
        d.start()

        cls.messages = [Message(m.name, m.sender, m.recipients, m.headers,
                                m.body, m.mail_options) for m in MESSAGES]
        send_messages(d.port, cls.messages)

        # Wait until every recipient has been tried once and deferred, so
        # the daemon no longer changes the spool, then stop it.
        def all_deferred():
            log = d.log()
            return all(f"{m.id} == {r} " in log
                       for m in cls.messages for r in m.recipients)
        sluicetest.wait_for(all_deferred, 30, "a deferral of each recipient")
        status = d.stop()
        if status != 0:
            raise AssertionError(f"daemon exited with {status}")

        cls.sizes = received_sizes(d.log())
        cls.by_name = {m.name: m for m in cls.messages}
        cls.input = os.path.join(d.spool, "input")
        cls.config = EXIM.write_config(
            os.path.join(cls.work, "exim.conf"), d.spool, cls.work,
            split_spool_directory=cls.SPLIT)

    def spool_path(self, msgid, suffix):
        folder = os.path.join(self.input, msgid[5]) if self.SPLIT else self.input
        return os.path.join(folder, f"{msgid}-{suffix}")

    def exim(self, *args, binary=False):
        result = EXIM.exim(self.config, *args, binary=binary)
        self.assertEqual(result.returncode, 0,
                         f"exim4 {' '.join(args)} failed: {result.stderr}")
        self.assertFalse(result.stderr, f"exim4 {' '.join(args)} stderr")
        return result.stdout

    def exipick(self, *args, config=False):
        spool = ["-C", self.config] if config else ["--spool",
                                                     self.daemon.spool]
        result = EXIM.exipick(*spool, *args)
        self.assertEqual(result.returncode, 0,
                         f"exipick {' '.join(args)} failed: {result.stderr}")
        self.assertEqual(result.stderr, "", f"exipick {' '.join(args)}")
        return result.stdout

    def exiqgrep(self, *args):
        result = EXIM.exiqgrep(self.config, *args)
        self.assertEqual(result.returncode, 0,
                         f"exiqgrep {' '.join(args)} failed: {result.stderr}")
        self.assertEqual(result.stderr, "", f"exiqgrep {' '.join(args)}")
        return result.stdout

    def check_listing(self, text, delivered=()):
        queue = parse_queue_listing(self, text)
        self.assertEqual(set(queue), {m.id for m in self.messages})
        for m in self.messages:
            size, sender, recipients = queue[m.id]
            self.assertEqual(sender, m.sender, m.name)
            self.assertEqual(size, shown_size(self.sizes[m.id]), m.name)
            self.assertEqual(recipients,
                             [(r, r in delivered) for r in m.recipients],
                             m.name)

    # exim4 -bp and its variants

    def test_sizes_logged(self):
        self.assertEqual(set(self.sizes), {m.id for m in self.messages})
        self.assertGreater(self.sizes[self.by_name["folded_8bit"].id], 1024,
                           "one size must use Exim's K form")

    def test_spool_layout(self):
        for m in self.messages:
            for suffix in ("H", "D"):
                self.assertTrue(os.path.isfile(self.spool_path(m.id, suffix)),
                                f"{m.name}: {self.spool_path(m.id, suffix)}")

    def test_exim_bp(self):
        self.check_listing(self.exim("-bp"))

    def test_exim_bp_variants(self):
        for option in ("-bpr", "-bpu", "-bpa", "-bpra", "-bpru"):
            with self.subTest(option=option):
                self.check_listing(self.exim(option))

    def test_exim_bpc(self):
        self.assertEqual(self.exim("-bpc"), f"{len(self.messages)}\n")

    def test_exim_mvh_prints_header_file(self):
        for m in self.messages:
            with open(self.spool_path(m.id, "H"), "rb") as f:
                expected = f.read()
            self.assertEqual(self.exim("-Mvh", m.id, binary=True), expected,
                             m.name)

    def test_exim_mvb_prints_data_file(self):
        for m in self.messages:
            out = self.exim("-Mvb", m.id, binary=True)
            self.assertEqual(out, f"{m.id}-D\n".encode() + m.spooled_body,
                             m.name)

    def test_exim_loads_each_message(self):
        """exim -Mset loads the message with Exim's own -H parser; -be
        then prints the variables it set."""
        expansions = {
            "id": "$message_exim_id",
            "sender": "$sender_address",
            "recipients": "$recipients",
            "count": "$recipients_count",
            "size": "$message_size",
            "body_size": "$message_body_size",
            "body_lines": "$body_linecount",
            "protocol": "$received_protocol",
            "host": "$sender_host_address",
            "helo": "$sender_helo_name",
            "received": "$received_count",
            "from": "$rh_from:",
            "subject": "$rh_subject:",
            "reply_to": "$rh_reply-to:",
            "cc": "$rh_cc:",
            "bcc": "$rh_bcc:",
            "greeting": "$rh_x-greeting:",
            "references": "$rh_references:",
        }
        args = [f"{k}={v}" for k, v in expansions.items()]
        for m in self.messages:
            with self.subTest(message=m.name):
                out = self.exim("-Mset", m.id, "-be", *args)
                got = parse_expansions(out, expansions)
                self.assertEqual(set(got), set(expansions))
                self.assertEqual(got["id"], m.id)
                self.assertEqual(got["sender"], m.sender)
                self.assertEqual(got["recipients"], ", ".join(m.recipients))
                self.assertEqual(got["count"], str(len(m.recipients)))
                self.assertEqual(got["size"], str(self.sizes[m.id]))
                self.assertEqual(got["body_size"], str(len(m.spooled_body)))
                self.assertEqual(got["body_lines"],
                                 str(m.spooled_body.count(b"\n")))
                self.assertEqual(got["protocol"], "esmtp")
                self.assertEqual(got["host"], "127.0.0.1")
                self.assertEqual(got["helo"], "client.test")
                self.assertEqual(got["received"], "1")
                for key, name in (("from", "From"), ("subject", "Subject"),
                                  ("reply_to", "Reply-To"), ("cc", "Cc"),
                                  ("bcc", "Bcc"), ("greeting", "X-Greeting"),
                                  ("references", "References")):
                    self.assertEqual(unfold(got[key]), m.header(name),
                                     f"{name}: header")

    # exipick (Perl)

    def test_exipick_ids(self):
        ids = self.exipick("-i").split()
        self.assertCountEqual(ids, [m.id for m in self.messages])

    def test_exipick_count(self):
        self.assertEqual(self.exipick("-bpc"), f"{len(self.messages)}\n")

    def test_exipick_config_option(self):
        """exipick -C runs exim4 -bP to find the spool directory."""
        self.assertEqual(self.exipick("-bpc", config=True),
                         f"{len(self.messages)}\n")

    def test_exipick_listing(self):
        queue = parse_queue_listing(self, self.exipick("-bp"))
        self.assertEqual(set(queue), {m.id for m in self.messages})
        for m in self.messages:
            size, sender, recipients = queue[m.id]
            self.assertEqual(sender, m.sender, m.name)
            self.assertEqual(size, shown_size(self.sizes[m.id]), m.name)
            # exipick keeps recipients in a Perl hash: any order.
            self.assertCountEqual(recipients,
                                  [(r, False) for r in m.recipients], m.name)

    def test_exipick_null_sender(self):
        self.assertEqual(self.exipick("-i", '$sender_address eq ""').split(),
                         [self.by_name["null_sender"].id])

    def test_exipick_recipient_condition(self):
        self.assertEqual(self.exipick("-i", r"$recipients =~ /@two\.test/")
                         .split(), [self.by_name["two_domains"].id])

    def test_exipick_header_condition(self):
        self.assertEqual(
            self.exipick("-i", "$bh_reply-to =~ /replies@/").split(),
            [self.by_name["cc_reply_to_bcc"].id])
        self.assertEqual(self.exipick("-i", "$h_subject =~ /part 30/").split(),
                         [self.by_name["folded_8bit"].id])

    def test_exipick_variables(self):
        # Not recipients_count: exipick keeps the newline after its value.
        names = ["sender_address", "message_size",
                 "message_body_size", "message_body_missing",
                 "received_protocol", "sender_host_address",
                 "sender_helo_name", "reply_address", "recipients"]
        out = self.exipick("-i", "--show-vars", ",".join(names))
        got = dict(parse_show_vars(line, names)
                   for line in out.splitlines())
        self.assertEqual(set(got), {m.id for m in self.messages})
        for m in self.messages:
            with self.subTest(message=m.name):
                v = got[m.id]
                self.assertEqual(v["sender_address"], m.sender)
                self.assertCountEqual(v["recipients"].split(", "),
                                      m.recipients)
                self.assertEqual(v["message_size"], str(self.sizes[m.id]))
                self.assertEqual(v["message_body_size"],
                                 str(len(m.spooled_body)))
                self.assertEqual(v["message_body_missing"], "")
                self.assertEqual(v["received_protocol"], "esmtp")
                self.assertEqual(v["sender_host_address"], "127.0.0.1")
                self.assertEqual(v["sender_helo_name"], "client.test")
                # exipick decodes RFC 2047 words, so compare the address.
                _, address = email.utils.parseaddr(
                    m.header("Reply-To") or m.header("From"))
                self.assertEqual(
                    email.utils.parseaddr(v["reply_address"])[1], address)

    # Exim 4.96 removes -deliver_firsttime from -H after the first
    # attempt, even a deferred one, so "exim -qi" and $first_delivery see
    # a deferred message as tried.
    def test_deferred_message_not_first_delivery(self):
        self.assertEqual(self.exipick("-i", "$first_delivery"), "")

    # exiqgrep (Perl, reads exim4 -bpu)

    def test_exiqgrep_count(self):
        self.assertEqual(self.exiqgrep("-c", "-r", r"@two\.test"),
                         f"1 matches out of {len(self.messages)} messages\n")

    def test_exiqgrep_ids(self):
        self.assertCountEqual(self.exiqgrep("-i", "-r", ".").split(),
                              [m.id for m in self.messages])
        self.assertEqual(self.exiqgrep("-i", "-f", "^<>$").split(),
                         [self.by_name["null_sender"].id])


class SplitSpoolTest(FlatSpoolTest):
    """The same with split_spool_directory = true for sluice and Exim."""

    SPLIT = True

    def test_files_in_subdirectories(self):
        for m in self.messages:
            self.assertFalse(os.path.exists(os.path.join(self.input,
                                                         f"{m.id}-H")))


class PartialDeliveryTest(unittest.TestCase):
    """One recipient delivered, one deferred: Exim marks only the first
    with D, and -bpu leaves it out."""

    def test_delivered_recipient_marked(self):
        work = tempfile.mkdtemp(prefix="sluice-exim-partial-")
        self.addCleanup(shutil.rmtree, work, True)
        sink = Sink(os.path.join(work, "sink")).start()
        self.addCleanup(sink.stop)
        sink.add_rule("rcpt", 451, times=None, match="later@")

        d = sluicetest.Daemon(settings=(
            "message_id_format = classic\n"
            f"smarthost = 127.0.0.1::{sink.port}\n"
            "hostlist relay_from_hosts = 127.0.0.1\n"))
        self.addCleanup(d.cleanup)
        d.start()
        m = Message("partial", "alice@example.test",
                    ["now@a.test", "later@b.test"],
                    [b"From: alice@example.test", b"Subject: partial"],
                    b"Half of this arrives now.\r\n")
        send_messages(d.port, [m])

        sink.wait_for_messages(1)
        header = os.path.join(d.spool, "input", f"{m.id}-H")
        journal = os.path.join(d.spool, "input", f"{m.id}-J")

        def settled():
            log = d.log()
            if (f"{m.id} => now@a.test " not in log or
                    f"{m.id} == later@b.test " not in log or
                    os.path.exists(journal)):
                return False
            with open(header) as f:
                return re.search(r"^[YN][YN] now@a\.test$", f.read(), re.M)
        sluicetest.wait_for(settled, 30,
                            "the delivery to be recorded in the -H file")
        self.assertEqual(d.stop(), 0)

        [delivered] = sink.messages()
        self.assertEqual(delivered["rcpt_to"], ["now@a.test"])

        config = EXIM.write_config(os.path.join(work, "exim.conf"),
                                   d.spool, work)
        size = shown_size(received_sizes(d.log())[m.id])

        result = EXIM.exim(config, "-bp")
        self.assertEqual(result.stderr, "")
        self.assertEqual(parse_queue_listing(self, result.stdout), {
            m.id: (size, m.sender,
                   [("now@a.test", True), ("later@b.test", False)])})

        result = EXIM.exim(config, "-bpu")
        self.assertEqual(result.stderr, "")
        self.assertEqual(parse_queue_listing(self, result.stdout), {
            m.id: (size, m.sender, [("later@b.test", False)])})

        names = ["recipients_del", "recipients_undel",
                 "recipients_del_count"]
        result = EXIM.exipick("--spool", d.spool, "-i", "--show-vars",
                              ",".join(names))
        self.assertEqual(result.stderr, "")
        self.assertEqual(parse_show_vars(result.stdout.rstrip("\n"), names),
                         (m.id, {"recipients_del": "now@a.test",
                                 "recipients_undel": "later@b.test",
                                 "recipients_del_count": "1"}))


if __name__ == "__main__":
    sluicetest.main()
